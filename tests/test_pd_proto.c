/* Unit tests for pd_proto: every message round-trips, every required field
   is required, every field refuses the wrong kind, bounds hold, and
   docs/protocol.md lists exactly the codec's messages and fields. */
#include "pd_error.h"
#include "pd_file.h"
#include "pd_proto.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pd_buf_t buf;
static msgpack_packer pk;
static pd_msg_t m;

static void setup(void) { pd_buf_init(&buf), pd_packer_init(&pk, &buf); }
static void teardown(void) { pd_buf_free(&buf); }
TestSuite(proto, .init = setup, .fini = teardown);

static void *s_member(const pd_proto_field_t *f, void *m) { return (char *) m + f->off; }

static void s_assert_same(const pd_proto_msg_t *d, const pd_proto_field_t *f, void *a, void *b)
{
    void *x = s_member(f, a), *y = s_member(f, b);
    switch (f->kind) {
    case PD_FK_UINT: cr_assert_eq(*(uint64_t *) x, *(uint64_t *) y, "%s.%s", d->name, f->key); break;
    case PD_FK_INT: cr_assert_eq(*(int64_t *) x, *(int64_t *) y, "%s.%s", d->name, f->key); break;
    case PD_FK_DOUBLE: cr_assert_eq(*(double *) x, *(double *) y, "%s.%s", d->name, f->key); break;
    case PD_FK_BOOL: cr_assert_eq(*(bool *) x, *(bool *) y, "%s.%s", d->name, f->key); break;
    case PD_FK_STR: cr_assert_str_eq(x, y, "%s.%s", d->name, f->key); break;
    case PD_FK_TEXT: {
        pd_str_t *s = x, *t = y;
        cr_assert(s->len == t->len && memcmp(s->p, t->p, s->len) == 0, "%s.%s", d->name, f->key);
        break;
    }
    case PD_FK_BIN: {
        pd_bin_t *s = x, *t = y;
        cr_assert(s->len == t->len && memcmp(s->p, t->p, s->len) == 0, "%s.%s", d->name, f->key);
        break;
    }
    default: {
        pd_raw_t *s = x, *t = y;
        cr_assert(s->len == t->len && memcmp(s->p, t->p, s->len) == 0, "%s.%s", d->name, f->key);
    }
    }
}

/* Packs d's message from the struct at m by hand, leaving out field skip
   and writing a value of the wrong kind for field wrong (-1: none). */
static void s_pack_except(const pd_proto_msg_t *d, void *mm, int skip, int wrong)
{
    pd_buf_reset(&buf);
    uint32_t n = d->nfields - (skip >= 0);
    msgpack_pack_map(&pk, n + 2);
    pd_pack_kv_uint(&pk, "v", PD_PROTO_VERSION);
    pd_pack_kv_str(&pk, "t", d->type);
    for (int i = 0; i < (int) d->nfields; i++) {
        const pd_proto_field_t *f = &d->fields[i];
        if (i == skip)
            continue;
        if (i != wrong) {
            cr_assert_eq(pd_proto_pack_field(&pk, f, mm), 0);
            continue;
        }
        pd_pack_cstr(&pk, f->key);
        /* The wrong kind: a string for numbers, booleans and containers; a
           number for strings and bytes. */
        if (f->kind == PD_FK_STR || f->kind == PD_FK_TEXT || f->kind == PD_FK_BIN)
            msgpack_pack_uint64(&pk, 7);
        else
            pd_pack_cstr(&pk, "wrong");
    }
}

/* Encodes the struct at m as d's message and parses it into the static m. */
static void s_encode_parse(const pd_proto_msg_t *d, const void *mm)
{
    pd_buf_reset(&buf);
    cr_assert_eq(pd_proto_encode(&pk, d, mm), 0, "%s", d->name);
    cr_assert_eq(pd_msg_parse(&m, buf.data, buf.len), 0, "%s: %s", d->name, m.why);
}

/* Runs check over every message, with a a sample of it (pd_proto_example)
   and b room for one. */
static void s_each(void (*check)(const pd_proto_msg_t *d, void *a, void *b))
{
    for (size_t k = 0; k < pd_proto_count; k++) {
        const pd_proto_msg_t *d = pd_proto_all[k];
        void *a = malloc(d->size), *b = malloc(d->size);
        pd_proto_example(d, a);
        check(d, a, b);
        free(a);
        free(b);
    }
}

