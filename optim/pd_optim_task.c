/*  pd_optim_task: the argument, results and progress of a cluster
    optimisation as msgpack (see pd_optim_task.h for the layouts).

    Written by the client (the argument) and by the island nodes (results,
    progress); read back strictly: a field of the wrong type or size is
    refused with a sentence, never half-read. pd_optim_task_collect merges
    the islands' parts exactly as pd_optim_run builds its result, so that
    the two forms agree bit for bit.
*/
#include "pd_optim_task.h"
#include "pd_plat.h"

#include "pd_error_int.h"
#include "pd_optim_wire.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_VERSION 1

/* ---- the nodes' argument ------------------------------------------------- */

int pd_optim_task_arg(const pd_optim_opts_t *o, const char *fitness, const void *shared,
                      size_t shared_len, pd_buf_t *b, char *err, size_t errlen)
{
    if (!fitness || !fitness[0] || strlen(fitness) > 255) {
        snprintf(err, errlen, "fitness: the function's name must be 1 to 255 characters");
        return PD_EINVAL;
    }
    msgpack_packer pk;
    pd_packer_init(&pk, b);
    msgpack_pack_map(&pk, 4);
    pd_pack_kv_uint(&pk, "v", S_VERSION);
    pd_pack_cstr(&pk, "opts");
    int rc = pd_optim_opts_encode(o, b, err, errlen);
    if (rc)
        return rc;
    pd_pack_kv_str(&pk, "fitness", fitness);
    pd_pack_cstr(&pk, "shared");
    if (shared && shared_len) {
        msgpack_pack_bin(&pk, shared_len);
        msgpack_pack_bin_body(&pk, shared, shared_len);
    } else
        msgpack_pack_nil(&pk);
    return b->failed ? PD_ENOMEM : 0;
}

int pd_optim_task_arg_decode(const void *buf, size_t len, pd_optim_task_arg_t *a, char *err,
                             size_t errlen)
{
    memset(a, 0, sizeof *a);
    pd_rd_t r;
    pd_rd_init(&r, buf, len);
    uint32_t nf;
    uint64_t v = 0;
    if (pd_rd_map(&r, &nf))
        return pd_why(err, errlen, PD_EPROTO,
                      "the node's argument is not a map: was the task started by "
                      "pd_optim_submit?");
    for (uint32_t i = 0; i < nf; i++) {
        int bad = 0;
        if (pd_rd_key_is(&r, "v")) {
            bad = pd_rd_uint(&r, &v);
        } else if (pd_rd_key_is(&r, "opts")) {
            const uint8_t *raw;
            bad = pd_rd_skip(&r, &raw, &a->opts_len);
            a->opts = raw;
        } else if (pd_rd_key_is(&r, "fitness")) {
            bad = pd_rd_strcpy(&r, a->fitness, sizeof a->fitness);
        } else if (pd_rd_key_is(&r, "shared")) {
            if (pd_rd_peek(&r) == PD_MP_NIL) {
                bad = pd_rd_nil(&r);
            } else {
                uint32_t n;
                bad = pd_rd_bin(&r, &a->shared, &n);
                a->shared_len = n;
            }
        } else {
            bad = 1;
        }
        if (bad)
            return pd_why(err, errlen, PD_EPROTO,
                          "the node's argument has a malformed or unknown field "
                          "(field %u)", i);
    }
    if (v != S_VERSION || !a->opts || !a->fitness[0])
        return pd_why(err, errlen, PD_EPROTO,
                      "the node's argument lacks its version 1, options or fitness "
                      "name: client and worker versions differ?");
    return 0;
}

/* ---- node results ---------------------------------------------------------- */

/* p, or a valid address when there is nothing to copy (memcpy's arguments
   must not be NULL even for 0 bytes). */
static const void *s_or_empty(const void *p)
{
    static const uint8_t empty[8];
    return p ? p : empty;
}

