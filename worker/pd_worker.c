/*  pd_worker: the worker's root object, its loop and its registration with
    the broker.

    The loop (pd_worker_run) only dispatches: zmq_poll over the DEALER socket,
    the control socket, the beacon listener, the slot processes' result
    pipes and the node processes' pipes; then messages go to
    pd_worker_on_message, control requests to pd_worker_on_ctl, beacons to
    pd_worker_on_beacon, pipe data to pd_slot_on_readable and
    pd_nodeproc_on_readable, and queued jobs to idle slots
    (pd_worker_tend_slots). Slots over the owner's limit retire as soon as
    they are idle; the idle policy is checked every idle.check_ms. Results
    collected during an iteration leave in one `done` message at its end
    (or earlier, when a batch is large), so nothing is held while idle.

    This file keeps the object (creation, destruction), the loop, the
    registration (`ready`, `welcome`, `reset`), heartbeats and liveness.
    The work lives in rooms that share the struct through pd_worker_int.h:
        pd_worker_jobs.c   job queues, modules, `run`, `cancel`, results in `done`
        pd_worker_slots.c  CPU and GPU slots, the owner's limit, jobs to slots
        pd_worker_nodes.c  the nodes of synchronous tasks
        pd_worker_idle.c   the owner's idle policy
        pd_worker_ctl.c    the control socket
        pd_worker_find.c   finding the broker by its beacon, connecting to it

    Security: towards a network broker the socket is a CurveZMQ client that
    accepts only the broker key trusted for that endpoint (known_brokers or
    --broker-key); a monitor reports failed handshakes (a wrong broker key,
    our key not admitted) in the log. Each job names the key of the client
    that submitted it, and the machine owner's code policy (pd_policy)
    decides whether it runs.
*/
#include "pd_worker_int.h"
#include "pd_build.h"
#include "pd_error.h"

#include "pd_plat.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define S_RECV_BURST 256            /* messages read per loop iteration */
#define S_DEFAULT_HB_MS 1000
#define S_DEFAULT_LIVENESS 3

/* ---- sending ------------------------------------------------------------ */

int pd_worker_send(pd_worker_t *w, pd_buf_t *b)
{
    if (b->failed) {
        pd_log_error("cannot encode a message for the broker (too large or out of memory)");
        return PD_ENOMEM;
    }
    if (zmq_send(w->sock, b->data, b->len, ZMQ_DONTWAIT) < 0) {
        /* Only when the broker has been unreachable for long: it has then
           requeued our jobs, so the message is moot. */
        pd_log_warn("cannot send to the broker (%s): message dropped", zmq_strerror(errno));
        return PD_EUNREACH;
    }
    w->last_send = pd_slot_now_ms();
    return 0;
}

int pd_worker_send_msg(pd_worker_t *w, const pd_proto_msg_t *d, const void *m)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_proto_encode(&pk, d, m); /* a failure marks b, which pd_worker_send reports */
    int rc = pd_worker_send(w, &b);
    pd_buf_free(&b);
    return rc;
}

/* The worker's state, as `ready` and `hb` carry it. */
typedef struct {
    uint64_t busy, queued;
    double load;
    const char *owner;
} s_state_t;

static s_state_t s_state(const pd_worker_t *w)
{
    return (s_state_t){(uint64_t) pd_worker_busy(w), (uint64_t) pd_worker_queued(w),
                       w->owner_load,
                       w->idle.load_max <= 0 ? "" : w->owner_active ? "owner" : "idle"};
}

#define S_SET_STATE(m, st)                                                                   \
    do {                                                                                     \
        (m).has_busy = (m).has_queued = (m).has_load = (m).has_owner = true;                 \
        (m).busy = (st).busy;                                                                \
        (m).queued = (st).queued;                                                            \
        (m).load = (st).load;                                                                \
        snprintf((m).owner, sizeof (m).owner, "%s", (st).owner);                             \
    } while (0)

/* The owner's limits: a default never exceeds its maximum, and output
   always has a cap (never more than PD_LIMITS_MAX_OUTPUT). */
static void s_set_limits(pd_worker_t *w, const pd_worker_config_t *cfg)
{
    pd_limits_t mx = cfg->job_max, df = cfg->job_default;
    if (!mx.output || mx.output > PD_LIMITS_MAX_OUTPUT)
        mx.output = PD_LIMITS_MAX_OUTPUT;
    if (!df.output)
        df.output = PD_LIMITS_DEFAULT_OUTPUT;
    if (mx.memory && (!df.memory || df.memory > mx.memory))
        df.memory = mx.memory;
    if (mx.cpu_s && (!df.cpu_s || df.cpu_s > mx.cpu_s))
        df.cpu_s = mx.cpu_s;
    if (df.output > mx.output)
        df.output = mx.output;
    w->job_max = mx;
    w->job_default = df;
}

