/*  pd_journal: the broker's SQLite journal; see pd_journal.h for the model.

    Two threads share this object, each with its own fields (marked below):
    the broker's loop, which owns the job table, builds batches of
    operations and reads settlements, and the writer (a CZMQ actor), which
    owns the SQLite connection once recovery is over. They talk over the
    actor's pipe only: the loop sends "BATCH" with a pointer to a closed
    batch, the writer answers "DONE" with the highest batch settled. A batch
    is immutable once sent; the loop frees it (dropping the blob references
    it held) when it is settled. Blobs are immutable apart from their
    reference count and marks, which only the loop touches.

    Writer: it takes every batch waiting on the pipe (up to S_GROUP), applies
    them in one transaction and commits: one fsync for all of them. The
    first failing statement marks the transaction failed; the rest is
    skipped, the transaction rolled back, the batches reported failed, and
    the writer refuses every later batch until a snapshot (a full rewrite)
    arrives, which it applies on a fresh connection (SQLite keeps an
    exclusive-mode connection in its error state after an I/O error).

    Loop: forgets and first fetches arrive one id at a time and are
    coalesced into runs of consecutive ids before they become operations.
    Forgotten ids are kept as merged intervals in `gone`: adding [a, b]
    absorbs every interval that overlaps or touches it, so the table holds
    at most one row per hole between live jobs.

    Recovery (pd_journal_open, on the loop's thread before the writer
    starts) loads, in order: meta (next id), modules, gone intervals,
    batches (queued jobs, minus gone ids), result segments (final jobs,
    minus gone ids), first fetches and tokens. Rows whose blobs end up with
    no job are deleted. Every check that fails names the row and what was
    wrong.
*/
#include "pd_journal.h"
#include "pd_auth.h"
#include "pd_error.h"
#include "pd_log.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_FORMAT "playdoh-journal"
#define S_VERSION 3 /* 3: batches hold the jobs' limits (version 2 is upgraded in place) */
#define S_SUM 16                       /* bytes of a row checksum */
#define S_BACKOFF_MIN_MS 1000          /* first retry of a failing journal */
#define S_BACKOFF_MAX_MS 60000         /* longest wait between retries */
#define S_MAINT_MS 10000               /* housekeeping period */
#define S_WAL_LIMIT (64ll << 20)       /* the log is truncated to this after a checkpoint */
#define S_GROUP 256                    /* batches one commit takes at most */
#define S_ID_RESERVE 1000000u          /* ids written ahead as used: a job may go to a
                                          worker before its submit is on disk, and its id
                                          is still never handed out again after a crash */
#define S_OPEN_UNIT 4096               /* operations of the open batch counted as one in
                                          pd_journal_backlog */

enum {
    ST_BATCH_INS,
    ST_BATCH_DEL,
    ST_SEG_INS,
    ST_SEG_DEL,
    ST_GONE_PREV,
    ST_GONE_DEL,
    ST_GONE_PUT,
    ST_FETCH_INS,
    ST_FETCH_DEL,
    ST_TOKEN_INS,
    ST_TOKEN_PURGE,
    ST_MOD_INS,
    ST_META_PUT,
    ST_SHARED_INS,
    ST_SHARED_DEL,
    ST_OWNER_INS,
    ST_OWNER_GONE,
    ST_COUNT
};

static const char *const s_sql[ST_COUNT] = {
    [ST_BATCH_INS] = "INSERT OR REPLACE INTO batches(first, n, mod, fn, timeout_ms, retries, "
                     "client, shared, gpu, cu, max_slots, sum, args, owner, memory, cpu_time, "
                     "max_output, retry_failed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                     "?, ?, ?, ?)",
    [ST_BATCH_DEL] = "DELETE FROM batches WHERE first = ?",
    [ST_SEG_INS] = "INSERT OR REPLACE INTO results(seg, sum, res) VALUES (?, ?, ?)",
    [ST_SEG_DEL] = "DELETE FROM results WHERE seg = ?",
    [ST_GONE_PREV] = "SELECT first, last FROM gone WHERE first <= ? ORDER BY first DESC LIMIT 1",
    [ST_GONE_DEL] = "DELETE FROM gone WHERE first = ?",
    [ST_GONE_PUT] = "INSERT OR REPLACE INTO gone(first, last) VALUES (?, ?)",
    [ST_FETCH_INS] = "INSERT OR REPLACE INTO fetched(first, count, t) VALUES (?, ?, ?)",
    [ST_FETCH_DEL] = "DELETE FROM fetched WHERE first >= ? AND first < ?",
    [ST_TOKEN_INS] = "INSERT OR IGNORE INTO tokens(token, first, n, t) VALUES (?, ?, ?, ?)",
    [ST_TOKEN_PURGE] = "DELETE FROM tokens WHERE t < ?",
    [ST_MOD_INS] = "INSERT OR IGNORE INTO mods(hash, name, kind, data) VALUES (?, ?, ?, ?)",
    [ST_META_PUT] = "INSERT OR REPLACE INTO meta(k, v) VALUES (?, ?)",
    [ST_SHARED_INS] = "INSERT OR IGNORE INTO shared(hash, data) VALUES (?, ?)",
    [ST_SHARED_DEL] = "DELETE FROM shared WHERE hash = ?",
    [ST_OWNER_INS] = "INSERT OR REPLACE INTO owners(first, n, owner) VALUES (?, ?, ?)",
    [ST_OWNER_GONE] = "DELETE FROM owners WHERE first >= ? AND first <= ? AND first + n - 1 <= ?",
};

/* Who owns ids first .. first+n-1 (pd_auth.h's owner ids): written with
   each batch that has an owner, kept after the batch's row goes (its jobs
   final, their results waiting), deleted once every id of it is forgotten.
   Journals made before it get the table when opened. */
static const char *const s_schema_owners =
    "CREATE TABLE IF NOT EXISTS owners(first INTEGER PRIMARY KEY, n INTEGER NOT NULL, "
    "  owner TEXT NOT NULL);";

static const char *const s_schema =
    "CREATE TABLE meta(k TEXT PRIMARY KEY, v);"
    "CREATE TABLE mods(hash TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, "
    "  data BLOB NOT NULL);"
    "CREATE TABLE shared(hash TEXT PRIMARY KEY, data BLOB NOT NULL);"
    "CREATE TABLE batches(first INTEGER PRIMARY KEY, n INTEGER NOT NULL, mod TEXT NOT NULL, "
    "  fn TEXT NOT NULL, timeout_ms INTEGER NOT NULL, retries INTEGER NOT NULL, "
    "  client BLOB NOT NULL, shared TEXT, gpu INTEGER NOT NULL, cu TEXT, "
    "  max_slots INTEGER NOT NULL, sum BLOB NOT NULL, args BLOB NOT NULL, owner TEXT, "
    "  memory INTEGER NOT NULL DEFAULT 0, cpu_time INTEGER NOT NULL DEFAULT 0, "
    "  max_output INTEGER NOT NULL DEFAULT 0, retry_failed INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE results(seg INTEGER PRIMARY KEY, sum BLOB NOT NULL, res BLOB NOT NULL);"
    "CREATE TABLE gone(first INTEGER PRIMARY KEY, last INTEGER NOT NULL);"
    "CREATE TABLE fetched(first INTEGER PRIMARY KEY, count INTEGER NOT NULL, "
    "  t INTEGER NOT NULL);"
    "CREATE TABLE tokens(token BLOB PRIMARY KEY, first INTEGER NOT NULL, n INTEGER NOT NULL, "
    "  t INTEGER NOT NULL);"
    "CREATE TABLE owners(first INTEGER PRIMARY KEY, n INTEGER NOT NULL, owner TEXT NOT NULL);";

/* ---- operations and batches --------------------------------------------- */

typedef enum {
    OP_BATCH,     /* a submit: a=first, n, timeout_ms, retries, gpu, max_slots, blob=args,
                     text="hash\0fn\0shared\0cu\0owner\0" then the client's
                     routing id (client_len bytes); "" for no shared data, CUDA
                     module or owner */
    OP_DEL_BATCH, /* a=first */
    OP_SEG,       /* a=segment number, blob=segment */
    OP_DEL_SEG,   /* a=segment number */
    OP_GONE,      /* forgotten ids a .. b */
    OP_FETCHED,   /* first fetches of ids a .. a+n-1 at second b */
    OP_FETCH_DEL, /* drop first fetches with first in [a, b) */
    OP_TOKEN,     /* text=token (n bytes), a=first, b=count, timeout_ms=second */
    OP_TOKEN_PURGE, /* drop tokens older than second a */
    OP_MOD,       /* mod */
    OP_SHARED,    /* shared data: text=hash (65 bytes) then the b bytes */
    OP_DEL_SHARED, /* shared data evicted: text=hash */
    OP_TASK_ID,   /* the next synchronous task id is at least a */
    OP_OWNER,     /* ids a .. a+n-1 belong to owner text (a rewrite's final jobs) */
    OP_VACUUM,    /* after the commit: free pages if many are unused */
    OP_COMPACT    /* after the commit: checkpoint, truncate the log, free pages */
} s_op_kind_t;

typedef struct {
    s_op_kind_t kind;     /* what to do */
    uint32_t n;           /* a count (see the kinds) */
    uint32_t timeout_ms;  /* OP_BATCH: per-run time-out; OP_TOKEN: second */
    uint32_t retries;     /* OP_BATCH: retries */
    uint32_t retry_failed; /* OP_BATCH: runs again of a job whose own run failed */
    uint32_t client_len;  /* OP_BATCH: bytes of routing id at the end of text */
    uint32_t max_slots;   /* OP_BATCH: the client's cap */
    bool gpu;             /* OP_BATCH: GPU slots only */
    pd_limits_t limits;   /* OP_BATCH: what each job asks to take */
    uint64_t a, b;        /* arguments (see the kinds) */
    pd_blob_t *blob;      /* a blob held (one reference) until the batch is freed */
    bool args;            /* blob is an argument blob */
    char *text;           /* owned bytes (see the kinds) */
    const pd_mod_t *mod;  /* OP_MOD: the module (lives in the store) */
} s_op_t;

