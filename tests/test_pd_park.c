/*  Unit tests of the broker's parking lot (broker/pd_park.c): a job fetch
    is woken only by ids its ranges name and leaves once answered, a task
    fetch by its task's end, both kinds expire through one deadline call
    that also says how long the loop may sleep, and the lot is bounded. */
#include <criterion/criterion.h>

#include "pd_error.h"
#include "pd_park.h"

#include <string.h>

static pd_park_t *pk;
static int answered, expired_n, tasks_answered;
static bool can_answer;

static void setup(void)
{
    pk = pd_park_new(4);
    cr_assert_not_null(pk);
    answered = expired_n = tasks_answered = 0;
    can_answer = true;
}

static void teardown(void) { pd_park_destroy(&pk); }

TestSuite(unit_park, .init = setup, .fini = teardown);

static bool s_fetch(void *user, const pd_park_fetch_t *p, bool expired)
{
    (void) user;
    (void) p;
    if (expired) {
        expired_n++;
        return true;
    }
    if (!can_answer)
        return false;
    answered++;
    return true;
}

static void s_task(void *user, const pd_park_task_t *p)
{
    (void) user;
    (void) p;
    tasks_answered++;
}

/* Parks a fetch of ids first .. first+n-1 until deadline. */
static int s_park(uint64_t first, uint64_t n, int64_t deadline)
{
    pd_ranges_t rg = {0};
    rg.r = malloc(sizeof *rg.r);
    cr_assert_not_null(rg.r);
    rg.r[0][0] = first;
    rg.r[0][1] = n;
    rg.n = 1;
    rg.total = n;
    rg.lo = first;
    rg.hi = first + n - 1;
    int rc = pd_park_fetch(pk, "c", 1, 1, &rg, 100, deadline);
    if (rc)
        pd_ranges_free(&rg);
    else
        cr_assert_null(rg.r, "the ranges moved into the lot");
    return rc;
}

Test(unit_park, a_fetch_wakes_only_for_its_ids_and_leaves_once_answered)
{
    cr_assert_eq(s_park(10, 5, 1000), 0);
    uint64_t other[] = {3, 20};
    pd_park_wake_ids(pk, other, 2, s_fetch, NULL);
    cr_assert_eq(answered, 0);
    uint64_t mine[] = {12};
    can_answer = false; /* nothing to show yet: it stays */
    pd_park_wake_ids(pk, mine, 1, s_fetch, NULL);
    can_answer = true;
    pd_park_wake_ids(pk, mine, 1, s_fetch, NULL);
    cr_assert_eq(answered, 1);
    pd_park_wake_ids(pk, mine, 1, s_fetch, NULL);
    cr_assert_eq(answered, 1, "answered once");
    cr_assert_eq(pd_park_expire(pk, 0, s_fetch, s_task, NULL), -1, "nothing parked");
}

Test(unit_park, both_kinds_expire_through_one_deadline)
{
    cr_assert_eq(s_park(1, 1, 500), 0);
    cr_assert_eq(pd_park_task(pk, "t", 1, 2, 7, 0, 300), 0);
    cr_assert_eq(pd_park_task(pk, "t", 1, 3, 8, 0, 900), 0);
    cr_assert_eq(pd_park_expire(pk, 100, s_fetch, s_task, NULL), 200, "the nearest: a task's");
    cr_assert_eq(pd_park_expire(pk, 300, s_fetch, s_task, NULL), 200);
    cr_assert_eq(tasks_answered, 1);
    cr_assert_eq(pd_park_expire(pk, 600, s_fetch, s_task, NULL), 300);
    cr_assert_eq(expired_n, 1);
    pd_park_wake_task(pk, 8, s_task, NULL);
    cr_assert_eq(tasks_answered, 2, "a task's end answers its fetches");
    cr_assert_eq(pd_park_expire(pk, 600, s_fetch, s_task, NULL), -1);
}

Test(unit_park, the_lot_is_bounded)
{
    for (int i = 0; i < 4; i++)
        cr_assert_eq(s_park(1, 1, 1000), 0);
    cr_assert_eq(s_park(1, 1, 1000), PD_EOVERLOAD);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pd_park_task(pk, "t", 1, 1, 1, 0, 1000), 0);
    cr_assert_eq(pd_park_task(pk, "t", 1, 1, 1, 0, 1000), PD_EOVERLOAD);
    pd_park_clear(pk);
    cr_assert_eq(s_park(1, 1, 1000), 0, "room again after clearing");
}
