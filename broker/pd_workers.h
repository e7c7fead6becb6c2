/*  pd_workers: the broker's registry of workers and their credit.

    A worker is known by its ZeroMQ routing id from its `ready` until it says
    `bye` or falls silent. For each one the registry keeps its slots, the jobs
    in flight on it (so that a lost worker's jobs are requeued without
    scanning the job table), the modules already sent to it, and its credit:
    at most (cpus - nodes) x depth unfinished jobs, where nodes counts the
    slots held by nodes of synchronous tasks and depth adapts to an EWMA of
    the job run times it reports (about PD_WORKERS_TARGET_US of queued work
    per slot, between 1 and 512 jobs). GPU slots have their own credit,
    gpus x PD_WORKERS_GPU_DEPTH: GPU jobs are few and long, so each GPU slot
    holds the job it runs and the next one, never more. The registry also
    keeps what each worker said about its GPUs (name, memory, compute
    capability), for the cluster view.

    pd_worker_t is a plain record the broker reads; the in-flight list and
    the module set change only through the functions here.
*/
#ifndef PD_WORKERS_H
#define PD_WORKERS_H

#include "pd_auth.h"
#include "pd_jobs.h"

#include "pd_limits.h"

#include <stdbool.h>
#include <stdint.h>

#define PD_WORKERS_TARGET_US 2000.0 /* queued work aimed at per slot */
#define PD_WORKERS_DEPTH_MIN 2
#define PD_WORKERS_DEPTH_MAX 512
#define PD_WORKERS_DEPTH_START 8
#define PD_WORKERS_MAX_RID 255
#define PD_WORKERS_MAX_GPU_NAMES 16 /* GPU names kept per worker */
#define PD_WORKERS_GPU_DEPTH 2      /* GPU jobs in flight per GPU slot */
#define PD_WORKERS_GPU_NAME 96      /* bytes of a GPU name, with its NUL */

/* One GPU a worker offers, as its `ready` described it. */
typedef struct {
    char name[PD_WORKERS_GPU_NAME]; /* e.g. "NVIDIA H100 80GB HBM3" ("" if not said) */
    uint64_t mem;                   /* bytes of memory (0 if not said) */
    uint8_t cc_major, cc_minor;     /* compute capability (0.0 if not said) */
} pd_gpu_desc_t;

typedef struct {
    uint32_t index;                    /* position in the registry (jobs refer to it) */
    uint8_t rid[PD_WORKERS_MAX_RID];   /* ZeroMQ routing id */
    uint32_t ridlen;                   /* bytes in rid */
    char host[64];                     /* host name it reported */
    char platform[32];                 /* "linux-x86_64", "windows-x86_64" ("" from older workers) */
    pd_limits_t limits;                /* its owner's maxima for one job (0: none) */
    char version[16];                  /* Playdoh version it runs ("" from workers before 0.1) */
    char key[PD_KEY_TXT];              /* its public key ("" without CURVE) */
    int64_t pid;                       /* its process id */
    uint32_t cpus;                     /* CPU slots offered */
    uint32_t gpus;                     /* GPU slots offered */
    pd_gpu_desc_t *gpu;                /* what it said of its GPUs (ngpu entries), owned */
    uint32_t ngpu;                     /* entries in gpu */
    int64_t last_recv;                 /* ms (monotonic) of its last message */
    int64_t last_send;                 /* ms of the broker's last message to it */
    int64_t joined;                    /* ms (monotonic) of its first `ready` */
    double ewma_us;                    /* smoothed job run time, µs (< 0: none yet) */
    uint32_t depth;                    /* jobs in flight allowed per CPU slot */
    uint64_t *inflight;                /* ids of its running jobs */
    uint32_t ninflight;                /* entries in inflight (both classes) */
    uint32_t ngpuinflight;             /* of which GPU jobs */
    uint32_t capinflight;              /* capacity of inflight */
    uint8_t *mods_sent;                /* bit set of module indexes sent to it */
    uint32_t mods_bytes;               /* bytes in mods_sent */
    uint8_t *shared_sent;              /* bit set of shared-data indexes sent to it */
    uint32_t shared_bytes;             /* bytes in shared_sent */
    uint64_t done;                     /* results accepted from it */
    uint64_t requeued;                 /* jobs it handed back (owner took slots) */
    uint32_t busy;                     /* slots running a job, as it last reported */
    uint32_t wqueued;                  /* jobs waiting in its own queue, as reported */
    double load;                       /* the machine's own load, as reported (< 0: unknown) */
    char owner[16];                    /* idle-policy state it reported ("", "idle", "owner") */
    char gpu_names[PD_WORKERS_MAX_GPU_NAMES][64]; /* its GPUs' names, as reported */
    uint32_t ngpu_names;               /* entries in gpu_names */
    char slurm_job[32];                /* Slurm job id of a pilot worker, or "" */
    char slurm_step[32];               /* its Slurm step id ("batch", "0"...), or "" */
    char slurm_array[48];              /* its job array task "ARRAYJOB_TASK", or "" */
    uint32_t nodes;                    /* CPU slots held by nodes of synchronous tasks */
    uint32_t gnodes;                   /* GPU slots held by nodes of GPU tasks */
    uint32_t share;                    /* jobs it may get in this dispatch (pd_workers_share) */
    int64_t steal_at;                  /* ms of the `steal` not answered yet (0: none) */
    int64_t progress_ms;               /* ms of its last result, or of a job sent to it idle */
    uint64_t stolen;                   /* jobs it gave back for idle slots elsewhere */
} pd_worker_t;

