/* Tests of pd_optim_wire: options and migrants as msgpack, the form in
   which the cluster form of the optimisers ships them to nodes. A decoded
   set of options must drive a run to the very same result as the
   original; malformed or out-of-range messages are refused with a
   sentence. */
#include "pd_codec.h"
#include "pd_island.h"
#include "pd_optim_task.h"
#include "pd_optim_wire.h"
#include "playdoh.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <string.h>

#define D 4

static double lo[D] = {-5, -4, -3, -2}, hi[D] = {5, 6, 7, 8};
static double ilo[D] = {-1, -1, -1, -1}, ihi[D] = {1, 2, 3, 4};
static const char *names[D] = {"gain", NULL, "tau", "delay"};
static const uint32_t edges[] = {0, 1, 1, 2, 2, 0, 0, 2};
static pd_buf_t buf;
static char err[512];

static void setup(void)
{
    pd_buf_init(&buf);
    err[0] = 0;
}
static void teardown(void)
{
    pd_buf_free(&buf);
}

TestSuite(wire, .init = setup, .fini = teardown);

static pd_optim_opts_t s_full(pd_algo_t algo)
{
    pd_optim_opts_t o;
    pd_optim_opts_init(&o, algo, D);
    o.lower = lo;
    o.upper = hi;
    o.init_lower = ilo;
    o.init_upper = ihi;
    o.names = names;
    o.popsize = 12;
    o.budget = 6000;
    o.iterations = 400;
    o.target = 1e-9;
    o.islands = 3;
    o.topology = PD_TOPO_EDGES;
    o.edges = edges;
    o.edge_count = 4;
    o.migration_interval = 3;
    o.migration_count = 2;
    o.seed = 0xfeedbeefcafeull;
    o.groups = 2;
    o.pso.variant = PD_PSO_SPSO2011;
    o.pso.informants = 5;
    o.ga.eta_c = 12.5;
    o.ga.elites = 3;
    o.cmaes.sigma0 = 0.25;
    o.cmaes.restarts = 2;
    o.de.f_lower = 0.2;
    o.de.tau_cr = 0.3;
    o.polish = 77;
    o.cmaes.bipop = true;
    return o;
}

ParameterizedTestParameters(wire, options_round_trip_and_drive_the_same_run)
{
    static pd_algo_t a[] = {PD_ALGO_PSO, PD_ALGO_GA, PD_ALGO_CMAES, PD_ALGO_DE};
    return cr_make_param_array(pd_algo_t, a, 4);
}

ParameterizedTest(pd_algo_t *algo, wire, options_round_trip_and_drive_the_same_run)
{
    pd_optim_opts_t o = s_full(*algo);
    cr_assert_eq(pd_optim_opts_encode(&o, &buf, err, sizeof err), 0, "%s", err);
    int rc = 0;
    pd_optim_spec_t *s = pd_optim_spec_decode(buf.data, buf.len, err, sizeof err, &rc);
    cr_assert(s, "%s", err);
    const pd_optim_opts_t *d = pd_optim_spec_opts(s);
    cr_expect_eq(d->algo, o.algo);
    cr_expect_eq(d->dim, o.dim);
    cr_expect_eq(memcmp(d->lower, lo, sizeof lo), 0);
    cr_expect_eq(memcmp(d->upper, hi, sizeof hi), 0);
    cr_expect_eq(memcmp(d->init_lower, ilo, sizeof ilo), 0);
    cr_expect_eq(memcmp(d->init_upper, ihi, sizeof ihi), 0);
    cr_expect_str_eq(d->names[0], "gain");
    cr_expect_null(d->names[1]);
    cr_expect_str_eq(d->names[3], "delay");
    cr_expect_eq(d->edge_count, 4u);
    cr_expect_eq(memcmp(d->edges, edges, sizeof edges), 0);
    cr_expect_eq(d->seed, o.seed);
    cr_expect_eq(d->target, o.target);
    cr_expect_eq(d->pso.variant, PD_PSO_SPSO2011);
    cr_expect_eq(d->pso.informants, 5u);
    cr_expect_eq(d->pso.inertia, o.pso.inertia);
    cr_expect_eq(d->ga.eta_c, 12.5);
    cr_expect_eq(d->ga.elites, 3u);
    cr_expect_eq(d->cmaes.sigma0, 0.25);
    cr_expect_eq(d->de.f_lower, 0.2);
    cr_expect_eq(d->de.f_upper, 0.9);
    cr_expect_eq(d->de.tau_cr, 0.3);
    cr_expect_eq(d->polish, 77u);
    cr_expect(d->cmaes.bipop);
    cr_expect_eq(d->cmaes.restarts, 2u);
    cr_expect_eq(d->cmaes.tol_x, o.cmaes.tol_x);
    /* the same run, bit for bit */
    pd_fitness_fn f = pd_optim_builtin("rastrigin", NULL, NULL);
    pd_optim_result_t a, b;
    cr_assert_eq(pd_optim_run(&o, f, NULL, &a), 0, "%s", a.error);
    cr_assert_eq(pd_optim_run(d, f, NULL, &b), 0, "%s", b.error);
    cr_expect_eq(a.evaluations, b.evaluations);
    cr_expect_eq(memcmp(a.best_x, b.best_x, 2 * D * sizeof(double)), 0);
    cr_expect_eq(memcmp(a.history, b.history, a.history_len * 3 * 2 * sizeof(double)), 0);
    pd_optim_result_clear(&a);
    pd_optim_result_clear(&b);
    pd_optim_spec_destroy(&s);
    cr_expect_null(s);
    pd_optim_spec_destroy(&s);
}

