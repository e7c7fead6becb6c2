/*  submit_optim: the verbs optimize, optimize-status and optimize-fetch of
    playdoh-submit (docs/optimisation.md, "From the command line").

        playdoh-submit optimize MODULE.c FITNESS --algo pso --bounds FILE|LO:HI
                       [--dim D] (--budget N | --iterations N) [--islands N] ...
        playdoh-submit optimize-status t17
        playdoh-submit optimize-fetch [--wait S] [--release] t17

    optimize reads and checks everything first (the bounds and edges files,
    the options, through pd_optim_opts_check), so that bad input is reported
    without a broker; then it ships the module, starts the run with
    pd_optim_submit and follows it as optimize-fetch does: pd_optim_fetch in
    short waits, pd_optim_status for the progress line on a terminal. The
    result is one JSON object on standard output, built as msgpack and
    printed by pd_msgpack_to_json (shortest exact doubles; null for an
    infinite value). Ctrl-C during a run stops it after its current iteration
    and prints the result so far (a second Ctrl-C cancels it: a run nobody
    waits for would hold its slots until its budget is spent): SIGINT is
    blocked while
    the run is followed and looked for between waits, so that no wait of the
    client library is cut short by a signal. cancel, wait and status
    over t17 work as for any task (submit_task.c).

    The bounds file has one parameter per line, "LO HI" or "NAME LO HI";
    '#' starts a comment; blank lines are skipped. The edges file of
    --topology FILE has one "FROM TO" or "FROM->TO" pair of islands per line.
*/
#include "submit.h"
#include "pd_plat.h"

#include "pd_json.h"

#include <ctype.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define S_POLL_MS 200                 /* a followed run's progress is read this often */
#define S_MAX_NAME 63                 /* bytes of a parameter's name */
#define S_MAX_ARGS_BYTES (128u << 20) /* shared data x islands: the task's arguments */

/* ---- the verbs' options ---------------------------------------------------- */

static const char S_USAGE[] =
    "usage: playdoh-submit [GLOBAL OPTIONS] optimize [OPTIONS] MODULE FITNESS --algo A\n"
    "           --bounds FILE|LO:HI (--budget EVALS | --iterations N) [--target F]\n"
    "\n"
    "Minimises (or with --maximize maximises) FITNESS, a PD_FITNESS function of MODULE\n"
    "(playdoh_fitness.h), as islands on the cluster, one island per slot, exchanging their\n"
    "best individuals along a topology (docs/optimisation.md). On a terminal, standard error\n"
    "shows the iteration, the evaluations and the best value per group as it runs; Ctrl-C\n"
    "stops the run after its current iteration and prints what it found (Ctrl-C again\n"
    "cancels it). The result is printed as one JSON object:\n"
    "{\"task\":..,\"stop\":..,\"evaluations\":..,\"iterations\":..,\"wall_s\":..,\n"
    " \"best_f\":[per group],\"best_x\":[[per group]],\"best_island\":[..],...}\n"
    "\n"
    "options:\n"
    "      --algo A         pso, ga, cmaes, bipop (CMA-ES with BIPOP restarts) or de\n"
    "                       (required)\n"
    "      --bounds B       LO:HI for every parameter (with --dim), or a file of one line per\n"
    "                       parameter: 'LO HI' or 'NAME LO HI' ('#' starts a comment)\n"
    "      --dim D          the number of parameters (a bounds file says it by itself)\n"
    "      --init B         where the first population is drawn, as --bounds (default: the\n"
    "                       bounds)\n"
    "      --budget N       stop before exceeding N evaluations (all islands and groups)\n"
    "      --iterations N   stop after N iterations\n"
    "      --target F       a group stops once its best reaches F; needs --budget or\n"
    "                       --iterations too, as F may never be reached\n"
    "      --islands N      islands, one per slot (default 1)\n"
    "      --gpu            each island on a GPU slot of its own: the fitness launches\n"
    "                       kernels through block->task (docs/gpu.md); a .cu beside a\n"
    "                       .c MODULE travels with it\n"
    "      --cuda FILE.cu   ship these CUDA kernels to the islands (implies --gpu)\n"
    "      --popsize P      individuals per island and group (default: PSO 40, GA 40,\n"
    "                       CMA-ES 4 + 3 ln D, DE 40)\n"
    "      --groups G       G independent optimisations side by side (default 1)\n"
    "      --topology T     ring (default), full, star, none, or a file of edges, one\n"
    "                       'FROM TO' (or FROM->TO) pair of islands per line\n"
    "      --migrate-every K  migrate every K iterations (default 10; 0: never)\n"
    "      --migrants M     individuals sent to each neighbour per migration (default 1)\n"
    "      --seed S         equal seeds and options give the same result (default 0)\n"
    "      --polish N       after the run, each island polishes its best point of each\n"
    "                       group with a bounded Nelder-Mead of at most N evaluations\n"
    "      --maximize       maximise instead of minimise\n"
    "      --shared FILE    data every fitness call reads as b->shared (a few MiB at most)\n"
    "      --timeout-ms N   fail the run when it takes longer than N ms\n"
    "      --history        add each island's best-so-far per iteration to the result\n"
    "      --detach         print the run's id (t17) and return at once; follow it with\n"
    "                       optimize-status, optimize-fetch, wait and cancel\n"
    "\n"
    "exit status: 0 done, 1 the run failed or was cancelled, 2 bad usage or input,\n"
    "3 broker problem (for instance more islands than the cluster has slots); 130 after\n"
    "Ctrl-C\n";

