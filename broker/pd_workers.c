/*  pd_workers: worker registry and credit; see pd_workers.h.

    Workers sit in an array of pointers (a freed entry is reused) with a hash
    index from the hex of their routing id. Labs have tens of machines, so a
    round-robin scan over the array is cheap and runs once per dispatch.
*/
#include "pd_workers.h"
#include "pd_error.h"

#include <assert.h>
#include <czmq.h>
#include <sodium.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pd_reg {
    pd_wrec_t **w; /* workers by index; NULL = free entry */
    uint32_t span;   /* entries used in w (free ones included) */
    uint32_t cap;    /* capacity of w */
    uint32_t count;  /* registered workers */
    uint32_t rr[PD_JOBS_CLASSES]; /* round-robin cursor per slot class */
    uint64_t cpus;   /* total CPU slots */
    uint64_t gpus;   /* total GPU slots */
    bool gpus_ever;  /* some worker offered a GPU slot once */
    char platforms[PD_WORKERS_PLATFORMS][32]; /* platforms workers had, in order seen */
    uint32_t nplatforms; /* entries in platforms */
    zhashx_t *index; /* hex routing id -> index + 1 */
};

static void s_hex(const void *rid, size_t len, char *out)
{
    sodium_bin2hex(out, 2 * len + 1, rid, len); /* out holds 2 * len + 1 */
}

pd_reg_t *pd_reg_new(void)
{
    pd_reg_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->index = zhashx_new();
    if (!w->index) {
        free(w);
        return NULL;
    }
    return w;
}

static void s_free_worker(pd_wrec_t *wk)
{
    free(wk->inflight);
    free(wk->mods_sent);
    free(wk->gpu);
    free(wk->shared_sent);
    free(wk);
}

void pd_reg_destroy(pd_reg_t **p)
{
    if (!p || !*p)
        return;
    pd_reg_t *w = *p;
    for (uint32_t i = 0; i < w->span; i++)
        if (w->w[i])
            s_free_worker(w->w[i]);
    free(w->w);
    zhashx_destroy(&w->index);
    free(w);
    *p = NULL;
}

pd_wrec_t *pd_reg_find(pd_reg_t *w, const void *rid, size_t ridlen)
{
    if (ridlen == 0 || ridlen > PD_WORKERS_MAX_RID)
        return NULL;
    char key[2 * PD_WORKERS_MAX_RID + 1];
    s_hex(rid, ridlen, key);
    void *v = zhashx_lookup(w->index, key);
    return v ? w->w[(uintptr_t) v - 1] : NULL;
}

pd_wrec_t *pd_reg_add(pd_reg_t *w, const void *rid, size_t ridlen, int64_t now_ms)
{
    assert(ridlen > 0 && ridlen <= PD_WORKERS_MAX_RID);
    assert(!pd_reg_find(w, rid, ridlen));
    uint32_t idx = 0;
    while (idx < w->span && w->w[idx])
        idx++;
    if (idx == w->cap) {
        uint32_t cap = w->cap ? w->cap * 2 : 16;
        pd_wrec_t **a = realloc(w->w, cap * sizeof *a);
        if (!a)
            return NULL;
        w->w = a;
        w->cap = cap;
    }
    pd_wrec_t *wk = calloc(1, sizeof *wk);
    if (!wk)
        return NULL;
    wk->index = idx;
    memcpy(wk->rid, rid, ridlen);
    wk->ridlen = (uint32_t) ridlen;
    wk->last_recv = wk->last_send = wk->joined = now_ms;
    wk->ewma_us = -1;
    wk->load = -1;
    wk->depth = PD_WORKERS_DEPTH_START;
    char key[2 * PD_WORKERS_MAX_RID + 1];
    s_hex(rid, ridlen, key);
    if (zhashx_insert(w->index, key, (void *) (uintptr_t) (idx + 1))) {
        free(wk);
        return NULL;
    }
    w->w[idx] = wk;
    if (idx == w->span)
        w->span++;
    w->count++;
    return wk;
}

