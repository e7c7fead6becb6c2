/*  pd_optimizer: one optimiser (one island, one group), whatever the
    algorithm, in the ask/tell style.

        pd_optimizer_t *p = pd_optimizer_new(&opts, island, group, &err);
        for (;;) {
            const double *x;
            size_t n = pd_optimizer_ask(p, &x);     // n x dim points
            if (n == 0) break;                     // converged for good
            ... f[i] = value of x[i*dim ..] (minimisation sense) ...
            pd_optimizer_tell(p, f);
            // between tell and ask: pd_optimizer_export / _import
        }
        pd_optimizer_destroy(&p);

    The optimiser keeps the best point it has seen (evaluated or imported),
    counts evaluations, and draws from its own random stream seeded from
    (opts.seed, island, group), so that a run repeats bit for bit.
*/
#ifndef PD_OPTIMIZER_H
#define PD_OPTIMIZER_H

#include "playdoh.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pd_optimizer pd_optimizer_t;

/* Creates the optimiser of island, group for options already checked by
   pd_optim_opts_check. Returns it (the caller destroys it), or NULL with
   *err = PD_ENOMEM. */
pd_optimizer_t *pd_optimizer_new(const pd_optim_opts_t *o, uint32_t island, uint32_t group,
                                 int *err);
/* Frees p and sets *p to NULL; safe twice. */
void pd_optimizer_destroy(pd_optimizer_t **p);
/* The points to evaluate next, n x dim, borrowed until pd_optimizer_tell.
   Returns n; 0 when the optimiser has stopped for good (CMA-ES converged
   with no restart left). Must be followed by pd_optimizer_tell. */
size_t pd_optimizer_ask(pd_optimizer_t *p, const double **x);
/* The values of the last ask's points (minimisation sense, not NaN). */
void pd_optimizer_tell(pd_optimizer_t *p, const double *f);
/* Copies up to k best distinct individuals into x (k x dim) and f; returns
   how many. Values in the minimisation sense. */
size_t pd_optimizer_export(pd_optimizer_t *p, size_t k, double *x, double *f);
/* Takes in up to k individuals (x inside the bounds, f not NaN); returns
   how many were taken. The optimiser keeps all its state. */
size_t pd_optimizer_import(pd_optimizer_t *p, size_t k, const double *x, const double *f);
/* Offers (x, f), a point evaluated outside the algorithm (a polish): it
   becomes the best seen when it beats it. The algorithm does not see it. */
void pd_optimizer_offer_best(pd_optimizer_t *p, const double *x, double f);
/* The best value seen (+INFINITY before any) and, if x is not NULL, its
   point (borrowed until the next call; NULL before any). */
double pd_optimizer_best(const pd_optimizer_t *p, const double **x);
/* Points evaluated so far (points told). */
uint64_t pd_optimizer_evaluations(const pd_optimizer_t *p);
/* CMA-ES restarts so far. */
uint64_t pd_optimizer_restarts(const pd_optimizer_t *p);
/* True once ask has returned 0. */
bool pd_optimizer_stopped(const pd_optimizer_t *p);

#endif
