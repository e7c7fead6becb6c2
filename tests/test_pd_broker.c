/*  Tests of the broker (broker/pd_broker*.c) run in-process: a broker
    thread on an ephemeral loopback port, and DEALER sockets playing clients
    and workers with hand-built frames. Malformed input must get `error`
    and leave the broker answering; jobs must flow submit -> run -> done ->
    fetch; a silent worker's jobs must be requeued and its late results
    dropped; long-polling fetches must wake on completion. With a journal
    held back (a slow disk): results show before their commit, a crash
    then runs their jobs again, and a cancellation waits for the disk. */
#include <criterion/criterion.h>

#include "pd_auth.h"
#include "pd_broker.h"
#include "pd_broker_int.h"
#include "pd_codec.h"
#include "pd_error.h"
#include "pd_file.h"
#include "pd_journal.h"
#include "pd_log.h"
#include "pd_mods.h"
#include "pd_msg.h"
#include "pd_shared.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static pd_broker_t *broker;
static pthread_t thread;
static void *ctx;
static pd_buf_t buf;
static uint8_t rx[1 << 20];
static size_t rxlen;
static pd_msg_t msg;
static void *socks[8]; /* every DEALER opened, closed by teardown */
static uint64_t shared_max, shared_store; /* store limits for the next start, 0 = defaults */
static const char *journal_path; /* the journal of the next start, NULL = none */
static int nsocks;
static bool joined; /* a test stopped the broker thread itself */

static void *s_run(void *arg)
{
    pd_broker_run(arg);
    return NULL;
}

static void s_start(uint32_t hb_ms, uint32_t liveness, uint64_t max_jobs)
{
    pd_log_set_level(PD_LOG_ERROR);
    pd_broker_config_t cfg;
    pd_broker_config_defaults(&cfg);
    cfg.bind = "tcp://127.0.0.1:*";
    cfg.name = "testbroker";
    cfg.hb_ms = hb_ms;
    cfg.liveness = liveness;
    cfg.max_jobs = max_jobs;
    if (shared_max) {
        cfg.max_shared = shared_max;
        cfg.shared_store = shared_store;
    }
    cfg.journal = journal_path;
    int err = -99;
    broker = pd_broker_new(&cfg, &err);
    cr_assert_not_null(broker, "broker: %s", pd_strerror(err));
    cr_assert_eq(err, 0);
    cr_assert(strncmp(pd_broker_endpoint(broker), "tcp://127.0.0.1:", 16) == 0);
    cr_assert_neq(strcmp(pd_broker_endpoint(broker), "tcp://127.0.0.1:*"), 0);
    cr_assert_eq(pthread_create(&thread, NULL, s_run, broker), 0);
    ctx = zmq_ctx_new();
    pd_buf_init(&buf);
}

static void setup(void) { s_start(1000, 3, 1000); }

static void teardown(void)
{
    /* A test may have stopped and joined the broker thread itself: it sets
       joined (or clears thread). */
    if (!joined && thread) {
        pd_broker_stop(broker);
        pthread_join(thread, NULL);
    }
    joined = false;
    pd_broker_destroy(&broker);
    cr_assert_null(broker);
    for (int i = 0; i < nsocks; i++)
        zmq_close(socks[i]);
    nsocks = 0;
    zmq_ctx_term(ctx);
    pd_buf_free(&buf);
}

/* A DEALER connected to the broker, with routing id rid when given. */
static void *s_dealer(const char *rid)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, tmo = 3000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    if (rid)
        zmq_setsockopt(s, ZMQ_ROUTING_ID, rid, strlen(rid));
    cr_assert_eq(zmq_connect(s, pd_broker_endpoint(broker)), 0);
    cr_assert(nsocks < 8);
    socks[nsocks++] = s;
    return s;
}

static void s_send_raw(void *s, const void *p, size_t n)
{
    cr_assert_eq(zmq_send(s, p, n, 0), (int) n);
}

/* Starts a message of type t with nfields fields in buf; returns the packer. */
static msgpack_packer s_begin(const char *t, uint32_t nfields)
{
    pd_buf_reset(&buf);
    msgpack_packer pk;
    pd_packer_init(&pk, &buf);
    pd_msg_begin(&pk, t, nfields);
    return pk;
}

static void s_send_buf(void *s) { s_send_raw(s, buf.data, buf.len); }

/* Receives one message into msg (timing out after ms); returns false on time-out. */
static bool s_recv_within(void *s, int ms)
{
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &ms, sizeof ms);
    int n = zmq_recv(s, rx, sizeof rx, 0);
    if (n < 0)
        return false;
    cr_assert((size_t) n <= sizeof rx);
    rxlen = (size_t) n;
    cr_assert_eq(pd_msg_parse(&msg, rx, rxlen), 0, "broker sent a bad frame: %s", msg.why);
    return true;
}

/* Receives a message that must be of type t. */
static void s_expect(void *s, const char *t)
{
    cr_assert(s_recv_within(s, 3000), "no '%s' from the broker", t);
    char m[200] = "";
    if (pd_msg_is(&msg, "error"))
        pd_msg_str(&msg, "msg", m, sizeof m);
    cr_assert(pd_msg_is(&msg, t), "expected '%s', got '%s' %s", t, msg.type, m);
}

static void s_expect_error(void *s, const char *code)
{
    s_expect(s, "error");
    char c[32];
    cr_assert_eq(pd_msg_str(&msg, "code", c, sizeof c), 0);
    cr_assert_str_eq(c, code);
    char m[1000];
    cr_assert_eq(pd_msg_str(&msg, "msg", m, sizeof m), 0);
    cr_assert(strlen(m) > 5, "an error says why");
}

static uint64_t s_uint(const char *key)
{
    uint64_t v = 0;
    cr_assert_eq(pd_msg_uint(&msg, key, &v), 0, "%s", msg.why);
    return v;
}

static void s_hello(void *c, uint64_t req)
{
    msgpack_packer pk = s_begin("hello", 1);
    pd_pack_kv_uint(&pk, "req", req);
    s_send_buf(c);
    s_expect(c, "welcome");
    cr_assert_eq(s_uint("req"), req);
}

/* ---- malformed input --------------------------------------------------- */

TestSuite(unit_broker, .init = setup, .fini = teardown, .timeout = 60);

Test(unit_broker, answers_hello_with_welcome)
{
    void *c = s_dealer(NULL);
    s_hello(c, 7);
    char name[64];
    cr_assert_eq(pd_msg_str(&msg, "name", name, sizeof name), 0);
    cr_assert_str_eq(name, "testbroker");
    cr_assert_eq(s_uint("version"), 1);
    cr_assert_eq(s_uint("workers"), 0);
    cr_assert_eq(s_uint("slots"), 0);
}

