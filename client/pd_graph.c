/*  pd_graph: the graph of named tubes of a synchronous task (playdoh.h),
    its helpers (ring, chain, star, all-to-all) and the graph-file parser
    used by `playdoh-submit task --graph FILE`.

    Edges are appended as given (a helper over 1,000 nodes adds 1,000 edges
    in O(1) each) and sorted and de-duplicated only when someone needs the
    distinct set (pd_graph_edges, packing for the broker), so that adding
    an edge twice is harmless without a search per edge.

    The text format, one tube per line (docs/sync.md):

        # comment
        right: ring
        left:  ring-back
        up:    0->1, 1->2, star-out 0

    or one JSON object: {"right": "ring", "up": ["star-out 0", [1, 2]]}.
*/
#include "playdoh.h"
#include "pd_error_int.h"

#include "pd_client_int.h"
#include "pd_codec.h"
#include "pd_json.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_NODES 4096
#define S_MAX_TUBES 256
#define S_MAX_EDGES 1000000u
#define S_MAX_NAME 63
#define S_MAX_FILE (16u << 20)

struct pd_graph {
    int n;                /* nodes */
    char **names;         /* tube names (owned) */
    int ntubes;           /* entries in names */
    uint32_t (*e)[3];     /* edges (tube, src, dst), maybe repeated (owned) */
    size_t ne;            /* entries in e */
    size_t cap;           /* capacity of e */
    bool tidy;            /* e is sorted and without repeats */
};

pd_graph_t *pd_graph_new(int n)
{
    if (n < 1 || n > S_MAX_NODES)
        return NULL;
    pd_graph_t *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->n = n;
    g->tidy = true;
    return g;
}

void pd_graph_destroy(pd_graph_t **gp)
{
    if (!gp || !*gp)
        return;
    pd_graph_t *g = *gp;
    for (int i = 0; i < g->ntubes; i++)
        free(g->names[i]);
    free(g->names);
    free(g->e);
    free(g);
    *gp = NULL;
}

int pd_graph_nodes(const pd_graph_t *g) { return g->n; }
int pd_graph_tubes(const pd_graph_t *g) { return g->ntubes; }

static int s_cmp_edge(const void *a, const void *b)
{
    const uint32_t *x = a, *y = b;
    for (int k = 0; k < 3; k++)
        if (x[k] != y[k])
            return x[k] < y[k] ? -1 : 1;
    return 0;
}

static void s_tidy(pd_graph_t *g)
{
    if (g->tidy)
        return;
    qsort(g->e, g->ne, sizeof *g->e, s_cmp_edge);
    size_t k = 0;
    for (size_t i = 0; i < g->ne; i++)
        if (k == 0 || s_cmp_edge(g->e[i], g->e[k - 1]) != 0)
            memcpy(g->e[k++], g->e[i], sizeof *g->e);
    g->ne = k;
    g->tidy = true;
}

size_t pd_graph_edges(const pd_graph_t *g)
{
    s_tidy((pd_graph_t *) g); /* a cache: the set of edges does not change */
    return g->ne;
}

static bool s_name_ok(const char *name)
{
    size_t len = strlen(name);
    return len >= 1 && len <= S_MAX_NAME;
}

/* The index of tube name, created when new; PD_EINVAL (a bad name, too
   many tubes) or PD_ENOMEM when it cannot be. */
static int s_tube(pd_graph_t *g, const char *name)
{
    if (!s_name_ok(name))
        return PD_EINVAL;
    for (int i = 0; i < g->ntubes; i++)
        if (strcmp(g->names[i], name) == 0)
            return i;
    if (g->ntubes == S_MAX_TUBES)
        return PD_EINVAL;
    char **a = realloc(g->names, (size_t) (g->ntubes + 1) * sizeof *a);
    if (!a)
        return PD_ENOMEM;
    g->names = a;
    if (!(g->names[g->ntubes] = strdup(name)))
        return PD_ENOMEM;
    return g->ntubes++;
}

