/*  pd_client_task: the client side of synchronous tasks (playdoh.h,
    docs/protocol.md "Synchronous tasks"): task_submit with the graph
    packed by pd_graph, task_status, long-polling task_fetch (paged by node
    when results are large), task_cancel and task_release.
*/
#include "playdoh.h"

#include "pd_client_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_POLL_MS 5000 /* longest wait of one task_fetch */

const char *pd_task_state_name(pd_task_state_t s)
{
    static const char *names[] = {"unknown", "queued",    "running", "done",
                                  "failed",  "cancelled", "starting"};
    return (unsigned) s < 7 ? names[s] : "invalid";
}

bool pd_task_state_final(pd_task_state_t s)
{
    return s == PD_TASK_UNKNOWN || s == PD_TASK_DONE || s == PD_TASK_FAILED
           || s == PD_TASK_CANCELLED;
}

/* The arguments of a task_submit: one value per node, packed as an array. */
typedef struct {
    uint32_t n;       /* nodes */
    const void *args; /* their values, back to back */
    size_t len;       /* bytes at args */
} s_args_t;

static int s_pack_args(msgpack_packer *pk, const void *ctx)
{
    const s_args_t *a = ctx;
    return msgpack_pack_array(pk, a->n) || pd_pack_raw(pk, a->args, a->len);
}

/* The ids of a task request: the one task ctx (a const uint64_t *) names. */
static int s_pack_id(msgpack_packer *pk, const void *ctx)
{
    return msgpack_pack_array(pk, 1) || msgpack_pack_uint64(pk, *(const uint64_t *) ctx);
}

int pd_task_start(pd_client_t *c, const char *hash, const char *fn, const pd_graph_t *g,
                  const void *args, size_t len, const pd_task_opts_t *opts, uint64_t *id)
{
    int n = pd_graph_nodes(g);
    if (!fn || strlen(fn) == 0 || strlen(fn) > 255)
        return pd_client_fail(c, PD_EINVAL, "function name '%s' must be 1 to 255 characters",
                              fn ? fn : "");
    if (args) {
        pd_rd_t r;
        pd_rd_init(&r, args, len);
        for (int i = 0; i < n; i++)
            if (pd_rd_skip(&r, NULL, NULL))
                return pd_client_fail(c, PD_EPROTO, "argument of node %d is not a well-formed "
                                      "msgpack value (one value per node is needed: %d)", i, n);
        if (!pd_rd_at_end(&r))
            return pd_client_fail(c, PD_EPROTO, "the arguments hold more than one value per "
                                  "node (%d)", n);
    }
    pd_task_opts_t o = {0};
    if (opts)
        o = *opts;
    uint64_t io = o.io_timeout_ms == 0  ? 60000
                  : o.io_timeout_ms < 0 ? 0
                                        : (uint64_t) o.io_timeout_ms;
    const char *cuda = o.cuda && *o.cuda ? o.cuda : NULL;
    s_args_t a = {.n = (uint32_t) n, .args = args, .len = len};
    pd_m_task_submit_t q = {.n = (uint64_t) n,
                            .tubes = {.pack = pd_graph_pack_tubes, .ctx = g},
                            .edges = {.pack = pd_graph_pack_edges, .ctx = g},
                            .has_args = args != NULL, .args = {.pack = s_pack_args, .ctx = &a},
                            .has_io_ms = true, .io_ms = io,
                            .has_start_ms = true, .start_ms = o.start_timeout_ms,
                            .has_timeout_ms = true, .timeout_ms = o.timeout_ms,
                            .has_window = true, .window = o.window,
                            .has_window_bytes = true, .window_bytes = o.window_bytes,
                            .has_gpu = o.gpu || cuda, .gpu = true, .has_cu = cuda != NULL};
    snprintf(q.mod, sizeof q.mod, "%s", hash);
    snprintf(q.fn, sizeof q.fn, "%s", fn);
    if (cuda)
        snprintf(q.cu, sizeof q.cu, "%s", cuda);
    pd_m_task_accepted_t acc;
    uint64_t req = pd_client_request(c, &pd_proto_task_submit, &q);
    int rc = pd_client_call(c, req, &pd_proto_task_accepted, &acc, pd_client_timeout(c));
    if (rc)
        return rc;
    *id = acc.id;
    return 0;
}

