/* Unit tests for pd_progress: the bar's text, and that a disabled bar
   writes nothing. */
#include "pd_progress.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(progress);

Test(progress, says_done_failed_total_rate_and_time_left)
{
    char line[256];
    size_t n = pd_progress_format(line, sizeof line, 90, 10, 400, 10.0, 100);
    cr_assert_eq(n, strlen(line));
    cr_assert(strstr(line, "100/400") != NULL, "%s", line);
    cr_assert(strstr(line, "10 failed") != NULL, "%s", line);
    cr_assert(strstr(line, "10.0 jobs/s") != NULL, "%s", line);
    cr_assert(strstr(line, "ETA 0:30") != NULL, "%s", line);
    cr_assert_eq(line[0], '[', "a wide terminal gets a bar: %s", line);
    cr_assert(strstr(line, "##########....") != NULL, "a quarter filled: %s", line);
}

Test(progress, ends_with_the_total_time_and_no_failures_when_there_are_none)
{
    char line[256];
    pd_progress_format(line, sizeof line, 200, 0, 200, 65.0, 100);
    cr_assert(strstr(line, "200/200") != NULL, "%s", line);
    cr_assert(strstr(line, "failed") == NULL, "%s", line);
    cr_assert(strstr(line, "in 1:05") != NULL, "%s", line);
}

Test(progress, long_waits_print_hours)
{
    char line[256];
    pd_progress_format(line, sizeof line, 1, 0, 10000, 1.0, 100);
    cr_assert(strstr(line, "ETA 2:46:39") != NULL, "%s", line);
}

Test(progress, never_exceeds_the_terminal_width)
{
    char line[256];
    for (int w = 5; w < 120; w += 7) {
        size_t n = pd_progress_format(line, sizeof line, 12345, 678, 100000, 3.0, w);
        cr_assert_lt(n, (size_t) w, "width %d: <%s>", w, line);
    }
    pd_progress_format(line, sizeof line, 1, 0, 2, 1.0, 30);
    cr_assert_neq(line[0], '[', "a narrow terminal gets no bar: %s", line);
}

Test(progress, a_disabled_bar_writes_nothing)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    pd_progress_t *p = pd_progress_new(f, 10, false);
    cr_assert_null(p);
    pd_progress_update(p, 5, 1, true);
    pd_progress_hide(p);
    pd_progress_finish(p);
    pd_progress_destroy(&p);
    fclose(f);
    cr_assert_eq(len, 0);
    free(buf);
}

Test(progress, an_enabled_bar_redraws_in_place_and_ends_its_line)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    pd_progress_t *p = pd_progress_new(f, 10, true);
    cr_assert_not_null(p);
    pd_progress_update(p, 5, 1, true);
    pd_progress_hide(p);
    pd_progress_finish(p);
    pd_progress_destroy(&p);
    pd_progress_destroy(&p);
    fclose(f);
    cr_assert(strstr(buf, "\r") == buf, "starts at the line's start: %s", buf);
    cr_assert(strstr(buf, "6/10") != NULL, "%s", buf);
    cr_assert(strstr(buf, "\r\033[K") != NULL, "hide erases the line");
    cr_assert_eq(buf[len - 1], '\n');
    free(buf);
}

Test(progress, an_optimisation_shows_iteration_evaluations_and_each_groups_best)
{
    char line[256];
    const double best[2] = {1.25e-5, 3.5};
    size_t n = pd_progress_format_optim(line, sizeof line, 120, 48000, 1.56, 2, best, 100);
    cr_assert_eq(n, strlen(line));
    cr_assert_str_eq(line, "iteration 120  48000 evaluations  1.6 s  best 1.25e-05 3.5");
}

Test(progress, groups_that_do_not_fit_the_width_are_counted)
{
    double best[40];
    for (int g = 0; g < 40; g++)
        best[g] = g + 0.5;
    char line[512];
    size_t n = pd_progress_format_optim(line, sizeof line, 3, 120, 0.2, 40, best, 80);
    cr_assert_leq(n, 79, "never wider than the terminal: %s", line);
    cr_assert(strstr(line, " 0.5 1.5") != NULL, "the first groups are shown: %s", line);
    cr_assert(strstr(line, "... 40 groups") != NULL, "the rest is counted: %s", line);
    cr_assert(strstr(line, "39.5") == NULL, "%s", line);
}
