/*  pd_proto: the one protocol codec. Every message of docs/protocol.md is a
    C struct with an encode/decode pair, made from the table in
    pd_proto_defs.h (read it for the kinds and the presence rules).

    Writing:
        pd_m_accepted_t a = {.req = req, .first = first, .n = n};
        pd_m_accepted_encode(&pk, &a);      // the whole map, "v" and "t" included

    Reading, after pd_msg_parse():
        pd_m_submit_t s;
        int rc = pd_m_submit_decode(&m, &s); // 0, or PD_EPROTO / PD_ENOFIELD /
                                             // PD_ETOOBIG / PD_EINVAL with m.why set
        if (s.has_shared) ...

    Decoding is strict: a message of another type, a known field of the wrong
    kind (PD_EPROTO), a required field missing (PD_ENOFIELD), a string over its
    cap (PD_ETOOBIG) or a value over its bound (PD_EINVAL) is refused, with a
    sentence naming the field in the message's `why`. Unknown fields are
    ignored. Nothing is allocated: pd_str_t, pd_bin_t and pd_raw_t borrow the
    frame's bytes, so the frame must outlive the struct; STR fields are copied.
*/
#ifndef PD_PROTO_H
#define PD_PROTO_H

#include "pd_msg.h"
#include "pd_proto_defs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A string borrowed from a frame (not NUL-terminated) or, when writing, from
   the caller. pd_str_of() makes one from a C string (NULL: ""). */
typedef struct {
    const char *p;
    uint32_t len;
} pd_str_t;

/* Bytes borrowed from a frame or, when writing, from the caller. */
typedef struct {
    const void *p;
    uint32_t len;
} pd_bin_t;

/* A msgpack value kept as its bytes. Reading sets p and len. Writing appends
   p/len verbatim, or calls pack(pk, ctx) when pack is set, so that a caller
   streams a large array straight into the message; with neither, RAW writes
   nil, ARRAY an empty array and MAP an empty map. pack returns 0 or non-0. */
typedef int (*pd_proto_pack_fn)(msgpack_packer *pk, const void *ctx);
typedef struct {
    const uint8_t *p;
    size_t len;
    pd_proto_pack_fn pack;
    const void *ctx;
} pd_raw_t;

static inline pd_str_t pd_str_of(const char *s)
{
    const char *p = s ? s : "";
    return (pd_str_t){p, (uint32_t) strlen(p)};
}

/* Copies a pd_str_t into dst (cap bytes with the NUL), cut when longer. */
void pd_str_copy(pd_str_t s, char *dst, size_t cap);

/* ---- descriptors ----------------------------------------------------------- */

typedef enum {
    PD_FK_UINT,
    PD_FK_INT,
    PD_FK_DOUBLE,
    PD_FK_BOOL,
    PD_FK_STR,
    PD_FK_TEXT,
    PD_FK_BIN,
    PD_FK_RAW,
    PD_FK_ARRAY,
    PD_FK_MAP
} pd_proto_kind_t;

typedef enum { PD_FP_REQ, PD_FP_DEF, PD_FP_OPT } pd_proto_presence_t;

typedef struct {
    const char *key;           /* the field's name on the wire */
    uint32_t klen;             /* strlen(key) */
    pd_proto_kind_t kind;
    pd_proto_presence_t presence;
    uint64_t bound;            /* see pd_proto_defs.h; 0: none */
    size_t off;                /* of the member in the struct */
    size_t has_off;            /* of has_<field> (OPT only) */
} pd_proto_field_t;

typedef struct {
    const char *name;                /* the C name: "submit", "w_welcome" */
    const char *type;                /* "t" on the wire */
    const char *doc;                 /* docs/protocol.md's heading that lists it */
    const pd_proto_field_t *fields;  /* nfields of them */
    uint32_t nfields;
    size_t size;                     /* sizeof its struct */
} pd_proto_msg_t;

