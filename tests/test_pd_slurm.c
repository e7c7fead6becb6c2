/*  Tests of `playdoh-submit slurm` (client/pd_slurm.c): the batch script it
    writes (directives, and worker arguments that survive the shell: the
    script's exec line is run by bash with /bin/echo standing in for the
    worker), its refusals of bad values, and the real playdoh-submit's
    errors where Slurm is missing. A real Slurm is exercised by
    tests/slurm_pilots.sh. */
#include "pd_error.h"
#include "pd_proc.h"
#include "pd_slurm.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static pd_slurm_opts_t s_opts(void)
{
    return (pd_slurm_opts_t){.workers = 3, .cpus = 4, .broker = "tcp://login1.example:5555",
                             .worker_exe = "/opt/playdoh/bin/playdoh-worker",
                             .idle_exit_s = 120};
}

/* The script for o, NUL-terminated (asserts it is accepted). */
static char *s_script(const pd_slurm_opts_t *o)
{
    pd_buf_t b;
    pd_buf_init(&b);
    char why[512] = "";
    cr_assert_eq(pd_slurm_script(o, &b, why, sizeof why), 0, "%s", why);
    pd_buf_append(&b, "", 1);
    char *s = strdup((char *) b.data);
    pd_buf_free(&b);
    return s;
}

/* The refusal of o, or fails when o is accepted. */
static void s_refused(const pd_slurm_opts_t *o, const char *needle)
{
    pd_buf_t b;
    pd_buf_init(&b);
    char why[512] = "";
    cr_assert_eq(pd_slurm_script(o, &b, why, sizeof why), PD_EINVAL, "accepted; wanted '%s'",
                 needle);
    cr_expect_eq(b.len, 0, "a refused script left bytes behind");
    cr_expect(strstr(why, needle), "'%s' does not say '%s'", why, needle);
    pd_buf_free(&b);
}

TestSuite(slurm_script);

Test(slurm_script, is_a_job_array_of_one_pilot_per_task)
{
    pd_slurm_opts_t o = s_opts();
    o.partition = "short";
    o.time = "1-02:00:00";
    o.account = "lab42";
    o.gpus = 2;
    o.sbatch_args[o.nsbatch_args++] = "--mem=4G";
    char *s = s_script(&o);
    cr_expect(strncmp(s, "#!/bin/bash\n", 12) == 0);
    const char *lines[] = {"#SBATCH --array=0-2\n", "#SBATCH --cpus-per-task=4\n",
                           "#SBATCH --ntasks=1\n", "#SBATCH --nodes=1\n",
                           "#SBATCH --gres=gpu:2\n", "#SBATCH --partition=short\n",
                           "#SBATCH --time=1-02:00:00\n", "#SBATCH --account=lab42\n",
                           "#SBATCH --job-name=playdoh-pilot\n",
                           "#SBATCH --output=playdoh-pilot-%A_%a.log\n", "#SBATCH --mem=4G\n",
                           "exec '/opt/playdoh/bin/playdoh-worker' --broker "
                           "'tcp://login1.example:5555' --cpus 4 --gpus 2 --idle-exit 120 "
                           "--control none\n"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        cr_expect(strstr(s, lines[i]), "no '%s' in:\n%s", lines[i], s);
    /* sbatch reads directives only above the first command. */
    cr_expect_lt(strstr(s, "#SBATCH --mem=4G"), strstr(s, "\nexec "));
    free(s);
}

Test(slurm_script, leaves_out_what_was_not_asked)
{
    pd_slurm_opts_t o = s_opts();
    char *s = s_script(&o);
    cr_expect_null(strstr(s, "--partition"));
    cr_expect_null(strstr(s, "--time"));
    cr_expect_null(strstr(s, "--account"));
    cr_expect_null(strstr(s, "--gres"));
    cr_expect_null(strstr(s, "--gpus"));
    cr_expect_null(strstr(s, "--key"));
    free(s);
}

Test(slurm_script, passes_worker_arguments_through_the_shell_intact)
{
    /* The script itself, run by bash with /bin/echo as the worker, must
       hand every argument over byte for byte: quotes, spaces, $, `. */
    pd_slurm_opts_t o = s_opts();
    o.worker_exe = "/bin/echo";
    o.broker_key = "/home/ann/it's here/broker.pub";
    o.worker_key = "/home/ann/keys/$HOME`id`.key";
    o.config_dir = "/home/ann/.config/playdoh";
    o.worker_args[o.nworker_args++] = "--name=node \"one\"";
    o.worker_args[o.nworker_args++] = "--log-level=debug";
    o.idle_exit_s = 2.5;
    char *s = s_script(&o);
    char out[4096], err[1024];
    char *argv[] = {"bash", "-s", NULL};
    int st = pd_proc_capture(argv, s, strlen(s), out, sizeof out, err, sizeof err, 10000);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "bash: %s", err);
    cr_expect_str_eq(out, "--broker tcp://login1.example:5555 --cpus 4 --idle-exit 2.5 "
                          "--control none --broker-key /home/ann/it's here/broker.pub --key "
                          "/home/ann/keys/$HOME`id`.key --config-dir /home/ann/.config/playdoh "
                          "--name=node \"one\" --log-level=debug\n");
    free(s);
}

