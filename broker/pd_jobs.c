/*  pd_jobs: the broker's job table; see pd_jobs.h for the model and
    pd_jobs_int.h for how its files divide the work.

    This file is the table itself: records, ids, interned functions, submits
    and the state changes of a job (final transitions, withdrawals), the
    fresh list and the counters.

    Records: chunk c holds ids c*S+1 .. (c+1)*S with S = 2^16; the array of
    chunk pointers grows by doubling (pointers only, records never move). A
    chunk counts its live (not forgotten) jobs and is freed when that count
    drops to zero once all its ids have been handed out.
*/
#include "pd_jobs_int.h"
#include "pd_auth.h"
#include "pd_error.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        pd_jobrec_t *ch = j->chunks[c];
        if (!ch)
            continue;
        for (uint32_t i = 0; i < PD_JOBS_CHUNK; i++) {
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

pd_jobrec_t *pd_jobs_get(pd_jobs_t *j, uint64_t id) { return pd_jobs_find(j, id); }

uint32_t pd_jobs_recent_failed(const pd_jobs_t *j, pd_jobs_failure_t *out, uint32_t max)
{
    uint32_t n = 0;
    for (uint64_t k = j->nfailed; k > 0 && n < max && j->nfailed - k < PD_JOBS_RECENT_FAILED; k--)
        out[n++] = j->failed_ring[(k - 1) % PD_JOBS_RECENT_FAILED];
    return n;
}

uint32_t pd_jobs_span(pd_jobs_t *j, uint64_t id, uint64_t n, pd_jobrec_t **recs)
{
    *recs = NULL;
    if (id == 0)
        return 1;
    if (id >= j->next_id)
        return n > UINT32_MAX ? UINT32_MAX : (uint32_t) n;
    uint64_t at = (id - 1) & (PD_JOBS_CHUNK - 1), c = (id - 1) >> PD_JOBS_CHUNK_BITS;
    uint64_t k = PD_JOBS_CHUNK - at; /* to the chunk's end */
    if (k > n)
        k = n;
    if (c < j->nchunks && j->chunks[c]) {
        if (k > j->next_id - id) /* ids never given have no record */
            k = j->next_id - id;
        *recs = &j->chunks[c][at];
    }
    return (uint32_t) k;
}

void pd_jobs_batch(const pd_jobrec_t *job, uint64_t *first, uint32_t *n, bool *succeeded)
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
    pd_jobrec_t *job = pd_jobs_find(j, id);
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

int pd_jobs_chunks_reserve(pd_jobs_t *j, uint64_t first, uint64_t n)
{
    uint64_t last_c = (first + n - 2) >> PD_JOBS_CHUNK_BITS;
    if (last_c >= j->nchunks) {
        size_t cap = j->nchunks ? j->nchunks : 16;
        while (cap <= last_c)
            cap *= 2;
        pd_jobrec_t **ch = realloc(j->chunks, cap * sizeof *ch);
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
    for (uint64_t c = (first - 1) >> PD_JOBS_CHUNK_BITS; c <= last_c; c++)
        if (!j->chunks[c]) {
            j->chunks[c] = calloc(PD_JOBS_CHUNK, sizeof(pd_jobrec_t));
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
uint32_t pd_jobs_intern(pd_jobs_t *j, const char *fn, const char *owner, const pd_limits_t *lim,
                        int *rc)
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

uint64_t pd_jobs_shared_open(const pd_jobs_t *j, uint32_t shared)
{
    return shared < j->nshared ? j->shared_open[shared] : 0;
}

int pd_jobs_shared_add(pd_jobs_t *j, uint32_t sh, uint64_t n)
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

/* The checks of a submit that need no memory: fn, retries, retry_failed,
   args an array (r is left at its first element, *countp its length), and
   the bounds on unfinished jobs and their argument bytes. Returns 0 or a
   code with why. */
static int s_submit_check(pd_jobs_t *j, const pd_jobs_submit_t *sub, pd_rd_t *r,
                          uint32_t *countp, char *why, size_t whycap)
{
    size_t fnlen = strlen(sub->fn);
    if (fnlen == 0 || fnlen > PD_JOBS_MAX_FN) {
        snprintf(why, whycap, "submit: 'fn' must be a function name of 1 to %u bytes",
                 PD_JOBS_MAX_FN);
        return PD_EINVAL;
    }
    if (sub->retries > PD_JOBS_MAX_RETRIES) {
        snprintf(why, whycap, "submit: 'retries' is %u; at most %u are allowed", sub->retries,
                 PD_JOBS_MAX_RETRIES);
        return PD_EINVAL;
    }
    if (sub->retry_failed > PD_JOBS_MAX_RETRY_FAILED) {
        snprintf(why, whycap, "submit: 'retry_failed' is %u; at most %u are allowed",
                 sub->retry_failed, PD_JOBS_MAX_RETRY_FAILED);
        return PD_EINVAL;
    }
    pd_rd_init(r, sub->args, sub->args_len);
    uint32_t count;
    if (pd_rd_array(r, &count)) {
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
    size_t args_len = sub->args_len;
    if (count > 0 && args_len > j->max_arg_bytes - (j->arg_bytes < j->max_arg_bytes
                                                     ? j->arg_bytes : j->max_arg_bytes)) {
        snprintf(why, whycap,
                 "the broker holds %.1f MiB of arguments of unfinished jobs, of at most %.1f "
                 "MiB, and cannot take %.1f MiB more: wait for results, or raise its "
                 "max_queued_mb", (double) j->arg_bytes / 1048576.0,
                 (double) j->max_arg_bytes / 1048576.0, (double) args_len / 1048576.0);
        return PD_EOVERLOAD;
    }
    *countp = count;
    return 0;
}

void pd_jobs_init_queued(pd_jobs_t *j, uint64_t id, const pd_jobs_submit_t *sub, uint32_t fn,
                         uint32_t client, pd_blob_t *blob, const uint8_t *raw, size_t rawlen)
{
    uint64_t c = (id - 1) >> PD_JOBS_CHUNK_BITS;
    pd_jobrec_t *job = &j->chunks[c][(id - 1) & (PD_JOBS_CHUNK - 1)];
    memset(job, 0, sizeof *job);
    job->state = PD_JOB_QUEUED;
    job->retries = (uint8_t) sub->retries;
    job->retry_failed = (uint8_t) sub->retry_failed;
    job->mod = sub->mod;
    job->fn = fn;
    job->timeout_ms = sub->timeout_ms;
    job->gpu = sub->gpu || sub->cu; /* CUDA kernels run only where there is a GPU */
    job->cu = sub->cu;
    job->client = client;
    job->shared = sub->shared;
    job->arg = blob;
    job->arg_off = (uint32_t) (raw - sub->args);
    job->arg_len = (uint32_t) rawlen;
    j->live[c]++;
}

int pd_jobs_submit_ex(pd_jobs_t *j, const pd_jobs_submit_t *sub, uint64_t *first, uint32_t *n,
                      char *why, size_t whycap)
{
    pd_rd_t r;
    uint32_t count = 0;
    int rc = s_submit_check(j, sub, &r, &count, why, whycap);
    if (rc)
        return rc;
    *first = j->next_id;
    *n = count;
    if (count == 0)
        return 0;
    if (sub->client_len > PD_JOBS_MAX_CLIENT_ID) {
        snprintf(why, whycap, "submit: client routing id longer than %u bytes",
                 PD_JOBS_MAX_CLIENT_ID);
        return PD_EINVAL;
    }
    uint32_t fni = pd_jobs_intern(j, sub->fn, sub->owner ? sub->owner : "", &sub->limits, &rc);
    if (rc || pd_jobs_chunks_reserve(j, j->next_id, count)) {
        snprintf(why, whycap, "the broker is out of memory");
        return PD_ENOMEM;
    }
    bool gpu = sub->gpu || sub->cu;
    pd_jobs_client_t *cl = pd_jobs_client_get(j, sub->client, sub->client_len,
                                              gpu ? PD_JOBS_GPU : PD_JOBS_CPU);
    /* The blob holds the whole array; jobs point at their element. */
    pd_blob_t *blob = cl ? pd_blob_new(sub->args, sub->args_len, count) : NULL;
    if (!blob || pd_jobs_queue_push(cl, j->next_id, count) ||
        pd_jobs_shared_add(j, sub->shared, 0)) {
        free(blob);
        if (cl) {
            pd_jobs_queue_unpush(cl, j->next_id, count);
            pd_jobs_client_refresh(j, cl);
        }
        snprintf(why, whycap, "the broker is out of memory");
        return PD_ENOMEM;
    }
    blob->key = j->next_id;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *raw;
        size_t rawlen;
        int skip = pd_rd_skip(&r, &raw, &rawlen);
        assert(skip == 0); /* the frame was checked whole by pd_msg_parse */
        (void) skip;
        pd_jobs_init_queued(j, j->next_id + i, sub, fni, cl->index, blob, raw, rawlen);
    }
    j->next_id += count;
    j->unfinished += count;
    j->arg_bytes += blob->len;
    j->queued += count;
    j->queued_cls[cl->cls] += count;
    cl->queued += count;
    cl->max_slots = sub->max_slots;
    pd_jobs_shared_add(j, sub->shared, count); /* the array exists: it cannot fail now */
    pd_jobs_client_refresh(j, cl);
    return 0;
}

/* ---- state changes ------------------------------------------------------ */

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

pd_jobrec_t *pd_jobs_finish(pd_jobs_t *j, uint64_t id, uint8_t state)
{
    pd_jobrec_t *job = pd_jobs_find(j, id);
    assert(job && !PD_JOB_IS_FINAL(job->state));
    pd_jobs_client_t *cl = j->clients[job->client];
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
    pd_jobs_blob_release(j, &job->arg, true);
    job->arg_off = job->arg_len = 0;
    s_fresh_add(j, id);
    /* Only a change of the client's standing needs the ring: a running job
       that ends leaves an uncapped client where it was, and a client with
       nothing queued that is already out of the ring stays out until its
       last job ends (then it is freed). */
    if (was_capped || (cl->queued == 0 && (cl->active || cl->running == 0)) || cl->qlen > 64)
        pd_jobs_client_refresh(j, cl);
    return job;
}

bool pd_jobs_retry_failed(pd_jobs_t *j, uint64_t id, const char *code, const char *host)
{
    pd_jobrec_t *job = pd_jobs_find(j, id);
    assert(job && job->state == PD_JOB_RUNNING);
    bool own = strcmp(code, "PD_ETASK") == 0 || strcmp(code, "PD_ECRASH") == 0 ||
               strcmp(code, "PD_ETIMEDOUT") == 0;
    if (!own || job->failures >= job->retry_failed)
        return false;
    job->failures++;
    return pd_jobs_requeue(j, id, false, host) == 0;
}

void pd_jobs_drop_record(pd_jobs_t *j, uint64_t id, pd_jobrec_t *job)
{
    memset(job, 0, sizeof *job);
    uint64_t c = (id - 1) >> PD_JOBS_CHUNK_BITS;
    if (--j->live[c] == 0 && j->next_id > (c + 1) * (uint64_t) PD_JOBS_CHUNK) {
        free(j->chunks[c]);
        j->chunks[c] = NULL;
    }
}

void pd_jobs_withdraw(pd_jobs_t *j, uint64_t first, uint32_t n)
{
    for (uint64_t id = first; id < first + n; id++) {
        pd_jobrec_t *job = pd_jobs_find(j, id);
        if (!job)
            continue;
        if (PD_JOB_IS_FINAL(job->state)) {
            pd_jobs_forget(j, id);
        } else if (job->state == PD_JOB_QUEUED) {
            pd_jobs_client_t *cl = j->clients[job->client];
            j->queued--;
            j->queued_cls[cl->cls]--;
            cl->queued--;
            if (job->shared)
                j->shared_open[job->shared - 1]--;
            j->unfinished--;
            pd_jobs_blob_release(j, &job->arg, true);
            pd_jobs_drop_record(j, id, job); /* its id stays in the ring: skipped when popped */
            pd_jobs_client_refresh(j, cl);
        }
    }
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
