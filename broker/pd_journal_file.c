/*  pd_journal_file: the journal's SQLite file. Its schema and prepared
    statements, the checksums of its rows, the row writers the writer thread
    runs inside a transaction (pd_journal_write_op), and opening: the
    directory, the lock that keeps one broker per journal, moving an old
    journal aside, the pragmas, the structure check, and reconnecting after
    an I/O error. Forgotten ids are kept as merged intervals in `gone`:
    adding [a, b] absorbs every interval that overlaps or touches it, so the
    table holds at most one row per hole between live jobs.
*/
#include "pd_journal_int.h"
#include "pd_error.h"
#include "pd_log.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_WAL_LIMIT (64ll << 20) /* the log is truncated to this after a checkpoint */

static const char *const s_sql[PD_JST_COUNT] = {
    [PD_JST_BATCH_INS] = "INSERT OR REPLACE INTO batches(first, n, mod, fn, timeout_ms, retries, "
                     "client, shared, gpu, cu, max_slots, sum, args, owner, memory, cpu_time, "
                     "max_output, retry_failed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                     "?, ?, ?, ?)",
    [PD_JST_BATCH_DEL] = "DELETE FROM batches WHERE first = ?",
    [PD_JST_SEG_INS] = "INSERT OR REPLACE INTO results(seg, sum, res) VALUES (?, ?, ?)",
    [PD_JST_SEG_DEL] = "DELETE FROM results WHERE seg = ?",
    [PD_JST_GONE_PREV] = "SELECT first, last FROM gone WHERE first <= ? ORDER BY first DESC "
                         "LIMIT 1",
    [PD_JST_GONE_DEL] = "DELETE FROM gone WHERE first = ?",
    [PD_JST_GONE_PUT] = "INSERT OR REPLACE INTO gone(first, last) VALUES (?, ?)",
    [PD_JST_FETCH_INS] = "INSERT OR REPLACE INTO fetched(first, count, t) VALUES (?, ?, ?)",
    [PD_JST_FETCH_DEL] = "DELETE FROM fetched WHERE first >= ? AND first < ?",
    [PD_JST_TOKEN_INS] = "INSERT OR IGNORE INTO tokens(token, first, n, t) VALUES (?, ?, ?, ?)",
    [PD_JST_TOKEN_PURGE] = "DELETE FROM tokens WHERE t < ?",
    [PD_JST_MOD_INS] = "INSERT OR IGNORE INTO mods(hash, name, kind, data) VALUES (?, ?, ?, ?)",
    [PD_JST_META_PUT] = "INSERT OR REPLACE INTO meta(k, v) VALUES (?, ?)",
    [PD_JST_SHARED_INS] = "INSERT OR IGNORE INTO shared(hash, data) VALUES (?, ?)",
    [PD_JST_SHARED_DEL] = "DELETE FROM shared WHERE hash = ?",
    [PD_JST_OWNER_INS] = "INSERT OR REPLACE INTO owners(first, n, owner) VALUES (?, ?, ?)",
    [PD_JST_OWNER_GONE] = "DELETE FROM owners WHERE first >= ? AND first <= ? AND "
                          "first + n - 1 <= ?",
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

/* ---- failures (the connection's owner) ---------------------------------- */

/* Writes "what: SQLite's message (the system error or a likely cause)". */
void pd_journal_describe(pd_journal_t *jn, char *out, size_t cap, const char *what)
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
void pd_journal_fail(pd_journal_t *jn, const char *what)
{
    if (jn->txn_failed)
        return;
    jn->txn_failed = true;
    pd_journal_describe(jn, jn->werr, sizeof jn->werr, what);
    pd_log_error("journal %s: %s", jn->path, jn->werr);
}

/* Runs a prepared write statement (bound already) and resets it. */
bool pd_journal_step(pd_journal_t *jn, int which, const char *what)
{
    sqlite3_stmt *st = jn->st[which];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        pd_journal_fail(jn, what);
        return false;
    }
    return true;
}

uint64_t pd_journal_file_bytes(const pd_journal_t *jn)
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

/* ---- checksums ---------------------------------------------------------- */

void pd_journal_sum_batch(uint8_t out[PD_JOURNAL_SUM], const pd_journal_row_t *row,
                          const void *args, size_t len)
{
    crypto_generichash_state h;
    uint64_t nums[7] = {row->first, row->n, row->timeout_ms, row->retries, row->gpu,
                        row->max_slots, row->client_len};
    crypto_generichash_init(&h, NULL, 0, PD_JOURNAL_SUM);
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
    crypto_generichash_final(&h, out, PD_JOURNAL_SUM);
}

