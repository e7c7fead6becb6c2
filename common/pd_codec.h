/*  pd_codec: strict, bounded msgpack reading and buffered msgpack writing.

    Reading is hand-written on purpose: msgpack-c's unpacker trusts the counts
    in headers and will allocate gigabytes for a five-byte array header. Here
    pd_mp_check() walks a whole frame first, without allocating, and refuses
    it unless it is exactly one value, within the nesting and size limits,
    with every count backed by bytes actually present and nothing trailing.
    pd_rd_* then read fields from a checked frame through a cursor; they also
    check bounds themselves, so a reader over unchecked bytes is still safe.

    Writing goes through msgpack-c's packer into a pd_buf_t, a growable byte
    buffer with a hard cap, so that no writer grows without bound.
*/
#ifndef PD_CODEC_H
#define PD_CODEC_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits applied to every frame decoded from the network or a slot. */
#define PD_MAX_FRAME   (256u << 20) /* bytes in one frame */
#define PD_MAX_DEPTH   32           /* nesting of arrays and maps */

/* ---- growable buffer ---------------------------------------------------- */

typedef struct {
    uint8_t *data; /* owned; NULL until the first write */
    size_t len;    /* bytes written */
    size_t cap;    /* bytes allocated */
    size_t max;    /* refuse to grow past this (0 = PD_MAX_FRAME) */
    bool failed;   /* a write failed (out of memory or over max) */
} pd_buf_t;

void pd_buf_init(pd_buf_t *b);
/* Appends n bytes; returns 0, or PD_ETOOBIG/PD_ENOMEM and sets failed. */
int pd_buf_append(pd_buf_t *b, const void *p, size_t n);
/* Makes room for n more bytes; returns 0 or a PD_E* code. */
int pd_buf_reserve(pd_buf_t *b, size_t n);
void pd_buf_reset(pd_buf_t *b);
void pd_buf_free(pd_buf_t *b);
/* Hands the bytes to the caller (who frees them); the buffer is left empty. */
uint8_t *pd_buf_steal(pd_buf_t *b, size_t *len);

/* A msgpack packer that writes into b (b must outlive it). */
void pd_packer_init(msgpack_packer *pk, pd_buf_t *b);
/* Packs a NUL-terminated string as msgpack str. */
int pd_pack_cstr(msgpack_packer *pk, const char *s);
/* Packs a map key then a string value. */
int pd_pack_kv_str(msgpack_packer *pk, const char *key, const char *val);
int pd_pack_kv_uint(msgpack_packer *pk, const char *key, uint64_t val);
int pd_pack_kv_int(msgpack_packer *pk, const char *key, int64_t val);
int pd_pack_kv_double(msgpack_packer *pk, const char *key, double val);
int pd_pack_kv_bool(msgpack_packer *pk, const char *key, bool val);
int pd_pack_kv_bin(msgpack_packer *pk, const char *key, const void *p, size_t n);
/* Appends an already-encoded msgpack value verbatim. */
int pd_pack_raw(msgpack_packer *pk, const void *p, size_t n);

/* ---- checking ---------------------------------------------------------- */

/* Checks that buf holds exactly one well-formed msgpack value within the
   limits (max_depth nesting, no ext types, no reserved bytes, no trailing
   bytes). Returns 0 or PD_EPROTO (malformed, truncated, trailing),
   PD_ETOOBIG (over len limit) or PD_EPROTO for depth; when why is not NULL,
   *why points to a static sentence saying what was wrong. */
int pd_mp_check(const void *buf, size_t len, int max_depth, const char **why);

/* ---- reading ----------------------------------------------------------- */

typedef enum {
    PD_MP_NIL,
    PD_MP_BOOL,
    PD_MP_INT,    /* negative integer */
    PD_MP_UINT,   /* non-negative integer */
    PD_MP_FLOAT,  /* float32 or float64 */
    PD_MP_STR,
    PD_MP_BIN,
    PD_MP_ARRAY,
    PD_MP_MAP,
    PD_MP_INVALID /* end of input or a byte no value starts with */
} pd_mp_kind_t;

/* A cursor over msgpack bytes. Borrowed: the bytes must outlive it. */
typedef struct {
    const uint8_t *p;   /* next byte */
    const uint8_t *end; /* one past the last byte */
} pd_rd_t;

void pd_rd_init(pd_rd_t *r, const void *buf, size_t len);
/* Kind of the next value, without consuming it. */
pd_mp_kind_t pd_rd_peek(const pd_rd_t *r);
bool pd_rd_at_end(const pd_rd_t *r);
/* Each reader consumes one value of the expected kind and returns 0, or
   returns PD_EPROTO and leaves the cursor where it was. */
int pd_rd_nil(pd_rd_t *r);
int pd_rd_bool(pd_rd_t *r, bool *v);
int pd_rd_uint(pd_rd_t *r, uint64_t *v);  /* refuses negatives */
int pd_rd_int(pd_rd_t *r, int64_t *v);    /* refuses > INT64_MAX */
int pd_rd_double(pd_rd_t *r, double *v);  /* floats and integers */
int pd_rd_str(pd_rd_t *r, const char **s, uint32_t *len); /* not NUL-terminated */
int pd_rd_bin(pd_rd_t *r, const void **p, uint32_t *len);
int pd_rd_array(pd_rd_t *r, uint32_t *n); /* header only; n elements follow */
int pd_rd_map(pd_rd_t *r, uint32_t *n);   /* header only; n key/value pairs follow */
/* Skips one whole value; when raw is not NULL, sets it to the value's bytes.
   Bounded by PD_MAX_DEPTH. */
int pd_rd_skip(pd_rd_t *r, const uint8_t **raw, size_t *rawlen);
/* Compares a str value at the cursor with key; consumes it on a match only. */
bool pd_rd_key_is(pd_rd_t *r, const char *key);
/* Copies a str value into dst (NUL-terminated, cap bytes including NUL);
   PD_ETOOBIG when it does not fit. */
int pd_rd_strcpy(pd_rd_t *r, char *dst, size_t cap);

#endif
