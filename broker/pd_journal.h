/*  pd_journal: the broker's journal on disk, so that a restart (crash,
    reboot, upgrade) loses no accepted job and no computed result.

    The journal is an SQLite database in WAL mode, opened with an exclusive
    lock (one broker per journal). It mirrors the blobs of pd_jobs rather
    than single jobs, which is what keeps it cheap:

        batches  one row per accepted submit: its ids, module hash, function,
                 options and the msgpack array of arguments; deleted when
                 every job of the submit is final
        results  one row per result segment (pd_jobs_seal): [id, state,
                 value] entries; deleted when every job in it is forgotten
        gone     forgotten ids as merged intervals [first, last], so that a
                 job released from a segment or batch that lives on is not
                 brought back
        fetched  first fetches (first, count, second) for the result
                 time-to-live; tokens: submit tokens of the last hour;
                 mods: uploaded modules; meta: format, version, next id

    Every row that carries data has a BLAKE2b checksum, and opening runs
    SQLite's quick_check, so a damaged or truncated file is refused with a
    sentence rather than half-read.

    Writes happen as the table changes (pd_jobs hooks, pd_journal_submit,
    pd_journal_put_mod) inside one open transaction; pd_journal_commit()
    ends it. The broker commits once per loop turn and sends the replies
    that depend on what changed only after the commit (group commit).

    When a write or a commit fails (disk full, I/O error), the transaction
    is rolled back and the journal turns *failing*: nothing more is written,
    pd_journal_writable() is false (the broker refuses submits), and
    pd_journal_tick() retries now and then by rewriting the whole state from
    memory; when that succeeds the journal is writable again.

        pd_journal_config_t cfg = {.path = "/var/lib/playdoh/broker.journal",
                                   .sync = PD_JOURNAL_SYNC_FULL};
        pd_journal_recovery_t rec;
        char why[512];
        pd_journal_t *jn = pd_journal_open(&cfg, jobs, mods, &rec, why, sizeof why, &err);
        ... pd_journal_submit(jn, ...); pd_jobs_set_done(...); ...
        pd_journal_commit(jn);           // once per loop turn
        pd_journal_destroy(&jn);
*/
#ifndef PD_JOURNAL_H
#define PD_JOURNAL_H

#include "pd_jobs.h"
#include "pd_mods.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How hard a commit goes to disk (SQLite's synchronous setting). */
typedef enum {
    PD_JOURNAL_SYNC_OFF = 0,    /* no fsync: survives a broker crash, not a power cut */
    PD_JOURNAL_SYNC_NORMAL = 1, /* fsync at checkpoints: a power cut may lose the last commits */
    PD_JOURNAL_SYNC_FULL = 2    /* fsync every commit: nothing acknowledged is lost */
} pd_journal_sync_t;

typedef struct {
    const char *path;       /* the database file; its directory is created (0700) */
    pd_journal_sync_t sync; /* durability of a commit */
    uint64_t max_bytes;     /* size past which pd_journal_full() is true (0 = no bound) */
    bool reset;             /* move an existing journal aside and start empty */
} pd_journal_config_t;

/* What recovery put back. */
typedef struct {
    uint64_t queued;  /* jobs queued again (they were queued or running) */
    uint64_t results; /* final jobs whose results wait to be fetched */
    uint32_t mods;    /* modules */
    uint32_t tokens;  /* submit tokens */
    uint64_t next_id; /* id the next submit gets */
    uint64_t bytes;   /* size of the journal */
    int64_t ms;       /* time it took */
    char moved[300];  /* with reset: where the old journal went ("" = there was none) */
} pd_journal_recovery_t;

typedef struct pd_journal pd_journal_t;

