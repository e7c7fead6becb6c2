/*  pd_journal: the broker's SQLite journal; see pd_journal.h for the model
    and pd_journal_int.h for how its files divide the work.

    This file is the object (opening, closing, its accessors) and its
    records: what the job table's hooks and the broker's calls turn into
    operations of the open batch, and the full rewrite (a snapshot of memory)
    that a failing journal recovers with. Forgets and first fetches arrive
    one id at a time and are coalesced into runs of consecutive ids before
    they become operations.
*/
#include "pd_journal_int.h"
#include "pd_error.h"
#include "pd_log.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAINT_MS 10000 /* housekeeping period */

/* ---- runs of forgotten ids and first fetches ----------------------------- */

static void s_flush_fetched(pd_journal_t *jn)
{
    if (jn->f_count) {
        pd_journal_op_t *op = pd_journal_new_op(jn, PD_JOP_FETCHED);
        if (!op)
            pd_journal_lost_op(jn);
        else {
            op->a = jn->f_first;
            op->n = jn->f_count;
            op->b = jn->f_t;
        }
    }
    jn->f_count = 0;
}

static void s_flush_gone(pd_journal_t *jn)
{
    if (jn->gone_hi) {
        pd_journal_op_t *op = pd_journal_new_op(jn, PD_JOP_GONE);
        if (!op)
            pd_journal_lost_op(jn);
        else {
            op->a = jn->gone_lo;
            op->b = jn->gone_hi;
        }
    }
    jn->gone_hi = 0;
}

void pd_journal_flush_runs(pd_journal_t *jn)
{
    s_flush_gone(jn);
    s_flush_fetched(jn);
}

/* ---- hooks from pd_jobs ----------------------------------------------- */

static void s_on_sealed(void *user, pd_blob_t *seg)
{
    pd_journal_t *jn = user;
    if (jn->loading || !jn->recording)
        return;
    seg->key = ++jn->last_seg;
    pd_journal_op_t *op = pd_journal_new_op(jn, PD_JOP_SEG);
    if (!op) {
        pd_journal_lost_op(jn);
        return;
    }
    op->a = seg->key;
    seg->jseq = jn->next_seq; /* the number the open batch will get */
    pd_journal_hold_blob(op, seg, false);
}

static void s_on_dead(void *user, const pd_blob_t *blob, bool args)
{
    pd_journal_t *jn = user;
    if (blob->key == 0 || !jn->recording)
        return;
    pd_journal_op_t *op = pd_journal_new_op(jn, args ? PD_JOP_DEL_BATCH : PD_JOP_DEL_SEG);
    if (!op)
        pd_journal_lost_op(jn);
    else
        op->a = blob->key;
}

static void s_on_forgot(void *user, uint64_t id)
{
    pd_journal_t *jn = user;
    if (jn->loading || !jn->recording)
        return;
    if (jn->gone_hi && id == jn->gone_hi + 1) {
        jn->gone_hi = id;
        return;
    }
    s_flush_gone(jn);
    jn->gone_lo = jn->gone_hi = id;
}

static void s_on_fetched(void *user, uint64_t id, uint32_t sec)
{
    pd_journal_t *jn = user;
    if (jn->loading || !jn->recording)
        return;
    if (jn->f_count && sec == jn->f_t && id == jn->f_first + jn->f_count &&
        jn->f_count < UINT32_MAX) {
        jn->f_count++;
        return;
    }
    s_flush_fetched(jn);
    jn->f_first = id;
    jn->f_count = 1;
    jn->f_t = sec;
}

static void s_on_expired(void *user, uint64_t first, uint64_t count)
{
    pd_journal_t *jn = user;
    if (jn->loading || !jn->recording)
        return;
    s_flush_fetched(jn);
    pd_journal_op_t *op = pd_journal_new_op(jn, PD_JOP_FETCH_DEL);
    if (!op) {
        pd_journal_lost_op(jn);
        return;
    }
    op->a = first;
    op->b = first + count;
}

static const pd_jobs_hooks_t s_hooks = {
    .sealed = s_on_sealed,
    .dead = s_on_dead,
    .forgot = s_on_forgot,
    .fetched = s_on_fetched,
    .expired = s_on_expired,
};

