/*  pd_simworkers: many simulated workers in one process; see pd_simworkers.h.

    The workers are split into contiguous shares, one per thread; a thread
    owns its sockets outright. Its loop waits in epoll on the sockets'
    ZMQ_FD (readable while a socket has commands to process), drains each
    ready socket with ZMQ_EVENTS and non-blocking receives, and every
    quarter heartbeat walks its share to send what is due (`hb`, a `ready`
    not yet answered) and the results whose simulated run time is over.
    ZMQ_FD is a signal, not a level: a socket signals a new message only
    once a read found its queue empty, and a send may consume the signal of
    a message that came meanwhile, so every send is followed by a drain of
    the same socket (and each thread drains all its sockets once at start,
    after the `ready` sent before it ran).
*/
#include "pd_simworkers.h"
#include "pd_proto.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_EVENTS 256       /* epoll events taken per wait */
#define S_MAX_THREADS 4
#define S_DRAIN_BURST 256  /* messages read from one socket per wake-up */

/* A `done` message whose simulated run time is not over yet. */
typedef struct s_pending {
    struct s_pending *next;
    int64_t due;      /* ms (monotonic) when it leaves */
    uint32_t worker;  /* index of the worker that sends it */
    uint8_t *data;    /* the encoded message (owned) */
    size_t len;       /* bytes in data */
} s_pending_t;

typedef struct {
    void *sock;         /* DEALER connected to the broker */
    int fd;             /* its ZMQ_FD */
    char id[19];        /* routing id: "w-" + 16 hex digits */
    bool registered;    /* welcomed and not reset since */
    int64_t last_state; /* ms of its last `hb` (or `ready`) */
    int64_t last_ready; /* ms of its last `ready` */
} s_worker_t;

typedef struct {
    pd_simworkers_t *sim;
    uint32_t first;     /* its first worker */
    uint32_t n;         /* workers it drives */
    int epfd;           /* epoll over their ZMQ_FDs (-1: none) */
    pthread_t th;
    bool started;       /* th runs and must be joined */
    s_pending_t *head;  /* results waiting for their due time, oldest first */
    s_pending_t *tail;
} s_thread_t;

struct pd_simworkers {
    pd_simworkers_opts_t o;
    char endpoint[256];      /* o.endpoint's copy */
    void *ctx;               /* ZeroMQ context of all the sockets */
    s_worker_t *w;           /* o.workers entries */
    s_thread_t *t;           /* nthreads entries */
    int nthreads;
    atomic_bool stop;        /* the threads leave their loops */
    atomic_int hb_ms;        /* heartbeat the broker asked for in `welcome` */
    atomic_int liveness;     /* its liveness, in heartbeats */
    atomic_uint_fast64_t registered, welcomes, resets, runs, jobs, bad;
};

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- sending ------------------------------------------------------------- */

static void s_send(pd_simworkers_t *s, s_worker_t *w, const void *data, size_t len)
{
    if (zmq_send(w->sock, data, len, ZMQ_DONTWAIT) < 0)
        atomic_fetch_add(&s->bad, 1); /* counted: the caller's check sees it */
}

static void s_send_buf(pd_simworkers_t *s, s_worker_t *w, pd_buf_t *b)
{
    if (b->failed)
        atomic_fetch_add(&s->bad, 1);
    else
        s_send(s, w, b->data, b->len);
    pd_buf_free(b);
}

/* Encodes message m (described by d) and sends it as worker w. */
static void s_send_msg(pd_simworkers_t *s, s_worker_t *w, const pd_proto_msg_t *d, const void *m)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_proto_encode(&pk, d, m);
    s_send_buf(s, w, &b);
}

/* The state fields of `ready` and `hb`: nothing runs between messages. */
#define S_IDLE_STATE .has_busy = true, .has_queued = true, .has_load = true, .load = -1, \
                     .has_owner = true

