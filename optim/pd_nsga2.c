/*  pd_nsga2: NSGA-II, Pareto ranking, crowding, hypervolume and the
    multi-objective test problems. See pd_nsga2.h. */
#include "pd_nsga2.h"

#include "pd_algo.h"
#include "pd_error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PD_PI 3.14159265358979323846

bool pd_mo_dominates(const double *a, const double *b, size_t m)
{
    bool strict = false;
    for (size_t j = 0; j < m; j++) {
        if (a[j] > b[j])
            return false;
        strict |= a[j] < b[j];
    }
    return strict;
}

/* Deb's fast non-dominated sort. scratch: the lists of points each point
   dominates (n x n), their lengths, the counts of dominators, the current
   and the next front (n each). */
size_t pd_mo_rank(const double *f, size_t n, size_t m, size_t *rank, size_t *scratch)
{
    size_t *dom = scratch, *nd = dom + n * n, *ndom = nd + n, *cur = ndom + n, *nxt = cur + n;
    for (size_t i = 0; i < n; i++)
        nd[i] = ndom[i] = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            if (pd_mo_dominates(f + i * m, f + j * m, m)) {
                dom[i * n + nd[i]++] = j;
                ndom[j]++;
            } else if (pd_mo_dominates(f + j * m, f + i * m, m)) {
                dom[j * n + nd[j]++] = i;
                ndom[i]++;
            }
        }
    size_t k = 0, front = 0;
    for (size_t i = 0; i < n; i++)
        if (ndom[i] == 0)
            cur[k++] = i;
    while (k > 0) {
        size_t next = 0;
        for (size_t t = 0; t < k; t++) {
            size_t i = cur[t];
            rank[i] = front;
            for (size_t u = 0; u < nd[i]; u++)
                if (--ndom[dom[i * n + u]] == 0)
                    nxt[next++] = dom[i * n + u];
        }
        memcpy(cur, nxt, next * sizeof *cur);
        k = next;
        front++;
    }
    return front;
}

void pd_mo_crowding(const double *f, size_t m, const size_t *idx, size_t k, double *dist,
                    double *vals, size_t *order, size_t *tmp)
{
    for (size_t t = 0; t < k; t++)
        dist[t] = k <= 2 ? INFINITY : 0;
    if (k <= 2)
        return;
    for (size_t j = 0; j < m; j++) {
        for (size_t t = 0; t < k; t++)
            vals[t] = f[idx[t] * m + j];
        pd_argsort(vals, k, order, tmp);
        double range = vals[order[k - 1]] - vals[order[0]];
        dist[order[0]] = dist[order[k - 1]] = INFINITY;
        if (!(range > 0))
            continue;
        for (size_t t = 1; t + 1 < k; t++)
            dist[order[t]] += (vals[order[t + 1]] - vals[order[t - 1]]) / range;
    }
}

/* Area dominated by the n points (x[i], y[i]), sorted by x, and bounded by
   (rx, ry); every point is below the reference in both. */
static double hv2_sorted(const double *x, const double *y, size_t n, double rx, double ry)
{
    double area = 0, prev = ry;
    for (size_t i = 0; i < n; i++)
        if (y[i] < prev) {
            area += (rx - x[i]) * (prev - y[i]);
            prev = y[i];
        }
    return area;
}

int pd_mo_hypervolume(const double *f, size_t n, size_t m, const double *ref, double *hv)
{
    if (m < 2 || m > 3)
        return PD_EINVAL;
    *hv = 0;
    double *key = calloc(3 * (n + 1), sizeof *key);
    size_t *in = malloc(3 * (n + 1) * sizeof *in);
    if (!key || !in) {
        free(key);
        free(in);
        return PD_ENOMEM;
    }
    double *xs = key + n + 1, *ys = xs + n + 1;
    size_t *order = in + n + 1, *tmp = order + n + 1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool below = true;
        for (size_t j = 0; j < m; j++)
            below &= f[i * m + j] < ref[j];
        if (below)
            in[k++] = i;
    }
    /* Sorted along the last value: the 2-D sweep's x, or the slices' z. */
    for (size_t t = 0; t < k; t++)
        key[t] = f[in[t] * m + m - 1 - (m == 2)];
    pd_argsort(key, k, order, tmp);
    if (m == 2) {
        for (size_t t = 0; t < k; t++) {
            xs[t] = f[in[order[t]] * 2];
            ys[t] = f[in[order[t]] * 2 + 1];
        }
        *hv = hv2_sorted(xs, ys, k, ref[0], ref[1]);
    }
    /* 3-D: the points up to the t-th along z, kept sorted by x, make the
       cross-section of the slab between the t-th z and the next. */
    for (size_t t = 0; m == 3 && t < k; t++) {
        const double *p = f + in[order[t]] * 3;
        size_t u = t;
        while (u > 0 && xs[u - 1] > p[0]) {
            xs[u] = xs[u - 1];
            ys[u] = ys[u - 1];
            u--;
        }
        xs[u] = p[0];
        ys[u] = p[1];
        double ztop = t + 1 < k ? f[in[order[t + 1]] * 3 + 2] : ref[2];
        if (ztop > p[2])
            *hv += hv2_sorted(xs, ys, t + 1, ref[0], ref[1]) * (ztop - p[2]);
    }
    free(key);
    free(in);
    return 0;
}

