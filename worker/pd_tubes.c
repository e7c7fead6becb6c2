/*  pd_tubes: the tube transport of a node; see pd_tubes.h for the design
    (topics, credit, BYE).

    Edges are kept in two arrays sorted by (tube, peer), with a per-tube
    index of where each tube's edges start, so the edges of a tube are a
    slice and one edge is a binary search away. Each in-edge owns a ring of
    received messages (zmq_msg_t moved in, never copied) that holds at most
    the window the sender may have in flight; every message gets an arrival
    number so that a pop from any sender serves them in arrival order.

    All waiting happens in s_wait(): poll the SUB socket (and the XPUB when
    a send has to wait for room), then handle every message that arrived.
    Handling a message never blocks: an acknowledgement that cannot be sent
    at once is marked pending and retried at the next wait.
*/
#include "pd_tubes.h"
#include "pd_plat.h"
#include "pd_error.h"
#include "pd_log.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>
#include <zmq.h>

enum { S_DATA = 1, S_ACK = 2, S_ASK = 3, S_BYE = 4, S_BYEACK = 5 };

#define S_ACK_SIZE (PD_TUBES_HEADER + 16)
#define S_ALIGN 8 /* popped payloads start at a multiple of this */
#define S_DRAIN_EVERY 256 /* a push takes in arrived messages at least this often */
#define S_DRAIN_LOW 64    /* ... and this often when an edge has used 3/4 of its credit */
#define S_MAX_LINGER_MS 60000

/* A received message waiting to be popped. */
typedef struct {
    zmq_msg_t msg; /* the frame holding the payload (owned; every slot of a
                      ring stays initialised, empty when unused) */
    uint32_t off;  /* offset of the payload in msg */
    uint64_t seq;  /* arrival number on this node */
} s_item_t;

/* An out-edge: this node -> peer on tube. */
typedef struct {
    uint32_t tube;        /* tube index */
    uint32_t peer;        /* destination node */
    uint64_t sent_msgs;   /* messages sent on the edge */
    uint64_t sent_bytes;  /* payload bytes sent */
    uint64_t acked_msgs;  /* messages the peer has popped, as it last said */
    uint64_t acked_bytes; /* bytes likewise */
    bool asked;           /* an ASK went out since the last ACK */
} s_out_t;

/* An in-edge: peer -> this node on tube. */
typedef struct {
    uint32_t tube;        /* tube index */
    uint32_t peer;        /* source node */
    s_item_t *ring;       /* received, not yet popped (owned) */
    uint32_t cap;         /* capacity of ring */
    uint32_t head;        /* index of the oldest item */
    uint32_t len;         /* items in ring */
    uint64_t got_msgs;    /* messages received (checks the sender's numbering) */
    uint64_t used_msgs;   /* messages popped */
    uint64_t used_bytes;  /* bytes popped */
    uint64_t acked_msgs;  /* used_msgs as last acknowledged */
    uint64_t acked_bytes; /* used_bytes as last acknowledged */
    bool want_ack;        /* the sender said it waits for credit */
    bool ack_pending;     /* an ACK is due but could not be sent yet */
} s_in_t;

/* A neighbour: a node this one sends to or receives from. */
typedef struct {
    uint32_t peer;   /* its index */
    bool subscribed; /* its SUB is attached to our XPUB */
    bool finished;   /* it said BYE: nothing more comes from it */
    bool byeack_due; /* we owe it a BYEACK (it said BYE; the reply waits for room) */
    bool got_byeack; /* it confirmed our BYE: everything we sent before it arrived */
} s_nb_t;

struct pd_tubes {
    void *pub;               /* XPUB, bound (owned) */
    void *sub;               /* SUB, connected to the neighbours (owned) */
    uint32_t node;           /* this node's index */
    uint32_t n;              /* nodes in the task */
    char **names;            /* tube names (owned) */
    uint32_t ntubes;         /* entries in names */
    s_out_t *out;            /* out-edges sorted by (tube, peer) (owned) */
    uint32_t nout;           /* entries in out */
    s_in_t *in;              /* in-edges sorted by (tube, peer) (owned) */
    uint32_t nin;            /* entries in in */
    uint32_t *out_first;     /* ntubes + 1 entries: tube k's out-edges start here */
    uint32_t *in_first;      /* likewise for in-edges */
    s_nb_t *nb;              /* neighbours sorted by peer (owned) */
    uint32_t *nb_ids;        /* their indexes, for pd_tubes_neighbours (owned) */
    uint32_t nnb;            /* entries in nb */
    uint32_t window;         /* messages in flight per edge */
    uint64_t window_bytes;   /* bytes in flight per edge */
    uint32_t ack_every;      /* acknowledge after this many pops */
    uint64_t ack_every_bytes;/* or this many bytes */
    int timeout_ms;          /* push/pop time-out, 0 = none */
    uint64_t seq;            /* arrival counter */
    uint32_t pushes_since_drain; /* pushes since the SUB was last drained */
    int rcvtimeo;            /* the SUB's ZMQ_RCVTIMEO as last set */
    zmq_msg_t held;          /* the message the last pop returned (borrowed out) */
    zmq_msg_t rx;            /* receives the first frame of each message */
    zmq_msg_t rx_body;       /* receives the second frame, when there is one */
    bool msgs_ready;         /* held, rx and rx_body are initialised */
    uint8_t *aligned;        /* copy of a popped payload that was not aligned (owned) */
    size_t aligned_cap;      /* bytes allocated in aligned */
    bool closed;             /* BYE sent (or abandoned) */
    bool curve;              /* CurveZMQ on the XPUB (server) and the SUB (client) */
    char pub_key[41];        /* this node's public key (Z85), with curve */
    char endpoint[320];      /* where the XPUB is bound */
    char err[512];           /* last error */
    pd_tubes_stats_t stats;  /* counters */
};

/* Time-outs are in milliseconds: the coarse clock (a few ms of resolution)
   is enough, and costs far less than a precise one on a busy pop path. */
static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_fail(pd_tubes_t *t, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_fail(pd_tubes_t *t, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err, sizeof t->err, fmt, ap);
    va_end(ap);
    return code;
}

