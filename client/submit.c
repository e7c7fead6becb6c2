/*  playdoh-submit: the command line.

    Verbs map, status, results, wait and cancel over the client library
    (playdoh.h). `map` reads one JSON value per line, ships the module, submits
    the jobs and prints one JSON line per job in input order; with --detach it
    prints the job ids instead, for `status` and `results` from any process,
    later. --local N runs the whole command on an embedded cluster.

    Exit codes: 0 all jobs done; 1 some jobs failed, were cancelled or
    unknown; 2 bad usage or input; 3 no broker, or the broker refused.
*/
#include "playdoh.h"

#include "pd_beacon.h"
#include "pd_auth.h"
#include "pd_codec.h"
#include "pd_config.h"
#include "pd_json.h"
#include "pd_log.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_PRINT_WINDOW 4096

typedef struct {
    const char *broker;
    int local;
    uint32_t timeout_ms;
    uint32_t retries;
    bool detach;
    bool release;
    bool quiet;
    double wait_s; /* < 0: for ever */
    bool wait_set;
    bool json;             /* cluster: one JSON document instead of a table */
    const char *config;    /* --config FILE */
    const char *cluster;   /* --cluster NAME (discovery) */
    int timeout_req_ms;    /* [submit] timeout_ms: a request's wait for its reply (0 = default) */
    pd_client_opts_t conn; /* security of the connection */
    char conf_key[1024];   /* [submit] key, when conn.key_file points here */
    char conf_bkey[64];    /* [submit] broker_key or a discovered key, for conn.broker_key */
} s_opts_t;

static void s_usage(FILE *f)
{
    fprintf(f,
        "usage: playdoh-submit [OPTIONS] VERB [ARGS]\n"
        "\n"
        "verbs:\n"
        "  map MODULE FUNCTION [ARGS.jsonl|-]  run FUNCTION of MODULE (a .c file or a .so) once\n"
        "                                      per line of JSON (standard input by default);\n"
        "                                      prints one JSON result per line, in input order\n"
        "  status ID...                        print each job's state as a JSON line\n"
        "  results ID...                       print each job's result as a JSON line\n"
        "  wait ID...                          wait until the jobs have ended\n"
        "  cancel ID...                        cancel queued and running jobs\n"
        "  cluster                             show each worker: slots offered and busy, load,\n"
        "                                      GPUs, jobs queued/running/done, last heartbeat\n"
        "  IDs are numbers or ranges: 17, 1-1000.\n"
        "\n"
        "options:\n"
        "  -b, --broker EP      broker endpoint (default: $PLAYDOH_BROKER, [submit] broker of the\n"
        "                       configuration file, a broker found by its beacon, else\n"
        "                       tcp://127.0.0.1:5555)\n"
        "      --cluster NAME   cluster whose beacon to follow (default: [cluster] name, playdoh)\n"
        "      --config FILE    read this configuration file only\n"
        "      --json           cluster: print one JSON document\n"
        "  -l, --local N        run on an embedded cluster of N slots started for this command\n"
        "      --timeout-ms N   map: fail a job that runs longer than N ms (default: no limit)\n"
        "      --retries N      map: attempts when a worker dies (default 3)\n"
        "      --detach         map: print the job ids and return without waiting\n"
        "      --wait S         results, wait: wait up to S seconds (results: 0, wait: for ever)\n"
        "      --release        results: let the broker forget the jobs once printed\n"
        "  -q, --quiet          no summary on standard error\n"
        "      --log-level L    error, warn (default), info or debug\n"
        "\n"
        "security (docs/security.md): towards a broker that is not on loopback the\n"
        "connection runs CurveZMQ and accepts only the broker key this account trusts\n"
        "      --secure         CurveZMQ even on loopback\n"
        "      --insecure       no security even on a network (only on a network you trust)\n"
        "      --key FILE       this account's key pair (default: CONFIG/id.key)\n"
        "      --broker-key KEY the broker's public key (default: CONFIG/known_brokers)\n"
        "      --config-dir DIR CONFIG (default: $PLAYDOH_CONFIG_DIR, $XDG_CONFIG_HOME/playdoh\n"
        "                       or ~/.config/playdoh)\n"
        "  -h, --help           this help\n"
        "\n"
        "exit status: 0 all jobs done, 1 some failed, 2 bad usage or input, 3 broker problem\n");
}