typedef struct s_batch {
    uint64_t seq;          /* its number, from 1 */
    uint64_t next_id;      /* the next id it writes in meta: a reserve ahead of the
                              table's next id (or that id exactly, with exact) */
    bool exact;            /* the last batch of a clean stop: no reserve */
    bool snapshot;         /* a full rewrite: empty the tables first */
    s_op_t *ops;           /* operations in order */
    size_t n;              /* how many */
    size_t cap;            /* capacity of ops */
    struct s_batch *next;  /* the next batch in flight */
} s_batch_t;

typedef struct {
    uint64_t first; /* first forgotten id */
    uint64_t last;  /* last forgotten id */
} s_iv_t;

struct pd_journal {
    /* set at open, read by both threads */
    char path[PATH_MAX];         /* the database file */
    int lock_fd;                 /* PATH.lock, locked while the journal is open; -1 = none */
    char wal[PATH_MAX + 8];      /* its write-ahead log */
    pd_journal_sync_t sync;      /* synchronous setting */
    uint64_t max_bytes;          /* bound on bytes (0 = none) */
    /* the writer's (the loop's until the writer starts, and after it ends) */
    sqlite3 *db;                 /* the database */
    sqlite3_stmt *st[ST_COUNT];  /* prepared statements */
    bool txn_failed;             /* a write of the open transaction failed */
    bool wfailed;                /* refusing batches until a snapshot */
    char werr[PATH_MAX + 700];   /* why (sent with the settlement) */
    uint64_t wnext_id;           /* next id as written in meta */
    /* the loop's */
    zactor_t *writer;            /* the writer thread */
    pd_jobs_t *jobs;             /* the job table it mirrors (borrowed) */
    pd_mods_t *mods;             /* the module store it mirrors (borrowed) */
    pd_shared_t *shared;         /* the shared-data store it mirrors (borrowed; may be NULL) */
    s_batch_t *open;             /* the batch being filled (NULL: none) */
    s_batch_t *head, *tail;      /* batches in flight, oldest first */
    size_t backlog;              /* how many */
    uint64_t next_seq;           /* number of the next batch */
    uint64_t sent_seq;           /* highest number sent */
    uint64_t done_seq;           /* highest number settled */
    uint64_t reserved;           /* next id as sent to be written (ids below it may be
                                    used before their submit is on disk) */
    bool recording;              /* hooks make operations (false while failing) */
    bool writable;               /* submits may be accepted */
    bool loading;                /* recovery is running */
    bool snapshot_in_flight;     /* a rewrite is on its way */
    char err[PATH_MAX + 700];    /* why it is failing */
    uint64_t bytes;              /* bytes on disk after the last settlement */
    uint64_t last_seg;           /* highest segment number used */
    uint64_t gone_lo, gone_hi;   /* pending run of forgotten ids (gone_hi 0: none) */
    uint64_t f_first;            /* pending run of first fetches: first id */
    uint32_t f_count;            /* ... how many (0: none) */
    uint32_t f_t;                /* ... their second */
    int64_t retry_ms;            /* monotonic ms of the next retry while failing */
    int64_t backoff_ms;          /* current wait between retries */
    int64_t maint_ms;            /* monotonic ms of the next housekeeping */
    s_iv_t *ivs;                 /* gone intervals, while loading */
    size_t nivs;                 /* entries in ivs */
    uint32_t gen;                /* blob mark of the current snapshot walk */
    uint64_t dropped_seq;        /* a batch dropped unsent while failing: settle it as
                                    failed (0: none) */
    atomic_bool held;            /* pd_journal_hold (tests): flushes hand nothing over */
    pd_journal_stats_t stats;    /* counters */
};

static int s_reconnect(pd_journal_t *jn, char *why, size_t whycap);

/* ---- failures (the connection's owner) ---------------------------------- */

/* Writes "what: SQLite's message (the system error or a likely cause)". */
static void s_describe(pd_journal_t *jn, char *out, size_t cap, const char *what)
{
    int sys = jn->db ? sqlite3_system_errno(jn->db) : 0;
    int code = jn->db ? sqlite3_extended_errcode(jn->db) & 0xff : 0;
    const char *msg = jn->db ? sqlite3_errmsg(jn->db) : "cannot open";
    if (sys)
        snprintf(out, cap, "%s: %s (%s)", what, msg, strerror(sys));
    else if (code == SQLITE_IOERR || code == SQLITE_FULL)
        snprintf(out, cap, "%s: %s (is the disk full, a file size limit reached, or the file "
                 "system read-only?)", what, msg);
    else
        snprintf(out, cap, "%s: %s", what, msg);
}

/* Marks the open transaction failed (the first failure is kept and logged). */
static void s_fail(pd_journal_t *jn, const char *what)
{
    if (jn->txn_failed)
        return;
    jn->txn_failed = true;
    s_describe(jn, jn->werr, sizeof jn->werr, what);
    pd_log_error("journal %s: %s", jn->path, jn->werr);
}

/* Runs a prepared write statement (bound already) and resets it. */
static bool s_step(pd_journal_t *jn, int which, const char *what)
{
    sqlite3_stmt *st = jn->st[which];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        s_fail(jn, what);
        return false;
    }
    return true;
}

static uint64_t s_file_bytes(const pd_journal_t *jn)
{
    struct stat st;
    uint64_t n = 0;
    if (stat(jn->path, &st) == 0)
        n += (uint64_t) st.st_size;
    if (stat(jn->wal, &st) == 0)
        n += (uint64_t) st.st_size;
    return n;
}

static int64_t s_pragma_int(pd_journal_t *jn, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(jn->db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

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

/* ---- checksums ---------------------------------------------------------- */

/* The fields of a batch row besides its arguments. */
typedef struct {
    uint64_t first;         /* first id */
    uint32_t n;             /* jobs */
    const char *mod;        /* module hash */
    const char *fn;         /* function */
    uint32_t timeout_ms;    /* per-run time-out */
    uint32_t retries;       /* lost-worker attempts */
    const uint8_t *client;  /* the submitter's routing id */
    size_t client_len;      /* its bytes */
    const char *shared;     /* shared-data hash, "" for none */
    bool gpu;               /* GPU slots only */
    const char *cu;         /* CUDA module hash, "" for none */
    uint32_t max_slots;     /* the client's cap */
    const char *owner;      /* the submitter as an owner (pd_auth.h), "" for nobody */
    pd_limits_t limits;     /* what each job asks to take (0 fields: nothing) */
    uint32_t retry_failed;  /* runs again of a job whose own run failed */
} s_row_t;

static void s_sum_batch(uint8_t out[S_SUM], const s_row_t *row, const void *args, size_t len)
{
    crypto_generichash_state h;
    uint64_t nums[7] = {row->first, row->n, row->timeout_ms, row->retries, row->gpu,
                        row->max_slots, row->client_len};
    crypto_generichash_init(&h, NULL, 0, S_SUM);
    crypto_generichash_update(&h, (const unsigned char *) nums, sizeof nums);
    if (!pd_limits_none(&row->limits)) {
        /* Only when set, so that rows written before limits existed keep
           their checksums. */
        uint64_t lim[3] = {row->limits.memory, row->limits.cpu_s, row->limits.output};
        crypto_generichash_update(&h, (const unsigned char *) lim, sizeof lim);
    }
    crypto_generichash_update(&h, (const unsigned char *) row->mod, strlen(row->mod) + 1);
    crypto_generichash_update(&h, (const unsigned char *) row->fn, strlen(row->fn) + 1);
    crypto_generichash_update(&h, (const unsigned char *) row->shared, strlen(row->shared) + 1);
    crypto_generichash_update(&h, (const unsigned char *) row->cu, strlen(row->cu) + 1);
    crypto_generichash_update(&h, (const unsigned char *) row->owner, strlen(row->owner) + 1);
    crypto_generichash_update(&h, row->client, row->client_len);
    crypto_generichash_update(&h, args, len);
    /* Summed only when set, so that rows written before the column existed
       (0 there) keep their sum. */
    if (row->retry_failed)
        crypto_generichash_update(&h, (const unsigned char *) &row->retry_failed,
                                  sizeof row->retry_failed);
    crypto_generichash_final(&h, out, S_SUM);
}

static void s_sum_seg(uint8_t out[S_SUM], uint64_t seg, const void *res, size_t len)
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, S_SUM);
    crypto_generichash_update(&h, (const unsigned char *) &seg, sizeof seg);
    crypto_generichash_update(&h, res, len);
    crypto_generichash_final(&h, out, S_SUM);
}

/* ---- row writers (the writer's thread) ---------------------------------- */

static void s_put_owner(pd_journal_t *jn, uint64_t first, uint64_t n, const char *owner)
{
    sqlite3_stmt *st = jn->st[ST_OWNER_INS];
    sqlite3_bind_int64(st, 1, (sqlite3_int64) first);
    sqlite3_bind_int64(st, 2, (sqlite3_int64) n);
    sqlite3_bind_text(st, 3, owner, -1, SQLITE_STATIC);
    s_step(jn, ST_OWNER_INS, "cannot write the owner of a batch");
}

