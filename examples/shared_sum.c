/* A module that reads the map's shared data: an array of doubles sent once
   per machine and mapped by every slot (examples/map_shared.c uploads it).
   Each job sums one slice of it, without a copy.                          */
#include <playdoh_task.h>

/* Argument [from, to]; result: the sum of x[from .. to) of the shared array. */
PD_TASK(slice_sum, t)
{
    size_t bytes;
    const double *x = pd_task_shared(t, &bytes);
    if (!x)
        return pd_task_fail(t, "slice_sum needs shared data (an array of doubles)");
    const double *ab;
    size_t n;
    if (pd_arg_doubles(t, &ab, &n) || n != 2 || ab[0] < 0 || ab[1] < ab[0])
        return pd_task_fail(t, "slice_sum wants [from, to]");
    size_t from = (size_t) ab[0], to = (size_t) ab[1];
    if (to > bytes / sizeof *x)
        return pd_task_fail(t, "slice [%zu, %zu) is past the end of %zu numbers", from, to,
                            bytes / sizeof *x);
    double s = 0;
    for (size_t i = from; i < to; i++)
        s += x[i];
    return pd_out_double(t, s);
}
