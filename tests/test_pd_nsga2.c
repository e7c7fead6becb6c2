/* Unit tests of the multi-objective parts (issue 20): Pareto ranking,
   crowding distance and hypervolume against hand-computed values, the
   ZDT and DTLZ2 problems, NSGA-II's convergence on ZDT1, its bounds and
   its reproducibility per seed. */
#include "pd_nsga2.h"
#include "pd_rng.h"
#include "playdoh.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

Test(mo_rank, fronts_of_a_hand_made_set)
{
    /* (3,3) is dominated by (2,2) only, (5,5) by (3,3) too; the
       duplicate (2,2) dominates neither copy. */
    const double f[] = {1, 4, 2, 2, 4, 1, 3, 3, 5, 5, 2, 2};
    size_t rank[6], scratch[6 * 10];
    cr_assert_eq(pd_mo_rank(f, 6, 2, rank, scratch), 3u);
    const size_t want[] = {0, 0, 0, 1, 2, 0};
    for (size_t i = 0; i < 6; i++)
        cr_expect_eq(rank[i], want[i], "point %zu", i);
    cr_expect(pd_mo_dominates(f + 2, f + 6, 2));
    cr_expect(!pd_mo_dominates(f + 2, f + 10, 2));
    cr_expect(!pd_mo_dominates(f, f + 2, 2));
}

Test(mo_crowding, interior_points_sum_their_normalised_gaps)
{
    const double f[] = {0, 4, 1, 2, 2, 1, 4, 0};
    const size_t idx[] = {0, 1, 2, 3};
    double dist[4], vals[4];
    size_t order[4], tmp[4];
    pd_mo_crowding(f, 2, idx, 4, dist, vals, order, tmp);
    cr_expect(isinf(dist[0]) && isinf(dist[3]));
    /* (1,2): 2/4 along f1, 3/4 along f2; (2,1): 3/4 and 2/4. */
    cr_expect_float_eq(dist[1], 1.25, 1e-12);
    cr_expect_float_eq(dist[2], 1.25, 1e-12);
    pd_mo_crowding(f, 2, idx, 2, dist, vals, order, tmp);
    cr_expect(isinf(dist[0]) && isinf(dist[1]));
}

Test(mo_hypervolume, two_d_staircase_ignores_dominated_and_outside_points)
{
    const double f[] = {1, 3, 2, 2, 3, 1, 3, 3, 5, 0, 2, 2};
    const double ref[] = {4, 4};
    double hv;
    cr_assert_eq(pd_mo_hypervolume(f, 3, 2, ref, &hv), 0);
    cr_expect_float_eq(hv, 6.0, 1e-12); /* 3 + 2 + 1 */
    cr_assert_eq(pd_mo_hypervolume(f, 6, 2, ref, &hv), 0);
    cr_expect_float_eq(hv, 6.0, 1e-12);
    cr_assert_eq(pd_mo_hypervolume(f, 0, 2, ref, &hv), 0);
    cr_expect_eq(hv, 0.0);
    cr_expect_eq(pd_mo_hypervolume(f, 3, 4, ref, &hv), PD_EINVAL);
}

Test(mo_hypervolume, three_d_unions_of_boxes)
{
    const double ref[] = {2, 2, 2};
    double hv;
    const double one[] = {1, 1, 1};
    cr_assert_eq(pd_mo_hypervolume(one, 1, 3, ref, &hv), 0);
    cr_expect_float_eq(hv, 1.0, 1e-12);
    /* 4 + 2 - the shared unit cube. */
    const double two[] = {0, 0, 1, 1, 1, 0};
    cr_assert_eq(pd_mo_hypervolume(two, 2, 3, ref, &hv), 0);
    cr_expect_float_eq(hv, 5.0, 1e-12);
    /* Three boxes of 2, pairwise and all three meeting in [1,2]^3:
       6 - 3 + 1. */
    const double three[] = {0, 1, 1, 1, 0, 1, 1, 1, 0};
    cr_assert_eq(pd_mo_hypervolume(three, 3, 3, ref, &hv), 0);
    cr_expect_float_eq(hv, 4.0, 1e-12);
}

