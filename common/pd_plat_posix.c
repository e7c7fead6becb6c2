/*  pd_plat, POSIX (Linux): see pd_plat.h. fork+exec only: the callers have
    ZeroMQ threads, so a forked child makes only async-signal-safe calls
    before exec.
*/
#include "pd_plat.h"
#include "pd_error_int.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <dirent.h>
#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

extern char **environ;

/* ---- the machine -------------------------------------------------------- */

const char *pd_plat_name(void)
{
#if defined(__x86_64__)
    return "linux-x86_64";
#elif defined(__aarch64__)
    return "linux-aarch64";
#else
    return "linux-unknown";
#endif
}

int pd_plat_ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int) n : 1;
}

int pd_plat_getpid(void) { return (int) getpid(); }

int pd_plat_self_exe(char *out, size_t cap)
{
    if (cap < 2)
        return PD_EIO;
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n <= 0 || (size_t) n >= cap - 1)
        return PD_EIO;
    out[n] = 0;
    return 0;
}

bool pd_plat_dirsep(char c) { return c == '/'; }

int pd_plat_hostname(char *out, size_t cap)
{
    if (cap == 0 || gethostname(out, cap - 1))
        return -1;
    out[cap - 1] = 0;
    return 0;
}

int pd_plat_resolve(const char *host, char *why, size_t cap)
{
    char name[256];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']')
        snprintf(name, sizeof name, "%.*s", (int) (n - 2), host + 1);
    else
        snprintf(name, sizeof name, "%s", host);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(name, NULL, &hints, &ai);
    if (ai)
        freeaddrinfo(ai);
    if (rc == 0)
        return 0;
    snprintf(why, cap, "%s", gai_strerror(rc));
    return PD_EINVAL;
}

int pd_plat_route_addr(const char *host, const char *port, char *out, size_t cap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
        return PD_EINVAL;
    int rc = PD_EINVAL;
    for (struct addrinfo *a = ai; a && rc; a = a->ai_next) {
        int fd = socket(a->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        struct sockaddr_storage local;
        socklen_t len = sizeof local;
        /* A UDP connect sends nothing: it only picks the route. */
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0
            && getsockname(fd, (struct sockaddr *) &local, &len) == 0) {
            void *src = local.ss_family == AF_INET
                            ? (void *) &((struct sockaddr_in *) &local)->sin_addr
                            : (void *) &((struct sockaddr_in6 *) &local)->sin6_addr;
            char text[INET6_ADDRSTRLEN];
            if (inet_ntop(local.ss_family, src, text, sizeof text)) {
                if (local.ss_family == AF_INET6)
                    snprintf(out, cap, "[%s]", text);
                else
                    snprintf(out, cap, "%s", text);
                rc = 0;
            }
        }
        close(fd);
    }
    freeaddrinfo(ai);
    return rc;
}

/* ---- files -------------------------------------------------------------- */

int pd_plat_mkdir(const char *path, int mode) { return mkdir(path, (mode_t) mode); }
int pd_plat_rename(const char *from, const char *to) { return rename(from, to); }

int pd_plat_dir_enter_check(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return access(dir, X_OK) == 0 ? 0 : -1;
}

static int s_remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    if (remove(path) != 0 && errno != ENOENT)
        return -1;
    return 0;
}

