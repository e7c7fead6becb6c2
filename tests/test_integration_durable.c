/* Integration tests of durability: a real broker with its journal, a real
   worker and clients, and the broker killed with SIGKILL in the middle of
   a 10,000-job batch (while it receives the batch, while the jobs run,
   while the results flow back), then started again on the same port and
   journal. Every job must complete exactly once in what the client
   receives, with the right result. Also: what a restart keeps (results,
   modules, ids), a damaged journal refused, a journal in use refused, and
   a journal that cannot be written refusing submits while serving what it
   has, and a result fetched before its commit still there after a crash. */
#include "pd_codec.h"
#include "pd_harness.h"
#include "pd_msg.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static const char *MODULE_SRC =
    "#include <playdoh_task.h>\n"
    "#include <time.h>\n"
    "/* x[0] squared: the other numbers only make the argument big */\n"
    "PD_TASK_VECTOR(head_squared, x, n) { (void) n; return x[0] * x[0]; }\n"
    "/* x squared after about 300 us */\n"
    "PD_TASK_DOUBLE(slow_square, x) {\n"
    "    struct timespec ts = {0, 300000};\n"
    "    nanosleep(&ts, NULL);\n"
    "    return x * x;\n"
    "}\n"
    "PD_TASK_DOUBLE(square, x) { return x * x; }\n";

enum { N = 10000 };

static pd_harness_t h;
static pd_client_t *c;    /* the client under test (used by one thread at a time) */
static pd_client_t *spy;  /* the main thread's own client, for watching */
static char mod[PD_HASH_HEX];

static void start(int cpus, const char *const *extra)
{
    pd_harness_start(&h, extra);
    pd_harness_add_worker(&h, cpus);
    c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, cpus);
    char *path = pd_harness_module(&h, "durable.c", MODULE_SRC);
    cr_assert_eq(pd_module_upload_file(c, path, mod), 0, "%s", pd_client_error(c));
    free(path);
    spy = pd_harness_client(&h);
}

static void stop(void)
{
    pd_client_destroy(&c);
    pd_client_destroy(&spy);
    pd_harness_stop(&h);
}

TestSuite(durable, .fini = stop, .timeout = 240);

/* A crash and a restart on the same port and journal. */
static void crash_and_restart(void)
{
    pd_harness_kill_broker(&h, SIGKILL);
    pd_harness_restart_broker(&h, NULL);
}

static uint64_t next_id_after_restart(void)
{
    double x = 1;
    uint64_t id = 0;
    cr_assert_eq(pd_map_doubles(spy, mod, "square", &x, 1, NULL, &id), 1, "%s",
                 pd_client_error(spy));
    return id;
}

/* How many jobs the broker knows with ids in [lo, hi). */
static uint64_t count_known(uint64_t lo, uint64_t hi)
{
    enum { STEP = 100000 };
    static uint64_t ids[STEP];
    static pd_job_state_t st[STEP];
    uint64_t known = 0;
    for (uint64_t a = lo; a < hi; a += STEP) {
        size_t k = hi - a < STEP ? (size_t) (hi - a) : STEP;
        for (size_t i = 0; i < k; i++)
            ids[i] = a + i;
        cr_assert_eq(pd_status(spy, ids, k, st), 0, "%s", pd_client_error(spy));
        for (size_t i = 0; i < k; i++)
            known += st[i] != PD_JOB_UNKNOWN;
    }
    return known;
}

/* Exactly the batch's N jobs exist: nothing was submitted twice. */
static void check_no_duplicates(void)
{
    uint64_t next = next_id_after_restart();
    cr_assert_gt(next, N, "ids go on after the highest used");
    cr_assert_eq(count_known(1, next), N, "jobs beside the batch's exist: a chunk was taken twice");
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return (x > y) - (x < y);
}

