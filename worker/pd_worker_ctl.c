/*  pd_worker_ctl: the control socket, through which the machine's owner
    changes the slots (`playdoh-worker ctl`).

    A REP socket bound for a path only the owner may use
    (pd_plat_control_bind); binding refuses a path where another worker
    answers. Each request is one `ctl {cpus?, gpus?, now?}`, applied with
    pd_worker_set_slots; the reply is `ctl_ok` with the worker's state
    (pd_worker_stats) or `error {code, msg}`.
*/
#include "pd_worker_int.h"
#include "pd_error.h"

#include "pd_plat.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

void pd_worker_stats(pd_worker_t *w, pd_worker_stats_t *out)
{
    *out = (pd_worker_stats_t){.cpus = w->cpus, .gpus = w->gpus, .offered = pd_worker_offered(w),
                               .down = (w->cpus - pd_worker_cpus_up(w)) +
                                       (w->gpus - pd_worker_gpus_up(w)),
                               .slots = w->nslots, .busy = pd_worker_busy(w),
                               .queued = (int) pd_worker_queued(w),
                               .registered = w->registered, .owner_active = w->owner_active,
                               .load = w->owner_load, .done = w->ndone,
                               .requeued = w->requeued, .broker = w->broker};
}

static void s_ctl_reply(pd_worker_t *w, int code, const char *why)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    if (code) {
        pd_m_error_t e = {.msg = pd_str_of(why)};
        snprintf(e.code, sizeof e.code, "%s", pd_err_name(code));
        pd_m_error_encode(&pk, &e);
    } else {
        pd_worker_stats_t st;
        pd_worker_stats(w, &st);
        pd_m_ctl_ok_t ok = {
            .broker = pd_str_of(st.broker), .registered = st.registered,
            .cpus = (uint64_t) st.cpus, .gpus = (uint64_t) st.gpus,
            .offered = (uint64_t) st.offered, .slots = (uint64_t) st.slots,
            .down = (uint64_t) st.down, .busy = (uint64_t) st.busy,
            .queued = (uint64_t) st.queued, .done = st.done, .requeued = st.requeued,
            .owner = st.owner_active, .load = st.load};
        snprintf(ok.id, sizeof ok.id, "%s", w->id);
        snprintf(ok.host, sizeof ok.host, "%s", w->host);
        pd_m_ctl_ok_encode(&pk, &ok);
    }
    if (!b.failed)
        zmq_send(w->ctl, b.data, b.len, ZMQ_DONTWAIT);
    pd_buf_free(&b);
}

/* True when the request's token is the one in the control file (compared
   in constant time). */
static bool s_token_ok(const pd_worker_t *w, const pd_m_ctl_t *c)
{
    if (!c->has_token || strlen(c->token) != strlen(w->ctl_token))
        return false;
    return sodium_memcmp(c->token, w->ctl_token, strlen(c->token)) == 0;
}

void pd_worker_on_ctl(pd_worker_t *w)
{
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, w->ctl, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return;
    }
    pd_msg_t m;
    pd_m_ctl_t c;
    char why[256];
    int code = pd_msg_parse(&m, zmq_msg_data(&msg), zmq_msg_size(&msg));
    int fields = code || !pd_msg_is(&m, "ctl") ? 0 : pd_m_ctl_decode(&m, &c);
    if (code) {
        snprintf(why, sizeof why, "%s", m.why);
    } else if (!pd_msg_is(&m, "ctl")) {
        code = PD_ETYPE;
        snprintf(why, sizeof why, "the control socket takes 'ctl' requests, not '%s'", m.type);
    } else if (w->ctl_token[0] && !s_token_ok(w, &c)) {
        code = PD_EAUTH;
        snprintf(why, sizeof why, "the request carries no valid token: only the machine's owner "
                 "(who can read the control file %s) may change the slots", w->control);
    } else {
        uint64_t cpus = c.has_cpus ? c.cpus : (uint64_t) w->cpus;
        uint64_t gpus = c.has_gpus ? c.gpus : (uint64_t) w->gpus;
        bool now = c.now;
        if ((code = fields)) {
            snprintf(why, sizeof why, "%s", m.why);
        } else if (cpus > PD_WORKER_MAX_CPUS || gpus > PD_WORKER_MAX_GPUS) {
            code = PD_EINVAL;
            snprintf(why, sizeof why, "cpus must be from 0 to %d and gpus from 0 to %d (got %llu "
                     "and %llu)", PD_WORKER_MAX_CPUS, PD_WORKER_MAX_GPUS,
                     (unsigned long long) cpus, (unsigned long long) gpus);
        } else if (c.has_cpus || c.has_gpus || now) {
            code = pd_worker_set_slots(w, (int) cpus, (int) gpus, now, why, sizeof why);
        }
    }
    zmq_msg_close(&msg);
    if (code)
        pd_log_warn("control request refused: %s", why);
    s_ctl_reply(w, code, why);
}

int pd_worker_bind_control(pd_worker_t *w, const char *path, int mode)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        if (pd_plat_mkdir(dir, 0755) != 0 && errno != EEXIST) {
            pd_log_error("cannot create the directory of the control socket %s: %s", dir,
                         strerror(errno));
            return PD_EIO;
        }
    }
    char ep[4200], token[PD_PLAT_TOKEN_LEN + 1];
    struct stat st;
    if (stat(path, &st) == 0 && pd_plat_control_endpoint(path, ep, sizeof ep, token) == 0) {
        /* A socket file is there: is a worker alive behind it? */
        void *probe = zmq_socket(w->ctx, ZMQ_REQ);
        int zero = 0, wait = 300;
        zmq_setsockopt(probe, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(probe, ZMQ_RCVTIMEO, &wait, sizeof wait);
        zmq_setsockopt(probe, ZMQ_SNDTIMEO, &wait, sizeof wait);
        bool alive = false;
        if (zmq_connect(probe, ep) == 0) {
            pd_buf_t b;
            pd_buf_init(&b);
            msgpack_packer pk;
            pd_packer_init(&pk, &b);
            pd_m_ctl_encode(&pk, &(pd_m_ctl_t){0});
            char reply[16];
            alive = zmq_send(probe, b.data, b.len, 0) >= 0 &&
                    zmq_recv(probe, reply, sizeof reply, 0) >= 0;
            pd_buf_free(&b);
        }
        zmq_close(probe);
        if (alive) {
            pd_log_error("another playdoh-worker answers on the control socket %s: stop it, or "
                         "give this one another [worker] control path", path);
            return PD_EIO;
        }
        unlink(path);
    }
    w->ctl = zmq_socket(w->ctx, ZMQ_REP);
    int zero = 0;
    zmq_setsockopt(w->ctl, ZMQ_LINGER, &zero, sizeof zero);
    char why[512];
    if (pd_plat_control_bind(w->ctl, path, mode, w->ctl_token, why, sizeof why)) {
        pd_log_error("cannot open the control socket %s: %s", path, why);
        return PD_EIO;
    }
    if (!(w->control = strdup(path)))
        return PD_EIO;
    pd_log_info("control socket %s (mode %04o): `playdoh-worker ctl --cpus N` changes the "
                "slots", path, mode);
    return 0;
}