Test(mo_hypervolume, three_d_on_a_plane_is_the_two_d_value)
{
    const double f2[] = {1, 3, 2, 2, 3, 1, 3, 3};
    double f3[12];
    for (size_t i = 0; i < 4; i++) {
        f3[i * 3] = f2[i * 2];
        f3[i * 3 + 1] = f2[i * 2 + 1];
        f3[i * 3 + 2] = 0;
    }
    const double r2[] = {4, 4}, r3[] = {4, 4, 1};
    double a, b;
    cr_assert_eq(pd_mo_hypervolume(f2, 4, 2, r2, &a), 0);
    cr_assert_eq(pd_mo_hypervolume(f3, 4, 3, r3, &b), 0);
    cr_expect_float_eq(a, b, 1e-12);
}

Test(mo_testfn, zdt_and_dtlz2_values)
{
    double x[30] = {0.25}, f[3];
    cr_assert_eq(pd_mo_testfn("zdt1", x, 1, 30, 2, f), 0);
    cr_expect_float_eq(f[0], 0.25, 1e-15);
    cr_expect_float_eq(f[1], 0.5, 1e-15);
    cr_assert_eq(pd_mo_testfn("zdt2", x, 1, 30, 2, f), 0);
    cr_expect_float_eq(f[1], 1 - 0.0625, 1e-15);
    cr_assert_eq(pd_mo_testfn("zdt3", x, 1, 30, 2, f), 0);
    cr_expect_float_eq(f[1], 0.5 - 0.25 * sin(2.5 * M_PI), 1e-15);
    /* DTLZ2 on its front (x_j = 0.5 beyond the angles): the unit sphere. */
    double y[12] = {0.3, 0.7, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
    cr_assert_eq(pd_mo_testfn("dtlz2", y, 1, 12, 3, f), 0);
    cr_expect_float_eq(f[0] * f[0] + f[1] * f[1] + f[2] * f[2], 1.0, 1e-12);
    cr_expect_eq(pd_mo_testfn("zdt4", x, 1, 30, 2, f), PD_EINVAL);
    cr_expect_eq(pd_mo_testfn("zdt1", x, 1, 30, 3, f), PD_EINVAL);
}

/* Runs NSGA-II on problem fn for gens generations after the initial
   population; writes its first front (up to 200 points) and returns how
   many. Checks every asked point is inside the bounds. */
static size_t run_nsga2(const char *fn, size_t dim, size_t m, size_t pop, size_t gens,
                        uint64_t seed, double *fx, double *ff)
{
    double lo[30], hi[30];
    for (size_t j = 0; j < dim; j++) {
        lo[j] = 0;
        hi[j] = 1;
    }
    pd_rng_t rng;
    pd_rng_seed(&rng, seed, 0, 0);
    pd_nsga2_t *s = pd_nsga2_create(dim, m, pop, lo, hi, NULL, &rng);
    cr_assert_not_null(s);
    double *f = malloc(pop * m * sizeof *f);
    cr_assert_not_null(f);
    for (size_t g = 0; g <= gens; g++) {
        const double *x;
        size_t n = pd_nsga2_ask(s, &x);
        cr_assert_eq(n, pop);
        for (size_t i = 0; i < n * dim; i++)
            cr_assert(x[i] >= 0 && x[i] <= 1, "point outside the bounds: %g", x[i]);
        cr_assert_eq(pd_mo_testfn(fn, x, n, dim, m, f), 0);
        pd_nsga2_tell(s, f);
    }
    size_t k = pd_nsga2_front(s, 200, fx, ff);
    free(f);
    pd_nsga2_destroy(s);
    return k;
}

Test(nsga2, zdt1_hypervolume_within_two_percent_of_the_true_fronts, .timeout = 120)
{
    static double fx[200 * 30], ff[200 * 2];
    size_t k = run_nsga2("zdt1", 30, 2, 100, 250, 1, fx, ff);
    cr_assert_gt(k, 50u);
    const double ref[] = {1.1, 1.1};
    double hv;
    cr_assert_eq(pd_mo_hypervolume(ff, k, 2, ref, &hv), 0);
    /* True front f2 = 1 - sqrt(f1) on [0, 1]: 1.1 * 1.1 - (1 - 2/3) - 0. */
    double truth = 1.1 * 1.1 - 1.0 / 3.0;
    cr_expect_geq(hv, 0.98 * truth, "hypervolume %.6f, true front's %.6f", hv, truth);
    cr_expect_leq(hv, truth);
    for (size_t i = 1; i < k; i++)
        cr_expect_geq(ff[i * 2], ff[(i - 1) * 2], "front sorted by the first value");
}

Test(nsga2, same_seed_same_front_other_seed_another, .timeout = 120)
{
    static double ax[200 * 30], af[400], bx[200 * 30], bf[400], cx[200 * 30], cf[400];
    size_t a = run_nsga2("zdt2", 30, 2, 40, 30, 7, ax, af);
    size_t b = run_nsga2("zdt2", 30, 2, 40, 30, 7, bx, bf);
    size_t c = run_nsga2("zdt2", 30, 2, 40, 30, 8, cx, cf);
    cr_assert_eq(a, b);
    cr_expect(memcmp(ax, bx, a * 30 * sizeof *ax) == 0);
    cr_expect(memcmp(af, bf, a * 2 * sizeof *af) == 0);
    cr_expect(a != c || memcmp(af, cf, a * 2 * sizeof *af) != 0);
}

Test(nsga2, dtlz2_three_objectives_approach_the_unit_sphere, .timeout = 120)
{
    static double fx[200 * 30], ff[200 * 3];
    size_t k = run_nsga2("dtlz2", 12, 3, 92, 150, 3, fx, ff);
    cr_assert_gt(k, 20u);
    double worst = 0;
    for (size_t i = 0; i < k; i++) {
        const double *p = ff + i * 3;
        worst = fmax(worst, sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]));
        for (size_t j = 1; j < k; j++)
            cr_assert(!pd_mo_dominates(ff + j * 3, p, 3) || j == i, "front point dominated");
    }
    cr_expect_lt(worst, 1.05, "farthest front point at radius %g", worst);
}

