/*  bench_jobs: the broker's job table alone (broker/pd_jobs.c), in one
    process: submit, pop (dispatch), complete and forget N jobs, as the
    broker does for a batch of no-op jobs. Measures the scheduler's own cost
    per job without sockets or processes, so that a change to the queues
    (per-client round-robin) can be compared with the code before it on a
    noisy machine: run both builds alternately and compare the best times.

    Usage: bench_jobs [JOBS (1000000)] [CLIENTS (1)] [ROUNDS (5)]
*/
#include "pd_jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int rounds = argc > 3 ? atoi(argv[3]) : 5;
    enum { CHUNK = 4096 };
    pd_buf_t args;
    pd_buf_init(&args);
    msgpack_packer pk;
    pd_packer_init(&pk, &args);
    msgpack_pack_array(&pk, CHUNK);
    for (int i = 0; i < CHUNK; i++)
        msgpack_pack_double(&pk, i);
    pd_blob_t *res = pd_blob_new("\xc0", 1, 1);
    double best = 1e9;
    for (int r = 0; r < rounds; r++) {
        pd_jobs_t *j = pd_jobs_new((uint64_t) n + CHUNK);
        char why[256];
        double t0 = now();
        for (long done = 0; done < n; done += CHUNK) {
            uint64_t first;
            uint32_t got;
            if (pd_jobs_submit(j, 0, "noop", args.data, args.len, 0, 3, &first, &got, why,
                               sizeof why)) {
                fprintf(stderr, "%s\n", why);
                return 1;
            }
        }
        uint64_t id;
        long popped = 0;
        while ((id = pd_jobs_pop(j, PD_JOBS_CPU)) != 0) {
            pd_jobs_set_done(j, id, res, 0, 1);
            popped++;
        }
        for (uint64_t k = 1; k < pd_jobs_next_id(j); k++)
            pd_jobs_forget(j, k);
        double t = now() - t0;
        if (t < best)
            best = t;
        pd_jobs_destroy(&j);
        if (popped < n) {
            fprintf(stderr, "popped %ld of %ld\n", popped, n);
            return 1;
        }
    }
    printf("job table: %ld jobs submitted, dispatched, done and forgotten: best %.3f s of %d "
           "(%.1f ns/job)\n", n, best, rounds, best * 1e9 / (double) n);
    pd_blob_unref(&res);
    pd_buf_free(&args);
    return 0;
}