static const char S_USAGE_STATUS[] =
    "usage: playdoh-submit [GLOBAL OPTIONS] optimize-status ID...\n"
    "\n"
    "Prints the state and latest progress of each optimisation (t17) as a JSON line:\n"
    "{\"task\":..,\"state\":..,\"iteration\":..,\"evaluations\":..,\"wall_s\":..,\n"
    " \"best_f\":[per group]} (progress once the first iteration is done).\n"
    "\n"
    "exit status: 0, 1 when an optimisation is unknown, 2 bad usage, 3 broker problem\n";

static const char S_USAGE_FETCH[] =
    "usage: playdoh-submit [GLOBAL OPTIONS] optimize-fetch [OPTIONS] ID\n"
    "\n"
    "Prints an optimisation's result (t17) as optimize does, or {\"task\":..,\"state\":..}\n"
    "while it runs.\n"
    "\n"
    "options:\n"
    "      --wait S         wait up to S seconds for it to end (default 0; -1: for ever),\n"
    "                       with its progress on a terminal\n"
    "      --release        let the broker forget it once printed\n"
    "      --history        add each island's best-so-far per iteration\n"
    "      --bounds FILE    the run's bounds file, to name the parameters in best_params\n"
    "\n"
    "exit status: 0 done, 1 failed, cancelled, unknown or still running, 2 bad usage,\n"
    "3 broker problem\n";

static const pd_submit_opt_t s_optimize_opts[] = {
    {"timeout-ms", required_argument, O_TIMEOUT},
    {"detach", no_argument, O_DETACH},
    {"shared", required_argument, O_SHARED},
    {"gpu", no_argument, O_GPU},
    {"cuda", required_argument, O_CUDA},
    {"algo", required_argument, O_ALGO},
    {"dim", required_argument, O_DIM},
    {"bounds", required_argument, O_BOUNDS},
    {"init", required_argument, O_INIT},
    {"islands", required_argument, O_ISLANDS},
    {"popsize", required_argument, O_POPSIZE},
    {"budget", required_argument, O_BUDGET},
    {"iterations", required_argument, O_ITERATIONS},
    {"target", required_argument, O_TARGET},
    {"seed", required_argument, O_SEED},
    {"polish", required_argument, O_POLISH},
    {"topology", required_argument, O_TOPOLOGY},
    {"migrate-every", required_argument, O_MIGRATE_EVERY},
    {"migrants", required_argument, O_MIGRANTS},
    {"groups", required_argument, O_GROUPS},
    {"maximize", no_argument, O_MAXIMIZE},
    {"history", no_argument, O_HISTORY},
    {NULL, 0, 0},
};

static const pd_submit_opt_t s_fetch_opts[] = {
    {"wait", required_argument, O_WAIT},
    {"release", no_argument, O_RELEASE},
    {"bounds", required_argument, O_BOUNDS},
    {"history", no_argument, O_HISTORY},
    {NULL, 0, 0},
};

/* Stores v, the value of optimize's count `code`, in its field. */
static void s_set_count(pd_submit_optim_opts_t *o, int code, uint64_t v)
{
    switch (code) {
    case O_DIM: o->dim = (uint32_t) v; break;
    case O_ISLANDS: o->islands = (uint32_t) v; break;
    case O_POPSIZE: o->popsize = (uint32_t) v; break;
    case O_MIGRATE_EVERY: o->migrate_every = (uint32_t) v; break;
    case O_MIGRANTS: o->migrants = (uint32_t) v; break;
    case O_GROUPS: o->groups = (uint32_t) v; break;
    case O_BUDGET: o->budget = v; break;
    case O_ITERATIONS: o->iterations = v; break;
    case O_SEED: o->seed = v; break;
    default: o->polish = v; break;
    }
}

/* optimize's counts: the option, its words, its range (s_set_count stores
   them). */
static const pd_submit_count_t s_counts[] = {
    {O_DIM, "dim", "a number of parameters", 1, 1000000},
    {O_ISLANDS, "islands", "a number of islands", 1, 1024},
    {O_POPSIZE, "popsize", "a population size", 1, 100000000},
    {O_MIGRATE_EVERY, "migrate-every", "a number of iterations (0: never)", 0, UINT32_MAX},
    {O_MIGRANTS, "migrants", "a number of individuals", 1, 1000000},
    {O_GROUPS, "groups", "a number of groups", 1, 1000000},
    {O_BUDGET, "budget", "a number of evaluations", 1, UINT64_MAX},
    {O_ITERATIONS, "iterations", "a number of iterations", 1, UINT64_MAX},
    {O_SEED, "seed", "a number", 0, UINT64_MAX},
    {O_POLISH, "polish", "a number of evaluations", 1, UINT64_MAX},
};

/* Applies one of the options of optimize and optimize-fetch. */
static int s_apply(pd_submit_t *s, int code, const char *arg, int bad_exit)
{
    pd_submit_opts_t *o = &s->o;
    switch (code) {
    case O_ALGO: {
        pd_algo_t a;
        if (pd_algo_parse(arg, &a) && strcmp(arg, "bipop") != 0) {
            pd_submit_usage_error(s, "--algo wants pso, ga, cmaes, bipop or de, not '%s'", arg);
            return bad_exit;
        }
        o->optim.algo = arg;
        break;
    }
    case O_BOUNDS: o->optim.bounds = arg; break;
    case O_INIT: o->optim.init = arg; break;
    case O_TOPOLOGY: o->optim.topology = arg; break;
    case O_DIM:
    case O_ISLANDS:
    case O_POPSIZE:
    case O_MIGRATE_EVERY:
    case O_MIGRANTS:
    case O_GROUPS:
    case O_BUDGET:
    case O_ITERATIONS:
    case O_SEED:
    case O_POLISH: {
        uint64_t v;
        if (!pd_submit_count_of(s, s_counts, sizeof s_counts / sizeof s_counts[0], code, arg, &v))
            return bad_exit;
        s_set_count(&o->optim, code, v);
        o->optim.migrate_every_set |= code == O_MIGRATE_EVERY;
        break;
    }
    case O_TARGET: {
        char *end;
        errno = 0;
        o->optim.target = strtod(arg, &end);
        if (end == arg || *end || errno || !isfinite(o->optim.target)) {
            pd_submit_usage_error(s, "--target wants a finite number (the fitness value to "
                                  "reach), not '%s'", arg);
            return bad_exit;
        }
        o->optim.target_set = true;
        break;
    }
    case O_MAXIMIZE: o->optim.maximize = true; break;
    case O_HISTORY: o->optim.history = true; break;
    default: break;
    }
    return 0;
}

