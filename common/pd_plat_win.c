/*  pd_plat_win: the Windows (MinGW-w64, x86_64) implementation of pd_plat.h.

    Children. Every child started by pd_plat_spawn or pd_plat_run is created
    suspended, put in a Job Object of its own (JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    so that the tree dies with us or when it is reaped) and then resumed. Where
    the job cannot be assigned (nested jobs on old systems, Wine), the child
    runs without one and a kill reaches the process only; a framed child then
    still dies with its parent through the watcher thread of
    pd_plat_child_setup.

    A framed child gets two anonymous pipes. Their child ends are inherited
    (limited to them and the standard handles with
    PROC_THREAD_ATTRIBUTE_HANDLE_LIST where the system has it; every
    CreateProcess of this file runs under one lock, so a concurrent spawn
    cannot inherit another child's pipe either way) and named to the child in
    PLAYDOH_PIPES=<in>,<out> (decimal handle values). Since zmq_poll polls
    only sockets on Windows, the parent reads the child through a loopback
    TCP connection: a relay thread per child copies the pipe into one end and
    closes it at the pipe's end, and the other, non-blocking end is the
    from_child "descriptor" (a SOCKET cast to int). A table of the sockets
    made here tells pd_plat_close and pd_plat_read a socket from a CRT
    descriptor; a socket whose value equals a live to_child descriptor is
    never handed out, and a to_child descriptor is renumbered when its number
    equals a live socket, so the two never collide.

    The worker's control socket has no ipc:// on Windows: it binds
    tcp://127.0.0.1:* and writes the endpoint into the control file, whose
    directory (the user's profile, or %PROGRAMDATA%\playdoh for a service)
    keeps other users from reading it. The loopback port itself is open to
    every local user.

    The POSIX names the rest of the tree uses and MinGW-w64 lacks (strndup,
    getline, setenv, unsetenv, mkdtemp; pd_plat.h declares them) are here
    too.

    Wait statuses are the children's exit codes (a DWORD as an int). An
    NTSTATUS error code (0xC0000000 to 0xEFFFFFFF: an exception, or our kill
    with 0xC000013A) and the EXCEPTION_* warnings 0x80000001..0x80000004
    count as crashes; 0xF0000000 and above are negative exit codes such as
    exit(-1), not crashes.
*/
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <ntsecapi.h> /* RtlGenRandom */
#include <aclapi.h>   /* SetNamedSecurityInfoW */
#include <sddl.h>     /* ConvertStringSecurityDescriptorToSecurityDescriptorW */
#include <winsvc.h>

#include <direct.h>
#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <limits.h>
#include <process.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <sodium.h>
#include <zmq.h>

#include "pd_error.h"
#include "pd_grow.h"
#include "pd_plat.h"

/* "Where the system cannot" (pd_plat_suspend_tree): pd_plat.h says PD_ESYS. */
#define PD_PLAT_ENOTSUP PD_ESYS

#define PD_STATUS_KILLED 0xC000013Au /* STATUS_CONTROL_C_EXIT */
#define PIPES_VAR "PLAYDOH_PIPES"
#define PIPE_BUFSZ 65536

/* ---- small helpers ------------------------------------------------------ */

char *strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = malloc(len + 1);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* POSIX getline: the line with its '\n', NUL-terminated, in *line (grown
   with realloc); its length, or -1 at end of file or on error. */
ssize_t getline(char **line, size_t *cap, FILE *f)
{
    if (!line || !cap || !f) {
        errno = EINVAL;
        return -1;
    }
    size_t len = 0;
    for (;;) {
        if (!*line || len + 2 > *cap) {
            size_t ncap = *cap < 128 ? 128 : *cap * 2;
            char *p = realloc(*line, ncap);
            if (!p) {
                errno = ENOMEM;
                return -1;
            }
            *line = p;
            *cap = ncap;
        }
        int c = getc(f);
        if (c == EOF) {
            if (len == 0 || ferror(f))
                return -1;
            break;
        }
        (*line)[len++] = (char)c;
        if (c == '\n')
            break;
    }
    (*line)[len] = '\0';
    return (ssize_t)len;
}

static bool env_name_ok(const char *name)
{
    if (!name || !*name || strchr(name, '=')) {
        errno = EINVAL;
        return false;
    }
    return true;
}

/* The CRT's copy (getenv) and the process's (GetEnvironmentVariable,
   children) both. An empty value: Windows has no empty variables in the
   CRT's copy, so getenv then finds none. */
int setenv(const char *name, const char *value, int overwrite)
{
    if (!env_name_ok(name))
        return -1;
    if (!overwrite && getenv(name))
        return 0;
    if (!value)
        value = "";
    if (*value && _putenv_s(name, value) != 0) {
        errno = ENOMEM;
        return -1;
    }
    if (!*value)
        _putenv_s(name, "");
    SetEnvironmentVariableA(name, value);
    return 0;
}

int unsetenv(const char *name)
{
    if (!env_name_ok(name))
        return -1;
    _putenv_s(name, ""); /* an empty value removes it from the CRT's copy */
    SetEnvironmentVariableA(name, NULL);
    return 0;
}

/* POSIX mkdtemp: the trailing "XXXXXX" of tmpl replaced by random letters
   and digits, the directory made (only the creator's ACL applies). */
char *mkdtemp(char *tmpl)
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = tmpl ? strlen(tmpl) : 0;
    if (n < 6 || strcmp(tmpl + n - 6, "XXXXXX") != 0) {
        errno = EINVAL;
        return NULL;
    }
    for (int tries = 0; tries < 100; tries++) {
        unsigned char r[6];
        if (!RtlGenRandom(r, sizeof r)) {
            ULONGLONG t = GetTickCount64() ^ ((ULONGLONG)GetCurrentProcessId() << 20) ^ (ULONGLONG)tries * 0x9E3779B97F4A7C15ull;
            memcpy(r, &t, sizeof r);
        }
        for (int i = 0; i < 6; i++)
            tmpl[n - 6 + i] = chars[r[i] % (sizeof chars - 1)];
        if (_mkdir(tmpl) == 0)
            return tmpl;
        if (errno != EEXIST)
            return NULL;
    }
    errno = EEXIST;
    return NULL;
}

static int errno_of(DWORD e)
{
    switch (e) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_DRIVE:
    case ERROR_BAD_NETPATH:
    case ERROR_BAD_PATHNAME:
    case ERROR_MOD_NOT_FOUND:
        return ENOENT;
    case ERROR_ACCESS_DENIED:
    case ERROR_SHARING_VIOLATION:
    case ERROR_LOCK_VIOLATION:
    case ERROR_USER_MAPPED_FILE:
        return EACCES;
    case ERROR_FILE_EXISTS:
    case ERROR_ALREADY_EXISTS:
        return EEXIST;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_COMMITMENT_LIMIT:
        return ENOMEM;
    case ERROR_TOO_MANY_OPEN_FILES:
    case ERROR_NO_SYSTEM_RESOURCES:
        return EMFILE;
    case ERROR_BAD_EXE_FORMAT:
    case ERROR_EXE_MACHINE_TYPE_MISMATCH:
    case ERROR_BAD_FORMAT:
        return ENOEXEC;
    case ERROR_BROKEN_PIPE:
    case ERROR_NO_DATA:
        return EPIPE;
    case ERROR_DIRECTORY:
        return ENOTDIR;
    case ERROR_DIR_NOT_EMPTY:
        return ENOTEMPTY;
    case ERROR_FILENAME_EXCED_RANGE:
        return ENAMETOOLONG;
    case ERROR_INVALID_HANDLE:
        return EBADF;
    case ERROR_INVALID_PARAMETER:
        return EINVAL;
    default:
        return EIO;
    }
}

static void set_errno_win(void)
{
    errno = errno_of(GetLastError());
}

/* FormatMessage of e, without the trailing newline. */
static void win_message(DWORD e, char *out, size_t cap)
{
    if (!out || cap == 0)
        return;
    char buf[512];
    DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, e,
                             MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT), buf, sizeof buf, NULL);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    if (n == 0)
        snprintf(out, cap, "Windows error %lu", (unsigned long)e);
    else
        snprintf(out, cap, "%.*s (error %lu)", (int)n, buf, (unsigned long)e);
}

/* CP_ACP (the code page of the ...A functions used elsewhere) to UTF-16. */
static wchar_t *widen(const char *s)
{
    int n = MultiByteToWideChar(CP_ACP, 0, s, -1, NULL, 0);
    if (n <= 0) {
        errno = EINVAL;
        return NULL;
    }
    wchar_t *w = malloc((size_t)n * sizeof *w);
    if (!w) {
        errno = ENOMEM;
        return NULL;
    }
    MultiByteToWideChar(CP_ACP, 0, s, -1, w, n);
    return w;
}

typedef struct {
    wchar_t *p;
    size_t len, cap;
    bool oom;
} wbuf_t;

static void wb_putn(wbuf_t *b, const wchar_t *s, size_t n)
{
    if (b->oom)
        return;
    if (pd_grow(&b->p, &b->cap, b->len + n + 2, sizeof *b->p)) {
        b->oom = true;
        return;
    }
    memcpy(b->p + b->len, s, n * sizeof *s);
    b->len += n;
    b->p[b->len] = 0;
}

static void wb_putc(wbuf_t *b, wchar_t c)
{
    wb_putn(b, &c, 1);
}

static void wb_puts(wbuf_t *b, const wchar_t *s)
{
    wb_putn(b, s, wcslen(s));
}

/* Appends one argument with the rules of CommandLineToArgvW and the CRT:
   quoted when empty or holding a blank or a quote; backslashes doubled
   before a quote (and before the closing quote), a quote escaped. */
static void wb_put_arg(wbuf_t *b, const wchar_t *arg)
{
    if (*arg && !wcspbrk(arg, L" \t\n\v\"")) {
        wb_puts(b, arg);
        return;
    }
    wb_putc(b, L'"');
    for (const wchar_t *p = arg;; p++) {
        size_t bs = 0;
        while (*p == L'\\') {
            p++;
            bs++;
        }
        if (*p == 0) {
            for (size_t i = 0; i < 2 * bs; i++)
                wb_putc(b, L'\\');
            break;
        }
        size_t n = *p == L'"' ? 2 * bs + 1 : bs;
        for (size_t i = 0; i < n; i++)
            wb_putc(b, L'\\');
        wb_putc(b, *p);
    }
    wb_putc(b, L'"');
}

/* argv[0] is parsed without escapes (up to the next quote when it starts
   with one, else up to a blank): quote it as it is. */
static void wb_put_arg0(wbuf_t *b, const wchar_t *arg)
{
    if (*arg && !wcspbrk(arg, L" \t"))
        wb_puts(b, arg);
    else {
        wb_putc(b, L'"');
        wb_puts(b, arg);
        wb_putc(b, L'"');
    }
}

static bool is_cmd_exe(const char *path)
{
    const char *base = path;
    for (const char *p = path; *p; p++)
        if (*p == '/' || *p == '\\' || *p == ':')
            base = p + 1;
    return _stricmp(base, "cmd.exe") == 0 || _stricmp(base, "cmd") == 0;
}

/* The command line of argv. For cmd.exe, what follows /c (or /k) is one
   command line that cmd parses itself: it is passed verbatim (arguments
   after it joined by spaces), wrapped in one pair of quotes when /s came
   before it (cmd /s strips exactly the first and the last quote), so that
   {"cmd.exe", "/d", "/s", "/c", cmd} becomes  cmd.exe /d /s /c "<cmd>". */
static wchar_t *build_cmdline(char *const argv[])
{
    wbuf_t b = {0};
    int shell_at = -1;
    bool slash_s = false;
    if (is_cmd_exe(argv[0])) {
        for (int i = 1; argv[i]; i++) {
            if (_stricmp(argv[i], "/c") == 0 || _stricmp(argv[i], "/k") == 0) {
                shell_at = i + 1;
                break;
            }
            if (_stricmp(argv[i], "/s") == 0)
                slash_s = true;
        }
    }
    for (int i = 0; argv[i]; i++) {
        wchar_t *w = widen(argv[i]);
        if (!w) {
            free(b.p);
            return NULL;
        }
        if (i == 0)
            wb_put_arg0(&b, w);
        else if (shell_at > 0 && i >= shell_at) {
            wb_putc(&b, L' ');
            if (i == shell_at && slash_s)
                wb_putc(&b, L'"');
            wb_puts(&b, w);
        } else {
            wb_putc(&b, L' ');
            wb_put_arg(&b, w);
        }
        free(w);
    }
    if (shell_at > 0 && argv[shell_at] && slash_s)
        wb_putc(&b, L'"');
    if (b.oom || !b.p) {
        free(b.p);
        errno = ENOMEM;
        return NULL;
    }
    return b.p;
}

/* A copy of this environment with the variable of assign ("NAME=value",
   may be NULL) and PLAYDOH_PIPES removed, then assign and extra (may be
   NULL) added. Names compare without case, as Windows does. */
static wchar_t *build_env(const char *assign, const char *extra)
{
    wchar_t *wa = NULL, *wx = NULL;
    size_t alen = 0;
    if (assign) {
        const char *eq = strchr(assign, '=');
        if (!eq || eq == assign) {
            errno = EINVAL;
            return NULL;
        }
        if (!(wa = widen(assign)))
            return NULL;
        alen = (size_t)(wcschr(wa, L'=') - wa);
    }
    if (extra && !(wx = widen(extra))) {
        free(wa);
        return NULL;
    }
    wchar_t *envs = GetEnvironmentStringsW();
    wbuf_t b = {0};
    const size_t plen = sizeof PIPES_VAR - 1;
    for (wchar_t *e = envs; e && *e; e += wcslen(e) + 1) {
        const wchar_t *eq = wcschr(e + 1, L'='); /* "=C:=C:\dir" names start with '=' */
        size_t nlen = eq ? (size_t)(eq - e) : wcslen(e);
        if (wa && nlen == alen && _wcsnicmp(e, wa, alen) == 0)
            continue;
        if (nlen == plen && _wcsnicmp(e, L"" PIPES_VAR, plen) == 0)
            continue;
        wb_putn(&b, e, wcslen(e) + 1);
    }
    if (envs)
        FreeEnvironmentStringsW(envs);
    if (wa)
        wb_putn(&b, wa, wcslen(wa) + 1);
    if (wx)
        wb_putn(&b, wx, wcslen(wx) + 1);
    wb_putn(&b, L"", 1);
    if (b.len == 1) /* an empty block still needs two NULs */
        wb_putn(&b, L"", 1);
    free(wa);
    free(wx);
    if (b.oom) {
        free(b.p);
        errno = ENOMEM;
        return NULL;
    }
    return b.p;
}

