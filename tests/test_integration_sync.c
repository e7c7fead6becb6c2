/* Integration tests of the synchronous interface: a real broker and real
   workers as processes on loopback, tasks whose nodes run in real node
   processes and exchange data over PUB/SUB, driven through
   libplaydoh-client. */
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
    "#include <stdint.h>\n"
    "#include <string.h>\n"
    "#include <time.h>\n"
    "#include <unistd.h>\n"
    "static void s_sleep_ms(int ms) {\n"
    "    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};\n"
    "    nanosleep(&ts, NULL);\n"
    "}\n"
    "/* A token goes round the ring `next` for `rounds` (the argument) rounds:\n"
    "   its value counts the hops; each node checks what it gets. */\n"
    "PD_TASK(token_ring, t) {\n"
    "    double rd;\n"
    "    if (pd_arg_double(t, &rd)) return pd_task_fail(t, \"want a number of rounds\");\n"
    "    int rounds = (int) rd, me = pd_node_index(t), n = pd_node_count(t);\n"
    "    uint64_t token = 0;\n"
    "    if (me == 0) { token = 1; if (pd_push(t, \"next\", &token, 8)) return -1; }\n"
    "    for (int r = 0; r < rounds; r++) {\n"
    "        const void *p; size_t len;\n"
    "        int from = pd_pop(t, \"next\", &p, &len);\n"
    "        if (from < 0) return -1;\n"
    "        memcpy(&token, p, 8);\n"
    "        uint64_t want = me == 0 ? (uint64_t) (r + 1) * n : (uint64_t) r * n + me;\n"
    "        if (len != 8 || from != (me + n - 1) % n || token != want)\n"
    "            return pd_task_fail(t, \"round %d: token %llu from %d, expected %llu\", r,\n"
    "                                (unsigned long long) token, from, (unsigned long long) want);\n"
    "        token++;\n"
    "        if (me != 0 || r + 1 < rounds)\n"
    "            if (pd_push(t, \"next\", &token, 8)) return -1;\n"
    "    }\n"
    "    return pd_out_int(t, (int64_t) token);\n"
    "}\n"
    "/* Chain a -> b: node 0 sends `count` numbered messages, node 1 passes\n"
    "   them on, node 2 checks that each arrives once, in order. */\n"
    "PD_TASK(chain_relay, t) {\n"
    "    double cd; pd_arg_double(t, &cd);\n"
    "    uint64_t count = (uint64_t) cd, seq = 0, sum = 0;\n"
    "    int me = pd_node_index(t);\n"
    "    for (uint64_t i = 0; i < count; i++) {\n"
    "        const void *p; size_t len;\n"
    "        if (me == 0) { if (pd_push(t, \"a\", &i, 8)) return -1; continue; }\n"
    "        if (pd_pop(t, me == 1 ? \"a\" : \"b\", &p, &len) < 0) return -1;\n"
    "        memcpy(&seq, p, 8);\n"
    "        if (len != 8 || seq != i)\n"
    "            return pd_task_fail(t, \"message %llu arrived as %llu\", (unsigned long long) i,\n"
    "                                (unsigned long long) seq);\n"
    "        sum += seq;\n"
    "        if (me == 1 && pd_push(t, \"b\", p, len)) return -1;\n"
    "    }\n"
    "    pd_out_array(t, 2);\n"
    "    pd_out_int(t, (int64_t) count);\n"
    "    return pd_out_int(t, (int64_t) sum);\n"
    "}\n"
    "/* Star: the hub sends each leaf its own number (push_to) and a broadcast;\n"
    "   each leaf answers the square of its number plus the broadcast; the hub\n"
    "   sums the answers from any leaf. */\n"
    "PD_TASK(fan, t) {\n"
    "    int me = pd_node_index(t), n = pd_node_count(t);\n"
    "    if (me == 0) {\n"
    "        double base = 1000;\n"
    "        for (int i = 1; i < n; i++) { double x = i; if (pd_push_to(t, \"work\", i, &x, 8)) return -1; }\n"
    "        if (pd_push_doubles(t, \"work\", &base, 1)) return -1;\n"
    "        double sum = 0; int seen = 0;\n"
    "        int peers[64];\n"
    "        if (pd_node_in_peers(t, \"result\", peers, 64) != n - 1) return pd_task_fail(t, \"in-degree\");\n"
    "        for (int k = 1; k < n; k++) {\n"
    "            const double *y; size_t m;\n"
    "            int from = pd_pop_doubles(t, \"result\", &y, &m);\n"
    "            if (from < 1 || m != 1) return -1;\n"
    "            sum += y[0]; seen |= 1 << from;\n"
    "        }\n"
    "        if (seen != ((1 << n) - 2)) return pd_task_fail(t, \"not every leaf answered\");\n"
    "        return pd_out_double(t, sum);\n"
    "    }\n"
    "    const double *x, *b; size_t m;\n"
    "    if (pd_pop_doubles(t, \"work\", &x, &m) != 0) return -1;\n"
    "    double mine = x[0];\n"
    "    if (pd_pop_doubles(t, \"work\", &b, &m) != 0) return -1;\n"
    "    double y = mine * mine + b[0];\n"
    "    if (pd_push_doubles(t, \"result\", &y, 1)) return -1;\n"
    "    return pd_out_double(t, y);\n"
    "}\n"
    "/* Ring exchange, then the node named by the argument dies (signal 11\n"
    "   or 9) while the others wait in pop. */\n"
    "PD_TASK(doomed, t) {\n"
    "    double a[2]; const double *arg; size_t na;\n"
    "    if (pd_arg_doubles(t, &arg, &na) || na != 2) return pd_task_fail(t, \"want [node, signal]\");\n"
    "    a[0] = arg[0]; a[1] = arg[1];\n"
    "    int me = pd_node_index(t);\n"
    "    double v = me; const void *p; size_t len;\n"
    "    if (pd_push(t, \"next\", &v, 8) || pd_pop(t, \"next\", &p, &len) < 0) return -1;\n"
    "    if (me == (int) a[0]) { s_sleep_ms(200); raise((int) a[1]); }\n"
    "    if (pd_pop(t, \"next\", &p, &len) < 0) return -1;\n"
    "    return 0;\n"
    "}\n"
    "/* Node 1 pops a tube node 0 never pushes on. */\n"
    "PD_TASK(lonely, t) {\n"
    "    if (pd_node_index(t) == 0) { s_sleep_ms(3000); return 0; }\n"
    "    const void *p; size_t len;\n"
    "    if (pd_pop(t, \"x\", &p, &len) < 0) return -1;\n"
    "    return pd_task_fail(t, \"a message came from nowhere\");\n"
    "}\n"
    "/* Every node waits on `next`, where nothing comes. */\n"
    "PD_TASK(stuck, t) {\n"
    "    const void *p; size_t len;\n"
    "    return pd_pop(t, \"next\", &p, &len) < 0 ? -1 : 0;\n"
    "}\n"
    "/* Sleeps the argument in ms, returns its node index. */\n"
    "PD_TASK(nap, t) {\n"
    "    double ms; pd_arg_double(t, &ms);\n"
    "    s_sleep_ms((int) ms);\n"
    "    return pd_out_int(t, pd_node_index(t));\n"
    "}\n"
    "/* Every node returns its argument doubled and its index: checks that\n"
    "   arguments and results are each node's own. */\n"
    "PD_TASK(echo, t) {\n"
    "    double x; if (pd_arg_double(t, &x)) return pd_task_fail(t, \"not a number\");\n"
    "    pd_out_array(t, 3);\n"
    "    pd_out_int(t, pd_node_index(t)); pd_out_int(t, pd_node_count(t));\n"
    "    return pd_out_double(t, 2 * x);\n"
    "}\n"
    "/* Works in 5 ms steps until asked to stop; returns its steps. */\n"
    "PD_TASK(until_stopped, t) {\n"
    "    int64_t steps = 0;\n"
    "    while (!pd_node_stopping(t) && steps < 12000) { s_sleep_ms(5); steps++; }\n"
    "    return steps < 12000 ? pd_out_int(t, steps) : pd_task_fail(t, \"never asked\");\n"
    "}\n"
    "/* As a job, the node API fails with a sentence. */\n"
    "PD_TASK(not_a_node, t) { return pd_push(t, \"x\", \"a\", 1); }\n";

