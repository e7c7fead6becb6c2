/*  Unit tests for common/pd_proc: pd_proc_capture runs real programs (the
    shell, cat, sleep) to their end, feeds their input and collects their
    output, bounded, without deadlocking on large outputs, and kills them at
    their time-out; pd_proc_find looks for Playdoh's programs. */
#include "pd_error.h"
#include "pd_plat.h"
#include "pd_proc.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(proc, .timeout = 60);

Test(proc, capture_feeds_input_and_collects_output_and_status)
{
    char out[64], err[64];
    char *argv[] = {"sh", "-c", "cat; echo oops >&2; exit 3", NULL};
    int st = pd_proc_capture(argv, "hello\n", 6, out, sizeof out, err, sizeof err, 10000);
    cr_assert_geq(st, 0, "%s", pd_strerror(st));
    cr_assert(WIFEXITED(st));
    cr_expect_eq(WEXITSTATUS(st), 3);
    cr_expect_str_eq(out, "hello\n");
    cr_expect_str_eq(err, "oops\n");
}

Test(proc, capture_keeps_what_fits_and_never_blocks_on_large_output)
{
    /* 4 MiB through cat, both ways: more than any pipe buffer. */
    size_t n = 4u << 20;
    char *in = malloc(n);
    cr_assert_not_null(in);
    memset(in, 'x', n);
    char out[16];
    char *argv[] = {"cat", NULL};
    int st = pd_proc_capture(argv, in, n, out, sizeof out, NULL, 0, 30000);
    free(in);
    cr_assert_geq(st, 0, "%s", pd_strerror(st));
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cr_expect_str_eq(out, "xxxxxxxxxxxxxxx", "15 bytes and a NUL are kept");
}

Test(proc, capture_survives_a_program_that_ignores_its_input)
{
    /* true exits at once: writing to its closed stdin must not kill us
       (SIGPIPE) nor fail the call. */
    size_t n = 1u << 20;
    char *in = calloc(1, n);
    cr_assert_not_null(in);
    char *argv[] = {"true", NULL};
    int st = pd_proc_capture(argv, in, n, NULL, 0, NULL, 0, 10000);
    free(in);
    cr_assert_geq(st, 0, "%s", pd_strerror(st));
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

Test(proc, capture_kills_a_program_past_its_time_out)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char *argv[] = {"sleep", "30", NULL};
    cr_expect_eq(pd_proc_capture(argv, NULL, 0, NULL, 0, NULL, 0, 300), PD_ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_expect_lt(t1.tv_sec - t0.tv_sec, 20, "the program was not killed at its time-out");
}

Test(proc, capture_says_why_a_program_cannot_run)
{
    char err[256];
    char *argv[] = {"/nonexistent/sbatch", NULL};
    int st = pd_proc_capture(argv, NULL, 0, NULL, 0, err, sizeof err, 10000);
    cr_assert_geq(st, 0);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 127);
    cr_expect(strstr(err, "cannot run /nonexistent/sbatch: No such file"), "%s", err);
}

/* pd_proc_find: $PLAYDOH_<NAME>_BIN first, then (after the places of an
   installation, where no playdoh-frob is) each directory of $PATH; when it
   is nowhere, the places looked at, for the error message. */
Test(proc, find_looks_at_its_variable_then_path_and_says_where_it_looked)
{
    char dir[] = "/tmp/playdoh-find-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char prog[64], other[64], cmd[512];
    snprintf(prog, sizeof prog, "%s/playdoh-frob", dir);
    snprintf(other, sizeof other, "%s/frob-elsewhere", dir);
    snprintf(cmd, sizeof cmd, "printf '#!/bin/sh\\n' | tee %s > %s && chmod +x %s %s", prog,
             other, prog, other);
    cr_assert_eq(system(cmd), 0);
    char out[4096];
    unsetenv("PLAYDOH_BINDIR");
    unsetenv("PLAYDOH_FROB_BIN");
    cr_assert_eq(setenv("PATH", "/nonexistent-a:/nonexistent-b", 1), 0);
    cr_assert_eq(pd_proc_find("playdoh-frob", out, sizeof out), PD_EIO);
    cr_assert(strstr(out, "/nonexistent-a/playdoh-frob, /nonexistent-b/playdoh-frob"), "%s", out);
    char path[128];
    snprintf(path, sizeof path, "/nonexistent-a:%s", dir);
    cr_assert_eq(setenv("PATH", path, 1), 0);
    cr_assert_eq(pd_proc_find("playdoh-frob", out, sizeof out), 0);
    cr_assert_str_eq(out, prog);
    cr_assert_eq(setenv("PLAYDOH_FROB_BIN", other, 1), 0);
    cr_assert_eq(pd_proc_find("playdoh-frob", out, sizeof out), 0);
    cr_assert_str_eq(out, other);
    unsetenv("PLAYDOH_FROB_BIN");
    cr_assert_eq(unlink(prog), 0);
    cr_assert_eq(unlink(other), 0);
    cr_assert_eq(rmdir(dir), 0);
}

/* pd_plat_run below pd_proc_capture: a program that cannot be run, or a
   working directory that cannot be entered, exits 127 with the reason in
   the error capture; a working directory that can is the child's. */
Test(proc, run_says_why_a_program_or_its_directory_cannot_be_used)
{
    char out[256], err[256];
    pd_plat_capture_t cap = {.out = out, .outcap = sizeof out, .err = err, .errcap = sizeof err};
    char *missing[] = {"playdoh-no-such-program", NULL};
    int st = pd_plat_run(missing, NULL, 0, &cap, 10000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 127, "status %d", st);
    cr_expect(strstr(err, "cannot run playdoh-no-such-program: ") != NULL, "%s", err);

    char *pwd[] = {"pwd", NULL};
    cap.cwd = "/nonexistent-playdoh-dir";
    st = pd_plat_run(pwd, NULL, 0, &cap, 10000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 127, "status %d", st);
    cr_expect(strstr(err, "cannot enter /nonexistent-playdoh-dir: ") != NULL, "%s", err);

    cap.cwd = "/";
    st = pd_plat_run(pwd, NULL, 0, &cap, 10000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    cr_expect_str_eq(out, "/\n");
    cr_expect_eq(cap.errlen, 0);
}
