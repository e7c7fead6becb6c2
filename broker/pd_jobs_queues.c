/*  pd_jobs_queues: the fair queues of the job table.

    Queues: one per client (the submitter's ZeroMQ routing id), each a ring
    of [first, count] ranges. A submit appends one range to its client's
    ring; a requeue prepends one id (merged with the head when adjacent).
    Popping skips ids no longer queued (cancelled), so cancel is O(1); when a
    ring holds many more ranges than queued jobs it is compacted.

    Fair sharing: the clients that may be dispatched now (jobs queued, and
    fewer running than their max_slots) form a circular list; pd_jobs_pop()
    takes one job from the client at the cursor and moves the cursor on, so
    free slots go round-robin between clients, one job each, in O(1). A
    client leaves the list when it has nothing queued or reaches its cap, and
    comes back (at the end of the round) when that changes. A client record
    is freed once it has no queued or running job.

    Slot classes: a client's GPU jobs (that asked for a GPU slot, or ship
    CUDA kernels) have a record and a queue of their own, in a dispatch ring
    of their own, so pd_jobs_pop(j, PD_JOBS_GPU) serves GPU slots only and
    pd_jobs_pop(j, PD_JOBS_CPU) CPU slots only, each round-robin between
    clients. A client's max_slots caps each class separately. The pop limit
    (pd_jobs_set_pop_limit) holds back a client whose next job's id is at
    or past it: the round-robin passes it by.
*/
#include "pd_jobs_int.h"
#include "pd_error.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- queues ------------------------------------------------------------ */

/* True when id is a queued job (its queue may still hold ids that were
   cancelled or withdrawn). */
static bool s_queued(const pd_jobs_t *j, uint64_t id)
{
    const pd_jobrec_t *job = pd_jobs_find(j, id);
    return job && job->state == PD_JOB_QUEUED;
}

static int s_q_grow(pd_jobs_client_t *cl)
{
    size_t cap = cl->qcap ? cl->qcap * 2 : 16;
    pd_jobs_qrange_t *q = malloc(cap * sizeof *q);
    if (!q)
        return PD_ENOMEM;
    for (size_t i = 0; i < cl->qlen; i++)
        q[i] = cl->q[(cl->qhead + i) & (cl->qcap - 1)];
    free(cl->q);
    cl->q = q;
    cl->qcap = cap;
    cl->qhead = 0;
    return 0;
}

static pd_jobs_qrange_t *s_q_at(pd_jobs_client_t *cl, size_t i)
{
    return &cl->q[(cl->qhead + i) & (cl->qcap - 1)];
}

int pd_jobs_queue_push(pd_jobs_client_t *cl, uint64_t first, uint64_t count)
{
    if (cl->qlen) {
        pd_jobs_qrange_t *t = s_q_at(cl, cl->qlen - 1);
        if (t->first + t->count == first) {
            t->count += count;
            return 0;
        }
    }
    if (cl->qlen == cl->qcap && s_q_grow(cl))
        return PD_ENOMEM;
    *s_q_at(cl, cl->qlen) = (pd_jobs_qrange_t){first, count};
    cl->qlen++;
    return 0;
}

void pd_jobs_queue_unpush(pd_jobs_client_t *cl, uint64_t first, uint64_t count)
{
    if (!cl->qlen)
        return;
    pd_jobs_qrange_t *t = s_q_at(cl, cl->qlen - 1);
    if (t->first + t->count != first + count)
        return; /* the push did not happen */
    t->count -= count;
    if (t->count == 0)
        cl->qlen--;
}

static int s_q_push_front(pd_jobs_client_t *cl, uint64_t id)
{
    if (cl->qlen) {
        pd_jobs_qrange_t *h = s_q_at(cl, 0);
        if (h->first == id + 1) {
            h->first = id;
            h->count++;
            return 0;
        }
    }
    if (cl->qlen == cl->qcap && s_q_grow(cl))
        return PD_ENOMEM;
    cl->qhead = (cl->qhead + cl->qcap - 1) & (cl->qcap - 1);
    cl->qlen++;
    *s_q_at(cl, 0) = (pd_jobs_qrange_t){id, 1};
    return 0;
}

/* Drops ranges holding no queued job (cancelled ones). Called when the ring
   holds far more ranges than queued jobs, so its cost is amortised over the
   cancels that made the garbage. */
static void s_q_compact(pd_jobs_t *j, pd_jobs_client_t *cl)
{
    size_t out = 0;
    for (size_t i = 0; i < cl->qlen; i++) {
        pd_jobs_qrange_t r = *s_q_at(cl, i);
        while (r.count && !s_queued(j, r.first))
            r.first++, r.count--;
        if (r.count)
            *s_q_at(cl, out++) = r;
    }
    cl->qlen = out;
}

