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
                 mods: uploaded modules; shared: shared data (deleted when
                 the store evicts it); meta: format, version, next id

    Every row that carries data has a BLAKE2b checksum, and opening runs
    SQLite's quick_check, so a damaged or truncated file is refused with a
    sentence rather than half-read. Opening also recovers: it loads the
    journal into the (empty) job table and module store.

    Writing is asynchronous. As the table changes (pd_jobs hooks,
    pd_journal_submit, pd_journal_put_mod) the journal appends operations to
    an open *batch*, holding a reference to each blob it will write.
    pd_journal_flush() hands the batch, numbered, to a writer thread (a CZMQ
    actor that owns the SQLite connection), which applies it in one
    transaction, commits (fsync with sync full) and answers with the batch
    number now settled. While a batch is with the writer, flushes leave the
    open batch growing, so the next commit covers whatever arrived during
    the previous fsync (group commit). The broker's loop goes on meanwhile;
    it holds each reply that depends on an unsettled batch (pd_journal_tag)
    and sends it when pd_journal_settle() reports that batch committed. So
    the loop never waits for the disk.

    When a write or a commit fails (disk full, I/O error), the writer rolls
    back and reports the batches failed; the journal turns *failing*:
    nothing more is written, pd_journal_writable() is false (the broker
    refuses submits, and those it had not yet confirmed), and
    pd_journal_tick() retries now and then by rewriting the whole state
    from memory; when that commits the journal is writable again.

        pd_journal_config_t cfg = {.path = "/var/lib/playdoh/broker.journal",
                                   .sync = PD_JOURNAL_SYNC_FULL};
        pd_journal_recovery_t rec;
        char why[512];
        pd_journal_t *jn = pd_journal_open(&cfg, jobs, mods, &rec, why, sizeof why, &err);
        ... pd_journal_submit(jn, ...); pd_jobs_set_done(...); ...
        pd_journal_flush(jn);                      // once per loop turn
        ... poll pd_journal_socket(jn); pd_journal_settle(jn, &done) ...
        pd_journal_destroy(&jn);                   // waits for what is in flight
*/
#ifndef PD_JOURNAL_H
#define PD_JOURNAL_H

#include "pd_jobs.h"
#include "pd_mods.h"
#include "pd_shared.h"

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
    uint32_t shared;  /* shared-data blobs */
    uint32_t tokens;  /* submit tokens */
    uint64_t next_id; /* id the next submit gets */
    uint64_t next_task; /* the next synchronous task id is at least this (0: none recorded) */
    uint64_t bytes;   /* size of the journal */
    int64_t ms;       /* time it took */
    char moved[300];  /* with reset: where the old journal went ("" = there was none) */
} pd_journal_recovery_t;

typedef struct pd_journal pd_journal_t;

/* Opens (or creates) the journal and loads it into jobs, mods and shared
   (shared may be NULL: no shared data), which must be empty and outlive the
   journal; installs the pd_jobs hooks. Returns the
   journal, or NULL with *err set (when given) and a sentence in why:
   PD_EIO when the file cannot be opened or created, is in use by another
   broker, is not a Playdoh journal, or is damaged (checksums, structure,
   contents); PD_ENOMEM. jobs and mods may hold part of the journal after a
   failure: destroy them. */
pd_journal_t *pd_journal_open(const pd_journal_config_t *cfg, pd_jobs_t *jobs, pd_mods_t *mods,
                              pd_shared_t *shared, pd_journal_recovery_t *rec, char *why,
                              size_t whycap, int *err);
/* Commits what is pending (best effort), removes the hooks and closes the
   file. Safe on NULL; sets *p to NULL. */
void pd_journal_destroy(pd_journal_t **p);

/* Journals an accepted submit: ids first .. first+n-1 whose argument blob
   is `args` (key first), as sub describes it (client, function, options,
   cap, GPU), with the hashes of its module, shared data and CUDA module
   (NULL: none), and its token (NULL/0: none) at second now_s. */
void pd_journal_submit(pd_journal_t *jn, uint64_t first, uint32_t n,
                       const pd_jobs_submit_t *sub, const char *hash, const char *shared,
                       const char *cu, pd_blob_t *args, const void *token, size_t tokenlen,
                       uint32_t now_s);
/* Journals shared data put in the store (copied: the store may evict it
   before the writer gets to it) ... */
void pd_journal_put_shared(pd_journal_t *jn, const char *hash, const void *data, size_t len);
/* ... and its eviction. */
void pd_journal_drop_shared(pd_journal_t *jn, const char *hash);
/* Journals that synchronous task ids below next are used. Tasks themselves
   are not journalled; their ids are, so that a restarted broker never hands
   out an id a client still holds. */
void pd_journal_put_task_id(pd_journal_t *jn, uint64_t next);
/* Journals an uploaded module (a module already journalled is ignored). The
   module must stay in the store, unchanged, for the journal's life. */
void pd_journal_put_mod(pd_journal_t *jn, const pd_mod_t *mod);

