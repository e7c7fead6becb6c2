/*  pd_ranges: sets of job ids as requests name them ([first, count] pairs),
    parsed with bounds; see pd_ranges.h.
*/
#include "pd_ranges.h"
#include "pd_codec.h"
#include "pd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_RANGE_PAIRS 1000000u /* pairs one request may name at most */

int pd_ranges_parse(const uint8_t *raw, size_t len, pd_ranges_t *out, char *why, size_t whycap)
{
    memset(out, 0, sizeof *out);
    pd_rd_t r;
    pd_rd_init(&r, raw, len);
    uint32_t n;
    if (pd_rd_array(&r, &n)) {
        snprintf(why, whycap, "'ids' must be an array of [first, count] pairs");
        return PD_EPROTO;
    }
    if (n > S_MAX_RANGE_PAIRS) {
        snprintf(why, whycap, "'ids' has %u ranges; at most %u are allowed per request", n,
                 S_MAX_RANGE_PAIRS);
        return PD_ETOOBIG;
    }
    if (n) {
        out->r = malloc((size_t) n * sizeof *out->r);
        if (!out->r) {
            snprintf(why, whycap, "the broker is out of memory");
            return PD_ENOMEM;
        }
    }
    out->lo = UINT64_MAX;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t two;
        uint64_t first, count;
        if (pd_rd_array(&r, &two) || two != 2 || pd_rd_uint(&r, &first) ||
            pd_rd_uint(&r, &count)) {
            snprintf(why, whycap, "'ids' range %u is not a [first, count] pair of integers", i);
            goto fail;
        }
        if (first == 0 || count == 0) {
            snprintf(why, whycap, "'ids' range %u is [%llu, %llu]: ids start at 1 and a count "
                     "must be at least 1", i, (unsigned long long) first,
                     (unsigned long long) count);
            goto fail;
        }
        if (count > UINT64_MAX - first + 1) {
            snprintf(why, whycap, "'ids' range %u overflows 64-bit ids", i);
            goto fail;
        }
        if (count > PD_RANGES_MAX_IDS || out->total + count > PD_RANGES_MAX_IDS) {
            snprintf(why, whycap, "'ids' names more than %u ids: split the request",
                     PD_RANGES_MAX_IDS);
            pd_ranges_free(out);
            return PD_ETOOBIG;
        }
        out->r[i][0] = first;
        out->r[i][1] = count;
        out->total += count;
        if (first < out->lo)
            out->lo = first;
        if (first + count - 1 > out->hi)
            out->hi = first + count - 1;
        out->n++;
    }
    if (!pd_rd_at_end(&r)) {
        snprintf(why, whycap, "'ids' has trailing bytes");
        goto fail;
    }
    return 0;
fail:
    pd_ranges_free(out);
    return PD_EPROTO;
}

void pd_ranges_free(pd_ranges_t *rg)
{
    free(rg->r);
    memset(rg, 0, sizeof *rg);
}

bool pd_ranges_contains(const pd_ranges_t *rg, uint64_t id)
{
    if (!rg->total || id < rg->lo || id > rg->hi)
        return false;
    for (uint32_t i = 0; i < rg->n; i++)
        if (id >= rg->r[i][0] && id - rg->r[i][0] < rg->r[i][1])
            return true;
    return false;
}

bool pd_ranges_touches(const pd_ranges_t *rg, const uint64_t *sorted, size_t n)
{
    if (!rg->total || !n || sorted[n - 1] < rg->lo || sorted[0] > rg->hi)
        return false;
    for (uint32_t i = 0; i < rg->n; i++) {
        uint64_t first = rg->r[i][0], last = first + rg->r[i][1] - 1;
        size_t lo = 0, hi = n; /* first index with sorted[k] >= first */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (sorted[mid] < first)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < n && sorted[lo] <= last)
            return true;
    }
    return false;
}
