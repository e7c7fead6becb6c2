/*  heat.c: the 1-D heat equation split over the nodes of a synchronous task.

        u_t = alpha u_xx on [0, 1],  u(0) = u(1) = 0,
        u(x, 0) = sin(pi x) + 0.5 sin(3 pi x)

    Explicit finite differences on `cells` interior cells: each step,

        u_k <- u_k + r (u_{k-1} - 2 u_k + u_{k+1}),  r = alpha dt / dx^2 <= 1/2.

    Node i of N owns cells [cells i / N, cells (i+1) / N) plus one ghost
    cell on each side. Each step it pushes its first cell on tube "left"
    (to node i-1) and its last on "right" (to node i+1), then pops its ghost
    cells: "right" brings node i-1's last cell, "left" node i+1's first.
    The graph (heat.graph) is

        right: chain        # i -> i+1
        left:  chain-back   # i -> i-1

    Every cell is updated with the same operands in the same order whatever
    N is, so the result of N nodes is identical, to the last bit, to the
    result of one node on the same machine (examples/heat/heat_main.c
    checks it). The function also runs as an ordinary job (one node).

    Argument: {"cells": 100000, "steps": 1000, "r": 0.4} (each optional).
    Result: the node's cells, an array of numbers.
*/
#include <playdoh_task.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Reads {"cells", "steps", "r"} (any may be absent). */
static int s_args(pd_task_t *t, double *cells, double *steps, double *r)
{
    pd_value_t v = pd_arg(t);
    if (pd_val_kind(&v) == PD_VAL_NIL)
        return 0;
    size_t n;
    if (pd_val_map(&v, &n))
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *k;
        size_t kl;
        double x;
        if (pd_val_str(&v, &k, &kl) || pd_val_double(&v, &x))
            return -1;
        if (kl == 5 && memcmp(k, "cells", 5) == 0)
            *cells = x;
        else if (kl == 5 && memcmp(k, "steps", 5) == 0)
            *steps = x;
        else if (kl == 1 && k[0] == 'r')
            *r = x;
    }
    return 0;
}

/* Pops one number from tube into *x; returns 0 or -1 (failure recorded). */
static int s_pop_one(pd_task_t *t, const char *tube, double *x)
{
    const double *g;
    size_t n;
    int from = pd_pop_doubles(t, tube, &g, &n);
    if (from < 0)
        return -1;
    if (n != 1)
        return pd_task_fail(t, "heat: node %d sent %zu numbers on '%s', not 1", from, n, tube);
    *x = g[0];
    return 0;
}

/* Sends this node's edge cells to its neighbours and fills its ghost cells
   u[0] and u[m + 1] with theirs. Returns 0 or -1. */
static int s_exchange(pd_task_t *t, double *u, size_t m, int me, int n)
{
    if (me > 0 && pd_push_doubles(t, "left", &u[1], 1))
        return -1;
    if (me < n - 1 && pd_push_doubles(t, "right", &u[m], 1))
        return -1;
    if (me > 0 && s_pop_one(t, "right", &u[0]))
        return -1;
    if (me < n - 1 && s_pop_one(t, "left", &u[m + 1]))
        return -1;
    return 0;
}

PD_TASK(heat, t)
{
    double cells_d = 100000, steps_d = 1000, r = 0.4;
    if (s_args(t, &cells_d, &steps_d, &r) || cells_d < 1 || cells_d > 1e9 || steps_d < 0
        || !(r > 0 && r <= 0.5))
        return pd_task_fail(t, "heat: want {\"cells\": >= 1, \"steps\": >= 0, \"r\": in (0, 0.5]}");
    size_t cells = (size_t) cells_d;
    long steps = (long) steps_d;
    int me = pd_node_index(t), n = pd_node_count(t);
    if (n <= 0) { /* run as a job: the whole domain */
        me = 0;
        n = 1;
    }
    if ((size_t) n > cells)
        return pd_task_fail(t, "heat: %d nodes for %zu cells", n, cells);
    size_t lo = cells * (size_t) me / (size_t) n, hi = cells * (size_t) (me + 1) / (size_t) n;
    size_t m = hi - lo;
    double *u = malloc((m + 2) * sizeof *u), *w = malloc((m + 2) * sizeof *w);
    if (!u || !w) {
        free(u);
        free(w);
        return pd_task_fail(t, "heat: out of memory for %zu cells", m);
    }
    const double pi = 3.14159265358979323846;
    for (size_t k = 0; k < m; k++) {
        double x = (double) (lo + k + 1) / (double) (cells + 1);
        u[k + 1] = sin(pi * x) + 0.5 * sin(3 * pi * x);
    }
    u[0] = u[m + 1] = w[0] = w[m + 1] = 0; /* the domain's ends stay at 0 */
    int rc = 0;
    for (long s = 0; s < steps && rc == 0; s++) {
        rc = s_exchange(t, u, m, me, n);
        if (rc)
            break;
        for (size_t k = 1; k <= m; k++)
            w[k] = u[k] + r * (u[k - 1] - 2 * u[k] + u[k + 1]);
        w[0] = u[0];
        w[m + 1] = u[m + 1];
        double *tmp = u;
        u = w;
        w = tmp;
    }
    if (rc == 0)
        rc = pd_out_doubles(t, &u[1], m);
    free(u);
    free(w);
    return rc;
}
