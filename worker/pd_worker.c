/*  pd_worker: the worker's loop, its job queue and its side of the protocol.

    The loop (pd_worker_run) only dispatches: zmq_poll over the DEALER socket,
    the control socket, the beacon listener and the slot processes' result
    pipes; then messages go to s_on_msg, control requests to s_on_ctl,
    beacons to s_on_beacon, pipe data to pd_slot_on_readable, and queued
    jobs to idle slots (s_dispatch). Slots over the owner's limit retire as
    soon as they are idle; the idle policy is checked every idle.check_ms.
    Results collected during an iteration leave in one `done` message at its
    end (or earlier, when a batch is large), so nothing is held while idle.

    Security: towards a network broker the socket is a CurveZMQ client that
    accepts only the broker key trusted for that endpoint (known_brokers or
    --broker-key); a monitor reports failed handshakes (a wrong broker key,
    our key not admitted) in the log. Each job names the key of the client
    that submitted it, and the machine owner's code policy (pd_policy)
    decides whether it runs.

    GPUs. At start the worker counts its GPUs through the CUDA driver
    (gpu/pd_cudrv.h; none when libcuda does not load) and offers them, or
    the number its owner allows, as GPU slots: GPU slot g (slot number
    PD_WORKER_GPU_SLOT0 + g) is a slot process whose environment shows it
    GPU g only. GPU jobs (`run` entries with gpu true) wait in their own
    queue for GPU slots; CPU jobs never take a GPU slot, and CPU slots see
    no GPU. GPU slots over the owner's limit retire like CPU slots.

    Nodes of synchronous tasks run in node processes (pd_nodeproc) polled in
    the same loop; the worker relays their rendezvous: node_start becomes a
    process and its `start`, `bound` becomes node_bound, node_peers and
    node_go go to the process, `ready` and `result` become node_ready and
    node_done. node_abort kills the task's processes here.
*/
#include "pd_worker.h"
#include "pd_beacon.h"
#include "pd_codec.h"
#include "pd_cudrv.h"
#include "pd_error.h"
#include "pd_load.h"
#include "pd_log.h"
#include "pd_modcache.h"
#include "pd_msg.h"
#include "pd_nodeproc.h"
#include "pd_policy.h"
#include "pd_slot.h"

#include "pd_plat.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define S_DONE_BATCH 1024           /* results per `done` message */
#define S_DONE_BYTES (8u << 20)     /* bytes per `done` message (soft) */
#define S_RECV_BURST 256            /* messages read per loop iteration */
#define S_DEFAULT_HB_MS 1000
#define S_DEFAULT_LIVENESS 3
#define S_REQUEUE_CHUNK 4096        /* jobs per `requeue` message */
#define S_MAX_GPU_NAMES 16

/* A module the broker sent us (or found in the cache). */
typedef struct {
    char hash[65];  /* content hash */
    char kind[4];   /* "c", "so", "pkg", "cu" (or "b": built-in) */
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
    char broker[256];      /* broker endpoint in use ("" while discovering) */
    bool connected;        /* sock is connected to broker */
    char *cache_dir;       /* module cache directory */
    char *slot_exe;        /* program exec'ed for slots */
    char *log_level;       /* slots' log level, or NULL */
    char host[256];        /* host name reported */
    char id[19];           /* routing id "w-" + 16 hex */
    int cpus;              /* CPU slots the owner allows */
    int gpus;              /* GPU slots the owner allows (<= ngpu) */
    int nslots;            /* slot processes in slots (>= cpus while some retire) */
    int down_cpus;         /* CPU slots withdrawn (their process cannot start), as last sent */
    int down_gpus;         /* GPU slots likewise */
    int capslots;          /* capacity of slots (items and item_slot hold PD_GPU_MAX more) */
    int ngpu;              /* GPUs the CUDA driver showed at start: GPU slots possible */
    pd_gpu_info_t gpu[PD_GPU_MAX]; /* those GPUs, in the driver's order */
    pd_slot_t *gslots[PD_GPU_MAX]; /* GPU slot g's process; NULL when not running */
    char gpu_names[S_MAX_GPU_NAMES][64]; /* GPU models found on this machine */
    int ngpu_names;        /* entries in gpu_names */
    void *ctx;             /* ZeroMQ context */
    bool own_ctx;          /* ctx was created here (else borrowed from the config) */
    void *sock;            /* DEALER to the broker, owned */
    void *mon;             /* PAIR receiving the socket's handshake events, owned */
    bool secure;           /* the socket runs CurveZMQ */
    pd_keypair_t key;      /* this worker's key pair (secure only) */
    char broker_key[PD_KEY_TXT]; /* the broker key we accept (secure only) */
    bool fixed_key;        /* broker_key was given (--broker-key), not looked up */
    char *config_dir;      /* where known_brokers is (secure only), owned */
    pd_policy_t *policy;   /* whose code runs here, owned */
    pd_log_limit_t limit;  /* rate of handshake and refusal log lines */
    char untrusted[8][320]; /* "endpoint key" of untrusted beacons already warned about */
    int nuntrusted;        /* next slot of untrusted (a ring) */
    void *ctl;             /* REP control socket, owned, or NULL */
    char *control;         /* control socket path, owned, or NULL */
    pd_beacon_listener_t *listener; /* beacon listener (discovery), owned, or NULL */
    char cluster[PD_BEACON_NAME_MAX + 1]; /* cluster name looked for */
    int discover_timeout_ms; /* warn after this long without a beacon */
    int64_t discover_since;  /* when discovery started (0: warned already) */
    pd_modcache_t *mc;     /* module cache */
    pd_slot_t **slots;     /* nslots slot handles, owned */
    zmq_pollitem_t *items; /* poll set: fixed sockets, live slots, then nodes */
    int *item_slot;        /* slot index of items[i] (i >= nfixed; -1 - k: node k) */
    pd_nodeproc_t **nodes; /* node processes of synchronous tasks, owned (capslots +
                              PD_GPU_MAX) */
    int nnodes;            /* entries in nodes (at most cpus when started) */
    pd_nodeproc_t **gone;  /* ended nodes whose process is still exiting, owned (2 x
                              (capslots + PD_GPU_MAX)) */
    int ngone;             /* entries in gone */
    char node_addr[256];   /* address nodes bind their tubes on ("" until known) */
    bool node_addr_given;  /* node_addr came from the configuration */
    bool tubes_curve;      /* nodes' tubes run CurveZMQ (secure broker connection, or
                              cfg.tubes_curve) */
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
    int64_t last_state;    /* when we last sent our state (`hb` with fields) */
    uint64_t ndone;        /* results sent, for logs */
    uint64_t requeued;     /* jobs handed back to the broker */
    pd_worker_idle_t idle; /* idle policy (load_max 0 = off) */
    pd_load_t *load;       /* owner-load sampler, or NULL when the policy is off */
    char *proc_dir;        /* procfs for the sampler, owned */
    double owner_load;     /* last measured owner load (< 0: unknown) */
    bool owner_active;     /* the owner uses the machine: slots held back */
    int64_t next_check;    /* when the load is measured next */
    int64_t low_since;     /* since when the load has been low (0: it is not) */
    volatile sig_atomic_t *reload;                 /* SIGHUP flag, or NULL */
    void (*on_reload)(pd_worker_t *w, void *user); /* reload callback, or NULL */
    void *reload_user;                             /* its argument */
    int idle_exit_ms;      /* leave after this long without a job; 0 = never */
    int64_t idle_since;    /* when the worker last had a job queued or running */
    char slurm_job[32];    /* Slurm job id reported in `ready`, or "" */
    char slurm_step[32];   /* Slurm step id reported, or "" */
    char slurm_array[48];  /* Slurm "ARRAYJOB_TASK" reported, or "" */
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

/* Jobs queued here, both classes. */
static size_t s_queued(const pd_worker_t *w) { return w->q[S_CPU].len + w->q[S_GPU].len; }

/* ---- slots, CPU and GPU --------------------------------------------------- */

/* Every slot process, CPU slots first: k in 0 .. s_nall(w)-1; NULL for a
   GPU slot that is not running. */
static int s_nall(const pd_worker_t *w) { return w->nslots + w->ngpu; }
static pd_slot_t *s_slot(const pd_worker_t *w, int k)
{
    return k < w->nslots ? w->slots[k] : w->gslots[k - w->nslots];
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

/* The owner's CPU slots less those whose process cannot start
   (pd_slot_unavailable): the slots that can run jobs. */
static int s_cpus_up(const pd_worker_t *w)
{
    int n = w->cpus;
    for (int i = 0; i < w->nslots && i < w->cpus; i++)
        n -= pd_slot_unavailable(w->slots[i]);
    return n;
}

/* The same for GPU slots. */
static int s_gpus_up(const pd_worker_t *w)
{
    int n = w->gpus;
    for (int g = 0; g < w->gpus; g++)
        n -= w->gslots[g] && pd_slot_unavailable(w->gslots[g]);
    return n;
}

/* Slots offered to the broker now: none while the owner uses the machine,
   and never one whose process cannot start. */
static int s_offered(const pd_worker_t *w) { return w->owner_active ? 0 : s_cpus_up(w); }
static int s_offered_gpus(const pd_worker_t *w) { return w->owner_active ? 0 : s_gpus_up(w); }

static int s_busy(const pd_worker_t *w)
{
    int busy = 0;
    for (int k = 0; k < s_nall(w); k++)
        busy += s_slot(w, k) && pd_slot_busy(s_slot(w, k));
    return busy;
}

/* Packs the optional state fields of `ready` and `hb` (4 fields). */
static void s_pack_state(pd_worker_t *w, msgpack_packer *pk)
{
    pd_pack_kv_uint(pk, "busy", (uint64_t) s_busy(w));
    pd_pack_kv_uint(pk, "queued", (uint64_t) s_queued(w));
    pd_pack_kv_double(pk, "load", w->owner_load);
    pd_pack_kv_str(pk, "owner", w->idle.load_max <= 0 ? "" : w->owner_active ? "owner" : "idle");
}

static void s_send_ready(pd_worker_t *w)
{
    if (!w->connected)
        return;
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    int gpus = s_offered_gpus(w);
    uint32_t nslurm = (w->slurm_job[0] != 0) + (w->slurm_step[0] != 0) + (w->slurm_array[0] != 0);
    pd_msg_begin(&pk, "ready", (w->ngpu ? 11 : 10) + nslurm);
    pd_pack_kv_str(&pk, "host", w->host);
    pd_pack_kv_str(&pk, "platform", pd_plat_name());
    pd_pack_kv_uint(&pk, "pid", (uint64_t) pd_plat_getpid());
    pd_pack_kv_uint(&pk, "cpus", (uint64_t) s_offered(w));
    pd_pack_kv_uint(&pk, "gpus", (uint64_t) gpus);
    pd_pack_cstr(&pk, "gpu_names");
    msgpack_pack_array(&pk, (uint32_t) w->ngpu_names);
    for (int i = 0; i < w->ngpu_names; i++)
        pd_pack_cstr(&pk, w->gpu_names[i]);
    if (w->ngpu) {
        /* Every GPU it can offer, in slot order (the first `gpus` are
           offered now), with its memory and compute capability. */
        pd_pack_cstr(&pk, "gpu_info");
        msgpack_pack_array(&pk, (uint32_t) w->ngpu);
        for (int i = 0; i < w->ngpu; i++) {
            msgpack_pack_map(&pk, 4);
            pd_pack_kv_str(&pk, "name", w->gpu[i].name);
            pd_pack_kv_uint(&pk, "mem", w->gpu[i].mem);
            pd_pack_kv_uint(&pk, "cc_major", (uint64_t) w->gpu[i].cc_major);
            pd_pack_kv_uint(&pk, "cc_minor", (uint64_t) w->gpu[i].cc_minor);
        }
    }
    s_pack_state(w, &pk);
    if (w->slurm_job[0])
        pd_pack_kv_str(&pk, "slurm_job", w->slurm_job);
    if (w->slurm_step[0])
        pd_pack_kv_str(&pk, "slurm_step", w->slurm_step);
    if (w->slurm_array[0])
        pd_pack_kv_str(&pk, "slurm_array", w->slurm_array);
    s_send(w, &b);
    pd_buf_free(&b);
    w->last_ready = w->last_state = pd_slot_now_ms();
}

/* Tells the broker the slots offered now. */
static void s_send_slots(pd_worker_t *w)
{
    if (!w->connected || !w->registered)
        return; /* the next `ready` carries them */
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "slots", 2);
    pd_pack_kv_uint(&pk, "cpus", (uint64_t) s_offered(w));
    pd_pack_kv_uint(&pk, "gpus", (uint64_t) s_offered_gpus(w));
    s_send(w, &b);
    pd_buf_free(&b);
}

/* A heartbeat that carries the worker's state (every hb_ms). */
static void s_send_state(pd_worker_t *w)
{
    if (!w->connected || !w->registered)
        return;
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "hb", 4);
    s_pack_state(w, &pk);
    s_send(w, &b);
    pd_buf_free(&b);
    w->last_state = pd_slot_now_ms();
}