void pd_reg_remove(pd_reg_t *w, pd_wrec_t **p)
{
    pd_wrec_t *wk = *p;
    assert(wk && wk->ninflight == 0);
    char key[2 * PD_WORKERS_MAX_RID + 1];
    s_hex(wk->rid, wk->ridlen, key);
    zhashx_delete(w->index, key);
    w->w[wk->index] = NULL;
    while (w->span && !w->w[w->span - 1])
        w->span--;
    w->count--;
    w->cpus -= wk->cpus;
    w->gpus -= wk->gpus;
    s_free_worker(wk);
    *p = NULL;
}

pd_wrec_t *pd_reg_at(pd_reg_t *w, uint32_t i) { return i < w->span ? w->w[i] : NULL; }
uint32_t pd_reg_span(const pd_reg_t *w) { return w->span; }
uint32_t pd_reg_count(const pd_reg_t *w) { return w->count; }
uint64_t pd_reg_cpus(const pd_reg_t *w) { return w->cpus; }
uint64_t pd_reg_gpus(const pd_reg_t *w) { return w->gpus; }
uint64_t pd_reg_slots(const pd_reg_t *w) { return w->cpus + w->gpus; }

void pd_reg_set_slots(pd_reg_t *w, pd_wrec_t *wk, uint32_t cpus, uint32_t gpus)
{
    w->cpus = w->cpus - wk->cpus + cpus;
    w->gpus = w->gpus - wk->gpus + gpus;
    wk->cpus = cpus;
    wk->gpus = gpus;
    if (gpus > 0)
        w->gpus_ever = true;
}

bool pd_reg_gpus_ever(const pd_reg_t *w) { return w->gpus_ever; }

const char *pd_wrec_platform(const pd_wrec_t *wk)
{
    return wk->platform[0] ? wk->platform : "linux-x86_64"; /* workers before 0.2 */
}

void pd_reg_note_platform(pd_reg_t *w, const pd_wrec_t *wk)
{
    const char *p = pd_wrec_platform(wk);
    if (pd_reg_platform_ever(w, p) || w->nplatforms == PD_WORKERS_PLATFORMS)
        return;
    snprintf(w->platforms[w->nplatforms++], sizeof w->platforms[0], "%s", p);
}

bool pd_reg_platform_ever(const pd_reg_t *w, const char *platform)
{
    for (uint32_t i = 0; i < w->nplatforms; i++)
        if (strcmp(w->platforms[i], platform) == 0)
            return true;
    return false;
}

void pd_reg_platform_list(const pd_reg_t *w, char *out, size_t cap)
{
    size_t at = 0;
    out[0] = 0;
    for (uint32_t i = 0; i < w->nplatforms && at < cap; i++)
        at += (size_t) snprintf(out + at, cap - at, "%s%s", i ? ", " : "", w->platforms[i]);
    if (!w->nplatforms)
        snprintf(out, cap, "none yet");
}

bool pd_wrec_runs(const pd_wrec_t *wk, const char *platform)
{
    return !platform[0] || strcmp(platform, pd_wrec_platform(wk)) == 0;
}

int pd_wrec_set_gpu_desc(pd_wrec_t *wk, const pd_gpu_desc_t *desc, uint32_t n)
{
    free(wk->gpu);
    wk->gpu = NULL;
    wk->ngpu = 0;
    if (n == 0)
        return 0;
    wk->gpu = malloc(n * sizeof *wk->gpu);
    if (!wk->gpu)
        return PD_ENOMEM;
    memcpy(wk->gpu, desc, n * sizeof *desc);
    wk->ngpu = n;
    return 0;
}

uint32_t pd_wrec_free_slots(const pd_wrec_t *wk)
{
    return wk->cpus > wk->nodes ? wk->cpus - wk->nodes : 0;
}

uint32_t pd_wrec_free_gpus(const pd_wrec_t *wk)
{
    return wk->gpus > wk->gnodes ? wk->gpus - wk->gnodes : 0;
}

uint32_t pd_wrec_credit(const pd_wrec_t *wk, int cls)
{
    uint64_t limit, used;
    if (cls == PD_JOBS_GPU) {
        /* A GPU held by a node of a GPU task runs no job either. */
        limit = (uint64_t) pd_wrec_free_gpus(wk) * PD_WORKERS_GPU_DEPTH;
        used = wk->ngpuinflight;
    } else {
        /* Slots held by nodes of synchronous tasks run no job. */
        limit = (uint64_t) pd_wrec_free_slots(wk) * wk->depth;
        used = wk->ninflight - wk->ngpuinflight;
    }
    return limit > used ? (uint32_t) (limit - used > UINT32_MAX ? UINT32_MAX : limit - used) : 0;
}

