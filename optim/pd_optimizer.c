/*  pd_optimizer: the common optimiser object over the three algorithms.

    It owns what every algorithm needs the same way: the bounds and initial
    range, the random stream of its (island, group), the best point seen,
    the count of evaluations, and the ask/tell discipline (an ask is always
    followed by its tell, with imports and exports only in between). The
    algorithm itself is a pd_algo_ops_t table (pd_algo.h) over its state.
*/
#include "pd_optimizer.h"

#include "pd_algo.h"
#include "pd_error.h"
#include "pd_rng.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct pd_optimizer {
    const pd_algo_ops_t *ops; /* the algorithm */
    void *st;                 /* its state */
    pd_algo_env_t env;        /* what it was created from (points into this struct) */
    pd_optim_opts_t opts;     /* copy of the options; pointers in it are borrowed */
    size_t dim;               /* parameters */
    double *lo, *hi;          /* bounds (owned copies) */
    double *ilo, *ihi;        /* initial range (owned copies) */
    pd_rng_t rng;             /* this optimiser's stream */
    double best_f;            /* best value seen, +INFINITY before any */
    double *best_x;           /* its point (dim) */
    bool have_best;           /* best_x holds a point */
    const double *asked;      /* the last ask's points, until tell */
    size_t asked_n;           /* how many */
    bool pending;             /* an ask waits for its tell */
    bool stopped;             /* ask returned 0 */
    uint64_t evaluations;     /* points told */
};

size_t pd_algo_default_popsize(pd_algo_t algo, size_t dim)
{
    switch (algo) {
    case PD_ALGO_PSO:
        return 40;
    case PD_ALGO_GA:
        return 40;
    case PD_ALGO_CMAES:
        return 4 + (size_t) floor(3.0 * log((double) dim));
    case PD_ALGO_DE:
        return 40;
    }
    return 40;
}

void pd_argsort(const double *f, size_t n, size_t *idx, size_t *tmp)
{
    /* Bottom-up merge sort: stable, O(n log n), no recursion. */
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    size_t *a = idx, *b = tmp;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n;
            size_t hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                b[k++] = f[a[j]] < f[a[i]] ? a[j++] : a[i++];
            while (i < mid)
                b[k++] = a[i++];
            while (j < hi)
                b[k++] = a[j++];
        }
        size_t *t = a;
        a = b;
        b = t;
    }
    if (a != idx)
        memcpy(idx, a, n * sizeof *idx);
}

size_t pd_pool_export(const double *px, const double *pf, size_t n, size_t d, size_t *order,
                      size_t *tmp, size_t k, double *x, double *f)
{
    pd_argsort(pf, n, order, tmp);
    size_t out = 0;
    for (size_t r = 0; r < n && out < k; r++) {
        size_t i = order[r];
        const double *xi = px + i * d;
        /* distinct: skip a copy of the previous exported point */
        if (out && f[out - 1] == pf[i] && memcmp(x + (out - 1) * d, xi, d * sizeof *xi) == 0)
            continue;
        memcpy(x + out * d, xi, d * sizeof *xi);
        f[out++] = pf[i];
    }
    return out;
}

size_t pd_pool_import(double *px, double *pf, size_t n, size_t d, size_t k, const double *x,
                      const double *f, double *best)
{
    size_t taken = 0;
    for (size_t m = 0; m < k; m++) {
        const double *xm = x + m * d;
        size_t worst = 0;
        bool dup = false;
        for (size_t i = 0; i < n; i++) {
            if (pf[i] > pf[worst])
                worst = i;
            if (pf[i] == f[m] && memcmp(px + i * d, xm, d * sizeof *xm) == 0)
                dup = true;
        }
        if (dup || !(f[m] < pf[worst]))
            continue;
        memcpy(px + worst * d, xm, d * sizeof *xm);
        pf[worst] = f[m];
        if (best && f[m] < *best)
            *best = f[m];
        taken++;
    }
    return taken;
}

static const pd_algo_ops_t *s_ops(pd_algo_t algo)
{
    switch (algo) {
    case PD_ALGO_PSO:
        return &pd_pso_ops;
    case PD_ALGO_GA:
        return &pd_ga_ops;
    case PD_ALGO_CMAES:
        return &pd_cmaes_ops;
    case PD_ALGO_DE:
        return &pd_de_ops;
    }
    return NULL;
}

static double *s_dup(const double *src, size_t n)
{
    double *d = malloc(n * sizeof *d);
    if (d)
        memcpy(d, src, n * sizeof *d);
    return d;
}

