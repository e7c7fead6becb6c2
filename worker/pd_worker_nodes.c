/*  pd_worker_nodes: the nodes of synchronous tasks on this worker.

    Each node runs in its own process (pd_nodeproc), polled in the worker's
    loop; this file relays the rendezvous between the nodes and the broker:
    node_start becomes a process and its `start`, `bound` becomes
    node_bound, node_peers and node_go go to the process, `ready`, `result`
    and a node's reports become node_ready, node_done and node_progress.
    node_stop asks the task's nodes here to stop at their next step;
    node_abort kills them. A CPU node counts against the CPU slots (while k
    nodes run, at most cpus - k slots take jobs); a GPU node takes a GPU
    that runs no other node.
*/
#include "pd_worker_int.h"
#include "pd_error.h"

#include <stdio.h>
#include <string.h>

/* ---- messages to the broker --------------------------------------------- */

/* Sends node_done {task, node, try, ok, val, us} (try: the broker's attempt
   at starting the task, echoed so that it can tell an old attempt's
   messages from the current one's). */
static void s_send_node_done(pd_worker_t *w, uint64_t task, uint64_t node, uint64_t attempt,
                             bool ok, const uint8_t *val, size_t len, uint64_t us)
{
    pd_m_node_done_t m = {.task = task, .node = node, .try = attempt, .ok = ok,
                          .val = {.p = val, .len = len}, .us = us};
    pd_worker_send_msg(w, &pd_proto_node_done, &m);
}

/* Reports a node that could not start here. */
static void s_fail_node(pd_worker_t *w, uint64_t task, uint64_t node, uint64_t attempt, int code,
                        const char *msg)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    msgpack_pack_map(&pk, 2);
    pd_pack_kv_str(&pk, "code", pd_err_name(code));
    pd_pack_kv_str(&pk, "msg", msg);
    if (!b.failed)
        s_send_node_done(w, task, node, attempt, false, b.data, b.len, 0);
    pd_buf_free(&b);
}

/* ---- node process sink -------------------------------------------------- */

static void s_on_node_bound(void *user, pd_nodeproc_t *nd, const char *ep, const char *key)
{
    pd_m_node_bound_t m = {.task = pd_nodeproc_task(nd), .node = pd_nodeproc_index(nd),
                           .try = pd_nodeproc_attempt(nd), .has_key = key != NULL};
    snprintf(m.ep, sizeof m.ep, "%s", ep);
    snprintf(m.key, sizeof m.key, "%s", key ? key : "");
    pd_worker_send_msg(user, &pd_proto_node_bound, &m);
}

static void s_on_node_ready(void *user, pd_nodeproc_t *nd)
{
    pd_m_node_ready_t m = {.task = pd_nodeproc_task(nd), .node = pd_nodeproc_index(nd),
                           .try = pd_nodeproc_attempt(nd)};
    pd_worker_send_msg(user, &pd_proto_node_ready, &m);
}

static void s_on_node_result(void *user, pd_nodeproc_t *nd, bool ok, const uint8_t *val,
                             size_t len, uint64_t us)
{
    pd_worker_t *w = user;
    pd_log_debug("task %llu node %u %s after %llu us", (unsigned long long) pd_nodeproc_task(nd),
                 pd_nodeproc_index(nd), ok ? "done" : "failed", (unsigned long long) us);
    s_send_node_done(w, pd_nodeproc_task(nd), pd_nodeproc_index(nd), pd_nodeproc_attempt(nd), ok,
                     val, len, us);
}

/* A node's progress report: node_progress {task, node, val} to the broker. */
static void s_on_node_report(void *user, pd_nodeproc_t *nd, const uint8_t *val, size_t len)
{
    pd_m_node_progress_t m = {.task = pd_nodeproc_task(nd), .node = pd_nodeproc_index(nd),
                              .try = pd_nodeproc_attempt(nd), .val = {.p = val, .len = len}};
    pd_worker_send_msg(user, &pd_proto_node_progress, &m);
}

/* ---- messages from the broker ------------------------------------------- */

/* The index in w->nodes of that task's node; PD_ENOJOB when this worker
   runs no such node. */
static int s_node_find(pd_worker_t *w, uint64_t task, uint64_t node)
{
    for (int i = 0; i < w->nnodes; i++)
        if (pd_nodeproc_task(w->nodes[i]) == task && pd_nodeproc_index(w->nodes[i]) == node)
            return i;
    return PD_ENOJOB;
}

static void s_node_remove(pd_worker_t *w, int i)
{
    pd_nodeproc_destroy(&w->nodes[i]);
    w->nodes[i] = w->nodes[--w->nnodes];
    w->nodes[w->nnodes] = NULL;
}