/* Every message, in pd_proto_defs.h's order (tests, fuzzing, tools). */
extern const pd_proto_msg_t *const pd_proto_all[];
extern const size_t pd_proto_count;

/* Writes the message described by d from the struct at m: the map header,
   "v", "t", then its fields. Returns 0, or PD_ENOMEM when the packer failed
   (its buffer is then marked failed, as with any packer write). */
int pd_proto_encode(msgpack_packer *pk, const pd_proto_msg_t *d, const void *m);
/* As pd_proto_encode, for a message whose last field is a BIN too large to
   copy: that field is written as its key and its bin header only (its
   pd_bin_t's len; p is not read), and the caller sends its len bytes right
   after the head, in the same frame (the broker's `shr`). PD_EINVAL when
   d's last field is not a BIN. */
int pd_proto_encode_head(msgpack_packer *pk, const pd_proto_msg_t *d, const void *m);
/* Fills the struct at m with a sample message: every field set (OPT ones
   too), each value of its kind and within its bound, depending on the
   field's place (tests and fuzz seeds). Raw fields borrow static bytes. */
void pd_proto_example(const pd_proto_msg_t *d, void *m);
/* Writes one field of the struct at m, its key then its value, whether or
   not it is set (tests and fuzz seeds build malformed messages with it). */
int pd_proto_pack_field(msgpack_packer *pk, const pd_proto_field_t *f, const void *m);
/* Fills the struct at out (zeroed first) from a parsed message, which must be
   of d's type. Returns 0 or a PD_E* code with msg->why set (msg is written
   for that sentence only, as pd_msg_* do). */
int pd_proto_decode(const pd_msg_t *msg, const pd_proto_msg_t *d, void *out);

/* ---- one struct and one encode/decode pair per message --------------------- */

#define PD_PROTO_CT_UINT(n, b)   uint64_t n;
#define PD_PROTO_CT_INT(n, b)    int64_t n;
#define PD_PROTO_CT_DOUBLE(n, b) double n;
#define PD_PROTO_CT_BOOL(n, b)   bool n;
#define PD_PROTO_CT_STR(n, b)    char n[b];
#define PD_PROTO_CT_TEXT(n, b)   pd_str_t n;
#define PD_PROTO_CT_BIN(n, b)    pd_bin_t n;
#define PD_PROTO_CT_RAW(n, b)    pd_raw_t n;
#define PD_PROTO_CT_ARRAY(n, b)  pd_raw_t n;
#define PD_PROTO_CT_MAP(n, b)    pd_raw_t n;
#define PD_PROTO_HAS_REQ(n)
#define PD_PROTO_HAS_DEF(n)
#define PD_PROTO_HAS_OPT(n) bool has_##n;
#define PD_PROTO_MEMBER(T, n, kind, pres, bound) PD_PROTO_CT_##kind(n, bound) PD_PROTO_HAS_##pres(n)

/* pd_end: C has no empty structs (bye, reset, ... have no field). */
#define PD_PROTO_DECLARE(NAME, TYPE, DOC, FIELDS)                                         \
    typedef struct {                                                                      \
        FIELDS(PD_PROTO_MEMBER, NAME)                                                     \
        char pd_end;                                                                      \
    } pd_m_##NAME##_t;                                                                    \
    extern const pd_proto_msg_t pd_proto_##NAME;                                          \
    static inline int pd_m_##NAME##_encode(msgpack_packer *pk, const pd_m_##NAME##_t *m)  \
    {                                                                                     \
        return pd_proto_encode(pk, &pd_proto_##NAME, m);                                  \
    }                                                                                     \
    static inline int pd_m_##NAME##_decode(const pd_msg_t *msg, pd_m_##NAME##_t *m)       \
    {                                                                                     \
        return pd_proto_decode(msg, &pd_proto_##NAME, m);                                 \
    }
PD_PROTO_MESSAGES(PD_PROTO_DECLARE)
#undef PD_PROTO_DECLARE

#endif
