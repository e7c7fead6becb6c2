/*  playdoh-submit: the command line.

    Verbs map, exec, task, optimize, status, results, wait, cancel, cluster
    and gc over the client library (playdoh.h), each in a file of its own
    that owns its options and its --help (submit.h lists them): `map` reads
    one JSON value per line, ships the module, submits the jobs and prints
    one JSON line per job in input order (submit_map.c); `exec` runs a shell
    command per argument line, as GNU parallel does (submit_exec.c); `task`
    runs a synchronous task of --nodes N nodes along the tubes of --graph
    FILE (submit_task.c); with --detach they print the ids instead (tasks as
    t17), for `status`, `results`, `wait` and `cancel` from any process,
    later (submit_jobs.c). `optimize` runs an optimisation on the cluster
    (submit_optim.c). --local N runs the whole command on an embedded
    cluster. `slurm` starts workers as Slurm pilot jobs and parses its own
    options (client/pd_slurm.c).

    This file holds the global options, the table of verbs and the
    dispatch, and applies the options several verbs share. Options are
    parsed in two steps: the global ones before the verb, then the verb's
    own (and the global ones again) after it, so that every verb has its
    --help and an option given to the wrong verb is named as such.

    Exit codes: 0 all jobs done; 1 some jobs failed, were cancelled or
    unknown; 2 bad usage or input; 3 no broker, or the broker refused.
    `exec` follows GNU parallel instead: the number of failed jobs (101 for
    more than 100), 255 for any other error.
*/
#include "submit.h"
#include "pd_plat.h"

#include "pd_auth.h"
#include "pd_beacon.h"
#include "pd_cli.h"
#include "pd_limits.h"
#include "pd_log.h"
#include "pd_slurm.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- verbs and their options --------------------------------------------- */

/* The options every verb takes, before the verb and after it. */
static const pd_submit_opt_t s_global_opts[] = {
    {"broker", required_argument, O_BROKER},
    {"local", required_argument, O_LOCAL},
    {"http", required_argument, O_HTTP},
    {"quiet", no_argument, O_QUIET},
    {"log-level", required_argument, O_LEVEL},
    {"no-progress", no_argument, O_NO_PROGRESS},
    {"help", no_argument, O_HELP},
    {"version", no_argument, O_VERSION},
    {"config", required_argument, O_CONFIG},
    {"cluster", required_argument, O_CLUSTER},
    {"secure", no_argument, O_SECURE},
    {"insecure", no_argument, O_INSECURE},
    {"key", required_argument, O_KEY},
    {"broker-key", required_argument, O_BROKER_KEY},
    {"config-dir", required_argument, O_CONFIG_DIR},
    {NULL, 0, 0},
};

/* The verbs, in the order their names are listed (slurm parses its own
   options: client/pd_slurm.c). */
static const pd_submit_verb_t *const s_verbs[] = {
    &pd_submit_verb_map,     &pd_submit_verb_exec,           &pd_submit_verb_task,
    &pd_submit_verb_optimize, &pd_submit_verb_optimize_status, &pd_submit_verb_optimize_fetch,
    &pd_submit_verb_status,  &pd_submit_verb_results,        &pd_submit_verb_wait,
    &pd_submit_verb_cluster, &pd_submit_verb_stop,           &pd_submit_verb_cancel,
    &pd_submit_verb_gc,
};
#define S_NVERBS (sizeof s_verbs / sizeof s_verbs[0])
#define S_MAX_OPTS 128 /* options of all verbs together, at most */

