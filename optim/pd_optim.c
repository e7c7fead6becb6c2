/*  pd_optim: the in-process driver of the optimisers, and the options and
    results of the public pd_optim_* API (playdoh.h).

    pd_optim_run() creates one pd_island per island and steps them in turn
    in this process: each iteration asks every island for its block, checks
    the evaluation budget against the total, calls the fitness once per
    island, and every migration_interval iterations moves each island's best
    individuals to its out-neighbours (pd_topo). All exports of a migration
    are taken before any import, as on a cluster where islands push and then
    pop, so the in-process run and the distributed one follow the same
    rules. It records each island's best-so-far per group after every
    iteration. The options struct is the one a synchronous task of islands
    will take, so that one set of options drives both forms.
*/
#include "playdoh.h"
#include "pd_error_int.h"

#include "pd_algo.h"
#include "pd_island.h"
#include "pd_topo.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PD_OPTIM_MAX_ISLANDS 1024u
#define PD_OPTIM_MAX_GROUPS  1000000u
#define PD_OPTIM_MAX_DIM     1000000u
#define PD_OPTIM_MAX_CMA_DIM 5000u
#define PD_OPTIM_MAX_POP     10000000u
#define PD_OPTIM_MAX_BYTES   ((double) (4ull << 30)) /* estimated memory of one run */

static const char *const s_algo_names[] = {"pso", "ga", "cmaes", "de"};
static const char *const s_topo_names[] = {"none", "ring", "star", "full", "edges"};
static const char *const s_stop_names[] = {"none",      "iterations", "budget", "target",
                                           "converged", "cancelled",  "error"};

const char *pd_algo_name(pd_algo_t a)
{
    return (unsigned) a < 4 ? s_algo_names[a] : "unknown";
}

int pd_algo_parse(const char *name, pd_algo_t *a)
{
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, s_algo_names[i]) == 0) {
            *a = (pd_algo_t) i;
            return 0;
        }
    if (name && strcmp(name, "cma-es") == 0) {
        *a = PD_ALGO_CMAES;
        return 0;
    }
    return PD_EINVAL;
}

int pd_topology_parse(const char *name, pd_topology_t *t)
{
    for (int i = 0; name && i < 5; i++)
        if (strcmp(name, s_topo_names[i]) == 0) {
            *t = (pd_topology_t) i;
            return 0;
        }
    return PD_EINVAL;
}

const char *pd_optim_stop_name(pd_optim_stop_t s)
{
    return (unsigned) s < 7 ? s_stop_names[s] : "unknown";
}

/* PSO's default informants: 3 (SPSO's K) up to 15 parameters, then one per
   5 parameters up to 10: with 3, a swarm of 40 in 30-D spreads news too
   slowly and stalls on Rosenbrock's valley (4 of 10 runs at 68-76); 6 there
   matched pagmo's pso on every 30-D row of bench_optim while 3 kept the lead
   on Rastrigin 10-D that 6 lost (docs/performance.md, "PSO against pagmo"). */
static uint32_t pd_pso_default_informants(size_t dim)
{
    size_t k = dim / 5;
    return (uint32_t) (k < 3 ? 3 : k > 10 ? 10 : k);
}

void pd_optim_opts_init(pd_optim_opts_t *o, pd_algo_t algo, size_t dim)
{
    assert(o);
    memset(o, 0, sizeof *o);
    o->algo = algo;
    o->dim = dim;
    o->target = NAN;
    o->islands = 1;
    o->topology = PD_TOPO_RING;
    o->migration_interval = 10;
    o->migration_count = 1;
    o->groups = 1;
    o->pso = (pd_pso_params_t){
        .variant = PD_PSO_COMPONENT,
        .inertia = 1.0 / (2.0 * log(2.0)),
        .cognitive = 0.5 + log(2.0),
        .social = 0.5 + log(2.0),
        .max_velocity = 0.5,
        .informants = pd_pso_default_informants(dim),
    };
    o->ga = (pd_ga_params_t){
        .crossover_prob = 0.9,
        .eta_c = 30,
        .mutation_prob = 0,
        .eta_m = 20,
        .tournament = 3,
        .elites = 4,
    };
    o->cmaes = (pd_cmaes_params_t){
        .sigma0 = 0.3,
        .restarts = 9,
        .popsize_factor = 2,
        .tol_fun = 1e-12,
        .tol_x = 1e-16,
    };
    o->de = (pd_de_params_t){
        .f_lower = 0.1,
        .f_upper = 0.9,
        .tau_f = 0.1,
        .tau_cr = 0.1,
    };
}

