/*  pd_journal_int.h: what the journal's files share; included only by
    pd_journal.c (the object and its records), pd_journal_file.c (the SQLite
    file: schema, rows, checksums, opening), pd_journal_commit.c (batches and
    the writer thread's group commit) and pd_journal_recover.c (reading a
    journal back, upgrading older formats). Everyone else uses pd_journal.h.

    Two threads share the object, each with its own fields (marked below):
    the broker's loop, which owns the job table, builds batches of
    operations and reads settlements, and the writer (a CZMQ actor), which
    owns the SQLite connection once recovery is over. They talk over the
    actor's pipe only: the loop sends "BATCH" with a pointer to a closed
    batch, the writer answers "DONE" with the highest batch settled. A batch
    is immutable once sent; the loop frees it (dropping the blob references
    it held) when it is settled. Blobs are immutable apart from their
    reference count and marks, which only the loop touches.
*/
#ifndef PD_JOURNAL_INT_H
#define PD_JOURNAL_INT_H

#include "pd_journal.h"

#include <czmq.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_JOURNAL_FORMAT "playdoh-journal"
#define PD_JOURNAL_VERSION 3 /* 3: batches hold the jobs' limits (version 2 is upgraded in place) */
#define PD_JOURNAL_SUM 16    /* bytes of a row checksum */

/* The prepared statements (pd_journal_file.c holds their SQL). */
enum {
    PD_JST_BATCH_INS,
    PD_JST_BATCH_DEL,
    PD_JST_SEG_INS,
    PD_JST_SEG_DEL,
    PD_JST_GONE_PREV,
    PD_JST_GONE_DEL,
    PD_JST_GONE_PUT,
    PD_JST_FETCH_INS,
    PD_JST_FETCH_DEL,
    PD_JST_TOKEN_INS,
    PD_JST_TOKEN_PURGE,
    PD_JST_MOD_INS,
    PD_JST_META_PUT,
    PD_JST_SHARED_INS,
    PD_JST_SHARED_DEL,
    PD_JST_OWNER_INS,
    PD_JST_OWNER_GONE,
    PD_JST_COUNT
};

/* ---- operations and batches --------------------------------------------- */

typedef enum {
    PD_JOP_BATCH,       /* a submit: a=first, n, timeout_ms, retries, gpu, max_slots, blob=args,
                           text="hash\0fn\0shared\0cu\0owner\0" then the client's
                           routing id (client_len bytes); "" for no shared data, CUDA
                           module or owner */
    PD_JOP_DEL_BATCH,   /* a=first */
    PD_JOP_SEG,         /* a=segment number, blob=segment */
    PD_JOP_DEL_SEG,     /* a=segment number */
    PD_JOP_GONE,        /* forgotten ids a .. b */
    PD_JOP_FETCHED,     /* first fetches of ids a .. a+n-1 at second b */
    PD_JOP_FETCH_DEL,   /* drop first fetches with first in [a, b) */
    PD_JOP_TOKEN,       /* text=token (n bytes), a=first, b=count, timeout_ms=second */
    PD_JOP_TOKEN_PURGE, /* drop tokens older than second a */
    PD_JOP_MOD,         /* mod */
    PD_JOP_SHARED,      /* shared data: text=hash (65 bytes) then the b bytes */
    PD_JOP_DEL_SHARED,  /* shared data evicted: text=hash */
    PD_JOP_TASK_ID,     /* the next synchronous task id is at least a */
    PD_JOP_OWNER,       /* ids a .. a+n-1 belong to owner text (a rewrite's final jobs) */
    PD_JOP_VACUUM,      /* after the commit: free pages if many are unused */
    PD_JOP_COMPACT      /* after the commit: checkpoint, truncate the log, free pages */
} pd_journal_op_kind_t;