static void s_put_batch(pd_journal_t *jn, const s_op_t *op)
{
    s_row_t row = {.first = op->a, .n = op->n, .mod = op->text, .timeout_ms = op->timeout_ms,
                   .retries = op->retries, .gpu = op->gpu, .max_slots = op->max_slots,
                   .client_len = op->client_len, .limits = op->limits,
                   .retry_failed = op->retry_failed};
    row.fn = row.mod + strlen(row.mod) + 1;
    row.shared = row.fn + strlen(row.fn) + 1;
    row.cu = row.shared + strlen(row.shared) + 1;
    row.owner = row.cu + strlen(row.cu) + 1;
    row.client = (const uint8_t *) row.owner + strlen(row.owner) + 1;
    const pd_blob_t *args = op->blob;
    uint8_t sum[S_SUM];
    s_sum_batch(sum, &row, args->data, args->len);
    sqlite3_stmt *st = jn->st[ST_BATCH_INS];
    sqlite3_bind_int64(st, 1, (sqlite3_int64) op->a);
    sqlite3_bind_int64(st, 2, op->n);
    sqlite3_bind_text(st, 3, row.mod, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, row.fn, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, op->timeout_ms);
    sqlite3_bind_int64(st, 6, op->retries);
    sqlite3_bind_blob(st, 7, row.client, (int) row.client_len, SQLITE_STATIC);
    if (row.shared[0])
        sqlite3_bind_text(st, 8, row.shared, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 8);
    sqlite3_bind_int64(st, 9, op->gpu);
    if (row.cu[0])
        sqlite3_bind_text(st, 10, row.cu, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 10);
    sqlite3_bind_int64(st, 11, op->max_slots);
    sqlite3_bind_blob(st, 12, sum, S_SUM, SQLITE_STATIC);
    sqlite3_bind_blob(st, 13, args->data, (int) args->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 15, (sqlite3_int64) op->limits.memory);
    sqlite3_bind_int64(st, 16, (sqlite3_int64) op->limits.cpu_s);
    sqlite3_bind_int64(st, 17, (sqlite3_int64) op->limits.output);
    if (row.owner[0])
        sqlite3_bind_text(st, 14, row.owner, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 14);
    sqlite3_bind_int64(st, 18, op->retry_failed);
    s_step(jn, ST_BATCH_INS, "cannot write a batch of jobs");
    if (row.owner[0] && !jn->txn_failed)
        s_put_owner(jn, op->a, op->n, row.owner);
}

static void s_put_seg(pd_journal_t *jn, const s_op_t *op)
{
    uint8_t sum[S_SUM];
    s_sum_seg(sum, op->a, op->blob->data, op->blob->len);
    sqlite3_stmt *st = jn->st[ST_SEG_INS];
    sqlite3_bind_int64(st, 1, (sqlite3_int64) op->a);
    sqlite3_bind_blob(st, 2, sum, S_SUM, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, op->blob->data, (int) op->blob->len, SQLITE_STATIC);
    s_step(jn, ST_SEG_INS, "cannot write results");
}

static void s_del_key(pd_journal_t *jn, int which, uint64_t key, const char *what)
{
    sqlite3_bind_int64(jn->st[which], 1, (sqlite3_int64) key);
    s_step(jn, which, what);
}

static void s_put_meta(pd_journal_t *jn, const char *k, int64_t v)
{
    sqlite3_stmt *st = jn->st[ST_META_PUT];
    sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v);
    s_step(jn, ST_META_PUT, "cannot write the journal's meta table");
}

/* Adds forgotten ids [lo, hi] to `gone`, merging with the intervals that
   overlap or touch it. */
static void s_gone_add(pd_journal_t *jn, uint64_t lo, uint64_t hi)
{
    sqlite3_stmt *prev = jn->st[ST_GONE_PREV];
    for (;;) {
        sqlite3_bind_int64(prev, 1, (sqlite3_int64) (hi + 1));
        int rc = sqlite3_step(prev);
        if (rc == SQLITE_DONE) {
            sqlite3_reset(prev);
            break;
        }
        if (rc != SQLITE_ROW) {
            sqlite3_reset(prev);
            s_fail(jn, "cannot read forgotten ids");
            return;
        }
        uint64_t pf = (uint64_t) sqlite3_column_int64(prev, 0);
        uint64_t pl = (uint64_t) sqlite3_column_int64(prev, 1);
        sqlite3_reset(prev);
        if (pl + 1 < lo)
            break;
        if (pf < lo)
            lo = pf;
        if (pl > hi)
            hi = pl;
        s_del_key(jn, ST_GONE_DEL, pf, "cannot merge forgotten ids");
        if (jn->txn_failed)
            return;
    }
    sqlite3_stmt *put = jn->st[ST_GONE_PUT];
    sqlite3_bind_int64(put, 1, (sqlite3_int64) lo);
    sqlite3_bind_int64(put, 2, (sqlite3_int64) hi);
    if (!s_step(jn, ST_GONE_PUT, "cannot write forgotten ids"))
        return;
    /* Owners of ranges now wholly forgotten go too. */
    sqlite3_stmt *own = jn->st[ST_OWNER_GONE];
    sqlite3_bind_int64(own, 1, (sqlite3_int64) lo);
    sqlite3_bind_int64(own, 2, (sqlite3_int64) hi);
    sqlite3_bind_int64(own, 3, (sqlite3_int64) hi);
    s_step(jn, ST_OWNER_GONE, "cannot forget the owners of forgotten ids");
}

static void s_apply(pd_journal_t *jn, const s_op_t *op)
{
    sqlite3_stmt *st;
    switch (op->kind) {
    case OP_BATCH:
        s_put_batch(jn, op);
        break;
    case OP_DEL_BATCH:
        s_del_key(jn, ST_BATCH_DEL, op->a, "cannot delete a finished batch");
        break;
    case OP_SEG:
        s_put_seg(jn, op);
        break;
    case OP_DEL_SEG:
        s_del_key(jn, ST_SEG_DEL, op->a, "cannot delete results");
        break;
    case OP_GONE:
        s_gone_add(jn, op->a, op->b);
        break;
    case OP_FETCHED:
        st = jn->st[ST_FETCH_INS];
        sqlite3_bind_int64(st, 1, (sqlite3_int64) op->a);
        sqlite3_bind_int64(st, 2, op->n);
        sqlite3_bind_int64(st, 3, (sqlite3_int64) op->b);
        s_step(jn, ST_FETCH_INS, "cannot write a first fetch");
        break;
    case OP_FETCH_DEL:
        st = jn->st[ST_FETCH_DEL];
        sqlite3_bind_int64(st, 1, (sqlite3_int64) op->a);
        sqlite3_bind_int64(st, 2, (sqlite3_int64) op->b);
        s_step(jn, ST_FETCH_DEL, "cannot delete expired first fetches");
        break;
    case OP_TOKEN:
        st = jn->st[ST_TOKEN_INS];
        sqlite3_bind_blob(st, 1, op->text, (int) op->n, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64) op->a);
        sqlite3_bind_int64(st, 3, (sqlite3_int64) op->b);
        sqlite3_bind_int64(st, 4, op->timeout_ms);
        s_step(jn, ST_TOKEN_INS, "cannot write a submit token");
        break;
    case OP_TOKEN_PURGE:
        st = jn->st[ST_TOKEN_PURGE];
        sqlite3_bind_int64(st, 1, (sqlite3_int64) op->a);
        s_step(jn, ST_TOKEN_PURGE, "cannot forget old submit tokens");
        break;
    case OP_MOD:
        st = jn->st[ST_MOD_INS];
        sqlite3_bind_text(st, 1, op->mod->hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, op->mod->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, op->mod->kind, -1, SQLITE_STATIC);
        sqlite3_bind_blob64(st, 4, op->mod->data, op->mod->len, SQLITE_STATIC);
        s_step(jn, ST_MOD_INS, "cannot write a module");
        break;
    case OP_SHARED:
        st = jn->st[ST_SHARED_INS];
        sqlite3_bind_text(st, 1, op->text, -1, SQLITE_STATIC);
        sqlite3_bind_blob64(st, 2, op->text + PD_SHARED_HASH_LEN + 1, op->b, SQLITE_STATIC);
        s_step(jn, ST_SHARED_INS, "cannot write shared data");
        break;
    case OP_DEL_SHARED:
        st = jn->st[ST_SHARED_DEL];
        sqlite3_bind_text(st, 1, op->text, -1, SQLITE_STATIC);
        s_step(jn, ST_SHARED_DEL, "cannot delete shared data");
        break;
    case OP_TASK_ID:
        s_put_meta(jn, "next_task", (int64_t) op->a);
        break;
    case OP_OWNER:
        s_put_owner(jn, op->a, op->n, op->text);
        break;
    case OP_VACUUM:
    case OP_COMPACT:
        break; /* after the commit */
    }
}

/* ---- the writer thread ---------------------------------------------------- */

/* Applies a group of batches in one transaction. Returns true when it
   committed. */