/* ---- every message ----------------------------------------------------------- */

Test(proto, every_message_fits_the_parser)
{
    for (size_t k = 0; k < pd_proto_count; k++) {
        const pd_proto_msg_t *d = pd_proto_all[k];
        cr_assert_leq(d->nfields + 2, PD_MSG_MAX_FIELDS, "%s has too many fields", d->name);
        cr_assert_lt(strlen(d->type), sizeof m.type, "%s", d->name);
        for (uint32_t i = 0; i < d->nfields; i++)
            for (uint32_t j = 0; j < i; j++)
                cr_assert_str_neq(d->fields[i].key, d->fields[j].key, "%s", d->name);
    }
}

static void s_round_trips(const pd_proto_msg_t *d, void *a, void *b)
{
    s_encode_parse(d, a);
    cr_assert_str_eq(m.type, d->type);
    cr_assert_eq(m.nfields, (int) d->nfields + 2, "%s", d->name);
    cr_assert_eq(pd_proto_decode(&m, d, b), 0, "%s: %s", d->name, m.why);
    for (uint32_t i = 0; i < d->nfields; i++) {
        s_assert_same(d, &d->fields[i], a, b);
        if (d->fields[i].presence == PD_FP_OPT)
            cr_assert(*(bool *) ((char *) b + d->fields[i].has_off), "%s.%s", d->name,
                      d->fields[i].key);
    }
}

Test(proto, every_message_round_trips) { s_each(s_round_trips); }

static void s_optional_absent(const pd_proto_msg_t *d, void *a, void *b)
{
    uint32_t opt = 0;
    for (uint32_t i = 0; i < d->nfields; i++)
        if (d->fields[i].presence == PD_FP_OPT) {
            *(bool *) ((char *) a + d->fields[i].has_off) = false;
            opt++;
        }
    s_encode_parse(d, a);
    cr_assert_eq(m.nfields, (int) (d->nfields - opt + 2), "%s", d->name);
    cr_assert_eq(pd_proto_decode(&m, d, b), 0, "%s: %s", d->name, m.why);
    for (uint32_t i = 0; i < d->nfields; i++)
        if (d->fields[i].presence == PD_FP_OPT)
            cr_assert_not(*(bool *) ((char *) b + d->fields[i].has_off));
}

Test(proto, optional_fields_unset_are_not_written_and_read_as_absent) { s_each(s_optional_absent); }

static void s_required_missing(const pd_proto_msg_t *d, void *a, void *b)
{
    for (uint32_t i = 0; i < d->nfields; i++) {
        const pd_proto_field_t *f = &d->fields[i];
        s_pack_except(d, a, (int) i, -1);
        cr_assert_eq(pd_msg_parse(&m, buf.data, buf.len), 0, "%s", m.why);
        int rc = pd_proto_decode(&m, d, b);
        if (f->presence != PD_FP_REQ) {
            cr_assert_eq(rc, 0, "%s without %s: %s", d->name, f->key, m.why);
            continue;
        }
        cr_assert_eq(rc, PD_ENOFIELD, "%s without %s", d->name, f->key);
        char want[160];
        snprintf(want, sizeof want, "message '%s': field '%s' is missing", d->type, f->key);
        cr_assert_str_eq(m.why, want);
    }
}

Test(proto, every_required_field_missing_is_enofield) { s_each(s_required_missing); }

static void s_wrong_kind(const pd_proto_msg_t *d, void *a, void *b)
{
    for (uint32_t i = 0; i < d->nfields; i++) {
        const pd_proto_field_t *f = &d->fields[i];
        if (f->kind == PD_FK_RAW)
            continue; /* any value is right */
        s_pack_except(d, a, -1, (int) i);
        cr_assert_eq(pd_msg_parse(&m, buf.data, buf.len), 0, "%s", m.why);
        cr_assert_eq(pd_proto_decode(&m, d, b), PD_EPROTO, "%s.%s", d->name, f->key);
        char want[80];
        snprintf(want, sizeof want, "field '%s' is not", f->key);
        cr_assert(strstr(m.why, want), "%s.%s: %s", d->name, f->key, m.why);
    }
}

Test(proto, every_field_of_the_wrong_kind_is_eproto_naming_it) { s_each(s_wrong_kind); }