static ULONGLONG ft_u64(FILETIME ft)
{
    return ((ULONGLONG)ft.dwHighDateTime << 32) | ft.dwLowDateTime;
}

/* ---- the machine -------------------------------------------------------- */

const char *pd_plat_name(void)
{
    return "windows-x86_64";
}

int pd_plat_ncpu(void)
{
    DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
    if (n == 0) {
        SYSTEM_INFO si;
        GetSystemInfo(&si);
        n = si.dwNumberOfProcessors;
    }
    return n > 0 ? (int)n : 1;
}

int pd_plat_getpid(void)
{
    return (int)GetCurrentProcessId();
}

int pd_plat_self_exe(char *out, size_t cap)
{
    if (!out || cap == 0)
        return PD_EIO;
    DWORD dcap = cap > MAXDWORD ? MAXDWORD : (DWORD)cap;
    DWORD n = GetModuleFileNameA(NULL, out, dcap);
    if (n == 0 || n >= dcap) {
        out[0] = '\0';
        return PD_EIO;
    }
    return 0;
}

bool pd_plat_dirsep(char c) { return c == '/' || c == '\\'; }

int pd_plat_hostname(char *out, size_t cap)
{
    if (!out || cap == 0 || cap > MAXDWORD)
        return -1;
    DWORD n = (DWORD)cap;
    if (!GetComputerNameExA(ComputerNameDnsHostname, out, &n) || n == 0) {
        n = (DWORD)cap;
        if (!GetComputerNameA(out, &n))
            return -1;
    }
    out[cap - 1] = '\0';
    return 0;
}

static bool wsa_ready(void);

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
    snprintf(why, cap, "%s", gai_strerrorA(rc));
    return PD_EINVAL;
}

int pd_plat_route_addr(const char *host, const char *port, char *out, size_t cap)
{
    if (!wsa_ready())
        return PD_EINVAL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
        return PD_EINVAL;
    int rc = PD_EINVAL;
    for (struct addrinfo *a = ai; a && rc; a = a->ai_next) {
        SOCKET s = WSASocketW(a->ai_family, SOCK_DGRAM, IPPROTO_UDP, NULL, 0, WSA_FLAG_NO_HANDLE_INHERIT);
        if (s == INVALID_SOCKET)
            s = socket(a->ai_family, SOCK_DGRAM, IPPROTO_UDP);
        if (s == INVALID_SOCKET)
            continue;
        struct sockaddr_storage local;
        int len = sizeof local;
        /* A UDP connect sends nothing: it only picks the route. */
        if (connect(s, a->ai_addr, (int)a->ai_addrlen) == 0 &&
            getsockname(s, (struct sockaddr *)&local, &len) == 0) {
            void *src = local.ss_family == AF_INET ? (void *)&((struct sockaddr_in *)&local)->sin_addr
                                                   : (void *)&((struct sockaddr_in6 *)&local)->sin6_addr;
            char text[INET6_ADDRSTRLEN];
            if (inet_ntop(local.ss_family, src, text, sizeof text)) {
                snprintf(out, cap, local.ss_family == AF_INET6 ? "[%s]" : "%s", text);
                rc = 0;
            }
        }
        closesocket(s);
    }
    freeaddrinfo(ai);
    return rc;
}

/* ---- files -------------------------------------------------------------- */

int pd_plat_mkdir(const char *path, int mode)
{
    (void)mode;
    return _mkdir(path);
}

int pd_plat_rename(const char *from, const char *to)
{
    /* A scanner or indexer holding the target open for a moment makes
       MoveFileEx fail with a sharing error: retry briefly. */
    for (int i = 0;; i++) {
        if (MoveFileExA(from, to, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH))
            return 0;
        DWORD e = GetLastError();
        if (i >= 4 || (e != ERROR_ACCESS_DENIED && e != ERROR_SHARING_VIOLATION)) {
            errno = errno_of(e);
            return -1;
        }
        Sleep(10u << i);
    }
}

int pd_plat_dir_enter_check(const char *dir)
{
    DWORD a = GetFileAttributesA(dir);
    if (a == INVALID_FILE_ATTRIBUTES) {
        errno = errno_of(GetLastError());
        return -1;
    }
    if (!(a & FILE_ATTRIBUTE_DIRECTORY)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* Removes path's tree; depth bounds the recursion. */
static int s_remove_tree(const char *path, int depth)
{
    DWORD a = GetFileAttributesA(path);
    if (a == INVALID_FILE_ATTRIBUTES)
        return GetLastError() == ERROR_FILE_NOT_FOUND || GetLastError() == ERROR_PATH_NOT_FOUND
                   ? 0 : -1;
    if (a & FILE_ATTRIBUTE_READONLY)
        SetFileAttributesA(path, a & ~(DWORD)FILE_ATTRIBUTE_READONLY);
    if (!(a & FILE_ATTRIBUTE_DIRECTORY))
        return DeleteFileA(path) ? 0 : -1;
    int rc = 0;
    /* A junction or a directory link is removed itself, never entered. */
    if (!(a & FILE_ATTRIBUTE_REPARSE_POINT) && depth < 64) {
        char pat[MAX_PATH + 4];
        if (snprintf(pat, sizeof pat, "%s\\*", path) >= (int)sizeof pat)
            return -1;
        WIN32_FIND_DATAA fd;
        HANDLE h = FindFirstFileA(pat, &fd);
        if (h != INVALID_HANDLE_VALUE) {
            do {
                if (strcmp(fd.cFileName, ".") == 0 || strcmp(fd.cFileName, "..") == 0)
                    continue;
                char sub[MAX_PATH + 4];
                if (snprintf(sub, sizeof sub, "%s\\%s", path, fd.cFileName) >= (int)sizeof sub ||
                    s_remove_tree(sub, depth + 1) != 0)
                    rc = -1;
            } while (FindNextFileA(h, &fd));
            FindClose(h);
        }
    }
    if (!RemoveDirectoryA(path))
        rc = -1;
    return rc;
}

int pd_plat_remove_tree(const char *path)
{
    int rc = s_remove_tree(path, 0);
    if (rc)
        errno = errno_of(GetLastError());
    return rc;
}

int pd_plat_getcwd(char *out, size_t cap)
{
    if (cap > INT_MAX)
        cap = INT_MAX;
    return _getcwd(out, (int)cap) ? 0 : -1;
}

int64_t pd_plat_mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtime * 1000000000;
}

static const char empty_map = 0;

const void *pd_plat_map_file(const char *path, size_t *len)
{
    HANDLE f = CreateFileA(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                           NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    if (f == INVALID_HANDLE_VALUE) {
        set_errno_win();
        return NULL;
    }
    LARGE_INTEGER size;
    if (!GetFileSizeEx(f, &size)) {
        set_errno_win();
        CloseHandle(f);
        return NULL;
    }
    if (size.QuadPart == 0) {
        CloseHandle(f);
        if (len)
            *len = 0;
        return &empty_map;
    }
    HANDLE m = CreateFileMappingA(f, NULL, PAGE_READONLY, 0, 0, NULL);
    DWORD e = GetLastError();
    CloseHandle(f);
    if (!m) {
        errno = errno_of(e);
        return NULL;
    }
    const void *p = MapViewOfFile(m, FILE_MAP_READ, 0, 0, 0);
    e = GetLastError();
    CloseHandle(m); /* the view keeps the mapping */
    if (!p) {
        errno = errno_of(e);
        return NULL;
    }
    if (len)
        *len = (size_t)size.QuadPart;
    return p;
}

void pd_plat_unmap(const void *addr, size_t len)
{
    (void)len;
    if (addr && addr != &empty_map)
        UnmapViewOfFile(addr);
}

int pd_plat_dir(pd_dir_t which, char *out, size_t cap)
{
    const char *var, *sub;
    switch (which) {
    case PD_DIR_CONFIG: var = "APPDATA", sub = "\\playdoh"; break;
    case PD_DIR_CACHE: var = "LOCALAPPDATA", sub = "\\playdoh\\cache"; break;
    case PD_DIR_STATE: var = "LOCALAPPDATA", sub = "\\playdoh"; break;
    case PD_DIR_RUNTIME: var = "LOCALAPPDATA", sub = "\\playdoh\\run"; break;
    default:
        if (out && cap)
            snprintf(out, cap, "unknown directory kind %d", (int)which);
        return PD_EIO;
    }
    char base[MAX_PATH * 2];
    DWORD n = GetEnvironmentVariableA(var, base, sizeof base);
    if (n == 0 || n >= sizeof base) {
        if (out && cap)
            snprintf(out, cap, n ? "%%%s%% is too long" : "%%%s%% is not set", var);
        return PD_EIO;
    }
    while (n > 1 && (base[n - 1] == '\\' || base[n - 1] == '/'))
        base[--n] = '\0';
    if (!out || cap == 0)
        return PD_EIO;
    int w = snprintf(out, cap, "%s%s", base, sub);
    if (w < 0 || (size_t)w >= cap) {
        snprintf(out, cap, "%%%s%%\\playdoh does not fit", var);
        return PD_EIO;
    }
    return 0;
}

bool pd_plat_mode_private(const struct stat *st)
{
    /* The CRT's mode bits repeat the owner's for group and other: the
       directory's ACL is what keeps others out on Windows. */
    (void)st;
    return true;
}

void pd_plat_username(char *out, size_t cap)
{
    char name[256 + 1];
    DWORD n = sizeof name;
    if (GetUserNameA(name, &n) && name[0])
        snprintf(out, cap, "%s", name);
    else
        snprintf(out, cap, "user");
}

bool pd_plat_executable(const char *path)
{
    DWORD a = GetFileAttributesA(path);
    if (a == INVALID_FILE_ATTRIBUTES || (a & FILE_ATTRIBUTE_DIRECTORY))
        return false;
    /* Windows runs by extension: those of PATHEXT. */
    const char *dot = strrchr(path, '.');
    if (!dot || strpbrk(dot, "/\\"))
        return false;
    char exts[1024];
    DWORD n = GetEnvironmentVariableA("PATHEXT", exts, sizeof exts);
    if (n == 0 || n >= sizeof exts)
        snprintf(exts, sizeof exts, ".COM;.EXE;.BAT;.CMD");
    size_t dl = strlen(dot);
    for (char *e = exts; *e;) {
        char *end = strchr(e, ';');
        size_t el = end ? (size_t)(end - e) : strlen(e);
        if (el == dl && _strnicmp(e, dot, dl) == 0)
            return true;
        if (!end)
            break;
        e = end + 1;
    }
    return false;
}

int pd_plat_term_width(void *f)
{
    if (!f)
        return 80;
    HANDLE h = (HANDLE)_get_osfhandle(_fileno((FILE *)f));
    CONSOLE_SCREEN_BUFFER_INFO ci;
    if (h != INVALID_HANDLE_VALUE && GetConsoleScreenBufferInfo(h, &ci)) {
        int w = ci.srWindow.Right - ci.srWindow.Left + 1;
        if (w > 0)
            return w;
    }
    return 80;
}

/* ---- loading modules ---------------------------------------------------- */

void *pd_plat_dlopen(const char *path, char *err, size_t cap)
{
    if (err && cap)
        err[0] = '\0';
    size_t n = strlen(path);
    char *p = malloc(n + 1);
    if (!p) {
        if (err && cap)
            snprintf(err, cap, "%s: out of memory", path);
        return NULL;
    }
    for (size_t i = 0; i <= n; i++)
        p[i] = path[i] == '/' ? '\\' : path[i];
    bool absolute = (n >= 3 && p[1] == ':' && p[2] == '\\') || (p[0] == '\\' && p[1] == '\\');
    DWORD old;
    bool restore = SetThreadErrorMode(SEM_FAILCRITICALERRORS | SEM_NOOPENFILEERRORBOX, &old);
    HMODULE h = absolute ? LoadLibraryExA(p, NULL, LOAD_WITH_ALTERED_SEARCH_PATH) : LoadLibraryA(p);
    DWORD e = GetLastError();
    if (restore)
        SetThreadErrorMode(old, NULL);
    free(p);
    if (!h && err && cap) {
        char msg[600];
        win_message(e, msg, sizeof msg);
        snprintf(err, cap, "%s: %s", path, msg);
    }
    return (void *)h;
}

void *pd_plat_dlsym(void *handle, const char *name)
{
    FARPROC f = GetProcAddress((HMODULE)handle, name);
    void *p;
    memcpy(&p, &f, sizeof p);
    return p;
}

void pd_plat_dlclose(void *handle)
{
    if (handle)
        FreeLibrary((HMODULE)handle);
}

void *pd_plat_dlopen_system(const char *path, char *err, size_t cap)
{
    char msg[600];
    void *h = pd_plat_dlopen(path, msg, sizeof msg);
    if (!h) {
        /* pd_plat_dlopen says "path: reason": keep the reason. */
        size_t n = strlen(path);
        const char *reason = strncmp(msg, path, n) == 0 && msg[n] == ':' ? msg + n + 2 : msg;
        if (err && cap)
            snprintf(err, cap, "%s", reason);
        return NULL;
    }
    /* Pinned: stays loaded whatever FreeLibrary is called later. */
    HMODULE pinned;
    GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_PIN,
                       (LPCWSTR)h, &pinned);
    return h;
}

void *pd_plat_dlsym_any(void *handle, const char *name)
{
    /* GetProcAddress sees the module's exports (forwarded ones included),
       which is what a system library offers. */
    return pd_plat_dlsym(handle, name);
}

const char *pd_plat_cuda_driver(void) { return "nvcuda.dll"; }
const char *pd_plat_cuda_libdir(void) { return "bin"; }
const char *pd_plat_nvrtc_file(void) { return NULL; }

const char *const *pd_plat_nvrtc_names(void)
{
    /* The toolkit's bin folder is on PATH after its installer has run. */
    static const char *const names[] = {"nvrtc64_130_0.dll", "nvrtc64_120_0.dll",
                                        "nvrtc64_112_0.dll", NULL};
    return names;
}

static INIT_ONCE link_once = INIT_ONCE_STATIC_INIT;
static char link_lib[MAX_PATH + 32];

static BOOL CALLBACK link_init(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    (void)once, (void)param, (void)ctx;
    char exe[MAX_PATH];
    const char *lib = "libplaydoh-worker.exe.a";
    if (pd_plat_self_exe(exe, sizeof exe) == 0) {
        char *slash = strrchr(exe, '\\'), *fwd = strrchr(exe, '/');
        if (fwd && (!slash || fwd > slash))
            slash = fwd;
        if (slash) {
            slash[1] = '\0';
            snprintf(link_lib, sizeof link_lib, "%s%s", exe, lib);
            return TRUE;
        }
    }
    snprintf(link_lib, sizeof link_lib, "%s", lib);
    return TRUE;
}

const char *pd_plat_default_cc(void) { return "gcc"; }

const char *pd_plat_module_implib(void)
{
    InitOnceExecuteOnce(&link_once, link_init, NULL, NULL);
    return link_lib;
}

/* ---- shared state: sockets, children ------------------------------------ */

static INIT_ONCE wsa_once = INIT_ONCE_STATIC_INIT;
static int wsa_error;

static BOOL CALLBACK wsa_init(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    (void)once, (void)param, (void)ctx;
    WSADATA d;
    wsa_error = WSAStartup(MAKEWORD(2, 2), &d);
    return TRUE;
}

static bool wsa_ready(void)
{
    InitOnceExecuteOnce(&wsa_once, wsa_init, NULL, NULL);
    return wsa_error == 0;
}

/* Descriptors handed out: relay sockets (from_child) and CRT fds
   (to_child). Guarded by g_lock. */
typedef struct {
    intptr_t value;
    bool sock;
} fdrec_t;

typedef struct {
    int pid;
    unsigned long long serial;
    HANDLE proc;
    HANDLE job;   /* NULL when the child could not be put in one */
    HANDLE relay; /* the relay thread, detached when reaped */
    bool suspended;
} child_t;

static SRWLOCK g_lock = SRWLOCK_INIT;
static fdrec_t *g_fds;
static size_t g_nfds, g_capfds;
static child_t *g_kids;
static size_t g_nkids, g_capkids;
static unsigned long long g_serial;

/* Serialises every CreateProcess of this file that inherits handles. */
static SRWLOCK g_spawn_lock = SRWLOCK_INIT;
static volatile LONG g_no_handle_list; /* set once the attribute failed */

static fdrec_t *fd_find(intptr_t value) /* g_lock held */
{
    for (size_t i = 0; i < g_nfds; i++)
        if (g_fds[i].value == value)
            return &g_fds[i];
    return NULL;
}

static bool fd_add(intptr_t value, bool sock) /* g_lock held exclusive */
{
    if (pd_grow(&g_fds, &g_capfds, g_nfds + 1, sizeof *g_fds))
        return false;
    g_fds[g_nfds++] = (fdrec_t){value, sock};
    return true;
}

static void fd_remove(fdrec_t *r) /* g_lock held exclusive */
{
    *r = g_fds[--g_nfds];
}

static child_t *kid_find(int pid) /* g_lock held */
{
    for (size_t i = 0; i < g_nkids; i++)
        if (g_kids[i].pid == pid)
            return &g_kids[i];
    return NULL;
}

static SOCKET new_socket(void)
{
    SOCKET s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET && WSAGetLastError() == WSAEINVAL)
        s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (s != INVALID_SOCKET)
        SetHandleInformation((HANDLE)s, HANDLE_FLAG_INHERIT, 0);
    return s;
}

