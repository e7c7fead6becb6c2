/* Unit tests for pd_json: strict JSON -> msgpack, msgpack -> JSON, and the
   error sentences a user sees for malformed argument lines. */
#include "pd_json.h"
#include "pd_error.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static pd_buf_t mp;   /* msgpack produced from JSON */
static pd_buf_t js;   /* JSON produced from msgpack */
static char err[256]; /* error sentence */

static void setup(void)
{
    pd_buf_init(&mp);
    pd_buf_init(&js);
    err[0] = 0;
}
static void teardown(void)
{
    pd_buf_free(&mp);
    pd_buf_free(&js);
}

TestSuite(json, .init = setup, .fini = teardown);

/* JSON text of js as a NUL-terminated string (valid until js changes). */
static const char *s_js_text(void)
{
    cr_assert_eq(pd_buf_append(&js, "", 1), 0);
    js.len--;
    return (const char *) js.data;
}

/* Parses text, converts back, and returns the printed JSON. */
static const char *s_round_trip(const char *text, size_t len)
{
    int rc = pd_json_to_msgpack(text, len, &mp, err, sizeof err);
    cr_assert_eq(rc, 0, "parsing <%s> failed: %s", text, err);
    cr_assert_eq(pd_mp_check(mp.data, mp.len, PD_MAX_DEPTH, NULL), 0,
                 "msgpack of <%s> does not pass pd_mp_check", text);
    cr_assert_eq(pd_msgpack_to_json(mp.data, mp.len, &js), 0);
    return s_js_text();
}

/* ---- JSON -> msgpack -> JSON ------------------------------------------- */

typedef struct {
    char in[96];
    char out[96];
} trip_t;

ParameterizedTestParameters(json, round_trips_every_kind)
{
    static trip_t t[] = {
        {"null", "null"},
        {"true", "true"},
        {"false", "false"},
        {"0", "0"},
        {"-0", "0"},
        {"-1", "-1"},
        {"42", "42"},
        {"-9223372036854775808", "-9223372036854775808"}, /* INT64_MIN */
        {"9223372036854775807", "9223372036854775807"},   /* INT64_MAX */
        {"9223372036854775808", "9223372036854775808"},   /* needs uint64 */
        {"18446744073709551615", "18446744073709551615"}, /* UINT64_MAX */
        {"18446744073709551616", "1.8446744073709552e+19"},
        {"-9223372036854775809", "-9.223372036854776e+18"},
        {"123456789012345678901234567890", "1.2345678901234568e+29"},
        {"0.1", "0.1"},
        {"1.5", "1.5"},
        {"-0.0", "-0.0"},
        {"1.0", "1.0"},
        {"1e3", "1000.0"},
        {"1E-2", "0.01"},
        {"2.5e+10", "25000000000.0"},
        {"1e300", "1e+300"},
        {"1e-400", "0.0"},
        {"0.30000000000000004", "0.30000000000000004"},
        {"\"\"", "\"\""},
        {"\"plain text\"", "\"plain text\""},
        {"\"a\\\"b\\\\c\\/d\"", "\"a\\\"b\\\\c/d\""},
        {"\"\\b\\f\\n\\r\\t\"", "\"\\b\\f\\n\\r\\t\""},
        {"\"\\u0001\\u001F\"", "\"\\u0001\\u001f\""},
        {"\"\\u0000\"", "\"\\u0000\""},
        {"\"\\u00e9\\u00C9\"", "\"\xc3\xa9\xc3\x89\""},
        {"\"\\u20AC\"", "\"\xe2\x82\xac\""},
        {"\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\""},
        {"\"\xf0\x9f\x98\x80 \xe6\x97\xa5\"", "\"\xf0\x9f\x98\x80 \xe6\x97\xa5\""},
        {"[]", "[]"},
        {"{}", "{}"},
        {"[1,[2,[3,[]]]]", "[1,[2,[3,[]]]]"},
        {" { \"a\" : [ 1 , true , null ] ,\n\t\"b\" : {} }\r\n ", "{\"a\":[1,true,null],\"b\":{}}"},
        {"{\"k\":{\"k\":[\"v\",-2.5]}}", "{\"k\":{\"k\":[\"v\",-2.5]}}"},
        {"{\"a\":1,\"a\":2}", "{\"a\":1,\"a\":2}"},
    };
    return cr_make_param_array(trip_t, t, sizeof t / sizeof t[0]);
}

