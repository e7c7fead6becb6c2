/*  bench_scale: one real broker against many workers, simulated from this
    process (tests/pd_simworkers.c: one DEALER socket per worker, the real
    worker protocol, jobs that answer with their argument).

    For each broker (started here as a playdoh-broker process, without a
    journal and then with one, default heartbeat), it measures:
    - its CPU while idle with no worker (5 s);
    - the time to register WORKERS workers of SLOTS slots: from the first
      socket until the broker counts them all (`hello`);
    - its CPU while idle with all of them registered (10 s, /proc/PID/stat
      utime + stime, as % of one core), the part of it that its ZeroMQ I/O
      thread used, and this process's meanwhile;
    - its resident memory per worker: (RSS with WORKERS workers - RSS with
      none) / WORKERS;
    - the throughput of JOBS no-op jobs submitted in one batch through the
      client library (pd_map_doubles, pd_fetch, every result checked, then
      pd_release), ROUNDS times, with WORKERS x SLOTS slots, and with the
      baseline in the same run: a second broker, started beside the first,
      with 2 workers of SLOTS slots. Rounds take turns on the two, so each
      round's ratio compares runs made under the same load from elsewhere
      (the baseline's run beside the first broker's idle workers); medians
      are printed, with the brokers' CPU per job.

    Targets from issue 15 (2,000 workers of 32 slots): idle CPU < 5 % of a
    core, registration < 10 s, throughput >= 50 % of the 2-worker figure.

    Usage: bench_scale [WORKERS (2000)] [SLOTS (32)] [JOBS (100000)] [ROUNDS (5)]
                       [--only none|journal] [--threads T] [--heartbeat-ms MS]
    Journals go to $PLAYDOH_BENCH_DIR (default /tmp) and are removed.
*/
#include "bench_util.h"

#include "pd_proc.h"
#include "pd_simworkers.h"
#include "playdoh.h"

#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_IDLE_S 10       /* idle CPU measured over this long */
#define S_IDLE0_S 5       /* ... and with no worker */
#define S_SETTLE_S 3      /* after registration, before measuring */

typedef struct {
    bool journal;
    const char *hb_ms;        /* --heartbeat-ms, or NULL for the default */             /* journal to path, else --no-journal */
    char path[PATH_MAX];      /* the journal */
    pid_t pid;                /* the broker */
    char endpoint[256];
    pd_client_t *c;
    char mod[PD_HASH_HEX];
} s_broker_t;

/* What one broker gave. */
typedef struct {
    double idle0_pct, idle_pct, io_pct, sim_pct; /* % of a core */
    double register_s;
    double rss0_mb, rss_mb;
    double *big, *base;                  /* jobs/s per round */
} s_figures_t;

static int s_broker_start(s_broker_t *k)
{
    char broker[PATH_MAX];
    if (pd_proc_find("playdoh-broker", broker, sizeof broker)) {
        fprintf(stderr, "playdoh-broker not found: set PLAYDOH_BINDIR to the build directory\n");
        return -1;
    }
    char *argv[16] = {broker, "--bind", "tcp://127.0.0.1:*", "--ready-fd", "3", "--log-level",
                      "warn"};
    int n = 7;
    if (k->journal) {
        const char *dir = getenv("PLAYDOH_BENCH_DIR") ? getenv("PLAYDOH_BENCH_DIR") : "/tmp";
        snprintf(k->path, sizeof k->path, "%s/bench-scale-%d-%p.journal", dir, (int) getpid(),
                 (void *) k);
        argv[n++] = "--journal";
        argv[n++] = k->path;
    } else {
        argv[n++] = "--no-journal";
    }
    if (k->hb_ms) {
        argv[n++] = "--heartbeat-ms";
        argv[n++] = (char *) k->hb_ms;
    }
    argv[n] = NULL;
    int ready = -1, err = 0;
    k->pid = pd_proc_spawn(argv, &ready);
    if (k->pid <= 0 || pd_proc_read_line(ready, k->endpoint, sizeof k->endpoint, 20000)) {
        fprintf(stderr, "the broker did not start\n");
        return -1;
    }
    close(ready);
    if (!(k->c = pd_client_new(k->endpoint, &err))) {
        fprintf(stderr, "cannot connect to the broker: %s\n", pd_strerror(err));
        return -1;
    }
    pd_client_set_timeout(k->c, 120000);
    if (pd_module_upload(k->c, "noop.c", PD_MODULE_C, BENCH_SRC, strlen(BENCH_SRC), k->mod)) {
        fprintf(stderr, "module upload: %s\n", pd_client_error(k->c));
        return -1;
    }
    return 0;
}

