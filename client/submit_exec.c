/*  playdoh-submit exec: GNU parallel's habits on a Playdoh cluster.

        seq 1 100 | playdoh-submit exec -- gzip -9 data/{}.csv
        playdoh-submit --local 4 exec --joblog jobs.log -- ./simulate {} ::: a b c

    Each argument line (standard input, --args FILE, or the words after
    `:::`) fills the command template (pd_template.h) into one shell command,
    submitted as a job of the built-in task `exec` (pd_exec in playdoh.h).
    Each job's standard output and standard error are printed whole, in input
    order unless --no-keep-order; --joblog writes GNU parallel's job log. The
    exit status is GNU parallel's: the number of failed jobs (101 for more
    than 100), 255 for anything else that went wrong.
*/
#include "submit.h"
#include "pd_error_int.h"
#include "pd_plat.h"

#include "pd_codec.h"
#include "pd_file.h"
#include "pd_template.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define S_ERROR PD_EXIT_EXEC_ERROR /* GNU parallel's exit status for errors other than failed jobs */

static const char S_USAGE[] =
    "usage: playdoh-submit [GLOBAL OPTIONS] exec [OPTIONS] [--] COMMAND [WORDS...] [::: ARGS...]\n"
    "\n"
    "Runs COMMAND once per argument line (standard input, --args FILE, or the words after\n"
    ":::) through /bin/sh on the workers, as GNU parallel does. Replacement strings:\n"
    "  {}  the line   {.}  without extension   {/}  base name   {//}  directory\n"
    "  {/.}  base name without extension   {#}  job number (from 1)\n"
    "Each value is quoted for the shell. Without any of them, \" {}\" is appended.\n"
    "Each job's standard output and error are printed whole, in input order.\n"
    "\n"
    "options:\n"
    "  -a, --args FILE      argument lines from FILE ('-': standard input, the default)\n"
    "  -k, --keep-order     print in input order (the default)\n"
    "      --no-keep-order  print each job's output as soon as it ends\n"
    "      --joblog FILE    write a GNU parallel job log (Seq Host Starttime JobRuntime ...)\n"
    "      --timeout-ms N   kill a command that runs longer than N ms\n"
    "      --retries N      workers a job may lose (a worker that dies or falls silent\n"
    "                       while running it) before it fails (default 3)\n"
    "      --retry-failed N run a job again, up to N times, when its own run failed\n"
    "                       (an error returned, a crash, --timeout-ms) (default 0)\n"
    "      --max-slots N    run at most N commands at once (default: fair share)\n"
    "      --memory SIZE    each command's memory at most (2G, 512M); over it the job\n"
    "                       fails with PD_ELIMIT; it runs only where the owner allows it\n"
    "      --cpu-time TIME  CPU time of each process of a command at most (60s, 5m)\n"
    "      --max-output SIZE  output kept per stream (default 4M, at most 64M); the\n"
    "                       rest is dropped and counted\n"
    "      --workdir DIR    run each command in DIR on its worker, which must see DIR\n"
    "                       (a shared file system: docs/cluster.md). Default: this\n"
    "                       directory when the worker sees it, else a scratch directory\n"
    "      --transfer FILE  send FILE (a path under this directory; {} and the other\n"
    "                       replacement strings name one per job) with each job, into\n"
    "                       its scratch directory, at the same relative path\n"
    "      --return FILE    bring FILE back from the job's directory into this one, at\n"
    "                       the same relative path (replacement strings too)\n"
    "      --force          replace files that --return would write over (else refused)\n"
    "      --detach         print the job ids and return without waiting\n"
    "      --dry-run        print the commands instead of running them\n"
    "\n"
    "Ctrl-C cancels the jobs not done and prints what ended, then {\"cancelled\":true,\n"
    "\"job\":ID} for each of the others; a second Ctrl-C quits at once.\n"
    "\n"
    "exit status (GNU parallel's): the number of failed jobs, 101 for more than 100,\n"
    "255 for bad usage, unreadable input or a broker problem; 130 after Ctrl-C\n";

