/*  pd_worker_jobs: the worker's jobs, from `run` to `done`.

    Jobs from the broker (`run`) wait here in two queues (rings), one for
    CPU slots and one for GPU slots, until pd_worker_tend_slots gives them
    to idle slots; `cancel` drops them from the queues and the slots. A job
    is queued only when its code may run here: its module (and CUDA
    module), sent by the job's client, allowed by the machine owner's code
    policy (pd_policy), and in the module cache (`mod`; `shr` and
    `shr_drop` keep the shared data). The slots' results, and the refusals
    of jobs that never reached a slot, are batched into `done` messages;
    jobs handed back (the owner's limit, the idle policy) leave in
    `requeue` messages, no attempt counted, and so do the queued jobs the
    broker asks back (`steal`) for slots idle on other workers.
*/
#include "pd_worker_int.h"
#include "pd_grow.h"
#include "pd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_DONE_BATCH 1024           /* results per `done` message */
#define S_DONE_BYTES (8u << 20)     /* bytes per `done` message (soft) */
#define S_REQUEUE_CHUNK 4096        /* jobs per `requeue` message */

/* ---- queues ------------------------------------------------------------- */

static int s_q_grow(pd_worker_queue_t *q)
{
    size_t cap = q->cap ? q->cap * 2 : 1024;
    pd_job_t **r = malloc(cap * sizeof *r);
    if (!r)
        return PD_ENOMEM;
    for (size_t i = 0; i < q->len; i++)
        r[i] = q->q[(q->head + i) % q->cap];
    free(q->q);
    q->q = r;
    q->cap = cap;
    q->head = 0;
    return 0;
}

static int s_q_push_back(pd_worker_queue_t *q, pd_job_t *job)
{
    if (q->len == q->cap && s_q_grow(q))
        return PD_ENOMEM;
    q->q[(q->head + q->len) % q->cap] = job;
    q->len++;
    return 0;
}

static int s_q_push_front(pd_worker_queue_t *q, pd_job_t *job)
{
    if (q->len == q->cap && s_q_grow(q))
        return PD_ENOMEM;
    q->head = (q->head + q->cap - 1) % q->cap;
    q->q[q->head] = job;
    q->len++;
    return 0;
}

/* Takes the last job of q, or NULL when q is empty. */
static pd_job_t *s_q_pop_back(pd_worker_queue_t *q)
{
    if (!q->len)
        return NULL;
    q->len--;
    return q->q[(q->head + q->len) % q->cap];
}