/* ---- the public write side --------------------------------------------- */

static void s_op_token(pd_journal_t *jn, const void *token, size_t len, uint64_t first,
                       uint32_t n, uint32_t sec)
{
    pd_journal_op_t *op = pd_journal_new_op(jn, PD_JOP_TOKEN);
    char *copy = op ? malloc(len) : NULL;
    if (!copy) {
        if (op)
            jn->open->n--;
        pd_journal_lost_op(jn);
        return;
    }
    memcpy(copy, token, len);
    op->text = copy;
    op->n = (uint32_t) len;
    op->a = first;
    op->b = n;
    op->timeout_ms = sec;
}

static void s_op_batch(pd_journal_t *jn, const pd_journal_row_t *row, pd_blob_t *args)
{
    size_t hl = strlen(row->mod), fl = strlen(row->fn), sl = strlen(row->shared),
           cl = strlen(row->cu), ol = strlen(row->owner);
    pd_journal_op_t *op = pd_journal_new_op(jn, PD_JOP_BATCH);
    char *text = op ? malloc(hl + fl + sl + cl + ol + 5 + row->client_len) : NULL;
    if (!text) {
        if (op)
            jn->open->n--;
        pd_journal_lost_op(jn);
        return;
    }
    char *t = text;
    memcpy(t, row->mod, hl + 1);
    t += hl + 1;
    memcpy(t, row->fn, fl + 1);
    t += fl + 1;
    memcpy(t, row->shared, sl + 1);
    t += sl + 1;
    memcpy(t, row->cu, cl + 1);
    t += cl + 1;
    memcpy(t, row->owner, ol + 1);
    t += ol + 1;
    if (row->client_len)
        memcpy(t, row->client, row->client_len);
    op->text = text;
    op->a = row->first;
    op->n = row->n;
    op->timeout_ms = row->timeout_ms;
    op->retries = row->retries;
    op->retry_failed = row->retry_failed;
    op->client_len = (uint32_t) row->client_len;
    op->gpu = row->gpu;
    op->max_slots = row->max_slots;
    op->limits = row->limits;
    pd_journal_hold_blob(op, args, true);
}

void pd_journal_submit(pd_journal_t *jn, uint64_t first, uint32_t n,
                       const pd_jobs_submit_t *sub, const char *hash, const char *shared,
                       const char *cu, pd_blob_t *args, const void *token, size_t tokenlen,
                       uint32_t now_s)
{
    assert(args && args->key == first);
    if (!jn->recording)
        return;
    pd_journal_row_t row = {.first = first, .n = n, .mod = hash, .fn = sub->fn,
                            .timeout_ms = sub->timeout_ms, .retries = sub->retries,
                            .client = sub->client, .client_len = sub->client ? sub->client_len : 0,
                            .shared = shared ? shared : "", .gpu = sub->gpu || sub->cu,
                            .cu = cu ? cu : "", .max_slots = sub->max_slots,
                            .owner = sub->owner ? sub->owner : "", .limits = sub->limits,
                            .retry_failed = sub->retry_failed};
    s_op_batch(jn, &row, args);
    if (token && tokenlen)
        s_op_token(jn, token, tokenlen, first, n, now_s);
}

void pd_journal_put_shared(pd_journal_t *jn, const char *hash, const void *data, size_t len)
{
    if (!jn->recording)
        return;
    pd_journal_op_t *op = pd_journal_new_op(jn, PD_JOP_SHARED);
    char *text = op ? malloc(PD_SHARED_HASH_LEN + 1 + len) : NULL;
    if (!text) {
        if (op)
            jn->open->n--;
        pd_journal_lost_op(jn);
        return;
    }
    snprintf(text, PD_SHARED_HASH_LEN + 1, "%s", hash);
    memcpy(text + PD_SHARED_HASH_LEN + 1, data, len);
    op->text = text;
    op->b = len;
}

void pd_journal_drop_shared(pd_journal_t *jn, const char *hash)
{
    if (!jn->recording)
        return;
    pd_journal_op_t *op = pd_journal_new_op(jn, PD_JOP_DEL_SHARED);
    char *text = op ? strdup(hash) : NULL;
    if (!text) {
        if (op)
            jn->open->n--;
        pd_journal_lost_op(jn);
        return;
    }
    op->text = text;
}

