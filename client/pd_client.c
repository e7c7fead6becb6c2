/*  pd_client: the client side of the wire protocol (docs/protocol.md).

    One DEALER socket to the broker. Every request carries a fresh `req`
    number; replies with another number (left over from a request that timed
    out) are dropped. A map is sent as a window of pipelined `submit` chunks,
    and results are collected with long-polling `fetch` requests, so a large
    batch costs a few messages per thousand jobs and a small one no more than
    one round trip.

    Surviving a broker restart: ZeroMQ reconnects by itself, but requests in
    flight when the connection dropped are lost. A socket monitor reports
    the drop at once, and requests that can safely be sent twice (hello,
    mod_has, mod_put, shr_has, shr_put, status, fetch, cluster, gc) are sent
    again, with the same `req`, when the connection drops or no reply comes
    in time (after 2 s past the expected wait, then 4, 8, ...), until the
    broker has been silent for the client's time-out. Each submit chunk
    carries a token (16 random bytes of this client, then a chunk counter)
    so that a chunk sent again gets the same ids instead of being submitted
    twice.

    Towards a network broker the socket is a CurveZMQ client (pd_auth) that
    accepts only the broker key this account trusts. The same monitor
    watches the handshake, so that a refused key or a wrong broker key fails
    at once with a sentence saying which, instead of a time-out.

    Every message is a struct of the protocol codec (common/pd_proto.h):
    pd_client_encode stamps a request's req and owner token and encodes it,
    and a reply is decoded into the struct of the type the caller expects.
    This file is the connection alone; what travels over it lives beside it
    (pd_client_int.h lists the files).
*/
#include "playdoh.h"
#include "pd_plat.h"
#include "pd_client_int.h"

#include "pd_auth.h"
#include "pd_codec.h"
#include "pd_log.h"
#include "pd_msg.h"
#include "pd_proto.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_RETRY_MS 2000     /* first resend of a request with no reply, past its wait */
#define S_HANDSHAKE_FAILS 3 /* handshakes cut short in a row that make a refusal */

struct pd_client {
    void *ctx;             /* ZeroMQ context, owned */
    void *sock;            /* DEALER to the broker */
    void *mon;             /* PAIR receiving the DEALER's connection and handshake events */
    bool secure;           /* the connection runs CurveZMQ */
    pd_keypair_t key;      /* this client's key pair (secure only) */
    char broker_key[PD_KEY_TXT]; /* the broker key accepted (secure only) */
    char endpoint[256];    /* where the broker is */
    uint64_t next_req;     /* next request number */
    int timeout_ms;        /* how long a request waits for its reply */
    pd_buf_t out;          /* the request being built, reused */
    zmq_msg_t reply;       /* the last reply frame; pd_msg_t values point into it */
    uint64_t max_shared;   /* the broker's limit on shared data (0: not said) */
    uint64_t max_arg;      /* its limit on one job's argument (0: not said) */
    uint64_t max_batch;    /* its limit on one submit call's arguments (0: not said) */
    uint8_t token[PD_CLIENT_TOKEN_RANDOM]; /* this client's token prefix */
    uint8_t owner[PD_OWNER_TOKEN_LEN]; /* the owner token sent with every request (without
                                          CurveZMQ only: with it the key is the owner) */
    uint64_t next_chunk;   /* counter ending the next submit token */
    uint64_t resent;       /* requests sent again after a drop or a time-out */
    int hs_fails;          /* handshakes cut short since the last one that succeeded */
    bool connected;        /* a TCP (or IPC) connection to the endpoint was made once */
    bool refused;          /* a connection attempt failed and is being retried */
    uint64_t drops;        /* connections that dropped (or handshakes cut short) */
    char err[PD_CLIENT_ERR_MAX];        /* the last error, for pd_client_error */
};


int pd_client_fail(pd_client_t *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    pd_log_debug("client: %s", c->err);
    return code;
}

int64_t pd_client_now_ms(void) { return zclock_mono(); }

int64_t pd_client_deadline(int timeout_ms)
{
    return timeout_ms < 0 ? INT64_MAX : pd_client_now_ms() + timeout_ms;
}

