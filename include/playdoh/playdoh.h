/*  playdoh.h: the C API of Playdoh (libplaydoh-client).

    Connect to a broker (or start an embedded cluster on this machine), ship
    a module of C code, map one of its functions over a list of arguments,
    and collect the results later, by job id, from this process or another.

        pd_local_t *local = pd_local_start(2, &err);          // or a real broker
        pd_client_t *c = pd_client_new(pd_local_endpoint(local), &err);
        char mod[PD_HASH_HEX];
        pd_module_upload_file(c, "square.c", mod);
        double x[100];  ...
        uint64_t ids[100];
        pd_map_doubles(c, mod, "square", x, 100, NULL, ids);   // ids at once
        pd_result_t res[100];
        pd_fetch(c, ids, 100, 60000, res);                     // waits up to 60 s
        ... res[i].state == PD_JOB_DONE, pd_result_double(&res[i], &y) ...
        pd_results_clear(res, 100);
        pd_client_destroy(&c);
        pd_local_stop(&local);

    Conventions: functions return 0 (or a count) on success and a negative
    PD_E* code (pd_error.h) on failure; pd_client_error() then says in a
    sentence what was wrong and what to do. The library never prints: set a
    log handler with pd_log_set_handler() to see its diagnostics. A client
    object is used by one thread at a time.

    Synchronous tasks (docs/sync.md): N nodes of one function run at once
    and exchange data along a graph of named tubes:

        pd_graph_t *g = pd_graph_new(4);
        pd_graph_ring(g, "next");                              // i -> (i+1) mod 4
        uint64_t task;
        pd_task_start(c, mod, "ring_sum", g, NULL, 0, NULL, &task);  // id at once
        pd_task_result_t res;
        pd_task_fetch(c, task, 60000, &res);                   // waits up to 60 s
        ... res.state == PD_TASK_DONE, res.nodes[i].value ...
        pd_task_result_clear(&res);
        pd_graph_destroy(&g);

    Task authors include playdoh_task.h instead, not this header; a fitness
    function for the optimisers needs only playdoh_fitness.h.
*/
#ifndef PLAYDOH_H
#define PLAYDOH_H

#include "pd_error.h"
#include "playdoh_fitness.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Size of a module hash in lowercase hex, with its NUL. */
#define PD_HASH_HEX 65

typedef struct pd_client pd_client_t;
typedef struct pd_local pd_local_t;

typedef enum {
    PD_JOB_UNKNOWN = 0, /* the broker has no such job (never submitted, or released) */
    PD_JOB_QUEUED = 1,
    PD_JOB_RUNNING = 2,
    PD_JOB_DONE = 3,
    PD_JOB_FAILED = 4,
    PD_JOB_CANCELLED = 5
} pd_job_state_t;

/* "queued", "running", ...: static storage. */
const char *pd_job_state_name(pd_job_state_t s);
/* True for done, failed, cancelled and unknown: states that will not change. */
bool pd_job_state_final(pd_job_state_t s);

/* ---- connecting ---------------------------------------------------------- */

/* How a connection is secured (docs/security.md). */
typedef enum {
    PD_SECURITY_AUTO = 0,  /* CurveZMQ unless the broker is on loopback */
    PD_SECURITY_CURVE = 1, /* CurveZMQ even on loopback */
    PD_SECURITY_NONE = 2   /* no security even on a network: only on a network you trust */
} pd_security_t;

/* Options of pd_client_open; zero-initialise, then set what you need. */
typedef struct {
    pd_security_t security; /* AUTO: the PLAYDOH_SECURITY variable ("secure" or "insecure")
                               may force one way */
    const char *config_dir; /* where id.key and known_brokers are; NULL: PLAYDOH_CONFIG_DIR,
                               else $XDG_CONFIG_HOME/playdoh, else ~/.config/playdoh */
    const char *key_file;   /* this client's key pair; NULL: <config_dir>/id.key */
    const char *broker_key; /* the broker's public key (40 characters, or a file whose
                               first line they are, or a public certificate); NULL: the
                               PLAYDOH_BROKER_KEY variable, else the key known_brokers
                               trusts for the endpoint */
    int connect_timeout_ms; /* 0: PLAYDOH_CONNECT_TIMEOUT_MS, else 5000 */
    char *why;              /* when not NULL, receives why opening failed (whycap bytes) */
    size_t whycap;          /* bytes at why */
} pd_client_opts_t;

/* Connects to the broker at endpoint ("tcp://host:port"); NULL means the
   PLAYDOH_BROKER environment variable, else tcp://127.0.0.1:5555. On a
   network endpoint the connection runs CurveZMQ with this account's key
   pair and accepts only the broker key it trusts (see pd_client_opts_t).
   Checks that the broker answers within the connect time-out
   (PLAYDOH_CONNECT_TIMEOUT_MS, default 5000). Returns the client (the caller
   destroys it), or NULL with *err (if not NULL) set and, when opts->why is
   given, a sentence saying what to do:
   PD_EUNREACH     no broker answered;
   PD_EINVAL       a malformed endpoint or key;
   PD_ENOKEY       this account has no key pair (run `playdoh-keygen`);
   PD_ENOTRUSTED   no trusted key for this broker (`playdoh-keygen trust`);
   PD_EAUTH        the handshake failed: the broker refused this key, holds
                   another key than the one trusted, or runs another security;
   PD_EREFUSED     the broker admits this key, but not as a client.
   opts may be NULL.

   The client rides out a broker restart: when its connection drops, or a
   reply is late, requests that may safely be repeated (status, fetch, module
   upload, cluster size, gc, a task's status and fetch) and submit chunks
   (which carry a token, so the broker never takes one twice) are sent
   again, until the broker has been silent for the time-out
   (pd_client_set_timeout). pd_cancel, pd_release and the task_* requests
   that change something (start, cancel, release) are not repeated: they
   fail with PD_EUNREACH or PD_ETIMEDOUT instead. Synchronous tasks do not
   survive a broker restart: afterwards the broker knows no task (state
   PD_TASK_UNKNOWN), and never hands out a task id used before. */
pd_client_t *pd_client_open(const char *endpoint, const pd_client_opts_t *opts, int *err);
/* pd_client_open(endpoint, NULL, err). */
pd_client_t *pd_client_new(const char *endpoint, int *err);
/* Closes the connection and frees the client; sets *c to NULL; safe twice.
   Jobs already submitted go on and their results wait at the broker. */
void pd_client_destroy(pd_client_t **c);
/* Sets how long one request waits for the broker's reply (default 30000 ms),
   that is how long the broker may stay silent (a restart, say) before a call
   fails with PD_ETIMEDOUT. */
void pd_client_set_timeout(pd_client_t *c, int timeout_ms);
/* The last error, as a sentence for the user. Borrowed until the next call. */
const char *pd_client_error(const pd_client_t *c);
/* The broker's endpoint. Borrowed. */
const char *pd_client_endpoint(const pd_client_t *c);
/* Asks the broker how many workers and slots it has. Returns 0 or an error. */
int pd_client_cluster_size(pd_client_t *c, int *workers, int *slots);
/* Asks the broker how many of its slots are GPU slots (0 when no worker
   offers a GPU). Returns 0 or an error. */
int pd_client_cluster_gpus(pd_client_t *c, int *gpus);