/* Parameters are copied into each test's own process (exec'ed afresh, so
   at other addresses): strings live inside the struct, never as pointers. */
typedef struct {
    char what[16];   /* field to spoil */
    char value[48];  /* its bad value */
    char needle[48]; /* in the refusal */
} s_bad_t;

static s_bad_t s_bads[] = {
    {"broker", "ipc:///tmp/broker", "tcp://HOST:PORT"},
    {"broker", "tcp://*:5555", "bind address"},
    {"broker", "tcp://0.0.0.0:5555", "bind address"},
    {"broker", "tcp://login1", "no port"},
    {"broker", "tcp://login1:99999", "no port"},
    {"broker", "tcp://log in1:5555", "cannot appear in a host name"},
    {"broker", "", "--broker tcp://HOST:PORT"},
    {"partition", "short\n#SBATCH --uid=0", "--partition"},
    {"partition", "a b", "--partition"},
    {"time", "1 hour", "--time"},
    {"account", "lab'42", "--account"},
    {"job_name", "my job", "--job-name"},
    {"output", "/tmp/my logs/%A.log", "--output"},
    {"sbatch", "--array=0-99", "set by playdoh-submit"},
    {"sbatch", "--cpus-per-task=8", "set by playdoh-submit"},
    {"sbatch", "--mem 4G", "--sbatch-arg"},
    {"sbatch", "-p short", "--sbatch-arg"},
    {"worker_arg", "--name=a\nrm -rf /", "line break"},
    {"worker_exe", "", "--worker-exe"},
};

ParameterizedTestParameters(slurm_script, refuses_values_that_would_break_the_script)
{
    return cr_make_param_array(s_bad_t, s_bads, sizeof s_bads / sizeof s_bads[0]);
}

ParameterizedTest(s_bad_t *bad, slurm_script, refuses_values_that_would_break_the_script)
{
    pd_slurm_opts_t o = s_opts();
    if (strcmp(bad->what, "broker") == 0)
        o.broker = bad->value;
    else if (strcmp(bad->what, "partition") == 0)
        o.partition = bad->value;
    else if (strcmp(bad->what, "time") == 0)
        o.time = bad->value;
    else if (strcmp(bad->what, "account") == 0)
        o.account = bad->value;
    else if (strcmp(bad->what, "job_name") == 0)
        o.job_name = bad->value;
    else if (strcmp(bad->what, "output") == 0)
        o.output = bad->value;
    else if (strcmp(bad->what, "sbatch") == 0)
        o.sbatch_args[o.nsbatch_args++] = bad->value;
    else if (strcmp(bad->what, "worker_arg") == 0)
        o.worker_args[o.nworker_args++] = bad->value;
    else
        o.worker_exe = bad->value;
    s_refused(&o, bad->needle);
}

Test(slurm_script, refuses_counts_out_of_range)
{
    pd_slurm_opts_t o = s_opts();
    o.workers = 0;
    s_refused(&o, "--workers");
    o = s_opts();
    o.cpus = 0;
    s_refused(&o, "--cpus-per-worker");
    o = s_opts();
    o.gpus = -1;
    s_refused(&o, "--gpus-per-worker");
    o = s_opts();
    o.idle_exit_s = -1;
    s_refused(&o, "--idle-exit");
}