typedef struct pd_workers pd_workers_t;

pd_workers_t *pd_workers_new(void);
/* Frees every worker (their in-flight lists are simply dropped). */
void pd_workers_destroy(pd_workers_t **p);

/* The worker with this routing id, or NULL. */
pd_worker_t *pd_workers_find(pd_workers_t *w, const void *rid, size_t ridlen);
/* Registers a worker (routing id at most PD_WORKERS_MAX_RID bytes, not yet
   registered). Returns it (owned by the registry) or NULL when out of memory. */
pd_worker_t *pd_workers_add(pd_workers_t *w, const void *rid, size_t ridlen, int64_t now_ms);
/* Removes a worker whose in-flight list is empty; sets *wk to NULL. */
void pd_workers_remove(pd_workers_t *w, pd_worker_t **wk);
/* The worker at registry index i, or NULL (for iteration up to pd_workers_span). */
pd_worker_t *pd_workers_at(pd_workers_t *w, uint32_t i);
uint32_t pd_workers_span(const pd_workers_t *w);
uint32_t pd_workers_count(const pd_workers_t *w);
/* CPU and GPU slots of all registered workers. */
uint64_t pd_workers_cpus(const pd_workers_t *w);
uint64_t pd_workers_gpus(const pd_workers_t *w);
/* Records a change of a worker's slots. */
void pd_workers_set_slots(pd_workers_t *w, pd_worker_t *wk, uint32_t cpus, uint32_t gpus);
/* True once any worker has offered a GPU slot since the registry was made. */
bool pd_workers_gpus_ever(const pd_workers_t *w);

/* Platforms. A worker says its own when it registers ("linux-x86_64",
   "windows-x86_64"; none from workers before 0.2, which ran on Linux). A
   prebuilt module runs only on its platform (pd_mod_t.platform); source
   runs on every one. */
#define PD_WORKERS_PLATFORMS 8 /* distinct platforms remembered */
/* wk's platform. */
const char *pd_worker_platform(const pd_worker_t *wk);
/* Remembers that a worker of wk's platform joined. */
void pd_workers_note_platform(pd_workers_t *w, const pd_worker_t *wk);
/* True once a worker of this platform has joined since the registry was
   made. */
bool pd_workers_platform_ever(const pd_workers_t *w, const char *platform);
/* The platforms seen, as "linux-x86_64, windows-x86_64" ("none yet"). */
void pd_workers_platform_list(const pd_workers_t *w, char *out, size_t cap);
/* True when wk can run code built for platform ("" = source: any). */
bool pd_worker_runs(const pd_worker_t *wk, const char *platform);
/* Replaces what wk said about its GPUs with a copy of desc[0 .. n). Returns
   0 or PD_ENOMEM (then wk keeps no description). */
int pd_worker_set_gpu_desc(pd_worker_t *wk, const pd_gpu_desc_t *desc, uint32_t n);

