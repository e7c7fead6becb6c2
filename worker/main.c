/*  playdoh-worker: offers this machine's CPU slots to a Playdoh broker.

    Reads the configuration files ([cluster] and [worker] of pd_config), then
    the flags, which override them; builds a pd_worker_t and runs its loop
    until SIGINT or SIGTERM, then says `bye` and stops its slot processes.
    SIGHUP re-reads the configuration files and applies the slots, the idle
    policy and the log level they set (flags still win). With --idle-exit it
    also leaves by itself after that long without a job; run as a Slurm pilot
    job, it reports the job and step ids it finds in its environment
    (SLURM_JOB_ID, SLURM_STEP_ID, SLURM_ARRAY_JOB_ID/SLURM_ARRAY_TASK_ID)
    when it registers (docs/slurm.md).

    `playdoh-worker ctl [--cpus N] [--gpus N] [--now]` is the owner's remote
    control: it talks to a running worker over its control socket.
    `playdoh-worker --install-module FILE` installs a module for the code
    policy `installed` (docs/security.md).

    `playdoh-worker service install [options] | uninstall | start | stop |
    status` makes the worker a Windows service (pd_plat's service calls;
    on Linux systemd runs it and these say so). The service manager starts
    `playdoh-worker service run [options]`, which runs the same worker main
    under the dispatcher with its files in %PROGRAMDATA%\playdoh and its log
    in worker.log there; the manager's stop request sets the same flag as
    SIGTERM.

    The same binary is also the slot process: pd_slot_new() execs
    /proc/self/exe with "--slot ...", which main() hands to pd_slot_main()
    before anything else.

    Likewise "--node ..." (a node of a synchronous task) goes to
    pd_nodeproc_main().
*/
#include "pd_auth.h"
#include "pd_beacon.h"
#include "pd_codec.h"
#include "pd_cli.h"
#include "pd_config.h"
#include "pd_opts.h"
#include "pd_error_int.h"
#include "pd_json.h"
#include "pd_log.h"
#include "pd_modcache.h"
#include "pd_msg.h"
#include "pd_proto.h"
#include "pd_nodeproc.h"
#include "pd_policy.h"
#include "pd_slot.h"
#include "pd_worker.h"

#include <errno.h>
#include <sodium.h>
#include <getopt.h>
#include <signal.h>
#include "pd_plat.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

static volatile sig_atomic_t s_stop;
static volatile sig_atomic_t s_reload;

static void s_on_signal(int sig) { s_stop = sig ? 1 : 0; }
static void s_on_hup(int sig)
{
    (void) sig;
    s_reload = 1;
}

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: playdoh-worker [options]\n"
            "       playdoh-worker ctl [--cpus N] [--gpus N] [--now] [--control PATH] [--json]\n"
            "       playdoh-worker service install [options] | uninstall | start | stop | status\n"
            "\n"
            "Offers this machine's CPU slots to a Playdoh broker and runs its jobs.\n"
            "\n"
            "  --broker EP        broker endpoint, e.g. tcp://lab-server:5555 (default: find\n"
            "                     the broker of the cluster by its beacon)\n"
            "  --cpus N           CPU slots to offer (default: online CPUs)\n"
            "  --gpus N           GPU slots to offer (default: every GPU the CUDA driver\n"
            "                     shows; 0: none; more than the machine has is an error)\n"
            "  --cache DIR        module cache (default: $CACHE_DIRECTORY, $XDG_CACHE_HOME/playdoh\n"
            "                     or ~/.cache/playdoh)\n"
            "  --heartbeat-ms N   heartbeat until the broker sets its own (default 1000)\n"
            "  --name HOST        host name reported to the broker (default: hostname)\n"
            "  --node-addr ADDR   address the nodes of synchronous tasks bind on, reachable\n"
            "                     from the other workers (default: the address this machine\n"
            "                     uses to reach the broker)\n"
            "  --log-level L      error, warn, info or debug (default: info)\n"
            "  --config FILE      read this configuration file only (default: %s\n"
            "                     then ~/.config/playdoh/playdoh.conf; $PLAYDOH_CONFIG)\n"
            "  --cluster NAME     cluster to look for by beacon (default %s)\n"
            "  --beacon-port N    UDP port of the beacons (default %d)\n"
            "  --beacon-interface IF  network interface for the beacons\n"
            "  --control PATH     control socket for `ctl` (default: $RUNTIME_DIRECTORY,\n"
            "                     $XDG_RUNTIME_DIR/playdoh or /run/playdoh, file worker.ctl);\n"
            "                     'none' for no control socket\n"
            "  --idle-load-max X  offer slots only while the machine's own load is at most X\n"
            "                     CPUs (default 0: always)\n"
            "  --idle-action A    suspend or requeue running jobs when the owner is back\n"
            "  --idle-exit S      leave after S seconds without a job (default 0: never;\n"
            "                     pilot jobs use it to give their allocation back)\n"
            "\n"
            "security (docs/security.md): towards a broker that is not on loopback the\n"
            "worker runs CurveZMQ and accepts only the broker key it trusts\n"
            "  --secure           CurveZMQ even on loopback\n"
            "  --insecure         no security even on a network (logs a warning at start)\n"
            "  --key FILE         this worker's key pair (default: CONFIG/id.key)\n"
            "  --broker-key KEY   the broker's public key (default: CONFIG/known_brokers, or a\n"
            "                     trusted key announced by the beacon)\n"
            "  --config-dir DIR   CONFIG (default: $PLAYDOH_CONFIG_DIR, $XDG_CONFIG_HOME/playdoh\n"
            "                     or ~/.config/playdoh)\n"
            "whose code runs on this machine (the owner decides):\n"
            "  --code-policy P    any: code from any client the broker admits (default);\n"
            "                     clients: only from the client keys listed in a file;\n"
            "                     installed: only modules installed here, listed by hash\n"
            "  --code-list FILE   the list (default: CONFIG/code-clients or CONFIG/code-modules)\n"
            "  --install-module FILE  store FILE (a .c, .so or .cu module) in the cache, add its\n"
            "                     hash to the installed list, print the hash and exit\n"
            "  --log-file FILE    append the log to FILE, each line dated, instead of writing\n"
            "                     to stderr (what jobs print goes to their results)\n"
            "what one job may take (docs/worker.md; 0: no limit; sizes 2G, 512M; times 60s,\n"
            "5m): the broker sends here only jobs that ask for at most the maxima; a job\n"
            "that asks nothing gets the default\n"
            "  --max-memory SIZE      resident memory of a job's processes (default: none)\n"
            "  --max-cpu-time TIME    CPU time of each of its processes (default: none)\n"
            "  --max-output SIZE      output kept per stream, at most 64M (default: 64M)\n"
            "  --default-memory SIZE  --default-cpu-time TIME  --default-output SIZE\n"
            "                         for jobs that ask nothing (default: the maximum;\n"
            "                         output 4M)\n"
            "  --cc PROGRAM       C compiler of task modules (default: $PLAYDOH_CC, else %s)\n"
            "  --help             this text\n"
            "  --version          print the version and exit\n"
            "\n"
            "Flags override the configuration file ([cluster] and [worker]); SIGHUP re-reads it.\n"
            "\n"
            "ctl: change the slots of the running worker at once (no restart): lowering lets\n"
            "running jobs finish and starts none beyond the limit; --now hands the excess\n"
            "back to the broker, which runs it elsewhere. Without --cpus/--gpus it prints the\n"
            "worker's state.\n"
            "\n"
            "service (Windows; from an elevated prompt but for status): the worker as a\n"
            "Windows service, started at boot as NT AUTHORITY\\LocalService.\n"
            "  install [options]  register it with these worker options (full paths), e.g.\n"
            "                     service install --broker tcp://lab-server:5555 --cpus 4;\n"
            "                     its files are in %%PROGRAMDATA%%\\playdoh: playdoh.conf (read\n"
            "                     when present), keys (CONFIG), cache\\, worker.log, worker.ctl\n"
            "  start, stop        start it / stop it as SIGTERM does (bye: running jobs go\n"
            "                     back to the broker)\n"
            "  status             its state (exit 0 running, 3 not running, 4 not installed)\n"
            "  uninstall          stop it and remove it (its files stay)\n"
            "On Linux the worker is a systemd service: systemctl enable --now playdoh-worker\n"
            "(docs/cluster.md).\n",
            PD_CONFIG_SYSTEM_PATH, PD_BEACON_DEFAULT_CLUSTER, PD_BEACON_DEFAULT_PORT,
            pd_plat_default_cc());
}

