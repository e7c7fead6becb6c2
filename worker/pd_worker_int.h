/*  pd_worker_int.h: the worker's insides, shared by pd_worker.c (the
    object, its loop and registration with the broker) and the rooms beside
    it: pd_worker_jobs.c, pd_worker_slots.c, pd_worker_nodes.c,
    pd_worker_idle.c, pd_worker_ctl.c and pd_worker_find.c. Not for other
    modules.
*/
#ifndef PD_WORKER_INT_H
#define PD_WORKER_INT_H

#include "pd_bg.h"
#include "pd_worker.h"
#include "pd_beacon.h"
#include "pd_codec.h"
#include "pd_cudrv.h"
#include "pd_load.h"
#include "pd_log.h"
#include "pd_modcache.h"
#include "pd_msg.h"
#include "pd_proto.h"
#include "pd_nodeproc.h"
#include "pd_policy.h"
#include "pd_plat.h"
#include "pd_slot.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define PD_WORKER_MAX_GPU_NAMES 16 /* GPU models reported in `ready` at most */

/* A module the broker sent us (or found in the cache). */
typedef struct {
    char hash[65];  /* content hash */
    char kind[4];   /* "c", "so", "pkg", "cu" (or "b": built-in) */
    char name[128]; /* name for messages */
} pd_worker_mod_t;

/* A queue of jobs (a ring), one per slot class. */
typedef struct {
    pd_job_t **q;   /* the ring, owned with its jobs */
    size_t head;    /* index of the first job */
    size_t len;     /* jobs queued */
    size_t cap;     /* ring capacity */
    size_t max;     /* bound on queued jobs */
} pd_worker_queue_t;

/* The queues' indexes in pd_worker.q. */
enum { PD_WORKER_Q_CPU = 0, PD_WORKER_Q_GPU = 1 };

/* The worker. Each room reads and writes the fields of its concern. */
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
    char gpu_names[PD_WORKER_MAX_GPU_NAMES][64]; /* GPU models found on this machine */
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
    char ctl_token[PD_PLAT_TOKEN_LEN + 1]; /* what control requests carry ("": none, POSIX) */
    pd_beacon_listener_t *listener; /* beacon listener (discovery), owned, or NULL */
    char cluster[PD_BEACON_NAME_MAX + 1]; /* cluster name looked for */
    int discover_timeout_ms; /* warn after this long without a beacon */
    int64_t discover_since;  /* when discovery started (0: warned already) */
    pd_modcache_t *mc;     /* module cache */
    pd_bg_t *bg;           /* work off the loop: checking and writing shared data */
    struct pd_worker_store *storing; /* shared data being written, newest first */
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
    pd_worker_mod_t *mods; /* known modules, owned */
    size_t nmods;          /* entries in mods */
    size_t capmods;        /* capacity of mods */
    pd_worker_queue_t q[2]; /* queued jobs: q[PD_WORKER_Q_CPU], q[PD_WORKER_Q_GPU] */
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
    pd_limits_t job_max;   /* the owner's maxima for one job (0: none), advertised */
    pd_limits_t job_default; /* what a job that asks nothing gets (output always set) */
};

/* Every slot process, CPU slots first: k in 0 .. pd_worker_nall(w)-1;
   pd_worker_slot() is NULL for a GPU slot that is not running. */
static inline int pd_worker_nall(const pd_worker_t *w) { return w->nslots + w->ngpu; }
static inline pd_slot_t *pd_worker_slot(const pd_worker_t *w, int k)
{
    return k < w->nslots ? w->slots[k] : w->gslots[k - w->nslots];
}

/* ---- the broker connection (pd_worker.c) -------------------------------- */

/* Sends one encoded message to the broker. Returns 0, or PD_ENOMEM (it
   could not be encoded) or PD_EUNREACH (dropped), both logged. */
