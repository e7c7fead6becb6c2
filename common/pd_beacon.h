/*  pd_beacon: how a broker announces itself on the LAN, and how workers and
    clients find it (UDP broadcast through CZMQ's zbeacon actor).

    A beacon is one UDP datagram (at most 255 bytes), sent every interval by
    the broker to the broadcast address of one interface:

        offset  bytes  field
        0       3      magic "PDB"
        3       1      protocol version (PD_PROTO_VERSION)
        4       2      the broker's TCP port, big-endian (1 .. 65535)
        6       1      flags: bit 0 = a public key follows; other bits 0
        7       1      n, length of the cluster name (1 .. 63)
        8       n      cluster name: letters, digits, '-', '_', '.'
        8+n     32     the broker's CurveZMQ public key (when flag bit 0)

    Nothing may follow. The broker's address is the datagram's source
    address, so the endpoint a listener connects to is tcp://SOURCE:PORT.
    A beacon is only a hint: where keys are in use, the broker's key decides
    (issue 6); a spoofed beacon leads to a broker the worker does not trust.

    Listeners ignore, and log, what is not for them: a malformed datagram, a
    beacon of another protocol version, or one for another cluster name (so
    several brokers share one LAN). The first such datagram from a sender
    for a given reason is logged as a warning, the next ones at debug level.

        pd_beacon_listener_t *l = pd_beacon_listener_new("lab", 5657, NULL, &err);
        char ep[64];
        pd_beacon_t b;
        if (pd_beacon_listener_wait(l, 5000, &b, ep, sizeof ep) == 1) connect(ep);
        pd_beacon_listener_destroy(&l);
*/
#ifndef PD_BEACON_H
#define PD_BEACON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_BEACON_DEFAULT_PORT 5657       /* UDP port of the beacons */
#define PD_BEACON_DEFAULT_INTERVAL_MS 1000
#define PD_BEACON_DEFAULT_CLUSTER "playdoh"
/* How long a worker or playdoh-submit listens for a beacon before saying
   none came ([cluster] discover_timeout_ms): two beacon intervals, so that
   a forgotten --local is told within 3 s. */
#define PD_BEACON_DEFAULT_DISCOVER_MS 2000
#define PD_BEACON_KEY_BYTES 32            /* a CurveZMQ public key */
#define PD_BEACON_MAX_BYTES 255           /* zbeacon's limit on a datagram */
#define PD_BEACON_NAME_MAX 63

/* A decoded beacon. */
typedef struct {
    uint8_t version;                    /* protocol version announced */
    uint16_t port;                      /* the broker's TCP port */
    char cluster[PD_BEACON_NAME_MAX + 1]; /* cluster name */
    bool has_key;                       /* key holds the broker's public key */
    uint8_t key[PD_BEACON_KEY_BYTES];   /* CurveZMQ public key (when has_key) */
} pd_beacon_t;

/* True when name is a valid cluster name (1 .. 63 of [A-Za-z0-9._-]). */
bool pd_beacon_name_ok(const char *name);

/* Encodes b into out (cap bytes). Returns the length, or 0 when b is
   invalid (bad name, port 0) or cap too small. */
size_t pd_beacon_encode(const pd_beacon_t *b, uint8_t *out, size_t cap);
/* Decodes a datagram. Returns 0, PD_EPROTO (not a well-formed beacon) or
   PD_EVERSION (another protocol version); why (when not NULL) gets a
   sentence saying what was wrong. Never reads outside buf[0..len). */
int pd_beacon_decode(const void *buf, size_t len, pd_beacon_t *out, char *why, size_t whycap);

/* ---- the broker's side -------------------------------------------------- */

typedef struct pd_beacon_pub pd_beacon_pub_t;

/* Starts broadcasting b every interval_ms on UDP port `udp_port`, on
   interface iface (NULL or "" = CZMQ's choice: the first broadcast-capable
   interface; "*" = all). Returns NULL with *err set: PD_EINVAL for a bad
   beacon, PD_EUNREACH when no interface can broadcast, PD_ESYS. */
pd_beacon_pub_t *pd_beacon_pub_new(const pd_beacon_t *b, int udp_port, int interval_ms,
                                   const char *iface, int *err);
/* Stops broadcasting; sets *p to NULL; safe twice. */
void pd_beacon_pub_destroy(pd_beacon_pub_t **p);
/* The host address the beacon goes out from (borrowed). */
const char *pd_beacon_pub_host(const pd_beacon_pub_t *p);

/* ---- the listeners' side ------------------------------------------------ */

typedef struct pd_beacon_listener pd_beacon_listener_t;

/* Listens for beacons of cluster `cluster` on UDP port udp_port (iface as
   above). Returns NULL with *err set (PD_EINVAL, PD_EUNREACH, PD_ESYS). */
pd_beacon_listener_t *pd_beacon_listener_new(const char *cluster, int udp_port,
                                             const char *iface, int *err);
void pd_beacon_listener_destroy(pd_beacon_listener_t **p);
/* A ZeroMQ socket handle to poll for ZMQ_POLLIN (borrowed). */
void *pd_beacon_listener_socket(pd_beacon_listener_t *l);
/* Reads one waiting datagram without blocking. Returns 1 when it is a
   beacon of our cluster and version (out and endpoint "tcp://ADDR:PORT"
   filled), 0 when nothing was waiting or the datagram was ignored (and
   logged), or PD_ESYS. */
int pd_beacon_listener_recv(pd_beacon_listener_t *l, pd_beacon_t *out, char *endpoint,
                            size_t cap);
/* Waits up to timeout_ms for a beacon of our cluster. Returns 1 (found), 0
   (none within the time), or PD_ESYS. */
int pd_beacon_listener_wait(pd_beacon_listener_t *l, int timeout_ms, pd_beacon_t *out,
                            char *endpoint, size_t cap);
/* Datagrams ignored so far (malformed, other version or cluster). */
uint64_t pd_beacon_listener_ignored(const pd_beacon_listener_t *l);

#endif
