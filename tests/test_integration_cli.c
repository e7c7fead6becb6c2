/* Integration tests of playdoh-submit: the real program against a real
   cluster, JSON lines in and out, ids reused from other processes. */
#include "pd_harness.h"
#include "pd_codec.h"
#include "pd_json.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static pd_harness_t h;
static char submit[1024];

static const char *SRC = "#include <playdoh_task.h>\n"
                         "#include <signal.h>\n"
                         "PD_TASK(ring_sum, t) {\n"
                         "    double mine = pd_node_index(t), sum = mine, base = 0;\n"
                         "    pd_arg_double(t, &base);\n"
                         "    for (int k = 1; k < pd_node_count(t); k++) {\n"
                         "        const double *got; size_t len;\n"
                         "        if (pd_push(t, \"next\", &mine, sizeof mine)) return -1;\n"
                         "        if (pd_pop_doubles(t, \"next\", &got, &len) < 0) return -1;\n"
                         "        mine = got[0]; sum += mine;\n"
                         "    }\n"
                         "    return pd_out_double(t, sum + base);\n"
                         "}\n"
                         "PD_TASK(boom, t) { if (pd_node_index(t) == 1) raise(SIGSEGV); return 0; }\n"
                         "PD_TASK_DOUBLE(square, x) { return x * x; }\n"
                         "PD_TASK_VECTOR(sum, x, n) { double s = 0; for (size_t i = 0; i < n; i++) s += x[i]; return s; }\n";

static void setup(void)
{
    pd_harness_start(&h, NULL);
    pd_harness_add_worker(&h, 2);
    pd_client_t *c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, 2);
    pd_client_destroy(&c);
    snprintf(submit, sizeof submit, "%s", pd_harness_program("playdoh-submit"));
    free(pd_harness_module(&h, "m.c", SRC));
}

static void teardown(void) { pd_harness_stop(&h); }

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 120);

Test(cli, map_prints_one_json_result_per_line_in_input_order)
{
    char *out;
    int st = pd_harness_run(&out, "seq 1 200 | %s --broker %s map %s/m.c square", submit, h.endpoint, h.dir);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    char *line = out;
    for (int i = 1; i <= 200; i++) {
        char *nl = strchr(line, '\n');
        cr_assert_not_null(nl, "only %d lines", i - 1);
        *nl = 0;
        cr_assert_eq(atof(line), (double) i * i, "line %d: %s", i, line);
        line = nl + 1;
    }
    cr_assert_str_eq(line, "");
    free(out);
}

Test(cli, detached_map_then_status_and_results_from_other_processes)
{
    char *out;
    int st = pd_harness_run(&out, "printf '[1,2]\\n[3,4.5]\\n[]\\n' | %s --broker %s map --detach %s/m.c sum",
                 submit, h.endpoint, h.dir);
    cr_assert_eq(st, 0);
    unsigned long a, b;
    cr_assert_eq(sscanf(out, "%lu-%lu", &a, &b), 2, "ids: %s", out);
    cr_assert_eq(b - a, 2);
    free(out);

    st = pd_harness_run(&out, "%s --broker %s wait --wait 30 %lu-%lu && %s --broker %s status %lu-%lu", submit,
             h.endpoint, a, b, submit, h.endpoint, a, b);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strstr(out, "\"state\":\"done\"") != NULL, "%s", out);
    free(out);

    st = pd_harness_run(&out, "%s --broker %s results %lu-%lu", submit, h.endpoint, a, b);
    cr_assert_eq(st, 0);
    char expect[256];
    snprintf(expect, sizeof expect,
             "{\"id\":%lu,\"state\":\"done\",\"value\":3.0}\n"
             "{\"id\":%lu,\"state\":\"done\",\"value\":7.5}\n"
             "{\"id\":%lu,\"state\":\"done\",\"value\":0.0}\n",
             a, a + 1, a + 2);
    cr_assert_str_eq(out, expect);
    free(out);
}

