/*  pd_broker_task: the broker's side of synchronous tasks (docs/protocol.md,
    "Synchronous tasks"; docs/sync.md).

    Clients: task_submit, task_status, task_fetch (long polling, like
    fetch), task_cancel, task_release. Workers: node_bound, node_ready,
    node_done. The broker's part is small on purpose: it gangs the N slots
    together (pd_tasks_place, all nodes or none), relays the rendezvous and
    keeps the results; the nodes' data never pass through it.

    Rendezvous, per task:
      placed    every node gets node_start on its worker (state STARTING,
                the start time-out running);
      bound     when all N reported node_bound {ep}, each gets node_peers
                with the endpoints of its neighbours;
      ready     when all N reported node_ready (every subscription
                confirmed at every publisher), each gets node_go: the
                barrier; the task is RUNNING (the run time-out, if any,
                starts);
      done      each node_done frees that node's slot; when all are done
                the task is DONE.
    A node that fails (error, crash, time-out, its worker lost) fails the
    whole task at once: the error names the node and its host, every other
    node is stopped (node_abort to their workers) and every slot is freed.
    Nothing waits for a time-out that a failure already decided.
*/
#include "pd_broker_int.h"
#include "pd_proto.h"
#include "pd_auth.h"
#include "pd_error.h"
#include "pd_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_START_ATTEMPTS 3 /* placements of a task whose start fails for the cluster */
#define S_MAX_IDS 10000u   /* task ids per status, cancel or release */
#define S_SCAN_MS 10       /* time-outs of tasks are checked this often */

/* ---- helpers ------------------------------------------------------------ */

static const char *s_host(pd_broker_t *b, uint32_t worker)
{
    pd_wrec_t *wk = pd_reg_at(pd_broker_workers(b), worker);
    return wk && wk->host[0] ? wk->host : "?";
}

/* A task_result being packed: its `error` and `nodes` stream from r. */
typedef struct {
    pd_broker_t *b;
    pd_taskrec_t *r;
    uint32_t from;
    pd_m_task_result_t *msg; /* the nodes callback sets its `next`, encoded after */
} s_result_t;

static int s_pack_task_error(msgpack_packer *pk, const void *ctx)
{
    const pd_taskrec_t *r = ((const s_result_t *) ctx)->r;
    msgpack_pack_map(pk, 4);
    pd_pack_kv_str(pk, "code", r->code);
    pd_pack_kv_str(pk, "msg", r->msg);
    pd_pack_kv_int(pk, "node", r->err_node);
    pd_pack_kv_str(pk, "host", r->err_host);
    return 0;
}

/* nodes: [[state, value_or_err], ...] for nodes from .. next-1 */
static int s_pack_task_nodes(msgpack_packer *pk, const void *ctx)
{
    const s_result_t *c = ctx;
    pd_broker_t *b = c->b;
    pd_taskrec_t *r = c->r;
    static const uint8_t head[5] = {0xdd, 0, 0, 0, 0};
    size_t at = pd_broker_out(b)->len;
    pd_buf_append(pd_broker_out(b), head, sizeof head);
    uint32_t next = c->from;
    if (PD_TASK_IS_FINAL(r->state)) {
        while (next < r->n && (next == c->from || pd_broker_out(b)->len < PD_BROKER_REPLY_BYTES)) {
            pd_tnode_t *nd = &r->nodes[next];
            msgpack_pack_array(pk, 2);
            uint8_t st = nd->state == PD_TNODE_DONE     ? PD_TASK_DONE
                         : nd->state == PD_TNODE_FAILED ? PD_TASK_FAILED
                                                        : PD_TASK_CANCELLED;
            msgpack_pack_uint8(pk, st);
            if (nd->res && nd->res_len)
                pd_pack_raw(pk, nd->res, nd->res_len);
            else
                msgpack_pack_nil(pk);
            next++;
        }
        if (!r->fetched)
            r->fetched = pd_broker_now_s(b) + 1;
    }
    if (!pd_broker_out(b)->failed) {
        uint32_t k = next - c->from;
        pd_broker_out(b)->data[at + 1] = (uint8_t) (k >> 24);
        pd_broker_out(b)->data[at + 2] = (uint8_t) (k >> 16);
        pd_broker_out(b)->data[at + 3] = (uint8_t) (k >> 8);
        pd_broker_out(b)->data[at + 4] = (uint8_t) k;
    }
    c->msg->next = next;
    return 0;
}

/* Packs `task_result` for r (nodes from `from` on, while the reply stays
   under the soft cap) into pd_broker_out(b). */
static void s_pack_result(pd_broker_t *b, uint64_t req, uint64_t id, pd_taskrec_t *r,
                          uint32_t from)
{
    msgpack_packer pk;
    pd_buf_reset(pd_broker_out(b));
    pd_packer_init(&pk, pd_broker_out(b));
    pd_m_task_result_t tr = {.req = req, .id = id, .state = PD_TASK_UNKNOWN};
    s_result_t ctx = {b, r, from, &tr};
    if (r) {
        tr.state = r->state;
        tr.n = r->n;
        tr.ended = r->nended;
        tr.has_n = tr.has_ended = tr.has_error = tr.has_nodes = tr.has_next = true;
        if (r->state == PD_TASK_FAILED || r->state == PD_TASK_CANCELLED) /* else nil */
            tr.error = (pd_raw_t){.pack = s_pack_task_error, .ctx = &ctx};
        tr.nodes = (pd_raw_t){.pack = s_pack_task_nodes, .ctx = &ctx};
    }
    pd_m_task_result_encode(&pk, &tr);
}