static pd_harness_t h;
static pd_client_t *c;
static char mod[PD_HASH_HEX];

static void start(int workers, int cpus)
{
    /* Heartbeats of 250 ms (a worker is lost after 750 ms of silence): fast
       enough for the lost-worker test, slack enough for a loaded machine. */
    static const char *const extra[] = {"--heartbeat-ms", "250", NULL};
    pd_harness_start(&h, extra);
    for (int i = 0; i < workers; i++)
        pd_harness_add_worker(&h, cpus);
    c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, workers * cpus);
    char *path = pd_harness_module(&h, "syncmod.c", MODULE_SRC);
    cr_assert_eq(pd_module_upload_file(c, path, mod), 0, "%s", pd_client_error(c));
    free(path);
}

static void stop(void)
{
    pd_client_destroy(&c);
    pd_harness_stop(&h);
}

TestSuite(sync, .fini = stop, .timeout = 240);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Packs the same double as every node's argument. */
static void same_arg(double x, int n, uint8_t *buf, size_t *len)
{
    *len = 0;
    for (int i = 0; i < n; i++) {
        buf[(*len)++] = 0xcb;
        uint64_t bits;
        memcpy(&bits, &x, 8);
        for (int k = 7; k >= 0; k--)
            buf[(*len)++] = (uint8_t) (bits >> (8 * k));
    }
}

