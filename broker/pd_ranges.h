/*  pd_ranges: a set of job ids as a request names them, an array of
    [first, count] pairs, parsed with bounds and searched.
*/
#ifndef PD_RANGES_H
#define PD_RANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_RANGES_MAX_IDS 10000000u /* ids named by one request at most */

/* A parsed set of ids: pairs [first, count]. */
typedef struct {
    uint64_t (*r)[2]; /* owned; n pairs */
    uint32_t n;       /* pairs */
    uint64_t total;   /* ids named */
    uint64_t lo, hi;  /* smallest and largest id named (total > 0) */
} pd_ranges_t;

/* Parses a ranges value (array of [first, count] with first >= 1, count >= 1,
   no overflow, at most PD_RANGES_MAX_IDS ids in all). Returns 0, or
   PD_EPROTO/PD_ETOOBIG/PD_ENOMEM with a sentence in why. */
int pd_ranges_parse(const uint8_t *raw, size_t len, pd_ranges_t *out, char *why, size_t whycap);
void pd_ranges_free(pd_ranges_t *rg);
/* True when id is named by rg. Pairs are searched linearly after a
   bounding-box test. */
bool pd_ranges_contains(const pd_ranges_t *rg, uint64_t id);
/* True when any of the sorted ids is named by rg. */
bool pd_ranges_touches(const pd_ranges_t *rg, const uint64_t *sorted, size_t n);

#endif
