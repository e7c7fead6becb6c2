/*  pd_slot: one slot = one supervised child process that runs tasks.

    The worker owns one pd_slot_t per CPU slot. pd_slot_new() starts the
    child by fork+exec of cfg->exe (the worker passes "/proc/self/exe", so the
    child is a fresh process even though the worker has ZeroMQ threads) with
    the arguments

        <exe> --slot <index> --cache <dir> --host <host> --parent <pid> [--gpu G]
              [--log-level L]

    and that program's main() must hand such a command line to
    pd_slot_main() (playdoh-worker's main.c does; so does the unit test
    test_pd_slot.c, which spawns itself). The child is kept warm between jobs.

    GPU slots. A slot configured with a GPU (cfg->has_gpu) is started with
    "--gpu G" and CUDA_VISIBLE_DEVICES=<cfg->cuda_visible> in its
    environment, so the driver shows it that one device as ordinal 0; it
    runs GPU jobs (tasks that launch kernels through playdoh_task.h's
    pd_cuda_*). A CPU slot may be given CUDA_VISIBLE_DEVICES="" so that it
    sees no GPU at all. When a CUDA error leaves a GPU slot's context
    unusable, the child finishes its group, says RESET and exits; the parent
    restarts it at once, with a fresh context, and logs why.

    Start handshake. A new child is not idle until it says READY: a child
    that dies before (the program is missing, a library it needs does not
    load, it exits at once) or stays silent for PD_SLOT_START_TIMEOUT_MS is
    a start failure, never a task's crash: the slot logs what failed and
    what to do, hands back any job it held unstarted, and starts a new
    child after a pause that doubles with each failure in a row (from
    PD_SLOT_START_PAUSE_MS to PD_SLOT_START_PAUSE_MAX_MS). After
    PD_SLOT_START_TRIES failures in a row the slot is unavailable
    (pd_slot_unavailable): the worker stops offering it to the broker. It
    keeps retrying; the first READY makes it available again.

    Pipe protocol. The child reads from fd 3 and writes to fd 4; its stdout
    is redirected to its stderr, so a task's printf() cannot corrupt the
    pipe, and its stdin is /dev/null. Each message is a frame: a uint32
    little-endian length, then that many bytes holding one msgpack value.

      parent -> child   a group of jobs, run in order:
                        [[id, mod_hash, kind, mod_name, fn, arg, shared,
                          limits], ...]
                        (arg: the job's argument, any msgpack value; shared:
                        the hash of the map's shared data, or nil; limits:
                        [memory, cpu_s, output], 0 = none); a job with a
                        CUDA module has [..., shared, cu_hash, cu_name,
                        limits]
      child -> parent   [4, version]  READY: the child is up (sent once,
                                 first; version: PD_SLOT_PIPE_VERSION)
                        [0, id]  LOAD: about to load (maybe compile) a module
                                 for job id (and on a GPU slot its CUDA
                                 module: NVRTC, then the driver); the parent
                                 allows PD_SLOT_LOAD_TIMEOUT_MS for it
                        [1, id]  BEGIN: the module is loaded, the task starts
                                 (sent only after a LOAD)
                        [2, id, ok, value_or_err, us]  RESULT of job id:
                                 ok true: value (the task's msgpack result);
                                 ok false: {code: "PD_E...", msg, slot};
                                 us: the task's run time in microseconds
                        [3, 0]   RESET: the child exits now, between
                                 groups (its GPU context broke); a group
                                 sent meanwhile never started and is
                                 handed back whole

    The child writes each RESULT as soon as its job is done. When the child
    dies, the first job of the group without a RESULT is the one that killed
    it: it fails (PD_ECRASH), and the jobs after it go back to the worker's
    queue without counting an attempt (sink.requeue). A job's time-out runs
    from the previous RESULT (or the group's sending, or BEGIN); past it the
    parent kills the child (PD_ETIMEDOUT). After any death the slot starts a
    new child; a child that dies while idle is restarted after a pause.

    Group size adapts (pd_slot_group_size): up to PD_SLOT_GROUP_MAX jobs when
    they take microseconds, one at a time when they take milliseconds, so
    short jobs stream and long ones spread over the slots.

    The next group waits in the pipe (pd_slot_can_take): while the child runs
    the last job of its group, and jobs of this slot take at most
    PD_SLOT_AHEAD_MAX_US, the parent may send the next group at once, so that
    the child starts it the moment the running job ends instead of waiting
    for its result to reach the worker and the next group to come back (the
    hand-off costs 0.3 ms on Linux, about 1.7 ms under Wine). A job sent
    ahead counts as the group's: if the child dies, it comes back unstarted.
*/
#ifndef PD_SLOT_H
#define PD_SLOT_H

