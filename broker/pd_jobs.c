/*  pd_jobs: the broker's job table; see pd_jobs.h for the model.

    Records: chunk c holds ids c*S+1 .. (c+1)*S with S = 2^16; the array of
    chunk pointers grows by doubling (pointers only, records never move). A
    chunk counts its live (not forgotten) jobs and is freed when that count
    drops to zero once all its ids have been handed out.

    Queues: one per client (the submitter's ZeroMQ routing id), each a ring
    of [first, count] ranges. A submit appends one range to its client's
    ring; a requeue prepends one id (merged with the head when adjacent).
    Popping skips ids no longer queued (cancelled), so cancel is O(1); when a
    ring holds many more ranges than queued jobs it is compacted.

    Fair sharing: the clients that may be dispatched now (jobs queued, and
    fewer running than their max_slots) form a circular list; pd_jobs_pop()
    takes one job from the client at the cursor and moves the cursor on, so
    free slots go round-robin between clients, one job each, in O(1). A
    client leaves the list when it has nothing queued or reaches its cap, and
    comes back (at the end of the round) when that changes. A client record
    is freed once it has no queued or running job.

    Slot classes: a client's GPU jobs (that asked for a GPU slot, or ship
    CUDA kernels) have a record and a queue of their own, in a dispatch ring
    of their own, so pd_jobs_pop(j, PD_JOBS_GPU) serves GPU slots only and
    pd_jobs_pop(j, PD_JOBS_CPU) CPU slots only, each round-robin between
    clients. A client's max_slots caps each class separately. The pop limit
    (pd_jobs_set_pop_limit) holds back a client whose next job's id is at
    or past it: the round-robin passes it by.

    Result segment: a growable buffer holding a msgpack array32 header (its
    count patched at sealing) and entries [id, state, value]; the ids in it
    are listed beside it, and each such job's res_off/res_len already point
    at its value while res is still NULL. Sealing copies the buffer into one
    blob and points the jobs at it. Any reader of a job's result goes through
    pd_jobs_result(), which seals first, and so do forget and mark_fetched,
    so a job never escapes with a NULL res.

    Tokens: a hash from the token (hex) to its record, plus a ring of the
    records in arrival order for expiry.
*/
#include "pd_jobs.h"
#include "pd_auth.h"
#include "pd_error.h"

#include <assert.h>
#include <czmq.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_CHUNK_BITS 16
#define S_CHUNK      (1u << S_CHUNK_BITS)
#define S_MAX_RANGE_PAIRS 1000000u

typedef struct {
    uint64_t first; /* first id of the range */
    uint64_t count; /* ids left in it */
} s_qrange_t;

typedef struct {
    uint64_t first; /* first id */
    uint32_t count; /* consecutive ids fetched first in the same second */
    uint32_t sec;   /* that second + 1, as stored in pd_job_t.fetched */
} s_ttl_t;

typedef struct {
    uint64_t first;                   /* first id the submit got */
    uint32_t n;                       /* jobs it got */
    uint32_t sec;                     /* second it was accepted */
    uint32_t len;                     /* bytes in token */
    uint8_t token[PD_JOBS_TOKEN_MAX]; /* the token */
    char key[2 * PD_JOBS_TOKEN_MAX + 1]; /* token in hex: the hash key */
} s_token_t;

/* A client's queue and its place in the round-robin. */
typedef struct {
    s_qrange_t *q;       /* ring of its queued ids */
    size_t qcap;         /* ring capacity (power of two) */
    size_t qhead;        /* index of the first range */
    size_t qlen;         /* ranges in the ring */
    uint64_t queued;     /* its jobs in state queued */
    uint64_t running;    /* its jobs in state running */
    uint32_t max_slots;  /* jobs it may have running at once; 0 = no cap */
    uint8_t cls;         /* slot class of these jobs: PD_JOBS_CPU or PD_JOBS_GPU */
    uint32_t index;      /* position in clients[] (pd_job_t.client) */
    uint32_t prev;       /* previous client in the dispatch ring */
    uint32_t next;       /* next client in the dispatch ring */
    bool active;         /* in the dispatch ring */
    char key[];          /* hex of its routing id: its key in client_index */
} s_client_t;

struct pd_jobs {
    pd_job_t **chunks;     /* chunk pointers; NULL = not allocated or freed */
    uint32_t *live;        /* per chunk: jobs handed out and not forgotten */
    size_t nchunks;        /* entries in chunks/live */
    uint64_t next_id;      /* id the next submitted job gets */
    uint64_t max;          /* bound on unfinished jobs */
    uint64_t unfinished;   /* queued + running */
    uint64_t arg_bytes;    /* bytes of the argument blobs of unfinished jobs */
    uint64_t max_arg_bytes;/* bound on arg_bytes */
    uint64_t arg_freed;    /* bytes of argument blobs freed, ever */
    uint64_t queued;       /* jobs in state queued */
    uint64_t queued_cls[PD_JOBS_CLASSES]; /* of which, by slot class */
    s_client_t **clients;  /* clients with unfinished jobs by index; NULL = free entry */
    uint32_t nclients;     /* entries used in clients (free ones included) */
    uint32_t capclients;   /* capacity of clients */
    zhashx_t *client_index;/* hex routing id -> index + 1 */
    uint32_t cursor[PD_JOBS_CLASSES];  /* per class: client the next pop serves */
    uint32_t nactive[PD_JOBS_CLASSES]; /* per class: clients in its dispatch ring */
    uint64_t *shared_open; /* per shared-data index: unfinished jobs naming it */
    uint32_t nshared;      /* entries in shared_open */
    zhashx_t *fn_index;    /* "owner\x01fn" -> index + 1 (see s_intern) */
    char **fns;            /* interned names by index */
    uint32_t nfns;         /* names interned */
    uint32_t capfns;       /* capacity of fns */
    uint64_t *fresh;       /* ids that became final since the last clear */
    size_t nfresh;         /* entries in fresh */
    size_t capfresh;       /* capacity of fresh */
    bool fresh_sorted;     /* fresh is sorted */
    s_ttl_t *ttl;          /* ring of first fetches, oldest first */
    size_t ttlcap;         /* ring capacity (power of two) */
    size_t ttlhead;        /* index of the oldest */
    size_t ttllen;         /* entries */
    pd_buf_t seg;          /* open result segment (empty: none) */
    uint64_t *segids;      /* ids with an entry in seg */
    size_t nseg;           /* entries in seg */
    size_t capseg;         /* capacity of segids */
    pd_jobs_hooks_t hooks; /* what the journal wants to hear */
    void *hooks_user;      /* their user pointer */
    zhashx_t *tokens;      /* token hex -> s_token_t (owned by tokring) */
    s_token_t **tokring;   /* tokens in arrival order (ring) */
    size_t tokcap;         /* ring capacity (power of two) */
    size_t tokhead;        /* index of the oldest */
    size_t toklen;         /* tokens remembered */
    uint64_t pop_limit;    /* ids at or past it are not popped (0: none) */
};

/* ---- blobs ------------------------------------------------------------- */

pd_blob_t *pd_blob_new(const void *data, size_t len, uint32_t refs)
{
    assert(len <= UINT32_MAX);
    pd_blob_t *b = malloc(sizeof *b + len);
    if (!b)
        return NULL;
    b->refs = refs;
    b->len = (uint32_t) len;
    b->key = 0;
    b->jseq = 0;
    b->mark = 0;
    b->flags = 0;
    if (len)
        memcpy(b->data, data, len);
    return b;
}

void pd_blob_unref(pd_blob_t **p)
{
    if (!p || !*p)
        return;
    assert((*p)->refs > 0);
    if (--(*p)->refs == 0)
        free(*p);
    *p = NULL;
}

/* Drops a reference to a blob the table owns; the hooks hear of its death. */
static void s_unref(pd_jobs_t *j, pd_blob_t **p, bool args)
{
    if (!*p)
        return;
    if ((*p)->refs == 1 && args) {
        j->arg_bytes -= (*p)->len;
        j->arg_freed += (*p)->len;
    }
    if ((*p)->refs == 1 && j->hooks.dead)
        j->hooks.dead(j->hooks_user, *p, args);
    pd_blob_unref(p);
}

void pd_jobs_blob_hold(pd_blob_t *blob) { blob->refs++; }
void pd_jobs_blob_release(pd_jobs_t *j, pd_blob_t **p, bool args) { s_unref(j, p, args); }

/* ---- life -------------------------------------------------------------- */