int pd_graph_tube(pd_graph_t *g, const char *tube) { return s_tube(g, tube) < 0 ? PD_EINVAL : 0; }

int pd_graph_edge(pd_graph_t *g, const char *tube, int src, int dst)
{
    if (src < 0 || dst < 0 || src >= g->n || dst >= g->n || src == dst)
        return PD_EINVAL;
    int t = s_tube(g, tube);
    if (t < 0)
        return PD_EINVAL;
    if (g->ne == S_MAX_EDGES) {
        s_tidy(g);
        if (g->ne == S_MAX_EDGES)
            return PD_EINVAL;
    }
    if (g->ne == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        uint32_t(*e)[3] = realloc(g->e, cap * sizeof *e);
        if (!e)
            return PD_ENOMEM;
        g->e = e;
        g->cap = cap;
    }
    g->e[g->ne][0] = (uint32_t) t;
    g->e[g->ne][1] = (uint32_t) src;
    g->e[g->ne][2] = (uint32_t) dst;
    g->ne++;
    g->tidy = false;
    return 0;
}

/* Adds i -> (i + step) for every node i, wrapping or not. */
static int s_shift(pd_graph_t *g, const char *tube, int step, bool wrap)
{
    int rc = pd_graph_tube(g, tube);
    for (int i = 0; i < g->n && rc == 0; i++) {
        int j = i + step;
        if (wrap)
            j = (j % g->n + g->n) % g->n;
        else if (j < 0 || j >= g->n)
            continue;
        if (j != i)
            rc = pd_graph_edge(g, tube, i, j);
    }
    return rc;
}

int pd_graph_ring(pd_graph_t *g, const char *tube) { return s_shift(g, tube, 1, true); }
int pd_graph_ring_back(pd_graph_t *g, const char *tube) { return s_shift(g, tube, -1, true); }
int pd_graph_chain(pd_graph_t *g, const char *tube) { return s_shift(g, tube, 1, false); }
int pd_graph_chain_back(pd_graph_t *g, const char *tube) { return s_shift(g, tube, -1, false); }

static int s_star(pd_graph_t *g, const char *tube, int hub, bool out)
{
    if (hub < 0 || hub >= g->n)
        return PD_EINVAL;
    int rc = pd_graph_tube(g, tube);
    for (int i = 0; i < g->n && rc == 0; i++)
        if (i != hub)
            rc = out ? pd_graph_edge(g, tube, hub, i) : pd_graph_edge(g, tube, i, hub);
    return rc;
}

int pd_graph_star_out(pd_graph_t *g, const char *tube, int hub) { return s_star(g, tube, hub, true); }
int pd_graph_star_in(pd_graph_t *g, const char *tube, int hub) { return s_star(g, tube, hub, false); }

int pd_graph_all_to_all(pd_graph_t *g, const char *tube)
{
    if ((size_t) g->n * (size_t) (g->n - 1) > S_MAX_EDGES)
        return PD_EINVAL;
    int rc = pd_graph_tube(g, tube);
    for (int i = 0; i < g->n && rc == 0; i++)
        for (int j = 0; j < g->n && rc == 0; j++)
            if (i != j)
                rc = pd_graph_edge(g, tube, i, j);
    return rc;
}

/* ---- packing for the broker ------------------------------------------- */

int pd_graph_pack_tubes(msgpack_packer *pk, const void *ctx)
{
    const pd_graph_t *g = ctx;
    int rc = msgpack_pack_array(pk, (uint32_t) g->ntubes);
    for (int i = 0; i < g->ntubes && !rc; i++)
        rc = pd_pack_cstr(pk, g->names[i]);
    return rc;
}

int pd_graph_pack_edges(msgpack_packer *pk, const void *ctx)
{
    pd_graph_t *g = (pd_graph_t *) ctx;
    s_tidy(g); /* a cache: the set of edges does not change */
    int rc = msgpack_pack_array(pk, (uint32_t) g->ne);
    for (size_t i = 0; i < g->ne && !rc; i++)
        rc = msgpack_pack_array(pk, 3) || msgpack_pack_uint32(pk, g->e[i][0]) ||
             msgpack_pack_uint32(pk, g->e[i][1]) || msgpack_pack_uint32(pk, g->e[i][2]);
    return rc;
}

