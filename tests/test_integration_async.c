/* Integration tests of the asynchronous interface: a real broker and real
   workers as processes on loopback, driven through libplaydoh-client. */
#include "pd_harness.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *MODULE_SRC =
    "#include <playdoh_task.h>\n"
    "#include <signal.h>\n"
    "#include <stdlib.h>\n"
    "#include <time.h>\n"
    "PD_TASK_DOUBLE(square, x) { return x * x; }\n"
    "static void s_sleep_ms(double ms) {\n"
    "    struct timespec ts = {(time_t) (ms / 1000), (long) ((ms - 1000 * (time_t) (ms / 1000)) * 1e6)};\n"
    "    nanosleep(&ts, NULL);\n"
    "}\n"
    "/* sleeps x ms, returns x */\n"
    "PD_TASK_DOUBLE(nap, x) { s_sleep_ms(x); return x; }\n"
    "/* crashes on 13 */\n"
    "PD_TASK_DOUBLE(fragile, x) { if (x == 13) raise(SIGSEGV); return x + 1; }\n"
    "/* fails politely on negative numbers */\n"
    "PD_TASK(checked, t) {\n"
    "    double x;\n"
    "    if (pd_arg_double(t, &x) || x < 0) return pd_task_fail(t, \"want a non-negative number\");\n"
    "    return pd_out_double(t, x);\n"
    "}\n";

static pd_harness_t h;
static pd_client_t *c;
static char mod[PD_HASH_HEX];

static void start(int workers, int cpus, const char *const *extra)
{
    pd_harness_start(&h, extra);
    for (int i = 0; i < workers; i++)
        pd_harness_add_worker(&h, cpus);
    c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, workers * cpus);
    char *path = pd_harness_module(&h, "testmod.c", MODULE_SRC);
    cr_assert_eq(pd_module_upload_file(c, path, mod), 0, "%s", pd_client_error(c));
    free(path);
}

static void stop(void)
{
    pd_client_destroy(&c);
    pd_harness_stop(&h);
}

TestSuite(async, .fini = stop, .timeout = 120);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

Test(async, ten_thousand_jobs_all_come_back_correct)
{
    start(1, 2, NULL);
    enum { N = 10000 };
    static double x[N];
    static uint64_t ids[N];
    static pd_result_t res[N];
    for (int i = 0; i < N; i++)
        x[i] = i;
    cr_assert_eq(pd_map_doubles(c, mod, "square", x, N, NULL, ids), N, "%s", pd_client_error(c));
    for (int i = 1; i < N; i++)
        cr_assert_neq(ids[i], ids[i - 1], "duplicate job ids");
    cr_assert_eq(pd_fetch(c, ids, N, 60000, res, NULL, NULL), N, "%s", pd_client_error(c));
    for (int i = 0; i < N; i++) {
        double y;
        cr_assert_eq(res[i].state, PD_JOB_DONE, "job %d: %s", i, res[i].error);
        cr_assert_eq(pd_result_double(&res[i], &y), 0);
        cr_assert_eq(y, (double) i * i, "job %d: %g", i, y);
    }
    pd_results_clear(res, N);
    cr_assert_eq(pd_release(c, ids, N), N);
    pd_job_state_t st;
    cr_assert_eq(pd_status(c, ids, 1, &st), 0);
    cr_assert_eq(st, PD_JOB_UNKNOWN, "a released job is forgotten");
}

Test(async, worker_killed_mid_batch_loses_nothing_and_duplicates_nothing)
{
    start(2, 1, NULL);
    enum { N = 400 };
    double x[N];
    uint64_t ids[N];
    static pd_result_t res[N];
    for (int i = 0; i < N; i++)
        x[i] = 5; /* 5 ms each */
    cr_assert_eq(pd_map_doubles(c, mod, "nap", x, N, NULL, ids), N, "%s", pd_client_error(c));
    /* Let both workers get going, then kill one without warning. */
    pd_job_state_t st[N];
    for (int tries = 0; tries < 200; tries++) {
        cr_assert_eq(pd_status(c, ids, N, st), 0);
        int done = 0;
        for (int i = 0; i < N; i++)
            done += st[i] == PD_JOB_DONE;
        if (done >= N / 5)
            break;
        usleep(20000);
    }
    kill(h.workers[0], SIGKILL);
    waitpid(h.workers[0], NULL, 0);
    h.workers[0] = 0;
    cr_assert_eq(pd_fetch(c, ids, N, 60000, res, NULL, NULL), N, "%s", pd_client_error(c));
    for (int i = 0; i < N; i++) {
        double y;
        cr_assert_eq(res[i].state, PD_JOB_DONE, "job %d: %s", i, res[i].error);
        cr_assert_eq(pd_result_double(&res[i], &y), 0);
        cr_assert_eq(y, 5.0);
    }
    pd_results_clear(res, N);
}

