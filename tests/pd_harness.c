/*  pd_harness: see pd_harness.h. */
#include "pd_harness.h"
#include "pd_auth.h"
#include "pd_proc.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
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

/* Spawns argv with its standard error in <dir>/<log> (when log is set). */
static pid_t s_spawn_logged(pd_harness_t *h, char *const *argv, int *ready, const char *log)
{
    int saved = -1;
    if (log) {
        char path[400];
        snprintf(path, sizeof path, "%s/%s", h->dir, log);
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        saved = dup(2);
        dup2(fd, 2);
        close(fd);
    }
    pid_t pid = pd_proc_spawn(argv, ready);
    if (saved >= 0) {
        dup2(saved, 2);
        close(saved);
    }
    return pid;
}

/* Builds the broker's argv: program, bind, ready fd, heartbeat, security
   (its configuration directory in conf), the journal (unless the flags
   choose), the harness's flags, then more. */
static void s_broker_argv(pd_harness_t *h, const char *bind, const char *const *more,
                          char *program, char *hb, char *conf, const char **argv)
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
    if (h->secure) {
        snprintf(conf, PATH_MAX, "%s/broker", h->dir);
        argv[argc++] = "--secure";
        argv[argc++] = "--config-dir";
        argv[argc++] = conf;
    }
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
    char program[PATH_MAX], hb[16], conf[PATH_MAX];
    const char *argv[48];
    s_broker_argv(h, bind, more, program, hb, conf, argv);
    int ready = -1;
    h->broker = s_spawn_logged(h, (char *const *) argv, &ready, h->logged ? "broker.log" : NULL);
    cr_assert_gt(h->broker, 0);
    char endpoint[256];
    int rc = pd_proc_read_line(ready, endpoint, sizeof endpoint, 20000);
    close(ready);
    cr_assert_eq(rc, 0, "the broker did not report its endpoint");
    snprintf(h->endpoint, sizeof h->endpoint, "%s", endpoint);
}

static void s_start(pd_harness_t *h, const char *const *extra, bool secure, bool logged)
{
    memset(h, 0, sizeof *h);
    /* Fast enough that a killed worker is found within a second, slow enough
       that a worker on a loaded 2-core machine is not declared dead. */
    h->heartbeat_ms = 200;
    h->secure = secure;
    h->logged = logged;
    /* No configuration file of this machine's or user's leaks into tests. */
    setenv("PLAYDOH_CONFIG", "/dev/null", 1);
    snprintf(h->dir, sizeof h->dir, "/tmp/playdoh-test-XXXXXX");
    cr_assert_not_null(mkdtemp(h->dir));
    if (secure) {
        char bconf[300];
        snprintf(bconf, sizeof bconf, "%s/broker", h->dir);
        pd_keypair_t k;
        char why[512];
        cr_assert_eq(pd_auth_keygen(bconf, "test-broker", false, &k, why, sizeof why), 0, "%s",
                     why);
        snprintf(h->broker_key, sizeof h->broker_key, "%s", k.pub);
    }
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
    char program[PATH_MAX], hb[16], conf[PATH_MAX], errpath[300];
    const char *argv[48];
    s_broker_argv(h, "tcp://127.0.0.1:*", more, program, hb, conf, argv);
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

void pd_harness_start(pd_harness_t *h, const char *const *extra)
{
    s_start(h, extra, false, false);
}
void pd_harness_start_logged(pd_harness_t *h, const char *const *extra)
{
    s_start(h, extra, false, true);
}
void pd_harness_start_secure(pd_harness_t *h, const char *const *extra)
{
    s_start(h, extra, true, true);
}

void pd_harness_identity(pd_harness_t *h, const char *name, int role, char *confdir, size_t cap,
                         char *key)
{
    snprintf(confdir, cap, "%s/%s", h->dir, name);
    pd_keypair_t k;
    char why[512], allow[300];
    if (pd_auth_key_load((snprintf(allow, sizeof allow, "%s/id.key", confdir), allow), true, &k,
                         NULL, 0) != 0)
        cr_assert_eq(pd_auth_keygen(confdir, name, false, &k, why, sizeof why), 0, "%s", why);
    if (key)
        snprintf(key, 41, "%s", k.pub);
    cr_assert_eq(pd_auth_trust_add(confdir, h->endpoint, h->broker_key, "test broker", why,
                                   sizeof why), 0, "%s", why);
    if (role) {
        snprintf(allow, sizeof allow, "%s/broker/allowed", h->dir);
        cr_assert_eq(pd_auth_allow_add(allow, k.pub, (pd_role_t) role, name, why, sizeof why), 0,
                     "%s", why);
    }
}

int pd_harness_add_worker_as(pd_harness_t *h, int cpus, const char *identity,
                             const char *const *extra)
{
    cr_assert_lt(h->nworkers, PD_HARNESS_MAX_WORKERS);
    char worker[PATH_MAX];
    snprintf(worker, sizeof worker, "%s", pd_harness_program("playdoh-worker"));
    char cpus_s[16], hb[16], cache[300], conf[300], log[64], control[300];
    snprintf(cpus_s, sizeof cpus_s, "%d", cpus);
    snprintf(hb, sizeof hb, "%d", h->heartbeat_ms);
    snprintf(cache, sizeof cache, "%s/cache", h->dir);
    snprintf(log, sizeof log, "worker-%d.log", h->nworkers);
    snprintf(control, sizeof control, "%s/worker%d.ctl", h->dir, h->nworkers);
    const char *argv[40] = {worker, "--broker", h->endpoint, "--cpus", cpus_s, "--heartbeat-ms",
                            hb, "--cache", cache, "--control", control};
    int argc = 11;
    if (h->secure) {
        if (!identity) {
            identity = "worker";
            pd_harness_identity(h, identity, PD_ROLE_WORKER, conf, sizeof conf, NULL);
        }
        snprintf(conf, sizeof conf, "%s/%s", h->dir, identity);
        argv[argc++] = "--secure";
        argv[argc++] = "--config-dir";
        argv[argc++] = conf;
    }
    for (int i = 0; extra && extra[i] && argc < 39; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    pid_t pid = s_spawn_logged(h, (char *const *) argv, NULL, h->secure || extra ? log : NULL);
    cr_assert_gt(pid, 0);
    h->workers[h->nworkers] = pid;
    return h->nworkers++;
}

int pd_harness_add_worker(pd_harness_t *h, int cpus)
{
    return pd_harness_add_worker_as(h, cpus, NULL, NULL);
}

int pd_harness_add_worker_args(pd_harness_t *h, int cpus, const char *const *extra)
{
    return pd_harness_add_worker_as(h, cpus, NULL, extra);
}

int pd_harness_add_worker_with(pd_harness_t *h, int cpus, const char *const *extra)
{
    return pd_harness_add_worker_as(h, cpus, NULL, extra);
}

bool pd_harness_log_has(pd_harness_t *h, const char *name, const char *text, int ms)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", h->dir, name);
    for (int waited = 0;; waited += 50) {
        FILE *f = fopen(path, "r");
        bool found = false;
        if (f) {
            static char buf[1 << 20];
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            buf[n] = 0;
            found = strstr(buf, text) != NULL;
            fclose(f);
        }
        if (found || waited >= ms)
            return found;
        usleep(50000);
    }
}

int pd_harness_log_count(pd_harness_t *h, const char *name, const char *text)
{
    char path[400], line[4096];
    snprintf(path, sizeof path, "%s/%s", h->dir, name);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "no log %s", path);
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, text) != NULL;
    fclose(f);
    return n;
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

