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
*/
#include "playdoh.h"
#include "pd_plat.h"
#include "pd_client_int.h"

#include "pd_auth.h"
#include "pd_beacon.h"
#include "pd_bundle.h"
#include "pd_codec.h"
#include "pd_file.h"
#include "pd_limits.h"
#include "pd_log.h"
#include "pd_msg.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_CHUNK_JOBS 4096
#define S_CHUNK_BYTES (1u << 20)
#define S_WINDOW 16           /* submit chunks in flight (16 MiB at most): with a journal, what is in
                                 flight is acknowledged by one commit */
#define S_RETRY_MS 2000       /* first resend of a request with no reply, past its wait */
#define S_HANDSHAKE_FAILS 3   /* handshakes cut short in a row that make a refusal */
#define S_LOST 1              /* s_recv: the connection dropped (internal, positive) */
#define S_TOKEN_RANDOM 16     /* random bytes that start every submit token */
#define S_MAX_RANGES 4096     /* ranges per fetch request */
#define S_MAX_MODULE (64u << 20)

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
    uint8_t token[S_TOKEN_RANDOM]; /* this client's token prefix */
    uint8_t owner[PD_OWNER_TOKEN_LEN]; /* the owner token sent with every request (without
                                          CurveZMQ only: with it the key is the owner) */
    uint64_t next_chunk;   /* counter ending the next submit token */
    uint64_t resent;       /* requests sent again after a drop or a time-out */
    int hs_fails;          /* handshakes cut short since the last one that succeeded */
    bool connected;        /* a TCP (or IPC) connection to the endpoint was made once */
    bool refused;          /* a connection attempt failed and is being retried */
    uint64_t drops;        /* connections that dropped (or handshakes cut short) */
    char err[2048];        /* the last error, for pd_client_error */
};

const char *pd_job_state_name(pd_job_state_t s)
{
    static const char *names[] = {"unknown", "queued", "running", "done", "failed", "cancelled"};
    return (unsigned) s < 6 ? names[s] : "invalid";
}

bool pd_job_state_final(pd_job_state_t s) { return s != PD_JOB_QUEUED && s != PD_JOB_RUNNING; }

static int s_fail(pd_client_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_fail(pd_client_t *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    pd_log_debug("client: %s", c->err);
    return code;
}

/* The PD_E* code named by a broker's error reply ("PD_EOVERLOAD"). */
static int s_code_from_name(const char *name)
{
    int code = pd_err_from_name(name);
    return code ? code : PD_EREFUSED;
}

/* Starts request number req of type t with nfields fields besides req (and
   the owner token every request carries without CurveZMQ). */
static void s_begin_req(pd_client_t *c, msgpack_packer *pk, const char *t, uint32_t nfields,
                        uint64_t req)
{
    pd_buf_reset(&c->out);
    pd_packer_init(pk, &c->out);
    pd_msg_begin(pk, t, nfields + 1 + !c->secure);
    pd_pack_kv_uint(pk, "req", req);
    if (!c->secure)
        pd_pack_kv_bin(pk, "owner_token", c->owner, sizeof c->owner);
}

/* Starts a request of type t with nfields fields besides req; returns its
   new number. */
static uint64_t s_begin(pd_client_t *c, msgpack_packer *pk, const char *t, uint32_t nfields)
{
    uint64_t req = c->next_req++;
    s_begin_req(c, pk, t, nfields, req);
    return req;
}

static int s_send(pd_client_t *c)
{
    if (c->out.failed)
        return s_fail(c, PD_ETOOBIG, "request too large (over %u bytes)", PD_MAX_FRAME);
    if (zmq_send(c->sock, c->out.data, c->out.len, 0) < 0)
        return s_fail(c, PD_EUNREACH,
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
            s_fail(c, PD_EAUTH, "the broker at %s refused this client's key %s: ask its "
                   "administrator to run `playdoh-keygen allow '%s' --role client`", c->endpoint,
                   c->key.pub, c->key.pub);
            return true;
        }
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
            value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
            if (c->secure)
                s_fail(c, PD_EAUTH, "the broker at %s runs without CurveZMQ while this client "
                       "uses it: connect with --insecure if you trust the network, or ask for "
                       "a secure broker", c->endpoint);
            else
                s_fail(c, PD_EAUTH, "the broker at %s requires CurveZMQ: connect with --secure "
                       "(this account needs a key pair, `playdoh-keygen`, and the broker's "
                       "key, `playdoh-keygen trust`)", c->endpoint);
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
            s_fail(c, PD_EAUTH, "the broker at %s refused a connection without security %d "
                   "times in a row: it requires CurveZMQ; connect with --secure (%s)",
                   c->endpoint, c->hs_fails, pd_auth_handshake_why(event, value, false));
        else
            s_fail(c, PD_EAUTH, "the secure handshake with %s failed %d times in a row: the "
                   "broker there does not hold the key this client trusts for it (%s), so it "
                   "may not be your broker; check the key with `playdoh-keygen show` on the "
                   "broker's machine and `playdoh-keygen trust %s KEY` here (%s)", c->endpoint,
                   c->hs_fails, c->broker_key, c->endpoint,
                   pd_auth_handshake_why(event, value, false));
        return true;
    }
}

/* Sends the built request followed by data[0..len) (the bytes of a bin
   field whose header ends the request) as one frame, copying data once. */
static int s_send2(pd_client_t *c, const void *data, size_t len)
{
    if (c->out.failed || c->out.len + len > PD_MAX_FRAME)
        return s_fail(c, PD_ETOOBIG, "request too large (over %u bytes)", PD_MAX_FRAME);
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, c->out.len + len))
        return s_fail(c, PD_ENOMEM, "out of memory for a request of %zu bytes", c->out.len + len);
    memcpy(zmq_msg_data(&msg), c->out.data, c->out.len);
    memcpy((uint8_t *) zmq_msg_data(&msg) + c->out.len, data, len);
    if (zmq_msg_send(&msg, c->sock, 0) < 0) {
        zmq_msg_close(&msg);
        return s_fail(c, PD_EUNREACH,
                      "could not send to the broker at %s (%s): is playdoh-broker running?",
                      c->endpoint, zmq_strerror(errno));
    }
    return 0;
}

/* Reads the monitor's pending events; true when one says the connection to
   the broker dropped. A failed handshake found here is found again at the
   next attempt (ZeroMQ retries the connection), by s_recv. */
static bool s_drained_lost(pd_client_t *c)
{
    bool lost = false;
    s_monitor(c, &lost);
    return lost;
}

/* Waits for the reply to request req (or, when req is 0, to any request:
   *got says which). On success m describes c->reply, valid until the next
   receive. A broker `error` reply becomes its code with c->err set.
   Returns S_LOST when the connection drops while waiting. */
static int s_recv(pd_client_t *c, uint64_t req, pd_msg_t *m, int timeout_ms, uint64_t *got)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    for (;;) {
        int64_t left = deadline - zclock_mono();
        if (left < 0)
            left = 0;
        zmq_pollitem_t it[2] = {{.socket = c->sock, .events = ZMQ_POLLIN},
                                {.socket = c->mon, .events = ZMQ_POLLIN}};
        int rc = zmq_poll(it, 2, (long) left);
        if (rc < 0 && errno == EINTR)
            return s_fail(c, PD_ETIMEDOUT, "interrupted while waiting for the broker");
        if (rc <= 0)
            return s_fail(c, PD_ETIMEDOUT,
                          "no reply from the broker at %s within %d ms: is it running and "
                          "reachable?", c->endpoint, timeout_ms);
        if (!(it[0].revents & ZMQ_POLLIN)) {
            bool lost = false;
            if (s_monitor(c, &lost))
                return PD_EAUTH;
            if (lost)
                return S_LOST;
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
        uint64_t r = 0;
        if (pd_msg_uint(m, "req", &r) || (req && r != req))
            continue; /* a late reply to a request that timed out */
        if (got)
            *got = r;
        if (pd_msg_is(m, "error")) {
            char code[32] = "", msg[1024] = "";
            pd_msg_str(m, "code", code, sizeof code);
            pd_msg_str(m, "msg", msg, sizeof msg);
            return s_fail(c, s_code_from_name(code), "%s", msg[0] ? msg : code);
        }
        return 0;
    }
}

static int s_expect(pd_client_t *c, const pd_msg_t *m, const char *want)
{
    if (!pd_msg_is(m, want))
        return s_fail(c, PD_EPROTO, "broker answered '%s' where '%s' was expected", m->type, want);
    return 0;
}

/* Sends the built request and waits for its reply of type want, once: for
   requests that must not be done twice (cancel, release). */
static int s_call(pd_client_t *c, uint64_t req, const char *want, pd_msg_t *m, int timeout_ms)
{
    s_drained_lost(c); /* drops before this request do not concern it */
    int rc = s_send(c);
    if (rc)
        return rc;
    rc = s_recv(c, req, m, timeout_ms, NULL);
    if (rc == S_LOST)
        rc = s_fail(c, PD_EUNREACH, "the connection to the broker at %s dropped while waiting "
                    "for the reply (the request may or may not have been done)", c->endpoint);
    return rc ? rc : s_expect(c, m, want);
}

/* Sends the built request (which may safely be done twice) and waits for
   its reply of type want. The broker answers after at most wait_ms (a
   long-polling fetch) plus its work. When the connection drops, or no reply
   comes in time, the same request (same req) is sent again: after 2 s past
   wait_ms, then 4, 8, ... until the broker has been silent for wait_ms plus
   budget_ms. */