pd_jobs_t *pd_jobs_new(uint64_t max_unfinished)
{
    pd_jobs_t *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->next_id = 1;
    j->max = max_unfinished ? max_unfinished : PD_JOBS_DEFAULT_MAX;
    j->max_arg_bytes = PD_JOBS_DEFAULT_MAX_ARG_BYTES;
    j->fn_index = zhashx_new();
    j->client_index = zhashx_new();
    j->ttlcap = 64;
    j->ttl = malloc(j->ttlcap * sizeof *j->ttl);
    j->fresh_sorted = true;
    pd_buf_init(&j->seg);
    j->seg.max = 2 * (size_t) PD_MAX_FRAME;
    j->tokens = zhashx_new();
    j->tokcap = 64;
    j->tokring = malloc(j->tokcap * sizeof *j->tokring);
    if (!j->fn_index || !j->client_index || !j->ttl || !j->tokens || !j->tokring) {
        pd_jobs_destroy(&j);
        return NULL;
    }
    return j;
}

void pd_jobs_set_hooks(pd_jobs_t *j, const pd_jobs_hooks_t *hooks, void *user)
{
    if (hooks)
        j->hooks = *hooks;
    else
        memset(&j->hooks, 0, sizeof j->hooks);
    j->hooks_user = user;
}

void pd_jobs_destroy(pd_jobs_t **p)
{
    if (!p || !*p)
        return;
    pd_jobs_t *j = *p;
    for (size_t c = 0; c < j->nchunks; c++) {
        pd_job_t *ch = j->chunks[c];
        if (!ch)
            continue;
        for (uint32_t i = 0; i < S_CHUNK; i++) {
            pd_blob_unref(&ch[i].arg);
            pd_blob_unref(&ch[i].res);
        }
        free(ch);
    }
    free(j->chunks);
    free(j->live);
    for (uint32_t i = 0; i < j->nclients; i++)
        if (j->clients[i]) {
            free(j->clients[i]->q);
            free(j->clients[i]);
        }
    free(j->clients);
    zhashx_destroy(&j->client_index);
    free(j->shared_open);
    free(j->ttl);
    free(j->fresh);
    for (size_t i = 0; i < j->toklen; i++)
        free(j->tokring[(j->tokhead + i) & (j->tokcap - 1)]);
    free(j->tokring);
    zhashx_destroy(&j->tokens);
    pd_buf_free(&j->seg);
    free(j->segids);
    zhashx_destroy(&j->fn_index);
    for (uint32_t i = 0; i < j->nfns; i++)
        free(j->fns[i]);
    free(j->fns);
    free(j);
    *p = NULL;
}

/* ---- records ----------------------------------------------------------- */

pd_job_t *pd_jobs_get(pd_jobs_t *j, uint64_t id)
{
    if (id == 0 || id >= j->next_id)
        return NULL;
    uint64_t c = (id - 1) >> S_CHUNK_BITS;
    if (c >= j->nchunks || !j->chunks[c])
        return NULL;
    pd_job_t *job = &j->chunks[c][(id - 1) & (S_CHUNK - 1)];
    return job->state == PD_JOB_UNKNOWN ? NULL : job;
}

void pd_jobs_batch(const pd_job_t *job, uint64_t *first, uint32_t *n, bool *succeeded)
{
    assert(job->arg && !PD_JOB_IS_FINAL(job->state));
    /* An argument blob's key is its batch's first id, and its bytes the
       batch's array of arguments (checked when it was accepted). */
    pd_rd_t r;
    pd_rd_init(&r, job->arg->data, job->arg->len);
    uint32_t count = 0;
    int rc = pd_rd_array(&r, &count);
    assert(rc == 0);
    (void) rc;
    *first = job->arg->key;
    *n = count;
    *succeeded = job->arg->flags & PD_BLOB_SUCCEEDED;
}

uint8_t pd_jobs_state(pd_jobs_t *j, uint64_t id)
{
    pd_job_t *job = pd_jobs_get(j, id);
    return job ? job->state : PD_JOB_UNKNOWN;
}

const char *pd_jobs_fn_name(pd_jobs_t *j, uint32_t fn)
{
    assert(fn < j->nfns);
    return j->fns[fn];
}

const char *pd_jobs_owner_id(pd_jobs_t *j, uint32_t fn)
{
    assert(fn < j->nfns);
    return j->fns[fn] + strlen(j->fns[fn]) + 1;
}

const char *pd_jobs_fn_owner(pd_jobs_t *j, uint32_t fn)
{
    const char *owner = pd_jobs_owner_id(j, fn);
    return pd_auth_owner_is_key(owner) ? owner : "";
}

pd_limits_t pd_jobs_fn_limits(pd_jobs_t *j, uint32_t fn)
{
    const char *owner = pd_jobs_owner_id(j, fn);
    pd_limits_t l;
    memcpy(&l, owner + strlen(owner) + 1, sizeof l);
    return l;
}

/* Makes sure chunks exist for ids first .. first+n-1. */
static int s_chunks_reserve(pd_jobs_t *j, uint64_t first, uint64_t n)
{
    uint64_t last_c = (first + n - 2) >> S_CHUNK_BITS;
    if (last_c >= j->nchunks) {
        size_t cap = j->nchunks ? j->nchunks : 16;
        while (cap <= last_c)
            cap *= 2;
        pd_job_t **ch = realloc(j->chunks, cap * sizeof *ch);
        if (!ch)
            return PD_ENOMEM;
        j->chunks = ch;
        uint32_t *live = realloc(j->live, cap * sizeof *live);
        if (!live)
            return PD_ENOMEM;
        j->live = live;
        memset(j->chunks + j->nchunks, 0, (cap - j->nchunks) * sizeof *ch);
        memset(j->live + j->nchunks, 0, (cap - j->nchunks) * sizeof *live);
        j->nchunks = cap;
    }
    for (uint64_t c = (first - 1) >> S_CHUNK_BITS; c <= last_c; c++)
        if (!j->chunks[c]) {
            j->chunks[c] = calloc(S_CHUNK, sizeof(pd_job_t));
            if (!j->chunks[c])
                return PD_ENOMEM;
        }
    return 0;
}

/* Interns the triple (function name, owner key, limits): jobs of one
   submit share it, so that each job record stays small. The stored string
   is "fn\0owner\0" followed by the pd_limits_t's bytes; the index key is
   "owner\x01fn\x01MEM:CPU:OUT" (a Z85 key holds no \x01, and a function
   name no \x01 either, so the triple is unambiguous). */
static uint32_t s_intern(pd_jobs_t *j, const char *fn, const char *owner,
                         const pd_limits_t *lim, int *rc)
{
    *rc = 0;
    size_t fl = strlen(fn), ol = strlen(owner);
    char lk[72];
    int ll = snprintf(lk, sizeof lk, "\x01%llu:%llu:%llu", (unsigned long long) lim->memory,
                      (unsigned long long) lim->cpu_s, (unsigned long long) lim->output);
    char *key = malloc(ol + fl + (size_t) ll + 2);
    if (!key) {
        *rc = PD_ENOMEM;
        return 0;
    }
    memcpy(key, owner, ol);
    key[ol] = '\x01';
    memcpy(key + ol + 1, fn, fl);
    memcpy(key + ol + 1 + fl, lk, (size_t) ll + 1);
    void *v = zhashx_lookup(j->fn_index, key);
    if (v) {
        free(key);
        return (uint32_t) ((uintptr_t) v - 1);
    }
    if (j->nfns == j->capfns) {
        uint32_t cap = j->capfns ? j->capfns * 2 : 16;
        char **f = realloc(j->fns, cap * sizeof *f);
        if (!f) {
            free(key);
            *rc = PD_ENOMEM;
            return 0;
        }
        j->fns = f;
        j->capfns = cap;
    }
    char *copy = malloc(fl + ol + 2 + sizeof *lim);
    if (!copy || zhashx_insert(j->fn_index, key, (void *) (uintptr_t) (j->nfns + 1))) {
        free(copy);
        free(key);
        *rc = PD_ENOMEM;
        return 0;
    }
    free(key);
    memcpy(copy, fn, fl + 1);
    memcpy(copy + fl + 1, owner, ol + 1);
    memcpy(copy + fl + ol + 2, lim, sizeof *lim);
    j->fns[j->nfns] = copy;
    return j->nfns++;
}

/* ---- queues ------------------------------------------------------------ */

static int s_q_grow(s_client_t *cl)
{
    size_t cap = cl->qcap ? cl->qcap * 2 : 16;
    s_qrange_t *q = malloc(cap * sizeof *q);
    if (!q)
        return PD_ENOMEM;
    for (size_t i = 0; i < cl->qlen; i++)
        q[i] = cl->q[(cl->qhead + i) & (cl->qcap - 1)];
    free(cl->q);
    cl->q = q;
    cl->qcap = cap;
    cl->qhead = 0;
    return 0;
}

