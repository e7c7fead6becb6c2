/*  pd_nodeproc: the worker's handle of a node process, and the node process's
    main; see pd_nodeproc.h for the pipe protocol.

    Parent side: spawn (pd_plat_spawn), send `start`, read `bound`, `ready`
    and `result` as they come and report them, relay `peers` and `go`, and
    turn a death before `result` into the node's failure.

    Child side (pd_nodeproc_main): the rendezvous steps in order, each a
    blocking read of the next frame (the worker kills the process when the
    task is aborted), then the task function with a pd_task_t whose tubes
    are this node's, then closing the tubes and the ZeroMQ context (which
    waits for outgoing data to leave) before writing `result`.
*/
#include "pd_nodeproc.h"
#include "pd_codec.h"
#include "pd_builtins.h"
#include "pd_error.h"
#include "pd_gpurt.h"
#include "pd_log.h"
#include "pd_modcache.h"
#include "pd_msg.h"
#include "pd_proto.h"
#include "pd_pipe.h"
#include "pd_task.h"
#include "pd_tubes.h"

#include "pd_plat.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define S_REAP_GRACE_MS 2000

struct pd_nodeproc {
    uint64_t task;        /* task id */
    uint32_t node;        /* node index */
    int gpu;              /* its GPU, or -1 */
    uint64_t attempt;     /* the broker's attempt at starting the task */
    pd_nodeproc_sink_t sink;  /* where progress goes */
    int pid;              /* the process; 0 once reaped */
    char *exe;            /* the program it runs, for messages (owned) */
    bool up;              /* it said `up`: it started */
    bool stop_sent;       /* `stop` was sent */
    int to_child;         /* write end of its input pipe; -1 when closed */
    int from_child;       /* read end of its output pipe (non-blocking); -1 when closed */
    uint8_t *rbuf;        /* bytes read, not yet handled (owned) */
    size_t rlen;          /* bytes in rbuf */
    size_t rcap;          /* capacity of rbuf */
    bool ended;           /* the result was reported */
    int64_t ended_ms;     /* when (monotonic ms) */
};

/* ---- parent side -------------------------------------------------------- */

static void s_close_fds(pd_nodeproc_t *nd)
{
    pd_plat_close(nd->to_child);
    pd_plat_close(nd->from_child);
    nd->to_child = nd->from_child = -1;
}

/* Kills the process (if alive) and waits for it; returns its status. */
static int s_kill_reap(pd_nodeproc_t *nd)
{
    int status = 0;
    if (nd->pid > 0) {
        pd_plat_kill_tree(nd->pid);
        pd_plat_wait(nd->pid, &status, true);
    }
    nd->pid = 0;
    s_close_fds(nd);
    return status;
}

