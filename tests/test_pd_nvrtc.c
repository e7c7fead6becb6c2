/*  GPU suite: NVRTC (gpu/pd_nvrtc.c), the PTX cache (pd_gpurt_ptx) and, on
    a machine with a GPU, kernels run through pd_gpurt and the driver.

    NVRTC needs no GPU, so compiling is tested wherever libnvrtc is found
    (these tests skip, saying so, where it is not). Tests that run kernels
    skip with a message on machines without a GPU.
*/
#include "pd_cudrv.h"
#include "pd_error.h"
#include "pd_file.h"
#include "pd_gpurt.h"
#include "pd_nvrtc.h"

#include <criterion/criterion.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *SAXPY =
    "extern \"C\" __global__ void saxpy(float a, const float *x, float *y, int n)\n"
    "{\n"
    "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "    if (i < n) y[i] = a * x[i] + y[i];\n"
    "}\n";

static const char *BROKEN =
    "extern \"C\" __global__ void broken(float *x)\n"
    "{\n"
    "    x[0] = y;\n"
    "}\n";

/* NVRTC, or a skip saying why not. */
static pd_nvrtc_t *s_nvrtc(void)
{
    char why[2048];
    pd_nvrtc_t *n = pd_nvrtc_open(NULL, why, sizeof why);
    if (!n)
        cr_skip_test("NVRTC not found, so CUDA compilation is not tested here: %s", why);
    return n;
}

TestSuite(gpu_nvrtc, .timeout = 120);

Test(gpu_nvrtc, compiles_a_kernel_to_ptx_without_a_gpu)
{
    pd_nvrtc_t *n = s_nvrtc();
    char *ptx, *log;
    size_t len;
    cr_assert_eq(pd_nvrtc_compile(n, SAXPY, strlen(SAXPY), "saxpy.cu", "compute_75", &ptx, &len,
                                  &log), 0, "%s", log ? log : "");
    cr_assert_eq(strlen(ptx), len);
    cr_assert(strstr(ptx, ".target sm_75"), "PTX for the asked architecture:\n%.300s", ptx);
    cr_assert(strstr(ptx, ".entry saxpy("), "the extern \"C\" kernel keeps its name");
    free(ptx);
    free(log);
    pd_nvrtc_destroy(&n);
    cr_assert_null(n);
}

Test(gpu_nvrtc, a_compile_error_comes_back_with_nvrtcs_log)
{
    pd_nvrtc_t *n = s_nvrtc();
    char *ptx = (char *) 1, *log = NULL;
    size_t len;
    cr_assert_eq(pd_nvrtc_compile(n, BROKEN, strlen(BROKEN), "broken.cu", "compute_75", &ptx,
                                  &len, &log), PD_ECOMPILE);
    cr_assert_null(ptx);
    cr_assert_not_null(log);
    cr_assert(strstr(log, "broken.cu(3): error: identifier \"y\" is undefined"), "%s", log);
    free(log);
    pd_nvrtc_destroy(&n);
}

Test(gpu_nvrtc, picks_the_devices_architecture_or_the_newest_below_it)
{
    pd_nvrtc_t *n = s_nvrtc();
    char arch[32], why[512];
    cr_assert_eq(pd_nvrtc_arch(n, 8, 6, arch, sizeof arch, why, sizeof why), 0);
    cr_assert_str_eq(arch, "compute_86");
    /* 8.5 does not exist: PTX for 8.0 runs on it. */
    cr_assert_eq(pd_nvrtc_arch(n, 8, 5, arch, sizeof arch, why, sizeof why), 0);
    cr_assert_str_eq(arch, "compute_80");
    /* A GPU newer than NVRTC: the newest PTX it makes, JIT-compiled by the driver. */
    cr_assert_eq(pd_nvrtc_arch(n, 99, 0, arch, sizeof arch, why, sizeof why), 0);
    cr_assert(strncmp(arch, "compute_", 8) == 0 && strcmp(arch, "compute_990") != 0, "%s", arch);
    /* Kepler is too old for any NVRTC since CUDA 12. */
    int major, minor;
    pd_nvrtc_version(n, &major, &minor);
    if (major >= 12) {
        cr_assert_eq(pd_nvrtc_arch(n, 3, 5, arch, sizeof arch, why, sizeof why), PD_ECOMPILE);
        cr_assert(strstr(why, "this GPU (compute capability 3.5) is older than every "
                              "architecture NVRTC"), "%s", why);
    }
    pd_nvrtc_destroy(&n);
}

