/*  pd_plat: what differs between POSIX and Windows, behind one interface.

    Every call that depends on the operating system sits here, with one
    implementation in pd_plat_posix.c and one in pd_plat_win.c (MinGW-w64);
    the broker, worker and client files never test _WIN32. The small block
    of compatibility definitions below (O_CLOEXEC, strndup, ...) is the only
    conditional code outside those two files.

    Processes. A child is named by its process id (an int on both systems).
    A *framed* child (pd_plat_spawn) talks to its parent over two pipes: it
    reads on fd PD_PLAT_CHILD_IN (3) and writes on fd PD_PLAT_CHILD_OUT (4)
    (on Windows, pd_plat_child_init() makes those CRT descriptors from the
    handles the parent passed). The parent writes to to_child with
    pd_plat_write_all() and polls from_child with zmq_poll (a pipe on POSIX,
    a loopback socket fed by a relay thread on Windows, since zmq_poll polls
    only sockets there) and reads it with pd_plat_read(). Each child runs
    with its whole process tree in one group (a POSIX process group, a
    Windows Job Object), so that a kill or a suspension reaches what the
    task started too.

    Wait statuses are ints: POSIX wait statuses, or Windows exit codes (an
    exception such as 0xC0000005 counts as a crash, the Windows analogue of
    a signal). pd_plat_status_* read them.
*/
#ifndef PD_PLAT_H
#define PD_PLAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* ---- compatibility: names POSIX has and MinGW-w64 lacks ---------------- */
#ifdef _WIN32
#include <fcntl.h>
/* Every descriptor Playdoh opens is O_CLOEXEC: there that also means
   binary, never the C runtime's text mode (which turns \n into \r\n). */
#ifndef O_CLOEXEC
#define O_CLOEXEC (_O_NOINHERIT | _O_BINARY)
#endif
#ifndef CLOCK_MONOTONIC_COARSE
#define CLOCK_MONOTONIC_COARSE CLOCK_MONOTONIC
#endif
#include <stdio.h>
#include <time.h>
char *strndup(const char *s, size_t n);
ssize_t getline(char **line, size_t *cap, FILE *f);
int setenv(const char *name, const char *value, int overwrite);
int unsetenv(const char *name);
char *mkdtemp(char *tmpl);
#define localtime_r(t, tm) (localtime_s((tm), (t)) == 0 ? (tm) : NULL)
#define gmtime_r(t, tm) (gmtime_s((tm), (t)) == 0 ? (tm) : NULL)
#define PD_PLAT_WINDOWS 1
#else
#define PD_PLAT_WINDOWS 0
#endif

/* ---- the machine -------------------------------------------------------- */

/* "linux-x86_64", "windows-x86_64", ...: the platform a prebuilt module
   must be built for. */
const char *pd_plat_name(void);
/* Online CPUs (>= 1). */
int pd_plat_ncpu(void);
/* This process's id. */
int pd_plat_getpid(void);
/* The running executable's full path into out. Returns 0 or PD_EIO. */
int pd_plat_self_exe(char *out, size_t cap);
/* True for a character that separates directories in a path: '/' (and
   '\\' on Windows). */
bool pd_plat_dirsep(char c);

/* The machine's host name into out (NUL-terminated). 0 or -1. */
int pd_plat_hostname(char *out, size_t cap);
/* The local address (text; an IPv6 one in brackets) of the interface that
   routes to host:port, found by connecting a UDP socket (nothing is
   sent). 0 or PD_EINVAL. */
int pd_plat_route_addr(const char *host, const char *port, char *out, size_t cap);
/* Whether host (a name or an address; an IPv6 one may be in brackets)
   resolves. 0, or PD_EINVAL with the resolver's reason in why. */
int pd_plat_resolve(const char *host, char *why, size_t cap);

/* ---- files -------------------------------------------------------------- */

/* mkdir with a mode (the mode is ignored on Windows). */
int pd_plat_mkdir(const char *path, int mode);
/* Whether dir is a directory this process may enter (make its working
   directory). 0, or -1 with errno: ENOENT (nothing there), ENOTDIR (not a
   directory), EACCES (no permission). */
int pd_plat_dir_enter_check(const char *dir);
/* Removes path and, when it is a directory, everything in it, without
   following links (a link inside is removed, not what it points to).
   Returns 0, or -1 with errno set when something could not be removed
   (the rest is still removed). */