pd_wrec_t *pd_reg_next_with_credit(pd_reg_t *w, int cls)
{
    assert(cls >= 0 && cls < PD_JOBS_CLASSES);
    for (uint32_t k = 0; k < w->span; k++) {
        uint32_t i = (w->rr[cls] + k) % w->span;
        pd_wrec_t *wk = w->w[i];
        if (wk && pd_wrec_credit(wk, cls) > 0) {
            w->rr[cls] = i + 1;
            return wk;
        }
    }
    return NULL;
}

/* Slots of class cls jobs may use on wk, and its jobs of that class in
   flight. */
static uint32_t s_slots(const pd_wrec_t *wk, int cls)
{
    return cls == PD_JOBS_GPU ? pd_wrec_free_gpus(wk) : pd_wrec_free_slots(wk);
}

static uint32_t s_used(const pd_wrec_t *wk, int cls)
{
    return cls == PD_JOBS_GPU ? wk->ngpuinflight : wk->ninflight - wk->ngpuinflight;
}

/* The jobs wk takes to reach level x (jobs in flight per free slot). */
static uint64_t s_fill(const pd_wrec_t *wk, int cls, double x)
{
    double target = floor(x * (double) s_slots(wk, cls));
    double used = (double) s_used(wk, cls);
    if (target <= used)
        return 0;
    uint64_t want = (uint64_t) (target - used);
    uint32_t credit = pd_wrec_credit(wk, cls);
    return want < credit ? want : credit;
}

void pd_reg_share(pd_reg_t *w, int cls, uint64_t ready)
{
    assert(cls >= 0 && cls < PD_JOBS_CLASSES);
    uint64_t total = 0;
    double top = 0; /* a level every worker's credit is full at */
    for (uint32_t i = 0; i < w->span; i++) {
        pd_wrec_t *wk = w->w[i];
        if (!wk)
            continue;
        wk->share = pd_wrec_credit(wk, cls);
        total += wk->share;
        uint32_t slots = s_slots(wk, cls);
        if (slots) {
            double lvl = (double) (s_used(wk, cls) + wk->share) / slots + 1.0;
            top = lvl > top ? lvl : top;
        }
    }
    if (ready >= total)
        return; /* every credit is filled: the shares are the credits */
    if (ready == 0) {
        for (uint32_t i = 0; i < w->span; i++)
            if (w->w[i])
                w->w[i]->share = 0;
        return;
    }
    /* The lowest level that takes every ready job: f(x) = sum of s_fill
       grows with x. Bisection to a thousandth of a job per slot. */
    double lo = 0, hi = top;
    for (int it = 0; it < 40 && hi - lo > 1e-3; it++) {
        double mid = (lo + hi) / 2;
        uint64_t f = 0;
        for (uint32_t i = 0; i < w->span && f < ready; i++)
            if (w->w[i])
                f += s_fill(w->w[i], cls, mid);
        if (f >= ready)
            hi = mid;
        else
            lo = mid;
    }
    for (uint32_t i = 0; i < w->span; i++)
        if (w->w[i])
            w->w[i]->share = (uint32_t) s_fill(w->w[i], cls, hi);
}

pd_wrec_t *pd_reg_next_with_share(pd_reg_t *w, int cls)
{
    assert(cls >= 0 && cls < PD_JOBS_CLASSES);
    for (uint32_t k = 0; k < w->span; k++) {
        uint32_t i = (w->rr[cls] + k) % w->span;
        pd_wrec_t *wk = w->w[i];
        if (wk && wk->share > 0 && pd_wrec_credit(wk, cls) > 0) {
            w->rr[cls] = i + 1;
            return wk;
        }
    }
    return NULL;
}

