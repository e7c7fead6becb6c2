/*  pd_snapshot: the broker's state as JSON texts for the dashboard. */
#include "pd_snapshot.h"

#include "pd_build.h"
#include "pd_broker_int.h"
#include "pd_json.h"
#include "pd_jobs.h"
#include "pd_workers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pd_snap_text {
    atomic_uint refs;
    size_t len;
    char data[];
};

typedef struct {
    uint64_t wall_ms; /* when (Unix time) */
    char kind[16];    /* "joined", "lost", "refused" */
    char text[160];
} s_event_t;

struct pd_snapshot {
    pthread_mutex_t lock;
    pd_snap_text_t *texts[PD_SNAP_COUNT]; /* under lock */
    atomic_uint_fast64_t seq;
    /* The loop's own state, touched by pd_snapshot_publish only: */
    int64_t last_ms;
    uint64_t published; /* snapshots built */
    char (*labels)[160]; /* per registry index: the worker seen there ("" none) */
    uint32_t nlabels;
    uint64_t refused;   /* counters at the previous snapshot */
    s_event_t ring[PD_SNAPSHOT_EVENTS];
    uint32_t nevents;   /* events ever logged (the ring holds the last ones) */
};

static pd_snap_text_t *s_text(const void *p, size_t n)
{
    pd_snap_text_t *t = malloc(sizeof *t + n);
    if (!t)
        return NULL;
    atomic_init(&t->refs, 1);
    t->len = n;
    memcpy(t->data, p, n);
    return t;
}

void pd_snap_text_drop(pd_snap_text_t *t)
{
    if (t && atomic_fetch_sub(&t->refs, 1) == 1)
        free(t);
}

const char *pd_snap_text_data(const pd_snap_text_t *t, size_t *len)
{
    *len = t->len;
    return t->data;
}

pd_snapshot_t *pd_snapshot_new(void)
{
    pd_snapshot_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    for (int k = 0; k < PD_SNAP_COUNT; k++) {
        if (!(s->texts[k] = s_text("{}", 2))) {
            pd_snapshot_destroy(&s);
            return NULL;
        }
    }
    s->last_ms = INT64_MIN / 2;
    return s;
}

void pd_snapshot_destroy(pd_snapshot_t **ps)
{
    pd_snapshot_t *s = *ps;
    if (!s)
        return;
    for (int k = 0; k < PD_SNAP_COUNT; k++)
        pd_snap_text_drop(s->texts[k]);
    pthread_mutex_destroy(&s->lock);
    free(s->labels);
    free(s);
    *ps = NULL;
}

pd_snap_text_t *pd_snapshot_get(pd_snapshot_t *s, pd_snap_kind_t k)
{
    pthread_mutex_lock(&s->lock);
    pd_snap_text_t *t = s->texts[k];
    atomic_fetch_add(&t->refs, 1);
    pthread_mutex_unlock(&s->lock);
    return t;
}

uint64_t pd_snapshot_seq(pd_snapshot_t *s)
{
    return atomic_load(&s->seq);
}

static uint64_t s_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

static void s_event(pd_snapshot_t *s, const char *kind, const char *text)
{
    s_event_t *e = &s->ring[s->nevents % PD_SNAPSHOT_EVENTS];
    e->wall_ms = s_wall_ms();
    snprintf(e->kind, sizeof e->kind, "%s", kind);
    snprintf(e->text, sizeof e->text, "%s", text);
    s->nevents++;
}

/* Compares the registry with the previous snapshot's: a slot whose worker
   changed is a worker lost (or gone) and one joined. O(registry span). */