Test(cli, a_json_line_that_does_not_parse_is_named_and_nothing_runs)
{
    char *out;
    int st = pd_harness_run(&out, "printf '1\\n2\\n[3,\\n' | %s --broker %s map %s/m.c square 2>&1", submit,
                 h.endpoint, h.dir);
    cr_assert_eq(st, 2);
    cr_assert(strstr(out, "line 3") != NULL, "%s", out);
    free(out);
}

Test(cli, bad_usage_says_what_is_wrong)
{
    char *out;
    cr_assert_eq(pd_harness_run(&out, "%s frobnicate 2>&1", submit), 2);
    cr_assert(strstr(out, "unknown verb 'frobnicate'") != NULL, "%s", out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "%s --broker %s status banana 2>&1", submit, h.endpoint), 2);
    cr_assert(strstr(out, "'banana' is not a job id") != NULL, "%s", out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "%s --broker %s map /nonexistent.c square /dev/null 2>&1", submit,
                     h.endpoint), 2);
    free(out);
    cr_assert_eq(pd_harness_run(NULL, "%s --help >/dev/null", submit), 0);
}

Test(cli, local_cluster_runs_a_map_by_itself)
{
    char *out;
    int st = pd_harness_run(&out, "seq 1 5 | %s --local 2 map %s/m.c square", submit, h.dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_str_eq(out, "1.0\n4.0\n9.0\n16.0\n25.0\n");
    free(out);
}

/* A loopback port nobody listens on: bound, then closed. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *) &a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *) &a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

Test(cli, no_broker_is_a_clear_error)
{
    char *out;
    int st = pd_harness_run(&out, "PLAYDOH_CONNECT_TIMEOUT_MS=300 %s --broker tcp://127.0.0.1:%d status 1 2>&1",
                 submit, closed_port());
    cr_assert_eq(st, 3);
    cr_assert(strstr(out, "no broker answered") != NULL, "%s", out);
    cr_assert(strstr(out, "connection was refused") != NULL, "%s", out);
    cr_assert(strstr(out, "--local N") != NULL, "%s", out);
    free(out);
}

/* Each way of giving a wrong address gets its own sentence, before any
   question of keys (a non-loopback address asks for CurveZMQ). */
Test(cli, a_wrong_broker_address_is_called_wrong)
{
    static const struct {
        const char *ep, *says;
    } cases[] = {
        {"127.0.0.1:5555", "has no transport: write tcp://127.0.0.1:5555"},
        {"http://127.0.0.1:5555", "the transport 'http'"},
        {"tcp://127.0.0.1", "has no port"},
        {"tcp://nosuchhost.invalid:5555", "cannot find the broker's host 'nosuchhost.invalid'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out;
        int st = pd_harness_run(&out, "PLAYDOH_CONNECT_TIMEOUT_MS=300 %s --broker '%s' status 1 2>&1",
                                submit, cases[i].ep);
        cr_assert_neq(st, 0, "%s", out);
        cr_assert(strstr(out, cases[i].says) != NULL, "%s: %s", cases[i].ep, out);
        cr_assert(strstr(out, "key") == NULL, "%s: asks about keys: %s", cases[i].ep, out);
        free(out);
    }
    /* Something listens there but is no broker: the kernel accepts the
       connection, nothing answers. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *) &a, sizeof a), 0);
    cr_assert_eq(listen(fd, 8), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *) &a, &len), 0);
    char *out;
    int st = pd_harness_run(&out, "PLAYDOH_CONNECT_TIMEOUT_MS=500 %s --broker tcp://127.0.0.1:%d status 1 2>&1",
                            submit, ntohs(a.sin_port));
    close(fd);
    cr_assert_eq(st, 3, "%s", out);
    cr_assert(strstr(out, "did not answer as a Playdoh broker") != NULL, "%s", out);
    free(out);
}

Test(cli, gc_forgets_fetched_results_and_reports_the_journal)
{
    char *ids, *out;
    int st = pd_harness_run(&ids, "seq 1 30 | %s --broker %s map --detach %s/m.c square", submit,
                 h.endpoint, h.dir);
    cr_assert_eq(st, 0, "%s", ids);
    ids[strcspn(ids, "\n")] = 0;
    cr_assert_eq(pd_harness_run(&out, "%s --broker %s results --wait 30 %s", submit, h.endpoint, ids), 0,
                 "%s", out);
    free(out);
    /* Fetched just now: the broker's TTL keeps them; --ttl 0 does not. */
    cr_assert_eq(pd_harness_run(&out, "%s --broker %s gc -q", submit, h.endpoint), 0, "%s", out);
    cr_assert(strstr(out, "\"forgot\":0,") != NULL, "%s", out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "%s --broker %s gc --ttl 0 -q", submit, h.endpoint), 0, "%s", out);
    cr_assert(strstr(out, "\"forgot\":30,") != NULL, "%s", out);
    cr_assert(strstr(out, h.journal) != NULL, "the journal is named: %s", out);
    cr_assert(strstr(out, "\"journal_ok\":true") != NULL, "%s", out);
    unsigned long long bytes = 0;
    const char *b = strstr(out, "\"journal_bytes\":");
    cr_assert_not_null(b, "%s", out);
    bytes = strtoull(b + 16, NULL, 10);
    cr_assert_gt(bytes, 0, "%s", out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "%s --broker %s status %s", submit, h.endpoint, ids), 1,
                 "unknown jobs make exit status 1");
    cr_assert(strstr(out, "\"unknown\"") != NULL, "collected jobs are unknown: %s", out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "%s --broker %s gc extra 2>&1", submit, h.endpoint), 2);
    cr_assert(strstr(out, "gc takes no arguments") != NULL, "%s", out);
    free(out);
    free(ids);
}

