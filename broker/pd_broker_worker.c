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
#include "pd_error.h"
#include "pd_log.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_SLOTS 65536u /* cpus or gpus one worker may offer */
#define S_RUN_CLIENTS 64   /* distinct client keys in one `run` at most */
#define S_MAX_GPU_INFO 1024u /* GPUs one worker may describe */

bool pd_broker_is_worker_type(const pd_msg_t *m)
{
    return pd_msg_is(m, "ready") || pd_msg_is(m, "hb") || pd_msg_is(m, "slots") ||
           pd_msg_is(m, "requeue") || pd_msg_is(m, "done") || pd_msg_is(m, "bye") ||
           pd_msg_is(m, "node_bound") || pd_msg_is(m, "node_ready") || pd_msg_is(m, "node_done") ||
           pd_msg_is(m, "node_progress");
}

/* Printable name of a worker for log lines: host and routing id. */
static const char *s_label(const pd_worker_t *wk, char *buf, size_t cap)
{
    char rid[64];
    size_t k = 0;
    for (uint32_t i = 0; i < wk->ridlen && k + 3 < sizeof rid; i++) {
        uint8_t c = wk->rid[i];
        if (c >= 0x21 && c < 0x7f)
            rid[k++] = (char) c;
        else
            k += (size_t) snprintf(rid + k, sizeof rid - k, "%02x", c);
    }
    rid[k] = 0;
    snprintf(buf, cap, "%s/%s", wk->host[0] ? wk->host : "?", rid);
    return buf;
}

static int s_send_simple(pd_broker_t *b, const void *rid, size_t ridlen, const char *type)
{
    pd_buf_reset(&b->aux);
    msgpack_packer pk;
    pd_packer_init(&pk, &b->aux);
    pd_msg_begin(&pk, type, 0);
    int rc = pd_broker_send(b, rid, ridlen, b->aux.data, b->aux.len);
    pd_buf_reset(&b->aux);
    return rc;
}

/* Puts every job in flight on wk back in the queue (lost: counts toward
   retries). Returns how many failed for good; *requeued gets the rest. */
static uint32_t s_release_jobs(pd_broker_t *b, pd_worker_t *wk, bool lost, uint32_t *requeued)
{
    uint32_t failed = 0, back = 0;
    for (uint32_t i = wk->ninflight; i-- > 0;) {
        uint64_t id = wk->inflight[i];
        if (pd_jobs_requeue(b->jobs, id, lost, wk->host))
            failed++;
        else
            back++;
    }
    wk->ninflight = 0;
    wk->ngpuinflight = 0;
    *requeued = back;
    return failed;
}

/* Forgets a worker: a departure (bye), a re-registration, or a loss. */
static void s_worker_gone(pd_broker_t *b, pd_worker_t *wk, bool lost, const char *why)
{
    char label[160];
    s_label(wk, label, sizeof label);
    pd_broker_tasks_worker_gone(b, wk, why);
    uint32_t requeued;
    uint32_t failed = s_release_jobs(b, wk, lost, &requeued);
    if (lost) {
        b->stats.workers_lost++;
        pd_log_info("worker %s lost (%s): %u jobs requeued, %u failed after their last "
                    "attempt", label, why, requeued, failed);
    } else {
        pd_log_info("worker %s left (%s): %u jobs requeued", label, why, requeued);
    }
    pd_workers_remove(b->workers, &wk);
}

/* ---- ready, slots ------------------------------------------------------ */

