/*  Unit tests for worker/pd_worker: the worker's side of the protocol.

    A fake broker (a ROUTER socket on loopback, driven by the test) talks to a
    real pd_worker_t running in a thread; its slots are real child processes
    (this executable, exec'ed with "--slot ...", see main() below).
*/
#include "pd_codec.h"
#include "pd_msg.h"
#include "pd_slot.h"
#include "pd_worker.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

static const char *s_src =
    "#include <playdoh_task.h>\n"
    "#include <unistd.h>\n"
    "PD_TASK_DOUBLE(square, x) { return x * x; }\n"
    "PD_TASK(refuse, t) { return pd_task_fail(t, \"no thanks\"); }\n"
    "PD_TASK(nap, t) { double s = 0; pd_arg_double(t, &s); usleep((useconds_t) (s * 1e6)); return 0; }\n";

static char s_dir[64];
static char s_hash[65];
static void *s_ctx, *s_router;
static char s_endpoint[128];
static pd_worker_t *s_worker;
static pthread_t s_thread;
static volatile sig_atomic_t s_stop;
static uint8_t s_peer[64];
static size_t s_peerlen;

typedef struct {
    uint8_t *frame; /* owned copy */
    size_t len;
    pd_msg_t m;
} msg_t;

static void *run_worker(void *arg)
{
    (void) arg;
    pd_worker_run(s_worker, &s_stop);
    return NULL;
}

/* The slots' program: a link in the test's directory, pointing to
   /bin/false (slots that cannot start) when s_broken_slots is set, else
   "/proc/self/exe". */
static bool s_broken_slots;
static char s_slot_link[128];

/* What the worker under test was told about Slurm (NULL: not a pilot). */
static const char *s_slurm_job, *s_slurm_step, *s_slurm_array;

/* Starts the fake broker and a worker: an idle time-out and Slurm ids (a
   pilot), code policy mode over list. */
