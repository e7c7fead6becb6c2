/*  Tests of common/pd_log.c's rate limit (pd_log_limit_pass), which keeps a
    flood of refused connections from flooding the log. */
#include <criterion/criterion.h>

#include "pd_log.h"

#include <time.h>

Test(log, a_limit_lets_a_burst_through_then_counts_what_it_swallows)
{
    pd_log_limit_t l = {0};
    uint32_t swallowed = 99;
    for (int i = 0; i < 5; i++) {
        cr_assert(pd_log_limit_pass(&l, 5, 60000, &swallowed), "line %d of the burst", i);
        cr_assert_eq(swallowed, 0);
    }
    for (int i = 0; i < 100; i++)
        cr_assert_not(pd_log_limit_pass(&l, 5, 60000, &swallowed));
    cr_assert_eq(l.suppressed, 100);
}

Test(log, the_next_window_reports_how_many_were_swallowed)
{
    pd_log_limit_t l = {0};
    uint32_t swallowed = 0;
    cr_assert(pd_log_limit_pass(&l, 1, 50, &swallowed));
    cr_assert_not(pd_log_limit_pass(&l, 1, 50, &swallowed));
    cr_assert_not(pd_log_limit_pass(&l, 1, 50, &swallowed));
    struct timespec ts = {0, 80 * 1000000L};
    nanosleep(&ts, NULL);
    cr_assert(pd_log_limit_pass(&l, 1, 50, &swallowed));
    cr_assert_eq(swallowed, 2, "the line after a quiet spell says 2 were suppressed");
    cr_assert_eq(l.suppressed, 0);
}
