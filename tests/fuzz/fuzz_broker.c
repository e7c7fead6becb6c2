/*  fuzz_broker: libFuzzer harness for the broker's message handlers, driven
    in-process through pd_broker_on_frame exactly as the loop drives them
    (then dispatch, parked fetches, heartbeat ticks), by four peers with
    different keys and roles: a client, a worker, a worker-and-client, and a
    revoked key. Peers 0..2 are real DEALER sockets on inproc, so that runs,
    modules, results and heartbeats are really sent (and drained).

    An input is a sequence of records, at most 64:
        [peer: 1 byte] [length: 2 bytes, little-endian] [frame: length bytes]
    peer & 3 picks the peer; peer & 0x80 first moves the broker's clock past
    the workers' liveness and runs a heartbeat tick. Before each input the
    broker forgets everything (pd_broker_forget_all), so an input always
    meets the same broker and a crash replays. */
#include "pd_broker.h"
#include "pd_broker_root.h"
#include "pd_error.h"
#include "pd_log.h"
#include "fuzz_seeds.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The peers of the seed corpus (tests/fuzz/make_seeds.c). */
static const struct {
    const char *rid;  /* routing id */
    const char *key;  /* public key (Z85) */
    pd_role_t role;   /* its role */
    bool connected;   /* a DEALER holds the routing id */
} s_peers[4] = {
    {"c-client-0001", PD_FUZZ_KEY_CLIENT, PD_ROLE_CLIENT, true},
    {"w-0000000000000001", PD_FUZZ_KEY_WORKER, PD_ROLE_WORKER, true},
    {"w-0000000000000002", PD_FUZZ_KEY_BOTH, PD_ROLE_BOTH, true},
    {"w-0000000000000003", PD_FUZZ_KEY_REVOKED, PD_ROLE_NONE, false},
};

static pd_broker_t *s_broker;
static void *s_dealers[3];

/* At exit, before CZMQ's own exit handler (registered by the broker's first
   actor) closes the actors' sockets: the broker's threads end cleanly. */
static void s_cleanup(void)
{
    for (int i = 0; i < 3; i++)
        if (s_dealers[i])
            zmq_close(s_dealers[i]);
    pd_broker_destroy(&s_broker);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    /* PD_FUZZ_LOG=debug shows what an input does (triage). */
    pd_log_level_t level = PD_LOG_ERROR;
    if (getenv("PD_FUZZ_LOG"))
        pd_log_parse_level(getenv("PD_FUZZ_LOG"), &level);
    pd_log_set_level(level);
    pd_broker_config_t cfg;
    pd_broker_config_defaults(&cfg);
    cfg.bind = "inproc://pd-fuzz-broker";
    cfg.max_jobs = 20000;
    cfg.hb_ms = 100;
    int err;
    s_broker = pd_broker_new(&cfg, &err);
    if (!s_broker) {
        fprintf(stderr, "fuzz_broker: no broker: %s\n", pd_strerror(err));
        abort();
    }
    atexit(s_cleanup);
    for (int i = 0; i < 3; i++) {
        s_dealers[i] = zmq_socket(s_broker->ctx, ZMQ_DEALER);
        int zero = 0;
        zmq_setsockopt(s_dealers[i], ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(s_dealers[i], ZMQ_RCVHWM, &zero, sizeof zero);
        zmq_setsockopt(s_dealers[i], ZMQ_ROUTING_ID, s_peers[i].rid, strlen(s_peers[i].rid));
        if (zmq_connect(s_dealers[i], "inproc://pd-fuzz-broker"))
            abort();
    }
    /* Until the ROUTER has attached the three pipes, sends to them fail. */
    for (int i = 0; i < 3; i++) {
        int tries = 0;
        while (zmq_send(s_broker->sock, s_peers[i].rid, strlen(s_peers[i].rid),
                        ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            if (++tries > 1000)
                abort();
            usleep(1000);
        }
        zmq_send(s_broker->sock, "", 0, ZMQ_DONTWAIT);
    }
    return 0;
}

static void s_drain(void)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    for (int i = 0; i < 3; i++)
        while (zmq_msg_recv(&m, s_dealers[i], ZMQ_DONTWAIT) >= 0)
            ;
    zmq_msg_close(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pd_broker_t *b = s_broker;
    if (pd_broker_forget_all(b))
        abort();
    b->start_ms = 1000000;
    b->now_ms = b->start_ms;
    b->next_tick = b->now_ms;
    size_t off = 0;
    for (int rec = 0; rec < 64 && size - off >= 3; rec++) {
        uint8_t peer = data[off];
        size_t len = (size_t) data[off + 1] | (size_t) data[off + 2] << 8;
        off += 3;
        if (len > size - off)
            len = size - off;
        if (peer & 0x80) {
            b->now_ms += (int64_t) b->cfg.hb_ms * b->cfg.liveness + 1;
            pd_broker_tick_workers(b);
        }
        b->now_ms += 1;
        int p = peer & 3;
        pd_broker_on_frame(b, (const uint8_t *) s_peers[p].rid, strlen(s_peers[p].rid),
                           s_peers[p].key, s_peers[p].role, data + off, len);
        pd_broker_dispatch(b);
        pd_broker_wake_parked(b);
        pd_broker_expire_parked(b);
        off += len;
    }
    /* The job table must agree with itself after any sequence. */
    if (pd_jobs_queued(b->jobs) > pd_jobs_unfinished(b->jobs) ||
        pd_jobs_unfinished(b->jobs) > pd_jobs_max(b->jobs))
        abort();
    s_drain();
    return 0;
}
