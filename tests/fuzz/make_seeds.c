/*  make_seeds: writes the seed corpus of the fuzz harnesses (tests/fuzz/corpus,
    committed). Every seed is a message Playdoh's programs send, built here
    with the same packers (pd_msg_begin, pd_pack_kv_*) and shapes as the
    senders (docs/protocol.md, worker/pd_slot.h): each request of a client,
    each message of a worker and of the broker, each frame of a slot, JSON
    argument lines, and sequences that drive the broker and the workers
    through whole jobs. Run it by hand when the protocol changes:

        build-fuzz/tests/fuzz/make_seeds tests/fuzz/corpus
*/
#include "fuzz_seeds.h"
#include "pd_beacon.h"
#include "pd_codec.h"
#include "pd_msg.h"
#include "pd_proto.h"

#include <errno.h>
#include <stddef.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

static const char *s_root;
static char s_hash[65];    /* PD_FUZZ_MODULE_SRC's */
static char s_cu_hash[65]; /* PD_FUZZ_CU_SRC's */

static void s_write(const char *dir, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", s_root, dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", s_root, dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        fprintf(stderr, "make_seeds: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fclose(f);
}

/* A message under construction. */
static pd_buf_t b;
static msgpack_packer pk;

static void s_begin(const char *type, uint32_t nfields)
{
    pd_buf_reset(&b);
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, type, nfields);
}

static void s_ranges(uint64_t first, uint64_t count)
{
    pd_pack_cstr(&pk, "ids");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, first);
    msgpack_pack_uint64(&pk, count);
}

/* ---- every message, one per file (corpus/msg) -------------------------- */

