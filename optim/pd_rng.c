/*  pd_rng: xoshiro256** with splitmix64 seeding, for the optimisers.

    The state is seeded by running splitmix64 over a hash of the run seed
    and the stream's coordinates, as the xoshiro authors recommend; the
    normal deviates come from Marsaglia's polar method, which uses only
    sqrt and log, so that runs repeat exactly on any IEEE-754 machine with a
    correctly rounded sqrt and the same libm.
*/
#include "pd_rng.h"

#include <assert.h>
#include <math.h>

static uint64_t s_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t s_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void pd_rng_seed(pd_rng_t *r, uint64_t seed, uint64_t stream_a, uint64_t stream_b)
{
    assert(r);
    /* Mix the coordinates in one at a time through splitmix, so that
       (seed, a, b) and (seed, b, a) give different streams. */
    uint64_t x = seed;
    uint64_t h = s_splitmix(&x);
    x = h ^ stream_a;
    h = s_splitmix(&x);
    x = h ^ stream_b;
    for (int i = 0; i < 4; i++)
        r->s[i] = s_splitmix(&x);
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0)
        r->s[0] = 1;
    r->have_spare = false;
    r->spare = 0;
}

uint64_t pd_rng_next(pd_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = s_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl(s[3], 45);
    return result;
}

double pd_rng_uniform(pd_rng_t *r)
{
    return (double) (pd_rng_next(r) >> 11) * 0x1.0p-53;
}

double pd_rng_range(pd_rng_t *r, double lo, double hi)
{
    if (!(hi > lo))
        return lo;
    double x = lo + (hi - lo) * pd_rng_uniform(r);
    return x < hi ? x : lo; /* rounding can reach hi when hi - lo is huge */
}

uint64_t pd_rng_below(pd_rng_t *r, uint64_t n)
{
    assert(n > 0);
    /* Lemire's multiply-shift with rejection of the biased low zone. */
    uint64_t x = pd_rng_next(r);
    __uint128_t m = (__uint128_t) x * n;
    uint64_t low = (uint64_t) m;
    if (low < n) {
        uint64_t threshold = -n % n;
        while (low < threshold) {
            x = pd_rng_next(r);
            m = (__uint128_t) x * n;
            low = (uint64_t) m;
        }
    }
    return (uint64_t) (m >> 64);
}

double pd_rng_normal(pd_rng_t *r)
{
    if (r->have_spare) {
        r->have_spare = false;
        return r->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * pd_rng_uniform(r) - 1.0;
        v = 2.0 * pd_rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double k = sqrt(-2.0 * log(s) / s);
    r->spare = v * k;
    r->have_spare = true;
    return u * k;
}