static int64_t node_int(const pd_result_t *r)
{
    /* a positive fixint, uint8/16/32 or int64 */
    const uint8_t *p = r->value;
    cr_assert_not_null(p);
    if (p[0] < 0x80)
        return p[0];
    int64_t v = 0;
    int n = p[0] == 0xcc ? 1 : p[0] == 0xcd ? 2 : p[0] == 0xce ? 4 : 8;
    for (int i = 1; i <= n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Runs a task to its end and returns its result (asserts it ended). */
static void run(const char *fn, pd_graph_t *g, const void *args, size_t len,
                const pd_task_opts_t *o, pd_task_result_t *res, int timeout_ms)
{
    uint64_t id;
    cr_assert_eq(pd_task_start(c, mod, fn, g, args, len, o, &id), 0, "%s", pd_client_error(c));
    cr_assert_eq(pd_task_fetch(c, id, timeout_ms, res), 0, "task %llu: %s",
                 (unsigned long long) id, pd_client_error(c));
}

Test(sync, a_token_goes_round_a_ring_of_four_a_thousand_times)
{
    start(2, 2);
    pd_graph_t *g = pd_graph_new(4);
    cr_assert_eq(pd_graph_ring(g, "next"), 0);
    uint8_t args[64];
    size_t len;
    same_arg(1000, 4, args, &len);
    pd_task_result_t res;
    run("token_ring", g, args, len, NULL, &res, 120000);
    cr_assert_eq(res.state, PD_TASK_DONE, "%s", res.error);
    cr_assert_eq(res.n, 4);
    cr_assert_eq(node_int(&res.nodes[0]), 4001, "%lld", (long long) node_int(&res.nodes[0]));
    for (int i = 1; i < 4; i++)
        cr_assert_eq(node_int(&res.nodes[i]), 999 * 4 + i + 1, "node %d: %lld", i,
                     (long long) node_int(&res.nodes[i]));
    pd_task_result_clear(&res);
    pd_graph_destroy(&g);
}

Test(sync, a_chain_of_three_carries_a_hundred_thousand_messages_and_loses_none)
{
    start(1, 3);
    pd_graph_t *g = pd_graph_new(3);
    cr_assert_eq(pd_graph_edge(g, "a", 0, 1), 0);
    cr_assert_eq(pd_graph_edge(g, "b", 1, 2), 0);
    uint8_t args[64];
    size_t len;
    same_arg(100000, 3, args, &len);
    pd_task_opts_t o = {.window = 64}; /* credit runs out and comes back often */
    pd_task_result_t res;
    run("chain_relay", g, args, len, &o, &res, 180000);
    cr_assert_eq(res.state, PD_TASK_DONE, "%s", res.error);
    /* node 2's result: [100000, sum of 0 .. 99999] */
    const uint8_t *p = res.nodes[2].value;
    cr_assert_eq(p[0], 0x92, "an array of two");
    pd_result_t one = {.value = (void *) (p + 1), .len = res.nodes[2].len - 1};
    cr_assert_eq(node_int(&one), 100000);
    size_t skip = p[1] < 0x80 ? 1 : p[1] == 0xcc ? 2 : p[1] == 0xcd ? 3 : p[1] == 0xce ? 5 : 9;
    pd_result_t two = {.value = (void *) (p + 1 + skip), .len = res.nodes[2].len - 1 - skip};
    cr_assert_eq(node_int(&two), 99999LL * 100000 / 2);
    pd_task_result_clear(&res);
    pd_graph_destroy(&g);
}

Test(sync, fan_out_and_fan_in_through_a_star)
{
    start(1, 4);
    pd_graph_t *g = pd_graph_new(4);
    cr_assert_eq(pd_graph_star_out(g, "work", 0), 0);
    cr_assert_eq(pd_graph_star_in(g, "result", 0), 0);
    pd_task_result_t res;
    run("fan", g, NULL, 0, NULL, &res, 60000);
    cr_assert_eq(res.state, PD_TASK_DONE, "%s", res.error);
    double sum;
    cr_assert_eq(pd_result_double(&res.nodes[0], &sum), 0);
    cr_assert_eq(sum, (1 + 4 + 9) + 3 * 1000.0);
    for (int i = 1; i < 4; i++) {
        double y;
        cr_assert_eq(pd_result_double(&res.nodes[i], &y), 0);
        cr_assert_eq(y, i * i + 1000.0);
    }
    pd_task_result_clear(&res);
    pd_graph_destroy(&g);
}

Test(sync, each_node_gets_its_own_argument_and_results_come_in_node_order)
{
    start(1, 3);
    pd_graph_t *g = pd_graph_new(3); /* no tubes at all: independent nodes */
    uint8_t args[] = {0x01, 0x02, 0x03};
    pd_task_result_t res;
    run("echo", g, args, sizeof args, NULL, &res, 60000);
    cr_assert_eq(res.state, PD_TASK_DONE, "%s", res.error);
    for (int i = 0; i < 3; i++) {
        const uint8_t *p = res.nodes[i].value;
        cr_assert_eq(res.nodes[i].id, (uint64_t) i);
        cr_assert_eq(p[0], 0x93);
        cr_assert_eq(p[1], i);
        cr_assert_eq(p[2], 3);
    }
    pd_task_result_clear(&res);
    pd_graph_destroy(&g);
}

static void crash_case(int sig, const char *what)
{
    start(2, 2);
    pd_graph_t *g = pd_graph_new(4);
    pd_graph_ring(g, "next");
    /* node 1 dies; the others wait in pop with a time-out far away */
    uint8_t args[4 * 19];
    size_t len = 0;
    for (int i = 0; i < 4; i++) {
        args[len++] = 0x92;
        args[len++] = 0x01;
        args[len++] = (uint8_t) sig;
    }
    pd_task_opts_t o = {.io_timeout_ms = 120000};
    double t0 = now_s();
    pd_task_result_t res;
    run("doomed", g, args, len, &o, &res, 60000);
    cr_assert_lt(now_s() - t0, 30.0, "the failure waited for a time-out");
    cr_assert_eq(res.state, PD_TASK_FAILED);
    cr_assert_eq(res.code, PD_ECRASH, "%s: %s", pd_err_name(res.code), res.error);
    cr_assert_eq(res.failed_node, 1);
    cr_assert_not_null(res.host);
    cr_assert(strstr(res.error, "node 1 on ") != NULL, "%s", res.error);
    cr_assert(strstr(res.error, what) != NULL, "%s", res.error);
    cr_assert_eq(res.nodes[1].state, PD_JOB_FAILED);
    cr_assert_eq(res.nodes[0].state, PD_JOB_CANCELLED);
    cr_assert_eq(res.nodes[0].code, PD_EABORTED);
    pd_task_result_clear(&res);
    /* Every slot is free again: a task on all four runs at once. */
    pd_graph_t *g4 = pd_graph_new(4);
    uint8_t naps[4] = {0x0a, 0x0a, 0x0a, 0x0a};
    run("nap", g4, naps, 4, NULL, &res, 30000);
    cr_assert_eq(res.state, PD_TASK_DONE, "%s", res.error);
    pd_task_result_clear(&res);
    pd_graph_destroy(&g4);
    pd_graph_destroy(&g);
}

Test(sync, a_node_that_crashes_fails_the_task_at_once_naming_node_and_host)
{
    crash_case(SIGSEGV, "signal 11");
}

Test(sync, a_node_that_is_killed_fails_the_task_at_once_naming_node_and_host)
{
    crash_case(SIGKILL, "signal 9");
}

Test(sync, a_pop_that_nothing_answers_times_out_as_an_error)
{
    start(1, 2);
    pd_graph_t *g = pd_graph_new(2);
    pd_graph_edge(g, "x", 0, 1);
    pd_task_opts_t o = {.io_timeout_ms = 500};
    pd_task_result_t res;
    run("lonely", g, NULL, 0, &o, &res, 60000);
    cr_assert_eq(res.state, PD_TASK_FAILED);
    cr_assert_eq(res.code, PD_ETIMEDOUT, "%s: %s", pd_err_name(res.code), res.error);
    cr_assert_eq(res.failed_node, 1);
    cr_assert(strstr(res.error, "pop on tube 'x' timed out after 500 ms") != NULL, "%s",
              res.error);
    pd_task_result_clear(&res);
    pd_graph_destroy(&g);
}

Test(sync, a_task_larger_than_the_cluster_is_refused_with_a_clear_error)
{
    start(1, 3);
    pd_graph_t *g = pd_graph_new(4);
    pd_graph_ring(g, "next");
    uint64_t id = 0;
    cr_assert_eq(pd_task_start(c, mod, "nap", g, NULL, 0, NULL, &id), PD_ENOSLOTS);
    cr_assert(strstr(pd_client_error(c), "4 nodes but the cluster has only 3 slots") != NULL,
              "%s", pd_client_error(c));
    pd_graph_destroy(&g);
}

Test(sync, nodes_start_together_or_not_at_all)
{
    start(2, 2);
    /* A takes three of the four slots for a while; B needs two: it must
       stay queued, never half started, until A ends. */
    pd_graph_t *ga = pd_graph_new(3), *gb = pd_graph_new(2);
    pd_graph_ring(gb, "r");
    uint8_t a_args[3 * 3], b_args[3 * 2];
    for (int i = 0; i < 3; i++) { /* 1500 ms: uint16 */
        a_args[3 * i] = 0xcd;
        a_args[3 * i + 1] = 0x05;
        a_args[3 * i + 2] = 0xdc;
    }
    for (int i = 0; i < 2; i++) { /* 10 ms */
        b_args[3 * i] = 0xcd;
        b_args[3 * i + 1] = 0x00;
        b_args[3 * i + 2] = 0x0a;
    }
    uint64_t a, b;
    cr_assert_eq(pd_task_start(c, mod, "nap", ga, a_args, sizeof a_args, NULL, &a), 0, "%s",
                 pd_client_error(c));
    pd_task_info_t info;
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(pd_task_status(c, a, &info), 0);
        if (info.state == PD_TASK_RUNNING)
            break;
        usleep(20000);
    }
    cr_assert_eq(info.state, PD_TASK_RUNNING);
    cr_assert_eq(pd_task_start(c, mod, "nap", gb, b_args, sizeof b_args, NULL, &b), 0);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(pd_task_status(c, b, &info), 0);
        cr_assert_eq(info.state, PD_TASK_QUEUED, "B is %s while A holds 3 of 4 slots",
                     pd_task_state_name(info.state));
        cr_assert_eq(pd_task_status(c, a, &info), 0);
        if (info.state != PD_TASK_RUNNING)
            break;
        usleep(100000);
    }
    pd_task_result_t res;
    cr_assert_eq(pd_task_fetch(c, b, 60000, &res), 0);
    cr_assert_eq(res.state, PD_TASK_DONE, "%s", res.error);
    pd_task_result_clear(&res);
    cr_assert_eq(pd_task_fetch(c, a, 0, &res), 0);
    cr_assert_eq(res.state, PD_TASK_DONE, "B ran before A ended");
    pd_task_result_clear(&res);
    pd_graph_destroy(&ga);
    pd_graph_destroy(&gb);
}

