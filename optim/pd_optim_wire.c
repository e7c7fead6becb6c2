/*  pd_optim_wire: msgpack forms of the optimisation options and of
    migrant batches (see pd_optim_wire.h).

    Options are a map keyed by the option names of pd_optim_opts_t, with the
    algorithm, topology and PSO variant by name, the bounds as arrays of
    floats, the target as nil when there is none, and one sub-map per
    algorithm's parameters. The reader accepts the keys in any order,
    refuses unknown keys (naming them) and missing required ones, then runs
    pd_optim_opts_check, so a node never starts from options the client
    would have refused.
*/
#include "pd_optim_wire.h"
#include "pd_plat.h"

#include "pd_error.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WIRE_VERSION 1

struct pd_optim_spec {
    pd_optim_opts_t opts;       /* points into the arrays below */
    double *lower, *upper;      /* dim each */
    double *init_lower, *init_upper; /* dim each, or NULL */
    char **names;               /* dim strings, or NULL */
    uint32_t *edges;            /* 2 x edge_count, or NULL */
};

/* ---- encoding ------------------------------------------------------------ */

static const char *s_variant_name(pd_pso_variant_t v)
{
    return v == PD_PSO_SPSO2011 ? "spso2011" : "component";
}

static const char *s_topo_name(pd_topology_t t)
{
    static const char *const names[] = {"none", "ring", "star", "full", "edges"};
    return (unsigned) t <= PD_TOPO_EDGES ? names[t] : "none";
}

static int s_pack_doubles(msgpack_packer *pk, const char *key, const double *x, size_t n)
{
    int rc = pd_pack_cstr(pk, key);
    rc |= msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        rc |= msgpack_pack_double(pk, x[i]);
    return rc;
}