/* Builds message number i into b; returns its name, or NULL past the end. */
static const char *s_message(int i)
{
    switch (i) {
    case 0: s_begin("hello", 1); pd_pack_kv_uint(&pk, "req", 1); return "hello";
    case 1:
        s_begin("mod_has", 2);
        pd_pack_kv_uint(&pk, "req", 2);
        pd_pack_kv_str(&pk, "hash", s_hash);
        return "mod_has";
    case 2:
        s_begin("mod_put", 5);
        pd_pack_kv_uint(&pk, "req", 3);
        pd_pack_kv_str(&pk, "hash", s_hash);
        pd_pack_kv_str(&pk, "name", "square.c");
        pd_pack_kv_str(&pk, "kind", "c");
        pd_pack_kv_bin(&pk, "data", PD_FUZZ_MODULE_SRC, strlen(PD_FUZZ_MODULE_SRC));
        return "mod_put";
    case 3:
        s_begin("submit", 6);
        pd_pack_kv_uint(&pk, "req", 4);
        pd_pack_kv_str(&pk, "mod", s_hash);
        pd_pack_kv_str(&pk, "fn", "square");
        pd_pack_kv_uint(&pk, "timeout_ms", 0);
        pd_pack_kv_uint(&pk, "retries", 3);
        pd_pack_cstr(&pk, "args");
        msgpack_pack_array(&pk, 3);
        msgpack_pack_double(&pk, 1.0);
        msgpack_pack_double(&pk, 2.5);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_int(&pk, 1);
        msgpack_pack_int(&pk, -2);
        return "submit";
    case 4: s_begin("status", 2); pd_pack_kv_uint(&pk, "req", 5); s_ranges(1, 3); return "status";
    case 5:
        s_begin("fetch", 4);
        pd_pack_kv_uint(&pk, "req", 6);
        pd_pack_kv_uint(&pk, "wait_ms", 5000);
        pd_pack_kv_uint(&pk, "max", 10000);
        s_ranges(1, 3);
        return "fetch";
    case 6: s_begin("cancel", 2); pd_pack_kv_uint(&pk, "req", 7); s_ranges(2, 1); return "cancel";
    case 7: s_begin("release", 2); pd_pack_kv_uint(&pk, "req", 8); s_ranges(1, 3); return "release";
    case 8:
        s_begin("ready", 4);
        pd_pack_kv_str(&pk, "host", "node7");
        pd_pack_kv_uint(&pk, "pid", 4242);
        pd_pack_kv_uint(&pk, "cpus", 2);
        pd_pack_kv_uint(&pk, "gpus", 0);
        return "ready";
    case 9: s_begin("hb", 0); return "hb";
    case 10:
        s_begin("slots", 2);
        pd_pack_kv_uint(&pk, "cpus", 1);
        pd_pack_kv_uint(&pk, "gpus", 1);
        return "slots";
    case 11:
        s_begin("done", 1);
        pd_pack_cstr(&pk, "res");
        msgpack_pack_array(&pk, 2);
        msgpack_pack_array(&pk, 5);
        msgpack_pack_uint64(&pk, 1);
        msgpack_pack_uint64(&pk, 1);
        msgpack_pack_true(&pk);
        msgpack_pack_double(&pk, 1.0);
        msgpack_pack_uint64(&pk, 12);
        msgpack_pack_array(&pk, 5);
        msgpack_pack_uint64(&pk, 2);
        msgpack_pack_uint64(&pk, 1);
        msgpack_pack_false(&pk);
        msgpack_pack_map(&pk, 3);
        pd_pack_kv_str(&pk, "code", "PD_ETASK");
        pd_pack_kv_str(&pk, "msg", "want a non-negative number");
        pd_pack_kv_int(&pk, "slot", 0);
        msgpack_pack_uint64(&pk, 7);
        return "done";
    case 12: s_begin("bye", 0); return "bye";
    case 13:
        s_begin("welcome", 2);
        pd_pack_kv_uint(&pk, "hb_ms", 1000);
        pd_pack_kv_uint(&pk, "liveness", 3);
        return "welcome_worker";
    case 14:
        s_begin("mod", 5);
        pd_pack_kv_str(&pk, "hash", s_hash);
        pd_pack_kv_str(&pk, "name", "square.c");
        pd_pack_kv_str(&pk, "kind", "c");
        pd_pack_kv_bin(&pk, "data", PD_FUZZ_MODULE_SRC, strlen(PD_FUZZ_MODULE_SRC));
        pd_pack_kv_str(&pk, "client", PD_FUZZ_KEY_CLIENT);
        return "mod";
    case 15:
        s_begin("run", 2);
        pd_pack_cstr(&pk, "jobs");
        msgpack_pack_array(&pk, 2);
        for (int k = 1; k <= 2; k++) {
            msgpack_pack_array(&pk, 8);
            msgpack_pack_uint64(&pk, (uint64_t) k);
            msgpack_pack_uint32(&pk, 1);
            pd_pack_cstr(&pk, s_hash);
            pd_pack_cstr(&pk, "square");
            msgpack_pack_uint32(&pk, 0);
            msgpack_pack_double(&pk, k * 1.5);
            msgpack_pack_nil(&pk);
            msgpack_pack_uint32(&pk, (uint32_t) k - 1);
        }
        pd_pack_cstr(&pk, "clients");
        msgpack_pack_array(&pk, 2);
        pd_pack_cstr(&pk, PD_FUZZ_KEY_CLIENT);
        pd_pack_cstr(&pk, PD_FUZZ_KEY_BOTH);
        return "run";
    case 16:
        s_begin("cancel", 1);
        pd_pack_cstr(&pk, "ids");
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint64(&pk, 1);
        msgpack_pack_uint64(&pk, 2);
        return "cancel_worker";
    case 17: s_begin("reset", 0); return "reset";
    case 18:
        s_begin("error", 3);
        pd_pack_kv_uint(&pk, "req", 4);
        pd_pack_kv_str(&pk, "code", "PD_EREFUSED");
        pd_pack_kv_str(&pk, "msg", "'submit' refused: key may act as worker only");
        return "error";
    case 19:
        s_begin("welcome", 5);
        pd_pack_kv_uint(&pk, "req", 1);
        pd_pack_kv_uint(&pk, "version", 1);
        pd_pack_kv_str(&pk, "name", "lab");
        pd_pack_kv_uint(&pk, "workers", 3);
        pd_pack_kv_uint(&pk, "slots", 24);
        return "welcome_client";
    case 20:
        s_begin("accepted", 3);
        pd_pack_kv_uint(&pk, "req", 4);
        pd_pack_kv_uint(&pk, "first", 1);
        pd_pack_kv_uint(&pk, "n", 3);
        return "accepted";
    case 21: {
        s_begin("states", 2);
        pd_pack_kv_uint(&pk, "req", 5);
        static const uint8_t st[3] = {3, 4, 1};
        pd_pack_kv_bin(&pk, "st", st, 3);
        return "states";
    }
    case 22:
        s_begin("results", 2);
        pd_pack_kv_uint(&pk, "req", 6);
        pd_pack_cstr(&pk, "res");
        msgpack_pack_array(&pk, 3);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint64(&pk, 1);
        msgpack_pack_uint8(&pk, 3);
        msgpack_pack_double(&pk, 1.0);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint64(&pk, 2);
        msgpack_pack_uint8(&pk, 4);
        msgpack_pack_map(&pk, 5);
        pd_pack_kv_str(&pk, "code", "PD_ECRASH");
        pd_pack_kv_str(&pk, "msg", "task crashed: killed by signal 11 (Segmentation fault)");
        pd_pack_kv_str(&pk, "host", "node7");
        pd_pack_kv_int(&pk, "slot", 1);
        pd_pack_kv_uint(&pk, "attempts", 1);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint64(&pk, 3);
        msgpack_pack_uint8(&pk, 5);
        msgpack_pack_nil(&pk);
        return "results";
    case 23:
        s_begin("mod_ok", 3);
        pd_pack_kv_uint(&pk, "req", 2);
        pd_pack_kv_str(&pk, "hash", s_hash);
        pd_pack_kv_bool(&pk, "has", false);
        return "mod_ok";
    case 24: s_begin("cluster", 1); pd_pack_kv_uint(&pk, "req", 9); return "cluster";
    case 25:
        s_begin("hb", 4);
        pd_pack_kv_uint(&pk, "busy", 1);
        pd_pack_kv_uint(&pk, "queued", 2);
        pd_pack_kv_double(&pk, "load", 0.25);
        pd_pack_kv_str(&pk, "owner", "idle");
        return "hb_state";
    case 26:
        s_begin("requeue", 1);
        pd_pack_cstr(&pk, "jobs");
        msgpack_pack_array(&pk, 1);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint64(&pk, 2);
        msgpack_pack_uint64(&pk, 1);
        return "requeue";
    case 27:
        s_begin("ready", 6);
        pd_pack_kv_str(&pk, "host", "gpu3");
        pd_pack_kv_uint(&pk, "pid", 4343);
        pd_pack_kv_uint(&pk, "cpus", 1);
        pd_pack_kv_uint(&pk, "gpus", 1);
        pd_pack_cstr(&pk, "gpu_info");
        msgpack_pack_array(&pk, 1);
        msgpack_pack_map(&pk, 4);
        pd_pack_kv_str(&pk, "name", "NVIDIA H100");
        pd_pack_kv_uint(&pk, "mem", 80ull << 30);
        pd_pack_kv_uint(&pk, "cc_major", 9);
        pd_pack_kv_uint(&pk, "cc_minor", 0);
        pd_pack_kv_str(&pk, "slurm_job", "4242");
        return "ready_gpu";
    case 28:
        s_begin("mod_put", 5);
        pd_pack_kv_uint(&pk, "req", 3);
        pd_pack_kv_str(&pk, "hash", s_cu_hash);
        pd_pack_kv_str(&pk, "name", "k.cu");
        pd_pack_kv_str(&pk, "kind", "cu");
        pd_pack_kv_bin(&pk, "data", PD_FUZZ_CU_SRC, strlen(PD_FUZZ_CU_SRC));
        return "mod_put_cu";
    case 29:
        s_begin("submit", 5);
        pd_pack_kv_uint(&pk, "req", 4);
        pd_pack_kv_str(&pk, "mod", s_hash);
        pd_pack_kv_str(&pk, "fn", "square");
        pd_pack_kv_str(&pk, "cu", s_cu_hash);
        pd_pack_cstr(&pk, "args");
        msgpack_pack_array(&pk, 1);
        msgpack_pack_double(&pk, 2.0);
        return "submit_gpu";
    case 30:
        s_begin("run", 2);
        pd_pack_cstr(&pk, "jobs");
        msgpack_pack_array(&pk, 1);
        msgpack_pack_array(&pk, 10);
        msgpack_pack_uint64(&pk, 3);
        msgpack_pack_uint32(&pk, 1);
        pd_pack_cstr(&pk, s_hash);
        pd_pack_cstr(&pk, "square");
        msgpack_pack_uint32(&pk, 0);
        msgpack_pack_double(&pk, 2.0);
        msgpack_pack_nil(&pk);
        msgpack_pack_uint32(&pk, 0);
        msgpack_pack_true(&pk);
        pd_pack_cstr(&pk, s_cu_hash);
        pd_pack_cstr(&pk, "clients");
        msgpack_pack_array(&pk, 1);
        pd_pack_cstr(&pk, PD_FUZZ_KEY_CLIENT);
        return "run_gpu";
    case 31:
        s_begin("mod", 5);
        pd_pack_kv_str(&pk, "hash", s_cu_hash);
        pd_pack_kv_str(&pk, "name", "k.cu");
        pd_pack_kv_str(&pk, "kind", "cu");
        pd_pack_kv_bin(&pk, "data", PD_FUZZ_CU_SRC, strlen(PD_FUZZ_CU_SRC));
        pd_pack_kv_str(&pk, "client", PD_FUZZ_KEY_CLIENT);
        return "mod_cu";
    case 32:
        s_begin("task_submit", 7);
        pd_pack_kv_uint(&pk, "req", 10);
        pd_pack_kv_str(&pk, "mod", s_hash);
        pd_pack_kv_str(&pk, "fn", "ring");
        pd_pack_kv_uint(&pk, "n", 2);
        pd_pack_cstr(&pk, "tubes");
        msgpack_pack_array(&pk, 1);
        pd_pack_cstr(&pk, "next");
        pd_pack_cstr(&pk, "edges");
        msgpack_pack_array(&pk, 2);
        for (int k = 0; k < 2; k++) {
            msgpack_pack_array(&pk, 3);
            msgpack_pack_uint32(&pk, 0);
            msgpack_pack_uint32(&pk, (uint32_t) k);
            msgpack_pack_uint32(&pk, (uint32_t) (1 - k));
        }
        pd_pack_cstr(&pk, "args");
        msgpack_pack_array(&pk, 2);
        msgpack_pack_double(&pk, 100);
        msgpack_pack_double(&pk, 100);
        return "task_submit";
    case 33: {
        s_begin("node_bound", 4);
        pd_pack_kv_uint(&pk, "task", 1);
        pd_pack_kv_uint(&pk, "node", 0);
        pd_pack_kv_str(&pk, "ep", "tcp://127.0.0.1:40001");
        pd_pack_kv_str(&pk, "key", PD_FUZZ_KEY_BOTH);
        return "node_bound";
    }
    case 34:
        s_begin("node_ready", 2);
        pd_pack_kv_uint(&pk, "task", 1);
        pd_pack_kv_uint(&pk, "node", 0);
        return "node_ready";
    case 35:
        s_begin("node_done", 5);
        pd_pack_kv_uint(&pk, "task", 1);
        pd_pack_kv_uint(&pk, "node", 0);
        pd_pack_kv_bool(&pk, "ok", true);
        pd_pack_cstr(&pk, "val");
        msgpack_pack_int(&pk, 200);
        pd_pack_kv_uint(&pk, "us", 9000);
        return "node_done";
    case 36:
        s_begin("task_fetch", 4);
        pd_pack_kv_uint(&pk, "req", 11);
        pd_pack_kv_uint(&pk, "id", 1);
        pd_pack_kv_uint(&pk, "wait_ms", 1000);
        pd_pack_kv_uint(&pk, "from", 0);
        return "task_fetch";
    case 37:
        s_begin("task_cancel", 2);
        pd_pack_kv_uint(&pk, "req", 12);
        pd_pack_cstr(&pk, "ids");
        msgpack_pack_array(&pk, 1);
        msgpack_pack_uint64(&pk, 1);
        return "task_cancel";
    case 38:
        s_begin("node_start", 14);
        pd_pack_kv_uint(&pk, "task", 1);
        pd_pack_kv_uint(&pk, "node", 0);
        pd_pack_kv_uint(&pk, "n", 2);
        pd_pack_kv_str(&pk, "mod", s_hash);
        pd_pack_kv_str(&pk, "fn", "ring");
        pd_pack_cstr(&pk, "arg");
        msgpack_pack_double(&pk, 100);
        pd_pack_cstr(&pk, "tubes");
        msgpack_pack_array(&pk, 1);
        pd_pack_cstr(&pk, "next");
        pd_pack_cstr(&pk, "out");
        msgpack_pack_array(&pk, 1);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint32(&pk, 0);
        msgpack_pack_uint32(&pk, 1);
        pd_pack_cstr(&pk, "in");
        msgpack_pack_array(&pk, 1);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint32(&pk, 0);
        msgpack_pack_uint32(&pk, 1);
        pd_pack_kv_uint(&pk, "io_ms", 60000);
        pd_pack_kv_uint(&pk, "start_ms", 300000);
        pd_pack_kv_uint(&pk, "window", 0);
        pd_pack_kv_uint(&pk, "window_bytes", 0);
        pd_pack_kv_str(&pk, "client", PD_FUZZ_KEY_CLIENT);
        return "node_start";
    case 39:
        s_begin("node_peers", 3);
        pd_pack_kv_uint(&pk, "task", 1);
        pd_pack_kv_uint(&pk, "node", 0);
        pd_pack_cstr(&pk, "peers");
        msgpack_pack_array(&pk, 1);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint32(&pk, 1);
        pd_pack_cstr(&pk, "tcp://127.0.0.1:40002");
        pd_pack_cstr(&pk, PD_FUZZ_KEY_WORKER);
        return "node_peers";
    case 40:
        s_begin("node_abort", 1);
        pd_pack_kv_uint(&pk, "task", 1);
        return "node_abort";
    case 41:
        s_begin("gc", 2);
        pd_pack_kv_uint(&pk, "req", 10);
        pd_pack_kv_uint(&pk, "ttl_s", 0);
        return "gc";
    case 42:
        /* A chunk as the client sends it: with a token (16 random bytes, a
           chunk counter), which a chunk sent again after a drop repeats. */
        s_begin("submit", 7);
        pd_pack_kv_uint(&pk, "req", 11);
        pd_pack_kv_str(&pk, "mod", s_hash);
        pd_pack_kv_str(&pk, "fn", "square");
        pd_pack_kv_uint(&pk, "timeout_ms", 0);
        pd_pack_kv_uint(&pk, "retries", 3);
        pd_pack_kv_bin(&pk, "token", "0123456789abcdef\0\0\0\0\0\0\0\1", 24);
        pd_pack_cstr(&pk, "args");
        msgpack_pack_array(&pk, 2);
        msgpack_pack_double(&pk, 3.0);
        msgpack_pack_double(&pk, 4.0);
        return "submit_token";
    case 43:
        s_begin("node_progress", 3);
        pd_pack_kv_uint(&pk, "task", 1);
        pd_pack_kv_uint(&pk, "node", 0);
        pd_pack_cstr(&pk, "val");
        msgpack_pack_map(&pk, 2);
        pd_pack_kv_uint(&pk, "iter", 7);
        pd_pack_cstr(&pk, "best");
        msgpack_pack_array(&pk, 1);
        msgpack_pack_double(&pk, 0.25);
        return "node_progress";
    case 44:
        s_begin("task_progress", 2);
        pd_pack_kv_uint(&pk, "req", 13);
        pd_pack_kv_uint(&pk, "id", 1);
        return "task_progress";
    case 45:
        s_begin("task_submit", 6);
        pd_pack_kv_uint(&pk, "req", 14);
        pd_pack_kv_str(&pk, "mod", s_hash);
        pd_pack_kv_str(&pk, "fn", "ring");
        pd_pack_kv_uint(&pk, "n", 1);
        pd_pack_kv_bool(&pk, "gpu", true);
        pd_pack_kv_str(&pk, "cu", s_cu_hash);
        return "task_submit_gpu";
    case 46:
        s_begin("node_start", 13);
        pd_pack_kv_uint(&pk, "task", 2);
        pd_pack_kv_uint(&pk, "node", 0);
        pd_pack_kv_uint(&pk, "n", 1);
        pd_pack_kv_str(&pk, "mod", s_hash);
        pd_pack_kv_str(&pk, "fn", "ring");
        pd_pack_cstr(&pk, "arg");
        msgpack_pack_nil(&pk);
        pd_pack_cstr(&pk, "tubes");
        msgpack_pack_array(&pk, 0);
        pd_pack_cstr(&pk, "out");
        msgpack_pack_array(&pk, 0);
        pd_pack_cstr(&pk, "in");
        msgpack_pack_array(&pk, 0);
        pd_pack_kv_uint(&pk, "io_ms", 60000);
        pd_pack_kv_bool(&pk, "gpu", true);
        pd_pack_kv_str(&pk, "cu", s_cu_hash);
        pd_pack_kv_str(&pk, "client", PD_FUZZ_KEY_CLIENT);
        return "node_start_gpu";
    case 47:
        s_begin("task_stop", 2);
        pd_pack_kv_uint(&pk, "req", 15);
        pd_pack_cstr(&pk, "ids");
        msgpack_pack_array(&pk, 1);
        msgpack_pack_uint64(&pk, 1);
        return "task_stop";
    case 48:
        s_begin("node_stop", 1);
        pd_pack_kv_uint(&pk, "task", 1);
        return "node_stop";
    default: return NULL;
    }
}