static s_qrange_t *s_q_at(s_client_t *cl, size_t i)
{
    return &cl->q[(cl->qhead + i) & (cl->qcap - 1)];
}

static int s_q_push_back(s_client_t *cl, uint64_t first, uint64_t count)
{
    if (cl->qlen) {
        s_qrange_t *t = s_q_at(cl, cl->qlen - 1);
        if (t->first + t->count == first) {
            t->count += count;
            return 0;
        }
    }
    if (cl->qlen == cl->qcap && s_q_grow(cl))
        return PD_ENOMEM;
    *s_q_at(cl, cl->qlen) = (s_qrange_t){first, count};
    cl->qlen++;
    return 0;
}

static int s_q_push_front(s_client_t *cl, uint64_t id)
{
    if (cl->qlen) {
        s_qrange_t *h = s_q_at(cl, 0);
        if (h->first == id + 1) {
            h->first = id;
            h->count++;
            return 0;
        }
    }
    if (cl->qlen == cl->qcap && s_q_grow(cl))
        return PD_ENOMEM;
    cl->qhead = (cl->qhead + cl->qcap - 1) & (cl->qcap - 1);
    cl->qlen++;
    *s_q_at(cl, 0) = (s_qrange_t){id, 1};
    return 0;
}

/* Drops ranges holding no queued job (cancelled ones). Called when the ring
   holds far more ranges than queued jobs, so its cost is amortised over the
   cancels that made the garbage. */
static void s_q_compact(pd_jobs_t *j, s_client_t *cl)
{
    size_t out = 0;
    for (size_t i = 0; i < cl->qlen; i++) {
        s_qrange_t r = *s_q_at(cl, i);
        while (r.count && pd_jobs_state(j, r.first) != PD_JOB_QUEUED)
            r.first++, r.count--;
        if (r.count)
            *s_q_at(cl, out++) = r;
    }
    cl->qlen = out;
}

/* ---- clients ------------------------------------------------------------ */

static void s_hex(const void *rid, size_t len, char *out)
{
    sodium_bin2hex(out, 2 * len + 1, rid, len); /* out holds 2 * len + 1 */
}

/* The record of this routing id's jobs of class cls, created when new;
   NULL when out of memory. An empty id is the anonymous client "-"; a GPU
   record's key is the CPU one's with a "g" in front. */
static s_client_t *s_client_get(pd_jobs_t *j, const void *rid, size_t len, int cls)
{
    char key[2 * PD_JOBS_MAX_CLIENT_ID + 3];
    assert(len <= PD_JOBS_MAX_CLIENT_ID);
    char *k = key;
    if (cls == PD_JOBS_GPU)
        *k++ = 'g';
    if (len)
        s_hex(rid, len, k);
    else
        snprintf(k, sizeof key - 1, "-");
    void *v = zhashx_lookup(j->client_index, key);
    if (v)
        return j->clients[(uintptr_t) v - 1];
    uint32_t idx = 0;
    while (idx < j->nclients && j->clients[idx])
        idx++;
    if (idx == j->capclients) {
        uint32_t cap = j->capclients ? j->capclients * 2 : 16;
        s_client_t **a = realloc(j->clients, cap * sizeof *a);
        if (!a)
            return NULL;
        j->clients = a;
        j->capclients = cap;
    }
    size_t klen = strlen(key) + 1;
    s_client_t *cl = calloc(1, sizeof *cl + klen);
    if (!cl)
        return NULL;
    memcpy(cl->key, key, klen);
    cl->index = idx;
    cl->cls = (uint8_t) cls;
    if (zhashx_insert(j->client_index, key, (void *) (uintptr_t) (idx + 1))) {
        free(cl);
        return NULL;
    }
    j->clients[idx] = cl;
    if (idx == j->nclients)
        j->nclients++;
    return cl;
}

static void s_ring_insert(pd_jobs_t *j, s_client_t *cl)
{
    int c = cl->cls;
    if (j->nactive[c] == 0) {
        cl->prev = cl->next = cl->index;
        j->cursor[c] = cl->index;
    } else {
        /* Just before the cursor: the end of the current round. */
        s_client_t *at = j->clients[j->cursor[c]];
        s_client_t *before = j->clients[at->prev];
        cl->next = at->index;
        cl->prev = before->index;
        before->next = cl->index;
        at->prev = cl->index;
    }
    cl->active = true;
    j->nactive[c]++;
}

static void s_ring_remove(pd_jobs_t *j, s_client_t *cl)
{
    int c = cl->cls;
    if (--j->nactive[c] > 0) {
        j->clients[cl->prev]->next = cl->next;
        j->clients[cl->next]->prev = cl->prev;
        if (j->cursor[c] == cl->index)
            j->cursor[c] = cl->next;
    }
    cl->active = false;
}

/* Puts the client in or out of the dispatch ring after its counts changed;
   frees it once it holds no unfinished job. cl must not be used after. */
static void s_client_refresh(pd_jobs_t *j, s_client_t *cl)
{
    bool want = cl->queued > 0 && (cl->max_slots == 0 || cl->running < cl->max_slots);
    if (want && !cl->active)
        s_ring_insert(j, cl);
    else if (!want && cl->active)
        s_ring_remove(j, cl);
    if (cl->queued == 0 && cl->running == 0) {
        zhashx_delete(j->client_index, cl->key);
        j->clients[cl->index] = NULL;
        while (j->nclients && !j->clients[j->nclients - 1])
            j->nclients--;
        free(cl->q);
        free(cl);
    } else if (cl->qlen > 64 && cl->qlen > 4 * (cl->queued + 16)) {
        s_q_compact(j, cl);
    }
}

/* The first queued id in the client's ring, dropping what is no longer
   queued (cancelled) from its head; 0 when none. */
static uint64_t s_client_head(pd_jobs_t *j, s_client_t *cl)
{
    while (cl->qlen) {
        s_qrange_t *h = &cl->q[cl->qhead];
        if (pd_jobs_state(j, h->first) == PD_JOB_QUEUED)
            return h->first;
        h->first++;
        if (--h->count == 0) {
            cl->qhead = (cl->qhead + 1) & (cl->qcap - 1);
            cl->qlen--;
        }
    }
    return 0;
}

void pd_jobs_set_pop_limit(pd_jobs_t *j, uint64_t limit) { j->pop_limit = limit; }

bool pd_jobs_ready(pd_jobs_t *j, int cls)
{
    assert(cls >= 0 && cls < PD_JOBS_CLASSES);
    if (!j->nactive[cls])
        return false;
    if (!j->pop_limit)
        return true;
    uint32_t at = j->cursor[cls];
    for (uint32_t k = 0; k < j->nactive[cls]; k++) {
        s_client_t *cl = j->clients[at];
        uint64_t head = s_client_head(j, cl);
        if (head && head < j->pop_limit)
            return true;
        at = cl->next;
    }
    return false;
}

uint64_t pd_jobs_pop(pd_jobs_t *j, int cls) { return pd_jobs_pop_if(j, cls, NULL, NULL); }

uint64_t pd_jobs_pop_if(pd_jobs_t *j, int cls, bool (*fits)(void *user, const pd_job_t *job),
                        void *user)
{
    assert(cls >= 0 && cls < PD_JOBS_CLASSES);
    for (uint32_t tried = 0; j->nactive[cls] && tried < j->nactive[cls]; tried++) {
        s_client_t *cl = j->clients[j->cursor[cls]];
        /* An active client has queued jobs in its ring: cancelled ones are
           dropped here, already counted out of `queued`. */
        uint64_t id = s_client_head(j, cl);
        assert(id);
        if ((j->pop_limit && id >= j->pop_limit) || (fits && !fits(user, pd_jobs_get(j, id)))) {
            /* Not on disk yet, or not for this caller: the next client's turn. */
            j->cursor[cls] = cl->next;
            continue;
        }
        s_qrange_t *h = &cl->q[cl->qhead];
        h->first++;
        if (--h->count == 0) {
            cl->qhead = (cl->qhead + 1) & (cl->qcap - 1);
            cl->qlen--;
        }
        pd_job_t *job = pd_jobs_get(j, id);
        job->state = PD_JOB_RUNNING;
        job->attempt++;
        j->queued--;
        j->queued_cls[cls]--;
        cl->queued--;
        cl->running++;
        j->cursor[cls] = cl->next;
        if (cl->queued == 0 || (cl->max_slots && cl->running >= cl->max_slots))
            s_client_refresh(j, cl); /* it leaves the ring */
        return id;
    }
    return 0;
}

