/*  pd_simworkers: many workers played from one process, for the scale bench
    (bench/bench_scale.c) and test (tests/test_integration_scale.c).

    Each simulated worker is a real ZeroMQ DEALER socket connected to a real
    broker, with a routing id of its own ("w-" + 16 hex digits), speaking the
    worker protocol of docs/protocol.md through pd_msg: `ready` with its CPU
    slots, `hb` with its state every heartbeat, `done` for every `run`, and
    `ready` again after a `reset`. Its jobs run no code: each job's result
    is its own argument (an echo), so a caller can check every result, sent
    run_ms after the `run` came (0: at once). `mod`, `shr` and `cancel` are
    taken and ignored. A few threads drive all the workers, each over its
    share of the sockets with epoll on their ZMQ_FD, so 2,000 workers cost
    two threads, not 2,000.

    What a real worker does and these do not: run slot processes, measure
    the machine's load, take the broker for silent (they keep heartbeating
    whatever it does), handle synchronous tasks (node_* messages are
    ignored). Linux only (epoll).
*/
#ifndef PD_SIMWORKERS_H
#define PD_SIMWORKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pd_simworkers pd_simworkers_t;

typedef struct {
    const char *endpoint; /* the broker's ROUTER, e.g. "tcp://127.0.0.1:5555" */
    int workers;          /* simulated workers, 1 .. PD_SIMWORKERS_MAX */
    int slots;            /* CPU slots each offers, 1 .. 65536 */
    int threads;          /* threads driving them; 0: one per 1,000 workers, at most 4 */
    int run_ms;           /* a job's simulated run time: results leave this long after
                             their `run` came (0: at once) */
} pd_simworkers_opts_t;

#define PD_SIMWORKERS_MAX 20000

/* What the simulated workers saw, added up over all of them. */
typedef struct {
    uint64_t registered; /* workers welcomed and not reset since */
    uint64_t welcomes;   /* `welcome` messages */
    uint64_t resets;     /* `reset` messages: the broker had forgotten a worker */
    uint64_t runs;       /* `run` messages */
    uint64_t jobs;       /* jobs answered in `done` (a job run twice counts twice) */
    uint64_t bad;        /* unreadable messages and `error` replies from the broker */
} pd_simworkers_stats_t;

/* Starts the workers: raises this process's open-file limit and the ZeroMQ
   socket limit as far as they need, connects every socket and sends each
   `ready`. Returns the object (the caller destroys it), or NULL with a
   sentence in why (cap bytes) saying what failed. */
pd_simworkers_t *pd_simworkers_new(const pd_simworkers_opts_t *opts, char *why, size_t cap);
/* Raises this process's open-file limit to what n simulated workers need
   (children started later, such as a broker, inherit it). Returns 0, or -1
   with a sentence in why. */
int pd_simworkers_raise_nofile(int n, char *why, size_t cap);
/* Copies the counters into *st (safe while the workers run). */
void pd_simworkers_stats(pd_simworkers_t *s, pd_simworkers_stats_t *st);
/* Waits up to timeout_ms until every worker is registered. Returns true
   when all are. */
bool pd_simworkers_wait_registered(pd_simworkers_t *s, int timeout_ms);
/* Stops the threads, sends `bye` from every worker (the broker requeues
   what they held without counting an attempt), closes the sockets and
   frees everything; *p becomes NULL. Safe on NULL. */
void pd_simworkers_destroy(pd_simworkers_t **p);

#endif
