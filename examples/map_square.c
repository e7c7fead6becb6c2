/* A C program that uses libplaydoh-client: squares 1..N on an embedded
   cluster (or on the broker given as the first argument), then prints the sum.

   Build against the installed library:
       cc map_square.c $(pkg-config --cflags --libs playdoh) -o map_square
   Run:  ./map_square [tcp://broker:5555] [path/to/square.c]               */
#include <playdoh.h>

#include <stdio.h>
#include <stdlib.h>

#define N 1000

int main(int argc, char **argv)
{
    const char *endpoint = argc > 1 && argv[1][0] ? argv[1] : NULL;
    const char *module = argc > 2 ? argv[2] : "square.c";
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
    if (!c) {
        fprintf(stderr, "cannot reach the broker: %s\n", pd_strerror(err));
        pd_local_stop(&local);
        return 1;
    }
    char mod[PD_HASH_HEX];
    double x[N];
    uint64_t ids[N];
    static pd_result_t res[N];
    for (int i = 0; i < N; i++)
        x[i] = i + 1;
    int rc = 1;
    if (pd_module_upload_file(c, module, mod) || pd_map_doubles(c, mod, "square", x, N, NULL, ids) != N) {
        fprintf(stderr, "%s\n", pd_client_error(c));
    } else if (pd_fetch(c, ids, N, 60000, res, NULL, NULL) != N) {
        fprintf(stderr, "not every job ended: %s\n", pd_client_error(c));
    } else {
        double sum = 0;
        rc = 0;
        for (int i = 0; i < N; i++) {
            double y;
            if (pd_result_double(&res[i], &y) == 0)
                sum += y;
            else {
                fprintf(stderr, "job %llu: %s\n", (unsigned long long) ids[i],
                        res[i].error ? res[i].error : pd_job_state_name(res[i].state));
                rc = 1;
            }
        }
        printf("sum of squares 1..%d = %.0f (expected %.0f)\n", N, sum,
               (double) N * (N + 1) * (2 * N + 1) / 6);
        pd_release(c, ids, N);
    }
    pd_results_clear(res, N);
    pd_client_destroy(&c);
    pd_local_stop(&local);
    return rc;
}
