/*  bench_async: speed of the asynchronous interface on the embedded cluster,
    with a raw libzmq request-reply round trip over the same transport
    measured in the same run as the baseline.

    Prints: raw round trip; Playdoh round trip of one trivial job and the
    ratio; throughput of 100,000 no-op jobs submitted as one batch; wall time
    of 200 jobs of 10 ms CPU each against the ideal (total CPU / slots).

    Then the cost of the broker's journal: three clusters started side by
    side (a broker without journal, one journalling with --journal-sync
    full, the default, and one with normal), each with a worker of SLOTS
    slots; ROUNDS rounds of JOBS no-op jobs in one batch go to each in turn,
    and the medians and their ratios to the no-journal baseline are printed,
    with the round trip of one job on each. The journals live in
    $PLAYDOH_BENCH_DIR (default /tmp), so that the disk under test is the
    one that would hold a real journal.

    Rounds take turns on the three clusters, so that each round's ratio
    compares runs made under the same load; the median of these ratios is
    printed, with each broker's CPU time per job (all its threads, from
    /proc), which does not depend on the load.

    With --latency, only the round trip of one job: raw libzmq between
    processes against six clusters (worker embedded or a process of its own;
    no journal, sync full, sync normal), SAMPLES round trips on each in
    turn, ROUNDS times (see s_latency).

    Usage: bench_async [SLOTS (2)] [JOBS (100000)] [ROUNDS (9)]
           bench_async --latency [SLOTS (2)] [SAMPLES (300)] [ROUNDS (5)]
*/
#include "bench_util.h"

#include "playdoh.h"
#include "pd_proc.h"

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* ---- raw libzmq baseline: DEALER -> ROUTER echo over TCP loopback ---------- */

static void *s_echo(void *arg)
{
    void *router = arg;
    for (;;) {
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, router, 0) < 0)
            break;
        zmq_msg_recv(&body, router, 0);
        int stop = zmq_msg_size(&body) == 4 && memcmp(zmq_msg_data(&body), "stop", 4) == 0;
        zmq_msg_send(&id, router, ZMQ_SNDMORE);
        zmq_msg_send(&body, router, 0);
        if (stop)
            break;
    }
    return NULL;
}

/* The echo side runs in a thread (in_process) or in a forked child process,
   as the broker does for a real client. */
static double raw_round_trip_us(int rounds, bool in_process)
{
    void *ctx = zmq_ctx_new();
    void *router = NULL;
    char ep[256];
    pthread_t th;
    pid_t child = -1;
    if (in_process) {
        router = zmq_socket(ctx, ZMQ_ROUTER);
        zmq_bind(router, "tcp://127.0.0.1:*");
        size_t len = sizeof ep;
        zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &len);
        pthread_create(&th, NULL, s_echo, router);
    } else {
        int fds[2];
        if (pipe(fds))
            return -1;
        child = fork();
        if (child == 0) {
            void *cctx = zmq_ctx_new();
            void *r = zmq_socket(cctx, ZMQ_ROUTER);
            zmq_bind(r, "tcp://127.0.0.1:*");
            size_t len = sizeof ep;
            zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, ep, &len);
            if (write(fds[1], ep, strlen(ep) + 1) < 0)
                _exit(1);
            s_echo(r);
            zmq_close(r);
            zmq_ctx_term(cctx);
            _exit(0);
        }
        close(fds[1]);
        ssize_t got = read(fds[0], ep, sizeof ep - 1);
        close(fds[0]);
        if (got <= 0)
            return -1;
        ep[got] = 0;
    }
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    zmq_connect(dealer, ep);
    char msg[64] = {0}, back[64];
    double *t = malloc(rounds * sizeof *t);
    for (int i = 0; i < rounds + 100; i++) {
        double t0 = now();
        zmq_send(dealer, msg, sizeof msg, 0);
        zmq_recv(dealer, back, sizeof back, 0);
        if (i >= 100)
            t[i - 100] = (now() - t0) * 1e6;
    }
    zmq_send(dealer, "stop", 4, 0);
    zmq_recv(dealer, back, sizeof back, 0);
    if (in_process)
        pthread_join(th, NULL);
    else
        waitpid(child, NULL, 0);
    double m = median(t, rounds);
    free(t);
    int linger = 0;
    zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(dealer);
    if (router)
        zmq_close(router);
    zmq_ctx_term(ctx);
    return m;
}

/* ---- clusters with and without a journal -------------------------------- */

