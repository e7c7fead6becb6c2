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

    Task authors include playdoh_task.h instead, not this header.
*/
#ifndef PLAYDOH_H
#define PLAYDOH_H

#include "pd_error.h"

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
    const char *broker_key; /* the broker's public key (40 characters); NULL: the
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
   Checks that the broker answers within the connect time-out. Returns the
   client (the caller destroys it), or NULL with *err (if not NULL) set and,
   when opts->why is given, a sentence saying what to do:
   PD_EUNREACH     no broker answered;
   PD_EINVAL       a malformed endpoint or key;
   PD_ENOKEY       this account has no key pair (run `playdoh-keygen`);
   PD_ENOTRUSTED   no trusted key for this broker (`playdoh-keygen trust`);
   PD_EAUTH        the handshake failed: the broker refused this key, holds
                   another key than the one trusted, or runs another security;
   PD_EREFUSED     the broker admits this key, but not as a client.
   opts may be NULL. */
pd_client_t *pd_client_open(const char *endpoint, const pd_client_opts_t *opts, int *err);
/* pd_client_open(endpoint, NULL, err). */
pd_client_t *pd_client_new(const char *endpoint, int *err);
/* Closes the connection and frees the client; sets *c to NULL; safe twice.
   Jobs already submitted go on and their results wait at the broker. */
void pd_client_destroy(pd_client_t **c);
/* Sets how long one request waits for the broker's reply (default 30000 ms). */
void pd_client_set_timeout(pd_client_t *c, int timeout_ms);
/* The last error, as a sentence for the user. Borrowed until the next call. */
const char *pd_client_error(const pd_client_t *c);
/* The broker's endpoint. Borrowed. */
const char *pd_client_endpoint(const pd_client_t *c);
/* Asks the broker how many workers and slots it has. Returns 0 or an error. */
int pd_client_cluster_size(pd_client_t *c, int *workers, int *slots);

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
    uint64_t hb_ms;       /* milliseconds since its last message (heartbeat) */
    uint64_t up_s;        /* seconds since it joined */
} pd_worker_info_t;

/* The cluster as the broker sees it. */
typedef struct {
    char name[64];              /* the broker's name */
    char cluster[64];           /* the cluster's name */
    uint64_t queued;            /* jobs waiting at the broker for a slot */
    uint64_t unfinished;        /* queued or running jobs */
    size_t nworkers;            /* entries in workers */
    pd_worker_info_t *workers;  /* owned; free with pd_cluster_info_clear */
} pd_cluster_info_t;

/* Asks the broker for every worker with its slots, load, GPUs and jobs.
   Returns 0 (fill *info; the caller clears it) or an error. */
int pd_cluster_info(pd_client_t *c, pd_cluster_info_t *info);
/* Frees what pd_cluster_info stored and zeroes info. */
void pd_cluster_info_clear(pd_cluster_info_t *info);

/* ---- the embedded cluster ------------------------------------------------ */

/* Starts a cluster on this machine: a playdoh-broker child process on a free
   loopback port, running a worker with `cpus` slots (0 = one per CPU) inside
   it (`playdoh-broker --worker-cpus`; each slot is a process of its own), and
   waits until the worker has registered (up to 20 s). The broker program is
   looked for in $PLAYDOH_BINDIR, beside the running executable, then in the
   installation's bindir. Returns the cluster (stop it with pd_local_stop), or
   NULL with *err set. */
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

typedef enum { PD_MODULE_C = 0, PD_MODULE_SO = 1 } pd_module_kind_t;

/* Uploads a module unless the broker has it already (content-addressed:
   the hash is the SHA-256 of data). kind C: one C source file that includes
   playdoh_task.h, compiled by each worker; kind SO: a shared object built for
   the workers' platform. name appears in error messages. Writes the module's
   hash into hash (PD_HASH_HEX bytes). Returns 0 or an error. */
int pd_module_upload(pd_client_t *c, const char *name, pd_module_kind_t kind, const void *data,
                     size_t len, char hash[PD_HASH_HEX]);
/* Reads a file and uploads it: ".so" files as shared objects, anything else
   as C source. Returns 0, PD_EIO (unreadable; pd_client_error says why) or an
   error of pd_module_upload. */
int pd_module_upload_file(pd_client_t *c, const char *path, char hash[PD_HASH_HEX]);

/* ---- asynchronous map ---------------------------------------------------- */

typedef struct {
    uint32_t timeout_ms; /* per job; 0 = no limit */
    uint32_t retries;    /* attempts when workers die; 0 = the default (3) */
} pd_map_opts_t;

/* Submits one job per argument: fn of module hash over n msgpack values
   stored back to back in args[0..len). Writes each job's id into ids[i] as
   soon as the broker has accepted it (ids of one call are consecutive unless
   other clients submit at the same time); nothing is waited for. The batch
   travels in chunks of at most 4096 jobs or 1 MiB. Returns the number of jobs
   accepted: n on success; fewer when the broker refused a chunk (overload)
   after accepting others, in which case ids[i] is 0 for every job not
   accepted and pd_client_error() says why. Returns an error when nothing was
   accepted: PD_EPROTO (args is not n msgpack values), PD_ENOMODULE,
   PD_EOVERLOAD (the broker holds its limit of unfinished jobs), PD_EUNREACH.
   opts may be NULL. */
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
    void *value;          /* done: the result, one msgpack value (owned) */
    size_t len;           /* bytes in value */
    int code;             /* failed: a PD_E* code (PD_ECRASH, PD_ETIMEDOUT, ...) */
    char *error;          /* failed: the message, with host and slot (owned) */
} pd_result_t;

/* Waits up to timeout_ms (-1: for ever, 0: no wait) for the jobs to end and
   fills results[i] for ids[i]. Returns the number of jobs that ended (n when
   all did) or an error. Results stay at the broker until pd_release. Free the
   entries with pd_results_clear. progress, if not NULL, is called after each
   batch of results arrives with the count ended so far. */
long pd_fetch(pd_client_t *c, const uint64_t *ids, size_t n, int timeout_ms, pd_result_t *results,
              void (*progress)(size_t ended, size_t total, void *user), void *user);
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

#ifdef __cplusplus
}
#endif
#endif
