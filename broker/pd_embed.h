/*  pd_embed: the embedded local cluster's worker, as playdoh-broker's
    command line (main.c) sees it: a worker with N slots in a thread of the
    broker, connected over inproc (`--worker-cpus N`, which
    `playdoh-submit --local` and pd_local_start ask for).

    Declared here, where it is used, and implemented one floor up, in
    local/pd_embedded.c, which depends on both the broker and the worker:
    so that broker/ needs nothing of worker/ (neither its headers nor its
    sources). playdoh-broker links local's library (local/meson.build); the
    broker's library (broker_lib_src, which the unit tests link) does not
    use these.
*/
#ifndef PD_EMBED_H
#define PD_EMBED_H

#include "pd_broker.h"

#include <stdbool.h>

typedef struct pd_embed pd_embed_t;

/* The embedded worker's slot and node processes are playdoh-broker exec'ed
   again with their own arguments. When argv is one of theirs, runs it and
   returns true with the exit status in *rc; else returns false. */
bool pd_embed_child_main(int argc, char **argv, int *rc);

/* Starts a worker of `cpus` slots in a thread, connected to b over inproc,
   with its module cache in cache_dir (NULL: the default directory). It
   offers every GPU the CUDA driver shows, like playdoh-worker. Returns the
   worker (the caller's, to pd_embed_stop), or NULL with a PD_E* code in
   *err. */
pd_embed_t *pd_embed_start(pd_broker_t *b, int cpus, const char *cache_dir, int *err);

/* Stops the worker, waits for its thread, frees it and sets *e to NULL.
   Safe with *e NULL. */
void pd_embed_stop(pd_embed_t **e);

#endif
