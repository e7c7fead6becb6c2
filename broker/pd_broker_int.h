/*  pd_broker_int.h: the narrow interface between the broker's loop
    (pd_broker.c) and its message handlers (pd_broker_client.c,
    pd_broker_task.c, pd_broker_worker.c): the parts the root object owns,
    sending, and the handlers' entry points. The root object's struct is
    not here (pd_broker_root.h): handlers reach its parts through these
    functions only. Not for other modules.
*/
#ifndef PD_BROKER_INT_H
#define PD_BROKER_INT_H

#include "pd_beacon.h"
#include "pd_broker.h"
#include "pd_bg.h"
#include "pd_codec.h"
#include "pd_jobs.h"
#include "pd_journal.h"
#include "pd_log.h"
#include "pd_mods.h"
#include "pd_outbox.h"
#include "pd_park.h"
#include "pd_msg.h"
#include "pd_probes.h"
#include "pd_proto.h"
#include "pd_sched.h"
#include "pd_tasks.h"
#include "pd_shared.h"
#include "pd_workers.h"
#include "pd_zap.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <zmq.h>

/* Where a message came from, and a place for its error sentence. */
typedef struct {
    const uint8_t *rid; /* routing id (in the received frame) */
    size_t ridlen;      /* bytes in rid */
    const char *key;    /* the peer's public key (Z85), NULL without CURVE */
    pd_role_t role;     /* what the key may do now (PD_ROLE_BOTH without CURVE) */
    char owner[PD_OWNER_TXT]; /* who it is as an owner (pd_auth_owner_of_token): the key,
                                 else the id of the request's `owner` token, else "" */
    uint64_t req;       /* request number (clients) */
    char why[512];      /* a failing handler's sentence for the user */
} pd_origin_t;

/* A refused message: copies its sentence (m->why, set by the codec) to the
   origin and returns rc, the one way a handler says why it refused one:
   `if (rc) return pd_broker_refuse(m, o, rc);` */
static inline int pd_broker_refuse(const pd_msg_t *m, pd_origin_t *o, int rc)
{
    snprintf(o->why, sizeof o->why, "%s", m->why);
    return rc;
}

/* ---- the broker's parts, for the handlers ------------------------------
   The root object is opaque to the handlers (pd_broker_root.h is for
   pd_broker.c and white-box tests): they reach the classes it owns through
   these. */

/* When the task table is next scanned for deadlines (pd_broker_task.c's). */
typedef struct {
    int64_t next;    /* ms of the next scan for task time-outs */
    int64_t soonest; /* the nearest task deadline seen by the last scan; 0 none */
} pd_task_scan_t;

/* Shared data being hashed off the loop (pd_broker_client.c's). */
typedef struct {
    struct pd_upload *list; /* newest first */
    uint64_t bytes;         /* their bytes */
} pd_uploads_t;

pd_jobs_t *pd_broker_jobs(const pd_broker_t *b);
pd_journal_t *pd_broker_journal(const pd_broker_t *b); /* NULL: none */
pd_mods_t *pd_broker_mods(const pd_broker_t *b);
pd_probes_t *pd_broker_probes(const pd_broker_t *b);
pd_shared_t *pd_broker_shared(const pd_broker_t *b);
pd_reg_t *pd_broker_workers(const pd_broker_t *b);
pd_tasks_t *pd_broker_tasks(const pd_broker_t *b);
pd_sched_t *pd_broker_sched(const pd_broker_t *b);
pd_park_t *pd_broker_park(const pd_broker_t *b);
pd_outbox_t *pd_broker_outbox(const pd_broker_t *b);
pd_bg_t *pd_broker_bg(const pd_broker_t *b);
pd_zap_t *pd_broker_zap(const pd_broker_t *b); /* NULL without CURVE */
/* The reply buffer (sent by pd_broker_send_out / _now) and a second one
   for messages built beside a reply (mod, cancel). */
pd_buf_t *pd_broker_out(pd_broker_t *b);
pd_buf_t *pd_broker_aux(pd_broker_t *b);
/* Monotonic ms of this loop turn. */
int64_t pd_broker_now_ms(const pd_broker_t *b);
const pd_broker_config_t *pd_broker_cfg(const pd_broker_t *b);
pd_broker_stats_t *pd_broker_counters(pd_broker_t *b);
const char *pd_broker_name(const pd_broker_t *b);
const char *pd_broker_cluster(const pd_broker_t *b);
pd_log_limit_t *pd_broker_limits_log(pd_broker_t *b);
pd_task_scan_t *pd_broker_task_scan(pd_broker_t *b);
pd_uploads_t *pd_broker_uploads(pd_broker_t *b);


/* Handles one received message as the loop does: checks the peer's role,
   parses, dispatches to the handler, answers `error` on failure. key and
   role describe the peer (pd_auth_msg_peer); NULL and PD_ROLE_BOTH without
   CURVE. For the loop, tests and fuzzing. */
