/*  pd_nm: bounded Nelder-Mead (see pd_nm.h).

    The classic method (Nelder and Mead 1965, coefficients 1, 2, 1/2, 1/2 as
    in Lagarias et al. 1998) on the box: every point it proposes is clamped
    into the bounds before it is evaluated, so that it never asks for a point
    outside them. The first simplex is the start and the start moved by 5 %
    of the box's width along each coordinate (backwards when that would
    leave the box); it is evaluated as one block, as is a shrink. The
    polish ends when its budget is spent, or when the simplex has collapsed
    (every vertex within 1e-15 of the box's width of the best, values
    equal). Values are compared in the minimisation sense.
*/
#include "pd_nm.h"

#include "pd_algo.h"
#include "pd_error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const pd_optim_opts_t *o;
    pd_fitness_fn fn;
    const pd_fitness_block_t *tmpl; /* the run's part of every block */
    uint32_t g;
    uint32_t *grp;       /* group indices of a block (dim + 1) */
    double *bx, bf;      /* best point evaluated and its value (minimisation sense) */
    double sense;        /* +1 minimise, -1 maximise */
    uint64_t evals, budget;
    char *err;
    size_t errlen;
} nm_t;

/* Evaluates n points (n x dim) into f (minimisation sense). */
static int s_eval(nm_t *m, const double *x, size_t n, double *f)
{
    char msg[512] = "";
    pd_fitness_block_t b = *m->tmpl;
    b.x = x;
    b.n = n;
    b.dim = m->o->dim;
    b.group = m->grp;
    b.groups = m->o->groups ? m->o->groups : 1;
    b.error = msg;
    b.error_size = sizeof msg;
    int rc = m->fn(&b, f);
    m->evals += n;
    if (rc) {
        msg[sizeof msg - 1] = 0;
        snprintf(m->err, m->errlen,
                 "fitness failed (returned %d) while polishing group %u on island %u: %s", rc,
                 m->g, m->tmpl->island,
                 msg[0] ? msg : "it gave no reason (write one into block->error)");
        return PD_ETASK;
    }
    for (size_t i = 0; i < n; i++) {
        if (isnan(f[i])) {
            snprintf(m->err, m->errlen,
                     "fitness returned NaN while polishing group %u on island %u: make the "
                     "fitness return a number for every point within the bounds",
                     m->g, m->tmpl->island);
            return PD_ETASK;
        }
        f[i] *= m->sense;
    }
    for (size_t i = 0; i < n; i++)
        if (f[i] < m->bf) {
            m->bf = f[i];
            memcpy(m->bx, x + i * m->o->dim, m->o->dim * sizeof *x);
        }
    return 0;
}

/* p = c + t (c - w), clamped into the box. */
static void s_line(const pd_optim_opts_t *o, const double *c, const double *w, double t, double *p)
{
    for (size_t j = 0; j < o->dim; j++)
        p[j] = pd_clamp(c[j] + t * (c[j] - w[j]), o->lower[j], o->upper[j]);
}

