/*  playdoh-submit: following jobs until they end (pd_submit_collect, for
    map, exec and wait). Results come in with long-polling fetches of any
    pending job (pd_fetch_any), are handed out in input order or as they
    end, and are released in batches; the first Ctrl-C cancels the jobs not
    done and hands out what ended.
*/
#include "submit.h"
#include "pd_plat.h"

#include <czmq.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_QUERY_IDS 262144 /* pending ids a collect request looks at, at most */
#define S_RELEASE_BATCH 4096
#define S_INTERRUPT_POLL_MS 200 /* the longest wait between two looks for Ctrl-C */

typedef struct {
    uint64_t id;  /* job id */
    size_t index; /* its position in the caller's list */
} s_pos_t;

static int s_pos_cmp(const void *a, const void *b)
{
    const s_pos_t *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The pending ids: sorted, with ended ones zeroed (tombstones) and skipped. */
typedef struct {
    uint64_t *ids;  /* sorted job ids; 0 = ended */
    size_t n;       /* entries */
    size_t head;    /* entries before head are all ended */
    size_t live;    /* entries not ended */
} s_pending_t;

/* Marks entry k (the job's rank in id order) as ended. */
static void s_pending_drop(s_pending_t *p, size_t k)
{
    if (p->ids[k] == 0)
        return;
    p->ids[k] = 0;
    p->live--;
    while (p->head < p->n && p->ids[p->head] == 0)
        p->head++;
}

/* Flushes the ids to release. */
static void s_release_flush(pd_client_t *c, uint64_t *rel, size_t *nrel)
{
    if (*nrel)
        pd_release(c, rel, *nrel);
    *nrel = 0;
}

int pd_submit_u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

/* Hands out ids[i] (still pending when Ctrl-C stopped the collect) as
   cancelled: a result of state cancelled, code PD_ECANCELLED, no value. */
static void s_emit_cancelled(pd_submit_emit_fn *emit, void *user, size_t i, uint64_t id)
{
    pd_result_t r = {.id = id, .state = PD_JOB_CANCELLED, .code = PD_ECANCELLED};
    if (emit)
        emit(user, i, &r);
}

/* After Ctrl-C: cancels the jobs still pending at the broker. list has
   room for every pending id (it is scratch). */
static void s_cancel_pending(pd_client_t *c, const s_pending_t *pend, uint64_t *list)
{
    size_t k = 0;
    for (size_t i = pend->head; i < pend->n; i++)
        if (pend->ids[i])
            list[k++] = pend->ids[i];
    long rc = k ? pd_cancel(c, list, k) : 0;
    if (rc < 0)
        fprintf(stderr, "playdoh-submit: could not cancel the %zu jobs not done: %s\n", k,
                pd_client_error(c));
}

/* One collect: what pd_submit_collect was asked and where it stands. */
typedef struct {
    pd_client_t *c;          /* the session's client */
    const uint64_t *ids;     /* the jobs, in input order */
    size_t n;                /* how many */
    bool keep_order;         /* emit in input order */
    bool release;            /* release each job once emitted */
    pd_progress_t *bar;      /* the progress bar, or NULL */
    pd_submit_emit_fn *emit; /* the caller's emitter, or NULL */
    void *user;              /* its argument */
    s_pos_t *pos;            /* (id, index) sorted by id */
    s_pending_t pend;        /* the jobs not ended */
    uint64_t *query;         /* scratch: the ids of one fetch */
    pd_result_t **held;      /* keep_order: results waiting for their turn */
    pd_result_t *batch;      /* the results of one fetch */
    uint64_t *rel;           /* ids to release, S_RELEASE_BATCH at most */
    size_t nrel;             /* ids in rel */
    size_t cursor;           /* keep_order: the next index to emit */
    bool stopping;           /* Ctrl-C came: the jobs not done are cancelled */
    uint64_t *cancelled;     /* then: the ids shown cancelled */
    size_t ncancel;          /* ids in cancelled */
    bool emitted;            /* this turn emitted something */
    bool aborted;            /* memory ran out: nothing more is said or released */
    size_t done, failed;     /* jobs ended done, and otherwise */
} s_collect_t;

/* Allocates k's arrays and sorts the ids; false when memory runs out. */
static bool s_collect_init(s_collect_t *k)
{
    size_t n = k->n;
    k->pos = malloc((n ? n : 1) * sizeof *k->pos);
    k->pend = (s_pending_t){.ids = malloc((n ? n : 1) * sizeof(uint64_t)), .n = n, .live = n};
    k->query = malloc(((n < S_QUERY_IDS ? n : S_QUERY_IDS) + 1) * sizeof *k->query);
    k->held = k->keep_order ? calloc(n ? n : 1, sizeof *k->held) : NULL;
    k->batch = calloc(PD_FETCH_ANY_MAX, sizeof *k->batch);
    k->rel = malloc(S_RELEASE_BATCH * sizeof *k->rel);
    if (!k->pos || !k->pend.ids || !k->query || (k->keep_order && !k->held) || !k->batch ||
        !k->rel)
        return false;
    for (size_t i = 0; i < n; i++)
        k->pos[i] = (s_pos_t){k->ids[i], i};
    qsort(k->pos, n, sizeof *k->pos, s_pos_cmp);
    for (size_t i = 0; i < n; i++)
        k->pend.ids[i] = k->pos[i].id;
    return true;
}

static void s_collect_free(s_collect_t *k)
{
    free(k->cancelled);
    if (k->held) {
        for (size_t i = 0; i < k->n; i++)
            if (k->held[i]) {
                pd_results_clear(k->held[i], 1);
                free(k->held[i]);
            }
        free(k->held);
    }
    free(k->pos);
    free(k->pend.ids);
    free(k->query);
    free(k->batch);
    free(k->rel);
}

/* Queues id for release, flushing a full batch. */
static void s_collect_release(s_collect_t *k, uint64_t id)
{
    if (!k->release)
        return;
    k->rel[k->nrel++] = id;
    if (k->nrel == S_RELEASE_BATCH)
        s_release_flush(k->c, k->rel, &k->nrel);
}

/* Hands r (the result of the job at index) to the emitter, erasing the bar
   first, and queues its release. */
static void s_collect_emit(s_collect_t *k, size_t index, const pd_result_t *r)
{
    if (k->emit) {
        if (!k->emitted)
            pd_progress_hide(k->bar);
        k->emitted = true;
        k->emit(k->user, index, r);
    }
    s_collect_release(k, r->id);
}

/* The first Ctrl-C: cancels the jobs not done. Returns 0 or PD_ENOMEM. */
static int s_collect_interrupt(s_collect_t *k)
{
    k->stopping = true;
    pd_progress_hide(k->bar);
    pd_plat_catch_interrupt(false);
    fprintf(stderr, "playdoh-submit: interrupted: cancelling the %zu jobs not done "
            "(Ctrl-C again to quit at once)\n", k->pend.live);
    k->cancelled = malloc((k->n ? k->n : 1) * sizeof *k->cancelled);
    if (!k->cancelled) {
        fprintf(stderr, "playdoh-submit: out of memory stopping %zu jobs\n", k->n);
        return PD_ENOMEM;
    }
    s_cancel_pending(k->c, &k->pend, k->cancelled);
    return 0;
}

/* Takes one fetched result: the job has ended. Returns 0 or PD_ENOMEM. */
static int s_collect_take(s_collect_t *k, pd_result_t *r)
{
    s_pos_t key = {r->id, 0};
    s_pos_t *p = bsearch(&key, k->pos, k->n, sizeof *k->pos, s_pos_cmp);
    if (!p) { /* not ours: cannot happen, the broker answers what we ask */
        pd_results_clear(r, 1);
        return 0;
    }
    s_pending_drop(&k->pend, (size_t) (p - k->pos));
    if (r->state == PD_JOB_DONE)
        k->done++;
    else if (k->stopping && r->state == PD_JOB_CANCELLED)
        k->cancelled[k->ncancel++] = r->id;
    else
        k->failed++;
    if (k->keep_order) {
        k->held[p->index] = malloc(sizeof *r);
        if (!k->held[p->index]) {
            fprintf(stderr, "playdoh-submit: out of memory holding results\n");
            pd_results_clear(r, 1);
            return PD_ENOMEM;
        }
        *k->held[p->index] = *r; /* takes its buffers */
        memset(r, 0, sizeof *r);
        return 0;
    }
    s_collect_emit(k, p->index, r);
    pd_results_clear(r, 1);
    return 0;
}

/* keep_order: emits the held results whose turn has come. */
static void s_collect_in_order(s_collect_t *k)
{
    while (k->keep_order && k->cursor < k->n && k->held[k->cursor]) {
        pd_result_t *r = k->held[k->cursor];
        s_collect_emit(k, k->cursor, r);
        pd_results_clear(r, 1);
        free(r);
        k->held[k->cursor++] = NULL;
    }
}

/* How long the next fetch may wait, given the time-out and Ctrl-C. */
static int s_collect_wait(const s_collect_t *k, int timeout_ms, bool interruptible,
                          int64_t t0)
{
    int wait = k->bar ? 500 : 5000;
    if (interruptible && wait > S_INTERRUPT_POLL_MS)
        wait = S_INTERRUPT_POLL_MS;
    if (k->stopping)
        wait = 0; /* what ended is in, or is cancelled */
    if (timeout_ms >= 0) {
        int64_t spent = zclock_mono() - t0;
        if (spent >= timeout_ms && wait > 0)
            wait = 0;
        else if (timeout_ms - spent < wait)
            wait = (int) (timeout_ms - spent);
    }
    return wait;
}

/* After Ctrl-C: hands out, in input order, what ended and waits for its
   turn and a cancelled mark for each job not done, then says so. */
static void s_collect_stopped(s_collect_t *k)
{
    for (size_t i = k->keep_order ? k->cursor : 0; i < k->n; i++) {
        pd_result_t *r = k->keep_order ? k->held[i] : NULL;
        if (r) {
            if (k->emit)
                k->emit(k->user, i, r);
            if (k->release)
                k->rel[k->nrel++] = r->id;
            pd_results_clear(r, 1);
            free(r);
            k->held[i] = NULL;
        } else {
            s_pos_t key = {k->ids[i], 0};
            s_pos_t *p = bsearch(&key, k->pos, k->n, sizeof *k->pos, s_pos_cmp);
            if (!p || !k->pend.ids[p - k->pos])
                continue; /* ended, and already handed out */
            s_emit_cancelled(k->emit, k->user, i, k->ids[i]);
            k->cancelled[k->ncancel++] = k->ids[i];
            if (k->release)
                k->rel[k->nrel++] = k->ids[i];
        }
        if (k->nrel == S_RELEASE_BATCH)
            s_release_flush(k->c, k->rel, &k->nrel);
    }
    fflush(stdout);
    fprintf(stderr, "playdoh-submit: interrupted: %zu of %zu jobs ended and are printed "
            "(%zu done, %zu failed); %zu cancelled, with ids: ", k->done + k->failed, k->n,
            k->done, k->failed, k->ncancel);
    qsort(k->cancelled, k->ncancel, sizeof *k->cancelled, pd_submit_u64_cmp);
    if (k->ncancel)
        pd_submit_print_ranges(stderr, k->cancelled, k->ncancel);
    else
        fprintf(stderr, "none\n");
    fprintf(stderr, "playdoh-submit: (--detach leaves jobs running: results, status and "
            "cancel take their ids later)\n");
}

/* Fetches and hands out until every job has ended, the wait runs out or
   an error comes. Returns 0 or a PD_E* code after printing why. */
static int s_collect_loop(s_collect_t *k, int timeout_ms, bool interruptible)
{
    int64_t t0 = zclock_mono();
    while (k->pend.live > 0) {
        /* Ctrl-C: the first cancels the jobs not done, prints what ended
           and stops; the second (the default action is back by then)
           exits at once. */
        if (interruptible && !k->stopping && pd_plat_interrupt_taken() &&
            s_collect_interrupt(k)) {
            k->aborted = true;
            return PD_ENOMEM;
        }
        int wait = s_collect_wait(k, timeout_ms, interruptible, t0);
        size_t nq = 0;
        for (size_t i = k->pend.head; i < k->pend.n && nq < S_QUERY_IDS; i++)
            if (k->pend.ids[i])
                k->query[nq++] = k->pend.ids[i];
        long got = pd_fetch_any(k->c, k->query, nq, wait, k->batch, PD_FETCH_ANY_MAX);
        if (got < 0) {
            pd_progress_hide(k->bar);
            fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(k->c));
            return (int) got;
        }
        k->emitted = false;
        for (long i = 0; i < got; i++)
            if (s_collect_take(k, &k->batch[i])) {
                k->aborted = true;
                return PD_ENOMEM;
            }
        s_collect_in_order(k);
        if (k->emitted)
            fflush(stdout);
        if (!k->stopping)
            pd_progress_update(k->bar, k->done, k->failed, k->emitted);
        if (got == 0 && wait == 0)
            break; /* the wait ran out */
    }
    return 0;
}