void pd_broker_on_frame(pd_broker_t *b, const uint8_t *rid, size_t ridlen, const char *key,
                        pd_role_t role, const uint8_t *data, size_t len);

/* Drops every job, result, module, shared data, task, worker and parked
   fetch, as if the broker had just started (the socket stays). For
   fuzzing: each input then meets the same broker. Returns 0 or PD_ENOMEM. */
int pd_broker_forget_all(pd_broker_t *b);

/* Sends one message (the bytes) to a peer. Returns 0, or PD_EUNREACH when
   the peer is gone, or PD_EOVERLOAD when its queue is full; a failure is
   logged and counted. */
int pd_broker_send(pd_broker_t *b, const void *rid, size_t ridlen, const void *data, size_t len);
/* Sends the message built in the aux buffer (pd_broker_aux) to worker wk,
   then empties the buffer; on success notes the moment (wk's heartbeat
   waits). Returns 0, PD_EUNREACH when wk is NULL (gone), PD_ENOMEM when
   the message could not be built, or as pd_broker_send. */
int pd_broker_tell(pd_broker_t *b, pd_wrec_t *wk);
/* Sends b->out to the peer (then resets b->out): a reply to a client. While
   the journal has changes not yet committed the reply is held, and sent
   when the journal settles the batch it depends on, so that nothing a
   client sees can be lost. */
int pd_broker_send_out(pd_broker_t *b, const void *rid, size_t ridlen);
/* Encodes the reply r (the pd_m_*_t that d describes) into b->out and
   sends it to o as pd_broker_send_out does. */
void pd_broker_reply(pd_broker_t *b, const pd_origin_t *o, const pd_proto_msg_t *d, const void *r);
/* Sends one frame made of head[0..hlen) followed by data[0..dlen) (a large
   bin field's bytes), copying each once. Same returns as pd_broker_send. */
int pd_broker_send2(pd_broker_t *b, const void *rid, size_t ridlen, const void *head, size_t hlen,
                    const void *data, size_t dlen);
/* Sends b->out to the peer at once, whatever the journal: for fetch
   results, which may show what is not on disk yet (a crash runs those jobs
   again) but never a cancellation that is not. */
int pd_broker_send_now(pd_broker_t *b, const void *rid, size_t ridlen);
/* Notes that the reply just sent by pd_broker_send_out answers a submit of
   ids first .. first+n-1 (token: its token, len 0 when none): if it was
   held and its batch fails, the submit is withdrawn and the reply becomes
   an `error`. */
void pd_broker_hold_submit(pd_broker_t *b, uint64_t req, uint64_t first, uint32_t n,
                           const void *token, size_t tokenlen);
/* True when an `accepted` for ids starting at first is held. */
bool pd_broker_submit_held(const pd_broker_t *b, uint64_t first);
/* Answers `error {req, code, msg}` to o's request later than its handler
   (work done off the loop), logged as a refusal. */
void pd_broker_send_error(pd_broker_t *b, const pd_origin_t *o, int code, const char *msg);
/* Hands pending changes to the journal and waits until everything is
   settled, sending the held replies. No-op without a journal. */
void pd_broker_sync(pd_broker_t *b);
/* Seconds since the broker started. */
uint32_t pd_broker_now_s(const pd_broker_t *b);
/* Wall-clock seconds (the result time-to-live survives a restart). */
uint32_t pd_broker_wall_s(void);

/* Client requests: each returns 0 (reply sent) or a PD_E* code with
   o->why set; the loop then answers `error`. */
