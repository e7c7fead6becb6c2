/*  pd_worker: the worker's loop, its job queue and its side of the protocol.

    The loop (pd_worker_run) only dispatches: zmq_poll over the DEALER socket
    and the slot processes' result pipes, then messages go to s_on_msg, pipe
    data to pd_slot_on_readable, and queued jobs to idle slots (s_dispatch).
    Results collected during an iteration leave in one `done` message at its
    end (or earlier, when a batch is large), so nothing is held while idle.

    Nodes of synchronous tasks run in node processes (pd_nodeproc) polled in
    the same loop; the worker relays their rendezvous: node_start becomes a
    process and its `start`, `bound` becomes node_bound, node_peers and
    node_go go to the process, `ready` and `result` become node_ready and
    node_done. node_abort kills the task's processes here.
*/
#include "pd_worker.h"
#include "pd_codec.h"
#include "pd_error.h"
#include "pd_log.h"
#include "pd_modcache.h"
#include "pd_msg.h"
#include "pd_nodeproc.h"
#include "pd_slot.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
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
    pd_modcache_t *mc;     /* module cache */
    pd_slot_t **slots;     /* cpus slot handles, owned */
    zmq_pollitem_t *items; /* poll set: socket, live slots, then nodes */
    int *item_slot;        /* slot index of items[i] (>= 0), or -1 - node index */
    pd_nodeproc_t **nodes; /* node processes of synchronous tasks, owned */
    int nnodes;            /* entries in nodes (at most cpus) */
    pd_nodeproc_t **gone;  /* ended nodes whose process is still exiting, owned */
    int ngone;             /* entries in gone (at most 2 x cpus) */
    char node_addr[256];   /* address nodes bind their tubes on */
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

/* ---- nodes of synchronous tasks ----------------------------------------- */

/* Sends node_done {task, node, ok, val, us}. */
static void s_send_node_done(pd_worker_t *w, uint64_t task, uint64_t node, bool ok,
                             const uint8_t *val, size_t len, uint64_t us)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "node_done", 5);
    pd_pack_kv_uint(&pk, "task", task);
    pd_pack_kv_uint(&pk, "node", node);
    pd_pack_kv_bool(&pk, "ok", ok);
    pd_pack_cstr(&pk, "val");
    pd_pack_raw(&pk, val, len);
    pd_pack_kv_uint(&pk, "us", us);
    s_send(w, &b);
    pd_buf_free(&b);
}

/* Reports a node that could not start here. */
static void s_fail_node(pd_worker_t *w, uint64_t task, uint64_t node, int code, const char *msg)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    msgpack_pack_map(&pk, 2);
    pd_pack_kv_str(&pk, "code", pd_err_name(code));
    pd_pack_kv_str(&pk, "msg", msg);
    if (!b.failed)
        s_send_node_done(w, task, node, false, b.data, b.len, 0);
    pd_buf_free(&b);
}

static void s_node_progress(pd_worker_t *w, pd_nodeproc_t *nd, const char *type, const char *ep)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, type, ep ? 3 : 2);
    pd_pack_kv_uint(&pk, "task", pd_nodeproc_task(nd));
    pd_pack_kv_uint(&pk, "node", pd_nodeproc_index(nd));
    if (ep)
        pd_pack_kv_str(&pk, "ep", ep);
    s_send(w, &b);
    pd_buf_free(&b);
}

static void s_on_node_bound(void *user, pd_nodeproc_t *nd, const char *ep)
{
    s_node_progress(user, nd, "node_bound", ep);
}

static void s_on_node_ready(void *user, pd_nodeproc_t *nd)
{
    s_node_progress(user, nd, "node_ready", NULL);
}

static void s_on_node_result(void *user, pd_nodeproc_t *nd, bool ok, const uint8_t *val,
                             size_t len, uint64_t us)
{
    pd_worker_t *w = user;
    pd_log_debug("task %llu node %u %s after %llu us", (unsigned long long) pd_nodeproc_task(nd),
                 pd_nodeproc_index(nd), ok ? "done" : "failed", (unsigned long long) us);
    s_send_node_done(w, pd_nodeproc_task(nd), pd_nodeproc_index(nd), ok, val, len, us);
}

static int s_node_find(pd_worker_t *w, uint64_t task, uint64_t node)
{
    for (int i = 0; i < w->nnodes; i++)
        if (pd_nodeproc_task(w->nodes[i]) == task && pd_nodeproc_index(w->nodes[i]) == node)
            return i;
    return -1;
}

