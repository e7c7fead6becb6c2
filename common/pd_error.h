/*  pd_error: the one table of Playdoh error codes, and of the programs'
    exit statuses.

    Every fallible function returns 0 (or a count) on success and a negative
    PD_E* code on failure. pd_strerror() turns a code into a sentence and
    pd_err_name() into its symbol, as libuv does with uv_strerror(). No code
    is -1: -1 stays what POSIX and the task API (playdoh_task.h) make it, "failed"
    or "failed, see errno", so that a stray -1 can never be read as a
    Playdoh code. Codes travel between processes by name (pd_err_name), never
    by number.

    How error text travels: a function that has more to say than its code
    writes one sentence into a buffer its caller passes (char *why, size_t
    cap; pd_why() formats it and returns the code); an object that outlives
    the call keeps its last such sentence (pd_client_error). A system call
    failure returns pd_sys_error(), which keeps errno for the thread, and
    pd_strerror_sys() says what the system said.
*/
#ifndef PD_ERROR_H
#define PD_ERROR_H

#include <stddef.h>

/* X(name, value, message) */
#define PD_ERRNO_MAP(X)                                                              \
    X(ENOMEM, -2, "out of memory")                                                   \
    X(EPROTO, -3, "malformed message")                                               \
    X(EVERSION, -4, "unsupported protocol version")                                  \
    X(ETYPE, -5, "unknown message type")                                             \
    X(ETOOBIG, -6, "message or value too large")                                     \
    X(ENOFIELD, -7, "required field missing")                                        \
    X(EOVERLOAD, -8, "broker overloaded")                                            \
    X(ENOJOB, -9, "unknown job id")                                                  \
    X(ENOMODULE, -10, "unknown module")                                              \
    X(ECOMPILE, -11, "module failed to compile")                                     \
    X(ENOFUNC, -12, "no such function in module")                                    \
    X(ETIMEDOUT, -13, "timed out")                                                   \
    X(ECRASH, -14, "task crashed")                                                   \
    X(ETASK, -15, "task reported an error")                                          \
    X(ECANCELLED, -16, "cancelled")                                                  \
    X(EIO, -17, "input/output error")                                                \
    X(EUNREACH, -18, "broker unreachable")                                           \
    X(EJSON, -19, "invalid JSON")                                                    \
    X(ELOST, -20, "job lost its worker too many times")                              \
    X(ESYS, -21, "system call failed")                                               \
    X(ENOTDONE, -22, "job not finished")                                             \
    X(EREFUSED, -23, "request refused")                                              \
    X(ENOGPU, -24, "no GPU slot for a GPU job")                                      \
    X(ECUDA, -25, "CUDA driver error")                                               \
    X(EAUTH, -26, "authentication failed")                                           \
    X(ENOTRUSTED, -27, "broker key not trusted")                                     \
    X(ENOKEY, -28, "no key")                                                         \
    X(EINVAL, -29, "invalid argument")                                               \
    X(ENOSLOTS, -40, "the cluster has fewer slots than the task has nodes")          \
    X(EABORTED, -41, "aborted because another node of the task failed")              \
    X(EPEER, -42, "the node that would send it has finished")                       \
    X(ELIMIT, -43, "the job went over one of its limits")                            \
    X(EPERM, -44, "the id belongs to another owner")

enum {
#define PD_X(name, value, msg) PD_##name = value,
    PD_ERRNO_MAP(PD_X)
#undef PD_X
};

/* Sentence for an error code; static storage, never NULL. */
const char *pd_strerror(int code);
/* Symbol for an error code ("PD_EPROTO"); static storage, never NULL. */
const char *pd_err_name(int code);
/* The code a symbol names (pd_err_name's inverse), or 0 for a name that is
   not one of the table's (a peer's newer code). */
int pd_err_from_name(const char *name);

/* Records errno for this thread and returns PD_ESYS: `return pd_sys_error();`
   right after the failed call. */
int pd_sys_error(void);
/* The errno pd_sys_error() last recorded on this thread (0 if none). */
int pd_sys_errno(void);
/* Like pd_strerror(), but for PD_ESYS the sentence ends with what the system
   said for the errno recorded on this thread ("system call failed: No space
   left on device"). Writes into buf (cap bytes, truncated to fit) and returns
   buf. */
const char *pd_strerror_sys(int code, char *buf, size_t cap);
/* Writes one sentence (printf format) into why (cap bytes, truncated; why may
   be NULL) and returns code: `return pd_why(why, cap, PD_EINVAL, "...", ...);` */
int pd_why(char *why, size_t cap, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Exit statuses of the programs (playdoh-broker, playdoh-worker,
   playdoh-submit), one table so that a script reads them alike. */
enum {
    PD_EXIT_OK = 0,           /* done */
    PD_EXIT_FAILED = 1,       /* ran, but failed (a job, a task, the service) */
    PD_EXIT_USAGE = 2,        /* bad usage, configuration or input */
    PD_EXIT_BROKER = 3,       /* the broker could not be reached or refused */
    PD_EXIT_NOT_RUNNING = 3,  /* `playdoh-worker service status` (LSB's): stopped */
    PD_EXIT_NO_SERVICE = 4,   /* `playdoh-worker service status` (LSB's): not installed */
    PD_EXIT_EXEC_MANY = 101,  /* `exec` (GNU parallel's): more than 100 jobs failed */
    PD_EXIT_INTERRUPTED = 130, /* stopped by Ctrl-C (128 + SIGINT) */
    PD_EXIT_EXEC_ERROR = 255, /* `exec` (GNU parallel's): usage, input or broker */
};

#endif