#include "pd_codec.h"
#include "pd_limits.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_SLOT_GROUP_MAX 64                /* jobs sent to a child at once */
#define PD_SLOT_GROUP_TARGET_US 2000        /* work per group aimed at */
#define PD_SLOT_GROUP_MAX_BYTES (1u << 20)  /* argument bytes per group (soft) */
#define PD_SLOT_LOAD_TIMEOUT_MS 300000      /* to compile and load a module */
#define PD_SLOT_START_TIMEOUT_MS 60000      /* for a new child to say READY */
#define PD_SLOT_START_TRIES 3               /* start failures in a row: unavailable */
#define PD_SLOT_START_PAUSE_MS 500          /* before the first retry; doubles */
#define PD_SLOT_START_PAUSE_MAX_MS 30000    /* the longest pause between retries */
#define PD_SLOT_PIPE_VERSION 2              /* READY's version: the frames below */
#define PD_SLOT_AHEAD_MAX_US 100000         /* jobs longer than this get no group sent ahead */
#define PD_SLOT_AHEAD_MAX_BYTES (24u << 10) /* a group sent ahead, at most: two fit in a
                                               pipe's buffer, so the write never waits */
#define PD_SLOT_JOB_FRAME_BYTES 400u        /* a job's frame without its argument, at most */

/* A job as the worker keeps it. */
typedef struct {
    uint64_t id;          /* broker's job id */
    uint64_t attempt;     /* broker's attempt number, echoed in `done` */
    uint64_t timeout_ms;  /* 0 = none */
    char mod[65];         /* module hash */
    char kind[4];         /* "c", "so", "pkg" or "b" (built-in) */
    char name[128];       /* module name, for messages */
    char fn[128];         /* task function */
    char shared[65];      /* hash of the map's shared data; empty = none */
    bool gpu;             /* runs on a GPU slot */
    char cu[65];          /* its CUDA module's hash; "" when none */
    char cu_name[128];    /* that module's name, for messages */
    uint8_t *arg;         /* the argument's msgpack bytes, owned */
    size_t arg_len;       /* their length */
    pd_limits_t limits;   /* what it may take here (its request, or the owner's defaults);
                             output 0: PD_LIMITS_DEFAULT_OUTPUT */
} pd_job_t;

/* A job with a copy of arg (len bytes); other fields zeroed. NULL when out
   of memory. */
pd_job_t *pd_job_new(const void *arg, size_t len);
void pd_job_destroy(pd_job_t **p);

/* Where a slot delivers outcomes. Called from pd_slot_* calls only. */
typedef struct {
    /* A job finished. ok: val is its result (msgpack); else val is the error
       map {code, msg, slot} (msgpack). job and val are borrowed for the
       call; the slot destroys the job afterwards. */
    void (*result)(void *user, const pd_job_t *job, bool ok, const uint8_t *val, size_t len,
                   uint64_t us);
    /* A job handed back unstarted (its group was cut short); the callee
       owns it now. Jobs of one group come back last first, so pushing each
       at the front of a queue keeps their order. */
    void (*requeue)(void *user, pd_job_t *job);
    void *user;
} pd_slot_sink_t;

