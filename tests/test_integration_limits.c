/* Integration tests of what one job may take (issue 15, item 5): a real
   broker and real workers on loopback. A job's output is captured up to
   its cap into its result and never reaches the worker's log; a job over
   its memory or CPU time limit fails alone with PD_ELIMIT naming the
   limit, and the slot goes on; the broker places a job only on a worker
   whose owner allows what it asks, and one that no worker allows waits. */
#include "pd_harness.h"

#include <criterion/criterion.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *MODULE_SRC =
    "#include <playdoh_task.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "#include <unistd.h>\n"
    "/* prints x MiB on standard output and 1 KiB on standard error, then fails */\n"
    "PD_TASK(chatty, t) {\n"
    "    double x = 0;\n"
    "    pd_arg_double(t, &x);\n"
    "    static char line[1024];\n"
    "    memset(line, 'o', sizeof line - 1);\n"
    "    for (int i = 0; i < (int) x * 1024; i++) puts(line);\n"
    "    fprintf(stderr, \"%.*s\", 1000, line);\n"
    "    return pd_task_fail(t, \"chatty failed on purpose\");\n"
    "}\n"
    "/* prints as much, and succeeds */\n"
    "PD_TASK(chatty_ok, t) {\n"
    "    double x = 0;\n"
    "    pd_arg_double(t, &x);\n"
    "    static char line[1024];\n"
    "    memset(line, 'k', sizeof line - 1);\n"
    "    for (int i = 0; i < (int) x * 1024; i++) puts(line);\n"
    "    return pd_out_double(t, x);\n"
    "}\n"
    "/* allocates and touches 256 MiB at a time, for ever */\n"
    "PD_TASK(hog, t) {\n"
    "    for (;;) {\n"
    "        char *p = malloc(256u << 20);\n"
    "        if (!p) { sleep(30); return pd_task_fail(t, \"malloc failed\"); }\n"
    "        memset(p, 1, 256u << 20);\n"
    "    }\n"
    "}\n"
    "/* spins for ever */\n"
    "PD_TASK(spin, t) { volatile unsigned long n = 0; for (;;) n++; (void) t; return 0; }\n"
    "PD_TASK_DOUBLE(twice, x) { return 2 * x; }\n";

static pd_harness_t h;
static pd_client_t *c;
static char mod[PD_HASH_HEX];

/* A broker and one worker of `cpus` slots, started with extra flags, whose
   log is <dir>/worker-0.log; the module uploaded. */
static void start(int cpus, const char *const *extra)
{
    pd_harness_start(&h, NULL);
    pd_harness_add_worker_as(&h, cpus, NULL, extra);
    c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, cpus);
    char *path = pd_harness_module(&h, "limits.c", MODULE_SRC);
    cr_assert_eq(pd_module_upload_file(c, path, mod), 0, "%s", pd_client_error(c));
    free(path);
}

static void stop(void)
{
    pd_client_destroy(&c);
    pd_harness_stop(&h);
}

TestSuite(limits, .fini = stop, .timeout = 180);

/* Submits fn over the numbers x[0..n) with opts and waits for the results. */
static void run(const char *fn, const double *x, size_t n, const pd_map_opts_t *o, uint64_t *ids,
                pd_result_t *res, int timeout_ms)
{
    cr_assert_eq(pd_map_doubles(c, mod, fn, x, n, o, ids), (long) n, "%s", pd_client_error(c));
    cr_assert_eq(pd_fetch(c, ids, n, timeout_ms, res, NULL, NULL), (long) n,
                 "the jobs did not end in time");
}

/* The string at key in the msgpack map val, or NULL (*len its bytes). */
static const char *s_map_str(const void *val, size_t vlen, const char *key, size_t *len,
                             uint64_t *num)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    static char copy[1 << 20];
    const char *found = NULL;
    if (msgpack_unpack_next(&u, val, vlen, NULL) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            msgpack_object_kv *kv = &u.data.via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != strlen(key) ||
                memcmp(kv->key.via.str.ptr, key, strlen(key)) != 0)
                continue;
            if (kv->val.type == MSGPACK_OBJECT_STR && kv->val.via.str.size < sizeof copy) {
                memcpy(copy, kv->val.via.str.ptr, kv->val.via.str.size);
                copy[kv->val.via.str.size] = 0;
                *len = kv->val.via.str.size;
                found = copy;
            } else if (kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER && num) {
                *num = kv->val.via.u64;
                found = "";
            }
        }
    }
    msgpack_unpacked_destroy(&u);
    return found;
}

