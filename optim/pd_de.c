/*  pd_de: differential evolution, self-adaptive after jDE (J. Brest, S.
    Greiner, B. Boskovic, M. Mernik, V. Zumer, "Self-adapting control
    parameters in differential evolution", IEEE TEC 10(6), 2006), in the
    ask/tell form.

    Each individual x_i carries its own scale factor F_i and crossover rate
    CR_i. A generation builds one trial u_i per individual:
      - F' = f_lower + U(0,1) (f_upper - f_lower) with probability tau_f,
        else F_i; CR' = U(0,1) with probability tau_cr, else CR_i;
      - mutant v = x_r1 + F' (x_r2 - x_r3), r1, r2, r3 distinct and not i
        (DE/rand/1);
      - binomial crossover: u_ij = v_j with probability CR' (and always for
        one random j), else x_ij;
      - a coordinate of v outside the bounds is replaced by the midpoint of
        x_ij and the bound it crossed (as in JADE and SHADE): it keeps the
        trial inside the box without pulling it to the centre or piling
        it on the bound.
    Selection: u_i replaces x_i when f(u_i) <= f(x_i) (<=: drifts across
    plateaus), and then F', CR' become the individual's. Initial F 0.5,
    CR 0.9; population 40 by default (the other algorithms' size, so that
    a budget means the same number of generations).

    Migration: an immigrant replaces the worst individual when it is better
    (and not already there), keeping that individual's F and CR. Export: the
    best individuals.
*/
#include "pd_algo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t d;              /* parameters */
    size_t n;              /* population (>= 4) */
    const double *lo, *hi; /* bounds (borrowed) */
    pd_rng_t *rng;         /* the optimiser's stream */
    double fl, fu;         /* F drawn in [fl, fu] */
    double tau_f, tau_cr;  /* probabilities of drawing F, CR anew */
    double *pop;           /* current population (n x d) */
    double *fit;           /* its values (n) */
    double *F, *CR;        /* each individual's parameters (n each) */
    double *trial;         /* what ask returns (n x d) */
    double *tF, *tCR;      /* the trials' parameters (n each) */
    size_t *order, *tmp;   /* scratch for sorting (n each) */
    bool started;          /* the first population was told */
} de_t;

static void s_destroy(void *st)
{
    de_t *s = st;
    if (!s)
        return;
    free(s->pop);
    free(s->fit);
    free(s->F);
    free(s->CR);
    free(s->trial);
    free(s->tF);
    free(s->tCR);
    free(s->order);
    free(s->tmp);
    free(s);
}

static void *s_create(const pd_algo_env_t *env)
{
    de_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    const pd_de_params_t *p = &env->opts->de;
    size_t d = env->dim, n = env->popsize;
    s->d = d;
    s->n = n;
    s->lo = env->lo;
    s->hi = env->hi;
    s->rng = env->rng;
    s->fl = p->f_lower;
    s->fu = p->f_upper;
    s->tau_f = p->tau_f;
    s->tau_cr = p->tau_cr;
    s->pop = malloc(n * d * sizeof *s->pop);
    s->fit = malloc(n * sizeof *s->fit);
    s->F = malloc(n * sizeof *s->F);
    s->CR = malloc(n * sizeof *s->CR);
    s->trial = malloc(n * d * sizeof *s->trial);
    s->tF = malloc(n * sizeof *s->tF);
    s->tCR = malloc(n * sizeof *s->tCR);
    s->order = malloc(n * sizeof *s->order);
    s->tmp = malloc(n * sizeof *s->tmp);
    if (!s->pop || !s->fit || !s->F || !s->CR || !s->trial || !s->tF || !s->tCR || !s->order ||
        !s->tmp) {
        s_destroy(s);
        return NULL;
    }
    for (size_t i = 0; i < n * d; i++)
        s->trial[i] = pd_rng_range(s->rng, env->ilo[i % d], env->ihi[i % d]);
    for (size_t i = 0; i < n; i++) {
        s->F[i] = s->tF[i] = 0.5;
        s->CR[i] = s->tCR[i] = 0.9;
    }
    return s;
}

/* An index below n other than the ones in not[0 .. k). */
static size_t s_pick(de_t *s, const size_t *not, size_t k)
{
    for (;;) {
        size_t r = (size_t) pd_rng_below(s->rng, s->n);
        bool taken = false;
        for (size_t i = 0; i < k; i++)
            taken |= r == not[i];
        if (!taken)
            return r;
    }
}

static size_t s_ask(void *st, const double **x)
{
    de_t *s = st;
    if (s->started) {
        size_t d = s->d;
        for (size_t i = 0; i < s->n; i++) {
            double F = pd_rng_uniform(s->rng) < s->tau_f
                           ? s->fl + pd_rng_uniform(s->rng) * (s->fu - s->fl)
                           : s->F[i];
            double CR = pd_rng_uniform(s->rng) < s->tau_cr ? pd_rng_uniform(s->rng) : s->CR[i];
            size_t r[4] = {i, 0, 0, 0};
            r[1] = s_pick(s, r, 1);
            r[2] = s_pick(s, r, 2);
            r[3] = s_pick(s, r, 3);
            const double *xi = s->pop + i * d, *a = s->pop + r[1] * d;
            const double *b = s->pop + r[2] * d, *c = s->pop + r[3] * d;
            double *u = s->trial + i * d;
            size_t jr = (size_t) pd_rng_below(s->rng, d);
            for (size_t j = 0; j < d; j++) {
                if (j != jr && pd_rng_uniform(s->rng) >= CR) {
                    u[j] = xi[j];
                    continue;
                }
                double v = a[j] + F * (b[j] - c[j]);
                if (v < s->lo[j])
                    v = 0.5 * (s->lo[j] + xi[j]);
                else if (v > s->hi[j])
                    v = 0.5 * (s->hi[j] + xi[j]);
                u[j] = pd_clamp(v, s->lo[j], s->hi[j]);
            }
            s->tF[i] = F;
            s->tCR[i] = CR;
        }
    }
    *x = s->trial;
    return s->n;
}

static void s_tell(void *st, const double *f)
{
    de_t *s = st;
    size_t d = s->d;
    if (!s->started) {
        memcpy(s->pop, s->trial, s->n * d * sizeof *s->pop);
        memcpy(s->fit, f, s->n * sizeof *f);
        s->started = true;
        return;
    }
    for (size_t i = 0; i < s->n; i++)
        if (f[i] <= s->fit[i]) {
            memcpy(s->pop + i * d, s->trial + i * d, d * sizeof *s->pop);
            s->fit[i] = f[i];
            s->F[i] = s->tF[i];
            s->CR[i] = s->tCR[i];
        }
}

static size_t s_export(void *st, size_t k, double *x, double *f)
{
    de_t *s = st;
    if (!s->started)
        return 0;
    return pd_pool_export(s->pop, s->fit, s->n, s->d, s->order, s->tmp, k, x, f);
}

static size_t s_import(void *st, size_t k, const double *x, const double *f)
{
    de_t *s = st;
    if (!s->started)
        return 0;
    return pd_pool_import(s->pop, s->fit, s->n, s->d, k, x, f, NULL);
}

const pd_algo_ops_t pd_de_ops = {
    .name = "de",
    .create = s_create,
    .destroy = s_destroy,
    .ask = s_ask,
    .tell = s_tell,
    .export_best = s_export,
    .import = s_import,
    .restarts = NULL,
};
