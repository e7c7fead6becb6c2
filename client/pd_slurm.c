/*  pd_slurm: `playdoh-submit slurm`; see pd_slurm.h and docs/slurm.md.

    Why a job array rather than srun steps in one allocation: a pilot is an
    independent worker, so each one should be scheduled as soon as one
    node has C free CPUs (an allocation of N x C waits until all of it is
    free), should end on its own (time limit, pre-emption, scancel of one
    task) without taking the others down, and should give its CPUs back on
    its own idle time-out. Array tasks give exactly that, under one job id
    for the user (`scancel JOBID` ends them all, `scancel JOBID_I` one).
    Each task execs the worker in its batch step: no srun round trip, and
    Slurm's SIGTERM reaches the worker itself, which says `bye` so that the
    broker requeues its running jobs at once.

    Values that end up in the script are checked against the characters
    Slurm accepts (so no #SBATCH line can be bent), and every worker
    argument is single-quoted for the shell.
*/
#include "pd_slurm.h"
#include "pd_cli.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_error_int.h"
#include "pd_log.h"
#include "pd_proc.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_SBATCH_TIMEOUT_MS 120000 /* sbatch retries a busy controller for a while */
#define S_TOOL_OUT 8192            /* bytes kept of a Slurm command's output */

/* ---- checks ---------------------------------------------------------- */

static int s_fail(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int s_fail(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return PD_EINVAL;
}

/* True when every byte of s is a letter, a digit or one of extra. */
static bool s_only(const char *s, const char *extra)
{
    if (!*s)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  (*extra && strchr(extra, c));
        if (!ok)
            return false;
    }
    return true;
}

/* An endpoint compute nodes can connect to: tcp://HOST:PORT, HOST not a
   wildcard. Returns 0 or PD_EINVAL with why. */
static int s_check_endpoint(const char *ep, char *why, size_t cap)
{
    if (strncmp(ep, "tcp://", 6) != 0)
        return s_fail(why, cap, "--broker '%s': pilots connect over the network, so the broker "
                      "endpoint must be tcp://HOST:PORT (the broker's host name or address as "
                      "the compute nodes see it)", ep);
    const char *host = ep + 6, *colon = strrchr(host, ':');
    if (!colon || colon == host || !s_only(colon + 1, "") || atol(colon + 1) < 1 ||
        atol(colon + 1) > 65535 || strlen(colon + 1) > 5)
        return s_fail(why, cap, "--broker '%s' has no port: write tcp://HOST:PORT, e.g. "
                      "tcp://login1.cluster.example:5555", ep);
    size_t hl = (size_t) (colon - host);
    if ((hl == 1 && host[0] == '*') || (hl == 7 && strncmp(host, "0.0.0.0", 7) == 0) ||
        (hl == 4 && strncmp(host, "[::]", 4) == 0))
        return s_fail(why, cap, "--broker '%s' is a bind address: give the host name or address "
                      "the compute nodes connect to", ep);
    for (size_t i = 0; i < hl; i++)
        if (!s_only((char[]){host[i], 0}, ".-_[]:%"))
            return s_fail(why, cap, "--broker '%s': '%c' cannot appear in a host name", ep,
                          host[i]);
    return 0;
}

/* True for an endpoint only this machine can reach. */
static bool s_is_loopback(const char *ep)
{
    const char *host = strncmp(ep, "tcp://", 6) == 0 ? ep + 6 : ep;
    return strncmp(host, "127.", 4) == 0 || strncmp(host, "localhost:", 10) == 0 ||
           strncmp(host, "[::1]:", 6) == 0;
}

/* ---- the script ------------------------------------------------------ */

static void s_put(pd_buf_t *b, const char *s) { pd_buf_append(b, s, strlen(s)); }

static void s_putf(pd_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_putf(pd_buf_t *b, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        pd_buf_append(b, line, (size_t) n < sizeof line ? (size_t) n : sizeof line - 1);
}

/* Appends s single-quoted for the shell: ' becomes '\''. */
static void s_put_quoted(pd_buf_t *b, const char *s)
{
    s_put(b, " '");
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            s_put(b, "'\\''");
        else
            pd_buf_append(b, p, 1);
    }
    s_put(b, "'");
}

