/*  pd_grow: see pd_grow.h. */
#include "pd_grow.h"
#include "pd_error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define S_FIRST_CAP 16

int pd_grow(void *arrp, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap < SIZE_MAX / 2 ? *cap * 2 : need;
    if (n < S_FIRST_CAP)
        n = S_FIRST_CAP;
    if (n < need)
        n = need;
    if (elem && n > SIZE_MAX / elem)
        return PD_ENOMEM;
    /* The array pointer is read and written through memcpy: arrp points to
       a T *, not a void *. */
    void *old;
    memcpy(&old, arrp, sizeof old);
    void *grown = realloc(old, n * elem);
    if (!grown)
        return PD_ENOMEM;
    memcpy(arrp, &grown, sizeof grown);
    *cap = n;
    return 0;
}
