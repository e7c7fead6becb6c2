/*  bench_optim.h: what bench_optim.c asks of its optional pagmo2 side
    (bench_optim_pagmo.cpp, built only where libpagmo-dev is found). */
#ifndef BENCH_OPTIM_H
#define BENCH_OPTIM_H

#include "playdoh.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One run of pagmo's algorithm `which` ("pso", "sga", "cmaes", "sade", "de") on the
   built-in function fn (bounds lo..hi in every coordinate) in dim
   parameters with population pop, for at most budget evaluations. Writes
   the best value, the evaluations pagmo made and the CPU seconds (this
   thread) of the evolve call. Returns 0, or -1 when pagmo threw (message on stderr). */
int bench_pagmo_run(const char *which, pd_fitness_fn fn, double lo, double hi, size_t dim,
                    size_t pop, unsigned long long budget, unsigned seed, double *best,
                    unsigned long long *evals, double *seconds);
/* pagmo's version string. */
const char *bench_pagmo_version(void);

#ifdef __cplusplus
}
#endif
#endif