int pd_plat_remove_tree(const char *path);
/* This process's working directory into out. 0, or -1 (errno set). */
int pd_plat_getcwd(char *out, size_t cap);
/* Renames from over to, replacing to atomically when it exists. 0 or -1. */
int pd_plat_rename(const char *from, const char *to);
/* A file's modification time in nanoseconds since the epoch. */
int64_t pd_plat_mtime_ns(const struct stat *st);
/* Maps a whole file read-only; *len its size. NULL (errno set) on failure;
   an empty file maps to a non-NULL pointer of length 0. */
const void *pd_plat_map_file(const char *path, size_t *len);
void pd_plat_unmap(const void *addr, size_t len);

/* The directories Playdoh keeps its files in, for this user (or, for a
   service, the machine): configuration ($XDG_CONFIG_HOME/playdoh,
   ~/.config/playdoh; %APPDATA%\playdoh), cache ($XDG_CACHE_HOME/playdoh,
   ~/.cache/playdoh; %LOCALAPPDATA%\playdoh\cache), state
   ($XDG_STATE_HOME/playdoh, ~/.local/state/playdoh; %LOCALAPPDATA%\playdoh)
   and runtime ($XDG_RUNTIME_DIR/playdoh or /run/playdoh;
   %LOCALAPPDATA%\playdoh\run). Returns 0, or PD_EIO when none of the
   environment variables that locate it is set (out then says which). */
typedef enum { PD_DIR_CONFIG, PD_DIR_CACHE, PD_DIR_STATE, PD_DIR_RUNTIME } pd_dir_t;
int pd_plat_dir(pd_dir_t which, char *out, size_t cap);

/* True when a secret file's permissions keep other users out: no group or
   other bits on POSIX; on Windows the directory's ACL decides (the user's
   profile, or %PROGRAMDATA%\\playdoh made private by the installer). */
bool pd_plat_mode_private(const struct stat *st);
/* The user running this process ("user" when unknown), for key names. */
void pd_plat_username(char *out, size_t cap);
/* True when path is a file this process may execute. */
bool pd_plat_executable(const char *path);
/* The columns of the terminal that stream f writes to; 80 when unknown. */
int pd_plat_term_width(void *f);

/* ---- loading modules ---------------------------------------------------- */

/* dlopen(RTLD_NOW | RTLD_LOCAL) / LoadLibrary. NULL with the loader's
   message in err on failure. */
void *pd_plat_dlopen(const char *path, char *err, size_t cap);
/* The symbol `name` defined by the module itself (not by a library it
   links), or NULL. */
void *pd_plat_dlsym(void *handle, const char *name);
void pd_plat_dlclose(void *handle);
/* The CUDA driver's library (libcuda.so.1, nvcuda.dll), loaded by name. */
const char *pd_plat_cuda_driver(void);
/* NVRTC: the folder of a CUDA toolkit that holds it ("lib64", "bin"), its
   file name there ("libnvrtc.so"; on Windows NULL: the versioned DLLs
   below), and the names to try by the loader's search (NULL-terminated:
   "libnvrtc.so.13", ...; "nvrtc64_130_0.dll", ...). */
const char *pd_plat_cuda_libdir(void);
const char *pd_plat_nvrtc_file(void);
const char *const *pd_plat_nvrtc_names(void);
/* A system library (the CUDA driver, NVRTC) loaded for good: it stays
   mapped after pd_plat_dlclose (RTLD_NODELETE; a pinned module), since such
   libraries start threads that must outlive the handle. NULL with the
   loader's message (without the path) in err. */
void *pd_plat_dlopen_system(const char *path, char *err, size_t cap);
/* Any symbol the library or its dependencies define (dlsym,
   GetProcAddress), or NULL. */
void *pd_plat_dlsym_any(void *handle, const char *name);

/* The import library through which a task module links against the task
   API this program exports, or NULL where none is needed: on POSIX the
   program exports it dynamically; on Windows it is libplaydoh-worker.exe.a
   beside the executable (the module cache keeps a copy that the compiler
   is given). */
const char *pd_plat_module_implib(void);
/* The C compiler that compiles task modules unless PLAYDOH_CC names
   another: "cc" on POSIX, "gcc" (MinGW-w64, on PATH) on Windows. */
const char *pd_plat_default_cc(void);
/* The file a program name runs, as pd_plat_run() finds it: a name with a
   directory in it as it is (on Windows with ".exe" added where needed), a
   bare name searched in PATH. 0 with its path in out, or PD_EIO when no
   such program is there. */
int pd_plat_which(const char *name, char *out, size_t cap);

/* ---- children ----------------------------------------------------------- */

#define PD_PLAT_CHILD_IN 3  /* a framed child reads its parent's frames here */
#define PD_PLAT_CHILD_OUT 4 /* and writes its own here */

