/*  pd_journal_recover: reading a journal back into memory, and bringing an
    older journal's tables up to the current format.

    Recovery (pd_journal_open, on the loop's thread before the writer
    starts) loads, in order: meta (next id), modules, shared data, gone
    intervals, batches (queued jobs, minus gone ids), result segments (final
    jobs, minus gone ids), owners, first fetches and tokens: one function per
    table. Rows whose blobs end up with no job are deleted. Every check that
    fails names the row and what was wrong.
*/
#include "pd_journal_int.h"
#include "pd_auth.h"
#include "pd_error.h"
#include "pd_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends v to the growable list *ids (doubling from 64). Returns 0, or -1
   out of memory (the list is left as it was). */
static int s_push_id(uint64_t **ids, size_t *n, size_t *cap, uint64_t v)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        uint64_t *d = realloc(*ids, ncap * sizeof *d);
        if (!d)
            return -1;
        *ids = d;
        *cap = ncap;
    }
    (*ids)[(*n)++] = v;
    return 0;
}

static bool s_skip_gone(void *user, uint64_t id)
{
    const pd_journal_t *jn = user;
    size_t lo = 0, hi = jn->nivs; /* first interval with last >= id */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (jn->ivs[mid].last < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < jn->nivs && jn->ivs[lo].first <= id;
}

/* Deletes one row by key during recovery (a blob with no job left). */
static int s_delete_row(pd_journal_t *jn, int which, uint64_t key)
{
    sqlite3_bind_int64(jn->st[which], 1, (sqlite3_int64) key);
    return pd_journal_step(jn, which, "cannot delete a row") ? 0 : PD_EIO;
}

static bool s_blob_is(sqlite3_stmt *st, int col, int len)
{
    return sqlite3_column_type(st, col) == SQLITE_BLOB &&
           (len < 0 || sqlite3_column_bytes(st, col) == len);
}

static bool s_keep_all(void *user, uint32_t i)
{
    (void) user;
    (void) i;
    return true;
}

/* The recovery proper, inside the open transaction. */

/* A statement that failed to read: the journal is damaged; returns PD_EIO. */
static int s_read_failed(pd_journal_t *jn, const char *what, char *why, size_t whycap)
{
    char text[300];
    pd_journal_describe(jn, text, sizeof text, what);
    return pd_journal_damaged(jn, why, whycap, "%s", text);
}

/* Prepares a query over the journal into *st. Returns 0, or PD_EIO with why. */
static int s_query(pd_journal_t *jn, const char *sql, sqlite3_stmt **st, char *why,
                   size_t whycap)
{
    *st = NULL;
    if (sqlite3_prepare_v2(jn->db, sql, -1, st, NULL) != SQLITE_OK)
        return s_read_failed(jn, "cannot read it", why, whycap);
    return 0;
}

static int s_out_of_memory(pd_journal_t *jn, char *why, size_t whycap)
{
    snprintf(why, whycap, "out of memory loading journal %s", jn->path);
    return PD_ENOMEM;
}

/* Deletes the rows of the ndead keys (batches or segments left without a
   job). Returns 0, or PD_EIO with why. */
static int s_delete_dead(pd_journal_t *jn, int which, const uint64_t *dead, size_t ndead,
                         char *why, size_t whycap)
{
    for (size_t i = 0; i < ndead; i++)
        if (s_delete_row(jn, which, dead[i]) != 0)
            return s_read_failed(jn, "cannot clean up", why, whycap);
    return 0;
}

/* meta: format, version, next id and next task id. */
static int s_load_meta(pd_journal_t *jn, pd_journal_recovery_t *rec, uint64_t *next_idp,
                       char *why, size_t whycap)
{
    sqlite3_stmt *st;
    int rc = s_query(jn, "SELECT k, v FROM meta", &st, why, whycap);
    if (rc)
        return rc;
    uint64_t next_id = 0;
    bool format = false;
    int64_t version = -1;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *) sqlite3_column_text(st, 0);
        if (!k)
            continue;
        if (strcmp(k, "format") == 0) {
            const char *v = (const char *) sqlite3_column_text(st, 1);
            format = v && strcmp(v, PD_JOURNAL_FORMAT) == 0;
        } else if (strcmp(k, "version") == 0) {
            version = sqlite3_column_int64(st, 1);
        } else if (strcmp(k, "next_id") == 0) {
            int64_t v = sqlite3_column_int64(st, 1);
            next_id = v > 0 ? (uint64_t) v : 0;
        } else if (strcmp(k, "next_task") == 0) {
            int64_t v = sqlite3_column_int64(st, 1);
            rec->next_task = v > 0 ? (uint64_t) v : 0;
        }
    }
    if (step != SQLITE_DONE)
        rc = s_read_failed(jn, "cannot read meta", why, whycap);
    sqlite3_finalize(st);
    if (rc)
        return rc;
    if (!format)
        return pd_journal_damaged(jn, why, whycap,
                                  "it is an SQLite database but not a Playdoh journal");
    if (version != PD_JOURNAL_VERSION) {
        snprintf(why, whycap, "journal %s has format version %lld; this playdoh-broker reads "
                 "version %d: run the Playdoh that wrote it, or give another --journal",
                 jn->path, (long long) version, PD_JOURNAL_VERSION);
        return PD_EIO;
    }
    if (next_id == 0)
        return pd_journal_damaged(jn, why, whycap, "meta has no next job id");
    pd_jobs_set_next_id(jn->jobs, next_id);
    jn->wnext_id = next_id;
    rec->next_id = next_id;
    *next_idp = next_id;
    return 0;
}

