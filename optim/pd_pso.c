/*  pd_pso: particle swarm optimisation after SPSO-2011 (M. Clerc, "Standard
    Particle Swarm Optimisation", 2012), in the ask/tell form.

    Each particle has a position x, a velocity v and the best position p it
    has evaluated (its memory). Informants follow SPSO's adaptive random
    topology: each particle informs itself and K others drawn at random,
    redrawn after any iteration that did not improve the swarm's best; l is
    the best memory among a particle's informants. Defaults are SPSO-2011's:
    inertia w = 1/(2 ln 2), acceleration c = 1/2 + ln 2, swarm of 40.

    Two velocity rules (pd_pso_variant_t); the per-coordinate one is the
    default, as it wins or ties pagmo's pso on all 24 rows of bench_optim
    (sphere, Rosenbrock, Rastrigin, Ackley in 10 and 30 dimensions, at the
    centre and at two shifted optima) where the hypersphere loses 10;
    its lead on Rastrigin 30 holds only with the optimum at the centre:
      - PD_PSO_SPSO2011: G = x + c (p + l - 2x) / 3 (or x + c (p - x) / 2 when
        the particle is its own best informant); x' drawn in the hypersphere
        of centre G through x (uniform direction, radius uniform in [0, |G -
        x|], as in Clerc's code); v = w v + x' - x. Rotation invariant.
      - PD_PSO_COMPONENT: v_d = w v_d + c1 r1 (p_d - x_d) + c2 r2 (l_d - x_d), with
        fresh r1, r2 per coordinate (SPSO-2007's rule with SPSO-2011's
        constants); the social term is left out when l is the particle's own
        memory, as SPSO-2007 does. Strong on separable problems.

    Stagnant particles: a particle whose memory has not improved for
    STALL_ITERATIONS iterations, other than the holder of the swarm's best,
    is thrown back into the box (uniform position, zero velocity, memory
    kept): Rastrigin 10-D's median went from 3.5 to 2.0 (pagmo 3.0).

    Velocity clamping: |v_d| <= max_velocity x (upper_d - lower_d).
    Bound handling ("random back"): a coordinate that would leave the
    bounds lands uniformly at random between where it was and the bound it
    crossed, and its velocity becomes the step it took, so every point
    asked is inside the bounds. SPSO-2011's confinement (set on the bound,
    velocity reversed and halved) piled particles and their memories on the
    bounds, each such coordinate at a fixed point however the function
    looks there: with Rastrigin's optimum moved near the upper bounds
    (pd_optim_builtin's "rastrigin@3", 30-D) the median of 5 seeds was 50.7
    against 29.8 at the centre; random back gives 31.8 there and the same
    medians within the seeds' spread elsewhere (docs/performance.md, "Centre
    bias").

    Migration: an immigrant replaces the worst memory p of the swarm when
    it is better (and not already there); positions and velocities are
    kept, so the swarm is steered, never restarted. Export: the best
    memories.
*/
#include "pd_algo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t d;              /* parameters */
    size_t n;              /* particles */
    const double *lo, *hi; /* bounds (borrowed from the optimiser) */
    pd_rng_t *rng;         /* the optimiser's stream */
    pd_pso_variant_t variant; /* velocity rule */
    double w, c1, c2;      /* inertia and accelerations */
    uint32_t k;            /* informants per particle; 0 = global best */
    uint32_t *age;         /* iterations since each memory last improved (n) */
    double *vmax;          /* velocity clamp per coordinate (d) */
    double *x;             /* positions (n x d): what ask returns */
    double *v;             /* velocities (n x d) */
    double *p;             /* memories: best position of each particle (n x d) */
    double *pf;            /* their values (n); +INFINITY before the first tell */
    uint32_t *links;       /* links[i*k + j]: the j-th particle i informs (n x k) */
    size_t *lbest;         /* best informant of each particle (n) */
    size_t *order, *tmp;   /* scratch for sorting (n each) */
    double *g, *h;         /* scratch: two points (d each) */
    double best;           /* best memory value after the last tell or import */
    bool improved;         /* the last iteration (or an import) improved best */
    bool started;          /* the first positions were told */
} pso_t;

static void s_destroy(void *st)
{
    pso_t *s = st;
    if (!s)
        return;
    free(s->vmax);
    free(s->x);
    free(s->v);
    free(s->p);
    free(s->pf);
    free(s->links);
    free(s->age);
    free(s->lbest);
    free(s->order);
    free(s->tmp);
    free(s->g);
    free(s->h);
    free(s);
}

