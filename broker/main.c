/*  playdoh-broker: command line of the broker.

    Parses flags into a pd_broker_config_t, binds, optionally reports the
    bound endpoint on --ready-fd (the embedded local cluster starts the broker
    on an ephemeral port and reads it there), and runs the loop until SIGINT
    or SIGTERM.
*/
#include "pd_broker.h"
#include "pd_error.h"
#include "pd_log.h"
#include "pd_modcache.h"
#include "pd_slot.h"
#include "pd_worker.h"

#include <pthread.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The one broker of this process, for the signal handler only. */
static pd_broker_t *s_broker;

static void s_on_signal(int sig)
{
    (void) sig;
    if (s_broker)
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
            "  --log-level L      error, warn, info or debug (default info)\n"
            "  --ready-fd FD      write the bound endpoint and a newline to FD, then close it\n"
            "  --name NAME        name announced to clients (default: the host name)\n"
            "  --worker-cpus N    also run a worker with N slots inside this process (the\n"
            "                     embedded local cluster); its module cache is --cache DIR\n"
            "  --cache DIR        embedded worker's module cache (default ~/.cache/playdoh)\n"
            "  --help             this text\n",
            PD_BROKER_DEFAULT_BIND, PD_BROKER_DEFAULT_HB_MS, PD_BROKER_DEFAULT_LIVENESS,
            PD_BROKER_DEFAULT_TTL_S);
}

/* Parses an unsigned integer flag value in [lo, hi]; prints why and returns
   -1 when it is not one. */
static int s_parse_u64(const char *flag, const char *text, uint64_t lo, uint64_t hi,
                       uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (!text[0] || *end || errno || text[0] == '-' || v < lo || v > hi) {
        fprintf(stderr, "playdoh-broker: %s wants a whole number from %llu to %llu, not '%s'\n",
                flag, (unsigned long long) lo, (unsigned long long) hi, text);
        return -1;
    }
    *out = v;
    return 0;
}

/* The embedded worker: a pd_worker in a thread of the broker, connected
   over inproc, for the local cluster (one process instead of two, and two
   fewer TCP hops on every job's way). */
typedef struct {
    pd_worker_t *worker;
    volatile sig_atomic_t stop;
    pthread_t thread;
} s_embedded_t;

static void *s_embedded_run(void *arg)
{
    s_embedded_t *e = arg;
    pd_worker_run(e->worker, &e->stop);
    return NULL;
}

#define S_EMBEDDED_EP "inproc://playdoh-embedded-worker"

static int s_embedded_start(s_embedded_t *e, pd_broker_t *b, int cpus, const char *cache)
{
    if (pd_broker_bind_also(b, S_EMBEDDED_EP))
        return PD_EIO;
    const char *level = NULL;
    static const char *names[] = {"error", "warn", "info", "debug"};
    level = names[pd_log_level()];
    /* It offers every GPU the CUDA driver shows, like playdoh-worker. */
    pd_worker_config_t wc = {.broker = S_EMBEDDED_EP, .cpus = cpus, .gpus = -1,
                             .cache_dir = cache, .log_level = level,
                             .zmq_ctx = pd_broker_zmq_ctx(b)};
    int err = 0;
    e->worker = pd_worker_new(&wc, &err);
    if (!e->worker)
        return err;
    if (pthread_create(&e->thread, NULL, s_embedded_run, e)) {
        pd_worker_destroy(&e->worker);
        return PD_ESYS;
    }
    return 0;
}

static void s_embedded_stop(s_embedded_t *e)
{
    if (!e->worker)
        return;
    e->stop = 1;
    pthread_join(e->thread, NULL);
    pd_worker_destroy(&e->worker);
}

