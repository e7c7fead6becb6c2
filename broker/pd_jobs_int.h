/*  pd_jobs_int.h: what the job table's files share; included only by
    pd_jobs.c (the table: records, ids, submits, state changes),
    pd_jobs_blobs.c (argument and result blobs, result segments, forgetting
    and the results' time-to-live), pd_jobs_queues.c (per-client queues and
    the fair round-robin between them) and pd_jobs_tokens.c (submit
    tokens), pd_jobs_restore.c (recovery from the journal, walks). Everyone
    else uses pd_jobs.h.
*/
#ifndef PD_JOBS_INT_H
#define PD_JOBS_INT_H

#include "pd_jobs.h"
#include "pd_codec.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Records: chunk c holds ids c*S+1 .. (c+1)*S with S = 2^16. */
#define PD_JOBS_CHUNK_BITS 16
#define PD_JOBS_CHUNK      (1u << PD_JOBS_CHUNK_BITS)

/* A run of ids in a client's queue. */
typedef struct {
    uint64_t first; /* first id of the range */
    uint64_t count; /* ids left in it */
} pd_jobs_qrange_t;

/* First fetches of consecutive ids in one second (results' time-to-live). */
typedef struct {
    uint64_t first; /* first id */
    uint32_t count; /* consecutive ids fetched first in the same second */
    uint32_t sec;   /* that second + 1, as stored in pd_jobrec_t.fetched */
} pd_jobs_ttl_t;

/* A remembered submit token. */
typedef struct {
    uint64_t first;                      /* first id the submit got */
    uint32_t n;                          /* jobs it got */
    uint32_t sec;                        /* second it was accepted */
    uint32_t len;                        /* bytes in token */
    uint8_t token[PD_JOBS_TOKEN_MAX];    /* the token */
    char key[2 * PD_JOBS_TOKEN_MAX + 1]; /* token in hex: the hash key */
} pd_jobs_token_t;

/* A client's queue and its place in the round-robin. */
typedef struct {
    pd_jobs_qrange_t *q; /* ring of its queued ids */
    size_t qcap;         /* ring capacity (power of two) */
    size_t qhead;        /* index of the first range */
    size_t qlen;         /* ranges in the ring */
    uint64_t queued;     /* its jobs in state queued */
    uint64_t running;    /* its jobs in state running */
    uint32_t max_slots;  /* jobs it may have running at once; 0 = no cap */
    uint8_t cls;         /* slot class of these jobs: PD_JOBS_CPU or PD_JOBS_GPU */
    uint32_t index;      /* position in clients[] (pd_jobrec_t.client) */
    uint32_t prev;       /* previous client in the dispatch ring */
    uint32_t next;       /* next client in the dispatch ring */
    bool active;         /* in the dispatch ring */
    char key[];          /* hex of its routing id: its key in client_index */
} pd_jobs_client_t;

struct pd_jobs {
    pd_jobrec_t **chunks;                 /* chunk pointers; NULL = not allocated or freed */
    uint32_t *live;                       /* per chunk: jobs handed out and not forgotten */
    size_t nchunks;                       /* entries in chunks/live */
    uint64_t next_id;                     /* id the next submitted job gets */
    uint64_t max;                         /* bound on unfinished jobs */
    uint64_t unfinished;                  /* queued + running */
    uint64_t arg_bytes;                   /* bytes of the argument blobs of unfinished jobs */
    uint64_t max_arg_bytes;               /* bound on arg_bytes */
    uint64_t arg_freed;                   /* bytes of argument blobs freed, ever */
    uint64_t queued;                      /* jobs in state queued */
    uint64_t queued_cls[PD_JOBS_CLASSES]; /* of which, by slot class */
    pd_jobs_client_t **clients;           /* clients with unfinished jobs by index; NULL: free */
    uint32_t nclients;                    /* entries used in clients (free ones included) */
    uint32_t capclients;                  /* capacity of clients */
    zhashx_t *client_index;               /* hex routing id -> index + 1 */
    uint32_t cursor[PD_JOBS_CLASSES];     /* per class: client the next pop serves */
    uint32_t nactive[PD_JOBS_CLASSES];    /* per class: clients in its dispatch ring */
    uint64_t *shared_open;                /* per shared-data index: unfinished jobs naming it */
    uint32_t nshared;                     /* entries in shared_open */
    zhashx_t *fn_index;                   /* "owner\x01fn" -> index + 1 (see pd_jobs_intern) */
    char **fns;                           /* interned names by index */
    uint32_t nfns;                        /* names interned */
    uint32_t capfns;                      /* capacity of fns */
    uint64_t *fresh;                      /* ids that became final since the last clear */
    size_t nfresh;                        /* entries in fresh */
    size_t capfresh;                      /* capacity of fresh */
    bool fresh_sorted;                    /* fresh is sorted */
    pd_jobs_ttl_t *ttl;                   /* ring of first fetches, oldest first */
    size_t ttlcap;                        /* ring capacity (power of two) */
    size_t ttlhead;                       /* index of the oldest */
    size_t ttllen;                        /* entries */
    pd_buf_t seg;                         /* open result segment (empty: none) */
    uint64_t *segids;                     /* ids with an entry in seg */
    size_t nseg;                          /* entries in seg */
    size_t capseg;                        /* capacity of segids */
    pd_jobs_hooks_t hooks;                /* what the journal wants to hear */
    void *hooks_user;                     /* their user pointer */
    zhashx_t *tokens;                     /* token hex -> pd_jobs_token_t (owned by tokring) */
    pd_jobs_token_t **tokring;            /* tokens in arrival order (ring) */
    size_t tokcap;                        /* ring capacity (power of two) */
    size_t tokhead;                       /* index of the oldest */
    size_t toklen;                        /* tokens remembered */
    uint64_t pop_limit;                   /* ids at or past it are not popped (0: none) */
    pd_jobs_failure_t failed_ring[PD_JOBS_RECENT_FAILED]; /* the latest failures (ring) */
    uint64_t nfailed;                     /* failures ever recorded */
};

