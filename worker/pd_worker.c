/*  pd_worker: the worker's loop, its job queue and its side of the protocol.

    The loop (pd_worker_run) only dispatches: zmq_poll over the DEALER socket
    and the slot processes' result pipes, then messages go to s_on_msg, pipe
    data to pd_slot_on_readable, and queued jobs to idle slots (s_dispatch).
    Results collected during an iteration leave in one `done` message at its
    end (or earlier, when a batch is large), so nothing is held while idle.

    GPUs. At start the worker counts its GPUs through the CUDA driver
    (gpu/pd_cudrv.h; none when libcuda does not load) and offers them, or
    the number the owner chose, as GPU slots after its CPU slots: slot
    cpus + g runs on GPU g and its process sees only that device. GPU jobs
    (`run` entries with gpu true) wait in their own queue for GPU slots; CPU
    jobs never take a GPU slot.
*/
#include "pd_worker.h"
#include "pd_codec.h"
#include "pd_cudrv.h"
#include "pd_error.h"
#include "pd_log.h"
#include "pd_modcache.h"
#include "pd_msg.h"
#include "pd_slot.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define S_DONE_BATCH 1024           /* results per `done` message */
#define S_DONE_BYTES (8u << 20)     /* bytes per `done` message (soft) */
#define S_RECV_BURST 256            /* messages read per loop iteration */
#define S_DEFAULT_HB_MS 1000
#define S_DEFAULT_LIVENESS 3

/* A module the broker sent us (or found in the cache). */
typedef struct {
    char hash[65];  /* content hash */
    char kind[3];   /* "c", "so" or "cu" */
    char name[128]; /* name for messages */
} s_mod_t;

/* A queue of jobs (a ring), one per slot class. */
typedef struct {
    pd_job_t **q;   /* the ring, owned with its jobs */
    size_t head;    /* index of the first job */
    size_t len;     /* jobs queued */
    size_t cap;     /* ring capacity */
    size_t max;     /* bound on queued jobs */
} s_queue_t;

enum { S_CPU = 0, S_GPU = 1 };

struct pd_worker {
    char *broker;          /* broker endpoint */
    char *cache_dir;       /* module cache directory */
    char *slot_exe;        /* program exec'ed for slots */
    char *log_level;       /* slots' log level, or NULL */
    char host[256];        /* host name reported */
    char id[19];           /* routing id "w-" + 16 hex */
    int cpus;              /* CPU slots: slots 0 .. cpus-1 */
    int gpus;              /* GPU slots: slots cpus .. cpus+gpus-1 */
    int nslots;            /* cpus + gpus */
    pd_gpu_info_t gpu[PD_GPU_MAX]; /* the offered GPUs, in slot order */
    void *ctx;             /* ZeroMQ context */
    bool own_ctx;          /* ctx was created here (else borrowed from the config) */
    void *sock;            /* DEALER to the broker, owned */
    pd_modcache_t *mc;     /* module cache */
    pd_slot_t **slots;     /* nslots slot handles, owned */
    zmq_pollitem_t *items; /* poll set: socket then live slots */
    int *item_slot;        /* slot index of items[i] (i >= 1) */
    s_mod_t *mods;         /* known modules, owned */
    size_t nmods;          /* entries in mods */
    size_t capmods;        /* capacity of mods */
    s_queue_t q[2];        /* queued jobs: q[S_CPU], q[S_GPU] */
    pd_buf_t res;          /* encoded results waiting for `done` */
    size_t nres;           /* results in res */
    uint64_t *cancel;      /* sorted ids of the cancel being applied */
    size_t ncancel;        /* ids in cancel */
    int hb_ms;             /* heartbeat interval */
    int liveness;          /* silent intervals before the broker counts as lost */
    bool registered;       /* the broker welcomed us and has not gone silent */
    int64_t last_recv;     /* when anything arrived from the broker */
    int64_t last_send;     /* when we last sent anything */
    int64_t last_ready;    /* when we last sent `ready` */
    uint64_t ndone;        /* results sent, for logs */
};

/* ---- queues ------------------------------------------------------------- */

