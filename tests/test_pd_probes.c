/*  Tests of broker/pd_probes.c: the memory of which module functions were
    seen to load on which platform (a broken module fails once). */
#include <criterion/criterion.h>

#include "pd_error.h"
#include "pd_probes.h"


static pd_probes_t *p;

static void setup(void) { cr_assert_not_null(p = pd_probes_new()); }
static void teardown(void) { pd_probes_destroy(&p); }

TestSuite(unit_probes, .init = setup, .fini = teardown);

Test(unit_probes, a_pair_goes_from_unknown_to_probing_to_proven)
{
    uint64_t probe = 0;
    cr_assert_eq(pd_probes_get(p, 1, 0, 2, "linux-x86_64", &probe), PD_PROBE_NONE);
    cr_assert_eq(pd_probes_start(p, 1, 0, 2, "linux-x86_64", 17), 0);
    cr_assert_eq(pd_probes_running(p), 1);
    cr_assert_eq(pd_probes_get(p, 1, 0, 2, "linux-x86_64", &probe), PD_PROBE_RUNNING);
    cr_assert_eq(probe, 17);
    /* Another platform, function or CUDA module is another pair. */
    cr_assert_eq(pd_probes_get(p, 1, 0, 2, "windows-x86_64", &probe), PD_PROBE_NONE);
    cr_assert_eq(pd_probes_get(p, 1, 0, 3, "linux-x86_64", &probe), PD_PROBE_NONE);
    cr_assert_eq(pd_probes_get(p, 1, 4, 2, "linux-x86_64", &probe), PD_PROBE_NONE);
    /* A probe sent again (the first went back to the queue) counts once. */
    cr_assert_eq(pd_probes_start(p, 1, 0, 2, "linux-x86_64", 18), 0);
    cr_assert_eq(pd_probes_running(p), 1);
    pd_probes_proven(p, 1, 0, 2, "linux-x86_64");
    cr_assert_eq(pd_probes_running(p), 0);
    cr_assert_eq(pd_probes_get(p, 1, 0, 2, "linux-x86_64", &probe), PD_PROBE_PROVEN);
}

Test(unit_probes, a_failed_probe_leaves_the_pair_to_be_probed_again)
{
    uint64_t probe = 0;
    pd_probes_start(p, 5, 0, 1, "linux-x86_64", 40);
    pd_probes_forget(p, 5, 0, 1, "linux-x86_64");
    cr_assert_eq(pd_probes_running(p), 0);
    cr_assert_eq(pd_probes_count(p), 0);
    cr_assert_eq(pd_probes_get(p, 5, 0, 1, "linux-x86_64", &probe), PD_PROBE_NONE);
    pd_probes_forget(p, 5, 0, 1, "linux-x86_64"); /* twice: nothing */
}

Test(unit_probes, only_compile_errors_and_missing_functions_are_module_failures)
{
    cr_assert(pd_probes_module_failure(PD_ECOMPILE));
    cr_assert(pd_probes_module_failure(PD_ENOFUNC));
    cr_assert_not(pd_probes_module_failure(PD_ETASK));
    cr_assert_not(pd_probes_module_failure(PD_ECRASH));
    cr_assert_not(pd_probes_module_failure(PD_ENOMODULE));
    cr_assert_not(pd_probes_module_failure(0));
}

Test(unit_probes, a_full_table_starts_over)
{
    uint64_t probe;
    for (uint32_t i = 0; i < PD_PROBES_MAX; i++)
        pd_probes_proven(p, i, 0, 0, "linux-x86_64");
    cr_assert_eq(pd_probes_count(p), PD_PROBES_MAX);
    cr_assert_eq(pd_probes_start(p, PD_PROBES_MAX, 0, 0, "linux-x86_64", 1), 0);
    cr_assert_eq(pd_probes_count(p), 1);
    cr_assert_eq(pd_probes_running(p), 1);
    cr_assert_eq(pd_probes_get(p, 0, 0, 0, "linux-x86_64", &probe), PD_PROBE_NONE);
}
