/*  submit_task: the verb `task` of playdoh-submit and the task ids (t17) of
    status, results, wait and cancel.

        playdoh-submit task MODULE.c FUNCTION --nodes N --graph FILE
                            [--args FILE.jsonl | --arg JSON] [--detach] ...

    The graph file is read with pd_graph_load (docs/sync.md gives its two
    forms), the arguments are checked (one JSON line per node, or one value
    for all), then the module is shipped and the task started; its nodes'
    results come back as one JSON line each, in node order.
*/
#include "submit.h"

#include "pd_json.h"
#include "pd_plat.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>



/* One line per node: its value (records false), or a record
   {"task","node","state","value"|"code","error"} (records true). A failed
   or stopped node without records prints {"error","node","code"}. Returns
   how many nodes did not end done. */
static const char S_USAGE[] =
    "usage: playdoh-submit [GLOBAL OPTIONS] task [OPTIONS] MODULE FUNCTION --nodes N\n"
    "\n"
    "Runs FUNCTION of MODULE on N nodes at once (a synchronous task: docs/sync.md), each\n"
    "node on its own slot; the nodes exchange data with pd_push and pd_pop along the tubes\n"
    "of the graph file. Prints each node's result as a JSON line, in node order; a failed\n"
    "task prints {\"error\": ..., \"node\": I, \"code\": ..} for its failed or stopped\n"
    "nodes and the reason (node, host, message) on standard error.\n"
    "\n"
    "options:\n"
    "      --nodes N        the number of nodes, 1 to 4096 (required)\n"
    "      --graph FILE     the tubes: lines 'TUBE: SPEC, ...' with SPEC one of ring,\n"
    "                       ring-back, chain, chain-back, all-to-all, star-out HUB,\n"
    "                       star-in HUB, SRC->DST; or a JSON object (docs/sync.md)\n"
    "  -a, --args FILE      one JSON line per node: node i gets line i+1 (default: null)\n"
    "      --arg JSON       the same argument for every node\n"
    "      --io-timeout-ms N  a push or pop waits at most N ms (default 60000; 0: for ever)\n"
    "      --start-timeout-ms N  the nodes must meet within N ms (default 300000)\n"
    "      --timeout-ms N   fail the task when it runs longer than N ms after its start\n"
    "      --window N       messages in flight per edge (default 16384)\n"
    "      --gpu            each node on a GPU slot of its own (pd_cuda_* in the node;\n"
    "                       docs/gpu.md); a .cu beside a .c MODULE travels with it\n"
    "      --cuda FILE.cu   ship these CUDA kernels to the nodes (implies --gpu)\n"
    "      --detach         print the task's id (t17) and return without waiting\n"
    "\n"
    "status, results, wait and cancel take task ids (t17, t3-5) as they take job ids.\n"
    "Ctrl-C stops the task (its nodes see pd_node_stopping() and return what they have)\n"
    "and prints their results; a second Ctrl-C cancels it.\n"
    "\n"
    "exit status: 0 done, 1 failed or cancelled, 2 bad usage or input, 3 broker problem\n"
    "(for instance a task of more nodes than the cluster has slots), 130 after Ctrl-C\n";

static const char S_USAGE_STOP[] =
    "usage: playdoh-submit [GLOBAL OPTIONS] stop ID...\n"
    "\n"
    "Asks synchronous tasks and optimisations (t17, t3-5) to stop: their nodes see\n"
    "pd_node_stopping() and end with their results; an optimisation ends after its current\n"
    "iteration with its best point (fetch it with optimize-fetch). A task that has not\n"
    "started yet is cancelled. cancel, by contrast, ends them at once and keeps nothing.\n"
    "\n"
    "exit status: 0, 2 bad usage, 3 broker problem\n";

static const pd_submit_opt_t s_opts[] = {
    {"timeout-ms", required_argument, O_TIMEOUT},
    {"detach", no_argument, O_DETACH},
    {"gpu", no_argument, O_GPU},
    {"cuda", required_argument, O_CUDA},
    {"args", required_argument, O_ARGS},
    {"nodes", required_argument, O_NODES},
    {"graph", required_argument, O_GRAPH},
    {"arg", required_argument, O_ARG},
    {"io-timeout-ms", required_argument, O_IO},
    {"start-timeout-ms", required_argument, O_START},
    {"window", required_argument, O_WINDOW},
    {NULL, 0, 0},
};

