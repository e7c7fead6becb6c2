/*  pd_park: parked fetches; see pd_park.h.

    Two unordered arrays: a fetch leaves by taking the last one's place, so
    parking and answering cost O(1) and a wake-up scans the lot once.
*/
#include "pd_park.h"
#include "pd_error.h"

#include <stdlib.h>
#include <string.h>

struct pd_park {
    uint32_t max;           /* of each kind */
    pd_park_fetch_t *fetch; /* parked job fetches */
    uint32_t nfetch;
    pd_park_task_t *task;   /* parked task fetches */
    uint32_t ntask;
};

pd_park_t *pd_park_new(uint32_t max)
{
    pd_park_t *pk = calloc(1, sizeof *pk);
    if (!pk)
        return NULL;
    pk->max = max;
    pk->fetch = calloc(max, sizeof *pk->fetch);
    pk->task = calloc(max, sizeof *pk->task);
    if (!pk->fetch || !pk->task)
        pd_park_destroy(&pk);
    return pk;
}

void pd_park_clear(pd_park_t *pk)
{
    for (uint32_t i = 0; i < pk->nfetch; i++)
        pd_ranges_free(&pk->fetch[i].ids);
    pk->nfetch = 0;
    pk->ntask = 0; /* plain entries: nothing to free */
}

void pd_park_destroy(pd_park_t **p)
{
    if (!p || !*p)
        return;
    pd_park_t *pk = *p;
    if (pk->fetch)
        pd_park_clear(pk);
    free(pk->fetch);
    free(pk->task);
    free(pk);
    *p = NULL;
}

/* Copies a routing id (at most PD_PARK_RID bytes); returns its length. */
static uint32_t s_copy_rid(uint8_t *to, const void *rid, size_t ridlen)
{
    uint32_t n = (uint32_t) (ridlen < PD_PARK_RID ? ridlen : PD_PARK_RID);
    memcpy(to, rid, n);
    return n;
}

int pd_park_fetch(pd_park_t *pk, const void *rid, size_t ridlen, uint64_t req, pd_ranges_t *ids,
                  uint64_t max, int64_t deadline)
{
    if (pk->nfetch == pk->max)
        return PD_EOVERLOAD;
    pd_park_fetch_t *p = &pk->fetch[pk->nfetch++];
    p->ridlen = s_copy_rid(p->rid, rid, ridlen);
    p->req = req;
    p->ids = *ids;
    memset(ids, 0, sizeof *ids);
    p->max = max;
    p->deadline = deadline;
    return 0;
}

int pd_park_task(pd_park_t *pk, const void *rid, size_t ridlen, uint64_t req, uint64_t task,
                 uint32_t from, int64_t deadline)
{
    if (pk->ntask == pk->max)
        return PD_EOVERLOAD;
    pd_park_task_t *p = &pk->task[pk->ntask++];
    p->ridlen = s_copy_rid(p->rid, rid, ridlen);
    p->req = req;
    p->task = task;
    p->from = from;
    p->deadline = deadline;
    return 0;
}

static void s_unpark_fetch(pd_park_t *pk, uint32_t i)
{
    pd_ranges_free(&pk->fetch[i].ids);
    pk->fetch[i] = pk->fetch[--pk->nfetch];
}

void pd_park_wake_ids(pd_park_t *pk, const uint64_t *ids, size_t n, pd_park_fetch_fn *answer,
                      void *user)
{
    if (!n)
        return;
    for (uint32_t i = 0; i < pk->nfetch;) {
        pd_park_fetch_t *p = &pk->fetch[i];
        if (pd_ranges_touches(&p->ids, ids, n) && answer(user, p, false))
            s_unpark_fetch(pk, i);
        else
            i++;
    }
}

void pd_park_wake_task(pd_park_t *pk, uint64_t task, pd_park_task_fn *answer, void *user)
{
    for (uint32_t i = 0; i < pk->ntask;) {
        if (pk->task[i].task != task) {
            i++;
            continue;
        }
        answer(user, &pk->task[i]);
        pk->task[i] = pk->task[--pk->ntask];
    }
}

/* Keeps in *nearest the smaller of it and left (-1: none yet). */
static void s_nearest(int64_t *nearest, int64_t left)
{
    if (*nearest < 0 || left < *nearest)
        *nearest = left;
}

int64_t pd_park_expire(pd_park_t *pk, int64_t now, pd_park_fetch_fn *fetch,
                       pd_park_task_fn *task, void *user)
{
    int64_t nearest = -1;
    for (uint32_t i = 0; i < pk->nfetch;) {
        pd_park_fetch_t *p = &pk->fetch[i];
        if (p->deadline <= now) {
            fetch(user, p, true);
            s_unpark_fetch(pk, i);
            continue;
        }
        s_nearest(&nearest, p->deadline - now);
        i++;
    }
    for (uint32_t i = 0; i < pk->ntask;) {
        pd_park_task_t *p = &pk->task[i];
        if (p->deadline <= now) {
            task(user, p);
            pk->task[i] = pk->task[--pk->ntask];
            continue;
        }
        s_nearest(&nearest, p->deadline - now);
        i++;
    }
    return nearest;
}
