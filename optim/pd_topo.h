/*  pd_topo: the migration graph between islands.

    Built from a topology kind (ring, star, full, none) or a list of
    (from, to) edges; answers, for each island, who sends to it (in) and
    whom it sends to (out), each list sorted and without duplicates. The
    in-process driver migrates along in-lists; a synchronous task declares
    one tube per edge.
*/
#ifndef PD_TOPO_H
#define PD_TOPO_H

#include "playdoh.h"

#include <stddef.h>
#include <stdint.h>

typedef struct pd_topo pd_topo_t;

/* Checks a topology: PD_EINVAL with a sentence in err (errlen bytes) for an
   edge naming an island >= islands, a self-loop, or EDGES with no edges;
   else 0. */
int pd_topo_check(pd_topology_t kind, uint32_t islands, const uint32_t *edges, size_t edge_count,
                  char *err, size_t errlen);
/* Builds a checked topology. Returns it (the caller destroys it) or NULL
   when out of memory. */
pd_topo_t *pd_topo_new(pd_topology_t kind, uint32_t islands, const uint32_t *edges,
                       size_t edge_count);
/* Frees t and sets *t to NULL; safe twice. */
void pd_topo_destroy(pd_topo_t **t);
/* Islands that send to island i (borrowed; *from may be NULL when 0). */
size_t pd_topo_in(const pd_topo_t *t, uint32_t i, const uint32_t **from);
/* Islands that island i sends to (borrowed). */
size_t pd_topo_out(const pd_topo_t *t, uint32_t i, const uint32_t **to);
/* Edges in all. */
size_t pd_topo_edges(const pd_topo_t *t);

#endif