static void s_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) (v >> 24);
    p[1] = (uint8_t) (v >> 16);
    p[2] = (uint8_t) (v >> 8);
    p[3] = (uint8_t) v;
}

static uint32_t s_rd32(const uint8_t *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static void s_be64(uint8_t *p, uint64_t v)
{
    s_be32(p, (uint32_t) (v >> 32));
    s_be32(p + 4, (uint32_t) v);
}

static uint64_t s_rd64(const uint8_t *p) { return (uint64_t) s_rd32(p) << 32 | s_rd32(p + 4); }

static void s_be16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) (v >> 8);
    p[1] = (uint8_t) v;
}

static uint32_t s_rd16(const uint8_t *p) { return (uint32_t) p[0] << 8 | p[1]; }

/* The 8-byte header: [dst u16][kind u8][tube u8][src u16][seq u16]. */
static void s_header(uint8_t *h, uint32_t dst, int kind, uint32_t tube, uint32_t src,
                     uint32_t seq)
{
    s_be16(h, dst);
    h[2] = (uint8_t) kind;
    h[3] = (uint8_t) tube;
    s_be16(h + 4, src);
    s_be16(h + 6, seq & 0xffff);
}

/* ---- look-ups ----------------------------------------------------------- */

/* Tube names are short: a plain loop beats the library's vector strcmp,
   whose start-up cost showed in profiles of 8-byte pushes. */