int pd_client_poll_ms(int64_t deadline, int max_ms)
{
    int64_t left = deadline == INT64_MAX ? max_ms : deadline - pd_client_now_ms();
    return left < 0 ? 0 : left > max_ms ? max_ms : (int) left;
}

/* The PD_E* code named by a broker's error reply ("PD_EOVERLOAD"). */
int pd_client_code_from_name(const char *name)
{
    int code = pd_err_from_name(name);
    return code ? code : PD_EREFUSED;
}

uint64_t pd_client_new_req(pd_client_t *c) { return c->next_req++; }

/* The two fields every request carries are set here, through the message's
   descriptor, so that no request can forget them: req, and without
   CurveZMQ the owner token (with it the key is the owner). */
void pd_client_encode(pd_client_t *c, const pd_proto_msg_t *d, void *m, uint64_t req)
{
    bool has_req = false;
    for (uint32_t i = 0; i < d->nfields; i++) {
        const pd_proto_field_t *f = &d->fields[i];
        if (strcmp(f->key, "req") == 0) {
            *(uint64_t *) ((char *) m + f->off) = req;
            has_req = true;
        } else if (strcmp(f->key, "owner_token") == 0 && !c->secure) {
            *(pd_bin_t *) ((char *) m + f->off) = (pd_bin_t){c->owner, sizeof c->owner};
            *(bool *) ((char *) m + f->has_off) = true;
        }
    }
    assert(has_req && "a request carries req");
    pd_buf_reset(&c->out);
    msgpack_packer pk;
    pd_packer_init(&pk, &c->out);
    pd_proto_encode(&pk, d, m); /* a failure marks c->out failed: pd_client_send says so */
}

uint64_t pd_client_request(pd_client_t *c, const pd_proto_msg_t *d, void *m)
{
    uint64_t req = pd_client_new_req(c);
    pd_client_encode(c, d, m, req);
    return req;
}

void pd_client_encode_bin_last(pd_client_t *c, const pd_proto_msg_t *d, void *m, uint64_t req,
                               size_t len)
{
    assert(d->nfields > 0 && d->fields[d->nfields - 1].kind == PD_FK_BIN);
    pd_client_encode(c, d, m, req);
    /* The empty bin the codec wrote last (0xc4 0x00) gives way to the header
       of len bytes, which pd_client_send_data appends. */
    if (c->out.failed)
        return;
    assert(c->out.len >= 2 && c->out.data[c->out.len - 2] == 0xc4 &&
           c->out.data[c->out.len - 1] == 0);
    c->out.len -= 2;
    msgpack_packer pk;
    pd_packer_init(&pk, &c->out);
    msgpack_pack_bin(&pk, len);
}

int pd_client_send(pd_client_t *c)
{
    if (c->out.failed)
        return pd_client_fail(c, PD_ETOOBIG, "request too large (over %u bytes)", PD_MAX_FRAME);
    if (zmq_send(c->sock, c->out.data, c->out.len, 0) < 0)
        return pd_client_fail(c, PD_EUNREACH,
                      "could not send to the broker at %s (%s): is playdoh-broker running?",
                      c->endpoint, zmq_strerror(errno));
    return 0;
}

/* Reads the monitor's pending events: *lost becomes true when one says the
   connection to the broker dropped (requests in flight are then lost); on a
   failed handshake sets c->err to what went wrong and what to do, and
   returns true. */