/* Parses an integer flag; exits 2 with a message when bad. */
static int s_int_arg(const char *opt, const char *val, int min, int max)
{
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end || v < min || v > max) {
        fprintf(stderr, "playdoh-worker: %s wants an integer between %d and %d, got '%s'\n",
                opt, min, max, val);
        exit(PD_EXIT_USAGE);
    }
    return (int) v;
}

/* Parses --idle-exit's seconds (decimals allowed) into ms; exits when bad. */
static int s_seconds_arg(const char *opt, const char *val)
{
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end || !(v >= 0 && v <= 31536000)) {
        fprintf(stderr, "playdoh-worker: %s wants seconds between 0 and 31536000 (a year), got "
                        "'%s'\n", opt, val);
        exit(PD_EXIT_USAGE);
    }
    return (int) (v * 1000 + 0.5);
}

/* Fills the Slurm ids of a pilot job from the environment Slurm gives its
   steps; leaves them NULL outside Slurm. The batch step has no
   SLURM_STEP_ID: it is reported as "batch". */
static void s_slurm_ids(pd_worker_config_t *cfg, char *array, size_t cap)
{
    const char *job = getenv("SLURM_JOB_ID");
    if (!job || !*job)
        return;
    cfg->slurm_job = job;
    const char *step = getenv("SLURM_STEP_ID");
    const char *env = getenv("ENVIRONMENT");
    if (step && *step)
        cfg->slurm_step = step;
    else if (env && strcmp(env, "BATCH") == 0)
        cfg->slurm_step = "batch";
    const char *ajob = getenv("SLURM_ARRAY_JOB_ID"), *atask = getenv("SLURM_ARRAY_TASK_ID");
    if (ajob && *ajob && atask && *atask) {
        snprintf(array, cap, "%s_%s", ajob, atask);
        cfg->slurm_array = array;
    }
}

/* The default control socket path (a static buffer); for `ctl`, the
   service's first when it runs. */
static const char *s_default_control(bool service_first)
{
    static char path[4096];
    pd_plat_control_default(path, sizeof path, service_first);
    return path;
}

/* ---- ctl ---------------------------------------------------------------- */

/* Says the worker's answer to ctl (json: as JSON). Returns the exit status. */
static int s_ctl_answer(zmq_msg_t *reply, bool json)
{
    pd_msg_t m;
    if (pd_msg_parse(&m, zmq_msg_data(reply), zmq_msg_size(reply))) {
        fprintf(stderr, "playdoh-worker ctl: unreadable answer: %s\n", m.why);
        return 3;
    } else if (pd_msg_is(&m, "error")) {
        pd_m_error_t e;
        pd_m_error_decode(&m, &e); /* what it could read: a sentence or "" */
        fprintf(stderr, "playdoh-worker ctl: refused: %.*s\n", (int) e.msg.len,
                e.msg.p ? e.msg.p : "");
        return 2;
    } else {
        pd_m_ctl_ok_t ok;
        pd_m_ctl_ok_decode(&m, &ok); /* fields it could not read stay 0 */
        const char *id = ok.id, *host = ok.host;
        char broker[256];
        pd_str_copy(ok.broker, broker, sizeof broker);
        uint64_t vc = ok.cpus, vg = ok.gpus, off = ok.offered, slots = ok.slots,
                 down = ok.down, busy = ok.busy, q = ok.queued, done = ok.done,
                 req = ok.requeued;
        bool reg = ok.registered, owner = ok.owner;
        double load = ok.load;
        if (json) {
            pd_buf_t out;
            pd_buf_init(&out);
            pd_msgpack_to_json(zmq_msg_data(reply), zmq_msg_size(reply), &out);
            fwrite(out.data, 1, out.len, stdout);
            fputc('\n', stdout);
            pd_buf_free(&out);
        } else {
            printf("worker %s on %s: %llu cpus, %llu gpus allowed; %llu cpus offered%s\n",
                   id, host, (unsigned long long) vc, (unsigned long long) vg,
                   (unsigned long long) off, owner ? " (the owner is using the machine)" : "");
            printf("  %llu slot processes, %llu busy, %llu jobs queued here, %llu done, "
                   "%llu handed back\n", (unsigned long long) slots, (unsigned long long) busy,
                   (unsigned long long) q, (unsigned long long) done,
                   (unsigned long long) req);
            if (down)
                printf("  %llu slot%s withdrawn: %s process cannot start (the worker's log "
                       "says why)\n", (unsigned long long) down, down == 1 ? "" : "s",
                       down == 1 ? "its" : "their");
            printf("  broker %s (%s)", broker[0] ? broker : "not found yet",
                   reg ? "registered" : "not registered");
            if (load >= 0)
                printf("; machine's own load %.2f", load);
            printf("\n");
        }
    }
    return 0;
}