static void s_node_remove(pd_worker_t *w, int i)
{
    pd_nodeproc_destroy(&w->nodes[i]);
    w->nodes[i] = w->nodes[--w->nnodes];
    w->nodes[w->nnodes] = NULL;
}

/* node_start {task, node, n, mod, fn, arg, tubes, out, in, io_ms, start_ms,
   window, window_bytes}: starts a node process and sends it `start`. */
static void s_on_node_start(pd_worker_t *w, const pd_msg_t *m)
{
    uint64_t task, node, n;
    char mod[80], fn[128];
    if (pd_msg_uint(m, "task", &task) || pd_msg_uint(m, "node", &node)
        || pd_msg_uint(m, "n", &n) || pd_msg_str(m, "mod", mod, sizeof mod)
        || pd_msg_str(m, "fn", fn, sizeof fn)) {
        pd_log_warn("broker sent a bad 'node_start': %s", m->why);
        return;
    }
    char msg[600];
    const s_mod_t *mm = s_mod_find(w, mod);
    if (!mm) {
        snprintf(msg, sizeof msg, "module %.64s is not on worker %s (the broker sent no 'mod' "
                 "for it)", mod, w->host);
        s_fail_node(w, task, node, PD_ENOMODULE, msg);
        return;
    }
    if (s_node_find(w, task, node) >= 0) {
        pd_log_warn("broker started task %llu node %llu twice; ignored",
                    (unsigned long long) task, (unsigned long long) node);
        return;
    }
    if (w->nnodes >= w->cpus) {
        snprintf(msg, sizeof msg, "worker %s already runs %d nodes on its %d slots", w->host,
                 w->nnodes, w->cpus);
        s_fail_node(w, task, node, PD_EOVERLOAD, msg);
        return;
    }
    /* The node's `start`: the broker's fields, the module's kind and name,
       and the address to bind. */
    static const char *const uints[] = {"task", "node", "n", "io_ms", "start_ms", "window",
                                        "window_bytes"};
    static const char *const raws[] = {"arg", "tubes", "out", "in"};
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    uint32_t nf = 5; /* mod, kind, name, fn, addr */
    for (size_t i = 0; i < sizeof uints / sizeof uints[0]; i++)
        nf += pd_msg_has(m, uints[i]);
    for (size_t i = 0; i < sizeof raws / sizeof raws[0]; i++)
        nf += pd_msg_has(m, raws[i]);
    pd_msg_begin(&pk, "start", nf);
    for (size_t i = 0; i < sizeof uints / sizeof uints[0]; i++) {
        uint64_t v;
        if (pd_msg_has(m, uints[i]) && pd_msg_uint(m, uints[i], &v) == 0)
            pd_pack_kv_uint(&pk, uints[i], v);
        else if (pd_msg_has(m, uints[i]))
            pd_pack_kv_uint(&pk, uints[i], 0); /* the node refuses it with a sentence */
    }
    for (size_t i = 0; i < sizeof raws / sizeof raws[0]; i++) {
        const uint8_t *raw;
        size_t len;
        if (pd_msg_raw(m, raws[i], &raw, &len) == 0) {
            pd_pack_cstr(&pk, raws[i]);
            pd_pack_raw(&pk, raw, len);
        }
    }
    pd_pack_kv_str(&pk, "mod", mm->hash);
    pd_pack_kv_str(&pk, "kind", mm->kind);
    pd_pack_kv_str(&pk, "name", mm->name);
    pd_pack_kv_str(&pk, "fn", fn);
    pd_pack_kv_str(&pk, "addr", w->node_addr);
    int err = PD_ENOMEM;
    pd_nodeproc_t *nd = NULL;
    if (!b.failed) {
        pd_nodeproc_config_t nc = {.exe = w->slot_exe, .cache_dir = w->cache_dir,
                                   .host = w->host, .log_level = w->log_level, .task = task,
                                   .node = (uint32_t) node,
                                   .sink = {s_on_node_bound, s_on_node_ready, s_on_node_result,
                                            w}};
        nd = pd_nodeproc_new(&nc, b.data, b.len, &err);
    }
    pd_buf_free(&b);
    if (!nd) {
        snprintf(msg, sizeof msg, "worker %s could not start a node process (%s)", w->host,
                 pd_strerror(err));
        s_fail_node(w, task, node, err, msg);
        return;
    }
    w->nodes[w->nnodes++] = nd;
    pd_log_debug("task %llu node %llu of %llu started (%s)", (unsigned long long) task,
                 (unsigned long long) node, (unsigned long long) n, fn);
}