Test(nsga2, rejects_odd_or_tiny_populations_and_too_many_objectives)
{
    double lo[2] = {0, 0}, hi[2] = {1, 1};
    pd_rng_t rng;
    pd_rng_seed(&rng, 1, 0, 0);
    cr_expect_null(pd_nsga2_create(2, 2, 7, lo, hi, NULL, &rng));
    cr_expect_null(pd_nsga2_create(2, 2, 2, lo, hi, NULL, &rng));
    cr_expect_null(pd_nsga2_create(2, 4, 8, lo, hi, NULL, &rng));
}

/* Runs gens generations of a population of 40 on ZDT1 in 30 parameters. */
static void evolve_zdt1(pd_nsga2_t *s, size_t gens)
{
    double f[40 * 2];
    for (size_t g = 0; g < gens; g++) {
        const double *x;
        size_t n = pd_nsga2_ask(s, &x);
        cr_assert_eq(pd_mo_testfn("zdt1", x, n, 30, 2, f), 0);
        pd_nsga2_tell(s, f);
    }
}

static double front_hv(const pd_nsga2_t *s, double *fx, double *ff)
{
    const double ref[] = {1.1, 1.1};
    double hv;
    size_t k = pd_nsga2_front(s, 40, fx, ff);
    cr_assert_eq(pd_mo_hypervolume(ff, k, 2, ref, &hv), 0);
    return hv;
}

Test(nsga2, migrants_from_a_better_island_are_taken_a_dominated_one_is_not)
{
    double lo[30] = {0}, hi[30];
    for (size_t j = 0; j < 30; j++)
        hi[j] = 1;
    pd_rng_t ra, rb;
    pd_rng_seed(&ra, 5, 0, 0);
    pd_rng_seed(&rb, 5, 1, 0);
    pd_nsga2_t *a = pd_nsga2_create(30, 2, 40, lo, hi, NULL, &ra);
    pd_nsga2_t *b = pd_nsga2_create(30, 2, 40, lo, hi, NULL, &rb);
    cr_assert(a && b);
    static double ax[40 * 30], af[80], bx[40 * 30], bf[80];
    cr_expect_eq(pd_nsga2_import(b, 1, ax, af), 0u, "nothing taken before the first tell");
    evolve_zdt1(a, 61);
    evolve_zdt1(b, 3);
    double ha = front_hv(a, ax, af), hb = front_hv(b, bx, bf);
    cr_assert_gt(ha, hb);
    size_t k = pd_nsga2_front(a, 40, ax, af);
    size_t took = pd_nsga2_import(b, k, ax, af);
    cr_expect_gt(took, 0u);
    double after = front_hv(b, bx, bf);
    cr_expect_geq(after, 0.95 * ha, "island b's front %g after migration, a's %g", after, ha);
    /* A point worse than every member in both values stays out. */
    double worst_x[30], worst_f[2] = {2, 100};
    for (size_t j = 0; j < 30; j++)
        worst_x[j] = 1;
    cr_expect_eq(pd_nsga2_import(b, 1, worst_x, worst_f), 0u);
    evolve_zdt1(b, 1); /* asks and tells still pair up after imports */
    pd_nsga2_destroy(a);
    pd_nsga2_destroy(b);
}
