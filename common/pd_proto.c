/*  pd_proto: the protocol codec; see pd_proto.h and the table in
    pd_proto_defs.h.

    One table-driven encoder and decoder serve every message: the X-macro
    table gives each message a descriptor (its type string and, per field,
    name, kind, presence, bound and place in the struct), and the typed
    pd_m_NAME_encode/decode wrappers in pd_proto.h pass it in. Decoding looks
    each field up in the pd_msg_t index that pd_msg_parse() built, reads it
    with the strict pd_rd_* readers and never allocates.
*/
#include "pd_proto.h"
#include "pd_error.h"

#include <stdio.h>
#include <string.h>

/* ---- descriptors ----------------------------------------------------------- */

#define S_HASOFF_REQ(T, n) 0
#define S_HASOFF_DEF(T, n) 0
#define S_HASOFF_OPT(T, n) offsetof(pd_m_##T##_t, has_##n)
#define S_FIELD(T, n, kind, pres, bound)                                                  \
    {#n, sizeof #n - 1, PD_FK_##kind, PD_FP_##pres, bound, offsetof(pd_m_##T##_t, n),     \
     S_HASOFF_##pres(T, n)},
/* Each field array ends with an empty entry: C has no empty arrays. */
#define S_MESSAGE(NAME, TYPE, DOC, FIELDS)                                                \
    static const pd_proto_field_t s_fields_##NAME[] = {FIELDS(S_FIELD, NAME){0}};         \
    const pd_proto_msg_t pd_proto_##NAME = {#NAME, TYPE, DOC, s_fields_##NAME,            \
        (uint32_t) (sizeof s_fields_##NAME / sizeof s_fields_##NAME[0] - 1),              \
        sizeof(pd_m_##NAME##_t)};
PD_PROTO_MESSAGES(S_MESSAGE)

#define S_ENTRY(NAME, TYPE, DOC, FIELDS) &pd_proto_##NAME,
const pd_proto_msg_t *const pd_proto_all[] = {PD_PROTO_MESSAGES(S_ENTRY)};
const size_t pd_proto_count = sizeof pd_proto_all / sizeof pd_proto_all[0];

void pd_str_copy(pd_str_t s, char *dst, size_t cap)
{
    if (!cap)
        return;
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n)
        memcpy(dst, s.p, n);
    dst[n] = 0;
}

void pd_proto_example(const pd_proto_msg_t *d, void *m)
{
    static const uint8_t map[] = {0x81, 0xa1, 'k', 0x2a};       /* {k: 42} */
    static const uint8_t array[] = {0x92, 0x01, 0xa2, 'h', 'i'}; /* [1, "hi"] */
    static const uint8_t bin[] = {0, 1, 2, 0xff};
    memset(m, 0, d->size);
    for (uint32_t i = 0; i < d->nfields; i++) {
        const pd_proto_field_t *f = &d->fields[i];
        void *v = (char *) m + f->off;
        switch (f->kind) {
        case PD_FK_UINT: *(uint64_t *) v = f->bound ? f->bound : 1000 + i; break;
        case PD_FK_INT: *(int64_t *) v = -5 - (int64_t) i; break;
        case PD_FK_DOUBLE: *(double *) v = 0.5 + i; break;
        case PD_FK_BOOL: *(bool *) v = i % 2 == 0; break;
        case PD_FK_STR: snprintf(v, f->bound, "s%u", i); break;
        case PD_FK_TEXT: *(pd_str_t *) v = pd_str_of("a sentence"); break;
        case PD_FK_BIN: *(pd_bin_t *) v = (pd_bin_t){bin, sizeof bin}; break;
        case PD_FK_RAW:
        case PD_FK_ARRAY: *(pd_raw_t *) v = (pd_raw_t){.p = array, .len = sizeof array}; break;
        case PD_FK_MAP: *(pd_raw_t *) v = (pd_raw_t){.p = map, .len = sizeof map}; break;
        }
        if (f->presence == PD_FP_OPT)
            *(bool *) ((char *) m + f->has_off) = true;
    }
}

/* ---- encoding -------------------------------------------------------------- */

static bool s_present(const pd_proto_field_t *f, const void *m)
{
    return f->presence != PD_FP_OPT || *(const bool *) ((const char *) m + f->has_off);
}

static int s_pack_raw(msgpack_packer *pk, const pd_proto_field_t *f, const pd_raw_t *v)
{
    if (v->pack)
        return v->pack(pk, v->ctx) ? -1 : 0;
    if (v->p)
        return pd_pack_raw(pk, v->p, v->len);
    if (f->kind == PD_FK_ARRAY)
        return msgpack_pack_array(pk, 0);
    if (f->kind == PD_FK_MAP)
        return msgpack_pack_map(pk, 0);
    return msgpack_pack_nil(pk);
}

static int s_pack_value(msgpack_packer *pk, const pd_proto_field_t *f, const void *v)
{
    switch (f->kind) {
    case PD_FK_UINT:
        return msgpack_pack_uint64(pk, *(const uint64_t *) v);
    case PD_FK_INT:
        return msgpack_pack_int64(pk, *(const int64_t *) v);
    case PD_FK_DOUBLE:
        return msgpack_pack_double(pk, *(const double *) v);
    case PD_FK_BOOL:
        return *(const bool *) v ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case PD_FK_STR: {
        const char *s = v;
        size_t n = strnlen(s, f->bound);
        return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
    }
    case PD_FK_TEXT: {
        const pd_str_t *s = v;
        return msgpack_pack_str(pk, s->len) || msgpack_pack_str_body(pk, s->p, s->len);
    }
    case PD_FK_BIN: {
        const pd_bin_t *b = v;
        return msgpack_pack_bin(pk, b->len) || msgpack_pack_bin_body(pk, b->p, b->len);
    }
    case PD_FK_RAW:
    case PD_FK_ARRAY:
    case PD_FK_MAP:
        return s_pack_raw(pk, f, v);
    }
    return -1;
}

int pd_proto_pack_field(msgpack_packer *pk, const pd_proto_field_t *f, const void *m)
{
    if (msgpack_pack_str(pk, f->klen) || msgpack_pack_str_body(pk, f->key, f->klen)
        || s_pack_value(pk, f, (const char *) m + f->off))
        return PD_ENOMEM;
    return 0;
}

int pd_proto_encode(msgpack_packer *pk, const pd_proto_msg_t *d, const void *m)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < d->nfields; i++)
        n += s_present(&d->fields[i], m);
    if (pd_msg_begin(pk, d->type, n))
        return PD_ENOMEM;
    for (uint32_t i = 0; i < d->nfields; i++) {
        const pd_proto_field_t *f = &d->fields[i];
        if (s_present(f, m) && pd_proto_pack_field(pk, f, m))
            return PD_ENOMEM;
    }
    return 0;
}

