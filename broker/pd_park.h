/*  pd_park: the parking lot of long polls.

    A `fetch` (jobs) or `task_fetch` (a task) that finds nothing to show
    and may wait is parked here until what it waits for happens or its
    deadline passes. Job fetches are woken by the sorted ids of jobs that
    became final (pd_park_wake_ids: only those whose ranges contain one of
    them); task fetches by their task's end (pd_park_wake_task). Both kinds
    share one deadline interface (pd_park_expire), which the loop calls each
    turn to answer what ran out and learn how long it may sleep.

    The lot holds at most `max` fetches of each kind, in fixed arrays made
    at creation: parking never allocates. Answering is the caller's: the
    lot calls back with the parked request, and knows no socket.
*/
#ifndef PD_PARK_H
#define PD_PARK_H

#include "pd_ranges.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_PARK_RID 256 /* bytes of a routing id kept at most */

typedef struct pd_park pd_park_t;

/* A parked job fetch. */
typedef struct {
    uint8_t rid[PD_PARK_RID]; /* client's routing id */
    uint32_t ridlen;     /* bytes in rid */
    uint64_t req;        /* client's request number */
    pd_ranges_t ids;     /* ids it asks for (owned by the lot) */
    uint64_t max;        /* results per reply at most */
    int64_t deadline;    /* ms (monotonic) of the empty answer */
} pd_park_fetch_t;

/* A parked task fetch. */
typedef struct {
    uint8_t rid[PD_PARK_RID]; /* client's routing id */
    uint32_t ridlen;     /* bytes in rid */
    uint64_t req;        /* client's request number */
    uint64_t task;       /* the task it waits for */
    uint32_t from;       /* first node wanted in the reply */
    int64_t deadline;    /* ms (monotonic) of the answer without the end */
} pd_park_task_t;

/* Answers a parked job fetch; expired: its deadline passed (it must be
   answered now, even empty). Returns true when it was answered (it then
   leaves the lot), false when it has nothing to show yet. */
typedef bool(pd_park_fetch_fn)(void *user, const pd_park_fetch_t *p, bool expired);
/* Answers a parked task fetch (it then leaves the lot). */
typedef void(pd_park_task_fn)(void *user, const pd_park_task_t *p);

/* A lot for max fetches of each kind, or NULL without memory. */
pd_park_t *pd_park_new(uint32_t max);
/* Frees the lot and what is parked (answers nothing); sets *p to NULL. */
void pd_park_destroy(pd_park_t **p);
/* Forgets every parked fetch, answering none. */
void pd_park_clear(pd_park_t *pk);

/* Parks a job fetch: *ids moves into the lot (emptied in the caller's
   copy). Returns 0, or PD_EOVERLOAD when max are parked (ids untouched). */
int pd_park_fetch(pd_park_t *pk, const void *rid, size_t ridlen, uint64_t req, pd_ranges_t *ids,
                  uint64_t max, int64_t deadline);
/* Parks a task fetch. Returns 0, or PD_EOVERLOAD when max are parked. */
int pd_park_task(pd_park_t *pk, const void *rid, size_t ridlen, uint64_t req, uint64_t task,
                 uint32_t from, int64_t deadline);

/* Offers each job fetch whose ranges contain one of the sorted ids[0..n)
   to answer (expired false). */
void pd_park_wake_ids(pd_park_t *pk, const uint64_t *ids, size_t n, pd_park_fetch_fn *answer,
                      void *user);
/* Answers every fetch of task (it has ended). */
void pd_park_wake_task(pd_park_t *pk, uint64_t task, pd_park_task_fn *answer, void *user);
/* Answers the fetches of both kinds whose deadline is at or before now
   (job fetches first). Returns ms to the nearest remaining deadline, or
   -1 when nothing is parked. */
int64_t pd_park_expire(pd_park_t *pk, int64_t now, pd_park_fetch_fn *fetch,
                       pd_park_task_fn *task, void *user);

#endif