static void s_draw_links(pso_t *s)
{
    for (size_t i = 0; i < s->n * s->k; i++)
        s->links[i] = (uint32_t) pd_rng_below(s->rng, s->n);
}

static void *s_create(const pd_algo_env_t *env)
{
    pso_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    const pd_pso_params_t *pp = &env->opts->pso;
    size_t d = env->dim, n = env->popsize;
    s->d = d;
    s->n = n;
    s->lo = env->lo;
    s->hi = env->hi;
    s->rng = env->rng;
    s->variant = pp->variant;
    s->w = pp->inertia;
    s->c1 = pp->cognitive;
    s->c2 = pp->social;
    s->k = pp->informants < n ? pp->informants : (uint32_t) n;
    s->vmax = malloc(d * sizeof *s->vmax);
    s->x = malloc(n * d * sizeof *s->x);
    s->v = malloc(n * d * sizeof *s->v);
    s->p = malloc(n * d * sizeof *s->p);
    s->pf = malloc(n * sizeof *s->pf);
    s->links = malloc((s->k ? n * s->k : 1) * sizeof *s->links);
    s->age = calloc(n, sizeof *s->age);
    s->lbest = malloc(n * sizeof *s->lbest);
    s->order = malloc(n * sizeof *s->order);
    s->tmp = malloc(n * sizeof *s->tmp);
    s->g = malloc(d * sizeof *s->g);
    s->h = malloc(d * sizeof *s->h);
    if (!s->vmax || !s->x || !s->v || !s->p || !s->pf || !s->links || !s->age || !s->lbest || !s->order ||
        !s->tmp || !s->g || !s->h) {
        s_destroy(s);
        return NULL;
    }
    for (size_t j = 0; j < d; j++)
        s->vmax[j] = pp->max_velocity * (env->hi[j] - env->lo[j]);
    /* SPSO-2011 initialisation: x uniform in the initial range, v uniform
       in [ilo - x, ihi - x] (then clamped). */
    for (size_t i = 0; i < n; i++) {
        double *x = s->x + i * d, *v = s->v + i * d;
        for (size_t j = 0; j < d; j++) {
            x[j] = pd_rng_range(s->rng, env->ilo[j], env->ihi[j]);
            v[j] = pd_rng_range(s->rng, env->ilo[j] - x[j], env->ihi[j] - x[j]);
            v[j] = pd_clamp(v[j], -s->vmax[j], s->vmax[j]);
        }
        s->pf[i] = INFINITY;
    }
    s->best = INFINITY;
    s->improved = true;
    if (s->k)
        s_draw_links(s);
    return s;
}

/* lbest[i]: the best memory among particle i and those that inform it. */
static void s_best_informants(pso_t *s)
{
    size_t n = s->n;
    if (s->k == 0) {
        size_t b = 0;
        for (size_t i = 1; i < n; i++)
            if (s->pf[i] < s->pf[b])
                b = i;
        for (size_t i = 0; i < n; i++)
            s->lbest[i] = b;
        return;
    }
    for (size_t i = 0; i < n; i++)
        s->lbest[i] = i;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < s->k; j++) {
            size_t t = s->links[i * s->k + j];
            if (s->pf[i] < s->pf[s->lbest[t]])
                s->lbest[t] = i;
        }
}

/* A random point of the ball of centre c and radius r, into out: a uniform
   direction and a radius uniform in [0, r], as Clerc's reference code for
   SPSO-2011 draws it (denser near c than a volume-uniform draw, which in
   high dimension lies almost on the surface and stalls the swarm). */
static void s_in_sphere(pso_t *s, const double *c, double r, double *out)
{
    size_t d = s->d;
    double norm = 0;
    for (size_t j = 0; j < d; j++) {
        out[j] = pd_rng_normal(s->rng);
        norm += out[j] * out[j];
    }
    norm = sqrt(norm);
    double rad = r * pd_rng_uniform(s->rng);
    double scale = norm > 0 ? rad / norm : 0;
    for (size_t j = 0; j < d; j++)
        out[j] = c[j] + out[j] * scale;
}

/* Iterations without improving its memory after which a particle (other
   than the holder of the swarm's best) is thrown back into the box. */