/* Checks a value that goes on an #SBATCH line. */
static int s_check_directive(const char *opt, const char *v, const char *extra, const char *what,
                             char *why, size_t cap)
{
    if (v && !s_only(v, extra))
        return s_fail(why, cap, "%s '%s': %s may hold only letters, digits and '%s'", opt, v, what,
                      extra);
    return 0;
}

/* Checks a worker argument (quoted in the script, so any byte but a line
   break goes; a break would end the command). */
static int s_check_arg(const char *opt, const char *v, char *why, size_t cap)
{
    if (!*v || strpbrk(v, "\n\r"))
        return s_fail(why, cap, "%s: an empty value or one with a line break cannot be passed to "
                      "the workers", opt);
    return 0;
}

/* Checks the pilots' options before anything is written: each value
   within its bounds and fit for the script (no spaces or quotes where
   sbatch reads it). Returns 0 or PD_EINVAL with the sentence in why. */
static int s_check_opts(const pd_slurm_opts_t *o, const char *name, const char *output,
                        char *why, size_t cap)
{
    int rc;
    if (o->workers < 1 || o->workers > PD_SLURM_MAX_WORKERS)
        return s_fail(why, cap, "--workers wants a number of pilots from 1 to %d",
                      PD_SLURM_MAX_WORKERS);
    if (o->cpus < 1 || o->cpus > 4096)
        return s_fail(why, cap, "--cpus-per-worker wants a number of CPUs from 1 to 4096");
    if (o->gpus < 0 || o->gpus > 1024)
        return s_fail(why, cap, "--gpus-per-worker wants a number of GPUs from 0 to 1024");
    if (!(o->idle_exit_s >= 0 && o->idle_exit_s <= 31536000))
        return s_fail(why, cap, "--idle-exit wants seconds from 0 (never) to 31536000");
    if (!o->broker || !*o->broker)
        return s_fail(why, cap, "slurm needs the broker endpoint the compute nodes connect to: "
                      "--broker tcp://HOST:PORT (or $PLAYDOH_BROKER)");
    if ((rc = s_check_endpoint(o->broker, why, cap)))
        return rc;
    if (!o->worker_exe || !*o->worker_exe)
        return s_fail(why, cap, "no playdoh-worker to run: give its path on the compute nodes "
                      "with --worker-exe PATH");
    if ((rc = s_check_directive("--partition", o->partition, "._-,", "a partition list", why,
                                cap)) ||
        (rc = s_check_directive("--time", o->time, ":-", "a time limit (minutes, MM:SS, "
                                "HH:MM:SS or D-HH:MM:SS)", why, cap)) ||
        (rc = s_check_directive("--account", o->account, "._-", "an account", why, cap)) ||
        (rc = s_check_directive("--job-name", name, "._-+", "a job name", why, cap)) ||
        (rc = s_check_directive("--output", output, "._-+%/=,@~", "a file pattern (no spaces or "
                                "quotes)", why, cap)))
        return rc;
    for (int i = 0; i < o->nsbatch_args; i++) {
        const char *a = o->sbatch_args[i];
        if (strncmp(a, "--", 2) != 0 || !s_only(a + 2, "._-+=:,%/@~[]"))
            return s_fail(why, cap, "--sbatch-arg '%s': write one sbatch option as --name=value "
                          "without spaces or quotes, e.g. --sbatch-arg=--mem=4G", a);
        static const char *const ours[] = {"--array", "--ntasks", "--nodes", "--cpus-per-task"};
        for (size_t k = 0; k < sizeof ours / sizeof ours[0]; k++) {
            size_t l = strlen(ours[k]);
            if (strncmp(a, ours[k], l) == 0 && (a[l] == '=' || a[l] == 0))
                return s_fail(why, cap, "--sbatch-arg '%s': %s is set by playdoh-submit slurm "
                              "(use --workers and --cpus-per-worker)", a, ours[k]);
        }
    }
    const char *files[][2] = {{"--broker-key", o->broker_key}, {"--worker-key", o->worker_key},
                              {"--config-dir", o->config_dir}, {"--worker-exe", o->worker_exe}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (files[i][1] && (rc = s_check_arg(files[i][0], files[i][1], why, cap)))
            return rc;
    for (int i = 0; i < o->nworker_args; i++)
        if ((rc = s_check_arg("--worker-arg", o->worker_args[i], why, cap)))
            return rc;
    return 0;
}

int pd_slurm_script(const pd_slurm_opts_t *o, pd_buf_t *out, char *why, size_t cap)
{
    const char *name = o->job_name ? o->job_name : "playdoh-pilot";
    const char *output = o->output ? o->output : "playdoh-pilot-%A_%a.log";
    int rc = s_check_opts(o, name, output, why, cap);
    if (rc)
        return rc;
    char idle[32];
    snprintf(idle, sizeof idle, "%.6g", o->idle_exit_s);
    s_put(out, "#!/bin/bash\n");
    s_putf(out, "# Playdoh pilot workers, written by `playdoh-submit slurm`. Submit it with\n"
                "# `sbatch FILE`. Each task of this job array is one pilot: a playdoh-worker\n"
                "# that joins the broker at %s with %d CPU slot%s%s,\n"
                "# runs its jobs, and leaves after %s s without a job (0: never).\n"
                "# `scancel JOBID` ends every pilot, `scancel JOBID_I` pilot I; the broker\n"
                "# requeues the jobs a pilot was running when it ended.\n",
            o->broker, o->cpus, o->cpus > 1 ? "s" : "", o->gpus ? " and GPUs" : "", idle);
    s_putf(out, "#SBATCH --job-name=%s\n", name);
    s_putf(out, "#SBATCH --array=0-%d\n", o->workers - 1);
    s_put(out, "#SBATCH --nodes=1\n#SBATCH --ntasks=1\n");
    s_putf(out, "#SBATCH --cpus-per-task=%d\n", o->cpus);
    if (o->gpus)
        s_putf(out, "#SBATCH --gres=gpu:%d\n", o->gpus);
    if (o->partition)
        s_putf(out, "#SBATCH --partition=%s\n", o->partition);
    if (o->time)
        s_putf(out, "#SBATCH --time=%s\n", o->time);
    if (o->account)
        s_putf(out, "#SBATCH --account=%s\n", o->account);
    s_putf(out, "#SBATCH --output=%s\n", output);
    for (int i = 0; i < o->nsbatch_args; i++)
        s_putf(out, "#SBATCH %s\n", o->sbatch_args[i]);
    s_put(out, "\n# exec: Slurm's SIGTERM (scancel, time limit, pre-emption) reaches the worker,\n"
               "# which says bye so that its running jobs are requeued at once.\n"
               "exec");
    s_put_quoted(out, o->worker_exe);
    s_put(out, " --broker");
    s_put_quoted(out, o->broker);
    s_putf(out, " --cpus %d", o->cpus);
    if (o->gpus)
        s_putf(out, " --gpus %d", o->gpus);
    /* No control socket: Slurm, not a machine's owner, decides the slots,
       and pilots sharing a node would contend for the default one. */
    s_putf(out, " --idle-exit %s --control none", idle);
    if (o->broker_key) {
        s_put(out, " --broker-key");
        s_put_quoted(out, o->broker_key);
    }
    if (o->worker_key) {
        s_put(out, " --key");
        s_put_quoted(out, o->worker_key);
    }
    if (o->config_dir) {
        s_put(out, " --config-dir");
        s_put_quoted(out, o->config_dir);
    }
    for (int i = 0; i < o->nworker_args; i++)
        s_put_quoted(out, o->worker_args[i]);
    s_put(out, "\n");
    return out->failed ? s_fail(why, cap, "out of memory writing the script") : 0;
}

/* ---- running Slurm's commands ---------------------------------------- */

/* Finds a program in PATH; returns 0 with its path in out, or PD_EIO. */
static int s_which(const char *name, char *out, size_t cap)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *end = strchr(path, ':');
        size_t len = end ? (size_t) (end - path) : strlen(path);
        if (len)
            snprintf(out, cap, "%.*s/%s", (int) len, path, name);
        else
            snprintf(out, cap, "./%s", name);
        struct stat st;
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return 0;
        if (!end)
            break;
        path = end + 1;
    }
    return PD_EIO;
}

