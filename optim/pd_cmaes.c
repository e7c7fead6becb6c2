/*  pd_cmaes: CMA-ES (N. Hansen, "The CMA Evolution Strategy: A Tutorial",
    2016) in the ask/tell form, with IPOP restarts (A. Auger and N. Hansen,
    CEC 2005) and Hansen's method for injecting external solutions (N.
    Hansen, "Injecting External Solutions Into CMA-ES", 2011).

    Parameters are Hansen's defaults with positive recombination weights:
    lambda = 4 + floor(3 ln n), mu = floor(lambda / 2), w_i proportional to
    ln((lambda + 1) / 2) - ln i, c_c = (4 + mueff/n) / (n + 4 + 2 mueff/n),
    c_s = (mueff + 2) / (n + mueff + 5), c_1 = 2 / ((n + 1.3)^2 + mueff),
    c_mu = min(1 - c_1, 2 (mueff - 2 + 1/mueff) / ((n + 2)^2 + mueff)),
    d_s = 1 + 2 max(0, sqrt((mueff - 1) / (n + 1)) - 1) + c_s.

    Cost: the covariance C is decomposed (C = B D^2 B^T, LAPACK dsyev, dsyevr
    as fallback) only once 0.5 lambda / ((c_1 + c_mu) n) samples have been
    drawn since the last time (the lazy gap of Hansen's purecma.py; his
    tutorial's Matlab code waits 5 times less), so that sampling (y = B D z)
    and the update cost O(n^2) per sample and the decomposition's O(n^3) is
    spread over O(n) samples.

    Coordinates: the search runs on x / s, s being the width of the initial
    range per coordinate, so that sigma0 is a fraction of that range in
    every coordinate (Hansen's "scaling of variables"); points asked are in
    the user's coordinates.

    Bounds and injection, one mechanism: a sample that leaves the bounds is
    clamped onto them (the point evaluated is the clamped one), and an
    immigrant from another island enters the next generation with its known
    value in place of a sample. For both, the step used by the update is
    y = (x - m) / sigma recomputed from the actual point and shortened so
    that its Mahalanobis length ||C^-1/2 y|| is at most sqrt(n) + 2n/(n+2)
    (Hansen 2011): a repaired or foreign point then pulls the mean and the
    covariance without breaking the step-size control. Immigrants cost no
    evaluation; at most mu are injected per generation.

    Stopping (then IPOP restarts with lambda x popsize_factor, a fresh mean
    in the initial range, sigma0 and C = I, while restarts remain; the best
    point is kept): TolFun (best values of the last 10 + 30 n / lambda
    generations and all of the current one within tol_fun x |best|: relative,
    where Hansen's is absolute, so that a function whose minimum is 0 is
    followed down to TolX instead of being left at 1e-12 or so, while a
    local minimum at f ~ 1 stops as early as with the absolute rule), TolX (sigma
    max(|p_c,i|, sqrt(C_ii)) < tol_x sigma0 for every i), NoEffectAxis,
    NoEffectCoord, ConditionCov (> 1e14), TolUpSigma, or a covariance that
    stops being positive definite. A flat generation (best equal to the
    value ranked ceil(0.1 + lambda / 4)) widens sigma by exp(0.2 + c_s / d_s).
    The defaults (tol_fun 1e-12, tol_x 1e-16) do not stop a run before 1e-8
    on the usual tests.

    Restarts across islands: the IPOP population sizes form levels,
    lambda_l = lambda_0 x popsize_factor^l; with N islands, island i runs
    the levels i, i + N, i + 2N, ... (each island still `restarts` of them
    at most; island i starts at level i mod (restarts + 1), and at the
    largest level within the cap on lambda x n when that one would pass
    it). Running every level on every
    island split the budget so that no island reached the large
    populations a multimodal function needs (shifted Rastrigin 10-D, 10^5
    evaluations, 20 seeds of two shifts: 31 solved on one island, 15 on 2);
    the islands now share the sequence of levels one island would climb (30
    solved on 2). With 4 islands that still fell short (seeds 1 to 40 of
    "@1" and "@2": 8 and 10 solved against 32 and 32 on one island): island 3 went from lambda_0 x 8 to x 128 and
    its large levels took the budget in every generation, cutting short
    the smaller levels that solve. So an island starts its next level only
    when the evaluations of its runs so far plus CMA_SHARE_GENERATIONS
    generations of the new lambda fit in its share (budget / islands);
    otherwise it finishes, and the budget it leaves goes to the runs of the
    others, which the budget stops only when the total is spent (4
    islands: 34 and 33 solved; 3 islands 29 and 33; 2 islands 31 and 30,
    as before the rule; bench_optim_cluster ipop gives the same counts on
    the cluster). Every island decides from its own count, so a cluster run
    makes the same decisions as the in-process one. An island that has
    finished leaves the budget to the others (the budget counts all
    islands).

    BIPOP (N. Hansen, "Benchmarking a BI-Population CMA-ES on the BBOB-2009
    Function Testbed", 2009), with cmaes.bipop: after the first run, each
    restart goes to the regime that has spent fewer evaluations so far:
    large (the next IPOP level, sigma0) or small (lambda_s = lambda_0 x
    (lambda_l / (2 lambda_0))^(U^2), at least lambda_0, sigma = sigma0 x
    10^(-2U), U uniform in [0, 1], lambda_l the last large level); only the
    large restarts count against `restarts`.
*/
#include "pd_algo.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Generations an IPOP level must be able to run within an island's share
   of the budget (budget / islands, evaluations of its earlier runs
   included) for the island to start it (see "Restarts across islands"). */
