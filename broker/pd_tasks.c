/*  pd_tasks: task records, submit checking and gang placement; see
    pd_tasks.h.

    The table is an array of record pointers sorted by id (ids only grow, so
    adding is an append and finding is a binary search); a forgotten task
    is removed by a memmove. Labs run tens of tasks at once, not millions:
    the table is bounded (max records) and scanned in order by the broker
    to serve queued tasks first come, first served.
*/
#include "pd_tasks.h"
#include "pd_error.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pd_tasks {
    pd_taskrec_t **r; /* records sorted by id (owned) */
    uint32_t n;       /* records held */
    uint32_t cap;     /* capacity of r */
    uint32_t max;     /* records held at most */
    uint32_t live;    /* records queued, starting or running */
    uint32_t queued;  /* records queued */
    uint64_t next_id; /* id of the next task */
};

static bool s_is_live(uint8_t state)
{
    return state == PD_TASK_QUEUED || state == PD_TASK_STARTING || state == PD_TASK_RUNNING;
}

pd_tasks_t *pd_tasks_new(uint32_t max)
{
    pd_tasks_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->max = max ? max : PD_TASKS_DEFAULT_MAX;
    t->next_id = 1;
    return t;
}

uint64_t pd_tasks_next_id(const pd_tasks_t *t) { return t->next_id; }

void pd_tasks_set_next_id(pd_tasks_t *t, uint64_t id)
{
    if (id > t->next_id)
        t->next_id = id;
}

static void s_free_rec(pd_taskrec_t *r)
{
    if (!r)
        return;
    for (uint32_t i = 0; r->nodes && i < r->n; i++) {
        free(r->nodes[i].ep);
        free(r->nodes[i].res);
    }
    free(r->nodes);
    free(r->args);
    free(r->arg_off);
    free(r->tubes);
    free(r->by_src);
    free(r->by_dst);
    free(r->src_first);
    free(r->dst_first);
    free(r->progress);
    free(r);
}

void pd_tasks_destroy(pd_tasks_t **p)
{
    if (!p || !*p)
        return;
    pd_tasks_t *t = *p;
    for (uint32_t i = 0; i < t->n; i++)
        s_free_rec(t->r[i]);
    free(t->r);
    free(t);
    *p = NULL;
}

