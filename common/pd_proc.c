/*  pd_proc: see pd_proc.h. fork+exec only: the callers have ZeroMQ threads,
    so a child never runs anything but exec (or _exit) after fork. */
#include "pd_proc.h"
#include "pd_build.h"
#include "pd_error.h"

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
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            snprintf(dirs[nd++], PATH_MAX, "%s", self);
        }
    }
    snprintf(dirs[nd++], PATH_MAX, "%s", PD_BINDIR);
    for (int i = 0; i < nd; i++) {
        snprintf(out, cap, "%s/%s", dirs[i], name);
        if (access(out, X_OK) == 0)
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

/* One output pipe of pd_proc_capture: where its bytes go. */
typedef struct {
    int fd;     /* read end, or -1 once at EOF */
    char *buf;  /* destination, or NULL */
    size_t cap; /* bytes in buf */
    size_t len; /* bytes kept */
} s_sink_t;

static void s_sink_read(s_sink_t *s)
{
    char tmp[4096];
    ssize_t r = read(s->fd, tmp, sizeof tmp);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (r <= 0) {
        close(s->fd);
        s->fd = -1;
        return;
    }
    if (s->buf && s->len + 1 < s->cap) {
        size_t k = (size_t) r < s->cap - 1 - s->len ? (size_t) r : s->cap - 1 - s->len;
        memcpy(s->buf + s->len, tmp, k);
        s->len += k;
        s->buf[s->len] = 0;
    }
}

static int64_t s_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t) t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int pd_proc_capture(char *const argv[], const void *input, size_t inlen, char *out, size_t outcap,
                    char *err, size_t errcap, int timeout_ms)
{
    if (out && outcap)
        out[0] = 0;
    if (err && errcap)
        err[0] = 0;
    int in[2] = {-1, -1}, po[2] = {-1, -1}, pe[2] = {-1, -1};
    if (pipe2(in, O_CLOEXEC) || pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC)) {
        int fds[] = {in[0], in[1], po[0], po[1], pe[0], pe[1]};
        for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        return PD_ESYS;
    }
    pid_t pid = fork();
    if (pid == 0) {
        /* Only async-signal-safe calls until exec: callers may have threads. */
        if (dup2(in[0], 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0)
            _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        int e = errno;
        const char *a = "cannot run ", *b = ": ", *c = strerror(e);
        if (write(2, a, strlen(a)) < 0 || write(2, argv[0], strlen(argv[0])) < 0 ||
            write(2, b, strlen(b)) < 0 || write(2, c, strlen(c)) < 0)
            _exit(127);
        _exit(127);
    }
    close(in[0]);
    close(po[1]);
    close(pe[1]);
    if (pid < 0) {
        close(in[1]);
        close(po[0]);
        close(pe[0]);
        return PD_ESYS;
    }
    /* A child that exits without reading its input must not kill us with
       SIGPIPE: block it while writing, and drop one left pending. */
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
    const char *inp = input;
    size_t sent = 0;
    if (!input || inlen == 0) {
        close(in[1]);
        in[1] = -1;
    }
    s_sink_t sinks[2] = {{po[0], out, outcap, 0}, {pe[0], err, errcap, 0}};
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : s_now_ms() + timeout_ms;
    bool timed_out = false;
    while (sinks[0].fd >= 0 || sinks[1].fd >= 0) {
        struct pollfd p[3];
        int np = 0, isink[3] = {-1, -1, -1};
        for (int i = 0; i < 2; i++)
            if (sinks[i].fd >= 0) {
                isink[np] = i;
                p[np++] = (struct pollfd){.fd = sinks[i].fd, .events = POLLIN};
            }
        if (in[1] >= 0)
            p[np++] = (struct pollfd){.fd = in[1], .events = POLLOUT};
        int64_t left = deadline - s_now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        int rc = poll(p, (nfds_t) np, left > INT32_MAX ? -1 : (int) left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            break;
        for (int i = 0; i < np; i++) {
            if (!p[i].revents)
                continue;
            if (isink[i] >= 0) {
                s_sink_read(&sinks[isink[i]]);
                continue;
            }
            ssize_t w = write(in[1], inp + sent, inlen - sent);
            if (w > 0)
                sent += (size_t) w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || sent == inlen) {
                close(in[1]);
                in[1] = -1;
            }
        }
    }
    if (in[1] >= 0)
        close(in[1]);
    for (int i = 0; i < 2; i++)
        if (sinks[i].fd >= 0)
            close(sinks[i].fd);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
        ;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    /* Its output is closed; it may still be running until the deadline. */
    int status = 0;
    for (;;) {
        pid_t r = timed_out ? 0 : waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return PD_ESYS;
        if (timed_out || s_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            return PD_ETIMEDOUT;
        }
        usleep(2000);
    }
}
