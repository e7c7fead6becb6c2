/*  pd_ga: a real-coded genetic algorithm in the ask/tell form.

    Generational, with elitism: each generation keeps its `elites` best
    individuals unchanged and breeds the rest of the population anew.
    Parents are chosen by tournament (the best of `tournament` individuals
    drawn at random); pairs are crossed with simulated binary crossover
    (SBX, K. Deb and R. B. Agrawal 1995, in the bounded form of Deb's NSGA-II
    code: each coordinate crossed with probability 1/2, the spread of the
    children shaped by eta_c and by the distance to the bounds) and each
    child's coordinates mutated with probability mutation_prob by bounded
    polynomial mutation (Deb and Goyal 1996, the form that cannot leave the
    bounds, with index eta_m). Defaults: population 40, crossover 0.9,
    eta_c 30, mutation 1/dim, eta_m 20, tournament 3, 4 elites: tuned on
    sphere, Rosenbrock, Rastrigin and Ackley at 10^5 evaluations (the
    textbook eta_c 15 with binary tournaments and a population of 100 ends
    700 to 10^9 times higher on all but Rosenbrock; docs/optimisation.md).

    Bound handling: both operators produce points inside the bounds by
    construction; a final clamp guards against rounding.

    Migration: an immigrant replaces the worst individual of the current
    population when it is better (and not already there). Export: the best
    individuals of the current population.
*/
#include "pd_algo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t d;               /* parameters */
    size_t n;               /* population */
    size_t elites;          /* kept unchanged each generation (< n) */
    uint32_t tournament;    /* tournament size */
    double pc, eta_c;       /* crossover probability and SBX index */
    double beta_flat;       /* beyond it SBX's alpha is exactly 2 (s_sbx_alpha) */
    double pm, eta_m;       /* mutation probability per coordinate and index */
    const double *lo, *hi;  /* bounds (borrowed) */
    pd_rng_t *rng;          /* the optimiser's stream */
    double *pop;            /* current population (n x d) */
    double *fit;            /* its values (n) */
    double *kids;           /* what ask returns (n x d) */
    size_t nkids;           /* rows of kids asked */
    double *next;           /* scratch: the next population (n x d) */
    double *nextf;          /* its values (n) */
    size_t *order, *tmp;    /* scratch for sorting (n each) */
    bool started;           /* the first population was told */
} ga_t;

static void s_destroy(void *st)
{
    ga_t *s = st;
    if (!s)
        return;
    free(s->pop);
    free(s->fit);
    free(s->kids);
    free(s->next);
    free(s->nextf);
    free(s->order);
    free(s->tmp);
    free(s);
}

static void *s_create(const pd_algo_env_t *env)
{
    ga_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    const pd_ga_params_t *gp = &env->opts->ga;
    size_t d = env->dim, n = env->popsize;
    s->d = d;
    s->n = n;
    s->elites = gp->elites < n ? gp->elites : n - 1;
    s->tournament = gp->tournament ? gp->tournament : 2;
    s->pc = gp->crossover_prob;
    s->eta_c = gp->eta_c;
    s->beta_flat = pow(1e17, 1.0 / (gp->eta_c + 1.0));
    s->pm = gp->mutation_prob > 0 ? gp->mutation_prob : 1.0 / (double) d;
    s->eta_m = gp->eta_m;
    s->lo = env->lo;
    s->hi = env->hi;
    s->rng = env->rng;
    s->pop = malloc(n * d * sizeof *s->pop);
    s->fit = malloc(n * sizeof *s->fit);
    s->kids = malloc(n * d * sizeof *s->kids);
    s->next = malloc(n * d * sizeof *s->next);
    s->nextf = malloc(n * sizeof *s->nextf);
    s->order = malloc(n * sizeof *s->order);
    s->tmp = malloc(n * sizeof *s->tmp);
    if (!s->pop || !s->fit || !s->kids || !s->next || !s->nextf || !s->order || !s->tmp) {
        s_destroy(s);
        return NULL;
    }
    for (size_t i = 0; i < n * d; i++)
        s->kids[i] = pd_rng_range(s->rng, env->ilo[i % d], env->ihi[i % d]);
    s->nkids = n;
    return s;
}

static size_t s_tournament(ga_t *s)
{
    size_t best = (size_t) pd_rng_below(s->rng, s->n);
    for (uint32_t t = 1; t < s->tournament; t++) {
        size_t c = (size_t) pd_rng_below(s->rng, s->n);
        if (s->fit[c] < s->fit[best])
            best = c;
    }
    return best;
}

/* SBX's alpha for one side: 2 - beta^-(eta+1), where beta grows with the
   distance to the bound, so that the child stays inside. Beyond
   beta_flat, beta^-(eta+1) < 1e-17, less than half a unit in the last
   place of 2: alpha is then exactly 2 and pow is skipped (the common case
   once parents are close, and bit-identical to computing it). */
static double s_sbx_alpha(const ga_t *s, double beta)
{
    return beta > s->beta_flat ? 2.0 : 2.0 - pow(beta, -(s->eta_c + 1.0));
}