static int s_read_slots(pd_msg_t *m, pd_origin_t *o, uint64_t *cpus, uint64_t *gpus)
{
    int rc;
    *gpus = 0;
    if ((rc = pd_msg_uint(m, "cpus", cpus)) || (rc = pd_msg_uint_opt(m, "gpus", gpus))) {
        snprintf(o->why, sizeof o->why, "%s", m->why);
        return rc;
    }
    if (*cpus > S_MAX_SLOTS || *gpus > S_MAX_SLOTS) {
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
static int s_read_gpu_info(pd_msg_t *m, pd_origin_t *o, pd_gpu_desc_t **out, uint32_t *n)
{
    *out = NULL;
    *n = 0;
    if (!pd_msg_has(m, "gpu_info"))
        return 0;
    pd_rd_t r;
    uint32_t count;
    if (pd_msg_rd(m, "gpu_info", &r) || pd_rd_array(&r, &count) || count > S_MAX_GPU_INFO) {
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

/* The state a worker reports in `ready` and `hb` (all optional). */
typedef struct {
    uint64_t busy;   /* slots running a job */
    uint64_t queued; /* jobs in its own queue */
    double load;     /* the machine's own load (< 0: unknown) */
    char owner[16];  /* idle-policy state */
} s_state_t;

/* Reads the optional state fields; each must have its type. The fields
   absent keep what st holds. */
static int s_read_state(s_state_t *st, pd_msg_t *m, pd_origin_t *o)
{
    int rc;
    if ((rc = pd_msg_uint_opt(m, "busy", &st->busy)) ||
        (rc = pd_msg_uint_opt(m, "queued", &st->queued)) ||
        (pd_msg_has(m, "load") && (rc = pd_msg_double(m, "load", &st->load))) ||
        (pd_msg_has(m, "owner") && (rc = pd_msg_str(m, "owner", st->owner, sizeof st->owner)))) {
        snprintf(o->why, sizeof o->why, "%s", m->why);
        return rc;
    }
    return 0;
}

static void s_state_get(const pd_worker_t *wk, s_state_t *st)
{
    st->busy = wk->busy;
    st->queued = wk->wqueued;
    st->load = wk->load;
    snprintf(st->owner, sizeof st->owner, "%s", wk->owner);
}

static void s_state_set(pd_worker_t *wk, const s_state_t *st)
{
    wk->busy = st->busy > UINT32_MAX ? UINT32_MAX : (uint32_t) st->busy;
    wk->wqueued = st->queued > UINT32_MAX ? UINT32_MAX : (uint32_t) st->queued;
    wk->load = st->load;
    snprintf(wk->owner, sizeof wk->owner, "%s", st->owner);
}

/* Reads `gpu_names`, an optional array of strings, into names. */
static int s_read_gpu_names(pd_msg_t *m, pd_origin_t *o,
                            char names[PD_WORKERS_MAX_GPU_NAMES][64], uint32_t *n)
{
    *n = 0;
    if (!pd_msg_has(m, "gpu_names"))
        return 0;
    pd_rd_t r;
    uint32_t count;
    if (pd_msg_rd(m, "gpu_names", &r) || pd_rd_array(&r, &count)) {
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

static int s_on_ready(pd_broker_t *b, pd_worker_t *wk, pd_msg_t *m, pd_origin_t *o)
{
    char host[256] = "", platform[sizeof wk->platform] = "", version[sizeof wk->version] = "";
    uint64_t pid = 0, cpus, gpus;
    int rc = s_read_slots(m, o, &cpus, &gpus);
    if (rc)
        return rc;
    /* Its owner's maxima for one job (absent from older workers: none). */
    pd_limits_t limits = {0};
    pd_rd_t lr;
    if (pd_msg_has(m, "limits") && (pd_msg_rd(m, "limits", &lr) || pd_limits_read(&lr, &limits))) {
        snprintf(o->why, sizeof o->why, "ready: 'limits' is not a map of numbers");
        return PD_EPROTO;
    }
    if ((pd_msg_has(m, "host") && (rc = pd_msg_str(m, "host", host, sizeof host))) ||
        (pd_msg_has(m, "platform") &&
         (rc = pd_msg_str(m, "platform", platform, sizeof platform))) ||
        (pd_msg_has(m, "version") && (rc = pd_msg_str(m, "version", version, sizeof version))) ||
        (rc = pd_msg_uint_opt(m, "pid", &pid))) {
        snprintf(o->why, sizeof o->why, "%s", m->why);
        return rc;
    }
    /* A pilot job's Slurm ids (optional): kept for the cluster view. */
    char sjob[sizeof wk->slurm_job] = "", sstep[sizeof wk->slurm_step] = "";
    char sarray[sizeof wk->slurm_array] = "";
    if ((pd_msg_has(m, "slurm_job") && (rc = pd_msg_str(m, "slurm_job", sjob, sizeof sjob))) ||
        (pd_msg_has(m, "slurm_step") && (rc = pd_msg_str(m, "slurm_step", sstep, sizeof sstep))) ||
        (pd_msg_has(m, "slurm_array") &&
         (rc = pd_msg_str(m, "slurm_array", sarray, sizeof sarray)))) {
        snprintf(o->why, sizeof o->why, "%s (Slurm ids are strings of at most %zu bytes)",
                 m->why, sizeof sarray - 1);
        return rc;
    }
    if (o->ridlen > PD_WORKERS_MAX_RID) {
        snprintf(o->why, sizeof o->why, "ready: routing id longer than %d bytes",
                 PD_WORKERS_MAX_RID);
        return PD_EINVAL;
    }
    char gpu_names[PD_WORKERS_MAX_GPU_NAMES][64];
    uint32_t ngpu_names;
    if ((rc = s_read_gpu_names(m, o, gpu_names, &ngpu_names)))
        return rc;
    s_state_t st = {.load = -1};
    if (wk)
        s_state_get(wk, &st);
    if ((rc = s_read_state(&st, m, o)))
        return rc;
    pd_gpu_desc_t *gdesc = NULL; /* read last: the only field that allocates */
    uint32_t ngdesc = 0;
    if ((rc = s_read_gpu_info(m, o, &gdesc, &ngdesc)))
        return rc;
    char label[160];
    if (wk && strcmp(wk->key, o->key ? o->key : "") != 0) {
        snprintf(o->why, sizeof o->why, "ready: routing id %s is registered by another key",
                 s_label(wk, label, sizeof label));
        return PD_EREFUSED;
    }
    if (wk) {
        /* The worker lost us and came back: whatever it was running it
           dropped, so its jobs go back without counting an attempt. */
        uint32_t requeued;
        s_release_jobs(b, wk, false, &requeued);
        wk->steal_at = 0; /* its answer, if any, is stale */
        pd_worker_clear_mods(wk);
        pd_broker_tasks_worker_gone(b, wk, "registered again after losing the broker");
        pd_log_info("worker %s registered again: %u jobs requeued",
                    s_label(wk, label, sizeof label), requeued);
    } else {
        wk = pd_workers_add(b->workers, o->rid, o->ridlen, b->now_ms);
        if (!wk) {
            snprintf(o->why, sizeof o->why, "the broker is out of memory");
            free(gdesc);
            return PD_ENOMEM;
        }
    }
    if (pd_worker_set_gpu_desc(wk, gdesc, ngdesc))
        pd_log_warn("out of memory keeping the GPU list of a worker; its GPUs still count");
    free(gdesc);
    snprintf(wk->host, sizeof wk->host, "%s", host);
    memcpy(wk->platform, platform, sizeof platform);
    wk->limits = limits;
    memcpy(wk->version, version, sizeof version);
    pd_workers_note_platform(b->workers, wk);
    snprintf(wk->key, sizeof wk->key, "%s", o->key ? o->key : "");
    s_state_set(wk, &st);
    memcpy(wk->gpu_names, gpu_names, sizeof gpu_names);
    wk->ngpu_names = ngpu_names;
    wk->pid = (int64_t) pid;
    memcpy(wk->slurm_job, sjob, sizeof sjob);
    memcpy(wk->slurm_step, sstep, sizeof sstep);
    memcpy(wk->slurm_array, sarray, sizeof sarray);
    wk->last_recv = b->now_ms;
    pd_workers_set_slots(b->workers, wk, (uint32_t) cpus, (uint32_t) gpus);
    char pilot[160] = "";
    if (wk->slurm_array[0])
        snprintf(pilot, sizeof pilot, ", Slurm job %s (id %s) step %s", wk->slurm_array,
                 wk->slurm_job, wk->slurm_step[0] ? wk->slurm_step : "?");
    else if (wk->slurm_job[0])
        snprintf(pilot, sizeof pilot, ", Slurm job %s step %s", wk->slurm_job,
                 wk->slurm_step[0] ? wk->slurm_step : "?");
    pd_log_info("worker %s (pid %lld%s) joined with %u cpus and %u gpus; %u workers, %llu slots",
                s_label(wk, label, sizeof label), (long long) wk->pid, pilot, wk->cpus, wk->gpus,
                pd_workers_count(b->workers),
                (unsigned long long) (pd_workers_cpus(b->workers) + pd_workers_gpus(b->workers)));
    for (uint32_t i = 0; i < wk->ngpu; i++) {
        double gib = (double) wk->gpu[i].mem / (1024.0 * 1024.0 * 1024.0);
        pd_log_info("worker %s GPU %u: %s, %.1f GiB, compute capability %u.%u", label, i,
                    wk->gpu[i].name[0] ? wk->gpu[i].name : "(unnamed)", gib,
                    wk->gpu[i].cc_major, wk->gpu[i].cc_minor);
    }
    pd_buf_reset(&b->aux);
    msgpack_packer pk;
    pd_packer_init(&pk, &b->aux);
    pd_msg_begin(&pk, "welcome", 2);
    pd_pack_kv_uint(&pk, "hb_ms", b->cfg.hb_ms);
    pd_pack_kv_uint(&pk, "liveness", b->cfg.liveness);
    if (pd_broker_send(b, o->rid, o->ridlen, b->aux.data, b->aux.len) == 0)
        wk->last_send = b->now_ms;
    pd_buf_reset(&b->aux);
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
static s_end_t s_job_ends(pd_broker_t *b, pd_worker_t *wk, uint64_t id, const pd_jobrec_t *job,
                          int code, const uint8_t *value, size_t value_len)
{
    uint64_t first;
    uint32_t n;
    bool succeeded;
    if (pd_mods_is_builtin(b->mods, job->mod)) {
        int64_t exit = code == PD_ETASK ? s_exec_exit(value, value_len) : -1;
        if (exit != 127 && exit != 126)
            return S_END_JOB;
        pd_jobs_batch(job, &first, &n, &succeeded);
        return succeeded ? S_END_JOB : S_END_PROGRAM;
    }
    /* The hot path: a result with no probe out is a job's own. */
    if (!pd_probes_module_failure(code) && pd_probes_running(b->probes) == 0)
        return S_END_JOB;
    pd_jobs_batch(job, &first, &n, &succeeded);
    const char *platform = pd_worker_platform(wk);
    uint64_t probe = 0;
    bool is_probe = pd_probes_get(b->probes, job->mod, job->cu, job->fn, platform, &probe) ==
                        PD_PROBE_RUNNING && probe == id;
    bool broken = pd_probes_module_failure(code) && (is_probe || !succeeded);
    /* A module failure, or PD_ENOMODULE (the worker's cache, not the
       module): the next batch probes again. */
    if (broken || (is_probe && code == PD_ENOMODULE))
        pd_probes_forget(b->probes, job->mod, job->cu, job->fn, platform);
    else if (is_probe)
        pd_probes_proven(b->probes, job->mod, job->cu, job->fn, platform);
    return broken ? S_END_MODULE : S_END_JOB;
}

/* Ends the rest of the batch of job id (ids first .. first+n-1) after
   s_job_ends said so: cancels its unfinished jobs and says why in the log. */
static void s_end_batch(pd_broker_t *b, pd_worker_t *wk, uint64_t id, s_end_t end,
                        uint64_t first, uint32_t n, const char *fn, const char *mod)
{
    uint64_t cancelled = pd_broker_cancel_range(b, first, n);
    char label[160];
    if (end == S_END_MODULE)
        pd_log_info("job %llu: module %s cannot run function %s on worker %s: the other %llu "
                    "unfinished jobs of its batch (%llu-%llu) are cancelled",
                    (unsigned long long) id, mod, fn, s_label(wk, label, sizeof label),
                    (unsigned long long) cancelled, (unsigned long long) first,
                    (unsigned long long) (first + n - 1));
    else
        pd_log_info("job %llu: its command was not found or not executable on worker %s, "
                    "before any job of its batch succeeded: the other %llu unfinished jobs of "
                    "its batch (%llu-%llu) are cancelled", (unsigned long long) id,
                    s_label(wk, label, sizeof label), (unsigned long long) cancelled,
                    (unsigned long long) first, (unsigned long long) (first + n - 1));
}

static int s_on_done(pd_broker_t *b, pd_worker_t *wk, pd_msg_t *m, pd_origin_t *o)
{
    const uint8_t *raw;
    size_t rawlen;
    int rc = pd_msg_raw(m, "res", &raw, &rawlen);
    if (rc) {
        snprintf(o->why, sizeof o->why, "%s", m->why);
        return rc;
    }
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
        pd_jobrec_t *job = pd_jobs_get(b->jobs, id);
        if (!job || job->state != PD_JOB_RUNNING || job->worker != wk->index ||
            job->attempt != attempt) {
            b->stats.stale++;
            pd_log_debug("dropped a stale result for job %llu attempt %llu (%llu so far)",
                         (unsigned long long) id, (unsigned long long) attempt,
                         (unsigned long long) b->stats.stale);
            continue;
        }
        /* GPU jobs' run times say nothing of the CPU slots' depth. */
        if (!job->gpu)
            pd_worker_observe(wk, us);
        wk->progress_ms = b->now_ms;
        pd_worker_untrack(wk, b->jobs, job);
        wk->done++;
        if (ok) {
            s_job_ends(b, wk, id, job, 0, NULL, 0);
            pd_jobs_set_done(b->jobs, id, val, (uint32_t) vlen);
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
        if (end == S_END_JOB && pd_jobs_retry_failed(b->jobs, id, code, wk->host)) {
            pd_log_info("job %llu failed on %s (%s: %.200s): run again (%u of %u)",
                        (unsigned long long) id, wk->host, code, msg,
                        (unsigned) job->failures, (unsigned) job->retry_failed);
            continue;
        }
        const char *fn = pd_jobs_fn_name(b->jobs, job->fn);
        const char *mod = pd_mods_get(b->mods, job->mod)->name;
        pd_jobs_set_failed_value(b->jobs, id, code, msg, wk->host, slot, value, value_len);
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
static int s_on_requeue(pd_broker_t *b, pd_worker_t *wk, pd_msg_t *m, pd_origin_t *o)
{
    pd_rd_t r;
    uint32_t n;
    bool stolen = false;
    if (pd_msg_rd(m, "jobs", &r) || pd_rd_array(&r, &n) ||
        (pd_msg_has(m, "stolen") && pd_msg_bool(m, "stolen", &stolen))) {
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
        pd_jobrec_t *job = pd_jobs_get(b->jobs, id);
        if (!job || job->state != PD_JOB_RUNNING || job->worker != wk->index ||
            job->attempt != attempt) {
            b->stats.stale++;
            continue;
        }
        pd_worker_untrack(wk, b->jobs, job);
        pd_jobs_requeue(b->jobs, id, false, wk->host);
        back++;
    }
    char label[160];
    if (stolen) {
        /* The answer to `steal`: the jobs it had not started. */
        wk->steal_at = 0;
        wk->stolen += back;
        pd_log_debug("worker %s gave back %u queued jobs for idle slots elsewhere",
                     s_label(wk, label, sizeof label), back);
        return 0;
    }
    wk->requeued += back;
    pd_log_info("worker %s handed back %u jobs (its owner took slots back); requeued",
                s_label(wk, label, sizeof label), back);
    return 0;
}

/* ---- cluster ----------------------------------------------------------- */

int pd_broker_on_cluster(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    (void) m;
    msgpack_packer pk;
    pd_buf_reset(&b->out);
    pd_packer_init(&pk, &b->out);
    pd_msg_begin(&pk, "cluster", 8);
    pd_pack_kv_uint(&pk, "req", o->req);
    pd_pack_kv_str(&pk, "version", PD_VERSION);
    pd_pack_kv_str(&pk, "name", b->name);
    pd_pack_kv_str(&pk, "cluster", b->cluster);
    pd_pack_kv_uint(&pk, "queued", pd_jobs_queued(b->jobs));
    pd_pack_kv_uint(&pk, "unfinished", pd_jobs_unfinished(b->jobs));
    pd_pack_cstr(&pk, "workers");
    msgpack_pack_array(&pk, pd_workers_count(b->workers));
    uint32_t packed = 0;
    for (uint32_t i = 0; i < pd_workers_span(b->workers); i++) {
        pd_worker_t *wk = pd_workers_at(b->workers, i);
        if (!wk)
            continue;
        char rid[PD_WORKERS_MAX_RID + 1];
        snprintf(rid, sizeof rid, "%.*s", (int) wk->ridlen, (const char *) wk->rid);
        bool pilot = wk->slurm_job[0] != 0;
        msgpack_pack_map(&pk, 20 + (pilot ? 3 : 0));
        pd_pack_kv_str(&pk, "id", rid);
        pd_pack_kv_str(&pk, "host", wk->host);
        pd_pack_kv_str(&pk, "platform", wk->platform);
        pd_pack_kv_int(&pk, "pid", wk->pid);
        pd_pack_kv_uint(&pk, "cpus", wk->cpus);
        pd_pack_kv_uint(&pk, "gpus", wk->gpus);
        /* busy as last reported, but never more than the jobs it holds now */
        pd_pack_kv_uint(&pk, "busy", wk->busy < wk->ninflight ? wk->busy : wk->ninflight);
        pd_pack_kv_uint(&pk, "inflight", wk->ninflight);
        pd_pack_kv_uint(&pk, "queued", wk->wqueued);
        pd_pack_kv_uint(&pk, "done", wk->done);
        pd_pack_kv_uint(&pk, "requeued", wk->requeued);
        pd_pack_kv_uint(&pk, "nodes", wk->nodes);
        pd_pack_kv_uint(&pk, "gpu_nodes", wk->gnodes);
        pd_pack_cstr(&pk, "load");
        if (wk->load < 0)
            msgpack_pack_nil(&pk);
        else
            msgpack_pack_double(&pk, wk->load);
        pd_pack_kv_str(&pk, "owner", wk->owner);
        pd_pack_cstr(&pk, "gpu_names");
        msgpack_pack_array(&pk, wk->ngpu_names);
        for (uint32_t g = 0; g < wk->ngpu_names; g++)
            pd_pack_cstr(&pk, wk->gpu_names[g]);
        /* The GPU slots it offers now: the first `gpus` its ready described. */
        uint32_t ng = wk->ngpu < wk->gpus ? wk->ngpu : wk->gpus;
        pd_pack_cstr(&pk, "gpu_info");
        msgpack_pack_array(&pk, ng);
        for (uint32_t g = 0; g < ng; g++) {
            msgpack_pack_map(&pk, 4);
            pd_pack_kv_str(&pk, "name", wk->gpu[g].name);
            pd_pack_kv_uint(&pk, "mem", wk->gpu[g].mem);
            pd_pack_kv_uint(&pk, "cc_major", wk->gpu[g].cc_major);
            pd_pack_kv_uint(&pk, "cc_minor", wk->gpu[g].cc_minor);
        }
        pd_pack_kv_uint(&pk, "hb_ms", (uint64_t) (b->now_ms - wk->last_recv));
        pd_pack_kv_uint(&pk, "up_s", (uint64_t) ((b->now_ms - wk->joined) / 1000));
        pd_pack_kv_str(&pk, "version", wk->version);
        if (pilot) {
            pd_pack_kv_str(&pk, "slurm_job", wk->slurm_job);
            pd_pack_kv_str(&pk, "slurm_step", wk->slurm_step);
            pd_pack_kv_str(&pk, "slurm_array", wk->slurm_array);
        }
        packed++;
    }
    assert(packed == pd_workers_count(b->workers));
    pd_broker_pack_owners(b, &pk, o);
    pd_broker_send_out(b, o->rid, o->ridlen);
    return 0;
}

/* ---- entry ------------------------------------------------------------- */

int pd_broker_on_worker(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    pd_worker_t *wk = pd_workers_find(b->workers, o->rid, o->ridlen);
    if (pd_msg_is(m, "ready"))
        return s_on_ready(b, wk, m, o);
    if (!wk) {
        /* Declared dead, or the broker restarted: the worker must drop its
           jobs and register again. A leaving worker needs no answer. */
        if (!pd_msg_is(m, "bye"))
            s_send_simple(b, o->rid, o->ridlen, "reset");
        return 0;
    }
    if (strcmp(wk->key, o->key ? o->key : "") != 0) {
        char label[160];
        snprintf(o->why, sizeof o->why, "'%s' refused: worker %s registered with another key",
                 m->type, s_label(wk, label, sizeof label));
        return PD_EREFUSED;
    }
    wk->last_recv = b->now_ms;
    if (pd_msg_is(m, "hb")) {
        s_state_t st;
        s_state_get(wk, &st);
        int rc = s_read_state(&st, m, o);
        if (rc == 0)
            s_state_set(wk, &st);
        return rc;
    }
    if (pd_msg_is(m, "requeue"))
        return s_on_requeue(b, wk, m, o);
    if (pd_msg_is(m, "done"))
        return s_on_done(b, wk, m, o);
    if (pd_msg_is(m, "node_bound") || pd_msg_is(m, "node_ready") || pd_msg_is(m, "node_done")
        || pd_msg_is(m, "node_progress"))
        return pd_broker_on_node(b, wk, m, o);
    if (pd_msg_is(m, "slots")) {
        uint64_t cpus, gpus;
        int rc = s_read_slots(m, o, &cpus, &gpus);
        if (rc)
            return rc;
        pd_workers_set_slots(b->workers, wk, (uint32_t) cpus, (uint32_t) gpus);
        char label[160];
        pd_log_info("worker %s now offers %u cpus and %u gpus",
                    s_label(wk, label, sizeof label), wk->cpus, wk->gpus);
        return 0;
    }
    /* bye */
    s_worker_gone(b, wk, false, "said bye");
    return 0;
}

/* ---- scheduling -------------------------------------------------------- */

int pd_broker_send_mod(pd_broker_t *b, pd_worker_t *wk, uint32_t mod, const char *client)
{
    const pd_mod_t *md = pd_mods_get(b->mods, mod);
    pd_buf_reset(&b->aux);
    msgpack_packer pk;
    pd_packer_init(&pk, &b->aux);
    pd_msg_begin(&pk, "mod", 5);
    pd_pack_kv_str(&pk, "hash", md->hash);
    pd_pack_kv_str(&pk, "name", md->name);
    pd_pack_kv_str(&pk, "kind", md->kind);
    pd_pack_kv_str(&pk, "client", client);
    pd_pack_kv_bin(&pk, "data", md->data, md->len);
    int rc = b->aux.failed ? PD_ENOMEM
                           : pd_broker_send(b, wk->rid, wk->ridlen, b->aux.data, b->aux.len);
    pd_buf_reset(&b->aux);
    if (rc == 0)
        rc = pd_worker_set_mod(wk, mod);
    return rc;
}

/* Sends `shr {hash, data}` for shared-data index i, once per worker. */
static int s_send_shared(pd_broker_t *b, pd_worker_t *wk, uint32_t i)
{
    const pd_shared_blob_t *sb = pd_shared_get(b->shared, i);
    pd_buf_reset(&b->aux);
    msgpack_packer pk;
    pd_packer_init(&pk, &b->aux);
    pd_msg_begin(&pk, "shr", 2);
    pd_pack_kv_str(&pk, "hash", sb->hash);
    pd_pack_cstr(&pk, "data");
    msgpack_pack_bin(&pk, sb->len);
    int rc = b->aux.failed ? PD_ENOMEM
                           : pd_broker_send2(b, wk->rid, wk->ridlen, b->aux.data, b->aux.len,
                                             sb->data, sb->len);
    pd_buf_reset(&b->aux);
    if (rc == 0) {
        char label[160];
        pd_log_debug("shared data %.12s (%zu bytes) sent to worker %s", sb->hash, sb->len,
                     s_label(wk, label, sizeof label));
        rc = pd_worker_set_shared(wk, i, true);
    }
    return rc;
}

void pd_broker_shared_evicted(pd_broker_t *b, uint32_t i, const char *hash)
{
    pd_log_info("shared data %.12s evicted from the store to make room", hash);
    for (uint32_t k = 0; k < pd_workers_span(b->workers); k++) {
        pd_worker_t *wk = pd_workers_at(b->workers, k);
        if (!wk || !pd_worker_has_shared(wk, i))
            continue;
        pd_worker_set_shared(wk, i, false);
        pd_buf_reset(&b->aux);
        msgpack_packer pk;
        pd_packer_init(&pk, &b->aux);
        pd_msg_begin(&pk, "shr_drop", 1);
        pd_pack_kv_str(&pk, "hash", hash);
        if (!b->aux.failed && pd_broker_send(b, wk->rid, wk->ridlen, b->aux.data, b->aux.len) == 0)
            wk->last_send = b->now_ms;
        pd_buf_reset(&b->aux);
    }
}

/* pd_jobs_pop_if's test: can the worker (s_fits_t) run the job now? */
typedef struct {
    pd_broker_t *b;
    const pd_worker_t *wk;
    bool passed;       /* a job was passed over: for another platform, held, or asking
                          more than the worker's owner allows */
    bool proven;       /* (mod, fn) below is proven on wk's platform */
    uint32_t mod, cu, fn; /* the last pair (with its CUDA module) found proven */
} s_fits_t;

/* Where a job stands with the probe of its (module, function) on the
   worker's platform (pd_probes.h): PD_PROBE_PROVEN for built-in tasks,
   which are not probed, and PD_PROBE_NONE when a probe sent earlier no
   longer runs as one (requeued, cancelled): the job may then be the probe. */
static pd_probe_state_t s_probe_state(s_fits_t *f, const pd_jobrec_t *job)
{
    pd_broker_t *b = f->b;
    if (f->proven && f->mod == job->mod && f->cu == job->cu && f->fn == job->fn)
        return PD_PROBE_PROVEN;
    if (pd_mods_is_builtin(b->mods, job->mod))
        return PD_PROBE_PROVEN;
    const char *platform = pd_worker_platform(f->wk);
    uint64_t probe = 0;
    pd_probe_state_t st = pd_probes_get(b->probes, job->mod, job->cu, job->fn, platform, &probe);
    if (st == PD_PROBE_PROVEN) {
        f->proven = true;
        f->mod = job->mod;
        f->cu = job->cu;
        f->fn = job->fn;
    } else if (st == PD_PROBE_RUNNING) {
        const pd_jobrec_t *pj = pd_jobs_get(b->jobs, probe);
        const pd_worker_t *pw = pj && pj->state == PD_JOB_RUNNING
                                    ? pd_workers_at(b->workers, pj->worker) : NULL;
        if (!pw || pj->mod != job->mod || pj->cu != job->cu || pj->fn != job->fn ||
            strcmp(pd_worker_platform(pw), platform) != 0)
            st = PD_PROBE_NONE;
    }
    return st;
}

static bool s_fits(void *user, const pd_jobrec_t *job)
{
    s_fits_t *f = user;
    pd_limits_t lim = pd_jobs_fn_limits(f->b->jobs, job->fn);
    bool ok = pd_worker_runs(f->wk, pd_mods_get(f->b->mods, job->mod)->platform) &&
              pd_limits_fit(&lim, &f->wk->limits, NULL, 0) &&
              s_probe_state(f, job) != PD_PROBE_RUNNING;
    f->passed |= !ok;
    return ok;
}

/* A job just popped for wk: when its pair has not been proven on wk's
   platform, it becomes the probe. */
static void s_probe_popped(pd_broker_t *b, s_fits_t *f, uint64_t id, const pd_jobrec_t *job)
{
    if (s_probe_state(f, job) == PD_PROBE_PROVEN)
        return;
    const char *platform = pd_worker_platform(f->wk);
    pd_probes_start(b->probes, job->mod, job->cu, job->fn, platform, id);
    pd_log_debug("job %llu probes module %s function %s on %s: the rest of its kind waits",
                 (unsigned long long) id, pd_mods_get(b->mods, job->mod)->name,
                 pd_jobs_fn_name(b->jobs, job->fn), platform);
}

/* Sends one `run` chunk of class cls to wk. Returns the jobs sent (0:
   nothing sent); *passed tells whether jobs waiting were for another
   platform than wk's. */
static uint32_t s_send_run(pd_broker_t *b, pd_worker_t *wk, int cls, bool *passed)
{
    s_fits_t fits = {.b = b, .wk = wk};
    if (wk->ninflight == 0)
        wk->progress_ms = b->now_ms; /* idle until now: nothing is overdue */
    uint32_t want = pd_worker_credit(wk, cls);
    if (want > wk->share)
        want = wk->share;
    if (want > PD_BROKER_RUN_CHUNK)
        want = PD_BROKER_RUN_CHUNK;
    pd_buf_reset(&b->out);
    msgpack_packer pk;
    pd_packer_init(&pk, &b->out);
    pd_msg_begin(&pk, "run", 2);
    pd_pack_cstr(&pk, "jobs");
    static const uint8_t head[5] = {0xdd, 0, 0, 0, 0};
    size_t at = b->out.len;
    pd_buf_append(&b->out, head, sizeof head);
    /* The chunk's client keys, each sent once: jobs name an index. */
    const char *clients[S_RUN_CLIENTS];
    uint32_t nclients = 0;
    uint32_t n = 0;
    int rc = 0;
    while (n < want && b->out.len < PD_BROKER_REPLY_BYTES) {
        uint64_t id = pd_jobs_pop_if(b->jobs, cls, s_fits, &fits);
        if (!id)
            break;
        pd_jobrec_t *job = pd_jobs_get(b->jobs, id);
        s_probe_popped(b, &fits, id, job);
        const char *owner = pd_jobs_fn_owner(b->jobs, job->fn);
        uint32_t ci = 0;
        while (ci < nclients && strcmp(clients[ci], owner) != 0)
            ci++;
        if (ci == S_RUN_CLIENTS) {
            /* The table is full: this job waits for the next chunk. */
            pd_jobs_requeue(b->jobs, id, false, wk->host);
            break;
        }
        if ((!pd_worker_has_mod(wk, job->mod) && !pd_mods_is_builtin(b->mods, job->mod) &&
             (rc = pd_broker_send_mod(b, wk, job->mod, owner)) != 0) ||
            (job->cu && !pd_worker_has_mod(wk, job->cu - 1) &&
             (rc = pd_broker_send_mod(b, wk, job->cu - 1, owner)) != 0)) {
            pd_jobs_requeue(b->jobs, id, false, wk->host);
            break;
        }
        if (job->shared && !pd_worker_has_shared(wk, job->shared - 1) &&
            (rc = s_send_shared(b, wk, job->shared - 1)) != 0) {
            pd_jobs_requeue(b->jobs, id, false, wk->host);
            break;
        }
        if (pd_worker_track(wk, job, id)) {
            pd_jobs_requeue(b->jobs, id, false, wk->host);
            break;
        }
        /* [id, attempt, mod, fn, timeout_ms, arg, shared or nil, client],
           then for a GPU job [gpu: true, cu or nil], then for a job that
           asks for limits [..., gpu, cu or nil, limits]. */
        pd_limits_t lim = pd_jobs_fn_limits(b->jobs, job->fn);
        bool has_lim = !pd_limits_none(&lim);
        msgpack_pack_array(&pk, has_lim ? 11 : job->gpu ? 10 : 8);
        msgpack_pack_uint64(&pk, id);
        msgpack_pack_uint32(&pk, job->attempt);
        pd_pack_cstr(&pk, pd_mods_get(b->mods, job->mod)->hash);
        pd_pack_cstr(&pk, pd_jobs_fn_name(b->jobs, job->fn));
        msgpack_pack_uint32(&pk, job->timeout_ms);
        pd_pack_raw(&pk, job->arg->data + job->arg_off, job->arg_len);
        if (job->shared)
            pd_pack_cstr(&pk, pd_shared_get(b->shared, job->shared - 1)->hash);
        else
            msgpack_pack_nil(&pk);
        msgpack_pack_uint32(&pk, ci);
        if (ci == nclients)
            clients[nclients++] = owner;
        if (job->gpu || has_lim) {
            if (job->gpu)
                msgpack_pack_true(&pk);
            else
                msgpack_pack_false(&pk);
            if (job->cu)
                pd_pack_cstr(&pk, pd_mods_get(b->mods, job->cu - 1)->hash);
            else
                msgpack_pack_nil(&pk);
        }
        if (has_lim)
            pd_limits_pack(&pk, &lim);
        b->scratch[n++] = id;
    }
    pd_pack_cstr(&pk, "clients");
    msgpack_pack_array(&pk, nclients);
    for (uint32_t i = 0; i < nclients; i++)
        pd_pack_cstr(&pk, clients[i]);
    if (n > 0 && !b->out.failed) {
        b->out.data[at + 1] = (uint8_t) (n >> 24);
        b->out.data[at + 2] = (uint8_t) (n >> 16);
        b->out.data[at + 3] = (uint8_t) (n >> 8);
        b->out.data[at + 4] = (uint8_t) n;
        rc = pd_broker_send(b, wk->rid, wk->ridlen, b->out.data, b->out.len);
    } else if (n > 0) {
        rc = PD_ENOMEM;
    }
    pd_buf_reset(&b->out);
    if (n > 0 && rc) {
        /* Not sent: the chunk goes back, not counted as an attempt. */
        for (uint32_t i = n; i-- > 0;) {
            pd_jobrec_t *job = pd_jobs_get(b->jobs, b->scratch[i]);
            pd_worker_untrack(wk, b->jobs, job);
            pd_jobs_requeue(b->jobs, b->scratch[i], false, wk->host);
        }
        n = 0;
    }
    if (rc == PD_EUNREACH)
        s_worker_gone(b, wk, true, "its connection is gone");
    else if (n > 0)
        wk->last_send = b->now_ms;
    if (n > 0)
        wk->share -= n < wk->share ? n : wk->share;
    *passed = fits.passed;
    return n;
}

/* Sends queued jobs of class cls to the workers with credit, each its share
   (pd_workers_share) first, then, for what is left (jobs for a platform
   whose workers took less than their share), whole credits. */
static void s_dispatch_class(pd_broker_t *b, int cls)
{
    pd_workers_share(b->workers, cls, pd_jobs_queued_in(b->jobs, cls));
    for (int pass = 0; pass < 2; pass++) {
        /* A worker may get nothing while jobs wait for another platform:
           the others with credit are asked before giving up. */
        uint32_t idle = 0, span = pd_workers_span(b->workers);
        while (idle < span && pd_jobs_ready(b->jobs, cls)) {
            pd_worker_t *wk = pass == 0 ? pd_workers_next_with_share(b->workers, cls)
                                        : pd_workers_next_with_credit(b->workers, cls);
            bool passed = false;
            if (!wk)
                break;
            if (pass == 1)
                wk->share = pd_worker_credit(wk, cls);
            if (s_send_run(b, wk, cls, &passed))
                idle = 0;
            else if (passed)
                idle++;
            else
                break;
        }
    }
}

/* Sends `steal {n, gpu}`: give back up to n jobs of that class queued and
   not started. The answer is a `requeue` with `stolen: true`. */
static void s_send_steal(pd_broker_t *b, pd_worker_t *wk, int cls, uint32_t n)
{
    pd_buf_reset(&b->aux);
    msgpack_packer pk;
    pd_packer_init(&pk, &b->aux);
    pd_msg_begin(&pk, "steal", 2);
    pd_pack_kv_uint(&pk, "n", n);
    pd_pack_cstr(&pk, "gpu");
    if (cls == PD_JOBS_GPU)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    if (pd_broker_send(b, wk->rid, wk->ridlen, b->aux.data, b->aux.len) == 0)
        wk->last_send = b->now_ms;
    pd_buf_reset(&b->aux);
    wk->steal_at = b->now_ms; /* even unsent: asked again after a heartbeat */
    char label[160];
    pd_log_debug("asked worker %s for %u queued %sjobs back: slots are idle elsewhere",
                 s_label(wk, label, sizeof label), n, cls == PD_JOBS_GPU ? "GPU " : "");
}

/* Work stealing: nothing of class cls waits here while slots idle, so the
   jobs queued at busy workers are asked back, the most loaded first, until
   the idle slots are covered. */
static void s_steal(pd_broker_t *b, int cls)
{
    if (pd_jobs_queued_in(b->jobs, cls) > 0)
        return;
    uint32_t idle = pd_workers_idle_slots(b->workers, cls), n;
    pd_worker_t *wk;
    while (idle > 0 && (wk = pd_workers_steal_from(b->workers, cls, b->now_ms,
                                                    (int64_t) b->cfg.hb_ms, &n)) != NULL) {
        s_send_steal(b, wk, cls, n);
        idle = n >= idle ? 0 : idle - n;
    }
}

void pd_broker_dispatch(pd_broker_t *b)
{
    /* Tasks first: their nodes take slots, which lowers the jobs' credit. */
    pd_broker_place_tasks(b);
    for (int cls = 0; cls < PD_JOBS_CLASSES; cls++) {
        s_dispatch_class(b, cls);
        s_steal(b, cls);
    }
}

void pd_broker_workers_forgive(pd_broker_t *b, int64_t ms)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < pd_workers_span(b->workers); i++) {
        pd_worker_t *wk = pd_workers_at(b->workers, i);
        if (!wk)
            continue;
        wk->last_recv = wk->last_recv + ms > b->now_ms ? b->now_ms : wk->last_recv + ms;
        n++;
    }
    if (n)
        pd_log_warn("the broker did not run for %lld ms (stopped, suspended or overloaded): "
                    "its %u workers' silence meanwhile is not held against them",
                    (long long) ms, n);
}

void pd_broker_tick_workers(pd_broker_t *b)
{
    int64_t dead_after = (int64_t) b->cfg.hb_ms * b->cfg.liveness;
    for (uint32_t i = 0; i < pd_workers_span(b->workers); i++) {
        pd_worker_t *wk = pd_workers_at(b->workers, i);
        if (!wk)
            continue;
        int64_t silent = b->now_ms - wk->last_recv;
        if (silent > dead_after) {
            char why[64];
            snprintf(why, sizeof why, "silent for %lld ms", (long long) silent);
            s_worker_gone(b, wk, true, why);
            continue;
        }
        if (b->now_ms - wk->last_send >= (int64_t) b->cfg.hb_ms &&
            s_send_simple(b, wk->rid, wk->ridlen, "hb") == 0)
            wk->last_send = b->now_ms;
    }
}

void pd_broker_revoke_workers(pd_broker_t *b)
{
    for (uint32_t i = 0; b->zap && i < pd_workers_span(b->workers); i++) {
        pd_worker_t *wk = pd_workers_at(b->workers, i);
        /* A worker without a key is an inproc peer: the embedded worker. */
        if (wk && wk->key[0] && !pd_role_allows(pd_zap_role(b->zap, wk->key), PD_ROLE_WORKER))
            s_worker_gone(b, wk, false, "its key is no longer allowed as a worker");
    }
}
