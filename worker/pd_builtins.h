/*  pd_builtins: the worker's table of built-in task modules, node functions
    compiled into playdoh-worker (common/pd_builtin.h).

    Two kinds: node functions of the reserved module "builtin" (module kind
    "b"), run like a module's function; and node functions that work over
    the task's own module, which a task of the user's module names as its
    function (the optimisers' island node). The node process
    (pd_nodeproc.c) asks this table; the table is the one place where the
    worker names a module of another folder, and the arrow points down: the
    modules know nothing of the worker.
*/
#ifndef PD_BUILTINS_H
#define PD_BUILTINS_H

#include "pd_builtin.h"

/* The node function of the reserved module "builtin" named fn, or NULL. */
int (*pd_builtins_node(const char *fn))(pd_task_t *);

/* The built-in node function over the task's module that a task names as
   fn, or NULL (the function is then the module's own). The entry is
   static. */
const pd_builtin_node_t *pd_builtins_module_node(const char *fn);

#endif
