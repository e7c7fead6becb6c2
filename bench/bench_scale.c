/*  bench_scale: one real broker against many workers, simulated from this
    process (tests/pd_simworkers.c: one DEALER socket per worker, the real
    worker protocol, jobs that answer with their argument).

    For each broker (started here as a playdoh-broker process, without a
    journal and then with one, default heartbeat), it measures:
    - its CPU while idle with no worker (5 s);
    - the time to register WORKERS workers of SLOTS slots: from the first
      socket until the broker counts them all (`hello`);
    - its CPU while idle with all of them registered (10 s, /proc/PID/stat
      utime + stime, as % of one core), and this process's meanwhile;
    - its resident memory per worker: (RSS with WORKERS workers - RSS with
      none) / WORKERS;
    - the throughput of JOBS no-op jobs submitted in one batch through the
      client library (pd_map_doubles, pd_fetch, every result checked, then
      pd_release), ROUNDS times, with WORKERS x SLOTS slots, then with the
      baseline in the same run: 2 workers of SLOTS slots. Medians and their
      ratio are printed, with the broker's CPU per job.

    Targets from issue 15 (2,000 workers of 32 slots): idle CPU < 5 % of a
    core, registration < 10 s, throughput >= 50 % of the 2-worker figure.

    Usage: bench_scale [WORKERS (2000)] [SLOTS (32)] [JOBS (100000)] [ROUNDS (3)]
                       [--only none|journal] [--threads T]
    Journals go to $PLAYDOH_BENCH_DIR (default /tmp) and are removed.
*/
#include "bench_util.h"

#include "pd_proc.h"
#include "pd_simworkers.h"
#include "playdoh.h"

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
    const char *label;
    bool journal;             /* journal to path, else --no-journal */
    char path[PATH_MAX];      /* the journal */
    pid_t pid;                /* the broker */
    char endpoint[256];
    pd_client_t *c;
    char mod[PD_HASH_HEX];
} s_broker_t;