static bool s_monitor(pd_client_t *c, bool *lost)
{
    for (;;) {
        uint16_t event;
        uint32_t value;
        if (!pd_auth_monitor_next(c->mon, &event, &value))
            return false;
        if (event == ZMQ_EVENT_CONNECTED)
            c->connected = true;
        if (event == ZMQ_EVENT_CONNECT_RETRIED)
            c->refused = true;
        if (event == ZMQ_EVENT_DISCONNECTED) {
            c->drops++;
            *lost = true;
        }
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            c->hs_fails = 0;
            continue;
        }
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            pd_client_fail(c, PD_EAUTH, "the broker at %s refused this client's key %s: ask its "
                   "administrator to run `playdoh-keygen allow '%s' --role client`", c->endpoint,
                   c->key.pub, c->key.pub);
            return true;
        }
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
            value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
            if (c->secure)
                pd_client_fail(
                    c, PD_EAUTH,
                    "the broker at %s runs without CurveZMQ while this client "
                    "uses it: connect with --insecure if you trust the network, or ask for "
                    "a secure broker",
                    c->endpoint);
            else
                pd_client_fail(c, PD_EAUTH,
                               "the broker at %s requires CurveZMQ: connect with --secure "
                               "(this account needs a key pair, `playdoh-keygen`, and the broker's "
                               "key, `playdoh-keygen trust`)",
                               c->endpoint);
            return true;
        }
        if (event != ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL &&
            event != ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
            continue;
        /* A handshake cut short says nothing by itself: a broker killed or
           restarted in the middle of it looks the same as one that hangs up
           on a client it will not talk to. Only the same failure again and
           again, with no handshake succeeding between, is the broker's
           answer; until then it is a dropped connection, retried. */
        *lost = true;
        c->drops++;
        if (++c->hs_fails < S_HANDSHAKE_FAILS)
            continue;
        if (!c->secure)
            pd_client_fail(c, PD_EAUTH, "the broker at %s refused a connection without security %d "
                   "times in a row: it requires CurveZMQ; connect with --secure (%s)",
                   c->endpoint, c->hs_fails, pd_auth_handshake_why(event, value, false));
        else
            pd_client_fail(
                c, PD_EAUTH,
                "the secure handshake with %s failed %d times in a row: the "
                "broker there does not hold the key this client trusts for it (%s), so it "
                "may not be your broker; check the key with `playdoh-keygen show` on the "
                "broker's machine and `playdoh-keygen trust %s KEY` here (%s)",
                c->endpoint, c->hs_fails, c->broker_key, c->endpoint,
                pd_auth_handshake_why(event, value, false));
        return true;
    }
}

int pd_client_send_data(pd_client_t *c, const void *data, size_t len)
{
    if (c->out.failed || c->out.len + len > PD_MAX_FRAME)
        return pd_client_fail(c, PD_ETOOBIG, "request too large (over %u bytes)", PD_MAX_FRAME);
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, c->out.len + len))
        return pd_client_fail(c, PD_ENOMEM, "out of memory for a request of %zu bytes",
                              c->out.len + len);
    memcpy(zmq_msg_data(&msg), c->out.data, c->out.len);
    memcpy((uint8_t *) zmq_msg_data(&msg) + c->out.len, data, len);
    if (zmq_msg_send(&msg, c->sock, 0) < 0) {
        zmq_msg_close(&msg);
        return pd_client_fail(c, PD_EUNREACH,
                      "could not send to the broker at %s (%s): is playdoh-broker running?",
                      c->endpoint, zmq_strerror(errno));
    }
    return 0;
}

/* A failed handshake found here is found again at the next attempt (ZeroMQ
   retries the connection), by pd_client_recv. */
bool pd_client_drain(pd_client_t *c)
{
    bool lost = false;
    s_monitor(c, &lost);
    return lost;
}

/* m points into c->reply. */
int pd_client_recv(pd_client_t *c, uint64_t req, pd_msg_t *m, int timeout_ms, uint64_t *got)
{
    int64_t deadline = pd_client_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - pd_client_now_ms();
        if (left < 0)
            left = 0;
        zmq_pollitem_t it[2] = {{.socket = c->sock, .events = ZMQ_POLLIN},
                                {.socket = c->mon, .events = ZMQ_POLLIN}};
        int rc = zmq_poll(it, 2, (long) left);
        if (rc < 0 && errno == EINTR)
            return pd_client_fail(c, PD_ETIMEDOUT, "interrupted while waiting for the broker");
        if (rc <= 0)
            return pd_client_fail(c, PD_ETIMEDOUT,
                          "no reply from the broker at %s within %d ms: is it running and "
                          "reachable?", c->endpoint, timeout_ms);
        if (!(it[0].revents & ZMQ_POLLIN)) {
            bool lost = false;
            if (s_monitor(c, &lost))
                return PD_EAUTH;
            if (lost)
                return PD_CLIENT_LOST;
            continue;
        }
        zmq_msg_close(&c->reply);
        zmq_msg_init(&c->reply);
        if (zmq_msg_recv(&c->reply, c->sock, 0) < 0)
            continue;
        if (pd_msg_parse(m, zmq_msg_data(&c->reply), zmq_msg_size(&c->reply))) {
            pd_log_warn("client: malformed reply from the broker dropped: %s", m->why);
            continue;
        }
        /* The envelope's req, read before the type is known: every reply
           carries it. */
        uint64_t r = 0;
        if (pd_msg_uint(m, "req", &r) || (req && r != req))
            continue; /* a late reply to a request that timed out */
        if (got)
            *got = r;
        if (pd_msg_is(m, pd_proto_error.type)) {
            pd_m_error_t e;
            char msg[1024] = "";
            if (pd_m_error_decode(m, &e))
                return pd_client_fail(c, PD_EPROTO, "broker sent a malformed 'error' reply: %s",
                                      m->why);
            pd_str_copy(e.msg, msg, sizeof msg);
            return pd_client_fail(c, pd_client_code_from_name(e.code), "%s",
                                  msg[0] ? msg : e.code);
        }
        return 0;
    }
}

