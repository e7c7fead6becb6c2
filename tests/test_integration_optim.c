/* Integration tests of the optimisers on a cluster: a real broker and real
   workers on loopback, one island per node of a synchronous task running
   the workers' built-in island node over a fitness of a shipped module,
   driven through libplaydoh-client (pd_optim_cluster, pd_optim_submit ...). */
#include "pd_harness.h"

#include "playdoh_fitness.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The module's rastrigin is the same code as the in-process one below, so
   that the two forms can be compared bit for bit. */
static const char *MODULE_SRC =
    "#include <playdoh_fitness.h>\n"
    "#include <playdoh_task.h>\n"
    "#include <math.h>\n"
    "#include <signal.h>\n"
    "#include <stdio.h>\n"
    "#include <string.h>\n"
    "#include <time.h>\n"
    "static double scale; /* set by pd_init from the shared data's length */\n"
    "PD_INIT(t) { size_t len; pd_task_shared(t, &len); scale = len ? 1.0 : 0.0; return 0; }\n"
    "PD_FITNESS(rastrigin, b, f) {\n"
    "    for (size_t i = 0; i < b->n; i++) {\n"
    "        const double *x = b->x + i * b->dim;\n"
    "        double s = 10.0 * (double) b->dim;\n"
    "        for (size_t j = 0; j < b->dim; j++)\n"
    "            s += x[j] * x[j] - 10 * cos(2 * 3.14159265358979323846 * x[j]);\n"
    "        f[i] = s + (double) b->group[i];\n"
    "    }\n"
    "    return 0;\n"
    "}\n"
    "/* The distance to the shared point (doubles), scaled by pd_init's state. */\n"
    "PD_FITNESS(shifted, b, f) {\n"
    "    const double *c = b->shared;\n"
    "    if (!c || b->shared_len != b->dim * sizeof(double) || scale != 1.0) {\n"
    "        snprintf(b->error, b->error_size, \"no shared point or no init\");\n"
    "        return -1;\n"
    "    }\n"
    "    for (size_t i = 0; i < b->n; i++) {\n"
    "        double s = 0;\n"
    "        for (size_t j = 0; j < b->dim; j++) {\n"
    "            double d = b->x[i * b->dim + j] - c[j];\n"
    "            s += d * d;\n"
    "        }\n"
    "        f[i] = s;\n"
    "    }\n"
    "    return 0;\n"
    "}\n"
    "/* Sphere around (3, 3, ...), outside the box [-1, 1]: fails on any point\n"
    "   outside the box, so a run that ends well never left it. */\n"
    "PD_FITNESS(boxed, b, f) {\n"
    "    for (size_t i = 0; i < b->n; i++) {\n"
    "        double s = 0;\n"
    "        for (size_t j = 0; j < b->dim; j++) {\n"
    "            double x = b->x[i * b->dim + j];\n"
    "            if (!(x >= -1 && x <= 1)) {\n"
    "                snprintf(b->error, b->error_size, \"x[%zu] = %g is out of bounds\", j, x);\n"
    "                return -1;\n"
    "            }\n"
    "            s += (x - 3) * (x - 3);\n"
    "        }\n"
    "        f[i] = s;\n"
    "    }\n"
    "    return 0;\n"
    "}\n"
    "PD_FITNESS(fails, b, f) {\n"
    "    for (size_t i = 0; i < b->n; i++) f[i] = b->x[i * b->dim];\n"
    "    if (b->island == 1 && b->iteration == 2) {\n"
    "        snprintf(b->error, b->error_size, \"the model diverged\");\n"
    "        return -7;\n"
    "    }\n"
    "    return 0;\n"
    "}\n"
    "PD_FITNESS(nan_at_3, b, f) {\n"
    "    for (size_t i = 0; i < b->n; i++) f[i] = b->x[i * b->dim];\n"
    "    if (b->island == 2 && b->iteration == 3) f[1] = NAN;\n"
    "    return 0;\n"
    "}\n"
    "PD_FITNESS(crashes, b, f) {\n"
    "    for (size_t i = 0; i < b->n; i++) f[i] = b->x[i * b->dim];\n"
    "    if (b->island == 1 && b->iteration == 2) raise(SIGSEGV);\n"
    "    return 0;\n"
    "}\n"
    "/* 2 ms per block: slow enough to watch and to cancel. */\n"
    "PD_FITNESS(slow, b, f) {\n"
    "    struct timespec ts = {0, 2000000};\n"
    "    nanosleep(&ts, NULL);\n"
    "    for (size_t i = 0; i < b->n; i++) f[i] = b->x[i * b->dim] * b->x[i * b->dim];\n"
    "    return 0;\n"
    "}\n";