Test(sync, stop_asks_the_nodes_to_finish_and_keeps_their_results)
{
    start(1, 2);
    pd_graph_t *g = pd_graph_new(2);
    uint64_t id;
    cr_assert_eq(pd_task_start(c, mod, "until_stopped", g, NULL, 0, NULL, &id), 0);
    pd_task_info_t info;
    for (int i = 0; i < 500; i++) {
        pd_task_status(c, id, &info);
        if (info.state == PD_TASK_RUNNING)
            break;
        usleep(20000);
    }
    cr_assert_eq(info.state, PD_TASK_RUNNING);
    usleep(100000);
    /* The cluster view counts the slots the nodes hold. */
    pd_cluster_info_t ci;
    cr_assert_eq(pd_cluster_info(c, &ci), 0, "%s", pd_client_error(c));
    cr_assert_eq(ci.nworkers, 1);
    cr_assert_eq(ci.workers[0].nodes, 2);
    cr_assert_eq(ci.workers[0].gpu_nodes, 0);
    pd_cluster_info_clear(&ci);
    char *out = NULL;
    cr_assert_eq(pd_harness_run(&out, "'%s' --broker %s cluster",
                                pd_harness_program("playdoh-submit"), h.endpoint), 0);
    cr_assert(strstr(out, "synchronous tasks hold 2 CPU slots and 0 GPUs"), "%s", out);
    cr_assert(strstr(out, " 2/2 "), "%s", out);
    free(out);
    cr_assert_eq(pd_task_stop(c, id), 1);
    pd_task_result_t res;
    cr_assert_eq(pd_task_fetch(c, id, 30000, &res), 0);
    cr_assert_eq(res.state, PD_TASK_DONE, "%s", res.error ? res.error : "");
    for (int i = 0; i < 2; i++) {
        double steps = -1;
        cr_assert_eq(pd_result_double(&res.nodes[i], &steps), 0);
        cr_assert_gt(steps, 0, "node %d worked before the stop", i);
    }
    pd_task_result_clear(&res);
    cr_assert_eq(pd_task_stop(c, id), 0, "an ended task is not stopped");
    /* A task that has not started (the slots are taken) is cancelled. */
    uint64_t busy, queued;
    cr_assert_eq(pd_task_start(c, mod, "until_stopped", g, NULL, 0, NULL, &busy), 0);
    cr_assert_eq(pd_task_start(c, mod, "until_stopped", g, NULL, 0, NULL, &queued), 0);
    cr_assert_eq(pd_task_status(c, queued, &info), 0);
    cr_assert_eq(info.state, PD_TASK_QUEUED);
    cr_assert_eq(pd_task_stop(c, queued), 1);
    cr_assert_eq(pd_task_fetch(c, queued, 10000, &res), 0);
    cr_assert_eq(res.state, PD_TASK_CANCELLED);
    pd_task_result_clear(&res);
    cr_assert_eq(pd_task_cancel(c, busy), 1);
    pd_graph_destroy(&g);
}

