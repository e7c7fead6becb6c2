/*  pd_worker: the worker's root object and its loop.

    A worker connects a DEALER socket (routing id "w-" + 16 random hex
    digits) to the broker, registers with `ready {host, pid, cpus, gpus,
    gpu_info}`,
    receives modules and jobs, runs the jobs in its slot processes (pd_slot)
    and sends results back in `done` batches. It heartbeats from its own loop
    while the slot processes compute, re-registers when the broker falls
    silent or says `reset`, and leaves with `bye`. docs/protocol.md is the
    contract; docs/worker.md describes the program.
*/
#ifndef PD_WORKER_H
#define PD_WORKER_H

#include <signal.h>
#include <stdbool.h>

typedef struct {
    const char *broker;    /* broker endpoint, e.g. "tcp://host:5555" (required) */
    int cpus;              /* CPU slots (>= 1) */
    int gpus;              /* GPU slots: -1 = every GPU the CUDA driver shows, N = exactly
                              N (more than the machine has: PD_EINVAL), 0 = none (the
                              driver is not even loaded) */
    const char *cache_dir; /* module cache directory (required) */
    int heartbeat_ms;      /* heartbeat before the broker's welcome; 0 = 1000 */
    const char *name;      /* host name reported; NULL = gethostname() */
    const char *slot_exe;  /* program exec'ed for slots; NULL = this program (its path) */
    const char *log_level; /* passed to slot processes, or NULL */
    void *zmq_ctx;         /* ZeroMQ context to use (borrowed), or NULL for one of its own;
                              an embedding broker passes its own to connect over inproc */
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

#endif