static int s_pack_gpu_names(msgpack_packer *pk, const void *ctx)
{
    const pd_worker_t *w = ctx;
    int rc = msgpack_pack_array(pk, (uint32_t) w->ngpu_names);
    for (int i = 0; i < w->ngpu_names; i++)
        rc |= pd_pack_cstr(pk, w->gpu_names[i]);
    return rc;
}

/* Every GPU it can offer, in slot order (the first `gpus` are offered now),
   with its memory and compute capability. */
static int s_pack_gpu_info(msgpack_packer *pk, const void *ctx)
{
    const pd_worker_t *w = ctx;
    int rc = msgpack_pack_array(pk, (uint32_t) w->ngpu);
    for (int i = 0; i < w->ngpu; i++) {
        rc |= msgpack_pack_map(pk, 4);
        rc |= pd_pack_kv_str(pk, "name", w->gpu[i].name);
        rc |= pd_pack_kv_uint(pk, "mem", w->gpu[i].mem);
        rc |= pd_pack_kv_uint(pk, "cc_major", (uint64_t) w->gpu[i].cc_major);
        rc |= pd_pack_kv_uint(pk, "cc_minor", (uint64_t) w->gpu[i].cc_minor);
    }
    return rc;
}

static int s_pack_limits(msgpack_packer *pk, const void *ctx)
{
    pd_limits_pack(pk, ctx);
    return 0;
}

void pd_worker_send_ready(pd_worker_t *w)
{
    if (!w->connected)
        return;
    pd_m_ready_t r = {
        .pid = (uint64_t) pd_plat_getpid(),
        .cpus = (uint64_t) pd_worker_offered(w),
        .gpus = (uint64_t) pd_worker_offered_gpus(w),
        .has_gpu_names = true,
        .gpu_names = {.pack = s_pack_gpu_names, .ctx = w},
        .has_gpu_info = w->ngpu > 0,
        .gpu_info = {.pack = s_pack_gpu_info, .ctx = w},
        /* The owner's maxima for one job: the broker places here only jobs
           whose request fits. */
        .has_limits = true,
        .limits = {.pack = s_pack_limits, .ctx = &w->job_max},
        .has_slurm_job = w->slurm_job[0] != 0,
        .has_slurm_step = w->slurm_step[0] != 0,
        .has_slurm_array = w->slurm_array[0] != 0,
    };
    snprintf(r.host, sizeof r.host, "%s", w->host);
    snprintf(r.platform, sizeof r.platform, "%s", pd_plat_name());
    snprintf(r.version, sizeof r.version, "%s", PD_VERSION);
    s_state_t st = s_state(w);
    S_SET_STATE(r, st);
    snprintf(r.slurm_job, sizeof r.slurm_job, "%s", w->slurm_job);
    snprintf(r.slurm_step, sizeof r.slurm_step, "%s", w->slurm_step);
    snprintf(r.slurm_array, sizeof r.slurm_array, "%s", w->slurm_array);
    pd_worker_send_msg(w, &pd_proto_ready, &r);
    w->last_ready = w->last_state = pd_slot_now_ms();
}

void pd_worker_send_slots(pd_worker_t *w)
{
    if (!w->connected || !w->registered)
        return; /* the next `ready` carries them */
    pd_m_slots_t m = {.cpus = (uint64_t) pd_worker_offered(w),
                      .gpus = (uint64_t) pd_worker_offered_gpus(w)};
    pd_worker_send_msg(w, &pd_proto_slots, &m);
}

void pd_worker_send_state(pd_worker_t *w)
{
    if (!w->connected || !w->registered)
        return;
    pd_m_hb_t m = {0};
    s_state_t st = s_state(w);
    S_SET_STATE(m, st);
    pd_worker_send_msg(w, &pd_proto_hb, &m);
    w->last_state = pd_slot_now_ms();
}

/* ---- messages from the broker ------------------------------------------- */

/* The broker does not know us: drop every job and register again. */
static void s_reset(pd_worker_t *w)
{
    size_t running = 0;
    for (int k = 0; k < pd_worker_nall(w); k++) {
        pd_slot_t *sl = pd_worker_slot(w, k);
        if (!sl)
            continue;
        running += pd_slot_busy(sl);
        pd_slot_abort(sl);
    }
    /* A broker that restarted answers every message sent before the worker
       registered again with a reset: the first says it, the rest repeat it. */
    if (w->registered || running || pd_worker_queued(w) || w->nnodes)
        pd_log_warn("broker reset this worker: dropping %zu queued and %zu running jobs and %d "
                    "nodes, registering again", pd_worker_queued(w), running, w->nnodes);
    else
        pd_log_debug("broker reset this worker again before it registered");
    pd_worker_kill_nodes(w);
    pd_worker_q_clear(&w->q[PD_WORKER_Q_CPU]);
    pd_worker_q_clear(&w->q[PD_WORKER_Q_GPU]);
    pd_buf_reset(&w->res);
    w->nres = 0;
    w->registered = false;
    pd_worker_send_ready(w);
}