/* ---- bounds -------------------------------------------------------------- */

/* Bounds read from a file or a LO:HI range. */
typedef struct {
    size_t dim;     /* parameters the file gives; 0 for a range */
    double *lo;     /* dim values (a range: one), owned */
    double *hi;
    char **names;   /* dim names, or NULL when the file names none (owned) */
} s_box_t;

static void s_box_free(s_box_t *b)
{
    if (b->names)
        for (size_t j = 0; j < b->dim; j++)
            free(b->names[j]);
    free(b->names);
    free(b->lo);
    free(b->hi);
    memset(b, 0, sizeof *b);
}

/* A finite double filling the whole token. */
static bool s_number(const char *tok, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(tok, &end);
    return end != tok && !*end && !errno && isfinite(*v);
}

/* "LO:HI" with finite numbers: true and the range. */
static bool s_range(const char *s, double *lo, double *hi)
{
    const char *colon = strchr(s, ':');
    if (!colon || colon == s)
        return false;
    char left[64];
    if ((size_t) (colon - s) >= sizeof left)
        return false;
    memcpy(left, s, (size_t) (colon - s));
    left[colon - s] = 0;
    return s_number(left, lo) && s_number(colon + 1, hi);
}

static bool s_name_ok(const char *n)
{
    if (!isalpha((unsigned char) n[0]) && n[0] != '_')
        return false;
    for (const char *p = n; *p; p++)
        if (!isalnum((unsigned char) *p) && *p != '_' && *p != '.' && *p != '-')
            return false;
    return strlen(n) <= S_MAX_NAME;
}

/* Appends one parameter to b (grown as needed). Returns 0 or PD_ENOMEM. */
static int s_box_push(s_box_t *b, size_t *cap, double lo, double hi, const char *name)
{
    if (b->dim == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        double *l = realloc(b->lo, nc * sizeof *l);
        if (l)
            b->lo = l;
        double *h = l ? realloc(b->hi, nc * sizeof *h) : NULL;
        if (h)
            b->hi = h;
        char **n = h ? realloc(b->names, nc * sizeof *n) : NULL;
        if (!n)
            return PD_ENOMEM;
        b->names = n;
        *cap = nc;
    }
    b->lo[b->dim] = lo;
    b->hi[b->dim] = hi;
    b->names[b->dim] = name ? strdup(name) : NULL;
    if (name && !b->names[b->dim])
        return PD_ENOMEM;
    b->dim++;
    return 0;
}

/* Reads a bounds file (see the top). opt names the option for messages.
   Returns 0, or 2 after printing what is wrong and where. */
static int s_box_file(const char *opt, const char *path, s_box_t *b)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "playdoh-submit: optimize: %s: cannot read bounds file %s: %s (give "
                "LO:HI, like -5:5, or a file of 'LO HI' or 'NAME LO HI' lines)\n", opt, path,
                strerror(errno));
        return 2;
    }
    char *line = NULL;
    size_t lcap = 0, cap = 0, lineno = 0, named = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *tok[4], *save = NULL;
        int nt = 0;
        for (char *t = strtok_r(line, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save))
            tok[nt < 4 ? nt : 3] = t, nt++;
        if (nt == 0)
            continue;
        double lo, hi;
        const char *name = nt == 3 ? tok[0] : NULL;
        if ((nt != 2 && nt != 3) || !s_number(tok[nt - 2], &lo) || !s_number(tok[nt - 1], &hi)) {
            fprintf(stderr, "playdoh-submit: optimize: %s line %zu: expected 'LO HI' or 'NAME "
                    "LO HI' with finite numbers\n", path, lineno);
            rc = 2;
        } else if (name && !s_name_ok(name)) {
            fprintf(stderr, "playdoh-submit: optimize: %s line %zu: '%s' is not a parameter "
                    "name (a letter or '_', then letters, digits, '_', '.' or '-'; at most %d "
                    "bytes)\n", path, lineno, name, S_MAX_NAME);
            rc = 2;
        } else if (!(lo < hi)) {
            fprintf(stderr, "playdoh-submit: optimize: %s line %zu: lower bound %g is not "
                    "below upper bound %g\n", path, lineno, lo, hi);
            rc = 2;
        } else if (s_box_push(b, &cap, lo, hi, name)) {
            fprintf(stderr, "playdoh-submit: optimize: out of memory reading %s\n", path);
            rc = 2;
        }
        named += name != NULL;
        for (size_t j = 0; rc == 0 && name && j + 1 < b->dim; j++)
            if (b->names[j] && strcmp(b->names[j], name) == 0) {
                fprintf(stderr, "playdoh-submit: optimize: %s line %zu: parameter '%s' is "
                        "named twice\n", path, lineno, name);
                rc = 2;
            }
        if (rc == 0 && named && named != b->dim) {
            fprintf(stderr, "playdoh-submit: optimize: %s line %zu: name every parameter or "
                    "none\n", path, lineno);
            rc = 2;
        }
    }
    free(line);
    fclose(f);
    if (rc == 0 && b->dim == 0) {
        fprintf(stderr, "playdoh-submit: optimize: %s: bounds file %s has no parameters (one "
                "'LO HI' or 'NAME LO HI' line each)\n", opt, path);
        rc = 2;
    }
    if (rc == 0 && named == 0) {
        free(b->names);
        b->names = NULL;
    }
    return rc;
}