/* Waits for a process whose pipe closed, killing it after a grace period. */
static int s_reap_closed(pd_nodeproc_t *nd, bool *killed)
{
    int status = 0;
    *killed = false;
    for (int i = 0; i < S_REAP_GRACE_MS && nd->pid > 0; i++) {
        if (pd_plat_wait(nd->pid, &status, false) != 0) {
            nd->pid = 0;
            s_close_fds(nd);
            return status;
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    *killed = nd->pid > 0;
    return s_kill_reap(nd);
}

/* Reports the node as failed with code and msg. */
static void s_report_failure(pd_nodeproc_t *nd, int code, const char *msg)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    msgpack_pack_map(&pk, 2);
    pd_pack_kv_str(&pk, "code", pd_err_name(code));
    pd_pack_kv_str(&pk, "msg", msg);
    nd->ended = true;
    nd->ended_ms = zclock_mono();
    if (!b.failed)
        nd->sink.result(nd->sink.user, nd, false, b.data, b.len, 0);
    pd_buf_free(&b);
}

/* Writes a built frame to the child. */
static int s_send_frame(pd_nodeproc_t *nd, const pd_buf_t *frame)
{
    if (nd->to_child < 0 || frame->failed)
        return PD_ESYS;
    return pd_plat_write_all(nd->to_child, frame->data, frame->len) ? PD_ESYS : 0;
}

pd_nodeproc_t *pd_nodeproc_new(const pd_nodeproc_config_t *cfg, const void *start, size_t len, int *err)
{
    assert(cfg && cfg->exe && cfg->cache_dir && cfg->host && cfg->sink.result && start);
    int dummy;
    if (!err)
        err = &dummy;
    pd_nodeproc_t *nd = calloc(1, sizeof *nd);
    if (!nd) {
        *err = PD_ENOMEM;
        return NULL;
    }
    nd->task = cfg->task;
    nd->node = cfg->node;
    nd->gpu = cfg->gpu;
    nd->attempt = cfg->attempt;
    nd->sink = cfg->sink;
    nd->to_child = nd->from_child = -1;
    char parent[24];
    snprintf(parent, sizeof parent, "%d", pd_plat_getpid());
    char *argv0 = strcmp(cfg->exe, "/proc/self/exe") == 0 ? "playdoh-worker" : (char *) cfg->exe;
    char *argv[12] = {argv0, "--node", "--cache", (char *) cfg->cache_dir, "--host",
                      (char *) cfg->host, "--parent", parent, NULL, NULL, NULL};
    if (cfg->log_level) {
        argv[8] = "--log-level";
        argv[9] = (char *) cfg->log_level;
    }
    char visible[96];
    if (cfg->cuda_visible)
        snprintf(visible, sizeof visible, "CUDA_VISIBLE_DEVICES=%s", cfg->cuda_visible);
    int pid = pd_plat_spawn(cfg->exe, argv, cfg->cuda_visible ? visible : NULL, &nd->to_child,
                            &nd->from_child);
    if (pid < 0) {
        pd_log_error("task %llu node %u: cannot start a node process: %s",
                     (unsigned long long) cfg->task, cfg->node, strerror(errno));
        free(nd);
        *err = PD_ESYS;
        return NULL;
    }
    nd->pid = pid;
    nd->exe = strdup(cfg->exe); /* NULL: messages name no program */
    pd_buf_t b;
    pd_buf_init(&b);
    pd_pipe_frame_begin(&b);
    pd_buf_append(&b, start, len);
    int rc = pd_pipe_frame_end(&b) ? PD_ENOMEM : s_send_frame(nd, &b);
    int saved = errno;
    pd_buf_free(&b);
    /* EPIPE: the process is already gone (it could not start); its pipe's
       end says why at the first read, as for any death before `up`. */
    if (rc == PD_ESYS && saved == EPIPE)
        rc = 0;
    if (rc) {
        pd_log_error("task %llu node %u: cannot send the node its start: %s",
                     (unsigned long long) cfg->task, cfg->node,
                     rc == PD_ENOMEM ? "too large" : strerror(saved));
        pd_nodeproc_destroy(&nd);
        *err = rc;
        return NULL;
    }
    pd_log_debug("task %llu node %u: process %ld started", (unsigned long long) nd->task,
                 nd->node, (long) pid);
    *err = 0;
    return nd;
}

void pd_nodeproc_destroy(pd_nodeproc_t **p)
{
    if (!p || !*p)
        return;
    pd_nodeproc_t *nd = *p;
    s_kill_reap(nd);
    free(nd->rbuf);
    free(nd->exe);
    free(nd);
    *p = NULL;
}

int pd_nodeproc_fd(const pd_nodeproc_t *nd) { return nd->ended ? -1 : nd->from_child; }

bool pd_nodeproc_reap(pd_nodeproc_t *nd)
{
    if (nd->pid <= 0)
        return true;
    int status = 0;
    int r = pd_plat_wait(nd->pid, &status, false);
    if (r != 0) {
        char how[128];
        if (r > 0 && (pd_plat_status_crashed(status) || pd_plat_status_exit(status) != 0))
            pd_log_warn("task %llu node %u: the node process %s after its result",
                        (unsigned long long) nd->task, nd->node,
                        pd_plat_status_str(status, how, sizeof how));
        nd->pid = 0;
        return true;
    }
    if (zclock_mono() - nd->ended_ms > PD_NODEPROC_LINGER_MS) {
        pd_log_warn("task %llu node %u: the node process lingered %d ms after its result; "
                    "killed", (unsigned long long) nd->task, nd->node, PD_NODEPROC_LINGER_MS);
        s_kill_reap(nd);
        return true;
    }
    return false;
}
uint64_t pd_nodeproc_task(const pd_nodeproc_t *nd) { return nd->task; }
uint32_t pd_nodeproc_index(const pd_nodeproc_t *nd) { return nd->node; }
int pd_nodeproc_gpu(const pd_nodeproc_t *nd) { return nd->gpu; }
uint64_t pd_nodeproc_attempt(const pd_nodeproc_t *nd) { return nd->attempt; }
int pd_nodeproc_pid(const pd_nodeproc_t *nd) { return (int) nd->pid; }
bool pd_nodeproc_ended(const pd_nodeproc_t *nd) { return nd->ended; }

/* Encodes message m (described by d) as one pipe frame into b, which it
   resets. Returns 0, or PD_ETOOBIG when it does not fit a frame. Both ends
   of the pipe write with it. */
static int s_pipe_msg(pd_buf_t *b, const pd_proto_msg_t *d, const void *m)
{
    msgpack_packer pk;
    pd_packer_init(&pk, b);
    pd_pipe_frame_begin(b);
    pd_proto_encode(&pk, d, m);
    return pd_pipe_frame_end(b);
}

/* Sends message m to the node process. */
static int s_send_msg(pd_nodeproc_t *nd, const pd_proto_msg_t *d, const void *m)
{
    pd_buf_t b;
    pd_buf_init(&b);
    int rc = s_pipe_msg(&b, d, m) ? PD_ENOMEM : s_send_frame(nd, &b);
    pd_buf_free(&b);
    return rc;
}

int pd_nodeproc_send_peers(pd_nodeproc_t *nd, const void *peers, size_t len)
{
    pd_m_np_peers_t m = {.peers = {.p = peers, .len = len}};
    return s_send_msg(nd, &pd_proto_np_peers, &m);
}

int pd_nodeproc_send_go(pd_nodeproc_t *nd)
{
    return s_send_msg(nd, &pd_proto_np_go, &(pd_m_np_go_t){0});
}
int pd_nodeproc_send_stop(pd_nodeproc_t *nd)
{
    /* Once: the node reads its pipe only when it looks, so repeated asks
       must not pile up in it. */
    if (nd->ended || nd->stop_sent)
        return 0;
    nd->stop_sent = true;
    return s_send_msg(nd, &pd_proto_np_stop, &(pd_m_np_stop_t){0});
}

/* Handles one message from the child; returns 0, or PD_EPROTO with *why set. */
static int s_frame(pd_nodeproc_t *nd, const uint8_t *p, size_t len, const char **why)
{
    pd_msg_t m;
    if (pd_msg_parse(&m, p, len)) {
        *why = "not a message";
        return PD_EPROTO;
    }
    if (pd_msg_is(&m, "up") && !nd->up) {
        nd->up = true;
        return 0;
    }
    if (!nd->up) {
        *why = "a message before 'up'";
        return PD_EPROTO;
    }
    if (pd_msg_is(&m, "bound")) {
        pd_m_np_bound_t b;
        if (pd_m_np_bound_decode(&m, &b)) {
            /* the fields are read in order: an endpoint read means the key failed */
            *why = b.ep[0] ? "'bound' with a key that is not 40 characters"
                           : "'bound' without an endpoint";
            return PD_EPROTO;
        }
        if (nd->sink.bound)
            nd->sink.bound(nd->sink.user, nd, b.ep, b.key[0] ? b.key : NULL);
        return 0;
    }
    if (pd_msg_is(&m, "ready")) {
        if (nd->sink.ready)
            nd->sink.ready(nd->sink.user, nd);
        return 0;
    }
    if (pd_msg_is(&m, "progress")) {
        pd_m_np_progress_t pr;
        if (pd_m_np_progress_decode(&m, &pr)) {
            *why = "'progress' without val";
            return PD_EPROTO;
        }
        if (nd->sink.progress && pr.val.len <= PD_NODEPROC_MAX_PROGRESS)
            nd->sink.progress(nd->sink.user, nd, pr.val.p, pr.val.len);
        return 0;
    }
    if (pd_msg_is(&m, "result")) {
        pd_m_np_result_t r;
        if (pd_m_np_result_decode(&m, &r)) {
            *why = "'result' without ok or val";
            return PD_EPROTO;
        }
        nd->ended = true;
        nd->ended_ms = zclock_mono();
        nd->sink.result(nd->sink.user, nd, r.ok, r.val.p, r.val.len, r.us);
        return 0;
    }
    *why = "unknown message type";
    return PD_EPROTO;
}

void pd_nodeproc_on_readable(pd_nodeproc_t *nd)
{
    if (nd->from_child < 0)
        return;
    bool eof = pd_pipe_drain(nd->from_child, &nd->rbuf, &nd->rlen, &nd->rcap,
                             (size_t) PD_MAX_FRAME + 4) == 1;
    size_t off = 0;
    while (!nd->ended && nd->rlen - off >= 4) {
        uint32_t flen = pd_pipe_le32(nd->rbuf + off);
        const char *why = NULL;
        if (flen > PD_MAX_FRAME)
            why = "frame over the size limit";
        else if (nd->rlen - off - 4 < flen)
            break;
        else if (pd_mp_check(nd->rbuf + off + 4, flen, PD_MAX_DEPTH, &why) == 0)
            s_frame(nd, nd->rbuf + off + 4, flen, &why);
        if (why) {
            char msg[256];
            snprintf(msg, sizeof msg, "the node process sent an unreadable message (%s)", why);
            pd_log_warn("task %llu node %u: %s", (unsigned long long) nd->task, nd->node, msg);
            s_kill_reap(nd);
            nd->rlen = 0;
            s_report_failure(nd, PD_ECRASH, msg);
            return;
        }
        off += 4 + (size_t) flen;
    }
    memmove(nd->rbuf, nd->rbuf + off, nd->rlen - off);
    nd->rlen -= off;
    if (nd->ended) {
        /* Its part is over; the process exits by itself, reaped later
           without blocking the worker (pd_nodeproc_reap). */
        s_close_fds(nd);
        return;
    }
    if (!eof)
        return;
    /* The pipe closed without a result: the process is exiting. */
    bool killed;
    int status = s_reap_closed(nd, &killed);
    char msg[1024];
    if (!nd->up) {
        /* Not the task's doing: the program never ran it. */
        char why[900];
        if (killed)
            snprintf(why, sizeof why, "it closed its pipe to the worker before it was ready");
        else
            pd_pipe_explain_start(nd->exe ? nd->exe : "the node program", status, why,
                                  sizeof why);
        snprintf(msg, sizeof msg, "the node process could not start: %s", why);
        pd_log_error("task %llu node %u: %s", (unsigned long long) nd->task, nd->node, msg);
        s_report_failure(nd, PD_ESYS, msg);
        return;
    }
    if (killed)
        snprintf(msg, sizeof msg, "the node process closed its pipe to the worker (did the "
                 "function close file descriptor %d?)", PD_PIPE_CHILD_OUT);
    else if (pd_plat_status_crashed(status)) {
        char how[128];
        snprintf(msg, sizeof msg, "node process crashed: %s",
                 pd_plat_status_str(status, how, sizeof how));
    } else
        snprintf(msg, sizeof msg, "node process exited with status %d before its result (did "
                 "the function call exit()?)", pd_plat_status_exit(status));
    pd_log_warn("task %llu node %u: %s", (unsigned long long) nd->task, nd->node, msg);
    s_report_failure(nd, PD_ECRASH, msg);
}

/* ---- child side --------------------------------------------------------- */

bool pd_nodeproc_is_child(int argc, char **argv)
{
    return argc > 1 && strcmp(argv[1], "--node") == 0;
}

/* The child's state for one run of pd_nodeproc_main(). */
typedef struct {
    pd_buf_t in;          /* the frame being read */
    pd_buf_t out;         /* the frame being written */
    uint32_t node;        /* this node's index */
    char **names;         /* tube names (owned) */
    uint32_t ntubes;      /* entries in names */
    pd_tubes_edge_t *out_edges; /* out-edges (owned) */
    uint32_t nout;
    pd_tubes_edge_t *in_edges;  /* in-edges (owned) */
    uint32_t nin;
    uint8_t *arg;         /* the node's argument (owned: frames reuse `in`) */
    size_t alen;          /* its bytes */
    const char *cache;    /* the module cache's directory (borrowed) */
    int gpu;              /* the worker's GPU this node runs on, or -1 */
    pd_gpurt_t *rt;       /* its runtime on a GPU node (owned), else NULL */
    char cu[65];          /* the task's CUDA module ("" when none) */
    char cu_name[128];    /* its name */
} s_child_t;

/* pd_node_stopping's probe: has the worker sent `stop`? Looks at the pipe
   without waiting; after `go` the worker sends nothing else (it ends the
   process with a signal), so any frame is a stop or a protocol error. */
static bool s_child_stop_probe(void *ctx)
{
    s_child_t *c = ctx;
    if (!pd_plat_readable(PD_PIPE_CHILD_IN))
        return false;
    const char *why = NULL;
    pd_msg_t m;
    int rc = pd_pipe_read_frame(PD_PIPE_CHILD_IN, &c->in, &why);
    if (rc > 0) {
        if (pd_msg_parse(&m, c->in.data, c->in.len) == 0 && pd_msg_is(&m, "stop"))
            return true;
        pd_log_warn("node %u: the worker sent something else than 'stop' while the node ran; "
                    "ignored", c->node);
    } else if (rc < 0) {
        pd_log_warn("node %u: unreadable message from the worker: %s", c->node, why);
    } /* 0: the worker is gone, and this process goes with it */
    return false;
}

/* Gives a task context this node's GPU and CUDA module, when it has them. */
static void s_child_gpu(const s_child_t *c, pd_task_t *t)
{
    if (!c->rt)
        return;
    pd_task_set_gpu(t, c->gpu, c->rt);
    if (c->cu[0])
        pd_task_set_cuda(t, c->cu, c->cu_name);
}

/* Writes message m (described by d) to the worker. */
static int s_child_send(s_child_t *c, const pd_proto_msg_t *d, const void *m)
{
    int rc = s_pipe_msg(&c->out, d, m);
    if (rc)
        return rc;
    return pd_plat_write_all(PD_PIPE_CHILD_OUT, c->out.data, c->out.len) ? PD_EIO : 0;
}

typedef struct {
    bool ok;
    const uint8_t *val;
    size_t len;
    int code;
    const char *msg;
    uint64_t us;
} s_result_t;

/* A failed result's val: {code, msg}. */
static int s_pack_failure(msgpack_packer *pk, const void *arg)
{
    const s_result_t *r = arg;
    return msgpack_pack_map(pk, 2) || pd_pack_kv_str(pk, "code", pd_err_name(r->code))
           || pd_pack_kv_str(pk, "msg", r->msg);
}

/* Writes `result`; returns 0, or 1 when writing failed. */
static int s_child_result(s_child_t *c, const s_result_t *r)
{
    pd_m_np_result_t m = {.ok = r->ok, .us = r->us};
    if (r->ok)
        m.val = (pd_raw_t){.p = r->val, .len = r->len};
    else
        m.val = (pd_raw_t){.pack = s_pack_failure, .ctx = r};
    return s_child_send(c, &pd_proto_np_result, &m) ? 1 : 0;
}

static int s_child_fail(s_child_t *c, int code, const char *msg)
{
    s_result_t r = {.ok = false, .code = code, .msg = msg};
    return s_child_result(c, &r);
}

/* What the pd_node_env_t of a module node function reaches. */
typedef struct {
    s_child_t *c;        /* the child */
    pd_modcache_t *mc;   /* its module cache */
    uint64_t task;       /* the task's id */
    const char *mod;     /* the task's module: hash, */
    const char *kind;    /*   kind */
    const char *name;    /*   and name for messages */
    int find_code;       /* the code of the last find that failed to load the
                            module or function (PD_ECOMPILE, PD_ENOFUNC), or 0 */
} s_env_t;

/* pd_node_env_t.find: the module's function fn, after its init. */
static void *s_env_find(void *ctx, const char *fn, const void *shared, size_t shared_len,
                        int *code, char *msg, size_t msglen)
{
    s_env_t *e = ctx;
    const char *why = NULL;
    void *sym = pd_modcache_load(e->mc, e->mod, e->kind, e->name, fn, code, &why);
    if (!sym) {
        snprintf(msg, msglen, "%s", why ? why : "the module did not load");
        if (*code == PD_ECOMPILE || *code == PD_ENOFUNC)
            e->find_code = *code;
        return NULL;
    }
    /* The module's pd_init runs once in this process, before the function,
       as in a slot process before a module's first job. */
    void *init = pd_modcache_take_init(e->mc, e->mod, e->kind);
    if (!init)
        return sym;
    pd_task_t *it = pd_task_new((int) e->c->node);
    if (!it) {
        *code = PD_ENOMEM;
        snprintf(msg, msglen, "out of memory for the module's init");
        return NULL;
    }
    int (*init_fn)(pd_task_t *);
    memcpy(&init_fn, &init, sizeof init_fn);
    pd_task_begin(it, e->task, e->c->arg, e->c->alen);
    pd_task_set_shared(it, shared, shared_len);
    s_child_gpu(e->c, it);
    int rc = init_fn(it);
    fflush(stdout);
    const uint8_t *val;
    size_t len;
    if (pd_task_finish(it, rc, &val, &len)) {
        snprintf(msg, msglen, "module %s: pd_init failed on node %u: %.*s", e->name, e->c->node,
                 (int) len, (const char *) val);
        pd_modcache_init_failed(e->mc, e->mod, e->kind, msg);
        *code = PD_ETASK;
        sym = NULL;
    }
    pd_task_destroy(&it);
    return sym;
}

/* pd_node_env_t.progress: a `progress` frame to the worker. */
static int s_env_progress(void *ctx, const void *data, size_t len)
{
    s_env_t *e = ctx;
    pd_m_np_progress_t m = {.val = {.p = data, .len = len}};
    return s_child_send(e->c, &pd_proto_np_progress, &m) ? -1 : 0;
}

/* Reads the next message, which must be of type want, into m (borrowing
   c->in). Returns 0, PD_EIO when the worker is gone, or PD_EPROTO when it
   sent something else. */
static int s_child_expect(s_child_t *c, pd_msg_t *m, const char *want)
{
    const char *why = NULL;
    int rc = pd_pipe_read_frame(PD_PIPE_CHILD_IN, &c->in, &why);
    if (rc <= 0) {
        if (rc < 0)
            pd_log_error("node %u: unreadable message from the worker: %s", c->node, why);
        return rc < 0 ? rc : PD_EIO;
    }
    if (pd_msg_parse(m, c->in.data, c->in.len) || !pd_msg_is(m, want)) {
        pd_log_error("node %u: the worker sent '%s' where '%s' was due", c->node, m->type, want);
        return PD_EPROTO;
    }
    return 0;
}

/* Reads an array of [a, b] pairs of uints into edges. Returns 0, PD_EPROTO
   or PD_ENOMEM. */
static int s_read_edges(const pd_raw_t *raw, pd_tubes_edge_t **edges, uint32_t *n)
{
    pd_rd_t r;
    uint32_t count;
    pd_rd_init(&r, raw->p, raw->len);
    if (pd_rd_array(&r, &count))
        return PD_EPROTO;
    *edges = malloc((count ? count : 1) * sizeof **edges);
    if (!*edges)
        return PD_ENOMEM;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t two;
        uint64_t a, b;
        if (pd_rd_array(&r, &two) || two != 2 || pd_rd_uint(&r, &a) || pd_rd_uint(&r, &b)
            || a > UINT32_MAX || b > UINT32_MAX)
            return PD_EPROTO;
        (*edges)[i] = (pd_tubes_edge_t){(uint32_t) a, (uint32_t) b};
    }
    *n = count;
    return 0;
}

