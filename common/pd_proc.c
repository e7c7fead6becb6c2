/*  pd_proc: see pd_proc.h. fork+exec only: the callers have ZeroMQ threads,
    so a child never runs anything but exec (or _exit) after fork. */
#include "pd_proc.h"
#include "pd_build.h"
#include "pd_error.h"
#include "pd_plat.h"

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

int pd_proc_find(const char *name, char *out, size_t cap)
{
    char dirs[3][PATH_MAX];
    int nd = 0;
    const char *env = getenv("PLAYDOH_BINDIR");
    if (env && *env)
        snprintf(dirs[nd++], PATH_MAX, "%s", env);
    char self[PATH_MAX];
    if (pd_plat_self_exe(self, sizeof self) == 0) {
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            snprintf(dirs[nd++], PATH_MAX, "%s", self);
        }
    }
    snprintf(dirs[nd++], PATH_MAX, "%s", PD_BINDIR);
    for (int i = 0; i < nd; i++) {
        snprintf(out, cap, "%s/%s", dirs[i], name);
        if (pd_plat_executable(out))
            return 0;
    }
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
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (got < cap - 1) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long spent = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
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
    for (int waited = 0; waited < grace_ms; waited += 5) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0)
            return -1;
        usleep(5000);
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