int pd_optim_task_result_encode(const pd_optim_node_result_t *r, pd_buf_t *b)
{
    msgpack_packer pk;
    pd_packer_init(&pk, b);
    size_t g = r->groups;
    msgpack_pack_map(&pk, r->decider ? 19 : 14);
    pd_pack_kv_uint(&pk, "v", S_VERSION);
    pd_pack_kv_uint(&pk, "island", r->island);
    pd_pack_kv_uint(&pk, "dim", r->dim);
    pd_pack_kv_uint(&pk, "groups", r->groups);
    pd_pack_kv_bool(&pk, "maximize", r->maximize);
    pd_pack_kv_uint(&pk, "iterations", r->iterations);
    pd_pack_kv_uint(&pk, "evaluations", r->evaluations);
    pd_pack_kv_uint(&pk, "immigrants", r->immigrants);
    pd_pack_kv_uint(&pk, "restarts", r->restarts);
    pd_pack_kv_uint(&pk, "polish_evals", r->polish_evals);
    pd_pack_kv_bin(&pk, "best_f", s_or_empty(r->best_f), g * sizeof *r->best_f);
    pd_pack_kv_bin(&pk, "best_x", s_or_empty(r->best_x), g * r->dim * sizeof *r->best_x);
    pd_pack_kv_bin(&pk, "has_best", s_or_empty(r->has_best), g);
    pd_pack_kv_bin(&pk, "history", s_or_empty(r->history), g * r->iterations * sizeof *r->history);
    if (r->decider) {
        pd_pack_kv_uint(&pk, "stop", (uint64_t) r->stop);
        pd_pack_kv_uint(&pk, "total", r->total);
        pd_pack_kv_double(&pk, "wall_s", r->wall_s);
        pd_pack_kv_int(&pk, "code", r->code);
        pd_pack_cstr(&pk, "error");
        if (r->error)
            pd_pack_cstr(&pk, r->error);
        else
            msgpack_pack_nil(&pk);
    }
    return b->failed ? PD_ENOMEM : 0;
}

int pd_optim_task_progress_encode(uint64_t iteration, uint64_t evaluations, double wall_s,
                                  uint32_t groups, const double *best_f, pd_buf_t *b)
{
    if (groups > PD_OPTIM_PROGRESS_MAX_GROUPS)
        groups = PD_OPTIM_PROGRESS_MAX_GROUPS;
    msgpack_packer pk;
    pd_packer_init(&pk, b);
    msgpack_pack_map(&pk, 5);
    pd_pack_kv_uint(&pk, "v", S_VERSION);
    pd_pack_kv_uint(&pk, "iteration", iteration);
    pd_pack_kv_uint(&pk, "evaluations", evaluations);
    pd_pack_kv_double(&pk, "wall_s", wall_s);
    pd_pack_kv_bin(&pk, "best_f", best_f, (size_t) groups * sizeof *best_f);
    return b->failed ? PD_ENOMEM : 0;
}

int pd_optim_task_progress_decode(const void *buf, size_t len, pd_optim_task_progress_t *p)
{
    memset(p, 0, sizeof *p);
    pd_rd_t r;
    pd_rd_init(&r, buf, len);
    uint32_t nf, blen = 0;
    uint64_t v = 0;
    const void *best = NULL;
    if (pd_rd_map(&r, &nf))
        return PD_EPROTO;
    for (uint32_t i = 0; i < nf; i++) {
        int bad;
        if (pd_rd_key_is(&r, "v"))
            bad = pd_rd_uint(&r, &v);
        else if (pd_rd_key_is(&r, "iteration"))
            bad = pd_rd_uint(&r, &p->iteration);
        else if (pd_rd_key_is(&r, "evaluations"))
            bad = pd_rd_uint(&r, &p->evaluations);
        else if (pd_rd_key_is(&r, "wall_s"))
            bad = pd_rd_double(&r, &p->wall_s);
        else if (pd_rd_key_is(&r, "best_f"))
            bad = pd_rd_bin(&r, &best, &blen);
        else
            bad = pd_rd_skip(&r, NULL, NULL);
        if (bad)
            return PD_EPROTO;
    }
    if (v != S_VERSION || !best || blen % sizeof(double) != 0
        || blen / sizeof(double) > PD_OPTIM_PROGRESS_MAX_GROUPS)
        return PD_EPROTO;
    p->groups = blen / sizeof(double);
    p->best_f = malloc(blen ? blen : 1);
    if (!p->best_f)
        return PD_ENOMEM;
    memcpy(p->best_f, best, blen);
    return 0;
}

