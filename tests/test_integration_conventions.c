/* Integration tests of what the four programs do alike on their command
   line (issue 16, item 9): --version, the sentence for an unknown option, a
   "did you mean" for a mistyped verb, an empty input, one job number per
   message, a forgotten --local; and how the embedded cluster finds
   playdoh-broker (item 4). Real programs against a real cluster. */
#include "pd_harness.h"
#include "pd_build.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pd_harness_t h;
static char submit[PATH_MAX];

static const char *SRC = "#include <playdoh_task.h>\n"
                         "PD_TASK_DOUBLE(square, x) { return x * x; }\n";

static void setup(void)
{
    pd_harness_start(&h, NULL);
    pd_harness_add_worker(&h, 2);
    pd_client_t *c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, 2);
    pd_client_destroy(&c);
    snprintf(submit, sizeof submit, "%s", pd_harness_program("playdoh-submit"));
    free(pd_harness_module(&h, "m.c", SRC));
}

static void teardown(void) { pd_harness_stop(&h); }

TestSuite(conventions, .init = setup, .fini = teardown, .timeout = 120);

static const char *const PROGRAMS[] = {"playdoh-broker", "playdoh-worker", "playdoh-submit",
                                       "playdoh-keygen"};

Test(conventions, every_program_prints_its_version)
{
    for (size_t i = 0; i < sizeof PROGRAMS / sizeof PROGRAMS[0]; i++) {
        char *out;
        int st = pd_harness_run(&out, "%s --version", pd_harness_program(PROGRAMS[i]));
        char want[128];
        snprintf(want, sizeof want, "%s %s\n", PROGRAMS[i], PD_VERSION);
        cr_assert_eq(st, 0, "%s --version: exit %d", PROGRAMS[i], st);
        cr_assert_str_eq(out, want);
        free(out);
    }
}

Test(conventions, every_program_says_an_unknown_option_the_same_way)
{
    for (size_t i = 0; i < sizeof PROGRAMS / sizeof PROGRAMS[0]; i++) {
        char *out;
        int st = pd_harness_run(&out, "%s --frob=1 2>&1", pd_harness_program(PROGRAMS[i]));
        char want[160];
        snprintf(want, sizeof want, "%s: unknown option '--frob' (see %s --help)\n", PROGRAMS[i],
                 PROGRAMS[i]);
        cr_assert_eq(st, 2, "%s: exit %d: %s", PROGRAMS[i], st, out);
        cr_assert_str_eq(out, want);
        free(out);
    }
    char *out;
    cr_assert_eq(pd_harness_run(&out, "%s map --timeout-ms 2>&1", submit), 2);
    cr_assert_str_eq(out, "playdoh-submit: option '--timeout-ms' needs a value (see "
                          "playdoh-submit map --help)\n");
    free(out);
    cr_assert_eq(pd_harness_run(&out, "%s slurm --frob 2>&1", submit), 2);
    cr_assert_str_eq(out, "playdoh-submit: unknown option '--frob' (see playdoh-submit slurm "
                          "--help)\n");
    free(out);
}

Test(conventions, a_mistyped_verb_or_command_gets_a_did_you_mean)
{
    char *out;
    cr_assert_eq(pd_harness_run(&out, "%s mpa m.c f 2>&1", submit), 2);
    cr_assert(strstr(out, "unknown verb 'mpa': did you mean 'map'?"), "%s", out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "%s reslts 1 2>&1", submit), 2);
    cr_assert(strstr(out, "did you mean 'results'?"), "%s", out);
    free(out);
    /* Nothing close: the list of verbs instead. */
    cr_assert_eq(pd_harness_run(&out, "%s frobnicate 2>&1", submit), 2);
    cr_assert(strstr(out, "unknown verb 'frobnicate' (verbs: map, exec"), "%s", out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "%s --config-dir %s alow KEY 2>&1",
                                pd_harness_program("playdoh-keygen"), h.dir), 2);
    cr_assert(strstr(out, "unknown command 'alow': did you mean 'allow'?"), "%s", out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "%s clt --cpus 1 2>&1", pd_harness_program("playdoh-worker")),
                 2);
    cr_assert(strstr(out, "unknown command 'clt': did you mean 'ctl'?"), "%s", out);
    free(out);
}

Test(conventions, map_of_an_empty_input_exits_0_as_exec_does)
{
    char *out;
    int st = pd_harness_run(&out, "%s --broker %s map %s/m.c square </dev/null 2>&1", submit,
                            h.endpoint, h.dir);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert_str_eq(out, "");
    free(out);
    st = pd_harness_run(&out, "printf '\\n  \\n' | %s --broker %s map --detach %s/m.c square 2>&1",
                        submit, h.endpoint, h.dir);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert_str_eq(out, "");
    free(out);
    st = pd_harness_run(&out, "%s --broker %s exec echo {} </dev/null 2>&1", submit, h.endpoint);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    free(out);
    /* A module that cannot be read is still said, input or not. */
    st = pd_harness_run(&out, "%s --broker %s map %s/none.c square </dev/null 2>&1", submit,
                        h.endpoint, h.dir);
    cr_assert_eq(st, 2, "exit %d: %s", st, out);
    cr_assert(strstr(out, "cannot read module file"), "%s", out);
    free(out);
}