static void s_broker_stop(s_broker_t *k)
{
    pd_client_destroy(&k->c);
    if (k->pid > 0)
        pd_proc_stop(k->pid, 10000);
    if (k->journal) {
        char more[PATH_MAX + 8];
        unlink(k->path);
        snprintf(more, sizeof more, "%s-wal", k->path);
        unlink(more);
        snprintf(more, sizeof more, "%s-shm", k->path);
        unlink(more);
        snprintf(more, sizeof more, "%s.lock", k->path);
        unlink(more);
    }
}

/* Waits up to timeout_s until the broker counts `workers` workers; returns
   the seconds since t0 when it does, or -1. */
static double s_wait_workers(s_broker_t *k, int workers, double t0, double timeout_s)
{
    for (;;) {
        int w = -1, slots = 0;
        if (pd_client_cluster_size(k->c, &w, &slots)) {
            fprintf(stderr, "hello: %s\n", pd_client_error(k->c));
            return -1;
        }
        if (w == workers)
            return now() - t0;
        if (now() - t0 > timeout_s) {
            fprintf(stderr, "the broker counts %d workers after %.0f s, not %d\n", w, timeout_s,
                    workers);
            return -1;
        }
        usleep(20000);
    }
}

/* CPU seconds of the broker's ZeroMQ I/O threads ("ZMQbg/IO/N"), or 0. */
static double s_io_cpu_s(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int) pid);
    DIR *d = opendir(path);
    double cpu = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char file[512], name[64] = "";
        snprintf(file, sizeof file, "%s/%s/comm", path, e->d_name);
        FILE *f = fopen(file, "r");
        if (!f)
            continue;
        bool io = fgets(name, sizeof name, f) && strncmp(name, "ZMQbg/IO", 8) == 0;
        fclose(f);
        snprintf(file, sizeof file, "%s/%s/stat", path, e->d_name);
        if (io)
            cpu += bench_stat_cpu_s(file);
    }
    if (d)
        closedir(d);
    return cpu;
}

/* Percent of one core the broker used over s seconds; its ZeroMQ I/O
   threads' part into *io_pct and this process's into *self_pct (either may
   be NULL). */
static double s_idle_pct(pid_t pid, int s, double *io_pct, double *self_pct)
{
    double b0 = bench_cpu_s(pid), io0 = s_io_cpu_s(pid), m0 = bench_cpu_s(getpid());
    double t0 = now();
    sleep((unsigned) s);
    double t = now() - t0;
    if (self_pct)
        *self_pct = (bench_cpu_s(getpid()) - m0) / t * 100;
    if (io_pct)
        *io_pct = (s_io_cpu_s(pid) - io0) / t * 100;
    return (bench_cpu_s(pid) - b0) / t * 100;
}

/* pd_fetch's progress: counts the replies that brought results. */
static void s_count(size_t ended, size_t total, void *user)
{
    (void) ended;
    (void) total;
    (*(int *) user)++;
}

/* One batch of njobs no-op jobs: submitted, every result fetched and
   checked (the simulated workers echo the argument), released. Returns
   jobs per second, or -1; adds the broker's CPU seconds to *cpu_s. */
static double s_batch(s_broker_t *k, int njobs, const double *xs, uint64_t *ids,
                      pd_result_t *res, double *cpu_s)
{
    double c0 = bench_cpu_s(k->pid), m0 = bench_cpu_s(getpid()), t0 = now();
    long got = pd_map_doubles(k->c, k->mod, "noop", xs, (size_t) njobs, NULL, ids);
    double submit = now() - t0;
    int replies = 0; /* fetch replies that brought results */
    long ended = got == njobs ? pd_fetch(k->c, ids, (size_t) njobs, 600000, res, s_count, &replies)
                              : -1;
    double t = now() - t0, c = bench_cpu_s(k->pid) - c0, m = bench_cpu_s(getpid()) - m0;
    *cpu_s += c;
    printf("    %.3f s (submit %.3f s, %d fetch replies); CPU: broker %.2f s, this process "
           "(client and simulated workers) %.2f s\n", t, submit, replies, c, m);
    long ok = 0;
    for (int i = 0; ended == njobs && i < njobs; i++) {
        double x;
        ok += res[i].state == PD_JOB_DONE && pd_result_double(&res[i], &x) == 0 && x == xs[i];
    }
    if (ok != njobs)
        fprintf(stderr, "batch: %ld submitted, %ld ended, %ld right: %s\n", got, ended, ok,
                pd_client_error(k->c));
    pd_results_clear(res, ended > 0 ? (size_t) ended : 0);
    if (got > 0)
        pd_release(k->c, ids, (size_t) got);
    return ok == njobs ? njobs / t : -1;
}