Test(wire, defaults_round_trip_with_no_target_and_no_optional_arrays)
{
    pd_optim_opts_t o;
    pd_optim_opts_init(&o, PD_ALGO_CMAES, D);
    o.lower = lo;
    o.upper = hi;
    o.iterations = 5;
    o.maximize = true;
    cr_assert_eq(pd_optim_opts_encode(&o, &buf, err, sizeof err), 0, "%s", err);
    pd_optim_spec_t *s = pd_optim_spec_decode(buf.data, buf.len, err, sizeof err, NULL);
    cr_assert(s, "%s", err);
    const pd_optim_opts_t *d = pd_optim_spec_opts(s);
    cr_expect(isnan(d->target));
    cr_expect(d->maximize);
    cr_expect_null(d->init_lower);
    cr_expect_null(d->names);
    cr_expect_eq(d->topology, PD_TOPO_RING);
    cr_expect_eq(d->pso.variant, PD_PSO_COMPONENT);
    pd_optim_spec_destroy(&s);
}

Test(wire, options_that_fail_the_check_are_not_encoded)
{
    pd_optim_opts_t o;
    pd_optim_opts_init(&o, PD_ALGO_PSO, D);
    o.lower = lo;
    o.upper = hi;
    cr_expect_eq(pd_optim_opts_encode(&o, &buf, err, sizeof err), PD_EINVAL);
    cr_expect(strstr(err, "no stopping rule"), "%s", err);
    cr_expect_eq(buf.len, 0u);
}

/* Writes a map of the given key/value pairs (values as msgpack written by
   fill) into buf. */
static void s_map_with(const char *extra_key, int variant)
{
    pd_optim_opts_t o;
    pd_optim_opts_init(&o, PD_ALGO_PSO, D);
    o.lower = lo;
    o.upper = hi;
    o.budget = 1000;
    pd_buf_t good;
    pd_buf_init(&good);
    cr_assert_eq(pd_optim_opts_encode(&o, &good, err, sizeof err), 0);
    /* rebuild: copy the good map's pairs, changing one */
    pd_rd_t r;
    pd_rd_init(&r, good.data, good.len);
    uint32_t n;
    cr_assert_eq(pd_rd_map(&r, &n), 0);
    msgpack_packer pk;
    pd_packer_init(&pk, &buf);
    msgpack_pack_map(&pk, n + (extra_key ? 1 : 0));
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *raw;
        size_t rawlen;
        char key[32];
        pd_rd_t k = r;
        cr_assert_eq(pd_rd_strcpy(&k, key, sizeof key), 0);
        cr_assert_eq(pd_rd_skip(&r, &raw, &rawlen), 0);
        pd_pack_raw(&pk, raw, rawlen);
        cr_assert_eq(pd_rd_skip(&r, &raw, &rawlen), 0);
        if (variant == 1 && strcmp(key, "v") == 0)
            msgpack_pack_uint8(&pk, 9);
        else if (variant == 2 && strcmp(key, "upper") == 0) {
            msgpack_pack_array(&pk, 2);
            msgpack_pack_double(&pk, 1);
            msgpack_pack_double(&pk, 2);
        } else if (variant == 3 && strcmp(key, "upper") == 0) {
            msgpack_pack_array(&pk, D);
            for (int j = 0; j < D; j++)
                msgpack_pack_double(&pk, -10);
        } else if (variant == 4 && strcmp(key, "algo") == 0)
            pd_pack_cstr(&pk, "simplex");
        else
            pd_pack_raw(&pk, raw, rawlen);
    }
    if (extra_key) {
        pd_pack_cstr(&pk, extra_key);
        msgpack_pack_uint8(&pk, 1);
    }
    pd_buf_free(&good);
}