/* Jobs of class cls (PD_JOBS_CPU: (cpus - nodes) x depth; PD_JOBS_GPU: (gpus -
   gnodes) x PD_WORKERS_GPU_DEPTH) the worker may still be sent now. */
uint32_t pd_worker_credit(const pd_worker_t *wk, int cls);
/* Next worker with credit for class cls, round-robin (one cursor per class)
   from the last one returned; NULL when none has any. */
pd_worker_t *pd_workers_next_with_credit(pd_workers_t *w, int cls);
/* CPU slots not held by nodes of synchronous tasks (0 when the owner lowered
   cpus below them); the CPU credit is counted over these. */
uint32_t pd_worker_free_slots(const pd_worker_t *wk);
/* GPU slots not held by nodes of GPU tasks; the GPU credit is counted over
   these. */
uint32_t pd_worker_free_gpus(const pd_worker_t *wk);
/* Fair shares. When fewer jobs of class cls wait (ready) than the workers'
   credit could take, sending each worker its whole credit in turn would
   give the first ones everything while others sit idle (six jobs of 1 s
   on two workers of one slot: all six on one). Instead the jobs are poured
   like water: each worker is filled up to the same level of jobs in flight
   per free slot, the least loaded first, each within its credit. Sets
   every worker's share (ready or more in all; its whole credit when ready
   covers every credit). */
void pd_workers_share(pd_workers_t *w, int cls, uint64_t ready);
/* Next worker with credit and share for class cls, round-robin like
   pd_workers_next_with_credit; NULL when none has both. */
pd_worker_t *pd_workers_next_with_share(pd_workers_t *w, int cls);

/* Work stealing. A job sent to a worker waits in that worker's queue until
   one of its slots is free; when nothing of class cls waits at the broker
   while slots are idle elsewhere, those queued jobs are better run there.
   The broker asks the worker for them (`steal`, docs/protocol.md). */
#define PD_WORKERS_STEAL_MIN_US 10000.0 /* queued work per slot worth a steal */
/* Slots of class cls running nothing: fewer jobs in flight than free
   slots, summed over the workers. */
uint32_t pd_workers_idle_slots(const pd_workers_t *w, int cls);
/* The worker with the most jobs of class cls queued beyond its slots (in
   flight past its free slots) worth taking back: their wait, at its
   measured run time, is at least PD_WORKERS_STEAL_MIN_US per slot, or no
   run time is measured yet, or it has returned nothing for that long (its
   measure is of other jobs: a batch of 3 s jobs after tiny ones); and no
   steal is outstanding there at now_ms (steal_at 0, or older than
   retry_ms). Sets *n to its queued jobs and
   returns it, or NULL when none. A worker with queued jobs has no idle
   slot: the slots pd_workers_idle_slots counts are other workers'. The
   caller sets steal_at of the worker it asks. */
pd_worker_t *pd_workers_steal_from(pd_workers_t *w, int cls, int64_t now_ms, int64_t retry_ms,
                                   uint32_t *n);

/* Folds one measured run time into the worker's depth. */
void pd_worker_observe(pd_worker_t *wk, uint64_t us);

/* Adds job id (running, record job) to the worker's in-flight list and sets
   job->worker/wpos; job->gpu says which credit it takes. Returns 0 or
   PD_ENOMEM. */
int pd_worker_track(pd_worker_t *wk, pd_jobrec_t *job, uint64_t id);
/* Removes job id from the worker's in-flight list in O(1). */
void pd_worker_untrack(pd_worker_t *wk, pd_jobs_t *jobs, pd_jobrec_t *job);

bool pd_worker_has_mod(const pd_worker_t *wk, uint32_t mod);
/* Notes that module mod was sent; returns 0 or PD_ENOMEM. */
int pd_worker_set_mod(pd_worker_t *wk, uint32_t mod);
/* Forgets the modules and shared data sent (after a re-registration). */
void pd_worker_clear_mods(pd_worker_t *wk);

bool pd_worker_has_shared(const pd_worker_t *wk, uint32_t i);
/* Notes that shared-data index i was sent (on) or dropped (off); returns 0
   or PD_ENOMEM. */
int pd_worker_set_shared(pd_worker_t *wk, uint32_t i, bool on);

#endif
