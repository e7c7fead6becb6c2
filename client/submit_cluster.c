/*  playdoh-submit cluster and gc: the broker's view of its cluster (each
    worker's slots, load, GPUs and jobs, and each owner's batches) as a table
    or one JSON document, and its garbage collection of fetched results.
*/
#include "submit.h"
#include "pd_plat.h"

#include "pd_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pd_submit_opt_t s_cluster_opts[] = {
    {"json", no_argument, O_JSON},
    {NULL, 0, 0},
};

static const pd_submit_opt_t s_gc_opts[] = {
    {"ttl", required_argument, O_TTL},
    {NULL, 0, 0},
};

/* Applies cluster's --json and gc's --ttl. */
static int s_apply(pd_submit_t *s, int code, const char *arg, int bad_exit)
{
    pd_submit_opts_t *o = &s->o;
    switch (code) {
    case O_JSON: o->json = true; break;
    case O_TTL: {
        uint32_t ttl;
        if (!pd_submit_parse_u32(arg, &ttl)) {
            pd_submit_usage_error(s, "--ttl wants seconds (0: every fetched result), not '%s'",
                                  arg);
            return bad_exit;
        }
        o->ttl_s = ttl;
        break;
    }
    default: break;
    }
    return 0;
}

/* Appends a JSON string. */
static void s_put_str(pd_buf_t *out, const char *key, const char *val, bool comma)
{
    if (comma)
        pd_submit_put(out, ",");
    pd_submit_put_json_str(out, key);
    pd_submit_put(out, ":");
    pd_submit_put_json_str(out, val);
}

static void s_put_num(pd_buf_t *out, const char *key, double v, bool integer)
{
    char num[64];
    if (integer)
        snprintf(num, sizeof num, ",\"%s\":%.0f", key, v);
    else
        snprintf(num, sizeof num, ",\"%s\":%.3f", key, v);
    pd_submit_put(out, num);
}

static const char S_USAGE_CLUSTER[] =
    "usage: playdoh-submit [GLOBAL OPTIONS] cluster [--json]\n"
    "\n"
    "Shows each worker: slots offered and busy, load, GPUs, jobs queued/running/done, last\n"
    "heartbeat.\n"
    "\n"
    "options:\n"
    "      --json           print one JSON document instead of a table\n"
    "\n"
    "exit status: 0, 2 bad usage, 3 broker problem\n";

/* Appends worker w as a JSON object (first: the first of the list). */
static void s_put_worker(pd_buf_t *out, const pd_worker_info_t *w, bool first)
{
    pd_submit_put(out, first ? "{" : ",{");
    s_put_str(out, "host", w->host, false);
    s_put_str(out, "id", w->id, true);
    s_put_num(out, "pid", (double) w->pid, true);
    s_put_num(out, "cpus", w->cpus, true);
    s_put_num(out, "gpus", w->gpus, true);
    s_put_num(out, "busy", w->busy, true);
    pd_submit_put(out, ",\"load\":");
    if (w->load < 0) {
        pd_submit_put(out, "null");
    } else {
        char num[32];
        snprintf(num, sizeof num, "%.3f", w->load);
        pd_submit_put(out, num);
    }
    s_put_str(out, "owner", w->owner, true);
    pd_submit_put(out, ",\"gpu_names\":[");
    /* gpu_names is joined by ", ": split it back */
    const char *p = w->gpu_names;
    bool first_gpu = true;
    while (*p) {
        const char *sep = strstr(p, ", ");
        size_t len = sep ? (size_t) (sep - p) : strlen(p);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int) len, p);
        if (!first_gpu)
            pd_submit_put(out, ",");
        pd_submit_put_json_str(out, name);
        first_gpu = false;
        p += len + (sep ? 2 : 0);
    }
    pd_submit_put(out, "]");
    s_put_num(out, "gpu_mem", (double) w->gpu_mem, true);
    uint64_t running = w->busy, waiting = w->inflight > w->busy ? w->inflight - w->busy : 0;
    s_put_num(out, "queued", (double) waiting, true);
    s_put_num(out, "running", (double) running, true);
    s_put_num(out, "done", (double) w->done, true);
    s_put_num(out, "requeued", (double) w->requeued, true);
    s_put_num(out, "task_nodes", (double) w->nodes, true);
    s_put_num(out, "gpu_task_nodes", (double) w->gpu_nodes, true);
    s_put_num(out, "heartbeat_ms", (double) w->hb_ms, true);
    s_put_num(out, "up_s", (double) w->up_s, true);
    s_put_str(out, "platform", w->platform, true);
    if (w->slurm_job[0]) {
        s_put_str(out, "slurm_job", w->slurm_job, true);
        s_put_str(out, "slurm_step", w->slurm_step, true);
        s_put_str(out, "slurm_array", w->slurm_array, true);
    }
    s_put_str(out, "version", w->version, true);
    pd_submit_put(out, "}");
}