static const char S_GLOBAL_HELP[] =
    "global options (before or after the verb):\n"
    "  -b, --broker EP      broker endpoint (default: $PLAYDOH_BROKER, [submit] broker of the\n"
    "                       configuration file, a broker found by its beacon, else\n"
    "                       tcp://127.0.0.1:5555)\n"
    "      --cluster NAME   cluster whose beacon to follow (default: [cluster] name, playdoh)\n"
    "      --config FILE    read this configuration file only\n"
    "  -l, --local N        run on an embedded cluster of N slots started for this command\n"
    "      --http PORT      with --local: its dashboard at http://127.0.0.1:PORT/ while the\n"
    "                       command runs (docs/dashboard.md)\n"
    "  -q, --quiet          no summary or per-job error lines on standard error\n"
    "      --no-progress    no progress bar (drawn only when standard error is a terminal)\n"
    "      --log-level L    error, warn (default), info or debug\n"
    "  -h, --help           help (after a verb: that verb's help)\n"
    "      --version        print the version and exit\n"
    "security (docs/security.md): towards a broker that is not on loopback the\n"
    "connection runs CurveZMQ and accepts only the broker key this account trusts\n"
    "      --secure         CurveZMQ even on loopback\n"
    "      --insecure       no security even on a network (only on a network you trust)\n"
    "      --key FILE       this account's key pair (default: CONFIG/id.key)\n"
    "      --broker-key KEY the broker's public key (default: CONFIG/known_brokers, or a\n"
    "                       trusted key announced by the beacon)\n"
    "      --config-dir DIR CONFIG (default: $PLAYDOH_CONFIG_DIR, $XDG_CONFIG_HOME/playdoh\n"
    "                       or ~/.config/playdoh)\n";

static void s_usage(FILE *f)
{
    fprintf(f,
        "usage: playdoh-submit [GLOBAL OPTIONS] VERB [OPTIONS] [ARGS]\n"
        "\n"
        "verbs (playdoh-submit VERB --help for each):\n"
        "  map MODULE FUNCTION [ARGS.jsonl]  run a C function once per line of JSON\n"
        "  exec [--] COMMAND {} [::: ARGS]   run a shell command once per argument line\n"
        "  task MODULE FUNCTION --nodes N    run FUNCTION on N nodes at once, exchanging data\n"
        "       [--graph FILE]               along the tubes of FILE (a synchronous task)\n"
        "  optimize MODULE FITNESS --algo A  minimise FITNESS of MODULE with PSO, GA or CMA-ES\n"
        "       --bounds FILE|LO:HI ...      as islands on the cluster; prints the result as JSON\n"
        "  optimize-status ID                an optimisation's progress (t17) as JSON\n"
        "  optimize-fetch ID                 an optimisation's result (t17) as JSON\n"
        "  status ID...                      print each job's state as a JSON line\n"
        "  results ID...                     print each job's result as a JSON line\n"
        "  wait ID...                        wait until the jobs have ended\n"
        "  cancel ID...                      cancel queued and running jobs\n"
        "  stop ID...                        ask tasks and optimisations (t17) to finish early\n"
        "  cluster [--json]                  show each worker: slots offered and busy, load,\n"
        "                                    GPUs, jobs queued/running/done, last heartbeat\n"
        "  gc [--ttl S]                      forget results fetched long ago, shrink the journal\n"
        "  slurm --workers N --cpus-per-worker C [...]  start N workers as Slurm pilot jobs\n"
        "  IDs are numbers or ranges: 17, 1-1000; tasks are t17 (or t3-5).\n"
        "\n"
        "%s"
        "\n"
        "exit status: 0 all jobs done, 1 some failed, 2 bad usage or input, 3 broker problem\n"
        "(slurm: or Slurm missing or refusing; exec: the number of failed jobs, as GNU\n"
        "parallel)\n", S_GLOBAL_HELP);
}

void pd_submit_usage_error(const pd_submit_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "playdoh-submit: ");
    if (s && s->o.verb)
        fprintf(stderr, "%s: ", s->o.verb);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (s && s->o.verb)
        fprintf(stderr, "\n(run playdoh-submit %s --help for usage)\n", s->o.verb);
    else
        fprintf(stderr, "\n(run playdoh-submit --help for usage)\n");
}

bool pd_submit_parse_u64(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return false;
    *v = x;
    return true;
}

bool pd_submit_parse_u32(const char *s, uint32_t *v)
{
    uint64_t x;
    if (!pd_submit_parse_u64(s, &x) || x > UINT32_MAX)
        return false;
    *v = (uint32_t) x;
    return true;
}

bool pd_submit_count(const pd_submit_t *s, const char *opt, const char *what, const char *arg,
                     uint64_t lo, uint64_t hi, uint64_t *v)
{
    if (pd_submit_parse_u64(arg, v) && *v >= lo && *v <= hi)
        return true;
    pd_submit_usage_error(s, "--%s wants %s from %llu to %llu, not '%s'", opt, what,
                          (unsigned long long) lo, (unsigned long long) hi, arg);
    return false;
}