static const pd_submit_opt_t s_opts[] = {
    PD_SUBMIT_LIMIT_OPTS,
    {"detach", no_argument, O_DETACH},
    {"args", required_argument, O_ARGS},
    {"keep-order", no_argument, O_KEEP},
    {"no-keep-order", no_argument, O_NO_KEEP},
    {"joblog", required_argument, O_JOBLOG},
    {"dry-run", no_argument, O_DRY_RUN},
    {"workdir", required_argument, O_WORKDIR},
    {"transfer", required_argument, O_TRANSFER},
    {"return", required_argument, O_RETURN},
    {"force", no_argument, O_FORCE},
    {NULL, 0, 0},
};

/* Applies one of exec's own options. */
static int s_apply(pd_submit_t *s, int code, const char *arg, int bad_exit)
{
    pd_submit_opts_t *o = &s->o;
    switch (code) {
    case O_KEEP: o->keep_order = true; break;
    case O_NO_KEEP: o->keep_order = false; break;
    case O_JOBLOG: o->joblog = arg; break;
    case O_DRY_RUN: o->dry_run = true; break;
    case O_WORKDIR:
        if (!*arg) {
            pd_submit_usage_error(s, "--workdir wants a directory, not ''");
            return bad_exit;
        }
        o->workdir = arg;
        break;
    case O_TRANSFER:
    case O_RETURN: {
        const char **list = code == O_TRANSFER ? o->transfer : o->ret;
        size_t *n = code == O_TRANSFER ? &o->ntransfer : &o->nret;
        if (*n == PD_EXEC_MAX_FILES) {
            pd_submit_usage_error(s, "%s is given more than %d times; send a directory's files "
                                  "as one archive (tar), or use a shared file system with "
                                  "--workdir", code == O_TRANSFER ? "--transfer" : "--return",
                                  PD_EXEC_MAX_FILES);
            return bad_exit;
        }
        list[(*n)++] = arg;
        break;
    }
    case O_FORCE: o->force = true; break;
    default: break;
    }
    return 0;
}

/* The commands of one run: NUL-terminated, back to back; and each job's
   files (--transfer, then --return), k names a job, the same way. */
typedef struct {
    pd_buf_t text;  /* the commands, each followed by a NUL */
    size_t *off;    /* offset of command i in text */
    size_t n;       /* commands */
    size_t cap;     /* capacity of off */
    const pd_submit_opts_t *o; /* the templates of --transfer and --return */
    size_t k;       /* names a job: o->ntransfer + o->nret */
    pd_buf_t names; /* the names, each followed by a NUL */
    size_t *noff;   /* offset of job i's name m in names: noff[i * k + m] */
} s_cmds_t;

static int s_cmds_add(s_cmds_t *c, const char *tmpl, const char *arg, size_t len)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        size_t *o = realloc(c->off, cap * sizeof *o);
        if (!o)
            return PD_ENOMEM;
        c->off = o;
        if (c->k) {
            size_t *no = realloc(c->noff, cap * c->k * sizeof *no);
            if (!no)
                return PD_ENOMEM;
            c->noff = no;
        }
        c->cap = cap;
    }
    size_t at = c->text.len, nat = c->names.len;
    int rc = pd_template_expand(tmpl, arg, len, c->n + 1, &c->text);
    if (!rc)
        rc = pd_buf_append(&c->text, "", 1);
    for (size_t m = 0; m < c->k && !rc; m++) {
        c->noff[c->n * c->k + m] = c->names.len;
        const char *t = m < c->o->ntransfer ? c->o->transfer[m] : c->o->ret[m - c->o->ntransfer];
        rc = pd_template_expand_name(t, arg, len, c->n + 1, &c->names);
        if (!rc)
            rc = pd_buf_append(&c->names, "", 1);
    }
    if (rc) {
        c->text.len = at;
        c->names.len = nat;
        return rc;
    }
    c->off[c->n++] = at;
    return 0;
}

static const char *s_cmd(const s_cmds_t *c, size_t i)
{
    return (const char *) c->text.data + c->off[i];
}

