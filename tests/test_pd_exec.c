/* Unit tests for worker/pd_exec: the built-in task that runs shell commands
   (exit status, both streams, signals, size limits, bad input), and
   pd_exec_job: the job's directory and the files it sends and returns. */
#include "pd_codec.h"
#include "pd_error.h"
#include "pd_exec.h"
#include "pd_plat.h"
#include "playdoh.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static pd_buf_t out;
static char msg[256];

static void setup(void)
{
    pd_buf_init(&out);
    msg[0] = 0;
}
static void teardown(void) { pd_buf_free(&out); }

TestSuite(exec, .init = setup, .fini = teardown, .timeout = 60);

/* The fields of a result map. */
typedef struct {
    int64_t exit, signal;
    const char *out, *err, *host;
    uint32_t out_len, err_len, host_len;
    bool out_bin, truncated;
    double start, runtime;
    uint64_t dropped_out, dropped_err;
    char note[256];
} fields_t;

static fields_t s_read(void)
{
    fields_t f;
    memset(&f, 0, sizeof f);
    cr_assert_eq(pd_mp_check(out.data, out.len, PD_MAX_DEPTH, NULL), 0);
    pd_rd_t r;
    pd_rd_init(&r, out.data, out.len);
    uint32_t n;
    cr_assert_eq(pd_rd_map(&r, &n), 0);
    cr_assert(n == 10 || n == 11, "10 fields, and a note when output was dropped: %u", n);
    for (uint32_t i = 0; i < n; i++) {
        char key[16];
        cr_assert_eq(pd_rd_strcpy(&r, key, sizeof key), 0);
        if (!strcmp(key, "exit"))
            cr_assert_eq(pd_rd_int(&r, &f.exit), 0);
        else if (!strcmp(key, "signal"))
            cr_assert_eq(pd_rd_int(&r, &f.signal), 0);
        else if (!strcmp(key, "out") || !strcmp(key, "err") || !strcmp(key, "host")) {
            const void *p;
            uint32_t len;
            bool bin = pd_rd_peek(&r) == PD_MP_BIN;
            cr_assert_eq(bin ? pd_rd_bin(&r, &p, &len) : pd_rd_str(&r, (const char **) &p, &len), 0);
            if (!strcmp(key, "out"))
                f.out = p, f.out_len = len, f.out_bin = bin;
            else if (!strcmp(key, "err"))
                f.err = p, f.err_len = len;
            else
                f.host = p, f.host_len = len;
        } else if (!strcmp(key, "start"))
            cr_assert_eq(pd_rd_double(&r, &f.start), 0);
        else if (!strcmp(key, "runtime"))
            cr_assert_eq(pd_rd_double(&r, &f.runtime), 0);
        else if (!strcmp(key, "truncated"))
            cr_assert_eq(pd_rd_bool(&r, &f.truncated), 0);
        else if (!strcmp(key, "dropped_out"))
            cr_assert_eq(pd_rd_uint(&r, &f.dropped_out), 0);
        else if (!strcmp(key, "dropped_err"))
            cr_assert_eq(pd_rd_uint(&r, &f.dropped_err), 0);
        else if (!strcmp(key, "note"))
            cr_assert_eq(pd_rd_strcpy(&r, f.note, sizeof f.note), 0);
        else
            cr_assert_fail("unexpected key %s", key);
    }
    return f;
}

static int s_run(const char *cmd) { return pd_exec_run(cmd, strlen(cmd), "hostA", NULL, &out, msg, sizeof msg); }

Test(exec, a_command_that_succeeds_gives_its_output_and_status_zero)
{
    cr_assert_eq(s_run("echo hello; echo oops >&2"), 0, "%s", msg);
    fields_t f = s_read();
    cr_assert_eq(f.exit, 0);
    cr_assert_eq(f.signal, 0);
    cr_assert_eq(f.out_len, 6);
    cr_assert_eq(memcmp(f.out, "hello\n", 6), 0);
    cr_assert_eq(f.err_len, 5);
    cr_assert_eq(memcmp(f.err, "oops\n", 5), 0);
    cr_assert_eq(f.host_len, 5);
    cr_assert_gt(f.start, 1.6e9, "start is Unix time");
    cr_assert_geq(f.runtime, 0);
    cr_assert_not(f.truncated);
}

