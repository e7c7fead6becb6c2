/*  bench_sync: speed of the synchronous interface on the embedded cluster
    (2 node processes of one task, TCP loopback), against raw libzmq PUB/SUB
    between two processes over the same transport, measured in the same run.

    Prints:
      - round trip of one push/pop ping-pong (median, µs) and its ratio to a
        raw PUB/SUB ping-pong;
      - throughput of 8-byte pushes (messages/s) and of 1 MiB pushes (GB/s)
        from node 0 to node 1, and their ratio to raw PUB/SUB holding as much
        in flight as Playdoh's default window (16384 messages, 16 MiB): the
        baseline's publishers are XPUB with ZMQ_XPUB_NODROP and high-water
        marks of half that on each side, so raw ZeroMQ blocks instead of
        dropping, as push does, and queues no more.

    Each figure is the median of REPEAT runs, raw and Playdoh interleaved, so
    that a machine whose load changes during the benchmark biases neither.

    Usage: bench_sync [ROUNDS (20000)] [SMALL (2000000)] [LARGE (1000)] [REPEAT (5)]
*/
#include "playdoh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#define WARMUP 1000

static const char *SRC =
    "#include <playdoh_task.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "#include <time.h>\n"
    "static double now_us(void) {\n"
    "    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);\n"
    "    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;\n"
    "}\n"
    "static int cmp(const void *a, const void *b) {\n"
    "    double x = *(const double *) a, y = *(const double *) b; return (x > y) - (x < y);\n"
    "}\n"
    "/* node 0 pushes 8 bytes on ab and pops the echo on ba; returns the median\n"
    "   round trip in us */\n"
    "PD_TASK(pingpong, t) {\n"
    "    double rd; pd_arg_double(t, &rd);\n"
    "    int rounds = (int) rd, me = pd_node_index(t);\n"
    "    char msg[8] = {0}; const void *p; size_t len;\n"
    "    double *rtt = me == 0 ? malloc(rounds * sizeof *rtt) : NULL;\n"
    "    for (int i = 0; i < rounds + 1000; i++) {\n"
    "        if (me == 0) {\n"
    "            double t0 = now_us();\n"
    "            if (pd_push(t, \"ab\", msg, 8) || pd_pop(t, \"ba\", &p, &len) < 0) return -1;\n"
    "            if (i >= 1000) rtt[i - 1000] = now_us() - t0;\n"
    "        } else if (pd_pop(t, \"ab\", &p, &len) < 0 || pd_push(t, \"ba\", p, len)) {\n"
    "            return -1;\n"
    "        }\n"
    "    }\n"
    "    if (me != 0) return 0;\n"
    "    qsort(rtt, rounds, sizeof *rtt, cmp);\n"
    "    double med = rtt[rounds / 2]; free(rtt);\n"
    "    return pd_out_double(t, med);\n"
    "}\n"
    "/* argument [count, size]: node 0 pushes count messages of size bytes,\n"
    "   node 1 pops them and answers once at the end; node 0 returns the\n"
    "   seconds from its first push to that answer */\n"
    "PD_TASK(stream, t) {\n"
    "    const double *a; size_t na;\n"
    "    if (pd_arg_doubles(t, &a, &na) || na != 2) return pd_task_fail(t, \"want [count, size]\");\n"
    "    long count = (long) a[0]; size_t size = (size_t) a[1];\n"
    "    const void *p; size_t len;\n"
    "    if (pd_node_index(t) == 1) {\n"
    "        for (long i = 0; i < count; i++) {\n"
    "            if (pd_pop(t, \"ab\", &p, &len) < 0) return -1;\n"
    "            if (len != size) return pd_task_fail(t, \"message %ld has %zu bytes\", i, len);\n"
    "        }\n"
    "        return pd_push(t, \"ba\", \"k\", 1);\n"
    "    }\n"
    "    char *buf = calloc(1, size ? size : 1);\n"
    "    double t0 = now_us();\n"
    "    for (long i = 0; i < count; i++)\n"
    "        if (pd_push(t, \"ab\", buf, size)) { free(buf); return -1; }\n"
    "    if (pd_pop(t, \"ba\", &p, &len) < 0) { free(buf); return -1; }\n"
    "    double secs = (now_us() - t0) / 1e6;\n"
    "    free(buf);\n"
    "    return pd_out_double(t, secs);\n"
    "}\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