Test(sync, cancel_stops_a_running_task_and_frees_its_slots)
{
    start(1, 2);
    pd_graph_t *g = pd_graph_new(2);
    pd_graph_edge(g, "x", 0, 1);
    pd_task_opts_t o = {.io_timeout_ms = 120000};
    uint64_t id;
    cr_assert_eq(pd_task_start(c, mod, "lonely", g, NULL, 0, &o, &id), 0);
    pd_task_info_t info;
    for (int i = 0; i < 200; i++) {
        pd_task_status(c, id, &info);
        if (info.state == PD_TASK_RUNNING)
            break;
        usleep(20000);
    }
    cr_assert_eq(info.state, PD_TASK_RUNNING);
    double t0 = now_s();
    cr_assert_eq(pd_task_cancel(c, id), 1);
    cr_assert_eq(pd_task_cancel(c, id), 0, "cancelling twice changes nothing");
    pd_task_result_t res;
    cr_assert_eq(pd_task_fetch(c, id, 10000, &res), 0);
    cr_assert_eq(res.state, PD_TASK_CANCELLED);
    cr_assert_eq(res.nodes[1].code, PD_ECANCELLED);
    pd_task_result_clear(&res);
    pd_graph_t *g2 = pd_graph_new(2);
    uint8_t naps[2] = {0x01, 0x01};
    run("nap", g2, naps, 2, NULL, &res, 30000);
    cr_assert_eq(res.state, PD_TASK_DONE, "%s", res.error);
    cr_assert_lt(now_s() - t0, 20.0);
    pd_task_result_clear(&res);
    cr_assert_eq(pd_task_release(c, id), 1);
    cr_assert_eq(pd_task_status(c, id, &info), 0);
    cr_assert_eq(info.state, PD_TASK_UNKNOWN, "a released task is forgotten");
    pd_graph_destroy(&g2);
    pd_graph_destroy(&g);
}

