/*  Integration tests of security and hostile input: a real broker with
    CurveZMQ on loopback (--secure), real workers and clients with keys made
    for the test. Every test first has the broker accept a batch of jobs,
    then does something hostile (no key, an unlisted key, the wrong role,
    the wrong broker key, malformed and oversize frames, a flood of
    connections), and checks that it was refused with a log line and that
    nothing else changed: the batch completes with the right values and the
    cluster keeps its slots. */
#include "pd_auth.h"
#include "pd_codec.h"
#include "pd_harness.h"
#include "pd_msg.h"
#include "pd_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

static const char *MODULE_SRC =
    "#include <playdoh_task.h>\n"
    "#include <time.h>\n"
    "/* x * x after 20 ms */\n"
    "PD_TASK_DOUBLE(slow_square, x) {\n"
    "    struct timespec ts = {0, 20 * 1000000L};\n"
    "    nanosleep(&ts, NULL);\n"
    "    return x * x;\n"
    "}\n";

enum { BATCH = 60, SLOTS = 2 };

static pd_harness_t h;
static pd_client_t *c;
static char mod[PD_HASH_HEX];
static uint64_t ids[BATCH];
static char why[2048];

static void start(bool secure, const char *const *extra)
{
    if (secure)
        pd_harness_start_secure(&h, extra);
    else
        pd_harness_start_logged(&h, extra);
    pd_harness_add_worker(&h, SLOTS);
    c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, SLOTS);
    char *path = pd_harness_module(&h, "slow.c", MODULE_SRC);
    cr_assert_eq(pd_module_upload_file(c, path, mod), 0, "%s", pd_client_error(c));
    free(path);
    /* The batch "already accepted" before anything hostile happens. */
    double x[BATCH];
    for (int i = 0; i < BATCH; i++)
        x[i] = i;
    cr_assert_eq(pd_map_doubles(c, mod, "slow_square", x, BATCH, NULL, ids), BATCH, "%s",
                 pd_client_error(c));
}

static void stop(void)
{
    pd_client_destroy(&c);
    pd_harness_stop(&h);
}

TestSuite(security, .fini = stop, .timeout = 180);

/* Nothing else changed: every accepted job completes with its value, the
   cluster keeps its slots, and the broker still answers. */
static void s_nothing_else_changed(void)
{
    static pd_result_t res[BATCH];
    cr_assert_eq(pd_fetch(c, ids, BATCH, 60000, res, NULL, NULL), BATCH, "%s",
                 pd_client_error(c));
    for (int i = 0; i < BATCH; i++) {
        double y;
        cr_assert_eq(res[i].state, PD_JOB_DONE, "job %d: %s", i, res[i].error);
        cr_assert_eq(pd_result_double(&res[i], &y), 0);
        cr_assert_float_eq(y, (double) i * i, 1e-9);
    }
    pd_results_clear(res, BATCH);
    int workers = 0, slots = 0;
    cr_assert_eq(pd_client_cluster_size(c, &workers, &slots), 0, "%s", pd_client_error(c));
    cr_assert_eq(workers, 1, "the cluster has %d workers, not 1", workers);
    cr_assert_eq(slots, SLOTS);
    cr_assert_eq(kill(h.broker, 0), 0, "the broker died");
}

static void s_expect_log(const char *file, const char *text)
{
    cr_assert(pd_harness_log_has(&h, file, text, 10000), "%s has no line with \"%s\"", file,
              text);
}

/* ---- synchronous tasks ------------------------------------------------- */

static const char *RING_SRC =
    "#include <playdoh_task.h>\n"
    "#include <string.h>\n"
    "/* A token goes `rounds` times round the ring `next`; node 0 returns it. */\n"
    "PD_TASK(ring, t) {\n"
    "    double rd;\n"
    "    if (pd_arg_double(t, &rd)) return pd_task_fail(t, \"want a number of rounds\");\n"
    "    int rounds = (int) rd, me = pd_node_index(t);\n"
    "    uint64_t token = 0;\n"
    "    if (me == 0 && pd_push(t, \"next\", &token, 8)) return -1;\n"
    "    for (int r = 0; r < rounds; r++) {\n"
    "        const void *p; size_t len;\n"
    "        if (pd_pop(t, \"next\", &p, &len) < 0) return -1;\n"
    "        memcpy(&token, p, 8);\n"
    "        token++;\n"
    "        if ((me != 0 || r + 1 < rounds) && pd_push(t, \"next\", &token, 8)) return -1;\n"
    "    }\n"
    "    return pd_out_int(t, (int64_t) token);\n"
    "}\n";