static PD_FITNESS(rastrigin, b, f)
{
    for (size_t i = 0; i < b->n; i++) {
        const double *x = b->x + i * b->dim;
        double s = 10.0 * (double) b->dim;
        for (size_t j = 0; j < b->dim; j++)
            s += x[j] * x[j] - 10 * cos(2 * 3.14159265358979323846 * x[j]);
        f[i] = s + (double) b->group[i];
    }
    return 0;
}

static PD_FITNESS(fails, b, f)
{
    for (size_t i = 0; i < b->n; i++)
        f[i] = b->x[i * b->dim];
    if (b->island == 1 && b->iteration == 2) {
        snprintf(b->error, b->error_size, "the model diverged");
        return -7;
    }
    return 0;
}

static pd_harness_t h;
static pd_client_t *c;
static char mod[PD_HASH_HEX];
static double lo[8], hi[8];

static void start(void)
{
    static const char *const extra[] = {"--heartbeat-ms", "250", NULL};
    pd_harness_start(&h, extra);
    pd_harness_add_worker(&h, 2);
    pd_harness_add_worker(&h, 2);
    c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, 4);
    char *path = pd_harness_module(&h, "fitmod.c", MODULE_SRC);
    cr_assert_eq(pd_module_upload_file(c, path, mod), 0, "%s", pd_client_error(c));
    free(path);
    for (int j = 0; j < 8; j++) {
        lo[j] = -5.12;
        hi[j] = 5.12;
    }
}

static void stop(void)
{
    pd_client_destroy(&c);
    pd_harness_stop(&h);
}

TestSuite(optim_cluster, .init = start, .fini = stop, .timeout = 240);

static void opts(pd_optim_opts_t *o, pd_algo_t algo, size_t dim)
{
    pd_optim_opts_init(o, algo, dim);
    o->lower = lo;
    o->upper = hi;
    o->islands = 4;
    o->migration_interval = 5;
    o->seed = 11;
}

/* Every field of two results is the same, to the last bit. */
static void assert_same(const pd_optim_result_t *a, const pd_optim_result_t *b, const char *what)
{
    cr_assert_eq(a->code, b->code, "%s: code %d against %d (%s)", what, a->code, b->code,
                 a->error ? a->error : b->error ? b->error : "");
    cr_assert_eq(a->stop, b->stop, "%s: stop %s against %s", what, pd_optim_stop_name(a->stop),
                 pd_optim_stop_name(b->stop));
    cr_assert_eq(a->evaluations, b->evaluations, "%s: evaluations", what);
    cr_assert_eq(a->iterations, b->iterations, "%s: iterations", what);
    cr_assert_eq(a->immigrants, b->immigrants, "%s: immigrants", what);
    cr_assert_eq(a->restarts, b->restarts, "%s: restarts", what);
    cr_assert_eq(a->groups, b->groups);
    cr_assert_eq(a->islands, b->islands);
    for (uint32_t g = 0; g < a->groups; g++) {
        cr_assert_eq(memcmp(&a->best_f[g], &b->best_f[g], sizeof(double)), 0,
                     "%s: group %u best %.17g against %.17g", what, g, a->best_f[g], b->best_f[g]);
        cr_assert_eq(a->best_island[g], b->best_island[g], "%s: best island", what);
    }
    cr_assert_eq(memcmp(a->best_x, b->best_x, a->groups * a->dim * sizeof(double)), 0,
                 "%s: best points differ", what);
    cr_assert_eq(a->history_len, b->history_len);
    cr_assert_eq(memcmp(a->history, b->history,
                        a->history_len * a->islands * a->groups * sizeof(double)),
                 0, "%s: histories differ", what);
}