/* Reads the array of tube names into c->names. Returns 0, PD_EPROTO or
   PD_ENOMEM. */
static int s_read_names(s_child_t *c, const pd_raw_t *raw)
{
    pd_rd_t r;
    uint32_t count;
    pd_rd_init(&r, raw->p, raw->len);
    if (pd_rd_array(&r, &count) || count > PD_TUBES_MAX_TUBES)
        return PD_EPROTO;
    c->names = calloc(count ? count : 1, sizeof *c->names);
    if (!c->names)
        return PD_ENOMEM;
    c->ntubes = count;
    for (uint32_t i = 0; i < count; i++) {
        char name[PD_TUBES_MAX_NAME + 1];
        if (pd_rd_strcpy(&r, name, sizeof name))
            return PD_EPROTO;
        if (!(c->names[i] = strdup(name)))
            return PD_ENOMEM;
    }
    return 0;
}

/* Runs one node from `start` to `result`. Returns 0 when a result was
   written, 1 when writing it failed, -1 when the worker went away. */
/* What s_child_run's steps share: the worker's `start` (its strings are copies; the argument
 * is copied to c->arg), and the node function, a module's (module_fn) or a symbol (sym). */
typedef struct {
    pd_m_np_start_t st;                 /* the decoded `start` */
    uint64_t start_ms;                  /* how long to wait for the subscriptions */
    const pd_builtin_node_t *module_fn; /* a built-in node running a module's function */
    void *sym;                          /* else the node function itself */
    s_env_t env_ctx;                    /* what module_fn's env reaches */
    pd_node_env_t env;                  /* module_fn's env */
} s_run_t;