/* Checks that the reply m is of the type want and decodes it into out. */
static int s_expect(pd_client_t *c, pd_msg_t *m, const pd_proto_msg_t *want, void *out)
{
    if (!pd_msg_is(m, want->type))
        return pd_client_fail(c, PD_EPROTO, "broker answered '%s' where '%s' was expected",
                              m->type, want->type);
    if (pd_proto_decode(m, want, out))
        return pd_client_fail(c, PD_EPROTO, "broker sent a malformed '%s' reply: %s",
                              want->type, m->why);
    return 0;
}

/* For requests that must not be done twice (cancel, release). */
int pd_client_call(pd_client_t *c, uint64_t req, const pd_proto_msg_t *want, void *out,
                   int timeout_ms)
{
    pd_msg_t msg, *m = &msg;
    pd_client_drain(c); /* drops before this request do not concern it */
    int rc = pd_client_send(c);
    if (rc)
        return rc;
    rc = pd_client_recv(c, req, m, timeout_ms, NULL);
    if (rc == PD_CLIENT_LOST)
        rc = pd_client_fail(c, PD_EUNREACH,
                            "the connection to the broker at %s dropped while waiting "
                            "for the reply (the request may or may not have been done)",
                            c->endpoint);
    return rc ? rc : s_expect(c, m, want, out);
}

int pd_client_count_call(pd_client_t *c, const pd_proto_msg_t *d, const pd_proto_msg_t *want,
                         pd_proto_pack_fn pack, const void *ctx, uint64_t *n)
{
    /* Every request over ids is one layout (PD_F_IDS), every count reply
       another (PD_F_COUNT): the descriptors say which type travels. */
    _Static_assert(sizeof(pd_m_cancel_t) == sizeof(pd_m_release_t), "one layout");
    _Static_assert(sizeof(pd_m_cancel_t) == sizeof(pd_m_task_stop_t), "one layout");
    _Static_assert(sizeof(pd_m_cancelled_t) == sizeof(pd_m_released_t), "one layout");
    _Static_assert(sizeof(pd_m_cancelled_t) == sizeof(pd_m_task_stopping_t), "one layout");
    pd_m_cancel_t q = {.ids = {.pack = pack, .ctx = ctx}};
    pd_m_cancelled_t a;
    uint64_t req = pd_client_request(c, d, &q);
    int rc = pd_client_call(c, req, want, &a, pd_client_timeout(c));
    if (rc)
        return rc;
    *n = a.n;
    return 0;
}

/* The same req goes out each time, so that the broker's reply to any copy
   answers it. */
