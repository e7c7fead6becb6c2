/*  pd_island: one island of an optimisation: an optimiser per group, one
    fitness call per iteration covering every group.

        pd_island_t *is = pd_island_new(&opts, island_index, &err);
        while (...) {
            rc = pd_island_step(is, fitness, user, NULL, 0, msg, sizeof msg);
            ... every migration_interval iterations:
                n = pd_island_export(is, g, k, x, f);   send to out-neighbours
                pd_island_import(is, g, m, x, f);      what the in-neighbours sent
        }
        pd_island_destroy(&is);

    Values cross this interface in the user's sense (maximised values stay
    as the fitness returned them); the island turns them around for its
    optimisers, which always minimise. The same object runs in-process
    (pd_optim_run) and on a node of a synchronous task, so that one seed
    gives one result either way.
*/
#ifndef PD_ISLAND_H
#define PD_ISLAND_H

#include "playdoh.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pd_island pd_island_t;

/* Creates island `index` of a run with checked options o (borrowed: the
   bounds and names must outlive the island). Returns it or NULL with
   *err = PD_ENOMEM. */
pd_island_t *pd_island_new(const pd_optim_opts_t *o, uint32_t index, int *err);
/* Frees is and sets *is to NULL; safe twice. */
void pd_island_destroy(pd_island_t **is);

/* Asks every active group for its next points and lays them out as one
   block: *x (n x dim) and *group (n), borrowed until pd_island_tell.
   Returns n; 0 when no group has anything to ask (all stopped or
   inactive); PD_ENOMEM, after which the island is unusable (destroy it).
   Must be followed by pd_island_tell (even when n is 0). */
long pd_island_ask(pd_island_t *is, const double **x, const uint32_t **group);
/* Gives the values of the last ask's block, in the user's sense. Returns 0,
   or PD_ETASK when a value is NaN, with a sentence naming the point in err;
   nothing is told to any optimiser then, and the island cannot go on. */
int pd_island_tell(pd_island_t *is, const double *f, char *err, size_t errlen);
/* Evaluates the block of the last ask with fn and tells the values (ask,
   then this, is pd_island_step split so that a driver can look at the
   block's size in between). Returns as pd_island_step. */
int pd_island_evaluate(pd_island_t *is, pd_fitness_fn fn, void *user, const void *shared,
                       size_t shared_len, char *err, size_t errlen);
/* The task the island's fitness blocks carry (pd_fitness_block_t.task): the
   node's, on a cluster node; NULL (the default) in-process. */
void pd_island_set_task(pd_island_t *is, struct pd_task *task);
/* One iteration: ask, call fn on the block, tell. shared is the task's
   shared data (NULL in-process). Returns 0, PD_ETASK when fn returned
   non-zero (its message, or a default, in err) or a NaN, PD_ENOMEM. */
int pd_island_step(pd_island_t *is, pd_fitness_fn fn, void *user, const void *shared,
                   size_t shared_len, char *err, size_t errlen);

/* Stops asking for group g (its target was reached) or resumes it. */
void pd_island_set_active(pd_island_t *is, uint32_t g, bool active);
/* True when group g will ask for nothing more (stopped or inactive). */
bool pd_island_group_idle(const pd_island_t *is, uint32_t g);
/* Best k distinct individuals of group g into x (k x dim) and f (user's
   sense). Returns how many. */
size_t pd_island_export(pd_island_t *is, uint32_t g, size_t k, double *x, double *f);
/* Offers m individuals of group g (f in the user's sense); those outside
   the bounds or valued NaN are dropped. Returns how many the group's
   optimiser took in. */
size_t pd_island_import(pd_island_t *is, uint32_t g, size_t m, const double *x, const double *f);
/* Of nc candidates of group g (x: nc x dim, f in the user's sense, from
   the in-neighbours in their index order), imports the best
   migration_count, ties by order: the one rule of both drivers. Returns
   how many the optimiser took in (0 when out of memory). */
size_t pd_island_import_best(pd_island_t *is, uint32_t g, size_t nc, const double *x,
                             const double *f);
/* Polishes every group's best point with a bounded Nelder-Mead of at most
   o->polish evaluations each (pd_nm.h); the polished point becomes the
   group's best. shared: the task's shared data (NULL in-process). Adds the
   evaluations to *evals. Returns 0, PD_ETASK (fn failed or gave NaN: a
   sentence in err) or PD_ENOMEM. */
int pd_island_polish(pd_island_t *is, pd_fitness_fn fn, void *user, const void *shared,
                     size_t shared_len, uint64_t *evals, char *err, size_t errlen);
/* Best value of group g so far (user's sense; +/-INFINITY before any) and
   its point (borrowed, NULL before any). */
double pd_island_best(const pd_island_t *is, uint32_t g, const double **x);
/* Iterations stepped. */
uint64_t pd_island_iterations(const pd_island_t *is);
/* Points evaluated, all groups. */
uint64_t pd_island_evaluations(const pd_island_t *is);
/* CMA-ES restarts, all groups. */
uint64_t pd_island_restarts(const pd_island_t *is);

#endif
