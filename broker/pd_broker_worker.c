/*  pd_broker_worker: the broker's side of "Worker <-> broker" in
    docs/protocol.md: registration (ready/welcome), heartbeats and liveness,
    slot changes, results (done), departures (bye), and the scheduler that
    sends queued jobs as `run` chunks to workers with credit.

    Results are accepted only from the worker currently running that attempt
    of the job; anything else (a worker declared dead, an old attempt, a
    cancelled job) is dropped and counted, so no result is delivered twice.
    A lost worker's jobs go back to the front of the queue; each loss counts
    toward the job's retries.

    With CurveZMQ a worker is bound to the key it registered with: a message
    on its routing id from another key is refused, and when the allow-list
    stops admitting that key as a worker the worker is forgotten. Every job
    sent in `run` names the key of the client that submitted it, so the
    worker's owner can choose whose code runs there (docs/worker.md).
*/
#include "pd_build.h"
#include "pd_broker_int.h"
#include "pd_proto.h"
#include "pd_error.h"
#include "pd_log.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_SLOTS 65536u /* cpus or gpus one worker may offer */
#define S_PLAN_ROUNDS 3 /* plans per dispatch at most (after failed sends) */
#define S_MAX_GPU_INFO 1024u /* GPUs one worker may describe */

bool pd_broker_is_worker_type(const pd_msg_t *m)
{
    return pd_msg_is(m, "ready") || pd_msg_is(m, "hb") || pd_msg_is(m, "slots") ||
           pd_msg_is(m, "requeue") || pd_msg_is(m, "done") || pd_msg_is(m, "bye") ||
           pd_msg_is(m, "node_bound") || pd_msg_is(m, "node_ready") || pd_msg_is(m, "node_done") ||
           pd_msg_is(m, "node_progress");
}

/* Sends a message without fields (reset) or with none set (the broker's
   hb): the struct m, zeroed, of d's type. */
static int s_send_simple(pd_broker_t *b, const void *rid, size_t ridlen, const pd_proto_msg_t *d,
                         const void *m)
{
    pd_buf_reset(pd_broker_aux(b));
    msgpack_packer pk;
    pd_packer_init(&pk, pd_broker_aux(b));
    pd_proto_encode(&pk, d, m);
    int rc = pd_broker_send(b, rid, ridlen, pd_broker_aux(b)->data, pd_broker_aux(b)->len);
    pd_buf_reset(pd_broker_aux(b));
    return rc;
}

/* Forgets a worker: a departure (bye), a re-registration, or a loss. */
static void s_worker_gone(pd_broker_t *b, pd_wrec_t *wk, bool lost, const char *why)
{
    char label[160];
    pd_wrec_label(wk, label, sizeof label);
    pd_broker_tasks_worker_gone(b, wk, why);
    uint32_t requeued;
    uint32_t failed = pd_wrec_release_jobs(wk, pd_broker_jobs(b), lost, &requeued);
    if (lost) {
        pd_broker_counters(b)->workers_lost++;
        pd_log_info("worker %s lost (%s): %u jobs requeued, %u failed after their last "
                    "attempt", label, why, requeued, failed);
    } else {
        pd_log_info("worker %s left (%s): %u jobs requeued", label, why, requeued);
    }
    pd_reg_remove(pd_broker_workers(b), &wk);
}

/* ---- ready, slots ------------------------------------------------------ */

/* The slots a worker offers (in `ready` and `slots`), within their bound. */
static int s_check_slots(const pd_msg_t *m, pd_origin_t *o, uint64_t cpus, uint64_t gpus)
{
    if (cpus > S_MAX_SLOTS || gpus > S_MAX_SLOTS) {
        snprintf(o->why, sizeof o->why, "%s: at most %u cpus and gpus per worker", m->type,
                 S_MAX_SLOTS);
        return PD_EINVAL;
    }
    return 0;
}

/* Reads the optional `gpu_info` of a ready: an array of at most
   S_MAX_GPU_INFO maps {name, mem, cc_major, cc_minor} (unknown keys
   ignored), one per GPU the worker can offer, the offered ones first.
   Allocates *out (the caller frees) and sets *n. */
static int s_read_gpu_info(const pd_m_ready_t *q, pd_origin_t *o, pd_gpu_desc_t **out,
                           uint32_t *n)
{
    *out = NULL;
    *n = 0;
    if (!q->has_gpu_info)
        return 0;
    pd_rd_t r;
    uint32_t count;
    pd_rd_init(&r, q->gpu_info.p, q->gpu_info.len);
    if (pd_rd_array(&r, &count) || count > S_MAX_GPU_INFO) {
        snprintf(o->why, sizeof o->why, "ready: 'gpu_info' must be an array of at most %u maps "
                 "{name, mem, cc_major, cc_minor}", S_MAX_GPU_INFO);
        return PD_EPROTO;
    }
    pd_gpu_desc_t *d = calloc(count ? count : 1, sizeof *d);
    if (!d) {
        snprintf(o->why, sizeof o->why, "the broker is out of memory");
        return PD_ENOMEM;
    }
    for (uint32_t i = 0; i < count; i++) {
        uint32_t nf;
        int bad = pd_rd_map(&r, &nf);
        for (uint32_t f = 0; f < nf && !bad; f++) {
            uint64_t v = 0;
            if (pd_rd_key_is(&r, "name")) {
                const char *s;
                uint32_t len;
                bad = pd_rd_str(&r, &s, &len);
                if (!bad) /* a long name is cut, not refused */
                    snprintf(d[i].name, sizeof d[i].name, "%.*s", (int) len, s);
            } else if (pd_rd_key_is(&r, "mem")) {
                bad = pd_rd_uint(&r, &d[i].mem);
            } else if (pd_rd_key_is(&r, "cc_major")) {
                bad = pd_rd_uint(&r, &v) || v > 255;
                d[i].cc_major = (uint8_t) v;
            } else if (pd_rd_key_is(&r, "cc_minor")) {
                bad = pd_rd_uint(&r, &v) || v > 255;
                d[i].cc_minor = (uint8_t) v;
            } else {
                bad = pd_rd_skip(&r, NULL, NULL) || pd_rd_skip(&r, NULL, NULL);
            }
        }
        if (bad) {
            free(d);
            snprintf(o->why, sizeof o->why, "ready: gpu_info[%u] is not a map {name: str, mem: "
                     "uint, cc_major: uint, cc_minor: uint}", i);
            return PD_EPROTO;
        }
    }
    *out = d;
    *n = count;
    return 0;
}