/* node_peers {task, node, peers} and node_go {task, node}. */
static void s_on_node_step(pd_worker_t *w, const pd_msg_t *m, bool go)
{
    uint64_t task, node;
    const uint8_t *peers = NULL;
    size_t len = 0;
    if (pd_msg_uint(m, "task", &task) || pd_msg_uint(m, "node", &node)
        || (!go && pd_msg_raw(m, "peers", &peers, &len))) {
        pd_log_warn("broker sent a bad '%s': %s", m->type, m->why);
        return;
    }
    int i = s_node_find(w, task, node);
    if (i < 0) {
        /* It ended or was aborted meanwhile: its node_done tells the broker. */
        pd_log_debug("'%s' for task %llu node %llu, which is not running here", m->type,
                     (unsigned long long) task, (unsigned long long) node);
        return;
    }
    if (go)
        pd_nodeproc_send_go(w->nodes[i]);
    else
        pd_nodeproc_send_peers(w->nodes[i], peers, len);
}

/* node_abort {task}: kills every node of the task here, without a report. */
static void s_on_node_abort(pd_worker_t *w, const pd_msg_t *m)
{
    uint64_t task;
    if (pd_msg_uint(m, "task", &task)) {
        pd_log_warn("broker sent a bad 'node_abort': %s", m->why);
        return;
    }
    int killed = 0;
    for (int i = w->nnodes; i-- > 0;)
        if (pd_nodeproc_task(w->nodes[i]) == task) {
            s_node_remove(w, i);
            killed++;
        }
    pd_log_debug("task %llu aborted: %d nodes stopped here", (unsigned long long) task, killed);
}

/* Moves ended nodes out of the running list (their slots are free again)
   and reaps the processes of ended nodes without blocking. */
static void s_reap_nodes(pd_worker_t *w)
{
    for (int i = w->nnodes; i-- > 0;) {
        if (!pd_nodeproc_ended(w->nodes[i]))
            continue;
        if (w->ngone == 2 * w->cpus) /* bounded: the oldest goes now */
            pd_nodeproc_destroy(&w->gone[--w->ngone]);
        w->gone[w->ngone++] = w->nodes[i];
        w->nodes[i] = w->nodes[--w->nnodes];
        w->nodes[w->nnodes] = NULL;
    }
    for (int i = w->ngone; i-- > 0;)
        if (pd_nodeproc_reap(w->gone[i])) {
            pd_nodeproc_destroy(&w->gone[i]);
            w->gone[i] = w->gone[--w->ngone];
            w->gone[w->ngone] = NULL;
        }
}

/* Kills every node (the broker forgot us, or we leave). */
static void s_kill_nodes(pd_worker_t *w)
{
    while (w->nnodes > 0)
        s_node_remove(w, w->nnodes - 1);
}