/* A failed job's line names it by one number: its id, also after ids
   stopped starting at 1 (earlier batches, a broker restart). */
Test(conventions, a_failed_exec_job_is_named_by_one_number)
{
    char *out;
    int st = pd_harness_run(&out, "seq 1 7 | %s --broker %s map %s/m.c square", submit,
                            h.endpoint, h.dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    st = pd_harness_run(&out, "%s --broker %s exec 'exit 3' ::: a 2>&1 >/dev/null", submit,
                        h.endpoint);
    cr_assert_eq(st, 1, "exit %d: %s", st, out);
    unsigned long first = 0, second = 0;
    const char *on = strstr(out, "(job ");
    cr_assert(on, "%s", out);
    cr_assert_eq(sscanf(out, "playdoh-submit: job %lu", &first), 1, "%s", out);
    cr_assert_eq(sscanf(on, "(job %lu", &second), 1, "%s", out);
    cr_assert_gt(first, 7, "%s", out);
    cr_assert_eq(first, second, "two numbers for one job: %s", out);
    cr_assert(strstr(out, "(argument 1: exit 3 a)"), "%s", out);
    free(out);
}

/* No --local, no broker named, none heard, none on loopback: said within
   3 s, with --local N suggested. */
Test(conventions, a_forgotten_local_is_said_within_3_s)
{
    char *out;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int st = pd_harness_run(&out, "env -u PLAYDOH_BROKER -u PLAYDOH_CONNECT_TIMEOUT_MS "
                            "PLAYDOH_CONFIG=/dev/null %s --cluster none-%d map %s/m.c square "
                            "2>&1 <<EOF\n1\nEOF", submit, (int) getpid(), h.dir);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_assert_eq(st, 3, "exit %d: %s", st, out);
    cr_assert(strstr(out, "no broker found"), "%s", out);
    cr_assert(strstr(out, "add --local N"), "%s", out);
    cr_assert_lt(s, 3.0, "said after %.2f s", s);
    free(out);
}

/* The embedded cluster finds playdoh-broker on PATH or through
   $PLAYDOH_BROKER_BIN, and names the places it looked at when it is not
   found. A copy of playdoh-submit in a directory of its own has no broker
   beside it (its library is found through LD_LIBRARY_PATH: the build
   tree's RUNPATH is relative to the program). */
Test(conventions, the_local_cluster_finds_its_broker_or_says_where_it_looked)
{
    char bindir[PATH_MAX];
    snprintf(bindir, sizeof bindir, "%s", pd_harness_program("playdoh-broker"));
    *strrchr(bindir, '/') = 0;
    char *out;
    char libdir[PATH_MAX + 8];
    snprintf(libdir, sizeof libdir, "%s/client", bindir);
    cr_assert_eq(setenv("LD_LIBRARY_PATH", libdir, 1), 0);
    cr_assert_eq(pd_harness_run(NULL, "mkdir -p %s/alone && cp %s %s/alone/", h.dir, submit, h.dir),
                 0);
    int st = pd_harness_run(&out, "env -u PLAYDOH_BINDIR PATH=/usr/bin:/bin %s/alone/playdoh-submit "
                            "--local 1 map %s/m.c square 2>&1 <<EOF\n2\nEOF",
                            h.dir, h.dir);
    cr_assert_eq(st, 3, "exit %d: %s", st, out);
    cr_assert(strstr(out, "playdoh-broker not found (looked at "), "%s", out);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s/alone/playdoh-broker", h.dir);
    cr_assert(strstr(out, want), "%s", out);
    cr_assert(strstr(out, "/usr/bin/playdoh-broker"), "%s", out);
    free(out);
    st = pd_harness_run(&out, "env -u PLAYDOH_BINDIR PATH=/usr/bin:/bin:%s %s/alone/playdoh-submit "
                        "--local 1 map %s/m.c square 2>&1 <<EOF\n2\nEOF", bindir, h.dir, h.dir);
    cr_assert_eq(st, 0, "on PATH: exit %d: %s", st, out);
    cr_assert_str_eq(out, "4.0\n");
    free(out);
    st = pd_harness_run(&out, "env -u PLAYDOH_BINDIR PATH=/usr/bin:/bin "
                        "PLAYDOH_BROKER_BIN=%s/playdoh-broker %s/alone/playdoh-submit --local 1 "
                        "map %s/m.c square 2>&1 <<EOF\n3\nEOF", bindir, h.dir, h.dir);
    cr_assert_eq(st, 0, "PLAYDOH_BROKER_BIN: exit %d: %s", st, out);
    cr_assert_str_eq(out, "9.0\n");
    free(out);
}

/* cluster --json: each worker's version (it says it in `ready`) and the
   broker's, as the last fields of their objects. */
Test(conventions, cluster_json_shows_every_program_version)
{
    char *out;
    int st = pd_harness_run(&out, "%s --broker %s cluster --json", submit, h.endpoint);
    cr_assert_eq(st, 0, "%s", out);
    char want[96];
    snprintf(want, sizeof want, ",\"version\":\"%s\"}]", PD_VERSION);
    cr_assert(strstr(out, want), "no worker version last: %s", out);
    snprintf(want, sizeof want, "],\"broker_version\":\"%s\"}\n", PD_VERSION);
    cr_assert(strstr(out, want), "no broker version last: %s", out);
    free(out);
    pd_client_t *c = pd_harness_client(&h);
    pd_cluster_info_t ci;
    cr_assert_eq(pd_cluster_info(c, &ci), 0);
    cr_assert_str_eq(ci.version, PD_VERSION);
    cr_assert_eq(ci.nworkers, 1);
    cr_assert_str_eq(ci.workers[0].version, PD_VERSION);
    pd_cluster_info_clear(&ci);
    pd_client_destroy(&c);
}

/* --retry-failed N: a command that fails twice, then succeeds, is done
   with N = 2 and failed with N = 1 (its error is the last run's);
   --retries is about lost workers and does not run it again. */
Test(conventions, retry_failed_runs_a_failed_job_again)
{
    const char *cmd = "n=$(cat {} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {}; "
                      "echo run $n; [ $n -ge 3 ]";
    char *out;
    int st = pd_harness_run(&out, "%s --broker %s exec --retry-failed 2 -- '%s' ::: %s/twice 2>&1",
                            submit, h.endpoint, cmd, h.dir);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert_str_eq(out, "run 3\n");
    free(out);
    st = pd_harness_run(&out, "%s --broker %s exec --retry-failed 1 -- '%s' ::: %s/once 2>&1",
                        submit, h.endpoint, cmd, h.dir);
    cr_assert_eq(st, 1, "exit %d: %s", st, out);
    cr_assert(strstr(out, "run 2\n"), "%s", out);
    cr_assert(strstr(out, "command exited with status 1"), "%s", out);
    free(out);
    st = pd_harness_run(&out, "%s --broker %s exec --retries 5 -- '%s' ::: %s/none 2>&1",
                        submit, h.endpoint, cmd, h.dir);
    cr_assert_eq(st, 1, "exit %d: %s", st, out);
    cr_assert(strstr(out, "run 1\n") && !strstr(out, "run 2"), "%s", out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "%s map --retry-failed 101 m.c f 2>&1", submit), 2);
    cr_assert(strstr(out, "--retry-failed wants a number of runs again from 0 to 100"), "%s",
              out);
    free(out);
}