/* Applies the optional state fields of a decoded hb (or of a ready, copied
   into one); the fields absent keep what st holds. */
static void s_apply_state(pd_wrec_state_t *st, const pd_m_hb_t *h)
{
    st->busy = h->has_busy ? h->busy : st->busy;
    st->queued = h->has_queued ? h->queued : st->queued;
    st->load = h->has_load ? h->load : st->load;
    if (h->has_owner)
        snprintf(st->owner, sizeof st->owner, "%s", h->owner);
}

/* Reads `gpu_names`, an optional array of strings, into names. */
static int s_read_gpu_names(const pd_msg_t *m, const pd_m_ready_t *q, pd_origin_t *o,
                            char names[PD_WORKERS_MAX_GPU_NAMES][64], uint32_t *n)
{
    *n = 0;
    if (!q->has_gpu_names)
        return 0;
    pd_rd_t r;
    uint32_t count;
    pd_rd_init(&r, q->gpu_names.p, q->gpu_names.len);
    if (pd_rd_array(&r, &count)) {
        snprintf(o->why, sizeof o->why, "%s: 'gpu_names' must be an array of strings", m->type);
        return PD_EPROTO;
    }
    for (uint32_t i = 0; i < count; i++) {
        const char *s;
        uint32_t len;
        if (pd_rd_str(&r, &s, &len)) {
            snprintf(o->why, sizeof o->why, "%s: 'gpu_names' must be an array of strings",
                     m->type);
            return PD_EPROTO;
        }
        if (*n < PD_WORKERS_MAX_GPU_NAMES) {
            snprintf(names[*n], 64, "%.*s", (int) (len > 63 ? 63 : len), s);
            (*n)++;
        }
    }
    return 0;
}

/* The sentence of a ready the codec refused; a pilot job's Slurm ids
   (kept for the cluster view) say their bound. Returns rc. */
static int s_ready_refused(const pd_msg_t *m, pd_origin_t *o, int rc)
{
    const pd_wrec_t *wk = NULL; /* for the sizes only */
    if (strstr(m->why, "'slurm_"))
        snprintf(o->why, sizeof o->why, "%s (Slurm ids are strings of at most %zu bytes)",
                 m->why, sizeof wk->slurm_array - 1);
    else
        snprintf(o->why, sizeof o->why, "%s", m->why);
    return rc;
}

/* Logs that wk joined: who, its Slurm job when a pilot, its slots and GPUs. */
static void s_say_joined(pd_broker_t *b, const pd_wrec_t *wk)
{
    char label[160];
    char pilot[160] = "";
    if (wk->slurm_array[0])
        snprintf(pilot, sizeof pilot, ", Slurm job %s (id %s) step %s", wk->slurm_array,
                 wk->slurm_job, wk->slurm_step[0] ? wk->slurm_step : "?");
    else if (wk->slurm_job[0])
        snprintf(pilot, sizeof pilot, ", Slurm job %s step %s", wk->slurm_job,
                 wk->slurm_step[0] ? wk->slurm_step : "?");
    pd_log_info("worker %s (pid %lld%s) joined with %u cpus and %u gpus; %u workers, %llu slots",
                pd_wrec_label(wk, label, sizeof label), (long long) wk->pid, pilot, wk->cpus, wk->gpus,
                pd_reg_count(pd_broker_workers(b)),
                (unsigned long long) pd_reg_slots(pd_broker_workers(b)));
    for (uint32_t i = 0; i < wk->ngpu; i++) {
        double gib = (double) wk->gpu[i].mem / (1024.0 * 1024.0 * 1024.0);
        pd_log_info("worker %s GPU %u: %s, %.1f GiB, compute capability %u.%u", label, i,
                    wk->gpu[i].name[0] ? wk->gpu[i].name : "(unnamed)", gib,
                    wk->gpu[i].cc_major, wk->gpu[i].cc_minor);
    }
}