/* Reads and checks the worker's `start`, copies the argument, opens the GPU runtime and finds
 * the node function. true when it did; else false with *rc from reporting why. */
static bool s_child_begin(s_child_t *c, pd_modcache_t *mc, s_run_t *r, int *rc)
{
    pd_msg_t m;
    *rc = -1;
    if (s_child_expect(c, &m, "start"))
        return false;
    pd_m_np_start_t *st = &r->st;
    int bad = pd_m_np_start_decode(&m, st);
    if (!bad && st->has_cu && !st->has_cu_name)
        bad = pd_msg_fail(&m, PD_ENOFIELD, "cu_name", "is missing (cu is given)");
    const char *mod = st->mod, *kind = st->kind, *name = st->name, *fn = st->fn;
    uint64_t task = st->task, node = st->node, n = st->n;
    r->start_ms = st->has_start_ms ? st->start_ms : 300000;
    uint64_t gpu = st->has_gpu ? st->gpu : UINT64_MAX;
    snprintf(c->cu, sizeof c->cu, "%.*s", (int) sizeof c->cu - 1, st->cu);
    snprintf(c->cu_name, sizeof c->cu_name, "%s", st->cu_name);
    if (bad || strlen(st->cu) >= sizeof c->cu
        || (gpu != UINT64_MAX && gpu >= PD_GPU_MAX) || s_read_names(c, &st->tubes)
        || s_read_edges(&st->out, &c->out_edges, &c->nout)
        || s_read_edges(&st->in, &c->in_edges, &c->nin) || node >= n
        || n > PD_TUBES_MAX_NODES || st->io_ms > INT32_MAX || r->start_ms > INT32_MAX
        || st->window > UINT32_MAX) {
        char msg[256];
        snprintf(msg, sizeof msg, "the worker sent a malformed start (%s)",
                 m.why[0] ? m.why : "a field is out of range");
        return *rc = s_child_fail(c, PD_EPROTO, msg), false;
    }
    c->node = (uint32_t) node;
    c->gpu = -1;
    if (gpu != UINT64_MAX) {
        /* A GPU node: its process sees only its GPU (CUDA_VISIBLE_DEVICES,
           set by the worker), opened on the first pd_cuda_* call. */
        c->gpu = (int) gpu;
        if (!(c->rt = pd_gpurt_new(c->cache, c->gpu)))
            return *rc = s_child_fail(c, PD_ENOMEM, "out of memory for the GPU runtime"), false;
    }
    /* The next frames are read into the same buffer: keep a copy. */
    size_t alen = st->arg.len;
    if (!(c->arg = malloc(alen ? alen : 1)))
        return *rc = s_child_fail(c, PD_ENOMEM, "out of memory for the node's argument"), false;
    memcpy(c->arg, st->arg.p, alen);
    c->alen = alen;
    static char tag[48];
    snprintf(tag, sizeof tag, "task %llu node %u", (unsigned long long) task, c->node);
    pd_log_set_tag(tag);
    int code = 0;
    const char *msg = NULL;
    r->sym = NULL;
    r->module_fn = strcmp(kind, "b") != 0 ? pd_builtins_module_node(fn) : NULL;
    r->env_ctx =
        (s_env_t){.c = c, .mc = mc, .task = task, .mod = mod, .kind = kind, .name = name};
    r->env = (pd_node_env_t){.find = s_env_find, .progress = s_env_progress, .ctx = &r->env_ctx};
    if (r->module_fn) {
        /* the module loads when the function asks it for a symbol */
    } else if (strcmp(kind, "b") == 0) {
        /* The reserved module "builtin": node functions compiled into the
           worker (pd_builtins.c). */
        int (*builtin_fn)(pd_task_t *) = pd_builtins_node(fn);
        if (!builtin_fn) {
            char text[300];
            snprintf(text, sizeof text, "the built-in module has no node function '%.200s'", fn);
            return *rc = s_child_fail(c, PD_ENOFUNC, text), false;
        }
        memcpy(&r->sym, &builtin_fn, sizeof r->sym);
    } else if (!(r->sym = pd_modcache_load(mc, mod, kind, name, fn, &code, &msg))) {
        return *rc = s_child_fail(c, code, msg), false;
    }
    return true;
}