uint32_t pd_jobs_clients(const pd_jobs_t *j) { return (uint32_t) zhashx_size(j->client_index); }

uint64_t pd_jobs_shared_open(const pd_jobs_t *j, uint32_t shared)
{
    return shared < j->nshared ? j->shared_open[shared] : 0;
}

/* Counts a job naming shared data (index + 1 in sh; 0 = none). */
static int s_shared_add(pd_jobs_t *j, uint32_t sh, uint64_t n)
{
    if (!sh)
        return 0;
    uint32_t i = sh - 1;
    if (i >= j->nshared) {
        uint32_t cap = j->nshared ? j->nshared : 16;
        while (cap <= i)
            cap *= 2;
        uint64_t *a = realloc(j->shared_open, cap * sizeof *a);
        if (!a)
            return PD_ENOMEM;
        memset(a + j->nshared, 0, (cap - j->nshared) * sizeof *a);
        j->shared_open = a;
        j->nshared = cap;
    }
    j->shared_open[i] += n;
    return 0;
}

/* ---- submit ------------------------------------------------------------ */

int pd_jobs_submit(pd_jobs_t *j, uint32_t mod, const char *fn, const uint8_t *args,
                   size_t args_len, uint32_t timeout_ms, uint32_t retries, uint64_t *first,
                   uint32_t *n, char *why, size_t whycap)
{
    pd_jobs_submit_t sub = {.mod = mod, .fn = fn, .args = args, .args_len = args_len,
                            .timeout_ms = timeout_ms, .retries = retries};
    return pd_jobs_submit_ex(j, &sub, first, n, why, whycap);
}

int pd_jobs_submit_ex(pd_jobs_t *j, const pd_jobs_submit_t *sub, uint64_t *first, uint32_t *n,
                      char *why, size_t whycap)
{
    const char *fn = sub->fn;
    const uint8_t *args = sub->args;
    size_t args_len = sub->args_len;
    uint32_t retries = sub->retries;
    size_t fnlen = strlen(fn);
    if (fnlen == 0 || fnlen > PD_JOBS_MAX_FN) {
        snprintf(why, whycap, "submit: 'fn' must be a function name of 1 to %u bytes",
                 PD_JOBS_MAX_FN);
        return PD_EINVAL;
    }
    if (retries > PD_JOBS_MAX_RETRIES) {
        snprintf(why, whycap, "submit: 'retries' is %u; at most %u are allowed", retries,
                 PD_JOBS_MAX_RETRIES);
        return PD_EINVAL;
    }
    if (sub->retry_failed > PD_JOBS_MAX_RETRY_FAILED) {
        snprintf(why, whycap, "submit: 'retry_failed' is %u; at most %u are allowed",
                 sub->retry_failed, PD_JOBS_MAX_RETRY_FAILED);
        return PD_EINVAL;
    }
    pd_rd_t r;
    pd_rd_init(&r, args, args_len);
    uint32_t count;
    if (pd_rd_array(&r, &count)) {
        snprintf(why, whycap, "submit: 'args' must be an array with one value per job");
        return PD_EPROTO;
    }
    if (count > j->max - j->unfinished) {
        snprintf(why, whycap,
                 "the broker holds %llu unfinished jobs of at most %llu and cannot take %u "
                 "more: wait for results or raise --max-jobs",
                 (unsigned long long) j->unfinished, (unsigned long long) j->max, count);
        return PD_EOVERLOAD;
    }
    if (count > 0 && args_len > j->max_arg_bytes - (j->arg_bytes < j->max_arg_bytes
                                                     ? j->arg_bytes : j->max_arg_bytes)) {
        snprintf(why, whycap,
                 "the broker holds %.1f MiB of arguments of unfinished jobs, of at most %.1f "
                 "MiB, and cannot take %.1f MiB more: wait for results, or raise its "
                 "max_queued_mb", (double) j->arg_bytes / 1048576.0,
                 (double) j->max_arg_bytes / 1048576.0, (double) args_len / 1048576.0);
        return PD_EOVERLOAD;
    }
    *first = j->next_id;
    *n = count;
    if (count == 0)
        return 0;
    if (sub->client_len > PD_JOBS_MAX_CLIENT_ID) {
        snprintf(why, whycap, "submit: client routing id longer than %u bytes",
                 PD_JOBS_MAX_CLIENT_ID);
        return PD_EINVAL;
    }
    int rc;
    uint32_t fni = s_intern(j, fn, sub->owner ? sub->owner : "", &sub->limits, &rc);
    if (rc || s_chunks_reserve(j, j->next_id, count)) {
        snprintf(why, whycap, "the broker is out of memory");
        return PD_ENOMEM;
    }
    /* A job that ships CUDA kernels can only run where there is a GPU. */
    bool gpu = sub->gpu || sub->cu;
    s_client_t *cl = s_client_get(j, sub->client, sub->client_len,
                                  gpu ? PD_JOBS_GPU : PD_JOBS_CPU);
    /* The blob holds the whole array; jobs point at their element. */
    pd_blob_t *blob = cl ? pd_blob_new(args, args_len, count) : NULL;
    if (!blob || s_q_push_back(cl, j->next_id, count) || s_shared_add(j, sub->shared, 0)) {
        free(blob);
        if (cl && cl->qlen && s_q_at(cl, cl->qlen - 1)->first + s_q_at(cl, cl->qlen - 1)->count ==
                                  j->next_id + count) {
            /* undo the push: the ids were never handed out */
            s_qrange_t *t = s_q_at(cl, cl->qlen - 1);
            t->count -= count;
            if (t->count == 0)
                cl->qlen--;
        }
        if (cl)
            s_client_refresh(j, cl);
        snprintf(why, whycap, "the broker is out of memory");
        return PD_ENOMEM;
    }
    blob->key = j->next_id;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t id = j->next_id + i;
        const uint8_t *raw;
        size_t rawlen;
        int skip = pd_rd_skip(&r, &raw, &rawlen);
        assert(skip == 0); /* the frame was checked whole by pd_msg_parse */
        (void) skip;
        uint64_t c = (id - 1) >> S_CHUNK_BITS;
        pd_job_t *job = &j->chunks[c][(id - 1) & (S_CHUNK - 1)];
        memset(job, 0, sizeof *job);
        job->state = PD_JOB_QUEUED;
        job->retries = (uint8_t) retries;
        job->retry_failed = (uint8_t) sub->retry_failed;
        job->mod = sub->mod;
        job->fn = fni;
        job->timeout_ms = sub->timeout_ms;
        job->gpu = gpu;
        job->cu = sub->cu;
        job->client = cl->index;
        job->shared = sub->shared;
        job->arg = blob;
        job->arg_off = (uint32_t) (raw - args);
        job->arg_len = (uint32_t) rawlen;
        j->live[c]++;
    }
    j->next_id += count;
    j->unfinished += count;
    j->arg_bytes += blob->len;
    j->queued += count;
    j->queued_cls[cl->cls] += count;
    cl->queued += count;
    cl->max_slots = sub->max_slots;
    s_shared_add(j, sub->shared, count); /* the array exists: it cannot fail now */
    s_client_refresh(j, cl);
    return 0;
}

/* ---- result segments --------------------------------------------------- */

static void s_fresh_add(pd_jobs_t *j, uint64_t id)
{
    if (j->nfresh == j->capfresh) {
        size_t cap = j->capfresh ? j->capfresh * 2 : 1024;
        uint64_t *f = realloc(j->fresh, cap * sizeof *f);
        if (!f)
            return; /* a missed wake-up: the parked fetch still answers at wait_ms */
        j->fresh = f;
        j->capfresh = cap;
    }
    if (j->nfresh && j->fresh[j->nfresh - 1] > id)
        j->fresh_sorted = false;
    j->fresh[j->nfresh++] = id;
}

void pd_jobs_seal(pd_jobs_t *j)
{
    if (j->nseg == 0)
        return;
    uint8_t *d = j->seg.data;
    uint32_t n = (uint32_t) j->nseg;
    d[1] = (uint8_t) (n >> 24);
    d[2] = (uint8_t) (n >> 16);
    d[3] = (uint8_t) (n >> 8);
    d[4] = (uint8_t) n;
    pd_blob_t *blob = pd_blob_new(d, j->seg.len, 0);
    for (size_t i = 0; i < j->nseg; i++) {
        pd_job_t *job = pd_jobs_get(j, j->segids[i]);
        assert(job && PD_JOB_IS_FINAL(job->state) && !job->res);
        if (blob) {
            job->res = blob;
            blob->refs++;
        } else {
            job->res_off = job->res_len = 0; /* out of memory: nil, not journalled */
        }
    }
    j->nseg = 0;
    pd_buf_reset(&j->seg);
    if (blob && j->hooks.sealed)
        j->hooks.sealed(j->hooks_user, blob);
}

