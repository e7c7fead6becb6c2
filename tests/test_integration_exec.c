/* Integration tests of `playdoh-submit exec` and of the command line's
   everyday habits: GNU parallel's replacement strings, output in input
   order, the job log, exit statuses, --help for every verb, clear errors for
   bad input, and the progress bar (drawn on a terminal only). */
#include "pd_harness.h"
#include "pd_codec.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pd_harness_t h;
static char submit[1024];

static void setup(void)
{
    pd_harness_start(&h, NULL);
    pd_harness_add_worker(&h, 2);
    pd_client_t *c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, 2);
    pd_client_destroy(&c);
    snprintf(submit, sizeof submit, "%s", pd_harness_program("playdoh-submit"));
}

static void teardown(void) { pd_harness_stop(&h); }

TestSuite(exec_cli, .init = setup, .fini = teardown, .timeout = 120);

Test(exec_cli, output_comes_back_in_input_order_with_replacement_strings)
{
    char *out;
    /* Later lines finish first: the order is still the input's. */
    int st = pd_harness_run(&out, "printf '3\\n2\\n1\\n0\\n' | %s --broker %s exec -- "
                 "'sleep 0.{}; echo job {#} arg {}'", submit, h.endpoint);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert_str_eq(out, "job 1 arg 3\njob 2 arg 2\njob 3 arg 1\njob 4 arg 0\n");
    free(out);
}

Test(exec_cli, a_template_without_braces_gets_the_argument_appended_quoted)
{
    char *out;
    int st = pd_harness_run(&out, "%s --broker %s exec echo ::: 'a b' \"it's\" 'x;y' '$HOME'", submit,
                 h.endpoint);
    cr_assert_eq(st, 0);
    cr_assert_str_eq(out, "a b\nit's\nx;y\n$HOME\n");
    free(out);
}

Test(exec_cli, base_names_directories_and_extensions)
{
    char *out;
    int st = pd_harness_run(&out, "%s --broker %s exec -- echo {/} {//} {.} {/.} ::: dir/file.tar.gz", submit,
                 h.endpoint);
    cr_assert_eq(st, 0);
    cr_assert_str_eq(out, "file.tar.gz dir dir/file.tar file.tar\n");
    free(out);
}

Test(exec_cli, the_exit_status_counts_failed_jobs_and_their_output_still_shows)
{
    char *out;
    int st = pd_harness_run(&out, "%s --broker %s exec -q -- 'echo out {}; exit {}' ::: 0 1 0 2 3 2>/dev/null",
                 submit, h.endpoint);
    cr_assert_eq(st, 3, "three commands failed: exit %d", st);
    cr_assert_str_eq(out, "out 0\nout 1\nout 0\nout 2\nout 3\n");
    free(out);
    st = pd_harness_run(&out, "seq 1 105 | %s --broker %s exec -q false 2>/dev/null", submit, h.endpoint);
    cr_assert_eq(st, 101, "more than 100 failures: 101, as GNU parallel");
    free(out);
}

Test(exec_cli, standard_error_of_each_job_and_a_line_naming_the_failure)
{
    char *out;
    int st = pd_harness_run(&out, "%s --broker %s exec -- 'echo to-err >&2; exit 4' ::: x 2>&1 >/dev/null",
                 submit, h.endpoint);
    cr_assert_eq(st, 1);
    cr_assert(strstr(out, "to-err\n") != NULL, "%s", out);
    cr_assert(strstr(out, "exited with status 4") != NULL, "%s", out);
    free(out);
}