/* Hands every job of queue q back to the broker (`requeue`, no attempt
   counted), in messages of at most S_REQUEUE_CHUNK jobs. */
static void s_give_back_queue(pd_worker_t *w, s_queue_t *q, const char *why)
{
    if (!q->len)
        return;
    size_t total = q->len;
    while (q->len) {
        size_t n = q->len < S_REQUEUE_CHUNK ? q->len : S_REQUEUE_CHUNK;
        pd_buf_t b;
        pd_buf_init(&b);
        msgpack_packer pk;
        pd_packer_init(&pk, &b);
        pd_msg_begin(&pk, "requeue", 1);
        pd_pack_cstr(&pk, "jobs");
        msgpack_pack_array(&pk, (uint32_t) n);
        for (size_t i = 0; i < n; i++) {
            pd_job_t *job = s_q_pop(q);
            msgpack_pack_array(&pk, 2);
            msgpack_pack_uint64(&pk, job->id);
            msgpack_pack_uint64(&pk, job->attempt);
            pd_job_destroy(&job);
        }
        if (w->connected)
            s_send(w, &b);
        pd_buf_free(&b);
    }
    w->requeued += total;
    pd_log_info("handed %zu %sjobs back to the broker (%s)", total, q == &w->q[S_GPU] ? "GPU " : "",
                why);
}