static bool s_same(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

static int s_tube(const pd_tubes_t *t, const char *name)
{
    for (uint32_t i = 0; i < t->ntubes; i++)
        if (s_same(t->names[i], name))
            return (int) i;
    return -1;
}

static int s_cmp_edge(const void *a, const void *b)
{
    const pd_tubes_edge_t *x = a, *y = b;
    if (x->tube != y->tube)
        return x->tube < y->tube ? -1 : 1;
    return x->peer < y->peer ? -1 : x->peer > y->peer;
}

/* The index of out-edge (tube, peer) in t->out, or -1: a binary search in
   the tube's slice (sorted by peer). */
static int s_out_find(const pd_tubes_t *t, uint32_t tube, uint32_t peer)
{
    uint32_t lo = t->out_first[tube], hi = t->out_first[tube + 1], end = hi;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (t->out[mid].peer < peer)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < end && t->out[lo].peer == peer ? (int) lo : -1;
}

/* The same for in-edge (tube, peer) in t->in. */
static int s_in_find(const pd_tubes_t *t, uint32_t tube, uint32_t peer)
{
    uint32_t lo = t->in_first[tube], hi = t->in_first[tube + 1], end = hi;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (t->in[mid].peer < peer)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < end && t->in[lo].peer == peer ? (int) lo : -1;
}

static s_nb_t *s_nb(pd_tubes_t *t, uint32_t peer)
{
    uint32_t lo = 0, hi = t->nnb;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (t->nb[mid].peer < peer)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->nnb && t->nb[lo].peer == peer ? &t->nb[lo] : NULL;
}

/* ---- construction ------------------------------------------------------- */

static int s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

/* Copies and sorts edges, checking them; returns 0 or PD_EINVAL. */
static int s_copy_edges(pd_tubes_t *t, const pd_tubes_edge_t *src, uint32_t n, bool out,
                        pd_tubes_edge_t **dst, char *why, size_t whycap)
{
    *dst = malloc((n ? n : 1) * sizeof **dst);
    if (!*dst)
        return PD_ENOMEM;
    if (n)
        memcpy(*dst, src, n * sizeof **dst);
    qsort(*dst, n, sizeof **dst, s_cmp_edge);
    for (uint32_t i = 0; i < n; i++) {
        const pd_tubes_edge_t *e = &(*dst)[i];
        if (e->tube >= t->ntubes || e->peer >= t->n || e->peer == t->node
            || (i > 0 && s_cmp_edge(e, e - 1) == 0)) {
            snprintf(why, whycap, "node %u: %s-edge %u on tube %u is out of range, a "
                     "self-edge or a duplicate (%u nodes, %u tubes)", t->node,
                     out ? "out" : "in", e->peer, e->tube, t->n, t->ntubes);
            return PD_EINVAL;
        }
    }
    return 0;
}

/* Builds a per-tube start index over sorted edges. */
static uint32_t *s_index(const pd_tubes_edge_t *e, uint32_t n, uint32_t ntubes)
{
    uint32_t *first = malloc((ntubes + 1) * sizeof *first);
    if (!first)
        return NULL;
    uint32_t k = 0;
    for (uint32_t tube = 0; tube <= ntubes; tube++) {
        while (k < n && e[k].tube < tube)
            k++;
        first[tube] = k;
    }
    return first;
}

pd_tubes_t *pd_tubes_new(void *zctx, const pd_tubes_config_t *cfg, const char *addr, int *err,
                         char *why, size_t whycap)
{
    assert(zctx && cfg && addr);
    int dummy;
    char whybuf[8];
    if (!err)
        err = &dummy;
    if (!why) {
        why = whybuf;
        whycap = sizeof whybuf;
    }
    why[0] = 0;
    *err = PD_EINVAL;
    if (cfg->n == 0 || cfg->n > PD_TUBES_MAX_NODES || cfg->node >= cfg->n
        || cfg->ntubes > PD_TUBES_MAX_TUBES) {
        snprintf(why, whycap, "node %u of %u with %u tubes: out of range", cfg->node, cfg->n,
                 cfg->ntubes);
        return NULL;
    }
    pd_tubes_t *t = calloc(1, sizeof *t);
    pd_tubes_edge_t *out = NULL, *in = NULL;
    if (!t) {
        *err = PD_ENOMEM;
        return NULL;
    }
    t->node = cfg->node;
    t->n = cfg->n;
    t->ntubes = cfg->ntubes;
    t->window = cfg->window ? cfg->window : PD_TUBES_DEFAULT_WINDOW;
    t->window_bytes = cfg->window_bytes ? cfg->window_bytes : PD_TUBES_DEFAULT_WINDOW_BYTES;
    t->ack_every = t->window / 8 ? t->window / 8 : 1;
    t->ack_every_bytes = t->window_bytes / 4 ? t->window_bytes / 4 : 1;
    t->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 0;
    t->rcvtimeo = -1; /* ZeroMQ's default */
    zmq_msg_init(&t->held);
    zmq_msg_init(&t->rx);
    zmq_msg_init(&t->rx_body);
    t->msgs_ready = true;
    t->names = calloc(cfg->ntubes ? cfg->ntubes : 1, sizeof *t->names);
    if (!t->names)
        goto nomem;
    for (uint32_t i = 0; i < cfg->ntubes; i++) {
        size_t len = strlen(cfg->names[i]);
        if (len == 0 || len > PD_TUBES_MAX_NAME) {
            snprintf(why, whycap, "tube %u has an empty name or one longer than %d bytes", i,
                     PD_TUBES_MAX_NAME);
            goto fail;
        }
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(t->names[j], cfg->names[i]) == 0) {
                snprintf(why, whycap, "tube name '%s' appears twice", cfg->names[i]);
                goto fail;
            }
        if (!(t->names[i] = strdup(cfg->names[i])))
            goto nomem;
    }
    int rc;
    if ((rc = s_copy_edges(t, cfg->out, cfg->nout, true, &out, why, whycap))
        || (rc = s_copy_edges(t, cfg->in, cfg->nin, false, &in, why, whycap))) {
        *err = rc;
        goto fail_keep;
    }
    t->nout = cfg->nout;
    t->nin = cfg->nin;
    t->out = calloc(t->nout ? t->nout : 1, sizeof *t->out);
    t->in = calloc(t->nin ? t->nin : 1, sizeof *t->in);
    t->out_first = s_index(out, t->nout, t->ntubes);
    t->in_first = s_index(in, t->nin, t->ntubes);
    uint32_t *peers = malloc((t->nout + t->nin + 1) * sizeof *peers);
    if (!t->out || !t->in || !t->out_first || !t->in_first || !peers) {
        free(peers);
        goto nomem;
    }
    uint32_t np = 0;
    for (uint32_t i = 0; i < t->nout; i++) {
        t->out[i].tube = out[i].tube;
        t->out[i].peer = out[i].peer;
        peers[np++] = out[i].peer;
    }
    for (uint32_t i = 0; i < t->nin; i++) {
        t->in[i].tube = in[i].tube;
        t->in[i].peer = in[i].peer;
        peers[np++] = in[i].peer;
    }
    qsort(peers, np, sizeof *peers, s_cmp_u32);
    t->nb = calloc(np ? np : 1, sizeof *t->nb);
    t->nb_ids = calloc(np ? np : 1, sizeof *t->nb_ids);
    if (!t->nb || !t->nb_ids) {
        free(peers);
        goto nomem;
    }
    for (uint32_t i = 0; i < np; i++)
        if (t->nnb == 0 || t->nb_ids[t->nnb - 1] != peers[i]) {
            t->nb[t->nnb].peer = peers[i];
            t->nb_ids[t->nnb++] = peers[i];
        }
    free(peers);
    free(out);
    free(in);
    out = in = NULL;

    /* Sockets. With credit, at most `window` data messages per tube and a
       few acknowledgements and requests sit in one peer's queue: the
       high-water marks are above that, so they are never reached; were
       they, XPUB_NODROP makes a send wait instead of dropping. */
    t->pub = zmq_socket(zctx, ZMQ_XPUB);
    t->sub = zmq_socket(zctx, ZMQ_SUB);
    if (!t->pub || !t->sub) {
        snprintf(why, whycap, "cannot create ZeroMQ sockets: %s", zmq_strerror(zmq_errno()));
        *err = PD_ESYS;
        goto fail_keep;
    }
    uint64_t hwm64 = (uint64_t) (t->ntubes ? t->ntubes : 1) * ((uint64_t) t->window + 8) + 64;
    int hwm = hwm64 > INT_MAX ? INT_MAX : (int) hwm64, one = 1, zero = 0;
    int64_t maxmsg = (int64_t) PD_TUBES_MAX_MSG + 64;
    uint8_t topic[2];
    s_be16(topic, t->node);
    if (zmq_setsockopt(t->pub, ZMQ_SNDHWM, &hwm, sizeof hwm)
        || zmq_setsockopt(t->pub, ZMQ_RCVHWM, &hwm, sizeof hwm)
        || zmq_setsockopt(t->pub, ZMQ_XPUB_NODROP, &one, sizeof one)
        || zmq_setsockopt(t->pub, ZMQ_LINGER, &zero, sizeof zero)
        || zmq_setsockopt(t->sub, ZMQ_RCVHWM, &hwm, sizeof hwm)
        || zmq_setsockopt(t->sub, ZMQ_SNDHWM, &hwm, sizeof hwm)
        || zmq_setsockopt(t->sub, ZMQ_LINGER, &zero, sizeof zero)
        || zmq_setsockopt(t->sub, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg)
        || zmq_setsockopt(t->pub, ZMQ_IPV6, &one, sizeof one)
        || zmq_setsockopt(t->sub, ZMQ_IPV6, &one, sizeof one)
        || zmq_setsockopt(t->sub, ZMQ_SUBSCRIBE, topic, sizeof topic)) {
        snprintf(why, whycap, "cannot set socket options: %s", zmq_strerror(zmq_errno()));
        *err = PD_ESYS;
        goto fail_keep;
    }
    if (cfg->curve) {
        /* One key pair for this node alone, for both sockets. */
        char sec[41];
        if (zmq_curve_keypair(t->pub_key, sec) != 0
            || zmq_setsockopt(t->pub, ZMQ_CURVE_SERVER, &one, sizeof one)
            || zmq_setsockopt(t->pub, ZMQ_CURVE_SECRETKEY, sec, 40)
            || zmq_setsockopt(t->sub, ZMQ_CURVE_PUBLICKEY, t->pub_key, 40)
            || zmq_setsockopt(t->sub, ZMQ_CURVE_SECRETKEY, sec, 40)) {
            sodium_memzero(sec, sizeof sec);
            snprintf(why, whycap, "cannot set up CurveZMQ on the tubes: %s",
                     zmq_strerror(zmq_errno()));
            *err = PD_ESYS;
            goto fail_keep;
        }
        sodium_memzero(sec, sizeof sec);
        t->curve = true;
    }
    char ep[300];
    snprintf(ep, sizeof ep, "tcp://%s:*", addr);
    if (zmq_bind(t->pub, ep) != 0) {
        snprintf(why, whycap, "cannot bind %s: %s (check the worker's --node-addr)", ep, zmq_strerror(zmq_errno()));
        *err = PD_EIO;
        goto fail_keep;
    }
    size_t len = sizeof t->endpoint;
    if (zmq_getsockopt(t->pub, ZMQ_LAST_ENDPOINT, t->endpoint, &len) != 0)
        snprintf(t->endpoint, sizeof t->endpoint, "%s", ep);
    *err = 0;
    return t;
nomem:
    *err = PD_ENOMEM;
    snprintf(why, whycap, "out of memory");
    goto fail_keep;
fail:
    *err = PD_EINVAL;
fail_keep:
    free(out);
    free(in);
    pd_tubes_destroy(&t);
    return NULL;
}