Test(exec, a_non_zero_status_is_a_task_error_that_keeps_the_output)
{
    cr_assert_eq(s_run("echo partial; exit 3"), PD_ETASK);
    cr_assert_str_eq(msg, "command exited with status 3");
    fields_t f = s_read();
    cr_assert_eq(f.exit, 3);
    cr_assert_eq(f.out_len, 8);
}

Test(exec, a_command_killed_by_a_signal_says_which)
{
    cr_assert_eq(s_run("kill -9 $$"), PD_ETASK);
    cr_assert(strstr(msg, "signal 9") != NULL, "%s", msg);
    fields_t f = s_read();
    cr_assert_eq(f.exit, -1);
    cr_assert_eq(f.signal, 9);
}

Test(exec, stdin_is_empty_so_a_reader_does_not_hang)
{
    cr_assert_eq(s_run("cat; echo after"), 0, "%s", msg);
    fields_t f = s_read();
    cr_assert_eq(f.out_len, 6);
}

Test(exec, output_past_the_limit_is_dropped_and_flagged)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "head -c %u /dev/zero | tr '\\0' x; echo tail >&2",
             PD_EXEC_MAX_OUTPUT + 100000);
    cr_assert_eq(s_run(cmd), 0, "%s", msg);
    fields_t f = s_read();
    cr_assert_eq(f.out_len, PD_EXEC_MAX_OUTPUT);
    cr_assert(f.truncated);
    cr_assert_eq(f.dropped_out, 100000);
    cr_assert_eq(f.dropped_err, 0);
    cr_assert_eq(f.err_len, 5, "the other stream is still read to its end");
}

Test(exec, the_jobs_output_limit_keeps_that_much_and_the_note_says_what_was_dropped)
{
    pd_limits_t lim = {.output = 1000};
    const char *cmd = "head -c 250000 /dev/zero | tr '\\0' x; echo short >&2";
    cr_assert_eq(pd_exec_run(cmd, strlen(cmd), "h", &lim, &out, msg, sizeof msg), 0, "%s", msg);
    fields_t f = s_read();
    cr_assert_eq(f.out_len, 1000);
    cr_assert_eq(f.dropped_out, 249000);
    cr_assert_eq(f.err_len, 6);
    cr_assert(strstr(f.note, "249000 bytes of standard output") &&
              strstr(f.note, "output limit of 1000 bytes"), "%s", f.note);
}

Test(exec, a_command_over_its_cpu_time_limit_fails_with_elimit_naming_it)
{
    /* The shell inherits the limit; SIGXCPU ends it after about a second. */
    pd_limits_t lim = {.cpu_s = 1};
    cr_assert_eq(pd_plat_job_limits(0, 1), 0);
    const char *cmd = "while :; do :; done";
    int rc = pd_exec_run(cmd, strlen(cmd), "h", &lim, &out, msg, sizeof msg);
    pd_plat_job_limits(0, 0);
    cr_assert_eq(rc, PD_ELIMIT, "%d: %s", rc, msg);
    cr_assert(strstr(msg, "CPU time limit of 1 s"), "%s", msg);
    fields_t f = s_read();
    cr_assert_eq(f.signal, SIGXCPU);
}

Test(exec, bytes_that_are_not_utf8_come_back_as_bin)
{
    cr_assert_eq(s_run("printf '\\377\\376'"), 0, "%s", msg);
    fields_t f = s_read();
    cr_assert(f.out_bin);
    cr_assert_eq(f.out_len, 2);
}

Test(exec, a_command_with_a_nul_byte_is_refused_before_running)
{
    cr_assert_eq(pd_exec_run("echo a\0b", 8, "h", NULL, &out, msg, sizeof msg), PD_EINVAL);
    cr_assert_eq(out.len, 0);
    cr_assert(strstr(msg, "NUL") != NULL, "%s", msg);
}

Test(exec, a_missing_program_is_status_127_with_the_shell_message)
{
    cr_assert_eq(s_run("/nonexistent/program"), PD_ETASK);
    fields_t f = s_read();
    cr_assert_eq(f.exit, 127);
    cr_assert_gt(f.err_len, 0);
}