Test(unit_broker, malformed_frames_get_errors_and_change_nothing)
{
    void *c = s_dealer(NULL);
    static const uint8_t garbage[] = {0xc1, 0x00, 0x13, 0x37};
    static const uint8_t truncated[] = {0x82, 0xa1, 'v', 0x01, 0xa1, 't', 0xa5, 'h', 'e'};
    static const uint8_t huge_array[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t not_a_map[] = {0x93, 0x01, 0x02, 0x03};
    struct {
        const uint8_t *p;
        size_t n;
        const char *code;
    } cases[] = {
        {garbage, sizeof garbage, "PD_EPROTO"},
        {truncated, sizeof truncated, "PD_EPROTO"},
        {huge_array, sizeof huge_array, "PD_EPROTO"},
        {not_a_map, sizeof not_a_map, "PD_EPROTO"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_send_raw(c, cases[i].p, cases[i].n);
        s_expect_error(c, cases[i].code);
        cr_assert_not(pd_msg_has(&msg, "req"));
    }
    /* Wrong version: the error echoes the request number. */
    pd_buf_reset(&buf);
    msgpack_packer pk;
    pd_packer_init(&pk, &buf);
    msgpack_pack_map(&pk, 3);
    pd_pack_kv_uint(&pk, "v", 9);
    pd_pack_kv_str(&pk, "t", "hello");
    pd_pack_kv_uint(&pk, "req", 41);
    s_send_buf(c);
    s_expect_error(c, "PD_EVERSION");
    cr_assert_eq(s_uint("req"), 41);
    /* Unknown type. */
    pk = s_begin("frobnicate", 1);
    pd_pack_kv_uint(&pk, "req", 42);
    s_send_buf(c);
    s_expect_error(c, "PD_ETYPE");
    cr_assert_eq(s_uint("req"), 42);
    /* A request without req. */
    pk = s_begin("hello", 0);
    s_send_buf(c);
    s_expect_error(c, "PD_EPROTO");
    /* A field of the wrong type. */
    pk = s_begin("status", 2);
    pd_pack_kv_uint(&pk, "req", 43);
    pd_pack_kv_str(&pk, "ids", "all");
    s_send_buf(c);
    s_expect_error(c, "PD_EPROTO");
    cr_assert_eq(s_uint("req"), 43);
    /* A two-frame message is dropped without reply; hello still works. */
    cr_assert_eq(zmq_send(c, "a", 1, ZMQ_SNDMORE), 1);
    cr_assert_eq(zmq_send(c, "b", 1, 0), 1);
    s_hello(c, 44);
}

/* ---- modules and submit ------------------------------------------------ */

static const char s_src[] = "int square(void) { return 0; }\n";

static void s_put_module(void *c, char hash[65])
{
    pd_mods_hash(s_src, sizeof s_src - 1, hash);
    msgpack_packer pk = s_begin("mod_put", 5);
    pd_pack_kv_uint(&pk, "req", 1);
    pd_pack_kv_str(&pk, "hash", hash);
    pd_pack_kv_str(&pk, "name", "square.c");
    pd_pack_kv_str(&pk, "kind", "c");
    pd_pack_kv_bin(&pk, "data", s_src, sizeof s_src - 1);
    s_send_buf(c);
    s_expect(c, "mod_ok");
    bool has = false;
    cr_assert_eq(pd_msg_bool(&msg, "has", &has), 0);
    cr_assert(has);
}

/* Submits n jobs with integer args base..base+n-1; returns first id. */
static uint64_t s_submit(void *c, const char *hash, uint32_t n, uint32_t base, uint32_t retries)
{
    msgpack_packer pk = s_begin("submit", 6);
    pd_pack_kv_uint(&pk, "req", 2);
    pd_pack_kv_str(&pk, "mod", hash);
    pd_pack_kv_str(&pk, "fn", "square");
    pd_pack_cstr(&pk, "args");
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_uint32(&pk, base + i);
    pd_pack_kv_uint(&pk, "timeout_ms", 0);
    pd_pack_kv_uint(&pk, "retries", retries);
    s_send_buf(c);
    s_expect(c, "accepted");
    cr_assert_eq(s_uint("n"), n);
    return s_uint("first");
}

Test(unit_broker, modules_are_checked_and_submit_needs_one)
{
    void *c = s_dealer(NULL);
    msgpack_packer pk = s_begin("mod_has", 2);
    pd_pack_kv_uint(&pk, "req", 1);
    pd_pack_kv_str(&pk, "hash", "00");
    s_send_buf(c);
    s_expect(c, "mod_ok");
    bool has = true;
    cr_assert_eq(pd_msg_bool(&msg, "has", &has), 0);
    cr_assert_not(has);
    /* Wrong hash. */
    pk = s_begin("mod_put", 5);
    pd_pack_kv_uint(&pk, "req", 1);
    pd_pack_kv_str(&pk, "hash", "abcd");
    pd_pack_kv_str(&pk, "name", "x.c");
    pd_pack_kv_str(&pk, "kind", "c");
    pd_pack_kv_bin(&pk, "data", "xyz", 3);
    s_send_buf(c);
    s_expect_error(c, "PD_EPROTO");
    /* Unknown module. */
    pk = s_begin("submit", 4);
    pd_pack_kv_uint(&pk, "req", 5);
    pd_pack_kv_str(&pk, "mod", "ffff");
    pd_pack_kv_str(&pk, "fn", "f");
    pd_pack_cstr(&pk, "args");
    msgpack_pack_array(&pk, 0);
    s_send_buf(c);
    s_expect_error(c, "PD_ENOMODULE");
    char m[200];
    pd_msg_str(&msg, "msg", m, sizeof m);
    cr_assert(strstr(m, "module ffff is not on the broker: upload it first (mod_put)"), "%s", m);
    char hash[65];
    s_put_module(c, hash);
    cr_assert_eq(s_submit(c, hash, 3, 0, 3), 1);
    cr_assert_eq(s_submit(c, hash, 2, 0, 3), 4);
}

Test(unit_broker, a_submit_over_max_jobs_is_refused)
{
    void *c = s_dealer(NULL);
    char hash[65];
    s_put_module(c, hash);
    s_submit(c, hash, 999, 0, 3);
    msgpack_packer pk = s_begin("submit", 4);
    pd_pack_kv_uint(&pk, "req", 9);
    pd_pack_kv_str(&pk, "mod", hash);
    pd_pack_kv_str(&pk, "fn", "square");
    pd_pack_cstr(&pk, "args");
    msgpack_pack_array(&pk, 2);
    msgpack_pack_nil(&pk);
    msgpack_pack_nil(&pk);
    s_send_buf(c);
    s_expect_error(c, "PD_EOVERLOAD");
    cr_assert_eq(s_uint("req"), 9);
}

/* ---- workers ----------------------------------------------------------- */

static void s_ready(void *w, uint32_t cpus)
{
    msgpack_packer pk = s_begin("ready", 4);
    pd_pack_kv_str(&pk, "host", "testhost");
    pd_pack_kv_uint(&pk, "pid", 1234);
    pd_pack_kv_uint(&pk, "cpus", cpus);
    pd_pack_kv_uint(&pk, "gpus", 0);
    s_send_buf(w);
    s_expect(w, "welcome");
}

typedef struct {
    uint64_t id, attempt, arg;
} s_run_job_t;

/* Receives messages until a `run` (a `mod` may come first: it must, before
   the first run naming it); returns the jobs. */
static uint32_t s_expect_run(void *w, s_run_job_t *out, uint32_t cap, bool want_mod)
{
    cr_assert(s_recv_within(w, 3000), "no run");
    if (want_mod) {
        cr_assert(pd_msg_is(&msg, "mod"), "got %s before the module", msg.type);
        const void *data;
        uint32_t len;
        cr_assert_eq(pd_msg_bytes(&msg, "data", &data, &len), 0);
        cr_assert_eq(len, sizeof s_src - 1);
        cr_assert(s_recv_within(w, 3000), "no run");
    }
    while (pd_msg_is(&msg, "hb"))
        cr_assert(s_recv_within(w, 3000), "no run");
    cr_assert(pd_msg_is(&msg, "run"), "got %s", msg.type);
    pd_rd_t r;
    cr_assert_eq(pd_msg_rd(&msg, "jobs", &r), 0);
    uint32_t n;
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    cr_assert(n <= cap);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t eight;
        const char *s;
        uint32_t sl;
        uint64_t tmo;
        cr_assert_eq(pd_rd_array(&r, &eight), 0);
        cr_assert_eq(eight, 8, "run entry: [id, attempt, mod, fn, timeout_ms, arg, shared, "
                               "client]");
        cr_assert_eq(pd_rd_uint(&r, &out[i].id), 0);
        cr_assert_eq(pd_rd_uint(&r, &out[i].attempt), 0);
        cr_assert_eq(pd_rd_str(&r, &s, &sl), 0);
        cr_assert_eq(sl, 64);
        cr_assert_eq(pd_rd_str(&r, &s, &sl), 0);
        cr_assert(sl == 6 && memcmp(s, "square", 6) == 0);
        cr_assert_eq(pd_rd_uint(&r, &tmo), 0);
        cr_assert_eq(pd_rd_uint(&r, &out[i].arg), 0);
        cr_assert_eq(pd_rd_nil(&r), 0, "no shared data: nil");
        uint64_t ci;
        cr_assert_eq(pd_rd_uint(&r, &ci), 0, "the client is an index into 'clients'");
        cr_assert_eq(ci, 0);
    }
    /* One submitter, without CURVE: clients is [""]. */
    cr_assert_eq(pd_msg_rd(&msg, "clients", &r), 0);
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    cr_assert_eq(n, 1);
    const char *s;
    uint32_t sl;
    cr_assert_eq(pd_rd_str(&r, &s, &sl), 0);
    cr_assert_eq(sl, 0, "without CURVE the client key is empty");
    pd_rd_init(&r, NULL, 0);
    cr_assert_eq(pd_msg_rd(&msg, "jobs", &r), 0);
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    return n;
}

/* Sends `done` for jobs, the value being arg * arg (or an error for odd
   args when fail_odd). */
static void s_done(void *w, const s_run_job_t *jobs, uint32_t n, bool fail_odd)
{
    msgpack_packer pk = s_begin("done", 1);
    pd_pack_cstr(&pk, "res");
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++) {
        msgpack_pack_array(&pk, 5);
        msgpack_pack_uint64(&pk, jobs[i].id);
        msgpack_pack_uint64(&pk, jobs[i].attempt);
        if (fail_odd && jobs[i].arg % 2) {
            msgpack_pack_false(&pk);
            msgpack_pack_map(&pk, 3);
            pd_pack_kv_str(&pk, "code", "PD_ETASK");
            pd_pack_kv_str(&pk, "msg", "odd");
            pd_pack_kv_int(&pk, "slot", 0);
        } else {
            msgpack_pack_true(&pk);
            msgpack_pack_uint64(&pk, jobs[i].arg * jobs[i].arg);
        }
        msgpack_pack_uint64(&pk, 5);
    }
    s_send_buf(w);
}

/* Sends fetch for [first, n]; the reply lands in msg. */
static void s_fetch(void *c, uint64_t req, uint64_t first, uint64_t n, uint64_t wait_ms)
{
    msgpack_packer pk = s_begin("fetch", 4);
    pd_pack_kv_uint(&pk, "req", req);
    pd_pack_cstr(&pk, "ids");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, first);
    msgpack_pack_uint64(&pk, n);
    pd_pack_kv_uint(&pk, "wait_ms", wait_ms);
    pd_pack_kv_uint(&pk, "max", 0);
    s_send_buf(c);
}

/* Runs one job of the module on w, so that its function is proven there
   (pd_probes.h) and later batches are not held behind a probe; the module
   travels to w first. */
static void s_prove(void *c, void *w, const char *hash)
{
    uint64_t id = s_submit(c, hash, 1, 0, 3);
    s_run_job_t job;
    cr_assert_eq(s_expect_run(w, &job, 1, true), 1, "the probe runs alone");
    cr_assert_eq(job.id, id);
    s_done(w, &job, 1, false);
    s_fetch(c, 99, id, 1, 5000); /* waits for the done to be processed */
    s_expect(c, "results");
}

Test(unit_broker, jobs_flow_from_submit_to_fetch)
{
    void *c = s_dealer(NULL);
    void *w = s_dealer("w-0000000000000001");
    char hash[65];
    s_put_module(c, hash);
    s_ready(w, 2);
    s_hello(c, 3);
    cr_assert_eq(s_uint("workers"), 1);
    cr_assert_eq(s_uint("slots"), 2);
    s_prove(c, w, hash);
    uint64_t first = s_submit(c, hash, 6, 10, 3);
    s_run_job_t jobs[64];
    uint32_t n = s_expect_run(w, jobs, 64, false);
    cr_assert_eq(n, 6, "credit 2 x 8 covers all six");
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(jobs[i].id, first + i);
        cr_assert_eq(jobs[i].attempt, 1);
        cr_assert_eq(jobs[i].arg, 10 + i);
    }
    s_done(w, jobs, n, true);
    /* The client's socket is not ordered with the worker's: wait for the
       results with a parked fetch (one done message finishes all six). */
    s_fetch(c, 7, first, 6, 5000);
    s_expect(c, "results");
    /* Status: all final now (done or failed). */
    msgpack_packer pk = s_begin("status", 2);
    pd_pack_kv_uint(&pk, "req", 8);
    pd_pack_cstr(&pk, "ids");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, first);
    msgpack_pack_uint64(&pk, 7);
    s_send_buf(c);
    s_expect(c, "states");
    const void *st;
    uint32_t stlen;
    cr_assert_eq(pd_msg_bytes(&msg, "st", &st, &stlen), 0);
    cr_assert_eq(stlen, 7);
    static const uint8_t want[] = {3, 4, 3, 4, 3, 4, 0};
    cr_assert_arr_eq(st, want, 7);
    /* Fetch all six plus an unknown id. */
    s_fetch(c, 9, first, 7, 0);
    s_expect(c, "results");
    cr_assert_eq(s_uint("req"), 9);
    pd_rd_t r;
    cr_assert_eq(pd_msg_rd(&msg, "res", &r), 0);
    uint32_t nres;
    cr_assert_eq(pd_rd_array(&r, &nres), 0);
    cr_assert_eq(nres, 7);
    for (uint32_t i = 0; i < 7; i++) {
        uint32_t three;
        uint64_t id, state;
        cr_assert_eq(pd_rd_array(&r, &three), 0);
        cr_assert_eq(three, 3);
        cr_assert_eq(pd_rd_uint(&r, &id), 0);
        cr_assert_eq(pd_rd_uint(&r, &state), 0);
        cr_assert_eq(id, first + i);
        cr_assert_eq(state, want[i]);
        if (state == 3) {
            uint64_t v;
            cr_assert_eq(pd_rd_uint(&r, &v), 0);
            cr_assert_eq(v, (10 + i) * (10 + i));
        } else if (state == 4) {
            uint32_t nf;
            cr_assert_eq(pd_rd_map(&r, &nf), 0);
            cr_assert_eq(nf, 5);
            char code[32], m[64], host[64];
            cr_assert(pd_rd_key_is(&r, "code"));
            pd_rd_strcpy(&r, code, sizeof code);
            cr_assert_str_eq(code, "PD_ETASK");
            cr_assert(pd_rd_key_is(&r, "msg"));
            pd_rd_strcpy(&r, m, sizeof m);
            cr_assert_str_eq(m, "odd");
            cr_assert(pd_rd_key_is(&r, "host"));
            pd_rd_strcpy(&r, host, sizeof host);
            cr_assert_str_eq(host, "testhost");
            for (int k = 0; k < 4; k++)
                cr_assert_eq(pd_rd_skip(&r, NULL, NULL), 0);
        } else {
            cr_assert_eq(pd_rd_nil(&r), 0);
        }
    }
    /* Release forgets them. */
    pk = s_begin("release", 2);
    pd_pack_kv_uint(&pk, "req", 10);
    pd_pack_cstr(&pk, "ids");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, first);
    msgpack_pack_uint64(&pk, 6);
    s_send_buf(c);
    s_expect(c, "released");
    cr_assert_eq(s_uint("n"), 6);
    /* A duplicate done for the same attempt is dropped, not delivered. */
    s_done(w, jobs, 1, false);
    s_hello(c, 11);
}

Test(unit_broker, a_parked_fetch_wakes_when_a_job_finishes)
{
    void *c = s_dealer(NULL);
    void *w = s_dealer("w-0000000000000002");
    char hash[65];
    s_put_module(c, hash);
    uint64_t first = s_submit(c, hash, 2, 3, 3);
    /* Nothing final yet and nobody to run: an empty answer after wait_ms. */
    s_fetch(c, 20, first, 2, 150);
    cr_assert_not(s_recv_within(c, 50), "answered before wait_ms");
    s_expect(c, "results");
    cr_assert_eq(s_uint("req"), 20);
    pd_rd_t r;
    uint32_t n;
    pd_msg_rd(&msg, "res", &r);
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    cr_assert_eq(n, 0);
    /* Park again, then let a worker finish the jobs. */
    s_fetch(c, 21, first, 2, 20000);
    s_ready(w, 1);
    s_run_job_t jobs[8];
    n = s_expect_run(w, jobs, 8, true);
    cr_assert_eq(n, 1, "a new module's first job runs alone: the probe");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    s_done(w, jobs, 1, false);
    s_expect(c, "results");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_eq(s_uint("req"), 21);
    cr_assert((t1.tv_sec - t0.tv_sec) < 2, "woke at once");
    pd_msg_rd(&msg, "res", &r);
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    cr_assert_eq(n, 1);
}

