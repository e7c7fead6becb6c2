/*  bench_optim_cluster: what running the optimisers on the cluster costs
    (issue 10, docs/performance.md "Optimisers on the cluster").

    (a) Throughput on the sphere, D = 10, population 1,000 per island, PSO:
        evaluations per second of one island in-process (pd_optim_run, the
        baseline) against the cluster path (pd_optim_cluster on an embedded
        cluster of 2 slots) with 2 islands, and with 1 island. The cluster
        figure is per island: evaluations / islands / node 0's run time
        (wall_s: from the nodes' start to their end, so the task's start
        and the module's compilation, paid once per run, are left out and
        printed apart). With 2 islands on 2 slots each island has a core, as
        the in-process island has one: the per-island rates compare the
        same work on one core, and the difference is what the cluster adds
        per iteration (two small exchanges with node 0, the migration, the
        progress reports) and what waiting for the slower island costs.
    (b) Scaling with a fitness of 1 ms per evaluation (the block of n points
        takes n ms: sleeping, so that the figure measures Playdoh rather than
        the machine's other load; "spin" burns the CPU instead): wall time
        of the same evaluations (the budget) with 1 and 2 islands of 40
        particles on the cluster, efficiency T1 / (2 T2).

    Each figure is the median of REPEAT runs, the in-process and cluster runs
    interleaved, so that a machine whose load changes biases neither.

    (c) "ipop": CMA-ES with its IPOP restarts on shifted Rastrigin 10-D
        (pd_optim_builtin's "rastrigin@1" and "@2"; on the cluster the same
        function in the module, its optimum sent as the shared data),
        10^5 evaluations in all: the runs solved (below 1e-8) of seeds 1 to
        SEEDS, one island in-process against ISLANDS islands on the cluster
        (one slot each; issue 20: islands must solve at least as often as
        one island).

    Usage: bench_optim_cluster [REPEAT (5)] [ITERATIONS (300)] [BUDGET_1MS (4000)]
                               [POPULATION (1000)] [sleep|spin]
           bench_optim_cluster ipop [SEEDS (20)] [ISLANDS (2)]
*/
#include "playdoh.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DIM 10

static const char *SRC =
    "#include <playdoh_fitness.h>\n"
    "#include <fcntl.h>\n"
    "#include <math.h>\n"
    "#include <stdio.h>\n"
    "#include <time.h>\n"
    "#include <unistd.h>\n"
    "PD_FITNESS(sphere, b, f) {\n"
    "    for (size_t i = 0; i < b->n; i++) {\n"
    "        const double *x = b->x + i * b->dim;\n"
    "        double s = 0;\n"
    "        for (size_t j = 0; j < b->dim; j++) s += x[j] * x[j];\n"
    "        f[i] = s;\n"
    "    }\n"
    "    return 0;\n"
    "}\n"
    "/* The sphere, recording the node process's CPU seconds since its first\n"
    "   call and the calls so far in <shared dir>/cpu-<island>. */\n"
    "static int fd = -1;\n"
    "static double first;\n"
    "static double calls;\n"
    "PD_FITNESS(sphere_cpu, b, f) {\n"
    "    struct timespec ts;\n"
    "    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);\n"
    "    double cpu = (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;\n"
    "    if (b->iteration == 0) {\n"
    "        char path[512];\n"
    "        snprintf(path, sizeof path, \"%.*s/cpu-%u\", (int) b->shared_len,\n"
    "                 (const char *) b->shared, (unsigned) b->island);\n"
    "        if (fd >= 0) close(fd);\n"
    "        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);\n"
    "        first = cpu;\n"
    "        calls = 0;\n"
    "    }\n"
    "    calls++;\n"
    "    double rec[2] = {cpu - first, calls};\n"
    "    if (fd < 0 || pwrite(fd, rec, sizeof rec, 0) != sizeof rec) return -1;\n"
    "    return sphere(b, f);\n"
    "}\n"
    "/* Rastrigin with its optimum moved to the shared data's point */\n"
    "PD_FITNESS(rastrigin_shifted, b, f) {\n"
    "    const double *o = b->shared;\n"
    "    if (!o || b->shared_len != b->dim * sizeof *o) return -1;\n"
    "    for (size_t i = 0; i < b->n; i++) {\n"
    "        double s = 10.0 * (double) b->dim;\n"
    "        for (size_t j = 0; j < b->dim; j++) {\n"
    "            double z = b->x[i * b->dim + j] - o[j];\n"
    "            s += z * z - 10.0 * cos(2.0 * 3.14159265358979323846 * z);\n"
    "        }\n"
    "        f[i] = s;\n"
    "    }\n"
    "    return 0;\n"
    "}\n"
    "static void values(const pd_fitness_block_t *b, double *f) {\n"
    "    for (size_t i = 0; i < b->n; i++) f[i] = b->x[i * b->dim] * b->x[i * b->dim];\n"
    "}\n"
    "/* 1 ms per point, asleep */\n"
    "PD_FITNESS(sleep_1ms, b, f) {\n"
    "    struct timespec ts = {(time_t) (b->n / 1000), (long) (b->n % 1000) * 1000000L};\n"
    "    nanosleep(&ts, NULL);\n"
    "    values(b, f);\n"
    "    return 0;\n"
    "}\n"
    "/* 1 ms per point, burning the CPU */\n"
    "PD_FITNESS(spin_1ms, b, f) {\n"
    "    struct timespec t0, t;\n"
    "    clock_gettime(CLOCK_MONOTONIC, &t0);\n"
    "    double want = 1e-3 * (double) b->n, spent;\n"
    "    do {\n"
    "        clock_gettime(CLOCK_MONOTONIC, &t);\n"
    "        spent = (double) (t.tv_sec - t0.tv_sec) + (double) (t.tv_nsec - t0.tv_nsec) / 1e9;\n"
    "    } while (spent < want);\n"
    "    values(b, f);\n"
    "    return 0;\n"
    "}\n";

