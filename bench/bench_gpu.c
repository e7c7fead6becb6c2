/*  bench_gpu: fitness evaluations per second on a GPU slot against all the
    CPU slots of the same embedded cluster, measured in the same run, and
    the cost of a GPU job's round trip.

    The fitness is examples/gpu/rastrigin.c (Rastrigin in DIM dimensions);
    each job generates its part of a pseudo-random population where it runs
    (rastrigin_gen_cpu / rastrigin_gen_gpu: no population crosses the
    network), so the figures compare evaluation, not transfer. For each
    population size P (1,000 .. 1,000,000): the CPU side splits P over one
    job per CPU slot; the GPU side evaluates all P in one job, one kernel
    launch. Each is timed submit-to-last-result, median of REPS runs, after
    a warm-up (which compiles the module and the kernels). The CPU and GPU
    minima and sums must agree, or the run fails.

    Round trip: the median of 50 one-individual jobs on a CPU slot, on a GPU
    slot without touching the GPU, and on a GPU slot with one kernel launch.

    Baseline for the GPU side (same run): the same kernel launched by this
    process itself through the driver, as a hand-written CUDA program would
    (buffers allocated once, launch, synchronize, copy the block results
    back, reduce on the host), for each population size; and, for the round
    trip, the CUDA calls of one such job with fresh cuMemAlloc/cuMemFree
    (what a GPU job cost before the slot kept its device memory).

    Without a GPU slot (no NVIDIA driver or GPU here) the CPU figures are
    printed and the GPU ones skipped with a message.

    Usage: bench_gpu [CPU_SLOTS (online CPUs)] [DIM (10)] [REPS (3)]
    The example's sources are found in $PD_EXAMPLES_DIR, else in the source
    tree this program was built from.
*/
#include "playdoh.h"

#include "bench_util.h"
#include "pd_codec.h"
#include "pd_cudrv.h"
#include "pd_file.h"
#include "pd_nvrtc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_ROUND_TRIPS 50
#define S_SEED 20100601u

static pd_client_t *c;
static char mod[PD_HASH_HEX], cu[PD_HASH_HEX];

static void die(const char *what)
{
    fprintf(stderr, "bench_gpu: %s: %s\n", what, pd_client_error(c));
    exit(1);
}

/* Runs jobs [seed, first_k, n_k, dim] of fn over a population of p split
   into k parts; returns the wall time and the population's min and sum. */
static double s_eval(const char *fn, const pd_map_opts_t *o, long p, int k, int dim,
                     double *fmin, double *fsum)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    long first = 0;
    for (int i = 0; i < k; i++) {
        long n = p / k + (i < p % k);
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint64(&pk, S_SEED);
        msgpack_pack_uint64(&pk, (uint64_t) first);
        msgpack_pack_uint64(&pk, (uint64_t) n);
        msgpack_pack_uint64(&pk, (uint64_t) dim);
        first += n;
    }
    uint64_t *ids = calloc((size_t) k, sizeof *ids);
    pd_result_t *res = calloc((size_t) k, sizeof *res);
    if (!ids || !res)
        die("out of memory");
    double t0 = now();
    if (pd_map(c, mod, fn, b.data, b.len, (size_t) k, o, ids) != k)
        die("map");
    if (pd_fetch(c, ids, (size_t) k, 600000, res, NULL, NULL) != k)
        die("fetch");
    double t = now() - t0;
    *fmin = INFINITY;
    *fsum = 0;
    for (int i = 0; i < k; i++) {
        if (res[i].state != PD_JOB_DONE) {
            fprintf(stderr, "bench_gpu: job %s failed: %s\n", fn, res[i].error ? res[i].error : "?");
            exit(1);
        }
        pd_rd_t r;
        pd_rd_init(&r, res[i].value, res[i].len);
        uint32_t two;
        double m, s;
        if (pd_rd_array(&r, &two) || two != 2 || pd_rd_double(&r, &m) || pd_rd_double(&r, &s)) {
            fprintf(stderr, "bench_gpu: %s returned something else than [min, sum]\n", fn);
            exit(1);
        }
        *fmin = m < *fmin ? m : *fmin;
        *fsum += s;
    }
    pd_release(c, ids, (size_t) k);
    pd_results_clear(res, (size_t) k);
    free(res);
    free(ids);
    pd_buf_free(&b);
    return t;
}