typedef struct {
    int variant;
    char extra[16];
    int rc;
    char expect[64];
} bad_t;

ParameterizedTestParameters(wire, bad_options_are_refused_with_a_reason)
{
    static bad_t t[] = {
        {0, "colour", PD_EPROTO, "unknown key 'colour'"},
        {1, "", PD_EPROTO, "version is not 1"},
        {2, "", PD_EPROTO, "'upper' has 2 values for 4 parameters"},
        {3, "", PD_EINVAL, "lower < upper"},
        {4, "", PD_EPROTO, "algo 'simplex' unknown"},
    };
    return cr_make_param_array(bad_t, t, sizeof t / sizeof t[0]);
}

ParameterizedTest(bad_t *t, wire, bad_options_are_refused_with_a_reason)
{
    s_map_with(t->extra[0] ? t->extra : NULL, t->variant);
    int rc = 0;
    pd_optim_spec_t *s = pd_optim_spec_decode(buf.data, buf.len, err, sizeof err, &rc);
    cr_expect_null(s);
    cr_expect_eq(rc, t->rc);
    cr_expect(strstr(err, t->expect), "<%s> lacks <%s>", err, t->expect);
}

Test(wire, truncated_and_foreign_bytes_are_refused)
{
    pd_optim_opts_t o = s_full(PD_ALGO_GA);
    cr_assert_eq(pd_optim_opts_encode(&o, &buf, err, sizeof err), 0);
    int rc = 0;
    for (size_t cut = 0; cut < buf.len; cut += 7) {
        cr_expect_null(pd_optim_spec_decode(buf.data, cut, err, sizeof err, &rc));
        cr_expect_eq(rc, PD_EPROTO);
    }
    static const uint8_t arr[] = {0x93, 1, 2, 3};
    cr_expect_null(pd_optim_spec_decode(arr, sizeof arr, err, sizeof err, &rc));
    cr_expect(strstr(err, "not a map"), "%s", err);
}

/* ---- migrants ----------------------------------------------------------- */

Test(wire, migrants_round_trip)
{
    double x[2 * D] = {1, 2, 3, 4, -1, -2, -3, -4}, f[2] = {0.5, -INFINITY};
    cr_assert_eq(pd_migrants_encode(1, 2, D, x, f, &buf), 0);
    double gx[4 * D], gf[4];
    uint32_t g = 99;
    cr_expect_eq(pd_migrants_decode(buf.data, buf.len, D, 2, 4, &g, gx, gf, err, sizeof err), 2);
    cr_expect_eq(g, 1u);
    cr_expect_eq(memcmp(gx, x, sizeof x), 0);
    cr_expect_eq(gf[0], 0.5);
    cr_expect_eq(gf[1], -INFINITY);
}

Test(wire, bad_migrants_are_refused)
{
    double x[2 * D] = {1, 2, 3, 4, -1, -2, -3, -4}, f[2] = {0.5, 1};
    double gx[4 * D], gf[4];
    uint32_t g;
    cr_assert_eq(pd_migrants_encode(3, 2, D, x, f, &buf), 0);
    cr_expect_eq(pd_migrants_decode(buf.data, buf.len, D, 2, 4, &g, gx, gf, err, sizeof err),
                 PD_EPROTO);
    cr_expect(strstr(err, "group 3 but the run has 2"), "%s", err);
    cr_expect_eq(pd_migrants_decode(buf.data, buf.len, D, 4, 1, &g, gx, gf, err, sizeof err),
                 PD_EPROTO);
    cr_expect(strstr(err, "at most 1"), "%s", err);
    cr_expect_eq(pd_migrants_decode(buf.data, buf.len, D + 1, 4, 4, &g, gx, gf, err, sizeof err),
                 PD_EPROTO);
    pd_buf_reset(&buf);
    f[1] = NAN;
    cr_assert_eq(pd_migrants_encode(0, 2, D, x, f, &buf), 0);
    cr_expect_eq(pd_migrants_decode(buf.data, buf.len, D, 1, 4, &g, gx, gf, err, sizeof err),
                 PD_EPROTO);
    cr_expect(strstr(err, "value 1 is not a number"), "%s", err);
    cr_expect_eq(pd_migrants_decode(buf.data, buf.len - 1, D, 1, 4, &g, gx, gf, err, sizeof err),
                 PD_EPROTO);
}