static int s_load_mods(pd_journal_t *jn, pd_journal_recovery_t *rec, char *why, size_t whycap)
{
    sqlite3_stmt *st;
    int rc = s_query(jn, "SELECT hash, name, kind, data FROM mods ORDER BY rowid", &st, why,
                     whycap);
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *hash = (const char *) sqlite3_column_text(st, 0);
        const char *name = (const char *) sqlite3_column_text(st, 1);
        const char *kind = (const char *) sqlite3_column_text(st, 2);
        const void *data = sqlite3_column_blob(st, 3);
        int len = sqlite3_column_bytes(st, 3);
        char mwhy[300];
        if (!hash || !name || !kind || !s_blob_is(st, 3, -1) ||
            pd_mods_put(jn->mods, hash, name, kind, data, (size_t) len, mwhy, sizeof mwhy) < 0)
            rc = pd_journal_damaged(jn, why, whycap, "module %.40s: %s", name ? name : "?",
                                    hash && name && kind ? mwhy : "missing fields");
        else
            rec->mods++;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = s_read_failed(jn, "cannot read modules", why, whycap);
    sqlite3_finalize(st);
    return rc;
}

/* Shared data (nothing is evicted while loading: no job names any yet, but
   all of it may be needed). */
static int s_load_shared(pd_journal_t *jn, pd_journal_recovery_t *rec, char *why, size_t whycap)
{
    sqlite3_stmt *st;
    int rc = s_query(jn, "SELECT hash, data FROM shared ORDER BY rowid", &st, why, whycap);
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *hash = (const char *) sqlite3_column_text(st, 0);
        const void *data = sqlite3_column_blob(st, 1);
        int len = sqlite3_column_bytes(st, 1);
        char swhy[300];
        if (!jn->shared)
            continue; /* a table without a shared-data store (tests) */
        if (!hash || !s_blob_is(st, 1, -1) ||
            pd_shared_put(jn->shared, hash, data, (size_t) len, s_keep_all, NULL, NULL, swhy,
                          sizeof swhy) < 0)
            rc = pd_journal_damaged(jn, why, whycap, "shared data %.16s...: %s",
                                    hash ? hash : "?", hash ? swhy : "missing fields");
        else
            rec->shared++;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = s_read_failed(jn, "cannot read shared data", why, whycap);
    sqlite3_finalize(st);
    return rc;
}