int pd_worker_send(pd_worker_t *w, pd_buf_t *b);
/* Encodes message m (described by d, pd_proto.h) and sends it as above. */
int pd_worker_send_msg(pd_worker_t *w, const pd_proto_msg_t *d, const void *m);
/* Registers: `ready` with the slots offered and the worker's state. */
void pd_worker_send_ready(pd_worker_t *w);
/* Tells the broker the slots offered now (`slots`), once registered. */
void pd_worker_send_slots(pd_worker_t *w);
/* A heartbeat that carries the worker's state (every hb_ms), once
   registered. */
void pd_worker_send_state(pd_worker_t *w);

/* ---- jobs (pd_worker_jobs.c) -------------------------------------------- */

/* Messages from the broker: `run` queues jobs (or refuses them in the
   `done` batch), `mod` stores a module, `shr` and `shr_drop` store and
   drop shared data, `cancel` drops jobs queued or running here. */
void pd_worker_on_run(pd_worker_t *w, const pd_msg_t *m);
void pd_worker_on_mod(pd_worker_t *w, const pd_msg_t *m);
void pd_worker_on_shr(pd_worker_t *w, const pd_msg_t *m);
void pd_worker_on_shr_drop(pd_worker_t *w, const pd_msg_t *m);
void pd_worker_on_cancel(pd_worker_t *w, const pd_msg_t *m);
/* Whether the code of a job or node may run here: module mod and, when cu
   is not "", CUDA module cu, sent by the key client, under the owner's code
   policy, and both in the cache. Returns 0 with *mm and *cm (NULL without
   cu) set; PD_EREFUSED (logged, rate-limited, as `refused WHAT: ...`) or
   PD_ENOMODULE with the sentence in msg. */
int pd_worker_code_check(pd_worker_t *w, const char *client, const char *mod, const char *cu,
                         const char *what, const pd_worker_mod_t **mm, const pd_worker_mod_t **cm,
                         char *msg, size_t cap);
/* Sends the collected results as one `done` message. */
void pd_worker_flush(pd_worker_t *w);
/* Hands every job of queue q back to the broker (`requeue`, no attempt
   counted), in messages of a bounded number of jobs; why goes to the
   log. */
void pd_worker_give_back_queue(pd_worker_t *w, pd_worker_queue_t *q, const char *why);
/* `steal {n, gpu}`: the broker has slots idle elsewhere; up to n jobs of
   the queue (CPU, or GPU with gpu true) that no slot has started go back
   to it, the last ones, in a `requeue` with `stolen: true` (sent even when
   none is left, as the answer). */
void pd_worker_on_steal(pd_worker_t *w, const pd_msg_t *m);
/* Hands every job queued here, CPU and GPU, back to the broker. */
void pd_worker_give_back(pd_worker_t *w, const char *why);
/* The sink of every slot: results into the `done` batch, requeued jobs to
   the front of their queue. */
pd_slot_sink_t pd_worker_slot_sink(pd_worker_t *w);
/* Takes the first job of q (the caller's), or NULL when q is empty. */
pd_job_t *pd_worker_q_pop(pd_worker_queue_t *q);
/* True while the shared data hash is being written to the cache (jobs that
   name it wait in the queue meanwhile). */
bool pd_worker_shared_pending(const pd_worker_t *w, const char *hash);
/* Destroys every job of q. */
void pd_worker_q_clear(pd_worker_queue_t *q);

/* ---- slots (pd_worker_slots.c) ------------------------------------------ */

/* The owner's CPU slots less those whose process cannot start
   (pd_slot_unavailable): the slots that can run jobs. */
int pd_worker_cpus_up(const pd_worker_t *w);
/* The same for GPU slots. */
int pd_worker_gpus_up(const pd_worker_t *w);
/* CPU (GPU) slots offered to the broker now: none while the owner uses the
   machine, and never one whose process cannot start. */
