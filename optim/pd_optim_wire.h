/*  pd_optim_wire: optimisation options and migrants as msgpack, for the
    cluster form of the optimisers.

    A distributed run ships its pd_optim_opts_t to every node (the node's
    argument) and moves migrants between nodes along the tubes of the
    migration graph. Both travel as msgpack so that a heterogeneous cluster
    reads them alike, and both are decoded strictly: a malformed or
    out-of-range message is refused with a sentence, never half-applied.

        pd_buf_t b; pd_buf_init(&b);
        pd_optim_opts_encode(&opts, &b);                    // client side
        ...
        pd_optim_spec_t *s = pd_optim_spec_decode(b.data, b.len, err, sizeof err, &rc);
        const pd_optim_opts_t *o = pd_optim_spec_opts(s);  // node side: same options
        pd_island_t *is = pd_island_new(o, node_index, &rc);
*/
#ifndef PD_OPTIM_WIRE_H
#define PD_OPTIM_WIRE_H

#include "pd_codec.h"
#include "playdoh.h"

#include <stddef.h>
#include <stdint.h>

/* Appends o as one msgpack map to b: every field but the progress callback
   and its pointer. Returns 0, PD_EINVAL (o fails pd_optim_opts_check: the
   reason in err) or a pd_buf error. */
int pd_optim_opts_encode(const pd_optim_opts_t *o, pd_buf_t *b, char *err, size_t errlen);

/* Decoded options with the arrays they point to. */
typedef struct pd_optim_spec pd_optim_spec_t;

/* Decodes what pd_optim_opts_encode wrote and checks it with
   pd_optim_opts_check. Returns the spec (destroy it), or NULL with *rc set
   (PD_EPROTO malformed, PD_EINVAL out of range, PD_ENOMEM) and a sentence
   in err. */
pd_optim_spec_t *pd_optim_spec_decode(const void *buf, size_t len, char *err, size_t errlen,
                                      int *rc);
/* The options; borrowed until the spec is destroyed. */
const pd_optim_opts_t *pd_optim_spec_opts(const pd_optim_spec_t *s);
/* Frees s and sets *s to NULL; safe twice. */
void pd_optim_spec_destroy(pd_optim_spec_t **s);

/* Appends one batch of k migrants of group g (x: k x dim, f: k values) to b
   as [g, [f...], [x...]]. Returns 0 or a pd_buf error. */
int pd_migrants_encode(uint32_t g, size_t k, size_t dim, const double *x, const double *f,
                       pd_buf_t *b);
/* Decodes a batch for a run of dim parameters and `groups` groups into x
   (cap x dim) and f (cap). Returns the number of migrants, or PD_EPROTO
   with a sentence in err (malformed, a group >= groups, more than cap
   migrants, a NaN value or a coordinate that is not finite). */
long pd_migrants_decode(const void *buf, size_t len, size_t dim, uint32_t groups, size_t cap,
                        uint32_t *g, double *x, double *f, char *err, size_t errlen);

#endif