/* What a broker says about itself. */
typedef struct {
    char name[64];              /* its name */
    int workers;                /* registered workers */
    int slots;                  /* their CPU and GPU slots */
    char journal[256];          /* its journal file; "" when it keeps jobs in memory only */
    uint64_t journal_bytes;     /* the journal's size on disk */
    uint64_t journal_max_bytes; /* the size past which it refuses submits (0 = no bound) */
    bool journal_ok;            /* false while the journal cannot be written (submits refused) */
} pd_broker_info_t;

/* Fills info from the broker (name, cluster size, journal). Returns 0 or an
   error. */
int pd_client_broker_info(pd_client_t *c, pd_broker_info_t *info);
/* Asks the broker to forget the results first fetched more than ttl_s
   seconds ago (-1: its --result-ttl; 0: every fetched result) and to shrink
   its journal. When info is not NULL, its journal fields are filled with
   the sizes after the collection. Returns how many results were forgotten,
   or an error. */
long pd_gc(pd_client_t *c, int64_t ttl_s, pd_broker_info_t *info);
/* How many requests this client has sent again after its connection to the
   broker dropped or a reply did not come in time (see "Reconnecting" in
   docs/guide.md). */
uint64_t pd_client_resent(const pd_client_t *c);

/* Finds a broker of cluster `cluster` (NULL = "playdoh") on the LAN by its
   UDP beacon on udp_port (0 = 5657), through network interface iface (NULL
   = the first one that can broadcast), waiting up to timeout_ms. Writes its
   endpoint ("tcp://ADDR:PORT") into endpoint (cap bytes). Beacons of other
   clusters or protocol versions, and malformed ones, are ignored (and
   logged through pd_log). Returns 0, PD_ETIMEDOUT when no beacon of that
   cluster came in time, PD_EINVAL for a bad cluster name or port,
   PD_EUNREACH when no interface can receive broadcasts, or PD_ESYS. */
int pd_discover(const char *cluster, int udp_port, const char *iface, int timeout_ms,
                char *endpoint, size_t cap);
/* pd_discover, and the broker's public key announced in the beacon (Z85,
   40 characters and a NUL, into key; "" when the beacon carries none). A
   beacon is only a hint, and anyone on the LAN can send one. With
   config_dir (a configuration directory, "" for the default one), only a
   broker this account trusts is returned: a beacon's key must be listed in
   config_dir/known_brokers for its endpoint or for any ("*"); a beacon
   without a key needs a key listed for its endpoint. Other beacons are
   skipped, and when only such beacons came, PD_ENOTRUSTED is returned with
   endpoint and key describing the first one (to tell the user the
   `playdoh-keygen trust` command). Returns 0, PD_ENOTRUSTED, or an error of
   pd_discover. */
int pd_discover_broker(const char *cluster, int udp_port, const char *iface, int timeout_ms,
                       const char *config_dir, char *endpoint, size_t cap, char key[41]);

/* One worker as the broker sees it (pd_cluster_info). */
typedef struct {
    char id[32];          /* its routing id, "w-" + 16 hex digits */
    char host[64];        /* host name it reported */
    char platform[32];    /* its system: "linux-x86_64", "windows-x86_64" */
    int64_t pid;          /* its process id */
    uint32_t cpus;        /* CPU slots offered now (0 while its owner holds them back) */
    uint32_t gpus;        /* GPUs offered now */
    uint32_t busy;        /* slots running a job (as it last reported) */
    uint64_t inflight;    /* jobs the broker has sent it that have not come back */
    uint64_t queued;      /* of those, jobs waiting in its own queue */
    uint64_t done;        /* results it returned */
    uint64_t requeued;    /* jobs it handed back (its owner took slots back) */
    double load;          /* its machine's own load in CPUs, Playdoh excluded (< 0: unknown) */
    char owner[16];       /* idle policy: "" (none), "idle" or "owner" (owner active) */
    char gpu_names[256];  /* its GPUs' names, joined by ", " ("" when unknown) */
    uint64_t gpu_mem;     /* memory of the GPU slots it offers, bytes, added up (0: unknown) */
    uint64_t hb_ms;       /* milliseconds since its last message (heartbeat) */
    uint64_t up_s;        /* seconds since it joined */
    char slurm_job[32];   /* a pilot's Slurm job id ("" for a worker not run by Slurm) */
    char slurm_step[32];  /* its Slurm step id ("batch" for a batch script), or "" */
    char slurm_array[48]; /* its job array task ("123_4", as scancel takes it), or "" */
    uint32_t nodes;       /* CPU slots held by nodes of synchronous tasks (no job runs there) */
    uint32_t gpu_nodes;   /* GPU slots held by nodes of GPU tasks */
    char version[16];     /* the Playdoh version it runs ("" when it did not say) */
} pd_worker_info_t;

/* One owner's jobs at the broker (pd_cluster_info; docs/security.md). */
typedef struct {
    char owner[48];       /* the client key that submitted them (40 characters), or, without
                             CurveZMQ, "local:" and a hash of the account's owner token; ""
                             for jobs of no owner (submitted by an older client) */
    bool mine;            /* the owner is this client */
    uint64_t batches;     /* submits (chunks of a map) with unfinished jobs */
    uint64_t queued;      /* jobs queued */
    uint64_t running;     /* jobs running */
    uint64_t final;       /* jobs done, failed or cancelled whose results wait to be
                             fetched or released */
} pd_owner_info_t;

/* The cluster as the broker sees it. */
typedef struct {
    char name[64];              /* the broker's name */
    char cluster[64];           /* the cluster's name */
    uint64_t queued;            /* jobs waiting at the broker for a slot */
    uint64_t unfinished;        /* queued or running jobs */
    size_t nworkers;            /* entries in workers */
    pd_worker_info_t *workers;  /* owned; free with pd_cluster_info_clear */
    char version[16];           /* the Playdoh version the broker runs ("" when it did not say) */
    size_t nowners;             /* entries in owners */
    pd_owner_info_t *owners;    /* the broker's jobs by owner, in order of their first job
                                   (owned; NULL from a broker that does not say) */
} pd_cluster_info_t;

/* Asks the broker for every worker with its slots, load, GPUs and jobs,
   and for how many jobs each owner has there. Returns 0 (fill *info; the
   caller clears it) or an error. */
int pd_cluster_info(pd_client_t *c, pd_cluster_info_t *info);
/* Frees what pd_cluster_info stored and zeroes info. */
void pd_cluster_info_clear(pd_cluster_info_t *info);

/* ---- the embedded cluster ------------------------------------------------ */

/* Starts a cluster on this machine: a playdoh-broker child process on a free
   loopback port, running a worker with `cpus` slots (0 = one per CPU) inside
   it (`playdoh-broker --worker-cpus`; each slot is a process of its own), and
   waits until the worker has registered (up to 20 s). The worker also offers
   every GPU its CUDA driver shows, as GPU slots. The broker program is
   looked for at $PLAYDOH_BROKER_BIN, in $PLAYDOH_BINDIR, beside the running
   executable, beside this library and in the bin directory next to its lib
   directory, in the installation's bindir, then on $PATH. Returns the
   cluster (stop it with pd_local_stop), or NULL with *err set (the reason,
   such as the paths looked at, goes to the log; pd_local_start_opts can
   return it as a sentence). */