/* Connects the tubes to the npeers peers listed in r ([peer, endpoint(, key)] each).
 * 0, or a code with *failure saying why. */
static int s_connect_peers(pd_tubes_t *tubes, pd_rd_t *r, uint32_t npeers, uint64_t n,
                           const char **failure)
{
    for (uint32_t i = 0; i < npeers; i++) {
        uint32_t two;
        uint64_t peer;
        char ep[320], key[41] = "";
        if (pd_rd_array(r, &two) || (two != 2 && two != 3) || pd_rd_uint(r, &peer)
            || pd_rd_strcpy(r, ep, sizeof ep) || (two == 3 && pd_rd_strcpy(r, key, sizeof key))
            || peer >= n) {
            *failure = "the worker sent a malformed peers list";
            return PD_EPROTO;
        }
        int code = pd_tubes_connect(tubes, (uint32_t) peer, ep, key[0] ? key : NULL);
        if (code != 0) {
            *failure = pd_tubes_error(tubes);
            return code;
        }
    }
    return 0;
}

/* Runs the node function on task_ctx and reports its result; on success it closes the tubes
 * and the context first (*tubes and *ctx then NULL). Returns s_child_result's code. */
static int s_child_task(s_child_t *c, s_run_t *r, pd_task_t *task_ctx, pd_tubes_t **tubes,
                        void **ctx)
{
    int rc;
    int (*task_fn)(pd_task_t *) = NULL;
    if (!r->module_fn)
        memcpy(&task_fn, &r->sym, sizeof task_fn);
    pd_task_begin(task_ctx, r->st.task, c->arg, c->alen);
    pd_task_set_node(task_ctx, (int) c->node, (int) r->st.n, *tubes);
    pd_task_set_stop_probe(task_ctx, s_child_stop_probe, c);
    s_child_gpu(c, task_ctx);
    uint64_t t0 = ((uint64_t) zclock_usecs());
    int frc = r->module_fn ? r->module_fn->run(task_ctx, &r->env) : task_fn(task_ctx);
    uint64_t us = ((uint64_t) zclock_usecs()) - t0;
    fflush(stdout);
    const uint8_t *val;
    size_t vlen;
    int tcode = pd_task_finish(task_ctx, frc, &val, &vlen);
    /* A built-in node (an optimiser's island) that failed because the
       module did not load says so with the module's own code, as a
       node of the module's function would. */
    if (tcode == PD_ETASK && r->env_ctx.find_code)
        tcode = r->env_ctx.find_code;
    s_result_t res = {.ok = tcode == 0, .val = val, .len = vlen, .code = tcode,
                      .msg = (const char *) val, .us = us};
    if (tcode == 0) {
        /* Close first: the XPUB lingers until what this node pushed
           has left, and BYE tells the neighbours nothing more comes. */
        pd_tubes_destroy(tubes);
        zmq_ctx_term(*ctx);
        *ctx = NULL;
        rc = s_child_result(c, &res);
    } else {
        /* Failed: report at once, and leave without BYE, so that the
           neighbours do not take the silence for a normal end and fail
           with a sentence of their own first; the broker stops them. */
        rc = s_child_result(c, &res);
        pd_tubes_abandon(*tubes);
    }
    return rc;
}