/* ---- NSGA-II ------------------------------------------------------------ */

struct pd_nsga2 {
    size_t d, m, n;
    double *lo, *hi;
    pd_nsga2_params_t p;
    pd_rng_t *rng;
    bool started;    /* the initial population has been asked for */
    double *x, *f;   /* 2n rows: the parents, then the offspring */
    double *x2, *f2; /* n rows: the next parents while they are copied */
    size_t *rank;    /* 2n: Pareto rank */
    double *crowd;   /* 2n: crowding distance within the rank */
    size_t *scratch; /* 2n (2n + 4): pd_mo_rank's */
    size_t *idx, *order, *tmp, *sel; /* 2n each */
    double *vals, *dist;             /* 2n each */
};

void pd_nsga2_defaults(pd_nsga2_params_t *p)
{
    *p = (pd_nsga2_params_t){.cr = 0.95, .eta_c = 10, .pm = 0, .eta_m = 50};
}

void pd_nsga2_destroy(pd_nsga2_t *s)
{
    if (!s)
        return;
    free(s->lo);
    free(s->hi);
    free(s->x);
    free(s->f);
    free(s->x2);
    free(s->f2);
    free(s->rank);
    free(s->crowd);
    free(s->scratch);
    free(s->idx);
    free(s->order);
    free(s->tmp);
    free(s->sel);
    free(s->vals);
    free(s->dist);
    free(s);
}

pd_nsga2_t *pd_nsga2_create(size_t dim, size_t m, size_t n, const double *lo, const double *hi,
                            const pd_nsga2_params_t *p, pd_rng_t *rng)
{
    if (dim == 0 || m == 0 || m > PD_MO_MAX_OBJECTIVES || n < 4 || n % 2 || n > 100000)
        return NULL;
    pd_nsga2_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    size_t n2 = 2 * n;
    s->d = dim;
    s->m = m;
    s->n = n;
    s->rng = rng;
    if (p)
        s->p = *p;
    else
        pd_nsga2_defaults(&s->p);
    if (!(s->p.pm > 0))
        s->p.pm = 1.0 / (double) dim;
    s->lo = malloc(dim * sizeof *s->lo);
    s->hi = malloc(dim * sizeof *s->hi);
    s->x = malloc(n2 * dim * sizeof *s->x);
    s->f = malloc(n2 * m * sizeof *s->f);
    s->x2 = malloc(n * dim * sizeof *s->x2);
    s->f2 = malloc(n * m * sizeof *s->f2);
    s->rank = malloc(n2 * sizeof *s->rank);
    s->crowd = malloc(n2 * sizeof *s->crowd);
    s->scratch = malloc(n2 * (n2 + 4) * sizeof *s->scratch);
    s->idx = malloc(n2 * sizeof *s->idx);
    s->order = malloc(n2 * sizeof *s->order);
    s->tmp = malloc(n2 * sizeof *s->tmp);
    s->sel = malloc(n2 * sizeof *s->sel);
    s->vals = malloc(n2 * sizeof *s->vals);
    s->dist = malloc(n2 * sizeof *s->dist);
    if (!s->lo || !s->hi || !s->x || !s->f || !s->x2 || !s->f2 || !s->rank || !s->crowd ||
        !s->scratch || !s->idx || !s->order || !s->tmp || !s->sel || !s->vals || !s->dist) {
        pd_nsga2_destroy(s);
        return NULL;
    }
    memcpy(s->lo, lo, dim * sizeof *lo);
    memcpy(s->hi, hi, dim * sizeof *hi);
    return s;
}

/* Members of rank r among the first count points, in index order, into
   s->idx; returns how many. */
static size_t front_members(const pd_nsga2_t *s, size_t count, size_t r)
{
    size_t k = 0;
    for (size_t i = 0; i < count; i++)
        if (s->rank[i] == r)
            s->idx[k++] = i;
    return k;
}