static void s_start_with(int idle_exit_ms, const char *job, const char *step, const char *array,
                         pd_policy_mode_t mode, const char *list)
{
    unsetenv("BXFI_MAP"); /* see test_pd_slot.c */
    s_slurm_job = job;
    s_slurm_step = step;
    s_slurm_array = array;
    snprintf(s_dir, sizeof s_dir, "/tmp/pd-worker-XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    unsigned char h[32];
    crypto_hash_sha256(h, (const unsigned char *) s_src, strlen(s_src));
    sodium_bin2hex(s_hash, sizeof s_hash, h, 32);
    s_ctx = zmq_ctx_new();
    s_router = zmq_socket(s_ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(s_router, ZMQ_LINGER, &linger, sizeof linger);
    cr_assert_eq(zmq_bind(s_router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof s_endpoint;
    zmq_getsockopt(s_router, ZMQ_LAST_ENDPOINT, s_endpoint, &len);
    snprintf(s_slot_link, sizeof s_slot_link, "%s/slot-program", s_dir);
    if (s_broken_slots)
        cr_assert_eq(symlink("/bin/false", s_slot_link), 0);
    pd_worker_config_t cfg = {.broker = s_endpoint, .cpus = 2, .cache_dir = s_dir,
                              .heartbeat_ms = 100, .name = "testhost",
                              .slot_exe = s_broken_slots ? s_slot_link : "/proc/self/exe",
                              .idle_exit_ms = idle_exit_ms,
                              .slurm_job = job, .slurm_step = step, .slurm_array = array,
                              .code_policy = mode, .code_list = list};
    s_worker = pd_worker_new(&cfg, NULL);
    cr_assert_not_null(s_worker);
    s_stop = 0;
    cr_assert_eq(pthread_create(&s_thread, NULL, run_worker, NULL), 0);
}

static void start(int idle_exit_ms, const char *job, const char *step, const char *array)
{
    s_start_with(idle_exit_ms, job, step, array, PD_POLICY_ANY, NULL);
}

static void s_start(pd_policy_mode_t mode, const char *list)
{
    s_start_with(0, NULL, NULL, NULL, mode, list);
}

static void setup(void) { start(0, NULL, NULL, NULL); }

static void stop_worker(void)
{
    if (!s_worker)
        return;
    s_stop = 1;
    pthread_join(s_thread, NULL);
    pd_worker_destroy(&s_worker);
}

static void teardown(void)
{
    stop_worker();
    zmq_close(s_router);
    zmq_ctx_term(s_ctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(unit, .init = setup, .fini = teardown, .timeout = 60);

/* Receives the next message (skipping heartbeats unless want_hb) within
   timeout_ms; returns false on time-out. */
static bool recv_msg(msg_t *out, int timeout_ms, bool want_hb)
{
    int64_t end = pd_slot_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = end - pd_slot_now_ms();
        if (left <= 0)
            return false;
        zmq_pollitem_t it = {.socket = s_router, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, (long) left) <= 0)
            continue;
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        cr_assert_geq(zmq_msg_recv(&id, s_router, 0), 0);
        cr_assert(zmq_msg_more(&id));
        cr_assert_geq(zmq_msg_recv(&body, s_router, 0), 0);
        s_peerlen = zmq_msg_size(&id);
        cr_assert_lt(s_peerlen, sizeof s_peer);
        memcpy(s_peer, zmq_msg_data(&id), s_peerlen);
        out->len = zmq_msg_size(&body);
        out->frame = malloc(out->len);
        memcpy(out->frame, zmq_msg_data(&body), out->len);
        zmq_msg_close(&id);
        zmq_msg_close(&body);
        cr_assert_eq(pd_msg_parse(&out->m, out->frame, out->len), 0, "%s", out->m.why);
        if (want_hb || !pd_msg_is(&out->m, "hb"))
            return true;
        free(out->frame);
    }
}

static void expect(const char *type, msg_t *m)
{
    for (;;) {
        cr_assert(recv_msg(m, 5000, strcmp(type, "hb") == 0), "no '%s' from the worker", type);
        /* This fake broker does not heartbeat: on a loaded machine the
           worker may find it silent and register again in between. */
        if (strcmp(type, "ready") == 0 || !pd_msg_is(&m->m, "ready"))
            break;
        free(m->frame);
    }
    cr_assert_str_eq(m->m.type, type);
}

static void send_buf(pd_buf_t *b)
{
    cr_assert_not(b->failed);
    cr_assert_geq(zmq_send(s_router, s_peer, s_peerlen, ZMQ_SNDMORE), 0);
    cr_assert_geq(zmq_send(s_router, b->data, b->len, 0), 0);
    pd_buf_free(b);
}

/* Welcomes the worker (hb_ms 100, liveness 3) and sends it the test module. */
static void welcome_and_mod(void)
{
    pd_buf_t b;
    msgpack_packer pk;
    pd_buf_init(&b);
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "welcome", 2);
    pd_pack_kv_uint(&pk, "hb_ms", 100);
    pd_pack_kv_uint(&pk, "liveness", 3);
    send_buf(&b);
    pd_buf_init(&b);
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "mod", 4);
    pd_pack_kv_str(&pk, "hash", s_hash);
    pd_pack_kv_str(&pk, "name", "tasks.c");
    pd_pack_kv_str(&pk, "kind", "c");
    pd_pack_kv_bin(&pk, "data", s_src, strlen(s_src));
    send_buf(&b);
}

/* ready -> welcome -> mod */
static void handshake(void)
{
    msg_t m;
    expect("ready", &m);
    char host[64];
    uint64_t cpus = 0, gpus = 9, pid = 0;
    cr_assert_eq(pd_msg_str(&m.m, "host", host, sizeof host), 0);
    cr_assert_eq(pd_msg_uint(&m.m, "cpus", &cpus), 0);
    cr_assert_eq(pd_msg_uint(&m.m, "gpus", &gpus), 0);
    cr_assert_eq(pd_msg_uint(&m.m, "pid", &pid), 0);
    cr_expect_str_eq(host, "testhost");
    cr_expect_eq(cpus, 2);
    cr_expect_eq(gpus, 0);
    cr_expect_eq(pid, (uint64_t) getpid());
    /* A pilot's Slurm ids, and nothing of the kind from other workers. */
    const char *keys[3] = {"slurm_job", "slurm_step", "slurm_array"};
    const char *want[3] = {s_slurm_job, s_slurm_step, s_slurm_array};
    for (int i = 0; i < 3; i++) {
        char v[64] = "";
        if (!want[i]) {
            cr_expect_not(pd_msg_has(&m.m, keys[i]), "'ready' of a non-pilot has %s", keys[i]);
            continue;
        }
        cr_assert_eq(pd_msg_str(&m.m, keys[i], v, sizeof v), 0, "%s", m.m.why);
        cr_expect_str_eq(v, want[i]);
    }
    free(m.frame);
    cr_assert_eq(s_peerlen, 18);
    cr_expect(memcmp(s_peer, "w-", 2) == 0);
    cr_expect(memcmp(s_peer, pd_worker_id(s_worker), 18) == 0);
    welcome_and_mod();
}

/* Sends run {jobs: [[id, 1, mod, fn, timeout_ms, x, nil, client], ...], clients}
   where client indexes the distinct keys of clients[]; without clients,
   entries have the six elements of older brokers and there is no table. */
static void run_jobs_from(size_t n, const uint64_t *ids, const char *const *mods,
                          const char *const *fns, const double *xs, const uint64_t *timeouts,
                          const char *const *clients)
{
    pd_buf_t b;
    msgpack_packer pk;
    pd_buf_init(&b);
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "run", clients ? 2 : 1);
    pd_pack_cstr(&pk, "jobs");
    msgpack_pack_array(&pk, (uint32_t) n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_array(&pk, clients ? 8 : 6);
        msgpack_pack_uint64(&pk, ids[i]);
        msgpack_pack_uint64(&pk, 1);
        pd_pack_cstr(&pk, mods[i]);
        pd_pack_cstr(&pk, fns[i]);
        msgpack_pack_uint64(&pk, timeouts ? timeouts[i] : 0);
        msgpack_pack_double(&pk, xs[i]);
        if (clients) {
            msgpack_pack_nil(&pk);       /* no shared data */
            msgpack_pack_uint64(&pk, i); /* the table repeats keys: one entry per job */
        }
    }
    if (clients) {
        pd_pack_cstr(&pk, "clients");
        msgpack_pack_array(&pk, (uint32_t) n);
        for (size_t i = 0; i < n; i++)
            pd_pack_cstr(&pk, clients[i]);
    }
    send_buf(&b);
}

static void run_jobs(size_t n, const uint64_t *ids, const char *const *mods, const char *const *fns,
                     const double *xs, const uint64_t *timeouts)
{
    run_jobs_from(n, ids, mods, fns, xs, timeouts, NULL);
}

typedef struct {
    uint64_t id;
    bool ok;
    double x;        /* when ok */
    char code[32];   /* when failed */
    char msg[512];
} res_t;

/* Collects `want` results from `done` messages (or fails after 20 s). */
static void collect(res_t *out, size_t want)
{
    size_t got = 0;
    while (got < want) {
        msg_t m;
        cr_assert(recv_msg(&m, 20000, false), "only %zu of %zu results", got, want);
        if (pd_msg_is(&m.m, "ready")) {
            /* This fake broker does not heartbeat: the worker, finding it
               silent, registers again. */
            free(m.frame);
            continue;
        }
        cr_assert_str_eq(m.m.type, "done");
        pd_rd_t r;
        uint32_t n;
        cr_assert_eq(pd_msg_rd(&m.m, "res", &r), 0);
        cr_assert_eq(pd_rd_array(&r, &n), 0);
        for (uint32_t i = 0; i < n; i++) {
            cr_assert_lt(got, want, "more results than jobs");
            res_t *x = &out[got++];
            memset(x, 0, sizeof *x);
            uint32_t k;
            uint64_t attempt, us;
            cr_assert_eq(pd_rd_array(&r, &k), 0);
            cr_assert_eq(k, 5);
            cr_assert_eq(pd_rd_uint(&r, &x->id), 0);
            cr_assert_eq(pd_rd_uint(&r, &attempt), 0);
            cr_expect_eq(attempt, 1);
            cr_assert_eq(pd_rd_bool(&r, &x->ok), 0);
            if (x->ok) {
                if (pd_rd_peek(&r) == PD_MP_NIL)
                    pd_rd_nil(&r);
                else
                    cr_assert_eq(pd_rd_double(&r, &x->x), 0);
            } else {
                uint32_t f;
                cr_assert_eq(pd_rd_map(&r, &f), 0);
                for (uint32_t j = 0; j < f; j++) {
                    if (pd_rd_key_is(&r, "code"))
                        cr_assert_eq(pd_rd_strcpy(&r, x->code, sizeof x->code), 0);
                    else if (pd_rd_key_is(&r, "msg"))
                        cr_assert_eq(pd_rd_strcpy(&r, x->msg, sizeof x->msg), 0);
                    else {
                        pd_rd_skip(&r, NULL, NULL);
                        pd_rd_skip(&r, NULL, NULL);
                    }
                }
            }
            cr_assert_eq(pd_rd_uint(&r, &us), 0);
        }
        free(m.frame);
    }
}

static const res_t *find(const res_t *rs, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (rs[i].id == id)
            return &rs[i];
    cr_assert_fail("no result for job %llu", (unsigned long long) id);
    return NULL;
}

Test(unit, registers_runs_jobs_and_says_bye)
{
    handshake();
    static const char zeros[] = "0000000000000000000000000000000000000000000000000000000000000000";
    uint64_t ids[4] = {1, 2, 3, 4};
    const char *mods[4] = {s_hash, s_hash, zeros, s_hash};
    const char *fns[4] = {"square", "refuse", "square", "square"};
    double xs[4] = {3, 0, 1, 5};
    run_jobs(4, ids, mods, fns, xs, NULL);
    res_t rs[4];
    collect(rs, 4);
    cr_expect(find(rs, 4, 1)->ok);
    cr_expect_float_eq(find(rs, 4, 1)->x, 9.0, 1e-12);
    cr_expect_float_eq(find(rs, 4, 4)->x, 25.0, 1e-12);
    cr_expect_str_eq(find(rs, 4, 2)->code, "PD_ETASK");
    cr_expect_str_eq(find(rs, 4, 2)->msg, "no thanks");
    cr_expect_str_eq(find(rs, 4, 3)->code, "PD_ENOMODULE");
    stop_worker();
    msg_t m;
    expect("bye", &m);
    free(m.frame);
}

Test(unit, heartbeats_while_a_slot_computes)
{
    handshake();
    uint64_t ids[1] = {7};
    const char *mods[1] = {s_hash};
    const char *fns[1] = {"nap"};
    double xs[1] = {0.6};
    run_jobs(1, ids, mods, fns, xs, NULL);
    int hbs = 0;
    int64_t end = pd_slot_now_ms() + 450;
    msg_t m;
    while (pd_slot_now_ms() < end && recv_msg(&m, (int) (end - pd_slot_now_ms()), true)) {
        hbs += pd_msg_is(&m.m, "hb");
        free(m.frame);
    }
    cr_expect_geq(hbs, 2, "only %d heartbeats in 450 ms at hb_ms 100", hbs);
    res_t rs[1];
    collect(rs, 1);
    cr_expect(rs[0].ok);
}

Test(unit, cancel_reports_nothing_and_the_slot_goes_on)
{
    handshake();
    uint64_t ids[2] = {10, 11};
    const char *mods[2] = {s_hash, s_hash};
    const char *fns[2] = {"nap", "nap"};
    double xs[2] = {30, 30};
    run_jobs(2, ids, mods, fns, xs, NULL);
    usleep(300000);
    pd_buf_t b;
    msgpack_packer pk;
    pd_buf_init(&b);
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "cancel", 1);
    pd_pack_cstr(&pk, "ids");
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint64(&pk, 11);
    msgpack_pack_uint64(&pk, 10);
    msgpack_pack_uint64(&pk, 999);
    send_buf(&b);
    uint64_t ids2[1] = {12};
    const char *fns2[1] = {"square"};
    double xs2[1] = {4};
    run_jobs(1, ids2, mods, fns2, xs2, NULL);
    res_t rs[1];
    collect(rs, 1);
    cr_expect_eq(rs[0].id, 12, "a cancelled job reported a result");
    cr_expect_float_eq(rs[0].x, 16.0, 1e-12);
}

