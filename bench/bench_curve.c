/*  bench_curve: what CurveZMQ costs the asynchronous interface, measured in
    one run: two local clusters on loopback, each with its worker as its own
    process over TCP as on a real cluster (client -> broker -> worker), one
    without security and one with CurveZMQ on every connection (keys made
    for the run). They live side by side and take turns REPEATS times, and
    the medians are compared, so that a shared machine's load weighs on both.

    Prints for each: the median round trip of one trivial job; the
    throughput of a batch of no-op jobs; the time until the batch was
    accepted; the CPU time all the processes spent per job of the batch
    (client, brokers, workers and slots, from /proc: on a machine shared
    with other work this is the steadier measure of what CurveZMQ adds);
    the efficiency of 200 jobs of 10 ms CPU; and what CurveZMQ costs
    (target: at most 15 % of throughput). bench_async measures the
    embedded cluster against raw libzmq.

    Usage: bench_curve [SLOTS (2)] [JOBS (100000)] [REPEATS (5)]
*/
#include "bench_util.h"

#include "playdoh.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* CPU time (user + system, seconds) of this process and all its
   descendants (brokers, workers, slot processes), read from /proc: a
   measure of work that a loaded machine does not distort the way it
   distorts wall time. */
static double s_family_cpu_s(void)
{
    enum { MAXP = 4096 };
    static int pid[MAXP], ppid[MAXP];
    static double cpu[MAXP];
    int n = 0;
    long tick = sysconf(_SC_CLK_TCK);
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) && n < MAXP) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char path[300], buf[1024];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t got = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[got] = 0;
        char *rp = strrchr(buf, ')'); /* the command may hold spaces */
        unsigned long ut = 0, st = 0;
        int pp = 0;
        if (!rp || sscanf(rp + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &pp, &ut,
                          &st) != 3)
            continue;
        pid[n] = atoi(e->d_name);
        ppid[n] = pp;
        cpu[n] = (double) (ut + st) / (double) tick;
        n++;
    }
    if (d)
        closedir(d);
    /* Descendants of this process: grow the set until it stops changing. */
    static bool in[MAXP];
    double total = 0;
    for (int i = 0; i < n; i++)
        in[i] = pid[i] == getpid();
    for (bool grew = true; grew;) {
        grew = false;
        for (int i = 0; i < n; i++)
            for (int j = 0; !in[i] && j < n; j++)
                if (in[j] && ppid[i] == pid[j])
                    in[i] = grew = true;
    }
    for (int i = 0; i < n; i++)
        if (in[i])
            total += cpu[i];
    return total;
}

/* One embedded cluster and its client. */
typedef struct {
    bool secure;          /* CurveZMQ */
    pd_local_t *local;    /* the cluster */
    pd_client_t *c;       /* its client */
    char mod[PD_HASH_HEX];/* the benchmark module */
} s_cluster_t;

/* Starts a local cluster (secure: CurveZMQ on loopback with its own keys)
   and uploads the module at path; returns 0 or 1. */
static int s_open(s_cluster_t *k, bool secure, int slots, const char *path)
{
    int err;
    k->secure = secure;
    pd_local_opts_t lo = {.cpus = slots, .tcp_worker = true, .secure = secure};
    k->local = pd_local_start_opts(&lo, &err);
    if (!k->local) {
        fprintf(stderr, "local cluster: %s\n", pd_strerror(err));
        return 1;
    }
    k->c = pd_client_open(pd_local_endpoint(k->local), pd_local_client_opts(k->local), &err);
    if (!k->c || pd_module_upload_file(k->c, path, k->mod)) {
        fprintf(stderr, "setup failed: %s\n", k->c ? pd_client_error(k->c) : pd_strerror(err));
        return 1;
    }
    printf("local cluster, worker over TCP, %s: %d slots, %s\n",
           secure ? "CurveZMQ" : "no security", slots, pd_local_endpoint(k->local));
    return 0;
}

static void s_close(s_cluster_t *k)
{
    pd_client_destroy(&k->c);
    pd_local_stop(&k->local);
}

/* Round trips of one trivial job into t[0..rounds). Returns 0 or 1. */
static int s_round_trips(s_cluster_t *k, double *t, int rounds)
{
    pd_result_t r;
    uint64_t id;
    double x = 1;
    for (int i = 0; i < rounds; i++) {
        double t0 = now();
        if (pd_map_doubles(k->c, k->mod, "noop", &x, 1, NULL, &id) != 1 ||
            pd_fetch(k->c, &id, 1, 10000, &r, NULL, NULL) != 1 || r.state != PD_JOB_DONE) {
            fprintf(stderr, "round trip failed: %s\n", pd_client_error(k->c));
            return 1;
        }
        t[i] = (now() - t0) * 1e6;
        pd_results_clear(&r, 1);
        pd_release(k->c, &id, 1);
    }
    return 0;
}

/* Throughput of njobs no-op jobs submitted as one batch (jobs/s; -1 on
   failure); *submit_s gets the time until the batch was accepted. */
static double s_throughput(s_cluster_t *k, int njobs, double *submit_s, double *cpu_s)
{
    double *xs = calloc(njobs, sizeof *xs);
    uint64_t *ids = calloc(njobs, sizeof *ids);
    pd_result_t *res = calloc(njobs, sizeof *res);
    double c0 = s_family_cpu_s();
    double t0 = now();
    long got = pd_map_doubles(k->c, k->mod, "noop", xs, njobs, NULL, ids);
    *submit_s = now() - t0;
    long ended = got == njobs ? pd_fetch(k->c, ids, njobs, 600000, res, NULL, NULL) : -1;
    double all = now() - t0;
    *cpu_s = s_family_cpu_s() - c0;
    long ok = 0;
    for (int i = 0; ended == njobs && i < njobs; i++)
        ok += res[i].state == PD_JOB_DONE;
    if (ended == njobs) {
        pd_results_clear(res, njobs);
        pd_release(k->c, ids, njobs);
    }
    free(xs);
    free(ids);
    free(res);
    if (ok != njobs) {
        fprintf(stderr, "throughput run failed: %s\n", pd_client_error(k->c));
        return -1;
    }
    return njobs / all;
}