uint32_t pd_reg_idle_slots(const pd_reg_t *w, int cls)
{
    assert(cls >= 0 && cls < PD_JOBS_CLASSES);
    uint32_t idle = 0;
    for (uint32_t i = 0; i < w->span; i++) {
        const pd_wrec_t *wk = w->w[i];
        if (wk && s_used(wk, cls) < s_slots(wk, cls))
            idle += s_slots(wk, cls) - s_used(wk, cls);
    }
    return idle;
}

pd_wrec_t *pd_reg_steal_from(pd_reg_t *w, int cls, int64_t now_ms, int64_t retry_ms,
                                   uint32_t *n)
{
    assert(cls >= 0 && cls < PD_JOBS_CLASSES);
    pd_wrec_t *best = NULL;
    uint32_t most = 0;
    for (uint32_t i = 0; i < w->span; i++) {
        pd_wrec_t *wk = w->w[i];
        if (!wk)
            continue;
        uint32_t slots = s_slots(wk, cls), used = s_used(wk, cls);
        uint32_t queued = used > slots ? used - slots : 0;
        if (queued <= most || (wk->steal_at && now_ms - wk->steal_at < retry_ms))
            continue;
        /* GPU jobs' run times are not measured: always worth it. */
        double us = cls == PD_JOBS_GPU ? -1 : wk->ewma_us;
        bool stuck = (double) (now_ms - wk->progress_ms) * 1000.0 >= PD_WORKERS_STEAL_MIN_US;
        if (us >= 0 && us * queued / (slots ? slots : 1) < PD_WORKERS_STEAL_MIN_US && !stuck)
            continue;
        most = queued;
        best = wk;
    }
    *n = most;
    return best;
}

void pd_wrec_observe(pd_wrec_t *wk, uint64_t us)
{
    double x = (double) us;
    wk->ewma_us = wk->ewma_us < 0 ? x : 0.9 * wk->ewma_us + 0.1 * x;
    /* One job running per slot, plus about TARGET_US of work queued behind it,
       so a slot never waits a broker round trip for its next job. */
    double d = 1.0 + ceil(PD_WORKERS_TARGET_US / (wk->ewma_us < 1.0 ? 1.0 : wk->ewma_us));
    if (d < PD_WORKERS_DEPTH_MIN)
        d = PD_WORKERS_DEPTH_MIN;
    if (d > PD_WORKERS_DEPTH_MAX)
        d = PD_WORKERS_DEPTH_MAX;
    wk->depth = (uint32_t) d;
}

int pd_wrec_track(pd_wrec_t *wk, pd_jobrec_t *job, uint64_t id)
{
    if (wk->ninflight == wk->capinflight) {
        uint32_t cap = wk->capinflight ? wk->capinflight * 2 : 256;
        uint64_t *a = realloc(wk->inflight, cap * sizeof *a);
        if (!a)
            return PD_ENOMEM;
        wk->inflight = a;
        wk->capinflight = cap;
    }
    job->worker = wk->index;
    job->wpos = wk->ninflight;
    wk->inflight[wk->ninflight++] = id;
    wk->ngpuinflight += job->gpu;
    return 0;
}

void pd_wrec_untrack(pd_wrec_t *wk, pd_jobs_t *jobs, pd_jobrec_t *job)
{
    uint32_t pos = job->wpos;
    assert(job->worker == wk->index && pos < wk->ninflight);
    assert(!job->gpu || wk->ngpuinflight > 0);
    wk->ngpuinflight -= job->gpu;
    uint64_t last = wk->inflight[--wk->ninflight];
    if (pos != wk->ninflight) {
        wk->inflight[pos] = last;
        pd_jobrec_t *moved = pd_jobs_get(jobs, last);
        assert(moved);
        moved->wpos = pos;
    }
}

bool pd_wrec_has_mod(const pd_wrec_t *wk, uint32_t mod)
{
    return mod / 8 < wk->mods_bytes && (wk->mods_sent[mod / 8] >> (mod % 8) & 1);
}

int pd_wrec_set_mod(pd_wrec_t *wk, uint32_t mod)
{
    if (mod / 8 >= wk->mods_bytes) {
        uint32_t n = mod / 8 + 16;
        uint8_t *a = realloc(wk->mods_sent, n);
        if (!a)
            return PD_ENOMEM;
        memset(a + wk->mods_bytes, 0, n - wk->mods_bytes);
        wk->mods_sent = a;
        wk->mods_bytes = n;
    }
    wk->mods_sent[mod / 8] |= (uint8_t) (1u << (mod % 8));
    return 0;
}

