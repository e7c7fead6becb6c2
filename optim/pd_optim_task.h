/*  pd_optim_task: what travels between the client and the island nodes of
    a cluster optimisation (docs/optimisation.md, "On a cluster").

    A cluster run is a synchronous task of one node per island running the
    worker's built-in node function PD_OPTIM_NODE_FN over the user's module.
    Every node gets the same argument, a msgpack map

        {v: 1, opts: <pd_optim_opts_encode's map>, fitness: str, shared: bin | nil}

    and returns one msgpack map (its island's part of the result):

        {v: 1, island, dim, groups, maximize, iterations, evaluations, immigrants,
         restarts, best_f: bin (groups doubles), best_x: bin (groups x dim),
         has_best: bin (groups bytes), history: bin (groups x iterations doubles)}

    with, from node 0 only, the run's decisions: stop (pd_optim_stop_t),
    total (evaluations of all islands), wall_s (its run time), code (error name or nil) and error
    (sentence or nil). Doubles are raw little-endian bytes (every supported
    platform is little-endian). Node 0 also reports progress while it runs:
    {v: 1, iteration, evaluations, wall_s, best_f: bin (groups doubles)}.

    The client packs the argument (pd_optim_task_arg) and turns the task's
    node results into a pd_optim_result_t (pd_optim_task_collect), choosing
    each group's best as pd_optim_run does, so a cluster run and an
    in-process run with the same options give the same result.
*/
#ifndef PD_OPTIM_TASK_H
#define PD_OPTIM_TASK_H

#include "pd_codec.h"
#include "playdoh.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The built-in node function of cluster optimisations. Not a C identifier,
   so it never collides with a function of the user's module. */
#define PD_OPTIM_NODE_FN "pd.optim_island"
/* Tubes of the task: migrants along the topology, and the all-to-0 /
   0-to-all exchange of node 0's decisions. */
#define PD_OPTIM_TUBE_MIGRATE "migrate"
#define PD_OPTIM_TUBE_GATHER "gather"
#define PD_OPTIM_TUBE_DECIDE "decide"
/* Largest progress report node 0 sends (groups beyond fit in the result). */
#define PD_OPTIM_PROGRESS_MAX_GROUPS 4096u

/* Appends the nodes' argument to b: options o (checked; the reason in err
   when they are refused), the fitness's name, and shared data (NULL, 0 for
   none; copied). Returns 0, PD_EINVAL or PD_ENOMEM. */
int pd_optim_task_arg(const pd_optim_opts_t *o, const char *fitness, const void *shared,
                      size_t shared_len, pd_buf_t *b, char *err, size_t errlen);

/* What a node reads from its argument: raw options (borrowed from the
   argument) and the rest. */
typedef struct {
    const void *opts;       /* the options' msgpack map, for pd_optim_spec_decode */
    size_t opts_len;
    char fitness[256];      /* the fitness's name in the module */
    const void *shared;     /* shared data (borrowed from the argument), or NULL */
    size_t shared_len;
} pd_optim_task_arg_t;

/* Decodes a node's argument. Returns 0 or PD_EPROTO with a sentence in err. */
int pd_optim_task_arg_decode(const void *buf, size_t len, pd_optim_task_arg_t *a, char *err,
                             size_t errlen);

/* Progress of a cluster run, as node 0 last reported it. */
typedef struct {
    uint64_t iteration;   /* iterations done */
    uint64_t evaluations; /* evaluations, all islands */
    double wall_s;        /* seconds since the nodes started */
    uint32_t groups;      /* entries in best_f */
    double *best_f;       /* best so far per group (owned) */
} pd_optim_task_progress_t;

/* Decodes a progress report. Returns 0 or PD_EPROTO; free with
   pd_optim_task_progress_clear. */
int pd_optim_task_progress_decode(const void *buf, size_t len, pd_optim_task_progress_t *p);
void pd_optim_task_progress_clear(pd_optim_task_progress_t *p);

/* One node's part of the result, for pd_optim_task_result_encode; every
   pointer is borrowed. */
typedef struct {
    uint32_t island;         /* the node's index */
    size_t dim;
    uint32_t groups;
    bool maximize;
    uint64_t iterations;     /* iterations this island did */
    uint64_t evaluations;    /* its evaluations */
    uint64_t immigrants;     /* individuals it took in */
    uint64_t restarts;       /* its CMA-ES restarts */
    uint64_t polish_evals;   /* evaluations of its polish (opts.polish) */
    const double *best_f;    /* groups */
    const double *best_x;    /* groups x dim */
    const uint8_t *has_best; /* groups: 1 when the group has a best point */
    const double *history;   /* groups x iterations, group-major */
    bool decider;            /* node 0: the fields below are sent */
    pd_optim_stop_t stop;    /* why the run ended */
    uint64_t total;          /* evaluations of every island */
    double wall_s;           /* seconds the run took, on node 0 */
    int code;                /* 0 or the run's PD_E* code */
    const char *error;       /* its sentence, or NULL */
} pd_optim_node_result_t;

/* Appends r as a node result to b. Returns 0 or PD_ENOMEM. */
int pd_optim_task_result_encode(const pd_optim_node_result_t *r, pd_buf_t *b);
/* Appends a progress report to b (at most PD_OPTIM_PROGRESS_MAX_GROUPS of
   the groups). Returns 0 or PD_ENOMEM. */
int pd_optim_task_progress_encode(uint64_t iteration, uint64_t evaluations, double wall_s,
                                  uint32_t groups, const double *best_f, pd_buf_t *b);

/* Fills res from the task's node results (vals[i], lens[i]: node i's
   result, n nodes). Returns res->code: 0, the run's error (PD_ETASK ...),
   or PD_EPROTO with res->error saying which node's result is malformed. */
int pd_optim_task_collect(const uint8_t *const *vals, const size_t *lens, uint32_t n,
                          pd_optim_result_t *res);

#endif