static void s_on_welcome(pd_worker_t *w, const pd_msg_t *m)
{
    pd_m_w_welcome_t wl;
    if (pd_m_w_welcome_decode(m, &wl))
        pd_log_warn("broker sent a bad 'welcome': %s", m->why);
    if (wl.has_hb_ms && wl.hb_ms >= 10 && wl.hb_ms <= 600000)
        w->hb_ms = (int) wl.hb_ms;
    if (wl.has_liveness && wl.liveness >= 1 && wl.liveness <= 1000)
        w->liveness = (int) wl.liveness;
    if (!w->registered)
        pd_log_info("registered with broker %s as %s (%d cpus, %d gpus offered; heartbeat %d "
                    "ms x %d)", w->broker, w->id, pd_worker_offered(w), pd_worker_offered_gpus(w),
                    w->hb_ms, w->liveness);
    w->registered = true;
}

void pd_worker_on_message(pd_worker_t *w, const void *data, size_t len)
{
    pd_msg_t m;
    if (pd_msg_parse(&m, data, len)) {
        pd_log_warn("unreadable message from the broker: %s", m.why);
        return;
    }
    w->last_recv = pd_slot_now_ms();
    if (pd_msg_is(&m, "hb"))
        return;
    if (pd_msg_is(&m, "run"))
        pd_worker_on_run(w, &m);
    else if (pd_msg_is(&m, "mod"))
        pd_worker_on_mod(w, &m);
    else if (pd_msg_is(&m, "shr"))
        pd_worker_on_shr(w, &m);
    else if (pd_msg_is(&m, "shr_drop"))
        pd_worker_on_shr_drop(w, &m);
    else if (pd_msg_is(&m, "welcome"))
        s_on_welcome(w, &m);
    else if (pd_msg_is(&m, "cancel"))
        pd_worker_on_cancel(w, &m);
    else if (pd_msg_is(&m, "steal"))
        pd_worker_on_steal(w, &m);
    else if (pd_msg_is(&m, "reset"))
        s_reset(w);
    else if (pd_msg_is(&m, "node_start"))
        pd_worker_on_node_start(w, &m);
    else if (pd_msg_is(&m, "node_peers"))
        pd_worker_on_node_step(w, &m, false);
    else if (pd_msg_is(&m, "node_go"))
        pd_worker_on_node_step(w, &m, true);
    else if (pd_msg_is(&m, "node_stop"))
        pd_worker_on_node_stop(w, &m);
    else if (pd_msg_is(&m, "node_abort"))
        pd_worker_on_node_abort(w, &m);
    else if (pd_msg_is(&m, "error")) {
        pd_m_error_t e;
        pd_m_error_decode(&m, &e); /* what it could read: a sentence or "" */
        pd_log_warn("broker reports an error: %.*s", (int) (e.msg.len < 255 ? e.msg.len : 255),
                    e.msg.p ? e.msg.p : "");
    } else
        pd_log_warn("broker sent a message of unknown type '%s'; ignored", m.type);
}

/* ---- security events ---------------------------------------------------- */

/* Logs failed handshakes with the broker (bounded rate): they are the only
   sign of a wrong broker key or of our key not being admitted. */
static void s_on_monitor(pd_worker_t *w)
{
    for (int i = 0; i < 64; i++) {
        uint16_t event;
        uint32_t value;
        if (!pd_auth_monitor_next(w->mon, &event, &value))
            return;
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            pd_log_debug("handshake with broker %s succeeded", w->broker);
            continue;
        }
        const char *why = event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                              ? "it does not admit this worker's key"
                              : pd_auth_handshake_why(event, value, false);
        pd_log_limited(&w->limit, 3, 30000, PD_LOG_WARN, "broker %s refused the connection: %s%s%s%s",
                       w->broker, why,
                       event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? " (on the broker: `playdoh-keygen "
                                                                  "allow '"
                                                                : "",
                       event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? w->key.pub : "",
                       event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? "' --role worker`)" : "");
    }
}

/* ---- the loop ----------------------------------------------------------- */

/* True when a job is queued here (CPU or GPU) or held by a slot (running or
   suspended). */
static bool s_has_work(pd_worker_t *w) { return pd_worker_queued(w) > 0 || pd_worker_busy(w) > 0; }

/* The idle time-out (--idle-exit): true when the worker has had nothing to
   do for idle_exit_ms and should leave, so that a pilot job gives its
   allocation back instead of holding it empty. */
static bool s_idle_expired(pd_worker_t *w, int64_t now)
{
    if (w->idle_exit_ms <= 0)
        return false;
    if (s_has_work(w)) {
        w->idle_since = now;
        return false;
    }
    if (now - w->idle_since < w->idle_exit_ms)
        return false;
    if (w->registered)
        pd_log_info("no job for %.3g s: leaving (idle time-out)", w->idle_exit_ms / 1e3);
    else
        pd_log_warn("no job for %.3g s and no answer from %s%s: leaving (idle time-out; can "
                    "this machine reach the broker?)", w->idle_exit_ms / 1e3,
                    w->broker[0] ? "broker " : "any broker of cluster ",
                    w->broker[0] ? w->broker : w->cluster);
    return true;
}

