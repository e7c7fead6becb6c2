/*  playdoh-submit map: runs a C function once per line of JSON. Reads the
    argument lines, ships the module (and its CUDA kernels, shared data),
    submits the jobs with pd_map and prints one JSON line per job in input
    order as the results come (pd_submit_collect). A module that cannot run
    the function at all is said once, with the compiler's words.
*/
#include "submit.h"
#include "pd_plat.h"

#include "pd_json.h"
#include "pd_log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char S_USAGE[] =
    "usage: playdoh-submit [GLOBAL OPTIONS] map [OPTIONS] MODULE FUNCTION [ARGS.jsonl|-]\n"
    "\n"
    "Runs FUNCTION of MODULE once per line of ARGS.jsonl (standard input by default), each\n"
    "line one JSON value, and prints one JSON result per line, in input order. A failed job\n"
    "prints {\"error\": ..., \"job\": ID, \"code\": \"PD_E...\"} and a line on standard error.\n"
    "MODULE is a C source file, a prebuilt module (.so for Linux workers, .dll for Windows\n"
    "ones: it runs only on workers of its platform), or several files separated by commas\n"
    "(a.c,b.c,util.h) with optional compiler flags after them (a.c,b.c,-lm,-O3).\n"
    "\n"
    "options:\n"
    "      --timeout-ms N   fail a job that runs longer than N ms (default: no limit)\n"
    "      --retries N      workers a job may lose (a worker that dies or falls silent\n"
    "                       while running it) before it fails (default 3)\n"
    "      --retry-failed N run a job again, up to N times, when its own run failed\n"
    "                       (an error returned, a crash, --timeout-ms) (default 0)\n"
    "      --max-slots N    run at most N of these jobs at once (default: fair share)\n"
    "      --memory SIZE    each job's memory at most (2G, 512M); over it the job fails\n"
    "                       with PD_ELIMIT; it runs only where the owner allows that much\n"
    "      --cpu-time TIME  each job's CPU time at most (60s, 5m, 2h)\n"
    "      --max-output SIZE  output kept of a failing job (default 4M, at most 64M)\n"
    "      --shared FILE    send FILE once per machine; tasks read it with pd_task_shared()\n"
    "      --gpu            run each job on a GPU slot (docs/gpu.md); a .cu file beside a .c\n"
    "                       MODULE (square.cu for square.c) travels with the jobs\n"
    "      --cuda FILE.cu   ship these CUDA kernels with the jobs (implies --gpu)\n"
    "      --detach         print the job ids and return without waiting (the way to\n"
    "                       leave jobs running)\n"
    "\n"
    "Ctrl-C cancels the jobs not done and prints what ended, then {\"cancelled\":true,\n"
    "\"job\":ID} for each of the others; a second Ctrl-C quits at once.\n"
    "\n"
    "exit status: 0 all jobs done, 1 some failed, 2 bad usage or input, 3 broker problem,\n"
    "130 after Ctrl-C\n";

static const pd_submit_opt_t s_opts[] = {
    PD_SUBMIT_LIMIT_OPTS,
    {"detach", no_argument, O_DETACH},
    {"shared", required_argument, O_SHARED},
    {"gpu", no_argument, O_GPU},
    {"cuda", required_argument, O_CUDA},
    {NULL, 0, 0},
};

/* What the map printer needs. */
typedef struct {
    const pd_submit_t *s; /* the session, for --quiet */
    pd_buf_t out;         /* pending output */
    const uint64_t *ids;  /* the map's jobs, cancelled at a module failure */
    size_t n;             /* how many */
    int broken;           /* the module failure met (PD_ECOMPILE, PD_ENOFUNC), or 0 */
    char *broken_msg;     /* its message (owned) */
    size_t nbroken;       /* jobs that met it (the others were cancelled) */
    size_t after;         /* results met after it, not printed */
} s_map_print_t;

/* True for a job that failed because its module cannot run the function
   at all: the broker then ends the whole batch (docs/broker.md). */
static bool s_module_failure(const pd_result_t *r)
{
    return r->state == PD_JOB_FAILED && (r->code == PD_ECOMPILE || r->code == PD_ENOFUNC);
}

/* The map's first module failure: every job is cancelled (the broker did
   so for the failing job's batch; this reaches the map's other batches),
   nothing more is printed, and s_map_broken says it once at the end. */
static void s_map_note_broken(s_map_print_t *p, const pd_result_t *r)
{
    p->nbroken++;
    if (p->broken)
        return;
    pd_cancel(p->s->c, p->ids, p->n);
    p->broken = r->code;
    p->broken_msg = strdup(r->error ? r->error : pd_strerror(r->code));
}