/* Sends steal {n, gpu: false} and returns the ids of the `requeue` that
   answers it (stolen: true), in its order, in ids (room for 16); *k gets
   how many. */
static void steal(uint64_t n, uint64_t *ids, uint32_t *k)
{
    pd_buf_t b;
    msgpack_packer pk;
    pd_buf_init(&b);
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "steal", 2);
    pd_pack_kv_uint(&pk, "n", n);
    pd_pack_cstr(&pk, "gpu");
    msgpack_pack_false(&pk);
    send_buf(&b);
    msg_t m;
    expect("requeue", &m);
    bool stolen = false;
    cr_assert_eq(pd_msg_bool(&m.m, "stolen", &stolen), 0, "%s", m.m.why);
    cr_assert(stolen, "the answer to steal says stolen");
    pd_rd_t r;
    cr_assert_eq(pd_msg_rd(&m.m, "jobs", &r), 0);
    cr_assert_eq(pd_rd_array(&r, k), 0);
    cr_assert_leq(*k, 16);
    for (uint32_t i = 0; i < *k; i++) {
        uint32_t two;
        uint64_t attempt;
        cr_assert_eq(pd_rd_array(&r, &two), 0);
        cr_assert_eq(two, 2);
        cr_assert_eq(pd_rd_uint(&r, &ids[i]), 0);
        cr_assert_eq(pd_rd_uint(&r, &attempt), 0);
        cr_expect_eq(attempt, 1);
    }
    free(m.frame);
}