/* Trims trailing white space in place. */
static char *s_trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
    return s;
}

/* Runs a Slurm command; prints why it failed. Returns 0 or 3. */
static int s_run_tool(const char *tool, char **argv, const char *input, size_t inlen, char *out,
                      size_t outcap)
{
    char path[PATH_MAX];
    if (s_which(tool, path, sizeof path)) {
        fprintf(stderr, "playdoh-submit: slurm: %s not found in PATH: run this on a machine where "
                        "Slurm's commands work (a login node of the cluster), or use --dry-run "
                        "and submit the script there\n", tool);
        return 3;
    }
    argv[0] = path;
    char err[S_TOOL_OUT];
    int st = pd_proc_capture(argv, input, inlen, out, outcap, err, sizeof err,
                             S_SBATCH_TIMEOUT_MS);
    s_trim(err);
    if (st == PD_ETIMEDOUT) {
        fprintf(stderr, "playdoh-submit: slurm: %s did not answer within %d s (is slurmctld "
                        "up? `sinfo` tells)%s%s\n", tool, S_SBATCH_TIMEOUT_MS / 1000,
                err[0] ? ": " : "", err);
        return 3;
    }
    if (st < 0) {
        fprintf(stderr, "playdoh-submit: slurm: cannot run %s: %s\n", path, pd_strerror(st));
        return 3;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char how[64];
        if (WIFEXITED(st))
            snprintf(how, sizeof how, "exit status %d", WEXITSTATUS(st));
        else
            snprintf(how, sizeof how, "signal %d", WTERMSIG(st));
        fprintf(stderr, "playdoh-submit: slurm: %s failed (%s)%s%s\n", tool, how,
                err[0] ? ": " : "", err[0] ? err : "(it wrote nothing on standard error)");
        return 3;
    }
    if (err[0])
        pd_log_info("%s: %s", tool, err);
    return 0;
}

