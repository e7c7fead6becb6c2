/*  bench_optim: quality and cost of Playdoh's optimisers, against pagmo2
    in the same run where libpagmo-dev was found at build time.

    Quality: sphere, Rosenbrock, Rastrigin and Ackley in D = 10 and 30, at
    the centre and with the optimum moved ("@1", "@2"), SEEDS seeds each,
    BUDGET evaluations per run, one island: the median final value and the
    success rate (final value < 1e-8) of PSO against pagmo's pso, GA against
    sga, CMA-ES (with its default IPOP restarts, without, and with BIPOP)
    against cmaes, DE (jDE) against sade (jDE, rand/1/bin) and de (pagmo's
    defaults). Verdict: tie when both solve or the medians are within 1 %,
    else the lower median wins. Both sides evaluate the same C functions
    (pd_optim_builtin) within the same bounds.

    Overhead: the optimiser's own cost per evaluation on the sphere (wall
    time of the run less the time the fitness itself takes, measured apart
    over as many points), Playdoh against pagmo, in CPU time of the calling
    thread (both sides are single-threaded here), best of 3.

    Throughput: evaluations per second on the sphere, population 1,000,
    one island in-process (the figure the cluster form will be compared
    with).

    Centre bias: the same rows on the shifted forms of each function
    (pd_optim_builtin's "@1" .. "@4", optimum moved within the central 80 %
    of the box, near the upper bounds, in a corner): the median and spread
    of the seeds at the centre and at each shift.

    Usage: bench_optim [SEEDS (10)] [BUDGET (100000)] [PART: all | quality |
    shift | cost] [ROW]
    (ROW: the quality and shift tables' rows whose label starts with it;
    cost: the overhead and throughput tables only, which are the ones the
    load of a shared machine disturbs; the quality and shift tables are
    deterministic)
*/
#include "bench_optim.h"
#include "playdoh.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef BENCH_HAVE_PAGMO
#define BENCH_HAVE_PAGMO 0
#endif

/* CPU seconds of this thread: the cost figures use it, as it hardly moves
   with the load of a shared machine, where wall time doubles. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int successes(const double *v, int n)
{
    int s = 0;
    for (int i = 0; i < n; i++)
        s += v[i] < 1e-8;
    return s;
}

#define MAXD 30
static double L[MAXD], H[MAXD];

/* One Playdoh run; returns the best value; *seconds, *evals when not NULL. */
static double run_playdoh(pd_algo_t algo, const char *fn, size_t dim, unsigned seed,
                          unsigned long long budget, int restarts, int variant, size_t pop,
                          double *seconds, unsigned long long *evals)
{
    double lo, hi;
    pd_fitness_fn f = pd_optim_builtin(fn, &lo, &hi);
    for (size_t j = 0; j < dim; j++) {
        L[j] = lo;
        H[j] = hi;
    }
    pd_optim_opts_t o;
    pd_optim_opts_init(&o, algo, dim);
    o.lower = L;
    o.upper = H;
    o.budget = budget;
    o.seed = seed;
    o.popsize = pop;
    if (restarts >= 0)
        o.cmaes.restarts = (uint32_t) restarts;
    o.cmaes.bipop = restarts == -2; /* the BIPOP row */
    if (variant >= 0)
        o.pso.variant = (pd_pso_variant_t) variant;
    pd_optim_result_t r;
    double c0 = cpu_now();
    int rc = pd_optim_run(&o, f, NULL, &r);
    double cpu = cpu_now() - c0;
    if (rc != 0) {
        fprintf(stderr, "bench_optim: %s\n", r.error);
        exit(1);
    }
    double best = r.best_f[0];
    if (seconds)
        *seconds = cpu;
    if (evals)
        *evals = r.evaluations;
    pd_optim_result_clear(&r);
    return best;
}

/* Seconds per point of the sphere through the block ABI, in blocks of
   `block` points (block 1: the cost pagmo pays per call). */