int pd_task_status(pd_client_t *c, uint64_t id, pd_task_info_t *info)
{
    pd_m_task_status_t q = {.ids = {.pack = s_pack_id, .ctx = &id}};
    pd_m_task_states_t a;
    uint64_t req = pd_client_request(c, &pd_proto_task_status, &q);
    int rc = pd_client_call_idem(c, req, &pd_proto_task_states, &a, 0, pd_client_timeout(c));
    if (rc)
        return rc;
    pd_rd_t r;
    uint32_t one, three;
    uint64_t st, n, ended;
    pd_rd_init(&r, a.st.p, a.st.len);
    if (pd_rd_array(&r, &one) || one != 1 || pd_rd_array(&r, &three)
        || three != 3 || pd_rd_uint(&r, &st) || pd_rd_uint(&r, &n) || pd_rd_uint(&r, &ended)
        || st > PD_TASK_STARTING)
        return pd_client_fail(c, PD_EPROTO, "broker sent a malformed 'task_states' reply");
    info->state = (pd_task_state_t) st;
    info->nodes = (int) n;
    info->ended = (int) ended;
    return 0;
}

/* Reads {code, msg, node, host} of a task's error into res. */
static void s_read_error(pd_rd_t *r, pd_task_result_t *res)
{
    if (pd_rd_peek(r) == PD_MP_NIL) {
        pd_rd_nil(r);
        return;
    }
    uint32_t nf;
    char code[32] = "PD_ETASK", msg[1200] = "", host[128] = "";
    int64_t node = -1;
    if (pd_rd_map(r, &nf) == 0) {
        for (uint32_t f = 0; f < nf; f++) {
            int vr = -1;
            if (pd_rd_key_is(r, "code"))
                vr = pd_rd_strcpy(r, code, sizeof code);
            else if (pd_rd_key_is(r, "msg"))
                vr = pd_rd_strcpy(r, msg, sizeof msg);
            else if (pd_rd_key_is(r, "host"))
                vr = pd_rd_strcpy(r, host, sizeof host);
            else if (pd_rd_key_is(r, "node"))
                vr = pd_rd_int(r, &node);
            else if (pd_rd_skip(r, NULL, NULL))
                break;
            if (vr && pd_rd_skip(r, NULL, NULL))
                break;
        }
    }
    res->code = pd_client_code_from_name(code);
    res->error = strdup(msg[0] ? msg : code);
    res->failed_node = (int) node;
    res->host = host[0] ? strdup(host) : NULL;
}

/* Stores the node entries [[state, value_or_err], ...] of a reply. */
static int s_read_nodes(pd_client_t *c, pd_rd_t *r, pd_task_result_t *res, uint32_t from,
                        uint32_t next)
{
    uint32_t k;
    if (pd_rd_array(r, &k) || k != next - from)
        return pd_client_fail(c, PD_EPROTO, "broker sent a malformed 'task_result' reply");
    for (uint32_t i = from; i < next; i++) {
        pd_result_t *nd = &res->nodes[i];
        uint32_t two;
        uint64_t st;
        const uint8_t *raw;
        size_t rl;
        if (pd_rd_array(r, &two) || two != 2 || pd_rd_uint(r, &st) || pd_rd_skip(r, &raw, &rl))
            return pd_client_fail(c, PD_EPROTO, "broker sent a malformed node result");
        nd->id = i;
        nd->state = st == PD_TASK_DONE     ? PD_JOB_DONE
                    : st == PD_TASK_FAILED ? PD_JOB_FAILED
                                           : PD_JOB_CANCELLED;
        if (nd->state == PD_JOB_DONE) {
            nd->value = malloc(rl);
            if (!nd->value)
                return pd_client_fail(c, PD_ENOMEM, "out of memory for node %u's result", i);
            memcpy(nd->value, raw, rl);
            nd->len = rl;
        } else if (nd->state == PD_JOB_FAILED) {
            pd_rd_t e;
            pd_rd_init(&e, raw, rl);
            pd_task_result_t tmp = {0};
            s_read_error(&e, &tmp);
            nd->code = tmp.code;
            nd->error = tmp.error;
            free(tmp.host);
        } else if (res->state == PD_TASK_FAILED) {
            nd->code = PD_EABORTED;
            char msg[1400];
            snprintf(msg, sizeof msg, "stopped: %s", res->error ? res->error : "the task failed");
            nd->error = strdup(msg);
        } else {
            nd->code = PD_ECANCELLED;
            nd->error = strdup("the task was cancelled");
        }
    }
    return 0;
}