/* ---- parsing ------------------------------------------------------------ */

static const char *s_specs = "ring, ring-back, chain, chain-back, all-to-all, star-out HUB, "
                             "star-in HUB, SRC->DST or none";

/* Reads a node number at *p (skipping blanks); returns 0 or PD_EINVAL. */
static int s_node(const char **p, const char *end, long *v)
{
    while (*p < end && (**p == ' ' || **p == '\t'))
        (*p)++;
    if (*p == end || !isdigit((unsigned char) **p))
        return PD_EINVAL;
    long x = 0;
    while (*p < end && isdigit((unsigned char) **p)) {
        x = x * 10 + (**p - '0');
        if (x > 1000000)
            return PD_EINVAL;
        (*p)++;
    }
    *v = x;
    return 0;
}

/* Applies one spec (s[0..len), trimmed) to tube; `where` names its place
   for messages ("line 3" or "tube 'x'"). */
static int s_spec(pd_graph_t *g, const char *tube, const char *s, size_t len, const char *where,
                  char *err, size_t cap)
{
    while (len && isspace((unsigned char) *s)) {
        s++;
        len--;
    }
    while (len && isspace((unsigned char) s[len - 1]))
        len--;
    /* The first word, dashes included: ring-back, star-out, all-to-all. */
    char word[32];
    size_t wl = 0;
    while (wl < len && wl + 1 < sizeof word && !isspace((unsigned char) s[wl])) {
        word[wl] = s[wl];
        wl++;
    }
    word[wl] = 0;
    int rc = -1;
    const char *p = s + wl, *end = s + len;
    long a, b;
    if (strcmp(word, "ring") == 0 && p == end)
        rc = pd_graph_ring(g, tube);
    else if (strcmp(word, "ring-back") == 0 && p == end)
        rc = pd_graph_ring_back(g, tube);
    else if (strcmp(word, "chain") == 0 && p == end)
        rc = pd_graph_chain(g, tube);
    else if (strcmp(word, "chain-back") == 0 && p == end)
        rc = pd_graph_chain_back(g, tube);
    else if (strcmp(word, "none") == 0 && p == end)
        rc = pd_graph_tube(g, tube);
    else if (strcmp(word, "all-to-all") == 0 && p == end) {
        rc = pd_graph_all_to_all(g, tube);
        if (rc == PD_EINVAL)
            return pd_why(err, cap, PD_EINVAL,
                          "%s: all-to-all over %d nodes makes more than %u edges",
                          where, g->n, S_MAX_EDGES);
    } else if ((strcmp(word, "star-out") == 0 || strcmp(word, "star-in") == 0)) {
        if (s_node(&p, end, &a) || p != end)
            return pd_why(err, cap, PD_EINVAL,
                          "%s: '%.*s' needs a hub node number: %s 0", where, (int) len,
                          s, word);
        if (a >= g->n)
            return pd_why(err, cap, PD_EINVAL,
                          "%s: hub %ld is out of range (the task has %d nodes, 0 .. "
                          "%d)", where, a, g->n, g->n - 1);
        rc = word[5] == 'o' ? pd_graph_star_out(g, tube, (int) a)
                            : pd_graph_star_in(g, tube, (int) a);
    } else {
        p = s;
        if (s_node(&p, end, &a) == 0) {
            while (p < end && (*p == ' ' || *p == '\t'))
                p++;
            if (end - p >= 2 && p[0] == '-' && p[1] == '>') {
                p += 2;
                if (s_node(&p, end, &b) == 0 && p == end) {
                    if (a >= g->n || b >= g->n)
                        return pd_why(err, cap, PD_EINVAL,
                                      "%s: edge %ld->%ld: node %ld is out of range "
                                      "(the task has %d nodes, 0 .. %d)", where, a, b,
                                      a >= g->n ? a : b, g->n, g->n - 1);
                    if (a == b)
                        return pd_why(err, cap, PD_EINVAL,
                                      "%s: edge %ld->%ld goes from a node to itself",
                                      where, a, b);
                    rc = pd_graph_edge(g, tube, (int) a, (int) b);
                }
            }
        }
        if (rc == -1)
            return pd_why(err, cap, PD_EINVAL,
                          "%s: '%.*s' is not a graph spec (%s)", where, (int) len, s,
                          s_specs);
    }
    if (rc == PD_ENOMEM)
        return pd_why(err, cap, PD_EINVAL, "out of memory");
    if (rc)
        return pd_why(err, cap, PD_EINVAL,
                      "%s: tube '%s' cannot take more (at most %d tubes and %u edges)",
                      where, tube, S_MAX_TUBES, S_MAX_EDGES);
    return 0;
}