static bool s_write_group(pd_journal_t *jn, s_batch_t **group, size_t n, bool *compact,
                          bool *vacuum)
{
    if (group[0]->snapshot && jn->wfailed) {
        char why[PATH_MAX + 700];
        if (s_reconnect(jn, why, sizeof why) != 0) {
            snprintf(jn->werr, sizeof jn->werr, "%s", why);
            return false;
        }
        jn->wfailed = false;
    }
    if (jn->wfailed)
        return false; /* until a snapshot */
    jn->txn_failed = false;
    if (sqlite3_exec(jn->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        s_fail(jn, "cannot begin a transaction");
    uint64_t next_id = jn->wnext_id;
    for (size_t b = 0; b < n && !jn->txn_failed; b++) {
        if (group[b]->snapshot &&
            sqlite3_exec(jn->db, "DELETE FROM batches; DELETE FROM results; DELETE FROM gone; "
                         "DELETE FROM fetched; DELETE FROM tokens; DELETE FROM shared; "
                         "DELETE FROM owners;", NULL,
                         NULL, NULL) !=
                SQLITE_OK)
            s_fail(jn, "cannot empty the journal for a rewrite");
        for (size_t i = 0; i < group[b]->n && !jn->txn_failed; i++) {
            const s_op_t *op = &group[b]->ops[i];
            *compact |= op->kind == OP_COMPACT;
            *vacuum |= op->kind == OP_VACUUM;
            s_apply(jn, op);
        }
        if (group[b]->next_id > next_id || group[b]->exact)
            next_id = group[b]->next_id;
    }
    if (!jn->txn_failed && next_id != jn->wnext_id)
        s_put_meta(jn, "next_id", (int64_t) next_id);
    if (!jn->txn_failed && sqlite3_exec(jn->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        s_fail(jn, "cannot commit");
    if (jn->txn_failed) {
        if (!sqlite3_get_autocommit(jn->db))
            sqlite3_exec(jn->db, "ROLLBACK", NULL, NULL, NULL);
        jn->wfailed = true;
        return false;
    }
    jn->wnext_id = next_id;
    return true;
}

static void s_after_commit(pd_journal_t *jn, bool compact, bool vacuum)
{
    if (compact) {
        if (sqlite3_exec(jn->db, "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA incremental_vacuum; "
                                 "PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, NULL) !=
            SQLITE_OK)
            pd_log_warn("journal %s: could not compact: %s", jn->path, sqlite3_errmsg(jn->db));
    } else if (vacuum) {
        int64_t free_pages = s_pragma_int(jn, "PRAGMA freelist_count");
        int64_t pages = s_pragma_int(jn, "PRAGMA page_count");
        if (free_pages > 1024 && free_pages * 4 > pages &&
            sqlite3_exec(jn->db, "PRAGMA incremental_vacuum(4096)", NULL, NULL, NULL) !=
                SQLITE_OK)
            pd_log_warn("journal %s: could not free pages: %s", jn->path, sqlite3_errmsg(jn->db));
    }
}

static void s_writer(zsock_t *pipe, void *arg)
{
    pd_journal_t *jn = arg;
    zsock_signal(pipe, 0);
    s_batch_t *group[S_GROUP];
    bool stop = false;
    while (!stop) {
        size_t n = 0;
        char *cmd = NULL;
        void *ptr = NULL;
        /* Block for the first batch, then take whatever else waits. */
        while (n < S_GROUP) {
            if (n > 0 && !(zsock_events(pipe) & ZMQ_POLLIN))
                break;
            if (zsock_recv(pipe, "sp", &cmd, &ptr) != 0) {
                stop = true;
                break;
            }
            bool term = !cmd || strcmp(cmd, "BATCH") != 0;
            zstr_free(&cmd);
            if (term) {
                stop = true;
                break;
            }
            group[n++] = ptr;
            if (((s_batch_t *) ptr)->snapshot)
                break; /* a rewrite commits alone */
        }
        if (n == 0)
            break;
        /* A snapshot behind normal batches waits for the next round: it
           must start the transaction that empties the tables. */
        size_t take = n;
        for (size_t i = 1; i < n; i++)
            if (group[i]->snapshot) {
                take = i;
                break;
            }
        for (size_t start = 0; start < n;) {
            size_t end = start == 0 ? take : n;
            bool compact = false, vacuum = false;
            bool ok = s_write_group(jn, group + start, end - start, &compact, &vacuum);
            if (ok)
                s_after_commit(jn, compact, vacuum);
            uint64_t bytes = s_file_bytes(jn);
            zsock_send(pipe, "s8188s", "DONE", group[end - 1]->seq, (uint8_t) ok,
                       group[end - 1]->next_id, bytes, ok ? "" : jn->werr);
            start = end;
        }
    }
}

/* ---- batches (the loop's thread) -------------------------------------- */

static s_op_t *s_op(pd_journal_t *jn, s_op_kind_t kind)
{
    if (!jn->open) {
        jn->open = calloc(1, sizeof *jn->open);
        if (!jn->open)
            return NULL;
    }
    s_batch_t *b = jn->open;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 32;
        s_op_t *ops = realloc(b->ops, cap * sizeof *ops);
        if (!ops)
            return NULL;
        b->ops = ops;
        b->cap = cap;
    }
    s_op_t *op = &b->ops[b->n++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    return op;
}

/* Out of memory for an operation: the journal can no longer mirror memory;
   it turns failing and will rewrite itself. */
static void s_lost_op(pd_journal_t *jn)
{
    if (!jn->recording)
        return;
    snprintf(jn->err, sizeof jn->err, "out of memory for a journal operation");
    pd_log_error("journal %s: %s", jn->path, jn->err);
    jn->recording = false;
    jn->writable = false;
    jn->stats.failures++;
    jn->backoff_ms = S_BACKOFF_MIN_MS;
    jn->retry_ms = zclock_mono() + jn->backoff_ms;
}

static void s_batch_free(pd_journal_t *jn, s_batch_t **p)
{
    s_batch_t *b = *p;
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        s_op_t *op = &b->ops[i];
        if (op->blob)
            pd_jobs_blob_release(jn->jobs, &op->blob, op->args);
        free(op->text);
    }
    free(b->ops);
    free(b);
    *p = NULL;
}

static void s_hold_blob(s_op_t *op, pd_blob_t *blob, bool args)
{
    pd_jobs_blob_hold(blob);
    op->blob = blob;
    op->args = args;
}

static void s_flush_fetched(pd_journal_t *jn)
{
    if (jn->f_count) {
        s_op_t *op = s_op(jn, OP_FETCHED);
        if (!op)
            s_lost_op(jn);
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
        s_op_t *op = s_op(jn, OP_GONE);
        if (!op)
            s_lost_op(jn);
        else {
            op->a = jn->gone_lo;
            op->b = jn->gone_hi;
        }
    }
    jn->gone_hi = 0;
}

/* ---- hooks from pd_jobs ----------------------------------------------- */

static void s_on_sealed(void *user, pd_blob_t *seg)
{
    pd_journal_t *jn = user;
    if (jn->loading || !jn->recording)
        return;
    seg->key = ++jn->last_seg;
    s_op_t *op = s_op(jn, OP_SEG);
    if (!op) {
        s_lost_op(jn);
        return;
    }
    op->a = seg->key;
    seg->jseq = jn->next_seq; /* the number the open batch will get */
    s_hold_blob(op, seg, false);
}

static void s_on_dead(void *user, const pd_blob_t *blob, bool args)
{
    pd_journal_t *jn = user;
    if (blob->key == 0 || !jn->recording)
        return;
    s_op_t *op = s_op(jn, args ? OP_DEL_BATCH : OP_DEL_SEG);
    if (!op)
        s_lost_op(jn);
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
    s_op_t *op = s_op(jn, OP_FETCH_DEL);
    if (!op) {
        s_lost_op(jn);
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
    s_op_t *op = s_op(jn, OP_TOKEN);
    char *copy = op ? malloc(len) : NULL;
    if (!copy) {
        if (op)
            jn->open->n--;
        s_lost_op(jn);
        return;
    }
    memcpy(copy, token, len);
    op->text = copy;
    op->n = (uint32_t) len;
    op->a = first;
    op->b = n;
    op->timeout_ms = sec;
}

static void s_op_batch(pd_journal_t *jn, const s_row_t *row, pd_blob_t *args)
{
    size_t hl = strlen(row->mod), fl = strlen(row->fn), sl = strlen(row->shared),
           cl = strlen(row->cu), ol = strlen(row->owner);
    s_op_t *op = s_op(jn, OP_BATCH);
    char *text = op ? malloc(hl + fl + sl + cl + ol + 5 + row->client_len) : NULL;
    if (!text) {
        if (op)
            jn->open->n--;
        s_lost_op(jn);
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
    s_hold_blob(op, args, true);
}

void pd_journal_submit(pd_journal_t *jn, uint64_t first, uint32_t n,
                       const pd_jobs_submit_t *sub, const char *hash, const char *shared,
                       const char *cu, pd_blob_t *args, const void *token, size_t tokenlen,
                       uint32_t now_s)
{
    assert(args && args->key == first);
    if (!jn->recording)
        return;
    s_row_t row = {.first = first, .n = n, .mod = hash, .fn = sub->fn,
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
    s_op_t *op = s_op(jn, OP_SHARED);
    char *text = op ? malloc(PD_SHARED_HASH_LEN + 1 + len) : NULL;
    if (!text) {
        if (op)
            jn->open->n--;
        s_lost_op(jn);
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
    s_op_t *op = s_op(jn, OP_DEL_SHARED);
    char *text = op ? strdup(hash) : NULL;
    if (!text) {
        if (op)
            jn->open->n--;
        s_lost_op(jn);
        return;
    }
    op->text = text;
}

void pd_journal_put_task_id(pd_journal_t *jn, uint64_t next)
{
    if (!jn->recording)
        return;
    s_op_t *op = s_op(jn, OP_TASK_ID);
    if (!op)
        s_lost_op(jn);
    else
        op->a = next;
}

void pd_journal_put_mod(pd_journal_t *jn, const pd_mod_t *mod)
{
    if (!jn->recording)
        return;
    s_op_t *op = s_op(jn, OP_MOD);
    if (!op)
        s_lost_op(jn);
    else
        op->mod = mod;
}

uint64_t pd_journal_tag(const pd_journal_t *jn)
{
    if ((jn->open && jn->open->n) || jn->gone_hi || jn->f_count)
        return jn->next_seq;
    return jn->sent_seq > jn->done_seq ? jn->sent_seq : 0;
}

size_t pd_journal_backlog(const pd_journal_t *jn)
{
    /* A batch in flight, plus the open one counted in units of S_OPEN_UNIT
       operations: what the loop has piled up while the disk was busy. */
    return jn->backlog + (jn->open ? jn->open->n / S_OPEN_UNIT : 0);
}

bool pd_journal_visible(const pd_journal_t *jn, uint64_t seq)
{
    return seq == 0 || seq <= jn->done_seq || !jn->writable;
}
void *pd_journal_socket(pd_journal_t *jn) { return zsock_resolve(zactor_sock(jn->writer)); }

/* Sends a closed batch to the writer. */
static void s_send(pd_journal_t *jn, s_batch_t *b)
{
    b->seq = jn->next_seq++;
    uint64_t next = pd_jobs_next_id(jn->jobs);
    if (b->exact) {
        b->next_id = next;
    } else {
        if (next + S_ID_RESERVE / 2 > jn->reserved)
            jn->reserved = next + S_ID_RESERVE;
        b->next_id = jn->reserved;
    }
    if (jn->tail)
        jn->tail->next = b;
    else
        jn->head = b;
    jn->tail = b;
    jn->backlog++;
    jn->sent_seq = b->seq;
    zsock_send(jn->writer, "sp", "BATCH", b);
}

void pd_journal_flush(pd_journal_t *jn)
{
    if (jn->backlog && jn->recording)
        return; /* the writer is busy: more goes into the next commit */
    if (atomic_load(&jn->held))
        return; /* a test stands in for a slow disk */
    s_flush_gone(jn);
    s_flush_fetched(jn);
    if (!jn->open || !jn->open->n)
        return;
    if (!jn->recording) {
        /* Failing: the rewrite will cover it. Replies waiting for it are
           told it failed, by the next pd_journal_settle. */
        s_batch_free(jn, &jn->open);
        jn->dropped_seq = jn->next_seq++;
        jn->sent_seq = jn->dropped_seq;
        return;
    }
    s_batch_t *b = jn->open;
    jn->open = NULL;
    s_send(jn, b);
}

bool pd_journal_settle(pd_journal_t *jn, pd_journal_done_t *done)
{
    if (jn->dropped_seq && !jn->backlog) {
        /* settled after everything sent before it */
        done->seq = jn->done_seq = jn->dropped_seq;
        done->ok = false;
        done->next_id = 0;
        jn->dropped_seq = 0;
        return true;
    }
    if (!(zsock_events(zactor_sock(jn->writer)) & ZMQ_POLLIN))
        return false;
    char *cmd = NULL, *err = NULL;
    uint64_t seq = 0, next_id = 0, bytes = 0;
    uint8_t ok = 0;
    if (zsock_recv(jn->writer, "s8188s", &cmd, &seq, &ok, &next_id, &bytes, &err) != 0 ||
        !cmd || strcmp(cmd, "DONE") != 0) {
        zstr_free(&cmd);
        zstr_free(&err);
        return false;
    }
    zstr_free(&cmd);
    bool snapshot = false;
    while (jn->head && jn->head->seq <= seq) {
        s_batch_t *b = jn->head;
        jn->head = b->next;
        if (!jn->head)
            jn->tail = NULL;
        jn->backlog--;
        snapshot |= b->snapshot;
        jn->stats.batches++;
        s_batch_free(jn, &b);
    }
    jn->done_seq = seq;
    jn->bytes = bytes;
    if (ok) {
        jn->stats.commits++;
        if (snapshot) {
            jn->snapshot_in_flight = false;
            jn->writable = true;
            jn->err[0] = 0;
            jn->stats.resyncs++;
            pd_log_info("journal %s is writable again: rewrote it from memory (%.1f MiB); "
                        "new jobs are accepted again", jn->path, bytes / 1048576.0);
        }
    } else {
        if (jn->writable || jn->snapshot_in_flight) {
            snprintf(jn->err, sizeof jn->err, "%s", err ? err : "a write failed");
            if (jn->writable) {
                jn->stats.failures++;
                jn->backoff_ms = S_BACKOFF_MIN_MS;
                pd_log_error("journal %s cannot be written (%s): new jobs are refused until it "
                             "can; jobs already accepted go on; retrying with a back-off of 1 "
                             "to 60 s", jn->path, jn->err);
            } else {
                jn->backoff_ms = jn->backoff_ms * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS
                                                                       : jn->backoff_ms * 2;
            }
            jn->retry_ms = zclock_mono() + jn->backoff_ms;
        }
        jn->writable = false;
        jn->recording = false;
        jn->snapshot_in_flight = false;
        jn->gone_hi = 0;
        jn->f_count = 0;
        s_batch_free(jn, &jn->open); /* it could not be written either */
    }
    zstr_free(&err);
    done->seq = seq;
    done->ok = ok;
    done->next_id = next_id;
    return true;
}

int pd_journal_wait(pd_journal_t *jn, void (*on_done)(void *user, const pd_journal_done_t *done),
                    void *user)
{
    pd_journal_flush(jn);
    bool failed = false;
    while (jn->backlog || jn->dropped_seq || pd_journal_tag(jn)) {
        zmq_pollitem_t it = {.socket = pd_journal_socket(jn), .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 1000) < 0 && zmq_errno() != EINTR)
            break;
        pd_journal_done_t done;
        while (pd_journal_settle(jn, &done)) {
            failed |= !done.ok;
            if (on_done)
                on_done(user, &done);
        }
        pd_journal_flush(jn); /* what waited behind the settled batch */
    }
    return failed || !jn->writable ? PD_EIO : 0;
}

int pd_journal_commit(pd_journal_t *jn) { return pd_journal_wait(jn, NULL, NULL); }

void pd_journal_hold(pd_journal_t *jn, bool hold) { atomic_store(&jn->held, hold); }

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
    s_op_t *op = s_op(jn, OP_OWNER);
    char *copy = op ? strdup(owner) : NULL;
    if (!copy) {
        if (op)
            jn->open->n--;
        s_lost_op(jn);
        return;
    }
    op->text = copy;
    op->a = first;
    op->n = (uint32_t) n;
}

static void s_snapshot_gone(pd_journal_t *jn, uint64_t lo, uint64_t hi)
{
    s_op_t *op = s_op(jn, OP_GONE);
    if (!op) {
        s_lost_op(jn);
        return;
    }
    op->a = lo;
    op->b = hi;
}

void pd_journal_resync(pd_journal_t *jn)
{
    pd_journal_flush(jn);
    s_batch_free(jn, &jn->open);
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
        pd_job_t *job = pd_jobs_get(jobs, id);
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
        if (!final) {
            pd_rd_t r;
            uint32_t n = 0;
            pd_rd_init(&r, blob->data, blob->len);
            pd_rd_array(&r, &n);
            uint8_t rid[PD_JOBS_MAX_CLIENT_ID];
            size_t ridlen;
            uint32_t max_slots;
            pd_jobs_client_of(jobs, job, rid, &ridlen, &max_slots);
            s_row_t row = {.first = blob->key, .n = n,
                           .mod = pd_mods_get(jn->mods, job->mod)->hash,
                           .fn = pd_jobs_fn_name(jobs, job->fn), .timeout_ms = job->timeout_ms,
                           .retries = job->retries, .client = rid, .client_len = ridlen,
                           .shared = job->shared && jn->shared
                                         ? pd_shared_get(jn->shared, job->shared - 1)->hash
                                         : "",
                           .gpu = job->gpu,
                           .cu = job->cu ? pd_mods_get(jn->mods, job->cu - 1)->hash : "",
                           .max_slots = max_slots, .owner = pd_jobs_owner_id(jobs, job->fn),
                           .limits = pd_jobs_fn_limits(jobs, job->fn),
                           .retry_failed = job->retry_failed};
            s_op_batch(jn, &row, blob);
        } else {
            if (blob->key == 0)
                blob->key = ++jn->last_seg;
            s_op_t *op = s_op(jn, OP_SEG);
            if (!op) {
                s_lost_op(jn);
                break;
            }
            op->a = blob->key;
            s_hold_blob(op, blob, false);
        }
    }
    s_snapshot_owner(jn, run_first, run_n, run_owner);
    if (next > expect)
        s_snapshot_gone(jn, expect, next - 1);
    for (size_t i = 0; i < pd_jobs_ttl_count(jobs); i++) {
        uint64_t first;
        uint32_t count, sec;
        pd_jobs_ttl_at(jobs, i, &first, &count, &sec);
        s_op_t *op = s_op(jn, OP_FETCHED);
        if (!op) {
            s_lost_op(jn);
            break;
        }
        op->a = first;
        op->n = count;
        op->b = sec;
    }
    pd_jobs_token_each(jobs, s_snapshot_token, jn);
    if (!jn->recording) { /* out of memory on the way */
        s_batch_free(jn, &jn->open);
        return;
    }
    if (!s_op(jn, OP_VACUUM)) { /* also makes sure a batch exists */
        s_lost_op(jn);
        s_batch_free(jn, &jn->open);
        return;
    }
    s_batch_t *b = jn->open;
    jn->open = NULL;
    b->snapshot = true;
    jn->snapshot_in_flight = true;
    s_send(jn, b);
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
        s_op_t *op = s_op(jn, OP_TOKEN_PURGE);
        if (op)
            op->a = (uint64_t) now_s - PD_JOBS_TOKEN_TTL_S + 1;
    }
    if (!s_op(jn, OP_VACUUM))
        s_lost_op(jn);
}

void pd_journal_compact(pd_journal_t *jn)
{
    if (jn->recording && !s_op(jn, OP_COMPACT))
        s_lost_op(jn);
}

/* ---- opening ----------------------------------------------------------- */

int pd_journal_default_path(char *out, size_t cap)
{
    const char *state = getenv("STATE_DIRECTORY"); /* systemd's StateDirectory= */
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    int n;
    if (state && state[0] == '/' && !strchr(state, ':'))
        n = snprintf(out, cap, "%s/broker.journal", state);
    else if (geteuid() == 0)
        n = snprintf(out, cap, "/var/lib/playdoh/broker.journal");
    else if (xdg && xdg[0] == '/')
        n = snprintf(out, cap, "%s/playdoh/broker.journal", xdg);
    else if (home && home[0])
        n = snprintf(out, cap, "%s/.local/state/playdoh/broker.journal", home);
    else
        return PD_EINVAL;
    return n > 0 && (size_t) n < cap ? 0 : PD_EINVAL;
}

/* mkdir -p of path's directory, 0700 for what it creates. */
static int s_make_parent(const char *path, char *why, size_t whycap)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = 0;
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != 0)
            continue;
        char c = *p;
        *p = 0;
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            snprintf(why, whycap, "cannot create the journal's directory %s: %s", dir,
                     strerror(errno));
            return PD_EIO;
        }
        *p = c;
        if (c == 0)
            break;
    }
    return 0;
}

