/*  pd_msg: Playdoh wire messages on top of pd_codec.

    Every message is one ZeroMQ frame holding one msgpack map with at least
    "v" (protocol version, PD_PROTO_VERSION) and "t" (message type, a short
    string). docs/protocol.md lists every type and its fields.

    pd_msg_parse() checks a frame (pd_mp_check), reads the top-level map once
    and indexes its fields, so later look-ups are cheap; it refuses duplicate
    keys, a wrong version and a missing type, with a sentence in m->why.
    Values stay in the frame: a pd_msg_t borrows the frame's bytes.

    Writing: pd_msg_begin() packs the map header with room for nfields fields
    of the caller plus "v" and "t"; the caller then packs exactly nfields
    key/value pairs.

    Every message type has a struct and an encode/decode pair in pd_proto.h,
    built on these: use those; the look-ups here serve pd_proto and the
    readers of nested records.
*/
#ifndef PD_MSG_H
#define PD_MSG_H

#include "pd_codec.h"

#define PD_PROTO_VERSION 1
#define PD_MSG_MAX_FIELDS 24

typedef struct {
    const char *key;    /* in the frame, not NUL-terminated */
    uint32_t klen;
    const uint8_t *val; /* the value's msgpack bytes, in the frame */
    size_t vlen;
} pd_msg_field_t;

typedef struct {
    char type[32];           /* "t", NUL-terminated */
    uint64_t version;        /* "v" */
    int nfields;             /* indexed fields, "v" and "t" included */
    pd_msg_field_t f[PD_MSG_MAX_FIELDS];
    char why[160];           /* after a failure: what was wrong */
} pd_msg_t;

/* Parses a frame. Returns 0, or PD_EPROTO / PD_ETOOBIG / PD_EVERSION with
   m->why set. The frame must outlive m. */
int pd_msg_parse(pd_msg_t *m, const void *frame, size_t len);
/* True when the message is of type t. */
bool pd_msg_is(const pd_msg_t *m, const char *t);

/* Field look-ups. Each returns 0, PD_ENOFIELD when the key is absent, or
   PD_EPROTO when the value has another type; on failure m->why says which
   field and why (m is const-cast for that sentence only). */
int pd_msg_rd(const pd_msg_t *m, const char *key, pd_rd_t *r);
bool pd_msg_has(const pd_msg_t *m, const char *key);
int pd_msg_uint(const pd_msg_t *m, const char *key, uint64_t *v);
int pd_msg_int(const pd_msg_t *m, const char *key, int64_t *v);
int pd_msg_double(const pd_msg_t *m, const char *key, double *v);
int pd_msg_bool(const pd_msg_t *m, const char *key, bool *v);
/* Copies a str field into dst (cap bytes with the NUL). */
int pd_msg_str(const pd_msg_t *m, const char *key, char *dst, size_t cap);
/* Borrows a str or bin field's bytes. */
int pd_msg_bytes(const pd_msg_t *m, const char *key, const void **p, uint32_t *len);
/* The raw msgpack bytes of any field. */
int pd_msg_raw(const pd_msg_t *m, const char *key, const uint8_t **p, size_t *len);
/* Like the above but leaves *v alone and returns 0 when the key is absent. */
int pd_msg_uint_opt(const pd_msg_t *m, const char *key, uint64_t *v);

/* The field named key (klen bytes), or NULL (pd_proto's decoders). */
const pd_msg_field_t *pd_msg_field(const pd_msg_t *m, const char *key, size_t klen);
/* Sets m->why to "message 'T': field 'KEY' WHAT" and returns rc (m is
   const-cast for that sentence only). */
int pd_msg_fail(const pd_msg_t *m, int rc, const char *key, const char *what);

/* Packs the map header for nfields caller fields plus "v" and "t". */
int pd_msg_begin(msgpack_packer *pk, const char *type, uint32_t nfields);

#endif