Test(proto, decoding_checks_the_type)
{
    pd_m_hello_t h = {.req = 3};
    s_encode_parse(&pd_proto_hello, &h);
    pd_m_accepted_t a;
    cr_assert_eq(pd_m_accepted_decode(&m, &a), PD_EPROTO);
    cr_assert_str_eq(m.why, "message 'hello' is not 'accepted'");
    /* two messages of one type on different sockets */
    pd_m_w_welcome_t w = {.has_hb_ms = true, .hb_ms = 250};
    pd_m_welcome_t c;
    s_encode_parse(&pd_proto_w_welcome, &w);
    cr_assert_eq(pd_m_welcome_decode(&m, &c), 0);
    cr_assert_eq(pd_m_w_welcome_decode(&m, &w), 0);
    cr_assert_eq(w.hb_ms, 250);
    cr_assert_not(w.has_liveness);
}

/* ---- typed use --------------------------------------------------------------- */

static int s_pack_args(msgpack_packer *p, const void *ctx)
{
    const int *n = ctx;
    int rc = msgpack_pack_array(p, (size_t) *n);
    for (int i = 0; i < *n; i++)
        rc |= msgpack_pack_int(p, i * i);
    return rc;
}

Test(proto, submit_streams_its_args_and_reads_back_borrowed)
{
    int n = 3;
    pd_m_submit_t s = {.req = 9, .args = {.pack = s_pack_args, .ctx = &n},
                       .has_retries = true, .retries = 5,
                       .has_token = true, .token = {"tok", 3}};
    strcpy(s.mod, "abcd");
    strcpy(s.fn, "square");
    s_encode_parse(&pd_proto_submit, &s);
    pd_m_submit_t r;
    cr_assert_eq(pd_m_submit_decode(&m, &r), 0, "%s", m.why);
    cr_assert_eq(r.req, 9);
    cr_assert_str_eq(r.mod, "abcd");
    cr_assert_str_eq(r.fn, "square");
    cr_assert(r.has_retries && r.retries == 5);
    cr_assert_not(r.has_timeout_ms);
    cr_assert_not(r.has_shared);
    cr_assert_eq(r.token.len, 3);
    cr_assert_eq(memcmp(r.token.p, "tok", 3), 0);
    cr_assert(r.args.p >= buf.data && r.args.p < buf.data + buf.len, "borrowed from the frame");
    const uint8_t want[] = {0x93, 0x00, 0x01, 0x04};
    cr_assert_eq(r.args.len, sizeof want);
    cr_assert_eq(memcmp(r.args.p, want, sizeof want), 0);
}

Test(proto, unknown_fields_are_ignored)
{
    pd_msg_begin(&pk, "accepted", 4);
    pd_pack_kv_uint(&pk, "req", 1);
    pd_pack_kv_uint(&pk, "first", 10);
    pd_pack_kv_uint(&pk, "n", 2);
    pd_pack_kv_str(&pk, "from_the_future", "x");
    cr_assert_eq(pd_msg_parse(&m, buf.data, buf.len), 0);
    pd_m_accepted_t a;
    cr_assert_eq(pd_m_accepted_decode(&m, &a), 0, "%s", m.why);
    cr_assert_eq(a.first, 10);
    cr_assert_eq(a.n, 2);
}

Test(proto, error_keeps_req_optional_and_msg_borrowed)
{
    pd_m_error_t e = {.msg = pd_str_of("queue full")};
    strcpy(e.code, "PD_EOVERLOAD");
    s_encode_parse(&pd_proto_error, &e);
    cr_assert_not(pd_msg_has(&m, "req"));
    pd_m_error_t r;
    cr_assert_eq(pd_m_error_decode(&m, &r), 0);
    cr_assert_not(r.has_req);
    cr_assert_str_eq(r.code, "PD_EOVERLOAD");
    char msg[8];
    pd_str_copy(r.msg, msg, sizeof msg);
    cr_assert_str_eq(msg, "queue f", "cut to its buffer");
}

Test(proto, raw_fields_with_nothing_write_nil_or_empty)
{
    pd_m_node_done_t d = {.task = 1, .node = 2};
    s_encode_parse(&pd_proto_node_done, &d);
    const uint8_t *p;
    size_t len;
    cr_assert_eq(pd_msg_raw(&m, "val", &p, &len), 0);
    cr_assert_eq(len, 1);
    cr_assert_eq(p[0], 0xc0);
    pd_m_done_t r = {0};
    s_encode_parse(&pd_proto_done, &r);
    cr_assert_eq(pd_msg_raw(&m, "res", &p, &len), 0);
    cr_assert_eq(p[0], 0x90);
}