/* ---- the verb -------------------------------------------------------- */

static void s_usage(FILE *f)
{
    fprintf(f,
        "usage: playdoh-submit slurm --workers N --cpus-per-worker C [options]\n"
        "       playdoh-submit slurm --cancel JOBID\n"
        "\n"
        "Runs N playdoh-worker pilots as a Slurm job array: each array task joins the\n"
        "broker with C CPU slots and leaves after --idle-exit seconds without a job.\n"
        "Prints the Slurm job id (cancel with --cancel JOBID or scancel JOBID).\n"
        "\n"
        "  --workers N            pilots (array tasks 0..N-1)\n"
        "  --cpus-per-worker C    CPU slots of each pilot (Slurm --cpus-per-task)\n"
        "  --gpus-per-worker G    GPUs of each pilot (Slurm --gres=gpu:G)\n"
        "  --partition P          Slurm partition (default: the site's)\n"
        "  --time T               time limit of each pilot (MM, HH:MM:SS, D-HH:MM:SS)\n"
        "  --account A            account to charge\n"
        "  -b, --broker EP        broker endpoint as the compute nodes see it,\n"
        "                         tcp://HOST:PORT (default: $PLAYDOH_BROKER, else [submit]\n"
        "                         broker of the configuration file)\n"
        "  --config FILE          read this configuration file only\n"
        "  --idle-exit S          pilots leave after S seconds without a job (default %g;\n"
        "                         0: they stay until their time limit)\n"
        "  --job-name NAME        Slurm job name (default playdoh-pilot)\n"
        "  --output PATTERN       pilots' log files (default playdoh-pilot-%%A_%%a.log)\n"
        "  --worker-exe PATH      playdoh-worker on the compute nodes (default: the one\n"
        "                         installed beside playdoh-submit)\n"
        "  --broker-key FILE      file of the broker's public key (passed to the workers)\n"
        "  --worker-key FILE      file of the workers' key pair (mode 0600: never a key on\n"
        "                         the command line)\n"
        "  --config-dir DIR       the workers' configuration directory (trusted brokers)\n"
        "  --worker-arg ARG       one more playdoh-worker argument (repeatable)\n"
        "  --sbatch-arg OPT       one more sbatch option, e.g. --sbatch-arg=--mem=4G\n"
        "  --dry-run              print the batch script instead of submitting it\n"
        "  --cancel JOBID         cancel pilots: JOBID (all) or JOBID_I (one), with scancel\n"
        "  -q, --quiet            no summary on standard error\n"
        "  -h, --help             this help\n"
        "\n"
        "exit status: 0 done, 2 bad usage, 3 Slurm missing or refusing (its message shown)\n",
        PD_SLURM_IDLE_EXIT_S);
}

static int s_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int s_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "playdoh-submit: slurm: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(run playdoh-submit slurm --help for usage)\n");
    return 2;
}

static bool s_int(const char *s, int min, int max, int *v)
{
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (errno || end == s || *end || x < min || x > max)
        return false;
    *v = (int) x;
    return true;
}

