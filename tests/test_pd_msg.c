/* Unit tests for pd_msg: message envelope parsing and field access. */
#include "pd_error.h"
#include "pd_msg.h"

#include <criterion/criterion.h>
#include <string.h>

static pd_buf_t buf;
static msgpack_packer pk;
static pd_msg_t m;

static void setup(void)
{
    pd_buf_init(&buf);
    pd_packer_init(&pk, &buf);
}
static void teardown(void) { pd_buf_free(&buf); }

TestSuite(msg, .init = setup, .fini = teardown);

Test(msg, parses_type_version_and_fields)
{
    pd_msg_begin(&pk, "submit", 3);
    pd_pack_kv_uint(&pk, "req", 42);
    pd_pack_kv_str(&pk, "fn", "square");
    pd_pack_kv_bool(&pk, "flag", true);
    cr_assert_eq(pd_msg_parse(&m, buf.data, buf.len), 0, "%s", m.why);
    cr_assert(pd_msg_is(&m, "submit"));
    uint64_t req;
    cr_assert_eq(pd_msg_uint(&m, "req", &req), 0);
    cr_assert_eq(req, 42);
    char fn[16];
    cr_assert_eq(pd_msg_str(&m, "fn", fn, sizeof fn), 0);
    cr_assert_str_eq(fn, "square");
    bool flag;
    cr_assert_eq(pd_msg_bool(&m, "flag", &flag), 0);
    cr_assert(flag);
}

Test(msg, missing_and_mistyped_fields_say_which)
{
    pd_msg_begin(&pk, "submit", 1);
    pd_pack_kv_str(&pk, "req", "nope");
    cr_assert_eq(pd_msg_parse(&m, buf.data, buf.len), 0);
    uint64_t x;
    cr_assert_eq(pd_msg_uint(&m, "req", &x), PD_EPROTO);
    cr_assert_str_eq(m.why, "message 'submit': field 'req' is not a non-negative integer");
    cr_assert_eq(pd_msg_uint(&m, "mod", &x), PD_ENOFIELD);
    cr_assert_str_eq(m.why, "message 'submit': field 'mod' is missing");
    x = 9;
    cr_assert_eq(pd_msg_uint_opt(&m, "absent", &x), 0);
    cr_assert_eq(x, 9);
}

Test(msg, refuses_other_versions)
{
    msgpack_pack_map(&pk, 2);
    pd_pack_kv_uint(&pk, "v", 7);
    pd_pack_kv_str(&pk, "t", "hello");
    cr_assert_eq(pd_msg_parse(&m, buf.data, buf.len), PD_EVERSION);
    cr_assert(strstr(m.why, "version 7") != NULL);
}

Test(msg, refuses_missing_type_non_map_and_duplicate_keys)
{
    msgpack_pack_map(&pk, 1);
    pd_pack_kv_uint(&pk, "v", 1);
    cr_assert_eq(pd_msg_parse(&m, buf.data, buf.len), PD_EPROTO);

    pd_buf_reset(&buf);
    msgpack_pack_array(&pk, 0);
    cr_assert_eq(pd_msg_parse(&m, buf.data, buf.len), PD_EPROTO);
    cr_assert_str_eq(m.why, "message is not a msgpack map");

    pd_buf_reset(&buf);
    msgpack_pack_map(&pk, 3);
    pd_pack_kv_uint(&pk, "v", 1);
    pd_pack_kv_str(&pk, "t", "hello");
    pd_pack_kv_str(&pk, "t", "submit");
    cr_assert_eq(pd_msg_parse(&m, buf.data, buf.len), PD_EPROTO);
    cr_assert_str_eq(m.why, "message has a duplicate key");
}

Test(msg, refuses_garbage_with_a_reason)
{
    const unsigned char junk[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    cr_assert_eq(pd_msg_parse(&m, junk, sizeof junk), PD_EPROTO);
    cr_assert_str_eq(m.why, "element count larger than the frame");
}