pd_optimizer_t *pd_optimizer_new(const pd_optim_opts_t *o, uint32_t island, uint32_t group,
                                 int *err)
{
    assert(o && o->dim > 0 && o->lower && o->upper);
    pd_optimizer_t *p = calloc(1, sizeof *p);
    if (!p)
        goto nomem;
    p->ops = s_ops(o->algo);
    assert(p->ops);
    p->opts = *o;
    p->dim = o->dim;
    p->lo = s_dup(o->lower, o->dim);
    p->hi = s_dup(o->upper, o->dim);
    p->ilo = s_dup(o->init_lower ? o->init_lower : o->lower, o->dim);
    p->ihi = s_dup(o->init_upper ? o->init_upper : o->upper, o->dim);
    p->best_x = calloc(o->dim, sizeof *p->best_x);
    if (!p->lo || !p->hi || !p->ilo || !p->ihi || !p->best_x)
        goto nomem;
    p->best_f = INFINITY;
    /* Stream coordinates: (island, group) packed; the second word tells
       the optimisers' streams from any other use of the same seed. */
    pd_rng_seed(&p->rng, o->seed, ((uint64_t) island << 32) | group, 0x6f7074696d697a65ull);
    p->env = (pd_algo_env_t){
        .opts = &p->opts,
        .dim = p->dim,
        .lo = p->lo,
        .hi = p->hi,
        .ilo = p->ilo,
        .ihi = p->ihi,
        .popsize = o->popsize ? o->popsize : pd_algo_default_popsize(o->algo, o->dim),
        .island = island,
        .islands = o->islands ? o->islands : 1,
        .rng = &p->rng,
    };
    p->st = p->ops->create(&p->env);
    if (!p->st)
        goto nomem;
    return p;
nomem:
    pd_optimizer_destroy(&p);
    if (err)
        *err = PD_ENOMEM;
    return NULL;
}

void pd_optimizer_destroy(pd_optimizer_t **pp)
{
    if (!pp || !*pp)
        return;
    pd_optimizer_t *p = *pp;
    if (p->st)
        p->ops->destroy(p->st);
    free(p->lo);
    free(p->hi);
    free(p->ilo);
    free(p->ihi);
    free(p->best_x);
    free(p);
    *pp = NULL;
}

size_t pd_optimizer_ask(pd_optimizer_t *p, const double **x)
{
    assert(p && x && !p->pending);
    if (p->stopped) {
        *x = NULL;
        return 0;
    }
    size_t n = p->ops->ask(p->st, x);
    if (n == 0) {
        p->stopped = true;
        *x = NULL;
        return 0;
    }
    p->asked = *x;
    p->asked_n = n;
    p->pending = true;
    return n;
}

/* Keeps (x, f) if it beats the best so far. */
static void s_offer_best(pd_optimizer_t *p, const double *x, double f)
{
    if (f < p->best_f || !p->have_best) {
        p->best_f = f;
        memcpy(p->best_x, x, p->dim * sizeof *x);
        p->have_best = true;
    }
}

void pd_optimizer_tell(pd_optimizer_t *p, const double *f)
{
    assert(p && f && p->pending);
    /* Best before the algorithm sees the values: the algorithm may reuse
       its ask buffer as soon as tell returns. */
    for (size_t i = 0; i < p->asked_n; i++) {
        assert(!isnan(f[i]));
        s_offer_best(p, p->asked + i * p->dim, f[i]);
    }
    p->evaluations += p->asked_n;
    p->pending = false;
    p->ops->tell(p->st, f);
}

size_t pd_optimizer_export(pd_optimizer_t *p, size_t k, double *x, double *f)
{
    assert(p && !p->pending);
    if (k == 0)
        return 0;
    return p->ops->export_best(p->st, k, x, f);
}

size_t pd_optimizer_import(pd_optimizer_t *p, size_t k, const double *x, const double *f)
{
    assert(p && !p->pending);
    if (k == 0 || p->stopped)
        return 0;
    size_t taken = p->ops->import(p->st, k, x, f);
    /* Whatever the algorithm keeps, the best seen includes every migrant:
       it is a point evaluated somewhere in this run. */
    for (size_t i = 0; i < k; i++)
        s_offer_best(p, x + i * p->dim, f[i]);
    return taken;
}

void pd_optimizer_offer_best(pd_optimizer_t *p, const double *x, double f)
{
    assert(p && !isnan(f));
    s_offer_best(p, x, f);
}

double pd_optimizer_best(const pd_optimizer_t *p, const double **x)
{
    assert(p);
    if (x)
        *x = p->have_best ? p->best_x : NULL;
    return p->best_f;
}

uint64_t pd_optimizer_evaluations(const pd_optimizer_t *p)
{
    return p->evaluations;
}

uint64_t pd_optimizer_restarts(const pd_optimizer_t *p)
{
    return p->ops->restarts ? p->ops->restarts(p->st) : 0;
}

bool pd_optimizer_stopped(const pd_optimizer_t *p)
{
    return p->stopped;
}
