/*  bench_util: what the benchmarks share (bench_async, bench_curve,
    bench_shared, bench_scale): the module they run, the clock and median
    they measure with, and a process's CPU time and memory read from /proc.
    Header-only: each benchmark is one program. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

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

/* CPU seconds (user + system) so far from a stat file of /proc (a
   process's, or one thread's: /proc/PID/task/TID/stat), or -1. */
static inline double bench_stat_cpu_s(const char *path)
{
    char line[1024];
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    char *p = strrchr(line, ')'); /* the command name may hold spaces */
    unsigned long utime = 0, stime = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                     &stime) != 2)
        return -1;
    return (double) (utime + stime) / (double) sysconf(_SC_CLK_TCK);
}

/* CPU seconds (user + system, all its threads) a process has used so far,
   or -1. */
static inline double bench_cpu_s(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
    return bench_stat_cpu_s(path);
}

/* Memory of a process from smaps_rollup, in MB: resident, proportional
   (shared pages divided among their users) and anonymous (heap and stacks:
   the copies a process made; file pages such as a mapped shared-data file
   are not in it). All 0 when it cannot be read. */
typedef struct {
    double rss, pss, anon;
} bench_mem_t;

static inline bench_mem_t bench_mem(pid_t pid)
{
    bench_mem_t m = {0, 0, 0};
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int) pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return m;
    while (fgets(line, sizeof line, f)) {
        double kb;
        if (sscanf(line, "Rss: %lf kB", &kb) == 1)
            m.rss += kb / 1024;
        else if (sscanf(line, "Pss: %lf kB", &kb) == 1)
            m.pss += kb / 1024;
        else if (sscanf(line, "Anonymous: %lf kB", &kb) == 1)
            m.anon += kb / 1024;
    }
    fclose(f);
    return m;
}

#endif
