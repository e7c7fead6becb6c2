/* Unit tests of the optimisers' parts: the random streams, the migration
   graphs, the common optimiser object (ask/tell discipline, import and
   export for each algorithm without restarting it) and the island's
   blocks over several groups. */
#include "pd_island.h"
#include "pd_optimizer.h"
#include "pd_rng.h"
#include "pd_topo.h"
#include "playdoh.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <string.h>

/* ---- pd_rng ------------------------------------------------------------ */

Test(rng, equal_seeds_give_equal_streams_and_coordinates_separate_them)
{
    pd_rng_t a, b, c, d;
    pd_rng_seed(&a, 7, 1, 2);
    pd_rng_seed(&b, 7, 1, 2);
    pd_rng_seed(&c, 7, 2, 1);
    pd_rng_seed(&d, 8, 1, 2);
    int same_c = 0, same_d = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = pd_rng_next(&a);
        cr_assert_eq(x, pd_rng_next(&b));
        same_c += x == pd_rng_next(&c);
        same_d += x == pd_rng_next(&d);
    }
    cr_expect_eq(same_c, 0);
    cr_expect_eq(same_d, 0);
}

Test(rng, xoshiro256starstar_matches_the_reference_sequence)
{
    /* State {1, 2, 3, 4}: the first outputs of Vigna's reference code. */
    pd_rng_t r = {.s = {1, 2, 3, 4}};
    cr_expect_eq(pd_rng_next(&r), 11520u);
    cr_expect_eq(pd_rng_next(&r), 0u);
    cr_expect_eq(pd_rng_next(&r), 1509978240u);
    cr_expect_eq(pd_rng_next(&r), 1215971899390074240u);
}

Test(rng, uniform_below_and_normal_have_their_distributions)
{
    pd_rng_t r;
    pd_rng_seed(&r, 1, 0, 0);
    double sum = 0, sum2 = 0, nsum = 0, nsum2 = 0;
    int counts[7] = {0};
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double u = pd_rng_uniform(&r);
        cr_assert(u >= 0 && u < 1);
        sum += u;
        sum2 += u * u;
        uint64_t k = pd_rng_below(&r, 7);
        cr_assert_lt(k, 7u);
        counts[k]++;
        double z = pd_rng_normal(&r);
        nsum += z;
        nsum2 += z * z;
        double x = pd_rng_range(&r, -3, 5);
        cr_assert(x >= -3 && x < 5);
    }
    cr_expect(fabs(sum / n - 0.5) < 0.01);
    cr_expect(fabs(sum2 / n - 1.0 / 3) < 0.01);
    for (int k = 0; k < 7; k++)
        cr_expect(fabs(counts[k] / (double) n - 1.0 / 7) < 0.01, "bucket %d: %d", k, counts[k]);
    cr_expect(fabs(nsum / n) < 0.01);
    cr_expect(fabs(nsum2 / n - 1) < 0.02);
    cr_expect_eq(pd_rng_range(&r, 2, 2), 2.0);
}

/* ---- pd_topo ----------------------------------------------------------- */

static void s_expect_list(const uint32_t *got, size_t n, const uint32_t *want, size_t m)
{
    cr_assert_eq(n, m);
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(got[i], want[i], "entry %zu: %u, want %u", i, got[i], want[i]);
}

