/*  optimise_rastrigin: an optimisation whose fitness runs on the cluster,
    a whole population per job, on a GPU slot (--gpu) or a CPU slot.

    pd_optim_run() drives CMA-ES islands in this process; at each iteration
    every island hands its population block to the fitness below, which
    sends it as one job to rastrigin_gpu (one kernel launch for the block,
    examples/gpu/rastrigin.cu) or rastrigin_cpu (examples/gpu/rastrigin.c)
    and waits for the values. The same fitness function serves both: only
    the task's name and the map's options change.

        optimise_rastrigin [--gpu] [--broker EP] [DIM (10)] [BUDGET (20000)]

    Without --broker it starts an embedded cluster of 2 slots (its worker
    offers this machine's GPUs too). Run from the source tree's examples/gpu
    directory, or set PD_EXAMPLES_DIR. A job round trip per iteration costs
    a fraction of a millisecond on a local cluster: with populations of tens
    of points this is a demonstration of the plumbing; the GPU pays off when
    a block holds thousands of points or the fitness is costly (a model fit
    per point), see docs/gpu.md and bench/bench_gpu.c.
*/
#include <playdoh.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    pd_client_t *c;
    char mod[PD_HASH_HEX];  /* rastrigin.c */
    char cuda[PD_HASH_HEX]; /* rastrigin.cu */
    bool gpu;               /* on GPU slots */
    uint64_t jobs;          /* jobs sent */
} s_ctx_t;

/* The fitness: the block as one job [[x1..xD], ...] -> [f1, ...]. */
static PD_FITNESS(s_cluster_rastrigin, b, f)
{
    s_ctx_t *ctx = b->user;
    msgpack_sbuffer arg;
    msgpack_sbuffer_init(&arg);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &arg, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, (uint32_t) b->n);
    for (size_t i = 0; i < b->n; i++) {
        msgpack_pack_array(&pk, (uint32_t) b->dim);
        for (size_t j = 0; j < b->dim; j++)
            msgpack_pack_double(&pk, b->x[i * b->dim + j]);
    }
    pd_map_opts_t o = {.gpu = ctx->gpu, .cuda = ctx->gpu ? ctx->cuda : NULL};
    uint64_t id;
    pd_result_t r;
    int rc = -1;
    if (pd_map(ctx->c, ctx->mod, ctx->gpu ? "rastrigin_gpu" : "rastrigin_cpu", arg.data,
               arg.size, 1, &o, &id) != 1) {
        snprintf(b->error, b->error_size, "%s", pd_client_error(ctx->c));
    } else if (pd_fetch(ctx->c, &id, 1, 60000, &r, NULL, NULL) != 1) {
        snprintf(b->error, b->error_size, "no result within 60 s: %s", pd_client_error(ctx->c));
    } else {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        if (r.state != PD_JOB_DONE) {
            snprintf(b->error, b->error_size, "%s", r.error ? r.error : "the job failed");
        } else if (msgpack_unpack_next(&u, r.value, r.len, NULL) != MSGPACK_UNPACK_SUCCESS ||
                   u.data.type != MSGPACK_OBJECT_ARRAY || u.data.via.array.size != b->n) {
            snprintf(b->error, b->error_size, "the job returned something else than %zu values",
                     b->n);
        } else {
            rc = 0;
            for (size_t i = 0; i < b->n; i++) {
                const msgpack_object *v = &u.data.via.array.ptr[i];
                if (v->type == MSGPACK_OBJECT_FLOAT64 || v->type == MSGPACK_OBJECT_FLOAT32)
                    f[i] = v->via.f64;
                else
                    rc = -1;
            }
        }
        msgpack_unpacked_destroy(&u);
        pd_results_clear(&r, 1);
        pd_release(ctx->c, &id, 1);
    }
    ctx->jobs++;
    msgpack_sbuffer_destroy(&arg);
    return rc;
}

int main(int argc, char **argv)
{
    s_ctx_t ctx = {0};
    const char *broker = NULL;
    int pos = 0;
    size_t dim = 10;
    uint64_t budget = 20000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--gpu") == 0)
            ctx.gpu = true;
        else if (strcmp(argv[i], "--broker") == 0 && i + 1 < argc)
            broker = argv[++i];
        else if (pos == 0 && atoi(argv[i]) > 0)
            dim = (size_t) atoi(argv[i]), pos++;
        else if (pos == 1 && atoll(argv[i]) > 0)
            budget = (uint64_t) atoll(argv[i]), pos++;
        else {
            fprintf(stderr, "usage: optimise_rastrigin [--gpu] [--broker EP] [DIM] [BUDGET]\n");
            return 2;
        }
    }
    const char *dir = getenv("PD_EXAMPLES_DIR");
    char cpath[1024], cupath[1024];
    snprintf(cpath, sizeof cpath, "%s%srastrigin.c", dir ? dir : "", dir ? "/gpu/" : "");
    snprintf(cupath, sizeof cupath, "%s%srastrigin.cu", dir ? dir : "", dir ? "/gpu/" : "");
    int err = 0;
    pd_local_t *local = NULL;
    if (!broker) {
        if (!(local = pd_local_start(2, &err))) {
            fprintf(stderr, "optimise_rastrigin: no local cluster: %s\n", pd_strerror(err));
            return 1;
        }
        broker = pd_local_endpoint(local);
    }
    ctx.c = pd_client_new(broker, &err);
    if (!ctx.c || pd_module_upload_file(ctx.c, cpath, ctx.mod) ||
        (ctx.gpu && pd_module_upload_file(ctx.c, cupath, ctx.cuda))) {
        fprintf(stderr, "optimise_rastrigin: %s\n",
                ctx.c ? pd_client_error(ctx.c) : pd_strerror(err));
        pd_client_destroy(&ctx.c);
        pd_local_stop(&local);
        return 1;
    }
    double *lo = malloc(dim * sizeof *lo), *hi = malloc(dim * sizeof *hi);
    for (size_t j = 0; lo && hi && j < dim; j++) {
        lo[j] = -5.12;
        hi[j] = 5.12;
    }
    pd_optim_opts_t o;
    pd_optim_opts_init(&o, PD_ALGO_CMAES, dim);
    o.lower = lo;
    o.upper = hi;
    o.budget = budget;
    o.islands = 2;
    o.seed = 7;
    pd_optim_result_t r;
    int rc = lo && hi ? pd_optim_run(&o, s_cluster_rastrigin, &ctx, &r) : PD_ENOMEM;
    if (rc == 0)
        printf("rastrigin in %zu dimensions on %s slots: best %.6g after %llu evaluations in "
               "%llu jobs (%.2f s)\n", dim, ctx.gpu ? "GPU" : "CPU", r.best_f[0],
               (unsigned long long) r.evaluations, (unsigned long long) ctx.jobs, r.wall_s);
    else
        fprintf(stderr, "optimise_rastrigin: %s\n", r.error ? r.error : pd_strerror(rc));
    pd_optim_result_clear(&r);
    free(lo);
    free(hi);
    pd_client_destroy(&ctx.c);
    pd_local_stop(&local);
    return rc ? 1 : 0;
}