static int s_child_run(s_child_t *c, pd_modcache_t *mc)
{
    s_run_t run;
    int rc;
    if (!s_child_begin(c, mc, &run, &rc))
        return rc;
    const pd_m_np_start_t *st = &run.st;
    pd_msg_t m;
    void *ctx = zmq_ctx_new();
    if (!ctx)
        return s_child_fail(c, PD_ESYS, "cannot create a ZeroMQ context");
    pd_tubes_config_t cfg = {.node = c->node, .n = (uint32_t) st->n,
                             .names = (const char *const *) c->names, .ntubes = c->ntubes,
                             .out = c->out_edges, .nout = c->nout, .in = c->in_edges,
                             .nin = c->nin, .window = (uint32_t) st->window,
                             .window_bytes = st->window_bytes, .timeout_ms = (int) st->io_ms,
                             .curve = st->curve};
    int err;
    char why[512];
    pd_tubes_t *tubes = pd_tubes_new(ctx, &cfg, st->addr, &err, why, sizeof why);
    if (!tubes) {
        rc = s_child_fail(c, err, why);
        zmq_ctx_term(ctx);
        return rc;
    }
    const char *failure = NULL;
    int fail_code = 0;
    pd_rd_t r;
    uint32_t npeers;
    pd_log_debug("tubes bound on %s (%s)", pd_tubes_endpoint(tubes),
                 pd_tubes_key(tubes) ? "CurveZMQ" : "no security");
    pd_m_np_bound_t bound = {.has_key = pd_tubes_key(tubes) != NULL};
    snprintf(bound.ep, sizeof bound.ep, "%s", pd_tubes_endpoint(tubes));
    snprintf(bound.key, sizeof bound.key, "%s", bound.has_key ? pd_tubes_key(tubes) : "");
    pd_m_np_peers_t peers;
    if (s_child_send(c, &pd_proto_np_bound, &bound) || s_child_expect(c, &m, "peers")) {
        rc = -1;
        goto gone;
    }
    if (pd_m_np_peers_decode(&m, &peers)
        || (pd_rd_init(&r, peers.peers.p, peers.peers.len), pd_rd_array(&r, &npeers))) {
        failure = "the worker sent a malformed peers list";
        fail_code = PD_EPROTO;
        goto fail;
    }
    if ((fail_code = s_connect_peers(tubes, &r, npeers, st->n, &failure)) != 0)
        goto fail;
    if ((fail_code = pd_tubes_wait_subscribed(tubes, (int) run.start_ms)) != 0) {
        failure = pd_tubes_error(tubes);
        goto fail;
    }
    if (s_child_send(c, &pd_proto_np_ready, &(pd_m_np_ready_t){0})
        || s_child_expect(c, &m, "go")) {
        rc = -1;
        goto gone;
    }
    {
        pd_task_t *task_ctx = pd_task_new(c->node);
        if (!task_ctx) {
            failure = "out of memory";
            fail_code = PD_ENOMEM;
            goto fail;
        }
        rc = s_child_task(c, &run, task_ctx, &tubes, &ctx);
        pd_task_destroy(&task_ctx);
        goto out;
    }
fail:
    rc = s_child_fail(c, fail_code, failure);
gone:
    /* Failed, or the worker is gone (its end of the pipe closes before the
       kernel sends this process its death signal): leave without BYE, so
       that no neighbour takes this node for finished. */
    pd_tubes_abandon(tubes);
out:
    pd_tubes_destroy(&tubes);
    if (ctx)
        zmq_ctx_term(ctx);
    return rc;
}