/* Runs `ring` on a ring of n nodes for 100 rounds; fills res. */
static void s_run_ring(pd_client_t *cl, int n, pd_task_result_t *res)
{
    char *path = pd_harness_module(&h, "ring.c", RING_SRC);
    char rmod[PD_HASH_HEX];
    cr_assert_eq(pd_module_upload_file(cl, path, rmod), 0, "%s", pd_client_error(cl));
    free(path);
    pd_graph_t *g = pd_graph_new(n);
    cr_assert_eq(pd_graph_ring(g, "next"), 0);
    uint8_t args[64];
    for (int i = 0; i < n; i++) {
        args[9 * i] = 0xcb; /* float64 100.0, big-endian */
        static const uint8_t hundred[8] = {0x40, 0x59, 0, 0, 0, 0, 0, 0};
        memcpy(args + 9 * i + 1, hundred, 8);
    }
    uint64_t id;
    cr_assert_eq(pd_task_start(cl, rmod, "ring", g, args, (size_t) 9 * n, NULL, &id), 0, "%s",
                 pd_client_error(cl));
    cr_assert_eq(pd_task_fetch(cl, id, 120000, res), 0, "%s", pd_client_error(cl));
    pd_graph_destroy(&g);
}

Test(security, a_synchronous_task_runs_with_curvezmq_between_its_nodes)
{
    /* A worker whose log shows what its node processes say. */
    static const char *const dbg[] = {"--log-level", "debug", NULL};
    pd_harness_start_secure(&h, NULL);
    pd_harness_add_worker_as(&h, SLOTS, NULL, dbg);
    c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, SLOTS);
    pd_task_result_t res;
    s_run_ring(c, SLOTS, &res);
    cr_assert_eq(res.state, PD_TASK_DONE, "%s", res.error ? res.error : "");
    /* Each node bound its tubes with CurveZMQ; the keys went through the
       broker: a node without its neighbour's key could not have connected. */
    s_expect_log("worker-0.log", "tubes bound on tcp://");
    s_expect_log("worker-0.log", "(CurveZMQ)");
    cr_assert_not(pd_harness_log_has(&h, "worker-0.log", "(no security)", 0),
                  "a node of a secure worker ran its tubes in clear");
    pd_task_result_clear(&res);
}

Test(security, a_worker_whose_owner_lists_other_clients_refuses_task_nodes)
{
    char list[300];
    pd_harness_start_secure(&h, NULL);
    snprintf(list, sizeof list, "%s/code-clients", h.dir);
    FILE *f = fopen(list, "w");
    cr_assert_not_null(f);
    fputs("# nobody yet\n", f);
    fclose(f);
    const char *const extra[] = {"--code-policy", "clients", "--code-list", list, NULL};
    pd_harness_add_worker_as(&h, SLOTS, NULL, extra);
    c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, SLOTS);
    pd_task_result_t res;
    s_run_ring(c, SLOTS, &res);
    cr_assert_eq(res.state, PD_TASK_FAILED);
    cr_assert_eq(res.code, PD_EREFUSED, "%s", pd_strerror(res.code));
    cr_assert(res.error && strstr(res.error, "runs code only from the client keys its owner "
                                  "lists"), "%s", res.error ? res.error : "(no error)");
    s_expect_log("worker-0.log", "refused task");
    pd_task_result_clear(&res);
    /* The cluster keeps its slots and runs the next task once the owner
       lists this client. */
    char key[64];
    pd_harness_identity(&h, "client", 0, why, sizeof why, key);
    f = fopen(list, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s the test client\n", key);
    fclose(f);
    s_run_ring(c, SLOTS, &res);
    cr_assert_eq(res.state, PD_TASK_DONE, "%s", res.error ? res.error : "");
    pd_task_result_clear(&res);
}

/* ---- keys and roles ---------------------------------------------------- */