static int s_q_grow(s_queue_t *q)
{
    size_t cap = q->cap ? q->cap * 2 : 1024;
    pd_job_t **r = malloc(cap * sizeof *r);
    if (!r)
        return PD_ENOMEM;
    for (size_t i = 0; i < q->len; i++)
        r[i] = q->q[(q->head + i) % q->cap];
    free(q->q);
    q->q = r;
    q->cap = cap;
    q->head = 0;
    return 0;
}

static int s_q_push_back(s_queue_t *q, pd_job_t *job)
{
    if (q->len == q->cap && s_q_grow(q))
        return PD_ENOMEM;
    q->q[(q->head + q->len) % q->cap] = job;
    q->len++;
    return 0;
}

static int s_q_push_front(s_queue_t *q, pd_job_t *job)
{
    if (q->len == q->cap && s_q_grow(q))
        return PD_ENOMEM;
    q->head = (q->head + q->cap - 1) % q->cap;
    q->q[q->head] = job;
    q->len++;
    return 0;
}

static pd_job_t *s_q_pop(s_queue_t *q)
{
    if (!q->len)
        return NULL;
    pd_job_t *job = q->q[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    return job;
}

static void s_q_clear(s_queue_t *q)
{
    pd_job_t *job;
    while ((job = s_q_pop(q)))
        pd_job_destroy(&job);
}

/* Jobs queued in both classes. */
static size_t s_queued(const pd_worker_t *w) { return w->q[S_CPU].len + w->q[S_GPU].len; }

/* ---- sending ------------------------------------------------------------ */

static int s_send(pd_worker_t *w, pd_buf_t *b)
{
    if (b->failed) {
        pd_log_error("cannot encode a message for the broker (too large or out of memory)");
        return PD_ENOMEM;
    }
    if (zmq_send(w->sock, b->data, b->len, ZMQ_DONTWAIT) < 0) {
        /* Only when the broker has been unreachable for long: it has then
           requeued our jobs, so the message is moot. */
        pd_log_warn("cannot send to the broker (%s): message dropped", zmq_strerror(errno));
        return PD_EUNREACH;
    }
    w->last_send = pd_slot_now_ms();
    return 0;
}

static void s_send_simple(pd_worker_t *w, const char *type)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, type, 0);
    s_send(w, &b);
    pd_buf_free(&b);
}

static void s_send_ready(pd_worker_t *w)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "ready", w->gpus ? 5 : 4);
    pd_pack_kv_str(&pk, "host", w->host);
    pd_pack_kv_uint(&pk, "pid", (uint64_t) getpid());
    pd_pack_kv_uint(&pk, "cpus", (uint64_t) w->cpus);
    pd_pack_kv_uint(&pk, "gpus", (uint64_t) w->gpus);
    if (w->gpus) {
        pd_pack_cstr(&pk, "gpu_info");
        msgpack_pack_array(&pk, (uint32_t) w->gpus);
        for (int i = 0; i < w->gpus; i++) {
            msgpack_pack_map(&pk, 4);
            pd_pack_kv_str(&pk, "name", w->gpu[i].name);
            pd_pack_kv_uint(&pk, "mem", w->gpu[i].mem);
            pd_pack_kv_uint(&pk, "cc_major", (uint64_t) w->gpu[i].cc_major);
            pd_pack_kv_uint(&pk, "cc_minor", (uint64_t) w->gpu[i].cc_minor);
        }
    }
    s_send(w, &b);
    pd_buf_free(&b);
    w->last_ready = pd_slot_now_ms();
}

/* Sends the collected results as one `done` message. */
static void s_flush(pd_worker_t *w)
{
    if (!w->nres)
        return;
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "done", 1);
    pd_pack_cstr(&pk, "res");
    msgpack_pack_array(&pk, (uint32_t) w->nres);
    pd_pack_raw(&pk, w->res.data, w->res.len);
    if (s_send(w, &b) == 0)
        w->ndone += w->nres;
    pd_buf_free(&b);
    pd_buf_reset(&w->res);
    w->nres = 0;
}