static int s_call_idem2(pd_client_t *c, uint64_t req, const char *want, pd_msg_t *m,
                        int wait_ms, int budget_ms, const void *data, size_t len)
{
    int64_t start = zclock_mono();
    int64_t give_up = start + wait_ms + budget_ms;
    int64_t attempt = wait_ms + S_RETRY_MS;
    s_drained_lost(c); /* drops before this request do not concern it */
    int rc = data ? s_send2(c, data, len) : s_send(c);
    for (;;) {
        if (rc)
            return rc;
        int64_t left = give_up - zclock_mono();
        if (left <= 0)
            break;
        int64_t wait = attempt < left ? attempt : left;
        int64_t sent = zclock_mono();
        rc = s_recv(c, req, m, (int) wait, NULL);
        if (rc == 0)
            return s_expect(c, m, want);
        if (rc != S_LOST && rc != PD_ETIMEDOUT)
            return rc; /* the broker answered: an error is an answer */
        if (zclock_mono() >= give_up)
            break;
        if (rc == S_LOST) {
            pd_log_info("client: connection to %s dropped; sending '%s' again", c->endpoint,
                        want);
            /* A drop moments after sending: give the reconnect a moment. */
            if (zclock_mono() - sent < 50)
                usleep(50000);
        } else {
            pd_log_info("client: no reply from %s within %lld ms; sending '%s' again",
                        c->endpoint, (long long) wait, want);
            attempt *= 2;
        }
        c->resent++;
        rc = data ? s_send2(c, data, len) : s_send(c);
    }
    return s_fail(c, PD_ETIMEDOUT,
                  "no reply from the broker at %s within %d ms (the request was sent again "
                  "after each drop and time-out): is it running and reachable?", c->endpoint,
                  wait_ms + budget_ms);
}

static int s_call_idem(pd_client_t *c, uint64_t req, const char *want, pd_msg_t *m,
                       int wait_ms, int budget_ms)
{
    return s_call_idem2(c, req, want, m, wait_ms, budget_ms, NULL, 0);
}