/* Median wall time of reps evaluations (after one warm-up). */
static double s_median_eval(const char *fn, const pd_map_opts_t *o, long p, int k, int dim,
                            int reps, double *fmin, double *fsum)
{
    double t[16];
    s_eval(fn, o, p, k, dim, fmin, fsum);
    for (int r = 0; r < reps; r++)
        t[r] = s_eval(fn, o, p, k, dim, fmin, fsum);
    return median(t, reps);
}

static int s_read_module(const char *dir, const char *name, char hash[PD_HASH_HEX])
{
    char path[1024];
    snprintf(path, sizeof path, "%s/gpu/%s", dir, name);
    if (pd_module_upload_file(c, path, hash)) {
        fprintf(stderr, "bench_gpu: %s (set PD_EXAMPLES_DIR to the examples directory)\n",
                pd_client_error(c));
        return -1;
    }
    return 0;
}

/* ---- the baseline: the same kernel launched by this process -------------- */

typedef struct {
    pd_cudrv_t *d;
    pd_cu_function_t fn;      /* rastrigin_gen */
    pd_cu_ptr_t bmin, bsum;   /* block results, allocated once for the largest size */
    double *hmin, *hsum;      /* their host copies */
} s_direct_t;

/* Opens the driver, compiles rastrigin.cu with NVRTC and loads it, as a
   CUDA program of the user's own would. Returns 0, or -1 after saying why. */
static int s_direct_open(s_direct_t *x, const char *dir, long max_pop)
{
    char why[1024], path[1024], arch[32];
    int err;
    pd_gpu_info_t gi;
    memset(x, 0, sizeof *x);
    if (!(x->d = pd_cudrv_open(NULL, &err, why, sizeof why)) || pd_cudrv_init(x->d) ||
        pd_cudrv_ctx_open(x->d, 0) || pd_cudrv_info(x->d, 0, &gi)) {
        printf("baseline skipped: %s\n", x->d ? pd_cudrv_error(x->d) : why);
        pd_cudrv_destroy(&x->d);
        return -1;
    }
    pd_nvrtc_t *nv = pd_nvrtc_open(&err, why, sizeof why);
    if (!nv || pd_nvrtc_arch(nv, gi.cc_major, gi.cc_minor, arch, sizeof arch, why, sizeof why)) {
        printf("baseline skipped: %s\n", why);
        pd_nvrtc_destroy(&nv);
        pd_cudrv_destroy(&x->d);
        return -1;
    }
    snprintf(path, sizeof path, "%s/gpu/rastrigin.cu", dir);
    char *src = NULL, *ptx = NULL, *log = NULL;
    size_t len = 0, ptxlen = 0;
    pd_cu_module_t mod = NULL;
    int rc = -1;
    if (pd_file_read(path, 1u << 20, &src, &len))
        printf("baseline skipped: cannot read %s\n", path);
    else if (pd_nvrtc_compile(nv, src, len, "rastrigin.cu", arch, &ptx, &ptxlen, &log))
        printf("baseline skipped: rastrigin.cu does not compile: %s\n", log ? log : "");
    else if (pd_cudrv_module_load(x->d, ptx, &mod) ||
             pd_cudrv_function(x->d, mod, "rastrigin_gen", &x->fn))
        printf("baseline skipped: %s\n", pd_cudrv_error(x->d));
    else
        rc = 0;
    free(src);
    free(ptx);
    free(log);
    pd_nvrtc_destroy(&nv);
    size_t blocks = (size_t) (max_pop + 255) / 256;
    if (rc == 0 && (pd_cudrv_alloc(x->d, blocks * sizeof(double), &x->bmin) ||
                    pd_cudrv_alloc(x->d, blocks * sizeof(double), &x->bsum) ||
                    !(x->hmin = malloc(blocks * sizeof(double))) ||
                    !(x->hsum = malloc(blocks * sizeof(double))))) {
        printf("baseline skipped: no room for the block results\n");
        rc = -1;
    }
    if (rc) {
        free(x->hmin);
        free(x->hsum);
        pd_cudrv_destroy(&x->d);
    }
    return rc;
}

static void s_direct_close(s_direct_t *x)
{
    free(x->hmin);
    free(x->hsum);
    pd_cudrv_destroy(&x->d); /* releases the context and its memory */
}

