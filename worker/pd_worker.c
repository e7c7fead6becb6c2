/*  pd_worker: the worker's loop, its job queue and its side of the protocol.

    The loop (pd_worker_run) only dispatches: zmq_poll over the DEALER socket
    and the slot processes' result pipes, then messages go to s_on_msg, pipe
    data to pd_slot_on_readable, and queued jobs to idle slots (s_dispatch).
    Results collected during an iteration leave in one `done` message at its
    end (or earlier, when a batch is large), so nothing is held while idle.

    Security: towards a network broker the socket is a CurveZMQ client that
    accepts only the broker key trusted for that endpoint (known_brokers or
    --broker-key); a monitor reports failed handshakes (a wrong broker key,
    our key not admitted) in the log. Each job names the key of the client
    that submitted it, and the machine owner's code policy (pd_policy)
    decides whether it runs.
*/
#include "pd_worker.h"
#include "pd_codec.h"
#include "pd_error.h"
#include "pd_log.h"
#include "pd_modcache.h"
#include "pd_msg.h"
#include "pd_policy.h"
#include "pd_slot.h"

#include <assert.h>
#include <errno.h>
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
    void *ctx;             /* ZeroMQ context, owned */
    void *sock;            /* DEALER to the broker, owned */
    void *mon;             /* PAIR receiving the socket's handshake events, owned */
    bool secure;           /* the socket runs CurveZMQ */
    pd_keypair_t key;      /* this worker's key pair (secure only) */
    char broker_key[PD_KEY_TXT]; /* the broker key we accept (secure only) */
    pd_policy_t *policy;   /* whose code runs here, owned */
    pd_log_limit_t limit;  /* rate of handshake and refusal log lines */
    pd_modcache_t *mc;     /* module cache */
    pd_slot_t **slots;     /* cpus slot handles, owned */
    zmq_pollitem_t *items; /* poll set: socket, monitor, then live slots */
    int *item_slot;        /* slot index of items[i] (i >= 2) */
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
    pd_msg_begin(&pk, "ready", 4);
    pd_pack_kv_str(&pk, "host", w->host);
    pd_pack_kv_uint(&pk, "pid", (uint64_t) getpid());
    pd_pack_kv_uint(&pk, "cpus", (uint64_t) w->cpus);
    pd_pack_kv_uint(&pk, "gpus", (uint64_t) w->gpus);
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
    char client[PD_KEY_TXT] = "";
    if (pd_msg_has(m, "client"))
        pd_msg_str(m, "client", client, sizeof client);
    if (!pd_policy_stores_shipped(w->policy)) {
        pd_log_info("module %s (%.12s) from client %s not stored: this worker runs only "
                    "installed modules", name, hash, client[0] ? client : "without a key");
        return;
    }
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
    pd_log_debug("module %s (%s) from client %s stored", name, hash,
                 client[0] ? client : "without a key");
}

/* ---- jobs from the broker ----------------------------------------------- */

#define S_RUN_CLIENTS 256 /* client keys of one `run` read at most */

static void s_on_run(pd_worker_t *w, const pd_msg_t *m)
{
    pd_rd_t r;
    uint32_t n;
    /* The chunk's client keys (jobs name them by index); absent from older
       brokers and without CurveZMQ. */
    const char *cptr[S_RUN_CLIENTS]; /* in the frame, not NUL-terminated */
    uint32_t clen[S_RUN_CLIENTS];
    uint32_t nclients = 0;
    if (pd_msg_has(m, "clients")) {
        pd_rd_t cr;
        uint32_t nc;
        if (pd_msg_rd(m, "clients", &cr) || pd_rd_array(&cr, &nc)) {
            pd_log_warn("broker sent a bad 'run': field 'clients' is not an array");
            return;
        }
        for (uint32_t i = 0; i < nc && i < S_RUN_CLIENTS; i++, nclients++) {
            if (pd_rd_str(&cr, &cptr[i], &clen[i])) {
                pd_log_warn("broker sent a bad 'run': client %u is not a string", i);
                return;
            }
        }
    }
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
                        "timeout_ms, arg, client]; ignoring the rest", i);
            return;
        }
        /* The submitter: an index into `clients`; anything else counts as
           a job without a key. */
        char client[PD_KEY_TXT] = "";
        uint64_t ci;
        if (k >= 7 && pd_rd_uint(&r, &ci) == 0) {
            if (ci < nclients && clen[ci] < sizeof client) {
                memcpy(client, cptr[ci], clen[ci]);
                client[clen[ci]] = 0;
            }
        } else if (k >= 7 && pd_rd_skip(&r, NULL, NULL)) {
            pd_log_warn("broker sent a bad 'run': job %u is malformed; ignoring the rest", i);
            return;
        }
        for (uint32_t extra = 7; extra < k; extra++)
            pd_rd_skip(&r, NULL, NULL); /* forward compatibility */
        const s_mod_t *mm = s_mod_find(w, mod);
        char msg[800];
        if (!pd_policy_allows(w->policy, client, mod, mm ? mm->name : mod, msg, sizeof msg)) {
            uint32_t swallowed = 0;
            if (pd_log_limit_pass(&w->limit, 20, 10000, &swallowed))
                pd_log_warn("refused job %llu: %s%s", (unsigned long long) id, msg,
                            swallowed ? " (and more refusals)" : "");
            s_fail_job(w, id, attempt, PD_EREFUSED, msg);
            continue;
        }
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