/* The record of id, or NULL when not known: pd_jobs_get, inlined for the
   table's own hot paths (pop, seal, results). */
static inline pd_jobrec_t *pd_jobs_find(const pd_jobs_t *j, uint64_t id)
{
    if (id == 0 || id >= j->next_id)
        return NULL;
    uint64_t c = (id - 1) >> PD_JOBS_CHUNK_BITS;
    if (c >= j->nchunks || !j->chunks[c])
        return NULL;
    pd_jobrec_t *job = &j->chunks[c][(id - 1) & (PD_JOBS_CHUNK - 1)];
    return job->state == PD_JOB_UNKNOWN ? NULL : job;
}

/* ---- pd_jobs.c: the table ----------------------------------------------- */

/* Makes sure chunks exist for ids first .. first+n-1. Returns 0 or PD_ENOMEM. */
int pd_jobs_chunks_reserve(pd_jobs_t *j, uint64_t first, uint64_t n);
/* The index of the interned (function, owner, limits) triple, added when
   new; sets *rc to 0 or PD_ENOMEM. */
uint32_t pd_jobs_intern(pd_jobs_t *j, const char *fn, const char *owner, const pd_limits_t *lim,
                        int *rc);
/* Makes id (its chunk allocated) a queued job of submit sub, of client
   `client` and interned function fn, whose argument is raw[0 .. rawlen)
   inside blob (args: the blob's bytes). Counts it live in its chunk; the
   caller counts it everywhere else. */
void pd_jobs_init_queued(pd_jobs_t *j, uint64_t id, const pd_jobs_submit_t *sub, uint32_t fn,
                         uint32_t client, pd_blob_t *blob, const uint8_t *raw, size_t rawlen);
/* Counts n more unfinished jobs naming shared data sh (index + 1; 0 =
   none). Returns 0 or PD_ENOMEM (n 0 only makes room). */
int pd_jobs_shared_add(pd_jobs_t *j, uint32_t sh, uint64_t n);
/* The common part of every final transition of queued or running job id:
   counters, its client, its argument, the fresh list. Returns its record. */
pd_jobrec_t *pd_jobs_finish(pd_jobs_t *j, uint64_t id, uint8_t state);
/* Clears a record and frees its chunk when it was the chunk's last. */
void pd_jobs_drop_record(pd_jobs_t *j, uint64_t id, pd_jobrec_t *job);

/* ---- pd_jobs_blobs.c: results ------------------------------------------- */

/* Makes job id (just made final with state) an entry of the open segment;
   pack() writes its value (about hint bytes). Returns 0 or PD_ENOMEM (then
   the job is final with a nil value and no entry). */
int pd_jobs_seg_add(pd_jobs_t *j, uint64_t id, pd_jobrec_t *job, uint8_t state,
                    void (*pack)(msgpack_packer *pk, const void *arg), const void *arg,
                    size_t hint);

/* ---- pd_jobs_queues.c: clients and their queues ------------------------- */

/* The record of this routing id's jobs of class cls, created when new;
   NULL when out of memory. */
pd_jobs_client_t *pd_jobs_client_get(pd_jobs_t *j, const void *rid, size_t len, int cls);
/* Puts the client in or out of the dispatch ring after its counts changed;
   frees it once it holds no unfinished job. cl must not be used after. */
void pd_jobs_client_refresh(pd_jobs_t *j, pd_jobs_client_t *cl);
/* Appends ids first .. first+count-1 to the client's queue. Returns 0 or
   PD_ENOMEM. */
int pd_jobs_queue_push(pd_jobs_client_t *cl, uint64_t first, uint64_t count);
/* Takes back what pd_jobs_queue_push(cl, first, count) appended (a submit
   that failed after it): ids never handed out. */
void pd_jobs_queue_unpush(pd_jobs_client_t *cl, uint64_t first, uint64_t count);

#endif