static double fitness_cost(size_t dim, size_t block, size_t points)
{
    pd_fitness_fn f = pd_optim_builtin("sphere", NULL, NULL);
    double *x = malloc(block * dim * sizeof *x), *v = malloc(block * sizeof *v);
    uint32_t *g = calloc(block, sizeof *g);
    for (size_t i = 0; i < block * dim; i++)
        x[i] = (double) (i % 7) * 0.1;
    volatile double sink = 0;
    double t0 = cpu_now();
    for (size_t done = 0; done < points; done += block) {
        pd_fitness_block_t b = {.x = x, .n = block, .dim = dim, .group = g, .groups = 1};
        f(&b, v);
        sink += v[0];
        x[0] += 1e-9; /* keep the compiler from hoisting the call */
    }
    double t = (cpu_now() - t0) / (double) points;
    (void) sink;
    free(x);
    free(v);
    free(g);
    return t;
}

static const char *FNS[] = {"sphere", "rosenbrock", "rastrigin", "ackley"};
static const size_t DIMS[] = {10, 30};

typedef struct {
    const char *label;   /* Playdoh side */
    pd_algo_t algo;
    int restarts;        /* CMA-ES restarts, -1 = default, -2 = default with BIPOP */
    int variant;         /* PSO variant, -1 = default */
    const char *pagmo;   /* pagmo's counterpart */
    const char *pagmo2;  /* a second one, or NULL */
} row_t;

/* Rows 0, 1, 2 and 5 are the defaults, used for the overhead and
   throughput tables too (COST_ROWS). */
static const row_t ROWS[] = {
    {"PSO", PD_ALGO_PSO, -1, -1, "pso", NULL},
    {"GA", PD_ALGO_GA, -1, -1, "sga", NULL},
    {"CMA-ES (IPOP)", PD_ALGO_CMAES, -1, -1, "cmaes", NULL},
    {"PSO (hypersphere)", PD_ALGO_PSO, -1, PD_PSO_SPSO2011, "pso", NULL},
    {"CMA-ES (no restart)", PD_ALGO_CMAES, 0, -1, "cmaes", NULL},
    {"DE (jDE)", PD_ALGO_DE, -1, -1, "sade", "de"},
    {"CMA-ES (BIPOP)", PD_ALGO_CMAES, -2, -1, "cmaes", NULL},
};

/* The rows of the overhead and throughput tables: the defaults. */
static const size_t COST_ROWS[] = {0, 1, 2, 5};

static size_t pop_of(pd_algo_t algo, size_t dim)
{
    switch (algo) {
    case PD_ALGO_PSO:
    case PD_ALGO_GA:
        return 40;
    case PD_ALGO_CMAES:
        return 4 + (size_t) floor(3 * log((double) dim));
    case PD_ALGO_DE:
        return 40;
    }
    return 40;
}

#if BENCH_HAVE_PAGMO /* without libpagmo-dev, no pagmo column */
/* pagmo's algorithms, the index of its runs' cache in s_quality. */
static const char *PAGMO_ALGOS[] = {"pso", "sga", "cmaes", "sade", "de"};

static int pagmo_index(const char *name)
{
    for (int i = 0; i < (int) (sizeof PAGMO_ALGOS / sizeof PAGMO_ALGOS[0]); i++)
        if (strcmp(PAGMO_ALGOS[i], name) == 0)
            return i;
    return 0;
}

/* The verdict of a row: both solved (< 1e-8) or within 1 % of each other:
   tie; otherwise the lower median wins. */
static const char *verdict(double ours, double theirs)
{
    if ((ours < 1e-8 && theirs < 1e-8) || fabs(ours - theirs) <= 0.01 * fabs(theirs))
        return "tie";
    return ours < theirs ? "win" : "**loss**";
}
#endif

/* The shifts of the quality table: the centre and two optima moved within
   the central 80 % of the box (pd_optim_builtin's "@1", "@2"). */