pd_local_t *pd_local_start(int cpus, int *err);
/* The broker's endpoint, for pd_client_new. Borrowed until pd_local_stop. */
const char *pd_local_endpoint(const pd_local_t *l);

/* Options of pd_local_start_opts. */
typedef struct {
    int cpus;        /* worker slots (0: one per CPU) */
    bool tcp_worker; /* the worker as its own process over TCP, as on a real cluster,
                        instead of inside the broker over inproc */
    bool secure;     /* CurveZMQ on every connection even on loopback, with keys made
                        for this cluster (implies tcp_worker; benchmarks and tests) */
    char *why;       /* when not NULL, receives why starting failed (whycap bytes): the
                        paths looked at when playdoh-broker was not found */
    size_t whycap;   /* bytes at why */
    const char *http; /* when not NULL, the broker's dashboard on this ADDR:PORT of
                         loopback (playdoh-broker --http; docs/dashboard.md) */
} pd_local_opts_t;
/* Like pd_local_start, with options. With secure, a temporary directory
   holds a broker key pair and a key pair for the worker and the clients
   (admitted as both); it is removed by pd_local_stop. Returns the cluster or
   NULL with *err set. */
pd_local_t *pd_local_start_opts(const pd_local_opts_t *opts, int *err);
/* The options a client needs to connect to this cluster (its security and
   keys): pass them to pd_client_open. Borrowed until pd_local_stop. */
const pd_client_opts_t *pd_local_client_opts(const pd_local_t *l);
/* Stops the cluster (SIGTERM, then SIGKILL after 5 s), frees l and
   sets *l to NULL; safe twice. Results not fetched are lost with it. */
void pd_local_stop(pd_local_t **l);

/* ---- modules ------------------------------------------------------------- */

typedef enum {
    PD_MODULE_C = 0,      /* one C source file */
    PD_MODULE_SO = 1,     /* a shared object */
    PD_MODULE_BUNDLE = 2, /* several files and flags, as pd_module_upload_files packs them */
    PD_MODULE_CU = 3      /* CUDA C source: kernels shipped with GPU jobs (pd_map_opts_t.cuda) */
} pd_module_kind_t;

/* Uploads a module unless the broker has it already (content-addressed:
   the hash is the SHA-256 of data). kind C: one C source file that includes
   playdoh_task.h, compiled by each worker; kind SO: a shared object built for
   the workers' platform; kind CU: CUDA C source holding kernels, shipped
   with GPU jobs (pd_map_opts_t.cuda) and compiled by each GPU worker with
   NVRTC. name appears in error messages. Writes the module's hash into hash
   (PD_HASH_HEX bytes). Returns 0 or an error. */
int pd_module_upload(pd_client_t *c, const char *name, pd_module_kind_t kind, const void *data,
                     size_t len, char hash[PD_HASH_HEX]);
/* Reads a file and uploads it: ".so" files as shared objects, ".cu" files as
   CUDA source, anything else as C source. Returns 0, PD_EIO (unreadable;
   pd_client_error says why) or an error of pd_module_upload. */
int pd_module_upload_file(pd_client_t *c, const char *path, char hash[PD_HASH_HEX]);

/* Uploads a module of several files: C sources (.c) and the headers they
   include (.h), placed side by side by base name on each worker and
   compiled together into one shared object, with compiler flags from a
   whitelist (-lNAME, -DNAME[=VALUE], -UNAME, -O0..-O3/-Os/-Og/-Ofast,
   -std=..., -march=native, -ffast-math, -fopenmp, -g, -Wall, ...; -L and -I
   are refused: see docs/guide.md). flags may be NULL when nflags is 0. The
   files and flags are packed into one bundle, content-addressed as a whole.
   Any module (this kind or a single file) may define PD_INIT (see
   playdoh_task.h), run once per slot process before its first job.
   Returns 0, PD_EIO (a file is unreadable), PD_EINVAL (a bad name or flag,
   two files with one base name, no .c file: pd_client_error says which) or
   an error of pd_module_upload. */
int pd_module_upload_files(pd_client_t *c, const char *const *paths, size_t npaths,
                           const char *const *flags, size_t nflags, char hash[PD_HASH_HEX]);

/* ---- shared data --------------------------------------------------------- */

/* Uploads read-only data that every job of a map can read (pd_task_shared):
   sent to the broker once (content-addressed by BLAKE2b-256: an upload of
   bytes it has already costs one round trip), and from the broker to each
   worker once, with the first job that names it; each worker keeps it in a
   file and every slot process maps that file, so a machine holds one copy
   however many slots and jobs read it. Writes the hash to pass as
   pd_map_opts_t.shared. Returns 0, PD_EINVAL (empty), PD_ETOOBIG (over the
   broker's --max-shared-mb; pd_client_error says the limit), PD_EOVERLOAD
   (the broker's store is full of data unfinished maps use), or another
   error. The broker may evict data no unfinished job uses to make room for
   new data: upload again before each map (cheap when it is still there). */
int pd_shared_upload(pd_client_t *c, const void *data, size_t len, char hash[PD_HASH_HEX]);
/* Uploads a file's bytes as shared data (mapped, not copied). Returns 0,
   PD_EIO (unreadable), or an error of pd_shared_upload. */
int pd_shared_upload_file(pd_client_t *c, const char *path, char hash[PD_HASH_HEX]);

/* ---- asynchronous map ---------------------------------------------------- */

typedef struct {
    uint32_t timeout_ms; /* per job; 0 = no limit */
    uint32_t retries;    /* workers a job may lose (a worker that dies or falls silent
                            while running it) before it fails with PD_ELOST; 0 = the
                            default (3). A job whose own run fails is not retried by this:
                            see retry_failed */
    uint32_t max_slots;  /* run at most this many of this client's jobs at once (all its
                            queued jobs: the latest submit's value holds); 0 = no cap */
    const char *shared;  /* hash of shared data (pd_shared_upload) every job of the map can
                            read with pd_task_shared(); NULL = none */
    bool gpu;            /* run on GPU slots only (the task may use pd_cuda_*) */
    const char *cuda;    /* hash of a CUDA module (PD_MODULE_CU) shipped with the jobs,
                            whose kernels the task launches; implies gpu; NULL = none */
    /* What each job may take (docs/guide.md, "Limits"). The broker places a
       job only on a worker whose owner allows that much; a job over one of
       them fails alone with PD_ELIMIT naming the limit. 0 = not asked: the
       worker's default (its owner's [worker] default_*) applies. */
    uint64_t memory;     /* resident memory of the job's processes together, bytes */
    uint64_t cpu_time_s; /* CPU time of each of its processes, seconds */
    uint64_t max_output; /* bytes of standard output (and of standard error) kept; the
                            rest is dropped and the result says how much; at most 64 MiB
                            (PD_EINVAL above); the workers' default is 4 MiB */
    uint32_t retry_failed; /* runs again of a job whose own run failed (the function
                              returned an error, an exec command exited non-zero, the task
                              crashed or ran past timeout_ms), at most 100; its error is the
                              last run's. 0 = none (the default). A broken module
                              (PD_ECOMPILE, PD_ENOFUNC) is never run again */
} pd_map_opts_t;