/* Prints the module failure: the worker's message (its first line, then at
   most S_DIAG_LINES lines of the compiler's output) and what became of the
   jobs. */
#define S_DIAG_LINES 20
static void s_map_broken(const s_map_print_t *p)
{
    const char *msg = p->broken_msg ? p->broken_msg : pd_strerror(p->broken);
    /* The client's " (job N on HOST slot S)" closes the message: it goes on
       the first line, the compiler's lines stay as they were. */
    const char *where = strstr(msg, " (job ");
    while (where && strstr(where + 1, " (job "))
        where = strstr(where + 1, " (job ");
    size_t len = where && !strchr(where, '\n') ? (size_t) (where - msg) : strlen(msg);
    const char *nl = memchr(msg, '\n', len);
    size_t first = nl ? (size_t) (nl - msg) : len;
    if (first && msg[first - 1] == ':')
        first--;
    fprintf(stderr, "playdoh-submit: map: %.*s%s%s\n", (int) first, msg,
            len < strlen(msg) ? msg + len : "", nl ? ":" : "");
    size_t lines = 0;
    while (nl && lines < S_DIAG_LINES) {
        const char *line = nl + 1;
        nl = memchr(line, '\n', len - (size_t) (line - msg));
        fprintf(stderr, "%.*s\n", (int) (nl ? (size_t) (nl - line) : len - (size_t) (line - msg)),
                line);
        lines++;
    }
    size_t more = 0;
    for (; nl; nl = memchr(nl + 1, '\n', len - (size_t) (nl + 1 - msg)))
        more++;
    if (more)
        fprintf(stderr, "playdoh-submit: map: (%zu more lines: run the compiler on the module "
                "to see them all)\n", more);
    if (!p->s->o.quiet)
        fprintf(stderr, "playdoh-submit: map: no result: the module %s; the other %zu jobs "
                "were cancelled before running; fix it and submit again\n",
                p->broken == PD_ENOFUNC ? "lacks the function" : "does not compile",
                p->n - p->nbroken);
}

static void s_map_emit(void *user, size_t index, const pd_result_t *r)
{
    s_map_print_t *p = user;
    if (s_module_failure(r))
        s_map_note_broken(p, r);
    if (p->broken) {
        p->after++;
        return;
    }
    if (r->state == PD_JOB_CANCELLED) {
        pd_submit_put_cancelled(&p->out, r->id);
    } else if (r->state == PD_JOB_DONE) {
        pd_msgpack_to_json(r->value, r->len, &p->out);
        pd_submit_put(&p->out, "\n");
    } else {
        pd_submit_put(&p->out, "{\"error\":");
        pd_submit_put_json_str(&p->out, r->error ? r->error : pd_job_state_name(r->state));
        char tail[64];
        snprintf(tail, sizeof tail, ",\"job\":%" PRIu64 ",\"code\":", r->id);
        pd_submit_put(&p->out, tail);
        pd_submit_put_json_str(&p->out, pd_err_name(r->code));
        pd_submit_put(&p->out, "}\n");
        if (!p->s->o.quiet) {
            pd_submit_flush(&p->out);
            fprintf(stderr, "playdoh-submit: job %" PRIu64 " (argument %zu) %s: %s\n", r->id,
                    index + 1, pd_job_state_name(r->state),
                    r->error ? r->error : pd_strerror(r->code));
        }
    }
    if (p->out.len > (1u << 16))
        pd_submit_flush(&p->out);
}

/* Checks that every file of a module spec ("a.c,b.h,-lm": the items not
   starting with '-') can be read. Returns 0, or 2 after saying which
   cannot. */