void pd_wrec_unset_mod(pd_wrec_t *wk, uint32_t mod)
{
    if (mod / 8 < wk->mods_bytes)
        wk->mods_sent[mod / 8] &= (uint8_t) ~(1u << (mod % 8));
}

void pd_wrec_clear_mods(pd_wrec_t *wk)
{
    if (wk->mods_bytes)
        memset(wk->mods_sent, 0, wk->mods_bytes);
    if (wk->shared_bytes)
        memset(wk->shared_sent, 0, wk->shared_bytes);
}

bool pd_wrec_has_shared(const pd_wrec_t *wk, uint32_t i)
{
    return i / 8 < wk->shared_bytes && (wk->shared_sent[i / 8] >> (i % 8) & 1);
}

int pd_wrec_set_shared(pd_wrec_t *wk, uint32_t i, bool on)
{
    if (i / 8 >= wk->shared_bytes) {
        if (!on)
            return 0;
        uint32_t n = i / 8 + 16;
        uint8_t *a = realloc(wk->shared_sent, n);
        if (!a)
            return PD_ENOMEM;
        memset(a + wk->shared_bytes, 0, n - wk->shared_bytes);
        wk->shared_sent = a;
        wk->shared_bytes = n;
    }
    if (on)
        wk->shared_sent[i / 8] |= (uint8_t) (1u << (i % 8));
    else
        wk->shared_sent[i / 8] &= (uint8_t) ~(1u << (i % 8));
    return 0;
}

void pd_wrec_state(const pd_wrec_t *wk, pd_wrec_state_t *st)
{
    st->busy = wk->busy;
    st->queued = wk->wqueued;
    st->load = wk->load;
    snprintf(st->owner, sizeof st->owner, "%s", wk->owner);
}

void pd_wrec_set_state(pd_wrec_t *wk, const pd_wrec_state_t *st)
{
    wk->busy = st->busy > UINT32_MAX ? UINT32_MAX : (uint32_t) st->busy;
    wk->wqueued = st->queued > UINT32_MAX ? UINT32_MAX : (uint32_t) st->queued;
    wk->load = st->load;
    snprintf(wk->owner, sizeof wk->owner, "%s", st->owner);
}

void pd_wrec_pack_view(const pd_wrec_t *wk, msgpack_packer *pk, int64_t now_ms)
{
    char rid[PD_WORKERS_MAX_RID + 1];
    snprintf(rid, sizeof rid, "%.*s", (int) wk->ridlen, (const char *) wk->rid);
    bool pilot = wk->slurm_job[0] != 0;
    msgpack_pack_map(pk, 20 + (pilot ? 3 : 0));
    pd_pack_kv_str(pk, "id", rid);
    pd_pack_kv_str(pk, "host", wk->host);
    pd_pack_kv_str(pk, "platform", wk->platform);
    pd_pack_kv_int(pk, "pid", wk->pid);
    pd_pack_kv_uint(pk, "cpus", wk->cpus);
    pd_pack_kv_uint(pk, "gpus", wk->gpus);
    /* busy as last reported, but never more than the jobs it holds now */
    pd_pack_kv_uint(pk, "busy", wk->busy < wk->ninflight ? wk->busy : wk->ninflight);
    pd_pack_kv_uint(pk, "inflight", wk->ninflight);
    pd_pack_kv_uint(pk, "queued", wk->wqueued);
    pd_pack_kv_uint(pk, "done", wk->done);
    pd_pack_kv_uint(pk, "requeued", wk->requeued);
    pd_pack_kv_uint(pk, "nodes", wk->nodes);
    pd_pack_kv_uint(pk, "gpu_nodes", wk->gnodes);
    pd_pack_cstr(pk, "load");
    if (wk->load < 0)
        msgpack_pack_nil(pk);
    else
        msgpack_pack_double(pk, wk->load);
    pd_pack_kv_str(pk, "owner", wk->owner);
    pd_pack_cstr(pk, "gpu_names");
    msgpack_pack_array(pk, wk->ngpu_names);
    for (uint32_t g = 0; g < wk->ngpu_names; g++)
        pd_pack_cstr(pk, wk->gpu_names[g]);
    /* The GPU slots it offers now: the first `gpus` its ready described. */
    uint32_t ng = wk->ngpu < wk->gpus ? wk->ngpu : wk->gpus;
    pd_pack_cstr(pk, "gpu_info");
    msgpack_pack_array(pk, ng);
    for (uint32_t g = 0; g < ng; g++) {
        msgpack_pack_map(pk, 4);
        pd_pack_kv_str(pk, "name", wk->gpu[g].name);
        pd_pack_kv_uint(pk, "mem", wk->gpu[g].mem);
        pd_pack_kv_uint(pk, "cc_major", wk->gpu[g].cc_major);
        pd_pack_kv_uint(pk, "cc_minor", wk->gpu[g].cc_minor);
    }
    pd_pack_kv_uint(pk, "hb_ms", (uint64_t) (now_ms - wk->last_recv));
    pd_pack_kv_uint(pk, "up_s", (uint64_t) ((now_ms - wk->joined) / 1000));
    pd_pack_kv_str(pk, "version", wk->version);
    if (pilot) {
        pd_pack_kv_str(pk, "slurm_job", wk->slurm_job);
        pd_pack_kv_str(pk, "slurm_step", wk->slurm_step);
        pd_pack_kv_str(pk, "slurm_array", wk->slurm_array);
    }
}

