/*  bench_pipe_hop: the cost of one worker <-> slot hand-off, alone, on the
    platform it is built for (Linux, or Windows: run under Wine or on
    Windows). bench_windows.sh builds it twice (cc, and MinGW-w64) and runs
    both; it is not part of the meson build.

    A parent and a child process (this program again, started with "child")
    exchange 64-byte messages over two anonymous pipes, as a worker and its
    slot do; the child echoes. Timed, as the median of N round trips each:

      pipe    the parent writes the child's pipe and reads the answer from
              the other pipe directly (Linux: poll() then read(), as the
              worker's zmq_poll does on the slot's pipe)
      relay   (Windows) the parent reads the child's pipe as the worker does
              there: a relay thread copies it into a loopback TCP socket and
              the parent waits in select() on the socket's other end, then
              recv()s (zmq_poll on Windows is select())
      tcp     (Windows) the loopback socket alone: a thread echoes over a
              TCP connection, the parent waits in select() then recv()s
      spawn   start and reap one child process that exits at once (ms)

    Usage: bench_pipe_hop [N (2000)]      prints "key value" lines (µs, ms)
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOP_MSG 64 /* bytes per message */

static int cmp(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

static double med(double *v, int n)
{
    qsort(v, (size_t) n, sizeof *v, cmp);
    return v[n / 2];
}

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <winsock2.h>
#include <windows.h>
#include <process.h>

static double now_us(void)
{
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (double) c.QuadPart * 1e6 / (double) f.QuadPart;
}

static int read_full(HANDLE h, char *p, DWORD n)
{
    while (n) {
        DWORD got = 0;
        if (!ReadFile(h, p, n, &got, NULL) || got == 0)
            return -1;
        p += got;
        n -= got;
    }
    return 0;
}

static int recv_full(SOCKET s, char *p, int n)
{
    while (n) {
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(s, &rd);
        if (select(0, &rd, NULL, NULL, NULL) != 1)
            return -1;
        int got = recv(s, p, n, 0);
        if (got <= 0)
            return -1;
        p += got;
        n -= got;
    }
    return 0;
}

typedef struct {
    HANDLE pipe;
    SOCKET sock;
} relay_t;

static unsigned __stdcall relay_main(void *arg)
{
    relay_t *r = arg;
    char buf[65536];
    for (;;) {
        DWORD got = 0;
        if (!ReadFile(r->pipe, buf, sizeof buf, &got, NULL) || got == 0)
            break;
        if (send(r->sock, buf, (int) got, 0) != (int) got)
            break;
    }
    return 0;
}

static unsigned __stdcall echo_main(void *arg)
{
    SOCKET s = (SOCKET) (uintptr_t) arg;
    char buf[HOP_MSG];
    for (;;) {
        int n = 0;
        while (n < HOP_MSG) {
            int got = recv(s, buf + n, HOP_MSG - n, 0);
            if (got <= 0)
                return 0;
            n += got;
        }
        send(s, buf, HOP_MSG, 0);
    }
}

/* A connected loopback TCP pair, Nagle off on both ends. */
static int tcp_pair(SOCKET *a, SOCKET *b)
{
    SOCKET l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    int len = sizeof sa, one = 1;
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *) &sa, sizeof sa) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *) &sa, &len))
        return -1;
    *a = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(*a, (struct sockaddr *) &sa, sizeof sa))
        return -1;
    *b = accept(l, NULL, NULL);
    closesocket(l);
    setsockopt(*a, IPPROTO_TCP, TCP_NODELAY, (char *) &one, sizeof one);
    setsockopt(*b, IPPROTO_TCP, TCP_NODELAY, (char *) &one, sizeof one);
    return *b == INVALID_SOCKET ? -1 : 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        if (argc < 4)
            return 0; /* the spawn measurement */
        HANDLE in = (HANDLE) (uintptr_t) _strtoui64(argv[2], NULL, 10);
        HANDLE out = (HANDLE) (uintptr_t) _strtoui64(argv[3], NULL, 10);
        char buf[HOP_MSG];
        DWORD put;
        while (read_full(in, buf, HOP_MSG) == 0)
            if (!WriteFile(out, buf, HOP_MSG, &put, NULL))
                break;
        return 0;
    }
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    WSADATA wsa;
    WSAStartup(MAKEWORD(2, 2), &wsa);
    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
    HANDLE to_rd, to_wr, from_rd, from_wr;
    if (!CreatePipe(&to_rd, &to_wr, &sa, 0) || !CreatePipe(&from_rd, &from_wr, &sa, 0))
        return 1;
    SetHandleInformation(to_wr, HANDLE_FLAG_INHERIT, 0);
    SetHandleInformation(from_rd, HANDLE_FLAG_INHERIT, 0);
    char self[MAX_PATH], cmd[MAX_PATH + 64];
    GetModuleFileNameA(NULL, self, sizeof self);
    snprintf(cmd, sizeof cmd, "\"%s\" child %llu %llu", self,
             (unsigned long long) (uintptr_t) to_rd, (unsigned long long) (uintptr_t) from_wr);
    STARTUPINFOA si;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    PROCESS_INFORMATION pi;
    if (!CreateProcessA(self, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi))
        return 1;
    CloseHandle(to_rd);
    CloseHandle(from_wr);
    double *t = calloc((size_t) n, sizeof *t);
    char buf[HOP_MSG] = {0};
    DWORD put;
    for (int i = 0; i < n + 50; i++) { /* pipe */
        double t0 = now_us();
        if (!WriteFile(to_wr, buf, HOP_MSG, &put, NULL) || read_full(from_rd, buf, HOP_MSG))
            return 1;
        if (i >= 50)
            t[i - 50] = now_us() - t0;
    }
    printf("pipe_us %.1f\n", med(t, n));
    SOCKET rd, wr; /* relay */
    if (tcp_pair(&rd, &wr))
        return 1;
    relay_t r = {from_rd, wr};
    _beginthreadex(NULL, 0, relay_main, &r, 0, NULL);
    for (int i = 0; i < n + 50; i++) {
        double t0 = now_us();
        if (!WriteFile(to_wr, buf, HOP_MSG, &put, NULL) || recv_full(rd, buf, HOP_MSG))
            return 1;
        if (i >= 50)
            t[i - 50] = now_us() - t0;
    }
    printf("relay_us %.1f\n", med(t, n));
    SOCKET a, b; /* tcp */
    if (tcp_pair(&a, &b))
        return 1;
    _beginthreadex(NULL, 0, echo_main, (void *) (uintptr_t) b, 0, NULL);
    for (int i = 0; i < n + 50; i++) {
        double t0 = now_us();
        if (send(a, buf, HOP_MSG, 0) != HOP_MSG || recv_full(a, buf, HOP_MSG))
            return 1;
        if (i >= 50)
            t[i - 50] = now_us() - t0;
    }
    printf("tcp_us %.1f\n", med(t, n));
    CloseHandle(to_wr); /* the child ends */
    WaitForSingleObject(pi.hProcess, 10000);
    int ns = 20;
    snprintf(cmd, sizeof cmd, "\"%s\" child", self);
    for (int i = 0; i < ns; i++) { /* spawn */
        double t0 = now_us();
        if (!CreateProcessA(self, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi))
            return 1;
        WaitForSingleObject(pi.hProcess, INFINITE);
        CloseHandle(pi.hProcess);
        CloseHandle(pi.hThread);
        t[i] = (now_us() - t0) / 1e3;
    }
    printf("spawn_ms %.2f\n", med(t, ns));
    return 0;
}

