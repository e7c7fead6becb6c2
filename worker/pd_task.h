/*  pd_task: the slot side of include/playdoh/playdoh_task.h.

    A slot process owns one pd_task_t and reuses it for every job: it points
    the task at the job's argument (pd_task_begin), calls the module's task
    function, then reads what the task wrote (pd_task_result) or why it failed
    (pd_task_error). Every function declared in playdoh_task.h is implemented
    in pd_task.c and exported by the executable (export_dynamic), so modules
    link against nothing. On a GPU slot the task's pd_cuda_* calls go
    through the slot's pd_gpurt_t (gpu/pd_gpurt.h).

    A node process of a synchronous task (pd_nodeproc) uses a pd_task_t the same
    way and, after pd_task_begin, attaches its tubes with pd_task_set_node so
    that pd_push/pd_pop work; for jobs they fail with a sentence.
*/
#ifndef PD_TASK_H
#define PD_TASK_H

#include "playdoh_task.h"
#include "pd_gpurt.h"
#include "pd_tubes.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest result a task may write, in bytes. */
#define PD_TASK_MAX_RESULT (64u << 20)

/* A task context for slot index `slot`; NULL when out of memory. */
pd_task_t *pd_task_new(int slot);
/* Frees the task; sets *p to NULL; safe twice. */
void pd_task_destroy(pd_task_t **p);

/* Makes the task a GPU slot's: gpu is the worker's number of the slot's
   GPU, rt its runtime (borrowed; it outlives the task). */
void pd_task_set_gpu(pd_task_t *t, int gpu, pd_gpurt_t *rt);

/* Prepares the task for one job. arg (len bytes, one msgpack value) is
   borrowed until the next pd_task_begin. Clears the previous result and
   the job's CUDA module. */
void pd_task_begin(pd_task_t *t, uint64_t job_id, const void *arg, size_t len);
/* Names the job's CUDA module (hash, and name for messages; copied), after
   pd_task_begin. */
void pd_task_set_cuda(pd_task_t *t, const char *hash, const char *name);

/* Sets the job's shared data (borrowed; NULL, 0 for none) until the next
   pd_task_begin. */
void pd_task_set_shared(pd_task_t *t, const void *p, size_t len);
/* Makes the task node `index` of a synchronous task of n nodes, whose
   messages travel through tubes (borrowed until the next pd_task_begin). */
void pd_task_set_node(pd_task_t *t, int index, int n, pd_tubes_t *tubes);
/* What pd_node_stopping asks: probe(ctx) says whether a stop was asked. */
void pd_task_set_stop_probe(pd_task_t *t, bool (*probe)(void *ctx), void *ctx);

/* After the task function returned rc: decides the job's outcome.
   Returns 0 when the job succeeded (then *value, *len hold the result, one
   well-formed msgpack value, nil when nothing was written; borrowed until
   the next pd_task_begin), or a negative code (PD_ETASK, PD_ETOOBIG, and
   for failed pd_cuda_* calls PD_ECOMPILE, PD_ECUDA, PD_ENOGPU, ...; for a
   failed push or pop of a node its own code: PD_ETIMEDOUT, PD_EPEER,
   PD_EINVAL ...) with *value pointing to a NUL-terminated sentence
   (borrowed likewise). Frees the device memory the job left allocated. */
int pd_task_finish(pd_task_t *t, int rc, const uint8_t **value, size_t *len);

#endif