/* Every job i came back once, done, with value(i); ids are unique. */
static void check_results(const uint64_t *ids, pd_result_t *res, double (*value)(int))
{
    static uint64_t sorted[N];
    for (int i = 0; i < N; i++)
        cr_assert_neq(ids[i], 0, "job %d has no id", i);
    /* Distinct (chunks sent again after a restart may take later ids than
       the chunks after them, so the order is not checked). */
    memcpy(sorted, ids, sizeof sorted);
    qsort(sorted, N, sizeof *sorted, cmp_u64);
    for (int i = 1; i < N; i++)
        cr_assert_neq(sorted[i], sorted[i - 1], "id %llu was given twice",
                      (unsigned long long) sorted[i]);
    for (int i = 0; i < N; i++) {
        double y;
        cr_assert_eq(res[i].id, ids[i]);
        cr_assert_eq(res[i].state, PD_JOB_DONE, "job %d (id %llu): %s %s", i,
                     (unsigned long long) ids[i], pd_job_state_name(res[i].state),
                     res[i].error ? res[i].error : "");
        cr_assert_eq(pd_result_double(&res[i], &y), 0);
        cr_assert_eq(y, value(i), "job %d: %g instead of %g", i, y, value(i));
    }
}

static double sq(int i) { return (double) i * i; }

static int count_done(const uint64_t *ids)
{
    static pd_job_state_t st[N];
    if (pd_status(spy, ids, N, st) != 0)
        return -1;
    int done = 0;
    for (int i = 0; i < N; i++)
        done += st[i] == PD_JOB_DONE;
    return done;
}

/* ---- killed while receiving the batch --------------------------------- */

static uint64_t big_ids[N];
static long big_got;
static char big_err[2048];
static pd_buf_t big_args;

static void *submit_big(void *arg)
{
    (void) arg;
    big_got = pd_map(c, mod, "head_squared", big_args.data, big_args.len, N, NULL, big_ids);
    snprintf(big_err, sizeof big_err, "%s", pd_client_error(c));
    return NULL;
}

Test(durable, a_broker_killed_while_receiving_a_batch_loses_and_duplicates_nothing)
{
    start(2, NULL);
    /* 10,000 arguments of 128 numbers (about 11 MB): the batch travels in a
       dozen chunks of 1 MiB. */
    pd_buf_init(&big_args);
    msgpack_packer pk;
    pd_packer_init(&pk, &big_args);
    for (int i = 0; i < N; i++) {
        msgpack_pack_array(&pk, 128);
        msgpack_pack_double(&pk, i);
        for (int k = 1; k < 128; k++)
            msgpack_pack_double(&pk, k * 0.5);
    }
    cr_assert_not(big_args.failed);
    /* The broker is frozen while the client sends: the chunks are on their
       way (in its socket buffers) when it is killed. */
    kill(h.broker, SIGSTOP);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, submit_big, NULL), 0);
    usleep(300000);
    crash_and_restart();
    pthread_join(t, NULL);
    pd_buf_free(&big_args);
    cr_assert_eq(big_got, N, "accepted %ld of %d: %s", big_got, N, big_err);
    cr_assert_gt(pd_client_resent(c), 0, "the chunks in flight were sent again");
    check_no_duplicates();
    static pd_result_t res[N];
    cr_assert_eq(pd_fetch(c, big_ids, N, 120000, res, NULL, NULL), N, "%s", pd_client_error(c));
    check_results(big_ids, res, sq);
    pd_results_clear(res, N);
}

/* A submit, by hand, with a token; returns 0 and sets first/n, or the
   error code named in the reply. */