/* The median of n values (sorts a copy). */
static double median(const double *v, int n)
{
    double c[32];
    memcpy(c, v, (size_t) n * sizeof *c);
    qsort(c, (size_t) n, sizeof *c, cmp_double);
    return c[n / 2];
}

/* ---- raw libzmq baseline: two threads, a PUB/SUB pair each way ----------- */

typedef struct {
    int hwm;            /* high-water mark of each side (0: ZeroMQ's default) */
    void *ctx;          /* this side's own context (own I/O thread) */
    void *pub, *sub;    /* out, in */
    int rounds;         /* ping-pong rounds (after warm-up) */
    long count;         /* stream: messages */
    size_t size;        /* stream: bytes per message */
    int mode;           /* 0 ping-pong, 1 stream */
    double result;      /* side A: median us, or seconds */
} raw_side_t;

static void s_raw_b(raw_side_t *s)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    /* Answer hellos until the real traffic starts (slow-joiner handshake). */
    for (;;) {
        zmq_msg_recv(&m, s->sub, 0);
        if (zmq_msg_size(&m) != 5 || memcmp(zmq_msg_data(&m), "hello", 5) != 0)
            break;
        zmq_send(s->pub, "hello", 5, 0);
    }
    if (s->mode == 0) {
        /* m holds the first ping */
        for (int i = 0; i < s->rounds + WARMUP; i++) {
            if (i > 0)
                zmq_msg_recv(&m, s->sub, 0);
            zmq_msg_send(&m, s->pub, 0);
        }
    } else {
        for (long i = 1; i < s->count; i++)
            zmq_msg_recv(&m, s->sub, 0);
        zmq_send(s->pub, "k", 1, 0);
    }
    zmq_msg_close(&m);
}

/* Creates one side's sockets in its own context: publisher (XPUB_NODROP
   when hwm > 0) and subscriber, with that high-water mark on both. */
static void s_raw_sockets(raw_side_t *x, int hwm)
{
    x->ctx = zmq_ctx_new();
    x->pub = zmq_socket(x->ctx, hwm ? ZMQ_XPUB : ZMQ_PUB);
    x->sub = zmq_socket(x->ctx, ZMQ_SUB);
    int zero = 0, one = 1;
    void *both[2] = {x->pub, x->sub};
    for (int i = 0; i < 2; i++) {
        if (hwm) {
            zmq_setsockopt(both[i], ZMQ_SNDHWM, &hwm, sizeof hwm);
            zmq_setsockopt(both[i], ZMQ_RCVHWM, &hwm, sizeof hwm);
        }
        zmq_setsockopt(both[i], ZMQ_LINGER, &zero, sizeof zero);
    }
    if (hwm)
        zmq_setsockopt(x->pub, ZMQ_XPUB_NODROP, &one, sizeof one);
    zmq_setsockopt(x->sub, ZMQ_SUBSCRIBE, "", 0);
}

/* mode 0: ping-pong; 1: stream. hwm > 0: XPUB_NODROP publishers and that
   high-water mark on each socket (a bounded, blocking baseline). Side B
   runs in a forked child process, as a Playdoh node runs in its own. */
