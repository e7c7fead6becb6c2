/*  pd_outbox: replies held for the journal; see pd_outbox.h.

    The replies sit in a ring of pointers (power-of-two capacity, doubled
    when full): a reply is held and released in order, so the ring never
    moves its entries but on growth. Each entry is one allocation holding
    the routing id and the message after its header.
*/
#include "pd_outbox.h"
#include "pd_error.h"
#include "pd_jobs.h"

#include <stdlib.h>
#include <string.h>

/* A held reply; for a submit, the submit too (see pd_outbox_submit_t). */
typedef struct {
    uint64_t seq;      /* the journal batch it waits for */
    bool submit;       /* it answers a submit */
    uint64_t req;      /* submit: the client's request number */
    uint64_t first;    /* submit: ids first .. first+n-1 */
    uint32_t n;        /* submit: jobs */
    uint32_t tokenlen; /* submit: bytes in token (0: none) */
    uint8_t token[PD_JOBS_TOKEN_MAX];
    uint32_t ridlen; /* bytes of routing id at the start of data */
    size_t len;      /* bytes of message after it */
    uint8_t data[];  /* routing id, then the message */
} s_held_t;

/* Jobs to wake once batch seq settles. */
typedef struct {
    uint64_t seq;
    uint64_t *ids; /* sorted (owned) */
    size_t n;
} s_wake_t;

struct pd_outbox {
    s_held_t **ring;    /* held replies, oldest at head */
    uint32_t cap;       /* ring capacity (power of two, or 0) */
    uint32_t head;      /* index of the oldest */
    uint32_t n;         /* replies held */
    size_t bytes;       /* their bytes */
    s_held_t *last;     /* the reply held last, until the next send */
    s_wake_t *wakes;    /* wake lists, oldest first */
    uint32_t nwakes;
    uint32_t capwakes;
};

pd_outbox_t *pd_outbox_new(void) { return calloc(1, sizeof(pd_outbox_t)); }

void pd_outbox_destroy(pd_outbox_t **p)
{
    if (!p || !*p)
        return;
    pd_outbox_t *ob = *p;
    for (uint32_t i = 0; i < ob->n; i++)
        free(ob->ring[(ob->head + i) & (ob->cap - 1)]);
    free(ob->ring);
    for (uint32_t i = 0; i < ob->nwakes; i++)
        free(ob->wakes[i].ids);
    free(ob->wakes);
    free(ob);
    *p = NULL;
}

static s_held_t **s_at(const pd_outbox_t *ob, uint32_t i)
{
    return &ob->ring[(ob->head + i) & (ob->cap - 1)];
}

int pd_outbox_hold(pd_outbox_t *ob, uint64_t seq, const void *rid, size_t ridlen,
                   const void *data, size_t len)
{
    ob->last = NULL;
    if (ob->n == ob->cap) {
        uint32_t cap = ob->cap ? ob->cap * 2 : 256;
        s_held_t **ring = malloc(cap * sizeof *ring);
        if (!ring)
            return PD_ENOMEM;
        for (uint32_t i = 0; i < ob->n; i++)
            ring[i] = *s_at(ob, i);
        free(ob->ring);
        ob->ring = ring;
        ob->cap = cap;
        ob->head = 0;
    }
    s_held_t *h = malloc(sizeof *h + ridlen + len);
    if (!h)
        return PD_ENOMEM;
    memset(h, 0, sizeof *h);
    h->seq = seq;
    h->ridlen = (uint32_t) ridlen;
    h->len = len;
    memcpy(h->data, rid, ridlen);
    memcpy(h->data + ridlen, data, len);
    *s_at(ob, ob->n) = h;
    ob->n++;
    ob->bytes += ridlen + len;
    ob->last = h;
    return 0;
}

void pd_outbox_sent_now(pd_outbox_t *ob) { ob->last = NULL; }