int pd_optim_opts_encode(const pd_optim_opts_t *o, pd_buf_t *b, char *err, size_t errlen)
{
    int rc = pd_optim_opts_check(o, err, errlen);
    if (rc)
        return rc;

    msgpack_packer pk;
    pd_packer_init(&pk, b);
    size_t d = o->dim;
    size_t fields = 21 + (o->init_lower ? 2 : 0) + (o->names ? 1 : 0) +
                    (o->topology == PD_TOPO_EDGES ? 1 : 0);
    int e = msgpack_pack_map(&pk, fields);
    e |= pd_pack_kv_uint(&pk, "v", WIRE_VERSION);
    e |= pd_pack_kv_str(&pk, "algo", pd_algo_name(o->algo));
    e |= pd_pack_kv_uint(&pk, "dim", d);
    e |= s_pack_doubles(&pk, "lower", o->lower, d);
    e |= s_pack_doubles(&pk, "upper", o->upper, d);
    if (o->init_lower) {
        e |= s_pack_doubles(&pk, "init_lower", o->init_lower, d);
        e |= s_pack_doubles(&pk, "init_upper", o->init_upper, d);
    }
    if (o->names) {
        e |= pd_pack_cstr(&pk, "names");
        e |= msgpack_pack_array(&pk, d);
        for (size_t j = 0; j < d; j++)
            e |= o->names[j] ? pd_pack_cstr(&pk, o->names[j]) : msgpack_pack_nil(&pk);
    }
    e |= pd_pack_kv_uint(&pk, "popsize", o->popsize);
    e |= pd_pack_kv_uint(&pk, "iterations", o->iterations);
    e |= pd_pack_kv_uint(&pk, "budget", o->budget);
    e |= pd_pack_cstr(&pk, "target");
    e |= isnan(o->target) ? msgpack_pack_nil(&pk) : msgpack_pack_double(&pk, o->target);
    e |= pd_pack_kv_bool(&pk, "maximize", o->maximize);
    e |= pd_pack_kv_uint(&pk, "islands", o->islands);
    e |= pd_pack_kv_str(&pk, "topology", s_topo_name(o->topology));
    if (o->topology == PD_TOPO_EDGES) {
        e |= pd_pack_cstr(&pk, "edges");
        e |= msgpack_pack_array(&pk, 2 * o->edge_count);
        for (size_t i = 0; i < 2 * o->edge_count; i++)
            e |= msgpack_pack_uint32(&pk, o->edges[i]);
    }
    e |= pd_pack_kv_uint(&pk, "migration_interval", o->migration_interval);
    e |= pd_pack_kv_uint(&pk, "migration_count", o->migration_count);
    e |= pd_pack_kv_uint(&pk, "seed", o->seed);
    e |= pd_pack_kv_uint(&pk, "groups", o->groups ? o->groups : 1);
    e |= pd_pack_kv_uint(&pk, "polish", o->polish);
    e |= pd_pack_cstr(&pk, "pso");
    e |= msgpack_pack_map(&pk, 6);
    e |= pd_pack_kv_str(&pk, "variant", s_variant_name(o->pso.variant));
    e |= pd_pack_kv_double(&pk, "inertia", o->pso.inertia);
    e |= pd_pack_kv_double(&pk, "cognitive", o->pso.cognitive);
    e |= pd_pack_kv_double(&pk, "social", o->pso.social);
    e |= pd_pack_kv_double(&pk, "max_velocity", o->pso.max_velocity);
    e |= pd_pack_kv_uint(&pk, "informants", o->pso.informants);
    e |= pd_pack_cstr(&pk, "ga");
    e |= msgpack_pack_map(&pk, 6);
    e |= pd_pack_kv_double(&pk, "crossover_prob", o->ga.crossover_prob);
    e |= pd_pack_kv_double(&pk, "eta_c", o->ga.eta_c);
    e |= pd_pack_kv_double(&pk, "mutation_prob", o->ga.mutation_prob);
    e |= pd_pack_kv_double(&pk, "eta_m", o->ga.eta_m);
    e |= pd_pack_kv_uint(&pk, "tournament", o->ga.tournament);
    e |= pd_pack_kv_uint(&pk, "elites", o->ga.elites);
    e |= pd_pack_cstr(&pk, "cmaes");
    e |= msgpack_pack_map(&pk, 6);
    e |= pd_pack_kv_double(&pk, "sigma0", o->cmaes.sigma0);
    e |= pd_pack_kv_bool(&pk, "bipop", o->cmaes.bipop);
    e |= pd_pack_kv_uint(&pk, "restarts", o->cmaes.restarts);
    e |= pd_pack_kv_double(&pk, "popsize_factor", o->cmaes.popsize_factor);
    e |= pd_pack_kv_double(&pk, "tol_fun", o->cmaes.tol_fun);
    e |= pd_pack_kv_double(&pk, "tol_x", o->cmaes.tol_x);
    e |= pd_pack_cstr(&pk, "de");
    e |= msgpack_pack_map(&pk, 4);
    e |= pd_pack_kv_double(&pk, "f_lower", o->de.f_lower);
    e |= pd_pack_kv_double(&pk, "f_upper", o->de.f_upper);
    e |= pd_pack_kv_double(&pk, "tau_f", o->de.tau_f);
    e |= pd_pack_kv_double(&pk, "tau_cr", o->de.tau_cr);
    /* fields counted above: v algo dim lower upper popsize iterations budget
       target maximize islands topology migration_interval migration_count
       seed groups polish pso ga cmaes de = 21, plus the optional ones */
    if (e || b->failed) {
        snprintf(err, errlen, "optimisation options do not fit in a message");
        return b->failed ? PD_ETOOBIG : PD_ENOMEM;
    }
    return 0;
}

/* ---- decoding ------------------------------------------------------------ */

static int s_bad(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int s_bad(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        int n = snprintf(err, errlen, "optimisation options: ");
        va_list ap;
        va_start(ap, fmt);
        if (n > 0 && (size_t) n < errlen)
            vsnprintf(err + n, errlen - (size_t) n, fmt, ap);
        va_end(ap);
    }
    return rc;
}

void pd_optim_spec_destroy(pd_optim_spec_t **sp)
{
    if (!sp || !*sp)
        return;
    pd_optim_spec_t *s = *sp;
    free(s->lower);
    free(s->upper);
    free(s->init_lower);
    free(s->init_upper);
    if (s->names)
        for (size_t j = 0; j < s->opts.dim; j++)
            free(s->names[j]);
    free(s->names);
    free(s->edges);
    free(s);
    *sp = NULL;
}

const pd_optim_opts_t *pd_optim_spec_opts(const pd_optim_spec_t *s)
{
    return &s->opts;
}