int main(int argc, char **argv)
{
    /* The embedded worker's slot processes are this program, exec'ed again. */
    if (pd_slot_is_child(argc, argv))
        return pd_slot_main(argc, argv);
    pd_broker_config_t cfg;
    pd_broker_config_defaults(&cfg);
    pd_log_set_tag("broker");
    pd_log_set_level(PD_LOG_INFO);
    int ready_fd = -1;
    int worker_cpus = 0;
    const char *cache = NULL;
    static const struct option opts[] = {
        {"bind", required_argument, NULL, 'b'},
        {"heartbeat-ms", required_argument, NULL, 'H'},
        {"liveness", required_argument, NULL, 'L'},
        {"max-jobs", required_argument, NULL, 'm'},
        {"result-ttl", required_argument, NULL, 't'},
        {"log-level", required_argument, NULL, 'l'},
        {"ready-fd", required_argument, NULL, 'r'},
        {"name", required_argument, NULL, 'n'},
        {"worker-cpus", required_argument, NULL, 'w'},
        {"cache", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (!optarg[0]) {
                fprintf(stderr, "playdoh-broker: --bind wants an endpoint such as "
                                "tcp://127.0.0.1:5555\n");
                goto bad;
            }
            cfg.bind = optarg;
            break;
        case 'H':
            if (s_parse_u64("--heartbeat-ms", optarg, 10, 600000, &v))
                goto bad;
            cfg.hb_ms = (uint32_t) v;
            break;
        case 'L':
            if (s_parse_u64("--liveness", optarg, 1, 1000, &v))
                goto bad;
            cfg.liveness = (uint32_t) v;
            break;
        case 'm':
            if (s_parse_u64("--max-jobs", optarg, 1, 1000000000000ull, &v))
                goto bad;
            cfg.max_jobs = v;
            break;
        case 't':
            if (s_parse_u64("--result-ttl", optarg, 1, 100u * 365 * 86400, &v))
                goto bad;
            cfg.result_ttl_s = (uint32_t) v;
            break;
        case 'l': {
            pd_log_level_t level;
            if (pd_log_parse_level(optarg, &level)) {
                fprintf(stderr, "playdoh-broker: --log-level wants error, warn, info or debug, "
                                "not '%s'\n", optarg);
                goto bad;
            }
            pd_log_set_level(level);
            break;
        }
        case 'r':
            if (s_parse_u64("--ready-fd", optarg, 0, 1000000, &v))
                goto bad;
            ready_fd = (int) v;
            break;
        case 'n':
            cfg.name = optarg;
            break;
        case 'w':
            if (s_parse_u64("--worker-cpus", optarg, 1, 4096, &v))
                goto bad;
            worker_cpus = (int) v;
            break;
        case 'C':
            cache = optarg;
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            if (optopt)
                fprintf(stderr, "playdoh-broker: option '%s' needs a value\n", argv[optind - 1]);
            else
                fprintf(stderr, "playdoh-broker: unknown option '%s'\n", argv[optind - 1]);
            goto bad;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "playdoh-broker: unexpected argument '%s'\n", argv[optind]);
        goto bad;
    }

    int err;
    pd_broker_t *b = pd_broker_new(&cfg, &err);
    if (!b)
        return 1;
    s_embedded_t embedded = {0};
    if (worker_cpus > 0) {
        /* Signals go to the loop's thread: block them in the worker's. */
        sigset_t set, old;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, &old);
        char *dflt = cache ? NULL : pd_modcache_default_dir();
        err = s_embedded_start(&embedded, b, worker_cpus, cache ? cache : dflt);
        free(dflt);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (err) {
            fprintf(stderr, "playdoh-broker: cannot start the embedded worker: %s\n",
                    pd_strerror(err));
            pd_broker_destroy(&b);
            return 1;
        }
    }
    if (ready_fd >= 0) {
        char line[300];
        int n = snprintf(line, sizeof line, "%s\n", pd_broker_endpoint(b));
        if (write(ready_fd, line, (size_t) n) != n)
            pd_log_warn("could not write the endpoint to --ready-fd %d: %s", ready_fd,
                        strerror(errno));
        close(ready_fd);
    }
    s_broker = b;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = pd_broker_run(b);
    s_broker = NULL;
    s_embedded_stop(&embedded);
    pd_broker_destroy(&b);
    return rc ? 1 : 0;
bad:
    s_usage(stderr);
    return 2;
}
