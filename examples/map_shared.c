/* A map with shared data: 10 million doubles (80 MB) are uploaded once,
   sent once to each worker and mapped read-only by every slot; 100 jobs
   each sum a slice of them (examples/shared_sum.c). The program checks the
   total against its own sum.

   Build against the installed library:
       cc map_shared.c $(pkg-config --cflags --libs playdoh) -o map_shared
   Run:  ./map_shared [tcp://broker:5555] [path/to/shared_sum.c] [NUMBERS] */
#include <playdoh.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define JOBS 100

int main(int argc, char **argv)
{
    const char *endpoint = argc > 1 && argv[1][0] ? argv[1] : NULL;
    const char *module = argc > 2 ? argv[2] : "shared_sum.c";
    size_t n = argc > 3 ? (size_t) atol(argv[3]) : 10000000;
    int err = 0;
    pd_local_t *local = NULL;
    if (!endpoint) {
        local = pd_local_start(2, &err);
        if (!local) {
            fprintf(stderr, "cannot start a local cluster: %s\n", pd_strerror(err));
            return 1;
        }
        endpoint = pd_local_endpoint(local);
    }
    pd_client_t *c = pd_client_new(endpoint, &err);
    double *x = malloc(n * sizeof *x);
    if (!c || !x) {
        fprintf(stderr, "cannot reach the broker: %s\n", pd_strerror(err));
        pd_local_stop(&local);
        return 1;
    }
    double want = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = sin((double) i);
        want += x[i];
    }
    char mod[PD_HASH_HEX], data[PD_HASH_HEX];
    uint64_t ids[JOBS];
    static pd_result_t res[JOBS];
    double slices[2 * JOBS];
    for (int j = 0; j < JOBS; j++) {
        slices[2 * j] = (double) (n * j / JOBS);
        slices[2 * j + 1] = (double) (n * (j + 1) / JOBS);
    }
    int rc = 1;
    if (pd_module_upload_file(c, module, mod) || pd_shared_upload(c, x, n * sizeof *x, data)) {
        fprintf(stderr, "%s\n", pd_client_error(c));
        goto out;
    }
    /* Arguments: JOBS arrays [from, to], packed by hand as msgpack. */
    unsigned char args[JOBS * 19], *p = args;
    for (int j = 0; j < JOBS; j++) {
        *p++ = 0x92; /* array of 2 */
        for (int k = 0; k < 2; k++) {
            union { double d; uint64_t u; } v = {.d = slices[2 * j + k]};
            *p++ = 0xcb; /* float 64, big-endian */
            for (int b = 7; b >= 0; b--)
                *p++ = (unsigned char) (v.u >> (8 * b));
        }
    }
    pd_map_opts_t opts = {.shared = data};
    if (pd_map(c, mod, "slice_sum", args, (size_t) (p - args), JOBS, &opts, ids) != JOBS ||
        pd_fetch(c, ids, JOBS, 300000, res, NULL, NULL) != JOBS) {
        fprintf(stderr, "%s\n", pd_client_error(c));
        goto out;
    }
    double total = 0;
    rc = 0;
    for (int j = 0; j < JOBS; j++) {
        double y;
        if (pd_result_double(&res[j], &y) == 0) {
            total += y;
        } else {
            fprintf(stderr, "job %d: %s\n", j, res[j].error ? res[j].error : "no result");
            rc = 1;
        }
    }
    printf("sum of %zu numbers in %d jobs over shared data: %.6f (expected %.6f): %s\n", n, JOBS,
           total, want, fabs(total - want) < 1e-6 * (1 + fabs(want)) ? "OK" : "WRONG");
    if (fabs(total - want) >= 1e-6 * (1 + fabs(want)))
        rc = 1;
    pd_release(c, ids, JOBS);
out:
    pd_results_clear(res, JOBS);
    free(x);
    pd_client_destroy(&c);
    pd_local_stop(&local);
    return rc;
}