/* ---- sequences ---------------------------------------------------------- */

static pd_buf_t seq;

/* Appends the message named name as a broker record from peer. */
static void s_record(uint8_t peer, const char *name)
{
    for (int i = 0;; i++) {
        const char *n = s_message(i);
        if (!n) {
            fprintf(stderr, "make_seeds: no message %s\n", name);
            exit(1);
        }
        if (strcmp(n, name) != 0)
            continue;
        uint8_t head[3] = {peer, (uint8_t) b.len, (uint8_t) (b.len >> 8)};
        pd_buf_append(&seq, head, 3);
        pd_buf_append(&seq, b.data, b.len);
        return;
    }
}

/* A `done` for jobs first..first+n-1 at attempt 1, squares of 1.0, 2.5, ... */
static void s_record_done(uint8_t peer, uint64_t first, uint64_t n)
{
    s_begin("done", 1);
    pd_pack_cstr(&pk, "res");
    msgpack_pack_array(&pk, (uint32_t) n);
    for (uint64_t k = 0; k < n; k++) {
        msgpack_pack_array(&pk, 5);
        msgpack_pack_uint64(&pk, first + k);
        msgpack_pack_uint64(&pk, 1);
        msgpack_pack_true(&pk);
        msgpack_pack_double(&pk, (double) (k + 1) * (k + 1));
        msgpack_pack_uint64(&pk, 30);
    }
    uint8_t head[3] = {peer, (uint8_t) b.len, (uint8_t) (b.len >> 8)};
    pd_buf_append(&seq, head, 3);
    pd_buf_append(&seq, b.data, b.len);
}