/* Heartbeat, liveness and re-registration. */
static void s_keepalive(pd_worker_t *w, int64_t now)
{
    if (!w->connected) {
        if (w->discover_since && now - w->discover_since > w->discover_timeout_ms) {
            pd_log_warn("no beacon of cluster '%s' heard for %d ms: still listening (is the "
                        "broker running, bound to tcp://*:PORT, with the same cluster name and "
                        "beacon port? or give its endpoint with --broker)", w->cluster,
                        w->discover_timeout_ms);
            w->discover_since = 0;
        }
        return;
    }
    int64_t silence = (int64_t) w->hb_ms * w->liveness;
    if (w->registered && now - w->last_recv > silence) {
        pd_log_warn("broker %s silent for %lld ms: registering again when it answers%s",
                    w->broker, (long long) (now - w->last_recv),
                    w->listener ? " (or when a beacon shows another)" : "");
        w->registered = false;
        pd_worker_send_ready(w);
    } else if (!w->registered && now - w->last_ready >= silence) {
        pd_worker_send_ready(w);
    }
    if (w->registered && now - w->last_state >= w->hb_ms)
        pd_worker_send_state(w);
    else if (now - w->last_send >= w->hb_ms)
        pd_worker_send_msg(w, &pd_proto_hb, &(pd_m_hb_t){0});
}

static int s_poll_timeout(pd_worker_t *w, int64_t now)
{
    int64_t next = w->last_send + w->hb_ms;
    int64_t silence = (int64_t) w->hb_ms * w->liveness;
    int64_t live = w->registered ? w->last_recv + silence + 1 : w->last_ready + silence;
    if (live < next)
        next = live;
    if (w->registered && w->last_state + w->hb_ms < next)
        next = w->last_state + w->hb_ms;
    if (w->load && w->next_check < next)
        next = w->next_check;
    for (int k = 0; k < pd_worker_nall(w); k++) {
        int64_t d = pd_worker_slot(w, k) ? pd_slot_deadline(pd_worker_slot(w, k)) : INT64_MAX;
        if (d < next)
            next = d;
    }
    if (w->idle_exit_ms > 0 && w->idle_since + w->idle_exit_ms < next)
        next = w->idle_since + w->idle_exit_ms;
    int64_t t = next - now;
    if (w->ngone > 0 && t > 10)
        t = 10; /* node processes to reap soon */
    return t < 0 ? 0 : t > w->hb_ms ? w->hb_ms : (int) t;
}

/* A worker judges the broker's silence against its own clock: when its
   loop did not run for longer than a heartbeat (the process was stopped,
   the machine suspended, or it was starved), whatever the broker sent in
   that time waits unread, so the broker gets a fresh grace period, as
   the broker gives its workers after a stall of its own. deaf is the
   time since the previous poll returned less what this poll listened. */
static void s_forgive_stall(pd_worker_t *w, int64_t deaf)
{
    if (deaf <= w->hb_ms)
        return;
    pd_log_warn("this worker did not run for %lld ms (stopped, suspended or overloaded): "
                "the broker gets a fresh grace period of %lld ms before it counts as silent",
                (long long) deaf, (long long) w->hb_ms * w->liveness);
    int64_t now = pd_slot_now_ms();
    if (w->last_recv < now)
        w->last_recv = now;
}

/* Adds the slot and node pipes to w->items from nitems on (item_slot: the slot's index, or
 * -1 - the node's); returns the new count. */
static int s_poll_pipes(pd_worker_t *w, int nitems)
{
    for (int k = 0; k < pd_worker_nall(w); k++) {
        int fd = pd_worker_slot(w, k) ? pd_slot_fd(pd_worker_slot(w, k)) : -1;
        if (fd < 0)
            continue;
        w->items[nitems] = (zmq_pollitem_t){.socket = NULL, .fd = fd, .events = ZMQ_POLLIN};
        w->item_slot[nitems] = k;
        nitems++;
    }
    for (int i = 0; i < w->nnodes; i++) {
        int fd = pd_nodeproc_fd(w->nodes[i]);
        if (fd < 0)
            continue;
        w->items[nitems] = (zmq_pollitem_t){.socket = NULL, .fd = fd, .events = ZMQ_POLLIN};
        w->item_slot[nitems] = -1 - i;
        nitems++;
    }
    return nitems;
}

/* Reads the slot and node pipes that polled readable, items nfixed to nitems. */
static void s_on_pipes(pd_worker_t *w, int nfixed, int nitems)
{
    for (int i = nfixed; i < nitems; i++) {
        if (!(w->items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR)))
            continue;
        int k = w->item_slot[i];
        if (k >= 0) {
            pd_slot_on_readable(pd_worker_slot(w, k));
            continue;
        }
        k = -1 - k;
        if (k < w->nnodes && pd_nodeproc_fd(w->nodes[k]) == (int) w->items[i].fd)
            pd_nodeproc_on_readable(w->nodes[k]);
    }
}