/* What one broker gave. */
typedef struct {
    double idle0_pct, idle_pct, sim_pct; /* % of a core */
    double register_s;
    double rss0_mb, rss_mb;
    double *big, *base;                  /* jobs/s per round */
    double big_cpu_us, base_cpu_us;      /* broker CPU per job */
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
        snprintf(k->path, sizeof k->path, "%s/bench-scale-%d.journal", dir, (int) getpid());
        argv[n++] = "--journal";
        argv[n++] = k->path;
    } else {
        argv[n++] = "--no-journal";
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

/* Percent of one core the broker (and this process) used over s seconds. */
static double s_idle_pct(pid_t pid, int s, double *self_pct)
{
    double b0 = bench_cpu_s(pid), m0 = bench_cpu_s(getpid()), t0 = now();
    sleep((unsigned) s);
    double t = now() - t0;
    if (self_pct)
        *self_pct = (bench_cpu_s(getpid()) - m0) / t * 100;
    return (bench_cpu_s(pid) - b0) / t * 100;
}

/* One batch of njobs no-op jobs: submitted, every result fetched and
   checked (the simulated workers echo the argument), released. Returns
   jobs per second, or -1; adds the broker's CPU seconds to *cpu_s. */
static double s_batch(s_broker_t *k, int njobs, const double *xs, uint64_t *ids,
                      pd_result_t *res, double *cpu_s)
{
    double c0 = bench_cpu_s(k->pid), t0 = now();
    long got = pd_map_doubles(k->c, k->mod, "noop", xs, (size_t) njobs, NULL, ids);
    long ended = got == njobs ? pd_fetch(k->c, ids, (size_t) njobs, 600000, res, NULL, NULL) : -1;
    double t = now() - t0;
    *cpu_s += bench_cpu_s(k->pid) - c0;
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

/* Starts n simulated workers of `slots` slots and runs `rounds` batches on
   them into rate[]; registration time into *reg_s, idle figures when
   measure_idle. Returns 0 or -1. */
static int s_phase(s_broker_t *k, int n, int slots, int threads, int njobs, int rounds,
                   bool measure_idle, s_figures_t *f, double *rate, double *cpu_us)
{
    char why[512];
    pd_simworkers_opts_t o = {.endpoint = k->endpoint, .workers = n, .slots = slots,
                              .threads = threads};
    double t0 = now();
    pd_simworkers_t *sim = pd_simworkers_new(&o, why, sizeof why);
    if (!sim) {
        fprintf(stderr, "simulated workers: %s\n", why);
        return -1;
    }
    double reg = s_wait_workers(k, n, t0, 120);
    int rc = reg < 0 ? -1 : 0;
    if (rc == 0 && measure_idle) {
        f->register_s = reg;
        printf("  %d workers x %d slots registered in %.2f s\n", n, slots, reg);
        fflush(stdout);
        sleep(S_SETTLE_S);
        f->rss_mb = bench_mem(k->pid).rss;
        f->idle_pct = s_idle_pct(k->pid, S_IDLE_S, &f->sim_pct);
        printf("  idle with %d workers: broker %.2f %% of a core (this process %.1f %%); RSS "
               "%.1f MB (%.1f kB per worker)\n", n, f->idle_pct, f->sim_pct, f->rss_mb,
               (f->rss_mb - f->rss0_mb) * 1024 / n);
        fflush(stdout);
    }
    double *xs = calloc((size_t) njobs, sizeof *xs);
    uint64_t *ids = calloc((size_t) njobs, sizeof *ids);
    pd_result_t *res = calloc((size_t) njobs, sizeof *res);
    for (int i = 0; i < njobs && xs; i++)
        xs[i] = i;
    double cpu_s = 0;
    for (int r = 0; r < rounds && rc == 0; r++) {
        if (!xs || !ids || !res || (rate[r] = s_batch(k, njobs, xs, ids, res, &cpu_s)) < 0)
            rc = -1;
        else
            printf("  %d x %d slots, round %d: %.0f jobs/s\n", n, slots, r + 1, rate[r]);
        fflush(stdout);
    }
    *cpu_us = cpu_s / ((double) rounds * njobs) * 1e6;
    free(xs);
    free(ids);
    free(res);
    pd_simworkers_stats_t st;
    pd_simworkers_stats(sim, &st);
    if (st.resets || st.bad) {
        fprintf(stderr, "the broker reset %llu simulated workers; %llu bad messages\n",
                (unsigned long long) st.resets, (unsigned long long) st.bad);
        rc = -1;
    }
    pd_simworkers_destroy(&sim);
    if (rc == 0 && s_wait_workers(k, 0, now(), 60) < 0)
        rc = -1;
    return rc;
}

static int s_run(s_broker_t *k, int n, int slots, int threads, int njobs, int rounds)
{
    s_figures_t f = {0};
    f.big = calloc((size_t) rounds, sizeof *f.big);
    f.base = calloc((size_t) rounds, sizeof *f.base);
    printf("\nbroker %s, heartbeat 1000 ms:\n", k->label);
    int rc = f.big && f.base ? s_broker_start(k) : -1;
    if (rc == 0) {
        f.rss0_mb = bench_mem(k->pid).rss;
        f.idle0_pct = s_idle_pct(k->pid, S_IDLE0_S, NULL);
        printf("  idle with no worker: %.2f %% of a core; RSS %.1f MB\n", f.idle0_pct,
               f.rss0_mb);
        rc = s_phase(k, n, slots, threads, njobs, rounds, true, &f, f.big, &f.big_cpu_us);
    }
    if (rc == 0)
        rc = s_phase(k, 2, slots, 1, njobs, rounds, false, &f, f.base, &f.base_cpu_us);
    s_broker_stop(k);
    if (rc == 0) {
        double big = median(f.big, rounds), base = median(f.base, rounds);
        printf("  SUMMARY %s: %d x %d slots: registration %.2f s (target < 10: %s), idle CPU "
               "%.2f %% of a core (target < 5: %s; %.2f %% with no worker), %.1f kB RSS per "
               "worker; %d no-op jobs: %.0f jobs/s (broker %.1f µs CPU per job) against %.0f "
               "jobs/s with 2 x %d slots (%.1f µs), ratio %.2f (target >= 0.50: %s)\n",
               k->label, n, slots, f.register_s, f.register_s < 10 ? "met" : "MISSED",
               f.idle_pct, f.idle_pct < 5 ? "met" : "MISSED", f.idle0_pct,
               (f.rss_mb - f.rss0_mb) * 1024 / n, njobs, big, f.big_cpu_us, base, slots,
               f.base_cpu_us, big / base, big / base >= 0.5 ? "met" : "MISSED");
    }
    free(f.big);
    free(f.base);
    return rc;
}

int main(int argc, char **argv)
{
    int pos[4] = {2000, 32, 100000, 3}, npos = 0, threads = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (npos < 4 && atoi(argv[i]) > 0)
            pos[npos++] = atoi(argv[i]);
        else {
            fprintf(stderr, "usage: bench_scale [WORKERS (2000)] [SLOTS (32)] [JOBS (100000)] "
                    "[ROUNDS (3)] [--only none|journal] [--threads T]\n");
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
    s_broker_t none = {.label = "without journal (--no-journal)"};
    s_broker_t journal = {.label = "with its journal (default sync)", .journal = true};
    if (!only || strcmp(only, "none") == 0)
        rc |= s_run(&none, pos[0], pos[1], threads, pos[2], pos[3]);
    if (!only || strcmp(only, "journal") == 0)
        rc |= s_run(&journal, pos[0], pos[1], threads, pos[2], pos[3]);
    return rc ? 1 : 0;
}