/* ctl's control socket from the configuration file (kept in *cf), else the
   default. NULL after saying why on stderr. */
static const char *s_ctl_control(const char *config, pd_config_t **cf)
{
    char why[1024];
    *cf = pd_config_new();
    if (!*cf || pd_config_load_default(*cf, config, why, sizeof why)) {
        fprintf(stderr, "playdoh-worker ctl: %s\n", *cf ? why : "out of memory");
        pd_config_destroy(cf);
        return NULL;
    }
    const char *control = pd_config_str(*cf, "worker", "control", NULL);
    return control ? control : s_default_control(true);
}

static int s_ctl(int argc, char **argv)
{
    static const struct option opts[] = {
        {"cpus", required_argument, NULL, 'c'},    {"gpus", required_argument, NULL, 'g'},
        {"now", no_argument, NULL, 'N'},           {"control", required_argument, NULL, 'C'},
        {"config", required_argument, NULL, 'f'},  {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    int cpus = -1, gpus = -1;
    bool now = false, json = false;
    const char *control = NULL, *config = NULL;
    int c;
    optind = 1;
    opterr = 0; /* pd_cli says it */
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cpus = s_int_arg("--cpus", optarg, 0, PD_WORKER_MAX_CPUS); break;
        case 'g': gpus = s_int_arg("--gpus", optarg, 0, PD_WORKER_MAX_GPUS); break;
        case 'N': now = true; break;
        case 'C': control = optarg; break;
        case 'f': config = optarg; break;
        case 'j': json = true; break;
        case 'h': s_usage(stdout); return 0;
        default:
            pd_cli_option_error("playdoh-worker ctl", "playdoh-worker", argv[optind - 1], optopt,
                                c == ':');
            return PD_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "playdoh-worker ctl: unexpected argument '%s'\n", argv[optind]);
        return PD_EXIT_USAGE;
    }
    pd_config_t *cf = NULL;
    if (!control && !(control = s_ctl_control(config, &cf)))
        return PD_EXIT_USAGE;
    /* The endpoint, and the token a request carries where the system has
       no socket file with permissions (Windows). */
    char ep[4200], token[PD_PLAT_TOKEN_LEN + 1] = "";
    struct stat st;
    int found = stat(control, &st) != 0       ? 1
                : access(control, W_OK) != 0  ? 2
                : pd_plat_control_endpoint(control, ep, sizeof ep, token) != 0 ? 3
                                                                                : 0;
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_m_ctl_t ask = {.has_cpus = cpus >= 0, .cpus = (uint64_t) cpus,
                      .has_gpus = gpus >= 0, .gpus = (uint64_t) gpus,
                      .has_now = now, .now = true, .has_token = token[0] != 0};
    snprintf(ask.token, sizeof ask.token, "%s", token);
    pd_m_ctl_encode(&pk, &ask);
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_REQ);
    int zero = 0, wait = 5000;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &wait, sizeof wait);
    zmq_setsockopt(sock, ZMQ_SNDTIMEO, &wait, sizeof wait);
    int rc = 3;
    zmq_msg_t reply;
    zmq_msg_init(&reply);
    errno = 0;
    if (found == 1 && stat(control, &st) != 0) {
        fprintf(stderr, "playdoh-worker ctl: no control socket at %s (%s): is playdoh-worker "
                        "running? give its socket with --control PATH\n", control,
                strerror(errno));
    } else if (found == 2 && access(control, W_OK) != 0) {
        fprintf(stderr, "playdoh-worker ctl: %s: %s (the socket's group may use it: ask to be "
                        "added to that group, e.g. `usermod -aG playdoh $USER`)\n", control,
                strerror(errno));
    } else if (found != 0) {
        fprintf(stderr, "playdoh-worker ctl: %s\n", ep);
    } else if (zmq_connect(sock, ep) != 0 || zmq_send(sock, b.data, b.len, 0) < 0 ||
               zmq_msg_recv(&reply, sock, 0) < 0) {
        fprintf(stderr, "playdoh-worker ctl: no answer on %s within 5 s (%s): is playdoh-worker "
                        "running?\n", control, zmq_strerror(errno));
    } else {
        rc = s_ctl_answer(&reply, json);
    }
    zmq_msg_close(&reply);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    pd_buf_free(&b);
    pd_config_destroy(&cf);
    return rc;
}

/* ---- the worker --------------------------------------------------------- */

/* What the command line set; NULL / -1 = not given (the file decides). */
typedef struct {
    const char *config;
    const char *broker, *cache, *name, *level, *cluster, *iface, *control, *action, *node_addr;
    int cpus, gpus, hb, bport;
    double idle_max;
    const char *security, *key, *broker_key, *config_dir, *policy, *code_list, *install;
    int idle_exit_ms; /* --idle-exit (a flag only: pilots pass it) */
    const char *log_file; /* --log-file (a flag only: the service passes it) */
    const char *cc;       /* --cc: PLAYDOH_CC for this worker */
    const char *limit[6]; /* --max-memory ... --default-output, in s_limit_keys' order */
} s_flags_t;

/* The owner's limits for one job: [worker] keys and their flags. */
static const char *const s_limit_keys[6] = {"max_memory",     "max_cpu_time",     "max_output",
                                            "default_memory", "default_cpu_time", "default_output"};
static const char *const s_limit_flags[6] = {"--max-memory",     "--max-cpu-time",
                                             "--max-output",     "--default-memory",
                                             "--default-cpu-time", "--default-output"};