Test(unit, steal_gives_back_queued_jobs_last_first_and_never_runs_them)
{
    handshake();
    /* Two slots run 20 and 21 for 2 s; 22 to 25 wait in the queue. */
    uint64_t ids[6] = {20, 21, 22, 23, 24, 25};
    const char *mods[6] = {s_hash, s_hash, s_hash, s_hash, s_hash, s_hash};
    const char *fns[6] = {"nap", "nap", "nap", "nap", "nap", "nap"};
    double xs[6] = {2, 2, 2, 2, 2, 2};
    run_jobs(6, ids, mods, fns, xs, NULL);
    usleep(300000);
    uint64_t got[16];
    uint32_t k;
    steal(3, got, &k);
    cr_assert_eq(k, 3);
    cr_expect_eq(got[0], 25);
    cr_expect_eq(got[1], 24);
    cr_expect_eq(got[2], 23);
    /* More than it holds: what is left of the queue, not what slots run. */
    steal(10, got, &k);
    cr_assert_eq(k, 1);
    cr_expect_eq(got[0], 22);
    /* Nothing left: an empty answer, still an answer. */
    steal(10, got, &k);
    cr_assert_eq(k, 0);
    /* Only the jobs kept run. */
    res_t rs[2];
    collect(rs, 2);
    find(rs, 2, 20);
    find(rs, 2, 21);
    /* 2.5 s more: time for 22 and 23 to run on the freed slots. The
       worker, without heartbeats from this fake broker, says ready now and
       then. */
    msg_t m;
    bool more = false;
    int64_t end = pd_slot_now_ms() + 2500;
    for (int64_t left; (left = end - pd_slot_now_ms()) > 0;)
        if (recv_msg(&m, (int) left, false)) {
            more |= pd_msg_is(&m.m, "done");
            free(m.frame);
        }
    cr_assert_not(more, "a job given back ran anyway");
}

Test(unit, time_out_and_reset)
{
    handshake();
    uint64_t ids[1] = {20};
    const char *mods[1] = {s_hash};
    const char *fns[1] = {"nap"};
    double xs[1] = {30};
    uint64_t tos[1] = {300};
    run_jobs(1, ids, mods, fns, xs, tos);
    res_t rs[1];
    collect(rs, 1);
    cr_expect_str_eq(rs[0].code, "PD_ETIMEDOUT");
    cr_expect_str_eq(rs[0].msg, "task ran past its time-out of 300 ms");
    /* reset: the worker drops its jobs and registers again. */
    xs[0] = 30;
    ids[0] = 21;
    run_jobs(1, ids, mods, fns, xs, NULL);
    usleep(200000);
    pd_buf_t b;
    msgpack_packer pk;
    pd_buf_init(&b);
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "reset", 0);
    send_buf(&b);
    handshake();
    ids[0] = 22;
    fns[0] = "square";
    xs[0] = 2;
    run_jobs(1, ids, mods, fns, xs, NULL);
    collect(rs, 1);
    cr_expect_eq(rs[0].id, 22, "job 21 was dropped by the reset");
    cr_expect_float_eq(rs[0].x, 4.0, 1e-12);
}

