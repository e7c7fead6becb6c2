/* Unit tests for common/pd_error (the code table, errno kept with PD_ESYS,
   pd_why, the exit statuses) and common/pd_grow. */
#include "pd_error_int.h"
#include "pd_file.h"
#include "pd_grow.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Test(error, no_code_is_minus_one_and_names_round_trip)
{
    int n = 0;
#define PD_X(name, value, msg)                                                                 \
    cr_assert_neq(value, -1, "PD_" #name " aliases -1");                                      \
    cr_assert_lt(value, 0);                                                                    \
    cr_assert_eq(pd_err_from_name(pd_err_name(value)), value, "PD_" #name);                   \
    cr_assert_str_neq(pd_strerror(value), "unknown error");                                    \
    n++;
    PD_ERRNO_MAP(PD_X)
#undef PD_X
    cr_assert_gt(n, 30);
    cr_assert_str_eq(pd_err_name(PD_EINVAL), "PD_EINVAL");
    cr_assert_str_eq(pd_err_name(-1), "PD_EUNKNOWN");
    cr_assert_eq(pd_err_from_name("PD_ENOSUCH"), 0);
}

Test(error, esys_keeps_what_the_system_said)
{
    errno = ENOSPC;
    cr_assert_eq(pd_sys_error(), PD_ESYS);
    errno = 0; /* what a caller's clean-up does on its way out */
    cr_assert_eq(pd_sys_errno(), ENOSPC);
    char buf[200];
    char want[200];
    snprintf(want, sizeof want, "system call failed: %s", strerror(ENOSPC));
    cr_assert_str_eq(pd_strerror_sys(PD_ESYS, buf, sizeof buf), want);
    cr_assert_str_eq(pd_strerror_sys(PD_EPROTO, buf, sizeof buf), "malformed message");
    /* Through a caller: pd_file keeps the errno of its failed call. */
    char *data;
    size_t len;
    cr_assert_eq(pd_file_read("/nonexistent/pd_error", 10, &data, &len), PD_ESYS);
    cr_assert_eq(pd_sys_errno(), ENOENT);
}

Test(error, why_writes_one_sentence_and_returns_the_code)
{
    char why[16];
    cr_assert_eq(pd_why(why, sizeof why, PD_EINVAL, "bad %s, %d", "thing", 42), PD_EINVAL);
    cr_assert_str_eq(why, "bad thing, 42");
    cr_assert_eq(pd_why(why, 8, PD_EIO, "%s", "truncated to fit"), PD_EIO);
    cr_assert_str_eq(why, "truncat");
    cr_assert_eq(pd_why(NULL, 0, PD_ENOMEM, "nowhere"), PD_ENOMEM);
}

Test(error, exit_statuses_are_the_documented_ones)
{
    cr_assert_eq(PD_EXIT_OK, 0);
    cr_assert_eq(PD_EXIT_FAILED, 1);
    cr_assert_eq(PD_EXIT_USAGE, 2);
    cr_assert_eq(PD_EXIT_BROKER, 3);
    cr_assert_eq(PD_EXIT_INTERRUPTED, 130);
    cr_assert_eq(PD_EXIT_EXEC_ERROR, 255);
}

Test(grow, doubles_from_sixteen_and_keeps_the_elements)
{
    int *a = NULL;
    size_t cap = 0;
    for (size_t n = 0; n < 1000; n++) {
        size_t before = cap;
        cr_assert_eq(pd_grow(&a, &cap, n + 1, sizeof *a), 0);
        cr_assert_geq(cap, n + 1);
        if (before >= n + 1)
            cr_assert_eq(cap, before, "grew without need");
        a[n] = (int) n;
    }
    cr_assert_eq(cap, 1024);
    for (size_t n = 0; n < 1000; n++)
        cr_assert_eq(a[n], (int) n);
    cr_assert_eq(pd_grow(&a, &cap, 5000, sizeof *a), 0, "a jump past twice the capacity");
    cr_assert_eq(cap, 5000);
    free(a);
}

Test(grow, refuses_a_size_that_overflows_and_keeps_the_array)
{
    double *a = NULL;
    size_t cap = 0;
    cr_assert_eq(pd_grow(&a, &cap, 4, sizeof *a), 0);
    cr_assert_eq(cap, 16);
    double *before = a;
    cr_assert_eq(pd_grow(&a, &cap, SIZE_MAX / 4, sizeof *a), PD_ENOMEM);
    cr_assert_eq(a, before);
    cr_assert_eq(cap, 16);
    free(a);
}
