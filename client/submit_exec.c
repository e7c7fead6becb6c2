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
#include "pd_plat.h"

#include "pd_codec.h"
#include "pd_template.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define S_ERROR 255 /* GNU parallel's exit status for errors other than failed jobs */

/* The commands of one run: NUL-terminated, back to back. */
typedef struct {
    pd_buf_t text;  /* the commands, each followed by a NUL */
    size_t *off;    /* offset of command i in text */
    size_t n;       /* commands */
    size_t cap;     /* capacity of off */
} s_cmds_t;

static int s_cmds_add(s_cmds_t *c, const char *tmpl, const char *arg, size_t len)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        size_t *o = realloc(c->off, cap * sizeof *o);
        if (!o)
            return PD_ENOMEM;
        c->off = o;
        c->cap = cap;
    }
    size_t at = c->text.len;
    int rc = pd_template_expand(tmpl, arg, len, c->n + 1, &c->text);
    if (rc)
        return rc;
    rc = pd_buf_append(&c->text, "", 1);
    if (rc) {
        c->text.len = at;
        return rc;
    }
    c->off[c->n++] = at;
    return 0;
}

static const char *s_cmd(const s_cmds_t *c, size_t i) { return (const char *) c->text.data + c->off[i]; }

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
    size_t *cancelled;     /* jobs (indexes) cancelled: said at the end, in one line
                              when a missing program was the cause */
    size_t ncancelled;     /* entries in cancelled */
} s_exec_print_t;

/* The summary of a run whose first failures could not start their program:
   the broker cancelled the rest of the batch (docs/broker.md). */
static void s_exec_cancelled(const s_exec_print_t *p)
{
    if (!p->ncancelled || p->s->o.quiet)
        return;
    if (!p->missing) {
        for (size_t i = 0; i < p->ncancelled; i++)
            fprintf(stderr, "playdoh-submit: job %zu (%s) cancelled\n", p->cancelled[i] + 1,
                    s_cmd(p->cmds, p->cancelled[i]));
        return;
    }
    fprintf(stderr, "playdoh-submit: exec: job %zu (%s) exited %d: its program %s on the "
            "worker, before any job succeeded; the other %zu jobs were cancelled (check the "
            "program's name, that it is installed on every worker and on the worker's PATH, "
            "or give its full path)\n", p->missing, s_cmd(p->cmds, p->missing - 1),
            p->missing_exit, p->missing_exit == 127 ? "was not found" : "is not executable",
            p->ncancelled);
}