Test(cli, task_runs_on_a_graph_file_and_prints_one_line_per_node)
{
    FILE *f = fopen("/tmp/pd-cli-ring.graph", "w");
    cr_assert_not_null(f);
    fputs("# a ring\nnext: ring\n", f);
    fclose(f);
    char *out;
    int st = pd_harness_run(&out, "%s --broker %s task %s/m.c ring_sum --nodes 2 --graph /tmp/pd-cli-ring.graph "
                 "--arg 10", submit, h.endpoint, h.dir);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert_str_eq(out, "11.0\n11.0\n");
    free(out);
    /* per-node arguments */
    f = fopen("/tmp/pd-cli-args.jsonl", "w");
    fputs("100\n200\n", f);
    fclose(f);
    st = pd_harness_run(&out, "%s --broker %s task %s/m.c ring_sum --nodes 2 --graph /tmp/pd-cli-ring.graph "
             "--args /tmp/pd-cli-args.jsonl", submit, h.endpoint, h.dir);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert_str_eq(out, "101.0\n201.0\n");
    free(out);
    unlink("/tmp/pd-cli-args.jsonl");
    unlink("/tmp/pd-cli-ring.graph");
}

Test(cli, detached_task_then_status_results_and_cancel_by_task_id)
{
    char *out;
    int st = pd_harness_run(&out, "echo '{\"next\": \"ring\"}' > /tmp/pd-cli-ring.json && %s --broker %s task "
                 "%s/m.c ring_sum --nodes 2 --graph /tmp/pd-cli-ring.json --detach", submit,
                 h.endpoint, h.dir);
    cr_assert_eq(st, 0, "%s", out);
    unsigned long id;
    cr_assert_eq(sscanf(out, "t%lu", &id), 1, "id: %s", out);
    free(out);
    st = pd_harness_run(&out, "%s --broker %s wait --wait 60 t%lu && %s --broker %s status t%lu", submit,
             h.endpoint, id, submit, h.endpoint, id);
    cr_assert_eq(st, 0, "%s", out);
    char expect[256];
    snprintf(expect, sizeof expect, "{\"task\":%lu,\"state\":\"done\",\"nodes\":2,\"ended\":2}\n",
             id);
    cr_assert_str_eq(out, expect);
    free(out);
    st = pd_harness_run(&out, "%s --broker %s results --release t%lu", submit, h.endpoint, id);
    cr_assert_eq(st, 0, "%s", out);
    snprintf(expect, sizeof expect,
             "{\"task\":%lu,\"node\":0,\"state\":\"done\",\"value\":1.0}\n"
             "{\"task\":%lu,\"node\":1,\"state\":\"done\",\"value\":1.0}\n", id, id);
    cr_assert_str_eq(out, expect);
    free(out);
    st = pd_harness_run(&out, "%s --broker %s status t%lu", submit, h.endpoint, id);
    cr_assert_eq(st, 1, "released: unknown");
    cr_assert(strstr(out, "\"unknown\"") != NULL, "%s", out);
    free(out);
    st = pd_harness_run(&out, "%s --broker %s cancel t%lu 2>&1", submit, h.endpoint, id);
    cr_assert_eq(st, 0);
    cr_assert(strstr(out, "had already ended") != NULL, "%s", out);
    free(out);
    unlink("/tmp/pd-cli-ring.json");
}