Test(exec_cli, joblog_has_gnu_parallel_columns)
{
    char *out;
    int st = pd_harness_run(&out, "%s --broker %s exec --joblog %s/log -- 'printf abc; exit {}' ::: 0 5 >/dev/null "
                 "2>&1; cat %s/log", submit, h.endpoint, h.dir, h.dir);
    (void) st;
    char *line2 = strchr(out, '\n');
    cr_assert_not_null(line2);
    *line2++ = 0;
    cr_assert_str_eq(out, "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand");
    unsigned seq, send, recv;
    int exitval, sig;
    double start, runtime;
    char host[64], cmd[64];
    cr_assert_eq(sscanf(line2, "%u\t%63[^\t]\t%lf\t%lf\t%u\t%u\t%d\t%d\t%63[^\n]", &seq, host, &start,
                        &runtime, &send, &recv, &exitval, &sig, cmd), 9, "%s", line2);
    cr_assert_eq(seq, 1);
    cr_assert_eq(recv, 3);
    cr_assert_eq(exitval, 0);
    cr_assert_str_eq(cmd, "printf abc; exit 0");
    char *line3 = strchr(line2, '\n') + 1;
    cr_assert_eq(sscanf(line3, "%u\t%63[^\t]\t%lf\t%lf\t%u\t%u\t%d\t%d", &seq, host, &start, &runtime,
                        &send, &recv, &exitval, &sig), 8, "%s", line3);
    cr_assert_eq(seq, 2);
    cr_assert_eq(exitval, 5);
    free(out);
}

Test(exec_cli, args_file_and_time_out)
{
    char *out;
    pd_harness_run(NULL, "printf 'one\\ntwo\\n' > %s/args.txt", h.dir);
    int st = pd_harness_run(&out, "%s --broker %s exec --args %s/args.txt -- echo 'x{}y'", submit, h.endpoint,
                 h.dir);
    cr_assert_eq(st, 0);
    cr_assert_str_eq(out, "xoney\nxtwoy\n");
    free(out);
    st = pd_harness_run(&out, "%s --broker %s exec --timeout-ms 200 -- 'sleep 30; echo never' ::: a 2>&1",
             submit, h.endpoint);
    cr_assert_eq(st, 1);
    cr_assert(strstr(out, "time-out of 200 ms") != NULL, "%s", out);
    cr_assert(strstr(out, "never a\n") == NULL, "%s", out);
    free(out);
}

Test(exec_cli, detached_commands_report_their_output_through_results)
{
    char *out;
    int st = pd_harness_run(&out, "%s --broker %s exec --detach -- 'echo hi; exit 2' ::: a", submit, h.endpoint);
    cr_assert_eq(st, 0);
    unsigned long id = strtoul(out, NULL, 10);
    free(out);
    st = pd_harness_run(&out, "%s --broker %s results --wait 30 %lu", submit, h.endpoint, id);
    cr_assert_eq(st, 1);
    cr_assert(strstr(out, "\"state\":\"failed\"") != NULL, "%s", out);
    cr_assert(strstr(out, "\"exit\":2") != NULL, "%s", out);
    cr_assert(strstr(out, "\"out\":\"hi\\n\"") != NULL, "%s", out);
    free(out);
}

Test(exec_cli, bad_input_gets_a_clear_error_and_status_255)
{
    char *out;
    cr_assert_eq(pd_harness_run(&out, "%s --broker %s exec --args /nonexistent/args -- echo {} 2>&1", submit,
                     h.endpoint), 255);
    cr_assert(strstr(out, "cannot read argument lines from /nonexistent/args") != NULL, "%s", out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "%s --broker %s exec --bogus echo 2>&1", submit, h.endpoint), 255);
    cr_assert(strstr(out, "unknown option '--bogus'") != NULL, "%s", out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "%s --broker %s exec 2>&1 </dev/null", submit, h.endpoint), 255);
    cr_assert(strstr(out, "needs a COMMAND") != NULL, "%s", out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "printf 'a\\0b\\n' | %s --broker %s exec echo 2>&1", submit, h.endpoint),
                 255);
    cr_assert(strstr(out, "line 1 holds a NUL byte") != NULL, "%s", out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "%s --broker %s exec --joblog /nonexistent/dir/log echo ::: a 2>&1",
                     submit, h.endpoint), 255);
    cr_assert(strstr(out, "cannot write the job log") != NULL, "%s", out);
    free(out);
}

Test(exec_cli, dry_run_prints_commands_without_a_broker)
{
    char *out;
    int st = pd_harness_run(&out, "%s --broker tcp://127.0.0.1:1 exec --dry-run -- gzip {} ::: 'a b' c", submit);
    cr_assert_eq(st, 0);
    cr_assert_str_eq(out, "gzip 'a b'\ngzip c\n");
    free(out);
}