void pd_optim_task_progress_clear(pd_optim_task_progress_t *p)
{
    free(p->best_f);
    memset(p, 0, sizeof *p);
}

/* ---- collecting ------------------------------------------------------------ */

/* One node's result, decoded (the arrays borrowed from its bytes). */
typedef struct {
    uint64_t v, island, dim, groups, iterations, evaluations, immigrants, restarts, stop, total;
    uint64_t polish_evals;
    int64_t code;
    double wall_s;
    bool maximize, decider;
    const void *best_f, *best_x, *has_best, *history;
    uint32_t best_f_len, best_x_len, has_best_len, history_len;
    const char *error;
    uint32_t error_len;
} s_node_t;

static int s_read_node(const uint8_t *buf, size_t len, s_node_t *nd)
{
    memset(nd, 0, sizeof *nd);
    pd_rd_t r;
    pd_rd_init(&r, buf, len);
    uint32_t nf;
    if (pd_rd_map(&r, &nf))
        return -1;
    for (uint32_t i = 0; i < nf; i++) {
        int bad;
        if (pd_rd_key_is(&r, "v"))
            bad = pd_rd_uint(&r, &nd->v);
        else if (pd_rd_key_is(&r, "island"))
            bad = pd_rd_uint(&r, &nd->island);
        else if (pd_rd_key_is(&r, "dim"))
            bad = pd_rd_uint(&r, &nd->dim);
        else if (pd_rd_key_is(&r, "groups"))
            bad = pd_rd_uint(&r, &nd->groups);
        else if (pd_rd_key_is(&r, "maximize"))
            bad = pd_rd_bool(&r, &nd->maximize);
        else if (pd_rd_key_is(&r, "iterations"))
            bad = pd_rd_uint(&r, &nd->iterations);
        else if (pd_rd_key_is(&r, "evaluations"))
            bad = pd_rd_uint(&r, &nd->evaluations);
        else if (pd_rd_key_is(&r, "immigrants"))
            bad = pd_rd_uint(&r, &nd->immigrants);
        else if (pd_rd_key_is(&r, "restarts"))
            bad = pd_rd_uint(&r, &nd->restarts);
        else if (pd_rd_key_is(&r, "polish_evals"))
            bad = pd_rd_uint(&r, &nd->polish_evals);
        else if (pd_rd_key_is(&r, "best_f"))
            bad = pd_rd_bin(&r, &nd->best_f, &nd->best_f_len);
        else if (pd_rd_key_is(&r, "best_x"))
            bad = pd_rd_bin(&r, &nd->best_x, &nd->best_x_len);
        else if (pd_rd_key_is(&r, "has_best"))
            bad = pd_rd_bin(&r, &nd->has_best, &nd->has_best_len);
        else if (pd_rd_key_is(&r, "history"))
            bad = pd_rd_bin(&r, &nd->history, &nd->history_len);
        else if (pd_rd_key_is(&r, "stop"))
            bad = pd_rd_uint(&r, &nd->stop), nd->decider = true;
        else if (pd_rd_key_is(&r, "total"))
            bad = pd_rd_uint(&r, &nd->total);
        else if (pd_rd_key_is(&r, "wall_s"))
            bad = pd_rd_double(&r, &nd->wall_s);
        else if (pd_rd_key_is(&r, "code"))
            bad = pd_rd_int(&r, &nd->code);
        else if (pd_rd_key_is(&r, "error"))
            bad = pd_rd_peek(&r) == PD_MP_NIL ? pd_rd_nil(&r)
                                               : pd_rd_str(&r, &nd->error, &nd->error_len);
        else
            bad = pd_rd_skip(&r, NULL, NULL);
        if (bad)
            return -1;
    }
    size_t d = 8;
    if (nd->v != S_VERSION || nd->dim == 0 || nd->groups == 0 || nd->dim > (1u << 20)
        || nd->groups > (1u << 20) || nd->best_f_len != nd->groups * d
        || nd->best_x_len != nd->groups * nd->dim * d || nd->has_best_len != nd->groups
        || nd->history_len / d / nd->groups != nd->iterations
        || nd->history_len != nd->groups * nd->iterations * d || nd->stop > PD_STOP_ERROR)
        return -1;
    return 0;
}