Test(unit, many_short_jobs_stream_in_batches)
{
    handshake();
    enum { N = 4000 };
    static uint64_t ids[N];
    static const char *mods[N], *fns[N];
    static double xs[N];
    static res_t rs[N];
    for (int i = 0; i < N; i++) {
        ids[i] = (uint64_t) i + 100;
        mods[i] = s_hash;
        fns[i] = "square";
        xs[i] = i;
    }
    int64_t t0 = pd_slot_now_ms();
    for (int c = 0; c < N; c += 1000)
        run_jobs(1000, ids + c, mods + c, fns + c, xs + c, NULL);
    collect(rs, N);
    cr_log_info("%d jobs in %lld ms", N, (long long) (pd_slot_now_ms() - t0));
    static bool seen[N];
    for (int i = 0; i < N; i++) {
        cr_assert(rs[i].ok);
        uint64_t k = rs[i].id - 100;
        cr_assert_lt(k, N);
        cr_assert_not(seen[k], "job %llu reported twice", (unsigned long long) rs[i].id);
        seen[k] = true;
        cr_assert_float_eq(rs[i].x, (double) k * (double) k, 1e-9);
    }
}

Test(unit, silent_broker_gets_ready_again)
{
    handshake();
    /* Say nothing for more than hb_ms x liveness = 300 ms. */
    int64_t end = pd_slot_now_ms() + 1500;
    bool ready = false;
    msg_t m;
    while (!ready && pd_slot_now_ms() < end && recv_msg(&m, (int) (end - pd_slot_now_ms()), false)) {
        ready = pd_msg_is(&m.m, "ready");
        free(m.frame);
    }
    cr_expect(ready, "no 'ready' after the broker fell silent");
}

/* ---- the owner's code policy ------------------------------------------- */

static void policy_teardown(void) { teardown(); }
TestSuite(policy, .fini = policy_teardown, .timeout = 60);

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(policy, clients_policy_runs_only_listed_keys_and_rereads_the_list)
{
    char a[41], b[41], sec[41];
    zmq_curve_keypair(a, sec);
    zmq_curve_keypair(b, sec);
    char list[128], text[256];
    snprintf(list, sizeof list, "/tmp/pd-policy-%d", (int) getpid());
    snprintf(text, sizeof text, "# lab members\n%s alice\n", a);
    s_write(list, text);
    s_start(PD_POLICY_CLIENTS, list);
    handshake();
    uint64_t ids[3] = {1, 2, 3};
    const char *mods[3] = {s_hash, s_hash, s_hash};
    const char *fns[3] = {"square", "square", "square"};
    const char *clients[3] = {a, b, ""};
    double xs[3] = {3, 4, 5};
    run_jobs_from(3, ids, mods, fns, xs, NULL, clients);
    res_t rs[3];
    collect(rs, 3);
    cr_expect(find(rs, 3, 1)->ok);
    cr_expect_float_eq(find(rs, 3, 1)->x, 9.0, 1e-12);
    cr_expect_str_eq(find(rs, 3, 2)->code, "PD_EREFUSED");
    cr_expect(strstr(find(rs, 3, 2)->msg, b), "the refusal names the key: %s", find(rs, 3, 2)->msg);
    cr_expect(strstr(find(rs, 3, 2)->msg, "testhost"), "%s", find(rs, 3, 2)->msg);
    cr_expect_str_eq(find(rs, 3, 3)->code, "PD_EREFUSED");
    cr_expect(strstr(find(rs, 3, 3)->msg, "without a client key"), "%s", find(rs, 3, 3)->msg);
    /* The owner lists b while the worker runs. */
    usleep(20000); /* a new modification time */
    snprintf(text, sizeof text, "%s alice\n%s bob\n", a, b);
    s_write(list, text);
    uint64_t id2[1] = {4};
    const char *cl2[1] = {b};
    run_jobs_from(1, id2, mods, fns, xs, NULL, cl2);
    collect(rs, 1);
    cr_expect(rs[0].ok, "b's job was refused after b was listed: %s", rs[0].msg);
    unlink(list);
}