Test(cli, task_errors_are_clear)
{
    char *out;
    int st = pd_harness_run(&out, "%s --broker %s task %s/m.c boom --nodes 2 2>&1", submit, h.endpoint, h.dir);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert(strstr(out, "node 1 on ") != NULL, "%s", out);
    cr_assert(strstr(out, "signal 11") != NULL, "%s", out);
    free(out);
    st = pd_harness_run(&out, "%s --broker %s task %s/m.c ring_sum --nodes 5 2>&1", submit, h.endpoint, h.dir);
    cr_assert_eq(st, 3, "%s", out);
    cr_assert(strstr(out, "only 2 slots") != NULL, "%s", out);
    free(out);
    st = pd_harness_run(&out, "%s --broker %s task %s/m.c ring_sum 2>&1", submit, h.endpoint, h.dir);
    cr_assert_eq(st, 2);
    cr_assert(strstr(out, "--nodes N") != NULL, "%s", out);
    free(out);
    st = pd_harness_run(&out, "printf 'next: rnig\\n' > /tmp/pd-bad.graph; %s --broker %s task %s/m.c ring_sum "
             "--nodes 2 --graph /tmp/pd-bad.graph 2>&1", submit, h.endpoint, h.dir);
    cr_assert_eq(st, 2, "%s", out);
    cr_assert(strstr(out, "line 1: 'rnig' is not a graph spec") != NULL, "%s", out);
    free(out);
    unlink("/tmp/pd-bad.graph");
    st = pd_harness_run(&out, "%s --broker %s status t1 17 2>&1", submit, h.endpoint);
    cr_assert_eq(st, 2);
    cr_assert(strstr(out, "job id among task ids") != NULL, "%s", out);
    free(out);
}

/* ---- optimize ------------------------------------------------------------ */

static const char *FIT_SRC = "#include <playdoh_fitness.h>\n"
                             "#include <time.h>\n"
                             "PD_FITNESS(sphere, b, f) {\n"
                             "    for (size_t i = 0; i < b->n; i++) {\n"
                             "        double s = 0;\n"
                             "        for (size_t j = 0; j < b->dim; j++)\n"
                             "            s += b->x[i * b->dim + j] * b->x[i * b->dim + j];\n"
                             "        f[i] = s;\n"
                             "    }\n"
                             "    return 0;\n"
                             "}\n"
                             "/* 5 ms per block: slow enough to watch and to cancel. */\n"
                             "PD_FITNESS(slow, b, f) {\n"
                             "    struct timespec ts = {0, 5000000};\n"
                             "    nanosleep(&ts, NULL);\n"
                             "    for (size_t i = 0; i < b->n; i++) f[i] = b->x[i * b->dim];\n"
                             "    return 0;\n"
                             "}\n";