const char *pd_wrec_label(const pd_wrec_t *wk, char *buf, size_t cap)
{
    char rid[64];
    size_t k = 0;
    for (uint32_t i = 0; i < wk->ridlen && k + 3 < sizeof rid; i++) {
        uint8_t c = wk->rid[i];
        if (c >= 0x21 && c < 0x7f)
            rid[k++] = (char) c;
        else
            k += (size_t) snprintf(rid + k, sizeof rid - k, "%02x", c);
    }
    rid[k] = 0;
    snprintf(buf, cap, "%s/%s", wk->host[0] ? wk->host : "?", rid);
    return buf;
}

uint32_t pd_wrec_release_jobs(pd_wrec_t *wk, pd_jobs_t *jobs, bool lost, uint32_t *requeued)
{
    uint32_t failed = 0, back = 0;
    for (uint32_t i = wk->ninflight; i-- > 0;) {
        if (pd_jobs_requeue(jobs, wk->inflight[i], lost, wk->host))
            failed++;
        else
            back++;
    }
    wk->ninflight = 0;
    wk->ngpuinflight = 0;
    *requeued = back;
    return failed;
}

uint32_t pd_reg_forgive(pd_reg_t *w, int64_t ms, int64_t now_ms)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < w->span; i++) {
        pd_wrec_t *wk = w->w[i];
        if (!wk)
            continue;
        wk->last_recv = wk->last_recv + ms > now_ms ? now_ms : wk->last_recv + ms;
        n++;
    }
    return n;
}

void pd_wrec_describe(pd_wrec_t *wk, const pd_wrec_desc_t *d)
{
    snprintf(wk->host, sizeof wk->host, "%s", d->host);
    snprintf(wk->platform, sizeof wk->platform, "%s", d->platform);
    wk->limits = d->limits;
    snprintf(wk->version, sizeof wk->version, "%s", d->version);
    snprintf(wk->key, sizeof wk->key, "%s", d->key);
    wk->ngpu_names = d->ngpu_names < PD_WORKERS_MAX_GPU_NAMES ? d->ngpu_names
                                                              : PD_WORKERS_MAX_GPU_NAMES;
    for (uint32_t i = 0; i < wk->ngpu_names; i++)
        snprintf(wk->gpu_names[i], sizeof wk->gpu_names[i], "%s", d->gpu_names[i]);
    wk->pid = d->pid;
    snprintf(wk->slurm_job, sizeof wk->slurm_job, "%s", d->slurm_job);
    snprintf(wk->slurm_step, sizeof wk->slurm_step, "%s", d->slurm_step);
    snprintf(wk->slurm_array, sizeof wk->slurm_array, "%s", d->slurm_array);
}
