/*  pd_exec: runs one shell command for the built-in `exec` task; see
    pd_exec.h.

    fork + exec of /bin/sh with two pipes; the slot process reads both with
    poll() until both close, keeping at most PD_EXEC_MAX_OUTPUT bytes of each,
    then reaps the shell. The shell dies with the slot (PR_SET_PDEATHSIG) and
    shares its process group, which the worker kills on a time-out.
*/
#include "pd_exec.h"
#include "pd_error.h"
#include "pd_json.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* One captured stream. */
typedef struct {
    int fd;         /* read end; -1 once closed */
    pd_buf_t buf;   /* bytes kept */
    bool truncated; /* bytes beyond the limit were dropped */
} s_stream_t;

static double s_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double s_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Reads what is there; closes the stream at EOF or error. */
static void s_drain(s_stream_t *s)
{
    char sink[65536];
    for (;;) {
        size_t room = PD_EXEC_MAX_OUTPUT - s->buf.len;
        char *dst = sink;
        size_t want = sizeof sink;
        if (room > 0 && pd_buf_reserve(&s->buf, room < want ? room : want) == 0) {
            dst = (char *) s->buf.data + s->buf.len;
            want = room < want ? room : want;
        }
        ssize_t n = read(s->fd, dst, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            close(s->fd);
            s->fd = -1;
            return;
        }
        if (dst == sink)
            s->truncated = true;
        else
            s->buf.len += (size_t) n;
    }
}

/* Packs key and the bytes as str (UTF-8) or bin. */
static void s_pack_bytes(msgpack_packer *pk, const char *key, const pd_buf_t *b)
{
    pd_pack_cstr(pk, key);
    const void *p = b->data ? (const void *) b->data : "";
    if (pd_utf8_valid(p, b->len)) {
        msgpack_pack_str(pk, b->len);
        msgpack_pack_str_body(pk, p, b->len);
    } else {
        msgpack_pack_bin(pk, b->len);
        msgpack_pack_bin_body(pk, p, b->len);
    }
}

int pd_exec_run(const char *cmd, size_t len, const char *host, pd_buf_t *out, char *msg,
                size_t cap)
{
    if (memchr(cmd, 0, len)) {
        snprintf(msg, cap, "exec: the command line holds a NUL byte");
        return PD_EINVAL;
    }
    char *line = malloc(len + 1);
    if (!line) {
        snprintf(msg, cap, "exec: out of memory");
        return PD_ENOMEM;
    }
    memcpy(line, cmd, len);
    line[len] = 0;
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC)) {
        snprintf(msg, cap, "exec: cannot create a pipe: %s", strerror(errno));
        for (int i = 0; i < 2; i++) {
            if (po[i] >= 0)
                close(po[i]);
            if (pe[i] >= 0)
                close(pe[i]);
        }
        free(line);
        return PD_ESYS;
    }
    double start = s_wall(), t0 = s_mono();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0)
            _exit(127);
        signal(SIGPIPE, SIG_DFL);
        execl(PD_EXEC_SHELL, "sh", "-c", line, (char *) NULL);
        dprintf(2, "exec: cannot run %s: %s\n", PD_EXEC_SHELL, strerror(errno));
        _exit(127);
    }
    int fork_errno = errno;
    free(line);
    close(po[1]);
    close(pe[1]);
    if (pid < 0) {
        close(po[0]);
        close(pe[0]);
        snprintf(msg, cap, "exec: cannot start a process: %s", strerror(fork_errno));
        return PD_ESYS;
    }
    s_stream_t st[2] = {{.fd = po[0]}, {.fd = pe[0]}};
    for (int i = 0; i < 2; i++) {
        pd_buf_init(&st[i].buf);
        fcntl(st[i].fd, F_SETFL, fcntl(st[i].fd, F_GETFL) | O_NONBLOCK);
    }
    while (st[0].fd >= 0 || st[1].fd >= 0) {
        struct pollfd p[2];
        int np = 0;
        for (int i = 0; i < 2; i++)
            if (st[i].fd >= 0)
                p[np++] = (struct pollfd){.fd = st[i].fd, .events = POLLIN};
        if (poll(p, (nfds_t) np, -1) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++)
            if (st[i].fd >= 0)
                s_drain(&st[i]);
    }
    for (int i = 0; i < 2; i++)
        if (st[i].fd >= 0)
            close(st[i].fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    double runtime = s_mono() - t0;
    int exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;

    msgpack_packer pk;
    pd_packer_init(&pk, out);
    size_t before = out->len;
    msgpack_pack_map(&pk, 8);
    pd_pack_kv_int(&pk, "exit", exit_code);
    pd_pack_kv_int(&pk, "signal", sig);
    s_pack_bytes(&pk, "out", &st[0].buf);
    s_pack_bytes(&pk, "err", &st[1].buf);
    pd_pack_kv_str(&pk, "host", host);
    pd_pack_kv_double(&pk, "start", start);
    pd_pack_kv_double(&pk, "runtime", runtime);
    pd_pack_kv_bool(&pk, "truncated", st[0].truncated || st[1].truncated);
    pd_buf_free(&st[0].buf);
    pd_buf_free(&st[1].buf);
    if (out->failed) {
        out->len = before;
        out->failed = false;
        snprintf(msg, cap, "exec: out of memory packing the command's output");
        return PD_ENOMEM;
    }
    if (sig) {
        snprintf(msg, cap, "command killed by signal %d (%s)", sig, strsignal(sig));
        return PD_ETASK;
    }
    if (exit_code != 0) {
        snprintf(msg, cap, "command exited with status %d", exit_code);
        return PD_ETASK;
    }
    return 0;
}