#define CMA_SHARE_GENERATIONS 20

/* Largest lambda x n an IPOP restart may reach (doubles per sample array). */
#define CMA_MAX_SAMPLES_X_DIM ((size_t) 1 << 24)

typedef struct {
    size_t n;                 /* parameters */
    const double *lo, *hi;    /* bounds, user coordinates (borrowed) */
    const double *ilo, *ihi;  /* initial range (borrowed) */
    double *s;                /* scale per coordinate: initial range width (n) */
    pd_rng_t *rng;            /* the optimiser's stream */
    /* strategy parameters (depend on lambda) */
    size_t lambda, mu;        /* samples per generation, parents recombined */
    double *w;                /* recombination weights (mu), sum 1 */
    double mueff;             /* variance effective selection mass, 1 / sum w^2 */
    double cc, cs;            /* learning rates of the two evolution paths */
    double c1, cmu;           /* learning rates of the rank-one and rank-mu updates */
    double damps;             /* step-size damping */
    /* state, in scaled coordinates */
    double sigma, sigma0;     /* step size, and its value at each (re)start */
    double *m;                /* mean (n) */
    double *pc, *ps;          /* evolution paths (n each) */
    double *C;                /* covariance, upper triangle used, column-major (n x n) */
    double *B;                /* eigenvectors, column j = vector j (n x n) */
    double *D;                /* square roots of the eigenvalues (n) */
    double *work;             /* copy of C for LAPACK (n x n) */
    double *eig;              /* eigenvalues (n) */
    lapack_int *isuppz;       /* dsyevr's support (2n) */
    /* the generation */
    double *X;                /* points, user coordinates (lambda x n): injected first */
    double *Y;                /* steps (x - m) / sigma, scaled coordinates (lambda x n) */
    double *F;                /* values (lambda) */
    unsigned char *repaired;  /* 1: Y must be recomputed and clipped (lambda) */
    size_t ninj;              /* injected points at the head of this generation */
    size_t *order, *tmp;      /* sort of F (lambda each) */
    double *ymean, *t1, *t2;  /* scratch (n each) */
    /* immigrants waiting for the next generation */
    double *inj_x, *inj_f;    /* up to mu_cap points (user coordinates) and values */
    size_t inj_n, inj_cap;
    /* bookkeeping */
    uint64_t gen;             /* generations since the (re)start */
    uint64_t evals;           /* samples since the (re)start */
    uint64_t eigen_evals;     /* evals at the last decomposition */
    double *hist;             /* best value of recent generations (ring, histlen) */
    size_t histlen, hist_n, hist_pos; /* ring size, entries, next slot */
    double *bx, bf;           /* best point seen (user coordinates) and value */
    bool have_best, told;     /* bx holds a point; a generation was told */
    uint32_t max_restarts;    /* IPOP (large) restarts allowed */
    uint64_t restarts;        /* done, large and small */
    uint32_t large;           /* large restarts done */
    double inc;               /* lambda factor per restart */
    size_t lambda0;           /* the default population: level 0 */
    uint32_t level, islands;  /* the current large level; its step (islands) */
    bool bipop;               /* BIPOP: small runs between the large ones */
    bool small;               /* the current run is a small one */
    size_t lambda_large;      /* lambda of the last large run */
    uint64_t spent_large, spent_small; /* evaluations of each regime (BIPOP) */
    uint64_t share;           /* budget / islands; 0: no budget or one island */
    double tol_fun, tol_x;    /* stopping tolerances */
    bool finished;            /* converged with no restart left: ask returns 0 */
} cma_t;

