/*  bench_nsga2: Playdoh's NSGA-II against pagmo2's nsga2 on ZDT1-3 (issue 20).

    Same problem (30 parameters in [0, 1]), population (100), generations
    (250), operators' parameters (crossover 0.95, eta_c 10, mutation 1/30,
    eta_m 50), 10 seeds each. Reports the median hypervolume of the final
    population against the reference point (1.1, 1.1), both measured by
    Playdoh's exact 2-D hypervolume, and the CPU seconds per evaluation
    (this thread's CPU clock: independent of the machine's load as far as
    that goes), the problem's own evaluation included on both sides.

    Usage: bench_nsga2 [generations] [seeds]
*/
extern "C" {
#include "pd_nsga2.h"
#include "pd_rng.h"
}

#include <pagmo/algorithms/nsga2.hpp>
#include <pagmo/population.hpp>
#include <pagmo/problems/zdt.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

static double cpu_now()
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static const double REF[2] = {1.1, 1.1};
static const size_t DIM = 30, POP = 100;

/* One Playdoh run: writes the hypervolume, returns the CPU seconds. */
static double run_playdoh(const char *fn, unsigned gens, unsigned seed, double *hv)
{
    std::vector<double> lo(DIM, 0.0), hi(DIM, 1.0), f(POP * 2);
    pd_nsga2_params_t p;
    pd_nsga2_defaults(&p);
    p.pm = 1.0 / DIM;
    pd_rng_t rng;
    pd_rng_seed(&rng, seed, 0, 0);
    double t0 = cpu_now();
    pd_nsga2_t *s = pd_nsga2_create(DIM, 2, POP, lo.data(), hi.data(), &p, &rng);
    if (!s) {
        std::fprintf(stderr, "bench_nsga2: out of memory\n");
        std::exit(1);
    }
    for (unsigned g = 0; g <= gens; g++) {
        const double *x;
        size_t n = pd_nsga2_ask(s, &x);
        pd_mo_testfn(fn, x, n, DIM, 2, f.data());
        pd_nsga2_tell(s, f.data());
    }
    double t = cpu_now() - t0;
    std::vector<double> fx(POP * DIM), ff(POP * 2);
    size_t k = pd_nsga2_front(s, POP, fx.data(), ff.data());
    pd_mo_hypervolume(ff.data(), k, 2, REF, hv);
    pd_nsga2_destroy(s);
    return t;
}

/* One pagmo run, the same way. */
static double run_pagmo(unsigned id, unsigned gens, unsigned seed, double *hv)
{
    double t0 = cpu_now();
    pagmo::problem prob{pagmo::zdt(id, DIM)};
    pagmo::population pop{prob, POP, seed};
    pagmo::nsga2 algo{gens, 0.95, 10., 1.0 / DIM, 50., seed};
    pop = algo.evolve(pop);
    double t = cpu_now() - t0;
    std::vector<double> ff;
    for (const auto &v : pop.get_f())
        ff.insert(ff.end(), v.begin(), v.end());
    pd_mo_hypervolume(ff.data(), pop.size(), 2, REF, hv);
    return t;
}

int main(int argc, char **argv)
{
    unsigned gens = argc > 1 ? (unsigned) std::atoi(argv[1]) : 250;
    unsigned seeds = argc > 2 ? (unsigned) std::atoi(argv[2]) : 10;
    if (gens == 0 || seeds == 0) {
        std::fprintf(stderr, "usage: bench_nsga2 [generations > 0] [seeds > 0]\n");
        return 2;
    }
    double evals = (double) POP * (gens + 1);
    std::printf("| problem | true front HV | Playdoh median HV | pagmo median HV | Playdoh us/eval "
                "| pagmo us/eval |\n|---|---|---|---|---|---|\n");
    const char *names[] = {"zdt1", "zdt2", "zdt3"};
    for (unsigned id = 1; id <= 3; id++) {
        std::vector<double> ph, gh, pt, gt;
        for (unsigned s = 1; s <= seeds; s++) {
            double h;
            pt.push_back(run_playdoh(names[id - 1], gens, s, &h) / evals * 1e6);
            ph.push_back(h);
            gt.push_back(run_pagmo(id, gens, s, &h) / evals * 1e6);
            gh.push_back(h);
        }
        /* The true fronts' values against (1.1, 1.1): ZDT1 1.21 - 1/3,
           ZDT2 1.21 - 2/3; ZDT3's has no closed form here. */
        const char *truth = id == 1 ? "0.8767" : id == 2 ? "0.5433" : "-";
        std::printf("| %s | %s | %.4f | %.4f | %.2f | %.2f |\n", names[id - 1], truth, median(ph),
                    median(gh), median(pt), median(gt));
    }
    return 0;
}