static void s_direct_die(s_direct_t *x)
{
    fprintf(stderr, "bench_gpu: baseline: %s\n", pd_cudrv_error(x->d));
    exit(1);
}

/* One evaluation of individuals 0 .. p-1 as rastrigin_gen_gpu does it:
   launch, synchronize, copy the block results back, reduce on the host.
   With fresh, device memory is allocated and freed around it (as every job
   did before GPU slots kept their memory). Returns seconds. */
static double s_direct_eval(s_direct_t *x, long p, int dim, bool fresh, double *fmin,
                            double *fsum)
{
    unsigned blocks = (unsigned) ((p + 255) / 256);
    double t0 = now();
    pd_cu_ptr_t bmin = x->bmin, bsum = x->bsum;
    if (fresh && (pd_cudrv_alloc(x->d, blocks * sizeof(double), &bmin) ||
                  pd_cudrv_alloc(x->d, blocks * sizeof(double), &bsum)))
        s_direct_die(x);
    unsigned long long seed = S_SEED, first = 0;
    int n = (int) p;
    void *args[] = {&seed, &first, &n, &dim, &bmin, &bsum};
    const unsigned grid[3] = {blocks, 1, 1}, block[3] = {256, 1, 1};
    if (pd_cudrv_launch(x->d, x->fn, grid, block, 0, args) ||
        pd_cudrv_dtoh(x->d, x->hmin, bmin, blocks * sizeof(double)) ||
        pd_cudrv_dtoh(x->d, x->hsum, bsum, blocks * sizeof(double)))
        s_direct_die(x);
    *fmin = INFINITY;
    *fsum = 0;
    for (unsigned b = 0; b < blocks; b++) {
        *fmin = x->hmin[b] < *fmin ? x->hmin[b] : *fmin;
        *fsum += x->hsum[b];
    }
    if (fresh && (pd_cudrv_free(x->d, bmin) || pd_cudrv_free(x->d, bsum)))
        s_direct_die(x);
    return now() - t0;
}