static int s_collect_fail(pd_optim_result_t *res, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_collect_fail(pd_optim_result_t *res, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    free(res->error);
    res->error = strdup(msg);
    res->code = code;
    res->stop = PD_STOP_ERROR;
    return code;
}

static bool s_better(bool maximize, double a, double b) { return maximize ? a > b : a < b; }

int pd_optim_task_collect(const uint8_t *const *vals, const size_t *lens, uint32_t n,
                          pd_optim_result_t *res)
{
    memset(res, 0, sizeof *res);
    if (n == 0)
        return s_collect_fail(res, PD_EPROTO, "the optimisation task has no nodes");
    s_node_t *nodes = calloc(n, sizeof *nodes);
    if (!nodes)
        return s_collect_fail(res, PD_ENOMEM, "out of memory");
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        if (!vals[i] || s_read_node(vals[i], lens[i], &nodes[i]) || nodes[i].island != i
            || nodes[i].dim != nodes[0].dim || nodes[i].groups != nodes[0].groups
            || nodes[i].maximize != nodes[0].maximize
            || nodes[i].iterations != nodes[0].iterations)
            rc = s_collect_fail(res, PD_EPROTO, "node %u's result is not an island's result "
                                "(was this task started by pd_optim_submit?)", i);
    }
    if (rc == 0 && !nodes[0].decider)
        rc = s_collect_fail(res, PD_EPROTO, "node 0's result lacks the run's outcome");
    if (rc) {
        free(nodes);
        return rc;
    }
    size_t d = nodes[0].dim;
    uint32_t ng = (uint32_t) nodes[0].groups;
    uint64_t it = nodes[0].iterations;
    bool mx = nodes[0].maximize;
    res->dim = d;
    res->groups = ng;
    res->islands = n;
    res->best_x = calloc((size_t) ng * d, sizeof *res->best_x);
    res->best_f = malloc(ng * sizeof *res->best_f);
    res->best_island = calloc(ng, sizeof *res->best_island);
    res->history = it ? malloc(it * n * ng * sizeof *res->history) : NULL;
    if (!res->best_x || !res->best_f || !res->best_island || (it && !res->history)) {
        free(nodes);
        pd_optim_result_clear(res);
        return s_collect_fail(res, PD_ENOMEM, "out of memory");
    }
    /* as pd_optim_run: island 0's best first, then any strictly better one */
    for (uint32_t g = 0; g < ng; g++) {
        res->best_f[g] = mx ? -INFINITY : INFINITY;
        for (uint32_t i = 0; i < n; i++) {
            const uint8_t *has = nodes[i].has_best;
            double b;
            memcpy(&b, (const uint8_t *) nodes[i].best_f + (size_t) g * sizeof b, sizeof b);
            if (has[g] && (s_better(mx, b, res->best_f[g]) || i == 0)) {
                res->best_f[g] = b;
                res->best_island[g] = i;
                memcpy(res->best_x + (size_t) g * d,
                       (const uint8_t *) nodes[i].best_x + (size_t) g * d * sizeof(double),
                       d * sizeof(double));
            }
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        res->immigrants += nodes[i].immigrants;
        res->restarts += nodes[i].restarts;
        res->polish_evaluations += nodes[i].polish_evals;
        if (it)
            memcpy(res->history + (size_t) i * ng * it, nodes[i].history,
                   (size_t) ng * it * sizeof(double));
    }
    res->history_len = it;
    res->iterations = it;
    res->evaluations = nodes[0].total + res->polish_evaluations;
    res->wall_s = nodes[0].wall_s;
    res->stop = (pd_optim_stop_t) nodes[0].stop;
    res->code = (int) nodes[0].code;
    if (res->code && nodes[0].error)
        res->error = strndup(nodes[0].error, nodes[0].error_len);
    else if (res->code)
        res->error = strdup(pd_strerror(res->code));
    free(nodes);
    return res->code;
}
