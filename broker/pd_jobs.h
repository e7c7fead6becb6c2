/*  pd_jobs: the broker's job table, its queue and job-id ranges.

    Every accepted job gets a record, found by id in O(1): ids are handed out
    from 1, contiguous within one submit, and records live in fixed-size
    chunks (never moved by a realloc), freed once every job of a chunk has
    been forgotten. Arguments are not copied per job: one submit's `args`
    array is copied once into a reference-counted blob and every job points
    into it; results of one `done` message share a blob the same way.

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

    The struct pd_job_t is a plain record read by the broker on its hot path;
    it is changed only through the functions here (and by pd_workers for the
    worker/wpos pair).
*/
#ifndef PD_JOBS_H
#define PD_JOBS_H

#include "pd_msg.h"

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
#define PD_RANGES_MAX_IDS     10000000u /* ids named by one request at most */
#define PD_JOBS_MAX_RETRIES   255u      /* largest `retries` a submit may ask */
#define PD_JOBS_MAX_FN        255u      /* longest function name, bytes */
#define PD_JOBS_MAX_CLIENT_ID 255u      /* longest client routing id, bytes */

/* Slot classes: each has its own queues, and workers their own credit. */
enum { PD_JOBS_CPU = 0, PD_JOBS_GPU = 1, PD_JOBS_CLASSES = 2 };

/* A reference-counted block of bytes shared by several jobs. */
typedef struct {
    uint32_t refs; /* jobs pointing into data */
    uint32_t len;  /* bytes in data */
    uint8_t data[];
} pd_blob_t;

/* Allocates a blob holding a copy of len bytes with refs references;
   NULL when out of memory. */
pd_blob_t *pd_blob_new(const void *data, size_t len, uint32_t refs);
/* Drops one reference; frees the blob with the last. Sets *p to NULL. */
void pd_blob_unref(pd_blob_t **p);

typedef struct {
    uint8_t state;       /* PD_JOB_* */
    uint8_t losses;      /* times the job's worker was lost while running it */
    uint8_t retries;     /* lost-worker attempts allowed (at least 1 is made) */
    uint8_t gpu;         /* 1: runs on GPU slots only (class PD_JOBS_GPU) */
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
    pd_blob_t *res;      /* blob holding the result value or error map */
    uint32_t arg_off;    /* argument's offset in arg */
    uint32_t arg_len;    /* argument's msgpack bytes */
    uint32_t res_off;    /* result's offset in res */
    uint32_t res_len;    /* result's msgpack bytes (0 = nil) */
} pd_job_t;

typedef struct pd_jobs pd_jobs_t;

/* Creates an empty table holding at most max_unfinished queued or running
   jobs (0 = PD_JOBS_DEFAULT_MAX). Returns NULL when out of memory. */
pd_jobs_t *pd_jobs_new(uint64_t max_unfinished);
/* Frees the table, every record and blob. Safe on NULL; sets *p to NULL. */
void pd_jobs_destroy(pd_jobs_t **p);

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
    const char *owner;   /* the submitter's key (Z85), handed to workers with each
                            job (pd_jobs_fn_owner); NULL without CurveZMQ */
    bool gpu;            /* run on GPU slots only */
    uint32_t cu;         /* a CUDA module to ship with them: its index + 1 (implies gpu);
                            0 = none */
} pd_jobs_submit_t;

/* pd_jobs_submit with a client, shared data and a cap: the jobs join the
   client's queue, and the client's max_slots becomes sub->max_slots. Same
   returns, plus PD_EINVAL for a client id over PD_JOBS_MAX_CLIENT_ID. */
int pd_jobs_submit_ex(pd_jobs_t *j, const pd_jobs_submit_t *sub, uint64_t *first, uint32_t *n,
                      char *why, size_t whycap);

/* The record of job id, or NULL when the broker does not know it (never
   given, or forgotten). Borrowed until the next pd_jobs_* call that adds or
   forgets jobs. */
