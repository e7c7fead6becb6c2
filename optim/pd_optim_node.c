/*  pd_optim_node: one island of a cluster optimisation, run as a node of a
    synchronous task (see pd_optim_node.h, docs/optimisation.md "On a
    cluster").

    Each iteration follows pd_optim_run's rules so that, with the same
    options, the cluster gives the in-process result bit for bit:

      1. every node asks its island for its block and sends the block's size
         to node 0 (tube "gather"); node 0 adds them up and decides, as
         pd_optim_run does before evaluating, whether the run stops (every
         group idle: converged; the total would pass the budget: budget) and
         tells every node (tube "decide");
      2. every node evaluates its block and sends node 0 its outcome (0 or
         the fitness's error) and its best value per group; node 0 decides:
         an error stops the run (the lowest island's sentence, as in-process
         where islands are evaluated in order), groups whose best over all
         islands reached the target stop asking, and when all have, the run
         stops; it tells every node, and reports progress;
      3. every migration_interval iterations each node exports each group's
         best, pushes them on its out-edges of tube "migrate", pops what its
         in-neighbours sent in their index order (so the order never depends
         on timing), keeps the best migration_count and imports them.

    So every node stops at the same iteration (a stop asked by the user,
    pd_node_stopping, is seen by node 0 and travels in its step-2 decision). The stop on `iterations`
    needs no exchange: every node counts the same. Step 1 is skipped when
    node 0 can tell without it that it would not stop the run (it says so
    in its step-2 decision, so all nodes agree): with PSO and GA an
    island's block never grows past its first one (popsize per active
    group) and is never empty while a group is active, so while the
    evaluations so far plus every island's largest block stay within the
    budget, neither the budget nor convergence can stop the next
    iteration. Each island's block size then travels in its step-2
    outcome, which is where node 0 counts the evaluations. This halves the
    exchanges of most iterations (CMA-ES, whose population grows at each
    IPOP restart and which converges by itself, always asks). The result is the
    island's part (pd_optim_task_result_encode); node 0 adds the run's
    decisions.
*/
#include "pd_optim_node.h"

#include "pd_algo.h"
#include "pd_codec.h"
#include "pd_error.h"
#include "pd_island.h"
#include "pd_optim_task.h"
#include "pd_optim_wire.h"
#include "pd_topo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_PROGRESS_EVERY_S 0.1 /* node 0 reports progress at most this often */

/* Header of a node's outcome after evaluating (step 2); then `groups`
   doubles (its best per group), then errlen bytes of sentence. */
typedef struct {
    int32_t rc;      /* 0 or the fitness's PD_E* code */
    uint32_t errlen; /* bytes of sentence after the values */
    uint64_t nb;     /* points the island evaluated */
} s_outcome_t;

/* Header of node 0's decision after evaluating; then nreached uint32_t
   group indices that reached the target. */
typedef struct {
    uint32_t stop;     /* pd_optim_stop_t, PD_STOP_NONE to go on */
    uint32_t nreached; /* groups that reached the target at this iteration */
    uint32_t ask_next; /* 1: the next iteration runs step 1 */
} s_decision_t;