/* Forgotten ids, into jn->ivs (sorted, disjoint) for s_skip_gone. */
static int s_load_gone(pd_journal_t *jn, uint64_t next_id, char *why, size_t whycap)
{
    sqlite3_stmt *st;
    int rc = s_query(jn, "SELECT first, last FROM gone ORDER BY first", &st, why, whycap);
    size_t capivs = 0;
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t f = sqlite3_column_int64(st, 0), l = sqlite3_column_int64(st, 1);
        if (f < 1 || l < f || (uint64_t) l >= next_id ||
            (jn->nivs && (uint64_t) f <= jn->ivs[jn->nivs - 1].last)) {
            rc = pd_journal_damaged(jn, why, whycap, "forgotten ids [%lld, %lld] overlap or "
                                    "are out of range", (long long) f, (long long) l);
            break;
        }
        if (jn->nivs == capivs) {
            capivs = capivs ? capivs * 2 : 256;
            pd_journal_iv_t *iv = realloc(jn->ivs, capivs * sizeof *iv);
            if (!iv) {
                snprintf(why, whycap, "out of memory reading journal %s", jn->path);
                rc = PD_ENOMEM;
                break;
            }
            jn->ivs = iv;
        }
        jn->ivs[jn->nivs++] = (pd_journal_iv_t){(uint64_t) f, (uint64_t) l};
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = s_read_failed(jn, "cannot read forgotten ids", why, whycap);
    sqlite3_finalize(st);
    return rc;
}

/* Checks and restores the batch row st is on: its queued jobs go back into
   the table. Returns how many jobs it kept (0: its row can go), or PD_EIO
   or PD_ENOMEM with why. */