/* True for a finite x in [lo, hi]. */
static bool s_in(double x, double lo, double hi)
{
    return isfinite(x) && x >= lo && x <= hi;
}

/* pd_optim_opts_check's bounds and initial range, parameter by parameter. */
static int s_check_bounds(const pd_optim_opts_t *o, char *err, size_t errlen)
{
    for (size_t j = 0; j < o->dim; j++) {
        const char *nm = o->names && o->names[j] ? o->names[j] : NULL;
        char what[96];
        if (nm)
            snprintf(what, sizeof what, "parameter %zu (%s)", j, nm);
        else
            snprintf(what, sizeof what, "parameter %zu", j);
        double lo = o->lower[j], hi = o->upper[j];
        if (!isfinite(lo) || !isfinite(hi) || !(lo < hi))
            return pd_why(err, errlen, PD_EINVAL,
                          "bounds: %s has lower %g and upper %g: both must be finite with "
                          "lower < upper",
                          what, lo, hi);
        if (o->init_lower) {
            double il = o->init_lower[j], ih = o->init_upper[j];
            if (!s_in(il, lo, hi) || !s_in(ih, lo, hi) || !(il < ih))
                return pd_why(err, errlen, PD_EINVAL,
                              "initial range: %s has [%g, %g]: it must lie within the bounds "
                              "[%g, %g] with init_lower < init_upper",
                              what, il, ih, lo, hi);
        }
    }
    return 0;
}

/* pd_optim_opts_check's part for the chosen algorithm's parameters (pop: the popsize). */
static int s_check_algo_params(const pd_optim_opts_t *o, size_t pop, char *err, size_t errlen)
{
    switch (o->algo) {
    case PD_ALGO_PSO: {
        const pd_pso_params_t *p = &o->pso;
        if ((unsigned) p->variant > PD_PSO_COMPONENT)
            return pd_why(err, errlen, PD_EINVAL,
                          "pso.variant: %d is not a variant", (int) p->variant);
        if (!s_in(p->inertia, 0, 1))
            return pd_why(err, errlen, PD_EINVAL,
                          "pso.inertia: %g; give 0 to 1 (default 1/(2 ln 2))",
                          p->inertia);
        if (!s_in(p->cognitive, 0, 10) || !s_in(p->social, 0, 10))
            return pd_why(err, errlen, PD_EINVAL,
                          "pso.cognitive %g, pso.social %g: give 0 to 10 (default 0.5 + ln 2)",
                          p->cognitive, p->social);
        if (!s_in(p->max_velocity, 1e-12, 10))
            return pd_why(err, errlen, PD_EINVAL,
                          "pso.max_velocity: %g; give a fraction of the bounds' width, above 0 "
                          "(default 0.5)",
                          p->max_velocity);
        break;
    }
    case PD_ALGO_GA: {
        const pd_ga_params_t *g = &o->ga;
        if (!s_in(g->crossover_prob, 0, 1) || !s_in(g->mutation_prob, 0, 1))
            return pd_why(err, errlen, PD_EINVAL,
                          "ga.crossover_prob %g, ga.mutation_prob %g: probabilities are 0 to 1",
                          g->crossover_prob, g->mutation_prob);
        if (!s_in(g->eta_c, 0, 1000) || !s_in(g->eta_m, 0, 1000))
            return pd_why(err, errlen, PD_EINVAL,
                          "ga.eta_c %g, ga.eta_m %g: distribution indices are 0 to 1000",
                          g->eta_c, g->eta_m);
        if (g->tournament < 1 || g->tournament > pop)
            return pd_why(err, errlen, PD_EINVAL,
                          "ga.tournament: %u; give 1 to popsize (%zu)", g->tournament,
                          pop);
        if (g->elites >= pop)
            return pd_why(err, errlen, PD_EINVAL,
                          "ga.elites: %u; give fewer than popsize (%zu)", g->elites,
                          pop);
        break;
    }
    case PD_ALGO_CMAES: {
        const pd_cmaes_params_t *c = &o->cmaes;
        if (!s_in(c->sigma0, 1e-12, 1e6))
            return pd_why(err, errlen, PD_EINVAL,
                          "cmaes.sigma0: %g; give a fraction of the initial range, above 0 "
                          "(default 0.3)",
                          c->sigma0);
        if (c->restarts && !s_in(c->popsize_factor, 1.01, 100))
            return pd_why(err, errlen, PD_EINVAL,
                          "cmaes.popsize_factor: %g; give 1.01 to 100 (default 2)",
                          c->popsize_factor);
        if (!s_in(c->tol_fun, 0, INFINITY) || !s_in(c->tol_x, 0, INFINITY))
            return pd_why(err, errlen, PD_EINVAL,
                          "cmaes.tol_fun %g, cmaes.tol_x %g: give values >= 0",
                          c->tol_fun, c->tol_x);
        break;
    }
    case PD_ALGO_DE: {
        const pd_de_params_t *d = &o->de;
        if (!s_in(d->f_lower, 0, 2) || !s_in(d->f_upper, 0, 2) || d->f_lower > d->f_upper)
            return pd_why(err, errlen, PD_EINVAL,
                          "de.f_lower %g, de.f_upper %g: give 0 <= f_lower <= f_upper <= 2 "
                          "(default 0.1 and 0.9)",
                          d->f_lower, d->f_upper);
        if (!s_in(d->tau_f, 0, 1) || !s_in(d->tau_cr, 0, 1))
            return pd_why(err, errlen, PD_EINVAL,
                          "de.tau_f %g, de.tau_cr %g: probabilities are 0 to 1 (default 0.1)",
                          d->tau_f, d->tau_cr);
        break;
    }
    }
    return 0;
}