void pd_tubes_destroy(pd_tubes_t **p)
{
    if (!p || !*p)
        return;
    pd_tubes_t *t = *p;
    if (t->pub && t->sub)
        pd_tubes_close(t);
    /* Linger 0: pd_tubes_close() already made sure that what matters
       arrived (a message queued to a peer that is gone would otherwise
       hold zmq_ctx_term for the whole linger). */
    if (t->pub)
        zmq_close(t->pub);
    if (t->sub)
        zmq_close(t->sub);
    if (t->msgs_ready) {
        zmq_msg_close(&t->held);
        zmq_msg_close(&t->rx);
        zmq_msg_close(&t->rx_body);
    }
    free(t->aligned);
    for (uint32_t i = 0; t->in && i < t->nin; i++) {
        s_in_t *e = &t->in[i];
        for (uint32_t k = 0; k < e->cap; k++)
            zmq_msg_close(&e->ring[k].msg);
        free(e->ring);
    }
    for (uint32_t i = 0; t->names && i < t->ntubes; i++)
        free(t->names[i]);
    free(t->names);
    free(t->out);
    free(t->in);
    free(t->out_first);
    free(t->in_first);
    free(t->nb);
    free(t->nb_ids);
    free(t);
    *p = NULL;
}

const char *pd_tubes_endpoint(const pd_tubes_t *t) { return t->endpoint; }
const char *pd_tubes_key(const pd_tubes_t *t) { return t->curve ? t->pub_key : NULL; }
const char *pd_tubes_error(const pd_tubes_t *t) { return t->err; }
void pd_tubes_stats(const pd_tubes_t *t, pd_tubes_stats_t *out) { *out = t->stats; }
void pd_tubes_set_timeout(pd_tubes_t *t, int timeout_ms) { t->timeout_ms = timeout_ms > 0 ? timeout_ms : 0; }
int pd_tubes_timeout(const pd_tubes_t *t) { return t->timeout_ms; }

const uint32_t *pd_tubes_neighbours(const pd_tubes_t *t, uint32_t *n)
{
    *n = t->nnb;
    return t->nb_ids;
}

/* ---- rendezvous --------------------------------------------------------- */

int pd_tubes_connect(pd_tubes_t *t, uint32_t peer, const char *endpoint, const char *key)
{
    if (!s_nb(t, peer))
        return s_fail(t, PD_EINVAL, "node %u is not a neighbour of node %u", peer, t->node);
    if (t->curve) {
        uint8_t raw[32];
        /* The server key is read when the connection is made: set per peer. */
        if (!key || strlen(key) != 40 || !zmq_z85_decode(raw, key)
            || zmq_setsockopt(t->sub, ZMQ_CURVE_SERVERKEY, key, 40) != 0)
            return s_fail(t, PD_EINVAL, "node %u cannot connect to node %u: %s", t->node, peer,
                          key ? "its CurveZMQ key is not 40 characters of Z85"
                              : "its tubes run without CurveZMQ, this node's with");
    }
    if (zmq_connect(t->sub, endpoint) != 0)
        return s_fail(t, PD_EINVAL, "node %u cannot connect to node %u at '%s': %s", t->node,
                      peer, endpoint, zmq_strerror(zmq_errno()));
    return 0;
}

int pd_tubes_wait_subscribed(pd_tubes_t *t, int timeout_ms)
{
    int64_t deadline = s_now_ms() + timeout_ms;
    uint32_t missing = 0;
    for (uint32_t i = 0; i < t->nnb; i++)
        missing += !t->nb[i].subscribed;
    while (missing > 0) {
        int64_t left = deadline - s_now_ms();
        if (left < 0)
            left = 0;
        zmq_pollitem_t it = {.socket = t->pub, .events = ZMQ_POLLIN};
        int rc = zmq_poll(&it, 1, (long) left);
        if (rc < 0 && zmq_errno() == EINTR)
            continue;
        if (rc < 0)
            return s_fail(t, PD_ESYS, "poll failed: %s", zmq_strerror(zmq_errno()));
        if (rc == 0) {
            char list[256] = "";
            size_t k = 0;
            for (uint32_t i = 0; i < t->nnb && k + 12 < sizeof list; i++)
                if (!t->nb[i].subscribed)
                    k += (size_t) snprintf(list + k, sizeof list - k, "%s%u", k ? ", " : "",
                                           t->nb[i].peer);
            return s_fail(t, PD_ETIMEDOUT, "neighbours %s did not connect within %d ms", list,
                          timeout_ms);
        }
        uint8_t buf[8];
        int n;
        while ((n = zmq_recv(t->pub, buf, sizeof buf, ZMQ_DONTWAIT)) >= 0) {
            if (n != 3 || buf[0] != 1)
                continue; /* an unsubscription, or not ours */
            s_nb_t *nb = s_nb(t, s_rd16(buf + 1));
            if (nb && !nb->subscribed) {
                nb->subscribed = true;
                missing--;
            }
        }
    }
    return 0;
}