static int s_on_ready(pd_broker_t *b, pd_wrec_t *wk, pd_msg_t *m, pd_origin_t *o)
{
    pd_m_ready_t q;
    int rc = pd_m_ready_decode(m, &q);
    if (rc)
        return s_ready_refused(m, o, rc);
    if ((rc = s_check_slots(m, o, q.cpus, q.gpus)) != 0)
        return rc;
    /* Its owner's maxima for one job (absent from older workers: none). */
    pd_limits_t limits = {0};
    pd_rd_t lr;
    if (q.has_limits)
        pd_rd_init(&lr, q.limits.p, q.limits.len);
    if (q.has_limits && pd_limits_read(&lr, &limits)) {
        snprintf(o->why, sizeof o->why, "ready: 'limits' is not a map of numbers");
        return PD_EPROTO;
    }
    if (o->ridlen > PD_WORKERS_MAX_RID) {
        snprintf(o->why, sizeof o->why, "ready: routing id longer than %d bytes",
                 PD_WORKERS_MAX_RID);
        return PD_EINVAL;
    }
    char gpu_names[PD_WORKERS_MAX_GPU_NAMES][64];
    uint32_t ngpu_names;
    if ((rc = s_read_gpu_names(m, &q, o, gpu_names, &ngpu_names)))
        return rc;
    pd_wrec_state_t st = {.load = -1};
    if (wk)
        pd_wrec_state(wk, &st);
    pd_m_hb_t state = {.busy = q.busy, .has_busy = q.has_busy, .queued = q.queued,
                       .has_queued = q.has_queued, .load = q.load, .has_load = q.has_load,
                       .has_owner = q.has_owner};
    memcpy(state.owner, q.owner, sizeof state.owner);
    s_apply_state(&st, &state);
    pd_gpu_desc_t *gdesc = NULL; /* read last: the only field that allocates */
    uint32_t ngdesc = 0;
    if ((rc = s_read_gpu_info(&q, o, &gdesc, &ngdesc)))
        return rc;
    char label[160];
    if (wk && strcmp(wk->key, o->key ? o->key : "") != 0) {
        snprintf(o->why, sizeof o->why, "ready: routing id %s is registered by another key",
                 pd_wrec_label(wk, label, sizeof label));
        return PD_EREFUSED;
    }
    if (wk) {
        /* The worker lost us and came back: whatever it was running it
           dropped, so its jobs go back without counting an attempt. */
        uint32_t requeued;
        pd_wrec_release_jobs(wk, pd_broker_jobs(b), false, &requeued);
        wk->steal_at = 0; /* its answer, if any, is stale */
        pd_wrec_clear_mods(wk);
        pd_broker_tasks_worker_gone(b, wk, "registered again after losing the broker");
        pd_log_info("worker %s registered again: %u jobs requeued",
                    pd_wrec_label(wk, label, sizeof label), requeued);
    } else {
        wk = pd_reg_add(pd_broker_workers(b), o->rid, o->ridlen, pd_broker_now_ms(b));
        if (!wk) {
            snprintf(o->why, sizeof o->why, "the broker is out of memory");
            free(gdesc);
            return PD_ENOMEM;
        }
    }
    if (pd_wrec_set_gpu_desc(wk, gdesc, ngdesc))
        pd_log_warn("out of memory keeping the GPU list of a worker; its GPUs still count");
    free(gdesc);
    pd_wrec_desc_t desc = {.host = q.host, .platform = q.platform, .version = q.version,
                           .key = o->key ? o->key : "", .limits = limits,
                           .pid = (int64_t) q.pid,
                           .gpu_names = (const char (*)[64]) gpu_names,
                           .ngpu_names = ngpu_names, .slurm_job = q.slurm_job,
                           .slurm_step = q.slurm_step, .slurm_array = q.slurm_array};
    pd_wrec_describe(wk, &desc);
    pd_reg_note_platform(pd_broker_workers(b), wk);
    pd_wrec_set_state(wk, &st);
    wk->last_recv = pd_broker_now_ms(b);
    pd_reg_set_slots(pd_broker_workers(b), wk, (uint32_t) q.cpus, (uint32_t) q.gpus);
    s_say_joined(b, wk);
    pd_m_w_welcome_t wm = {.hb_ms = pd_broker_cfg(b)->hb_ms, .has_hb_ms = true,
                           .liveness = pd_broker_cfg(b)->liveness, .has_liveness = true};
    pd_buf_reset(pd_broker_aux(b));
    msgpack_packer pk;
    pd_packer_init(&pk, pd_broker_aux(b));
    pd_m_w_welcome_encode(&pk, &wm);
    pd_broker_tell(b, wk);
    return 0;
}

/* ---- done -------------------------------------------------------------- */

/* Reads one result entry [id, attempt, ok, value_or_err, us]. */
static int s_read_result(pd_rd_t *r, uint64_t *id, uint64_t *attempt, bool *ok,
                         const uint8_t **val, size_t *vlen, uint64_t *us)
{
    uint32_t five;
    if (pd_rd_array(r, &five) || five != 5 || pd_rd_uint(r, id) || pd_rd_uint(r, attempt) ||
        pd_rd_bool(r, ok) || pd_rd_skip(r, val, vlen) || pd_rd_uint(r, us))
        return PD_EPROTO;
    if (!*ok) {
        pd_rd_t e;
        pd_rd_init(&e, *val, *vlen);
        if (pd_rd_peek(&e) != PD_MP_MAP)
            return PD_EPROTO;
    }
    return 0;
}

/* Reads {code, msg, slot, value?} of a task error; absent fields get
   defaults (*value NULL when there is none). */
static void s_read_task_error(const uint8_t *val, size_t vlen, char *code, size_t codecap,
                              char *msg, size_t msgcap, int64_t *slot, const uint8_t **value,
                              size_t *value_len)
{
    snprintf(code, codecap, "PD_ETASK");
    snprintf(msg, msgcap, "the task failed without a message");
    *slot = -1;
    *value = NULL;
    *value_len = 0;
    pd_rd_t r;
    pd_rd_init(&r, val, vlen);
    uint32_t n;
    if (pd_rd_map(&r, &n))
        return;
    for (uint32_t i = 0; i < n; i++) {
        if (pd_rd_key_is(&r, "code")) {
            if (pd_rd_strcpy(&r, code, codecap) && pd_rd_skip(&r, NULL, NULL))
                return;
        } else if (pd_rd_key_is(&r, "msg")) {
            if (pd_rd_strcpy(&r, msg, msgcap) && pd_rd_skip(&r, NULL, NULL))
                return;
        } else if (pd_rd_key_is(&r, "slot")) {
            if (pd_rd_int(&r, slot) && pd_rd_skip(&r, NULL, NULL))
                return;
        } else if (pd_rd_key_is(&r, "value")) {
            if (pd_rd_skip(&r, value, value_len))
                return;
        } else if (pd_rd_skip(&r, NULL, NULL) || pd_rd_skip(&r, NULL, NULL)) {
            return;
        }
    }
}