/* One operation of a batch. */
typedef struct {
    pd_journal_op_kind_t kind; /* what to do */
    uint32_t n;                /* a count (see the kinds) */
    uint32_t timeout_ms;       /* PD_JOP_BATCH: per-run time-out; PD_JOP_TOKEN: second */
    uint32_t retries;          /* PD_JOP_BATCH: retries */
    uint32_t retry_failed;     /* PD_JOP_BATCH: runs again of a job whose own run failed */
    uint32_t client_len;       /* PD_JOP_BATCH: bytes of routing id at the end of text */
    uint32_t max_slots;        /* PD_JOP_BATCH: the client's cap */
    bool gpu;                  /* PD_JOP_BATCH: GPU slots only */
    pd_limits_t limits;        /* PD_JOP_BATCH: what each job asks to take */
    uint64_t a, b;             /* arguments (see the kinds) */
    pd_blob_t *blob;           /* a blob held (one reference) until the batch is freed */
    bool args;                 /* blob is an argument blob */
    char *text;                /* owned bytes (see the kinds) */
    const pd_mod_t *mod;       /* PD_JOP_MOD: the module (lives in the store) */
} pd_journal_op_t;

typedef struct pd_journal_batch {
    uint64_t seq;          /* its number, from 1 */
    uint64_t next_id;      /* the next id it writes in meta: a reserve ahead of the
                              table's next id (or that id exactly, with exact) */
    bool exact;            /* the last batch of a clean stop: no reserve */
    bool snapshot;         /* a full rewrite: empty the tables first */
    pd_journal_op_t *ops;           /* operations in order */
    size_t n;              /* how many */
    size_t cap;            /* capacity of ops */
    struct pd_journal_batch *next;  /* the next batch in flight */
} pd_journal_batch_t;

typedef struct {
    uint64_t first; /* first forgotten id */
    uint64_t last;  /* last forgotten id */
} pd_journal_iv_t;

/* ---- rows -------------------------------------------------------------- */

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
} pd_journal_row_t;

struct pd_journal {
    /* set at open, read by both threads */
    char path[PATH_MAX];         /* the database file */
    int lock_fd;                 /* PATH.lock, locked while the journal is open; -1 = none */
    char wal[PATH_MAX + 8];      /* its write-ahead log */
    pd_journal_sync_t sync;      /* synchronous setting */
    uint64_t max_bytes;          /* bound on bytes (0 = none) */
    /* the writer's (the loop's until the writer starts, and after it ends) */
    sqlite3 *db;                 /* the database */
    sqlite3_stmt *st[PD_JST_COUNT];  /* prepared statements */
    bool txn_failed;             /* a write of the open transaction failed */
    bool wfailed;                /* refusing batches until a snapshot */
    char werr[PATH_MAX + 700];   /* why (sent with the settlement) */
    uint64_t wnext_id;           /* next id as written in meta */
    /* the loop's */
    zactor_t *writer;            /* the writer thread */
    pd_jobs_t *jobs;             /* the job table it mirrors (borrowed) */
    pd_mods_t *mods;             /* the module store it mirrors (borrowed) */
    pd_shared_t *shared;         /* the shared-data store it mirrors (borrowed; may be NULL) */
    pd_journal_batch_t *open;             /* the batch being filled (NULL: none) */
    pd_journal_batch_t *head, *tail;      /* batches in flight, oldest first */
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
    pd_journal_iv_t *ivs;                 /* gone intervals, while loading */
    size_t nivs;                 /* entries in ivs */
    uint32_t gen;                /* blob mark of the current snapshot walk */
    uint64_t dropped_seq;        /* a batch dropped unsent while failing: settle it as
                                    failed (0: none) */
    atomic_bool held;            /* pd_journal_hold (tests): flushes hand nothing over */
    pd_journal_stats_t stats;    /* counters */
};

/* ---- pd_journal_file.c: the SQLite file (the writer's thread, or the
   loop's before the writer starts) --------------------------------------- */

/* Creates the journal's directory, takes its lock, moves an old journal
   aside (reset: its new name goes into moved), opens the database (checking
   an existing one), upgrades an older format and prepares the statements.
   Returns 0, or PD_EIO with a sentence in why. */
int pd_journal_file_open(pd_journal_t *jn, bool reset, char *moved, size_t movedcap, char *why,
                         size_t whycap);
/* Closes the database and lets go of the lock. Safe when not open. */
void pd_journal_file_close(pd_journal_t *jn);
/* Closes and reopens the database (the writer, after a failure: SQLite keeps
   an exclusive-mode connection in its error state after an I/O error).
   Returns 0, or PD_EIO with why. */
