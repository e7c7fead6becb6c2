/*  pd_client_optim: optimisations on the cluster (playdoh.h, "optimisation
    on the cluster"; docs/optimisation.md "On a cluster").

    A run is a synchronous task of the user's module whose function is the
    workers' built-in island node (PD_OPTIM_NODE_FN): one node per island,
    each with the same argument (pd_optim_task_arg), over a graph of three
    tubes: "migrate" along the migration topology, "gather" (every node to
    node 0) and "decide" (node 0 to every node). The task's results are the
    islands' parts, merged by pd_optim_task_collect; its progress is node
    0's latest report, read with the task_progress request.
*/
#include "playdoh.h"

#include "pd_client_int.h"
#include "pd_optim_task.h"
#include "pd_topo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_PROGRESS_POLL_MS 200 /* pd_optim_cluster: how often progress is read */

/* The task's graph for options o (checked). Returns it or NULL (out of memory). */
static pd_graph_t *s_graph(const pd_optim_opts_t *o)
{
    int n = (int) o->islands;
    pd_graph_t *g = pd_graph_new(n);
    pd_topo_t *t = pd_topo_new(o->topology, o->islands, o->edges, o->edge_count);
    if (!g || !t) {
        pd_graph_destroy(&g);
        pd_topo_destroy(&t);
        return NULL;
    }
    bool migrate = o->migration_interval > 0 && o->topology != PD_TOPO_NONE && n > 1;
    int rc = 0;
    for (uint32_t i = 0; migrate && i < o->islands && rc == 0; i++) {
        const uint32_t *to;
        size_t k = pd_topo_out(t, i, &to);
        for (size_t e = 0; e < k && rc == 0; e++)
            rc = pd_graph_edge(g, PD_OPTIM_TUBE_MIGRATE, (int) i, (int) to[e]);
    }
    if (rc == 0 && n > 1)
        rc = pd_graph_star_in(g, PD_OPTIM_TUBE_GATHER, 0);
    if (rc == 0 && n > 1)
        rc = pd_graph_star_out(g, PD_OPTIM_TUBE_DECIDE, 0);
    pd_topo_destroy(&t);
    if (rc)
        pd_graph_destroy(&g);
    return g;
}

int pd_optim_submit(pd_client_t *c, const char *module, const char *fitness,
                    const pd_optim_opts_t *o, const pd_optim_cluster_opts_t *co, uint64_t *id)
{
    char err[1024] = "";
    pd_buf_t arg;
    pd_buf_init(&arg);
    int rc = pd_optim_task_arg(o, fitness, co ? co->shared : NULL, co ? co->shared_len : 0, &arg,
                               err, sizeof err);
    if (rc) {
        pd_buf_free(&arg);
        return pd_client_fail(c, rc, "%s", rc == PD_ENOMEM ? "out of memory" : err);
    }
    /* every node gets the same argument */
    pd_buf_t args;
    pd_buf_init(&args);
    for (uint32_t i = 0; i < o->islands; i++)
        pd_buf_append(&args, arg.data, arg.len);
    pd_graph_t *g = args.failed ? NULL : s_graph(o);
    pd_buf_free(&arg);
    if (!g) {
        pd_buf_free(&args);
        return pd_client_fail(c, PD_ENOMEM, "out of memory for the optimisation's task");
    }
    pd_task_opts_t to = co ? co->task : (pd_task_opts_t){0};
    if (to.io_timeout_ms == 0)
        to.io_timeout_ms = PD_TASK_NO_TIMEOUT;
    rc = pd_task_start(c, module, PD_OPTIM_NODE_FN, g, args.data, args.len, &to, id);
    pd_graph_destroy(&g);
    pd_buf_free(&args);
    return rc;
}

int pd_optim_status(pd_client_t *c, uint64_t id, pd_optim_status_t *st)
{
    memset(st, 0, sizeof *st);
    pd_m_task_progress_t q = {.id = id};
    pd_m_task_report_t a;
    uint64_t req = pd_client_request(c, &pd_proto_task_progress, &q);
    int rc = pd_client_call_idem(c, req, &pd_proto_task_report, &a, 0, pd_client_timeout(c));
    if (rc)
        return rc;
    if (a.state > PD_TASK_STARTING)
        return pd_client_fail(c, PD_EPROTO, "broker sent a malformed 'task_report' reply");
    const uint8_t *val = a.val.p;
    size_t len = a.val.len;
    st->state = (pd_task_state_t) a.state;
    if (len == 1 && val[0] == 0xc0) /* nil: no report yet */
        return 0;
    pd_optim_task_progress_t p;
    if ((rc = pd_optim_task_progress_decode(val, len, &p)))
        return pd_client_fail(c, rc, "task %llu's progress is not an optimisation's (was it "
                              "started by pd_optim_submit?)", (unsigned long long) id);
    st->has_progress = true;
    st->iteration = p.iteration;
    st->evaluations = p.evaluations;
    st->wall_s = p.wall_s;
    st->groups = p.groups;
    st->best_f = p.best_f; /* ownership moves to st */
    return 0;
}

