/*  pd_local: the embedded cluster, a broker (which runs the worker too, over
    inproc) started as a child process of the calling program on this
    machine.

    The broker binds an ephemeral loopback port and writes the endpoint it got
    to a pipe (--ready-fd); pd_local_start() returns once the broker counts
    the worker's slots. The children ask the kernel to SIGTERM them if their
    parent dies, so an embedded cluster never outlives the program that
    started it.

    Loopback needs no keys. Benchmarks and tests of what a real cluster pays
    can ask for the worker as its own process over TCP (tcp_worker), and for
    CurveZMQ on every connection (secure, which implies tcp_worker): then
    throw-away keys are made in a private temporary directory, a broker pair
    and one pair for the worker and the clients, admitted as both.
*/
#include "playdoh.h"

#include "pd_auth.h"
#include "pd_build.h"
#include "pd_log.h"
#include "pd_plat.h"
#include "pd_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct pd_local {
    pid_t broker;        /* the playdoh-broker child (which runs the worker, unless tcp_worker) */
    pid_t worker;        /* tcp_worker: the playdoh-worker child, else 0 */
    char endpoint[256];  /* the broker's bound endpoint */
    char dir[64];        /* secure: the keys' temporary directory, else "" */
    char peer_dir[96];   /* secure: configuration directory of the worker and clients */
    char broker_key[PD_KEY_TXT]; /* secure: the broker's public key */
    pd_client_opts_t copts;      /* what a client of this cluster needs */
};

/* Makes the keys of a secure local cluster under l->dir. */
static int s_make_keys(pd_local_t *l)
{
    snprintf(l->dir, sizeof l->dir, "/tmp/playdoh-local-XXXXXX");
    if (!mkdtemp(l->dir)) {
        l->dir[0] = 0;
        return PD_ESYS;
    }
    char broker_dir[96], allow[128], why[512];
    snprintf(broker_dir, sizeof broker_dir, "%s/broker", l->dir);
    snprintf(allow, sizeof allow, "%s/allowed", broker_dir);
    snprintf(l->peer_dir, sizeof l->peer_dir, "%s/peer", l->dir);
    pd_keypair_t bk, pk;
    int rc;
    if ((rc = pd_auth_keygen(broker_dir, "local-broker", false, &bk, why, sizeof why)) ||
        (rc = pd_auth_keygen(l->peer_dir, "local-peer", false, &pk, why, sizeof why)) ||
        (rc = pd_auth_allow_add(allow, pk.pub, PD_ROLE_BOTH, "local-peer", why, sizeof why))) {
        pd_log_error("local cluster: %s", why);
        return rc;
    }
    snprintf(l->broker_key, sizeof l->broker_key, "%s", bk.pub);
    return 0;
}

pd_local_t *pd_local_start(int cpus, int *err)
{
    pd_local_opts_t o = {.cpus = cpus};
    return pd_local_start_opts(&o, err);
}

