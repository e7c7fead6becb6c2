/*  bench_zmq_echo: one libzmq hop alone, for bench_windows.sh. Built for
    Linux (cc -lzmq) and for Windows (MinGW-w64 against the cross-built
    libzmq); not part of the meson build.

      bench_zmq_echo echo EP       a ROUTER bound at EP echoes every message
                                   (the side that runs under Wine: like the
                                   Windows worker's DEALER, its messages go
                                   through libzmq's I/O thread and Wine's
                                   sockets)
      bench_zmq_echo ping EP [N]   a DEALER connects to EP and prints the
                                   median of N (2000) round trips of 64 bytes,
                                   in µs ("zmq_us V"), after 100 untimed; then
                                   sends "stop"
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static int cmp(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

/* Microseconds since sw was started (libzmq's portable stopwatch). */
static double now_us(void *sw) { return (double) zmq_stopwatch_intermediate(sw); }

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    void *ctx = zmq_ctx_new();
    if (strcmp(argv[1], "echo") == 0) {
        void *r = zmq_socket(ctx, ZMQ_ROUTER);
        if (zmq_bind(r, argv[2]))
            return 1;
        for (;;) {
            zmq_msg_t id, body;
            zmq_msg_init(&id);
            zmq_msg_init(&body);
            if (zmq_msg_recv(&id, r, 0) < 0 || zmq_msg_recv(&body, r, 0) < 0)
                return 1;
            int stop = zmq_msg_size(&body) == 4 && memcmp(zmq_msg_data(&body), "stop", 4) == 0;
            zmq_msg_send(&id, r, ZMQ_SNDMORE);
            zmq_msg_send(&body, r, 0);
            if (stop)
                break;
        }
        zmq_close(r);
        zmq_ctx_term(ctx);
        return 0;
    }
    int n = argc > 3 ? atoi(argv[3]) : 2000;
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 1000, tmo = 10000;
    zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(d, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    if (zmq_connect(d, argv[2]))
        return 1;
    double *t = calloc((size_t) n, sizeof *t);
    char buf[64] = {0};
    void *sw = zmq_stopwatch_start();
    for (int i = 0; i < n + 100; i++) {
        double t0 = now_us(sw);
        if (zmq_send(d, buf, sizeof buf, 0) < 0 || zmq_recv(d, buf, sizeof buf, 0) < 0)
            return 1;
        if (i >= 100)
            t[i - 100] = now_us(sw) - t0;
    }
    qsort(t, (size_t) n, sizeof *t, cmp);
    printf("zmq_us %.1f\n", t[n / 2]);
    zmq_stopwatch_stop(sw);
    zmq_send(d, "stop", 4, 0);
    zmq_recv(d, buf, sizeof buf, 0);
    zmq_close(d);
    zmq_ctx_term(ctx);
    return 0;
}
