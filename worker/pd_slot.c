/*  pd_slot: the parent-side handle of a slot child and the child's main loop.

    Parent side: spawn (fork+exec), wait for the child's READY (a child that
    dies before it is a start failure, retried with a growing pause, and the
    slot becomes unavailable after several in a row), send a group of jobs,
    read results as they come, detect the child's death or a time-out,
    report the job that was running, hand the unstarted ones back and
    restart the child. Child side
    (pd_slot_main): read a group, run each job through the module cache and
    the task API, write each result at once. The pipe protocol is described
    in pd_slot.h. A GPU slot's child also owns a pd_gpurt_t: it compiles and
    loads a job's CUDA module during the LOAD phase, before the task starts,
    so that compile time is not charged to the task's time-out and a module
    that does not compile fails the job with NVRTC's log.
*/
#include "pd_slot.h"
#include "pd_codec.h"
#include "pd_error.h"
#include "pd_exec.h"
#include "pd_json.h"
#include "pd_log.h"
#include "pd_gpurt.h"
#include "pd_modcache.h"
#include "pd_pipe.h"
#include "pd_task.h"

#include "pd_plat.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_CHILD_IN PD_PIPE_CHILD_IN   /* child's fd for job frames */
#define S_CHILD_OUT PD_PIPE_CHILD_OUT /* child's fd for result frames */
#define S_RESPAWN_PAUSE_MS 1000
#define S_REAP_GRACE_MS 2000
#define S_MEM_CHECK_MS 50        /* a C job's memory is measured this often */
#define S_MEM_CHECK_GROUP_MS 250 /* an exec job's (every process of its group) this often */

enum {
    S_FRAME_LOAD = 0,
    S_FRAME_BEGIN = 1,
    S_FRAME_RESULT = 2,
    S_FRAME_RESET = 3,
    S_FRAME_READY = 4
};

/* Why a child is being replaced. */
typedef enum {
    S_DIED,     /* it died (EOF on its pipe) */
    S_TIMEOUT,  /* a job ran past its time-out, or a new child did not say
                   READY in time: we killed it */
    S_BADFRAME, /* it wrote something we cannot read: we killed it */
    S_CANCEL,   /* a job it held was cancelled: we killed it */
    S_MEMORY,   /* its job went over its memory limit: we killed it */
    S_ABORT     /* the worker dropped every job: we killed it */
} s_cause_t;

struct pd_slot {
    int index;             /* slot index */
    char *exe;             /* program exec'ed for the child */
    char *cache_dir;       /* module cache directory */
    char *host;            /* host name for messages */
    char *log_level;       /* child's log level, or NULL */
    bool has_gpu;          /* a GPU slot */
    int gpu;               /* when has_gpu: the worker's number of its GPU */
    char *cuda_visible;    /* "CUDA_VISIBLE_DEVICES=..." for the child, or NULL */
    pd_slot_sink_t sink;   /* result delivery */
    int pid;               /* child's pid; 0 while dead */
    int to_child;          /* write end of the job pipe; -1 while dead */
    int from_child;        /* read end of the result pipe (non-blocking); -1 while dead */
    int64_t spawned_ms;    /* when the child was started */
    int64_t respawn_ms;    /* when a dead child is restarted */
    bool ready;            /* the child said READY: it takes jobs */
    int start_failures;    /* children in a row that failed to start */
    char bad[160];         /* why a frame was refused, when it needs numbers */
    pd_job_t **group;      /* jobs sent, owned; NULL when idle */
    size_t ngroup;         /* jobs in group */
    size_t cur;            /* first job without a result */
    int64_t deadline_ms;   /* time-out of the current job; INT64_MAX = none */
    bool loading;          /* the child announced LOAD for the current job */
    bool reset;            /* the child said RESET: it exits between groups */
    bool finishing;        /* the slot is over the owner's limit: after the running
                              job, the jobs sent ahead come back (pd_slot_finish) */
    size_t finish_at;      /* ... once cur reaches this */
    double avg_us;         /* moving average of job run times; 0 = unknown */
    char avg_mod[65];      /* ... of jobs of this module ("" = none yet) */
    char avg_fn[128];      /* ... and this function */
    uint8_t *rbuf;         /* bytes read from the child, owned */
    size_t rlen;           /* bytes in rbuf */
    size_t rcap;           /* capacity of rbuf */
    bool suspended;        /* the child was sent SIGSTOP */
    int64_t suspended_ms;  /* when it was */
    int64_t mem_check_ms;  /* when the running job's memory is measured next; INT64_MAX:
                              never (no memory limit) */
    uint64_t mem_seen;     /* what the last measurement over the limit found, bytes */
};

int64_t pd_slot_now_ms(void) { return zclock_mono(); }

/* ---- jobs --------------------------------------------------------------- */

pd_job_t *pd_job_new(const void *arg, size_t len)
{
    pd_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->arg = malloc(len ? len : 1);
    if (!j->arg) {
        free(j);
        return NULL;
    }
    if (len)
        memcpy(j->arg, arg, len);
    j->arg_len = len;
    return j;
}

void pd_job_destroy(pd_job_t **p)
{
    if (!p || !*p)
        return;
    free((*p)->arg);
    free(*p);
    *p = NULL;
}

/* ---- frames ------------------------------------------------------------- */

/* Packs the error map {code, msg, slot}. */
static void s_pack_err(msgpack_packer *pk, int code, const char *msg, int slot)
{
    msgpack_pack_map(pk, 3);
    pd_pack_kv_str(pk, "code", pd_err_name(code));
    pd_pack_kv_str(pk, "msg", msg);
    pd_pack_kv_int(pk, "slot", slot);
}

/* ---- parent side -------------------------------------------------------- */

static void s_close_fds(pd_slot_t *s)
{
    pd_plat_close(s->to_child);
    pd_plat_close(s->from_child);
    s->to_child = s->from_child = -1;
}

/* Starts a child; returns 0 or PD_ESYS (then the slot stays dead). */
static int s_spawn(pd_slot_t *s)
{
    assert(s->pid == 0);
    char idx[16], parent[24], gpu[16];
    snprintf(idx, sizeof idx, "%d", s->index);
    snprintf(parent, sizeof parent, "%d", pd_plat_getpid());
    snprintf(gpu, sizeof gpu, "%d", s->gpu);
    /* argv[0] names the program in ps; /proc/self/exe says nothing. */
    char *argv0 = strcmp(s->exe, "/proc/self/exe") == 0 ? "playdoh-worker" : s->exe;
    char *argv[14] = {argv0, "--slot", idx, "--cache", s->cache_dir, "--host", s->host,
                      "--parent", parent, NULL, NULL, NULL, NULL, NULL};
    int argc = 9;
    if (s->has_gpu) {
        argv[argc++] = "--gpu";
        argv[argc++] = gpu;
    }
    if (s->log_level) {
        argv[argc++] = "--log-level";
        argv[argc++] = s->log_level;
    }
    int to_child, from_child;
    int pid = pd_plat_spawn(s->exe, argv, s->cuda_visible, &to_child, &from_child);
    if (pid < 0)
        return PD_ESYS; /* errno says why; the callers log it */
    s->pid = pid;
    s->ready = false;
    s->to_child = to_child;
    s->from_child = from_child;
    s->spawned_ms = pd_slot_now_ms();
    s->rlen = 0;
    s->reset = false;
    s->suspended = false;
    pd_log_debug("slot %d: started process %ld", s->index, (long) pid);
    return 0;
}