/* Job i's name m (--transfer names first, then --return ones). */
static const char *s_name(const s_cmds_t *c, size_t i, size_t m)
{
    return (const char *) c->names.data + c->noff[i * c->k + m];
}

/* A --return name and its job, for finding two jobs that write one file. */
typedef struct {
    const char *name;
    size_t job;
} s_ret_t;

static int s_ret_cmp(const void *a, const void *b)
{
    const s_ret_t *x = a, *y = b;
    int d = strcmp(x->name, y->name);
    return d ? d : (x->job > y->job) - (x->job < y->job);
}

/* Checks the files of --transfer and --return before anything is sent:
   names that stay in this directory, files to send that exist, no file
   returned twice, none written over without --force. Returns 0 or S_ERROR
   after saying why. */
static int s_check_files(const pd_submit_t *s, const s_cmds_t *c)
{
    const pd_submit_opts_t *o = &s->o;
    for (size_t i = 0; i < c->n; i++)
        for (size_t m = 0; m < c->k; m++) {
            const char *name = s_name(c, i, m);
            const char *flag = m < o->ntransfer ? "--transfer" : "--return";
            char why[128];
            struct stat st;
            if (pd_file_check_relative(name, strlen(name), why, sizeof why)) {
                fprintf(stderr, "playdoh-submit: exec: job %zu: %s '%s' %s: files travel "
                        "between this directory and the job's, so name them by a relative "
                        "path below this directory\n", i + 1, flag, name, why);
                return S_ERROR;
            }
            if (m >= o->ntransfer)
                continue;
            bool found = stat(name, &st) == 0;
            if (!found || !S_ISREG(st.st_mode)) {
                fprintf(stderr, "playdoh-submit: exec: job %zu: --transfer %s: %s\n", i + 1,
                        name, found ? "not a regular file (send a directory as one archive)"
                                    : strerror(errno));
                return S_ERROR;
            }
        }
    if (!o->nret)
        return 0;
    size_t nr = c->n * o->nret;
    s_ret_t *all = malloc(nr * sizeof *all);
    if (!all) {
        fprintf(stderr, "playdoh-submit: exec: out of memory checking %zu names\n", nr);
        return S_ERROR;
    }
    for (size_t i = 0; i < c->n; i++)
        for (size_t m = 0; m < o->nret; m++)
            all[i * o->nret + m] = (s_ret_t){s_name(c, i, o->ntransfer + m), i};
    qsort(all, nr, sizeof *all, s_ret_cmp);
    int rc = 0;
    for (size_t r = 0; r < nr && !rc; r++) {
        struct stat st;
        if (r + 1 < nr && strcmp(all[r].name, all[r + 1].name) == 0) {
            fprintf(stderr, "playdoh-submit: exec: jobs %zu and %zu would both return %s: name "
                    "each job's file with a replacement string (--return {}.out, "
                    "--return out-{#}.txt)\n", all[r].job + 1, all[r + 1].job + 1,
                    all[r].name);
            rc = S_ERROR;
        } else if (!o->force && stat(all[r].name, &st) == 0) {
            fprintf(stderr, "playdoh-submit: exec: job %zu would return %s, which exists here: "
                    "move it away, or give --force to replace it\n", all[r].job + 1,
                    all[r].name);
            rc = S_ERROR;
        }
    }
    free(all);
    return rc;
}

/* Reads argument lines from path ("-": standard input) into commands.
   Returns 0 or S_ERROR after saying why. */