/* Applies one of task's own options. */
static int s_apply(pd_submit_t *s, int code, const char *arg, int bad_exit)
{
    pd_submit_opts_t *o = &s->o;
    uint32_t u;
    uint64_t v;
    switch (code) {
    case O_NODES:
        if (!pd_submit_count(s, "nodes", "a number of nodes", arg, 1, 4096, &v))
            return bad_exit;
        o->nodes = (int) v;
        break;
    case O_GRAPH: o->graph = arg; break;
    case O_ARG: o->arg = arg; break;
    case O_IO:
        if (!pd_submit_parse_u32(arg, &u) || u > INT32_MAX) {
            pd_submit_usage_error(s, "--io-timeout-ms wants milliseconds (0: for ever), not '%s'",
                                  arg);
            return bad_exit;
        }
        o->io_timeout_ms = u == 0 ? PD_TASK_NO_TIMEOUT : (int) u;
        break;
    case O_START:
        if (!pd_submit_parse_u32(arg, &o->start_timeout_ms) || o->start_timeout_ms == 0) {
            pd_submit_usage_error(s, "--start-timeout-ms wants milliseconds, not '%s'", arg);
            return bad_exit;
        }
        break;
    case O_WINDOW:
        if (!pd_submit_count(s, "window", "a number of messages", arg, 1, 1u << 24, &v))
            return bad_exit;
        o->window = (uint32_t) v;
        break;
    default: break;
    }
    return 0;
}

static size_t s_print_nodes(const pd_task_result_t *res, bool records)
{
    pd_buf_t out;
    pd_buf_init(&out);
    size_t bad = 0;
    for (int i = 0; i < res->n; i++) {
        const pd_result_t *r = &res->nodes[i];
        char head[128];
        if (records) {
            snprintf(head, sizeof head, "{\"task\":%" PRIu64 ",\"node\":%d,\"state\":\"%s\"",
                     res->id, i, pd_job_state_name(r->state));
            pd_submit_put(&out, head);
        }
        if (r->state == PD_JOB_DONE) {
            if (records)
                pd_submit_put(&out, ",\"value\":");
            pd_msgpack_to_json(r->value, r->len, &out);
            pd_submit_put(&out, records ? "}\n" : "\n");
        } else {
            bad++;
            if (records) {
                pd_submit_put(&out, ",\"code\":");
                pd_submit_put_json_str(&out, pd_err_name(r->code));
                pd_submit_put(&out, ",\"error\":");
                pd_submit_put_json_str(&out, r->error ? r->error : "");
                pd_submit_put(&out, "}\n");
            } else {
                pd_submit_put(&out, "{\"error\":");
                pd_submit_put_json_str(&out, r->error ? r->error : pd_job_state_name(r->state));
                snprintf(head, sizeof head, ",\"node\":%d,\"code\":", i);
                pd_submit_put(&out, head);
                pd_submit_put_json_str(&out, pd_err_name(r->code));
                pd_submit_put(&out, "}\n");
            }
        }
        if (out.len > (1u << 20))
            pd_submit_flush(&out);
    }
    pd_submit_flush(&out);
    pd_buf_free(&out);
    return bad;
}

/* The nodes' arguments: --args FILE (one line per node), --arg JSON (the
   same for all) or none (null for every node). Returns 0 or 2. */
static int s_args(const pd_submit_t *s, pd_buf_t *args, bool *given)
{
    const pd_submit_opts_t *o = &s->o;
    *given = false;
    if (o->args_file && o->arg) {
        pd_submit_usage_error(s, "--args and --arg exclude each other");
        return 2;
    }
    if (o->args_file) {
        size_t n = 0;
        int rc = pd_submit_read_args(o->args_file, args, &n);
        if (rc)
            return rc;
        if (n != (size_t) o->nodes) {
            fprintf(stderr, "playdoh-submit: %s has %zu arguments but the task has %d nodes "
                    "(one JSON line per node)\n", o->args_file, n, o->nodes);
            return 2;
        }
        *given = true;
    } else if (o->arg) {
        for (int i = 0; i < o->nodes; i++) {
            char err[256];
            if (pd_json_to_msgpack(o->arg, strlen(o->arg), args, err, sizeof err)) {
                fprintf(stderr, "playdoh-submit: --arg: %s\n", err);
                return 2;
            }
        }
        *given = true;
    }
    return 0;
}

#define S_POLL_MS 200 /* the longest wait between two looks for Ctrl-C */

/* Waits for task id to end and fills res, as pd_task_fetch. The first
   Ctrl-C asks the task to stop (pd_task_stop: its nodes see
   pd_node_stopping() and return what they have), and the wait goes on for
   their results; a second cancels it (pd_task_cancel) and returns at once.
   *interrupted says whether Ctrl-C came. Returns pd_task_fetch's code. */