bool pd_submit_count_of(const pd_submit_t *s, const pd_submit_count_t *table, size_t n, int code,
                        const char *arg, uint64_t *v)
{
    for (size_t i = 0; i < n; i++)
        if (table[i].code == code)
            return pd_submit_count(s, table[i].opt, table[i].what, arg, table[i].lo, table[i].hi,
                                   v);
    return false;
}

/* The option of code among opts (ended by {NULL}), or NULL. */
static const pd_submit_opt_t *s_opt_in(const pd_submit_opt_t *opts, int code)
{
    for (; opts && opts->name; opts++)
        if (opts->code == code)
            return opts;
    return NULL;
}

/* Names the verbs that take the option code, for "put it after the verb". */
static void s_verbs_of(int code, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = 0;
    for (size_t i = 0; i < S_NVERBS; i++)
        if (s_opt_in(s_verbs[i]->opts, code))
            k += (size_t) snprintf(buf + k, cap - k, "%s%s", k ? ", " : "", s_verbs[i]->name);
}

/* Fills longs with every option of every verb, each name once, for
   getopt_long (an option of another verb is then known, and named). */
static void s_all_opts(struct option *longs, size_t cap)
{
    size_t n = 0;
    for (size_t v = 0; v <= S_NVERBS; v++) {
        const pd_submit_opt_t *o = v == 0 ? s_global_opts : s_verbs[v - 1]->opts;
        for (; o && o->name; o++) {
            size_t k = 0;
            while (k < n && strcmp(longs[k].name, o->name) != 0)
                k++;
            if (k == n && n + 1 < cap)
                longs[n++] = (struct option){o->name, o->has_arg, NULL, o->code};
        }
    }
    memset(&longs[n], 0, sizeof longs[n]);
}

/* The option of code: a global one, or one of some verb's. */
static const pd_submit_opt_t *s_find_opt(int code)
{
    const pd_submit_opt_t *o = s_opt_in(s_global_opts, code);
    for (size_t i = 0; !o && i < S_NVERBS; i++)
        o = s_opt_in(s_verbs[i]->opts, code);
    return o;
}

/* Applies one of the global options; returns 0 (also for an option that is
   not global), or bad_exit after the usage error. */
static int s_apply_global(pd_submit_t *s, int code, const char *arg, int bad_exit)
{
    pd_submit_opts_t *o = &s->o;
    uint64_t v;
    switch (code) {
    case O_BROKER: o->broker = arg; break;
    case O_LOCAL:
        if (!pd_submit_count(s, "local", "a number of slots", arg, 1, 4096, &v))
            return bad_exit;
        o->local = (int) v;
        break;
    case O_HTTP:
        if (!pd_submit_count(s, "http", "a port of loopback for the dashboard", arg, 1, 65535, &v))
            return bad_exit;
        o->http = (int) v;
        break;
    case O_QUIET: o->quiet = true; break;
    case O_NO_PROGRESS: o->no_progress = true; break;
    case O_LEVEL: {
        pd_log_level_t lv;
        if (pd_log_parse_level(arg, &lv)) {
            pd_submit_usage_error(s, "--log-level wants error, warn, info or debug, not '%s'",
                                  arg);
            return bad_exit;
        }
        pd_log_set_level(lv);
        setenv("PLAYDOH_LOG_LEVEL", arg, 1);
        break;
    }
    case O_CONFIG: o->config = arg; break;
    case O_SECURE:
    case O_INSECURE: {
        pd_security_t want = code == O_SECURE ? PD_SECURITY_CURVE : PD_SECURITY_NONE;
        if (o->conn.security != PD_SECURITY_AUTO && o->conn.security != want) {
            pd_submit_usage_error(s, "%s", "--secure and --insecure exclude each other");
            return bad_exit;
        }
        o->conn.security = want;
        break;
    }
    case O_KEY: o->conn.key_file = arg; break;
    case O_BROKER_KEY: o->conn.broker_key = arg; break;
    case O_CONFIG_DIR: o->conn.config_dir = arg; break;
    case O_CLUSTER:
        if (!pd_beacon_name_ok(arg)) {
            pd_submit_usage_error(s, "--cluster wants 1 to 63 letters, digits, '-', '_' or '.', "
                                  "not '%s'", arg);
            return bad_exit;
        }
        o->cluster = arg;
        break;

    default: break;
    }
    return 0;
}

