/*  bench_windows_client: the client side of bench_windows.sh, through the C
    API so that no process start or JSON is timed. Connects to a broker that
    has one worker, uploads MODULE (a C source defining noop(x) and spin(x):
    a busy loop until x ms of wall clock have passed) and runs one
    measurement, printing one "key value" line per figure:

      rt N         N round trips of one no-op job (pd_map_doubles of one job,
                   pd_fetch of its result; the pd_release after each is not
                   timed), after 20 untimed: rt_us (median), rt_p90_us
      tput N       N no-op jobs submitted as one batch, until every result
                   is in: tput_jobs_s, tput_submit_s, tput_all_s
      eff N MS S [FN]  N jobs of FN(MS) (default spin) on S slots: eff_wall_s,
                   eff_ideal_s, eff_pct (ideal = N * MS / S over the wall time)
      warm         one job of each function (compiles the module): no output

    Usage: bench_windows_client ENDPOINT MODULE.c WHAT [ARGS]
    Exits 0, or 1 with a message when a job fails or a fetch times out.
*/
#include "bench_util.h"

#include "playdoh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pd_client_t *c;
static char mod[PD_HASH_HEX];

/* Maps x[0..n) to fn, fetches every result (limit ms), checks and releases
   them. Returns 0 or 1. */
static int s_run(const char *fn, const double *x, size_t n, int limit_ms, double *t_sub)
{
    uint64_t *ids = calloc(n, sizeof *ids);
    pd_result_t *res = calloc(n, sizeof *res);
    if (!ids || !res)
        return 1;
    double t0 = now();
    long got = pd_map_doubles(c, mod, fn, x, n, NULL, ids);
    if (t_sub)
        *t_sub = now() - t0;
    long ended = got == (long) n ? pd_fetch(c, ids, n, limit_ms, res, NULL, NULL) : -1;
    int rc = ended == (long) n ? 0 : 1;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (res[i].state != PD_JOB_DONE) {
            fprintf(stderr, "job %zu of %s: %s\n", i, fn, res[i].error ? res[i].error : "not done");
            rc = 1;
        }
    if (ended < 0 || got != (long) n)
        fprintf(stderr, "%s: %s\n", fn, pd_client_error(c));
    if (ended > 0)
        pd_results_clear(res, (size_t) ended);
    if (got > 0)
        pd_release(c, ids, (size_t) got);
    free(ids);
    free(res);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_windows_client ENDPOINT MODULE.c rt N | tput N | "
                        "eff N MS SLOTS [FN] | warm\n");
        return 2;
    }
    int err;
    c = pd_client_new(argv[1], &err);
    if (!c) {
        fprintf(stderr, "client: %s\n", pd_strerror(err));
        return 1;
    }
    if (pd_module_upload_file(c, argv[2], mod)) {
        fprintf(stderr, "upload: %s\n", pd_client_error(c));
        return 1;
    }
    const char *what = argv[3];
    int n = argc > 4 ? atoi(argv[4]) : 0;
    int rc = 1;
    if (strcmp(what, "warm") == 0) {
        double one = 1;
        rc = s_run("noop", &one, 1, 300000, NULL) || s_run("spin", &one, 1, 300000, NULL);
    } else if (strcmp(what, "rt") == 0 && n > 0) {
        double *t = calloc((size_t) n, sizeof *t), x = 1;
        rc = t ? 0 : 1;
        for (int i = 0; rc == 0 && i < n + 20; i++) {
            double t0 = now();
            rc = s_run("noop", &x, 1, 60000, NULL);
            if (i >= 20)
                t[i - 20] = (now() - t0) * 1e6;
        }
        if (rc == 0) {
            double m = median(t, n); /* sorts t */
            printf("rt_us %.1f\nrt_p90_us %.1f\n", m, t[n * 9 / 10]);
        }
        free(t);
    } else if (strcmp(what, "tput") == 0 && n > 0) {
        double *x = calloc((size_t) n, sizeof *x), t_sub = 0;
        for (int i = 0; x && i < n; i++)
            x[i] = i;
        double t0 = now();
        rc = x ? s_run("noop", x, (size_t) n, 600000, &t_sub) : 1;
        double all = now() - t0;
        if (rc == 0)
            printf("tput_jobs_s %.0f\ntput_submit_s %.3f\ntput_all_s %.3f\n", n / all, t_sub, all);
        free(x);
    } else if (strcmp(what, "eff") == 0 && n > 0 && argc > 6) {
        double ms = atof(argv[5]);
        int slots = atoi(argv[6]);
        const char *fn = argc > 7 ? argv[7] : "spin";
        double *x = calloc((size_t) n, sizeof *x);
        for (int i = 0; x && i < n; i++)
            x[i] = ms;
        double t0 = now();
        rc = x && slots > 0 ? s_run(fn, x, (size_t) n, 600000, NULL) : 1;
        double wall = now() - t0, ideal = n * ms / 1e3 / (slots > 0 ? slots : 1);
        if (rc == 0)
            printf("eff_wall_s %.3f\neff_ideal_s %.3f\neff_pct %.1f\n", wall, ideal,
                   100 * ideal / wall);
        free(x);
    } else {
        fprintf(stderr, "bench_windows_client: unknown measurement '%s'\n", what);
        rc = 2;
    }
    pd_client_destroy(&c);
    return rc;
}