pd_job_t *pd_jobs_get(pd_jobs_t *j, uint64_t id);
/* State of id (PD_JOB_UNKNOWN when not known). */
uint8_t pd_jobs_state(pd_jobs_t *j, uint64_t id);
/* The interned function name with index fn (borrowed, lives with j). */
const char *pd_jobs_fn_name(pd_jobs_t *j, uint32_t fn);
/* The key of the client that submitted jobs with index fn ("" without
   CURVE); borrowed, lives with j. */
const char *pd_jobs_fn_owner(pd_jobs_t *j, uint32_t fn);

/* Takes the next queued job of slot class cls (PD_JOBS_CPU or PD_JOBS_GPU)
   for dispatch, from the clients in turn (each below its max_slots), and
   marks it running with attempt+1; returns its id, or 0 when nothing of
   that class may run now. The caller sets worker/wpos through
   pd_workers_track. */
uint64_t pd_jobs_pop(pd_jobs_t *j, int cls);
/* Puts a running job back at the front of its client's queue (of its class). With `lost`, the loss
   counts toward its retries: when they are used up the job fails with
   PD_ELOST naming host, and 1 is returned; else 0 (requeued). Without
   `lost` (a worker's bye, a send that failed) the attempt is not counted. */
int pd_jobs_requeue(pd_jobs_t *j, uint64_t id, bool lost, const char *host);

/* Final transitions of a queued or running job. Each releases the argument
   and appends the id to the fresh list. */
/* Done: the result is res->data[off .. off+len) (a reference is taken). */
void pd_jobs_set_done(pd_jobs_t *j, uint64_t id, pd_blob_t *res, uint32_t off, uint32_t len);
/* Failed with an error map {code, msg, host, slot, attempts} packed here. */
int pd_jobs_set_failed(pd_jobs_t *j, uint64_t id, const char *code, const char *msg,
                       const char *host, int64_t slot);
/* Failed, with the job's partial output (one msgpack value, value[0..len))
   added to the error map as "value" (an exec job's {exit, out, err, ...}). */
int pd_jobs_set_failed_value(pd_jobs_t *j, uint64_t id, const char *code, const char *msg,
                             const char *host, int64_t slot, const uint8_t *value, size_t len);
/* Cancelled. */
void pd_jobs_set_cancelled(pd_jobs_t *j, uint64_t id);

/* Forgets a final job (its result is freed; its state becomes unknown).
   Returns true when it was final and is now forgotten. */
bool pd_jobs_forget(pd_jobs_t *j, uint64_t id);
/* Records a first fetch of a final job at broker second now_s; the result is
   forgotten by pd_jobs_expire() ttl_s later. */
void pd_jobs_mark_fetched(pd_jobs_t *j, uint64_t id, uint32_t now_s);
/* Forgets results first fetched at or before now_s - ttl_s. Returns how many. */
uint64_t pd_jobs_expire(pd_jobs_t *j, uint32_t now_s, uint32_t ttl_s);

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
uint64_t pd_jobs_max(const pd_jobs_t *j);

/* ---- ranges --------------------------------------------------------- */

/* A parsed set of ids: pairs [first, count]. */
typedef struct {
    uint64_t (*r)[2]; /* owned; n pairs */
    uint32_t n;       /* pairs */
    uint64_t total;   /* ids named */
    uint64_t lo, hi;  /* smallest and largest id named (total > 0) */
} pd_ranges_t;

/* Parses a ranges value (array of [first, count] with first >= 1, count >= 1,
   no overflow, at most PD_RANGES_MAX_IDS ids in all). Returns 0, or
   PD_EPROTO/PD_ETOOBIG/PD_ENOMEM with a sentence in why. */
int pd_ranges_parse(const uint8_t *raw, size_t len, pd_ranges_t *out, char *why, size_t whycap);
void pd_ranges_free(pd_ranges_t *rg);
/* True when id is named by rg. Pairs are searched linearly after a
   bounding-box test. */
bool pd_ranges_contains(const pd_ranges_t *rg, uint64_t id);
/* True when any of the sorted ids is named by rg. */
bool pd_ranges_touches(const pd_ranges_t *rg, const uint64_t *sorted, size_t n);

#endif