/* Writes text to <dir>/<name>; returns the path (malloc'ed). */
static char *file(const char *name, const char *text) { return pd_harness_module(&h, name, text); }

/* Parses out as exactly one JSON object and one newline into mp (asserts). */
static void parse_one_json(const char *out, pd_buf_t *mp)
{
    size_t len = strlen(out);
    cr_assert(len > 1 && out[len - 1] == '\n' && !memchr(out, '\n', len - 1),
              "one line: %s", out);
    pd_buf_init(mp);
    char err[256];
    cr_assert_eq(pd_json_to_msgpack(out, len, mp, err, sizeof err), 0, "not JSON (%s): %s", err,
                 out);
}

/* Puts r on the value of the object's top-level key; false when absent. */
static bool seek(pd_rd_t *r, const pd_buf_t *mp, const char *key)
{
    uint32_t n;
    pd_rd_init(r, mp->data, mp->len);
    cr_assert_eq(pd_rd_map(r, &n), 0, "a JSON object");
    for (uint32_t i = 0; i < n; i++) {
        if (pd_rd_key_is(r, key))
            return true;
        pd_rd_skip(r, NULL, NULL);
        pd_rd_skip(r, NULL, NULL);
    }
    return false;
}

static double num(const pd_buf_t *mp, const char *key)
{
    pd_rd_t r;
    double v;
    cr_assert(seek(&r, mp, key), "no \"%s\"", key);
    cr_assert_eq(pd_rd_double(&r, &v), 0, "\"%s\" is a number", key);
    return v;
}

static void str(const pd_buf_t *mp, const char *key, char *buf, size_t cap)
{
    pd_rd_t r;
    cr_assert(seek(&r, mp, key), "no \"%s\"", key);
    cr_assert_eq(pd_rd_strcpy(&r, buf, cap), 0, "\"%s\" is a string", key);
}

Test(cli, optimize_on_a_local_cluster_reaches_a_small_value_and_prints_one_json_object)
{
    char *fit = file("fit.c", FIT_SRC);
    char *bounds = file("sphere.bounds", "# name lo hi\n"
                                         "alpha -5 5\n"
                                         "beta -5 5   # the second\n"
                                         "\n"
                                         "gamma -2 3\n"
                                         "delta -5 5\n");
    char *out;
    int st = pd_harness_run(&out, "%s --local 2 optimize %s sphere --algo pso --bounds %s --islands 2 "
                 "--budget 40000 --seed 1 --history", submit, fit, bounds);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    pd_buf_t mp;
    parse_one_json(out, &mp);
    char stop[32];
    str(&mp, "stop", stop, sizeof stop);
    cr_assert_str_eq(stop, "budget");
    cr_assert_leq(num(&mp, "evaluations"), 40000);
    cr_assert_gt(num(&mp, "evaluations"), 39000);
    cr_assert_eq(num(&mp, "islands"), 2);
    pd_rd_t r;
    uint32_t n;
    double best;
    cr_assert(seek(&r, &mp, "best_f"));
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(pd_rd_double(&r, &best), 0);
    cr_assert_lt(best, 1e-6, "the sphere's minimum is 0: %s", out);
    /* the parameters by the names of the bounds file */
    cr_assert(seek(&r, &mp, "best_params"));
    cr_assert(strstr(out, "{\"alpha\":") && strstr(out, "\"delta\":"), "%s", out);
    /* the history: 2 islands x 1 group x as many entries as iterations */
    cr_assert(seek(&r, &mp, "history"));
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    cr_assert_eq(n, 2);
    pd_buf_free(&mp);
    free(out);
    /* a range with --dim, an initial range, groups and no migration */
    st = pd_harness_run(&out, "%s --local 2 optimize %s sphere --algo cmaes --dim 3 --bounds -5:5 "
             "--init 1:2 --iterations 30 --groups 2 --topology none -q", submit, fit);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    parse_one_json(out, &mp);
    cr_assert_eq(num(&mp, "groups"), 2);
    cr_assert_eq(num(&mp, "iterations"), 30);
    cr_assert(!seek(&r, &mp, "best_params"), "no names without a bounds file: %s", out);
    pd_buf_free(&mp);
    free(out);
    free(fit);
    free(bounds);
}