/* Submits one job per argument: fn of module hash over n msgpack values
   stored back to back in args[0..len). Writes each job's id into ids[i] as
   soon as the broker has accepted it (ids of one call are consecutive unless
   other clients submit at the same time, or the broker restarted during the
   call: a chunk sent again may then get later ids than the chunks after
   it); nothing is waited for. The batch travels in chunks of at most 4096
   jobs or 1 MiB, each with a token, so a chunk sent again after a dropped
   connection is never taken twice. Returns the number of jobs accepted: n
   on success; fewer when the broker refused a chunk (overload, a journal
   that cannot be written) after accepting others, in which case ids[i] is
   0 for every job not accepted and pd_client_error() says why. Returns an
   error when nothing was accepted: PD_EPROTO (args is not n msgpack
   values), PD_ENOMODULE, PD_EOVERLOAD (the broker holds its limit of
   unfinished jobs, or its journal is over its bound), PD_EIO (its journal
   cannot be written), PD_EUNREACH, PD_ETIMEDOUT, PD_ENOGPU (GPU jobs, and
   no worker of the cluster has offered a GPU since the broker started;
   once one has, GPU jobs wait queued for a GPU slot), PD_EINVAL
   (opts->cuda is not a CUDA module, or hash is one; opts->max_output over
   64 MiB). Jobs that ask for more memory, CPU time or output than any
   worker registered now allows are accepted and wait for a worker that
   allows it (the broker's log says so). opts may be NULL.
   A module's function that no worker has run yet runs one job first, and
   the others wait for it: a module that does not compile or lacks fn
   fails once (see pd_fetch), not once per job. */
long pd_map(pd_client_t *c, const char *hash, const char *fn, const void *args, size_t len, size_t n,
            const pd_map_opts_t *opts, uint64_t *ids);
/* pd_map over an array of doubles, one job per number. */
long pd_map_doubles(pd_client_t *c, const char *hash, const char *fn, const double *x, size_t n,
                    const pd_map_opts_t *opts, uint64_t *ids);

/* ---- following jobs ------------------------------------------------------ */

/* The state of each job, into states[i] for ids[i]. Returns 0 or an error. */
int pd_status(pd_client_t *c, const uint64_t *ids, size_t n, pd_job_state_t *states);

/* One job's outcome. */
typedef struct {
    uint64_t id;
    pd_job_state_t state; /* PD_JOB_QUEUED or RUNNING if it had not ended in time */
    void *value;          /* done: the result, one msgpack value (owned); failed: the
                             job's partial output when it has one (an exec job's
                             {exit, out, err, ...} map), else NULL */
    size_t len;           /* bytes in value */
    int code;             /* failed: a PD_E* code (PD_ECRASH, PD_ETIMEDOUT, ...) */
    char *error;          /* failed: the message, with host and slot (owned) */
} pd_result_t;

/* Waits up to timeout_ms (-1: for ever, 0: no wait) for the jobs to end and
   fills results[i] for ids[i]. A job that has not ended gets the state the
   broker holds for it, queued or running (as pd_status says), read in the
   same reply as the results. Returns the number of jobs that ended (n when
   all did) or an error. Results stay at the broker until pd_release. Free the
   entries with pd_results_clear (also after an error: entries not filled
   are zeroed). progress, if not NULL, is called after each batch of results
   arrives with the count ended so far.
   A module that does not compile (PD_ECOMPILE) or lacks the function
   (PD_ENOFUNC) fails once: the broker runs one job of a new module's batch
   first, and when it fails so, the other jobs of the batch are cancelled
   without running. pd_fetch then returns that code, with the worker's
   message in pd_client_error() (the compiler's diagnostic, naming the
   module's own file: "square.c:2:38: error: ..."); results[] are filled
   all the same (that job failed, the others cancelled). */
long pd_fetch(pd_client_t *c, const uint64_t *ids, size_t n, int timeout_ms, pd_result_t *results,
              void (*progress)(size_t ended, size_t total, void *user), void *user);
/* Most results one pd_fetch_any call returns. */
#define PD_FETCH_ANY_MAX 10000

/* Waits up to timeout_ms (-1: for ever, 0: no wait) until at least one of
   the jobs has ended, then stores the ended ones (at most max, capped at
   PD_FETCH_ANY_MAX; in id order, not ids[] order) into results[0..k): each
   entry's id says which job it is. Returns k, 0 when none ended in time, or
   an error. A job that ended is returned again by the next call: drop its id
   from ids[] once handled (or pd_release it). The ids are sent as ranges of
   consecutive values, at most 4096 ranges per call: keep ids[] sorted and
   put the ones that matter first. Free the entries with pd_results_clear. */
long pd_fetch_any(pd_client_t *c, const uint64_t *ids, size_t n, int timeout_ms,
                  pd_result_t *results, size_t max);
/* Frees what pd_fetch stored in results[0..n) and zeroes them. */
void pd_results_clear(pd_result_t *results, size_t n);
/* Reads a done job's value as a number. Returns 0, or PD_EPROTO if it is not. */
int pd_result_double(const pd_result_t *r, double *x);

/* Cancels jobs: queued ones never run, running ones are stopped (their slot
   process is killed and replaced). Returns how many were cancelled, or an
   error. Jobs already ended are left as they are. */
long pd_cancel(pd_client_t *c, const uint64_t *ids, size_t n);
/* Tells the broker to forget ended jobs and free their results. Returns how
   many it forgot, or an error. */
long pd_release(pd_client_t *c, const uint64_t *ids, size_t n);

/* ---- synchronous tasks: graphs ------------------------------------------ */

/* A directed graph of named tubes over n nodes: each edge (tube, src, dst)
   carries what node src pushes on that tube to node dst. */
typedef struct pd_graph pd_graph_t;

/* A graph of n nodes (1 .. 4096) without edges. Returns it (the caller
   destroys it) or NULL (n out of range, out of memory). */
pd_graph_t *pd_graph_new(int n);
/* Frees g, sets *g to NULL; safe twice. */
void pd_graph_destroy(pd_graph_t **g);
/* Its number of nodes, tubes and (distinct) edges. */
int pd_graph_nodes(const pd_graph_t *g);
int pd_graph_tubes(const pd_graph_t *g);
size_t pd_graph_edges(const pd_graph_t *g);

/* Adds edge src -> dst on tube (a name of 1 to 63 bytes; a tube is created
   by its first edge). Adding an edge twice is harmless. Returns 0, or
   PD_EINVAL (a node out of range, src == dst, a bad name, more than 256
   tubes or 1,000,000 edges), PD_ENOMEM. */
int pd_graph_edge(pd_graph_t *g, const char *tube, int src, int dst);
/* Helpers over all n nodes; each returns 0 or an error of pd_graph_edge.
   With one node they add nothing (a node does not send to itself). */
int pd_graph_ring(pd_graph_t *g, const char *tube);       /* i -> (i+1) mod n */
int pd_graph_ring_back(pd_graph_t *g, const char *tube);  /* i -> (i-1) mod n */
int pd_graph_chain(pd_graph_t *g, const char *tube);      /* i -> i+1, for i < n-1 */
int pd_graph_chain_back(pd_graph_t *g, const char *tube); /* i -> i-1, for i > 0 */
int pd_graph_star_out(pd_graph_t *g, const char *tube, int hub); /* hub -> every other node */
int pd_graph_star_in(pd_graph_t *g, const char *tube, int hub);  /* every other node -> hub */
int pd_graph_all_to_all(pd_graph_t *g, const char *tube); /* i -> j for all i != j */
/* Only a tube, without edges (a tube no node uses is allowed). */
int pd_graph_tube(pd_graph_t *g, const char *tube);