/* Prints the cluster as one JSON document. */
static void s_print_json(pd_client_t *c, const pd_cluster_info_t *ci)
{
    pd_buf_t out;
    pd_buf_init(&out);
    pd_submit_put(&out, "{");
    s_put_str(&out, "broker", ci->name, false);
    s_put_str(&out, "cluster", ci->cluster, true);
    s_put_str(&out, "endpoint", pd_client_endpoint(c), true);
    s_put_num(&out, "queued", (double) ci->queued, true);
    s_put_num(&out, "unfinished", (double) ci->unfinished, true);
    pd_submit_put(&out, ",\"workers\":[");
    for (size_t i = 0; i < ci->nworkers; i++)
        s_put_worker(&out, &ci->workers[i], i == 0);
    pd_submit_put(&out, "],\"owners\":[");
    for (size_t i = 0; i < ci->nowners; i++) {
        const pd_owner_info_t *ow = &ci->owners[i];
        pd_submit_put(&out, i ? ",{" : "{");
        s_put_str(&out, "owner", ow->owner, false);
        pd_submit_put(&out, ow->mine ? ",\"mine\":true" : ",\"mine\":false");
        s_put_num(&out, "batches", (double) ow->batches, true);
        s_put_num(&out, "queued", (double) ow->queued, true);
        s_put_num(&out, "running", (double) ow->running, true);
        s_put_num(&out, "final", (double) ow->final, true);
        pd_submit_put(&out, "}");
    }
    pd_submit_put(&out, "]");
    s_put_str(&out, "broker_version", ci->version, true);
    pd_submit_put(&out, "}\n");
    pd_submit_flush(&out);
    pd_buf_free(&out);
}

/* Prints the cluster as a table: a line per worker, then per owner. */
static void s_print_table(pd_client_t *c, const pd_cluster_info_t *ci)
{
    uint64_t cpus = 0, busy = 0, nodes = 0, gnodes = 0;
    for (size_t i = 0; i < ci->nworkers; i++) {
        cpus += ci->workers[i].cpus;
        busy += ci->workers[i].busy;
        nodes += ci->workers[i].nodes;
        gnodes += ci->workers[i].gpu_nodes;
    }
    printf("cluster '%s', broker %s at %s: %zu workers, %llu cpu slots (%llu busy); %llu "
           "jobs waiting for a slot\n", ci->cluster, ci->name, pd_client_endpoint(c),
           ci->nworkers, (unsigned long long) cpus, (unsigned long long) (busy + nodes),
           (unsigned long long) ci->queued);
    /* A SLURM column (job array task, or job, and step) when pilots are there. */
    bool pilots = false;
    for (size_t i = 0; i < ci->nworkers; i++)
        pilots |= ci->workers[i].slurm_job[0] != 0;
    if (ci->nworkers)
        printf("%-20s %-15s %-7s %-5s %-7s %-10s %-8s %-8s %-9s %s%s\n", "HOST", "PLATFORM",
               "CPUS", "GPUS",
               "LOAD", "QUEUED", "RUNNING", "DONE", "HEARTBEAT", pilots ? "SLURM           "
                                                                      : "", "GPU NAMES");
    for (size_t i = 0; i < ci->nworkers; i++) {
        const pd_worker_info_t *w = &ci->workers[i];
        char slots[32], load[24], hb[24];
        snprintf(slots, sizeof slots, "%u/%u", w->busy + w->nodes, w->cpus);
        if (w->load < 0)
            snprintf(load, sizeof load, "-");
        else
            snprintf(load, sizeof load, "%.2f%s", w->load,
                     strcmp(w->owner, "owner") == 0 ? "*" : "");
        snprintf(hb, sizeof hb, "%.1fs ago", (double) w->hb_ms / 1000.0);
        uint64_t waiting = w->inflight > w->busy ? w->inflight - w->busy : 0;
        char gmem[48] = "";
        if (w->gpu_mem)
            snprintf(gmem, sizeof gmem, " (%.1f GiB offered)",
                     (double) w->gpu_mem / (1024.0 * 1024.0 * 1024.0));
        char pilot[96] = "-", slurm[112] = "";
        if (w->slurm_job[0])
            snprintf(pilot, sizeof pilot, "%s.%s",
                     w->slurm_array[0] ? w->slurm_array : w->slurm_job,
                     w->slurm_step[0] ? w->slurm_step : "?");
        if (pilots)
            snprintf(slurm, sizeof slurm, "%-15s ", pilot);
        printf("%-20s %-15s %-7s %-5u %-7s %-10llu %-8u %-8llu %-9s %s%s%s\n", w->host,
               w->platform[0] ? w->platform : "-", slots,
               w->gpus, load, (unsigned long long) waiting, w->busy,
               (unsigned long long) w->done, hb, slurm, w->gpu_names[0] ? w->gpu_names : "-",
               gmem);
    }
    if (ci->nworkers)
        printf("CPUS: busy/offered (busy: running a job or held by a task's node); LOAD: "
               "the machine's own load (* = its owner is active, slots held back)%s\n",
               pilots ? "; SLURM: a pilot's job (array task).step" : "");
    if (nodes || gnodes)
        printf("synchronous tasks hold %llu CPU slot%s and %llu GPU%s\n",
               (unsigned long long) nodes, nodes == 1 ? "" : "s", (unsigned long long) gnodes,
               gnodes == 1 ? "" : "s");
    if (ci->nowners)
        printf("%-46s %-8s %-8s %-8s %s\n", "OWNER", "BATCHES", "QUEUED", "RUNNING",
               "FINAL");
    for (size_t i = 0; i < ci->nowners; i++) {
        const pd_owner_info_t *ow = &ci->owners[i];
        char who[64];
        snprintf(who, sizeof who, "%s%s", ow->owner[0] ? ow->owner : "(none)",
                 ow->mine ? " (you)" : "");
        printf("%-46s %-8llu %-8llu %-8llu %llu\n", who, (unsigned long long) ow->batches,
               (unsigned long long) ow->queued, (unsigned long long) ow->running,
               (unsigned long long) ow->final);
    }
    if (ci->nowners)
        printf("OWNER: the client key that submitted the jobs, or local: and the hash of an "
               "account's owner token (no keys); FINAL: results not yet released\n");
}

