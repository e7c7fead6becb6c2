/*  pd_optim_node: the island node of a cluster optimisation, a built-in
    task module (common/pd_builtin.h) whose node function is PD_OPTIM_NODE_FN
    (pd_optim_task.h).

    Linked into the worker's programs, not into the client library: like
    any task module it calls the task API of playdoh_task.h (pd_push,
    pd_pop_from, ...) that the worker implements, and it includes nothing of
    the worker's. The worker lists pd_optim_node_builtin in its table of built-in
    modules (worker/pd_builtins.c) and hands it, through a pd_node_env_t,
    what only the worker can do: find a function in the task's module, and
    send progress towards the client.
*/
#ifndef PD_OPTIM_NODE_H
#define PD_OPTIM_NODE_H

#include "pd_builtin.h"

/* Runs one island of the optimisation described by the node's argument
   (pd_optim_task_arg) and writes the island's part of the result. Returns 0
   (the run's own error, a fitness failure or NaN, is in the result of node
   0), or -1 after pd_task_fail (bad argument, no such fitness, a tube
   failed). */
int pd_optim_node(pd_task_t *t, const pd_node_env_t *env);

/* The island node as the worker's table of built-in modules lists it:
   {PD_OPTIM_NODE_FN, pd_optim_node}. */
extern const pd_builtin_node_t pd_optim_node_builtin;

#endif
