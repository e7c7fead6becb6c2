/*  pd_error_int: the inside half of the error table (pd_error.h is the
    installed half): errno kept with PD_ESYS, the one way a sentence travels
    with a code, and the programs' one table of exit statuses. Not installed:
    the client DLL does not export these (pd_error_int.c says why). */
#ifndef PD_ERROR_INT_H
#define PD_ERROR_INT_H

#include "pd_error.h"

#include <stddef.h>

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
    PD_EXIT_ANSWERED = -2,    /* not an exit status: help or version printed, exit OK */
    PD_EXIT_GO_ON = -1,       /* not an exit status: the command line was read, go on */
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
