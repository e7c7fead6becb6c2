/* Integration tests of the bounds on what a client may send (issue 15,
   item 3): a job's argument over the broker's max_arg, a batch over its
   max_batch and arguments of unfinished jobs over its max_queued are
   refused with PD_ETOOBIG / PD_EOVERLOAD naming the job, by the client
   before sending and by the broker on receipt (a hand-made submit that
   skips the client's check); and a broker that held a large batch gives
   the memory back once the batch is released. */
#include "pd_codec.h"
#include "pd_harness.h"
#include "pd_msg.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

static const char *MODULE_SRC =
    "#include <playdoh_task.h>\n"
    "#include <string.h>\n"
    "/* the length of a string argument */\n"
    "PD_TASK(len, t) {\n"
    "    pd_value_t v = pd_arg(t);\n"
    "    const char *s; size_t n;\n"
    "    if (pd_val_str(&v, &s, &n)) return -1;\n"
    "    return pd_out_double(t, (double) n);\n"
    "}\n"
    "PD_TASK_DOUBLE(square, x) { return x * x; }\n";

static pd_harness_t h;
static pd_client_t *c;
static char mod[PD_HASH_HEX];

static void start(int cpus, const char *const *extra)
{
    pd_harness_start(&h, extra);
    if (cpus)
        pd_harness_add_worker(&h, cpus);
    c = pd_harness_client(&h);
    if (cpus)
        pd_harness_wait_slots(&h, c, cpus);
    char *path = pd_harness_module(&h, "bounds.c", MODULE_SRC);
    cr_assert_eq(pd_module_upload_file(c, path, mod), 0, "%s", pd_client_error(c));
    free(path);
}

static void stop(void)
{
    pd_client_destroy(&c);
    pd_harness_stop(&h);
}

TestSuite(bounds, .fini = stop, .timeout = 240);

/* n msgpack strings; string k (from 0) has sizes[k] bytes. */
static void pack_strings(pd_buf_t *b, const size_t *sizes, size_t n)
{
    pd_buf_init(b);
    msgpack_packer pk;
    pd_packer_init(&pk, b);
    for (size_t k = 0; k < n; k++) {
        char *s = malloc(sizes[k] + 1);
        cr_assert_not_null(s);
        memset(s, 'x', sizes[k]);
        msgpack_pack_str(&pk, (uint32_t) sizes[k]);
        msgpack_pack_str_body(&pk, s, sizes[k]);
        free(s);
    }
    cr_assert_not(b->failed);
}

/* A submit by hand (no client-side check); returns the reply's type and
   copies its msg into why. */
static char *raw_submit(const pd_buf_t *args, uint32_t n, uint64_t batch_bytes, char *why,
                        size_t cap)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    cr_assert_eq(zmq_connect(s, h.endpoint), 0);
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "submit", batch_bytes ? 6 : 5);
    pd_pack_kv_uint(&pk, "req", 1);
    pd_pack_kv_str(&pk, "mod", mod);
    pd_pack_kv_str(&pk, "fn", "len");
    pd_pack_kv_uint(&pk, "at", 40);
    if (batch_bytes)
        pd_pack_kv_uint(&pk, "batch_bytes", batch_bytes);
    pd_pack_cstr(&pk, "args");
    msgpack_pack_array(&pk, n);
    pd_pack_raw(&pk, args->data, args->len);
    cr_assert_eq(zmq_send(s, b.data, b.len, 0), (int) b.len);
    pd_buf_free(&b);
    zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
    cr_assert_eq(zmq_poll(&it, 1, 30000), 1, "no reply to the submit");
    zmq_msg_t reply;
    zmq_msg_init(&reply);
    cr_assert_geq(zmq_msg_recv(&reply, s, 0), 0);
    pd_msg_t m;
    cr_assert_eq(pd_msg_parse(&m, zmq_msg_data(&reply), zmq_msg_size(&reply)), 0);
    char *type = strdup(m.type);
    why[0] = 0;
    if (pd_msg_has(&m, "msg"))
        pd_msg_str(&m, "msg", why, cap);
    zmq_msg_close(&reply);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return type;
}