Test(cli, a_detached_optimisation_is_followed_fetched_and_cancelled_from_other_processes)
{
    char *fit = file("fit.c", FIT_SRC);
    char *out;
    int st = pd_harness_run(&out, "%s --broker %s optimize --detach %s slow --algo ga --dim 2 --bounds "
                 "-1:1 --islands 2 --iterations 60", submit, h.endpoint, fit);
    cr_assert_eq(st, 0, "%s", out);
    unsigned long id;
    cr_assert_eq(sscanf(out, "t%lu", &id), 1, "id: %s", out);
    free(out);
    /* another process waits for it and prints the result */
    st = pd_harness_run(&out, "%s --broker %s optimize-fetch --wait 60 t%lu", submit, h.endpoint, id);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    pd_buf_t mp;
    parse_one_json(out, &mp);
    cr_assert_eq(num(&mp, "task"), (double) id);
    cr_assert_eq(num(&mp, "iterations"), 60);
    char stop[32];
    str(&mp, "stop", stop, sizeof stop);
    cr_assert_str_eq(stop, "iterations");
    pd_buf_free(&mp);
    free(out);
    /* its last progress stays readable until it is released */
    st = pd_harness_run(&out, "%s --broker %s optimize-status t%lu", submit, h.endpoint, id);
    cr_assert_eq(st, 0, "%s", out);
    parse_one_json(out, &mp);
    str(&mp, "state", stop, sizeof stop);
    cr_assert_str_eq(stop, "done");
    pd_buf_free(&mp);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "%s --broker %s optimize-fetch --release t%lu", submit, h.endpoint,
                     id), 0, "%s", out);
    free(out);
    st = pd_harness_run(&out, "%s --broker %s optimize-fetch t%lu", submit, h.endpoint, id);
    cr_assert_eq(st, 1, "released: unknown");
    cr_assert(strstr(out, "\"state\":\"unknown\"") != NULL, "%s", out);
    free(out);

    /* a long run: running while polled, then cancelled by the task verb */
    st = pd_harness_run(&out, "%s --broker %s optimize --detach %s slow --algo pso --dim 2 --bounds -1:1 "
             "--islands 2 --iterations 1000000", submit, h.endpoint, fit);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_eq(sscanf(out, "t%lu", &id), 1, "id: %s", out);
    free(out);
    st = pd_harness_run(&out, "%s --broker %s optimize-fetch --wait 1 t%lu", submit, h.endpoint, id);
    cr_assert_eq(st, 1, "still running: %s", out);
    cr_assert(strstr(out, "\"state\":\"running\"") != NULL, "%s", out);
    free(out);
    for (int i = 0; i < 100; i++) { /* the first progress report */
        st = pd_harness_run(&out, "%s --broker %s optimize-status t%lu", submit, h.endpoint, id);
        if (strstr(out, "\"iteration\""))
            break;
        free(out);
        out = NULL;
        usleep(100000);
    }
    cr_assert_not_null(out, "no progress within 10 s");
    parse_one_json(out, &mp);
    cr_assert_geq(num(&mp, "iteration"), 1);
    cr_assert_geq(num(&mp, "evaluations"), 2 * 40);
    pd_buf_free(&mp);
    free(out);
    cr_assert_eq(pd_harness_run(NULL, "%s --broker %s -q cancel t%lu", submit, h.endpoint, id), 0);
    st = pd_harness_run(&out, "%s --broker %s optimize-fetch --wait 30 --release t%lu 2>&1", submit,
             h.endpoint, id);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert(strstr(out, "\"stop\":\"cancelled\"") != NULL, "%s", out);
    cr_assert(strstr(out, "cancelled") != NULL, "%s", out);
    free(out);
    free(fit);
}