/* The exit status in an exec job's output map {exit, ...}, or -1. */
static int64_t s_exec_exit(const uint8_t *value, size_t len)
{
    pd_rd_t r;
    pd_rd_init(&r, value, len);
    uint32_t n;
    if (!value || pd_rd_map(&r, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        int64_t v;
        if (pd_rd_key_is(&r, "exit"))
            return pd_rd_int(&r, &v) ? -1 : v;
        if (pd_rd_skip(&r, NULL, NULL) || pd_rd_skip(&r, NULL, NULL))
            return -1;
    }
    return -1;
}

/* What a job's end means for the rest of its batch. */
typedef enum {
    S_END_JOB,     /* only the job ended */
    S_END_MODULE,  /* its module cannot run its function: the batch ends */
    S_END_PROGRAM  /* an exec job's program was not found or not executable
                      before any job of the batch succeeded: the batch ends */
} s_end_t;

/* Settles the probe of the job's pair on wk's platform (pd_probes.h) and
   says what the job's end (code: 0 done, else its PD_E* code) means for
   its batch. Called before the job's final transition, while its batch is
   known. The rules (docs/broker.md, "A broken module fails once"): a
   module failure (PD_ECOMPILE, PD_ENOFUNC) of the probe, or of any job
   before one of its batch succeeded, ends the batch; so does an exec job
   whose shell exited 127 (no such program) or 126 (not executable) before
   one of its batch succeeded. */
static s_end_t s_job_ends(pd_broker_t *b, pd_wrec_t *wk, uint64_t id, const pd_jobrec_t *job,
                          int code, const uint8_t *value, size_t value_len)
{
    uint64_t first;
    uint32_t n;
    bool succeeded;
    if (pd_mods_is_builtin(pd_broker_mods(b), job->mod)) {
        int64_t exit = code == PD_ETASK ? s_exec_exit(value, value_len) : -1;
        if (exit != 127 && exit != 126)
            return S_END_JOB;
        pd_jobs_batch(job, &first, &n, &succeeded);
        return succeeded ? S_END_JOB : S_END_PROGRAM;
    }
    /* The hot path: a result with no probe out is a job's own. */
    if (!pd_probes_module_failure(code) && pd_probes_running(pd_broker_probes(b)) == 0)
        return S_END_JOB;
    pd_jobs_batch(job, &first, &n, &succeeded);
    const char *platform = pd_wrec_platform(wk);
    uint64_t probe = 0;
    pd_probes_t *probes = pd_broker_probes(b);
    bool is_probe = pd_probes_get(probes, job->mod, job->cu, job->fn, platform, &probe) ==
                        PD_PROBE_RUNNING && probe == id;
    bool broken = pd_probes_module_failure(code) && (is_probe || !succeeded);
    /* A module failure, or PD_ENOMODULE (the worker's cache, not the
       module): the next batch probes again. */
    if (broken || (is_probe && code == PD_ENOMODULE))
        pd_probes_forget(pd_broker_probes(b), job->mod, job->cu, job->fn, platform);
    else if (is_probe)
        pd_probes_proven(pd_broker_probes(b), job->mod, job->cu, job->fn, platform);
    return broken ? S_END_MODULE : S_END_JOB;
}

/* Ends the rest of the batch of job id (ids first .. first+n-1) after
   s_job_ends said so: cancels its unfinished jobs and says why in the log. */
static void s_end_batch(pd_broker_t *b, pd_wrec_t *wk, uint64_t id, s_end_t end,
                        uint64_t first, uint32_t n, const char *fn, const char *mod)
{
    uint64_t cancelled = pd_broker_cancel_range(b, first, n);
    char label[160];
    if (end == S_END_MODULE)
        pd_log_info("job %llu: module %s cannot run function %s on worker %s: the other %llu "
                    "unfinished jobs of its batch (%llu-%llu) are cancelled",
                    (unsigned long long) id, mod, fn, pd_wrec_label(wk, label, sizeof label),
                    (unsigned long long) cancelled, (unsigned long long) first,
                    (unsigned long long) (first + n - 1));
    else
        pd_log_info("job %llu: its command was not found or not executable on worker %s, "
                    "before any job of its batch succeeded: the other %llu unfinished jobs of "
                    "its batch (%llu-%llu) are cancelled", (unsigned long long) id,
                    pd_wrec_label(wk, label, sizeof label), (unsigned long long) cancelled,
                    (unsigned long long) first, (unsigned long long) (first + n - 1));
}

static int s_on_done(pd_broker_t *b, pd_wrec_t *wk, pd_msg_t *m, pd_origin_t *o)
{
    pd_m_done_t q;
    int rc = pd_m_done_decode(m, &q);
    if (rc)
        return pd_broker_refuse(m, o, rc);
    const uint8_t *raw = q.res.p;
    size_t rawlen = q.res.len;
    /* First pass: the whole message must be well-formed before anything
       changes. */
    pd_rd_t r;
    pd_rd_init(&r, raw, rawlen);
    uint32_t n;
    if (pd_rd_array(&r, &n)) {
        snprintf(o->why, sizeof o->why, "done: 'res' must be an array of results");
        return PD_EPROTO;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id, attempt, us;
        bool ok;
        const uint8_t *val;
        size_t vlen;
        if (s_read_result(&r, &id, &attempt, &ok, &val, &vlen, &us)) {
            snprintf(o->why, sizeof o->why, "done: result %u is not [id, attempt, ok, "
                     "value_or_err, us] (an error must be a map)", i);
            return PD_EPROTO;
        }
    }
    /* Second pass: apply. Accepted values are copied into the open result
       segment, which the loop seals after this message. */
    pd_rd_init(&r, raw, rawlen);
    pd_rd_array(&r, &n);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id, attempt, us;
        bool ok;
        const uint8_t *val;
        size_t vlen;
        s_read_result(&r, &id, &attempt, &ok, &val, &vlen, &us);
        pd_jobrec_t *job = pd_jobs_get(pd_broker_jobs(b), id);
        if (!job || job->state != PD_JOB_RUNNING || job->worker != wk->index ||
            job->attempt != attempt) {
            pd_broker_counters(b)->stale++;
            pd_log_debug("dropped a stale result for job %llu attempt %llu (%llu so far)",
                         (unsigned long long) id, (unsigned long long) attempt,
                         (unsigned long long) pd_broker_counters(b)->stale);
            continue;
        }
        /* GPU jobs' run times say nothing of the CPU slots' depth. */
        if (!job->gpu)
            pd_wrec_observe(wk, us);
        wk->progress_ms = pd_broker_now_ms(b);
        pd_wrec_untrack(wk, pd_broker_jobs(b), job);
        wk->done++;
        if (ok) {
            s_job_ends(b, wk, id, job, 0, NULL, 0);
            pd_jobs_set_done(pd_broker_jobs(b), id, val, (uint32_t) vlen);
            continue;
        }
        char code[64], msg[4200]; /* room for a compiler's log */
        int64_t slot;
        const uint8_t *value;
        size_t value_len;
        s_read_task_error(val, vlen, code, sizeof code, msg, sizeof msg, &slot, &value,
                          &value_len);
        uint64_t first;
        uint32_t count;
        bool succeeded;
        pd_jobs_batch(job, &first, &count, &succeeded);
        s_end_t end = s_job_ends(b, wk, id, job, pd_err_from_name(code), value, value_len);
        /* --retry-failed: its own run failed, and it may run again (never a
           module that cannot run, nor a program that is not there). */
        if (end == S_END_JOB && pd_jobs_retry_failed(pd_broker_jobs(b), id, code, wk->host)) {
            pd_log_info("job %llu failed on %s (%s: %.200s): run again (%u of %u)",
                        (unsigned long long) id, wk->host, code, msg,
                        (unsigned) job->failures, (unsigned) job->retry_failed);
            continue;
        }
        const char *fn = pd_jobs_fn_name(pd_broker_jobs(b), job->fn);
        const char *mod = pd_mods_get(pd_broker_mods(b), job->mod)->name;
        pd_jobs_set_failed_value(pd_broker_jobs(b), id, code, msg, wk->host, slot, value,
                                 value_len);
        if (end != S_END_JOB)
            s_end_batch(b, wk, id, end, first, count, fn, mod);
    }
    return 0;
}

