/*  pd_error: messages and names for the PD_E* codes of pd_error.h. */
#include "pd_error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The errno of this thread's last pd_sys_error(): errno itself is
   overwritten by whatever the caller does on its way out (a close, a free). */
static _Thread_local int s_sys_errno;

const char *pd_strerror(int code)
{
    switch (code) {
    case 0: return "success";
#define PD_X(name, value, msg) case value: return msg;
    PD_ERRNO_MAP(PD_X)
#undef PD_X
    default: return "unknown error";
    }
}

const char *pd_err_name(int code)
{
    switch (code) {
    case 0: return "PD_OK";
#define PD_X(name, value, msg) case value: return "PD_" #name;
    PD_ERRNO_MAP(PD_X)
#undef PD_X
    default: return "PD_EUNKNOWN";
    }
}

int pd_err_from_name(const char *name)
{
#define PD_X(n, value, msg) if (strcmp(name, "PD_" #n) == 0) return value;
    PD_ERRNO_MAP(PD_X)
#undef PD_X
    return 0;
}

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