int pd_broker_on_hello(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
int pd_broker_on_mod_has(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
int pd_broker_on_mod_put(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
int pd_broker_on_shr_has(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
int pd_broker_on_shr_put(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
int pd_broker_on_submit(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
int pd_broker_on_status(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
int pd_broker_on_fetch(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
int pd_broker_on_cancel(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
int pd_broker_on_release(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
/* Cancels the unfinished jobs first .. first+n-1 (stopping those running on
   workers), as `cancel` does. Returns how many. */
uint64_t pd_broker_cancel_range(pd_broker_t *b, uint64_t first, uint32_t n);
/* Refuses a request (of type `type`) naming ids of another owner than
   o->owner, unless the key has the admin role: returns 0 when every known
   id among the ranges is o's or nobody's, else PD_EPERM with a sentence in
   o->why naming the first other job and saying that only its owner (or an
   admin) may `act` ("cancel it"). */
int pd_broker_check_owner(pd_broker_t *b, pd_origin_t *o, const pd_ranges_t *rg,
                          const char *type, const char *act);
/* The same for one thing whose owner is `owner`: `what` names it ("task 7"). */
int pd_broker_check_owner_of(pd_origin_t *o, const char *owner, const char *what,
                             const char *type, const char *act);
/* Packs the value of `cluster`'s field `owners`: per owner of known jobs,
   {owner, mine (it is o), batches, queued, running, final}. */
void pd_broker_pack_owners(pd_broker_t *b, msgpack_packer *pk, const pd_origin_t *o);
/* `cluster`: every worker with its slots, load and jobs (pd_broker_worker.c). */
int pd_broker_on_cluster(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
int pd_broker_on_gc(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
/* Answers parked fetches touched by jobs that became final, then clears
   the fresh list; with a journal, once the batch holding them settles. */
void pd_broker_wake_parked(pd_broker_t *b);
/* Answers parked fetches touched by the sorted ids (now visible). */
void pd_broker_wake_ids(pd_broker_t *b, const uint64_t *ids, size_t n);
/* Answers parked fetches (of jobs and tasks) whose wait ran out; returns
   ms to the nearest remaining deadline (or -1 when none is parked). */
int64_t pd_broker_expire_parked(pd_broker_t *b);
/* Answers a parked task fetch (pd_broker_task.c). */
void pd_broker_answer_task_fetch(void *b, const pd_park_task_t *p);

/* Synchronous tasks (pd_broker_task.c), same convention. */
int pd_broker_on_task_submit(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
int pd_broker_on_task_status(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
/* task_progress {req, id}: task_report {req, id, state, seq, val} with the
   task's latest node_progress value (nil before any). */
int pd_broker_on_task_progress(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
int pd_broker_on_task_fetch(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
int pd_broker_on_task_cancel(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
int pd_broker_on_task_stop(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
int pd_broker_on_task_release(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
/* node_bound, node_ready, node_done from worker wk. */
int pd_broker_on_node(pd_broker_t *b, pd_wrec_t *wk, pd_msg_t *m, pd_origin_t *o);
/* Starts task id, whose nodes the scheduler placed: sends each its
   node_start. Returns 0, or a PD_E* code when the task failed to start. */
int pd_broker_start_task(pd_broker_t *b, uint64_t id);
/* Fails the tasks with a node on wk (which is leaving or lost): `why` says
   how, for the error message. Frees their slots. */
void pd_broker_tasks_worker_gone(pd_broker_t *b, pd_wrec_t *wk, const char *why);
/* Start and run time-outs, result expiry; returns ms to the nearest task
   deadline (-1: none). */
int64_t pd_broker_tick_tasks(pd_broker_t *b);
/* Sends module mod to wk (a `mod` message) and notes it; 0 or PD_E*. */
int pd_broker_send_mod(pd_broker_t *b, pd_wrec_t *wk, uint32_t mod, const char *client);

/* Checks what a submit or task_submit asks of GPUs: cuhash ("" for none)
   must name a module of kind "cu" (*cu gets its index + 1, or 0), which
   implies *gpu; a GPU request needs a cluster where a worker has offered a
   GPU since the broker started. Returns 0, or PD_ENOMODULE, PD_EINVAL or
   PD_ENOGPU with the sentence in o->why. */
int pd_broker_check_gpu(pd_broker_t *b, const char *cuhash, bool *gpu, uint32_t *cu,
                        pd_origin_t *o);
/* Checks what a submit's jobs ask to take: an output cap over
   PD_LIMITS_MAX_OUTPUT is PD_EINVAL (the sentence in o->why); a request no
   registered worker allows waits for one that does (logged). Returns 0 or
   PD_EINVAL. */
int pd_broker_check_limits(pd_broker_t *b, const pd_limits_t *lim, pd_origin_t *o);
/* Checks that the module md can run somewhere: source can; a prebuilt one
   needs a platform Playdoh runs on, whose worker has joined since the
   broker started. Returns 0, or PD_ENOSLOTS with the sentence in o->why. */
int pd_broker_check_platform(pd_broker_t *b, const pd_mod_t *md, pd_origin_t *o);

/* The broker did not listen for ms (stopped, or busy): every worker's
   silence is counted from ms later, and the moment is logged. */
void pd_broker_workers_forgive(pd_broker_t *b, int64_t ms);

/* Worker messages, same convention. */
int pd_broker_on_worker(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);
/* True for the types workers send (ready, hb, slots, requeue, done, bye, node_bound,
   node_ready, node_done). */
bool pd_broker_is_worker_type(const pd_msg_t *m);
/* Carries out the scheduler's orders: starts placed tasks, sends jobs to
   workers with credit, asks busy workers for jobs back. */
void pd_broker_dispatch(pd_broker_t *b);
/* Shared-data blob i is being evicted: tells the workers holding it to drop
   it and forgets that they had it. */
void pd_broker_shared_evicted(pd_broker_t *b, uint32_t i, const char *hash);
/* Heartbeat tick: declares silent workers dead, sends hb to idle ones. */
void pd_broker_tick_workers(pd_broker_t *b);
/* Forgets the workers whose key the allow-list no longer admits as a
   worker (their jobs are requeued without counting an attempt). */
void pd_broker_revoke_workers(pd_broker_t *b);

#endif