Test(sync, a_worker_lost_before_the_start_puts_the_task_back_in_the_queue)
{
    start(1, 1);
    int b = pd_harness_add_worker(&h, 1);
    pd_harness_wait_slots(&h, c, 2);
    /* Worker B stops answering: the task is placed on A and B, B never
       starts its node, the broker loses B and puts the task back. */
    kill(h.workers[b], SIGSTOP);
    pd_graph_t *g = pd_graph_new(2);
    uint8_t naps[2] = {0x01, 0x01};
    uint64_t id;
    cr_assert_eq(pd_task_start(c, mod, "nap", g, naps, 2, NULL, &id), 0, "%s",
                 pd_client_error(c));
    pd_task_info_t info = {0};
    bool started = false, requeued = false;
    for (int i = 0; i < 500 && !requeued; i++) {
        cr_assert_eq(pd_task_status(c, id, &info), 0);
        started = started || info.state == PD_TASK_STARTING;
        requeued = started && info.state == PD_TASK_QUEUED;
        usleep(20000);
    }
    cr_assert(requeued, "the task was not queued again (state %s)",
              pd_task_state_name(info.state));
    /* Another worker comes: the task starts there and ends well. */
    pd_harness_add_worker(&h, 1);
    pd_task_result_t res;
    cr_assert_eq(pd_task_fetch(c, id, 60000, &res), 0);
    cr_assert_eq(res.state, PD_TASK_DONE, "%s", res.error ? res.error : "");
    for (int i = 0; i < 2; i++) {
        double who = -1;
        cr_assert_eq(pd_result_double(&res.nodes[i], &who), 0);
        cr_assert_eq(who, i);
    }
    pd_task_result_clear(&res);
    kill(h.workers[b], SIGKILL);
    waitpid(h.workers[b], NULL, 0);
    h.workers[b] = 0;
    pd_graph_destroy(&g);
}