static int s_hello(pd_client_t *c, int wait_ms, pd_msg_t *m);

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
    char why[2048];
    c->ctx = zmq_ctx_new();
    c->sock = c->ctx ? zmq_socket(c->ctx, ZMQ_DEALER) : NULL;
    c->mon = c->ctx ? zmq_socket(c->ctx, ZMQ_PAIR) : NULL;
    if (!c->sock || !c->mon) {
        *err = PD_ESYS;
        pd_client_destroy(&c);
        return NULL;
    }
    /* What is wrong with the address comes before any question of keys. */
    if (s_check_endpoint(c, why, sizeof why))
        return s_open_fail(&c, opts, err, PD_EINVAL, why);
    pd_sec_mode_t mode = (pd_sec_mode_t) (opts ? opts->security : PD_SECURITY_AUTO);
    const char *env = getenv("PLAYDOH_SECURITY");
    if (mode == PD_SEC_AUTO && env && *env && pd_auth_mode_parse(env, &mode)) {
        snprintf(why, sizeof why, "PLAYDOH_SECURITY is '%s': use auto, secure or insecure", env);
        return s_open_fail(&c, opts, err, PD_EINVAL, why);
    }
    c->secure = pd_auth_resolve(mode, c->endpoint) == PD_SEC_CURVE;
    if (c->secure) {
        int rc = s_open_keys(c, opts, why, sizeof why);
        if (rc)
            return s_open_fail(&c, opts, err, rc, why);
    } else {
        if (!pd_auth_endpoint_is_loopback(c->endpoint))
            pd_log_warn("client: SECURITY WARNING: talking to %s without authentication or "
                        "encryption (insecure): jobs, code and results cross the network in "
                        "clear", c->endpoint);
        int rc = s_open_owner(c, opts, why, sizeof why);
        if (rc)
            return s_open_fail(&c, opts, err, rc, why);
    }
    int linger = 0, hwm = 0;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(c->mon, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(c->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(c->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    int sndtimeo = c->timeout_ms;
    zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo);
    randombytes_buf(c->token, sizeof c->token);
    if (c->secure && pd_auth_apply_client(c->sock, &c->key, c->broker_key)) {
        *err = PD_ESYS;
        pd_client_destroy(&c);
        return NULL;
    }
    char mon[64];
    snprintf(mon, sizeof mon, "inproc://pd-client-monitor-%p", (void *) c);
    if (zmq_socket_monitor(c->sock, mon, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED |
                                             ZMQ_EVENT_DISCONNECTED |
                                             ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                             ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                             ZMQ_EVENT_HANDSHAKE_SUCCEEDED) ||
        zmq_connect(c->mon, mon)) {
        *err = PD_ESYS;
        pd_client_destroy(&c);
        return NULL;
    }
    if (zmq_connect(c->sock, c->endpoint) < 0) {
        snprintf(why, sizeof why, "bad broker endpoint '%s': %s (expected tcp://HOST:PORT)",
                 endpoint, zmq_strerror(errno));
        return s_open_fail(&c, opts, err, PD_EINVAL, why);
    }
    int connect_ms = opts && opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 5000;
    env = getenv("PLAYDOH_CONNECT_TIMEOUT_MS");
    if ((!opts || opts->connect_timeout_ms <= 0) && env && atoi(env) > 0)
        connect_ms = atoi(env);
    pd_msg_t welcome;
    int64_t start = zclock_mono();
    int rc = s_hello(c, connect_ms, &welcome);
    /* A broker that was there and went away in the middle (killed,
       restarting) is waited for like any later request: up to the time-out. */
    while (rc == PD_ETIMEDOUT && c->drops > 0 && zclock_mono() - start < c->timeout_ms)
        rc = s_hello(c, (int) (c->timeout_ms - (zclock_mono() - start)), &welcome);
    if (rc) {
        if (rc == PD_ETIMEDOUT) {
            s_unreach_why(c, (int) (zclock_mono() - start), why, sizeof why);
            rc = PD_EUNREACH;
        } else {
            snprintf(why, sizeof why, "%s", c->err);
        }
        return s_open_fail(&c, opts, err, rc, why);
    }
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

/* Sends `hello` and waits up to wait_ms for `welcome`; on success m holds
   it (valid until the next receive) and the client knows max_shared. */
static int s_hello(pd_client_t *c, int wait_ms, pd_msg_t *m)
{
    msgpack_packer pk;
    uint64_t req = s_begin(c, &pk, "hello", 0);
    int rc = s_call_idem(c, req, "welcome", m, 0, wait_ms < c->timeout_ms ? wait_ms : c->timeout_ms);
    if (rc == 0) {
        pd_msg_uint_opt(m, "max_shared", &c->max_shared);
        pd_msg_uint_opt(m, "max_arg", &c->max_arg);
        pd_msg_uint_opt(m, "max_batch", &c->max_batch);
    }
    return rc;
}

/* How long a `hello` may wait: PLAYDOH_CONNECT_TIMEOUT_MS, else 5 s. */
static int s_connect_ms(void)
{
    const char *env = getenv("PLAYDOH_CONNECT_TIMEOUT_MS");
    return env && atoi(env) > 0 ? atoi(env) : 5000;
}

/* Reads the journal fields of welcome and gc_done into info. */
static void s_read_journal(const pd_msg_t *m, pd_broker_info_t *info)
{
    uint64_t v;
    bool ok = true;
    pd_msg_str(m, "journal", info->journal, sizeof info->journal);
    if (pd_msg_uint_opt(m, "journal_bytes", &v) == 0)
        info->journal_bytes = v;
    if (pd_msg_uint_opt(m, "journal_max_bytes", &v) == 0)
        info->journal_max_bytes = v;
    if (pd_msg_has(m, "journal_ok") && pd_msg_bool(m, "journal_ok", &ok) == 0)
        info->journal_ok = ok;
}

int pd_client_broker_info(pd_client_t *c, pd_broker_info_t *info)
{
    memset(info, 0, sizeof *info);
    info->journal_ok = true;
    msgpack_packer pk;
    uint64_t req = s_begin(c, &pk, "hello", 0);
    pd_msg_t m;
    int rc = s_call_idem(c, req, "welcome", &m, 0, c->timeout_ms);
    if (rc)
        return rc;
    uint64_t w = 0, sl = 0;
    pd_msg_uint_opt(&m, "workers", &w);
    pd_msg_uint_opt(&m, "slots", &sl);
    info->workers = (int) w;
    info->slots = (int) sl;
    pd_msg_str(&m, "name", info->name, sizeof info->name);
    s_read_journal(&m, info);
    return 0;
}

long pd_gc(pd_client_t *c, int64_t ttl_s, pd_broker_info_t *info)
{
    msgpack_packer pk;
    uint64_t req = s_begin(c, &pk, "gc", ttl_s >= 0 ? 1 : 0);
    if (ttl_s >= 0)
        pd_pack_kv_uint(&pk, "ttl_s", (uint64_t) ttl_s);
    pd_msg_t m;
    int rc = s_call_idem(c, req, "gc_done", &m, 0, c->timeout_ms);
    if (rc)
        return rc;
    uint64_t forgot = 0;
    pd_msg_uint_opt(&m, "forgot", &forgot);
    if (info) {
        memset(info, 0, sizeof *info);
        info->journal_ok = true;
        s_read_journal(&m, info);
    }
    return (long) forgot;
}

uint64_t pd_client_resent(const pd_client_t *c) { return c->resent; }

int pd_client_cluster_gpus(pd_client_t *c, int *gpus)
{
    pd_msg_t m;
    uint64_t g = 0;
    int rc = s_hello(c, s_connect_ms(), &m);
    if (rc == 0)
        pd_msg_uint_opt(&m, "gpus", &g);
    *gpus = (int) g;
    return rc;
}

int pd_client_cluster_size(pd_client_t *c, int *workers, int *slots)
{
    pd_msg_t m;
    int rc = s_hello(c, s_connect_ms(), &m);
    if (rc)
        return rc;
    uint64_t w = 0, s = 0;
    pd_msg_uint_opt(&m, "workers", &w);
    pd_msg_uint_opt(&m, "slots", &s);
    *workers = (int) w;
    *slots = (int) s;
    return 0;
}

/* ---- discovery and cluster state ---------------------------------------- */

int pd_discover(const char *cluster, int udp_port, const char *iface, int timeout_ms,
                char *endpoint, size_t cap)
{
    return pd_discover_broker(cluster, udp_port, iface, timeout_ms, NULL, endpoint, cap, NULL);
}

/* True when this account trusts the broker a beacon announces at ep; key
   gets the key to use (the beacon's, or known_brokers' for ep). */
static bool s_beacon_trusted(const char *dir, const pd_beacon_t *b, const char *ep,
                             char key[PD_KEY_TXT])
{
    if (b->has_key) {
        zmq_z85_encode(key, b->key, PD_BEACON_KEY_BYTES);
        return pd_auth_trust_has(dir, ep, key);
    }
    key[0] = 0;
    return dir && pd_auth_trust_find(dir, ep, key, NULL, 0) == 0;
}

int pd_discover_broker(const char *cluster, int udp_port, const char *iface, int timeout_ms,
                       const char *config_dir, char *endpoint, size_t cap, char key[41])
{
    if (key)
        key[0] = 0;
    char *dir = NULL;
    if (config_dir)
        dir = config_dir[0] ? strdup(config_dir) : pd_auth_config_dir();
    int err = 0;
    pd_beacon_listener_t *l = pd_beacon_listener_new(cluster ? cluster : PD_BEACON_DEFAULT_CLUSTER,
                                                     udp_port > 0 ? udp_port
                                                                  : PD_BEACON_DEFAULT_PORT,
                                                     iface, &err);
    if (!l) {
        free(dir);
        return err;
    }
    int64_t deadline = zclock_mono() + timeout_ms;
    char first_ep[300] = "", first_key[PD_KEY_TXT] = "", ep[300], k[PD_KEY_TXT];
    int rc = 0;
    for (;;) {
        int64_t left = deadline - zclock_mono();
        pd_beacon_t b;
        int got = left > 0 ? pd_beacon_listener_wait(l, (int) left, &b, ep, sizeof ep) : 0;
        if (got < 0) {
            rc = got;
            break;
        }
        if (got == 0) {
            rc = first_ep[0] ? PD_ENOTRUSTED : PD_ETIMEDOUT;
            if (first_ep[0]) {
                snprintf(endpoint, cap, "%s", first_ep);
                if (key)
                    memcpy(key, first_key, PD_KEY_TXT);
            }
            break;
        }
        if (!config_dir || s_beacon_trusted(dir, &b, ep, k)) {
            snprintf(endpoint, cap, "%s", ep);
            if (key && b.has_key)
                zmq_z85_encode(key, b.key, PD_BEACON_KEY_BYTES);
            rc = 0;
            break;
        }
        if (!first_ep[0]) {
            snprintf(first_ep, sizeof first_ep, "%s", ep);
            memcpy(first_key, b.has_key ? k : "", b.has_key ? PD_KEY_TXT : 1);
        }
        pd_log_debug("client: skipped the beacon of an untrusted broker at %s", ep);
    }
    pd_beacon_listener_destroy(&l);
    free(dir);
    return rc;
}

/* Reads one worker map of a `cluster` reply. */
static int s_read_worker(pd_rd_t *r, pd_worker_info_t *wi)
{
    uint32_t n;
    memset(wi, 0, sizeof *wi);
    wi->load = -1;
    if (pd_rd_map(r, &n))
        return PD_EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        const char *k;
        uint32_t klen;
        if (pd_rd_str(r, &k, &klen))
            return PD_EPROTO;
        char key[32];
        snprintf(key, sizeof key, "%.*s", (int) (klen < 31 ? klen : 31), k);
        uint64_t u;
        int rc = 0;
        if (!strcmp(key, "id"))
            rc = pd_rd_strcpy(r, wi->id, sizeof wi->id);
        else if (!strcmp(key, "host"))
            rc = pd_rd_strcpy(r, wi->host, sizeof wi->host);
        else if (!strcmp(key, "platform"))
            rc = pd_rd_strcpy(r, wi->platform, sizeof wi->platform);
        else if (!strcmp(key, "version"))
            rc = pd_rd_strcpy(r, wi->version, sizeof wi->version);
        else if (!strcmp(key, "owner"))
            rc = pd_rd_strcpy(r, wi->owner, sizeof wi->owner);
        else if (!strcmp(key, "slurm_job"))
            rc = pd_rd_strcpy(r, wi->slurm_job, sizeof wi->slurm_job);
        else if (!strcmp(key, "slurm_step"))
            rc = pd_rd_strcpy(r, wi->slurm_step, sizeof wi->slurm_step);
        else if (!strcmp(key, "slurm_array"))
            rc = pd_rd_strcpy(r, wi->slurm_array, sizeof wi->slurm_array);
        else if (!strcmp(key, "pid"))
            rc = pd_rd_int(r, &wi->pid);
        else if (!strcmp(key, "load")) {
            if (pd_rd_nil(r) != 0)
                rc = pd_rd_double(r, &wi->load);
        } else if (!strcmp(key, "gpu_names")) {
            uint32_t g;
            rc = pd_rd_array(r, &g);
            size_t at = 0;
            for (uint32_t j = 0; !rc && j < g; j++) {
                const char *sv;
                uint32_t sl;
                rc = pd_rd_str(r, &sv, &sl);
                if (!rc && at + sl + 3 < sizeof wi->gpu_names)
                    at += (size_t) snprintf(wi->gpu_names + at, sizeof wi->gpu_names - at,
                                            "%s%.*s", at ? ", " : "", (int) sl, sv);
            }
        } else if (!strcmp(key, "gpu_info")) {
            /* [{name, mem, cc_major, cc_minor}, ...]: the memory is added up */
            uint32_t g;
            rc = pd_rd_array(r, &g);
            for (uint32_t j = 0; !rc && j < g; j++) {
                uint32_t nf;
                rc = pd_rd_map(r, &nf);
                for (uint32_t f = 0; !rc && f < nf; f++) {
                    if (!pd_rd_key_is(r, "mem"))
                        rc = pd_rd_skip(r, NULL, NULL) ? PD_EPROTO
                                                       : pd_rd_skip(r, NULL, NULL);
                    else if (pd_rd_peek(r) != PD_MP_UINT)
                        rc = pd_rd_skip(r, NULL, NULL);
                    else if ((rc = pd_rd_uint(r, &u)) == 0)
                        wi->gpu_mem += u;
                }
            }
        } else if (pd_rd_peek(r) == PD_MP_UINT) {
            rc = pd_rd_uint(r, &u);
            if (!strcmp(key, "cpus"))
                wi->cpus = (uint32_t) u;
            else if (!strcmp(key, "gpus"))
                wi->gpus = (uint32_t) u;
            else if (!strcmp(key, "busy"))
                wi->busy = (uint32_t) u;
            else if (!strcmp(key, "nodes"))
                wi->nodes = (uint32_t) u;
            else if (!strcmp(key, "gpu_nodes"))
                wi->gpu_nodes = (uint32_t) u;
            else if (!strcmp(key, "inflight"))
                wi->inflight = u;
            else if (!strcmp(key, "queued"))
                wi->queued = u;
            else if (!strcmp(key, "done"))
                wi->done = u;
            else if (!strcmp(key, "requeued"))
                wi->requeued = u;
            else if (!strcmp(key, "hb_ms"))
                wi->hb_ms = u;
            else if (!strcmp(key, "up_s"))
                wi->up_s = u;
        } else {
            rc = pd_rd_skip(r, NULL, NULL); /* a field of a later version */
        }
        if (rc)
            return PD_EPROTO;
    }
    return 0;
}

/* Reads `owners` of a cluster reply into info; 0, PD_EPROTO or PD_ENOMEM. */
static int s_read_owners(const pd_msg_t *m, pd_cluster_info_t *info)
{
    pd_rd_t r;
    uint32_t n;
    if (pd_msg_rd(m, "owners", &r) || pd_rd_array(&r, &n))
        return PD_EPROTO;
    info->owners = calloc(n ? n : 1, sizeof *info->owners);
    if (!info->owners)
        return PD_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        pd_owner_info_t *ow = &info->owners[i];
        uint32_t nf;
        if (pd_rd_map(&r, &nf))
            return PD_EPROTO;
        for (uint32_t f = 0; f < nf; f++) {
            const char *k;
            uint32_t klen;
            if (pd_rd_str(&r, &k, &klen))
                return PD_EPROTO;
            char key[16];
            snprintf(key, sizeof key, "%.*s", (int) (klen < 15 ? klen : 15), k);
            uint64_t u;
            int rc = 0;
            if (!strcmp(key, "owner"))
                rc = pd_rd_strcpy(&r, ow->owner, sizeof ow->owner);
            else if (!strcmp(key, "mine"))
                rc = pd_rd_bool(&r, &ow->mine);
            else if (!strcmp(key, "batches") || !strcmp(key, "queued") ||
                     !strcmp(key, "running") || !strcmp(key, "final")) {
                rc = pd_rd_uint(&r, &u);
                *(key[0] == 'b' ? &ow->batches : key[0] == 'q' ? &ow->queued
                                               : key[0] == 'r' ? &ow->running
                                                               : &ow->final) = u;
            } else
                rc = pd_rd_skip(&r, NULL, NULL); /* a field of a later version */
            if (rc)
                return PD_EPROTO;
        }
        info->nowners++;
    }
    return 0;
}

int pd_cluster_info(pd_client_t *c, pd_cluster_info_t *info)
{
    memset(info, 0, sizeof *info);
    msgpack_packer pk;
    uint64_t req = s_begin(c, &pk, "cluster", 0);
    pd_msg_t m;
    int rc = s_call_idem(c, req, "cluster", &m, 0, c->timeout_ms);
    if (rc)
        return rc;
    pd_msg_str(&m, "name", info->name, sizeof info->name);
    pd_msg_str(&m, "cluster", info->cluster, sizeof info->cluster);
    if (pd_msg_has(&m, "version"))
        pd_msg_str(&m, "version", info->version, sizeof info->version);
    pd_msg_uint_opt(&m, "queued", &info->queued);
    pd_msg_uint_opt(&m, "unfinished", &info->unfinished);
    pd_rd_t r;
    uint32_t n;
    if (pd_msg_rd(&m, "workers", &r) || pd_rd_array(&r, &n))
        return s_fail(c, PD_EPROTO, "the broker's 'cluster' reply has no list of workers");
    info->workers = calloc(n ? n : 1, sizeof *info->workers);
    if (!info->workers)
        return s_fail(c, PD_ENOMEM, "out of memory for %u workers", n);
    for (uint32_t i = 0; i < n; i++) {
        if (s_read_worker(&r, &info->workers[i])) {
            pd_cluster_info_clear(info);
            return s_fail(c, PD_EPROTO, "the broker's 'cluster' reply has a malformed worker");
        }
        info->nworkers++;
    }
    if (pd_msg_has(&m, "owners") && s_read_owners(&m, info)) {
        pd_cluster_info_clear(info);
        return s_fail(c, PD_EPROTO, "the broker's 'cluster' reply has a malformed 'owners'");
    }
    return 0;
}