/* ---- bounds ------------------------------------------------------------------ */

Test(proto, strings_over_their_cap_are_etoobig)
{
    pd_msg_begin(&pk, "shr_drop", 1);
    char big[PD_P_HASH + 1];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    pd_pack_kv_str(&pk, "hash", big);
    cr_assert_eq(pd_msg_parse(&m, buf.data, buf.len), 0);
    pd_m_shr_drop_t s;
    cr_assert_eq(pd_m_shr_drop_decode(&m, &s), PD_ETOOBIG);
    cr_assert_str_eq(m.why, "message 'shr_drop': field 'hash' is too long");
    big[PD_P_HASH - 1] = 0; /* the longest that fits */
    pd_buf_reset(&buf);
    pd_msg_begin(&pk, "shr_drop", 1);
    pd_pack_kv_str(&pk, "hash", big);
    cr_assert_eq(pd_msg_parse(&m, buf.data, buf.len), 0);
    cr_assert_eq(pd_m_shr_drop_decode(&m, &s), 0);
    cr_assert_eq(strlen(s.hash), PD_P_HASH - 1);
}

/* A message of the test's own, to reach every bound. */
typedef struct {
    uint64_t n;
    pd_bin_t b;
    pd_raw_t a;
    char end;
} s_bounded_t;
static const pd_proto_field_t s_bounded_fields[] = {
    {"n", 1, PD_FK_UINT, PD_FP_REQ, 10, offsetof(s_bounded_t, n), 0},
    {"b", 1, PD_FK_BIN, PD_FP_DEF, 4, offsetof(s_bounded_t, b), 0},
    {"a", 1, PD_FK_ARRAY, PD_FP_DEF, 2, offsetof(s_bounded_t, a), 0},
};
static const pd_proto_msg_t s_bounded = {"bounded", "bounded", "", s_bounded_fields, 3,
                                         sizeof(s_bounded_t)};

static int s_decode_bounded(uint64_t n, uint32_t blen, int alen)
{
    static const uint8_t arr[] = {0x93, 1, 2, 3};
    s_bounded_t v = {.n = n, .b = {"12345", blen}, .a = {.p = arr, .len = sizeof arr}};
    if (alen == 2)
        v.a = (pd_raw_t){.p = (const uint8_t *) "\x92\x01\x02", .len = 3};
    s_encode_parse(&s_bounded, &v);
    return pd_proto_decode(&m, &s_bounded, &v);
}

Test(proto, numbers_bytes_and_arrays_over_their_bound_are_einval)
{
    cr_assert_eq(s_decode_bounded(10, 4, 2), 0, "%s", m.why);
    cr_assert_eq(s_decode_bounded(11, 4, 2), PD_EINVAL);
    cr_assert_str_eq(m.why, "message 'bounded': field 'n' is over 10");
    cr_assert_eq(s_decode_bounded(1, 5, 2), PD_EINVAL);
    cr_assert_str_eq(m.why, "message 'bounded': field 'b' is over 4 bytes");
    cr_assert_eq(s_decode_bounded(1, 1, 3), PD_EINVAL);
    cr_assert_str_eq(m.why, "message 'bounded': field 'a' has more than 2 elements");
}

/* ---- docs/protocol.md -------------------------------------------------------- */

#define S_MAXF 64
typedef struct {
    char heading[96];
    char type[32];
    char fields[S_MAXF][32];
    int nfields;
} s_doc_msg_t;

static s_doc_msg_t s_doc[512];
static int s_ndoc;

static s_doc_msg_t *s_doc_entry(const char *heading, const char *type)
{
    for (int i = 0; i < s_ndoc; i++)
        if (!strcmp(s_doc[i].heading, heading) && !strcmp(s_doc[i].type, type))
            return &s_doc[i];
    cr_assert_lt(s_ndoc, 512);
    s_doc_msg_t *e = &s_doc[s_ndoc++];
    memset(e, 0, sizeof *e);
    snprintf(e->heading, sizeof e->heading, "%s", heading);
    snprintf(e->type, sizeof e->type, "%s", type);
    return e;
}

static bool s_doc_has(const s_doc_msg_t *e, const char *field)
{
    for (int i = 0; i < e->nfields; i++)
        if (!strcmp(e->fields[i], field))
            return true;
    return false;
}