/* Reads an array of exactly n numbers into a new array *out. */
static int s_read_doubles(pd_rd_t *r, const char *key, size_t n, double **out, char *err,
                          size_t errlen)
{
    uint32_t m;
    if (pd_rd_array(r, &m))
        return s_bad(err, errlen, PD_EPROTO, "'%s' is not an array", key);
    if (m != n)
        return s_bad(err, errlen, PD_EPROTO, "'%s' has %u values for %zu parameters", key, m, n);
    *out = malloc((n ? n : 1) * sizeof **out);
    if (!*out)
        return s_bad(err, errlen, PD_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (pd_rd_double(r, &(*out)[i]))
            return s_bad(err, errlen, PD_EPROTO, "'%s'[%zu] is not a number", key, i);
    return 0;
}

static int s_read_u32(pd_rd_t *r, const char *key, uint32_t *v, char *err, size_t errlen)
{
    uint64_t u;
    if (pd_rd_uint(r, &u) || u > UINT32_MAX)
        return s_bad(err, errlen, PD_EPROTO, "'%s' is not an integer from 0 to %u", key,
                     UINT32_MAX);
    *v = (uint32_t) u;
    return 0;
}

static int s_read_name(pd_rd_t *r, const char *key, char *dst, size_t cap, char *err,
                       size_t errlen)
{
    if (pd_rd_strcpy(r, dst, cap))
        return s_bad(err, errlen, PD_EPROTO, "'%s' is not a short string", key);
    return 0;
}

/* Reads the parameters sub-map of one algorithm. */
static int s_read_params(pd_rd_t *r, const char *which, pd_optim_opts_t *o, char *err,
                         size_t errlen)
{
    uint32_t n;
    if (pd_rd_map(r, &n))
        return s_bad(err, errlen, PD_EPROTO, "'%s' is not a map", which);
    for (uint32_t i = 0; i < n; i++) {
        char key[32];
        if (pd_rd_strcpy(r, key, sizeof key))
            return s_bad(err, errlen, PD_EPROTO, "a key of '%s' is not a short string", which);
        int rc = 0;
        double *dv = NULL;
        uint32_t *uv = NULL;
        if (strcmp(which, "pso") == 0) {
            if (strcmp(key, "variant") == 0) {
                char v[16];
                if ((rc = s_read_name(r, "pso.variant", v, sizeof v, err, errlen)))
                    return rc;
                if (strcmp(v, "spso2011") == 0)
                    o->pso.variant = PD_PSO_SPSO2011;
                else if (strcmp(v, "component") == 0)
                    o->pso.variant = PD_PSO_COMPONENT;
                else
                    return s_bad(err, errlen, PD_EPROTO,
                                 "pso.variant '%s' unknown: spso2011 or component", v);
                continue;
            }
            dv = strcmp(key, "inertia") == 0        ? &o->pso.inertia
                 : strcmp(key, "cognitive") == 0    ? &o->pso.cognitive
                 : strcmp(key, "social") == 0       ? &o->pso.social
                 : strcmp(key, "max_velocity") == 0 ? &o->pso.max_velocity
                                                    : NULL;
            uv = strcmp(key, "informants") == 0 ? &o->pso.informants : NULL;
        } else if (strcmp(which, "ga") == 0) {
            dv = strcmp(key, "crossover_prob") == 0  ? &o->ga.crossover_prob
                 : strcmp(key, "eta_c") == 0         ? &o->ga.eta_c
                 : strcmp(key, "mutation_prob") == 0 ? &o->ga.mutation_prob
                 : strcmp(key, "eta_m") == 0         ? &o->ga.eta_m
                                                     : NULL;
            uv = strcmp(key, "tournament") == 0 ? &o->ga.tournament
                 : strcmp(key, "elites") == 0   ? &o->ga.elites
                                                : NULL;
        } else if (strcmp(which, "de") == 0) {
            dv = strcmp(key, "f_lower") == 0  ? &o->de.f_lower
                 : strcmp(key, "f_upper") == 0 ? &o->de.f_upper
                 : strcmp(key, "tau_f") == 0   ? &o->de.tau_f
                 : strcmp(key, "tau_cr") == 0  ? &o->de.tau_cr
                                               : NULL;
        } else {
            if (strcmp(key, "bipop") == 0) {
                if (pd_rd_bool(r, &o->cmaes.bipop))
                    return s_bad(err, errlen, PD_EPROTO, "cmaes.bipop is not a boolean");
                continue;
            }
            dv = strcmp(key, "sigma0") == 0           ? &o->cmaes.sigma0
                 : strcmp(key, "popsize_factor") == 0 ? &o->cmaes.popsize_factor
                 : strcmp(key, "tol_fun") == 0        ? &o->cmaes.tol_fun
                 : strcmp(key, "tol_x") == 0          ? &o->cmaes.tol_x
                                                      : NULL;
            uv = strcmp(key, "restarts") == 0 ? &o->cmaes.restarts : NULL;
        }
        if (dv) {
            if (pd_rd_double(r, dv))
                return s_bad(err, errlen, PD_EPROTO, "%s.%s is not a number", which, key);
        } else if (uv) {
            char full[64];
            snprintf(full, sizeof full, "%s.%s", which, key);
            if ((rc = s_read_u32(r, full, uv, err, errlen)))
                return rc;
        } else {
            return s_bad(err, errlen, PD_EPROTO, "unknown key '%s.%s'", which, key);
        }
    }
    return 0;
}

/* Over 100 lines on purpose (issue 17): a single linear decoder, one pass over the spec map
   with one branch per key (v, algo, dim, the bounds, ..., the per-algorithm maps), each a few
   lines that read into the same spec and share its reader, its error and the dim/version
   flags; split up, the key table would be scattered over helpers passing all of these. */
pd_optim_spec_t *pd_optim_spec_decode(const void *buf, size_t len, char *err, size_t errlen,
                                      int *rcp)
{
    int rc = 0;
    const char *why = NULL;
    pd_optim_spec_t *s = NULL;
    if (pd_mp_check(buf, len, PD_MAX_DEPTH, &why) != 0) {
        rc = s_bad(err, errlen, PD_EPROTO, "not one msgpack value (%s)", why ? why : "malformed");
        goto fail;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        rc = s_bad(err, errlen, PD_ENOMEM, "out of memory");
        goto fail;
    }
    pd_optim_opts_t *o = &s->opts;
    pd_optim_opts_init(o, PD_ALGO_PSO, 0);
    pd_rd_t r;
    pd_rd_init(&r, buf, len);
    uint32_t n;
    if (pd_rd_map(&r, &n)) {
        rc = s_bad(err, errlen, PD_EPROTO, "not a map");
        goto fail;
    }
    /* dim comes before the arrays that need it: the encoder writes it
       first; a reader of another order refuses the arrays */
    bool have_dim = false, have_version = false;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        char key[32];
        if (pd_rd_strcpy(&r, key, sizeof key)) {
            rc = s_bad(err, errlen, PD_EPROTO, "a key is not a short string");
            break;
        }
        uint64_t u = 0;
        if (strcmp(key, "v") == 0) {
            if (pd_rd_uint(&r, &u) || u != WIRE_VERSION)
                rc = s_bad(err, errlen, PD_EPROTO,
                           "version is not %d: client and node come from different releases",
                           WIRE_VERSION);
            have_version = true;
        } else if (strcmp(key, "algo") == 0) {
            char v[16];
            if (!(rc = s_read_name(&r, key, v, sizeof v, err, errlen)) &&
                pd_algo_parse(v, &o->algo))
                rc = s_bad(err, errlen, PD_EPROTO, "algo '%s' unknown: pso, ga, cmaes or de", v);
        } else if (strcmp(key, "dim") == 0) {
            if (pd_rd_uint(&r, &u) || u < 1 || u > 1000000)
                rc = s_bad(err, errlen, PD_EPROTO, "'dim' is not an integer from 1 to 1000000");
            o->dim = (size_t) u;
            have_dim = rc == 0;
        } else if (strcmp(key, "lower") == 0 || strcmp(key, "upper") == 0 ||
                   strcmp(key, "init_lower") == 0 || strcmp(key, "init_upper") == 0) {
            double **dst = key[0] == 'l'   ? &s->lower
                           : key[0] == 'u' ? &s->upper
                           : key[5] == 'l' ? &s->init_lower
                                           : &s->init_upper;
            if (!have_dim)
                rc = s_bad(err, errlen, PD_EPROTO, "'%s' comes before 'dim'", key);
            else if (*dst)
                rc = s_bad(err, errlen, PD_EPROTO, "'%s' given twice", key);
            else
                rc = s_read_doubles(&r, key, o->dim, dst, err, errlen);
        } else if (strcmp(key, "names") == 0) {
            uint32_t m;
            if (!have_dim || s->names || pd_rd_array(&r, &m) || m != o->dim) {
                rc = s_bad(err, errlen, PD_EPROTO, "'names' is not an array of dim names after 'dim'");
                break;
            }
            s->names = calloc(o->dim, sizeof *s->names);
            if (!s->names) {
                rc = s_bad(err, errlen, PD_ENOMEM, "out of memory");
                break;
            }
            for (size_t j = 0; j < o->dim && rc == 0; j++) {
                const char *str;
                uint32_t sl;
                if (pd_rd_nil(&r) == 0)
                    continue;
                if (pd_rd_str(&r, &str, &sl) || sl > 256) {
                    rc = s_bad(err, errlen, PD_EPROTO, "names[%zu] is not a string of at most 256 bytes", j);
                    break;
                }
                s->names[j] = strndup(str, sl);
                if (!s->names[j])
                    rc = s_bad(err, errlen, PD_ENOMEM, "out of memory");
            }
        } else if (strcmp(key, "popsize") == 0) {
            if (pd_rd_uint(&r, &u) || u > 10000000)
                rc = s_bad(err, errlen, PD_EPROTO, "'popsize' is not an integer up to 10000000");
            o->popsize = (size_t) u;
        } else if (strcmp(key, "iterations") == 0) {
            if (pd_rd_uint(&r, &o->iterations))
                rc = s_bad(err, errlen, PD_EPROTO, "'iterations' is not a count");
        } else if (strcmp(key, "budget") == 0) {
            if (pd_rd_uint(&r, &o->budget))
                rc = s_bad(err, errlen, PD_EPROTO, "'budget' is not a count");
        } else if (strcmp(key, "seed") == 0) {
            if (pd_rd_uint(&r, &o->seed))
                rc = s_bad(err, errlen, PD_EPROTO, "'seed' is not an integer");
        } else if (strcmp(key, "polish") == 0) {
            if (pd_rd_uint(&r, &o->polish))
                rc = s_bad(err, errlen, PD_EPROTO, "'polish' is not a count");
        } else if (strcmp(key, "target") == 0) {
            if (pd_rd_nil(&r) == 0)
                o->target = NAN;
            else if (pd_rd_double(&r, &o->target) || isnan(o->target))
                rc = s_bad(err, errlen, PD_EPROTO, "'target' is neither nil nor a number");
        } else if (strcmp(key, "maximize") == 0) {
            if (pd_rd_bool(&r, &o->maximize))
                rc = s_bad(err, errlen, PD_EPROTO, "'maximize' is not a boolean");
        } else if (strcmp(key, "islands") == 0) {
            rc = s_read_u32(&r, key, &o->islands, err, errlen);
        } else if (strcmp(key, "groups") == 0) {
            rc = s_read_u32(&r, key, &o->groups, err, errlen);
        } else if (strcmp(key, "migration_interval") == 0) {
            rc = s_read_u32(&r, key, &o->migration_interval, err, errlen);
        } else if (strcmp(key, "migration_count") == 0) {
            rc = s_read_u32(&r, key, &o->migration_count, err, errlen);
        } else if (strcmp(key, "topology") == 0) {
            char v[16];
            if (!(rc = s_read_name(&r, key, v, sizeof v, err, errlen)) &&
                pd_topology_parse(v, &o->topology))
                rc = s_bad(err, errlen, PD_EPROTO,
                           "topology '%s' unknown: none, ring, star, full or edges", v);
        } else if (strcmp(key, "edges") == 0) {
            uint32_t m;
            if (s->edges || pd_rd_array(&r, &m) || m % 2 || m == 0 || m > 2 * 1024 * 1024) {
                rc = s_bad(err, errlen, PD_EPROTO, "'edges' is not a flat array of (from, to) pairs");
                break;
            }
            s->edges = malloc(m * sizeof *s->edges);
            if (!s->edges) {
                rc = s_bad(err, errlen, PD_ENOMEM, "out of memory");
                break;
            }
            for (uint32_t k = 0; k < m && rc == 0; k++)
                rc = s_read_u32(&r, "edges[]", &s->edges[k], err, errlen);
            o->edge_count = m / 2;
        } else if (strcmp(key, "pso") == 0 || strcmp(key, "ga") == 0 ||
                   strcmp(key, "cmaes") == 0 || strcmp(key, "de") == 0) {
            rc = s_read_params(&r, key, o, err, errlen);
        } else {
            rc = s_bad(err, errlen, PD_EPROTO, "unknown key '%s'", key);
        }
    }
    if (rc)
        goto fail;
    if (!have_version || !have_dim || !s->lower || !s->upper) {
        rc = s_bad(err, errlen, PD_EPROTO, "'%s' missing",
                   !have_version ? "v" : !have_dim ? "dim" : !s->lower ? "lower" : "upper");
        goto fail;
    }
    o->lower = s->lower;
    o->upper = s->upper;
    o->init_lower = s->init_lower;
    o->init_upper = s->init_upper;
    o->names = (const char *const *) s->names;
    o->edges = s->edges;
    if ((rc = pd_optim_opts_check(o, err, errlen)) != 0)
        goto fail;
    return s;
fail:
    pd_optim_spec_destroy(&s);
    if (rcp)
        *rcp = rc;
    return NULL;
}