static void s_free_gen(cma_t *s)
{
    free(s->w);
    free(s->X);
    free(s->Y);
    free(s->F);
    free(s->repaired);
    free(s->order);
    free(s->tmp);
    free(s->hist);
    s->w = s->X = s->Y = s->F = s->hist = NULL;
    s->repaired = NULL;
    s->order = s->tmp = NULL;
}

static void s_destroy(void *st)
{
    cma_t *s = st;
    if (!s)
        return;
    s_free_gen(s);
    free(s->s);
    free(s->m);
    free(s->pc);
    free(s->ps);
    free(s->C);
    free(s->B);
    free(s->D);
    free(s->work);
    free(s->eig);
    free(s->isuppz);
    free(s->ymean);
    free(s->t1);
    free(s->t2);
    free(s->inj_x);
    free(s->inj_f);
    free(s->bx);
    free(s);
}

/* Sets lambda's strategy parameters and (re)allocates the generation's
   arrays. Returns false when out of memory. */
static bool s_set_lambda(cma_t *s, size_t lambda)
{
    s_free_gen(s);
    size_t n = s->n;
    double nn = (double) n;
    s->lambda = lambda;
    s->mu = lambda / 2;
    s->w = malloc(s->mu * sizeof *s->w);
    s->X = malloc(lambda * n * sizeof *s->X);
    s->Y = malloc(lambda * n * sizeof *s->Y);
    s->F = malloc(lambda * sizeof *s->F);
    s->repaired = malloc(lambda);
    s->order = malloc(lambda * sizeof *s->order);
    s->tmp = malloc(lambda * sizeof *s->tmp);
    s->histlen = 10 + (size_t) ceil(30.0 * nn / (double) lambda);
    s->hist = malloc(s->histlen * sizeof *s->hist);
    if (!s->w || !s->X || !s->Y || !s->F || !s->repaired || !s->order || !s->tmp || !s->hist)
        return false;
    double sum = 0, sum2 = 0;
    for (size_t i = 0; i < s->mu; i++) {
        s->w[i] = log((lambda + 1) / 2.0) - log((double) i + 1);
        sum += s->w[i];
    }
    for (size_t i = 0; i < s->mu; i++) {
        s->w[i] /= sum;
        sum2 += s->w[i] * s->w[i];
    }
    s->mueff = 1.0 / sum2;
    double me = s->mueff;
    s->cc = (4 + me / nn) / (nn + 4 + 2 * me / nn);
    s->cs = (me + 2) / (nn + me + 5);
    s->c1 = 2 / ((nn + 1.3) * (nn + 1.3) + me);
    s->cmu = fmin(1 - s->c1, 2 * (me - 2 + 1 / me) / ((nn + 2) * (nn + 2) + me));
    s->damps = 1 + 2 * fmax(0, sqrt((me - 1) / (nn + 1)) - 1) + s->cs;
    return true;
}

/* A fresh start: mean uniform in the initial range, sigma0, C = I. */
static void s_reset(cma_t *s)
{
    size_t n = s->n;
    for (size_t i = 0; i < n; i++)
        s->m[i] = pd_rng_range(s->rng, s->ilo[i], s->ihi[i]) / s->s[i];
    memset(s->pc, 0, n * sizeof *s->pc);
    memset(s->ps, 0, n * sizeof *s->ps);
    memset(s->C, 0, n * n * sizeof *s->C);
    memset(s->B, 0, n * n * sizeof *s->B);
    for (size_t i = 0; i < n; i++) {
        s->C[i + i * n] = 1;
        s->B[i + i * n] = 1;
        s->D[i] = 1;
    }
    s->sigma = s->sigma0;
    s->gen = 0;
    s->evals = 0;
    s->eigen_evals = 0;
    s->hist_n = 0;
    s->hist_pos = 0;
}

/* lambda of IPOP level l: lambda0 x inc^l, capped so that lambda x n stays
   within CMA_MAX_SAMPLES_X_DIM (0 past the cap). */