void pd_worker_on_message(pd_worker_t *w, const void *data, size_t len)
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

/* ---- security events ----------------------------------------------------- */

/* Logs failed handshakes with the broker (bounded rate): they are the only
   sign of a wrong broker key or of our key not being admitted. */
static void s_on_monitor(pd_worker_t *w)
{
    for (int i = 0; i < 64; i++) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, w->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        zmq_msg_init(&addr);
        if (zmq_msg_more(&ev))
            zmq_msg_recv(&addr, w->mon, 0);
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (const uint8_t *) zmq_msg_data(&ev) + 2, 4);
        }
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            pd_log_debug("handshake with broker %s succeeded", w->broker);
            continue;
        }
        uint32_t swallowed = 0;
        if (!pd_log_limit_pass(&w->limit, 3, 30000, &swallowed))
            continue;
        const char *why = event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                              ? "it does not admit this worker's key"
                              : pd_auth_handshake_why(event, value, false);
        pd_log_warn("broker %s refused the connection: %s%s%s%s%s", w->broker, why,
                    event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? " (on the broker: `playdoh-keygen "
                                                               "allow '"
                                                             : "",
                    event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? w->key.pub : "",
                    event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? "' --role worker`)" : "",
                    swallowed ? " (repeated)" : "");
    }
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
    int64_t t = next - now;
    return t < 0 ? 0 : t > w->hb_ms ? w->hb_ms : (int) t;
}