/* --bounds or --init: a LO:HI range, else a file. Returns 0 or 2. */
static int s_box_load(const char *opt, const char *arg, s_box_t *b)
{
    memset(b, 0, sizeof *b);
    double lo, hi;
    if (!s_range(arg, &lo, &hi))
        return s_box_file(opt, arg, b);
    if (!(lo < hi)) {
        fprintf(stderr, "playdoh-submit: optimize: %s %s: the lower bound must be below the "
                "upper bound\n", opt, arg);
        return 2;
    }
    b->lo = malloc(sizeof *b->lo);
    b->hi = malloc(sizeof *b->hi);
    if (!b->lo || !b->hi) {
        fprintf(stderr, "playdoh-submit: out of memory\n");
        return 2;
    }
    b->lo[0] = lo;
    b->hi[0] = hi;
    return 0;
}

/* Makes a range box hold dim values (a file's box already does). Returns 0 or 2. */
static int s_box_expand(s_box_t *b, size_t dim)
{
    if (b->dim)
        return 0;
    double *lo = malloc(dim * sizeof *lo), *hi = malloc(dim * sizeof *hi);
    if (!lo || !hi) {
        free(lo);
        free(hi);
        fprintf(stderr, "playdoh-submit: out of memory for %zu parameters\n", dim);
        return 2;
    }
    for (size_t j = 0; j < dim; j++) {
        lo[j] = b->lo[0];
        hi[j] = b->hi[0];
    }
    free(b->lo);
    free(b->hi);
    b->lo = lo;
    b->hi = hi;
    b->dim = dim;
    return 0;
}

/* ---- topology ------------------------------------------------------------ */

/* Reads an edges file into *edges (flattened pairs, owned) for islands.
   Returns 0 or 2 after printing what is wrong and where. */
static int s_edges_file(const char *path, uint32_t islands, uint32_t **edges, size_t *n)
{
    *edges = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "playdoh-submit: optimize: --topology: '%s' is not ring, full, star or "
                "none, and cannot be read as an edges file: %s\n", path, strerror(errno));
        return 2;
    }
    char *line = NULL;
    size_t lcap = 0, cap = 0, lineno = 0;
    int rc = 0;
    while (rc == 0 && getline(&line, &lcap, f) >= 0) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *arrow = strstr(line, "->");
        if (arrow)
            arrow[0] = arrow[1] = ' ';
        unsigned long a, b;
        int used = 0;
        char blank;
        if (sscanf(line, " %c", &blank) != 1)
            continue;
        if (sscanf(line, " %lu %lu %n", &a, &b, &used) != 2 || line[used] != 0 ||
            strchr(line, '-')) {
            fprintf(stderr, "playdoh-submit: optimize: %s line %zu: expected 'FROM TO' or "
                    "'FROM->TO' (two island numbers)\n", path, lineno);
            rc = 2;
        } else if (a >= islands || b >= islands) {
            fprintf(stderr, "playdoh-submit: optimize: %s line %zu: island %lu is out of range "
                    "(the run has %u islands, 0 .. %u)\n", path, lineno, a >= islands ? a : b,
                    islands, islands - 1);
            rc = 2;
        } else if (a == b) {
            fprintf(stderr, "playdoh-submit: optimize: %s line %zu: edge %lu->%lu goes from an "
                    "island to itself\n", path, lineno, a, b);
            rc = 2;
        } else {
            if (*n == cap) {
                cap = cap ? cap * 2 : 32;
                uint32_t *e = realloc(*edges, cap * 2 * sizeof *e);
                if (!e) {
                    fprintf(stderr, "playdoh-submit: out of memory reading %s\n", path);
                    rc = 2;
                    break;
                }
                *edges = e;
            }
            (*edges)[2 * *n] = (uint32_t) a;
            (*edges)[2 * *n + 1] = (uint32_t) b;
            (*n)++;
        }
    }
    free(line);
    fclose(f);
    if (rc) {
        free(*edges);
        *edges = NULL;
        *n = 0;
    }
    return rc;
}

/* ---- the run's options ----------------------------------------------------- */

/* Everything optimize reads before it connects. */
typedef struct {
    pd_optim_opts_t o;  /* the options (pointers into the fields below) */
    s_box_t bounds;     /* --bounds */
    s_box_t init;       /* --init (dim 0 and no values when absent) */
    uint32_t *edges;    /* --topology FILE: flattened pairs (owned) */
    char *shared;       /* --shared FILE's contents (owned) */
    size_t shared_len;
} s_run_t;

static void s_run_free(s_run_t *r)
{
    s_box_free(&r->bounds);
    s_box_free(&r->init);
    free(r->edges);
    free(r->shared);
}

