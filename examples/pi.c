/* A Monte-Carlo estimate of pi, split over jobs: each job throws N darts at
   the unit square with its own random stream and counts those inside the
   quarter disc; the submitter adds the counts (pi ~ 4 x inside / thrown).
   Run it:  bash examples/pi.sh [JOBS] [DARTS_PER_JOB]                     */
#include <playdoh_task.h>

#include <stdint.h>

/* splitmix64: a small, good generator; each job seeds its own stream. */
static uint64_t s_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Argument [seed, darts]; result: how many darts fell inside. */
PD_TASK(darts, t)
{
    const double *a;
    size_t n;
    if (pd_arg_doubles(t, &a, &n) || n != 2 || a[1] < 0)
        return pd_task_fail(t, "darts wants [seed, number of darts]");
    uint64_t s = (uint64_t) a[0] * 0x2545f4914f6cdd1dull + 1, inside = 0;
    uint64_t total = (uint64_t) a[1];
    for (uint64_t i = 0; i < total; i++) {
        double x = (double) (s_next(&s) >> 11) * 0x1.0p-53;
        double y = (double) (s_next(&s) >> 11) * 0x1.0p-53;
        inside += x * x + y * y < 1.0;
    }
    return pd_out_int(t, (int64_t) inside);
}