/* Moves the journal's files aside (reset); writes the new name into moved. */
static int s_move_aside(const char *path, char *moved, size_t cap, char *why, size_t whycap)
{
    moved[0] = 0;
    if (access(path, F_OK) != 0)
        return 0;
    snprintf(moved, cap, "%s.old-%lld", path, (long long) time(NULL));
    static const char *const suffix[] = {"-wal", "-shm"};
    for (int i = 0; i < 2; i++) {
        char from[PATH_MAX + 8], to[PATH_MAX + 40];
        snprintf(from, sizeof from, "%s%s", path, suffix[i]);
        snprintf(to, sizeof to, "%s%s", moved, suffix[i]);
        if (access(from, F_OK) == 0 && rename(from, to) != 0) {
            snprintf(why, whycap, "cannot move %s aside: %s", from, strerror(errno));
            return PD_EIO;
        }
    }
    if (rename(path, moved) != 0) {
        snprintf(why, whycap, "cannot move %s aside: %s", path, strerror(errno));
        return PD_EIO;
    }
    return 0;
}

/* Formats "journal PATH is damaged: ..." into why; returns PD_EIO. */
static int s_damaged(pd_journal_t *jn, char *why, size_t whycap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int s_damaged(pd_journal_t *jn, char *why, size_t whycap, const char *fmt, ...)
{
    char detail[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    snprintf(why, whycap, "journal %s is damaged (%s): the broker will not start on it. Keep "
             "it for inspection and start with --journal-reset to move it aside and begin "
             "empty (its jobs are then lost), or give another --journal", jn->path, detail);
    return PD_EIO;
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
    return s_step(jn, which, "cannot delete a row") ? 0 : PD_EIO;
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
static int s_load(pd_journal_t *jn, pd_journal_recovery_t *rec, char *why, size_t whycap)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;
    char text[300];
#define S_QUERY(sql)                                                                     \
    do {                                                                                 \
        sqlite3_finalize(st);                                                            \
        st = NULL;                                                                       \
        if (sqlite3_prepare_v2(jn->db, sql, -1, &st, NULL) != SQLITE_OK) {               \
            s_describe(jn, text, sizeof text, "cannot read it");                         \
            rc = s_damaged(jn, why, whycap, "%s", text);                                 \
            goto out;                                                                    \
        }                                                                                \
    } while (0)
#define S_STEP_ERR(what)                                                                 \
    do {                                                                                 \
        s_describe(jn, text, sizeof text, what);                                         \
        rc = s_damaged(jn, why, whycap, "%s", text);                                     \
        goto out;                                                                        \
    } while (0)
    int step;

    /* meta */
    uint64_t next_id = 0;
    bool format = false;
    int64_t version = -1;
    S_QUERY("SELECT k, v FROM meta");
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *) sqlite3_column_text(st, 0);
        if (!k)
            continue;
        if (strcmp(k, "format") == 0) {
            const char *v = (const char *) sqlite3_column_text(st, 1);
            format = v && strcmp(v, S_FORMAT) == 0;
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
        S_STEP_ERR("cannot read meta");
    if (!format) {
        rc = s_damaged(jn, why, whycap, "it is an SQLite database but not a Playdoh journal");
        goto out;
    }
    if (version != S_VERSION) {
        snprintf(why, whycap, "journal %s has format version %lld; this playdoh-broker reads "
                 "version %d: run the Playdoh that wrote it, or give another --journal",
                 jn->path, (long long) version, S_VERSION);
        rc = PD_EIO;
        goto out;
    }
    if (next_id == 0) {
        rc = s_damaged(jn, why, whycap, "meta has no next job id");
        goto out;
    }
    pd_jobs_set_next_id(jn->jobs, next_id);
    jn->wnext_id = next_id;
    rec->next_id = next_id;

    /* modules */
    S_QUERY("SELECT hash, name, kind, data FROM mods ORDER BY rowid");
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *hash = (const char *) sqlite3_column_text(st, 0);
        const char *name = (const char *) sqlite3_column_text(st, 1);
        const char *kind = (const char *) sqlite3_column_text(st, 2);
        const void *data = sqlite3_column_blob(st, 3);
        int len = sqlite3_column_bytes(st, 3);
        char mwhy[300];
        if (!hash || !name || !kind || !s_blob_is(st, 3, -1) ||
            pd_mods_put(jn->mods, hash, name, kind, data, (size_t) len, mwhy, sizeof mwhy) < 0) {
            rc = s_damaged(jn, why, whycap, "module %.40s: %s", name ? name : "?",
                           hash && name && kind ? mwhy : "missing fields");
            goto out;
        }
        rec->mods++;
    }
    if (step != SQLITE_DONE)
        S_STEP_ERR("cannot read modules");

    /* shared data (nothing is evicted while loading: no job names any yet,
       but all of it may be needed) */
    S_QUERY("SELECT hash, data FROM shared ORDER BY rowid");
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *hash = (const char *) sqlite3_column_text(st, 0);
        const void *data = sqlite3_column_blob(st, 1);
        int len = sqlite3_column_bytes(st, 1);
        char swhy[300];
        if (!jn->shared)
            continue; /* a table without a shared-data store (tests) */
        if (!hash || !s_blob_is(st, 1, -1) ||
            pd_shared_put(jn->shared, hash, data, (size_t) len, s_keep_all, NULL, NULL, swhy,
                          sizeof swhy) < 0) {
            rc = s_damaged(jn, why, whycap, "shared data %.16s...: %s", hash ? hash : "?",
                           hash ? swhy : "missing fields");
            goto out;
        }
        rec->shared++;
    }
    if (step != SQLITE_DONE)
        S_STEP_ERR("cannot read shared data");

    /* gone intervals */
    S_QUERY("SELECT first, last FROM gone ORDER BY first");
    size_t capivs = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t f = sqlite3_column_int64(st, 0), l = sqlite3_column_int64(st, 1);
        if (f < 1 || l < f || (uint64_t) l >= next_id ||
            (jn->nivs && (uint64_t) f <= jn->ivs[jn->nivs - 1].last)) {
            rc = s_damaged(jn, why, whycap, "forgotten ids [%lld, %lld] overlap or are out of "
                           "range", (long long) f, (long long) l);
            goto out;
        }
        if (jn->nivs == capivs) {
            capivs = capivs ? capivs * 2 : 256;
            s_iv_t *iv = realloc(jn->ivs, capivs * sizeof *iv);
            if (!iv) {
                snprintf(why, whycap, "out of memory reading journal %s", jn->path);
                rc = PD_ENOMEM;
                goto out;
            }
            jn->ivs = iv;
        }
        jn->ivs[jn->nivs++] = (s_iv_t){(uint64_t) f, (uint64_t) l};
    }
    if (step != SQLITE_DONE)
        S_STEP_ERR("cannot read forgotten ids");

    /* batches: queued jobs */
    S_QUERY("SELECT first, n, mod, fn, timeout_ms, retries, client, shared, gpu, cu, max_slots, "
            "sum, args, owner, memory, cpu_time, max_output, retry_failed FROM batches "
            "ORDER BY first");
    uint64_t *dead = NULL;
    size_t ndead = 0, capdead = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
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
        uint8_t sum[S_SUM];
        if (first < 1 || n < 1 || n > UINT32_MAX || !mod || !fn || timeout < 0 ||
            timeout > UINT32_MAX || retries < 0 || retries > PD_JOBS_MAX_RETRIES ||
            clen < 0 || clen > (int) PD_JOBS_MAX_CLIENT_ID || gpu < 0 || gpu > 1 ||
            max_slots < 0 || max_slots > UINT32_MAX || !s_blob_is(st, 11, S_SUM) ||
            !s_blob_is(st, 12, -1) || (owner && !pd_auth_owner_valid(owner)) ||
            lmem < 0 || lcpu < 0 || lout < 0 || lout > (int64_t) PD_LIMITS_MAX_OUTPUT ||
            retry_failed < 0 || retry_failed > PD_JOBS_MAX_RETRY_FAILED) {
            free(dead);
            rc = s_damaged(jn, why, whycap, "batch from job %lld has bad fields",
                           (long long) first);
            goto out;
        }
        s_row_t row = {.first = (uint64_t) first, .n = (uint32_t) n, .mod = mod, .fn = fn,
                       .timeout_ms = (uint32_t) timeout, .retries = (uint32_t) retries,
                       .client = client, .client_len = (size_t) clen, .shared = shr ? shr : "",
                       .gpu = gpu != 0, .cu = cu ? cu : "", .max_slots = (uint32_t) max_slots,
                       .owner = owner ? owner : "",
                       .limits = {(uint64_t) lmem, (uint64_t) lcpu, (uint64_t) lout},
                       .retry_failed = (uint32_t) retry_failed};
        s_sum_batch(sum, &row, args, (size_t) alen);
        if (memcmp(sum, sqlite3_column_blob(st, 11), S_SUM) != 0) {
            free(dead);
            rc = s_damaged(jn, why, whycap, "batch from job %lld fails its checksum",
                           (long long) first);
            goto out;
        }
        int64_t mi = pd_mods_find(jn->mods, mod);
        if (mi < 0) {
            free(dead);
            rc = s_damaged(jn, why, whycap, "batch from job %lld names module %.16s..., which "
                           "the journal does not hold", (long long) first, mod);
            goto out;
        }
        int64_t ci = cu ? pd_mods_find(jn->mods, cu) : -1;
        int64_t si = shr && jn->shared ? pd_shared_find(jn->shared, shr) : -1;
        if ((cu && ci < 0) || (shr && si < 0)) {
            free(dead);
            rc = s_damaged(jn, why, whycap, "batch from job %lld names %s %.16s..., which the "
                           "journal does not hold", (long long) first,
                           cu && ci < 0 ? "CUDA module" : "shared data",
                           cu && ci < 0 ? cu : shr);
            goto out;
        }
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
        if (kept < 0) {
            free(dead);
            rc = kept == PD_ENOMEM ? PD_ENOMEM : s_damaged(jn, why, whycap, "%s", bwhy);
            if (kept == PD_ENOMEM)
                snprintf(why, whycap, "out of memory loading journal %s", jn->path);
            goto out;
        }
        if (kept == 0) {
            if (s_push_id(&dead, &ndead, &capdead, (uint64_t) first)) {
                free(dead);
                snprintf(why, whycap, "out of memory loading journal %s", jn->path);
                rc = PD_ENOMEM;
                goto out;
            }
        }
    }
    if (step != SQLITE_DONE) {
        free(dead);
        S_STEP_ERR("cannot read batches");
    }
    sqlite3_finalize(st);
    st = NULL;
    for (size_t i = 0; i < ndead && rc == 0; i++)
        rc = s_delete_row(jn, ST_BATCH_DEL, dead[i]);
    ndead = 0;

    /* result segments: final jobs (this may finish batches: their rows go
       through the dead hook) */
    S_QUERY("SELECT seg, sum, res FROM results ORDER BY seg");
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seg = sqlite3_column_int64(st, 0);
        const uint8_t *res = sqlite3_column_blob(st, 2);
        int rlen = sqlite3_column_bytes(st, 2);
        uint8_t sum[S_SUM];
        if (seg < 1 || !s_blob_is(st, 1, S_SUM) || !s_blob_is(st, 2, -1)) {
            free(dead);
            rc = s_damaged(jn, why, whycap, "result segment %lld has bad fields",
                           (long long) seg);
            goto out;
        }
        s_sum_seg(sum, (uint64_t) seg, res, (size_t) rlen);
        if (memcmp(sum, sqlite3_column_blob(st, 1), S_SUM) != 0) {
            free(dead);
            rc = s_damaged(jn, why, whycap, "result segment %lld fails its checksum",
                           (long long) seg);
            goto out;
        }
        if ((uint64_t) seg > jn->last_seg)
            jn->last_seg = (uint64_t) seg;
        char swhy[300];
        int64_t kept = pd_jobs_restore_segment(jn->jobs, (uint64_t) seg, res, (size_t) rlen,
                                               s_skip_gone, jn, swhy, sizeof swhy);
        if (kept < 0) {
            free(dead);
            if (kept == PD_ENOMEM) {
                snprintf(why, whycap, "out of memory loading journal %s", jn->path);
                rc = PD_ENOMEM;
            } else {
                rc = s_damaged(jn, why, whycap, "%s", swhy);
            }
            goto out;
        }
        rec->results += (uint64_t) kept;
        if (kept == 0) {
            if (s_push_id(&dead, &ndead, &capdead, (uint64_t) seg)) {
                free(dead);
                snprintf(why, whycap, "out of memory loading journal %s", jn->path);
                rc = PD_ENOMEM;
                goto out;
            }
        }
    }
    if (step != SQLITE_DONE) {
        free(dead);
        S_STEP_ERR("cannot read results");
    }
    sqlite3_finalize(st);
    st = NULL;
    for (size_t i = 0; i < ndead && rc == 0; i++)
        rc = s_delete_row(jn, ST_SEG_DEL, dead[i]);
    free(dead);
    if (rc) {
        S_STEP_ERR("cannot clean up");
    }
    if (jn->txn_failed)
        S_STEP_ERR("cannot clean up");
    rec->queued = pd_jobs_queued(jn->jobs);

    /* owners: of final jobs whose batch is gone (rows naming no known job
       are dropped) */
    S_QUERY("SELECT first, n, owner FROM owners ORDER BY first");
    sqlite3_stmt *odel = NULL;
    if (sqlite3_prepare_v2(jn->db, "DELETE FROM owners WHERE first = ?", -1, &odel, NULL) !=
        SQLITE_OK)
        S_STEP_ERR("cannot prepare");
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t first = sqlite3_column_int64(st, 0), n = sqlite3_column_int64(st, 1);
        const char *owner = (const char *) sqlite3_column_text(st, 2);
        if (first < 1 || n < 1 || n > UINT32_MAX || (uint64_t) first >= next_id ||
            !owner || !pd_auth_owner_valid(owner)) {
            sqlite3_finalize(odel);
            rc = s_damaged(jn, why, whycap, "the owner of jobs %lld.. has bad fields",
                           (long long) first);
            goto out;
        }
        uint64_t known = pd_jobs_next_known(jn->jobs, (uint64_t) first);
        if (!known || known >= (uint64_t) (first + n)) {
            sqlite3_bind_int64(odel, 1, first);
            sqlite3_step(odel);
            sqlite3_reset(odel);
        } else if (pd_jobs_set_owner(jn->jobs, (uint64_t) first, (uint64_t) n, owner)) {
            sqlite3_finalize(odel);
            snprintf(why, whycap, "out of memory loading journal %s", jn->path);
            rc = PD_ENOMEM;
            goto out;
        }
    }
    sqlite3_finalize(odel);
    if (step != SQLITE_DONE)
        S_STEP_ERR("cannot read owners");

    /* first fetches, oldest first (rows naming no known job are dropped) */
    S_QUERY("SELECT first, count, t FROM fetched ORDER BY t, first");
    sqlite3_stmt *del = NULL;
    if (sqlite3_prepare_v2(jn->db, "DELETE FROM fetched WHERE first = ?", -1, &del, NULL) !=
        SQLITE_OK)
        S_STEP_ERR("cannot prepare");
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t first = sqlite3_column_int64(st, 0), count = sqlite3_column_int64(st, 1);
        int64_t t = sqlite3_column_int64(st, 2);
        if (first < 1 || count < 1 || count > UINT32_MAX || (uint64_t) first >= next_id ||
            (uint64_t) count > next_id - (uint64_t) first || t < 1 || t > UINT32_MAX - 1) {
            sqlite3_finalize(del);
            rc = s_damaged(jn, why, whycap, "first fetch of jobs %lld.. has bad fields",
                           (long long) first);
            goto out;
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
    if (step != SQLITE_DONE)
        S_STEP_ERR("cannot read first fetches");

    /* submit tokens */
    S_QUERY("SELECT token, first, n, t FROM tokens ORDER BY t");
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int tlen = sqlite3_column_bytes(st, 0);
        int64_t first = sqlite3_column_int64(st, 1), n = sqlite3_column_int64(st, 2);
        int64_t t = sqlite3_column_int64(st, 3);
        if (!s_blob_is(st, 0, -1) || tlen < 1 || tlen > (int) PD_JOBS_TOKEN_MAX || first < 1 ||
            n < 0 || n > UINT32_MAX || t < 0 || t > UINT32_MAX) {
            rc = s_damaged(jn, why, whycap, "a submit token has bad fields");
            goto out;
        }
        if (pd_jobs_token_add(jn->jobs, sqlite3_column_blob(st, 0), (size_t) tlen,
                              (uint64_t) first, (uint32_t) n, (uint32_t) t) == 0)
            rec->tokens++;
    }
    if (step != SQLITE_DONE)
        S_STEP_ERR("cannot read submit tokens");
