/*  pd_beacon: beacon encoding, and the zbeacon actors that publish and
    receive beacons; see pd_beacon.h for the datagram layout.

    Decoding is strict and bounded: every length is checked against the
    bytes present before it is used, and anything that does not match the
    layout exactly is refused with a sentence, never half-used.

    zbeacon actors live in CZMQ's own ZeroMQ context. CZMQ would install its
    own SIGINT/SIGTERM handlers the first time it starts; the programs keep
    theirs, so that is switched off (zsys_handler_set(NULL)) before any
    actor is created.
*/
#include "pd_beacon.h"
#include "pd_error.h"
#include "pd_log.h"
#include "pd_msg.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>

static const uint8_t s_magic[3] = {'P', 'D', 'B'};
#define S_HEAD 8 /* bytes before the name */
#define S_SENDERS 16 /* senders remembered for rate-limited warnings */

bool pd_beacon_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len < 1 || len > PD_BEACON_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

size_t pd_beacon_encode(const pd_beacon_t *b, uint8_t *out, size_t cap)
{
    if (!pd_beacon_name_ok(b->cluster) || b->port == 0)
        return 0;
    size_t n = strlen(b->cluster);
    size_t len = S_HEAD + n + (b->has_key ? PD_BEACON_KEY_BYTES : 0);
    if (len > cap || len > PD_BEACON_MAX_BYTES)
        return 0;
    memcpy(out, s_magic, 3);
    out[3] = b->version;
    out[4] = (uint8_t) (b->port >> 8);
    out[5] = (uint8_t) b->port;
    out[6] = b->has_key ? 1 : 0;
    out[7] = (uint8_t) n;
    memcpy(out + S_HEAD, b->cluster, n);
    if (b->has_key)
        memcpy(out + S_HEAD + n, b->key, PD_BEACON_KEY_BYTES);
    return len;
}

static int s_bad(char *why, size_t cap, int code, const char *what)
{
    if (why)
        snprintf(why, cap, "%s", what);
    return code;
}

int pd_beacon_decode(const void *buf, size_t len, pd_beacon_t *out, char *why, size_t whycap)
{
    const uint8_t *p = buf;
    memset(out, 0, sizeof *out);
    if (len < 4 || memcmp(p, s_magic, 3) != 0)
        return s_bad(why, whycap, PD_EPROTO, "not a Playdoh beacon (no 'PDB' magic)");
    if (p[3] != PD_PROTO_VERSION) {
        if (why)
            snprintf(why, whycap, "beacon of protocol version %u; this program speaks version %d",
                     p[3], PD_PROTO_VERSION);
        return PD_EVERSION;
    }
    if (len < S_HEAD)
        return s_bad(why, whycap, PD_EPROTO, "beacon truncated before its cluster name");
    uint16_t port = (uint16_t) (p[4] << 8 | p[5]);
    uint8_t flags = p[6], n = p[7];
    if (port == 0)
        return s_bad(why, whycap, PD_EPROTO, "beacon announces port 0");
    if (flags & ~1u)
        return s_bad(why, whycap, PD_EPROTO, "beacon has unknown flag bits set");
    if (n < 1 || n > PD_BEACON_NAME_MAX)
        return s_bad(why, whycap, PD_EPROTO, "beacon's cluster name length is not 1 to 63");
    size_t want = S_HEAD + (size_t) n + ((flags & 1) ? PD_BEACON_KEY_BYTES : 0);
    if (len < want)
        return s_bad(why, whycap, PD_EPROTO, "beacon truncated (shorter than its fields say)");
    if (len > want)
        return s_bad(why, whycap, PD_EPROTO, "beacon has bytes after its last field");
    char name[PD_BEACON_NAME_MAX + 1];
    memcpy(name, p + S_HEAD, n);
    name[n] = 0;
    if (memchr(name, 0, n) || !pd_beacon_name_ok(name))
        return s_bad(why, whycap, PD_EPROTO, "beacon's cluster name has characters other "
                     "than letters, digits, '-', '_' and '.'");
    memcpy(out->cluster, name, (size_t) n + 1);
    out->version = p[3];
    out->port = port;
    out->has_key = flags & 1;
    if (out->has_key)
        memcpy(out->key, p + S_HEAD + n, PD_BEACON_KEY_BYTES);
    return 0;
}