Test(policy, installed_policy_refuses_shipped_code_and_runs_installed_modules)
{
    char list[128];
    snprintf(list, sizeof list, "/tmp/pd-policy-%d", (int) getpid());
    s_write(list, "# nothing installed yet\n");
    s_start(PD_POLICY_INSTALLED, list);
    handshake(); /* ships tasks.c in a `mod` */
    uint64_t ids[1] = {1};
    const char *mods[1] = {s_hash};
    const char *fns[1] = {"square"};
    const char *clients[1] = {""};
    double xs[1] = {6};
    run_jobs_from(1, ids, mods, fns, xs, NULL, clients);
    res_t rs[1];
    collect(rs, 1);
    cr_expect_str_eq(rs[0].code, "PD_EREFUSED");
    cr_expect(strstr(rs[0].msg, "installed"), "%s", rs[0].msg);
    cr_expect(strstr(rs[0].msg, "--install-module"), "%s", rs[0].msg);
    char path[256];
    snprintf(path, sizeof path, "%s/modules/%s.c", s_dir, s_hash);
    cr_expect_neq(access(path, F_OK), 0, "a shipped module was stored under 'installed'");
    /* The owner installs the module (what --install-module does). */
    s_write(path, s_src);
    char text[128];
    snprintf(text, sizeof text, "%s tasks.c\n", s_hash);
    usleep(20000);
    s_write(list, text);
    ids[0] = 2;
    run_jobs_from(1, ids, mods, fns, xs, NULL, clients);
    collect(rs, 1);
    cr_expect(rs[0].ok, "the installed module was refused: %s", rs[0].msg);
    cr_expect_float_eq(rs[0].x, 36.0, 1e-12);
    unlink(list);
}

Test(policy, installed_policy_refuses_a_gpu_job_whose_cuda_module_is_not_installed)
{
    static const char cu_src[] = "extern \"C\" __global__ void k(float *x) { x[0] = 1; }\n";
    unsigned char h[32];
    char cu[65];
    crypto_hash_sha256(h, (const unsigned char *) cu_src, strlen(cu_src));
    sodium_bin2hex(cu, sizeof cu, h, 32);
    char list[128], text[256], path[512];
    snprintf(list, sizeof list, "/tmp/pd-policy-%d", (int) getpid());
    s_write(list, "# nothing installed yet\n");
    s_start(PD_POLICY_INSTALLED, list);
    /* The task module is installed and listed; the CUDA module is in the
       cache (as if left there) but not listed. */
    usleep(20000); /* a new modification time */
    snprintf(text, sizeof text, "%s tasks.c\n", s_hash);
    s_write(list, text);
    char mdir[200];
    snprintf(mdir, sizeof mdir, "%s/modules", s_dir);
    mkdir(mdir, 0700);
    snprintf(path, sizeof path, "%s/%s.c", mdir, s_hash);
    s_write(path, s_src);
    snprintf(path, sizeof path, "%s/%s.cu", mdir, cu);
    s_write(path, cu_src);
    handshake();
    pd_buf_t b;
    msgpack_packer pk;
    pd_buf_init(&b);
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "run", 2);
    pd_pack_cstr(&pk, "jobs");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 10);
    msgpack_pack_uint64(&pk, 21);
    msgpack_pack_uint64(&pk, 1);
    pd_pack_cstr(&pk, s_hash);
    pd_pack_cstr(&pk, "square");
    msgpack_pack_uint64(&pk, 0);
    msgpack_pack_double(&pk, 2);
    msgpack_pack_nil(&pk);
    msgpack_pack_uint64(&pk, 0);
    msgpack_pack_true(&pk);
    pd_pack_cstr(&pk, cu);
    pd_pack_cstr(&pk, "clients");
    msgpack_pack_array(&pk, 1);
    pd_pack_cstr(&pk, "");
    send_buf(&b);
    res_t rs[1];
    collect(rs, 1);
    cr_expect_str_eq(rs[0].code, "PD_EREFUSED", "the CUDA module ran uninstalled: %s", rs[0].msg);
    cr_expect(strstr(rs[0].msg, cu), "the refusal names the CUDA module: %s", rs[0].msg);
    unlink(list);
}

Test(policy, a_run_without_client_keys_still_runs_under_any)
{
    s_start(PD_POLICY_ANY, NULL);
    handshake();
    uint64_t ids[1] = {1};
    const char *mods[1] = {s_hash};
    const char *fns[1] = {"square"};
    const char *clients[1] = {"not-a-key"};
    double xs[1] = {2};
    run_jobs_from(1, ids, mods, fns, xs, NULL, clients);
    res_t rs[1];
    collect(rs, 1);
    cr_expect(rs[0].ok);
}

/* Sends run {jobs: [[id, 1, mod, fn, 0, x, nil, 0, true, nil]]}: one GPU
   job (no shared data, no client key, no CUDA module). */
static void run_gpu_job(uint64_t id, const char *fn, double x)
{
    pd_buf_t b;
    msgpack_packer pk;
    pd_buf_init(&b);
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "run", 1);
    pd_pack_cstr(&pk, "jobs");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 10);
    msgpack_pack_uint64(&pk, id);
    msgpack_pack_uint64(&pk, 1);
    pd_pack_cstr(&pk, s_hash);
    pd_pack_cstr(&pk, fn);
    msgpack_pack_uint64(&pk, 0);
    msgpack_pack_double(&pk, x);
    msgpack_pack_nil(&pk);
    msgpack_pack_uint64(&pk, 0);
    msgpack_pack_true(&pk);
    msgpack_pack_nil(&pk);
    send_buf(&b);
}