Test(topo, ring_star_full_none_and_edges)
{
    const uint32_t *l;
    pd_topo_t *t = pd_topo_new(PD_TOPO_RING, 4, NULL, 0);
    cr_assert(t);
    cr_expect_eq(pd_topo_edges(t), 4u);
    s_expect_list(l, pd_topo_in(t, 0, &l), (uint32_t[]){3}, 1);
    s_expect_list(l, pd_topo_out(t, 3, &l), (uint32_t[]){0}, 1);
    pd_topo_destroy(&t);
    cr_expect_null(t);
    pd_topo_destroy(&t);

    t = pd_topo_new(PD_TOPO_STAR, 4, NULL, 0);
    cr_expect_eq(pd_topo_edges(t), 6u);
    s_expect_list(l, pd_topo_in(t, 0, &l), (uint32_t[]){1, 2, 3}, 3);
    s_expect_list(l, pd_topo_in(t, 2, &l), (uint32_t[]){0}, 1);
    s_expect_list(l, pd_topo_out(t, 2, &l), (uint32_t[]){0}, 1);
    pd_topo_destroy(&t);

    t = pd_topo_new(PD_TOPO_FULL, 3, NULL, 0);
    cr_expect_eq(pd_topo_edges(t), 6u);
    s_expect_list(l, pd_topo_in(t, 1, &l), (uint32_t[]){0, 2}, 2);
    pd_topo_destroy(&t);

    t = pd_topo_new(PD_TOPO_NONE, 3, NULL, 0);
    cr_expect_eq(pd_topo_edges(t), 0u);
    cr_expect_eq(pd_topo_in(t, 1, &l), 0u);
    pd_topo_destroy(&t);

    /* duplicates collapse, lists come sorted */
    static const uint32_t e[] = {2, 0, 1, 0, 2, 0, 0, 1};
    t = pd_topo_new(PD_TOPO_EDGES, 3, e, 4);
    cr_expect_eq(pd_topo_edges(t), 3u);
    s_expect_list(l, pd_topo_in(t, 0, &l), (uint32_t[]){1, 2}, 2);
    s_expect_list(l, pd_topo_out(t, 0, &l), (uint32_t[]){1}, 1);
    pd_topo_destroy(&t);

    /* one island: a ring has no edge */
    t = pd_topo_new(PD_TOPO_RING, 1, NULL, 0);
    cr_expect_eq(pd_topo_edges(t), 0u);
    pd_topo_destroy(&t);
}

Test(topo, bad_edges_are_refused)
{
    char err[256];
    static const uint32_t far[] = {0, 1, 1, 5};
    cr_expect_eq(pd_topo_check(PD_TOPO_EDGES, 3, far, 2, err, sizeof err), PD_EINVAL);
    cr_expect(strstr(err, "edge 1 (1 -> 5) names island 5"), "%s", err);
    cr_expect_eq(pd_topo_check(PD_TOPO_EDGES, 3, NULL, 0, err, sizeof err), PD_EINVAL);
    cr_expect(strstr(err, "none given"), "%s", err);
    cr_expect_eq(pd_topo_check(PD_TOPO_RING, 3, NULL, 0, err, sizeof err), 0);
}

/* ---- pd_optimizer ------------------------------------------------------ */

#define D 5
static double lo[D] = {-5, -5, -5, -5, -5}, hi[D] = {5, 5, 5, 5, 5};

static pd_optim_opts_t s_opts(pd_algo_t algo)
{
    pd_optim_opts_t o;
    pd_optim_opts_init(&o, algo, D);
    o.lower = lo;
    o.upper = hi;
    o.budget = 100000;
    o.cmaes.restarts = 0;
    return o;
}

static double s_sphere(const double *x)
{
    double s = 0;
    for (int j = 0; j < D; j++)
        s += x[j] * x[j];
    return s;
}

/* Runs `iterations` ask/tell rounds of p on the sphere. */
static void s_iterate(pd_optimizer_t *p, int iterations)
{
    for (int it = 0; it < iterations; it++) {
        const double *x;
        size_t n = pd_optimizer_ask(p, &x);
        cr_assert_gt(n, 0u);
        double f[4096];
        cr_assert_leq(n, 4096u);
        for (size_t i = 0; i < n; i++)
            f[i] = s_sphere(x + i * D);
        pd_optimizer_tell(p, f);
    }
}

ParameterizedTestParameters(optimizer, import_takes_a_migrant_without_restarting)
{
    static pd_algo_t a[] = {PD_ALGO_PSO, PD_ALGO_GA, PD_ALGO_CMAES, PD_ALGO_DE};
    return cr_make_param_array(pd_algo_t, a, 4);
}