static int errno_of_wsa(int e)
{
    switch (e) {
    case WSAEWOULDBLOCK: return EAGAIN;
    case WSAEMFILE: return EMFILE;
    case WSAENOBUFS: return ENOMEM;
    case WSAENOTSOCK: return EBADF;
    case WSAECONNRESET: return ECONNRESET;
    case WSAEINTR: return EINTR;
    default: return EIO;
    }
}

/* A connected loopback pair: *rd for the parent, *wr for the relay. */
static int socket_pair_once(SOCKET *rd, SOCKET *wr)
{
    SOCKET l = INVALID_SOCKET, c = INVALID_SOCKET, a = INVALID_SOCKET;
    struct sockaddr_in addr = {0}, mine = {0}, peer = {0};
    int alen = sizeof addr, mlen = sizeof mine, plen = sizeof peer;
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if ((l = new_socket()) == INVALID_SOCKET || bind(l, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(l, 1) != 0 || getsockname(l, (struct sockaddr *)&addr, &alen) != 0 ||
        (c = new_socket()) == INVALID_SOCKET ||
        connect(c, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockname(c, (struct sockaddr *)&mine, &mlen) != 0)
        goto fail;
    /* Accept until the peer is our own connect (anyone on this machine
       could connect to the port in between). */
    for (int tries = 0; tries < 8; tries++) {
        plen = sizeof peer;
        a = accept(l, (struct sockaddr *)&peer, &plen);
        if (a == INVALID_SOCKET)
            goto fail;
        if (peer.sin_port == mine.sin_port && peer.sin_addr.s_addr == mine.sin_addr.s_addr)
            break;
        closesocket(a);
        a = INVALID_SOCKET;
    }
    if (a == INVALID_SOCKET) {
        WSASetLastError(WSAECONNREFUSED);
        goto fail;
    }
    SetHandleInformation((HANDLE)a, HANDLE_FLAG_INHERIT, 0);
    closesocket(l);
    u_long on = 1;
    BOOL nodelay = TRUE;
    setsockopt(a, IPPROTO_TCP, TCP_NODELAY, (const char *)&nodelay, sizeof nodelay);
    if (ioctlsocket(c, FIONBIO, &on) != 0) {
        l = INVALID_SOCKET;
        goto fail;
    }
    *rd = c;
    *wr = a;
    return 0;
fail:;
    int e = WSAGetLastError();
    if (l != INVALID_SOCKET)
        closesocket(l);
    if (c != INVALID_SOCKET)
        closesocket(c);
    if (a != INVALID_SOCKET)
        closesocket(a);
    errno = errno_of_wsa(e);
    return -1;
}

/* A pair whose read end is no live descriptor value, recorded as a socket
   in g_fds. */
static int socket_pair(SOCKET *rd, SOCKET *wr)
{
    if (!wsa_ready()) {
        errno = EIO;
        return -1;
    }
    SOCKET spare[8][2];
    int nspare = 0, rc = -1;
    for (;;) {
        SOCKET r, w;
        if (socket_pair_once(&r, &w) != 0)
            break;
        AcquireSRWLockExclusive(&g_lock);
        bool clash = (uintptr_t)r > INT_MAX || fd_find((intptr_t)r) != NULL;
        bool added = !clash && fd_add((intptr_t)r, true);
        ReleaseSRWLockExclusive(&g_lock);
        if (added) {
            *rd = r;
            *wr = w;
            rc = 0;
            break;
        }
        if (!clash || nspare == 8) {
            closesocket(r);
            closesocket(w);
            errno = clash ? EMFILE : ENOMEM;
            break;
        }
        spare[nspare][0] = r; /* kept open so the next pair gets another value */
        spare[nspare][1] = w;
        nspare++;
    }
    for (int i = 0; i < nspare; i++) {
        closesocket(spare[i][0]);
        closesocket(spare[i][1]);
    }
    return rc;
}

static void socket_forget(SOCKET s)
{
    AcquireSRWLockExclusive(&g_lock);
    fdrec_t *r = fd_find((intptr_t)s);
    if (r && r->sock)
        fd_remove(r);
    ReleaseSRWLockExclusive(&g_lock);
}

/* A CRT descriptor for the pipe handle h (owned by it from then on), whose
   number is no live socket value; recorded in g_fds. -1 (h closed) on
   failure. */
static int crt_fd_for(HANDLE h, int flags)
{
    int fd = _open_osfhandle((intptr_t)h, flags | _O_BINARY | _O_NOINHERIT);
    if (fd < 0) {
        CloseHandle(h);
        return -1;
    }
    _setmode(fd, _O_BINARY);
    int spare[8], nspare = 0;
    AcquireSRWLockExclusive(&g_lock);
    while (fd >= 0 && fd_find(fd)) {
        if (nspare == 8) {
            _close(fd);
            fd = -1;
            errno = EMFILE;
            break;
        }
        spare[nspare++] = fd;
        fd = _dup(fd);
    }
    if (fd >= 0 && !fd_add(fd, false)) {
        _close(fd);
        fd = -1;
        errno = ENOMEM;
    }
    ReleaseSRWLockExclusive(&g_lock);
    for (int i = 0; i < nspare; i++)
        _close(spare[i]);
    return fd;
}

static bool set_inherit(HANDLE h, bool on)
{
    return SetHandleInformation(h, HANDLE_FLAG_INHERIT, on ? HANDLE_FLAG_INHERIT : 0);
}

static HANDLE open_nul(bool write)
{
    return CreateFileA("NUL", write ? GENERIC_WRITE : GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE,
                       NULL, OPEN_EXISTING, 0, NULL);
}

/* A job that kills its processes when its last handle closes and lets no
   crash open a dialog. NULL when the system has none. */
static HANDLE new_job(void)
{
    HANDLE job = CreateJobObjectA(NULL, NULL);
    if (!job)
        return NULL;
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION li;
    memset(&li, 0, sizeof li);
    li.BasicLimitInformation.LimitFlags =
        JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION;
    if (!SetInformationJobObject(job, JobObjectExtendedLimitInformation, &li, sizeof li)) {
        li.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        if (!SetInformationJobObject(job, JobObjectExtendedLimitInformation, &li, sizeof li)) {
            CloseHandle(job);
            return NULL;
        }
    }
    return job;
}

/* CreateProcessW, suspended, inheriting only handles[0..n) (all already
   inheritable) and using them as std_in/out/err. g_spawn_lock held. */
static BOOL create_process(const wchar_t *app, wchar_t *cmd, wchar_t *env, const wchar_t *cwd,
                           DWORD flags, HANDLE std_in, HANDLE std_out, HANDLE std_err, HANDLE *handles,
                           size_t n, PROCESS_INFORMATION *pi)
{
    STARTUPINFOEXW si;
    memset(&si, 0, sizeof si);
    si.StartupInfo.cb = sizeof si.StartupInfo;
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    si.StartupInfo.hStdInput = std_in;
    si.StartupInfo.hStdOutput = std_out;
    si.StartupInfo.hStdError = std_err;
    /* No CREATE_NO_WINDOW: a child of a process without a console (a
       service) then gets a console of its own that its console
       grandchildren share, where CREATE_NO_WINDOW would make each of them
       open one (and, under Wine, that console's host keeps the child's
       pipes open until the grandchild ends). */
    flags |= CREATE_SUSPENDED;
    if (!g_no_handle_list) {
        SIZE_T size = 0;
        InitializeProcThreadAttributeList(NULL, 1, 0, &size);
        LPPROC_THREAD_ATTRIBUTE_LIST list = size ? malloc(size) : NULL;
        if (!list) {
            SetLastError(ERROR_NOT_ENOUGH_MEMORY);
            return FALSE;
        }
        bool inited = InitializeProcThreadAttributeList(list, 1, 0, &size);
        if (inited && UpdateProcThreadAttribute(list, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, handles,
                                                n * sizeof *handles, NULL, NULL)) {
            si.StartupInfo.cb = sizeof si;
            si.lpAttributeList = list;
            BOOL ok = CreateProcessW(app, cmd, NULL, NULL, TRUE, flags | EXTENDED_STARTUPINFO_PRESENT, env,
                                     cwd, &si.StartupInfo, pi);
            DWORD e = GetLastError();
            DeleteProcThreadAttributeList(list);
            free(list);
            if (ok)
                return TRUE;
            if (e != ERROR_INVALID_PARAMETER && e != ERROR_NOT_SUPPORTED && e != ERROR_CALL_NOT_IMPLEMENTED) {
                SetLastError(e);
                return FALSE;
            }
            si.StartupInfo.cb = sizeof si.StartupInfo;
            si.lpAttributeList = NULL;
        } else {
            if (inited)
                DeleteProcThreadAttributeList(list);
            free(list);
        }
        /* The attribute is refused here: inherit without it (the spawn lock
           keeps our other children from these handles). Remembered once
           that works. */
        BOOL ok = CreateProcessW(app, cmd, NULL, NULL, TRUE, flags, env, cwd, &si.StartupInfo, pi);
        if (ok)
            InterlockedExchange(&g_no_handle_list, 1);
        return ok;
    }
    return CreateProcessW(app, cmd, NULL, NULL, TRUE, flags, env, cwd, &si.StartupInfo, pi);
}

/* ---- children ----------------------------------------------------------- */

typedef struct {
    HANDLE pipe;
    SOCKET sock;
} relay_t;

static unsigned __stdcall relay_main(void *arg)
{
    relay_t *r = arg;
    char *buf = malloc(PIPE_BUFSZ);
    for (;;) {
        DWORD got = 0;
        if (!buf || !ReadFile(r->pipe, buf, PIPE_BUFSZ, &got, NULL))
            break; /* ERROR_BROKEN_PIPE: the child's end is closed */
        const char *p = buf;
        while (got > 0) {
            int sent = send(r->sock, p, (int)got, 0);
            if (sent <= 0)
                goto done; /* the reader is gone: drop the pipe too */
            p += sent;
            got -= (DWORD)sent;
        }
    }
done:
    free(buf);
    CloseHandle(r->pipe); /* a child still writing now gets a broken pipe */
    shutdown(r->sock, SD_SEND);
    closesocket(r->sock);
    free(r);
    return 0;
}

/* exe as given, or exe + ".exe" when only that exists. */
static wchar_t *app_name(const char *exe)
{
    wchar_t *w = widen(exe);
    if (!w)
        return NULL;
    DWORD a = GetFileAttributesW(w);
    if (a != INVALID_FILE_ATTRIBUTES && !(a & FILE_ATTRIBUTE_DIRECTORY))
        return w;
    size_t n = wcslen(w);
    wchar_t *x = realloc(w, (n + 5) * sizeof *x);
    if (!x)
        return w;
    wcscpy(x + n, L".exe");
    a = GetFileAttributesW(x);
    if (a != INVALID_FILE_ATTRIBUTES && !(a & FILE_ATTRIBUTE_DIRECTORY))
        return x;
    x[n] = 0;
    return x;
}

/* One function (about 140 lines) on purpose: a dozen handles, a socket pair,
   the job object and the relay thread change owner at fixed points, and the
   three cleanup labels at the end each know exactly which of them are still
   ours. Split, each piece would have to hand back that ownership state. */
int pd_plat_spawn(const char *exe, char *const argv[], const char *env_assign, int *to_child,
                  int *from_child)
{
    if (!exe || !argv || !argv[0] || !to_child || !from_child) {
        errno = EINVAL;
        return -1;
    }
    HANDLE c_in = NULL, p_out = NULL, p_in = NULL, c_out = NULL;
    HANDLE nul = INVALID_HANDLE_VALUE, errh = INVALID_HANDLE_VALUE, job = NULL;
    SOCKET s_rd = INVALID_SOCKET, s_wr = INVALID_SOCKET;
    wchar_t *app = NULL, *cmd = NULL, *env = NULL;
    relay_t *relay = NULL;
    PROCESS_INFORMATION pi = {0};
    int out_fd = -1, err = 0;

    if (socket_pair(&s_rd, &s_wr) != 0)
        return -1;
    if (!CreatePipe(&c_in, &p_out, NULL, PIPE_BUFSZ) || !CreatePipe(&p_in, &c_out, NULL, PIPE_BUFSZ))
        goto fail_win;
    if ((nul = open_nul(false)) == INVALID_HANDLE_VALUE)
        goto fail_win;
    HANDLE se = GetStdHandle(STD_ERROR_HANDLE);
    if (se == NULL || se == INVALID_HANDLE_VALUE ||
        !DuplicateHandle(GetCurrentProcess(), se, GetCurrentProcess(), &errh, 0, FALSE,
                         DUPLICATE_SAME_ACCESS))
        errh = open_nul(true);
    if (errh == INVALID_HANDLE_VALUE)
        goto fail_win;

    char pipes[64];
    snprintf(pipes, sizeof pipes, PIPES_VAR "=%llu,%llu", (unsigned long long)(uintptr_t)c_in,
             (unsigned long long)(uintptr_t)c_out);
    if (!(app = app_name(exe)) || !(cmd = build_cmdline(argv)) || !(env = build_env(env_assign, pipes)))
        goto fail;
    job = new_job();

    HANDLE inh[4] = {nul, errh, c_in, c_out};
    AcquireSRWLockExclusive(&g_spawn_lock);
    BOOL ok = set_inherit(nul, true) && set_inherit(errh, true) && set_inherit(c_in, true) &&
              set_inherit(c_out, true) &&
              create_process(app, cmd, env, NULL, CREATE_UNICODE_ENVIRONMENT | CREATE_NEW_PROCESS_GROUP,
                             nul, errh, errh, inh, 4, &pi);
    DWORD e = GetLastError();
    CloseHandle(c_in);
    CloseHandle(c_out);
    CloseHandle(nul);
    CloseHandle(errh);
    ReleaseSRWLockExclusive(&g_spawn_lock);
    c_in = c_out = NULL;
    nul = errh = INVALID_HANDLE_VALUE;
    if (!ok) {
        SetLastError(e);
        goto fail_win;
    }
    if (job && !AssignProcessToJobObject(job, pi.hProcess)) {
        CloseHandle(job); /* nested jobs refused (before Windows 8) */
        job = NULL;
    }

    relay = malloc(sizeof *relay);
    uintptr_t th = 0;
    if (relay) {
        relay->pipe = p_in;
        relay->sock = s_wr;
        th = _beginthreadex(NULL, 0, relay_main, relay, 0, NULL);
    }
    if (!th) {
        free(relay);
        err = ENOMEM;
        goto fail_started;
    }
    p_in = NULL; /* the relay owns them now */
    s_wr = INVALID_SOCKET;

    if ((out_fd = crt_fd_for(p_out, _O_WRONLY)) < 0) {
        p_out = NULL;
        err = errno ? errno : EMFILE;
        TerminateProcess(pi.hProcess, PD_STATUS_KILLED);
        ResumeThread(pi.hThread);
        CloseHandle((HANDLE)th);
        goto fail_started_relay;
    }
    p_out = NULL;

    AcquireSRWLockExclusive(&g_lock);
    pd_grow(&g_kids, &g_capkids, g_nkids + 1, sizeof *g_kids); /* checked below */
    bool stored = g_nkids < g_capkids;
    if (stored)
        g_kids[g_nkids++] = (child_t){(int)pi.dwProcessId, ++g_serial, pi.hProcess, job, (HANDLE)th, false};
    ReleaseSRWLockExclusive(&g_lock);
    if (!stored) {
        err = ENOMEM;
        TerminateProcess(pi.hProcess, PD_STATUS_KILLED);
        ResumeThread(pi.hThread);
        CloseHandle((HANDLE)th);
        pd_plat_close(out_fd);
        goto fail_started_relay;
    }
    ResumeThread(pi.hThread);
    CloseHandle(pi.hThread);
    free(app);
    free(cmd);
    free(env);
    *to_child = out_fd;
    *from_child = (int)(intptr_t)s_rd;
    return (int)pi.dwProcessId;

fail_win:
    err = errno_of(GetLastError());
fail:
    if (!err)
        err = errno ? errno : EIO;
    if (c_in)
        CloseHandle(c_in);
    if (c_out)
        CloseHandle(c_out);
    if (p_in)
        CloseHandle(p_in);
    if (p_out)
        CloseHandle(p_out);
    if (nul != INVALID_HANDLE_VALUE)
        CloseHandle(nul);
    if (errh != INVALID_HANDLE_VALUE)
        CloseHandle(errh);
    if (job)
        CloseHandle(job);
    if (s_wr != INVALID_SOCKET)
        closesocket(s_wr);
    socket_forget(s_rd);
    closesocket(s_rd);
    free(app);
    free(cmd);
    free(env);
    errno = err;
    return -1;

fail_started: /* the process exists, suspended; the relay does not */
    TerminateProcess(pi.hProcess, PD_STATUS_KILLED);
    ResumeThread(pi.hThread);
fail_started_relay: /* killed; the relay, when there is one, owns p_in and s_wr */
    WaitForSingleObject(pi.hProcess, 5000);
    CloseHandle(pi.hThread);
    CloseHandle(pi.hProcess);
    goto fail;
}

int pd_plat_child_init(void)
{
    char val[64];
    DWORD n = GetEnvironmentVariableA(PIPES_VAR, val, sizeof val);
    if (n == 0 || n >= sizeof val)
        return -1;
    /* Children of ours must not take it for theirs. */
    SetEnvironmentVariableA(PIPES_VAR, NULL);
    _putenv(PIPES_VAR "=");
    char *end;
    unsigned long long in = strtoull(val, &end, 10), out;
    if (*end != ',')
        return -1;
    out = strtoull(end + 1, &end, 10);
    if (*end != '\0')
        return -1;
    HANDLE hs[2] = {(HANDLE)(uintptr_t)in, (HANDLE)(uintptr_t)out};
    const int want[2] = {PD_PLAT_CHILD_IN, PD_PLAT_CHILD_OUT};
    const int mode[2] = {_O_RDONLY, _O_WRONLY};
    for (int i = 0; i < 2; i++) {
        DWORD info;
        if (!GetHandleInformation(hs[i], &info))
            return -1;
        int fd = _open_osfhandle((intptr_t)hs[i], mode[i] | _O_BINARY | _O_NOINHERIT);
        if (fd < 0)
            return -1;
        if (fd != want[i]) {
            if (_dup2(fd, want[i]) != 0) {
                _close(fd);
                return -1;
            }
            _close(fd);
        }
        _setmode(want[i], _O_BINARY);
        /* _dup2 makes an inheritable handle: keep it out of grandchildren,
           whose holding it would delay the parent's end of file. */
        set_inherit((HANDLE)_get_osfhandle(want[i]), false);
    }
    return 0;
}

static unsigned __stdcall parent_watch(void *arg)
{
    WaitForSingleObject((HANDLE)arg, INFINITE);
    TerminateProcess(GetCurrentProcess(), PD_STATUS_KILLED);
    return 0;
}

/* A crash ends the process at once with the exception code: no handler of
   the runtime's, no error report or debugger (Wine's winedbg included),
   and no exit-time code in a broken process (TerminateProcess, not
   ExitProcess). */
static LONG WINAPI crash_filter(EXCEPTION_POINTERS *ep)
{
    TerminateProcess(GetCurrentProcess(), ep->ExceptionRecord->ExceptionCode);
    return EXCEPTION_EXECUTE_HANDLER;
}

bool pd_plat_child_setup(int parent, void (*on_term)(int), bool ignore_pipe)
{
    (void)on_term; /* no polite stop request reaches a framed child on Windows */
    (void)ignore_pipe; /* no SIGPIPE: a write to a closed pipe is an error return */
    SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX | SEM_NOOPENFILEERRORBOX);
    SetUnhandledExceptionFilter(crash_filter);
#ifdef _UCRT
    _set_abort_behavior(0, _WRITE_ABORT_MSG | _CALL_REPORTFAULT);
#endif
    HANDLE h = OpenProcess(SYNCHRONIZE, FALSE, (DWORD)parent);
    if (!h)
        return false;
    if (WaitForSingleObject(h, 0) == WAIT_OBJECT_0) {
        CloseHandle(h);
        return false;
    }
    /* The parent's job kills us with it; where we are in no job (nested
       jobs refused), this thread does. */
    uintptr_t th = _beginthreadex(NULL, 0, parent_watch, h, 0, NULL);
    if (th)
        CloseHandle((HANDLE)th);
    else
        CloseHandle(h);
    return true;
}

long pd_plat_read(int fd, void *buf, size_t n)
{
    AcquireSRWLockShared(&g_lock);
    fdrec_t *r = fd_find(fd);
    bool sock = r && r->sock;
    ReleaseSRWLockShared(&g_lock);
    if (!sock) {
        int got = _read(fd, buf, n > INT_MAX ? INT_MAX : (unsigned)n);
        return got;
    }
    int got = recv((SOCKET)(uintptr_t)(unsigned)fd, buf, n > INT_MAX ? INT_MAX : (int)n, 0);
    if (got >= 0)
        return got;
    int e = WSAGetLastError();
    if (e == WSAECONNRESET || e == WSAECONNABORTED || e == WSAESHUTDOWN)
        return 0; /* the relay is gone: nothing more will come */
    errno = errno_of_wsa(e);
    return -1;
}

int pd_plat_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        unsigned chunk = len > (1u << 30) ? (1u << 30) : (unsigned)len;
        int w = _write(fd, p, chunk);
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int pd_plat_read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t done = 0;
    while (done < len) {
        size_t left = len - done;
        int r = _read(fd, p + done, left > (1u << 30) ? (1u << 30) : (unsigned)left);
        if (r < 0)
            return -1;
        if (r == 0)
            return done == 0 ? 0 : -1;
        done += (size_t)r;
    }
    return 1;
}

