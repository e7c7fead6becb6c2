/*  optimize: fits a model in-process with Playdoh's optimisers.

    Fits the three parameters (amplitude, rate, offset) of y = a exp(-k t) + c
    to noisy samples of several "cells" at once: one group per cell, so
    that one fitness call evaluates every cell's candidates (the original
    Playdoh's way of fitting one model per recorded neuron). Four islands
    of CMA-ES on a ring; progress printed every 20 iterations.

    Usage: optimize [ALGO (cmaes) [CELLS (3)]]
*/
#include <playdoh.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLES 50

typedef struct {
    int cells;
    double *y;  /* cells x SAMPLES observations */
} data_t;

/* Sum of squared errors of each point against its group's cell. */
static PD_FITNESS(misfit, b, f)
{
    const data_t *d = b->user;
    for (size_t i = 0; i < b->n; i++) {
        const double *p = b->x + i * b->dim; /* a, k, c */
        const double *y = d->y + (size_t) b->group[i] * SAMPLES;
        double s = 0;
        for (int j = 0; j < SAMPLES; j++) {
            double t = j * 0.1, e = p[0] * exp(-p[1] * t) + p[2] - y[j];
            s += e * e;
        }
        f[i] = s;
    }
    return 0;
}

static int show(const pd_optim_progress_t *p, void *user)
{
    (void) user;
    if (p->iteration % 20 == 0) {
        printf("iteration %4llu  evaluations %7llu  best:", (unsigned long long) p->iteration,
               (unsigned long long) p->evaluations);
        for (uint32_t g = 0; g < p->groups; g++)
            printf(" %.3g", p->best_f[g]);
        printf("\n");
    }
    return 0;
}

int main(int argc, char **argv)
{
    pd_algo_t algo = PD_ALGO_CMAES;
    if (argc > 1 && pd_algo_parse(argv[1], &algo)) {
        fprintf(stderr, "optimize: unknown algorithm %s: pso, ga or cmaes\n", argv[1]);
        return 2;
    }
    data_t d = {.cells = argc > 2 ? atoi(argv[2]) : 3};
    if (d.cells < 1 || d.cells > 1000) {
        fprintf(stderr, "optimize: give 1 to 1000 cells\n");
        return 2;
    }
    d.y = malloc(sizeof(double) * SAMPLES * d.cells);
    unsigned seed = 12345;
    for (int c = 0; c < d.cells; c++)
        for (int j = 0; j < SAMPLES; j++) {
            seed = seed * 1103515245u + 12345u; /* small deterministic noise */
            double noise = ((seed >> 16) % 1000 / 1000.0 - 0.5) * 0.01;
            d.y[c * SAMPLES + j] = (1 + c) * exp(-(0.5 + 0.25 * c) * j * 0.1) + 0.1 * c + noise;
        }

    static const double lo[3] = {0, 0, -1}, hi[3] = {10, 5, 1};
    static const char *names[3] = {"a", "k", "c"};
    pd_optim_opts_t o;
    pd_optim_opts_init(&o, algo, 3);
    o.lower = lo;
    o.upper = hi;
    o.names = names;
    o.groups = (uint32_t) d.cells;
    o.islands = 4;
    o.budget = 200000;
    o.seed = 1;
    o.progress = show;

    pd_optim_result_t r;
    int rc = pd_optim_run(&o, misfit, &d, &r);
    if (rc == 0) {
        printf("%s, %llu evaluations in %.3f s, stopped by %s\n", pd_algo_name(algo),
               (unsigned long long) r.evaluations, r.wall_s, pd_optim_stop_name(r.stop));
        for (int c = 0; c < d.cells; c++) {
            const double *p = r.best_x + c * 3;
            printf("cell %d: a = %.4f  k = %.4f  c = %.4f  (true %.2f %.2f %.2f)  misfit %.3g\n", c,
                   p[0], p[1], p[2], 1.0 + c, 0.5 + 0.25 * c, 0.1 * c, r.best_f[c]);
        }
    } else {
        fprintf(stderr, "optimize: %s\n", r.error);
    }
    pd_optim_result_clear(&r);
    free(d.y);
    return rc ? 1 : 0;
}