int pd_journal_reconnect(pd_journal_t *jn, char *why, size_t whycap);
/* Bytes on disk: the database and its write-ahead log. */
uint64_t pd_journal_file_bytes(const pd_journal_t *jn);
/* Writes "what: SQLite's message (the system error or a likely cause)". */
void pd_journal_describe(pd_journal_t *jn, char *out, size_t cap, const char *what);
/* Marks the open transaction failed (the first failure is kept and logged). */
void pd_journal_fail(pd_journal_t *jn, const char *what);
/* Runs prepared statement `which` (bound already) and resets it; false (and
   the transaction failed) when it did not run. */
bool pd_journal_step(pd_journal_t *jn, int which, const char *what);
/* Formats "journal PATH is damaged: ..." into why; returns PD_EIO. */
int pd_journal_damaged(pd_journal_t *jn, char *why, size_t whycap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The checksum of a batch row (its fields and arguments) ... */
void pd_journal_sum_batch(uint8_t out[PD_JOURNAL_SUM], const pd_journal_row_t *row,
                          const void *args, size_t len);
/* ... and of a result segment. */
void pd_journal_sum_seg(uint8_t out[PD_JOURNAL_SUM], uint64_t seg, const void *res, size_t len);
/* Writes one operation into the open transaction (PD_JOP_VACUUM and
   PD_JOP_COMPACT do nothing here: see pd_journal_shrink). */
void pd_journal_write_op(pd_journal_t *jn, const pd_journal_op_t *op);
/* Writes meta's key k. */
void pd_journal_write_meta(pd_journal_t *jn, const char *k, int64_t v);
/* After a commit: with compact, checkpoints and truncates the log and frees
   pages; with vacuum, frees pages when many are unused. */
void pd_journal_shrink(pd_journal_t *jn, bool compact, bool vacuum);

/* ---- pd_journal_commit.c: batches and the writer thread ----------------- */

/* Appends an operation of that kind (zeroed) to the open batch, making the
   batch when there is none. Returns it, or NULL out of memory. */
pd_journal_op_t *pd_journal_new_op(pd_journal_t *jn, pd_journal_op_kind_t kind);
/* Out of memory for an operation: the journal can no longer mirror memory;
   it turns failing and will rewrite itself. */
void pd_journal_lost_op(pd_journal_t *jn);
/* Makes op hold a reference to blob until its batch is freed. */
void pd_journal_hold_blob(pd_journal_op_t *op, pd_blob_t *blob, bool args);
/* Frees a batch, dropping its blob references. Safe on NULL; sets *p to NULL. */
void pd_journal_batch_free(pd_journal_t *jn, pd_journal_batch_t **p);
/* Numbers a closed batch and sends it to the writer (which now reads it;
   the loop frees it when it is settled). */
void pd_journal_send(pd_journal_t *jn, pd_journal_batch_t *b);
/* Starts the writer thread. Returns 0 or PD_ESYS with why. */
int pd_journal_writer_start(pd_journal_t *jn, char *why, size_t whycap);
/* Waits for what is in flight, writes the exact next id (a clean stop) and
   ends the writer; frees what the writer left. Safe when it never started. */
void pd_journal_writer_stop(pd_journal_t *jn);

/* ---- pd_journal.c: records ---------------------------------------------- */

/* Turns the pending runs of forgotten ids and first fetches into operations. */
void pd_journal_flush_runs(pd_journal_t *jn);

/* ---- pd_journal_recover.c ----------------------------------------------- */

/* Loads the journal into the (empty) job table, module store and shared
   store, in one transaction on the loop's thread (the writer is not running
   yet), and deletes rows whose blobs have no job left. Returns 0, or PD_EIO
   or PD_ENOMEM with a sentence in why. */
int pd_journal_recover(pd_journal_t *jn, pd_journal_recovery_t *rec, char *why, size_t whycap);
/* Brings an older journal's tables to the current format (before anything
   is read or prepared). Returns 0, or PD_EIO with why. */
int pd_journal_upgrade(pd_journal_t *jn, char *why, size_t whycap);

#endif