/* ---- requeue ----------------------------------------------------------- */

/* `requeue {jobs: [[id, attempt], ...]}`: the machine's owner took slots
   back (`playdoh-worker ctl --now`, or the idle policy): those jobs go back
   to the front of the queue without counting an attempt. Entries that are
   not this worker's current attempt are stale and skipped. */
static int s_on_requeue(pd_broker_t *b, pd_wrec_t *wk, pd_msg_t *m, pd_origin_t *o)
{
    pd_m_requeue_t q;
    pd_rd_t r;
    uint32_t n = 0;
    int bad = pd_m_requeue_decode(m, &q);
    if (!bad)
        pd_rd_init(&r, q.jobs.p, q.jobs.len);
    bool stolen = q.has_stolen && q.stolen;
    if (bad || pd_rd_array(&r, &n)) {
        snprintf(o->why, sizeof o->why, "requeue: 'jobs' must be an array of [id, attempt] "
                 "(and 'stolen', when present, a bool)");
        return PD_EPROTO;
    }
    pd_rd_t check = r;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t two;
        uint64_t id, attempt;
        if (pd_rd_array(&check, &two) || two != 2 || pd_rd_uint(&check, &id) ||
            pd_rd_uint(&check, &attempt)) {
            snprintf(o->why, sizeof o->why, "requeue: entry %u is not [id, attempt]", i);
            return PD_EPROTO;
        }
    }
    uint32_t back = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t two;
        uint64_t id, attempt;
        pd_rd_array(&r, &two);
        pd_rd_uint(&r, &id);
        pd_rd_uint(&r, &attempt);
        pd_jobrec_t *job = pd_jobs_get(pd_broker_jobs(b), id);
        if (!job || job->state != PD_JOB_RUNNING || job->worker != wk->index ||
            job->attempt != attempt) {
            pd_broker_counters(b)->stale++;
            continue;
        }
        pd_wrec_untrack(wk, pd_broker_jobs(b), job);
        pd_jobs_requeue(pd_broker_jobs(b), id, false, wk->host);
        back++;
    }
    char label[160];
    if (stolen) {
        /* The answer to `steal`: the jobs it had not started. */
        wk->steal_at = 0;
        wk->stolen += back;
        pd_log_debug("worker %s gave back %u queued jobs for idle slots elsewhere",
                     pd_wrec_label(wk, label, sizeof label), back);
        return 0;
    }
    wk->requeued += back;
    pd_log_info("worker %s handed back %u jobs (its owner took slots back); requeued",
                pd_wrec_label(wk, label, sizeof label), back);
    return 0;
}

/* ---- cluster ----------------------------------------------------------- */

typedef struct {
    pd_broker_t *b;
    const pd_origin_t *o;
} s_cluster_t;

static int s_pack_workers(msgpack_packer *pk, const void *ctx)
{
    pd_broker_t *b = ((const s_cluster_t *) ctx)->b;
    msgpack_pack_array(pk, pd_reg_count(pd_broker_workers(b)));
    uint32_t packed = 0;
    for (uint32_t i = 0; i < pd_reg_span(pd_broker_workers(b)); i++) {
        pd_wrec_t *wk = pd_reg_at(pd_broker_workers(b), i);
        if (!wk)
            continue;
        pd_wrec_pack_view(wk, pk, pd_broker_now_ms(b));
        packed++;
    }
    assert(packed == pd_reg_count(pd_broker_workers(b)));
    return 0;
}

static int s_pack_owners(msgpack_packer *pk, const void *ctx)
{
    const s_cluster_t *c = ctx;
    pd_broker_pack_owners(c->b, pk, c->o);
    return 0;
}

int pd_broker_on_cluster(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    (void) m;
    s_cluster_t ctx = {b, o};
    pd_m_cluster_info_t ci = {.req = o->req,
                              .has_version = true,
                              .queued = pd_jobs_queued(pd_broker_jobs(b)),
                              .unfinished = pd_jobs_unfinished(pd_broker_jobs(b)),
                              .workers = {.pack = s_pack_workers, .ctx = &ctx},
                              .owners = {.pack = s_pack_owners, .ctx = &ctx},
                              .has_owners = true};
    snprintf(ci.version, sizeof ci.version, "%s", PD_VERSION);
    snprintf(ci.name, sizeof ci.name, "%s", pd_broker_name(b));
    snprintf(ci.cluster, sizeof ci.cluster, "%s", pd_broker_cluster(b));
    pd_buf_reset(pd_broker_out(b));
    pd_broker_reply(b, o, &pd_proto_cluster_info, &ci);
    return 0;
}

/* ---- entry ------------------------------------------------------------- */