/* Appends [id, attempt, ok, value_or_err, us] to the batch. */
static void s_add_result(pd_worker_t *w, uint64_t id, uint64_t attempt, bool ok,
                         const uint8_t *val, size_t len, uint64_t us)
{
    msgpack_packer pk;
    pd_packer_init(&pk, &w->res);
    size_t before = w->res.len;
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint64(&pk, id);
    msgpack_pack_uint64(&pk, attempt);
    if (ok)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    pd_pack_raw(&pk, val, len);
    msgpack_pack_uint64(&pk, us);
    if (w->res.failed) {
        /* Over the frame cap with what is already batched: send that first. */
        w->res.failed = false;
        w->res.len = before;
        if (w->nres) {
            s_flush(w);
            s_add_result(w, id, attempt, ok, val, len, us);
            return;
        }
        pd_log_error("job %llu: result too large to send; dropped (the broker will retry it)",
                     (unsigned long long) id);
        return;
    }
    w->nres++;
    if (w->nres >= S_DONE_BATCH || w->res.len >= S_DONE_BYTES)
        s_flush(w);
}

/* Reports a job that failed before reaching a slot. */
static void s_fail_job(pd_worker_t *w, uint64_t id, uint64_t attempt, int code, const char *msg)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    msgpack_pack_map(&pk, 3);
    pd_pack_kv_str(&pk, "code", pd_err_name(code));
    pd_pack_kv_str(&pk, "msg", msg);
    pd_pack_kv_int(&pk, "slot", -1);
    if (!b.failed)
        s_add_result(w, id, attempt, false, b.data, b.len, 0);
    pd_buf_free(&b);
}

/* ---- slot sink ---------------------------------------------------------- */

static void s_on_result(void *user, const pd_job_t *job, bool ok, const uint8_t *val, size_t len,
                        uint64_t us)
{
    s_add_result(user, job->id, job->attempt, ok, val, len, us);
}

static void s_on_requeue(void *user, pd_job_t *job)
{
    pd_worker_t *w = user;
    if (s_q_push_front(&w->q[job->gpu ? S_GPU : S_CPU], job)) {
        s_fail_job(w, job->id, job->attempt, PD_ENOMEM, "worker out of memory");
        pd_job_destroy(&job);
    }
}

/* ---- modules ------------------------------------------------------------ */

/* Finds a module by hash; falls back on the cache directory (a module kept
   from an earlier run). NULL when unknown. */
static const s_mod_t *s_mod_find(pd_worker_t *w, const char *hash)
{
    for (size_t i = 0; i < w->nmods; i++)
        if (strcmp(w->mods[i].hash, hash) == 0)
            return &w->mods[i];
    const char *kind = pd_modcache_has(w->mc, hash, "c")    ? "c"
                       : pd_modcache_has(w->mc, hash, "so") ? "so"
                       : pd_modcache_has(w->mc, hash, "cu") ? "cu"
                                                            : NULL;
    if (!kind)
        return NULL;
    char name[128];
    snprintf(name, sizeof name, "%.12s.%s", hash, kind);
    if (w->nmods == w->capmods) {
        size_t cap = w->capmods ? w->capmods * 2 : 16;
        s_mod_t *m = realloc(w->mods, cap * sizeof *m);
        if (!m)
            return NULL;
        w->mods = m;
        w->capmods = cap;
    }
    s_mod_t *m = &w->mods[w->nmods++];
    snprintf(m->hash, sizeof m->hash, "%s", hash);
    snprintf(m->kind, sizeof m->kind, "%s", kind);
    snprintf(m->name, sizeof m->name, "%s", name);
    return m;
}

static void s_on_mod(pd_worker_t *w, const pd_msg_t *m)
{
    char hash[80], kind[8], name[128];
    const void *data;
    uint32_t len;
    if (pd_msg_str(m, "hash", hash, sizeof hash) || pd_msg_str(m, "kind", kind, sizeof kind)
        || pd_msg_bytes(m, "data", &data, &len)) {
        pd_log_warn("broker sent a bad 'mod': %s", m->why);
        return;
    }
    if (pd_msg_str(m, "name", name, sizeof name))
        snprintf(name, sizeof name, "%.12s.%s", hash, kind);
    char why[256];
    if (pd_modcache_store(w->mc, hash, kind, data, len, why, sizeof why)) {
        pd_log_error("cannot store module %s: %s", name, why);
        return;
    }
    const s_mod_t *known = s_mod_find(w, hash);
    if (known) {
        s_mod_t *k = (s_mod_t *) known;
        snprintf(k->name, sizeof k->name, "%s", name);
        memcpy(k->kind, kind, strlen(kind) + 1); /* "c", "so" or "cu": checked by the store */
    }
    pd_log_debug("module %s (%s) stored", name, hash);
}