static size_t s_level_lambda(const cma_t *s, uint32_t l)
{
    double v = (double) s->lambda0 * pow(s->inc > 1 ? s->inc : 1, (double) l);
    if (!(v * (double) s->n <= (double) CMA_MAX_SAMPLES_X_DIM))
        return l == 0 ? s->lambda0 : 0;
    return (size_t) floor(v);
}

static void *s_create(const pd_algo_env_t *env)
{
    cma_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    const pd_cmaes_params_t *cp = &env->opts->cmaes;
    size_t n = env->dim;
    s->n = n;
    s->lo = env->lo;
    s->hi = env->hi;
    s->ilo = env->ilo;
    s->ihi = env->ihi;
    s->rng = env->rng;
    s->sigma0 = cp->sigma0;
    s->max_restarts = cp->restarts;
    s->inc = cp->popsize_factor;
    s->bipop = cp->bipop;
    s->lambda0 = env->popsize;
    s->islands = env->islands ? env->islands : 1;
    s->share = s->islands > 1 ? env->opts->budget / s->islands : 0;
    /* island i starts at level i when there are restarts to share; past
       the levels one island could reach (restarts + 1), the islands start
       over from level 0 */
    s->level = s->max_restarts ? env->island % (s->max_restarts + 1) : 0;
    while (s->level > 0 && s_level_lambda(s, s->level) == 0)
        s->level--;
    size_t lambda = s_level_lambda(s, s->level);
    s->tol_fun = cp->tol_fun;
    s->tol_x = cp->tol_x;
    s->s = malloc(n * sizeof *s->s);
    s->m = malloc(n * sizeof *s->m);
    s->pc = malloc(n * sizeof *s->pc);
    s->ps = malloc(n * sizeof *s->ps);
    s->C = malloc(n * n * sizeof *s->C);
    s->B = malloc(n * n * sizeof *s->B);
    s->D = malloc(n * sizeof *s->D);
    s->work = malloc(n * n * sizeof *s->work);
    s->eig = malloc(n * sizeof *s->eig);
    s->isuppz = malloc(2 * n * sizeof *s->isuppz);
    s->ymean = malloc(n * sizeof *s->ymean);
    s->t1 = malloc(n * sizeof *s->t1);
    s->t2 = malloc(n * sizeof *s->t2);
    s->bx = malloc(n * sizeof *s->bx);
    if (!s->s || !s->m || !s->pc || !s->ps || !s->C || !s->B || !s->D || !s->work || !s->eig ||
        !s->isuppz || !s->ymean || !s->t1 || !s->t2 || !s->bx || !s_set_lambda(s, lambda)) {
        s_destroy(s);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        s->s[i] = env->ihi[i] - env->ilo[i];
    s->bf = INFINITY;
    s->lambda_large = s->lambda;
    s_reset(s);
    return s;
}

/* y = B D z: a step of the current distribution from a standard normal z
   (in t1). */
static void s_sample_step(cma_t *s, double *y)
{
    size_t n = s->n;
    memset(y, 0, n * sizeof *y);
    for (size_t j = 0; j < n; j++) {
        double t = s->D[j] * pd_rng_normal(s->rng);
        const double *bj = s->B + j * n;
        for (size_t i = 0; i < n; i++)
            y[i] += bj[i] * t;
    }
}

static size_t s_ask(void *st, const double **x)
{
    cma_t *s = st;
    if (s->finished)
        return 0;
    size_t n = s->n;
    /* immigrants first, with their known values */
    size_t k = s->inj_n < s->mu ? s->inj_n : s->mu;
    if (k) {
        memcpy(s->X, s->inj_x, k * n * sizeof *s->X);
        memcpy(s->F, s->inj_f, k * sizeof *s->F);
        memset(s->repaired, 1, k);
        s->inj_n -= k;
        memmove(s->inj_x, s->inj_x + k * n, s->inj_n * n * sizeof *s->inj_x);
        memmove(s->inj_f, s->inj_f + k, s->inj_n * sizeof *s->inj_f);
    }
    s->ninj = k;
    for (size_t r = k; r < s->lambda; r++) {
        double *xr = s->X + r * n, *yr = s->Y + r * n;
        s_sample_step(s, yr);
        bool out = false;
        for (size_t i = 0; i < n; i++) {
            double v = (s->m[i] + s->sigma * yr[i]) * s->s[i];
            if (!(v >= s->lo[i])) { /* also catches NaN */
                v = s->lo[i];
                out = true;
            } else if (v > s->hi[i]) {
                v = s->hi[i];
                out = true;
            }
            xr[i] = v;
        }
        s->repaired[r] = out;
    }
    *x = s->X + k * n;
    return s->lambda - k;
}

/* ||C^-1/2 y|| with the current decomposition: ||D^-1 B^T y||. */
static double s_mahalanobis(const cma_t *s, const double *y)
{
    size_t n = s->n;
    double sum = 0;
    for (size_t j = 0; j < n; j++) {
        const double *bj = s->B + j * n;
        double t = 0;
        for (size_t i = 0; i < n; i++)
            t += bj[i] * y[i];
        t /= s->D[j];
        sum += t * t;
    }
    return sqrt(sum);
}

/* Decomposes C into B D^2 B^T. Returns false when LAPACK fails or C is not
   positive definite (the run must then restart). dsyev (QR iteration)
   first: with Debian's reference LAPACK it is 1.5 to 5 times faster than
   dsyevr at the sizes CMA-ES meets (n <= a few hundred, eigenvalues often
   clustered, where MRRR works hardest); dsyevr is the fallback. */
static bool s_eigen(cma_t *s)
{
    size_t n = s->n;
    lapack_int nn = (lapack_int) n, found = 0;
    memcpy(s->B, s->C, n * n * sizeof *s->B);
    lapack_int info = LAPACKE_dsyev(LAPACK_COL_MAJOR, 'V', 'U', nn, s->B, nn, s->eig);
    if (info != 0) {
        memcpy(s->work, s->C, n * n * sizeof *s->work);
        info = LAPACKE_dsyevr(LAPACK_COL_MAJOR, 'V', 'A', 'U', nn, s->work, nn, 0, 0, 0, 0, 0,
                              &found, s->eig, s->B, nn, s->isuppz);
        if (info != 0 || found != nn)
            return false;
    }
    if (!(s->eig[0] > 0) || !isfinite(s->eig[n - 1]))
        return false;
    for (size_t j = 0; j < n; j++)
        s->D[j] = sqrt(s->eig[j]);
    return true;
}

/* Checks the stopping tolerances after an update; true means stop. */
static bool s_should_stop(cma_t *s, bool eigen_ok)
{
    size_t n = s->n;
    if (!eigen_ok || !isfinite(s->sigma))
        return true;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(s->m[i]))
            return true;
    /* ConditionCov */
    double dmax = s->D[0], dmin = s->D[0];
    for (size_t j = 1; j < n; j++) {
        dmax = fmax(dmax, s->D[j]);
        dmin = fmin(dmin, s->D[j]);
    }
    if (dmax * dmax > 1e14 * dmin * dmin)
        return true;
    /* TolUpSigma: divergence */
    if (s->sigma * dmax > 1e20 * s->sigma0)
        return true;
    /* TolX */
    bool small = true;
    for (size_t i = 0; i < n && small; i++)
        small = s->sigma * fmax(fabs(s->pc[i]), sqrt(s->C[i + i * n])) < s->tol_x * s->sigma0;
    if (small)
        return true;
    /* TolFun */
    if (s->hist_n >= s->histlen) {
        double lo = s->F[s->order[0]], hi = s->F[s->order[s->lambda - 1]];
        for (size_t h = 0; h < s->histlen; h++) {
            lo = fmin(lo, s->hist[h]);
            hi = fmax(hi, s->hist[h]);
        }
        if (hi - lo <= s->tol_fun * fabs(lo))
            return true;
    }
    /* NoEffectAxis */
    size_t a = (size_t) (s->gen % n);
    bool noeffect = true;
    for (size_t i = 0; i < n && noeffect; i++)
        noeffect = s->m[i] == s->m[i] + 0.1 * s->sigma * s->D[a] * s->B[i + a * n];
    if (noeffect)
        return true;
    /* NoEffectCoord */
    for (size_t i = 0; i < n; i++)
        if (s->m[i] == s->m[i] + 0.2 * s->sigma * sqrt(s->C[i + i * n]))
            return true;
    return false;
}