pd_job_t *pd_worker_q_pop(pd_worker_queue_t *q)
{
    if (!q->len)
        return NULL;
    pd_job_t *job = q->q[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    return job;
}

void pd_worker_q_clear(pd_worker_queue_t *q)
{
    pd_job_t *job;
    while ((job = pd_worker_q_pop(q)))
        pd_job_destroy(&job);
}

/* ---- results and jobs handed back --------------------------------------- */

/* The jobs a `requeue` lists: n taken from q's front, or from its back
   (last first). Once listed here a job is gone from this worker. */
typedef struct {
    pd_worker_queue_t *q;
    size_t n;
    bool back;
} s_requeue_t;

static int s_pack_requeue(msgpack_packer *pk, const void *ctx)
{
    const s_requeue_t *r = ctx;
    int rc = msgpack_pack_array(pk, (uint32_t) r->n);
    for (size_t i = 0; i < r->n; i++) {
        pd_job_t *job = r->back ? s_q_pop_back(r->q) : pd_worker_q_pop(r->q);
        rc |= msgpack_pack_array(pk, 2);
        rc |= msgpack_pack_uint64(pk, job->id);
        rc |= msgpack_pack_uint64(pk, job->attempt);
        pd_job_destroy(&job);
    }
    return rc;
}

/* Takes the jobs out of q and, when connected, hands them back in one
   `requeue`. */
static void s_requeue(pd_worker_t *w, const s_requeue_t *r, bool stolen)
{
    pd_m_requeue_t m = {.jobs = {.pack = s_pack_requeue, .ctx = r},
                        .has_stolen = stolen, .stolen = stolen};
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_m_requeue_encode(&pk, &m);
    if (w->connected)
        pd_worker_send(w, &b);
    pd_buf_free(&b);
}

void pd_worker_give_back_queue(pd_worker_t *w, pd_worker_queue_t *q, const char *why)
{
    if (!q->len)
        return;
    size_t total = q->len;
    while (q->len) {
        s_requeue_t r = {q, q->len < S_REQUEUE_CHUNK ? q->len : S_REQUEUE_CHUNK, false};
        s_requeue(w, &r, false);
    }
    w->requeued += total;
    pd_log_info("handed %zu %sjobs back to the broker (%s)", total,
                q == &w->q[PD_WORKER_Q_GPU] ? "GPU " : "", why);
}

void pd_worker_on_steal(pd_worker_t *w, const pd_msg_t *m)
{
    pd_m_steal_t st;
    if (pd_m_steal_decode(m, &st)) {
        pd_log_warn("broker sent a bad 'steal': %s", m->why);
        return;
    }
    pd_worker_queue_t *q = &w->q[st.gpu ? PD_WORKER_Q_GPU : PD_WORKER_Q_CPU];
    size_t k = st.n < q->len ? (size_t) st.n : q->len;
    if (k > S_REQUEUE_CHUNK)
        k = S_REQUEUE_CHUNK;
    /* The last ones, last first: the broker puts each at the front of its
       queue, which restores their order there. Sent even with none: the
       broker waits for the answer before asking again. */
    s_requeue(w, &(s_requeue_t){q, k, true}, true);
    pd_log_debug("gave back %zu of %llu %sjobs asked for (slots idle elsewhere)", k,
                 (unsigned long long) st.n, st.gpu ? "GPU " : "");
}

void pd_worker_give_back(pd_worker_t *w, const char *why)
{
    pd_worker_give_back_queue(w, &w->q[PD_WORKER_Q_CPU], why);
    pd_worker_give_back_queue(w, &w->q[PD_WORKER_Q_GPU], why);
}

/* `done`'s res: the batch of [id, attempt, ok, value_or_err, us]. */
static int s_pack_results(msgpack_packer *pk, const void *ctx)
{
    const pd_worker_t *w = ctx;
    return msgpack_pack_array(pk, (uint32_t) w->nres) || pd_pack_raw(pk, w->res.data, w->res.len);
}

void pd_worker_flush(pd_worker_t *w)
{
    if (!w->nres)
        return;
    pd_m_done_t m = {.res = {.pack = s_pack_results, .ctx = w}};
    if (pd_worker_send_msg(w, &pd_proto_done, &m) == 0)
        w->ndone += w->nres;
    pd_buf_reset(&w->res);
    w->nres = 0;
}

/* Appends [id, attempt, ok, value_or_err, us] to the batch. */
static void s_add_result(pd_worker_t *w, uint64_t id, uint64_t attempt, bool ok,
                         const uint8_t *val, size_t len, uint64_t us)
{
    msgpack_packer pk;
    pd_packer_init(&pk, &w->res);
    size_t before = w->res.len;
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint64(&pk, id);
    msgpack_pack_uint64(&pk, attempt);
    if (ok)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    pd_pack_raw(&pk, val, len);
    msgpack_pack_uint64(&pk, us);
    if (w->res.failed) {
        /* Over the frame cap with what is already batched: send that first. */
        w->res.failed = false;
        w->res.len = before;
        if (w->nres) {
            pd_worker_flush(w);
            s_add_result(w, id, attempt, ok, val, len, us);
            return;
        }
        pd_log_error("job %llu: result too large to send; dropped (the broker will retry it)",
                     (unsigned long long) id);
        return;
    }
    w->nres++;
    if (w->nres >= S_DONE_BATCH || w->res.len >= S_DONE_BYTES)
        pd_worker_flush(w);
}

/* Reports a job that failed before reaching a slot. */
static void s_fail_job(pd_worker_t *w, uint64_t id, uint64_t attempt, int code, const char *msg)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    msgpack_pack_map(&pk, 3);
    pd_pack_kv_str(&pk, "code", pd_err_name(code));
    pd_pack_kv_str(&pk, "msg", msg);
    pd_pack_kv_int(&pk, "slot", -1);
    if (!b.failed)
        s_add_result(w, id, attempt, false, b.data, b.len, 0);
    pd_buf_free(&b);
}