static void s_exec_emit(void *user, size_t index, const pd_result_t *r)
{
    s_exec_print_t *p = user;
    if (r->state == PD_JOB_CANCELLED) {
        /* Cancelled before it ran (Ctrl-C, or `cancel`): a mark, and a line
           in the job log. */
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
    bool quiet = p->s->o.quiet;
    if (r->state == PD_JOB_CANCELLED && p->cancelled) {
        p->cancelled[p->ncancelled++] = index;
        quiet = true; /* said at the end (s_exec_cancelled) */
    }
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
    if (r->state != PD_JOB_DONE && r->state != PD_JOB_CANCELLED && !quiet) {
        fflush(stdout);
        fprintf(stderr, "playdoh-submit: job %" PRIu64 " (argument %zu: %s) %s: %s\n", r->id,
                index + 1, s_cmd(p->cmds, index),
                pd_job_state_name(r->state), r->error ? r->error : pd_strerror(r->code));
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

int pd_submit_exec(pd_submit_t *s, int argc, char **argv)
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
    if (sep >= 0 && s->o.args_file) {
        pd_submit_usage_error(s, "give argument lines either after ::: or with --args, not both");
        return S_ERROR;
    }
    /* The template: the command's words joined by spaces, as GNU parallel does. */
    pd_buf_t tmpl;
    pd_buf_init(&tmpl);
    for (int i = 0; i < nwords; i++) {
        if (i)
            pd_buf_append(&tmpl, " ", 1);
        pd_buf_append(&tmpl, argv[i], strlen(argv[i]));
    }
    pd_buf_append(&tmpl, "", 1);
    s_cmds_t cmds = {0};
    pd_buf_init(&cmds.text);
    int rc = tmpl.failed ? S_ERROR : 0;
    const char *t = (const char *) tmpl.data;
    if (rc) {
        fprintf(stderr, "playdoh-submit: exec: the command is too long\n");
    } else if (sep >= 0) {
        for (int i = sep + 1; i < argc && !rc; i++)
            if (s_cmds_add(&cmds, t, argv[i], strlen(argv[i]))) {
                fprintf(stderr, "playdoh-submit: exec: the commands do not fit in memory\n");
                rc = S_ERROR;
            }
    } else {
        const char *from = s->o.args_file ? s->o.args_file : "-";
        if (strcmp(from, "-") == 0 && isatty(STDIN_FILENO) && !s->o.quiet)
            fprintf(stderr, "playdoh-submit: exec: reading argument lines from the terminal "
                    "(end with Ctrl-D; or give them after ::: or with --args FILE)\n");
        rc = s_read_lines(s, from, t, &cmds);
    }
    FILE *joblog = NULL;
    if (!rc && s->o.joblog && !s->o.dry_run && !s->o.detach) {
        joblog = strcmp(s->o.joblog, "-") == 0 ? stdout : fopen(s->o.joblog, "w");
        if (!joblog) {
            fprintf(stderr, "playdoh-submit: exec: cannot write the job log %s: %s\n", s->o.joblog,
                    strerror(errno));
            rc = S_ERROR;
        } else {
            fprintf(joblog, "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\t"
                    "Command\n");
        }
    }
    uint64_t *ids = NULL;
    const char **list = NULL;
    if (rc || cmds.n == 0)
        goto out; /* no argument lines: nothing to run, as GNU parallel */
    if (s->o.dry_run) {
        for (size_t i = 0; i < cmds.n; i++)
            printf("%s\n", s_cmd(&cmds, i));
        goto out;
    }
    ids = calloc(cmds.n, sizeof *ids);
    list = malloc(cmds.n * sizeof *list);
    if (!ids || !list) {
        fprintf(stderr, "playdoh-submit: exec: out of memory for %zu jobs\n", cmds.n);
        rc = S_ERROR;
        goto out;
    }
    for (size_t i = 0; i < cmds.n; i++)
        list[i] = s_cmd(&cmds, i);
    pd_client_t *c = pd_submit_connect(s);
    if (!c) {
        rc = S_ERROR;
        goto out;
    }
    pd_map_opts_t mo = {.timeout_ms = s->o.timeout_ms, .retries = s->o.retries,
                        .max_slots = s->o.max_slots, .memory = s->o.memory,
                        .cpu_time_s = s->o.cpu_time_s, .max_output = s->o.max_output,
                        .retry_failed = s->o.retry_failed};
    long acc = pd_exec(c, list, cmds.n, &mo, ids);
    if (acc < 0 || (size_t) acc < cmds.n) {
        fprintf(stderr, "playdoh-submit: exec: %s\n", pd_client_error(c));
        if (acc > 0) {
            fprintf(stderr, "playdoh-submit: exec: %ld of %zu jobs were accepted, with ids: ", acc,
                    cmds.n);
            pd_submit_print_ranges(stderr, ids, cmds.n);
        }
        rc = S_ERROR;
        goto out;
    }
    if (s->o.detach) {
        pd_submit_print_ranges(stdout, ids, cmds.n);
        goto out;
    }
    s_exec_print_t pr = {.s = s, .cmds = &cmds, .joblog = joblog,
                         .cancelled = malloc(cmds.n * sizeof *pr.cancelled)};
    pd_progress_t *bar = pd_progress_new(stderr, cmds.n, pd_submit_progress_wanted(s));
    size_t done = 0, failed = 0;
    int e = pd_submit_collect(s, ids, cmds.n, -1, s->o.keep_order, true, true, bar, s_exec_emit,
                              &pr, &done, &failed);
    fflush(stdout);
    if (!e)
        pd_progress_finish(bar);
    pd_progress_destroy(&bar);
    s_exec_cancelled(&pr);
    free(pr.cancelled);
    if (e == PD_ECANCELLED) {
        rc = PD_SUBMIT_INTERRUPTED;
    } else if (e) {
        rc = S_ERROR;
    } else {
        if (failed && !s->o.quiet)
            fprintf(stderr, "playdoh-submit: exec: %zu of %zu jobs failed\n", failed, cmds.n);
        rc = failed > 100 ? 101 : (int) failed;
    }
out:
    if (joblog && joblog != stdout)
        fclose(joblog);
    free(ids);
    free(list);
    free(cmds.off);
    pd_buf_free(&cmds.text);
    pd_buf_free(&tmpl);
    return rc;
}