static const char *QSHIFTS[] = {"", "@1", "@2"};

/* Prints one line of the quality table: our median and successes against
   pagmo's `which` (its runs are cached per function, so that the rows of one
   pagmo algorithm share them). */
static int quality_line(const char *name, size_t dim, const row_t *r, const char *which,
                        double mo, int so, int seeds, size_t pop, unsigned long long budget,
                        double *theirs)
{
    printf("| %s | %zu | %s | %.3g | %d/%d |", name, dim, r->label, mo, so, seeds);
#if BENCH_HAVE_PAGMO
    static double pmed[sizeof PAGMO_ALGOS / sizeof PAGMO_ALGOS[0]];
    static int psucc[sizeof PAGMO_ALGOS / sizeof PAGMO_ALGOS[0]];
    static int pdone[sizeof PAGMO_ALGOS / sizeof PAGMO_ALGOS[0]];
    static char pkey[48];
    char key[48];
    snprintf(key, sizeof key, "%s/%zu", name, dim);
    if (strcmp(key, pkey) != 0) {
        snprintf(pkey, sizeof pkey, "%s", key);
        memset(pdone, 0, sizeof pdone);
    }
    int pi = pagmo_index(which);
    if (!pdone[pi]) {
        double lo, hi;
        pd_fitness_fn f = pd_optim_builtin(name, &lo, &hi);
        for (int s = 0; s < seeds; s++) {
            unsigned long long ev;
            double sec;
            if (bench_pagmo_run(which, f, lo, hi, dim, pop, budget, (unsigned) s + 1,
                                &theirs[s], &ev, &sec))
                return 1;
            if (ev > budget)
                fprintf(stderr, "note: pagmo %s made %llu evaluations\n", which, ev);
        }
        psucc[pi] = successes(theirs, seeds);
        pmed[pi] = median(theirs, seeds);
        pdone[pi] = 1;
    }
    printf(" %s | %.3g | %d/%d | %s |\n", which, pmed[pi], psucc[pi], seeds,
           verdict(mo, pmed[pi]));
#else
    (void) pop;
    (void) budget;
    (void) theirs;
    printf(" %s | — | — | — |\n", which);
#endif
    fflush(stdout);
    return 0;
}

/* The quality table: every row at the centre and shifted, SEEDS seeds each,
   pagmo beside; only: the rows whose label starts with it (NULL: all). */