Test(async, crashing_task_fails_alone_and_the_others_finish)
{
    start(1, 2, NULL);
    enum { N = 40 };
    double x[N];
    uint64_t ids[N];
    pd_result_t res[N];
    for (int i = 0; i < N; i++)
        x[i] = i;
    cr_assert_eq(pd_map_doubles(c, mod, "fragile", x, N, NULL, ids), N);
    cr_assert_eq(pd_fetch(c, ids, N, 30000, res, NULL, NULL), N, "%s", pd_client_error(c));
    for (int i = 0; i < N; i++) {
        if (i == 13) {
            cr_assert_eq(res[i].state, PD_JOB_FAILED);
            cr_assert_eq(res[i].code, PD_ECRASH, "%s", pd_err_name(res[i].code));
            cr_assert(strstr(res[i].error, "signal 11") != NULL, "%s", res[i].error);
            continue;
        }
        double y;
        cr_assert_eq(res[i].state, PD_JOB_DONE, "job %d: %s", i, res[i].error);
        pd_result_double(&res[i], &y);
        cr_assert_eq(y, i + 1.0);
    }
    pd_results_clear(res, N);
}

Test(async, task_error_message_reaches_the_submitter)
{
    start(1, 1, NULL);
    double x[3] = {1, -1, 2};
    uint64_t ids[3];
    pd_result_t res[3];
    cr_assert_eq(pd_map_doubles(c, mod, "checked", x, 3, NULL, ids), 3);
    cr_assert_eq(pd_fetch(c, ids, 3, 30000, res, NULL, NULL), 3);
    cr_assert_eq(res[0].state, PD_JOB_DONE);
    cr_assert_eq(res[1].state, PD_JOB_FAILED);
    cr_assert_eq(res[1].code, PD_ETASK);
    cr_assert(strstr(res[1].error, "want a non-negative number") != NULL, "%s", res[1].error);
    cr_assert_eq(res[2].state, PD_JOB_DONE);
    pd_results_clear(res, 3);
}

Test(async, job_past_its_time_out_fails_and_the_slot_recovers)
{
    start(1, 1, NULL);
    double x[3] = {10000, 1, 2};
    uint64_t ids[3];
    pd_result_t res[3];
    pd_map_opts_t o = {.timeout_ms = 300};
    double t0 = now_s();
    cr_assert_eq(pd_map_doubles(c, mod, "nap", x, 3, &o, ids), 3);
    cr_assert_eq(pd_fetch(c, ids, 3, 30000, res, NULL, NULL), 3, "%s", pd_client_error(c));
    cr_assert_lt(now_s() - t0, 5.0, "the 10 s job was not stopped at its time-out");
    cr_assert_eq(res[0].state, PD_JOB_FAILED);
    cr_assert_eq(res[0].code, PD_ETIMEDOUT, "%s", res[0].error);
    cr_assert_eq(res[1].state, PD_JOB_DONE);
    cr_assert_eq(res[2].state, PD_JOB_DONE);
    pd_results_clear(res, 3);
}