/* ---- slot sink ---------------------------------------------------------- */

static void s_on_result(void *user, const pd_job_t *job, bool ok, const uint8_t *val, size_t len,
                        uint64_t us)
{
    s_add_result(user, job->id, job->attempt, ok, val, len, us);
}

static void s_on_requeue(void *user, pd_job_t *job)
{
    pd_worker_t *w = user;
    if (s_q_push_front(&w->q[job->gpu ? PD_WORKER_Q_GPU : PD_WORKER_Q_CPU], job)) {
        s_fail_job(w, job->id, job->attempt, PD_ENOMEM, "worker out of memory");
        pd_job_destroy(&job);
    }
}

pd_slot_sink_t pd_worker_slot_sink(pd_worker_t *w)
{
    return (pd_slot_sink_t){s_on_result, s_on_requeue, w};
}

/* ---- modules ------------------------------------------------------------ */

/* Finds a module by hash; falls back on the cache directory (a module kept
   from an earlier run). NULL when unknown. */
static const pd_worker_mod_t *s_mod_find(pd_worker_t *w, const char *hash)
{
    /* The reserved module of built-in tasks (exec) needs no code. */
    static const pd_worker_mod_t builtin = {.hash = "builtin", .kind = "b", .name = "builtin"};
    if (strcmp(hash, "builtin") == 0)
        return &builtin;
    for (size_t i = 0; i < w->nmods; i++)
        if (strcmp(w->mods[i].hash, hash) == 0)
            return &w->mods[i];
    const char *kind = pd_modcache_has(w->mc, hash, "c")     ? "c"
                       : pd_modcache_has(w->mc, hash, "so")  ? "so"
                       : pd_modcache_has(w->mc, hash, "pkg") ? "pkg"
                       : pd_modcache_has(w->mc, hash, "cu")  ? "cu"
                                                             : NULL;
    if (!kind)
        return NULL;
    char name[128];
    snprintf(name, sizeof name, "%.12s.%s", hash, kind);
    if (pd_grow(&w->mods, &w->capmods, w->nmods + 1, sizeof *w->mods))
        return NULL;
    pd_worker_mod_t *m = &w->mods[w->nmods++];
    snprintf(m->hash, sizeof m->hash, "%s", hash);
    snprintf(m->kind, sizeof m->kind, "%s", kind);
    snprintf(m->name, sizeof m->name, "%s", name);
    return m;
}

int pd_worker_code_check(pd_worker_t *w, const char *client, const char *mod, const char *cu,
                         const char *what, const pd_worker_mod_t **mm, const pd_worker_mod_t **cm,
                         char *msg, size_t cap)
{
    *mm = s_mod_find(w, mod);
    *cm = cu[0] ? s_mod_find(w, cu) : NULL;
    if (!pd_policy_allows(w->policy, client, mod, *mm ? (*mm)->name : mod, msg, cap) ||
        (cu[0] && !pd_policy_allows(w->policy, client, cu, *cm ? (*cm)->name : cu, msg, cap))) {
        pd_log_limited(&w->limit, 20, 10000, PD_LOG_WARN, "refused %s: %s", what, msg);
        return PD_EREFUSED;
    }
    if (!*mm || (cu[0] && (!*cm || strcmp((*cm)->kind, "cu") != 0))) {
        snprintf(msg, cap, "%smodule %.64s is not on worker %s (the broker sent no 'mod' for it)",
                 *mm ? "CUDA " : "", *mm ? cu : mod, w->host);
        return PD_ENOMODULE;
    }
    return 0;
}