bool pd_plat_readable(int fd)
{
    AcquireSRWLockShared(&g_lock);
    fdrec_t *r = fd_find(fd);
    bool sock = r && r->sock;
    ReleaseSRWLockShared(&g_lock);
    if (sock) {
        WSAPOLLFD p = {.fd = (SOCKET)(uintptr_t)(unsigned)fd, .events = POLLRDNORM};
        return WSAPoll(&p, 1, 0) != 0; /* data, end of file, or an error to read */
    }
    HANDLE h = (HANDLE)_get_osfhandle(fd);
    if (h == INVALID_HANDLE_VALUE)
        return true; /* the read fails at once */
    switch (GetFileType(h)) {
    case FILE_TYPE_PIPE: {
        DWORD avail = 0;
        if (!PeekNamedPipe(h, NULL, 0, NULL, &avail, NULL))
            return true; /* broken: end of file */
        return avail > 0;
    }
    case FILE_TYPE_CHAR:
        return WaitForSingleObject(h, 0) == WAIT_OBJECT_0;
    default:
        return true; /* a file never blocks */
    }
}

void pd_plat_close(int fd)
{
    AcquireSRWLockExclusive(&g_lock);
    fdrec_t *r = fd_find(fd);
    bool sock = r && r->sock;
    if (r)
        fd_remove(r);
    ReleaseSRWLockExclusive(&g_lock);
    if (sock)
        closesocket((SOCKET)(uintptr_t)(unsigned)fd);
    else if (fd >= 0)
        _close(fd);
}

void pd_plat_kill_tree(int pid)
{
    AcquireSRWLockShared(&g_lock);
    child_t *k = kid_find(pid);
    if (k) {
        if (!k->job || !TerminateJobObject(k->job, PD_STATUS_KILLED))
            TerminateProcess(k->proc, PD_STATUS_KILLED);
    }
    ReleaseSRWLockShared(&g_lock);
    /* A pid that is no child of ours is left alone: Windows reuses pids at
       once, so it may name anyone by now. */
}

typedef LONG(NTAPI *nt_proc_fn)(HANDLE);
static INIT_ONCE nt_once = INIT_ONCE_STATIC_INIT;
static nt_proc_fn nt_suspend, nt_resume;

static BOOL CALLBACK nt_init(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    (void)once, (void)param, (void)ctx;
    HMODULE nt = GetModuleHandleA("ntdll.dll");
    if (nt) {
        FARPROC s = GetProcAddress(nt, "NtSuspendProcess");
        FARPROC r = GetProcAddress(nt, "NtResumeProcess");
        if (s && r) {
            nt_suspend = (nt_proc_fn)(void (*)(void))s;
            nt_resume = (nt_proc_fn)(void (*)(void))r;
        }
    }
    return TRUE;
}

/* Applies fn to the processes of job not in done[0..*ndone); appends them.
   Returns how many were new, or -1 when the list could not be read. */
static int job_apply(HANDLE job, nt_proc_fn fn, DWORD **done, size_t *ndone, size_t *capdone)
{
    DWORD cap = 64;
    JOBOBJECT_BASIC_PROCESS_ID_LIST *list = NULL;
    for (;;) {
        size_t size = sizeof *list + cap * sizeof(ULONG_PTR);
        JOBOBJECT_BASIC_PROCESS_ID_LIST *l = realloc(list, size);
        if (!l) {
            free(list);
            return -1;
        }
        list = l;
        if (QueryInformationJobObject(job, JobObjectBasicProcessIdList, list, (DWORD)size, NULL) ||
            GetLastError() == ERROR_MORE_DATA) {
            if (list->NumberOfProcessIdsInList >= list->NumberOfAssignedProcesses)
                break;
            cap = list->NumberOfAssignedProcesses + 16;
            continue;
        }
        free(list);
        return -1;
    }
    int fresh = 0;
    for (DWORD i = 0; i < list->NumberOfProcessIdsInList; i++) {
        DWORD id = (DWORD)list->ProcessIdList[i];
        bool seen = false;
        for (size_t j = 0; j < *ndone && !seen; j++)
            seen = (*done)[j] == id;
        if (seen)
            continue;
        if (*ndone == *capdone) {
            size_t c = *capdone ? 2 * *capdone : 16;
            DWORD *d = realloc(*done, c * sizeof *d);
            if (!d)
                break;
            *done = d;
            *capdone = c;
        }
        (*done)[(*ndone)++] = id;
        fresh++;
        HANDLE h = OpenProcess(PROCESS_SUSPEND_RESUME, FALSE, id);
        if (h) {
            fn(h); /* one that is ending fails: nothing to do */
            CloseHandle(h);
        }
    }
    free(list);
    return fresh;
}