/* Starts exe with argv (NULL-terminated; argv[0] is only a display name)
   as a framed child in a group of its own, its standard input empty and
   its standard output sent to its standard error. env_assign, when not
   NULL, is one "NAME=value" set in the child's environment in place of any
   of that name. *to_child is a blocking descriptor the parent writes;
   *from_child a non-blocking pollable one it reads with pd_plat_read().
   Returns the pid, or -1 with errno set (nothing left open). */
int pd_plat_spawn(const char *exe, char *const argv[], const char *env_assign, int *to_child,
                  int *from_child);
/* In a framed child, first thing: makes fds 3 and 4 from what the parent
   passed. Returns 0, or -1 when this process was not started as a framed
   child. */
int pd_plat_child_init(void);
/* In a framed child: a crash ends the process with its own status (no
   inherited handler, no error dialog), on_term (may be NULL: the default)
   runs on a polite stop request (SIGTERM), a broken pipe is an error
   return (ignore_pipe) or the default signal, and the child dies with its
   parent where the system can do that. Returns false when the parent (pid)
   is already gone. */
bool pd_plat_child_setup(int parent, void (*on_term)(int), bool ignore_pipe);

/* Reads up to n bytes of from_child without blocking: > 0 bytes read, 0 at
   end of file, -1 with errno EAGAIN when nothing is there (or another
   errno on failure). */
long pd_plat_read(int fd, void *buf, size_t n);
/* Writes all of buf to a blocking descriptor (to_child, fd 4). 0 or -1. */
int pd_plat_write_all(int fd, const void *buf, size_t len);
/* Reads exactly len bytes from a blocking descriptor (fd 3): 1, 0 at EOF
   before the first byte, -1 on error or EOF in the middle. */
int pd_plat_read_all(int fd, void *buf, size_t len);
/* True when a read of the blocking descriptor fd (fd 3 in a framed child)
   would not block: data is there, or end of file (poll / PeekNamedPipe). */
bool pd_plat_readable(int fd);
/* Closes a to_child or from_child descriptor. */
void pd_plat_close(int fd);

/* Kills the child and everything in its group at once. */
void pd_plat_kill_tree(int pid);
/* Suspends (true) or resumes (false) the child's whole group. 0, or
   PD_ESYS where the system cannot. */
int pd_plat_suspend_tree(int pid, bool suspend);
/* Reaps the child: 1 with *status set when it has ended (block: waits for
   it), 0 while it runs, -1 when pid is no child of ours. Releases the
   child's handles once it reports 1 or -1. */
int pd_plat_wait(int pid, int *status, bool block);

/* True when the status says the child crashed or was killed (a signal, an
   exception). */
bool pd_plat_status_crashed(int status);
/* Its exit status, or -1 when it crashed. */
int pd_plat_status_exit(int status);
/* The signal (or exception code) that ended it, or 0. */
int pd_plat_status_signal(int status);
/* "killed by signal 11 (Segmentation fault)", "exited with status 3",
   "ended by exception 0xc0000005 (access violation)". Returns out. */
const char *pd_plat_status_str(int status, char *out, size_t cap);

/* Runs argv to its end (argv[0] a path, or a program looked up in PATH):
   writes inlen bytes of input to its standard input (none when input is
   NULL) and collects standard output and standard error into cap (each
   NUL-terminated, at most outcap - 1 / errcap - 1 bytes kept, outlen and
   errlen the bytes kept, the rest read and dropped, trunc set when any
   was dropped and outdrop / errdrop counting them; out and err may be
   NULL). Kills it and what it started
   after timeout_ms (< 0: no limit); it dies with the calling thread
   (POSIX) or process (Windows: a Job Object). cap->cwd: its working
   directory, or NULL. Returns its status (one that cannot be run exits
   127 with the reason in err), PD_ETIMEDOUT or PD_ESYS. A Windows status
   may be negative (an exception): test for those two codes, not for < 0. */
typedef struct {
    const char *cwd; /* the working directory, or NULL: this process's */
    char *out;
    size_t outcap;
    size_t outlen;
    char *err;
    size_t errcap;
    size_t errlen;
    bool trunc;
    uint64_t outdrop; /* bytes of standard output read and dropped */
    uint64_t errdrop; /* bytes of standard error read and dropped */
} pd_plat_capture_t;
int pd_plat_run(char *const argv[], const void *input, size_t inlen, pd_plat_capture_t *cap,
                int timeout_ms);
/* The argv that runs a command line through the system's shell
   ({"/bin/sh", "-c", cmd} / {"cmd.exe", "/d", "/s", "/c", cmd}), written
   into argv (4 + 1 entries at least). */
