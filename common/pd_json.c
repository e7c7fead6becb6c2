/*  pd_json: see pd_json.h. The CLI turns each line of an ARGS.jsonl file into
    a msgpack job argument with pd_json_to_msgpack() and prints each result
    with pd_msgpack_to_json().

    JSON -> msgpack needs every array and map count before its elements, so
    the text is parsed twice by the same recursive-descent parser: the first
    pass validates everything and records the element count of each container
    in opening order; the second pass emits msgpack, taking the counts in the
    same order. Both passes are linear; recursion is bounded by PD_MAX_DEPTH.
    Strings are unescaped into a scratch buffer before they are packed, since
    a msgpack str header also needs the decoded length.
*/
#include "pd_json.h"
#include "pd_grow.h"
#include "pd_error.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 --------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at p (1..4), or 0 when the bytes
   at p are not one (overlong forms, surrogates, above U+10FFFF, truncated). */
static size_t s_utf8_len(const uint8_t *p, const uint8_t *end)
{
    size_t left = (size_t) (end - p);
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    size_t n;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else
        return 0;
    if (left < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

bool pd_utf8_valid(const void *p, size_t len)
{
    const uint8_t *q = p, *end = q + len;
    while (q < end) {
        size_t n = s_utf8_len(q, end);
        if (n == 0)
            return false;
        q += n;
    }
    return true;
}

/* Writes code point cp (not a surrogate, <= 0x10FFFF) as UTF-8; returns bytes. */
static size_t s_utf8_put(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t) cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t) (0xc0 | (cp >> 6));
        out[1] = (uint8_t) (0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t) (0xe0 | (cp >> 12));
        out[1] = (uint8_t) (0x80 | ((cp >> 6) & 0x3f));
        out[2] = (uint8_t) (0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (uint8_t) (0xf0 | (cp >> 18));
    out[1] = (uint8_t) (0x80 | ((cp >> 12) & 0x3f));
    out[2] = (uint8_t) (0x80 | ((cp >> 6) & 0x3f));
    out[3] = (uint8_t) (0x80 | (cp & 0x3f));
    return 4;
}

/* ---- locale-independent number text ----------------------------------- */

/* strtod() and printf("%g") use the locale's decimal point; JSON uses '.'.
   These swap between the two in a NUL-terminated buffer. */
static char s_locale_point(void)
{
    const char *dp = localeconv()->decimal_point;
    return dp && dp[0] && !dp[1] ? dp[0] : '.';
}

static void s_swap_point(char *s, char from, char to)
{
    if (from == to)
        return;
    for (; *s; s++)
        if (*s == from)
            *s = to;
}

/* ---- JSON -> msgpack ----------------------------------------------------- */

typedef struct {
    const uint8_t *start;  /* first byte of the text */
    const uint8_t *p;      /* next byte to read */
    const uint8_t *end;    /* one past the last byte */
    bool emit;             /* second pass: write msgpack; first pass: validate and count */
    uint32_t *counts;      /* element count of each container, in opening order; owned */
    size_t ncounts;        /* containers recorded (first pass) */
    size_t capcounts;      /* slots allocated in counts */
    size_t next;           /* next container whose count the second pass takes */
    pd_buf_t *out;         /* msgpack output (borrowed) */
    msgpack_packer pk;     /* packer writing into out */
    pd_buf_t scratch;      /* decoded string or number token; owned */
    char *err;             /* caller's error sentence buffer, may be NULL */
    size_t errcap;         /* bytes in err */
} s_parser_t;

/* Describes the byte at p for an error sentence ("'x'", "end of input"). */
static const char *s_found(const s_parser_t *ps, const uint8_t *p, char buf[24])
{
    if (p >= ps->end)
        return "end of input";
    if (*p >= 0x20 && *p < 0x7f)
        snprintf(buf, 24, "'%c'", *p);
    else
        snprintf(buf, 24, "byte 0x%02X", *p);
    return buf;
}

/* Writes "line L, column C: <message>" about position at into the caller's
   err buffer and returns PD_EJSON. Columns count characters, not bytes. */
static int s_fail(s_parser_t *ps, const uint8_t *at, const char *fmt, ...)
{
    if (!ps->err || ps->errcap == 0)
        return PD_EJSON;
    size_t line = 1, col = 1;
    for (const uint8_t *q = ps->start; q < at && q < ps->end; q++) {
        if (*q == '\n')
            line++, col = 1;
        else if ((*q & 0xc0) != 0x80)
            col++;
    }
    int n;
    if (line > 1)
        n = snprintf(ps->err, ps->errcap, "line %zu, column %zu: ", line, col);
    else
        n = snprintf(ps->err, ps->errcap, "column %zu: ", col);
    if (n >= 0 && (size_t) n < ps->errcap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err + n, ps->errcap - (size_t) n, fmt, ap);
        va_end(ap);
    }
    return PD_EJSON;
}