int pd_broker_on_worker(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    pd_wrec_t *wk = pd_reg_find(pd_broker_workers(b), o->rid, o->ridlen);
    if (pd_msg_is(m, "ready"))
        return s_on_ready(b, wk, m, o);
    if (!wk) {
        /* Declared dead, or the broker restarted: the worker must drop its
           jobs and register again. A leaving worker needs no answer. */
        if (!pd_msg_is(m, "bye"))
            s_send_simple(b, o->rid, o->ridlen, &pd_proto_reset, &(pd_m_reset_t){0});
        return 0;
    }
    if (strcmp(wk->key, o->key ? o->key : "") != 0) {
        char label[160];
        snprintf(o->why, sizeof o->why, "'%s' refused: worker %s registered with another key",
                 m->type, pd_wrec_label(wk, label, sizeof label));
        return PD_EREFUSED;
    }
    wk->last_recv = pd_broker_now_ms(b);
    if (pd_msg_is(m, "hb")) {
        pd_m_hb_t h;
        int rc = pd_m_hb_decode(m, &h);
        if (rc)
            return pd_broker_refuse(m, o, rc);
        pd_wrec_state_t st;
        pd_wrec_state(wk, &st);
        s_apply_state(&st, &h);
        pd_wrec_set_state(wk, &st);
        return 0;
    }
    if (pd_msg_is(m, "requeue"))
        return s_on_requeue(b, wk, m, o);
    if (pd_msg_is(m, "done"))
        return s_on_done(b, wk, m, o);
    if (pd_msg_is(m, "node_bound") || pd_msg_is(m, "node_ready") || pd_msg_is(m, "node_done")
        || pd_msg_is(m, "node_progress"))
        return pd_broker_on_node(b, wk, m, o);
    if (pd_msg_is(m, "slots")) {
        pd_m_slots_t q;
        int rc = pd_m_slots_decode(m, &q);
        if (rc)
            return pd_broker_refuse(m, o, rc);
        if ((rc = s_check_slots(m, o, q.cpus, q.gpus)) != 0)
            return rc;
        pd_reg_set_slots(pd_broker_workers(b), wk, (uint32_t) q.cpus, (uint32_t) q.gpus);
        char label[160];
        pd_log_info("worker %s now offers %u cpus and %u gpus",
                    pd_wrec_label(wk, label, sizeof label), wk->cpus, wk->gpus);
        return 0;
    }
    /* bye */
    s_worker_gone(b, wk, false, "said bye");
    return 0;
}

/* ---- scheduling -------------------------------------------------------- */

int pd_broker_send_mod(pd_broker_t *b, pd_wrec_t *wk, uint32_t mod, const char *client)
{
    const pd_mod_t *md = pd_mods_get(pd_broker_mods(b), mod);
    pd_buf_reset(pd_broker_aux(b));
    msgpack_packer pk;
    pd_packer_init(&pk, pd_broker_aux(b));
    pd_m_mod_t r = {.has_client = true, .data = {md->data, (uint32_t) md->len}};
    snprintf(r.hash, sizeof r.hash, "%s", md->hash);
    snprintf(r.name, sizeof r.name, "%s", md->name);
    snprintf(r.kind, sizeof r.kind, "%s", md->kind);
    snprintf(r.client, sizeof r.client, "%s", client ? client : "");
    pd_m_mod_encode(&pk, &r);
    int rc = pd_broker_tell(b, wk);
    if (rc == 0)
        rc = pd_wrec_set_mod(wk, mod);
    return rc;
}

/* Sends `shr {hash, data}` for shared-data index i, once per worker. */
static int s_send_shared(pd_broker_t *b, pd_wrec_t *wk, uint32_t i)
{
    const pd_shared_blob_t *sb = pd_shared_get(pd_broker_shared(b), i);
    pd_buf_reset(pd_broker_aux(b));
    msgpack_packer pk;
    pd_packer_init(&pk, pd_broker_aux(b));
    pd_m_shr_t r = {.data = {NULL, (uint32_t) sb->len}};
    snprintf(r.hash, sizeof r.hash, "%s", sb->hash);
    pd_proto_encode_head(&pk, &pd_proto_shr, &r); /* the bytes follow, uncopied */
    pd_buf_t *aux = pd_broker_aux(b);
    int rc = aux->failed ? PD_ENOMEM
                         : pd_broker_send2(b, wk->rid, wk->ridlen, aux->data, aux->len, sb->data,
                                           sb->len);
    pd_buf_reset(pd_broker_aux(b));
    if (rc == 0) {
        char label[160];
        pd_log_debug("shared data %.12s (%zu bytes) sent to worker %s", sb->hash, sb->len,
                     pd_wrec_label(wk, label, sizeof label));
        rc = pd_wrec_set_shared(wk, i, true);
    }
    return rc;
}

void pd_broker_shared_evicted(pd_broker_t *b, uint32_t i, const char *hash)
{
    pd_log_info("shared data %.12s evicted from the store to make room", hash);
    for (uint32_t k = 0; k < pd_reg_span(pd_broker_workers(b)); k++) {
        pd_wrec_t *wk = pd_reg_at(pd_broker_workers(b), k);
        if (!wk || !pd_wrec_has_shared(wk, i))
            continue;
        pd_wrec_set_shared(wk, i, false);
        pd_m_shr_drop_t dm;
        snprintf(dm.hash, sizeof dm.hash, "%s", hash);
        pd_buf_reset(pd_broker_aux(b));
        msgpack_packer pk;
        pd_packer_init(&pk, pd_broker_aux(b));
        pd_m_shr_drop_encode(&pk, &dm);
        pd_broker_tell(b, wk);
    }
}

/* Sends what job j of a RUN needs first (module, CUDA module, shared
   data). Returns 0 or a PD_E* code; *left gets the PD_SCHED_SEND_* bits
   not sent. */