int pd_proto_encode_head(msgpack_packer *pk, const pd_proto_msg_t *d, const void *m)
{
    if (d->nfields == 0 || d->fields[d->nfields - 1].kind != PD_FK_BIN)
        return PD_EINVAL;
    const pd_proto_field_t *tail = &d->fields[d->nfields - 1];
    uint32_t n = 0;
    for (uint32_t i = 0; i < d->nfields; i++)
        n += s_present(&d->fields[i], m);
    if (pd_msg_begin(pk, d->type, n))
        return PD_ENOMEM;
    for (uint32_t i = 0; i + 1 < d->nfields; i++) {
        const pd_proto_field_t *f = &d->fields[i];
        if (s_present(f, m) && pd_proto_pack_field(pk, f, m))
            return PD_ENOMEM;
    }
    if (!s_present(tail, m))
        return 0;
    const pd_bin_t *b = (const pd_bin_t *) ((const char *) m + tail->off);
    if (msgpack_pack_str(pk, tail->klen) || msgpack_pack_str_body(pk, tail->key, tail->klen)
        || msgpack_pack_bin(pk, b->len))
        return PD_ENOMEM;
    return 0;
}

/* ---- decoding -------------------------------------------------------------- */

static int s_over(const pd_msg_t *msg, const pd_proto_field_t *f, const char *what)
{
    char s[64];
    snprintf(s, sizeof s, what, (unsigned long long) f->bound);
    return pd_msg_fail(msg, PD_EINVAL, f->key, s);
}

