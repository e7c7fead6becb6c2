/*  Unit tests for worker/pd_tubes: the node-to-node transport of synchronous
    tasks, with every node's tubes in this process (one thread per sending
    node) on TCP loopback, so that rendezvous, credit, BYE and time-outs are
    exercised on real ZeroMQ sockets.
*/
#include "pd_error.h"
#include "pd_tubes.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define MAXN 8

static void *s_ctx;
static pd_tubes_t *s_t[MAXN];
static int s_n;
static bool s_curve; /* build() makes CurveZMQ tubes */

static void setup(void) { s_ctx = zmq_ctx_new(); }

static void teardown(void)
{
    /* One thread closes them all: without the neighbours' confirmations,
       which only come while they push or pop. */
    for (int i = 0; i < s_n; i++)
        if (s_t[i])
            pd_tubes_abandon(s_t[i]);
    for (int i = 0; i < s_n; i++)
        pd_tubes_destroy(&s_t[i]);
    s_n = 0;
    zmq_ctx_term(s_ctx);
}

TestSuite(tubes, .init = setup, .fini = teardown, .timeout = 60);

typedef struct {
    const char *tube;
    int src, dst;
} edge_t;

/* Builds n nodes over the named tubes and edges, connects them and waits
   for every subscription, as the broker's barrier would. */
