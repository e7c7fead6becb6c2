/*  heat_main: runs examples/heat/heat.c as a synchronous task of N nodes on
    an embedded cluster, then as a task of one node, and checks that the two
    solutions are the same to the last bit.

        heat_demo [NODES (4)] [CELLS (100000)] [STEPS (1000)] [--module PATH]

    Prints the wall time of each run, the largest difference (0) and a few
    values; exits 0 when the solutions are identical, 1 otherwise.
*/
#include <playdoh.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef HEAT_MODULE
#define HEAT_MODULE "heat.c"
#endif

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Reads a msgpack array of float64 into out (cap entries); returns the
   count or -1. */
static long s_doubles(const pd_result_t *r, double *out, size_t cap)
{
    const uint8_t *p = r->value, *end = p + r->len;
    size_t n;
    if (p < end && (*p & 0xf0) == 0x90) {
        n = *p & 0x0f;
        p += 1;
    } else if (end - p >= 3 && *p == 0xdc) {
        n = (size_t) p[1] << 8 | p[2];
        p += 3;
    } else if (end - p >= 5 && *p == 0xdd) {
        n = (size_t) p[1] << 24 | (size_t) p[2] << 16 | (size_t) p[3] << 8 | p[4];
        p += 5;
    } else {
        return -1;
    }
    if (n > cap || (size_t) (end - p) != 9 * n)
        return -1;
    for (size_t i = 0; i < n; i++, p += 9) {
        if (*p != 0xcb)
            return -1;
        uint64_t bits = 0;
        for (int k = 1; k <= 8; k++)
            bits = bits << 8 | p[k];
        memcpy(&out[i], &bits, 8);
    }
    return (long) n;
}

/* Runs heat on `nodes` nodes; writes the whole solution into u. */
static int s_run(pd_client_t *c, const char *mod, int nodes, long cells, long steps, double *u,
                 double *secs)
{
    pd_graph_t *g = pd_graph_new(nodes);
    pd_graph_chain(g, "right");
    pd_graph_chain_back(g, "left");
    /* every node: {"cells": cells, "steps": steps, "r": 0.4} */
    uint8_t one[64];
    size_t k = 0;
    one[k++] = 0x83;
    one[k++] = 0xa5;
    memcpy(one + k, "cells", 5);
    k += 5;
    one[k++] = 0xce;
    for (int b = 3; b >= 0; b--)
        one[k++] = (uint8_t) (cells >> (8 * b));
    one[k++] = 0xa5;
    memcpy(one + k, "steps", 5);
    k += 5;
    one[k++] = 0xce;
    for (int b = 3; b >= 0; b--)
        one[k++] = (uint8_t) (steps >> (8 * b));
    one[k++] = 0xa1;
    one[k++] = 'r';
    one[k++] = 0xcb;
    double r = 0.4;
    uint64_t bits;
    memcpy(&bits, &r, 8);
    for (int b = 7; b >= 0; b--)
        one[k++] = (uint8_t) (bits >> (8 * b));
    uint8_t *args = malloc(k * (size_t) nodes);
    for (int i = 0; i < nodes; i++)
        memcpy(args + k * (size_t) i, one, k);
    double t0 = s_now();
    uint64_t id;
    pd_task_result_t res;
    int rc = pd_task_start(c, mod, "heat", g, args, k * (size_t) nodes, NULL, &id);
    free(args);
    pd_graph_destroy(&g);
    if (rc) {
        fprintf(stderr, "heat: %s\n", pd_client_error(c));
        return 1;
    }
    if (pd_task_fetch(c, id, -1, &res) || res.state != PD_TASK_DONE) {
        fprintf(stderr, "heat on %d nodes: %s\n", nodes,
                res.error ? res.error : pd_client_error(c));
        pd_task_result_clear(&res);
        return 1;
    }
    *secs = s_now() - t0;
    size_t at = 0;
    for (int i = 0; i < nodes; i++) {
        long n = s_doubles(&res.nodes[i], u + at, (size_t) cells - at);
        if (n < 0) {
            fprintf(stderr, "heat: node %d returned something else than its cells\n", i);
            pd_task_result_clear(&res);
            return 1;
        }
        at += (size_t) n;
    }
    pd_task_release(c, id);
    pd_task_result_clear(&res);
    if (at != (size_t) cells) {
        fprintf(stderr, "heat: %zu cells came back, not %ld\n", at, cells);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *module = HEAT_MODULE;
    long v[3] = {4, 100000, 1000};
    int nv = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--module") == 0 && i + 1 < argc)
            module = argv[++i];
        else if (nv < 3 && atol(argv[i]) > 0)
            v[nv++] = atol(argv[i]);
        else {
            fprintf(stderr, "usage: heat_demo [NODES] [CELLS] [STEPS] [--module heat.c]\n");
            return 2;
        }
    }
    int nodes = (int) v[0];
    long cells = v[1], steps = v[2];
    /* Built in build/examples/: the programs are one level up. */
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 20);
    if (!getenv("PLAYDOH_BINDIR") && sl > 0) {
        self[sl] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            strcpy(slash, "/../playdoh-broker");
            if (access(self, X_OK) == 0) {
                slash[3] = 0;
                setenv("PLAYDOH_BINDIR", self, 1);
            }
        }
    }
    int err;
    pd_local_t *local = pd_local_start(nodes, &err);
    if (!local) {
        fprintf(stderr, "heat: cannot start a local cluster: %s\n", pd_strerror(err));
        return 1;
    }
    pd_client_t *c = pd_client_new(pd_local_endpoint(local), &err);
    char mod[PD_HASH_HEX];
    if (!c || pd_module_upload_file(c, module, mod)) {
        fprintf(stderr, "heat: %s\n", c ? pd_client_error(c) : pd_strerror(err));
        pd_client_destroy(&c);
        pd_local_stop(&local);
        return 1;
    }
    double *many = calloc((size_t) cells, sizeof *many), *single = calloc((size_t) cells, sizeof *single);
    double t_many = 0, t_single = 0;
    int rc = !many || !single || s_run(c, mod, nodes, cells, steps, many, &t_many)
             || s_run(c, mod, 1, cells, steps, single, &t_single);
    if (!rc) {
        double maxdiff = 0;
        size_t differ = 0;
        for (long i = 0; i < cells; i++) {
            if (memcmp(&many[i], &single[i], 8) != 0)
                differ++;
            double d = fabs(many[i] - single[i]);
            if (d > maxdiff)
                maxdiff = d;
        }
        printf("heat: %ld cells, %ld steps\n", cells, steps);
        printf("  %d nodes: %.3f s   1 node: %.3f s\n", nodes, t_many, t_single);
        printf("  u(1/4) = %.15g   u(1/2) = %.15g\n", many[cells / 4], many[cells / 2]);
        printf("  cells that differ: %zu, largest difference %g: %s\n", differ, maxdiff,
               differ ? "DIFFERENT" : "identical to the last bit");
        rc = differ != 0;
    }
    free(many);
    free(single);
    pd_client_destroy(&c);
    pd_local_stop(&local);
    return rc;
}