/* Makes job id (just made final with state) an entry of the open segment;
   pack() writes its value. Returns 0 or PD_ENOMEM (then the job is final
   with a nil value and no entry). */
static int s_seg_add(pd_jobs_t *j, uint64_t id, pd_job_t *job, uint8_t state,
                     void (*pack)(msgpack_packer *pk, const void *arg), const void *arg,
                     size_t hint)
{
    if (j->nseg && (j->nseg >= PD_JOBS_SEG_JOBS || j->seg.len + hint > PD_JOBS_SEG_BYTES))
        pd_jobs_seal(j);
    job->res = NULL;
    job->res_off = job->res_len = 0;
    if (j->nseg == j->capseg) {
        size_t cap = j->capseg ? j->capseg * 2 : 1024;
        uint64_t *ids = realloc(j->segids, cap * sizeof *ids);
        if (!ids)
            return PD_ENOMEM;
        j->segids = ids;
        j->capseg = cap;
    }
    size_t start = j->seg.len;
    msgpack_packer pk;
    pd_packer_init(&pk, &j->seg);
    if (j->nseg == 0) {
        static const uint8_t head[5] = {0xdd, 0, 0, 0, 0};
        pd_buf_append(&j->seg, head, sizeof head);
    }
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint64(&pk, id);
    msgpack_pack_uint8(&pk, state);
    size_t val = j->seg.len;
    pack(&pk, arg);
    if (j->seg.failed || j->seg.len - val > UINT32_MAX) {
        j->seg.failed = false;
        j->seg.len = start;
        return PD_ENOMEM;
    }
    job->res_off = (uint32_t) val;
    job->res_len = (uint32_t) (j->seg.len - val);
    j->segids[j->nseg++] = id;
    return 0;
}

/* Common part of every final transition. */
static pd_job_t *s_finish(pd_jobs_t *j, uint64_t id, uint8_t state)
{
    pd_job_t *job = pd_jobs_get(j, id);
    assert(job && !PD_JOB_IS_FINAL(job->state));
    s_client_t *cl = j->clients[job->client];
    assert(cl);
    bool was_capped = cl->max_slots && cl->running >= cl->max_slots;
    if (job->state == PD_JOB_QUEUED) {
        j->queued--;
        j->queued_cls[cl->cls]--;
        cl->queued--;
    } else {
        cl->running--;
    }
    if (job->shared)
        j->shared_open[job->shared - 1]--;
    j->unfinished--;
    job->state = state;
    s_unref(j, &job->arg, true);
    job->arg_off = job->arg_len = 0;
    s_fresh_add(j, id);
    /* Only a change of the client's standing needs the ring: a running job
       that ends leaves an uncapped client where it was, and a client with
       nothing queued that is already out of the ring stays out until its
       last job ends (then it is freed). */
    if (was_capped || (cl->queued == 0 && (cl->active || cl->running == 0)) || cl->qlen > 64)
        s_client_refresh(j, cl);
    return job;
}

typedef struct {
    const uint8_t *p; /* bytes */
    size_t len;       /* how many */
} s_raw_t;

static void s_pack_raw(msgpack_packer *pk, const void *arg)
{
    const s_raw_t *r = arg;
    pd_pack_raw(pk, r->p, r->len);
}

static void s_pack_nil(msgpack_packer *pk, const void *arg)
{
    (void) arg;
    msgpack_pack_nil(pk);
}

typedef struct {
    const char *code, *msg, *host; /* error map fields */
    int64_t slot;                  /* slot, -1 = none */
    uint32_t attempts;             /* runs started */
    const uint8_t *value;          /* the job's partial output (one msgpack value), or NULL */
    size_t len;                    /* bytes in value */
} s_err_t;

static void s_pack_err(msgpack_packer *pk, const void *arg)
{
    const s_err_t *e = arg;
    msgpack_pack_map(pk, e->value && e->len ? 6 : 5);
    pd_pack_kv_str(pk, "code", e->code);
    pd_pack_kv_str(pk, "msg", e->msg);
    pd_pack_kv_str(pk, "host", e->host);
    pd_pack_kv_int(pk, "slot", e->slot);
    pd_pack_kv_uint(pk, "attempts", e->attempts);
    if (e->value && e->len) {
        pd_pack_cstr(pk, "value");
        pd_pack_raw(pk, e->value, e->len);
    }
}

int pd_jobs_set_done(pd_jobs_t *j, uint64_t id, const uint8_t *val, uint32_t len)
{
    pd_job_t *job = pd_jobs_get(j, id);
    assert(job && job->arg);
    job->arg->flags |= PD_BLOB_SUCCEEDED;
    job = s_finish(j, id, PD_JOB_DONE);
    s_raw_t r = {val, len};
    return s_seg_add(j, id, job, PD_JOB_DONE, s_pack_raw, &r, len);
}

int pd_jobs_set_failed(pd_jobs_t *j, uint64_t id, const char *code, const char *msg,
                       const char *host, int64_t slot)
{
    return pd_jobs_set_failed_value(j, id, code, msg, host, slot, NULL, 0);
}

int pd_jobs_set_failed_value(pd_jobs_t *j, uint64_t id, const char *code, const char *msg,
                             const char *host, int64_t slot, const uint8_t *value, size_t len)
{
    pd_job_t *job = s_finish(j, id, PD_JOB_FAILED);
    s_err_t e = {code, msg, host, slot, job->attempt, value, len};
    return s_seg_add(j, id, job, PD_JOB_FAILED, s_pack_err, &e, strlen(msg) + len + 100);
}

int pd_jobs_set_cancelled(pd_jobs_t *j, uint64_t id)
{
    pd_job_t *job = s_finish(j, id, PD_JOB_CANCELLED);
    return s_seg_add(j, id, job, PD_JOB_CANCELLED, s_pack_nil, NULL, 1);
}

bool pd_jobs_result(pd_jobs_t *j, uint64_t id, const uint8_t **val, uint32_t *len)
{
    pd_job_t *job = pd_jobs_get(j, id);
    if (!job || !PD_JOB_IS_FINAL(job->state))
        return false;
    if (!job->res && job->res_len)
        pd_jobs_seal(j);
    if (!job->res || !job->res_len)
        return false;
    *val = job->res->data + job->res_off;
    *len = job->res_len;
    return true;
}

bool pd_jobs_retry_failed(pd_jobs_t *j, uint64_t id, const char *code, const char *host)
{
    pd_job_t *job = pd_jobs_get(j, id);
    assert(job && job->state == PD_JOB_RUNNING);
    bool own = strcmp(code, "PD_ETASK") == 0 || strcmp(code, "PD_ECRASH") == 0 ||
               strcmp(code, "PD_ETIMEDOUT") == 0;
    if (!own || job->failures >= job->retry_failed)
        return false;
    job->failures++;
    return pd_jobs_requeue(j, id, false, host) == 0;
}

int pd_jobs_requeue(pd_jobs_t *j, uint64_t id, bool lost, const char *host)
{
    pd_job_t *job = pd_jobs_get(j, id);
    assert(job && job->state == PD_JOB_RUNNING);
    if (lost) {
        job->losses++;
        unsigned allowed = job->retries ? job->retries : 1;
        if (job->losses >= allowed) {
            /* The limit counts lost workers only: a worker that said bye, a
               broker restart or the owner taking a slot back started the job
               again without counting, so runs can exceed it. */
            char msg[240];
            snprintf(msg, sizeof msg, "worker %s was lost while running the job: %u workers lost "
                     "with it, the limit (retries %u); started %u times in all", host,
                     (unsigned) job->losses, allowed, (unsigned) job->attempt);
            pd_jobs_set_failed(j, id, "PD_ELOST", msg, host, -1);
            return 1;
        }
    }
    s_client_t *cl = j->clients[job->client];
    if (s_q_push_front(cl, id)) {
        /* Out of memory for the ring: fail the job rather than lose it. */
        pd_jobs_set_failed(j, id, "PD_ENOMEM", "the broker ran out of memory requeueing the job",
                           host, -1);
        return 1;
    }
    job->state = PD_JOB_QUEUED;
    j->queued++;
    j->queued_cls[cl->cls]++;
    cl->running--;
    cl->queued++;
    s_client_refresh(j, cl);
    return 0;
}

/* ---- forgetting -------------------------------------------------------- */