out:
    sqlite3_finalize(st);
#undef S_QUERY
#undef S_STEP_ERR
    return rc;
}

/* Turns a failure to open or set up the database into a sentence: another
   broker holds it, it is damaged or not a database, or another error. */
static int s_open_error(pd_journal_t *jn, const char *what, char *why, size_t whycap)
{
    char text[400];
    int code = jn->db ? sqlite3_extended_errcode(jn->db) & 0xff : SQLITE_CANTOPEN;
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
        snprintf(why, whycap, "journal %s is in use by another playdoh-broker: give this one "
                 "its own --journal PATH, or --no-journal", jn->path);
        return PD_EIO;
    }
    s_describe(jn, text, sizeof text, what);
    if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
        return s_damaged(jn, why, whycap, "%s", text);
    snprintf(why, whycap, "journal %s: %s", jn->path, text);
    return PD_EIO;
}

/* Opens the database with the pragmas; with check, runs quick_check on an
   existing one. Returns 0 or PD_EIO with why. */
static int s_open_db(pd_journal_t *jn, bool check, bool *fresh, char *why, size_t whycap)
{
    if (sqlite3_open_v2(jn->path, &jn->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK)
        return s_open_error(jn, "cannot open", why, whycap);
    sqlite3_extended_result_codes(jn->db, 1);
    static const char *const sync_names[] = {"OFF", "NORMAL", "FULL"};
    char pragmas[300];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA locking_mode=EXCLUSIVE; PRAGMA synchronous=%s; "
             "PRAGMA journal_size_limit=%lld; PRAGMA cache_size=-16384;",
             sync_names[jn->sync], (long long) S_WAL_LIMIT);
    if (sqlite3_exec(jn->db, pragmas, NULL, NULL, NULL) != SQLITE_OK)
        return s_open_error(jn, "cannot set it up", why, whycap);
    /* The first access takes the exclusive lock and reads the header. */
    int64_t tables = s_pragma_int(jn, "SELECT count(*) FROM sqlite_master");
    if (tables < 0)
        return s_open_error(jn, "cannot read it", why, whycap);
    *fresh = tables == 0;
    if (*fresh && sqlite3_exec(jn->db, "PRAGMA auto_vacuum=INCREMENTAL", NULL, NULL, NULL) !=
                      SQLITE_OK)
        return s_open_error(jn, "cannot set it up", why, whycap);
    sqlite3_stmt *st;
    const char *mode = NULL;
    if (sqlite3_prepare_v2(jn->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        mode = (const char *) sqlite3_column_text(st, 0);
    bool wal = mode && strcmp(mode, "wal") == 0;
    sqlite3_finalize(st);
    if (!wal)
        return s_open_error(jn, "cannot switch it to WAL mode", why, whycap);
    if (*fresh) {
        char init[200];
        snprintf(init, sizeof init,
                 "INSERT INTO meta VALUES ('format', '%s'), ('version', %d), ('next_id', 1), "
                 "('created', %lld);", S_FORMAT, S_VERSION, (long long) time(NULL));
        if (sqlite3_exec(jn->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(jn->db, s_schema, NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(jn->db, init, NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(jn->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
            return s_open_error(jn, "cannot create it", why, whycap);
        return 0;
    }
    if (!check)
        return 0;
    /* An existing journal: check its structure before trusting a row. */
    if (sqlite3_prepare_v2(jn->db, "PRAGMA quick_check(5)", -1, &st, NULL) != SQLITE_OK)
        return s_open_error(jn, "cannot check it", why, whycap);
    char found[300] = "";
    size_t k = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *line = (const char *) sqlite3_column_text(st, 0);
        if (line && strcmp(line, "ok") != 0 && k + 3 < sizeof found)
            k += (size_t) snprintf(found + k, sizeof found - k, "%s%s", k ? "; " : "", line);
    }
    if (rc != SQLITE_DONE && !found[0])
        s_describe(jn, found, sizeof found, "quick_check failed");
    sqlite3_finalize(st);
    if (found[0])
        return s_damaged(jn, why, whycap, "%s", found);
    /* Another program's database is not read as a journal. */
    const char *format = NULL;
    rc = sqlite3_prepare_v2(jn->db, "SELECT v FROM meta WHERE k = 'format'", -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        format = (const char *) sqlite3_column_text(st, 0);
    bool ours = format && strcmp(format, S_FORMAT) == 0;
    sqlite3_finalize(st);
    if (!ours)
        return s_damaged(jn, why, whycap, "it is an SQLite database but not a Playdoh journal");
    return 0;
}

static void s_close_db(pd_journal_t *jn)
{
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(jn->st[i]);
        jn->st[i] = NULL;
    }
    if (jn->db)
        sqlite3_close_v2(jn->db);
    jn->db = NULL;
}

/* A journal of format version 2 lacks the jobs' limits: they are added
   (none asked) before anything is read or prepared. Returns 0, or -1 when
   the change failed (the statements' preparation then says why). */
static int s_upgrade(pd_journal_t *jn)
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
             "COMMIT;", S_VERSION);
    if (sqlite3_exec(jn->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(jn->db, "ROLLBACK;", NULL, NULL, NULL);
        return -1;
    }
    pd_log_info("journal %s: format version 2 upgraded to %d (batches hold the jobs' limits)",
                jn->path, S_VERSION);
    return 0;
}

static int s_prepare_all(pd_journal_t *jn, bool fresh, char *why, size_t whycap)
{
    if (!fresh)
        s_upgrade(jn);
    /* A journal written before batches had retry_failed gets the column
       (0 for its rows: the value their submits had). */
    if (!fresh) {
        sqlite3_stmt *probe = NULL;
        bool has = sqlite3_prepare_v2(jn->db, "SELECT retry_failed FROM batches LIMIT 0", -1,
                                      &probe, NULL) == SQLITE_OK;
        sqlite3_finalize(probe);
        if (!has && sqlite3_exec(jn->db, "ALTER TABLE batches ADD COLUMN retry_failed INTEGER "
                                         "NOT NULL DEFAULT 0", NULL, NULL, NULL) != SQLITE_OK) {
            char text[300];
            s_describe(jn, text, sizeof text, "cannot add retry_failed to its batches");
            return s_damaged(jn, why, whycap, "%s", text);
        }
    }
    if (sqlite3_exec(jn->db, s_schema_owners, NULL, NULL, NULL) != SQLITE_OK) {
        char text[300];
        s_describe(jn, text, sizeof text, "cannot add its owners table");
        snprintf(why, whycap, "journal %s: %s", jn->path, text);
        return PD_EIO;
    }
    for (int i = 0; i < ST_COUNT; i++)
        if (sqlite3_prepare_v3(jn->db, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &jn->st[i],
                               NULL) != SQLITE_OK) {
            char text[300];
            s_describe(jn, text, sizeof text, "cannot read its tables");
            if (!fresh)
                return s_damaged(jn, why, whycap, "%s", text);
            snprintf(why, whycap, "journal %s: %s", jn->path, text);
            return PD_EIO;
        }
    return 0;
}

/* Closes and reopens the database (the writer, after a failure: SQLite keeps
   an exclusive-mode connection in its error state after an I/O error). */
static int s_reconnect(pd_journal_t *jn, char *why, size_t whycap)
{
    s_close_db(jn);
    bool fresh;
    int rc = s_open_db(jn, false, &fresh, why, whycap);
    if (rc == 0)
        rc = s_prepare_all(jn, fresh, why, whycap);
    return rc;
}

/* One broker per journal: an advisory lock on PATH.lock (SQLite's own
   locking lets a second process open the same database), which holds the
   pid of the broker that has it. Returns 0, or PD_EIO with why saying which
   process holds it. */
static int s_lock(pd_journal_t *jn, char *why, size_t whycap)
{
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s.lock", jn->path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(why, whycap, "journal %s: cannot open its lock file %s: %s", jn->path, path,
                 strerror(errno));
        return PD_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        close(fd);
        if (e == EWOULDBLOCK)
            snprintf(why, whycap, "journal %s is in use by another playdoh-broker (pid %s): stop "
                     "it, or give this broker another --journal", jn->path,
                     pid[0] ? pid : "unknown");
        else
            snprintf(why, whycap, "journal %s: cannot lock %s: %s", jn->path, path, strerror(e));
        return PD_EIO;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long) getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t) len, 0) != len)
        pd_log_warn("journal %s: cannot write this broker's pid into %s: %s", jn->path, path,
                    strerror(errno));
    jn->lock_fd = fd;
    return 0;
}

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
    int rc = s_make_parent(jn->path, why, whycap);
    if (rc == 0)
        rc = s_lock(jn, why, whycap); /* before a reset moves anything aside */
    if (rc == 0 && cfg->reset)
        rc = s_move_aside(jn->path, rec->moved, sizeof rec->moved, why, whycap);
    bool fresh = false;
    if (rc == 0)
        rc = s_open_db(jn, true, &fresh, why, whycap);
    if (rc == 0)
        rc = s_prepare_all(jn, fresh, why, whycap);
    if (rc == 0) {
        /* Recovery, in one transaction on this thread (the writer is not
           running yet). */
        pd_jobs_set_hooks(jobs, &s_hooks, jn);
        jn->loading = true;
        if (sqlite3_exec(jn->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
            char text[300];
            s_describe(jn, text, sizeof text, "cannot begin");
            snprintf(why, whycap, "journal %s: %s", jn->path, text);
            rc = PD_EIO;
        } else {
            rc = s_load(jn, rec, why, whycap);
            if (rc == 0 && sqlite3_exec(jn->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
                char text[300];
                s_describe(jn, text, sizeof text, "cannot write it");
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
    }
    if (rc == 0) {
        jn->wnext_id = jn->reserved = pd_jobs_next_id(jobs);
        zsys_handler_set(NULL); /* the broker keeps its own SIGINT/SIGTERM handlers */
        jn->writer = zactor_new(s_writer, jn);
        if (!jn->writer) {
            snprintf(why, whycap, "journal %s: cannot start its writer thread", jn->path);
            rc = PD_ESYS;
        }
    }
    if (rc) {
        *err = rc;
        pd_journal_destroy(&jn);
        return NULL;
    }
    jn->bytes = s_file_bytes(jn);
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
    if (jn->writer) {
        pd_journal_wait(jn, NULL, NULL);
        if (jn->writable && s_op(jn, OP_VACUUM)) {
            /* A clean stop: the exact next id, without the reserve, so that
               ids go on without a gap. */
            s_batch_t *b = jn->open;
            jn->open = NULL;
            b->exact = true;
            s_send(jn, b);
            pd_journal_wait(jn, NULL, NULL);
        }
        zactor_destroy(&jn->writer); /* the writer is idle: it ends at once */
    }
    s_batch_free(jn, &jn->open);
    while (jn->head) { /* only if the writer died */
        s_batch_t *b = jn->head;
        jn->head = b->next;
        s_batch_free(jn, &b);
    }
    if (jn->jobs)
        pd_jobs_set_hooks(jn->jobs, NULL, NULL);
    s_close_db(jn);
    if (jn->lock_fd >= 0)
        close(jn->lock_fd); /* the lock goes with it; the file stays for the next */
    free(jn->ivs);
    free(jn);
    *p = NULL;
}