static void build(int n, const char *const *tubes, int ntubes, const edge_t *edges, int nedges,
                  uint32_t window, uint64_t window_bytes, int timeout_ms)
{
    s_n = n;
    for (int node = 0; node < n; node++) {
        pd_tubes_edge_t out[64], in[64];
        uint32_t nout = 0, nin = 0;
        for (int e = 0; e < nedges; e++) {
            uint32_t k = 0;
            while (strcmp(tubes[k], edges[e].tube) != 0)
                k++;
            if (edges[e].src == node)
                out[nout++] = (pd_tubes_edge_t){k, (uint32_t) edges[e].dst};
            if (edges[e].dst == node)
                in[nin++] = (pd_tubes_edge_t){k, (uint32_t) edges[e].src};
        }
        pd_tubes_config_t cfg = {.node = (uint32_t) node, .n = (uint32_t) n, .names = tubes,
                                 .ntubes = (uint32_t) ntubes, .out = out, .nout = nout,
                                 .in = in, .nin = nin, .window = window,
                                 .window_bytes = window_bytes, .timeout_ms = timeout_ms,
                                 .curve = s_curve};
        int err;
        char why[256];
        s_t[node] = pd_tubes_new(s_ctx, &cfg, "127.0.0.1", &err, why, sizeof why);
        cr_assert_not_null(s_t[node], "node %d: %s", node, why);
    }
    for (int node = 0; node < n; node++) {
        uint32_t nn;
        const uint32_t *nb = pd_tubes_neighbours(s_t[node], &nn);
        for (uint32_t i = 0; i < nn; i++)
            cr_assert_eq(pd_tubes_connect(s_t[node], nb[i], pd_tubes_endpoint(s_t[nb[i]]), pd_tubes_key(s_t[nb[i]])), 0,
                         "%s", pd_tubes_error(s_t[node]));
    }
    for (int node = 0; node < n; node++)
        cr_assert_eq(pd_tubes_wait_subscribed(s_t[node], 10000), 0, "%s",
                     pd_tubes_error(s_t[node]));
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- a sender thread ---------------------------------------------------- */

typedef struct {
    int node;
    const char *tube;
    int count;
    size_t size; /* bytes per message (>= 8): a counter then filler */
    int rc;
} sender_t;

static void *s_send_thread(void *arg)
{
    sender_t *s = arg;
    uint8_t *buf = calloc(1, s->size);
    for (int i = 0; i < s->count && s->rc == 0; i++) {
        uint64_t v = (uint64_t) i;
        memcpy(buf, &v, 8);
        if (s->size > 8)
            buf[s->size - 1] = (uint8_t) i;
        s->rc = pd_tubes_push(s_t[s->node], s->tube, -1, buf, s->size);
    }
    free(buf);
    return NULL;
}

/* Closes node (an int *) in a thread: closing waits for the neighbours'
   confirmations, which they give while they push or pop. */
static void *s_close_thread(void *arg)
{
    pd_tubes_close(s_t[*(int *) arg]);
    return NULL;
}

/* ---- tests -------------------------------------------------------------- */

Test(tubes, a_hundred_thousand_messages_arrive_in_order_under_a_small_window)
{
    const char *tubes[] = {"data"};
    edge_t e[] = {{"data", 0, 1}};
    build(2, tubes, 1, e, 1, 16, 1 << 20, 30000);
    enum { N = 100000 };
    sender_t s = {.node = 0, .tube = "data", .count = N, .size = 8};
    pthread_t th;
    pthread_create(&th, NULL, s_send_thread, &s);
    for (int i = 0; i < N; i++) {
        const void *p;
        size_t len;
        uint32_t from;
        int rc = pd_tubes_pop(s_t[1], "data", -1, -1, true, &p, &len, &from);
        cr_assert_eq(rc, 0, "message %d: %s", i, pd_tubes_error(s_t[1]));
        cr_assert_eq(len, 8u);
        uint64_t v;
        memcpy(&v, p, 8);
        cr_assert_eq(v, (uint64_t) i, "message %d came as %llu", i, (unsigned long long) v);
        cr_assert_eq(from, 0u);
    }
    pthread_join(th, NULL);
    cr_assert_eq(s.rc, 0, "%s", pd_tubes_error(s_t[0]));
    pd_tubes_stats_t st0, st1;
    pd_tubes_stats(s_t[0], &st0);
    pd_tubes_stats(s_t[1], &st1);
    cr_assert_eq(st0.pushed, (uint64_t) N);
    cr_assert_eq(st1.popped, (uint64_t) N);
    cr_assert_gt(st1.acks_sent, (uint64_t) (N / 16), "credit came back in acknowledgements");
}

/* A stranger on the network: a SUB of its own, subscribed to everything,
   connected to node 0's XPUB while node 0 pushes 50 messages to node 1.
   Returns how many the stranger received. */
static int s_stranger_reads(void)
{
    const char *tubes[] = {"data"};
    edge_t e[] = {{"data", 0, 1}};
    build(2, tubes, 1, e, 1, 16, 1 << 20, 10000);
    void *spy = zmq_socket(s_ctx, ZMQ_SUB);
    int zero = 0, tmo = 100;
    zmq_setsockopt(spy, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(spy, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_setsockopt(spy, ZMQ_SUBSCRIBE, "", 0);
    cr_assert_eq(zmq_connect(spy, pd_tubes_endpoint(s_t[0])), 0);
    usleep(300000); /* time to connect (or to fail the handshake) */
    sender_t s = {.node = 0, .tube = "data", .count = 50, .size = 64};
    pthread_t th;
    pthread_create(&th, NULL, s_send_thread, &s);
    for (int i = 0; i < 50; i++) {
        const void *p;
        size_t len;
        uint32_t from;
        cr_assert_eq(pd_tubes_pop(s_t[1], "data", -1, -1, true, &p, &len, &from), 0, "%s",
                     pd_tubes_error(s_t[1]));
    }
    pthread_join(th, NULL);
    cr_assert_eq(s.rc, 0, "%s", pd_tubes_error(s_t[0]));
    int got = 0;
    char buf[256];
    while (got < 1000 && zmq_recv(spy, buf, sizeof buf, 0) >= 0)
        got++;
    zmq_close(spy);
    return got;
}

Test(tubes, without_curve_a_stranger_that_connects_reads_the_data)
{
    /* What CurveZMQ on the tubes is for (and proof that the spy works). */
    cr_assert_gt(s_stranger_reads(), 0);
}

Test(tubes, with_curve_data_flows_and_a_stranger_without_the_key_reads_nothing)
{
    s_curve = true;
    cr_assert_eq(s_stranger_reads(), 0, "a stranger read CurveZMQ tube data");
    cr_assert_not_null(pd_tubes_key(s_t[0]));
    cr_assert_eq(strlen(pd_tubes_key(s_t[0])), 40u);
    cr_assert_str_neq(pd_tubes_key(s_t[0]), pd_tubes_key(s_t[1]), "one key pair per node");
}

Test(tubes, with_curve_a_peer_without_a_key_is_refused_with_a_sentence)
{
    s_curve = true;
    const char *tubes[] = {"data"};
    pd_tubes_edge_t out[1] = {{0, 1}};
    pd_tubes_config_t cfg = {.node = 0, .n = 2, .names = tubes, .ntubes = 1, .out = out,
                             .nout = 1, .curve = true};
    int err;
    char why[256];
    s_t[0] = pd_tubes_new(s_ctx, &cfg, "127.0.0.1", &err, why, sizeof why);
    s_n = 1;
    cr_assert_not_null(s_t[0], "%s", why);
    cr_assert_eq(pd_tubes_connect(s_t[0], 1, "tcp://127.0.0.1:1", NULL), PD_EINVAL);
    cr_assert(strstr(pd_tubes_error(s_t[0]), "without CurveZMQ"), "%s", pd_tubes_error(s_t[0]));
    cr_assert_eq(pd_tubes_connect(s_t[0], 1, "tcp://127.0.0.1:1", "short"), PD_EINVAL);
    cr_assert(strstr(pd_tubes_error(s_t[0]), "Z85"), "%s", pd_tubes_error(s_t[0]));
}

Test(tubes, large_messages_beyond_the_byte_window_travel_intact)
{
    const char *tubes[] = {"big"};
    edge_t e[] = {{"big", 0, 1}};
    build(2, tubes, 1, e, 1, 1024, 1 << 20, 30000); /* 1 MiB window, 3 MiB messages */
    sender_t s = {.node = 0, .tube = "big", .count = 20, .size = 3u << 20};
    pthread_t th;
    pthread_create(&th, NULL, s_send_thread, &s);
    for (int i = 0; i < 20; i++) {
        const void *p;
        size_t len;
        cr_assert_eq(pd_tubes_pop(s_t[1], "big", 0, -1, true, &p, &len, NULL), 0, "%s",
                     pd_tubes_error(s_t[1]));
        cr_assert_eq(len, (size_t) 3u << 20);
        uint64_t v;
        memcpy(&v, p, 8);
        cr_assert_eq(v, (uint64_t) i);
        cr_assert_eq(((const uint8_t *) p)[len - 1], (uint8_t) i);
    }
    pthread_join(th, NULL);
    cr_assert_eq(s.rc, 0, "%s", pd_tubes_error(s_t[0]));
}

Test(tubes, broadcast_reaches_every_out_neighbour_and_fan_in_keeps_each_sender)
{
    const char *tubes[] = {"out", "in"};
    edge_t e[] = {{"out", 0, 1}, {"out", 0, 2}, {"out", 0, 3},
                  {"in", 1, 0},  {"in", 2, 0},  {"in", 3, 0}};
    build(4, tubes, 2, e, 6, 0, 0, 10000);
    int peers[8];
    cr_assert_eq(pd_tubes_out_peers(s_t[0], "out", peers, 8), 3);
    cr_assert_eq(pd_tubes_in_peers(s_t[0], "in", peers, 8), 3);
    cr_assert_eq(peers[2], 3);
    cr_assert_eq(pd_tubes_in_peers(s_t[1], "in", peers, 8), 0);
    cr_assert_eq(pd_tubes_in_peers(s_t[1], "nope", peers, 8), -1);
    /* 5 KiB: travels as two frames, shared between the three copies. */
    static uint8_t big[5000];
    memset(big, 7, sizeof big);
    cr_assert_eq(pd_tubes_push(s_t[0], "out", -1, big, sizeof big), 0, "%s",
                 pd_tubes_error(s_t[0]));
    cr_assert_eq(pd_tubes_push(s_t[0], "out", 2, "only two", 8), 0);
    for (int leaf = 1; leaf <= 3; leaf++) {
        const void *p;
        size_t len;
        cr_assert_eq(pd_tubes_pop(s_t[leaf], "out", -1, -1, true, &p, &len, NULL), 0);
        cr_assert_eq(len, sizeof big);
        cr_assert_eq(((const uint8_t *) p)[4999], 7);
        double v = leaf * 1.5;
        cr_assert_eq(pd_tubes_push(s_t[leaf], "in", -1, &v, sizeof v), 0);
    }
    const void *p;
    size_t len;
    cr_assert_eq(pd_tubes_pop(s_t[2], "out", -1, -1, true, &p, &len, NULL), 0);
    cr_assert_eq(memcmp(p, "only two", 8), 0);
    cr_assert_eq(pd_tubes_pop(s_t[1], "out", -1, 100, false, &p, &len, NULL), PD_ETIMEDOUT,
                 "a targeted push reaches only its node");
    /* Fan-in: from a named sender, then from any. */
    uint32_t from;
    cr_assert_eq(pd_tubes_pop(s_t[0], "in", 3, -1, true, &p, &len, &from), 0);
    double v;
    memcpy(&v, p, 8);
    cr_assert_eq(v, 4.5);
    cr_assert_eq(from, 3u);
    double sum = 0;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(pd_tubes_pop(s_t[0], "in", -1, -1, true, &p, &len, &from), 0);
        memcpy(&v, p, 8);
        cr_assert(from == 1 || from == 2);
        sum += v;
    }
    cr_assert_eq(sum, 1.5 + 3.0);
}

Test(tubes, a_pop_that_nothing_serves_times_out_with_a_sentence)
{
    const char *tubes[] = {"right"};
    edge_t e[] = {{"right", 0, 1}};
    build(2, tubes, 1, e, 1, 0, 0, 300);
    const void *p;
    size_t len;
    double t0 = now_s();
    cr_assert_eq(pd_tubes_pop(s_t[1], "right", -1, -1, true, &p, &len, NULL), PD_ETIMEDOUT);
    cr_assert_geq(now_s() - t0, 0.25);
    cr_assert(strstr(pd_tubes_error(s_t[1]), "pop on tube 'right' timed out after 300 ms") != NULL,
              "%s", pd_tubes_error(s_t[1]));
    /* Without wait: an empty tube is not an error. */
    cr_assert_eq(pd_tubes_pop(s_t[1], "right", -1, 0, false, &p, &len, NULL), PD_ETIMEDOUT);
}

Test(tubes, a_push_to_a_reader_that_does_not_pop_blocks_then_times_out)
{
    const char *tubes[] = {"x"};
    edge_t e[] = {{"x", 0, 1}};
    build(2, tubes, 1, e, 1, 4, 1 << 20, 400);
    int v = 0;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pd_tubes_push(s_t[0], "x", -1, &v, sizeof v), 0);
    double t0 = now_s();
    cr_assert_eq(pd_tubes_push(s_t[0], "x", -1, &v, sizeof v), PD_ETIMEDOUT);
    cr_assert_geq(now_s() - t0, 0.35);
    cr_assert(strstr(pd_tubes_error(s_t[0]), "has not popped the 4 messages") != NULL, "%s",
              pd_tubes_error(s_t[0]));
    /* The reader pops one: the asking sender gets its credit back at once. */
    const void *p;
    size_t len;
    cr_assert_eq(pd_tubes_pop(s_t[1], "x", -1, -1, true, &p, &len, NULL), 0);
    cr_assert_eq(pd_tubes_push(s_t[0], "x", -1, &v, sizeof v), 0, "%s", pd_tubes_error(s_t[0]));
}

Test(tubes, a_finished_sender_is_known_and_its_data_all_arrive_first)
{
    const char *tubes[] = {"x"};
    edge_t e[] = {{"x", 0, 1}};
    build(2, tubes, 1, e, 1, 0, 0, 10000);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pd_tubes_push(s_t[0], "x", -1, &i, sizeof i), 0);
    int zero = 0;
    pthread_t th;
    pthread_create(&th, NULL, s_close_thread, &zero);
    const void *p;
    size_t len;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(pd_tubes_pop(s_t[1], "x", -1, -1, true, &p, &len, NULL), 0);
        cr_assert_eq(*(const int *) p, i);
        cr_assert_eq((uintptr_t) p % 8, 0u, "popped data are aligned");
    }
    double t0 = now_s();
    cr_assert_eq(pd_tubes_pop(s_t[1], "x", -1, -1, true, &p, &len, NULL), PD_EPEER);
    cr_assert_lt(now_s() - t0, 5.0, "known at once, not after the time-out");
    cr_assert(strstr(pd_tubes_error(s_t[1]), "node 0 finished without pushing more") != NULL,
              "%s", pd_tubes_error(s_t[1]));
    pthread_join(th, NULL);
    cr_assert_eq(pd_tubes_push(s_t[0], "x", -1, "a", 1), PD_EINVAL, "no push after close");
}