int pd_optim_opts_check(const pd_optim_opts_t *o, char *err, size_t errlen)
{
    if (!o)
        return pd_why(err, errlen, PD_EINVAL,
                      "no options given: fill a pd_optim_opts_t with pd_optim_opts_init");
    if ((unsigned) o->algo > PD_ALGO_DE)
        return pd_why(err, errlen, PD_EINVAL,
                      "algo: %d is not an algorithm: use PD_ALGO_PSO, PD_ALGO_GA, "
                      "PD_ALGO_CMAES or PD_ALGO_DE",
                      (int) o->algo);
    if (o->dim < 1 || o->dim > PD_OPTIM_MAX_DIM)
        return pd_why(err, errlen, PD_EINVAL,
                      "dim: %zu parameters; give 1 to %u", o->dim, PD_OPTIM_MAX_DIM);
    if (o->algo == PD_ALGO_CMAES && o->dim > PD_OPTIM_MAX_CMA_DIM)
        return pd_why(err, errlen, PD_EINVAL,
                      "dim: CMA-ES keeps a dim x dim covariance and takes at most %u parameters "
                      "(%zu given): use PSO or GA",
                      PD_OPTIM_MAX_CMA_DIM, o->dim);
    if (!o->lower || !o->upper)
        return pd_why(err, errlen, PD_EINVAL, "bounds: set lower and upper (dim values each)");
    if (!o->init_lower != !o->init_upper)
        return pd_why(err, errlen, PD_EINVAL,
                      "initial range: set both init_lower and init_upper, or neither "
                      "(then the bounds are used)");
    int rc = s_check_bounds(o, err, errlen);
    if (rc)
        return rc;
    size_t pop = o->popsize ? o->popsize : pd_algo_default_popsize(o->algo, o->dim);
    size_t minpop = o->algo == PD_ALGO_CMAES || o->algo == PD_ALGO_DE ? 4 : 2;
    if (pop < minpop || pop > PD_OPTIM_MAX_POP)
        return pd_why(err, errlen, PD_EINVAL,
                      "popsize: %zu; %s needs %zu to %u", pop, pd_algo_name(o->algo),
                      minpop, PD_OPTIM_MAX_POP);
    if (o->islands < 1 || o->islands > PD_OPTIM_MAX_ISLANDS)
        return pd_why(err, errlen, PD_EINVAL,
                      "islands: %u; give 1 to %u", o->islands, PD_OPTIM_MAX_ISLANDS);
    uint32_t groups = o->groups ? o->groups : 1;
    if (groups > PD_OPTIM_MAX_GROUPS)
        return pd_why(err, errlen, PD_EINVAL,
                      "groups: %u; give 1 to %u", groups, PD_OPTIM_MAX_GROUPS);
    double per = (double) pop * (double) o->dim * 8.0 * 4.0;
    if (o->algo == PD_ALGO_CMAES)
        per += (double) o->dim * (double) o->dim * 8.0 * 3.0;
    if (per * groups * o->islands > PD_OPTIM_MAX_BYTES)
        return pd_why(err, errlen, PD_EINVAL,
                      "the run would take about %.1f GiB (islands %u x groups %u x popsize %zu x "
                      "dim %zu): reduce one of them",
                      per * groups * o->islands / (1 << 30), o->islands, groups, pop, o->dim);
    if (o->iterations == 0 && o->budget == 0)
        return pd_why(err, errlen, PD_EINVAL,
                      "no stopping rule: set iterations or budget (target alone may "
                      "never be reached)");
    if (o->budget && o->budget < (uint64_t) pop * groups * o->islands)
        return pd_why(err, errlen, PD_EINVAL,
                      "budget: %llu evaluations is less than one iteration (%llu = popsize %zu x "
                      "groups %u x islands %u): raise it",
                      (unsigned long long) o->budget,
                      (unsigned long long) pop * groups * o->islands, pop, groups, o->islands);
    if ((unsigned) o->topology > PD_TOPO_EDGES)
        return pd_why(err, errlen, PD_EINVAL, "topology: %d is not a topology", (int) o->topology);
    rc = pd_topo_check(o->topology, o->islands, o->edges, o->edge_count, err, errlen);
    if (rc)
        return rc;
    if (o->migration_interval && o->topology != PD_TOPO_NONE &&
        (o->migration_count < 1 || o->migration_count > pop))
        return pd_why(err, errlen, PD_EINVAL, "migration_count: %u; give 1 to popsize (%zu)",
                      o->migration_count, pop);
    if ((rc = s_check_algo_params(o, pop, err, errlen)) != 0)
        return rc;
    /* the history: islands x groups doubles per iteration, for as many
       iterations as the stopping rules allow with every group running */
    double per_iter = (double) pop - (o->algo == PD_ALGO_GA ? (double) o->ga.elites : 0);
    double iters = o->iterations ? (double) o->iterations : INFINITY;
    if (o->budget)
        iters = fmin(iters, 1 + (double) o->budget / (per_iter * groups * o->islands));
    double hist_bytes = iters * groups * o->islands * 8.0;
    if (hist_bytes > PD_OPTIM_MAX_BYTES)
        return pd_why(err, errlen, PD_EINVAL,
                      "the history of up to %.0f iterations x %u islands x %u groups would take "
                      "%.1f GiB: lower iterations or budget",
                      iters, o->islands, groups, hist_bytes / (1 << 30));
    return 0;
}