/* Clears a record and frees its chunk when it was the chunk's last. */
static void s_drop_record(pd_jobs_t *j, uint64_t id, pd_job_t *job)
{
    memset(job, 0, sizeof *job);
    uint64_t c = (id - 1) >> S_CHUNK_BITS;
    if (--j->live[c] == 0 && j->next_id > (c + 1) * (uint64_t) S_CHUNK) {
        free(j->chunks[c]);
        j->chunks[c] = NULL;
    }
}

bool pd_jobs_forget(pd_jobs_t *j, uint64_t id)
{
    pd_job_t *job = pd_jobs_get(j, id);
    if (!job || !PD_JOB_IS_FINAL(job->state))
        return false;
    if (!job->res && job->res_len)
        pd_jobs_seal(j);
    s_unref(j, &job->res, false);
    s_drop_record(j, id, job);
    if (j->hooks.forgot)
        j->hooks.forgot(j->hooks_user, id);
    return true;
}

void pd_jobs_withdraw(pd_jobs_t *j, uint64_t first, uint32_t n)
{
    for (uint64_t id = first; id < first + n; id++) {
        pd_job_t *job = pd_jobs_get(j, id);
        if (!job)
            continue;
        if (PD_JOB_IS_FINAL(job->state)) {
            pd_jobs_forget(j, id);
        } else if (job->state == PD_JOB_QUEUED) {
            s_client_t *cl = j->clients[job->client];
            j->queued--;
            j->queued_cls[cl->cls]--;
            cl->queued--;
            if (job->shared)
                j->shared_open[job->shared - 1]--;
            j->unfinished--;
            s_unref(j, &job->arg, true);
            s_drop_record(j, id, job); /* its id stays in the ring: skipped when popped */
            s_client_refresh(j, cl);
        }
    }
}

bool pd_jobs_mark_fetched(pd_jobs_t *j, uint64_t id, uint32_t now_s)
{
    pd_job_t *job = pd_jobs_get(j, id);
    if (!job || !PD_JOB_IS_FINAL(job->state) || job->fetched)
        return false;
    if (!job->res && job->res_len)
        pd_jobs_seal(j);
    uint32_t sec = now_s + 1;
    job->fetched = sec;
    if (j->hooks.fetched)
        j->hooks.fetched(j->hooks_user, id, now_s);
    if (j->ttllen) {
        s_ttl_t *t = &j->ttl[(j->ttlhead + j->ttllen - 1) & (j->ttlcap - 1)];
        if (t->sec == sec && t->first + t->count == id && t->count < UINT32_MAX) {
            t->count++;
            return true;
        }
    }
    if (j->ttllen == j->ttlcap) {
        size_t cap = j->ttlcap * 2;
        s_ttl_t *t = malloc(cap * sizeof *t);
        if (!t)
            return true; /* kept until released: memory, not correctness */
        for (size_t i = 0; i < j->ttllen; i++)
            t[i] = j->ttl[(j->ttlhead + i) & (j->ttlcap - 1)];
        free(j->ttl);
        j->ttl = t;
        j->ttlcap = cap;
        j->ttlhead = 0;
    }
    j->ttl[(j->ttlhead + j->ttllen) & (j->ttlcap - 1)] = (s_ttl_t){id, 1, sec};
    j->ttllen++;
    return true;
}

uint64_t pd_jobs_expire(pd_jobs_t *j, uint32_t now_s, uint32_t ttl_s)
{
    uint64_t n = 0;
    while (j->ttllen) {
        s_ttl_t t = j->ttl[j->ttlhead];
        if ((uint64_t) t.sec - 1 + ttl_s > now_s)
            break;
        for (uint32_t i = 0; i < t.count; i++) {
            pd_job_t *job = pd_jobs_get(j, t.first + i);
            if (job && job->fetched == t.sec && pd_jobs_forget(j, t.first + i))
                n++;
        }
        j->ttlhead = (j->ttlhead + 1) & (j->ttlcap - 1);
        j->ttllen--;
        if (j->hooks.expired)
            j->hooks.expired(j->hooks_user, t.first, t.count);
    }
    return n;
}

size_t pd_jobs_ttl_count(const pd_jobs_t *j) { return j->ttllen; }

void pd_jobs_ttl_at(const pd_jobs_t *j, size_t i, uint64_t *first, uint32_t *count,
                    uint32_t *sec)
{
    assert(i < j->ttllen);
    const s_ttl_t *t = &j->ttl[(j->ttlhead + i) & (j->ttlcap - 1)];
    *first = t->first;
    *count = t->count;
    *sec = t->sec - 1;
}

/* ---- fresh ------------------------------------------------------------- */

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

const uint64_t *pd_jobs_fresh(pd_jobs_t *j, size_t *n)
{
    if (!j->fresh_sorted) {
        qsort(j->fresh, j->nfresh, sizeof *j->fresh, s_cmp_u64);
        j->fresh_sorted = true;
    }
    *n = j->nfresh;
    return j->fresh;
}

void pd_jobs_fresh_clear(pd_jobs_t *j)
{
    j->nfresh = 0;
    j->fresh_sorted = true;
}

uint64_t pd_jobs_unfinished(const pd_jobs_t *j) { return j->unfinished; }
uint64_t pd_jobs_queued(const pd_jobs_t *j) { return j->queued; }

uint64_t pd_jobs_queued_in(const pd_jobs_t *j, int cls)
{
    assert(cls >= 0 && cls < PD_JOBS_CLASSES);
    return j->queued_cls[cls];
}
uint64_t pd_jobs_next_id(const pd_jobs_t *j) { return j->next_id; }
uint64_t pd_jobs_max(const pd_jobs_t *j) { return j->max; }
uint64_t pd_jobs_arg_bytes(const pd_jobs_t *j) { return j->arg_bytes; }
uint64_t pd_jobs_arg_freed(const pd_jobs_t *j) { return j->arg_freed; }
void pd_jobs_set_max_arg_bytes(pd_jobs_t *j, uint64_t max)
{
    j->max_arg_bytes = max ? max : PD_JOBS_DEFAULT_MAX_ARG_BYTES;
}

/* ---- tokens ------------------------------------------------------------ */

static void s_token_hex(const void *token, size_t len, char *out)
{
    sodium_bin2hex(out, 2 * len + 1, token, len); /* out holds 2 * len + 1 */
}

bool pd_jobs_token_find(pd_jobs_t *j, const void *token, size_t len, uint64_t *first,
                        uint32_t *n)
{
    if (len == 0 || len > PD_JOBS_TOKEN_MAX)
        return false;
    char key[2 * PD_JOBS_TOKEN_MAX + 1];
    s_token_hex(token, len, key);
    s_token_t *t = zhashx_lookup(j->tokens, key);
    if (!t || t->first == 0)
        return false;
    *first = t->first;
    *n = t->n;
    return true;
}

void pd_jobs_token_drop(pd_jobs_t *j, const void *token, size_t len)
{
    if (len == 0 || len > PD_JOBS_TOKEN_MAX)
        return;
    char key[2 * PD_JOBS_TOKEN_MAX + 1];
    s_token_hex(token, len, key);
    s_token_t *t = zhashx_lookup(j->tokens, key);
    if (t) /* stays in the ring until it expires; marked withdrawn */
        t->first = 0;
}

/* Forgets the oldest token. */
static void s_token_pop(pd_jobs_t *j)
{
    s_token_t *t = j->tokring[j->tokhead];
    zhashx_delete(j->tokens, t->key);
    free(t);
    j->tokhead = (j->tokhead + 1) & (j->tokcap - 1);
    j->toklen--;
}

int pd_jobs_token_add(pd_jobs_t *j, const void *token, size_t len, uint64_t first, uint32_t n,
                      uint32_t now_s)
{
    assert(len > 0 && len <= PD_JOBS_TOKEN_MAX);
    if (j->toklen >= PD_JOBS_TOKENS_MAX)
        s_token_pop(j);
    if (j->toklen == j->tokcap) {
        size_t cap = j->tokcap * 2;
        s_token_t **r = malloc(cap * sizeof *r);
        if (!r)
            return PD_ENOMEM;
        for (size_t i = 0; i < j->toklen; i++)
            r[i] = j->tokring[(j->tokhead + i) & (j->tokcap - 1)];
        free(j->tokring);
        j->tokring = r;
        j->tokcap = cap;
        j->tokhead = 0;
    }
    s_token_t *t = calloc(1, sizeof *t);
    if (!t)
        return PD_ENOMEM;
    t->first = first;
    t->n = n;
    t->sec = now_s;
    t->len = (uint32_t) len;
    memcpy(t->token, token, len);
    s_token_hex(token, len, t->key);
    s_token_t *known = zhashx_lookup(j->tokens, t->key);
    if (known) {
        if (known->first == 0) { /* withdrawn: this submit takes its place */
            known->first = first;
            known->n = n;
        }
        free(t); /* else the first submit's ids stand */
        return 0;
    }
    if (zhashx_insert(j->tokens, t->key, t) != 0) {
        free(t);
        return PD_ENOMEM;
    }
    j->tokring[(j->tokhead + j->toklen) & (j->tokcap - 1)] = t;
    j->toklen++;
    return 0;
}