static void s_seq_write(const char *dir, const char *name)
{
    s_write(dir, name, seq.data, seq.len);
    pd_buf_reset(&seq);
}

/* Appends a message as a worker-harness record (length + frame). */
static void s_wrecord(const char *name)
{
    for (int i = 0;; i++) {
        const char *n = s_message(i);
        if (!n)
            exit(1);
        if (strcmp(n, name) != 0)
            continue;
        uint8_t head[2] = {(uint8_t) b.len, (uint8_t) (b.len >> 8)};
        pd_buf_append(&seq, head, 2);
        pd_buf_append(&seq, b.data, b.len);
        return;
    }
}

/* A `run` of one job submitted by client (NULL: six elements, no table). */
static void s_wrecord_run(uint64_t id, const char *hash, const char *fn, const char *client)
{
    s_begin("run", client ? 2 : 1);
    pd_pack_cstr(&pk, "jobs");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, client ? 8 : 6);
    msgpack_pack_uint64(&pk, id);
    msgpack_pack_uint32(&pk, 1);
    pd_pack_cstr(&pk, hash);
    pd_pack_cstr(&pk, fn);
    msgpack_pack_uint32(&pk, 100);
    msgpack_pack_double(&pk, 3.0);
    if (client) {
        msgpack_pack_nil(&pk);
        msgpack_pack_uint32(&pk, 0);
        pd_pack_cstr(&pk, "clients");
        msgpack_pack_array(&pk, 1);
        pd_pack_cstr(&pk, client);
    }
    uint8_t head[2] = {(uint8_t) b.len, (uint8_t) (b.len >> 8)};
    pd_buf_append(&seq, head, 2);
    pd_buf_append(&seq, b.data, b.len);
}