/* --retry-failed is journalled with its batch: after a broker crash the
   queued job still runs again after failing. A journal written before the
   column existed (dropped here with sqlite3) is read, its batches without
   runs again. */
Test(conventions, retry_failed_survives_a_broker_restart_and_old_journals_are_read)
{
    pd_harness_stop(&h);
    pd_harness_start(&h, NULL);
    const char *cmd = "n=$(cat {} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {}; "
                      "echo run $n; [ $n -ge 2 ]";
    char *ids;
    int st = pd_harness_run(&ids, "%s --broker %s exec --detach --retry-failed 1 -- '%s' ::: "
                            "%s/again", submit, h.endpoint, cmd, h.dir);
    cr_assert_eq(st, 0, "%s", ids);
    ids[strcspn(ids, "\n")] = 0;
    pd_harness_kill_broker(&h, SIGKILL);
    pd_harness_restart_broker(&h, NULL);
    pd_harness_add_worker(&h, 1);
    char *out;
    st = pd_harness_run(&out, "%s --broker %s results --wait 30 %s", submit, h.endpoint, ids);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert(strstr(out, "\"state\":\"done\"") && strstr(out, "run 2"), "%s", out);
    free(out);
    free(ids);
    /* An old journal: a queued batch (the worker offers no slot), the
       column dropped, the broker restarted. */
    char worker[PATH_MAX];
    snprintf(worker, sizeof worker, "%s", pd_harness_program("playdoh-worker"));
    cr_assert_eq(pd_harness_run(NULL, "%s ctl --control %s/worker0.ctl --cpus 0 >/dev/null",
                                worker, h.dir), 0);
    st = pd_harness_run(&ids, "%s --broker %s exec --detach -- 'echo old' ::: x", submit,
                        h.endpoint);
    cr_assert_eq(st, 0, "%s", ids);
    ids[strcspn(ids, "\n")] = 0;
    pd_harness_kill_broker(&h, SIGTERM);
    cr_assert_eq(pd_harness_run(&out, "sqlite3 %s 'ALTER TABLE batches DROP COLUMN retry_failed; "
                                "SELECT count(*) FROM batches' 2>&1", h.journal), 0, "%s", out);
    cr_assert_str_eq(out, "1\n", "the queued batch: %s", out);
    free(out);
    pd_harness_restart_broker(&h, NULL);
    cr_assert_eq(pd_harness_run(NULL, "%s ctl --control %s/worker0.ctl --cpus 1 >/dev/null",
                                worker, h.dir), 0);
    st = pd_harness_run(&out, "%s --broker %s results --wait 30 %s", submit, h.endpoint, ids);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert(strstr(out, "old"), "%s", out);
    free(out);
    free(ids);
}
