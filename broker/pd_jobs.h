/*  pd_jobs: the broker's job table, its queue and job-id ranges.

    Every accepted job gets a record, found by id in O(1): ids are handed out
    from 1, contiguous within one submit, and records live in fixed-size
    chunks (never moved by a realloc), freed once every job of a chunk has
    been forgotten. Arguments are not copied per job: one submit's `args`
    array is copied once into a reference-counted blob and every job points
    into it.

    Results are collected the same way: each final transition (done, failed,
    cancelled) appends an entry [id, state, value] to an open *result
    segment*; pd_jobs_seal() turns the segment into one reference-counted
    blob that the jobs point into. The broker seals after every message, so
    a `done` of 1000 results makes one segment. Blobs are the unit the
    journal (pd_journal) writes and deletes: an argument blob is a submit's
    batch, a result blob a segment, and the hooks below report when one is
    made or loses its last job.

    Each client (a submitter's ZeroMQ routing id) has its own queue, a ring
    of id ranges (a submit of 4096 jobs is one entry); cancelled jobs are
    skipped lazily when popped. Jobs requeued after a lost worker go to the
    front of their client's queue. pd_jobs_pop() serves the clients with
    queued jobs round-robin, one job each, skipping a client that has as
    many jobs running as its max_slots, so several clients share the
    cluster fairly. A GPU job (one that asked for a GPU slot, or ships CUDA
    kernels) waits in a queue of its client's for GPU slots, served by
    pd_jobs_pop(j, PD_JOBS_GPU), and never takes a CPU slot; CPU jobs never
    take a GPU slot. The number of unfinished (queued or running) jobs is
    bounded: a submit that would exceed the bound is refused whole.

    Jobs that become final are also appended to a "fresh" list that the
    broker drains once per loop turn to wake parked fetches, and results are
    forgotten a time-to-live after their first fetch (pd_jobs_expire).
    Submits may carry a token (an idempotency key): a retried submit with a
    token seen in the last PD_JOBS_TOKEN_TTL_S seconds gets the same ids.

    The struct pd_jobrec_t is a plain record read by the broker on its hot path;
    it is changed only through the functions here (and by pd_workers for the
    worker/wpos pair).
*/
#ifndef PD_JOBS_H
#define PD_JOBS_H

#include "pd_limits.h"
#include "pd_msg.h"
#include "pd_ranges.h" /* requests name the table's ids by ranges */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Job states, as on the wire (docs/protocol.md). */
enum {
    PD_JOB_UNKNOWN = 0,
    PD_JOB_QUEUED = 1,
    PD_JOB_RUNNING = 2,
    PD_JOB_DONE = 3,
    PD_JOB_FAILED = 4,
    PD_JOB_CANCELLED = 5
};
#define PD_JOB_IS_FINAL(s) ((s) >= PD_JOB_DONE)

#define PD_JOBS_DEFAULT_MAX   4000000u  /* unfinished jobs held at most */
#define PD_JOBS_DEFAULT_MAX_ARG_BYTES (4ull << 30) /* their argument bytes at most */
#define PD_JOBS_MAX_RETRIES   255u      /* largest `retries` a submit may ask */
#define PD_JOBS_MAX_RETRY_FAILED 100u   /* largest `retry_failed` a submit may ask */
#define PD_JOBS_MAX_FN        255u      /* longest function name, bytes */
#define PD_JOBS_SEG_BYTES     (4u << 20) /* a result segment is sealed past this size */
#define PD_JOBS_SEG_JOBS      8192u     /* ... or this many entries */
#define PD_JOBS_TOKEN_MAX     64u       /* bytes in a submit token at most */
#define PD_JOBS_TOKEN_TTL_S   3600u     /* seconds a submit token is remembered */
#define PD_JOBS_TOKENS_MAX    1000000u  /* tokens remembered at most (oldest go first) */
#define PD_JOBS_MAX_CLIENT_ID 255u      /* longest client routing id, bytes */

/* Slot classes: each has its own queues, and workers their own credit. */
enum { PD_JOBS_CPU = 0, PD_JOBS_GPU = 1, PD_JOBS_CLASSES = 2 };