/* ---- receiving ---------------------------------------------------------- */

/* Sends a one-frame control message; returns 0, 1 when the queue is full
   (try later), or PD_ESYS. */
static int s_send_ctl(pd_tubes_t *t, uint32_t dst, int kind, uint32_t tube, const void *extra,
                      size_t extralen)
{
    uint8_t buf[PD_TUBES_HEADER + 16];
    assert(extralen <= 16);
    s_header(buf, dst, kind, tube, t->node, 0);
    if (extralen)
        memcpy(buf + PD_TUBES_HEADER, extra, extralen);
    if (zmq_send(t->pub, buf, PD_TUBES_HEADER + extralen, ZMQ_DONTWAIT) >= 0)
        return 0;
    return zmq_errno() == EAGAIN ? 1 : PD_ESYS;
}

static void s_ack(pd_tubes_t *t, s_in_t *e)
{
    uint8_t extra[16];
    s_be64(extra, e->used_msgs);
    s_be64(extra + 8, e->used_bytes);
    if (s_send_ctl(t, e->peer, S_ACK, e->tube, extra, sizeof extra) == 0) {
        e->acked_msgs = e->used_msgs;
        e->acked_bytes = e->used_bytes;
        e->want_ack = e->ack_pending = false;
        t->stats.acks_sent++;
    } else {
        e->ack_pending = true;
    }
}

static int s_enqueue(pd_tubes_t *t, s_in_t *e, zmq_msg_t *msg, uint32_t off)
{
    if (e->len == e->cap) {
        /* The sender may have `window` messages in flight, or one larger
           than window_bytes alone: a ring of window + 1 always suffices. */
        if (e->cap > t->window)
            return s_fail(t, PD_EPROTO, "node %u sent more than its window of %u messages on "
                          "tube '%s'", e->peer, t->window, t->names[e->tube]);
        uint32_t cap = e->cap ? e->cap * 2 : 16;
        if (cap > t->window + 1)
            cap = t->window + 1;
        s_item_t *ring = malloc(cap * sizeof *ring);
        if (!ring)
            return s_fail(t, PD_ENOMEM, "out of memory for received messages");
        for (uint32_t k = 0; k < cap; k++)
            zmq_msg_init(&ring[k].msg);
        for (uint32_t k = 0; k < e->len; k++) {
            s_item_t *old = &e->ring[(e->head + k) % e->cap];
            zmq_msg_move(&ring[k].msg, &old->msg);
            ring[k].off = old->off;
            ring[k].seq = old->seq;
        }
        for (uint32_t k = 0; k < e->cap; k++)
            zmq_msg_close(&e->ring[k].msg);
        free(e->ring);
        e->ring = ring;
        e->cap = cap;
        e->head = 0;
    }
    s_item_t *it = &e->ring[(e->head + e->len) % e->cap];
    zmq_msg_move(&it->msg, msg); /* msg is left empty, ready for the next receive */
    it->off = off;
    it->seq = t->seq++;
    e->len++;
    return 0;
}

/* Receives and handles one message (flags: ZMQ_DONTWAIT, or 0 to wait up to
   the SUB's receive time-out). Returns 1 when one was handled, 0 when none
   came, or a PD_E* code. */
static int s_recv_one(pd_tubes_t *t, int flags)
{
    /* Received into the tubes' own messages: each receive releases what
       they held, a data frame is moved from them into its ring. */
    zmq_msg_t *m = &t->rx, *body = &t->rx_body;
    if (zmq_msg_recv(m, t->sub, flags) < 0) {
        int e = zmq_errno();
        if (e == EAGAIN || e == EINTR)
            return 0;
        return s_fail(t, PD_ESYS, "receive failed: %s", zmq_strerror(e));
    }
    bool two = zmq_msg_more(m);
    int rc = 1;
    if (two) {
        /* The rest of a multipart message is already here: no wait. */
        if (zmq_msg_recv(body, t->sub, 0) < 0 || zmq_msg_more(body)) {
            while (zmq_msg_more(body) && zmq_msg_recv(body, t->sub, 0) >= 0)
                ;
            rc = s_fail(t, PD_EPROTO, "received a message of more than two frames");
            goto done;
        }
    }
    size_t size = zmq_msg_size(m);
    const uint8_t *h = zmq_msg_data(m);
    if (size < PD_TUBES_HEADER || s_rd16(h) != t->node) {
        pd_log_warn("node %u: dropped a message of %zu bytes with a bad header", t->node, size);
        goto done;
    }
    int kind = h[2];
    uint32_t tube = h[3], src = s_rd16(h + 4), seq = s_rd16(h + 6);
    if (kind == S_BYE || kind == S_BYEACK) {
        s_nb_t *nb = s_nb(t, src);
        if (nb && kind == S_BYEACK) {
            nb->got_byeack = true;
        } else if (nb) {
            /* Everything it sent came before this. Confirm, so that it may
               close without waiting for a linger. */
            nb->finished = true;
            nb->byeack_due = s_send_ctl(t, src, S_BYEACK, 0, NULL, 0) != 0;
        }
        goto done;
    }
    if (tube >= t->ntubes) {
        pd_log_warn("node %u: dropped a message from node %u for tube %u of %u", t->node, src,
                    tube, t->ntubes);
        goto done;
    }
    if (kind == S_DATA) {
        int k = s_in_find(t, tube, src);
        if (k < 0) {
            rc = s_fail(t, PD_EPROTO, "got data on tube '%s' from node %u, which has no edge "
                        "to this node", t->names[tube], src);
            goto done;
        }
        s_in_t *e = &t->in[k];
        if (seq != (e->got_msgs & 0xffff)) {
            rc = s_fail(t, PD_EPROTO, "message %u (mod 65536) of node %u on tube '%s' arrived "
                        "where %u was due: messages were lost", seq, src, t->names[tube],
                        (uint32_t) (e->got_msgs & 0xffff));
            goto done;
        }
        e->got_msgs++;
        int q = two ? s_enqueue(t, e, body, 0) : s_enqueue(t, e, m, PD_TUBES_HEADER);
        if (q)
            rc = q;
    } else if (kind == S_ACK && size == S_ACK_SIZE) {
        int k = s_out_find(t, tube, src);
        if (k >= 0) {
            s_out_t *e = &t->out[k];
            uint64_t msgs = s_rd64(h + PD_TUBES_HEADER), bytes = s_rd64(h + PD_TUBES_HEADER + 8);
            if (msgs > e->acked_msgs && msgs <= e->sent_msgs)
                e->acked_msgs = msgs;
            if (bytes > e->acked_bytes && bytes <= e->sent_bytes)
                e->acked_bytes = bytes;
            e->asked = false;
        }
    } else if (kind == S_ASK) {
        int k = s_in_find(t, tube, src);
        if (k >= 0) {
            s_in_t *e = &t->in[k];
            e->want_ack = true;
            if (e->used_msgs > e->acked_msgs)
                s_ack(t, e);
        }
    } else {
        pd_log_warn("node %u: dropped a message of unknown kind %d from node %u", t->node, kind,
                    src);
    }
done:
    return rc;
}