/* Adds the fields a code span lists: "req, ids: ranges, max?: uint (...)":
   the name that starts each comma-separated part (commas inside brackets,
   braces and parentheses do not separate). */
static void s_doc_add_fields(s_doc_msg_t *e, const char *s, size_t n)
{
    int depth = 0;
    bool start = true;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (start && depth == 0 && (islower((unsigned char) c) || c == '_')) {
            char name[32];
            size_t k = 0;
            while (i < n && k < sizeof name - 1
                   && (islower((unsigned char) s[i]) || isdigit((unsigned char) s[i]) || s[i] == '_'))
                name[k++] = s[i++];
            name[k] = 0;
            if (!s_doc_has(e, name) && e->nfields < S_MAXF)
                snprintf(e->fields[e->nfields++], sizeof e->fields[0], "%s", name);
            start = false;
            i--;
            continue;
        }
        if (c == '[' || c == '{' || c == '(')
            depth++;
        else if ((c == ']' || c == '}' || c == ')') && depth > 0)
            depth--;
        else if (c == ',' && depth == 0)
            start = true;
        else if (c != ' ')
            start = false;
    }
}

/* Reads the code spans of text: those of the form "type {fields}" anywhere,
   and, when e is not NULL, every span outside parentheses as a field list. */
static void s_doc_spans(const char *heading, const char *text, size_t n, s_doc_msg_t *e)
{
    int parens = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '(')
            parens++;
        else if (text[i] == ')' && parens > 0)
            parens--;
        if (text[i] != '`')
            continue;
        const char *s = text + i + 1;
        const char *end = memchr(s, '`', n - (size_t) (s - text));
        if (!end)
            return;
        size_t len = (size_t) (end - s);
        size_t t = 0;
        while (t < len && (islower((unsigned char) s[t]) || s[t] == '_'))
            t++;
        if (t > 0 && t + 2 < len && s[t] == ' ' && s[t + 1] == '{' && s[len - 1] == '}') {
            char type[32];
            snprintf(type, sizeof type, "%.*s", (int) t, s);
            s_doc_add_fields(s_doc_entry(heading, type), s + t + 2, len - t - 3);
        } else if (e && parens == 0) {
            s_doc_add_fields(e, s, len);
        }
        i = (size_t) (end - text);
    }
}

/* Splits a table row into cells (pointers into line, lengths). */
static int s_cells(const char *line, const char **cell, size_t *len, int max)
{
    int n = 0;
    const char *p = strchr(line, '|');
    while (p && n < max) {
        const char *q = strchr(p + 1, '|');
        if (!q)
            break;
        cell[n] = p + 1;
        len[n++] = (size_t) (q - p - 1);
        p = q;
    }
    return n;
}

/* Reads docs/protocol.md: per heading, the messages its tables list (first
   cell `type`, a "fields" column) and every "`type {fields}`" span. */
static void s_read_doc(char **text_out)
{
    const char *src = getenv("PLAYDOH_SOURCE_ROOT");
    cr_assert_not_null(src, "PLAYDOH_SOURCE_ROOT is not set");
    char path[4096];
    snprintf(path, sizeof path, "%s/docs/protocol.md", src);
    char *text;
    size_t n;
    cr_assert_eq(pd_file_read(path, 1 << 20, &text, &n), 0, "%s", path);
    *text_out = text; /* the caller frees it */
    char heading[96] = "";
    int fields_col = -1;
    static char para[1 << 16];
    size_t plen = 0;
    char *save = NULL;
    static char copy[1 << 20];
    memcpy(copy, text, n + 1);
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        bool table = line[0] == '|';
        if (table || line[0] == '#') { /* a paragraph ends */
            s_doc_spans(heading, para, plen, NULL);
            plen = 0;
        }
        if (line[0] == '#') {
            const char *h = line + strspn(line, "#");
            snprintf(heading, sizeof heading, "%s", h + strspn(h, " "));
            fields_col = -1;
            continue;
        }
        if (!table) {
            size_t l = strlen(line);
            cr_assert_lt(plen + l + 1, sizeof para);
            memcpy(para + plen, line, l);
            para[plen + l] = ' ';
            plen += l + 1;
            continue;
        }
        const char *cell[16];
        size_t len[16];
        int nc = s_cells(line, cell, len, 16);
        if (strncmp(line, "|--", 3) == 0 || strncmp(line, "|-", 2) == 0)
            continue;
        bool header = save && strncmp(save, "|-", 2) == 0;
        if (header) {
            fields_col = -1;
            for (int c = 0; c < nc; c++)
                if (len[c] >= 8 && strncmp(cell[c], " fields ", 8) == 0)
                    fields_col = c;
            continue;
        }
        s_doc_msg_t *e = NULL;
        if (fields_col > 0 && nc > fields_col && cell[0][1] == '`') {
            char type[32];
            const char *t = cell[0] + 2;
            size_t k = strcspn(t, "`");
            snprintf(type, sizeof type, "%.*s", (int) k, t);
            e = s_doc_entry(heading, type);
        }
        for (int c = 1; c < nc; c++)
            s_doc_spans(heading, cell[c], len[c], c == fields_col ? e : NULL);
    }
    s_doc_spans(heading, para, plen, NULL);
}