static void s_send_ready(pd_simworkers_t *s, uint32_t i, int64_t now)
{
    s_worker_t *w = &s->w[i];
    pd_m_ready_t r = {.pid = (uint64_t) getpid(), .cpus = (uint64_t) s->o.slots,
                      .has_gpu_names = true, S_IDLE_STATE};
    snprintf(r.host, sizeof r.host, "sim-%u", (unsigned) i);
    snprintf(r.platform, sizeof r.platform, "linux-x86_64");
    s_send_msg(s, w, &pd_proto_ready, &r);
    w->last_ready = w->last_state = now;
}

static void s_send_hb(pd_simworkers_t *s, s_worker_t *w, int64_t now)
{
    s_send_msg(s, w, &pd_proto_hb, &(pd_m_hb_t){S_IDLE_STATE});
    w->last_state = now;
}

/* ---- messages from the broker ---------------------------------------------- */

/* Drops the results of worker i still waiting: after a reset, a real
   worker drops every job it held. */
static void s_drop_pending(s_thread_t *t, uint32_t i)
{
    s_pending_t **pp = &t->head, *last = NULL;
    while (*pp) {
        s_pending_t *p = *pp;
        if (p->worker == i) {
            *pp = p->next;
            free(p->data);
            free(p);
        } else {
            last = p;
            pp = &p->next;
        }
    }
    t->tail = last;
}

/* `done`'s res for a `run`: [id, attempt, true, arg, us] per job of it. */
typedef struct {
    pd_rd_t r;   /* over the run's jobs, after their array header */
    uint32_t n;  /* jobs */
    uint64_t us; /* the simulated run time */
} s_done_t;

static int s_pack_done(msgpack_packer *pk, const void *ctx)
{
    s_done_t *d = (s_done_t *) ctx; /* its reader moves on */
    int rc = msgpack_pack_array(pk, d->n);
    for (uint32_t j = 0; j < d->n; j++) {
        uint32_t k, len;
        uint64_t id, attempt, timeout_ms;
        const char *str;
        const uint8_t *arg;
        size_t alen;
        /* [id, attempt, mod, fn, timeout_ms, arg, ...] */
        if (pd_rd_array(&d->r, &k) || k < 6 || pd_rd_uint(&d->r, &id)
            || pd_rd_uint(&d->r, &attempt) || pd_rd_str(&d->r, &str, &len)
            || pd_rd_str(&d->r, &str, &len) || pd_rd_uint(&d->r, &timeout_ms)
            || pd_rd_skip(&d->r, &arg, &alen))
            return -1;
        for (uint32_t e = 6; e < k; e++)
            pd_rd_skip(&d->r, NULL, NULL);
        rc |= msgpack_pack_array(pk, 5);
        rc |= msgpack_pack_uint64(pk, id);
        rc |= msgpack_pack_uint64(pk, attempt);
        rc |= msgpack_pack_true(pk);
        rc |= pd_pack_raw(pk, arg, alen);
        rc |= msgpack_pack_uint64(pk, d->us);
    }
    return rc;
}

/* Answers a `run`: one `done` with [id, attempt, true, arg, us] per job,
   now or after the simulated run time. */
static void s_on_run(s_thread_t *t, uint32_t i, const pd_msg_t *m, int64_t now)
{
    pd_simworkers_t *s = t->sim;
    pd_m_run_t run;
    if (pd_m_run_decode(m, &run)) {
        atomic_fetch_add(&s->bad, 1);
        return;
    }
    s_done_t d = {.us = (uint64_t) s->o.run_ms * 1000 + 1};
    pd_rd_init(&d.r, run.jobs.p, run.jobs.len);
    pd_rd_array(&d.r, &d.n); /* an array: checked by the decoder */
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    if (pd_m_done_encode(&pk, &(pd_m_done_t){.res = {.pack = s_pack_done, .ctx = &d}})) {
        atomic_fetch_add(&s->bad, 1);
        pd_buf_free(&b);
        return;
    }
    atomic_fetch_add(&s->runs, 1);
    atomic_fetch_add(&s->jobs, d.n);
    if (s->o.run_ms <= 0) {
        s_send_buf(s, &s->w[i], &b);
        return;
    }
    s_pending_t *p = calloc(1, sizeof *p);
    if (!p || b.failed) {
        free(p);
        pd_buf_free(&b);
        atomic_fetch_add(&s->bad, 1);
        return;
    }
    p->due = now + s->o.run_ms;
    p->worker = i;
    p->data = pd_buf_steal(&b, &p->len);
    if (t->tail)
        t->tail->next = p;
    else
        t->head = p;
    t->tail = p;
}