ParameterizedTest(pd_algo_t *algo, optimizer, import_takes_a_migrant_without_restarting)
{
    pd_optim_opts_t o = s_opts(*algo);
    int err = 0;
    pd_optimizer_t *p = pd_optimizer_new(&o, 0, 0, &err);
    cr_assert(p);
    s_iterate(p, 5);
    uint64_t evals = pd_optimizer_evaluations(p);
    double before = pd_optimizer_best(p, NULL);
    cr_assert(isfinite(before));

    /* a migrant far better than anything the optimiser has */
    double mx[D] = {1e-3, -1e-3, 0, 2e-3, 0};
    double mf = s_sphere(mx);
    cr_assert_lt(mf, before);
    cr_expect_eq(pd_optimizer_import(p, 1, mx, &mf), 1u);
    const double *bx;
    cr_expect_eq(pd_optimizer_best(p, &bx), mf);
    cr_expect_eq(memcmp(bx, mx, sizeof mx), 0);
    /* the algorithm itself holds it: it exports it as its best */
    double ex[3 * D], ef[3];
    size_t k = pd_optimizer_export(p, 3, ex, ef);
    cr_assert_geq(k, 1u);
    cr_expect_eq(ef[0], mf);
    cr_expect_eq(memcmp(ex, mx, sizeof mx), 0);
    for (size_t i = 1; i < k; i++)
        cr_expect_geq(ef[i], ef[i - 1]);
    /* the same migrant again is not taken twice */
    cr_expect_eq(pd_optimizer_import(p, 1, mx, &mf), 0u);
    /* no evaluation was spent on it, and the run goes on */
    cr_expect_eq(pd_optimizer_evaluations(p), evals);
    s_iterate(p, 5);
    cr_expect_leq(pd_optimizer_best(p, NULL), mf);
    cr_expect_eq(pd_optimizer_restarts(p), 0u);
    pd_optimizer_destroy(&p);
    cr_expect_null(p);
}

Test(optimizer, a_worse_migrant_is_refused_by_pso_ga_and_de)
{
    pd_algo_t algos[] = {PD_ALGO_PSO, PD_ALGO_GA, PD_ALGO_DE};
    for (int a = 0; a < 3; a++) {
        pd_optim_opts_t o = s_opts(algos[a]);
        pd_optimizer_t *p = pd_optimizer_new(&o, 0, 0, NULL);
        s_iterate(p, 3);
        double mx[D] = {5, 5, 5, 5, 5}, mf = 1e9;
        cr_expect_eq(pd_optimizer_import(p, 1, mx, &mf), 0u, "%s took a migrant worse than all",
                     pd_algo_name(algos[a]));
        pd_optimizer_destroy(&p);
    }
}

Test(optimizer, cmaes_injects_migrants_in_place_of_samples)
{
    pd_optim_opts_t o = s_opts(PD_ALGO_CMAES);
    pd_optimizer_t *p = pd_optimizer_new(&o, 0, 0, NULL);
    const double *x;
    size_t lambda = pd_optimizer_ask(p, &x);
    cr_assert_eq(lambda, 4u + (size_t) floor(3 * log(D)));
    double f[64];
    for (size_t i = 0; i < lambda; i++)
        f[i] = s_sphere(x + i * D);
    pd_optimizer_tell(p, f);
    double mx[2 * D] = {0.1, 0, 0, 0, 0, 0, 0.1, 0, 0, 0}, mf[2] = {0.01, 0.01};
    cr_expect_eq(pd_optimizer_import(p, 2, mx, mf), 2u);
    /* the next generation asks for two points fewer: the migrants fill in */
    cr_expect_eq(pd_optimizer_ask(p, &x), lambda - 2);
    pd_optimizer_tell(p, f);
    cr_expect_eq(pd_optimizer_ask(p, &x), lambda);
    pd_optimizer_tell(p, f);
    pd_optimizer_destroy(&p);
}

Test(optimizer, cmaes_without_restarts_stops_asking_once_converged)
{
    pd_optim_opts_t o = s_opts(PD_ALGO_CMAES);
    pd_optimizer_t *p = pd_optimizer_new(&o, 0, 0, NULL);
    int rounds = 0;
    const double *x;
    size_t n;
    double f[64];
    while ((n = pd_optimizer_ask(p, &x)) > 0 && rounds < 100000) {
        for (size_t i = 0; i < n; i++)
            f[i] = s_sphere(x + i * D);
        pd_optimizer_tell(p, f);
        rounds++;
    }
    cr_expect_eq(n, 0u);
    cr_expect(pd_optimizer_stopped(p));
    cr_expect_lt(pd_optimizer_best(p, NULL), 1e-10);
    cr_expect_eq(pd_optimizer_ask(p, &x), 0u);
    pd_optimizer_destroy(&p);
}