/* Sends cancel for [first, n]. */
static void s_cancel(void *c, uint64_t req, uint64_t first, uint64_t n)
{
    msgpack_packer pk = s_begin("cancel", 2);
    pd_pack_kv_uint(&pk, "req", req);
    pd_pack_cstr(&pk, "ids");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, first);
    msgpack_pack_uint64(&pk, n);
    s_send_buf(c);
}

Test(unit_broker, cancel_tells_the_worker_and_frees_credit)
{
    void *c = s_dealer(NULL);
    void *w = s_dealer("w-0000000000000003");
    char hash[65];
    s_put_module(c, hash);
    s_ready(w, 1);
    s_prove(c, w, hash);
    uint64_t first = s_submit(c, hash, 3, 0, 3);
    s_run_job_t jobs[8];
    cr_assert_eq(s_expect_run(w, jobs, 8, false), 3);
    s_cancel(c, 30, first + 1, 5);
    s_expect(c, "cancelled");
    cr_assert_eq(s_uint("n"), 2);
    s_expect(w, "cancel");
    pd_rd_t r;
    uint32_t n;
    uint64_t a, b;
    pd_msg_rd(&msg, "ids", &r);
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    cr_assert_eq(n, 2);
    pd_rd_uint(&r, &a);
    pd_rd_uint(&r, &b);
    cr_assert_eq(a, first + 1);
    cr_assert_eq(b, first + 2);
    /* A late result for a cancelled job is dropped: the fetch shows cancelled. */
    s_done(w, jobs, 3, false);
    s_fetch(c, 31, first, 1, 5000); /* waits for the done to be processed */
    s_expect(c, "results");
    s_fetch(c, 32, first, 3, 0);
    s_expect(c, "results");
    pd_msg_rd(&msg, "res", &r);
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    cr_assert_eq(n, 3);
    uint32_t three;
    uint64_t id, state;
    pd_rd_array(&r, &three);
    pd_rd_uint(&r, &id);
    pd_rd_uint(&r, &state);
    cr_assert_eq(state, 3);
    pd_rd_skip(&r, NULL, NULL);
    pd_rd_array(&r, &three);
    pd_rd_uint(&r, &id);
    pd_rd_uint(&r, &state);
    cr_assert_eq(state, 5);
}

/* With fast heartbeats: a silent worker is declared dead. */
TestSuite(unit_broker_liveness, .init = NULL, .fini = teardown, .timeout = 60);

Test(unit_broker_liveness, a_silent_workers_jobs_move_and_its_late_results_are_dropped)
{
    s_start(50, 2, 1000);
    void *c = s_dealer(NULL);
    void *w1 = s_dealer("w-00000000000000a1");
    char hash[65];
    s_put_module(c, hash);
    s_ready(w1, 1);
    s_prove(c, w1, hash);
    uint64_t first = s_submit(c, hash, 2, 4, 2);
    s_run_job_t jobs[8];
    cr_assert_eq(s_expect_run(w1, jobs, 8, false), 2);
    /* w1 says nothing for > 100 ms: dead. A second worker gets the jobs. */
    void *w2 = s_dealer("w-00000000000000a2");
    usleep(300 * 1000);
    s_ready(w2, 1);
    s_run_job_t again[8];
    uint32_t n = s_expect_run(w2, again, 8, true);
    cr_assert_eq(n, 2);
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(again[i].attempt, 2);
        cr_assert(again[i].id == first || again[i].id == first + 1);
    }
    /* w1 wakes up and reports: it is told to reset; nothing is delivered. */
    s_done(w1, jobs, 2, false);
    bool reset = false;
    for (int i = 0; i < 20 && !reset; i++) {
        cr_assert(s_recv_within(w1, 2000));
        reset = pd_msg_is(&msg, "reset");
    }
    cr_assert(reset);
    s_fetch(c, 40, first, 2, 0);
    s_expect(c, "results");
    pd_rd_t r;
    pd_msg_rd(&msg, "res", &r);
    pd_rd_array(&r, &n);
    cr_assert_eq(n, 0, "no result came from the dead worker");
    /* w2 goes silent too: retries (2) are used up, the jobs fail PD_ELOST. */
    s_fetch(c, 41, first, 2, 5000);
    s_expect(c, "results");
    pd_msg_rd(&msg, "res", &r);
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    cr_assert(n >= 1);
    uint32_t three;
    uint64_t id, state;
    pd_rd_array(&r, &three);
    pd_rd_uint(&r, &id);
    pd_rd_uint(&r, &state);
    cr_assert_eq(state, 4);
}

/* ---- shared data ------------------------------------------------------- */

static void setup_small_store(void)
{
    shared_max = 4000;
    shared_store = 6000;
    s_start(1000, 3, 1000);
}

static void teardown_small_store(void)
{
    pd_broker_stop(broker);
    pthread_join(thread, NULL);
    /* The byte counters saw each blob go out once (to the one worker). */
    pd_broker_stats_t st;
    pd_broker_stats(broker, &st);
    cr_expect_geq(st.bytes_out, 4000 + 3500, "bytes out: %llu", (unsigned long long) st.bytes_out);
    cr_expect_lt(st.bytes_out, 3 * 4000 + 3500 + 20000, "a blob went out more than once: %llu",
                 (unsigned long long) st.bytes_out);
    cr_expect_geq(st.bytes_in, 3 * 4000 + 3500, "bytes in: %llu", (unsigned long long) st.bytes_in);
    thread = 0;
    teardown();
    shared_max = shared_store = 0;
}

TestSuite(unit_shared, .init = setup_small_store, .fini = teardown_small_store, .timeout = 60);

static void s_blob(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t) (seed + i * 31);
}

/* shr_put; expects shr_ok or the error code given. */
static void s_shr_put(void *c, const char *hash, const void *data, size_t n, const char *code)
{
    msgpack_packer pk = s_begin("shr_put", 3);
    pd_pack_kv_uint(&pk, "req", 30);
    pd_pack_kv_str(&pk, "hash", hash);
    pd_pack_kv_bin(&pk, "data", data, n);
    s_send_buf(c);
    if (code) {
        s_expect_error(c, code);
    } else {
        s_expect(c, "shr_ok");
        bool has = false;
        cr_assert_eq(pd_msg_bool(&msg, "has", &has), 0);
        cr_assert(has);
    }
}

static void s_submit_shared(void *c, const char *mod, const char *shr, uint32_t n,
                            const char *code)
{
    msgpack_packer pk = s_begin("submit", 5);
    pd_pack_kv_uint(&pk, "req", 31);
    pd_pack_kv_str(&pk, "mod", mod);
    pd_pack_kv_str(&pk, "fn", "square");
    pd_pack_kv_str(&pk, "shared", shr);
    pd_pack_cstr(&pk, "args");
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_uint32(&pk, i);
    s_send_buf(c);
    if (code)
        s_expect_error(c, code);
    else
        s_expect(c, "accepted");
}

/* Reads worker messages until a run; counts the `shr` seen before it (and
   checks their hash), returns the run's jobs, each checked to name shr. */
static uint32_t s_run_with_shared(void *w, const char *shr, int *shr_msgs, s_run_job_t *out)
{
    *shr_msgs = 0;
    for (;;) {
        cr_assert(s_recv_within(w, 3000), "no run");
        if (pd_msg_is(&msg, "shr")) {
            char h[80];
            cr_assert_eq(pd_msg_str(&msg, "hash", h, sizeof h), 0);
            cr_assert_str_eq(h, shr);
            (*shr_msgs)++;
            continue;
        }
        if (pd_msg_is(&msg, "run"))
            break;
        cr_assert(pd_msg_is(&msg, "mod") || pd_msg_is(&msg, "hb"), "got %s", msg.type);
    }
    pd_rd_t r;
    cr_assert_eq(pd_msg_rd(&msg, "jobs", &r), 0);
    uint32_t n;
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t seven;
        const char *str;
        uint32_t sl;
        uint64_t tmo;
        cr_assert_eq(pd_rd_array(&r, &seven), 0);
        cr_assert_eq(seven, 8, "a job of a map with shared data names it (and its client)");
        cr_assert_eq(pd_rd_uint(&r, &out[i].id), 0);
        cr_assert_eq(pd_rd_uint(&r, &out[i].attempt), 0);
        cr_assert_eq(pd_rd_str(&r, &str, &sl), 0);
        cr_assert_eq(pd_rd_str(&r, &str, &sl), 0);
        cr_assert_eq(pd_rd_uint(&r, &tmo), 0);
        cr_assert_eq(pd_rd_uint(&r, &out[i].arg), 0);
        cr_assert_eq(pd_rd_str(&r, &str, &sl), 0);
        cr_assert(sl == 64 && memcmp(str, shr, 64) == 0);
        uint64_t ci;
        cr_assert_eq(pd_rd_uint(&r, &ci), 0, "the client is an index into 'clients'");
    }
    return n;
}

Test(unit_shared, goes_to_each_worker_once_and_is_dropped_when_evicted)
{
    void *c = s_dealer(NULL);
    void *w = s_dealer("w-00000000000000aa");
    char mod[65], h1[65], h2[65], h3[65];
    s_put_module(c, mod);
    s_ready(w, 1);
    s_hello(c, 1);
    cr_assert_eq(s_uint("max_shared"), 4000, "welcome tells clients the limit");
    static uint8_t b1[4000], b2[3500], b3[3000], big[4001];
    s_blob(b1, sizeof b1, 1);
    s_blob(b2, sizeof b2, 2);
    s_blob(b3, sizeof b3, 3);
    pd_shared_hash(b1, sizeof b1, h1);
    pd_shared_hash(b2, sizeof b2, h2);
    pd_shared_hash(b3, sizeof b3, h3);

    /* Refused: a wrong hash, data over the limit, a submit naming unknown data. */
    s_shr_put(c, h2, b1, sizeof b1, "PD_EPROTO");
    char hbig[65];
    pd_shared_hash(big, sizeof big, hbig);
    s_shr_put(c, hbig, big, sizeof big, "PD_ETOOBIG");
    char m[1000];
    pd_msg_str(&msg, "msg", m, sizeof m);
    cr_assert(strstr(m, "--max-shared-mb") != NULL, "%s", m);
    s_submit_shared(c, mod, h1, 1, "PD_ENOMODULE");

    msgpack_packer pk = s_begin("shr_has", 2);
    pd_pack_kv_uint(&pk, "req", 2);
    pd_pack_kv_str(&pk, "hash", h1);
    s_send_buf(c);
    s_expect(c, "shr_ok");
    bool has = true;
    cr_assert_eq(pd_msg_bool(&msg, "has", &has), 0);
    cr_assert_not(has);
    s_shr_put(c, h1, b1, sizeof b1, NULL);
    s_shr_put(c, h1, b1, sizeof b1, NULL); /* again: no change */

    /* Two maps with the same data: one shr for the worker, before the first run. */
    s_run_job_t jobs[16];
    int shr_msgs;
    s_submit_shared(c, mod, h1, 2, NULL);
    uint32_t n = s_run_with_shared(w, h1, &shr_msgs, jobs);
    cr_assert_eq(shr_msgs, 1);
    s_done(w, jobs, n, false);
    if (n < 2) {
        n = s_run_with_shared(w, h1, &shr_msgs, jobs);
        cr_assert_eq(shr_msgs, 0);
        s_done(w, jobs, n, false);
    }
    s_submit_shared(c, mod, h1, 1, NULL);
    n = s_run_with_shared(w, h1, &shr_msgs, jobs);
    cr_assert_eq(shr_msgs, 0, "the worker has it already");
    s_done(w, jobs, n, false);

    /* New data that does not fit beside it: the unused h1 is evicted, and
       the worker is told to drop it. Wait until the broker applied the
       worker's done (another socket: not ordered with the client's). */
    s_fetch(c, 40, jobs[n - 1].id, 1, 5000);
    s_expect(c, "results");
    s_shr_put(c, h2, b2, sizeof b2, NULL);
    cr_assert(s_recv_within(w, 3000));
    while (pd_msg_is(&msg, "hb"))
        cr_assert(s_recv_within(w, 3000));
    cr_assert(pd_msg_is(&msg, "shr_drop"), "got %s", msg.type);
    char dropped[80];
    cr_assert_eq(pd_msg_str(&msg, "hash", dropped, sizeof dropped), 0);
    cr_assert_str_eq(dropped, h1);
    s_submit_shared(c, mod, h1, 1, "PD_ENOMODULE");

    /* h2 in use by an unfinished job: h3 cannot make room. */
    s_submit_shared(c, mod, h2, 1, NULL);
    n = s_run_with_shared(w, h2, &shr_msgs, jobs);
    cr_assert_eq(shr_msgs, 1);
    s_shr_put(c, h3, b3, sizeof b3, "PD_EOVERLOAD");
    pd_msg_str(&msg, "msg", m, sizeof m);
    cr_assert(strstr(m, "--shared-store-mb") != NULL, "%s", m);
    s_done(w, jobs, n, false);
    s_fetch(c, 41, jobs[n - 1].id, 1, 5000);
    s_expect(c, "results");
    s_shr_put(c, h3, b3, sizeof b3, NULL);
}