static double s_raw(int mode, int rounds, long count, size_t size, int hwm)
{
    raw_side_t a = {.rounds = rounds, .count = count, .size = size, .mode = mode},
               b = {.rounds = rounds, .count = count, .size = size, .mode = mode};
    s_raw_sockets(&a, hwm);
    char ep[256];
    size_t len = sizeof ep;
    zmq_bind(a.pub, "tcp://127.0.0.1:*");
    zmq_getsockopt(a.pub, ZMQ_LAST_ENDPOINT, ep, &len);
    int fds[2];
    if (pipe(fds))
        return -1;
    pid_t child = fork();
    if (child == 0) {
        /* A fresh context in the child; the parent's are never touched. */
        close(fds[0]);
        s_raw_sockets(&b, hwm);
        zmq_connect(b.sub, ep);
        char bep[256];
        size_t blen = sizeof bep;
        zmq_bind(b.pub, "tcp://127.0.0.1:*");
        zmq_getsockopt(b.pub, ZMQ_LAST_ENDPOINT, bep, &blen);
        if (write(fds[1], bep, strlen(bep) + 1) < 0)
            _exit(1);
        close(fds[1]);
        s_raw_b(&b);
        zmq_close(b.pub);
        zmq_close(b.sub);
        zmq_ctx_term(b.ctx);
        _exit(0);
    }
    close(fds[1]);
    ssize_t got = child > 0 ? read(fds[0], ep, sizeof ep - 1) : -1;
    close(fds[0]);
    if (got <= 0)
        return -1;
    ep[got] = 0;
    zmq_connect(a.sub, ep);
    /* Handshake: hello until one comes back, then drain the extra ones. */
    char buf[16];
    for (;;) {
        zmq_send(a.pub, "hello", 5, 0);
        zmq_pollitem_t it = {.socket = a.sub, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 5) > 0 && zmq_recv(a.sub, buf, sizeof buf, 0) == 5)
            break;
    }
    usleep(20000);
    while (zmq_recv(a.sub, buf, sizeof buf, ZMQ_DONTWAIT) >= 0)
        ;
    double result;
    if (mode == 0) {
        double *rtt = malloc((size_t) rounds * sizeof *rtt);
        char msg[8] = {1};
        for (int i = 0; i < rounds + WARMUP; i++) {
            double t0 = now();
            zmq_send(a.pub, msg, sizeof msg, 0);
            zmq_recv(a.sub, buf, sizeof buf, 0);
            if (i >= WARMUP)
                rtt[i - WARMUP] = (now() - t0) * 1e6;
        }
        qsort(rtt, (size_t) rounds, sizeof *rtt, cmp_double);
        result = rtt[rounds / 2];
        free(rtt);
    } else {
        char *data = calloc(1, size);
        data[0] = 1; /* not "hello" */
        double t0 = now();
        for (long i = 0; i < count; i++)
            zmq_send(a.pub, data, size, 0);
        while (zmq_recv(a.sub, buf, sizeof buf, 0) != 1) /* skip late hellos */
            ;
        result = now() - t0;
        free(data);
    }
    waitpid(child, NULL, 0);
    zmq_close(a.pub);
    zmq_close(a.sub);
    zmq_ctx_term(a.ctx);
    return result;
}

/* ---- Playdoh -------------------------------------------------------------- */

/* Runs fn on 2 nodes (ab: 0 -> 1, ba: 1 -> 0) with the same argument for
   both; returns node 0's number, or -1. */
static double s_task(pd_client_t *c, const char *mod, const char *fn, const void *arg, size_t len)
{
    pd_graph_t *g = pd_graph_new(2);
    pd_graph_edge(g, "ab", 0, 1);
    pd_graph_edge(g, "ba", 1, 0);
    uint8_t args[64];
    memcpy(args, arg, len);
    memcpy(args + len, arg, len);
    uint64_t id;
    pd_task_result_t res;
    double out = -1;
    if (pd_task_start(c, mod, fn, g, args, 2 * len, NULL, &id)) {
        fprintf(stderr, "%s: %s\n", fn, pd_client_error(c));
    } else if (pd_task_fetch(c, id, 600000, &res) || res.state != PD_TASK_DONE) {
        fprintf(stderr, "%s: %s\n", fn, res.error ? res.error : pd_client_error(c));
        pd_task_result_clear(&res);
    } else {
        pd_result_double(&res.nodes[0], &out);
        pd_task_result_clear(&res);
        pd_task_release(c, id);
    }
    pd_graph_destroy(&g);
    return out;
}

/* msgpack float64 and [float64, float64] */
static size_t s_pack1(uint8_t *p, double x)
{
    uint64_t bits;
    memcpy(&bits, &x, 8);
    p[0] = 0xcb;
    for (int k = 0; k < 8; k++)
        p[1 + k] = (uint8_t) (bits >> (56 - 8 * k));
    return 9;
}