void pd_cluster_info_clear(pd_cluster_info_t *info)
{
    free(info->owners);
    free(info->workers);
    memset(info, 0, sizeof *info);
}

/* ---- modules ------------------------------------------------------------- */

/* Asks the broker whether it holds the blob `hash` (`ask`, a mod_has or
   shr_has, answered by `want`); sets *has. Safe to repeat. */
static int s_broker_has(pd_client_t *c, const char *ask, const char *want, const char *hash,
                        bool *has)
{
    msgpack_packer pk;
    uint64_t req = s_begin(c, &pk, ask, 1);
    pd_pack_kv_str(&pk, "hash", hash);
    pd_msg_t m;
    int rc = s_call_idem(c, req, want, &m, 0, c->timeout_ms);
    if (rc == 0)
        pd_msg_bool(&m, "has", has);
    return rc;
}

static void s_hash_hex(const void *data, size_t len, char hex[PD_HASH_HEX])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, data, len);
    sodium_bin2hex(hex, PD_HASH_HEX, h, sizeof h);
}

int pd_module_upload(pd_client_t *c, const char *name, pd_module_kind_t kind, const void *data,
                     size_t len, char hash[PD_HASH_HEX])
{
    assert(c && name && data && hash);
    if (len == 0)
        return s_fail(c, PD_EINVAL, "module %s is empty", name);
    if (len > S_MAX_MODULE)
        return s_fail(c, PD_ETOOBIG, "module %s is %zu bytes; the limit is %u", name, len,
                      S_MAX_MODULE);
    s_hash_hex(data, len, hash);
    bool has = false;
    int rc = s_broker_has(c, "mod_has", "mod_ok", hash, &has);
    if (rc || has)
        return rc;
    msgpack_packer pk;
    pd_msg_t m;
    uint64_t req = s_begin(c, &pk, "mod_put", 4);
    pd_pack_kv_str(&pk, "hash", hash);
    pd_pack_kv_str(&pk, "name", name);
    pd_pack_kv_str(&pk, "kind", kind == PD_MODULE_SO       ? "so"
                                : kind == PD_MODULE_BUNDLE ? "pkg"
                                : kind == PD_MODULE_CU     ? "cu"
                                                           : "c");
    pd_pack_kv_bin(&pk, "data", data, len);
    return s_call_idem(c, req, "mod_ok", &m, 0, c->timeout_ms);
}

/* Reads a whole regular file of at most S_MAX_MODULE bytes into *data
   (malloc'ed). Returns 0 or an error with c->err set. */
static int s_read_file(pd_client_t *c, const char *what, const char *path, char **data,
                       size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return s_fail(c, PD_EIO, "cannot read %s %s: %s", what, path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return s_fail(c, PD_EIO, "%s %s is not a regular file", what, path);
    }
    if ((uint64_t) st.st_size > S_MAX_MODULE) {
        close(fd);
        return s_fail(c, PD_ETOOBIG, "%s %s is %lld bytes; the limit is %u", what, path,
                      (long long) st.st_size, S_MAX_MODULE);
    }
    *len = (size_t) st.st_size;
    *data = malloc(*len ? *len : 1);
    size_t got = 0;
    while (*data && got < *len) {
        ssize_t r = read(fd, *data + got, *len - got);
        if (r <= 0)
            break;
        got += (size_t) r;
    }
    close(fd);
    if (!*data || got != *len) {
        free(*data);
        *data = NULL;
        return s_fail(c, PD_EIO, "cannot read %s %s", what, path);
    }
    return 0;
}

int pd_module_upload_files(pd_client_t *c, const char *const *paths, size_t npaths,
                           const char *const *flags, size_t nflags, char hash[PD_HASH_HEX])
{
    assert(c && (paths || npaths == 0) && (flags || nflags == 0) && hash);
    if (npaths == 0)
        return s_fail(c, PD_EINVAL, "a module needs at least one file");
    if (npaths > PD_BUNDLE_MAX_FILES)
        return s_fail(c, PD_EINVAL, "a module has at most %d files, not %zu",
                      PD_BUNDLE_MAX_FILES, npaths);
    pd_bundle_file_t *files = calloc(npaths, sizeof *files);
    if (!files)
        return s_fail(c, PD_ENOMEM, "out of memory");
    int rc = 0;
    size_t total = 0;
    for (size_t i = 0; i < npaths && !rc; i++) {
        char *data = NULL;
        size_t len = 0;
        rc = s_read_file(c, "module file", paths[i], &data, &len);
        if (rc)
            break;
        const char *base = strrchr(paths[i], '/');
        base = base ? base + 1 : paths[i];
        files[i] = (pd_bundle_file_t){base, strlen(base), data, len};
        total += len;
        if (total > S_MAX_MODULE)
            rc = s_fail(c, PD_ETOOBIG, "the module's files hold %zu bytes; the limit is %u",
                        total, S_MAX_MODULE);
    }
    pd_buf_t b;
    pd_buf_init(&b);
    if (!rc) {
        char why[600];
        rc = pd_bundle_pack(files, npaths, flags, nflags, &b, why, sizeof why);
        if (rc)
            s_fail(c, rc, "%s", why);
    }
    if (!rc) {
        /* Named after its first source file, for messages. */
        char name[160];
        snprintf(name, sizeof name, "%s", files[0].name);
        for (size_t i = 0; i < npaths; i++)
            if (files[i].name_len > 2 && files[i].name[files[i].name_len - 1] == 'c') {
                snprintf(name, sizeof name, "%s", files[i].name);
                break;
            }
        if (npaths > 1) {
            size_t l = strlen(name);
            snprintf(name + l, sizeof name - l, "+%zu", npaths - 1);
        }
        rc = pd_module_upload(c, name, PD_MODULE_BUNDLE, b.data, b.len, hash);
    }
    pd_buf_free(&b);
    for (size_t i = 0; i < npaths; i++)
        free((void *) files[i].data);
    free(files);
    return rc;
}

int pd_module_upload_file(pd_client_t *c, const char *path, char hash[PD_HASH_HEX])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return s_fail(c, PD_EIO, "cannot read module %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return s_fail(c, PD_EIO, "module %s is not a regular file", path);
    }
    if ((uint64_t) st.st_size > S_MAX_MODULE) {
        close(fd);
        return s_fail(c, PD_ETOOBIG, "module %s is %lld bytes; the limit is %u", path,
                      (long long) st.st_size, S_MAX_MODULE);
    }
    size_t len = (size_t) st.st_size;
    char *data = malloc(len ? len : 1);
    size_t got = 0;
    while (data && got < len) {
        ssize_t r = read(fd, data + got, len - got);
        if (r <= 0)
            break;
        got += (size_t) r;
    }
    close(fd);
    if (!data || got != len) {
        free(data);
        return s_fail(c, PD_EIO, "cannot read module %s", path);
    }
    size_t pl = strlen(path);
    /* A prebuilt module: a shared object (Linux) or a DLL (Windows); the
       broker reads its platform from its bytes and sends it only there. */
    pd_module_kind_t kind = (pl > 3 && strcmp(path + pl - 3, ".so") == 0) ||
                                    (pl > 4 && strcmp(path + pl - 4, ".dll") == 0)
                                ? PD_MODULE_SO
                            : pl > 3 && strcmp(path + pl - 3, ".cu") == 0 ? PD_MODULE_CU
                                                                          : PD_MODULE_C;
    const char *base = strrchr(path, '/');
    int rc = pd_module_upload(c, base ? base + 1 : path, kind, data, len, hash);
    free(data);
    return rc;
}

/* ---- shared data --------------------------------------------------------- */

int pd_shared_upload(pd_client_t *c, const void *data, size_t len, char hash[PD_HASH_HEX])
{
    assert(c && (data || len == 0) && hash);
    hash[0] = 0;
    if (len == 0)
        return s_fail(c, PD_EINVAL, "shared data is empty: give at least one byte");
    if (c->max_shared && len > c->max_shared)
        return s_fail(c, PD_ETOOBIG, "shared data is %zu bytes (%.1f MiB); the broker at %s "
                      "takes at most %llu MiB (its --max-shared-mb)", len,
                      (double) len / 1048576.0, c->endpoint,
                      (unsigned long long) (c->max_shared >> 20));
    if (len > PD_MAX_FRAME - 4096)
        return s_fail(c, PD_ETOOBIG, "shared data is %zu bytes; one message carries at most %u",
                      len, PD_MAX_FRAME - 4096);
    unsigned char h[32];
    crypto_generichash(h, sizeof h, data, len, NULL, 0);
    sodium_bin2hex(hash, PD_HASH_HEX, h, sizeof h);
    bool has = false;
    int rc = s_broker_has(c, "shr_has", "shr_ok", hash, &has);
    if (rc || has)
        return rc;
    msgpack_packer pk;
    pd_msg_t m;
    uint64_t req = s_begin(c, &pk, "shr_put", 2);
    pd_pack_kv_str(&pk, "hash", hash);
    pd_pack_cstr(&pk, "data");
    msgpack_pack_bin(&pk, len);
    /* The broker answers once the bytes are hashed, stored and on disk:
       allow it 40 ms per MB (25 MB/s) before sending them again, so that a
       large upload is not sent twice merely for taking its time. */
    return s_call_idem2(c, req, "shr_ok", &m, (int) (len / 25000), c->timeout_ms, data, len);
}