int pd_plat_remove_tree(const char *path)
{
    /* FTW_PHYS: a link is removed itself, never followed; FTW_DEPTH: a
       directory's entries before the directory. */
    return nftw(path, s_remove_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

int pd_plat_getcwd(char *out, size_t cap) { return getcwd(out, cap) ? 0 : -1; }
int64_t pd_plat_mtime_ns(const struct stat *st)
{
    return (int64_t) st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

const void *pd_plat_map_file(const char *path, size_t *len)
{
    static const char empty[1];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    *len = (size_t) st.st_size;
    if (*len == 0) {
        close(fd);
        return empty;
    }
    void *p = mmap(NULL, *len, PROT_READ, MAP_SHARED, fd, 0); /* one copy for every slot */
    int e = errno;
    close(fd);
    errno = e;
    return p == MAP_FAILED ? NULL : p;
}

void pd_plat_unmap(const void *addr, size_t len)
{
    if (addr && len)
        munmap((void *) addr, len);
}

int pd_plat_dir(pd_dir_t which, char *out, size_t cap)
{
    static const struct {
        const char *xdg, *home_rel;
    } d[] = {
        [PD_DIR_CONFIG] = {"XDG_CONFIG_HOME", ".config"},
        [PD_DIR_CACHE] = {"XDG_CACHE_HOME", ".cache"},
        [PD_DIR_STATE] = {"XDG_STATE_HOME", ".local/state"},
        [PD_DIR_RUNTIME] = {"XDG_RUNTIME_DIR", NULL},
    };
    const char *v = getenv(d[which].xdg), *home = getenv("HOME");
    if (v && *v)
        snprintf(out, cap, "%s/playdoh", v);
    else if (which == PD_DIR_RUNTIME)
        snprintf(out, cap, "/run/playdoh");
    else if (home && *home)
        snprintf(out, cap, "%s/%s/playdoh", home, d[which].home_rel);
    else {
        snprintf(out, cap, "neither %s nor HOME is set", d[which].xdg);
        return PD_EIO;
    }
    return 0;
}

bool pd_plat_mode_private(const struct stat *st) { return (st->st_mode & 077) == 0; }

void pd_plat_username(char *out, size_t cap)
{
    struct passwd *pw = getpwuid(getuid());
    snprintf(out, cap, "%s", pw && pw->pw_name ? pw->pw_name : "user");
}

bool pd_plat_executable(const char *path) { return access(path, X_OK) == 0; }

int pd_plat_term_width(void *f)
{
    struct winsize ws;
    if (ioctl(fileno((FILE *) f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

/* ---- loading modules ---------------------------------------------------- */

void *pd_plat_dlopen(const char *path, char *err, size_t cap)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(err, cap, "%s", e ? e : "unknown dlopen error");
    }
    return h;
}

void *pd_plat_dlsym(void *handle, const char *name)
{
    /* dlsym() also searches the module's dependencies (libc, libm): keep
       only a symbol the module itself defines. */
    void *sym = dlsym(handle, name);
    struct link_map *lm = NULL;
    Dl_info info;
    if (sym && (dlinfo(handle, RTLD_DI_LINKMAP, &lm) || !lm || !dladdr(sym, &info)
                || (uintptr_t) info.dli_fbase != (uintptr_t) lm->l_addr))
        sym = NULL;
    return sym;
}

void pd_plat_dlclose(void *handle)
{
    if (handle)
        dlclose(handle);
}

void *pd_plat_dlopen_system(const char *path, char *err, size_t cap)
{
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!h) {
        const char *e = dlerror();
        /* dlerror() repeats the path: keep its reason only. */
        const char *reason = e ? strstr(e, ": ") : NULL;
        snprintf(err, cap, "%s", reason ? reason + 2 : e ? e : "cannot load");
    }
    return h;
}

void *pd_plat_dlsym_any(void *handle, const char *name) { return dlsym(handle, name); }

const char *pd_plat_cuda_driver(void) { return "libcuda.so.1"; }
const char *pd_plat_cuda_libdir(void) { return "lib64"; }
const char *pd_plat_nvrtc_file(void) { return "libnvrtc.so"; }

const char *const *pd_plat_nvrtc_names(void)
{
    static const char *const names[] = {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12",
                                        "libnvrtc.so.11.2", NULL};
    return names;
}

const char *pd_plat_module_implib(void) { return NULL; }
const char *pd_plat_default_cc(void) { return "cc"; }

int pd_plat_which(const char *name, char *out, size_t cap)
{
    struct stat st;
    if (strchr(name, '/')) {
        snprintf(out, cap, "%s", name);
        return stat(out, &st) == 0 && S_ISREG(st.st_mode) ? 0 : PD_EIO;
    }
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin"; /* execvp's default */
    for (const char *p = path;; p++) {
        const char *end = strchrnul(p, ':');
        int len = (int) (end - p);
        if (len > 0 && (size_t) snprintf(out, cap, "%.*s/%s", len, p, name) < cap
            && stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return 0;
        if (!*end)
            break;
        p = end;
    }
    return PD_EIO;
}

/* ---- children ----------------------------------------------------------- */

/* The environment with `assign` in place of any variable of its name. Built
   before fork: a forked child may only make async-signal-safe calls. */
static char **s_env_new(const char *assign)
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

int pd_plat_spawn(const char *exe, char *const argv[], const char *env_assign, int *to_child,
                  int *from_child)
{
    char **envp = s_env_new(env_assign);
    if (!envp) {
        errno = ENOMEM;
        return -1;
    }
    int down[2] = {-1, -1}, up[2] = {-1, -1};
    if (pipe2(down, O_CLOEXEC) || pipe2(up, O_CLOEXEC)) {
        int e = errno;
        for (int i = 0; i < 2; i++) {
            if (down[i] >= 0)
                close(down[i]);
            if (up[i] >= 0)
                close(up[i]);
        }
        if (envp != environ)
            free(envp);
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
        if (in < 0 || out < 0 || dup2(in, PD_PLAT_CHILD_IN) < 0
            || dup2(out, PD_PLAT_CHILD_OUT) < 0 || dup2(2, 1) < 0)
            _exit(126);
        if (devnull >= 0)
            dup2(devnull, 0);
        close(in);
        close(out);
        setpgid(0, 0); /* the terminal's Ctrl-C goes to the parent, which stops us */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(exe, argv, envp);
        _exit(127);
    }
    int saved = errno;
    if (envp != environ)
        free(envp);
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
    return (int) pid;
}

int pd_plat_child_init(void)
{
    return fcntl(PD_PLAT_CHILD_IN, F_GETFD) < 0 || fcntl(PD_PLAT_CHILD_OUT, F_GETFD) < 0 ? -1 : 0;
}

bool pd_plat_child_setup(int parent, void (*on_term)(int), bool ignore_pipe)
{
    /* Die with the parent, and let a crash die of its signal (the parent
       reports it) instead of going through inherited handlers. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (parent > 0 && getppid() != (pid_t) parent)
        return false;
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGINT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], SIG_DFL);
    /* Ignored, a vanished parent shows up as a failed write; the default
       is what programs a task execs expect to inherit. */
    signal(SIGPIPE, ignore_pipe ? SIG_IGN : SIG_DFL);
    if (on_term) {
        struct sigaction term;
        memset(&term, 0, sizeof term);
        term.sa_handler = on_term;
        term.sa_flags = SA_RESTART;
        sigaction(SIGTERM, &term, NULL);
    } else {
        signal(SIGTERM, SIG_DFL);
    }
    return true;
}

long pd_plat_read(int fd, void *buf, size_t n)
{
    for (;;) {
        ssize_t got = read(fd, buf, n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && errno == EWOULDBLOCK)
            errno = EAGAIN;
        return (long) got;
    }
}

int pd_plat_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
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

int pd_plat_read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
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

bool pd_plat_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

void pd_plat_close(int fd)
{
    if (fd >= 0)
        close(fd);
}

void pd_plat_kill_tree(int pid)
{
    if (pid <= 0)
        return;
    kill(-pid, SIGKILL); /* its group: what a task started */
    kill(pid, SIGKILL);
}

int pd_plat_suspend_tree(int pid, bool suspend)
{
    if (pid <= 0)
        return PD_ESYS;
    return kill(-pid, suspend ? SIGSTOP : SIGCONT) == 0 ? 0 : pd_sys_error();
}

int pd_plat_wait(int pid, int *status, bool block)
{
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, block ? 0 : WNOHANG);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        if (status)
            *status = st;
        return 1;
    }
}

bool pd_plat_status_crashed(int status) { return WIFSIGNALED(status); }
int pd_plat_status_exit(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
int pd_plat_status_signal(int status) { return WIFSIGNALED(status) ? WTERMSIG(status) : 0; }

const char *pd_plat_status_str(int status, char *out, size_t cap)
{
    if (WIFSIGNALED(status))
        snprintf(out, cap, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(out, cap, "exited with status %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return out;
}

/* One output pipe of pd_plat_run: where its bytes go. */
typedef struct {
    int fd;       /* read end, or -1 once at EOF */
    char *buf;    /* destination, or NULL */
    size_t cap;   /* bytes in buf */
    size_t *len;  /* bytes kept */
    bool *trunc;  /* set when bytes were dropped */
    uint64_t *drop; /* bytes dropped */
} s_sink_t;

static void s_sink_read(s_sink_t *s)
{
    char tmp[65536];
    for (;;) {
        ssize_t r = read(s->fd, tmp, sizeof tmp);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return;
        if (r <= 0) {
            close(s->fd);
            s->fd = -1;
            return;
        }
        size_t k = 0;
        if (s->buf && *s->len + 1 < s->cap) {
            size_t room = s->cap - 1 - *s->len;
            k = (size_t) r < room ? (size_t) r : room;
            memcpy(s->buf + *s->len, tmp, k);
            *s->len += k;
            s->buf[*s->len] = 0;
        }
        if (k < (size_t) r) {
            *s->trunc = true;
            *s->drop += (size_t) r - k;
        }
    }
}

/* The child of pd_plat_run, between fork and exec: only async-signal-safe
   calls, since callers may have threads. Never returns. */
_Noreturn static void s_run_child(char *const argv[], const char *cwd, pid_t parent,
                                  const int in[2], const int po[2], const int pe[2])
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    if (dup2(in[0], 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0)
        _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    const char *a = "cannot run ", *what = argv[0], *b = ": ", *c;
    if (cwd && chdir(cwd) != 0) {
        a = "cannot enter ";
        what = cwd;
    } else {
        execvp(argv[0], argv);
    }
    c = strerror(errno);
    if (write(2, a, strlen(a)) < 0 || write(2, what, strlen(what)) < 0 ||
        write(2, b, strlen(b)) < 0 || write(2, c, strlen(c)) < 0)
        _exit(127);
    _exit(127);
}

/* Feeds the child's input and drains its two outputs until both close or
   the deadline passes; closes every pipe end it was given. True when the
   deadline passed first. */
static bool s_run_pump(int in_fd, const char *inp, size_t inlen, s_sink_t sinks[2],
                       int64_t deadline)
{
    size_t sent = 0;
    if (!inp || inlen == 0) {
        close(in_fd);
        in_fd = -1;
    } else {
        fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
    }
    for (int i = 0; i < 2; i++)
        fcntl(sinks[i].fd, F_SETFL, fcntl(sinks[i].fd, F_GETFL) | O_NONBLOCK);
    bool timed_out = false;
    while (sinks[0].fd >= 0 || sinks[1].fd >= 0) {
        struct pollfd p[3];
        int np = 0, isink[3] = {-1, -1, -1};
        for (int i = 0; i < 2; i++)
            if (sinks[i].fd >= 0) {
                isink[np] = i;
                p[np++] = (struct pollfd){.fd = sinks[i].fd, .events = POLLIN};
            }
        if (in_fd >= 0)
            p[np++] = (struct pollfd){.fd = in_fd, .events = POLLOUT};
        int64_t left = deadline - zclock_mono();
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
            ssize_t w = write(in_fd, inp + sent, inlen - sent);
            if (w > 0)
                sent += (size_t) w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || sent == inlen) {
                close(in_fd);
                in_fd = -1;
            }
        }
    }
    if (in_fd >= 0)
        close(in_fd);
    for (int i = 0; i < 2; i++)
        if (sinks[i].fd >= 0)
            close(sinks[i].fd);
    return timed_out;
}

/* Waits for the child of pd_plat_run: its status, or PD_ETIMEDOUT after
   killing it once the deadline passed (its output may close before it
   exits). */
static int s_run_reap(pid_t pid, bool timed_out, int64_t deadline)
{
    int status = 0;
    for (;;) {
        pid_t r = timed_out ? 0 : waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return pd_sys_error();
        if (timed_out || zclock_mono() >= deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            return PD_ETIMEDOUT;
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

int pd_plat_run(char *const argv[], const void *input, size_t inlen, pd_plat_capture_t *cap,
                int timeout_ms)
{
    cap->outlen = cap->errlen = 0;
    cap->trunc = false;
    cap->outdrop = cap->errdrop = 0;
    if (cap->out && cap->outcap)
        cap->out[0] = 0;
    if (cap->err && cap->errcap)
        cap->err[0] = 0;
    int in[2] = {-1, -1}, po[2] = {-1, -1}, pe[2] = {-1, -1};
    if (pipe2(in, O_CLOEXEC) || pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC)) {
        int fds[] = {in[0], in[1], po[0], po[1], pe[0], pe[1]};
        for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        return pd_sys_error();
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        s_run_child(argv, cap->cwd, parent, in, po, pe);
    close(in[0]);
    close(po[1]);
    close(pe[1]);
    if (pid < 0) {
        close(in[1]);
        close(po[0]);
        close(pe[0]);
        return pd_sys_error();
    }
    /* A child that exits without reading its input must not kill us with
       SIGPIPE: block it while writing, and drop one left pending. */
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    s_sink_t sinks[2] = {{po[0], cap->out, cap->outcap, &cap->outlen, &cap->trunc, &cap->outdrop},
                         {pe[0], cap->err, cap->errcap, &cap->errlen, &cap->trunc, &cap->errdrop}};
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : zclock_mono() + timeout_ms;
    bool timed_out = s_run_pump(in[1], input, inlen, sinks, deadline);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
        ;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return s_run_reap(pid, timed_out, deadline);
}

void pd_plat_shell_argv(const char *cmd, char *argv[6])
{
    argv[0] = "/bin/sh";
    argv[1] = "-c";
    argv[2] = (char *) cmd;
    argv[3] = NULL;
}

/* ---- stop requests ------------------------------------------------------ */

void pd_plat_on_stop(void (*on_stop)(int), void (*on_reload)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (on_reload) {
        sa.sa_handler = on_reload;
        sigaction(SIGHUP, &sa, NULL);
    }
    signal(SIGPIPE, SIG_IGN); /* a dead child shows up as EPIPE */
}

void pd_plat_hold_stop(bool hold)
{
    static sigset_t old;
    if (hold) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &set, &old);
    } else {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
}

int pd_plat_control_endpoint(const char *path, char *ep, size_t cap,
                             char token[PD_PLAT_TOKEN_LEN + 1])
{
    token[0] = 0;
    snprintf(ep, cap, "ipc://%s", path);
    return 0;
}

int pd_plat_control_bind(void *sock, const char *path, int mode,
                         char token[PD_PLAT_TOKEN_LEN + 1], char *why, size_t cap)
{
    token[0] = 0;
    char ep[4200];
    snprintf(ep, sizeof ep, "ipc://%s", path);
    mode_t old = umask(0077); /* no moment with a wider mode than asked */
    int rc = zmq_bind(sock, ep);
    umask(old);
    if (rc != 0 || chmod(path, (mode_t) mode) != 0) {
        snprintf(why, cap, "%s", rc ? zmq_strerror(errno) : strerror(errno));
        return PD_ESYS;
    }
    return 0;
}

void pd_plat_control_default(char *path, size_t cap, bool service_first)
{
    const char *rt = getenv("RUNTIME_DIRECTORY"); /* systemd's RuntimeDirectory= */
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    struct stat st;
    if (service_first && stat("/run/playdoh/worker.ctl", &st) == 0)
        snprintf(path, cap, "/run/playdoh/worker.ctl");
    else if (rt && *rt)
        snprintf(path, cap, "%s/worker.ctl", rt);
    else if (geteuid() == 0 || !(xdg && *xdg))
        snprintf(path, cap, geteuid() == 0 ? "/run/playdoh/worker.ctl" : "/tmp/playdoh-%u/worker.ctl",
                 (unsigned) geteuid());
    else
        snprintf(path, cap, "%s/playdoh/worker.ctl", xdg);
}

static sigset_t s_int_old;

void pd_plat_catch_interrupt(bool on)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    pthread_sigmask(on ? SIG_BLOCK : SIG_SETMASK, on ? &set : &s_int_old, on ? &s_int_old : NULL);
}

bool pd_plat_interrupt_taken(void)
{
    sigset_t pending, set;
    if (sigpending(&pending) != 0 || !sigismember(&pending, SIGINT))
        return false;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    struct timespec now = {0, 0};
    return sigtimedwait(&set, NULL, &now) == SIGINT;
}

/* ---- the owner's use of the machine ------------------------------------- */

/* On POSIX the procfs holds these, and pd_load reads it (its directory is
   configurable, for containers): nothing here. */
int pd_plat_cpu_times(unsigned long long *busy, unsigned long long *total, int *ncpu)
{
    (void) busy;
    (void) total;
    (void) ncpu;
    return PD_EIO;
}

unsigned long long pd_plat_proc_cpu(int pid)
{
    (void) pid;
    return 0;
}

/* ---- a system service --------------------------------------------------- */

/* The worker is a systemd service here (conf/playdoh-worker.service), not
   one that it registers itself. */
static int s_no_service(char *why, size_t cap)
{
    if (why && cap)
        snprintf(why, cap, "on Linux the worker runs as a systemd service, not one it installs "
                           "itself: `systemctl enable --now playdoh-worker` (settings in %s; see "
                           "docs/cluster.md)", "/etc/playdoh/playdoh.conf");
    return PD_ESYS;
}

int pd_plat_service_dir(char *out, size_t cap) { return s_no_service(out, cap); }

int pd_plat_service_install(const pd_plat_service_t *svc, char *const argv[],
                            const char **account, char *why, size_t cap)
{
    (void) svc;
    (void) argv;
    if (account)
        *account = NULL;
    return s_no_service(why, cap);
}

int pd_plat_service_uninstall(const char *name, int wait_ms, char *why, size_t cap)
{
    (void) name;
    (void) wait_ms;
    return s_no_service(why, cap);
}

int pd_plat_service_start(const char *name, int wait_ms, char *why, size_t cap)
{
    (void) name;
    (void) wait_ms;
    return s_no_service(why, cap);
}

int pd_plat_service_stop(const char *name, int wait_ms, char *why, size_t cap)
{
    (void) name;
    (void) wait_ms;
    return s_no_service(why, cap);
}

int pd_plat_service_status(const char *name, pd_plat_svc_state_t *state, char *info, size_t cap)
{
    (void) name;
    if (state)
        *state = PD_SVC_STOPPED;
    return s_no_service(info, cap);
}

int pd_plat_service_run(const char *name, int (*main_fn)(int, char **), int argc, char **argv,
                        char *why, size_t cap)
{
    (void) name;
    (void) main_fn;
    (void) argc;
    (void) argv;
    return s_no_service(why, cap);
}

int pd_plat_stderr_to_file(const char *path, char *why, size_t cap)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(why, cap, "cannot open %s: %s", path, strerror(errno));
        return PD_ESYS;
    }
    fflush(stdout);
    fflush(stderr);
    bool ok = dup2(fd, 2) == 2 && dup2(fd, 1) == 1; /* dup2 clears FD_CLOEXEC */
    int e = errno;
    if (fd > 2)
        close(fd);
    if (!ok) {
        snprintf(why, cap, "cannot send standard error to %s: %s", path, strerror(e));
        return PD_ESYS;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    return 0;
}

/* ---- what one job may take ---------------------------------------------- */

/* The limits the process started with, kept by the first call. */
static struct rlimit s_data0, s_cpu0;
static bool s_limits_saved;

int pd_plat_job_limits(uint64_t data_max, uint64_t cpu_s)
{
    if (!s_limits_saved) {
        if (getrlimit(RLIMIT_DATA, &s_data0) || getrlimit(RLIMIT_CPU, &s_cpu0))
            return pd_sys_error();
        s_limits_saved = true;
    }
    struct rlimit d = s_data0, c = s_cpu0;
#if defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer maps terabytes of shadow memory that RLIMIT_DATA
       counts: under it the worker's measurements alone bound memory. */
    data_max = 0;
#endif
    if (data_max && (d.rlim_max == RLIM_INFINITY || data_max < d.rlim_max))
        d.rlim_cur = (rlim_t) data_max;
    if (cpu_s) {
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru))
            return pd_sys_error();
        /* RLIMIT_CPU counts the process's whole life: allow cpu_s more, and
           round what was used up so the job gets its full allowance. */
        rlim_t used = (rlim_t) ru.ru_utime.tv_sec + (rlim_t) ru.ru_stime.tv_sec + 1;
        rlim_t want = used + (rlim_t) cpu_s;
        if (c.rlim_max == RLIM_INFINITY || want < c.rlim_max)
            c.rlim_cur = want;
    }
    if (setrlimit(RLIMIT_DATA, &d) || setrlimit(RLIMIT_CPU, &c))
        return pd_sys_error();
    return 0;
}

/* Resident pages of /proc/PID/statm's second field, in bytes; 0 when gone. */
static uint64_t s_statm_rss(const char *pid)
{
    char path[64], buf[128];
    snprintf(path, sizeof path, "/proc/%s/statm", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    unsigned long long size, res;
    if (sscanf(buf, "%llu %llu", &size, &res) != 2)
        return 0;
    return (uint64_t) res * (uint64_t) sysconf(_SC_PAGESIZE);
}

/* The process group of /proc/PID/stat (field 5, after the command in
   parentheses), or -1. */
static long s_stat_pgrp(const char *pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    long ppid, pgrp;
    char st;
    if (!p || sscanf(p + 1, " %c %ld %ld", &st, &ppid, &pgrp) != 3)
        return -1;
    return pgrp;
}

uint64_t pd_plat_rss(int pid, bool group)
{
    char me[24];
    snprintf(me, sizeof me, "%d", pid);
    if (!group)
        return s_statm_rss(me);
    DIR *d = opendir("/proc");
    if (!d)
        return s_statm_rss(me);
    uint64_t sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        if (s_stat_pgrp(e->d_name) == pid)
            sum += s_statm_rss(e->d_name);
    }
    closedir(d);
    return sum;
}

bool pd_plat_status_cpu_limit(int status)
{
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU;
}

struct pd_plat_outcap {
    int rd;              /* the pipe's read end (non-blocking), read by the thread */
    int ctl[2];          /* a request to drain: written by take, read by the thread */
    pthread_t thread;    /* the reader */
    pthread_mutex_t mu;  /* guards the fields below */
    pthread_cond_t cv;   /* signalled when a drain is done */
    char *buf;           /* bytes kept, owned */
    size_t len;          /* bytes in buf */
    size_t cap;          /* most bytes kept (buf's size) */
    uint64_t dropped;    /* bytes read and not kept since the reset */
    uint64_t asked;      /* drains asked */
    uint64_t drained;    /* drains done */
    atomic_int reading;  /* the thread is between poll and keeping what it read */
};

/* Keeps what fits of data[0..n), counts the rest. */
static void s_outcap_add(pd_plat_outcap_t *o, const char *data, size_t n)
{
    pthread_mutex_lock(&o->mu);
    size_t room = o->cap - o->len, k = n < room ? n : room;
    memcpy(o->buf + o->len, data, k);
    o->len += k;
    o->dropped += n - k;
    pthread_mutex_unlock(&o->mu);
}

/* Reads everything the pipe holds now. Returns false at end of file. */
static bool s_outcap_drain(pd_plat_outcap_t *o, char *tmp, size_t tmpcap)
{
    for (;;) {
        ssize_t n = read(o->rd, tmp, tmpcap);
        if (n > 0) {
            s_outcap_add(o, tmp, (size_t) n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n != 0;
    }
}

static void *s_outcap_run(void *arg)
{
    pd_plat_outcap_t *o = arg;
    static char tmp[65536];
    bool open_ = true; /* the pipe has writers (always, while descriptors 1 and 2 live) */
    for (;;) {
        struct pollfd p[2] = {{o->ctl[0], POLLIN, 0}, {o->rd, POLLIN, 0}};
        nfds_t np = open_ ? 2 : 1;
        if (poll(p, np, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (np == 2 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            atomic_store(&o->reading, 1);
            open_ = s_outcap_drain(o, tmp, sizeof tmp);
            atomic_store(&o->reading, 0);
        }
        if (p[0].revents & (POLLIN | POLLHUP)) {
            char c[64];
            if (read(o->ctl[0], c, sizeof c) <= 0)
                break;
            /* Everything written before the request is in the pipe now. */
            if (open_)
                open_ = s_outcap_drain(o, tmp, sizeof tmp);
            pthread_mutex_lock(&o->mu);
            o->drained = o->asked;
            pthread_cond_broadcast(&o->cv);
            pthread_mutex_unlock(&o->mu);
        }
    }
    return NULL;
}

pd_plat_outcap_t *pd_plat_outcap_start(int *log_fd)
{
    pd_plat_outcap_t *o = calloc(1, sizeof *o);
    int p[2] = {-1, -1};
    if (!o)
        return NULL;
    o->ctl[0] = o->ctl[1] = -1;
    int saved = fcntl(2, F_DUPFD_CLOEXEC, 3);
    if (saved < 0 || pipe2(p, O_CLOEXEC) || pipe2(o->ctl, O_CLOEXEC))
        goto fail;
    o->rd = p[0];
    fcntl(o->rd, F_SETFL, fcntl(o->rd, F_GETFL) | O_NONBLOCK);
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    /* The thread must not take the stop signals meant for the process. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&o->thread, NULL, s_outcap_run, o);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        errno = rc;
        goto fail;
    }
    fflush(stdout);
    fflush(stderr);
    /* Descriptors 1 and 2 are inherited by what a job starts (without
       O_CLOEXEC); the pipe's own write end is closed. */
    if (dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0)
        abort(); /* the thread runs: nothing sane is left to do */
    close(p[1]);
    *log_fd = saved;
    return o;
fail:
    if (saved >= 0)
        close(saved);
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    if (o->ctl[0] >= 0)
        close(o->ctl[0]);
    if (o->ctl[1] >= 0)
        close(o->ctl[1]);
    free(o);
    return NULL;
}

void pd_plat_outcap_reset(pd_plat_outcap_t *o, size_t cap)
{
    /* What the previous job wrote belongs to it: when some may still be in
       the pipe or in the thread's hands, let the thread finish with it
       first (a round trip); usually nothing is, and this costs one ioctl. */
    int pending = 0;
    if (ioctl(o->rd, FIONREAD, &pending) != 0 || pending > 0 || atomic_load(&o->reading)) {
        size_t len;
        uint64_t dropped;
        pd_plat_outcap_take(o, &len, &dropped);
    }
    pthread_mutex_lock(&o->mu);
    if (cap != o->cap) {
        char *b = realloc(o->buf, cap ? cap : 1);
        if (b) {
            o->buf = b;
            o->cap = cap;
        } else if (cap > o->cap) {
            cap = o->cap; /* keep what fits the old buffer */
        } else {
            o->cap = cap;
        }
    }
    o->len = 0;
    o->dropped = 0;
    pthread_mutex_unlock(&o->mu);
}

const char *pd_plat_outcap_take(pd_plat_outcap_t *o, size_t *len, uint64_t *dropped)
{
    fflush(stdout);
    fflush(stderr);
    pthread_mutex_lock(&o->mu);
    uint64_t want = ++o->asked;
    pthread_mutex_unlock(&o->mu);
    char c = 0;
    while (write(o->ctl[1], &c, 1) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&o->mu);
    while (o->drained < want)
        pthread_cond_wait(&o->cv, &o->mu);
    *len = o->len;
    *dropped = o->dropped;
    pthread_mutex_unlock(&o->mu);
    return o->buf ? o->buf : "";
}