/* Hands every job queued here, CPU and GPU, back to the broker. */
static void s_give_back(pd_worker_t *w, const char *why)
{
    s_give_back_queue(w, &w->q[S_CPU], why);
    s_give_back_queue(w, &w->q[S_GPU], why);
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
    /* The reserved module of built-in tasks (exec) needs no code. */
    static const s_mod_t builtin = {.hash = "builtin", .kind = "b", .name = "builtin"};
    if (strcmp(hash, "builtin") == 0)
        return &builtin;
    for (size_t i = 0; i < w->nmods; i++)
        if (strcmp(w->mods[i].hash, hash) == 0)
            return &w->mods[i];
    const char *kind = pd_modcache_has(w->mc, hash, "c")     ? "c"
                       : pd_modcache_has(w->mc, hash, "so")  ? "so"
                       : pd_modcache_has(w->mc, hash, "pkg") ? "pkg"
                       : pd_modcache_has(w->mc, hash, "cu")  ? "cu"
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

/* Whether the code of a job or node may run here: module mod and, when cu
   is not "", CUDA module cu, sent by the key client, under the owner's code
   policy, and both in the cache. Returns 0 with *mm and *cm (NULL without
   cu) set; PD_EREFUSED (logged, rate-limited, as `refused WHAT: ...`) or
   PD_ENOMODULE with the sentence in msg. */
static int s_code_check(pd_worker_t *w, const char *client, const char *mod, const char *cu,
                        const char *what, const s_mod_t **mm, const s_mod_t **cm, char *msg,
                        size_t cap)
{
    *mm = s_mod_find(w, mod);
    *cm = cu[0] ? s_mod_find(w, cu) : NULL;
    if (!pd_policy_allows(w->policy, client, mod, *mm ? (*mm)->name : mod, msg, cap) ||
        (cu[0] && !pd_policy_allows(w->policy, client, cu, *cm ? (*cm)->name : cu, msg, cap))) {
        uint32_t swallowed = 0;
        if (pd_log_limit_pass(&w->limit, 20, 10000, &swallowed))
            pd_log_warn("refused %s: %s%s", what, msg, swallowed ? " (and more refusals)" : "");
        return PD_EREFUSED;
    }
    if (!*mm || (cu[0] && (!*cm || strcmp((*cm)->kind, "cu") != 0))) {
        snprintf(msg, cap, "%smodule %.64s is not on worker %s (the broker sent no 'mod' for it)",
                 *mm ? "CUDA " : "", *mm ? cu : mod, w->host);
        return PD_ENOMODULE;
    }
    return 0;
}

static void s_on_shr(pd_worker_t *w, const pd_msg_t *m)
{
    char hash[80];
    const void *data;
    uint32_t len;
    if (pd_msg_str(m, "hash", hash, sizeof hash) || pd_msg_bytes(m, "data", &data, &len)) {
        pd_log_warn("broker sent a bad 'shr': %s", m->why);
        return;
    }
    char why[256];
    if (pd_modcache_store_shared(w->mc, hash, data, len, why, sizeof why)) {
        pd_log_error("cannot store shared data %.12s: %s", hash, why);
        return;
    }
    pd_log_debug("shared data %.12s (%u bytes) stored", hash, len);
}

static void s_on_shr_drop(pd_worker_t *w, const pd_msg_t *m)
{
    char hash[80];
    if (pd_msg_str(m, "hash", hash, sizeof hash)) {
        pd_log_warn("broker sent a bad 'shr_drop': %s", m->why);
        return;
    }
    pd_modcache_drop_shared(w->mc, hash);
    pd_log_debug("shared data %.12s dropped", hash);
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
        memcpy(k->kind, kind, strlen(kind) + 1); /* "c", "so" or "cu": checked by the store */
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
        /* Then shared (a hash, or nil), the submitter (an index into
           `clients`; anything else counts as a job without a key), then for
           a GPU job gpu (bool) and cu (a hash or nil). */
        char shared[80] = "", cu[80] = "";
        char client[PD_KEY_TXT] = "";
        bool gpu = false;
        uint32_t used = 6;
        if (k >= 7) {
            if (pd_rd_peek(&r) == PD_MP_STR ? pd_rd_strcpy(&r, shared, sizeof shared) != 0
                                            : pd_rd_skip(&r, NULL, NULL) != 0) {
                pd_log_warn("broker sent a bad 'run': job %u has a bad shared-data hash; "
                            "ignoring the rest", i);
                return;
            }
            used = 7;
        }
        if (k >= 8) {
            uint64_t ci;
            if (pd_rd_peek(&r) == PD_MP_UINT && pd_rd_uint(&r, &ci) == 0) {
                if (ci < nclients && clen[ci] < sizeof client) {
                    memcpy(client, cptr[ci], clen[ci]);
                    client[clen[ci]] = 0;
                }
            } else if (pd_rd_skip(&r, NULL, NULL)) {
                pd_log_warn("broker sent a bad 'run': job %u is malformed; ignoring the rest", i);
                return;
            }
            used = 8;
        }
        if (k >= 10) {
            if (pd_rd_bool(&r, &gpu) || (pd_rd_peek(&r) == PD_MP_NIL
                                             ? pd_rd_nil(&r)
                                             : pd_rd_strcpy(&r, cu, sizeof cu))) {
                pd_log_warn("broker sent a bad 'run': job %u's gpu and cu are not [bool, hash "
                            "or nil]; ignoring the rest", i);
                return;
            }
            used = 10;
        }
        for (uint32_t extra = used; extra < k; extra++)
            pd_rd_skip(&r, NULL, NULL); /* forward compatibility */
        const s_mod_t *mm, *cm;
        char msg[800], what[48];
        snprintf(what, sizeof what, "job %llu", (unsigned long long) id);
        int code = s_code_check(w, client, mod, cu, what, &mm, &cm, msg, sizeof msg);
        if (code) {
            s_fail_job(w, id, attempt, code, msg);
            continue;
        }
        if (gpu && w->ngpu == 0) {
            snprintf(msg, sizeof msg, "worker %s has no GPU slot, yet the broker sent it a GPU "
                     "job", w->host);
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
        snprintf(job->shared, sizeof job->shared, "%s", shared);
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
    for (int k = 0; k < s_nall(w); k++)
        if (s_slot(w, k))
            dropped += pd_slot_cancel(s_slot(w, k), s_is_cancelled, w);
    w->cancel = NULL;
    w->ncancel = 0;
    free(ids);
    pd_log_debug("cancel: %zu of %u jobs were here", dropped, n);
}

/* ---- nodes of synchronous tasks ----------------------------------------- */

/* Sends node_done {task, node, try, ok, val, us} (try: the broker's attempt
   at starting the task, echoed so that it can tell an old attempt's
   messages from the current one's). */
static void s_send_node_done(pd_worker_t *w, uint64_t task, uint64_t node, uint64_t attempt,
                             bool ok, const uint8_t *val, size_t len, uint64_t us)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "node_done", 6);
    pd_pack_kv_uint(&pk, "task", task);
    pd_pack_kv_uint(&pk, "node", node);
    pd_pack_kv_uint(&pk, "try", attempt);
    pd_pack_kv_bool(&pk, "ok", ok);
    pd_pack_cstr(&pk, "val");
    pd_pack_raw(&pk, val, len);
    pd_pack_kv_uint(&pk, "us", us);
    s_send(w, &b);
    pd_buf_free(&b);
}

/* Reports a node that could not start here. */
static void s_fail_node(pd_worker_t *w, uint64_t task, uint64_t node, uint64_t attempt, int code,
                        const char *msg)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    msgpack_pack_map(&pk, 2);
    pd_pack_kv_str(&pk, "code", pd_err_name(code));
    pd_pack_kv_str(&pk, "msg", msg);
    if (!b.failed)
        s_send_node_done(w, task, node, attempt, false, b.data, b.len, 0);
    pd_buf_free(&b);
}

static void s_node_progress(pd_worker_t *w, pd_nodeproc_t *nd, const char *type, const char *ep,
                            const char *key)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, type, 3 + (ep != NULL) + (key != NULL));
    pd_pack_kv_uint(&pk, "task", pd_nodeproc_task(nd));
    pd_pack_kv_uint(&pk, "node", pd_nodeproc_index(nd));
    pd_pack_kv_uint(&pk, "try", pd_nodeproc_attempt(nd));
    if (ep)
        pd_pack_kv_str(&pk, "ep", ep);
    if (key)
        pd_pack_kv_str(&pk, "key", key);
    s_send(w, &b);
    pd_buf_free(&b);
}

static void s_on_node_bound(void *user, pd_nodeproc_t *nd, const char *ep, const char *key)
{
    s_node_progress(user, nd, "node_bound", ep, key);
}

static void s_on_node_ready(void *user, pd_nodeproc_t *nd)
{
    s_node_progress(user, nd, "node_ready", NULL, NULL);
}

static void s_on_node_result(void *user, pd_nodeproc_t *nd, bool ok, const uint8_t *val,
                             size_t len, uint64_t us)
{
    pd_worker_t *w = user;
    pd_log_debug("task %llu node %u %s after %llu us", (unsigned long long) pd_nodeproc_task(nd),
                 pd_nodeproc_index(nd), ok ? "done" : "failed", (unsigned long long) us);
    s_send_node_done(w, pd_nodeproc_task(nd), pd_nodeproc_index(nd), pd_nodeproc_attempt(nd), ok,
                     val, len, us);
}

/* A node's progress report: node_progress {task, node, val} to the broker. */
static void s_on_node_report(void *user, pd_nodeproc_t *nd, const uint8_t *val, size_t len)
{
    pd_worker_t *w = user;
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "node_progress", 4);
    pd_pack_kv_uint(&pk, "task", pd_nodeproc_task(nd));
    pd_pack_kv_uint(&pk, "node", pd_nodeproc_index(nd));
    pd_pack_kv_uint(&pk, "try", pd_nodeproc_attempt(nd));
    pd_pack_cstr(&pk, "val");
    pd_pack_raw(&pk, val, len);
    s_send(w, &b);
    pd_buf_free(&b);
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
   window, window_bytes, client}: starts a node process and sends it
   `start`, when the code policy lets the submitter's code run here. */