Test(bounds, an_argument_over_the_limit_is_refused_naming_its_job)
{
    static const char *const flags[] = {"--max-arg-mb", "1", NULL};
    start(1, flags);
    size_t sizes[] = {10, 2u << 20, 10};
    pd_buf_t args;
    pack_strings(&args, sizes, 3);
    uint64_t ids[3];
    long got = pd_map(c, mod, "len", args.data, args.len, 3, NULL, ids);
    cr_assert_eq(got, PD_ETOOBIG, "%ld: %s", got, pd_client_error(c));
    cr_assert(strstr(pd_client_error(c), "job 2 of the batch"), "%s", pd_client_error(c));
    cr_assert(strstr(pd_client_error(c), "--shared"), "%s", pd_client_error(c));
    /* The broker checks too, for a client that does not. */
    char why[1024];
    char *type = raw_submit(&args, 3, 0, why, sizeof why);
    cr_assert_str_eq(type, "error", "%s", why);
    cr_assert(strstr(why, "job 42 of the batch"), "%s", why);
    free(type);
    pd_buf_free(&args);
    /* Nothing was queued: the next job takes the first id. */
    double x = 3;
    cr_assert_eq(pd_map_doubles(c, mod, "square", &x, 1, NULL, ids), 1, "%s",
                 pd_client_error(c));
    cr_assert_eq(ids[0], 1);
}

Test(bounds, a_batch_over_the_limit_is_refused_whole)
{
    static const char *const flags[] = {"--max-batch-mb", "2", NULL};
    start(1, flags);
    enum { N = 30 };
    size_t sizes[N];
    for (int i = 0; i < N; i++)
        sizes[i] = 100000; /* 3 MB in all */
    pd_buf_t args;
    pack_strings(&args, sizes, N);
    uint64_t ids[N];
    long got = pd_map(c, mod, "len", args.data, args.len, N, NULL, ids);
    cr_assert_eq(got, PD_ETOOBIG, "%ld: %s", got, pd_client_error(c));
    cr_assert(strstr(pd_client_error(c), "split the batch"), "%s", pd_client_error(c));
    char why[1024];
    char *type = raw_submit(&args, N, args.len, why, sizeof why);
    cr_assert_str_eq(type, "error", "%s", why);
    cr_assert(strstr(why, "split the batch"), "%s", why);
    free(type);
    pd_buf_free(&args);
}

Test(bounds, arguments_of_unfinished_jobs_are_bounded_broker_wide)
{
    /* No worker: the jobs stay queued and keep their arguments. */
    static const char *const flags[] = {"--max-queued-mb", "8", NULL};
    start(0, flags);
    size_t sizes[] = {3u << 20, 3u << 20};
    pd_buf_t args;
    pack_strings(&args, sizes, 2);
    uint64_t ids[2];
    cr_assert_eq(pd_map(c, mod, "len", args.data, args.len, 2, NULL, ids), 2, "%s",
                 pd_client_error(c));
    long got = pd_map(c, mod, "len", args.data, args.len, 2, NULL, ids);
    cr_assert_eq(got, PD_EOVERLOAD, "%ld: %s", got, pd_client_error(c));
    cr_assert(strstr(pd_client_error(c), "max_queued_mb"), "%s", pd_client_error(c));
    pd_buf_free(&args);
}

/* The broker's resident memory, in KiB. */
static long broker_rss_kib(void)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int) h.broker);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