/* Makes a path absolute (the job may start elsewhere) and checks that it
   is a file (dir false) or a directory; a key pair must not be readable by
   others. Writes the absolute path into out. Returns 0 or 2. */
static int s_check_path(const char *opt, const char *path, bool dir, bool secret,
                        char out[PATH_MAX])
{
    if (!realpath(path, out))
        return s_usage_error("%s %s: %s", opt, path, strerror(errno));
    struct stat st;
    if (stat(out, &st))
        return s_usage_error("%s %s: %s", opt, path, strerror(errno));
    if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
        return s_usage_error("%s %s is not a %s", opt, path, dir ? "directory" : "file");
    if (access(out, R_OK))
        return s_usage_error("%s %s cannot be read: %s", opt, path, strerror(errno));
    if (!secret)
        return 0;
    /* A key pair is FILE and its secret FILE_secret (CurveZMQ certificates),
       or one file holding both: whichever holds the secret must be yours. */
    char sec[PATH_MAX + 8];
    snprintf(sec, sizeof sec, "%s_secret", out);
    struct stat ss;
    bool split = stat(sec, &ss) == 0;
    if ((split ? ss.st_mode : st.st_mode) & 077)
        return s_usage_error("%s: %s holds a secret key but others may read it: chmod 600 %s",
                             opt, split ? sec : out, split ? sec : out);
    return 0;
}

static int s_cancel(const char *jobid, bool quiet)
{
    /* JOBID, JOBID_I or JOBID_[list], as scancel takes them. */
    if (!s_only(jobid, "_[]-,") || jobid[0] < '0' || jobid[0] > '9')
        return s_usage_error("--cancel '%s' is not a Slurm job id (like 1234 or 1234_0)", jobid);
    char *argv[] = {"scancel", (char *) jobid, NULL};
    char out[S_TOOL_OUT];
    int rc = s_run_tool("scancel", argv, NULL, 0, out, sizeof out);
    if (rc == 0 && !quiet)
        fprintf(stderr, "playdoh-submit: slurm: cancelled Slurm job %s; the broker requeues the "
                        "jobs its pilots were running\n", jobid);
    return rc;
}

/* Writes the script for o and submits it (or prints it). Returns the exit
   status. */
static int s_submit(const pd_slurm_opts_t *o_in, bool dry, bool quiet)
{
    pd_slurm_opts_t o = *o_in;
    char exe[PATH_MAX];
    if (!o.worker_exe) {
        if (pd_proc_find("playdoh-worker", exe, sizeof exe))
            return s_usage_error("%s", "playdoh-worker is not installed beside playdoh-submit: "
                                 "give its path on the compute nodes with --worker-exe PATH");
        o.worker_exe = exe;
    }
    pd_buf_t script;
    pd_buf_init(&script);
    char why[512];
    if (pd_slurm_script(&o, &script, why, sizeof why)) {
        pd_buf_free(&script);
        return s_usage_error("%s", why);
    }
    if (s_is_loopback(o.broker) && !quiet)
        fprintf(stderr, "playdoh-submit: slurm: warning: the broker endpoint %s is on loopback: "
                        "only pilots placed on this very machine can reach it\n", o.broker);
    if (dry) {
        fwrite(script.data, 1, script.len, stdout);
        pd_buf_free(&script);
        return 0;
    }
    char *sargv[] = {"sbatch", "--parsable", NULL};
    char out[S_TOOL_OUT];
    int rc = s_run_tool("sbatch", sargv, (const char *) script.data, script.len, out, sizeof out);
    pd_buf_free(&script);
    if (rc)
        return rc;
    /* --parsable: "JOBID" or "JOBID;CLUSTER" on the last line. */
    s_trim(out);
    char *id = strrchr(out, '\n');
    id = id ? id + 1 : out;
    id[strcspn(id, ";")] = 0;
    if (!*id || !s_only(id, "")) {
        fprintf(stderr, "playdoh-submit: slurm: sbatch succeeded but printed no job id ('%s')\n",
                out);
        return 3;
    }
    printf("%s\n", id);
    fflush(stdout);
    if (!quiet)
        fprintf(stderr, "playdoh-submit: slurm: submitted %d pilot worker%s of %d CPU%s as Slurm "
                        "job %s (array 0-%d) for broker %s; cancel with: playdoh-submit slurm "
                        "--cancel %s\n", o.workers, o.workers > 1 ? "s" : "", o.cpus,
                o.cpus > 1 ? "s" : "", id, o.workers - 1, o.broker, id);
    return 0;
}