static void s_diff_workers(pd_snapshot_t *s, pd_broker_t *b)
{
    pd_reg_t *reg = pd_broker_workers(b);
    uint32_t span = pd_reg_span(reg);
    if (span > s->nlabels) {
        char (*more)[160] = realloc(s->labels, (size_t) span * sizeof *more);
        if (!more)
            return; /* the log misses these; the next snapshot tries again */
        memset(more + s->nlabels, 0, (size_t) (span - s->nlabels) * sizeof *more);
        s->labels = more;
        s->nlabels = span;
    }
    char label[160];
    for (uint32_t i = 0; i < s->nlabels; i++) {
        pd_wrec_t *wk = i < span ? pd_reg_at(reg, i) : NULL;
        const char *now = wk ? pd_wrec_label(wk, label, sizeof label) : "";
        if (strcmp(now, s->labels[i]) == 0)
            continue;
        if (s->labels[i][0])
            s_event(s, "lost", s->labels[i]);
        if (now[0])
            s_event(s, "joined", now);
        snprintf(s->labels[i], sizeof s->labels[i], "%s", now);
    }
    const pd_broker_stats_t *st = pd_broker_counters(b);
    uint64_t refused = st->refused_role + st->handshakes_failed;
    if (refused > s->refused) {
        char text[80];
        snprintf(text, sizeof text, "%llu messages or connections refused for their key",
                 (unsigned long long) (refused - s->refused));
        s_event(s, "refused", text);
    }
    s->refused = refused;
}

static void s_pack_cluster(pd_broker_t *b, msgpack_packer *pk, uint64_t wall_ms)
{
    pd_reg_t *reg = pd_broker_workers(b);
    pd_jobs_t *jobs = pd_broker_jobs(b);
    const pd_broker_stats_t *st = pd_broker_counters(b);
    msgpack_pack_map(pk, 9);
    pd_pack_kv_str(pk, "version", PD_VERSION);
    pd_pack_kv_str(pk, "name", pd_broker_name(b));
    pd_pack_kv_str(pk, "cluster", pd_broker_cluster(b));
    pd_pack_kv_uint(pk, "time_ms", wall_ms);
    pd_pack_kv_uint(pk, "queued", pd_jobs_queued(jobs));
    pd_pack_kv_uint(pk, "unfinished", pd_jobs_unfinished(jobs));
    pd_pack_cstr(pk, "counters");
    msgpack_pack_map(pk, 4);
    pd_pack_kv_uint(pk, "msgs_in", st->msgs_in);
    pd_pack_kv_uint(pk, "msgs_out", st->msgs_out);
    pd_pack_kv_uint(pk, "workers_lost", st->workers_lost);
    pd_pack_kv_uint(pk, "refused", st->refused_role + st->handshakes_failed);
    uint64_t cpus = 0, gpus = 0, busy = 0;
    for (uint32_t i = 0; i < pd_reg_span(reg); i++) {
        pd_wrec_t *wk = pd_reg_at(reg, i);
        if (wk) {
            cpus += wk->cpus;
            gpus += wk->gpus;
            busy += wk->busy;
        }
    }
    pd_pack_cstr(pk, "totals");
    msgpack_pack_map(pk, 4);
    pd_pack_kv_uint(pk, "workers", pd_reg_count(reg));
    pd_pack_kv_uint(pk, "cpus", cpus);
    pd_pack_kv_uint(pk, "gpus", gpus);
    pd_pack_kv_uint(pk, "busy", busy);
    pd_pack_cstr(pk, "workers");
    msgpack_pack_array(pk, pd_reg_count(reg));
    for (uint32_t i = 0; i < pd_reg_span(reg); i++) {
        pd_wrec_t *wk = pd_reg_at(reg, i);
        if (wk)
            pd_wrec_pack_view(wk, pk, pd_broker_now_ms(b));
    }
}

/* "failed": the latest failed jobs, the newest first, each with its error
   (code, msg, host, slot, attempts; never its arguments), kept after their
   results are released: what a failure looked like, one click away. */
static void s_pack_failed(pd_jobs_t *jobs, msgpack_packer *pk)
{
    pd_jobs_failure_t f[PD_JOBS_RECENT_FAILED]; /* 24 KiB, on the loop thread's stack */
    uint32_t n = pd_jobs_recent_failed(jobs, f, PD_JOBS_RECENT_FAILED);
    pd_pack_cstr(pk, "failed");
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        msgpack_pack_map(pk, 4);
        pd_pack_kv_uint(pk, "id", f[i].id);
        pd_pack_kv_str(pk, "fn", pd_jobs_fn_name(jobs, f[i].fn));
        pd_pack_kv_str(pk, "owner", pd_jobs_owner_id(jobs, f[i].fn));
        pd_pack_cstr(pk, "error");
        pd_jobs_pack_failure(pk, &f[i]);
    }
}