void pd_plat_shell_argv(const char *cmd, char *argv[6]);

/* ---- what one job may take (in a slot process) -------------------------- */

/* Sets this process's limits for the job it is about to run (what its
   children inherit too): data_max bytes of data (RLIMIT_DATA: an
   allocation past it fails) and cpu_s more seconds of CPU time from now
   (RLIMIT_CPU over the time used so far: past it the process gets SIGXCPU,
   which ends it). A 0 puts back the limit the process started with. 0, or
   PD_ESYS where the system has no such limit (Windows: the worker's
   measurements alone enforce the job's limits). */
int pd_plat_job_limits(uint64_t data_max, uint64_t cpu_s);
/* Resident memory in bytes of process pid, or with group of every process
   in its group (the slot and what its job started). 0 when unknown. */
uint64_t pd_plat_rss(int pid, bool group);
/* True when the status says the process was ended for going over its CPU
   time limit (SIGXCPU; never on Windows). */
bool pd_plat_status_cpu_limit(int status);

/* A job's output, captured. pd_plat_outcap_start sends this process's
   standard output and standard error into a pipe that a thread of its own
   reads, keeping at most the cap set by pd_plat_outcap_reset and counting
   the rest, so that neither a job that prints much nor one that prints for
   ever fills a disk or a log; *log_fd gets a descriptor on the standard
   error the process had before, for its own log. NULL (errno set) where it
   cannot: output then goes where it went. */
typedef struct pd_plat_outcap pd_plat_outcap_t;
pd_plat_outcap_t *pd_plat_outcap_start(int *log_fd);
/* Drops what was kept and keeps at most cap bytes from now. */
void pd_plat_outcap_reset(pd_plat_outcap_t *o, size_t cap);
/* Waits until everything written so far has been read, then returns the
   bytes kept since the last reset (borrowed until the next call; *len
   bytes) and, in *dropped, how many were not kept. */
const char *pd_plat_outcap_take(pd_plat_outcap_t *o, size_t *len, uint64_t *dropped);

/* ---- stop requests ------------------------------------------------------ */

/* Calls on_stop(1) from a signal handler (SIGINT, SIGTERM) or the console
   control handler (Ctrl-C, close, shutdown), and on_reload(1) on SIGHUP
   where there is one (may be NULL). Ignores SIGPIPE. */
void pd_plat_on_stop(void (*on_stop)(int), void (*on_reload)(int));

/* Holds the stop signals back (true) while the threads of ZeroMQ and CZMQ
   start, which inherit the mask, so that the signals interrupt the main
   thread's zmq_poll; lets them through again (false). Nothing to do where
   a console handler runs on a thread of its own (Windows). */
void pd_plat_hold_stop(bool hold);

/* The worker's control endpoint for the file path: "ipc://PATH" on POSIX,
   where the socket file's mode keeps others out (token ""). Windows has no
   ipc://: the worker binds tcp://127.0.0.1:* and writes its endpoint and a
   random token into the file path, in a directory only the owner (or, for
   the service, administrators) can read; a request must carry the token.
   Returns 0, or PD_EIO with ep holding why. */
#define PD_PLAT_TOKEN_LEN 64
int pd_plat_control_endpoint(const char *path, char *ep, size_t cap,
                             char token[PD_PLAT_TOKEN_LEN + 1]);
/* Binds the worker's control socket (a ZMQ_REP) for the file path, which
   only the owner (mode) may use, as above; token gets what requests must
   carry ("" on POSIX). Returns 0, or PD_ESYS with why set. */
int pd_plat_control_bind(void *sock, const char *path, int mode,
                         char token[PD_PLAT_TOKEN_LEN + 1], char *why, size_t cap);
/* The control socket's default path: $RUNTIME_DIRECTORY/worker.ctl (a
   systemd service), /run/playdoh/worker.ctl as root,
   $XDG_RUNTIME_DIR/playdoh/worker.ctl, else /tmp/playdoh-UID/worker.ctl;
   on Windows %LOCALAPPDATA%\playdoh\run\worker.ctl, or as a service
   %PROGRAMDATA%\playdoh\worker.ctl. service_first (for `ctl`): the
   service's path (/run/playdoh/worker.ctl, %PROGRAMDATA%\playdoh\worker.ctl)
   when that file exists. */
void pd_plat_control_default(char *out, size_t cap, bool service_first);

/* Ctrl-C as a request the program polls for: while caught (true), an
   interrupt does not end the process, and pd_plat_interrupt_taken() says
   (once) that one came. */