Test(unit, a_gpu_job_sent_to_a_worker_without_gpus_fails_with_enogpu)
{
    handshake();
    run_gpu_job(30, "square", 3);
    res_t rs[1];
    collect(rs, 1);
    cr_expect_eq(rs[0].id, 30);
    cr_expect_str_eq(rs[0].code, "PD_ENOGPU");
    cr_expect(strstr(rs[0].msg, "worker testhost has no GPU slot, yet the broker sent it a GPU "
                                "job"), "%s", rs[0].msg);
}

Test(unit, gpus_are_described_in_ready_and_gpu_jobs_run_on_gpu_slots)
{
    const char *fake = getenv("PD_FAKE_LIBCUDA");
    cr_assert(fake && *fake, "PD_FAKE_LIBCUDA is not set (meson sets it)");
    stop_worker();
    msg_t m;
    while (recv_msg(&m, 300, false))
        free(m.frame); /* the first worker's ready and bye */
    setenv("PLAYDOH_LIBCUDA", fake, 1);
    setenv("PD_FAKE_CUDA_DEVICES", "2", 1);
    unsetenv("CUDA_VISIBLE_DEVICES");
    pd_worker_config_t cfg = {.broker = s_endpoint, .cpus = 1, .gpus = -1, .cache_dir = s_dir,
                              .heartbeat_ms = 100, .name = "testhost",
                              .slot_exe = "/proc/self/exe"};
    s_worker = pd_worker_new(&cfg, NULL);
    cr_assert_not_null(s_worker);
    s_stop = 0;
    cr_assert_eq(pthread_create(&s_thread, NULL, run_worker, NULL), 0);
    expect("ready", &m);
    uint64_t cpus = 0, gpus = 0;
    cr_assert_eq(pd_msg_uint(&m.m, "cpus", &cpus), 0);
    cr_assert_eq(pd_msg_uint(&m.m, "gpus", &gpus), 0);
    cr_expect_eq(cpus, 1);
    cr_expect_eq(gpus, 2, "every GPU the driver shows is offered by default");
    pd_rd_t r;
    uint32_t n;
    cr_assert_eq(pd_msg_rd(&m.m, "gpu_info", &r), 0);
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    cr_assert_eq(n, 2);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t nf;
        cr_assert_eq(pd_rd_map(&r, &nf), 0);
        cr_assert_eq(nf, 4);
        char name[64], want[64];
        uint64_t mem, major, minor;
        cr_assert(pd_rd_key_is(&r, "name"));
        cr_assert_eq(pd_rd_strcpy(&r, name, sizeof name), 0);
        cr_assert(pd_rd_key_is(&r, "mem"));
        cr_assert_eq(pd_rd_uint(&r, &mem), 0);
        cr_assert(pd_rd_key_is(&r, "cc_major"));
        cr_assert_eq(pd_rd_uint(&r, &major), 0);
        cr_assert(pd_rd_key_is(&r, "cc_minor"));
        cr_assert_eq(pd_rd_uint(&r, &minor), 0);
        snprintf(want, sizeof want, "Fake GPU %u", i);
        cr_expect_str_eq(name, want);
        cr_expect_eq(mem, (uint64_t) (i + 1) << 30);
        cr_expect_eq(major, 8);
        cr_expect_eq(minor, 6);
    }
    free(m.frame);
    welcome_and_mod(); /* as handshake() answers */
    run_gpu_job(40, "square", 6);
    res_t rs[1];
    collect(rs, 1);
    cr_expect(rs[0].ok, "%s: %s", rs[0].code, rs[0].msg);
    cr_expect_float_eq(rs[0].x, 36.0, 1e-12);
}

/* Pilot workers: Slurm ids in `ready`, and the idle time-out. */
static void setup_pilot(void) { start(700, "4242", "batch", "4241_3"); }

TestSuite(pilot, .init = setup_pilot, .fini = teardown, .timeout = 60);

/* Waits up to 10 s for the worker's `bye`, skipping heartbeats and results;
   returns when it came, in ms (monotonic), or -1. */
static int64_t wait_bye(void)
{
    int64_t end = pd_slot_now_ms() + 10000;
    msg_t m;
    while (pd_slot_now_ms() < end && recv_msg(&m, (int) (end - pd_slot_now_ms()), false)) {
        bool bye = pd_msg_is(&m.m, "bye");
        free(m.frame);
        if (bye)
            return pd_slot_now_ms();
    }
    return -1;
}

Test(pilot, reports_its_slurm_ids_and_leaves_when_idle_but_never_while_busy)
{
    handshake(); /* checks slurm_job, slurm_step and slurm_array */
    /* A job twice as long as the idle time-out: the worker stays for it. */
    uint64_t ids[1] = {5};
    const char *mods[1] = {s_hash};
    const char *fns[1] = {"nap"};
    double xs[1] = {1.4};
    run_jobs(1, ids, mods, fns, xs, NULL);
    res_t rs[1];
    collect(rs, 1); /* fails on a `bye` before the result */
    cr_expect(rs[0].ok);
    int64_t done = pd_slot_now_ms();
    int64_t bye = wait_bye();
    cr_assert_geq(bye, 0, "the pilot did not leave within 10 s of its last job");
    cr_expect_geq(bye - done, 500, "the pilot left %lld ms after its last job, before its "
                  "idle time-out of 700 ms", (long long) (bye - done));
    pthread_join(s_thread, NULL); /* pd_worker_run returned by itself */
    pd_worker_destroy(&s_worker);
}

