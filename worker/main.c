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

    The same binary is also the slot process: pd_slot_new() execs
    /proc/self/exe with "--slot ...", which main() hands to pd_slot_main()
    before anything else.

    Likewise "--node ..." (a node of a synchronous task) goes to
    pd_nodeproc_main().
*/
#include "pd_auth.h"
#include "pd_beacon.h"
#include "pd_codec.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_json.h"
#include "pd_log.h"
#include "pd_modcache.h"
#include "pd_msg.h"
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
            "  --help             this text\n"
            "\n"
            "Flags override the configuration file ([cluster] and [worker]); SIGHUP re-reads it.\n"
            "\n"
            "ctl: change the slots of the running worker at once (no restart): lowering lets\n"
            "running jobs finish and starts none beyond the limit; --now hands the excess\n"
            "back to the broker, which runs it elsewhere. Without --cpus/--gpus it prints the\n"
            "worker's state.\n",
            PD_CONFIG_SYSTEM_PATH, PD_BEACON_DEFAULT_CLUSTER, PD_BEACON_DEFAULT_PORT);
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
        exit(2);
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
        exit(2);
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
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cpus = s_int_arg("--cpus", optarg, 0, PD_WORKER_MAX_CPUS); break;
        case 'g': gpus = s_int_arg("--gpus", optarg, 0, PD_WORKER_MAX_GPUS); break;
        case 'N': now = true; break;
        case 'C': control = optarg; break;
        case 'f': config = optarg; break;
        case 'j': json = true; break;
        case 'h': s_usage(stdout); return 0;
        default: fprintf(stderr, "(run playdoh-worker --help for usage)\n"); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "playdoh-worker ctl: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    pd_config_t *cf = NULL;
    char why[1024];
    if (!control) {
        cf = pd_config_new();
        if (!cf || pd_config_load_default(cf, config, why, sizeof why)) {
            fprintf(stderr, "playdoh-worker ctl: %s\n", cf ? why : "out of memory");
            pd_config_destroy(&cf);
            return 2;
        }
        control = pd_config_str(cf, "worker", "control", NULL);
        if (!control)
            control = s_default_control(true);
    }
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "ctl", (uint32_t) ((cpus >= 0) + (gpus >= 0) + now));
    if (cpus >= 0)
        pd_pack_kv_uint(&pk, "cpus", (uint64_t) cpus);
    if (gpus >= 0)
        pd_pack_kv_uint(&pk, "gpus", (uint64_t) gpus);
    if (now)
        pd_pack_kv_bool(&pk, "now", true);
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_REQ);
    int zero = 0, wait = 5000;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &wait, sizeof wait);
    zmq_setsockopt(sock, ZMQ_SNDTIMEO, &wait, sizeof wait);
    char ep[4200];
    int rc = 3;
    zmq_msg_t reply;
    zmq_msg_init(&reply);
    struct stat st;
    if (stat(control, &st) != 0) {
        fprintf(stderr, "playdoh-worker ctl: no control socket at %s (%s): is playdoh-worker "
                        "running? give its socket with --control PATH\n", control,
                strerror(errno));
    } else if (access(control, W_OK) != 0) {
        fprintf(stderr, "playdoh-worker ctl: %s: %s (the socket's group may use it: ask to be "
                        "added to that group, e.g. `usermod -aG playdoh $USER`)\n", control,
                strerror(errno));
    } else if (pd_plat_control_endpoint(control, ep, sizeof ep) != 0) {
        fprintf(stderr, "playdoh-worker ctl: %s\n", ep);
    } else if (zmq_connect(sock, ep) != 0 || zmq_send(sock, b.data, b.len, 0) < 0 ||
               zmq_msg_recv(&reply, sock, 0) < 0) {
        fprintf(stderr, "playdoh-worker ctl: no answer on %s within 5 s (%s): is playdoh-worker "
                        "running?\n", control, zmq_strerror(errno));
    } else {
        pd_msg_t m;
        if (pd_msg_parse(&m, zmq_msg_data(&reply), zmq_msg_size(&reply))) {
            fprintf(stderr, "playdoh-worker ctl: unreadable answer: %s\n", m.why);
        } else if (pd_msg_is(&m, "error")) {
            char msg[512] = "";
            pd_msg_str(&m, "msg", msg, sizeof msg);
            fprintf(stderr, "playdoh-worker ctl: refused: %s\n", msg);
            rc = 2;
        } else {
            char id[32] = "", host[256] = "", broker[256] = "";
            uint64_t vc = 0, vg = 0, off = 0, slots = 0, down = 0, busy = 0, q = 0, done = 0, req = 0;
            bool reg = false, owner = false;
            double load = -1;
            pd_msg_str(&m, "id", id, sizeof id);
            pd_msg_str(&m, "host", host, sizeof host);
            pd_msg_str(&m, "broker", broker, sizeof broker);
            pd_msg_uint_opt(&m, "cpus", &vc);
            pd_msg_uint_opt(&m, "gpus", &vg);
            pd_msg_uint_opt(&m, "offered", &off);
            pd_msg_uint_opt(&m, "slots", &slots);
            pd_msg_uint_opt(&m, "down", &down);
            pd_msg_uint_opt(&m, "busy", &busy);
            pd_msg_uint_opt(&m, "queued", &q);
            pd_msg_uint_opt(&m, "done", &done);
            pd_msg_uint_opt(&m, "requeued", &req);
            pd_msg_bool(&m, "registered", &reg);
            pd_msg_bool(&m, "owner", &owner);
            pd_msg_double(&m, "load", &load);
            if (json) {
                pd_buf_t out;
                pd_buf_init(&out);
                pd_msgpack_to_json(zmq_msg_data(&reply), zmq_msg_size(&reply), &out);
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
            rc = 0;
        }
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
} s_flags_t;

/* Applies the configuration file's slots, idle policy and log level where
   the command line did not set them (a SIGHUP). */
static void s_reload_config(pd_worker_t *w, void *user)
{
    const s_flags_t *fl = user;
    pd_config_t *cf = pd_config_new();
    char why[1024];
    if (!cf || pd_config_load_default(cf, fl->config, why, sizeof why)) {
        pd_log_error("SIGHUP: configuration not reloaded: %s", cf ? why : "out of memory");
        pd_config_destroy(&cf);
        return;
    }
    pd_log_info("SIGHUP: configuration reloaded from %s", pd_config_sources(cf)[0]
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
        exit(2);
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
        return 2;
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
        return 2;
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
        return 1;
    }
    char list[4096];
    if (cfg->code_list) {
        snprintf(list, sizeof list, "%s", cfg->code_list);
    } else {
        char *dir = cfg->config_dir ? strdup(cfg->config_dir) : pd_auth_config_dir();
        if (!dir) {
            fprintf(stderr, "playdoh-worker: HOME is not set: give --code-list FILE\n");
            return 2;
        }
        snprintf(list, sizeof list, "%s/code-modules", dir);
        free(dir);
    }
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    if (pd_policy_list_add(list, hash, base, why, sizeof why)) {
        fprintf(stderr, "playdoh-worker: %s\n", why);
        return 1;
    }
    printf("%s\n", hash);
    fprintf(stderr, "playdoh-worker: %s installed in %s and listed in %s (run the worker with "
                    "--code-policy installed to run only such modules)\n", base, cfg->cache_dir, list);
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

    enum { O_CONFIG = 256, O_CLUSTER, O_BPORT, O_BIFACE, O_CONTROL, O_IDLE, O_ACTION, O_EXIT,
           O_NODE_ADDR, O_SECURE, O_INSECURE, O_KEY, O_BROKER_KEY, O_CONFIG_DIR, O_POLICY,
           O_LIST, O_INSTALL };
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
        {NULL, 0, NULL, 0}};
    static s_flags_t fl = {.cpus = -1, .gpus = -1, .hb = -1, .bport = -1, .idle_max = -1};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            s_check_flag("--broker", "worker", "broker", optarg);
            fl.broker = optarg;
            break;
        case 'c': fl.cpus = s_int_arg("--cpus", optarg, 0, PD_WORKER_MAX_CPUS); break;
        case 'g': fl.gpus = s_int_arg("--gpus", optarg, 0, PD_WORKER_MAX_GPUS); break;
        case 'C': fl.cache = optarg; break;
        case 'H': fl.hb = s_int_arg("--heartbeat-ms", optarg, 10, 600000); break;
        case 'n': fl.name = optarg; break;
        case 'l':
            s_check_flag("--log-level", "worker", "log_level", optarg);
            fl.level = optarg;
            break;
        case O_CONFIG: fl.config = optarg; break;
        case O_CLUSTER:
            s_check_flag("--cluster", "cluster", "name", optarg);
            fl.cluster = optarg;
            break;
        case O_BPORT: fl.bport = s_int_arg("--beacon-port", optarg, 1, 65535); break;
        case O_BIFACE: fl.iface = optarg; break;
        case O_CONTROL: fl.control = optarg; break;
        case O_IDLE:
            s_check_flag("--idle-load-max", "worker", "idle_load_max", optarg);
            fl.idle_max = strtod(optarg, NULL);
            break;
        case O_ACTION:
            s_check_flag("--idle-action", "worker", "idle_action", optarg);
            fl.action = optarg;
            break;
        case O_NODE_ADDR: fl.node_addr = optarg; break;
        case O_EXIT: fl.idle_exit_ms = s_seconds_arg("--idle-exit", optarg); break;
        case O_SECURE:
        case O_INSECURE: {
            const char *want = c == O_SECURE ? "secure" : "insecure";
            if (fl.security && strcmp(fl.security, want) != 0) {
                fprintf(stderr, "playdoh-worker: --secure and --insecure exclude each other\n");
                return 2;
            }
            fl.security = want;
            break;
        }
        case O_KEY: fl.key = optarg; break;
        case O_BROKER_KEY: fl.broker_key = optarg; break;
        case O_CONFIG_DIR: fl.config_dir = optarg; break;
        case O_POLICY:
            s_check_flag("--code-policy", "worker", "code_policy", optarg);
            fl.policy = optarg;
            break;
        case O_LIST: fl.code_list = optarg; break;
        case O_INSTALL: fl.install = optarg; break;
        case 'h': s_usage(stdout); return 0;
        default: fprintf(stderr, "(run playdoh-worker --help for usage)\n"); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "playdoh-worker: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    pd_config_t *cf = pd_config_new();
    char why[1024];
    if (!cf || pd_config_load_default(cf, fl.config, why, sizeof why)) {
        fprintf(stderr, "playdoh-worker: %s\n", cf ? why : "out of memory");
        pd_config_destroy(&cf);
        return 2;
    }
    const char *level = fl.level ? fl.level : pd_config_str(cf, "worker", "log_level", "info");
    pd_log_level_t lvl = PD_LOG_INFO;
    pd_log_parse_level(level, &lvl);
    pd_log_set_level(lvl);
    pd_log_set_tag("worker");
    if (pd_config_sources(cf)[0])
        pd_log_info("configuration read from %s", pd_config_sources(cf));

    pd_worker_config_t cfg = {
        .broker = fl.broker ? fl.broker : pd_config_str(cf, "worker", "broker", NULL),
        .cpus = fl.cpus >= 0 ? fl.cpus
                             : (int) pd_config_uint(cf, "worker", "cpus",
                                                    (uint64_t) pd_plat_ncpu()),
        .gpus = fl.gpus >= 0                         ? fl.gpus
                : pd_config_has(cf, "worker", "gpus") ? (int) pd_config_uint(cf, "worker", "gpus", 0)
                                                      : -1, /* every GPU found */
        .cache_dir = fl.cache ? fl.cache : pd_config_str(cf, "worker", "cache_dir", NULL),
        .heartbeat_ms = fl.hb >= 0 ? fl.hb
                                   : (int) pd_config_uint(cf, "worker", "heartbeat_ms", 1000),
        .name = fl.name ? fl.name : pd_config_str(cf, "worker", "name", NULL),
        .node_addr = fl.node_addr ? fl.node_addr : pd_config_str(cf, "worker", "node_addr", NULL),
        .log_level = level,
        .cluster = fl.cluster ? fl.cluster
                              : pd_config_str(cf, "cluster", "name", PD_BEACON_DEFAULT_CLUSTER),
        .beacon_port = fl.bport > 0 ? fl.bport
                                    : (int) pd_config_uint(cf, "cluster", "beacon_port",
                                                           PD_BEACON_DEFAULT_PORT),
        .beacon_iface = fl.iface ? fl.iface : pd_config_str(cf, "cluster", "beacon_interface",
                                                           NULL),
        .discover_timeout_ms = (int) pd_config_uint(cf, "cluster", "discover_timeout_ms", 5000),
        .control = fl.control ? fl.control : pd_config_str(cf, "worker", "control", NULL),
        .control_mode = (int) pd_config_uint(cf, "worker", "control_mode", 0660),
        .idle = {.load_max = fl.idle_max >= 0 ? fl.idle_max
                                              : pd_config_double(cf, "worker", "idle_load_max",
                                                                 0),
                 .requeue = strcmp(fl.action ? fl.action
                                             : pd_config_str(cf, "worker", "idle_action",
                                                             "suspend"),
                                   "requeue") == 0,
                 .check_ms = (int) pd_config_uint(cf, "worker", "idle_check_ms", 2000),
                 .wait_s = (int) pd_config_uint(cf, "worker", "idle_wait_s", 60)},
        .proc_dir = pd_config_str(cf, "worker", "proc_dir", NULL),
        .reload = &s_reload,
        .on_reload = s_reload_config,
        .reload_user = &fl,
        .config_dir = fl.config_dir,
        .key_file = fl.key ? fl.key : pd_config_str(cf, "worker", "key", NULL),
        .broker_key = fl.broker_key ? fl.broker_key : pd_config_str(cf, "worker", "broker_key", NULL),
        .code_list = fl.code_list ? fl.code_list : pd_config_str(cf, "worker", "code_list", NULL),
        .idle_exit_ms = fl.idle_exit_ms,
    };
    if (cfg.node_addr && (!cfg.node_addr[0]
                          || (strpbrk(cfg.node_addr, ":/*") && cfg.node_addr[0] != '['))) {
        fprintf(stderr, "playdoh-worker: --node-addr (node_addr) wants an IP address or host name "
                        "of this machine, such as 192.168.1.20, not '%s'\n", cfg.node_addr);
        return 2;
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
        return 2;
    }
    bool default_control = !cfg.control;
    if (cfg.control && strcmp(cfg.control, "none") == 0)
        cfg.control = NULL;
    else if (!cfg.control)
        cfg.control = s_default_control(false);
    char *cache = NULL;
    if (!cfg.cache_dir) {
        const char *sd = getenv("CACHE_DIRECTORY"); /* systemd's CacheDirectory= */
        cache = sd && *sd ? strdup(sd) : pd_modcache_default_dir();
        if (!cache) {
            fprintf(stderr, "playdoh-worker: neither XDG_CACHE_HOME nor HOME is set: choose a "
                            "module cache with --cache DIR or [worker] cache_dir\n");
            pd_config_destroy(&cf);
            return 2;
        }
        cfg.cache_dir = cache;
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