/* IPOP: the island's next level and a fresh start, or the end; BIPOP: a
   small run instead when the small regime has spent less. */
static void s_restart(cma_t *s)
{
    if (s->small)
        s->spent_small += s->evals;
    else
        s->spent_large += s->evals;
    if (s->bipop && s->max_restarts && s->spent_small < s->spent_large) {
        double u = pd_rng_uniform(s->rng);
        double ratio = 0.5 * (double) s->lambda_large / (double) s->lambda0;
        size_t ls = (size_t) floor((double) s->lambda0 * pow(ratio > 1 ? ratio : 1, u * u));
        if (ls < s->lambda0)
            ls = s->lambda0;
        if (s_set_lambda(s, ls)) {
            s->restarts++;
            s->small = true;
            s_reset(s);
            s->sigma = s->sigma0 * pow(10.0, -2.0 * u);
            return;
        }
    }
    uint32_t next_level = s->level + s->islands;
    size_t next = s_level_lambda(s, next_level);
    /* on islands, a level that would not get CMA_SHARE_GENERATIONS within
       the island's share of the budget is left to the others */
    bool fits = !s->share || s->spent_large + s->spent_small +
                                     CMA_SHARE_GENERATIONS * (uint64_t) next <= s->share;
    if (!fits || s->large >= s->max_restarts || next <= s->lambda_large || !s_set_lambda(s, next)) {
        s->finished = true;
        return;
    }
    s->level = next_level;
    s->lambda_large = next;
    s->large++;
    s->restarts++;
    s->small = false;
    s_reset(s);
}