/* The loop is written out over zmq_poll rather than CZMQ's zloop (which the
   house uses where it fits, issue 17), because this loop needs four things
   zloop does not give:
   - a tail after every poll, once whatever was ready has been handled:
     reaping node processes, slot deadlines, the idle policy, giving queued
     jobs to idle slots, and above all one `done` message for every result
     collected in the iteration (pd_worker_flush), which is what keeps
     bench_async's throughput. zloop has no end-of-iteration hook; a timer of
     0 ms makes its poll time out at once (a busy loop), a timer of 1 ms holds
     each result up to a millisecond, and flushing in each handler sends one
     `done` per pipe instead of one per iteration;
   - a poll set rebuilt from the slots and nodes every iteration: their
     pipes come and go with every slot restart and every task's node
     processes, from modules (pd_slot, pd_nodeproc) that do not know the
     loop. With zloop each change is a zloop_poller / zloop_poller_end, and
     a change made in a handler ends that pass over the ready items
     (need_rebuild), leaving the rest for another poll;
   - signals that do not stop it: zloop_start returns on any EINTR, and
     this loop is woken on purpose by SIGHUP (reload, below) and, for the
     worker embedded in playdoh-broker, by SIGUSR1 (local/pd_embedded.c), to
     look at its flags and carry on;
   - the time spent inside the poll, which s_forgive_stall needs to tell a
     stalled process from a quiet broker; zloop keeps its poll to itself.
   The order in which ready items are handled (monitor, shared-data
   writer, broker messages, pipes, then control requests, which may retire
   slots) matters as well, and is plain here. */
int pd_worker_run(pd_worker_t *w, volatile sig_atomic_t *stop)
{
    int rc = 0;
    int64_t woke = pd_slot_now_ms();
    while (!*stop) {
        if (w->reload && *w->reload) {
            *w->reload = 0;
            if (w->on_reload)
                w->on_reload(w, w->reload_user);
        }
        int64_t now = pd_slot_now_ms();
        int nitems = 0, ictl = -1, ibeacon = -1;
        w->items[nitems++] = (zmq_pollitem_t){.socket = w->sock, .events = ZMQ_POLLIN};
        int imon = nitems;
        w->items[nitems++] = (zmq_pollitem_t){.socket = w->mon, .events = ZMQ_POLLIN};
        if (w->ctl) {
            ictl = nitems;
            w->items[nitems++] = (zmq_pollitem_t){.socket = w->ctl, .events = ZMQ_POLLIN};
        }
        if (w->listener) {
            ibeacon = nitems;
            w->items[nitems++] = (zmq_pollitem_t){
                .socket = pd_beacon_listener_socket(w->listener), .events = ZMQ_POLLIN};
        }
        int ibg = nitems;
        w->items[nitems++] = (zmq_pollitem_t){.socket = pd_bg_socket(w->bg), .events = ZMQ_POLLIN};
        int nfixed = nitems;
        nitems = s_poll_pipes(w, nitems);
        int64_t polled = pd_slot_now_ms(), timeout = s_poll_timeout(w, now);
        int n = zmq_poll(w->items, nitems, (long) timeout);
        int64_t back = pd_slot_now_ms(), in_poll = back - polled;
        s_forgive_stall(w, back - woke - (in_poll < timeout ? in_poll : timeout));
        woke = back;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            pd_log_error("zmq_poll failed: %s", zmq_strerror(errno));
            rc = PD_ESYS;
            break;
        }
        /* Stopped by a signal: a resource manager (Slurm's scancel, a time
           limit) may have signalled the slot processes too, so what they
           report now is not the tasks' doing; `bye` requeues those jobs. */
        if (*stop)
            break;
        if (w->items[imon].revents & ZMQ_POLLIN)
            s_on_monitor(w);
        if (w->items[ibg].revents & ZMQ_POLLIN)
            pd_bg_drain(w->bg); /* shared data written off the loop */
        if (w->items[0].revents & ZMQ_POLLIN) {
            zmq_msg_t msg;
            zmq_msg_init(&msg);
            for (int k = 0; k < S_RECV_BURST && zmq_msg_recv(&msg, w->sock, ZMQ_DONTWAIT) >= 0; k++)
                pd_worker_on_message(w, zmq_msg_data(&msg), zmq_msg_size(&msg));
            zmq_msg_close(&msg);
        }
        /* Slot and node pipes before control requests: a request may retire
           slots. Messages above may have removed nodes (node_abort): a node's
           entry is checked against the current list before use. */
        s_on_pipes(w, nfixed, nitems);
        pd_worker_reap_nodes(w);
        if (ictl >= 0 && (w->items[ictl].revents & ZMQ_POLLIN))
            pd_worker_on_ctl(w);
        if (ibeacon >= 0 && (w->items[ibeacon].revents & ZMQ_POLLIN))
            pd_worker_on_beacon(w);
        now = pd_slot_now_ms();
        for (int k = 0; k < pd_worker_nall(w); k++)
            if (pd_worker_slot(w, k) && pd_slot_deadline(pd_worker_slot(w, k)) <= now)
                pd_slot_tick(pd_worker_slot(w, k));
        if (w->load && now >= w->next_check)
            pd_worker_check_idle(w, now);
        pd_worker_tend_slots(w);
        pd_worker_flush(w);
        now = pd_slot_now_ms();
        s_keepalive(w, now);
        if (s_idle_expired(w, now))
            break;
    }
    pd_worker_flush(w);
    if (w->connected)
        pd_worker_send_msg(w, &pd_proto_bye, &(pd_m_bye_t){0});
    pd_log_info("leaving broker %s after %llu results", w->broker[0] ? w->broker : "(none found)",
                (unsigned long long) w->ndone);
    return rc;
}