/* ---- actors ------------------------------------------------------------- */

/* Creates a zbeacon actor configured on udp_port and iface. Returns it, with
   the host address it uses in host, or NULL with *err. */
static zactor_t *s_actor(int udp_port, const char *iface, char *host, size_t hostcap, int *err)
{
    if (udp_port < 1 || udp_port > 65535) {
        pd_log_error("beacon port %d is not from 1 to 65535", udp_port);
        *err = PD_EINVAL;
        return NULL;
    }
    zsys_handler_set(NULL);
    if (iface && *iface)
        zsys_set_interface(iface);
    zactor_t *a = zactor_new(zbeacon, NULL);
    if (!a) {
        pd_log_error("cannot start the beacon: %s", zmq_strerror(zmq_errno()));
        *err = PD_ESYS;
        return NULL;
    }
    zsock_send(a, "si", "CONFIGURE", udp_port);
    char *h = zstr_recv(a);
    if (!h || !*h) {
        pd_log_error("no network interface%s%s can broadcast beacons on UDP port %d (set "
                     "beacon_interface in [cluster], or give the broker's endpoint)",
                     iface && *iface ? " named " : "", iface && *iface ? iface : "", udp_port);
        zstr_free(&h);
        zactor_destroy(&a);
        *err = PD_EUNREACH;
        return NULL;
    }
    snprintf(host, hostcap, "%s", h);
    zstr_free(&h);
    return a;
}

struct pd_beacon_pub {
    zactor_t *actor; /* the zbeacon actor, owned */
    char host[256];  /* address the beacon goes out from */
};

/* calloc of one zeroed object of size bytes; NULL with *err = PD_ENOMEM. */
static void *s_zalloc(size_t size, int *err)
{
    void *obj = calloc(1, size);
    if (!obj)
        *err = PD_ENOMEM;
    return obj;
}

/* Sends command to the zbeacon actor, if any, destroys it, and frees obj,
   the publisher or listener that holds it. */
static void s_release(zactor_t **actor, const char *command, void *obj)
{
    if (*actor) {
        zstr_sendx(*actor, command, NULL);
        zactor_destroy(actor);
    }
    free(obj);
}

pd_beacon_pub_t *pd_beacon_pub_new(const pd_beacon_t *b, int udp_port, int interval_ms,
                                   const char *iface, int *err)
{
    int dummy;
    if (!err)
        err = &dummy;
    uint8_t data[PD_BEACON_MAX_BYTES];
    size_t len = pd_beacon_encode(b, data, sizeof data);
    if (!len) {
        pd_log_error("cannot build a beacon for cluster '%s' and port %u", b->cluster, b->port);
        *err = PD_EINVAL;
        return NULL;
    }
    pd_beacon_pub_t *p = s_zalloc(sizeof *p, err);
    if (!p)
        return NULL;
    p->actor = s_actor(udp_port, iface, p->host, sizeof p->host, err);
    if (!p->actor) {
        free(p);
        return NULL;
    }
    zsock_send(p->actor, "sbi", "PUBLISH", data, len, interval_ms > 0 ? interval_ms : 1000);
    *err = 0;
    return p;
}

void pd_beacon_pub_destroy(pd_beacon_pub_t **pp)
{
    if (pp && *pp) {
        s_release(&(*pp)->actor, "SILENCE", *pp);
        *pp = NULL;
    }
}

const char *pd_beacon_pub_host(const pd_beacon_pub_t *p) { return p->host; }

struct pd_beacon_listener {
    zactor_t *actor;                    /* the zbeacon actor, owned */
    char cluster[PD_BEACON_NAME_MAX + 1]; /* the cluster we look for */
    char host[256];                     /* our own address */
    char seen[S_SENDERS][160];          /* "sender|reason" already warned about (ring) */
    unsigned nseen;                     /* entries written to seen */
    uint64_t ignored;                   /* datagrams ignored */
};