pd_slot_t *pd_slot_new(const pd_slot_config_t *cfg, int *err)
{
    assert(cfg && cfg->exe && cfg->cache_dir && cfg->host);
    assert(cfg->sink.result && cfg->sink.requeue);
    int code = PD_ENOMEM;
    pd_slot_t *s = calloc(1, sizeof *s);
    if (!s)
        goto fail;
    s->to_child = s->from_child = -1;
    s->index = cfg->index;
    s->sink = cfg->sink;
    s->deadline_ms = INT64_MAX;
    s->mem_check_ms = INT64_MAX;
    s->exe = strdup(cfg->exe);
    s->cache_dir = strdup(cfg->cache_dir);
    s->host = strdup(cfg->host);
    s->log_level = cfg->log_level ? strdup(cfg->log_level) : NULL;
    s->has_gpu = cfg->has_gpu;
    s->gpu = cfg->gpu;
    if (!s->exe || !s->cache_dir || !s->host || (cfg->log_level && !s->log_level))
        goto fail;
    if (cfg->cuda_visible &&
        asprintf(&s->cuda_visible, "CUDA_VISIBLE_DEVICES=%s", cfg->cuda_visible) < 0) {
        s->cuda_visible = NULL;
        goto fail;
    }
    if ((code = s_spawn(s)) != 0) {
        pd_log_error("slot %d: cannot start a slot process: %s", s->index, strerror(errno));
        goto fail;
    }
    return s;
fail:
    if (err)
        *err = code;
    pd_slot_destroy(&s);
    return NULL;
}

/* Removes what the child's exec jobs left in its scratch directory (a job
   killed mid-run, a slot that crashed) once the child is gone. */
static void s_child_gone(pd_slot_t *s)
{
    const char *keep = getenv("PLAYDOH_KEEP_SCRATCH");
    if (s->pid <= 0 || (keep && *keep && strcmp(keep, "0") != 0))
        return;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/scratch/slot-%d", s->cache_dir, s->pid);
    pd_plat_remove_tree(dir);
}

/* Kills the child (if alive) and waits for it. */
static int s_kill_reap(pd_slot_t *s)
{
    int status = 0;
    if (s->pid > 0) {
        /* The whole group: commands an exec job started die with the slot. */
        pd_plat_kill_tree(s->pid);
        pd_plat_wait(s->pid, &status, true);
        s_child_gone(s);
    }
    s->pid = 0;
    s_close_fds(s);
    return status;
}

static void s_drop_group(pd_slot_t *s)
{
    for (size_t i = 0; i < s->ngroup; i++)
        pd_job_destroy(&s->group[i]);
    free(s->group);
    s->group = NULL;
    s->ngroup = s->cur = 0;
    s->deadline_ms = INT64_MAX;
    s->mem_check_ms = INT64_MAX;
    s->loading = false;
    s->finishing = false;
}

void pd_slot_destroy(pd_slot_t **p)
{
    if (!p || !*p)
        return;
    pd_slot_t *s = *p;
    s_kill_reap(s);
    s_drop_group(s);
    free(s->rbuf);
    free(s->exe);
    free(s->cache_dir);
    free(s->host);
    free(s->log_level);
    free(s->cuda_visible);
    free(s);
    *p = NULL;
}

int pd_slot_fd(pd_slot_t *s) { return s->pid > 0 ? s->from_child : -1; }
bool pd_slot_idle(pd_slot_t *s) { return s->pid > 0 && s->ready && s->ngroup == 0; }

void pd_slot_finish(pd_slot_t *s)
{
    if (s->ngroup - s->cur > 1) {
        s->finishing = true;
        s->finish_at = s->cur + 1;
    }
}

bool pd_slot_can_take(pd_slot_t *s)
{
    if (pd_slot_idle(s))
        return true;
    return s->pid > 0 && s->ready && !s->reset && !s->suspended && !s->loading &&
           s->ngroup - s->cur == 1 && s->avg_us > 0 && s->avg_us <= PD_SLOT_AHEAD_MAX_US;
}
bool pd_slot_unavailable(pd_slot_t *s) { return s->start_failures >= PD_SLOT_START_TRIES; }
int pd_slot_start_failures(pd_slot_t *s) { return s->start_failures; }
int pd_slot_pid(pd_slot_t *s) { return (int) s->pid; }

bool pd_slot_knows(pd_slot_t *s, const pd_job_t *job)
{
    return strcmp(s->avg_mod, job->mod) == 0 && strcmp(s->avg_fn, job->fn) == 0;
}

size_t pd_slot_group_size(pd_slot_t *s)
{
    if (s->avg_us <= 0)
        return 1;
    double n = PD_SLOT_GROUP_TARGET_US / (s->avg_us < 1 ? 1 : s->avg_us);
    if (n < 1)
        return 1;
    return n > PD_SLOT_GROUP_MAX ? PD_SLOT_GROUP_MAX : (size_t) n;
}

/* Starts the time-out of job s->cur, counted from now. */
static void s_arm(pd_slot_t *s)
{
    s->loading = false;
    s->mem_check_ms = INT64_MAX;
    if (s->cur < s->ngroup && s->group[s->cur]->limits.memory)
        s->mem_check_ms = pd_slot_now_ms() + S_MEM_CHECK_MS;
    if (s->cur >= s->ngroup || s->group[s->cur]->timeout_ms == 0)
        s->deadline_ms = INT64_MAX;
    else
        s->deadline_ms = pd_slot_now_ms() + (int64_t) s->group[s->cur]->timeout_ms;
}

/* Reports job s->cur as failed with code and msg, and destroys it. */
static void s_fail_current(pd_slot_t *s, int code, const char *msg, uint64_t us)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    s_pack_err(&pk, code, msg, s->index);
    pd_job_t *job = s->group[s->cur];
    if (!b.failed)
        s->sink.result(s->sink.user, job, false, b.data, b.len, us);
    pd_buf_free(&b);
    pd_job_destroy(&s->group[s->cur]);
    s->cur++;
}