void pd_journal_put_task_id(pd_journal_t *jn, uint64_t next)
{
    if (!jn->recording)
        return;
    pd_journal_op_t *op = pd_journal_new_op(jn, PD_JOP_TASK_ID);
    if (!op)
        pd_journal_lost_op(jn);
    else
        op->a = next;
}

void pd_journal_put_mod(pd_journal_t *jn, const pd_mod_t *mod)
{
    if (!jn->recording)
        return;
    pd_journal_op_t *op = pd_journal_new_op(jn, PD_JOP_MOD);
    if (!op)
        pd_journal_lost_op(jn);
    else
        op->mod = mod;
}
bool pd_journal_writable(const pd_journal_t *jn) { return jn->writable; }
bool pd_journal_full(const pd_journal_t *jn) { return jn->max_bytes && jn->bytes > jn->max_bytes; }
const char *pd_journal_error(const pd_journal_t *jn) { return jn->writable ? "" : jn->err; }
const char *pd_journal_path(const pd_journal_t *jn) { return jn->path; }
uint64_t pd_journal_bytes(const pd_journal_t *jn) { return jn->bytes; }
uint64_t pd_journal_max_bytes(const pd_journal_t *jn) { return jn->max_bytes; }
void pd_journal_stats(const pd_journal_t *jn, pd_journal_stats_t *out) { *out = jn->stats; }

/* ---- rewriting everything (recovery from a failure) ------------------- */

static void s_snapshot_token(void *user, const uint8_t *token, size_t len, uint64_t first,
                             uint32_t n, uint32_t sec)
{
    s_op_token(user, token, len, first, n, sec);
}

/* A rewrite's run of final jobs first .. first+n-1 owned by owner. */
static void s_snapshot_owner(pd_journal_t *jn, uint64_t first, uint64_t n, const char *owner)
{
    if (!n || !owner[0])
        return;
    pd_journal_op_t *op = pd_journal_new_op(jn, PD_JOP_OWNER);
    char *copy = op ? strdup(owner) : NULL;
    if (!copy) {
        if (op)
            jn->open->n--;
        pd_journal_lost_op(jn);
        return;
    }
    op->text = copy;
    op->a = first;
    op->n = (uint32_t) n;
}

static void s_snapshot_gone(pd_journal_t *jn, uint64_t lo, uint64_t hi)
{
    pd_journal_op_t *op = pd_journal_new_op(jn, PD_JOP_GONE);
    if (!op) {
        pd_journal_lost_op(jn);
        return;
    }
    op->a = lo;
    op->b = hi;
}

/* A rewrite's record of the blob a job points into (its batch's arguments
   while unfinished, its result segment once final). Returns false when out
   of memory (the journal is failing). */
static bool s_snapshot_blob(pd_journal_t *jn, pd_jobrec_t *job, pd_blob_t *blob, bool final)
{
    pd_jobs_t *jobs = jn->jobs;
    if (!final) {
        pd_rd_t r;
        uint32_t n = 0;
        pd_rd_init(&r, blob->data, blob->len);
        pd_rd_array(&r, &n);
        uint8_t rid[PD_JOBS_MAX_CLIENT_ID];
        size_t ridlen;
        uint32_t max_slots;
        pd_jobs_client_of(jobs, job, rid, &ridlen, &max_slots);
        pd_journal_row_t row = {
            .first = blob->key, .n = n, .mod = pd_mods_get(jn->mods, job->mod)->hash,
            .fn = pd_jobs_fn_name(jobs, job->fn), .timeout_ms = job->timeout_ms,
            .retries = job->retries, .client = rid, .client_len = ridlen,
            .shared = job->shared && jn->shared ? pd_shared_get(jn->shared, job->shared - 1)->hash
                                                : "",
            .gpu = job->gpu, .cu = job->cu ? pd_mods_get(jn->mods, job->cu - 1)->hash : "",
            .max_slots = max_slots, .owner = pd_jobs_owner_id(jobs, job->fn),
            .limits = pd_jobs_fn_limits(jobs, job->fn), .retry_failed = job->retry_failed};
        s_op_batch(jn, &row, blob);
        return true;
    }
    if (blob->key == 0)
        blob->key = ++jn->last_seg;
    pd_journal_op_t *op = pd_journal_new_op(jn, PD_JOP_SEG);
    if (!op) {
        pd_journal_lost_op(jn);
        return false;
    }
    op->a = blob->key;
    pd_journal_hold_blob(op, blob, false);
    return true;
}