/* With timeout_ms 0: handles every message waiting, without blocking.
   Otherwise: waits up to timeout_ms (-1: no limit) for one message and
   handles it; a blocking receive with a time-out costs libzmq fewer system
   calls than a poll between non-blocking receives, and when messages are
   queued it returns at once. When a send waits for room (retry_soon), or an
   acknowledgement could not be sent, the wait is cut to 1 ms so that it is
   retried soon (ZeroMQ reports an XPUB always writable, so polling for room
   would spin). Returns the number handled, or a PD_E* code. */
static int s_wait(pd_tubes_t *t, long timeout_ms, bool retry_soon)
{
    for (uint32_t i = 0; i < t->nin; i++)
        if (t->in[i].ack_pending) {
            s_ack(t, &t->in[i]);
            retry_soon |= t->in[i].ack_pending;
        }
    for (uint32_t i = 0; i < t->nnb; i++)
        if (t->nb[i].byeack_due) {
            t->nb[i].byeack_due = s_send_ctl(t, t->nb[i].peer, S_BYEACK, 0, NULL, 0) != 0;
            retry_soon |= t->nb[i].byeack_due;
        }
    if (timeout_ms == 0) {
        int handled = 0, rc;
        while ((rc = s_recv_one(t, ZMQ_DONTWAIT)) == 1)
            handled++;
        return rc < 0 ? rc : handled;
    }
    if (retry_soon && (timeout_ms < 0 || timeout_ms > 1))
        timeout_ms = 1;
    int rcvtimeo = timeout_ms < 0 ? -1 : timeout_ms > INT_MAX ? INT_MAX : (int) timeout_ms;
    if (rcvtimeo != t->rcvtimeo) {
        if (zmq_setsockopt(t->sub, ZMQ_RCVTIMEO, &rcvtimeo, sizeof rcvtimeo))
            return s_fail(t, PD_ESYS, "cannot set the receive time-out: %s",
                          zmq_strerror(zmq_errno()));
        t->rcvtimeo = rcvtimeo;
    }
    return s_recv_one(t, 0);
}

/* A deadline not yet computed: the clock is read only when a push or pop
   has to wait (S_UNSET is replaced by now + time-out at the first wait). */
#define S_UNSET INT64_MIN

static void s_arm(int64_t *deadline, int timeout_ms)
{
    if (*deadline == S_UNSET)
        *deadline = timeout_ms > 0 ? s_now_ms() + timeout_ms : -1;
}

/* Milliseconds left to a deadline (-1: none), never negative. */
static long s_left(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - s_now_ms();
    return left > 0 ? (long) left : 0;
}

/* ---- pushing ------------------------------------------------------------ */

/* Waits until edge e may carry len more bytes. Returns 0, 1 when its peer
   has finished (discard), or PD_ETIMEDOUT / another code. */
static int s_wait_credit(pd_tubes_t *t, s_out_t *e, size_t len, int64_t *deadline)
{
    bool waited = false;
    for (;;) {
        s_nb_t *nb = s_nb(t, e->peer);
        if (nb->finished)
            return 1;
        uint64_t msgs = e->sent_msgs - e->acked_msgs, bytes = e->sent_bytes - e->acked_bytes;
        if (msgs == 0 || (msgs < t->window && bytes + len <= t->window_bytes))
            return 0;
        if (!waited) {
            waited = true;
            t->stats.waits++;
        }
        if (!e->asked) {
            int rc = s_send_ctl(t, e->peer, S_ASK, e->tube, NULL, 0);
            if (rc < 0)
                return s_fail(t, rc, "send failed: %s", zmq_strerror(zmq_errno()));
            if (rc == 0) {
                e->asked = true;
                t->stats.asks_sent++;
            }
        }
        s_arm(deadline, t->timeout_ms);
        long left = s_left(*deadline);
        if (left == 0)
            return s_fail(t, PD_ETIMEDOUT, "push on tube '%s' to node %u timed out after %d ms: "
                          "node %u has not popped the %llu messages (%llu bytes) sent before "
                          "(the window is %u messages, %llu bytes)", t->names[e->tube], e->peer,
                          t->timeout_ms, e->peer,
                          (unsigned long long) msgs, (unsigned long long) bytes, t->window,
                          (unsigned long long) t->window_bytes);
        int rc = s_wait(t, left, false);
        if (rc < 0)
            return rc;
    }
}

/* Sends [header][payload] to e's peer: inline when small (data != NULL),
   else as two frames sharing *shared. Waits for queue room until the
   deadline. Returns 0 or a PD_E* code. */
