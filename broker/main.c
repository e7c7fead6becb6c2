/*  playdoh-broker: command line of the broker.

    Reads the configuration files (pd_config: [cluster] and [broker]), then
    the flags, which override them, into a pd_broker_config_t; chooses the
    journal (--journal PATH or [broker] journal, else the default path of
    pd_journal_default_path(); --no-journal or `journal = off` for none);
    binds, optionally reports the bound endpoint on --ready-fd (the embedded
    local cluster starts the broker on an ephemeral port and reads it there),
    and runs the loop until SIGINT or SIGTERM. SIGHUP reads the allow-list
    again. Before binding it raises its own open-file limit, one descriptor
    being held per connected worker and client.
*/
#include "pd_beacon.h"
#include "pd_broker.h"
#include "pd_config.h"
#include "pd_opts.h"
#include "pd_embed.h"
#include "pd_file.h"
#include "pd_snapshot.h"
#include "pd_error_int.h"
#include "pd_shared.h"
#include "pd_log.h"
#include "pd_cli.h"

#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <sodium.h>

#ifdef PD_HAVE_HTTP
#include "pd_http.h"
#endif
#include <unistd.h>

#define S_NOFILE_WANT 65536 /* open files the broker asks for (its systemd unit's LimitNOFILE) */
#define S_NOFILE_WARN 4096  /* below this, the start says how few peers fit */
#define S_NOFILE_OWN 64     /* of them, kept for the broker itself (journal, beacon, ZeroMQ) */

/* Each worker and client connected holds one descriptor of the broker's
   (in ZeroMQ's I/O thread), and a listener that cannot accept for want of
   one is retried at once by libzmq, so a broker at its limit spends a
   core refusing connections. Soft limits are often 1,024 under a hard
   limit far higher: the soft limit is raised towards the hard one (at most
   S_NOFILE_WANT), and a limit that still holds few peers is said at start. */
static void s_raise_open_files(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > S_NOFILE_WANT ? S_NOFILE_WANT
                                                                              : rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            pd_log_debug("open-file limit raised from %llu to %llu", (unsigned long long) was,
                         (unsigned long long) want);
        else
            rl.rlim_cur = was;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < S_NOFILE_WARN)
        pd_log_warn("this broker may open at most %llu files, so about %llu workers and clients "
                    "can be connected at once (each holds one): raise its hard limit "
                    "(LimitNOFILE= in its systemd unit, `ulimit -Hn` as root in its shell)",
                    (unsigned long long) rl.rlim_cur,
                    (unsigned long long) (rl.rlim_cur > S_NOFILE_OWN ? rl.rlim_cur - S_NOFILE_OWN
                                                                     : 0));
}

/* The one broker of this process, for the signal handler only. */
static pd_broker_t *s_broker;