void pd_broker_answer_task_fetch(void *user, const pd_park_task_t *p)
{
    pd_broker_t *b = user;
    s_pack_result(b, p->req, p->task, pd_tasks_get(pd_broker_tasks(b), p->task), p->from);
    pd_broker_send_out(b, p->rid, p->ridlen);
}

/* Answers the parked fetches of task r (it has ended). */
static void s_wake(pd_broker_t *b, pd_taskrec_t *r)
{
    pd_park_wake_task(pd_broker_park(b), r->id, pd_broker_answer_task_fetch, b);
}

/* Sends TYPE {task} (node_abort, node_stop) to one worker. Returns 0 or a
   PD_E* code. */
static int s_tell_worker(pd_broker_t *b, pd_wrec_t *wk, const char *type, uint64_t task)
{
    pd_buf_reset(pd_broker_aux(b));
    msgpack_packer pk;
    pd_packer_init(&pk, pd_broker_aux(b));
    if (strcmp(type, "node_abort") == 0)
        pd_m_node_abort_encode(&pk, &(pd_m_node_abort_t){.task = task});
    else
        pd_m_node_stop_encode(&pk, &(pd_m_node_stop_t){.task = task});
    return pd_broker_tell(b, wk);
}

/* Sends TYPE {task} once to every worker that holds a node of r. Returns
   how many were told. */
static uint32_t s_tell_workers(pd_broker_t *b, pd_taskrec_t *r, const char *type)
{
    uint32_t span = pd_reg_span(pd_broker_workers(b)), told = 0;
    /* Without memory for the set a worker may be told twice: harmless. */
    bool *sent = calloc(span ? span : 1, sizeof *sent);
    for (uint32_t i = 0; i < r->n; i++) {
        pd_tnode_t *nd = &r->nodes[i];
        pd_wrec_t *wk = nd->active ? pd_reg_at(pd_broker_workers(b), nd->worker) : NULL;
        if (!wk || (sent && sent[nd->worker]))
            continue;
        if (sent)
            sent[nd->worker] = true;
        if (s_tell_worker(b, wk, type, r->id) == 0)
            told++;
    }
    free(sent);
    return told;
}

/* The count of wk's slots that r's nodes hold: GPU slots for a GPU task. */
static uint32_t *s_held(pd_wrec_t *wk, const pd_taskrec_t *r)
{
    return r->gpu ? &wk->gnodes : &wk->nodes;
}

/* Frees the slot of node i (its worker gets it back). */
static void s_release_node(pd_broker_t *b, pd_taskrec_t *r, uint32_t i, uint8_t state)
{
    pd_tnode_t *nd = &r->nodes[i];
    if (nd->active) {
        pd_wrec_t *wk = pd_reg_at(pd_broker_workers(b), nd->worker);
        if (wk && *s_held(wk, r) > 0)
            (*s_held(wk, r))--;
        nd->active = false;
    }
    if (nd->state < PD_TNODE_DONE) {
        nd->state = state;
        r->nended++;
    }
}

/* Ends r in state (done, failed, cancelled): stops its other nodes, frees
   every slot, answers the fetches waiting for it. */
static void s_end(pd_broker_t *b, pd_taskrec_t *r, uint8_t state)
{
    if (state != PD_TASK_DONE)
        s_tell_workers(b, r, "node_abort");
    for (uint32_t i = 0; i < r->n; i++)
        s_release_node(b, r, i, PD_TNODE_ABORTED);
    pd_tasks_set_state(pd_broker_tasks(b), r, state);
    r->deadline_ms = 0;
    s_wake(b, r);
}