/* Reads --shared FILE whole. Returns 0 or 2. */
static int s_read_shared(const char *path, uint32_t islands, char **data, size_t *len)
{
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        fprintf(stderr, "playdoh-submit: optimize: cannot read shared data %s: %s\n", path,
                !f || errno ? strerror(errno) : "not a regular file, or empty");
        if (f)
            fclose(f);
        return 2;
    }
    if ((double) st.st_size * islands > S_MAX_ARGS_BYTES) {
        fprintf(stderr, "playdoh-submit: optimize: shared data %s: %.1f MiB for each of %u "
                "islands is over the %u MiB the run's arguments may take: read large data in "
                "the module's PD_INIT instead (docs/optimisation.md)\n", path,
                (double) st.st_size / 1048576.0, islands, S_MAX_ARGS_BYTES >> 20);
        fclose(f);
        return 2;
    }
    *len = (size_t) st.st_size;
    *data = malloc(*len);
    bool ok = *data && fread(*data, 1, *len, f) == *len;
    fclose(f);
    if (!ok) {
        fprintf(stderr, "playdoh-submit: optimize: cannot read shared data %s\n", path);
        return 2;
    }
    return 0;
}

/* Loads --init into r->init, which must match the bounds' dim parameters
   and their names. Returns 0 or 2 after printing why. */
static int s_init_box(const pd_submit_t *s, s_run_t *r, size_t dim)
{
    const pd_submit_optim_opts_t *q = &s->o.optim;
    int rc = s_box_load("--init", q->init, &r->init);
    if (rc)
        return rc;
    if (r->init.dim && r->init.dim != dim) {
        pd_submit_usage_error(s, "--init file %s has %zu parameters but the bounds have "
                              "%zu", q->init, r->init.dim, dim);
        return 2;
    }
    for (size_t j = 0; r->init.names && r->bounds.names && j < dim; j++)
        if (strcmp(r->init.names[j], r->bounds.names[j]) != 0) {
            pd_submit_usage_error(s, "--init file %s names parameter %zu '%s' where the "
                                  "bounds name it '%s': keep the same order", q->init, j + 1,
                                  r->init.names[j], r->bounds.names[j]);
            return 2;
        }
    return s_box_expand(&r->init, dim);
}

/* Turns optimize's options into r->o. Returns 0 or 2 after printing why. */
static int s_options(const pd_submit_t *s, s_run_t *r)
{
    const pd_submit_optim_opts_t *q = &s->o.optim;
    if (!q->algo) {
        pd_submit_usage_error(s, "needs --algo pso, ga, cmaes, bipop or de");
        return 2;
    }
    if (!q->bounds) {
        pd_submit_usage_error(s, "needs --bounds LO:HI (with --dim D) or --bounds FILE (one "
                              "'LO HI' or 'NAME LO HI' line per parameter)");
        return 2;
    }
    if (!q->budget && !q->iterations) {
        pd_submit_usage_error(s, "%s", q->target_set
                                  ? "--target alone may never be reached: add --budget EVALS "
                                    "or --iterations N as a bound"
                                  : "needs a stopping rule: --budget EVALS or --iterations N "
                                    "(and --target F to stop early)");
        return 2;
    }
    int rc = s_box_load("--bounds", q->bounds, &r->bounds);
    if (rc)
        return rc;
    size_t dim = r->bounds.dim ? r->bounds.dim : q->dim;
    if (dim == 0) {
        pd_submit_usage_error(s, "--bounds %s gives one range for every parameter: say how "
                              "many with --dim D", q->bounds);
        return 2;
    }
    if (r->bounds.dim && q->dim && q->dim != r->bounds.dim) {
        pd_submit_usage_error(s, "--dim %u but bounds file %s has %zu parameters (leave --dim "
                              "out, or make them agree)", q->dim, q->bounds, r->bounds.dim);
        return 2;
    }
    if ((rc = s_box_expand(&r->bounds, dim)))
        return rc;
    if (q->init && (rc = s_init_box(s, r, dim)))
        return rc;
    pd_algo_t algo = PD_ALGO_PSO;
    bool bipop = strcmp(q->algo, "bipop") == 0; /* CMA-ES with BIPOP restarts */
    if (bipop)
        algo = PD_ALGO_CMAES;
    else
        pd_algo_parse(q->algo, &algo);
    pd_optim_opts_t *o = &r->o;
    pd_optim_opts_init(o, algo, dim);
    o->cmaes.bipop = bipop;
    o->lower = r->bounds.lo;
    o->upper = r->bounds.hi;
    o->names = (const char *const *) r->bounds.names;
    if (q->init) {
        o->init_lower = r->init.lo;
        o->init_upper = r->init.hi;
    }
    if (q->popsize)
        o->popsize = q->popsize;
    o->iterations = q->iterations;
    o->budget = q->budget;
    if (q->target_set)
        o->target = q->target;
    o->maximize = q->maximize;
    if (q->islands)
        o->islands = q->islands;
    if (q->groups)
        o->groups = q->groups;
    if (q->migrate_every_set)
        o->migration_interval = q->migrate_every;
    if (q->migrants)
        o->migration_count = q->migrants;
    o->seed = q->seed;
    o->polish = q->polish;
    if (q->topology && pd_topology_parse(q->topology, &o->topology) != 0) {
        size_t n;
        if ((rc = s_edges_file(q->topology, o->islands, &r->edges, &n)))
            return rc;
        o->topology = PD_TOPO_EDGES;
        o->edges = r->edges;
        o->edge_count = n;
    }
    char err[1024];
    if (pd_optim_opts_check(o, err, sizeof err)) {
        fprintf(stderr, "playdoh-submit: optimize: %s\n", err);
        return 2;
    }
    if (s->o.shared && (rc = s_read_shared(s->o.shared, o->islands, &r->shared, &r->shared_len)))
        return rc;
    return 0;
}

/* ---- output ---------------------------------------------------------------- */

