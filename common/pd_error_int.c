/*  pd_error_int: errno kept with PD_ESYS, and sentences that travel with a
    code (pd_error_int.h).

    Apart from pd_error.c on purpose: the client library compiles pd_error.c
    in and exports it (playdoh.h declares pd_strerror), and on Windows a
    program links that DLL and the static common library together; common
    code that calls these functions must not pull pd_error.c's object out of
    the static library as well, or pd_strerror is defined twice. */
#include "pd_error_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The errno of this thread's last pd_sys_error(): errno itself is
   overwritten by whatever the caller does on its way out (a close, a free). */
static _Thread_local int s_sys_errno;

int pd_sys_error(void)
{
    s_sys_errno = errno;
    return PD_ESYS;
}

int pd_sys_errno(void) { return s_sys_errno; }

const char *pd_strerror_sys(int code, char *buf, size_t cap)
{
    if (code == PD_ESYS && s_sys_errno)
        snprintf(buf, cap, "%s: %s", pd_strerror(code), strerror(s_sys_errno));
    else
        snprintf(buf, cap, "%s", pd_strerror(code));
    return buf;
}

int pd_why(char *why, size_t cap, int code, const char *fmt, ...)
{
    if (why && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return code;
}
