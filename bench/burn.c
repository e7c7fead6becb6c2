/*  burn: a shell command that uses MS milliseconds of CPU and exits 0, for
    bench_exec.sh (the same command through GNU parallel and through
    `playdoh-submit exec`). Extra arguments are ignored.

    Usage: burn MS [IGNORED...]
*/
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    double ms = argc > 1 ? atof(argv[1]) : 10;
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    volatile double s = 0;
    for (;;) {
        for (int i = 0; i < 1000; i++)
            s += i;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
        if ((b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6 >= ms)
            return 0;
    }
}
