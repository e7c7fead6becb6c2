/*  playdoh-worker: offers this machine's CPU slots to a Playdoh broker.

    Parses the command line, builds a pd_worker_t and runs its loop until
    SIGINT or SIGTERM, then says `bye` and stops its slot processes. The same
    binary is also the slot process: pd_slot_new() execs /proc/self/exe with
    "--slot ...", which main() hands to pd_slot_main() before anything else.
*/
#include "pd_auth.h"
#include "pd_error.h"
#include "pd_log.h"
#include "pd_modcache.h"
#include "pd_policy.h"
#include "pd_slot.h"
#include "pd_worker.h"

#include <errno.h>
#include <sodium.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void) sig;
    s_stop = 1;
}

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: playdoh-worker --broker ENDPOINT [options]\n"
            "\n"
            "Offers this machine's CPU slots to a Playdoh broker and runs its jobs.\n"
            "\n"
            "  --broker EP        broker endpoint, e.g. tcp://lab-server:5555 (required)\n"
            "  --cpus N           CPU slots to offer (default: online CPUs)\n"
            "  --gpus N           GPUs to offer (default: 0)\n"
            "  --cache DIR        module cache (default: $XDG_CACHE_HOME/playdoh or\n"
            "                     ~/.cache/playdoh)\n"
            "  --heartbeat-ms N   heartbeat until the broker sets its own (default 1000)\n"
            "  --name HOST        host name reported to the broker (default: hostname)\n"
            "  --log-level L      error, warn, info or debug (default: info)\n"
            "\n"
            "security (docs/security.md): towards a broker that is not on loopback the\n"
            "worker runs CurveZMQ and accepts only the broker key it trusts\n"
            "  --secure           CurveZMQ even on loopback\n"
            "  --insecure         no security even on a network (logs a warning at start)\n"
            "  --key FILE         this worker's key pair (default: CONFIG/id.key)\n"
            "  --broker-key KEY   the broker's public key (default: from CONFIG/known_brokers)\n"
            "  --config-dir DIR   CONFIG (default: $PLAYDOH_CONFIG_DIR, $XDG_CONFIG_HOME/playdoh\n"
            "                     or ~/.config/playdoh)\n"
            "\n"
            "whose code runs on this machine (the owner decides):\n"
            "  --code-policy P    any: code from any client the broker admits (default);\n"
            "                     clients: only from the client keys listed in a file;\n"
            "                     installed: only modules installed here, listed by hash\n"
            "  --code-list FILE   the list (default: CONFIG/code-clients or CONFIG/code-modules)\n"
            "  --install-module FILE  store FILE (a .c or .so module) in the cache, add its\n"
            "                     hash to the installed list, print the hash and exit\n"
            "  --help             this text\n");
}

/* Parses a non-negative integer option; exits with a message when bad. */
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
    const char *kind = fl > 3 && strcmp(file + fl - 3, ".so") == 0 ? "so" : "c";
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

    static const struct option opts[] = {
        {"broker", required_argument, NULL, 'b'},  {"cpus", required_argument, NULL, 'c'},
        {"gpus", required_argument, NULL, 'g'},    {"cache", required_argument, NULL, 'C'},
        {"heartbeat-ms", required_argument, NULL, 'H'}, {"name", required_argument, NULL, 'n'},
        {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
        {"secure", no_argument, NULL, 'S'},        {"insecure", no_argument, NULL, 'I'},
        {"key", required_argument, NULL, 'k'},     {"broker-key", required_argument, NULL, 'K'},
        {"config-dir", required_argument, NULL, 'D'},
        {"code-policy", required_argument, NULL, 'P'},
        {"code-list", required_argument, NULL, 'L'},
        {"install-module", required_argument, NULL, 'i'},
        {NULL, 0, NULL, 0}};
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    pd_worker_config_t cfg = {.cpus = ncpu > 0 ? (int) ncpu : 1};
    const char *level = "info";
    const char *install = NULL;
    char *cache = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'b': cfg.broker = optarg; break;
        case 'c': cfg.cpus = s_int_arg("--cpus", optarg, 1, 4096); break;
        case 'g': cfg.gpus = s_int_arg("--gpus", optarg, 0, 1024); break;
        case 'C': cfg.cache_dir = optarg; break;
        case 'H': cfg.heartbeat_ms = s_int_arg("--heartbeat-ms", optarg, 10, 600000); break;
        case 'n': cfg.name = optarg; break;
        case 'l': level = optarg; break;
        case 'h': s_usage(stdout); return 0;
        case 'S':
        case 'I': {
            pd_sec_mode_t want = c == 'S' ? PD_SEC_CURVE : PD_SEC_NONE;
            if (cfg.security != PD_SEC_AUTO && cfg.security != want) {
                fprintf(stderr, "playdoh-worker: --secure and --insecure exclude each other\n");
                return 2;
            }
            cfg.security = want;
            break;
        }
        case 'k': cfg.key_file = optarg; break;
        case 'K': cfg.broker_key = optarg; break;
        case 'D': cfg.config_dir = optarg; break;
        case 'P':
            if (pd_policy_parse(optarg, &cfg.code_policy)) {
                fprintf(stderr, "playdoh-worker: --code-policy wants any, clients or installed, "
                                "got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'L': cfg.code_list = optarg; break;
        case 'i': install = optarg; break;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "playdoh-worker: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    pd_log_level_t lvl;
    if (pd_log_parse_level(level, &lvl)) {
        fprintf(stderr, "playdoh-worker: --log-level wants error, warn, info or debug, got "
                        "'%s'\n", level);
        return 2;
    }
    if (!cfg.broker && !install) {
        fprintf(stderr, "playdoh-worker: --broker ENDPOINT is required (e.g. "
                        "--broker tcp://lab-server:5555)\n");
        return 2;
    }
    if (!cfg.cache_dir) {
        cache = pd_modcache_default_dir();
        if (!cache) {
            fprintf(stderr, "playdoh-worker: neither XDG_CACHE_HOME nor HOME is set: choose a "
                            "module cache with --cache DIR\n");
            return 2;
        }
        cfg.cache_dir = cache;
    }
    pd_log_set_level(lvl);
    pd_log_set_tag("worker");
    cfg.log_level = level;
    if (install) {
        int rc = s_install(&cfg, install);
        free(cache);
        return rc;
    }

    /* SIGINT/SIGTERM must reach the main thread, whose zmq_poll they
       interrupt: block them while ZeroMQ starts its threads (which inherit
       the mask), then unblock them here. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a dead slot process shows up as EPIPE */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    int err = 0;
    pd_worker_t *w = pd_worker_new(&cfg, &err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!w) {
        fprintf(stderr, "playdoh-worker: cannot start: %s\n", pd_strerror(err));
        free(cache);
        return 1;
    }
    int rc = pd_worker_run(w, &s_stop);
    pd_worker_destroy(&w);
    free(cache);
    return rc ? 1 : 0;
}