static void s_on_message(s_thread_t *t, uint32_t i, const void *data, size_t len, int64_t now)
{
    pd_simworkers_t *s = t->sim;
    s_worker_t *w = &s->w[i];
    pd_msg_t m;
    if (pd_msg_parse(&m, data, len)) {
        atomic_fetch_add(&s->bad, 1);
        return;
    }
    if (pd_msg_is(&m, "run")) {
        s_on_run(t, i, &m, now);
    } else if (pd_msg_is(&m, "welcome")) {
        pd_m_w_welcome_t wl;
        pd_m_w_welcome_decode(&m, &wl); /* what it could read */
        if (wl.has_hb_ms && wl.hb_ms >= 10 && wl.hb_ms <= 600000)
            atomic_store(&s->hb_ms, (int) wl.hb_ms);
        if (wl.has_liveness && wl.liveness >= 1 && wl.liveness <= 1000)
            atomic_store(&s->liveness, (int) wl.liveness);
        atomic_fetch_add(&s->welcomes, 1);
        if (!w->registered)
            atomic_fetch_add(&s->registered, 1);
        w->registered = true;
    } else if (pd_msg_is(&m, "reset")) {
        atomic_fetch_add(&s->resets, 1);
        if (w->registered)
            atomic_fetch_sub(&s->registered, 1);
        w->registered = false;
        s_drop_pending(t, i);
        s_send_ready(s, i, now);
    } else if (pd_msg_is(&m, "error")) {
        atomic_fetch_add(&s->bad, 1);
    }
    /* hb, mod, shr, shr_drop, cancel, node_*: nothing to do. */
}

/* Reads what worker i has received, up to a burst. */
static void s_drain(s_thread_t *t, uint32_t i, int64_t now)
{
    s_worker_t *w = &t->sim->w[i];
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    for (int k = 0; k < S_DRAIN_BURST; k++) {
        int events = 0;
        size_t elen = sizeof events;
        if (zmq_getsockopt(w->sock, ZMQ_EVENTS, &events, &elen) || !(events & ZMQ_POLLIN))
            break;
        if (zmq_msg_recv(&msg, w->sock, ZMQ_DONTWAIT) < 0)
            break;
        s_on_message(t, i, zmq_msg_data(&msg), zmq_msg_size(&msg), now);
    }
    zmq_msg_close(&msg);
}

/* ---- the threads ------------------------------------------------------------ */

/* Sends the results whose time is due, then what each worker owes: an
   `hb` every heartbeat, a `ready` again when none was answered within a
   liveness. */
static void s_tick(s_thread_t *t, int64_t now)
{
    pd_simworkers_t *s = t->sim;
    while (t->head && t->head->due <= now) {
        s_pending_t *p = t->head;
        t->head = p->next;
        if (!t->head)
            t->tail = NULL;
        s_send(s, &s->w[p->worker], p->data, p->len);
        s_drain(t, p->worker, now);
        free(p->data);
        free(p);
    }
    int64_t hb = atomic_load(&s->hb_ms), live = hb * atomic_load(&s->liveness);
    for (uint32_t i = t->first; i < t->first + t->n; i++) {
        s_worker_t *w = &s->w[i];
        if (w->registered && now - w->last_state >= hb)
            s_send_hb(s, w, now);
        else if (!w->registered && now - w->last_ready >= live)
            s_send_ready(s, i, now);
        else
            continue;
        s_drain(t, i, now);
    }
}