Test(optimizer, cmaes_ipop_doubles_the_population_on_restart)
{
    pd_optim_opts_t o = s_opts(PD_ALGO_CMAES);
    o.cmaes.restarts = 2;
    pd_optimizer_t *p = pd_optimizer_new(&o, 0, 0, NULL);
    const double *x;
    size_t n, first = 0, last = 0;
    double f[4096];
    for (int r = 0; r < 100000 && (n = pd_optimizer_ask(p, &x)) > 0; r++) {
        if (!first)
            first = n;
        last = n;
        for (size_t i = 0; i < n; i++)
            f[i] = s_sphere(x + i * D);
        pd_optimizer_tell(p, f);
    }
    cr_expect_eq(pd_optimizer_restarts(p), 2u);
    cr_expect_eq(last, 4 * first);
    pd_optimizer_destroy(&p);
}

/* The population sizes of every run of p on the sphere, until it stops
   (at most cap of them); returns how many runs. */
static size_t s_run_sizes(pd_optimizer_t *p, size_t *sizes, size_t cap)
{
    const double *x;
    size_t n, runs = 0;
    static double f[1 << 15];
    uint64_t restarts = 0;
    for (int r = 0; r < 200000 && (n = pd_optimizer_ask(p, &x)) > 0; r++) {
        cr_assert_leq(n, sizeof f / sizeof f[0]);
        if (runs == 0 || pd_optimizer_restarts(p) != restarts) {
            restarts = pd_optimizer_restarts(p);
            if (runs < cap)
                sizes[runs] = n;
            runs++;
        }
        for (size_t i = 0; i < n; i++)
            f[i] = s_sphere(x + i * D);
        pd_optimizer_tell(p, f);
    }
    return runs;
}

/* With islands, IPOP's levels are shared out: island i of N runs the
   population sizes lambda0 x 2^(i + kN), so that together the islands
   climb the levels one island would, instead of each climbing them alone
   on its part of the budget (before, every island ran lambda0, 2 lambda0,
   4 lambda0, ...). */
Test(optimizer, cmaes_islands_share_the_ipop_levels)
{
    pd_optim_opts_t o = s_opts(PD_ALGO_CMAES);
    o.cmaes.restarts = 2;
    o.islands = 2;
    size_t l0 = 4 + (size_t) floor(3 * log((double) D)), sz[8]; /* CMA-ES default */
    for (uint32_t i = 0; i < 2; i++) {
        pd_optimizer_t *p = pd_optimizer_new(&o, i, 0, NULL);
        cr_assert_eq(s_run_sizes(p, sz, 8), 3u);
        for (size_t k = 0; k < 3; k++)
            cr_expect_eq(sz[k], l0 << (i + 2 * k), "island %u run %zu: %zu, not %zu", i, k,
                         sz[k], l0 << (i + 2 * k));
        pd_optimizer_destroy(&p);
    }
    /* more islands than levels one island reaches: they start over at 0
       (without a budget, so that no level is left out for want of one) */
    o.islands = 5;
    o.budget = 0;
    o.iterations = 1000000;
    pd_optimizer_t *q = pd_optimizer_new(&o, 4, 0, NULL);
    cr_assert_eq(s_run_sizes(q, sz, 8), 3u);
    cr_expect_eq(sz[0], l0 << 1, "island 4 of 5, 2 restarts: level 4 mod 3 = 1");
    pd_optimizer_destroy(&q);
    /* with the budget, its third level (lambda0 x 2^11) cannot run 20
       generations within the island's fifth of 10^5: the island stops
       after two runs and leaves the budget to the others */
    o.budget = 100000;
    o.iterations = 0;
    q = pd_optimizer_new(&o, 4, 0, NULL);
    cr_assert_eq(s_run_sizes(q, sz, 8), 2u);
    cr_expect(sz[0] == l0 << 1 && sz[1] == l0 << 6);
    pd_optimizer_destroy(&q);
    /* one island: every level, as before */
    o.islands = 1;
    pd_optimizer_t *p = pd_optimizer_new(&o, 0, 0, NULL);
    cr_assert_eq(s_run_sizes(p, sz, 8), 3u);
    cr_expect(sz[0] == l0 && sz[1] == 2 * l0 && sz[2] == 4 * l0);
    pd_optimizer_destroy(&p);
}