/* A GPU node goes to the GPU with the fewest nodes (*on_gpu; -1 for a CPU node); CPU nodes
 * count against the CPU slots. 0, or PD_ENOGPU / PD_EOVERLOAD with msg saying why. */
static int s_pick_slot(pd_worker_t *w, bool gpu, int *on_gpu, char *msg, size_t cap)
{
    int cpu_nodes = 0, per_gpu[PD_GPU_MAX] = {0};
    for (int i = 0; i < w->nnodes; i++) {
        int g = pd_nodeproc_gpu(w->nodes[i]);
        if (g >= 0 && g < PD_GPU_MAX)
            per_gpu[g]++;
        else
            cpu_nodes++;
    }
    int gpus = pd_worker_gpus_up(w);
    for (int g = 0; gpu && g < gpus && g < PD_GPU_MAX; g++)
        if (*on_gpu < 0 || per_gpu[g] < per_gpu[*on_gpu])
            *on_gpu = g;
    if (gpu && *on_gpu < 0) {
        snprintf(msg, cap, "worker %s has no GPU slot, yet the broker sent it a GPU node",
                 w->host);
        return PD_ENOGPU;
    }
    if (w->nnodes >= w->capslots + PD_GPU_MAX ||
        (gpu ? per_gpu[*on_gpu] > 0 : cpu_nodes >= w->cpus || cpu_nodes >= w->capslots)) {
        snprintf(msg, cap, "worker %s already runs %d nodes on its %d %s slots", w->host,
                 gpu ? per_gpu[*on_gpu] : cpu_nodes, gpu ? gpus : w->cpus, gpu ? "GPU" : "CPU");
        return PD_EOVERLOAD;
    }
    return 0;
}

void pd_worker_on_node_start(pd_worker_t *w, const pd_msg_t *m)
{
    pd_m_node_start_t ns;
    pd_m_np_start_t st; /* the node's `start` */
    int rc = pd_m_node_start_decode(m, &ns);
    if (rc == 0 && strlen(ns.fn) >= sizeof st.fn) /* the node process's limit */
        rc = pd_msg_fail(m, PD_ETOOBIG, "fn", "is too long");
    if (rc) {
        pd_log_warn("broker sent a bad 'node_start': %s", m->why);
        return;
    }
    uint64_t task = ns.task, node = ns.node, attempt = ns.try;
    /* The submitter's key ("" without one), a GPU node and its CUDA module. */
    const char *client = ns.client, *fn = ns.fn;
    bool gpu = ns.gpu;
    char msg[800];
    const pd_worker_mod_t *mm, *cm;
    char what[64];
    snprintf(what, sizeof what, "task %llu node %llu", (unsigned long long) task,
             (unsigned long long) node);
    int code = pd_worker_code_check(w, client, ns.mod, ns.cu, what, &mm, &cm, msg, sizeof msg);
    if (code) {
        s_fail_node(w, task, node, attempt, code, msg);
        return;
    }
    if (s_node_find(w, task, node) >= 0) {
        pd_log_warn("broker started task %llu node %llu twice; ignored",
                    (unsigned long long) task, (unsigned long long) node);
        return;
    }
    int on_gpu = -1;
    code = s_pick_slot(w, gpu, &on_gpu, msg, sizeof msg);
    if (code) {
        s_fail_node(w, task, node, attempt, code, msg);
        return;
    }
    /* The node's `start`: the broker's fields, the module's kind and name,
       and the address to bind. */
    st = (pd_m_np_start_t){
        .task = task, .node = node, .n = ns.n, .arg = ns.arg, .tubes = ns.tubes,
        .out = ns.out, .in = ns.in,
        .has_io_ms = ns.has_io_ms, .io_ms = ns.io_ms,
        .has_start_ms = ns.has_start_ms, .start_ms = ns.start_ms,
        .has_window = ns.has_window, .window = ns.window,
        .has_window_bytes = ns.has_window_bytes, .window_bytes = ns.window_bytes,
        .has_curve = w->tubes_curve, .curve = true,
        .has_gpu = gpu, .gpu = (uint64_t) on_gpu,
        .has_cu = gpu && cm, .has_cu_name = gpu && cm};
    snprintf(st.mod, sizeof st.mod, "%s", mm->hash);
    snprintf(st.kind, sizeof st.kind, "%s", mm->kind);
    snprintf(st.name, sizeof st.name, "%s", mm->name);
    snprintf(st.fn, sizeof st.fn, "%s", fn);
    snprintf(st.addr, sizeof st.addr, "%s", w->node_addr);
    if (st.has_cu) {
        snprintf(st.cu, sizeof st.cu, "%s", cm->hash);
        snprintf(st.cu_name, sizeof st.cu_name, "%s", cm->name);
    }
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_m_np_start_encode(&pk, &st);
    char visible[64] = "";
    if (gpu)
        pd_worker_visible_for(on_gpu, visible, sizeof visible);
    int err = PD_ENOMEM;
    pd_nodeproc_t *nd = NULL;
    if (!b.failed) {
        pd_nodeproc_config_t nc = {.exe = w->slot_exe, .cache_dir = w->cache_dir,
                                   .host = w->host, .log_level = w->log_level, .task = task,
                                   .node = (uint32_t) node, .attempt = attempt, .gpu = on_gpu,
                                   .cuda_visible = visible,
                                   .sink = {s_on_node_bound, s_on_node_ready, s_on_node_result,
                                            w, s_on_node_report}};
        nd = pd_nodeproc_new(&nc, b.data, b.len, &err);
    }
    pd_buf_free(&b);
    if (!nd) {
        snprintf(msg, sizeof msg, "worker %s could not start a node process (%s)", w->host,
                 pd_strerror(err));
        s_fail_node(w, task, node, attempt, err, msg);
        return;
    }
    w->nodes[w->nnodes++] = nd;
    pd_log_debug("task %llu node %llu of %llu started (%s)", (unsigned long long) task,
                 (unsigned long long) node, (unsigned long long) ns.n, fn);
}