pd_beacon_listener_t *pd_beacon_listener_new(const char *cluster, int udp_port,
                                             const char *iface, int *err)
{
    int dummy;
    if (!err)
        err = &dummy;
    if (!cluster || !pd_beacon_name_ok(cluster)) {
        pd_log_error("cluster name '%s' is not 1 to 63 letters, digits, '-', '_' or '.'",
                     cluster ? cluster : "");
        *err = PD_EINVAL;
        return NULL;
    }
    pd_beacon_listener_t *l = s_zalloc(sizeof *l, err);
    if (!l)
        return NULL;
    snprintf(l->cluster, sizeof l->cluster, "%s", cluster);
    l->actor = s_actor(udp_port, iface, l->host, sizeof l->host, err);
    if (!l->actor) {
        free(l);
        return NULL;
    }
    zsock_send(l->actor, "sb", "SUBSCRIBE", s_magic, sizeof s_magic);
    *err = 0;
    return l;
}

void pd_beacon_listener_destroy(pd_beacon_listener_t **pp)
{
    if (pp && *pp) {
        s_release(&(*pp)->actor, "UNSUBSCRIBE", *pp);
        *pp = NULL;
    }
}

void *pd_beacon_listener_socket(pd_beacon_listener_t *l) { return zsock_resolve(l->actor); }
uint64_t pd_beacon_listener_ignored(const pd_beacon_listener_t *l) { return l->ignored; }

/* Logs an ignored datagram: a warning the first time a sender sends one for
   a reason, then at debug level (a foreign broker beacons every second). */
static void s_ignore(pd_beacon_listener_t *l, const char *from, const char *why)
{
    l->ignored++;
    char key[sizeof l->seen[0]];
    snprintf(key, sizeof key, "%.63s|%.95s", from, why);
    bool known = false;
    unsigned n = l->nseen < S_SENDERS ? l->nseen : S_SENDERS;
    for (unsigned i = 0; i < n && !known; i++)
        known = strcmp(l->seen[i], key) == 0;
    if (known) {
        pd_log_debug("ignored a beacon from %s: %s", from, why);
        return;
    }
    memcpy(l->seen[l->nseen++ % S_SENDERS], key, sizeof key);
    pd_log_warn("ignored a beacon from %s: %s (further such ones are logged at debug level)",
                from, why);
}

int pd_beacon_listener_recv(pd_beacon_listener_t *l, pd_beacon_t *out, char *endpoint,
                            size_t cap)
{
    zmq_pollitem_t it = {.socket = zsock_resolve(l->actor), .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, 0) <= 0)
        return 0;
    zmsg_t *msg = zmsg_recv(l->actor);
    if (!msg)
        return PD_ESYS;
    int rc = 0;
    char *addr = zmsg_popstr(msg);
    zframe_t *data = zmsg_pop(msg);
    char from[64];
    snprintf(from, sizeof from, "%s", addr ? addr : "?");
    char why[256];
    if (!addr || !data) {
        s_ignore(l, from, "the beacon actor delivered an incomplete message");
    } else if (pd_beacon_decode(zframe_data(data), zframe_size(data), out, why, sizeof why)) {
        s_ignore(l, from, why);
    } else if (strcmp(out->cluster, l->cluster) != 0) {
        snprintf(why, sizeof why, "it is for cluster '%s', and this program looks for '%s' "
                 "(set [cluster] name)", out->cluster, l->cluster);
        s_ignore(l, from, why);
    } else {
        bool v6 = strchr(from, ':') != NULL;
        snprintf(endpoint, cap, v6 ? "tcp://[%s]:%u" : "tcp://%s:%u", from, out->port);
        rc = 1;
    }
    zstr_free(&addr);
    zframe_destroy(&data);
    zmsg_destroy(&msg);
    return rc;
}

int pd_beacon_listener_wait(pd_beacon_listener_t *l, int timeout_ms, pd_beacon_t *out,
                            char *endpoint, size_t cap)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    for (;;) {
        int64_t left = deadline - zclock_mono();
        if (left < 0)
            return 0;
        zmq_pollitem_t it = {.socket = zsock_resolve(l->actor), .events = ZMQ_POLLIN};
        int n = zmq_poll(&it, 1, (long) left);
        if (n < 0 && zmq_errno() == EINTR)
            return 0;
        if (n < 0)
            return PD_ESYS;
        if (n == 0)
            continue;
        int rc = pd_beacon_listener_recv(l, out, endpoint, cap);
        if (rc != 0)
            return rc;
    }
}