static size_t s_pack2(uint8_t *p, double x, double y)
{
    p[0] = 0x92;
    size_t n = 1 + s_pack1(p + 1, x);
    return n + s_pack1(p + n, y);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 20000;
    long small = argc > 2 ? atol(argv[2]) : 2000000;
    long large = argc > 3 ? atol(argv[3]) : 1000;
    int repeat = argc > 4 ? atoi(argv[4]) : 5;
    if (rounds < 10 || small < 10 || large < 2 || repeat < 1 || repeat > 21) {
        fprintf(stderr, "usage: bench_sync [ROUNDS (20000)] [SMALL (2000000)] [LARGE (1000)] "
                        "[REPEAT (5, at most 21)]\n");
        return 2;
    }
    /* Built in build/bench/: the programs are one level up. */
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 4);
    if (!getenv("PLAYDOH_BINDIR") && sl > 0) {
        self[sl] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            strcpy(slash, "/..");
            setenv("PLAYDOH_BINDIR", self, 1);
        }
    }
    char path[] = "/tmp/playdoh-bench-sync-XXXXXX.c";
    int fd = mkstemps(path, 2);
    if (fd < 0 || write(fd, SRC, strlen(SRC)) != (ssize_t) strlen(SRC))
        return 1;
    close(fd);
    int err;
    pd_local_t *local = pd_local_start(2, &err);
    if (!local) {
        fprintf(stderr, "local cluster: %s\n", pd_strerror(err));
        return 1;
    }
    pd_client_t *c = pd_client_new(pd_local_endpoint(local), &err);
    char mod[PD_HASH_HEX];
    if (!c || pd_module_upload_file(c, path, mod)) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }
    unlink(path);
    printf("embedded cluster: 2 slots, %s; one task of 2 nodes (node processes), tcp loopback\n",
           pd_local_endpoint(local));
    uint8_t arg[32];
    /* compile the module first, outside the timings */
    s_task(c, mod, "pingpong", arg, s_pack1(arg, 10));

    enum { MAXREP = 21 };
    double raw_rt[MAXREP], pd_rt[MAXREP], raw_s[MAXREP], pd_s[MAXREP], raw_l[MAXREP],
        pd_l[MAXREP];
    size_t mib = 1u << 20;
    for (int k = 0; k < repeat; k++) {
        raw_rt[k] = s_raw(0, rounds, 0, 0, 0);
        pd_rt[k] = s_task(c, mod, "pingpong", arg, s_pack1(arg, rounds));
        raw_s[k] = s_raw(1, 0, small, 8, 16384 / 2);
        pd_s[k] = s_task(c, mod, "stream", arg, s_pack2(arg, (double) small, 8));
        raw_l[k] = s_raw(1, 0, large, mib, 16 / 2);
        pd_l[k] = s_task(c, mod, "stream", arg, s_pack2(arg, (double) large, (double) mib));
        if (pd_rt[k] < 0 || pd_s[k] < 0 || pd_l[k] < 0)
            return 1;
    }
    double rrt = median(raw_rt, repeat), prt = median(pd_rt, repeat);
    double rs = median(raw_s, repeat), ps = median(pd_s, repeat);
    double rl = median(raw_l, repeat), pl = median(pd_l, repeat);
    printf("medians of %d runs (raw and Playdoh interleaved):\n", repeat);
    printf("raw PUB/SUB: two processes, one context each, tcp loopback\n");
    printf("ping-pong round trip, raw PUB/SUB:      %8.1f us (median of %d each)\n", rrt, rounds);
    printf("ping-pong round trip, push/pop:         %8.1f us (median of %d each)  ratio %.2fx "
           "(target <= 30 us)\n", prt, rounds, prt / rrt);
    printf("8-byte messages, raw PUB/SUB (bounded): %10.0f msg/s (%ld in %.3f s)\n", small / rs,
           small, rs);
    printf("8-byte messages, push/pop:              %10.0f msg/s (%ld in %.3f s)  %.0f %% of raw "
           "(target >= 80 %%)\n", small / ps, small, ps, 100 * rs / ps);
    printf("1 MiB messages, raw PUB/SUB (bounded):  %8.2f GB/s (%ld in %.3f s)\n",
           large * (double) mib / rl / 1e9, large, rl);
    printf("1 MiB messages, push/pop:               %8.2f GB/s (%ld in %.3f s)  %.0f %% of raw "
           "(target >= 80 %%)\n", large * (double) mib / pl / 1e9, large, pl, 100 * rl / pl);
    double pd_rt0 = prt, pd_s0 = ps, pd_l0 = pl;
    pd_client_destroy(&c);
    pd_local_stop(&local);
    return pd_rt0 > 0 && pd_s0 > 0 && pd_l0 > 0 ? 0 : 1;
}
