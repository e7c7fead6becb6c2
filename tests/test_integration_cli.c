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
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pd_harness_t h;
static char submit[1024];

static const char *SRC = "#include <playdoh_task.h>\n"
                         "#include <signal.h>\n"
                         "#include <time.h>\n"
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
                         "PD_TASK(patient, t) { struct timespec ts = {0, 10000000}; "
                         "while (!pd_node_stopping(t)) nanosleep(&ts, NULL); "
                         "return pd_out_double(t, 100 + pd_node_index(t)); }\n"
                         "PD_TASK_DOUBLE(nap, x) { struct timespec ts = {(time_t) (x / 1000), "
                         "(long) ((x - 1000 * (time_t) (x / 1000)) * 1e6)}; nanosleep(&ts, NULL); "
                         "return x; }\n"
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
    cr_assert_eq(st, 2, "a fitness the module lacks is bad input: %s", out);
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
    int st = pd_harness_run(&out, "cc -O2 -fPIC -shared -I%s/include/playdoh -o %s/m.so %s/m.c 2>&1",
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

/* ---- a broken module fails once (issue 16, item 1) ----------------------- */

/* Lines in text. */
static int lines(const char *text)
{
    int n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

/* Asserts that the broker holds no unfinished job. */
static void assert_nothing_queued(void)
{
    char *out;
    int st = pd_harness_run(&out, "%s --broker %s cluster --json", submit, h.endpoint);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strstr(out, "\"queued\":0") != NULL, "jobs left queued: %s", out);
    free(out);
}

Test(cli, a_module_that_does_not_compile_fails_once_naming_the_users_file)
{
    free(file("bad.c", "#include <playdoh_task.h>\n"
                       "PD_TASK_DOUBLE(bad, x) { return x * x }\n"));
    char *out, *err;
    int st = pd_harness_run(&out, "seq 1 200 | %s --broker %s map %s/bad.c bad 2>%s/err.txt",
                            submit, h.endpoint, h.dir, h.dir);
    cr_assert_eq(st, 2, "exit %d: %s", st, out);
    cr_assert_str_eq(out, "", "no result line on standard output");
    free(out);
    st = pd_harness_run(&err, "cat %s/err.txt", h.dir);
    cr_assert_lt(lines(err), 30, "%s", err);
    cr_assert(strstr(err, "bad.c:2:38: error:") != NULL, "the user's file and line: %s", err);
    cr_assert(strstr(err, "modules/") == NULL && strstr(err, ".cache") == NULL,
              "the cache's copy is named: %s", err);
    cr_assert(strstr(err, "the other 199 jobs were cancelled") != NULL, "%s", err);
    free(err);
    assert_nothing_queued();
    /* A module of several files names the file at fault. */
    free(file("util.h", "double twice(double x);\n"));
    free(file("util.c", "#include \"util.h\"\ndouble twice(double x) { return 2 * x; }\n"));
    free(file("use.c", "#include <playdoh_task.h>\n#include \"util.h\"\n"
                       "PD_TASK_DOUBLE(use, x) { return twice(x) + y; }\n"));
    st = pd_harness_run(&err, "seq 1 50 | %s --broker %s map %s/util.c,%s/use.c,%s/util.h use "
                        "2>&1 >/dev/null", submit, h.endpoint, h.dir, h.dir, h.dir);
    cr_assert_eq(st, 2, "exit %d: %s", st, err);
    cr_assert(strstr(err, "use.c:3:") != NULL, "%s", err);
    cr_assert_lt(lines(err), 30, "%s", err);
    free(err);
}

Test(cli, a_misspelt_function_is_one_error)
{
    char *out;
    int st = pd_harness_run(&out, "seq 1 50 | %s --broker %s map %s/m.c sqaure 2>&1", submit,
                            h.endpoint, h.dir);
    cr_assert_eq(st, 2, "exit %d: %s", st, out);
    cr_assert_eq(lines(out), 2, "one error and one summary: %s", out);
    cr_assert(strstr(out, "has no function 'sqaure'") != NULL, "%s", out);
    free(out);
    assert_nothing_queued();
    /* The module itself is fine: its other functions run at once. */
    st = pd_harness_run(&out, "seq 1 3 | %s --broker %s map %s/m.c square", submit, h.endpoint,
                        h.dir);
    cr_assert_eq(st, 0);
    cr_assert_str_eq(out, "1.0\n4.0\n9.0\n");
    free(out);
}

Test(cli, exec_of_a_program_the_worker_lacks_stops_after_its_first_failure)
{
    char *out;
    int st = pd_harness_run(&out, "seq 1 20 | %s --broker %s exec -- pd_no_such_program_x {} "
                            "2>&1", submit, h.endpoint);
    cr_assert_eq(st, 20, "every job failed or was cancelled: exit %d: %s", st, out);
    cr_assert_lt(lines(out), 10, "%s", out);
    cr_assert(strstr(out, "was not found on the worker") != NULL, "%s", out);
    cr_assert(strstr(out, "jobs were cancelled") != NULL, "%s", out);
    cr_assert(strstr(out, "cancelled: cancelled") == NULL, "one line per cancelled job: %s", out);
    free(out);
    assert_nothing_queued();
}

Test(cli, a_task_whose_module_does_not_compile_is_one_error)
{
    free(file("badnode.c", "#include <playdoh_task.h>\n"
                           "PD_TASK(node, t) { return pd_out_double(t, 1) }\n"));
    char *out;
    int st = pd_harness_run(&out, "%s --broker %s task %s/badnode.c node --nodes 2 2>%s/err.txt",
                            submit, h.endpoint, h.dir, h.dir);
    cr_assert_eq(st, 2, "exit %d: %s", st, out);
    cr_assert_str_eq(out, "", "no line per node");
    free(out);
    st = pd_harness_run(&out, "cat %s/err.txt", h.dir);
    cr_assert(strstr(out, "badnode.c:2:46: error:") != NULL, "%s", out);
    cr_assert_lt(lines(out), 30, "%s", out);
    free(out);
    /* An optimisation's fitness module: one result object, one error, exit 2. */
    free(file("badfit.c", "#include <playdoh_fitness.h>\n"
                          "PD_FITNESS(sphere, b, f) { f[0] = 1 }\n"));
    st = pd_harness_run(&out, "%s --broker %s optimize %s/badfit.c sphere --algo pso --dim 2 "
                        "--bounds -1:1 --budget 1000 --islands 2 2>&1", submit, h.endpoint,
                        h.dir);
    cr_assert_eq(st, 2, "exit %d: %s", st, out);
    cr_assert(strstr(out, "\"code\":\"PD_ECOMPILE\"") != NULL, "%s", out);
    cr_assert(strstr(out, "badfit.c:2:36: error:") != NULL, "%s", out);
    cr_assert_lt(lines(out), 30, "%s", out);
    free(out);
}

/* ---- Ctrl-C ---------------------------------------------------------------- */

/* Starts argv with standard input from the file in, standard output and
   error to the files out and err (in h.dir). Returns its pid. */
static pid_t spawn(char *const argv[], const char *in, const char *out, const char *err)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", h.dir, in);
        int fd = open(path, O_RDONLY);
        dup2(fd, 0);
        snprintf(path, sizeof path, "%s/%s", h.dir, out);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        snprintf(path, sizeof path, "%s/%s", h.dir, err);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* The contents of h.dir/name (malloc'ed; "" when it is not there yet). */
static char *slurp(const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", h.dir, name);
    FILE *f = fopen(path, "r");
    char *text = calloc(1, 1 << 16);
    cr_assert_not_null(text);
    if (f) { /* not there yet: "" */
        size_t n = fread(text, 1, (1 << 16) - 1, f);
        text[n] = 0;
        fclose(f);
    }
    return text;
}

static int count_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n;
}

/* Waits (bounded) for pid; returns its wait status. */
static int reap(pid_t pid, int seconds)
{
    int st = 0;
    for (int i = 0; i < seconds * 20; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        usleep(50 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    cr_assert_fail("the program did not end within %d s of Ctrl-C", seconds);
    return st;
}

/* Runs argv on the input text, Ctrl-C once `lines` lines are out, returns
   the exit status with *out and *err (malloc'ed). */
static int interrupt_after(char *const argv[], const char *input, int lines, char **out,
                           char **err)
{
    char *in = file("ctrlc.in", input);
    free(in);
    pid_t pid = spawn(argv, "ctrlc.in", "ctrlc.out", "ctrlc.err");
    for (int i = 0; i < 400; i++) { /* 20 s */
        char *o = slurp("ctrlc.out");
        int got = count_lines(o);
        free(o);
        if (got >= lines)
            break;
        usleep(50 * 1000);
    }
    kill(pid, SIGINT);
    int st = reap(pid, 15);
    *out = slurp("ctrlc.out");
    *err = slurp("ctrlc.err");
    cr_assert(WIFEXITED(st), "ended by signal %d\n%s", WTERMSIG(st), *err);
    return WEXITSTATUS(st);
}

/* Nothing of the batch is left queued or running at the broker. */
static void assert_nothing_left(void)
{
    pd_client_t *c = pd_harness_client(&h);
    pd_cluster_info_t ci;
    for (int i = 0; i < 50; i++) {
        cr_assert_eq(pd_cluster_info(c, &ci), 0, "%s", pd_client_error(c));
        bool idle = ci.unfinished == 0;
        pd_cluster_info_clear(&ci);
        if (idle)
            break;
        usleep(100 * 1000);
    }
    cr_assert_eq(pd_cluster_info(c, &ci), 0);
    cr_assert_eq(ci.queued, 0);
    cr_assert_eq(ci.unfinished, 0, "%llu jobs still queued or running",
                 (unsigned long long) ci.unfinished);
    pd_cluster_info_clear(&ci);
    pd_client_destroy(&c);
}

Test(cli, ctrl_c_on_map_prints_what_ended_in_order_and_cancels_the_rest)
{
    char mod[600];
    snprintf(mod, sizeof mod, "%s/m.c", h.dir);
    char *argv[] = {submit, "--broker", h.endpoint, "map", mod, "nap", NULL};
    /* Four short naps end at once; the six of 30 s are running or queued. */
    char *out, *err;
    int code = interrupt_after(argv, "50\n60\n70\n80\n30000\n30000\n30000\n30000\n30000\n30000\n",
                               4, &out, &err);
    cr_assert_eq(code, 130, "exit %d\n%s\n%s", code, out, err);
    /* The results in input order, then one mark per job not done. */
    const char *want_vals[4] = {"50.0", "60.0", "70.0", "80.0"};
    char *line = out, *first_mark = NULL;
    for (int i = 0; i < 10; i++) {
        char *nl = strchr(line, '\n');
        cr_assert_not_null(nl, "line %d missing:\n%s", i + 1, out);
        *nl = 0;
        if (i < 4)
            cr_assert_str_eq(line, want_vals[i], "line %d", i + 1);
        else
            cr_assert(strncmp(line, "{\"cancelled\":true,\"job\":", 24) == 0, "line %d: %s",
                      i + 1, line);
        if (i == 4)
            first_mark = line;
        line = nl + 1;
    }
    cr_assert_str_eq(line, "", "nothing after the marks");
    unsigned long first;
    cr_assert_eq(sscanf(first_mark, "{\"cancelled\":true,\"job\":%lu}", &first), 1);
    /* The summary names the cancelled ids. */
    char ids[64];
    snprintf(ids, sizeof ids, "6 cancelled, with ids: %lu-%lu", first, first + 5);
    cr_assert(strstr(err, "interrupted") && strstr(err, ids), "%s", err);
    cr_assert(strstr(err, "--detach") != NULL, "%s", err);
    free(out);
    free(err);
    assert_nothing_left();
}

Test(cli, ctrl_c_on_exec_prints_what_ended_and_cancels_the_rest)
{
    char *argv[] = {submit, "--broker", h.endpoint, "exec", "--", "sleep {}; echo slept {}",
                    NULL};
    char *out, *err;
    int code = interrupt_after(argv, "0.05\n0.1\n30\n30\n30\n", 2, &out, &err);
    cr_assert_eq(code, 130, "exit %d\n%s\n%s", code, out, err);
    cr_assert(strncmp(out, "slept 0.05\nslept 0.1\n{\"cancelled\":true,\"job\":", 45) == 0, "%s",
              out);
    cr_assert_eq(count_lines(out), 5, "%s", out);
    cr_assert(strstr(err, "3 cancelled, with ids: ") != NULL, "%s", err);
    free(out);
    free(err);
    assert_nothing_left();
}

Test(cli, ctrl_c_on_task_stops_it_and_prints_what_its_nodes_returned)
{
    char mod[600];
    snprintf(mod, sizeof mod, "%s/m.c", h.dir);
    char *argv[] = {submit, "--broker", h.endpoint, "task", mod, "patient", "--nodes", "2", NULL};
    /* The nodes run until told to stop: Ctrl-C once they are started. */
    char *in = file("ctrlc.in", "");
    free(in);
    pid_t pid = spawn(argv, "ctrlc.in", "ctrlc.out", "ctrlc.err");
    pd_client_t *c = pd_harness_client(&h);
    bool started = false;
    for (int i = 0; i < 200 && !started; i++) { /* 20 s */
        pd_cluster_info_t ci;
        cr_assert_eq(pd_cluster_info(c, &ci), 0);
        for (size_t w = 0; w < ci.nworkers; w++)
            started |= ci.workers[w].nodes == 2;
        pd_cluster_info_clear(&ci);
        usleep(100 * 1000);
    }
    cr_assert(started, "the task's nodes never ran");
    usleep(300 * 1000);
    kill(pid, SIGINT);
    int st = reap(pid, 15);
    char *out = slurp("ctrlc.out"), *err = slurp("ctrlc.err");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 130, "status %d\n%s\n%s", st, out, err);
    cr_assert_str_eq(out, "100.0\n101.0\n", "%s", err);
    cr_assert(strstr(err, "interrupted") && strstr(err, "2 of 2 nodes returned"), "%s", err);
    free(out);
    free(err);
    /* The slots are free again. */
    bool free_again = false;
    for (int i = 0; i < 50 && !free_again; i++) {
        pd_cluster_info_t ci;
        cr_assert_eq(pd_cluster_info(c, &ci), 0);
        free_again = ci.nworkers == 1 && ci.workers[0].nodes == 0;
        pd_cluster_info_clear(&ci);
        usleep(100 * 1000);
    }
    cr_assert(free_again, "the task still holds slots");
    pd_client_destroy(&c);
}