Test(cli, optimize_shows_its_progress_on_a_terminal)
{
    char *fit = file("fit.c", FIT_SRC);
    char *argv[] = {submit, "--broker", h.endpoint, "optimize", fit, "slow", "--algo", "pso",
                    "--dim", "2", "--bounds", "-1:1", "--islands", "2", "--iterations", "150",
                    NULL};
    char *tty;
    cr_assert_eq(pd_harness_run_on_tty(argv, &tty), 0, "%s", tty);
    cr_assert(strstr(tty, "iteration ") && strstr(tty, " evaluations") && strstr(tty, "best "),
              "%s", tty);
    cr_assert(strstr(tty, "\r") != NULL, "redrawn in place: %s", tty);
    cr_assert(strstr(tty, "ended (iterations): 150 iterations") != NULL, "%s", tty);
    free(tty);
    free(fit);
}

Test(cli, bad_optimisation_input_says_what_is_wrong_and_starts_nothing)
{
    char *fit = file("fit.c", FIT_SRC);
    static const struct {
        const char *file, *text; /* a file to write first, or NULL */
        const char *args;        /* after optimize FIT sphere */
        const char *says;
    } cases[] = {
        {NULL, NULL, "--algo psx --dim 2 --bounds -1:1 --budget 1000",
         "--algo wants pso, ga, cmaes, bipop or de, not 'psx'"},
        {NULL, NULL, "--dim 2 --bounds -1:1 --budget 1000", "needs --algo"},
        {NULL, NULL, "--algo pso --bounds -1:1 --budget 1000", "say how many with --dim D"},
        {NULL, NULL, "--algo pso --dim 0 --bounds -1:1 --budget 1000",
         "--dim wants a number of parameters from 1"},
        {NULL, NULL, "--algo pso --dim 2 --bounds 1:-1 --budget 1000",
         "the lower bound must be below the upper bound"},
        {NULL, NULL, "--algo pso --dim 2 --bounds /nonexistent.bounds --budget 1000",
         "cannot read bounds file /nonexistent.bounds"},
        {NULL, NULL, "--algo pso --dim 2 --bounds -1:1", "needs a stopping rule"},
        {NULL, NULL, "--algo pso --dim 2 --bounds -1:1 --target 0.1",
         "--target alone may never be reached"},
        {NULL, NULL, "--algo pso --dim 2 --bounds -1:1 --budget 10",
         "less than one iteration"},
        {NULL, NULL, "--algo pso --dim 2 --bounds -1:1 --init 0:5 --budget 1000",
         "within the bounds"},
        {"bad1.bounds", "a -1 1\nb 1\n", "--algo pso --bounds BAD --budget 1000",
         "line 2: expected 'LO HI' or 'NAME LO HI'"},
        {"bad2.bounds", "a -1 1\na -2 2\n", "--algo pso --bounds BAD --budget 1000",
         "line 2: parameter 'a' is named twice"},
        {"bad3.bounds", "a -1 1\n-2 2\n", "--algo pso --bounds BAD --budget 1000",
         "line 2: name every parameter or none"},
        {"bad4.bounds", "x 3 1\n", "--algo pso --bounds BAD --budget 1000",
         "line 1: lower bound 3 is not below upper bound 1"},
        {"bad5.bounds", "# nothing\n", "--algo pso --bounds BAD --budget 1000",
         "has no parameters"},
        {"ok.bounds", "-1 1\n-1 1\n", "--algo pso --bounds BAD --dim 3 --budget 1000",
         "--dim 3 but bounds file"},
        {"bad.edges", "0 1\n1->5\n", "--algo pso --dim 2 --bounds -1:1 --budget 1000 "
         "--islands 2 --topology BAD", "line 2: island 5 is out of range"},
        {NULL, NULL, "--algo pso --dim 2 --bounds -1:1 --budget 1000 --topology rnig",
         "'rnig' is not ring, full, star or none"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[512], *path = NULL;
        snprintf(args, sizeof args, "%s", cases[i].args);
        if (cases[i].file) {
            path = file(cases[i].file, cases[i].text);
            char *bad = strstr(args, "BAD");
            char rest[512];
            snprintf(rest, sizeof rest, "%s", bad + 3);
            snprintf(bad, sizeof args - (size_t) (bad - args), "%s%s", path, rest);
        }
        char *out;
        int st = pd_harness_run(&out, "%s --broker %s optimize %s sphere %s 2>&1", submit, h.endpoint, fit,
                     args);
        cr_assert_eq(st, 2, "%s: exit %d: %s", args, st, out);
        cr_assert(strstr(out, cases[i].says) != NULL, "%s: expected '%s' in: %s", args,
                  cases[i].says, out);
        free(out);
        free(path);
    }
    /* more islands than slots: the broker refuses, saying so */
    char *out;
    int st = pd_harness_run(&out, "%s --broker %s optimize %s sphere --algo pso --dim 2 --bounds -1:1 "
                 "--budget 1000 --islands 5 2>&1", submit, h.endpoint, fit);
    cr_assert_eq(st, 3, "%s", out);
    cr_assert(strstr(out, "--islands 5 needs a slot per island") != NULL, "%s", out);
    free(out);
    st = pd_harness_run(&out, "%s --broker %s optimize %s no_such_fn --algo pso --dim 2 --bounds -1:1 "
             "--budget 1000 2>&1", submit, h.endpoint, fit);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert(strstr(out, "no_such_fn") != NULL, "%s", out);
    free(out);
    st = pd_harness_run(&out, "%s --local 2 optimize --detach %s sphere --algo pso --dim 2 --bounds -1:1 "
             "--budget 1000 2>&1", submit, fit);
    cr_assert_eq(st, 2, "%s", out);
    cr_assert(strstr(out, "--detach with --local") != NULL, "%s", out);
    free(out);
    st = pd_harness_run(&out, "%s --broker %s optimize-status banana 2>&1", submit, h.endpoint);
    cr_assert_eq(st, 2, "%s", out);
    cr_assert(strstr(out, "'banana' is not an optimisation's id") != NULL, "%s", out);
    free(out);
    free(fit);
}

/* A prebuilt module runs only where it can: a Linux shared object on the
   Linux worker; a Windows DLL, on a cluster that never had a Windows
   worker, is refused at submit with its platform named, and nothing runs. */
Test(cli, a_prebuilt_module_goes_only_to_its_platform)
{
    char *out;
    int st = pd_harness_run(&out, "cc -O2 -fPIC -shared -I%s/client -o %s/m.so %s/m.c 2>&1",
                            PD_SOURCE_ROOT, h.dir, h.dir);
    cr_assert_eq(st, 0, "cc: %s", out);
    free(out);
    st = pd_harness_run(&out, "seq 1 5 | %s --broker %s map %s/m.so square", submit, h.endpoint,
                        h.dir);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert(strstr(out, "25"), "%s", out);
    free(out);
    /* The smallest PE32+ header a DLL for x86-64 has: "MZ", the PE header's
       offset at 0x3c, "PE\0\0", machine 0x8664. */
    unsigned char dll[128] = {'M', 'Z'};
    dll[0x3c] = 0x40;
    memcpy(dll + 0x40, "PE\0\0\x64\x86", 6);
    char path[600];
    snprintf(path, sizeof path, "%s/m.dll", h.dir);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(dll, 1, sizeof dll, f), sizeof dll);
    fclose(f);
    st = pd_harness_run(&out, "seq 1 5 | %s --broker %s map %s square 2>&1", submit, h.endpoint,
                        path);
    cr_assert_neq(st, 0, "%s", out);
    cr_assert(strstr(out, "prebuilt for windows-x86_64") && strstr(out, "linux-x86_64"), "%s",
              out);
    free(out);
}