typedef struct {
    const char *label;   /* what it measures */
    const char *sync;    /* --journal-sync, or NULL: --no-journal */
    bool embedded;       /* the worker runs in the broker's process (--worker-cpus) */
    pid_t broker, worker;
    char endpoint[256];
    char journal[PATH_MAX];
    pd_client_t *c;
    char mod[PD_HASH_HEX];
    double *jobs_s;      /* throughput of each round */
    double *submit_s;    /* time to submit the batch, each round */
    double rt_us;        /* median round trip of one job */
    double cpu_s;        /* broker CPU time (all its threads) over the rounds */
} s_cluster_t;

static int s_cluster_start(s_cluster_t *k, int slots, const char *dir, const char *modpath)
{
    char broker[PATH_MAX], worker[PATH_MAX], cache[PATH_MAX + 16], cpus[16];
    if (pd_proc_find("playdoh-broker", broker, sizeof broker) ||
        pd_proc_find("playdoh-worker", worker, sizeof worker))
        return -1;
    snprintf(k->journal, sizeof k->journal, "%s/bench-%s%s.journal", dir,
             k->sync ? k->sync : "none", k->embedded ? "-embedded" : "");
    snprintf(cache, sizeof cache, "%s/bench-cache", dir);
    snprintf(cpus, sizeof cpus, "%d", slots);
    char *bargv[20] = {broker, "--bind", "tcp://127.0.0.1:*", "--ready-fd", "3", "--log-level",
                       "warn"};
    int n = 7;
    if (k->embedded) {
        bargv[n++] = "--worker-cpus";
        bargv[n++] = cpus;
        bargv[n++] = "--cache";
        bargv[n++] = cache;
    }
    if (k->sync) {
        bargv[n++] = "--journal";
        bargv[n++] = k->journal;
        bargv[n++] = "--journal-sync";
        bargv[n++] = (char *) k->sync;
    } else {
        bargv[n++] = "--no-journal";
    }
    bargv[n] = NULL;
    int ready = -1;
    k->broker = pd_proc_spawn(bargv, &ready);
    if (k->broker <= 0 || pd_proc_read_line(ready, k->endpoint, sizeof k->endpoint, 10000))
        return -1;
    close(ready);
    char control[PATH_MAX + 32];
    snprintf(control, sizeof control, "%s/bench-%s.ctl", dir, k->sync ? k->sync : "none");
    char *wargv[] = {worker, "--broker", k->endpoint, "--cpus", cpus, "--cache", cache,
                     "--control", control, "--log-level", "warn", NULL};
    k->worker = k->embedded ? -1 : pd_proc_spawn(wargv, NULL);
    int err, w = 0, sl = 0;
    k->c = pd_client_new(k->endpoint, &err);
    for (int i = 0; k->c && i < 400 && sl < slots; i++) {
        if (pd_client_cluster_size(k->c, &w, &sl))
            return -1;
        if (sl < slots)
            usleep(50000);
    }
    if (!k->c || sl < slots || pd_module_upload_file(k->c, modpath, k->mod))
        return -1;
    return 0;
}

static void s_cluster_stop(s_cluster_t *k)
{
    pd_client_destroy(&k->c);
    if (k->worker > 0)
        pd_proc_stop(k->worker, 5000);
    pd_proc_stop(k->broker, 5000);
    if (k->sync) {
        char wal[PATH_MAX + 8];
        snprintf(wal, sizeof wal, "%s-wal", k->journal);
        unlink(k->journal);
        unlink(wal);
    }
}

/* One batch of njobs no-op jobs: submitted, all results fetched, released.
   Returns jobs per second, or -1. */
static double s_batch(pd_client_t *c, const char *mod, int njobs, double *xs, uint64_t *ids,
                      pd_result_t *res, double *submit_s)
{
    double t0 = now();
    long got = pd_map_doubles(c, mod, "noop", xs, njobs, NULL, ids);
    *submit_s = now() - t0;
    long ended = got == njobs ? pd_fetch(c, ids, njobs, 600000, res, NULL, NULL) : -1;
    double t = now() - t0;
    long ok = 0;
    for (int i = 0; ended == njobs && i < njobs; i++)
        ok += res[i].state == PD_JOB_DONE;
    pd_results_clear(res, njobs);
    pd_release(c, ids, njobs);
    return ok == njobs ? njobs / t : -1;
}

/* Times `rounds` round trips of one trivial job (submit, fetch its result;
   the release after each is not timed) into t[0 .. rounds), in µs, after
   `warm` untimed ones. Returns 0 or -1. */
