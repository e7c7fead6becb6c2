/*  playdoh-broker: command line of the broker.

    Parses flags into a pd_broker_config_t, binds, optionally reports the
    bound endpoint on --ready-fd (the embedded local cluster starts the broker
    on an ephemeral port and reads it there), and runs the loop until SIGINT
    or SIGTERM. SIGHUP reads the allow-list again.
*/
#include "pd_broker.h"
#include "pd_error.h"
#include "pd_log.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

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
            "  --log-level L      error, warn, info or debug (default info)\n"
            "  --ready-fd FD      write the bound endpoint and a newline to FD, then close it\n"
            "  --name NAME        name announced to clients (default: the host name)\n"
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

int main(int argc, char **argv)
{
    pd_broker_config_t cfg;
    pd_broker_config_defaults(&cfg);
    pd_log_set_tag("broker");
    pd_log_set_level(PD_LOG_INFO);
    int ready_fd = -1;
    static const struct option opts[] = {
        {"bind", required_argument, NULL, 'b'},
        {"heartbeat-ms", required_argument, NULL, 'H'},
        {"liveness", required_argument, NULL, 'L'},
        {"max-jobs", required_argument, NULL, 'm'},
        {"result-ttl", required_argument, NULL, 't'},
        {"log-level", required_argument, NULL, 'l'},
        {"ready-fd", required_argument, NULL, 'r'},
        {"name", required_argument, NULL, 'n'},
        {"secure", no_argument, NULL, 'S'},
        {"insecure", no_argument, NULL, 'I'},
        {"key", required_argument, NULL, 'k'},
        {"allow", required_argument, NULL, 'a'},
        {"config-dir", required_argument, NULL, 'C'},
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
        case 'S':
        case 'I': {
            pd_sec_mode_t want = c == 'S' ? PD_SEC_CURVE : PD_SEC_NONE;
            if (cfg.security != PD_SEC_AUTO && cfg.security != want) {
                fprintf(stderr, "playdoh-broker: --secure and --insecure exclude each other\n");
                goto bad;
            }
            cfg.security = want;
            break;
        }
        case 'k':
            cfg.key_file = optarg;
            break;
        case 'a':
            cfg.allow_dir = optarg;
            break;
        case 'C':
            cfg.config_dir = optarg;
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

    /* A connection costs a descriptor: allow as many as the system lets us,
       so that a flood of connections meets the handshake time-out first. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int err;
    pd_broker_t *b = pd_broker_new(&cfg, &err);
    if (!b)
        return 1;
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
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = pd_broker_run(b);
    s_broker = NULL;
    pd_broker_destroy(&b);
    return rc ? 1 : 0;
bad:
    s_usage(stderr);
    return 2;
}