/* ---- the owner's control and the cluster view (issue 5) ----------------- */

Test(unit_broker, requeue_hands_jobs_back_without_counting_an_attempt)
{
    void *c = s_dealer(NULL);
    void *w1 = s_dealer("w-0000000000000001");
    char hash[65];
    s_put_module(c, hash);
    s_ready(w1, 2);
    s_hello(c, 3);
    s_prove(c, w1, hash);
    uint64_t first = s_submit(c, hash, 4, 10, 1); /* retries 1: one counted loss fails a job */
    s_run_job_t jobs[8];
    uint32_t n = s_expect_run(w1, jobs, 8, false);
    cr_assert_eq(n, 4);
    /* The owner takes the slots back with --now: slots first, then requeue
       (plus a stale entry, which is skipped). */
    msgpack_packer pk = s_begin("slots", 2);
    pd_pack_kv_uint(&pk, "cpus", 0);
    pd_pack_kv_uint(&pk, "gpus", 0);
    s_send_buf(w1);
    pk = s_begin("requeue", 1);
    pd_pack_cstr(&pk, "jobs");
    msgpack_pack_array(&pk, n + 1);
    for (uint32_t i = 0; i < n; i++) {
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint64(&pk, jobs[i].id);
        msgpack_pack_uint64(&pk, jobs[i].attempt);
    }
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, first);
    msgpack_pack_uint64(&pk, 99);
    s_send_buf(w1);
    /* Nothing goes back to w1 (no credit); another worker gets all four. */
    cr_assert_not(s_recv_within(w1, 300), "a worker with 0 cpus was sent '%s'", msg.type);
    void *w2 = s_dealer("w-0000000000000002");
    s_ready(w2, 2);
    n = s_expect_run(w2, jobs, 8, true);
    cr_assert_eq(n, 4);
    for (uint32_t i = 0; i < n; i++)
        cr_assert_eq(jobs[i].attempt, 2, "attempt %llu", (unsigned long long) jobs[i].attempt);
    s_done(w2, jobs, n, false);
    s_fetch(c, 7, first, 4, 5000);
    s_expect(c, "results");
    pd_rd_t r;
    cr_assert_eq(pd_msg_rd(&msg, "res", &r), 0);
    uint32_t nres;
    cr_assert_eq(pd_rd_array(&r, &nres), 0);
    cr_assert_eq(nres, 4);
    for (uint32_t i = 0; i < nres; i++) {
        uint32_t three;
        uint64_t id, state;
        cr_assert_eq(pd_rd_array(&r, &three), 0);
        cr_assert_eq(pd_rd_uint(&r, &id), 0);
        cr_assert_eq(pd_rd_uint(&r, &state), 0);
        cr_assert_eq(state, 3, "job %llu ended in state %llu, not done", (unsigned long long) id,
                     (unsigned long long) state);
        cr_assert_eq(pd_rd_skip(&r, NULL, NULL), 0);
    }
}

Test(unit_broker, malformed_requeue_hb_and_ready_fields_are_refused)
{
    void *w = s_dealer("w-0000000000000001");
    s_ready(w, 1);
    msgpack_packer pk = s_begin("requeue", 1);
    pd_pack_kv_str(&pk, "jobs", "all");
    s_send_buf(w);
    s_expect_error(w, "PD_EPROTO");
    pk = s_begin("requeue", 1);
    pd_pack_cstr(&pk, "jobs");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_uint64(&pk, 5);
    s_send_buf(w);
    s_expect_error(w, "PD_EPROTO");
    pk = s_begin("hb", 1);
    pd_pack_kv_str(&pk, "load", "high");
    s_send_buf(w);
    s_expect_error(w, "PD_EPROTO");
    pk = s_begin("slots", 2);
    pd_pack_kv_uint(&pk, "cpus", 1u << 20);
    pd_pack_kv_uint(&pk, "gpus", 0);
    s_send_buf(w);
    s_expect_error(w, "PD_EINVAL");
    void *w2 = s_dealer("w-0000000000000002");
    pk = s_begin("ready", 3);
    pd_pack_kv_uint(&pk, "cpus", 1);
    pd_pack_kv_str(&pk, "host", "h2");
    pd_pack_kv_str(&pk, "gpu_names", "Tesla");
    s_send_buf(w2);
    s_expect_error(w2, "PD_EPROTO");
    /* Nothing of that changed the registry. */
    void *c = s_dealer(NULL);
    s_hello(c, 1);
    cr_assert_eq(s_uint("workers"), 1);
    cr_assert_eq(s_uint("slots"), 1);
}

Test(unit_broker, cluster_lists_each_worker_with_its_state)
{
    void *w = s_dealer("w-00000000000000a1");
    msgpack_packer pk = s_begin("ready", 9);
    pd_pack_kv_str(&pk, "host", "gpuhost");
    pd_pack_kv_uint(&pk, "pid", 42);
    pd_pack_kv_uint(&pk, "cpus", 3);
    pd_pack_kv_uint(&pk, "gpus", 1);
    pd_pack_cstr(&pk, "gpu_names");
    msgpack_pack_array(&pk, 1);
    pd_pack_cstr(&pk, "Tesla T4");
    pd_pack_kv_uint(&pk, "busy", 0);
    pd_pack_kv_uint(&pk, "queued", 0);
    pd_pack_kv_double(&pk, "load", 0.25);
    pd_pack_kv_str(&pk, "owner", "idle");
    s_send_buf(w);
    s_expect(w, "welcome");
    pk = s_begin("hb", 2);
    pd_pack_kv_double(&pk, "load", 1.5);
    pd_pack_kv_str(&pk, "owner", "owner");
    s_send_buf(w);
    void *c = s_dealer(NULL);
    s_hello(c, 1); /* the hb is in before this answer? not ordered: poll the view */
    double load = 0;
    for (int tries = 0; tries < 50 && load != 1.5; tries++) {
        pk = s_begin("cluster", 1);
        pd_pack_kv_uint(&pk, "req", 2);
        s_send_buf(c);
        s_expect(c, "cluster");
        pd_rd_t r;
        cr_assert_eq(pd_msg_rd(&msg, "workers", &r), 0);
        uint32_t nw, nf;
        cr_assert_eq(pd_rd_array(&r, &nw), 0);
        cr_assert_eq(nw, 1);
        cr_assert_eq(pd_rd_map(&r, &nf), 0);
        char host[64] = "", owner[16] = "", gpu[64] = "";
        uint64_t cpus = 0, gpus = 0;
        for (uint32_t i = 0; i < nf; i++) {
            if (pd_rd_key_is(&r, "host"))
                pd_rd_strcpy(&r, host, sizeof host);
            else if (pd_rd_key_is(&r, "owner"))
                pd_rd_strcpy(&r, owner, sizeof owner);
            else if (pd_rd_key_is(&r, "cpus"))
                pd_rd_uint(&r, &cpus);
            else if (pd_rd_key_is(&r, "gpus"))
                pd_rd_uint(&r, &gpus);
            else if (pd_rd_key_is(&r, "load"))
                pd_rd_double(&r, &load);
            else if (pd_rd_key_is(&r, "gpu_names")) {
                uint32_t ng;
                cr_assert_eq(pd_rd_array(&r, &ng), 0);
                cr_assert_eq(ng, 1);
                pd_rd_strcpy(&r, gpu, sizeof gpu);
            } else {
                cr_assert_eq(pd_rd_skip(&r, NULL, NULL), 0);
                cr_assert_eq(pd_rd_skip(&r, NULL, NULL), 0);
            }
        }
        cr_assert_str_eq(host, "gpuhost");
        cr_assert_eq(cpus, 3);
        cr_assert_eq(gpus, 1);
        cr_assert_str_eq(gpu, "Tesla T4");
        if (load == 1.5)
            cr_assert_str_eq(owner, "owner");
        else
            usleep(20000);
    }
    cr_assert_eq(load, 1.5, "the hb's load never showed");
}

/* ---- roles: pd_broker_on_frame driven directly (no loop thread) -------- */

static void s_roles_setup(void)
{
    pd_log_set_level(PD_LOG_ERROR);
    pd_broker_config_t cfg;
    pd_broker_config_defaults(&cfg);
    cfg.bind = "inproc://pd-test-roles";
    broker = pd_broker_new(&cfg, NULL);
    cr_assert_not_null(broker);
    pd_buf_init(&buf);
}

static void s_roles_teardown(void)
{
    pd_broker_destroy(&broker);
    pd_buf_free(&buf);
}

TestSuite(unit_broker_roles, .init = s_roles_setup, .fini = s_roles_teardown, .timeout = 30);

static const char *KEY_W = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
static const char *KEY_C = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";

static void s_frame(const char *rid, const char *key, pd_role_t role)
{
    pd_broker_on_frame(broker, (const uint8_t *) rid, strlen(rid), key, role, buf.data, buf.len);
}

static void s_submit_frame(void)
{
    msgpack_packer pk = s_begin("submit", 4);
    pd_pack_kv_uint(&pk, "req", 1);
    pd_pack_kv_str(&pk, "mod", "0000000000000000000000000000000000000000000000000000000000000000");
    pd_pack_kv_str(&pk, "fn", "f");
    pd_pack_cstr(&pk, "args");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_nil(&pk);
}

Test(unit_broker_roles, a_worker_key_cannot_submit_and_a_client_key_cannot_register)
{
    pd_broker_stats_t st;
    s_submit_frame();
    s_frame("c1", KEY_W, PD_ROLE_WORKER);
    pd_broker_stats(broker, &st);
    cr_assert_eq(st.refused_role, 1);
    cr_assert_eq(st.malformed, 1, "the refusal is answered (and counted) like any error");

    msgpack_packer pk = s_begin("ready", 3);
    pd_pack_kv_str(&pk, "host", "h");
    pd_pack_kv_uint(&pk, "cpus", 4);
    pd_pack_kv_uint(&pk, "pid", 1);
    s_frame("w-0000000000000001", KEY_C, PD_ROLE_CLIENT);
    pd_broker_stats(broker, &st);
    cr_assert_eq(st.refused_role, 2);
    cr_assert_eq(pd_workers_count(broker->workers), 0, "a client key registered as a worker");

    s_frame("w-0000000000000001", KEY_W, PD_ROLE_BOTH);
    cr_assert_eq(pd_workers_count(broker->workers), 1);
    pd_broker_stats(broker, &st);
    cr_assert_eq(st.refused_role, 2);
}