static int s_send_data(pd_tubes_t *t, s_out_t *e, const void *data, size_t len,
                       zmq_msg_t *shared, int64_t *deadline)
{
    for (;;) {
        int rc;
        if (!shared) {
            zmq_msg_t m;
            if (zmq_msg_init_size(&m, PD_TUBES_HEADER + len))
                return s_fail(t, PD_ENOMEM, "out of memory for a message of %zu bytes", len);
            uint8_t *p = zmq_msg_data(&m);
            s_header(p, e->peer, S_DATA, e->tube, t->node, (uint32_t) e->sent_msgs);
            if (len)
                memcpy(p + PD_TUBES_HEADER, data, len);
            rc = zmq_msg_send(&m, t->pub, ZMQ_DONTWAIT);
            if (rc < 0)
                zmq_msg_close(&m);
        } else {
            uint8_t h[PD_TUBES_HEADER];
            s_header(h, e->peer, S_DATA, e->tube, t->node, (uint32_t) e->sent_msgs);
            rc = zmq_send(t->pub, h, sizeof h, ZMQ_DONTWAIT | ZMQ_SNDMORE);
            if (rc >= 0) {
                /* The first frame went: the rest of a multipart always goes. */
                zmq_msg_t copy;
                zmq_msg_init(&copy);
                zmq_msg_copy(&copy, shared);
                rc = zmq_msg_send(&copy, t->pub, 0);
                if (rc < 0) {
                    zmq_msg_close(&copy);
                    return s_fail(t, PD_ESYS, "send failed: %s", zmq_strerror(zmq_errno()));
                }
            }
        }
        if (rc >= 0)
            return 0;
        if (zmq_errno() != EAGAIN && zmq_errno() != EINTR)
            return s_fail(t, PD_ESYS, "send failed: %s", zmq_strerror(zmq_errno()));
        s_arm(deadline, t->timeout_ms);
        long left = s_left(*deadline);
        if (left == 0)
            return s_fail(t, PD_ETIMEDOUT, "push on tube '%s' to node %u timed out after %d ms: "
                          "its queue stayed full", t->names[e->tube], e->peer, t->timeout_ms);
        if ((rc = s_wait(t, left, true)) < 0)
            return rc;
    }
}

int pd_tubes_push(pd_tubes_t *t, const char *tube, int dst, const void *data, size_t len)
{
    assert(t && tube && (data || len == 0));
    int k = s_tube(t, tube);
    if (k < 0)
        return s_fail(t, PD_EINVAL, "push on '%s': the task has no tube of that name", tube);
    uint32_t lo = t->out_first[k], hi = t->out_first[k + 1];
    if (lo == hi)
        return s_fail(t, PD_EINVAL, "push on tube '%s': the graph gives node %u no out-edge "
                      "on it", tube, t->node);
    if (dst >= 0) {
        int e = s_out_find(t, (uint32_t) k, (uint32_t) dst);
        if (e < 0)
            return s_fail(t, PD_EINVAL, "push on tube '%s' to node %d: the graph has no edge "
                          "%u -> %d on it", tube, dst, t->node, dst);
        lo = (uint32_t) e;
        hi = lo + 1;
    }
    if (len > PD_TUBES_MAX_MSG)
        return s_fail(t, PD_ETOOBIG, "push of %zu bytes on tube '%s': the limit is %u bytes "
                      "per message", len, tube, PD_TUBES_MAX_MSG);
    if (t->closed)
        return s_fail(t, PD_EINVAL, "push after the tubes were closed");
    int64_t deadline = S_UNSET;
    /* Take in what arrived (acknowledgements above all) before sending when
       credit runs low, and every S_DRAIN_EVERY pushes anyway, so that a
       sender that never waits keeps its queues short. Not at every push: an
       empty non-blocking receive costs libzmq two system calls. */
    bool low = false;
    for (uint32_t i = lo; i < hi && !low; i++)
        low = 4 * (t->out[i].sent_msgs - t->out[i].acked_msgs) >= 3 * (uint64_t) t->window
              || 4 * (t->out[i].sent_bytes - t->out[i].acked_bytes + len)
                     >= 3 * t->window_bytes;
    int rc = 0;
    ++t->pushes_since_drain;
    if (t->pushes_since_drain >= (low ? S_DRAIN_LOW : S_DRAIN_EVERY)) {
        t->pushes_since_drain = 0;
        if ((rc = s_wait(t, 0, false)) < 0)
            return rc;
        rc = 0;
    }
    zmq_msg_t shared;
    bool use_shared = len > PD_TUBES_INLINE;
    if (use_shared) {
        if (zmq_msg_init_size(&shared, len))
            return s_fail(t, PD_ENOMEM, "out of memory for a message of %zu bytes", len);
        memcpy(zmq_msg_data(&shared), data, len);
    }
    for (uint32_t i = lo; i < hi && rc == 0; i++) {
        s_out_t *e = &t->out[i];
        rc = s_wait_credit(t, e, len, &deadline);
        if (rc == 1) {
            t->stats.discarded++;
            pd_log_debug("node %u: push on tube '%s' to node %u discarded: it has finished",
                         t->node, tube, e->peer);
            rc = 0;
            continue;
        }
        if (rc == 0)
            rc = s_send_data(t, e, data, len, use_shared ? &shared : NULL, &deadline);
        if (rc == 0) {
            e->sent_msgs++;
            e->sent_bytes += len;
            t->stats.pushed++;
        }
    }
    if (use_shared)
        zmq_msg_close(&shared);
    return rc;
}

/* ---- popping ------------------------------------------------------------ */

/* Takes the oldest message of in-edge e into t->held (or, when ZeroMQ
   handed it at an address not aligned for doubles, into a copy). Returns 0
   or PD_ENOMEM (which fails the node: the message cannot be delivered). */
static int s_take(pd_tubes_t *t, s_in_t *e, const void **data, size_t *len, uint32_t *from)
{
    s_item_t *it = &e->ring[e->head];
    uint32_t off = it->off;
    zmq_msg_move(&t->held, &it->msg); /* releases the previous one; the slot stays usable */
    e->head = (e->head + 1) % e->cap;
    e->len--;
    /* Only now is the address known: a very small message keeps its bytes
       inside the zmq_msg_t itself. */
    size_t n = zmq_msg_size(&t->held) - off;
    const uint8_t *p = (const uint8_t *) zmq_msg_data(&t->held) + off;
    if ((uintptr_t) p % S_ALIGN != 0) {
        /* Zero-copy receive may place a frame anywhere in a shared buffer. */
        if (n > t->aligned_cap) {
            size_t cap = n < 4096 ? 4096 : n;
            uint8_t *a = malloc(cap);
            if (!a)
                return s_fail(t, PD_ENOMEM, "out of memory for a message of %zu bytes", n);
            free(t->aligned);
            t->aligned = a;
            t->aligned_cap = cap;
        }
        memcpy(t->aligned, p, n);
        p = t->aligned;
    }
    *data = p;
    *len = n;
    if (from)
        *from = e->peer;
    e->used_msgs++;
    e->used_bytes += n;
    t->stats.popped++;
    if (e->want_ack || e->used_msgs - e->acked_msgs >= t->ack_every
        || e->used_bytes - e->acked_bytes >= t->ack_every_bytes)
        s_ack(t, e);
    return 0;
}

