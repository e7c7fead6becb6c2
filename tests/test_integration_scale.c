/* Integration test of a broker with many workers (issue 15, "Scale,
   simulated"): 500 workers played from this process by pd_simworkers (one
   DEALER socket each, the real worker protocol, jobs that answer with
   their argument) against a real playdoh-broker process. The figures of
   2,000 workers are bench/bench_scale's (docs/performance.md). */
#include "pd_harness.h"
#include "pd_simworkers.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The workers never load it: the module only has to exist at the broker. */
static const char *SRC = "#include <playdoh_task.h>\nPD_TASK(noop, t) { (void) t; return 0; }\n";

static pd_harness_t h;
static pd_client_t *c;
static pd_simworkers_t *sim;

static void stop(void)
{
    pd_simworkers_destroy(&sim);
    pd_client_destroy(&c);
    pd_harness_stop(&h);
}

TestSuite(scale, .fini = stop, .timeout = 120);

/* A broker with 500 workers stopped (SIGSTOP) for 5 s in the middle of a
   batch, twice its workers' liveness: when it runs again, no worker is
   dropped, no attempt is counted (one attempt allowed: a counted loss
   would fail its job with PD_ELOST), each job ran exactly once on the
   workers and came back with its own result. */
Test(scale, a_broker_with_500_workers_stopped_5_s_mid_batch_loses_nothing)
{
    enum { W = 500, SLOTS = 2, N = 20000 };
    char why[512];
    /* The broker inherits the open-file limit: it holds a connection per
       worker. */
    cr_assert_eq(pd_simworkers_raise_nofile(W, why, sizeof why), 0, "%s", why);
    /* Heartbeats of 500 ms x liveness 5: 2.5 s of silence is a loss. */
    const char *flags[] = {"--heartbeat-ms", "500", NULL};
    pd_harness_start_logged(&h, flags);
    c = pd_harness_client(&h);
    /* Each job takes 400 ms: the batch lasts a few seconds. */
    pd_simworkers_opts_t o = {.endpoint = h.endpoint, .workers = W, .slots = SLOTS,
                              .run_ms = 400};
    sim = pd_simworkers_new(&o, why, sizeof why);
    cr_assert_not_null(sim, "%s", why);
    pd_harness_wait_slots(&h, c, W * SLOTS);
    char mod[PD_HASH_HEX];
    cr_assert_eq(pd_module_upload(c, "noop.c", PD_MODULE_C, SRC, strlen(SRC), mod), 0, "%s",
                 pd_client_error(c));

    static double x[N];
    static uint64_t ids[N];
    static pd_result_t res[N];
    for (int i = 0; i < N; i++)
        x[i] = i;
    pd_map_opts_t mo = {.retries = 1};
    cr_assert_eq(pd_map_doubles(c, mod, "noop", x, N, &mo, ids), N, "%s", pd_client_error(c));
    usleep(800 * 1000);
    pd_cluster_info_t info;
    cr_assert_eq(pd_cluster_info(c, &info), 0, "%s", pd_client_error(c));
    uint64_t unfinished = info.unfinished;
    pd_cluster_info_clear(&info);
    cr_assert_gt(unfinished, 0, "the batch ended before the broker was stopped");

    cr_assert_eq(kill(h.broker, SIGSTOP), 0);
    sleep(5);
    cr_assert_eq(kill(h.broker, SIGCONT), 0);

    cr_assert_eq(pd_fetch(c, ids, N, 60000, res, NULL, NULL), N, "%s", pd_client_error(c));
    for (int i = 0; i < N; i++) {
        double v = -1;
        cr_assert_eq(res[i].state, PD_JOB_DONE, "job %d: %s", i, res[i].error);
        cr_assert_eq(pd_result_double(&res[i], &v), 0);
        cr_assert_eq(v, x[i], "job %d came back with %g", i, v);
    }
    pd_results_clear(res, N);

    pd_simworkers_stats_t st;
    pd_simworkers_stats(sim, &st);
    cr_assert_eq(st.jobs, N, "the workers ran %llu jobs for %d", (unsigned long long) st.jobs, N);
    cr_assert_eq(st.resets, 0, "the broker forgot %llu workers", (unsigned long long) st.resets);
    cr_assert_eq(st.bad, 0);
    cr_assert_eq(st.registered, W);
    cr_assert_eq(pd_cluster_info(c, &info), 0, "%s", pd_client_error(c));
    uint64_t done = 0;
    for (size_t i = 0; i < info.nworkers; i++)
        done += info.workers[i].done;
    size_t nworkers = info.nworkers;
    pd_cluster_info_clear(&info);
    cr_assert_eq(nworkers, W, "the broker counts %zu workers", nworkers);
    cr_assert_eq(done, N, "the broker took %llu results", (unsigned long long) done);
    cr_assert_not(pd_harness_log_has(&h, "broker.log", " lost (", 0),
                  "a worker was declared lost after the broker's stop");
    cr_assert(pd_harness_log_has(&h, "broker.log", "did not run for", 0),
              "the broker did not say it had stalled");
}

/* A broker started under a soft open-file limit of 256 (a shell's default
   is often 1,024, under a far higher hard limit) raises it: 500 workers
   connect, each holding one of its descriptors. Before, the broker could
   not accept past its limit and libzmq retried at once, using a core,
   while the workers waited for ever. */
Test(scale, a_broker_under_a_low_open_file_limit_raises_it_for_500_workers)
{
    enum { W = 500 };
    struct rlimit rl, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2 * W + 512)
        cr_skip_test("the hard open-file limit (%llu) is too low for %d workers",
                     (unsigned long long) rl.rlim_max, W);
    low = rl;
    low.rlim_cur = 256;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    pd_harness_start_logged(&h, NULL); /* it inherits the low limit */
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    c = pd_harness_client(&h);
    char why[512];
    pd_simworkers_opts_t o = {.endpoint = h.endpoint, .workers = W, .slots = 1};
    sim = pd_simworkers_new(&o, why, sizeof why);
    cr_assert_not_null(sim, "%s", why);
    pd_harness_wait_slots(&h, c, W);
    cr_assert(pd_simworkers_wait_registered(sim, 10000));
    struct rlimit got;
    cr_assert_eq(prlimit(h.broker, RLIMIT_NOFILE, NULL, &got), 0);
    cr_assert_gt(got.rlim_cur, 2 * W, "the broker's soft limit is %llu",
                 (unsigned long long) got.rlim_cur);
    cr_assert_not(pd_harness_log_has(&h, "broker.log", "cannot accept", 0));
}