static int64_t s_restore_batch(pd_journal_t *jn, sqlite3_stmt *st, char *why, size_t whycap)
{
    int64_t first = sqlite3_column_int64(st, 0), n = sqlite3_column_int64(st, 1);
    const char *mod = (const char *) sqlite3_column_text(st, 2);
    const char *fn = (const char *) sqlite3_column_text(st, 3);
    int64_t timeout = sqlite3_column_int64(st, 4), retries = sqlite3_column_int64(st, 5);
    const uint8_t *client = sqlite3_column_blob(st, 6);
    int clen = sqlite3_column_bytes(st, 6);
    const char *shr = (const char *) sqlite3_column_text(st, 7);
    int64_t gpu = sqlite3_column_int64(st, 8);
    const char *cu = (const char *) sqlite3_column_text(st, 9);
    int64_t max_slots = sqlite3_column_int64(st, 10);
    const uint8_t *args = sqlite3_column_blob(st, 12);
    int alen = sqlite3_column_bytes(st, 12);
    const char *owner = (const char *) sqlite3_column_text(st, 13);
    int64_t lmem = sqlite3_column_int64(st, 14), lcpu = sqlite3_column_int64(st, 15);
    int64_t lout = sqlite3_column_int64(st, 16);
    int64_t retry_failed = sqlite3_column_int64(st, 17);
    uint8_t sum[PD_JOURNAL_SUM];
    if (first < 1 || n < 1 || n > UINT32_MAX || !mod || !fn || timeout < 0 ||
        timeout > UINT32_MAX || retries < 0 || retries > PD_JOBS_MAX_RETRIES ||
        clen < 0 || clen > (int) PD_JOBS_MAX_CLIENT_ID || gpu < 0 || gpu > 1 ||
        max_slots < 0 || max_slots > UINT32_MAX || !s_blob_is(st, 11, PD_JOURNAL_SUM) ||
        !s_blob_is(st, 12, -1) || (owner && !pd_auth_owner_valid(owner)) ||
        lmem < 0 || lcpu < 0 || lout < 0 || lout > (int64_t) PD_LIMITS_MAX_OUTPUT ||
        retry_failed < 0 || retry_failed > PD_JOBS_MAX_RETRY_FAILED)
        return pd_journal_damaged(jn, why, whycap, "batch from job %lld has bad fields",
                                  (long long) first);
    pd_journal_row_t row = {.first = (uint64_t) first, .n = (uint32_t) n, .mod = mod, .fn = fn,
                            .timeout_ms = (uint32_t) timeout, .retries = (uint32_t) retries,
                            .client = client, .client_len = (size_t) clen,
                            .shared = shr ? shr : "", .gpu = gpu != 0, .cu = cu ? cu : "",
                            .max_slots = (uint32_t) max_slots, .owner = owner ? owner : "",
                            .limits = {(uint64_t) lmem, (uint64_t) lcpu, (uint64_t) lout},
                            .retry_failed = (uint32_t) retry_failed};
    pd_journal_sum_batch(sum, &row, args, (size_t) alen);
    if (memcmp(sum, sqlite3_column_blob(st, 11), PD_JOURNAL_SUM) != 0)
        return pd_journal_damaged(jn, why, whycap, "batch from job %lld fails its checksum",
                                  (long long) first);
    int64_t mi = pd_mods_find(jn->mods, mod);
    if (mi < 0)
        return pd_journal_damaged(jn, why, whycap, "batch from job %lld names module "
                                  "%.16s..., which the journal does not hold",
                                  (long long) first, mod);
    int64_t ci = cu ? pd_mods_find(jn->mods, cu) : -1;
    int64_t si = shr && jn->shared ? pd_shared_find(jn->shared, shr) : -1;
    if ((cu && ci < 0) || (shr && si < 0))
        return pd_journal_damaged(jn, why, whycap, "batch from job %lld names %s %.16s..., "
                                  "which the journal does not hold", (long long) first,
                                  cu && ci < 0 ? "CUDA module" : "shared data",
                                  cu && ci < 0 ? cu : shr);
    pd_jobs_submit_t sub = {.client = client, .client_len = (size_t) clen,
                            .mod = (uint32_t) mi, .fn = fn, .args = args,
                            .args_len = (size_t) alen, .timeout_ms = (uint32_t) timeout,
                            .retries = (uint32_t) retries, .max_slots = (uint32_t) max_slots,
                            .shared = si < 0 ? 0 : (uint32_t) si + 1, .gpu = gpu != 0,
                            .cu = ci < 0 ? 0 : (uint32_t) ci + 1, .owner = owner,
                            .limits = row.limits, .retry_failed = (uint32_t) retry_failed};
    char bwhy[300];
    int64_t kept = pd_jobs_restore_batch(jn->jobs, (uint64_t) first, (uint32_t) n, &sub,
                                         s_skip_gone, jn, bwhy, sizeof bwhy);
    if (kept == PD_ENOMEM)
        return s_out_of_memory(jn, why, whycap);
    if (kept < 0)
        return pd_journal_damaged(jn, why, whycap, "%s", bwhy);
    return kept;
}

/* Checks and restores the result segment row st is on. Returns how many
   jobs point into it (0: its row can go), or PD_EIO or PD_ENOMEM with why. */
static int64_t s_restore_segment(pd_journal_t *jn, sqlite3_stmt *st, char *why, size_t whycap)
{
    int64_t seg = sqlite3_column_int64(st, 0);
    const uint8_t *res = sqlite3_column_blob(st, 2);
    int rlen = sqlite3_column_bytes(st, 2);
    uint8_t sum[PD_JOURNAL_SUM];
    if (seg < 1 || !s_blob_is(st, 1, PD_JOURNAL_SUM) || !s_blob_is(st, 2, -1))
        return pd_journal_damaged(jn, why, whycap, "result segment %lld has bad fields",
                                  (long long) seg);
    pd_journal_sum_seg(sum, (uint64_t) seg, res, (size_t) rlen);
    if (memcmp(sum, sqlite3_column_blob(st, 1), PD_JOURNAL_SUM) != 0)
        return pd_journal_damaged(jn, why, whycap, "result segment %lld fails its checksum",
                                  (long long) seg);
    if ((uint64_t) seg > jn->last_seg)
        jn->last_seg = (uint64_t) seg;
    char swhy[300];
    int64_t kept = pd_jobs_restore_segment(jn->jobs, (uint64_t) seg, res, (size_t) rlen,
                                           s_skip_gone, jn, swhy, sizeof swhy);
    if (kept == PD_ENOMEM)
        return s_out_of_memory(jn, why, whycap);
    if (kept < 0)
        return pd_journal_damaged(jn, why, whycap, "%s", swhy);
    return kept;
}