Test(optim_cluster, four_islands_on_a_ring_repeat_the_in_process_run_bit_for_bit)
{
    const pd_algo_t algos[] = {PD_ALGO_PSO, PD_ALGO_GA, PD_ALGO_CMAES, PD_ALGO_DE};
    for (int a = 0; a < 4; a++) {
        pd_optim_opts_t o;
        opts(&o, algos[a], 6);
        o.groups = 2;
        if (a == 1)
            o.iterations = 40;
        else
            o.budget = 6000; /* PSO, CMA-ES and DE stop on the budget */
        pd_optim_result_t local, remote;
        int lrc = pd_optim_run(&o, rastrigin, NULL, &local);
        int rrc = pd_optim_cluster(c, mod, "rastrigin", &o, NULL, &remote);
        cr_assert_eq(lrc, 0, "%s", local.error);
        cr_assert_eq(rrc, 0, "%s: %s", pd_algo_name(algos[a]), remote.error);
        assert_same(&local, &remote, pd_algo_name(algos[a]));
        cr_assert_gt(remote.immigrants, 0, "migrants moved");
        /* migration shows in the history: after a migration at iteration t,
           island i's entry t + 1 is at least island i-1's entry t */
        for (uint64_t t = 4; t + 1 < remote.history_len; t += 5)
            for (uint32_t i = 0; i < 4; i++)
                for (uint32_t g = 0; g < 2; g++)
                    cr_assert_leq(pd_optim_history(&remote, i, g, t + 1),
                                  pd_optim_history(&remote, (i + 3) % 4, g, t));
        pd_optim_result_clear(&local);
        pd_optim_result_clear(&remote);
    }
}

/* BIPOP's restarts (small and large runs, the large levels shared out
   between islands) repeat on the cluster bit for bit. */
Test(optim_cluster, bipop_restarts_on_the_cluster_repeat_the_in_process_run_bit_for_bit)
{
    pd_optim_opts_t o;
    opts(&o, PD_ALGO_CMAES, 4);
    o.islands = 2;
    o.cmaes.bipop = true;
    o.budget = 20000;
    pd_optim_result_t local, remote;
    int lrc = pd_optim_run(&o, rastrigin, NULL, &local);
    int rrc = pd_optim_cluster(c, mod, "rastrigin", &o, NULL, &remote);
    cr_assert_eq(lrc, 0, "%s", local.error);
    cr_assert_eq(rrc, 0, "%s", remote.error);
    assert_same(&local, &remote, "bipop");
    cr_expect_gt(remote.restarts, 2u, "restarts: %llu", (unsigned long long) remote.restarts);
    pd_optim_result_clear(&local);
    pd_optim_result_clear(&remote);
}

/* A polish runs on every node after the run, as pd_optim_run runs it on
   every island: the same points, values and evaluations, bit for bit, and
   the polished result better than the global run's. */
Test(optim_cluster, a_polish_on_the_nodes_repeats_the_in_process_polish_bit_for_bit)
{
    pd_optim_opts_t o;
    opts(&o, PD_ALGO_GA, 6);
    o.groups = 2;
    o.budget = 3000;
    pd_optim_result_t plain, local, remote;
    cr_assert_eq(pd_optim_run(&o, rastrigin, NULL, &plain), 0, "%s", plain.error);
    o.polish = 500;
    int lrc = pd_optim_run(&o, rastrigin, NULL, &local);
    int rrc = pd_optim_cluster(c, mod, "rastrigin", &o, NULL, &remote);
    cr_assert_eq(lrc, 0, "%s", local.error);
    cr_assert_eq(rrc, 0, "%s", remote.error);
    assert_same(&local, &remote, "polish");
    cr_expect_eq(remote.polish_evaluations, local.polish_evaluations);
    cr_expect_gt(remote.polish_evaluations, 0u);
    cr_expect_leq(remote.polish_evaluations, 500u * 4 * 2, "at most polish per island and group");
    cr_expect_eq(remote.evaluations, plain.evaluations + remote.polish_evaluations);
    for (uint32_t g = 0; g < 2; g++)
        cr_expect_lt(remote.best_f[g], plain.best_f[g], "group %u: %g polished, %g before", g,
                     remote.best_f[g], plain.best_f[g]);
    pd_optim_result_clear(&plain);
    pd_optim_result_clear(&local);
    pd_optim_result_clear(&remote);
}