/* Fields every client request carries, documented once in prose. */
static bool s_common(const char *field) { return strcmp(field, "owner_token") == 0; }

Test(proto, the_doc_lists_every_message_and_field_and_no_other)
{
    char *text;
    s_read_doc(&text);
    cr_assert(strstr(text, "`owner_token: bin`"), "the doc says every request carries owner_token");
    free(text);
    /* the codec -> the doc */
    for (size_t k = 0; k < pd_proto_count; k++) {
        const pd_proto_msg_t *d = pd_proto_all[k];
        s_doc_msg_t *e = NULL;
        for (int i = 0; i < s_ndoc; i++)
            if (!strcmp(s_doc[i].heading, d->doc) && !strcmp(s_doc[i].type, d->type))
                e = &s_doc[i];
        cr_expect_not_null(e, "docs/protocol.md, \"%s\": no message '%s' (%s)", d->doc, d->type,
                           d->name);
        if (!e)
            continue;
        for (uint32_t i = 0; i < d->nfields; i++)
            cr_expect(s_doc_has(e, d->fields[i].key) || s_common(d->fields[i].key),
                      "docs/protocol.md, \"%s\": '%s' has no field '%s'", d->doc, d->type,
                      d->fields[i].key);
    }
    /* the doc -> the codec: every message it names exists, every field it
       gives one exists in a message of that type */
    for (int i = 0; i < s_ndoc; i++) {
        const s_doc_msg_t *e = &s_doc[i];
        bool known = false;
        for (size_t k = 0; k < pd_proto_count; k++)
            known |= !strcmp(pd_proto_all[k]->type, e->type);
        cr_expect(known, "docs/protocol.md, \"%s\": message '%s' is not in the codec", e->heading,
                  e->type);
        for (int j = 0; known && j < e->nfields; j++) {
            bool found = false;
            for (size_t k = 0; k < pd_proto_count; k++) {
                const pd_proto_msg_t *d = pd_proto_all[k];
                for (uint32_t f = 0; f < d->nfields && !strcmp(d->type, e->type); f++)
                    found |= !strcmp(d->fields[f].key, e->fields[j]);
            }
            cr_expect(found, "docs/protocol.md, \"%s\": field '%s' of '%s' is not in the codec",
                      e->heading, e->fields[j], e->type);
        }
    }
}

/* A large blob goes out as the head the codec writes and its bytes sent
   after it without a copy (the broker's `shr`): the two together are the
   message, and a message whose last field is no BIN is refused. */
Test(proto, a_head_and_its_bytes_make_the_whole_message)
{
    static const char body[] = "the bytes of a shared blob";
    pd_m_shr_t s = {.hash = "ab12", .data = {NULL, sizeof body}};
    cr_assert_eq(pd_proto_encode_head(&pk, &pd_proto_shr, &s), 0);
    cr_assert_eq(pd_buf_append(&buf, body, sizeof body), 0);
    cr_assert_eq(pd_msg_parse(&m, buf.data, buf.len), 0, "%s", m.why);
    pd_m_shr_t r;
    cr_assert_eq(pd_m_shr_decode(&m, &r), 0, "%s", m.why);
    cr_expect_str_eq(r.hash, "ab12");
    cr_assert_eq(r.data.len, sizeof body);
    cr_expect_eq(memcmp(r.data.p, body, sizeof body), 0);
    pd_m_slots_t sl = {.cpus = 2};
    cr_expect_eq(pd_proto_encode_head(&pk, &pd_proto_slots, &sl), PD_EINVAL);
}