static void *s_thread(void *arg)
{
    s_thread_t *t = arg;
    pd_simworkers_t *s = t->sim;
    struct epoll_event ev[S_EVENTS];
    int64_t next_tick = 0;
    /* A socket signals a message only after a read found none: the `ready`
       sent before the thread started needs this first look. */
    for (uint32_t i = t->first; i < t->first + t->n; i++)
        s_drain(t, i, s_now_ms());
    while (!atomic_load(&s->stop)) {
        int64_t now = s_now_ms();
        int64_t tick = atomic_load(&s->hb_ms) / 4;
        tick = tick < 10 ? 10 : tick > 100 ? 100 : tick;
        int64_t wait = next_tick - now;
        if (t->head && t->head->due - now < wait)
            wait = t->head->due - now;
        wait = wait < 0 ? 0 : wait > 50 ? 50 : wait; /* the stop flag is seen within 50 ms */
        int n = epoll_wait(t->epfd, ev, S_EVENTS, (int) wait);
        if (n < 0 && errno != EINTR)
            break;
        now = s_now_ms();
        for (int k = 0; k < n; k++)
            s_drain(t, ev[k].data.u32, now);
        if (now >= next_tick || (t->head && t->head->due <= now)) {
            s_tick(t, now);
            if (now >= next_tick)
                next_tick = now + tick;
        }
    }
    return NULL;
}

/* ---- the object --------------------------------------------------------------- */

/* n sockets need two descriptors each (the socket's own signal and its
   TCP connection), plus a margin. */
int pd_simworkers_raise_nofile(int n, char *why, size_t cap)
{
    struct rlimit rl;
    rlim_t need = (rlim_t) n * 2 + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl)) {
        snprintf(why, cap, "cannot read the open-file limit: %s", strerror(errno));
        return -1;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= need)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        snprintf(why, cap, "%d simulated workers need about %llu open files, and this process "
                 "may open at most %llu (`ulimit -Hn`): raise the hard limit or simulate fewer",
                 n, (unsigned long long) need, (unsigned long long) rl.rlim_max);
        return -1;
    }
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl)) {
        snprintf(why, cap, "cannot raise the open-file limit to %llu: %s",
                 (unsigned long long) need, strerror(errno));
        return -1;
    }
    return 0;
}