static int raw_submit(const char *token, uint64_t *first, uint64_t *n)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    cr_assert_eq(zmq_connect(s, h.endpoint), 0);
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "submit", 5);
    pd_pack_kv_uint(&pk, "req", 1);
    pd_pack_kv_str(&pk, "mod", mod);
    pd_pack_kv_str(&pk, "fn", "square");
    pd_pack_kv_bin(&pk, "token", token, strlen(token));
    pd_pack_cstr(&pk, "args");
    msgpack_pack_array(&pk, 3);
    for (int i = 0; i < 3; i++)
        msgpack_pack_double(&pk, i);
    cr_assert_eq(zmq_send(s, b.data, b.len, 0), (int) b.len);
    pd_buf_free(&b);
    zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
    cr_assert_eq(zmq_poll(&it, 1, 30000), 1, "no reply to the submit");
    zmq_msg_t reply;
    zmq_msg_init(&reply);
    cr_assert_geq(zmq_msg_recv(&reply, s, 0), 0);
    pd_msg_t m;
    cr_assert_eq(pd_msg_parse(&m, zmq_msg_data(&reply), zmq_msg_size(&reply)), 0);
    int rc = 0;
    if (pd_msg_is(&m, "accepted")) {
        cr_assert_eq(pd_msg_uint(&m, "first", first), 0);
        cr_assert_eq(pd_msg_uint(&m, "n", n), 0);
    } else {
        rc = -1;
    }
    zmq_msg_close(&reply);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return rc;
}

Test(durable, a_submit_sent_again_with_its_token_gets_the_same_ids_across_a_restart)
{
    start(1, NULL);
    uint64_t first, n, again_first, again_n;
    cr_assert_eq(raw_submit("client-a/chunk-1", &first, &n), 0);
    cr_assert_eq(n, 3);
    /* The reply was lost (say): the client sends it again, from another
       connection even. */
    cr_assert_eq(raw_submit("client-a/chunk-1", &again_first, &again_n), 0);
    cr_assert_eq(again_first, first);
    cr_assert_eq(again_n, 3);
    crash_and_restart();
    cr_assert_eq(raw_submit("client-a/chunk-1", &again_first, &again_n), 0);
    cr_assert_eq(again_first, first, "the token outlived the restart");
    cr_assert_eq(raw_submit("client-a/chunk-2", &again_first, &again_n), 0);
    cr_assert_gt(again_first, first + 2, "another token is another submit");
    uint64_t next = next_id_after_restart();
    cr_assert_gt(next, again_first + 2);
    cr_assert_eq(count_known(1, next), 6, "two submits of three jobs, no more");
}

/* ---- killed while the jobs run ---------------------------------------- */

static uint64_t run_ids[N];
static pd_result_t run_res[N];
static long run_ended;
static char run_err[2048];
static atomic_size_t run_seen;

static void on_progress(size_t ended, size_t total, void *user)
{
    (void) total;
    (void) user;
    atomic_store(&run_seen, ended);
}

static void *fetch_all(void *arg)
{
    (void) arg;
    run_ended = pd_fetch(c, run_ids, N, 180000, run_res, on_progress, NULL);
    snprintf(run_err, sizeof run_err, "%s", pd_client_error(c));
    return NULL;
}

static void submit_slow_batch(void)
{
    static double x[N];
    for (int i = 0; i < N; i++)
        x[i] = i;
    cr_assert_eq(pd_map_doubles(c, mod, "slow_square", x, N, NULL, run_ids), N, "%s",
                 pd_client_error(c));
}

Test(durable, a_broker_killed_while_jobs_run_requeues_them_and_the_waiting_client_gets_all)
{
    start(2, NULL);
    submit_slow_batch();
    atomic_store(&run_seen, 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, fetch_all, NULL), 0);
    int done = 0;
    for (int i = 0; i < 6000 && done < N / 5; i++) {
        done = count_done(run_ids);
        cr_assert_geq(done, 0, "%s", pd_client_error(spy));
        usleep(5000);
    }
    cr_assert_geq(done, N / 5);
    cr_assert_lt(done, N, "every job ended before the kill: make the jobs slower");
    crash_and_restart();
    pthread_join(t, NULL);
    cr_assert_eq(run_ended, N, "%ld of %d ended: %s", run_ended, N, run_err);
    check_results(run_ids, run_res, sq);
    pd_results_clear(run_res, N);
    check_no_duplicates();
}