#else
#include <poll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int read_full(int fd, char *p, size_t n)
{
    while (n) {
        ssize_t got = read(fd, p, n);
        if (got <= 0)
            return -1;
        p += got;
        n -= (size_t) got;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0)
        return 0; /* the spawn measurement */
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    int to[2], from[2];
    if (pipe(to) || pipe(from))
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        char buf[HOP_MSG];
        close(to[1]);
        close(from[0]);
        while (read_full(to[0], buf, HOP_MSG) == 0)
            if (write(from[1], buf, HOP_MSG) != HOP_MSG)
                break;
        _exit(0);
    }
    close(to[0]);
    close(from[1]);
    double *t = calloc((size_t) n, sizeof *t);
    char buf[HOP_MSG] = {0};
    for (int i = 0; i < n + 50; i++) {
        double t0 = now_us();
        struct pollfd p = {from[0], POLLIN, 0};
        if (write(to[1], buf, HOP_MSG) != HOP_MSG || poll(&p, 1, -1) != 1 || read_full(from[0], buf, HOP_MSG))
            return 1;
        if (i >= 50)
            t[i - 50] = now_us() - t0;
    }
    printf("pipe_us %.1f\n", med(t, n));
    close(to[1]);
    waitpid(pid, NULL, 0);
    int ns = 20;
    for (int i = 0; i < ns; i++) {
        double t0 = now_us();
        pid_t c = fork();
        if (c == 0) {
            execl(argv[0], argv[0], "child", (char *) NULL);
            _exit(127);
        }
        waitpid(c, NULL, 0);
        t[i] = (now_us() - t0) / 1e3;
    }
    printf("spawn_ms %.2f\n", med(t, ns));
    return 0;
}
#endif