static int s_round_trips(pd_client_t *c, const char *mod, int warm, int rounds, double *t)
{
    double x = 1;
    for (int i = 0; i < rounds + warm; i++) {
        uint64_t id;
        pd_result_t r;
        double t0 = now();
        if (pd_map_doubles(c, mod, "noop", &x, 1, NULL, &id) != 1 ||
            pd_fetch(c, &id, 1, 10000, &r, NULL, NULL) != 1 || r.state != PD_JOB_DONE)
            return -1;
        if (i >= warm)
            t[i - warm] = (now() - t0) * 1e6;
        pd_results_clear(&r, 1);
        pd_release(c, &id, 1);
    }
    return 0;
}

static double s_round_trip_us(pd_client_t *c, const char *mod, int rounds)
{
    double *t = malloc(rounds * sizeof *t);
    double m = t && s_round_trips(c, mod, 20, rounds, t) == 0 ? median(t, rounds) : -1;
    free(t);
    return m;
}

/* Journal on and off in the same run; returns 0 or 1. */
static int s_journal_cost(int slots, int njobs, int rounds, const char *modpath)
{
    const char *dir = getenv("PLAYDOH_BENCH_DIR") ? getenv("PLAYDOH_BENCH_DIR") : "/tmp";
    s_cluster_t k[3] = {{.label = "no journal (--no-journal)"},
                        {.label = "journal, --journal-sync full (default)", .sync = "full"},
                        {.label = "journal, --journal-sync normal", .sync = "normal"}};
    double *xs = calloc(njobs, sizeof *xs);
    uint64_t *ids = calloc(njobs, sizeof *ids);
    pd_result_t *res = calloc(njobs, sizeof *res);
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        k[i].jobs_s = calloc(rounds, sizeof *k[i].jobs_s);
        k[i].submit_s = calloc(rounds, sizeof *k[i].submit_s);
        if (s_cluster_start(&k[i], slots, dir, modpath)) {
            fprintf(stderr, "could not start the cluster '%s'\n", k[i].label);
            rc = 1;
        }
    }
    printf("\njournal cost: %d rounds of %d no-op jobs in one batch, taking turns on three "
           "clusters of %d slots; journals in %s\n", rounds, njobs, slots, dir);
    for (int r = 0; r < rounds && rc == 0; r++)
        for (int i = 0; i < 3 && rc == 0; i++) {
            double c0 = bench_cpu_s(k[i].broker);
            if ((k[i].jobs_s[r] = s_batch(k[i].c, k[i].mod, njobs, xs, ids, res,
                                          &k[i].submit_s[r])) < 0) {
                fprintf(stderr, "batch on '%s' failed: %s\n", k[i].label,
                        pd_client_error(k[i].c));
                rc = 1;
            }
            k[i].cpu_s += bench_cpu_s(k[i].broker) - c0;
        }
    for (int i = 0; i < 3 && rc == 0; i++)
        if ((k[i].rt_us = s_round_trip_us(k[i].c, k[i].mod, 300)) < 0)
            rc = 1;
    if (rc == 0) {
        /* Rounds on the three clusters run back to back, so each round's
           ratio compares runs under the same load from elsewhere; the
           median of those ratios is the figure to trust on a busy machine. */
        double *ratio = calloc(rounds, sizeof *ratio);
        double base_cpu = k[0].cpu_s / ((double) rounds * njobs) * 1e6;
        for (int i = 0; i < 3; i++) {
            for (int r = 0; r < rounds; r++)
                ratio[r] = k[i].jobs_s[r] / k[0].jobs_s[r];
            double rm = median(ratio, rounds);
            double cpu_us = k[i].cpu_s / ((double) rounds * njobs) * 1e6;
            printf("  %-40s %8.0f jobs/s (median); ratio %.2f (median of rounds)%s\n",
                   k[i].label, median(k[i].jobs_s, rounds), rm,
                   i == 1 ? (rm >= 0.80 ? "; target >= 0.80: met" : "; target >= 0.80: NOT met")
                          : "");
            printf("  %-40s submit %.3f s (median); broker CPU %.2f us/job (%+.2f); round trip "
                   "of one job %.1f us\n", "", median(k[i].submit_s, rounds), cpu_us,
                   cpu_us - base_cpu, k[i].rt_us);
        }
        free(ratio);
        pd_broker_info_t info;
        if (pd_client_broker_info(k[1].c, &info) == 0)
            printf("  journal size after the runs (results released): %.1f MiB\n",
                   info.journal_bytes / 1048576.0);
    }
    for (int i = 0; i < 3; i++) {
        s_cluster_stop(&k[i]);
        free(k[i].jobs_s);
        free(k[i].submit_s);
    }
    free(xs);
    free(ids);
    free(res);
    return rc;
}