int pd_shared_upload_file(pd_client_t *c, const char *path, char hash[PD_HASH_HEX])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return s_fail(c, PD_EIO, "cannot read shared data %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return s_fail(c, PD_EIO, "shared data %s is not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return s_fail(c, PD_EINVAL, "shared data %s is empty", path);
    }
    /* Mapped, not read: a large file is hashed and sent without a copy. */
    close(fd);
    size_t len = 0;
    const void *p = pd_plat_map_file(path, &len);
    if (!p || len != (size_t) st.st_size) {
        pd_plat_unmap(p, len);
        return s_fail(c, PD_EIO, "cannot read shared data %s: %s", path, strerror(errno));
    }
    int rc = pd_shared_upload(c, p, len, hash);
    pd_plat_unmap(p, len);
    if (rc == PD_ETOOBIG || rc == PD_EINVAL) {
        char tmp[sizeof c->err];
        snprintf(tmp, sizeof tmp, "%s", c->err);
        s_fail(c, rc, "%s: %s", path, tmp);
    }
    return rc;
}

/* ---- map ----------------------------------------------------------------- */

/* One submit chunk: jobs [start, start + n) of the call. */
typedef struct {
    uint64_t req;        /* its request number (the same when sent again) */
    uint64_t token;      /* its token's counter */
    size_t start, n;     /* jobs start .. start+n-1 of the call */
    const uint8_t *raw;  /* their packed arguments */
    size_t bytes;        /* bytes at raw */
    int64_t first_sent;  /* ms of its first send */
} s_chunk_t;

/* Builds and sends one submit chunk. */
static int s_send_chunk(pd_client_t *c, const s_chunk_t *ch, const char *hash, const char *fn,
                        const pd_map_opts_t *opts, size_t batch_bytes)
{
    msgpack_packer pk;
    /* Plain CPU jobs keep the short form. */
    const char *cuda = opts && opts->cuda && *opts->cuda ? opts->cuda : NULL;
    bool gpu = (opts && opts->gpu) || cuda;
    bool shared = opts && opts->shared, cap = opts && opts->max_slots;
    bool mem = opts && opts->memory, cpu = opts && opts->cpu_time_s;
    bool outc = opts && opts->max_output, again = opts && opts->retry_failed;
    s_begin_req(c, &pk, "submit",
                8 + shared + cap + gpu + (cuda != NULL) + mem + cpu + outc + again, ch->req);
    pd_pack_kv_str(&pk, "mod", hash);
    pd_pack_kv_str(&pk, "fn", fn);
    pd_pack_kv_uint(&pk, "timeout_ms", opts ? opts->timeout_ms : 0);
    pd_pack_kv_uint(&pk, "retries", opts && opts->retries ? opts->retries : 3);
    if (shared)
        pd_pack_kv_str(&pk, "shared", opts->shared);
    if (cap)
        pd_pack_kv_uint(&pk, "max_slots", opts->max_slots);
    if (gpu)
        pd_pack_kv_bool(&pk, "gpu", true);
    if (cuda)
        pd_pack_kv_str(&pk, "cu", cuda);
    if (mem)
        pd_pack_kv_uint(&pk, "memory", opts->memory);
    if (cpu)
        pd_pack_kv_uint(&pk, "cpu_time", opts->cpu_time_s);
    if (outc)
        pd_pack_kv_uint(&pk, "max_output", opts->max_output);
    if (again)
        pd_pack_kv_uint(&pk, "retry_failed", opts->retry_failed);
    uint8_t token[S_TOKEN_RANDOM + 8];
    memcpy(token, c->token, S_TOKEN_RANDOM);
    for (int i = 0; i < 8; i++)
        token[S_TOKEN_RANDOM + i] = (uint8_t) (ch->token >> (56 - 8 * i));
    pd_pack_kv_bin(&pk, "token", token, sizeof token);
    pd_pack_kv_uint(&pk, "at", ch->start);
    pd_pack_kv_uint(&pk, "batch_bytes", batch_bytes);
    pd_pack_cstr(&pk, "args");
    msgpack_pack_array(&pk, (uint32_t) ch->n);
    pd_pack_raw(&pk, ch->raw, ch->bytes);
    return s_send(c);
}

/* Receives one `accepted` reply (or error) for a chunk in the window and
   writes its ids. Returns 0 (one chunk settled, or a stray reply), the
   chunk's error (the chunk is settled: refused), S_LOST (the connection
   dropped: nothing settled) or PD_ETIMEDOUT (nothing came within wait_ms). */
static int s_take_accepted(pd_client_t *c, s_chunk_t *win, int *inflight, uint64_t *ids,
                           long *accepted, int wait_ms)
{
    pd_msg_t m;
    uint64_t got = 0;
    int rc = s_recv(c, 0, &m, wait_ms, &got);
    if (rc == S_LOST || rc == PD_ETIMEDOUT)
        return rc;
    int k;
    for (k = 0; k < *inflight; k++)
        if (win[k].req == got)
            break;
    if (k == *inflight)
        return 0; /* not one of ours: a duplicate reply to a chunk sent twice */
    s_chunk_t ch = win[k];
    win[k] = win[--*inflight];
    if (rc)
        return rc;
    uint64_t first = 0, n = 0;
    if (!pd_msg_is(&m, "accepted") || pd_msg_uint(&m, "first", &first) || pd_msg_uint(&m, "n", &n) ||
        n != ch.n)
        return s_fail(c, PD_EPROTO, "broker sent a malformed 'accepted' reply");
    for (size_t i = 0; i < ch.n; i++)
        ids[ch.start + i] = first + i;
    *accepted += (long) ch.n;
    return 0;
}

long pd_map(pd_client_t *c, const char *hash, const char *fn, const void *args, size_t len, size_t n,
            const pd_map_opts_t *opts, uint64_t *ids)
{
    assert(c && hash && fn && (args || n == 0) && ids);
    if (n == 0)
        return 0;
    if (strlen(fn) == 0 || strlen(fn) > 255)
        return s_fail(c, PD_EINVAL, "function name '%s' must be 1 to 255 characters", fn);
    if (opts && opts->max_output > PD_LIMITS_MAX_OUTPUT)
        return s_fail(c, PD_EINVAL, "max_output is %llu bytes; a job keeps at most %u MiB of "
                      "output (write larger results to a file, or return them as the value)",
                      (unsigned long long) opts->max_output, PD_LIMITS_MAX_OUTPUT >> 20);
    memset(ids, 0, n * sizeof *ids);
    /* Check the arguments first: n values, nothing else. */
    pd_rd_t r;
    pd_rd_init(&r, args, len);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *raw;
        size_t rl;
        if (pd_rd_skip(&r, &raw, &rl))
            return s_fail(c, PD_EPROTO, "argument %zu is not a well-formed msgpack value", i);
        if (c->max_arg && rl > c->max_arg)
            return s_fail(c, PD_ETOOBIG, "job %zu of the batch (counting from 1) has an "
                          "argument of %.1f MiB; the broker takes at most %.1f MiB per job "
                          "(its max_arg_mb): pass large data once as shared data (--shared, "
                          "pd_shared_put) and give each job what differs", i + 1,
                          (double) rl / 1048576.0, (double) c->max_arg / 1048576.0);
    }
    if (!pd_rd_at_end(&r))
        return s_fail(c, PD_EPROTO, "arguments hold more than the %zu values announced", n);
    if (c->max_batch && len > c->max_batch)
        return s_fail(c, PD_ETOOBIG, "the batch's arguments are %.1f MiB in all; the broker "
                      "takes at most %.1f MiB in one submit (its max_batch_mb): split the "
                      "batch, or pass data the jobs share once as shared data (--shared)",
                      (double) len / 1048576.0, (double) c->max_batch / 1048576.0);

    pd_rd_init(&r, args, len);
    s_chunk_t win[S_WINDOW];
    int inflight = 0;
    long accepted = 0;
    int first_err = 0;
    char first_msg[sizeof c->err] = "";
    size_t next = 0;
    int64_t attempt = S_RETRY_MS; /* wait before sending the window again */
    s_drained_lost(c);
    while (next < n || inflight > 0) {
        if (next < n && inflight < S_WINDOW && !first_err) {
            /* Build the next chunk: count how many arguments fit. */
            pd_rd_t probe = r;
            size_t k = 0, bytes = 0;
            const uint8_t *start = probe.p;
            while (next + k < n && k < S_CHUNK_JOBS) {
                const uint8_t *raw;
                size_t rl;
                pd_rd_t save = probe;
                pd_rd_skip(&probe, &raw, &rl);
                if (k > 0 && bytes + rl > S_CHUNK_BYTES) {
                    probe = save;
                    break;
                }
                bytes += rl;
                k++;
            }
            s_chunk_t ch = {.req = c->next_req++, .token = c->next_chunk++, .start = next,
                            .n = k, .raw = start, .bytes = bytes, .first_sent = zclock_mono()};
            int rc = s_send_chunk(c, &ch, hash, fn, opts, len);
            if (rc) {
                first_err = rc;
                snprintf(first_msg, sizeof first_msg, "%s", c->err);
                continue;
            }
            win[inflight++] = ch;
            r = probe;
            next += k;
            continue;
        }
        if (inflight == 0)
            break;
        int rc = s_take_accepted(c, win, &inflight, ids, &accepted, (int) attempt);
        if (rc == S_LOST || rc == PD_ETIMEDOUT) {
            /* Send the window again, same tokens: the broker gives a chunk it
               already accepted the same ids. A chunk silent for the whole
               time-out fails. */
            int64_t now = zclock_mono();
            for (int k = 0; k < inflight;) {
                if (now - win[k].first_sent >= c->timeout_ms) {
                    if (!first_err) {
                        first_err = PD_ETIMEDOUT;
                        snprintf(first_msg, sizeof first_msg,
                                 "no reply from the broker at %s within %d ms to a submit of "
                                 "%zu jobs (sent again after each drop): is it running and "
                                 "reachable?", c->endpoint, c->timeout_ms, win[k].n);
                    }
                    win[k] = win[--inflight];
                    continue;
                }
                if (rc == S_LOST && now - win[k].first_sent < 50)
                    usleep(50000);
                c->resent++;
                if (s_send_chunk(c, &win[k], hash, fn, opts, len) != 0)
                    win[k].first_sent = 0; /* fails at the next turn */
                k++;
            }
            if (rc == PD_ETIMEDOUT)
                attempt = attempt * 2 < c->timeout_ms ? attempt * 2 : c->timeout_ms;
            else
                pd_log_info("client: connection to %s dropped; sending %d submit chunks again",
                            c->endpoint, inflight);
            continue;
        }
        attempt = S_RETRY_MS;
        if (rc && !first_err) {
            first_err = rc;
            snprintf(first_msg, sizeof first_msg, "%s", c->err);
        }
    }
    if (first_err) {
        snprintf(c->err, sizeof c->err, "%s", first_msg);
        if (accepted == 0)
            return first_err;
    }
    return accepted;
}