static int s_module_readable(const pd_submit_t *s, const char *spec)
{
    const char *p = spec;
    while (*p) {
        size_t len = strcspn(p, ",");
        char file[4096];
        if (len > 0 && p[0] != '-' && len < sizeof file) {
            memcpy(file, p, len);
            file[len] = 0;
            if (access(file, R_OK) != 0) {
                fprintf(stderr, "playdoh-submit: %s: cannot read module file %s: %s\n",
                        s->o.verb, file, strerror(errno));
                return 2;
            }
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

/* Checks --shared FILE before starting anything (the upload happens
   later): true after saying why it cannot be sent. */
static bool s_shared_unreadable(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
        fprintf(stderr, "playdoh-submit: map: cannot read shared data %s: %s\n", path,
                strerror(errno));
        return true;
    }
    if (!S_ISREG(st.st_mode) || st.st_size == 0) {
        fprintf(stderr, "playdoh-submit: map: shared data %s is %s\n", path,
                S_ISREG(st.st_mode) ? "empty" : "not a regular file");
        return true;
    }
    return false;
}

/* Follows the map's jobs ids[0..n), printing each result in input order;
   returns the exit status. */
static int s_follow(pd_submit_t *s, const uint64_t *ids, size_t n)
{
    int rc;
    s_map_print_t pr = {.s = s, .ids = ids, .n = n};
    pd_buf_init(&pr.out);
    pd_progress_t *bar = pd_progress_new(stderr, n, pd_submit_progress_wanted(s));
    size_t done = 0, failed = 0;
    rc = pd_submit_collect(s, ids, n, -1, true, true, true, bar, s_map_emit, &pr, &done,
                           &failed);
    pd_submit_flush(&pr.out);
    pd_buf_free(&pr.out);
    if (!rc && !pr.broken)
        pd_progress_finish(bar);
    pd_progress_destroy(&bar);
    if (pr.broken) {
        s_map_broken(&pr);
        free(pr.broken_msg);
        return 2;
    }
    if (rc == PD_ECANCELLED)
        return PD_SUBMIT_INTERRUPTED;
    if (rc)
        return 3;
    if (failed) {
        if (!s->o.quiet)
            fprintf(stderr, "playdoh-submit: %zu of %zu jobs failed\n", failed, n);
        return 1;
    }
    return 0;
}

static int s_run(pd_submit_t *s, int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        pd_submit_usage_error(s, "map needs MODULE FUNCTION [ARGS.jsonl] (got %d arguments)", argc);
        return 2;
    }
    pd_buf_t args;
    pd_buf_init(&args);
    size_t n = 0;
    int rc = pd_submit_read_args(argc == 3 ? argv[2] : "-", &args, &n);
    if (rc || n == 0) {
        /* No argument lines: nothing to run, as exec (and GNU parallel);
           a module that cannot be read is still an error. */
        pd_buf_free(&args);
        return rc ? rc : s_module_readable(s, argv[0]);
    }
    if (s->o.shared && s_shared_unreadable(s->o.shared)) {
        pd_buf_free(&args);
        return 2;
    }
    pd_client_t *c = pd_submit_connect(s);
    if (!c) {
        pd_buf_free(&args);
        return 3;
    }
    char hash[PD_HASH_HEX], cuda_hash[PD_HASH_HEX];
    bool cuda;
    if ((rc = pd_submit_upload_code(s, argv[0], hash, cuda_hash, &cuda)) != 0) {
        pd_buf_free(&args);
        return rc;
    }
    uint64_t *ids = calloc(n, sizeof *ids);
    if (!ids) {
        fprintf(stderr, "playdoh-submit: out of memory for %zu jobs\n", n);
        pd_buf_free(&args);
        return 2;
    }
    char shr[PD_HASH_HEX];
    if (s->o.shared) {
        rc = pd_shared_upload_file(c, s->o.shared, shr);
        if (rc) {
            fprintf(stderr, "playdoh-submit: map: %s\n", pd_client_error(c));
            pd_buf_free(&args);
            free(ids);
            return rc == PD_EIO || rc == PD_EINVAL || rc == PD_ETOOBIG ? 2 : 3;
        }
    }
    pd_map_opts_t mo = {.timeout_ms = s->o.timeout_ms, .retries = s->o.retries,
                        .retry_failed = s->o.retry_failed,
                        .max_slots = s->o.max_slots, .shared = s->o.shared ? shr : NULL,
                        .gpu = s->o.gpu, .cuda = cuda ? cuda_hash : NULL,
                        .memory = s->o.memory, .cpu_time_s = s->o.cpu_time_s,
                        .max_output = s->o.max_output};
    long acc = pd_map(c, hash, argv[1], args.data, args.len, n, &mo, ids);
    pd_buf_free(&args);
    if (acc < 0 || (size_t) acc < n) {
        fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        if (acc > 0) {
            fprintf(stderr, "playdoh-submit: %ld of %zu jobs were accepted, with ids: ", acc, n);
            pd_submit_print_ranges(stderr, ids, n);
        }
        free(ids);
        return 3;
    }
    if (s->o.detach) {
        pd_submit_print_ranges(stdout, ids, n);
        free(ids);
        return 0;
    }
    rc = s_follow(s, ids, n);
    free(ids);
    return rc;
}


const pd_submit_verb_t pd_submit_verb_map = {.name = "map", .usage = S_USAGE, .opts = s_opts,
                                             .run = s_run, .bad_exit = 2};