static void s_on_node_start(pd_worker_t *w, const pd_msg_t *m)
{
    uint64_t task, node, n, attempt = 0;
    char mod[80], fn[128], client[PD_KEY_TXT] = "";
    if (pd_msg_uint(m, "task", &task) || pd_msg_uint(m, "node", &node)
        || pd_msg_uint(m, "n", &n) || pd_msg_str(m, "mod", mod, sizeof mod)
        || pd_msg_str(m, "fn", fn, sizeof fn) || pd_msg_uint_opt(m, "try", &attempt)) {
        pd_log_warn("broker sent a bad 'node_start': %s", m->why);
        return;
    }
    /* The submitter's key; anything else counts as a task without a key. */
    if (pd_msg_has(m, "client") && pd_msg_str(m, "client", client, sizeof client))
        client[0] = 0;
    /* A GPU node, and its CUDA module. */
    bool gpu = false;
    char cu[80] = "";
    if ((pd_msg_has(m, "gpu") && pd_msg_bool(m, "gpu", &gpu))
        || (pd_msg_has(m, "cu") && pd_msg_str(m, "cu", cu, sizeof cu))) {
        pd_log_warn("broker sent a bad 'node_start': %s", m->why);
        return;
    }
    char msg[800];
    const s_mod_t *mm, *cm;
    char what[64];
    snprintf(what, sizeof what, "task %llu node %llu", (unsigned long long) task,
             (unsigned long long) node);
    int code = s_code_check(w, client, mod, cu, what, &mm, &cm, msg, sizeof msg);
    if (code) {
        s_fail_node(w, task, node, attempt, code, msg);
        return;
    }
    if (s_node_find(w, task, node) >= 0) {
        pd_log_warn("broker started task %llu node %llu twice; ignored",
                    (unsigned long long) task, (unsigned long long) node);
        return;
    }
    /* A GPU node goes to the GPU with the fewest nodes; CPU nodes count
       against the CPU slots. */
    int on_gpu = -1, cpu_nodes = 0, per_gpu[PD_GPU_MAX] = {0};
    for (int i = 0; i < w->nnodes; i++) {
        int g = pd_nodeproc_gpu(w->nodes[i]);
        if (g >= 0 && g < PD_GPU_MAX)
            per_gpu[g]++;
        else
            cpu_nodes++;
    }
    int gpus = s_gpus_up(w);
    for (int g = 0; gpu && g < gpus && g < PD_GPU_MAX; g++)
        if (on_gpu < 0 || per_gpu[g] < per_gpu[on_gpu])
            on_gpu = g;
    if (gpu && on_gpu < 0) {
        snprintf(msg, sizeof msg, "worker %s has no GPU slot, yet the broker sent it a GPU node",
                 w->host);
        s_fail_node(w, task, node, attempt, PD_ENOGPU, msg);
        return;
    }
    if (w->nnodes >= w->capslots + PD_GPU_MAX ||
        (gpu ? per_gpu[on_gpu] > 0 : cpu_nodes >= w->cpus || cpu_nodes >= w->capslots)) {
        snprintf(msg, sizeof msg, "worker %s already runs %d nodes on its %d %s slots", w->host,
                 gpu ? per_gpu[on_gpu] : cpu_nodes, gpu ? gpus : w->cpus, gpu ? "GPU" : "CPU");
        s_fail_node(w, task, node, attempt, PD_EOVERLOAD, msg);
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
    /* mod, kind, name, fn, addr (, curve) (, gpu (, cu, cu_name)) */
    uint32_t nf = 5 + w->tubes_curve + (gpu ? 1 + 2 * (cm != NULL) : 0);
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
    if (w->tubes_curve)
        pd_pack_kv_bool(&pk, "curve", true);
    if (gpu) {
        pd_pack_kv_uint(&pk, "gpu", (uint64_t) on_gpu);
        if (cm) {
            pd_pack_kv_str(&pk, "cu", cm->hash);
            pd_pack_kv_str(&pk, "cu_name", cm->name);
        }
    }
    char visible[64] = "";
    if (gpu)
        s_visible_for(on_gpu, visible, sizeof visible);
    int err = PD_ENOMEM;
    pd_nodeproc_t *nd = NULL;
    if (!b.failed) {
        pd_nodeproc_config_t nc = {.exe = w->slot_exe, .cache_dir = w->cache_dir,
                                   .host = w->host, .log_level = w->log_level, .task = task,
                                   .node = (uint32_t) node, .attempt = attempt, .gpu = on_gpu,
                                   .cuda_visible = visible,
                                   .sink = {s_on_node_bound, s_on_node_ready, s_on_node_result,
                                            w, s_on_node_report}};
        nd = pd_nodeproc_new(&nc, b.data, b.len, &err);
    }
    pd_buf_free(&b);
    if (!nd) {
        snprintf(msg, sizeof msg, "worker %s could not start a node process (%s)", w->host,
                 pd_strerror(err));
        s_fail_node(w, task, node, attempt, err, msg);
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

/* node_stop {task}: asks this worker's nodes of the task to stop at their
   next step (pd_node_stopping), keeping their results. */
static void s_on_node_stop(pd_worker_t *w, const pd_msg_t *m)
{
    uint64_t task;
    if (pd_msg_uint(m, "task", &task)) {
        pd_log_warn("broker sent a bad 'node_stop': %s", m->why);
        return;
    }
    int told = 0;
    for (int i = 0; i < w->nnodes; i++)
        if (pd_nodeproc_task(w->nodes[i]) == task && pd_nodeproc_send_stop(w->nodes[i]) == 0)
            told++;
    pd_log_debug("task %llu: stop asked of %d nodes here", (unsigned long long) task, told);
}

/* Moves ended nodes out of the running list (their slots are free again)
   and reaps the processes of ended nodes without blocking. */
static void s_reap_nodes(pd_worker_t *w)
{
    for (int i = w->nnodes; i-- > 0;) {
        if (!pd_nodeproc_ended(w->nodes[i]))
            continue;
        if (w->ngone == 2 * (w->capslots + PD_GPU_MAX)) /* bounded: the oldest goes now */
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
    for (int k = 0; k < s_nall(w); k++) {
        pd_slot_t *sl = s_slot(w, k);
        if (!sl)
            continue;
        running += pd_slot_busy(sl);
        pd_slot_abort(sl);
    }
    pd_log_warn("broker reset this worker: dropping %zu queued and %zu running jobs and %d "
                "nodes, registering again", s_queued(w), running, w->nnodes);
    s_kill_nodes(w);
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
        pd_log_info("registered with broker %s as %s (%d cpus, %d gpus offered; heartbeat %d "
                    "ms x %d)", w->broker, w->id, s_offered(w), s_offered_gpus(w), w->hb_ms,
                    w->liveness);
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
    else if (pd_msg_is(&m, "shr"))
        s_on_shr(w, &m);
    else if (pd_msg_is(&m, "shr_drop"))
        s_on_shr_drop(w, &m);
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
    else if (pd_msg_is(&m, "node_stop"))
        s_on_node_stop(w, &m);
    else if (pd_msg_is(&m, "node_abort"))
        s_on_node_abort(w, &m);
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

/* ---- slots: the owner's limit -------------------------------------------- */

/* Grows the slot arrays to hold n slots. Returns 0 or PD_ENOMEM. */
static int s_reserve_slots(pd_worker_t *w, int n)
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
    int code = s_reserve_slots(w, w->cpus);
    if (code)
        return code;
    while (w->nslots < w->cpus) {
        /* CPU slots see no GPU (CUDA_VISIBLE_DEVICES=""): GPU work goes
           where the broker placed it. */
        pd_slot_config_t sc = {.index = w->nslots, .exe = w->slot_exe, .cache_dir = w->cache_dir,
                               .host = w->host, .log_level = w->log_level, .cuda_visible = "",
                               .sink = {s_on_result, s_on_requeue, w}};
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
        s_visible_for(g, visible, sizeof visible);
        int code = 0;
        pd_slot_config_t sc = {.index = PD_WORKER_GPU_SLOT0 + g, .exe = w->slot_exe,
                               .cache_dir = w->cache_dir, .host = w->host,
                               .log_level = w->log_level, .has_gpu = true, .gpu = g,
                               .cuda_visible = visible, .sink = {s_on_result, s_on_requeue, w}};
        if (!(w->gslots[g] = pd_slot_new(&sc, &code)))
            return code;
    }
    return 0;
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
    if (qmax > w->q[S_CPU].max)
        w->q[S_CPU].max = qmax;
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
    s_send_slots(w);
    if (now) {
        for (int i = w->cpus; i < w->nslots; i++)
            if (pd_slot_busy(w->slots[i]))
                pd_slot_retire(w->slots[i], false);
        for (int g = w->gpus; g < w->ngpu; g++)
            if (w->gslots[g] && pd_slot_busy(w->gslots[g]))
                pd_slot_retire(w->gslots[g], false);
    }
    s_retire_idle_slots(w);
    if (now || w->cpus == 0)
        s_give_back_queue(w, &w->q[S_CPU], w->cpus == 0 ? "no slot left"
                                                          : "the owner lowered the slots, --now");
    if (now || w->gpus == 0)
        s_give_back_queue(w, &w->q[S_GPU], w->gpus == 0 ? "no GPU slot left"
                                                          : "the owner lowered the GPUs, --now");
    if (cpus != old || gpus != oldg)
        pd_log_info("the owner set %d cpus and %d gpus (were %d and %d)%s", cpus, gpus, old, oldg,
                    w->nslots > cpus ? "; slots over the limit finish their jobs" : "");
    return 0;
}

/* ---- idle policy -------------------------------------------------------- */

/* The owner came back: hold the slots back, suspend or hand back jobs. */
static void s_owner_back(pd_worker_t *w)
{
    w->owner_active = true;
    w->low_since = 0;
    s_send_slots(w);
    s_send_state(w);
    int held = 0;
    for (int k = 0; k < s_nall(w); k++) {
        pd_slot_t *sl = s_slot(w, k);
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
    s_give_back(w, "the machine's owner is back");
}

/* The machine is idle again: resume and offer the slots. */
static void s_owner_gone(pd_worker_t *w, const char *why)
{
    w->owner_active = false;
    for (int k = 0; k < s_nall(w); k++)
        if (s_slot(w, k))
            pd_slot_suspend(s_slot(w, k), false);
    s_send_slots(w);
    s_send_state(w);
    pd_log_info("%s: offering %d cpus again", why, w->cpus);
}

/* Measures the owner's load and applies the policy; call every check_ms. */
static void s_check_idle(pd_worker_t *w, int64_t now)
{
    w->next_check = now + w->idle.check_ms;
    if (!w->load)
        return;
    int pids[1 + PD_WORKER_MAX_CPUS + PD_GPU_MAX];
    size_t n = 0;
    pids[n++] = pd_plat_getpid();
    for (int k = 0; k < s_nall(w) && n < sizeof pids / sizeof pids[0]; k++)
        if (s_slot(w, k) && pd_slot_pid(s_slot(w, k)) > 0)
            pids[n++] = pd_slot_pid(s_slot(w, k));
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

/* ---- control socket ----------------------------------------------------- */

void pd_worker_stats(pd_worker_t *w, pd_worker_stats_t *out)
{
    *out = (pd_worker_stats_t){.cpus = w->cpus, .gpus = w->gpus, .offered = s_offered(w),
                               .down = (w->cpus - s_cpus_up(w)) + (w->gpus - s_gpus_up(w)),
                               .slots = w->nslots, .busy = s_busy(w), .queued = (int) s_queued(w),
                               .registered = w->registered, .owner_active = w->owner_active,
                               .load = w->owner_load, .done = w->ndone,
                               .requeued = w->requeued, .broker = w->broker};
}

static void s_ctl_reply(pd_worker_t *w, int code, const char *why)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    if (code) {
        pd_msg_begin(&pk, "error", 2);
        pd_pack_kv_str(&pk, "code", pd_err_name(code));
        pd_pack_kv_str(&pk, "msg", why);
    } else {
        pd_worker_stats_t st;
        pd_worker_stats(w, &st);
        pd_msg_begin(&pk, "ctl_ok", 15);
        pd_pack_kv_str(&pk, "id", w->id);
        pd_pack_kv_str(&pk, "host", w->host);
        pd_pack_kv_str(&pk, "broker", st.broker);
        pd_pack_kv_bool(&pk, "registered", st.registered);
        pd_pack_kv_uint(&pk, "cpus", (uint64_t) st.cpus);
        pd_pack_kv_uint(&pk, "gpus", (uint64_t) st.gpus);
        pd_pack_kv_uint(&pk, "offered", (uint64_t) st.offered);
        pd_pack_kv_uint(&pk, "slots", (uint64_t) st.slots);
        pd_pack_kv_uint(&pk, "down", (uint64_t) st.down);
        pd_pack_kv_uint(&pk, "busy", (uint64_t) st.busy);
        pd_pack_kv_uint(&pk, "queued", (uint64_t) st.queued);
        pd_pack_kv_uint(&pk, "done", st.done);
        pd_pack_kv_uint(&pk, "requeued", st.requeued);
        pd_pack_kv_bool(&pk, "owner", st.owner_active);
        pd_pack_kv_double(&pk, "load", st.load);
    }
    if (!b.failed)
        zmq_send(w->ctl, b.data, b.len, ZMQ_DONTWAIT);
    pd_buf_free(&b);
}

/* One control request: `ctl {cpus?, gpus?, now?}`; answers ctl_ok or error. */
static void s_on_ctl(pd_worker_t *w)
{
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, w->ctl, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return;
    }
    pd_msg_t m;
    char why[256];
    int code = pd_msg_parse(&m, zmq_msg_data(&msg), zmq_msg_size(&msg));
    if (code) {
        snprintf(why, sizeof why, "%s", m.why);
    } else if (!pd_msg_is(&m, "ctl")) {
        code = PD_ETYPE;
        snprintf(why, sizeof why, "the control socket takes 'ctl' requests, not '%s'", m.type);
    } else {
        uint64_t cpus = (uint64_t) w->cpus, gpus = (uint64_t) w->gpus;
        bool now = false;
        if ((code = pd_msg_uint_opt(&m, "cpus", &cpus)) ||
            (code = pd_msg_uint_opt(&m, "gpus", &gpus)) ||
            (pd_msg_has(&m, "now") && (code = pd_msg_bool(&m, "now", &now)))) {
            snprintf(why, sizeof why, "%s", m.why);
        } else if (cpus > PD_WORKER_MAX_CPUS || gpus > PD_WORKER_MAX_GPUS) {
            code = PD_EINVAL;
            snprintf(why, sizeof why, "cpus must be from 0 to %d and gpus from 0 to %d (got %llu "
                     "and %llu)", PD_WORKER_MAX_CPUS, PD_WORKER_MAX_GPUS,
                     (unsigned long long) cpus, (unsigned long long) gpus);
        } else if (pd_msg_has(&m, "cpus") || pd_msg_has(&m, "gpus") || now) {
            code = pd_worker_set_slots(w, (int) cpus, (int) gpus, now, why, sizeof why);
        }
    }
    zmq_msg_close(&msg);
    if (code)
        pd_log_warn("control request refused: %s", why);
    s_ctl_reply(w, code, why);
}

/* Binds the control socket at path with mode; refuses when another worker
   answers there. Returns 0 or PD_EIO (logged). */
static int s_bind_control(pd_worker_t *w, const char *path, int mode)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        if (pd_plat_mkdir(dir, 0755) != 0 && errno != EEXIST) {
            pd_log_error("cannot create the directory of the control socket %s: %s", dir,
                         strerror(errno));
            return PD_EIO;
        }
    }
    char ep[4200];
    struct stat st;
    if (stat(path, &st) == 0 && pd_plat_control_endpoint(path, ep, sizeof ep) == 0) {
        /* A socket file is there: is a worker alive behind it? */
        void *probe = zmq_socket(w->ctx, ZMQ_REQ);
        int zero = 0, wait = 300;
        zmq_setsockopt(probe, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(probe, ZMQ_RCVTIMEO, &wait, sizeof wait);
        zmq_setsockopt(probe, ZMQ_SNDTIMEO, &wait, sizeof wait);
        bool alive = false;
        if (zmq_connect(probe, ep) == 0) {
            pd_buf_t b;
            pd_buf_init(&b);
            msgpack_packer pk;
            pd_packer_init(&pk, &b);
            pd_msg_begin(&pk, "ctl", 0);
            char reply[16];
            alive = zmq_send(probe, b.data, b.len, 0) >= 0 &&
                    zmq_recv(probe, reply, sizeof reply, 0) >= 0;
            pd_buf_free(&b);
        }
        zmq_close(probe);
        if (alive) {
            pd_log_error("another playdoh-worker answers on the control socket %s: stop it, or "
                         "give this one another [worker] control path", path);
            return PD_EIO;
        }
        unlink(path);
    }
    w->ctl = zmq_socket(w->ctx, ZMQ_REP);
    int zero = 0;
    zmq_setsockopt(w->ctl, ZMQ_LINGER, &zero, sizeof zero);
    char why[512];
    if (pd_plat_control_bind(w->ctl, path, mode, why, sizeof why)) {
        pd_log_error("cannot open the control socket %s: %s", path, why);
        return PD_EIO;
    }
    if (!(w->control = strdup(path)))
        return PD_EIO;
    pd_log_info("control socket %s (mode %04o): `playdoh-worker ctl --cpus N` changes the "
                "slots", path, mode);
    return 0;
}

/* ---- discovery ---------------------------------------------------------- */

/* Connects the broker socket to ep (after a disconnect from the old one);
   with CurveZMQ, accepting only w->broker_key there. */
static int s_connect(pd_worker_t *w, const char *ep)
{
    if (w->connected) {
        zmq_disconnect(w->sock, w->broker);
        w->connected = false;
    }
    if (w->secure && pd_auth_apply_client(w->sock, &w->key, w->broker_key)) {
        pd_log_error("cannot set up CurveZMQ towards %s: %s", ep, zmq_strerror(errno));
        return PD_ESYS;
    }
    if (zmq_connect(w->sock, ep)) {
        pd_log_error("cannot connect to broker '%s': %s (expected an endpoint such as "
                     "tcp://host:5555)", ep, zmq_strerror(errno));
        return PD_EINVAL;
    }
    snprintf(w->broker, sizeof w->broker, "%s", ep);
    w->connected = true;
    /* Nodes bind where the other workers can reach them: the address this
       machine uses towards the broker, unless --node-addr says otherwise. */
    if (!w->node_addr_given && pd_worker_route_addr(ep, w->node_addr, sizeof w->node_addr)) {
        if (strncmp(ep, "tcp://", 6) == 0)
            pd_log_warn("cannot tell which address reaches the broker %s: nodes of synchronous "
                        "tasks bind on 127.0.0.1 (give --node-addr ADDR on a real network)", ep);
        snprintf(w->node_addr, sizeof w->node_addr, "127.0.0.1");
    }
    w->registered = false;
    w->last_recv = pd_slot_now_ms();
    s_send_ready(w);
    return 0;
}

/* With CurveZMQ, decides whether the broker a beacon announces at ep is
   one we trust, and sets w->broker_key: a key the beacon carries must be
   trusted (for ep, or for any address: `*` in known_brokers); a beacon
   without a key leaves it to known_brokers. A forged beacon thus leads
   nowhere. Returns false (logged, at a bounded rate, with the command that
   would trust it) when not. */
static bool s_trust_beacon(pd_worker_t *w, const pd_beacon_t *b, const char *ep)
{
    char key[PD_KEY_TXT] = "", why[800];
    if (b->has_key)
        zmq_z85_encode(key, b->key, PD_BEACON_KEY_BYTES);
    if (w->fixed_key) {
        if (!b->has_key || strcmp(key, w->broker_key) == 0)
            return true;
        snprintf(why, sizeof why, "the broker at %s announces key %s, not the --broker-key "
                 "given", ep, key);
    } else if (b->has_key && pd_auth_trust_has(w->config_dir, ep, key)) {
        memcpy(w->broker_key, key, sizeof key);
        return true;
    } else if (b->has_key) {
        pd_auth_trust_hint(ep, key, why, sizeof why);
    } else if (pd_auth_trust_find(w->config_dir, ep, w->broker_key, why, sizeof why) == 0) {
        return true;
    }
    /* A warning the first time for each broker, then at debug level. */
    char seen[320];
    snprintf(seen, sizeof seen, "%.255s %s", ep, key);
    for (int i = 0; i < 8; i++)
        if (strcmp(w->untrusted[i], seen) == 0) {
            pd_log_debug("ignoring a beacon: %s", why);
            return false;
        }
    memcpy(w->untrusted[w->nuntrusted], seen, sizeof seen);
    w->nuntrusted = (w->nuntrusted + 1) % 8;
    pd_log_warn("ignoring a beacon: %s", why);
    return false;
}

/* A datagram on the beacon listener. */
static void s_on_beacon(pd_worker_t *w)
{
    pd_beacon_t b;
    char ep[300];
    for (int k = 0; k < 16; k++) {
        int rc = pd_beacon_listener_recv(w->listener, &b, ep, sizeof ep);
        if (rc <= 0)
            return;
        if (w->connected && strcmp(ep, w->broker) == 0)
            continue; /* the broker we have */
        /* Untrusted brokers are skipped, and said so, even while we have one. */
        if (w->secure && !s_trust_beacon(w, &b, ep))
            continue;
        if (w->connected && w->registered)
            continue;
        pd_log_info("found broker %s of cluster '%s' by its beacon%s", ep, b.cluster,
                    w->connected ? " (the previous one is silent)" : "");
        w->discover_since = 0;
        s_connect(w, ep);
    }
}

/* ---- GPUs --------------------------------------------------------------- */

/* Reads GPU model names from the NVIDIA driver's procfs (no CUDA needed). */
static void s_find_gpu_names(pd_worker_t *w)
{
    DIR *d = opendir("/proc/driver/nvidia/gpus");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) && w->ngpu_names < S_MAX_GPU_NAMES) {
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

/* ---- the loop ----------------------------------------------------------- */

/* Gives the jobs of queue q to the idle slots among slots[0 .. n), a group
   each, spreading them evenly (NULL entries are skipped), so that at most
   `allowed` of the slots are busy. */
static void s_dispatch_queue(s_queue_t *q, pd_slot_t **slots, int n, size_t allowed)
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

/* Slots whose process failed to start PD_SLOT_START_TRIES times in a row
   are withdrawn: the broker hears the new count at once (`slots`, before
   s_dispatch hands back jobs they cannot run), and again when a slot's
   process starts after all. Each slot logs its own failures. */
static void s_follow_slot_starts(pd_worker_t *w)
{
    int cpus = s_cpus_up(w), gpus = s_gpus_up(w);
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
    s_send_slots(w);
}

/* Gives queued jobs to idle slots under the owner's limits: CPU jobs to CPU
   slots, GPU jobs to GPU slots. While the owner uses the machine nothing
   starts: jobs that arrive then go back to the broker, as do GPU jobs when
   the owner allows no GPU. */
static void s_dispatch(pd_worker_t *w)
{
    if (w->owner_active) {
        s_give_back(w, "the machine's owner is active");
        return;
    }
    /* No slot that can run them: the jobs go back to run elsewhere. */
    if (w->gpus == 0)
        s_give_back_queue(w, &w->q[S_GPU], "no GPU slot left");
    else if (s_gpus_up(w) == 0)
        s_give_back_queue(w, &w->q[S_GPU], "no GPU slot process can start");
    if (w->cpus > 0 && s_cpus_up(w) == 0)
        s_give_back_queue(w, &w->q[S_CPU], "no slot process can start");
    /* Running nodes of synchronous tasks take CPUs: jobs get the rest. */
    size_t cpu_jobs = w->cpus > w->nnodes ? (size_t) (w->cpus - w->nnodes) : 0;
    s_dispatch_queue(&w->q[S_CPU], w->slots, w->cpus < w->nslots ? w->cpus : w->nslots, cpu_jobs);
    s_dispatch_queue(&w->q[S_GPU], w->gslots, w->gpus, (size_t) w->gpus);
}

/* True when a job is queued here (CPU or GPU) or held by a slot (running or
   suspended). */
static bool s_has_work(pd_worker_t *w) { return s_queued(w) > 0 || s_busy(w) > 0; }

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
        pd_log_warn("no job for %.3g s and no answer from %s%s: leaving (idle time-out; can "
                    "this machine reach the broker?)", w->idle_exit_ms / 1e3,
                    w->broker[0] ? "broker " : "any broker of cluster ",
                    w->broker[0] ? w->broker : w->cluster);
    return true;
}

/* Heartbeat, liveness and re-registration. */
static void s_keepalive(pd_worker_t *w, int64_t now)
{
    if (!w->connected) {
        if (w->discover_since && now - w->discover_since > w->discover_timeout_ms) {
            pd_log_warn("no beacon of cluster '%s' heard for %d ms: still listening (is the "
                        "broker running, bound to tcp://*:PORT, with the same cluster name and "
                        "beacon port? or give its endpoint with --broker)", w->cluster,
                        w->discover_timeout_ms);
            w->discover_since = 0;
        }
        return;
    }
    int64_t silence = (int64_t) w->hb_ms * w->liveness;
    if (w->registered && now - w->last_recv > silence) {
        pd_log_warn("broker %s silent for %lld ms: registering again when it answers%s",
                    w->broker, (long long) (now - w->last_recv),
                    w->listener ? " (or when a beacon shows another)" : "");
        w->registered = false;
        s_send_ready(w);
    } else if (!w->registered && now - w->last_ready >= silence) {
        s_send_ready(w);
    }
    if (w->registered && now - w->last_state >= w->hb_ms)
        s_send_state(w);
    else if (now - w->last_send >= w->hb_ms)
        s_send_simple(w, "hb");
}

static int s_poll_timeout(pd_worker_t *w, int64_t now)
{
    int64_t next = w->last_send + w->hb_ms;
    int64_t silence = (int64_t) w->hb_ms * w->liveness;
    int64_t live = w->registered ? w->last_recv + silence + 1 : w->last_ready + silence;
    if (live < next)
        next = live;
    if (w->registered && w->last_state + w->hb_ms < next)
        next = w->last_state + w->hb_ms;
    if (w->load && w->next_check < next)
        next = w->next_check;
    for (int k = 0; k < s_nall(w); k++) {
        int64_t d = s_slot(w, k) ? pd_slot_deadline(s_slot(w, k)) : INT64_MAX;
        if (d < next)
            next = d;
    }
    if (w->idle_exit_ms > 0 && w->idle_since + w->idle_exit_ms < next)
        next = w->idle_since + w->idle_exit_ms;
    int64_t t = next - now;
    if (w->ngone > 0 && t > 10)
        t = 10; /* node processes to reap soon */
    return t < 0 ? 0 : t > w->hb_ms ? w->hb_ms : (int) t;
}

int pd_worker_run(pd_worker_t *w, volatile sig_atomic_t *stop)
{
    int rc = 0;
    while (!*stop) {
        if (w->reload && *w->reload) {
            *w->reload = 0;
            if (w->on_reload)
                w->on_reload(w, w->reload_user);
        }
        int64_t now = pd_slot_now_ms();
        int nitems = 0, ictl = -1, ibeacon = -1;
        w->items[nitems++] = (zmq_pollitem_t){.socket = w->sock, .events = ZMQ_POLLIN};
        int imon = nitems;
        w->items[nitems++] = (zmq_pollitem_t){.socket = w->mon, .events = ZMQ_POLLIN};
        if (w->ctl) {
            ictl = nitems;
            w->items[nitems++] = (zmq_pollitem_t){.socket = w->ctl, .events = ZMQ_POLLIN};
        }
        if (w->listener) {
            ibeacon = nitems;
            w->items[nitems++] = (zmq_pollitem_t){
                .socket = pd_beacon_listener_socket(w->listener), .events = ZMQ_POLLIN};
        }
        int nfixed = nitems;
        for (int k = 0; k < s_nall(w); k++) {
            int fd = s_slot(w, k) ? pd_slot_fd(s_slot(w, k)) : -1;
            if (fd < 0)
                continue;
            w->items[nitems] = (zmq_pollitem_t){.socket = NULL, .fd = fd, .events = ZMQ_POLLIN};
            w->item_slot[nitems] = k;
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
        /* Stopped by a signal: a resource manager (Slurm's scancel, a time
           limit) may have signalled the slot processes too, so what they
           report now is not the tasks' doing; `bye` requeues those jobs. */
        if (*stop)
            break;
        if (w->items[imon].revents & ZMQ_POLLIN)
            s_on_monitor(w);
        if (w->items[0].revents & ZMQ_POLLIN) {
            zmq_msg_t msg;
            zmq_msg_init(&msg);
            for (int k = 0; k < S_RECV_BURST && zmq_msg_recv(&msg, w->sock, ZMQ_DONTWAIT) >= 0; k++)
                pd_worker_on_message(w, zmq_msg_data(&msg), zmq_msg_size(&msg));
            zmq_msg_close(&msg);
        }
        /* Slot and node pipes before control requests: a request may retire
           slots. Messages above may have removed nodes (node_abort): a node's
           entry is checked against the current list before use. */
        for (int i = nfixed; i < nitems; i++) {
            if (!(w->items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR)))
                continue;
            int k = w->item_slot[i];
            if (k >= 0) {
                pd_slot_on_readable(s_slot(w, k));
                continue;
            }
            k = -1 - k;
            if (k < w->nnodes && pd_nodeproc_fd(w->nodes[k]) == (int) w->items[i].fd)
                pd_nodeproc_on_readable(w->nodes[k]);
        }
        s_reap_nodes(w);
        if (ictl >= 0 && (w->items[ictl].revents & ZMQ_POLLIN))
            s_on_ctl(w);
        if (ibeacon >= 0 && (w->items[ibeacon].revents & ZMQ_POLLIN))
            s_on_beacon(w);
        now = pd_slot_now_ms();
        for (int k = 0; k < s_nall(w); k++)
            if (s_slot(w, k) && pd_slot_deadline(s_slot(w, k)) <= now)
                pd_slot_tick(s_slot(w, k));
        if (w->load && now >= w->next_check)
            s_check_idle(w, now);
        s_retire_idle_slots(w);
        s_follow_slot_starts(w);
        s_dispatch(w);
        s_flush(w);
        now = pd_slot_now_ms();
        s_keepalive(w, now);
        if (s_idle_expired(w, now))
            break;
    }
    s_flush(w);
    if (w->connected)
        s_send_simple(w, "bye");
    pd_log_info("leaving broker %s after %llu results", w->broker[0] ? w->broker : "(none found)",
                (unsigned long long) w->ndone);
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
   broker's trusted key (for a broker found by beacon, later: the beacon's
   key must be trusted), or says which command is missing. */
static int s_security_setup(pd_worker_t *w, const pd_worker_config_t *cfg)
{
    const char *ep = cfg->broker && *cfg->broker ? cfg->broker : NULL;
    /* Beacons come from the network: a discovered broker is never loopback. */
    pd_sec_mode_t mode = ep ? pd_auth_resolve(cfg->security, ep)
                            : cfg->security == PD_SEC_NONE ? PD_SEC_NONE : PD_SEC_CURVE;
    if (mode == PD_SEC_NONE) {
        if (!ep || !pd_auth_endpoint_is_loopback(ep))
            pd_log_warn("SECURITY WARNING: connecting to broker %s without authentication or "
                        "encryption (--insecure): whoever answers at that address can run code "
                        "on this machine. Use this only on a network you trust completely.",
                        ep ? ep : "(found by beacon)");
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
                     "worker`", ep ? ep : "a broker", why);
        return rc;
    }
    w->config_dir = cfg->config_dir ? strdup(cfg->config_dir) : pd_auth_config_dir();
    if (!w->config_dir && !cfg->broker_key) {
        pd_log_error("cannot find the configuration directory (HOME is not set): give "
                     "--config-dir or --broker-key");
        return PD_EINVAL;
    }
    if (cfg->broker_key) {
        if (pd_auth_key_from_arg(cfg->broker_key, w->broker_key, NULL, 0, why, sizeof why)) {
            pd_log_error("--broker-key: %s", why);
            return PD_EINVAL;
        }
        w->fixed_key = true;
        return 0;
    }
    if (!ep)
        return 0; /* each beacon's key is checked when it comes */
    rc = pd_auth_trust_find(w->config_dir, ep, w->broker_key, why, sizeof why);
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

/* Counts the GPUs through the CUDA driver and decides the GPU slots: asked
   < 0 offers every one, else exactly `asked` (0 skips the driver). Returns 0,
   or PD_EINVAL (logged) when more are asked than the machine has. */
static int s_offer_gpus(pd_worker_t *w, int asked)
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
        if (w->ngpu_names < S_MAX_GPU_NAMES)
            snprintf(w->gpu_names[w->ngpu_names++], sizeof w->gpu_names[0], "%.63s",
                     w->gpu[g].name);
    }
    return 0;
}