/* Reads the rows of a table of blobs (batches or result segments) with
   restore, one row at a time, adding the jobs kept to *kept; rows left with
   no job are then deleted (statement del). Returns 0, or PD_EIO or
   PD_ENOMEM with why. */
static int s_load_blobs(pd_journal_t *jn, const char *sql,
                        int64_t (*restore)(pd_journal_t *jn, sqlite3_stmt *st, char *why,
                                           size_t whycap),
                        int del, const char *what, uint64_t *kept, char *why, size_t whycap)
{
    sqlite3_stmt *st;
    int rc = s_query(jn, sql, &st, why, whycap);
    uint64_t *dead = NULL;
    size_t ndead = 0, capdead = 0;
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t n = restore(jn, st, why, whycap);
        if (n < 0) {
            rc = (int) n;
            break;
        }
        *kept += (uint64_t) n;
        if (n == 0 && s_push_id(&dead, &ndead, &capdead, (uint64_t) sqlite3_column_int64(st, 0)))
            rc = s_out_of_memory(jn, why, whycap);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = s_read_failed(jn, what, why, whycap);
    sqlite3_finalize(st);
    if (rc == 0)
        rc = s_delete_dead(jn, del, dead, ndead, why, whycap);
    free(dead);
    return rc;
}

/* Batches: queued jobs (minus gone ids). Then result segments: final jobs
   (this may finish batches: their rows go through the dead hook). */
static int s_load_jobs(pd_journal_t *jn, pd_journal_recovery_t *rec, char *why, size_t whycap)
{
    uint64_t queued = 0;
    int rc = s_load_blobs(jn, "SELECT first, n, mod, fn, timeout_ms, retries, client, shared, "
                          "gpu, cu, max_slots, sum, args, owner, memory, cpu_time, max_output, "
                          "retry_failed FROM batches ORDER BY first", s_restore_batch,
                          PD_JST_BATCH_DEL, "cannot read batches", &queued, why, whycap);
    if (rc == 0)
        rc = s_load_blobs(jn, "SELECT seg, sum, res FROM results ORDER BY seg",
                          s_restore_segment, PD_JST_SEG_DEL, "cannot read results",
                          &rec->results, why, whycap);
    if (rc == 0 && jn->txn_failed)
        rc = s_read_failed(jn, "cannot clean up", why, whycap);
    return rc;
}

/* Owners of final jobs whose batch is gone (rows naming no known job are
   dropped). */
static int s_load_owners(pd_journal_t *jn, uint64_t next_id, char *why, size_t whycap)
{
    sqlite3_stmt *st, *del = NULL;
    int rc = s_query(jn, "SELECT first, n, owner FROM owners ORDER BY first", &st, why, whycap);
    if (rc == 0 && sqlite3_prepare_v2(jn->db, "DELETE FROM owners WHERE first = ?", -1, &del,
                                      NULL) != SQLITE_OK)
        rc = s_read_failed(jn, "cannot prepare", why, whycap);
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t first = sqlite3_column_int64(st, 0), n = sqlite3_column_int64(st, 1);
        const char *owner = (const char *) sqlite3_column_text(st, 2);
        if (first < 1 || n < 1 || n > UINT32_MAX || (uint64_t) first >= next_id ||
            !owner || !pd_auth_owner_valid(owner)) {
            rc = pd_journal_damaged(jn, why, whycap, "the owner of jobs %lld.. has bad fields",
                                    (long long) first);
            break;
        }
        uint64_t known = pd_jobs_next_known(jn->jobs, (uint64_t) first);
        if (!known || known >= (uint64_t) (first + n)) {
            sqlite3_bind_int64(del, 1, first);
            sqlite3_step(del);
            sqlite3_reset(del);
        } else if (pd_jobs_set_owner(jn->jobs, (uint64_t) first, (uint64_t) n, owner)) {
            rc = s_out_of_memory(jn, why, whycap);
        }
    }
    sqlite3_finalize(del);
    if (rc == 0 && step != SQLITE_DONE)
        rc = s_read_failed(jn, "cannot read owners", why, whycap);
    sqlite3_finalize(st);
    return rc;
}