void pd_harness_upload(pd_harness_t *h, pd_client_t *c, const char *name, const char *source,
                       char *mod)
{
    char *path = pd_harness_module(h, name, source);
    cr_assert_eq(pd_module_upload_file(c, path, mod), 0, "%s", pd_client_error(c));
    free(path);
}

pd_client_t *pd_harness_client_as(pd_harness_t *h, const char *identity, int *err, char *why,
                                  size_t whycap)
{
    char conf[300];
    snprintf(conf, sizeof conf, "%s/%s", h->dir, identity);
    pd_client_opts_t o = {.security = PD_SECURITY_CURVE, .config_dir = conf, .why = why,
                          .whycap = whycap};
    return pd_client_open(h->endpoint, &o, err);
}

pd_client_t *pd_harness_client(pd_harness_t *h)
{
    int err = 0;
    char why[1024] = "";
    pd_client_t *c;
    if (h->secure) {
        char conf[300];
        pd_harness_identity(h, "client", PD_ROLE_CLIENT, conf, sizeof conf, NULL);
        c = pd_harness_client_as(h, "client", &err, why, sizeof why);
    } else {
        pd_client_opts_t o = {.security = PD_SECURITY_NONE, .why = why, .whycap = sizeof why};
        c = pd_client_open(h->endpoint, &o, &err);
    }
    cr_assert_not_null(c, "no client: %s: %s", pd_strerror(err), why);
    return c;
}

int pd_harness_run(char **out, const char *fmt, ...)
{
    char *cmd;
    va_list ap;
    va_start(ap, fmt);
    cr_assert_neq(vasprintf(&cmd, fmt, ap), -1);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "cannot run %s", cmd);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    size_t r;
    while ((r = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += r;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
    }
    buf[len] = 0;
    int st = pclose(p);
    free(cmd);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

int pd_harness_run_on_tty(char *const argv[], char **tty)
{
    int master;
    int out[2];
    cr_assert_eq(pipe(out), 0);
    struct winsize ws = {.ws_row = 24, .ws_col = 100};
    pid_t pid = forkpty(&master, NULL, NULL, &ws);
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(out[1]);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        struct pollfd p = {.fd = master, .events = POLLIN};
        if (poll(&p, 1, 60000) <= 0)
            break;
        ssize_t r = read(master, buf + len, cap - len - 1);
        if (r <= 0)
            break;
        len += (size_t) r;
        if (cap - len < 2)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    close(master);
    close(out[0]);
    int st;
    waitpid(pid, &st, 0);
    *tty = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}
