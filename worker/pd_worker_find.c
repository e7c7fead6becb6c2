/*  pd_worker_find: finding the broker and connecting to it.

    Without a broker endpoint the worker listens for the broker's beacon
    (pd_beacon) and connects to the first broker of its cluster it hears;
    while that broker is silent, a beacon from another address moves it
    there. With CurveZMQ the broker a beacon announces must be trusted
    (known_brokers or --broker-key), so a forged beacon leads nowhere.
    Connecting also chooses the address nodes of synchronous tasks bind on:
    the one this machine uses to reach the broker (pd_worker_route_addr),
    unless the configuration gives one.
*/
#include "pd_worker_int.h"
#include "pd_error.h"

#include "pd_plat.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

int pd_worker_connect(pd_worker_t *w, const char *ep)
{
    if (w->connected) {
        zmq_disconnect(w->sock, w->broker);
        w->connected = false;
    }
    if (w->secure && pd_auth_apply_client(w->sock, &w->key, w->broker_key)) {
        pd_log_error("cannot set up CurveZMQ towards %s: %s", ep, zmq_strerror(errno));
        return PD_ESYS;
    }
    if (zmq_connect(w->sock, ep)) {
        pd_log_error("cannot connect to broker '%s': %s (expected an endpoint such as "
                     "tcp://host:5555)", ep, zmq_strerror(errno));
        return PD_EINVAL;
    }
    snprintf(w->broker, sizeof w->broker, "%s", ep);
    w->connected = true;
    /* Nodes bind where the other workers can reach them: the address this
       machine uses towards the broker, unless --node-addr says otherwise. */
    if (!w->node_addr_given && pd_worker_route_addr(ep, w->node_addr, sizeof w->node_addr)) {
        if (strncmp(ep, "tcp://", 6) == 0)
            pd_log_warn("cannot tell which address reaches the broker %s: nodes of synchronous "
                        "tasks bind on 127.0.0.1 (give --node-addr ADDR on a real network)", ep);
        snprintf(w->node_addr, sizeof w->node_addr, "127.0.0.1");
    }
    w->registered = false;
    w->last_recv = pd_slot_now_ms();
    pd_worker_send_ready(w);
    return 0;
}

/* With CurveZMQ, decides whether the broker a beacon announces at ep is
   one we trust, and sets w->broker_key: a key the beacon carries must be
   trusted (for ep, or for any address: `*` in known_brokers); a beacon
   without a key leaves it to known_brokers. A forged beacon thus leads
   nowhere. Returns false (logged, at a bounded rate, with the command that
   would trust it) when not. */
static bool s_trust_beacon(pd_worker_t *w, const pd_beacon_t *b, const char *ep)
{
    char key[PD_KEY_TXT] = "", why[800];
    if (b->has_key)
        zmq_z85_encode(key, b->key, PD_BEACON_KEY_BYTES);
    if (w->fixed_key) {
        if (!b->has_key || strcmp(key, w->broker_key) == 0)
            return true;
        snprintf(why, sizeof why, "the broker at %s announces key %s, not the --broker-key "
                 "given", ep, key);
    } else if (b->has_key && pd_auth_trust_has(w->config_dir, ep, key)) {
        memcpy(w->broker_key, key, sizeof key);
        return true;
    } else if (b->has_key) {
        pd_auth_trust_hint(ep, key, why, sizeof why);
    } else if (pd_auth_trust_find(w->config_dir, ep, w->broker_key, why, sizeof why) == 0) {
        return true;
    }
    /* A warning the first time for each broker, then at debug level. */
    char seen[320];
    snprintf(seen, sizeof seen, "%.255s %s", ep, key);
    for (int i = 0; i < 8; i++)
        if (strcmp(w->untrusted[i], seen) == 0) {
            pd_log_debug("ignoring a beacon: %s", why);
            return false;
        }
    memcpy(w->untrusted[w->nuntrusted], seen, sizeof seen);
    w->nuntrusted = (w->nuntrusted + 1) % 8;
    pd_log_warn("ignoring a beacon: %s", why);
    return false;
}

void pd_worker_on_beacon(pd_worker_t *w)
{
    pd_beacon_t b;
    char ep[300];
    for (int k = 0; k < 16; k++) {
        int rc = pd_beacon_listener_recv(w->listener, &b, ep, sizeof ep);
        if (rc <= 0)
            return;
        if (w->connected && strcmp(ep, w->broker) == 0)
            continue; /* the broker we have */
        /* Untrusted brokers are skipped, and said so, even while we have one. */
        if (w->secure && !s_trust_beacon(w, &b, ep))
            continue;
        if (w->connected && w->registered)
            continue;
        pd_log_info("found broker %s of cluster '%s' by its beacon%s", ep, b.cluster,
                    w->connected ? " (the previous one is silent)" : "");
        w->discover_since = 0;
        pd_worker_connect(w, ep);
    }
}

int pd_worker_route_addr(const char *endpoint, char *out, size_t cap)
{
    /* tcp://HOST:PORT, HOST possibly [v6] */
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return PD_EINVAL;
    const char *h = endpoint + 6, *colon = strrchr(h, ':');
    if (!colon || colon == h)
        return PD_EINVAL;
    char host[256], port[16];
    size_t hl = (size_t) (colon - h);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= sizeof host || strlen(colon + 1) >= sizeof port)
        return PD_EINVAL;
    memcpy(host, h, hl);
    host[hl] = 0;
    snprintf(port, sizeof port, "%s", colon + 1);
    if (strcmp(port, "*") == 0 || strcmp(port, "0") == 0)
        snprintf(port, sizeof port, "9");
    return pd_plat_route_addr(host, port, out, cap);
}