/* Ranks the first count points and gives each its crowding distance. */
static void rank_and_crowd(pd_nsga2_t *s, size_t count)
{
    size_t fronts = pd_mo_rank(s->f, count, s->m, s->rank, s->scratch);
    for (size_t r = 0; r < fronts; r++) {
        size_t k = front_members(s, count, r);
        pd_mo_crowding(s->f, s->m, s->idx, k, s->dist, s->vals, s->order, s->tmp);
        for (size_t t = 0; t < k; t++)
            s->crowd[s->idx[t]] = s->dist[t];
    }
}

/* Binary tournament among the parents: lower rank, then larger crowding. */
static size_t tournament(pd_nsga2_t *s)
{
    size_t a = (size_t) pd_rng_below(s->rng, s->n), b = (size_t) pd_rng_below(s->rng, s->n);
    if (s->rank[b] < s->rank[a] || (s->rank[b] == s->rank[a] && s->crowd[b] > s->crowd[a]))
        return b;
    return a;
}

/* One SBX spread factor for the distance from the parents to a bound. */
static double sbx_betaq(double beta, double u, double eta)
{
    double alpha = 2.0 - pow(beta, -(eta + 1.0));
    if (u <= 1.0 / alpha)
        return pow(u * alpha, 1.0 / (eta + 1.0));
    return pow(1.0 / (2.0 - u * alpha), 1.0 / (eta + 1.0));
}

/* Deb's bounded simulated binary crossover of a and b, in place. */
static void sbx(pd_nsga2_t *s, double *a, double *b)
{
    double eta = s->p.eta_c;
    for (size_t j = 0; j < s->d; j++) {
        if (pd_rng_uniform(s->rng) > 0.5 || fabs(a[j] - b[j]) <= 1e-14)
            continue;
        double y1 = fmin(a[j], b[j]), y2 = fmax(a[j], b[j]), lo = s->lo[j], hi = s->hi[j];
        double u = pd_rng_uniform(s->rng);
        double bq1 = sbx_betaq(1.0 + 2.0 * (y1 - lo) / (y2 - y1), u, eta);
        double bq2 = sbx_betaq(1.0 + 2.0 * (hi - y2) / (y2 - y1), u, eta);
        double c1 = pd_clamp(0.5 * ((y1 + y2) - bq1 * (y2 - y1)), lo, hi);
        double c2 = pd_clamp(0.5 * ((y1 + y2) + bq2 * (y2 - y1)), lo, hi);
        bool swap = pd_rng_uniform(s->rng) <= 0.5;
        a[j] = swap ? c2 : c1;
        b[j] = swap ? c1 : c2;
    }
}

/* Deb's bounded polynomial mutation of y, in place. */
static void mutate(pd_nsga2_t *s, double *y)
{
    double pw = 1.0 / (s->p.eta_m + 1.0);
    for (size_t j = 0; j < s->d; j++) {
        if (pd_rng_uniform(s->rng) >= s->p.pm)
            continue;
        double lo = s->lo[j], hi = s->hi[j], w = hi - lo;
        if (!(w > 0))
            continue;
        double d1 = (y[j] - lo) / w, d2 = (hi - y[j]) / w, u = pd_rng_uniform(s->rng), dq;
        if (u < 0.5) {
            double v = 2.0 * u + (1.0 - 2.0 * u) * pow(1.0 - d1, s->p.eta_m + 1.0);
            dq = pow(v, pw) - 1.0;
        } else {
            double v = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * pow(1.0 - d2, s->p.eta_m + 1.0);
            dq = 1.0 - pow(v, pw);
        }
        y[j] = pd_clamp(y[j] + dq * w, lo, hi);
    }
}

size_t pd_nsga2_ask(pd_nsga2_t *s, const double **x)
{
    size_t n = s->n, d = s->d;
    if (!s->started) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < d; j++)
                s->x[i * d + j] = pd_rng_range(s->rng, s->lo[j], s->hi[j]);
        *x = s->x;
        return n;
    }
    double *kid = s->x + n * d;
    for (size_t c = 0; c < n; c += 2) {
        double *a = kid + c * d, *b = a + d;
        memcpy(a, s->x + tournament(s) * d, d * sizeof *a);
        memcpy(b, s->x + tournament(s) * d, d * sizeof *b);
        if (pd_rng_uniform(s->rng) < s->p.cr)
            sbx(s, a, b);
        mutate(s, a);
        mutate(s, b);
    }
    *x = kid;
    return n;
}

/* Elitist selection: the n best of the parents and the count - n rows after
   them (offspring or migrants) by fronts, the last front cut by crowding
   (largest first, ties in index order). Returns how many of the rows after
   the parents were selected. */