int pd_plat_suspend_tree(int pid, bool suspend)
{
    InitOnceExecuteOnce(&nt_once, nt_init, NULL, NULL);
    if (!nt_suspend)
        return PD_PLAT_ENOTSUP;
    nt_proc_fn fn = suspend ? nt_suspend : nt_resume;
    int rc = 0;
    AcquireSRWLockExclusive(&g_lock);
    child_t *k = kid_find(pid);
    if (!k)
        rc = PD_EINVAL;
    else if (k->suspended == suspend)
        rc = 0; /* as SIGSTOP / SIGCONT: a second one changes nothing */
    else {
        bool done_job = false;
        if (k->job) {
            DWORD *done = NULL;
            size_t ndone = 0, capdone = 0;
            /* Suspend until no new process shows up (one may be starting). */
            for (int round = 0; round < 8; round++) {
                int fresh = job_apply(k->job, fn, &done, &ndone, &capdone);
                if (fresh < 0)
                    break;
                done_job = true;
                if (fresh == 0 || !suspend)
                    break;
            }
            free(done);
        }
        if (!done_job) {
            LONG st = fn(k->proc);
            if (st < 0)
                rc = PD_PLAT_ENOTSUP;
        }
        if (rc == 0)
            k->suspended = suspend;
    }
    ReleaseSRWLockExclusive(&g_lock);
    return rc;
}

int pd_plat_wait(int pid, int *status, bool block)
{
    HANDLE h = NULL;
    unsigned long long serial = 0;
    AcquireSRWLockShared(&g_lock);
    child_t *k = kid_find(pid);
    if (k) {
        serial = k->serial;
        if (!DuplicateHandle(GetCurrentProcess(), k->proc, GetCurrentProcess(), &h, 0, FALSE,
                             DUPLICATE_SAME_ACCESS))
            h = NULL;
    }
    ReleaseSRWLockShared(&g_lock);
    if (!k)
        return -1;
    if (!h)
        return -1; /* cannot happen short of running out of handles */
    DWORD w = WaitForSingleObject(h, block ? INFINITE : 0);
    if (w == WAIT_TIMEOUT) {
        CloseHandle(h);
        return 0;
    }
    DWORD code = 0;
    bool got = w == WAIT_OBJECT_0 && GetExitCodeProcess(h, &code);
    CloseHandle(h);
    if (!got)
        return 0;
    child_t gone = {0};
    bool found = false;
    AcquireSRWLockExclusive(&g_lock);
    k = kid_find(pid);
    if (k && k->serial == serial) {
        gone = *k;
        *k = g_kids[--g_nkids];
        found = true;
    }
    ReleaseSRWLockExclusive(&g_lock);
    if (!found)
        return -1; /* reaped by another thread meanwhile */
    /* Closing the job kills what the child left running (its tree dies
       with it, as KILL_ON_JOB_CLOSE says); the relay thread ends by itself
       at the pipe's end and is detached. */
    if (gone.job)
        CloseHandle(gone.job);
    if (gone.relay)
        CloseHandle(gone.relay);
    CloseHandle(gone.proc);
    if (status)
        *status = (int)code;
    return 1;
}

/* ---- statuses ----------------------------------------------------------- */

bool pd_plat_status_crashed(int status)
{
    unsigned u = (unsigned)status;
    return (u >= 0xC0000000u && u < 0xF0000000u) || (u >= 0x80000001u && u <= 0x80000004u);
}

int pd_plat_status_exit(int status)
{
    return pd_plat_status_crashed(status) ? -1 : status;
}

int pd_plat_status_signal(int status)
{
    return pd_plat_status_crashed(status) ? status : 0;
}

static const char *exception_name(unsigned u)
{
    switch (u) {
    case 0xC0000005u: return "access violation";
    case 0xC0000006u: return "in-page error";
    case 0xC0000008u: return "invalid handle";
    case 0xC0000017u: return "out of memory";
    case 0xC000001Du: return "illegal instruction";
    case 0xC0000025u: return "noncontinuable exception";
    case 0xC000008Cu: return "array bounds exceeded";
    case 0xC000008Du: return "floating-point denormal operand";
    case 0xC000008Eu: return "floating-point divide by zero";
    case 0xC000008Fu: return "floating-point inexact result";
    case 0xC0000090u: return "floating-point invalid operation";
    case 0xC0000091u: return "floating-point overflow";
    case 0xC0000092u: return "floating-point stack check";
    case 0xC0000093u: return "floating-point underflow";
    case 0xC0000094u: return "integer divide by zero";
    case 0xC0000095u: return "integer overflow";
    case 0xC0000096u: return "privileged instruction";
    case 0xC00000FDu: return "stack overflow";
    case 0xC0000135u: return "a DLL was not found";
    case 0xC0000139u: return "entry point not found";
    case 0xC0000142u: return "DLL initialization failed";
    case 0xC0000374u: return "heap corruption";
    case 0xC0000409u: return "stack buffer overrun or fast fail, as abort()";
    case 0xC0000417u: return "invalid C runtime parameter";
    case 0xE06D7363u: return "unhandled C++ exception";
    case 0x80000001u: return "guard page violation";
    case 0x80000002u: return "datatype misalignment";
    case 0x80000003u: return "breakpoint";
    case 0x80000004u: return "single step";
    default: return NULL;
    }
}

const char *pd_plat_status_str(int status, char *out, size_t cap)
{
    if (!out || cap == 0)
        return out;
    unsigned u = (unsigned)status;
    if (u == PD_STATUS_KILLED)
        snprintf(out, cap, "killed (terminated, status 0x%08x)", u);
    else if (pd_plat_status_crashed(status)) {
        const char *name = exception_name(u);
        if (name)
            snprintf(out, cap, "ended by exception 0x%08x (%s)", u, name);
        else
            snprintf(out, cap, "ended by exception 0x%08x", u);
    } else if (u == 0x40000015u)
        snprintf(out, cap, "exited with status %d (0x40000015: fatal application exit)", status);
    else if (u > 0xFFFFu && u < 0xF0000000u)
        snprintf(out, cap, "exited with status %d (0x%08x)", status, u);
    else
        snprintf(out, cap, "exited with status %d", status);
    return out;
}

/* ---- running a program to its end --------------------------------------- */

typedef struct {
    HANDLE pipe;
    char *buf; /* the caller's, until abandoned */
    size_t cap, len;
    bool abandoned;
    uint64_t dropped; /* bytes read and not kept */
    SRWLOCK lock;
    volatile LONG refs;
} reader_t;

static void reader_release(reader_t *r)
{
    if (InterlockedDecrement(&r->refs) == 0) {
        CloseHandle(r->pipe);
        free(r);
    }
}

static unsigned __stdcall reader_main(void *arg)
{
    reader_t *r = arg;
    char chunk[8192];
    DWORD got;
    while (ReadFile(r->pipe, chunk, sizeof chunk, &got, NULL)) {
        AcquireSRWLockExclusive(&r->lock);
        if (!r->abandoned) {
            size_t room = r->cap > r->len + 1 ? r->cap - 1 - r->len : 0;
            size_t take = got < room ? got : room;
            if (take) {
                memcpy(r->buf + r->len, chunk, take);
                r->len += take;
                r->buf[r->len] = '\0';
            }
            r->dropped += got - take;
        }
        ReleaseSRWLockExclusive(&r->lock);
    }
    reader_release(r);
    return 0;
}

typedef struct {
    HANDLE pipe;
    size_t len;
    char data[];
} writer_t;

static unsigned __stdcall writer_main(void *arg)
{
    writer_t *w = arg;
    const char *p = w->data;
    size_t left = w->len;
    while (left > 0) {
        DWORD n, chunk = left > (1u << 30) ? (1u << 30) : (DWORD)left;
        if (!WriteFile(w->pipe, p, chunk, &n, NULL))
            break; /* the program does not read it all */
        p += n;
        left -= n;
    }
    CloseHandle(w->pipe);
    free(w);
    return 0;
}

/* Waits for a helper thread, cancelling its blocking I/O when it overstays;
   true when it ended. */
static bool join_thread(HANDLE th, DWORD ms)
{
    if (WaitForSingleObject(th, ms) == WAIT_OBJECT_0)
        return true;
    CancelSynchronousIo(th);
    return WaitForSingleObject(th, 1000) == WAIT_OBJECT_0;
}

static bool is_relative(const char *p)
{
    return !(p[0] == '\\' || p[0] == '/' || (p[0] && p[1] == ':'));
}

/* The program argv[0] names: a path as it is (or with ".exe"; a relative
   one from cwd when given, as after a chdir), a bare name searched in
   PATH. */
static wchar_t *resolve_program(const char *name, const char *cwd, DWORD *err)
{
    wchar_t *w = widen(name);
    if (!w) {
        *err = ERROR_NOT_ENOUGH_MEMORY;
        return NULL;
    }
    if (strpbrk(name, "/\\:")) {
        char *joined = NULL;
        if (cwd && is_relative(name)) {
            size_t n = strlen(cwd) + strlen(name) + 2;
            if ((joined = malloc(n)))
                snprintf(joined, n, "%s\\%s", cwd, name);
        }
        wchar_t *app = app_name(joined ? joined : name);
        free(joined);
        free(w);
        if (!app) {
            *err = ERROR_NOT_ENOUGH_MEMORY;
            return NULL;
        }
        DWORD a = GetFileAttributesW(app);
        if (a == INVALID_FILE_ATTRIBUTES || (a & FILE_ATTRIBUTE_DIRECTORY)) {
            *err = a == INVALID_FILE_ATTRIBUTES ? GetLastError() : ERROR_ACCESS_DENIED;
            free(app);
            return NULL;
        }
        return app;
    }
    const DWORD cap = 32768;
    wchar_t *path = malloc(cap * sizeof *path), *out = malloc(cap * sizeof *out);
    DWORD n = path ? GetEnvironmentVariableW(L"PATH", path, cap) : 0;
    DWORD found = 0;
    if (path && out) {
        /* PATH unset: the system's default search (system directories). */
        found = SearchPathW(n > 0 && n < cap ? path : NULL, w, L".exe", cap, out, NULL);
        if (found == 0)
            *err = GetLastError();
        else if (found >= cap)
            *err = ERROR_FILENAME_EXCED_RANGE;
    } else
        *err = ERROR_NOT_ENOUGH_MEMORY;
    free(path);
    free(w);
    if (found == 0 || found >= cap) {
        free(out);
        return NULL;
    }
    return out;
}

static void run_fail_reason(pd_plat_capture_t *cap, const char *what, DWORD e)
{
    if (!cap || !cap->err || cap->errcap == 0)
        return;
    char msg[512];
    win_message(e, msg, sizeof msg);
    int n = snprintf(cap->err, cap->errcap, "%s: %s", what, msg);
    cap->errlen = n < 0 ? 0 : (size_t)n >= cap->errcap ? cap->errcap - 1 : (size_t)n;
}

/* One function (about 200 lines) on purpose, as pd_plat_spawn: pipes, the
   reader and writer threads (reference-counted, since a reader may outlive
   us when a leftover process holds its pipe), the job object and the process
   change owner at fixed points, and the two cleanup labels release exactly
   what is still ours on every path. */