/* Adds the edges of a graph text (docs/sync.md): either lines
   `TUBE: SPEC, SPEC, ...` (SPEC: ring, ring-back, chain, chain-back,
   all-to-all, star-out HUB, star-in HUB, or SRC->DST; `#` starts a
   comment), or one JSON object {"TUBE": SPEC or [SPEC or [SRC, DST], ...]}.
   Returns 0, or PD_EINVAL with a sentence naming the line (and column)
   in err (errcap bytes). */
int pd_graph_parse(pd_graph_t *g, const char *text, size_t len, char *err, size_t errcap);
/* pd_graph_parse of a file's contents; PD_EIO when it cannot be read. */
int pd_graph_load(pd_graph_t *g, const char *path, char *err, size_t errcap);

/* ---- synchronous tasks: running them -------------------------------------- */

typedef enum {
    PD_TASK_UNKNOWN = 0,   /* the broker has no such task (never started, or released) */
    PD_TASK_QUEUED = 1,    /* waiting until N slots are free at once */
    PD_TASK_RUNNING = 2,   /* every node passed the start barrier */
    PD_TASK_DONE = 3,      /* every node returned its result */
    PD_TASK_FAILED = 4,    /* a node failed: see the error (node, host, why) */
    PD_TASK_CANCELLED = 5,
    PD_TASK_STARTING = 6   /* placed; the nodes are meeting (rendezvous) */
} pd_task_state_t;

/* "queued", "starting", ...: static storage. */
const char *pd_task_state_name(pd_task_state_t s);
/* True for done, failed, cancelled and unknown. */
bool pd_task_state_final(pd_task_state_t s);

#define PD_TASK_NO_TIMEOUT (-1)

typedef struct {
    int io_timeout_ms;         /* nodes' push/pop time-out; 0 = 60000, PD_TASK_NO_TIMEOUT = none */
    uint32_t start_timeout_ms; /* from placement to the barrier (module compile
                                  included); 0 = 300000 */
    uint32_t timeout_ms;       /* from the barrier to the end; 0 = none */
    uint32_t window;           /* messages in flight per edge; 0 = 1024 */
    uint64_t window_bytes;     /* bytes in flight per edge; 0 = 16 MiB */
    bool gpu;                  /* every node on a GPU slot of its own (pd_cuda_* in the
                                  node; docs/gpu.md); the task waits for n free GPUs */
    const char *cuda;          /* hash of a CUDA module (PD_MODULE_CU) whose kernels the
                                  nodes launch; implies gpu; NULL = none */
} pd_task_opts_t;

/* Starts a synchronous task: function fn of module hash on every node of
   graph g (its n nodes, its tubes). args: NULL (every node gets nil) or n
   msgpack values back to back in args[0..len), node i's argument the i-th.
   opts may be NULL. The task is queued at once and *id set; the broker
   starts all n nodes together as soon as n slots are free (never some of
   them). Returns 0; PD_ENOSLOTS when the cluster has fewer slots than n in
   all (GPU slots for a GPU task; pd_client_error says how many); PD_ENOGPU
   (a GPU task, and no worker has offered a GPU since the broker started);
   PD_EINVAL, PD_EPROTO (args are not n values), PD_ENOMODULE, PD_EOVERLOAD,
   PD_EUNREACH. */
int pd_task_start(pd_client_t *c, const char *hash, const char *fn, const pd_graph_t *g,
                  const void *args, size_t len, const pd_task_opts_t *opts, uint64_t *id);

typedef struct {
    pd_task_state_t state;
    int nodes;  /* n */
    int ended;  /* nodes that have returned (or failed) */
} pd_task_info_t;

/* The state of task id. Returns 0 (state PD_TASK_UNKNOWN for an id the
   broker does not know) or an error. */
int pd_task_status(pd_client_t *c, uint64_t id, pd_task_info_t *info);

/* Asks task id to stop: its nodes see pd_node_stopping() turn true and end
   their work as they choose, with results (an optimisation ends after its
   current iteration, pd_optim_stop). A task not running yet is cancelled
   at once. Returns 1, 0 when the task had already ended (or is unknown),
   or an error. Asking twice is harmless. */
int pd_task_stop(pd_client_t *c, uint64_t id);

/* A task's outcome. */
typedef struct {
    uint64_t id;
    pd_task_state_t state; /* not final when the wait ran out */
    int n;                 /* nodes */
    pd_result_t *nodes;    /* when final: n entries, nodes[i].id = i; state done
                              (value), failed (code, error) or cancelled (stopped
                              because another node failed, or cancel) */
    int code;              /* failed or cancelled: the task's PD_E* code */
    char *error;           /* failed or cancelled: the sentence, naming node and host */
    int failed_node;       /* the node that failed, or -1 */
    char *host;            /* its host, or NULL */
} pd_task_result_t;

/* Waits up to timeout_ms (-1: for ever, 0: no wait) for task id to end and
   fills res (free it with pd_task_result_clear). Returns 0 when it ended
   (done, failed, cancelled or unknown: see res->state), PD_ETIMEDOUT when
   it is still queued or running (res->state says which), or an error. */
int pd_task_fetch(pd_client_t *c, uint64_t id, int timeout_ms, pd_task_result_t *res);
/* Frees what pd_task_fetch stored in res and zeroes it. */
void pd_task_result_clear(pd_task_result_t *res);
/* Cancels a task: queued, it never starts; starting or running, its nodes
   are stopped and its slots freed. Returns 1, 0 when it had already ended
   (or is unknown), or an error. */
int pd_task_cancel(pd_client_t *c, uint64_t id);
/* Tells the broker to forget an ended task and its results. Returns 1, 0
   when it was not ended or unknown, or an error. */
int pd_task_release(pd_client_t *c, uint64_t id);

/* ---- optimisation ---------------------------------------------------------

   Minimise or maximise a fitness function of dim parameters within bounds,
   with a particle swarm (PSO), a real-coded genetic algorithm (GA), CMA-ES
   or self-adaptive differential evolution (DE, jDE), run as islands that
   exchange their best individuals along a topology every
   migration_interval iterations; a bounded Nelder-Mead may polish the
   result (opts.polish). The fitness evaluates a
   block of points per call (playdoh_fitness.h); with groups, G independent
   optimisations run side by side and one call covers them all.

       double lo[10], hi[10];  ... bounds ...
       pd_optim_opts_t o;
       pd_optim_opts_init(&o, PD_ALGO_CMAES, 10);
       o.lower = lo; o.upper = hi; o.budget = 100000; o.seed = 7;
       pd_optim_result_t r;
       if (pd_optim_run(&o, my_fitness, my_data, &r) == 0)
           ... r.best_f[0], r.best_x[0 .. 10) ...
       else
           ... r.error says what was wrong ...
       pd_optim_result_clear(&r);

   pd_optim_run runs every island in this process, one after the other,
   migrating between iterations; the same options drive the cluster form
   (one island per node of a synchronous task, the fitness named in a
   shipped module). docs/optimisation.md is the user guide. */


