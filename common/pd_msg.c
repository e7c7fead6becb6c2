/*  pd_msg: parse and begin Playdoh messages; see pd_msg.h. */
#include "pd_msg.h"
#include "pd_error.h"

#include <stdio.h>
#include <string.h>

static int s_fail(pd_msg_t *m, int rc, const char *fmt, const char *arg)
{
    snprintf(m->why, sizeof m->why, fmt, arg);
    return rc;
}

int pd_msg_parse(pd_msg_t *m, const void *frame, size_t len)
{
    m->type[0] = 0;
    m->version = 0;
    m->nfields = 0;
    m->why[0] = 0;
    const char *why;
    int rc = pd_mp_check(frame, len, PD_MAX_DEPTH, &why);
    if (rc)
        return s_fail(m, rc, "%s", why);
    pd_rd_t r;
    pd_rd_init(&r, frame, len);
    uint32_t n;
    if (pd_rd_map(&r, &n))
        return s_fail(m, PD_EPROTO, "%s", "message is not a msgpack map");
    if (n > PD_MSG_MAX_FIELDS)
        return s_fail(m, PD_EPROTO, "%s", "message has too many fields");
    for (uint32_t i = 0; i < n; i++) {
        pd_msg_field_t *f = &m->f[m->nfields];
        const char *k;
        if (pd_rd_str(&r, &k, &f->klen))
            return s_fail(m, PD_EPROTO, "%s", "message key is not a string");
        f->key = k;
        for (int j = 0; j < m->nfields; j++)
            if (m->f[j].klen == f->klen && memcmp(m->f[j].key, k, f->klen) == 0)
                return s_fail(m, PD_EPROTO, "%s", "message has a duplicate key");
        if (pd_rd_skip(&r, &f->val, &f->vlen))
            return s_fail(m, PD_EPROTO, "%s", "message value is malformed");
        m->nfields++;
    }
    if (pd_msg_uint(m, "v", &m->version))
        return s_fail(m, PD_EPROTO, "%s", "message has no protocol version \"v\"");
    if (m->version != PD_PROTO_VERSION) {
        char v[24];
        snprintf(v, sizeof v, "%llu", (unsigned long long) m->version);
        return s_fail(m, PD_EVERSION, "protocol version %s is not supported (this side speaks 1)", v);
    }
    rc = pd_msg_str(m, "t", m->type, sizeof m->type);
    if (rc)
        return s_fail(m, PD_EPROTO, "%s", "message has no type \"t\" (a short string)");
    return 0;
}

bool pd_msg_is(const pd_msg_t *m, const char *t) { return strcmp(m->type, t) == 0; }

const pd_msg_field_t *pd_msg_field(const pd_msg_t *m, const char *key, size_t klen)
{
    for (int i = 0; i < m->nfields; i++)
        if (m->f[i].klen == klen && memcmp(m->f[i].key, key, klen) == 0)
            return &m->f[i];
    return NULL;
}

static const pd_msg_field_t *s_find(const pd_msg_t *m, const char *key)
{
    return pd_msg_field(m, key, strlen(key));
}

bool pd_msg_has(const pd_msg_t *m, const char *key) { return s_find(m, key) != NULL; }

int pd_msg_fail(const pd_msg_t *m, int rc, const char *key, const char *what)
{
    pd_msg_t *mm = (pd_msg_t *) m;
    snprintf(mm->why, sizeof mm->why, "message '%s': field '%s' %s", m->type, key, what);
    return rc;
}

int pd_msg_rd(const pd_msg_t *m, const char *key, pd_rd_t *r)
{
    const pd_msg_field_t *f = s_find(m, key);
    if (!f)
        return pd_msg_fail(m, PD_ENOFIELD, key, "is missing");
    pd_rd_init(r, f->val, f->vlen);
    return 0;
}

#define S_TYPED(name, ctype, reader, what)                                           \
    int name(const pd_msg_t *m, const char *key, ctype *v)                           \
    {                                                                                \
        pd_rd_t r;                                                                   \
        int rc = pd_msg_rd(m, key, &r);                                              \
        if (rc)                                                                      \
            return rc;                                                               \
        if (reader(&r, v))                                                           \
            return pd_msg_fail(m, PD_EPROTO, key, "is not " what);                  \
        return 0;                                                                    \
    }
S_TYPED(pd_msg_uint, uint64_t, pd_rd_uint, "a non-negative integer")
S_TYPED(pd_msg_int, int64_t, pd_rd_int, "an integer")
S_TYPED(pd_msg_double, double, pd_rd_double, "a number")
S_TYPED(pd_msg_bool, bool, pd_rd_bool, "a boolean")
#undef S_TYPED

int pd_msg_uint_opt(const pd_msg_t *m, const char *key, uint64_t *v)
{
    return pd_msg_has(m, key) ? pd_msg_uint(m, key, v) : 0;
}

int pd_msg_str(const pd_msg_t *m, const char *key, char *dst, size_t cap)
{
    pd_rd_t r;
    int rc = pd_msg_rd(m, key, &r);
    if (rc)
        return rc;
    rc = pd_rd_strcpy(&r, dst, cap);
    if (rc == PD_ETOOBIG)
        return pd_msg_fail(m, rc, key, "is too long");
    if (rc)
        return pd_msg_fail(m, rc, key, "is not a string");
    return 0;
}

int pd_msg_bytes(const pd_msg_t *m, const char *key, const void **p, uint32_t *len)
{
    pd_rd_t r;
    int rc = pd_msg_rd(m, key, &r);
    if (rc)
        return rc;
    if (pd_rd_peek(&r) == PD_MP_STR) {
        const char *s;
        rc = pd_rd_str(&r, &s, len);
        *p = s;
    } else {
        rc = pd_rd_bin(&r, p, len);
    }
    return rc ? pd_msg_fail(m, PD_EPROTO, key, "is not bytes") : 0;
}

int pd_msg_raw(const pd_msg_t *m, const char *key, const uint8_t **p, size_t *len)
{
    const pd_msg_field_t *f = s_find(m, key);
    if (!f)
        return pd_msg_fail(m, PD_ENOFIELD, key, "is missing");
    *p = f->val;
    *len = f->vlen;
    return 0;
}

int pd_msg_begin(msgpack_packer *pk, const char *type, uint32_t nfields)
{
    if (msgpack_pack_map(pk, nfields + 2))
        return PD_ENOMEM;
    int rc = pd_pack_kv_uint(pk, "v", PD_PROTO_VERSION);
    return rc ? rc : pd_pack_kv_str(pk, "t", type);
}