int main(int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int slots = argc > 1 ? atoi(argv[1]) : (int) (ncpu > 0 ? ncpu : 1);
    int dim = argc > 2 ? atoi(argv[2]) : 10;
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    if (slots < 1 || slots > 4096 || dim < 1 || dim > 1000 || reps < 1 || reps > 15) {
        fprintf(stderr, "usage: bench_gpu [CPU_SLOTS 1..4096] [DIM 1..1000] [REPS 1..15]\n");
        return 2;
    }
    /* Built in build/bench/: the programs are one level up. */
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (!getenv("PLAYDOH_BINDIR") && sl > 0) {
        self[sl] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            strcpy(slash, "/..");
            setenv("PLAYDOH_BINDIR", self, 1);
        }
    }
    const char *dir = getenv("PD_EXAMPLES_DIR");
    if (!dir)
        dir = PD_EXAMPLES_DIR;
    int err = 0;
    pd_local_t *local = pd_local_start(slots, &err);
    if (!local) {
        fprintf(stderr, "bench_gpu: cannot start the local cluster: %s\n", pd_strerror(err));
        return 1;
    }
    c = pd_client_new(pd_local_endpoint(local), &err);
    if (!c) {
        fprintf(stderr, "bench_gpu: no client: %s\n", pd_strerror(err));
        pd_local_stop(&local);
        return 1;
    }
    int gpus = 0;
    pd_client_cluster_gpus(c, &gpus);
    if (s_read_module(dir, "rastrigin.c", mod) || s_read_module(dir, "rastrigin.cu", cu)) {
        pd_client_destroy(&c);
        pd_local_stop(&local);
        return 1;
    }
    printf("bench_gpu: embedded cluster with %d CPU slots and %d GPU slots; Rastrigin in %d "
           "dimensions, median of %d runs\n", slots, gpus, dim, reps);
    if (gpus == 0)
        printf("bench_gpu: no GPU slot (the worker found no CUDA GPU here): GPU figures "
               "skipped, CPU figures only\n");
    pd_map_opts_t on_gpu = {.cuda = cu};
    static const long sizes[] = {1000, 10000, 100000, 1000000};
    s_direct_t direct;
    bool have_direct = gpus > 0 && s_direct_open(&direct, dir, sizes[3]) == 0;
    printf("\n%10s  %14s  %14s  %8s  %16s  %10s\n", "population", "CPU evals/s", "GPU evals/s",
           "GPU/CPU", "in-process GPU/s", "job/in-proc");
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        long p = sizes[i];
        double cmin, csum, gmin = 0, gsum = 0;
        double tc = s_median_eval("rastrigin_gen_cpu", NULL, p, slots, dim, reps, &cmin, &csum);
        if (gpus == 0) {
            printf("%10ld  %14.0f  %14s  %8s\n", p, p / tc, "skipped", "-");
            continue;
        }
        double tg = s_median_eval("rastrigin_gen_gpu", &on_gpu, p, 1, dim, reps, &gmin, &gsum);
        if (fabs(cmin - gmin) > 1e-9 * (1 + fabs(cmin)) || fabs(csum - gsum) > 1e-9 * fabs(csum)) {
            fprintf(stderr, "bench_gpu: CPU and GPU disagree for %ld individuals: min %.17g vs "
                    "%.17g, sum %.17g vs %.17g\n", p, cmin, gmin, csum, gsum);
            return 1;
        }
        printf("%10ld  %14.0f  %14.0f  %7.1fx", p, p / tc, p / tg, tc / tg);
        if (have_direct) {
            double t[16], dmin, dsum;
            s_direct_eval(&direct, p, dim, false, &dmin, &dsum);
            for (int r = 0; r < reps; r++)
                t[r] = s_direct_eval(&direct, p, dim, false, &dmin, &dsum);
            double td = median(t, reps);
            if (dmin != gmin || fabs(dsum - gsum) > 1e-9 * fabs(gsum)) {
                fprintf(stderr, "bench_gpu: the in-process kernel disagrees with the job for %ld "
                        "individuals\n", p);
                return 1;
            }
            printf("  %16.0f  %10.2fx", p / td, tg / td);
        }
        printf("\n");
    }
    /* Round trips of one-individual jobs. */
    double rt[S_ROUND_TRIPS], fmin, fsum;
    pd_map_opts_t slot_only = {.gpu = true};
    for (int k = 0; k < S_ROUND_TRIPS; k++)
        rt[k] = s_eval("rastrigin_gen_cpu", NULL, 1, 1, dim, &fmin, &fsum);
    double cpu_rt = median(rt, S_ROUND_TRIPS);
    printf("\nround trip of a one-individual job (median of %d):\n", S_ROUND_TRIPS);
    printf("  CPU slot:                     %8.1f us\n", cpu_rt * 1e6);
    if (gpus > 0) {
        for (int k = 0; k < S_ROUND_TRIPS; k++)
            rt[k] = s_eval("rastrigin_gen_cpu", &slot_only, 1, 1, dim, &fmin, &fsum);
        double gslot = median(rt, S_ROUND_TRIPS);
        for (int k = 0; k < S_ROUND_TRIPS; k++)
            rt[k] = s_eval("rastrigin_gen_gpu", &on_gpu, 1, 1, dim, &fmin, &fsum);
        double gkern = median(rt, S_ROUND_TRIPS);
        printf("  GPU slot, no CUDA call:       %8.1f us (%.2fx the CPU slot)\n", gslot * 1e6,
               gslot / cpu_rt);
        printf("  GPU slot, one kernel launch:  %8.1f us (%.2fx; the GPU work adds %.1f us)\n",
               gkern * 1e6, gkern / cpu_rt, (gkern - gslot) * 1e6);
        if (have_direct) {
            for (int k = 0; k < S_ROUND_TRIPS; k++)
                rt[k] = s_direct_eval(&direct, 1, dim, false, &fmin, &fsum);
            double kept = median(rt, S_ROUND_TRIPS);
            for (int k = 0; k < S_ROUND_TRIPS; k++)
                rt[k] = s_direct_eval(&direct, 1, dim, true, &fmin, &fsum);
            double fresh = median(rt, S_ROUND_TRIPS);
            printf("  baseline, that job's CUDA calls in this process: %.1f us (memory "
                   "allocated once), %.1f us (cuMemAlloc and cuMemFree around them)\n",
                   kept * 1e6, fresh * 1e6);
        }
    } else {
        printf("  GPU slot:                     skipped (no GPU)\n");
    }
    if (have_direct)
        s_direct_close(&direct);
    pd_client_destroy(&c);
    pd_local_stop(&local);
    return 0;
}