/* A rewrite's walk over every known job: the holes between them (gone),
   the owners of runs of final jobs, and each blob once. */
static void s_snapshot_jobs(pd_journal_t *jn)
{
    pd_jobs_t *jobs = jn->jobs;
    if (++jn->gen == 0)
        jn->gen = 1;
    uint64_t next = pd_jobs_next_id(jobs);
    uint64_t expect = 1; /* ids below it are accounted for */
    uint64_t run_first = 0, run_n = 0; /* final jobs of one owner, consecutive */
    const char *run_owner = "";
    for (uint64_t id = pd_jobs_next_known(jobs, 1); id; id = pd_jobs_next_known(jobs, id + 1)) {
        if (id > expect)
            s_snapshot_gone(jn, expect, id - 1);
        expect = id + 1;
        pd_jobrec_t *job = pd_jobs_get(jobs, id);
        bool final = PD_JOB_IS_FINAL(job->state);
        const char *owner = final ? pd_jobs_owner_id(jobs, job->fn) : "";
        if (run_n && (run_first + run_n != id || strcmp(owner, run_owner) != 0)) {
            s_snapshot_owner(jn, run_first, run_n, run_owner);
            run_n = 0;
        }
        if (owner[0]) {
            if (!run_n) {
                run_first = id;
                run_owner = owner;
            }
            run_n++;
        }
        pd_blob_t *blob = final ? job->res : job->arg;
        if (!blob || blob->mark == jn->gen)
            continue;
        blob->mark = jn->gen;
        if (!s_snapshot_blob(jn, job, blob, final))
            break;
    }
    s_snapshot_owner(jn, run_first, run_n, run_owner);
    if (next > expect)
        s_snapshot_gone(jn, expect, next - 1);
}

void pd_journal_resync(pd_journal_t *jn)
{
    pd_journal_flush(jn);
    pd_journal_batch_free(jn, &jn->open);
    jn->recording = true; /* from now on, changes follow the snapshot */
    pd_jobs_t *jobs = jn->jobs;
    pd_jobs_seal(jobs);
    for (uint32_t i = 0; i < pd_mods_count(jn->mods); i++)
        pd_journal_put_mod(jn, pd_mods_get(jn->mods, i));
    for (uint32_t i = 0; jn->shared && i < pd_shared_span(jn->shared); i++) {
        const pd_shared_blob_t *sb = pd_shared_at(jn->shared, i);
        if (sb)
            pd_journal_put_shared(jn, sb->hash, sb->data, sb->len);
    }
    s_snapshot_jobs(jn);
    for (size_t i = 0; i < pd_jobs_ttl_count(jobs); i++) {
        uint64_t first;
        uint32_t count, sec;
        pd_jobs_ttl_at(jobs, i, &first, &count, &sec);
        pd_journal_op_t *op = pd_journal_new_op(jn, PD_JOP_FETCHED);
        if (!op) {
            pd_journal_lost_op(jn);
            break;
        }
        op->a = first;
        op->n = count;
        op->b = sec;
    }
    pd_jobs_token_each(jobs, s_snapshot_token, jn);
    if (!jn->recording) { /* out of memory on the way */
        pd_journal_batch_free(jn, &jn->open);
        return;
    }
    if (!pd_journal_new_op(jn, PD_JOP_VACUUM)) { /* also makes sure a batch exists */
        pd_journal_lost_op(jn);
        pd_journal_batch_free(jn, &jn->open);
        return;
    }
    pd_journal_batch_t *b = jn->open;
    jn->open = NULL;
    b->snapshot = true;
    jn->snapshot_in_flight = true;
    pd_journal_send(jn, b);
}