/* One task_fetch; on success a holds the reply. */
static int s_fetch_once(pd_client_t *c, uint64_t id, uint64_t wait_ms, uint32_t from,
                        pd_m_task_result_t *a)
{
    pd_m_task_fetch_t q = {.id = id, .wait_ms = wait_ms, .from = from};
    uint64_t req = pd_client_request(c, &pd_proto_task_fetch, &q);
    return pd_client_call_idem(c, req, &pd_proto_task_result, a, (int) wait_ms,
                               pd_client_timeout(c));
}

int pd_task_fetch(pd_client_t *c, uint64_t id, int timeout_ms, pd_task_result_t *res)
{
    memset(res, 0, sizeof *res);
    res->id = id;
    res->failed_node = -1;
    int64_t deadline = pd_client_deadline(timeout_ms);
    for (;;) {
        int left = pd_client_poll_ms(deadline, S_POLL_MS);
        pd_m_task_result_t a;
        int rc = s_fetch_once(c, id, (uint64_t) left, 0, &a);
        if (rc)
            return rc;
        if (a.state > PD_TASK_STARTING)
            return pd_client_fail(c, PD_EPROTO, "broker sent a malformed 'task_result' reply");
        res->state = (pd_task_state_t) a.state;
        if (!pd_task_state_final(res->state)) {
            if (pd_client_now_ms() >= deadline)
                return pd_client_fail(c, PD_ETIMEDOUT, "task %llu is still %s",
                                      (unsigned long long) id, pd_task_state_name(res->state));
            continue;
        }
        if (res->state == PD_TASK_UNKNOWN)
            return 0;
        uint64_t n = a.n, next = a.next;
        if (!a.has_n || n == 0 || n > 1000000 || !a.has_next || next > n || !a.has_error)
            return pd_client_fail(c, PD_EPROTO, "broker sent a malformed 'task_result' reply");
        res->n = (int) n;
        pd_rd_t r;
        pd_rd_init(&r, a.error.p, a.error.len);
        s_read_error(&r, res);
        res->nodes = calloc(n, sizeof *res->nodes);
        if (!res->nodes)
            return pd_client_fail(c, PD_ENOMEM, "out of memory for %llu node results",
                                  (unsigned long long) n);
        if (!a.has_nodes)
            return pd_client_fail(c, PD_EPROTO, "malformed 'task_result' reply");
        pd_rd_init(&r, a.nodes.p, a.nodes.len);
        if ((rc = s_read_nodes(c, &r, res, 0, (uint32_t) next)))
            return rc;
        /* Large results come in pages. */
        while (next < n) {
            uint64_t from = next;
            if ((rc = s_fetch_once(c, id, 0, (uint32_t) from, &a)))
                return rc;
            next = a.next;
            if (!a.has_next || next <= from || next > n || !a.has_nodes)
                return pd_client_fail(c, PD_EPROTO, "broker sent a malformed 'task_result' page");
            pd_rd_init(&r, a.nodes.p, a.nodes.len);
            if ((rc = s_read_nodes(c, &r, res, (uint32_t) from, (uint32_t) next)))
                return rc;
        }
        return 0;
    }
}

void pd_task_result_clear(pd_task_result_t *res)
{
    if (res->nodes)
        pd_results_clear(res->nodes, (size_t) res->n);
    free(res->nodes);
    free(res->error);
    free(res->host);
    memset(res, 0, sizeof *res);
    res->failed_node = -1;
}

/* A request d over the one task id, answered by want's count. Returns 1
   when the broker acted on the task, 0 when not, or an error. */
static int s_ids_call(pd_client_t *c, const pd_proto_msg_t *d, const pd_proto_msg_t *want,
                      uint64_t id)
{
    uint64_t count;
    int rc = pd_client_count_call(c, d, want, s_pack_id, &id, &count);
    if (rc)
        return rc;
    return count ? 1 : 0;
}

int pd_task_cancel(pd_client_t *c, uint64_t id)
{
    return s_ids_call(c, &pd_proto_task_cancel, &pd_proto_task_cancelled, id);
}

int pd_task_stop(pd_client_t *c, uint64_t id)
{
    return s_ids_call(c, &pd_proto_task_stop, &pd_proto_task_stopping, id);
}

int pd_task_release(pd_client_t *c, uint64_t id)
{
    return s_ids_call(c, &pd_proto_task_release, &pd_proto_task_released, id);
}