/* A reference-counted block of bytes shared by several jobs. */
typedef struct {
    uint32_t refs; /* jobs pointing into data */
    uint32_t len;  /* bytes in data */
    uint64_t key;  /* journal key: first job id of an argument blob, segment
                      number of a result blob (0 = not journalled) */
    uint64_t jseq; /* journal batch that writes it (0: on disk, or no journal) */
    uint32_t mark; /* scratch for walks over every blob (pd_journal resync) */
    uint32_t flags; /* argument blobs: PD_BLOB_* bits; keeps data 8-byte aligned */
    uint8_t data[];
} pd_blob_t;

/* An argument blob's flags. */
#define PD_BLOB_SUCCEEDED 1u /* a job of the batch ended done */

/* Allocates a blob holding a copy of len bytes with refs references and
   key 0; NULL when out of memory. */
pd_blob_t *pd_blob_new(const void *data, size_t len, uint32_t refs);
/* Drops one reference; frees the blob with the last (without telling the
   hooks: pd_jobs does that for the blobs it owns). Sets *p to NULL. */
void pd_blob_unref(pd_blob_t **p);

typedef struct {
    uint8_t state;       /* PD_JOB_* */
    uint8_t losses;      /* times the job's worker was lost while running it */
    uint8_t retries;     /* lost-worker attempts allowed (at least 1 is made) */
    uint8_t gpu;         /* 1: runs on GPU slots only (class PD_JOBS_GPU) */
    uint8_t retry_failed; /* runs again allowed after its own run failed (PD_ETASK,
                             PD_ECRASH, PD_ETIMEDOUT) */
    uint8_t failures;    /* runs of it that failed so far (counted against retry_failed) */
    uint32_t attempt;    /* runs started so far: the current run's attempt */
    uint32_t mod;        /* module index (pd_mods) */
    uint32_t client;     /* index of the submitting client's queue (while unfinished) */
    uint32_t shared;     /* shared-data index + 1 (pd_shared); 0 = none */
    uint32_t fn;         /* interned function name and owner (pd_jobs_fn_name, _owner) */
    uint32_t cu;         /* CUDA module shipped with the job: its index + 1; 0 = none */
    uint32_t timeout_ms; /* per-run time-out for the worker, 0 = none */
    uint32_t worker;     /* registry index of the worker running it */
    uint32_t wpos;       /* position in that worker's in-flight list */
    uint32_t fetched;    /* broker second (+1) of the first fetch; 0 = not yet */
    pd_blob_t *arg;      /* blob holding the argument; NULL once final */
    pd_blob_t *res;      /* result segment holding the value or error map (NULL
                            while the segment is open: read with pd_jobs_result) */
    uint32_t arg_off;    /* argument's offset in arg */
    uint32_t arg_len;    /* argument's msgpack bytes */
    uint32_t res_off;    /* result's offset in res */
    uint32_t res_len;    /* result's msgpack bytes (0 = nil) */
} pd_jobrec_t;

typedef struct pd_jobs pd_jobs_t;

/* What the table tells its journal. Every hook may be NULL; each gets the
   `user` pointer given with the hooks. None is called by pd_jobs_destroy. */
typedef struct {
    /* A result segment was sealed (blob->refs jobs point into it). */
    void (*sealed)(void *user, pd_blob_t *seg);
    /* A blob lost its last job and is about to be freed: an argument blob
       (args true: every job of that submit is final) or a result segment
       (every job in it was forgotten). */
    void (*dead)(void *user, const pd_blob_t *blob, bool args);
    /* A final job was forgotten (released or expired). */
    void (*forgot)(void *user, uint64_t id);
    /* A final job was fetched for the first time, at second sec. */
    void (*fetched)(void *user, uint64_t id, uint32_t sec);
    /* The time-to-live entry for ids first .. first+count-1 was handled
       (their results forgotten where they had not been refetched since). */
    void (*expired)(void *user, uint64_t first, uint64_t count);
} pd_jobs_hooks_t;

/* Creates an empty table holding at most max_unfinished queued or running
   jobs (0 = PD_JOBS_DEFAULT_MAX). Returns NULL when out of memory. */
pd_jobs_t *pd_jobs_new(uint64_t max_unfinished);
/* Frees the table, every record and blob. Safe on NULL; sets *p to NULL. */
void pd_jobs_destroy(pd_jobs_t **p);
/* Sets the hooks (copied; NULL removes them). */
void pd_jobs_set_hooks(pd_jobs_t *j, const pd_jobs_hooks_t *hooks, void *user);
/* Takes an extra reference to a blob of the table (the journal holds one
   while it writes the blob) ... */