typedef struct {
    int index;             /* slot index, reported in errors */
    const char *exe;       /* program to exec (copied) */
    const char *cache_dir; /* module cache (copied) */
    const char *host;      /* host name, for messages (copied) */
    const char *log_level; /* passed to the child, or NULL (copied) */
    bool has_gpu;          /* a GPU slot (false: a CPU slot, the zero default) */
    int gpu;               /* when has_gpu: the worker's number of the slot's GPU */
    const char *cuda_visible; /* CUDA_VISIBLE_DEVICES for the child (copied); NULL:
                              the worker's environment unchanged */
    pd_slot_sink_t sink;   /* where results go */
} pd_slot_config_t;

typedef struct pd_slot pd_slot_t;

/* Creates the slot and starts its child. Returns NULL with *err (if not
   NULL) set to PD_ENOMEM or PD_ESYS when no child could be started. */
pd_slot_t *pd_slot_new(const pd_slot_config_t *cfg, int *err);
/* Kills and reaps the child; jobs it holds are destroyed without a report
   (use pd_slot_abort or let results arrive first). Sets *p to NULL; safe twice. */
void pd_slot_destroy(pd_slot_t **p);

/* The fd to poll for reading (the child's result pipe), or -1 while the
   child is being restarted. */
int pd_slot_fd(pd_slot_t *s);
/* True when the child is running, has said READY and holds no job. */
bool pd_slot_idle(pd_slot_t *s);
/* True after PD_SLOT_START_TRIES start failures in a row, until a child
   says READY: the slot cannot run jobs and should not be offered. */
bool pd_slot_unavailable(pd_slot_t *s);
/* Start failures since the last child that said READY. */
int pd_slot_start_failures(pd_slot_t *s);
/* True when the slot may be sent a group now: it is idle, or its child runs
   the last job of its group, has nothing sent ahead, and its jobs are short
   enough (PD_SLOT_AHEAD_MAX_US) for the next group to wait behind it. */
bool pd_slot_can_take(pd_slot_t *s);
/* The owner lowered the slots below this one: its running job finishes,
   and the jobs after it in its group (sent ahead) come back unstarted
   through sink.requeue; then the slot stays dead (pd_slot_retire). */
void pd_slot_finish(pd_slot_t *s);
/* How many jobs the next group should hold (1 .. PD_SLOT_GROUP_MAX), by
   the run times measured on this slot. */
size_t pd_slot_group_size(pd_slot_t *s);
/* True when the run times the slot measured are of job's module and
   function: only then do they say how long job takes (a batch of long jobs
   after tiny ones must not go to one slot as one group, where no other
   slot or worker could take them). */
bool pd_slot_knows(pd_slot_t *s, const pd_job_t *job);
/* The child's pid, or 0 while it is being restarted. */
int pd_slot_pid(pd_slot_t *s);

/* Sends a group of n jobs (1 .. PD_SLOT_GROUP_MAX) to a slot that can take
   it (pd_slot_can_take); takes ownership of the jobs. Returns 0, or PD_ESYS when the child could not take
   them (it died): the jobs are then handed back through sink.requeue. */
int pd_slot_send(pd_slot_t *s, pd_job_t **jobs, size_t n);

/* Reads what the child wrote, delivering results; handles the child's death
   (EOF). Call when pd_slot_fd() polls readable. */
void pd_slot_on_readable(pd_slot_t *s);

/* When (CLOCK_MONOTONIC, ms) the slot next needs pd_slot_tick(): a job's
   time-out, a new child's start time-out or a restart; INT64_MAX when
   nothing is due. */
int64_t pd_slot_deadline(pd_slot_t *s);
/* Enforces time-outs (a job's, or a new child's READY) and restarts a
   dead child when due. */