static void s_tell(void *st, const double *f)
{
    cma_t *s = st;
    size_t n = s->n, lambda = s->lambda, mu = s->mu;
    memcpy(s->F + s->ninj, f, (lambda - s->ninj) * sizeof *f);
    s->told = true;
    /* steps of repaired and injected points: recomputed, then clipped */
    double cy = sqrt((double) n) + 2.0 * n / (n + 2.0);
    for (size_t r = 0; r < lambda; r++) {
        if (!s->repaired[r])
            continue;
        double *yr = s->Y + r * n;
        const double *xr = s->X + r * n;
        for (size_t i = 0; i < n; i++)
            yr[i] = (xr[i] / s->s[i] - s->m[i]) / s->sigma;
        double len = s_mahalanobis(s, yr);
        if (len > cy)
            for (size_t i = 0; i < n; i++)
                yr[i] *= cy / len;
    }
    pd_argsort(s->F, lambda, s->order, s->tmp);
    const double *best = s->X + s->order[0] * n;
    if (!s->have_best || s->F[s->order[0]] < s->bf) {
        s->bf = s->F[s->order[0]];
        memcpy(s->bx, best, n * sizeof *s->bx);
        s->have_best = true;
    }
    /* mean */
    memset(s->ymean, 0, n * sizeof *s->ymean);
    for (size_t k = 0; k < mu; k++) {
        const double *yk = s->Y + s->order[k] * n;
        for (size_t i = 0; i < n; i++)
            s->ymean[i] += s->w[k] * yk[i];
    }
    for (size_t i = 0; i < n; i++)
        s->m[i] += s->sigma * s->ymean[i];
    /* step-size path: ps = (1 - cs) ps + sqrt(cs (2 - cs) mueff) C^-1/2 ymean */
    for (size_t j = 0; j < n; j++) {
        const double *bj = s->B + j * n;
        double t = 0;
        for (size_t i = 0; i < n; i++)
            t += bj[i] * s->ymean[i];
        s->t1[j] = t / s->D[j];
    }
    memset(s->t2, 0, n * sizeof *s->t2);
    for (size_t j = 0; j < n; j++) {
        const double *bj = s->B + j * n;
        for (size_t i = 0; i < n; i++)
            s->t2[i] += bj[i] * s->t1[j];
    }
    double ks = sqrt(s->cs * (2 - s->cs) * s->mueff), psn = 0;
    for (size_t i = 0; i < n; i++) {
        s->ps[i] = (1 - s->cs) * s->ps[i] + ks * s->t2[i];
        psn += s->ps[i] * s->ps[i];
    }
    psn = sqrt(psn);
    s->gen++;
    s->evals += lambda;
    double chin = sqrt((double) n) * (1 - 1 / (4.0 * n) + 1 / (21.0 * n * n));
    bool hsig = psn / sqrt(1 - pow(1 - s->cs, 2.0 * (double) s->gen)) / chin <
                1.4 + 2 / (n + 1.0);
    double kc = hsig ? sqrt(s->cc * (2 - s->cc) * s->mueff) : 0;
    for (size_t i = 0; i < n; i++)
        s->pc[i] = (1 - s->cc) * s->pc[i] + kc * s->ymean[i];
    /* covariance, upper triangle: rank one and rank mu */
    double keep = 1 - s->c1 - s->cmu + (hsig ? 0 : s->c1 * s->cc * (2 - s->cc));
    for (size_t j = 0; j < n; j++) {
        double *cj = s->C + j * n;
        for (size_t i = 0; i <= j; i++)
            cj[i] = keep * cj[i] + s->c1 * s->pc[i] * s->pc[j];
    }
    for (size_t k = 0; k < mu; k++) {
        const double *yk = s->Y + s->order[k] * n;
        double wk = s->cmu * s->w[k];
        for (size_t j = 0; j < n; j++) {
            double *cj = s->C + j * n;
            double a = wk * yk[j];
            for (size_t i = 0; i <= j; i++)
                cj[i] += a * yk[i];
        }
    }
    /* step size: cumulative step-size adaptation, and flat fitness */
    s->sigma *= exp(fmin(1.0, (s->cs / s->damps) * (psn / chin - 1)));
    size_t flat = (size_t) ceil(0.1 + lambda / 4.0);
    if (flat >= lambda)
        flat = lambda - 1;
    if (s->F[s->order[0]] == s->F[s->order[flat]])
        s->sigma *= exp(0.2 + s->cs / s->damps);
    /* lazy decomposition */
    bool eigen_ok = true;
    if ((double) (s->evals - s->eigen_evals) > 0.5 * lambda / (s->c1 + s->cmu) / n) {
        s->eigen_evals = s->evals;
        eigen_ok = s_eigen(s);
    }
    s->hist[s->hist_pos] = s->F[s->order[0]];
    s->hist_pos = (s->hist_pos + 1) % s->histlen;
    if (s->hist_n < s->histlen)
        s->hist_n++;
    if (s_should_stop(s, eigen_ok))
        s_restart(s);
}