Test(exec_cli, every_verb_has_help_and_wrong_options_are_named)
{
    static const char *verbs[] = {"map", "exec", "status", "results", "wait", "cancel",
                                  "optimize", "optimize-status", "optimize-fetch"};
    char *out;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        cr_assert_eq(pd_harness_run(&out, "%s %s --help", submit, verbs[i]), 0);
        char want[64];
        snprintf(want, sizeof want, "usage: playdoh-submit [GLOBAL OPTIONS] %s", verbs[i]);
        cr_assert(strstr(out, want) == out, "%s --help: %s", verbs[i], out);
        free(out);
    }
    cr_assert_eq(pd_harness_run(&out, "%s map --frob m.c f 2>&1", submit), 2);
    cr_assert(strstr(out, "playdoh-submit: unknown option '--frob' (see playdoh-submit map --help)") != NULL,
              "%s", out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "%s --detach map m.c f 2>&1", submit), 2);
    cr_assert(strstr(out, "--detach is an option of map, exec, task, optimize: put it after "
                     "the verb") != NULL,
              "%s", out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "%s status --release 1 2>&1", submit), 2);
    cr_assert(strstr(out, "--release is not an option of status") != NULL, "%s", out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "%s map --timeout-ms 2>&1", submit), 2);
    cr_assert(strstr(out, "option '--timeout-ms' needs a value") != NULL, "%s", out);
    free(out);
    cr_assert_eq(pd_harness_run(&out, "%s map --max-slots 0 m.c f 2>&1", submit), 2);
    cr_assert(strstr(out, "--max-slots wants a number") != NULL, "%s", out);
    free(out);
}


Test(exec_cli, a_progress_bar_on_a_terminal_and_none_on_a_pipe)
{
    char *tty;
    char *argv[] = {submit, "--broker", h.endpoint, "exec", "--", "sleep 0.1; echo {}", ":::",
                    "1", "2", "3", "4", "5", "6", NULL};
    cr_assert_eq(pd_harness_run_on_tty(argv, &tty), 0, "%s", tty);
    cr_assert(strstr(tty, "6/6") != NULL, "the terminal shows the final count: %s", tty);
    cr_assert(strstr(tty, "jobs/s") != NULL, "%s", tty);
    cr_assert(strstr(tty, "\r") != NULL, "redrawn in place");
    free(tty);
    char *out;
    cr_assert_eq(pd_harness_run(&out, "%s --broker %s exec -- 'echo {}' ::: 1 2 2>&1", submit, h.endpoint), 0);
    cr_assert_str_eq(out, "1\n2\n", "no bar when standard error is not a terminal");
    free(out);
    char *quiet[] = {submit, "--broker", h.endpoint, "--no-progress", "exec", "--", "echo {}",
                     ":::", "1", NULL};
    cr_assert_eq(pd_harness_run_on_tty(quiet, &tty), 0);
    cr_assert(strstr(tty, "jobs/s") == NULL, "--no-progress: %s", tty);
    free(tty);
}

Test(exec_cli, wait_shows_progress_too)
{
    char *out;
    int st = pd_harness_run(&out, "%s --broker %s exec --detach -- 'sleep 0.2' ::: 1 2 3", submit, h.endpoint);
    cr_assert_eq(st, 0);
    out[strcspn(out, "\n")] = 0;
    char *tty;
    char *argv[] = {submit, "--broker", h.endpoint, "wait", out, NULL};
    cr_assert_eq(pd_harness_run_on_tty(argv, &tty), 0, "%s", tty);
    cr_assert(strstr(tty, "3/3") != NULL, "%s", tty);
    free(tty);
    free(out);
}

/* The state `results` prints for the job id in out (its JSON lines), or "". */
static void state_of(const char *out, unsigned long id, char *state, size_t cap)
{
    char key[64];
    snprintf(key, sizeof key, "{\"id\":%lu,\"state\":\"", id);
    const char *p = strstr(out, key);
    state[0] = 0;
    if (p) {
        p += strlen(key);
        snprintf(state, cap, "%.*s", (int) strcspn(p, "\""), p);
    }
}

