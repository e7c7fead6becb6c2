/*  pd_local: the embedded cluster, a broker and a worker started as child
    processes of the calling program on this machine.

    The broker binds an ephemeral loopback port and writes the endpoint it got
    to a pipe (--ready-fd); the worker is then started against it, and
    pd_local_start() returns once the broker counts the worker's slots. Both
    children ask the kernel to SIGTERM them if their parent dies, so an
    embedded cluster never outlives the program that started it.
*/
#include "playdoh.h"

#include "pd_build.h"
#include "pd_log.h"
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
    pid_t broker;        /* the playdoh-broker child, which runs the worker too */
    char endpoint[256];  /* the broker's bound endpoint */
};

pd_local_t *pd_local_start(int cpus, int *err)
{
    int dummy;
    if (!err)
        err = &dummy;
    *err = 0;
    char broker_path[PATH_MAX];
    if (pd_proc_find("playdoh-broker", broker_path, sizeof broker_path)) {
        pd_log_error("local cluster: playdoh-broker not found (looked in $PLAYDOH_BINDIR, "
                     "beside this program and in %s): install Playdoh or set PLAYDOH_BINDIR",
                     PD_BINDIR);
        *err = PD_EIO;
        return NULL;
    }
    pd_local_t *l = calloc(1, sizeof *l);
    if (!l) {
        *err = PD_ENOMEM;
        return NULL;
    }
    const char *level = getenv("PLAYDOH_LOG_LEVEL");
    char cpus_s[16];
    snprintf(cpus_s, sizeof cpus_s, "%d", cpus > 0 ? cpus : (int) sysconf(_SC_NPROCESSORS_ONLN));
    char *bargv[] = {broker_path, "--bind", "tcp://127.0.0.1:*", "--ready-fd", "3",
                     "--worker-cpus", cpus_s, "--log-level", (char *) (level ? level : "error"),
                     NULL};
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
    /* Wait for the embedded worker to register its slots. */
    pd_client_t *c = pd_client_new(l->endpoint, err);
    if (!c) {
        pd_local_stop(&l);
        return NULL;
    }
    int workers = 0, slots = 0;
    for (int i = 0; i < 400 && workers < 1; i++) { /* 20 s */
        if (pd_client_cluster_size(c, &workers, &slots))
            break;
        if (workers < 1)
            usleep(20000);
    }
    pd_client_destroy(&c);
    if (workers < 1) {
        pd_log_error("local cluster: the embedded worker did not register within 20 s");
        pd_local_stop(&l);
        *err = PD_EUNREACH;
        return NULL;
    }
    return l;
}

const char *pd_local_endpoint(const pd_local_t *l) { return l->endpoint; }

void pd_local_stop(pd_local_t **lp)
{
    if (!lp || !*lp)
        return;
    pd_local_t *l = *lp;
    pd_proc_stop(l->broker, 5000);
    free(l);
    *lp = NULL;
}