/* A map key, then the header of the array of n elements that is its value. */
static void s_pack_key_array(msgpack_packer *pk, const char *key, uint32_t n)
{
    pd_pack_cstr(pk, key);
    msgpack_pack_array(pk, n);
}

static void s_pack_doubles(msgpack_packer *pk, const double *v, size_t n)
{
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_double(pk, v[i]);
}

/* Prints res (of task id) as one JSON line; names (dim entries) or NULL;
   history: add it. Returns 0, or 3 when out of memory. */
static int s_print_result(uint64_t id, const pd_optim_result_t *res, char *const *names,
                          bool history)
{
    pd_buf_t mp, out;
    pd_buf_init(&mp);
    pd_buf_init(&out);
    msgpack_packer pk;
    pd_packer_init(&pk, &mp);
    bool best = res->best_f && res->best_x && res->groups > 0;
    bool hist = history && res->history && res->history_len > 0;
    size_t fields = 9 + (best ? 3 + (names ? 1 : 0) : 0) + (hist ? 1 : 0) +
                    (res->code ? 2 : 0) + (res->polish_evaluations ? 1 : 0);
    msgpack_pack_map(&pk, fields);
    pd_pack_kv_uint(&pk, "task", id);
    pd_pack_kv_str(&pk, "stop", pd_optim_stop_name(res->stop));
    pd_pack_kv_uint(&pk, "evaluations", res->evaluations);
    pd_pack_kv_uint(&pk, "iterations", res->iterations);
    pd_pack_kv_uint(&pk, "immigrants", res->immigrants);
    pd_pack_kv_uint(&pk, "restarts", res->restarts);
    if (res->polish_evaluations)
        pd_pack_kv_uint(&pk, "polish_evaluations", res->polish_evaluations);
    pd_pack_kv_double(&pk, "wall_s", res->wall_s);
    pd_pack_kv_uint(&pk, "islands", res->islands);
    pd_pack_kv_uint(&pk, "groups", res->groups);
    if (res->code) {
        pd_pack_kv_str(&pk, "code", pd_err_name(res->code));
        pd_pack_kv_str(&pk, "error", res->error ? res->error : pd_strerror(res->code));
    }
    if (best) {
        pd_pack_cstr(&pk, "best_f");
        s_pack_doubles(&pk, res->best_f, res->groups);
        s_pack_key_array(&pk, "best_x", res->groups);
        for (uint32_t g = 0; g < res->groups; g++)
            s_pack_doubles(&pk, res->best_x + (size_t) g * res->dim, res->dim);
        s_pack_key_array(&pk, "best_island", res->groups);
        for (uint32_t g = 0; g < res->groups; g++)
            msgpack_pack_uint32(&pk, res->best_island ? res->best_island[g] : 0);
        if (names) {
            s_pack_key_array(&pk, "best_params", res->groups);
            for (uint32_t g = 0; g < res->groups; g++) {
                msgpack_pack_map(&pk, res->dim);
                for (size_t j = 0; j < res->dim; j++)
                    pd_pack_kv_double(&pk, names[j], res->best_x[(size_t) g * res->dim + j]);
            }
        }
    }
    if (hist) {
        /* islands x groups x iterations, as pd_optim_history reads it */
        s_pack_key_array(&pk, "history", res->islands);
        for (uint32_t i = 0; i < res->islands; i++) {
            msgpack_pack_array(&pk, res->groups);
            for (uint32_t g = 0; g < res->groups; g++)
                s_pack_doubles(&pk, res->history + ((size_t) i * res->groups + g) *
                                                       res->history_len, res->history_len);
        }
    }
    int rc = mp.failed || pd_msgpack_to_json(mp.data, mp.len, &out) ||
             pd_buf_append(&out, "\n", 1) ? 3 : 0;
    if (rc == 0) {
        fwrite(out.data, 1, out.len, stdout);
        fflush(stdout);
    } else {
        fprintf(stderr, "playdoh-submit: out of memory printing the result\n");
    }
    pd_buf_free(&mp);
    pd_buf_free(&out);
    return rc;
}

/* ---- following a run ------------------------------------------------------ */

/* Follows run id until it ends or wait_s passes (< 0: no limit), with the
   progress line when wanted; with cancel_on_sigint, Ctrl-C stops it after
   its iteration (a second Ctrl-C cancels it) and *interrupted says so. Returns pd_optim_fetch's
   code (PD_ETIMEDOUT with res->stop PD_STOP_NONE: still running). */
