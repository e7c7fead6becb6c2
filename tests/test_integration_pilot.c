/* Integration tests of what a resource manager does to a pilot worker: a
   real broker and real workers as processes on loopback. Slurm ends a job
   (scancel, time limit, pre-emption) by sending SIGTERM to every process of
   it, the worker's slot processes included: the worker must say `bye` and
   the broker requeue its jobs without counting an attempt, so that no job
   fails for it. A pilot also leaves by itself after its idle time-out.
   tests/slurm_pilots.sh does the same under a real Slurm. */
#include "pd_harness.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *MODULE_SRC =
    "#include <playdoh_task.h>\n"
    "#include <time.h>\n"
    "/* sleeps x ms, returns x */\n"
    "PD_TASK_DOUBLE(nap, x) {\n"
    "    struct timespec ts = {0, (long) (x * 1e6)};\n"
    "    nanosleep(&ts, NULL);\n"
    "    return x;\n"
    "}\n";

static pd_harness_t h;
static pd_client_t *c;
static char mod[PD_HASH_HEX];

static void stop(void)
{
    pd_client_destroy(&c);
    pd_harness_stop(&h);
}

TestSuite(pilot, .fini = stop, .timeout = 180);

static void upload(void)
{
    char *path = pd_harness_module(&h, "napmod.c", MODULE_SRC);
    cr_assert_eq(pd_module_upload_file(c, path, mod), 0, "%s", pd_client_error(c));
    free(path);
}

/* The children of pid (its slot processes), up to cap; returns how many. */
static int children_of(pid_t pid, pid_t *out, int cap)
{
    DIR *d = opendir("/proc");
    cr_assert_not_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) && n < cap) {
        char path[300], buf[512];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        char *close = strrchr(buf, ')'); /* after the command name */
        char state;
        long ppid;
        if (close && sscanf(close + 1, " %c %ld", &state, &ppid) == 2 && ppid == pid)
            out[n++] = (pid_t) atol(e->d_name);
    }
    closedir(d);
    return n;
}

/* Waits up to ms for pid to exit; returns its wait status, or -1. */
static int wait_exit(pid_t pid, int ms)
{
    for (int waited = 0; waited < ms; waited += 20) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        usleep(20000);
    }
    return -1;
}

static size_t count_done(const uint64_t *ids, size_t n)
{
    pd_job_state_t *st = calloc(n, sizeof *st);
    cr_assert_not_null(st);
    cr_assert_eq(pd_status(c, ids, n, st), 0, "%s", pd_client_error(c));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += st[i] == PD_JOB_DONE;
    free(st);
    return k;
}

Test(pilot, sigterm_to_a_worker_and_its_slots_requeues_its_jobs_without_losing_one)
{
    pd_harness_start(&h, NULL);
    int doomed = pd_harness_add_worker(&h, 2);
    pd_harness_add_worker(&h, 2);
    c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, 4);
    upload();
    enum { N = 60 };
    double x[N];
    uint64_t ids[N];
    for (int i = 0; i < N; i++)
        x[i] = 100 + i; /* ms */
    /* retries 1: a job whose worker counted as lost would fail (PD_ELOST). */
    pd_map_opts_t mo = {.retries = 1};
    cr_assert_eq(pd_map_doubles(c, mod, "nap", x, N, &mo, ids), N, "%s", pd_client_error(c));
    for (int i = 0; i < 200 && count_done(ids, N) < 6; i++)
        usleep(50000);
    /* As Slurm does, signal every process of the pilot: its slots first,
       then, a moment later, the worker itself. */
    pid_t w = h.workers[doomed], kids[16];
    int nk = children_of(w, kids, 16);
    cr_assert_eq(nk, 2, "the worker has %d slot processes, not 2", nk);
    for (int i = 0; i < nk; i++)
        cr_assert_eq(kill(kids[i], SIGTERM), 0);
    usleep(100000);
    cr_assert_eq(kill(w, SIGTERM), 0);
    int st = wait_exit(w, 20000);
    h.workers[doomed] = 0; /* reaped here */
    cr_assert_neq(st, -1, "the worker did not exit on SIGTERM");
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the worker ended with status %d", st);
    for (int i = 0; i < nk; i++)
        cr_expect(kill(kids[i], 0) == -1, "slot process %d outlived its worker", (int) kids[i]);
    static pd_result_t res[N];
    cr_assert_eq(pd_fetch(c, ids, N, 60000, res, NULL, NULL), N, "%s", pd_client_error(c));
    for (int i = 0; i < N; i++) {
        double y = -1;
        cr_expect_eq(res[i].state, PD_JOB_DONE, "job %d: %s", i,
                     res[i].error ? res[i].error : pd_job_state_name(res[i].state));
        if (res[i].state == PD_JOB_DONE) {
            cr_assert_eq(pd_result_double(&res[i], &y), 0);
            cr_expect_eq(y, x[i]);
        }
    }
    pd_results_clear(res, N);
}

Test(pilot, a_pilot_leaves_after_its_idle_time_out)
{
    pd_harness_start(&h, NULL);
    const char *idle[] = {"--idle-exit", "1.5", NULL};
    int pilot = pd_harness_add_worker_args(&h, 2, idle);
    c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, 2);
    upload();
    double x[8] = {300, 300, 300, 300, 300, 300, 300, 300};
    uint64_t ids[8];
    pd_result_t res[8];
    cr_assert_eq(pd_map_doubles(c, mod, "nap", x, 8, NULL, ids), 8, "%s", pd_client_error(c));
    cr_assert_eq(pd_fetch(c, ids, 8, 60000, res, NULL, NULL), 8, "%s", pd_client_error(c));
    for (int i = 0; i < 8; i++)
        cr_expect_eq(res[i].state, PD_JOB_DONE, "%s", res[i].error ? res[i].error : "");
    pd_results_clear(res, 8);
    /* Then nothing: it leaves with exit status 0, and the broker forgets it. */
    int st = wait_exit(h.workers[pilot], 30000);
    h.workers[pilot] = 0;
    cr_assert_neq(st, -1, "the idle pilot did not leave within 30 s");
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    int workers = -1, slots = -1;
    for (int i = 0; i < 100 && workers != 0; i++) {
        cr_assert_eq(pd_client_cluster_size(c, &workers, &slots), 0, "%s", pd_client_error(c));
        if (workers)
            usleep(50000);
    }
    cr_expect_eq(workers, 0, "the broker still counts the pilot that left");
    cr_expect_eq(slots, 0);
}