/* ---- killed while the results flow back ------------------------------- */

Test(durable, a_broker_killed_while_results_flow_back_loses_no_result)
{
    start(2, NULL);
    submit_slow_batch();
    atomic_store(&run_seen, 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, fetch_all, NULL), 0);
    size_t seen = 0;
    for (int i = 0; i < 60000 && seen < N / 3; i++) {
        seen = atomic_load(&run_seen);
        usleep(1000);
    }
    cr_assert_geq(seen, N / 3, "the client received %zu results in 60 s", seen);
    cr_assert_lt(seen, N, "every result arrived before the kill");
    crash_and_restart();
    pthread_join(t, NULL);
    cr_assert_eq(run_ended, N, "%ld of %d ended: %s", run_ended, N, run_err);
    check_results(run_ids, run_res, sq);
    pd_results_clear(run_res, N);
    /* Results fetched before the kill are still at the broker too: another
       process may fetch them again. */
    pd_result_t again;
    cr_assert_eq(pd_fetch(spy, &run_ids[0], 1, 10000, &again, NULL, NULL), 1);
    cr_assert_eq(again.state, PD_JOB_DONE);
    pd_results_clear(&again, 1);
}

/* ---- what a restart keeps --------------------------------------------- */

Test(durable, a_restart_keeps_results_modules_released_ids_and_the_id_sequence)
{
    start(1, NULL);
    double x[20];
    uint64_t ids[20];
    pd_result_t res[20];
    for (int i = 0; i < 20; i++)
        x[i] = i;
    cr_assert_eq(pd_map_doubles(c, mod, "square", x, 20, NULL, ids), 20);
    cr_assert_eq(pd_fetch(c, ids, 20, 30000, res, NULL, NULL), 20);
    pd_results_clear(res, 20);
    cr_assert_eq(pd_release(c, ids, 5), 5);
    crash_and_restart();
    /* Results: a new process (client) fetches them by id. */
    pd_client_t *later = pd_harness_client(&h);
    cr_assert_eq(pd_fetch(later, ids, 20, 10000, res, NULL, NULL), 20);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(res[i].state, PD_JOB_UNKNOWN, "released job %d came back", i);
    for (int i = 5; i < 20; i++) {
        double y;
        cr_assert_eq(res[i].state, PD_JOB_DONE);
        cr_assert_eq(pd_result_double(&res[i], &y), 0);
        cr_assert_eq(y, (double) i * i);
    }
    pd_results_clear(res, 20);
    /* The module: a submit naming it works without uploading it again. */
    uint64_t id;
    double seven = 7;
    cr_assert_eq(pd_map_doubles(later, mod, "square", &seven, 1, NULL, &id), 1, "%s",
                 pd_client_error(later));
    cr_assert_gt(id, 20, "ids continue after the highest used");
    cr_assert_eq(pd_fetch(later, &id, 1, 30000, res, NULL, NULL), 1);
    double y;
    cr_assert_eq(pd_result_double(&res[0], &y), 0);
    cr_assert_eq(y, 49.0);
    pd_results_clear(res, 1);
    pd_broker_info_t info;
    cr_assert_eq(pd_client_broker_info(later, &info), 0);
    cr_assert_str_eq(info.journal, h.journal);
    cr_assert_gt(info.journal_bytes, 0);
    cr_assert(info.journal_ok);
    pd_client_destroy(&later);
}

