/* Integration tests of playdoh-submit: the real program against a real
   cluster, JSON lines in and out, ids reused from other processes. */
#include "pd_harness.h"

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