/* ---- jobs from the broker ----------------------------------------------- */

static void s_on_run(pd_worker_t *w, const pd_msg_t *m)
{
    pd_rd_t r;
    uint32_t n;
    if (pd_msg_rd(m, "jobs", &r) || pd_rd_array(&r, &n)) {
        pd_log_warn("broker sent a bad 'run': field 'jobs' is not an array");
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k;
        uint64_t id, attempt, timeout_ms;
        char mod[80];
        const char *fn;
        uint32_t fnlen;
        const uint8_t *arg;
        size_t alen;
        if (pd_rd_array(&r, &k) || k < 6 || pd_rd_uint(&r, &id) || pd_rd_uint(&r, &attempt)
            || pd_rd_strcpy(&r, mod, sizeof mod) || pd_rd_str(&r, &fn, &fnlen)
            || pd_rd_uint(&r, &timeout_ms) || pd_rd_skip(&r, &arg, &alen)) {
            pd_log_warn("broker sent a bad 'run': job %u is not [id, attempt, mod, fn, "
                        "timeout_ms, arg]; ignoring the rest", i);
            return;
        }
        /* A GPU job: [..., arg, gpu, cu (hash or nil)]. */
        bool gpu = false;
        char cu[80] = "";
        if (k >= 8 && (pd_rd_bool(&r, &gpu) ||
                       (pd_rd_peek(&r) == PD_MP_NIL ? pd_rd_nil(&r)
                                                    : pd_rd_strcpy(&r, cu, sizeof cu)))) {
            pd_log_warn("broker sent a bad 'run': job %u's gpu and cu are not [bool, hash or "
                        "nil]; ignoring the rest", i);
            return;
        }
        for (uint32_t extra = k >= 8 ? 8 : 6; extra < k; extra++)
            pd_rd_skip(&r, NULL, NULL); /* forward compatibility */
        const s_mod_t *mm = s_mod_find(w, mod);
        const s_mod_t *cm = cu[0] ? s_mod_find(w, cu) : NULL;
        char msg[600];
        if (!mm || (cu[0] && (!cm || strcmp(cm->kind, "cu") != 0))) {
            snprintf(msg, sizeof msg, "%smodule %.64s is not on worker %s (the broker sent no "
                     "'mod' for it)", mm ? "CUDA " : "", mm ? cu : mod, w->host);
            s_fail_job(w, id, attempt, PD_ENOMODULE, msg);
            continue;
        }
        if (gpu && w->gpus == 0) {
            snprintf(msg, sizeof msg, "worker %s offers no GPU slot, yet the broker sent it a "
                     "GPU job", w->host);
            s_fail_job(w, id, attempt, PD_ENOGPU, msg);
            continue;
        }
        s_queue_t *q = &w->q[gpu ? S_GPU : S_CPU];
        if (fnlen == 0 || fnlen >= sizeof ((pd_job_t *) 0)->fn) {
            snprintf(msg, sizeof msg, "module %s has no function '%.*s' (check the name passed "
                     "to map)", mm->name, (int) (fnlen > 64 ? 64 : fnlen), fn);
            s_fail_job(w, id, attempt, PD_ENOFUNC, msg);
            continue;
        }
        if (q->len >= q->max) {
            snprintf(msg, sizeof msg, "worker %s holds %zu queued %s jobs, more than the "
                     "broker's credit allows; job refused", w->host, q->len, gpu ? "GPU" : "CPU");
            s_fail_job(w, id, attempt, PD_EOVERLOAD, msg);
            continue;
        }
        pd_job_t *job = pd_job_new(arg, alen);
        if (!job || s_q_push_back(q, job)) {
            pd_job_destroy(&job);
            s_fail_job(w, id, attempt, PD_ENOMEM, "worker out of memory");
            continue;
        }
        job->id = id;
        job->attempt = attempt;
        job->timeout_ms = timeout_ms;
        memcpy(job->mod, mm->hash, sizeof job->mod);
        memcpy(job->kind, mm->kind, sizeof job->kind);
        memcpy(job->name, mm->name, sizeof job->name);
        memcpy(job->fn, fn, fnlen);
        job->fn[fnlen] = 0;
        job->gpu = gpu;
        if (cm) {
            memcpy(job->cu, cm->hash, sizeof job->cu);
            memcpy(job->cu_name, cm->name, sizeof job->cu_name);
        }
    }
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

static bool s_is_cancelled(void *user, uint64_t id)
{
    pd_worker_t *w = user;
    return w->ncancel && bsearch(&id, w->cancel, w->ncancel, sizeof id, s_cmp_u64);
}

static void s_on_cancel(pd_worker_t *w, const pd_msg_t *m)
{
    pd_rd_t r;
    uint32_t n;
    if (pd_msg_rd(m, "ids", &r) || pd_rd_array(&r, &n)) {
        pd_log_warn("broker sent a bad 'cancel': field 'ids' is not an array");
        return;
    }
    uint64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids)
        return;
    size_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (pd_rd_uint(&r, &ids[k]) == 0)
            k++;
        else
            pd_rd_skip(&r, NULL, NULL);
    qsort(ids, k, sizeof *ids, s_cmp_u64);
    w->cancel = ids;
    w->ncancel = k;
    size_t dropped = 0;
    for (int c = 0; c < 2; c++) {
        s_queue_t *q = &w->q[c];
        size_t kept = 0;
        for (size_t i = 0; i < q->len; i++) {
            pd_job_t *job = q->q[(q->head + i) % q->cap];
            if (s_is_cancelled(w, job->id)) {
                pd_job_destroy(&job);
                dropped++;
            } else {
                q->q[(q->head + kept++) % q->cap] = job;
            }
        }
        q->len = kept;
    }
    for (int i = 0; i < w->nslots; i++)
        dropped += pd_slot_cancel(w->slots[i], s_is_cancelled, w);
    w->cancel = NULL;
    w->ncancel = 0;
    free(ids);
    pd_log_debug("cancel: %zu of %u jobs were here", dropped, n);
}