Test(unit_broker_roles, a_revoked_key_is_refused_everything)
{
    s_submit_frame();
    s_frame("c1", KEY_C, PD_ROLE_NONE);
    msgpack_packer pk = s_begin("hb", 0);
    (void) pk;
    s_frame("w-0000000000000001", KEY_W, PD_ROLE_NONE);
    pd_broker_stats_t st;
    pd_broker_stats(broker, &st);
    cr_assert_eq(st.refused_role, 2);
}

Test(unit_broker_roles, a_registered_worker_is_bound_to_its_key)
{
    msgpack_packer pk = s_begin("ready", 2);
    pd_pack_kv_str(&pk, "host", "h");
    pd_pack_kv_uint(&pk, "cpus", 4);
    s_frame("w-0000000000000001", KEY_W, PD_ROLE_WORKER);
    cr_assert_eq(pd_workers_count(broker->workers), 1);
    /* Another admitted key on the same routing id: refused, and the
       worker keeps its slots. */
    s_frame("w-0000000000000001", KEY_C, PD_ROLE_BOTH);
    pk = s_begin("bye", 0);
    s_frame("w-0000000000000001", KEY_C, PD_ROLE_BOTH);
    cr_assert_eq(pd_workers_count(broker->workers), 1, "a bye from another key was obeyed");
    s_frame("w-0000000000000001", KEY_W, PD_ROLE_WORKER);
    cr_assert_eq(pd_workers_count(broker->workers), 0);
}

Test(unit_broker_roles, a_client_key_owns_its_jobs)
{
    /* A module, then a submit by KEY_C: the job's owner is KEY_C. */
    static const char src[] = "int x;";
    char hash[65];
    pd_mods_hash(src, sizeof src - 1, hash);
    msgpack_packer pk = s_begin("mod_put", 5);
    pd_pack_kv_uint(&pk, "req", 1);
    pd_pack_kv_str(&pk, "hash", hash);
    pd_pack_kv_str(&pk, "name", "x.c");
    pd_pack_kv_str(&pk, "kind", "c");
    pd_pack_kv_bin(&pk, "data", src, sizeof src - 1);
    s_frame("c1", KEY_C, PD_ROLE_CLIENT);
    pk = s_begin("submit", 4);
    pd_pack_kv_uint(&pk, "req", 2);
    pd_pack_kv_str(&pk, "mod", hash);
    pd_pack_kv_str(&pk, "fn", "f");
    pd_pack_cstr(&pk, "args");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_nil(&pk);
    s_frame("c1", KEY_C, PD_ROLE_CLIENT);
    pd_jobrec_t *job = pd_jobs_get(broker->jobs, 1);
    cr_assert_not_null(job, "the submit was not accepted");
    cr_assert_str_eq(pd_jobs_fn_owner(broker->jobs, job->fn), KEY_C);
}

/* A request of type t over job id with owner token tok (len 0: none). */
static void s_ids_frame(const char *t, uint64_t id, const char *tok, size_t len,
                        const char *key, pd_role_t role)
{
    msgpack_packer pk = s_begin(t, len ? 3 : 2);
    pd_pack_kv_uint(&pk, "req", 9);
    if (len)
        pd_pack_kv_bin(&pk, "owner_token", tok, len);
    pd_pack_cstr(&pk, "ids");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, id);
    msgpack_pack_uint64(&pk, 1);
    s_frame("c1", key, role);
}

Test(unit_broker_roles, owner_tokens_and_the_admin_role_decide_who_may_cancel_a_job)
{
    static const char src[] = "int x;";
    static const char tok_a[32] = "alice's token", tok_b[32] = "bob's token";
    char hash[65];
    pd_mods_hash(src, sizeof src - 1, hash);
    msgpack_packer pk = s_begin("mod_put", 5);
    pd_pack_kv_uint(&pk, "req", 1);
    pd_pack_kv_str(&pk, "hash", hash);
    pd_pack_kv_str(&pk, "name", "x.c");
    pd_pack_kv_str(&pk, "kind", "c");
    pd_pack_kv_bin(&pk, "data", src, sizeof src - 1);
    s_frame("c1", NULL, PD_ROLE_BOTH);
    /* Submits with a token of 32 bytes, of none, of 0 and of 65 bytes. */
    static const size_t lens[] = {32, 0, 0, 65};
    static const char big[65] = "x";
    for (int i = 0; i < 4; i++) {
        bool has = i != 1;
        pk = s_begin("submit", 4 + has);
        pd_pack_kv_uint(&pk, "req", 2);
        if (has)
            pd_pack_kv_bin(&pk, "owner_token", i == 3 ? big : tok_a, lens[i]);
        pd_pack_kv_str(&pk, "mod", hash);
        pd_pack_kv_str(&pk, "fn", "f");
        pd_pack_cstr(&pk, "args");
        msgpack_pack_array(&pk, 2);
        msgpack_pack_nil(&pk);
        msgpack_pack_nil(&pk);
        s_frame("c1", NULL, PD_ROLE_BOTH);
    }
    cr_assert_eq(pd_jobs_next_id(broker->jobs), 5, "malformed owner tokens are refused");
    char owner_a[PD_OWNER_TXT];
    pd_auth_owner_of_token(tok_a, sizeof tok_a, owner_a);
    cr_assert_str_eq(pd_jobs_owner_id(broker->jobs, pd_jobs_get(broker->jobs, 1)->fn), owner_a);
    cr_assert_str_eq(pd_jobs_owner_id(broker->jobs, pd_jobs_get(broker->jobs, 3)->fn), "");
    /* Bob's token, no token, another key: refused. */
    s_ids_frame("cancel", 1, tok_b, sizeof tok_b, NULL, PD_ROLE_BOTH);
    s_ids_frame("cancel", 1, NULL, 0, NULL, PD_ROLE_BOTH);
    s_ids_frame("release", 1, tok_b, sizeof tok_b, NULL, PD_ROLE_BOTH);
    s_ids_frame("cancel", 1, NULL, 0, KEY_C, PD_ROLE_CLIENT);
    cr_assert_eq(pd_jobs_state(broker->jobs, 1), PD_JOB_QUEUED);
    /* Alice's token, and an admin key: obeyed. */
    s_ids_frame("cancel", 1, tok_a, sizeof tok_a, NULL, PD_ROLE_BOTH);
    cr_assert_eq(pd_jobs_state(broker->jobs, 1), PD_JOB_CANCELLED);
    s_ids_frame("cancel", 2, NULL, 0, KEY_C, PD_ROLE_ADMIN);
    cr_assert_eq(pd_jobs_state(broker->jobs, 2), PD_JOB_CANCELLED);
    /* Jobs of nobody are anyone's. */
    s_ids_frame("cancel", 3, tok_b, sizeof tok_b, NULL, PD_ROLE_BOTH);
    cr_assert_eq(pd_jobs_state(broker->jobs, 3), PD_JOB_CANCELLED);
}

