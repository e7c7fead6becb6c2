/*  pd_shared: the broker's bounded, content-addressed store of shared data;
    see pd_shared.h.

    Few blobs exist at once (each is megabytes), so they sit in an array of
    pointers (a free entry is reused) with a hash index from digest to
    position; eviction scans the array for the least recently used blob not
    in use.
*/
#include "pd_shared.h"
#include "pd_error.h"

#include <assert.h>
#include <czmq.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pd_shared {
    pd_shared_blob_t **blobs; /* blobs by index; NULL = free entry */
    uint32_t span;            /* entries used in blobs (free ones included) */
    uint32_t cap;             /* capacity of blobs */
    uint32_t count;           /* blobs stored */
    uint64_t bytes;           /* bytes of all blobs */
    uint64_t max_blob;        /* one blob's bytes at most */
    uint64_t max_total;       /* all blobs' bytes at most */
    uint64_t clock;           /* use counter, for least recently used */
    zhashx_t *index;          /* hash -> index + 1 */
};

pd_shared_t *pd_shared_new(uint64_t max_blob, uint64_t max_total)
{
    assert(max_blob > 0 && max_blob <= PD_SHARED_LIMIT && max_total >= max_blob);
    if (sodium_init() < 0)
        return NULL;
    pd_shared_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->max_blob = max_blob;
    s->max_total = max_total;
    s->index = zhashx_new();
    if (!s->index) {
        free(s);
        return NULL;
    }
    return s;
}

static void s_free_blob(pd_shared_blob_t *b)
{
    if (b) {
        free(b->owners);
        free(b->data);
        free(b);
    }
}

void pd_shared_destroy(pd_shared_t **p)
{
    if (!p || !*p)
        return;
    pd_shared_t *s = *p;
    for (uint32_t i = 0; i < s->span; i++)
        s_free_blob(s->blobs[i]);
    free(s->blobs);
    zhashx_destroy(&s->index);
    free(s);
    *p = NULL;
}

void pd_shared_hash(const void *data, size_t len, char out[PD_SHARED_HASH_LEN + 1])
{
    unsigned char h[32];
    crypto_generichash(h, sizeof h, data, len, NULL, 0);
    sodium_bin2hex(out, PD_SHARED_HASH_LEN + 1, h, sizeof h);
}

int64_t pd_shared_find(pd_shared_t *s, const char *hash)
{
    void *v = zhashx_lookup(s->index, hash);
    return v ? (int64_t) ((uintptr_t) v - 1) : -1;
}

const pd_shared_blob_t *pd_shared_get(pd_shared_t *s, uint32_t i)
{
    assert(i < s->span && s->blobs[i]);
    return s->blobs[i];
}

void pd_shared_touch(pd_shared_t *s, uint32_t i)
{
    assert(i < s->span && s->blobs[i]);
    s->blobs[i]->last_use = ++s->clock;
}

uint32_t pd_shared_count(const pd_shared_t *s) { return s->count; }
uint32_t pd_shared_span(const pd_shared_t *s) { return s->span; }
const pd_shared_blob_t *pd_shared_at(pd_shared_t *s, uint32_t i)
{
    return i < s->span ? s->blobs[i] : NULL;
}
uint64_t pd_shared_bytes(const pd_shared_t *s) { return s->bytes; }

bool pd_shared_owned_by(pd_shared_t *s, uint32_t i, const char *owner)
{
    const pd_shared_blob_t *b = pd_shared_get(s, i);
    for (uint32_t k = 0; k < b->nowners; k++)
        if (!b->owners[k][0] || strcmp(b->owners[k], owner) == 0)
            return true;
    return false;
}

int pd_shared_add_owner(pd_shared_t *s, uint32_t i, const char *owner)
{
    assert(strlen(owner) < PD_SHARED_OWNER_TXT);
    pd_shared_blob_t *b = s->blobs[i];
    assert(i < s->span && b);
    for (uint32_t k = 0; k < b->nowners; k++)
        if (strcmp(b->owners[k], owner) == 0)
            return 0;
    if (b->nowners == PD_SHARED_MAX_OWNERS) { /* the earliest uploads again */
        memmove(b->owners, b->owners + 1, (b->nowners - 1) * sizeof *b->owners);
        b->nowners--;
    } else {
        char(*o)[PD_SHARED_OWNER_TXT] = realloc(b->owners, (b->nowners + 1) * sizeof *o);
        if (!o)
            return PD_ENOMEM;
        b->owners = o;
    }
    snprintf(b->owners[b->nowners++], PD_SHARED_OWNER_TXT, "%s", owner);
    return 0;
}
uint64_t pd_shared_max_blob(const pd_shared_t *s) { return s->max_blob; }
uint64_t pd_shared_max_total(const pd_shared_t *s) { return s->max_total; }

