/*  pd_worker: the worker's loop, its job queue and its side of the protocol.

    The loop (pd_worker_run) only dispatches: zmq_poll over the DEALER socket
    and the slot processes' result pipes, then messages go to s_on_msg, pipe
    data to pd_slot_on_readable, and queued jobs to idle slots (s_dispatch).
    Results collected during an iteration leave in one `done` message at its
    end (or earlier, when a batch is large), so nothing is held while idle.
*/
#include "pd_worker.h"
#include "pd_codec.h"
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
    char kind[3];   /* "c" or "so" */
    char name[128]; /* name for messages */
} s_mod_t;

struct pd_worker {
    char *broker;          /* broker endpoint */
    char *cache_dir;       /* module cache directory */
    char *slot_exe;        /* program exec'ed for slots */
    char *log_level;       /* slots' log level, or NULL */
    char host[256];        /* host name reported */
    char id[19];           /* routing id "w-" + 16 hex */
    int cpus;              /* CPU slots */
    int gpus;              /* GPUs offered */
    void *ctx;             /* ZeroMQ context */
    bool own_ctx;          /* ctx was created here (else borrowed from the config) */
    void *sock;            /* DEALER to the broker, owned */
    pd_modcache_t *mc;     /* module cache */
    pd_slot_t **slots;     /* cpus slot handles, owned */
    zmq_pollitem_t *items; /* poll set: socket then live slots */
    int *item_slot;        /* slot index of items[i] (i >= 1) */
    s_mod_t *mods;         /* known modules, owned */
    size_t nmods;          /* entries in mods */
    size_t capmods;        /* capacity of mods */
    pd_job_t **q;          /* job queue (ring), owned */
    size_t qhead;          /* index of the first job */
    size_t qlen;           /* jobs queued */
    size_t qcap;           /* ring capacity */
    size_t qmax;           /* bound on queued jobs */
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
    int idle_exit_ms;      /* leave after this long without a job; 0 = never */
    int64_t idle_since;    /* when the worker last had a job queued or running */
    char slurm_job[32];    /* Slurm job id reported in `ready`, or "" */
    char slurm_step[32];   /* Slurm step id reported, or "" */
    char slurm_array[48];  /* Slurm "ARRAYJOB_TASK" reported, or "" */
};

/* ---- queue -------------------------------------------------------------- */

static int s_q_grow(pd_worker_t *w)
{
    size_t cap = w->qcap ? w->qcap * 2 : 1024;
    pd_job_t **q = malloc(cap * sizeof *q);
    if (!q)
        return PD_ENOMEM;
    for (size_t i = 0; i < w->qlen; i++)
        q[i] = w->q[(w->qhead + i) % w->qcap];
    free(w->q);
    w->q = q;
    w->qcap = cap;
    w->qhead = 0;
    return 0;
}

static int s_q_push_back(pd_worker_t *w, pd_job_t *job)
{
    if (w->qlen == w->qcap && s_q_grow(w))
        return PD_ENOMEM;
    w->q[(w->qhead + w->qlen) % w->qcap] = job;
    w->qlen++;
    return 0;
}

static int s_q_push_front(pd_worker_t *w, pd_job_t *job)
{
    if (w->qlen == w->qcap && s_q_grow(w))
        return PD_ENOMEM;
    w->qhead = (w->qhead + w->qcap - 1) % w->qcap;
    w->q[w->qhead] = job;
    w->qlen++;
    return 0;
}

static pd_job_t *s_q_pop(pd_worker_t *w)
{
    if (!w->qlen)
        return NULL;
    pd_job_t *job = w->q[w->qhead];
    w->qhead = (w->qhead + 1) % w->qcap;
    w->qlen--;
    return job;
}

