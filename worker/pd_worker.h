/*  pd_worker: the worker's root object and its loop.

    A worker connects a DEALER socket (routing id "w-" + 16 random hex
    digits) to the broker, registers with `ready {host, pid, cpus, gpus,
    gpu_info, ...}` (plus its Slurm job and step ids when it runs as a pilot
    job), receives modules and jobs, runs the jobs in its slot processes (pd_slot)
    and sends results back in `done` batches. It heartbeats from its own loop
    while the slot processes compute, re-registers when the broker falls
    silent or says `reset`, and leaves with `bye`. docs/protocol.md is the
    contract; docs/worker.md describes the program.

    Without a broker endpoint it listens for the broker's beacon (pd_beacon)
    and connects to the first broker of its cluster it hears; while that
    broker is silent, a beacon from another address moves it there.

    The machine's owner changes the slots at any time: pd_worker_set_slots()
    (from the control socket, `playdoh-worker ctl`, or a SIGHUP reload).
    Lowering lets running jobs finish and starts none beyond the new limit;
    `now` hands the excess back to the broker at once (`requeue`). With an
    idle policy the worker offers its slots only while the machine's own
    load (pd_load) stays under a threshold, and suspends or hands back its
    jobs when the owner comes back.

    It also runs the nodes of synchronous tasks, each in its own process
    (pd_nodeproc), relaying the rendezvous between them and the broker
    (node_start, node_bound, node_peers, node_ready, node_go, node_done,
    node_abort). While k nodes run, at most cpus - k slots take jobs, so
    nodes and jobs together never use more CPUs than the worker offers.
*/
#ifndef PD_WORKER_H
#define PD_WORKER_H

#include "pd_auth.h"
#include "pd_limits.h"
#include "pd_policy.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#define PD_WORKER_MAX_CPUS 4096
#define PD_WORKER_MAX_GPUS 1024
/* GPU slot g reports slot number PD_WORKER_GPU_SLOT0 + g (in errors and
   pd_task_slot), above every CPU slot's. */
#define PD_WORKER_GPU_SLOT0 PD_WORKER_MAX_CPUS

typedef struct pd_worker pd_worker_t;

/* The idle policy. */
typedef struct {
    double load_max;  /* offer slots only while the owner's load is at most this; 0 = off */
    bool requeue;     /* owner back: hand running jobs back (true) or suspend them (false) */
    int check_ms;     /* how often the load is measured (>= 100) */
    int wait_s;       /* how long the load must stay low before slots are offered again */
} pd_worker_idle_t;

typedef struct {
    const char *broker;    /* broker endpoint, e.g. "tcp://host:5555"; NULL or "" = discover */
    int cpus;              /* CPU slots (0 .. PD_WORKER_MAX_CPUS) */
    int gpus;              /* GPU slots: -1 = every GPU the CUDA driver shows, N = exactly N
                              (more than the machine has: PD_EINVAL), 0 = none (the driver
                              is not even loaded) */
    const char *cache_dir; /* module cache directory (required) */
    int heartbeat_ms;      /* heartbeat before the broker's welcome; 0 = 1000 */
    const char *name;      /* host name reported; NULL = gethostname() */
    const char *slot_exe;  /* program exec'ed for slots; NULL = this program (its path) */
    const char *log_level; /* passed to slot processes, or NULL */
    const char *node_addr; /* address nodes of synchronous tasks bind on; NULL = the address
                              this machine uses to reach the broker */
    void *zmq_ctx;         /* ZeroMQ context to use (borrowed), or NULL for one of its own;
                              an embedding broker passes its own to connect over inproc */
    /* discovery (when broker is NULL or "") */
    const char *cluster;   /* cluster name to look for; NULL = "playdoh" */
    int beacon_port;       /* UDP port of beacons; 0 = PD_BEACON_DEFAULT_PORT */
    const char *beacon_iface; /* interface; NULL = CZMQ's choice */
    int discover_timeout_ms; /* warn when no beacon came within this; 0 = PD_BEACON_DEFAULT_DISCOVER_MS */
    /* control socket */
    const char *control;   /* path of the control socket (ipc); NULL = none */
    int control_mode;      /* its file mode, e.g. 0660 */
    /* idle policy */
    pd_worker_idle_t idle; /* idle.load_max 0 = off */
    const char *proc_dir;  /* procfs for the load; NULL = "/proc" */
    /* SIGHUP: when *reload becomes non-zero the loop clears it and calls
       on_reload(w, reload_user) (both may be NULL). */
    volatile sig_atomic_t *reload;
    void (*on_reload)(pd_worker_t *w, void *user);
    void *reload_user;
    /* security (docs/security.md) */
    pd_sec_mode_t security;  /* AUTO: CurveZMQ unless the broker is on loopback */
    const char *config_dir;  /* id.key, known_brokers, lists (NULL: pd_auth_config_dir()) */
    const char *key_file;    /* this worker's key pair (NULL: <config_dir>/id.key) */
    const char *broker_key;  /* the broker's public key (NULL: known_brokers, or a trusted
                                key announced by the beacon) */
    pd_policy_mode_t code_policy; /* whose code runs here (default: any admitted client) */
    const char *code_list;   /* the policy's list (NULL: <config_dir>/code-clients or
                                code-modules) */
    bool tubes_curve;        /* CurveZMQ on the tubes of synchronous tasks even when the
                                broker connection runs without (the embedded worker of a
                                secure broker); a secure connection implies it */
    /* pilot jobs (Slurm) */
    int idle_exit_ms;        /* leave (with `bye`) after this long without a job; 0 = never */
    const char *slurm_job;   /* Slurm job id when run as a pilot (SLURM_JOB_ID), or NULL */
    const char *slurm_step;  /* its Slurm step id (SLURM_STEP_ID, "batch"), or NULL */
    const char *slurm_array; /* "ARRAYJOB_TASK" for a job array task, or NULL */
    /* what one job may take (docs/worker.md): the owner's maxima, advertised
       to the broker, which sends here only jobs whose request fits (0: no
       maximum), and the defaults a job gets when it asks nothing (0: none;
       output 0: PD_LIMITS_DEFAULT_OUTPUT); a default over its maximum is
       lowered to it */
    pd_limits_t job_max;
    pd_limits_t job_default;
} pd_worker_config_t;