static int s_die_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "playdoh-submit: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(run playdoh-submit --help for usage)\n");
    return 2;
}

static bool s_parse_u32(const char *s, uint32_t *v)
{
    char *end;
    errno = 0;
    unsigned long x = strtoul(s, &end, 10);
    if (errno || end == s || *end || x > UINT32_MAX || s[0] == '-')
        return false;
    *v = (uint32_t) x;
    return true;
}

/* ---- ids ----------------------------------------------------------------- */

/* Parses "17" or "1-1000" items into a growing array. Returns 0 or 2. */
static int s_parse_ids(int argc, char **argv, uint64_t **ids, size_t *n)
{
    size_t cap = 0;
    *ids = NULL;
    *n = 0;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        char *end;
        errno = 0;
        uint64_t a = strtoull(s, &end, 10), b = a;
        bool ok = !errno && end != s && s[0] != '-' && a > 0;
        if (ok && *end == '-') {
            const char *t = end + 1;
            b = strtoull(t, &end, 10);
            ok = !errno && end != t && b >= a && t[0] != '-';
        }
        if (!ok || *end || b - a >= 100000000ULL) {
            free(*ids);
            return s_die_usage("'%s' is not a job id or a range of ids (like 17 or 1-1000)", s);
        }
        for (uint64_t x = a; x <= b; x++) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 64;
                uint64_t *grown = realloc(*ids, cap * sizeof **ids);
                if (!grown) {
                    free(*ids);
                    fprintf(stderr, "playdoh-submit: out of memory\n");
                    return 2;
                }
                *ids = grown;
            }
            (*ids)[(*n)++] = x;
        }
    }
    if (*n == 0)
        return s_die_usage("%s", "no job ids given");
    return 0;
}

/* Prints ids as ranges: "1-100 205". */
static void s_print_ranges(FILE *f, const uint64_t *ids, size_t n)
{
    size_t i = 0;
    bool first = true;
    while (i < n) {
        if (ids[i] == 0) {
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < n && ids[j] == ids[j - 1] + 1)
            j++;
        fprintf(f, first ? "" : " ");
        if (j - i == 1)
            fprintf(f, "%" PRIu64, ids[i]);
        else
            fprintf(f, "%" PRIu64 "-%" PRIu64, ids[i], ids[j - 1]);
        first = false;
        i = j;
    }
    fprintf(f, "\n");
}

/* ---- JSON output --------------------------------------------------------- */

static void s_put_json_str(pd_buf_t *out, const char *s)
{
    pd_buf_t tmp;
    pd_buf_init(&tmp);
    msgpack_packer pk;
    pd_packer_init(&pk, &tmp);
    pd_pack_cstr(&pk, s);
    pd_msgpack_to_json(tmp.data, tmp.len, out);
    pd_buf_free(&tmp);
}

static void s_put(pd_buf_t *out, const char *s) { pd_buf_append(out, s, strlen(s)); }

/* One result as a JSON record line: {"id":..,"state":..,...}. */
static void s_put_record(pd_buf_t *out, const pd_result_t *r)
{
    char head[96];
    snprintf(head, sizeof head, "{\"id\":%" PRIu64 ",\"state\":\"%s\"", r->id,
             pd_job_state_name(r->state));
    s_put(out, head);
    if (r->state == PD_JOB_DONE) {
        s_put(out, ",\"value\":");
        pd_msgpack_to_json(r->value, r->len, out);
    } else if (r->state == PD_JOB_FAILED) {
        s_put(out, ",\"code\":");
        s_put_json_str(out, pd_err_name(r->code));
        s_put(out, ",\"error\":");
        s_put_json_str(out, r->error ? r->error : "");
    }
    s_put(out, "}\n");
}