int pd_submit_collect(pd_submit_t *s, const uint64_t *ids, size_t n, int timeout_ms,
                      bool keep_order, bool release, bool interruptible, pd_progress_t *bar,
                      pd_submit_emit_fn *emit, void *user, size_t *done, size_t *failed)
{
    s_collect_t k = {.c = s->c, .ids = ids, .n = n, .keep_order = keep_order,
                     .release = release, .bar = bar, .emit = emit, .user = user};
    *done = *failed = 0;
    int rc = 0;
    if (!s_collect_init(&k)) {
        fprintf(stderr, "playdoh-submit: out of memory following %zu jobs\n", n);
        s_collect_free(&k);
        return PD_ENOMEM;
    }
    pd_progress_update(bar, 0, 0, true);
    if (interruptible)
        pd_plat_catch_interrupt(true);
    rc = s_collect_loop(&k, timeout_ms, interruptible);
    if (k.stopping && rc == 0 && !k.aborted) {
        s_collect_stopped(&k);
        rc = PD_ECANCELLED;
    }
    if (release && !k.aborted)
        s_release_flush(k.c, k.rel, &k.nrel);
    if (interruptible)
        pd_plat_catch_interrupt(false);
    *done = k.done;
    *failed = k.failed;
    s_collect_free(&k);
    return rc;
}