/* 200 jobs of 10 ms CPU: efficiency against total CPU / slots, percent. */
static double s_efficiency(s_cluster_t *k, int slots)
{
    enum { NB = 200 };
    double xs[NB];
    uint64_t ids[NB];
    static pd_result_t res[NB];
    for (int i = 0; i < NB; i++)
        xs[i] = 10;
    double t0 = now();
    long got = pd_map_doubles(k->c, k->mod, "burn", xs, NB, NULL, ids);
    long ended = got == NB ? pd_fetch(k->c, ids, NB, 600000, res, NULL, NULL) : -1;
    double wall = now() - t0;
    if (ended != NB)
        return -1;
    pd_results_clear(res, NB);
    pd_release(k->c, ids, NB);
    return 100 * (NB * 0.010 / slots) / wall;
}

int main(int argc, char **argv)
{
    int slots = argc > 1 ? atoi(argv[1]) : 2;
    int njobs = argc > 2 ? atoi(argv[2]) : 100000;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (slots < 1 || njobs < 1 || reps < 1 || reps > 100) {
        fprintf(stderr, "usage: bench_curve [SLOTS (2)] [JOBS (100000)] [REPEATS (5)]\n");
        return 2;
    }
    /* Built in build/bench/: the programs are one level up. */
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (!getenv("PLAYDOH_BINDIR") && sl > 0) {
        self[sl] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            strcpy(slash, "/..");
            setenv("PLAYDOH_BINDIR", self, 1);
        }
    }
    char path[] = "/tmp/playdoh-bench-XXXXXX.c";
    int fd = mkstemps(path, 2);
    if (fd < 0 || write(fd, BENCH_SRC, strlen(BENCH_SRC)) != (ssize_t) strlen(BENCH_SRC))
        return 1;
    close(fd);
    s_cluster_t k[2];
    memset(k, 0, sizeof k);
    int rc = s_open(&k[0], false, slots, path) || s_open(&k[1], true, slots, path);
    unlink(path);
    if (rc)
        return 1;

    /* Both clusters live side by side and take turns, so that the load of a
       shared machine weighs on both alike. */
    enum { ROUNDS = 200 };
    double *rt[2] = {malloc(reps * ROUNDS * sizeof(double)), malloc(reps * ROUNDS * sizeof(double))};
    double *tp[2] = {malloc(reps * sizeof(double)), malloc(reps * sizeof(double))};
    double *cp[2] = {malloc(reps * sizeof(double)), malloc(reps * sizeof(double))};
    double sub[2] = {0, 0}, warm[ROUNDS];
    for (int m = 0; m < 2 && !rc; m++)
        rc = s_round_trips(&k[m], warm, 50);
    for (int r = 0; r < reps && !rc; r++)
        for (int m = 0; m < 2 && !rc; m++) {
            rc = s_round_trips(&k[m], rt[m] + r * ROUNDS, ROUNDS);
            double s1 = 0;
            tp[m][r] = rc ? -1 : s_throughput(&k[m], njobs, &s1, &cp[m][r]);
            sub[m] += s1;
            rc |= tp[m][r] < 0;
        }
    double eff[2] = {-1, -1};
    for (int m = 0; m < 2 && !rc; m++)
        eff[m] = s_efficiency(&k[m], slots);
    s_close(&k[0]);
    s_close(&k[1]);
    double rtm[2] = {0, 0}, tpm[2] = {0, 0}, cpm[2] = {0, 0};
    for (int m = 0; m < 2; m++) {
        if (!rc) {
            rtm[m] = median(rt[m], reps * ROUNDS);
            tpm[m] = median(tp[m], reps);
            cpm[m] = median(cp[m], reps) * 1e6 / njobs;
        }
        free(rt[m]);
        free(tp[m]);
        free(cp[m]);
    }
    if (rc)
        return 1;
    printf("\nmedians of %d alternating repetitions (%d round trips and one batch of %d jobs "
           "each)\n", reps, ROUNDS, njobs);
    printf("%-54s %13s %13s %11s\n", "", "no security", "CurveZMQ", "CURVE cost");
    printf("%-54s %10.1f us %10.1f us %+9.1f %%\n", "round trip, one trivial job", rtm[0], rtm[1],
           100 * (rtm[1] / rtm[0] - 1));
    printf("%-54s %13.0f %13.0f %+9.1f %%  (target: no worse than -15 %%)\n",
           "throughput, no-op jobs in one batch (jobs/s)", tpm[0], tpm[1],
           100 * (tpm[1] / tpm[0] - 1));
    printf("%-54s %11.3f s %11.3f s\n", "  mean time until the batch is accepted", sub[0] / reps,
           sub[1] / reps);
    printf("%-54s %10.2f us %10.2f us %+9.1f %%  (all processes: client, broker, worker, "
           "slots)\n", "CPU time per job in the batch", cpm[0], cpm[1],
           100 * (cpm[1] / cpm[0] - 1));
    printf("%-54s %11.1f %% %11.1f %%\n", "efficiency, 200 jobs of 10 ms CPU (target >= 97 %)",
           eff[0], eff[1]);
    return 0;
}
