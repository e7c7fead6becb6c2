/*  playdoh-submit status, results, wait and cancel: the verbs over job ids
    (17, 1-1000) given by a detached map or exec; task ids (t17) go to
    submit_task.c.
*/
#include "submit.h"
#include "pd_plat.h"

#include "pd_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pd_submit_opt_t s_results_opts[] = {
    {"wait", required_argument, O_WAIT},
    {"release", no_argument, O_RELEASE},
    {NULL, 0, 0},
};

static const pd_submit_opt_t s_wait_opts[] = {
    {"wait", required_argument, O_WAIT},
    {NULL, 0, 0},
};

/* One result as a JSON record line: {"id":..,"state":..,...}. */
static void s_put_record(pd_buf_t *out, const pd_result_t *r)
{
    char head[96];
    snprintf(head, sizeof head, "{\"id\":%" PRIu64 ",\"state\":\"%s\"", r->id,
             pd_job_state_name(r->state));
    pd_submit_put(out, head);
    if (r->state == PD_JOB_DONE) {
        pd_submit_put(out, ",\"value\":");
        pd_msgpack_to_json(r->value, r->len, out);
    } else if (r->state == PD_JOB_FAILED) {
        pd_submit_put(out, ",\"code\":");
        pd_submit_put_json_str(out, pd_err_name(r->code));
        pd_submit_put(out, ",\"error\":");
        pd_submit_put_json_str(out, r->error ? r->error : "");
        if (r->value) {
            pd_submit_put(out, ",\"value\":");
            pd_msgpack_to_json(r->value, r->len, out);
        }
    }
    pd_submit_put(out, "}\n");
}

/* The job ids of a verb's arguments (17, 1-1000) into *ids (the caller's to
   free) and *n. Task ids (t17) go to submit_task.c, which runs the verb
   over them. False when there are no job ids to work on: *rc is then the
   exit status. */
static bool s_job_ids(pd_submit_t *s, const char *verb, int argc, char **argv, uint64_t **ids,
                      size_t *n, int *rc)
{
    if (argc > 0 && argv[0][0] == 't') {
        *rc = pd_submit_tasks(s, verb, argc, argv);
        return false;
    }
    *rc = pd_submit_parse_ids(s, argc, argv, ids, n);
    return *rc == 0;
}

static const char S_USAGE_STATUS[] =
    "usage: playdoh-submit [GLOBAL OPTIONS] status ID...\n"
    "\n"
    "Prints {\"id\":..,\"state\":..} per job: queued, running, done, failed, cancelled or\n"
    "unknown. IDs are numbers or ranges: 17, 1-1000.\n"
    "\n"
    "exit status: 0, or 1 when a job is unknown, 2 bad usage, 3 broker problem\n";

static int s_status(pd_submit_t *s, int argc, char **argv)
{
    uint64_t *ids;
    size_t n;
    int rc;
    if (!s_job_ids(s, "status", argc, argv, &ids, &n, &rc))
        return rc;
    pd_client_t *c = pd_submit_connect(s);
    pd_job_state_t *st = c ? calloc(n, sizeof *st) : NULL;
    if (!c || !st || pd_status(c, ids, n, st)) {
        if (c)
            fprintf(stderr, "playdoh-submit: %s\n", st ? pd_client_error(c) : "out of memory");
        free(ids);
        free(st);
        return 3;
    }
    int exit_code = 0;
    for (size_t i = 0; i < n; i++) {
        printf("{\"id\":%" PRIu64 ",\"state\":\"%s\"}\n", ids[i], pd_job_state_name(st[i]));
        if (st[i] == PD_JOB_UNKNOWN)
            exit_code = 1;
    }
    free(ids);
    free(st);
    return exit_code;
}

static const char S_USAGE_RESULTS[] =
    "usage: playdoh-submit [GLOBAL OPTIONS] results [OPTIONS] ID...\n"
    "\n"
    "Prints each job's result as a JSON line: {\"id\":..,\"state\":\"done\",\"value\":..} or\n"
    "{\"id\":..,\"state\":\"failed\",\"code\":..,\"error\":..,\"value\":..}.\n"
    "\n"
    "options:\n"
    "      --wait S         wait up to S seconds for the jobs to end first (default 0)\n"
    "      --release        let the broker forget the jobs once printed\n"
    "\n"
    "exit status: 0 all done, 1 some failed or unfinished, 2 bad usage, 3 broker problem\n";