long pd_map_doubles(pd_client_t *c, const char *hash, const char *fn, const double *x, size_t n,
                    const pd_map_opts_t *opts, uint64_t *ids)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_double(&pk, x[i]);
    long rc = b.failed ? s_fail(c, PD_ENOMEM, "out of memory packing %zu numbers", n)
                       : pd_map(c, hash, fn, b.data, b.len, n, opts, ids);
    pd_buf_free(&b);
    return rc;
}

long pd_exec(pd_client_t *c, const char *const *cmds, size_t n, const pd_map_opts_t *opts,
             uint64_t *ids)
{
    assert(c && (cmds || n == 0) && ids);
    pd_exec_job_t *jobs = calloc(n ? n : 1, sizeof *jobs);
    if (!jobs)
        return s_fail(c, PD_ENOMEM, "%zu commands do not fit in memory", n);
    for (size_t i = 0; i < n; i++)
        jobs[i].cmd = cmds[i];
    long rc = pd_exec_jobs(c, jobs, n, NULL, opts, ids);
    free(jobs);
    return rc;
}

/* Checks the names of one job's files (what: "to send", "to return"). */
static int s_exec_names(pd_client_t *c, size_t job, const char *const *names, size_t n,
                        const char *what)
{
    if (n > PD_EXEC_MAX_FILES)
        return s_fail(c, PD_EINVAL, "job %zu of the batch (counting from 1) has %zu files %s; "
                      "a job takes at most %d", job + 1, n, what, PD_EXEC_MAX_FILES);
    for (size_t k = 0; k < n; k++) {
        char why[128];
        if (pd_file_check_relative(names[k], strlen(names[k]), why, sizeof why))
            return s_fail(c, PD_EINVAL, "job %zu of the batch (counting from 1): the file %s "
                          "'%.300s' %s", job + 1, what, names[k], why);
    }
    return 0;
}

/* Packs job i's argument: {cmd, cwd, [workdir], [files], [return]}. bytes
   counts what the files sent so far weigh, against the broker's bounds. */
static int s_exec_pack(pd_client_t *c, size_t i, const pd_exec_job_t *j, const char *cwd,
                       const char *workdir, msgpack_packer *pk, uint64_t *bytes)
{
    int rc = s_exec_names(c, i, j->transfer, j->ntransfer, "to send");
    if (!rc)
        rc = s_exec_names(c, i, j->ret, j->nret, "to return");
    if (rc)
        return rc;
    msgpack_pack_map(pk, 1 + (cwd[0] ? 1 : 0) + (workdir ? 1 : 0) + (j->ntransfer ? 1 : 0) +
                             (j->nret ? 1 : 0));
    pd_pack_kv_str(pk, "cmd", j->cmd);
    if (cwd[0])
        pd_pack_kv_str(pk, "cwd", cwd);
    if (workdir)
        pd_pack_kv_str(pk, "workdir", workdir);
    if (j->ntransfer) {
        pd_pack_cstr(pk, "files");
        msgpack_pack_map(pk, j->ntransfer);
        uint64_t job_bytes = strlen(j->cmd);
        for (size_t k = 0; k < j->ntransfer; k++) {
            const char *name = j->transfer[k];
            struct stat st;
            uint64_t left = c->max_arg > job_bytes ? c->max_arg - job_bytes : 0;
            if (stat(name, &st) == 0 && S_ISREG(st.st_mode) && c->max_arg &&
                (uint64_t) st.st_size > left)
                return s_fail(c, PD_ETOOBIG, "job %zu of the batch (counting from 1): the "
                              "files it sends weigh over %.1f MiB with %s (%.1f MiB); the broker "
                              "takes at most %.1f MiB per job (its max_arg_mb): put the files "
                              "on a file system the workers share and run there (--workdir "
                              "DIR) instead of sending them", i + 1,
                              (double) (job_bytes + (uint64_t) st.st_size) / 1048576.0, name,
                              (double) st.st_size / 1048576.0, (double) c->max_arg / 1048576.0);
            char *data = NULL;
            size_t len = 0;
            if (pd_file_read(name, c->max_arg ? left : PD_MAX_FRAME, &data, &len) != 0)
                return s_fail(c, errno == EFBIG ? PD_ETOOBIG : PD_EIO, "job %zu of the batch "
                              "(counting from 1): cannot read the file to send %s: %s", i + 1,
                              name, errno == EINVAL ? "not a regular file" : strerror(errno));
            job_bytes += len;
            *bytes += len;
            if (c->max_batch && *bytes > c->max_batch) {
                free(data);
                return s_fail(c, PD_ETOOBIG, "the files the batch sends are over %.1f MiB by "
                              "job %zu; the broker takes at most %.1f MiB in one submit (its "
                              "max_batch_mb): put them on a file system the workers share and "
                              "run there (--workdir DIR), or submit fewer jobs at once",
                              (double) *bytes / 1048576.0, i + 1,
                              (double) c->max_batch / 1048576.0);
            }
            pd_pack_cstr(pk, name);
            msgpack_pack_bin(pk, len);
            msgpack_pack_bin_body(pk, data, len);
            free(data);
        }
    }
    if (j->nret) {
        pd_pack_cstr(pk, "return");
        msgpack_pack_array(pk, j->nret);
        for (size_t k = 0; k < j->nret; k++)
            pd_pack_cstr(pk, j->ret[k]);
    }
    return 0;
}

long pd_exec_jobs(pd_client_t *c, const pd_exec_job_t *jobs, size_t n, const char *workdir,
                  const pd_map_opts_t *opts, uint64_t *ids)
{
    assert(c && (jobs || n == 0) && ids);
    char cwd[4096], wd[8200];
    if (pd_plat_getcwd(cwd, sizeof cwd) != 0)
        cwd[0] = 0; /* removed, or too long: the jobs run in scratch directories */
    if (workdir && !*workdir)
        return s_fail(c, PD_EINVAL, "the job's directory (workdir) is empty");
    if (workdir && !cwd[0] && !pd_plat_dirsep(workdir[0]) && workdir[1] != ':')
        return s_fail(c, PD_EINVAL, "the job's directory %s is relative, and this process's "
                      "working directory cannot be read (%s): give an absolute path", workdir,
                      strerror(errno));
    if (workdir && !pd_plat_dirsep(workdir[0]) && !(workdir[0] && workdir[1] == ':')) {
        if (snprintf(wd, sizeof wd, "%s/%s", cwd, workdir) >= (int) sizeof wd)
            return s_fail(c, PD_EINVAL, "the job's directory (workdir) is too long");
        workdir = wd;
    }
    if (workdir && strlen(workdir) >= 4096)
        return s_fail(c, PD_EINVAL, "the job's directory (workdir) is longer than 4095 bytes");
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    uint64_t bytes = 0;
    long rc = 0;
    for (size_t i = 0; i < n && !rc && !b.failed; i++)
        rc = s_exec_pack(c, i, &jobs[i], cwd, workdir, &pk, &bytes);
    if (!rc && b.failed)
        rc = s_fail(c, PD_ENOMEM, "%zu commands and their files do not fit in memory", n);
    if (!rc)
        rc = pd_map(c, PD_BUILTIN, "exec", b.data, b.len, n, opts, ids);
    else
        memset(ids, 0, n * sizeof *ids);
    pd_buf_free(&b);
    return rc;
}

int pd_result_exec(const pd_result_t *r, pd_exec_result_t *x)
{
    memset(x, 0, sizeof *x);
    if ((r->state != PD_JOB_DONE && r->state != PD_JOB_FAILED) || !r->value)
        return PD_EPROTO;
    pd_rd_t rd;
    pd_rd_init(&rd, r->value, r->len);
    uint32_t n;
    bool have_exit = false;
    if (pd_rd_map(&rd, &n))
        return PD_EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        const char *k;
        uint32_t kl;
        if (pd_rd_str(&rd, &k, &kl))
            return PD_EPROTO;
        int64_t iv;
        const void *p;
        uint32_t len;
        int rc = 0;
#define S_KEY(name) (kl == strlen(name) && memcmp(k, name, kl) == 0)
        if (S_KEY("exit")) {
            rc = pd_rd_int(&rd, &iv);
            x->exit = (int) iv;
            have_exit = rc == 0;
        } else if (S_KEY("signal")) {
            rc = pd_rd_int(&rd, &iv);
            x->signal = (int) iv;
        } else if (S_KEY("out") || S_KEY("err") || S_KEY("host")) {
            if (pd_rd_peek(&rd) == PD_MP_STR) {
                const char *sp;
                rc = pd_rd_str(&rd, &sp, &len);
                p = sp;
            } else {
                rc = pd_rd_bin(&rd, &p, &len);
            }
            if (rc == 0 && S_KEY("out"))
                x->out = p, x->out_len = len;
            else if (rc == 0 && S_KEY("err"))
                x->err = p, x->err_len = len;
            else if (rc == 0)
                x->host = p, x->host_len = len;
        } else if (S_KEY("start")) {
            rc = pd_rd_double(&rd, &x->start);
        } else if (S_KEY("runtime")) {
            rc = pd_rd_double(&rd, &x->runtime);
        } else if (S_KEY("truncated")) {
            rc = pd_rd_bool(&rd, &x->truncated);
        } else if (S_KEY("dropped_out")) {
            rc = pd_rd_uint(&rd, &x->out_dropped);
        } else if (S_KEY("dropped_err")) {
            rc = pd_rd_uint(&rd, &x->err_dropped);
        } else if (S_KEY("dir")) {
            const char *sp;
            rc = pd_rd_str(&rd, &sp, &len);
            x->dir = sp, x->dir_len = len;
        } else if (S_KEY("scratch")) {
            rc = pd_rd_bool(&rd, &x->scratch);
        } else if (S_KEY("files")) {
            uint32_t nf;
            rc = pd_rd_map(&rd, &nf);
            for (uint32_t f = 0; f < nf && !rc; f++) {
                const char *sp;
                rc = pd_rd_str(&rd, &sp, &len);
                if (!rc)
                    rc = pd_rd_bin(&rd, &p, &len);
            }
            x->nfiles = rc ? 0 : nf;
        } else {
            rc = pd_rd_skip(&rd, NULL, NULL);
        }
#undef S_KEY
        if (rc)
            return PD_EPROTO;
    }
    if (!have_exit) {
        memset(x, 0, sizeof *x);
        return PD_EPROTO;
    }
    if (!x->out)
        x->out = "";
    if (!x->err)
        x->err = "";
    if (!x->host)
        x->host = "";
    if (!x->dir)
        x->dir = "";
    return 0;
}