ParameterizedTest(trip_t *t, json, round_trips_every_kind)
{
    const char *got = s_round_trip(t->in, strlen(t->in));
    cr_assert_str_eq(got, t->out, "<%s> printed as <%s>, expected <%s>", t->in, got, t->out);
}

/* ---- exact msgpack encodings ------------------------------------------ */

typedef struct {
    char in[48];
    uint8_t bytes[16];
    size_t len;
} enc_t;

ParameterizedTestParameters(json, encodes_the_smallest_msgpack_form)
{
    static enc_t t[] = {
        {"0", {0x00}, 1},
        {"127", {0x7f}, 1},
        {"-1", {0xff}, 1},
        {"-32", {0xe0}, 1},
        {"300", {0xcd, 0x01, 0x2c}, 3},
        {"-9223372036854775808", {0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9},
        {"18446744073709551615", {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9},
        {"1.5", {0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}, 9},
        {"1e0", {0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}, 9},
        {"null", {0xc0}, 1},
        {"false", {0xc2}, 1},
        {"true", {0xc3}, 1},
        {"\"ab\"", {0xa2, 'a', 'b'}, 3},
        {"[1,\"x\"]", {0x92, 0x01, 0xa1, 'x'}, 4},
        {"{\"a\":[]}", {0x81, 0xa1, 'a', 0x90}, 4},
    };
    return cr_make_param_array(enc_t, t, sizeof t / sizeof t[0]);
}

ParameterizedTest(enc_t *t, json, encodes_the_smallest_msgpack_form)
{
    cr_assert_eq(pd_json_to_msgpack(t->in, strlen(t->in), &mp, err, sizeof err), 0, "%s", err);
    cr_assert_eq(mp.len, t->len, "<%s> gave %zu bytes, expected %zu", t->in, mp.len, t->len);
    cr_assert_eq(memcmp(mp.data, t->bytes, t->len), 0, "<%s> encoded differently", t->in);
}

Test(json, array_and_map_counts_above_fixed_sizes_use_wider_headers)
{
    /* 70000 elements: array32 header; 20 members: map16 header */
    pd_buf_t text;
    pd_buf_init(&text);
    cr_assert_eq(pd_buf_append(&text, "[", 1), 0);
    for (int i = 0; i < 70000; i++)
        cr_assert_eq(pd_buf_append(&text, i ? ",7" : "7", i ? 2 : 1), 0);
    cr_assert_eq(pd_buf_append(&text, "]", 1), 0);
    cr_assert_eq(pd_json_to_msgpack((char *) text.data, text.len, &mp, err, sizeof err), 0);
    cr_assert_eq(mp.len, 5u + 70000u);
    cr_assert_eq(mp.data[0], 0xdd);
    cr_assert_eq(pd_msgpack_to_json(mp.data, mp.len, &js), 0);
    cr_assert_eq(js.len, text.len);
    cr_assert_eq(memcmp(js.data, text.data, text.len), 0);
    pd_buf_free(&text);

    pd_buf_reset(&mp);
    pd_buf_reset(&js);
    char obj[512] = "{";
    for (int i = 0; i < 20; i++)
        snprintf(obj + strlen(obj), sizeof obj - strlen(obj), "%s\"k%d\":%d", i ? "," : "", i, i);
    strcat(obj, "}");
    cr_assert_str_eq(s_round_trip(obj, strlen(obj)), obj);
    cr_assert_eq(mp.data[0], 0xde);
    cr_assert_eq(mp.data[1], 0);
    cr_assert_eq(mp.data[2], 20);
}

/* ---- malformed JSON ------------------------------------------------------ */

typedef struct {
    char in[48];
    char msg[200];
} bad_t;

ParameterizedTestParameters(json, refuses_malformed_input_with_a_clear_sentence)
{
    static bad_t t[] = {
        {"", "column 1: expected a JSON value, found end of input (the input is empty)"},
        {"  \n ", "line 2, column 2: expected a JSON value, found end of input (the input is empty)"},
        {"[1,2,]", "column 6: expected a value after ',', found ']': trailing commas are not allowed"},
        {"{\"a\":1,}",
         "column 8: expected a string key after ',', found '}': trailing commas are not allowed"},
        {"\"abc", "column 1: unterminated string: add the closing '\"'"},
        {"[\"abc\\", "column 2: unterminated string: add the closing '\"'"},
        {"\"a\\qb\"",
         "column 3: invalid escape '\\' followed by 'q' in a string: use \\\" \\\\ \\/ \\b \\f "
         "\\n \\r \\t or \\uXXXX"},
        {"\"\\u12\"", "column 2: \\u must be followed by 4 hex digits"},
        {"\"\\ud800\"",
         "column 2: lone high surrogate \\uD800 in a string: it must be followed by a low "
         "surrogate \\uDC00-\\uDFFF"},
        {"\"\\ud800\\u0041\"",
         "column 2: lone high surrogate \\uD800 in a string: it must be followed by a low "
         "surrogate \\uDC00-\\uDFFF"},
        {"\"x\\uDC00\"",
         "column 3: lone low surrogate \\uDC00 in a string: it must follow a high surrogate "
         "\\uD800-\\uDBFF"},
        {"\"a\tb\"", "column 3: raw control character 0x09 in a string: write it as \\u0009"},
        {"\"\xff\"", "column 2: invalid UTF-8 byte 0xFF in a string: the input must be UTF-8"},
        {"\"\xc0\xaf\"", "column 2: invalid UTF-8 byte 0xC0 in a string: the input must be UTF-8"},
        {"\"\xed\xa0\x80\"",
         "column 2: invalid UTF-8 byte 0xED in a string: the input must be UTF-8"},
        {"\"\xe2\x82\"", "column 2: invalid UTF-8 byte 0xE2 in a string: the input must be UTF-8"},
        {"1 2", "column 3: unexpected '2' after the JSON value: give one value per line"},
        {"{} x", "column 4: unexpected 'x' after the JSON value: give one value per line"},
        {"\"a\"\n,", "line 2, column 1: unexpected ',' after the JSON value: give one value per line"},
        {"[\"\xc3\xa9\" 2]", "column 6: expected ',' or ']' after an array element, found '2'"},
        {"[1 2]", "column 4: expected ',' or ']' after an array element, found '2'"},
        {"[1,2", "column 5: expected ',' or ']' after an array element, found end of input"},
        {"[,1]",
         "column 2: expected a JSON value (object, array, string, number, true, false or "
         "null), found ','"},
        {"{\"a\":1 \"b\":2}",
         "column 8: expected ',' or '}' after an object member, found '\"'"},
        {"{\"a\" 1}", "column 6: expected ':' after an object key, found '1'"},
        {"{1:2}", "column 2: expected a string key in double quotes, found '1'"},
        {"{\"a\":}",
         "column 6: expected a JSON value (object, array, string, number, true, false or "
         "null), found '}'"},
        {"01", "column 1: leading zeros are not allowed in a number"},
        {"-012", "column 1: leading zeros are not allowed in a number"},
        {"+1", "column 1: a number cannot start with '+': remove the sign"},
        {"0x1F", "column 1: hexadecimal numbers are not JSON: write it in decimal"},
        {".5", "column 1: a number cannot start with '.': write a digit before it"},
        {"1.", "column 3: expected a digit after '.' in a number, found end of input"},
        {"1.e5", "column 3: expected a digit after '.' in a number, found 'e'"},
        {"1e", "column 3: expected a digit in the exponent of a number, found end of input"},
        {"1e+", "column 4: expected a digit in the exponent of a number, found end of input"},
        {"-", "column 2: expected a digit after '-', found end of input"},
        {"-a", "column 2: expected a digit after '-', found 'a'"},
        {"NaN", "column 1: NaN is not JSON: use null or a string"},
        {"Infinity", "column 1: Infinity is not JSON: use null or a string"},
        {"-Infinity", "column 1: Infinity is not JSON: use null or a string"},
        {"1e400", "column 1: number 1e400 is out of range of a double (about 1.8e308 at most)"},
        {"[-1.5e999]",
         "column 2: number -1.5e999 is out of range of a double (about 1.8e308 at most)"},
        {"tru", "column 4: expected 'true', found end of input"},
        {"nul1", "column 4: expected 'null', found '1'"},
        {"False", "column 1: expected a JSON value (object, array, string, number, true, false "
                  "or null), found 'F'"},
        {"'a'", "column 1: strings take double quotes, not single quotes"},
        {"\xef\xbb\xbf{}", "column 1: the input starts with a UTF-8 byte-order mark: remove it"},
        {"[1]\x01", "column 4: unexpected byte 0x01 after the JSON value: give one value per line"},
    };
    return cr_make_param_array(bad_t, t, sizeof t / sizeof t[0]);
}

ParameterizedTest(bad_t *t, json, refuses_malformed_input_with_a_clear_sentence)
{
    cr_assert_eq(pd_buf_append(&mp, "keep", 4), 0);
    int rc = pd_json_to_msgpack(t->in, strlen(t->in), &mp, err, sizeof err);
    cr_assert_eq(rc, PD_EJSON, "<%s> was accepted", t->in);
    cr_assert_str_eq(err, t->msg, "<%s>", t->in);
    cr_assert_eq(mp.len, 4, "output was not restored after an error");
    cr_assert_eq(memcmp(mp.data, "keep", 4), 0);
}

Test(json, refuses_a_nul_byte_inside_and_after_the_value)
{
    cr_assert_eq(pd_json_to_msgpack("\"a\0b\"", 5, &mp, err, sizeof err), PD_EJSON);
    cr_assert_str_eq(err, "column 3: raw control character 0x00 in a string: write it as \\u0000");
    cr_assert_eq(pd_json_to_msgpack("7\0", 2, &mp, err, sizeof err), PD_EJSON);
    cr_assert_str_eq(err, "column 2: unexpected byte 0x00 after the JSON value: give one value "
                          "per line");
}

/* Builds n nested arrays around a 1. */
static char *s_nested(int n)
{
    char *s = malloc((size_t) (2 * n + 2));
    cr_assert_not_null(s);
    memset(s, '[', (size_t) n);
    s[n] = '1';
    memset(s + n + 1, ']', (size_t) n);
    s[2 * n + 1] = 0;
    return s;
}

Test(json, accepts_nesting_of_32_and_refuses_33)
{
    char *ok = s_nested(32);
    cr_assert_str_eq(s_round_trip(ok, strlen(ok)), ok);
    free(ok);

    char *deep = s_nested(33);
    cr_assert_eq(pd_json_to_msgpack(deep, strlen(deep), &mp, err, sizeof err), PD_EJSON);
    cr_assert_str_eq(err, "column 33: nesting deeper than 32");
    free(deep);

    const char *objs = "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":"
                       "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":"
                       "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":"
                       "{\"a\":{\"a\":[";
    cr_assert_eq(pd_json_to_msgpack(objs, strlen(objs), &mp, err, sizeof err), PD_EJSON);
    cr_assert_str_eq(err, "column 161: nesting deeper than 32");
}

Test(json, refuses_a_million_open_brackets_without_recursing)
{
    char *deep = s_nested(1000000);
    cr_assert_eq(pd_json_to_msgpack(deep, strlen(deep), &mp, err, sizeof err), PD_EJSON);
    cr_assert_str_eq(err, "column 33: nesting deeper than 32");
    free(deep);
}

Test(json, truncates_a_long_sentence_to_the_error_buffer_and_accepts_no_buffer)
{
    char small[12];
    cr_assert_eq(pd_json_to_msgpack("[1,2,]", 6, &mp, small, sizeof small), PD_EJSON);
    cr_assert_str_eq(small, "column 6: e");
    cr_assert_eq(pd_json_to_msgpack("[1,2,]", 6, &mp, NULL, 0), PD_EJSON);
    cr_assert_eq(pd_json_to_msgpack("[1,2]", 5, &mp, NULL, 0), 0);
}

Test(json, reports_an_output_over_its_cap_and_restores_it)
{
    mp.max = 8;
    cr_assert_eq(pd_buf_append(&mp, "ab", 2), 0);
    int rc = pd_json_to_msgpack("\"0123456789\"", 12, &mp, err, sizeof err);
    cr_assert_eq(rc, PD_ETOOBIG);
    cr_assert_eq(mp.len, 2);
    cr_assert(strstr(err, "too large") != NULL, "%s", err);
}

Test(json, appends_after_existing_bytes)
{
    cr_assert_eq(pd_json_to_msgpack("1", 1, &mp, err, sizeof err), 0);
    cr_assert_eq(pd_json_to_msgpack("[true]", 6, &mp, err, sizeof err), 0);
    cr_assert_eq(mp.len, 3);
    cr_assert_eq(memcmp(mp.data, "\x01\x91\xc3", 3), 0);
    cr_assert_eq(pd_buf_append(&js, "x=", 2), 0);
    cr_assert_eq(pd_msgpack_to_json(mp.data + 1, 2, &js), 0);
    cr_assert_str_eq(s_js_text(), "x=[true]");
}

/* ---- msgpack -> JSON ------------------------------------------------------ */

typedef struct {
    uint8_t bytes[24];
    size_t len;
    char out[64];
} print_t;

ParameterizedTestParameters(json, prints_each_msgpack_kind)
{
    static print_t t[] = {
        {{0xc0}, 1, "null"},
        {{0xd0, 0x80}, 2, "-128"},
        {{0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9, "-9223372036854775808"},
        {{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9, "18446744073709551615"},
        {{0xca, 0x3d, 0xcc, 0xcc, 0xcd}, 5, "0.1"},                   /* float32 0.1f */
        {{0xca, 0x3f, 0x80, 0, 0}, 5, "1.0"},                          /* float32 1.0f */
        {{0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0}, 9, "null"},             /* NaN */
        {{0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0}, 9, "null"},             /* +inf */
        {{0xcb, 0xff, 0xf0, 0, 0, 0, 0, 0, 0}, 9, "null"},             /* -inf */
        {{0xc4, 0}, 2, "\"\""},
        {{0xc4, 1, 'f'}, 3, "\"Zg==\""},
        {{0xc4, 2, 'f', 'o'}, 4, "\"Zm8=\""},
        {{0xc4, 3, 'f', 'o', 'o'}, 5, "\"Zm9v\""},
        {{0xc4, 4, 0xfb, 0xff, 0x00, 0x01}, 6, "\"+/8AAQ==\""},
        {{0xa3, 0x01, 0x1f, 0x7f}, 4, "\"\\u0001\\u001f\x7f\""},
        {{0xa2, '"', '\\'}, 3, "\"\\\"\\\\\""},
        {{0xa3, 'a', 0xff, 'b'}, 4, "\"a\\ufffdb\""},
        {{0xa2, 0xc3, 0x28}, 3, "\"\\ufffd(\""},
        {{0xa3, 0xed, 0xa0, 0x80}, 4, "\"\\ufffd\\ufffd\\ufffd\""},     /* encoded surrogate */
        {{0xa2, 0xc3, 0xa9}, 3, "\"\xc3\xa9\""},
        {{0x81, 0x01, 0x02}, 3, "{\"1\":2}"},
        {{0x81, 0xc0, 0xc3}, 3, "{\"null\":true}"},
        {{0x81, 0x92, 0x01, 0x02, 0xc3}, 5, "{\"[1,2]\":true}"},
        {{0x81, 0x91, 0xa1, 'a', 0x00}, 5, "{\"[\\\"a\\\"]\":0}"},
        {{0x82, 0xa1, 'a', 0x90, 0xa1, 'b', 0x80}, 7, "{\"a\":[],\"b\":{}}"},
        {{0xdc, 0x00, 0x02, 0xc2, 0xc3}, 5, "[false,true]"},
    };
    return cr_make_param_array(print_t, t, sizeof t / sizeof t[0]);
}

ParameterizedTest(print_t *t, json, prints_each_msgpack_kind)
{
    cr_assert_eq(pd_msgpack_to_json(t->bytes, t->len, &js), 0);
    cr_assert_str_eq(s_js_text(), t->out);
}

typedef struct {
    uint8_t bytes[8];
    size_t len;
} badmp_t;

ParameterizedTestParameters(json, refuses_malformed_msgpack)
{
    static badmp_t t[] = {
        {{0}, 0},                      /* empty */
        {{0x92, 0x01}, 2},             /* truncated array */
        {{0xa3, 'a'}, 2},              /* truncated str */
        {{0x01, 0x02}, 2},             /* trailing bytes */
        {{0xd4, 0x00, 0x00}, 3},       /* fixext */
        {{0xc1}, 1},                   /* never used */
        {{0x81, 0x01}, 2},             /* map missing a value */
    };
    return cr_make_param_array(badmp_t, t, sizeof t / sizeof t[0]);
}

ParameterizedTest(badmp_t *t, json, refuses_malformed_msgpack)
{
    cr_assert_eq(pd_buf_append(&js, "keep", 4), 0);
    cr_assert_eq(pd_msgpack_to_json(t->bytes, t->len, &js), PD_EPROTO);
    cr_assert_eq(js.len, 4);
}

Test(json, refuses_msgpack_nested_deeper_than_32)
{
    uint8_t deep[34];
    memset(deep, 0x91, 33);
    deep[33] = 0x00;
    cr_assert_eq(pd_msgpack_to_json(deep, sizeof deep, &js), PD_EPROTO);
    cr_assert_eq(pd_msgpack_to_json(deep + 1, sizeof deep - 1, &js), 0);
}

/* ---- floats ------------------------------------------------------------------ */

typedef struct {
    double v;
    char out[40];
} float_t_;

ParameterizedTestParameters(json, prints_floats_as_the_shortest_text_that_round_trips)
{
    static float_t_ t[] = {
        {0.1, "0.1"},
        {0.2, "0.2"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1.0, "1.0"},
        {-0.0, "-0.0"},
        {100.0, "100.0"},
        {-2.5, "-2.5"},
        {1.0 / 3.0, "0.3333333333333333"},
        {123456.789, "123456.789"},
        {1e21, "1e+21"},
        {1e-7, "1e-07"},
        {DBL_MAX, "1.7976931348623157e+308"},
        {5e-324, "4.94065645841247e-324"},
        {9007199254740993.0, "9007199254740992.0"},
    };
    return cr_make_param_array(float_t_, t, sizeof t / sizeof t[0]);
}

ParameterizedTest(float_t_ *t, json, prints_floats_as_the_shortest_text_that_round_trips)
{
    msgpack_packer pk;
    pd_packer_init(&pk, &mp);
    cr_assert_eq(msgpack_pack_double(&pk, t->v), 0);
    cr_assert_eq(pd_msgpack_to_json(mp.data, mp.len, &js), 0);
    cr_assert_str_eq(s_js_text(), t->out);
}

Test(json, float_text_reads_back_to_the_same_bits)
{
    /* deterministic bit patterns across the whole double range */
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof v);
        if (!isfinite(v))
            continue;
        pd_buf_reset(&mp);
        pd_buf_reset(&js);
        msgpack_packer pk;
        pd_packer_init(&pk, &mp);
        cr_assert_eq(msgpack_pack_double(&pk, v), 0);
        cr_assert_eq(pd_msgpack_to_json(mp.data, mp.len, &js), 0);
        size_t n = js.len;
        pd_buf_reset(&mp);
        cr_assert_eq(pd_json_to_msgpack((char *) js.data, n, &mp, err, sizeof err), 0,
                     "%.*s: %s", (int) n, (char *) js.data, err);
        cr_assert_eq(mp.len, 9, "%.*s did not read back as a float64", (int) n, (char *) js.data);
        uint64_t back = 0;
        for (int b = 1; b < 9; b++)
            back = back << 8 | mp.data[b];
        cr_assert_eq(back, x, "%.*s changed the value", (int) n, (char *) js.data);
    }
}

/* Map keys that are maps, nested: each level escapes the text of the one
   below again, doubling it. A frame of a few hundred bytes once took
   minutes and gigabytes (fuzz_msg, tests/fuzz/corpus/msg/
   regression-nested-map-keys); a key's text is now capped at 4 KiB. */
Test(json, map_keys_nested_in_map_keys_cost_little)
{
    pd_buf_t in;
    pd_buf_init(&in);
    msgpack_packer pk;
    pd_packer_init(&pk, &in);
    for (int i = 0; i < 30; i++) {
        msgpack_pack_map(&pk, 1); /* its key is the next map */
    }
    pd_pack_cstr(&pk, "\"quoted\\\"\"");
    for (int i = 0; i < 30; i++)
        pd_pack_cstr(&pk, "v");
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = pd_msgpack_to_json(in.data, in.len, &js);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double) (b.tv_sec - a.tv_sec) + (double) (b.tv_nsec - a.tv_nsec) / 1e9;
    cr_assert_eq(rc, PD_ETOOBIG, "rc %d", rc);
    cr_assert_lt(s, 2.0, "took %.1f s", s);
    cr_assert_eq(js.len, 0, "nothing is kept on failure");
    /* A small non-string key still prints as its JSON text. */
    pd_buf_reset(&in);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_int(&pk, 2);
    msgpack_pack_int(&pk, 3);
    cr_assert_eq(pd_msgpack_to_json(in.data, in.len, &js), 0);
    cr_assert_eq(js.len, strlen("{\"[1,2]\":3}"));
    cr_assert(memcmp(js.data, "{\"[1,2]\":3}", js.len) == 0);
    pd_buf_free(&in);
}