/* ---- construction ------------------------------------------------------- */

/* A path under the configuration directory, or the given one. */
static int s_config_path(const pd_worker_config_t *cfg, const char *given, const char *name,
                         char *out, size_t cap)
{
    if (given) {
        snprintf(out, cap, "%s", given);
        return 0;
    }
    char *dir = cfg->config_dir ? strdup(cfg->config_dir) : pd_auth_config_dir();
    if (!dir) {
        pd_log_error("cannot find the configuration directory (HOME is not set): give "
                     "--config-dir");
        return PD_EINVAL;
    }
    snprintf(out, cap, "%s/%s", dir, name);
    free(dir);
    return 0;
}

/* Decides the socket's security; with CurveZMQ loads our key pair and the
   broker's trusted key (for a broker found by beacon, later: the beacon's
   key must be trusted), or says which command is missing. */
static int s_security_setup(pd_worker_t *w, const pd_worker_config_t *cfg)
{
    const char *ep = cfg->broker && *cfg->broker ? cfg->broker : NULL;
    /* Beacons come from the network: a discovered broker is never loopback. */
    pd_sec_mode_t mode = ep ? pd_auth_resolve(cfg->security, ep)
                            : cfg->security == PD_SEC_NONE ? PD_SEC_NONE : PD_SEC_CURVE;
    if (mode == PD_SEC_NONE) {
        if (!ep || !pd_auth_endpoint_is_loopback(ep))
            pd_log_warn("SECURITY WARNING: connecting to broker %s without authentication or "
                        "encryption (--insecure): whoever answers at that address can run code "
                        "on this machine. Use this only on a network you trust completely.",
                        ep ? ep : "(found by beacon)");
        return 0;
    }
    w->secure = true;
    char path[4096], why[1024];
    int rc = s_config_path(cfg, cfg->key_file, "id.key", path, sizeof path);
    if (rc)
        return rc;
    rc = pd_auth_key_load(path, true, &w->key, why, sizeof why);
    if (rc) {
        pd_log_error("a secure connection to %s needs a key pair for this worker: %s; then, on "
                     "the broker's machine, admit it with `playdoh-keygen allow KEY --role "
                     "worker`", ep ? ep : "a broker", why);
        return rc;
    }
    w->config_dir = cfg->config_dir ? strdup(cfg->config_dir) : pd_auth_config_dir();
    if (!w->config_dir && !cfg->broker_key) {
        pd_log_error("cannot find the configuration directory (HOME is not set): give "
                     "--config-dir or --broker-key");
        return PD_EINVAL;
    }
    if (cfg->broker_key) {
        if (pd_auth_key_from_arg(cfg->broker_key, w->broker_key, NULL, 0, why, sizeof why)) {
            pd_log_error("--broker-key: %s", why);
            return PD_EINVAL;
        }
        w->fixed_key = true;
        return 0;
    }
    if (!ep)
        return 0; /* each beacon's key is checked when it comes */
    rc = pd_auth_trust_find(w->config_dir, ep, w->broker_key, why, sizeof why);
    if (rc)
        pd_log_error("%s", why);
    return rc;
}

static pd_policy_t *s_policy_new(pd_worker_t *w, const pd_worker_config_t *cfg)
{
    char list[4096] = "";
    if (cfg->code_policy != PD_POLICY_ANY &&
        s_config_path(cfg, cfg->code_list,
                      cfg->code_policy == PD_POLICY_CLIENTS ? "code-clients" : "code-modules",
                      list, sizeof list))
        return NULL;
    return pd_policy_new(cfg->code_policy, list, w->host);
}

