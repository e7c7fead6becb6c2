/*  pd_snapshot: the broker's state as JSON texts for the dashboard (issue 19).

    The broker's loop builds a snapshot at its tick (every 250 ms at most,
    pd_snapshot_publish) from the registry, the job table and the counters
    through their accessors, and swaps it in under a mutex as immutable,
    reference-counted texts. The HTTP thread (web/pd_http.c) takes a
    reference (pd_snapshot_get), serves it and drops it: it never touches the
    loop's data structures, and the loop never waits for a slow browser.

    Everything is bounded: workers are listed once each, jobs are counted
    per owner (no per-job rows; that walk of the job table once a second),
    and the event log is a ring of PD_SNAPSHOT_EVENTS entries, found by
    comparing a snapshot's workers with the previous one's (joined, lost)
    and the counters (refusals).
*/
#ifndef PD_SNAPSHOT_H
#define PD_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#define PD_SNAPSHOT_EVENTS 256u   /* entries of the event log kept */
#define PD_SNAPSHOT_PERIOD_MS 250 /* a snapshot at most this often */
#define PD_SNAPSHOT_BATCHES_EVERY 4u /* /api/batches (a walk of the job table) every 4th */

typedef struct pd_broker pd_broker_t;
typedef struct pd_snapshot pd_snapshot_t;

/* The texts of one snapshot. */
typedef enum {
    PD_SNAP_CLUSTER, /* /api/cluster */
    PD_SNAP_BATCHES, /* /api/batches */
    PD_SNAP_EVENTS,  /* /api/events */
    PD_SNAP_COUNT
} pd_snap_kind_t;

/* One immutable text, shared by reference. */
typedef struct pd_snap_text pd_snap_text_t;

/* A new, empty snapshot (every text "{}" until the first publish); NULL when
   memory ran out. */
pd_snapshot_t *pd_snapshot_new(void);
void pd_snapshot_destroy(pd_snapshot_t **s);

/* Builds the texts from the broker's state and swaps them in; from the
   broker's loop only. Does nothing when the previous one is younger than
   PD_SNAPSHOT_PERIOD_MS (now_ms: the loop's monotonic clock). */
void pd_snapshot_publish(pd_snapshot_t *s, pd_broker_t *b, int64_t now_ms);

/* A reference to the latest text of kind k (never NULL); any thread. */
pd_snap_text_t *pd_snapshot_get(pd_snapshot_t *s, pd_snap_kind_t k);
/* Its bytes (JSON, not NUL-terminated) and length. */
const char *pd_snap_text_data(const pd_snap_text_t *t, size_t *len);
/* Drops a reference taken by pd_snapshot_get; the text goes with the last. */
void pd_snap_text_drop(pd_snap_text_t *t);
/* How many snapshots were published (the SSE stream's sequence number). */
uint64_t pd_snapshot_seq(pd_snapshot_t *s);

/* Makes the broker publish into s at each tick (NULL: stop); before
   pd_broker_run, s outliving the run. Defined in pd_broker.c. */
void pd_broker_set_snapshot(pd_broker_t *b, pd_snapshot_t *s);

#endif