/* Shared data being checked and written to the cache off the loop (250 MiB
   take seconds, longer than a heartbeat); the jobs that name it wait in
   the queue until it is there. */
#define S_STORES_AHEAD 8 /* shared data waiting to be written off the loop, at most */
typedef struct pd_worker_store {
    struct pd_worker_store *next;
    pd_worker_t *w;
    pd_modcache_t *mc;
    char hash[80];
    uint8_t *data;
    uint32_t len;
    int rc;
    char why[256];
} s_store_t;

static void s_store_work(void *arg) /* on the background thread */
{
    s_store_t *st = arg;
    st->rc = pd_modcache_store_shared(st->mc, st->hash, st->data, st->len, st->why,
                                      sizeof st->why);
}

static void s_store_done(void *arg)
{
    s_store_t *st = arg;
    pd_worker_t *w = st->w;
    for (s_store_t **p = &w->storing; *p; p = &(*p)->next)
        if (*p == st) {
            *p = st->next;
            break;
        }
    if (st->rc)
        pd_log_error("cannot store shared data %.12s: %s", st->hash, st->why);
    else
        pd_log_debug("shared data %.12s (%u bytes) stored", st->hash, st->len);
    free(st->data);
    free(st);
}

bool pd_worker_shared_pending(const pd_worker_t *w, const char *hash)
{
    for (const s_store_t *st = w->storing; st; st = st->next)
        if (strcmp(st->hash, hash) == 0)
            return true;
    return false;
}

void pd_worker_on_shr(pd_worker_t *w, const pd_msg_t *m)
{
    pd_m_shr_t shr;
    if (pd_m_shr_decode(m, &shr)) {
        pd_log_warn("broker sent a bad 'shr': %s", m->why);
        return;
    }
    const char *hash = shr.hash;
    const void *data = shr.data.p;
    uint32_t len = shr.data.len;
    s_store_t *st = calloc(1, sizeof *st);
    uint8_t *copy = st ? malloc(len ? len : 1) : NULL;
    if (!copy) {
        free(st);
        pd_log_error("cannot store shared data %.12s: out of memory for %u bytes", hash, len);
        return;
    }
    memcpy(copy, data, len);
    *st = (s_store_t){.w = w, .mc = w->mc, .data = copy, .len = len};
    snprintf(st->hash, sizeof st->hash, "%s", hash);
    /* At most S_STORES_AHEAD wait for the thread; past that (a broker
       sending blob after blob) the loop stores them itself. */
    if (pd_bg_pending(w->bg) >= S_STORES_AHEAD ||
        pd_bg_submit(w->bg, s_store_work, s_store_done, st) != 0) {
        /* No thread to do it: do it here. */
        s_store_work(st);
        st->next = w->storing;
        w->storing = st;
        s_store_done(st);
        return;
    }
    st->next = w->storing;
    w->storing = st;
}

void pd_worker_on_shr_drop(pd_worker_t *w, const pd_msg_t *m)
{
    pd_m_shr_drop_t d;
    if (pd_m_shr_drop_decode(m, &d)) {
        pd_log_warn("broker sent a bad 'shr_drop': %s", m->why);
        return;
    }
    pd_modcache_drop_shared(w->mc, d.hash);
    pd_log_debug("shared data %.12s dropped", d.hash);
}