Test(exec_cli, status_and_results_give_each_unfinished_job_the_same_state)
{
    char *out;
    int st = pd_harness_run(&out, "seq 1 6 | %s --broker %s exec --detach -- 'sleep 4; echo {}'",
                            submit, h.endpoint);
    cr_assert_eq(st, 0, "%s", out);
    unsigned long a, b;
    cr_assert_eq(sscanf(out, "%lu-%lu", &a, &b), 2, "ids: %s", out);
    free(out);
    /* Until the broker has sent some to the worker's two slots. */
    for (int tries = 0; tries < 50; tries++) {
        pd_harness_run(&out, "%s --broker %s status %lu-%lu", submit, h.endpoint, a, b);
        bool running = strstr(out, "\"running\"") != NULL;
        free(out);
        if (running)
            break;
        usleep(100 * 1000);
    }
    /* Both read one after the other, well within a job's 4 s. */
    pd_harness_run(&out, "%s --broker %s status %lu-%lu; echo ==; %s --broker %s results %lu-%lu",
                   submit, h.endpoint, a, b, submit, h.endpoint, a, b);
    char *sep = strstr(out, "==\n");
    cr_assert_not_null(sep, "%s", out);
    *sep = 0;
    const char *status = out, *results = sep + 3;
    int running = 0;
    for (unsigned long id = a; id <= b; id++) {
        char s1[32], s2[32];
        state_of(status, id, s1, sizeof s1);
        state_of(results, id, s2, sizeof s2);
        cr_assert(s1[0], "job %lu has no state in status: %s", id, status);
        cr_assert_str_eq(s2, s1, "job %lu: status says %s, results says %s\n%s\n==\n%s", id, s1,
                         s2, status, results);
        running += strcmp(s1, "running") == 0;
    }
    cr_assert_gt(running, 0, "%s", status);
    free(out);
    pd_harness_run(&out, "%s --broker %s cancel %lu-%lu", submit, h.endpoint, a, b);
    free(out);
}

/* ---- exec on a real cluster: the job's directory and its files ---------- */

/* Each test runs the client from a directory of its own under the harness's
   temp directory, which the worker (started from the test's directory) does
   not have as its working directory. */
static void s_make_dir(char *dir, size_t cap, const char *name)
{
    snprintf(dir, cap, "%s/%s", h.dir, name);
    cr_assert_eq(pd_harness_run(NULL, "mkdir -p %s", dir), 0);
}

Test(exec_cli, gzip_runs_in_the_submitters_directory_or_in_workdir)
{
    char sub[512], data[512], *out;
    s_make_dir(sub, sizeof sub, "sub");
    s_make_dir(data, sizeof data, "data");
    /* The README's `ls *.csv | playdoh-submit exec gzip -9`, from the
       directory that holds the files: the worker sees it, so runs there. */
    int st = pd_harness_run(&out, "cd %s && seq 1 1000 > a.csv && seq 5 50 > b.csv && "
                            "ls *.csv | %s --broker %s exec gzip -9 2>&1", sub, submit,
                            h.endpoint);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    free(out);
    st = pd_harness_run(&out, "cd %s && gunzip -c a.csv.gz | tail -n 1 && ls", sub);
    cr_assert_eq(st, 0);
    cr_assert_str_eq(out, "1000\na.csv.gz\nb.csv.gz\n");
    free(out);
    /* --workdir: the files live elsewhere, the client runs from sub. */
    st = pd_harness_run(&out, "seq 1 3 > %s/c.csv && cd %s && echo c.csv | %s --broker %s exec "
                        "--workdir %s -- 'gzip -9 {} && pwd' 2>&1", data, sub, submit,
                        h.endpoint, data);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert(strstr(out, data) != NULL, "it ran in %s: %s", data, out);
    free(out);
    st = pd_harness_run(&out, "gunzip -c %s/c.csv.gz", data);
    cr_assert_str_eq(out, "1\n2\n3\n");
    free(out);
    /* A relative --workdir is taken from the submitter's directory. */
    st = pd_harness_run(&out, "cd %s && %s --broker %s exec --workdir ../data -- pwd ::: x 2>&1",
                        sub, submit, h.endpoint);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert(strstr(out, data) != NULL, "it ran in %s: %s", data, out);
    free(out);
}