/* Limit k (s_limit_keys) from its flag, else the configuration; 0: none. */
static uint64_t s_limit(const pd_config_t *cf, const s_flags_t *fl, int k)
{
    if (!fl->limit[k])
        return pd_config_uint(cf, "worker", s_limit_keys[k], 0);
    uint64_t v = 0;
    if (strcmp(fl->limit[k], "0") == 0)
        return 0;
    if (k % 3 == 1)
        pd_limits_parse_seconds(fl->limit[k], &v);
    else
        pd_limits_parse_size(fl->limit[k], &v);
    return v; /* checked by s_check_flag */
}

/* Applies the configuration file's slots, idle policy and log level where
   the command line did not set them (a SIGHUP). */
static void s_reload_config(pd_worker_t *w, void *user)
{
    const s_flags_t *fl = user;
    pd_config_t *cf = pd_config_new();
    char why[1024];
    if (!cf || pd_config_load_default(cf, fl->config, why, sizeof why)) {
        pd_log_error("reload: configuration not reloaded: %s", cf ? why : "out of memory");
        pd_config_destroy(&cf);
        return;
    }
    pd_log_info("reload: configuration reloaded from %s", pd_config_sources(cf)[0]
                                                              ? pd_config_sources(cf)
                                                              : "(no file)");
    if (!fl->level) {
        pd_log_level_t lvl;
        if (pd_log_parse_level(pd_config_str(cf, "worker", "log_level", "info"), &lvl) == 0)
            pd_log_set_level(lvl);
    }
    pd_worker_stats_t st;
    pd_worker_stats(w, &st);
    int cpus = fl->cpus >= 0 ? fl->cpus
                             : (int) pd_config_uint(cf, "worker", "cpus",
                                                    (uint64_t) pd_plat_ncpu());
    /* No gpus anywhere: every GPU found (-1). */
    int gpus = fl->gpus >= 0                         ? fl->gpus
               : pd_config_has(cf, "worker", "gpus") ? (int) pd_config_uint(cf, "worker", "gpus", 0)
                                                     : -1;
    if (cpus != st.cpus || gpus != st.gpus)
        pd_worker_set_slots(w, cpus, gpus, false, why, sizeof why);
    pd_worker_idle_t idle = {
        .load_max = fl->idle_max >= 0 ? fl->idle_max
                                      : pd_config_double(cf, "worker", "idle_load_max", 0),
        .requeue = strcmp(fl->action ? fl->action
                                     : pd_config_str(cf, "worker", "idle_action", "suspend"),
                          "requeue") == 0,
        .check_ms = (int) pd_config_uint(cf, "worker", "idle_check_ms", 2000),
        .wait_s = (int) pd_config_uint(cf, "worker", "idle_wait_s", 60)};
    pd_worker_set_idle(w, &idle);
    pd_config_destroy(&cf);
}

static int s_check_flag(const char *flag, const char *section, const char *key, const char *v)
{
    char why[512];
    if (pd_config_check(section, key, v, why, sizeof why)) {
        fprintf(stderr, "playdoh-worker: %s: %s\n", flag, why);
        exit(PD_EXIT_USAGE);
    }
    return 0;
}

/* --install-module: stores a module in the cache and lists its hash as
   installed, so that `--code-policy installed` runs it. */
static int s_install(const pd_worker_config_t *cfg, const char *file)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "playdoh-worker: cannot read %s: %s\n", file, strerror(errno));
        return PD_EXIT_USAGE;
    }
    size_t cap = 1 << 16, len = 0, got;
    char *data = malloc(cap);
    while (data && (got = fread(data + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap && cap < (64u << 20)) {
            char *grown = realloc(data, cap * 2);
            if (!grown) {
                free(data);
                data = NULL;
                break;
            }
            data = grown;
            cap *= 2;
        } else if (len == cap) {
            break;
        }
    }
    bool big = data && len == cap && fgetc(f) != EOF;
    fclose(f);
    if (!data || big || len == 0) {
        fprintf(stderr, "playdoh-worker: %s is %s\n", file,
                !data ? "too large to read" : big ? "larger than 64 MiB" : "empty");
        free(data);
        return PD_EXIT_USAGE;
    }
    size_t fl = strlen(file);
    /* A task module (.c or .so) or a GPU job's CUDA module (.cu). */
    const char *kind = fl > 3 && strcmp(file + fl - 3, ".so") == 0   ? "so"
                       : fl > 3 && strcmp(file + fl - 3, ".cu") == 0 ? "cu"
                                                                     : "c";
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *) data, len);
    char hash[65];
    sodium_bin2hex(hash, sizeof hash, h, sizeof h);
    int err = 0;
    pd_modcache_t *mc = pd_modcache_new(cfg->cache_dir, &err);
    char why[512] = "";
    int rc = mc ? pd_modcache_store(mc, hash, kind, data, len, why, sizeof why) : err;
    pd_modcache_destroy(&mc);
    free(data);
    if (rc) {
        fprintf(stderr, "playdoh-worker: cannot store %s in %s: %s\n", file, cfg->cache_dir,
                why[0] ? why : pd_strerror(rc));
        return PD_EXIT_FAILED;
    }
    char list[4096];
    if (cfg->code_list) {
        snprintf(list, sizeof list, "%s", cfg->code_list);
    } else {
        char *dir = cfg->config_dir ? strdup(cfg->config_dir) : pd_auth_config_dir();
        if (!dir) {
            fprintf(stderr, "playdoh-worker: HOME is not set: give --code-list FILE\n");
            return PD_EXIT_USAGE;
        }
        snprintf(list, sizeof list, "%s/code-modules", dir);
        free(dir);
    }
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    if (pd_policy_list_add(list, hash, base, why, sizeof why)) {
        fprintf(stderr, "playdoh-worker: %s\n", why);
        return PD_EXIT_FAILED;
    }
    printf("%s\n", hash);
    fprintf(stderr, "playdoh-worker: %s installed in %s and listed in %s (run the worker with "
                    "--code-policy installed to run only such modules)\n", base, cfg->cache_dir, list);
    return 0;
}

/* The worker's long options past the letters. */
enum { O_CONFIG = 256, O_CLUSTER, O_BPORT, O_BIFACE, O_CONTROL, O_IDLE, O_ACTION, O_EXIT,
       O_NODE_ADDR, O_SECURE, O_INSECURE, O_KEY, O_BROKER_KEY, O_CONFIG_DIR, O_POLICY,
       O_LIST, O_INSTALL, O_LOG_FILE, O_CC, O_VERSION, O_LIMIT /* .. O_LIMIT + 5 */ };