void pd_jobs_blob_hold(pd_blob_t *blob);
/* ... and drops it: with the last reference the dead hook is called (args:
   an argument blob) and the blob freed. Sets *p to NULL. */
void pd_jobs_blob_release(pd_jobs_t *j, pd_blob_t **p, bool args);

/* Accepts the jobs of one submit: `args` is the raw msgpack array (one job per
   element, each kept as raw bytes). On success sets *first and *n and returns
   0. Returns PD_EOVERLOAD when the unfinished bound would be exceeded (nothing
   accepted), PD_EPROTO when args is not an array, PD_EINVAL for a bad fn or
   retries, PD_ENOMEM; every failure writes a sentence into why. */
int pd_jobs_submit(pd_jobs_t *j, uint32_t mod, const char *fn, const uint8_t *args,
                   size_t args_len, uint32_t timeout_ms, uint32_t retries, uint64_t *first,
                   uint32_t *n, char *why, size_t whycap);

/* One submit, for pd_jobs_submit_ex(). */
typedef struct {
    const void *client;  /* the submitter's routing id: its queue (NULL: anonymous) */
    size_t client_len;   /* bytes in client (at most PD_JOBS_MAX_CLIENT_ID) */
    uint32_t mod;        /* module index */
    uint32_t shared;     /* shared-data index + 1, or 0 */
    const char *fn;      /* function name */
    const uint8_t *args; /* the raw msgpack array of arguments */
    size_t args_len;     /* its bytes */
    uint32_t timeout_ms; /* per-run time-out, 0 = none */
    uint32_t retries;    /* lost-worker attempts */
    uint32_t max_slots;  /* the client's cap on running jobs from now on; 0 = none */
    const char *owner;   /* the submitter as an owner (pd_auth.h): its key (Z85), which
                            workers get with each job (pd_jobs_fn_owner), or the id of
                            its owner token; NULL or "": nobody */
    bool gpu;            /* run on GPU slots only */
    uint32_t cu;         /* a CUDA module to ship with them: its index + 1 (implies gpu);
                            0 = none */
    pd_limits_t limits;  /* what each job asks to take (0 fields: not asked); the broker
                            places a job only on a worker whose maxima hold it */
    uint32_t retry_failed; /* runs again of a job whose own run failed (at most
                              PD_JOBS_MAX_RETRY_FAILED); 0 = none */
} pd_jobs_submit_t;

/* pd_jobs_submit with a client, shared data and a cap: the jobs join the
   client's queue, and the client's max_slots becomes sub->max_slots. Same
   returns, plus PD_EINVAL for a client id over PD_JOBS_MAX_CLIENT_ID. */
int pd_jobs_submit_ex(pd_jobs_t *j, const pd_jobs_submit_t *sub, uint64_t *first, uint32_t *n,
                      char *why, size_t whycap);
/* Takes ids first .. first+n-1 back out of the table: the jobs of a submit
   that could not be journalled (their `accepted` was never sent). Queued
   jobs disappear (state unknown), final ones are forgotten; running ones
   stay (the broker cancels those first: pd_broker_cancel_range). */
void pd_jobs_withdraw(pd_jobs_t *j, uint64_t first, uint32_t n);

/* The record of job id, or NULL when the broker does not know it (never
   given, or forgotten). Borrowed until the next pd_jobs_* call that adds or
   forgets jobs. */
pd_jobrec_t *pd_jobs_get(pd_jobs_t *j, uint64_t id);
/* A job's failure as the dashboard lists it: copied when the job fails, so
   it stays listed after the job's result is released (pd_jobs_recent_failed). */
#define PD_JOBS_RECENT_FAILED 64u
typedef struct {
    uint64_t id;
    uint32_t fn;        /* interned function and owner (pd_jobs_fn_name, _owner_id) */
    uint32_t attempts;  /* runs started */
    int64_t slot;       /* -1: none */
    char code[32];
    char msg[256];      /* cut when longer */
    char host[64];
} pd_jobs_failure_t;
/* The latest failures (at most PD_JOBS_RECENT_FAILED, the newest first) into
   out (max entries); returns how many. The dashboard's failed jobs. */
uint32_t pd_jobs_recent_failed(const pd_jobs_t *j, pd_jobs_failure_t *out, uint32_t max);
/* Packs f's error map as a failed job's result holds it (code, msg, host,
   slot, attempts). */
