/*  pd_sched: the broker's scheduler, without sockets.

    In: the job table, the worker registry, the task table, the module
    store and the probes. Out: a list of orders for the loop to carry out,
    in order:
      PD_SCHED_PLACE  a queued task's nodes were placed (node i on worker
                      r->nodes[i].worker): send each its node_start;
      PD_SCHED_RUN    send these jobs to this worker in one `run`, each
                      preceded by the module, CUDA module or shared data it
                      marks (send bits) that the worker does not have yet;
      PD_SCHED_STEAL  ask this worker for n queued jobs of a class back.

    Every decision is taken here: which queued task fits where (first come,
    first served, all nodes or none), which worker gets which jobs and how
    many (its share, then its credit: pd_workers), which jobs wait for
    another platform, for a worker whose owner allows them, or for the
    probe of their (module, function) on this platform (pd_probes), whether
    a module or shared data must go first ("already sent?"), and when
    slots idle while jobs wait at busy workers (stealing). Planning updates
    the tables as if the orders were carried out (jobs popped and tracked
    on their worker, modules and shared data marked sent, nodes placed);
    an order that cannot be sent is undone by the loop (pd_sched_unsent,
    pd_jobs_requeue), which then plans again.
*/
#ifndef PD_SCHED_H
#define PD_SCHED_H

#include "pd_jobs.h"
#include "pd_mods.h"
#include "pd_probes.h"
#include "pd_tasks.h"
#include "pd_workers.h"

#include <stdbool.h>
#include <stdint.h>

#define PD_SCHED_RUN_CLIENTS 64 /* distinct client keys in one `run` at most */

typedef struct pd_sched pd_sched_t;

/* What planning reads and updates (not owned). */
typedef struct {
    pd_jobs_t *jobs;
    pd_reg_t *reg;
    pd_tasks_t *tasks;
    pd_mods_t *mods;
    pd_probes_t *probes;
    int64_t now_ms;    /* monotonic ms of this turn */
    int64_t steal_ms;  /* a steal not answered is asked again after this */
    uint32_t run_jobs; /* jobs per `run` at most */
    size_t run_bytes;  /* about this many bytes of arguments per `run` at most */
} pd_sched_in_t;

typedef enum { PD_SCHED_PLACE, PD_SCHED_RUN, PD_SCHED_STEAL } pd_sched_kind_t;

/* What must reach the worker before a job of a RUN. */
enum { PD_SCHED_SEND_MOD = 1, PD_SCHED_SEND_CU = 2, PD_SCHED_SEND_SHARED = 4 };

/* One job of a RUN. */
typedef struct {
    uint64_t id;
    uint8_t send; /* PD_SCHED_SEND_* bits */
} pd_sched_job_t;

typedef struct {
    pd_sched_kind_t kind;
    uint32_t worker; /* RUN, STEAL: registry index */
    int cls;         /* RUN, STEAL: slot class (PD_JOBS_CPU, PD_JOBS_GPU) */
    uint32_t n;      /* RUN: jobs; STEAL: jobs asked back */
    uint32_t first;  /* RUN: its first job in pd_sched_job */
    uint64_t task;   /* PLACE: the task's id */
} pd_sched_order_t;

/* A scheduler with no orders, or NULL without memory. */
pd_sched_t *pd_sched_new(void);
void pd_sched_destroy(pd_sched_t **p);

/* Plans one turn: places queued tasks (their nodes take slots, which
   lowers the jobs' credit), then for each class hands out queued jobs and
   asks back jobs queued at busy workers while slots idle. Replaces the
   previous orders; returns how many (pd_sched_order). Out of memory, it
   plans less (the next turn tries again). */
uint32_t pd_sched_plan(pd_sched_t *s, const pd_sched_in_t *in);
const pd_sched_order_t *pd_sched_order(const pd_sched_t *s, uint32_t i);
/* Job k (0 .. o->n - 1) of RUN order o. */
const pd_sched_job_t *pd_sched_job(const pd_sched_t *s, const pd_sched_order_t *o, uint32_t k);

/* True when module mod must be sent to wk before it runs one of its
   functions (not sent yet, and not a built-in). */
bool pd_sched_needs_mod(pd_mods_t *mods, const pd_wrec_t *wk, uint32_t mod);
/* Job j of a RUN for wk was not sent: forgets the sends marked for it (the
   worker does not have them). The caller requeues the job. */
void pd_sched_unsent(pd_wrec_t *wk, const pd_jobrec_t *job, const pd_sched_job_t *sj);

#endif
