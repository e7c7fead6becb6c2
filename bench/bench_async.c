/*  bench_async: speed of the asynchronous interface on the embedded cluster,
    with a raw libzmq request-reply round trip over the same transport
    measured in the same run as the baseline.

    Prints: raw round trip; Playdoh round trip of one trivial job and the
    ratio; throughput of 100,000 no-op jobs submitted as one batch; wall time
    of 200 jobs of 10 ms CPU each against the ideal (total CPU / slots).

    Usage: bench_async [SLOTS (2)] [JOBS (100000)]
*/
#include "playdoh.h"

#include <pthread.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static const char *SRC =
    "#include <playdoh_task.h>\n"
    "#include <time.h>\n"
    "PD_TASK(noop, t) { (void) t; return 0; }\n"
    "/* burns x ms of CPU */\n"
    "PD_TASK_DOUBLE(burn, x) {\n"
    "    struct timespec a, b;\n"
    "    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);\n"
    "    volatile double s = 0;\n"
    "    for (;;) {\n"
    "        for (int i = 0; i < 1000; i++) s += i;\n"
    "        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);\n"
    "        if ((b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6 >= x) break;\n"
    "    }\n"
    "    return x;\n"
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

static double median(double *v, int n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* ---- raw libzmq baseline: DEALER -> ROUTER echo over TCP loopback ---------- */

static void *s_echo(void *arg)
{
    void *router = arg;
    for (;;) {
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, router, 0) < 0)
            break;
        zmq_msg_recv(&body, router, 0);
        int stop = zmq_msg_size(&body) == 4 && memcmp(zmq_msg_data(&body), "stop", 4) == 0;
        zmq_msg_send(&id, router, ZMQ_SNDMORE);
        zmq_msg_send(&body, router, 0);
        if (stop)
            break;
    }
    return NULL;
}

/* The echo side runs in a thread (in_process) or in a forked child process,
   as the broker does for a real client. */
static double raw_round_trip_us(int rounds, bool in_process)
{
    void *ctx = zmq_ctx_new();
    void *router = NULL;
    char ep[256];
    pthread_t th;
    pid_t child = -1;
    if (in_process) {
        router = zmq_socket(ctx, ZMQ_ROUTER);
        zmq_bind(router, "tcp://127.0.0.1:*");
        size_t len = sizeof ep;
        zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &len);
        pthread_create(&th, NULL, s_echo, router);
    } else {
        int fds[2];
        if (pipe(fds))
            return -1;
        child = fork();
        if (child == 0) {
            void *cctx = zmq_ctx_new();
            void *r = zmq_socket(cctx, ZMQ_ROUTER);
            zmq_bind(r, "tcp://127.0.0.1:*");
            size_t len = sizeof ep;
            zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, ep, &len);
            if (write(fds[1], ep, strlen(ep) + 1) < 0)
                _exit(1);
            s_echo(r);
            zmq_close(r);
            zmq_ctx_term(cctx);
            _exit(0);
        }
        close(fds[1]);
        ssize_t got = read(fds[0], ep, sizeof ep - 1);
        close(fds[0]);
        if (got <= 0)
            return -1;
        ep[got] = 0;
    }
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    zmq_connect(dealer, ep);
    char msg[64] = {0}, back[64];
    double *t = malloc(rounds * sizeof *t);
    for (int i = 0; i < rounds + 100; i++) {
        double t0 = now();
        zmq_send(dealer, msg, sizeof msg, 0);
        zmq_recv(dealer, back, sizeof back, 0);
        if (i >= 100)
            t[i - 100] = (now() - t0) * 1e6;
    }
    zmq_send(dealer, "stop", 4, 0);
    zmq_recv(dealer, back, sizeof back, 0);
    if (in_process)
        pthread_join(th, NULL);
    else
        waitpid(child, NULL, 0);
    double m = median(t, rounds);
    free(t);
    int linger = 0;
    zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(dealer);
    if (router)
        zmq_close(router);
    zmq_ctx_term(ctx);
    return m;
}

