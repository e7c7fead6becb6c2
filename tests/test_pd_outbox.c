/*  Unit tests of the broker's outbox (broker/pd_outbox.c): replies leave in
    order once their journal batch settles, a held submit is found and,
    when its batch fails, taken back with its reply replaced, and the wake
    lists of cancellations wait for their batch. */
#include <criterion/criterion.h>

#include "pd_error.h"
#include "pd_outbox.h"

#include <string.h>

static pd_outbox_t *ob;
static char sent[16][32]; /* what the send callback saw, in order (the first 16) */
static int nsent;

static void setup(void)
{
    ob = pd_outbox_new();
    cr_assert_not_null(ob);
    nsent = 0;
}

static void teardown(void) { pd_outbox_destroy(&ob); }

TestSuite(unit_outbox, .init = setup, .fini = teardown);

static void s_send(void *user, const void *rid, size_t ridlen, const void *data, size_t len)
{
    (void) user;
    if (nsent < 16)
        snprintf(sent[nsent], sizeof sent[0], "%.*s:%.*s", (int) ridlen, (const char *) rid,
                 (int) len, (const char *) data);
    nsent++;
}

static void s_hold(uint64_t seq, const char *rid, const char *msg)
{
    cr_assert_eq(pd_outbox_hold(ob, seq, rid, strlen(rid), msg, strlen(msg)), 0);
}

Test(unit_outbox, replies_leave_in_order_when_their_batch_settles)
{
    s_hold(1, "a", "one");
    s_hold(2, "b", "two");
    s_hold(2, "a", "three");
    cr_assert_eq(pd_outbox_count(ob), 3);
    cr_assert_eq(pd_outbox_bytes(ob), (1 + 3) + (1 + 3) + (1 + 5), "routing ids and messages");
    pd_outbox_flush(ob, 1, s_send, NULL);
    cr_assert_eq(nsent, 1);
    cr_assert_str_eq(sent[0], "a:one");
    pd_outbox_flush(ob, 2, s_send, NULL);
    cr_assert_eq(nsent, 3);
    cr_assert_str_eq(sent[1], "b:two");
    cr_assert_str_eq(sent[2], "a:three");
    cr_assert_eq(pd_outbox_count(ob), 0);
    cr_assert_eq(pd_outbox_bytes(ob), 0);
}

Test(unit_outbox, the_ring_grows_past_its_first_capacity_in_order)
{
    char msg[16];
    for (int i = 0; i < 600; i++) {
        snprintf(msg, sizeof msg, "%d", i);
        s_hold((uint64_t) i / 100 + 1, "r", msg);
    }
    pd_outbox_flush(ob, 1, s_send, NULL);
    cr_assert_eq(nsent, 100);
    cr_assert_str_eq(sent[0], "r:0");
    cr_assert_eq(pd_outbox_count(ob), 500);
}

static uint64_t refused_first;

static void s_refuse(void *user, const pd_outbox_submit_t *sub, pd_buf_t *reply)
{
    (void) user;
    refused_first = sub->first;
    cr_assert_eq(sub->tokenlen, 3);
    cr_assert_eq(memcmp(sub->token, "tok", 3), 0);
    pd_buf_append(reply, "error", 5);
}

Test(unit_outbox, a_held_submit_is_taken_back_when_its_batch_fails)
{
    s_hold(5, "c", "accepted");
    pd_outbox_mark_submit(ob, 9, 100, 10, "tok", 3);
    s_hold(5, "d", "status");
    cr_assert(pd_outbox_submit_held(ob, 100));
    cr_assert_not(pd_outbox_submit_held(ob, 101));
    pd_buf_t scratch;
    pd_buf_init(&scratch);
    cr_assert_eq(pd_outbox_refuse(ob, s_refuse, NULL, &scratch), 1);
    pd_buf_free(&scratch);
    cr_assert_eq(refused_first, 100);
    cr_assert_not(pd_outbox_submit_held(ob, 100), "taken back once");
    pd_outbox_flush(ob, 5, s_send, NULL);
    cr_assert_eq(nsent, 2);
    cr_assert_str_eq(sent[0], "c:error", "the reply became the error");
    cr_assert_str_eq(sent[1], "d:status");
}

Test(unit_outbox, a_reply_sent_at_once_marks_no_submit)
{
    s_hold(1, "c", "accepted");
    pd_outbox_sent_now(ob);
    pd_outbox_mark_submit(ob, 9, 100, 10, NULL, 0);
    cr_assert_not(pd_outbox_submit_held(ob, 100));
}

static size_t woken;

static void s_wake(void *user, const uint64_t *ids, size_t n)
{
    (void) user;
    (void) ids;
    woken += n;
}

Test(unit_outbox, wake_lists_wait_for_their_batch)
{
    uint64_t a[] = {1, 2, 3}, b[] = {7};
    cr_assert_eq(pd_outbox_add_wake(ob, 3, a, 3), 0);
    cr_assert_eq(pd_outbox_add_wake(ob, 4, b, 1), 0);
    woken = 0;
    pd_outbox_wake(ob, 2, s_wake, NULL);
    cr_assert_eq(woken, 0);
    pd_outbox_wake(ob, 3, s_wake, NULL);
    cr_assert_eq(woken, 3);
    pd_outbox_wake(ob, 9, s_wake, NULL);
    cr_assert_eq(woken, 4);
}