/* The counts of the verbs that submit jobs (32 bits). */
static const pd_submit_count_t s_job_counts[] = {
    {O_RETRY_FAILED, "retry-failed", "a number of runs again", 0, 100},
    {O_RETRIES, "retries", "a number of lost workers", 1, 100},
    {O_MAX_SLOTS, "max-slots", "a number of slots", 1, 1000000},
};

/* Applies an option several verbs share (the limits of each job, --detach,
   --shared, --gpu, --cuda, --args, --wait, --release) or, for any other,
   the verb's own applier. Returns 0, or bad_exit after the usage error. */
static int s_apply_shared(pd_submit_t *s, const pd_submit_verb_t *verb, int code,
                          const char *arg, int bad_exit)
{
    pd_submit_opts_t *o = &s->o;
    uint64_t v;
    switch (code) {
    case O_TIMEOUT:
        if (!pd_submit_parse_u32(arg, &o->timeout_ms)) {
            pd_submit_usage_error(s, "--timeout-ms wants milliseconds, not '%s'", arg);
            return bad_exit;
        }
        break;
    case O_RETRY_FAILED:
    case O_RETRIES:
    case O_MAX_SLOTS:
        if (!pd_submit_count_of(s, s_job_counts, sizeof s_job_counts / sizeof s_job_counts[0],
                                code, arg, &v))
            return bad_exit;
        *(code == O_RETRY_FAILED ? &o->retry_failed
          : code == O_RETRIES    ? &o->retries
                                 : &o->max_slots) = (uint32_t) v;
        break;
    case O_MEMORY:
        if (pd_limits_parse_size(arg, &o->memory)) {
            pd_submit_usage_error(s, "--memory wants a size such as 2G or 512M, not '%s'", arg);
            return bad_exit;
        }
        break;
    case O_CPU_TIME:
        if (pd_limits_parse_seconds(arg, &o->cpu_time_s)) {
            pd_submit_usage_error(s, "--cpu-time wants a duration such as 60s, 5m or 2h, not "
                                  "'%s'", arg);
            return bad_exit;
        }
        break;
    case O_MAX_OUTPUT:
        if (pd_limits_parse_size(arg, &o->max_output) || o->max_output > PD_LIMITS_MAX_OUTPUT) {
            pd_submit_usage_error(s, "--max-output wants a size from 1 byte to 64M such as 1M "
                                  "or 64k, not '%s'", arg);
            return bad_exit;
        }
        break;
    case O_DETACH: o->detach = true; break;
    case O_SHARED: o->shared = arg; break;
    case O_GPU: o->gpu = true; break;
    case O_CUDA:
        o->cuda = arg;
        o->gpu = true;
        break;
    case O_ARGS: o->args_file = arg; break;
    case O_WAIT: {
        char *end;
        errno = 0;
        o->wait_s = strtod(arg, &end);
        if (end == arg || *end || errno) {
            pd_submit_usage_error(s, "--wait wants seconds (-1: for ever), not '%s'", arg);
            return bad_exit;
        }
        o->wait_set = true;
        break;
    }
    case O_RELEASE: o->release = true; break;
    default:
        return verb && verb->apply ? verb->apply(s, code, arg, bad_exit) : 0;
    }
    return 0;
}

/* Parses options of argv[1..] accepted for verb v (NULL: before the verb,
   where only the global ones are). permute: options may follow positional
   arguments. On return *first is the index of the first positional argument
   (getopt_long moved them to the end). Returns 0, a usage exit status, or
   PD_EXIT_ANSWERED when --help or --version was handled. */
