/*  fuzz_msg: libFuzzer harness for the wire envelope and the readers every
    handler uses: pd_msg_parse (pd_mp_check underneath), each typed field
    look-up, id ranges (pd_ranges_parse), a strict walk of every value with
    pd_rd_*, and msgpack -> JSON. An input is one frame as it arrives from
    the network. */
#include "pd_codec.h"
#include "pd_error.h"
#include "pd_jobs.h"
#include "pd_json.h"
#include "pd_log.h"
#include "pd_msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    /* PD_FUZZ_LOG=debug shows what an input does (triage). */
    pd_log_level_t level = PD_LOG_ERROR;
    if (getenv("PD_FUZZ_LOG"))
        pd_log_parse_level(getenv("PD_FUZZ_LOG"), &level);
    pd_log_set_level(level);
    return 0;
}

/* Reads one value of any kind the way handlers do; recurses through
   arrays and maps (bounded: the frame was checked to PD_MAX_DEPTH). */
static void s_walk(pd_rd_t *r, int depth)
{
    uint32_t n;
    bool b;
    int64_t i;
    uint64_t u;
    double d;
    const char *s;
    const void *p;
    uint32_t len;
    char buf[64];
    switch (pd_rd_peek(r)) {
    case PD_MP_NIL: pd_rd_nil(r); break;
    case PD_MP_BOOL: pd_rd_bool(r, &b); break;
    case PD_MP_INT: pd_rd_int(r, &i); break;
    case PD_MP_UINT:
        if (pd_rd_uint(r, &u) == 0 && u > INT64_MAX)
            (void) pd_rd_int(r, &i); /* refuses, cursor unchanged */
        break;
    case PD_MP_FLOAT: pd_rd_double(r, &d); break;
    case PD_MP_STR: {
        pd_rd_t copy = *r;
        pd_rd_strcpy(&copy, buf, sizeof buf);
        pd_rd_str(r, &s, &len);
        break;
    }
    case PD_MP_BIN: pd_rd_bin(r, &p, &len); break;
    case PD_MP_ARRAY:
        if (pd_rd_array(r, &n) == 0)
            for (uint32_t k = 0; k < n && depth < PD_MAX_DEPTH + 2; k++)
                s_walk(r, depth + 1);
        break;
    case PD_MP_MAP:
        if (pd_rd_map(r, &n) == 0)
            for (uint32_t k = 0; k < 2 * n && depth < PD_MAX_DEPTH + 2; k++)
                s_walk(r, depth + 1);
        break;
    default: pd_rd_skip(r, NULL, NULL); break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pd_msg_t m;
    if (pd_msg_parse(&m, data, size) == 0) {
        static const char *keys[] = {"req",  "hash", "name", "kind", "data",    "mod",  "fn",
                                     "args", "ids",  "max",  "wait_ms", "res", "jobs", "cpus",
                                     "gpus", "host", "pid", "hb_ms", "liveness", "client",
                                     "timeout_ms", "retries", "code", "msg", "st"};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            uint64_t u;
            int64_t i;
            double d;
            bool b;
            char s[300];
            const void *p;
            uint32_t len;
            const uint8_t *raw;
            size_t rawlen;
            pd_msg_uint(&m, keys[k], &u);
            pd_msg_uint_opt(&m, keys[k], &u);
            pd_msg_int(&m, keys[k], &i);
            pd_msg_double(&m, keys[k], &d);
            pd_msg_bool(&m, keys[k], &b);
            pd_msg_str(&m, keys[k], s, sizeof s);
            pd_msg_bytes(&m, keys[k], &p, &len);
            if (pd_msg_raw(&m, keys[k], &raw, &rawlen) == 0) {
                pd_rd_t r;
                pd_rd_init(&r, raw, rawlen);
                s_walk(&r, 0);
            }
        }
        const uint8_t *raw;
        size_t rawlen;
        if (pd_msg_raw(&m, "ids", &raw, &rawlen) == 0) {
            pd_ranges_t rg;
            char why[256];
            if (pd_ranges_parse(raw, rawlen, &rg, why, sizeof why) == 0) {
                /* The invariants handlers rely on. */
                uint64_t total = 0;
                for (uint32_t i = 0; i < rg.n; i++) {
                    if (rg.r[i][0] < 1 || rg.r[i][1] < 1 || rg.r[i][0] < rg.lo ||
                        rg.r[i][0] + rg.r[i][1] - 1 > rg.hi)
                        abort();
                    total += rg.r[i][1];
                }
                if (total != rg.total || total > PD_RANGES_MAX_IDS)
                    abort();
                /* lo and hi are defined when ids are named ("ids": [] names none). */
                if (total && (!pd_ranges_contains(&rg, rg.lo) || !pd_ranges_contains(&rg, rg.hi)))
                    abort();
                pd_ranges_free(&rg);
            }
        }
    }
    pd_buf_t out;
    pd_buf_init(&out);
    pd_msgpack_to_json(data, size, &out);
    pd_buf_free(&out);
    return 0;
}