static size_t s_export(void *st, size_t k, double *x, double *f)
{
    cma_t *s = st;
    if (!s->have_best)
        return 0;
    size_t n = s->n, out = 0;
    memcpy(x, s->bx, n * sizeof *x);
    f[out++] = s->bf;
    /* then the last generation, best first, if it is still this lambda's */
    if (!s->told || s->gen == 0)
        return out;
    for (size_t r = 0; r < s->lambda && out < k; r++) {
        const double *xr = s->X + s->order[r] * n;
        double fr = s->F[s->order[r]];
        if (fr == f[out - 1] && memcmp(xr, x + (out - 1) * n, n * sizeof *xr) == 0)
            continue;
        if (fr == s->bf && memcmp(xr, s->bx, n * sizeof *xr) == 0)
            continue;
        memcpy(x + out * n, xr, n * sizeof *xr);
        f[out++] = fr;
    }
    return out;
}

static size_t s_import(void *st, size_t k, const double *x, const double *f)
{
    cma_t *s = st;
    size_t n = s->n, taken = 0;
    if (s->inj_cap < s->mu) {
        double *nx = realloc(s->inj_x, s->mu * n * sizeof *nx);
        if (nx)
            s->inj_x = nx;
        double *nf = realloc(s->inj_f, s->mu * sizeof *nf);
        if (nf)
            s->inj_f = nf;
        if (!nx || !nf)
            return 0;
        s->inj_cap = s->mu;
    }
    for (size_t m = 0; m < k && s->inj_n < s->mu; m++) {
        const double *xm = x + m * n;
        if (s->have_best && f[m] == s->bf && memcmp(xm, s->bx, n * sizeof *xm) == 0)
            continue; /* our own best coming back */
        memcpy(s->inj_x + s->inj_n * n, xm, n * sizeof *xm);
        s->inj_f[s->inj_n++] = f[m];
        if (!s->have_best || f[m] < s->bf) {
            s->bf = f[m];
            memcpy(s->bx, xm, n * sizeof *xm);
            s->have_best = true;
        }
        taken++;
    }
    return taken;
}

static uint64_t s_restarts(void *st)
{
    return ((cma_t *) st)->restarts;
}

const pd_algo_ops_t pd_cmaes_ops = {
    .name = "cmaes",
    .create = s_create,
    .destroy = s_destroy,
    .ask = s_ask,
    .tell = s_tell,
    .export_best = s_export,
    .import = s_import,
    .restarts = s_restarts,
};