/* Fails r: node (or -1) on its host, with code and a sentence. */
static void s_fail(pd_broker_t *b, pd_taskrec_t *r, int64_t node, const char *code,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void s_fail(pd_broker_t *b, pd_taskrec_t *r, int64_t node, const char *code,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    snprintf(r->code, sizeof r->code, "%s", code);
    r->err_node = node;
    snprintf(r->err_host, sizeof r->err_host, "%s",
             node >= 0 && r->nodes[node].state != PD_TNODE_PENDING
                 ? s_host(b, r->nodes[node].worker)
                 : "");
    pd_log_info("task %llu failed: %s: %s", (unsigned long long) r->id, code, r->msg);
    s_end(b, r, PD_TASK_FAILED);
}


/* A task that could not start for the cluster's reasons (why: a worker
   lost, a node process that could not start, a worker without the slot
   the broker counted on) goes back to the queue, with its nodes aborted
   and its slots freed, at most S_START_ATTEMPTS times in all: none of its
   functions has run (the barrier was not passed). Returns true when r was
   queued again, false when it must fail. */
static bool s_requeue(pd_broker_t *b, pd_taskrec_t *r, const char *why)
{
    if (r->state != PD_TASK_STARTING || r->attempt + 1 >= S_START_ATTEMPTS)
        return false;
    s_tell_workers(b, r, "node_abort");
    for (uint32_t i = 0; i < r->n; i++) {
        pd_tnode_t *nd = &r->nodes[i];
        pd_wrec_t *wk = nd->active ? pd_reg_at(pd_broker_workers(b), nd->worker) : NULL;
        if (wk && *s_held(wk, r) > 0)
            (*s_held(wk, r))--;
        free(nd->ep);
        free(nd->res);
        memset(nd, 0, sizeof *nd); /* PD_TNODE_PENDING, not active */
    }
    r->nbound = r->nready = r->nended = 0;
    r->deadline_ms = 0;
    r->attempt++;
    pd_tasks_set_state(pd_broker_tasks(b), r, PD_TASK_QUEUED);
    pd_log_warn("task %llu: %s; queued again (start %u of %u)", (unsigned long long) r->id,
                why, r->attempt + 1, S_START_ATTEMPTS);
    return true;
}

/* Decodes a request over task ids (PD_F_IDS: task_status, task_cancel,
   task_stop, task_release) into a uint64 array; returns the count, or a
   PD_E* code (< 0) with the sentence in o->why. */
static int s_read_ids(const pd_msg_t *m, const pd_proto_msg_t *d, pd_origin_t *o,
                      uint64_t **ids)
{
    pd_m_task_status_t q;
    int rc = pd_proto_decode(m, d, &q);
    if (rc)
        return pd_broker_refuse(m, o, rc);
    pd_rd_t r;
    uint32_t n;
    pd_rd_init(&r, q.ids.p, q.ids.len);
    if (pd_rd_array(&r, &n) || n > S_MAX_IDS) {
        snprintf(o->why, sizeof o->why, "%s: 'ids' must be an array of at most %u task ids",
                 m->type, S_MAX_IDS);
        return PD_EINVAL;
    }
    *ids = malloc((n ? n : 1) * sizeof **ids);
    if (!*ids) {
        snprintf(o->why, sizeof o->why, "the broker is out of memory");
        return PD_ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++)
        if (pd_rd_uint(&r, &(*ids)[i])) {
            free(*ids);
            snprintf(o->why, sizeof o->why, "%s: task id %u is not a non-negative integer",
                     m->type, i);
            return PD_EINVAL;
        }
    return (int) n;
}

/* Refuses task ids of another owner (pd_broker_check_owner_of); unknown
   ids pass. Returns 0 or PD_EPERM with the sentence in o->why. */
static int s_check_owner(pd_broker_t *b, pd_origin_t *o, const uint64_t *ids, int n,
                         const char *type, const char *act)
{
    for (int i = 0; i < n; i++) {
        const pd_taskrec_t *r = pd_tasks_get(pd_broker_tasks(b), ids[i]);
        char what[40];
        snprintf(what, sizeof what, "task %llu", (unsigned long long) ids[i]);
        int rc = r ? pd_broker_check_owner_of(o, r->owner, what, type, act) : 0;
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- clients ------------------------------------------------------------ */

int pd_broker_on_task_submit(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    pd_m_task_submit_t q;
    int rc = pd_m_task_submit_decode(m, &q);
    if (rc)
        return pd_broker_refuse(m, o, rc);
    const char *hash = q.mod;
    int64_t mod = pd_mods_find(pd_broker_mods(b), hash);
    if (mod < 0) {
        snprintf(o->why, sizeof o->why,
                 "module %s is not on the broker: upload it first (mod_put)", hash);
        return PD_ENOMODULE;
    }
    /* A GPU task: its nodes run on GPU slots, with a CUDA module or none. */
    bool gpu = q.has_gpu && q.gpu;
    uint32_t cu = 0;
    if ((rc = pd_broker_check_gpu(b, q.cu, &gpu, &cu, o)) != 0 ||
        (rc = pd_broker_check_platform(b, pd_mods_get(pd_broker_mods(b), (uint32_t) mod), o)) != 0)
        return rc;
    uint64_t id, n = q.n;
    uint64_t gpus = pd_reg_gpus(pd_broker_workers(b));
    if (gpu && n > gpus) {
        snprintf(o->why, sizeof o->why, "the task has %llu GPU nodes but the cluster offers only "
                 "%llu GPU slots now: ask for at most %llu nodes, or add GPU workers",
                 (unsigned long long) n, (unsigned long long) gpus, (unsigned long long) gpus);
        return PD_ENOSLOTS;
    }
    pd_reg_t *reg = pd_broker_workers(b);
    rc = pd_tasks_submit(pd_broker_tasks(b), &q, (uint32_t) mod,
                         gpu ? pd_reg_gpus(reg) : pd_reg_cpus(reg), &id, o->why, sizeof o->why);
    if (rc)
        return rc;
    if (pd_broker_journal(b))
        pd_journal_put_task_id(pd_broker_journal(b), id + 1); /* the reply waits for it */
    pd_taskrec_t *r = pd_tasks_get(pd_broker_tasks(b), id);
    snprintf(r->owner, sizeof r->owner, "%s", o->owner);
    r->gpu = gpu;
    r->cu = cu;
    pd_log_info("task %llu (%s, %u %snodes, %u tubes, %u edges) queued",
                (unsigned long long) id, r->fn, r->n, gpu ? "GPU " : "", r->ntubes, r->nedges);
    pd_m_task_accepted_t ta = {.req = o->req, .id = id};
    pd_broker_reply(b, o, &pd_proto_task_accepted, &ta);
    return 0;
}

/* The ids of a task_status, and their task_states `st`. */
typedef struct {
    pd_broker_t *b;
    const uint64_t *ids;
    int n;
} s_states_t;

static int s_pack_states(msgpack_packer *pk, const void *ctx)
{
    const s_states_t *s = ctx;
    msgpack_pack_array(pk, (uint32_t) s->n);
    for (int i = 0; i < s->n; i++) {
        pd_taskrec_t *r = pd_tasks_get(pd_broker_tasks(s->b), s->ids[i]);
        msgpack_pack_array(pk, 3);
        msgpack_pack_uint8(pk, r ? r->state : PD_TASK_UNKNOWN);
        msgpack_pack_uint32(pk, r ? r->n : 0);
        msgpack_pack_uint32(pk, r ? r->nended : 0);
    }
    return 0;
}

int pd_broker_on_task_status(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    uint64_t *ids;
    int n = s_read_ids(m, &pd_proto_task_status, o, &ids);
    if (n < 0)
        return n;
    int rc = s_check_owner(b, o, ids, n, "task_status", "see its state");
    if (rc) {
        free(ids);
        return rc;
    }
    s_states_t ctx = {b, ids, n};
    pd_m_task_states_t ts = {.req = o->req, .st = {.pack = s_pack_states, .ctx = &ctx}};
    pd_broker_reply(b, o, &pd_proto_task_states, &ts);
    free(ids);
    return 0;
}

int pd_broker_on_task_progress(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    pd_m_task_progress_t q;
    int rc = pd_m_task_progress_decode(m, &q);
    if (rc)
        return pd_broker_refuse(m, o, rc);
    uint64_t id = q.id;
    if ((rc = s_check_owner(b, o, &id, 1, "task_progress", "see its progress")) != 0)
        return rc;
    pd_taskrec_t *r = pd_tasks_get(pd_broker_tasks(b), id);
    pd_m_task_report_t tr = {.req = o->req,
                             .id = id,
                             .state = r ? r->state : PD_TASK_UNKNOWN,
                             .seq = r ? r->progress_seq : 0};
    if (r && r->progress) /* else nil */
        tr.val = (pd_raw_t){.p = r->progress, .len = r->progress_len};
    pd_broker_reply(b, o, &pd_proto_task_report, &tr);
    return 0;
}

int pd_broker_on_task_fetch(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    pd_m_task_fetch_t q;
    int rc = pd_m_task_fetch_decode(m, &q);
    if (rc)
        return pd_broker_refuse(m, o, rc);
    uint64_t id = q.id, wait_ms = q.wait_ms, from = q.from;
    if (wait_ms > 86400000)
        wait_ms = 86400000;
    if ((rc = s_check_owner(b, o, &id, 1, "task_fetch", "fetch its result")) != 0)
        return rc;
    pd_taskrec_t *r = pd_tasks_get(pd_broker_tasks(b), id);
    if (r && from > r->n) {
        snprintf(o->why, sizeof o->why, "task_fetch: 'from' is %llu but task %llu has %u nodes",
                 (unsigned long long) from, (unsigned long long) id, r->n);
        return PD_EINVAL;
    }
    if (r && !PD_TASK_IS_FINAL(r->state) && wait_ms > 0) {
        if (pd_park_task(pd_broker_park(b), o->rid, o->ridlen, o->req, id, (uint32_t) from,
                         pd_broker_now_ms(b) + (int64_t) wait_ms)) {
            snprintf(o->why, sizeof o->why, "the broker already holds %u waiting task fetches: "
                     "fetch with wait_ms 0, or wait and retry", PD_BROKER_MAX_PARKED);
            return PD_EOVERLOAD;
        }
        return 0;
    }
    s_pack_result(b, o->req, id, r, (uint32_t) from);
    if (pd_broker_out(b)->failed) {
        pd_buf_reset(pd_broker_out(b));
        snprintf(o->why, sizeof o->why, "the results of task %llu do not fit in one reply",
                 (unsigned long long) id);
        return PD_ETOOBIG;
    }
    pd_broker_send_out(b, o->rid, o->ridlen);
    return 0;
}

/* Cancels r (not final): why as its message, PD_ECANCELLED as its code. */
static void s_cancel(pd_broker_t *b, pd_taskrec_t *r, const char *why)
{
    snprintf(r->code, sizeof r->code, "%s", pd_err_name(PD_ECANCELLED));
    snprintf(r->msg, sizeof r->msg, "%s", why);
    r->err_node = -1;
    r->err_host[0] = 0;
    pd_log_info("task %llu: %s", (unsigned long long) r->id, why);
    s_end(b, r, PD_TASK_CANCELLED);
}

/* The task id if it has not ended, else NULL. */
static pd_taskrec_t *s_live(pd_broker_t *b, uint64_t id)
{
    pd_taskrec_t *r = pd_tasks_get(pd_broker_tasks(b), id);
    return r && !PD_TASK_IS_FINAL(r->state) ? r : NULL;
}

static bool s_do_cancel(pd_broker_t *b, uint64_t id)
{
    pd_taskrec_t *r = s_live(b, id);
    if (r)
        s_cancel(b, r, "the task was cancelled");
    return r != NULL;
}

static bool s_do_stop(pd_broker_t *b, uint64_t id)
{
    pd_taskrec_t *r = s_live(b, id);
    if (r && r->state == PD_TASK_RUNNING) /* the nodes end at their next step, with results */
        pd_log_info("task %llu: stop asked (%u workers told)", (unsigned long long) r->id,
                    s_tell_workers(b, r, "node_stop"));
    else if (r) /* nothing has run yet: there is nothing to keep */
        s_cancel(b, r, "the task was stopped before it started");
    return r != NULL;
}

static bool s_do_release(pd_broker_t *b, uint64_t id)
{
    return pd_tasks_forget(pd_broker_tasks(b), id);
}

/* A request over task ids (cancel, stop, release: `act` for the refusal of
   another owner's): fn on each id, then reply {req, n} with how many it
   acted on. */
static int s_on_ids(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o, const pd_proto_msg_t *req,
                    const pd_proto_msg_t *reply, const char *act,
                    bool (*fn)(pd_broker_t *b, uint64_t id))
{
    uint64_t *ids;
    int n = s_read_ids(m, req, o, &ids);
    if (n < 0)
        return n;
    int rc = s_check_owner(b, o, ids, n, m->type, act);
    if (rc) {
        free(ids);
        return rc;
    }
    uint64_t k = 0;
    for (int i = 0; i < n; i++)
        k += fn(b, ids[i]);
    free(ids);
    pd_m_task_cancelled_t c = {.req = o->req, .n = k}; /* the three share PD_F_COUNT */
    pd_broker_reply(b, o, reply, &c);
    return 0;
}

int pd_broker_on_task_cancel(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    return s_on_ids(b, m, o, &pd_proto_task_cancel, &pd_proto_task_cancelled, "cancel it", s_do_cancel);
}

int pd_broker_on_task_stop(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    return s_on_ids(b, m, o, &pd_proto_task_stop, &pd_proto_task_stopping, "stop it", s_do_stop);
}

int pd_broker_on_task_release(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    return s_on_ids(b, m, o, &pd_proto_task_release, &pd_proto_task_released, "release it", s_do_release);
}

/* ---- placing ------------------------------------------------------------ */

/* Packs [[tube, peer], ...] for edge rows (first column: this node). */
typedef struct {
    uint32_t (*rows)[3];
    uint32_t first, n;
} s_edges_t;

static int s_pack_edges(msgpack_packer *pk, const void *ctx)
{
    const s_edges_t *c = ctx;
    msgpack_pack_array(pk, c->n);
    for (uint32_t e = c->first; e < c->first + c->n; e++) {
        msgpack_pack_array(pk, 2);
        msgpack_pack_uint32(pk, c->rows[e][1]);
        msgpack_pack_uint32(pk, c->rows[e][2]);
    }
    return 0;
}

/* The submitter's key for workers' code policies ("" without CurveZMQ). */
static const char *s_key_of(const pd_taskrec_t *r)
{
    return pd_auth_owner_is_key(r->owner) ? r->owner : "";
}

/* Sends node_start for node i of r to its worker (and the module first
   when that worker lacks it). Returns 0 or a PD_E* code. */
static int s_send_start(pd_broker_t *b, pd_taskrec_t *r, uint32_t i)
{
    pd_wrec_t *wk = pd_reg_at(pd_broker_workers(b), r->nodes[i].worker);
    if (!wk)
        return PD_EUNREACH;
    int rc;
    if (pd_sched_needs_mod(pd_broker_mods(b), wk, r->mod)
        && (rc = pd_broker_send_mod(b, wk, r->mod, s_key_of(r))) != 0)
        return rc;
    if (r->cu && !pd_wrec_has_mod(wk, r->cu - 1)
        && (rc = pd_broker_send_mod(b, wk, r->cu - 1, s_key_of(r))) != 0)
        return rc;
    s_edges_t out = {r->by_src, 0, 0}, in = {r->by_dst, 0, 0};
    pd_tasks_out_edges(r, i, &out.first, &out.n);
    pd_tasks_in_edges(r, i, &in.first, &in.n);
    pd_m_node_start_t ns = {
        .task = r->id, .node = i, .try = r->attempt, .n = r->n,
        .arg = {.p = r->args + r->arg_off[i], .len = r->arg_off[i + 1] - r->arg_off[i]},
        .tubes = {.p = r->tubes, .len = r->tubes_len},
        .out = {.pack = s_pack_edges, .ctx = &out},
        .in = {.pack = s_pack_edges, .ctx = &in},
        .io_ms = r->io_ms, .start_ms = r->start_ms, .window = r->window,
        .window_bytes = r->window_bytes, .has_io_ms = true, .has_start_ms = true,
        .has_window = true, .has_window_bytes = true, .has_client = true,
        .gpu = r->gpu, .has_gpu = r->gpu, .has_cu = r->cu != 0};
    snprintf(ns.mod, sizeof ns.mod, "%s", pd_mods_get(pd_broker_mods(b), r->mod)->hash);
    snprintf(ns.fn, sizeof ns.fn, "%s", r->fn);
    snprintf(ns.client, sizeof ns.client, "%s", s_key_of(r));
    if (r->cu)
        snprintf(ns.cu, sizeof ns.cu, "%s", pd_mods_get(pd_broker_mods(b), r->cu - 1)->hash);
    pd_buf_reset(pd_broker_aux(b));
    msgpack_packer pk;
    pd_packer_init(&pk, pd_broker_aux(b));
    pd_m_node_start_encode(&pk, &ns);
    return pd_broker_tell(b, wk);
}

int pd_broker_start_task(pd_broker_t *b, uint64_t id)
{
    pd_taskrec_t *r = pd_tasks_get(pd_broker_tasks(b), id);
    if (!r)
        return PD_EINVAL; /* cannot happen: the plan named it */
    r->deadline_ms = pd_broker_now_ms(b) + r->start_ms;
    pd_broker_task_scan(b)->next = 0; /* a new deadline: rescan at the next turn */
    uint32_t w0 = r->nodes[0].worker, wn = r->nodes[r->n - 1].worker;
    pd_log_info("task %llu: %u nodes placed on %s%s", (unsigned long long) r->id, r->n,
                s_host(b, w0), wn != w0 ? " and other workers" : "");
    for (uint32_t i = 0; i < r->n; i++) {
        int rc = s_send_start(b, r, i);
        if (rc) {
            s_fail(b, r, i, pd_err_name(rc), "node %u on %s: could not be sent to its worker "
                   "(%s)", i, s_host(b, r->nodes[i].worker), pd_strerror(rc));
            return rc;
        }
    }
    return 0;
}

/* ---- workers ------------------------------------------------------------ */

/* node_peers' `peers`: k neighbours nb of a node of r. */
typedef struct {
    const pd_taskrec_t *r;
    const uint32_t *nb;
    uint32_t k;
} s_peers_t;

static int s_pack_peers(msgpack_packer *pk, const void *ctx)
{
    const s_peers_t *c = ctx;
    msgpack_pack_array(pk, c->k);
    for (uint32_t j = 0; j < c->k; j++) {
        /* [node, ep], and the XPUB's key when its tubes run CurveZMQ. */
        const pd_tnode_t *nd = &c->r->nodes[c->nb[j]];
        msgpack_pack_array(pk, nd->key[0] ? 3 : 2);
        msgpack_pack_uint32(pk, c->nb[j]);
        pd_pack_cstr(pk, nd->ep ? nd->ep : "");
        if (nd->key[0])
            pd_pack_cstr(pk, nd->key);
    }
    return 0;
}

/* Sends node_peers to every node of r. */
static void s_send_peers(pd_broker_t *b, pd_taskrec_t *r)
{
    uint32_t *nb = malloc(((size_t) r->nedges * 2 + 1) * sizeof *nb);
    if (!nb) {
        s_fail(b, r, -1, "PD_ENOMEM", "the broker ran out of memory during the rendezvous");
        return;
    }
    for (uint32_t i = 0; i < r->n; i++) {
        pd_wrec_t *wk = pd_reg_at(pd_broker_workers(b), r->nodes[i].worker);
        s_peers_t peers = {r, nb, pd_tasks_neighbours(r, i, nb)};
        pd_buf_reset(pd_broker_aux(b));
        msgpack_packer pk;
        pd_packer_init(&pk, pd_broker_aux(b));
        pd_m_node_peers_t np = {.task = r->id, .node = i,
                                .peers = {.pack = s_pack_peers, .ctx = &peers}};
        pd_m_node_peers_encode(&pk, &np);
        int rc = pd_broker_tell(b, wk);
        if (rc) {
            free(nb);
            s_fail(b, r, i, pd_err_name(rc), "node %u on %s: its peers could not be sent to its "
                   "worker (%s)", i, s_host(b, r->nodes[i].worker), pd_strerror(rc));
            return;
        }
    }
    free(nb);
}

/* Sends node_go to every node of r: the barrier is passed. */
static void s_send_go(pd_broker_t *b, pd_taskrec_t *r)
{
    for (uint32_t i = 0; i < r->n; i++) {
        pd_tnode_t *nd = &r->nodes[i];
        pd_wrec_t *wk = pd_reg_at(pd_broker_workers(b), nd->worker);
        pd_buf_reset(pd_broker_aux(b));
        msgpack_packer pk;
        pd_packer_init(&pk, pd_broker_aux(b));
        pd_m_node_go_encode(&pk, &(pd_m_node_go_t){.task = r->id, .node = i});
        int rc = pd_broker_tell(b, wk);
        if (rc) {
            s_fail(b, r, i, pd_err_name(rc), "node %u on %s: could not be told to start (%s)", i,
                   s_host(b, nd->worker), pd_strerror(rc));
            return;
        }
        if (nd->state == PD_TNODE_READY)
            nd->state = PD_TNODE_RUNNING;
    }
    pd_tasks_set_state(pd_broker_tasks(b), r, PD_TASK_RUNNING);
    r->deadline_ms = r->timeout_ms ? pd_broker_now_ms(b) + r->timeout_ms : 0;
    pd_broker_task_scan(b)->next = 0;
    pd_log_info("task %llu: all %u nodes ready, started", (unsigned long long) r->id, r->n);
}

/* Tells a worker to stop the nodes of a task the broker no longer runs. */
static void s_abort_stale(pd_broker_t *b, pd_wrec_t *wk, uint64_t task)
{
    s_tell_worker(b, wk, "node_abort", task);
}

/* Reads {code, msg} of a node's error map into code and msg. */
static void s_read_error(const uint8_t *val, size_t len, char *code, size_t codecap, char *msg,
                         size_t msgcap)
{
    snprintf(code, codecap, "PD_ETASK");
    snprintf(msg, msgcap, "the node failed without a message");
    pd_rd_t r;
    pd_rd_init(&r, val, len);
    uint32_t n;
    if (pd_rd_map(&r, &n))
        return;
    for (uint32_t i = 0; i < n; i++) {
        if (pd_rd_key_is(&r, "code")) {
            if (pd_rd_strcpy(&r, code, codecap) && pd_rd_skip(&r, NULL, NULL))
                return;
        } else if (pd_rd_key_is(&r, "msg")) {
            if (pd_rd_strcpy(&r, msg, msgcap) && pd_rd_skip(&r, NULL, NULL))
                return;
        } else if (pd_rd_skip(&r, NULL, NULL) || pd_rd_skip(&r, NULL, NULL)) {
            return;
        }
    }
}

/* node_bound {ep, key}: node nd of r listens at ep. */
static int s_node_bound(pd_broker_t *b, pd_taskrec_t *r, pd_tnode_t *nd, uint64_t node,
                        const pd_m_node_bound_t *q, pd_origin_t *o)
{
    const char *ep = q->ep, *key = q->key;
    if (key[0] && !pd_auth_key_valid(key)) {
        snprintf(o->why, sizeof o->why, "node_bound: 'key' is not a CurveZMQ public key "
                 "(40 characters of Z85)");
        return PD_EPROTO;
    }
    if (nd->state != PD_TNODE_STARTED)
        return 0;
    free(nd->ep);
    nd->ep = strdup(ep);
    if (!nd->ep) {
        s_fail(b, r, (int64_t) node, "PD_ENOMEM", "the broker ran out of memory");
        return 0;
    }
    snprintf(nd->key, sizeof nd->key, "%s", key);
    nd->state = PD_TNODE_BOUND;
    if (++r->nbound == r->n)
        s_send_peers(b, r);
    return 0;
}

/* node_progress {val}: the task's latest progress. */
static int s_node_progress(pd_taskrec_t *r, const pd_m_node_progress_t *q, pd_origin_t *o)
{
    /* The task's latest progress replaces the previous one: what a
       client polls (task_progress) is always the newest, in bounded
       memory. */
    const uint8_t *val = q->val.p;
    size_t len = q->val.len;
    if (len > PD_TASKS_MAX_PROGRESS) {
        snprintf(o->why, sizeof o->why, "node_progress: %zu bytes, over the limit of %u",
                 len, PD_TASKS_MAX_PROGRESS);
        return PD_ETOOBIG;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return 0; /* the previous report stays; the next one may fit */
    memcpy(copy, val, len);
    free(r->progress);
    r->progress = copy;
    r->progress_len = (uint32_t) len;
    r->progress_seq++;
    return 0;
}

/* node_done {ok, val, us}: node nd of r on wk has ended. */
static int s_node_done(pd_broker_t *b, pd_wrec_t *wk, pd_taskrec_t *r, pd_tnode_t *nd,
                       uint64_t node, const pd_m_node_done_t *q)
{
    bool ok = q->ok;
    const uint8_t *val = q->val.p;
    size_t vlen = q->val.len;
    uint64_t us = q->us;
    free(nd->res);
    nd->res = malloc(vlen ? vlen : 1);
    nd->res_len = nd->res ? (uint32_t) vlen : 0;
    if (nd->res)
        memcpy(nd->res, val, vlen);
    nd->us = us;
    if (ok) {
        s_release_node(b, r, (uint32_t) node, PD_TNODE_DONE);
        if (r->nended == r->n) {
            pd_log_info("task %llu done", (unsigned long long) r->id);
            s_end(b, r, PD_TASK_DONE);
        }
        return 0;
    }
    char code[32], msg[900];
    s_read_error(val, vlen, code, sizeof code, msg, sizeof msg);
    /* The cluster's failures before the barrier: the task goes back to the
       queue. The task's own (a module that does not compile, a refusal by
       the owner's policy) fail it at once. */
    static const char *const retry[] = {"PD_ESYS", "PD_EOVERLOAD", "PD_ENOGPU"};
    bool cluster = false;
    for (size_t k = 0; k < sizeof retry / sizeof *retry; k++)
        cluster = cluster || strcmp(code, retry[k]) == 0;
    char why[1100];
    snprintf(why, sizeof why, "node %llu on %s: %s", (unsigned long long) node, wk->host, msg);
    if (cluster && s_requeue(b, r, why))
        return 0;
    s_release_node(b, r, (uint32_t) node, PD_TNODE_FAILED);
    s_fail(b, r, (int64_t) node, code, "node %llu on %s: %s", (unsigned long long) node, wk->host,
           msg);
    return 0;
}

int pd_broker_on_node(pd_broker_t *b, pd_wrec_t *wk, pd_msg_t *m, pd_origin_t *o)
{
    /* The four node messages begin with the same fields (PD_F_NODE_TRY:
       task, node, try), read through any member of the union. */
    union {
        pd_m_node_ready_t ready;
        pd_m_node_bound_t bound;
        pd_m_node_progress_t progress;
        pd_m_node_done_t done;
    } q;
    const pd_proto_msg_t *d = pd_msg_is(m, "node_bound")      ? &pd_proto_node_bound
                              : pd_msg_is(m, "node_ready")    ? &pd_proto_node_ready
                              : pd_msg_is(m, "node_progress") ? &pd_proto_node_progress
                                                              : &pd_proto_node_done;
    int rc = pd_proto_decode(m, d, &q);
    if (rc)
        return pd_broker_refuse(m, o, rc);
    uint64_t task = q.ready.task, node = q.ready.node, attempt = q.ready.try;
    pd_taskrec_t *r = pd_tasks_get(pd_broker_tasks(b), task);
    if (r && attempt != r->attempt) {
        /* From an earlier start of the task, sent before its node_abort
           reached the worker: that node is gone or going. Not an abort: a
           node of the current start may run there under the same name. */
        pd_log_debug("dropped '%s' for task %llu node %llu: start %llu, now %u", m->type,
                     (unsigned long long) task, (unsigned long long) node,
                     (unsigned long long) attempt + 1, r->attempt + 1);
        return 0;
    }
    pd_tnode_t *nd = r && node < r->n ? &r->nodes[node] : NULL;
    if (!nd || !nd->active || nd->worker != wk->index) {
        /* An ended task (failed, cancelled) or a node aborted meanwhile. A
           node that still lives for it is stopped. */
        pd_log_debug("dropped '%s' for task %llu node %llu: not running there", m->type,
                     (unsigned long long) task, (unsigned long long) node);
        if (!pd_msg_is(m, "node_done"))
            s_abort_stale(b, wk, task);
        return 0;
    }
    if (pd_msg_is(m, "node_bound"))
        return s_node_bound(b, r, nd, node, &q.bound, o);
    if (pd_msg_is(m, "node_progress"))
        return s_node_progress(r, &q.progress, o);
    if (pd_msg_is(m, "node_ready")) {
        if (nd->state != PD_TNODE_BOUND || r->nbound != r->n)
            return 0;
        nd->state = PD_TNODE_READY;
        if (++r->nready == r->n)
            s_send_go(b, r);
        return 0;
    }
    return s_node_done(b, wk, r, nd, node, &q.done);
}

void pd_broker_tasks_worker_gone(pd_broker_t *b, pd_wrec_t *wk, const char *why)
{
    pd_tasks_t *tasks = pd_broker_tasks(b);
    for (uint32_t i = 0; i < pd_tasks_count(tasks) && wk->nodes + wk->gnodes > 0; i++) {
        pd_taskrec_t *r = pd_tasks_at(pd_broker_tasks(b), i);
        if (r->state != PD_TASK_STARTING && r->state != PD_TASK_RUNNING)
            continue;
        /* This worker's nodes are gone with it: they need no node_abort. */
        int64_t first = -1;
        for (uint32_t k = 0; k < r->n; k++) {
            if (!r->nodes[k].active || r->nodes[k].worker != wk->index)
                continue;
            r->nodes[k].active = false;
            (*s_held(wk, r))--;
            s_release_node(b, r, k, first < 0 ? PD_TNODE_FAILED : PD_TNODE_ABORTED);
            if (first < 0)
                first = k;
        }
        char lost[600];
        snprintf(lost, sizeof lost, "node %lld on %s: its worker %s", (long long) first,
                 wk->host[0] ? wk->host : "?", why);
        if (first >= 0 && !s_requeue(b, r, lost))
            s_fail(b, r, first, "PD_ELOST", "%s", lost);
    }
}

/* ---- time ------------------------------------------------------------- */

/* Names the nodes of r that have not reached `state` yet, and their hosts. */
static void s_laggards(pd_broker_t *b, pd_taskrec_t *r, uint8_t state, char *out, size_t cap)
{
    size_t k = 0;
    uint32_t shown = 0, late = 0;
    out[0] = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        if (r->nodes[i].state >= state)
            continue;
        late++;
        if (shown < 8 && k + 80 < cap) {
            k += (size_t) snprintf(out + k, cap - k, "%s%u on %s", shown ? ", " : "", i,
                                   s_host(b, r->nodes[i].worker));
            shown++;
        }
    }
    if (late > shown && k + 32 < cap)
        snprintf(out + k, cap - k, " and %u more", late - shown);
}

int64_t pd_broker_tick_tasks(pd_broker_t *b)
{
    int64_t nearest = -1;
    if (pd_tasks_live(pd_broker_tasks(b)) == 0)
        return nearest;
    /* Task deadlines: a scan of the table, at most every S_SCAN_MS, so a
       busy loop serving jobs does not pay it on every turn. */
    if (pd_broker_now_ms(b) < pd_broker_task_scan(b)->next) {
        if (!pd_broker_task_scan(b)->soonest) /* no task has a deadline */
            return nearest;
        const pd_task_scan_t *sc = pd_broker_task_scan(b);
        int64_t at = sc->soonest > sc->next ? sc->soonest : sc->next;
        int64_t left = at - pd_broker_now_ms(b);
        return nearest < 0 || left < nearest ? left : nearest;
    }
    pd_broker_task_scan(b)->next = pd_broker_now_ms(b) + S_SCAN_MS;
    int64_t soonest = -1;
    for (uint32_t i = 0; i < pd_tasks_count(pd_broker_tasks(b)); i++) {
        pd_taskrec_t *r = pd_tasks_at(pd_broker_tasks(b), i);
        if (!r->deadline_ms)
            continue;
        if (r->deadline_ms > pd_broker_now_ms(b)) {
            if (soonest < 0 || r->deadline_ms < soonest)
                soonest = r->deadline_ms;
            continue;
        }
        char who[512];
        if (r->state == PD_TASK_STARTING) {
            uint8_t want = r->nbound < r->n ? PD_TNODE_BOUND : PD_TNODE_READY;
            s_laggards(b, r, want, who, sizeof who);
            s_fail(b, r, -1, "PD_ETIMEDOUT", "the task did not start within %u ms: node %s %s "
                   "(a module that takes long to compile, or a network that blocks the "
                   "nodes' ports: see docs/sync.md)", r->start_ms, who,
                   want == PD_TNODE_BOUND ? "did not bind its tubes"
                                          : "did not see all its neighbours connect");
        } else if (r->state == PD_TASK_RUNNING) {
            s_laggards(b, r, PD_TNODE_DONE, who, sizeof who);
            s_fail(b, r, -1, "PD_ETIMEDOUT", "the task ran past its time-out of %u ms (still "
                   "running: node %s)", r->timeout_ms, who);
        } else {
            r->deadline_ms = 0;
        }
    }
    pd_broker_task_scan(b)->soonest = soonest > 0 ? soonest : 0;
    if (soonest >= 0) {
        int64_t left = soonest - pd_broker_now_ms(b);
        if (nearest < 0 || left < nearest)
            nearest = left;
    }
    return nearest;
}
