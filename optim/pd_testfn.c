/*  pd_testfn: the built-in test functions, in the vectorised fitness ABI.

    Sphere, Rosenbrock, Rastrigin, Ackley, Griewank and Schwefel (Schwefel
    1981's problem 2.26, shifted so that its minimum is 0), the usual
    benchmarks of the optimisation literature, each with its usual bounds.
    Every minimum is 0: sphere, Rastrigin, Ackley, Griewank at the origin,
    Rosenbrock at (1, ..., 1), Schwefel at (420.9687..., ...). The tests and
    bench/bench_optim use them; pd_optim_builtin() finds one by name.
*/
#include "playdoh.h"

#include <math.h>
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

static const struct {
    const char *name;
    pd_fitness_fn fn;
    double lo, hi;
} s_builtins[] = {
    {"sphere", s_sphere_block, -5.12, 5.12},
    {"rosenbrock", s_rosenbrock_block, -5, 10},
    {"rastrigin", s_rastrigin_block, -5.12, 5.12},
    {"ackley", s_ackley_block, -32.768, 32.768},
    {"griewank", s_griewank_block, -600, 600},
    {"schwefel", s_schwefel_block, -500, 500},
};

pd_fitness_fn pd_optim_builtin(const char *name, double *lo, double *hi)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof s_builtins / sizeof s_builtins[0]; i++)
        if (strcmp(name, s_builtins[i].name) == 0) {
            if (lo)
                *lo = s_builtins[i].lo;
            if (hi)
                *hi = s_builtins[i].hi;
            return s_builtins[i].fn;
        }
    return NULL;
}