static void s_on_signal(int sig)
{
    if (!s_broker)
        return;
    if (sig == SIGHUP)
        pd_broker_reload(s_broker);
    else
        pd_broker_stop(s_broker);
}

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: playdoh-broker [options]\n"
            "  --bind EP          endpoint to bind (default %s; port * or 0 = any free port)\n"
            "  --heartbeat-ms N   heartbeat interval given to workers (default %u)\n"
            "  --liveness N       silent intervals before a worker is declared dead (default %u)\n"
            "  --max-jobs N       unfinished jobs held at most (default 4000000)\n"
            "  --result-ttl S     seconds a result is kept after its first fetch (default %u)\n"
            "  --max-shared-mb N  largest shared data of a map, MiB (default %llu, at most %llu)\n"
            "  --shared-store-mb N  shared data kept at most, MiB (default %llu)\n"
            "  --max-arg-mb N     largest argument of one job, MiB (default 16, at most 200)\n"
            "  --max-batch-mb N   largest arguments of one submit call, MiB (default 1024)\n"
            "  --max-queued-mb N  arguments of all unfinished jobs, MiB (default 4096)\n"
            "  --log-level L      error, warn, info or debug (default info)\n"
            "  --ready-fd FD      write the bound endpoint and a newline to FD, then close it\n"
            "  --name NAME        name announced to clients (default: the host name)\n"
            "  --worker-cpus N    also run a worker with N slots inside this process (the\n"
            "                     embedded local cluster); its module cache is --cache DIR\n"
            "  --cache DIR        embedded worker's module cache (default ~/.cache/playdoh)\n"
            "  --config FILE      read this configuration file only (default: %s\n"
            "                     then ~/.config/playdoh/playdoh.conf; $PLAYDOH_CONFIG)\n"
            "  --cluster NAME     cluster name announced in the beacon (default %s)\n"
            "  --beacon-port N    UDP port of the beacon (default %d; 0 = no beacon)\n"
            "  --beacon-interval-ms N  beacon interval (default %d)\n"
            "  --beacon-interface IF   network interface of the beacon (default: the first\n"
            "                     that can broadcast)\n"
            "  --no-beacon        do not announce the broker\n"
            "  --journal PATH     journal of jobs and results, so that a restart loses nothing\n"
            "                     (default: $STATE_DIRECTORY/broker.journal under systemd,\n"
            "                     /var/lib/playdoh/broker.journal for root, else\n"
            "                     $XDG_STATE_HOME/playdoh/broker.journal or\n"
            "                     ~/.local/state/playdoh/broker.journal)\n"
            "  --no-journal       keep jobs and results in memory only (lost on a restart)\n"
            "  --journal-sync M   full (fsync every commit, the default), normal (fsync at\n"
            "                     checkpoints) or off (survives a crash, not a power cut)\n"
            "  --journal-max-mb N refuse submits while the journal is over N MiB (default %llu;\n"
            "                     0 = no bound)\n"
            "  --journal-reset    move an existing (say, damaged) journal aside and start empty\n"
            "\n"
            "security (docs/security.md): on any endpoint that is not loopback the broker\n"
            "runs CurveZMQ and admits only the keys of its allow-list\n"
            "  --secure           CurveZMQ even on loopback\n"
            "  --insecure         no security even on a network (logs a warning at start)\n"
            "  --key FILE         the broker's key pair (default: CONFIG/id.key)\n"
            "  --allow DIR        admitted keys, reread when they change or on SIGHUP\n"
            "                     (default: CONFIG/allowed)\n"
            "  --config-dir DIR   CONFIG (default: $PLAYDOH_CONFIG_DIR, $XDG_CONFIG_HOME/playdoh\n"
            "                     or ~/.config/playdoh)\n"
            "\n"
            "dashboard (docs/dashboard.md): a read-only web view of the cluster\n"
            "  --http HOST:PORT   serve it there ([broker] http; off by default); an address\n"
            "                     other than loopback needs a token\n"
            "  --http-token-file FILE  the token's file ([broker] http_token_file): one line\n"
            "                     of at least 16 characters\n"
            "  --help             this text\n"
            "  --version          print the version and exit\n"
            "Flags override the configuration file ([cluster] and [broker] sections).\n",
            PD_BROKER_DEFAULT_BIND, PD_BROKER_DEFAULT_HB_MS, PD_BROKER_DEFAULT_LIVENESS,
            PD_BROKER_DEFAULT_TTL_S, (unsigned long long) (PD_SHARED_DEFAULT_MAX >> 20),
            (unsigned long long) (PD_SHARED_LIMIT >> 20),
            (unsigned long long) (PD_SHARED_DEFAULT_TOTAL >> 20), PD_CONFIG_SYSTEM_PATH,
            PD_BEACON_DEFAULT_CLUSTER, PD_BEACON_DEFAULT_PORT, PD_BEACON_DEFAULT_INTERVAL_MS,
            (unsigned long long) (PD_BROKER_DEFAULT_JOURNAL_MAX >> 20));
}