int pd_worker_offered(const pd_worker_t *w);
int pd_worker_offered_gpus(const pd_worker_t *w);
/* Slots holding a job (running or suspended). */
int pd_worker_busy(const pd_worker_t *w);
/* The CUDA_VISIBLE_DEVICES value that shows GPU slot (or node) g its
   device: the g-th entry of the worker's own CUDA_VISIBLE_DEVICES when it
   has one (the driver numbered the devices within that list: under Slurm,
   say), else g. */
void pd_worker_visible_for(int g, char *out, size_t cap);
/* Counts the GPUs through the CUDA driver and decides the GPU slots: asked
   < 0 offers every one, else exactly `asked` (0 skips the driver). Returns 0,
   or PD_EINVAL (logged) when more are asked than the machine has. */
int pd_worker_offer_gpus(pd_worker_t *w, int asked);
/* Reads GPU model names from the NVIDIA driver's procfs (no CUDA needed). */
void pd_worker_find_gpu_names(pd_worker_t *w);
/* Grows the slot arrays (and the poll set and node lists sized by them) to
   hold n slots. Returns 0 or PD_ENOMEM. */
int pd_worker_reserve_slots(pd_worker_t *w, int n);
/* Starts the slot processes the owner allows, CPU then GPU. Returns 0 or a
   PD_E* code. */
int pd_worker_start_slots(pd_worker_t *w);
/* Once per loop iteration: stops idle slots over the owner's limits, tells
   the broker about slots whose process cannot start, and gives queued jobs
   to idle slots (or back to the broker when none can take them). */
void pd_worker_tend_slots(pd_worker_t *w);

/* ---- nodes of synchronous tasks (pd_worker_nodes.c) --------------------- */

/* node_start {task, node, n, mod, fn, arg, tubes, out, in, io_ms, start_ms,
   window, window_bytes, client}: starts a node process and sends it
   `start`, when the code policy lets the submitter's code run here. */
void pd_worker_on_node_start(pd_worker_t *w, const pd_msg_t *m);
/* node_peers {task, node, peers} (go false) and node_go {task, node} (go
   true). */
void pd_worker_on_node_step(pd_worker_t *w, const pd_msg_t *m, bool go);
/* node_stop {task}: asks this worker's nodes of the task to stop at their
   next step (pd_node_stopping), keeping their results. */
void pd_worker_on_node_stop(pd_worker_t *w, const pd_msg_t *m);
/* node_abort {task}: kills every node of the task here, without a report. */
void pd_worker_on_node_abort(pd_worker_t *w, const pd_msg_t *m);
/* Moves ended nodes out of the running list (their slots are free again)
   and reaps the processes of ended nodes without blocking. */
void pd_worker_reap_nodes(pd_worker_t *w);
/* Kills every node (the broker forgot us, or we leave). */
void pd_worker_kill_nodes(pd_worker_t *w);

/* ---- the owner's idle policy (pd_worker_idle.c) ------------------------- */

/* Measures the owner's load and applies the policy; call every check_ms. */
void pd_worker_check_idle(pd_worker_t *w, int64_t now);

/* ---- the control socket (pd_worker_ctl.c) ------------------------------- */

/* Binds the control socket at path with mode; refuses when another worker
   answers there. Returns 0 or PD_EIO (logged). */
int pd_worker_bind_control(pd_worker_t *w, const char *path, int mode);
/* One control request: `ctl {cpus?, gpus?, now?}`; answers ctl_ok or error. */
void pd_worker_on_ctl(pd_worker_t *w);

/* ---- finding the broker (pd_worker_find.c) ------------------------------ */

/* Connects the broker socket to ep (after a disconnect from the old one);
   with CurveZMQ, accepting only w->broker_key there. Chooses the nodes'
   address unless given, and sends `ready`. Returns 0, PD_ESYS or PD_EINVAL
   (logged). */
int pd_worker_connect(pd_worker_t *w, const char *ep);
/* Reads the datagrams on the beacon listener: a trusted broker of our
   cluster is connected to when we have none, or ours is silent. */
void pd_worker_on_beacon(pd_worker_t *w);

#endif