/* The broker does not know us: drop every job and register again. */
static void s_reset(pd_worker_t *w)
{
    size_t running = 0;
    for (int i = 0; i < w->cpus; i++) {
        running += !pd_slot_idle(w->slots[i]) && pd_slot_fd(w->slots[i]) >= 0;
        pd_slot_abort(w->slots[i]);
    }
    pd_log_warn("broker reset this worker: dropping %zu queued and %zu running jobs and %d "
                "nodes, registering again", w->qlen, running, w->nnodes);
    s_kill_nodes(w);
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
    else if (pd_msg_is(&m, "node_start"))
        s_on_node_start(w, &m);
    else if (pd_msg_is(&m, "node_peers"))
        s_on_node_step(w, &m, false);
    else if (pd_msg_is(&m, "node_go"))
        s_on_node_step(w, &m, true);
    else if (pd_msg_is(&m, "node_abort"))
        s_on_node_abort(w, &m);
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
    /* Running nodes take CPUs: jobs get the rest. */
    size_t idle = 0, busy = 0, allowed = (size_t) (w->cpus - w->nnodes);
    for (int i = 0; i < w->cpus; i++) {
        idle += pd_slot_idle(w->slots[i]);
        busy += !pd_slot_idle(w->slots[i]) && pd_slot_fd(w->slots[i]) >= 0;
    }
    idle = busy >= allowed ? 0 : (idle < allowed - busy ? idle : allowed - busy);
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
    if (w->ngone > 0 && t > 10)
        t = 10; /* node processes to reap soon */
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
        for (int i = 0; i < w->nnodes; i++) {
            int fd = pd_nodeproc_fd(w->nodes[i]);
            if (fd < 0)
                continue;
            w->items[nitems] = (zmq_pollitem_t){.socket = NULL, .fd = fd, .events = ZMQ_POLLIN};
            w->item_slot[nitems] = -1 - i;
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
        /* Messages above may have removed nodes (node_abort): a node's
           entry is checked against the current list before use. */
        for (int i = 1; i < nitems; i++) {
            if (!(w->items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR)))
                continue;
            int k = w->item_slot[i];
            if (k >= 0) {
                pd_slot_on_readable(w->slots[k]);
                continue;
            }
            k = -1 - k;
            if (k < w->nnodes && pd_nodeproc_fd(w->nodes[k]) == w->items[i].fd)
                pd_nodeproc_on_readable(w->nodes[k]);
        }
        s_reap_nodes(w);
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
    w->nodes = calloc((size_t) cfg->cpus, sizeof *w->nodes);
    w->gone = calloc(2 * (size_t) cfg->cpus, sizeof *w->gone);
    w->items = calloc(2 * (size_t) cfg->cpus + 1, sizeof *w->items);
    w->item_slot = calloc(2 * (size_t) cfg->cpus + 1, sizeof *w->item_slot);
    if (!w->broker || !w->cache_dir || !w->slot_exe || (cfg->log_level && !w->log_level)
        || !w->slots || !w->nodes || !w->gone || !w->items || !w->item_slot)
        goto fail;
    if (cfg->node_addr && *cfg->node_addr) {
        snprintf(w->node_addr, sizeof w->node_addr, "%s", cfg->node_addr);
    } else if (pd_worker_route_addr(cfg->broker, w->node_addr, sizeof w->node_addr)) {
        pd_log_warn("cannot tell which address reaches the broker %s: nodes of synchronous "
                    "tasks bind on 127.0.0.1 (give --node-addr ADDR for a real network)",
                    cfg->broker);
        snprintf(w->node_addr, sizeof w->node_addr, "127.0.0.1");
    }
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
    if (!(w->ctx = zmq_ctx_new()) || !(w->sock = zmq_socket(w->ctx, ZMQ_DEALER))) {
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
    pd_log_info("worker %s on %s: %d cpu slots, %d gpus, cache %s, broker %s, nodes bind on %s",
                w->id, w->host, w->cpus, w->gpus, w->cache_dir, w->broker, w->node_addr);
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
    for (int i = 0; i < w->nnodes; i++)
        pd_nodeproc_destroy(&w->nodes[i]);
    free(w->nodes);
    for (int i = 0; i < w->ngone; i++)
        pd_nodeproc_destroy(&w->gone[i]);
    free(w->gone);
    s_q_clear(w);
    free(w->q);
    pd_buf_free(&w->res);
    if (w->sock)
        zmq_close(w->sock);
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
const char *pd_worker_node_addr(pd_worker_t *w) { return w->node_addr; }

int pd_worker_route_addr(const char *endpoint, char *out, size_t cap)
{
    /* tcp://HOST:PORT, HOST possibly [v6] */
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return PD_EINVAL;
    const char *h = endpoint + 6, *colon = strrchr(h, ':');
    if (!colon || colon == h)
        return PD_EINVAL;
    char host[256], port[16];
    size_t hl = (size_t) (colon - h);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= sizeof host || strlen(colon + 1) >= sizeof port)
        return PD_EINVAL;
    memcpy(host, h, hl);
    host[hl] = 0;
    snprintf(port, sizeof port, "%s", colon + 1);
    if (strcmp(port, "*") == 0 || strcmp(port, "0") == 0)
        snprintf(port, sizeof port, "9");
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
        return PD_EINVAL;
    int rc = PD_EINVAL;
    for (struct addrinfo *a = ai; a && rc; a = a->ai_next) {
        int fd = socket(a->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        struct sockaddr_storage local;
        socklen_t len = sizeof local;
        /* A UDP connect sends nothing: it only picks the route. */
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0
            && getsockname(fd, (struct sockaddr *) &local, &len) == 0) {
            void *src = local.ss_family == AF_INET
                            ? (void *) &((struct sockaddr_in *) &local)->sin_addr
                            : (void *) &((struct sockaddr_in6 *) &local)->sin6_addr;
            char text[INET6_ADDRSTRLEN];
            if (inet_ntop(local.ss_family, src, text, sizeof text)) {
                if (local.ss_family == AF_INET6)
                    snprintf(out, cap, "[%s]", text);
                else
                    snprintf(out, cap, "%s", text);
                rc = 0;
            }
        }
        close(fd);
    }
    freeaddrinfo(ai);
    return rc;
}