Test(security, a_client_without_a_key_is_refused)
{
    start(true, NULL);
    int err = 0;
    char nokey[300];
    snprintf(nokey, sizeof nokey, "%s/nobody", h.dir);
    pd_client_opts_t o = {.security = PD_SECURITY_CURVE, .config_dir = nokey,
                          .broker_key = h.broker_key, .why = why, .whycap = sizeof why};
    cr_assert_null(pd_client_open(h.endpoint, &o, &err));
    cr_assert_eq(err, PD_ENOKEY, "%s", pd_strerror(err));
    cr_assert(strstr(why, "playdoh-keygen"), "%s", why);
    /* Without CurveZMQ at all: the broker refuses the handshake and says so. */
    pd_client_opts_t plain = {.security = PD_SECURITY_NONE, .why = why, .whycap = sizeof why};
    cr_assert_null(pd_client_open(h.endpoint, &plain, &err));
    cr_assert_eq(err, PD_EAUTH, "%s: %s", pd_strerror(err), why);
    cr_assert(strstr(why, "requires CurveZMQ"), "%s", why);
    s_expect_log("broker.log", "during its handshake");
    s_nothing_else_changed();
}

Test(security, a_client_with_an_unlisted_key_is_refused)
{
    start(true, NULL);
    char conf[300], key[41];
    pd_harness_identity(&h, "eve", PD_ROLE_NONE, conf, sizeof conf, key);
    int err = 0;
    cr_assert_null(pd_harness_client_as(&h, "eve", &err, why, sizeof why));
    cr_assert_eq(err, PD_EAUTH, "%s: %s", pd_strerror(err), why);
    cr_assert(strstr(why, "refused this client's key") && strstr(why, key), "%s", why);
    char line[200];
    snprintf(line, sizeof line, "key %s is not on the allow-list", key);
    s_expect_log("broker.log", line);
    s_nothing_else_changed();
}

Test(security, a_worker_key_cannot_submit_jobs)
{
    start(true, NULL);
    char conf[300], key[41];
    pd_harness_identity(&h, "node9", PD_ROLE_WORKER, conf, sizeof conf, key);
    int err = 0;
    cr_assert_null(pd_harness_client_as(&h, "node9", &err, why, sizeof why));
    cr_assert_eq(err, PD_EREFUSED, "%s: %s", pd_strerror(err), why);
    cr_assert(strstr(why, "may act as worker only"), "%s", why);
    s_expect_log("broker.log", "may act as worker only");
    /* The same machine admitted as both may. */
    pd_harness_identity(&h, "node9", PD_ROLE_BOTH, conf, sizeof conf, key);
    pd_client_t *both = pd_harness_client_as(&h, "node9", &err, why, sizeof why);
    cr_assert_not_null(both, "%s", why);
    pd_client_destroy(&both);
    s_nothing_else_changed();
}

Test(security, a_client_key_cannot_register_as_a_worker)
{
    start(true, NULL);
    char conf[300];
    pd_harness_identity(&h, "alice", PD_ROLE_CLIENT, conf, sizeof conf, NULL);
    pd_harness_add_worker_as(&h, 4, "alice", NULL);
    s_expect_log("broker.log", "may act as client only");
    s_nothing_else_changed();
}

Test(security, a_worker_with_a_wrong_broker_key_never_joins)
{
    start(true, NULL);
    char conf[300], other[41], sec[41];
    pd_harness_identity(&h, "node2", PD_ROLE_WORKER, conf, sizeof conf, NULL);
    zmq_curve_keypair(other, sec);
    const char *extra[] = {"--broker-key", other, NULL};
    int w = pd_harness_add_worker_as(&h, 4, "node2", extra);
    char log[64];
    snprintf(log, sizeof log, "worker-%d.log", w);
    s_expect_log(log, "refused the connection");
    s_expect_log("broker.log", "cryptographic failure");
    cr_assert_eq(kill(h.workers[w], 0), 0, "the worker gave up instead of retrying");
    s_nothing_else_changed();
}