Test(pilot, a_pilot_that_never_gets_a_job_leaves_too)
{
    msg_t m;
    expect("ready", &m); /* never welcomed: the broker may be unreachable */
    free(m.frame);
    cr_assert_geq(wait_bye(), 0, "an idle pilot stayed");
    pthread_join(s_thread, NULL);
    pd_worker_destroy(&s_worker);
}

/* ---- slots whose process cannot start --------------------------------- */

static void setup_broken(void)
{
    s_broken_slots = true;
    start(0, NULL, NULL, NULL);
}

static void teardown_broken(void)
{
    s_broken_slots = false;
    teardown();
}

TestSuite(start, .init = setup_broken, .fini = teardown_broken, .timeout = 90);

/* ready -> welcome -> mod, whatever `ready` offers. */
static void welcome_any(void)
{
    msg_t m;
    expect("ready", &m);
    free(m.frame);
    welcome_and_mod();
}

/* Reads messages until the worker offers `cpus` CPU slots (by `slots`, or
   by `ready` when it registers again: this fake broker does not
   heartbeat), counting the jobs it hands back in *back (ids checked
   against first .. first+n-1); fails on any result. */
static void wait_offer(uint64_t cpus, size_t *back, uint64_t first, size_t n)
{
    int64_t end = pd_slot_now_ms() + 40000;
    bool offered = false;
    while (!offered || (back && *back < n)) {
        msg_t m;
        cr_assert(recv_msg(&m, (int) (end - pd_slot_now_ms()), false),
                  "the worker did not offer %llu cpus%s within 40 s", (unsigned long long) cpus,
                  back ? " and hand its jobs back" : "");
        cr_assert_not(pd_msg_is(&m.m, "done"), "a job was reported: a slot's start failure "
                      "reached a job");
        uint64_t c = 99;
        if ((pd_msg_is(&m.m, "slots") || pd_msg_is(&m.m, "ready")) &&
            pd_msg_uint(&m.m, "cpus", &c) == 0 && c == cpus)
            offered = true;
        if (pd_msg_is(&m.m, "requeue")) {
            cr_assert(back, "jobs handed back while none was queued");
            pd_rd_t r;
            uint32_t k;
            cr_assert_eq(pd_msg_rd(&m.m, "jobs", &r), 0);
            cr_assert_eq(pd_rd_array(&r, &k), 0);
            for (uint32_t i = 0; i < k; i++) {
                uint32_t two;
                uint64_t id, attempt;
                cr_assert_eq(pd_rd_array(&r, &two), 0);
                cr_assert_eq(pd_rd_uint(&r, &id), 0);
                cr_assert_eq(pd_rd_uint(&r, &attempt), 0);
                cr_expect(id >= first && id < first + n, "job %llu handed back",
                          (unsigned long long) id);
                cr_expect_eq(attempt, 1);
                (*back)++;
            }
        }
        free(m.frame);
    }
}

Test(start, slots_that_cannot_start_are_withdrawn_hand_their_jobs_back_and_return_when_fixed)
{
    welcome_any();
    uint64_t ids[3] = {50, 51, 52};
    const char *mods[3] = {s_hash, s_hash, s_hash};
    const char *fns[3] = {"square", "square", "square"};
    double xs[3] = {1, 2, 3};
    run_jobs(3, ids, mods, fns, xs, NULL);
    /* /bin/false exits at once: no job runs, none fails; after a few
       attempts both slots are withdrawn and the jobs go back unstarted. */
    size_t back = 0;
    wait_offer(0, &back, 50, 3);
    cr_expect_eq(back, 3);
    /* The owner repairs the program: the slots start again, are offered
       again, and run jobs. */
    char self[PATH_MAX], fresh[160];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert_gt(n, 0);
    self[n] = 0;
    snprintf(fresh, sizeof fresh, "%s.new", s_slot_link);
    cr_assert_eq(symlink(self, fresh), 0);
    cr_assert_eq(rename(fresh, s_slot_link), 0);
    wait_offer(2, NULL, 0, 0);
    uint64_t id2[1] = {53};
    double x2[1] = {7};
    run_jobs(1, id2, mods, fns, x2, NULL);
    res_t rs[1];
    collect(rs, 1);
    cr_expect_eq(rs[0].id, 53);
    cr_expect(rs[0].ok, "%s: %s", rs[0].code, rs[0].msg);
    cr_expect_float_eq(rs[0].x, 49.0, 1e-12);
    s_stop = 1;
    pthread_join(s_thread, NULL);
    pd_worker_stats_t st;
    pd_worker_stats(s_worker, &st);
    cr_expect_eq(st.down, 0, "no slot is withdrawn any more");
    cr_expect_eq(st.offered, 2);
    pd_worker_destroy(&s_worker);
}

int main(int argc, char **argv)
{
    if (pd_slot_is_child(argc, argv))
        return pd_slot_main(argc, argv);
    struct criterion_test_set *tests = criterion_initialize();
    int rc = 0;
    if (criterion_handle_args(argc, argv, true))
        rc = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return rc;
}