/* One node's state. */
typedef struct {
    pd_task_t *t;             /* the node's task (borrowed) */
    const pd_node_env_t *env; /* the node process's services (borrowed) */
    const pd_optim_opts_t *o; /* the options (the spec's) */
    uint32_t me, n, groups;   /* this node, nodes, groups */
    size_t dim, k;            /* parameters; migrants per edge and group */
    pd_island_t *is;          /* this node's island */
    int nin, nout;            /* in- and out-degree on the migration tube */
    int *in;                  /* in-neighbours, sorted (nin) */
    double *best;             /* groups: this island's best (step 2) */
    double *gbest;            /* groups: best over islands (node 0) */
    double *theirs;           /* groups: another island's best, as received (node 0) */
    bool *reached;            /* groups: reached the target (node 0) */
    uint32_t *newly;          /* groups newly reached (node 0) */
    uint8_t *msg;             /* a message being built */
    size_t msg_cap;
    double *hist;             /* groups x hist_cap, filled iteration by iteration */
    size_t hist_cap;
    uint64_t it;              /* iterations done */
    uint64_t evals;           /* evaluations of all islands (node 0) */
    uint64_t round;           /* evaluations of all islands this iteration (node 0) */
    uint64_t maxblock;        /* the largest block an island evaluated (node 0) */
    bool ask;                 /* this iteration runs step 1 (every node; the first does) */
    uint64_t immigrants;      /* migrants this island took in */
    uint64_t polish_evals;    /* evaluations of this island's polish */
    double *mx, *mf;          /* exports (k x dim, k) */
    double *cx, *cf;          /* candidates from in-neighbours (nin x k) */
    pd_buf_t buf;             /* encodings */
    int code;                 /* node 0: the run's error code */
    char error[1024];         /* node 0: its sentence */
    double t0, last_progress; /* seconds: start, last progress report */
} s_node_t;


/* Makes s->msg hold at least len bytes. */
static int s_msg_reserve(s_node_t *s, size_t len)
{
    if (len <= s->msg_cap)
        return 0;
    uint8_t *m = realloc(s->msg, len);
    if (!m)
        return -1;
    s->msg = m;
    s->msg_cap = len;
    return 0;
}

/* Step 1: the block sizes to node 0, its decision back. Returns the stop
   decided (PD_STOP_NONE to go on), or -1 when a tube failed (the task API
   recorded why). */
static int s_round_ask(s_node_t *s, uint64_t mine)
{
    pd_task_t *t = s->t;
    if (s->me != 0) {
        uint32_t stop;
        const void *p;
        size_t len;
        if (pd_push_to(t, PD_OPTIM_TUBE_GATHER, 0, &mine, sizeof mine)
            || pd_pop_from(t, PD_OPTIM_TUBE_DECIDE, 0, &p, &len) < 0)
            return -1;
        if (len != sizeof stop)
            return pd_task_fail(t, "node 0 sent a malformed decision (%zu bytes)", len);
        memcpy(&stop, p, sizeof stop);
        return (int) stop;
    }
    uint64_t sum = mine;
    for (uint32_t i = 1; i < s->n; i++) {
        const void *p;
        size_t len;
        uint64_t v;
        if (pd_pop_from(t, PD_OPTIM_TUBE_GATHER, (int) i, &p, &len) < 0)
            return -1;
        if (len != sizeof v)
            return pd_task_fail(t, "node %u sent a malformed block size (%zu bytes)", i, len);
        memcpy(&v, p, sizeof v);
        sum += v;
    }
    uint32_t stop = PD_STOP_NONE;
    if (sum == 0) /* every group converged or reached its target */
        stop = PD_STOP_CONVERGED;
    else if (s->o->budget && s->evals + sum > s->o->budget)
        stop = PD_STOP_BUDGET;
    if (s->n > 1 && pd_push(t, PD_OPTIM_TUBE_DECIDE, &stop, sizeof stop))
        return -1;
    return (int) stop;
}

/* Node 0 takes one island's outcome (its index i, nb points) into the decision. */
static void s_take_outcome(s_node_t *s, uint32_t i, int32_t rc, uint64_t nb, const double *best,
                           const char *err, size_t errlen)
{
    s->round += nb;
    if (nb > s->maxblock)
        s->maxblock = nb;
    if (rc && !s->code) { /* the lowest failing island, as in-process */
        s->code = rc;
        snprintf(s->error, sizeof s->error, "%.*s", (int) errlen, err);
    }
    for (uint32_t g = 0; g < s->groups; g++)
        if (i == 0 || pd_optim_better(s->o, best[g], s->gbest[g]))
            s->gbest[g] = best[g];
}

/* Step 2: outcomes to node 0, its decision back; reached groups are
   deactivated by the caller. Returns the stop (PD_STOP_NONE to go on) with
   *nreached groups in s->newly, or -1 when a tube failed. */
