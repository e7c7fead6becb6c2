/*  pd_worker_idle: the machine owner's idle policy.

    With idle.load_max set, the worker measures the machine's own load
    (pd_load, which leaves out the worker and its slot processes) every
    idle.check_ms. Above the threshold the owner is back: the slots are
    withdrawn from the broker, the running jobs suspended (or handed back,
    with idle.requeue) and the queued ones handed back. Once the load has
    stayed low for idle.wait_s the jobs resume and the slots are offered
    again. pd_worker_set_idle replaces the policy (a reload).
*/
#include "pd_worker_int.h"
#include "pd_error.h"

#include "pd_plat.h"

/* The owner came back: hold the slots back, suspend or hand back jobs. */
static void s_owner_back(pd_worker_t *w)
{
    w->owner_active = true;
    w->low_since = 0;
    pd_worker_send_slots(w);
    pd_worker_send_state(w);
    int held = 0;
    for (int k = 0; k < pd_worker_nall(w); k++) {
        pd_slot_t *sl = pd_worker_slot(w, k);
        if (!sl || !pd_slot_busy(sl))
            continue;
        held++;
        if (w->idle.requeue)
            pd_slot_retire(sl, true);
        else
            pd_slot_suspend(sl, true);
    }
    pd_log_info("the machine's owner is back (load %.2f > %.2f): slots withdrawn, %d running "
                "jobs %s", w->owner_load, w->idle.load_max, held,
                w->idle.requeue ? "handed back" : "suspended");
    pd_worker_give_back(w, "the machine's owner is back");
}

/* The machine is idle again: resume and offer the slots. */
static void s_owner_gone(pd_worker_t *w, const char *why)
{
    w->owner_active = false;
    for (int k = 0; k < pd_worker_nall(w); k++)
        if (pd_worker_slot(w, k))
            pd_slot_suspend(pd_worker_slot(w, k), false);
    pd_worker_send_slots(w);
    pd_worker_send_state(w);
    pd_log_info("%s: offering %d cpus again", why, w->cpus);
}

void pd_worker_check_idle(pd_worker_t *w, int64_t now)
{
    w->next_check = now + w->idle.check_ms;
    if (!w->load)
        return;
    int pids[1 + PD_WORKER_MAX_CPUS + PD_GPU_MAX];
    size_t n = 0;
    pids[n++] = pd_plat_getpid();
    for (int k = 0; k < pd_worker_nall(w) && n < sizeof pids / sizeof pids[0]; k++)
        if (pd_worker_slot(w, k) && pd_slot_pid(pd_worker_slot(w, k)) > 0)
            pids[n++] = pd_slot_pid(pd_worker_slot(w, k));
    double load;
    int rc = pd_load_sample(w->load, pids, n, &load);
    if (rc == PD_EIO) {
        pd_log_warn("cannot read the machine's load from %s/stat: idle policy paused",
                    w->proc_dir);
        return;
    }
    if (rc)
        return;
    w->owner_load = load;
    if (load > w->idle.load_max) {
        w->low_since = 0;
        if (!w->owner_active)
            s_owner_back(w);
        return;
    }
    if (!w->owner_active)
        return;
    if (!w->low_since)
        w->low_since = now;
    if (now - w->low_since >= (int64_t) w->idle.wait_s * 1000)
        s_owner_gone(w, "the machine is idle again");
}

void pd_worker_set_idle(pd_worker_t *w, const pd_worker_idle_t *idle)
{
    bool was_on = w->idle.load_max > 0;
    w->idle = *idle;
    if (w->idle.check_ms < 100)
        w->idle.check_ms = 100;
    if (w->idle.wait_s < 0)
        w->idle.wait_s = 0;
    if (w->idle.load_max <= 0) {
        pd_load_destroy(&w->load);
        w->owner_load = -1;
        if (w->owner_active)
            s_owner_gone(w, "idle policy turned off");
        if (was_on)
            pd_log_info("idle policy off: slots offered whatever the machine's load");
        return;
    }
    if (!w->load && !(w->load = pd_load_new(w->proc_dir))) {
        pd_log_error("idle policy: out of memory; policy off");
        w->idle.load_max = 0;
        return;
    }
    w->next_check = pd_slot_now_ms();
    pd_log_info("idle policy: slots offered while the machine's own load stays at most %.2f "
                "(checked every %d ms; %s jobs when the owner is back; offered again after %d s "
                "of low load)", w->idle.load_max, w->idle.check_ms,
                w->idle.requeue ? "hand back" : "suspend", w->idle.wait_s);
}