static size_t select_next(pd_nsga2_t *s, size_t count)
{
    size_t n = s->n, n2 = count, d = s->d, m = s->m, taken = 0, newcomers = 0;
    rank_and_crowd(s, n2);
    for (size_t r = 0; taken < n; r++) {
        size_t k = front_members(s, n2, r);
        if (taken + k <= n) {
            memcpy(s->sel + taken, s->idx, k * sizeof *s->idx);
            taken += k;
            continue;
        }
        for (size_t t = 0; t < k; t++)
            s->vals[t] = -s->crowd[s->idx[t]];
        pd_argsort(s->vals, k, s->order, s->tmp);
        for (size_t t = 0; taken < n; t++)
            s->sel[taken++] = s->idx[s->order[t]];
    }
    for (size_t i = 0; i < n; i++) {
        newcomers += s->sel[i] >= n;
        memcpy(s->x2 + i * d, s->x + s->sel[i] * d, d * sizeof *s->x);
        memcpy(s->f2 + i * m, s->f + s->sel[i] * m, m * sizeof *s->f);
    }
    memcpy(s->x, s->x2, n * d * sizeof *s->x);
    memcpy(s->f, s->f2, n * m * sizeof *s->f);
    return newcomers;
}

void pd_nsga2_tell(pd_nsga2_t *s, const double *f)
{
    size_t n = s->n;
    if (!s->started) {
        memcpy(s->f, f, n * s->m * sizeof *f);
        s->started = true;
    } else {
        memcpy(s->f + n * s->m, f, n * s->m * sizeof *f);
        select_next(s, 2 * n);
    }
    rank_and_crowd(s, n);
}

size_t pd_nsga2_import(pd_nsga2_t *s, size_t k, const double *x, const double *f)
{
    size_t n = s->n;
    if (!s->started || k == 0)
        return 0;
    k = k < n ? k : n;
    memcpy(s->x + n * s->d, x, k * s->d * sizeof *x);
    memcpy(s->f + n * s->m, f, k * s->m * sizeof *f);
    size_t took = select_next(s, n + k);
    rank_and_crowd(s, n);
    return took;
}

size_t pd_nsga2_front(const pd_nsga2_t *s, size_t k, double *x, double *f)
{
    if (!s->started)
        return 0;
    size_t d = s->d, m = s->m, c = 0, got = front_members(s, s->n, 0);
    for (size_t t = 0; t < got; t++)
        s->vals[t] = s->f[s->idx[t] * m];
    pd_argsort(s->vals, got, s->order, s->tmp);
    for (size_t t = 0; t < got && c < k; t++) {
        const double *px = s->x + s->idx[s->order[t]] * d;
        if (c > 0 && memcmp(px, x + (c - 1) * d, d * sizeof *px) == 0)
            continue;
        memcpy(x + c * d, px, d * sizeof *px);
        memcpy(f + c * m, s->f + s->idx[s->order[t]] * m, m * sizeof *f);
        c++;
    }
    return c;
}

/* ---- test problems ------------------------------------------------------ */

int pd_mo_testfn(const char *which, const double *x, size_t n, size_t dim, size_t m, double *f)
{
    int zdt = !strcmp(which, "zdt1") ? 1 : !strcmp(which, "zdt2") ? 2 : !strcmp(which, "zdt3") ? 3 : 0;
    if (zdt) {
        if (m != 2 || dim < 2)
            return PD_EINVAL;
        for (size_t i = 0; i < n; i++) {
            const double *p = x + i * dim;
            double g = 0;
            for (size_t j = 1; j < dim; j++)
                g += p[j];
            g = 1.0 + 9.0 * g / (double) (dim - 1);
            double r = p[0] / g, h = zdt == 1 ? 1.0 - sqrt(r)
                                  : zdt == 2 ? 1.0 - r * r
                                             : 1.0 - sqrt(r) - r * sin(10.0 * PD_PI * p[0]);
            f[i * 2] = p[0];
            f[i * 2 + 1] = g * h;
        }
        return 0;
    }
    if (strcmp(which, "dtlz2") || m < 2 || m > 3 || dim < m)
        return PD_EINVAL;
    for (size_t i = 0; i < n; i++) {
        const double *p = x + i * dim;
        double g = 0;
        for (size_t j = m - 1; j < dim; j++)
            g += (p[j] - 0.5) * (p[j] - 0.5);
        for (size_t o = 0; o < m; o++) {
            double v = 1.0 + g;
            for (size_t j = 0; j + 1 + o < m; j++)
                v *= cos(p[j] * PD_PI / 2);
            if (o > 0)
                v *= sin(p[m - 1 - o] * PD_PI / 2);
            f[i * m + o] = v;
        }
    }
    return 0;
}