pd_simworkers_t *pd_simworkers_new(const pd_simworkers_opts_t *opts, char *why, size_t cap)
{
    if (!opts || !opts->endpoint || opts->workers < 1 || opts->workers > PD_SIMWORKERS_MAX ||
        opts->slots < 1 || opts->slots > 65536 || opts->threads < 0 || opts->run_ms < 0) {
        snprintf(why, cap, "simulated workers need an endpoint, 1 to %d workers of 1 to 65536 "
                 "slots, and no negative thread count or run time", PD_SIMWORKERS_MAX);
        return NULL;
    }
    if (pd_simworkers_raise_nofile(opts->workers, why, cap))
        return NULL;
    pd_simworkers_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    s->o = *opts;
    snprintf(s->endpoint, sizeof s->endpoint, "%s", opts->endpoint);
    s->o.endpoint = s->endpoint;
    atomic_init(&s->hb_ms, 1000);
    atomic_init(&s->liveness, 3);
    int nt = opts->threads ? opts->threads : (opts->workers + 999) / 1000;
    s->nthreads = nt > S_MAX_THREADS ? S_MAX_THREADS : nt > opts->workers ? opts->workers : nt;
    s->w = calloc((size_t) opts->workers, sizeof *s->w);
    s->t = calloc((size_t) s->nthreads, sizeof *s->t);
    s->ctx = zmq_ctx_new();
    if (!s->w || !s->t || !s->ctx) {
        snprintf(why, cap, "out of memory");
        goto fail;
    }
    /* ZeroMQ allows 1,023 sockets per context unless told. */
    if (zmq_ctx_set(s->ctx, ZMQ_MAX_SOCKETS, opts->workers + 16) ||
        zmq_ctx_get(s->ctx, ZMQ_MAX_SOCKETS) < opts->workers + 16) {
        snprintf(why, cap, "ZeroMQ refuses %d sockets in one context", opts->workers + 16);
        goto fail;
    }
    for (int k = 0; k < s->nthreads; k++) {
        s_thread_t *t = &s->t[k];
        t->sim = s;
        t->first = (uint32_t) ((int64_t) opts->workers * k / s->nthreads);
        t->n = (uint32_t) ((int64_t) opts->workers * (k + 1) / s->nthreads) - t->first;
        t->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (t->epfd < 0) {
            snprintf(why, cap, "epoll_create1: %s", strerror(errno));
            goto fail;
        }
    }
    int64_t now = s_now_ms();
    uint64_t seed = (uint64_t) now * 6364136223846793005ull ^ (uint64_t) getpid() << 32;
    for (int i = 0; i < opts->workers; i++) {
        s_worker_t *w = &s->w[i];
        s_thread_t *t = &s->t[0];
        while (!((uint32_t) i >= t->first && (uint32_t) i < t->first + t->n))
            t++;
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        snprintf(w->id, sizeof w->id, "w-%016llx", (unsigned long long) seed);
        w->sock = zmq_socket(s->ctx, ZMQ_DEALER);
        if (!w->sock) {
            snprintf(why, cap, "socket %d: %s", i, zmq_strerror(errno));
            goto fail;
        }
        int linger = 1000, hwm = 100000;
        size_t fdlen = sizeof w->fd;
        zmq_setsockopt(w->sock, ZMQ_ROUTING_ID, w->id, strlen(w->id));
        zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(w->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(w->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t) i};
        if (zmq_connect(w->sock, s->endpoint) ||
            zmq_getsockopt(w->sock, ZMQ_FD, &w->fd, &fdlen) ||
            epoll_ctl(t->epfd, EPOLL_CTL_ADD, w->fd, &ev)) {
            snprintf(why, cap, "simulated worker %d cannot connect to %s: %s", i, s->endpoint,
                     strerror(errno));
            goto fail;
        }
        s_send_ready(s, (uint32_t) i, now);
    }
    for (int k = 0; k < s->nthreads; k++) {
        if (pthread_create(&s->t[k].th, NULL, s_thread, &s->t[k])) {
            snprintf(why, cap, "cannot start a thread");
            goto fail;
        }
        s->t[k].started = true;
    }
    return s;
fail:
    pd_simworkers_destroy(&s);
    return NULL;
}

void pd_simworkers_stats(pd_simworkers_t *s, pd_simworkers_stats_t *st)
{
    st->registered = atomic_load(&s->registered);
    st->welcomes = atomic_load(&s->welcomes);
    st->resets = atomic_load(&s->resets);
    st->runs = atomic_load(&s->runs);
    st->jobs = atomic_load(&s->jobs);
    st->bad = atomic_load(&s->bad);
}

bool pd_simworkers_wait_registered(pd_simworkers_t *s, int timeout_ms)
{
    int64_t end = s_now_ms() + timeout_ms;
    while (atomic_load(&s->registered) < (uint64_t) s->o.workers) {
        if (s_now_ms() >= end)
            return false;
        usleep(10000);
    }
    return true;
}

void pd_simworkers_destroy(pd_simworkers_t **p)
{
    if (!p || !*p)
        return;
    pd_simworkers_t *s = *p;
    atomic_store(&s->stop, true);
    for (int k = 0; s->t && k < s->nthreads; k++)
        if (s->t[k].started)
            pthread_join(s->t[k].th, NULL);
    /* Every worker leaves as a real one does: `bye`, so the broker forgets
       it at once instead of waiting out its silence. */
    for (int i = 0; s->w && i < s->o.workers; i++) {
        if (!s->w[i].sock)
            continue;
        s_send_msg(s, &s->w[i], &pd_proto_bye, &(pd_m_bye_t){0});
        zmq_close(s->w[i].sock);
    }
    for (int k = 0; s->t && k < s->nthreads; k++) {
        while (s->t[k].head) {
            s_pending_t *q = s->t[k].head;
            s->t[k].head = q->next;
            free(q->data);
            free(q);
        }
        if (s->t[k].epfd > 0)
            close(s->t[k].epfd);
    }
    if (s->ctx)
        zmq_ctx_term(s->ctx);
    free(s->w);
    free(s->t);
    free(s);
    *p = NULL;
}