Test(tubes, a_push_to_a_finished_node_is_discarded_without_waiting)
{
    const char *tubes[] = {"x"};
    edge_t e[] = {{"x", 0, 1}};
    build(2, tubes, 1, e, 1, 2, 1 << 20, 10000);
    int one = 1;
    pthread_t th;
    pthread_create(&th, NULL, s_close_thread, &one);
    const void *p;
    size_t len;
    cr_assert_eq(pd_tubes_pop(s_t[0], "x", -1, 0, false, &p, &len, NULL), PD_EINVAL,
                 "node 0 has no in-edge");
    double t0 = now_s();
    for (int i = 0; i < 10; i++)
        cr_assert_eq(pd_tubes_push(s_t[0], "x", -1, &i, sizeof i), 0, "%s",
                     pd_tubes_error(s_t[0]));
    cr_assert_lt(now_s() - t0, 5.0);
    pthread_join(th, NULL);
    pd_tubes_stats_t st;
    pd_tubes_stats(s_t[0], &st);
    cr_assert_geq(st.discarded, 8u);
}

Test(tubes, misuse_gets_clear_errors)
{
    const char *tubes[] = {"a", "b"};
    edge_t e[] = {{"a", 0, 1}};
    build(2, tubes, 2, e, 1, 0, 0, 1000);
    cr_assert_eq(pd_tubes_push(s_t[0], "zzz", -1, "x", 1), PD_EINVAL);
    cr_assert(strstr(pd_tubes_error(s_t[0]), "no tube of that name") != NULL);
    cr_assert_eq(pd_tubes_push(s_t[0], "b", -1, "x", 1), PD_EINVAL);
    cr_assert(strstr(pd_tubes_error(s_t[0]), "no out-edge") != NULL);
    cr_assert_eq(pd_tubes_push(s_t[1], "a", -1, "x", 1), PD_EINVAL);
    cr_assert_eq(pd_tubes_push(s_t[0], "a", 5, "x", 1), PD_EINVAL);
    cr_assert(strstr(pd_tubes_error(s_t[0]), "the graph has no edge 0 -> 5") != NULL, "%s", pd_tubes_error(s_t[0]));
    const void *p;
    size_t len;
    cr_assert_eq(pd_tubes_pop(s_t[1], "a", 0, 0, false, &p, &len, NULL), PD_ETIMEDOUT);
    cr_assert_eq(pd_tubes_pop(s_t[0], "a", -1, 0, false, &p, &len, NULL), PD_EINVAL);
    cr_assert_eq(pd_tubes_connect(s_t[0], 0, "tcp://127.0.0.1:1", NULL), PD_EINVAL,
                 "a node is not its own neighbour");
}