int pd_result_exec_file(const pd_result_t *r, size_t i, pd_exec_file_t *f)
{
    memset(f, 0, sizeof *f);
    pd_exec_result_t x;
    if (pd_result_exec(r, &x) || i >= x.nfiles)
        return PD_EPROTO;
    pd_rd_t rd;
    pd_rd_init(&rd, r->value, r->len);
    uint32_t n, nf;
    pd_rd_map(&rd, &n);
    for (uint32_t k = 0; k < n; k++) {
        if (!pd_rd_key_is(&rd, "files")) {
            if (pd_rd_skip(&rd, NULL, NULL) || pd_rd_skip(&rd, NULL, NULL))
                return PD_EPROTO;
            continue;
        }
        if (pd_rd_map(&rd, &nf))
            return PD_EPROTO;
        for (uint32_t e = 0; e < nf; e++) {
            const char *name;
            const void *data;
            uint32_t nl, len;
            if (pd_rd_str(&rd, &name, &nl) || pd_rd_bin(&rd, &data, &len))
                return PD_EPROTO;
            if (e == i) {
                *f = (pd_exec_file_t){.name = name, .name_len = nl, .data = data, .len = len};
                return 0;
            }
        }
        return PD_EPROTO;
    }
    return PD_EPROTO;
}

/* ---- id sets ------------------------------------------------------------- */

/* Packs ids[0..n) as ranges, merging runs of consecutive ids, at most
   max_ranges ranges; returns how many ids were packed. */
static size_t s_pack_ranges(msgpack_packer *pk, const uint64_t *ids, size_t n, size_t max_ranges)
{
    size_t nr = 0, i = 0;
    while (i < n && nr < max_ranges) {
        size_t j = i + 1;
        while (j < n && ids[j] == ids[j - 1] + 1)
            j++;
        nr++;
        i = j;
    }
    msgpack_pack_array(pk, (uint32_t) nr);
    size_t packed = 0;
    i = 0;
    for (size_t k = 0; k < nr; k++) {
        size_t j = i + 1;
        while (j < n && ids[j] == ids[j - 1] + 1)
            j++;
        msgpack_pack_array(pk, 2);
        msgpack_pack_uint64(pk, ids[i]);
        msgpack_pack_uint64(pk, j - i);
        packed = j;
        i = j;
    }
    return packed;
}

int pd_status(pd_client_t *c, const uint64_t *ids, size_t n, pd_job_state_t *states)
{
    size_t done = 0;
    while (done < n) {
        msgpack_packer pk;
        uint64_t req = s_begin(c, &pk, "status", 1);
        pd_pack_cstr(&pk, "ids");
        size_t take = s_pack_ranges(&pk, ids + done, n - done, S_MAX_RANGES);
        pd_msg_t m;
        int rc = s_call_idem(c, req, "states", &m, 0, c->timeout_ms);
        if (rc)
            return rc;
        const void *st;
        uint32_t sl;
        if (pd_msg_bytes(&m, "st", &st, &sl) || sl != take)
            return s_fail(c, PD_EPROTO, "broker sent a malformed 'states' reply");
        for (size_t i = 0; i < take; i++) {
            uint8_t s = ((const uint8_t *) st)[i];
            states[done + i] = s <= PD_JOB_CANCELLED ? (pd_job_state_t) s : PD_JOB_UNKNOWN;
        }
        done += take;
    }
    return 0;
}

/* Sends a request of type t over all ids (in as many requests as needed) and
   sums the reply field "n". */
static long s_ids_call(pd_client_t *c, const char *t, const char *want, const uint64_t *ids, size_t n)
{
    long total = 0;
    size_t done = 0;
    while (done < n) {
        msgpack_packer pk;
        uint64_t req = s_begin(c, &pk, t, 1);
        pd_pack_cstr(&pk, "ids");
        done += s_pack_ranges(&pk, ids + done, n - done, S_MAX_RANGES);
        pd_msg_t m;
        int rc = s_call(c, req, want, &m, c->timeout_ms);
        if (rc)
            return rc;
        uint64_t k = 0;
        pd_msg_uint_opt(&m, "n", &k);
        total += (long) k;
    }
    return total;
}

long pd_cancel(pd_client_t *c, const uint64_t *ids, size_t n)
{
    return s_ids_call(c, "cancel", "cancelled", ids, n);
}

long pd_release(pd_client_t *c, const uint64_t *ids, size_t n)
{
    return s_ids_call(c, "release", "released", ids, n);
}

/* ---- fetch --------------------------------------------------------------- */

typedef struct {
    uint64_t id;
    size_t index;
} s_slot_t;

static int s_slot_cmp(const void *a, const void *b)
{
    const s_slot_t *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id ? 1 : (x->index > y->index) - (x->index < y->index);
}

/* Parses one result entry [id, state, value] into *res (which must be
   zeroed). A failed job's value is its error map {code, msg, host, slot,
   attempts, value?}: the optional "value" (an exec job's output) is kept
   in res->value. Returns 0, or -1 when the entry is malformed or memory
   runs out. */
static int s_parse_entry(pd_rd_t *r, pd_result_t *res)
{
    uint32_t k;
    uint64_t id, st;
    const uint8_t *raw;
    size_t rl;
    if (pd_rd_array(r, &k) || k != 3 || pd_rd_uint(r, &id) || pd_rd_uint(r, &st) || st > 5 ||
        pd_rd_skip(r, &raw, &rl))
        return -1;
    res->id = id;
    res->state = (pd_job_state_t) st;
    if (st == PD_JOB_DONE) {
        res->value = malloc(rl);
        if (!res->value)
            return -1;
        memcpy(res->value, raw, rl);
        res->len = rl;
    } else if (st == PD_JOB_FAILED) {
        pd_rd_t e;
        pd_rd_init(&e, raw, rl);
        char code[32] = "PD_ETASK", msg[4600] = "", host[256] = "?";
        uint64_t slot = 0, attempts = 0;
        const uint8_t *val = NULL;
        size_t vlen = 0;
        uint32_t nf;
        if (pd_rd_map(&e, &nf) == 0) {
            for (uint32_t f = 0; f < nf; f++) {
                char key[16] = "";
                if (pd_rd_strcpy(&e, key, sizeof key) && pd_rd_skip(&e, NULL, NULL))
                    break;
                int vr = -1;
                if (strcmp(key, "code") == 0)
                    vr = pd_rd_strcpy(&e, code, sizeof code);
                else if (strcmp(key, "msg") == 0)
                    vr = pd_rd_strcpy(&e, msg, sizeof msg);
                else if (strcmp(key, "host") == 0)
                    vr = pd_rd_strcpy(&e, host, sizeof host);
                else if (strcmp(key, "slot") == 0)
                    vr = pd_rd_uint(&e, &slot);
                else if (strcmp(key, "attempts") == 0)
                    vr = pd_rd_uint(&e, &attempts);
                else if (strcmp(key, "value") == 0)
                    vr = pd_rd_skip(&e, &val, &vlen);
                if (vr && pd_rd_skip(&e, NULL, NULL))
                    break;
            }
        }
        res->code = s_code_from_name(code);
        char full[5000];
        snprintf(full, sizeof full, "%s (job %llu on %s slot %llu)", msg[0] ? msg : code,
                 (unsigned long long) id, host, (unsigned long long) slot);
        res->error = strdup(full);
        if (!res->error)
            return -1;
        if (val && vlen) {
            res->value = malloc(vlen);
            if (!res->value)
                return -1;
            memcpy(res->value, val, vlen);
            res->len = vlen;
        }
    } else if (st == PD_JOB_CANCELLED) {
        res->code = PD_ECANCELLED;
    } else if (st == PD_JOB_UNKNOWN) {
        res->code = PD_ENOJOB;
    }
    return 0;
}

/* Copies a parsed result into dst (deep copy); returns 0 or -1. */
static int s_copy_result(pd_result_t *dst, const pd_result_t *src)
{
    *dst = *src;
    dst->value = NULL;
    dst->error = NULL;
    if (src->value) {
        dst->value = malloc(src->len);
        if (!dst->value)
            return -1;
        memcpy(dst->value, src->value, src->len);
    }
    if (src->error && !(dst->error = strdup(src->error)))
        return -1;
    return 0;
}

/* Stores one result entry into every results[] slot of that id; returns
   how many slots became final. */