/* optimize --algo de --polish N: the nodes polish, the JSON says how many
   evaluations that took (within the evaluations); --algo bipop restarts;
   a --polish that is no count is refused before anything starts. */
Test(optim_cluster, optimize_de_with_polish_and_bipop_on_the_command_line)
{
    char *path = pd_harness_module(&h, "fitpolish.c", MODULE_SRC);
    const char *submit = pd_harness_program("playdoh-submit");
    char *out = NULL;
    cr_assert_eq(pd_harness_run(&out, "'%s' --broker %s optimize --algo de --dim 4 --bounds "
                                "-5.12:5.12 --islands 2 --budget 1600 --polish 400 --seed 2 "
                                "'%s' rastrigin",
                                submit, h.endpoint, path),
                 0, "%s", out);
    cr_assert(strstr(out, "\"polish_evaluations\":"), "%s", out);
    unsigned long long ev = 0, pe = 0;
    const char *e = strstr(out, "\"evaluations\":"), *p = strstr(out, "\"polish_evaluations\":");
    cr_assert(e && p && sscanf(e, "\"evaluations\":%llu", &ev) == 1
                  && sscanf(p, "\"polish_evaluations\":%llu", &pe) == 1, "%s", out);
    cr_expect(pe > 0 && pe <= 2 * 400 && ev > pe && ev - pe <= 1600, "%llu, %llu: %s", ev, pe,
              out);
    free(out);
    /* --algo bipop: CMA-ES with BIPOP restarts */
    cr_assert_eq(pd_harness_run(&out, "'%s' --broker %s optimize --algo bipop --dim 4 --bounds "
                                "-5.12:5.12 --islands 2 --budget 6000 --seed 2 '%s' rastrigin",
                                submit, h.endpoint, path),
                 0, "%s", out);
    cr_assert(strstr(out, "\"restarts\":") && !strstr(out, "\"restarts\":0,"), "%s", out);
    free(out);
    int st = pd_harness_run(&out, "'%s' --broker %s optimize --algo de --dim 4 --bounds "
                            "-5.12:5.12 --budget 1600 --polish none '%s' rastrigin 2>&1",
                            submit, h.endpoint, path);
    cr_expect_eq(st, 2, "%s", out);
    cr_expect(strstr(out, "--polish wants a number of evaluations"), "%s", out);
    free(out);
    free(path);
}

/* Node 0 skips the exchange of block sizes while the budget is far (PSO,
   GA): the run must still stop where pd_optim_run stops, on budgets that
   fall inside an iteration, with GA's smaller blocks after the first. */
Test(optim_cluster, the_budget_stops_the_cluster_at_the_in_process_iteration)
{
    const pd_algo_t algos[] = {PD_ALGO_GA, PD_ALGO_PSO};
    const uint64_t budgets[] = {3 * 40 + 1, 3 * 40 + 3 * 36 * 7 - 1, 2000};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 3; b++) {
            pd_optim_opts_t o;
            opts(&o, algos[a], 3);
            o.islands = 3;
            o.budget = budgets[b];
            pd_optim_result_t local, remote;
            cr_assert_eq(pd_optim_run(&o, rastrigin, NULL, &local), 0, "%s", local.error);
            cr_assert_eq(pd_optim_cluster(c, mod, "rastrigin", &o, NULL, &remote), 0, "%s",
                         remote.error);
            assert_same(&local, &remote, pd_algo_name(algos[a]));
            cr_assert_eq(remote.stop, PD_STOP_BUDGET);
            cr_assert_leq(remote.evaluations, budgets[b]);
            pd_optim_result_clear(&local);
            pd_optim_result_clear(&remote);
        }
}