void pd_jobs_pack_failure(msgpack_packer *pk, const pd_jobs_failure_t *f);
/* The records of ids id .. id+n-1 (n >= 1) as far as they lie side by side
   in the table: returns k (1 .. n), how many ids from id this answers, and
   sets *recs to the record of id, the k records following one another, or to
   NULL when none of those k ids has a record. A record whose state is
   PD_JOB_UNKNOWN holds no job (pd_jobs_get's NULL). A walk over a range of
   ids (a fetch over a whole batch) reads the records in place instead of
   looking each id up. Borrowed like pd_jobs_get. */
uint32_t pd_jobs_span(pd_jobs_t *j, uint64_t id, uint64_t n, pd_jobrec_t **recs);
/* The batch (one submit) of an unfinished job: its ids are first ..
   first+*n-1 (some of them may be final or forgotten by now), and
   *succeeded says whether one of them ended done. */
void pd_jobs_batch(const pd_jobrec_t *job, uint64_t *first, uint32_t *n, bool *succeeded);
/* State of id (PD_JOB_UNKNOWN when not known). */
uint8_t pd_jobs_state(pd_jobs_t *j, uint64_t id);
/* The interned function name with index fn (borrowed, lives with j). */
const char *pd_jobs_fn_name(pd_jobs_t *j, uint32_t fn);
/* The key of the client that submitted jobs with index fn ("" without
   CURVE), for workers' code policies; borrowed, lives with j. */
const char *pd_jobs_fn_owner(pd_jobs_t *j, uint32_t fn);
/* The limits the jobs with index fn ask for (pd_jobs_submit_t.limits). */
pd_limits_t pd_jobs_fn_limits(pd_jobs_t *j, uint32_t fn);
/* Who owns the jobs with index fn: a key, "local:" and a token's hash, or
   "" (nobody: anyone may act on them); borrowed, lives with j. */
const char *pd_jobs_owner_id(pd_jobs_t *j, uint32_t fn);
/* Gives the known jobs among ids first .. first+n-1 that have no owner the
   owner `owner` (the journal's record of a batch whose jobs are final).
   Returns 0 or PD_ENOMEM. */
int pd_jobs_set_owner(pd_jobs_t *j, uint64_t first, uint64_t n, const char *owner);

/* One owner's jobs, for pd_jobs_owners. */
typedef struct {
    const char *owner; /* pd_jobs_owner_id's form (borrowed, lives with the table) */
    uint64_t batches;  /* submits with unfinished jobs */
    uint64_t queued;   /* jobs queued */
    uint64_t running;  /* jobs running */
    uint64_t final;    /* jobs done, failed or cancelled and not yet released */
} pd_jobs_owner_t;
/* Counts every known job by owner (a walk over the table: O(jobs)).
   Returns a malloc'ed array of *n entries, owners in order of their first
   job (the caller frees it; NULL with *n 0 when there is none or memory
   ran out). */
pd_jobs_owner_t *pd_jobs_owners(pd_jobs_t *j, size_t *n);

/* Takes the next queued job of slot class cls (PD_JOBS_CPU or PD_JOBS_GPU)
   for dispatch, from the clients in turn (each below its max_slots), and
   marks it running with attempt+1; returns its id, or 0 when nothing of
   that class may run now (a client whose next job is at or past the pop
   limit waits its turn). The caller sets worker/wpos through
   pd_workers_track. */
uint64_t pd_jobs_pop(pd_jobs_t *j, int cls);
/* Like pd_jobs_pop, taking only a job for which fits(user, job) is true: a
   client whose next job does not fit is passed over this time (its turn
   comes back with the next caller). */
uint64_t pd_jobs_pop_if(pd_jobs_t *j, int cls, bool (*fits)(void *user, const pd_jobrec_t *job),
                        void *user);
/* Jobs with ids >= limit are not popped (0 = no limit): the journal sets it
   to the next id it has on disk, so that no id reaches a worker unless it
   can never be handed out again. A client's queue is in id order except
   for requeued jobs, which are older, so nothing behind a held job of that
   client is ready. */
void pd_jobs_set_pop_limit(pd_jobs_t *j, uint64_t limit);
/* True when pd_jobs_pop(j, cls) may return a job now (some client of that
   class has a queued job below the pop limit and room under its cap). */