/* Opens (or creates) the journal and loads it into jobs and mods, which must
   be empty and outlive the journal; installs the pd_jobs hooks. Returns the
   journal, or NULL with *err set (when given) and a sentence in why:
   PD_EIO when the file cannot be opened or created, is in use by another
   broker, is not a Playdoh journal, or is damaged (checksums, structure,
   contents); PD_ENOMEM. jobs and mods may hold part of the journal after a
   failure: destroy them. */
pd_journal_t *pd_journal_open(const pd_journal_config_t *cfg, pd_jobs_t *jobs, pd_mods_t *mods,
                              pd_journal_recovery_t *rec, char *why, size_t whycap, int *err);
/* Commits what is pending (best effort), removes the hooks and closes the
   file. Safe on NULL; sets *p to NULL. */
void pd_journal_destroy(pd_journal_t **p);

/* Journals an accepted submit: ids first .. first+n-1 whose argument blob
   is `args` (key first), with module hash, function and options, and its
   token (NULL/0: none) at second now_s. */
void pd_journal_submit(pd_journal_t *jn, uint64_t first, uint32_t n, const char *hash,
                       const char *fn, uint32_t timeout_ms, uint32_t retries,
                       const pd_blob_t *args, const void *token, size_t tokenlen,
                       uint32_t now_s);
/* Journals an uploaded module (a module already journalled is ignored). */
void pd_journal_put_mod(pd_journal_t *jn, const pd_mod_t *mod);

/* True while a transaction is open: something changed since the last
   commit (the broker then holds back replies). */
bool pd_journal_pending(const pd_journal_t *jn);
/* Ends the open transaction. Returns 0 (committed, or nothing to commit),
   or PD_EIO when it could not be written: it is rolled back, the journal is
   failing from now on, and pd_journal_error() says why. */
int pd_journal_commit(pd_journal_t *jn);

/* False while the journal is failing (submits must be refused). */
bool pd_journal_writable(const pd_journal_t *jn);
/* True when the journal has grown past its max_bytes. */
bool pd_journal_full(const pd_journal_t *jn);
/* Why the journal is failing (or "" when it is not). Borrowed. */
const char *pd_journal_error(const pd_journal_t *jn);
/* The journal's path. Borrowed. */
const char *pd_journal_path(const pd_journal_t *jn);
/* Bytes on disk: the database and its write-ahead log, as of the last
   commit. */
uint64_t pd_journal_bytes(const pd_journal_t *jn);
/* The configured bound (0 = none). */
uint64_t pd_journal_max_bytes(const pd_journal_t *jn);

/* Housekeeping, called from the loop's tick when nothing is pending: while
   failing, retries (rewriting everything from memory) with a back-off from
   1 s to 60 s; otherwise forgets old submit tokens and returns free pages to
   the file system now and then. now_s is wall-clock seconds, now_ms
   monotonic. */
void pd_journal_tick(pd_journal_t *jn, uint32_t now_s, int64_t now_ms);
/* Shrinks the files: checkpoints the log into the database, truncates it
   and frees unused pages. Commits first. Returns 0 or PD_EIO. */
int pd_journal_compact(pd_journal_t *jn);
/* Rewrites the whole journal from memory (what a failing journal does to
   recover). Returns 0, or PD_EIO (still or again failing). */
int pd_journal_resync(pd_journal_t *jn);

/* Counters, for the exit log line and tests. */
typedef struct {
    uint64_t commits;  /* transactions committed */
    uint64_t failures; /* transactions rolled back after a failed write */
    uint64_t resyncs;  /* successful rewrites after a failure */
} pd_journal_stats_t;
void pd_journal_stats(const pd_journal_t *jn, pd_journal_stats_t *out);

/* The default journal path: /var/lib/playdoh/broker.journal for root, else
   $XDG_STATE_HOME/playdoh/broker.journal (or ~/.local/state/playdoh/...).
   Writes it into out; returns 0, or PD_EINVAL when neither XDG_STATE_HOME
   nor HOME is set. */
int pd_journal_default_path(char *out, size_t cap);

#endif