int pd_tubes_pop(pd_tubes_t *t, const char *tube, int src, int timeout_ms, bool wait,
                 const void **data, size_t *len, uint32_t *from)
{
    assert(t && tube && data && len);
    int k = s_tube(t, tube);
    if (k < 0)
        return s_fail(t, PD_EINVAL, "pop on '%s': the task has no tube of that name", tube);
    uint32_t lo = t->in_first[k], hi = t->in_first[k + 1];
    if (lo == hi)
        return s_fail(t, PD_EINVAL, "pop on tube '%s': the graph gives node %u no in-edge on "
                      "it", tube, t->node);
    if (src >= 0) {
        int e = s_in_find(t, (uint32_t) k, (uint32_t) src);
        if (e < 0)
            return s_fail(t, PD_EINVAL, "pop on tube '%s' from node %d: the graph has no edge "
                          "%d -> %u on it", tube, src, src, t->node);
        lo = (uint32_t) e;
        hi = lo + 1;
    }
    if (timeout_ms < 0)
        timeout_ms = t->timeout_ms;
    int64_t deadline = S_UNSET;
    bool looked = false; /* the SUB was drained at least once in this call */
    for (;;) {
        s_in_t *best = NULL;
        for (uint32_t i = lo; i < hi; i++) {
            s_in_t *e = &t->in[i];
            if (e->len && (!best || e->ring[e->head].seq < best->ring[best->head].seq))
                best = e;
        }
        if (best)
            return s_take(t, best, data, len, from);
        bool all_finished = true;
        for (uint32_t i = lo; i < hi && all_finished; i++)
            all_finished = s_nb(t, t->in[i].peer)->finished;
        if (all_finished) {
            char who[64];
            if (hi - lo == 1)
                snprintf(who, sizeof who, "node %u", t->in[lo].peer);
            else
                snprintf(who, sizeof who, "all %u nodes that send on it", hi - lo);
            return s_fail(t, PD_EPEER, "pop on tube '%s': %s finished without pushing more",
                          tube, who);
        }
        if (deadline == S_UNSET)
            deadline = timeout_ms > 0 ? s_now_ms() + timeout_ms : (wait ? -1 : 0);
        long left = s_left(deadline);
        if (left == 0 && looked) {
            if (!wait)
                return PD_ETIMEDOUT;
            char who[64];
            if (hi - lo == 1)
                snprintf(who, sizeof who, "node %u", t->in[lo].peer);
            else
                snprintf(who, sizeof who, "any of its %u senders", hi - lo);
            return s_fail(t, PD_ETIMEDOUT, "pop on tube '%s' timed out after %d ms (nothing came "
                          "from %s)", tube, timeout_ms, who);
        }
        int rc = s_wait(t, left, false);
        if (rc < 0)
            return rc;
        looked = true;
    }
}

/* ---- degrees ------------------------------------------------------------ */

int pd_tubes_in_peers(const pd_tubes_t *t, const char *tube, int *peers, int cap)
{
    int k = s_tube(t, tube);
    if (k < 0)
        return -1;
    int n = 0;
    for (uint32_t i = t->in_first[k]; i < t->in_first[k + 1]; i++, n++)
        if (peers && n < cap)
            peers[n] = (int) t->in[i].peer;
    return n;
}

int pd_tubes_out_peers(const pd_tubes_t *t, const char *tube, int *peers, int cap)
{
    int k = s_tube(t, tube);
    if (k < 0)
        return -1;
    int n = 0;
    for (uint32_t i = t->out_first[k]; i < t->out_first[k + 1]; i++, n++)
        if (peers && n < cap)
            peers[n] = (int) t->out[i].peer;
    return n;
}

void pd_tubes_abandon(pd_tubes_t *t) { t->closed = true; }

void pd_tubes_close(pd_tubes_t *t)
{
    if (t->closed)
        return;
    t->closed = true;
    /* BYE to every neighbour still running, then wait until each has
       confirmed it (BYEACK: all we sent before arrived) or has finished
       itself, at most the time-out (60 s when there is none). */
    int wait_ms = t->timeout_ms > 0 && t->timeout_ms < S_MAX_LINGER_MS ? t->timeout_ms
                                                                       : S_MAX_LINGER_MS;
    int64_t deadline = s_now_ms() + wait_ms;
    if (s_wait(t, 0, false) < 0)
        return;
    bool *sent = calloc(t->nnb ? t->nnb : 1, sizeof *sent);
    if (!sent)
        return;
    for (;;) {
        uint32_t waiting = 0;
        for (uint32_t i = 0; i < t->nnb; i++) {
            s_nb_t *nb = &t->nb[i];
            if (nb->finished || nb->got_byeack || !nb->subscribed)
                continue; /* done, or never joined: nothing of ours can reach it */
            if (!sent[i]) {
                int rc = s_send_ctl(t, nb->peer, S_BYE, 0, NULL, 0);
                if (rc < 0)
                    goto out;
                sent[i] = rc == 0;
            }
            waiting++;
        }
        bool owed = false;
        for (uint32_t i = 0; i < t->nnb; i++)
            owed |= t->nb[i].byeack_due;
        if ((waiting == 0 && !owed) || s_left(deadline) == 0)
            break;
        if (s_wait(t, s_left(deadline), waiting == 0 || owed) < 0)
            break;
    }
out:
    if (s_left(deadline) == 0)
        pd_log_warn("node %u: neighbours did not confirm the end of its messages within %d ms",
                    t->node, wait_ms);
    free(sent);
}
