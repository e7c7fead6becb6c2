/*  rosenbrock.c: a fitness module for `playdoh-submit optimize`.

    The optimisers hand the fitness a whole block of points (n points of
    dim parameters, row-major) and take n values back, so one call can
    vectorise; return non-zero to fail the run with an error.

      playdoh-submit --local 2 optimize examples/rosenbrock.c rosenbrock \
          --algo cmaes --bounds -5:10 --dim 10 --islands 2 --budget 60000 --seed 1

    The minimum is 0, at (1, ..., 1). docs/optimisation.md has the rest.
*/
#include <playdoh_fitness.h>

PD_FITNESS(rosenbrock, b, f)
{
    for (size_t i = 0; i < b->n; i++) {
        const double *x = b->x + i * b->dim;
        double s = 0;
        for (size_t j = 0; j + 1 < b->dim; j++) {
            double u = x[j + 1] - x[j] * x[j], v = 1 - x[j];
            s += 100 * u * u + v * v;
        }
        f[i] = s;
    }
    return 0;
}