static int s_send_needs(pd_broker_t *b, pd_wrec_t *wk, const pd_jobrec_t *job,
                        const pd_sched_job_t *sj, uint8_t *left)
{
    const char *owner = pd_jobs_fn_owner(pd_broker_jobs(b), job->fn);
    int rc = 0;
    *left = sj->send;
    if ((*left & PD_SCHED_SEND_MOD) && (rc = pd_broker_send_mod(b, wk, job->mod, owner)))
        return rc;
    *left &= (uint8_t) ~PD_SCHED_SEND_MOD;
    if ((*left & PD_SCHED_SEND_CU) && (rc = pd_broker_send_mod(b, wk, job->cu - 1, owner)))
        return rc;
    *left &= (uint8_t) ~PD_SCHED_SEND_CU;
    if ((*left & PD_SCHED_SEND_SHARED) && (rc = s_send_shared(b, wk, job->shared - 1)))
        return rc;
    *left = 0;
    return 0;
}

/* Packs one job of a `run`: [id, attempt, mod, fn, timeout_ms, arg, shared
   or nil, client], then for a GPU job [gpu: true, cu or nil], then for a
   job that asks for limits [..., gpu, cu or nil, limits]. */
static void s_pack_job(pd_broker_t *b, msgpack_packer *pk, uint64_t id, const pd_jobrec_t *job,
                       uint32_t client)
{
    pd_limits_t lim = pd_jobs_fn_limits(pd_broker_jobs(b), job->fn);
    bool has_lim = !pd_limits_none(&lim);
    msgpack_pack_array(pk, has_lim ? 11 : job->gpu ? 10 : 8);
    msgpack_pack_uint64(pk, id);
    msgpack_pack_uint32(pk, job->attempt);
    pd_pack_cstr(pk, pd_mods_get(pd_broker_mods(b), job->mod)->hash);
    pd_pack_cstr(pk, pd_jobs_fn_name(pd_broker_jobs(b), job->fn));
    msgpack_pack_uint32(pk, job->timeout_ms);
    pd_pack_raw(pk, job->arg->data + job->arg_off, job->arg_len);
    if (job->shared)
        pd_pack_cstr(pk, pd_shared_get(pd_broker_shared(b), job->shared - 1)->hash);
    else
        msgpack_pack_nil(pk);
    msgpack_pack_uint32(pk, client);
    if (job->gpu || has_lim) {
        if (job->gpu)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        if (job->cu)
            pd_pack_cstr(pk, pd_mods_get(pd_broker_mods(b), job->cu - 1)->hash);
        else
            msgpack_pack_nil(pk);
    }
    if (has_lim)
        pd_limits_pack(pk, &lim);
}

/* Jobs k.. of RUN o were not sent: they go back to the queue, not counted
   as an attempt; unsent_needs: what they needed first was not sent either
   (the worker is known not to have it). */
static void s_unsend(pd_broker_t *b, pd_wrec_t *wk, const pd_sched_order_t *o, uint32_t k,
                     bool unsent_needs)
{
    for (uint32_t i = o->n; i-- > k;) {
        const pd_sched_job_t *sj = pd_sched_job(pd_broker_sched(b), o, i);
        pd_jobrec_t *job = pd_jobs_get(pd_broker_jobs(b), sj->id);
        if (unsent_needs)
            pd_sched_unsent(wk, job, sj);
        pd_wrec_untrack(wk, pd_broker_jobs(b), job);
        pd_jobs_requeue(pd_broker_jobs(b), sj->id, false, wk->host);
    }
}

/* One `run` being packed: its jobs' array goes straight into the reply
   buffer (run's pack callbacks), and what was sent is noted here. */
typedef struct {
    pd_broker_t *b;
    pd_wrec_t *wk;
    const pd_sched_order_t *o;
    const char *clients[PD_SCHED_RUN_CLIENTS]; /* each sent once: jobs name an index */
    uint32_t nclients, n;
    int rc;
} s_run_t;

/* run's `jobs`: what each job needs first, then the job, until one's needs
   could not be sent (that job and the rest go back). Always 0: the count is
   patched to those packed. */
static int s_pack_run_jobs(msgpack_packer *pk, const void *ctx)
{
    s_run_t *r = (s_run_t *) ctx;
    pd_broker_t *b = r->b;
    static const uint8_t head[5] = {0xdd, 0, 0, 0, 0};
    size_t at = pd_broker_out(b)->len;
    pd_buf_append(pd_broker_out(b), head, sizeof head);
    for (; r->n < r->o->n; r->n++) {
        const pd_sched_job_t *sj = pd_sched_job(pd_broker_sched(b), r->o, r->n);
        pd_jobrec_t *job = pd_jobs_get(pd_broker_jobs(b), sj->id);
        uint8_t left = 0;
        if (sj->send && (r->rc = s_send_needs(b, r->wk, job, sj, &left)) != 0) {
            /* What went out stays noted; this job and the rest go back. */
            s_unsend(b, r->wk, r->o, r->n + 1, true);
            pd_sched_unsent(r->wk, job, &(pd_sched_job_t){sj->id, left});
            pd_wrec_untrack(r->wk, pd_broker_jobs(b), job);
            pd_jobs_requeue(pd_broker_jobs(b), sj->id, false, r->wk->host);
            break;
        }
        const char *owner = pd_jobs_fn_owner(pd_broker_jobs(b), job->fn);
        uint32_t ci = 0;
        while (ci < r->nclients && strcmp(r->clients[ci], owner) != 0)
            ci++;
        if (ci == r->nclients)
            r->clients[r->nclients++] = owner; /* the scheduler keeps them few enough */
        s_pack_job(b, pk, sj->id, job, ci);
    }
    pd_buf_t *out = pd_broker_out(b);
    if (!out->failed) {
        out->data[at + 1] = (uint8_t) (r->n >> 24);
        out->data[at + 2] = (uint8_t) (r->n >> 16);
        out->data[at + 3] = (uint8_t) (r->n >> 8);
        out->data[at + 4] = (uint8_t) r->n;
    }
    return 0;
}

/* run's `clients`: the owners the jobs name, in the order they named them. */
static int s_pack_run_clients(msgpack_packer *pk, const void *ctx)
{
    const s_run_t *r = ctx;
    msgpack_pack_array(pk, r->nclients);
    for (uint32_t i = 0; i < r->nclients; i++)
        pd_pack_cstr(pk, r->clients[i]);
    return 0;
}