/* The session's client for verb, which takes no arguments (hint: how to
   say more, after the usage error); NULL with *rc the exit status (2 after
   an argument, 3 without a broker). */
static pd_client_t *s_connect_bare(pd_submit_t *s, const char *verb, const char *hint, int argc,
                                   char **argv, int *rc)
{
    if (argc > 0) {
        pd_submit_usage_error(s, "%s takes no arguments, not '%s'%s", verb, argv[0], hint);
        *rc = 2;
        return NULL;
    }
    *rc = 3;
    return pd_submit_connect(s);
}

static int s_cluster(pd_submit_t *s, int argc, char **argv)
{
    int rc;
    pd_client_t *c = s_connect_bare(s, "cluster", "", argc, argv, &rc);
    if (!c)
        return rc;
    pd_cluster_info_t ci;
    if (pd_cluster_info(c, &ci)) {
        fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        return 3;
    }
    if (s->o.json)
        s_print_json(c, &ci);
    else
        s_print_table(c, &ci);
    pd_cluster_info_clear(&ci);
    return 0;
}

static const char S_USAGE_GC[] =
    "usage: playdoh-submit [GLOBAL OPTIONS] gc [--ttl S]\n"
    "\n"
    "Makes the broker forget the results fetched more than S seconds ago (default: its\n"
    "--result-ttl) and shrink its journal, then prints one JSON line:\n"
    "{\"forgot\":N,\"journal\":PATH,\"journal_bytes\":B,\"journal_max_bytes\":M,\"journal_ok\":..}\n"
    "\n"
    "options:\n"
    "      --ttl S          forget results fetched more than S seconds ago (0: all fetched)\n"
    "\n"
    "exit status: 0, 2 bad usage, 3 broker problem\n";

static int s_gc(pd_submit_t *s, int argc, char **argv)
{
    int rc;
    pd_client_t *c = s_connect_bare(s, "gc", " (use --ttl S)", argc, argv, &rc);
    if (!c)
        return rc;
    pd_broker_info_t info;
    long forgot = pd_gc(c, s->o.ttl_s, &info);
    if (forgot < 0) {
        fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        return 3;
    }
    pd_buf_t out;
    pd_buf_init(&out);
    char head[160];
    snprintf(head, sizeof head, "{\"forgot\":%ld,\"journal\":", forgot);
    pd_submit_put(&out, head);
    pd_submit_put_json_str(&out, info.journal);
    snprintf(head, sizeof head, ",\"journal_bytes\":%" PRIu64 ",\"journal_max_bytes\":%" PRIu64
             ",\"journal_ok\":%s}\n", info.journal_bytes, info.journal_max_bytes,
             info.journal_ok ? "true" : "false");
    pd_submit_put(&out, head);
    fwrite(out.data, 1, out.len, stdout);
    pd_buf_free(&out);
    if (!s->o.quiet) {
        if (info.journal[0])
            fprintf(stderr, "playdoh-submit: forgot %ld results; journal %s: %.1f MiB%s\n",
                    forgot, info.journal, info.journal_bytes / 1048576.0,
                    info.journal_ok ? "" : " (cannot be written: submits are refused)");
        else
            fprintf(stderr, "playdoh-submit: forgot %ld results; the broker keeps no journal\n",
                    forgot);
    }
    return 0;
}


const pd_submit_verb_t pd_submit_verb_cluster = {.name = "cluster", .usage = S_USAGE_CLUSTER,
                                                 .opts = s_cluster_opts, .apply = s_apply,
                                                 .run = s_cluster, .bad_exit = 2};
const pd_submit_verb_t pd_submit_verb_gc = {.name = "gc", .usage = S_USAGE_GC, .opts = s_gc_opts,
                                            .apply = s_apply, .run = s_gc, .bad_exit = 2};
