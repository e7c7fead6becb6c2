/*  pd_error: messages and names for the PD_E* codes of pd_error.h (errno
    and error sentences: pd_error_int.c). */
#include "pd_error.h"

#include <string.h>

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