Test(optim_cluster, every_point_lies_within_the_bounds)
{
    const pd_algo_t algos[] = {PD_ALGO_PSO, PD_ALGO_GA, PD_ALGO_CMAES, PD_ALGO_DE};
    double blo[4] = {-1, -1, -1, -1}, bhi[4] = {1, 1, 1, 1};
    for (int a = 0; a < 4; a++) {
        pd_optim_opts_t o;
        opts(&o, algos[a], 4);
        o.lower = blo;
        o.upper = bhi;
        o.islands = 2;
        /* DE moves a coordinate that would cross a bound halfway there, so it
           nears an optimum on the bound by halves (16.0011 after 60) */
        o.iterations = algos[a] == PD_ALGO_DE ? 150 : 60;
        pd_optim_result_t r;
        int rc = pd_optim_cluster(c, mod, "boxed", &o, NULL, &r);
        cr_assert_eq(rc, 0, "%s: %s", pd_algo_name(algos[a]), r.error);
        cr_assert_lt(fabs(r.best_f[0] - 16), 1e-3, "%s pressed on the bound: %g",
                     pd_algo_name(algos[a]), r.best_f[0]);
        pd_optim_result_clear(&r);
    }
}

Test(optim_cluster, a_failing_fitness_is_the_in_process_error_with_the_best_before_it)
{
    pd_optim_opts_t o;
    opts(&o, PD_ALGO_PSO, 3);
    o.iterations = 50;
    pd_optim_result_t local, remote;
    cr_assert_eq(pd_optim_run(&o, fails, NULL, &local), PD_ETASK);
    cr_assert_eq(pd_optim_cluster(c, mod, "fails", &o, NULL, &remote), PD_ETASK);
    cr_assert_str_eq(remote.error, local.error);
    cr_assert(strstr(remote.error, "island 1") && strstr(remote.error, "the model diverged"),
              "%s", remote.error);
    cr_assert_eq(remote.stop, PD_STOP_ERROR);
    cr_assert_eq(remote.iterations, 2);
    cr_assert(isfinite(remote.best_f[0]), "the best found before the failure is kept");
    pd_optim_result_clear(&local);
    pd_optim_result_clear(&remote);
}

Test(optim_cluster, a_nan_names_the_point_and_island)
{
    pd_optim_opts_t o;
    opts(&o, PD_ALGO_GA, 3);
    o.iterations = 50;
    pd_optim_result_t r;
    cr_assert_eq(pd_optim_cluster(c, mod, "nan_at_3", &o, NULL, &r), PD_ETASK);
    cr_assert(strstr(r.error, "NaN") && strstr(r.error, "island 2"), "%s", r.error);
    cr_assert_eq(r.iterations, 3);
    pd_optim_result_clear(&r);
}

Test(optim_cluster, a_crashing_fitness_fails_the_run_at_once)
{
    pd_optim_opts_t o;
    opts(&o, PD_ALGO_PSO, 3);
    o.iterations = 100000;
    pd_optim_result_t r;
    cr_assert_eq(pd_optim_cluster(c, mod, "crashes", &o, NULL, &r), PD_ECRASH, "%s", r.error);
    cr_assert(strstr(r.error, "node 1") && strstr(r.error, "signal 11"), "%s", r.error);
    cr_assert_eq(r.stop, PD_STOP_ERROR);
    pd_optim_result_clear(&r);
    /* the slots are free again: a run after it works */
    o.iterations = 5;
    cr_assert_eq(pd_optim_cluster(c, mod, "rastrigin", &o, NULL, &r), 0, "%s", r.error);
    pd_optim_result_clear(&r);
}