Test(gpu_nvrtc, playdoh_nvrtc_names_the_library_and_only_that_one)
{
    setenv("PLAYDOH_NVRTC", "/nonexistent/libnvrtc.so", 1);
    char why[2048];
    int err = 0;
    cr_assert_null(pd_nvrtc_open(&err, why, sizeof why));
    cr_assert_eq(err, PD_ECOMPILE);
    cr_assert(strstr(why, "cannot load NVRTC from PLAYDOH_NVRTC=/nonexistent/libnvrtc.so"),
              "%s", why);
}

/* ---- the PTX cache -------------------------------------------------------- */

static char s_dir[64];

static void s_cache_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/pd-nvrtc-XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    char path[128];
    snprintf(path, sizeof path, "%s/modules", s_dir);
    cr_assert_eq(mkdir(path, 0755), 0);
    cr_assert_eq(sodium_init() < 0, 0);
}

static void s_cache_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    cr_assert_eq(system(cmd), 0);
}

/* Stores src as a CUDA module in the cache; writes its hash. */
static void s_store(const char *src, char hash[65])
{
    unsigned char h[32];
    crypto_hash_sha256(h, (const unsigned char *) src, strlen(src));
    sodium_bin2hex(hash, 65, h, 32);
    char path[256];
    snprintf(path, sizeof path, "%s/modules/%s.cu", s_dir, hash);
    cr_assert_eq(pd_file_write_atomic(path, src, strlen(src)), 0);
}

TestSuite(gpu_ptxcache, .init = s_cache_setup, .fini = s_cache_teardown, .timeout = 120);

Test(gpu_ptxcache, compiles_once_then_reads_the_cache)
{
    pd_nvrtc_t *n = s_nvrtc();
    char hash[65];
    s_store(SAXPY, hash);
    char *ptx = NULL, *msg = NULL;
    cr_assert_eq(pd_gpurt_ptx(s_dir, n, hash, "saxpy.cu", "compute_75", &ptx, &msg), 0, "%s",
                 msg ? msg : "");
    cr_assert(strstr(ptx, ".entry saxpy("));
    free(ptx);
    int major, minor;
    pd_nvrtc_version(n, &major, &minor);
    char cached[256];
    snprintf(cached, sizeof cached, "%s/ptx/%s-compute_75-nvrtc%d.%d.ptx", s_dir, hash, major,
             minor);
    cr_assert_eq(access(cached, R_OK), 0, "no cached PTX at %s", cached);
    /* A second call reads the file: prove it by changing the file. */
    cr_assert_eq(pd_file_write_atomic(cached, "// from the cache\n", 18), 0);
    cr_assert_eq(pd_gpurt_ptx(s_dir, n, hash, "saxpy.cu", "compute_75", &ptx, &msg), 0);
    cr_assert_str_eq(ptx, "// from the cache\n");
    free(ptx);
    /* Another architecture is another entry. */
    cr_assert_eq(pd_gpurt_ptx(s_dir, n, hash, "saxpy.cu", "compute_80", &ptx, &msg), 0);
    cr_assert(strstr(ptx, ".target sm_80"));
    free(ptx);
    pd_nvrtc_destroy(&n);
}

Test(gpu_ptxcache, a_compile_error_names_the_module_nvrtc_and_the_architecture)
{
    pd_nvrtc_t *n = s_nvrtc();
    char hash[65];
    s_store(BROKEN, hash);
    char *ptx = NULL, *msg = NULL;
    cr_assert_eq(pd_gpurt_ptx(s_dir, n, hash, "broken.cu", "compute_75", &ptx, &msg),
                 PD_ECOMPILE);
    cr_assert_null(ptx);
    int major, minor;
    pd_nvrtc_version(n, &major, &minor);
    char head[128];
    snprintf(head, sizeof head, "module broken.cu: CUDA compile error (NVRTC %d.%d, "
             "compute_75):\n", major, minor);
    cr_assert(strncmp(msg, head, strlen(head)) == 0, "%s", msg);
    cr_assert(strstr(msg, "identifier \"y\" is undefined"), "%s", msg);
    free(msg);
    /* Missing source and a bad hash. */
    char other[65];
    memset(other, 'c', 64);
    other[64] = 0;
    cr_assert_eq(pd_gpurt_ptx(s_dir, n, other, "gone.cu", "compute_75", &ptx, &msg),
                 PD_ENOMODULE);
    cr_assert(strstr(msg, "CUDA module gone.cu is not in this worker's cache"), "%s", msg);
    free(msg);
    cr_assert_eq(pd_gpurt_ptx(s_dir, n, "../../etc/passwd", "x.cu", "compute_75", &ptx, &msg),
                 PD_ENOMODULE);
    free(msg);
    pd_nvrtc_destroy(&n);
}