/* Creates the worker: opens the module cache, starts the slot processes,
   binds the control socket and connects to the broker, or starts listening
   for its beacon (strings are copied); with CurveZMQ it loads its key pair
   and the broker's trusted key first (when discovering, the beacon's key
   must be trusted). Returns NULL with *err (if not NULL) set to PD_EINVAL
   (bad configuration, logged), PD_EIO (control socket taken or unusable,
   logged), PD_ENOKEY (no key pair), PD_ENOTRUSTED (no trusted broker key),
   PD_EAUTH (unreadable or unprotected key), PD_ESYS or PD_ENOMEM; the
   reason is logged with what to do. */
pd_worker_t *pd_worker_new(const pd_worker_config_t *cfg, int *err);

/* Runs the loop until *stop becomes non-zero (a signal handler sets it), or
   until the worker has had no job for idle_exit_ms (when set), then sends
   `bye`. Returns 0, or PD_ESYS when ZeroMQ fails. */
int pd_worker_run(pd_worker_t *w, volatile sig_atomic_t *stop);

/* Kills the slot processes, closes the sockets, frees the worker; sets *p
   to NULL; safe twice. */
void pd_worker_destroy(pd_worker_t **p);

/* The worker's routing id ("w-" + 16 hex digits), borrowed. */
const char *pd_worker_id(pd_worker_t *w);
/* The address nodes bind their tubes on (chosen or given), borrowed. */
const char *pd_worker_node_addr(pd_worker_t *w);

/* The address this machine uses to reach the host of a tcp:// endpoint
   (the source address of a UDP socket connected there; 127.0.0.1 for a
   loopback broker), into out. Returns 0 or PD_EINVAL when it cannot tell. */
int pd_worker_route_addr(const char *endpoint, char *out, size_t cap);

/* Changes the slots offered (the machine's owner's decision), at once: the
   broker is told (`slots`). Raising starts slot processes. Lowering starts
   no job beyond the new limit and lets running ones finish; with `now`
   the jobs of the slots over the limit and the jobs queued here go back to
   the broker (`requeue`, no attempt counted). gpus -1 means every GPU
   found at start; GPU slot processes over the limit stop once idle, which
   frees their GPU. Call from the loop's thread (the control socket and
   on_reload do). Returns 0, or PD_EINVAL with why set for an out-of-range
   count or more GPUs than the machine has (nothing changes). */
int pd_worker_set_slots(pd_worker_t *w, int cpus, int gpus, bool now, char *why, size_t whycap);
/* Replaces the idle policy (a reload); turning it off resumes suspended jobs. */
void pd_worker_set_idle(pd_worker_t *w, const pd_worker_idle_t *idle);

/* What the worker is doing, for the control socket and tests. */
typedef struct {
    int cpus;           /* CPU slots the owner allows */
    int gpus;           /* GPU slots the owner allows */
    int offered;        /* CPU slots offered to the broker now (0 while the owner is active) */
    int slots;          /* slot processes that exist (more than cpus while some retire) */
    int down;           /* CPU and GPU slots withdrawn: their process cannot start */
    int busy;           /* slots running jobs */
    int queued;         /* jobs waiting here */
    bool registered;    /* the broker welcomed us */
    bool owner_active;  /* the idle policy holds the slots back */
    double load;        /* the owner's last measured load (< 0: unknown or off) */
    uint64_t done;      /* results sent */
    uint64_t requeued;  /* jobs handed back to the broker */
    const char *broker; /* endpoint in use ("" while discovering); borrowed */
} pd_worker_stats_t;
void pd_worker_stats(pd_worker_t *w, pd_worker_stats_t *out);

/* Handles one message from the broker as the loop does (for tests and
   fuzzing): `run` queues jobs, `mod` stores a module, `cancel`, `reset`,
   `welcome`, `hb`, `error`. Results and refusals are batched for `done`. */
void pd_worker_on_message(pd_worker_t *w, const void *data, size_t len);
/* Jobs queued and not yet given to a slot. */
size_t pd_worker_queued(const pd_worker_t *w);

#endif
