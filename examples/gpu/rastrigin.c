/*  rastrigin.c: a fitness function for the optimisers, on the CPU and on
    the GPU, evaluated a whole population per call.

    Tasks (argument -> result):

      rastrigin_cpu   [[x1..xD], ...] -> [f1, ...]   one population, on a CPU slot
      rastrigin_gpu   [[x1..xD], ...] -> [f1, ...]   the same in one kernel launch
                                                     on a GPU slot (rastrigin.cu)
      rastrigin_fitness, rastrigin_fitness_gpu
                      the same as the fitness of a cluster optimisation
                      (playdoh-submit optimize [--gpu]; see below)
      rastrigin_gen_cpu  [seed, first, n, dim] -> [min, sum]
      rastrigin_gen_gpu  [seed, first, n, dim] -> [min, sum]
                      individuals first .. first+n-1 of the pseudo-random
                      population `seed`, generated where they are evaluated
                      (no transfer): what bench/bench_gpu.c measures.

    Try it (a .cu beside the .c travels with --gpu jobs):

      playdoh-submit --local 2 map examples/gpu/rastrigin.c rastrigin_cpu \
          examples/gpu/population.jsonl
      playdoh-submit --local 2 map --gpu examples/gpu/rastrigin.c rastrigin_gpu \
          examples/gpu/population.jsonl

    Both print the same fitness values (to the last digits of cos).
*/
#include <playdoh_fitness.h>
#include <playdoh_task.h>

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>

#define S_PI 3.14159265358979323846

static double s_rastrigin(const double *x, int dim)
{
    double s = 10.0 * dim;
    for (int d = 0; d < dim; d++)
        s += x[d] * x[d] - 10.0 * cos(2.0 * S_PI * x[d]);
    return s;
}

/* Reads a population [[x1..xD], ...] into a malloc'ed row-major array.
   Returns it with *n and *dim, or NULL after failing the job. */
static double *s_population(pd_task_t *t, size_t *n, int *dim)
{
    pd_value_t v = pd_arg(t);
    size_t rows, cols = 0;
    if (pd_val_array(&v, &rows) || rows == 0) {
        pd_task_fail(t, "want a population: an array of points, each an array of numbers");
        return NULL;
    }
    double *x = NULL;
    for (size_t i = 0; i < rows; i++) {
        size_t d;
        if (pd_val_array(&v, &d) || d == 0 || d > 100000 || (i > 0 && d != cols)) {
            free(x);
            pd_task_fail(t, "point %zu is not an array of %zu numbers", i, i ? cols : d);
            return NULL;
        }
        if (i == 0) {
            cols = d;
            x = malloc(rows * cols * sizeof *x);
            if (!x) {
                pd_task_fail(t, "a population of %zu x %zu is too large", rows, cols);
                return NULL;
            }
        }
        for (size_t k = 0; k < d; k++)
            if (pd_val_double(&v, &x[i * cols + k])) {
                free(x);
                pd_task_fail(t, "point %zu, coordinate %zu is not a number", i, k);
                return NULL;
            }
    }
    *n = rows;
    *dim = (int) cols;
    return x;
}

/* Evaluates n points (row-major, dim each) into f on the CPU. Returns 0. */
static int s_eval_cpu(pd_task_t *t, const double *x, size_t n, int dim, double *f)
{
    (void) t;
    for (size_t i = 0; i < n; i++)
        f[i] = s_rastrigin(x + i * (size_t) dim, dim);
    return 0;
}

/* A job over a population argument: reads it, evaluates it with eval and
   returns the values. */
static int s_population_job(pd_task_t *t,
                            int (*eval)(pd_task_t *t, const double *x, size_t n, int dim,
                                        double *f))
{
    size_t n;
    int dim;
    double *x = s_population(t, &n, &dim);
    if (!x)
        return -1;
    double *f = malloc(n * sizeof *f);
    int rc = !f ? pd_task_fail(t, "out of memory") : eval(t, x, n, dim, f);
    if (rc == 0)
        rc = pd_out_doubles(t, f, n);
    free(x);
    free(f);
    return rc;
}

PD_TASK(rastrigin_cpu, t) { return s_population_job(t, s_eval_cpu); }

/* Evaluates n points (row-major, dim each) into f in one launch of the
   kernel `rastrigin` on this slot's GPU. Returns 0, or -1 with the job
   failed (the pd_cuda_* helper that failed says why). */
static int s_eval_gpu(pd_task_t *t, const double *x, size_t n, int dim, double *f)
{
    if (n > INT32_MAX)
        return pd_task_fail(t, "at most %d individuals per launch", INT32_MAX);
    pd_cuda_kernel_t *k = pd_cuda_kernel(t, pd_cuda_module(t), "rastrigin");
    pd_cuda_ptr_t dx = k ? pd_cuda_alloc(t, n * (size_t) dim * sizeof *x) : 0;
    pd_cuda_ptr_t df = dx ? pd_cuda_alloc(t, n * sizeof *f) : 0;
    int ni = (int) n, rc = -1;
    void *args[] = {&dx, &df, &ni, &dim};
    if (df && pd_cuda_copy_to_device(t, dx, x, n * (size_t) dim * sizeof *x) == 0 &&
        pd_cuda_launch(t, k, (unsigned) ((n + 255) / 256), 256, 0, args) == 0 &&
        pd_cuda_copy_to_host(t, f, df, n * sizeof *f) == 0)
        rc = 0;
    /* Device memory is freed when the job ends; freeing it here is tidier. */
    pd_cuda_free(t, dx);
    pd_cuda_free(t, df);
    return rc;
}