/* The options of slurm (its own, parsed here: playdoh-submit hands it the
   words after the verb). */
enum {
    O_WORKERS = 256, O_CPUS, O_GPUS, O_PARTITION, O_TIME, O_ACCOUNT, O_IDLE, O_NAME, O_OUTPUT,
    O_EXE, O_BKEY, O_WKEY, O_CONFIG, O_WARG, O_SARG, O_DRY, O_CANCEL, O_LEVEL, O_LOCAL,
    O_FILE
};
static const struct option s_longs[] = {
    {"workers", required_argument, NULL, O_WORKERS},
    {"cpus-per-worker", required_argument, NULL, O_CPUS},
    {"gpus-per-worker", required_argument, NULL, O_GPUS},
    {"partition", required_argument, NULL, O_PARTITION},
    {"time", required_argument, NULL, O_TIME},
    {"account", required_argument, NULL, O_ACCOUNT},
    {"broker", required_argument, NULL, 'b'},
    {"idle-exit", required_argument, NULL, O_IDLE},
    {"job-name", required_argument, NULL, O_NAME},
    {"output", required_argument, NULL, O_OUTPUT},
    {"worker-exe", required_argument, NULL, O_EXE},
    {"broker-key", required_argument, NULL, O_BKEY},
    {"worker-key", required_argument, NULL, O_WKEY},
    {"config-dir", required_argument, NULL, O_CONFIG},
    {"worker-arg", required_argument, NULL, O_WARG},
    {"sbatch-arg", required_argument, NULL, O_SARG},
    {"dry-run", no_argument, NULL, O_DRY},
    {"cancel", required_argument, NULL, O_CANCEL},
    {"quiet", no_argument, NULL, 'q'},
    {"log-level", required_argument, NULL, O_LEVEL},
    {"local", required_argument, NULL, O_LOCAL},
    {"config", required_argument, NULL, O_FILE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

/* What slurm's command line says. */
typedef struct {
    pd_slurm_opts_t o;        /* the pilots */
    bool dry, quiet;          /* --dry-run, --quiet */
    bool have_workers;        /* --workers given */
    bool have_cpus;           /* --cpus-per-worker given */
    const char *cancel;       /* --cancel JOB, or NULL */
    const char *config;       /* --config FILE, or NULL */
    char bkey[PATH_MAX];      /* --broker-key, checked */
    char wkey[PATH_MAX];      /* --worker-key, checked */
    char cdir[PATH_MAX];      /* --config-dir, checked */
} s_cmdline_t;

/* Reads optarg, the value of option opt, into *v: what ("a number") from
   min to max. False after saying what is wrong (a usage error). */
static bool s_int_opt(const char *opt, const char *what, int min, int max, int *v)
{
    if (s_int(optarg, min, max, v))
        return true;
    s_usage_error("%s wants %s from %d to %d, not '%s'", opt, what, min, max, optarg);
    return false;
}

/* Applies option ch (getopt_long's, its value in optarg) to a. Returns -1
   to go on, else the exit status (0 after --help, 2 after a usage error). */
static int s_apply(s_cmdline_t *a, int ch, char **argv)
{
    switch (ch) {
    case O_WORKERS:
        if (!s_int_opt("--workers", "a number of pilots", 1, PD_SLURM_MAX_WORKERS, &a->o.workers))
            return 2;
        a->have_workers = true;
        break;
    case O_CPUS:
        if (!s_int_opt("--cpus-per-worker", "a number", 1, 4096, &a->o.cpus))
            return 2;
        a->have_cpus = true;
        break;
    case O_GPUS:
        if (!s_int_opt("--gpus-per-worker", "a number", 0, 1024, &a->o.gpus))
            return 2;
        break;
    case O_PARTITION: a->o.partition = optarg; break;
    case O_TIME: a->o.time = optarg; break;
    case O_ACCOUNT: a->o.account = optarg; break;
    case 'b': a->o.broker = optarg; break;
    case O_IDLE: {
        char *end;
        a->o.idle_exit_s = strtod(optarg, &end);
        if (end == optarg || *end || !(a->o.idle_exit_s >= 0 && a->o.idle_exit_s <= 31536000))
            return s_usage_error("--idle-exit wants seconds from 0 (never) to 31536000, not "
                                 "'%s'", optarg);
        break;
    }
    case O_NAME: a->o.job_name = optarg; break;
    case O_OUTPUT: a->o.output = optarg; break;
    case O_EXE: a->o.worker_exe = optarg; break;
    case O_BKEY:
        if (s_check_path("--broker-key", optarg, false, false, a->bkey))
            return 2;
        a->o.broker_key = a->bkey;
        break;
    case O_WKEY:
        if (s_check_path("--worker-key", optarg, false, true, a->wkey))
            return 2;
        a->o.worker_key = a->wkey;
        break;
    case O_CONFIG:
        if (s_check_path("--config-dir", optarg, true, false, a->cdir))
            return 2;
        a->o.config_dir = a->cdir;
        break;
    case O_WARG:
        if (a->o.nworker_args == PD_SLURM_MAX_EXTRA)
            return s_usage_error("at most %d --worker-arg", PD_SLURM_MAX_EXTRA);
        a->o.worker_args[a->o.nworker_args++] = optarg;
        break;
    case O_SARG:
        if (a->o.nsbatch_args == PD_SLURM_MAX_EXTRA)
            return s_usage_error("at most %d --sbatch-arg", PD_SLURM_MAX_EXTRA);
        a->o.sbatch_args[a->o.nsbatch_args++] = optarg;
        break;
    case O_DRY: a->dry = true; break;
    case O_CANCEL: a->cancel = optarg; break;
    case 'q': a->quiet = true; break;
    case O_LEVEL: {
        pd_log_level_t lv;
        if (pd_log_parse_level(optarg, &lv))
            return s_usage_error("--log-level wants error, warn, info or debug, not '%s'",
                                 optarg);
        pd_log_set_level(lv);
        break;
    }
    case O_FILE: a->config = optarg; break;
    case O_LOCAL:
        return s_usage_error("%s", "--local runs an embedded cluster on this machine; pilots "
                             "need a broker the compute nodes reach (--broker)");
    case 'h': s_usage(stdout); return 0;
    default:
        pd_cli_option_error("playdoh-submit", "playdoh-submit slurm", argv[optind - 1], optopt,
                            ch == ':');
        return 2;
    }
    return PD_EXIT_GO_ON;
}

int pd_slurm_main(int argc, char **argv, const pd_slurm_globals_t *g)
{
    const char *env = getenv("PLAYDOH_BROKER");
    s_cmdline_t a = {.o = {.idle_exit_s = PD_SLURM_IDLE_EXIT_S,
                           .broker = g && g->broker ? g->broker : env && *env ? env : NULL},
                     .quiet = g && g->quiet, .config = g ? g->config : NULL};
    optind = 0; /* glibc: start afresh (the caller has parsed its own options) */
    opterr = 0; /* our own messages, below */
    int ch;
    while ((ch = getopt_long(argc, argv, ":b:qh", s_longs, NULL)) != -1) {
        int rc = s_apply(&a, ch, argv);
        if (rc != PD_EXIT_GO_ON)
            return rc;
    }
    if (optind < argc && strcmp(argv[optind], "slurm") == 0)
        optind++; /* the verb itself, when the caller left it in */
    if (optind < argc)
        return s_usage_error("unexpected argument '%s'", argv[optind]);
    if (a.cancel) {
        if (a.have_workers || a.dry)
            return s_usage_error("%s", "--cancel takes nothing but the job id");
        return s_cancel(a.cancel, a.quiet);
    }
    if (!a.have_workers || !a.have_cpus)
        return s_usage_error("%s", "say how many pilots and how many CPUs each: --workers N "
                             "--cpus-per-worker C");
    /* The broker: --broker, $PLAYDOH_BROKER, else the configuration file's
       [submit] broker. No beacon: compute nodes are seldom on the
       submitting machine's LAN. */
    pd_config_t *cf = NULL;
    if (!a.o.broker || !*a.o.broker) {
        char why[1024];
        cf = pd_config_new();
        if (!cf || pd_config_load_default(cf, a.config, why, sizeof why)) {
            fprintf(stderr, "playdoh-submit: slurm: %s\n", cf ? why : "out of memory");
            pd_config_destroy(&cf);
            return 2;
        }
        a.o.broker = pd_config_str(cf, "submit", "broker", NULL);
    }
    int rc = s_submit(&a.o, a.dry, a.quiet);
    pd_config_destroy(&cf);
    return rc;
}