static int s_results(pd_submit_t *s, int argc, char **argv)
{
    uint64_t *ids;
    size_t n;
    int rc;
    if (!s_job_ids(s, "results", argc, argv, &ids, &n, &rc))
        return rc;
    pd_client_t *c = pd_submit_connect(s);
    pd_result_t *res = c ? calloc(n, sizeof *res) : NULL;
    if (!res) {
        free(ids);
        return c ? 2 : 3;
    }
    double wait_s = s->o.wait_set ? s->o.wait_s : 0;
    int timeout_ms = wait_s < 0 ? -1 : (int) (wait_s * 1000);
    long got = pd_fetch(c, ids, n, timeout_ms, res, NULL, NULL);
    int exit_code = 0;
    if (got < 0) {
        fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        exit_code = 3;
    } else {
        pd_buf_t out;
        pd_buf_init(&out);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            s_put_record(&out, &res[i]);
            if (res[i].state != PD_JOB_DONE)
                bad++;
            if (out.len > (1u << 20))
                pd_submit_flush(&out);
        }
        pd_submit_flush(&out);
        pd_buf_free(&out);
        if (s->o.release)
            pd_release(c, ids, n);
        exit_code = bad ? 1 : 0;
    }
    pd_results_clear(res, n);
    free(res);
    free(ids);
    return exit_code;
}


static const char S_USAGE_WAIT[] =
    "usage: playdoh-submit [GLOBAL OPTIONS] wait [OPTIONS] ID...\n"
    "\n"
    "Waits until the jobs have ended, with a progress bar on a terminal.\n"
    "\n"
    "options:\n"
    "      --wait S         wait at most S seconds (default: for ever)\n"
    "\n"
    "exit status: 0 all done, 1 some failed or still running, 2 bad usage, 3 broker problem\n";

static int s_wait(pd_submit_t *s, int argc, char **argv)
{
    uint64_t *ids;
    size_t n;
    int rc;
    if (!s_job_ids(s, "wait", argc, argv, &ids, &n, &rc))
        return rc;
    /* The same id twice is one job. */
    qsort(ids, n, sizeof *ids, pd_submit_u64_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || ids[k - 1] != ids[i])
            ids[k++] = ids[i];
    n = k;
    if (!pd_submit_connect(s)) {
        free(ids);
        return 3;
    }
    double wait_s = s->o.wait_set ? s->o.wait_s : -1;
    int timeout_ms = wait_s < 0 ? -1 : (int) (wait_s * 1000);
    pd_progress_t *bar = pd_progress_new(stderr, n, pd_submit_progress_wanted(s));
    size_t done = 0, failed = 0;
    rc = pd_submit_collect(s, ids, n, timeout_ms, false, false, false, bar, NULL, NULL, &done,
                           &failed);
    if (!rc)
        pd_progress_finish(bar);
    pd_progress_destroy(&bar);
    free(ids);
    if (rc)
        return 3;
    size_t unfinished = n - done - failed;
    if (unfinished && !s->o.quiet)
        fprintf(stderr, "playdoh-submit: %zu of %zu jobs still running after the wait\n",
                unfinished, n);
    if (failed && !s->o.quiet)
        fprintf(stderr, "playdoh-submit: %zu of %zu jobs did not end done (see results)\n",
                failed, n);
    return failed || unfinished ? 1 : 0;
}

static const char S_USAGE_CANCEL[] =
    "usage: playdoh-submit [GLOBAL OPTIONS] cancel ID...\n"
    "\n"
    "Cancels queued and running jobs (a running job's slot process is killed).\n"
    "\n"
    "exit status: 0, 2 bad usage, 3 broker problem\n";

static int s_cancel(pd_submit_t *s, int argc, char **argv)
{
    uint64_t *ids;
    size_t n;
    int rc;
    if (!s_job_ids(s, "cancel", argc, argv, &ids, &n, &rc))
        return rc;
    pd_client_t *c = pd_submit_connect(s);
    long k = c ? pd_cancel(c, ids, n) : 0;
    free(ids);
    if (!c)
        return 3;
    if (k < 0) {
        fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        return 3;
    }
    if (!s->o.quiet)
        fprintf(stderr, "playdoh-submit: %ld of %zu jobs cancelled\n", k, n);
    return 0;
}


const pd_submit_verb_t pd_submit_verb_status = {.name = "status", .usage = S_USAGE_STATUS,
                                                .run = s_status, .bad_exit = 2};
const pd_submit_verb_t pd_submit_verb_results = {.name = "results", .usage = S_USAGE_RESULTS,
                                                 .opts = s_results_opts, .run = s_results,
                                                 .bad_exit = 2};
const pd_submit_verb_t pd_submit_verb_wait = {.name = "wait", .usage = S_USAGE_WAIT,
                                              .opts = s_wait_opts, .run = s_wait, .bad_exit = 2};
const pd_submit_verb_t pd_submit_verb_cancel = {.name = "cancel", .usage = S_USAGE_CANCEL,
                                                .run = s_cancel, .bad_exit = 2};
