/*  pd_nsga2: multi-objective optimisation (issue 20), NSGA-II and its parts.

    K. Deb, A. Pratap, S. Agarwal, T. Meyarivan, "A fast and elitist
    multiobjective genetic algorithm: NSGA-II" (IEEE TEC 6(2), 2002): fast
    non-dominated sort, crowding distance, binary tournaments on (rank,
    crowding), simulated binary crossover and polynomial mutation in Deb's
    bounded forms, elitist (mu + lambda) selection by fronts. Values are
    minimised, M of them per point (row-major, n x M). The run is a pure
    function of the seed: every draw comes from the caller's pd_rng_t and
    every sort is stable (pd_argsort), never the C library's qsort.

    Also here: the exact hypervolume of a set in 2 and 3 objectives against
    a reference point, and the multi-objective test problems ZDT1, ZDT2,
    ZDT3 (E. Zitzler, K. Deb, L. Thiele, Evol. Comput. 8(2), 2000) and DTLZ2
    (Deb, Thiele, Laumanns, Zitzler, 2002), in the vectorised shape of the
    fitness ABI with M values per point.

    Internal to the optimiser library; not installed.
*/
#ifndef PD_NSGA2_H
#define PD_NSGA2_H

#include "pd_rng.h"

#include <stdbool.h>
#include <stddef.h>

/* Most objectives a run may have. */
#define PD_MO_MAX_OBJECTIVES 3

/* a dominates b: no worse in all m values, strictly better in one. */
bool pd_mo_dominates(const double *a, const double *b, size_t m);

/* Fast non-dominated sort of n points of m values (f, n x m): rank[i] = 0
   for the non-dominated points, 1 for those dominated only by rank 0, and
   so on. scratch has n * (n + 2) entries. Returns the number of fronts. */
size_t pd_mo_rank(const double *f, size_t n, size_t m, size_t *rank, size_t *scratch);

/* Crowding distance of the k points of one front, members idx[0..k) of f
   (n x m): dist[t] for idx[t]; the extremes of each objective get
   INFINITY, as do all points of a front of 1 or 2. vals has k entries,
   order and tmp k each (pd_argsort's scratch). */
void pd_mo_crowding(const double *f, size_t m, const size_t *idx, size_t k, double *dist,
                    double *vals, size_t *order, size_t *tmp);

/* Exact hypervolume dominated by the n points f (n x m, m = 2 or 3) and
   bounded by the reference point ref (m values): points not strictly
   better than ref in every value add nothing. 2-D by a sweep, 3-D by
   slices along the third value (O(n^2 log n)). Returns 0 and *hv,
   PD_EINVAL for m outside 2..3, PD_ENOMEM. */
int pd_mo_hypervolume(const double *f, size_t n, size_t m, const double *ref, double *hv);

/* NSGA-II's parameters; pagmo2's defaults by pd_nsga2_defaults(). */
typedef struct {
    double cr;    /* crossover probability per pair (0.95) */
    double eta_c; /* SBX distribution index (10) */
    double pm;    /* mutation probability per variable (1 / dim when 0) */
    double eta_m; /* polynomial mutation's distribution index (50) */
} pd_nsga2_params_t;

void pd_nsga2_defaults(pd_nsga2_params_t *p);

typedef struct pd_nsga2 pd_nsga2_t;

/* A population of n points (n even, >= 4) in dim parameters with m
   objectives (1..PD_MO_MAX_OBJECTIVES), bounds lo/hi (copied), drawing
   from rng (borrowed). Returns NULL when out of memory or the sizes are
   out of range. */
pd_nsga2_t *pd_nsga2_create(size_t dim, size_t m, size_t n, const double *lo, const double *hi,
                            const pd_nsga2_params_t *p, pd_rng_t *rng);
void pd_nsga2_destroy(pd_nsga2_t *s);

/* The next n points to evaluate (n x dim, valid until tell): the initial
   population first, then each generation's offspring. Returns n. */
size_t pd_nsga2_ask(pd_nsga2_t *s, const double **x);

/* Their values (n x m), in order; then selects the next population. */
void pd_nsga2_tell(pd_nsga2_t *s, const double *f);

/* Copies up to k points of the current population's first front to x
   (k x dim) and their values to f (k x m), duplicates skipped, in order of
   the first value; returns how many. */
size_t pd_nsga2_front(const pd_nsga2_t *s, size_t k, double *x, double *f);

/* Migration between islands: offers k points from elsewhere (x, k x dim;
   their values f, k x m; at most n are read), sent by another island's
   pd_nsga2_front. The population is selected again from itself and the
   migrants as after a generation, by fronts and crowding, so a migrant
   stays only where it improves the population. Call between tell and the
   next ask. Returns how many migrants were taken in. */
size_t pd_nsga2_import(pd_nsga2_t *s, size_t k, const double *x, const double *f);

/* The test problems: n points x (n x dim), values f (n x m). ZDT1-3 take
   m = 2 and dim >= 2 in [0, 1]; DTLZ2 takes m = 2..3, dim >= m, in
   [0, 1]. which: "zdt1", "zdt2", "zdt3", "dtlz2". Returns 0, PD_EINVAL for
   an unknown name or sizes it does not take. */
int pd_mo_testfn(const char *which, const double *x, size_t n, size_t dim, size_t m, double *f);

#endif
