/*  The worker's table of built-in task modules (worker/pd_builtins.c): the
    optimisers' island node is found by the name a cluster optimisation
    gives, and nothing else is. */
#include "pd_builtins.h"
#include "pd_optim_node.h"
#include "pd_optim_task.h"

#include <criterion/criterion.h>

Test(builtins, the_island_node_is_found_by_its_task_function_name)
{
    const pd_builtin_node_t *b = pd_builtins_module_node(PD_OPTIM_NODE_FN);
    cr_assert_not_null(b);
    cr_assert_eq(b, &pd_optim_node_builtin);
    cr_assert_str_eq(b->name, PD_OPTIM_NODE_FN);
    cr_assert(b->run == pd_optim_node);
}

Test(builtins, a_module_function_name_is_no_built_in_node)
{
    cr_assert_null(pd_builtins_module_node("square"));
    cr_assert_null(pd_builtins_module_node(""));
}

Test(builtins, the_builtin_module_has_no_node_function_yet)
{
    cr_assert_null(pd_builtins_node("exec"));
    cr_assert_null(pd_builtins_node(PD_OPTIM_NODE_FN));
}
