/*  fuzz_slot: libFuzzer harness for the worker <-> slot pipe: the frame
    splitter (uint32 little-endian length + msgpack), the parent's decoder
    of what a child reports, and the child's decoder of a job group. An
    input is a byte stream as read from the pipe. */
#include "pd_codec.h"
#include "pd_log.h"
#include "pd_slot.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* As the parent reads it: frames one after the other. */
    size_t off = 0;
    for (;;) {
        size_t flen = 0;
        int got = pd_slot_frame_next(data + off, size - off, &flen);
        if (got <= 0)
            break;
        if (flen > size - off - 4)
            abort(); /* the splitter promised bytes that are not there */
        pd_slot_report_t rep;
        const char *why = NULL;
        if (pd_slot_report_parse(data + off + 4, flen, &rep, &why) == 0) {
            if (rep.tag == 2 && (rep.val < data + off + 4 || rep.val + rep.vlen > data + off + 4 + flen))
                abort(); /* the value must lie inside the frame */
        } else if (!why) {
            abort(); /* a refusal always says why */
        }
        off += 4 + flen;
    }
    /* As the child reads it: one group frame [[id, mod, kind, name, fn, arg,
       shared], ...], a GPU job with [..., cu, cu_name] too. */
    if (pd_mp_check(data, size, PD_MAX_DEPTH, NULL) == 0) {
        pd_rd_t r;
        pd_rd_init(&r, data, size);
        uint32_t n;
        if (pd_rd_array(&r, &n) == 0)
            for (uint32_t i = 0; i < n; i++) {
                pd_slot_order_t o;
                if (pd_slot_job_parse(&r, &o))
                    break;
                if (strlen(o.mod) >= sizeof o.mod || strlen(o.fn) >= sizeof o.fn ||
                    strlen(o.cu) >= sizeof o.cu || strlen(o.cu_name) >= sizeof o.cu_name ||
                    o.arg < data || o.arg + o.alen > data + size)
                    abort();
            }
    }
    return 0;
}
