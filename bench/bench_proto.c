/*  bench_proto: the protocol codec (common/pd_proto.h) against the hand
    packing and pd_msg_* look-ups it replaced, on the messages of the job
    path: a client's `submit` (17 fields, 16 jobs' arguments), the worker's
    `hb` and a `node_done`. Encoding and decoding run in turns, codec and
    hand interleaved, and each figure is the best of ROUNDS, so that a loaded
    machine biases neither side.

    Times are the thread's CPU time, which preemption does not inflate.

    Usage: bench_proto [N (20000)] [ROUNDS (31)]
*/
#include "pd_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: a loaded machine preempts */
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const uint8_t s_args[] = {0xdc, 0x00, 0x10, 1, 2, 3, 4, 5, 6, 7, 8,
                                 9, 10, 11, 12, 13, 14, 15, 16}; /* [1 .. 16] */
static const char s_hash[] = "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b";
static const uint8_t s_token[16] = {1, 2, 3};

static void s_submit_hand(msgpack_packer *pk)
{
    pd_msg_begin(pk, "submit", 10);
    pd_pack_kv_uint(pk, "req", 7);
    pd_pack_kv_bin(pk, "owner_token", s_token, sizeof s_token);
    pd_pack_kv_str(pk, "mod", s_hash);
    pd_pack_kv_str(pk, "fn", "square");
    pd_pack_kv_uint(pk, "timeout_ms", 0);
    pd_pack_kv_uint(pk, "retries", 3);
    pd_pack_kv_bin(pk, "token", s_token, sizeof s_token);
    pd_pack_kv_uint(pk, "at", 0);
    pd_pack_kv_uint(pk, "batch_bytes", sizeof s_args);
    pd_pack_cstr(pk, "args");
    pd_pack_raw(pk, s_args, sizeof s_args);
}

static void s_submit_codec(msgpack_packer *pk)
{
    pd_m_submit_t m = {.req = 7, .has_owner_token = true, .owner_token = {s_token, 16},
                       .args = {.p = s_args, .len = sizeof s_args},
                       .has_timeout_ms = true, .has_retries = true, .retries = 3,
                       .has_token = true, .token = {s_token, 16}, .has_at = true,
                       .has_batch_bytes = true, .batch_bytes = sizeof s_args};
    memcpy(m.mod, s_hash, sizeof s_hash);
    memcpy(m.fn, "square", 7);
    pd_m_submit_encode(pk, &m);
}

/* What the broker's handler read by hand (pd_broker_client.c). */
static int s_submit_read_hand(const pd_msg_t *m)
{
    char hash[65], fn[256], shr[65] = "", cu[65] = "";
    const uint8_t *args;
    size_t alen;
    uint64_t req = 0, timeout_ms = 0, retries = 3, max_slots = 0, mem = 0, cpu = 0, out = 0,
             rf = 0, at = 0, batch = 0;
    bool gpu = false;
    const void *tok = NULL, *otok = NULL;
    uint32_t toklen = 0, otoklen = 0;
    int rc = pd_msg_uint_opt(m, "req", &req) || pd_msg_bytes(m, "owner_token", &otok, &otoklen)
             || pd_msg_uint_opt(m, "batch_bytes", &batch) || pd_msg_uint_opt(m, "at", &at)
             || pd_msg_str(m, "mod", hash, sizeof hash) || pd_msg_str(m, "fn", fn, sizeof fn)
             || pd_msg_raw(m, "args", &args, &alen)
             || pd_msg_uint_opt(m, "timeout_ms", &timeout_ms)
             || pd_msg_uint_opt(m, "retries", &retries)
             || pd_msg_uint_opt(m, "max_slots", &max_slots)
             || pd_msg_uint_opt(m, "memory", &mem) || pd_msg_uint_opt(m, "cpu_time", &cpu)
             || pd_msg_uint_opt(m, "max_output", &out)
             || pd_msg_uint_opt(m, "retry_failed", &rf)
             || (pd_msg_has(m, "gpu") && pd_msg_bool(m, "gpu", &gpu))
             || (pd_msg_has(m, "cu") && pd_msg_str(m, "cu", cu, sizeof cu))
             || (pd_msg_has(m, "token") && pd_msg_bytes(m, "token", &tok, &toklen))
             || (pd_msg_has(m, "shared") && pd_msg_str(m, "shared", shr, sizeof shr));
    return rc || retries != 3 || fn[0] != 's';
}