void pd_slot_tick(pd_slot_t *s);

/* Cancels the jobs for which is_cancelled(user, id) is true: when the child
   holds one, the child is killed and restarted, cancelled jobs are
   destroyed without a report and the others are handed back unstarted.
   Returns how many jobs were cancelled. */
size_t pd_slot_cancel(pd_slot_t *s, bool (*is_cancelled)(void *user, uint64_t id), void *user);

/* Drops every job without a report, killing and restarting a busy child. */
void pd_slot_abort(pd_slot_t *s);

/* Hands every job the slot holds, the running one included, back through
   sink.requeue (unreported: the machine's owner took the slot back), kills
   the child, and restarts it when `restart` (else the slot stays dead until
   pd_slot_destroy). */
void pd_slot_retire(pd_slot_t *s, bool restart);

/* True when the slot holds jobs (running or waiting in its group). */
bool pd_slot_busy(pd_slot_t *s);

/* Suspends (SIGSTOP to the child's process group) or resumes (SIGCONT) the
   child. A suspended job's time-out stands still: its deadline moves by
   the time spent suspended. Idempotent. */
void pd_slot_suspend(pd_slot_t *s, bool suspend);
bool pd_slot_suspended(pd_slot_t *s);

/* ---- the pipe's frames, decoded (pure functions: tests and fuzzing) ---- */

/* What a child reported: LOAD [0, id], BEGIN [1, id], RESULT
   [2, id, ok, value_or_err, us], RESET [3, 0] (its GPU context broke) or
   READY [4, version]. val points into the frame. */
typedef struct {
    uint64_t tag;        /* 0 LOAD, 1 BEGIN, 2 RESULT, 3 RESET, 4 READY */
    uint64_t id;         /* job id (READY: the pipe version) */
    bool ok;             /* RESULT: success */
    const uint8_t *val;  /* RESULT: the value or error map (msgpack) */
    size_t vlen;         /* bytes at val */
    uint64_t us;         /* RESULT: run time */
} pd_slot_report_t;

/* One job of a group frame, as the child reads it. arg points into the
   frame. */
typedef struct {
    uint64_t id;        /* job id */
    char mod[65];       /* module hash */
    char kind[4];       /* "c", "so" or "b" (built-in) */
    char name[128];     /* module name */
    char fn[128];       /* task function */
    const uint8_t *arg; /* the argument (msgpack) */
    size_t alen;        /* bytes at arg */
    char shared[65];    /* the shared data's hash, or "" */
    char cu[65];        /* the CUDA module's hash, or "" */
    char cu_name[128];  /* the CUDA module's name, or "" */
    pd_limits_t limits; /* what the job may take (0 = none; output 0 = the default) */
} pd_slot_order_t;

/* Finds the frame at the start of buf[0..len): returns 1 with *flen its
   length (its bytes follow the 4-byte prefix), 0 when more bytes are
   needed, PD_ETOOBIG when the prefix announces more than PD_MAX_FRAME. */
int pd_slot_frame_next(const uint8_t *buf, size_t len, size_t *flen);
/* Decodes a child's frame; returns 0 or PD_EPROTO with *why set. */
int pd_slot_report_parse(const uint8_t *p, size_t len, pd_slot_report_t *out, const char **why);
/* Decodes the next job of a group frame at the cursor; returns 0 or
   PD_EPROTO. */
int pd_slot_job_parse(pd_rd_t *r, pd_slot_order_t *o);

/* Monotonic clock in milliseconds, the base of pd_slot_deadline(). */
int64_t pd_slot_now_ms(void);

/* The child's entry point: runs jobs from fd 3 until EOF. Returns the exit
   status for main(). argv as built by pd_slot_new(). */
int pd_slot_main(int argc, char **argv);
/* True when argv is a slot child's command line (argv[1] is "--slot"). */
bool pd_slot_is_child(int argc, char **argv);

#endif