Test(unit_broker_roles, a_run_names_each_jobs_submitter_once_per_chunk)
{
    static const char *KEY_B = "boZ)Qo$+()!ze:vm-pG&PsYE:1]-vNH0<T>81[LO";
    /* A DEALER holds the worker's routing id, so that runs are delivered. */
    void *w = zmq_socket(broker->ctx, ZMQ_DEALER);
    int zero = 0, tmo = 3000;
    zmq_setsockopt(w, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(w, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_setsockopt(w, ZMQ_ROUTING_ID, "w-0000000000000001", 18);
    cr_assert_eq(zmq_connect(w, "inproc://pd-test-roles"), 0);
    for (int i = 0; zmq_send(broker->sock, "w-0000000000000001", 18, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0;
         i++) {
        cr_assert_lt(i, 1000, "the worker's pipe never attached");
        usleep(1000);
    }
    zmq_send(broker->sock, "", 0, ZMQ_DONTWAIT);
    cr_assert_eq(zmq_recv(w, rx, sizeof rx, 0), 0);

    static const char src[] = "int y;";
    char hash[65];
    pd_mods_hash(src, sizeof src - 1, hash);
    msgpack_packer pk = s_begin("mod_put", 5);
    pd_pack_kv_uint(&pk, "req", 1);
    pd_pack_kv_str(&pk, "hash", hash);
    pd_pack_kv_str(&pk, "name", "y.c");
    pd_pack_kv_str(&pk, "kind", "c");
    pd_pack_kv_bin(&pk, "data", src, sizeof src - 1);
    s_frame("c1", KEY_C, PD_ROLE_CLIENT);
    const char *owners[3] = {KEY_C, KEY_C, KEY_B};
    for (int i = 0; i < 3; i++) {
        pk = s_begin("submit", 4);
        pd_pack_kv_uint(&pk, "req", 2);
        pd_pack_kv_str(&pk, "mod", hash);
        pd_pack_kv_str(&pk, "fn", "f");
        pd_pack_cstr(&pk, "args");
        msgpack_pack_array(&pk, 1);
        msgpack_pack_uint64(&pk, (uint64_t) i);
        s_frame(i < 2 ? "c1" : "c2", owners[i], PD_ROLE_CLIENT);
    }
    pk = s_begin("ready", 2);
    pd_pack_kv_str(&pk, "host", "h");
    pd_pack_kv_uint(&pk, "cpus", 4);
    s_frame("w-0000000000000001", KEY_W, PD_ROLE_WORKER);
    pd_broker_dispatch(broker);
    const char *types[] = {"welcome", "mod", "run"};
    for (int i = 0; i < 3; i++) {
        int got = zmq_recv(w, rx, sizeof rx, 0);
        cr_assert_gt(got, 0, "no '%s'", types[i]);
        cr_assert_eq(pd_msg_parse(&msg, rx, (size_t) got), 0);
        cr_assert(pd_msg_is(&msg, types[i]), "got '%s' for '%s'", msg.type, types[i]);
    }
    /* mod names the client whose job needed it; run names each job's. */
    pd_rd_t r;
    uint32_t n;
    cr_assert_eq(pd_msg_rd(&msg, "clients", &r), 0);
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    cr_assert_eq(n, 2, "two submitters, two keys in the chunk");
    char k0[41], k1[41];
    cr_assert_eq(pd_rd_strcpy(&r, k0, sizeof k0), 0);
    cr_assert_eq(pd_rd_strcpy(&r, k1, sizeof k1), 0);
    cr_assert_eq(pd_msg_rd(&msg, "jobs", &r), 0);
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    /* Jobs 1 and 3 probe the module for their submitters (pd_probes.h);
       job 2 waits for job 1's result. */
    cr_assert_eq(n, 2);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k;
        uint64_t id, ci;
        cr_assert_eq(pd_rd_array(&r, &k), 0);
        cr_assert_eq(k, 8);
        cr_assert_eq(pd_rd_uint(&r, &id), 0);
        for (int skip = 0; skip < 6; skip++)
            cr_assert_eq(pd_rd_skip(&r, NULL, NULL), 0);
        cr_assert_eq(pd_rd_uint(&r, &ci), 0);
        cr_assert_lt(ci, 2);
        cr_assert_str_eq(ci == 0 ? k0 : k1, owners[id - 1], "job %llu", (unsigned long long) id);
    }
    zmq_close(w);
}

/* ---- GPU slots ---------------------------------------------------------- */

static const char s_cu_src[] = "extern \"C\" __global__ void k(float *x) { x[0] = 1; }\n";

/* Stores a module of the given kind; writes its hash. */
static void s_put_kind(void *c, const char *name, const char *kind, const char *src, char hash[65])
{
    pd_mods_hash(src, strlen(src), hash);
    msgpack_packer pk = s_begin("mod_put", 5);
    pd_pack_kv_uint(&pk, "req", 1);
    pd_pack_kv_str(&pk, "hash", hash);
    pd_pack_kv_str(&pk, "name", name);
    pd_pack_kv_str(&pk, "kind", kind);
    pd_pack_kv_bin(&pk, "data", src, strlen(src));
    s_send_buf(c);
    s_expect(c, "mod_ok");
}

/* A worker offering cpus and gpus, describing its GPUs when describe. */
static void s_ready_gpu(void *w, uint32_t cpus, uint32_t gpus, bool describe)
{
    msgpack_packer pk = s_begin("ready", describe ? 5 : 4);
    pd_pack_kv_str(&pk, "host", "gpuhost");
    pd_pack_kv_uint(&pk, "pid", 99);
    pd_pack_kv_uint(&pk, "cpus", cpus);
    pd_pack_kv_uint(&pk, "gpus", gpus);
    if (describe) {
        pd_pack_cstr(&pk, "gpu_info");
        msgpack_pack_array(&pk, gpus);
        for (uint32_t i = 0; i < gpus; i++) {
            msgpack_pack_map(&pk, 5);
            pd_pack_kv_str(&pk, "name", i ? "Test GPU B" : "Test GPU A");
            pd_pack_kv_uint(&pk, "mem", (uint64_t) (i + 1) << 30);
            pd_pack_kv_uint(&pk, "cc_major", 8);
            pd_pack_kv_uint(&pk, "cc_minor", 6);
            pd_pack_kv_str(&pk, "uuid", "ignored: a field from a newer worker");
        }
    }
    s_send_buf(w);
    s_expect(w, "welcome");
}

/* Submits n GPU jobs (args base..) of module hash with CUDA module cu (or
   NULL); returns the first id, or 0 after checking the error code want. */
static uint64_t s_submit_gpu(void *c, const char *hash, uint32_t n, uint32_t base,
                             const char *cu, const char *want)
{
    msgpack_packer pk = s_begin("submit", 5);
    pd_pack_kv_uint(&pk, "req", 3);
    pd_pack_kv_str(&pk, "mod", hash);
    pd_pack_kv_str(&pk, "fn", "square");
    pd_pack_cstr(&pk, "args");
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_uint32(&pk, base + i);
    if (cu)
        pd_pack_kv_str(&pk, "cu", cu);
    else
        pd_pack_kv_bool(&pk, "gpu", true);
    s_send_buf(c);
    if (want) {
        s_expect_error(c, want);
        return 0;
    }
    s_expect(c, "accepted");
    cr_assert_eq(s_uint("n"), n);
    return s_uint("first");
}

/* Receives a `run` (after any `mod`s, whose names go into mods) and checks
   each job's GPU fields: gpu true and the CUDA module cu (NULL: nil). */
static uint32_t s_expect_gpu_run(void *w, s_run_job_t *out, uint32_t cap, const char *cu,
                                 char mods[][16], int *nmods)
{
    *nmods = 0;
    for (;;) {
        cr_assert(s_recv_within(w, 3000), "no run");
        if (pd_msg_is(&msg, "hb"))
            continue;
        if (!pd_msg_is(&msg, "mod"))
            break;
        cr_assert(*nmods < 4);
        cr_assert_eq(pd_msg_str(&msg, "kind", mods[(*nmods)++], 16), 0);
    }
    cr_assert(pd_msg_is(&msg, "run"), "got %s", msg.type);
    pd_rd_t r;
    cr_assert_eq(pd_msg_rd(&msg, "jobs", &r), 0);
    uint32_t n;
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    cr_assert(n <= cap);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t ten;
        uint64_t tmo, client;
        bool gpu = false;
        cr_assert_eq(pd_rd_array(&r, &ten), 0);
        cr_assert_eq(ten, 10, "a GPU job travels with [.., shared or nil, client, gpu, cu]");
        cr_assert_eq(pd_rd_uint(&r, &out[i].id), 0);
        cr_assert_eq(pd_rd_uint(&r, &out[i].attempt), 0);
        cr_assert_eq(pd_rd_skip(&r, NULL, NULL), 0);
        cr_assert_eq(pd_rd_skip(&r, NULL, NULL), 0);
        cr_assert_eq(pd_rd_uint(&r, &tmo), 0);
        cr_assert_eq(pd_rd_uint(&r, &out[i].arg), 0);
        cr_assert_eq(pd_rd_nil(&r), 0, "no shared data");
        cr_assert_eq(pd_rd_uint(&r, &client), 0);
        cr_assert_eq(client, 0, "one submitter (without a key) in the chunk");
        cr_assert_eq(pd_rd_bool(&r, &gpu), 0);
        cr_assert(gpu);
        if (cu) {
            char h[65];
            cr_assert_eq(pd_rd_strcpy(&r, h, sizeof h), 0);
            cr_assert_str_eq(h, cu);
        } else {
            cr_assert_eq(pd_rd_nil(&r), 0);
        }
    }
    return n;
}

Test(unit_broker, a_gpu_job_is_refused_where_no_worker_ever_offered_a_gpu)
{
    void *c = s_dealer(NULL);
    void *w = s_dealer("w-00000000000000c1");
    char hash[65];
    s_put_module(c, hash);
    s_ready(w, 4); /* CPUs only */
    s_submit_gpu(c, hash, 2, 0, NULL, "PD_ENOGPU");
    char m[512];
    cr_assert_eq(pd_msg_str(&msg, "msg", m, sizeof m), 0);
    cr_assert(strstr(m, "no worker of this cluster has offered a GPU"), "%s", m);
    /* Nothing was accepted; CPU jobs still go through. */
    cr_assert_eq(s_submit(c, hash, 1, 0, 3), 1);
    s_hello(c, 4);
    cr_assert_eq(s_uint("gpus"), 0);
}

Test(unit_broker, gpu_jobs_go_to_gpu_slots_only_and_cpu_jobs_to_cpu_slots)
{
    void *c = s_dealer(NULL);
    void *cpu = s_dealer("w-00000000000000c2");
    void *gpu = s_dealer("w-00000000000000c3");
    char hash[65];
    s_put_module(c, hash);
    s_ready(cpu, 2);
    s_prove(c, cpu, hash);
    s_ready_gpu(gpu, 0, 1, true); /* one GPU slot and no CPU slot */
    s_hello(c, 5);
    cr_assert_eq(s_uint("slots"), 3);
    cr_assert_eq(s_uint("gpus"), 1);
    uint64_t g = s_submit_gpu(c, hash, 3, 100, NULL, NULL);
    /* GPU credit is 2 per GPU slot: two now, the third after a result. */
    s_run_job_t jobs[8];
    char mods[4][16];
    int nmods;
    uint32_t n = s_expect_gpu_run(gpu, jobs, 8, NULL, mods, &nmods);
    cr_assert_eq(n, 2);
    cr_assert_eq(nmods, 1);
    cr_assert_eq(jobs[0].id, g);
    cr_assert_eq(jobs[1].id, g + 1);
    /* CPU jobs are not sent to the GPU-only worker. */
    uint64_t first = s_submit(c, hash, 4, 0, 3);
    s_run_job_t cj[8];
    cr_assert_eq(s_expect_run(cpu, cj, 8, false), 4);
    cr_assert_eq(cj[0].id, first);
    cr_assert_not(s_recv_within(cpu, 200) && pd_msg_is(&msg, "run"),
                  "the CPU worker got a GPU job");
    s_done(gpu, jobs, 1, false);
    n = s_expect_gpu_run(gpu, jobs, 8, NULL, mods, &nmods);
    cr_assert_eq(n, 1);
    cr_assert_eq(jobs[0].id, g + 2);
    cr_assert_eq(nmods, 0, "a module goes once per worker");
}

Test(unit_broker, a_cuda_module_travels_with_its_jobs_and_makes_them_gpu_jobs)
{
    void *c = s_dealer(NULL);
    void *gpu = s_dealer("w-00000000000000c4");
    char hash[65], cu[65];
    s_put_module(c, hash);
    s_put_kind(c, "k.cu", "cu", s_cu_src, cu);
    s_ready_gpu(gpu, 1, 1, false);
    /* A .cu is not a task module, and a C module is not a CUDA module. */
    s_submit_gpu(c, cu, 1, 0, NULL, "PD_EINVAL");
    char m[512];
    pd_msg_str(&msg, "msg", m, sizeof m);
    cr_assert(strstr(m, "module k.cu is CUDA source"), "%s", m);
    s_submit_gpu(c, hash, 1, 0, hash, "PD_EINVAL");
    pd_msg_str(&msg, "msg", m, sizeof m);
    cr_assert(strstr(m, "is not CUDA source"), "%s", m);
    s_submit_gpu(c, hash, 1, 0, "abc", "PD_ENOMODULE");
    uint64_t g = s_submit_gpu(c, hash, 1, 7, cu, NULL);
    s_run_job_t jobs[4];
    char mods[4][16];
    int nmods;
    cr_assert_eq(s_expect_gpu_run(gpu, jobs, 4, cu, mods, &nmods), 1);
    cr_assert_eq(jobs[0].id, g);
    cr_assert_eq(nmods, 2, "the C module and the CUDA module come before the run");
    cr_assert_str_eq(mods[0], "c");
    cr_assert_str_eq(mods[1], "cu");
}

Test(unit_broker, gpu_jobs_wait_for_a_gpu_worker_that_left_and_go_to_the_next)
{
    void *c = s_dealer(NULL);
    void *g1 = s_dealer("w-00000000000000c5");
    char hash[65];
    s_put_module(c, hash);
    s_ready_gpu(g1, 1, 2, true);
    msgpack_packer pk = s_begin("bye", 0);
    s_send_buf(g1);
    s_hello(c, 6);
    cr_assert_eq(s_uint("gpus"), 0);
    /* A GPU was seen once: the job waits for one instead of being refused. */
    uint64_t g = s_submit_gpu(c, hash, 1, 1, NULL, NULL);
    (void) pk;
    void *g2 = s_dealer("w-00000000000000c6");
    s_ready_gpu(g2, 0, 1, false);
    s_run_job_t jobs[4];
    char mods[4][16];
    int nmods;
    cr_assert_eq(s_expect_gpu_run(g2, jobs, 4, NULL, mods, &nmods), 1);
    cr_assert_eq(jobs[0].id, g);
}

Test(unit_broker, a_bad_gpu_list_in_ready_is_refused)
{
    void *w = s_dealer("w-00000000000000c7");
    msgpack_packer pk = s_begin("ready", 5);
    pd_pack_kv_str(&pk, "host", "h");
    pd_pack_kv_uint(&pk, "pid", 1);
    pd_pack_kv_uint(&pk, "cpus", 1);
    pd_pack_kv_uint(&pk, "gpus", 1);
    pd_pack_cstr(&pk, "gpu_info");
    msgpack_pack_map(&pk, 0); /* not an array */
    s_send_buf(w);
    s_expect_error(w, "PD_EPROTO");
    pk = s_begin("ready", 5);
    pd_pack_kv_str(&pk, "host", "h");
    pd_pack_kv_uint(&pk, "pid", 1);
    pd_pack_kv_uint(&pk, "cpus", 1);
    pd_pack_kv_uint(&pk, "gpus", 1);
    pd_pack_cstr(&pk, "gpu_info");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 1);
    pd_pack_kv_str(&pk, "mem", "lots"); /* not a number */
    s_send_buf(w);
    s_expect_error(w, "PD_EPROTO");
    void *c = s_dealer(NULL);
    s_hello(c, 7);
    cr_assert_eq(s_uint("workers"), 0, "a refused ready registers nothing");
}

/* ---- pilot workers (Slurm) --------------------------------------------- */

/* ready with a pilot's Slurm ids; the value of slurm_job is packed by the
   caller's choice of type (a string, or an int to be refused). */
static void s_ready_pilot(void *w, const char *job, bool job_as_int, const char *array)
{
    msgpack_packer pk = s_begin("ready", 7);
    pd_pack_kv_str(&pk, "host", "node17");
    pd_pack_kv_uint(&pk, "pid", 77);
    pd_pack_kv_uint(&pk, "cpus", 1);
    pd_pack_kv_uint(&pk, "gpus", 0);
    if (job_as_int)
        pd_pack_kv_uint(&pk, "slurm_job", 5);
    else
        pd_pack_kv_str(&pk, "slurm_job", job);
    pd_pack_kv_str(&pk, "slurm_step", "batch");
    pd_pack_kv_str(&pk, "slurm_array", array);
    s_send_buf(w);
}