/* The round trip of one job alone (--latency): raw libzmq between
   processes, and six clusters of `slots` slots started side by side (the
   worker embedded in the broker's process or a process of its own; no
   journal, --journal-sync full, --journal-sync normal). Each of `rounds`
   rounds times `samples` round trips on each in turn, the raw baseline
   first, so that every configuration meets the same load; printed are the
   median and 90th percentile of all samples and the ratio of the median to
   the raw median. Returns 0 or 1. */
static int s_latency(int slots, int samples, int rounds, const char *modpath)
{
    const char *dir = getenv("PLAYDOH_BENCH_DIR") ? getenv("PLAYDOH_BENCH_DIR") : "/tmp";
    enum { NK = 6 };
    s_cluster_t k[NK] = {
        {.label = "embedded worker, no journal", .embedded = true},
        {.label = "embedded worker, journal sync full", .sync = "full", .embedded = true},
        {.label = "embedded worker, journal sync normal", .sync = "normal", .embedded = true},
        {.label = "worker process, no journal"},
        {.label = "worker process, journal sync full", .sync = "full"},
        {.label = "worker process, journal sync normal", .sync = "normal"}};
    size_t total = (size_t) samples * rounds;
    double *t[NK + 1];
    int rc = 0;
    for (int i = 0; i <= NK; i++)
        if (!(t[i] = calloc(total, sizeof *t[i])))
            rc = 1;
    for (int i = 0; i < NK && rc == 0; i++)
        if (s_cluster_start(&k[i], slots, dir, modpath)) {
            fprintf(stderr, "could not start the cluster '%s'\n", k[i].label);
            rc = 1;
        }
    for (int r = 0; r < rounds && rc == 0; r++) {
        double raw = raw_round_trip_us(samples, false);
        for (int j = 0; j < samples; j++)
            t[NK][(size_t) r * samples + j] = raw; /* the baseline's median of the round */
        for (int i = 0; i < NK && rc == 0; i++)
            if (s_round_trips(k[i].c, k[i].mod, 20, samples, t[i] + (size_t) r * samples)) {
                fprintf(stderr, "round trip on '%s' failed: %s\n", k[i].label,
                        pd_client_error(k[i].c));
                rc = 1;
            }
    }
    if (rc == 0) {
        double raw = median(t[NK], (int) total);
        printf("round trip of one trivial job: %d rounds of %d on each configuration, %d slots; "
               "journals in %s\n", rounds, samples, slots, dir);
        printf("  %-40s %8.1f us (median of the rounds' medians)\n",
               "raw libzmq DEALER/ROUTER, 2 processes", raw);
        for (int i = 0; i < NK; i++) {
            double m = median(t[i], (int) total);
            printf("  %-40s %8.1f us median, %8.1f us 90th percentile: %.2fx raw%s\n",
                   k[i].label, m, t[i][total * 9 / 10], m / raw,
                   i == 0 ? " (target <= 1.5x)" : "");
        }
    }
    for (int i = 0; i < NK; i++)
        s_cluster_stop(&k[i]);
    for (int i = 0; i <= NK; i++)
        free(t[i]);
    return rc;
}

