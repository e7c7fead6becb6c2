/*  pd_jobs_blobs: where the job table keeps bytes. Argument blobs (one per
    submit, shared by its jobs), result segments, the final transitions that
    store a value, and trimming: forgetting results, and their time-to-live
    after a first fetch.

    Result segment: a growable buffer holding a msgpack array32 header (its
    count patched at sealing) and entries [id, state, value]; the ids in it
    are listed beside it, and each such job's res_off/res_len already point
    at its value while res is still NULL. Sealing copies the buffer into one
    blob and points the jobs at it. Any reader of a job's result goes through
    pd_jobs_result(), which seals first, and so do forget and mark_fetched,
    so a job never escapes with a NULL res.
*/
#include "pd_jobs_int.h"
#include "pd_error.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void pd_jobs_blob_hold(pd_blob_t *blob) { blob->refs++; }

void pd_jobs_blob_release(pd_jobs_t *j, pd_blob_t **p, bool args)
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


/* ---- result segments --------------------------------------------------- */

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
        pd_jobrec_t *job = pd_jobs_find(j, j->segids[i]);
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

int pd_jobs_seg_add(pd_jobs_t *j, uint64_t id, pd_jobrec_t *job, uint8_t state,
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

void pd_jobs_pack_failure(msgpack_packer *pk, const pd_jobs_failure_t *f)
{
    s_err_t e = {f->code, f->msg, f->host, f->slot, f->attempts, NULL, 0};
    s_pack_err(pk, &e);
}

int pd_jobs_set_done(pd_jobs_t *j, uint64_t id, const uint8_t *val, uint32_t len)
{
    pd_jobrec_t *job = pd_jobs_find(j, id);
    assert(job && job->arg);
    job->arg->flags |= PD_BLOB_SUCCEEDED;
    job = pd_jobs_finish(j, id, PD_JOB_DONE);
    s_raw_t r = {val, len};
    return pd_jobs_seg_add(j, id, job, PD_JOB_DONE, s_pack_raw, &r, len);
}

int pd_jobs_set_failed(pd_jobs_t *j, uint64_t id, const char *code, const char *msg,
                       const char *host, int64_t slot)
{
    return pd_jobs_set_failed_value(j, id, code, msg, host, slot, NULL, 0);
}

int pd_jobs_set_failed_value(pd_jobs_t *j, uint64_t id, const char *code, const char *msg,
                             const char *host, int64_t slot, const uint8_t *value, size_t len)
{
    pd_jobrec_t *job = pd_jobs_finish(j, id, PD_JOB_FAILED);
    pd_jobs_failure_t *f = &j->failed_ring[j->nfailed++ % PD_JOBS_RECENT_FAILED];
    *f = (pd_jobs_failure_t){.id = id, .fn = job->fn, .attempts = job->attempt, .slot = slot};
    snprintf(f->code, sizeof f->code, "%s", code);
    snprintf(f->msg, sizeof f->msg, "%s", msg);
    snprintf(f->host, sizeof f->host, "%s", host);
    s_err_t e = {code, msg, host, slot, job->attempt, value, len};
    return pd_jobs_seg_add(j, id, job, PD_JOB_FAILED, s_pack_err, &e, strlen(msg) + len + 100);
}

int pd_jobs_set_cancelled(pd_jobs_t *j, uint64_t id)
{
    pd_jobrec_t *job = pd_jobs_finish(j, id, PD_JOB_CANCELLED);
    return pd_jobs_seg_add(j, id, job, PD_JOB_CANCELLED, s_pack_nil, NULL, 1);
}

bool pd_jobs_result(pd_jobs_t *j, uint64_t id, const uint8_t **val, uint32_t *len)
{
    pd_jobrec_t *job = pd_jobs_find(j, id);
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

/* ---- forgetting -------------------------------------------------------- */

bool pd_jobs_forget(pd_jobs_t *j, uint64_t id)
{
    pd_jobrec_t *job = pd_jobs_find(j, id);
    if (!job || !PD_JOB_IS_FINAL(job->state))
        return false;
    if (!job->res && job->res_len)
        pd_jobs_seal(j);
    pd_jobs_blob_release(j, &job->res, false);
    pd_jobs_drop_record(j, id, job);
    if (j->hooks.forgot)
        j->hooks.forgot(j->hooks_user, id);
    return true;
}

bool pd_jobs_mark_fetched(pd_jobs_t *j, uint64_t id, uint32_t now_s)
{
    pd_jobrec_t *job = pd_jobs_find(j, id);
    if (!job || !PD_JOB_IS_FINAL(job->state) || job->fetched)
        return false;
    if (!job->res && job->res_len)
        pd_jobs_seal(j);
    uint32_t sec = now_s + 1;
    job->fetched = sec;
    if (j->hooks.fetched)
        j->hooks.fetched(j->hooks_user, id, now_s);
    if (j->ttllen) {
        pd_jobs_ttl_t *t = &j->ttl[(j->ttlhead + j->ttllen - 1) & (j->ttlcap - 1)];
        if (t->sec == sec && t->first + t->count == id && t->count < UINT32_MAX) {
            t->count++;
            return true;
        }
    }
    if (j->ttllen == j->ttlcap) {
        size_t cap = j->ttlcap * 2;
        pd_jobs_ttl_t *t = malloc(cap * sizeof *t);
        if (!t)
            return true; /* kept until released: memory, not correctness */
        for (size_t i = 0; i < j->ttllen; i++)
            t[i] = j->ttl[(j->ttlhead + i) & (j->ttlcap - 1)];
        free(j->ttl);
        j->ttl = t;
        j->ttlcap = cap;
        j->ttlhead = 0;
    }
    j->ttl[(j->ttlhead + j->ttllen) & (j->ttlcap - 1)] = (pd_jobs_ttl_t){id, 1, sec};
    j->ttllen++;
    return true;
}

uint64_t pd_jobs_expire(pd_jobs_t *j, uint32_t now_s, uint32_t ttl_s)
{
    uint64_t n = 0;
    while (j->ttllen) {
        pd_jobs_ttl_t t = j->ttl[j->ttlhead];
        if ((uint64_t) t.sec - 1 + ttl_s > now_s)
            break;
        for (uint32_t i = 0; i < t.count; i++) {
            pd_jobrec_t *job = pd_jobs_find(j, t.first + i);
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
    const pd_jobs_ttl_t *t = &j->ttl[(j->ttlhead + i) & (j->ttlcap - 1)];
    *first = t->first;
    *count = t->count;
    *sec = t->sec - 1;
}