/* Reports a buffer failure (PD_ETOOBIG/PD_ENOMEM) with a sentence. */
static int s_fail_buf(s_parser_t *ps, int rc)
{
    if (ps->err && ps->errcap)
        snprintf(ps->err, ps->errcap, "%s: the JSON value is too large to convert",
                 pd_strerror(rc));
    return rc;
}

static void s_skip_ws(s_parser_t *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

/* Emits a msgpack header after making sure out has room, so that a packer
   failure cannot hide the buffer's own error code. */
static int s_room(s_parser_t *ps, size_t n)
{
    int rc = pd_buf_reserve(ps->out, n);
    return rc ? s_fail_buf(ps, rc) : 0;
}

/* First pass: records a new container and returns its index in *idx.
   Second pass: packs the header with the count the first pass recorded. */
static int s_open(s_parser_t *ps, bool is_map, size_t *idx)
{
    if (!ps->emit) {
        if (pd_grow(&ps->counts, &ps->capcounts, ps->ncounts + 1, sizeof *ps->counts))
            return s_fail_buf(ps, PD_ENOMEM);
        *idx = ps->ncounts++;
        ps->counts[*idx] = 0;
        return 0;
    }
    assert(ps->next < ps->ncounts);
    *idx = ps->next++;
    int rc = s_room(ps, 5);
    if (rc)
        return rc;
    if (is_map)
        msgpack_pack_map(&ps->pk, ps->counts[*idx]);
    else
        msgpack_pack_array(&ps->pk, ps->counts[*idx]);
    return 0;
}

/* Counts one element of container idx during the first pass. */
static int s_count(s_parser_t *ps, size_t idx, const uint8_t *at)
{
    if (ps->emit)
        return 0;
    if (ps->counts[idx] == UINT32_MAX)
        return s_fail(ps, at, "more than %" PRIu32 " elements in one array or object",
                      UINT32_MAX);
    ps->counts[idx]++;
    return 0;
}

/* Reads the 4 hex digits of a \\uXXXX escape into *v; false unless all 4
   are hex digits. */
static bool s_hex4(const uint8_t *p, const uint8_t *end, uint32_t *v)
{
    uint8_t b[2];
    size_t got = 0;
    if (end - p < 4 || sodium_hex2bin(b, sizeof b, (const char *) p, 4, NULL, &got, NULL) ||
        got != 2)
        return false;
    *v = (uint32_t) b[0] << 8 | b[1];
    return true;
}

/* Parses a string at ps->p (which is '"') and leaves its decoded bytes in
   ps->scratch. */
static int s_string_body(s_parser_t *ps)
{
    const uint8_t *open = ps->p;
    pd_buf_t *sb = &ps->scratch;
    pd_buf_reset(sb);
    ps->p++;
    for (;;) {
        /* copy a run of plain bytes at once */
        const uint8_t *run = ps->p;
        while (ps->p < ps->end && *ps->p >= 0x20 && *ps->p != '"' && *ps->p != '\\' &&
               *ps->p < 0x80)
            ps->p++;
        if (ps->p > run) {
            int rc = pd_buf_append(sb, run, (size_t) (ps->p - run));
            if (rc)
                return s_fail_buf(ps, rc);
        }
        if (ps->p >= ps->end)
            return s_fail(ps, open, "unterminated string: add the closing '\"'");
        uint8_t c = *ps->p;
        if (c == '"') {
            ps->p++;
            return 0;
        }
        if (c < 0x20)
            return s_fail(ps, ps->p,
                          "raw control character 0x%02X in a string: write it as \\u%04X",
                          c, c);
        if (c >= 0x80) {
            size_t n = s_utf8_len(ps->p, ps->end);
            if (n == 0)
                return s_fail(ps, ps->p,
                              "invalid UTF-8 byte 0x%02X in a string: the input must be UTF-8",
                              c);
            int rc = pd_buf_append(sb, ps->p, n);
            if (rc)
                return s_fail_buf(ps, rc);
            ps->p += n;
            continue;
        }
        /* backslash escape */
        const uint8_t *esc = ps->p;
        if (ps->end - ps->p < 2)
            return s_fail(ps, open, "unterminated string: add the closing '\"'");
        uint8_t e = ps->p[1];
        uint8_t one;
        uint8_t utf8[4];
        size_t n = 1;
        ps->p += 2;
        switch (e) {
        case '"': one = '"'; break;
        case '\\': one = '\\'; break;
        case '/': one = '/'; break;
        case 'b': one = '\b'; break;
        case 'f': one = '\f'; break;
        case 'n': one = '\n'; break;
        case 'r': one = '\r'; break;
        case 't': one = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (!s_hex4(ps->p, ps->end, &cp))
                return s_fail(ps, esc, "\\u must be followed by 4 hex digits");
            ps->p += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return s_fail(ps, esc,
                              "lone low surrogate \\u%04X in a string: it must follow a "
                              "high surrogate \\uD800-\\uDBFF",
                              (unsigned) cp);
            if (cp >= 0xd800 && cp <= 0xdbff) {
                uint32_t lo;
                if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
                    !s_hex4(ps->p + 2, ps->end, &lo) || lo < 0xdc00 || lo > 0xdfff)
                    return s_fail(ps, esc,
                                  "lone high surrogate \\u%04X in a string: it must be "
                                  "followed by a low surrogate \\uDC00-\\uDFFF",
                                  (unsigned) cp);
                ps->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            n = s_utf8_put(cp, utf8);
            break;
        }
        default: {
            char buf[24];
            return s_fail(ps, esc,
                          "invalid escape '\\' followed by %s in a string: use \\\" \\\\ \\/ "
                          "\\b \\f \\n \\r \\t or \\uXXXX",
                          s_found(ps, esc + 1, buf));
        }
        }
        int rc = pd_buf_append(sb, e == 'u' ? utf8 : &one, n);
        if (rc)
            return s_fail_buf(ps, rc);
    }
}

