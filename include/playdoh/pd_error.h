/*  pd_error: the one table of Playdoh error codes.

    Every fallible function returns 0 (or a count) on success and a negative
    PD_E* code on failure. pd_strerror() turns a code into a sentence and
    pd_err_name() into its symbol, as libuv does with uv_strerror(). No code
    is -1: -1 stays what POSIX and the task API (playdoh_task.h) make it, "failed"
    or "failed, see errno", so that a stray -1 can never be read as a
    Playdoh code. Codes travel between processes by name (pd_err_name), never
    by number.

    How error text travels: a function that has more to say than its code
    writes one sentence into a buffer its caller passes (char *why, size_t
    cap); an object that outlives the call keeps its last such sentence
    (pd_client_error). Inside Playdoh, common/pd_error_int.h has the helpers
    for that, errno kept with PD_ESYS, and the programs' exit statuses.
*/
#ifndef PD_ERROR_H
#define PD_ERROR_H

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

#endif