/* Checks a value kept as bytes: its kind and its count. */
static int s_check_raw(const pd_msg_t *msg, const pd_proto_field_t *f, pd_rd_t *r)
{
    uint32_t n = 0;
    if (f->kind == PD_FK_ARRAY && pd_rd_array(r, &n))
        return pd_msg_fail(msg, PD_EPROTO, f->key, "is not an array");
    if (f->kind == PD_FK_MAP && pd_rd_map(r, &n))
        return pd_msg_fail(msg, PD_EPROTO, f->key, "is not a map");
    return f->bound && n > f->bound ? s_over(msg, f, "has more than %llu elements") : 0;
}

/* Reads one field's value (the bytes of f in the frame) into v. */
static int s_read_value(const pd_msg_t *msg, const pd_proto_field_t *f, const pd_msg_field_t *mf,
                        void *v)
{
    pd_rd_t r;
    pd_rd_init(&r, mf->val, mf->vlen);
    switch (f->kind) {
    case PD_FK_UINT:
        if (pd_rd_uint(&r, v))
            return pd_msg_fail(msg, PD_EPROTO, f->key, "is not a non-negative integer");
        if (f->bound && *(uint64_t *) v > f->bound)
            return s_over(msg, f, "is over %llu");
        return 0;
    case PD_FK_INT:
        return pd_rd_int(&r, v) ? pd_msg_fail(msg, PD_EPROTO, f->key, "is not an integer") : 0;
    case PD_FK_DOUBLE:
        return pd_rd_double(&r, v) ? pd_msg_fail(msg, PD_EPROTO, f->key, "is not a number") : 0;
    case PD_FK_BOOL:
        return pd_rd_bool(&r, v) ? pd_msg_fail(msg, PD_EPROTO, f->key, "is not a boolean") : 0;
    case PD_FK_STR: {
        int rc = pd_rd_strcpy(&r, v, f->bound);
        if (rc == PD_ETOOBIG)
            return pd_msg_fail(msg, rc, f->key, "is too long");
        return rc ? pd_msg_fail(msg, PD_EPROTO, f->key, "is not a string") : 0;
    }
    case PD_FK_TEXT: {
        pd_str_t *s = v;
        return pd_rd_str(&r, &s->p, &s->len)
                   ? pd_msg_fail(msg, PD_EPROTO, f->key, "is not a string") : 0;
    }
    case PD_FK_BIN: {
        pd_bin_t *b = v;
        int rc;
        if (pd_rd_peek(&r) == PD_MP_STR) {
            const char *s;
            rc = pd_rd_str(&r, &s, &b->len);
            b->p = s;
        } else {
            rc = pd_rd_bin(&r, &b->p, &b->len);
        }
        if (rc)
            return pd_msg_fail(msg, PD_EPROTO, f->key, "is not bytes");
        return f->bound && b->len > f->bound ? s_over(msg, f, "is over %llu bytes") : 0;
    }
    case PD_FK_RAW:
    case PD_FK_ARRAY:
    case PD_FK_MAP: {
        pd_raw_t *raw = v;
        raw->p = mf->val;
        raw->len = mf->vlen;
        return s_check_raw(msg, f, &r);
    }
    }
    return pd_msg_fail(msg, PD_EPROTO, f->key, "has an unknown kind");
}

int pd_proto_decode(const pd_msg_t *msg, const pd_proto_msg_t *d, void *out)
{
    memset(out, 0, d->size);
    if (!pd_msg_is(msg, d->type)) {
        pd_msg_t *mm = (pd_msg_t *) msg;
        snprintf(mm->why, sizeof mm->why, "message '%s' is not '%s'", msg->type, d->type);
        return PD_EPROTO;
    }
    for (uint32_t i = 0; i < d->nfields; i++) {
        const pd_proto_field_t *f = &d->fields[i];
        const pd_msg_field_t *mf = pd_msg_field(msg, f->key, f->klen);
        if (!mf) {
            if (f->presence == PD_FP_REQ)
                return pd_msg_fail(msg, PD_ENOFIELD, f->key, "is missing");
            continue;
        }
        int rc = s_read_value(msg, f, mf, (char *) out + f->off);
        if (rc)
            return rc;
        if (f->presence == PD_FP_OPT)
            *(bool *) ((char *) out + f->has_off) = true;
    }
    return 0;
}