int main(int argc, char **argv)
{
    bool latency = argc > 1 && strcmp(argv[1], "--latency") == 0;
    if (latency) {
        argv++;
        argc--;
    }
    int slots = argc > 1 ? atoi(argv[1]) : 2;
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
    int njobs = argc > 2 ? atoi(argv[2]) : latency ? 300 : 100000;
    int jrounds = argc > 3 ? atoi(argv[3]) : latency ? 5 : 9;
    if (slots < 1 || njobs < 1 || jrounds < 1) {
        fprintf(stderr, "usage: bench_async [SLOTS (2)] [JOBS (100000)] [ROUNDS (9)]\n"
                        "       bench_async --latency [SLOTS (2)] [SAMPLES (300)] [ROUNDS (5)]\n");
        return 2;
    }
    char path[] = "/tmp/playdoh-bench-XXXXXX.c";
    int fd = mkstemps(path, 2);
    if (fd < 0 || write(fd, BENCH_SRC, strlen(BENCH_SRC)) != (ssize_t) strlen(BENCH_SRC))
        return 1;
    close(fd);
    if (latency) {
        int lrc = s_latency(slots, njobs, jrounds, path);
        unlink(path);
        return lrc;
    }

    int err;
    pd_local_t *local = pd_local_start(slots, &err);
    if (!local) {
        fprintf(stderr, "local cluster: %s\n", pd_strerror(err));
        return 1;
    }
    pd_client_t *c = pd_client_new(pd_local_endpoint(local), &err);
    char mod[PD_HASH_HEX];
    if (!c || pd_module_upload_file(c, path, mod)) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }
    printf("embedded cluster: %d slots, %s\n", slots, pd_local_endpoint(local));

    /* Round trip of one trivial job, against raw libzmq. */
    int rounds = 1000;
    double raw = raw_round_trip_us(rounds, false);
    double raw_thread = raw_round_trip_us(rounds, true);
    double *t = malloc(rounds * sizeof *t);
    pd_result_t r;
    uint64_t id;
    double x = 1;
    for (int i = 0; i < rounds + 50; i++) {
        double t0 = now();
        if (pd_map_doubles(c, mod, "noop", &x, 1, NULL, &id) != 1 ||
            pd_fetch(c, &id, 1, 10000, &r, NULL, NULL) != 1 || r.state != PD_JOB_DONE) {
            fprintf(stderr, "round trip failed: %s\n", pd_client_error(c));
            return 1;
        }
        if (i >= 50)
            t[i - 50] = (now() - t0) * 1e6;
        pd_results_clear(&r, 1);
        pd_release(c, &id, 1);
    }
    double rt = median(t, rounds);
    free(t);
    printf("round trip, raw libzmq DEALER/ROUTER over tcp loopback, echo in another process: "
           "%6.1f us (median of %d)\n", raw, rounds);
    printf("round trip, raw libzmq DEALER/ROUTER over tcp loopback, echo in a thread:         "
           "%6.1f us\n", raw_thread);
    printf("round trip, one trivial job through Playdoh:                                     "
           "%6.1f us (median of %d): %.2fx the raw round trip between processes, %.2fx the "
           "in-process one (target <= 1.5x)\n", rt, rounds, rt / raw, rt / raw_thread);

    /* Throughput of njobs no-op jobs submitted as one batch. */
    double *xs = calloc(njobs, sizeof *xs);
    uint64_t *ids = calloc(njobs, sizeof *ids);
    pd_result_t *res = calloc(njobs, sizeof *res);
    double t0 = now();
    long got = pd_map_doubles(c, mod, "noop", xs, njobs, NULL, ids);
    double t_sub = now() - t0;
    long ended = got == njobs ? pd_fetch(c, ids, njobs, 600000, res, NULL, NULL) : -1;
    double t_all = now() - t0;
    if (ended != njobs) {
        fprintf(stderr, "throughput run failed: %s\n", pd_client_error(c));
        return 1;
    }
    long ok = 0;
    for (int i = 0; i < njobs; i++)
        ok += res[i].state == PD_JOB_DONE;
    pd_results_clear(res, njobs);
    pd_release(c, ids, njobs);
    printf("throughput, %d no-op jobs in one batch: %.0f jobs/s (submit %.3f s, all results "
           "%.3f s, %ld done; target >= 200000)\n", njobs, njobs / t_all, t_sub, t_all, ok);

    /* 200 jobs of 10 ms CPU: efficiency against total CPU / slots. */
    int nb = 200;
    for (int i = 0; i < nb; i++)
        xs[i] = 10;
    t0 = now();
    got = pd_map_doubles(c, mod, "burn", xs, nb, NULL, ids);
    ended = got == nb ? pd_fetch(c, ids, nb, 600000, res, NULL, NULL) : -1;
    double wall = now() - t0;
    pd_results_clear(res, nb);
    pd_release(c, ids, nb);
    double ideal = nb * 0.010 / slots;
    printf("efficiency, %d jobs of 10 ms CPU on %d slots: wall %.3f s, ideal %.3f s, %.1f %% "
           "(target >= 97 %%)\n", nb, slots, wall, ideal, 100 * ideal / wall);
    free(xs);
    free(ids);
    free(res);
    pd_client_destroy(&c);
    pd_local_stop(&local);
    int jrc = s_journal_cost(slots, njobs, jrounds, path);
    unlink(path);
    return ended == nb && jrc == 0 ? 0 : 1;
}