int pd_plat_run(char *const argv[], const void *input, size_t inlen, pd_plat_capture_t *cap,
                int timeout_ms)
{
    if (cap) {
        cap->outlen = cap->errlen = 0;
        cap->trunc = false;
        cap->outdrop = cap->errdrop = 0;
        if (cap->out && cap->outcap)
            cap->out[0] = '\0';
        if (cap->err && cap->errcap)
            cap->err[0] = '\0';
    }
    if (!argv || !argv[0])
        return PD_ESYS;
    ULONGLONG start = GetTickCount64();
    DWORD e = 0;
    const char *cwd = cap ? cap->cwd : NULL;
    wchar_t *wcwd = NULL;
    if (cwd) {
        DWORD a = GetFileAttributesA(cwd);
        if (a == INVALID_FILE_ATTRIBUTES || !(a & FILE_ATTRIBUTE_DIRECTORY)) {
            char what[MAX_PATH + 32];
            snprintf(what, sizeof what, "cannot enter %s", cwd);
            run_fail_reason(cap, what, a == INVALID_FILE_ATTRIBUTES ? GetLastError() : ERROR_DIRECTORY);
            return 127;
        }
        if (!(wcwd = widen(cwd)))
            return PD_ESYS;
    }
    wchar_t *app = resolve_program(argv[0], cwd, &e);
    if (!app) {
        char what[MAX_PATH + 32];
        snprintf(what, sizeof what, "cannot run %s", argv[0]);
        run_fail_reason(cap, what, e);
        free(wcwd);
        return 127;
    }
    wchar_t *cmd = build_cmdline(argv);
    if (!cmd) {
        free(app);
        free(wcwd);
        return PD_ESYS;
    }

    HANDLE in_r = INVALID_HANDLE_VALUE, in_w = NULL, out_r = NULL, out_w = NULL, err_r = NULL, err_w = NULL;
    HANDLE th[3] = {NULL, NULL, NULL}, job = NULL;
    reader_t *rd[2] = {NULL, NULL};
    writer_t *wr = NULL;
    PROCESS_INFORMATION pi = {0};
    int rc = PD_ESYS;

    if (input && inlen > 0) {
        if (!CreatePipe(&in_r, &in_w, NULL, PIPE_BUFSZ)) {
            in_r = INVALID_HANDLE_VALUE;
            goto out;
        }
    } else if ((in_r = open_nul(false)) == INVALID_HANDLE_VALUE)
        goto out;
    if (!CreatePipe(&out_r, &out_w, NULL, PIPE_BUFSZ) || !CreatePipe(&err_r, &err_w, NULL, PIPE_BUFSZ))
        goto out;
    for (int i = 0; i < 2; i++) {
        if (!(rd[i] = calloc(1, sizeof *rd[i])))
            goto out;
        InitializeSRWLock(&rd[i]->lock);
        rd[i]->refs = 1;
        if (i == 0)
            rd[i]->pipe = out_r, out_r = NULL; /* owned by the reader */
        else
            rd[i]->pipe = err_r, err_r = NULL;
        if (cap) {
            rd[i]->buf = i == 0 ? cap->out : cap->err;
            rd[i]->cap = rd[i]->buf ? (i == 0 ? cap->outcap : cap->errcap) : 0;
        }
    }
    if (in_w) {
        if (!(wr = malloc(sizeof *wr + inlen)))
            goto out;
        wr->pipe = in_w;
        wr->len = inlen;
        memcpy(wr->data, input, inlen);
    }
    job = new_job();

    HANDLE inh[3] = {in_r, out_w, err_w};
    AcquireSRWLockExclusive(&g_spawn_lock);
    BOOL ok = set_inherit(in_r, true) && set_inherit(out_w, true) && set_inherit(err_w, true) &&
              create_process(app, cmd, NULL, wcwd, CREATE_NEW_PROCESS_GROUP, in_r, out_w, err_w, inh, 3,
                             &pi);
    e = GetLastError();
    CloseHandle(in_r);
    CloseHandle(out_w);
    CloseHandle(err_w);
    ReleaseSRWLockExclusive(&g_spawn_lock);
    in_r = INVALID_HANDLE_VALUE;
    out_w = err_w = NULL;
    if (!ok) {
        char what[MAX_PATH + 32];
        snprintf(what, sizeof what, "cannot run %s", argv[0]);
        run_fail_reason(cap, what, e);
        rc = 127;
        goto out;
    }
    if (job && !AssignProcessToJobObject(job, pi.hProcess)) {
        CloseHandle(job);
        job = NULL;
    }
    for (int i = 0; i < 2; i++) {
        InterlockedIncrement(&rd[i]->refs);
        th[i] = (HANDLE)_beginthreadex(NULL, 0, reader_main, rd[i], 0, NULL);
        if (!th[i])
            InterlockedDecrement(&rd[i]->refs);
    }
    if (wr) {
        th[2] = (HANDLE)_beginthreadex(NULL, 0, writer_main, wr, 0, NULL);
        if (th[2])
            wr = NULL; /* the writer owns it */
    }
    if (!th[0] || !th[1] || (in_w && !th[2])) {
        TerminateProcess(pi.hProcess, PD_STATUS_KILLED);
        ResumeThread(pi.hThread);
        WaitForSingleObject(pi.hProcess, 5000);
        rc = PD_ESYS;
        goto out_started;
    }
    in_w = NULL;
    ResumeThread(pi.hThread);

    DWORD limit = INFINITE;
    if (timeout_ms >= 0) {
        ULONGLONG spent = GetTickCount64() - start;
        limit = spent >= (ULONGLONG)timeout_ms ? 0 : (DWORD)((ULONGLONG)timeout_ms - spent);
    }
    bool timed_out = WaitForSingleObject(pi.hProcess, limit) == WAIT_TIMEOUT;
    if (timed_out) {
        if (!job || !TerminateJobObject(job, PD_STATUS_KILLED))
            TerminateProcess(pi.hProcess, PD_STATUS_KILLED);
        WaitForSingleObject(pi.hProcess, 5000);
    }
    DWORD code = 0;
    if (!GetExitCodeProcess(pi.hProcess, &code))
        code = PD_STATUS_KILLED;
    /* What the program left running dies with it (as at the job's close),
       so that no leftover holds the pipes open. */
    if (job)
        TerminateJobObject(job, PD_STATUS_KILLED);
    rc = timed_out ? PD_ETIMEDOUT : (int)code;

out_started:
    for (int i = 0; i < 3; i++) {
        if (!th[i])
            continue;
        /* Bounded: a leftover outside the job (nested jobs refused) may hold
           a pipe; its reader is then cancelled, or abandoned. */
        join_thread(th[i], i < 2 ? 5000 : 1000);
        CloseHandle(th[i]);
    }
    CloseHandle(pi.hThread);
    CloseHandle(pi.hProcess);
out:;
    DWORD last = GetLastError();
    for (int i = 0; i < 2; i++) {
        if (!rd[i])
            continue;
        AcquireSRWLockExclusive(&rd[i]->lock);
        rd[i]->abandoned = true;
        if (cap && rd[i]->buf) {
            if (i == 0)
                cap->outlen = rd[i]->len;
            else if (rd[i]->len > 0)
                cap->errlen = rd[i]->len;
            if (rd[i]->dropped)
                cap->trunc = true;
            if (i == 0)
                cap->outdrop = rd[i]->dropped;
            else
                cap->errdrop = rd[i]->dropped;
        }
        ReleaseSRWLockExclusive(&rd[i]->lock);
        reader_release(rd[i]);
    }
    if (in_r != INVALID_HANDLE_VALUE)
        CloseHandle(in_r);
    if (in_w && !th[2] && !wr)
        CloseHandle(in_w);
    if (wr) {
        CloseHandle(wr->pipe);
        free(wr);
    }
    if (out_r)
        CloseHandle(out_r);
    if (out_w)
        CloseHandle(out_w);
    if (err_r)
        CloseHandle(err_r);
    if (err_w)
        CloseHandle(err_w);
    if (job)
        CloseHandle(job);
    free(app);
    free(cmd);
    free(wcwd);
    if (rc == PD_ESYS && cap && cap->errlen == 0)
        run_fail_reason(cap, "pd_plat_run", last);
    return rc;
}

void pd_plat_shell_argv(const char *cmd, char *argv[6])
{
    static char comspec[MAX_PATH];
    static INIT_ONCE once = INIT_ONCE_STATIC_INIT;
    BOOL pending = FALSE;
    if (InitOnceBeginInitialize(&once, 0, &pending, NULL) && pending) {
        DWORD n = GetEnvironmentVariableA("COMSPEC", comspec, sizeof comspec);
        if (n == 0 || n >= sizeof comspec)
            strcpy(comspec, "cmd.exe");
        InitOnceComplete(&once, 0, NULL);
    }
    argv[0] = comspec;
    argv[1] = (char *)"/d";
    argv[2] = (char *)"/s";
    argv[3] = (char *)"/c";
    argv[4] = (char *)cmd;
    argv[5] = NULL;
}

/* ---- stop requests ------------------------------------------------------ */

static void (*volatile g_on_stop)(int);
/* pd_plat_on_stop's on_reload: a service's "paramchange" request. */
static void (*volatile g_on_reload)(int);
/* A stop request of the Service Control Manager that came before
   pd_plat_on_stop set its handler (pd_plat_service_run). */
static volatile LONG g_svc_stop;
/* Set by pd_plat_service_run: this process is a service. */
static volatile LONG g_in_service;
static void svc_started(void);

static BOOL WINAPI console_handler(DWORD ev)
{
    void (*f)(int) = g_on_stop;
    switch (ev) {
    case CTRL_C_EVENT:
    case CTRL_BREAK_EVENT:
        if (f)
            f(1);
        return TRUE;
    case CTRL_CLOSE_EVENT:
    case CTRL_SHUTDOWN_EVENT:
        if (f)
            f(1);
        /* The process ends when this returns: leave the program its few
           seconds (the system allows about 5) to stop by itself. */
        Sleep(4500);
        return TRUE;
    case CTRL_LOGOFF_EVENT:
        /* Only services see it, and any user's logoff sends it: no reason
           to stop. */
        return TRUE;
    default:
        return FALSE;
    }
}

void pd_plat_on_stop(void (*on_stop)(int), void (*on_reload)(int))
{
    /* No SIGHUP on Windows (nor SIGPIPE to ignore); a service reloads on
       SERVICE_CONTROL_PARAMCHANGE (`sc control NAME paramchange`). */
    static volatile LONG installed;
    g_on_reload = on_reload;
    g_on_stop = on_stop;
    MemoryBarrier();
    if (InterlockedExchange(&installed, 1) == 0)
        SetConsoleCtrlHandler(console_handler, TRUE);
    if (on_stop && g_svc_stop)
        on_stop(1); /* the service was asked to stop already */
    else if (on_stop && g_in_service)
        svc_started(); /* it takes stop requests now: running */
}

void pd_plat_hold_stop(bool hold)
{
    (void)hold; /* the console handler runs on a thread of its own */
}

/* The endpoint in the file path (written by pd_plat_control_bind). */
int pd_plat_control_endpoint(const char *path, char *ep, size_t cap,
                             char token[PD_PLAT_TOKEN_LEN + 1])
{
    token[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(ep, cap, "cannot read %s: %s", path, strerror(errno));
        return PD_EIO;
    }
    char buf[256];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    /* "tcp://127.0.0.1:PORT TOKEN" */
    char *sp = strchr(buf, ' ');
    if (sp) {
        *sp = '\0';
        snprintf(token, PD_PLAT_TOKEN_LEN + 1, "%s", sp + 1);
        n = strlen(buf);
    }
    if (strncmp(buf, "tcp://", 6) != 0 || n >= cap) {
        snprintf(ep, cap, "%s holds no control endpoint", path);
        return PD_EIO;
    }
    memcpy(ep, buf, n + 1);
    return 0;
}

int pd_plat_control_bind(void *sock, const char *path, int mode,
                         char token[PD_PLAT_TOKEN_LEN + 1], char *why, size_t cap)
{
    (void)mode; /* the file's directory (the owner's) keeps others out of the token */
    unsigned char rnd[PD_PLAT_TOKEN_LEN / 2];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(token, PD_PLAT_TOKEN_LEN + 1, rnd, sizeof rnd);
    if (zmq_bind(sock, "tcp://127.0.0.1:*") != 0) {
        snprintf(why, cap, "%s", zmq_strerror(zmq_errno()));
        return PD_ESYS;
    }
    char ep[256];
    size_t len = sizeof ep;
    if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, ep, &len) != 0) {
        snprintf(why, cap, "%s", zmq_strerror(zmq_errno()));
        return PD_ESYS;
    }
    /* Written aside, then renamed: a reader never sees half of it. */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%lu.tmp", path, (unsigned long)GetCurrentProcessId());
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fprintf(f, "%s %s\n", ep, token) > 0;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok || pd_plat_rename(tmp, path) != 0) {
        snprintf(why, cap, "cannot write %s: %s", path, strerror(errno));
        remove(tmp);
        zmq_unbind(sock, ep);
        return PD_ESYS;
    }
    return 0;
}

/* A service runs in session 0 (and pd_plat_service_run says so, for
   systems, such as Wine, that run services in the user's session). */
static bool is_service(void)
{
    DWORD session = 1;
    return g_in_service ||
           (ProcessIdToSessionId(GetCurrentProcessId(), &session) && session == 0);
}

void pd_plat_control_default(char *out, size_t cap, bool service_first)
{
    char pd[MAX_PATH + 16], la[MAX_PATH], svc[MAX_PATH + 32];
    /* %PROGRAMDATA%\playdoh, as the system (not the environment) says. */
    if (pd_plat_service_dir(pd, sizeof pd) != 0)
        snprintf(pd, sizeof pd, "C:\\ProgramData\\playdoh");
    snprintf(svc, sizeof svc, "%s\\worker.ctl", pd);
    DWORD n = GetEnvironmentVariableA("LOCALAPPDATA", la, sizeof la);
    bool have_local = n > 0 && n < sizeof la;
    DWORD a = GetFileAttributesA(svc);
    if ((service_first && a != INVALID_FILE_ATTRIBUTES && !(a & FILE_ATTRIBUTE_DIRECTORY)) ||
        is_service() || !have_local)
        snprintf(out, cap, "%s", svc);
    else
        snprintf(out, cap, "%s\\playdoh\\run\\worker.ctl", la);
}

static volatile LONG g_catching, g_interrupts;

static BOOL WINAPI interrupt_handler(DWORD ev)
{
    if (!g_catching || (ev != CTRL_C_EVENT && ev != CTRL_BREAK_EVENT))
        return FALSE; /* on to the next handler (pd_plat_on_stop's, the default) */
    InterlockedExchange(&g_interrupts, 1);
    return TRUE;
}

void pd_plat_catch_interrupt(bool on)
{
    if (on) {
        InterlockedExchange(&g_interrupts, 0);
        InterlockedExchange(&g_catching, 1);
        /* (Re)installed last: the first handler the console calls, before
           pd_plat_on_stop's. */
        SetConsoleCtrlHandler(interrupt_handler, FALSE);
        SetConsoleCtrlHandler(interrupt_handler, TRUE);
    } else
        InterlockedExchange(&g_catching, 0);
}

bool pd_plat_interrupt_taken(void)
{
    return InterlockedExchange(&g_interrupts, 0) != 0;
}

/* ---- the owner's use of the machine ------------------------------------- */

int pd_plat_cpu_times(unsigned long long *busy, unsigned long long *total, int *ncpu)
{
    FILETIME idle, kernel, user;
    if (!GetSystemTimes(&idle, &kernel, &user))
        return PD_EIO;
    /* The kernel time includes the idle time. */
    ULONGLONG k = ft_u64(kernel), u = ft_u64(user), i = ft_u64(idle);
    if (busy)
        *busy = k + u >= i ? k + u - i : 0;
    if (total)
        *total = k + u;
    if (ncpu)
        *ncpu = pd_plat_ncpu();
    return 0;
}

unsigned long long pd_plat_proc_cpu(int pid)
{
    if (pid == pd_plat_getpid()) {
        FILETIME c, x, k, u;
        return GetProcessTimes(GetCurrentProcess(), &c, &x, &k, &u) ? ft_u64(k) + ft_u64(u) : 0;
    }
    unsigned long long t = 0;
    bool known = false;
    AcquireSRWLockShared(&g_lock);
    child_t *kid = kid_find(pid);
    if (kid && kid->job) {
        /* The job counts the child and all its tree, ended ones included. */
        JOBOBJECT_BASIC_ACCOUNTING_INFORMATION ai;
        if (QueryInformationJobObject(kid->job, JobObjectBasicAccountingInformation, &ai, sizeof ai,
                                      NULL)) {
            t = (unsigned long long)ai.TotalKernelTime.QuadPart +
                (unsigned long long)ai.TotalUserTime.QuadPart;
            known = true;
        }
    }
    ReleaseSRWLockShared(&g_lock);
    if (known)
        return t;
    HANDLE h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
    if (!h)
        return 0;
    FILETIME c, x, k, u;
    if (GetProcessTimes(h, &c, &x, &k, &u))
        t = ft_u64(k) + ft_u64(u);
    CloseHandle(h);
    return t;
}