/* Waits for a child whose pipe closed; kills it after a grace period.
   *killed tells whether we had to. */
static int s_reap_closed(pd_slot_t *s, bool *killed)
{
    int status = 0;
    *killed = false;
    for (int i = 0; i < S_REAP_GRACE_MS; i++) {
        int r = pd_plat_wait(s->pid, &status, false);
        if (r != 0) {
            pd_plat_kill_tree(s->pid); /* what an exec job left behind in its group */
            s_child_gone(s);
            s->pid = 0;
            s_close_fds(s);
            return status;
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    *killed = true;
    return s_kill_reap(s);
}

/* Says why a child failed to start, from its wait status (or, when the
   parent killed it, from `cause` and `why`), and what to do about it. */
static void s_start_failure_why(const pd_slot_t *s, s_cause_t cause, const char *why, int status,
                                bool killed, char *out, size_t cap)
{
    char path[512];
    const char *prog = pd_pipe_program(s->exe, path, sizeof path);
    if (cause == S_TIMEOUT)
        snprintf(out, cap, "%.200s did not say it was ready within %d s (is it playdoh-worker of "
                 "this version? is the machine swapping?)", prog, PD_SLOT_START_TIMEOUT_MS / 1000);
    else if (cause == S_BADFRAME)
        snprintf(out, cap, "%.200s is not a slot program this worker can use (%s): start "
                 "slots with playdoh-worker of this version", prog, why);
    else if (killed)
        snprintf(out, cap, "%.200s closed its pipe to the worker before it was ready", prog);
    else
        pd_pipe_explain_start(s->exe, status, out, cap);
}

/* Counts a start failure (what: why), says what to do, and schedules the
   next attempt after a pause that doubles with each failure in a row. */
static void s_start_failed(pd_slot_t *s, const char *what)
{
    int n = ++s->start_failures;
    int64_t pause = PD_SLOT_START_PAUSE_MS;
    for (int i = 1; i < n && pause < PD_SLOT_START_PAUSE_MAX_MS; i++)
        pause *= 2;
    if (pause > PD_SLOT_START_PAUSE_MAX_MS)
        pause = PD_SLOT_START_PAUSE_MAX_MS;
    s->respawn_ms = pd_slot_now_ms() + pause;
    if (n < PD_SLOT_START_TRIES)
        pd_log_warn("slot %d: the slot process could not start: %s; trying again in %.1f s (the "
                    "slot is withdrawn after %d failures in a row)", s->index, what,
                    (double) pause / 1000, PD_SLOT_START_TRIES);
    else if (n == PD_SLOT_START_TRIES)
        pd_log_error("slot %d: the slot process failed to start %d times in a row (last: %s); "
                     "the slot is no longer offered to the broker and no job is sent to it. Fix "
                     "the cause: the worker keeps trying (every %d s at most) and offers the slot "
                     "again once a process starts", s->index, n, what,
                     PD_SLOT_START_PAUSE_MAX_MS / 1000);
    else
        pd_log_debug("slot %d: start failure %d in a row: %s", s->index, n, what);
}

/* Replaces the child after `cause`: reports the job it was running (unless
   cancelled or aborted), hands the unstarted jobs back, restarts it. For
   S_CANCEL, is_cancelled picks the jobs to destroy silently. */
static size_t s_replace(pd_slot_t *s, s_cause_t cause, const char *why,
                        bool (*is_cancelled)(void *, uint64_t), void *user)
{
    size_t cancelled = 0;
    bool killed = cause != S_DIED;
    int status;
    if (cause == S_DIED)
        status = s_reap_closed(s, &killed);
    else
        status = s_kill_reap(s);
    bool busy = s->cur < s->ngroup;
    /* A child that asked for a restart (its GPU context broke) exits between
       groups, never reading the next: a group sent meanwhile did not start,
       and goes back to the queue whole. */
    bool reset = cause == S_DIED && s->reset;
    /* A child that never said READY did not start: no job it was sent (there
       should be none) ran, so none fails; they all go back unstarted. */
    bool started = s->ready;
    char msg[1024];
    if (!started) {
        s_start_failure_why(s, cause, why, status, killed, msg, sizeof msg);
    } else if (busy && !reset && cause != S_CANCEL && cause != S_ABORT) {
        pd_job_t *job = s->group[s->cur];
        int code = PD_ECRASH;
        char lim[32], seen[32];
        if (cause == S_MEMORY) {
            code = PD_ELIMIT;
            snprintf(msg, sizeof msg, "the job went over its memory limit of %s (its processes "
                     "held %s) on %s slot %d",
                     pd_limits_size_str(job->limits.memory, lim, sizeof lim),
                     pd_limits_size_str(s->mem_seen, seen, sizeof seen), s->host, s->index);
        } else if (cause == S_DIED && !killed && pd_plat_status_cpu_limit(status)) {
            code = PD_ELIMIT;
            snprintf(msg, sizeof msg, "the job went over its CPU time limit of %llu s on %s "
                     "slot %d", (unsigned long long) job->limits.cpu_s, s->host, s->index);
        } else if (cause == S_TIMEOUT && s->loading) {
            code = PD_ETIMEDOUT;
            snprintf(msg, sizeof msg, "module %s took longer than %d s to compile and load",
                     job->name, PD_SLOT_LOAD_TIMEOUT_MS / 1000);
        } else if (cause == S_TIMEOUT) {
            code = PD_ETIMEDOUT;
            snprintf(msg, sizeof msg, "task ran past its time-out of %llu ms",
                     (unsigned long long) job->timeout_ms);
        } else if (cause == S_BADFRAME) {
            snprintf(msg, sizeof msg, "slot process on %s slot %d sent an unreadable result (%s)",
                     s->host, s->index, why);
        } else if (killed) {
            snprintf(msg, sizeof msg,
                     "slot process on %s slot %d closed its result pipe during the task (did "
                     "the task close file descriptor %d?)", s->host, s->index, S_CHILD_OUT);
        } else if (pd_plat_status_crashed(status)) {
            char how[128];
            snprintf(msg, sizeof msg, "task crashed: %s on %s slot %d",
                     pd_plat_status_str(status, how, sizeof how), s->host, s->index);
        } else {
            snprintf(msg, sizeof msg,
                     "slot process exited with status %d during the task (did the task call "
                     "exit()?)", pd_plat_status_exit(status));
        }
        pd_log_warn("slot %d: job %llu: %s", s->index, (unsigned long long) job->id, msg);
        s_fail_current(s, code, msg, 0);
    } else if (reset) {
        pd_log_info("slot %d: restarting the slot process for a fresh GPU context (a CUDA "
                    "error left the old one unusable)%s", s->index,
                    busy ? "; the jobs sent to it meanwhile go back to the queue" : "");
    } else if (!busy && cause == S_DIED) {
        char how[128];
        pd_log_warn("slot %d: idle slot process %s; restarting it", s->index,
                    pd_plat_status_str(status, how, sizeof how));
    }
    /* Hand jobs back last first, so a caller that pushes each at the front
       of its queue keeps their order. */
    for (size_t i = s->ngroup; i-- > s->cur;) {
        pd_job_t *job = s->group[i];
        s->group[i] = NULL;
        if (cause == S_ABORT || (cause == S_CANCEL && is_cancelled(user, job->id))) {
            cancelled += cause == S_CANCEL;
            pd_job_destroy(&job);
        } else {
            s->sink.requeue(s->sink.user, job);
        }
    }
    s_drop_group(s);
    if (!started) {
        s_start_failed(s, msg);
        return cancelled;
    }
    /* A child that dies on its own while idle may die again: pause before
       the next one. */
    int64_t now = pd_slot_now_ms();
    bool pause = cause == S_DIED && !reset && !busy;
    s->respawn_ms = pause ? now + S_RESPAWN_PAUSE_MS : now;
    if (!pause && s_spawn(s))
        s_start_failed(s, strerror(errno)); /* fork failed; the tick retries */
    return cancelled;
}

int pd_slot_send(pd_slot_t *s, pd_job_t **jobs, size_t n)
{
    assert(pd_slot_can_take(s) && n >= 1 && n <= PD_SLOT_GROUP_MAX);
    size_t left = s->ngroup - s->cur; /* the running job, when sent ahead */
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_pipe_frame_begin(&b);
    msgpack_pack_array(&pk, (uint32_t) n);
    for (size_t i = 0; i < n; i++) {
        pd_job_t *j = jobs[i];
        msgpack_pack_array(&pk, j->cu[0] ? 10 : 8);
        msgpack_pack_uint64(&pk, j->id);
        pd_pack_cstr(&pk, j->mod);
        pd_pack_cstr(&pk, j->kind);
        pd_pack_cstr(&pk, j->name);
        pd_pack_cstr(&pk, j->fn);
        pd_pack_raw(&pk, j->arg, j->arg_len);
        if (j->shared[0])
            pd_pack_cstr(&pk, j->shared);
        else
            msgpack_pack_nil(&pk);
        if (j->cu[0]) {
            pd_pack_cstr(&pk, j->cu);
            pd_pack_cstr(&pk, j->cu_name);
        }
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint64(&pk, j->limits.memory);
        msgpack_pack_uint64(&pk, j->limits.cpu_s);
        msgpack_pack_uint64(&pk, j->limits.output);
    }
    pd_job_t **group = malloc((left + n) * sizeof *group);
    int rc = group ? pd_pipe_frame_end(&b) : PD_ENOMEM;
    if (rc == 0 && pd_plat_write_all(s->to_child, b.data, b.len))
        rc = PD_ESYS;
    pd_buf_free(&b);
    if (rc) {
        free(group);
        for (size_t i = n; i-- > 0;)
            s->sink.requeue(s->sink.user, jobs[i]);
        if (rc == PD_ESYS) {
            pd_log_warn("slot %d: cannot send jobs to the slot process: %s", s->index,
                        strerror(errno));
            s_replace(s, S_DIED, NULL, NULL, NULL);
        }
        return rc;
    }
    /* The job still running (sent ahead of) stays first, its time-out
       running on. */
    if (left)
        memcpy(group, s->group + s->cur, left * sizeof *group);
    memcpy(group + left, jobs, n * sizeof *jobs);
    free(s->group);
    s->group = group;
    s->ngroup = left + n;
    s->cur = 0;
    if (!left)
        s_arm(s);
    return 0;
}

int pd_slot_frame_next(const uint8_t *buf, size_t len, size_t *flen)
{
    if (len < 4)
        return 0;
    uint32_t n = pd_pipe_le32(buf);
    if (n > PD_MAX_FRAME)
        return PD_ETOOBIG;
    if (len - 4 < n)
        return 0;
    *flen = n;
    return 1;
}

int pd_slot_report_parse(const uint8_t *p, size_t len, pd_slot_report_t *out, const char **why)
{
    memset(out, 0, sizeof *out);
    if (pd_mp_check(p, len, PD_MAX_DEPTH, why))
        return PD_EPROTO;
    pd_rd_t r;
    pd_rd_init(&r, p, len);
    uint32_t n;
    if (pd_rd_array(&r, &n) || n < 2 || pd_rd_uint(&r, &out->tag) || pd_rd_uint(&r, &out->id)) {
        *why = "frame is not [tag, id, ...]";
        return PD_EPROTO;
    }
    if (out->tag == S_FRAME_LOAD || out->tag == S_FRAME_BEGIN || out->tag == S_FRAME_RESET ||
        out->tag == S_FRAME_READY)
        return 0;
    if (out->tag != S_FRAME_RESULT || n != 5 || pd_rd_bool(&r, &out->ok) ||
        pd_rd_skip(&r, &out->val, &out->vlen) || pd_rd_uint(&r, &out->us)) {
        *why = "frame is not [2, id, ok, value, us]";
        return PD_EPROTO;
    }
    return 0;
}

/* Handles one frame from the child; returns 0, or PD_EPROTO with *why set
   when the frame makes no sense (the child is then replaced). */
static int s_frame(pd_slot_t *s, const uint8_t *p, size_t len, const char **why)
{
    pd_slot_report_t rep;
    if (pd_slot_report_parse(p, len, &rep, why))
        return PD_EPROTO;
    if (rep.tag == S_FRAME_READY) {
        if (s->ready) {
            *why = "READY from a child that had said it";
            return PD_EPROTO;
        }
        if (rep.id != PD_SLOT_PIPE_VERSION) {
            snprintf(s->bad, sizeof s->bad, "it speaks slot pipe version %llu, this worker %d",
                     (unsigned long long) rep.id, PD_SLOT_PIPE_VERSION);
            *why = s->bad;
            return PD_EPROTO;
        }
        s->ready = true;
        if (s->start_failures >= PD_SLOT_START_TRIES)
            pd_log_info("slot %d: a slot process started after %d failed attempts: the slot is "
                        "offered again", s->index, s->start_failures);
        else if (s->start_failures)
            pd_log_info("slot %d: a slot process started after %d failed attempt%s", s->index,
                        s->start_failures, s->start_failures == 1 ? "" : "s");
        s->start_failures = 0;
        return 0;
    }
    if (!s->ready) {
        *why = "a frame before READY";
        return PD_EPROTO;
    }
    if (rep.tag == S_FRAME_RESET) {
        s->reset = true; /* its exit follows */
        return 0;
    }
    if (s->cur >= s->ngroup || s->group[s->cur]->id != rep.id) {
        *why = "result for a job the slot was not running";
        return PD_EPROTO;
    }
    if (rep.tag == S_FRAME_LOAD) {
        s->loading = true;
        s->deadline_ms = pd_slot_now_ms() + PD_SLOT_LOAD_TIMEOUT_MS;
        return 0;
    }
    if (rep.tag == S_FRAME_BEGIN) {
        s_arm(s);
        return 0;
    }
    uint64_t us = rep.us;
    pd_job_t *job = s->group[s->cur];
    s->sink.result(s->sink.user, job, rep.ok, rep.val, rep.vlen, us);
    if (!pd_slot_knows(s, job)) {
        /* Another function: the measure starts over. */
        snprintf(s->avg_mod, sizeof s->avg_mod, "%s", job->mod);
        snprintf(s->avg_fn, sizeof s->avg_fn, "%s", job->fn);
        s->avg_us = 0;
    }
    pd_job_destroy(&s->group[s->cur]);
    s->cur++;
    double x = us < 1 ? 1.0 : (double) us; /* measured: 1 µs at least (0 means unknown) */
    s->avg_us = s->avg_us > 0 ? 0.8 * s->avg_us + 0.2 * x : x;
    if (s->cur == s->ngroup)
        s_drop_group(s);
    else
        s_arm(s);
    return 0;
}

void pd_slot_on_readable(pd_slot_t *s)
{
    if (s->pid <= 0)
        return;
    bool eof = pd_pipe_drain(s->from_child, &s->rbuf, &s->rlen, &s->rcap,
                             (size_t) PD_MAX_FRAME + 4) == 1;
    size_t off = 0;
    for (;;) {
        size_t flen = 0;
        int got = pd_slot_frame_next(s->rbuf + off, s->rlen - off, &flen);
        if (got < 0) {
            s->rlen = 0;
            s_replace(s, S_BADFRAME, "frame over the size limit", NULL, NULL);
            return;
        }
        if (got == 0)
            break;
        const char *why = NULL;
        if (s_frame(s, s->rbuf + off + 4, flen, &why)) {
            s->rlen = 0;
            s_replace(s, S_BADFRAME, why ? why : "malformed frame", NULL, NULL);
            return;
        }
        off += 4 + (size_t) flen;
    }
    memmove(s->rbuf, s->rbuf + off, s->rlen - off);
    s->rlen -= off;
    if (s->finishing && s->cur >= s->finish_at && s->cur < s->ngroup) {
        /* Its running job ended: what was sent ahead goes back unstarted
           (the child may have begun the next one this instant: it is
           stopped and handed back too, without counting an attempt). */
        pd_log_debug("slot %d: over the owner's limit: %zu jobs sent ahead handed back", s->index,
                     s->ngroup - s->cur);
        pd_slot_retire(s, false);
        return;
    }
    if (eof) {
        s->rlen = 0;
        s_replace(s, S_DIED, NULL, NULL, NULL);
    }
}

int64_t pd_slot_deadline(pd_slot_t *s)
{
    if (s->pid > 0 && !s->ready)
        return s->spawned_ms + PD_SLOT_START_TIMEOUT_MS;
    if (s->pid > 0 && s->suspended)
        return INT64_MAX;
    if (s->pid > 0)
        return s->deadline_ms < s->mem_check_ms ? s->deadline_ms : s->mem_check_ms;
    return s->respawn_ms;
}

/* Measures the running job's memory (the slot process; for a built-in
   exec job every process of its group) and kills it when over its limit.
   Returns true when it did. */
static bool s_check_memory(pd_slot_t *s, int64_t now)
{
    if (s->cur >= s->ngroup || now < s->mem_check_ms)
        return false;
    const pd_job_t *job = s->group[s->cur];
    bool group = strcmp(job->kind, "b") == 0;
    s->mem_check_ms = now + (group ? S_MEM_CHECK_GROUP_MS : S_MEM_CHECK_MS);
    uint64_t rss = pd_plat_rss(s->pid, group);
    if (rss <= job->limits.memory)
        return false;
    s->mem_seen = rss;
    uint64_t id = job->id;
    pd_slot_on_readable(s); /* a result already written wins (and may free job) */
    if (s->pid > 0 && s->cur < s->ngroup && s->group[s->cur]->id == id) {
        s_replace(s, S_MEMORY, NULL, NULL, NULL);
        return true;
    }
    return false;
}

void pd_slot_tick(pd_slot_t *s)
{
    int64_t now = pd_slot_now_ms();
    if (s->pid <= 0) {
        if (now >= s->respawn_ms && s_spawn(s)) {
            char what[200];
            snprintf(what, sizeof what, "cannot create a process: %s", strerror(errno));
            s_start_failed(s, what);
        }
        return;
    }
    if (!s->ready) {
        if (now < s->spawned_ms + PD_SLOT_START_TIMEOUT_MS)
            return;
        pd_slot_on_readable(s); /* its READY may be waiting in the pipe */
        if (s->pid > 0 && !s->ready)
            s_replace(s, S_TIMEOUT, NULL, NULL, NULL);
        return;
    }
    if (!s->suspended && s_check_memory(s, now))
        return;
    if (s->cur < s->ngroup && !s->suspended && now >= s->deadline_ms) {
        /* Results may be waiting in the pipe: read them before judging. */
        pd_slot_on_readable(s);
        if (s->pid > 0 && s->cur < s->ngroup && pd_slot_now_ms() >= s->deadline_ms)
            s_replace(s, S_TIMEOUT, NULL, NULL, NULL);
    }
}

size_t pd_slot_cancel(pd_slot_t *s, bool (*is_cancelled)(void *user, uint64_t id), void *user)
{
    bool hit = false;
    for (size_t i = s->cur; i < s->ngroup && !hit; i++)
        hit = is_cancelled(user, s->group[i]->id);
    if (!hit)
        return 0;
    return s_replace(s, S_CANCEL, NULL, is_cancelled, user);
}

void pd_slot_abort(pd_slot_t *s)
{
    if (s->cur < s->ngroup)
        s_replace(s, S_ABORT, NULL, NULL, NULL);
}

bool pd_slot_busy(pd_slot_t *s) { return s->ngroup > 0; }
bool pd_slot_suspended(pd_slot_t *s) { return s->suspended; }

void pd_slot_suspend(pd_slot_t *s, bool suspend)
{
    if (suspend == s->suspended)
        return;
    int64_t now = pd_slot_now_ms();
    if (s->pid > 0)
        pd_plat_suspend_tree(s->pid, suspend); /* its group: tasks' children too */
    if (suspend) {
        s->suspended_ms = now;
    } else if (s->deadline_ms != INT64_MAX) {
        s->deadline_ms += now - s->suspended_ms;
    }
    s->suspended = suspend;
}

void pd_slot_retire(pd_slot_t *s, bool restart)
{
    s_kill_reap(s);
    s->suspended = false;
    for (size_t i = s->ngroup; i-- > s->cur;) {
        pd_job_t *job = s->group[i];
        s->group[i] = NULL;
        s->sink.requeue(s->sink.user, job);
    }
    s_drop_group(s);
    s->respawn_ms = restart ? pd_slot_now_ms() : INT64_MAX;
    if (restart)
        s_spawn(s);
}

/* ---- child side --------------------------------------------------------- */

bool pd_slot_is_child(int argc, char **argv)
{
    return argc > 1 && strcmp(argv[1], "--slot") == 0;
}

/* The child's state, for one run of pd_slot_main(). */
typedef struct {
    int index;           /* slot index */
    const char *host;    /* host name, for exec results (borrowed from argv) */
    const char *cache;   /* the worker's cache directory (borrowed from argv): exec jobs'
                            scratch directories go under <cache>/scratch/slot-<pid> */
    pd_modcache_t *mc;   /* module cache */
    pd_task_t *task;     /* task context, reused */
    pd_gpurt_t *rt;      /* GPU runtime of a GPU slot; NULL on a CPU slot */
    pd_buf_t out;        /* frame being written */
    msgpack_packer pk;   /* packer into out */
    char last_mod[65];   /* module of the previous job */
    char last_cu[65];    /* CUDA module of the previous job ("" when none) */
    pd_buf_t aux;        /* a built-in task's result, reused */
    pd_plat_outcap_t *oc; /* the jobs' standard output and error, captured; NULL where
                             the system cannot (they go to the worker's log then) */
    bool limits_set;     /* limits of a job are in force (pd_plat_job_limits) */
} s_child_t;

static int s_child_send(s_child_t *c) { return pd_plat_write_all(S_CHILD_OUT, c->out.data, c->out.len); }

/* Writes [tag, id]. */
static int s_child_mark(s_child_t *c, int tag, uint64_t id)
{
    pd_pipe_frame_begin(&c->out);
    msgpack_pack_array(&c->pk, 2);
    msgpack_pack_int(&c->pk, tag);
    msgpack_pack_uint64(&c->pk, id);
    return pd_pipe_frame_end(&c->out) ? -1 : s_child_send(c);
}

/* Writes [2, id, ok, value_or_err, us]. */
static int s_child_result(s_child_t *c, uint64_t id, int code, const uint8_t *val, size_t len,
                          uint64_t us)
{
    pd_pipe_frame_begin(&c->out);
    msgpack_pack_array(&c->pk, 5);
    msgpack_pack_int(&c->pk, S_FRAME_RESULT);
    msgpack_pack_uint64(&c->pk, id);
    if (code == 0) {
        msgpack_pack_true(&c->pk);
        pd_pack_raw(&c->pk, val, len);
    } else {
        char msg[4200];
        snprintf(msg, sizeof msg, "%.*s", (int) len, (const char *) val);
        msgpack_pack_false(&c->pk);
        s_pack_err(&c->pk, code, msg, c->index);
    }
    msgpack_pack_uint64(&c->pk, us);
    return pd_pipe_frame_end(&c->out) ? -1 : s_child_send(c);
}

/* Writes [2, id, false, {code, msg, slot, value}, us]: a failed job that
   carries a value (an exec job's output). */
static int s_child_fail_value(s_child_t *c, uint64_t id, int code, const char *msg,
                              const uint8_t *val, size_t len, uint64_t us)
{
    pd_pipe_frame_begin(&c->out);
    msgpack_pack_array(&c->pk, 5);
    msgpack_pack_int(&c->pk, S_FRAME_RESULT);
    msgpack_pack_uint64(&c->pk, id);
    msgpack_pack_false(&c->pk);
    msgpack_pack_map(&c->pk, 4);
    pd_pack_kv_str(&c->pk, "code", pd_err_name(code));
    pd_pack_kv_str(&c->pk, "msg", msg);
    pd_pack_kv_int(&c->pk, "slot", c->index);
    pd_pack_cstr(&c->pk, "value");
    pd_pack_raw(&c->pk, val, len);
    msgpack_pack_uint64(&c->pk, us);
    return pd_pipe_frame_end(&c->out) ? -1 : s_child_send(c);
}

/* Puts the job's limits in force in this process (and what it starts):
   RLIMIT_DATA at twice the memory limit plus 256 MiB, a backstop for a job
   that allocates faster than the worker measures (the worker kills at the
   limit itself), and RLIMIT_CPU; and captures at most its output cap.
   A job without limits gets the limits the process started with. */
static void s_child_limits(s_child_t *c, const pd_limits_t *lim)
{
    if (c->oc)
        pd_plat_outcap_reset(c->oc, lim->output ? (size_t) lim->output
                                                : PD_LIMITS_DEFAULT_OUTPUT);
    if (!lim->memory && !lim->cpu_s && !c->limits_set)
        return;
    uint64_t data = lim->memory ? 2 * lim->memory + (256u << 20) : 0;
    if (pd_plat_job_limits(data, lim->cpu_s) == 0)
        c->limits_set = lim->memory || lim->cpu_s;
}

/* Writes the RESULT of a failed C job whose output was captured: the error
   map carries {output, dropped[, note]} as its value, when the job printed
   anything. msg: the task's message (len bytes). */
static int s_child_fail_output(s_child_t *c, uint64_t id, int code, const uint8_t *msg,
                               size_t len, uint64_t us, const pd_limits_t *lim)
{
    size_t olen;
    uint64_t dropped;
    const char *out = pd_plat_outcap_take(c->oc, &olen, &dropped);
    if (olen == 0 && dropped == 0)
        return s_child_result(c, id, code, msg, len, us);
    char text[4200], note[200] = "", ks[32];
    snprintf(text, sizeof text, "%.*s", (int) len, (const char *) msg);
    if (dropped)
        snprintf(note, sizeof note, "%llu bytes of output past the job's output limit of %s "
                 "were dropped", (unsigned long long) dropped,
                 pd_limits_size_str(lim->output ? lim->output : PD_LIMITS_DEFAULT_OUTPUT, ks,
                                    sizeof ks));
    pd_buf_reset(&c->aux);
    msgpack_packer pk;
    pd_packer_init(&pk, &c->aux);
    msgpack_pack_map(&pk, note[0] ? 3 : 2);
    pd_pack_cstr(&pk, "output");
    if (pd_utf8_valid(out, olen)) {
        msgpack_pack_str(&pk, olen);
        msgpack_pack_str_body(&pk, out, olen);
    } else {
        msgpack_pack_bin(&pk, olen);
        msgpack_pack_bin_body(&pk, out, olen);
    }
    pd_pack_kv_uint(&pk, "dropped", dropped);
    if (note[0])
        pd_pack_kv_str(&pk, "note", note);
    if (c->aux.failed)
        return s_child_result(c, id, code, msg, len, us);
    return s_child_fail_value(c, id, code, text, c->aux.data, c->aux.len, us);
}

/* Runs a job of the reserved module "builtin": function fn over arg. */
static int s_child_builtin(s_child_t *c, uint64_t id, const char *fn, const uint8_t *arg,
                           size_t alen, const pd_limits_t *lim)
{
    char msg[512];
    if (strcmp(fn, "exec") != 0) {
        snprintf(msg, sizeof msg, "the built-in module has no function '%.200s' (it has: exec)",
                 fn);
        return s_child_result(c, id, PD_ENOFUNC, (const uint8_t *) msg, strlen(msg), 0);
    }
    char scratch[4200];
    snprintf(scratch, sizeof scratch, "%s/scratch/slot-%d", c->cache, pd_plat_getpid());
    const char *keep = getenv("PLAYDOH_KEEP_SCRATCH");
    pd_exec_env_t env = {.host = c->host, .scratch = scratch, .job = id,
                         .keep_scratch = keep && *keep && strcmp(keep, "0") != 0};
    pd_buf_reset(&c->aux);
    uint64_t t0 = ((uint64_t) zclock_usecs());
    int code = pd_exec_job(arg, alen, &env, lim, &c->aux, msg, sizeof msg);
    uint64_t us = ((uint64_t) zclock_usecs()) - t0;
    if (code == 0)
        return s_child_result(c, id, 0, c->aux.data, c->aux.len, us);
    if (c->aux.len) /* it ran: its output goes with the error */
        return s_child_fail_value(c, id, code, msg, c->aux.data, c->aux.len, us);
    return s_child_result(c, id, code, (const uint8_t *) msg, strlen(msg), us);
}

/* Reads a str field into dst; returns 0 or -1. */
static int s_rd_cstr(pd_rd_t *r, char *dst, size_t cap) { return pd_rd_strcpy(r, dst, cap) ? -1 : 0; }

int pd_slot_job_parse(pd_rd_t *r, pd_slot_order_t *o)
{
    uint32_t n;
    o->shared[0] = o->cu[0] = o->cu_name[0] = 0;
    uint32_t nl;
    if (pd_rd_array(r, &n) || (n != 8 && n != 10) || pd_rd_uint(r, &o->id) ||
        s_rd_cstr(r, o->mod, sizeof o->mod) || s_rd_cstr(r, o->kind, sizeof o->kind) ||
        s_rd_cstr(r, o->name, sizeof o->name) || s_rd_cstr(r, o->fn, sizeof o->fn) ||
        pd_rd_skip(r, &o->arg, &o->alen) ||
        (pd_rd_nil(r) && s_rd_cstr(r, o->shared, sizeof o->shared)) ||
        (n == 10 && (s_rd_cstr(r, o->cu, sizeof o->cu) ||
                     s_rd_cstr(r, o->cu_name, sizeof o->cu_name))) ||
        pd_rd_array(r, &nl) || nl != 3 || pd_rd_uint(r, &o->limits.memory) ||
        pd_rd_uint(r, &o->limits.cpu_s) || pd_rd_uint(r, &o->limits.output))
        return PD_EPROTO;
    return 0;
}

/* Runs one job [id, mod, kind, name, fn, arg, shared] or, with a CUDA
   module, [..., shared, cu_hash, cu_name]; returns 0, or -1 when the pipe
   is broken or the frame malformed. */
static int s_child_job(s_child_t *c, pd_rd_t *r)
{
    pd_slot_order_t o;
    if (pd_slot_job_parse(r, &o)) {
        pd_log_error("slot %d: malformed job frame from the worker", c->index);
        return -1;
    }
    uint64_t id = o.id;
    const char *mod = o.mod, *kind = o.kind, *name = o.name, *fn = o.fn, *shared = o.shared;
    const char *cu = o.cu, *cu_name = o.cu_name;
    const uint8_t *arg = o.arg;
    size_t alen = o.alen;
    s_child_limits(c, &o.limits);
    if (strcmp(kind, "b") == 0)
        return s_child_builtin(c, id, fn, arg, alen, &o.limits);
    /* On a GPU slot the CUDA module is loaded with the C module; elsewhere
       pd_cuda_module() reports that the job is not on a GPU slot. */
    bool want_cu = cu[0] && c->rt;
    bool switched = strcmp(mod, c->last_mod) != 0 || (want_cu && strcmp(cu, c->last_cu) != 0);
    if (switched && s_child_mark(c, S_FRAME_LOAD, id))
        return -1;
    int code = 0;
    const char *msg = NULL;
    void *sym = pd_modcache_load(c->mc, mod, kind, name, fn, &code, &msg);
    if (!sym)
        return s_child_result(c, id, code, (const uint8_t *) msg, strlen(msg), 0);
    if (want_cu) {
        pd_cu_module_t cm;
        code = pd_gpurt_module(c->rt, cu, cu_name, &cm, &msg);
        if (code) {
            c->last_cu[0] = 0;
            return s_child_result(c, id, code, (const uint8_t *) msg, strlen(msg), 0);
        }
    } else if (switched && c->rt) {
        /* Open the device now, so that creating the context is not charged
           to the task's time-out; a failure is remembered and reported by
           the task's first pd_cuda_* call. */
        pd_gpurt_driver(c->rt, &code, &msg);
        code = 0;
    }
    const void *sh = NULL;
    size_t shlen = 0;
    if (shared[0]) {
        const char *why;
        sh = pd_modcache_map_shared(c->mc, shared, &shlen, &why);
        if (!sh)
            return s_child_result(c, id, PD_ENOMODULE, (const uint8_t *) why, strlen(why), 0);
    }
    /* A module's pd_init runs once per slot process, before its first job
       (still within the load's time limit), with that job's context. */
    void *init = switched ? pd_modcache_take_init(c->mc, mod, kind) : NULL;
    if (init) {
        int (*init_fn)(pd_task_t *);
        memcpy(&init_fn, &init, sizeof init_fn);
        pd_task_begin(c->task, id, arg, alen);
        pd_task_set_shared(c->task, sh, shlen);
        if (cu[0])
            pd_task_set_cuda(c->task, cu, cu_name);
        int rc = init_fn(c->task);
        fflush(stdout);
        const uint8_t *val;
        size_t len;
        if (pd_task_finish(c->task, rc, &val, &len)) {
            char why[4300];
            snprintf(why, sizeof why, "module %s: pd_init failed on slot %d: %.*s", name,
                     c->index, (int) len, (const char *) val);
            pd_modcache_init_failed(c->mc, mod, kind, why);
            c->last_mod[0] = 0;
            return s_child_result(c, id, PD_ETASK, (const uint8_t *) why, strlen(why), 0);
        }
    }
    if (switched) {
        snprintf(c->last_mod, sizeof c->last_mod, "%s", mod);
        snprintf(c->last_cu, sizeof c->last_cu, "%s", want_cu ? cu : "");
        if (s_child_mark(c, S_FRAME_BEGIN, id))
            return -1;
    }
    int (*task_fn)(pd_task_t *);
    memcpy(&task_fn, &sym, sizeof task_fn);
    pd_task_begin(c->task, id, arg, alen);
    pd_task_set_shared(c->task, sh, shlen);
    if (cu[0])
        pd_task_set_cuda(c->task, cu, cu_name);
    uint64_t t0 = ((uint64_t) zclock_usecs());
    int rc = task_fn(c->task);
    uint64_t us = ((uint64_t) zclock_usecs()) - t0;
    fflush(stdout);
    const uint8_t *val;
    size_t len;
    code = pd_task_finish(c->task, rc, &val, &len);
    if (code && c->oc)
        return s_child_fail_output(c, id, code, val, len, us, &o.limits);
    return s_child_result(c, id, code, val, len, us);
}

/* Reads one group frame and runs its jobs. Returns 1 to go on, 0 at EOF,
   -1 on error. */
static int s_child_group(s_child_t *c, pd_buf_t *in)
{
    const char *why = NULL;
    int rc = pd_pipe_read_frame(S_CHILD_IN, in, &why);
    if (rc <= 0) {
        if (rc < 0)
            pd_log_error("slot %d: malformed group frame from the worker: %s", c->index, why);
        return rc;
    }
    pd_rd_t r;
    pd_rd_init(&r, in->data, in->len);
    uint32_t n;
    if (pd_rd_array(&r, &n)) {
        pd_log_error("slot %d: malformed group frame from the worker: not an array", c->index);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++)
        if (s_child_job(c, &r))
            return -1;
    /* A CUDA error that broke the context: say RESET and exit between
       groups, so that the worker starts a process with a fresh one. */
    if (c->rt && pd_gpurt_broken(c->rt))
        return s_child_mark(c, S_FRAME_RESET, 0) ? -1 : 0;
    return 1;
}

/* SIGTERM in a slot process: nothing (see pd_slot_main). */
static void s_on_term(int sig) { (void) sig; }

static void s_usage_child(void)
{
    fprintf(stderr, "usage: playdoh-worker --slot INDEX --cache DIR --host HOST --parent PID "
                    "[--gpu G] [--log-level L]\n(internal: started by playdoh-worker for each "
                    "slot)\n");
}

int pd_slot_main(int argc, char **argv)
{
    int index = -1, gpu = -1;
    long parent = 0;
    const char *cache = NULL, *host = "?";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--slot") == 0)
            index = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--cache") == 0)
            cache = argv[i + 1];
        else if (strcmp(argv[i], "--host") == 0)
            host = argv[i + 1];
        else if (strcmp(argv[i], "--parent") == 0)
            parent = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--gpu") == 0)
            gpu = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--log-level") == 0) {
            pd_log_level_t lvl;
            if (pd_log_parse_level(argv[i + 1], &lvl) == 0)
                pd_log_set_level(lvl);
        }
    }
    if (index < 0 || !cache || pd_plat_child_init() != 0) {
        s_usage_child();
        return 2;
    }
    static char tag[32];
    snprintf(tag, sizeof tag, "slot %d", index);
    pd_log_set_tag(tag);
    /* Die with the worker, and let a crashing task die of its own cause
       (the worker reports it). A resource manager ending a pilot (Slurm's
       scancel, a time limit) sends SIGTERM to every process of the job at
       once: the slot must outlive it so that the worker says `bye` (its
       jobs are requeued without counting an attempt) rather than report
       the task killed. The worker stops slots with a kill. A handler, not
       SIG_IGN, so that programs a task execs get the default back. */
    if (!pd_plat_child_setup((int) parent, s_on_term, false))
        return 0; /* the worker is already gone */
    s_child_t c;
    memset(&c, 0, sizeof c);
    c.index = index;
    c.host = host;
    c.cache = cache;
    /* What jobs print goes to their results, capped, never to the worker's
       log; the slot's own log lines go where its standard error went. */
    int log_fd = -1;
    c.oc = pd_plat_outcap_start(&log_fd);
    FILE *log_f = c.oc ? fdopen(log_fd, "w") : NULL;
    if (log_f) {
        setvbuf(log_f, NULL, _IOLBF, 0);
        pd_log_set_stream(log_f);
    } else if (c.oc) {
        pd_plat_close(log_fd); /* the slot's lines go to the jobs' output: nothing better */
    } else {
        pd_log_warn("slot %d: cannot capture the jobs' output (%s): it goes to this log",
                    index, strerror(errno));
    }
    pd_buf_init(&c.aux);
    int err = 0;
    c.mc = pd_modcache_new(cache, &err); /* logs why it fails */
    c.task = pd_task_new(index);
    if (gpu >= 0) {
        c.rt = pd_gpurt_new(cache, gpu);
        if (c.task && c.rt)
            pd_task_set_gpu(c.task, gpu, c.rt);
    }
    if (!c.task || (gpu >= 0 && !c.rt))
        pd_log_error("slot %d: out of memory at start", index);
    pd_buf_init(&c.out);
    pd_packer_init(&c.pk, &c.out);
    pd_buf_t in;
    pd_buf_init(&in);
    int rc = (c.mc && c.task && (gpu < 0 || c.rt)) ? 1 : -1;
    /* READY: the worker counts the slot as started only now; a child that
       dies before it is a start failure, never a task's crash. */
    if (rc == 1 && s_child_mark(&c, S_FRAME_READY, PD_SLOT_PIPE_VERSION))
        rc = -1;
    while (rc == 1)
        rc = s_child_group(&c, &in);
    pd_buf_free(&in);
    pd_buf_free(&c.out);
    pd_buf_free(&c.aux);
    pd_task_destroy(&c.task);
    pd_gpurt_destroy(&c.rt);
    pd_modcache_destroy(&c.mc);
    if (log_f) {
        pd_log_set_stream(NULL);
        fclose(log_f);
    }
    return rc == 0 ? 0 : 1;
}