bool pd_jobs_ready(pd_jobs_t *j, int cls);
/* Puts a running job back at the front of its client's queue (of its class). With `lost`, the loss
   counts toward its retries: when they are used up the job fails with
   PD_ELOST naming host, and 1 is returned; else 0 (requeued). Without
   `lost` (a worker's bye, a send that failed) the attempt is not counted. */
int pd_jobs_requeue(pd_jobs_t *j, uint64_t id, bool lost, const char *host);

/* A running job whose run just failed with error code `code` (a PD_E*
   name): when the run itself failed (PD_ETASK: the function or command
   reported an error; PD_ECRASH; PD_ETIMEDOUT) and the job has runs left
   under its retry_failed, the failure is counted and the job goes back to
   the front of its client's queue, as pd_jobs_requeue without a loss:
   returns true. Otherwise returns false and changes nothing (the caller
   marks it failed). */
bool pd_jobs_retry_failed(pd_jobs_t *j, uint64_t id, const char *code, const char *host);

/* Final transitions of a queued or running job. Each releases the argument,
   appends an entry to the open result segment and the id to the fresh list.
   Returns 0, or PD_ENOMEM when the entry could not be stored (the job is
   final with a nil value, and is not journalled). */
/* Done with the msgpack value val[0 .. len) (copied). */
int pd_jobs_set_done(pd_jobs_t *j, uint64_t id, const uint8_t *val, uint32_t len);
/* Failed with an error map {code, msg, host, slot, attempts} packed here. */
int pd_jobs_set_failed(pd_jobs_t *j, uint64_t id, const char *code, const char *msg,
                       const char *host, int64_t slot);
/* Failed, with the job's partial output (one msgpack value, value[0..len))
   added to the error map as "value" (an exec job's {exit, out, err, ...}). */
int pd_jobs_set_failed_value(pd_jobs_t *j, uint64_t id, const char *code, const char *msg,
                             const char *host, int64_t slot, const uint8_t *value, size_t len);
/* Cancelled (value nil). */
int pd_jobs_set_cancelled(pd_jobs_t *j, uint64_t id);
/* Seals the open result segment (if any): the jobs in it now point into one
   blob, and the sealed hook is called. */
void pd_jobs_seal(pd_jobs_t *j);
/* A final job's value (a result, an error map, or nil), sealing first when
   needed: sets *val and *len and returns true, or returns false when the
   job is not final (or has no stored value). Borrowed like pd_jobs_get. */
bool pd_jobs_result(pd_jobs_t *j, uint64_t id, const uint8_t **val, uint32_t *len);

/* Forgets a final job (its result is freed; its state becomes unknown).
   Returns true when it was final and is now forgotten. */
bool pd_jobs_forget(pd_jobs_t *j, uint64_t id);
/* Records a first fetch of a final job at second now_s (the broker uses
   wall-clock seconds, so that a restart keeps the time-to-live); the result
   is forgotten by pd_jobs_expire() ttl_s later. Returns true when this was
   the job's first fetch. */
bool pd_jobs_mark_fetched(pd_jobs_t *j, uint64_t id, uint32_t now_s);
/* Forgets results first fetched at or before now_s - ttl_s. Returns how many. */
uint64_t pd_jobs_expire(pd_jobs_t *j, uint32_t now_s, uint32_t ttl_s);

/* ---- submit tokens ------------------------------------------------------ */

/* Looks up a submit token (1 .. PD_JOBS_TOKEN_MAX bytes): when a submit with
   it was accepted, sets *first and *n and returns true. */
bool pd_jobs_token_find(pd_jobs_t *j, const void *token, size_t len, uint64_t *first,
                        uint32_t *n);
/* Remembers that the submit with this token got ids first .. first+n-1 at
   second now_s. Returns 0 or PD_ENOMEM (the token is then not remembered). */
int pd_jobs_token_add(pd_jobs_t *j, const void *token, size_t len, uint64_t first, uint32_t n,
                      uint32_t now_s);
/* Forgets a token whose submit was withdrawn (a retry then submits anew). */
void pd_jobs_token_drop(pd_jobs_t *j, const void *token, size_t len);
/* Forgets tokens older than ttl_s at now_s (and the oldest beyond
   PD_JOBS_TOKENS_MAX). Returns how many. */