/* ---- the slot pipe ------------------------------------------------------ */

/* A job's limits in a slot group frame: [memory, cpu_s, output] (0: none). */
static void s_pack_slot_limits(msgpack_packer *pk, bool some)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint64(pk, some ? 128u << 20 : 0);
    msgpack_pack_uint64(pk, some ? 60 : 0);
    msgpack_pack_uint64(pk, some ? 1u << 20 : 0);
}

static void s_frame_append(pd_buf_t *out, const pd_buf_t *frame)
{
    uint8_t len[4] = {(uint8_t) frame->len, (uint8_t) (frame->len >> 8),
                      (uint8_t) (frame->len >> 16), (uint8_t) (frame->len >> 24)};
    pd_buf_append(out, len, 4);
    pd_buf_append(out, frame->data, frame->len);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
        return 2;
    }
    s_root = argv[1];
    mkdir(s_root, 0755);
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *) PD_FUZZ_MODULE_SRC, strlen(PD_FUZZ_MODULE_SRC));
    sodium_bin2hex(s_hash, sizeof s_hash, h, sizeof h);
    crypto_hash_sha256(h, (const unsigned char *) PD_FUZZ_CU_SRC, strlen(PD_FUZZ_CU_SRC));
    sodium_bin2hex(s_cu_hash, sizeof s_cu_hash, h, sizeof h);
    pd_buf_init(&b);
    pd_buf_init(&seq);

    /* msg: every message alone. */
    const char *name;
    for (int i = 0; (name = s_message(i)); i++) {
        s_write("msg", name, b.data, b.len);
        s_write("proto", name, b.data, b.len);
    }
    /* proto: also a sample of every message of the codec, every field set. */
    for (size_t k = 0; k < pd_proto_count; k++) {
        const pd_proto_msg_t *d = pd_proto_all[k];
        static _Alignas(max_align_t) unsigned char m[16384];
        pd_proto_example(d, m);
        pd_buf_reset(&b);
        pd_packer_init(&pk, &b);
        pd_proto_encode(&pk, d, m);
        char file[64];
        snprintf(file, sizeof file, "codec_%s", d->name);
        s_write("proto", file, b.data, b.len);
    }

    /* broker: peers 0 client, 1 worker, 2 both, 3 revoked; 0x80 = time passes. */
    s_record(0, "hello");
    s_seq_write("broker", "hello");
    s_record(0, "mod_put");
    s_record(0, "submit");
    s_record(1, "ready");
    s_record_done(1, 1, 3);
    s_record(0, "status");
    s_record(0, "fetch");
    s_record(0, "release");
    s_seq_write("broker", "whole_job");
    s_record(0, "mod_put");
    s_record(0, "submit");
    s_record(0, "fetch");
    s_record(2, "ready");
    s_record(2, "hb");
    s_record_done(2, 1, 2);
    s_record(0, "cancel");
    s_record(2, "slots");
    s_record(2, "bye");
    s_seq_write("broker", "parked_fetch_cancel_bye");
    s_record(0, "mod_put");
    s_record(0, "submit");
    s_record(1, "ready");
    s_record(0x80 | 2, "ready");
    s_record(0x80 | 2, "hb");
    s_record_done(1, 1, 3);
    s_record(0, "fetch");
    s_seq_write("broker", "lost_worker_requeue");
    s_record(1, "submit");
    s_record(0, "ready");
    s_record(3, "hello");
    s_record(3, "hb");
    s_record(1, "hello");
    s_seq_write("broker", "wrong_roles");
    s_record(0, "mod_has");
    s_record(0, "submit");
    s_record(1, "done");
    s_record(1, "hb");
    s_seq_write("broker", "unknown_module_and_worker");
    s_record(0, "mod_put");
    s_record(0, "submit");
    s_record(1, "ready");
    s_record(1, "hb_state");
    s_record(1, "requeue");
    s_record(1, "slots");
    s_record(0, "cluster");
    s_seq_write("broker", "requeue_state_cluster");
    s_record(0, "mod_put");
    s_record(0, "submit_token");
    s_record(0, "submit_token");
    s_record(1, "ready");
    s_record_done(1, 1, 2);
    s_record(0, "fetch");
    s_record(0, "gc");
    s_seq_write("broker", "token_twice_then_gc");
    s_record(0, "mod_put");
    s_record(0, "mod_put_cu");
    s_record(0, "submit_gpu");
    s_record(2, "ready_gpu");
    s_record(2, "hb");
    s_record_done(2, 1, 1);
    s_record(0, "fetch");
    s_seq_write("broker", "gpu_job");
    s_record(0, "mod_put");
    s_record(1, "ready");
    s_record(2, "ready");
    s_record(0, "task_submit");
    s_record(1, "node_bound");
    s_record(1, "node_ready");
    s_record(1, "node_progress");
    s_record(0, "task_progress");
    s_record(1, "node_done");
    s_record(0, "task_fetch");
    s_record(0, "task_cancel");
    s_seq_write("broker", "task");

    s_record(0, "mod_put");
    s_record(1, "ready");
    s_record(0, "task_submit");
    s_record(1, "node_bound");
    s_record(1, "node_ready");
    s_record(0, "task_stop");
    s_record(0, "task_stop");
    s_record(1, "node_done");
    s_record(0, "task_fetch");
    s_seq_write("broker", "task_stop");

    s_record(0, "mod_put");
    s_record(0, "mod_put_cu");
    s_record(2, "ready_gpu");
    s_record(0, "task_submit_gpu");
    s_record(2, "node_bound");
    s_record(2, "node_ready");
    s_record(2, "node_done");
    s_record(0, "task_fetch");
    s_seq_write("broker", "gpu_task");

    /* worker: [policy] then messages. */
    uint8_t pol = 0;
    pd_buf_append(&seq, &pol, 1);
    s_wrecord("welcome_worker");
    s_wrecord("mod");
    s_wrecord("run");
    s_wrecord("cancel_worker");
    s_wrecord("hb");
    s_wrecord("error");
    s_seq_write("worker", "any_mod_run_cancel");
    pol = 1;
    pd_buf_append(&seq, &pol, 1);
    s_wrecord("mod");
    s_wrecord_run(5, s_hash, "square", PD_FUZZ_KEY_CLIENT);
    s_wrecord_run(6, s_hash, "square", PD_FUZZ_KEY_WORKER);
    s_wrecord_run(7, s_hash, "square", NULL);
    s_seq_write("worker", "clients_listed_and_not");
    pol = 2;
    pd_buf_append(&seq, &pol, 1);
    s_wrecord("mod");
    s_wrecord_run(8, s_hash, "square", "");
    s_wrecord_run(9, "0000000000000000000000000000000000000000000000000000000000000000", "f", "");
    s_wrecord("reset");
    s_seq_write("worker", "installed");
    pol = 0;
    pd_buf_append(&seq, &pol, 1);
    s_wrecord_run(10, "0000000000000000000000000000000000000000000000000000000000000000",
                  "square", PD_FUZZ_KEY_CLIENT);
    s_wrecord_run(11, s_hash, "", PD_FUZZ_KEY_CLIENT);
    s_seq_write("worker", "unknown_module_bad_fn");
    pol = 2;
    pd_buf_append(&seq, &pol, 1);
    s_wrecord_run(12, "builtin", "exec", PD_FUZZ_KEY_CLIENT);
    s_seq_write("worker", "installed_refuses_exec");
    pol = 0;
    pd_buf_append(&seq, &pol, 1);
    s_begin("shr", 2);
    pd_pack_kv_str(&pk, "hash", s_hash);
    pd_pack_kv_bin(&pk, "data", PD_FUZZ_MODULE_SRC, strlen(PD_FUZZ_MODULE_SRC));
    {
        uint8_t head[2] = {(uint8_t) b.len, (uint8_t) (b.len >> 8)};
        pd_buf_append(&seq, head, 2);
        pd_buf_append(&seq, b.data, b.len);
    }
    s_wrecord_run(13, "builtin", "exec", PD_FUZZ_KEY_CLIENT);
    s_seq_write("worker", "shared_and_exec");
    pd_buf_append(&seq, &pol, 1);
    s_wrecord("welcome_worker");
    s_wrecord("mod");
    s_wrecord("mod_cu");
    s_wrecord("run_gpu");
    s_seq_write("worker", "gpu_job");
    pol = 1;
    pd_buf_append(&seq, &pol, 1);
    s_wrecord("welcome_worker");
    s_wrecord("mod");
    s_wrecord("node_start");
    s_wrecord("node_peers");
    s_wrecord("node_abort");
    s_seq_write("worker", "task_node");
    pd_buf_append(&seq, &pol, 1);
    s_wrecord("welcome_worker");
    s_wrecord("mod");
    s_wrecord("node_start");
    s_wrecord("node_stop");
    s_wrecord("node_stop");
    s_wrecord("node_abort");
    s_seq_write("worker", "node_stop");
    pd_buf_append(&seq, &pol, 1);
    s_wrecord("welcome_worker");
    s_wrecord("mod");
    s_wrecord("mod_cu");
    s_wrecord("node_start_gpu");
    s_wrecord("node_abort");
    s_seq_write("worker", "gpu_task_node");

    /* slot: reports as the child writes them (READY first), then a group as
       the worker does. */
    pd_buf_t frame, stream;
    pd_buf_init(&frame);
    pd_buf_init(&stream);
    pd_packer_init(&pk, &frame);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 4);
    msgpack_pack_uint64(&pk, 2); /* PD_SLOT_PIPE_VERSION (worker/pd_slot.h) */
    s_frame_append(&stream, &frame);
    pd_buf_reset(&frame);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 0);
    msgpack_pack_uint64(&pk, 7);
    s_frame_append(&stream, &frame);
    pd_buf_reset(&frame);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_uint64(&pk, 7);
    s_frame_append(&stream, &frame);
    pd_buf_reset(&frame);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_int(&pk, 2);
    msgpack_pack_uint64(&pk, 7);
    msgpack_pack_true(&pk);
    msgpack_pack_double(&pk, 49.0);
    msgpack_pack_uint64(&pk, 120);
    s_frame_append(&stream, &frame);
    pd_buf_reset(&frame);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_int(&pk, 2);
    msgpack_pack_uint64(&pk, 8);
    msgpack_pack_false(&pk);
    msgpack_pack_map(&pk, 3);
    pd_pack_kv_str(&pk, "code", "PD_ETASK");
    pd_pack_kv_str(&pk, "msg", "no thanks");
    pd_pack_kv_int(&pk, "slot", 0);
    msgpack_pack_uint64(&pk, 3);
    s_frame_append(&stream, &frame);
    s_write("slot", "reports", stream.data, stream.len);
    pd_buf_reset(&frame);
    msgpack_pack_array(&pk, 2);
    for (int k = 7; k <= 8; k++) {
        msgpack_pack_array(&pk, 8);
        msgpack_pack_uint64(&pk, (uint64_t) k);
        pd_pack_cstr(&pk, s_hash);
        pd_pack_cstr(&pk, "c");
        pd_pack_cstr(&pk, "square.c");
        pd_pack_cstr(&pk, "square");
        msgpack_pack_double(&pk, k);
        msgpack_pack_nil(&pk);
        s_pack_slot_limits(&pk, k == 8);
    }
    s_write("slot", "group", frame.data, frame.len);
    /* A GPU slot's job with its CUDA module, and a RESET report. */
    pd_buf_reset(&frame);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 10);
    msgpack_pack_uint64(&pk, 9);
    pd_pack_cstr(&pk, s_hash);
    pd_pack_cstr(&pk, "c");
    pd_pack_cstr(&pk, "square.c");
    pd_pack_cstr(&pk, "square");
    msgpack_pack_double(&pk, 9);
    msgpack_pack_nil(&pk);
    pd_pack_cstr(&pk, s_cu_hash);
    pd_pack_cstr(&pk, "k.cu");
    s_pack_slot_limits(&pk, false);
    s_write("slot", "group_gpu", frame.data, frame.len);
    pd_buf_reset(&frame);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 3);
    msgpack_pack_uint64(&pk, 0);
    pd_buf_reset(&stream);
    s_frame_append(&stream, &frame);
    s_write("slot", "reset", stream.data, stream.len);
    pd_buf_reset(&frame);
    msgpack_pack_array(&pk, 2);
    for (int k = 7; k <= 8; k++) {
        msgpack_pack_array(&pk, 8);
        msgpack_pack_uint64(&pk, (uint64_t) k);
        pd_pack_cstr(&pk, s_hash);
        pd_pack_cstr(&pk, "c");
        pd_pack_cstr(&pk, "square.c");
        pd_pack_cstr(&pk, "square");
        msgpack_pack_double(&pk, k);
        msgpack_pack_nil(&pk);
        s_pack_slot_limits(&pk, k == 8);
    }
    pd_buf_reset(&stream);
    s_frame_append(&stream, &frame);
    s_write("slot", "group_framed", stream.data, stream.len);
    pd_buf_free(&frame);
    pd_buf_free(&stream);

    /* beacon: as a broker sends them, with and without its key. */
    pd_beacon_t bc = {.version = PD_PROTO_VERSION, .port = 5555};
    snprintf(bc.cluster, sizeof bc.cluster, "physics-lab");
    uint8_t dgram[PD_BEACON_MAX_BYTES];
    size_t dn = pd_beacon_encode(&bc, dgram, sizeof dgram);
    s_write("beacon", "plain", dgram, dn);
    bc.has_key = true;
    if (!zmq_z85_decode(bc.key, PD_FUZZ_KEY_CLIENT))
        return 1;
    dn = pd_beacon_encode(&bc, dgram, sizeof dgram);
    s_write("beacon", "with_key", dgram, dn);

    /* json: argument lines. */
    static const char *lines[] = {
        "1", "-0", "3.25", "1e300", "-1.5e-7", "18446744073709551615", "-9223372036854775808",
        "123456789012345678901234567890", "\"x\"", "\"tab\\tquote\\\" \\u00e9 \\ud83d\\ude00\"",
        "[1, 2.5, \"three\", null, true, false]", "{\"a\": [1, {\"b\": null}], \"a\": 2}",
        "[[[[[[[[[[1]]]]]]]]]]", "  {\"x\": 1.0, \"y\": -2}  ", "[]", "{}", "\"\"",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        char n[16];
        snprintf(n, sizeof n, "line%02zu", i);
        s_write("json", n, lines[i], strlen(lines[i]));
    }
    pd_buf_free(&b);
    pd_buf_free(&seq);
    return 0;
}