void pd_worker_on_mod(pd_worker_t *w, const pd_msg_t *m)
{
    pd_m_mod_t md;
    if (pd_m_mod_decode(m, &md)) {
        pd_log_warn("broker sent a bad 'mod': %s", m->why);
        return;
    }
    const char *hash = md.hash, *kind = md.kind, *client = md.client;
    const void *data = md.data.p;
    uint32_t len = md.data.len;
    char name[128];
    if (md.name[0])
        snprintf(name, sizeof name, "%.*s", (int) sizeof name - 1, md.name);
    else
        snprintf(name, sizeof name, "%.12s.%s", hash, kind);
    if (!pd_policy_stores_shipped(w->policy)) {
        pd_log_info("module %s (%.12s) from client %s not stored: this worker runs only "
                    "installed modules", name, hash, client[0] ? client : "without a key");
        return;
    }
    char why[256];
    if (pd_modcache_store(w->mc, hash, kind, data, len, why, sizeof why)) {
        pd_log_error("cannot store module %s: %s", name, why);
        return;
    }
    const pd_worker_mod_t *known = s_mod_find(w, hash);
    if (known) {
        pd_worker_mod_t *k = (pd_worker_mod_t *) known;
        snprintf(k->name, sizeof k->name, "%s", name);
        memcpy(k->kind, kind, strlen(kind) + 1); /* "c", "so" or "cu": checked by the store */
    }
    pd_log_debug("module %s (%s) from client %s stored", name, hash,
                 client[0] ? client : "without a key");
}

/* ---- jobs from the broker ----------------------------------------------- */

#define S_RUN_CLIENTS 256 /* client keys of one `run` read at most */

/* A job's fields after [id, attempt, mod, fn, timeout_ms, arg] (k in all). */
typedef struct {
    char shared[80];         /* the shared data's hash, "" without */
    char cu[80];             /* a GPU job's CUDA module, "" without */
    char client[PD_KEY_TXT]; /* the submitter's key, "" without */
    bool gpu;                /* a GPU job */
    pd_limits_t req;         /* what it asks to take */
} s_job_tail_t;

/* Reads job i's fields after the first six into *t, skipping any newer ones; PD_EPROTO,
 * logged, when they are malformed. cptr, clen: the chunk's nclients client keys. */
static int s_read_job_tail(pd_rd_t *r, uint32_t k, uint32_t i, const char *const *cptr,
                           const uint32_t *clen, uint32_t nclients, s_job_tail_t *t)
{
    *t = (s_job_tail_t){.gpu = false};
    /* Then shared (a hash, or nil), the submitter (an index into
       `clients`; anything else counts as a job without a key), then for
       a GPU job gpu (bool) and cu (a hash or nil). */
    uint32_t used = 6;
    if (k >= 7) {
        if (pd_rd_peek(r) == PD_MP_STR ? pd_rd_strcpy(r, t->shared, sizeof t->shared) != 0
                                        : pd_rd_skip(r, NULL, NULL) != 0) {
            pd_log_warn("broker sent a bad 'run': job %u has a bad shared-data hash; "
                        "ignoring the rest", i);
            return PD_EPROTO;
        }
        used = 7;
    }
    if (k >= 8) {
        uint64_t ci;
        if (pd_rd_peek(r) == PD_MP_UINT && pd_rd_uint(r, &ci) == 0) {
            if (ci < nclients && clen[ci] < sizeof t->client) {
                memcpy(t->client, cptr[ci], clen[ci]);
                t->client[clen[ci]] = 0;
            }
        } else if (pd_rd_skip(r, NULL, NULL)) {
            pd_log_warn("broker sent a bad 'run': job %u is malformed; ignoring the rest", i);
            return PD_EPROTO;
        }
        used = 8;
    }
    if (k >= 10) {
        if (pd_rd_bool(r, &t->gpu) || (pd_rd_peek(r) == PD_MP_NIL
                                         ? pd_rd_nil(r)
                                         : pd_rd_strcpy(r, t->cu, sizeof t->cu))) {
            pd_log_warn("broker sent a bad 'run': job %u's gpu and cu are not [bool, hash "
                        "or nil]; ignoring the rest", i);
            return PD_EPROTO;
        }
        used = 10;
    }
    /* Then what the job asks to take: {memory, cpu_time, max_output}. */
    if (k >= 11) {
        if (pd_limits_read(r, &t->req)) {
            pd_log_warn("broker sent a bad 'run': job %u's limits are not a map of "
                        "numbers; ignoring the rest", i);
            return PD_EPROTO;
        }
        used = 11;
    }
    for (uint32_t extra = used; extra < k; extra++)
        pd_rd_skip(r, NULL, NULL); /* forward compatibility */
    return 0;
}