/* ---- clients ------------------------------------------------------------ */

/* An empty id is the anonymous client "-"; a GPU record's key is the CPU
   one's with a "g" in front. */
pd_jobs_client_t *pd_jobs_client_get(pd_jobs_t *j, const void *rid, size_t len, int cls)
{
    char key[2 * PD_JOBS_MAX_CLIENT_ID + 3];
    assert(len <= PD_JOBS_MAX_CLIENT_ID);
    char *k = key;
    if (cls == PD_JOBS_GPU)
        *k++ = 'g';
    if (len)
        sodium_bin2hex(k, sizeof key - 1, rid, len);
    else
        snprintf(k, sizeof key - 1, "-");
    void *v = zhashx_lookup(j->client_index, key);
    if (v)
        return j->clients[(uintptr_t) v - 1];
    uint32_t idx = 0;
    while (idx < j->nclients && j->clients[idx])
        idx++;
    if (idx == j->capclients) {
        uint32_t cap = j->capclients ? j->capclients * 2 : 16;
        pd_jobs_client_t **a = realloc(j->clients, cap * sizeof *a);
        if (!a)
            return NULL;
        j->clients = a;
        j->capclients = cap;
    }
    size_t klen = strlen(key) + 1;
    pd_jobs_client_t *cl = calloc(1, sizeof *cl + klen);
    if (!cl)
        return NULL;
    memcpy(cl->key, key, klen);
    cl->index = idx;
    cl->cls = (uint8_t) cls;
    if (zhashx_insert(j->client_index, key, (void *) (uintptr_t) (idx + 1))) {
        free(cl);
        return NULL;
    }
    j->clients[idx] = cl;
    if (idx == j->nclients)
        j->nclients++;
    return cl;
}

static void s_ring_insert(pd_jobs_t *j, pd_jobs_client_t *cl)
{
    int c = cl->cls;
    if (j->nactive[c] == 0) {
        cl->prev = cl->next = cl->index;
        j->cursor[c] = cl->index;
    } else {
        /* Just before the cursor: the end of the current round. */
        pd_jobs_client_t *at = j->clients[j->cursor[c]];
        pd_jobs_client_t *before = j->clients[at->prev];
        cl->next = at->index;
        cl->prev = before->index;
        before->next = cl->index;
        at->prev = cl->index;
    }
    cl->active = true;
    j->nactive[c]++;
}

static void s_ring_remove(pd_jobs_t *j, pd_jobs_client_t *cl)
{
    int c = cl->cls;
    if (--j->nactive[c] > 0) {
        j->clients[cl->prev]->next = cl->next;
        j->clients[cl->next]->prev = cl->prev;
        if (j->cursor[c] == cl->index)
            j->cursor[c] = cl->next;
    }
    cl->active = false;
}

void pd_jobs_client_refresh(pd_jobs_t *j, pd_jobs_client_t *cl)
{
    bool want = cl->queued > 0 && (cl->max_slots == 0 || cl->running < cl->max_slots);
    if (want && !cl->active)
        s_ring_insert(j, cl);
    else if (!want && cl->active)
        s_ring_remove(j, cl);
    if (cl->queued == 0 && cl->running == 0) {
        zhashx_delete(j->client_index, cl->key);
        j->clients[cl->index] = NULL;
        while (j->nclients && !j->clients[j->nclients - 1])
            j->nclients--;
        free(cl->q);
        free(cl);
    } else if (cl->qlen > 64 && cl->qlen > 4 * (cl->queued + 16)) {
        s_q_compact(j, cl);
    }
}

/* The first queued id in the client's ring, dropping what is no longer
   queued (cancelled) from its head; 0 when none. */
static uint64_t s_client_head(pd_jobs_t *j, pd_jobs_client_t *cl)
{
    while (cl->qlen) {
        pd_jobs_qrange_t *h = &cl->q[cl->qhead];
        if (s_queued(j, h->first))
            return h->first;
        h->first++;
        if (--h->count == 0) {
            cl->qhead = (cl->qhead + 1) & (cl->qcap - 1);
            cl->qlen--;
        }
    }
    return 0;
}

void pd_jobs_set_pop_limit(pd_jobs_t *j, uint64_t limit) { j->pop_limit = limit; }