Test(sync, a_lost_worker_fails_its_tasks_naming_the_host)
{
    start(2, 2);
    pd_graph_t *g = pd_graph_new(4);
    pd_graph_ring(g, "next");
    pd_task_opts_t o = {.io_timeout_ms = 120000};
    uint64_t id;
    cr_assert_eq(pd_task_start(c, mod, "stuck", g, NULL, 0, &o, &id), 0);
    pd_task_info_t info;
    for (int i = 0; i < 200; i++) {
        pd_task_status(c, id, &info);
        if (info.state == PD_TASK_RUNNING)
            break;
        usleep(20000);
    }
    cr_assert_eq(info.state, PD_TASK_RUNNING, "%s", pd_task_state_name(info.state));
    kill(h.workers[1], SIGKILL);
    waitpid(h.workers[1], NULL, 0);
    h.workers[1] = 0;
    pd_task_result_t res;
    cr_assert_eq(pd_task_fetch(c, id, 30000, &res), 0);
    cr_assert_eq(res.state, PD_TASK_FAILED);
    cr_assert_eq(res.code, PD_ELOST, "%s: %s", pd_err_name(res.code), res.error);
    cr_assert(strstr(res.error, "its worker") != NULL, "%s", res.error);
    pd_task_result_clear(&res);
    pd_graph_destroy(&g);
}

Test(sync, node_functions_run_as_jobs_say_so)
{
    start(1, 1);
    double x = 0;
    uint64_t id;
    pd_result_t r;
    cr_assert_eq(pd_map_doubles(c, mod, "not_a_node", &x, 1, NULL, &id), 1);
    cr_assert_eq(pd_fetch(c, &id, 1, 30000, &r, NULL, NULL), 1);
    cr_assert_eq(r.state, PD_JOB_FAILED);
    cr_assert(strstr(r.error, "runs as an asynchronous job") != NULL, "%s", r.error);
    pd_results_clear(&r, 1);
}

