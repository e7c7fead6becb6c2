/*  pd_harness: see pd_harness.h. */
#include "pd_harness.h"
#include "pd_proc.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *pd_harness_program(const char *name)
{
    static char path[PATH_MAX];
    cr_assert_eq(pd_proc_find(name, path, sizeof path), 0,
                 "%s not found: set PLAYDOH_BINDIR to the build directory", name);
    return path;
}

void pd_harness_start(pd_harness_t *h, const char *const *extra)
{
    memset(h, 0, sizeof *h);
    /* Fast enough that a killed worker is found within a second, slow enough
       that a worker on a loaded 2-core machine is not declared dead. */
    h->heartbeat_ms = 200;
    /* No configuration file of this machine's or user's leaks into tests. */
    setenv("PLAYDOH_CONFIG", "/dev/null", 1);
    snprintf(h->dir, sizeof h->dir, "/tmp/playdoh-test-XXXXXX");
    cr_assert_not_null(mkdtemp(h->dir));
    char broker[PATH_MAX];
    snprintf(broker, sizeof broker, "%s", pd_harness_program("playdoh-broker"));
    char hb[16];
    snprintf(hb, sizeof hb, "%d", h->heartbeat_ms);
    const char *argv[32] = {broker, "--bind", "tcp://127.0.0.1:*", "--ready-fd", "3",
                            "--heartbeat-ms", hb, "--liveness", "5"};
    int argc = 9;
    for (int i = 0; extra && extra[i] && argc < 31; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    int ready = -1;
    h->broker = pd_proc_spawn((char *const *) argv, &ready);
    cr_assert_gt(h->broker, 0);
    int rc = pd_proc_read_line(ready, h->endpoint, sizeof h->endpoint, 10000);
    close(ready);
    cr_assert_eq(rc, 0, "the broker did not report its endpoint");
}

int pd_harness_add_worker(pd_harness_t *h, int cpus) { return pd_harness_add_worker_args(h, cpus, NULL); }

int pd_harness_add_worker_with(pd_harness_t *h, int cpus, const char *const *extra)
{
    return pd_harness_add_worker_args(h, cpus, extra);
}

int pd_harness_add_worker_args(pd_harness_t *h, int cpus, const char *const *extra)
{
    cr_assert_lt(h->nworkers, PD_HARNESS_MAX_WORKERS);
    char worker[PATH_MAX];
    snprintf(worker, sizeof worker, "%s", pd_harness_program("playdoh-worker"));
    char cpus_s[16], hb[16], cache[300], control[300];
    snprintf(cpus_s, sizeof cpus_s, "%d", cpus);
    snprintf(hb, sizeof hb, "%d", h->heartbeat_ms);
    snprintf(cache, sizeof cache, "%s/cache", h->dir);
    snprintf(control, sizeof control, "%s/worker%d.ctl", h->dir, h->nworkers);
    const char *argv[32] = {worker, "--broker", h->endpoint, "--cpus", cpus_s, "--heartbeat-ms",
                            hb, "--cache", cache, "--control", control};
    int argc = 11;
    for (int i = 0; extra && extra[i] && argc < 31; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    pid_t pid = pd_proc_spawn((char *const *) argv, NULL);
    cr_assert_gt(pid, 0);
    h->workers[h->nworkers] = pid;
    return h->nworkers++;
}

void pd_harness_wait_slots(pd_harness_t *h, pd_client_t *c, int slots)
{
    int w = 0, s = 0;
    for (int i = 0; i < 400; i++) {
        cr_assert_eq(pd_client_cluster_size(c, &w, &s), 0, "%s", pd_client_error(c));
        if (s >= slots)
            return;
        usleep(50000);
    }
    cr_assert_fail("the cluster at %s has %d slots, not %d, after 20 s", h->endpoint, s, slots);
}

void pd_harness_stop(pd_harness_t *h)
{
    for (int i = 0; i < h->nworkers; i++)
        pd_proc_stop(h->workers[i], 5000);
    pd_proc_stop(h->broker, 5000);
    h->nworkers = 0;
    h->broker = 0;
    if (h->dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", h->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", h->dir);
        h->dir[0] = 0;
    }
}

char *pd_harness_module(pd_harness_t *h, const char *name, const char *source)
{
    char *path = NULL;
    cr_assert_neq(asprintf(&path, "%s/%s", h->dir, name), -1);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(source, f);
    fclose(f);
    return path;
}

pd_client_t *pd_harness_client(pd_harness_t *h)
{
    int err = 0;
    pd_client_t *c = pd_client_new(h->endpoint, &err);
    cr_assert_not_null(c, "no client: %s", pd_strerror(err));
    return c;
}