int pd_nm_polish(const pd_optim_opts_t *o, pd_fitness_fn fn, const pd_fitness_block_t *tmpl,
                 uint32_t g, uint64_t budget, double *x, double *f, uint64_t *evals, char *err,
                 size_t errlen)
{
    size_t d = o->dim, n1 = d + 1;
    nm_t m = {.o = o, .fn = fn, .tmpl = tmpl, .g = g, .sense = o->maximize ? -1.0 : 1.0,
              .budget = budget, .err = err, .errlen = errlen};
    double best = m.sense * *f;
    *evals = 0;
    /* not even the first simplex and one step; d is at most a million
       (pd_optim_opts_check), which the compiler cannot know */
    if (d == 0 || d > 1000000 || budget < n1 + 1)
        return 0;
    double *s = malloc(n1 * d * sizeof *s), *sf = malloc(n1 * sizeof *sf);
    double *c = malloc(d * sizeof *c), *r = malloc(d * sizeof *r), *e = malloc(d * sizeof *e);
    size_t *order = malloc(n1 * sizeof *order), *tmp = malloc(n1 * sizeof *tmp);
    double *ss = malloc(n1 * d * sizeof *ss), *ssf = malloc(n1 * sizeof *ssf);
    m.grp = malloc(n1 * sizeof *m.grp);
    m.bx = malloc(d * sizeof *m.bx);
    int rc = 0;
    if (!s || !sf || !c || !r || !e || !order || !tmp || !ss || !ssf || !m.grp || !m.bx) {
        rc = PD_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n1; i++)
        m.grp[i] = g;
    m.bf = best;
    memcpy(m.bx, x, d * sizeof *x);
    /* the first simplex: x and x + 5 % of the width along each axis */
    for (size_t i = 0; i < n1; i++) {
        memcpy(s + i * d, x, d * sizeof *x);
        if (i) {
            size_t j = i - 1;
            double step = 0.05 * (o->upper[j] - o->lower[j]);
            double v = x[j] + step;
            s[i * d + j] = v <= o->upper[j] ? v : x[j] - step;
        }
    }
    sf[0] = best;
    if ((rc = s_eval(&m, s + d, d, sf + 1)))
        goto done;
    while (m.evals + 2 <= m.budget) {
        /* order the simplex: best first */
        pd_argsort(sf, n1, order, tmp);
        for (size_t i = 0; i < n1; i++) {
            memcpy(ss + i * d, s + order[i] * d, d * sizeof *s);
            ssf[i] = sf[order[i]];
        }
        memcpy(s, ss, n1 * d * sizeof *s);
        memcpy(sf, ssf, n1 * sizeof *sf);
        double *w = s + d * d; /* the worst vertex */
        bool flat = sf[d] == sf[0];
        for (size_t i = 1; i < n1 && flat; i++)
            for (size_t j = 0; j < d && flat; j++)
                flat = fabs(s[i * d + j] - s[j]) <= 1e-15 * (o->upper[j] - o->lower[j]);
        if (flat)
            break;
        for (size_t j = 0; j < d; j++) {
            double sum = 0;
            for (size_t i = 0; i < d; i++)
                sum += s[i * d + j];
            c[j] = sum / (double) d;
        }
        double fr, fe, fc;
        s_line(o, c, w, 1.0, r);
        if ((rc = s_eval(&m, r, 1, &fr)))
            goto done;
        if (fr < sf[0]) {
            s_line(o, c, w, 2.0, e);
            if ((rc = s_eval(&m, e, 1, &fe)))
                goto done;
            if (fe < fr) {
                memcpy(w, e, d * sizeof *e);
                sf[d] = fe;
            } else {
                memcpy(w, r, d * sizeof *r);
                sf[d] = fr;
            }
            continue;
        }
        if (fr < sf[d - 1]) {
            memcpy(w, r, d * sizeof *r);
            sf[d] = fr;
            continue;
        }
        /* contraction: outside when r beats the worst, else inside */
        bool outside = fr < sf[d];
        s_line(o, c, w, outside ? 0.5 : -0.5, e);
        if ((rc = s_eval(&m, e, 1, &fc)))
            goto done;
        if (outside ? fc <= fr : fc < sf[d]) {
            memcpy(w, e, d * sizeof *e);
            sf[d] = fc;
            continue;
        }
        /* shrink towards the best vertex, as one block */
        if (m.evals + d > m.budget)
            break;
        for (size_t i = 1; i < n1; i++)
            for (size_t j = 0; j < d; j++)
                s[i * d + j] = s[j] + 0.5 * (s[i * d + j] - s[j]);
        if ((rc = s_eval(&m, s + d, d, sf + 1)))
            goto done;
    }
done:
    /* the best point of the blocks that succeeded, when it beats the start */
    if (m.bx && m.bf < best) {
        memcpy(x, m.bx, d * sizeof *x);
        *f = m.sense * m.bf;
    }
    *evals = m.evals;
    free(s);
    free(sf);
    free(c);
    free(r);
    free(e);
    free(order);
    free(tmp);
    free(ss);
    free(ssf);
    free(m.grp);
    free(m.bx);
    return rc;
}