static int s_round_outcome(s_node_t *s, int rc, uint64_t nb, const char *err, uint32_t *nreached)
{
    pd_task_t *t = s->t;
    size_t vals = (size_t) s->groups * sizeof(double);
    if (s->me != 0) {
        size_t errlen = rc ? strlen(err) : 0;
        s_outcome_t h = {.rc = rc, .errlen = (uint32_t) errlen, .nb = nb};
        if (s_msg_reserve(s, sizeof h + vals + errlen))
            return pd_task_fail(t, "out of memory for %u groups' values", s->groups);
        memcpy(s->msg, &h, sizeof h);
        memcpy(s->msg + sizeof h, s->best, vals);
        memcpy(s->msg + sizeof h + vals, err, errlen);
        const void *p;
        size_t len;
        if (pd_push_to(t, PD_OPTIM_TUBE_GATHER, 0, s->msg, sizeof h + vals + errlen)
            || pd_pop_from(t, PD_OPTIM_TUBE_DECIDE, 0, &p, &len) < 0)
            return -1;
        s_decision_t d;
        if (len < sizeof d)
            return pd_task_fail(t, "node 0 sent a malformed decision (%zu bytes)", len);
        memcpy(&d, p, sizeof d);
        if (d.nreached > s->groups || len != sizeof d + (size_t) d.nreached * sizeof(uint32_t))
            return pd_task_fail(t, "node 0 sent a malformed decision (%zu bytes)", len);
        memcpy(s->newly, (const uint8_t *) p + sizeof d, (size_t) d.nreached * sizeof(uint32_t));
        *nreached = d.nreached;
        s->ask = d.ask_next != 0;
        return (int) d.stop;
    }
    s->round = 0;
    s_take_outcome(s, 0, rc, nb, s->best, err, rc ? strlen(err) : 0);
    for (uint32_t i = 1; i < s->n; i++) {
        const void *p;
        size_t len;
        s_outcome_t h;
        if (pd_pop_from(t, PD_OPTIM_TUBE_GATHER, (int) i, &p, &len) < 0)
            return -1;
        if (len < sizeof h)
            return pd_task_fail(t, "node %u sent a malformed outcome (%zu bytes)", i, len);
        memcpy(&h, p, sizeof h);
        if (len != sizeof h + vals + h.errlen)
            return pd_task_fail(t, "node %u sent a malformed outcome (%zu bytes)", i, len);
        /* the values may be unaligned after the header: copy them */
        memcpy(s->theirs, (const uint8_t *) p + sizeof h, vals);
        s_take_outcome(s, i, h.rc, h.nb, s->theirs, (const char *) p + sizeof h + vals, h.errlen);
    }
    s_decision_t d = {.stop = s->code ? PD_STOP_ERROR : PD_STOP_NONE};
    /* Whether step 1 could stop the next iteration (see the top). */
    uint64_t after = s->evals + s->round, most = s->maxblock * s->n;
    d.ask_next = s->o->algo == PD_ALGO_CMAES ||
                 (s->o->budget && (after > s->o->budget || s->o->budget - after < most));
    s->ask = d.ask_next != 0;
    if (!s->code) {
        bool all = true;
        for (uint32_t g = 0; g < s->groups; g++) {
            bool r = pd_optim_reached(s->o, s->gbest[g]);
            if (r && !s->reached[g])
                s->newly[d.nreached++] = g;
            s->reached[g] = r || s->reached[g];
            all = all && r;
        }
        if (all)
            d.stop = PD_STOP_TARGET;
    }
    /* A stop asked by the user (pd_optim_stop): every island ends after this
       iteration, with its best point, as pd_optim_run when its progress
       callback says stop. */
    if (d.stop == PD_STOP_NONE && pd_node_stopping(t))
        d.stop = PD_STOP_CANCELLED;
    size_t len = sizeof d + (size_t) d.nreached * sizeof(uint32_t);
    if (s_msg_reserve(s, len))
        return pd_task_fail(t, "out of memory for %u groups' decision", s->groups);
    memcpy(s->msg, &d, sizeof d);
    memcpy(s->msg + sizeof d, s->newly, (size_t) d.nreached * sizeof(uint32_t));
    if (s->n > 1 && pd_push(t, PD_OPTIM_TUBE_DECIDE, s->msg, len))
        return -1;
    *nreached = d.nreached;
    return (int) d.stop;
}

