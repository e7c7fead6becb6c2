/*  pd_codec: see pd_codec.h. The checker and the readers share one header
    decoder, s_head(), which says for the byte at the cursor what kind of value
    starts there, how many header bytes it takes, and how many payload bytes or
    child elements follow; every length is compared with the bytes left before
    it is used.
*/
#include "pd_codec.h"
#include "pd_error.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffer ------------------------------------------------------------ */

void pd_buf_init(pd_buf_t *b) { memset(b, 0, sizeof *b); }

int pd_buf_reserve(pd_buf_t *b, size_t n)
{
    size_t max = b->max ? b->max : PD_MAX_FRAME;
    if (b->failed)
        return PD_ETOOBIG;
    if (n > max || b->len > max - n) {
        b->failed = true;
        return PD_ETOOBIG;
    }
    if (b->len + n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d) {
        b->failed = true;
        return PD_ENOMEM;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

int pd_buf_append(pd_buf_t *b, const void *p, size_t n)
{
    int rc = pd_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void pd_buf_reset(pd_buf_t *b)
{
    b->len = 0;
    b->failed = false;
}

void pd_buf_free(pd_buf_t *b)
{
    free(b->data);
    size_t max = b->max;
    pd_buf_init(b);
    b->max = max;
}

uint8_t *pd_buf_steal(pd_buf_t *b, size_t *len)
{
    uint8_t *d = b->data;
    *len = b->len;
    size_t max = b->max;
    pd_buf_init(b);
    b->max = max;
    return d;
}

static int s_pack_write(void *data, const char *buf, size_t len)
{
    return pd_buf_append((pd_buf_t *) data, buf, len) ? -1 : 0;
}

void pd_packer_init(msgpack_packer *pk, pd_buf_t *b) { msgpack_packer_init(pk, b, s_pack_write); }

int pd_pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    if (msgpack_pack_str(pk, n))
        return PD_ENOMEM;
    return msgpack_pack_str_body(pk, s, n) ? PD_ENOMEM : 0;
}

int pd_pack_kv_str(msgpack_packer *pk, const char *key, const char *val)
{
    int rc = pd_pack_cstr(pk, key);
    return rc ? rc : pd_pack_cstr(pk, val);
}

int pd_pack_kv_uint(msgpack_packer *pk, const char *key, uint64_t val)
{
    int rc = pd_pack_cstr(pk, key);
    return rc ? rc : (msgpack_pack_uint64(pk, val) ? PD_ENOMEM : 0);
}

int pd_pack_kv_int(msgpack_packer *pk, const char *key, int64_t val)
{
    int rc = pd_pack_cstr(pk, key);
    return rc ? rc : (msgpack_pack_int64(pk, val) ? PD_ENOMEM : 0);
}

int pd_pack_kv_double(msgpack_packer *pk, const char *key, double val)
{
    int rc = pd_pack_cstr(pk, key);
    return rc ? rc : (msgpack_pack_double(pk, val) ? PD_ENOMEM : 0);
}

int pd_pack_kv_bool(msgpack_packer *pk, const char *key, bool val)
{
    int rc = pd_pack_cstr(pk, key);
    if (rc)
        return rc;
    return (val ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) ? PD_ENOMEM : 0;
}

int pd_pack_kv_bin(msgpack_packer *pk, const char *key, const void *p, size_t n)
{
    int rc = pd_pack_cstr(pk, key);
    if (rc)
        return rc;
    if (msgpack_pack_bin(pk, n))
        return PD_ENOMEM;
    return msgpack_pack_bin_body(pk, p, n) ? PD_ENOMEM : 0;
}

int pd_pack_raw(msgpack_packer *pk, const void *p, size_t n)
{
    return s_pack_write(pk->data, p, n) ? PD_ENOMEM : 0;
}

/* ---- headers ----------------------------------------------------------- */

/* What the header at the cursor says. */
typedef struct {
    pd_mp_kind_t kind;
    size_t hlen;     /* header bytes, type byte included */
    uint64_t count;  /* payload bytes (str, bin, numbers) or children (array: n, map: 2n) */
    bool children;   /* count is elements, not bytes */
} s_head_t;

static uint64_t s_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Decodes the header at r->p; returns 0 or PD_EPROTO (truncated header,
   unsupported byte). The payload itself is not checked here. */
static int s_head(const pd_rd_t *r, s_head_t *h)
{
    if (r->p >= r->end)
        return PD_EPROTO;
    size_t left = (size_t) (r->end - r->p);
    uint8_t c = r->p[0];
    memset(h, 0, sizeof *h);
    h->hlen = 1;
    int lenbytes = 0; /* width of a big-endian length that follows the type byte */
    if (c <= 0x7f) {
        h->kind = PD_MP_UINT;
    } else if (c >= 0xe0) {
        h->kind = PD_MP_INT;
    } else if ((c & 0xf0) == 0x80) {
        h->kind = PD_MP_MAP, h->count = 2u * (c & 0x0f), h->children = true;
    } else if ((c & 0xf0) == 0x90) {
        h->kind = PD_MP_ARRAY, h->count = c & 0x0f, h->children = true;
    } else if ((c & 0xe0) == 0xa0) {
        h->kind = PD_MP_STR, h->count = c & 0x1f;
    } else {
        switch (c) {
        case 0xc0: h->kind = PD_MP_NIL; break;
        case 0xc2: case 0xc3: h->kind = PD_MP_BOOL; break;
        case 0xc4: h->kind = PD_MP_BIN, lenbytes = 1; break;
        case 0xc5: h->kind = PD_MP_BIN, lenbytes = 2; break;
        case 0xc6: h->kind = PD_MP_BIN, lenbytes = 4; break;
        case 0xca: h->kind = PD_MP_FLOAT, h->count = 4; break;
        case 0xcb: h->kind = PD_MP_FLOAT, h->count = 8; break;
        case 0xcc: h->kind = PD_MP_UINT, h->count = 1; break;
        case 0xcd: h->kind = PD_MP_UINT, h->count = 2; break;
        case 0xce: h->kind = PD_MP_UINT, h->count = 4; break;
        case 0xcf: h->kind = PD_MP_UINT, h->count = 8; break;
        case 0xd0: h->kind = PD_MP_INT, h->count = 1; break;
        case 0xd1: h->kind = PD_MP_INT, h->count = 2; break;
        case 0xd2: h->kind = PD_MP_INT, h->count = 4; break;
        case 0xd3: h->kind = PD_MP_INT, h->count = 8; break;
        case 0xd9: h->kind = PD_MP_STR, lenbytes = 1; break;
        case 0xda: h->kind = PD_MP_STR, lenbytes = 2; break;
        case 0xdb: h->kind = PD_MP_STR, lenbytes = 4; break;
        case 0xdc: h->kind = PD_MP_ARRAY, lenbytes = 2, h->children = true; break;
        case 0xdd: h->kind = PD_MP_ARRAY, lenbytes = 4, h->children = true; break;
        case 0xde: h->kind = PD_MP_MAP, lenbytes = 2, h->children = true; break;
        case 0xdf: h->kind = PD_MP_MAP, lenbytes = 4, h->children = true; break;
        default: return PD_EPROTO; /* 0xc1 (never used) and ext types */
        }
    }
    if (lenbytes) {
        if (left < 1u + (size_t) lenbytes)
            return PD_EPROTO;
        h->count = s_be(r->p + 1, lenbytes);
        if (h->kind == PD_MP_MAP)
            h->count *= 2;
        h->hlen += (size_t) lenbytes;
    }
    /* Signed fixed-width and unsigned forms share the payload-is-the-number
       shape: the number is payload, read by the typed readers. */
    return 0;
}

/* Bytes the value's own payload takes (0 for containers). */
static uint64_t s_payload(const s_head_t *h) { return h->children ? 0 : h->count; }

/* ---- checking ---------------------------------------------------------- */

static int s_check(pd_rd_t *r, int depth, int max_depth, const char **why)
{
    s_head_t h;
    if (s_head(r, &h)) {
        *why = r->p >= r->end ? "truncated value" : "unsupported msgpack type byte";
        return PD_EPROTO;
    }
    size_t left = (size_t) (r->end - r->p);
    if (h.hlen > left || s_payload(&h) > left - h.hlen) {
        *why = "truncated value";
        return PD_EPROTO;
    }
    r->p += h.hlen + s_payload(&h);
    if (!h.children)
        return 0;
    if (depth >= max_depth) {
        *why = "nesting too deep";
        return PD_EPROTO;
    }
    /* Every element takes at least one byte: a count larger than the bytes
       left is a lie, refused before any work. */
    if (h.count > (uint64_t) (r->end - r->p)) {
        *why = "element count larger than the frame";
        return PD_EPROTO;
    }
    for (uint64_t i = 0; i < h.count; i++) {
        int rc = s_check(r, depth + 1, max_depth, why);
        if (rc)
            return rc;
    }
    return 0;
}

int pd_mp_check(const void *buf, size_t len, int max_depth, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (len > PD_MAX_FRAME) {
        *why = "frame larger than the limit";
        return PD_ETOOBIG;
    }
    if (len == 0) {
        *why = "empty frame";
        return PD_EPROTO;
    }
    pd_rd_t r;
    pd_rd_init(&r, buf, len);
    int rc = s_check(&r, 0, max_depth > PD_MAX_DEPTH ? PD_MAX_DEPTH : max_depth, why);
    if (rc)
        return rc;
    if (r.p != r.end) {
        *why = "trailing bytes after the value";
        return PD_EPROTO;
    }
    return 0;
}

/* ---- reading ----------------------------------------------------------- */

void pd_rd_init(pd_rd_t *r, const void *buf, size_t len)
{
    r->p = buf;
    r->end = r->p + len;
}

bool pd_rd_at_end(const pd_rd_t *r) { return r->p >= r->end; }

pd_mp_kind_t pd_rd_peek(const pd_rd_t *r)
{
    s_head_t h;
    return s_head(r, &h) ? PD_MP_INVALID : h.kind;
}

/* Decodes the header and checks that header + payload are present. */
static int s_take(pd_rd_t *r, pd_mp_kind_t want, s_head_t *h)
{
    if (s_head(r, h) || h->kind != want)
        return PD_EPROTO;
    size_t left = (size_t) (r->end - r->p);
    if (h->hlen > left || s_payload(h) > left - h->hlen)
        return PD_EPROTO;
    return 0;
}

int pd_rd_nil(pd_rd_t *r)
{
    s_head_t h;
    if (s_take(r, PD_MP_NIL, &h))
        return PD_EPROTO;
    r->p += 1;
    return 0;
}

int pd_rd_bool(pd_rd_t *r, bool *v)
{
    s_head_t h;
    if (s_take(r, PD_MP_BOOL, &h))
        return PD_EPROTO;
    *v = r->p[0] == 0xc3;
    r->p += 1;
    return 0;
}

/* Reads any integer into a sign flag and magnitude bits. */
static int s_integer(pd_rd_t *r, bool *negative, uint64_t *bits)
{
    s_head_t h;
    if (s_head(r, &h) || (h.kind != PD_MP_UINT && h.kind != PD_MP_INT))
        return PD_EPROTO;
    size_t left = (size_t) (r->end - r->p);
    if (h.hlen + h.count > left)
        return PD_EPROTO;
    uint8_t c = r->p[0];
    if (h.count == 0) { /* fixints */
        *negative = c >= 0xe0;
        *bits = *negative ? (uint64_t) (int64_t) (int8_t) c : c;
    } else {
        uint64_t u = s_be(r->p + 1, (int) h.count);
        if (h.kind == PD_MP_INT) { /* sign-extend */
            int shift = 64 - 8 * (int) h.count;
            int64_t s = shift ? (int64_t) (u << shift) >> shift : (int64_t) u;
            *negative = s < 0;
            u = (uint64_t) s;
        } else {
            *negative = false;
        }
        *bits = u;
    }
    r->p += h.hlen + h.count;
    return 0;
}

int pd_rd_uint(pd_rd_t *r, uint64_t *v)
{
    pd_rd_t save = *r;
    bool neg;
    uint64_t bits;
    if (s_integer(r, &neg, &bits))
        return PD_EPROTO;
    if (neg) {
        *r = save;
        return PD_EPROTO;
    }
    *v = bits;
    return 0;
}

int pd_rd_int(pd_rd_t *r, int64_t *v)
{
    pd_rd_t save = *r;
    bool neg;
    uint64_t bits;
    if (s_integer(r, &neg, &bits))
        return PD_EPROTO;
    if (!neg && bits > (uint64_t) INT64_MAX) {
        *r = save;
        return PD_EPROTO;
    }
    *v = (int64_t) bits;
    return 0;
}

int pd_rd_double(pd_rd_t *r, double *v)
{
    s_head_t h;
    if (s_head(r, &h))
        return PD_EPROTO;
    if (h.kind == PD_MP_UINT || h.kind == PD_MP_INT) {
        bool neg;
        uint64_t bits;
        if (s_integer(r, &neg, &bits))
            return PD_EPROTO;
        *v = neg ? (double) (int64_t) bits : (double) bits;
        return 0;
    }
    if (s_take(r, PD_MP_FLOAT, &h))
        return PD_EPROTO;
    uint64_t u = s_be(r->p + 1, (int) h.count);
    if (h.count == 4) {
        uint32_t u32 = (uint32_t) u;
        float f;
        memcpy(&f, &u32, 4);
        *v = f;
    } else {
        memcpy(v, &u, 8);
    }
    r->p += h.hlen + h.count;
    return 0;
}

int pd_rd_str(pd_rd_t *r, const char **s, uint32_t *len)
{
    s_head_t h;
    if (s_take(r, PD_MP_STR, &h))
        return PD_EPROTO;
    *s = (const char *) r->p + h.hlen;
    *len = (uint32_t) h.count;
    r->p += h.hlen + h.count;
    return 0;
}

int pd_rd_bin(pd_rd_t *r, const void **p, uint32_t *len)
{
    s_head_t h;
    if (s_take(r, PD_MP_BIN, &h))
        return PD_EPROTO;
    *p = r->p + h.hlen;
    *len = (uint32_t) h.count;
    r->p += h.hlen + h.count;
    return 0;
}

static int s_container(pd_rd_t *r, pd_mp_kind_t kind, uint32_t *n)
{
    s_head_t h;
    if (s_take(r, kind, &h))
        return PD_EPROTO;
    /* each element takes at least one byte */
    if (h.count > (uint64_t) (r->end - r->p - (ptrdiff_t) h.hlen))
        return PD_EPROTO;
    *n = (uint32_t) (kind == PD_MP_MAP ? h.count / 2 : h.count);
    r->p += h.hlen;
    return 0;
}

int pd_rd_array(pd_rd_t *r, uint32_t *n) { return s_container(r, PD_MP_ARRAY, n); }
int pd_rd_map(pd_rd_t *r, uint32_t *n) { return s_container(r, PD_MP_MAP, n); }

int pd_rd_skip(pd_rd_t *r, const uint8_t **raw, size_t *rawlen)
{
    pd_rd_t probe = *r;
    const char *why;
    if (s_check(&probe, 0, PD_MAX_DEPTH, &why))
        return PD_EPROTO;
    if (raw) {
        *raw = r->p;
        *rawlen = (size_t) (probe.p - r->p);
    }
    r->p = probe.p;
    return 0;
}

bool pd_rd_key_is(pd_rd_t *r, const char *key)
{
    pd_rd_t probe = *r;
    const char *s;
    uint32_t n;
    if (pd_rd_str(&probe, &s, &n))
        return false;
    size_t kl = strlen(key);
    if (n != kl || memcmp(s, key, kl) != 0)
        return false;
    *r = probe;
    return true;
}

int pd_rd_strcpy(pd_rd_t *r, char *dst, size_t cap)
{
    assert(cap > 0);
    pd_rd_t probe = *r;
    const char *s;
    uint32_t n;
    if (pd_rd_str(&probe, &s, &n))
        return PD_EPROTO;
    if (n >= cap)
        return PD_ETOOBIG;
    memcpy(dst, s, n);
    dst[n] = 0;
    *r = probe;
    return 0;
}
