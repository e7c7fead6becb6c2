/*  pd_builtins: the worker's table of built-in task modules (see
    pd_builtins.h). Adding a built-in module is one line in a table here
    and its source in the worker's build (worker/meson.build).
*/
#include "pd_builtins.h"

#include "pd_optim_node.h"

#include <stddef.h>
#include <string.h>

/* Node functions of the reserved module "builtin" (module kind "b"), run
   with the same task API as a module's. Empty for now: an entry {name, fn}
   here makes `fn` a node function every worker has. */
static const struct {
    const char *name;       /* the function name a task gives */
    int (*fn)(pd_task_t *); /* the node function */
} s_builtin_nodes[] = {
    {NULL, NULL},
};

/* Node functions that work over the task's own module: the module is
   loaded when the function asks for one of its symbols through the
   pd_node_env_t. */
static const pd_builtin_node_t *const s_module_nodes[] = {
    &pd_optim_node_builtin,
};

int (*pd_builtins_node(const char *fn))(pd_task_t *)
{
    for (size_t i = 0; i < sizeof s_builtin_nodes / sizeof s_builtin_nodes[0]; i++)
        if (s_builtin_nodes[i].name && strcmp(s_builtin_nodes[i].name, fn) == 0)
            return s_builtin_nodes[i].fn;
    return NULL;
}

const pd_builtin_node_t *pd_builtins_module_node(const char *fn)
{
    for (size_t i = 0; i < sizeof s_module_nodes / sizeof s_module_nodes[0]; i++)
        if (strcmp(s_module_nodes[i]->name, fn) == 0)
            return s_module_nodes[i];
    return NULL;
}