static void s_pack_batches(pd_broker_t *b, msgpack_packer *pk, uint64_t wall_ms)
{
    size_t n;
    pd_jobs_t *jobs = pd_broker_jobs(b);
    pd_jobs_owner_t *ow = pd_jobs_owners(jobs, &n);
    msgpack_pack_map(pk, 3);
    pd_pack_kv_uint(pk, "time_ms", wall_ms);
    pd_pack_cstr(pk, "owners");
    msgpack_pack_array(pk, (uint32_t) n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(pk, 5);
        pd_pack_kv_str(pk, "owner", ow[i].owner);
        pd_pack_kv_uint(pk, "batches", ow[i].batches);
        pd_pack_kv_uint(pk, "queued", ow[i].queued);
        pd_pack_kv_uint(pk, "running", ow[i].running);
        pd_pack_kv_uint(pk, "final", ow[i].final);
    }
    free(ow);
    s_pack_failed(jobs, pk);
}

static void s_pack_events(const pd_snapshot_t *s, msgpack_packer *pk)
{
    uint32_t kept = s->nevents < PD_SNAPSHOT_EVENTS ? s->nevents : PD_SNAPSHOT_EVENTS;
    msgpack_pack_map(pk, 2);
    pd_pack_kv_uint(pk, "total", s->nevents);
    pd_pack_cstr(pk, "events");
    msgpack_pack_array(pk, kept);
    for (uint32_t i = s->nevents - kept; i != s->nevents; i++) {
        const s_event_t *e = &s->ring[i % PD_SNAPSHOT_EVENTS];
        msgpack_pack_map(pk, 3);
        pd_pack_kv_uint(pk, "time_ms", e->wall_ms);
        pd_pack_kv_str(pk, "kind", e->kind);
        pd_pack_kv_str(pk, "text", e->text);
    }
}

/* Packs one text of kind k, converts it to JSON and swaps it in. */
static void s_swap(pd_snapshot_t *s, pd_broker_t *b, int k, uint64_t wall_ms, pd_buf_t *mp,
                   pd_buf_t *json)
{
    msgpack_packer pk;
    pd_buf_reset(mp);
    pd_buf_reset(json);
    pd_packer_init(&pk, mp);
    if (k == PD_SNAP_CLUSTER)
        s_pack_cluster(b, &pk, wall_ms);
    else if (k == PD_SNAP_BATCHES)
        s_pack_batches(b, &pk, wall_ms);
    else
        s_pack_events(s, &pk);
    pd_snap_text_t *t;
    if (mp->failed || pd_msgpack_to_json(mp->data, mp->len, json) ||
        !(t = s_text(json->data, json->len)))
        return; /* out of memory: the previous text stays */
    pthread_mutex_lock(&s->lock);
    pd_snap_text_t *old = s->texts[k];
    s->texts[k] = t;
    pthread_mutex_unlock(&s->lock);
    pd_snap_text_drop(old);
}

void pd_snapshot_publish(pd_snapshot_t *s, pd_broker_t *b, int64_t now_ms)
{
    if (now_ms - s->last_ms < PD_SNAPSHOT_PERIOD_MS)
        return;
    s->last_ms = now_ms;
    s_diff_workers(s, b);
    uint64_t wall_ms = s_wall_ms();
    pd_buf_t mp, json;
    pd_buf_init(&mp);
    pd_buf_init(&json);
    for (int k = 0; k < PD_SNAP_COUNT; k++) {
        /* The per-owner counts walk the job table: once a second. */
        if (k == PD_SNAP_BATCHES && s->published % PD_SNAPSHOT_BATCHES_EVERY)
            continue;
        s_swap(s, b, k, wall_ms, &mp, &json);
    }
    s->published++;
    pd_buf_free(&mp);
    pd_buf_free(&json);
    atomic_fetch_add(&s->seq, 1);
}