size_t pd_jobs_token_expire(pd_jobs_t *j, uint32_t now_s, uint32_t ttl_s)
{
    size_t n = 0;
    while (j->toklen && (uint64_t) j->tokring[j->tokhead]->sec + ttl_s <= now_s) {
        s_token_pop(j);
        n++;
    }
    return n;
}

void pd_jobs_token_each(pd_jobs_t *j,
                        void (*fn)(void *user, const uint8_t *token, size_t len, uint64_t first,
                                   uint32_t n, uint32_t sec),
                        void *user)
{
    for (size_t i = 0; i < j->toklen; i++) {
        const s_token_t *t = j->tokring[(j->tokhead + i) & (j->tokcap - 1)];
        if (t->first)
            fn(user, t->token, t->len, t->first, t->n, t->sec);
    }
}

/* ---- recovery and walks ------------------------------------------------ */

void pd_jobs_set_next_id(pd_jobs_t *j, uint64_t next_id)
{
    if (next_id > j->next_id)
        j->next_id = next_id;
}

/* The record slot of id (its chunk allocated); NULL when out of memory. */
static pd_job_t *s_slot(pd_jobs_t *j, uint64_t id)
{
    if (s_chunks_reserve(j, id, 1))
        return NULL;
    return &j->chunks[(id - 1) >> S_CHUNK_BITS][(id - 1) & (S_CHUNK - 1)];
}

int64_t pd_jobs_restore_batch(pd_jobs_t *j, uint64_t first, uint32_t n,
                              const pd_jobs_submit_t *sub,
                              bool (*skip)(void *user, uint64_t id), void *user, char *why,
                              size_t whycap)
{
    const uint8_t *args = sub->args;
    size_t args_len = sub->args_len;
    size_t fnlen = strlen(sub->fn);
    if (n == 0 || first == 0 || first > j->next_id || n > j->next_id - first) {
        snprintf(why, whycap, "batch of %u jobs from id %llu does not fit below the next id "
                 "%llu", n, (unsigned long long) first, (unsigned long long) j->next_id);
        return PD_EPROTO;
    }
    if (fnlen == 0 || fnlen > PD_JOBS_MAX_FN || sub->retries > PD_JOBS_MAX_RETRIES ||
        sub->retry_failed > PD_JOBS_MAX_RETRY_FAILED || sub->client_len > PD_JOBS_MAX_CLIENT_ID) {
        snprintf(why, whycap, "batch from id %llu has a bad function name, retries, "
                 "retry_failed or client",
                 (unsigned long long) first);
        return PD_EPROTO;
    }
    pd_rd_t r;
    pd_rd_init(&r, args, args_len);
    uint32_t count;
    if (pd_mp_check(args, args_len, PD_MAX_DEPTH, NULL) || pd_rd_array(&r, &count) ||
        count != n) {
        snprintf(why, whycap, "batch from id %llu: its arguments are not an array of %u values",
                 (unsigned long long) first, n);
        return PD_EPROTO;
    }
    for (uint64_t id = first; id < first + n; id++)
        if (pd_jobs_get(j, id)) {
            snprintf(why, whycap, "job %llu appears twice (batches overlap)",
                     (unsigned long long) id);
            return PD_EPROTO;
        }
    int rc;
    uint32_t fni = s_intern(j, sub->fn, sub->owner ? sub->owner : "", &sub->limits, &rc);
    bool gpu = sub->gpu || sub->cu;
    s_client_t *cl = rc ? NULL : s_client_get(j, sub->client, sub->client_len,
                                              gpu ? PD_JOBS_GPU : PD_JOBS_CPU);
    pd_blob_t *blob = cl ? pd_blob_new(args, args_len, 0) : NULL;
    if (!blob || s_chunks_reserve(j, first, n) || s_shared_add(j, sub->shared, 0)) {
        free(blob);
        if (cl)
            s_client_refresh(j, cl);
        snprintf(why, whycap, "out of memory");
        return PD_ENOMEM;
    }
    blob->key = first;
    uint64_t run_first = 0, run_n = 0, kept = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id = first + i;
        const uint8_t *raw;
        size_t rawlen;
        pd_rd_skip(&r, &raw, &rawlen);
        if (skip && skip(user, id))
            continue;
        uint64_t c = (id - 1) >> S_CHUNK_BITS;
        pd_job_t *job = &j->chunks[c][(id - 1) & (S_CHUNK - 1)];
        memset(job, 0, sizeof *job);
        job->state = PD_JOB_QUEUED;
        job->retries = (uint8_t) sub->retries;
        job->retry_failed = (uint8_t) sub->retry_failed;
        job->mod = sub->mod;
        job->fn = fni;
        job->timeout_ms = sub->timeout_ms;
        job->gpu = gpu;
        job->cu = sub->cu;
        job->client = cl->index;
        job->shared = sub->shared;
        job->arg = blob;
        job->arg_off = (uint32_t) (raw - args);
        job->arg_len = (uint32_t) rawlen;
        blob->refs++;
        j->live[c]++;
        kept++;
        if (run_n && run_first + run_n == id) {
            run_n++;
        } else {
            if (run_n && s_q_push_back(cl, run_first, run_n))
                goto oom;
            run_first = id;
            run_n = 1;
        }
    }
    if (run_n && s_q_push_back(cl, run_first, run_n))
        goto oom;
    j->unfinished += kept;
    j->queued += kept;
    j->queued_cls[cl->cls] += kept;
    cl->queued += kept;
    cl->max_slots = sub->max_slots;
    s_shared_add(j, sub->shared, kept);
    s_client_refresh(j, cl);
    if (kept == 0) {
        free(blob);
        return 0;
    }
    j->arg_bytes += blob->len;
    return (int64_t) kept;
oom:
    snprintf(why, whycap, "out of memory");
    return PD_ENOMEM; /* the table is unusable; the caller gives up */
}

int64_t pd_jobs_restore_segment(pd_jobs_t *j, uint64_t seg, const uint8_t *data, size_t len,
                                bool (*skip)(void *user, uint64_t id), void *user, char *why,
                                size_t whycap)
{
    pd_rd_t r;
    pd_rd_init(&r, data, len);
    uint32_t n;
    if (pd_mp_check(data, len, PD_MAX_DEPTH, NULL) || pd_rd_array(&r, &n)) {
        snprintf(why, whycap, "result segment %llu is not a msgpack array",
                 (unsigned long long) seg);
        return PD_EPROTO;
    }
    pd_blob_t *blob = pd_blob_new(data, len, 0);
    if (!blob) {
        snprintf(why, whycap, "out of memory");
        return PD_ENOMEM;
    }
    blob->key = seg;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t three;
        uint64_t id, state;
        const uint8_t *val;
        size_t vlen;
        if (pd_rd_array(&r, &three) || three != 3 || pd_rd_uint(&r, &id) ||
            pd_rd_uint(&r, &state) || pd_rd_skip(&r, &val, &vlen) || id == 0 ||
            id >= j->next_id || state < PD_JOB_DONE || state > PD_JOB_CANCELLED) {
            snprintf(why, whycap, "result segment %llu: entry %u is not [id, state, value] "
                     "with a known id and a final state", (unsigned long long) seg, i);
            goto bad;
        }
        if (skip && skip(user, id))
            continue;
        pd_job_t *job = pd_jobs_get(j, id);
        if (job && job->state != PD_JOB_QUEUED) {
            snprintf(why, whycap, "job %llu has two results (segment %llu)",
                     (unsigned long long) id, (unsigned long long) seg);
            goto bad;
        }
        if (job) {
            s_finish(j, id, (uint8_t) state); /* leaves its client's queue */
        } else {
            job = s_slot(j, id);
            if (!job) {
                snprintf(why, whycap, "out of memory");
                goto bad;
            }
            memset(job, 0, sizeof *job);
            j->live[(id - 1) >> S_CHUNK_BITS]++;
            /* Its batch is gone: no function, no owner until the journal's
               record of the batch says (pd_jobs_set_owner). */
            int irc;
            const pd_limits_t none = {0};
            job->fn = s_intern(j, "", "", &none, &irc);
            if (irc) {
                snprintf(why, whycap, "out of memory");
                goto bad;
            }
        }
        job->state = (uint8_t) state;
        job->res = blob;
        job->res_off = (uint32_t) (val - data);
        job->res_len = (uint32_t) vlen;
        blob->refs++;
    }
    if (blob->refs == 0) {
        free(blob);
        return 0;
    }
    return blob->refs;