/* Takes option c (its argument in optarg) into fl. Returns PD_EXIT_GO_ON to go on, or
   the exit status: 0 after --help or --version, 2 after a bad flag. */
static int s_one_flag(int c, char **argv, s_flags_t *fl)
{
    switch (c) {
    case 'b':
        s_check_flag("--broker", "worker", "broker", optarg);
        fl->broker = optarg;
        break;
    case 'c': fl->cpus = s_int_arg("--cpus", optarg, 0, PD_WORKER_MAX_CPUS); break;
    case 'g': fl->gpus = s_int_arg("--gpus", optarg, 0, PD_WORKER_MAX_GPUS); break;
    case 'C': fl->cache = optarg; break;
    case 'H': fl->hb = s_int_arg("--heartbeat-ms", optarg, 10, 600000); break;
    case 'n': fl->name = optarg; break;
    case 'l':
        s_check_flag("--log-level", "worker", "log_level", optarg);
        fl->level = optarg;
        break;
    case O_CONFIG: fl->config = optarg; break;
    case O_CLUSTER:
        s_check_flag("--cluster", "cluster", "name", optarg);
        fl->cluster = optarg;
        break;
    case O_BPORT: fl->bport = s_int_arg("--beacon-port", optarg, 1, 65535); break;
    case O_BIFACE: fl->iface = optarg; break;
    case O_CONTROL: fl->control = optarg; break;
    case O_IDLE:
        s_check_flag("--idle-load-max", "worker", "idle_load_max", optarg);
        fl->idle_max = strtod(optarg, NULL);
        break;
    case O_ACTION:
        s_check_flag("--idle-action", "worker", "idle_action", optarg);
        fl->action = optarg;
        break;
    case O_NODE_ADDR: fl->node_addr = optarg; break;
    case O_EXIT: fl->idle_exit_ms = s_seconds_arg("--idle-exit", optarg); break;
    case O_SECURE:
    case O_INSECURE: {
        const char *want = c == O_SECURE ? "secure" : "insecure";
        if (fl->security && strcmp(fl->security, want) != 0) {
            fprintf(stderr, "playdoh-worker: --secure and --insecure exclude each other\n");
            return PD_EXIT_USAGE;
        }
        fl->security = want;
        break;
    }
    case O_KEY: fl->key = optarg; break;
    case O_BROKER_KEY: fl->broker_key = optarg; break;
    case O_CONFIG_DIR: fl->config_dir = optarg; break;
    case O_POLICY:
        s_check_flag("--code-policy", "worker", "code_policy", optarg);
        fl->policy = optarg;
        break;
    case O_LIST: fl->code_list = optarg; break;
    case O_INSTALL: fl->install = optarg; break;
    case O_LOG_FILE: fl->log_file = optarg; break;
    case O_CC:
        if (!*optarg) {
            fprintf(stderr, "playdoh-worker: --cc wants a compiler, e.g. gcc\n");
            return PD_EXIT_USAGE;
        }
        fl->cc = optarg;
        break;
    case O_LIMIT:
    case O_LIMIT + 1:
    case O_LIMIT + 2:
    case O_LIMIT + 3:
    case O_LIMIT + 4:
    case O_LIMIT + 5:
        s_check_flag(s_limit_flags[c - O_LIMIT], "worker", s_limit_keys[c - O_LIMIT], optarg);
        fl->limit[c - O_LIMIT] = optarg;
        break;
    case 'h': s_usage(stdout); return 0;
    case O_VERSION: pd_cli_version("playdoh-worker"); return 0;
    default:
        pd_cli_option_error("playdoh-worker", "playdoh-worker", argv[optind - 1], optopt,
                            c == ':');
        return PD_EXIT_USAGE;
    }
    return PD_EXIT_GO_ON;
}

/* Parses the worker's flags into fl. Returns PD_EXIT_GO_ON to go on, or the exit
   status: 0 after --help, 2 after a bad flag (said on stderr). */
static int s_parse_flags(int argc, char **argv, s_flags_t *fl_out)
{
    static const struct option opts[] = {
        {"broker", required_argument, NULL, 'b'},  {"cpus", required_argument, NULL, 'c'},
        {"gpus", required_argument, NULL, 'g'},    {"cache", required_argument, NULL, 'C'},
        {"heartbeat-ms", required_argument, NULL, 'H'}, {"name", required_argument, NULL, 'n'},
        {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
        {"node-addr", required_argument, NULL, O_NODE_ADDR},
        {"config", required_argument, NULL, O_CONFIG},
        {"cluster", required_argument, NULL, O_CLUSTER},
        {"beacon-port", required_argument, NULL, O_BPORT},
        {"beacon-interface", required_argument, NULL, O_BIFACE},
        {"control", required_argument, NULL, O_CONTROL},
        {"idle-load-max", required_argument, NULL, O_IDLE},
        {"idle-action", required_argument, NULL, O_ACTION},
        {"idle-exit", required_argument, NULL, O_EXIT},
        {"secure", no_argument, NULL, O_SECURE},
        {"insecure", no_argument, NULL, O_INSECURE},
        {"key", required_argument, NULL, O_KEY},
        {"broker-key", required_argument, NULL, O_BROKER_KEY},
        {"config-dir", required_argument, NULL, O_CONFIG_DIR},
        {"code-policy", required_argument, NULL, O_POLICY},
        {"code-list", required_argument, NULL, O_LIST},
        {"install-module", required_argument, NULL, O_INSTALL},
        {"log-file", required_argument, NULL, O_LOG_FILE},
        {"cc", required_argument, NULL, O_CC},
        {"max-memory", required_argument, NULL, O_LIMIT},
        {"max-cpu-time", required_argument, NULL, O_LIMIT + 1},
        {"max-output", required_argument, NULL, O_LIMIT + 2},
        {"default-memory", required_argument, NULL, O_LIMIT + 3},
        {"default-cpu-time", required_argument, NULL, O_LIMIT + 4},
        {"default-output", required_argument, NULL, O_LIMIT + 5},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0}};
    s_flags_t fl = {.cpus = -1, .gpus = -1, .hb = -1, .bport = -1, .idle_max = -1};
    int c;
    optind = 1;
    opterr = 0; /* pd_cli says it */
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        int frc = s_one_flag(c, argv, &fl);
        if (frc >= 0)
            return frc;
    }
    static const char *const subs[] = {"ctl", "service", NULL};
    const char *near = optind < argc ? pd_cli_nearest(argv[optind], subs) : NULL;
    if (near) {
        fprintf(stderr, "playdoh-worker: unknown command '%s': did you mean '%s'? (see "
                        "playdoh-worker --help)\n", argv[optind], near);
        return PD_EXIT_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "playdoh-worker: unexpected argument '%s' (see --help)\n", argv[optind]);
        return PD_EXIT_USAGE;
    }
    *fl_out = fl;
    return PD_EXIT_GO_ON;
}