Test(async, cancel_drops_queued_jobs_and_stops_running_ones)
{
    start(1, 2, NULL);
    enum { N = 50 };
    double x[N];
    uint64_t ids[N];
    pd_result_t res[N];
    for (int i = 0; i < N; i++)
        x[i] = 20000; /* 20 s each: only cancel ends them in time */
    cr_assert_eq(pd_map_doubles(c, mod, "nap", x, N, NULL, ids), N);
    pd_job_state_t st[N];
    for (int tries = 0; tries < 100; tries++) { /* wait until two run */
        pd_status(c, ids, N, st);
        int running = 0;
        for (int i = 0; i < N; i++)
            running += st[i] == PD_JOB_RUNNING;
        if (running == 2)
            break;
        usleep(50000);
    }
    double t0 = now_s();
    cr_assert_eq(pd_cancel(c, ids, N), N);
    cr_assert_eq(pd_fetch(c, ids, N, 10000, res, NULL, NULL), N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(res[i].state, PD_JOB_CANCELLED, "job %d is %s", i,
                     pd_job_state_name(res[i].state));
    pd_results_clear(res, N);
    /* The slots are free again: a short job runs at once. */
    double one = 3;
    uint64_t id;
    pd_result_t r;
    cr_assert_eq(pd_map_doubles(c, mod, "square", &one, 1, NULL, &id), 1);
    cr_assert_eq(pd_fetch(c, &id, 1, 10000, &r, NULL, NULL), 1);
    cr_assert_eq(r.state, PD_JOB_DONE);
    cr_assert_lt(now_s() - t0, 8.0);
    pd_results_clear(&r, 1);
}

Test(async, compile_error_and_missing_function_are_clear)
{
    start(1, 1, NULL);
    char *bad = pd_harness_module(&h, "broken.c", "int f(void) { return nope; }\n");
    char badmod[PD_HASH_HEX];
    cr_assert_eq(pd_module_upload_file(c, bad, badmod), 0);
    free(bad);
    double x = 1;
    uint64_t id;
    pd_result_t r;
    cr_assert_eq(pd_map_doubles(c, badmod, "f", &x, 1, NULL, &id), 1);
    cr_assert_eq(pd_fetch(c, &id, 1, 30000, &r, NULL, NULL), PD_ECOMPILE, "%s",
                 pd_client_error(c));
    cr_assert(strstr(pd_client_error(c), "nope") != NULL, "%s", pd_client_error(c));
    cr_assert_eq(r.state, PD_JOB_FAILED);
    cr_assert_eq(r.code, PD_ECOMPILE, "%s", pd_err_name(r.code));
    cr_assert(strstr(r.error, "nope") != NULL, "compiler message missing: %s", r.error);
    pd_results_clear(&r, 1);

    cr_assert_eq(pd_map_doubles(c, mod, "no_such_function", &x, 1, NULL, &id), 1);
    cr_assert_eq(pd_fetch(c, &id, 1, 30000, &r, NULL, NULL), PD_ENOFUNC);
    cr_assert_eq(r.code, PD_ENOFUNC, "%s", r.error);
    cr_assert(strstr(r.error, "no_such_function") != NULL, "%s", r.error);
    pd_results_clear(&r, 1);
}

Test(async, a_broken_module_fails_its_whole_map_once_before_running_it)
{
    start(2, 2, NULL);
    char *bad = pd_harness_module(&h, "broken.c", "#include <playdoh_task.h>\n"
                                                  "PD_TASK_DOUBLE(f, x) { return x + nope; }\n");
    char badmod[PD_HASH_HEX];
    cr_assert_eq(pd_module_upload_file(c, bad, badmod), 0);
    free(bad);
    enum { N = 200 };
    static double x[N];
    static uint64_t ids[N];
    static pd_result_t res[N];
    cr_assert_eq(pd_map_doubles(c, badmod, "f", x, N, NULL, ids), N, "%s", pd_client_error(c));
    cr_assert_eq(pd_fetch(c, ids, N, 30000, res, NULL, NULL), PD_ECOMPILE, "%s",
                 pd_client_error(c));
    cr_assert(strstr(pd_client_error(c), "broken.c:2:") != NULL,
              "the diagnostic names the user's file: %s", pd_client_error(c));
    int failed = 0, cancelled = 0;
    for (int i = 0; i < N; i++) {
        failed += res[i].state == PD_JOB_FAILED;
        cancelled += res[i].state == PD_JOB_CANCELLED;
    }
    cr_assert_eq(failed, 1, "one job met the compile error");
    cr_assert_eq(cancelled, N - 1, "the others never ran");
    pd_results_clear(res, N);
    /* The same function of a good module runs every job. */
    cr_assert_eq(pd_map_doubles(c, mod, "square", x, N, NULL, ids), N);
    cr_assert_eq(pd_fetch(c, ids, N, 30000, res, NULL, NULL), N, "%s", pd_client_error(c));
    pd_results_clear(res, N);
}

Test(async, unknown_module_and_unknown_ids_are_refused_clearly)
{
    start(1, 1, NULL);
    double x = 1;
    uint64_t id;
    char fake[PD_HASH_HEX];
    memset(fake, 'a', 64);
    fake[64] = 0;
    cr_assert_eq(pd_map_doubles(c, fake, "square", &x, 1, NULL, &id), PD_ENOMODULE);
    cr_assert(strstr(pd_client_error(c), "upload") != NULL, "%s", pd_client_error(c));
    uint64_t nobody = 987654321;
    pd_result_t r;
    cr_assert_eq(pd_fetch(c, &nobody, 1, 1000, &r, NULL, NULL), 1);
    cr_assert_eq(r.state, PD_JOB_UNKNOWN);
    pd_results_clear(&r, 1);
}

Test(async, overload_is_refused_with_a_clear_error)
{
    const char *extra[] = {"--max-jobs", "100", NULL};
    start(1, 1, extra);
    enum { N = 300 };
    double x[N];
    uint64_t ids[N];
    for (int i = 0; i < N; i++)
        x[i] = 1000;
    long got = pd_map_doubles(c, mod, "nap", x, N, NULL, ids);
    cr_assert(got == PD_EOVERLOAD || (got >= 0 && got < N), "accepted %ld of %d", got, N);
    cr_assert(strstr(pd_client_error(c), "max-jobs") != NULL, "%s", pd_client_error(c));
    pd_cancel(c, ids, N); /* ids of refused jobs are 0: unknown, harmless */
}

/* Each of two workers compiles the module before a clock starts (at its
   first job): two squares, one each. Their run time of microseconds gives
   each worker a credit of hundreds of jobs. */
static void warm_up(void)
{
    const double two[2] = {1, 2};
    uint64_t ids[2];
    pd_result_t res[2];
    cr_assert_eq(pd_map_doubles(c, mod, "square", two, 2, NULL, ids), 2);
    cr_assert_eq(pd_fetch(c, ids, 2, 60000, res, NULL, NULL), 2, "%s", pd_client_error(c));
    pd_results_clear(res, 2);
    pd_release(c, ids, 2);
    /* The first batch of a function runs one job alone first (the probe
       that makes a broken module fail once): a nap of 1 ms proves `nap`,
       so that the timed batches measure the scheduling alone. */
    const double one = 1;
    cr_assert_eq(pd_map_doubles(c, mod, "nap", &one, 1, NULL, ids), 1);
    cr_assert_eq(pd_fetch(c, ids, 1, 60000, res, NULL, NULL), 1, "%s", pd_client_error(c));
    pd_results_clear(res, 1);
    pd_release(c, ids, 1);
}

/* Runs n naps of ms[i] ms, returns the seconds until every result is in. */
static double s_batch(const double *ms, int n)
{
    uint64_t ids[16];
    pd_result_t res[16];
    cr_assert(n <= 16);
    double t0 = now_s();
    cr_assert_eq(pd_map_doubles(c, mod, "nap", ms, (size_t) n, NULL, ids), n, "%s",
                 pd_client_error(c));
    cr_assert_eq(pd_fetch(c, ids, (size_t) n, 20000, res, NULL, NULL), n, "%s",
                 pd_client_error(c));
    double took = now_s() - t0;
    for (int i = 0; i < n; i++)
        cr_assert_eq(res[i].state, PD_JOB_DONE, "job %d: %s", i, pd_job_state_name(res[i].state));
    pd_results_clear(res, (size_t) n);
    pd_release(c, ids, (size_t) n);
    return took;
}

Test(async, six_jobs_of_a_second_on_two_one_slot_workers_take_three_seconds_every_time,
     .timeout = 180)
{
    start(2, 1, NULL);
    /* The first timed run meets workers that could each take all six;
       the others, workers that measured jobs of 1 s. */
    warm_up();
    const double ms[6] = {1000, 1000, 1000, 1000, 1000, 1000};
    for (int run = 0; run < 20; run++) {
        double took = s_batch(ms, 6);
        cr_assert_lt(took, 3.6, "run %d took %.2f s: a worker idled while the other held "
                     "queued jobs", run, took);
    }
}

Test(async, an_idle_worker_takes_back_the_jobs_queued_behind_a_long_one)
{
    start(2, 1, NULL);
    /* Shared two and two: one worker gets the 3 s job and a 1 s one queued
       behind it, the other two of 1 s. That one is idle at 2 s and takes the
       queued one back (work stealing): done at 3 s, not 4. */
    const double ms[4] = {3000, 1000, 1000, 1000};
    /* Workers that measured jobs of microseconds: the queued one looks
       short by that measure, yet waits seconds. */
    warm_up();
    double took = s_batch(ms, 4);
    cr_assert_lt(took, 3.6, "took %.2f s: the queued job waited for the long one", took);
}