pd_local_t *pd_local_start_opts(const pd_local_opts_t *opts, int *err)
{
    int dummy;
    if (!err)
        err = &dummy;
    *err = 0;
    int cpus = opts ? opts->cpus : 0;
    bool secure = opts && opts->secure;
    bool tcp_worker = secure || (opts && opts->tcp_worker);
    const char *http = opts ? opts->http : NULL;
    char broker_path[PATH_MAX], worker_path[PATH_MAX];
    const char *missing = pd_proc_find("playdoh-broker", broker_path, sizeof broker_path)
                              ? "playdoh-broker"
                          : tcp_worker && pd_proc_find("playdoh-worker", worker_path,
                                                       sizeof worker_path)
                              ? "playdoh-worker"
                              : NULL;
    if (missing) {
        const char *tried = strcmp(missing, "playdoh-broker") == 0 ? broker_path : worker_path;
        char why[PATH_MAX + 256];
        snprintf(why, sizeof why, "%s not found (looked at %s): install Playdoh, put its bin "
                 "directory on PATH, or set PLAYDOH_BINDIR (or PLAYDOH_%s_BIN)", missing, tried,
                 strcmp(missing, "playdoh-broker") == 0 ? "BROKER" : "WORKER");
        if (opts && opts->why && opts->whycap)
            snprintf(opts->why, opts->whycap, "%s", why);
        else
            pd_log_error("local cluster: %s", why);
        *err = PD_EIO;
        return NULL;
    }
    pd_local_t *l = calloc(1, sizeof *l);
    if (!l) {
        *err = PD_ENOMEM;
        return NULL;
    }
    const char *level = getenv("PLAYDOH_LOG_LEVEL");
    char broker_dir[96] = "";
    l->copts.security = PD_SECURITY_NONE;
    if (secure) {
        if ((*err = s_make_keys(l)) != 0) {
            pd_local_stop(&l);
            return NULL;
        }
        snprintf(broker_dir, sizeof broker_dir, "%s/broker", l->dir);
        l->copts.security = PD_SECURITY_CURVE;
        l->copts.config_dir = l->peer_dir;
        l->copts.broker_key = l->broker_key;
    }
    char cpus_s[16];
    snprintf(cpus_s, sizeof cpus_s, "%d", cpus > 0 ? cpus : (int) sysconf(_SC_NPROCESSORS_ONLN));
    /* No journal: the cluster lives and dies with this program, and nothing
       could reconnect to its ephemeral port after a restart anyway. Flags
       after the NULL-able tail are cut by the first NULL. */
    char *bargv[20] = {broker_path, "--bind", "tcp://127.0.0.1:*", "--ready-fd", "3",
                       "--log-level", (char *) (level ? level : "error"), "--no-beacon",
                       "--no-journal"};
    int bc = 9;
    if (secure) {
        bargv[bc++] = "--secure";
        bargv[bc++] = "--config-dir";
        bargv[bc++] = broker_dir;
    } else {
        bargv[bc++] = "--insecure";
    }
    if (!tcp_worker) {
        bargv[bc++] = "--worker-cpus";
        bargv[bc++] = cpus_s;
    }
    if (http) {
        bargv[bc++] = "--http";
        bargv[bc++] = (char *) http;
    }
    bargv[bc] = NULL;
    int ready = -1;
    l->broker = pd_proc_spawn(bargv, &ready);
    int rc = l->broker > 0 ? pd_proc_read_line(ready, l->endpoint, sizeof l->endpoint, 10000)
                           : PD_ESYS;
    if (ready >= 0)
        close(ready);
    if (rc) {
        pd_log_error("local cluster: %s did not report its endpoint", broker_path);
        pd_local_stop(&l);
        *err = PD_EIO;
        return NULL;
    }
    if (tcp_worker) {
        char *wargv[16] = {worker_path, "--broker", l->endpoint, "--cpus", cpus_s,
                           "--log-level", (char *) (level ? level : "error"), "--control",
                           "none"};
        int wc = 9;
        if (secure) {
            wargv[wc++] = "--secure";
            wargv[wc++] = "--config-dir";
            wargv[wc++] = l->peer_dir;
            wargv[wc++] = "--broker-key";
            wargv[wc++] = l->broker_key;
        } else {
            wargv[wc++] = "--insecure";
        }
        wargv[wc] = NULL;
        l->worker = pd_proc_spawn(wargv, NULL);
    }
    /* Wait for the worker to register its slots. */
    pd_client_t *c = pd_client_open(l->endpoint, &l->copts, err);
    if (!c) {
        pd_local_stop(&l);
        return NULL;
    }
    /* Asked again after 0.5, 1, 2 ... ms, then every 20 ms: the worker
       registers a few milliseconds after the broker is up, and a fixed
       20 ms pause cost each whole `--local` call most of one. */
    int workers = 0, slots = 0;
    for (int waited = 0, pause = 500; waited < 20000000 && workers < 1; waited += pause) {
        if (pd_client_cluster_size(c, &workers, &slots))
            break;
        if (workers < 1) {
            usleep((useconds_t) pause);
            pause = pause < 20000 ? pause * 2 : 20000;
        }
        if (l->worker > 0 && waitpid(l->worker, NULL, WNOHANG) == l->worker) {
            l->worker = 0;
            break;
        }
    }
    pd_client_destroy(&c);
    if (workers < 1) {
        pd_log_error("local cluster: the worker did not register within 20 s");
        pd_local_stop(&l);
        *err = PD_EUNREACH;
        return NULL;
    }
    return l;
}

const char *pd_local_endpoint(const pd_local_t *l) { return l->endpoint; }
const pd_client_opts_t *pd_local_client_opts(const pd_local_t *l) { return &l->copts; }

void pd_local_stop(pd_local_t **lp)
{
    if (!lp || !*lp)
        return;
    pd_local_t *l = *lp;
    pd_proc_stop(l->worker, 5000);
    pd_proc_stop(l->broker, 5000);
    if (l->dir[0])
        pd_plat_remove_tree(l->dir);
    free(l);
    *lp = NULL;
}
