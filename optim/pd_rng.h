/*  pd_rng: the optimisers' random numbers, xoshiro256** seeded by splitmix64.

    Every island and group draws from its own stream, derived from the run's
    seed and the stream's coordinates with pd_rng_seed(), so that a run is
    reproducible bit for bit whatever the order in which streams are used,
    on one process or spread over a cluster. Never rand(): its state is
    global and its quality and period differ between C libraries.

    The generator is a plain value (32 bytes plus a cached normal deviate):
    copy it, embed it, no allocation. Reference: D. Blackman and S. Vigna,
    "Scrambled linear pseudorandom number generators" (2021).
*/
#ifndef PD_RNG_H
#define PD_RNG_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];    /* xoshiro256** state; never all zero */
    double spare;     /* second normal deviate of the last polar draw */
    bool have_spare;  /* spare holds a deviate not yet returned */
} pd_rng_t;

/* Seeds r from a run seed and a stream's coordinates (island, group,
   purpose...): equal inputs give equal streams, different ones independent
   streams. */
void pd_rng_seed(pd_rng_t *r, uint64_t seed, uint64_t stream_a, uint64_t stream_b);
/* The next 64 random bits. */
uint64_t pd_rng_next(pd_rng_t *r);
/* Uniform in [0, 1), 53 bits. */
double pd_rng_uniform(pd_rng_t *r);
/* Uniform in [lo, hi); returns lo when hi <= lo. */
double pd_rng_range(pd_rng_t *r, double lo, double hi);
/* Uniform integer in [0, n), without modulo bias; n > 0. */
uint64_t pd_rng_below(pd_rng_t *r, uint64_t n);
/* Standard normal deviate (Marsaglia's polar method). */
double pd_rng_normal(pd_rng_t *r);

#endif
