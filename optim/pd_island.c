/*  pd_island: the groups of one island, stepped together (see pd_island.h).

    ask() gathers every active group's points into one block with each
    point's group index, so that the fitness is called once per iteration
    whatever the number of groups (with one group the block is the
    optimiser's own buffer, no copy). tell() checks every value before any
    optimiser sees one: NaN fails the iteration with the point named, so an
    optimiser never has to reason about NaN. Maximisation is handled here,
    by negating values on their way in and out.
*/
#include "pd_island.h"

#include "pd_algo.h"
#include "pd_error.h"
#include "pd_nm.h"
#include "pd_optimizer.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pd_island {
    const pd_optim_opts_t *o;  /* the run's options (borrowed) */
    uint32_t index;            /* this island's number */
    struct pd_task *task;      /* the node's task for fitness blocks, or NULL */
    uint32_t groups;           /* optimisers */
    size_t dim;                /* parameters */
    double sense;              /* +1 minimise, -1 maximise: internal = sense x user */
    pd_optimizer_t **opt;      /* one per group */
    bool *active;              /* group still asks (its target not reached) */
    size_t *count;             /* points of each group in the current block */
    const double **part;       /* each group's asked points, for the copy */
    double *block;             /* the block's points when several groups ask */
    size_t block_cap;          /* rows allocated in block */
    uint32_t *group;           /* the block's group indices */
    size_t group_cap;          /* entries allocated in group */
    const double *bx;          /* the block handed out by the last ask */
    size_t bn;                 /* its rows */
    double *fint;              /* values in the minimisation sense (block rows) */
    size_t fint_cap;
    double *fuser;             /* values written by the fitness (pd_island_step) */
    size_t fuser_cap;
    double *mig;               /* scratch for imported values */
    size_t mig_cap;
    double *migx;              /* scratch for imported points */
    size_t migx_cap;
    bool pending;              /* an ask waits for its tell */
    uint64_t iterations;       /* steps done */
};

pd_island_t *pd_island_new(const pd_optim_opts_t *o, uint32_t index, int *err)
{
    pd_island_t *is = calloc(1, sizeof *is);
    if (!is)
        goto nomem;
    is->o = o;
    is->index = index;
    is->groups = o->groups ? o->groups : 1;
    is->dim = o->dim;
    is->sense = o->maximize ? -1.0 : 1.0;
    is->opt = calloc(is->groups, sizeof *is->opt);
    is->active = malloc(is->groups * sizeof *is->active);
    is->count = calloc(is->groups, sizeof *is->count);
    is->part = calloc(is->groups, sizeof *is->part);
    if (!is->opt || !is->active || !is->count || !is->part)
        goto nomem;
    for (uint32_t g = 0; g < is->groups; g++) {
        is->active[g] = true;
        is->opt[g] = pd_optimizer_new(o, index, g, err);
        if (!is->opt[g])
            goto fail;
    }
    return is;
nomem:
    if (err)
        *err = PD_ENOMEM;
fail:
    pd_island_destroy(&is);
    return NULL;
}

void pd_island_destroy(pd_island_t **isp)
{
    if (!isp || !*isp)
        return;
    pd_island_t *is = *isp;
    if (is->opt)
        for (uint32_t g = 0; g < is->groups; g++)
            pd_optimizer_destroy(&is->opt[g]);
    free(is->opt);
    free(is->active);
    free(is->count);
    free(is->part);
    free(is->block);
    free(is->group);
    free(is->fint);
    free(is->fuser);
    free(is->mig);
    free(is->migx);
    free(is);
    *isp = NULL;
}

/* Grows *p to hold n elements of size sz. */
static bool s_reserve(void **p, size_t *cap, size_t n, size_t sz)
{
    if (n <= *cap)
        return true;
    size_t want = *cap ? *cap : 64;
    while (want < n)
        want *= 2;
    void *q = realloc(*p, want * sz);
    if (!q)
        return false;
    *p = q;
    *cap = want;
    return true;
}

