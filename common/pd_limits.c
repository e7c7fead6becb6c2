/*  pd_limits: a job's limits, parsed, printed, compared and carried on the
    wire; see pd_limits.h. Pure functions, shared by the client (flags), the
    broker (placement) and the worker (its owner's maxima).
*/
#include "pd_limits.h"
#include "pd_error.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool pd_limits_none(const pd_limits_t *l) { return !l->memory && !l->cpu_s && !l->output; }

int pd_limits_parse_size(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char) s[0]))
        return PD_EINVAL;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || !isfinite(x))
        return PD_EINVAL;
    double mul = 1;
    switch (tolower((unsigned char) *end)) {
    case 'k': mul = 1024.0; end++; break;
    case 'm': mul = 1024.0 * 1024; end++; break;
    case 'g': mul = 1024.0 * 1024 * 1024; end++; break;
    case 't': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    /* "2G", "2GB", "2GiB"; plain bytes may say "B" too. */
    if (mul > 1 && tolower((unsigned char) end[0]) == 'i' && tolower((unsigned char) end[1]) == 'b')
        end += 2;
    else if (tolower((unsigned char) *end) == 'b')
        end++;
    if (*end)
        return PD_EINVAL;
    x *= mul;
    if (x < 1 || x > 1152921504606846976.0) /* 2^60 */
        return PD_EINVAL;
    *out = (uint64_t) x;
    return 0;
}

int pd_limits_parse_seconds(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char) s[0]))
        return PD_EINVAL;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno)
        return PD_EINVAL;
    uint64_t mul = 1;
    switch (*end) {
    case 's': end++; break;
    case 'm': mul = 60; end++; break;
    case 'h': mul = 3600; end++; break;
    case 'd': mul = 86400; end++; break;
    default: break;
    }
    if (*end || x == 0 || x > 10ull * 366 * 86400 / mul)
        return PD_EINVAL;
    *out = x * mul;
    return 0;
}

const char *pd_limits_size_str(uint64_t bytes, char *out, size_t cap)
{
    static const char *unit[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(out, cap, "%llu bytes", (unsigned long long) bytes);
        return out;
    }
    double x = (double) bytes;
    int u = -1;
    while (x >= 1024 && u < 3) {
        x /= 1024;
        u++;
    }
    if (x == floor(x))
        snprintf(out, cap, "%.0f %s", x, unit[u]);
    else
        snprintf(out, cap, "%.1f %s", x, unit[u]);
    return out;
}

/* Whether a size req (memory, output: what) is within max (0: no limit); if
   not, says so into why. */
static bool s_size_fits(const char *what, uint64_t req, uint64_t max, char *why, size_t cap)
{
    char a[32], b[32];
    if (!max || req <= max)
        return true;
    if (why)
        snprintf(why, cap, "%s %s, where at most %s is allowed", what,
                 pd_limits_size_str(req, a, sizeof a), pd_limits_size_str(max, b, sizeof b));
    return false;
}

bool pd_limits_fit(const pd_limits_t *req, const pd_limits_t *max, char *why, size_t cap)
{
    if (!s_size_fits("memory", req->memory, max->memory, why, cap))
        return false;
    if (max->cpu_s && req->cpu_s > max->cpu_s) {
        if (why)
            snprintf(why, cap, "CPU time %llu s, where at most %llu s is allowed",
                     (unsigned long long) req->cpu_s, (unsigned long long) max->cpu_s);
        return false;
    }
    return s_size_fits("output", req->output, max->output, why, cap);
}

pd_limits_t pd_limits_apply(const pd_limits_t *req, const pd_limits_t *dflt)
{
    pd_limits_t l = {
        .memory = req->memory ? req->memory : dflt->memory,
        .cpu_s = req->cpu_s ? req->cpu_s : dflt->cpu_s,
        .output = req->output ? req->output : dflt->output,
    };
    return l;
}

void pd_limits_pack(msgpack_packer *pk, const pd_limits_t *l)
{
    msgpack_pack_map(pk, (l->memory != 0) + (l->cpu_s != 0) + (l->output != 0));
    if (l->memory)
        pd_pack_kv_uint(pk, "memory", l->memory);
    if (l->cpu_s)
        pd_pack_kv_uint(pk, "cpu_time", l->cpu_s);
    if (l->output)
        pd_pack_kv_uint(pk, "max_output", l->output);
}

int pd_limits_read(pd_rd_t *r, pd_limits_t *l)
{
    memset(l, 0, sizeof *l);
    uint32_t n;
    if (pd_rd_map(r, &n))
        return PD_EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        const char *k;
        uint32_t klen;
        if (pd_rd_str(r, &k, &klen))
            return PD_EPROTO;
        uint64_t *dst = NULL;
        if (klen == 6 && memcmp(k, "memory", 6) == 0)
            dst = &l->memory;
        else if (klen == 8 && memcmp(k, "cpu_time", 8) == 0)
            dst = &l->cpu_s;
        else if (klen == 10 && memcmp(k, "max_output", 10) == 0)
            dst = &l->output;
        if (dst ? pd_rd_uint(r, dst) != 0 : pd_rd_skip(r, NULL, NULL) != 0)
            return PD_EPROTO;
    }
    return 0;
}
