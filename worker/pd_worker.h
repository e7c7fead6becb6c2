/*  pd_worker: the worker's root object and its loop.

    A worker connects a DEALER socket (routing id "w-" + 16 random hex
    digits) to the broker, registers with `ready {host, pid, cpus, gpus}`,
    receives modules and jobs, runs the jobs in its slot processes (pd_slot)
    and sends results back in `done` batches. It heartbeats from its own loop
    while the slot processes compute, re-registers when the broker falls
    silent or says `reset`, and leaves with `bye`. docs/protocol.md is the
    contract; docs/worker.md describes the program.
*/
#ifndef PD_WORKER_H
#define PD_WORKER_H

#include "pd_auth.h"
#include "pd_policy.h"

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
    pd_sec_mode_t security;  /* AUTO: CurveZMQ unless the broker is on loopback */
    const char *config_dir;  /* id.key, known_brokers, lists (NULL: pd_auth_config_dir()) */
    const char *key_file;    /* this worker's key pair (NULL: <config_dir>/id.key) */
    const char *broker_key;  /* the broker's public key (NULL: from known_brokers) */
    pd_policy_mode_t code_policy; /* whose code runs here (default: any admitted client) */
    const char *code_list;   /* the policy's list (NULL: <config_dir>/code-clients or
                                code-modules) */
} pd_worker_config_t;

typedef struct pd_worker pd_worker_t;

/* Creates the worker: opens the module cache, starts the slot processes and
   connects to the broker (strings are copied); with CurveZMQ it loads its
   key pair and the broker's trusted key first. Returns NULL with *err (if
   not NULL) set to PD_EINVAL (bad configuration), PD_ENOKEY (no key pair),
   PD_ENOTRUSTED (no trusted broker key), PD_EAUTH (unreadable or
   unprotected key), PD_ESYS or PD_ENOMEM; the reason is logged with what to
   do. */
pd_worker_t *pd_worker_new(const pd_worker_config_t *cfg, int *err);

/* Runs the loop until *stop becomes non-zero (a signal handler sets it),
   then sends `bye`. Returns 0, or PD_ESYS when ZeroMQ fails. */
int pd_worker_run(pd_worker_t *w, volatile sig_atomic_t *stop);

/* Kills the slot processes, closes the socket, frees the worker; sets *p to
   NULL; safe twice. */
void pd_worker_destroy(pd_worker_t **p);

/* The worker's routing id ("w-" + 16 hex digits), borrowed. */
const char *pd_worker_id(pd_worker_t *w);

/* Handles one message from the broker as the loop does (for tests and
   fuzzing): `run` queues jobs, `mod` stores a module, `cancel`, `reset`,
   `welcome`, `hb`, `error`. Results and refusals are batched for `done`. */
void pd_worker_on_message(pd_worker_t *w, const void *data, size_t len);
/* Jobs queued and not yet given to a slot. */
size_t pd_worker_queued(const pd_worker_t *w);

#endif
