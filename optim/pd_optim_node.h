/*  pd_optim_node: the island node of a cluster optimisation, the worker's
    built-in node function PD_OPTIM_NODE_FN (pd_optim_task.h).

    Linked into the worker's node processes (pd_nodeproc), not into the
    client library: it calls the task API of playdoh_task.h (pd_push,
    pd_pop_from, ...) that the worker implements. The node process hands it
    what only the worker can do through a pd_node_env_t: find a function in
    the task's module, and send progress towards the client.
*/
#ifndef PD_OPTIM_NODE_H
#define PD_OPTIM_NODE_H

#include "playdoh_task.h"

#include <stddef.h>

/* What a built-in node function that works over the task's module gets
   from its node process. */
typedef struct {
    /* Finds function fn in the task's module, compiling and loading it on
       first use, and running the module's init function (pd_init) once,
       with shared (shared_len bytes, or NULL) as its pd_task_shared().
       Returns its address, or NULL with *code (PD_ENOFUNC, PD_ECOMPILE,
       PD_ETASK ...) and a sentence in msg (msglen bytes). */
    void *(*find)(void *ctx, const char *fn, const void *shared, size_t shared_len, int *code,
                  char *msg, size_t msglen);
    /* Sends len bytes (one msgpack value) as the task's latest progress,
       which clients read with pd_optim_status / task_progress. Returns 0 or
       -1 when the worker is gone. */
    int (*progress)(void *ctx, const void *data, size_t len);
    void *ctx;
} pd_node_env_t;

/* Runs one island of the optimisation described by the node's argument
   (pd_optim_task_arg) and writes the island's part of the result. Returns 0
   (the run's own error, a fitness failure or NaN, is in the result of node
   0), or -1 after pd_task_fail (bad argument, no such fitness, a tube
   failed). */
int pd_optim_node(pd_task_t *t, const pd_node_env_t *env);

#endif