Test(gpu_ptxcache, the_example_kernels_compile)
{
    pd_nvrtc_t *n = s_nvrtc();
    const char *dir = getenv("PD_EXAMPLES_DIR");
    cr_assert(dir, "PD_EXAMPLES_DIR is not set (meson sets it)");
    char path[512];
    snprintf(path, sizeof path, "%s/gpu/rastrigin.cu", dir);
    char *src;
    size_t len;
    cr_assert_eq(pd_file_read(path, 1 << 20, &src, &len), 0, "cannot read %s", path);
    char *ptx, *log;
    cr_assert_eq(pd_nvrtc_compile(n, src, len, "rastrigin.cu", "compute_75", &ptx, &len, &log), 0,
                 "%s", log ? log : "");
    cr_assert(strstr(ptx, ".entry rastrigin("));
    cr_assert(strstr(ptx, ".entry rastrigin_gen("));
    free(ptx);
    free(log);
    free(src);
    pd_nvrtc_destroy(&n);
}

/* ---- on a real GPU -------------------------------------------------------- */

/* The first real GPU, or a skip saying why there is none. */
static void s_need_gpu(pd_gpu_info_t *info)
{
    char why[600];
    unsetenv("PLAYDOH_LIBCUDA");
    if (pd_gpu_discover(NULL, info, 1, why, sizeof why) < 1)
        cr_skip_test("no CUDA GPU on this machine (%s): kernels were not run", why);
}

Test(gpu_ptxcache, a_kernel_runs_on_the_gpu_and_matches_the_cpu)
{
    pd_gpu_info_t info;
    s_need_gpu(&info);
    const char *dir = getenv("PD_EXAMPLES_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/gpu/rastrigin.cu", dir);
    char *src;
    size_t len;
    cr_assert_eq(pd_file_read(path, 1 << 20, &src, &len), 0);
    char hash[65];
    s_store(src, hash);
    free(src);
    pd_gpurt_t *g = pd_gpurt_new(s_dir, 0);
    pd_cu_module_t mod;
    const char *msg;
    cr_assert_eq(pd_gpurt_module(g, hash, "rastrigin.cu", &mod, &msg), 0, "%s", msg);
    int code;
    pd_cudrv_t *d = pd_gpurt_driver(g, &code, &msg);
    cr_assert_not_null(d, "%s", msg);
    pd_cu_function_t fn;
    cr_assert_eq(pd_cudrv_function(d, mod, "rastrigin", &fn), 0, "%s", pd_cudrv_error(d));
    enum { N = 1000, D = 5 };
    static double x[N * D], f[N];
    for (int i = 0; i < N * D; i++)
        x[i] = -5.12 + 10.24 * ((i * 7919) % 1000) / 1000.0;
    pd_cu_ptr_t dx, df;
    cr_assert_eq(pd_cudrv_alloc(d, sizeof x, &dx), 0, "%s", pd_cudrv_error(d));
    cr_assert_eq(pd_cudrv_alloc(d, sizeof f, &df), 0, "%s", pd_cudrv_error(d));
    cr_assert_eq(pd_cudrv_htod(d, dx, x, sizeof x), 0, "%s", pd_cudrv_error(d));
    int n = N, dim = D;
    void *args[] = {&dx, &df, &n, &dim};
    unsigned grid[3] = {(N + 127) / 128, 1, 1}, block[3] = {128, 1, 1};
    cr_assert_eq(pd_cudrv_launch(d, fn, grid, block, 0, args), 0, "%s", pd_cudrv_error(d));
    cr_assert_eq(pd_cudrv_dtoh(d, f, df, sizeof f), 0, "%s", pd_cudrv_error(d));
    for (int i = 0; i < N; i++) {
        double want = 10.0 * D;
        for (int k = 0; k < D; k++)
            want += x[i * D + k] * x[i * D + k] - 10.0 * cos(2.0 * M_PI * x[i * D + k]);
        cr_assert(fabs(f[i] - want) <= 1e-9 * (1 + fabs(want)), "individual %d: GPU %.17g, CPU "
                  "%.17g", i, f[i], want);
    }
    pd_cudrv_free(d, dx);
    pd_cudrv_free(d, df);
    cr_log_info("ran rastrigin on %s (compute %d.%d)", info.name, info.cc_major, info.cc_minor);
    pd_gpurt_destroy(&g);
}