static void s_flush(pd_buf_t *out)
{
    if (out->len)
        fwrite(out->data, 1, out->len, stdout);
    fflush(stdout);
    pd_buf_reset(out);
}

/* ---- verbs --------------------------------------------------------------- */

/* Reads ARGS.jsonl into packed msgpack values; returns 0 or 2. */
static int s_read_args(const char *path, pd_buf_t *args, size_t *n)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        fprintf(stderr, "playdoh-submit: cannot read arguments from %s: %s\n", path,
                strerror(errno));
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    size_t lineno = 0;
    int rc = 0;
    *n = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t l = (size_t) len;
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r' || line[l - 1] == ' ' ||
                     line[l - 1] == '\t'))
            l--;
        size_t s = 0;
        while (s < l && (line[s] == ' ' || line[s] == '\t'))
            s++;
        if (s == l)
            continue; /* blank lines carry no job */
        char err[256];
        if (pd_json_to_msgpack(line + s, l - s, args, err, sizeof err)) {
            fprintf(stderr, "playdoh-submit: %s line %zu: %s\n",
                    strcmp(path, "-") == 0 ? "standard input" : path, lineno, err);
            rc = 2;
            break;
        }
        (*n)++;
    }
    free(line);
    if (f != stdin)
        fclose(f);
    if (!rc && *n == 0) {
        fprintf(stderr, "playdoh-submit: %s has no arguments (one JSON value per line)\n", path);
        rc = 2;
    }
    return rc;
}

static int s_verb_map(pd_client_t *c, const s_opts_t *o, int argc, char **argv)
{
    if (argc < 2 || argc > 3)
        return s_die_usage("%s", "map needs MODULE FUNCTION [ARGS.jsonl]");
    pd_buf_t args;
    pd_buf_init(&args);
    size_t n = 0;
    int rc = s_read_args(argc == 3 ? argv[2] : "-", &args, &n);
    if (rc) {
        pd_buf_free(&args);
        return rc;
    }
    char hash[PD_HASH_HEX];
    rc = pd_module_upload_file(c, argv[0], hash);
    if (rc) {
        fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        pd_buf_free(&args);
        return rc == PD_EIO ? 2 : 3;
    }
    uint64_t *ids = calloc(n, sizeof *ids);
    pd_result_t *res = calloc(S_PRINT_WINDOW, sizeof *res);
    if (!ids || !res) {
        fprintf(stderr, "playdoh-submit: out of memory for %zu jobs\n", n);
        free(ids);
        free(res);
        pd_buf_free(&args);
        return 2;
    }
    pd_map_opts_t mo = {.timeout_ms = o->timeout_ms, .retries = o->retries};
    long acc = pd_map(c, hash, argv[1], args.data, args.len, n, &mo, ids);
    pd_buf_free(&args);
    if (acc < 0 || (size_t) acc < n) {
        fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        if (acc > 0) {
            fprintf(stderr, "playdoh-submit: %ld of %zu jobs were accepted, with ids: ", acc, n);
            s_print_ranges(stderr, ids, n);
        }
        free(ids);
        free(res);
        return 3;
    }
    if (o->detach) {
        s_print_ranges(stdout, ids, n);
        free(ids);
        free(res);
        return 0;
    }
    /* Print in input order, a window at a time, as the window's jobs end. */
    pd_buf_t out;
    pd_buf_init(&out);
    size_t failed = 0;
    int exit_code = 0;
    for (size_t start = 0; start < n; start += S_PRINT_WINDOW) {
        size_t w = n - start < S_PRINT_WINDOW ? n - start : S_PRINT_WINDOW;
        long got = pd_fetch(c, ids + start, w, -1, res, NULL, NULL);
        if (got < 0) {
            fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
            exit_code = 3;
            break;
        }
        for (size_t i = 0; i < w; i++) {
            const pd_result_t *r = &res[i];
            if (r->state == PD_JOB_DONE) {
                pd_msgpack_to_json(r->value, r->len, &out);
                s_put(&out, "\n");
                continue;
            }
            failed++;
            s_put(&out, "{\"error\":");
            s_put_json_str(&out, r->error ? r->error : pd_job_state_name(r->state));
            char tail[64];
            snprintf(tail, sizeof tail, ",\"job\":%" PRIu64 ",\"code\":", r->id);
            s_put(&out, tail);
            s_put_json_str(&out, pd_err_name(r->code));
            s_put(&out, "}\n");
            if (!o->quiet)
                fprintf(stderr, "playdoh-submit: job %" PRIu64 " (argument %zu) %s: %s\n", r->id,
                        start + i + 1, pd_job_state_name(r->state),
                        r->error ? r->error : pd_strerror(r->code));
        }
        s_flush(&out);
        pd_release(c, ids + start, w);
        pd_results_clear(res, w);
    }
    pd_buf_free(&out);
    if (!exit_code && failed) {
        if (!o->quiet)
            fprintf(stderr, "playdoh-submit: %zu of %zu jobs failed\n", failed, n);
        exit_code = 1;
    }
    free(ids);
    free(res);
    return exit_code;
}