static void s_usage_child(void)
{
    fprintf(stderr, "usage: playdoh-worker --node --cache DIR --host HOST --parent PID "
                    "[--log-level L]\n(internal: started by playdoh-worker for each node of a "
                    "synchronous task)\n");
}

int pd_nodeproc_main(int argc, char **argv)
{
    long parent = 0;
    const char *cache = NULL;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--cache") == 0)
            cache = argv[i + 1];
        else if (strcmp(argv[i], "--parent") == 0)
            parent = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--log-level") == 0) {
            pd_log_level_t lvl;
            if (pd_log_parse_level(argv[i + 1], &lvl) == 0)
                pd_log_set_level(lvl);
        }
    }
    if (!cache || pd_plat_child_init() != 0) {
        s_usage_child();
        return 2;
    }
    pd_log_set_tag("node");
    /* Die with the worker; let a crash die of its own cause (the worker
       reports it); a vanished worker shows up as a failed write. */
    if (!pd_plat_child_setup((int) parent, NULL, true))
        return 0;
    s_child_t c;
    memset(&c, 0, sizeof c);
    pd_buf_init(&c.in);
    pd_buf_init(&c.out);
    c.cache = cache;
    c.gpu = -1;
    int err = 0;
    pd_modcache_t *mc = pd_modcache_new(cache, &err); /* logs why it fails */
    /* `up` first: a process that dies before it did not start (the worker
       says so), one that dies after failed the node. */
    int rc = mc && s_child_send(&c, &pd_proto_np_up, &(pd_m_np_up_t){0}) == 0 ? s_child_run(&c, mc) : -1;
    for (uint32_t i = 0; c.names && i < c.ntubes; i++)
        free(c.names[i]);
    free(c.names);
    free(c.out_edges);
    free(c.in_edges);
    free(c.arg);
    pd_gpurt_destroy(&c.rt);
    pd_buf_free(&c.in);
    pd_buf_free(&c.out);
    pd_modcache_destroy(&mc);
    return rc == 0 ? 0 : 1;
}