void pd_plat_catch_interrupt(bool on);
bool pd_plat_interrupt_taken(void);

/* ---- the owner's use of the machine ------------------------------------- */

/* The machine's busy and total CPU time since boot, in any unit shared by
   both (100 ns on Windows), and the number of CPUs. 0, or PD_EIO where
   the system has no such call: on POSIX pd_load reads the procfs. */
int pd_plat_cpu_times(unsigned long long *busy, unsigned long long *total, int *ncpu);
/* CPU time (same unit) used by process pid and its reaped children. 0 when
   it is gone. */
unsigned long long pd_plat_proc_cpu(int pid);

/* ---- a system service --------------------------------------------------- */

/* A program registered with the system's service manager: the Service
   Control Manager (SCM) on Windows. On POSIX every call below but
   pd_plat_stderr_to_file returns PD_ESYS with why saying that there the
   worker runs as a systemd service (`systemctl enable --now
   playdoh-worker`, docs/cluster.md).

   Failures return PD_EREFUSED when the system refuses for want of rights
   (why then says to run from an elevated prompt), PD_ENOJOB when no service
   has that name, PD_ETIMEDOUT when it did not reach the state asked for in
   time, and PD_ESYS otherwise; why always holds a sentence. */
typedef struct {
    const char *name;        /* the service's key name: "playdoh-worker" */
    const char *display;     /* its display name: "Playdoh worker" */
    const char *description; /* one sentence shown beside it */
} pd_plat_service_t;

/* The state pd_plat_service_status reports. */
typedef enum {
    PD_SVC_STOPPED,
    PD_SVC_STARTING,
    PD_SVC_RUNNING,
    PD_SVC_STOPPING,
    PD_SVC_OTHER /* paused, or pausing / continuing */
} pd_plat_svc_state_t;

/* The machine's directory of a service's files: %PROGRAMDATA%\playdoh. 0,
   or PD_EIO / PD_ESYS with out holding why. */
int pd_plat_service_dir(char *out, size_t cap);

/* Registers svc to start with the machine (SERVICE_AUTO_START) as this
   program (its full path) with the arguments argv (NULL-terminated, quoted
   as the system's command line wants), under the low-privilege account
   NT AUTHORITY\LocalService, or LocalSystem where the system refuses that
   account (*account then says which one it got; may be NULL). Creates
   pd_plat_service_dir with an access list for the system, the
   administrators and that account only. PD_EREFUSED also when a service of
   that name exists (why says to uninstall it first). */
int pd_plat_service_install(const pd_plat_service_t *svc, char *const argv[],
                            const char **account, char *why, size_t cap);
/* Stops the service (waiting up to wait_ms) and deletes it. */
int pd_plat_service_uninstall(const char *name, int wait_ms, char *why, size_t cap);
/* Starts it and waits up to wait_ms until it runs (PD_ESYS when it stopped
   again: why then gives its exit code). Starting a running one is 0. */
int pd_plat_service_start(const char *name, int wait_ms, char *why, size_t cap);
/* Asks it to stop and waits up to wait_ms until it has. Stopping a stopped
   one is 0. */
int pd_plat_service_stop(const char *name, int wait_ms, char *why, size_t cap);
/* Its state into *state, and into info (may be NULL) a few lines for a
   person: the state, its process id, how it starts, its account and its
   command line. 0 or a failure (PD_ENOJOB: not installed). */
int pd_plat_service_status(const char *name, pd_plat_svc_state_t *state, char *info,
                           size_t cap);

/* In the program the service manager started: connects to it
   (StartServiceCtrlDispatcher) and runs main_fn(argc, argv) as the
   service named name, reporting it running, then stopped with main_fn's
   exit code. A stop or shutdown request of the manager reaches the stop
   handler of pd_plat_on_stop (set by main_fn; a request that comes before
   is kept for it), exactly as SIGTERM does on POSIX, and the manager is
   told that the stop is pending; a "paramchange" request reaches its
   reload handler, as SIGHUP does. The service reports itself starting
   until main_fn calls pd_plat_on_stop, running from then on. Returns
   main_fn's exit code, or PD_ESYS (why set) when this process was not
   started by the service manager. */
int pd_plat_service_run(const char *name, int (*main_fn)(int, char **), int argc,
                        char **argv, char *why, size_t cap);

/* Sends this process's standard error (and standard output) to the file
   path, appended to (created when missing), so that what it and the
   children it starts print goes there: a service has no console. 0, or
   PD_ESYS with why set. */
int pd_plat_stderr_to_file(const char *path, char *why, size_t cap);

#endif