int pd_worker_run(pd_worker_t *w, volatile sig_atomic_t *stop)
{
    int rc = 0;
    while (!*stop) {
        int64_t now = pd_slot_now_ms();
        int nitems = 2;
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
        if (w->items[1].revents & ZMQ_POLLIN)
            s_on_monitor(w);
        if (w->items[0].revents & ZMQ_POLLIN) {
            zmq_msg_t msg;
            zmq_msg_init(&msg);
            for (int k = 0; k < S_RECV_BURST && zmq_msg_recv(&msg, w->sock, ZMQ_DONTWAIT) >= 0; k++)
                pd_worker_on_message(w, zmq_msg_data(&msg), zmq_msg_size(&msg));
            zmq_msg_close(&msg);
        }
        for (int i = 2; i < nitems; i++)
            if (w->items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR))
                pd_slot_on_readable(w->slots[w->item_slot[i]]);
        now = pd_slot_now_ms();
        for (int i = 0; i < w->cpus; i++)
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

/* A path under the configuration directory, or the given one. */
static int s_config_path(const pd_worker_config_t *cfg, const char *given, const char *name,
                         char *out, size_t cap)
{
    if (given) {
        snprintf(out, cap, "%s", given);
        return 0;
    }
    char *dir = cfg->config_dir ? strdup(cfg->config_dir) : pd_auth_config_dir();
    if (!dir) {
        pd_log_error("cannot find the configuration directory (HOME is not set): give "
                     "--config-dir");
        return PD_EINVAL;
    }
    snprintf(out, cap, "%s/%s", dir, name);
    free(dir);
    return 0;
}

/* Decides the socket's security; with CurveZMQ loads our key pair and the
   broker's trusted key, or says which command is missing. */
static int s_security_setup(pd_worker_t *w, const pd_worker_config_t *cfg)
{
    pd_sec_mode_t mode = pd_auth_resolve(cfg->security, w->broker);
    if (mode == PD_SEC_NONE) {
        if (!pd_auth_endpoint_is_loopback(w->broker))
            pd_log_warn("SECURITY WARNING: connecting to broker %s without authentication or "
                        "encryption (--insecure): whoever answers at that address can run code "
                        "on this machine. Use this only on a network you trust completely.",
                        w->broker);
        return 0;
    }
    w->secure = true;
    char path[4096], why[1024];
    int rc = s_config_path(cfg, cfg->key_file, "id.key", path, sizeof path);
    if (rc)
        return rc;
    rc = pd_auth_key_load(path, true, &w->key, why, sizeof why);
    if (rc) {
        pd_log_error("a secure connection to %s needs a key pair for this worker: %s; then, on "
                     "the broker's machine, admit it with `playdoh-keygen allow KEY --role "
                     "worker`", w->broker, why);
        return rc;
    }
    if (cfg->broker_key) {
        if (!pd_auth_key_valid(cfg->broker_key)) {
            pd_log_error("--broker-key '%s' is not a public key (40 characters, as "
                         "`playdoh-keygen show` prints on the broker's machine)", cfg->broker_key);
            return PD_EINVAL;
        }
        snprintf(w->broker_key, sizeof w->broker_key, "%s", cfg->broker_key);
        return 0;
    }
    char *dir = cfg->config_dir ? strdup(cfg->config_dir) : pd_auth_config_dir();
    rc = pd_auth_trust_find(dir, w->broker, w->broker_key, why, sizeof why);
    free(dir);
    if (rc)
        pd_log_error("%s", why);
    return rc;
}

static pd_policy_t *s_policy_new(pd_worker_t *w, const pd_worker_config_t *cfg)
{
    char list[4096] = "";
    if (cfg->code_policy != PD_POLICY_ANY &&
        s_config_path(cfg, cfg->code_list,
                      cfg->code_policy == PD_POLICY_CLIENTS ? "code-clients" : "code-modules",
                      list, sizeof list))
        return NULL;
    return pd_policy_new(cfg->code_policy, list, w->host);
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
    pd_buf_init(&w->res);
    w->broker = strdup(cfg->broker);
    w->cache_dir = strdup(cfg->cache_dir);
    w->slot_exe = strdup(cfg->slot_exe ? cfg->slot_exe : "/proc/self/exe");
    w->log_level = cfg->log_level ? strdup(cfg->log_level) : NULL;
    w->slots = calloc((size_t) cfg->cpus, sizeof *w->slots);
    w->items = calloc((size_t) cfg->cpus + 2, sizeof *w->items);
    w->item_slot = calloc((size_t) cfg->cpus + 2, sizeof *w->item_slot);
    if (!w->broker || !w->cache_dir || !w->slot_exe || (cfg->log_level && !w->log_level)
        || !w->slots || !w->items || !w->item_slot)
        goto fail;
    if (cfg->name && *cfg->name)
        snprintf(w->host, sizeof w->host, "%s", cfg->name);
    else if (gethostname(w->host, sizeof w->host - 1))
        snprintf(w->host, sizeof w->host, "unknown");
    if (!(w->mc = pd_modcache_new(w->cache_dir, &code)))
        goto fail;
    if ((code = s_security_setup(w, cfg)) != 0)
        goto fail;
    code = PD_ENOMEM;
    if (!(w->policy = s_policy_new(w, cfg)))
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
    if (!(w->ctx = zmq_ctx_new()) || !(w->sock = zmq_socket(w->ctx, ZMQ_DEALER))) {
        pd_log_error("cannot create a ZeroMQ socket: %s", zmq_strerror(errno));
        goto fail;
    }
    int linger = 1000, hwm = 100000, backoff = 2000;
    zmq_setsockopt(w->sock, ZMQ_ROUTING_ID, w->id, strlen(w->id));
    zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(w->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(w->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    /* A refused handshake is retried at most every 2 s, not every 100 ms. */
    zmq_setsockopt(w->sock, ZMQ_RECONNECT_IVL_MAX, &backoff, sizeof backoff);
    if (w->secure && pd_auth_apply_client(w->sock, &w->key, w->broker_key)) {
        pd_log_error("cannot set up CurveZMQ: %s", zmq_strerror(errno));
        goto fail;
    }
    char mon[64];
    snprintf(mon, sizeof mon, "inproc://pd-worker-monitor-%p", (void *) w);
    int zero = 0;
    if (zmq_socket_monitor(w->sock, mon, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                             ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                             ZMQ_EVENT_HANDSHAKE_SUCCEEDED) ||
        !(w->mon = zmq_socket(w->ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(w->mon, ZMQ_LINGER, &zero, sizeof zero) || zmq_connect(w->mon, mon)) {
        pd_log_error("cannot monitor the broker connection: %s", zmq_strerror(errno));
        goto fail;
    }
    if (zmq_connect(w->sock, w->broker)) {
        pd_log_error("cannot connect to broker '%s': %s (expected an endpoint such as "
                     "tcp://host:5555)", w->broker, zmq_strerror(errno));
        code = PD_EINVAL;
        goto fail;
    }
    w->items[0] = (zmq_pollitem_t){.socket = w->sock, .events = ZMQ_POLLIN};
    w->items[1] = (zmq_pollitem_t){.socket = w->mon, .events = ZMQ_POLLIN};
    int64_t now = pd_slot_now_ms();
    w->last_recv = now;
    s_send_ready(w);
    pd_log_info("worker %s on %s: %d cpu slots, %d gpus, cache %s, broker %s (%s), code "
                "policy '%s'", w->id, w->host, w->cpus, w->gpus, w->cache_dir, w->broker,
                w->secure ? "CurveZMQ" : "no security", pd_policy_name(pd_policy_mode(w->policy)));
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
    if (w->mon)
        zmq_close(w->mon);
    if (w->sock)
        zmq_close(w->sock);
    pd_policy_destroy(&w->policy);
    sodium_memzero(w->key.sec, sizeof w->key.sec);
    if (w->ctx)
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
size_t pd_worker_queued(const pd_worker_t *w) { return w->qlen; }
