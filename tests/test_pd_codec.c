/* Unit tests for pd_codec: bounded checking, strict readers, the buffer. */
#include "pd_codec.h"
#include "pd_error.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

static pd_buf_t buf;
static msgpack_packer pk;

static void setup(void)
{
    pd_buf_init(&buf);
    pd_packer_init(&pk, &buf);
}
static void teardown(void) { pd_buf_free(&buf); }

TestSuite(codec, .init = setup, .fini = teardown);

Test(codec, round_trips_scalars_through_packer_and_readers)
{
    msgpack_pack_array(&pk, 8);
    msgpack_pack_nil(&pk);
    msgpack_pack_true(&pk);
    msgpack_pack_int64(&pk, -5000000000LL);
    msgpack_pack_uint64(&pk, UINT64_MAX);
    msgpack_pack_double(&pk, 2.5);
    msgpack_pack_float(&pk, 0.5f);
    pd_pack_cstr(&pk, "hello");
    msgpack_pack_bin(&pk, 3);
    msgpack_pack_bin_body(&pk, "\x00\x01\x02", 3);
    cr_assert_eq(pd_mp_check(buf.data, buf.len, PD_MAX_DEPTH, NULL), 0);

    pd_rd_t r;
    pd_rd_init(&r, buf.data, buf.len);
    uint32_t n;
    cr_assert_eq(pd_rd_array(&r, &n), 0);
    cr_assert_eq(n, 8);
    cr_assert_eq(pd_rd_nil(&r), 0);
    bool b = false;
    cr_assert_eq(pd_rd_bool(&r, &b), 0);
    cr_assert(b);
    int64_t i;
    cr_assert_eq(pd_rd_int(&r, &i), 0);
    cr_assert_eq(i, -5000000000LL);
    uint64_t u;
    cr_assert_eq(pd_rd_uint(&r, &u), 0);
    cr_assert_eq(u, UINT64_MAX);
    double d;
    cr_assert_eq(pd_rd_double(&r, &d), 0);
    cr_assert_eq(d, 2.5);
    cr_assert_eq(pd_rd_double(&r, &d), 0);
    cr_assert_eq(d, 0.5);
    const char *s;
    uint32_t sl;
    cr_assert_eq(pd_rd_str(&r, &s, &sl), 0);
    cr_assert_eq(sl, 5);
    cr_assert_eq(memcmp(s, "hello", 5), 0);
    const void *p;
    cr_assert_eq(pd_rd_bin(&r, &p, &sl), 0);
    cr_assert_eq(sl, 3);
    cr_assert(pd_rd_at_end(&r));
}

Test(codec, reader_refuses_wrong_kind_without_moving)
{
    pd_pack_cstr(&pk, "x");
    pd_rd_t r;
    pd_rd_init(&r, buf.data, buf.len);
    uint64_t u;
    cr_assert_eq(pd_rd_uint(&r, &u), PD_EPROTO);
    cr_assert_eq(r.p, buf.data);
    cr_assert_eq(pd_rd_peek(&r), PD_MP_STR);
}

Test(codec, uint_reader_refuses_negative_and_int_reader_refuses_huge)
{
    msgpack_pack_int64(&pk, -1);
    msgpack_pack_uint64(&pk, UINT64_MAX);
    pd_rd_t r;
    pd_rd_init(&r, buf.data, buf.len);
    uint64_t u;
    int64_t i;
    cr_assert_eq(pd_rd_uint(&r, &u), PD_EPROTO);
    cr_assert_eq(pd_rd_int(&r, &i), 0);
    cr_assert_eq(i, -1);
    cr_assert_eq(pd_rd_int(&r, &i), PD_EPROTO);
    cr_assert_eq(pd_rd_uint(&r, &u), 0);
}

Test(codec, skip_returns_the_raw_bytes_of_a_nested_value)
{
    msgpack_pack_array(&pk, 2);
    msgpack_pack_map(&pk, 1);
    pd_pack_kv_uint(&pk, "a", 7);
    msgpack_pack_int(&pk, 3);
    pd_rd_t r;
    pd_rd_init(&r, buf.data, buf.len);
    uint32_t n;
    pd_rd_array(&r, &n);
    const uint8_t *raw;
    size_t rl;
    cr_assert_eq(pd_rd_skip(&r, &raw, &rl), 0);
    cr_assert_eq(rl, 4); /* 0x81 0xa1 'a' 0x07 */
    cr_assert_eq(raw[0], 0x81);
}