void pd_journal_sum_seg(uint8_t out[PD_JOURNAL_SUM], uint64_t seg, const void *res, size_t len)
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, PD_JOURNAL_SUM);
    crypto_generichash_update(&h, (const unsigned char *) &seg, sizeof seg);
    crypto_generichash_update(&h, res, len);
    crypto_generichash_final(&h, out, PD_JOURNAL_SUM);
}

/* ---- row writers (the writer's thread) ---------------------------------- */

static void s_put_owner(pd_journal_t *jn, uint64_t first, uint64_t n, const char *owner)
{
    sqlite3_stmt *st = jn->st[PD_JST_OWNER_INS];
    sqlite3_bind_int64(st, 1, (sqlite3_int64) first);
    sqlite3_bind_int64(st, 2, (sqlite3_int64) n);
    sqlite3_bind_text(st, 3, owner, -1, SQLITE_STATIC);
    pd_journal_step(jn, PD_JST_OWNER_INS, "cannot write the owner of a batch");
}

static void s_put_batch(pd_journal_t *jn, const pd_journal_op_t *op)
{
    pd_journal_row_t row = {.first = op->a, .n = op->n, .mod = op->text,
                            .timeout_ms = op->timeout_ms, .retries = op->retries,
                            .gpu = op->gpu, .max_slots = op->max_slots,
                            .client_len = op->client_len, .limits = op->limits,
                            .retry_failed = op->retry_failed};
    row.fn = row.mod + strlen(row.mod) + 1;
    row.shared = row.fn + strlen(row.fn) + 1;
    row.cu = row.shared + strlen(row.shared) + 1;
    row.owner = row.cu + strlen(row.cu) + 1;
    row.client = (const uint8_t *) row.owner + strlen(row.owner) + 1;
    const pd_blob_t *args = op->blob;
    uint8_t sum[PD_JOURNAL_SUM];
    pd_journal_sum_batch(sum, &row, args->data, args->len);
    sqlite3_stmt *st = jn->st[PD_JST_BATCH_INS];
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
    sqlite3_bind_blob(st, 12, sum, PD_JOURNAL_SUM, SQLITE_STATIC);
    sqlite3_bind_blob(st, 13, args->data, (int) args->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 15, (sqlite3_int64) op->limits.memory);
    sqlite3_bind_int64(st, 16, (sqlite3_int64) op->limits.cpu_s);
    sqlite3_bind_int64(st, 17, (sqlite3_int64) op->limits.output);
    if (row.owner[0])
        sqlite3_bind_text(st, 14, row.owner, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 14);
    sqlite3_bind_int64(st, 18, op->retry_failed);
    pd_journal_step(jn, PD_JST_BATCH_INS, "cannot write a batch of jobs");
    if (row.owner[0] && !jn->txn_failed)
        s_put_owner(jn, op->a, op->n, row.owner);
}

static void s_put_seg(pd_journal_t *jn, const pd_journal_op_t *op)
{
    uint8_t sum[PD_JOURNAL_SUM];
    pd_journal_sum_seg(sum, op->a, op->blob->data, op->blob->len);
    sqlite3_stmt *st = jn->st[PD_JST_SEG_INS];
    sqlite3_bind_int64(st, 1, (sqlite3_int64) op->a);
    sqlite3_bind_blob(st, 2, sum, PD_JOURNAL_SUM, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, op->blob->data, (int) op->blob->len, SQLITE_STATIC);
    pd_journal_step(jn, PD_JST_SEG_INS, "cannot write results");
}

static void s_del_key(pd_journal_t *jn, int which, uint64_t key, const char *what)
{
    sqlite3_bind_int64(jn->st[which], 1, (sqlite3_int64) key);
    pd_journal_step(jn, which, what);
}

void pd_journal_write_meta(pd_journal_t *jn, const char *k, int64_t v)
{
    sqlite3_stmt *st = jn->st[PD_JST_META_PUT];
    sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v);
    pd_journal_step(jn, PD_JST_META_PUT, "cannot write the journal's meta table");
}

/* Adds forgotten ids [lo, hi] to `gone`, merging with the intervals that
   overlap or touch it. */
