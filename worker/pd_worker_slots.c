/*  pd_worker_slots: the worker's slot processes, CPU and GPU, and the jobs
    given to them.

    The owner's limit (pd_worker_set_slots) decides how many slot processes
    run: raising starts them; lowering retires the ones over the limit once
    they are idle (at once with `now`, their jobs handed back). A slot whose
    process cannot start is withdrawn, and the broker hears the new count.
    Each loop iteration pd_worker_tend_slots does this upkeep and gives
    queued jobs to idle slots, spread evenly, leaving their CPUs to the
    running nodes of synchronous tasks.

    GPUs. At start the worker counts its GPUs through the CUDA driver
    (gpu/pd_cudrv.h; none when libcuda does not load) and offers them, or
    the number its owner allows, as GPU slots: GPU slot g (slot number
    PD_WORKER_GPU_SLOT0 + g) is a slot process whose environment shows it
    GPU g only. GPU jobs (`run` entries with gpu true) wait in their own
    queue for GPU slots; CPU jobs never take a GPU slot, and CPU slots see
    no GPU. GPU slots over the owner's limit retire like CPU slots.
*/
#include "pd_worker_int.h"
#include "pd_error.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- counting slots ----------------------------------------------------- */

int pd_worker_cpus_up(const pd_worker_t *w)
{
    int n = w->cpus;
    for (int i = 0; i < w->nslots && i < w->cpus; i++)
        n -= pd_slot_unavailable(w->slots[i]);
    return n;
}

int pd_worker_gpus_up(const pd_worker_t *w)
{
    int n = w->gpus;
    for (int g = 0; g < w->gpus; g++)
        n -= w->gslots[g] && pd_slot_unavailable(w->gslots[g]);
    return n;
}

int pd_worker_offered(const pd_worker_t *w) { return w->owner_active ? 0 : pd_worker_cpus_up(w); }
int pd_worker_offered_gpus(const pd_worker_t *w)
{
    return w->owner_active ? 0 : pd_worker_gpus_up(w);
}

int pd_worker_busy(const pd_worker_t *w)
{
    int busy = 0;
    for (int k = 0; k < pd_worker_nall(w); k++)
        busy += pd_worker_slot(w, k) && pd_slot_busy(pd_worker_slot(w, k));
    return busy;
}

/* ---- GPUs --------------------------------------------------------------- */

int pd_worker_offer_gpus(pd_worker_t *w, int asked)
{
    w->gpus = w->ngpu = 0;
    if (asked == 0)
        return 0;
    char why[600];
    int found = pd_gpu_discover(NULL, w->gpu, PD_GPU_MAX, why, sizeof why);
    if (asked > found) {
        if (found == 0)
            pd_log_error("--gpus %d: this machine has no GPU usable through the CUDA driver "
                         "(%s): install the NVIDIA driver, or lower --gpus", asked, why);
        else
            pd_log_error("--gpus %d: this machine has only %d GPU%s usable through the CUDA "
                         "driver: lower --gpus to %d or less", asked, found,
                         found == 1 ? "" : "s", found);
        return PD_EINVAL;
    }
    if (found == 0)
        pd_log_info("offering no GPU: %s", why);
    w->ngpu = found;
    w->gpus = asked < 0 ? found : asked;
    for (int g = 0; g < found; g++) {
        char mem[32];
        pd_log_info("GPU %d: %s, %s, compute capability %d.%d%s", g, w->gpu[g].name,
                    pd_gpu_mem_str(w->gpu[g].mem, mem, sizeof mem), w->gpu[g].cc_major,
                    w->gpu[g].cc_minor, g < w->gpus ? "" : " (not offered: --gpus)");
        if (w->ngpu_names < PD_WORKER_MAX_GPU_NAMES)
            snprintf(w->gpu_names[w->ngpu_names++], sizeof w->gpu_names[0], "%.63s",
                     w->gpu[g].name);
    }
    return 0;
}