static int s_quality(int seeds, unsigned long long budget, const char *only)
{
    double *ours = malloc(seeds * sizeof *ours), *theirs = malloc(seeds * sizeof *theirs);
    int rc = 0;
    printf("## Quality: median final value (success rate: final < 1e-8)\n\n");
    printf("| function | D | Playdoh | median | success | pagmo | median | success | "
           "verdict |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    for (size_t fi = 0; fi < sizeof FNS / sizeof FNS[0]; fi++)
        for (size_t k = 0; k < sizeof QSHIFTS / sizeof QSHIFTS[0]; k++)
            for (size_t di = 0; di < 2; di++)
                for (size_t ri = 0; ri < sizeof ROWS / sizeof ROWS[0] && rc == 0; ri++) {
                    const row_t *r = &ROWS[ri];
                    if (only && strncmp(r->label, only, strlen(only)) != 0)
                        continue;
                    char name[32];
                    snprintf(name, sizeof name, "%s%s", FNS[fi], QSHIFTS[k]);
                    size_t dim = DIMS[di], pop = pop_of(r->algo, dim);
                    for (int s = 0; s < seeds; s++)
                        ours[s] = run_playdoh(r->algo, name, dim, (unsigned) s + 1, budget,
                                              r->restarts, r->variant, 0, NULL, NULL);
                    int so = successes(ours, seeds);
                    double mo = median(ours, seeds);
                    rc = quality_line(name, dim, r, r->pagmo, mo, so, seeds, pop, budget,
                                      theirs);
                    if (rc == 0 && r->pagmo2)
                        rc = quality_line(name, dim, r, r->pagmo2, mo, so, seeds, pop, budget,
                                          theirs);
                }

    free(ours);
    free(theirs);
    return rc;
}

/* The centre-bias table: each row's median at the centre and with the
   optimum moved (pd_optim_builtin's shifts @1 .. @4), SEEDS seeds each,
   with the spread of the seeds (min..max). Biased: a median of @1 or @2
   (the landscape moved whole, within the central 80 %) lies outside the
   spread of the centre's runs, or the centre's median outside the spread
   of theirs. Near bounds worse: a median of @3 or @4 (the landscape cut by
   the bounds next to the optimum) above the centre's worst run. Values
   below 1e-8 count as equal (solved). only: run the rows whose label starts
   with it (NULL: all). */
static int s_shift(int seeds, unsigned long long budget, const char *only)
{
    double *v = malloc(seeds * sizeof *v);
    printf("## Centre bias: median (min..max) of %d seeds at the centre and shifted\n\n", seeds);
    printf("| function | D | Playdoh | centre | @1 | @2 | @3 (near upper bounds) | "
           "@4 (corner) | biased | near bounds worse |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t fi = 0; fi < sizeof FNS / sizeof FNS[0]; fi++)
        for (size_t di = 0; di < 2; di++)
            for (size_t ri = 0; ri < sizeof ROWS / sizeof ROWS[0]; ri++) {
                const row_t *r = &ROWS[ri];
                if (only && strncmp(r->label, only, strlen(only)) != 0)
                    continue;
                size_t dim = DIMS[di];
                printf("| %s | %zu | %s |", FNS[fi], dim, r->label);
                double c_lo = 0, c_hi = 0, c_med = 0, s_lo = INFINITY, s_hi = -INFINITY;
                bool biased = false, bounds = false;
                for (int k = 0; k <= 4; k++) {
                    char name[32];
                    snprintf(name, sizeof name, k ? "%s@%d" : "%s", FNS[fi], k);
                    for (int sd = 0; sd < seeds; sd++)
                        v[sd] = fmax(run_playdoh(r->algo, name, dim, (unsigned) sd + 1, budget,
                                                 r->restarts, r->variant, 0, NULL, NULL),
                                     0.0);
                    double med = median(v, seeds); /* sorts v */
                    printf(" %.3g (%.2g..%.2g) |", med, v[0], v[seeds - 1]);
                    double m = fmax(med, 1e-8), lo8 = fmax(v[0], 1e-8);
                    double hi8 = fmax(v[seeds - 1], 1e-8);
                    if (k == 0) {
                        c_lo = lo8;
                        c_hi = hi8;
                        c_med = m;
                    } else if (k <= 2) {
                        biased |= m < c_lo || m > c_hi;
                        s_lo = fmin(s_lo, lo8);
                        s_hi = fmax(s_hi, hi8);
                    } else {
                        bounds |= m > c_hi;
                    }
                    fflush(stdout);
                }
                biased |= c_med < s_lo || c_med > s_hi;
                printf(" %s | %s |\n", biased ? "**yes**" : "no", bounds ? "**yes**" : "no");
            }
    free(v);
    return 0;
}

/* The overhead and throughput tables. */
static int s_cost(unsigned long long budget)
{
    printf("\n## Overhead per evaluation on the sphere (µs of CPU; run less fitness)\n\n");
    printf("| algorithm | D | Playdoh | pagmo | ratio pagmo/Playdoh |\n|---|---|---|---|---|\n");
    for (size_t ci = 0; ci < sizeof COST_ROWS / sizeof COST_ROWS[0]; ci++)
        for (size_t di = 0; di < 2; di++) {
            const row_t *r = &ROWS[COST_ROWS[ci]];
            size_t dim = DIMS[di], pop = pop_of(r->algo, dim);
            double best_ours = INFINITY, best_theirs = INFINITY;
            double fit_block = fitness_cost(dim, pop, budget);
            double fit_one = fitness_cost(dim, 1, budget);
            for (int rep = 0; rep < 3; rep++) { /* best of 3: the machines are shared */
                double sec;
                unsigned long long ev;
                run_playdoh(r->algo, "sphere", dim, 1, budget, r->restarts, -1, 0, &sec, &ev);
                double per = sec / (double) ev - fit_block;
                if (per < best_ours)
                    best_ours = per;
#if BENCH_HAVE_PAGMO
                double lo, hi, b;
                pd_fitness_fn f = pd_optim_builtin("sphere", &lo, &hi);
                if (bench_pagmo_run(r->pagmo, f, lo, hi, dim, pop, budget, 1, &b, &ev, &sec))
                    return 1;
                per = sec / (double) (ev - pop) - fit_one;
                if (per < best_theirs)
                    best_theirs = per;
#else
                (void) fit_one;
#endif
            }
            printf("| %s / %s | %zu | %.3f | ", r->label, r->pagmo, dim, best_ours * 1e6);
            if (isfinite(best_theirs))
                printf("%.3f | %.1fx |\n", best_theirs * 1e6, best_theirs / best_ours);
            else
                printf("— | — |\n");
            fflush(stdout);
        }

    printf("\n## Throughput on the sphere, population 1,000, one island in-process\n\n");
    printf("| algorithm | D | evaluations per CPU second | fitness alone |\n|---|---|---|---|\n");
    for (size_t ci = 0; ci < sizeof COST_ROWS / sizeof COST_ROWS[0]; ci++)
        for (size_t di = 0; di < 2; di++) {
            const row_t *r = &ROWS[COST_ROWS[ci]];
            size_t dim = DIMS[di];
            double sec;
            unsigned long long ev;
            unsigned long long big = budget * 10;
            run_playdoh(r->algo, "sphere", dim, 1, big, 0, -1, 1000, &sec, &ev);
            printf("| %s | %zu | %.3g | %.3g |\n", r->label, dim, (double) ev / sec,
                   1.0 / fitness_cost(dim, 1000, big));
            fflush(stdout);
        }
    return 0;
}

int main(int argc, char **argv)
{
    int seeds = argc > 1 ? atoi(argv[1]) : 10;
    unsigned long long budget = argc > 2 ? strtoull(argv[2], NULL, 10) : 100000;
    const char *part = argc > 3 ? argv[3] : "all";
    const char *only = argc > 4 ? argv[4] : NULL;
    bool quality = strcmp(part, "all") == 0 || strcmp(part, "quality") == 0;
    bool shift = strcmp(part, "all") == 0 || strcmp(part, "shift") == 0;
    bool cost = strcmp(part, "all") == 0 || strcmp(part, "cost") == 0;
    if (seeds < 1 || seeds > 1000 || budget < 1000 || (!quality && !shift && !cost)) {
        fprintf(stderr, "usage: bench_optim [SEEDS 1..1000] [BUDGET >= 1000] "
                        "[all|quality|shift|cost] [ROW (quality, shift: the rows whose label "
                        "starts with it)]\n");
        return 2;
    }
#if BENCH_HAVE_PAGMO
    printf("# bench_optim: %d seeds, %llu evaluations, one island; pagmo %s in the same run\n\n",
           seeds, budget, bench_pagmo_version());
#else
    printf("# bench_optim: %d seeds, %llu evaluations, one island; pagmo not built "
           "(install libpagmo-dev and reconfigure for the comparison)\n\n",
           seeds, budget);
#endif
    int rc = 0;
    if (quality)
        rc = s_quality(seeds, budget, only);
    if (rc == 0 && shift)
        rc = s_shift(seeds, budget, only);
    if (rc == 0 && cost)
        rc = s_cost(budget);
    return rc;
}