Test(optim_cluster, a_fitness_the_module_lacks_is_named)
{
    pd_optim_opts_t o;
    opts(&o, PD_ALGO_PSO, 3);
    o.iterations = 5;
    pd_optim_result_t r;
    cr_assert_neq(pd_optim_cluster(c, mod, "no_such_fitness", &o, NULL, &r), 0);
    cr_assert(strstr(r.error, "no_such_fitness"), "%s", r.error);
    pd_optim_result_clear(&r);
}

Test(optim_cluster, bad_options_are_refused_before_anything_starts)
{
    pd_optim_opts_t o;
    opts(&o, PD_ALGO_PSO, 3);
    o.iterations = 0; /* no stopping rule */
    pd_optim_result_t r;
    cr_assert_eq(pd_optim_cluster(c, mod, "rastrigin", &o, NULL, &r), PD_EINVAL);
    cr_assert(strstr(r.error, "stopping rule"), "%s", r.error);
    pd_optim_result_clear(&r);
    o.iterations = 5;
    o.islands = 9; /* more than the 4 slots */
    cr_assert_eq(pd_optim_cluster(c, mod, "rastrigin", &o, NULL, &r), PD_ENOSLOTS, "%s", r.error);
    pd_optim_result_clear(&r);
}

Test(optim_cluster, shared_data_and_the_modules_init_reach_the_fitness)
{
    double centre[3] = {0.5, -1.25, 2};
    pd_optim_opts_t o;
    opts(&o, PD_ALGO_CMAES, 3);
    o.islands = 2;
    o.budget = 4000;
    pd_optim_cluster_opts_t co = {.shared = centre, .shared_len = sizeof centre};
    pd_optim_result_t r;
    cr_assert_eq(pd_optim_cluster(c, mod, "shifted", &o, &co, &r), 0, "%s", r.error);
    cr_assert_lt(r.best_f[0], 1e-8);
    for (int j = 0; j < 3; j++)
        cr_assert_lt(fabs(r.best_x[j] - centre[j]), 1e-4);
    pd_optim_result_clear(&r);
    /* without the shared data the fitness says so */
    cr_assert_eq(pd_optim_cluster(c, mod, "shifted", &o, NULL, &r), PD_ETASK);
    cr_assert(strstr(r.error, "no shared point"), "%s", r.error);
    pd_optim_result_clear(&r);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls until node 0 has reported progress past iteration `it` (at most 60 s). */
static void wait_progress(uint64_t id, uint64_t it, pd_optim_status_t *st)
{
    for (int i = 0; i < 600; i++) {
        cr_assert_eq(pd_optim_status(c, id, st), 0, "%s", pd_client_error(c));
        if (st->has_progress && st->iteration > it)
            return;
        pd_optim_status_clear(st);
        sleep_ms(100);
    }
    cr_assert_fail("no progress past iteration %llu within 60 s", (unsigned long long) it);
}

Test(optim_cluster, submit_returns_an_id_to_poll_and_fetch_from_another_client)
{
    pd_optim_opts_t o;
    opts(&o, PD_ALGO_PSO, 2);
    o.iterations = 150;
    uint64_t id;
    cr_assert_eq(pd_optim_submit(c, mod, "slow", &o, NULL, &id), 0, "%s", pd_client_error(c));
    pd_optim_status_t st;
    wait_progress(id, 0, &st);
    cr_assert_eq(st.groups, 1);
    cr_assert(st.evaluations >= st.iteration * 4 * 40, "evaluations %llu at iteration %llu",
              (unsigned long long) st.evaluations, (unsigned long long) st.iteration);
    cr_assert(isfinite(st.best_f[0]));
    pd_optim_status_clear(&st);
    pd_client_t *other = pd_harness_client(&h);
    pd_optim_result_t r;
    cr_assert_eq(pd_optim_fetch(other, id, 120000, &r), 0, "%s", r.error);
    cr_assert_eq(r.iterations, 150);
    cr_assert_eq(r.stop, PD_STOP_ITERATIONS);
    cr_assert_eq(r.evaluations, 150 * 4 * 40);
    /* and the same again from the first client, until released */
    pd_optim_result_t again;
    cr_assert_eq(pd_optim_fetch(c, id, 0, &again), 0, "%s", again.error);
    assert_same(&r, &again, "second fetch");
    cr_assert_eq(pd_task_release(other, id), 1);
    pd_optim_result_clear(&again);
    cr_assert_eq(pd_optim_fetch(c, id, 0, &again), PD_ENOJOB);
    pd_optim_result_clear(&again);
    pd_optim_result_clear(&r);
    pd_client_destroy(&other);
}

/* Starts a run of the slow fitness that would go on for ever and waits
   until it has made a few iterations. Returns its id. */
static uint64_t s_start_endless(void)
{
    pd_optim_opts_t o;
    opts(&o, PD_ALGO_PSO, 2);
    o.iterations = 10000000;
    uint64_t id;
    cr_assert_eq(pd_optim_submit(c, mod, "slow", &o, NULL, &id), 0, "%s", pd_client_error(c));
    pd_optim_status_t st;
    wait_progress(id, 2, &st);
    pd_optim_status_clear(&st);
    return id;
}

Test(optim_cluster, cancel_stops_a_running_optimisation)
{
    uint64_t id = s_start_endless();
    pd_optim_status_t st;
    cr_assert_eq(pd_optim_cancel(c, id), 1);
    pd_optim_result_t r;
    cr_assert_eq(pd_optim_fetch(c, id, 30000, &r), PD_ECANCELLED, "%s", r.error);
    cr_assert_eq(r.stop, PD_STOP_CANCELLED);
    pd_optim_result_clear(&r);
    cr_assert_eq(pd_optim_status(c, id, &st), 0);
    cr_assert_eq(st.state, PD_TASK_CANCELLED);
    pd_optim_status_clear(&st);
    pd_task_release(c, id);
}

Test(optim_cluster, stop_ends_every_island_after_its_iteration_keeping_the_best_point)
{
    uint64_t id = s_start_endless();
    cr_assert_eq(pd_optim_stop(c, id), 1);
    cr_assert_eq(pd_optim_stop(c, id), 1, "asking twice is harmless");
    pd_optim_result_t r;
    cr_assert_eq(pd_optim_fetch(c, id, 30000, &r), 0, "%s", r.error ? r.error : "");
    cr_assert_eq(r.stop, PD_STOP_CANCELLED, "stop %s", pd_optim_stop_name(r.stop));
    cr_assert_eq(r.code, 0);
    cr_assert_geq(r.iterations, 3);
    cr_assert_lt(r.iterations, 10000000);
    cr_assert_eq(r.islands, 4);
    cr_assert_eq(r.history_len, r.iterations, "every island stopped at the same iteration");
    cr_assert(isfinite(r.best_f[0]), "the best point is kept");
    for (int d = 0; d < 2; d++)
        cr_assert(r.best_x[d] >= lo[d] && r.best_x[d] <= hi[d]);
    /* The best value is the fitness of the best point, and the last
       history entry of its island. */
    cr_assert_eq(pd_optim_history(&r, r.best_island[0], 0, r.iterations - 1), r.best_f[0]);
    pd_optim_result_clear(&r);
    cr_assert_eq(pd_optim_stop(c, id), 0, "an ended run is not stopped again");
    pd_task_release(c, id);
}

Test(optim_cluster, ctrl_c_on_the_command_line_stops_the_run_and_prints_its_best_point)
{
    char *path = pd_harness_module(&h, "fitcli.c", MODULE_SRC);
    char out_path[512];
    snprintf(out_path, sizeof out_path, "%s/optimize.out", h.dir);
    const char *submit = pd_harness_program("playdoh-submit");
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int null = open("/dev/null", O_WRONLY);
        if (fd < 0 || null < 0 || dup2(fd, 1) < 0 || dup2(null, 2) < 0)
            _exit(99);
        signal(SIGINT, SIG_DFL);
        execl(submit, submit, "--broker", h.endpoint, "optimize", "--algo", "pso", "--dim",
              "2", "--bounds", "-5.12:5.12", "--islands", "2", "--iterations", "10000000",
              path, "slow", (char *) NULL);
        _exit(98);
    }
    free(path);
    /* The run is task 1 of this test's broker: wait until it iterates. */
    pd_optim_status_t st;
    wait_progress(1, 2, &st);
    pd_optim_status_clear(&st);
    cr_assert_eq(kill(pid, SIGINT), 0);
    int status = 0;
    for (int i = 0; i < 600 && waitpid(pid, &status, WNOHANG) == 0; i++)
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    if (!WIFEXITED(status) && !WIFSIGNALED(status)) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        cr_assert_fail("playdoh-submit did not end within 30 s of Ctrl-C");
    }
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 130, "exit status %d",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    FILE *f = fopen(out_path, "r");
    cr_assert_not_null(f);
    char out[8192];
    size_t got = fread(out, 1, sizeof out - 1, f);
    fclose(f);
    out[got] = 0;
    cr_assert(strstr(out, "\"stop\":\"cancelled\""), "%s", out);
    cr_assert(strstr(out, "\"best_x\":[["), "the best point is printed: %s", out);
}