size_t pd_jobs_token_expire(pd_jobs_t *j, uint32_t now_s, uint32_t ttl_s);
/* Calls fn for every remembered token, oldest first. */
void pd_jobs_token_each(pd_jobs_t *j,
                        void (*fn)(void *user, const uint8_t *token, size_t len, uint64_t first,
                                   uint32_t n, uint32_t sec),
                        void *user);

/* ---- recovery and walks (pd_journal) ----------------------------------- */

/* Raises the id the next submit gets (never lowers it). */
void pd_jobs_set_next_id(pd_jobs_t *j, uint64_t next_id);
/* Puts back a journalled submit: ids first .. first+n-1 of the msgpack array
   sub->args (n elements), queued in sub->client's queue with sub's module,
   shared data, function, options, cap and slot class, except those for
   which skip(user, id) is true. The argument blob gets key first. Returns
   how many jobs were restored (0: the blob was not kept), or PD_EPROTO with
   a sentence in why when the batch does not fit (ids in use or not below
   the next id, args not an array of n values, bad fn, retries or client).
   The unfinished bound is not applied: what was accepted stays accepted. */
int64_t pd_jobs_restore_batch(pd_jobs_t *j, uint64_t first, uint32_t n,
                              const pd_jobs_submit_t *sub,
                              bool (*skip)(void *user, uint64_t id), void *user, char *why,
                              size_t whycap);
/* Puts back a journalled result segment (a msgpack array of [id, state,
   value] entries) with key seg: every entry not skipped makes its job final
   (a queued job from a batch, or a new record when its batch is gone).
   Returns how many jobs point into it (0: the segment was not kept), or
   PD_EPROTO with a sentence in why (malformed entries, bad states, ids not
   below the next id, a job final twice). */
int64_t pd_jobs_restore_segment(pd_jobs_t *j, uint64_t seg, const uint8_t *data, size_t len,
                                bool (*skip)(void *user, uint64_t id), void *user, char *why,
                                size_t whycap);
/* The routing id of the client that submitted unfinished job `job` (at most
   PD_JOBS_MAX_CLIENT_ID bytes into rid; *len 0 for the anonymous client)
   and that client's max_slots. */
void pd_jobs_client_of(pd_jobs_t *j, const pd_jobrec_t *job, uint8_t *rid, size_t *len,
                       uint32_t *max_slots);
/* Smallest id >= from that has a record, or 0 when none. */
uint64_t pd_jobs_next_known(pd_jobs_t *j, uint64_t from);
/* Time-to-live entries (first fetches), oldest first: how many, and one. */
size_t pd_jobs_ttl_count(const pd_jobs_t *j);
void pd_jobs_ttl_at(const pd_jobs_t *j, size_t i, uint64_t *first, uint32_t *count,
                    uint32_t *sec);

/* Ids that became final since the last pd_jobs_fresh_clear, sorted
   ascending by this call (borrowed until the next change). */
const uint64_t *pd_jobs_fresh(pd_jobs_t *j, size_t *n);
void pd_jobs_fresh_clear(pd_jobs_t *j);

/* Clients holding unfinished jobs. */
uint32_t pd_jobs_clients(const pd_jobs_t *j);
/* Unfinished jobs naming shared-data index `shared` (0-based). */
uint64_t pd_jobs_shared_open(const pd_jobs_t *j, uint32_t shared);

/* Counters. */
uint64_t pd_jobs_unfinished(const pd_jobs_t *j); /* queued + running */
uint64_t pd_jobs_queued(const pd_jobs_t *j);              /* all classes */
uint64_t pd_jobs_queued_in(const pd_jobs_t *j, int cls);  /* one class */
uint64_t pd_jobs_next_id(const pd_jobs_t *j); /* id the next submit gets */
/* Bytes of the argument blobs that unfinished jobs hold (a submit's blob
   counts until its last job is final), and the bound on them: a submit
   that would pass it is refused whole with PD_EOVERLOAD (0 = the default,
   PD_JOBS_DEFAULT_MAX_ARG_BYTES). */
uint64_t pd_jobs_arg_bytes(const pd_jobs_t *j);
/* Bytes of argument blobs freed since the table was made (a counter). */
uint64_t pd_jobs_arg_freed(const pd_jobs_t *j);
void pd_jobs_set_max_arg_bytes(pd_jobs_t *j, uint64_t max);
uint64_t pd_jobs_max(const pd_jobs_t *j);

#endif
