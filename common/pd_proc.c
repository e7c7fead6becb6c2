/*  pd_proc: see pd_proc.h. fork+exec only: the callers have ZeroMQ threads,
    so a child never runs anything but exec (or _exit) after fork. */
#include "pd_proc.h"
#include "pd_build.h"
#include "pd_error.h"
#include "pd_plat.h"

#include <czmq.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The places pd_proc_find looks at, as it goes. */
typedef struct {
    const char *name; /* the program */
    char *out;        /* the caller's buffer */
    size_t cap;       /* its bytes */
    char tried[2048]; /* paths looked at, ", "-joined (cut when long) */
    size_t ntried;    /* bytes in tried */
} s_find_t;

/* Tries the program in dir (or path itself when dir is NULL). True when
   it is there and executable; out then holds its path. */
static bool s_try(s_find_t *f, const char *dir, const char *path)
{
    char full[PATH_MAX];
    if (dir)
        snprintf(full, sizeof full, "%s/%s", dir, f->name);
    else
        snprintf(full, sizeof full, "%s", path);
    if (pd_plat_executable(full)) {
        snprintf(f->out, f->cap, "%s", full);
        return true;
    }
    if (f->ntried < sizeof f->tried)
        f->ntried += (size_t) snprintf(f->tried + f->ntried, sizeof f->tried - f->ntried, "%s%s",
                                       f->ntried ? ", " : "", full);
    return false;
}

/* Cuts path at its last '/' (in place); false when there is none. */
static bool s_dirname(char *path)
{
    char *slash = strrchr(path, '/');
    if (!slash)
        return false;
    if (slash == path)
        slash[1] = 0; /* the root stays "/" */
    else
        *slash = 0;
    return true;
}

int pd_proc_find(const char *name, char *out, size_t cap)
{
    s_find_t f = {.name = name, .out = out, .cap = cap};
    /* PLAYDOH_BROKER_BIN for playdoh-broker: the program's own variable. */
    char var[96] = "PLAYDOH_";
    const char *base = strncmp(name, "playdoh-", 8) == 0 ? name + 8 : name;
    size_t k = strlen(var);
    for (const char *p = base; *p && k + 5 < sizeof var; p++)
        var[k++] = *p == '-' ? '_' : (char) (*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    snprintf(var + k, sizeof var - k, "_BIN");
    const char *env = getenv(var);
    if (env && *env && s_try(&f, NULL, env))
        return 0;
    env = getenv("PLAYDOH_BINDIR");
    if (env && *env && s_try(&f, env, NULL))
        return 0;
    char dir[PATH_MAX];
    if (pd_plat_self_exe(dir, sizeof dir) == 0 && s_dirname(dir) && s_try(&f, dir, NULL))
        return 0;
    /* The object holding this code: libplaydoh-client.so for a program of
       the user's, installed anywhere; its programs are in ../bin. */
    Dl_info info;
    if (dladdr((void *) pd_proc_find, &info) && info.dli_fname && info.dli_fname[0] == '/') {
        char lib[PATH_MAX];
        if (realpath(info.dli_fname, lib) && s_dirname(lib)) {
            if (s_try(&f, lib, NULL))
                return 0;
            char bin[PATH_MAX + 64];
            snprintf(bin, sizeof bin, "%s/%s", lib, PD_LIBDIR_TO_BINDIR);
            if (realpath(bin, dir) && s_try(&f, dir, NULL))
                return 0;
        }
    }
    if (s_try(&f, PD_BINDIR, NULL))
        return 0;
    const char *path = getenv("PATH");
    while (path && *path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t) (colon - path) : strlen(path);
        if (len > 0 && len < sizeof dir) {
            memcpy(dir, path, len);
            dir[len] = 0;
            if (s_try(&f, dir, NULL))
                return 0;
        }
        path = colon ? colon + 1 : NULL;
    }
    snprintf(out, cap, "%s", f.tried);
    return PD_EIO;
}

pid_t pd_proc_spawn(char *const argv[], int *ready_fd)
{
    int fds[2] = {-1, -1};
    if (ready_fd && pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        if (ready_fd) {
            if (fds[1] == 3)
                fcntl(3, F_SETFD, 0);
            else if (dup2(fds[1], 3) < 0)
                _exit(127);
        }
        execv(argv[0], argv);
        dprintf(2, "playdoh: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (ready_fd) {
        close(fds[1]);
        if (pid < 0)
            close(fds[0]);
        else
            *ready_fd = fds[0];
    }
    return pid;
}

int pd_proc_read_line(int fd, char *out, size_t cap, int timeout_ms)
{
    size_t got = 0;
    int64_t t0 = zclock_mono();
    while (got < cap - 1) {
        int64_t spent = zclock_mono() - t0;
        if (spent >= timeout_ms)
            return PD_ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, (int) (timeout_ms - spent));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return PD_ETIMEDOUT;
        ssize_t r = read(fd, out + got, 1); /* byte by byte: never read past the line */
        if (r <= 0)
            return PD_EIO;
        if (out[got] == '\n') {
            out[got] = 0;
            return 0;
        }
        got++;
    }
    return PD_EIO;
}

int pd_proc_stop(pid_t pid, int grace_ms)
{
    if (pid <= 0)
        return -1;
    int status;
    if (kill(pid, SIGTERM) < 0 && errno == ESRCH)
        return waitpid(pid, &status, WNOHANG) == pid ? status : -1;
    /* Looked at after 0.25, 0.5, 1 ... ms, then every 5 ms: most programs
       end within a few milliseconds of the request. */
    for (long waited = 0, pause = 250; waited < grace_ms * 1000L; waited += pause) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0)
            return -1;
        usleep((useconds_t) pause);
        pause = pause < 5000 ? pause * 2 : 5000;
    }
    kill(pid, SIGKILL);
    return waitpid(pid, &status, 0) == pid ? status : -1;
}

int pd_proc_capture(char *const argv[], const void *input, size_t inlen, char *out, size_t outcap,
                    char *err, size_t errcap, int timeout_ms)
{
    pd_plat_capture_t c = {.out = out, .outcap = outcap, .err = err, .errcap = errcap};
    return pd_plat_run(argv, input, inlen, &c, timeout_ms);
}