/* First fetches, oldest first (rows naming no known job are dropped). */
static int s_load_fetched(pd_journal_t *jn, uint64_t next_id, char *why, size_t whycap)
{
    sqlite3_stmt *st, *del = NULL;
    int rc = s_query(jn, "SELECT first, count, t FROM fetched ORDER BY t, first", &st, why,
                     whycap);
    if (rc == 0 && sqlite3_prepare_v2(jn->db, "DELETE FROM fetched WHERE first = ?", -1, &del,
                                      NULL) != SQLITE_OK)
        rc = s_read_failed(jn, "cannot prepare", why, whycap);
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t first = sqlite3_column_int64(st, 0), count = sqlite3_column_int64(st, 1);
        int64_t t = sqlite3_column_int64(st, 2);
        if (first < 1 || count < 1 || count > UINT32_MAX || (uint64_t) first >= next_id ||
            (uint64_t) count > next_id - (uint64_t) first || t < 1 || t > UINT32_MAX - 1) {
            rc = pd_journal_damaged(jn, why, whycap, "first fetch of jobs %lld.. has bad "
                                    "fields", (long long) first);
            break;
        }
        uint64_t marked = 0;
        for (int64_t k = 0; k < count; k++)
            marked += pd_jobs_mark_fetched(jn->jobs, (uint64_t) (first + k), (uint32_t) t);
        if (!marked) {
            sqlite3_bind_int64(del, 1, first);
            sqlite3_step(del);
            sqlite3_reset(del);
        }
    }
    sqlite3_finalize(del);
    if (rc == 0 && step != SQLITE_DONE)
        rc = s_read_failed(jn, "cannot read first fetches", why, whycap);
    sqlite3_finalize(st);
    return rc;
}

static int s_load_tokens(pd_journal_t *jn, pd_journal_recovery_t *rec, char *why, size_t whycap)
{
    sqlite3_stmt *st;
    int rc = s_query(jn, "SELECT token, first, n, t FROM tokens ORDER BY t", &st, why, whycap);
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        int tlen = sqlite3_column_bytes(st, 0);
        int64_t first = sqlite3_column_int64(st, 1), n = sqlite3_column_int64(st, 2);
        int64_t t = sqlite3_column_int64(st, 3);
        if (!s_blob_is(st, 0, -1) || tlen < 1 || tlen > (int) PD_JOBS_TOKEN_MAX || first < 1 ||
            n < 0 || n > UINT32_MAX || t < 0 || t > UINT32_MAX) {
            rc = pd_journal_damaged(jn, why, whycap, "a submit token has bad fields");
            break;
        }
        if (pd_jobs_token_add(jn->jobs, sqlite3_column_blob(st, 0), (size_t) tlen,
                              (uint64_t) first, (uint32_t) n, (uint32_t) t) == 0)
            rec->tokens++;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = s_read_failed(jn, "cannot read submit tokens", why, whycap);
    sqlite3_finalize(st);
    return rc;
}

