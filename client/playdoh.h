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

/* Connects to the broker at endpoint ("tcp://host:port"); NULL means the
   PLAYDOH_BROKER environment variable, else tcp://127.0.0.1:5555. Checks that
   the broker answers within the connect time-out (PLAYDOH_CONNECT_TIMEOUT_MS,
   default 5000). Returns the client (the caller destroys it), or NULL with
   *err (if not NULL) set: PD_EUNREACH when no broker answered, PD_EINVAL for a
   malformed endpoint. */
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

/* ---- the embedded cluster ------------------------------------------------ */

/* Starts a cluster on this machine: a playdoh-broker on a free loopback port
   and a playdoh-worker with `cpus` slots (0 = one per CPU), as child
   processes, and waits until the worker has joined (up to 20 s). Programs are
   looked for in $PLAYDOH_BINDIR, beside the running executable, then in the
   installation's bindir. Returns the cluster (stop it with pd_local_stop), or
   NULL with *err set. */
pd_local_t *pd_local_start(int cpus, int *err);
/* The broker's endpoint, for pd_client_new. Borrowed until pd_local_stop. */
const char *pd_local_endpoint(const pd_local_t *l);
/* Stops the broker and worker (SIGTERM, then SIGKILL after 5 s), frees l and
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
} pd_task_opts_t;

/* Starts a synchronous task: function fn of module hash on every node of
   graph g (its n nodes, its tubes). args: NULL (every node gets nil) or n
   msgpack values back to back in args[0..len), node i's argument the i-th.
   opts may be NULL. The task is queued at once and *id set; the broker
   starts all n nodes together as soon as n slots are free (never some of
   them). Returns 0; PD_ENOSLOTS when the cluster has fewer slots than n in
   all (pd_client_error says how many); PD_EINVAL, PD_EPROTO (args are not n
   values), PD_ENOMODULE, PD_EOVERLOAD, PD_EUNREACH. */
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

#ifdef __cplusplus
}
#endif
#endif
