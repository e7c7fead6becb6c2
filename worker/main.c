/*  playdoh-worker: offers this machine's CPU slots to a Playdoh broker.

    Parses the command line, builds a pd_worker_t and runs its loop until
    SIGINT or SIGTERM, then says `bye` and stops its slot processes. The same
    binary is also the slot process: pd_slot_new() execs /proc/self/exe with
    "--slot ...", which main() hands to pd_slot_main() before anything else;
    likewise "--node ..." (a node of a synchronous task) goes to
    pd_nodeproc_main().
*/
#include "pd_error.h"
#include "pd_log.h"
#include "pd_modcache.h"
#include "pd_nodeproc.h"
#include "pd_slot.h"
#include "pd_worker.h"

#include <errno.h>
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
            "  --node-addr ADDR   address the nodes of synchronous tasks bind on, reachable\n"
            "                     from the other workers (default: the address this machine\n"
            "                     uses to reach the broker)\n"
            "  --log-level L      error, warn, info or debug (default: info)\n"
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

int main(int argc, char **argv)
{
    if (pd_slot_is_child(argc, argv))
        return pd_slot_main(argc, argv);
    if (pd_nodeproc_is_child(argc, argv))
        return pd_nodeproc_main(argc, argv);

    static const struct option opts[] = {
        {"broker", required_argument, NULL, 'b'},  {"cpus", required_argument, NULL, 'c'},
        {"gpus", required_argument, NULL, 'g'},    {"cache", required_argument, NULL, 'C'},
        {"heartbeat-ms", required_argument, NULL, 'H'}, {"name", required_argument, NULL, 'n'},
        {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
        {"node-addr", required_argument, NULL, 'a'},
        {NULL, 0, NULL, 0}};
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    pd_worker_config_t cfg = {.cpus = ncpu > 0 ? (int) ncpu : 1};
    const char *level = "info";
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
        case 'a':
            if (!optarg[0] || (strpbrk(optarg, ":/*") && optarg[0] != '[')) {
                fprintf(stderr, "playdoh-worker: --node-addr wants an IP address or host name "
                                "of this machine (such as 192.168.1.20), got '%s'\n", optarg);
                return 2;
            }
            cfg.node_addr = optarg;
            break;
        case 'l': level = optarg; break;
        case 'h': s_usage(stdout); return 0;
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
    if (!cfg.broker) {
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