/* The text options merged by pd_opts: flag, else file, else the default
   s_merge sets. Adding an option is one line here. */
#define S_LINE(section, key, ffield, dfield)                                                   \
    PD_OPT_LINE(section, key, PD_OPT_STR, s_flags_t, ffield, pd_worker_config_t, dfield),
#define S_MERGED(X)                                               \
    X("worker", "broker", broker, broker)                    \
    X("worker", "cache_dir", cache, cache_dir)               \
    X("worker", "name", name, name)                          \
    X("worker", "node_addr", node_addr, node_addr)           \
    X("cluster", "name", cluster, cluster)                   \
    X("cluster", "beacon_interface", iface, beacon_iface)    \
    X("worker", "control", control, control)                 \
    X("worker", "key", key, key_file)                        \
    X("worker", "broker_key", broker_key, broker_key)        \
    X("worker", "code_list", code_list, code_list)
static const pd_opt_t s_merged[] = {S_MERGED(S_LINE)};

/* The worker's configuration: each flag given, else its key in the file, else the
   default. */
static void s_merge(pd_worker_config_t *cfg, const pd_config_t *cf, s_flags_t *fl,
                    const char *level)
{
    *cfg = (pd_worker_config_t){
        .cpus = fl->cpus >= 0 ? fl->cpus
                             : (int) pd_config_uint(cf, "worker", "cpus",
                                                    (uint64_t) pd_plat_ncpu()),
        .gpus = fl->gpus >= 0                         ? fl->gpus
                : pd_config_has(cf, "worker", "gpus") ? (int) pd_config_uint(cf, "worker", "gpus", 0)
                                                      : -1, /* every GPU found */
        .heartbeat_ms = fl->hb >= 0 ? fl->hb
                                   : (int) pd_config_uint(cf, "worker", "heartbeat_ms", 1000),
        .log_level = level,
        .cluster = PD_BEACON_DEFAULT_CLUSTER,
        .beacon_port = fl->bport > 0 ? fl->bport
                                    : (int) pd_config_uint(cf, "cluster", "beacon_port",
                                                           PD_BEACON_DEFAULT_PORT),
        .discover_timeout_ms = (int) pd_config_uint(cf, "cluster", "discover_timeout_ms",
                                                     PD_BEACON_DEFAULT_DISCOVER_MS),
        .control_mode = (int) pd_config_uint(cf, "worker", "control_mode", 0660),
        .idle = {.load_max = fl->idle_max >= 0 ? fl->idle_max
                                              : pd_config_double(cf, "worker", "idle_load_max",
                                                                 0),
                 .requeue = strcmp(fl->action ? fl->action
                                             : pd_config_str(cf, "worker", "idle_action",
                                                             "suspend"),
                                   "requeue") == 0,
                 .check_ms = (int) pd_config_uint(cf, "worker", "idle_check_ms", 2000),
                 .wait_s = (int) pd_config_uint(cf, "worker", "idle_wait_s", 60)},
        .proc_dir = pd_config_str(cf, "worker", "proc_dir", NULL),
        .reload = &s_reload,
        .on_reload = s_reload_config,
        .reload_user = fl,
        .config_dir = fl->config_dir,
        .idle_exit_ms = fl->idle_exit_ms,
        .job_max = {s_limit(cf, fl, 0), s_limit(cf, fl, 1), s_limit(cf, fl, 2)},
        .job_default = {s_limit(cf, fl, 3), s_limit(cf, fl, 4), s_limit(cf, fl, 5)},
    };
    pd_opts_merge(s_merged, PD_OPTS_COUNT(s_merged), fl, cf, cfg);
}

/* The module cache when none is configured (to free); NULL after saying why. */
static char *s_default_cache(void)
{
    const char *sd = getenv("CACHE_DIRECTORY"); /* systemd's CacheDirectory= */
    char *cache = sd && *sd ? strdup(sd) : pd_modcache_default_dir();
    if (!cache)
        fprintf(stderr, "playdoh-worker: neither XDG_CACHE_HOME nor HOME is set: choose a "
                        "module cache with --cache DIR or [worker] cache_dir\n");
    return cache;
}

/* The worker itself: flags, configuration, then its loop until a stop
   request (a signal, a console event, the service manager's stop). */
