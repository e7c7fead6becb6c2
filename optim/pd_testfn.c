/*  pd_testfn: the built-in test functions, in the vectorised fitness ABI.

    Sphere, Rosenbrock, Rastrigin, Ackley, Griewank and Schwefel (Schwefel
    1981's problem 2.26, shifted so that its minimum is 0), the usual
    benchmarks of the optimisation literature, each with its usual bounds.
    Every minimum is 0: sphere, Rastrigin, Ackley, Griewank at the origin,
    Rosenbrock at (1, ..., 1), Schwefel at (420.9687..., ...). The tests and
    bench/bench_optim use them; pd_optim_builtin() finds one by name.

    Shifted forms ("rastrigin@1" .. "@4"; not Schwefel, whose optimum is near
    its bounds already) move the optimum x* to a point o of the same box,
    f_s(x) = f(x - o + x*), value 0 at o, so that an optimiser drawn towards
    the centre of the box (or towards x* = 0) shows it. Coordinate j of o,
    with c the box's centre and w its width:
      @1, @2  c + 0.4 w u, u uniform in [-1, 1] from a fixed hash of (shift, j):
              uniform in the central 80 % of the box, as the runs;
      @3      lo + 0.95 w: every coordinate near the upper bound;
      @4      lo + 0.02 w and lo + 0.98 w alternately: a corner.
    The hash (splitmix64) gives the same o on every platform and any dim.
*/
#include "playdoh.h"
#include "pd_error.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PD_PI 3.14159265358979323846
#define PD_E  2.71828182845904523536

static double s_sphere(const double *x, size_t d)
{
    double s = 0;
    for (size_t j = 0; j < d; j++)
        s += x[j] * x[j];
    return s;
}

static double s_rosenbrock(const double *x, size_t d)
{
    double s = 0;
    for (size_t j = 0; j + 1 < d; j++) {
        double a = x[j + 1] - x[j] * x[j], b = 1 - x[j];
        s += 100 * a * a + b * b;
    }
    return s;
}

static double s_rastrigin(const double *x, size_t d)
{
    double s = 10.0 * (double) d;
    for (size_t j = 0; j < d; j++)
        s += x[j] * x[j] - 10 * cos(2 * PD_PI * x[j]);
    return s;
}

static double s_ackley(const double *x, size_t d)
{
    double a = 0, b = 0;
    for (size_t j = 0; j < d; j++) {
        a += x[j] * x[j];
        b += cos(2 * PD_PI * x[j]);
    }
    double v = -20 * exp(-0.2 * sqrt(a / (double) d)) - exp(b / (double) d) + 20 + PD_E;
    return v > 0 ? v : 0; /* rounding can leave -4e-16 at the origin */
}

static double s_griewank(const double *x, size_t d)
{
    double s = 0, p = 1;
    for (size_t j = 0; j < d; j++) {
        s += x[j] * x[j];
        p *= cos(x[j] / sqrt((double) j + 1));
    }
    return 1 + s / 4000 - p;
}

static double s_schwefel(const double *x, size_t d)
{
    double s = 0;
    for (size_t j = 0; j < d; j++)
        s += x[j] * sin(sqrt(fabs(x[j])));
    return 418.9828872724337998 * (double) d - s;
}

#define S_SHIFTS 4 /* shifted forms @1 .. @4 */

/* u in [-1, 1), fixed for (shift, coordinate). */
static double s_hash_unit(unsigned shift, size_t j)
{
    uint64_t z = ((uint64_t) shift << 32) + (uint64_t) j + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double) (z >> 11) / 4503599627370496.0 - 1.0; /* 2^52 */
}

/* Coordinate j of the optimum of shift k (1..S_SHIFTS) in [lo, hi]. */
static double s_shift_at(unsigned k, size_t j, double lo, double hi)
{
    double w = hi - lo;
    switch (k) {
    case 1:
    case 2:
        return lo + 0.5 * w + 0.4 * w * s_hash_unit(k, j);
    case 3:
        return lo + 0.95 * w;
    default:
        return lo + (j % 2 ? 0.98 : 0.02) * w;
    }
}

/* Evaluates base at x - o + xstar, coordinate by coordinate through a small
   buffer (every base is a sum or needs all of z: z is built whole). */
#define S_SHIFT_BUF 256
static double s_shifted(double (*base)(const double *, size_t), double xstar, unsigned k,
                        double lo, double hi, const double *x, size_t d, double *z)
{
    for (size_t j = 0; j < d; j++)
        z[j] = x[j] - s_shift_at(k, j, lo, hi) + xstar;
    return base(z, d);
}

#define S_BLOCK_FN(name)                                                             \
    static int s_##name##_block(const pd_fitness_block_t *b, double *f)            \
    {                                                                                \
        for (size_t i = 0; i < b->n; i++)                                            \
            f[i] = s_##name(b->x + i * b->dim, b->dim);                              \
        return 0;                                                                    \
    }