Test(unit_broker, a_pilot_keeps_its_slurm_ids_and_its_bye_requeues_without_an_attempt)
{
    void *c = s_dealer(NULL);
    char hash[65];
    s_put_module(c, hash);
    /* Wrong types and oversized ids are refused, the worker unregistered. */
    void *bad = s_dealer("w-00000000000000b0");
    s_ready_pilot(bad, NULL, true, "4_0");
    s_expect_error(bad, "PD_EPROTO");
    char longid[100];
    memset(longid, '7', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    s_ready_pilot(bad, "9", false, longid);
    s_expect_error(bad, "PD_ETOOBIG");
    s_hello(c, 3);
    cr_assert_eq(s_uint("workers"), 0, "a refused ready registered a worker");

    /* A pilot takes both jobs, then leaves with bye (scancel): with retries
       1, a loss counted against them would fail them (PD_ELOST); a bye
       sends them to the next worker as a new run (attempt 2). */
    void *p1 = s_dealer("w-00000000000000b1");
    s_ready_pilot(p1, "4242", false, "4241_3");
    s_expect(p1, "welcome");
    s_prove(c, p1, hash);
    uint64_t first = s_submit(c, hash, 2, 0, 1);
    s_run_job_t jobs[8];
    cr_assert_eq(s_expect_run(p1, jobs, 8, false), 2);
    msgpack_packer pk = s_begin("bye", 0);
    (void) pk;
    s_send_buf(p1);
    void *w2 = s_dealer("w-00000000000000b2");
    s_ready(w2, 1);
    s_run_job_t again[8];
    uint32_t n = s_expect_run(w2, again, 8, true);
    cr_assert_eq(n, 2);
    for (uint32_t i = 0; i < n; i++)
        cr_expect_eq(again[i].attempt, 2, "job %llu: run %llu, not the second",
                     (unsigned long long) again[i].id, (unsigned long long) again[i].attempt);
    s_done(w2, again, n, false);
    s_fetch(c, 50, first, 2, 5000);
    s_expect(c, "results");
    pd_rd_t r;
    cr_assert_eq(pd_msg_rd(&msg, "res", &r), 0);
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    cr_assert_eq(n, 2);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t three;
        uint64_t id, state;
        cr_assert_eq(pd_rd_array(&r, &three), 0);
        cr_assert_eq(pd_rd_uint(&r, &id), 0);
        cr_assert_eq(pd_rd_uint(&r, &state), 0);
        cr_expect_eq(state, 3, "job %llu is in state %llu, not done", (unsigned long long) id,
                     (unsigned long long) state);
        cr_assert_eq(pd_rd_skip(&r, NULL, NULL), 0);
    }

    /* A second pilot, still registered: the registry holds its ids. */
    void *p3 = s_dealer("w-00000000000000b3");
    s_ready_pilot(p3, "4243", false, "4241_4");
    s_expect(p3, "welcome");
    /* The cluster view shows them, for pilots only. */
    pk = s_begin("cluster", 1);
    pd_pack_kv_uint(&pk, "req", 60);
    s_send_buf(c);
    s_expect(c, "cluster");
    cr_assert_eq(pd_msg_rd(&msg, "workers", &r), 0);
    uint32_t nw;
    cr_assert_eq(pd_rd_array(&r, &nw), 0);
    cr_assert_eq(nw, 2);
    int seen_pilot = 0, seen_plain = 0;
    for (uint32_t k = 0; k < nw; k++) {
        uint32_t nf;
        cr_assert_eq(pd_rd_map(&r, &nf), 0);
        char id[32] = "", job[32] = "", step[32] = "", array[48] = "";
        for (uint32_t i = 0; i < nf; i++) {
            if (pd_rd_key_is(&r, "id"))
                cr_assert_eq(pd_rd_strcpy(&r, id, sizeof id), 0);
            else if (pd_rd_key_is(&r, "slurm_job"))
                cr_assert_eq(pd_rd_strcpy(&r, job, sizeof job), 0);
            else if (pd_rd_key_is(&r, "slurm_step"))
                cr_assert_eq(pd_rd_strcpy(&r, step, sizeof step), 0);
            else if (pd_rd_key_is(&r, "slurm_array"))
                cr_assert_eq(pd_rd_strcpy(&r, array, sizeof array), 0);
            else {
                cr_assert_eq(pd_rd_skip(&r, NULL, NULL), 0);
                cr_assert_eq(pd_rd_skip(&r, NULL, NULL), 0);
            }
        }
        if (strcmp(id, "w-00000000000000b3") == 0) {
            seen_pilot++;
            cr_expect_str_eq(job, "4243");
            cr_expect_str_eq(step, "batch");
            cr_expect_str_eq(array, "4241_4");
        } else {
            seen_plain++;
            cr_expect_str_eq(job, "", "a worker not run by Slurm shows Slurm ids");
        }
    }
    cr_expect_eq(seen_pilot, 1);
    cr_expect_eq(seen_plain, 1);
    pd_broker_stop(broker);
    pthread_join(thread, NULL);
    joined = true;
    int pilots = 0;
    for (uint32_t i = 0; i < pd_workers_span(broker->workers); i++) {
        pd_worker_t *wk = pd_workers_at(broker->workers, i);
        if (!wk || wk->ridlen != 18)
            continue;
        cr_expect_neq(memcmp(wk->rid, "w-00000000000000b1", 18), 0,
                      "the pilot that said bye is still registered");
        if (memcmp(wk->rid, "w-00000000000000b3", 18) != 0)
            continue;
        pilots++;
        cr_expect_str_eq(wk->host, "node17");
        cr_expect_str_eq(wk->slurm_job, "4243");
        cr_expect_str_eq(wk->slurm_step, "batch");
        cr_expect_str_eq(wk->slurm_array, "4241_4");
    }
    cr_expect_eq(pilots, 1);
}

/* ---- with a journal whose disk is slow -------------------------------- */

static char jdir[64], jpath[128], jcopy[128];

static void setup_journal(void)
{
    snprintf(jdir, sizeof jdir, "/tmp/pd-broker-journal-XXXXXX");
    cr_assert_not_null(mkdtemp(jdir));
    snprintf(jpath, sizeof jpath, "%s/broker.journal", jdir);
    snprintf(jcopy, sizeof jcopy, "%s/crashed.journal", jdir);
    journal_path = jpath;
    s_start(1000, 3, 1000);
}

static void teardown_journal(void)
{
    if (broker && broker->journal)
        pd_journal_hold(broker->journal, false); /* the stop waits for the disk */
    teardown();
    journal_path = NULL;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", jdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(unit_broker_journal, .init = setup_journal, .fini = teardown_journal, .timeout = 60);

/* Copies a file (what a crash would leave on disk of it). */
static void s_copy(const char *from, const char *to)
{
    char *data;
    size_t len;
    cr_assert_eq(pd_file_read(from, 1u << 30, &data, &len), 0, "%s: %s", from, strerror(errno));
    cr_assert_eq(pd_file_write_atomic(to, data, len), 0);
    free(data);
}

/* The entries of a `results` reply in msg: n, and each id, state, value. */
static uint32_t s_results(uint64_t *ids, uint64_t *states, uint64_t *values, uint32_t cap)
{
    pd_rd_t r;
    uint32_t n, three;
    cr_assert_eq(pd_msg_rd(&msg, "res", &r), 0);
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    cr_assert(n <= cap);
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(pd_rd_array(&r, &three), 0);
        cr_assert_eq(pd_rd_uint(&r, &ids[i]), 0);
        cr_assert_eq(pd_rd_uint(&r, &states[i]), 0);
        values[i] = 0;
        if (states[i] == PD_JOB_DONE)
            cr_assert_eq(pd_rd_uint(&r, &values[i]), 0);
        else
            cr_assert_eq(pd_rd_skip(&r, NULL, NULL), 0);
    }
    return n;
}

Test(unit_broker_journal, a_result_shows_before_its_commit_and_a_crash_then_runs_the_job_again)
{
    void *c = s_dealer(NULL);
    void *w = s_dealer("w-00000000000000j1");
    char hash[65];
    s_put_module(c, hash);
    s_ready(w, 1);
    s_prove(c, w, hash);
    uint64_t first = s_submit(c, hash, 2, 3, 3); /* `accepted`: the submit is on disk */
    s_run_job_t jobs[8];
    cr_assert_eq(s_expect_run(w, jobs, 8, false), 2);
    /* From now on nothing reaches the disk. */
    pd_journal_hold(broker->journal, true);
    s_done(w, jobs, 2, false);
    s_fetch(c, 40, first, 2, 5000);
    s_expect(c, "results");
    uint64_t ids[4], st[4], val[4];
    cr_assert_eq(s_results(ids, st, val, 4), 2, "both results show before their commit");
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(ids[i], first + (uint64_t) i);
        cr_assert_eq(st[i], PD_JOB_DONE);
        cr_assert_eq(val[i], (uint64_t) (3 + i) * (3 + i));
    }
    /* A crash now leaves the journal as it is on disk: copy it, then let the
       first broker go and start another on the copy. */
    s_copy(jpath, jcopy);
    char wal[160], walcopy[160];
    snprintf(wal, sizeof wal, "%s-wal", jpath);
    snprintf(walcopy, sizeof walcopy, "%s-wal", jcopy);
    if (access(wal, F_OK) == 0)
        s_copy(wal, walcopy);
    pd_journal_hold(broker->journal, false);
    teardown();
    journal_path = jcopy;
    s_start(1000, 3, 1000);
    /* The jobs whose results were shown but not committed run again, under
       the same ids: at least once, never lost. */
    void *w2 = s_dealer("w-00000000000000j2");
    s_ready(w2, 1);
    /* A new broker has proven nothing: the first job probes the module. */
    cr_assert_eq(s_expect_run(w2, jobs, 8, true), 1);
    cr_assert_eq(jobs[0].id, first);
    cr_assert_eq(jobs[0].arg, 3);
    s_done(w2, jobs, 1, false);
    cr_assert_eq(s_expect_run(w2, jobs + 1, 7, false), 1);
    cr_assert_eq(jobs[1].id, first + 1);
    s_done(w2, jobs + 1, 1, false);
    void *c2 = s_dealer(NULL);
    s_fetch(c2, 41, first, 2, 5000);
    s_expect(c2, "results");
    cr_assert_eq(s_results(ids, st, val, 4), 2);
    cr_assert_eq(st[0], PD_JOB_DONE);
    cr_assert_eq(val[1], 16);
}

Test(unit_broker_journal, a_cancellation_shows_only_once_on_disk)
{
    void *c = s_dealer(NULL);
    void *w = s_dealer("w-00000000000000j3");
    char hash[65];
    s_put_module(c, hash);
    s_ready(w, 1);
    s_prove(c, w, hash);
    uint64_t first = s_submit(c, hash, 2, 5, 3);
    s_run_job_t jobs[8];
    cr_assert_eq(s_expect_run(w, jobs, 8, false), 2);
    pd_journal_hold(broker->journal, true);
    s_cancel(c, 50, first + 1, 1);
    s_expect(w, "cancel"); /* the worker is told at once... */
    /* ... the client once the cancellation is on disk, and a fetch shows
       nothing of it before then. */
    s_fetch(c, 51, first + 1, 1, 0);
    s_expect(c, "results");
    cr_assert_eq(s_uint("req"), 51, "`cancelled` left before its commit");
    uint64_t ids[4], st[4], val[4];
    cr_assert_eq(s_results(ids, st, val, 4), 0, "a cancellation showed before its commit");
    s_fetch(c, 52, first + 1, 1, 20000);
    cr_assert_not(s_recv_within(c, 200), "a reply left before the commit");
    pd_journal_hold(broker->journal, false);
    s_expect(c, "cancelled");
    cr_assert_eq(s_uint("req"), 50);
    cr_assert_eq(s_uint("n"), 1);
    s_expect(c, "results");
    cr_assert_eq(s_uint("req"), 52, "the parked fetch is answered once the batch settles");
    cr_assert_eq(s_results(ids, st, val, 4), 1);
    cr_assert_eq(ids[0], first + 1);
    cr_assert_eq(st[0], PD_JOB_CANCELLED);
    /* The other job's result shows at once, with the disk held again. */
    pd_journal_hold(broker->journal, true);
    s_done(w, jobs, 1, false);
    s_fetch(c, 53, first, 1, 5000);
    s_expect(c, "results");
    cr_assert_eq(s_results(ids, st, val, 4), 1);
    cr_assert_eq(val[0], 25);
}