static int s_worker_main(int argc, char **argv)
{
    static s_flags_t fl;
    int prc = s_parse_flags(argc, argv, &fl);
    if (prc >= 0)
        return prc;
    if (fl.log_file) {
        /* Before anything is logged; the slot processes inherit it. */
        char lwhy[600];
        if (pd_plat_stderr_to_file(fl.log_file, lwhy, sizeof lwhy)) {
            fprintf(stderr, "playdoh-worker: --log-file: %s\n", lwhy);
            return PD_EXIT_USAGE;
        }
        pd_log_set_dated(true);
    }
    /* A service gets the system's environment, not its installer's: the
       compiler can come on its command line. */
    if (fl.cc)
        setenv("PLAYDOH_CC", fl.cc, 1);
    pd_config_t *cf = pd_config_new();
    char why[1024];
    if (!cf || pd_config_load_default(cf, fl.config, why, sizeof why)) {
        fprintf(stderr, "playdoh-worker: %s\n", cf ? why : "out of memory");
        pd_config_destroy(&cf);
        return PD_EXIT_USAGE;
    }
    const char *level = fl.level ? fl.level : pd_config_str(cf, "worker", "log_level", "info");
    pd_log_level_t lvl = PD_LOG_INFO;
    pd_log_parse_level(level, &lvl);
    pd_log_set_level(lvl);
    pd_log_set_tag("worker");
    if (pd_config_sources(cf)[0])
        pd_log_info("configuration read from %s", pd_config_sources(cf));

    pd_worker_config_t cfg;
    s_merge(&cfg, cf, &fl, level);
    if (cfg.node_addr && (!cfg.node_addr[0]
                          || (strpbrk(cfg.node_addr, ":/*") && cfg.node_addr[0] != '['))) {
        fprintf(stderr, "playdoh-worker: --node-addr (node_addr) wants an IP address or host name "
                        "of this machine, such as 192.168.1.20, not '%s'\n", cfg.node_addr);
        return PD_EXIT_USAGE;
    }
    /* Values were checked against the schema (flags by s_check_flag). */
    pd_auth_mode_parse(fl.security ? fl.security
                                   : pd_config_str(cf, "worker", "security", "auto"),
                       &cfg.security);
    pd_policy_parse(fl.policy ? fl.policy : pd_config_str(cf, "worker", "code_policy", "any"),
                    &cfg.code_policy);
    char array[96];
    s_slurm_ids(&cfg, array, sizeof array);
    if (cfg.beacon_port == 0 && (!cfg.broker || !*cfg.broker) && !fl.install) {
        fprintf(stderr, "playdoh-worker: [cluster] beacon_port is 0 (no beacons) and no broker "
                        "is given: set [worker] broker or pass --broker ENDPOINT\n");
        pd_config_destroy(&cf);
        return PD_EXIT_USAGE;
    }
    bool default_control = !cfg.control;
    if (cfg.control && strcmp(cfg.control, "none") == 0)
        cfg.control = NULL;
    else if (!cfg.control)
        cfg.control = s_default_control(false);
    char *cache = NULL;
    if (!cfg.cache_dir && !(cfg.cache_dir = cache = s_default_cache())) {
        pd_config_destroy(&cf);
        return PD_EXIT_USAGE;
    }
    if (fl.install) {
        int rc = s_install(&cfg, fl.install);
        free(cache);
        pd_config_destroy(&cf);
        return rc;
    }

    /* SIGINT/SIGTERM/SIGHUP must reach the main thread, whose zmq_poll they
       interrupt: block them while ZeroMQ and CZMQ start their threads (which
       inherit the mask), then unblock them here. */
    pd_plat_on_stop(s_on_signal, s_on_hup);
    pd_plat_hold_stop(true);
    int err = 0;
    pd_worker_t *w = pd_worker_new(&cfg, &err);
    if (!w && err == PD_EIO && default_control && cfg.control) {
        /* The default control socket is another worker's: run without one. */
        pd_log_warn("running without a control socket (another worker has %s; give this one "
                    "--control PATH)", cfg.control);
        cfg.control = NULL;
        w = pd_worker_new(&cfg, &err);
    }
    pd_plat_hold_stop(false);
    if (!w) {
        fprintf(stderr, "playdoh-worker: cannot start: %s\n", pd_strerror(err));
        free(cache);
        pd_config_destroy(&cf);
        return err == PD_EINVAL ? 2 : 1;
    }
    int rc = pd_worker_run(w, &s_stop);
    pd_worker_destroy(&w);
    free(cache);
    pd_config_destroy(&cf);
    return rc ? 1 : 0;
}

/* ---- service ------------------------------------------------------------ */

#define S_SERVICE_NAME "playdoh-worker"

/* True for a path that does not depend on the working directory (a
   service starts in the system's directory): /x, \x, C:\x, \\server\x. */
static bool s_absolute(const char *p)
{
    return p[0] == '/' || p[0] == '\\' ||
           (((p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= 'a' && p[0] <= 'z')) && p[1] == ':' &&
            (p[2] == '\\' || p[2] == '/'));
}

/* `service install [worker options]`: checks the options as the worker
   would, then registers the service with them. */
static int s_service_install(int argc, char **argv, const char *dir)
{
    /* argv[0] is "install": the options follow, parsed as the worker's. */
    s_flags_t fl;
    int prc = s_parse_flags(argc, argv, &fl);
    if (prc >= 0)
        return prc;
    if (fl.install) {
        fprintf(stderr, "playdoh-worker service install: --install-module is not a service "
                        "option: run `playdoh-worker --install-module FILE --cache %s\\cache "
                        "--config-dir %s` from an elevated prompt instead\n", dir, dir);
        return PD_EXIT_USAGE;
    }
    const struct {
        const char *flag, *value;
    } paths[] = {{"--cache", fl.cache},           {"--config", fl.config},
                 {"--control", fl.control},       {"--key", fl.key},
                 {"--config-dir", fl.config_dir}, {"--code-list", fl.code_list},
                 {"--log-file", fl.log_file}};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        const char *v = paths[i].value;
        if (v && !s_absolute(v) && !(strcmp(paths[i].flag, "--control") == 0 &&
                                     strcmp(v, "none") == 0)) {
            fprintf(stderr, "playdoh-worker service install: %s wants a full path (the service "
                            "does not start in this directory), not '%s'\n", paths[i].flag, v);
            return PD_EXIT_USAGE;
        }
    }
    /* What the service manager runs: this program, `service run`, the options. */
    char **av = calloc((size_t) argc + 2, sizeof *av);
    if (!av) {
        fprintf(stderr, "playdoh-worker service install: out of memory\n");
        return PD_EXIT_FAILED;
    }
    av[0] = "service";
    av[1] = "run";
    for (int i = 1; i < argc; i++)
        av[i + 1] = argv[i];
    const pd_plat_service_t svc = {
        .name = S_SERVICE_NAME,
        .display = "Playdoh worker",
        .description = "Lends this machine's CPUs to a Playdoh cluster: runs the jobs its broker "
                       "sends (playdoh-worker service run)."};
    const char *account = NULL;
    char why[1024];
    int rc = pd_plat_service_install(&svc, av, &account, why, sizeof why);
    free(av);
    if (rc) {
        fprintf(stderr, "playdoh-worker service install: %s\n", why);
        return PD_EXIT_FAILED;
    }
    printf("installed the service %s (\"%s\"), starting at boot as %s", S_SERVICE_NAME,
           svc.display, account ? account : "LocalSystem");
    if (account && strcmp(account, "LocalSystem") == 0)
        printf(" (the system refused NT AUTHORITY\\LocalService)");
    printf("\n  options:");
    for (int i = 1; i < argc; i++)
        printf(" %s", argv[i]);
    printf("%s\n  files: %s (configuration playdoh.conf, keys; cache\\, worker.log, "
           "worker.ctl)\n  start it now: playdoh-worker service start\n",
           argc > 1 ? "" : " (none: the configuration file and the beacon decide)", dir);
    return 0;
}

