/*  bench_optim_pagmo: pagmo2's pso, sga, cmaes, sade and de on Playdoh's own built-in
    functions, for bench_optim's same-run comparison.

    The user-defined problem calls the very C function Playdoh's optimisers
    evaluate (one point per call, as pagmo's algorithms call it), so both
    sides optimise the same code within the same bounds. Settings are
    pagmo's defaults except where noted: cmaes gets force_bounds = true (so
    that, like Playdoh, it never evaluates outside the bounds) and
    ftol = xtol = 1e-30 (its defaults of 1e-6 would stop it far short of
    1e-8 and waste the budget).
*/
#include "bench_optim.h"

#include <pagmo/algorithm.hpp>
#include <pagmo/algorithms/cmaes.hpp>
#include <pagmo/algorithms/de.hpp>
#include <pagmo/algorithms/pso.hpp>
#include <pagmo/algorithms/sade.hpp>
#include <pagmo/algorithms/sga.hpp>
#include <pagmo/config.hpp>
#include <pagmo/population.hpp>
#include <pagmo/problem.hpp>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <limits>

namespace {

struct builtin_problem {
    pd_fitness_fn fn = nullptr;
    size_t dim = 1;
    double lo = -1, hi = 1;

    pagmo::vector_double fitness(const pagmo::vector_double &x) const
    {
        uint32_t group = 0;
        double f = 0;
        pd_fitness_block_t b = {};
        b.x = x.data();
        b.n = 1;
        b.dim = x.size();
        b.group = &group;
        b.groups = 1;
        fn(&b, &f);
        return {f};
    }
    std::pair<pagmo::vector_double, pagmo::vector_double> get_bounds() const
    {
        return {pagmo::vector_double(dim, lo), pagmo::vector_double(dim, hi)};
    }
};

} // namespace

extern "C" int bench_pagmo_run(const char *which, pd_fitness_fn fn, double lo, double hi,
                               size_t dim, size_t pop, unsigned long long budget, unsigned seed,
                               double *best, unsigned long long *evals, double *seconds)
{
    try {
        builtin_problem udp;
        udp.fn = fn;
        udp.dim = dim;
        udp.lo = lo;
        udp.hi = hi;
        pagmo::problem prob{udp};
        unsigned gen = (unsigned) ((budget - pop) / pop);
        pagmo::algorithm a;
        if (std::strcmp(which, "pso") == 0)
            a = pagmo::algorithm{pagmo::pso(gen, 0.7298, 2.05, 2.05, 0.5, 5u, 2u, 4u, false, seed)};
        else if (std::strcmp(which, "sga") == 0)
            a = pagmo::algorithm{pagmo::sga(gen, .90, 1., 0.02, 1., 2u, "exponential",
                                            "polynomial", "tournament", seed)};
        else if (std::strcmp(which, "cmaes") == 0)
            a = pagmo::algorithm{
                pagmo::cmaes(gen, -1, -1, -1, -1, 0.5, 1e-30, 1e-30, false, true, seed)};
        else if (std::strcmp(which, "sade") == 0)
            /* jDE (variant_adptv 1) with rand/1/bin (variant 7), as Playdoh's */
            a = pagmo::algorithm{pagmo::sade(gen, 7u, 1u, 1e-30, 1e-30, false, seed)};
        else if (std::strcmp(which, "de") == 0)
            /* pagmo's defaults (F 0.8, CR 0.9, rand/1/exp) but for the tolerances */
            a = pagmo::algorithm{pagmo::de(gen, 0.8, 0.9, 2u, 1e-30, 1e-30, seed)};
        else {
            std::fprintf(stderr, "pagmo: no algorithm '%s' in this bench\n", which);
            return -1;
        }
        pagmo::population p{prob, pop, seed};
        struct timespec t0, t1; /* CPU time of this thread, as bench_optim.c measures */
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
        p = a.evolve(p);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
        *seconds = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
        *best = p.champion_f()[0];
        *evals = p.get_problem().get_fevals();
        return 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "pagmo: %s\n", e.what());
        return -1;
    }
}

extern "C" const char *bench_pagmo_version(void)
{
    static char v[32];
    std::snprintf(v, sizeof v, "%d.%d.%d", PAGMO_VERSION_MAJOR, PAGMO_VERSION_MINOR,
                  PAGMO_VERSION_PATCH);
    return v;
}
