/*  pd_client_task: the client side of synchronous tasks (playdoh.h,
    docs/protocol.md "Synchronous tasks"): task_submit with the graph
    packed by pd_graph, task_status, long-polling task_fetch (paged by node
    when results are large), task_cancel and task_release.
*/
#include "playdoh.h"

#include "pd_client_int.h"

#include <czmq.h>
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
    uint64_t io = o.io_timeout_ms == 0 ? 60000 : o.io_timeout_ms < 0 ? 0 : (uint64_t) o.io_timeout_ms;
    msgpack_packer pk;
    const char *cuda = o.cuda && *o.cuda ? o.cuda : NULL;
    bool gpu = o.gpu || cuda;
    uint64_t req = pd_client_begin(c, &pk, "task_submit",
                                   10 + (args ? 1 : 0) + gpu + (cuda != NULL));
    pd_pack_kv_str(&pk, "mod", hash);
    pd_pack_kv_str(&pk, "fn", fn);
    pd_pack_kv_uint(&pk, "n", (uint64_t) n);
    if (args) {
        pd_pack_cstr(&pk, "args");
        msgpack_pack_array(&pk, (uint32_t) n);
        pd_pack_raw(&pk, args, len);
    }
    pd_graph_pack(g, &pk);
    pd_pack_kv_uint(&pk, "io_ms", io);
    pd_pack_kv_uint(&pk, "start_ms", o.start_timeout_ms);
    pd_pack_kv_uint(&pk, "timeout_ms", o.timeout_ms);
    pd_pack_kv_uint(&pk, "window", o.window);
    pd_pack_kv_uint(&pk, "window_bytes", o.window_bytes);
    if (gpu)
        pd_pack_kv_bool(&pk, "gpu", true);
    if (cuda)
        pd_pack_kv_str(&pk, "cu", cuda);
    pd_msg_t m;
    int rc = pd_client_call(c, req, "task_accepted", &m, pd_client_timeout(c));
    if (rc)
        return rc;
    if (pd_msg_uint(&m, "id", id))
        return pd_client_fail(c, PD_EPROTO, "broker sent a malformed 'task_accepted' reply");
    return 0;
}

int pd_task_status(pd_client_t *c, uint64_t id, pd_task_info_t *info)
{
    msgpack_packer pk;
    uint64_t req = pd_client_begin(c, &pk, "task_status", 1);
    pd_pack_cstr(&pk, "ids");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_uint64(&pk, id);
    pd_msg_t m;
    int rc = pd_client_call_idem(c, req, "task_states", &m, 0, pd_client_timeout(c));
    if (rc)
        return rc;
    pd_rd_t r;
    uint32_t one, three;
    uint64_t st, n, ended;
    if (pd_msg_rd(&m, "st", &r) || pd_rd_array(&r, &one) || one != 1 || pd_rd_array(&r, &three)
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

/* One task_fetch; on success m describes the reply. */
static int s_fetch_once(pd_client_t *c, uint64_t id, uint64_t wait_ms, uint32_t from, pd_msg_t *m)
{
    msgpack_packer pk;
    uint64_t req = pd_client_begin(c, &pk, "task_fetch", 3);
    pd_pack_kv_uint(&pk, "id", id);
    pd_pack_kv_uint(&pk, "wait_ms", wait_ms);
    pd_pack_kv_uint(&pk, "from", from);
    return pd_client_call_idem(c, req, "task_result", m, (int) wait_ms, pd_client_timeout(c));
}

int pd_task_fetch(pd_client_t *c, uint64_t id, int timeout_ms, pd_task_result_t *res)
{
    memset(res, 0, sizeof *res);
    res->id = id;
    res->failed_node = -1;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : zclock_mono() + timeout_ms;
    for (;;) {
        int64_t left = deadline == INT64_MAX ? S_POLL_MS : deadline - zclock_mono();
        if (left < 0)
            left = 0;
        if (left > S_POLL_MS)
            left = S_POLL_MS;
        pd_msg_t m;
        int rc = s_fetch_once(c, id, (uint64_t) left, 0, &m);
        if (rc)
            return rc;
        uint64_t st = 0, n = 0, next = 0;
        if (pd_msg_uint(&m, "state", &st) || st > PD_TASK_STARTING)
            return pd_client_fail(c, PD_EPROTO, "broker sent a malformed 'task_result' reply");
        res->state = (pd_task_state_t) st;
        if (!pd_task_state_final(res->state)) {
            if (zclock_mono() >= deadline)
                return pd_client_fail(c, PD_ETIMEDOUT, "task %llu is still %s",
                                      (unsigned long long) id, pd_task_state_name(res->state));
            continue;
        }
        if (res->state == PD_TASK_UNKNOWN)
            return 0;
        pd_rd_t r;
        if (pd_msg_uint(&m, "n", &n) || n == 0 || n > 1000000 || pd_msg_uint(&m, "next", &next)
            || next > n || pd_msg_rd(&m, "error", &r))
            return pd_client_fail(c, PD_EPROTO, "broker sent a malformed 'task_result' reply");
        res->n = (int) n;
        s_read_error(&r, res);
        res->nodes = calloc(n, sizeof *res->nodes);
        if (!res->nodes)
            return pd_client_fail(c, PD_ENOMEM, "out of memory for %llu node results",
                                  (unsigned long long) n);
        if (pd_msg_rd(&m, "nodes", &r) || (rc = s_read_nodes(c, &r, res, 0, (uint32_t) next)))
            return rc ? rc : pd_client_fail(c, PD_EPROTO, "malformed 'task_result' reply");
        /* Large results come in pages. */
        while (next < n) {
            uint64_t from = next;
            if ((rc = s_fetch_once(c, id, 0, (uint32_t) from, &m)))
                return rc;
            if (pd_msg_uint(&m, "next", &next) || next <= from || next > n
                || pd_msg_rd(&m, "nodes", &r))
                return pd_client_fail(c, PD_EPROTO, "broker sent a malformed 'task_result' page");
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

static int s_ids_call(pd_client_t *c, const char *t, const char *want, uint64_t id)
{
    msgpack_packer pk;
    uint64_t req = pd_client_begin(c, &pk, t, 1);
    pd_pack_cstr(&pk, "ids");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_uint64(&pk, id);
    pd_msg_t m;
    int rc = pd_client_call(c, req, want, &m, pd_client_timeout(c));
    if (rc)
        return rc;
    uint64_t k = 0;
    pd_msg_uint_opt(&m, "n", &k);
    return k ? 1 : 0;
}

int pd_task_cancel(pd_client_t *c, uint64_t id)
{
    return s_ids_call(c, "task_cancel", "task_cancelled", id);
}

int pd_task_stop(pd_client_t *c, uint64_t id)
{
    return s_ids_call(c, "task_stop", "task_stopping", id);
}

int pd_task_release(pd_client_t *c, uint64_t id)
{
    return s_ids_call(c, "task_release", "task_released", id);
}