/* ---- a system service --------------------------------------------------- */

#define SVC_ACCOUNT L"NT AUTHORITY\\LocalService"
/* The service directory's access list: the system, the administrators and
   the LocalService account (full control, inherited by what is made in
   it), nobody else: protected from what %PROGRAMDATA% lets users do. */
#define SVC_DIR_SDDL L"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;LS)"

/* why for a failure of the manager's call what, and its PD_E* code. */
static int svc_fail(DWORD e, const char *what, const char *name, char *why, size_t cap)
{
    char msg[300];
    win_message(e, msg, sizeof msg);
    switch (e) {
    case ERROR_ACCESS_DENIED:
        snprintf(why, cap, "%s: access denied: this needs an administrator: run it from an "
                           "elevated prompt (Run as administrator)", what);
        return PD_EREFUSED;
    case ERROR_SERVICE_DOES_NOT_EXIST:
        snprintf(why, cap, "no service '%s' is installed", name);
        return PD_ENOJOB;
    case ERROR_SERVICE_EXISTS:
    case ERROR_DUPLICATE_SERVICE_NAME:
        snprintf(why, cap, "a service '%s' is installed already: uninstall it first", name);
        return PD_EREFUSED;
    case ERROR_SERVICE_MARKED_FOR_DELETE:
        snprintf(why, cap, "the service '%s' is marked for deletion: close the programs that "
                           "hold it open (the Services console) and try again", name);
        return PD_ESYS;
    case ERROR_SERVICE_DISABLED:
        snprintf(why, cap, "the service '%s' is disabled: enable it in the Services console "
                           "(or `sc config %s start= auto`)", name, name);
        return PD_ESYS;
    default:
        snprintf(why, cap, "%s: %s", what, msg);
        return PD_ESYS;
    }
}

/* Opens the manager (scm_access) and the service name (access). 0, or a
   failure with why set (nothing left open). */
static int svc_open(const char *name, DWORD scm_access, DWORD access, SC_HANDLE *scm,
                    SC_HANDLE *svc, char *why, size_t cap)
{
    *scm = *svc = NULL;
    wchar_t *wname = widen(name);
    if (!wname) {
        snprintf(why, cap, "bad service name '%s'", name);
        return PD_EINVAL;
    }
    *scm = OpenSCManagerW(NULL, NULL, scm_access);
    if (!*scm) {
        free(wname);
        return svc_fail(GetLastError(), "cannot open the Service Control Manager", name, why, cap);
    }
    *svc = OpenServiceW(*scm, wname, access);
    DWORD e = GetLastError();
    free(wname);
    if (!*svc) {
        CloseServiceHandle(*scm);
        *scm = NULL;
        return svc_fail(e, "cannot open the service", name, why, cap);
    }
    return 0;
}

static void svc_close(SC_HANDLE scm, SC_HANDLE svc)
{
    if (svc)
        CloseServiceHandle(svc);
    if (scm)
        CloseServiceHandle(scm);
}

static bool svc_query(SC_HANDLE svc, SERVICE_STATUS_PROCESS *st)
{
    DWORD need = 0;
    return QueryServiceStatusEx(svc, SC_STATUS_PROCESS_INFO, (BYTE *)st, sizeof *st, &need) != 0;
}

static const char *svc_state_name(DWORD state)
{
    switch (state) {
    case SERVICE_STOPPED: return "stopped";
    case SERVICE_START_PENDING: return "starting";
    case SERVICE_STOP_PENDING: return "stopping";
    case SERVICE_RUNNING: return "running";
    case SERVICE_CONTINUE_PENDING: return "continuing";
    case SERVICE_PAUSE_PENDING: return "pausing";
    case SERVICE_PAUSED: return "paused";
    default: return "in an unknown state";
    }
}

/* The exit code a stopped service reported (0 when none). */
static DWORD svc_exit_code(const SERVICE_STATUS_PROCESS *st)
{
    return st->dwWin32ExitCode == ERROR_SERVICE_SPECIFIC_ERROR ? st->dwServiceSpecificExitCode
                                                              : st->dwWin32ExitCode;
}

/* Waits up to wait_ms while the service is in state pending. 0 with *st
   its last status, or PD_ETIMEDOUT / PD_ESYS. */
static int svc_wait(SC_HANDLE svc, DWORD pending, int wait_ms, SERVICE_STATUS_PROCESS *st,
                    const char *name, char *why, size_t cap)
{
    ULONGLONG until = GetTickCount64() + (ULONGLONG)(wait_ms > 0 ? wait_ms : 0);
    for (;;) {
        if (!svc_query(svc, st))
            return svc_fail(GetLastError(), "cannot query the service", name, why, cap);
        if (st->dwCurrentState != pending)
            return 0;
        if (GetTickCount64() >= until) {
            snprintf(why, cap, "the service '%s' is still %s after %d s", name,
                     svc_state_name(st->dwCurrentState), wait_ms / 1000);
            return PD_ETIMEDOUT;
        }
        Sleep(200);
    }
}

typedef HRESULT(WINAPI *folder_fn)(HWND, int, HANDLE, DWORD, LPSTR);

int pd_plat_service_dir(char *out, size_t cap)
{
    /* The system's own answer (CSIDL_COMMON_APPDATA), not %PROGRAMDATA%:
       a service's environment need not say the same as an administrator's
       (Wine gives services C:\users\Public). shell32 is loaded only here. */
    char pd[MAX_PATH] = "";
    HMODULE sh = LoadLibraryW(L"shell32.dll");
    folder_fn get = sh ? (folder_fn)(void *)GetProcAddress(sh, "SHGetFolderPathA") : NULL;
    DWORD n = 0;
    if (get && get(NULL, 0x23 /* CSIDL_COMMON_APPDATA */, NULL, 0, pd) == S_OK)
        n = (DWORD)strlen(pd);
    else
        n = GetEnvironmentVariableA("PROGRAMDATA", pd, sizeof pd);
    if (sh)
        FreeLibrary(sh);
    if (n == 0 || n >= sizeof pd) {
        snprintf(out, cap, n ? "%%PROGRAMDATA%% is too long" : "%%PROGRAMDATA%% is not set");
        return PD_EIO;
    }
    while (n > 1 && (pd[n - 1] == '\\' || pd[n - 1] == '/'))
        pd[--n] = '\0';
    int w = snprintf(out, cap, "%s\\playdoh", pd);
    if (w < 0 || (size_t)w >= cap) {
        snprintf(out, cap, "%%PROGRAMDATA%%\\playdoh does not fit");
        return PD_EIO;
    }
    return 0;
}

/* Makes the service directory (when missing) and gives it its access list. */
static int svc_make_dir(char *why, size_t cap)
{
    char dir[MAX_PATH + 16];
    if (pd_plat_service_dir(dir, sizeof dir)) {
        snprintf(why, cap, "%s", dir);
        return PD_EIO;
    }
    wchar_t *wdir = widen(dir);
    if (!wdir) {
        snprintf(why, cap, "bad directory name %s", dir);
        return PD_EIO;
    }
    int rc = 0;
    PSECURITY_DESCRIPTOR sd = NULL;
    if (!CreateDirectoryW(wdir, NULL) && GetLastError() != ERROR_ALREADY_EXISTS) {
        char msg[300];
        win_message(GetLastError(), msg, sizeof msg);
        snprintf(why, cap, "cannot create %s: %s", dir, msg);
        rc = PD_EIO;
    } else if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(SVC_DIR_SDDL, SDDL_REVISION_1,
                                                                     &sd, NULL)) {
        char msg[300];
        win_message(GetLastError(), msg, sizeof msg);
        snprintf(why, cap, "cannot make the access list of %s: %s", dir, msg);
        rc = PD_ESYS;
    } else {
        BOOL present = FALSE, dflt = FALSE;
        PACL dacl = NULL;
        DWORD e = GetSecurityDescriptorDacl(sd, &present, &dacl, &dflt)
                      ? SetNamedSecurityInfoW(wdir, SE_FILE_OBJECT,
                                              DACL_SECURITY_INFORMATION |
                                                  PROTECTED_DACL_SECURITY_INFORMATION,
                                              NULL, NULL, dacl, NULL)
                      : GetLastError();
        if (e != ERROR_SUCCESS) {
            char msg[300];
            win_message(e, msg, sizeof msg);
            snprintf(why, cap, "cannot set the access list of %s: %s", dir, msg);
            rc = e == ERROR_ACCESS_DENIED ? PD_EREFUSED : PD_ESYS;
        }
    }
    if (sd)
        LocalFree(sd);
    free(wdir);
    return rc;
}

int pd_plat_service_install(const pd_plat_service_t *svc, char *const argv[],
                            const char **account, char *why, size_t cap)
{
    if (account)
        *account = NULL;
    char exe[MAX_PATH * 4];
    if (pd_plat_self_exe(exe, sizeof exe)) {
        snprintf(why, cap, "cannot find this program's own path");
        return PD_ESYS;
    }
    size_t n = 0;
    while (argv && argv[n])
        n++;
    char **full = calloc(n + 2, sizeof *full);
    wchar_t *cmd = NULL, *wname = widen(svc->name), *wdisplay = widen(svc->display);
    wchar_t *wdesc = svc->description ? widen(svc->description) : NULL;
    if (full) {
        full[0] = exe;
        for (size_t i = 0; i < n; i++)
            full[i + 1] = argv[i];
        cmd = build_cmdline(full);
    }
    free(full);
    SC_HANDLE scm = NULL, h = NULL;
    int rc = 0;
    if (!cmd || !wname || !wdisplay || (svc->description && !wdesc)) {
        snprintf(why, cap, "out of memory");
        rc = PD_ENOMEM;
        goto done;
    }
    /* The manager first: without an administrator's rights nothing is made. */
    scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE);
    if (!scm) {
        rc = svc_fail(GetLastError(), "cannot open the Service Control Manager to create a "
                                      "service", svc->name, why, cap);
        goto done;
    }
    if ((rc = svc_make_dir(why, cap)) != 0)
        goto done;
    const char *acct = "NT AUTHORITY\\LocalService";
    h = CreateServiceW(scm, wname, wdisplay, SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS,
                       SERVICE_AUTO_START, SERVICE_ERROR_NORMAL, cmd, NULL, NULL, NULL,
                       SVC_ACCOUNT, L"");
    DWORD e = h ? 0 : GetLastError();
    if (!h && e != ERROR_ACCESS_DENIED && e != ERROR_SERVICE_EXISTS &&
        e != ERROR_DUPLICATE_SERVICE_NAME && e != ERROR_SERVICE_MARKED_FOR_DELETE) {
        /* The account refused (ERROR_INVALID_SERVICE_ACCOUNT, ...): LocalSystem. */
        h = CreateServiceW(scm, wname, wdisplay, SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS,
                           SERVICE_AUTO_START, SERVICE_ERROR_NORMAL, cmd, NULL, NULL, NULL, NULL,
                           NULL);
        if (h)
            acct = "LocalSystem";
        else
            e = GetLastError();
    }
    if (!h) {
        rc = svc_fail(e, "cannot create the service", svc->name, why, cap);
        goto done;
    }
    if (account)
        *account = acct;
    if (wdesc) {
        SERVICE_DESCRIPTIONW d = {wdesc};
        ChangeServiceConfig2W(h, SERVICE_CONFIG_DESCRIPTION, &d);
    }
    /* Restarted after it fails (as systemd's Restart=on-failure): 5 s,
       30 s, then every 5 minutes (a bad configuration file does not make it
       spin), an exit code other than 0 counting as a failure; the count
       resets after a day. Optional: not every system has it. */
    SC_ACTION act[3] = {{SC_ACTION_RESTART, 5000}, {SC_ACTION_RESTART, 30000},
                        {SC_ACTION_RESTART, 300000}};
    SERVICE_FAILURE_ACTIONSW fa = {86400, NULL, NULL, 3, act};
    if (ChangeServiceConfig2W(h, SERVICE_CONFIG_FAILURE_ACTIONS, &fa)) {
        SERVICE_FAILURE_ACTIONS_FLAG flag = {TRUE};
        ChangeServiceConfig2W(h, SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, &flag);
    }
done:
    svc_close(scm, h);
    free(cmd);
    free(wname);
    free(wdisplay);
    free(wdesc);
    return rc;
}

/* Asks an open service to stop and waits for it. */
static int svc_stop_open(SC_HANDLE svc, const char *name, int wait_ms, char *why, size_t cap)
{
    SERVICE_STATUS_PROCESS st;
    if (!svc_query(svc, &st))
        return svc_fail(GetLastError(), "cannot query the service", name, why, cap);
    if (st.dwCurrentState == SERVICE_STOPPED)
        return 0;
    if (st.dwCurrentState != SERVICE_STOP_PENDING) {
        SERVICE_STATUS ss;
        if (!ControlService(svc, SERVICE_CONTROL_STOP, &ss)) {
            DWORD e = GetLastError();
            if (e != ERROR_SERVICE_NOT_ACTIVE && e != ERROR_SERVICE_CANNOT_ACCEPT_CTRL)
                return svc_fail(e, "cannot stop the service", name, why, cap);
        }
    }
    /* Starting (not yet accepting a stop) or stopping: wait for the end. */
    ULONGLONG until = GetTickCount64() + (ULONGLONG)(wait_ms > 0 ? wait_ms : 0);
    for (;;) {
        if (!svc_query(svc, &st))
            return svc_fail(GetLastError(), "cannot query the service", name, why, cap);
        if (st.dwCurrentState == SERVICE_STOPPED)
            return 0;
        if (st.dwCurrentState == SERVICE_RUNNING) {
            SERVICE_STATUS ss; /* it was starting when asked: ask again */
            ControlService(svc, SERVICE_CONTROL_STOP, &ss);
        }
        if (GetTickCount64() >= until) {
            snprintf(why, cap, "the service '%s' is still %s after %d s", name,
                     svc_state_name(st.dwCurrentState), wait_ms / 1000);
            return PD_ETIMEDOUT;
        }
        Sleep(200);
    }
}

