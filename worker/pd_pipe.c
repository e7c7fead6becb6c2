/*  pd_pipe: frames over pipes and the fork+exec of a framed child; see
    pd_pipe.h. Only async-signal-safe calls run between fork and exec: the
    worker has ZeroMQ threads.
*/
#include "pd_pipe.h"
#include "pd_error.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int pd_pipe_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

int pd_pipe_drain(int fd, uint8_t **buf, size_t *len, size_t *cap, size_t limit)
{
    while (*len < limit) {
        if (*cap - *len < 65536) {
            size_t ncap = *cap ? *cap * 2 : 131072;
            uint8_t *d = realloc(*buf, ncap);
            if (!d)
                return 0; /* try again at the next poll */
            *buf = d;
            *cap = ncap;
        }
        ssize_t got = read(fd, *buf + *len, *cap - *len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return 0; /* EAGAIN: all read */
        if (got == 0)
            return 1;
        *len += (size_t) got;
    }
    return 0;
}

int pd_pipe_read_all(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return got == 0 ? 0 : -1;
        got += (size_t) n;
    }
    return 1;
}

void pd_pipe_frame_begin(pd_buf_t *b)
{
    static const uint8_t zero[4] = {0};
    pd_buf_reset(b);
    pd_buf_append(b, zero, 4);
}

int pd_pipe_frame_end(pd_buf_t *b)
{
    if (b->failed || b->len < 4)
        return PD_ETOOBIG;
    uint32_t n = (uint32_t) (b->len - 4);
    b->data[0] = (uint8_t) n;
    b->data[1] = (uint8_t) (n >> 8);
    b->data[2] = (uint8_t) (n >> 16);
    b->data[3] = (uint8_t) (n >> 24);
    return 0;
}

uint32_t pd_pipe_le32(const uint8_t *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
           | (uint32_t) p[3] << 24;
}

int pd_pipe_read_frame(int fd, pd_buf_t *in, const char **why)
{
    uint8_t hdr[4];
    int rc = pd_pipe_read_all(fd, hdr, 4);
    if (rc <= 0) {
        if (rc < 0 && why)
            *why = "the pipe broke in the middle of a frame header";
        return rc;
    }
    uint32_t len = pd_pipe_le32(hdr);
    pd_buf_reset(in);
    if (len > PD_MAX_FRAME || pd_buf_reserve(in, len)) {
        if (why)
            *why = "frame over the size limit";
        return -1;
    }
    if (pd_pipe_read_all(fd, in->data, len) != 1) {
        if (why)
            *why = "the pipe broke in the middle of a frame";
        return -1;
    }
    in->len = len;
    const char *bad = NULL;
    if (pd_mp_check(in->data, len, PD_MAX_DEPTH, &bad)) {
        if (why)
            *why = bad ? bad : "malformed frame";
        return -1;
    }
    return 1;
}

extern char **environ;

char **pd_pipe_env_new(const char *assign)
{
    if (!assign)
        return environ;
    const char *eq = strchr(assign, '=');
    size_t name = eq ? (size_t) (eq - assign) + 1 : strlen(assign);
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = malloc((n + 2) * sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], assign, name) != 0)
            env[k++] = environ[i];
    env[k++] = (char *) assign;
    env[k] = NULL;
    return env;
}

void pd_pipe_env_free(char **env)
{
    if (env != environ)
        free(env);
}

pid_t pd_pipe_spawn(const char *exe, char *const argv[], char *const envp[], int *to_child,
                    int *from_child)
{
    int down[2], up[2];
    if (pipe2(down, O_CLOEXEC))
        return -1;
    if (pipe2(up, O_CLOEXEC)) {
        int e = errno;
        close(down[0]);
        close(down[1]);
        errno = e;
        return -1;
    }
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t pid = fork();
    if (pid == 0) {
        /* Move the pipe ends above the target fds first, so that no dup2()
           clobbers the other end. */
        int in = fcntl(down[0], F_DUPFD, 10);
        int out = fcntl(up[1], F_DUPFD, 10);
        if (in < 0 || out < 0 || dup2(in, PD_PIPE_CHILD_IN) < 0
            || dup2(out, PD_PIPE_CHILD_OUT) < 0 || dup2(2, 1) < 0)
            _exit(126);
        if (devnull >= 0)
            dup2(devnull, 0);
        close(in);
        close(out);
        setpgid(0, 0); /* the terminal's Ctrl-C goes to the worker, which stops us */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (envp)
            execve(exe, argv, envp);
        else
            execv(exe, argv);
        _exit(127);
    }
    int saved = errno;
    if (devnull >= 0)
        close(devnull);
    close(down[0]);
    close(up[1]);
    if (pid < 0) {
        close(down[1]);
        close(up[0]);
        errno = saved;
        return -1;
    }
    fcntl(up[0], F_SETFL, fcntl(up[0], F_GETFL) | O_NONBLOCK);
    *to_child = down[1];
    *from_child = up[0];
    return pid;
}

const char *pd_pipe_program(const char *exe, char *buf, size_t cap)
{
    if (strcmp(exe, "/proc/self/exe") != 0 || cap < 2)
        return exe;
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0)
        return exe;
    buf[n] = 0;
    return buf;
}

void pd_pipe_explain_start(const char *exe, int status, char *out, size_t cap)
{
    char path[512];
    const char *prog = pd_pipe_program(exe, path, sizeof path);
    if (WIFSIGNALED(status))
        snprintf(out, cap, "%.200s was killed by signal %d (%s) before it was ready", prog,
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (WEXITSTATUS(status) == 127)
        snprintf(out, cap, "%.200s could not be executed: the program is missing or not "
                 "executable, or a shared library it needs does not load (the loader's "
                 "message is above; check with `ldd %.200s`)", prog, prog);
    else if (WEXITSTATUS(status) == 126)
        snprintf(out, cap, "the new process could not set up its pipes before running %.200s "
                 "(out of file descriptors? see `ulimit -n`)", prog);
    else if (WEXITSTATUS(status) == 2)
        snprintf(out, cap, "%.200s refused the command line the worker gave it (is it "
                 "playdoh-worker of this version?)", prog);
    else
        snprintf(out, cap, "%.200s exited with status %d before it was ready (any message "
                 "of its own is above)", prog, WEXITSTATUS(status));
    size_t len = strlen(out), dl = strlen(" (deleted)"), pl = strlen(prog);
    if (pl > dl && strcmp(prog + pl - dl, " (deleted)") == 0 && len + 1 < cap)
        snprintf(out + len, cap - len, "; the worker's program was replaced or deleted since it "
                 "started (an upgrade?): restart the worker");
}