/* SBX spread factor for a draw u and a side's alpha. */
static double s_sbx_betaq(double u, double alpha, double eta)
{
    if (u <= 1.0 / alpha)
        return pow(u * alpha, 1.0 / (eta + 1.0));
    return pow(1.0 / (2.0 - u * alpha), 1.0 / (eta + 1.0));
}

/* Crosses parents a, b into children c1, c2 (Deb's bounded SBX). */
static void s_sbx(ga_t *s, const double *a, const double *b, double *c1, double *c2)
{
    for (size_t j = 0; j < s->d; j++) {
        double lo = s->lo[j], hi = s->hi[j];
        if (pd_rng_uniform(s->rng) > 0.5 || fabs(a[j] - b[j]) <= 1e-14 * (hi - lo)) {
            c1[j] = a[j];
            c2[j] = b[j];
            continue;
        }
        double y1 = fmin(a[j], b[j]), y2 = fmax(a[j], b[j]), dy = y2 - y1;
        double u = pd_rng_uniform(s->rng);
        double a1 = s_sbx_alpha(s, 1.0 + 2.0 * (y1 - lo) / dy);
        double a2 = s_sbx_alpha(s, 1.0 + 2.0 * (hi - y2) / dy);
        double bq1 = s_sbx_betaq(u, a1, s->eta_c);
        double bq2 = a2 == a1 ? bq1 : s_sbx_betaq(u, a2, s->eta_c);
        double k1 = pd_clamp(0.5 * ((y1 + y2) - bq1 * dy), lo, hi);
        double k2 = pd_clamp(0.5 * ((y1 + y2) + bq2 * dy), lo, hi);
        if (pd_rng_uniform(s->rng) <= 0.5) {
            c1[j] = k2;
            c2[j] = k1;
        } else {
            c1[j] = k1;
            c2[j] = k2;
        }
    }
}

/* Bounded polynomial mutation of x, in place. */
static void s_mutate(ga_t *s, double *x)
{
    double e = s->eta_m + 1.0;
    for (size_t j = 0; j < s->d; j++) {
        if (pd_rng_uniform(s->rng) >= s->pm)
            continue;
        double lo = s->lo[j], hi = s->hi[j], w = hi - lo;
        double d1 = (x[j] - lo) / w, d2 = (hi - x[j]) / w;
        double u = pd_rng_uniform(s->rng), dq;
        if (u < 0.5) {
            double v = 2.0 * u + (1.0 - 2.0 * u) * pow(1.0 - d1, e);
            dq = pow(v, 1.0 / e) - 1.0;
        } else {
            double v = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * pow(1.0 - d2, e);
            dq = 1.0 - pow(v, 1.0 / e);
        }
        x[j] = pd_clamp(x[j] + dq * w, lo, hi);
    }
}

static size_t s_ask(void *st, const double **x)
{
    ga_t *s = st;
    if (s->started) {
        size_t d = s->d, want = s->n - s->elites;
        for (size_t made = 0; made < want; made += 2) {
            const double *a = s->pop + s_tournament(s) * d;
            const double *b = s->pop + s_tournament(s) * d;
            double *c1 = s->kids + made * d;
            /* an odd last child goes to scratch and is dropped */
            double *c2 = made + 1 < want ? c1 + d : s->next;
            if (pd_rng_uniform(s->rng) < s->pc) {
                s_sbx(s, a, b, c1, c2);
            } else {
                memcpy(c1, a, d * sizeof *a);
                memcpy(c2, b, d * sizeof *b);
            }
            s_mutate(s, c1);
            s_mutate(s, c2);
        }
        s->nkids = want;
    }
    *x = s->kids;
    return s->nkids;
}

static void s_tell(void *st, const double *f)
{
    ga_t *s = st;
    size_t d = s->d;
    if (!s->started) {
        memcpy(s->pop, s->kids, s->n * d * sizeof *s->pop);
        memcpy(s->fit, f, s->n * sizeof *f);
        s->started = true;
        return;
    }
    pd_argsort(s->fit, s->n, s->order, s->tmp);
    for (size_t e = 0; e < s->elites; e++) {
        memcpy(s->next + e * d, s->pop + s->order[e] * d, d * sizeof *s->next);
        s->nextf[e] = s->fit[s->order[e]];
    }
    memcpy(s->next + s->elites * d, s->kids, s->nkids * d * sizeof *s->next);
    memcpy(s->nextf + s->elites, f, s->nkids * sizeof *f);
    double *t = s->pop;
    s->pop = s->next;
    s->next = t;
    t = s->fit;
    s->fit = s->nextf;
    s->nextf = t;
}

static size_t s_export(void *st, size_t k, double *x, double *f)
{
    ga_t *s = st;
    if (!s->started)
        return 0;
    return pd_pool_export(s->pop, s->fit, s->n, s->d, s->order, s->tmp, k, x, f);
}

static size_t s_import(void *st, size_t k, const double *x, const double *f)
{
    ga_t *s = st;
    if (!s->started)
        return 0;
    return pd_pool_import(s->pop, s->fit, s->n, s->d, k, x, f, NULL);
}

const pd_algo_ops_t pd_ga_ops = {
    .name = "ga",
    .create = s_create,
    .destroy = s_destroy,
    .ask = s_ask,
    .tell = s_tell,
    .export_best = s_export,
    .import = s_import,
    .restarts = NULL,
};