Test(wire, an_island_drops_migrants_outside_its_bounds)
{
    pd_optim_opts_t o;
    pd_optim_opts_init(&o, PD_ALGO_GA, D);
    o.lower = lo;
    o.upper = hi;
    o.budget = 1000;
    pd_island_t *is = pd_island_new(&o, 0, NULL);
    pd_fitness_fn f = pd_optim_builtin("sphere", NULL, NULL);
    cr_assert_eq(pd_island_step(is, f, NULL, NULL, 0, err, sizeof err), 0, "%s", err);
    double x[2 * D] = {0, 0, 0, 100, 0, 0, 0, 0}, v[2] = {-1, 1e-30};
    /* the first is outside (x[3] = 100 > 8) even though its value is best */
    cr_expect_eq(pd_island_import(is, 0, 2, x, v), 1u);
    cr_expect_eq(pd_island_best(is, 0, NULL), 1e-30);
    pd_island_destroy(&is);
}

/* ---- pd_optim_task: the cluster run's argument, results and progress ---- */

Test(wire, a_cluster_argument_carries_options_fitness_and_shared_data)
{
    pd_optim_opts_t o = s_full(PD_ALGO_GA);
    double shared[3] = {1, 2, 3};
    cr_assert_eq(pd_optim_task_arg(&o, "fit", shared, sizeof shared, &buf, err, sizeof err), 0,
                 "%s", err);
    pd_optim_task_arg_t a;
    cr_assert_eq(pd_optim_task_arg_decode(buf.data, buf.len, &a, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(a.fitness, "fit");
    cr_assert_eq(a.shared_len, sizeof shared);
    cr_assert_eq(memcmp(a.shared, shared, sizeof shared), 0);
    int rc;
    pd_optim_spec_t *spec = pd_optim_spec_decode(a.opts, a.opts_len, err, sizeof err, &rc);
    cr_assert_not_null(spec, "%s", err);
    cr_assert_eq(pd_optim_spec_opts(spec)->algo, PD_ALGO_GA);
    pd_optim_spec_destroy(&spec);
    /* no shared data: nil */
    pd_buf_reset(&buf);
    cr_assert_eq(pd_optim_task_arg(&o, "fit", NULL, 0, &buf, err, sizeof err), 0);
    cr_assert_eq(pd_optim_task_arg_decode(buf.data, buf.len, &a, err, sizeof err), 0, "%s", err);
    cr_assert_null(a.shared);
}

Test(wire, a_bad_cluster_argument_is_refused_with_a_sentence)
{
    pd_optim_opts_t o = s_full(PD_ALGO_PSO);
    cr_assert_eq(pd_optim_task_arg(&o, "", NULL, 0, &buf, err, sizeof err), PD_EINVAL);
    cr_assert(strstr(err, "fitness"), "%s", err);
    o.iterations = o.budget = 0;
    cr_assert_eq(pd_optim_task_arg(&o, "fit", NULL, 0, &buf, err, sizeof err), PD_EINVAL);
    cr_assert(strstr(err, "stopping rule"), "%s", err);
    pd_optim_task_arg_t a;
    const uint8_t not_a_map[] = {0x92, 0x01, 0x02};
    cr_assert_eq(pd_optim_task_arg_decode(not_a_map, sizeof not_a_map, &a, err, sizeof err),
                 PD_EPROTO);
    cr_assert(strstr(err, "not a map"), "%s", err);
    const uint8_t unknown[] = {0x81, 0xa1, 'z', 0x01}; /* {"z": 1} */
    cr_assert_eq(pd_optim_task_arg_decode(unknown, sizeof unknown, &a, err, sizeof err),
                 PD_EPROTO);
    const uint8_t empty[] = {0x80}; /* {} */
    cr_assert_eq(pd_optim_task_arg_decode(empty, sizeof empty, &a, err, sizeof err), PD_EPROTO);
    cr_assert(strstr(err, "version"), "%s", err);
}

Test(wire, progress_round_trips_and_malformed_progress_is_refused)
{
    double best[2] = {0.5, -3};
    cr_assert_eq(pd_optim_task_progress_encode(7, 700, 1.25, 2, best, &buf), 0);
    pd_optim_task_progress_t p;
    cr_assert_eq(pd_optim_task_progress_decode(buf.data, buf.len, &p), 0);
    cr_assert_eq(p.iteration, 7);
    cr_assert_eq(p.evaluations, 700);
    cr_assert_eq(p.wall_s, 1.25);
    cr_assert_eq(p.groups, 2);
    cr_assert_eq(p.best_f[1], -3);
    pd_optim_task_progress_clear(&p);
    cr_assert_eq(pd_optim_task_progress_decode(buf.data, buf.len - 3, &p), PD_EPROTO);
    const uint8_t nil = 0xc0;
    cr_assert_eq(pd_optim_task_progress_decode(&nil, 1, &p), PD_EPROTO);
    pd_optim_task_progress_clear(&p);
}

/* Encodes island i's part: 1 group, dim 2, 3 iterations. */
static void s_node(uint32_t i, double best, bool decider, int code, const char *error, pd_buf_t *b)
{
    double bx[2] = {best, -best}, hist[3] = {best + 2, best + 1, best};
    uint8_t has = 1;
    pd_optim_node_result_t r = {.island = i, .dim = 2, .groups = 1, .iterations = 3,
                                .evaluations = 30, .immigrants = 2, .restarts = i,
                                .best_f = &best, .best_x = bx, .has_best = &has,
                                .history = hist, .decider = decider, .stop = PD_STOP_BUDGET,
                                .total = 60, .wall_s = 0.5, .code = code, .error = error};
    cr_assert_eq(pd_optim_task_result_encode(&r, b), 0);
}

Test(wire, islands_results_merge_as_in_process)
{
    pd_buf_t b1;
    pd_buf_init(&b1);
    s_node(0, 4, true, 0, NULL, &buf);
    s_node(1, 2, false, 0, NULL, &b1);
    const uint8_t *vals[2] = {buf.data, b1.data};
    size_t lens[2] = {buf.len, b1.len};
    pd_optim_result_t r;
    cr_assert_eq(pd_optim_task_collect(vals, lens, 2, &r), 0, "%s", r.error);
    cr_assert_eq(r.best_f[0], 2);
    cr_assert_eq(r.best_island[0], 1);
    cr_assert_eq(r.best_x[1], -2);
    cr_assert_eq(r.evaluations, 60);
    cr_assert_eq(r.immigrants, 4);
    cr_assert_eq(r.restarts, 1);
    cr_assert_eq(r.stop, PD_STOP_BUDGET);
    cr_assert_eq(r.wall_s, 0.5);
    cr_assert_eq(pd_optim_history(&r, 1, 0, 0), 4);
    cr_assert_eq(pd_optim_history(&r, 0, 0, 2), 4);
    pd_optim_result_clear(&r);
    /* node 0's error is the run's */
    pd_buf_reset(&buf);
    s_node(0, 4, true, PD_ETASK, "fitness failed on island 1", &buf);
    vals[0] = buf.data;
    lens[0] = buf.len;
    cr_assert_eq(pd_optim_task_collect(vals, lens, 2, &r), PD_ETASK);
    cr_assert_str_eq(r.error, "fitness failed on island 1");
    cr_assert_eq(r.best_f[0], 2, "the best before the failure is kept");
    pd_optim_result_clear(&r);
    pd_buf_free(&b1);
}

Test(wire, results_that_are_not_an_islands_are_refused)
{
    pd_buf_t b1;
    pd_buf_init(&b1);
    s_node(0, 4, true, 0, NULL, &buf);
    s_node(0, 2, false, 0, NULL, &b1); /* says island 0 at node 1 */
    const uint8_t *vals[2] = {buf.data, b1.data};
    size_t lens[2] = {buf.len, b1.len};
    pd_optim_result_t r;
    cr_assert_eq(pd_optim_task_collect(vals, lens, 2, &r), PD_EPROTO);
    cr_assert(strstr(r.error, "node 1"), "%s", r.error);
    pd_optim_result_clear(&r);
    /* node 0 without the run's outcome */
    pd_buf_reset(&b1);
    s_node(1, 2, false, 0, NULL, &b1);
    pd_buf_reset(&buf);
    s_node(0, 4, false, 0, NULL, &buf);
    vals[0] = buf.data;
    vals[1] = b1.data;
    lens[0] = buf.len;
    lens[1] = b1.len;
    cr_assert_eq(pd_optim_task_collect(vals, lens, 2, &r), PD_EPROTO);
    cr_assert(strstr(r.error, "outcome"), "%s", r.error);
    pd_optim_result_clear(&r);
    /* a job's plain value */
    const uint8_t one = 0x01;
    const uint8_t *v1[1] = {&one};
    size_t l1[1] = {1};
    cr_assert_eq(pd_optim_task_collect(v1, l1, 1, &r), PD_EPROTO);
    pd_optim_result_clear(&r);
    pd_buf_free(&b1);
}