/* ---- the real playdoh-submit ------------------------------------------ */

static char s_submit[1024];

static void s_find_submit(void)
{
    cr_assert_eq(pd_proc_find("playdoh-submit", s_submit, sizeof s_submit), 0,
                 "playdoh-submit not found: set PLAYDOH_BINDIR to the build directory");
}

/* Runs playdoh-submit with args through sh (PATH as given); returns its
   exit status, its stdout and its stderr. */
static int s_cli(const char *path, const char *args, char *out, size_t outcap, char *err,
                 size_t errcap)
{
    char cmd[4096];
    /* No configuration file or broker of this machine's leaks in. */
    snprintf(cmd, sizeof cmd, "unset PLAYDOH_BROKER; PLAYDOH_CONFIG=/dev/null PATH='%s' exec '%s' %s",
             path, s_submit, args);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    int st = pd_proc_capture(argv, NULL, 0, out, outcap, err, errcap, 30000);
    cr_assert(st >= 0 && WIFEXITED(st), "playdoh-submit did not exit: %d", st);
    return WEXITSTATUS(st);
}

TestSuite(slurm_cli, .init = s_find_submit, .timeout = 60);

Test(slurm_cli, dry_run_prints_the_script_and_submits_nothing)
{
    char out[8192], err[2048];
    /* No Slurm in PATH at all: a dry run needs none. */
    int rc = s_cli("/nonexistent", "slurm --workers 2 --cpus-per-worker 1 --broker "
                   "tcp://10.1.2.3:5555 --dry-run", out, sizeof out, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect(strstr(out, "#SBATCH --array=0-1\n"), "%s", out);
    cr_expect(strstr(out, "--broker 'tcp://10.1.2.3:5555' --cpus 1 --idle-exit 300 --control "
                          "none\n"), "%s", out);
    cr_expect(strstr(out, "/playdoh-worker' --broker"), "the worker beside playdoh-submit: %s",
              out);
}

Test(slurm_cli, global_options_before_the_verb_apply)
{
    char out[8192], err[2048];
    int rc = s_cli("/nonexistent", "--broker tcp://10.1.2.3:6000 -q slurm --workers 1 "
                   "--cpus-per-worker 2 --dry-run", out, sizeof out, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect(strstr(out, "'tcp://10.1.2.3:6000' --cpus 2"), "%s", out);
}

Test(slurm_cli, the_broker_may_come_from_the_configuration_file)
{
    char dir[] = "/tmp/pd-slurm-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char conf[128], args[512], out[8192], err[2048];
    snprintf(conf, sizeof conf, "%s/playdoh.conf", dir);
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fputs("[submit]\nbroker = tcp://head.example:7000\n", f);
    fclose(f);
    snprintf(args, sizeof args, "--config %s slurm --workers 1 --cpus-per-worker 1 --dry-run",
             conf);
    int rc = s_cli("/nonexistent", args, out, sizeof out, err, sizeof err);
    cr_expect_eq(rc, 0, "%s", err);
    cr_expect(strstr(out, "--broker 'tcp://head.example:7000'"), "%s", out);
    /* --broker wins over the file. */
    snprintf(args, sizeof args, "slurm --config %s --broker tcp://other:1 --workers 1 "
             "--cpus-per-worker 1 --dry-run", conf);
    rc = s_cli("/nonexistent", args, out, sizeof out, err, sizeof err);
    cr_expect_eq(rc, 0, "%s", err);
    cr_expect(strstr(out, "--broker 'tcp://other:1'"), "%s", out);
    unlink(conf);
    rmdir(dir);
}

Test(slurm_cli, without_sbatch_it_says_where_to_run)
{
    char out[1024], err[2048];
    int rc = s_cli("/nonexistent", "slurm --workers 2 --cpus-per-worker 1 --broker "
                   "tcp://10.1.2.3:5555", out, sizeof out, err, sizeof err);
    cr_expect_eq(rc, 3);
    cr_expect_str_eq(out, "");
    cr_expect(strstr(err, "sbatch not found in PATH"), "%s", err);
    cr_expect(strstr(err, "--dry-run"), "%s", err);
    rc = s_cli("/nonexistent", "slurm --cancel 1234_1", out, sizeof out, err, sizeof err);
    cr_expect_eq(rc, 3);
    cr_expect(strstr(err, "scancel not found in PATH"), "%s", err);
}

typedef struct {
    char args[128];  /* after `playdoh-submit` */
    char needle[64]; /* in its standard error */
} s_usage_t;

static s_usage_t s_usages[] = {
    {"slurm --cpus-per-worker 1 --broker tcp://h:1", "--workers N --cpus-per-worker C"},
    {"slurm --workers 2 --broker tcp://h:1", "--workers N --cpus-per-worker C"},
    {"slurm --workers two --cpus-per-worker 1 --broker tcp://h:1", "--workers wants"},
    {"slurm --workers 2 --cpus-per-worker 1", "--broker tcp://HOST:PORT"},
    {"slurm --workers 2 --cpus-per-worker 1 --broker tcp://h:1 --idle-exit soon", "--idle-exit"},
    {"slurm --workers 2 --cpus-per-worker 1 --broker tcp://h:1 --broker-key /nonexistent.pub",
     "--broker-key /nonexistent.pub: No such file"},
    {"slurm --workers 2 --cpus-per-worker 1 --broker tcp://h:1 --config-dir /etc/passwd",
     "is not a directory"},
    {"slurm --workers 2 --cpus-per-worker 1 --broker tcp://h:1 extra", "unexpected argument"},
    {"slurm --cancel 'x; reboot'", "is not a Slurm job id"},
    {"slurm --cancel 12 --workers 2", "--cancel takes nothing but the job id"},
    {"--local 2 slurm --workers 2 --cpus-per-worker 1", "--local"},
};

ParameterizedTestParameters(slurm_cli, bad_usage_exits_2_and_says_what_to_change)
{
    return cr_make_param_array(s_usage_t, s_usages, sizeof s_usages / sizeof s_usages[0]);
}

ParameterizedTest(s_usage_t *u, slurm_cli, bad_usage_exits_2_and_says_what_to_change)
{
    char out[1024], err[2048];
    int rc = s_cli("/nonexistent", u->args, out, sizeof out, err, sizeof err);
    cr_expect_eq(rc, 2, "%s: exit %d: %s", u->args, rc, err);
    cr_expect(strstr(err, u->needle), "%s: '%s' does not say '%s'", u->args, err, u->needle);
}

Test(slurm_cli, a_key_pair_others_can_read_is_refused)
{
    char dir[] = "/tmp/pd-slurm-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char key[128], args[512], out[1024], err[2048];
    snprintf(key, sizeof key, "%s/worker.key", dir);
    FILE *f = fopen(key, "w");
    cr_assert_not_null(f);
    fputs("not a real key\n", f);
    fclose(f);
    chmod(key, 0644);
    snprintf(args, sizeof args, "slurm --workers 1 --cpus-per-worker 1 --broker tcp://h:1 "
             "--worker-key %s --dry-run", key);
    int rc = s_cli("/nonexistent", args, out, sizeof out, err, sizeof err);
    cr_expect_eq(rc, 2);
    cr_expect(strstr(err, "chmod 600"), "%s", err);
    chmod(key, 0600);
    rc = s_cli("/nonexistent", args, out, sizeof out, err, sizeof err);
    cr_expect_eq(rc, 0, "%s", err);
    cr_expect(strstr(out, " --key '"), "%s", out);
    cr_expect_null(strstr(out, "not a real key"), "the key's contents are in the script");
    /* A certificate pair: the public file may be readable, its _secret not. */
    char sec[160];
    snprintf(sec, sizeof sec, "%s_secret", key);
    f = fopen(sec, "w");
    cr_assert_not_null(f);
    fputs("not a real secret\n", f);
    fclose(f);
    chmod(key, 0644);
    chmod(sec, 0640);
    rc = s_cli("/nonexistent", args, out, sizeof out, err, sizeof err);
    cr_expect_eq(rc, 2);
    cr_expect(strstr(err, "worker.key_secret holds a secret key"), "%s", err);
    chmod(sec, 0600);
    rc = s_cli("/nonexistent", args, out, sizeof out, err, sizeof err);
    cr_expect_eq(rc, 0, "%s", err);
    unlink(sec);
    unlink(key);
    rmdir(dir);
}