long pd_island_ask(pd_island_t *is, const double **x, const uint32_t **group)
{
    assert(is && x && group && !is->pending);
    size_t total = 0, parts = 0, last = 0;
    for (uint32_t g = 0; g < is->groups; g++) {
        is->count[g] = 0;
        if (!is->active[g])
            continue;
        is->count[g] = pd_optimizer_ask(is->opt[g], &is->part[g]);
        if (is->count[g]) {
            total += is->count[g];
            parts++;
            last = g;
        }
    }
    is->pending = true;
    is->bn = total;
    /* the fitness's group indices, and room for the values */
    if (!s_reserve((void **) &is->group, &is->group_cap, total, sizeof *is->group) ||
        !s_reserve((void **) &is->fint, &is->fint_cap, total, sizeof *is->fint) ||
        !s_reserve((void **) &is->fuser, &is->fuser_cap, total, sizeof *is->fuser))
        return PD_ENOMEM;
    size_t row = 0;
    for (uint32_t g = 0; g < is->groups; g++)
        for (size_t i = 0; i < is->count[g]; i++)
            is->group[row++] = g;
    if (parts <= 1) {
        is->bx = total ? is->part[last] : NULL;
    } else {
        if (!s_reserve((void **) &is->block, &is->block_cap, total * is->dim, sizeof *is->block))
            return PD_ENOMEM;
        double *dst = is->block;
        for (uint32_t g = 0; g < is->groups; g++) {
            memcpy(dst, is->part[g], is->count[g] * is->dim * sizeof *dst);
            dst += is->count[g] * is->dim;
        }
        is->bx = is->block;
    }
    *x = is->bx;
    *group = is->group;
    return (long) total;
}

/* Appends printf output to buf (len bytes, NUL-terminated), truncating. */
static void s_append(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_append(char *buf, size_t len, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used + 1 >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, len - used, fmt, ap);
    va_end(ap);
}

/* Writes "(name=v, ...)" of a point into buf: the first 16 coordinates. */
static void s_format_point(const pd_island_t *is, const double *x, char *buf, size_t len)
{
    buf[0] = 0;
    size_t shown = is->dim < 16 ? is->dim : 16;
    for (size_t j = 0; j < shown; j++) {
        s_append(buf, len, "%s", j ? ", " : "(");
        if (is->o->names && is->o->names[j])
            s_append(buf, len, "%s=", is->o->names[j]);
        s_append(buf, len, "%.17g", x[j]);
    }
    if (shown < is->dim)
        s_append(buf, len, ", ... %zu more", is->dim - shown);
    s_append(buf, len, ")");
}

int pd_island_tell(pd_island_t *is, const double *f, char *err, size_t errlen)
{
    assert(is && is->pending);
    for (size_t i = 0; i < is->bn; i++)
        if (isnan(f[i])) {
            char pt[512];
            s_format_point(is, is->bx + i * is->dim, pt, sizeof pt);
            snprintf(err, errlen,
                     "fitness returned NaN for point %zu of the block (island %u, group %u, "
                     "iteration %llu) at x = %s: make the fitness return a number for every "
                     "point within the bounds (+INFINITY marks an infeasible point when "
                     "minimising)",
                     i, is->index, is->group[i], (unsigned long long) is->iterations, pt);
            return PD_ETASK;
        }
    for (size_t i = 0; i < is->bn; i++)
        is->fint[i] = is->sense * f[i];
    size_t row = 0;
    for (uint32_t g = 0; g < is->groups; g++) {
        if (is->count[g]) {
            pd_optimizer_tell(is->opt[g], is->fint + row);
            row += is->count[g];
        }
    }
    is->pending = false;
    is->iterations++;
    return 0;
}

void pd_island_set_task(pd_island_t *is, struct pd_task *task) { is->task = task; }

int pd_island_evaluate(pd_island_t *is, pd_fitness_fn fn, void *user, const void *shared,
                       size_t shared_len, char *err, size_t errlen)
{
    assert(is && fn && is->pending);
    const double *x = is->bx;
    const uint32_t *group = is->group;
    size_t n = is->bn;
    if (n > 0) {
        char msg[512] = "";
        pd_fitness_block_t b = {
            .x = x,
            .n = n,
            .dim = is->dim,
            .group = group,
            .groups = is->groups,
            .island = is->index,
            .iteration = is->iterations,
            .shared = shared,
            .shared_len = shared_len,
            .user = user,
            .error = msg,
            .error_size = sizeof msg,
            .task = is->task,
        };
        int rc = fn(&b, is->fuser);
        if (rc != 0) {
            msg[sizeof msg - 1] = 0;
            snprintf(err, errlen, "fitness failed (returned %d) on island %u at iteration %llu: %s",
                     rc, is->index, (unsigned long long) is->iterations,
                     msg[0] ? msg : "it gave no reason (write one into block->error)");
            return PD_ETASK;
        }
    }
    return pd_island_tell(is, is->fuser, err, errlen);
}

int pd_island_step(pd_island_t *is, pd_fitness_fn fn, void *user, const void *shared,
                   size_t shared_len, char *err, size_t errlen)
{
    const double *x;
    const uint32_t *group;
    if (pd_island_ask(is, &x, &group) < 0) {
        snprintf(err, errlen, "out of memory building the island's block");
        return PD_ENOMEM;
    }
    return pd_island_evaluate(is, fn, user, shared, shared_len, err, errlen);
}

void pd_island_set_active(pd_island_t *is, uint32_t g, bool active)
{
    assert(g < is->groups);
    is->active[g] = active;
}