bool pd_jobs_ready(pd_jobs_t *j, int cls)
{
    assert(cls >= 0 && cls < PD_JOBS_CLASSES);
    if (!j->nactive[cls])
        return false;
    if (!j->pop_limit)
        return true;
    uint32_t at = j->cursor[cls];
    for (uint32_t k = 0; k < j->nactive[cls]; k++) {
        pd_jobs_client_t *cl = j->clients[at];
        uint64_t head = s_client_head(j, cl);
        if (head && head < j->pop_limit)
            return true;
        at = cl->next;
    }
    return false;
}

uint64_t pd_jobs_pop(pd_jobs_t *j, int cls) { return pd_jobs_pop_if(j, cls, NULL, NULL); }

uint64_t pd_jobs_pop_if(pd_jobs_t *j, int cls, bool (*fits)(void *user, const pd_jobrec_t *job),
                        void *user)
{
    assert(cls >= 0 && cls < PD_JOBS_CLASSES);
    for (uint32_t tried = 0; j->nactive[cls] && tried < j->nactive[cls]; tried++) {
        pd_jobs_client_t *cl = j->clients[j->cursor[cls]];
        /* An active client has queued jobs in its ring: cancelled ones are
           dropped here, already counted out of `queued`. */
        uint64_t id = s_client_head(j, cl);
        assert(id);
        if ((j->pop_limit && id >= j->pop_limit) || (fits && !fits(user, pd_jobs_find(j, id)))) {
            /* Not on disk yet, or not for this caller: the next client's turn. */
            j->cursor[cls] = cl->next;
            continue;
        }
        pd_jobs_qrange_t *h = &cl->q[cl->qhead];
        h->first++;
        if (--h->count == 0) {
            cl->qhead = (cl->qhead + 1) & (cl->qcap - 1);
            cl->qlen--;
        }
        pd_jobrec_t *job = pd_jobs_find(j, id);
        job->state = PD_JOB_RUNNING;
        job->attempt++;
        j->queued--;
        j->queued_cls[cls]--;
        cl->queued--;
        cl->running++;
        j->cursor[cls] = cl->next;
        if (cl->queued == 0 || (cl->max_slots && cl->running >= cl->max_slots))
            pd_jobs_client_refresh(j, cl); /* it leaves the ring */
        return id;
    }
    return 0;
}

uint32_t pd_jobs_clients(const pd_jobs_t *j) { return (uint32_t) zhashx_size(j->client_index); }

int pd_jobs_requeue(pd_jobs_t *j, uint64_t id, bool lost, const char *host)
{
    pd_jobrec_t *job = pd_jobs_find(j, id);
    assert(job && job->state == PD_JOB_RUNNING);
    if (lost) {
        job->losses++;
        unsigned allowed = job->retries ? job->retries : 1;
        if (job->losses >= allowed) {
            /* The limit counts lost workers only: a worker that said bye, a
               broker restart or the owner taking a slot back started the job
               again without counting, so runs can exceed it. */
            char msg[240];
            snprintf(msg, sizeof msg, "worker %s was lost while running the job: %u workers lost "
                     "with it, the limit (retries %u); started %u times in all", host,
                     (unsigned) job->losses, allowed, (unsigned) job->attempt);
            pd_jobs_set_failed(j, id, "PD_ELOST", msg, host, -1);
            return 1;
        }
    }
    pd_jobs_client_t *cl = j->clients[job->client];
    if (s_q_push_front(cl, id)) {
        /* Out of memory for the ring: fail the job rather than lose it. */
        pd_jobs_set_failed(j, id, "PD_ENOMEM", "the broker ran out of memory requeueing the job",
                           host, -1);
        return 1;
    }
    job->state = PD_JOB_QUEUED;
    j->queued++;
    j->queued_cls[cl->cls]++;
    cl->running--;
    cl->queued++;
    pd_jobs_client_refresh(j, cl);
    return 0;
}

void pd_jobs_client_of(pd_jobs_t *j, const pd_jobrec_t *job, uint8_t *rid, size_t *len,
                       uint32_t *max_slots)
{
    assert(!PD_JOB_IS_FINAL(job->state));
    const pd_jobs_client_t *cl = j->clients[job->client];
    const char *k = cl->key[0] == 'g' ? cl->key + 1 : cl->key; /* GPU queue: "g" + hex */
    size_t n = 0;
    if (strcmp(k, "-") != 0)
        for (; k[2 * n] && k[2 * n + 1] && n < PD_JOBS_MAX_CLIENT_ID; n++) {
            unsigned v;
            sscanf(k + 2 * n, "%2x", &v);
            rid[n] = (uint8_t) v;
        }
    *len = n;
    *max_slots = cl->max_slots;
}
