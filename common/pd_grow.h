/*  pd_grow: the one way an array grows.

    Arrays that grow by one element at a time (entries of a list, slots of a
    table) double their capacity, so that n appends cost O(n) copies, and
    check the size multiplication for overflow; before this helper each did
    that by hand, at about fifty sites, each with its own first capacity.
*/
#ifndef PD_GROW_H
#define PD_GROW_H

#include <stddef.h>

/* Makes the array at *(T **) arrp hold at least need elements of elem bytes:
   when *cap < need, reallocates it to max(need, 2 * *cap, 16) elements and
   updates *cap. arrp is the address of the array pointer (&list), so that
   no cast is needed. Returns 0, or PD_ENOMEM with the array and *cap as they
   were. Elements past the old capacity are not initialised. */
int pd_grow(void *arrp, size_t *cap, size_t need, size_t elem);

#endif