static int s_follow(pd_client_t *c, uint64_t id, pd_task_result_t *res, bool *interrupted)
{
    int sigints = 0, rc;
    pd_plat_catch_interrupt(true);
    for (;;) {
        rc = pd_task_fetch(c, id, S_POLL_MS, res);
        if (rc != PD_ETIMEDOUT)
            break;
        if (!pd_plat_interrupt_taken()) {
            pd_task_result_clear(res);
            continue;
        }
        *interrupted = true;
        if (++sigints == 1) {
            pd_task_result_clear(res);
            fprintf(stderr, "playdoh-submit: interrupted: stopping task t%" PRIu64 ": its nodes "
                    "return what they have (Ctrl-C again to cancel it)\n", id);
            if (pd_task_stop(c, id) < 0)
                fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
            continue;
        }
        fprintf(stderr, "playdoh-submit: interrupted again: cancelling task t%" PRIu64 "\n", id);
        if (pd_task_cancel(c, id) < 0)
            fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        break; /* res holds its state as of now */
    }
    pd_plat_catch_interrupt(false);
    return rc == PD_ETIMEDOUT ? 0 : rc;
}

static int s_run(pd_submit_t *s, int argc, char **argv)
{
    const pd_submit_opts_t *o = &s->o;
    if (argc != 2) {
        pd_submit_usage_error(s, "needs MODULE FUNCTION (and --nodes N, --graph FILE)");
        return 2;
    }
    if (o->nodes == 0) {
        pd_submit_usage_error(s, "needs --nodes N (how many nodes run the function)");
        return 2;
    }
    pd_graph_t *g = pd_graph_new(o->nodes);
    if (!g) {
        fprintf(stderr, "playdoh-submit: out of memory\n");
        return 2;
    }
    char err[512];
    if (o->graph && pd_graph_load(g, o->graph, err, sizeof err)) {
        fprintf(stderr, "playdoh-submit: %s\n", err);
        pd_graph_destroy(&g);
        return 2;
    }
    pd_buf_t args;
    pd_buf_init(&args);
    bool given;
    int rc = s_args(s, &args, &given);
    pd_client_t *c = rc ? NULL : pd_submit_connect(s);
    if (rc || !c) {
        pd_buf_free(&args);
        pd_graph_destroy(&g);
        return rc ? rc : 3;
    }
    char hash[PD_HASH_HEX], cuda_hash[PD_HASH_HEX];
    bool cuda = false;
    int up = pd_submit_upload_cuda(s, argv[0], cuda_hash, &cuda);
    if (up) {
        pd_buf_free(&args);
        pd_graph_destroy(&g);
        return up;
    }
    rc = pd_module_upload_file(c, argv[0], hash);
    uint64_t id = 0;
    if (rc == 0) {
        pd_task_opts_t to = {.io_timeout_ms = o->io_timeout_ms,
                             .start_timeout_ms = o->start_timeout_ms,
                             .timeout_ms = o->timeout_ms, .window = o->window,
                             .gpu = o->gpu, .cuda = cuda ? cuda_hash : NULL};
        rc = pd_task_start(c, hash, argv[1], g, given ? args.data : NULL, args.len, &to, &id);
    }
    pd_buf_free(&args);
    pd_graph_destroy(&g);
    if (rc) {
        fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        return rc == PD_EIO ? 2 : 3;
    }
    if (o->detach) {
        printf("t%" PRIu64 "\n", id);
        return 0;
    }
    pd_task_result_t res;
    bool interrupted = false;
    rc = s_follow(c, id, &res, &interrupted);
    if (rc) {
        fprintf(stderr, "playdoh-submit: task t%" PRIu64 ": %s\n", id, pd_client_error(c));
        pd_task_result_clear(&res);
        return interrupted ? PD_SUBMIT_INTERRUPTED : 3;
    }
    int exit_code = 0;
    if (res.state == PD_TASK_FAILED && (res.code == PD_ECOMPILE || res.code == PD_ENOFUNC)) {
        /* The module cannot run the function on any node: one error, no
           line per node (the broker failed the task at its first node). */
        fprintf(stderr, "playdoh-submit: task t%" PRIu64 " failed: %s\n", id,
                res.error ? res.error : pd_strerror(res.code));
        pd_task_release(c, id);
        pd_task_result_clear(&res);
        return 2;
    }
    size_t returned = res.nodes ? (size_t) res.n - s_print_nodes(&res, false) : 0;
    if (interrupted) {
        fprintf(stderr, "playdoh-submit: interrupted: task t%" PRIu64 " %s: %zu of %d nodes "
                "returned a value, printed above\n", id, pd_task_state_name(res.state), returned,
                res.n);
        exit_code = PD_SUBMIT_INTERRUPTED;
    } else if (res.state != PD_TASK_DONE) {
        if (!o->quiet)
            fprintf(stderr, "playdoh-submit: task t%" PRIu64 " %s: %s\n", id,
                    pd_task_state_name(res.state), res.error ? res.error : "");
        exit_code = 1;
    }
    pd_task_release(c, id);
    pd_task_result_clear(&res);
    return exit_code;
}