S_BLOCK_FN(sphere)
S_BLOCK_FN(rosenbrock)
S_BLOCK_FN(rastrigin)
S_BLOCK_FN(ackley)
S_BLOCK_FN(griewank)
S_BLOCK_FN(schwefel)

/* The shifted form k of name, over the box lo..hi, optimum of the base at
   xstar. z: the shifted point, on the stack up to S_SHIFT_BUF parameters. */
#define S_SHIFT_FN(name, k, xstar, lo, hi)                                             \
    static int s_##name##_s##k(const pd_fitness_block_t *b, double *f)                 \
    {                                                                                  \
        double zs[S_SHIFT_BUF];                                                        \
        double *z = b->dim <= S_SHIFT_BUF ? zs : malloc(b->dim * sizeof *z);            \
        if (!z) {                                                                      \
            snprintf(b->error, b->error_size, "out of memory for %zu parameters", b->dim); \
            return -1;                                                                 \
        }                                                                              \
        for (size_t i = 0; i < b->n; i++)                                              \
            f[i] = s_shifted(s_##name, xstar, k, lo, hi, b->x + i * b->dim, b->dim, z);   \
        if (z != zs)                                                                   \
            free(z);                                                                   \
        return 0;                                                                      \
    }
#define S_SHIFTS_OF(name, xstar, lo, hi)                                               \
    S_SHIFT_FN(name, 1, xstar, lo, hi)                                                 \
    S_SHIFT_FN(name, 2, xstar, lo, hi)                                                 \
    S_SHIFT_FN(name, 3, xstar, lo, hi)                                                 \
    S_SHIFT_FN(name, 4, xstar, lo, hi)
S_SHIFTS_OF(sphere, 0.0, -5.12, 5.12)
S_SHIFTS_OF(rosenbrock, 1.0, -5.0, 10.0)
S_SHIFTS_OF(rastrigin, 0.0, -5.12, 5.12)
S_SHIFTS_OF(ackley, 0.0, -32.768, 32.768)
S_SHIFTS_OF(griewank, 0.0, -600.0, 600.0)

static const struct {
    const char *name;
    pd_fitness_fn fn;
    double lo, hi;
    pd_fitness_fn shifted[S_SHIFTS]; /* @1 .. @4, or none */
} s_builtins[] = {
    {"sphere", s_sphere_block, -5.12, 5.12,
     {s_sphere_s1, s_sphere_s2, s_sphere_s3, s_sphere_s4}},
    {"rosenbrock", s_rosenbrock_block, -5, 10,
     {s_rosenbrock_s1, s_rosenbrock_s2, s_rosenbrock_s3, s_rosenbrock_s4}},
    {"rastrigin", s_rastrigin_block, -5.12, 5.12,
     {s_rastrigin_s1, s_rastrigin_s2, s_rastrigin_s3, s_rastrigin_s4}},
    {"ackley", s_ackley_block, -32.768, 32.768,
     {s_ackley_s1, s_ackley_s2, s_ackley_s3, s_ackley_s4}},
    {"griewank", s_griewank_block, -600, 600,
     {s_griewank_s1, s_griewank_s2, s_griewank_s3, s_griewank_s4}},
    {"schwefel", s_schwefel_block, -500, 500, {NULL, NULL, NULL, NULL}},
};

pd_fitness_fn pd_optim_builtin(const char *name, double *lo, double *hi)
{
    if (!name)
        return NULL;
    const char *at = strchr(name, '@');
    size_t len = at ? (size_t) (at - name) : strlen(name);
    unsigned k = 0;
    if (at) {
        if (at[1] < '1' || at[1] > '0' + S_SHIFTS || at[2])
            return NULL;
        k = (unsigned) (at[1] - '0');
    }
    for (size_t i = 0; i < sizeof s_builtins / sizeof s_builtins[0]; i++)
        if (strlen(s_builtins[i].name) == len && strncmp(name, s_builtins[i].name, len) == 0) {
            pd_fitness_fn fn = k ? s_builtins[i].shifted[k - 1] : s_builtins[i].fn;
            if (!fn)
                return NULL;
            if (lo)
                *lo = s_builtins[i].lo;
            if (hi)
                *hi = s_builtins[i].hi;
            return fn;
        }
    return NULL;
}

int pd_optim_builtin_optimum(const char *name, size_t dim, double *x)
{
    double lo, hi;
    if (!pd_optim_builtin(name, &lo, &hi) || !x)
        return PD_EINVAL;
    const char *at = strchr(name, '@');
    unsigned k = at ? (unsigned) (at[1] - '0') : 0;
    double xstar = strncmp(name, "rosenbrock", 10) == 0 ? 1.0
                   : strncmp(name, "schwefel", 8) == 0  ? 420.9687462275036
                                                        : 0.0;
    for (size_t j = 0; j < dim; j++)
        x[j] = k ? s_shift_at(k, j, lo, hi) : xstar;
    return 0;
}