int pd_client_call_idem_data(pd_client_t *c, uint64_t req, const pd_proto_msg_t *want,
                             void *out, int wait_ms, int budget_ms, const void *data, size_t len)
{
    pd_msg_t msg, *m = &msg;
    int64_t start = pd_client_now_ms();
    int64_t give_up = start + wait_ms + budget_ms;
    int64_t attempt = wait_ms + S_RETRY_MS;
    pd_client_drain(c); /* drops before this request do not concern it */
    int rc = data ? pd_client_send_data(c, data, len) : pd_client_send(c);
    for (;;) {
        if (rc)
            return rc;
        int64_t left = give_up - pd_client_now_ms();
        if (left <= 0)
            break;
        int64_t wait = attempt < left ? attempt : left;
        int64_t sent = pd_client_now_ms();
        rc = pd_client_recv(c, req, m, (int) wait, NULL);
        if (rc == 0)
            return s_expect(c, m, want, out);
        if (rc != PD_CLIENT_LOST && rc != PD_ETIMEDOUT)
            return rc; /* the broker answered: an error is an answer */
        if (pd_client_now_ms() >= give_up)
            break;
        if (rc == PD_CLIENT_LOST) {
            pd_log_info("client: connection to %s dropped; sending '%s' again", c->endpoint,
                        want->type);
            /* A drop moments after sending: give the reconnect a moment. */
            if (pd_client_now_ms() - sent < 50)
                usleep(50000);
        } else {
            pd_log_info("client: no reply from %s within %lld ms; sending '%s' again",
                        c->endpoint, (long long) wait, want->type);
            attempt *= 2;
        }
        c->resent++;
        rc = data ? pd_client_send_data(c, data, len) : pd_client_send(c);
    }
    return pd_client_fail(c, PD_ETIMEDOUT,
                  "no reply from the broker at %s within %d ms (the request was sent again "
                  "after each drop and time-out): is it running and reachable?", c->endpoint,
                  wait_ms + budget_ms);
}

int pd_client_call_idem(pd_client_t *c, uint64_t req, const pd_proto_msg_t *want, void *out,
                        int wait_ms, int budget_ms)
{
    return pd_client_call_idem_data(c, req, want, out, wait_ms, budget_ms, NULL, 0);
}

/* Sets *err and opts->why; returns NULL for the caller. */
static pd_client_t *s_open_fail(pd_client_t **c, const pd_client_opts_t *opts, int *err,
                                int code, const char *why)
{
    *err = code;
    if (opts && opts->why && opts->whycap)
        snprintf(opts->why, opts->whycap, "%s", why);
    /* A caller that gets the sentence prints it; others see it in the log. */
    if (opts && opts->why && opts->whycap)
        pd_log_debug("client: %s", why);
    else
        pd_log_warn("client: %s", why);
    pd_client_destroy(c);
    return NULL;
}

/* Loads the key pair and the trusted broker key for a CurveZMQ
   connection; returns 0 or a PD_E* code with the sentence in why. */
static int s_open_keys(pd_client_t *c, const pd_client_opts_t *opts, char *why, size_t cap)
{
    char *dir = opts && opts->config_dir ? strdup(opts->config_dir) : pd_auth_config_dir();
    char path[4096];
    if (opts && opts->key_file)
        snprintf(path, sizeof path, "%s", opts->key_file);
    else if (dir)
        snprintf(path, sizeof path, "%s/id.key", dir);
    else {
        snprintf(why, cap, "cannot find the configuration directory (HOME is not set)");
        return PD_ENOKEY;
    }
    char kwhy[1024];
    int rc = pd_auth_key_load(path, true, &c->key, kwhy, sizeof kwhy);
    if (rc) {
        snprintf(why, cap, "a secure connection to %s needs a key pair for this account: %s; "
                 "then ask the broker's administrator to run `playdoh-keygen allow KEY --role "
                 "client` with the key `playdoh-keygen show` prints", c->endpoint, kwhy);
        free(dir);
        return rc;
    }
    const char *given = opts && opts->broker_key ? opts->broker_key : getenv("PLAYDOH_BROKER_KEY");
    if (given && *given) {
        char kwhy2[512];
        rc = pd_auth_key_from_arg(given, c->broker_key, NULL, 0, kwhy2, sizeof kwhy2);
        if (rc)
            snprintf(why, cap, "the broker key: %s", kwhy2);
        free(dir);
        return rc;
    }
    rc = pd_auth_trust_find(dir, c->endpoint, c->broker_key, why, cap);
    free(dir);
    return rc;
}

/* Checks the endpoint's form and that its host resolves (libzmq would
   retry an unknown host in silence); returns 0, or
   PD_EINVAL with a sentence in why that says what to write instead. */