Test(sync, unknown_functions_and_modules_are_clear_errors)
{
    start(1, 2);
    pd_graph_t *g = pd_graph_new(2);
    pd_graph_ring(g, "r");
    pd_task_result_t res;
    run("no_such_fn", g, NULL, 0, NULL, &res, 60000);
    cr_assert_eq(res.state, PD_TASK_FAILED);
    cr_assert_eq(res.code, PD_ENOFUNC, "%s", res.error);
    cr_assert(strstr(res.error, "no_such_fn") != NULL, "%s", res.error);
    pd_task_result_clear(&res);
    uint64_t bid;
    cr_assert_eq(pd_task_start(c, PD_BUILTIN, "no_such_node", g, NULL, 0, NULL, &bid), 0, "%s",
                 pd_client_error(c));
    cr_assert_eq(pd_task_fetch(c, bid, 60000, &res), 0);
    cr_assert_eq(res.state, PD_TASK_FAILED);
    cr_assert_eq(res.code, PD_ENOFUNC, "%s", res.error);
    cr_assert(strstr(res.error, "the built-in module has no node function 'no_such_node'") != NULL,
              "%s", res.error);
    pd_task_result_clear(&res);
    char fake[PD_HASH_HEX];
    memset(fake, 'b', 64);
    fake[64] = 0;
    uint64_t id;
    cr_assert_eq(pd_task_start(c, fake, "nap", g, NULL, 0, NULL, &id), PD_ENOMODULE);
    pd_graph_destroy(&g);
}

/* Reads a whole file (the example module) into a malloc'ed string. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot read %s", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strdup(buf);
}

/* The node results of heat, concatenated: the whole solution. */
static size_t heat_cells(const pd_task_result_t *res, double *u, size_t cap)
{
    size_t at = 0;
    for (int i = 0; i < res->n; i++) {
        const uint8_t *p = res->nodes[i].value;
        size_t n, hdr;
        if ((p[0] & 0xf0) == 0x90) {
            n = p[0] & 15;
            hdr = 1;
        } else {
            cr_assert_eq(p[0], 0xdc);
            n = (size_t) p[1] << 8 | p[2];
            hdr = 3;
        }
        cr_assert_leq(at + n, cap);
        for (size_t k = 0; k < n; k++) {
            const uint8_t *q = p + hdr + 9 * k;
            cr_assert_eq(q[0], 0xcb);
            uint64_t bits = 0;
            for (int b = 1; b <= 8; b++)
                bits = bits << 8 | q[b];
            memcpy(&u[at + k], &bits, 8);
        }
        at += n;
    }
    return at;
}

Test(sync, heat_on_four_nodes_equals_heat_on_one_to_the_last_bit)
{
    start(1, 4);
    char *src = slurp(PD_SOURCE_ROOT "/examples/heat/heat.c");
    char *path = pd_harness_module(&h, "heat.c", src);
    free(src);
    char heat[PD_HASH_HEX];
    cr_assert_eq(pd_module_upload_file(c, path, heat), 0, "%s", pd_client_error(c));
    free(path);
    /* {"cells": 1000, "steps": 400, "r": 0.45} for every node */
    static const uint8_t one[] = {0x83, 0xa5, 'c', 'e', 'l', 'l', 's', 0xcd, 0x03, 0xe8,
                                  0xa5, 's', 't', 'e', 'p', 's', 0xcd, 0x01, 0x90,
                                  0xa1, 'r', 0xcb, 0x3f, 0xdc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcd};
    static double u4[1000], u1[1000];
    for (int run_n = 1; run_n <= 4; run_n += 3) {
        pd_graph_t *g = pd_graph_new(run_n);
        pd_graph_chain(g, "right");
        pd_graph_chain_back(g, "left");
        uint8_t args[4 * sizeof one];
        for (int i = 0; i < run_n; i++)
            memcpy(args + i * sizeof one, one, sizeof one);
        uint64_t id;
        pd_task_result_t res;
        cr_assert_eq(pd_task_start(c, heat, "heat", g, args, run_n * sizeof one, NULL, &id), 0,
                     "%s", pd_client_error(c));
        cr_assert_eq(pd_task_fetch(c, id, 120000, &res), 0, "%s", pd_client_error(c));
        cr_assert_eq(res.state, PD_TASK_DONE, "%s", res.error);
        cr_assert_eq(heat_cells(&res, run_n == 1 ? u1 : u4, 1000), 1000u);
        pd_task_result_clear(&res);
        pd_graph_destroy(&g);
    }
    cr_assert_eq(memcmp(u1, u4, sizeof u1), 0, "4 nodes differ from 1 node");
    /* and the physics is sane: symmetric, decaying, positive in the middle */
    double asym = u1[0] - u1[999];
    cr_assert(asym < 1e-12 && asym > -1e-12, "not symmetric: %g", asym);
    cr_assert_gt(u1[500], 0.1);
    cr_assert_lt(u1[500], 1.0);
}
