/*  pd_tubes: one node's end of the tubes of a synchronous task.

    A synchronous task is N nodes joined by a directed graph of named tubes;
    each edge (tube, src, dst) carries the messages src pushes on that tube to
    dst. Data goes node to node over ZeroMQ PUB/SUB, never through the broker:

      * every node binds one XPUB socket on its worker's address and
        connects one SUB socket to the XPUB of each neighbour (a node it
        sends to or receives from), subscribing to the one topic that is its
        own index, so each message reaches exactly the node it is for;
      * rendezvous: pd_tubes_new() binds, the broker gathers every node's
        endpoint, pd_tubes_connect() joins the neighbours, and
        pd_tubes_wait_subscribed() returns once this node's XPUB has seen
        the subscription of every neighbour. When every node of the task has
        returned from it (the broker's barrier), every publisher has every
        subscriber attached: nothing pushed afterwards is lost to ZeroMQ's
        slow-joiner effect.

    Flow control is by credit, per edge and per tube: a sender has at most
    `window` messages and `window_bytes` bytes on an edge that the receiver
    has not popped yet (one message larger than window_bytes may travel
    alone). The receiver acknowledges what it popped, cumulatively, every
    eighth of the window, and at once when the sender says it is waiting. A push
    that has no credit blocks (draining its own incoming messages meanwhile)
    until an acknowledgement comes or the time-out ends it with an error.
    Because of the credit, what sits in ZeroMQ's queues is bounded: the
    high-water marks are set above that bound and the XPUB is
    ZMQ_XPUB_NODROP, so a PUB never drops a message (where a queue could
    still fill, send blocks instead of dropping). Nothing is queued without
    bound, and no push is silently lost.

    Wire format of one message, addressed to one node (topic = its first
    2 bytes): an 8-byte big-endian header [dst u16][kind u8][tube u8]
    [src u16][seq u16] (so at most 4096 nodes and 256 tubes fit), then
      kind 1 DATA  seq: the message's number on its edge (mod 65536), which
                   the receiver checks, so a lost message is an error, never
                   a silent gap; the payload, in the same frame up to
                   PD_TUBES_INLINE bytes (8-byte aligned after the header),
                   else in a second frame (shared between the copies of a
                   broadcast push: no copy per destination);
      kind 2 ACK   [popped messages u64][popped bytes u64], cumulative;
      kind 3 ASK   nothing: src waits for credit on this edge;
      kind 4 BYE   nothing: src has finished; it sends nothing more;
      kind 5 BYEACK nothing: src got the BYE of the node it is addressed to.
    A node sends BYE to every neighbour when it closes (pd_tubes_close), on
    the same pipe as its data, so a receiver knows that a finished sender's
    data has all arrived: a pop that can only be served by finished senders
    fails at once instead of waiting for its time-out, and a push to a
    finished node is discarded (it could never be popped) without waiting
    for credit. The closing node then waits until every neighbour has
    confirmed the BYE (so everything sent before it is in the neighbour's
    process) or has finished itself, at most the time-out, and closes its
    sockets without lingering: ZeroMQ's linger would otherwise hold the end
    of the process for its whole length whenever a message was queued to a
    peer that had already gone.

    One pd_tubes_t is used by one thread (the node's).
*/
#ifndef PD_TUBES_H
#define PD_TUBES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_TUBES_MAX_TUBES 256              /* tubes per task */
#define PD_TUBES_MAX_NAME 63                /* bytes in a tube name */
#define PD_TUBES_MAX_NODES 4096             /* nodes per task */
#define PD_TUBES_HEADER 8                   /* bytes of the message header */
#define PD_TUBES_INLINE 4096                /* payloads up to this travel in one frame */
#define PD_TUBES_MAX_MSG ((256u << 20) - 64) /* largest payload of one push */
#define PD_TUBES_DEFAULT_WINDOW 16384u      /* messages in flight per edge */
#define PD_TUBES_DEFAULT_WINDOW_BYTES (16u << 20) /* bytes in flight per edge */

/* One end of an edge: the tube (index into the names) and the other node. */
typedef struct {
    uint32_t tube; /* index in the task's tube names */
    uint32_t peer; /* dst for an out-edge, src for an in-edge */
} pd_tubes_edge_t;

typedef struct {
    uint32_t node;              /* this node's index, < n */
    uint32_t n;                 /* nodes in the task */
    const char *const *names;   /* tube names (copied) */
    uint32_t ntubes;            /* entries in names, <= PD_TUBES_MAX_TUBES */
    const pd_tubes_edge_t *out; /* this node's out-edges (copied) */
    uint32_t nout;
    const pd_tubes_edge_t *in;  /* this node's in-edges (copied) */
    uint32_t nin;
    uint32_t window;            /* messages in flight per edge; 0 = default */
    uint64_t window_bytes;      /* bytes in flight per edge; 0 = default */
    int timeout_ms;             /* push and pop time-out; 0 = none */
    bool curve;                 /* CurveZMQ on every tube connection (see below) */
} pd_tubes_config_t;

typedef struct pd_tubes pd_tubes_t;

