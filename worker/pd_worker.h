/*  pd_worker: the worker's root object and its loop.

    A worker connects a DEALER socket (routing id "w-" + 16 random hex
    digits) to the broker, registers with `ready {host, pid, cpus, gpus}`,
    receives modules and jobs, runs the jobs in its slot processes (pd_slot)
    and sends results back in `done` batches. It heartbeats from its own loop
    while the slot processes compute, re-registers when the broker falls
    silent or says `reset`, and leaves with `bye`. docs/protocol.md is the
    contract; docs/worker.md describes the program.

    It also runs the nodes of synchronous tasks, each in its own process
    (pd_nodeproc), relaying the rendezvous between them and the broker
    (node_start, node_bound, node_peers, node_ready, node_go, node_done,
    node_abort). While k nodes run, at most cpus - k slots take jobs, so
    nodes and jobs together never use more CPUs than the worker offers.
*/
#ifndef PD_WORKER_H
#define PD_WORKER_H

#include <signal.h>
#include <stdbool.h>

typedef struct {
    const char *broker;    /* broker endpoint, e.g. "tcp://host:5555" (required) */
    int cpus;              /* CPU slots (>= 1) */
    int gpus;              /* GPUs offered (>= 0), reported to the broker */
    const char *cache_dir; /* module cache directory (required) */
    int heartbeat_ms;      /* heartbeat before the broker's welcome; 0 = 1000 */
    const char *name;      /* host name reported; NULL = gethostname() */
    const char *slot_exe;  /* program exec'ed for slots; NULL = "/proc/self/exe" */
    const char *log_level; /* passed to slot processes, or NULL */
    const char *node_addr; /* address nodes bind their tubes on; NULL = the address
                              this machine uses to reach the broker */
} pd_worker_config_t;

typedef struct pd_worker pd_worker_t;

/* Creates the worker: opens the module cache, starts the slot processes and
   connects to the broker (strings are copied). Returns NULL with *err (if
   not NULL) set to PD_EINVAL (bad configuration, logged), PD_ESYS or
   PD_ENOMEM. */
pd_worker_t *pd_worker_new(const pd_worker_config_t *cfg, int *err);

/* Runs the loop until *stop becomes non-zero (a signal handler sets it),
   then sends `bye`. Returns 0, or PD_ESYS when ZeroMQ fails. */
int pd_worker_run(pd_worker_t *w, volatile sig_atomic_t *stop);

/* Kills the slot processes, closes the socket, frees the worker; sets *p to
   NULL; safe twice. */
void pd_worker_destroy(pd_worker_t **p);

/* The worker's routing id ("w-" + 16 hex digits), borrowed. */
const char *pd_worker_id(pd_worker_t *w);
/* The address nodes bind their tubes on (chosen or given), borrowed. */
const char *pd_worker_node_addr(pd_worker_t *w);

/* The address this machine uses to reach the host of a tcp:// endpoint
   (the source address of a UDP socket connected there; 127.0.0.1 for a
   loopback broker), into out. Returns 0 or PD_EINVAL when it cannot tell. */
int pd_worker_route_addr(const char *endpoint, char *out, size_t cap);

#endif
