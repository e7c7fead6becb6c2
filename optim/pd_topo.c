/*  pd_topo: migration graphs as adjacency lists (see pd_topo.h).

    Edges are collected into a dense islands x islands bit set first (which
    removes duplicates and sorts for free), then laid out as in- and
    out-lists. Islands are few (the check caps them at PD_OPTIM_MAX_ISLANDS),
    so the dense set stays small.
*/
#include "pd_topo.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pd_topo {
    uint32_t islands;   /* nodes */
    size_t edges;       /* distinct edges */
    size_t *in_start;   /* in-list of island i: in[in_start[i] .. in_start[i+1]) */
    uint32_t *in;       /* senders, grouped by receiver */
    size_t *out_start;  /* out-list of island i: out[out_start[i] .. out_start[i+1]) */
    uint32_t *out;      /* receivers, grouped by sender */
};

int pd_topo_check(pd_topology_t kind, uint32_t islands, const uint32_t *edges, size_t edge_count,
                  char *err, size_t errlen)
{
    if (kind != PD_TOPO_EDGES)
        return 0;
    if (edge_count == 0 || !edges) {
        snprintf(err, errlen, "topology: edges chosen but none given: set edges and edge_count, "
                              "or pick ring, star, full or none");
        return PD_EINVAL;
    }
    for (size_t e = 0; e < edge_count; e++) {
        uint32_t a = edges[2 * e], b = edges[2 * e + 1];
        if (a >= islands || b >= islands) {
            snprintf(err, errlen,
                     "topology: edge %zu (%u -> %u) names island %u but there are %u islands "
                     "(0 to %u)",
                     e, a, b, a >= islands ? a : b, islands, islands - 1);
            return PD_EINVAL;
        }
        if (a == b) {
            snprintf(err, errlen, "topology: edge %zu is a self-loop (%u -> %u): remove it", e, a,
                     b);
            return PD_EINVAL;
        }
    }
    return 0;
}

void pd_topo_destroy(pd_topo_t **tp)
{
    if (!tp || !*tp)
        return;
    pd_topo_t *t = *tp;
    free(t->in_start);
    free(t->in);
    free(t->out_start);
    free(t->out);
    free(t);
    *tp = NULL;
}

pd_topo_t *pd_topo_new(pd_topology_t kind, uint32_t islands, const uint32_t *edges,
                       size_t edge_count)
{
    assert(islands > 0);
    assert(pd_topo_check(kind, islands, edges, edge_count, NULL, 0) == 0);
    size_t n = islands;
    unsigned char *adj = calloc(n * n, 1); /* adj[a*n + b]: a sends to b */
    pd_topo_t *t = calloc(1, sizeof *t);
    if (!adj || !t)
        goto fail;
    t->islands = islands;
    for (size_t a = 0; a < n; a++)
        for (size_t b = 0; b < n; b++) {
            if (a == b)
                continue;
            bool on = false;
            switch (kind) {
            case PD_TOPO_RING:
                on = b == (a + 1) % n;
                break;
            case PD_TOPO_STAR:
                on = a == 0 || b == 0;
                break;
            case PD_TOPO_FULL:
                on = true;
                break;
            case PD_TOPO_NONE:
            case PD_TOPO_EDGES:
                break;
            }
            adj[a * n + b] = on;
        }
    if (kind == PD_TOPO_EDGES)
        for (size_t e = 0; e < edge_count; e++)
            adj[(size_t) edges[2 * e] * n + edges[2 * e + 1]] = 1;
    for (size_t i = 0; i < n * n; i++)
        t->edges += adj[i];
    t->in_start = calloc(n + 1, sizeof *t->in_start);
    t->out_start = calloc(n + 1, sizeof *t->out_start);
    t->in = malloc((t->edges ? t->edges : 1) * sizeof *t->in);
    t->out = malloc((t->edges ? t->edges : 1) * sizeof *t->out);
    if (!t->in_start || !t->out_start || !t->in || !t->out)
        goto fail;
    size_t k = 0;
    for (size_t b = 0; b < n; b++) {
        t->in_start[b] = k;
        for (size_t a = 0; a < n; a++)
            if (adj[a * n + b])
                t->in[k++] = (uint32_t) a;
    }
    t->in_start[n] = k;
    k = 0;
    for (size_t a = 0; a < n; a++) {
        t->out_start[a] = k;
        for (size_t b = 0; b < n; b++)
            if (adj[a * n + b])
                t->out[k++] = (uint32_t) b;
    }
    t->out_start[n] = k;
    free(adj);
    return t;
fail:
    free(adj);
    pd_topo_destroy(&t);
    return NULL;
}

size_t pd_topo_in(const pd_topo_t *t, uint32_t i, const uint32_t **from)
{
    assert(t && i < t->islands);
    *from = t->in + t->in_start[i];
    return t->in_start[i + 1] - t->in_start[i];
}

size_t pd_topo_out(const pd_topo_t *t, uint32_t i, const uint32_t **to)
{
    assert(t && i < t->islands);
    *to = t->out + t->out_start[i];
    return t->out_start[i + 1] - t->out_start[i];
}

size_t pd_topo_edges(const pd_topo_t *t)
{
    return t->edges;
}
