/* A module for Playdoh: shipped as source, compiled on each worker.
   Run it:  playdoh-submit --local 2 map examples/square.c square examples/numbers.jsonl */
#include <playdoh_task.h>

/* A number in, a number out. */
PD_TASK_DOUBLE(square, x)
{
    return x * x;
}

/* An array of numbers in, their Euclidean norm squared out. */
PD_TASK_VECTOR(norm2, x, n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i] * x[i];
    return s;
}

/* The general form: {"n": N, "mean": M} for an array of numbers. */
PD_TASK(stats, t)
{
    const double *x;
    size_t n;
    if (pd_arg_doubles(t, &x, &n))
        return pd_task_fail(t, "stats wants an array of numbers");
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    pd_out_map(t, 2);
    pd_out_str(t, "n");
    pd_out_int(t, (int64_t) n);
    pd_out_str(t, "mean");
    pd_out_double(t, n ? s / (double) n : 0.0);
    return 0;
}
