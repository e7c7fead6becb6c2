/*  pd_builtin: the interface between the worker and the task modules
    compiled into it (built-in modules), such as the optimisers' island node
    (optim/pd_optim_node.c).

    A built-in module is written like any task module: against the task API
    of playdoh_task.h, which the worker implements, from below. What a user's
    module gets from being a separate shared object it gets here through a
    pd_node_env_t instead: its own module's functions (a built-in module may
    work over the task's user module, as the island node evaluates the
    user's fitness) and a way to report progress.

    Layering: this header sits under both sides. The module (optim/) includes
    it and exports one pd_builtin_node_t; the worker's table of built-in
    modules (worker/pd_builtins.c, the one place where worker/ names optim/)
    lists it; worker/pd_nodeproc.c runs it. The module never includes a
    worker header, so no arrow points back up.
*/
#ifndef PD_BUILTIN_H
#define PD_BUILTIN_H

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

/* One node function of a built-in module that works over the task's own
   module: a task of the user's module names it as its function. */
typedef struct {
    /* The function name a task gives: not a C identifier, so that no
       function of the user's module hides it. */
    const char *name;
    /* Runs one node; returns 0, or -1 after pd_task_fail. */
    int (*run)(pd_task_t *t, const pd_node_env_t *env);
} pd_builtin_node_t;

#endif