static int s_parse(pd_submit_t *s, int argc, char **argv, const pd_submit_verb_t *v,
                   bool permute, int *first, int bad_exit)
{
    struct option longs[S_MAX_OPTS + 1];
    s_all_opts(longs, S_MAX_OPTS + 1);
    /* '+': stop at the first positional argument; ':': report a missing value. */
    const char *shorts = permute ? ":b:l:qha:k" : "+:b:l:qha:k";
    optind = 0; /* glibc: start afresh */
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
        const char *given = argv[optind - 1];
        if (ch == '?' || ch == ':') {
            char help[64];
            snprintf(help, sizeof help, "playdoh-submit%s%s", s->o.verb ? " " : "",
                     s->o.verb ? s->o.verb : "");
            pd_cli_option_error("playdoh-submit", help, given, optopt, ch == ':');
            return bad_exit;
        }
        const pd_submit_opt_t *so = s_find_opt(ch);
        if (!so)
            return bad_exit;
        bool global = s_opt_in(s_global_opts, ch) != NULL;
        if (!global && !(v && s_opt_in(v->opts, ch))) {
            char verbs[128];
            s_verbs_of(ch, verbs, sizeof verbs);
            if (!v)
                pd_submit_usage_error(s, "--%s is an option of %s: put it after the verb",
                                      so->name, verbs);
            else
                pd_submit_usage_error(s, "--%s is not an option of %s (it belongs to %s)",
                                      so->name, s->o.verb, verbs);
            return bad_exit;
        }
        if (ch == O_VERSION) {
            pd_cli_version("playdoh-submit");
            return PD_EXIT_ANSWERED;
        }
        if (ch == O_HELP) {
            if (v)
                printf("%s\n%s", v->usage, S_GLOBAL_HELP);
            else
                s_usage(stdout);
            return PD_EXIT_ANSWERED;
        }
        int rc = global ? s_apply_global(s, ch, optarg, bad_exit)
                        : s_apply_shared(s, v, ch, optarg, bad_exit);
        if (rc)
            return rc;
    }
    *first = optind;
    return 0;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
    pd_submit_t s;
    memset(&s, 0, sizeof s);
    s.o.retries = 3;
    s.o.keep_order = true;
    s.o.ttl_s = -1;
    pd_log_set_tag("submit");
    int first = 0;
    int rc = s_parse(&s, argc, argv, NULL, false, &first, 2);
    if (rc)
        return rc == PD_EXIT_ANSWERED ? PD_EXIT_OK : rc;
    if (first >= argc) {
        s_usage(stderr);
        return PD_EXIT_USAGE;
    }
    const char *verb = argv[first];
    if (strcmp(verb, "slurm") == 0) {
        /* Its own options (client/pd_slurm.c); the global ones given before
           the verb carry over. */
        if (s.o.local) {
            pd_submit_usage_error(&s, "--local runs an embedded cluster on this machine; Slurm "
                                  "pilots need a broker the compute nodes reach (--broker)");
            return PD_EXIT_USAGE;
        }
        pd_slurm_globals_t g = {.broker = s.o.broker, .config = s.o.config,
                                .quiet = s.o.quiet};
        return pd_slurm_main(argc - first, argv + first, &g);
    }
    const pd_submit_verb_t *v = NULL;
    for (size_t i = 0; i < S_NVERBS; i++)
        if (strcmp(verb, s_verbs[i]->name) == 0)
            v = s_verbs[i];
    if (!v) {
        const char *names[S_NVERBS + 2];
        for (size_t i = 0; i < S_NVERBS; i++)
            names[i] = s_verbs[i]->name;
        names[S_NVERBS] = "slurm";
        names[S_NVERBS + 1] = NULL;
        const char *guess = pd_cli_nearest(verb, names);
        if (guess)
            pd_submit_usage_error(&s, "unknown verb '%s': did you mean '%s'?", verb, guess);
        else
            pd_submit_usage_error(&s, "unknown verb '%s' (verbs: map, exec, task, optimize, "
                                  "optimize-status, optimize-fetch, status, results, wait, "
                                  "cancel, stop, cluster, gc, slurm)", verb);
        return PD_EXIT_USAGE;
    }
    s.o.verb = v->name;
    /* The verb's options: exec stops at its command's first word, the
       others take options anywhere among their arguments. */
    int bad = v->bad_exit;
    int vargc = argc - first;
    char **vargv = argv + first;
    rc = s_parse(&s, vargc, vargv, v, !v->in_order, &first, bad);
    if (rc)
        return rc == PD_EXIT_ANSWERED ? PD_EXIT_OK : rc;
    if (s.o.local && s.o.broker) {
        pd_submit_usage_error(&s, "--local and --broker exclude each other");
        return bad;
    }
    if (s.o.http && !s.o.local) {
        pd_submit_usage_error(&s, "--http opens the dashboard of a --local cluster; a running "
                                  "broker serves its own (playdoh-broker --http)");
        return bad;
    }
    vargc -= first;
    vargv += first;
    rc = v->run(&s, vargc, vargv);
    pd_client_destroy(&s.c);
    pd_local_stop(&s.local);
    return rc;
}