void pd_worker_find_gpu_names(pd_worker_t *w)
{
    DIR *d = opendir("/proc/driver/nvidia/gpus");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) && w->ngpu_names < PD_WORKER_MAX_GPU_NAMES) {
        if (e->d_name[0] == '.')
            continue;
        char path[512], line[256];
        snprintf(path, sizeof path, "/proc/driver/nvidia/gpus/%s/information", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "Model:", 6) != 0)
                continue;
            char *v = line + 6;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = 0;
            snprintf(w->gpu_names[w->ngpu_names++], sizeof w->gpu_names[0], "%.63s", v);
            break;
        }
        fclose(f);
    }
    closedir(d);
}

void pd_worker_visible_for(int g, char *out, size_t cap)
{
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    snprintf(out, cap, "%d", g);
    if (!vis || !*vis)
        return;
    const char *p = vis;
    for (int k = 0; *p; k++) {
        size_t len = strcspn(p, ",");
        if (k == g) {
            snprintf(out, cap, "%.*s", (int) len, p);
            return;
        }
        p += len;
        if (*p == ',')
            p++;
    }
}

/* ---- the owner's limit -------------------------------------------------- */

int pd_worker_reserve_slots(pd_worker_t *w, int n)
{
    if (n <= w->capslots)
        return 0;
    int cap = w->capslots ? w->capslots : 4;
    while (cap < n)
        cap *= 2;
    pd_slot_t **slots = realloc(w->slots, (size_t) cap * sizeof *slots);
    if (!slots)
        return PD_ENOMEM;
    w->slots = slots;
    /* The poll set: fixed sockets (at most 4), CPU slots, GPU slots, and the
       nodes of synchronous tasks (at most as many as CPU and GPU slots when
       they started). */
    size_t nitems = 2 * (size_t) cap + 4 + 2 * PD_GPU_MAX;
    zmq_pollitem_t *items = realloc(w->items, nitems * sizeof *items);
    if (!items)
        return PD_ENOMEM;
    w->items = items;
    int *item_slot = realloc(w->item_slot, nitems * sizeof *item_slot);
    if (!item_slot)
        return PD_ENOMEM;
    w->item_slot = item_slot;
    pd_nodeproc_t **nodes = realloc(w->nodes, ((size_t) cap + PD_GPU_MAX) * sizeof *nodes);
    if (!nodes)
        return PD_ENOMEM;
    w->nodes = nodes;
    pd_nodeproc_t **gone = realloc(w->gone, 2 * ((size_t) cap + PD_GPU_MAX) * sizeof *gone);
    if (!gone)
        return PD_ENOMEM;
    w->gone = gone;
    w->capslots = cap;
    return 0;
}

/* Starts slot processes up to w->cpus. Returns 0 or a PD_E* code. */
static int s_grow_slots(pd_worker_t *w)
{
    int code = pd_worker_reserve_slots(w, w->cpus);
    if (code)
        return code;
    while (w->nslots < w->cpus) {
        /* CPU slots see no GPU (CUDA_VISIBLE_DEVICES=""): GPU work goes
           where the broker placed it. */
        pd_slot_config_t sc = {.index = w->nslots, .exe = w->slot_exe, .cache_dir = w->cache_dir,
                               .host = w->host, .log_level = w->log_level, .cuda_visible = "",
                               .sink = pd_worker_slot_sink(w)};
        pd_slot_t *s = pd_slot_new(&sc, &code);
        if (!s)
            return code;
        w->slots[w->nslots++] = s;
    }
    return 0;
}