/* Run-time state of pd_optim_run. */
typedef struct {
    const pd_optim_opts_t *o; /* the run's options (the caller's) */
    uint32_t groups;        /* groups, at least 1 */
    pd_island_t **isl;      /* islands */
    pd_topo_t *topo;        /* migration graph */
    double *hist;           /* [t][island][group] while running */
    size_t hist_cap;        /* iterations allocated in hist */
    double *mx, *mf;        /* exports of every island: islands x count (x dim) */
    size_t *mn;             /* exports per island */
    double *cx, *cf;        /* candidates for one island: in-degree x count */
    double *best;           /* best per group over islands (progress) */
} run_t;

static void s_run_free(run_t *r)
{
    if (r->isl)
        for (uint32_t i = 0; i < r->o->islands; i++)
            pd_island_destroy(&r->isl[i]);
    free(r->isl);
    pd_topo_destroy(&r->topo);
    free(r->hist);
    free(r->mx);
    free(r->mf);
    free(r->mn);
    free(r->cx);
    free(r->cf);
    free(r->best);
}

/* One migration of every group along the topology. Returns immigrants taken. */
static uint64_t s_migrate(run_t *r)
{
    const pd_optim_opts_t *o = r->o;
    size_t d = o->dim, k = o->migration_count;
    uint64_t taken = 0;
    for (uint32_t g = 0; g < r->groups; g++) {
        for (uint32_t i = 0; i < o->islands; i++)
            r->mn[i] = pd_island_export(r->isl[i], g, k, r->mx + (size_t) i * k * d,
                                        r->mf + (size_t) i * k);
        for (uint32_t i = 0; i < o->islands; i++) {
            const uint32_t *from;
            size_t nin = pd_topo_in(r->topo, i, &from), nc = 0;
            for (size_t e = 0; e < nin; e++) {
                uint32_t s = from[e];
                memcpy(r->cx + nc * d, r->mx + (size_t) s * k * d, r->mn[s] * d * sizeof *r->cx);
                memcpy(r->cf + nc, r->mf + (size_t) s * k, r->mn[s] * sizeof *r->cf);
                nc += r->mn[s];
            }
            taken += pd_island_import_best(r->isl[i], g, nc, r->cx, r->cf);
        }
    }
    return taken;
}

