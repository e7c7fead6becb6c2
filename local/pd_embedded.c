/*  pd_embedded: the worker that playdoh-broker runs in one of its threads
    for the embedded local cluster (broker/pd_embed.h): one process instead
    of two, and two fewer TCP hops on every job's way.

    This is the only code that needs both the broker and the worker: it
    lives in local/, above both, so that neither folder includes the other.
*/
#include "pd_embed.h"

#include "pd_error.h"
#include "pd_log.h"
#include "pd_modcache.h"
#include "pd_nodeproc.h"
#include "pd_slot.h"
#include "pd_worker.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_EMBEDDED_EP "inproc://playdoh-embedded-worker"

struct pd_embed {
    pd_worker_t *worker;          /* the worker (owned) */
    volatile sig_atomic_t stop;   /* set by pd_embed_stop: the worker's loop ends */
    pthread_t thread;             /* the thread that runs the worker's loop */
};

bool pd_embed_child_main(int argc, char **argv, int *rc)
{
    if (pd_slot_is_child(argc, argv))
        *rc = pd_slot_main(argc, argv);
    else if (pd_nodeproc_is_child(argc, argv))
        *rc = pd_nodeproc_main(argc, argv);
    else
        return false;
    return true;
}

static void *s_run(void *arg)
{
    pd_embed_t *e = arg;
    pd_worker_run(e->worker, &e->stop);
    return NULL;
}

/* Creates the worker and its thread; *e is zeroed by the caller. */
static int s_start(pd_embed_t *e, pd_broker_t *b, int cpus, const char *cache)
{
    if (pd_broker_bind_also(b, S_EMBEDDED_EP))
        return PD_EIO;
    static const char *names[] = {"error", "warn", "info", "debug"};
    const char *level = names[pd_log_level()];
    pd_worker_config_t wc = {.broker = S_EMBEDDED_EP, .cpus = cpus, .gpus = -1,
                             .cache_dir = cache, .log_level = level,
                             .zmq_ctx = pd_broker_zmq_ctx(b),
                             .tubes_curve = pd_broker_secure(b, NULL)};
    int err = 0;
    e->worker = pd_worker_new(&wc, &err);
    if (!e->worker)
        return err;
    if (pthread_create(&e->thread, NULL, s_run, e)) {
        pd_worker_destroy(&e->worker);
        return PD_ESYS;
    }
    return 0;
}

pd_embed_t *pd_embed_start(pd_broker_t *b, int cpus, const char *cache_dir, int *err)
{
    pd_embed_t *e = calloc(1, sizeof *e);
    if (!e) {
        *err = PD_ENOMEM;
        return NULL;
    }
    /* Signals go to the broker loop's thread: block them in the worker's. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    char *dflt = cache_dir ? NULL : pd_modcache_default_dir();
    *err = s_start(e, b, cpus, cache_dir ? cache_dir : dflt);
    free(dflt);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (*err) {
        free(e);
        return NULL;
    }
    return e;
}

/* Interrupts the embedded worker's poll (EINTR), so that it sees its stop
   flag at once instead of at its next heartbeat (up to a second, paid by
   every `playdoh-submit --local` command on its way out). */
static void s_on_wake(int sig) { (void) sig; }

void pd_embed_stop(pd_embed_t **p)
{
    pd_embed_t *e = *p;
    if (!e)
        return;
    e->stop = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_wake; /* no SA_RESTART: poll() returns EINTR */
    sigaction(SIGUSR1, &sa, NULL);
    /* The signal may land just before the thread enters poll(): repeat it
       until the thread has gone. */
    for (;;) {
        pthread_kill(e->thread, SIGUSR1);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 50 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (pthread_timedjoin_np(e->thread, NULL, &until) == 0)
            break;
    }
    pd_worker_destroy(&e->worker);
    free(e);
    *p = NULL;
}
