/* Unit tests for worker/pd_load: the owner's load, Playdoh excluded, from
   procfs text (parsers) and from a synthetic procfs directory (sampling). */
#include "pd_error.h"
#include "pd_load.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

Test(load, parses_the_first_line_of_proc_stat)
{
    unsigned long long busy, total;
    int ncpu;
    const char *text = "cpu  100 5 20 1000 7 1 2 3 0 0\ncpu0 50 2 10 500 3 0 1 1 0 0\n"
                       "cpu1 50 3 10 500 4 1 1 2 0 0\nintr 12345\n";
    cr_assert_eq(pd_load_parse_stat(text, &busy, &total, &ncpu), 0);
    cr_assert_eq(busy, 100 + 5 + 20 + 1 + 2 + 3);
    cr_assert_eq(total, busy + 1000 + 7);
    cr_assert_eq(ncpu, 2);
    /* Old kernels: four fields. */
    cr_assert_eq(pd_load_parse_stat("cpu 1 2 3 4\n", &busy, &total, &ncpu), 0);
    cr_assert_eq(busy, 6);
    cr_assert_eq(total, 10);
    cr_assert_eq(ncpu, 1);
}

Test(load, refuses_what_is_not_proc_stat)
{
    unsigned long long busy, total;
    int ncpu;
    cr_assert_eq(pd_load_parse_stat("", &busy, &total, &ncpu), PD_EIO);
    cr_assert_eq(pd_load_parse_stat("cpu0 1 2 3 4\n", &busy, &total, &ncpu), PD_EIO);
    cr_assert_eq(pd_load_parse_stat("cpu  1 2 x 4\n", &busy, &total, &ncpu), PD_EIO);
    cr_assert_eq(pd_load_parse_stat("cpu  1 2\n", &busy, &total, &ncpu), PD_EIO);
    cr_assert_eq(pd_load_parse_stat("cpu  99999999999999999999999 2 3 4\n", &busy, &total, &ncpu),
                 PD_EIO);
}

Test(load, parses_a_process_stat_with_spaces_and_parens_in_its_name)
{
    unsigned long long t;
    const char *text = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 "
                       "11 22 33 44 20 0 1 0 100 1000 10\n";
    cr_assert_eq(pd_load_parse_pid_stat(text, &t), 0);
    cr_assert_eq(t, 11 + 22 + 33 + 44);
    cr_assert_eq(pd_load_parse_pid_stat("1234 (x) S 1 2 3\n", &t), PD_EIO);
    cr_assert_eq(pd_load_parse_pid_stat("no parens", &t), PD_EIO);
    cr_assert_eq(pd_load_parse_pid_stat("1 (x) S 1 1 1 0 -1 0 0 0 0 0 -5 1 1 1 0\n", &t), PD_EIO);
}

static char dir[64];

static void write_file(const char *rel, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(load, owner_load_excludes_playdohs_own_ticks)
{
    snprintf(dir, sizeof dir, "/tmp/pd-load-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char sub[128];
    snprintf(sub, sizeof sub, "%s/77", dir);
    mkdir(sub, 0755);
    pd_load_t *l = pd_load_new(dir);
    pid_t pids[] = {77, 78}; /* 78 has no stat: counts 0 */
    double load = -1;
    write_file("stat", "cpu  1000 0 0 1000 0 0 0 0 0 0\ncpu0 0\ncpu1 0\n");
    write_file("77/stat", "77 (playdoh-worker) S 1 1 1 0 -1 0 0 0 0 0 100 0 0 0 20\n");
    cr_assert_eq(pd_load_sample(l, pids, 2, &load), PD_ENOTDONE);
    /* 400 ticks pass on 2 CPUs: 300 busy, of which 200 are Playdoh's. */
    write_file("stat", "cpu  1300 0 0 1100 0 0 0 0 0 0\ncpu0 0\ncpu1 0\n");
    write_file("77/stat", "77 (playdoh-worker) S 1 1 1 0 -1 0 0 0 0 0 250 50 0 0 20\n");
    cr_assert_eq(pd_load_sample(l, pids, 2, &load), 0);
    cr_assert_float_eq(load, 2.0 * 100 / 400, 1e-9);
    /* All busy ticks are Playdoh's: the owner's load is 0. */
    write_file("stat", "cpu  1500 0 0 1100 0 0 0 0 0 0\ncpu0 0\ncpu1 0\n");
    write_file("77/stat", "77 (playdoh-worker) S 1 1 1 0 -1 0 0 0 0 0 350 150 0 0 20\n");
    cr_assert_eq(pd_load_sample(l, pids, 2, &load), 0);
    cr_assert_float_eq(load, 0.0, 1e-9);
    /* An unreadable stat is an error, and leaves the state as it was. */
    char path[128];
    snprintf(path, sizeof path, "%s/stat", dir);
    unlink(path);
    cr_assert_eq(pd_load_sample(l, pids, 2, &load), PD_EIO);
    pd_load_destroy(&l);
    pd_load_destroy(&l);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(load, reads_the_real_proc)
{
    pd_load_t *l = pd_load_new(NULL);
    pid_t self = getpid();
    double load = -1;
    cr_assert_eq(pd_load_sample(l, &self, 1, &load), PD_ENOTDONE);
    usleep(100000);
    cr_assert_eq(pd_load_sample(l, &self, 1, &load), 0);
    cr_assert_geq(load, 0.0);
    cr_assert_leq(load, (double) sysconf(_SC_NPROCESSORS_ONLN) + 0.01);
    pd_load_destroy(&l);
}