/* Step 3: one migration of every group. Returns 0 or -1. */
static int s_migrate(s_node_t *s)
{
    pd_task_t *t = s->t;
    size_t d = s->dim, k = s->k;
    char err[256];
    for (uint32_t g = 0; g < s->groups; g++) {
        size_t mn = pd_island_export(s->is, g, k, s->mx, s->mf);
        pd_buf_reset(&s->buf);
        if (pd_migrants_encode(g, mn, d, s->mx, s->mf, &s->buf))
            return pd_task_fail(t, "out of memory for migrants");
        if (s->nout > 0 && pd_push(t, PD_OPTIM_TUBE_MIGRATE, s->buf.data, s->buf.len))
            return -1;
        size_t nc = 0;
        for (int e = 0; e < s->nin; e++) {
            const void *p;
            size_t len;
            uint32_t gg;
            if (pd_pop_from(t, PD_OPTIM_TUBE_MIGRATE, s->in[e], &p, &len) < 0)
                return -1;
            long m = pd_migrants_decode(p, len, d, s->groups, k, &gg, s->cx + nc * d, s->cf + nc,
                                        err, sizeof err);
            if (m < 0 || gg != g)
                return pd_task_fail(t, "migrants from node %d: %s", s->in[e],
                                    m < 0 ? err : "for another group");
            nc += (size_t) m;
        }
        s->immigrants += pd_island_import_best(s->is, g, nc, s->cx, s->cf);
    }
    return 0;
}

/* Appends this island's bests (s->best) as the history of iteration s->it
   (1-based, already counted). Returns 0 or -1 (out of memory). */
static int s_record(s_node_t *s)
{
    if (s->it > s->hist_cap) {
        size_t cap = s->hist_cap ? s->hist_cap * 2 : 256;
        double *h = realloc(s->hist, cap * s->groups * sizeof *h);
        if (!h)
            return -1;
        s->hist = h;
        s->hist_cap = cap;
    }
    for (uint32_t g = 0; g < s->groups; g++)
        s->hist[(s->it - 1) * s->groups + g] = s->best[g];
    return 0;
}

/* Node 0: reports progress now and then. */
static void s_progress(s_node_t *s)
{
    double now = pd_optim_now();
    if (!s->env->progress || (s->it > 1 && now - s->last_progress < S_PROGRESS_EVERY_S))
        return;
    s->last_progress = now;
    pd_buf_reset(&s->buf);
    if (pd_optim_task_progress_encode(s->it, s->evals, now - s->t0, s->groups, s->gbest, &s->buf)
        == 0)
        s->env->progress(s->env->ctx, s->buf.data, s->buf.len);
}