/* The broker does not know us: drop every job and register again. */
static void s_reset(pd_worker_t *w)
{
    size_t running = 0;
    for (int i = 0; i < w->nslots; i++) {
        running += !pd_slot_idle(w->slots[i]) && pd_slot_fd(w->slots[i]) >= 0;
        pd_slot_abort(w->slots[i]);
    }
    pd_log_warn("broker reset this worker: dropping %zu queued and %zu running jobs, "
                "registering again", s_queued(w), running);
    s_q_clear(&w->q[S_CPU]);
    s_q_clear(&w->q[S_GPU]);
    pd_buf_reset(&w->res);
    w->nres = 0;
    w->registered = false;
    s_send_ready(w);
}

static void s_on_welcome(pd_worker_t *w, const pd_msg_t *m)
{
    uint64_t hb = (uint64_t) w->hb_ms, live = (uint64_t) w->liveness;
    if (pd_msg_uint_opt(m, "hb_ms", &hb) || pd_msg_uint_opt(m, "liveness", &live))
        pd_log_warn("broker sent a bad 'welcome': %s", m->why);
    if (hb >= 10 && hb <= 600000)
        w->hb_ms = (int) hb;
    if (live >= 1 && live <= 1000)
        w->liveness = (int) live;
    if (!w->registered)
        pd_log_info("registered with broker %s as %s (%d cpus, %d gpus; heartbeat %d ms x %d)",
                    w->broker, w->id, w->cpus, w->gpus, w->hb_ms, w->liveness);
    w->registered = true;
}

