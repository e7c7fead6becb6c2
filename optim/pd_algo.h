/*  pd_algo: what an optimisation algorithm provides to pd_optimizer.

    Each algorithm (pd_pso.c, pd_ga.c, pd_cmaes.c, pd_de.c) is a table of functions
    over its own state, in the ask/tell style: ask() proposes the points to
    evaluate next, tell() receives their values, export/import move
    individuals between islands without restarting anything. Values are
    always in the minimisation sense and never NaN here: pd_island turns
    maximisation around and refuses NaN before an algorithm sees a value.

    Internal to the optimiser library; not installed.
*/
#ifndef PD_ALGO_H
#define PD_ALGO_H

#include "pd_rng.h"
#include "playdoh.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* What an algorithm is created from. Everything is borrowed for the
   algorithm's lifetime (pd_optimizer owns it). */
typedef struct {
    const pd_optim_opts_t *opts; /* the run's options (the algorithm's parameters) */
    size_t dim;                  /* parameters */
    const double *lo, *hi;       /* bounds, dim each */
    const double *ilo, *ihi;     /* initial range, dim each, inside the bounds */
    size_t popsize;              /* opts->popsize or the algorithm's default */
    uint32_t island, islands;    /* this optimiser's island, of how many */
    pd_rng_t *rng;               /* this optimiser's own stream */
} pd_algo_env_t;

typedef struct {
    const char *name;
    /* The state, or NULL when out of memory. */
    void *(*create)(const pd_algo_env_t *env);
    void (*destroy)(void *st);
    /* Points to evaluate next (n x dim, borrowed until tell); returns n, 0
       when the algorithm has stopped for good. */
    size_t (*ask)(void *st, const double **x);
    /* The values of the points of the last ask, in order. */
    void (*tell)(void *st, const double *f);
    /* Copies up to k of the algorithm's best distinct individuals, best
       first; returns how many. */
    size_t (*export_best)(void *st, size_t k, double *x, double *f);
    /* Offers k individuals from elsewhere; returns how many were taken in.
       Never restarts anything. Called between tell and the next ask. */
    size_t (*import)(void *st, size_t k, const double *x, const double *f);
    /* Restarts so far (CMA-ES IPOP), else 0. */
    uint64_t (*restarts)(void *st);
} pd_algo_ops_t;

extern const pd_algo_ops_t pd_pso_ops;
extern const pd_algo_ops_t pd_ga_ops;
extern const pd_algo_ops_t pd_cmaes_ops;
extern const pd_algo_ops_t pd_de_ops;

/* Default population of an algorithm in dim parameters. */
size_t pd_algo_default_popsize(pd_algo_t algo, size_t dim);

/* Writes into idx the permutation that sorts f ascending; ties keep index
   order, so the result never depends on the C library's qsort. tmp has n
   entries of scratch. */
void pd_argsort(const double *f, size_t n, size_t *idx, size_t *tmp);

/* Migration over a pool of n points of d coordinates (px, row-major) and
   their values (pf): the population of GA, the personal bests of PSO. */

/* Copies up to k of the pool's best distinct points to x and their values
   to f, best first (a point equal to the one before it, value and
   coordinates, is skipped); order and tmp are n entries of scratch for
   pd_argsort. Returns how many were copied. */
size_t pd_pool_export(const double *px, const double *pf, size_t n, size_t d, size_t *order,
                      size_t *tmp, size_t k, double *x, double *f);
/* Offers the pool k migrants (x, f), in order: each replaces the pool's
   worst point (the first of equals) when it is strictly better and not in
   the pool already. Returns how many were taken; *best, when not NULL, is
   lowered to the value of any taken migrant below it. */
size_t pd_pool_import(double *px, double *pf, size_t n, size_t d, size_t k, const double *x,
                      const double *f, double *best);

/* a is better than b in the sense of options o (user's values). */
static inline bool pd_optim_better(const pd_optim_opts_t *o, double a, double b)
{
    return o->maximize ? a > b : a < b;
}

/* v reaches o->target (never when there is none). */
static inline bool pd_optim_reached(const pd_optim_opts_t *o, double v)
{
    return !isnan(o->target) && (o->maximize ? v >= o->target : v <= o->target);
}

/* Seconds on the monotonic clock. */
static inline double pd_optim_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Clamps v into [lo, hi]. */
static inline double pd_clamp(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

#endif