/* Reads the `run`'s client keys (at most S_RUN_CLIENTS) into cptr, clen; their count, or
 * PD_EPROTO (< 0), logged, when one is not a string. */
static int s_read_clients(const pd_m_run_t *run, const char **cptr, uint32_t *clen)
{
    int nclients = 0;
    if (run->has_clients) {
        pd_rd_t cr;
        uint32_t nc;
        pd_rd_init(&cr, run->clients.p, run->clients.len);
        pd_rd_array(&cr, &nc); /* an array: checked by the decoder */
        for (uint32_t i = 0; i < nc && i < S_RUN_CLIENTS; i++, nclients++) {
            if (pd_rd_str(&cr, &cptr[i], &clen[i])) {
                pd_log_warn("broker sent a bad 'run': client %u is not a string", i);
                return PD_EPROTO;
            }
        }
    }
    return nclients;
}

void pd_worker_on_run(pd_worker_t *w, const pd_msg_t *m)
{
    pd_m_run_t run;
    if (pd_m_run_decode(m, &run)) {
        pd_log_warn("broker sent a bad 'run': %s", m->why);
        return;
    }
    pd_rd_t r;
    uint32_t n;
    /* The chunk's client keys (jobs name them by index); absent from older
       brokers and without CurveZMQ. */
    const char *cptr[S_RUN_CLIENTS]; /* in the frame, not NUL-terminated */
    uint32_t clen[S_RUN_CLIENTS];
    int nclients = s_read_clients(&run, cptr, clen);
    if (nclients < 0)
        return;
    pd_rd_init(&r, run.jobs.p, run.jobs.len);
    pd_rd_array(&r, &n);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k;
        uint64_t id, attempt, timeout_ms;
        char mod[80];
        const char *fn;
        uint32_t fnlen;
        const uint8_t *arg;
        size_t alen;
        if (pd_rd_array(&r, &k) || k < 6 || pd_rd_uint(&r, &id) || pd_rd_uint(&r, &attempt)
            || pd_rd_strcpy(&r, mod, sizeof mod) || pd_rd_str(&r, &fn, &fnlen)
            || pd_rd_uint(&r, &timeout_ms) || pd_rd_skip(&r, &arg, &alen)) {
            pd_log_warn("broker sent a bad 'run': job %u is not [id, attempt, mod, fn, "
                        "timeout_ms, arg, client]; ignoring the rest", i);
            return;
        }
        s_job_tail_t t;
        if (s_read_job_tail(&r, k, i, cptr, clen, (uint32_t) nclients, &t))
            return;
        const pd_worker_mod_t *mm, *cm;
        char msg[800], what[48];
        snprintf(what, sizeof what, "job %llu", (unsigned long long) id);
        int code = pd_worker_code_check(w, t.client, mod, t.cu, what, &mm, &cm, msg, sizeof msg);
        if (code) {
            s_fail_job(w, id, attempt, code, msg);
            continue;
        }
        if (t.gpu && w->ngpu == 0) {
            snprintf(msg, sizeof msg, "worker %s has no GPU slot, yet the broker sent it a GPU "
                     "job", w->host);
            s_fail_job(w, id, attempt, PD_ENOGPU, msg);
            continue;
        }
        char misfit[160];
        if (!pd_limits_fit(&t.req, &w->job_max, misfit, sizeof misfit)) {
            snprintf(msg, sizeof msg, "the job asks for %s on worker %s (its owner's "
                     "[worker] max_* settings); ask for less", misfit, w->host);
            s_fail_job(w, id, attempt, PD_ELIMIT, msg);
            continue;
        }
        pd_worker_queue_t *q = &w->q[t.gpu ? PD_WORKER_Q_GPU : PD_WORKER_Q_CPU];
        if (fnlen == 0 || fnlen >= sizeof ((pd_job_t *) 0)->fn) {
            snprintf(msg, sizeof msg, "module %s has no function '%.*s' (check the name passed "
                     "to map)", mm->name, (int) (fnlen > 64 ? 64 : fnlen), fn);
            s_fail_job(w, id, attempt, PD_ENOFUNC, msg);
            continue;
        }
        if (q->len >= q->max) {
            snprintf(msg, sizeof msg, "worker %s holds %zu queued %s jobs, more than the "
                     "broker's credit allows; job refused", w->host, q->len, t.gpu ? "GPU" : "CPU");
            s_fail_job(w, id, attempt, PD_EOVERLOAD, msg);
            continue;
        }
        pd_job_t *job = pd_job_new(arg, alen);
        if (!job || s_q_push_back(q, job)) {
            pd_job_destroy(&job);
            s_fail_job(w, id, attempt, PD_ENOMEM, "worker out of memory");
            continue;
        }
        job->id = id;
        job->attempt = attempt;
        job->timeout_ms = timeout_ms;
        memcpy(job->mod, mm->hash, sizeof job->mod);
        memcpy(job->kind, mm->kind, sizeof job->kind);
        memcpy(job->name, mm->name, sizeof job->name);
        memcpy(job->fn, fn, fnlen);
        job->fn[fnlen] = 0;
        snprintf(job->shared, sizeof job->shared, "%.*s", (int) sizeof job->shared - 1, t.shared);
        job->gpu = t.gpu;
        job->limits = pd_limits_apply(&t.req, &w->job_default);
        if (cm) {
            memcpy(job->cu, cm->hash, sizeof job->cu);
            memcpy(job->cu_name, cm->name, sizeof job->cu_name);
        }
    }
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