static void s_remove(pd_shared_t *s, uint32_t i)
{
    pd_shared_blob_t *b = s->blobs[i];
    zhashx_delete(s->index, b->hash);
    s->bytes -= b->len;
    s->count--;
    s_free_blob(b);
    s->blobs[i] = NULL;
    while (s->span && !s->blobs[s->span - 1])
        s->span--;
}

int64_t pd_shared_put(pd_shared_t *s, const char *hash, const void *data, size_t len,
                      pd_shared_in_use_fn *in_use, pd_shared_evict_fn *evict, void *user,
                      char *why, size_t whycap)
{
    int rc = pd_shared_check_size(s, len, why, whycap);
    if (rc)
        return rc;
    char real[PD_SHARED_HASH_LEN + 1];
    pd_shared_hash(data, len, real);
    if (strcmp(real, hash) != 0) {
        snprintf(why, whycap, "shared data: hash %.64s is not the BLAKE2b-256 of its bytes "
                 "(%s): send the lowercase hex BLAKE2b-256 of the data", hash, real);
        return PD_EPROTO;
    }
    return pd_shared_store(s, hash, data, len, in_use, evict, user, why, whycap);
}

int pd_shared_check_size(const pd_shared_t *s, size_t len, char *why, size_t whycap)
{
    if (len == 0) {
        snprintf(why, whycap, "shared data is empty: send at least one byte, or no shared data");
        return PD_EINVAL;
    }
    if (len > s->max_blob) {
        snprintf(why, whycap, "shared data of %zu bytes (%.1f MiB) is over this broker's limit "
                 "of %llu MiB (playdoh-broker --max-shared-mb)", len, (double) len / 1048576.0,
                 (unsigned long long) (s->max_blob >> 20));
        return PD_ETOOBIG;
    }
    return 0;
}

int64_t pd_shared_store(pd_shared_t *s, const char *hash, const void *data, size_t len,
                        pd_shared_in_use_fn *in_use, pd_shared_evict_fn *evict, void *user,
                        char *why, size_t whycap)
{
    int rc = pd_shared_check_size(s, len, why, whycap);
    if (rc)
        return rc;
    int64_t have = pd_shared_find(s, hash);
    if (have >= 0) {
        pd_shared_touch(s, (uint32_t) have);
        return have;
    }
    /* Make room: least recently used first, never a blob in use. */
    while (s->bytes + len > s->max_total) {
        int64_t victim = -1;
        for (uint32_t i = 0; i < s->span; i++)
            if (s->blobs[i] && !in_use(user, i) &&
                (victim < 0 || s->blobs[i]->last_use < s->blobs[victim]->last_use))
                victim = i;
        if (victim < 0) {
            snprintf(why, whycap, "the broker's shared-data store is full: %llu MiB of %llu are "
                     "held by unfinished maps (wait for them, or raise playdoh-broker "
                     "--shared-store-mb)", (unsigned long long) (s->bytes >> 20),
                     (unsigned long long) (s->max_total >> 20));
            return PD_EOVERLOAD;
        }
        evict(user, (uint32_t) victim, s->blobs[victim]->hash);
        s_remove(s, (uint32_t) victim);
    }
    uint32_t idx = 0;
    while (idx < s->span && s->blobs[idx])
        idx++;
    if (idx == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 16;
        pd_shared_blob_t **a = realloc(s->blobs, cap * sizeof *a);
        if (!a)
            goto oom;
        s->blobs = a;
        s->cap = cap;
    }
    pd_shared_blob_t *b = calloc(1, sizeof *b);
    if (!b || !(b->data = malloc(len)) ||
        zhashx_insert(s->index, hash, (void *) (uintptr_t) (idx + 1))) {
        s_free_blob(b);
        goto oom;
    }
    snprintf(b->hash, sizeof b->hash, "%s", hash);
    memcpy(b->data, data, len);
    b->len = len;
    b->last_use = ++s->clock;
    s->blobs[idx] = b;
    if (idx == s->span)
        s->span++;
    s->count++;
    s->bytes += len;
    return idx;
oom:
    snprintf(why, whycap, "the broker is out of memory for %zu bytes of shared data", len);
    return PD_ENOMEM;
}