Test(security, a_worker_without_a_trusted_broker_key_says_how_to_trust_it)
{
    start(true, NULL);
    char conf[300], key[41], known[400];
    pd_harness_identity(&h, "node3", PD_ROLE_WORKER, conf, sizeof conf, key);
    snprintf(known, sizeof known, "%s/known_brokers", conf);
    cr_assert_eq(unlink(known), 0);
    int w = pd_harness_add_worker_as(&h, 4, "node3", NULL);
    char log[64], line[320];
    snprintf(log, sizeof log, "worker-%d.log", w);
    snprintf(line, sizeof line, "playdoh-keygen trust %s KEY", h.endpoint);
    s_expect_log(log, line);
    int status = pd_proc_stop(h.workers[w], 5000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d", status);
    h.workers[w] = 0;
    s_nothing_else_changed();
}

Test(security, keys_are_admitted_and_revoked_without_a_restart)
{
    start(true, NULL);
    char conf[300], key[41], allow[300];
    pd_harness_identity(&h, "late", PD_ROLE_NONE, conf, sizeof conf, key);
    int err = 0;
    cr_assert_null(pd_harness_client_as(&h, "late", &err, why, sizeof why));
    snprintf(allow, sizeof allow, "%s/broker/allowed", h.dir);
    cr_assert_eq(pd_auth_allow_add(allow, key, PD_ROLE_CLIENT, "late", why, sizeof why), 0);
    pd_client_t *late = pd_harness_client_as(&h, "late", &err, why, sizeof why);
    cr_assert_not_null(late, "a key admitted while the broker runs was refused: %s", why);
    /* Revoked: the open connection is refused at its next request. */
    cr_assert_eq(pd_auth_allow_remove(allow, "late", why, sizeof why), 1);
    int workers, slots, rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++) {
        rc = pd_client_cluster_size(late, &workers, &slots);
        if (rc == 0)
            usleep(50000);
    }
    cr_assert_eq(rc, PD_EREFUSED, "a revoked key still talks: %s", pd_strerror(rc));
    cr_assert(strstr(pd_client_error(late), "no longer on the broker's allow-list"), "%s",
              pd_client_error(late));
    pd_client_destroy(&late);
    s_expect_log("broker.log", "no longer on the broker's allow-list");
    s_nothing_else_changed();
}

Test(security, a_revoked_worker_is_forgotten_and_comes_back_when_admitted_again)
{
    start(true, NULL);
    char allow[300];
    snprintf(allow, sizeof allow, "%s/broker/allowed", h.dir);
    cr_assert_eq(pd_auth_allow_remove(allow, "worker", why, sizeof why), 1, "%s", why);
    s_expect_log("broker.log", "no longer allowed as a worker");
    int workers = 1, slots = 1;
    for (int i = 0; i < 200 && workers; i++) {
        cr_assert_eq(pd_client_cluster_size(c, &workers, &slots), 0, "%s", pd_client_error(c));
        usleep(50000);
    }
    cr_assert_eq(workers, 0, "a revoked worker stayed registered");
    /* SIGHUP reads the list again at once; the worker registers again. */
    char conf[300];
    pd_harness_identity(&h, "worker", PD_ROLE_WORKER, conf, sizeof conf, NULL);
    cr_assert_eq(kill(h.broker, SIGHUP), 0);
    pd_harness_wait_slots(&h, c, SLOTS);
    s_nothing_else_changed();
}

Test(security, a_rogue_broker_is_refused_even_when_announced_at_its_address)
{
    start(true, NULL);
    /* A second broker with its own key: what a forged beacon would point to. */
    pd_harness_t rogue;
    pd_harness_start_secure(&rogue, NULL);
    char conf[300], key[41];
    pd_harness_identity(&h, "roamer", PD_ROLE_CLIENT, conf, sizeof conf, key);
    /* roamer trusts the real broker's key at any address (discovery). */
    cr_assert_eq(pd_auth_trust_add(conf, "*", h.broker_key, "lab", why, sizeof why), 0);
    char path[400];
    snprintf(path, sizeof path, "%s/known_brokers", conf);
    /* A beacon announces the rogue's address: the trusted key does not open it. */
    pd_client_opts_t o = {.security = PD_SECURITY_CURVE, .config_dir = conf, .why = why,
                          .whycap = sizeof why};
    int err = 0;
    pd_client_t *x = pd_client_open(rogue.endpoint, &o, &err);
    cr_assert_null(x, "the client talked to a rogue broker");
    cr_assert_eq(err, PD_EAUTH, "%s: %s", pd_strerror(err), why);
    cr_assert(strstr(why, "may not be your broker"), "%s", why);
    /* A beacon that carries the rogue's own key: not trusted, and the user
       is told the exact command, with the key, to trust it if it is theirs. */
    cr_assert_not(pd_auth_trust_has(conf, NULL, rogue.broker_key));
    cr_assert(pd_auth_trust_has(conf, NULL, h.broker_key));
    char hint[512];
    pd_auth_trust_hint(rogue.endpoint, rogue.broker_key, hint, sizeof hint);
    cr_assert(strstr(hint, "playdoh-keygen trust") && strstr(hint, rogue.broker_key), "%s", hint);
    /* The real broker at its address still opens. */
    pd_client_t *y = pd_client_open(h.endpoint, &o, &err);
    cr_assert_not_null(y, "%s", why);
    pd_client_destroy(&y);
    pd_harness_stop(&rogue);
    s_nothing_else_changed();
}