static int s_string(s_parser_t *ps)
{
    int rc = s_string_body(ps);
    if (rc || !ps->emit)
        return rc;
    size_t n = ps->scratch.len;
    if (n > UINT32_MAX)
        return s_fail_buf(ps, PD_ETOOBIG);
    rc = s_room(ps, 5 + n);
    if (rc)
        return rc;
    msgpack_pack_str(&ps->pk, n);
    msgpack_pack_str_body(&ps->pk, ps->scratch.data, n);
    return 0;
}

static bool s_digit(const s_parser_t *ps, const uint8_t *p)
{
    return p < ps->end && *p >= '0' && *p <= '9';
}

/* Reads one or more digits at ps->p; PD_EJSON ("expected a digit <where>")
   when there is none. */
static int s_digits(s_parser_t *ps, const char *where)
{
    char buf[24];
    if (!s_digit(ps, ps->p))
        return s_fail(ps, ps->p, "expected a digit %s, found %s", where, s_found(ps, ps->p, buf));
    while (s_digit(ps, ps->p))
        ps->p++;
    return 0;
}

static int s_number(s_parser_t *ps)
{
    const uint8_t *start = ps->p;
    bool neg = false, is_float = false;
    char buf[24];
    if (*ps->p == '-') {
        neg = true;
        ps->p++;
        if (ps->p < ps->end && *ps->p == 'I')
            return s_fail(ps, start, "Infinity is not JSON: use null or a string");
        if (!s_digit(ps, ps->p))
            return s_fail(ps, ps->p, "expected a digit after '-', found %s",
                          s_found(ps, ps->p, buf));
    }
    const uint8_t *digits = ps->p;
    if (*ps->p == '0') {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == 'x' || *ps->p == 'X'))
            return s_fail(ps, start, "hexadecimal numbers are not JSON: write it in decimal");
        if (s_digit(ps, ps->p))
            return s_fail(ps, start, "leading zeros are not allowed in a number");
    } else {
        while (s_digit(ps, ps->p))
            ps->p++;
    }
    const uint8_t *int_end = ps->p;
    if (ps->p < ps->end && *ps->p == '.') {
        is_float = true;
        ps->p++;
        if (s_digits(ps, "after '.' in a number"))
            return PD_EJSON;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        is_float = true;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (s_digits(ps, "in the exponent of a number"))
            return PD_EJSON;
    }
    if (!is_float) {
        /* magnitude as uint64, or fall back to a double on overflow */
        uint64_t mag = 0;
        bool fits = true;
        for (const uint8_t *q = digits; q < int_end && fits; q++) {
            unsigned d = (unsigned) (*q - '0');
            if (mag > (UINT64_MAX - d) / 10)
                fits = false;
            else
                mag = mag * 10 + d;
        }
        if (fits && neg && mag > (uint64_t) INT64_MAX + 1)
            fits = false;
        if (fits) {
            if (!ps->emit)
                return 0;
            int rc = s_room(ps, 9);
            if (rc)
                return rc;
            if (!neg)
                msgpack_pack_uint64(&ps->pk, mag);
            else if (mag == (uint64_t) INT64_MAX + 1)
                msgpack_pack_int64(&ps->pk, INT64_MIN);
            else
                msgpack_pack_int64(&ps->pk, -(int64_t) mag);
            return 0;
        }
    }
    /* strtod on a NUL-terminated copy of the validated token */
    size_t tlen = (size_t) (ps->p - start);
    pd_buf_t *sb = &ps->scratch;
    pd_buf_reset(sb);
    int rc = pd_buf_append(sb, start, tlen);
    if (!rc)
        rc = pd_buf_append(sb, "", 1);
    if (rc)
        return s_fail_buf(ps, rc);
    char *tok = (char *) sb->data;
    s_swap_point(tok, '.', s_locale_point());
    double v = strtod(tok, NULL);
    if (isinf(v))
        return s_fail(ps, start,
                      "number %.*s is out of range of a double (about 1.8e308 at most)",
                      (int) (tlen > 40 ? 40 : tlen), (const char *) start);
    if (!ps->emit)
        return 0;
    rc = s_room(ps, 9);
    if (rc)
        return rc;
    msgpack_pack_double(&ps->pk, v);
    return 0;
}