void pd_optim_status_clear(pd_optim_status_t *st)
{
    if (!st)
        return;
    free(st->best_f);
    memset(st, 0, sizeof *st);
}

/* Fills res with a failure of the whole run. */
static int s_res_fail(pd_optim_result_t *res, int code, const char *msg)
{
    free(res->error);
    res->code = code;
    res->error = strdup(msg);
    res->stop = PD_STOP_ERROR;
    return code;
}

int pd_optim_fetch(pd_client_t *c, uint64_t id, int timeout_ms, pd_optim_result_t *res)
{
    memset(res, 0, sizeof *res);
    pd_task_result_t tr;
    int rc = pd_task_fetch(c, id, timeout_ms, &tr);
    if (rc == PD_ETIMEDOUT && !pd_task_state_final(tr.state)) {
        pd_task_result_clear(&tr);
        return PD_ETIMEDOUT; /* still queued or running: res is empty */
    }
    if (rc) {
        pd_task_result_clear(&tr);
        return s_res_fail(res, rc, pd_client_error(c));
    }
    char msg[1400];
    switch (tr.state) {
    case PD_TASK_DONE: {
        const uint8_t **vals = calloc((size_t) tr.n, sizeof *vals);
        size_t *lens = calloc((size_t) tr.n, sizeof *lens);
        if (!vals || !lens) {
            rc = s_res_fail(res, PD_ENOMEM, "out of memory");
        } else {
            for (int i = 0; i < tr.n; i++) {
                vals[i] = tr.nodes[i].value;
                lens[i] = tr.nodes[i].len;
            }
            rc = pd_optim_task_collect(vals, lens, (uint32_t) tr.n, res);
        }
        free(vals);
        free(lens);
        break;
    }
    case PD_TASK_FAILED:
        snprintf(msg, sizeof msg, "the optimisation failed: %s",
                 tr.error ? tr.error : "a node failed");
        rc = s_res_fail(res, tr.code ? tr.code : PD_ETASK, msg);
        break;
    case PD_TASK_CANCELLED:
        rc = s_res_fail(res, PD_ECANCELLED, "the optimisation was cancelled");
        res->stop = PD_STOP_CANCELLED;
        break;
    default:
        snprintf(msg, sizeof msg, "the broker knows no task %llu (never started, or released)",
                 (unsigned long long) id);
        rc = s_res_fail(res, PD_ENOJOB, msg);
        break;
    }
    pd_task_result_clear(&tr);
    return rc;
}

int pd_optim_cancel(pd_client_t *c, uint64_t id) { return pd_task_cancel(c, id); }

int pd_optim_stop(pd_client_t *c, uint64_t id) { return pd_task_stop(c, id); }

int pd_optim_cluster(pd_client_t *c, const char *module, const char *fitness,
                     const pd_optim_opts_t *o, const pd_optim_cluster_opts_t *co,
                     pd_optim_result_t *res)
{
    memset(res, 0, sizeof *res);
    uint64_t id;
    int rc = pd_optim_submit(c, module, fitness, o, co, &id);
    if (rc)
        return s_res_fail(res, rc, pd_client_error(c));
    bool stopped = false;
    uint64_t last_iteration = 0;
    for (;;) {
        rc = pd_optim_fetch(c, id, o->progress && !stopped ? S_PROGRESS_POLL_MS : -1, res);
        if (rc != PD_ETIMEDOUT || res->code != 0 || res->stop != PD_STOP_NONE)
            break;
        pd_optim_status_t st;
        if (pd_optim_status(c, id, &st) == 0 && st.has_progress && st.iteration > last_iteration) {
            last_iteration = st.iteration;
            pd_optim_progress_t p = {.iteration = st.iteration, .evaluations = st.evaluations,
                                     .wall_s = st.wall_s, .groups = st.groups,
                                     .best_f = st.best_f};
            if (o->progress(&p, o->progress_user) != 0) {
                stopped = true;
                pd_optim_stop(c, id);
            }
        }
        pd_optim_status_clear(&st);
    }
    pd_task_release(c, id);
    return rc;
}