/* The recovery proper, inside the open transaction: each table in turn. */
static int s_load(pd_journal_t *jn, pd_journal_recovery_t *rec, char *why, size_t whycap)
{
    uint64_t next_id = 0;
    int rc = s_load_meta(jn, rec, &next_id, why, whycap);
    if (rc == 0)
        rc = s_load_mods(jn, rec, why, whycap);
    if (rc == 0)
        rc = s_load_shared(jn, rec, why, whycap);
    if (rc == 0)
        rc = s_load_gone(jn, next_id, why, whycap);
    if (rc == 0)
        rc = s_load_jobs(jn, rec, why, whycap);
    if (rc)
        return rc;
    rec->queued = pd_jobs_queued(jn->jobs);
    rc = s_load_owners(jn, next_id, why, whycap);
    if (rc == 0)
        rc = s_load_fetched(jn, next_id, why, whycap);
    if (rc == 0)
        rc = s_load_tokens(jn, rec, why, whycap);
    return rc;
}

int pd_journal_recover(pd_journal_t *jn, pd_journal_recovery_t *rec, char *why, size_t whycap)
{
    int rc = 0;
    jn->loading = true;
    if (sqlite3_exec(jn->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        char text[300];
        pd_journal_describe(jn, text, sizeof text, "cannot begin");
        snprintf(why, whycap, "journal %s: %s", jn->path, text);
        rc = PD_EIO;
    } else {
        rc = s_load(jn, rec, why, whycap);
        if (rc == 0 && sqlite3_exec(jn->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            char text[300];
            pd_journal_describe(jn, text, sizeof text, "cannot write it");
            snprintf(why, whycap, "journal %s: %s", jn->path, text);
            rc = PD_EIO;
        }
        if (rc && !sqlite3_get_autocommit(jn->db))
            sqlite3_exec(jn->db, "ROLLBACK", NULL, NULL, NULL);
    }
    jn->loading = false;
    free(jn->ivs);
    jn->ivs = NULL;
    jn->nivs = 0;
    return rc;
}

/* ---- upgrades of older formats ------------------------------------------ */

/* A journal of format version 2 lacks the jobs' limits: they are added
   (none asked) before anything is read or prepared. Returns 0, or -1 when
   the change failed (the statements' preparation then says why). */
static int s_upgrade_v2(pd_journal_t *jn)
{
    sqlite3_stmt *st = NULL;
    int64_t version = -1;
    if (sqlite3_prepare_v2(jn->db, "SELECT v FROM meta WHERE k = 'version'", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (version != 2)
        return 0; /* current, or not a journal: the reading says so */
    char sql[400];
    snprintf(sql, sizeof sql,
             "BEGIN;"
             "ALTER TABLE batches ADD COLUMN memory INTEGER NOT NULL DEFAULT 0;"
             "ALTER TABLE batches ADD COLUMN cpu_time INTEGER NOT NULL DEFAULT 0;"
             "ALTER TABLE batches ADD COLUMN max_output INTEGER NOT NULL DEFAULT 0;"
             "UPDATE meta SET v = %d WHERE k = 'version';"
             "COMMIT;", PD_JOURNAL_VERSION);
    if (sqlite3_exec(jn->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(jn->db, "ROLLBACK;", NULL, NULL, NULL);
        return -1;
    }
    pd_log_info("journal %s: format version 2 upgraded to %d (batches hold the jobs' limits)",
                jn->path, PD_JOURNAL_VERSION);
    return 0;
}

int pd_journal_upgrade(pd_journal_t *jn, char *why, size_t whycap)
{
    s_upgrade_v2(jn);
    /* A journal written before batches had retry_failed gets the column
       (0 for its rows: the value their submits had). */
    sqlite3_stmt *probe = NULL;
    bool has = sqlite3_prepare_v2(jn->db, "SELECT retry_failed FROM batches LIMIT 0", -1,
                                  &probe, NULL) == SQLITE_OK;
    sqlite3_finalize(probe);
    if (!has && sqlite3_exec(jn->db, "ALTER TABLE batches ADD COLUMN retry_failed INTEGER "
                                     "NOT NULL DEFAULT 0", NULL, NULL, NULL) != SQLITE_OK)
        return s_read_failed(jn, "cannot add retry_failed to its batches", why, whycap);
    return 0;
}