typedef enum { PD_ALGO_PSO = 0, PD_ALGO_GA = 1, PD_ALGO_CMAES = 2, PD_ALGO_DE = 3 } pd_algo_t;

/* Who sends migrants to whom. RING: island i to (i+1) mod N; STAR: island 0
   and every other island both ways; FULL: every island to every other;
   EDGES: the (from, to) pairs of opts.edges; NONE: no migration. */
typedef enum {
    PD_TOPO_NONE = 0,
    PD_TOPO_RING = 1,
    PD_TOPO_STAR = 2,
    PD_TOPO_FULL = 3,
    PD_TOPO_EDGES = 4
} pd_topology_t;

/* Why a run ended. */
typedef enum {
    PD_STOP_NONE = 0,       /* it has not run */
    PD_STOP_ITERATIONS = 1, /* opts.iterations reached */
    PD_STOP_BUDGET = 2,     /* the next iteration would have exceeded opts.budget */
    PD_STOP_TARGET = 3,     /* every group reached opts.target */
    PD_STOP_CONVERGED = 4,  /* every optimiser met its stopping tolerances (CMA-ES) */
    PD_STOP_CANCELLED = 5,  /* the progress callback asked to stop */
    PD_STOP_ERROR = 6       /* the fitness failed or returned NaN */
} pd_optim_stop_t;

/* PSO velocity rules. */
typedef enum {
    PD_PSO_SPSO2011 = 0,  /* SPSO-2011: the new position is drawn in a hypersphere around the
                             centre of gravity of x, p and l (rotation invariant) */
    PD_PSO_COMPONENT = 1  /* per coordinate: v = w v + c1 r1 (p - x) + c2 r2 (l - x) */
} pd_pso_variant_t;

typedef struct {
    pd_pso_variant_t variant; /* default PD_PSO_COMPONENT; PD_PSO_SPSO2011 is rotation
                                 invariant but measured worse (docs/optimisation.md) */
    double inertia;           /* w; default 1 / (2 ln 2) ~ 0.721 */
    double cognitive;         /* c1, pull towards the particle's own best; default 0.5 + ln 2 */
    double social;            /* c2, pull towards the best informant's best; default 0.5 + ln 2 */
    double max_velocity;      /* velocity clamp per coordinate, as a fraction of the bounds'
                                 width; default 0.5 */
    uint32_t informants;      /* SPSO's adaptive random topology: each particle informs this many
                                 random others, redrawn after an iteration that did not improve
                                 the swarm's best; 0 = every particle informs all (global best);
                                 default 3 up to 15 parameters, then dim / 5, at most 10 */
} pd_pso_params_t;

typedef struct {
    double crossover_prob; /* probability that a pair of parents is crossed (SBX); default 0.9 */
    double eta_c;          /* SBX distribution index: larger keeps children nearer their
                              parents; default 30 */
    double mutation_prob;  /* per coordinate (polynomial mutation); 0 = 1 / dim (default) */
    double eta_m;          /* polynomial mutation distribution index; default 20 */
    uint32_t tournament;   /* tournament size of the selection; default 3 */
    uint32_t elites;       /* best individuals copied unchanged into the next generation;
                              default 4 */
} pd_ga_params_t;

typedef struct {
    double sigma0;         /* initial step size as a fraction of the initial range's width
                              (per coordinate); default 0.3 */
    uint32_t restarts;     /* IPOP: restarts with a larger population when a run meets its
                              stopping tolerances; 0 = none; default 9 */
    double popsize_factor; /* IPOP: population growth per restart; default 2 */
    double tol_fun;        /* stop when the best values of the last 10 + 30 dim / lambda
                              generations and all of the current one lie within this
                              times |best value| (relative); default 1e-12 */
    double tol_x;          /* stop when every coordinate's standard deviation falls below
                              tol_x times sigma0 (in units of the initial range); default 1e-16 */
    bool bipop;            /* BIPOP: between the IPOP restarts, runs with a small population
                              and step size, so that each regime spends about as many
                              evaluations (docs/optimisation.md); default false (IPOP) */
} pd_cmaes_params_t;

typedef struct {
    double f_lower;        /* jDE: a new scale factor F is drawn in [f_lower, f_upper];
                              default 0.1 */
    double f_upper;        /* default 0.9 */
    double tau_f;          /* probability that an individual draws a new F for its next
                              trial; default 0.1 */
    double tau_cr;         /* probability that it draws a new crossover rate CR, uniform
                              in [0, 1]; default 0.1 */
} pd_de_params_t;

/* Progress after each iteration, for pd_optim_opts_t.progress. */
typedef struct {
    uint64_t iteration;    /* iterations done */
    uint64_t evaluations;  /* fitness evaluations done, all islands and groups */
    double wall_s;         /* seconds since the start */
    uint32_t groups;       /* entries in best_f */
    const double *best_f;  /* best value so far of each group, over every island */
} pd_optim_progress_t;

typedef struct {
    pd_algo_t algo;             /* the algorithm */
    size_t dim;                 /* parameters, >= 1 */
    const double *lower;        /* bounds: dim values each, lower < upper, finite; every point */
    const double *upper;        /*   ever evaluated lies within them (borrowed) */
    const double *init_lower;   /* where the first population is drawn: inside the bounds; */
    const double *init_upper;   /*   NULL = the bounds (borrowed) */
    const char *const *names;   /* parameter names for messages, dim entries, or NULL */
    size_t popsize;             /* individuals per island and group; 0 = the algorithm's
                                   default (PSO 40, GA 40, CMA-ES 4 + 3 ln dim, DE 40;
                                   DE needs 4 or more) */
    uint64_t iterations;        /* stop after this many iterations; 0 = no limit */
    uint64_t budget;            /* stop before exceeding this many evaluations (all islands and
                                   groups together); 0 = no limit; iterations or budget is needed */
    double target;              /* a group stops once its best value reaches this (<= when
                                   minimising, >= when maximising); NaN (default) = none */
    bool maximize;              /* maximise instead of minimise */
    uint32_t islands;           /* islands, >= 1; default 1 */
    pd_topology_t topology;     /* default PD_TOPO_RING */
    const uint32_t *edges;      /* PD_TOPO_EDGES: edge_count (from, to) pairs, flattened */
    size_t edge_count;
    uint32_t migration_interval;/* migrate every this many iterations; 0 = never; default 10 */
    uint32_t migration_count;   /* individuals an island sends to each neighbour, and at most
                                   takes in per migration; default 1 */
    uint64_t seed;              /* equal seeds and options give bit-identical runs; default 0 */
    uint32_t groups;            /* independent optimisations side by side; default 1 */
    pd_pso_params_t pso;        /* used when algo is PD_ALGO_PSO */
    pd_ga_params_t ga;          /* used when algo is PD_ALGO_GA */
    pd_cmaes_params_t cmaes;    /* used when algo is PD_ALGO_CMAES */
    pd_de_params_t de;          /* used when algo is PD_ALGO_DE */
    uint64_t polish;            /* after the global run, a bounded Nelder-Mead from each group's
                                   best point, with at most this many evaluations per group
                                   (counted in the result's evaluations, not in budget); 0 = none
                                   (default). pd_optim_run only: the cluster form refuses it */
    /* Called after every iteration when not NULL; a non-zero return stops the
       run (PD_STOP_CANCELLED, the result holds the best found so far). */
    int (*progress)(const pd_optim_progress_t *p, void *user);
    void *progress_user;
} pd_optim_opts_t;