static int s_read_lines(pd_submit_t *s, const char *path, const char *tmpl, s_cmds_t *cmds)
{
    bool std = strcmp(path, "-") == 0;
    const char *name = std ? "standard input" : path;
    FILE *f = std ? stdin : fopen(path, "r");
    if (!f) {
        fprintf(stderr, "playdoh-submit: exec: cannot read argument lines from %s: %s\n", path,
                strerror(errno));
        return S_ERROR;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t l = (size_t) len;
        if (l && line[l - 1] == '\n')
            l--;
        int e = s_cmds_add(cmds, tmpl, line, l);
        if (e == PD_EINVAL) {
            fprintf(stderr, "playdoh-submit: exec: %s line %zu holds a NUL byte, which no shell "
                    "command can carry\n", name, lineno);
            rc = S_ERROR;
            break;
        }
        if (e) {
            fprintf(stderr, "playdoh-submit: exec: %s line %zu: the commands do not fit in "
                    "memory (%s)\n", name, lineno, pd_strerror(e));
            rc = S_ERROR;
            break;
        }
    }
    if (!rc && ferror(f)) {
        fprintf(stderr, "playdoh-submit: exec: cannot read argument lines from %s: %s\n", name,
                strerror(errno));
        rc = S_ERROR;
    }
    free(line);
    if (!std)
        fclose(f);
    (void) s;
    return rc;
}

/* What the printer needs. */
typedef struct {
    const pd_submit_t *s;  /* the session, for --quiet */
    const s_cmds_t *cmds;  /* the commands, for messages and the job log */
    FILE *joblog;          /* --joblog, or NULL */
    size_t succeeded;      /* jobs done so far */
    size_t missing;        /* job (index + 1) whose program was not found or not
                              executable before any succeeded; 0 = none */
    int missing_exit;      /* its exit status: 127 or 126 */
    size_t ncancelled;     /* jobs cancelled: said at the end, in one line, when a
                              missing program was the cause */
    size_t unwritten;      /* jobs whose returned files could not all be written */
    bool hinted;           /* the scratch directory hint was given */
} s_exec_print_t;

/* The summary of a run whose first failures could not start their program:
   the broker cancelled the rest of the batch (docs/broker.md). */
static void s_exec_cancelled(const s_exec_print_t *p)
{
    /* Other cancellations (Ctrl-C, `cancel`) are said by their marks on
       standard output and the interrupt's summary. */
    if (!p->ncancelled || !p->missing || p->s->o.quiet)
        return;
    fprintf(stderr, "playdoh-submit: exec: job %zu (%s) exited %d: its program %s on the "
            "worker, before any job succeeded; the other %zu jobs were cancelled (check the "
            "program's name, that it is installed on every worker and on the worker's PATH, "
            "or give its full path)\n", p->missing, s_cmd(p->cmds, p->missing - 1),
            p->missing_exit, p->missing_exit == 127 ? "was not found" : "is not executable",
            p->ncancelled);
}

/* Writes the files job index returned (--return) here, at the names asked
   for: a name the job was not asked for is refused, whatever the worker
   says, and so is one that leaves this directory. Returns false when one
   was not written, after saying why. */
static bool s_write_returns(s_exec_print_t *p, size_t index, const pd_result_t *r,
                            const pd_exec_result_t *x)
{
    const pd_submit_opts_t *o = &p->s->o;
    bool ok = true;
    for (size_t f = 0; f < x->nfiles; f++) {
        pd_exec_file_t file;
        if (pd_result_exec_file(r, f, &file))
            break;
        const char *name = NULL;
        for (size_t m = 0; m < o->nret && !name; m++) {
            const char *want = s_name(p->cmds, index, o->ntransfer + m);
            if (strlen(want) == file.name_len && memcmp(want, file.name, file.name_len) == 0)
                name = want;
        }
        char why[128];
        fflush(stdout);
        if (!name || pd_file_check_relative(name, strlen(name), why, sizeof why)) {
            fprintf(stderr, "playdoh-submit: job %zu: the worker returned a file named '%.*s', "
                    "which the job was not asked to return (--return): not written\n",
                    index + 1, (int) (file.name_len > 300 ? 300 : file.name_len), file.name);
            ok = false;
            continue;
        }
        struct stat st;
        if (!o->force && stat(name, &st) == 0) {
            fprintf(stderr, "playdoh-submit: job %zu: %s appeared here while the job ran: not "
                    "replaced (--force replaces it)\n", index + 1, name);
            ok = false;
            continue;
        }
        char dir[4096], fail[4096] = "";
        const char *slash = strrchr(name, '/');
        int rc = 0;
        if (slash) {
            snprintf(dir, sizeof dir, "%.*s", (int) (slash - name), name);
            rc = pd_file_mkdirs(dir, 0777, fail, sizeof fail);
        }
        if (rc == 0)
            rc = pd_file_write_atomic(name, file.data, file.len);
        if (rc) {
            fprintf(stderr, "playdoh-submit: job %zu: cannot write the returned file %s: %s\n",
                    index + 1, fail[0] ? fail : name, strerror(errno));
            ok = false;
        }
    }
    return ok;
}