/* The batch a reply sent now would depend on: 0 when everything journalled
   so far is committed (send at once), else the number of the batch whose
   settlement it must wait for. */
uint64_t pd_journal_tag(const pd_journal_t *jn);
/* True when what batch seq writes may be shown to clients: it is settled
   (or seq is 0: on disk already), or the journal is failing (then the
   broker serves what it has in memory). A result segment's batch is its
   blob's jseq. */
bool pd_journal_visible(const pd_journal_t *jn, uint64_t seq);
/* Hands the open batch (if any) to the writer, unless the writer is still
   busy with the previous one: then the open batch keeps growing, and goes
   at the first flush after that one settles (so one commit takes all that
   arrived during the previous fsync). Cheap; once per loop turn. */
void pd_journal_flush(pd_journal_t *jn);
/* How far behind the disk is: batches handed to the writer and not settled
   yet, plus one per 4096 operations waiting in the open batch. */
size_t pd_journal_backlog(const pd_journal_t *jn);

/* What a settlement says: every batch up to `seq` is done with. */
typedef struct {
    uint64_t seq;     /* the highest batch settled */
    bool ok;          /* committed; false: failed (the journal is now failing) */
    uint64_t next_id; /* with ok: the journal's next id is at least this (it is written a
                         reserve ahead), so jobs below it may go to workers: even if their
                         submit is lost in a crash, their ids are never handed out again */
} pd_journal_done_t;
/* The ZeroMQ socket (a libzmq handle) that turns readable when a
   settlement waits: poll it with ZMQ_POLLIN. */
void *pd_journal_socket(pd_journal_t *jn);
/* Reads one settlement without waiting. Returns true and fills done, or
   false when none waits. */
bool pd_journal_settle(pd_journal_t *jn, pd_journal_done_t *done);
/* Flushes and waits until every batch is settled, calling on_done (when not
   NULL) for each settlement. Returns 0, or PD_EIO when a batch failed or
   the journal is failing. */
int pd_journal_wait(pd_journal_t *jn, void (*on_done)(void *user, const pd_journal_done_t *done),
                    void *user);
/* pd_journal_wait without a callback: for tests and simple users. */
int pd_journal_commit(pd_journal_t *jn);
/* For tests, standing in for a disk that takes long to sync: while held,
   pd_journal_flush hands nothing to the writer (the open batch keeps
   growing, what depends on it waits, and pd_journal_wait waits too). May
   be called from any thread. */
void pd_journal_hold(pd_journal_t *jn, bool hold);

/* False while the journal is failing (submits must be refused). */
bool pd_journal_writable(const pd_journal_t *jn);
/* True when the journal has grown past its max_bytes. */
bool pd_journal_full(const pd_journal_t *jn);
/* Why the journal is failing (or "" when it is not). Borrowed. */
const char *pd_journal_error(const pd_journal_t *jn);
/* The journal's path. Borrowed. */
const char *pd_journal_path(const pd_journal_t *jn);
/* Bytes on disk: the database and its write-ahead log, as of the last
   settlement. */
uint64_t pd_journal_bytes(const pd_journal_t *jn);
/* The configured bound (0 = none). */
uint64_t pd_journal_max_bytes(const pd_journal_t *jn);

/* Housekeeping, called from the loop's tick: while failing, retries
   (rewriting everything from memory, asynchronously) with a back-off from
   1 s to 60 s; otherwise forgets old submit tokens and returns free pages
   to the file system now and then. now_s is wall-clock seconds, now_ms
   monotonic. */
void pd_journal_tick(pd_journal_t *jn, uint32_t now_s, int64_t now_ms);
/* Asks the writer to shrink the files after the next commit: checkpoint the
   log into the database, truncate it and free unused pages. Settles with
   the batch it is in (pd_journal_bytes is then the new size). */
void pd_journal_compact(pd_journal_t *jn);
/* Queues a rewrite of the whole journal from memory (what a failing journal
   does to recover; it settles like any batch). Call pd_journal_wait to see
   it through. */
void pd_journal_resync(pd_journal_t *jn);

/* Counters, for the exit log line and tests. */
typedef struct {
    uint64_t batches;  /* batches settled */
    uint64_t commits;  /* transactions committed (one may cover many batches) */
    uint64_t failures; /* times the journal turned failing */
    uint64_t resyncs;  /* successful rewrites after a failure */
} pd_journal_stats_t;
void pd_journal_stats(const pd_journal_t *jn, pd_journal_stats_t *out);

/* The default journal path: $STATE_DIRECTORY/broker.journal under systemd
   (StateDirectory=), else /var/lib/playdoh/broker.journal for root, else
   $XDG_STATE_HOME/playdoh/broker.journal (or ~/.local/state/playdoh/...).
   Writes it into out; returns 0, or PD_EINVAL when neither XDG_STATE_HOME
   nor HOME is set. */
int pd_journal_default_path(char *out, size_t cap);

#endif