pd_worker_t *pd_worker_new(const pd_worker_config_t *cfg, int *err)
{
    assert(cfg);
    int code = PD_EINVAL;
    pd_worker_t *w = NULL;
    if (!cfg->cache_dir || !*cfg->cache_dir) {
        pd_log_error("a cache directory is required");
        goto fail;
    }
    if (cfg->cpus < 0 || cfg->cpus > PD_WORKER_MAX_CPUS || cfg->gpus < -1 ||
        cfg->gpus > PD_WORKER_MAX_GPUS) {
        pd_log_error("--cpus must be between 0 and %d and --gpus between 0 and %d (got %d and "
                     "%d)", PD_WORKER_MAX_CPUS, PD_WORKER_MAX_GPUS, cfg->cpus, cfg->gpus);
        goto fail;
    }
    const char *cluster = cfg->cluster && *cfg->cluster ? cfg->cluster : PD_BEACON_DEFAULT_CLUSTER;
    if (!pd_beacon_name_ok(cluster)) {
        pd_log_error("cluster name '%s' is not 1 to 63 letters, digits, '-', '_' or '.'",
                     cluster);
        goto fail;
    }
    code = PD_ENOMEM;
    if (!(w = calloc(1, sizeof *w)))
        goto fail;
    snprintf(w->cluster, sizeof w->cluster, "%s", cluster);
    code = PD_EINVAL;
    if (s_offer_gpus(w, cfg->gpus))
        goto fail;
    code = PD_ENOMEM;
    w->cpus = cfg->cpus;
    w->hb_ms = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : S_DEFAULT_HB_MS;
    w->liveness = S_DEFAULT_LIVENESS;
    w->q[S_CPU].max = (size_t) cfg->cpus * 1024 + 4096;
    w->q[S_GPU].max = (size_t) w->ngpu * 1024 + 4096;
    w->owner_load = -1;
    w->reload = cfg->reload;
    w->on_reload = cfg->on_reload;
    w->reload_user = cfg->reload_user;
    w->discover_timeout_ms = cfg->discover_timeout_ms > 0 ? cfg->discover_timeout_ms : 5000;
    w->idle_exit_ms = cfg->idle_exit_ms > 0 ? cfg->idle_exit_ms : 0;
    snprintf(w->slurm_job, sizeof w->slurm_job, "%s", cfg->slurm_job ? cfg->slurm_job : "");
    snprintf(w->slurm_step, sizeof w->slurm_step, "%s", cfg->slurm_step ? cfg->slurm_step : "");
    snprintf(w->slurm_array, sizeof w->slurm_array, "%s",
             cfg->slurm_array ? cfg->slurm_array : "");
    pd_buf_init(&w->res);
    w->cache_dir = strdup(cfg->cache_dir);
    /* The running program's path, resolved now: exec'ing "/proc/self/exe"
       itself would start the wrong program under valgrind, which reports
       the client's path through readlink but not through exec. */
    char self[PATH_MAX];
    if (pd_plat_self_exe(self, sizeof self))
        snprintf(self, sizeof self, "/proc/self/exe");
    w->slot_exe = strdup(cfg->slot_exe ? cfg->slot_exe : self);
    w->log_level = cfg->log_level ? strdup(cfg->log_level) : NULL;
    w->proc_dir = strdup(cfg->proc_dir && *cfg->proc_dir ? cfg->proc_dir : "/proc");
    if (cfg->node_addr && *cfg->node_addr) {
        snprintf(w->node_addr, sizeof w->node_addr, "%s", cfg->node_addr);
        w->node_addr_given = true;
    }
    if (!w->cache_dir || !w->slot_exe || (cfg->log_level && !w->log_level) || !w->proc_dir ||
        s_reserve_slots(w, cfg->cpus > 0 ? cfg->cpus : 1))
        goto fail;
    if (cfg->name && *cfg->name)
        snprintf(w->host, sizeof w->host, "%s", cfg->name);
    else if (pd_plat_hostname(w->host, sizeof w->host - 1))
        snprintf(w->host, sizeof w->host, "unknown");
    if (w->ngpu_names == 0)
        s_find_gpu_names(w); /* no GPU found through CUDA: the driver's procfs may name some */
    if (!(w->mc = pd_modcache_new(w->cache_dir, &code)))
        goto fail;
    if ((code = s_security_setup(w, cfg)) != 0)
        goto fail;
    w->tubes_curve = w->secure || cfg->tubes_curve;
    code = PD_ENOMEM;
    if (!(w->policy = s_policy_new(w, cfg)))
        goto fail;
    unsigned char rnd[8];
    randombytes_buf(rnd, sizeof rnd);
    memcpy(w->id, "w-", 2);
    sodium_bin2hex(w->id + 2, sizeof w->id - 2, rnd, sizeof rnd);
    if ((code = s_grow_slots(w)) || (code = s_grow_gpu_slots(w)))
        goto fail;
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
    int linger = 1000, hwm = 100000, backoff = 2000;
    zmq_setsockopt(w->sock, ZMQ_ROUTING_ID, w->id, strlen(w->id));
    zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(w->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(w->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    /* A refused handshake is retried at most every 2 s, not every 100 ms. */
    zmq_setsockopt(w->sock, ZMQ_RECONNECT_IVL_MAX, &backoff, sizeof backoff);
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
    if (cfg->control && *cfg->control &&
        (code = s_bind_control(w, cfg->control, cfg->control_mode ? cfg->control_mode : 0660)))
        goto fail;
    if (cfg->idle.load_max > 0)
        pd_worker_set_idle(w, &cfg->idle);
    else
        w->idle = cfg->idle;
    int64_t now = pd_slot_now_ms();
    w->last_recv = w->last_state = now;
    w->idle_since = now;
    if (cfg->broker && *cfg->broker) {
        if ((code = s_connect(w, cfg->broker)))
            goto fail;
    } else {
        int port = cfg->beacon_port > 0 ? cfg->beacon_port : PD_BEACON_DEFAULT_PORT;
        w->listener = pd_beacon_listener_new(w->cluster, port, cfg->beacon_iface, &code);
        if (!w->listener)
            goto fail;
        w->discover_since = now;
        pd_log_info("looking for a broker of cluster '%s' (beacons on UDP port %d)", w->cluster,
                    port);
    }
    pd_log_info("worker %s on %s: %d cpu slots, %d gpu slots%s%s, cache %s, broker %s (%s), "
                "code policy '%s', nodes bind on %s", w->id, w->host, w->cpus, w->gpus,
                w->ngpu_names ? " " : "", w->ngpu_names ? w->gpu_names[0] : "", w->cache_dir,
                w->broker[0] ? w->broker : "(by beacon)", w->secure ? "CurveZMQ" : "no security",
                pd_policy_name(pd_policy_mode(w->policy)),
                w->node_addr[0] ? w->node_addr : "(the address that reaches the broker)");
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
        for (int i = 0; i < w->nslots; i++)
            pd_slot_destroy(&w->slots[i]);
    free(w->slots);
    for (int i = 0; i < w->nnodes; i++)
        pd_nodeproc_destroy(&w->nodes[i]);
    free(w->nodes);
    for (int i = 0; i < w->ngone; i++)
        pd_nodeproc_destroy(&w->gone[i]);
    free(w->gone);
    for (int g = 0; g < PD_GPU_MAX; g++)
        pd_slot_destroy(&w->gslots[g]);
    for (int c = 0; c < 2; c++) {
        s_q_clear(&w->q[c]);
        free(w->q[c].q);
    }
    pd_buf_free(&w->res);
    pd_beacon_listener_destroy(&w->listener);
    if (w->ctl) {
        zmq_close(w->ctl);
        if (w->control)
            unlink(w->control);
    }
    free(w->control);
    if (w->mon)
        zmq_close(w->mon);
    if (w->sock)
        zmq_close(w->sock);
    pd_policy_destroy(&w->policy);
    free(w->config_dir);
    sodium_memzero(w->key.sec, sizeof w->key.sec);
    if (w->ctx && w->own_ctx)
        zmq_ctx_term(w->ctx);
    pd_modcache_destroy(&w->mc);
    pd_load_destroy(&w->load);
    free(w->mods);
    free(w->items);
    free(w->item_slot);
    free(w->cache_dir);
    free(w->slot_exe);
    free(w->log_level);
    free(w->proc_dir);
    free(w);
    *p = NULL;
}

const char *pd_worker_id(pd_worker_t *w) { return w->id; }
size_t pd_worker_queued(const pd_worker_t *w) { return w->q[0].len + w->q[1].len; }
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
    return pd_plat_route_addr(host, port, out, cap);
}