static void s_exec_emit(void *user, size_t index, const pd_result_t *r)
{
    s_exec_print_t *p = user;
    if (r->state == PD_JOB_CANCELLED && !p->missing) {
        /* Cancelled before it ran (Ctrl-C, or `cancel`): a mark, and a line
           in the job log. After a program that is not there, the summary
           (s_exec_cancelled) says it once instead. */
        pd_buf_t out;
        pd_buf_init(&out);
        pd_submit_put_cancelled(&out, r->id);
        fwrite(out.data, 1, out.len, stdout);
        pd_buf_free(&out);
    }
    pd_exec_result_t x;
    bool ran = pd_result_exec(r, &x) == 0;
    p->succeeded += r->state == PD_JOB_DONE;
    if (ran && r->state == PD_JOB_FAILED && !p->missing && !p->succeeded &&
        (x.exit == 127 || x.exit == 126)) {
        p->missing = index + 1;
        p->missing_exit = x.exit;
    }
    p->ncancelled += r->state == PD_JOB_CANCELLED;
    if (ran) {
        if (x.out_len)
            fwrite(x.out, 1, x.out_len, stdout);
        if (x.err_len) {
            fflush(stdout); /* a terminal shows the job's lines in their order */
            fwrite(x.err, 1, x.err_len, stderr);
        }
        if (x.truncated && !p->s->o.quiet) {
            fflush(stdout);
            fprintf(stderr, "playdoh-submit: job %" PRIu64 " (argument %zu): %llu bytes of "
                    "standard output and %llu of standard error past the job's output limit "
                    "were dropped (--max-output)\n", r->id, index + 1,
                    (unsigned long long) x.out_dropped, (unsigned long long) x.err_dropped);
        }
    }
    if (ran && !s_write_returns(p, index, r, &x))
        p->unwritten++;
    if (r->state != PD_JOB_DONE && r->state != PD_JOB_CANCELLED && !p->s->o.quiet) {
        fflush(stdout);
        fprintf(stderr, "playdoh-submit: job %" PRIu64 " (argument %zu: %s) %s: %s\n", r->id,
                index + 1, s_cmd(p->cmds, index),
                pd_job_state_name(r->state), r->error ? r->error : pd_strerror(r->code));
        if (ran && x.scratch && !p->cmds->k && !p->hinted) {
            /* It did not run where the user thought: say so once. */
            char cwd[4096] = "this directory";
            pd_plat_getcwd(cwd, sizeof cwd);
            fprintf(stderr, "playdoh-submit: exec: job %zu ran in a scratch directory on %.*s, "
                    "which cannot see %s: give the jobs their files with --transfer and "
                    "--return, or run them on a file system the workers share with --workdir "
                    "DIR (docs/cluster.md)\n", index + 1, (int) x.host_len, x.host, cwd);
            p->hinted = true;
        }
    }
    if (p->joblog) {
        double start = x.start;
        if (!ran) {
            struct timeval tv;
            gettimeofday(&tv, NULL);
            start = (double) tv.tv_sec + (double) tv.tv_usec / 1e6;
        }
        fprintf(p->joblog, "%zu\t%.*s\t%.3f\t%10.3f\t0\t%zu\t%d\t%d\t%s\n", index + 1,
                ran && x.host_len ? (int) x.host_len : 1, ran && x.host_len ? x.host : ":",
                start, ran ? x.runtime : 0.0, ran ? x.out_len + x.err_len : 0,
                ran ? x.exit : -1, ran ? x.signal : 0, s_cmd(p->cmds, index));
        fflush(p->joblog);
    }
}