Test(security, the_embedded_worker_of_a_secure_broker_survives_allow_list_changes)
{
    const char *extra[] = {"--worker-cpus", "1", NULL};
    pd_harness_start_secure(&h, extra);
    c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, 1);
    char conf[300];
    pd_harness_identity(&h, "late2", PD_ROLE_CLIENT, conf, sizeof conf, NULL);
    s_expect_log("broker.log", "2 keys (0 may work, 2 may submit)");
    usleep(500000); /* a few heartbeat ticks after the change */
    int workers = 0, slots = 0;
    cr_assert_eq(pd_client_cluster_size(c, &workers, &slots), 0, "%s", pd_client_error(c));
    cr_assert_eq(workers, 1, "the embedded worker (inproc, no key) is gone");
    cr_assert_not(pd_harness_log_has(&h, "broker.log", "no longer allowed as a worker", 0),
                  "the embedded worker (inproc, no key) was dropped at the allow-list change");
}

/* ---- hostile frames ---------------------------------------------------- */

/* A DEALER authenticated as identity "client" (admitted by start()). */
static void *s_raw_client(void *ctx)
{
    char conf[300], path[400];
    snprintf(conf, sizeof conf, "%s/client", h.dir);
    snprintf(path, sizeof path, "%s/id.key", conf);
    pd_keypair_t k;
    cr_assert_eq(pd_auth_key_load(path, true, &k, why, sizeof why), 0, "%s", why);
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, tmo = 60000;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    cr_assert_eq(pd_auth_apply_client(s, &k, h.broker_key), 0);
    cr_assert_eq(zmq_connect(s, h.endpoint), 0);
    return s;
}

/* Sends bytes and expects an `error` with code. */
static void s_expect_refused(void *s, const void *p, size_t n, const char *code)
{
    cr_assert_eq(zmq_send(s, p, n, 0), (int) n);
    static uint8_t rx[1 << 16];
    int got = zmq_recv(s, rx, sizeof rx, 0);
    cr_assert_gt(got, 0, "no answer from the broker to a message of %zu bytes (wanted %s)", n, code);
    pd_msg_t m;
    cr_assert_eq(pd_msg_parse(&m, rx, (size_t) got), 0);
    cr_assert(pd_msg_is(&m, "error"), "got '%s'", m.type);
    char c2[32] = "";
    pd_msg_str(&m, "code", c2, sizeof c2);
    cr_assert_str_eq(c2, code);
}

Test(security, malformed_nested_and_oversize_messages_change_nothing)
{
    start(true, NULL);
    void *ctx = zmq_ctx_new();
    void *s = s_raw_client(ctx);
    /* Not msgpack at all. */
    s_expect_refused(s, "GET / HTTP/1.1\r\n\r\n", 18, "PD_EPROTO");
    /* 200,000 nested arrays: refused before anything is allocated. */
    size_t deep = 200000;
    uint8_t *nest = malloc(deep + 1);
    memset(nest, 0x91, deep);
    nest[deep] = 0xc0;
    s_expect_refused(s, nest, deep + 1, "PD_EPROTO");
    /* A submit whose argument nests 40 deep, inside an otherwise good map. */
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "submit", 4);
    pd_pack_kv_uint(&pk, "req", 7);
    pd_pack_kv_str(&pk, "mod", mod);
    pd_pack_kv_str(&pk, "fn", "slow_square");
    pd_pack_cstr(&pk, "args");
    msgpack_pack_array(&pk, 1);
    pd_pack_raw(&pk, nest, 40);
    msgpack_pack_nil(&pk);
    s_expect_refused(s, b.data, b.len, "PD_EPROTO");
    free(nest);
    /* A module one byte over the 64 MiB limit. */
    size_t big = (64u << 20) + 1;
    uint8_t *blob = calloc(1, big);
    char hash[65] = "0000000000000000000000000000000000000000000000000000000000000000";
    pd_buf_reset(&b);
    b.max = 80u << 20;
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "mod_put", 5);
    pd_pack_kv_uint(&pk, "req", 8);
    pd_pack_kv_str(&pk, "hash", hash);
    pd_pack_kv_str(&pk, "name", "huge.c");
    pd_pack_kv_str(&pk, "kind", "c");
    pd_pack_kv_bin(&pk, "data", blob, big);
    free(blob);
    cr_assert_not(b.failed);
    s_expect_refused(s, b.data, b.len, "PD_ETOOBIG");
    /* Three frames where one is expected: dropped (no reply possible). */
    zmq_send(s, "a", 1, ZMQ_SNDMORE);
    zmq_send(s, "b", 1, ZMQ_SNDMORE);
    zmq_send(s, "c", 1, 0);
    pd_buf_free(&b);
    zmq_close(s);
    zmq_ctx_term(ctx);
    s_expect_log("broker.log", "nesting too deep");
    s_expect_log("broker.log", "PD_ETOOBIG");
    s_expect_log("broker.log", "with 3 frames");
    s_nothing_else_changed();
}