PD_TASK(rastrigin_gpu, t) { return s_population_job(t, s_eval_gpu); }

/* ---- the fitness of a cluster optimisation ------------------------------

   playdoh-submit optimize examples/gpu/rastrigin.c rastrigin_fitness ...
   playdoh-submit optimize --gpu examples/gpu/rastrigin.c rastrigin_fitness_gpu ...

   Each island's block in one call: on the CPU, or in one kernel launch on
   the island's own GPU (an optimisation started with --gpu, or
   pd_optim_cluster_opts_t.task.gpu, puts every island on a GPU slot; the
   block's task is the island's, for the pd_cuda_* helpers). */

PD_FITNESS(rastrigin_fitness, b, f)
{
    return s_eval_cpu(b->task, b->x, b->n, (int) b->dim, f);
}

PD_FITNESS(rastrigin_fitness_gpu, b, f)
{
    if (!b->task || pd_task_gpu(b->task) < 0) {
        snprintf(b->error, b->error_size, "rastrigin_fitness_gpu runs on GPU islands: start "
                 "the optimisation with --gpu (pd_optim_cluster_opts_t.task.gpu)");
        return -1;
    }
    if (b->dim > 100000) {
        snprintf(b->error, b->error_size, "at most 100000 dimensions");
        return -1;
    }
    return s_eval_gpu(b->task, b->x, b->n, (int) b->dim, f);
}

/* ---- generated populations (the benchmark) ------------------------------ */

/* splitmix64, as in rastrigin.cu. */
static uint64_t s_mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double s_coord(uint64_t seed, uint64_t i, int d)
{
    uint64_t h = s_mix(seed ^ s_mix(i * 1024u + (uint64_t) d));
    return -5.12 + 10.24 * ((double) (h >> 11) * (1.0 / 9007199254740992.0));
}

/* Reads [seed, first, n, dim]; fails the job and returns -1 when bad. */
static int s_gen_args(pd_task_t *t, uint64_t *seed, uint64_t *first, int64_t *n, int64_t *dim)
{
    pd_value_t v = pd_arg(t);
    size_t k;
    int64_t s, f;
    if (pd_val_array(&v, &k) || k != 4 || pd_val_int(&v, &s) || pd_val_int(&v, &f) ||
        pd_val_int(&v, n) || pd_val_int(&v, dim) || s < 0 || f < 0 || *n < 1 ||
        *n > INT32_MAX || *dim < 1 || *dim > 1000)
        return pd_task_fail(t, "want [seed, first, n, dim]: integers, 1 <= n < 2^31, "
                               "1 <= dim <= 1000");
    *seed = (uint64_t) s;
    *first = (uint64_t) f;
    return 0;
}

PD_TASK(rastrigin_gen_cpu, t)
{
    uint64_t seed, first;
    int64_t n, dim;
    if (s_gen_args(t, &seed, &first, &n, &dim))
        return -1;
    double fmin = INFINITY, sum = 0, x[1000];
    for (int64_t i = 0; i < n; i++) {
        for (int d = 0; d < dim; d++)
            x[d] = s_coord(seed, first + (uint64_t) i, d);
        double f = s_rastrigin(x, (int) dim);
        fmin = f < fmin ? f : fmin;
        sum += f;
    }
    double out[2] = {fmin, sum};
    return pd_out_doubles(t, out, 2);
}

PD_TASK(rastrigin_gen_gpu, t)
{
    uint64_t seed, first;
    int64_t n, dim;
    if (s_gen_args(t, &seed, &first, &n, &dim))
        return -1;
    unsigned blocks = (unsigned) ((n + 255) / 256);
    pd_cuda_kernel_t *k = pd_cuda_kernel(t, pd_cuda_module(t), "rastrigin_gen");
    pd_cuda_ptr_t bmin = k ? pd_cuda_alloc(t, blocks * sizeof(double)) : 0;
    pd_cuda_ptr_t bsum = bmin ? pd_cuda_alloc(t, blocks * sizeof(double)) : 0;
    double *hmin = malloc(blocks * sizeof *hmin), *hsum = malloc(blocks * sizeof *hsum);
    unsigned long long s = seed, f0 = first;
    int ni = (int) n, di = (int) dim, rc = -1;
    void *args[] = {&s, &f0, &ni, &di, &bmin, &bsum};
    if (hmin && hsum && bsum && pd_cuda_launch(t, k, blocks, 256, 0, args) == 0 &&
        pd_cuda_copy_to_host(t, hmin, bmin, blocks * sizeof *hmin) == 0 &&
        pd_cuda_copy_to_host(t, hsum, bsum, blocks * sizeof *hsum) == 0) {
        double out[2] = {INFINITY, 0};
        for (unsigned b = 0; b < blocks; b++) {
            out[0] = hmin[b] < out[0] ? hmin[b] : out[0];
            out[1] += hsum[b];
        }
        rc = pd_out_doubles(t, out, 2);
    } else if (!hmin || !hsum) {
        rc = pd_task_fail(t, "out of memory");
    }
    free(hmin);
    free(hsum);
    return rc;
}