/* ---- a broken module fails once, before its batch ----------------------- */

/* One entry of a `results` reply: id, state, and a failure's code and msg. */
typedef struct {
    uint64_t id, state;
    char code[32], msg[600];
} s_res_t;

/* The entries of the `results` reply in msg. */
static uint32_t s_results_full(s_res_t *out, uint32_t cap)
{
    pd_rd_t r;
    uint32_t n, three;
    cr_assert_eq(pd_msg_rd(&msg, "res", &r), 0);
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    cr_assert(n <= cap);
    for (uint32_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        cr_assert_eq(pd_rd_array(&r, &three), 0);
        cr_assert_eq(pd_rd_uint(&r, &out[i].id), 0);
        cr_assert_eq(pd_rd_uint(&r, &out[i].state), 0);
        if (out[i].state != PD_JOB_FAILED) {
            cr_assert_eq(pd_rd_skip(&r, NULL, NULL), 0);
            continue;
        }
        uint32_t nf;
        cr_assert_eq(pd_rd_map(&r, &nf), 0);
        for (uint32_t f = 0; f < nf; f++) {
            if (pd_rd_key_is(&r, "code"))
                cr_assert_eq(pd_rd_strcpy(&r, out[i].code, sizeof out[i].code), 0);
            else if (pd_rd_key_is(&r, "msg"))
                cr_assert_eq(pd_rd_strcpy(&r, out[i].msg, sizeof out[i].msg), 0);
            else
                cr_assert(pd_rd_skip(&r, NULL, NULL) == 0 && pd_rd_skip(&r, NULL, NULL) == 0);
        }
    }
    return n;
}

/* Sends `done` with one failure: code, msg and, when exit >= 0, an exec
   job's output map {exit, out, err} as its value. */
static void s_done_failed(void *w, const s_run_job_t *job, const char *code, const char *text,
                          int exit)
{
    msgpack_packer pk = s_begin("done", 1);
    pd_pack_cstr(&pk, "res");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint64(&pk, job->id);
    msgpack_pack_uint64(&pk, job->attempt);
    msgpack_pack_false(&pk);
    msgpack_pack_map(&pk, exit >= 0 ? 4 : 3);
    pd_pack_kv_str(&pk, "code", code);
    pd_pack_kv_str(&pk, "msg", text);
    pd_pack_kv_int(&pk, "slot", 0);
    if (exit >= 0) {
        pd_pack_cstr(&pk, "value");
        msgpack_pack_map(&pk, 3);
        pd_pack_kv_int(&pk, "exit", exit);
        pd_pack_kv_str(&pk, "out", "");
        pd_pack_kv_str(&pk, "err", "sh: 1: nosuchprog: not found\n");
    }
    msgpack_pack_uint64(&pk, 5);
    s_send_buf(w);
}

Test(unit_broker, a_new_modules_first_job_runs_alone_and_a_compile_error_ends_its_batch)
{
    void *c = s_dealer(NULL);
    void *w = s_dealer("w-00000000000000d1");
    char hash[65];
    s_put_module(c, hash);
    s_ready(w, 2); /* credit for 16 */
    uint64_t first = s_submit(c, hash, 10, 0, 3);
    s_run_job_t jobs[16];
    cr_assert_eq(s_expect_run(w, jobs, 16, true), 1, "only the probe goes");
    cr_assert_eq(jobs[0].id, first);
    cr_assert_not(s_recv_within(w, 200) && pd_msg_is(&msg, "run"),
                  "the batch went on before the probe came back");
    static const char diag[] = "module square.c: compile error:\n"
                               "square.c:1:31: error: expected ';' before '}' token";
    s_done_failed(w, &jobs[0], "PD_ECOMPILE", diag, -1);
    s_fetch(c, 60, first, 10, 5000);
    s_expect(c, "results");
    s_res_t res[16];
    uint32_t n = s_results_full(res, 16);
    cr_assert_eq(n, 10, "the whole batch ended with the probe");
    cr_assert_eq(res[0].state, PD_JOB_FAILED);
    cr_assert_str_eq(res[0].code, "PD_ECOMPILE");
    cr_assert_str_eq(res[0].msg, diag);
    for (uint32_t i = 1; i < n; i++)
        cr_assert_eq(res[i].state, PD_JOB_CANCELLED, "job %llu is %llu",
                     (unsigned long long) res[i].id, (unsigned long long) res[i].state);
    /* Another batch of the same function is probed again: one job, alone. */
    uint64_t again = s_submit(c, hash, 3, 0, 3);
    cr_assert_eq(s_expect_run(w, jobs, 16, false), 1);
    cr_assert_eq(jobs[0].id, again);
    s_done_failed(w, &jobs[0], "PD_ECOMPILE", diag, -1);
    s_fetch(c, 61, again, 3, 5000);
    s_expect(c, "results");
    n = s_results_full(res, 16);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(res[0].code, "PD_ECOMPILE");
    cr_assert_eq(res[1].state, PD_JOB_CANCELLED);
    cr_assert_eq(res[2].state, PD_JOB_CANCELLED);
    while (s_recv_within(w, 200))
        cr_assert(!pd_msg_is(&msg, "run"), "a job of a broken batch was sent");
}

Test(unit_broker, a_probe_that_succeeds_releases_its_batch_and_later_batches_flow)
{
    void *c = s_dealer(NULL);
    void *w = s_dealer("w-00000000000000d2");
    char hash[65];
    s_put_module(c, hash);
    s_ready(w, 2);
    uint64_t first = s_submit(c, hash, 5, 0, 3);
    s_run_job_t jobs[16];
    cr_assert_eq(s_expect_run(w, jobs, 16, true), 1);
    /* A failure of the task's own (not of the module) proves the module too. */
    s_done_failed(w, &jobs[0], "PD_ETASK", "want a positive number", -1);
    cr_assert_eq(s_expect_run(w, jobs, 16, false), 4, "the held jobs go together");
    cr_assert_eq(jobs[0].id, first + 1);
    s_done(w, jobs, 4, false);
    uint64_t next = s_submit(c, hash, 3, 0, 3);
    cr_assert_eq(s_expect_run(w, jobs, 16, false), 3, "a proven module's batch is not held");
    cr_assert_eq(jobs[0].id, next);
}

Test(unit_broker, a_missing_function_fails_its_batch_whatever_job_meets_it_first)
{
    void *c = s_dealer(NULL);
    void *w = s_dealer("w-00000000000000d3");
    char hash[65];
    s_put_module(c, hash);
    s_ready(w, 1);
    uint64_t first = s_submit(c, hash, 4, 0, 3);
    s_run_job_t jobs[16];
    cr_assert_eq(s_expect_run(w, jobs, 16, true), 1);
    /* The worker leaves before answering: the probe goes back to the queue,
       and the next worker probes again. */
    msgpack_packer pk = s_begin("bye", 0);
    (void) pk;
    s_send_buf(w);
    void *w2 = s_dealer("w-00000000000000d4");
    s_ready(w2, 1);
    cr_assert_eq(s_expect_run(w2, jobs, 16, true), 1, "a new probe, alone");
    cr_assert_eq(jobs[0].id, first);
    s_done_failed(w2, &jobs[0], "PD_ENOFUNC",
                  "module square.c has no function 'sqaure' (check the name passed to map)", -1);
    s_fetch(c, 62, first, 4, 5000);
    s_expect(c, "results");
    s_res_t res[8];
    cr_assert_eq(s_results_full(res, 8), 4);
    cr_assert_str_eq(res[0].code, "PD_ENOFUNC");
    for (int i = 1; i < 4; i++)
        cr_assert_eq(res[i].state, PD_JOB_CANCELLED);
}

/* exec jobs: [id, attempt, "builtin", "exec", ...]: the ids of a run. */
static uint32_t s_expect_exec_run(void *w, uint64_t *ids, uint64_t *attempts, uint32_t cap)
{
    do
        cr_assert(s_recv_within(w, 3000), "no run");
    while (!pd_msg_is(&msg, "run"));
    pd_rd_t r;
    uint32_t n, k;
    cr_assert_eq(pd_msg_rd(&msg, "jobs", &r), 0);
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    cr_assert(n <= cap);
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(pd_rd_array(&r, &k), 0);
        cr_assert_eq(pd_rd_uint(&r, &ids[i]), 0);
        cr_assert_eq(pd_rd_uint(&r, &attempts[i]), 0);
        for (uint32_t f = 2; f < k; f++)
            cr_assert_eq(pd_rd_skip(&r, NULL, NULL), 0);
    }
    return n;
}

/* Submits n exec jobs ("cmd i"); returns the first id. */
static uint64_t s_submit_exec(void *c, uint32_t n)
{
    msgpack_packer pk = s_begin("submit", 4);
    pd_pack_kv_uint(&pk, "req", 2);
    pd_pack_kv_str(&pk, "mod", PD_MODS_BUILTIN);
    pd_pack_kv_str(&pk, "fn", "exec");
    pd_pack_cstr(&pk, "args");
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++)
        pd_pack_cstr(&pk, "nosuchprog");
    s_send_buf(c);
    s_expect(c, "accepted");
    return s_uint("first");
}

Test(unit_broker, an_exec_batch_whose_program_is_not_found_first_is_cancelled)
{
    void *c = s_dealer(NULL);
    void *w = s_dealer("w-00000000000000d5");
    s_ready(w, 2);
    uint64_t first = s_submit_exec(c, 20);
    uint64_t ids[32], att[32];
    uint32_t n = s_expect_exec_run(w, ids, att, 32);
    cr_assert_eq(n, 16, "exec is not probed: the credit's worth goes");
    s_run_job_t job = {ids[0], att[0], 0};
    s_done_failed(w, &job, "PD_ETASK", "command exited with status 127", 127);
    s_expect(w, "cancel"); /* the running ones are stopped */
    s_fetch(c, 63, first, 20, 5000);
    s_expect(c, "results");
    s_res_t res[32];
    cr_assert_eq(s_results_full(res, 32), 20);
    cr_assert_eq(res[0].state, PD_JOB_FAILED);
    for (int i = 1; i < 20; i++)
        cr_assert_eq(res[i].state, PD_JOB_CANCELLED, "job %d", i);
    /* Once a job of the batch succeeded, a 127 is that job's own failure. */
    first = s_submit_exec(c, 3);
    n = s_expect_exec_run(w, ids, att, 32);
    cr_assert_eq(n, 3);
    msgpack_packer pk = s_begin("done", 1);
    pd_pack_cstr(&pk, "res");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint64(&pk, ids[0]);
    msgpack_pack_uint64(&pk, att[0]);
    msgpack_pack_true(&pk);
    msgpack_pack_nil(&pk);
    msgpack_pack_uint64(&pk, 5);
    s_send_buf(w);
    job = (s_run_job_t){ids[1], att[1], 0};
    s_done_failed(w, &job, "PD_ETASK", "command exited with status 127", 127);
    s_fetch(c, 64, first + 1, 1, 5000);
    s_expect(c, "results");
    s_fetch(c, 65, first, 3, 0);
    s_expect(c, "results");
    cr_assert_eq(s_results_full(res, 32), 2, "the third job runs on");
}
