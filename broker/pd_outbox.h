/*  pd_outbox: replies held until the journal batch they depend on settles.

    The broker answers a client only with what is on disk. While the
    journal has changes not yet committed, a reply is copied here, tagged
    with the journal batch (seq) it waits for, and sent when that batch
    settles (pd_outbox_flush). A reply that answers a submit also remembers
    the submit, so that when its batch fails the submit can be taken back
    and the reply turned into an `error` (pd_outbox_refuse).

    Beside the replies it keeps the wake lists: jobs that became final in a
    batch holding a cancellation, whose parked fetches are woken once the
    batch settles (a cancellation is shown only once on disk).

    The outbox knows no socket: sending, taking a submit back and waking
    fetches are the caller's callbacks. Replies leave in the order they were
    held (a ring, oldest first); batches settle in order too.
*/
#ifndef PD_OUTBOX_H
#define PD_OUTBOX_H

#include "pd_codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pd_outbox pd_outbox_t;

/* A held submit's description, for taking it back. */
typedef struct {
    uint64_t req;         /* the client's request number */
    uint64_t first;       /* ids first .. first+n-1 */
    uint32_t n;           /* jobs */
    const uint8_t *token; /* its token (tokenlen bytes; 0: none) */
    size_t tokenlen;
} pd_outbox_submit_t;

/* Sends one held reply to the peer rid. */
typedef void(pd_outbox_send_fn)(void *user, const void *rid, size_t ridlen, const void *data,
                                size_t len);
/* Takes back a submit whose batch failed and writes the `error` that
   replaces its reply into reply (left empty or failed: the client gets
   nothing and times out). */
typedef void(pd_outbox_refuse_fn)(void *user, const pd_outbox_submit_t *s, pd_buf_t *reply);
/* Wakes the parked fetches touched by the sorted ids. */
typedef void(pd_outbox_wake_fn)(void *user, const uint64_t *ids, size_t n);

/* A new, empty outbox, or NULL without memory. */
pd_outbox_t *pd_outbox_new(void);
/* Frees the outbox and whatever it still holds (sends nothing); sets *p
   to NULL. */
void pd_outbox_destroy(pd_outbox_t **p);

/* Copies the reply data[0..len) to rid, to be sent once batch seq settles.
   Returns 0, or PD_ENOMEM (nothing held). */
int pd_outbox_hold(pd_outbox_t *ob, uint64_t seq, const void *rid, size_t ridlen,
                   const void *data, size_t len);
/* The last reply was sent at once, not held: pd_outbox_mark_submit then
   does nothing. */
void pd_outbox_sent_now(pd_outbox_t *ob);
/* Notes that the reply held last answers a submit (see
   pd_outbox_submit_t); a token over PD_JOBS_TOKEN_MAX bytes is not kept. */
void pd_outbox_mark_submit(pd_outbox_t *ob, uint64_t req, uint64_t first, uint32_t n,
                           const void *token, size_t tokenlen);
/* True when the reply to a submit of ids starting at first is held. */
bool pd_outbox_submit_held(const pd_outbox_t *ob, uint64_t first);
/* A batch failed: every held submit goes through refuse, and its reply
   becomes the error refuse wrote (built in scratch). Returns how many. */
uint32_t pd_outbox_refuse(pd_outbox_t *ob, pd_outbox_refuse_fn *refuse, void *user,
                          pd_buf_t *scratch);
/* Sends (through send) the replies waiting for batches up to seq, oldest
   first, and forgets them. */
void pd_outbox_flush(pd_outbox_t *ob, uint64_t seq, pd_outbox_send_fn *send, void *user);
/* Replies held, and their bytes (routing ids and messages). */
uint32_t pd_outbox_count(const pd_outbox_t *ob);
size_t pd_outbox_bytes(const pd_outbox_t *ob);

/* Keeps a copy of the sorted ids[0..n) to wake once batch seq settles.
   Returns 0, or PD_ENOMEM (a missed wake-up: the parked fetches still
   answer at their deadline). */
int pd_outbox_add_wake(pd_outbox_t *ob, uint64_t seq, const uint64_t *ids, size_t n);
/* Calls wake for each kept list of batches up to seq, oldest first, and
   forgets them. */
void pd_outbox_wake(pd_outbox_t *ob, uint64_t seq, pd_outbox_wake_fn *wake, void *user);

#endif