/* BIPOP: after the first run, small runs (the default population, or
   between it and half the last large one) alternate with IPOP's large
   ones, each regime spending about as much; only the large ones count
   against `restarts`. IPOP's sizes never decrease. */
Test(optimizer, cmaes_bipop_alternates_small_and_large_runs)
{
    pd_optim_opts_t o = s_opts(PD_ALGO_CMAES);
    o.cmaes.restarts = 3;
    o.cmaes.bipop = true;
    size_t l0 = 4 + (size_t) floor(3 * log((double) D)), sz[64]; /* CMA-ES default */
    pd_optimizer_t *p = pd_optimizer_new(&o, 0, 0, NULL);
    size_t runs = s_run_sizes(p, sz, 64);
    cr_assert_leq(runs, 64u);
    size_t large = 0, small_after_large = 0, biggest = l0;
    for (size_t k = 1; k < runs; k++) {
        if (sz[k] > biggest) {
            biggest = sz[k];
            large++;
        } else if (large) {
            small_after_large += sz[k] < biggest;
        }
        cr_expect_geq(sz[k], l0);
    }
    cr_expect_eq(large, 3u, "3 large restarts (the limit)");
    cr_expect_eq(biggest, 8 * l0);
    cr_expect_gt(small_after_large, 0u, "small runs between the large ones");
    cr_expect_gt(runs, 4u, "small runs besides the first and the 3 large");
    pd_optimizer_destroy(&p);
}

/* ---- pd_island --------------------------------------------------------- */

Test(island, one_block_covers_every_group_and_maximisation_turns_around)
{
    pd_optim_opts_t o = s_opts(PD_ALGO_PSO);
    o.groups = 3;
    o.popsize = 6;
    o.maximize = true;
    pd_island_t *is = pd_island_new(&o, 2, NULL);
    cr_assert(is);
    const double *x;
    const uint32_t *g;
    long n = pd_island_ask(is, &x, &g);
    cr_assert_eq(n, 18);
    for (long i = 0; i < n; i++)
        cr_expect_eq(g[i], (uint32_t) (i / 6));
    double f[18];
    for (long i = 0; i < n; i++)
        f[i] = (double) i; /* group 2's last point is the best (maximising) */
    cr_assert_eq(pd_island_tell(is, f, NULL, 0), 0);
    cr_expect_eq(pd_island_best(is, 0, NULL), 5.0);
    cr_expect_eq(pd_island_best(is, 2, NULL), 17.0);
    double ex[D], ef;
    cr_expect_eq(pd_island_export(is, 2, 1, ex, &ef), 1u);
    cr_expect_eq(ef, 17.0);
    /* a group that reached its target asks for nothing */
    pd_island_set_active(is, 1, false);
    cr_expect(pd_island_group_idle(is, 1));
    n = pd_island_ask(is, &x, &g);
    cr_assert_eq(n, 12);
    cr_expect_eq(g[5], 0u);
    cr_expect_eq(g[6], 2u);
    cr_assert_eq(pd_island_tell(is, f, NULL, 0), 0);
    cr_expect_eq(pd_island_iterations(is), 2u);
    cr_expect_eq(pd_island_evaluations(is), 30u);
    pd_island_destroy(&is);
    cr_expect_null(is);
}

Test(island, nan_refuses_the_whole_block)
{
    pd_optim_opts_t o = s_opts(PD_ALGO_GA);
    pd_island_t *is = pd_island_new(&o, 0, NULL);
    const double *x;
    const uint32_t *g;
    long n = pd_island_ask(is, &x, &g);
    double f[64];
    for (long i = 0; i < n; i++)
        f[i] = 1;
    f[n - 1] = NAN;
    char err[512];
    cr_expect_eq(pd_island_tell(is, f, err, sizeof err), PD_ETASK);
    cr_expect(strstr(err, "NaN"), "%s", err);
    cr_expect_eq(pd_island_evaluations(is), 0u);
    pd_island_destroy(&is);
}