/* `service run [worker options]`: what the service manager starts. The
   service's files are in dir: its defaults come through the variables the
   worker reads (as systemd's CacheDirectory= does on Linux), so that the
   configuration file still overrides them; the log file is a flag. */
static int s_service_run(int argc, char **argv, const char *dir)
{
    char conf[4200], cache[4200], log[4200];
    snprintf(conf, sizeof conf, "%s\\playdoh.conf", dir);
    snprintf(cache, sizeof cache, "%s\\cache", dir);
    snprintf(log, sizeof log, "%s\\worker.log", dir);
    struct stat st;
    const char *pc = getenv("PLAYDOH_CONFIG");
    if ((!pc || !*pc) && stat(conf, &st) == 0)
        setenv("PLAYDOH_CONFIG", conf, 1);
    setenv("PLAYDOH_CONFIG_DIR", dir, 0);
    setenv("CACHE_DIRECTORY", cache, 0);
    /* argv[0] is "run": {program, --log-file LOG, options...}; a
       --log-file among the options comes later and wins. */
    char **av = calloc((size_t) argc + 3, sizeof *av);
    if (!av)
        return PD_EXIT_FAILED;
    av[0] = "playdoh-worker";
    av[1] = "--log-file";
    av[2] = log;
    for (int i = 1; i < argc; i++)
        av[i + 2] = argv[i];
    char why[512];
    int rc = pd_plat_service_run(S_SERVICE_NAME, s_worker_main, argc + 2, av, why, sizeof why);
    free(av);
    if (rc < 0) {
        fprintf(stderr, "playdoh-worker service run: %s: `service run` is what the installed "
                        "service runs; start it with `playdoh-worker service start`, or run "
                        "`playdoh-worker [options]` in a console\n", why);
        return PD_EXIT_USAGE;
    }
    return rc;
}

static int s_service(int argc, char **argv)
{
    /* argv[0] is "service". */
    const char *sub = argc > 1 ? argv[1] : NULL;
    if (!sub) {
        fprintf(stderr, "playdoh-worker service: install, uninstall, start, stop or status? "
                        "(see --help)\n");
        return PD_EXIT_USAGE;
    }
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        s_usage(stdout);
        return 0;
    }
    bool known = false;
    static const char *subs[] = {"install", "uninstall", "start", "stop", "status", "run"};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        known = known || strcmp(sub, subs[i]) == 0;
    if (!known) {
        fprintf(stderr, "playdoh-worker service: unknown command '%s': install, uninstall, start, "
                        "stop or status (see --help)\n", sub);
        return PD_EXIT_USAGE;
    }
    if (strcmp(sub, "install") != 0 && strcmp(sub, "run") != 0 && argc > 2) {
        fprintf(stderr, "playdoh-worker service %s: unexpected argument '%s' (the worker's "
                        "options go to `service install`)\n", sub, argv[2]);
        return PD_EXIT_USAGE;
    }
    char dir[4096];
    int drc = pd_plat_service_dir(dir, sizeof dir);
    if (drc == PD_ESYS) { /* a system whose services are not this program's business */
        fprintf(stderr, "playdoh-worker service: %s\n", dir);
        return PD_EXIT_USAGE;
    }
    if (drc) {
        fprintf(stderr, "playdoh-worker service %s: %s\n", sub, dir);
        return PD_EXIT_FAILED;
    }
    if (strcmp(sub, "install") == 0)
        return s_service_install(argc - 1, argv + 1, dir);
    if (strcmp(sub, "run") == 0)
        return s_service_run(argc - 1, argv + 1, dir);

    char why[1024];
    int rc;
    if (strcmp(sub, "status") == 0) {
        pd_plat_svc_state_t state;
        char info[6000];
        rc = pd_plat_service_status(S_SERVICE_NAME, &state, info, sizeof info);
        if (rc == PD_ENOJOB) {
            printf("%s (install it with `playdoh-worker service install --broker ENDPOINT "
                   "[options]` from an elevated prompt)\n", info);
            return PD_EXIT_NO_SERVICE;
        }
        if (rc) {
            fprintf(stderr, "playdoh-worker service status: %s\n", info);
            return PD_EXIT_FAILED;
        }
        printf("%s\n  log: %s\\worker.log\n", info, dir);
        return state == PD_SVC_RUNNING ? PD_EXIT_OK : PD_EXIT_NOT_RUNNING;
    }
    if (strcmp(sub, "start") == 0)
        rc = pd_plat_service_start(S_SERVICE_NAME, 30000, why, sizeof why);
    else if (strcmp(sub, "stop") == 0)
        rc = pd_plat_service_stop(S_SERVICE_NAME, 60000, why, sizeof why);
    else
        rc = pd_plat_service_uninstall(S_SERVICE_NAME, 60000, why, sizeof why);
    if (rc == PD_ENOJOB) {
        fprintf(stderr, "playdoh-worker service %s: %s (install it with `playdoh-worker service "
                        "install --broker ENDPOINT [options]`)\n", sub, why);
        return PD_EXIT_FAILED;
    }
    if (rc && strcmp(sub, "start") == 0 && rc != PD_EREFUSED) {
        fprintf(stderr, "playdoh-worker service start: %s; its log may say why: %s\\worker.log\n",
                why, dir);
        return PD_EXIT_FAILED;
    }
    if (rc) {
        fprintf(stderr, "playdoh-worker service %s: %s\n", sub, why);
        return PD_EXIT_FAILED;
    }
    if (strcmp(sub, "start") == 0)
        printf("service %s running (log: %s\\worker.log)\n", S_SERVICE_NAME, dir);
    else if (strcmp(sub, "stop") == 0)
        printf("service %s stopped\n", S_SERVICE_NAME);
    else
        printf("service %s stopped and removed (its files stay in %s)\n", S_SERVICE_NAME, dir);
    return 0;
}

int main(int argc, char **argv)
{
    if (pd_slot_is_child(argc, argv))
        return pd_slot_main(argc, argv);
    if (pd_nodeproc_is_child(argc, argv))
        return pd_nodeproc_main(argc, argv);
    if (argc > 1 && strcmp(argv[1], "ctl") == 0)
        return s_ctl(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "service") == 0)
        return s_service(argc - 1, argv + 1);
    return s_worker_main(argc, argv);
}