/* Starts n simulated workers of `slots` slots on k's broker and waits until
   it counts them all. Returns them, or NULL; the time it took into *reg_s. */
static pd_simworkers_t *s_workers(s_broker_t *k, int n, int slots, int threads, double *reg_s)
{
    char why[512];
    pd_simworkers_opts_t o = {.endpoint = k->endpoint, .workers = n, .slots = slots,
                              .threads = threads};
    double t0 = now();
    pd_simworkers_t *sim = pd_simworkers_new(&o, why, sizeof why);
    if (!sim) {
        fprintf(stderr, "simulated workers: %s\n", why);
        return NULL;
    }
    if ((*reg_s = s_wait_workers(k, n, t0, 120)) < 0)
        pd_simworkers_destroy(&sim);
    return sim;
}

/* True when the simulated workers saw nothing wrong: no reset (the broker
   never forgot one), no bad message. */
static bool s_workers_ok(pd_simworkers_t *sim, const char *label)
{
    pd_simworkers_stats_t st;
    pd_simworkers_stats(sim, &st);
    if (st.resets || st.bad)
        fprintf(stderr, "%s: the broker reset %llu simulated workers; %llu bad messages\n",
                label, (unsigned long long) st.resets, (unsigned long long) st.bad);
    return !st.resets && !st.bad;
}

/* One broker with n workers against a second one, started beside it, with
   2: registration, idle and memory on the first alone, then `rounds`
   batches on each in turn, so that each round's ratio compares runs made
   under the same load from elsewhere. */
static int s_run(bool journal, const char *hb_ms, int n, int slots, int threads, int njobs,
                 int rounds)
{
    s_broker_t big = {.journal = journal, .hb_ms = hb_ms};
    s_broker_t base = {.journal = journal, .hb_ms = hb_ms};
    pd_simworkers_t *many = NULL, *two = NULL;
    s_figures_t f = {0};
    double *ratio = calloc((size_t) rounds, sizeof *ratio);
    double *xs = calloc((size_t) njobs, sizeof *xs);
    uint64_t *ids = calloc((size_t) njobs, sizeof *ids);
    pd_result_t *res = calloc((size_t) njobs, sizeof *res);
    f.big = calloc((size_t) rounds, sizeof *f.big);
    f.base = calloc((size_t) rounds, sizeof *f.base);
    for (int i = 0; i < njobs && xs; i++)
        xs[i] = i;
    printf("\nbrokers %s, heartbeat %s ms:\n",
           journal ? "with their journal (default sync)" : "without journal (--no-journal)",
           hb_ms ? hb_ms : "1000");
    int rc = ratio && xs && ids && res && f.big && f.base ? s_broker_start(&big) : -1;
    if (rc == 0) {
        f.rss0_mb = bench_mem(big.pid).rss;
        f.idle0_pct = s_idle_pct(big.pid, S_IDLE0_S, NULL, NULL);
        printf("  idle with no worker: %.2f %% of a core; RSS %.1f MB\n", f.idle0_pct,
               f.rss0_mb);
        fflush(stdout);
        if (!(many = s_workers(&big, n, slots, threads, &f.register_s)))
            rc = -1;
    }
    if (rc == 0) {
        printf("  %d workers x %d slots registered in %.2f s\n", n, slots, f.register_s);
        fflush(stdout);
        sleep(S_SETTLE_S);
        f.rss_mb = bench_mem(big.pid).rss;
        f.idle_pct = s_idle_pct(big.pid, S_IDLE_S, &f.io_pct, &f.sim_pct);
        printf("  idle with %d workers: broker %.2f %% of a core, of which its ZeroMQ I/O "
               "thread %.2f %% (this process %.1f %%); RSS %.1f MB (%.1f kB per worker)\n", n,
               f.idle_pct, f.io_pct, f.sim_pct, f.rss_mb, (f.rss_mb - f.rss0_mb) * 1024 / n);
        fflush(stdout);
        double reg2;
        if (s_broker_start(&base) || !(two = s_workers(&base, 2, slots, 1, &reg2)))
            rc = -1;
    }
    double big_cpu = 0, base_cpu = 0;
    for (int r = 0; r < rounds && rc == 0; r++) {
        printf("  round %d:\n", r + 1);
        if ((f.big[r] = s_batch(&big, njobs, xs, ids, res, &big_cpu)) < 0 ||
            (f.base[r] = s_batch(&base, njobs, xs, ids, res, &base_cpu)) < 0)
            rc = -1;
        else
            printf("    %d x %d slots: %.0f jobs/s; 2 x %d slots: %.0f jobs/s; ratio %.2f\n", n,
                   slots, f.big[r], slots, f.base[r], f.big[r] / f.base[r]);
        ratio[r] = rc == 0 ? f.big[r] / f.base[r] : 0;
        fflush(stdout);
    }
    if (many && !s_workers_ok(many, "many workers"))
        rc = -1;
    if (two && !s_workers_ok(two, "2 workers"))
        rc = -1;
    pd_simworkers_destroy(&many);
    pd_simworkers_destroy(&two);
    s_broker_stop(&big);
    s_broker_stop(&base);
    if (rc == 0) {
        double rb = median(f.big, rounds), rs = median(f.base, rounds);
        double rr = median(ratio, rounds);
        printf("  SUMMARY %s: %d x %d slots: registration %.2f s (target < 10: %s), idle CPU "
               "%.2f %% of a core (target < 5: %s; %.2f %% with no worker), %.1f kB RSS per "
               "worker; %d no-op jobs: %.0f jobs/s (broker %.2f µs CPU per job) against %.0f "
               "jobs/s with 2 x %d slots (%.2f µs); median ratio of rounds %.2f (target >= "
               "0.50: %s)\n", journal ? "journal" : "no journal", n, slots, f.register_s,
               f.register_s < 10 ? "met" : "MISSED", f.idle_pct, f.idle_pct < 5 ? "met" : "MISSED",
               f.idle0_pct, (f.rss_mb - f.rss0_mb) * 1024 / n, njobs, rb,
               big_cpu / ((double) rounds * njobs) * 1e6, rs, slots,
               base_cpu / ((double) rounds * njobs) * 1e6, rr, rr >= 0.5 ? "met" : "MISSED");
    }
    free(ratio);
    free(xs);
    free(ids);
    free(res);
    free(f.big);
    free(f.base);
    return rc;
}