/* ---- migrants ------------------------------------------------------------ */

int pd_migrants_encode(uint32_t g, size_t k, size_t dim, const double *x, const double *f,
                       pd_buf_t *b)
{
    msgpack_packer pk;
    pd_packer_init(&pk, b);
    int e = msgpack_pack_array(&pk, 3);
    e |= msgpack_pack_uint32(&pk, g);
    e |= msgpack_pack_array(&pk, k);
    for (size_t i = 0; i < k; i++)
        e |= msgpack_pack_double(&pk, f[i]);
    e |= msgpack_pack_array(&pk, k * dim);
    for (size_t i = 0; i < k * dim; i++)
        e |= msgpack_pack_double(&pk, x[i]);
    if (b->failed)
        return PD_ETOOBIG;
    return e ? PD_ENOMEM : 0;
}

long pd_migrants_decode(const void *buf, size_t len, size_t dim, uint32_t groups, size_t cap,
                        uint32_t *g, double *x, double *f, char *err, size_t errlen)
{
    const char *why = NULL;
    if (pd_mp_check(buf, len, 4, &why) != 0) {
        snprintf(err, errlen, "migrants: not one msgpack value (%s)", why ? why : "malformed");
        return PD_EPROTO;
    }
    pd_rd_t r;
    pd_rd_init(&r, buf, len);
    uint32_t n = 0, k = 0, kd = 0, group = 0;
    if (pd_rd_array(&r, &n) || n != 3 || s_read_u32(&r, "group", &group, NULL, 0) ||
        pd_rd_array(&r, &k)) {
        snprintf(err, errlen, "migrants: not [group, [values], [points]]");
        return PD_EPROTO;
    }
    if (group >= groups) {
        snprintf(err, errlen, "migrants: group %u but the run has %u", group, groups);
        return PD_EPROTO;
    }
    if (k > cap) {
        snprintf(err, errlen, "migrants: %u sent, at most %zu expected", k, cap);
        return PD_EPROTO;
    }
    for (uint32_t i = 0; i < k; i++)
        if (pd_rd_double(&r, &f[i]) || isnan(f[i])) {
            snprintf(err, errlen, "migrants: value %u is not a number", i);
            return PD_EPROTO;
        }
    if (pd_rd_array(&r, &kd) || (size_t) kd != (size_t) k * dim) {
        snprintf(err, errlen, "migrants: %u values but not %u x %zu coordinates", k, k, dim);
        return PD_EPROTO;
    }
    for (size_t i = 0; i < (size_t) k * dim; i++)
        if (pd_rd_double(&r, &x[i]) || !isfinite(x[i])) {
            snprintf(err, errlen, "migrants: coordinate %zu is not a finite number", i);
            return PD_EPROTO;
        }
    *g = group;
    return (long) k;
}