static bool s_name_char(char c)
{
    return isalnum((unsigned char) c) || c == '_' || c == '-' || c == '.';
}

static int s_parse_text(pd_graph_t *g, const char *text, size_t len, char *err, size_t cap)
{
    size_t lineno = 0, pos = 0;
    while (pos < len) {
        lineno++;
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t) (nl - line) : len - pos;
        pos += ll + (nl ? 1 : 0);
        const char *hash = memchr(line, '#', ll);
        if (hash)
            ll = (size_t) (hash - line);
        size_t s = 0;
        while (s < ll && isspace((unsigned char) line[s]))
            s++;
        if (s == ll)
            continue;
        char where[32];
        snprintf(where, sizeof where, "line %zu", lineno);
        size_t t = s;
        while (t < ll && s_name_char(line[t]))
            t++;
        size_t nlen = t - s;
        while (t < ll && (line[t] == ' ' || line[t] == '\t'))
            t++;
        if (nlen == 0 || t == ll || line[t] != ':')
            return pd_why(err, cap, PD_EINVAL,
                          "%s, column %zu: expected 'TUBE: SPEC, ...' (a tube name of "
                          "letters, digits, '_', '-' or '.', then ':')", where, t + 1);
        if (nlen > S_MAX_NAME)
            return pd_why(err, cap, PD_EINVAL, "%s: the tube name is longer than %d bytes", where,
                          S_MAX_NAME);
        char tube[S_MAX_NAME + 1];
        memcpy(tube, line + s, nlen);
        tube[nlen] = 0;
        const char *p = line + t + 1, *end = line + ll;
        while (p <= end) {
            const char *comma = memchr(p, ',', (size_t) (end - p));
            const char *stop = comma ? comma : end;
            const char *q = p;
            while (q < stop && isspace((unsigned char) *q))
                q++;
            if (q == stop)
                return pd_why(err, cap, PD_EINVAL,
                              "%s: an empty spec for tube '%s' (%s)", where, tube,
                              s_specs);
            int rc = s_spec(g, tube, q, (size_t) (stop - q), where, err, cap);
            if (rc)
                return rc;
            if (!comma)
                break;
            p = comma + 1;
        }
    }
    return 0;
}

/* One JSON array element or value: a spec string or [src, dst]. */
static int s_json_item(pd_graph_t *g, const char *tube, pd_rd_t *r, const char *where, char *err,
                       size_t cap)
{
    pd_mp_kind_t k = pd_rd_peek(r);
    if (k == PD_MP_STR) {
        const char *s;
        uint32_t len;
        pd_rd_str(r, &s, &len);
        return s_spec(g, tube, s, len, where, err, cap);
    }
    uint32_t two;
    uint64_t a, b;
    if (k == PD_MP_ARRAY && pd_rd_array(r, &two) == 0 && two == 2 && pd_rd_uint(r, &a) == 0
        && pd_rd_uint(r, &b) == 0) {
        if (a >= (uint64_t) g->n || b >= (uint64_t) g->n || a == b)
            return pd_why(err, cap, PD_EINVAL,
                          "%s: edge [%llu, %llu] is out of range or a self-edge (the "
                          "task has %d nodes, 0 .. %d)", where, (unsigned long long) a,
                          (unsigned long long) b, g->n, g->n - 1);
        int rc = pd_graph_edge(g, tube, (int) a, (int) b);
        return rc ? pd_why(err, cap, PD_EINVAL, "%s: too many tubes or edges", where) : 0;
    }
    return pd_why(err, cap, PD_EINVAL,
                  "%s: expected a spec string (%s) or a [SRC, DST] pair", where,
                  s_specs);
}