int main(int argc, char **argv)
{
    int pos[4] = {2000, 32, 100000, 5}, npos = 0, threads = 0;
    const char *only = NULL, *hb_ms = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--heartbeat-ms") == 0 && i + 1 < argc && atoi(argv[i + 1]) > 0)
            hb_ms = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (npos < 4 && atoi(argv[i]) > 0)
            pos[npos++] = atoi(argv[i]);
        else {
            fprintf(stderr, "usage: bench_scale [WORKERS (2000)] [SLOTS (32)] [JOBS (100000)] "
                    "[ROUNDS (5)] [--only none|journal] [--threads T] [--heartbeat-ms MS]\n");
            return 2;
        }
    }
    if (only && strcmp(only, "none") != 0 && strcmp(only, "journal") != 0) {
        fprintf(stderr, "--only takes 'none' or 'journal', not '%s'\n", only);
        return 2;
    }
    /* The broker inherits this limit: it needs a descriptor per worker. */
    char why[512];
    if (pd_simworkers_raise_nofile(pos[0], why, sizeof why)) {
        fprintf(stderr, "%s\n", why);
        return 1;
    }
    setenv("PLAYDOH_CONFIG", "/dev/null", 1);
    printf("bench_scale: %d simulated workers x %d slots (%d slots), %d no-op jobs per batch, "
           "%d rounds; baseline 2 workers x %d slots; %ld CPUs, load average from "
           "/proc/loadavg: ", pos[0], pos[1], pos[0] * pos[1], pos[2], pos[3], pos[1],
           sysconf(_SC_NPROCESSORS_ONLN));
    FILE *la = fopen("/proc/loadavg", "r");
    char line[128] = "?";
    if (la && fgets(line, sizeof line, la))
        line[strcspn(line, "\n")] = 0;
    if (la)
        fclose(la);
    printf("%s\n", line);
    int rc = 0;
    if (!only || strcmp(only, "none") == 0)
        rc |= s_run(false, hb_ms, pos[0], pos[1], threads, pos[2], pos[3]);
    if (!only || strcmp(only, "journal") == 0)
        rc |= s_run(true, hb_ms, pos[0], pos[1], threads, pos[2], pos[3]);
    return rc ? 1 : 0;
}