static void s_on_msg(pd_worker_t *w, const void *data, size_t len)
{
    pd_msg_t m;
    if (pd_msg_parse(&m, data, len)) {
        pd_log_warn("unreadable message from the broker: %s", m.why);
        return;
    }
    w->last_recv = pd_slot_now_ms();
    if (pd_msg_is(&m, "hb"))
        return;
    if (pd_msg_is(&m, "run"))
        s_on_run(w, &m);
    else if (pd_msg_is(&m, "mod"))
        s_on_mod(w, &m);
    else if (pd_msg_is(&m, "welcome"))
        s_on_welcome(w, &m);
    else if (pd_msg_is(&m, "cancel"))
        s_on_cancel(w, &m);
    else if (pd_msg_is(&m, "reset"))
        s_reset(w);
    else if (pd_msg_is(&m, "error")) {
        char msg[256] = "";
        pd_msg_str(&m, "msg", msg, sizeof msg);
        pd_log_warn("broker reports an error: %s", msg);
    } else
        pd_log_warn("broker sent a message of unknown type '%s'; ignored", m.type);
}

/* ---- the loop ----------------------------------------------------------- */

/* Gives the jobs of queue q to the idle slots first .. first+n-1, a group
   each, spreading them evenly. */
static void s_dispatch_class(pd_worker_t *w, s_queue_t *q, int first, int n)
{
    size_t idle = 0;
    for (int i = first; i < first + n; i++)
        idle += pd_slot_idle(w->slots[i]);
    for (int i = first; i < first + n && q->len && idle; i++) {
        pd_slot_t *s = w->slots[i];
        if (!pd_slot_idle(s))
            continue;
        size_t g = pd_slot_group_size(s);
        size_t share = (q->len + idle - 1) / idle;
        if (g > share)
            g = share;
        pd_job_t *group[PD_SLOT_GROUP_MAX];
        size_t k = 0, bytes = 0;
        while (k < g && q->len && (k == 0 || bytes < PD_SLOT_GROUP_MAX_BYTES)) {
            group[k] = s_q_pop(q);
            bytes += group[k]->arg_len;
            k++;
        }
        pd_slot_send(s, group, k);
        idle--;
    }
}

/* CPU jobs to CPU slots, GPU jobs to GPU slots. */
static void s_dispatch(pd_worker_t *w)
{
    s_dispatch_class(w, &w->q[S_CPU], 0, w->cpus);
    s_dispatch_class(w, &w->q[S_GPU], w->cpus, w->gpus);
}

/* Heartbeat, liveness and re-registration. */
static void s_keepalive(pd_worker_t *w, int64_t now)
{
    int64_t silence = (int64_t) w->hb_ms * w->liveness;
    if (w->registered && now - w->last_recv > silence) {
        pd_log_warn("broker %s silent for %lld ms: registering again when it answers",
                    w->broker, (long long) (now - w->last_recv));
        w->registered = false;
        s_send_ready(w);
    } else if (!w->registered && now - w->last_ready >= silence) {
        s_send_ready(w);
    }
    if (now - w->last_send >= w->hb_ms)
        s_send_simple(w, "hb");
}

static int s_poll_timeout(pd_worker_t *w, int64_t now)
{
    int64_t next = w->last_send + w->hb_ms;
    int64_t silence = (int64_t) w->hb_ms * w->liveness;
    int64_t live = w->registered ? w->last_recv + silence + 1 : w->last_ready + silence;
    if (live < next)
        next = live;
    for (int i = 0; i < w->nslots; i++) {
        int64_t d = pd_slot_deadline(w->slots[i]);
        if (d < next)
            next = d;
    }
    int64_t t = next - now;
    return t < 0 ? 0 : t > w->hb_ms ? w->hb_ms : (int) t;
}