static int s_follow(pd_submit_t *s, uint64_t id, double wait_s, bool cancel_on_sigint,
                    pd_optim_result_t *res, bool *interrupted)
{
    pd_client_t *c = s->c;
    pd_progress_t *bar = pd_progress_new(stderr, 0, pd_submit_progress_wanted(s));
    *interrupted = false;
    int sigints = 0;
    if (cancel_on_sigint)
        pd_plat_catch_interrupt(true);
    double until = wait_s < 0 ? INFINITY : (zclock_usecs() / 1e6) + wait_s;
    uint64_t shown = 0;
    int rc;
    for (;;) {
        double left = until - (zclock_usecs() / 1e6);
        int slice = left <= 0 ? 0 : left * 1000 > INT32_MAX ? -1 : (int) (left * 1000);
        if ((bar || cancel_on_sigint) && (slice < 0 || slice > S_POLL_MS))
            slice = S_POLL_MS;
        rc = pd_optim_fetch(c, id, slice, res);
        if (rc != PD_ETIMEDOUT || res->code != 0 || res->stop != PD_STOP_NONE)
            break;
        pd_optim_result_clear(res);
        if (cancel_on_sigint && sigints < 2 && pd_plat_interrupt_taken()) {
            /* The first Ctrl-C stops the run after its iteration (its best
               point is kept and printed); a second one cancels it. */
            *interrupted = true;
            pd_progress_hide(bar);
            if (++sigints == 1) {
                fprintf(stderr, "playdoh-submit: interrupted: stopping optimisation t%" PRIu64
                        " after its current iteration (Ctrl-C again to cancel it)\n", id);
                pd_optim_stop(c, id);
                until = INFINITY; /* an iteration may be long: wait for it */
            } else {
                fprintf(stderr, "playdoh-submit: interrupted again: cancelling optimisation t%"
                        PRIu64 "\n", id);
                pd_optim_cancel(c, id);
                until = (zclock_usecs() / 1e6) + 30; /* wait for the cancel to land */
            }
            continue;
        }
        if ((zclock_usecs() / 1e6) >= until)
            break;
        pd_optim_status_t st;
        if (bar && pd_optim_status(c, id, &st) == 0 && st.has_progress && st.iteration > shown) {
            shown = st.iteration;
            pd_progress_optim(bar, st.iteration, st.evaluations, st.wall_s, st.groups,
                              st.best_f, false);
        }
        if (bar)
            pd_optim_status_clear(&st);
    }
    pd_progress_hide(bar);
    pd_progress_destroy(&bar);
    if (cancel_on_sigint)
        pd_plat_catch_interrupt(false);
    return rc;
}

/* What follows the fetch of run id: the JSON and a line on standard error.
   Returns the exit status. */
static int s_report(pd_submit_t *s, uint64_t id, int rc, const pd_optim_result_t *res,
                    char *const *names)
{
    if (rc == PD_ETIMEDOUT && res->code == 0 && res->stop == PD_STOP_NONE) {
        pd_optim_status_t st;
        const char *state = "running";
        if (pd_optim_status(s->c, id, &st) == 0)
            state = pd_task_state_name(st.state);
        printf("{\"task\":%" PRIu64 ",\"state\":\"%s\"}\n", id, state);
        pd_optim_status_clear(&st);
        if (!s->o.quiet)
            fprintf(stderr, "playdoh-submit: optimisation t%" PRIu64 " still %s after the "
                    "wait\n", id, state);
        return 1;
    }
    if (rc == PD_ENOJOB) {
        printf("{\"task\":%" PRIu64 ",\"state\":\"unknown\"}\n", id);
        if (!s->o.quiet)
            fprintf(stderr, "playdoh-submit: %s\n", res->error);
        return 1;
    }
    if (rc && res->stop == PD_STOP_NONE) { /* the broker, not the run */
        fprintf(stderr, "playdoh-submit: optimisation t%" PRIu64 ": %s\n", id,
                res->error ? res->error : pd_strerror(rc));
        return 3;
    }
    if (s_print_result(id, res, names, s->o.optim.history))
        return 3;
    if (rc && !s->o.quiet)
        fprintf(stderr, "playdoh-submit: optimisation t%" PRIu64 " %s: %s\n", id,
                rc == PD_ECANCELLED ? "cancelled" : "failed", res->error);
    else if (!s->o.quiet && res->best_f)
        fprintf(stderr, "playdoh-submit: optimisation t%" PRIu64 " ended (%s): %" PRIu64
                " iterations, %" PRIu64 " evaluations, %.2f s; best %.6g%s\n", id,
                pd_optim_stop_name(res->stop), res->iterations, res->evaluations, res->wall_s,
                res->best_f[0], res->groups > 1 ? " (group 0)" : "");
    /* A module that does not compile or lacks the fitness: bad input, as
       for map and task. */
    return rc == PD_ECOMPILE || rc == PD_ENOFUNC ? 2 : rc ? 1 : 0;
}

/* ---- verbs ------------------------------------------------------------------ */

static int s_optimize(pd_submit_t *s, int argc, char **argv)
{
    if (argc != 2) {
        pd_submit_usage_error(s, "needs MODULE FITNESS (got %d arguments)", argc);
        return 2;
    }
    if (s->o.detach && s->o.local) {
        pd_submit_usage_error(s, "--detach with --local: the embedded cluster stops with this "
                              "command; start playdoh-broker and playdoh-worker to detach");
        return 2;
    }
    s_run_t r;
    memset(&r, 0, sizeof r);
    int rc = s_options(s, &r);
    pd_client_t *c = rc ? NULL : pd_submit_connect(s);
    if (rc || !c) {
        s_run_free(&r);
        return rc ? rc : 3;
    }
    char hash[PD_HASH_HEX], cuda_hash[PD_HASH_HEX];
    bool cuda;
    if ((rc = pd_submit_upload_code(s, argv[0], hash, cuda_hash, &cuda)) != 0) {
        s_run_free(&r);
        return rc;
    }
    pd_optim_cluster_opts_t co = {.shared = r.shared, .shared_len = r.shared_len,
                                  .task = {.timeout_ms = s->o.timeout_ms, .gpu = s->o.gpu,
                                           .cuda = cuda ? cuda_hash : NULL}};
    uint64_t id;
    rc = pd_optim_submit(c, hash, argv[1], &r.o, &co, &id);
    if (rc) {
        if (rc == PD_ENOSLOTS) /* the task's message counts nodes: say islands */
            fprintf(stderr, "playdoh-submit: optimize: --islands %u needs a %sslot per island: "
                    "%s\n", r.o.islands, s->o.gpu || cuda ? "GPU " : "", pd_client_error(c));
        else
            fprintf(stderr, "playdoh-submit: optimize: %s\n", pd_client_error(c));
        s_run_free(&r);
        return rc == PD_EINVAL ? 2 : 3;
    }
    if (s->o.detach) {
        printf("t%" PRIu64 "\n", id);
        s_run_free(&r);
        return 0;
    }
    pd_optim_result_t res;
    bool interrupted;
    rc = s_follow(s, id, -1, true, &res, &interrupted);
    int exit_code = s_report(s, id, rc, &res, r.bounds.names);
    if (interrupted)
        exit_code = PD_SUBMIT_INTERRUPTED;
    pd_optim_result_clear(&res);
    pd_task_release(c, id);
    s_run_free(&r);
    return exit_code;
}