/* The commands of exec's arguments: the template (the command's words
   joined by spaces, as GNU parallel does, into tmpl) filled with each
   argument line (after :::, or from --args or standard input). Returns 0 or
   S_ERROR after saying why. */
static int s_commands(pd_submit_t *s, int argc, char **argv, s_cmds_t *cmds, pd_buf_t *tmpl)
{
    int sep = -1;
    for (int i = 0; i < argc && sep < 0; i++)
        if (strcmp(argv[i], ":::") == 0)
            sep = i;
    int nwords = sep < 0 ? argc : sep;
    if (nwords == 0) {
        pd_submit_usage_error(s, "exec needs a COMMAND (for instance: exec -- gzip {})");
        return S_ERROR;
    }
    if (s->o.nret && s->o.detach) {
        pd_submit_usage_error(s, "--return writes the files back when the jobs end, so it "
                              "cannot go with --detach (write them to a shared file system "
                              "with --workdir instead)");
        return S_ERROR;
    }
    if (sep >= 0 && s->o.args_file) {
        pd_submit_usage_error(s, "give argument lines either after ::: or with --args, not both");
        return S_ERROR;
    }
    for (int i = 0; i < nwords; i++) {
        if (i)
            pd_buf_append(tmpl, " ", 1);
        pd_buf_append(tmpl, argv[i], strlen(argv[i]));
    }
    pd_buf_append(tmpl, "", 1);
    int rc = tmpl->failed ? S_ERROR : 0;
    const char *t = (const char *) tmpl->data;
    if (rc) {
        fprintf(stderr, "playdoh-submit: exec: the command is too long\n");
    } else if (sep >= 0) {
        for (int i = sep + 1; i < argc && !rc; i++)
            if (s_cmds_add(cmds, t, argv[i], strlen(argv[i]))) {
                fprintf(stderr, "playdoh-submit: exec: the commands do not fit in memory\n");
                rc = S_ERROR;
            }
    } else {
        const char *from = s->o.args_file ? s->o.args_file : "-";
        if (strcmp(from, "-") == 0 && isatty(STDIN_FILENO) && !s->o.quiet)
            fprintf(stderr, "playdoh-submit: exec: reading argument lines from the terminal "
                    "(end with Ctrl-D; or give them after ::: or with --args FILE)\n");
        rc = s_read_lines(s, from, t, cmds);
    }
    return rc;
}

/* Opens --joblog (standard output for '-') and writes its header. Returns
   0 or S_ERROR after saying why. */
static int s_joblog_open(const pd_submit_t *s, FILE **joblog)
{
    *joblog = strcmp(s->o.joblog, "-") == 0 ? stdout : fopen(s->o.joblog, "w");
    if (!*joblog) {
        fprintf(stderr, "playdoh-submit: exec: cannot write the job log %s: %s\n", s->o.joblog,
                strerror(errno));
        return S_ERROR;
    }
    fprintf(*joblog, "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\t"
            "Command\n");
    return 0;
}

/* Submits the commands and follows them to their end (or prints their ids
   with --detach). Returns the exit status. */