Test(optim_cluster, stop_on_the_command_line_ends_a_detached_run_with_its_best_point)
{
    char *path = pd_harness_module(&h, "fitstop.c", MODULE_SRC);
    const char *submit = pd_harness_program("playdoh-submit");
    char sub[1024];
    snprintf(sub, sizeof sub, "%s", submit);
    char *out = NULL;
    cr_assert_eq(pd_harness_run(&out, "'%s' --broker %s optimize --detach --algo pso --dim 2 "
                                "--bounds -5.12:5.12 --islands 2 --iterations 10000000 '%s' slow",
                                sub, h.endpoint, path), 0, "%s", out);
    cr_assert_str_eq(out, "t1\n");
    free(out);
    free(path);
    pd_optim_status_t st;
    wait_progress(1, 2, &st);
    pd_optim_status_clear(&st);
    cr_assert_eq(pd_harness_run(&out, "'%s' --broker %s stop t1 2>&1", sub, h.endpoint), 0, "%s",
                 out);
    cr_assert(strstr(out, "task t1 asked to stop"), "%s", out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "'%s' --broker %s optimize-fetch --wait 30 t1", sub,
                                h.endpoint), 0, "%s", out);
    cr_assert(strstr(out, "\"stop\":\"cancelled\"") && strstr(out, "\"best_x\":[["), "%s",
              out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "'%s' --broker %s stop t1 2>&1", sub, h.endpoint), 0);
    cr_assert(strstr(out, "had already ended"), "%s", out);
    free(out);
}

/* pd_optim_cluster calls the progress callback; a non-zero return stops the
   run after its iteration, keeping the best point (as in-process). */
static int s_stop_at_5(const pd_optim_progress_t *p, void *user)
{
    int *calls = user;
    ++*calls;
    cr_assert_eq(p->groups, 1);
    return p->iteration >= 5;
}

Test(optim_cluster, the_progress_callback_sees_iterations_and_can_stop_the_run)
{
    pd_optim_opts_t o;
    opts(&o, PD_ALGO_PSO, 2);
    o.iterations = 10000000;
    int calls = 0;
    o.progress = s_stop_at_5;
    o.progress_user = &calls;
    pd_optim_result_t r;
    cr_assert_eq(pd_optim_cluster(c, mod, "slow", &o, NULL, &r), 0, "%s",
                 r.error ? r.error : "");
    cr_assert_geq(calls, 1);
    cr_assert_eq(r.stop, PD_STOP_CANCELLED);
    cr_assert_geq(r.iterations, 5);
    cr_assert(isfinite(r.best_f[0]));
    pd_optim_result_clear(&r);
}
