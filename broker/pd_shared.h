/*  pd_shared: the broker's store of shared data.

    A map may carry one read-only blob (arrays of numbers, a model, a table)
    that every job of the map reads. The client uploads it once (`shr_put`);
    the broker keeps it here and sends it to each worker once, with the
    first job that names it (`shr`), and workers map it into their slot
    processes. Blobs are content-addressed by the lowercase hex BLAKE2b-256
    of their bytes (faster than SHA-256 on large data, and as collision
    resistant).

    The store is bounded: one blob at most max_blob bytes, all of them at
    most max_total. To make room for a new blob, the least recently used
    blobs that no unfinished job names are evicted (the broker then tells
    the workers that hold them to drop them); when only blobs in use are
    left, the upload is refused with PD_EOVERLOAD. Indexes of evicted blobs
    are reused, so jobs may name a blob by index only while they are
    unfinished (which is exactly when it cannot be evicted).

    Each blob remembers the owners (pd_auth.h) that uploaded it: only they
    may name it in a submit, and `shr_has` tells others the broker lacks it,
    so that they upload the bytes themselves (proving they hold them; the
    store keeps one copy). A digest alone then reveals nothing and lends
    nothing. At most PD_SHARED_MAX_OWNERS are kept per blob (the earliest
    go first: they upload again). A blob reloaded from the journal has no
    owner until someone uploads it again.
*/
#ifndef PD_SHARED_H
#define PD_SHARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_SHARED_HASH_LEN 64                    /* hex digits of a BLAKE2b-256 */
#define PD_SHARED_DEFAULT_MAX (128ull << 20)     /* one blob, bytes */
#define PD_SHARED_DEFAULT_TOTAL (1024ull << 20)  /* all blobs, bytes */
#define PD_SHARED_LIMIT (250ull << 20)           /* largest max_blob: a frame is 256 MiB */
#define PD_SHARED_MAX_OWNERS 64u                 /* owners remembered per blob */
#define PD_SHARED_OWNER_TXT 41                   /* an owner id and its NUL (PD_OWNER_TXT) */

typedef struct pd_shared pd_shared_t;

/* A stored blob; borrowed from the store until it is evicted. */
typedef struct {
    char hash[PD_SHARED_HASH_LEN + 1]; /* lowercase hex BLAKE2b-256 of data */
    uint8_t *data;                     /* the bytes */
    size_t len;                        /* bytes in data */
    uint64_t last_use;                 /* a counter value of its last put or use */
    char (*owners)[PD_SHARED_OWNER_TXT]; /* who uploaded it, oldest first (owned) */
    uint32_t nowners;                  /* entries in owners */
} pd_shared_blob_t;

/* Is blob index i named by an unfinished job? */
typedef bool(pd_shared_in_use_fn)(void *user, uint32_t i);
/* Blob index i (hash given) is about to be evicted. */
typedef void(pd_shared_evict_fn)(void *user, uint32_t i, const char *hash);

/* An empty store (max_blob at most PD_SHARED_LIMIT, max_total at least
   max_blob), or NULL when out of memory. */
pd_shared_t *pd_shared_new(uint64_t max_blob, uint64_t max_total);
void pd_shared_destroy(pd_shared_t **p);

/* Index of the blob with this hash, or -1. */
int64_t pd_shared_find(pd_shared_t *s, const char *hash);
/* The blob at index i (from pd_shared_find/pd_shared_put). */
const pd_shared_blob_t *pd_shared_get(pd_shared_t *s, uint32_t i);
/* Indexes in use are below this (pd_shared_at walks them). */
uint32_t pd_shared_span(const pd_shared_t *s);
/* The blob at index i, or NULL when that index is free (evicted). */
const pd_shared_blob_t *pd_shared_at(pd_shared_t *s, uint32_t i);
/* Marks blob i as just used (eviction takes the least recently used). */
void pd_shared_touch(pd_shared_t *s, uint32_t i);
/* Blobs stored, and their bytes. */
uint32_t pd_shared_count(const pd_shared_t *s);
uint64_t pd_shared_bytes(const pd_shared_t *s);
uint64_t pd_shared_max_blob(const pd_shared_t *s);

/* Stores a copy of data[0..len) after checking that hash is its BLAKE2b-256
   and that it fits, evicting unused blobs as needed (evict is called for
   each before it goes). Storing a blob already there succeeds without
   change. Returns its index (>= 0), or PD_EINVAL (empty), PD_ETOOBIG (over
   max_blob), PD_EPROTO (hash mismatch), PD_EOVERLOAD (the blobs in use fill
   the store) or PD_ENOMEM, with a sentence in why. */
int64_t pd_shared_put(pd_shared_t *s, const char *hash, const void *data, size_t len,
                      pd_shared_in_use_fn *in_use, pd_shared_evict_fn *evict, void *user,
                      char *why, size_t whycap);

/* pd_shared_put without the hash check, for a caller that checked it
   (off its loop: hashing 250 MiB takes a second). */
int64_t pd_shared_store(pd_shared_t *s, const char *hash, const void *data, size_t len,
                        pd_shared_in_use_fn *in_use, pd_shared_evict_fn *evict, void *user,
                        char *why, size_t whycap);
/* 0 when a blob of len bytes may be stored (not empty, at most max_blob),
   else PD_EINVAL / PD_ETOOBIG with a sentence in why. */
int pd_shared_check_size(const pd_shared_t *s, size_t len, char *why, size_t whycap);
uint64_t pd_shared_max_total(const pd_shared_t *s);
/* True when owner uploaded blob i, or when nobody ("") did: anyone may
   use a blob of nobody's. */
bool pd_shared_owned_by(pd_shared_t *s, uint32_t i, const char *owner);
/* Notes that owner uploaded blob i (again). Returns 0 or PD_ENOMEM. */
int pd_shared_add_owner(pd_shared_t *s, uint32_t i, const char *owner);

/* Writes the lowercase hex BLAKE2b-256 of data into out (65 bytes). */
void pd_shared_hash(const void *data, size_t len, char out[PD_SHARED_HASH_LEN + 1]);

#endif