static int s_parse_json(pd_graph_t *g, const char *text, size_t len, char *err, size_t cap)
{
    pd_buf_t b;
    pd_buf_init(&b);
    char jerr[200];
    if (pd_json_to_msgpack(text, len, &b, jerr, sizeof jerr)) {
        pd_buf_free(&b);
        return pd_why(err, cap, PD_EINVAL, "graph JSON: %s", jerr);
    }
    pd_rd_t r;
    pd_rd_init(&r, b.data, b.len);
    uint32_t n;
    int rc = 0;
    if (pd_rd_map(&r, &n)) {
        rc = pd_why(err, cap, PD_EINVAL, "graph JSON: expected an object {\"TUBE\": SPEC, ...}");
        goto out;
    }
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        char tube[S_MAX_NAME + 1];
        if (pd_rd_strcpy(&r, tube, sizeof tube) || !tube[0]) {
            rc = pd_why(err, cap, PD_EINVAL,
                        "graph JSON: key %u must be a tube name of 1 to %d bytes", i,
                        S_MAX_NAME);
            break;
        }
        char where[96];
        snprintf(where, sizeof where, "graph JSON, tube '%s'", tube);
        if (pd_rd_peek(&r) == PD_MP_ARRAY) {
            pd_rd_t probe = r;
            uint32_t m;
            pd_rd_array(&probe, &m);
            /* [SRC, DST] alone, or a list of items */
            pd_mp_kind_t first = pd_rd_peek(&probe);
            if (m == 2 && first == PD_MP_UINT) {
                rc = s_json_item(g, tube, &r, where, err, cap);
            } else {
                pd_rd_array(&r, &m);
                if (m == 0)
                    rc = pd_graph_tube(g, tube);
                for (uint32_t k = 0; k < m && rc == 0; k++)
                    rc = s_json_item(g, tube, &r, where, err, cap);
            }
        } else {
            rc = s_json_item(g, tube, &r, where, err, cap);
        }
    }
out:
    pd_buf_free(&b);
    return rc;
}

int pd_graph_parse(pd_graph_t *g, const char *text, size_t len, char *err, size_t errcap)
{
    if (err && errcap)
        err[0] = 0;
    size_t s = 0;
    while (s < len && isspace((unsigned char) text[s]))
        s++;
    if (s < len && text[s] == '{')
        return s_parse_json(g, text, len, err, errcap);
    return s_parse_text(g, text, len, err, errcap);
}

int pd_graph_load(pd_graph_t *g, const char *path, char *err, size_t errcap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (err && errcap)
            snprintf(err, errcap, "cannot read graph %s: %s", path, strerror(errno));
        return PD_EIO;
    }
    char *buf = malloc(S_MAX_FILE);
    size_t n = buf ? fread(buf, 1, S_MAX_FILE, f) : 0;
    bool big = buf && n == S_MAX_FILE;
    fclose(f);
    if (!buf || big) {
        free(buf);
        if (err && errcap)
            snprintf(err, errcap, "graph %s: %s", path,
                     big ? "larger than 16 MiB" : "out of memory");
        return big ? PD_EINVAL : PD_ENOMEM;
    }
    char inner[400];
    int rc = pd_graph_parse(g, buf, n, inner, sizeof inner);
    free(buf);
    if (rc && err && errcap)
        snprintf(err, errcap, "graph %s: %s", path, inner);
    return rc;
}