/* CPU seconds of this thread. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t) n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double L[DIM], H[DIM];

static void opts(pd_optim_opts_t *o, uint32_t islands, size_t pop)
{
    pd_optim_opts_init(o, PD_ALGO_PSO, DIM);
    o->lower = L;
    o->upper = H;
    o->popsize = pop;
    o->islands = islands;
    o->seed = 1;
}

/* The mean CPU seconds per iteration of the nodes of the last sphere_cpu
   run, from each node's first fitness call to its last. Exits when a
   record is missing. */
static double node_cpu(const char *dir, int islands)
{
    double per = 0;
    for (int i = 0; i < islands; i++) {
        char path[128];
        double rec[2] = {0, 0};
        snprintf(path, sizeof path, "%s/cpu-%d", dir, i);
        FILE *f = fopen(path, "rb");
        if (!f || fread(rec, sizeof rec, 1, f) != 1 || rec[1] < 2) {
            fprintf(stderr, "bench_optim_cluster: no CPU record in %s\n", path);
            exit(1);
        }
        fclose(f);
        per += rec[0] / (rec[1] - 1) / islands;
    }
    return per;
}

/* One in-process run of o with the builtin sphere; *wall and *cpu (this
   thread's) in seconds; with twin, a forked copy runs the same at the same
   time (two islands on two cores, without any exchange). Returns the
   evaluations. */
static unsigned long long inprocess(const pd_optim_opts_t *o, bool twin, double *wall, double *cpu)
{
    pd_fitness_fn sphere = pd_optim_builtin("sphere", NULL, NULL);
    pid_t child = twin ? fork() : 0;
    if (child < 0)
        exit(1);
    pd_optim_result_t r;
    double t0 = now(), c0 = cpu_now();
    if (pd_optim_run(o, sphere, NULL, &r) != 0)
        exit(1);
    *wall = now() - t0;
    *cpu = cpu_now() - c0;
    unsigned long long ev = r.evaluations;
    pd_optim_result_clear(&r);
    if (twin && child == 0)
        _exit(0);
    if (twin)
        waitpid(child, NULL, 0);
    return ev;
}

/* One cluster run; returns node 0's run time, *total the client's wall
   time, *evals the evaluations. co: NULL or the shared data. Exits on
   failure. */