/* Starts the GPU slot processes up to w->gpus. Returns 0 or a PD_E* code. */
static int s_grow_gpu_slots(pd_worker_t *w)
{
    for (int g = 0; g < w->gpus; g++) {
        if (w->gslots[g])
            continue;
        char visible[64];
        pd_worker_visible_for(g, visible, sizeof visible);
        int code = 0;
        pd_slot_config_t sc = {.index = PD_WORKER_GPU_SLOT0 + g, .exe = w->slot_exe,
                               .cache_dir = w->cache_dir, .host = w->host,
                               .log_level = w->log_level, .has_gpu = true, .gpu = g,
                               .cuda_visible = visible, .sink = pd_worker_slot_sink(w)};
        if (!(w->gslots[g] = pd_slot_new(&sc, &code)))
            return code;
    }
    return 0;
}

/* At creation: the CPU slot processes, then the GPU ones. */
int pd_worker_start_slots(pd_worker_t *w)
{
    int code = s_grow_slots(w);
    return code ? code : s_grow_gpu_slots(w);
}

/* Stops the slots over the limits that hold no job (the top CPU ones first).
   A GPU slot's process holds its GPU's memory (the CUDA context): stopping
   it hands the GPU back to its owner. */
static void s_retire_idle_slots(pd_worker_t *w)
{
    while (w->nslots > w->cpus && !pd_slot_busy(w->slots[w->nslots - 1])) {
        pd_slot_destroy(&w->slots[w->nslots - 1]);
        w->nslots--;
        pd_log_debug("slot %d stopped (the owner lowered the slots to %d)", w->nslots, w->cpus);
    }
    for (int g = w->gpus; g < w->ngpu; g++)
        if (w->gslots[g] && !pd_slot_busy(w->gslots[g])) {
            pd_slot_destroy(&w->gslots[g]);
            pd_log_debug("GPU slot %d stopped (the owner lowered the GPUs to %d)", g, w->gpus);
        }
}

int pd_worker_set_slots(pd_worker_t *w, int cpus, int gpus, bool now, char *why, size_t whycap)
{
    if (gpus < 0)
        gpus = w->ngpu; /* every GPU the machine has */
    if (cpus < 0 || cpus > PD_WORKER_MAX_CPUS || gpus > PD_WORKER_MAX_GPUS) {
        snprintf(why, whycap, "cpus must be from 0 to %d and gpus from 0 to %d (got %d and %d)",
                 PD_WORKER_MAX_CPUS, PD_WORKER_MAX_GPUS, cpus, gpus);
        return PD_EINVAL;
    }
    if (gpus > w->ngpu) {
        snprintf(why, whycap, "this machine has %d GPU%s usable through the CUDA driver, not %d",
                 w->ngpu, w->ngpu == 1 ? "" : "s", gpus);
        return PD_EINVAL;
    }
    int old = w->cpus, oldg = w->gpus;
    w->cpus = cpus;
    w->gpus = gpus;
    size_t qmax = (size_t) cpus * 1024 + 4096;
    if (qmax > w->q[PD_WORKER_Q_CPU].max)
        w->q[PD_WORKER_Q_CPU].max = qmax;
    int rc = s_grow_slots(w);
    if (rc == 0 && (rc = s_grow_gpu_slots(w)) != 0) {
        snprintf(why, whycap, "cannot start GPU slot processes: %s", pd_strerror(rc));
        w->gpus = oldg;
        return rc;
    }
    if (rc) {
        snprintf(why, whycap, "cannot start slot processes: %s", pd_strerror(rc));
        w->cpus = w->nslots < old ? w->nslots : old;
        return rc;
    }
    /* The broker first, so that it sends nothing more into the old credit. */
    pd_worker_send_slots(w);
    if (now) {
        for (int i = w->cpus; i < w->nslots; i++)
            if (pd_slot_busy(w->slots[i]))
                pd_slot_retire(w->slots[i], false);
        for (int g = w->gpus; g < w->ngpu; g++)
            if (w->gslots[g] && pd_slot_busy(w->gslots[g]))
                pd_slot_retire(w->gslots[g], false);
    }
    else {
        /* Slots over the limit finish their running job, not what was
           sent ahead to them. */
        for (int i = w->cpus; i < w->nslots; i++)
            if (pd_slot_busy(w->slots[i]))
                pd_slot_finish(w->slots[i]);
    }
    s_retire_idle_slots(w);
    if (now || w->cpus == 0)
        pd_worker_give_back_queue(w, &w->q[PD_WORKER_Q_CPU],
                                  w->cpus == 0 ? "no slot left"
                                               : "the owner lowered the slots, --now");
    if (now || w->gpus == 0)
        pd_worker_give_back_queue(w, &w->q[PD_WORKER_Q_GPU],
                                  w->gpus == 0 ? "no GPU slot left"
                                               : "the owner lowered the GPUs, --now");
    if (cpus != old || gpus != oldg)
        pd_log_info("the owner set %d cpus and %d gpus (were %d and %d)%s", cpus, gpus, old, oldg,
                    w->nslots > cpus ? "; slots over the limit finish their jobs" : "");
    return 0;
}

