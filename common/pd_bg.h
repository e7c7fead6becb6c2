/*  pd_bg: work done off an event loop, on one background thread.

    A loop that must not stall (the broker's, a worker's) hands work that
    takes long on large inputs (hashing and storing shared data) to a
    pd_bg: work(arg) runs on the background thread, in the order submitted,
    and done(arg) runs later on the loop's thread, from pd_bg_drain(), which
    the loop calls when pd_bg_socket() is readable. arg belongs to the
    caller; work and done must not touch the loop's state from the thread
    (work gets only arg).

        pd_bg_t *bg = pd_bg_new();
        pd_bg_submit(bg, s_hash_work, s_hash_done, job);
        ... zmq_poll also on pd_bg_socket(bg); when readable: pd_bg_drain(bg);
        pd_bg_destroy(&bg);   // finishes the work in flight, runs its done
*/
#ifndef PD_BG_H
#define PD_BG_H

#include <stddef.h>

typedef struct pd_bg pd_bg_t;
typedef void pd_bg_fn(void *arg);

/* A background thread; NULL when it cannot start. */
pd_bg_t *pd_bg_new(void);
/* Queues work(arg) on the thread and done(arg) on the loop after it (done
   may be NULL). Returns 0, or PD_ENOMEM / PD_ESYS (then nothing runs). */
int pd_bg_submit(pd_bg_t *bg, pd_bg_fn *work, pd_bg_fn *done, void *arg);
/* A ZeroMQ socket that is readable when finished work waits for its done. */
void *pd_bg_socket(pd_bg_t *bg);
/* Runs done(arg) for every piece of work finished so far; returns how many. */
int pd_bg_drain(pd_bg_t *bg);
/* Waits for every piece of work submitted and runs its done. */
void pd_bg_finish(pd_bg_t *bg);
/* Pieces of work submitted whose done has not run yet. */
size_t pd_bg_pending(const pd_bg_t *bg);
/* Finishes the work queued, runs its done callbacks, stops the thread and
   frees bg; sets *p to NULL. Safe on NULL. */
void pd_bg_destroy(pd_bg_t **p);

#endif
