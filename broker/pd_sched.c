/*  pd_sched: the scheduler; see pd_sched.h.

    Jobs go out class by class. Each worker with credit first gets its
    share of the queued jobs (pd_reg_share: queued work split by slots),
    then, for what is left (jobs for a platform whose workers took less
    than their share), whole credits. A worker may be handed nothing while
    the jobs waiting are for another platform: the others with credit are
    asked before giving up. A (module, function) pair not yet proven on a
    platform runs one job first, the probe; the rest of its kind waits for
    the probe's end there (pd_probes.h).
*/
#include "pd_sched.h"
#include "pd_error.h"
#include "pd_log.h"

#include <stdlib.h>
#include <string.h>

#define S_JOB_BYTES 256 /* a `run` entry's bytes beside its argument, about */

struct pd_sched {
    pd_sched_order_t *orders;
    uint32_t norders, caporders;
    pd_sched_job_t *jobs; /* the RUN orders' jobs */
    uint32_t njobs, capjobs;
    uint32_t *slots; /* placement scratch: free slots per registry index */
    uint32_t capslots;
    uint32_t *where; /* placement scratch: worker of each node */
};

pd_sched_t *pd_sched_new(void)
{
    pd_sched_t *s = calloc(1, sizeof *s);
    if (s && !(s->where = malloc(PD_TASKS_MAX_NODES * sizeof *s->where)))
        pd_sched_destroy(&s);
    return s;
}

void pd_sched_destroy(pd_sched_t **p)
{
    if (!p || !*p)
        return;
    free((*p)->orders);
    free((*p)->jobs);
    free((*p)->slots);
    free((*p)->where);
    free(*p);
    *p = NULL;
}

const pd_sched_order_t *pd_sched_order(const pd_sched_t *s, uint32_t i) { return &s->orders[i]; }

const pd_sched_job_t *pd_sched_job(const pd_sched_t *s, const pd_sched_order_t *o, uint32_t k)
{
    return &s->jobs[o->first + k];
}