static int s_check_endpoint(pd_client_t *c, char *why, size_t cap)
{
    const char *ep = c->endpoint, *sep = strstr(ep, "://");
    if (!sep) {
        snprintf(why, cap, "the broker address '%s' has no transport: write tcp://%s (a "
                 "broker's address is tcp://HOST:PORT, by default port 5555)", ep, ep);
        return PD_EINVAL;
    }
    size_t n = (size_t) (sep - ep);
    if (!(n == 3 && strncmp(ep, "tcp", 3) == 0) && !(n == 3 && strncmp(ep, "ipc", 3) == 0) &&
        !(n == 6 && strncmp(ep, "inproc", 6) == 0)) {
        snprintf(why, cap, "the broker address '%s' has the transport '%.*s', which Playdoh "
                 "does not speak: write tcp://HOST:PORT", ep, (int) n, ep);
        return PD_EINVAL;
    }
    if (n != 3 || ep[0] != 't')
        return 0;
    const char *host = sep + 3, *colon = strrchr(host, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == host || (host[0] == '[' && colon[-1] != ']') || !end || *end ||
        port < 1 || port > 65535) {
        snprintf(why, cap, "the broker address '%s' has no port: write tcp://HOST:PORT (the "
                 "broker's --bind port, 5555 by default)", ep);
        return PD_EINVAL;
    }
    char name[256], gai[256];
    snprintf(name, sizeof name, "%.*s", (int) (colon - host), host);
    if (strchr(name, ';') || pd_plat_resolve(name, gai, sizeof gai) == 0)
        return 0; /* a source address (SRC;HOST) is left to libzmq */
    snprintf(why, cap, "cannot find the broker's host '%s' (%s): check its name, or give its "
             "IP address (tcp://ADDRESS:%ld)", name, gai, port);
    return PD_EINVAL;
}

/* Why no `welcome` came in waited_ms, from what the monitor saw. */
static void s_unreach_why(pd_client_t *c, int waited_ms, char *why, size_t cap)
{
    if (c->connected)
        snprintf(why, cap, "no broker answered at %s within %d ms: something accepted the "
                 "connection but did not answer as a Playdoh broker (another program on that "
                 "port?%s)", c->endpoint, waited_ms,
                 c->secure ? " with CurveZMQ, a broker that holds another key than the one "
                             "trusted stays silent too" : "");
    else if (c->refused)
        snprintf(why, cap, "no broker answered at %s: the connection was refused for %d ms "
                 "(nothing listens on that port): start playdoh-broker there, point to yours "
                 "with --broker / PLAYDOH_BROKER, or run a cluster on this machine alone with "
                 "--local N", c->endpoint, waited_ms);
    else
        snprintf(why, cap, "no broker answered at %s within %d ms: the host did not answer "
                 "the connection at all (down, or a firewall drops it)", c->endpoint,
                 waited_ms);
}

/* Without CurveZMQ the jobs belong to this account's owner token
   (pd_auth_owner_token in the configuration directory), so that another
   program of the same account can fetch them and other accounts cannot.
   Without a configuration directory (or one it cannot write), a token of
   this client alone. Returns 0, or PD_EAUTH (a token file others can read,
   or a malformed one) with the sentence in why. */
static int s_open_owner(pd_client_t *c, const pd_client_opts_t *opts, char *why, size_t cap)
{
    char *dir = opts && opts->config_dir ? strdup(opts->config_dir) : pd_auth_config_dir();
    if (!dir) {
        randombytes_buf(c->owner, sizeof c->owner);
        pd_log_warn("client: no configuration directory (HOME is not set): the jobs of this "
                    "client belong to it alone; set PLAYDOH_CONFIG_DIR to share them with the "
                    "account's other programs");
        return 0;
    }
    char twhy[1024];
    int rc = pd_auth_owner_token(dir, c->owner, twhy, sizeof twhy);
    free(dir);
    if (rc == PD_ESYS) {
        randombytes_buf(c->owner, sizeof c->owner);
        pd_log_warn("client: %s: the jobs of this client belong to it alone", twhy);
        return 0;
    }
    if (rc)
        snprintf(why, cap, "the owner token of this account, which names its jobs at the broker "
                 "(docs/security.md): %s", twhy);
    return rc;
}

/* How long a `hello` may wait: PLAYDOH_CONNECT_TIMEOUT_MS, else 5 s. */
static int s_connect_ms(void)
{
    const char *env = getenv("PLAYDOH_CONNECT_TIMEOUT_MS");
    return env && atoi(env) > 0 ? atoi(env) : 5000;
}