static int s_submit_read_codec(const pd_msg_t *m)
{
    pd_m_submit_t s;
    return pd_m_submit_decode(m, &s) || s.retries != 3 || s.fn[0] != 's';
}

static void s_hb_hand(msgpack_packer *pk)
{
    pd_msg_begin(pk, "hb", 4);
    pd_pack_kv_uint(pk, "busy", 2);
    pd_pack_kv_uint(pk, "queued", 30);
    pd_pack_kv_double(pk, "load", -1);
    pd_pack_kv_str(pk, "owner", "");
}

static void s_hb_codec(msgpack_packer *pk)
{
    pd_m_hb_t m = {.has_busy = true, .busy = 2, .has_queued = true, .queued = 30,
                   .has_load = true, .load = -1, .has_owner = true};
    pd_m_hb_encode(pk, &m);
}

static void s_node_done_hand(msgpack_packer *pk)
{
    pd_msg_begin(pk, "node_done", 6);
    pd_pack_kv_uint(pk, "task", 12);
    pd_pack_kv_uint(pk, "node", 3);
    pd_pack_kv_uint(pk, "try", 0);
    pd_pack_kv_bool(pk, "ok", true);
    pd_pack_cstr(pk, "val");
    pd_pack_raw(pk, s_args, sizeof s_args);
    pd_pack_kv_uint(pk, "us", 1234);
}

static void s_node_done_codec(msgpack_packer *pk)
{
    pd_m_node_done_t m = {.task = 12, .node = 3, .ok = true,
                          .val = {.p = s_args, .len = sizeof s_args}, .us = 1234};
    pd_m_node_done_encode(pk, &m);
}

/* ns per call of encode (into a reused buffer). */
static double s_time_encode(void (*enc)(msgpack_packer *), int n)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    double t0 = s_now();
    for (int i = 0; i < n; i++) {
        pd_buf_reset(&b);
        enc(&pk);
    }
    double t = s_now() - t0;
    pd_buf_free(&b);
    return t / n * 1e9;
}

/* ns per parse + read of frame. */
static double s_time_decode(int (*rd)(const pd_msg_t *), const pd_buf_t *frame, int n)
{
    int bad = 0;
    double t0 = s_now();
    for (int i = 0; i < n; i++) {
        pd_msg_t m;
        bad |= pd_msg_parse(&m, frame->data, frame->len) || rd(&m);
    }
    double t = s_now() - t0;
    if (bad) {
        fprintf(stderr, "bench_proto: a frame did not read back\n");
        exit(1);
    }
    return t / n * 1e9;
}

static double s_min(double a, double b) { return a < b ? a : b; }

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    int rounds = argc > 2 ? atoi(argv[2]) : 31;
    struct {
        const char *what;
        void (*hand)(msgpack_packer *);
        void (*codec)(msgpack_packer *);
    } enc[] = {{"encode submit (10 fields)", s_submit_hand, s_submit_codec},
               {"encode hb (4 fields)", s_hb_hand, s_hb_codec},
               {"encode node_done (6 fields)", s_node_done_hand, s_node_done_codec}};
    pd_buf_t frame;
    pd_buf_init(&frame);
    msgpack_packer pk;
    pd_packer_init(&pk, &frame);
    s_submit_hand(&pk);
    printf("bench_proto: %d calls per figure, best of %d rounds, hand and codec in turns\n", n,
           rounds);
    printf("| figure | hand (ns) | codec (ns) | codec/hand |\n|---|---|---|---|\n");
    for (size_t k = 0; k < sizeof enc / sizeof enc[0]; k++) {
        double h = 1e30, c = 1e30;
        for (int r = 0; r < rounds; r++) {
            h = s_min(h, s_time_encode(enc[k].hand, n));
            c = s_min(c, s_time_encode(enc[k].codec, n));
        }
        printf("| %s | %.1f | %.1f | %.2f |\n", enc[k].what, h, c, c / h);
    }
    double h = 1e30, c = 1e30;
    for (int r = 0; r < rounds; r++) {
        h = s_min(h, s_time_decode(s_submit_read_hand, &frame, n));
        c = s_min(c, s_time_decode(s_submit_read_codec, &frame, n));
    }
    printf("| parse + read submit (17 fields looked up) | %.1f | %.1f | %.2f |\n", h, c, c / h);
    pd_buf_free(&frame);
    return 0;
}