void pd_outbox_mark_submit(pd_outbox_t *ob, uint64_t req, uint64_t first, uint32_t n,
                           const void *token, size_t tokenlen)
{
    s_held_t *h = ob->last;
    if (!h)
        return; /* sent at once: nothing to take back */
    h->submit = true;
    h->req = req;
    h->first = first;
    h->n = n;
    h->tokenlen = (uint32_t) (tokenlen <= PD_JOBS_TOKEN_MAX ? tokenlen : 0);
    if (h->tokenlen)
        memcpy(h->token, token, h->tokenlen);
}

bool pd_outbox_submit_held(const pd_outbox_t *ob, uint64_t first)
{
    for (uint32_t i = 0; i < ob->n; i++) {
        const s_held_t *h = *s_at(ob, i);
        if (h->submit && h->first == first)
            return true;
    }
    return false;
}

uint32_t pd_outbox_refuse(pd_outbox_t *ob, pd_outbox_refuse_fn *refuse, void *user,
                          pd_buf_t *scratch)
{
    uint32_t refused = 0;
    for (uint32_t i = 0; i < ob->n; i++) {
        s_held_t **slot = s_at(ob, i);
        s_held_t *h = *slot;
        if (!h->submit)
            continue;
        pd_outbox_submit_t s = {h->req, h->first, h->n, h->token, h->tokenlen};
        pd_buf_reset(scratch);
        refuse(user, &s, scratch);
        s_held_t *e = scratch->failed ? NULL : malloc(sizeof *e + h->ridlen + scratch->len);
        if (e) {
            memcpy(e, h, sizeof *e);
            e->submit = false;
            e->len = scratch->len;
            memcpy(e->data, h->data, h->ridlen);
            memcpy(e->data + h->ridlen, scratch->data, scratch->len);
            ob->bytes += e->len;
            ob->bytes -= h->len;
            if (ob->last == h)
                ob->last = e;
            free(h);
            *slot = e;
        } else {
            h->submit = false; /* no memory for the error: the client times out */
            ob->bytes -= h->len;
            h->len = 0;
        }
        pd_buf_reset(scratch);
        refused++;
    }
    return refused;
}

void pd_outbox_flush(pd_outbox_t *ob, uint64_t seq, pd_outbox_send_fn *send, void *user)
{
    while (ob->n && ob->ring[ob->head]->seq <= seq) {
        s_held_t *h = ob->ring[ob->head];
        ob->head = (ob->head + 1) & (ob->cap - 1);
        ob->n--;
        ob->bytes -= h->ridlen + h->len;
        if (ob->last == h)
            ob->last = NULL;
        if (h->len)
            send(user, h->data, h->ridlen, h->data + h->ridlen, h->len);
        free(h);
    }
}

uint32_t pd_outbox_count(const pd_outbox_t *ob) { return ob->n; }
size_t pd_outbox_bytes(const pd_outbox_t *ob) { return ob->bytes; }

int pd_outbox_add_wake(pd_outbox_t *ob, uint64_t seq, const uint64_t *ids, size_t n)
{
    if (ob->nwakes == ob->capwakes) {
        uint32_t cap = ob->capwakes ? ob->capwakes * 2 : 16;
        s_wake_t *w = realloc(ob->wakes, cap * sizeof *w);
        if (!w)
            return PD_ENOMEM;
        ob->wakes = w;
        ob->capwakes = cap;
    }
    uint64_t *copy = malloc(n * sizeof *copy);
    if (!copy)
        return PD_ENOMEM;
    memcpy(copy, ids, n * sizeof *copy);
    ob->wakes[ob->nwakes++] = (s_wake_t){seq, copy, n};
    return 0;
}

void pd_outbox_wake(pd_outbox_t *ob, uint64_t seq, pd_outbox_wake_fn *wake, void *user)
{
    uint32_t k = 0;
    while (k < ob->nwakes && ob->wakes[k].seq <= seq) {
        wake(user, ob->wakes[k].ids, ob->wakes[k].n);
        free(ob->wakes[k].ids);
        k++;
    }
    if (k) {
        memmove(ob->wakes, ob->wakes + k, (ob->nwakes - k) * sizeof *ob->wakes);
        ob->nwakes -= k;
    }
}