void pd_worker_on_node_step(pd_worker_t *w, const pd_msg_t *m, bool go)
{
    pd_m_node_peers_t p;
    pd_m_node_go_t g;
    if (go ? pd_m_node_go_decode(m, &g) : pd_m_node_peers_decode(m, &p)) {
        pd_log_warn("broker sent a bad '%s': %s", m->type, m->why);
        return;
    }
    uint64_t task = go ? g.task : p.task, node = go ? g.node : p.node;
    int i = s_node_find(w, task, node);
    if (i < 0) {
        /* It ended or was aborted meanwhile: its node_done tells the broker. */
        pd_log_debug("'%s' for task %llu node %llu, which is not running here", m->type,
                     (unsigned long long) task, (unsigned long long) node);
        return;
    }
    if (go)
        pd_nodeproc_send_go(w->nodes[i]);
    else
        pd_nodeproc_send_peers(w->nodes[i], p.peers.p, p.peers.len);
}

void pd_worker_on_node_abort(pd_worker_t *w, const pd_msg_t *m)
{
    pd_m_node_abort_t a;
    if (pd_m_node_abort_decode(m, &a)) {
        pd_log_warn("broker sent a bad 'node_abort': %s", m->why);
        return;
    }
    uint64_t task = a.task;
    int killed = 0;
    for (int i = w->nnodes; i-- > 0;)
        if (pd_nodeproc_task(w->nodes[i]) == task) {
            s_node_remove(w, i);
            killed++;
        }
    pd_log_debug("task %llu aborted: %d nodes stopped here", (unsigned long long) task, killed);
}

void pd_worker_on_node_stop(pd_worker_t *w, const pd_msg_t *m)
{
    pd_m_node_stop_t st;
    if (pd_m_node_stop_decode(m, &st)) {
        pd_log_warn("broker sent a bad 'node_stop': %s", m->why);
        return;
    }
    uint64_t task = st.task;
    int told = 0;
    for (int i = 0; i < w->nnodes; i++)
        if (pd_nodeproc_task(w->nodes[i]) == task && pd_nodeproc_send_stop(w->nodes[i]) == 0)
            told++;
    pd_log_debug("task %llu: stop asked of %d nodes here", (unsigned long long) task, told);
}

/* ---- upkeep ------------------------------------------------------------- */

void pd_worker_reap_nodes(pd_worker_t *w)
{
    for (int i = w->nnodes; i-- > 0;) {
        if (!pd_nodeproc_ended(w->nodes[i]))
            continue;
        if (w->ngone == 2 * (w->capslots + PD_GPU_MAX)) /* bounded: the oldest goes now */
            pd_nodeproc_destroy(&w->gone[--w->ngone]);
        w->gone[w->ngone++] = w->nodes[i];
        w->nodes[i] = w->nodes[--w->nnodes];
        w->nodes[w->nnodes] = NULL;
    }
    for (int i = w->ngone; i-- > 0;)
        if (pd_nodeproc_reap(w->gone[i])) {
            pd_nodeproc_destroy(&w->gone[i]);
            w->gone[i] = w->gone[--w->ngone];
            w->gone[w->ngone] = NULL;
        }
}

void pd_worker_kill_nodes(pd_worker_t *w)
{
    while (w->nnodes > 0)
        s_node_remove(w, w->nnodes - 1);
}