static off_t s_size(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", h.dir, name);
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

Test(limits, a_jobs_output_is_capped_into_its_error_and_never_reaches_the_worker_log)
{
    start(1, NULL);
    off_t before = s_size("worker-0.log");
    double x[2] = {8, 8}; /* 8 MiB each */
    uint64_t ids[2];
    pd_result_t res[2];
    pd_map_opts_t o = {.max_output = 64 << 10};
    run("chatty", x, 1, &o, ids, res, 60000);
    cr_assert_eq(res[0].state, PD_JOB_FAILED);
    cr_assert_eq(res[0].code, PD_ETASK, "%s", res[0].error);
    cr_assert(strstr(res[0].error, "chatty failed on purpose"), "%s", res[0].error);
    cr_assert(res[0].value, "the failed job carries its output");
    size_t len = 0;
    uint64_t dropped = 0;
    const char *out = s_map_str(res[0].value, res[0].len, "output", &len, NULL);
    cr_assert(out, "an 'output' field");
    cr_assert_eq(len, 64u << 10, "the cap's worth is kept: %zu", len);
    cr_assert_eq(s_map_str(res[0].value, res[0].len, "dropped", &len, &dropped) != NULL, true);
    cr_assert_eq(dropped, (8u << 20) + 1000 - (64u << 10), "the rest is counted: %llu",
                 (unsigned long long) dropped);
    const char *note = s_map_str(res[0].value, res[0].len, "note", &len, NULL);
    cr_assert(note && strstr(note, "past the job's output limit of 64 KiB were dropped"), "%s",
              note ? note : "(none)");
    pd_results_clear(res, 1);
    /* A job that succeeds prints as much: none of it goes to the log either. */
    run("chatty_ok", x + 1, 1, NULL, ids, res, 60000);
    cr_assert_eq(res[0].state, PD_JOB_DONE, "%s", res[0].error ? res[0].error : "");
    pd_results_clear(res, 1);
    off_t after = s_size("worker-0.log");
    cr_assert_lt(after - before, 64 << 10, "the worker's log grew by %lld bytes for 16 MiB of "
                 "output", (long long) (after - before));
}

Test(limits, an_exec_jobs_streams_keep_their_caps_worth_and_count_the_rest)
{
    start(1, NULL);
    const char *cmds[1] = {"head -c 300000 /dev/zero | tr '\\0' x; echo e >&2"};
    uint64_t id;
    pd_map_opts_t o = {.max_output = 1000};
    cr_assert_eq(pd_exec(c, cmds, 1, &o, &id), 1, "%s", pd_client_error(c));
    pd_result_t r;
    cr_assert_eq(pd_fetch(c, &id, 1, 60000, &r, NULL, NULL), 1);
    cr_assert_eq(r.state, PD_JOB_DONE, "%s", r.error ? r.error : "");
    pd_exec_result_t x;
    cr_assert_eq(pd_result_exec(&r, &x), 0);
    cr_assert_eq(x.out_len, 1000);
    cr_assert_eq(x.out_dropped, 299000);
    cr_assert_eq(x.err_len, 2);
    cr_assert(x.truncated);
    pd_results_clear(&r, 1);
}

Test(limits, a_job_over_its_memory_limit_fails_alone_with_elimit_and_the_slot_goes_on)
{
    start(1, NULL);
    double x = 0, y[3] = {1, 2, 3};
    uint64_t id, ids[3];
    pd_result_t r, res[3];
    pd_map_opts_t o = {.memory = 128 << 20};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run("hog", &x, 1, &o, &id, &r, 30000);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_eq(r.state, PD_JOB_FAILED);
    cr_assert_eq(r.code, PD_ELIMIT, "%s: %s", pd_err_name(r.code), r.error);
    cr_assert(strstr(r.error, "the job went over its memory limit of 128 MiB"), "%s", r.error);
    double s = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_assert_lt(s, 10, "it was stopped quickly: %.1f s", s);
    pd_results_clear(&r, 1);
    /* The same worker (one slot) runs the next jobs. */
    run("twice", y, 3, &o, ids, res, 30000);
    for (int i = 0; i < 3; i++) {
        double v;
        cr_assert_eq(res[i].state, PD_JOB_DONE, "%s", res[i].error ? res[i].error : "");
        cr_assert_eq(pd_result_double(&res[i], &v), 0);
        cr_assert_eq(v, 2 * y[i]);
    }
    pd_results_clear(res, 3);
}

Test(limits, a_job_over_its_cpu_time_fails_with_elimit_and_the_slot_goes_on)
{
    start(1, NULL);
    double x = 0, y = 21;
    uint64_t id;
    pd_result_t r;
    pd_map_opts_t o = {.cpu_time_s = 1};
    run("spin", &x, 1, &o, &id, &r, 30000);
    cr_assert_eq(r.state, PD_JOB_FAILED);
    cr_assert_eq(r.code, PD_ELIMIT, "%s: %s", pd_err_name(r.code), r.error);
    cr_assert(strstr(r.error, "the job went over its CPU time limit of 1 s"), "%s", r.error);
    pd_results_clear(&r, 1);
    run("twice", &y, 1, NULL, &id, &r, 30000);
    double v;
    cr_assert_eq(r.state, PD_JOB_DONE, "%s", r.error ? r.error : "");
    cr_assert_eq(pd_result_double(&r, &v), 0);
    cr_assert_eq(v, 42);
    pd_results_clear(&r, 1);
}

Test(limits, a_job_goes_only_where_the_owner_allows_it_and_waits_while_no_worker_does)
{
    const char *small[] = {"--name", "small", "--max-memory", "256M", NULL};
    start(1, small);
    /* A request no worker allows waits queued, as in HTCondor. */
    const char *cmds[4] = {"true", "true", "true", "true"};
    uint64_t ids[4];
    pd_map_opts_t o = {.memory = 1u << 30};
    cr_assert_eq(pd_exec(c, cmds, 4, &o, ids), 4, "%s", pd_client_error(c));
    pd_result_t res[4];
    cr_assert_eq(pd_fetch(c, ids, 4, 2000, res, NULL, NULL), 0, "nothing runs on 'small'");
    pd_results_clear(res, 4);
    pd_job_state_t st[4];
    cr_assert_eq(pd_status(c, ids, 4, st), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(st[i], PD_JOB_QUEUED);
    /* Another client's jobs that ask nothing still run on it meanwhile (a
       client's own later jobs wait behind its first: docs/worker.md). */
    pd_client_t *other = pd_harness_client(&h);
    uint64_t plain;
    cr_assert_eq(pd_exec(other, cmds, 1, NULL, &plain), 1);
    pd_result_t pr;
    cr_assert_eq(pd_fetch(other, &plain, 1, 30000, &pr, NULL, NULL), 1);
    cr_assert_eq(pr.state, PD_JOB_DONE);
    pd_results_clear(&pr, 1);
    pd_client_destroy(&other);
    /* A worker whose owner allows 4 GiB joins: every job lands there. */
    const char *big[] = {"--name", "big", "--max-memory", "4G", NULL};
    pd_harness_add_worker_as(&h, 1, NULL, big);
    cr_assert_eq(pd_fetch(c, ids, 4, 30000, res, NULL, NULL), 4);
    for (int i = 0; i < 4; i++) {
        pd_exec_result_t x;
        cr_assert_eq(res[i].state, PD_JOB_DONE, "%s", res[i].error ? res[i].error : "");
        cr_assert_eq(pd_result_exec(&res[i], &x), 0);
        cr_assert(x.host_len == 3 && memcmp(x.host, "big", 3) == 0, "job %d ran on %.*s", i,
                  (int) x.host_len, x.host);
    }
    pd_results_clear(res, 4);
}

Test(limits, a_worker_refuses_a_request_over_its_owners_maximum)
{
    /* Placement keeps this from happening; a worker still checks, as an
       older broker would not: asking more than --max-output allows here. */
    const char *w[] = {"--max-output", "1k", NULL};
    start(1, w);
    const char *cmds[1] = {"echo hi"};
    uint64_t id;
    pd_map_opts_t o = {.max_output = 4096};
    cr_assert_eq(pd_exec(c, cmds, 1, &o, &id), 1);
    pd_result_t r;
    cr_assert_eq(pd_fetch(c, &id, 1, 1500, &r, NULL, NULL), 0, "it waits: no worker allows 4 KiB");
    pd_results_clear(&r, 1);
}

Test(limits, a_broker_restart_keeps_what_the_jobs_ask)
{
    const char *small[] = {"--name", "small", "--max-memory", "256M", NULL};
    start(1, small);
    const char *cmds[2] = {"true", "true"};
    uint64_t ids[2];
    pd_map_opts_t o = {.memory = 1u << 30};
    cr_assert_eq(pd_exec(c, cmds, 2, &o, ids), 2, "%s", pd_client_error(c));
    /* The journal holds the request: after a crash and a restart the jobs
       still wait for a worker that allows 1 GiB, not for any. */
    pd_harness_kill_broker(&h, SIGKILL);
    pd_harness_restart_broker(&h, NULL);
    pd_harness_wait_slots(&h, c, 1);
    pd_result_t res[2];
    cr_assert_eq(pd_fetch(c, ids, 2, 1500, res, NULL, NULL), 0, "nothing runs on 'small'");
    pd_results_clear(res, 2);
    const char *big[] = {"--name", "big", "--max-memory", "4G", NULL};
    pd_harness_add_worker_as(&h, 1, NULL, big);
    cr_assert_eq(pd_fetch(c, ids, 2, 30000, res, NULL, NULL), 2);
    for (int i = 0; i < 2; i++) {
        pd_exec_result_t x;
        cr_assert_eq(res[i].state, PD_JOB_DONE, "%s", res[i].error ? res[i].error : "");
        cr_assert_eq(pd_result_exec(&res[i], &x), 0);
        cr_assert(x.host_len == 3 && memcmp(x.host, "big", 3) == 0, "ran on %.*s",
                  (int) x.host_len, x.host);
    }
    pd_results_clear(res, 2);
}