/* A client with its context and sockets, not connected; NULL with *err set. */
static pd_client_t *s_alloc(const char *endpoint, int *err)
{
    if (sodium_init() < 0) {
        *err = PD_ESYS;
        return NULL;
    }
    pd_client_t *c = calloc(1, sizeof *c);
    if (!c) {
        *err = PD_ENOMEM;
        return NULL;
    }
    snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    c->next_req = 1;
    c->timeout_ms = 30000;
    pd_buf_init(&c->out);
    zmq_msg_init(&c->reply);
    c->ctx = zmq_ctx_new();
    c->sock = c->ctx ? zmq_socket(c->ctx, ZMQ_DEALER) : NULL;
    c->mon = c->ctx ? zmq_socket(c->ctx, ZMQ_PAIR) : NULL;
    if (!c->sock || !c->mon) {
        *err = PD_ESYS;
        pd_client_destroy(&c);
    }
    return c;
}

/* Checks the address, then settles the security: CurveZMQ keys, or the
   owner token without it. Returns 0 or a PD_E* code with the sentence in
   why. */
static int s_open_security(pd_client_t *c, const pd_client_opts_t *opts, char *why, size_t cap)
{
    /* What is wrong with the address comes before any question of keys. */
    if (s_check_endpoint(c, why, cap))
        return PD_EINVAL;
    pd_sec_mode_t mode = (pd_sec_mode_t) (opts ? opts->security : PD_SECURITY_AUTO);
    const char *env = getenv("PLAYDOH_SECURITY");
    if (mode == PD_SEC_AUTO && env && *env && pd_auth_mode_parse(env, &mode)) {
        snprintf(why, cap, "PLAYDOH_SECURITY is '%s': use auto, secure or insecure", env);
        return PD_EINVAL;
    }
    c->secure = pd_auth_resolve(mode, c->endpoint) == PD_SEC_CURVE;
    if (c->secure)
        return s_open_keys(c, opts, why, cap);
    if (!pd_auth_endpoint_is_loopback(c->endpoint))
        pd_log_warn("client: SECURITY WARNING: talking to %s without authentication or "
                    "encryption (insecure): jobs, code and results cross the network in "
                    "clear", c->endpoint);
    return s_open_owner(c, opts, why, cap);
}

/* Sets the socket's options, its CurveZMQ keys and its monitor, and
   connects. Returns 0, PD_ESYS, or PD_EINVAL with the sentence in why. */