/* Creates the node's sockets in the ZeroMQ context zctx (borrowed; it must
   outlive the tubes) and binds the XPUB on tcp://<addr>:<ephemeral port>.
   The configuration is checked (edges within n and ntubes, no self-edge, no
   duplicate): a bad one returns NULL with *err PD_EINVAL and a sentence in
   why. Returns NULL with PD_EIO when the bind fails, PD_ENOMEM. */
pd_tubes_t *pd_tubes_new(void *zctx, const pd_tubes_config_t *cfg, const char *addr,
                         int *err, char *why, size_t whycap);
/* Closes the tubes (pd_tubes_close, when not done yet) and the sockets,
   frees everything; sets *p to NULL; safe twice. */
void pd_tubes_destroy(pd_tubes_t **p);

/* The endpoint the XPUB is bound to ("tcp://127.0.0.1:41234"); borrowed. */
const char *pd_tubes_endpoint(const pd_tubes_t *t);
/* With cfg.curve: the XPUB's CurveZMQ public key (Z85, 40 characters), a
   key pair made for this node alone; NULL without. Only the task's other
   nodes learn it, through the broker's encrypted connections (node_bound,
   node_peers), and a SUB can only complete a CurveZMQ handshake with the
   XPUB when it holds this key: so no one else can subscribe, and nothing
   between the nodes travels in clear. The SUB uses the same key pair as a
   client. */
const char *pd_tubes_key(const pd_tubes_t *t);
/* The neighbours (nodes this one sends to or receives from), sorted,
   unique; borrowed. */
const uint32_t *pd_tubes_neighbours(const pd_tubes_t *t, uint32_t *n);
/* Connects to neighbour peer's XPUB; with cfg.curve, key is that XPUB's
   public key (pd_tubes_key on the peer; ignored without). Returns 0, or
   PD_EINVAL (not a neighbour, bad endpoint, a missing or bad key) with
   pd_tubes_error() set. */
int pd_tubes_connect(pd_tubes_t *t, uint32_t peer, const char *endpoint, const char *key);
/* Waits until every neighbour has subscribed to this node's XPUB. Returns
   0, or PD_ETIMEDOUT naming the missing ones (pd_tubes_error). */
int pd_tubes_wait_subscribed(pd_tubes_t *t, int timeout_ms);

/* Pushes len bytes on tube: to every out-neighbour on it (dst < 0) or to
   out-neighbour dst. Blocks while an edge has no credit (see above), at most
   the time-out. Returns 0; PD_EINVAL (no such out-tube, or dst is not an
   out-neighbour on it); PD_ETOOBIG (len > PD_TUBES_MAX_MSG); PD_ETIMEDOUT;
   PD_EPROTO or PD_ESYS. pd_tubes_error() says which and why. */
int pd_tubes_push(pd_tubes_t *t, const char *tube, int dst, const void *data, size_t len);
/* Pops the next message of tube: from any in-neighbour (src < 0; the one
   that arrived first) or from src. Waits up to timeout_ms (< 0: the
   configured time-out; 0 with wait false: no wait). *data (aligned to 8
   bytes, borrowed until the next pop) and *len get the payload, *from (when not
   NULL) the sender. Returns 0; PD_EINVAL (no such in-tube or in-neighbour);
   PD_ETIMEDOUT (nothing within the time; when `wait` is false this is not an
   error and pd_tubes_error() is left alone); PD_EPEER (every sender that
   could serve it has finished and nothing is left); PD_EPROTO, PD_ESYS. */
int pd_tubes_pop(pd_tubes_t *t, const char *tube, int src, int timeout_ms, bool wait,
                 const void **data, size_t *len, uint32_t *from);

/* Degrees and neighbours on one tube: fills peers (up to cap) and returns
   how many there are (0 for a tube this node has no edge on; -1 for a name
   that is not a tube of the task). */
int pd_tubes_in_peers(const pd_tubes_t *t, const char *tube, int *peers, int cap);
int pd_tubes_out_peers(const pd_tubes_t *t, const char *tube, int *peers, int cap);

/* Changes the push/pop time-out (0 = none). */
void pd_tubes_set_timeout(pd_tubes_t *t, int timeout_ms);
int pd_tubes_timeout(const pd_tubes_t *t);
/* Says BYE to every neighbour still running (no more pushes from this node)
   and waits until each has confirmed it or finished, at most the time-out
   (60 s when there is none). Idempotent. */
void pd_tubes_close(pd_tubes_t *t);
/* Marks the tubes closed without BYE: for a node that failed, whose
   neighbours must not take its silence for a normal end (the broker stops
   them and reports this node's failure). */
void pd_tubes_abandon(pd_tubes_t *t);

/* The last error as a sentence; borrowed until the next call. */
const char *pd_tubes_error(const pd_tubes_t *t);

/* Counters, for tests and logs. */
typedef struct {
    uint64_t pushed;     /* messages sent (one per destination) */
    uint64_t popped;     /* messages popped */
    uint64_t acks_sent;  /* acknowledgements sent */
    uint64_t asks_sent;  /* credit requests sent */
    uint64_t waits;      /* pushes that had to wait for credit */
    uint64_t discarded;  /* pushes to a finished node, discarded */
} pd_tubes_stats_t;
void pd_tubes_stats(const pd_tubes_t *t, pd_tubes_stats_t *out);

#endif