Test(exec_cli, files_sent_with_a_job_and_files_brought_back)
{
    char sub[512], *out;
    s_make_dir(sub, sizeof sub, "xfer");
    int st = pd_harness_run(&out, "cd %s && mkdir -p in && echo hello > in/one.txt && "
                            "echo world > in/two.txt && ls in | %s --broker %s exec "
                            "--transfer in/{} --return out/{.}.up -- "
                            "'mkdir -p out && tr a-z A-Z < in/{} > out/{.}.up && pwd' 2>&1",
                            sub, submit, h.endpoint);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    /* Each ran in a scratch directory of its own on the worker, not here. */
    cr_assert(strstr(out, "/scratch/slot-") != NULL, "%s", out);
    cr_assert(strstr(out, sub) == NULL, "%s", out);
    free(out);
    st = pd_harness_run(&out, "cd %s && cat out/one.up out/two.up", sub);
    cr_assert_eq(st, 0);
    cr_assert_str_eq(out, "HELLO\nWORLD\n");
    free(out);
    /* The scratch directories are gone. */
    st = pd_harness_run(&out, "find %s/cache/scratch -name 'job-*' 2>/dev/null | wc -l", h.dir);
    cr_assert_str_eq(out, "0\n", "left behind: %s", out);
    free(out);
    /* Run again: the files exist now, and are not replaced without --force. */
    st = pd_harness_run(&out, "cd %s && ls in | %s --broker %s exec --transfer in/{} "
                        "--return out/{.}.up -- 'mkdir -p out; echo x > out/{.}.up' 2>&1", sub,
                        submit, h.endpoint);
    cr_assert_eq(st, 255, "exit %d: %s", st, out);
    cr_assert(strstr(out, "would return out/one.up, which exists here: move it away, or give "
                     "--force") != NULL, "%s", out);
    free(out);
    st = pd_harness_run(&out, "cd %s && ls in | %s --broker %s exec --force --transfer in/{} "
                        "--return out/{.}.up -- 'mkdir -p out; echo x{#} > out/{.}.up' 2>&1 && "
                        "cat out/one.up", sub, submit, h.endpoint);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert_str_eq(out, "x1\n");
    free(out);
    /* A file the command did not write fails that job, saying so. */
    st = pd_harness_run(&out, "cd %s && %s --broker %s exec --return none.txt -- true ::: a 2>&1",
                        sub, submit, h.endpoint);
    cr_assert_eq(st, 1, "exit %d: %s", st, out);
    cr_assert(strstr(out, "cannot return none.txt (--return)") != NULL, "%s", out);
    cr_assert(strstr(out, "the command did not write it") != NULL, "%s", out);
    free(out);
}

Test(exec_cli, a_workdir_the_worker_cannot_see_is_a_clear_error)
{
    char *out, host[256];
    gethostname(host, sizeof host);
    int st = pd_harness_run(&out, "%s --broker %s exec --workdir /nonexistent/shared/run -- ls "
                            "::: a 2>&1", submit, h.endpoint);
    cr_assert_eq(st, 1, "exit %d: %s", st, out);
    cr_assert(strstr(out, "the job's directory /nonexistent/shared/run (--workdir) cannot be "
                     "used on host ") != NULL, "%s", out);
    cr_assert(strstr(out, host) != NULL, "names the host %s: %s", host, out);
    cr_assert(strstr(out, "No such file or directory") != NULL, "%s", out);
    cr_assert(strstr(out, "docs/cluster.md") != NULL, "%s", out);
    free(out);
}