static void s_gone_add(pd_journal_t *jn, uint64_t lo, uint64_t hi)
{
    sqlite3_stmt *prev = jn->st[PD_JST_GONE_PREV];
    for (;;) {
        sqlite3_bind_int64(prev, 1, (sqlite3_int64) (hi + 1));
        int rc = sqlite3_step(prev);
        if (rc == SQLITE_DONE) {
            sqlite3_reset(prev);
            break;
        }
        if (rc != SQLITE_ROW) {
            sqlite3_reset(prev);
            pd_journal_fail(jn, "cannot read forgotten ids");
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
        s_del_key(jn, PD_JST_GONE_DEL, pf, "cannot merge forgotten ids");
        if (jn->txn_failed)
            return;
    }
    sqlite3_stmt *put = jn->st[PD_JST_GONE_PUT];
    sqlite3_bind_int64(put, 1, (sqlite3_int64) lo);
    sqlite3_bind_int64(put, 2, (sqlite3_int64) hi);
    if (!pd_journal_step(jn, PD_JST_GONE_PUT, "cannot write forgotten ids"))
        return;
    /* Owners of ranges now wholly forgotten go too. */
    sqlite3_stmt *own = jn->st[PD_JST_OWNER_GONE];
    sqlite3_bind_int64(own, 1, (sqlite3_int64) lo);
    sqlite3_bind_int64(own, 2, (sqlite3_int64) hi);
    sqlite3_bind_int64(own, 3, (sqlite3_int64) hi);
    pd_journal_step(jn, PD_JST_OWNER_GONE, "cannot forget the owners of forgotten ids");
}

void pd_journal_write_op(pd_journal_t *jn, const pd_journal_op_t *op)
{
    sqlite3_stmt *st;
    switch (op->kind) {
    case PD_JOP_BATCH:
        s_put_batch(jn, op);
        break;
    case PD_JOP_DEL_BATCH:
        s_del_key(jn, PD_JST_BATCH_DEL, op->a, "cannot delete a finished batch");
        break;
    case PD_JOP_SEG:
        s_put_seg(jn, op);
        break;
    case PD_JOP_DEL_SEG:
        s_del_key(jn, PD_JST_SEG_DEL, op->a, "cannot delete results");
        break;
    case PD_JOP_GONE:
        s_gone_add(jn, op->a, op->b);
        break;
    case PD_JOP_FETCHED:
        st = jn->st[PD_JST_FETCH_INS];
        sqlite3_bind_int64(st, 1, (sqlite3_int64) op->a);
        sqlite3_bind_int64(st, 2, op->n);
        sqlite3_bind_int64(st, 3, (sqlite3_int64) op->b);
        pd_journal_step(jn, PD_JST_FETCH_INS, "cannot write a first fetch");
        break;
    case PD_JOP_FETCH_DEL:
        st = jn->st[PD_JST_FETCH_DEL];
        sqlite3_bind_int64(st, 1, (sqlite3_int64) op->a);
        sqlite3_bind_int64(st, 2, (sqlite3_int64) op->b);
        pd_journal_step(jn, PD_JST_FETCH_DEL, "cannot delete expired first fetches");
        break;
    case PD_JOP_TOKEN:
        st = jn->st[PD_JST_TOKEN_INS];
        sqlite3_bind_blob(st, 1, op->text, (int) op->n, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64) op->a);
        sqlite3_bind_int64(st, 3, (sqlite3_int64) op->b);
        sqlite3_bind_int64(st, 4, op->timeout_ms);
        pd_journal_step(jn, PD_JST_TOKEN_INS, "cannot write a submit token");
        break;
    case PD_JOP_TOKEN_PURGE:
        st = jn->st[PD_JST_TOKEN_PURGE];
        sqlite3_bind_int64(st, 1, (sqlite3_int64) op->a);
        pd_journal_step(jn, PD_JST_TOKEN_PURGE, "cannot forget old submit tokens");
        break;
    case PD_JOP_MOD:
        st = jn->st[PD_JST_MOD_INS];
        sqlite3_bind_text(st, 1, op->mod->hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, op->mod->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, op->mod->kind, -1, SQLITE_STATIC);
        sqlite3_bind_blob64(st, 4, op->mod->data, op->mod->len, SQLITE_STATIC);
        pd_journal_step(jn, PD_JST_MOD_INS, "cannot write a module");
        break;
    case PD_JOP_SHARED:
        st = jn->st[PD_JST_SHARED_INS];
        sqlite3_bind_text(st, 1, op->text, -1, SQLITE_STATIC);
        sqlite3_bind_blob64(st, 2, op->text + PD_SHARED_HASH_LEN + 1, op->b, SQLITE_STATIC);
        pd_journal_step(jn, PD_JST_SHARED_INS, "cannot write shared data");
        break;
    case PD_JOP_DEL_SHARED:
        st = jn->st[PD_JST_SHARED_DEL];
        sqlite3_bind_text(st, 1, op->text, -1, SQLITE_STATIC);
        pd_journal_step(jn, PD_JST_SHARED_DEL, "cannot delete shared data");
        break;
    case PD_JOP_TASK_ID:
        pd_journal_write_meta(jn, "next_task", (int64_t) op->a);
        break;
    case PD_JOP_OWNER:
        s_put_owner(jn, op->a, op->n, op->text);
        break;
    case PD_JOP_VACUUM:
    case PD_JOP_COMPACT:
        break; /* after the commit */
    }
}

