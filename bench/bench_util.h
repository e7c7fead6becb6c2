/*  bench_util: what the asynchronous benchmarks share (bench_async,
    bench_curve): the module they run and the clock and median they
    measure with. Header-only: each benchmark is one program. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdlib.h>
#include <time.h>

/* The benchmarks' module: `noop` returns nil at once; `burn` spends x ms
   of CPU (its own thread's clock, so a loaded machine stretches the wall
   time, not the work). */
static const char *const BENCH_SRC =
    "#include <playdoh_task.h>\n"
    "#include <time.h>\n"
    "PD_TASK(noop, t) { (void) t; return 0; }\n"
    "/* burns x ms of CPU */\n"
    "PD_TASK_DOUBLE(burn, x) {\n"
    "    struct timespec a, b;\n"
    "    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);\n"
    "    volatile double s = 0;\n"
    "    for (;;) {\n"
    "        for (int i = 0; i < 1000; i++) s += i;\n"
    "        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);\n"
    "        if ((b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6 >= x) break;\n"
    "    }\n"
    "    return x;\n"
    "}\n";

/* Seconds on the monotonic clock. */
static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

/* The median of v[0..n) (sorts v). */
static inline double median(double *v, int n)
{
    qsort(v, (size_t) n, sizeof *v, bench_cmp_double);
    return v[n / 2];
}

#endif