/* Connects a plain TCP socket to the broker's port. */
static int s_tcp(void)
{
    const char *port = strrchr(h.endpoint, ':') + 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t) atoi(port))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *) &a, sizeof a), 0);
    return fd;
}

Test(security, a_frame_announcing_a_terabyte_is_cut_at_the_transport)
{
    const char *extra[] = {"--log-level", "debug", NULL};
    start(false, extra);
    int fd = s_tcp();
    /* ZMTP 3.0 greeting, NULL mechanism, as a client. */
    uint8_t greet[64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0};
    memcpy(greet + 12, "NULL", 4);
    cr_assert_eq(write(fd, greet, sizeof greet), (ssize_t) sizeof greet);
    uint8_t peer[64];
    size_t got = 0;
    while (got < sizeof peer) {
        ssize_t r = read(fd, peer + got, sizeof peer - got);
        cr_assert_gt(r, 0, "the broker closed before its greeting");
        got += (size_t) r;
    }
    /* READY with Socket-Type DEALER, then a frame header of 2^40 bytes. */
    static const uint8_t ready[] = {0x04, 28, 5, 'R', 'E', 'A', 'D', 'Y', 11, 'S', 'o', 'c',
                                    'k', 'e', 't', '-', 'T', 'y', 'p', 'e', 0, 0, 0, 6,
                                    'D', 'E', 'A', 'L', 'E', 'R'};
    static const uint8_t huge[] = {0x02, 0, 0, 1, 0, 0, 0, 0, 0, 'x', 'x', 'x', 'x'};
    cr_assert_eq(write(fd, ready, sizeof ready), (ssize_t) sizeof ready);
    cr_assert_eq(write(fd, huge, sizeof huge), (ssize_t) sizeof huge);
    /* The broker's READY comes back, then the connection ends. */
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uint8_t sink[256];
    ssize_t r;
    while ((r = read(fd, sink, sizeof sink)) > 0)
        ;
    cr_assert(r == 0 || errno == ECONNRESET, "the connection stayed open (%s)",
              r < 0 ? strerror(errno) : "data");
    close(fd);
    s_expect_log("broker.log", "ZeroMQ cut it");
    s_nothing_else_changed();
}

Test(security, a_flood_of_connections_changes_nothing)
{
    start(true, NULL);
    enum { RAW = 200, KEYS = 20 };
    int fds[RAW];
    for (int i = 0; i < RAW; i++) {
        fds[i] = s_tcp();
        /* Half speak nonsense; the others say nothing at all. */
        if (i % 2 == 0)
            cr_assert_eq(write(fds[i], "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27), 27);
    }
    void *ctx = zmq_ctx_new();
    void *dealers[KEYS];
    for (int i = 0; i < KEYS; i++) {
        pd_keypair_t k;
        zmq_curve_keypair(k.pub, k.sec);
        dealers[i] = zmq_socket(ctx, ZMQ_DEALER);
        int zero = 0;
        zmq_setsockopt(dealers[i], ZMQ_LINGER, &zero, sizeof zero);
        cr_assert_eq(pd_auth_apply_client(dealers[i], &k, h.broker_key), 0);
        cr_assert_eq(zmq_connect(dealers[i], h.endpoint), 0);
        zmq_send(dealers[i], "x", 1, ZMQ_DONTWAIT);
    }
    /* During the flood, an admitted client still gets in and is served. */
    int err = 0;
    pd_client_t *late = pd_harness_client_as(&h, "client", &err, why, sizeof why);
    cr_assert_not_null(late, "%s", why);
    int workers, slots;
    cr_assert_eq(pd_client_cluster_size(late, &workers, &slots), 0, "%s", pd_client_error(late));
    pd_client_destroy(&late);
    s_expect_log("broker.log", "is not on the allow-list");
    s_expect_log("broker.log", "during its handshake");
    for (int i = 0; i < KEYS; i++)
        zmq_close(dealers[i]);
    zmq_ctx_term(ctx);
    for (int i = 0; i < RAW; i++)
        close(fds[i]);
    s_nothing_else_changed();
}