typedef struct {
    int code;               /* 0, or the PD_E* code pd_optim_run returned */
    char *error;            /* when code != 0: what was wrong and what to do (owned) */
    pd_optim_stop_t stop;   /* why the run ended */
    size_t dim;
    uint32_t groups;
    uint32_t islands;
    double *best_x;         /* groups x dim: best point of each group (owned) */
    double *best_f;         /* groups: its value, in the user's sense (owned) */
    uint32_t *best_island;  /* groups: the island that holds it (owned) */
    uint64_t evaluations;   /* fitness evaluations, all islands and groups */
    uint64_t iterations;    /* iterations every island completed */
    uint64_t immigrants;    /* individuals islands took in by migration */
    uint64_t restarts;      /* CMA-ES restarts, all islands and groups */
    uint64_t polish_evaluations; /* evaluations of the polish (opts.polish), all groups;
                                    included in evaluations */
    double wall_s;          /* wall-clock seconds of the run */
    uint64_t history_len;   /* entries per island and group (= iterations) */
    double *history;        /* best-so-far of each island and group after each iteration's
                               evaluations (a migration after iteration t shows from t + 1),
                               islands x groups x history_len; read it with
                               pd_optim_history (owned) */
} pd_optim_result_t;

/* Fills o with the defaults for algorithm algo over dim parameters (the
   bounds stay NULL: set them). Always start from this. */
void pd_optim_opts_init(pd_optim_opts_t *o, pd_algo_t algo, size_t dim);
/* Checks options without running. Returns 0, or PD_EINVAL with a sentence
   naming the bad field and the accepted range written into err (errlen
   bytes, may be 0). */
int pd_optim_opts_check(const pd_optim_opts_t *o, char *err, size_t errlen);
/* Runs the optimisation in this process: every island in turn, each
   iteration one fitness call per island covering all its groups. Fills res
   (clear it with pd_optim_result_clear, whatever the return). Returns 0;
   PD_EINVAL for bad options, PD_ETASK when the fitness returned non-zero
   or NaN (res holds the best found until then, res->error says which point
   and iteration), PD_ENOMEM. */
int pd_optim_run(const pd_optim_opts_t *o, pd_fitness_fn fn, void *user, pd_optim_result_t *res);
/* Frees what pd_optim_run stored in r and zeroes it; safe twice. */
void pd_optim_result_clear(pd_optim_result_t *r);
/* The best-so-far value of island i, group g after iteration t (from 0). */
double pd_optim_history(const pd_optim_result_t *r, uint32_t island, uint32_t group, uint64_t t);

/* "pso", "ga", "cmaes", "de": static storage. */
const char *pd_algo_name(pd_algo_t a);
/* Parses an algorithm or topology name (as above, or "none", "ring",
   "star", "full"). Return 0, or PD_EINVAL. */
int pd_algo_parse(const char *name, pd_algo_t *a);
int pd_topology_parse(const char *name, pd_topology_t *t);
/* "iterations", "budget", ...: static storage. */
const char *pd_optim_stop_name(pd_optim_stop_t s);

/* A built-in test function by name: "sphere", "rosenbrock", "rastrigin",
   "ackley", "griewank", "schwefel" (minimum 0 for each), or a shifted form
   of all but Schwefel, "rastrigin@1" to "@4", whose optimum is moved away
   from the centre of the box (@1, @2: within the central 80 %; @3: near the
   upper bounds; @4: a corner; docs/optimisation.md). Writes the usual
   bounds, the same for every coordinate, into *lo and *hi when not NULL.
   Returns NULL for an unknown name. */
pd_fitness_fn pd_optim_builtin(const char *name, double *lo, double *hi);
/* Writes the minimum of built-in function name in dim parameters into x
   (dim values). Returns 0, or PD_EINVAL for an unknown name. */
int pd_optim_builtin_optimum(const char *name, size_t dim, double *x);

/* ---- optimisation on the cluster -----------------------------------------

   The same options, run as a synchronous task of one node per island
   (docs/optimisation.md, "On a cluster"): the fitness is a function of a
   module uploaded with pd_module_upload_file, found by name on every node;
   islands migrate over the task's tubes; node 0 takes the stopping
   decisions for all, so every island stops at the same iteration. With
   the same options and seed the result is the one pd_optim_run gives, bit
   for bit (on machines with the same libm and LAPACK).

       char mod[PD_HASH_HEX];
       pd_module_upload_file(c, "model.c", mod);
       pd_optim_result_t r;
       pd_optim_cluster(c, mod, "fit", &o, NULL, &r);    // waits; or:
       uint64_t id;
       pd_optim_submit(c, mod, "fit", &o, NULL, &id);    // id at once
       pd_optim_status(c, id, &st);                      // iteration, best so far
       pd_optim_fetch(c, id, -1, &r);                    // from any client
*/

/* Cluster options of an optimisation. */
typedef struct {
    const void *shared;    /* read-only data every fitness call sees as b->shared and the
                              module's pd_init as pd_task_shared() (copied into each node's
                              argument: keep it to a few MiB); NULL = none */
    size_t shared_len;     /* bytes in shared */
    pd_task_opts_t task;   /* the task's time-outs; io_timeout_ms 0 here means none (an
                              island waits for the others as long as their blocks take;
                              crashes and failures still end the run at once) */
} pd_optim_cluster_opts_t;

/* Starts an optimisation on the cluster: islands o->islands nodes running
   fitness `fitness` of module `module` (a hash from pd_module_upload*).
   co may be NULL. o->progress is not used (poll pd_optim_status). Sets *id
   to the task's id, which any client can poll, fetch and cancel. Returns 0;
   PD_EINVAL with pd_client_error naming the bad option; PD_ENOSLOTS when
   the cluster has fewer slots than islands; or an error of pd_task_start. */
int pd_optim_submit(pd_client_t *c, const char *module, const char *fitness,
                    const pd_optim_opts_t *o, const pd_optim_cluster_opts_t *co, uint64_t *id);

/* Where a cluster optimisation stands. */
typedef struct {
    pd_task_state_t state; /* queued, starting, running, or final */
    bool has_progress;     /* node 0 has reported: the fields below are set */
    uint64_t iteration;    /* iterations done */
    uint64_t evaluations;  /* evaluations, all islands */
    double wall_s;         /* seconds since the islands started */
    uint32_t groups;       /* entries in best_f (at most 4096 groups are reported) */
    double *best_f;        /* best so far per group, over every island (owned) */
} pd_optim_status_t;

/* Fills st with the state and the latest progress of optimisation id
   (node 0 reports after its first iteration, then at most every 100 ms).
   Free st with pd_optim_status_clear. Returns 0 (state PD_TASK_UNKNOWN for
   an id the broker does not know), PD_EPROTO, or a client error. */
int pd_optim_status(pd_client_t *c, uint64_t id, pd_optim_status_t *st);
/* Frees what pd_optim_status stored in st and zeroes it; safe twice. */
void pd_optim_status_clear(pd_optim_status_t *st);