static void s_q_clear(pd_worker_t *w)
{
    pd_job_t *job;
    while ((job = s_q_pop(w)))
        pd_job_destroy(&job);
}

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
    uint32_t nslurm = (w->slurm_job[0] != 0) + (w->slurm_step[0] != 0) + (w->slurm_array[0] != 0);
    pd_msg_begin(&pk, "ready", 4 + nslurm);
    pd_pack_kv_str(&pk, "host", w->host);
    pd_pack_kv_uint(&pk, "pid", (uint64_t) getpid());
    pd_pack_kv_uint(&pk, "cpus", (uint64_t) w->cpus);
    pd_pack_kv_uint(&pk, "gpus", (uint64_t) w->gpus);
    if (w->slurm_job[0])
        pd_pack_kv_str(&pk, "slurm_job", w->slurm_job);
    if (w->slurm_step[0])
        pd_pack_kv_str(&pk, "slurm_step", w->slurm_step);
    if (w->slurm_array[0])
        pd_pack_kv_str(&pk, "slurm_array", w->slurm_array);
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
    if (s_q_push_front(w, job)) {
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
        memcpy(k->kind, kind, strlen(kind) + 1); /* "c" or "so": checked by the store */
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
        for (uint32_t extra = 6; extra < k; extra++)
            pd_rd_skip(&r, NULL, NULL); /* forward compatibility */
        const s_mod_t *mm = s_mod_find(w, mod);
        char msg[600];
        if (!mm) {
            snprintf(msg, sizeof msg, "module %.64s is not on worker %s (the broker sent no "
                     "'mod' for it)", mod, w->host);
            s_fail_job(w, id, attempt, PD_ENOMODULE, msg);
            continue;
        }
        if (fnlen == 0 || fnlen >= sizeof ((pd_job_t *) 0)->fn) {
            snprintf(msg, sizeof msg, "module %s has no function '%.*s' (check the name passed "
                     "to map)", mm->name, (int) (fnlen > 64 ? 64 : fnlen), fn);
            s_fail_job(w, id, attempt, PD_ENOFUNC, msg);
            continue;
        }
        if (w->qlen >= w->qmax) {
            snprintf(msg, sizeof msg, "worker %s holds %zu queued jobs, more than the broker's "
                     "credit allows; job refused", w->host, w->qlen);
            s_fail_job(w, id, attempt, PD_EOVERLOAD, msg);
            continue;
        }
        pd_job_t *job = pd_job_new(arg, alen);
        if (!job || s_q_push_back(w, job)) {
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
    size_t dropped = 0, kept = 0;
    for (size_t i = 0; i < w->qlen; i++) {
        pd_job_t *job = w->q[(w->qhead + i) % w->qcap];
        if (s_is_cancelled(w, job->id)) {
            pd_job_destroy(&job);
            dropped++;
        } else {
            w->q[(w->qhead + kept++) % w->qcap] = job;
        }
    }
    w->qlen = kept;
    for (int i = 0; i < w->cpus; i++)
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
    for (int i = 0; i < w->cpus; i++) {
        running += !pd_slot_idle(w->slots[i]) && pd_slot_fd(w->slots[i]) >= 0;
        pd_slot_abort(w->slots[i]);
    }
    pd_log_warn("broker reset this worker: dropping %zu queued and %zu running jobs, "
                "registering again", w->qlen, running);
    s_q_clear(w);
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

/* Gives queued jobs to idle slots, a group each, spreading them evenly. */
static void s_dispatch(pd_worker_t *w)
{
    size_t idle = 0;
    for (int i = 0; i < w->cpus; i++)
        idle += pd_slot_idle(w->slots[i]);
    for (int i = 0; i < w->cpus && w->qlen && idle; i++) {
        pd_slot_t *s = w->slots[i];
        if (!pd_slot_idle(s))
            continue;
        size_t n = pd_slot_group_size(s);
        size_t share = (w->qlen + idle - 1) / idle;
        if (n > share)
            n = share;
        pd_job_t *group[PD_SLOT_GROUP_MAX];
        size_t k = 0, bytes = 0;
        while (k < n && w->qlen && (k == 0 || bytes < PD_SLOT_GROUP_MAX_BYTES)) {
            group[k] = s_q_pop(w);
            bytes += group[k]->arg_len;
            k++;
        }
        pd_slot_send(s, group, k);
        idle--;
    }
}

/* True when a job is queued here or running in a slot. */
static bool s_has_work(pd_worker_t *w)
{
    if (w->qlen)
        return true;
    for (int i = 0; i < w->cpus; i++)
        if (!pd_slot_idle(w->slots[i]))
            return true;
    return false;
}

/* The idle time-out (--idle-exit): true when the worker has had nothing to
   do for idle_exit_ms and should leave, so that a pilot job gives its
   allocation back instead of holding it empty. */
static bool s_idle_expired(pd_worker_t *w, int64_t now)
{
    if (w->idle_exit_ms <= 0)
        return false;
    if (s_has_work(w)) {
        w->idle_since = now;
        return false;
    }
    if (now - w->idle_since < w->idle_exit_ms)
        return false;
    if (w->registered)
        pd_log_info("no job for %.3g s: leaving (idle time-out)", w->idle_exit_ms / 1e3);
    else
        pd_log_warn("no job for %.3g s and no answer from broker %s: leaving (idle time-out; "
                    "can this machine reach the broker?)", w->idle_exit_ms / 1e3, w->broker);
    return true;
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
    for (int i = 0; i < w->cpus; i++) {
        int64_t d = pd_slot_deadline(w->slots[i]);
        if (d < next)
            next = d;
    }
    if (w->idle_exit_ms > 0 && w->idle_since + w->idle_exit_ms < next)
        next = w->idle_since + w->idle_exit_ms;
    int64_t t = next - now;
    return t < 0 ? 0 : t > w->hb_ms ? w->hb_ms : (int) t;
}

int pd_worker_run(pd_worker_t *w, volatile sig_atomic_t *stop)
{
    int rc = 0;
    while (!*stop) {
        int64_t now = pd_slot_now_ms();
        int nitems = 1;
        for (int i = 0; i < w->cpus; i++) {
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
        /* Stopped by a signal: a resource manager (Slurm's scancel, a time
           limit) may have signalled the slot processes too, so what they
           report now is not the tasks' doing; `bye` requeues those jobs. */
        if (*stop)
            break;
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
        for (int i = 0; i < w->cpus; i++)
            if (pd_slot_deadline(w->slots[i]) <= now)
                pd_slot_tick(w->slots[i]);
        s_dispatch(w);
        s_flush(w);
        now = pd_slot_now_ms();
        s_keepalive(w, now);
        if (s_idle_expired(w, now))
            break;
    }
    s_flush(w);
    s_send_simple(w, "bye");
    pd_log_info("leaving broker %s after %llu results", w->broker, (unsigned long long) w->ndone);
    return rc;
}

/* ---- construction ------------------------------------------------------- */

pd_worker_t *pd_worker_new(const pd_worker_config_t *cfg, int *err)
{
    assert(cfg);
    int code = PD_EINVAL;
    pd_worker_t *w = NULL;
    if (!cfg->broker || !*cfg->broker || !cfg->cache_dir || !*cfg->cache_dir) {
        pd_log_error("a broker endpoint and a cache directory are required");
        goto fail;
    }
    if (cfg->cpus < 1 || cfg->cpus > 4096 || cfg->gpus < 0 || cfg->gpus > 1024) {
        pd_log_error("--cpus must be between 1 and 4096 and --gpus between 0 and 1024 (got %d "
                     "and %d)", cfg->cpus, cfg->gpus);
        goto fail;
    }
    code = PD_ENOMEM;
    if (!(w = calloc(1, sizeof *w)))
        goto fail;
    w->cpus = cfg->cpus;
    w->gpus = cfg->gpus;
    w->hb_ms = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : S_DEFAULT_HB_MS;
    w->liveness = S_DEFAULT_LIVENESS;
    w->qmax = (size_t) (cfg->cpus + cfg->gpus) * 1024 + 4096;
    w->idle_exit_ms = cfg->idle_exit_ms > 0 ? cfg->idle_exit_ms : 0;
    snprintf(w->slurm_job, sizeof w->slurm_job, "%s", cfg->slurm_job ? cfg->slurm_job : "");
    snprintf(w->slurm_step, sizeof w->slurm_step, "%s", cfg->slurm_step ? cfg->slurm_step : "");
    snprintf(w->slurm_array, sizeof w->slurm_array, "%s",
             cfg->slurm_array ? cfg->slurm_array : "");
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
    w->slots = calloc((size_t) cfg->cpus, sizeof *w->slots);
    w->items = calloc((size_t) cfg->cpus + 1, sizeof *w->items);
    w->item_slot = calloc((size_t) cfg->cpus + 1, sizeof *w->item_slot);
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
    for (int i = 0; i < w->cpus; i++) {
        pd_slot_config_t sc = {.index = i, .exe = w->slot_exe, .cache_dir = w->cache_dir,
                               .host = w->host, .log_level = w->log_level,
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
    w->idle_since = now;
    s_send_ready(w);
    pd_log_info("worker %s on %s: %d cpu slots, %d gpus, cache %s, broker %s", w->id, w->host,
                w->cpus, w->gpus, w->cache_dir, w->broker);
    if (w->slurm_job[0])
        pd_log_info("pilot in Slurm job %s (array task %s, step %s)", w->slurm_job,
                    w->slurm_array[0] ? w->slurm_array : "none",
                    w->slurm_step[0] ? w->slurm_step : "none");
    if (w->idle_exit_ms)
        pd_log_info("leaving after %.3g s without a job (idle time-out)", w->idle_exit_ms / 1e3);
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
        for (int i = 0; i < w->cpus; i++)
            pd_slot_destroy(&w->slots[i]);
    free(w->slots);
    s_q_clear(w);
    free(w->q);
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