bad:
    /* Jobs already pointing into the blob keep it; the caller gives up on
       the whole table anyway. */
    if (blob->refs == 0)
        free(blob);
    return PD_EPROTO;
}

int pd_jobs_set_owner(pd_jobs_t *j, uint64_t first, uint64_t n, const char *owner)
{
    uint32_t from = UINT32_MAX, to = 0; /* the last (fn, "") -> (fn, owner) */
    for (uint64_t id = first; id < first + n && id < j->next_id; id++) {
        pd_job_t *job = pd_jobs_get(j, id);
        if (!job)
            continue;
        if (job->fn != from) {
            if (pd_jobs_owner_id(j, job->fn)[0])
                continue;
            int rc;
            pd_limits_t lim = pd_jobs_fn_limits(j, job->fn);
            uint32_t fn = s_intern(j, pd_jobs_fn_name(j, job->fn), owner, &lim, &rc);
            if (rc)
                return rc;
            from = job->fn;
            to = fn;
        }
        job->fn = to;
    }
    return 0;
}

pd_jobs_owner_t *pd_jobs_owners(pd_jobs_t *j, size_t *n)
{
    *n = 0;
    /* Per interned (fn, owner) first, then merged by owner. */
    pd_jobs_owner_t *per = calloc(j->nfns ? j->nfns : 1, sizeof *per);
    const pd_blob_t **last_arg = calloc(j->nfns ? j->nfns : 1, sizeof *last_arg);
    uint32_t *order = malloc((j->nfns ? j->nfns : 1) * sizeof *order);
    pd_jobs_owner_t *out = NULL;
    size_t nout = 0;
    if (!per || !last_arg || !order)
        goto done;
    uint32_t norder = 0;
    for (uint64_t id = pd_jobs_next_known(j, 1); id; id = pd_jobs_next_known(j, id + 1)) {
        const pd_job_t *job = pd_jobs_get(j, id);
        pd_jobs_owner_t *o = &per[job->fn];
        if (!o->owner) {
            o->owner = pd_jobs_owner_id(j, job->fn);
            order[norder++] = job->fn;
        }
        if (job->state == PD_JOB_QUEUED)
            o->queued++;
        else if (job->state == PD_JOB_RUNNING)
            o->running++;
        else
            o->final++;
        if (!PD_JOB_IS_FINAL(job->state) && job->arg != last_arg[job->fn]) {
            last_arg[job->fn] = job->arg; /* a submit's jobs are contiguous */
            o->batches++;
        }
    }
    out = malloc((norder ? norder : 1) * sizeof *out);
    if (!out)
        goto done;
    for (uint32_t i = 0; i < norder; i++) {
        const pd_jobs_owner_t *o = &per[order[i]];
        size_t k = 0;
        while (k < nout && strcmp(out[k].owner, o->owner) != 0)
            k++;
        if (k == nout)
            out[nout++] = (pd_jobs_owner_t){.owner = o->owner};
        out[k].batches += o->batches;
        out[k].queued += o->queued;
        out[k].running += o->running;
        out[k].final += o->final;
    }
done:
    free(per);
    free(last_arg);
    free(order);
    if (!nout) {
        free(out);
        return NULL;
    }
    *n = nout;
    return out;
}

void pd_jobs_client_of(pd_jobs_t *j, const pd_job_t *job, uint8_t *rid, size_t *len,
                       uint32_t *max_slots)
{
    assert(!PD_JOB_IS_FINAL(job->state));
    const s_client_t *cl = j->clients[job->client];
    const char *k = cl->key[0] == 'g' ? cl->key + 1 : cl->key; /* GPU queue: "g" + hex */
    size_t n = 0;
    if (strcmp(k, "-") != 0)
        for (; k[2 * n] && k[2 * n + 1] && n < PD_JOBS_MAX_CLIENT_ID; n++) {
            unsigned v;
            sscanf(k + 2 * n, "%2x", &v);
            rid[n] = (uint8_t) v;
        }
    *len = n;
    *max_slots = cl->max_slots;
}

uint64_t pd_jobs_next_known(pd_jobs_t *j, uint64_t from)
{
    if (from == 0)
        from = 1;
    while (from < j->next_id) {
        uint64_t c = (from - 1) >> S_CHUNK_BITS;
        if (c >= j->nchunks)
            return 0;
        if (!j->chunks[c]) {
            from = (c + 1) * (uint64_t) S_CHUNK + 1;
            continue;
        }
        if (j->chunks[c][(from - 1) & (S_CHUNK - 1)].state != PD_JOB_UNKNOWN)
            return from;
        from++;
    }
    return 0;
}

/* ---- ranges ------------------------------------------------------------ */

int pd_ranges_parse(const uint8_t *raw, size_t len, pd_ranges_t *out, char *why, size_t whycap)
{
    memset(out, 0, sizeof *out);
    pd_rd_t r;
    pd_rd_init(&r, raw, len);
    uint32_t n;
    if (pd_rd_array(&r, &n)) {
        snprintf(why, whycap, "'ids' must be an array of [first, count] pairs");
        return PD_EPROTO;
    }
    if (n > S_MAX_RANGE_PAIRS) {
        snprintf(why, whycap, "'ids' has %u ranges; at most %u are allowed per request", n,
                 S_MAX_RANGE_PAIRS);
        return PD_ETOOBIG;
    }
    if (n) {
        out->r = malloc((size_t) n * sizeof *out->r);
        if (!out->r) {
            snprintf(why, whycap, "the broker is out of memory");
            return PD_ENOMEM;
        }
    }
    out->lo = UINT64_MAX;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t two;
        uint64_t first, count;
        if (pd_rd_array(&r, &two) || two != 2 || pd_rd_uint(&r, &first) ||
            pd_rd_uint(&r, &count)) {
            snprintf(why, whycap, "'ids' range %u is not a [first, count] pair of integers", i);
            goto fail;
        }
        if (first == 0 || count == 0) {
            snprintf(why, whycap, "'ids' range %u is [%llu, %llu]: ids start at 1 and a count "
                     "must be at least 1", i, (unsigned long long) first,
                     (unsigned long long) count);
            goto fail;
        }
        if (count > UINT64_MAX - first + 1) {
            snprintf(why, whycap, "'ids' range %u overflows 64-bit ids", i);
            goto fail;
        }
        if (count > PD_RANGES_MAX_IDS || out->total + count > PD_RANGES_MAX_IDS) {
            snprintf(why, whycap, "'ids' names more than %u ids: split the request",
                     PD_RANGES_MAX_IDS);
            pd_ranges_free(out);
            return PD_ETOOBIG;
        }
        out->r[i][0] = first;
        out->r[i][1] = count;
        out->total += count;
        if (first < out->lo)
            out->lo = first;
        if (first + count - 1 > out->hi)
            out->hi = first + count - 1;
        out->n++;
    }
    if (!pd_rd_at_end(&r)) {
        snprintf(why, whycap, "'ids' has trailing bytes");
        goto fail;
    }
    return 0;
fail:
    pd_ranges_free(out);
    return PD_EPROTO;
}

void pd_ranges_free(pd_ranges_t *rg)
{
    free(rg->r);
    memset(rg, 0, sizeof *rg);
}

bool pd_ranges_contains(const pd_ranges_t *rg, uint64_t id)
{
    if (!rg->total || id < rg->lo || id > rg->hi)
        return false;
    for (uint32_t i = 0; i < rg->n; i++)
        if (id >= rg->r[i][0] && id - rg->r[i][0] < rg->r[i][1])
            return true;
    return false;
}

bool pd_ranges_touches(const pd_ranges_t *rg, const uint64_t *sorted, size_t n)
{
    if (!rg->total || !n || sorted[n - 1] < rg->lo || sorted[0] > rg->hi)
        return false;
    for (uint32_t i = 0; i < rg->n; i++) {
        uint64_t first = rg->r[i][0], last = first + rg->r[i][1] - 1;
        size_t lo = 0, hi = n; /* first index with sorted[k] >= first */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (sorted[mid] < first)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < n && sorted[lo] <= last)
            return true;
    }
    return false;
}