static double cluster(pd_client_t *c, const char *mod, const char *fn, const pd_optim_opts_t *o,
                      const pd_optim_cluster_opts_t *co, double *total,
                      unsigned long long *evals)
{
    pd_optim_result_t r;
    double t0 = now();
    if (pd_optim_cluster(c, mod, fn, o, co, &r) != 0) {
        fprintf(stderr, "bench_optim_cluster: %s\n", r.error);
        exit(1);
    }
    *total = now() - t0;
    *evals = r.evaluations;
    double wall = r.wall_s;
    pd_optim_result_clear(&r);
    return wall;
}

/* (c): solved runs of IPOP on shifted Rastrigin, one island in-process
   against `islands` on the cluster. */
static int s_ipop(pd_client_t *c, const char *mod, int seeds, uint32_t islands)
{
    printf("## (c) CMA-ES (IPOP), shifted Rastrigin %d-D, 10^5 evaluations, seeds 1 to %d: "
           "runs solved (< 1e-8)\n\n| function | 1 island in-process | %u islands on the "
           "cluster |\n|---|---|---|\n", DIM, seeds, (unsigned) islands);
    for (int k = 1; k <= 2; k++) {
        char name[32];
        snprintf(name, sizeof name, "rastrigin@%d", k);
        double xs[DIM];
        pd_fitness_fn fn = pd_optim_builtin(name, NULL, NULL);
        if (!fn || pd_optim_builtin_optimum(name, DIM, xs) != 0)
            return 1;
        pd_optim_cluster_opts_t co = {.shared = xs, .shared_len = sizeof xs};
        int in = 0, cl = 0;
        for (int seed = 1; seed <= seeds; seed++) {
            pd_optim_opts_t o;
            pd_optim_opts_init(&o, PD_ALGO_CMAES, DIM);
            o.lower = L;
            o.upper = H;
            o.budget = 100000;
            o.seed = (uint64_t) seed;
            pd_optim_result_t r;
            if (pd_optim_run(&o, fn, NULL, &r) != 0) {
                fprintf(stderr, "bench_optim_cluster: %s\n", r.error);
                return 1;
            }
            in += r.best_f[0] < 1e-8;
            pd_optim_result_clear(&r);
            o.islands = islands;
            if (pd_optim_cluster(c, mod, "rastrigin_shifted", &o, &co, &r) != 0) {
                fprintf(stderr, "bench_optim_cluster: %s\n", r.error);
                return 1;
            }
            cl += r.best_f[0] < 1e-8;
            pd_optim_result_clear(&r);
        }
        printf("| %s | %d of %d | %d of %d |\n", name, in, seeds, cl, seeds);
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    bool ipop = argc > 1 && strcmp(argv[1], "ipop") == 0;
    if (ipop) { /* the mode's own arguments follow it */
        argv++;
        argc--;
    }
    int repeat = argc > 1 ? atoi(argv[1]) : ipop ? 20 : 5;
    uint32_t ipop_islands = ipop && argc > 2 ? (uint32_t) atoi(argv[2]) : 2;
    unsigned long long iters = !ipop && argc > 2 ? strtoull(argv[2], NULL, 10) : 300;
    unsigned long long budget1 = argc > 3 ? strtoull(argv[3], NULL, 10) : 4000;
    size_t pop = argc > 4 ? strtoul(argv[4], NULL, 10) : 1000;
    const char *slow = argc > 5 && strcmp(argv[5], "spin") == 0 ? "spin_1ms" : "sleep_1ms";
    if (repeat < 1 || repeat > 100 || iters < 10 || budget1 < 400 || pop < 10 ||
        pop > 1000000) {
        fprintf(stderr, "usage: bench_optim_cluster [REPEAT 1..100] [ITERATIONS >= 10] "
                        "[BUDGET_1MS >= 400] [POPULATION 10..1000000] [sleep|spin]\n"
                        "       bench_optim_cluster ipop [SEEDS 1..100] [ISLANDS 1..8]\n");
        return 2;
    }
    if (ipop && (ipop_islands < 1 || ipop_islands > 8)) {
        fprintf(stderr, "bench_optim_cluster ipop: %u islands; give 1 to 8 (the embedded "
                        "cluster gets one slot per island)\n", (unsigned) ipop_islands);
        return 2;
    }
    for (int j = 0; j < DIM; j++) {
        L[j] = -5.12;
        H[j] = 5.12;
    }
    char dir[] = "/tmp/bench-optim-cluster-XXXXXX", path[64];
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof path, "%s/fit.c", dir);
    FILE *f = fopen(path, "w");
    if (!f || fputs(SRC, f) < 0 || fclose(f))
        return 1;
    int err = 0;
    /* 2 slots, or one per island of the ipop mode */
    pd_local_t *local = pd_local_start(ipop && ipop_islands > 2 ? (int) ipop_islands : 2, &err);
    pd_client_t *c = local ? pd_client_new(pd_local_endpoint(local), &err) : NULL;
    char mod[PD_HASH_HEX];
    if (!c || pd_module_upload_file(c, path, mod)) {
        fprintf(stderr, "bench_optim_cluster: %s\n", c ? pd_client_error(c) : pd_strerror(err));
        return 1;
    }
    unlink(path);
    /* the CPU records of sphere_cpu go to dir */
    pd_optim_cluster_opts_t cpu_co = {.shared = dir, .shared_len = strlen(dir)};
    double load[3] = {0};
    getloadavg(load, 3);
    printf("# bench_optim_cluster: %d repeats, load average %.1f, %ld cores online\n\n", repeat,
           load[0], sysconf(_SC_NPROCESSORS_ONLN));

    if (ipop) {
        int rc = s_ipop(c, mod, repeat, ipop_islands);
        rmdir(dir);
        pd_client_destroy(&c);
        pd_local_stop(&local);
        return rc;
    }

    /* (a) throughput */
    double *inproc = calloc((size_t) repeat, sizeof(double));
    double *c1 = calloc((size_t) repeat, sizeof(double)), *c2 = calloc((size_t) repeat,
                                                                          sizeof(double));
    double *start = calloc((size_t) repeat, sizeof(double));
    double *cpu_in = calloc((size_t) repeat, sizeof(double));
    double *cpu_c1 = calloc((size_t) repeat, sizeof(double));
    double *cpu_cl = calloc((size_t) repeat, sizeof(double));
    double *cpu_cn = calloc((size_t) repeat, sizeof(double));
    double *cpu_tw = calloc((size_t) repeat, sizeof(double));
    double *twin = calloc((size_t) repeat, sizeof(double));
    pd_optim_opts_t o;
    for (int rep = 0; rep < repeat + 1; rep++) { /* rep 0 warms up (compiles the module) */
        opts(&o, 1, pop);
        o.iterations = iters;
        double t, ct, tt, ctt;
        unsigned long long ev = inprocess(&o, false, &t, &ct);
        inprocess(&o, true, &tt, &ctt);
        double total, w1, w2;
        unsigned long long e1, e2;
        w1 = cluster(c, mod, "sphere_cpu", &o, &cpu_co, &total, &e1);
        double per1 = node_cpu(dir, 1);
        opts(&o, 2, pop);
        o.iterations = iters;
        w2 = cluster(c, mod, "sphere_cpu", &o, &cpu_co, &total, &e2);
        if (rep == 0)
            continue;
        double per2 = node_cpu(dir, 2);
        o.topology = PD_TOPO_NONE; /* the same without migration */
        cluster(c, mod, "sphere_cpu", &o, &cpu_co, &total, &e2);
        cpu_in[rep - 1] = ct / (double) iters;
        cpu_tw[rep - 1] = ctt / (double) iters;
        twin[rep - 1] = (double) ev / tt;
        cpu_c1[rep - 1] = per1;
        cpu_cl[rep - 1] = per2;
        cpu_cn[rep - 1] = node_cpu(dir, 2);
        inproc[rep - 1] = (double) ev / t;
        c1[rep - 1] = (double) e1 / w1;
        c2[rep - 1] = (double) e2 / 2.0 / w2;
        start[rep - 1] = total - w2;
    }
    double mi = median(inproc, repeat), m1 = median(c1, repeat), m2 = median(c2, repeat);
    double mt = median(twin, repeat);
    printf("## (a) sphere, D = %d, PSO, population %zu per island, %llu iterations\n\n", DIM, pop,
           iters);
    printf("| path | evaluations/s per island (median) | against in-process |\n|---|---|---|\n");
    printf("| in-process, 1 island (baseline) | %.3g | 1 |\n", mi);
    printf("| in-process, 1 island with a twin process running the same | %.3g | %.3f "
           "(%+.1f %%) |\n", mt, mt / mi, 100 * (mt / mi - 1));
    printf("| cluster, 1 island | %.3g | %.3f (%+.1f %%) |\n", m1, m1 / mi, 100 * (m1 / mi - 1));
    printf("| cluster, 2 islands on 2 slots | %.3g | %.3f (%+.1f %%) |\n", m2, m2 / mi,
           100 * (m2 / mi - 1));
    printf("\nper iteration: in-process %.1f µs, cluster 2 islands %.1f µs; start of a cluster "
           "run (submit to first iteration, and the fetch) %.1f ms (median)\n\n",
           1e6 * (double) pop / mi, 1e6 * (double) pop / m2, 1e3 * median(start, repeat));
    double ci = median(cpu_in, repeat), cc1 = median(cpu_c1, repeat), cc = median(cpu_cl, repeat);
    double ccn = median(cpu_cn, repeat), ctw = median(cpu_tw, repeat);
    printf("CPU per iteration and island (median; the node processes' own clock from their "
           "first fitness call to their last, the in-process thread's):\n\n"
           "| path | CPU µs per iteration | evaluations per CPU second against in-process |\n"
           "|---|---|---|\n"
           "| in-process, 1 island | %.1f | 1 |\n"
           "| in-process, 1 island with a twin process running the same | %.1f | %.3f (%+.1f %%) |\n"
           "| cluster, 1 island | %.1f | %.3f (%+.1f %%) |\n"
           "| cluster, 2 islands (ring, migrating every 10) | %.1f | %.3f (%+.1f %%) |\n"
           "| cluster, 2 islands without migration | %.1f | %.3f (%+.1f %%) |\n\n", 1e6 * ci,
           1e6 * ctw, ci / ctw, 100 * (ci / ctw - 1), 1e6 * cc1, ci / cc1, 100 * (ci / cc1 - 1), 1e6 * cc, ci / cc, 100 * (ci / cc - 1),
           1e6 * ccn, ci / ccn, 100 * (ci / ccn - 1));
    fflush(stdout);

    /* (b) scaling with a 1 ms fitness */
    double *t1 = calloc((size_t) repeat, sizeof(double)), *t2 = calloc((size_t) repeat,
                                                                          sizeof(double));
    double *eff = calloc((size_t) repeat, sizeof(double));
    unsigned long long ev1 = 0, ev2 = 0;
    for (int rep = 0; rep < repeat; rep++) {
        double total;
        opts(&o, 1, 40);
        o.budget = budget1;
        t1[rep] = cluster(c, mod, slow, &o, NULL, &total, &ev1);
        opts(&o, 2, 40);
        o.budget = budget1;
        t2[rep] = cluster(c, mod, slow, &o, NULL, &total, &ev2);
        eff[rep] = t1[rep] / (2 * t2[rep]);
    }
    double m_t1 = median(t1, repeat), m_t2 = median(t2, repeat);
    printf("## (b) a fitness of 1 ms per evaluation (%s), PSO, %llu evaluations\n\n", slow,
           ev1);
    printf("| islands | population per island | evaluations | wall time (median) |\n"
           "|---|---|---|---|\n");
    printf("| 1 | 40 | %llu | %.3f s |\n", ev1, m_t1);
    printf("| 2 | 40 | %llu | %.3f s |\n", ev2, m_t2);
    printf("\nefficiency T1 / (2 T2): %.1f %% (of the medians); median of the runs' "
           "efficiencies %.1f %%\n", 100 * m_t1 / (2 * m_t2), 100 * median(eff, repeat));
    free(inproc);
    free(c1);
    free(c2);
    free(start);
    free(cpu_in);
    free(cpu_cl);
    free(cpu_c1);
    free(cpu_cn);
    free(cpu_tw);
    free(twin);
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/cpu-%d", dir, i);
        unlink(path);
    }
    rmdir(dir);
    free(t1);
    free(t2);
    free(eff);
    pd_client_destroy(&c);
    pd_local_stop(&local);
    return 0;
}