int pd_plat_service_uninstall(const char *name, int wait_ms, char *why, size_t cap)
{
    SC_HANDLE scm, svc;
    int rc = svc_open(name, SC_MANAGER_CONNECT, DELETE | SERVICE_STOP | SERVICE_QUERY_STATUS,
                      &scm, &svc, why, cap);
    if (rc)
        return rc;
    rc = svc_stop_open(svc, name, wait_ms, why, cap);
    if (rc == 0 && !DeleteService(svc))
        rc = svc_fail(GetLastError(), "cannot delete the service", name, why, cap);
    svc_close(scm, svc);
    return rc;
}

int pd_plat_service_start(const char *name, int wait_ms, char *why, size_t cap)
{
    SC_HANDLE scm, svc;
    int rc = svc_open(name, SC_MANAGER_CONNECT, SERVICE_START | SERVICE_QUERY_STATUS, &scm, &svc,
                      why, cap);
    if (rc)
        return rc;
    if (!StartServiceW(svc, 0, NULL) && GetLastError() != ERROR_SERVICE_ALREADY_RUNNING) {
        rc = svc_fail(GetLastError(), "cannot start the service", name, why, cap);
        svc_close(scm, svc);
        return rc;
    }
    SERVICE_STATUS_PROCESS st;
    rc = svc_wait(svc, SERVICE_START_PENDING, wait_ms, &st, name, why, cap);
    /* A program may still fail just after it said it runs (its cache
       cannot be made, ...): look again a moment later. */
    for (int i = 0; rc == 0 && st.dwCurrentState == SERVICE_RUNNING && i < 5; i++) {
        Sleep(200);
        if (!svc_query(svc, &st))
            rc = svc_fail(GetLastError(), "cannot query the service", name, why, cap);
    }
    if (rc == 0 && st.dwCurrentState != SERVICE_RUNNING) {
        snprintf(why, cap, "the service '%s' did not stay running: it is %s, exit code %lu", name,
                 svc_state_name(st.dwCurrentState), (unsigned long)svc_exit_code(&st));
        rc = PD_ESYS;
    }
    svc_close(scm, svc);
    return rc;
}

int pd_plat_service_stop(const char *name, int wait_ms, char *why, size_t cap)
{
    SC_HANDLE scm, svc;
    int rc = svc_open(name, SC_MANAGER_CONNECT, SERVICE_STOP | SERVICE_QUERY_STATUS, &scm, &svc,
                      why, cap);
    if (rc)
        return rc;
    rc = svc_stop_open(svc, name, wait_ms, why, cap);
    svc_close(scm, svc);
    return rc;
}

/* A wide string as text of the ANSI code page, into out. */
static void narrow(const wchar_t *w, char *out, size_t cap)
{
    if (!w || !cap || WideCharToMultiByte(CP_ACP, 0, w, -1, out, (int)(cap > INT_MAX ? INT_MAX : cap),
                                          NULL, NULL) <= 0)
        snprintf(out, cap, "%s", w ? "?" : "");
}

int pd_plat_which(const char *name, char *out, size_t cap)
{
    DWORD err = 0;
    wchar_t *w = resolve_program(name, NULL, &err);
    if (!w)
        return PD_EIO;
    narrow(w, out, cap);
    free(w);
    return 0;
}

int pd_plat_service_status(const char *name, pd_plat_svc_state_t *state, char *info, size_t cap)
{
    char why[512];
    SC_HANDLE scm, svc;
    int rc = svc_open(name, SC_MANAGER_CONNECT, SERVICE_QUERY_STATUS | SERVICE_QUERY_CONFIG, &scm,
                      &svc, why, sizeof why);
    SERVICE_STATUS_PROCESS st;
    if (rc == 0 && !svc_query(svc, &st))
        rc = svc_fail(GetLastError(), "cannot query the service", name, why, sizeof why);
    if (rc) {
        svc_close(scm, svc);
        if (info && cap)
            snprintf(info, cap, "%s", why);
        return rc;
    }
    switch (st.dwCurrentState) {
    case SERVICE_STOPPED: *state = PD_SVC_STOPPED; break;
    case SERVICE_START_PENDING: *state = PD_SVC_STARTING; break;
    case SERVICE_RUNNING: *state = PD_SVC_RUNNING; break;
    case SERVICE_STOP_PENDING: *state = PD_SVC_STOPPING; break;
    default: *state = PD_SVC_OTHER; break;
    }
    if (info && cap) {
        size_t len = 0;
        int w = snprintf(info, cap, "service %s: %s", name, svc_state_name(st.dwCurrentState));
        len = w > 0 && (size_t)w < cap ? (size_t)w : cap - 1;
        if (st.dwCurrentState != SERVICE_STOPPED && st.dwProcessId)
            w = snprintf(info + len, cap - len, " (pid %lu)", (unsigned long)st.dwProcessId);
        else if (st.dwCurrentState == SERVICE_STOPPED && svc_exit_code(&st) &&
                 svc_exit_code(&st) != ERROR_SERVICE_NEVER_STARTED)
            w = snprintf(info + len, cap - len, " (last exit code %lu)",
                         (unsigned long)svc_exit_code(&st));
        else
            w = 0;
        len += w > 0 && (size_t)w < cap - len ? (size_t)w : 0;
        DWORD need = 0;
        QueryServiceConfigW(svc, NULL, 0, &need);
        QUERY_SERVICE_CONFIGW *qc = need ? malloc(need) : NULL;
        if (qc && QueryServiceConfigW(svc, qc, need, &need)) {
            char acct[256], path[4096];
            narrow(qc->lpServiceStartName, acct, sizeof acct);
            narrow(qc->lpBinaryPathName, path, sizeof path);
            const char *start = qc->dwStartType == SERVICE_AUTO_START     ? "at boot"
                                : qc->dwStartType == SERVICE_DEMAND_START ? "on demand"
                                : qc->dwStartType == SERVICE_DISABLED     ? "never (disabled)"
                                                                          : "by the system";
            snprintf(info + len, cap - len, "\n  starts %s, as %s\n  command line: %s", start,
                     acct[0] ? acct : "LocalSystem", path);
        }
        free(qc);
    }
    svc_close(scm, svc);
    return 0;
}

static struct {
    wchar_t *name;
    int (*main_fn)(int, char **);
    int argc;
    char **argv;
    int rc;
    SERVICE_STATUS_HANDLE handle;
    SRWLOCK lock; /* around status reports: the handler's and ServiceMain's */
    DWORD state;
} g_svc = {.lock = SRWLOCK_INIT};

static void svc_report(DWORD state, int exit_code, DWORD wait_hint)
{
    AcquireSRWLockExclusive(&g_svc.lock);
    /* Once stopping, a late "running" is not reported. */
    if (!(g_svc.state == SERVICE_STOP_PENDING && state == SERVICE_RUNNING) &&
        g_svc.state != SERVICE_STOPPED) {
        static DWORD checkpoint;
        SERVICE_STATUS st = {0};
        st.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
        st.dwCurrentState = state;
        st.dwControlsAccepted =
            state == SERVICE_RUNNING
                ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN | SERVICE_ACCEPT_PARAMCHANGE
                : 0;
        st.dwWin32ExitCode = exit_code ? ERROR_SERVICE_SPECIFIC_ERROR : NO_ERROR;
        st.dwServiceSpecificExitCode = (DWORD)exit_code;
        st.dwCheckPoint = state == SERVICE_RUNNING || state == SERVICE_STOPPED ? 0 : ++checkpoint;
        st.dwWaitHint = wait_hint;
        g_svc.state = state;
        SetServiceStatus(g_svc.handle, &st);
    }
    ReleaseSRWLockExclusive(&g_svc.lock);
}

static DWORD WINAPI svc_handler(DWORD control, DWORD type, LPVOID data, LPVOID ctx)
{
    (void)type;
    (void)data;
    (void)ctx;
    switch (control) {
    case SERVICE_CONTROL_STOP:
    case SERVICE_CONTROL_SHUTDOWN: {
        /* The worker says bye and stops its slots: a few seconds. */
        svc_report(SERVICE_STOP_PENDING, 0, 30000);
        InterlockedExchange(&g_svc_stop, 1);
        void (*f)(int) = g_on_stop;
        if (f)
            f(1); /* as SIGTERM */
        return NO_ERROR;
    }
    case SERVICE_CONTROL_PARAMCHANGE: {
        void (*f)(int) = g_on_reload;
        if (f)
            f(1); /* as SIGHUP */
        return NO_ERROR;
    }
    case SERVICE_CONTROL_INTERROGATE:
        return NO_ERROR;
    default:
        return ERROR_CALL_NOT_IMPLEMENTED;
    }
}

/* pd_plat_on_stop was called: the program has read its configuration
   and takes stop requests. */
static void svc_started(void)
{
    if (g_svc.handle)
        svc_report(SERVICE_RUNNING, 0, 0);
}

static void WINAPI svc_main(DWORD argc, LPWSTR *argv)
{
    (void)argc;
    (void)argv; /* the start parameters: the command line holds the options */
    g_svc.handle = RegisterServiceCtrlHandlerExW(g_svc.name, svc_handler, NULL);
    if (!g_svc.handle) {
        g_svc.rc = 1;
        return;
    }
    /* Running once main_fn calls pd_plat_on_stop (svc_started); one that
       ends before (a bad option, a bad configuration file) goes from
       starting to stopped with its exit code. */
    svc_report(SERVICE_START_PENDING, 0, 30000);
    g_svc.rc = g_svc.main_fn(g_svc.argc, g_svc.argv);
    svc_report(SERVICE_STOPPED, g_svc.rc, 0);
}

int pd_plat_service_run(const char *name, int (*main_fn)(int, char **), int argc, char **argv,
                        char *why, size_t cap)
{
    g_svc.name = widen(name);
    if (!g_svc.name) {
        snprintf(why, cap, "bad service name '%s'", name);
        return PD_ESYS;
    }
    InterlockedExchange(&g_in_service, 1);
    g_svc.main_fn = main_fn;
    g_svc.argc = argc;
    g_svc.argv = argv;
    SERVICE_TABLE_ENTRYW table[] = {{g_svc.name, svc_main}, {NULL, NULL}};
    if (!StartServiceCtrlDispatcherW(table)) {
        DWORD e = GetLastError();
        if (e == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT)
            snprintf(why, cap, "this process was not started by the Service Control Manager");
        else
            svc_fail(e, "cannot connect to the Service Control Manager", name, why, cap);
        free(g_svc.name);
        g_svc.name = NULL;
        return PD_ESYS;
    }
    free(g_svc.name);
    g_svc.name = NULL;
    return g_svc.rc;
}

int pd_plat_stderr_to_file(const char *path, char *why, size_t cap)
{
    wchar_t *w = widen(path);
    if (!w) {
        snprintf(why, cap, "bad file name %s", path);
        return PD_ESYS;
    }
    /* Appending only: each write lands at the end, whichever process (the
       worker, a slot) makes it. */
    HANDLE h = CreateFileW(w, FILE_APPEND_DATA | SYNCHRONIZE,
                           FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    DWORD e = GetLastError();
    free(w);
    if (h == INVALID_HANDLE_VALUE) {
        char msg[300];
        win_message(e, msg, sizeof msg);
        snprintf(why, cap, "cannot open %s: %s", path, msg);
        return PD_ESYS;
    }
    int fd = _open_osfhandle((intptr_t)h, _O_BINARY | _O_WRONLY);
    if (fd < 0) {
        CloseHandle(h);
        snprintf(why, cap, "cannot open %s: %s", path, strerror(errno));
        return PD_ESYS;
    }
    fflush(stdout);
    fflush(stderr);
    /* Descriptors 1 and 2, and the streams on them. In a process started
       without standard handles (a service) the C runtime may have left
       stdout and stderr on no descriptor at all (-2), which freopen does
       not take either (Wine's msvcrt): such a stream is put on its
       descriptor where the runtime's FILE shows it (msvcrt), else reopened
       on NUL and that descriptor made the file (UCRT). */
    bool ok = _dup2(fd, 2) == 0 && _dup2(fd, 1) == 0;
    FILE *streams[2] = {stderr, stdout};
    for (int i = 0; ok && i < 2; i++) {
        if (_fileno(streams[i]) < 0) {
#ifndef _UCRT
            streams[i]->_file = 2 - i;
#else
            if (!freopen("NUL", "wb", streams[i]))
                ok = false;
#endif
        }
        if (ok && _fileno(streams[i]) != fd && _dup2(fd, _fileno(streams[i])) != 0)
            ok = false;
        if (_fileno(streams[i]) < 0)
            ok = false;
        clearerr(streams[i]);
        setvbuf(streams[i], NULL, _IONBF, 0);
    }
    if (fd > 2 && fd != _fileno(stderr) && fd != _fileno(stdout))
        _close(fd);
    if (!ok) {
        snprintf(why, cap, "cannot send standard error to %s: %s", path, strerror(errno));
        return PD_ESYS;
    }
    /* What children inherit (pd_plat_spawn passes on STD_ERROR_HANDLE). */
    SetStdHandle(STD_ERROR_HANDLE, (HANDLE)_get_osfhandle(_fileno(stderr)));
    SetStdHandle(STD_OUTPUT_HANDLE, (HANDLE)_get_osfhandle(_fileno(stdout)));
    return 0;
}

/* ---- what one job may take ---------------------------------------------- */

/* Not yet on Windows: a slot's Job Object could hold a job memory limit
   (JOB_OBJECT_LIMIT_JOB_MEMORY) and a CPU time limit set by the worker
   before each job; until then a Windows worker enforces no memory or CPU
   limit and its jobs' output goes to its log as before (docs/worker.md). */
int pd_plat_job_limits(uint64_t data_max, uint64_t cpu_s)
{
    (void) data_max;
    (void) cpu_s;
    return PD_ESYS;
}

uint64_t pd_plat_rss(int pid, bool group)
{
    (void) pid;
    (void) group;
    return 0;
}

bool pd_plat_status_cpu_limit(int status)
{
    (void) status;
    return false;
}

pd_plat_outcap_t *pd_plat_outcap_start(int *log_fd)
{
    (void) log_fd;
    errno = ENOSYS;
    return NULL;
}

void pd_plat_outcap_reset(pd_plat_outcap_t *o, size_t cap)
{
    (void) o;
    (void) cap;
}

const char *pd_plat_outcap_take(pd_plat_outcap_t *o, size_t *len, uint64_t *dropped)
{
    (void) o;
    *len = 0;
    *dropped = 0;
    return "";
}