/* Writes the island's part of the result (node 0: and the run's). */
static int s_result(s_node_t *s, pd_optim_stop_t stop)
{
    size_t d = s->dim;
    uint32_t ng = s->groups;
    double *bx = calloc((size_t) ng * d, sizeof *bx);
    uint8_t *has = calloc(ng, 1);
    double *hist = malloc((s->it ? s->it : 1) * ng * sizeof *hist);
    if (!bx || !has || !hist) {
        free(bx);
        free(has);
        free(hist);
        return pd_task_fail(s->t, "out of memory for the island's result");
    }
    for (uint32_t g = 0; g < ng; g++) {
        const double *x;
        s->best[g] = pd_island_best(s->is, g, &x);
        if (x) {
            has[g] = 1;
            memcpy(bx + (size_t) g * d, x, d * sizeof *x);
        }
        for (uint64_t t = 0; t < s->it; t++) /* group-major, as pd_optim_result_t */
            hist[g * s->it + t] = s->hist[t * ng + g];
    }
    pd_optim_node_result_t r = {
        .island = s->me, .dim = d, .groups = ng, .maximize = s->o->maximize,
        .iterations = s->it, .evaluations = pd_island_evaluations(s->is),
        .immigrants = s->immigrants, .restarts = pd_island_restarts(s->is),
        .polish_evals = s->polish_evals,
        .best_f = s->best, .best_x = bx, .has_best = has, .history = hist,
        .decider = s->me == 0, .stop = stop, .total = s->evals, .wall_s = pd_optim_now() - s->t0, .code = s->code,
        .error = s->code ? s->error : NULL,
    };
    pd_buf_reset(&s->buf);
    int rc = pd_optim_task_result_encode(&r, &s->buf);
    free(bx);
    free(has);
    free(hist);
    if (rc)
        return pd_task_fail(s->t, "out of memory for the island's result");
    return pd_out_raw(s->t, s->buf.data, s->buf.len);
}

/* The iterations; returns as pd_optim_node. */
static int s_run(s_node_t *s, pd_fitness_fn fn, const pd_optim_task_arg_t *a)
{
    const pd_optim_opts_t *o = s->o;
    bool migrate = o->migration_interval > 0 && o->topology != PD_TOPO_NONE && s->n > 1;
    pd_optim_stop_t stop = PD_STOP_NONE;
    char err[1024];
    s->t0 = s->last_progress = pd_optim_now();
    while (stop == PD_STOP_NONE) {
        if (o->iterations && s->it >= o->iterations) {
            stop = PD_STOP_ITERATIONS;
            break;
        }
        const double *x;
        const uint32_t *grp;
        long nb = pd_island_ask(s->is, &x, &grp);
        if (nb < 0)
            return pd_task_fail(s->t, "out of memory for island %u's block", s->me);
        int d = s->ask ? s_round_ask(s, (uint64_t) nb) : PD_STOP_NONE;
        if (d < 0)
            return -1;
        if (d != PD_STOP_NONE) {
            stop = (pd_optim_stop_t) d;
            break;
        }
        err[0] = 0;
        int rc = pd_island_evaluate(s->is, fn, NULL, a->shared, a->shared_len, err, sizeof err);
        for (uint32_t g = 0; g < s->groups; g++)
            s->best[g] = pd_island_best(s->is, g, NULL);
        uint32_t nreached = 0;
        d = s_round_outcome(s, rc, (uint64_t) nb, err, &nreached);
        if (d < 0)
            return -1;
        if (d == PD_STOP_ERROR) {
            stop = PD_STOP_ERROR;
            break;
        }
        s->evals += s->round;
        s->it++;
        if (s_record(s))
            return pd_task_fail(s->t, "out of memory for the history");
        if (migrate && s->it % o->migration_interval == 0 && s_migrate(s))
            return -1;
        for (uint32_t r = 0; r < nreached; r++)
            pd_island_set_active(s->is, s->newly[r], false);
        stop = (pd_optim_stop_t) d;
        if (s->me == 0)
            s_progress(s);
    }
    /* the polish, as pd_optim_run: each island its groups' best points,
       after a run that ended by itself */
    if (o->polish && stop != PD_STOP_ERROR && stop != PD_STOP_CANCELLED) {
        err[0] = 0;
        int rc = pd_island_polish(s->is, fn, NULL, a->shared, a->shared_len, &s->polish_evals,
                                  err, sizeof err);
        if (rc == PD_ENOMEM)
            return pd_task_fail(s->t, "out of memory for island %u's polish", s->me);
        if (rc)
            return pd_task_fail(s->t, "%s", err);
    }
    return s_result(s, stop);
}