/* Parses an unsigned integer flag value in [lo, hi]; prints why and returns
   PD_EINVAL when it is not one. */
static int s_parse_u64(const char *flag, const char *text, uint64_t lo, uint64_t hi,
                       uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (!text[0] || *end || errno || text[0] == '-' || v < lo || v > hi) {
        fprintf(stderr, "playdoh-broker: %s wants a whole number from %llu to %llu, not '%s'\n",
                flag, (unsigned long long) lo, (unsigned long long) hi, text);
        return PD_EINVAL;
    }
    *out = v;
    return 0;
}

/* A flag's value, checked against the configuration schema, so that a
   flag and a file line refuse the same values with the same words. */
static int s_flag(const char *flag, const char *section, const char *key, const char *value)
{
    char why[512];
    if (pd_config_check(section, key, value, why, sizeof why)) {
        fprintf(stderr, "playdoh-broker: %s: %s\n", flag, why);
        return PD_EINVAL;
    }
    return 0;
}

enum { O_CONFIG = 256, O_CLUSTER, O_BPORT, O_BINTERVAL, O_BIFACE, O_NOBEACON, O_JOURNAL,
       O_NO_JOURNAL, O_JOURNAL_SYNC, O_JOURNAL_MAX, O_JOURNAL_RESET, O_SECURE, O_INSECURE,
       O_KEY, O_ALLOW, O_CONFIG_DIR, O_MAXARG, O_MAXBATCH, O_MAXQUEUED, O_HTTP, O_HTTP_TOKEN };