static int s_literal(s_parser_t *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t) (ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) {
        const uint8_t *q = ps->p;
        size_t i = 0;
        while (i < n && q < ps->end && *q == (uint8_t) word[i])
            q++, i++;
        char buf[24];
        return s_fail(ps, q, "expected '%s', found %s", word, s_found(ps, q, buf));
    }
    ps->p += n;
    if (!ps->emit)
        return 0;
    int rc = s_room(ps, 1);
    if (rc)
        return rc;
    if (word[0] == 't')
        msgpack_pack_true(&ps->pk);
    else if (word[0] == 'f')
        msgpack_pack_false(&ps->pk);
    else
        msgpack_pack_nil(&ps->pk);
    return 0;
}

static int s_value(s_parser_t *ps, int depth);

/* Reads an object key and its ':' at ps->p, counting it as one member of the
   container idx. */
static int s_member_key(s_parser_t *ps, size_t idx)
{
    char buf[24];
    int rc;
    if (ps->p >= ps->end || *ps->p != '"')
        return s_fail(ps, ps->p, "expected a string key in double quotes, found %s",
                      s_found(ps, ps->p, buf));
    if ((rc = s_count(ps, idx, ps->p)) || (rc = s_string(ps)))
        return rc;
    s_skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != ':')
        return s_fail(ps, ps->p, "expected ':' after an object key, found %s",
                      s_found(ps, ps->p, buf));
    ps->p++;
    return 0;
}