Test(exec_cli, names_that_leave_the_directory_are_refused_on_both_sides)
{
    char sub[512], *out;
    s_make_dir(sub, sizeof sub, "esc");
    /* The client refuses them before anything is sent. */
    int st = pd_harness_run(&out, "cd %s && %s --broker %s exec --return ../evil.txt -- true "
                            "::: a 2>&1", sub, submit, h.endpoint);
    cr_assert_eq(st, 255, "exit %d: %s", st, out);
    cr_assert(strstr(out, "--return '../evil.txt' climbs out of its directory with '..'") != NULL,
              "%s", out);
    free(out);
    st = pd_harness_run(&out, "cd %s && %s --broker %s exec --return {} -- true ::: /etc/x 2>&1",
                        sub, submit, h.endpoint);
    cr_assert_eq(st, 255, "exit %d: %s", st, out);
    cr_assert(strstr(out, "--return '/etc/x' is absolute") != NULL, "%s", out);
    free(out);
    st = pd_harness_run(&out, "cd %s && %s --broker %s exec --detach --return x -- true ::: a "
                        "2>&1", sub, submit, h.endpoint);
    cr_assert_eq(st, 255, "exit %d: %s", st, out);
    cr_assert(strstr(out, "cannot go with --detach") != NULL, "%s", out);
    free(out);
    /* And a worker refuses them from any client. */
    pd_client_t *c = pd_harness_client(&h);
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    msgpack_pack_map(&pk, 2);
    pd_pack_kv_str(&pk, "cmd", "echo x > ../escaped");
    pd_pack_cstr(&pk, "return");
    msgpack_pack_array(&pk, 1);
    pd_pack_cstr(&pk, "sub/../../escaped");
    msgpack_pack_map(&pk, 2);
    pd_pack_kv_str(&pk, "cmd", "pwd");
    pd_pack_kv_str(&pk, "cwd", "/nonexistent/submitter/dir");
    uint64_t ids[2];
    cr_assert_eq(pd_map(c, PD_BUILTIN, "exec", b.data, b.len, 2, NULL, ids), 2,
                 "%s", pd_client_error(c));
    pd_result_t r[2];
    cr_assert_eq(pd_fetch(c, ids, 2, 30000, r, NULL, NULL), 2);
    cr_assert_eq(r[0].state, PD_JOB_FAILED);
    cr_assert_eq(r[0].code, PD_EINVAL);
    cr_assert(strstr(r[0].error, "'sub/../../escaped' (--return) climbs out of its directory")
              != NULL, "%s", r[0].error);
    /* A submitter's directory this worker does not see: a scratch one. */
    cr_assert_eq(r[1].state, PD_JOB_DONE, "%s", r[1].error ? r[1].error : "");
    pd_exec_result_t x;
    cr_assert_eq(pd_result_exec(&r[1], &x), 0);
    cr_assert(x.scratch);
    cr_assert(x.out_len > 0 && strstr(x.out, "/scratch/slot-") != NULL, "%.*s", (int) x.out_len,
              x.out);
    pd_results_clear(r, 2);
    pd_buf_free(&b);
    pd_client_destroy(&c);
}

Test(exec_cli, a_file_too_big_to_send_says_to_share_it)
{
    char sub[512], *out;
    s_make_dir(sub, sizeof sub, "big");
    int st = pd_harness_run(&out, "cd %s && head -c 17000000 /dev/zero > big.bin && %s --broker "
                            "%s exec --transfer big.bin -- 'wc -c big.bin' ::: a 2>&1", sub,
                            submit, h.endpoint);
    cr_assert_eq(st, 255, "exit %d: %s", st, out);
    cr_assert(strstr(out, "big.bin (16.2 MiB)") != NULL, "%s", out);
    cr_assert(strstr(out, "at most 16.0 MiB per job") != NULL, "%s", out);
    cr_assert(strstr(out, "--workdir DIR") != NULL, "%s", out);
    free(out);
    st = pd_harness_run(&out, "cd %s && %s --broker %s exec --transfer nothere.txt -- true ::: a "
                        "2>&1", sub, submit, h.endpoint);
    cr_assert_eq(st, 255, "exit %d: %s", st, out);
    cr_assert(strstr(out, "--transfer nothere.txt: No such file or directory") != NULL, "%s", out);
    free(out);
}