Test(durable, a_restarted_broker_forgets_tasks_but_never_reuses_their_ids)
{
    start(1, NULL);
    pd_graph_t *g = pd_graph_new(1);
    cr_assert_not_null(g);
    uint64_t a, b = 0;
    pd_task_result_t res;
    /* A task of the built-in module with no such node function: it fails
       at once, but its id is taken. */
    cr_assert_eq(pd_task_start(c, PD_BUILTIN, "no_such_node", g, NULL, 0, NULL, &a), 0, "%s",
                 pd_client_error(c));
    cr_assert_eq(pd_task_fetch(c, a, 60000, &res), 0, "%s", pd_client_error(c));
    cr_assert_eq(res.state, PD_TASK_FAILED);
    pd_task_result_clear(&res);
    crash_and_restart();
    pd_task_info_t info;
    cr_assert_eq(pd_task_status(c, a, &info), 0, "%s", pd_client_error(c));
    cr_assert_eq(info.state, PD_TASK_UNKNOWN, "tasks are not journalled");
    pd_harness_wait_slots(&h, c, 1); /* the worker registers again */
    cr_assert_eq(pd_task_start(c, PD_BUILTIN, "no_such_node", g, NULL, 0, NULL, &b), 0, "%s",
                 pd_client_error(c));
    cr_assert_gt(b, a, "task id %llu was handed out again", (unsigned long long) b);
    cr_assert_eq(pd_task_fetch(c, b, 60000, &res), 0, "%s", pd_client_error(c));
    cr_assert_eq(res.state, PD_TASK_FAILED);
    pd_task_result_clear(&res);
    pd_graph_destroy(&g);
}

/* ---- damaged, in use -------------------------------------------------- */

Test(durable, a_truncated_journal_stops_the_broker_until_it_is_reset)
{
    start(1, NULL);
    double x[100];
    uint64_t ids[100];
    for (int i = 0; i < 100; i++)
        x[i] = i;
    cr_assert_eq(pd_map_doubles(c, mod, "square", x, 100, NULL, ids), 100);
    pd_result_t res[100];
    cr_assert_eq(pd_fetch(c, ids, 100, 30000, res, NULL, NULL), 100);
    pd_results_clear(res, 100);
    pd_harness_kill_broker(&h, SIGTERM); /* clean: the log goes into the file */
    struct stat st;
    cr_assert_eq(stat(h.journal, &st), 0);
    cr_assert_eq(truncate(h.journal, st.st_size / 2), 0);
    char err[8192];
    int rc = pd_harness_broker_fails(&h, NULL, err, sizeof err);
    cr_assert_eq(rc, 1, "exit status %d: %s", rc, err);
    cr_assert(strstr(err, "is damaged"), "%s", err);
    cr_assert(strstr(err, h.journal), "the file is named: %s", err);
    cr_assert(strstr(err, "--journal-reset"), "the way out is named: %s", err);
    /* With the explicit flag it starts empty, the old file kept aside. */
    const char *reset[] = {"--journal-reset", NULL};
    pd_harness_restart_broker(&h, reset);
    pd_job_state_t s;
    cr_assert_eq(pd_status(spy, &ids[0], 1, &s), 0, "%s", pd_client_error(spy));
    cr_assert_eq(s, PD_JOB_UNKNOWN);
}

Test(durable, a_second_broker_on_the_same_journal_is_refused)
{
    start(1, NULL);
    char err[8192];
    int rc = pd_harness_broker_fails(&h, NULL, err, sizeof err);
    cr_assert_eq(rc, 1, "exit status %d: %s", rc, err);
    cr_assert(strstr(err, "in use by another playdoh-broker"), "%s", err);
    char pid[32];
    snprintf(pid, sizeof pid, "(pid %d)", (int) h.broker);
    cr_assert(strstr(err, pid), "the holder is named %s: %s", pid, err);
    /* Nor may a second one move the live journal aside. */
    const char *reset[] = {"--journal-reset", NULL};
    rc = pd_harness_broker_fails(&h, reset, err, sizeof err);
    cr_assert_eq(rc, 1, "exit status %d: %s", rc, err);
    cr_assert(strstr(err, "in use by another playdoh-broker"), "%s", err);
    struct stat st;
    cr_assert_eq(stat(h.journal, &st), 0, "the journal was moved aside");
}

