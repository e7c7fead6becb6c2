/*  pd_probes: whether a module's function has been seen to load on a
    platform, so that a broken module fails once, before its batch runs.

    A batch of jobs naming (module, function) that no worker of a platform
    has run yet is *probed*: the scheduler sends its first job alone to a
    worker of that platform and holds the others (and every other job of
    that pair) until the result comes back. A result that is not a module
    failure proves the pair on that platform: later jobs and batches flow
    without a hold. A module failure (PD_ECOMPILE, PD_ENOFUNC) ends the
    probe's batch (the broker cancels the rest) and the pair is forgotten:
    the next batch of it is probed again, which costs a worker one compile
    at most (a slot process remembers a module that failed to load).
    Built-in tasks (exec) are not probed: their program is in each job's
    argument.

    The table only remembers; the broker decides (broker/pd_broker_worker.c).
    Entries are keyed by module index, the CUDA module shipped with the jobs
    (its index + 1, 0 for none: its kernels compile in the probe too), the
    interned function index (a function name and its submitter's key) and
    the worker's platform string; at most PD_PROBES_MAX are kept (when full,
    all are forgotten, which costs each pair a probe again).
*/
#ifndef PD_PROBES_H
#define PD_PROBES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_PROBES_MAX 65536u /* entries remembered at most */

typedef struct pd_probes pd_probes_t;

/* What the scheduler may do with a job of a pair on a platform. */
typedef enum {
    PD_PROBE_NONE = 0, /* never tried there (or it failed): the job may go, as the probe */
    PD_PROBE_RUNNING,  /* a probe was sent (*probe says which job): the job waits,
                          unless that job is no longer running as the probe */
    PD_PROBE_PROVEN    /* seen to load there: the job goes */
} pd_probe_state_t;

/* Returns an empty table, or NULL when out of memory. */
pd_probes_t *pd_probes_new(void);
/* Frees the table; safe on NULL; sets *p to NULL. */
void pd_probes_destroy(pd_probes_t **p);

/* The state of (mod, cu, fn) on platform; for PD_PROBE_RUNNING, *probe gets
   the probe's job id. */
pd_probe_state_t pd_probes_get(pd_probes_t *p, uint32_t mod, uint32_t cu, uint32_t fn,
                               const char *platform, uint64_t *probe);
/* Job id was sent as the probe of (mod, cu, fn) on platform. Returns 0 or
   PD_ENOMEM (then the job simply runs unprobed). */
int pd_probes_start(pd_probes_t *p, uint32_t mod, uint32_t cu, uint32_t fn,
                    const char *platform, uint64_t id);
/* The probe came back without a module failure: the pair is proven there. */
void pd_probes_proven(pd_probes_t *p, uint32_t mod, uint32_t cu, uint32_t fn,
                      const char *platform);
/* Forgets what is known of the pair on platform: its probe met a module
   failure, or says nothing of the module; the next job probes again. */
void pd_probes_forget(pd_probes_t *p, uint32_t mod, uint32_t cu, uint32_t fn,
                      const char *platform);
/* Entries held. */
size_t pd_probes_count(const pd_probes_t *p);
/* Entries whose probe was sent and has not come back (some may be stale:
   their job went back to the queue). 0 tells a result's handler that no
   job can be a probe, without a look-up. */
size_t pd_probes_running(const pd_probes_t *p);

/* True for the codes that say a module cannot run a function at all,
   whatever the argument: PD_ECOMPILE and PD_ENOFUNC. */
bool pd_probes_module_failure(int code);

#endif