static int s_submit(pd_submit_t *s, const s_cmds_t *cmds, FILE *joblog)
{
    int rc = 0;
    uint64_t *ids = calloc(cmds->n, sizeof *ids);
    pd_exec_job_t *list = calloc(cmds->n, sizeof *list);
    const char **names = malloc((cmds->n * cmds->k + 1) * sizeof *names);
    if (!ids || !list || !names) {
        fprintf(stderr, "playdoh-submit: exec: out of memory for %zu jobs\n", cmds->n);
        rc = S_ERROR;
        goto out;
    }
    for (size_t i = 0; i < cmds->n; i++) {
        for (size_t m = 0; m < cmds->k; m++)
            names[i * cmds->k + m] = s_name(cmds, i, m);
        list[i] = (pd_exec_job_t){.cmd = s_cmd(cmds, i),
                                  .transfer = names + i * cmds->k, .ntransfer = s->o.ntransfer,
                                  .ret = names + i * cmds->k + s->o.ntransfer, .nret = s->o.nret};
    }
    pd_client_t *c = pd_submit_connect(s);
    if (!c) {
        rc = S_ERROR;
        goto out;
    }
    pd_map_opts_t mo = {.timeout_ms = s->o.timeout_ms, .retries = s->o.retries,
                        .max_slots = s->o.max_slots, .memory = s->o.memory,
                        .cpu_time_s = s->o.cpu_time_s, .max_output = s->o.max_output,
                        .retry_failed = s->o.retry_failed};
    long acc = pd_exec_jobs(c, list, cmds->n, s->o.workdir, &mo, ids);
    if (acc < 0 || (size_t) acc < cmds->n) {
        fprintf(stderr, "playdoh-submit: exec: %s\n", pd_client_error(c));
        if (acc > 0) {
            fprintf(stderr, "playdoh-submit: exec: %ld of %zu jobs were accepted, with ids: ", acc,
                    cmds->n);
            pd_submit_print_ranges(stderr, ids, cmds->n);
        }
        rc = S_ERROR;
        goto out;
    }
    if (s->o.detach) {
        pd_submit_print_ranges(stdout, ids, cmds->n);
        goto out;
    }
    s_exec_print_t pr = {.s = s, .cmds = cmds, .joblog = joblog};
    pd_progress_t *bar = pd_progress_new(stderr, cmds->n, pd_submit_progress_wanted(s));
    size_t done = 0, failed = 0;
    int e = pd_submit_collect(s, ids, cmds->n, -1, s->o.keep_order, true, true, bar, s_exec_emit,
                              &pr, &done, &failed);
    fflush(stdout);
    if (!e)
        pd_progress_finish(bar);
    pd_progress_destroy(&bar);
    s_exec_cancelled(&pr);
    if (e == PD_ECANCELLED) {
        rc = PD_SUBMIT_INTERRUPTED;
    } else if (e) {
        rc = S_ERROR;
    } else {
        if (failed && !s->o.quiet)
            fprintf(stderr, "playdoh-submit: exec: %zu of %zu jobs failed\n", failed, cmds->n);
        failed += pr.unwritten; /* a file not brought back counts as a failure */
        rc = failed > 100 ? PD_EXIT_EXEC_MANY : (int) failed;
    }
out:
    free(ids);
    free(list);
    free(names);
    return rc;
}

static int s_run(pd_submit_t *s, int argc, char **argv)
{
    s_cmds_t cmds = {.o = &s->o, .k = s->o.ntransfer + s->o.nret};
    pd_buf_init(&cmds.text);
    pd_buf_init(&cmds.names);
    pd_buf_t tmpl;
    pd_buf_init(&tmpl);
    int rc = s_commands(s, argc, argv, &cmds, &tmpl);
    FILE *joblog = NULL;
    if (!rc && s->o.joblog && !s->o.dry_run && !s->o.detach)
        rc = s_joblog_open(s, &joblog);
    if (rc || cmds.n == 0)
        goto out; /* no argument lines: nothing to run, as GNU parallel */
    if (!s->o.dry_run && (rc = s_check_files(s, &cmds)) != 0)
        goto out;
    if (s->o.dry_run) {
        for (size_t i = 0; i < cmds.n; i++)
            printf("%s\n", s_cmd(&cmds, i));
        goto out;
    }
    rc = s_submit(s, &cmds, joblog);
out:
    if (joblog && joblog != stdout)
        fclose(joblog);
    free(cmds.off);
    free(cmds.noff);
    pd_buf_free(&cmds.text);
    pd_buf_free(&cmds.names);
    pd_buf_free(&tmpl);
    return rc;
}

const pd_submit_verb_t pd_submit_verb_exec = {.name = "exec", .usage = S_USAGE, .opts = s_opts,
                                              .apply = s_apply, .run = s_run,
                                              .bad_exit = S_ERROR, .in_order = true};