/* ---- a journal that cannot be written ----------------------------------- */

Test(durable, an_unwritable_journal_refuses_submits_serves_results_and_recovers)
{
    /* A file size limit (inherited by the broker) stands in for a full disk:
       writes past it fail with EFBIG. */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 2u << 20;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    pd_harness_start(&h, NULL);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    pd_harness_add_worker(&h, 1);
    c = pd_harness_client(&h);
    spy = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, 1);
    char *path = pd_harness_module(&h, "durable.c", MODULE_SRC);
    cr_assert_eq(pd_module_upload_file(c, path, mod), 0, "%s", pd_client_error(c));
    free(path);

    double x[50];
    uint64_t ids[50];
    for (int i = 0; i < 50; i++)
        x[i] = i;
    cr_assert_eq(pd_map_doubles(c, mod, "square", x, 50, NULL, ids), 50, "%s",
                 pd_client_error(c));
    /* From here the journal cannot grow by a page: neither the batch below
       nor the broker's own rewrite from memory (which it retries after 1 s)
       can be written until the limit is lifted further down: a disk that
       stays full while the test looks, however slowly the machine runs. */
    struct rlimit full = {.rlim_cur = 4096, .rlim_max = old.rlim_max};
    cr_assert_eq(prlimit(h.broker, RLIMIT_FSIZE, &full, NULL), 0);
    /* 3 MiB of arguments cannot be journalled: the submit is refused. */
    enum { BIG = 3000 };
    pd_buf_t args;
    pd_buf_init(&args);
    msgpack_packer pk;
    pd_packer_init(&pk, &args);
    for (int i = 0; i < BIG; i++) {
        msgpack_pack_array(&pk, 128);
        for (int k = 0; k < 128; k++)
            msgpack_pack_double(&pk, i + k);
    }
    static uint64_t big[BIG];
    long got = pd_map(c, mod, "head_squared", args.data, args.len, BIG, NULL, big);
    cr_assert_lt(got, BIG, "the whole batch was accepted");
    cr_assert(strstr(pd_client_error(c), "journal"), "%s", pd_client_error(c));
    cr_assert(strstr(pd_client_error(c), "refused"), "%s", pd_client_error(c));
    pd_broker_info_t info;
    cr_assert_eq(pd_client_broker_info(spy, &info), 0);
    cr_assert_not(info.journal_ok);
    /* Further submits are refused at once, with the same clear sentence. */
    uint64_t one;
    double y = 3;
    cr_assert_eq(pd_map_doubles(spy, mod, "square", &y, 1, NULL, &one), PD_EIO);
    cr_assert(strstr(pd_client_error(spy), "cannot write its journal"), "%s",
              pd_client_error(spy));
    /* What was accepted still runs and its results are served. */
    pd_result_t res[50];
    cr_assert_eq(pd_fetch(c, ids, 50, 30000, res, NULL, NULL), 50, "%s", pd_client_error(c));
    for (int i = 0; i < 50; i++) {
        double v;
        cr_assert_eq(res[i].state, PD_JOB_DONE);
        cr_assert_eq(pd_result_double(&res[i], &v), 0);
        cr_assert_eq(v, (double) i * i);
    }
    pd_results_clear(res, 50);
    /* Room again (the limit lifted): the broker rewrites its journal by
       itself and accepts the batch. */
    cr_assert_eq(prlimit(h.broker, RLIMIT_FSIZE, &old, NULL), 0);
    for (int i = 0; i < 400 && !info.journal_ok; i++) {
        usleep(50000);
        cr_assert_eq(pd_client_broker_info(spy, &info), 0);
    }
    cr_assert(info.journal_ok, "the journal did not come back within 20 s");
    got = pd_map(c, mod, "head_squared", args.data, args.len, BIG, NULL, big);
    pd_buf_free(&args);
    cr_assert_eq(got, BIG, "%s", pd_client_error(c));
    /* And it is durable: a crash keeps it. */
    crash_and_restart();
    pd_job_state_t st;
    cr_assert_eq(pd_status(spy, &big[BIG - 1], 1, &st), 0, "%s", pd_client_error(spy));
    cr_assert_neq(st, PD_JOB_UNKNOWN, "the batch accepted after the recovery was lost");
}