/* An array (is_obj false) or an object at ps->p: its elements, or its
   "key": value members, separated by ',' up to the closing bracket. */
static int s_container(s_parser_t *ps, int depth, bool is_obj)
{
    char buf[24];
    size_t idx;
    const char close = is_obj ? '}' : ']';
    if (depth >= PD_MAX_DEPTH)
        return s_fail(ps, ps->p, "nesting deeper than %d", PD_MAX_DEPTH);
    int rc = s_open(ps, is_obj, &idx);
    if (rc)
        return rc;
    ps->p++; /* '[' or '{' */
    s_skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return 0;
    }
    for (;;) {
        rc = is_obj ? s_member_key(ps, idx) : s_count(ps, idx, ps->p);
        if (rc || (rc = s_value(ps, depth + 1)))
            return rc;
        s_skip_ws(ps);
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return 0;
        }
        if (ps->p >= ps->end || *ps->p != ',')
            return s_fail(ps, ps->p, "expected ',' or '%c' after %s, found %s", close,
                          is_obj ? "an object member" : "an array element",
                          s_found(ps, ps->p, buf));
        ps->p++;
        s_skip_ws(ps);
        if (ps->p < ps->end && *ps->p == close)
            return s_fail(ps, ps->p,
                          "expected %s after ',', found '%c': trailing commas are not "
                          "allowed",
                          is_obj ? "a string key" : "a value", close);
    }
}

static int s_array(s_parser_t *ps, int depth) { return s_container(ps, depth, false); }

static int s_object(s_parser_t *ps, int depth) { return s_container(ps, depth, true); }

static int s_value(s_parser_t *ps, int depth)
{
    char buf[24];
    s_skip_ws(ps);
    if (ps->p >= ps->end)
        return s_fail(ps, ps->p, "expected a JSON value, found end of input");
    switch (*ps->p) {
    case '[': return s_array(ps, depth);
    case '{': return s_object(ps, depth);
    case '"': return s_string(ps);
    case 't': return s_literal(ps, "true");
    case 'f': return s_literal(ps, "false");
    case 'n': return s_literal(ps, "null");
    case 'N': return s_fail(ps, ps->p, "NaN is not JSON: use null or a string");
    case 'I': return s_fail(ps, ps->p, "Infinity is not JSON: use null or a string");
    case '+': return s_fail(ps, ps->p, "a number cannot start with '+': remove the sign");
    case '.':
        return s_fail(ps, ps->p, "a number cannot start with '.': write a digit before it");
    case '\'': return s_fail(ps, ps->p, "strings take double quotes, not single quotes");
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
            return s_number(ps);
        return s_fail(ps, ps->p,
                      "expected a JSON value (object, array, string, number, true, false "
                      "or null), found %s",
                      s_found(ps, ps->p, buf));
    }
}

/* One whole pass over the text: a value, then only whitespace. */
static int s_pass(s_parser_t *ps)
{
    char buf[24];
    ps->p = ps->start;
    s_skip_ws(ps);
    if (ps->p >= ps->end)
        return s_fail(ps, ps->p, "expected a JSON value, found end of input (the input is empty)");
    if (ps->end - ps->p >= 3 && memcmp(ps->p, "\xEF\xBB\xBF", 3) == 0)
        return s_fail(ps, ps->p, "the input starts with a UTF-8 byte-order mark: remove it");
    int rc = s_value(ps, 0);
    if (rc)
        return rc;
    s_skip_ws(ps);
    if (ps->p < ps->end)
        return s_fail(ps, ps->p,
                      "unexpected %s after the JSON value: give one value per line",
                      s_found(ps, ps->p, buf));
    return 0;
}