/* ---- pd_exec_job: the job's directory and its files ---------------------- */

_Static_assert(PD_EXEC_MAX_RETURN == (64u << 20) && PD_EXEC_MAX_FILES == 256,
               "pd_exec.h and playdoh.h give the same bounds");

static char root[256];

static void job_setup(void)
{
    setup();
    snprintf(root, sizeof root, "/tmp/pd-exec-test-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
}

static void job_teardown(void)
{
    pd_plat_remove_tree(root);
    teardown();
}

TestSuite(exec_job, .init = job_setup, .fini = job_teardown, .timeout = 60);

/* Packs {cmd[, cwd][, workdir][, files: {name: text}][, return: [name]]}. */
static pd_buf_t s_arg(const char *cmd, const char *cwd, const char *workdir, const char *fname,
                      const char *ftext, const char *ret)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    msgpack_pack_map(&pk, 1 + !!cwd + !!workdir + !!fname + !!ret);
    pd_pack_kv_str(&pk, "cmd", cmd);
    if (cwd)
        pd_pack_kv_str(&pk, "cwd", cwd);
    if (workdir)
        pd_pack_kv_str(&pk, "workdir", workdir);
    if (fname) {
        pd_pack_cstr(&pk, "files");
        msgpack_pack_map(&pk, 1);
        pd_pack_kv_bin(&pk, fname, ftext, strlen(ftext));
    }
    if (ret) {
        pd_pack_cstr(&pk, "return");
        msgpack_pack_array(&pk, 1);
        pd_pack_cstr(&pk, ret);
    }
    return b;
}

static int s_job(pd_buf_t *arg, uint64_t id)
{
    char scratch[300];
    snprintf(scratch, sizeof scratch, "%s/scratch", root);
    pd_exec_env_t env = {.host = "hostA", .scratch = scratch, .job = id};
    int rc = pd_exec_job(arg->data, arg->len, &env, NULL, &out, msg, sizeof msg);
    pd_buf_free(arg);
    return rc;
}

/* The value of key in the result map (a str or bin), or NULL. */
static const char *s_field(const char *key, uint32_t *len)
{
    pd_rd_t r;
    pd_rd_init(&r, out.data, out.len);
    uint32_t n;
    cr_assert_eq(pd_rd_map(&r, &n), 0);
    for (uint32_t i = 0; i < n; i++) {
        if (pd_rd_key_is(&r, key)) {
            const void *p;
            if (pd_rd_peek(&r) == PD_MP_STR)
                cr_assert_eq(pd_rd_str(&r, (const char **) &p, len), 0);
            else
                cr_assert_eq(pd_rd_bin(&r, &p, len), 0);
            return p;
        }
        cr_assert_eq(pd_rd_skip(&r, NULL, NULL), 0);
        cr_assert_eq(pd_rd_skip(&r, NULL, NULL), 0);
    }
    return NULL;
}

Test(exec_job, the_submitters_directory_when_seen_else_a_scratch_directory_removed_after)
{
    pd_buf_t a = s_arg("pwd", root, NULL, NULL, NULL, NULL);
    cr_assert_eq(s_job(&a, 1), 0, "%s", msg);
    uint32_t len;
    const char *o = s_field("out", &len);
    cr_assert(len == strlen(root) + 1 && memcmp(o, root, len - 1) == 0, "%.*s", (int) len, o);
    pd_buf_reset(&out);
    a = s_arg("pwd; touch left-here", "/nonexistent/dir", NULL, NULL, NULL, NULL);
    cr_assert_eq(s_job(&a, 7), 0, "%s", msg);
    o = s_field("dir", &len);
    char want[400];
    snprintf(want, sizeof want, "%s/scratch/job-7", root);
    cr_assert(len == strlen(want) && memcmp(o, want, len) == 0, "%.*s", (int) len, o);
    struct stat st;
    cr_assert_neq(stat(want, &st), 0, "the scratch directory is removed after the job");
}