/* ---- task ids ------------------------------------------------------------ */

/* Parses t17 and t3-5 items. Returns 0, or 2 after printing why. */
static int s_parse_task_ids(pd_submit_t *s, int argc, char **argv, uint64_t **ids, size_t *n)
{
    char **plain = malloc((size_t) argc * sizeof *plain);
    if (!plain)
        return 2;
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] != 't') {
            free(plain);
            pd_submit_usage_error(s, "'%s' is a job id among task ids: give tasks (t17) and "
                                  "jobs in separate commands", argv[i]);
            return 2;
        }
        plain[i] = argv[i] + 1;
    }
    int rc = pd_submit_parse_ids(s, argc, plain, ids, n);
    free(plain);
    return rc;
}

/* status of one task: a JSON line; returns 0, 1 (unknown) or 3. */
static int s_status(pd_client_t *c, uint64_t id)
{
    pd_task_info_t info;
    if (pd_task_status(c, id, &info)) {
        fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        return 3;
    }
    printf("{\"task\":%" PRIu64 ",\"state\":\"%s\",\"nodes\":%d,\"ended\":%d}\n", id,
           pd_task_state_name(info.state), info.nodes, info.ended);
    return info.state == PD_TASK_UNKNOWN ? 1 : 0;
}

/* results (print) or wait (no print) of one task; returns its exit status. */
static int s_results(pd_submit_t *s, pd_client_t *c, uint64_t id, bool print, double wait_s)
{
    pd_task_result_t res;
    int rc = pd_task_fetch(c, id, wait_s < 0 ? -1 : (int) (wait_s * 1000), &res);
    int exit_code = 0;
    if (rc && rc != PD_ETIMEDOUT) {
        fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        exit_code = 3;
    } else if (!pd_task_state_final(res.state)) {
        if (print)
            printf("{\"task\":%" PRIu64 ",\"state\":\"%s\"}\n", id, pd_task_state_name(res.state));
        else if (!s->o.quiet)
            fprintf(stderr, "playdoh-submit: task t%" PRIu64 " still %s after the wait\n", id,
                    pd_task_state_name(res.state));
        exit_code = 1;
    } else {
        if (print && res.state == PD_TASK_UNKNOWN)
            printf("{\"task\":%" PRIu64 ",\"state\":\"unknown\"}\n", id);
        else if (print)
            s_print_nodes(&res, true);
        if (res.state != PD_TASK_DONE) {
            exit_code = 1;
            if (!s->o.quiet && res.error)
                fprintf(stderr, "playdoh-submit: task t%" PRIu64 " %s: %s\n", id,
                        pd_task_state_name(res.state), res.error);
        }
        if (print && s->o.release)
            pd_task_release(c, id);
    }
    pd_task_result_clear(&res);
    return exit_code;
}

int pd_submit_tasks(pd_submit_t *s, const char *verb, int argc, char **argv)
{
    uint64_t *ids;
    size_t n;
    int rc = s_parse_task_ids(s, argc, argv, &ids, &n);
    if (rc)
        return rc;
    pd_client_t *c = pd_submit_connect(s);
    if (!c) {
        free(ids);
        return 3;
    }
    bool print = strcmp(verb, "results") == 0;
    double wait_s = s->o.wait_set ? s->o.wait_s : (print ? 0 : -1);
    int exit_code = 0;
    for (size_t i = 0; i < n && exit_code != 3; i++) {
        int one;
        if (strcmp(verb, "status") == 0) {
            one = s_status(c, ids[i]);
        } else if (strcmp(verb, "cancel") == 0 || strcmp(verb, "stop") == 0) {
            bool cancel = verb[0] == 'c';
            int k = cancel ? pd_task_cancel(c, ids[i]) : pd_task_stop(c, ids[i]);
            one = k < 0 ? 3 : 0;
            if (k < 0)
                fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
            else if (!s->o.quiet)
                fprintf(stderr, "playdoh-submit: task t%" PRIu64 " %s\n", ids[i],
                        !k ? "had already ended (or is unknown)"
                        : cancel ? "cancelled" : "asked to stop");
        } else {
            one = s_results(s, c, ids[i], print, wait_s);
        }
        if (one > exit_code)
            exit_code = one;
    }
    free(ids);
    return exit_code;
}

static int s_stop(pd_submit_t *s, int argc, char **argv)
{
    return pd_submit_tasks(s, "stop", argc, argv);
}

const pd_submit_verb_t pd_submit_verb_task = {.name = "task", .usage = S_USAGE, .opts = s_opts,
                                              .apply = s_apply, .run = s_run, .bad_exit = 2};
const pd_submit_verb_t pd_submit_verb_stop = {.name = "stop", .usage = S_USAGE_STOP,
                                              .run = s_stop, .bad_exit = 2};
