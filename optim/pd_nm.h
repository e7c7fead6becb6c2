/*  pd_nm: a bounded Nelder-Mead that polishes a point found by a global run
    (pd_optim_opts_t.polish). Internal to the optimiser library. */
#ifndef PD_NM_H
#define PD_NM_H

#include "playdoh.h"

#include <stddef.h>
#include <stdint.h>

/* Polishes (x, *f) of group g (f in the user's sense) with at most budget
   evaluations of fn, in blocks (the first simplex, a shrink) or single
   points. The blocks carry what tmpl says of the run (island, iteration,
   shared data, user, task); the polish fills in the points, the group and
   the error buffer. On return x and *f hold the best point seen (never
   worse than the start) and *evals the evaluations made. Returns 0,
   PD_ETASK when fn failed or gave NaN (a sentence in err; x, *f keep the
   best before it), PD_ENOMEM. */
int pd_nm_polish(const pd_optim_opts_t *o, pd_fitness_fn fn, const pd_fitness_block_t *tmpl,
                 uint32_t g, uint64_t budget, double *x, double *f, uint64_t *evals, char *err,
                 size_t errlen);

#endif