/* Room for one more order; NULL without memory. */
static pd_sched_order_t *s_order(pd_sched_t *s, pd_sched_kind_t kind)
{
    if (s->norders == s->caporders) {
        uint32_t cap = s->caporders ? s->caporders * 2 : 64;
        pd_sched_order_t *a = realloc(s->orders, cap * sizeof *a);
        if (!a)
            return NULL;
        s->orders = a;
        s->caporders = cap;
    }
    pd_sched_order_t *o = &s->orders[s->norders++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    return o;
}

/* Room for one more job of the RUN being planned; false without memory. */
static bool s_job_room(pd_sched_t *s)
{
    if (s->njobs < s->capjobs)
        return true;
    uint32_t cap = s->capjobs ? s->capjobs * 2 : 1024;
    pd_sched_job_t *a = realloc(s->jobs, cap * sizeof *a);
    if (!a)
        return false;
    s->jobs = a;
    s->capjobs = cap;
    return true;
}

bool pd_sched_needs_mod(pd_mods_t *mods, const pd_wrec_t *wk, uint32_t mod)
{
    return !pd_wrec_has_mod(wk, mod) && !pd_mods_is_builtin(mods, mod);
}

void pd_sched_unsent(pd_wrec_t *wk, const pd_jobrec_t *job, const pd_sched_job_t *sj)
{
    if (sj->send & PD_SCHED_SEND_MOD)
        pd_wrec_unset_mod(wk, job->mod);
    if (sj->send & PD_SCHED_SEND_CU)
        pd_wrec_unset_mod(wk, job->cu - 1);
    if (sj->send & PD_SCHED_SEND_SHARED)
        pd_wrec_set_shared(wk, job->shared - 1, false);
}

/* ---- tasks ------------------------------------------------------------- */

/* Puts r's nodes where where[] says: each holds a slot of its worker. */
static void s_place(const pd_sched_in_t *in, pd_taskrec_t *r, const uint32_t *where)
{
    for (uint32_t i = 0; i < r->n; i++) {
        pd_tnode_t *nd = &r->nodes[i];
        nd->worker = where[i];
        nd->active = true;
        nd->state = PD_TNODE_STARTED;
        pd_wrec_t *wk = pd_reg_at(in->reg, where[i]);
        if (r->gpu)
            wk->gnodes++;
        else
            wk->nodes++;
    }
    pd_tasks_set_state(in->tasks, r, PD_TASK_STARTING);
}

/* Places queued tasks on free slots, first come first served. */
static void s_plan_tasks(pd_sched_t *s, const pd_sched_in_t *in)
{
    if (pd_tasks_queued(in->tasks) == 0)
        return;
    uint32_t span = pd_reg_span(in->reg);
    if (span > s->capslots) {
        uint32_t *a = realloc(s->slots, span * sizeof *a);
        if (!a)
            return; /* tried again at the next turn */
        s->slots = a;
        s->capslots = span;
    }
    for (uint32_t i = 0; i < pd_tasks_count(in->tasks) && pd_tasks_queued(in->tasks) > 0; i++) {
        pd_taskrec_t *r = pd_tasks_at(in->tasks, i);
        if (r->state != PD_TASK_QUEUED)
            continue;
        /* A prebuilt module's nodes go only to workers of its platform. */
        const char *platform = pd_mods_get(in->mods, r->mod)->platform;
        for (uint32_t w = 0; w < span; w++) {
            pd_wrec_t *wk = pd_reg_at(in->reg, w);
            s->slots[w] = !wk || !pd_wrec_runs(wk, platform) ? 0
                          : r->gpu                           ? pd_wrec_free_gpus(wk)
                                                             : pd_wrec_free_slots(wk);
        }
        /* First come, first served: a task that does not fit waits, and
           so do the ones behind it (no starving a large task). */
        if (pd_tasks_place(r->n, s->slots, span, s->where))
            break;
        pd_sched_order_t *o = s_order(s, PD_SCHED_PLACE);
        if (!o)
            break;
        o->task = r->id;
        s_place(in, r, s->where);
    }
}

/* ---- jobs -------------------------------------------------------------- */

/* pd_jobs_pop_if's test: can the worker run the job now? */
typedef struct {
    const pd_sched_in_t *in;
    const pd_wrec_t *wk;
    bool passed;          /* a job was passed over: for another platform, held, or asking
                             more than the worker's owner allows */
    bool proven;          /* (mod, fn) below is proven on wk's platform */
    uint32_t mod, cu, fn; /* the last pair (with its CUDA module) found proven */
} s_fits_t;

/* Where a job stands with the probe of its (module, function) on the
   worker's platform (pd_probes.h): PD_PROBE_PROVEN for built-in tasks,
   which are not probed, and PD_PROBE_NONE when a probe sent earlier no
   longer runs as one (requeued, cancelled): the job may then be the probe. */
static pd_probe_state_t s_probe_state(s_fits_t *f, const pd_jobrec_t *job)
{
    const pd_sched_in_t *in = f->in;
    if (f->proven && f->mod == job->mod && f->cu == job->cu && f->fn == job->fn)
        return PD_PROBE_PROVEN;
    if (pd_mods_is_builtin(in->mods, job->mod))
        return PD_PROBE_PROVEN;
    const char *platform = pd_wrec_platform(f->wk);
    uint64_t probe = 0;
    pd_probe_state_t st = pd_probes_get(in->probes, job->mod, job->cu, job->fn, platform, &probe);
    if (st == PD_PROBE_PROVEN) {
        f->proven = true;
        f->mod = job->mod;
        f->cu = job->cu;
        f->fn = job->fn;
    } else if (st == PD_PROBE_RUNNING) {
        const pd_jobrec_t *pj = pd_jobs_get(in->jobs, probe);
        const pd_wrec_t *pw = pj && pj->state == PD_JOB_RUNNING
                                  ? pd_reg_at(in->reg, pj->worker) : NULL;
        if (!pw || pj->mod != job->mod || pj->cu != job->cu || pj->fn != job->fn ||
            strcmp(pd_wrec_platform(pw), platform) != 0)
            st = PD_PROBE_NONE;
    }
    return st;
}

static bool s_fits(void *user, const pd_jobrec_t *job)
{
    s_fits_t *f = user;
    pd_limits_t lim = pd_jobs_fn_limits(f->in->jobs, job->fn);
    bool ok = pd_wrec_runs(f->wk, pd_mods_get(f->in->mods, job->mod)->platform) &&
              pd_limits_fit(&lim, &f->wk->limits, NULL, 0) &&
              s_probe_state(f, job) != PD_PROBE_RUNNING;
    f->passed |= !ok;
    return ok;
}

/* A job just popped for wk: when its pair has not been proven on wk's
   platform, it becomes the probe. */
static void s_probe_popped(s_fits_t *f, uint64_t id, const pd_jobrec_t *job)
{
    if (s_probe_state(f, job) == PD_PROBE_PROVEN)
        return;
    const pd_sched_in_t *in = f->in;
    const char *platform = pd_wrec_platform(f->wk);
    pd_probes_start(in->probes, job->mod, job->cu, job->fn, platform, id);
    pd_log_debug("job %llu probes module %s function %s on %s: the rest of its kind waits",
                 (unsigned long long) id, pd_mods_get(in->mods, job->mod)->name,
                 pd_jobs_fn_name(in->jobs, job->fn), platform);
}

/* What must go to wk before job, marked as sent (PD_SCHED_SEND_* bits), or
   PD_ENOMEM without memory to mark it (nothing marked). */
static int s_mark_sends(const pd_sched_in_t *in, pd_wrec_t *wk, const pd_jobrec_t *job)
{
    int send = 0;
    if (pd_sched_needs_mod(in->mods, wk, job->mod))
        send |= PD_SCHED_SEND_MOD;
    if (job->cu && !pd_wrec_has_mod(wk, job->cu - 1))
        send |= PD_SCHED_SEND_CU;
    if (job->shared && !pd_wrec_has_shared(wk, job->shared - 1))
        send |= PD_SCHED_SEND_SHARED;
    if (((send & PD_SCHED_SEND_MOD) && pd_wrec_set_mod(wk, job->mod)) ||
        ((send & PD_SCHED_SEND_CU) && pd_wrec_set_mod(wk, job->cu - 1)) ||
        ((send & PD_SCHED_SEND_SHARED) && pd_wrec_set_shared(wk, job->shared - 1, true))) {
        pd_sched_unsent(wk, job, &(pd_sched_job_t){0, (uint8_t) send});
        return PD_ENOMEM;
    }
    return send;
}

/* Plans one RUN of class cls for wk: up to its credit (and share) of the
   jobs it can run. Returns the jobs (0: no order); *passed tells whether
   jobs waiting were for another platform than wk's. */
static uint32_t s_plan_run(pd_sched_t *s, const pd_sched_in_t *in, pd_wrec_t *wk, int cls,
                           bool *passed)
{
    s_fits_t fits = {.in = in, .wk = wk};
    if (wk->ninflight == 0)
        wk->progress_ms = in->now_ms; /* idle until now: nothing is overdue */
    uint32_t want = pd_wrec_credit(wk, cls);
    if (want > wk->share)
        want = wk->share;
    if (want > in->run_jobs)
        want = in->run_jobs;
    /* The chunk's client keys, each sent once: jobs name an index. */
    const char *clients[PD_SCHED_RUN_CLIENTS];
    uint32_t nclients = 0, n = 0, first = s->njobs;
    size_t bytes = 0;
    while (n < want && bytes < in->run_bytes && s_job_room(s)) {
        uint64_t id = pd_jobs_pop_if(in->jobs, cls, s_fits, &fits);
        if (!id)
            break;
        pd_jobrec_t *job = pd_jobs_get(in->jobs, id);
        s_probe_popped(&fits, id, job);
        const char *owner = pd_jobs_fn_owner(in->jobs, job->fn);
        uint32_t ci = 0;
        while (ci < nclients && strcmp(clients[ci], owner) != 0)
            ci++;
        int send = ci < PD_SCHED_RUN_CLIENTS && !pd_wrec_track(wk, job, id)
                       ? s_mark_sends(in, wk, job) : PD_EOVERLOAD;
        if (send == PD_ENOMEM)
            pd_wrec_untrack(wk, in->jobs, job);
        if (send < 0) {
            /* The client table is full, or no memory: this job waits for
               the next chunk. */
            pd_jobs_requeue(in->jobs, id, false, wk->host);
            break;
        }
        if (ci == nclients)
            clients[nclients++] = owner;
        s->jobs[s->njobs++] = (pd_sched_job_t){id, (uint8_t) send};
        bytes += job->arg_len + S_JOB_BYTES;
        n++;
    }
    *passed = fits.passed;
    if (n == 0)
        return 0;
    pd_sched_order_t *o = s_order(s, PD_SCHED_RUN);
    if (!o) {
        for (uint32_t k = n; k-- > 0;) {
            pd_jobrec_t *job = pd_jobs_get(in->jobs, s->jobs[first + k].id);
            pd_sched_unsent(wk, job, &s->jobs[first + k]);
            pd_wrec_untrack(wk, in->jobs, job);
            pd_jobs_requeue(in->jobs, s->jobs[first + k].id, false, wk->host);
        }
        s->njobs = first;
        return 0;
    }
    *o = (pd_sched_order_t){.kind = PD_SCHED_RUN, .worker = wk->index, .cls = cls, .n = n,
                            .first = first};
    wk->share -= n < wk->share ? n : wk->share;
    return n;
}

/* Hands out queued jobs of class cls to the workers with credit, each its
   share first, then whole credits. */
static void s_plan_class(pd_sched_t *s, const pd_sched_in_t *in, int cls)
{
    pd_reg_share(in->reg, cls, pd_jobs_queued_in(in->jobs, cls));
    for (int pass = 0; pass < 2; pass++) {
        uint32_t idle = 0, span = pd_reg_span(in->reg);
        while (idle < span && pd_jobs_ready(in->jobs, cls)) {
            pd_wrec_t *wk = pass == 0 ? pd_reg_next_with_share(in->reg, cls)
                                      : pd_reg_next_with_credit(in->reg, cls);
            bool passed = false;
            if (!wk)
                break;
            if (pass == 1)
                wk->share = pd_wrec_credit(wk, cls);
            if (s_plan_run(s, in, wk, cls, &passed))
                idle = 0;
            else if (passed)
                idle++;
            else
                break;
        }
    }
}

/* Work stealing: nothing of class cls waits here while slots idle, so the
   jobs queued at busy workers are asked back, the most loaded first, until
   the idle slots are covered. */
static void s_plan_steal(pd_sched_t *s, const pd_sched_in_t *in, int cls)
{
    if (pd_jobs_queued_in(in->jobs, cls) > 0)
        return;
    uint32_t idle = pd_reg_idle_slots(in->reg, cls), n;
    pd_wrec_t *wk;
    while (idle > 0 &&
           (wk = pd_reg_steal_from(in->reg, cls, in->now_ms, in->steal_ms, &n)) != NULL) {
        pd_sched_order_t *o = s_order(s, PD_SCHED_STEAL);
        if (!o)
            return;
        o->worker = wk->index;
        o->cls = cls;
        o->n = n;
        wk->steal_at = in->now_ms; /* even unsent: asked again after a heartbeat */
        idle = n >= idle ? 0 : idle - n;
    }
}

uint32_t pd_sched_plan(pd_sched_t *s, const pd_sched_in_t *in)
{
    s->norders = 0;
    s->njobs = 0;
    s_plan_tasks(s, in);
    for (int cls = 0; cls < PD_JOBS_CLASSES; cls++) {
        s_plan_class(s, in, cls);
        s_plan_steal(s, in, cls);
    }
    return s->norders;
}