Test(tubes, bad_graphs_are_refused_with_a_reason)
{
    const char *tubes[] = {"a"};
    pd_tubes_edge_t self[] = {{0, 0}}, dup[] = {{0, 1}, {0, 1}}, far[] = {{0, 9}},
                    badtube[] = {{3, 1}};
    struct {
        const pd_tubes_edge_t *e;
        uint32_t n;
    } cases[] = {{self, 1}, {dup, 2}, {far, 1}, {badtube, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pd_tubes_config_t cfg = {.node = 0, .n = 2, .names = tubes, .ntubes = 1,
                                 .out = cases[i].e, .nout = cases[i].n};
        int err;
        char why[256];
        pd_tubes_t *t = pd_tubes_new(s_ctx, &cfg, "127.0.0.1", &err, why, sizeof why);
        cr_assert_null(t, "case %zu accepted", i);
        cr_assert_eq(err, PD_EINVAL);
        cr_assert(strstr(why, "out of range, a self-edge or a duplicate") != NULL, "%s", why);
    }
    const char *twice[] = {"a", "a"};
    pd_tubes_config_t cfg = {.node = 0, .n = 2, .names = twice, .ntubes = 2};
    int err;
    char why[256];
    cr_assert_null(pd_tubes_new(s_ctx, &cfg, "127.0.0.1", &err, why, sizeof why));
    cr_assert(strstr(why, "appears twice") != NULL, "%s", why);
    pd_tubes_config_t bad_addr = {.node = 0, .n = 1, .names = tubes, .ntubes = 1};
    cr_assert_null(pd_tubes_new(s_ctx, &bad_addr, "192.0.2.1", &err, why, sizeof why));
    cr_assert_eq(err, PD_EIO);
    cr_assert(strstr(why, "cannot bind") != NULL, "%s", why);
}

Test(tubes, a_neighbour_that_never_connects_is_named)
{
    const char *tubes[] = {"a"};
    pd_tubes_edge_t out[] = {{0, 1}};
    pd_tubes_config_t cfg = {.node = 0, .n = 2, .names = tubes, .ntubes = 1, .out = out,
                             .nout = 1};
    s_t[0] = pd_tubes_new(s_ctx, &cfg, "127.0.0.1", NULL, NULL, 0);
    s_n = 1;
    cr_assert_not_null(s_t[0]);
    cr_assert_eq(pd_tubes_wait_subscribed(s_t[0], 200), PD_ETIMEDOUT);
    cr_assert(strstr(pd_tubes_error(s_t[0]), "neighbours 1 did not connect") != NULL, "%s",
              pd_tubes_error(s_t[0]));
}