/* Waits up to timeout_ms (-1: for ever, 0: no wait) for optimisation id and
   fills res as pd_optim_run does (clear it with pd_optim_result_clear,
   whatever the return; wall_s is node 0's run time). Returns 0; the run's
   error (PD_ETASK when the fitness failed or returned NaN: res holds the
   best found before it, res->error the point and island); PD_ECRASH,
   PD_ETIMEDOUT, PD_ELOST ... when a node failed (res->error names the node,
   host and why; no best point); PD_ECANCELLED when it was cancelled;
   PD_ENOJOB when the broker does not know id (never started, or
   released); PD_ETIMEDOUT with res->code 0 and res->stop PD_STOP_NONE when
   it is still running; PD_EPROTO when the task is not an optimisation. The
   results stay at the broker until pd_task_release(c, id). */
int pd_optim_fetch(pd_client_t *c, uint64_t id, int timeout_ms, pd_optim_result_t *res);

/* Cancels optimisation id (its nodes are stopped; nothing is kept).
   Returns 1, 0 when it had already ended, or an error: pd_task_cancel. */
int pd_optim_cancel(pd_client_t *c, uint64_t id);

/* Asks optimisation id to stop after its current iteration: every island
   ends there, and the result (pd_optim_fetch) is complete, with stop
   PD_STOP_CANCELLED and the best point found, as when pd_optim_run's
   progress callback says stop. A run that has not started yet is cancelled
   (pd_optim_fetch: PD_ECANCELLED). Returns 1, 0 when it had already ended,
   or an error: pd_task_stop. */
int pd_optim_stop(pd_client_t *c, uint64_t id);

/* pd_optim_submit, then waits for the result (pd_optim_fetch) and releases
   the task. While it runs, o->progress (when set) is called with node 0's
   latest progress each time a new one arrives (about every 100 ms at
   most); a non-zero return stops the run after its current iteration
   (pd_optim_stop: stop PD_STOP_CANCELLED, the best point kept).
   Returns as pd_optim_fetch, or an error of pd_optim_submit (res->error
   says why in every case). */
int pd_optim_cluster(pd_client_t *c, const char *module, const char *fitness,
                     const pd_optim_opts_t *o, const pd_optim_cluster_opts_t *co,
                     pd_optim_result_t *res);

/* ---- shell commands ------------------------------------------------------ */

/* The reserved module hash of the built-in tasks, which every worker has. */
#define PD_BUILTIN "builtin"

/* Submits one job per shell command: each runs `/bin/sh -c CMD` on a worker
   slot (standard input from /dev/null), in this process's working
   directory when the worker sees that path (it exists there and the worker
   may enter it: a shared file system, or the same machine), else in a
   scratch directory made for the job and removed after it. Its exit
   status, standard output and standard error (up to opts->max_output each,
   by default 4 MiB) come back as the job's result. A command that exits 0
   makes a done job; any other status a failed one (PD_ETASK) whose
   pd_result_t.value still holds the output. Read either with
   pd_result_exec. Returns as pd_map. pd_exec_jobs says more. */
long pd_exec(pd_client_t *c, const char *const *cmds, size_t n, const pd_map_opts_t *opts,
             uint64_t *ids);

/* Most files one exec job sends (pd_exec_job_t.transfer), and returns. */
#define PD_EXEC_MAX_FILES 256
/* Bytes of the files one exec job returns, in all (64 MiB). */
#define PD_EXEC_MAX_RETURN (64u << 20)

/* One exec job with the files it needs, for pd_exec_jobs. Every name is a
   path relative to this process's working directory that stays inside it:
   no leading '/', no "..", no '\\' or ':' (PD_EINVAL otherwise). */
typedef struct {
    const char *cmd;                 /* the shell command */
    const char *const *transfer;     /* files read here and sent with the job, written at
                                        the same relative path into its directory before
                                        the command runs (may be NULL when ntransfer is 0) */
    size_t ntransfer;                /* at most PD_EXEC_MAX_FILES */
    const char *const *ret;          /* files read from the job's directory once the
                                        command ended and sent back with the result (read
                                        them with pd_result_exec_file); NULL when nret is 0 */
    size_t nret;                     /* at most PD_EXEC_MAX_FILES */
} pd_exec_job_t;

/* Submits one exec job per jobs[i], as pd_exec, and chooses where each
   runs: in workdir when not NULL (a relative one is taken from this
   process's working directory; a worker that cannot enter it fails the job
   with PD_EIO, naming the directory and its host); else, for a job that
   sends or returns files, in a scratch directory on the worker (made for
   the job, removed after it); else as pd_exec. A job's files travel in its
   argument, so they count against the broker's limit on one job's argument
   (its max_arg_mb, 16 MiB by default) and on a submit: PD_ETOOBIG names
   the job and says to use a file system the workers share (workdir)
   instead. A file to send that cannot be read is PD_EIO, naming it. A job
   whose command succeeded but left a file to return missing fails with
   PD_EIO; more than PD_EXEC_MAX_RETURN bytes to return with PD_ETOOBIG.
   Returns as pd_map. */
long pd_exec_jobs(pd_client_t *c, const pd_exec_job_t *jobs, size_t n, const char *workdir,
                  const pd_map_opts_t *opts, uint64_t *ids);

/* What an exec job produced. Pointers are borrowed from the pd_result_t. */
typedef struct {
    int exit;          /* exit status; -1 when the command was killed by a signal */
    int signal;        /* the signal that killed it, or 0 */
    const char *out;   /* standard output (not NUL-terminated) */
    size_t out_len;    /* its bytes */
    const char *err;   /* standard error (not NUL-terminated) */
    size_t err_len;    /* its bytes */
    const char *host;  /* the worker's host name (not NUL-terminated) */
    size_t host_len;   /* its bytes */
    double start;      /* Unix time (seconds) when the command started */
    double runtime;    /* seconds it ran */
    bool truncated;    /* output past the job's output limit (pd_map_opts_t.max_output,
                          by default 4 MiB per stream) was dropped */
    uint64_t out_dropped; /* bytes of standard output dropped */
    uint64_t err_dropped; /* bytes of standard error dropped */
    const char *dir;   /* the directory the command ran in on the worker (not
                          NUL-terminated; "" from workers older than pd_exec_jobs) */
    size_t dir_len;    /* its bytes */
    bool scratch;      /* dir was a scratch directory made for the job (gone now) */
    size_t nfiles;     /* files returned (pd_result_exec_file) */
} pd_exec_result_t;

/* Reads an exec job's output from a done or failed result. Returns 0, or
   PD_EPROTO when r holds no exec output (another kind of job, or a job that
   failed before its command ran: crash, time-out, lost worker). */
int pd_result_exec(const pd_result_t *r, pd_exec_result_t *x);

/* A file an exec job returned. Pointers are borrowed from the pd_result_t. */
typedef struct {
    const char *name;  /* its name as the worker sent it (not NUL-terminated): check it
                          before use (the names asked for, pd_exec_job_t.ret) */
    size_t name_len;   /* its bytes */
    const void *data;  /* its content */
    size_t len;        /* its bytes */
} pd_exec_file_t;

/* The i-th file (from 0, below pd_exec_result_t.nfiles) an exec job
   returned into *f. Returns 0, or PD_EPROTO when r holds no such file. */
int pd_result_exec_file(const pd_result_t *r, size_t i, pd_exec_file_t *f);

#ifdef __cplusplus
}
#endif
#endif