int pd_worker_run(pd_worker_t *w, volatile sig_atomic_t *stop)
{
    int rc = 0;
    while (!*stop) {
        int64_t now = pd_slot_now_ms();
        int nitems = 1;
        for (int i = 0; i < w->nslots; i++) {
            int fd = pd_slot_fd(w->slots[i]);
            if (fd < 0)
                continue;
            w->items[nitems] = (zmq_pollitem_t){.socket = NULL, .fd = fd, .events = ZMQ_POLLIN};
            w->item_slot[nitems] = i;
            nitems++;
        }
        int n = zmq_poll(w->items, nitems, s_poll_timeout(w, now));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            pd_log_error("zmq_poll failed: %s", zmq_strerror(errno));
            rc = PD_ESYS;
            break;
        }
        if (w->items[0].revents & ZMQ_POLLIN) {
            zmq_msg_t msg;
            zmq_msg_init(&msg);
            for (int k = 0; k < S_RECV_BURST && zmq_msg_recv(&msg, w->sock, ZMQ_DONTWAIT) >= 0; k++)
                s_on_msg(w, zmq_msg_data(&msg), zmq_msg_size(&msg));
            zmq_msg_close(&msg);
        }
        for (int i = 1; i < nitems; i++)
            if (w->items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR))
                pd_slot_on_readable(w->slots[w->item_slot[i]]);
        now = pd_slot_now_ms();
        for (int i = 0; i < w->nslots; i++)
            if (pd_slot_deadline(w->slots[i]) <= now)
                pd_slot_tick(w->slots[i]);
        s_dispatch(w);
        s_flush(w);
        s_keepalive(w, pd_slot_now_ms());
    }
    s_flush(w);
    s_send_simple(w, "bye");
    pd_log_info("leaving broker %s after %llu results", w->broker, (unsigned long long) w->ndone);
    return rc;
}

/* ---- construction ------------------------------------------------------- */

/* Decides the GPU slots: asked < 0 offers every GPU the driver shows, else
   exactly `asked` (0 skips the driver). Returns 0, or PD_EINVAL (logged)
   when more are asked than the machine has. */
static int s_offer_gpus(pd_worker_t *w, int asked)
{
    w->gpus = 0;
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
    w->gpus = asked < 0 ? found : asked;
    for (int g = 0; g < found; g++) {
        char mem[32];
        pd_log_info("GPU %d: %s, %s, compute capability %d.%d%s", g, w->gpu[g].name,
                    pd_gpu_mem_str(w->gpu[g].mem, mem, sizeof mem), w->gpu[g].cc_major,
                    w->gpu[g].cc_minor, g < w->gpus ? "" : " (not offered: --gpus)");
    }
    return 0;
}

/* The CUDA_VISIBLE_DEVICES value that shows GPU slot g its device: the
   g-th entry of the worker's own CUDA_VISIBLE_DEVICES when it has one (the
   driver numbered the devices within that list: under Slurm, say), else g. */
static void s_visible_for(int g, char *out, size_t cap)
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