static const struct option s_opts[] = {
    {"bind", required_argument, NULL, 'b'},
    {"heartbeat-ms", required_argument, NULL, 'H'},
    {"liveness", required_argument, NULL, 'L'},
    {"max-jobs", required_argument, NULL, 'm'},
    {"result-ttl", required_argument, NULL, 't'},
    {"log-level", required_argument, NULL, 'l'},
    {"ready-fd", required_argument, NULL, 'r'},
    {"name", required_argument, NULL, 'n'},
    {"max-shared-mb", required_argument, NULL, 'S'},
    {"shared-store-mb", required_argument, NULL, 'T'},
    {"worker-cpus", required_argument, NULL, 'w'},
    {"cache", required_argument, NULL, 'C'},
    {"config", required_argument, NULL, O_CONFIG},
    {"cluster", required_argument, NULL, O_CLUSTER},
    {"beacon-port", required_argument, NULL, O_BPORT},
    {"beacon-interval-ms", required_argument, NULL, O_BINTERVAL},
    {"beacon-interface", required_argument, NULL, O_BIFACE},
    {"no-beacon", no_argument, NULL, O_NOBEACON},
    {"journal", required_argument, NULL, O_JOURNAL},
    {"no-journal", no_argument, NULL, O_NO_JOURNAL},
    {"journal-sync", required_argument, NULL, O_JOURNAL_SYNC},
    {"journal-max-mb", required_argument, NULL, O_JOURNAL_MAX},
    {"journal-reset", no_argument, NULL, O_JOURNAL_RESET},
    {"secure", no_argument, NULL, O_SECURE},
    {"insecure", no_argument, NULL, O_INSECURE},
    {"key", required_argument, NULL, O_KEY},
    {"allow", required_argument, NULL, O_ALLOW},
    {"config-dir", required_argument, NULL, O_CONFIG_DIR},
    {"max-arg-mb", required_argument, NULL, O_MAXARG},
    {"max-batch-mb", required_argument, NULL, O_MAXBATCH},
    {"max-queued-mb", required_argument, NULL, O_MAXQUEUED},
    {"http", required_argument, NULL, O_HTTP},
    {"http-token-file", required_argument, NULL, O_HTTP_TOKEN},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* What the flags said: NULL, -1 or false where a flag was not given. The
   flags are read first (they may name the configuration file) and applied
   after the file, so that they win. */
typedef struct {
    const char *bind, *name, *level, *config, *cluster, *iface, *key, *allow, *config_dir;
    const char *journal, *jsync, *cache, *http, *http_token;
    int64_t hb, live, max, ttl, bport, binterval, maxshared, store, maxarg, maxbatch, maxqueued;
    int64_t jmax, ready_fd, worker_cpus;
    pd_sec_mode_t security;
    bool nobeacon, nojournal, jreset;
} s_flags_t;

/* The whole-number flags: their bounds, and where the value goes. */
static const struct {
    int c;
    const char *flag;
    uint64_t lo, hi;
    size_t at; /* offset of its int64_t in s_flags_t */
} s_numbers[] = {
    {'H', "--heartbeat-ms", 10, 600000, offsetof(s_flags_t, hb)},
    {'L', "--liveness", 1, 1000, offsetof(s_flags_t, live)},
    {'m', "--max-jobs", 1, 1000000000000ull, offsetof(s_flags_t, max)},
    {'t', "--result-ttl", 1, 100u * 365 * 86400, offsetof(s_flags_t, ttl)},
    {'r', "--ready-fd", 0, 1000000, offsetof(s_flags_t, ready_fd)},
    {'w', "--worker-cpus", 1, 4096, offsetof(s_flags_t, worker_cpus)},
    {O_BPORT, "--beacon-port", 0, 65535, offsetof(s_flags_t, bport)},
    {O_BINTERVAL, "--beacon-interval-ms", 100, 60000, offsetof(s_flags_t, binterval)},
    {O_MAXARG, "--max-arg-mb", 1, PD_BROKER_LIMIT_MAX_ARG >> 20, offsetof(s_flags_t, maxarg)},
    {O_MAXBATCH, "--max-batch-mb", 1, 1u << 20, offsetof(s_flags_t, maxbatch)},
    {O_MAXQUEUED, "--max-queued-mb", 1, 1u << 30, offsetof(s_flags_t, maxqueued)},
    {'S', "--max-shared-mb", 1, PD_SHARED_LIMIT >> 20, offsetof(s_flags_t, maxshared)},
    {'T', "--shared-store-mb", 1, 1u << 20, offsetof(s_flags_t, store)},
    {O_JOURNAL_MAX, "--journal-max-mb", 0, 1ull << 30, offsetof(s_flags_t, jmax)},
};

#define S_USAGE (-2) /* a bad command line: the usage goes to stderr, exit 2 */

/* Takes one flag other than a whole number (c: getopt_long's answer, its
   value in optarg). Returns 0, or S_USAGE with the reason printed. */
static int s_take_text(s_flags_t *f, int c)
{
    switch (c) {
    case 'b':
        if (!optarg[0]) {
            fprintf(stderr, "playdoh-broker: --bind wants an endpoint such as "
                            "tcp://127.0.0.1:5555\n");
            return S_USAGE;
        }
        f->bind = optarg;
        return 0;
    case 'l': {
        pd_log_level_t level;
        if (pd_log_parse_level(optarg, &level)) {
            fprintf(stderr, "playdoh-broker: --log-level wants error, warn, info or debug, "
                            "not '%s'\n", optarg);
            return S_USAGE;
        }
        f->level = optarg;
        return 0;
    }
    case O_CLUSTER:
        f->cluster = optarg;
        return s_flag("--cluster", "cluster", "name", optarg) ? S_USAGE : 0;
    case O_JOURNAL_SYNC:
        f->jsync = optarg;
        return s_flag("--journal-sync", "broker", "journal_sync", optarg) ? S_USAGE : 0;
    case O_JOURNAL:
        if (!optarg[0] || strcmp(optarg, "off") == 0) {
            fprintf(stderr, "playdoh-broker: --journal wants a file path such as "
                            "/var/lib/playdoh/broker.journal (--no-journal for none)\n");
            return S_USAGE;
        }
        f->journal = optarg;
        return 0;
    case O_SECURE:
    case O_INSECURE: {
        pd_sec_mode_t want = c == O_SECURE ? PD_SEC_CURVE : PD_SEC_NONE;
        if (f->security != PD_SEC_AUTO && f->security != want) {
            fprintf(stderr, "playdoh-broker: --secure and --insecure exclude each other\n");
            return S_USAGE;
        }
        f->security = want;
        return 0;
    }
    case 'n': f->name = optarg; return 0;
    case 'C': f->cache = optarg; return 0;
    case O_CONFIG: f->config = optarg; return 0;
    case O_BIFACE: f->iface = optarg; return 0;
    case O_KEY: f->key = optarg; return 0;
    case O_ALLOW: f->allow = optarg; return 0;
    case O_CONFIG_DIR: f->config_dir = optarg; return 0;
    case O_HTTP: f->http = optarg; return 0;
    case O_HTTP_TOKEN: f->http_token = optarg; return 0;
    case O_NOBEACON: f->nobeacon = true; return 0;
    case O_NO_JOURNAL: f->nojournal = true; return 0;
    case O_JOURNAL_RESET: f->jreset = true; return 0;
    }
    return S_USAGE; /* not reached: every option of s_opts is handled */
}

/* Reads the command line into f. Returns PD_EXIT_GO_ON to go on, an exit code (0
   after --help or --version, PD_EXIT_USAGE for an unknown option), or
   S_USAGE. */
static int s_parse_flags(int argc, char **argv, s_flags_t *f)
{
    *f = (s_flags_t){.hb = -1, .live = -1, .max = -1, .ttl = -1, .bport = -1, .binterval = -1,
                     .maxshared = -1, .store = -1, .maxarg = -1, .maxbatch = -1,
                     .maxqueued = -1, .jmax = -1, .ready_fd = -1, .worker_cpus = -1,
                     .security = PD_SEC_AUTO};
    opterr = 0;
    int c;
    /* ':' first: getopt_long returns ':' for an option without its value. */
    while ((c = getopt_long(argc, argv, ":", s_opts, NULL)) != -1) {
        if (c == 'h') {
            s_usage(stdout);
            return 0;
        }
        if (c == 'V') {
            pd_cli_version("playdoh-broker");
            return 0;
        }
        if (c == '?' || c == ':') {
            pd_cli_option_error("playdoh-broker", "playdoh-broker", argv[optind - 1], optopt,
                                c == ':');
            return PD_EXIT_USAGE;
        }
        size_t k = 0, nk = sizeof s_numbers / sizeof s_numbers[0];
        while (k < nk && s_numbers[k].c != c)
            k++;
        uint64_t v;
        int rc = k == nk ? s_take_text(f, c)
                 : s_parse_u64(s_numbers[k].flag, optarg, s_numbers[k].lo, s_numbers[k].hi, &v)
                     ? S_USAGE
                     : 0;
        if (rc)
            return rc;
        if (k < nk)
            *(int64_t *) (void *) ((char *) f + s_numbers[k].at) = (int64_t) v;
    }
    if (optind < argc) {
        fprintf(stderr, "playdoh-broker: unexpected argument '%s'\n", argv[optind]);
        return S_USAGE;
    }
    if (f->nojournal && (f->journal || f->jreset)) {
        fprintf(stderr, "playdoh-broker: --no-journal excludes --journal and --journal-reset\n");
        return S_USAGE;
    }
    return PD_EXIT_GO_ON;
}

/* The options merged by pd_opts: flag, else file, else the default that
   pd_broker_config_defaults set. Adding an option is one line here. */
#define S_LINE(section, key, kind, ffield, dfield)                                             \
    PD_OPT_LINE(section, key, kind, s_flags_t, ffield, pd_broker_config_t, dfield),
#define S_MERGED(X)                                                                       \
    X("broker", "bind", PD_OPT_STR, bind, bind)                                      \
    X("broker", "name", PD_OPT_STR, name, name)                                      \
    X("broker", "heartbeat_ms", PD_OPT_U32, hb, hb_ms)                               \
    X("broker", "liveness", PD_OPT_U32, live, liveness)                              \
    X("broker", "max_jobs", PD_OPT_U64, max, max_jobs)                               \
    X("broker", "result_ttl_s", PD_OPT_U32, ttl, result_ttl_s)                       \
    X("cluster", "name", PD_OPT_STR, cluster, cluster)                               \
    X("cluster", "beacon_port", PD_OPT_INT, bport, beacon_port)                      \
    X("cluster", "beacon_interval_ms", PD_OPT_INT, binterval, beacon_interval_ms)    \
    X("cluster", "beacon_interface", PD_OPT_STR, iface, beacon_iface)                \
    X("broker", "key", PD_OPT_STR, key, key_file)                                    \
    X("broker", "allow_dir", PD_OPT_STR, allow, allow_dir)                           \
    X("broker", "max_shared_mb", PD_OPT_MB, maxshared, max_shared)                   \
    X("broker", "shared_store_mb", PD_OPT_MB, store, shared_store)                   \
    X("broker", "max_arg_mb", PD_OPT_MB, maxarg, max_arg)                            \
    X("broker", "max_batch_mb", PD_OPT_MB, maxbatch, max_batch)                      \
    X("broker", "max_queued_mb", PD_OPT_MB, maxqueued, max_queued)                   \
    X("broker", "journal_max_mb", PD_OPT_MB, jmax, journal_max_bytes)
static const pd_opt_t s_merged[] = {S_MERGED(S_LINE)};

/* The journal: flag, else file ("off": none), else the default path (into
   path, cap bytes). Returns 0, or PD_EXIT_USAGE with the reason printed. */
static int s_merge_journal(const s_flags_t *f, pd_config_t *cf, pd_broker_config_t *cfg,
                           char *path, size_t cap)
{
    const char *jpath = f->journal     ? f->journal
                        : f->nojournal ? "off"
                                       : pd_config_str(cf, "broker", "journal", NULL);
    if (jpath && strcmp(jpath, "off") == 0) {
        cfg->journal = NULL;
        if (f->jreset) {
            fprintf(stderr, "playdoh-broker: --journal-reset: the configuration says "
                            "journal = off (%s)\n", pd_config_where(cf, "broker", "journal"));
            return PD_EXIT_USAGE;
        }
    } else if (jpath && jpath[0]) {
        snprintf(path, cap, "%s", jpath);
        cfg->journal = path;
    } else if (pd_broker_default_journal(path, cap) == 0) {
        cfg->journal = path;
    } else {
        fprintf(stderr, "playdoh-broker: neither XDG_STATE_HOME nor HOME is set, so there is no "
                        "default journal: give --journal PATH or --no-journal\n");
        return PD_EXIT_USAGE;
    }
    const char *jsync = f->jsync ? f->jsync : pd_config_str(cf, "broker", "journal_sync", "full");
    cfg->journal_sync = strcmp(jsync, "off") == 0      ? PD_BROKER_SYNC_OFF
                        : strcmp(jsync, "normal") == 0 ? PD_BROKER_SYNC_NORMAL
                                                       : PD_BROKER_SYNC_FULL;
    cfg->journal_reset = f->jreset;
    return 0;
}

/* Fills cfg from the configuration file cf and the flags f (which win),
   and sets the log level. The strings stay cf's, f's or path's. Returns 0,
   PD_EXIT_USAGE with the reason printed, or S_USAGE. */
static int s_merge_config(const s_flags_t *f, pd_config_t *cf, pd_broker_config_t *cfg,
                          char *path, size_t cap)
{
    const char *level_name = f->level ? f->level : pd_config_str(cf, "broker", "log_level", "info");
    pd_log_level_t level = PD_LOG_INFO;
    pd_log_parse_level(level_name, &level);
    pd_log_set_level(level);
    if (f->config_dir)
        cfg->config_dir = f->config_dir;
    pd_opts_merge(s_merged, PD_OPTS_COUNT(s_merged), f, cf, cfg);
    if (!cfg->bind[0])
        cfg->bind = PD_BROKER_DEFAULT_BIND;
    cfg->beacon = !f->nobeacon && pd_config_bool(cf, "broker", "beacon", true);
    cfg->security = f->security;
    if (cfg->security == PD_SEC_AUTO)
        pd_auth_mode_parse(pd_config_str(cf, "broker", "security", "auto"), &cfg->security);
    if (cfg->shared_store < cfg->max_shared) {
        fprintf(stderr, "playdoh-broker: shared-store-mb (%llu) must be at least max-shared-mb "
                        "(%llu)\n", (unsigned long long) (cfg->shared_store >> 20),
                (unsigned long long) (cfg->max_shared >> 20));
        return S_USAGE;
    }
    return s_merge_journal(f, cf, cfg, path, cap);
}

/* Writes the bound endpoint to --ready-fd (the embedded local cluster
   reads it there), then closes it. */
static void s_tell_ready(pd_broker_t *b, int fd)
{
    char line[300];
    int n = snprintf(line, sizeof line, "%s\n", pd_broker_endpoint(b));
    if (write(fd, line, (size_t) n) != n)
        pd_log_warn("could not write the endpoint to --ready-fd %d: %s", fd, strerror(errno));
    close(fd);
}

/* The dashboard (web/): its snapshot and its HTTP server, when asked. */
typedef struct {
    pd_snapshot_t *snap;
#ifdef PD_HAVE_HTTP
    pd_http_t *http;
#endif
} s_dash_t;

/* Reads the dashboard's token: the first line of path, without the line's
   end, into tok (cap bytes). Returns 0 or PD_EXIT_USAGE with the reason
   printed. */
static int s_read_token(const char *path, char *tok, size_t cap)
{
    char *data = NULL;
    size_t len = 0;
    if (pd_file_read(path, cap - 1, &data, &len)) {
        fprintf(stderr, "playdoh-broker: cannot read the dashboard's token from %s (it must "
                        "exist and hold one line under %zu bytes)\n", path, cap);
        return PD_EXIT_USAGE;
    }
    size_t n = strcspn(data, "\r\n") < len ? strcspn(data, "\r\n") : len;
    memcpy(tok, data, n);
    tok[n] = 0;
    sodium_memzero(data, len);
    free(data);
    return 0;
}

/* Starts the dashboard when --http or [broker] http asks for it. Returns 0
   (d filled, or left empty when none is asked), or a PD_EXIT_* code with the
   reason printed. */
static int s_dash_start(pd_broker_t *b, const s_flags_t *f, pd_config_t *cf, s_dash_t *d)
{
    const char *addr = f->http ? f->http : pd_config_str(cf, "broker", "http", NULL);
    if (!addr || !addr[0] || strcmp(addr, "off") == 0)
        return 0;
#ifdef PD_HAVE_HTTP
    const char *tfile = f->http_token ? f->http_token
                                      : pd_config_str(cf, "broker", "http_token_file", NULL);
    char tok[256] = "";
    if (tfile && tfile[0] && s_read_token(tfile, tok, sizeof tok))
        return PD_EXIT_USAGE;
    if (!(d->snap = pd_snapshot_new())) {
        fprintf(stderr, "playdoh-broker: out of memory\n");
        return PD_EXIT_FAILED;
    }
    int err;
    char why[512];
    d->http = pd_http_start(d->snap, addr, tok, &err, why, sizeof why);
    sodium_memzero(tok, sizeof tok);
    if (!d->http) {
        fprintf(stderr, "playdoh-broker: %s\n", why);
        pd_snapshot_destroy(&d->snap);
        return err == PD_EINVAL ? PD_EXIT_USAGE : PD_EXIT_FAILED;
    }
    pd_broker_set_snapshot(b, d->snap);
    pd_log_info("dashboard on http://%s/", addr);
    return 0;
#else
    (void) b;
    (void) d;
    fprintf(stderr, "playdoh-broker: --http %s: this broker was built without libmicrohttpd "
                    "(install libmicrohttpd-dev and build again: scripts/install-deps.sh)\n",
            addr);
    return PD_EXIT_USAGE;
#endif
}

/* Stops the dashboard, after the loop stopped. */
static void s_dash_stop(pd_broker_t *b, s_dash_t *d)
{
    pd_broker_set_snapshot(b, NULL);
#ifdef PD_HAVE_HTTP
    pd_http_stop(&d->http);
#endif
    pd_snapshot_destroy(&d->snap);
}

/* Starts the broker (and the embedded worker when asked) and runs it until
   a signal stops it; cfg's strings may be *cf's, which goes once the broker
   has copied them. Returns the exit code. */
static int s_start(const pd_broker_config_t *cfg, const s_flags_t *f, pd_config_t **cf)
{
    int err;
    pd_broker_t *b = pd_broker_new(cfg, &err);
    s_dash_t dash = {0};
    int drc = b ? s_dash_start(b, f, *cf, &dash) : 0;
    pd_config_destroy(cf); /* the broker copied what it keeps */
    if (!b)
        return err == PD_EINVAL ? PD_EXIT_USAGE : PD_EXIT_FAILED;
    if (drc) {
        pd_broker_destroy(&b);
        return drc;
    }
    pd_embed_t *embedded = NULL;
    if (f->worker_cpus > 0 &&
        !(embedded = pd_embed_start(b, (int) f->worker_cpus, f->cache, &err))) {
        fprintf(stderr, "playdoh-broker: cannot start the embedded worker: %s\n",
                pd_strerror(err));
        s_dash_stop(b, &dash);
        pd_broker_destroy(&b);
        return PD_EXIT_FAILED;
    }
    if (f->ready_fd >= 0)
        s_tell_ready(b, (int) f->ready_fd);
    s_broker = b;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = pd_broker_run(b);
    s_broker = NULL;
    pd_embed_stop(&embedded);
    s_dash_stop(b, &dash);
    pd_broker_destroy(&b);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    /* The embedded worker's slot and node processes are this program,
       exec'ed again. */
    int child_rc;
    if (pd_embed_child_main(argc, argv, &child_rc))
        return child_rc;
    /* A file size limit makes a journal write fail (EFBIG) rather than kill
       the broker: it then behaves as with a full disk. */
    signal(SIGXFSZ, SIG_IGN);
    pd_log_set_tag("broker");
    pd_log_set_level(PD_LOG_INFO);
    s_flags_t f;
    int rc = s_parse_flags(argc, argv, &f);
    if (rc == S_USAGE) {
        s_usage(stderr);
        return PD_EXIT_USAGE;
    }
    if (rc >= 0)
        return rc;
    pd_config_t *cf = pd_config_new();
    char why[1024];
    if (!cf || pd_config_load_default(cf, f.config, why, sizeof why)) {
        fprintf(stderr, "playdoh-broker: %s\n", cf ? why : "out of memory");
        pd_config_destroy(&cf);
        return PD_EXIT_USAGE;
    }
    pd_broker_config_t cfg;
    pd_broker_config_defaults(&cfg);
    char journal[4096];
    rc = s_merge_config(&f, cf, &cfg, journal, sizeof journal);
    if (rc) {
        pd_config_destroy(&cf);
        if (rc == S_USAGE)
            s_usage(stderr);
        return rc == S_USAGE ? PD_EXIT_USAGE : rc;
    }
    if (pd_config_sources(cf)[0])
        pd_log_info("configuration read from %s", pd_config_sources(cf));
    s_raise_open_files();
    return s_start(&cfg, &f, &cf);
}