/* ---- housekeeping ------------------------------------------------------ */

void pd_journal_tick(pd_journal_t *jn, uint32_t now_s, int64_t now_ms)
{
    if (!jn->writable) {
        if (!jn->snapshot_in_flight && jn->backlog == 0 && now_ms >= jn->retry_ms)
            pd_journal_resync(jn);
        return;
    }
    if (now_ms < jn->maint_ms)
        return;
    jn->maint_ms = now_ms + S_MAINT_MS;
    if (pd_jobs_token_expire(jn->jobs, now_s, PD_JOBS_TOKEN_TTL_S)) {
        pd_journal_op_t *op = pd_journal_new_op(jn, PD_JOP_TOKEN_PURGE);
        if (op)
            op->a = (uint64_t) now_s - PD_JOBS_TOKEN_TTL_S + 1;
    }
    if (!pd_journal_new_op(jn, PD_JOP_VACUUM))
        pd_journal_lost_op(jn);
}

void pd_journal_compact(pd_journal_t *jn)
{
    if (jn->recording && !pd_journal_new_op(jn, PD_JOP_COMPACT))
        pd_journal_lost_op(jn);
}

/* ---- opening and closing ------------------------------------------------ */

pd_journal_t *pd_journal_open(const pd_journal_config_t *cfg, pd_jobs_t *jobs, pd_mods_t *mods,
                              pd_shared_t *shared, pd_journal_recovery_t *rec, char *why,
                              size_t whycap, int *err)
{
    assert(cfg && jobs && mods && rec && why);
    int dummy;
    if (!err)
        err = &dummy;
    memset(rec, 0, sizeof *rec);
    why[0] = 0;
    int64_t t0 = zclock_mono();
    if (!cfg->path || !cfg->path[0] || strlen(cfg->path) >= PATH_MAX - 40) {
        snprintf(why, whycap, "the journal path is empty or too long");
        *err = PD_EINVAL;
        return NULL;
    }
    if (sodium_init() < 0) {
        snprintf(why, whycap, "libsodium cannot start");
        *err = PD_ESYS;
        return NULL;
    }
    pd_journal_t *jn = calloc(1, sizeof *jn);
    if (!jn) {
        snprintf(why, whycap, "out of memory");
        *err = PD_ENOMEM;
        return NULL;
    }
    snprintf(jn->path, sizeof jn->path, "%s", cfg->path);
    snprintf(jn->wal, sizeof jn->wal, "%s-wal", cfg->path);
    jn->lock_fd = -1;
    jn->jobs = jobs;
    jn->mods = mods;
    jn->shared = shared;
    jn->max_bytes = cfg->max_bytes;
    atomic_init(&jn->held, false);
    jn->next_seq = 1;
    jn->recording = jn->writable = true;
    jn->sync = cfg->sync <= PD_JOURNAL_SYNC_FULL ? cfg->sync : PD_JOURNAL_SYNC_FULL;
    int rc = pd_journal_file_open(jn, cfg->reset, rec->moved, sizeof rec->moved, why, whycap);
    if (rc == 0) {
        pd_jobs_set_hooks(jobs, &s_hooks, jn);
        rc = pd_journal_recover(jn, rec, why, whycap);
    }
    if (rc == 0) {
        jn->wnext_id = jn->reserved = pd_jobs_next_id(jobs);
        rc = pd_journal_writer_start(jn, why, whycap);
    }
    if (rc) {
        *err = rc;
        pd_journal_destroy(&jn);
        return NULL;
    }
    jn->bytes = pd_journal_file_bytes(jn);
    jn->maint_ms = zclock_mono() + S_MAINT_MS;
    rec->bytes = jn->bytes;
    rec->ms = zclock_mono() - t0;
    *err = 0;
    return jn;
}

void pd_journal_destroy(pd_journal_t **p)
{
    if (!p || !*p)
        return;
    pd_journal_t *jn = *p;
    pd_journal_writer_stop(jn);
    if (jn->jobs)
        pd_jobs_set_hooks(jn->jobs, NULL, NULL);
    pd_journal_file_close(jn);
    free(jn->ivs);
    free(jn);
    *p = NULL;
}