/* ---- giving jobs to slots ----------------------------------------------- */

/* Sends slot s a group of at most share jobs of q (its group size, and
   PD_SLOT_GROUP_MAX_BYTES of arguments past the first). A group sent ahead
   holds at most PD_SLOT_AHEAD_MAX_BYTES, so that writing it never waits for
   a child that is busy (and may itself wait for the worker to read its
   results); none is sent when the next job alone is larger. Jobs of a
   function the slot has not measured (pd_slot_knows) go one at a time and
   never ahead: they stay in the queue, where the broker may take them back
   for an idle slot elsewhere (`steal`). */
static void s_send_group(const pd_worker_t *w, pd_worker_queue_t *q, pd_slot_t *s, size_t share,
                         bool ahead)
{
    bool known = q->len && pd_slot_knows(s, q->q[q->head]);
    if (ahead && !known)
        return;
    size_t g = known ? pd_slot_group_size(s) : 1;
    if (g > share)
        g = share;
    size_t cap = ahead ? PD_SLOT_AHEAD_MAX_BYTES : PD_SLOT_GROUP_MAX_BYTES;
    pd_job_t *group[PD_SLOT_GROUP_MAX];
    size_t k = 0, bytes = 0;
    while (k < g && q->len) {
        /* A job whose shared data is still being written waits for it. */
        if (q->q[q->head]->shared[0] && pd_worker_shared_pending(w, q->q[q->head]->shared))
            break;
        size_t next = q->q[q->head]->arg_len + (ahead ? PD_SLOT_JOB_FRAME_BYTES : 0);
        if (k > 0 ? bytes >= cap || (ahead && bytes + next > cap) : ahead && next > cap)
            break;
        if (k > 0 && !pd_slot_knows(s, q->q[q->head]))
            break; /* a function measured by none of this group */
        group[k] = pd_worker_q_pop(q);
        bytes += next;
        k++;
    }
    if (k)
        pd_slot_send(s, group, k);
}

/* Gives the jobs of queue q to the idle slots among slots[0 .. n), a group
   each, spreading them evenly (NULL entries are skipped), so that at most
   `allowed` of the slots are busy; then, with ahead_ok, the next group to
   busy slots that can take one (pd_slot_can_take). */
static void s_dispatch_queue(const pd_worker_t *w, pd_worker_queue_t *q, pd_slot_t **slots, int n,
                             size_t allowed, bool ahead_ok)
{
    size_t idle = 0, busy = 0;
    for (int i = 0; i < n; i++) {
        idle += slots[i] && pd_slot_idle(slots[i]);
        busy += slots[i] && pd_slot_busy(slots[i]);
    }
    /* At most `allowed` of them run jobs at once. */
    idle = busy >= allowed ? 0 : (idle < allowed - busy ? idle : allowed - busy);
    for (int i = 0; i < n && q->len && idle; i++) {
        pd_slot_t *s = slots[i];
        if (!s || !pd_slot_idle(s))
            continue;
        s_send_group(w, q, s, (q->len + idle - 1) / idle, false);
        idle--;
    }
    /* Then a group ahead to each busy slot about to finish its last job,
       so that it never waits for the worker between two groups. */
    size_t ahead = 0;
    for (int i = 0; i < n && ahead_ok && busy <= allowed; i++)
        ahead += slots[i] && !pd_slot_idle(slots[i]) && pd_slot_can_take(slots[i]);
    for (int i = 0; i < n && q->len && ahead; i++) {
        pd_slot_t *s = slots[i];
        if (!s || pd_slot_idle(s) || !pd_slot_can_take(s))
            continue;
        s_send_group(w, q, s, (q->len + ahead - 1) / ahead, true);
        ahead--;
    }
}