static bool s_is_cancelled(void *user, uint64_t id)
{
    pd_worker_t *w = user;
    return w->ncancel && bsearch(&id, w->cancel, w->ncancel, sizeof id, s_cmp_u64);
}

void pd_worker_on_cancel(pd_worker_t *w, const pd_msg_t *m)
{
    pd_m_w_cancel_t c;
    if (pd_m_w_cancel_decode(m, &c)) {
        pd_log_warn("broker sent a bad 'cancel': %s", m->why);
        return;
    }
    pd_rd_t r;
    uint32_t n;
    pd_rd_init(&r, c.ids.p, c.ids.len);
    pd_rd_array(&r, &n);
    uint64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids)
        return;
    size_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (pd_rd_uint(&r, &ids[k]) == 0)
            k++;
        else
            pd_rd_skip(&r, NULL, NULL);
    qsort(ids, k, sizeof *ids, s_cmp_u64);
    w->cancel = ids;
    w->ncancel = k;
    size_t dropped = 0;
    for (int c = 0; c < 2; c++) {
        pd_worker_queue_t *q = &w->q[c];
        size_t kept = 0;
        for (size_t i = 0; i < q->len; i++) {
            pd_job_t *job = q->q[(q->head + i) % q->cap];
            if (s_is_cancelled(w, job->id)) {
                pd_job_destroy(&job);
                dropped++;
            } else {
                q->q[(q->head + kept++) % q->cap] = job;
            }
        }
        q->len = kept;
    }
    for (int k = 0; k < pd_worker_nall(w); k++)
        if (pd_worker_slot(w, k))
            dropped += pd_slot_cancel(pd_worker_slot(w, k), s_is_cancelled, w);
    w->cancel = NULL;
    w->ncancel = 0;
    free(ids);
    pd_log_debug("cancel: %zu of %u jobs were here", dropped, n);
}