/* Parses "t17" or "17" into *id. Returns 0, or 2 after the usage error. */
static int s_run_id(const pd_submit_t *s, const char *arg, uint64_t *id)
{
    const char *p = arg[0] == 't' ? arg + 1 : arg;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno || end == p || *end || p[0] == '-' || v == 0) {
        pd_submit_usage_error(s, "'%s' is not an optimisation's id (t17, as optimize --detach "
                              "prints it)", arg);
        return 2;
    }
    *id = v;
    return 0;
}

static int s_optimize_status(pd_submit_t *s, int argc, char **argv)
{
    if (argc < 1) {
        pd_submit_usage_error(s, "needs the id of an optimisation (t17)");
        return 2;
    }
    uint64_t *ids = malloc((size_t) argc * sizeof *ids);
    if (!ids)
        return 2;
    for (int i = 0; i < argc; i++)
        if (s_run_id(s, argv[i], &ids[i])) {
            free(ids);
            return 2;
        }
    pd_client_t *c = pd_submit_connect(s);
    int exit_code = c ? 0 : 3;
    for (int i = 0; c && i < argc && exit_code != 3; i++) {
        pd_optim_status_t st;
        int rc = pd_optim_status(c, ids[i], &st);
        if (rc) {
            fprintf(stderr, "playdoh-submit: t%" PRIu64 ": %s\n", ids[i], pd_client_error(c));
            exit_code = rc == PD_EPROTO ? 1 : 3;
            continue;
        }
        pd_buf_t mp, out;
        pd_buf_init(&mp);
        pd_buf_init(&out);
        msgpack_packer pk;
        pd_packer_init(&pk, &mp);
        msgpack_pack_map(&pk, st.has_progress ? 6 : 2);
        pd_pack_kv_uint(&pk, "task", ids[i]);
        pd_pack_kv_str(&pk, "state", pd_task_state_name(st.state));
        if (st.has_progress) {
            pd_pack_kv_uint(&pk, "iteration", st.iteration);
            pd_pack_kv_uint(&pk, "evaluations", st.evaluations);
            pd_pack_kv_double(&pk, "wall_s", st.wall_s);
            pd_pack_cstr(&pk, "best_f");
            s_pack_doubles(&pk, st.best_f, st.groups);
        }
        if (mp.failed || pd_msgpack_to_json(mp.data, mp.len, &out) ||
            pd_buf_append(&out, "\n", 1)) {
            fprintf(stderr, "playdoh-submit: out of memory\n");
            exit_code = 3;
        } else {
            fwrite(out.data, 1, out.len, stdout);
        }
        if (st.state == PD_TASK_UNKNOWN && exit_code == 0)
            exit_code = 1;
        pd_buf_free(&mp);
        pd_buf_free(&out);
        pd_optim_status_clear(&st);
    }
    fflush(stdout);
    free(ids);
    return exit_code;
}

static int s_optimize_fetch(pd_submit_t *s, int argc, char **argv)
{
    if (argc != 1) {
        pd_submit_usage_error(s, "needs the id of one optimisation (t17)");
        return 2;
    }
    uint64_t id;
    if (s_run_id(s, argv[0], &id))
        return 2;
    s_box_t names = {0};
    if (s->o.optim.bounds) {
        int rc = s_box_file("--bounds", s->o.optim.bounds, &names);
        if (rc) {
            s_box_free(&names);
            return rc;
        }
    }
    pd_client_t *c = pd_submit_connect(s);
    if (!c) {
        s_box_free(&names);
        return 3;
    }
    pd_optim_result_t res;
    bool interrupted;
    int rc = s_follow(s, id, s->o.wait_set ? s->o.wait_s : 0, false, &res, &interrupted);
    if (names.names && res.best_x && res.dim != names.dim) {
        fprintf(stderr, "playdoh-submit: optimize-fetch: bounds file %s has %zu parameters but "
                "the run has %zu: parameters left unnamed\n", s->o.optim.bounds, names.dim,
                res.dim);
        s_box_free(&names);
    }
    bool running = rc == PD_ETIMEDOUT && res.code == 0 && res.stop == PD_STOP_NONE;
    int exit_code = s_report(s, id, rc, &res, names.names);
    if (s->o.release && !running && rc != PD_ENOJOB)
        pd_task_release(c, id);
    pd_optim_result_clear(&res);
    s_box_free(&names);
    return exit_code;
}

const pd_submit_verb_t pd_submit_verb_optimize = {.name = "optimize", .usage = S_USAGE,
                                                  .opts = s_optimize_opts, .apply = s_apply,
                                                  .run = s_optimize, .bad_exit = 2};
const pd_submit_verb_t pd_submit_verb_optimize_status = {.name = "optimize-status",
                                                         .usage = S_USAGE_STATUS,
                                                         .run = s_optimize_status, .bad_exit = 2};
const pd_submit_verb_t pd_submit_verb_optimize_fetch = {.name = "optimize-fetch",
                                                        .usage = S_USAGE_FETCH,
                                                        .opts = s_fetch_opts, .apply = s_apply,
                                                        .run = s_optimize_fetch, .bad_exit = 2};