int pd_json_to_msgpack(const char *text, size_t len, pd_buf_t *out, char *err, size_t errcap)
{
    assert(text || len == 0);
    assert(out);
    if (err && errcap)
        err[0] = 0;
    s_parser_t ps;
    memset(&ps, 0, sizeof ps);
    ps.start = (const uint8_t *) (text ? text : "");
    ps.end = ps.start + len;
    ps.out = out;
    ps.err = err;
    ps.errcap = errcap;
    pd_buf_init(&ps.scratch);
    ps.scratch.max = SIZE_MAX / 2;
    pd_packer_init(&ps.pk, out);

    size_t before = out->len;
    int rc = s_pass(&ps);
    if (!rc) {
        ps.emit = true;
        rc = s_pass(&ps);
        assert(rc || ps.next == ps.ncounts);
    }
    if (rc && out->len > before)
        out->len = before;
    free(ps.counts);
    pd_buf_free(&ps.scratch);
    return rc;
}

/* ---- msgpack -> JSON ----------------------------------------------------- */

static int s_put(pd_buf_t *out, const char *s) { return pd_buf_append(out, s, strlen(s)); }

/* Appends s[0..n) as a JSON string with quotes. */
static int s_put_string(pd_buf_t *out, const uint8_t *s, size_t n)
{
    const uint8_t *end = s + n;
    int rc = pd_buf_append(out, "\"", 1);
    while (!rc && s < end) {
        const uint8_t *run = s;
        while (s < end && *s >= 0x20 && *s != '"' && *s != '\\' && *s < 0x80)
            s++;
        if (s > run && (rc = pd_buf_append(out, run, (size_t) (s - run))))
            break;
        if (s >= end)
            break;
        uint8_t c = *s;
        char esc[8];
        if (c >= 0x80) {
            size_t len = s_utf8_len(s, end);
            if (len) {
                rc = pd_buf_append(out, s, len);
                s += len;
            } else {
                rc = s_put(out, "\\ufffd");
                s++;
            }
            continue;
        }
        switch (c) {
        case '"': strcpy(esc, "\\\""); break;
        case '\\': strcpy(esc, "\\\\"); break;
        case '\b': strcpy(esc, "\\b"); break;
        case '\f': strcpy(esc, "\\f"); break;
        case '\n': strcpy(esc, "\\n"); break;
        case '\r': strcpy(esc, "\\r"); break;
        case '\t': strcpy(esc, "\\t"); break;
        default: snprintf(esc, sizeof esc, "\\u%04x", c); break;
        }
        rc = s_put(out, esc);
        s++;
    }
    return rc ? rc : pd_buf_append(out, "\"", 1);
}

/* bin prints as a base64 string (libsodium's standard alphabet, padded). */
static int s_put_base64(pd_buf_t *out, const uint8_t *p, size_t n)
{
    size_t b64 = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL); /* with its NUL */
    int rc = pd_buf_reserve(out, b64 + 1);
    if (rc)
        return rc;
    char *w = (char *) out->data + out->len;
    w[0] = '"';
    sodium_bin2base64(w + 1, b64, p, n, sodium_base64_VARIANT_ORIGINAL);
    w[b64] = '"'; /* over the NUL */
    out->len += b64 + 1;
    return 0;
}

/* Shortest of %.Ng (N from lo to hi) that reads back to v, with a '.' or an
   exponent added so that it reads back as a float; "null" when not finite. */
static void s_format_float(double v, bool single, char buf[40])
{
    if (!isfinite(v)) {
        strcpy(buf, "null");
        return;
    }
    char point = s_locale_point();
    int lo = single ? 6 : 15, hi = single ? 9 : 17;
    for (int prec = lo; prec <= hi; prec++) {
        snprintf(buf, 40, "%.*g", prec, v);
        bool same = single ? strtof(buf, NULL) == (float) v : strtod(buf, NULL) == v;
        if (same)
            break;
    }
    s_swap_point(buf, point, '.');
    if (!strpbrk(buf, ".e"))
        strcat(buf, ".0");
}

#define S_KEY_TEXT_MAX 4096 /* JSON text of a non-string map key, bytes at most */

static int s_json_value(pd_rd_t *r, pd_buf_t *out);