static size_t s_store(pd_rd_t *r, const s_slot_t *order, size_t n, pd_result_t *results, int *bad)
{
    pd_result_t one;
    memset(&one, 0, sizeof one);
    if (s_parse_entry(r, &one)) {
        pd_results_clear(&one, 1);
        *bad = 1;
        return 0;
    }
    /* lower bound of id */
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (order[mid].id < one.id)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t newly = 0;
    bool moved = false;
    for (size_t i = lo; i < n && order[i].id == one.id; i++) {
        pd_result_t *res = &results[order[i].index];
        if (pd_job_state_final(res->state))
            continue;
        if (!moved) {
            *res = one; /* the first slot takes the parsed result itself */
            moved = true;
        } else if (s_copy_result(res, &one)) {
            *bad = 1;
        }
        newly++;
    }
    if (!moved)
        pd_results_clear(&one, 1);
    return newly;
}

/* Sets every result that pd_fetch's wait left not final to the state the
   broker holds for that job (queued or running: the one `status` reads),
   taking in the same reply any result that ended meanwhile, so that a job
   is never shown queued while the broker has it running. pending has room
   for n ids. Returns 0 or an error. */
static int s_fetch_states(pd_client_t *c, const s_slot_t *order, size_t n, pd_result_t *results,
                          uint64_t *pending, size_t *ended)
{
    uint8_t *told = calloc(n ? n : 1, 1); /* by position in order: state given */
    if (!told)
        return s_fail(c, PD_ENOMEM, "out of memory for %zu results", n);
    int rc = 0;
    for (;;) {
        size_t np = 0;
        for (size_t i = 0; i < n; i++)
            if (!told[i] && !pd_job_state_final(results[order[i].index].state) &&
                (np == 0 || pending[np - 1] != order[i].id))
                pending[np++] = order[i].id;
        if (np == 0)
            break;
        msgpack_packer pk;
        uint64_t req = s_begin(c, &pk, "fetch", 4);
        pd_pack_kv_uint(&pk, "wait_ms", 0);
        pd_pack_kv_uint(&pk, "max", 10000);
        pd_pack_cstr(&pk, "states");
        msgpack_pack_true(&pk);
        pd_pack_cstr(&pk, "ids");
        size_t take = s_pack_ranges(&pk, pending, np, S_MAX_RANGES);
        pd_msg_t m;
        if ((rc = s_call_idem(c, req, "results", &m, 0, c->timeout_ms)) != 0)
            break;
        const void *stv;
        uint32_t sl;
        pd_rd_t r;
        uint32_t nres;
        if (pd_msg_bytes(&m, "st", &stv, &sl) || sl != take || pd_msg_rd(&m, "res", &r) ||
            pd_rd_array(&r, &nres)) {
            /* An older broker sends no states: the jobs stay queued. */
            if (!pd_msg_has(&m, "st"))
                break;
            rc = s_fail(c, PD_EPROTO, "broker sent a malformed 'results' reply");
            break;
        }
        int bad = 0;
        size_t progress = 0;
        for (uint32_t i = 0; i < nres && !bad; i++) {
            size_t k = s_store(&r, order, n, results, &bad);
            *ended += k;
            progress += k;
        }
        if (bad) {
            rc = s_fail(c, PD_EPROTO, "broker sent a malformed result entry");
            break;
        }
        const uint8_t *st = stv;
        for (size_t k = 0, i = 0; k < take; k++) {
            while (i < n && order[i].id < pending[k])
                i++;
            for (; i < n && order[i].id == pending[k]; i++) {
                pd_result_t *res = &results[order[i].index];
                if (pd_job_state_final(res->state))
                    continue;
                /* A final state whose result the reply did not carry (over
                   its size, or a cancellation not on disk yet) is asked
                   again, as long as each pass brings something. */
                if (st[k] == PD_JOB_QUEUED || st[k] == PD_JOB_RUNNING) {
                    res->state = (pd_job_state_t) st[k];
                    told[i] = 1;
                    progress++;
                }
            }
        }
        if (progress == 0)
            break;
    }
    free(told);
    return rc;
}

long pd_fetch(pd_client_t *c, const uint64_t *ids, size_t n, int timeout_ms, pd_result_t *results,
              void (*progress)(size_t ended, size_t total, void *user), void *user)
{
    assert(c && (ids || n == 0) && (results || n == 0));
    if (n == 0)
        return 0;
    s_slot_t *order = malloc(n * sizeof *order);
    uint64_t *pending = malloc(n * sizeof *pending);
    if (!order || !pending) {
        free(order);
        free(pending);
        return s_fail(c, PD_ENOMEM, "out of memory for %zu results", n);
    }
    for (size_t i = 0; i < n; i++) {
        memset(&results[i], 0, sizeof results[i]);
        results[i].id = ids[i];
        results[i].state = PD_JOB_QUEUED;
        order[i] = (s_slot_t){ids[i], i};
    }
    qsort(order, n, sizeof *order, s_slot_cmp);
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : zclock_mono() + timeout_ms;
    size_t ended = 0;
    long rc = 0;
    for (;;) {
        /* Pending ids, in increasing order, unique. */
        size_t np = 0;
        for (size_t i = 0; i < n; i++)
            if (!pd_job_state_final(results[order[i].index].state) &&
                (np == 0 || pending[np - 1] != order[i].id))
                pending[np++] = order[i].id;
        if (np == 0)
            break;
        int64_t left = deadline == INT64_MAX ? 5000 : deadline - zclock_mono();
        if (left < 0)
            left = 0;
        if (left > 5000)
            left = 5000;
        msgpack_packer pk;
        uint64_t req = s_begin(c, &pk, "fetch", 3);
        pd_pack_kv_uint(&pk, "wait_ms", (uint64_t) left);
        pd_pack_kv_uint(&pk, "max", 10000);
        pd_pack_cstr(&pk, "ids");
        s_pack_ranges(&pk, pending, np, S_MAX_RANGES);
        pd_msg_t m;
        rc = s_call_idem(c, req, "results", &m, (int) left, c->timeout_ms);
        if (rc)
            break;
        pd_rd_t r;
        uint32_t nres;
        int bad = 0;
        if (pd_msg_rd(&m, "res", &r) || pd_rd_array(&r, &nres)) {
            rc = s_fail(c, PD_EPROTO, "broker sent a malformed 'results' reply");
            break;
        }
        for (uint32_t i = 0; i < nres && !bad; i++)
            ended += s_store(&r, order, n, results, &bad);
        if (bad) {
            rc = s_fail(c, PD_EPROTO, "broker sent a malformed result entry");
            break;
        }
        if (progress && nres)
            progress(ended, n, user);
        if (nres == 0 && zclock_mono() >= deadline)
            break;
    }
    if (rc == 0)
        rc = s_fetch_states(c, order, n, results, pending, &ended);
    free(order);
    free(pending);
    if (rc)
        return rc;
    /* A module that cannot run its function: the broker ended the batch at
       once (docs/broker.md); say it as one error, the worker's words. */
    for (size_t i = 0; i < n; i++) {
        const pd_result_t *r = &results[i];
        if (r->state == PD_JOB_FAILED && (r->code == PD_ECOMPILE || r->code == PD_ENOFUNC))
            return s_fail(c, r->code, "%s", r->error ? r->error : pd_strerror(r->code));
    }
    return (long) ended;
}

long pd_fetch_any(pd_client_t *c, const uint64_t *ids, size_t n, int timeout_ms,
                  pd_result_t *results, size_t max)
{
    assert(c && (ids || n == 0) && (results || max == 0));
    if (n == 0 || max == 0)
        return 0;
    if (max > PD_FETCH_ANY_MAX)
        max = PD_FETCH_ANY_MAX;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : zclock_mono() + timeout_ms;
    for (;;) {
        int64_t left = deadline == INT64_MAX ? 5000 : deadline - zclock_mono();
        if (left < 0)
            left = 0;
        if (left > 5000)
            left = 5000;
        msgpack_packer pk;
        uint64_t req = s_begin(c, &pk, "fetch", 3);
        pd_pack_kv_uint(&pk, "wait_ms", (uint64_t) left);
        pd_pack_kv_uint(&pk, "max", max);
        pd_pack_cstr(&pk, "ids");
        s_pack_ranges(&pk, ids, n, S_MAX_RANGES);
        pd_msg_t m;
        int rc = s_call_idem(c, req, "results", &m, (int) left, c->timeout_ms);
        if (rc)
            return rc;
        pd_rd_t r;
        uint32_t nres;
        if (pd_msg_rd(&m, "res", &r) || pd_rd_array(&r, &nres) || nres > max)
            return s_fail(c, PD_EPROTO, "broker sent a malformed 'results' reply");
        for (uint32_t i = 0; i < nres; i++) {
            memset(&results[i], 0, sizeof results[i]);
            if (s_parse_entry(&r, &results[i])) {
                pd_results_clear(results, i + 1);
                return s_fail(c, PD_EPROTO, "broker sent a malformed result entry");
            }
        }
        if (nres > 0 || zclock_mono() >= deadline)
            return (long) nres;
    }
}

void pd_results_clear(pd_result_t *results, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(results[i].value);
        free(results[i].error);
        memset(&results[i], 0, sizeof results[i]);
    }
}

int pd_result_double(const pd_result_t *r, double *x)
{
    if (r->state != PD_JOB_DONE || !r->value)
        return PD_EPROTO;
    pd_rd_t rd;
    pd_rd_init(&rd, r->value, r->len);
    return pd_rd_double(&rd, x) ? PD_EPROTO : 0;
}

/* ---- for the library's other files (pd_client_int.h) --------------------- */

uint64_t pd_client_begin(pd_client_t *c, msgpack_packer *pk, const char *t, uint32_t nfields)
{
    return s_begin(c, pk, t, nfields);
}

int pd_client_call(pd_client_t *c, uint64_t req, const char *want, pd_msg_t *m, int timeout_ms)
{
    return s_call(c, req, want, m, timeout_ms);
}

int pd_client_call_idem(pd_client_t *c, uint64_t req, const char *want, pd_msg_t *m, int wait_ms,
                        int budget_ms)
{
    return s_call_idem(c, req, want, m, wait_ms, budget_ms);
}

int pd_client_fail(pd_client_t *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    pd_log_debug("client: %s", c->err);
    return code;
}

int pd_client_timeout(const pd_client_t *c) { return c->timeout_ms; }
int pd_client_code_from_name(const char *name) { return s_code_from_name(name); }
