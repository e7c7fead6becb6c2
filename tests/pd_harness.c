/*  pd_harness: see pd_harness.h. */
#include "pd_harness.h"
#include "pd_proc.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *pd_harness_program(const char *name)
{
    static char path[PATH_MAX];
    cr_assert_eq(pd_proc_find(name, path, sizeof path), 0,
                 "%s not found: set PLAYDOH_BINDIR to the build directory", name);
    return path;
}

/* Builds the broker's argv: program, bind, ready fd, heartbeat, the journal
   (unless the flags choose), the harness's flags, then more. */
static void s_broker_argv(pd_harness_t *h, const char *bind, const char *const *more,
                          char *program, char *hb, const char **argv)
{
    snprintf(program, PATH_MAX, "%s", pd_harness_program("playdoh-broker"));
    snprintf(hb, 16, "%d", h->heartbeat_ms);
    int argc = 0;
    argv[argc++] = program;
    argv[argc++] = "--bind";
    argv[argc++] = bind;
    argv[argc++] = "--ready-fd";
    argv[argc++] = "3";
    argv[argc++] = "--heartbeat-ms";
    argv[argc++] = hb;
    argv[argc++] = "--liveness";
    argv[argc++] = "5";
    if (h->journal[0]) {
        argv[argc++] = "--journal";
        argv[argc++] = h->journal;
    }
    for (int i = 0; h->flags[i] && argc < 40; i++)
        argv[argc++] = h->flags[i];
    for (int i = 0; more && more[i] && argc < 46; i++)
        argv[argc++] = more[i];
    argv[argc] = NULL;
}

static void s_spawn_broker(pd_harness_t *h, const char *bind, const char *const *more)
{
    char program[PATH_MAX], hb[16];
    const char *argv[48];
    s_broker_argv(h, bind, more, program, hb, argv);
    int ready = -1;
    h->broker = pd_proc_spawn((char *const *) argv, &ready);
    cr_assert_gt(h->broker, 0);
    char endpoint[256];
    int rc = pd_proc_read_line(ready, endpoint, sizeof endpoint, 20000);
    close(ready);
    cr_assert_eq(rc, 0, "the broker did not report its endpoint");
    snprintf(h->endpoint, sizeof h->endpoint, "%s", endpoint);
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
    bool own_journal = false;
    int n = 0;
    for (int i = 0; extra && extra[i]; i++) {
        cr_assert_lt(n, 23, "too many broker flags");
        h->flags[n++] = strdup(extra[i]);
        if (strcmp(extra[i], "--no-journal") == 0 || strcmp(extra[i], "--journal") == 0 ||
            strcmp(extra[i], "--config") == 0)
            own_journal = true; /* the test chooses (a configuration file may name one) */
    }
    h->flags[n] = NULL;
    if (!own_journal)
        snprintf(h->journal, sizeof h->journal, "%s/broker.journal", h->dir);
    s_spawn_broker(h, "tcp://127.0.0.1:*", NULL);
}

void pd_harness_kill_broker(pd_harness_t *h, int sig)
{
    cr_assert_gt(h->broker, 0, "no broker to kill");
    kill(h->broker, sig);
    waitpid(h->broker, NULL, 0);
    h->broker = 0;
}

void pd_harness_restart_broker(pd_harness_t *h, const char *const *more)
{
    cr_assert_eq(h->broker, 0, "the old broker still runs: kill it first");
    char bind[256];
    snprintf(bind, sizeof bind, "%s", h->endpoint);
    s_spawn_broker(h, bind, more);
    cr_assert_str_eq(h->endpoint, bind, "the broker came back on another endpoint");
}

int pd_harness_broker_fails(pd_harness_t *h, const char *const *more, char *err, size_t cap)
{
    char program[PATH_MAX], hb[16], errpath[300];
    const char *argv[48];
    s_broker_argv(h, "tcp://127.0.0.1:*", more, program, hb, argv);
    snprintf(errpath, sizeof errpath, "%s/broker-stderr.txt", h->dir);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || dup2(fd, 2) < 0)
            _exit(127);
        execv(argv[0], (char *const *) argv);
        _exit(127);
    }
    int status = 0;
    for (int i = 0; i < 400; i++) { /* 20 s */
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        usleep(50000);
        if (i == 399) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            cr_assert_fail("the broker did not exit within 20 s");
        }
    }
    FILE *f = fopen(errpath, "r");
    size_t got = f ? fread(err, 1, cap - 1, f) : 0;
    if (f)
        fclose(f);
    err[got] = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
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
    for (int i = 0; h->flags[i]; i++) {
        free(h->flags[i]);
        h->flags[i] = NULL;
    }
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