/* Carries out RUN order o: what its jobs need, then one `run`. Returns 0,
   or a PD_E* code when not all was sent (what was not is requeued). */
static int s_send_run(pd_broker_t *b, const pd_sched_order_t *o)
{
    pd_wrec_t *wk = pd_reg_at(pd_broker_workers(b), o->worker);
    if (!wk)
        return PD_EUNREACH; /* gone since the plan: its jobs went back with it */
    pd_buf_reset(pd_broker_out(b));
    msgpack_packer pk;
    pd_packer_init(&pk, pd_broker_out(b));
    s_run_t r = {.b = b, .wk = wk, .o = o};
    pd_m_run_t run = {.jobs = {.pack = s_pack_run_jobs, .ctx = &r},
                      .clients = {.pack = s_pack_run_clients, .ctx = &r},
                      .has_clients = true};
    pd_m_run_encode(&pk, &run);
    uint32_t n = r.n;
    int rc = r.rc, src = 0;
    if (n > 0 && !pd_broker_out(b)->failed)
        src = pd_broker_send(b, wk->rid, wk->ridlen, pd_broker_out(b)->data, pd_broker_out(b)->len);
    else if (n > 0)
        src = PD_ENOMEM;
    pd_buf_reset(pd_broker_out(b));
    if (src) {
        /* Not sent: the chunk goes back, not counted as an attempt. */
        pd_sched_order_t sent = *o;
        sent.n = n;
        s_unsend(b, wk, &sent, 0, false); /* their modules and data went out */
        rc = src;
    } else if (n > 0) {
        wk->last_send = pd_broker_now_ms(b);
    }
    if (rc == PD_EUNREACH)
        s_worker_gone(b, wk, true, "its connection is gone");
    return rc;
}

/* Sends `steal {n, gpu}`: give back up to n jobs of that class queued and
   not started. The answer is a `requeue` with `stolen: true`. */
static void s_send_steal(pd_broker_t *b, const pd_sched_order_t *o)
{
    pd_wrec_t *wk = pd_reg_at(pd_broker_workers(b), o->worker);
    if (!wk)
        return;
    pd_m_steal_t sm = {.n = o->n, .gpu = o->cls == PD_JOBS_GPU, .has_gpu = true};
    pd_buf_reset(pd_broker_aux(b));
    msgpack_packer pk;
    pd_packer_init(&pk, pd_broker_aux(b));
    pd_m_steal_encode(&pk, &sm);
    pd_broker_tell(b, wk);
    char label[160];
    pd_log_debug("asked worker %s for %u queued %sjobs back: slots are idle elsewhere",
                 pd_wrec_label(wk, label, sizeof label), o->n, o->cls == PD_JOBS_GPU ? "GPU " : "");
}

void pd_broker_dispatch(pd_broker_t *b)
{
    pd_sched_in_t in = {.jobs = pd_broker_jobs(b), .reg = pd_broker_workers(b),
                        .tasks = pd_broker_tasks(b), .mods = pd_broker_mods(b),
                        .probes = pd_broker_probes(b), .now_ms = pd_broker_now_ms(b),
                        .steal_ms = (int64_t) pd_broker_cfg(b)->hb_ms,
                        .run_jobs = PD_BROKER_RUN_CHUNK,
                        .run_bytes = PD_BROKER_REPLY_BYTES};
    /* An order that could not be sent gave its jobs or slots back: they
       are planned again at once, for the other workers. */
    for (int round = 0; round < S_PLAN_ROUNDS; round++) {
        uint32_t n = pd_sched_plan(pd_broker_sched(b), &in);
        bool failed = false;
        for (uint32_t i = 0; i < n; i++) {
            const pd_sched_order_t *o = pd_sched_order(pd_broker_sched(b), i);
            if (o->kind == PD_SCHED_PLACE)
                failed |= pd_broker_start_task(b, o->task) != 0;
            else if (o->kind == PD_SCHED_RUN)
                failed |= s_send_run(b, o) != 0;
            else
                s_send_steal(b, o);
        }
        if (!failed)
            break;
    }
}

void pd_broker_workers_forgive(pd_broker_t *b, int64_t ms)
{
    uint32_t n = pd_reg_forgive(pd_broker_workers(b), ms, pd_broker_now_ms(b));
    if (n)
        pd_log_warn("the broker did not run for %lld ms (stopped, suspended or overloaded): "
                    "its %u workers' silence meanwhile is not held against them",
                    (long long) ms, n);
}

void pd_broker_tick_workers(pd_broker_t *b)
{
    int64_t dead_after = (int64_t) pd_broker_cfg(b)->hb_ms * pd_broker_cfg(b)->liveness;
    for (uint32_t i = 0; i < pd_reg_span(pd_broker_workers(b)); i++) {
        pd_wrec_t *wk = pd_reg_at(pd_broker_workers(b), i);
        if (!wk)
            continue;
        int64_t silent = pd_broker_now_ms(b) - wk->last_recv;
        if (silent > dead_after) {
            char why[64];
            snprintf(why, sizeof why, "silent for %lld ms", (long long) silent);
            s_worker_gone(b, wk, true, why);
            continue;
        }
        if (pd_broker_now_ms(b) - wk->last_send >= (int64_t) pd_broker_cfg(b)->hb_ms &&
            s_send_simple(b, wk->rid, wk->ridlen, &pd_proto_hb, &(pd_m_hb_t){0}) == 0)
            wk->last_send = pd_broker_now_ms(b);
    }
}

void pd_broker_revoke_workers(pd_broker_t *b)
{
    for (uint32_t i = 0; pd_broker_zap(b) && i < pd_reg_span(pd_broker_workers(b)); i++) {
        pd_wrec_t *wk = pd_reg_at(pd_broker_workers(b), i);
        /* A worker without a key is an inproc peer: the embedded worker. */
        if (wk && wk->key[0] &&
            !pd_role_allows(pd_zap_role(pd_broker_zap(b), wk->key), PD_ROLE_WORKER))
            s_worker_gone(b, wk, false, "its key is no longer allowed as a worker");
    }
}