Test(bounds, a_broker_gives_the_memory_of_a_large_batch_back)
{
    /* Under AddressSanitizer the allocator is ASan's: freed blocks wait in
       its quarantine (256 MiB) before they are unmapped. Without it, this
       measures the same thing: freed memory going back to the system. */
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[1024];
    snprintf(opts, sizeof opts, "%s%squarantine_size_mb=0", asan ? asan : "", asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    static const char *const flags[] = {"--no-journal", NULL};
    start(2, flags);
    enum { N = 48 };
    size_t sizes[N];
    for (int i = 0; i < N; i++)
        sizes[i] = (4u << 20) + (size_t) i * 1000; /* about 200 MB in all */
    pd_buf_t args;
    pack_strings(&args, sizes, N);
    /* A small batch first, so that the baseline has the broker warm. */
    double x = 2;
    uint64_t one;
    cr_assert_eq(pd_map_doubles(c, mod, "square", &x, 1, NULL, &one), 1);
    pd_result_t r1;
    cr_assert_eq(pd_fetch(c, &one, 1, 30000, &r1, NULL, NULL), 1);
    pd_results_clear(&r1, 1);
    long base = broker_rss_kib();
    uint64_t ids[N];
    pd_result_t res[N];
    cr_assert_eq(pd_map(c, mod, "len", args.data, args.len, N, NULL, ids), N, "%s",
                 pd_client_error(c));
    long held = broker_rss_kib();
    cr_assert_eq(pd_fetch(c, ids, N, 120000, res, NULL, NULL), N, "%s", pd_client_error(c));
    for (int i = 0; i < N; i++) {
        double y;
        cr_assert_eq(res[i].state, PD_JOB_DONE, "%s", res[i].error ? res[i].error : "");
        cr_assert_eq(pd_result_double(&res[i], &y), 0);
        cr_assert_eq(y, (double) sizes[i]);
    }
    pd_results_clear(res, N);
    cr_assert_eq(pd_release(c, ids, N), N, "%s", pd_client_error(c));
    pd_buf_free(&args);
    /* The broker trims its heap on its next tick. */
    long after = held;
    for (int i = 0; i < 50 && after > base + 32 * 1024; i++) {
        usleep(100000);
        after = broker_rss_kib();
    }
    cr_log_info("broker RSS: %ld KiB before, %ld KiB holding the batch, %ld KiB after", base,
                held, after);
    cr_assert_gt(held, base + 100 * 1024, "the batch never was in the broker's memory?");
    cr_assert_leq(after, base + 32 * 1024,
                  "the broker kept %ld KiB of a released batch (%ld before, %ld holding it)",
                  after - base, base, held);
}

/* ---- hostile connections ----------------------------------------------- */

static int open_fds(pid_t pid)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "ls /proc/%d/fd | wc -l", (int) pid);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    int n = -1;
    cr_assert_eq(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

Test(bounds, noise_and_idle_connections_are_closed_and_logged_within_limits, .timeout = 120)
{
    pd_harness_start_logged(&h, NULL);
    c = pd_harness_client(&h);
    int port = 0;
    cr_assert_eq(sscanf(strrchr(h.endpoint, ':') + 1, "%d", &port), 1);
    int base = open_fds(h.broker);
    enum { IDLE = 150, NOISY = 150 };
    static int fds[IDLE + NOISY];
    for (int i = 0; i < IDLE + NOISY; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        cr_assert_eq(connect(fds[i], (struct sockaddr *) &a, sizeof a), 0);
        if (i >= IDLE) {
            unsigned char junk[64];
            for (size_t k = 0; k < sizeof junk; k++)
                junk[k] = (unsigned char) (rand() & 0xff);
            junk[0] = 0xff; /* a ZMTP greeting's first byte, then nonsense */
            cr_assert_eq(write(fds[i], junk, sizeof junk), (ssize_t) sizeof junk);
        }
    }
    usleep(500000);
    int during = open_fds(h.broker);
    cr_assert_gt(during, base + IDLE / 2, "the connections never reached the broker?");
    /* Within a few seconds, every connection that did not finish its
       handshake is closed by the broker. */
    int now = during;
    for (int i = 0; i < 50 && now > base + 5; i++) {
        usleep(100000);
        now = open_fds(h.broker);
    }
    for (int i = 0; i < IDLE + NOISY; i++)
        close(fds[i]);
    cr_assert_leq(now, base + 5, "%d connections still open after 5 s (%d before, %d with them)",
                  now - base, base, during);
    /* The broker still serves. */
    int w = -1, s = -1;
    cr_assert_eq(pd_client_cluster_size(c, &w, &s), 0, "%s", pd_client_error(c));
    /* And its log holds a bounded number of lines about them. */
    int lines = pd_harness_log_count(&h, "broker.log", "refused a connection");
    cr_assert_leq(lines, 25, "%d lines about %d bad connections", lines, IDLE + NOISY);
}