static int s_verb_status(pd_client_t *c, int argc, char **argv)
{
    uint64_t *ids;
    size_t n;
    int rc = s_parse_ids(argc, argv, &ids, &n);
    if (rc)
        return rc;
    pd_job_state_t *st = calloc(n, sizeof *st);
    if (!st || pd_status(c, ids, n, st)) {
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

/* results (print records) and wait (print nothing). */
static int s_verb_results(pd_client_t *c, const s_opts_t *o, int argc, char **argv, bool print)
{
    uint64_t *ids;
    size_t n;
    int rc = s_parse_ids(argc, argv, &ids, &n);
    if (rc)
        return rc;
    double wait_s = o->wait_set ? o->wait_s : (print ? 0 : -1);
    int timeout_ms = wait_s < 0 ? -1 : (int) (wait_s * 1000);
    pd_result_t *res = calloc(n, sizeof *res);
    if (!res) {
        free(ids);
        return 2;
    }
    long got = pd_fetch(c, ids, n, timeout_ms, res, NULL, NULL);
    int exit_code = 0;
    if (got < 0) {
        fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        exit_code = 3;
    } else {
        pd_buf_t out;
        pd_buf_init(&out);
        size_t bad = 0, unfinished = 0;
        for (size_t i = 0; i < n; i++) {
            if (print)
                s_put_record(&out, &res[i]);
            if (!pd_job_state_final(res[i].state))
                unfinished++;
            else if (res[i].state != PD_JOB_DONE)
                bad++;
            if (out.len > (1u << 20))
                s_flush(&out);
        }
        s_flush(&out);
        pd_buf_free(&out);
        if (print && o->release)
            pd_release(c, ids, n);
        if (!print && unfinished && !o->quiet)
            fprintf(stderr, "playdoh-submit: %zu of %zu jobs still running after the wait\n",
                    unfinished, n);
        exit_code = bad || (!print && unfinished) ? 1 : 0;
    }
    pd_results_clear(res, n);
    free(res);
    free(ids);
    return exit_code;
}

static int s_verb_cancel(pd_client_t *c, const s_opts_t *o, int argc, char **argv)
{
    uint64_t *ids;
    size_t n;
    int rc = s_parse_ids(argc, argv, &ids, &n);
    if (rc)
        return rc;
    long k = pd_cancel(c, ids, n);
    free(ids);
    if (k < 0) {
        fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        return 3;
    }
    if (!o->quiet)
        fprintf(stderr, "playdoh-submit: %ld of %zu jobs cancelled\n", k, n);
    return 0;
}

/* Appends a JSON string. */
static void s_put_str(pd_buf_t *out, const char *key, const char *val, bool comma)
{
    if (comma)
        s_put(out, ",");
    s_put_json_str(out, key);
    s_put(out, ":");
    s_put_json_str(out, val);
}

static void s_put_num(pd_buf_t *out, const char *key, double v, bool integer)
{
    char num[64];
    if (integer)
        snprintf(num, sizeof num, ",\"%s\":%.0f", key, v);
    else
        snprintf(num, sizeof num, ",\"%s\":%.3f", key, v);
    s_put(out, num);
}

static int s_verb_cluster(pd_client_t *c, const s_opts_t *o, int argc)
{
    if (argc > 0)
        return s_die_usage("%s", "cluster takes no arguments");
    pd_cluster_info_t ci;
    if (pd_cluster_info(c, &ci)) {
        fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        return 3;
    }
    uint64_t cpus = 0, busy = 0;
    for (size_t i = 0; i < ci.nworkers; i++) {
        cpus += ci.workers[i].cpus;
        busy += ci.workers[i].busy;
    }
    pd_buf_t out;
    pd_buf_init(&out);
    if (o->json) {
        s_put(&out, "{");
        s_put_str(&out, "broker", ci.name, false);
        s_put_str(&out, "cluster", ci.cluster, true);
        s_put_str(&out, "endpoint", pd_client_endpoint(c), true);
        s_put_num(&out, "queued", (double) ci.queued, true);
        s_put_num(&out, "unfinished", (double) ci.unfinished, true);
        s_put(&out, ",\"workers\":[");
        for (size_t i = 0; i < ci.nworkers; i++) {
            const pd_worker_info_t *w = &ci.workers[i];
            s_put(&out, i ? ",{" : "{");
            s_put_str(&out, "host", w->host, false);
            s_put_str(&out, "id", w->id, true);
            s_put_num(&out, "pid", (double) w->pid, true);
            s_put_num(&out, "cpus", w->cpus, true);
            s_put_num(&out, "gpus", w->gpus, true);
            s_put_num(&out, "busy", w->busy, true);
            s_put(&out, ",\"load\":");
            if (w->load < 0) {
                s_put(&out, "null");
            } else {
                char num[32];
                snprintf(num, sizeof num, "%.3f", w->load);
                s_put(&out, num);
            }
            s_put_str(&out, "owner", w->owner, true);
            s_put(&out, ",\"gpu_names\":[");
            /* gpu_names is joined by ", ": split it back */
            const char *p = w->gpu_names;
            bool first = true;
            while (*p) {
                const char *sep = strstr(p, ", ");
                size_t len = sep ? (size_t) (sep - p) : strlen(p);
                char name[256];
                snprintf(name, sizeof name, "%.*s", (int) len, p);
                if (!first)
                    s_put(&out, ",");
                s_put_json_str(&out, name);
                first = false;
                p += len + (sep ? 2 : 0);
            }
            s_put(&out, "]");
            uint64_t running = w->busy, waiting = w->inflight > w->busy ? w->inflight - w->busy : 0;
            s_put_num(&out, "queued", (double) waiting, true);
            s_put_num(&out, "running", (double) running, true);
            s_put_num(&out, "done", (double) w->done, true);
            s_put_num(&out, "requeued", (double) w->requeued, true);
            s_put_num(&out, "heartbeat_ms", (double) w->hb_ms, true);
            s_put_num(&out, "up_s", (double) w->up_s, true);
            s_put(&out, "}");
        }
        s_put(&out, "]}\n");
        s_flush(&out);
    } else {
        printf("cluster '%s', broker %s at %s: %zu workers, %llu cpu slots (%llu busy); %llu "
               "jobs waiting for a slot\n", ci.cluster, ci.name, pd_client_endpoint(c),
               ci.nworkers, (unsigned long long) cpus, (unsigned long long) busy,
               (unsigned long long) ci.queued);
        if (ci.nworkers)
            printf("%-20s %-7s %-5s %-7s %-10s %-8s %-8s %-9s %s\n", "HOST", "CPUS", "GPUS",
                   "LOAD", "QUEUED", "RUNNING", "DONE", "HEARTBEAT", "GPU NAMES");
        for (size_t i = 0; i < ci.nworkers; i++) {
            const pd_worker_info_t *w = &ci.workers[i];
            char slots[32], load[24], hb[24];
            snprintf(slots, sizeof slots, "%u/%u", w->busy, w->cpus);
            if (w->load < 0)
                snprintf(load, sizeof load, "-");
            else
                snprintf(load, sizeof load, "%.2f%s", w->load,
                         strcmp(w->owner, "owner") == 0 ? "*" : "");
            snprintf(hb, sizeof hb, "%.1fs ago", (double) w->hb_ms / 1000.0);
            uint64_t waiting = w->inflight > w->busy ? w->inflight - w->busy : 0;
            printf("%-20s %-7s %-5u %-7s %-10llu %-8u %-8llu %-9s %s\n", w->host, slots, w->gpus,
                   load, (unsigned long long) waiting, w->busy, (unsigned long long) w->done, hb,
                   w->gpu_names[0] ? w->gpu_names : "-");
        }
        if (ci.nworkers)
            printf("CPUS: busy/offered; LOAD: the machine's own load (* = its owner is active, "
                   "slots held back)\n");
    }
    pd_buf_free(&out);
    pd_cluster_info_clear(&ci);
    return 0;
}

/* Where the broker is: --broker, $PLAYDOH_BROKER, [submit] broker, a beacon
   of the cluster, else tcp://127.0.0.1:5555. Returns 0 or 2 (bad file). */
static int s_find_broker(s_opts_t *o, char *ep, size_t cap)
{
    pd_config_t *cf = pd_config_new();
    char why[1024];
    if (!cf || pd_config_load_default(cf, o->config, why, sizeof why)) {
        fprintf(stderr, "playdoh-submit: %s\n", cf ? why : "out of memory");
        pd_config_destroy(&cf);
        return 2;
    }
    /* Security: flags win over [submit] (values checked at load time). */
    if (o->conn.security == PD_SECURITY_AUTO) {
        pd_sec_mode_t m = PD_SEC_AUTO;
        pd_auth_mode_parse(pd_config_str(cf, "submit", "security", "auto"), &m);
        o->conn.security = (pd_security_t) m;
    }
    if (!o->conn.key_file && pd_config_has(cf, "submit", "key")) {
        snprintf(o->conf_key, sizeof o->conf_key, "%s", pd_config_str(cf, "submit", "key", ""));
        o->conn.key_file = o->conf_key;
    }
    if (!o->conn.broker_key && pd_config_has(cf, "submit", "broker_key")) {
        snprintf(o->conf_bkey, sizeof o->conf_bkey, "%s",
                 pd_config_str(cf, "submit", "broker_key", ""));
        o->conn.broker_key = o->conf_bkey;
    }
    const char *env = getenv("PLAYDOH_BROKER");
    if (o->broker || (env && *env)) {
        snprintf(ep, cap, "%s", o->broker ? o->broker : env);
        pd_config_destroy(&cf);
        return 0;
    }
    const char *conf = pd_config_str(cf, "submit", "broker", "");
    if (pd_config_has(cf, "submit", "timeout_ms"))
        o->timeout_req_ms = (int) pd_config_uint(cf, "submit", "timeout_ms", 30000);
    if (conf[0]) {
        snprintf(ep, cap, "%s", conf);
        pd_config_destroy(&cf);
        return 0;
    }
    const char *cluster = o->cluster ? o->cluster
                                     : pd_config_str(cf, "cluster", "name",
                                                     PD_BEACON_DEFAULT_CLUSTER);
    int port = (int) pd_config_uint(cf, "cluster", "beacon_port", PD_BEACON_DEFAULT_PORT);
    int wait = (int) pd_config_uint(cf, "cluster", "discover_timeout_ms", 3000);
    const char *iface = pd_config_str(cf, "cluster", "beacon_interface", NULL);
    /* With CurveZMQ only a broker whose key this account trusts will do: a
       forged beacon leads nowhere (beacons of untrusted brokers are skipped). */
    bool secure = o->conn.security != PD_SECURITY_NONE && !o->conn.broker_key;
    char key[PD_KEY_TXT] = "";
    int rc = port ? pd_discover_broker(cluster, port, iface, wait,
                                       secure ? (o->conn.config_dir ? o->conn.config_dir : "")
                                              : NULL,
                                       ep, cap, key)
                  : PD_ETIMEDOUT;
    if (rc == PD_ENOTRUSTED) {
        pd_auth_trust_hint(ep, key[0] ? key : NULL, why, sizeof why);
        fprintf(stderr, "playdoh-submit: the only broker of cluster '%s' heard: %s\n", cluster,
                why);
        pd_config_destroy(&cf);
        return 3;
    }
    if (rc) {
        snprintf(ep, cap, "tcp://127.0.0.1:5555");
        if (port && !o->quiet)
            fprintf(stderr, "playdoh-submit: no beacon of cluster '%s' heard on UDP port %d "
                    "within %d ms (%s); trying %s\n", cluster, port, wait, pd_strerror(rc), ep);
    } else if (secure && key[0]) {
        snprintf(o->conf_bkey, sizeof o->conf_bkey, "%s", key);
        o->conn.broker_key = o->conf_bkey;
    }
    pd_config_destroy(&cf);
    return 0;
}

int main(int argc, char **argv)
{
    s_opts_t o = {.retries = 3};
    pd_log_set_tag("submit");
    enum { O_TIMEOUT = 256, O_RETRIES, O_DETACH, O_WAIT, O_RELEASE, O_LEVEL, O_JSON, O_CONFIG,
           O_CLUSTER, O_SECURE, O_INSECURE, O_KEY, O_BROKER_KEY, O_CONFIG_DIR };
    static const struct option longs[] = {
        {"broker", required_argument, NULL, 'b'},  {"local", required_argument, NULL, 'l'},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"retries", required_argument, NULL, O_RETRIES},
        {"detach", no_argument, NULL, O_DETACH},   {"wait", required_argument, NULL, O_WAIT},
        {"release", no_argument, NULL, O_RELEASE}, {"quiet", no_argument, NULL, 'q'},
        {"log-level", required_argument, NULL, O_LEVEL},
        {"json", no_argument, NULL, O_JSON},       {"config", required_argument, NULL, O_CONFIG},
        {"cluster", required_argument, NULL, O_CLUSTER},
        {"secure", no_argument, NULL, O_SECURE},   {"insecure", no_argument, NULL, O_INSECURE},
        {"key", required_argument, NULL, O_KEY},
        {"broker-key", required_argument, NULL, O_BROKER_KEY},
        {"config-dir", required_argument, NULL, O_CONFIG_DIR},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    int ch;
    uint32_t u;
    while ((ch = getopt_long(argc, argv, "b:l:qh", longs, NULL)) != -1) {
        switch (ch) {
        case 'b': o.broker = optarg; break;
        case 'l':
            if (!s_parse_u32(optarg, &u) || u == 0 || u > 4096)
                return s_die_usage("--local wants a number of slots from 1 to 4096, not '%s'",
                                   optarg);
            o.local = (int) u;
            break;
        case O_TIMEOUT:
            if (!s_parse_u32(optarg, &o.timeout_ms))
                return s_die_usage("--timeout-ms wants milliseconds, not '%s'", optarg);
            break;
        case O_RETRIES:
            if (!s_parse_u32(optarg, &o.retries) || o.retries == 0 || o.retries > 100)
                return s_die_usage("--retries wants a number from 1 to 100, not '%s'", optarg);
            break;
        case O_DETACH: o.detach = true; break;
        case O_WAIT: {
            char *end;
            o.wait_s = strtod(optarg, &end);
            if (end == optarg || *end)
                return s_die_usage("--wait wants seconds (-1: for ever), not '%s'", optarg);
            o.wait_set = true;
            break;
        }
        case O_RELEASE: o.release = true; break;
        case 'q': o.quiet = true; break;
        case O_LEVEL: {
            pd_log_level_t lv;
            if (pd_log_parse_level(optarg, &lv))
                return s_die_usage("--log-level wants error, warn, info or debug, not '%s'", optarg);
            pd_log_set_level(lv);
            setenv("PLAYDOH_LOG_LEVEL", optarg, 1);
            break;
        }
        case O_JSON: o.json = true; break;
        case O_CONFIG: o.config = optarg; break;
        case O_CLUSTER:
            if (!pd_beacon_name_ok(optarg))
                return s_die_usage("--cluster wants 1 to 63 letters, digits, '-', '_' or '.', "
                                   "not '%s'", optarg);
            o.cluster = optarg;
            break;
        case O_SECURE:
        case O_INSECURE: {
            pd_security_t want = ch == O_SECURE ? PD_SECURITY_CURVE : PD_SECURITY_NONE;
            if (o.conn.security != PD_SECURITY_AUTO && o.conn.security != want)
                return s_die_usage("%s", "--secure and --insecure exclude each other");
            o.conn.security = want;
            break;
        }
        case O_KEY: o.conn.key_file = optarg; break;
        case O_BROKER_KEY: o.conn.broker_key = optarg; break;
        case O_CONFIG_DIR: o.conn.config_dir = optarg; break;
        case 'h': s_usage(stdout); return 0;
        default: fprintf(stderr, "(run playdoh-submit --help for usage)\n"); return 2;
        }
    }
    if (optind >= argc) {
        s_usage(stderr);
        return 2;
    }
    const char *verb = argv[optind];
    int vargc = argc - optind - 1;
    char **vargv = argv + optind + 1;
    static const char *verbs[] = {"map", "status", "results", "wait", "cancel", "cluster"};
    bool known = false;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        known |= strcmp(verb, verbs[i]) == 0;
    if (!known)
        return s_die_usage("unknown verb '%s' (verbs: map, status, results, wait, cancel, "
                           "cluster)", verb);
    if (o.local && o.broker)
        return s_die_usage("%s", "--local and --broker exclude each other");

    int err = 0;
    pd_local_t *local = NULL;
    if (o.local) {
        local = pd_local_start(o.local, &err);
        if (!local) {
            fprintf(stderr, "playdoh-submit: could not start the local cluster: %s\n",
                    pd_strerror(err));
            return 3;
        }
        o.broker = pd_local_endpoint(local);
    }
    char ep[300];
    int frc = local ? 0 : s_find_broker(&o, ep, sizeof ep);
    if (frc) {
        pd_local_stop(&local);
        return frc;
    }
    char why[2048] = "";
    pd_client_opts_t conn = local ? *pd_local_client_opts(local) : o.conn;
    conn.why = why;
    conn.whycap = sizeof why;
    pd_client_t *c = pd_client_open(local ? o.broker : ep, &conn, &err);
    if (c && o.timeout_req_ms > 0)
        pd_client_set_timeout(c, o.timeout_req_ms);
    if (!c) {
        if (err == PD_EUNREACH)
            fprintf(stderr,
                    "playdoh-submit: no broker answered at %s (%s): start playdoh-broker, give "
                    "its endpoint with --broker, or use --local N\n",
                    local ? o.broker : ep, pd_strerror(err));
        else
            fprintf(stderr, "playdoh-submit: %s\n", why[0] ? why : pd_strerror(err));
        pd_local_stop(&local);
        return 3;
    }
    int rc;
    if (strcmp(verb, "map") == 0)
        rc = s_verb_map(c, &o, vargc, vargv);
    else if (strcmp(verb, "status") == 0)
        rc = s_verb_status(c, vargc, vargv);
    else if (strcmp(verb, "results") == 0)
        rc = s_verb_results(c, &o, vargc, vargv, true);
    else if (strcmp(verb, "wait") == 0)
        rc = s_verb_results(c, &o, vargc, vargv, false);
    else if (strcmp(verb, "cluster") == 0)
        rc = s_verb_cluster(c, &o, vargc);
    else
        rc = s_verb_cancel(c, &o, vargc, vargv);
    pd_client_destroy(&c);
    pd_local_stop(&local);
    return rc;
}