struct bad_frame {
    const char *name;
    unsigned char bytes[16];
    size_t len;
    int code;
};

ParameterizedTestParameters(codec, check_refuses_hostile_frames)
{
    static struct bad_frame frames[] = {
        {"empty", {0}, 0, PD_EPROTO},
        {"array32 claiming 4 billion elements", {0xdd, 0xff, 0xff, 0xff, 0xff}, 5, PD_EPROTO},
        {"map32 claiming 4 billion pairs", {0xdf, 0xff, 0xff, 0xff, 0xff}, 5, PD_EPROTO},
        {"str32 longer than the frame", {0xdb, 0x00, 0x10, 0x00, 0x00, 'a'}, 6, PD_EPROTO},
        {"bin8 truncated", {0xc4, 0x05, 1, 2}, 4, PD_EPROTO},
        {"truncated uint64", {0xcf, 0, 0, 0}, 4, PD_EPROTO},
        {"reserved byte 0xc1", {0xc1}, 1, PD_EPROTO},
        {"ext type", {0xd4, 0x01, 0x00}, 3, PD_EPROTO},
        {"trailing bytes", {0x01, 0x02}, 2, PD_EPROTO},
        {"fixarray missing elements", {0x93, 0x01}, 2, PD_EPROTO},
        {"truncated length of str16", {0xda, 0x00}, 2, PD_EPROTO},
    };
    return cr_make_param_array(struct bad_frame, frames, sizeof frames / sizeof frames[0]);
}

ParameterizedTest(struct bad_frame *f, codec, check_refuses_hostile_frames)
{
    const char *why = NULL;
    cr_expect_eq(pd_mp_check(f->bytes, f->len, PD_MAX_DEPTH, &why), f->code, "%s", f->name);
    cr_expect_not_null(why, "%s: no reason given", f->name);
}

Test(codec, check_refuses_nesting_deeper_than_the_limit)
{
    unsigned char deep[64];
    memset(deep, 0x91, sizeof deep); /* [[[[...]]]] */
    deep[63] = 0x00;
    const char *why;
    cr_assert_eq(pd_mp_check(deep, sizeof deep, PD_MAX_DEPTH, &why), PD_EPROTO);
    cr_assert_str_eq(why, "nesting too deep");
    cr_assert_eq(pd_mp_check(deep + 64 - 10, 10, PD_MAX_DEPTH, &why), 0);
}

Test(codec, check_accepts_every_prefix_only_when_complete)
{
    msgpack_pack_map(&pk, 2);
    pd_pack_kv_str(&pk, "name", "square");
    pd_pack_kv_double(&pk, "x", 1.25);
    for (size_t n = 0; n < buf.len; n++)
        cr_assert_neq(pd_mp_check(buf.data, n, PD_MAX_DEPTH, NULL), 0, "prefix %zu accepted", n);
    cr_assert_eq(pd_mp_check(buf.data, buf.len, PD_MAX_DEPTH, NULL), 0);
}

Test(codec, buffer_refuses_growth_past_its_max)
{
    pd_buf_t small;
    pd_buf_init(&small);
    small.max = 16;
    char data[10] = {0};
    cr_assert_eq(pd_buf_append(&small, data, 10), 0);
    cr_assert_eq(pd_buf_append(&small, data, 10), PD_ETOOBIG);
    cr_assert(small.failed);
    cr_assert_eq(small.len, 10);
    pd_buf_free(&small);
}

Test(codec, strcpy_refuses_strings_that_do_not_fit)
{
    pd_pack_cstr(&pk, "0123456789");
    pd_rd_t r;
    pd_rd_init(&r, buf.data, buf.len);
    char small[8], big[16];
    cr_assert_eq(pd_rd_strcpy(&r, small, sizeof small), PD_ETOOBIG);
    cr_assert_eq(pd_rd_strcpy(&r, big, sizeof big), 0);
    cr_assert_str_eq(big, "0123456789");
}