int main(int argc, char **argv)
{
    int slots = argc > 1 ? atoi(argv[1]) : 2;
    /* Built in build/bench/: the programs are one level up. */
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (!getenv("PLAYDOH_BINDIR") && sl > 0) {
        self[sl] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            strcpy(slash, "/..");
            setenv("PLAYDOH_BINDIR", self, 1);
        }
    }
    int njobs = argc > 2 ? atoi(argv[2]) : 100000;
    char path[] = "/tmp/playdoh-bench-XXXXXX.c";
    int fd = mkstemps(path, 2);
    if (fd < 0 || write(fd, SRC, strlen(SRC)) != (ssize_t) strlen(SRC))
        return 1;
    close(fd);

    int err;
    pd_local_t *local = pd_local_start(slots, &err);
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
    printf("embedded cluster: %d slots, %s\n", slots, pd_local_endpoint(local));

    /* Round trip of one trivial job, against raw libzmq. */
    int rounds = 1000;
    double raw = raw_round_trip_us(rounds, false);
    double raw_thread = raw_round_trip_us(rounds, true);
    double *t = malloc(rounds * sizeof *t);
    pd_result_t r;
    uint64_t id;
    double x = 1;
    for (int i = 0; i < rounds + 50; i++) {
        double t0 = now();
        if (pd_map_doubles(c, mod, "noop", &x, 1, NULL, &id) != 1 ||
            pd_fetch(c, &id, 1, 10000, &r, NULL, NULL) != 1 || r.state != PD_JOB_DONE) {
            fprintf(stderr, "round trip failed: %s\n", pd_client_error(c));
            return 1;
        }
        if (i >= 50)
            t[i - 50] = (now() - t0) * 1e6;
        pd_results_clear(&r, 1);
        pd_release(c, &id, 1);
    }
    double rt = median(t, rounds);
    free(t);
    printf("round trip, raw libzmq DEALER/ROUTER over tcp loopback, echo in another process: "
           "%6.1f us (median of %d)\n", raw, rounds);
    printf("round trip, raw libzmq DEALER/ROUTER over tcp loopback, echo in a thread:         "
           "%6.1f us\n", raw_thread);
    printf("round trip, one trivial job through Playdoh:                                     "
           "%6.1f us (median of %d): %.2fx the raw round trip between processes, %.2fx the "
           "in-process one (target <= 1.5x)\n", rt, rounds, rt / raw, rt / raw_thread);

    /* Throughput of njobs no-op jobs submitted as one batch. */
    double *xs = calloc(njobs, sizeof *xs);
    uint64_t *ids = calloc(njobs, sizeof *ids);
    pd_result_t *res = calloc(njobs, sizeof *res);
    double t0 = now();
    long got = pd_map_doubles(c, mod, "noop", xs, njobs, NULL, ids);
    double t_sub = now() - t0;
    long ended = got == njobs ? pd_fetch(c, ids, njobs, 600000, res, NULL, NULL) : -1;
    double t_all = now() - t0;
    if (ended != njobs) {
        fprintf(stderr, "throughput run failed: %s\n", pd_client_error(c));
        return 1;
    }
    long ok = 0;
    for (int i = 0; i < njobs; i++)
        ok += res[i].state == PD_JOB_DONE;
    pd_results_clear(res, njobs);
    pd_release(c, ids, njobs);
    printf("throughput, %d no-op jobs in one batch: %.0f jobs/s (submit %.3f s, all results "
           "%.3f s, %ld done; target >= 200000)\n", njobs, njobs / t_all, t_sub, t_all, ok);

    /* 200 jobs of 10 ms CPU: efficiency against total CPU / slots. */
    int nb = 200;
    for (int i = 0; i < nb; i++)
        xs[i] = 10;
    t0 = now();
    got = pd_map_doubles(c, mod, "burn", xs, nb, NULL, ids);
    ended = got == nb ? pd_fetch(c, ids, nb, 600000, res, NULL, NULL) : -1;
    double wall = now() - t0;
    pd_results_clear(res, nb);
    pd_release(c, ids, nb);
    double ideal = nb * 0.010 / slots;
    printf("efficiency, %d jobs of 10 ms CPU on %d slots: wall %.3f s, ideal %.3f s, %.1f %% "
           "(target >= 97 %%)\n", nb, slots, wall, ideal, 100 * ideal / wall);
    free(xs);
    free(ids);
    free(res);
    pd_client_destroy(&c);
    pd_local_stop(&local);
    return ended == nb ? 0 : 1;
}