pd_taskrec_t *pd_tasks_get(pd_tasks_t *t, uint64_t id)
{
    uint32_t lo = 0, hi = t->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (t->r[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->n && t->r[lo]->id == id ? t->r[lo] : NULL;
}

pd_taskrec_t *pd_tasks_at(pd_tasks_t *t, uint32_t i) { return i < t->n ? t->r[i] : NULL; }
uint32_t pd_tasks_count(const pd_tasks_t *t) { return t->n; }
uint32_t pd_tasks_live(const pd_tasks_t *t) { return t->live; }
uint32_t pd_tasks_queued(const pd_tasks_t *t) { return t->queued; }

void pd_tasks_set_state(pd_tasks_t *t, pd_taskrec_t *r, uint8_t state)
{
    t->live += s_is_live(state);
    t->live -= s_is_live(r->state);
    t->queued += state == PD_TASK_QUEUED;
    t->queued -= r->state == PD_TASK_QUEUED;
    r->state = state;
}

/* ---- checking a submit -------------------------------------------------- */

static int s_why(char *why, size_t cap, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int s_why(char *why, size_t cap, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return rc;
}

static int s_cmp_row(const void *a, const void *b)
{
    const uint32_t *x = a, *y = b;
    for (int k = 0; k < 3; k++)
        if (x[k] != y[k])
            return x[k] < y[k] ? -1 : 1;
    return 0;
}

/* Start index of each node's rows in rows sorted by their first column. */
static uint32_t *s_first(uint32_t (*rows)[3], uint32_t nrows, uint32_t n)
{
    uint32_t *first = malloc((n + 1) * sizeof *first);
    if (!first)
        return NULL;
    uint32_t k = 0;
    for (uint32_t i = 0; i <= n; i++) {
        while (k < nrows && rows[k][0] < i)
            k++;
        first[i] = k;
    }
    return first;
}

/* Reads tubes (names) into r. */
static int s_read_tubes(pd_taskrec_t *r, const pd_m_task_submit_t *q, char *why, size_t whycap)
{
    const uint8_t *raw = q->tubes.p;
    size_t len = q->tubes.len;
    pd_rd_t rd;
    pd_rd_init(&rd, raw, len);
    uint32_t count;
    if (pd_rd_array(&rd, &count) || count > PD_TASKS_MAX_TUBES)
        return s_why(why, whycap, PD_EINVAL, "task_submit: 'tubes' must be an array of at most "
                     "%u names", PD_TASKS_MAX_TUBES);
    const char *names[PD_TASKS_MAX_TUBES];
    uint32_t lens[PD_TASKS_MAX_TUBES];
    for (uint32_t i = 0; i < count; i++) {
        if (pd_rd_str(&rd, &names[i], &lens[i]) || lens[i] == 0
            || lens[i] > PD_TASKS_MAX_TUBE_NAME)
            return s_why(why, whycap, PD_EINVAL, "task_submit: tube %u must be a name of 1 to "
                         "%u bytes", i, PD_TASKS_MAX_TUBE_NAME);
        if (memchr(names[i], 0, lens[i]))
            return s_why(why, whycap, PD_EINVAL, "task_submit: tube %u has a NUL byte in its "
                         "name", i);
        for (uint32_t j = 0; j < i; j++)
            if (lens[j] == lens[i] && memcmp(names[j], names[i], lens[i]) == 0)
                return s_why(why, whycap, PD_EINVAL, "task_submit: tube '%.*s' is named twice",
                             (int) lens[i], names[i]);
    }
    r->tubes = malloc(len);
    if (!r->tubes)
        return s_why(why, whycap, PD_ENOMEM, "the broker is out of memory");
    memcpy(r->tubes, raw, len);
    r->tubes_len = (uint32_t) len;
    r->ntubes = count;
    return 0;
}

/* Reads edges [[tube, src, dst], ...] into r, checked and indexed. */
static int s_read_edges(pd_taskrec_t *r, const pd_m_task_submit_t *q, char *why, size_t whycap)
{
    pd_rd_t rd;
    uint32_t count;
    pd_rd_init(&rd, q->edges.p, q->edges.len);
    if (pd_rd_array(&rd, &count) || count > PD_TASKS_MAX_EDGES)
        return s_why(why, whycap, PD_EINVAL, "task_submit: 'edges' must be an array of at most "
                     "%u [tube, src, dst] triples", PD_TASKS_MAX_EDGES);
    r->nedges = count;
    r->by_src = malloc((count ? count : 1) * sizeof *r->by_src);
    r->by_dst = malloc((count ? count : 1) * sizeof *r->by_dst);
    if (!r->by_src || !r->by_dst)
        return s_why(why, whycap, PD_ENOMEM, "the broker is out of memory");
    for (uint32_t i = 0; i < count; i++) {
        uint32_t three;
        uint64_t tube, src, dst;
        if (pd_rd_array(&rd, &three) || three != 3 || pd_rd_uint(&rd, &tube)
            || pd_rd_uint(&rd, &src) || pd_rd_uint(&rd, &dst))
            return s_why(why, whycap, PD_EINVAL, "task_submit: edge %u is not [tube, src, dst] "
                         "(three non-negative integers)", i);
        if (tube >= r->ntubes || src >= r->n || dst >= r->n)
            return s_why(why, whycap, PD_EINVAL, "task_submit: edge %u (tube %llu, %llu -> %llu) "
                         "is out of range: the task has %u tubes and %u nodes (0 .. %u)", i,
                         (unsigned long long) tube, (unsigned long long) src,
                         (unsigned long long) dst, r->ntubes, r->n, r->n - 1);
        if (src == dst)
            return s_why(why, whycap, PD_EINVAL, "task_submit: edge %u (%llu -> %llu) goes from "
                         "a node to itself: a node cannot send to itself", i,
                         (unsigned long long) src, (unsigned long long) dst);
        r->by_src[i][0] = (uint32_t) src;
        r->by_src[i][1] = (uint32_t) tube;
        r->by_src[i][2] = (uint32_t) dst;
        r->by_dst[i][0] = (uint32_t) dst;
        r->by_dst[i][1] = (uint32_t) tube;
        r->by_dst[i][2] = (uint32_t) src;
    }
    qsort(r->by_src, count, sizeof *r->by_src, s_cmp_row);
    qsort(r->by_dst, count, sizeof *r->by_dst, s_cmp_row);
    for (uint32_t i = 1; i < count; i++)
        if (s_cmp_row(r->by_src[i], r->by_src[i - 1]) == 0)
            return s_why(why, whycap, PD_EINVAL, "task_submit: edge %u -> %u on tube %u is given "
                         "twice", r->by_src[i][0], r->by_src[i][2], r->by_src[i][1]);
    r->src_first = s_first(r->by_src, count, r->n);
    r->dst_first = s_first(r->by_dst, count, r->n);
    if (!r->src_first || !r->dst_first)
        return s_why(why, whycap, PD_ENOMEM, "the broker is out of memory");
    return 0;
}

/* Reads args (absent: nil for every node) into r. */
static int s_read_args(pd_taskrec_t *r, const pd_m_task_submit_t *q, char *why, size_t whycap)
{
    r->arg_off = malloc(((size_t) r->n + 1) * sizeof *r->arg_off);
    if (!r->arg_off)
        return s_why(why, whycap, PD_ENOMEM, "the broker is out of memory");
    if (!q->has_args) {
        r->args = malloc(r->n);
        if (!r->args)
            return s_why(why, whycap, PD_ENOMEM, "the broker is out of memory");
        memset(r->args, 0xc0, r->n); /* nil */
        for (uint32_t i = 0; i <= r->n; i++)
            r->arg_off[i] = i;
        return 0;
    }
    pd_rd_t rd;
    uint32_t count;
    pd_rd_init(&rd, q->args.p, q->args.len);
    if (pd_rd_array(&rd, &count) || count != r->n)
        return s_why(why, whycap, PD_EINVAL, "task_submit: 'args' must be an array of one value "
                     "per node (%u)", r->n);
    const uint8_t *start = rd.p;
    for (uint32_t i = 0; i < count; i++) {
        r->arg_off[i] = (uint32_t) (rd.p - start);
        if (pd_rd_skip(&rd, NULL, NULL))
            return s_why(why, whycap, PD_EPROTO, "task_submit: argument %u is malformed", i);
    }
    size_t len = (size_t) (rd.p - start);
    r->arg_off[count] = (uint32_t) len;
    r->args = malloc(len ? len : 1);
    if (!r->args)
        return s_why(why, whycap, PD_ENOMEM, "the broker is out of memory");
    memcpy(r->args, start, len);
    return 0;
}

/* An optional uint field (set: has) bounded by max, into *v (left as it is
   when absent). */
static int s_opt(bool has, uint64_t val, const char *key, uint64_t max, uint64_t *v, char *why,
                 size_t whycap)
{
    if (has)
        *v = val;
    if (*v > max)
        return s_why(why, whycap, PD_EINVAL, "task_submit: '%s' must be an integer from 0 to "
                     "%llu", key, (unsigned long long) max);
    return 0;
}

int pd_tasks_submit(pd_tasks_t *t, const pd_m_task_submit_t *q, uint32_t mod,
                    uint64_t cluster_slots, uint64_t *id, char *why, size_t whycap)
{
    uint64_t n = q->n;
    const char *fn = q->fn;
    if (n == 0 || n > PD_TASKS_MAX_NODES)
        return s_why(why, whycap, PD_EINVAL, "task_submit: 'n' (the number of nodes) must be "
                     "from 1 to %u", PD_TASKS_MAX_NODES);
    int rc;
    if (!fn[0])
        return s_why(why, whycap, PD_EINVAL, "task_submit: 'fn' must be a function name of 1 "
                     "to 255 bytes");
    if (n > cluster_slots)
        return s_why(why, whycap, PD_ENOSLOTS, "the task has %llu nodes but the cluster has "
                     "only %llu slots in all: ask for at most %llu nodes, or add workers",
                     (unsigned long long) n, (unsigned long long) cluster_slots,
                     (unsigned long long) cluster_slots);
    if (t->n >= t->max)
        return s_why(why, whycap, PD_EOVERLOAD, "the broker holds %u tasks, its limit: release "
                     "the results of finished tasks, or wait", t->max);
    uint64_t io_ms = PD_TASKS_DEFAULT_IO_MS, start_ms = PD_TASKS_DEFAULT_START_MS,
             timeout_ms = 0, window = 0, window_bytes = 0;
    if ((rc = s_opt(q->has_io_ms, q->io_ms, "io_ms", INT32_MAX, &io_ms, why, whycap))
        || (rc = s_opt(q->has_start_ms, q->start_ms, "start_ms", INT32_MAX, &start_ms, why,
                       whycap))
        || (rc = s_opt(q->has_timeout_ms, q->timeout_ms, "timeout_ms", UINT32_MAX, &timeout_ms,
                       why, whycap))
        || (rc = s_opt(q->has_window, q->window, "window", 1u << 24, &window, why, whycap))
        || (rc = s_opt(q->has_window_bytes, q->window_bytes, "window_bytes", 1ull << 40,
                       &window_bytes, why, whycap)))
        return rc;
    if (start_ms == 0)
        start_ms = PD_TASKS_DEFAULT_START_MS;
    pd_taskrec_t *r = calloc(1, sizeof *r);
    if (!r)
        return s_why(why, whycap, PD_ENOMEM, "the broker is out of memory");
    r->n = (uint32_t) n;
    r->mod = mod;
    snprintf(r->fn, sizeof r->fn, "%s", fn);
    r->io_ms = (uint32_t) io_ms;
    r->start_ms = (uint32_t) start_ms;
    r->timeout_ms = (uint32_t) timeout_ms;
    r->window = (uint32_t) window;
    r->window_bytes = window_bytes;
    r->err_node = -1;
    r->nodes = calloc(r->n, sizeof *r->nodes);
    if (!r->nodes) {
        s_free_rec(r);
        return s_why(why, whycap, PD_ENOMEM, "the broker is out of memory");
    }
    if ((rc = s_read_tubes(r, q, why, whycap)) || (rc = s_read_edges(r, q, why, whycap))
        || (rc = s_read_args(r, q, why, whycap))) {
        s_free_rec(r);
        return rc;
    }
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        pd_taskrec_t **a = realloc(t->r, cap * sizeof *a);
        if (!a) {
            s_free_rec(r);
            return s_why(why, whycap, PD_ENOMEM, "the broker is out of memory");
        }
        t->r = a;
        t->cap = cap;
    }
    r->id = t->next_id++;
    r->state = PD_TASK_UNKNOWN;
    pd_tasks_set_state(t, r, PD_TASK_QUEUED);
    t->r[t->n++] = r;
    *id = r->id;
    return 0;
}

/* ---- graph views -------------------------------------------------------- */

void pd_tasks_out_edges(const pd_taskrec_t *r, uint32_t i, uint32_t *first, uint32_t *n)
{
    *first = r->src_first[i];
    *n = r->src_first[i + 1] - r->src_first[i];
}

void pd_tasks_in_edges(const pd_taskrec_t *r, uint32_t i, uint32_t *first, uint32_t *n)
{
    *first = r->dst_first[i];
    *n = r->dst_first[i + 1] - r->dst_first[i];
}

static int s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

uint32_t pd_tasks_neighbours(const pd_taskrec_t *r, uint32_t i, uint32_t *out)
{
    uint32_t k = 0;
    for (uint32_t e = r->src_first[i]; e < r->src_first[i + 1]; e++)
        out[k++] = r->by_src[e][2];
    for (uint32_t e = r->dst_first[i]; e < r->dst_first[i + 1]; e++)
        out[k++] = r->by_dst[e][2];
    qsort(out, k, sizeof *out, s_cmp_u32);
    uint32_t u = 0;
    for (uint32_t j = 0; j < k; j++)
        if (u == 0 || out[u - 1] != out[j])
            out[u++] = out[j];
    return u;
}

/* ---- placement ---------------------------------------------------------- */

int pd_tasks_place(uint32_t n, const uint32_t *slots, uint32_t nworkers, uint32_t *where)
{
    uint64_t total = 0;
    for (uint32_t w = 0; w < nworkers; w++)
        total += slots[w];
    if (total < n)
        return PD_ENOSLOTS;
    /* Fill the workers with the most free slots first (ties: lower index),
       so a task spreads over as few machines as it can. Workers are tens:
       a selection per worker is cheap. */
    uint32_t placed = 0;
    bool *taken = calloc(nworkers ? nworkers : 1, sizeof *taken);
    if (!taken)
        return PD_ENOMEM;
    while (placed < n) {
        uint32_t best = UINT32_MAX;
        for (uint32_t w = 0; w < nworkers; w++)
            if (!taken[w] && slots[w] > 0 && (best == UINT32_MAX || slots[w] > slots[best]))
                best = w;
        assert(best != UINT32_MAX);
        taken[best] = true;
        for (uint32_t k = 0; k < slots[best] && placed < n; k++)
            where[placed++] = best;
    }
    free(taken);
    return 0;
}

/* ---- forgetting --------------------------------------------------------- */

static void s_remove_at(pd_tasks_t *t, uint32_t i)
{
    s_free_rec(t->r[i]);
    memmove(&t->r[i], &t->r[i + 1], (t->n - i - 1) * sizeof *t->r);
    t->n--;
}

bool pd_tasks_forget(pd_tasks_t *t, uint64_t id)
{
    pd_taskrec_t *r = pd_tasks_get(t, id);
    if (!r || !PD_TASK_IS_FINAL(r->state))
        return false;
    uint32_t lo = 0, hi = t->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (t->r[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    s_remove_at(t, lo);
    return true;
}

uint32_t pd_tasks_expire(pd_tasks_t *t, uint32_t now_s, uint32_t ttl_s)
{
    uint32_t gone = 0, k = 0;
    for (uint32_t i = 0; i < t->n; i++) {
        pd_taskrec_t *r = t->r[i];
        if (PD_TASK_IS_FINAL(r->state) && r->fetched && r->fetched - 1 + (uint64_t) ttl_s <= now_s) {
            s_free_rec(r);
            gone++;
        } else {
            t->r[k++] = r;
        }
    }
    t->n = k;
    return gone;
}