static int s_json_key(pd_rd_t *r, pd_buf_t *out)
{
    if (pd_rd_peek(r) == PD_MP_STR) {
        const char *s;
        uint32_t n;
        if (pd_rd_str(r, &s, &n))
            return PD_EPROTO;
        return s_put_string(out, (const uint8_t *) s, n);
    }
    /* A key of another kind becomes the string of its JSON text, at most
       S_KEY_TEXT_MAX bytes: escaping that text again at every level of keys
       nested in keys doubles it each time, and a frame of a few hundred bytes
       could otherwise cost gigabytes and minutes (found by fuzz_msg). */
    pd_buf_t tmp;
    pd_buf_init(&tmp);
    tmp.max = out->max && out->max < S_KEY_TEXT_MAX ? out->max : S_KEY_TEXT_MAX;
    int rc = s_json_value(r, &tmp);
    if (!rc)
        rc = s_put_string(out, tmp.data, tmp.len);
    pd_buf_free(&tmp);
    return rc;
}

/* The n elements of an array (is_map false), or the n key/value pairs of a
   map, as a JSON array or object. */
static int s_json_items(pd_rd_t *r, pd_buf_t *out, uint32_t n, bool is_map)
{
    int rc = s_put(out, is_map ? "{" : "[");
    for (uint32_t i = 0; i < n && !rc; i++) {
        if (i)
            rc = s_put(out, ",");
        if (!rc && is_map)
            rc = s_json_key(r, out);
        if (!rc && is_map)
            rc = s_put(out, ":");
        if (!rc)
            rc = s_json_value(r, out);
    }
    return rc ? rc : s_put(out, is_map ? "}" : "]");
}

static int s_json_value(pd_rd_t *r, pd_buf_t *out)
{
    char num[40];
    switch (pd_rd_peek(r)) {
    case PD_MP_NIL:
        return pd_rd_nil(r) ? PD_EPROTO : s_put(out, "null");
    case PD_MP_BOOL: {
        bool b;
        return pd_rd_bool(r, &b) ? PD_EPROTO : s_put(out, b ? "true" : "false");
    }
    case PD_MP_UINT: {
        uint64_t u;
        if (pd_rd_uint(r, &u))
            return PD_EPROTO;
        snprintf(num, sizeof num, "%" PRIu64, u);
        return s_put(out, num);
    }
    case PD_MP_INT: {
        int64_t i;
        if (pd_rd_int(r, &i))
            return PD_EPROTO;
        snprintf(num, sizeof num, "%" PRId64, i);
        return s_put(out, num);
    }
    case PD_MP_FLOAT: {
        bool single = r->p[0] == 0xca;
        double d;
        if (pd_rd_double(r, &d))
            return PD_EPROTO;
        s_format_float(d, single, num);
        return s_put(out, num);
    }
    case PD_MP_STR: {
        const char *s;
        uint32_t n;
        if (pd_rd_str(r, &s, &n))
            return PD_EPROTO;
        return s_put_string(out, (const uint8_t *) s, n);
    }
    case PD_MP_BIN: {
        const void *p;
        uint32_t n;
        if (pd_rd_bin(r, &p, &n))
            return PD_EPROTO;
        return s_put_base64(out, p, n);
    }
    case PD_MP_ARRAY: {
        uint32_t n;
        if (pd_rd_array(r, &n))
            return PD_EPROTO;
        return s_json_items(r, out, n, false);
    }
    case PD_MP_MAP: {
        uint32_t n;
        if (pd_rd_map(r, &n))
            return PD_EPROTO;
        return s_json_items(r, out, n, true);
    }
    case PD_MP_INVALID:
    default:
        return PD_EPROTO;
    }
}

int pd_msgpack_to_json(const void *mp, size_t len, pd_buf_t *out)
{
    assert(out);
    assert(mp || len == 0);
    /* the check bounds the recursion below by PD_MAX_DEPTH */
    int rc = pd_mp_check(mp, len, PD_MAX_DEPTH, NULL);
    if (rc)
        return rc;
    size_t before = out->len;
    pd_rd_t r;
    pd_rd_init(&r, mp, len);
    rc = s_json_value(&r, out);
    if (!rc && !pd_rd_at_end(&r))
        rc = PD_EPROTO;
    if (rc)
        out->len = before;
    return rc;
}