Test(exec_job, files_are_written_before_and_read_back_after)
{
    pd_buf_t a = s_arg("tr a-z A-Z < d/in.txt > out.txt", root, NULL, "d/in.txt", "hello",
                       "out.txt");
    cr_assert_eq(s_job(&a, 2), 0, "%s", msg);
    pd_rd_t r;
    pd_rd_init(&r, out.data, out.len);
    uint32_t n, nf, nl, len;
    const char *name;
    const void *data;
    cr_assert_eq(pd_rd_map(&r, &n), 0);
    for (uint32_t i = 0; i < n; i++) {
        if (!pd_rd_key_is(&r, "files")) {
            pd_rd_skip(&r, NULL, NULL);
            pd_rd_skip(&r, NULL, NULL);
            continue;
        }
        cr_assert_eq(pd_rd_map(&r, &nf), 0);
        cr_assert_eq(nf, 1);
        cr_assert_eq(pd_rd_str(&r, &name, &nl), 0);
        cr_assert_eq(pd_rd_bin(&r, &data, &len), 0);
        cr_assert(nl == 7 && memcmp(name, "out.txt", 7) == 0);
        cr_assert(len == 5 && memcmp(data, "HELLO", 5) == 0, "%.*s", (int) len,
                  (const char *) data);
        return;
    }
    cr_assert_fail("no files in the result");
}

Test(exec_job, a_missing_file_to_return_fails_a_command_that_succeeded)
{
    pd_buf_t a = s_arg("true", NULL, NULL, NULL, NULL, "out.txt");
    cr_assert_eq(s_job(&a, 3), PD_EIO);
    cr_assert(strstr(msg, "cannot return out.txt (--return)") != NULL, "%s", msg);
    cr_assert(strstr(msg, "on host hostA: the command did not write it") != NULL, "%s", msg);
    pd_buf_reset(&out);
    a = s_arg("exit 3", NULL, NULL, NULL, NULL, "out.txt");
    cr_assert_eq(s_job(&a, 4), PD_ETASK, "a failed command fails for its status: %s", msg);
}

Test(exec_job, a_workdir_that_cannot_be_entered_names_itself_and_the_host)
{
    pd_buf_t a = s_arg("true", NULL, "/nonexistent/shared", NULL, NULL, NULL);
    cr_assert_eq(s_job(&a, 5), PD_EIO);
    cr_assert(strstr(msg, "the job's directory /nonexistent/shared (--workdir) cannot be used "
                     "on host hostA: No such file or directory") != NULL, "%s", msg);
    cr_assert_eq(out.len, 0, "nothing ran");
    char file[300];
    snprintf(file, sizeof file, "%s/f", root);
    FILE *f = fopen(file, "w");
    fclose(f);
    a = s_arg("true", NULL, file, NULL, NULL, NULL);
    cr_assert_eq(s_job(&a, 6), PD_EIO);
    cr_assert(strstr(msg, "it is not a directory") != NULL, "%s", msg);
}

Test(exec_job, names_that_leave_the_directory_and_relative_directories_are_refused)
{
    pd_buf_t a = s_arg("true", NULL, NULL, "../x", "data", NULL);
    cr_assert_eq(s_job(&a, 8), PD_EINVAL);
    cr_assert(strstr(msg, "'../x' (--transfer) climbs out") != NULL, "%s", msg);
    a = s_arg("true", NULL, NULL, NULL, NULL, "/etc/passwd");
    cr_assert_eq(s_job(&a, 9), PD_EINVAL);
    cr_assert(strstr(msg, "'/etc/passwd' (--return) is absolute") != NULL, "%s", msg);
    a = s_arg("true", NULL, "relative/dir", NULL, NULL, NULL);
    cr_assert_eq(s_job(&a, 10), PD_EINVAL);
    cr_assert(strstr(msg, "'workdir' is malformed") != NULL, "%s", msg);
}

Test(exec_job, a_fifo_to_return_is_refused_without_waiting_for_a_writer)
{
    pd_buf_t a = s_arg("mkfifo out.txt", NULL, NULL, NULL, NULL, "out.txt");
    cr_assert_eq(s_job(&a, 11), PD_EIO);
    cr_assert(strstr(msg, "cannot return out.txt (--return)") != NULL, "%s", msg);
    cr_assert(strstr(msg, "it is not a regular file") != NULL, "%s", msg);
}