static int s_open_socket(pd_client_t *c, char *why, size_t cap)
{
    int linger = 0, hwm = 0;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(c->mon, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(c->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(c->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    int sndtimeo = c->timeout_ms;
    zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo);
    randombytes_buf(c->token, sizeof c->token);
    if (c->secure && pd_auth_apply_client(c->sock, &c->key, c->broker_key))
        return PD_ESYS;
    char mon[64];
    snprintf(mon, sizeof mon, "inproc://pd-client-monitor-%p", (void *) c);
    if (zmq_socket_monitor(c->sock, mon, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED |
                                             ZMQ_EVENT_DISCONNECTED |
                                             ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                             ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                             ZMQ_EVENT_HANDSHAKE_SUCCEEDED) ||
        zmq_connect(c->mon, mon))
        return PD_ESYS;
    if (zmq_connect(c->sock, c->endpoint) < 0) {
        snprintf(why, cap, "bad broker endpoint '%s': %s (expected tcp://HOST:PORT)",
                 c->endpoint, zmq_strerror(errno));
        return PD_EINVAL;
    }
    return 0;
}

/* The first `hello`, waiting connect_ms. Returns 0, or a PD_E* code
   (PD_EUNREACH for no answer) with the sentence in why. */
static int s_open_hello(pd_client_t *c, int connect_ms, char *why, size_t cap)
{
    pd_m_welcome_t welcome;
    int64_t start = pd_client_now_ms();
    int rc = pd_client_hello(c, connect_ms, &welcome);
    /* A broker that was there and went away in the middle (killed,
       restarting) is waited for like any later request: up to the time-out. */
    while (rc == PD_ETIMEDOUT && c->drops > 0 && pd_client_now_ms() - start < c->timeout_ms)
        rc = pd_client_hello(c, (int) (c->timeout_ms - (pd_client_now_ms() - start)), &welcome);
    if (rc == PD_ETIMEDOUT) {
        s_unreach_why(c, (int) (pd_client_now_ms() - start), why, cap);
        rc = PD_EUNREACH;
    } else if (rc) {
        snprintf(why, cap, "%s", c->err);
    }
    return rc;
}

pd_client_t *pd_client_open(const char *endpoint, const pd_client_opts_t *opts, int *err)
{
    int dummy;
    if (!err)
        err = &dummy;
    *err = 0;
    if (!endpoint)
        endpoint = getenv("PLAYDOH_BROKER");
    if (!endpoint || !*endpoint)
        endpoint = "tcp://127.0.0.1:5555";
    pd_client_t *c = s_alloc(endpoint, err);
    if (!c)
        return NULL;
    char why[2048] = "";
    int rc = s_open_security(c, opts, why, sizeof why);
    if (rc)
        return s_open_fail(&c, opts, err, rc, why);
    rc = s_open_socket(c, why, sizeof why);
    if (rc == PD_ESYS) {
        *err = PD_ESYS;
        pd_client_destroy(&c);
        return NULL;
    }
    if (rc)
        return s_open_fail(&c, opts, err, rc, why);
    int connect_ms = opts && opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms
                                                          : s_connect_ms();
    rc = s_open_hello(c, connect_ms, why, sizeof why);
    if (rc)
        return s_open_fail(&c, opts, err, rc, why);
    return c;
}

pd_client_t *pd_client_new(const char *endpoint, int *err)
{
    return pd_client_open(endpoint, NULL, err);
}

void pd_client_destroy(pd_client_t **cp)
{
    if (!cp || !*cp)
        return;
    pd_client_t *c = *cp;
    if (c->sock && c->mon)
        zmq_socket_monitor(c->sock, NULL, 0);
    if (c->mon)
        zmq_close(c->mon);
    if (c->sock)
        zmq_close(c->sock);
    sodium_memzero(c->key.sec, sizeof c->key.sec);
    sodium_memzero(c->owner, sizeof c->owner);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    zmq_msg_close(&c->reply);
    pd_buf_free(&c->out);
    free(c);
    *cp = NULL;
}

void pd_client_set_timeout(pd_client_t *c, int timeout_ms)
{
    assert(timeout_ms > 0);
    c->timeout_ms = timeout_ms;
    zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &timeout_ms, sizeof timeout_ms);
}

const char *pd_client_error(const pd_client_t *c) { return c->err; }
const char *pd_client_endpoint(const pd_client_t *c) { return c->endpoint; }

int pd_client_hello(pd_client_t *c, int wait_ms, pd_m_welcome_t *w)
{
    if (wait_ms <= 0)
        wait_ms = s_connect_ms();
    pd_m_hello_t q = {0};
    uint64_t req = pd_client_request(c, &pd_proto_hello, &q);
    int rc = pd_client_call_idem(c, req, &pd_proto_welcome, w, 0,
                                 wait_ms < c->timeout_ms ? wait_ms : c->timeout_ms);
    if (rc == 0) {
        c->max_shared = w->max_shared;
        c->max_arg = w->max_arg;
        c->max_batch = w->max_batch;
    }
    return rc;
}

uint64_t pd_client_resent(const pd_client_t *c) { return c->resent; }

/* ---- for the library's other files (pd_client_int.h) --------------------- */

int pd_client_timeout(const pd_client_t *c) { return c->timeout_ms; }

pd_client_limits_t pd_client_limits(const pd_client_t *c)
{
    return (pd_client_limits_t){c->max_shared, c->max_arg, c->max_batch};
}

uint64_t pd_client_new_chunk(pd_client_t *c) { return c->next_chunk++; }

void pd_client_token(const pd_client_t *c, uint64_t n, uint8_t token[PD_CLIENT_TOKEN])
{
    memcpy(token, c->token, PD_CLIENT_TOKEN_RANDOM);
    for (int i = 0; i < 8; i++)
        token[PD_CLIENT_TOKEN_RANDOM + i] = (uint8_t) (n >> (56 - 8 * i));
}

void pd_client_count_resend(pd_client_t *c) { c->resent++; }