void pd_journal_shrink(pd_journal_t *jn, bool compact, bool vacuum)
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

int pd_journal_damaged(pd_journal_t *jn, char *why, size_t whycap, const char *fmt, ...)
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
    pd_journal_describe(jn, text, sizeof text, what);
    if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
        return pd_journal_damaged(jn, why, whycap, "%s", text);
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
                 "('created', %lld);", PD_JOURNAL_FORMAT, PD_JOURNAL_VERSION,
                 (long long) time(NULL));
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
        pd_journal_describe(jn, found, sizeof found, "quick_check failed");
    sqlite3_finalize(st);
    if (found[0])
        return pd_journal_damaged(jn, why, whycap, "%s", found);
    /* Another program's database is not read as a journal. */
    const char *format = NULL;
    rc = sqlite3_prepare_v2(jn->db, "SELECT v FROM meta WHERE k = 'format'", -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        format = (const char *) sqlite3_column_text(st, 0);
    bool ours = format && strcmp(format, PD_JOURNAL_FORMAT) == 0;
    sqlite3_finalize(st);
    if (!ours)
        return pd_journal_damaged(jn, why, whycap,
                                  "it is an SQLite database but not a Playdoh journal");
    return 0;
}

static void s_close_db(pd_journal_t *jn)
{
    for (int i = 0; i < PD_JST_COUNT; i++) {
        sqlite3_finalize(jn->st[i]);
        jn->st[i] = NULL;
    }
    if (jn->db)
        sqlite3_close_v2(jn->db);
    jn->db = NULL;
}

static int s_prepare_all(pd_journal_t *jn, bool fresh, char *why, size_t whycap)
{
    if (!fresh) {
        int rc = pd_journal_upgrade(jn, why, whycap);
        if (rc)
            return rc;
    }
    if (sqlite3_exec(jn->db, s_schema_owners, NULL, NULL, NULL) != SQLITE_OK) {
        char text[300];
        pd_journal_describe(jn, text, sizeof text, "cannot add its owners table");
        snprintf(why, whycap, "journal %s: %s", jn->path, text);
        return PD_EIO;
    }
    for (int i = 0; i < PD_JST_COUNT; i++)
        if (sqlite3_prepare_v3(jn->db, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &jn->st[i],
                               NULL) != SQLITE_OK) {
            char text[300];
            pd_journal_describe(jn, text, sizeof text, "cannot read its tables");
            if (!fresh)
                return pd_journal_damaged(jn, why, whycap, "%s", text);
            snprintf(why, whycap, "journal %s: %s", jn->path, text);
            return PD_EIO;
        }
    return 0;
}

int pd_journal_reconnect(pd_journal_t *jn, char *why, size_t whycap)
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

int pd_journal_file_open(pd_journal_t *jn, bool reset, char *moved, size_t movedcap, char *why,
                         size_t whycap)
{
    int rc = s_make_parent(jn->path, why, whycap);
    if (rc == 0)
        rc = s_lock(jn, why, whycap); /* before a reset moves anything aside */
    if (rc == 0 && reset)
        rc = s_move_aside(jn->path, moved, movedcap, why, whycap);
    bool fresh = false;
    if (rc == 0)
        rc = s_open_db(jn, true, &fresh, why, whycap);
    if (rc == 0)
        rc = s_prepare_all(jn, fresh, why, whycap);
    return rc;
}

void pd_journal_file_close(pd_journal_t *jn)
{
    s_close_db(jn);
    if (jn->lock_fd >= 0)
        close(jn->lock_fd); /* the lock goes with it; the file stays for the next */
    jn->lock_fd = -1;
}