/* ---- the configuration file ------------------------------------------ */

Test(durable, the_journal_can_be_set_in_the_configuration_file)
{
    char dir[] = "/tmp/playdoh-conf-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char conf[128], journal[128];
    snprintf(conf, sizeof conf, "%s/playdoh.conf", dir);
    snprintf(journal, sizeof journal, "%s/from-config.journal", dir);
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fprintf(f, "[broker]\njournal = %s\njournal_sync = normal\njournal_max_mb = 64\n", journal);
    fclose(f);
    const char *extra[] = {"--config", conf, NULL};
    pd_harness_start(&h, extra);
    spy = pd_harness_client(&h);
    pd_broker_info_t info;
    cr_assert_eq(pd_client_broker_info(spy, &info), 0, "%s", pd_client_error(spy));
    cr_assert_str_eq(info.journal, journal);
    cr_assert_eq(info.journal_max_bytes, 64u << 20);
    struct stat st;
    cr_assert_eq(stat(journal, &st), 0, "the journal was created where the file says");
    /* A value the schema refuses stops the broker with the file and line. */
    f = fopen(conf, "w");
    fprintf(f, "[broker]\njournal_sync = sometimes\n");
    fclose(f);
    char err[4096];
    int rc = pd_harness_broker_fails(&h, NULL, err, sizeof err);
    cr_assert_eq(rc, 2, "exit status %d: %s", rc, err);
    cr_assert(strstr(err, "journal_sync") && strstr(err, "full|normal|off"), "%s", err);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* ---- results reach waiting fetches at once ---------------------------- */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

Test(durable, a_result_reaches_a_waiting_fetch_at_once_not_at_the_end_of_its_wait)
{
    start(1, NULL);
    /* A fetch parked before its result arrives must be answered when the
       result comes (before its commit), not when its long poll (5 s in
       pd_fetch) runs out. */
    double worst = 0;
    for (int i = 0; i < 20; i++) {
        double x = i, y;
        uint64_t id;
        pd_result_t r;
        double t0 = mono_s();
        cr_assert_eq(pd_map_doubles(c, mod, "square", &x, 1, NULL, &id), 1);
        cr_assert_eq(pd_fetch(c, &id, 1, 30000, &r, NULL, NULL), 1, "%s", pd_client_error(c));
        double t = mono_s() - t0;
        if (t > worst)
            worst = t;
        cr_assert_eq(pd_result_double(&r, &y), 0);
        cr_assert_eq(y, x * x);
        pd_results_clear(&r, 1);
    }
    cr_assert_lt(worst, 2.5, "a round trip took %.2f s: a parked fetch waited for its time-out",
                 worst);
}

/* ---- a result seen just before a crash -------------------------------- */

Test(durable, a_result_fetched_just_before_a_crash_is_there_after_the_restart)
{
    start(1, NULL);
    /* A fetch shows a result before its commit: when the broker dies right
       after, the job is still in the journal and runs again, so the result
       is fetched again after the restart: at least once, never lost. */
    for (int i = 0; i < 3; i++) {
        double x = 7 + i, y;
        uint64_t id;
        pd_result_t r;
        cr_assert_eq(pd_map_doubles(c, mod, "square", &x, 1, NULL, &id), 1, "%s",
                     pd_client_error(c));
        cr_assert_eq(pd_fetch(c, &id, 1, 30000, &r, NULL, NULL), 1, "%s", pd_client_error(c));
        cr_assert_eq(r.state, PD_JOB_DONE);
        pd_results_clear(&r, 1);
        crash_and_restart();
        cr_assert_eq(pd_fetch(c, &id, 1, 60000, &r, NULL, NULL), 1, "%s", pd_client_error(c));
        cr_assert_eq(r.state, PD_JOB_DONE, "job %llu after the restart: %s %s",
                     (unsigned long long) id, pd_job_state_name(r.state),
                     r.error ? r.error : "");
        cr_assert_eq(pd_result_double(&r, &y), 0);
        cr_assert_eq(y, x * x);
        pd_results_clear(&r, 1);
    }
}

/* ---- killed at any point of a large submit, from its first byte ------- */

enum { RIDE_N = 50000 };

static struct {
    char endpoint[256];
    uint64_t ids[RIDE_N];
    pd_result_t res[RIDE_N];
    long got, ended;
    int open_err;
    char err[2048];
} ride;

/* A whole client's life: open, submit RIDE_N squares, fetch them all. */
static void *ride_submit(void *arg)
{
    (void) arg;
    static double x[RIDE_N];
    for (int i = 0; i < RIDE_N; i++)
        x[i] = i % 1000;
    char why[1024] = "";
    pd_client_opts_t o = {.security = PD_SECURITY_NONE, .why = why, .whycap = sizeof why};
    pd_client_t *rc = pd_client_open(ride.endpoint, &o, &ride.open_err);
    ride.got = ride.ended = -1;
    if (!rc) {
        snprintf(ride.err, sizeof ride.err, "open: %s", why);
        return NULL;
    }
    ride.got = pd_map_doubles(rc, mod, "square", x, RIDE_N, NULL, ride.ids);
    if (ride.got == RIDE_N)
        ride.ended = pd_fetch(rc, ride.ids, RIDE_N, 120000, ride.res, NULL, NULL);
    snprintf(ride.err, sizeof ride.err, "%s", pd_client_error(rc));
    pd_client_destroy(&rc);
    return NULL;
}

Test(durable, a_client_rides_through_a_broker_killed_at_any_point_of_a_large_submit,
     .timeout = 600)
{
    start(2, NULL);
    snprintf(ride.endpoint, sizeof ride.endpoint, "%s", h.endpoint);
    /* Kill points in ms after the client thread starts; -1: the broker is
       frozen when the client connects, so the kill cuts its handshake. */
    static const int at_ms[] = {-1, 0, 20, 50, 100, 200, 400, 700, 1000, 1500};
    for (size_t k = 0; k < sizeof at_ms / sizeof *at_ms; k++) {
        memset(ride.ids, 0, sizeof ride.ids);
        if (at_ms[k] < 0)
            kill(h.broker, SIGSTOP);
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, ride_submit, NULL), 0);
        usleep(at_ms[k] < 0 ? 300000 : (useconds_t) at_ms[k] * 1000);
        crash_and_restart();
        pthread_join(t, NULL);
        cr_assert_eq(ride.got, RIDE_N, "kill at %d ms: accepted %ld of %d: %s", at_ms[k],
                     ride.got, RIDE_N, ride.err);
        cr_assert_eq(ride.ended, RIDE_N, "kill at %d ms: %ld of %d ended: %s", at_ms[k],
                     ride.ended, RIDE_N, ride.err);
        for (int i = 0; i < RIDE_N; i++) {
            double y = -1;
            cr_assert_eq(ride.res[i].state, PD_JOB_DONE, "kill at %d ms: job %d: %s", at_ms[k],
                         i, ride.res[i].error ? ride.res[i].error : "");
            cr_assert_eq(pd_result_double(&ride.res[i], &y), 0);
            cr_assert_eq(y, (double) (i % 1000) * (i % 1000), "kill at %d ms: job %d", at_ms[k],
                         i);
        }
        pd_results_clear(ride.res, RIDE_N);
        cr_assert_eq(pd_release(spy, ride.ids, RIDE_N), RIDE_N, "%s", pd_client_error(spy));
    }
}