pd_worker_t *pd_worker_new(const pd_worker_config_t *cfg, int *err)
{
    assert(cfg);
    int code = PD_EINVAL;
    pd_worker_t *w = NULL;
    if (!cfg->cache_dir || !*cfg->cache_dir) {
        pd_log_error("a cache directory is required");
        goto fail;
    }
    if (cfg->cpus < 0 || cfg->cpus > PD_WORKER_MAX_CPUS || cfg->gpus < -1 ||
        cfg->gpus > PD_WORKER_MAX_GPUS) {
        pd_log_error("--cpus must be between 0 and %d and --gpus between 0 and %d (got %d and "
                     "%d)", PD_WORKER_MAX_CPUS, PD_WORKER_MAX_GPUS, cfg->cpus, cfg->gpus);
        goto fail;
    }
    const char *cluster = cfg->cluster && *cfg->cluster ? cfg->cluster : PD_BEACON_DEFAULT_CLUSTER;
    if (!pd_beacon_name_ok(cluster)) {
        pd_log_error("cluster name '%s' is not 1 to 63 letters, digits, '-', '_' or '.'",
                     cluster);
        goto fail;
    }
    code = PD_ENOMEM;
    if (!(w = calloc(1, sizeof *w)))
        goto fail;
    snprintf(w->cluster, sizeof w->cluster, "%s", cluster);
    code = PD_EINVAL;
    if (pd_worker_offer_gpus(w, cfg->gpus))
        goto fail;
    code = PD_ENOMEM;
    w->cpus = cfg->cpus;
    w->hb_ms = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : S_DEFAULT_HB_MS;
    w->liveness = S_DEFAULT_LIVENESS;
    w->q[PD_WORKER_Q_CPU].max = (size_t) cfg->cpus * 1024 + 4096;
    w->q[PD_WORKER_Q_GPU].max = (size_t) w->ngpu * 1024 + 4096;
    w->owner_load = -1;
    w->reload = cfg->reload;
    w->on_reload = cfg->on_reload;
    w->reload_user = cfg->reload_user;
    w->discover_timeout_ms = cfg->discover_timeout_ms > 0 ? cfg->discover_timeout_ms
                                                           : PD_BEACON_DEFAULT_DISCOVER_MS;
    w->idle_exit_ms = cfg->idle_exit_ms > 0 ? cfg->idle_exit_ms : 0;
    s_set_limits(w, cfg);
    snprintf(w->slurm_job, sizeof w->slurm_job, "%s", cfg->slurm_job ? cfg->slurm_job : "");
    snprintf(w->slurm_step, sizeof w->slurm_step, "%s", cfg->slurm_step ? cfg->slurm_step : "");
    snprintf(w->slurm_array, sizeof w->slurm_array, "%s",
             cfg->slurm_array ? cfg->slurm_array : "");
    pd_buf_init(&w->res);
    w->cache_dir = strdup(cfg->cache_dir);
    /* The running program's path, resolved now: exec'ing "/proc/self/exe"
       itself would start the wrong program under valgrind, which reports
       the client's path through readlink but not through exec. */
    char self[PATH_MAX];
    if (pd_plat_self_exe(self, sizeof self))
        snprintf(self, sizeof self, "/proc/self/exe");
    w->slot_exe = strdup(cfg->slot_exe ? cfg->slot_exe : self);
    w->log_level = cfg->log_level ? strdup(cfg->log_level) : NULL;
    w->proc_dir = strdup(cfg->proc_dir && *cfg->proc_dir ? cfg->proc_dir : "/proc");
    if (cfg->node_addr && *cfg->node_addr) {
        snprintf(w->node_addr, sizeof w->node_addr, "%s", cfg->node_addr);
        w->node_addr_given = true;
    }
    if (!w->cache_dir || !w->slot_exe || (cfg->log_level && !w->log_level) || !w->proc_dir ||
        pd_worker_reserve_slots(w, cfg->cpus > 0 ? cfg->cpus : 1))
        goto fail;
    if (cfg->name && *cfg->name)
        snprintf(w->host, sizeof w->host, "%s", cfg->name);
    else if (pd_plat_hostname(w->host, sizeof w->host - 1))
        snprintf(w->host, sizeof w->host, "unknown");
    /* No GPU found through CUDA: the driver's procfs may name some. */
    if (w->ngpu_names == 0)
        pd_worker_find_gpu_names(w);
    if (!(w->mc = pd_modcache_new(w->cache_dir, &code)))
        goto fail;
    code = PD_ESYS;
    if (!(w->bg = pd_bg_new()))
        goto fail;
    if ((code = s_security_setup(w, cfg)) != 0)
        goto fail;
    w->tubes_curve = w->secure || cfg->tubes_curve;
    code = PD_ENOMEM;
    if (!(w->policy = s_policy_new(w, cfg)))
        goto fail;
    unsigned char rnd[8];
    randombytes_buf(rnd, sizeof rnd);
    memcpy(w->id, "w-", 2);
    sodium_bin2hex(w->id + 2, sizeof w->id - 2, rnd, sizeof rnd);
    if ((code = pd_worker_start_slots(w)))
        goto fail;
    code = PD_ESYS;
    w->ctx = cfg->zmq_ctx;
    if (!w->ctx) {
        w->ctx = zmq_ctx_new();
        w->own_ctx = true;
    }
    if (!w->ctx || !(w->sock = zmq_socket(w->ctx, ZMQ_DEALER))) {
        pd_log_error("cannot create a ZeroMQ socket: %s", zmq_strerror(errno));
        goto fail;
    }
    int linger = 1000, hwm = 100000, backoff = 2000;
    zmq_setsockopt(w->sock, ZMQ_ROUTING_ID, w->id, strlen(w->id));
    zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(w->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(w->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    /* A refused handshake is retried at most every 2 s, not every 100 ms. */
    zmq_setsockopt(w->sock, ZMQ_RECONNECT_IVL_MAX, &backoff, sizeof backoff);
    char mon[64];
    snprintf(mon, sizeof mon, "inproc://pd-worker-monitor-%p", (void *) w);
    int zero = 0;
    if (zmq_socket_monitor(w->sock, mon, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                             ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                             ZMQ_EVENT_HANDSHAKE_SUCCEEDED) ||
        !(w->mon = zmq_socket(w->ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(w->mon, ZMQ_LINGER, &zero, sizeof zero) || zmq_connect(w->mon, mon)) {
        pd_log_error("cannot monitor the broker connection: %s", zmq_strerror(errno));
        goto fail;
    }
    if (cfg->control && *cfg->control &&
        (code = pd_worker_bind_control(w, cfg->control,
                                       cfg->control_mode ? cfg->control_mode : 0660)))
        goto fail;
    if (cfg->idle.load_max > 0)
        pd_worker_set_idle(w, &cfg->idle);
    else
        w->idle = cfg->idle;
    int64_t now = pd_slot_now_ms();
    w->last_recv = w->last_state = now;
    w->idle_since = now;
    if (cfg->broker && *cfg->broker) {
        if ((code = pd_worker_connect(w, cfg->broker)))
            goto fail;
    } else {
        int port = cfg->beacon_port > 0 ? cfg->beacon_port : PD_BEACON_DEFAULT_PORT;
        w->listener = pd_beacon_listener_new(w->cluster, port, cfg->beacon_iface, &code);
        if (!w->listener)
            goto fail;
        w->discover_since = now;
        pd_log_info("looking for a broker of cluster '%s' (beacons on UDP port %d)", w->cluster,
                    port);
    }
    pd_log_info("worker %s on %s: %d cpu slots, %d gpu slots%s%s, cache %s, broker %s (%s), "
                "code policy '%s', nodes bind on %s", w->id, w->host, w->cpus, w->gpus,
                w->ngpu_names ? " " : "", w->ngpu_names ? w->gpu_names[0] : "", w->cache_dir,
                w->broker[0] ? w->broker : "(by beacon)", w->secure ? "CurveZMQ" : "no security",
                pd_policy_name(pd_policy_mode(w->policy)),
                w->node_addr[0] ? w->node_addr : "(the address that reaches the broker)");
    if (w->slurm_job[0])
        pd_log_info("pilot in Slurm job %s (array task %s, step %s)", w->slurm_job,
                    w->slurm_array[0] ? w->slurm_array : "none",
                    w->slurm_step[0] ? w->slurm_step : "none");
    if (w->idle_exit_ms)
        pd_log_info("leaving after %.3g s without a job (idle time-out)", w->idle_exit_ms / 1e3);
    return w;
fail:
    if (err)
        *err = code;
    pd_worker_destroy(&w);
    return NULL;
}

void pd_worker_destroy(pd_worker_t **p)
{
    if (!p || !*p)
        return;
    pd_worker_t *w = *p;
    pd_bg_destroy(&w->bg); /* shared data being written is finished first */
    if (w->slots)
        for (int i = 0; i < w->nslots; i++)
            pd_slot_destroy(&w->slots[i]);
    free(w->slots);
    for (int i = 0; i < w->nnodes; i++)
        pd_nodeproc_destroy(&w->nodes[i]);
    free(w->nodes);
    for (int i = 0; i < w->ngone; i++)
        pd_nodeproc_destroy(&w->gone[i]);
    free(w->gone);
    for (int g = 0; g < PD_GPU_MAX; g++)
        pd_slot_destroy(&w->gslots[g]);
    for (int c = 0; c < 2; c++) {
        pd_worker_q_clear(&w->q[c]);
        free(w->q[c].q);
    }
    pd_buf_free(&w->res);
    pd_beacon_listener_destroy(&w->listener);
    if (w->ctl) {
        zmq_close(w->ctl);
        if (w->control)
            unlink(w->control);
    }
    free(w->control);
    if (w->mon)
        zmq_close(w->mon);
    if (w->sock)
        zmq_close(w->sock);
    pd_policy_destroy(&w->policy);
    free(w->config_dir);
    sodium_memzero(w->key.sec, sizeof w->key.sec);
    if (w->ctx && w->own_ctx)
        zmq_ctx_term(w->ctx);
    pd_modcache_destroy(&w->mc);
    pd_load_destroy(&w->load);
    free(w->mods);
    free(w->items);
    free(w->item_slot);
    free(w->cache_dir);
    free(w->slot_exe);
    free(w->log_level);
    free(w->proc_dir);
    free(w);
    *p = NULL;
}

const char *pd_worker_id(pd_worker_t *w) { return w->id; }
size_t pd_worker_queued(const pd_worker_t *w) { return w->q[0].len + w->q[1].len; }
const char *pd_worker_node_addr(pd_worker_t *w) { return w->node_addr; }