#define STALL_ITERATIONS 100

/* Particle i thrown back: x uniform in the bounds, v zero; its memory is
   kept, so it flies back towards it and its informants' through ground
   the swarm has left. */
static void s_throw_back(pso_t *s, size_t i)
{
    double *x = s->x + i * s->d, *v = s->v + i * s->d;
    for (size_t j = 0; j < s->d; j++) {
        x[j] = pd_rng_range(s->rng, s->lo[j], s->hi[j]);
        v[j] = 0;
    }
    s->age[i] = 0;
}

static void s_move(pso_t *s)
{
    size_t d = s->d;
    if (!s->improved && s->k)
        s_draw_links(s);
    s_best_informants(s);
    for (size_t i = 0; i < s->n; i++) {
        double *x = s->x + i * d, *v = s->v + i * d;
        const double *p = s->p + i * d;
        size_t li = s->lbest[i];
        const double *l = s->p + li * d;
        if (s->age[i] >= STALL_ITERATIONS && s->pf[i] > s->best) {
            s_throw_back(s, i);
            continue;
        }
        if (s->variant == PD_PSO_SPSO2011) {
            double *g = s->g, r2 = 0;
            for (size_t j = 0; j < d; j++) {
                g[j] = li != i ? x[j] + s->c1 * (p[j] + l[j] - 2 * x[j]) / 3
                               : x[j] + s->c1 * (p[j] - x[j]) / 2;
                r2 += (g[j] - x[j]) * (g[j] - x[j]);
            }
            double *xp = s->h;
            s_in_sphere(s, g, sqrt(r2), xp);
            for (size_t j = 0; j < d; j++)
                v[j] = s->w * v[j] + xp[j] - x[j];
        } else {
            for (size_t j = 0; j < d; j++) {
                double nv = s->w * v[j] + s->c1 * pd_rng_uniform(s->rng) * (p[j] - x[j]);
                if (li != i)
                    nv += s->c2 * pd_rng_uniform(s->rng) * (l[j] - x[j]);
                v[j] = nv;
            }
        }
        for (size_t j = 0; j < d; j++) {
            v[j] = pd_clamp(v[j], -s->vmax[j], s->vmax[j]);
            double nx = x[j] + v[j];
            if (nx < s->lo[j] || nx > s->hi[j]) {
                /* random back: uniformly between x and the bound crossed */
                double b = nx < s->lo[j] ? s->lo[j] : s->hi[j];
                nx = pd_clamp(x[j] + pd_rng_uniform(s->rng) * (b - x[j]), s->lo[j], s->hi[j]);
                v[j] = nx - x[j];
            }
            x[j] = nx;
        }
    }
}

static size_t s_ask(void *st, const double **x)
{
    pso_t *s = st;
    if (s->started)
        s_move(s);
    *x = s->x;
    return s->n;
}

static void s_tell(void *st, const double *f)
{
    pso_t *s = st;
    double before = s->best;
    for (size_t i = 0; i < s->n; i++) {
        s->age[i] = f[i] < s->pf[i] ? 0 : s->age[i] + 1;
        if (f[i] <= s->pf[i] || !s->started) { /* <=: SPSO's rule, drifts on plateaus */
            s->pf[i] = f[i];
            memcpy(s->p + i * s->d, s->x + i * s->d, s->d * sizeof *s->p);
            if (f[i] < s->best)
                s->best = f[i];
        }
    }
    s->improved = s->best < before;
    s->started = true;
}

static size_t s_export(void *st, size_t k, double *x, double *f)
{
    pso_t *s = st;
    if (!s->started)
        return 0;
    return pd_pool_export(s->p, s->pf, s->n, s->d, s->order, s->tmp, k, x, f);
}

static size_t s_import(void *st, size_t k, const double *x, const double *f)
{
    pso_t *s = st;
    if (!s->started)
        return 0;
    double best = s->best;
    size_t taken = pd_pool_import(s->p, s->pf, s->n, s->d, k, x, f, &best);
    if (best < s->best) {
        s->best = best;
        s->improved = true;
    }
    return taken;
}

const pd_algo_ops_t pd_pso_ops = {
    .name = "pso",
    .create = s_create,
    .destroy = s_destroy,
    .ask = s_ask,
    .tell = s_tell,
    .export_best = s_export,
    .import = s_import,
    .restarts = NULL,
};