static void s_free(s_node_t *s)
{
    pd_island_destroy(&s->is);
    free(s->in);
    free(s->best);
    free(s->gbest);
    free(s->theirs);
    free(s->reached);
    free(s->newly);
    free(s->msg);
    free(s->hist);
    free(s->mx);
    free(s->mf);
    free(s->cx);
    free(s->cf);
    pd_buf_free(&s->buf);
}

int pd_optim_node(pd_task_t *t, const pd_node_env_t *env)
{
    size_t alen;
    const void *arg = pd_arg_raw(t, &alen);
    pd_optim_task_arg_t a;
    char err[1024];
    if (pd_optim_task_arg_decode(arg, alen, &a, err, sizeof err))
        return pd_task_fail(t, "%s", err);
    int rc;
    pd_optim_spec_t *spec = pd_optim_spec_decode(a.opts, a.opts_len, err, sizeof err, &rc);
    if (!spec)
        return pd_task_fail(t, "options: %s", err);
    const pd_optim_opts_t *o = pd_optim_spec_opts(spec);
    int me = pd_node_index(t), n = pd_node_count(t);
    if (me < 0 || (uint32_t) n != o->islands) {
        pd_optim_spec_destroy(&spec);
        return pd_task_fail(t, "the options ask for %u islands but the task has %d nodes: run "
                               "one node per island", o->islands, n);
    }
    int code = 0;
    void *sym = env->find(env->ctx, a.fitness, a.shared, a.shared_len, &code, err, sizeof err);
    if (!sym) {
        pd_optim_spec_destroy(&spec);
        return pd_task_fail(t, "%s", err);
    }
    pd_fitness_fn fn;
    memcpy(&fn, &sym, sizeof fn);
    s_node_t s = {.t = t, .env = env, .o = o, .me = (uint32_t) me, .n = (uint32_t) n, .ask = true,
                  .groups = o->groups ? o->groups : 1, .dim = o->dim,
                  .k = o->migration_count ? o->migration_count : 1};
    pd_buf_init(&s.buf);
    int e = 0;
    s.is = pd_island_new(o, s.me, &e);
    if (s.is)
        pd_island_set_task(s.is, t); /* so the fitness can use the task API (a GPU) */
    s.nin = pd_node_in_peers(t, PD_OPTIM_TUBE_MIGRATE, NULL, 0);
    s.nout = pd_node_out_peers(t, PD_OPTIM_TUBE_MIGRATE, NULL, 0);
    if (s.nin < 0)
        s.nin = 0;
    if (s.nout < 0)
        s.nout = 0;
    size_t nc = (size_t) (s.nin ? s.nin : 1) * s.k, ng = s.groups, d = s.dim;
    s.in = malloc((size_t) (s.nin ? s.nin : 1) * sizeof *s.in);
    s.best = malloc(ng * sizeof *s.best);
    s.gbest = malloc(ng * sizeof *s.gbest);
    s.theirs = malloc(ng * sizeof *s.theirs);
    s.reached = calloc(ng, sizeof *s.reached);
    s.newly = malloc(ng * sizeof *s.newly);
    s.mx = malloc(s.k * d * sizeof *s.mx);
    s.mf = malloc(s.k * sizeof *s.mf);
    s.cx = malloc(nc * d * sizeof *s.cx);
    s.cf = malloc(nc * sizeof *s.cf);
    if (!s.is || !s.in || !s.best || !s.gbest || !s.theirs || !s.reached || !s.newly || !s.mx || !s.mf
        || !s.cx || !s.cf) {
        s_free(&s);
        pd_optim_spec_destroy(&spec);
        return pd_task_fail(t, "out of memory for island %d", me);
    }
    if (s.nin)
        pd_node_in_peers(t, PD_OPTIM_TUBE_MIGRATE, s.in, s.nin);
    rc = s_run(&s, fn, &a);
    s_free(&s);
    pd_optim_spec_destroy(&spec);
    return rc;
}

const pd_builtin_node_t pd_optim_node_builtin = {PD_OPTIM_NODE_FN, pd_optim_node};