bool pd_island_group_idle(const pd_island_t *is, uint32_t g)
{
    assert(g < is->groups);
    return !is->active[g] || pd_optimizer_stopped(is->opt[g]);
}

size_t pd_island_export(pd_island_t *is, uint32_t g, size_t k, double *x, double *f)
{
    assert(g < is->groups && !is->pending);
    size_t n = pd_optimizer_export(is->opt[g], k, x, f);
    for (size_t i = 0; i < n; i++)
        f[i] *= is->sense;
    return n;
}

size_t pd_island_import(pd_island_t *is, uint32_t g, size_t m, const double *x, const double *f)
{
    assert(g < is->groups && !is->pending);
    if (!s_reserve((void **) &is->mig, &is->mig_cap, m, sizeof *is->mig) ||
        !s_reserve((void **) &is->migx, &is->migx_cap, m * is->dim, sizeof *is->migx))
        return 0;
    /* only migrants inside the bounds with a value: one from a node with
       other bounds, or a damaged message, must not become this island's best */
    size_t kept = 0;
    for (size_t i = 0; i < m; i++) {
        const double *xi = x + i * is->dim;
        bool inside = !isnan(f[i]);
        for (size_t j = 0; j < is->dim && inside; j++)
            inside = xi[j] >= is->o->lower[j] && xi[j] <= is->o->upper[j];
        if (!inside)
            continue;
        memcpy(is->migx + kept * is->dim, xi, is->dim * sizeof *xi);
        is->mig[kept++] = is->sense * f[i];
    }
    return pd_optimizer_import(is->opt[g], kept, is->migx, is->mig);
}

size_t pd_island_import_best(pd_island_t *is, uint32_t g, size_t nc, const double *x,
                             const double *f)
{
    if (nc == 0)
        return 0;
    size_t k = is->o->migration_count ? is->o->migration_count : 1, d = is->dim;
    size_t m = nc < k ? nc : k;
    double *key = malloc(nc * sizeof *key), *gx = malloc(m * d * sizeof *gx);
    double *gf = malloc(m * sizeof *gf);
    size_t *order = malloc(nc * sizeof *order), *tmp = malloc(nc * sizeof *tmp);
    size_t taken = 0;
    if (key && gx && gf && order && tmp) {
        for (size_t c = 0; c < nc; c++)
            key[c] = is->o->maximize ? -f[c] : f[c];
        pd_argsort(key, nc, order, tmp);
        for (size_t c = 0; c < m; c++) {
            memcpy(gx + c * d, x + order[c] * d, d * sizeof *gx);
            gf[c] = f[order[c]];
        }
        taken = pd_island_import(is, g, m, gx, gf);
    }
    free(key);
    free(gx);
    free(gf);
    free(order);
    free(tmp);
    return taken;
}

int pd_island_polish(pd_island_t *is, pd_fitness_fn fn, void *user, const void *shared,
                     size_t shared_len, uint64_t *evals, char *err, size_t errlen)
{
    /* an ask may be pending (the run stopped on its budget after asking):
       the polish touches only the best points, never the algorithms */
    assert(is);
    size_t d = is->dim;
    double *x = malloc(d * sizeof *x);
    if (!x)
        return PD_ENOMEM;
    pd_fitness_block_t tmpl = {
        .island = is->index,
        .iteration = is->iterations,
        .shared = shared,
        .shared_len = shared_len,
        .user = user,
        .task = is->task,
    };
    int rc = 0;
    for (uint32_t g = 0; g < is->groups && rc == 0; g++) {
        const double *bx;
        double f = pd_island_best(is, g, &bx);
        if (!bx)
            continue;
        memcpy(x, bx, d * sizeof *x);
        uint64_t n = 0;
        rc = pd_nm_polish(is->o, fn, &tmpl, g, is->o->polish, x, &f, &n, err, errlen);
        *evals += n;
        pd_optimizer_offer_best(is->opt[g], x, is->sense * f);
    }
    free(x);
    return rc;
}

double pd_island_best(const pd_island_t *is, uint32_t g, const double **x)
{
    assert(g < is->groups);
    return is->sense * pd_optimizer_best(is->opt[g], x);
}

uint64_t pd_island_iterations(const pd_island_t *is)
{
    return is->iterations;
}

uint64_t pd_island_evaluations(const pd_island_t *is)
{
    uint64_t n = 0;
    for (uint32_t g = 0; g < is->groups; g++)
        n += pd_optimizer_evaluations(is->opt[g]);
    return n;
}

uint64_t pd_island_restarts(const pd_island_t *is)
{
    uint64_t n = 0;
    for (uint32_t g = 0; g < is->groups; g++)
        n += pd_optimizer_restarts(is->opt[g]);
    return n;
}