static int s_nomem(pd_optim_result_t *res)
{
    res->code = PD_ENOMEM;
    free(res->error);
    res->error = strdup("out of memory");
    return PD_ENOMEM;
}

int pd_optim_run(const pd_optim_opts_t *o, pd_fitness_fn fn, void *user, pd_optim_result_t *res)
{
    assert(res);
    memset(res, 0, sizeof *res);
    char err[1024] = "";
    int rc = pd_optim_opts_check(o, err, sizeof err);
    if (rc == 0 && !fn) {
        snprintf(err, sizeof err, "no fitness function given");
        rc = PD_EINVAL;
    }
    if (rc) {
        res->code = rc;
        res->error = strdup(err);
        res->stop = PD_STOP_ERROR;
        return rc;
    }
    double t0 = pd_optim_now();
    run_t r = {.o = o, .groups = o->groups ? o->groups : 1};
    uint32_t ni = o->islands, ng = r.groups;
    size_t d = o->dim, k = o->migration_count ? o->migration_count : 1;
    res->dim = d;
    res->groups = ng;
    res->islands = ni;
    res->best_x = calloc((size_t) ng * d, sizeof *res->best_x);
    res->best_f = malloc(ng * sizeof *res->best_f);
    res->best_island = calloc(ng, sizeof *res->best_island);
    r.isl = calloc(ni, sizeof *r.isl);
    r.topo = pd_topo_new(o->topology, ni, o->edges, o->edge_count);
    r.mx = malloc((size_t) ni * k * d * sizeof *r.mx);
    r.mf = malloc((size_t) ni * k * sizeof *r.mf);
    r.mn = calloc(ni, sizeof *r.mn);
    r.cx = malloc((size_t) ni * k * d * sizeof *r.cx);
    r.cf = malloc((size_t) ni * k * sizeof *r.cf);
    r.best = malloc(ng * sizeof *r.best);
    if (!res->best_x || !res->best_f || !res->best_island || !r.isl || !r.topo || !r.mx || !r.mf ||
        !r.mn || !r.cx || !r.cf || !r.best) {
        s_run_free(&r);
        return s_nomem(res);
    }
    for (uint32_t i = 0; i < ni; i++) {
        int e = 0;
        r.isl[i] = pd_island_new(o, i, &e);
        if (!r.isl[i]) {
            s_run_free(&r);
            return s_nomem(res);
        }
    }
    bool migrate = o->migration_interval > 0 && o->topology != PD_TOPO_NONE && ni > 1;
    pd_optim_stop_t stop = PD_STOP_NONE;
    uint64_t it = 0, evals = 0;
    while (stop == PD_STOP_NONE) {
        if (o->iterations && it >= o->iterations) {
            stop = PD_STOP_ITERATIONS;
            break;
        }
        /* every island's block first: the budget is checked on the total */
        const double *x;
        const uint32_t *grp;
        uint64_t total = 0;
        for (uint32_t i = 0; i < ni; i++) {
            long n = pd_island_ask(r.isl[i], &x, &grp);
            if (n < 0) {
                s_run_free(&r);
                return s_nomem(res);
            }
            total += (uint64_t) n;
        }
        if (total == 0) { /* every group converged or reached its target */
            stop = PD_STOP_CONVERGED;
            break;
        }
        if (o->budget && evals + total > o->budget) {
            stop = PD_STOP_BUDGET;
            break;
        }
        for (uint32_t i = 0; i < ni && stop == PD_STOP_NONE; i++) {
            rc = pd_island_evaluate(r.isl[i], fn, user, NULL, 0, err, sizeof err);
            if (rc) {
                res->code = rc;
                res->error = strdup(err);
                stop = PD_STOP_ERROR;
            }
        }
        if (stop == PD_STOP_ERROR)
            break;
        evals += total;
        it++;
        /* history (before migration: a migrant shows in the next entry) and targets */
        if (it > r.hist_cap) {
            size_t cap = r.hist_cap ? r.hist_cap * 2 : 256;
            double *h = realloc(r.hist, cap * ni * ng * sizeof *h);
            if (!h) {
                s_run_free(&r);
                return s_nomem(res);
            }
            r.hist = h;
            r.hist_cap = cap;
        }
        double *row = r.hist + (it - 1) * ni * ng;
        for (uint32_t g = 0; g < ng; g++) {
            r.best[g] = o->maximize ? -INFINITY : INFINITY;
            for (uint32_t i = 0; i < ni; i++) {
                double b = pd_island_best(r.isl[i], g, NULL);
                row[(size_t) i * ng + g] = b;
                if (pd_optim_better(o, b, r.best[g]))
                    r.best[g] = b;
            }
        }
        if (migrate && it % o->migration_interval == 0) {
            res->immigrants += s_migrate(&r);
            for (uint32_t g = 0; g < ng; g++)
                for (uint32_t i = 0; i < ni; i++) {
                    double b = pd_island_best(r.isl[i], g, NULL);
                    if (pd_optim_better(o, b, r.best[g]))
                        r.best[g] = b;
                }
        }
        bool all_done = true;
        for (uint32_t g = 0; g < ng; g++) {
            if (pd_optim_reached(o, r.best[g]))
                for (uint32_t i = 0; i < ni; i++)
                    pd_island_set_active(r.isl[i], g, false);
            all_done = all_done && pd_optim_reached(o, r.best[g]);
        }
        if (all_done)
            stop = PD_STOP_TARGET;
        if (o->progress) {
            pd_optim_progress_t p = {
                .iteration = it,
                .evaluations = evals,
                .wall_s = pd_optim_now() - t0,
                .groups = ng,
                .best_f = r.best,
            };
            if (o->progress(&p, o->progress_user) != 0 && stop == PD_STOP_NONE)
                stop = PD_STOP_CANCELLED;
        }
    }
    /* the polish: after a run that ended by itself (not an error, not a
       cancel), each island polishes each group's best point, as the
       cluster's nodes do */
    if (o->polish && stop != PD_STOP_ERROR && stop != PD_STOP_CANCELLED)
        for (uint32_t i = 0; i < ni && res->code == 0; i++) {
            rc = pd_island_polish(r.isl[i], fn, user, NULL, 0, &res->polish_evaluations, err,
                                  sizeof err);
            if (rc == PD_ENOMEM) {
                s_run_free(&r);
                return s_nomem(res);
            }
            if (rc) {
                res->code = rc;
                res->error = strdup(err);
                stop = PD_STOP_ERROR;
            }
        }
    /* results */
    res->stop = stop;
    res->evaluations = evals + res->polish_evaluations;
    res->iterations = it;
    for (uint32_t g = 0; g < ng; g++) {
        res->best_f[g] = o->maximize ? -INFINITY : INFINITY;
        for (uint32_t i = 0; i < ni; i++) {
            const double *bx;
            double b = pd_island_best(r.isl[i], g, &bx);
            if (bx && (pd_optim_better(o, b, res->best_f[g]) || i == 0)) {
                res->best_f[g] = b;
                res->best_island[g] = i;
                memcpy(res->best_x + (size_t) g * d, bx, d * sizeof *bx);
            }
        }
    }
    for (uint32_t i = 0; i < ni; i++)
        res->restarts += pd_island_restarts(r.isl[i]);
    res->history_len = it;
    if (it) {
        res->history = malloc(it * ni * ng * sizeof *res->history);
        if (!res->history) {
            s_run_free(&r);
            return s_nomem(res);
        }
        for (uint64_t t = 0; t < it; t++)
            for (size_t c = 0; c < (size_t) ni * ng; c++)
                res->history[c * it + t] = r.hist[t * ni * ng + c];
    }
    s_run_free(&r);
    res->wall_s = pd_optim_now() - t0;
    return res->code;
}

void pd_optim_result_clear(pd_optim_result_t *r)
{
    if (!r)
        return;
    free(r->error);
    free(r->best_x);
    free(r->best_f);
    free(r->best_island);
    free(r->history);
    memset(r, 0, sizeof *r);
}

double pd_optim_history(const pd_optim_result_t *r, uint32_t island, uint32_t group, uint64_t t)
{
    assert(r && island < r->islands && group < r->groups && t < r->history_len);
    return r->history[((size_t) island * r->groups + group) * r->history_len + t];
}
