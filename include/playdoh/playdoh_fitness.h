/*  playdoh_fitness.h: the fitness ABI of Playdoh's optimisers.

    A fitness function evaluates a whole block of points in one call, so
    that a vectorised, multithreaded or GPU implementation takes a
    population at once: the block holds n points of dim parameters each,
    row-major (point i is x[i*dim .. i*dim+dim)), and the function writes n
    values into f. With groups (G independent optimisations of the same
    fitness run side by side, e.g. one model per recorded cell), one call
    covers the populations of every group, and group[i] says which
    optimisation point i belongs to.

        #include <playdoh_fitness.h>

        PD_FITNESS(sphere, b, f)
        {
            for (size_t i = 0; i < b->n; i++) {
                const double *x = b->x + i * b->dim;
                double s = 0;
                for (size_t j = 0; j < b->dim; j++) s += x[j] * x[j];
                f[i] = s;
            }
            return 0;
        }

    The function returns 0, or non-zero to fail the whole optimisation; it
    may then write a sentence into b->error (b->error_size bytes) saying
    what went wrong. A value that is NaN also fails the optimisation, with
    an error naming the point; +/-infinity are ordinary values (an
    infeasible point may return +INFINITY when minimising).

    The same function serves in-process (pd_optim_run, the user pointer
    arrives in b->user) and, in a module shipped to the cluster, on the
    nodes of a synchronous task (b->shared is then the run's read-only
    shared data, and b->user is NULL: the module's init function, PD_INIT
    of playdoh_task.h, keeps what it builds in static variables).
    This header declares types only: a module that includes it links
    against nothing.
*/
#ifndef PLAYDOH_FITNESS_H
#define PLAYDOH_FITNESS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PD_FITNESS_ABI 1

struct pd_task;

typedef struct pd_fitness_block {
    const double *x;        /* n points x dim parameters, row-major */
    size_t n;               /* points in this block */
    size_t dim;             /* parameters per point */
    const uint32_t *group;  /* group of each point, n entries, each < groups */
    uint32_t groups;        /* independent optimisations in the run (>= 1) */
    uint32_t island;        /* the island (node) asking */
    uint64_t iteration;     /* the island's iteration, from 0 */
    const void *shared;     /* the task's shared data, or NULL */
    size_t shared_len;      /* bytes in shared */
    void *user;             /* in-process: the caller's pointer; cluster: NULL */
    char *error;            /* where a failing fitness may write why (NUL-terminated) */
    size_t error_size;      /* bytes available in error */
    struct pd_task *task;   /* cluster: the node's task, for the task API of
                               playdoh_task.h (pd_cuda_* on the GPU of an optimisation
                               started with gpu); in-process: NULL */
} pd_fitness_block_t;

/* Evaluates b->n points into f[0 .. b->n); returns 0, or non-zero on failure. */
typedef int (*pd_fitness_fn)(const pd_fitness_block_t *b, double *f);

/* Declares a fitness function with the ABI's signature. */
#define PD_FITNESS(name, b, f) int name(const pd_fitness_block_t *b, double *f)

#ifdef __cplusplus
}
#endif
#endif