/* Slots whose process failed to start PD_SLOT_START_TRIES times in a row
   are withdrawn: the broker hears the new count at once (`slots`, before
   s_dispatch hands back jobs they cannot run), and again when a slot's
   process starts after all. Each slot logs its own failures. */
static void s_follow_slot_starts(pd_worker_t *w)
{
    int cpus = pd_worker_cpus_up(w), gpus = pd_worker_gpus_up(w);
    int down_cpus = w->cpus - cpus, down_gpus = w->gpus - gpus;
    if (down_cpus == w->down_cpus && down_gpus == w->down_gpus)
        return;
    int down = down_cpus + down_gpus;
    /* Fewer withdrawn slots: one came back (it logged so), or the owner
       lowered the slots (pd_worker_set_slots logged it). */
    if (down > w->down_cpus + w->down_gpus)
        pd_log_error("%d slot%s cannot start %s process (see above): offering %d of %d cpus and "
                     "%d of %d gpus", down, down == 1 ? "" : "s", down == 1 ? "its" : "their", cpus,
                     w->cpus, gpus, w->gpus);
    w->down_cpus = down_cpus;
    w->down_gpus = down_gpus;
    pd_worker_send_slots(w);
}

/* Gives queued jobs to idle slots under the owner's limits: CPU jobs to CPU
   slots, GPU jobs to GPU slots. While the owner uses the machine nothing
   starts: jobs that arrive then go back to the broker, as do GPU jobs when
   the owner allows no GPU. */
static void s_dispatch(pd_worker_t *w)
{
    if (w->owner_active) {
        pd_worker_give_back(w, "the machine's owner is active");
        return;
    }
    /* No slot that can run them: the jobs go back to run elsewhere. */
    if (w->gpus == 0)
        pd_worker_give_back_queue(w, &w->q[PD_WORKER_Q_GPU], "no GPU slot left");
    else if (pd_worker_gpus_up(w) == 0)
        pd_worker_give_back_queue(w, &w->q[PD_WORKER_Q_GPU], "no GPU slot process can start");
    if (w->cpus > 0 && pd_worker_cpus_up(w) == 0)
        pd_worker_give_back_queue(w, &w->q[PD_WORKER_Q_CPU], "no slot process can start");
    /* Running nodes of synchronous tasks take CPUs: jobs get the rest. */
    size_t cpu_jobs = w->cpus > w->nnodes ? (size_t) (w->cpus - w->nnodes) : 0;
    s_dispatch_queue(w, &w->q[PD_WORKER_Q_CPU], w->slots, w->cpus < w->nslots ? w->cpus : w->nslots,
                     cpu_jobs, true);
    /* None sent ahead on GPUs: a GPU a task's node may claim is either free
       or running one job. */
    s_dispatch_queue(w, &w->q[PD_WORKER_Q_GPU], w->gslots, w->gpus, (size_t) w->gpus, false);
}

/* The loop's upkeep, in this order: the broker hears of withdrawn slots
   before s_dispatch hands back the jobs they cannot run. */
void pd_worker_tend_slots(pd_worker_t *w)
{
    s_retire_idle_slots(w);
    s_follow_slot_starts(w);
    s_dispatch(w);
}