pd_worker_t *pd_worker_new(const pd_worker_config_t *cfg, int *err)
{
    assert(cfg);
    int code = PD_EINVAL;
    pd_worker_t *w = NULL;
    if (!cfg->broker || !*cfg->broker || !cfg->cache_dir || !*cfg->cache_dir) {
        pd_log_error("a broker endpoint and a cache directory are required");
        goto fail;
    }
    if (cfg->cpus < 1 || cfg->cpus > 4096 || cfg->gpus < -1 || cfg->gpus > PD_GPU_MAX) {
        pd_log_error("--cpus must be between 1 and 4096 and --gpus between 0 and %d (got %d "
                     "and %d)", PD_GPU_MAX, cfg->cpus, cfg->gpus);
        goto fail;
    }
    code = PD_ENOMEM;
    if (!(w = calloc(1, sizeof *w)))
        goto fail;
    code = PD_EINVAL;
    if (s_offer_gpus(w, cfg->gpus))
        goto fail;
    code = PD_ENOMEM;
    w->cpus = cfg->cpus;
    w->nslots = w->cpus + w->gpus;
    w->hb_ms = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : S_DEFAULT_HB_MS;
    w->liveness = S_DEFAULT_LIVENESS;
    w->q[S_CPU].max = (size_t) w->cpus * 1024 + 4096;
    w->q[S_GPU].max = (size_t) w->gpus * 1024 + 4096;
    pd_buf_init(&w->res);
    w->broker = strdup(cfg->broker);
    w->cache_dir = strdup(cfg->cache_dir);
    /* The running program's path, resolved now: exec'ing "/proc/self/exe"
       itself would start the wrong program under valgrind, which reports
       the client's path through readlink but not through exec. */
    char self[PATH_MAX];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl > 0)
        self[sl] = 0;
    else
        snprintf(self, sizeof self, "/proc/self/exe");
    w->slot_exe = strdup(cfg->slot_exe ? cfg->slot_exe : self);
    w->log_level = cfg->log_level ? strdup(cfg->log_level) : NULL;
    w->slots = calloc((size_t) w->nslots, sizeof *w->slots);
    w->items = calloc((size_t) w->nslots + 1, sizeof *w->items);
    w->item_slot = calloc((size_t) w->nslots + 1, sizeof *w->item_slot);
    if (!w->broker || !w->cache_dir || !w->slot_exe || (cfg->log_level && !w->log_level)
        || !w->slots || !w->items || !w->item_slot)
        goto fail;
    if (cfg->name && *cfg->name)
        snprintf(w->host, sizeof w->host, "%s", cfg->name);
    else if (gethostname(w->host, sizeof w->host - 1))
        snprintf(w->host, sizeof w->host, "unknown");
    if (!(w->mc = pd_modcache_new(w->cache_dir, &code)))
        goto fail;
    unsigned char rnd[8];
    randombytes_buf(rnd, sizeof rnd);
    memcpy(w->id, "w-", 2);
    sodium_bin2hex(w->id + 2, sizeof w->id - 2, rnd, sizeof rnd);
    /* CPU slots see no GPU (CUDA_VISIBLE_DEVICES=""): GPU work goes where
       the broker placed it. GPU slot g sees its device only. */
    for (int i = 0; i < w->nslots; i++) {
        char visible[64] = "";
        bool gpu = i >= w->cpus;
        if (gpu)
            s_visible_for(i - w->cpus, visible, sizeof visible);
        pd_slot_config_t sc = {.index = i, .exe = w->slot_exe, .cache_dir = w->cache_dir,
                               .host = w->host, .log_level = w->log_level,
                               .has_gpu = gpu, .gpu = gpu ? i - w->cpus : 0,
                               .cuda_visible = visible,
                               .sink = {s_on_result, s_on_requeue, w}};
        if (!(w->slots[i] = pd_slot_new(&sc, &code)))
            goto fail;
    }
    code = PD_ESYS;
    w->ctx = cfg->zmq_ctx;
    if (!w->ctx) {
        w->ctx = zmq_ctx_new();
        w->own_ctx = true;
    }
    if (!w->ctx || !(w->sock = zmq_socket(w->ctx, ZMQ_DEALER))) {
        pd_log_error("cannot create a ZeroMQ socket: %s", zmq_strerror(errno));
        goto fail;
    }
    int linger = 1000, hwm = 100000;
    zmq_setsockopt(w->sock, ZMQ_ROUTING_ID, w->id, strlen(w->id));
    zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(w->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(w->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (zmq_connect(w->sock, w->broker)) {
        pd_log_error("cannot connect to broker '%s': %s (expected an endpoint such as "
                     "tcp://host:5555)", w->broker, zmq_strerror(errno));
        code = PD_EINVAL;
        goto fail;
    }
    w->items[0] = (zmq_pollitem_t){.socket = w->sock, .events = ZMQ_POLLIN};
    int64_t now = pd_slot_now_ms();
    w->last_recv = now;
    s_send_ready(w);
    pd_log_info("worker %s on %s: %d cpu slots, %d gpu slots, cache %s, broker %s", w->id,
                w->host, w->cpus, w->gpus, w->cache_dir, w->broker);
    return w;
fail:
    if (err)
        *err = code;
    pd_worker_destroy(&w);
    return NULL;
}

void pd_worker_destroy(pd_worker_t **p)
{
    if (!p || !*p)
        return;
    pd_worker_t *w = *p;
    if (w->slots)
        for (int i = 0; i < w->nslots; i++)
            pd_slot_destroy(&w->slots[i]);
    free(w->slots);
    for (int c = 0; c < 2; c++) {
        s_q_clear(&w->q[c]);
        free(w->q[c].q);
    }
    pd_buf_free(&w->res);
    if (w->sock)
        zmq_close(w->sock);
    if (w->ctx && w->own_ctx)
        zmq_ctx_term(w->ctx);
    pd_modcache_destroy(&w->mc);
    free(w->mods);
    free(w->items);
    free(w->item_slot);
    free(w->broker);
    free(w->cache_dir);
    free(w->slot_exe);
    free(w->log_level);
    free(w);
    *p = NULL;
}

const char *pd_worker_id(pd_worker_t *w) { return w->id; }
