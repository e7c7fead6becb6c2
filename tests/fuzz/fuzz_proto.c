/*  fuzz_proto: libFuzzer harness for the protocol codec (common/pd_proto.h).
    An input is one frame as it arrives from the network. Once pd_msg_parse
    accepts it, every message's decoder runs over it (the frame's type is
    set to each in turn, so that every field table meets every input); a
    message that decodes must keep the codec's promises: STR fields are
    NUL-terminated within their cap, borrowed bytes lie inside the frame,
    and it encodes again into a frame that decodes to the same bytes once
    more (decode . encode is stable). */
#include "pd_error.h"
#include "pd_log.h"
#include "pd_proto.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    pd_log_set_level(PD_LOG_ERROR);
    return 0;
}

/* Room for the largest message struct. */
static alignas(max_align_t) unsigned char s_a[16384], s_b[16384];

static bool s_inside(const void *p, size_t n, const uint8_t *data, size_t size)
{
    const uint8_t *q = p;
    return n == 0 || (q >= data && q + n <= data + size);
}

/* The promises of a decoded struct about the frame it came from. */
static void s_check(const pd_proto_msg_t *d, const void *m, const uint8_t *data, size_t size)
{
    for (uint32_t i = 0; i < d->nfields; i++) {
        const pd_proto_field_t *f = &d->fields[i];
        const void *v = (const char *) m + f->off;
        switch (f->kind) {
        case PD_FK_STR:
            if (!memchr(v, 0, f->bound))
                abort();
            break;
        case PD_FK_TEXT: {
            const pd_str_t *s = v;
            if (!s_inside(s->p, s->len, data, size))
                abort();
            break;
        }
        case PD_FK_BIN: {
            const pd_bin_t *b = v;
            if (!s_inside(b->p, b->len, data, size))
                abort();
            break;
        }
        case PD_FK_RAW:
        case PD_FK_ARRAY:
        case PD_FK_MAP: {
            const pd_raw_t *r = v;
            if (!s_inside(r->p, r->len, data, size))
                abort();
            break;
        }
        default: break;
        }
    }
}

/* Encodes the struct at m; returns the frame (in buf). */
static void s_encode(const pd_proto_msg_t *d, const void *m, pd_buf_t *buf)
{
    msgpack_packer pk;
    pd_buf_reset(buf);
    pd_packer_init(&pk, buf);
    if (pd_proto_encode(&pk, d, m))
        abort(); /* what was decoded fits: no cap can be passed */
}

static void s_round_trip(const pd_proto_msg_t *d)
{
    pd_buf_t one, two;
    pd_buf_init(&one);
    pd_buf_init(&two);
    pd_msg_t m;
    s_encode(d, s_a, &one);
    if (pd_msg_parse(&m, one.data, one.len) || pd_proto_decode(&m, d, s_b))
        abort();
    s_check(d, s_b, one.data, one.len);
    s_encode(d, s_b, &two);
    if (one.len != two.len || memcmp(one.data, two.data, one.len) != 0)
        abort();
    pd_buf_free(&one);
    pd_buf_free(&two);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pd_msg_t m;
    if (pd_msg_parse(&m, data, size))
        return 0;
    for (size_t k = 0; k < pd_proto_count; k++) {
        const pd_proto_msg_t *d = pd_proto_all[k];
        if (d->size > sizeof s_a)
            abort();
        snprintf(m.type, sizeof m.type, "%s", d->type);
        if (pd_proto_decode(&m, d, s_a) == 0) {
            s_check(d, s_a, data, size);
            s_round_trip(d);
        }
    }
    return 0;
}
