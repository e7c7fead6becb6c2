/*  Unit tests of gpu/pd_cudrv (the CUDA driver through dlopen) and of the
    driver side of gpu/pd_gpurt, on machines without a GPU.

    What a missing or unusable driver does is tested with real libraries: a
    path that does not exist, a library that is not a driver (libm), and the
    CUDA toolkit's own stub libcuda (where the toolkit is installed). What
    Playdoh does with devices present is tested against
    tests/pd_fake_libcuda.c ($PD_FAKE_LIBCUDA), which lists devices and
    keeps "device" memory in host memory but runs no kernel. Kernels on a
    real GPU are tested in test_pd_nvrtc.c, which skips without one.
*/
#include "pd_cudrv.h"
#include "pd_error.h"
#include "pd_gpurt.h"

#include <criterion/criterion.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *s_fake(void)
{
    const char *p = getenv("PD_FAKE_LIBCUDA");
    cr_assert(p && *p, "PD_FAKE_LIBCUDA is not set (meson sets it to the built fake driver)");
    return p;
}

TestSuite(unit_cudrv, .timeout = 60);

Test(unit_cudrv, a_missing_driver_is_a_clear_error_not_a_crash)
{
    char why[512];
    int err = 0;
    pd_cudrv_t *d = pd_cudrv_open("/nonexistent/libcuda.so.1", &err, why, sizeof why);
    cr_assert_null(d);
    cr_assert_eq(err, PD_ENOGPU);
    cr_assert(strstr(why, "no CUDA driver: /nonexistent/libcuda.so.1"), "%s", why);
    pd_gpu_info_t info[4];
    cr_assert_eq(pd_gpu_discover("/nonexistent/libcuda.so.1", info, 4, why, sizeof why), 0);
    cr_assert(strstr(why, "no CUDA driver"), "%s", why);
}

Test(unit_cudrv, playdoh_libcuda_overrides_the_library_name)
{
    setenv("PLAYDOH_LIBCUDA", "/opt/nowhere/libcuda.so.1", 1);
    char why[512];
    pd_gpu_info_t info[4];
    cr_assert_eq(pd_gpu_discover(NULL, info, 4, why, sizeof why), 0);
    cr_assert(strstr(why, "/opt/nowhere/libcuda.so.1"), "%s", why);
}

Test(unit_cudrv, a_library_that_is_not_a_driver_is_refused)
{
    char why[512];
    int err = 0;
    cr_assert_null(pd_cudrv_open("libm.so.6", &err, why, sizeof why));
    cr_assert_eq(err, PD_ENOGPU);
    cr_assert(strstr(why, "libm.so.6 is not a usable CUDA driver: it has no cuInit"), "%s", why);
}

Test(unit_cudrv, the_toolkits_stub_library_finds_no_gpu_and_says_so)
{
    const char *stub = getenv("PD_CUDA_STUB");
    if (!stub || access(stub, R_OK) != 0)
        cr_skip_test("no CUDA toolkit stub libcuda here (PD_CUDA_STUB=%s): stub case not tested",
                     stub ? stub : "unset");
    char why[512];
    pd_gpu_info_t info[4];
    cr_assert_eq(pd_gpu_discover(stub, info, 4, why, sizeof why), 0);
    cr_assert(strstr(why, "found no usable GPU: cuInit:"), "%s", why);
    cr_assert(strstr(why, "stub library was loaded instead of the NVIDIA driver"), "%s", why);
}

Test(unit_cudrv, discovery_lists_names_memory_and_compute_capability)
{
    setenv("PD_FAKE_CUDA_DEVICES", "3", 1);
    unsetenv("CUDA_VISIBLE_DEVICES");
    char why[512];
    pd_gpu_info_t info[8];
    cr_assert_eq(pd_gpu_discover(s_fake(), info, 8, why, sizeof why), 3, "%s", why);
    for (int i = 0; i < 3; i++) {
        char want[32];
        snprintf(want, sizeof want, "Fake GPU %d", i);
        cr_assert_str_eq(info[i].name, want);
        cr_assert_eq(info[i].mem, (uint64_t) (i + 1) << 30);
        cr_assert_eq(info[i].cc_major, 8);
        cr_assert_eq(info[i].cc_minor, 6);
    }
    /* At most max are listed. */
    cr_assert_eq(pd_gpu_discover(s_fake(), info, 2, why, sizeof why), 2);
}

Test(unit_cudrv, discovery_sees_only_cuda_visible_devices)
{
    setenv("PD_FAKE_CUDA_DEVICES", "4", 1);
    setenv("CUDA_VISIBLE_DEVICES", "2", 1);
    char why[512];
    pd_gpu_info_t info[8];
    cr_assert_eq(pd_gpu_discover(s_fake(), info, 8, why, sizeof why), 1, "%s", why);
    cr_assert_str_eq(info[0].name, "Fake GPU 2");
    setenv("CUDA_VISIBLE_DEVICES", "", 1);
    cr_assert_eq(pd_gpu_discover(s_fake(), info, 8, why, sizeof why), 0);
    cr_assert(strstr(why, "shows no device"), "%s", why);
}

Test(unit_cudrv, memory_copies_and_errors_name_the_function_and_the_cuda_error)
{
    unsetenv("CUDA_VISIBLE_DEVICES");
    char why[512];
    pd_cudrv_t *d = pd_cudrv_open(s_fake(), NULL, why, sizeof why);
    cr_assert_not_null(d, "%s", why);
    cr_assert_eq(pd_cudrv_ctx_open(d, 0), 0, "%s", pd_cudrv_error(d));
    pd_cu_ptr_t p = 0;
    cr_assert_eq(pd_cudrv_alloc(d, 64, &p), 0);
    double in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8] = {0};
    cr_assert_eq(pd_cudrv_htod(d, p, in, sizeof in), 0);
    cr_assert_eq(pd_cudrv_dtoh(d, out, p, sizeof out), 0);
    cr_assert_arr_eq(in, out, sizeof in);
    cr_assert_eq(pd_cudrv_free(d, p), 0);
    pd_cu_function_t fn;
    cr_assert_eq(pd_cudrv_function(d, NULL, "k", &fn), PD_ECUDA);
    cr_assert_eq(pd_cudrv_last(d), PD_CU_ERROR_NOT_FOUND);
    unsigned one[3] = {1, 1, 1};
    cr_assert_eq(pd_cudrv_launch(d, fn, one, one, 0, NULL), PD_ECUDA);
    cr_assert_str_eq(pd_cudrv_error(d),
                     "cuLaunchKernel: CUDA_ERROR_NOT_SUPPORTED (operation not supported)");
    cr_assert_not(pd_cudrv_broken(d), "an unsupported launch does not break the context");
    pd_cudrv_destroy(&d);
    cr_assert_null(d);
    pd_cudrv_destroy(&d);
}

Test(unit_cudrv, a_sticky_error_breaks_the_context_for_every_later_call)
{
    unsetenv("CUDA_VISIBLE_DEVICES");
    char why[512];
    pd_cudrv_t *d = pd_cudrv_open(s_fake(), NULL, why, sizeof why);
    cr_assert_not_null(d, "%s", why);
    cr_assert_eq(pd_cudrv_ctx_open(d, 0), 0);
    setenv("PD_FAKE_CUDA_ALLOC_FAIL", "700", 1);
    pd_cu_ptr_t p;
    cr_assert_eq(pd_cudrv_alloc(d, 8, &p), PD_ECUDA);
    cr_assert_str_eq(pd_cudrv_error(d), "cuMemAlloc: CUDA_ERROR_ILLEGAL_ADDRESS (an illegal "
                                        "memory access was encountered)");
    cr_assert(pd_cudrv_broken(d));
    unsetenv("PD_FAKE_CUDA_ALLOC_FAIL");
    double x = 1;
    cr_assert_eq(pd_cudrv_alloc(d, 8, &p), PD_ECUDA, "a broken context refuses everything");
    cr_assert_eq(pd_cudrv_htod(d, 1, &x, sizeof x), PD_ECUDA);
    cr_assert(strstr(pd_cudrv_error(d), "the GPU context of this slot was broken by an earlier "
                                        "error (cuMemAlloc: CUDA_ERROR_ILLEGAL_ADDRESS"),
              "%s", pd_cudrv_error(d));
    pd_cudrv_destroy(&d);
}

Test(unit_cudrv, memory_sizes_read_as_people_write_them)
{
    char buf[32];
    cr_assert_str_eq(pd_gpu_mem_str(80ull << 30, buf, sizeof buf), "80.0 GiB");
    cr_assert_str_eq(pd_gpu_mem_str(512ull << 20, buf, sizeof buf), "512 MiB");
    cr_assert_str_eq(pd_gpu_mem_str(4096, buf, sizeof buf), "4 KiB");
    cr_assert_str_eq(pd_gpu_mem_str(8, buf, sizeof buf), "8 bytes");
}

/* ---- pd_gpurt, driver side ------------------------------------------------ */

Test(unit_cudrv, the_slot_runtime_opens_its_one_visible_device_lazily)
{
    setenv("PLAYDOH_LIBCUDA", s_fake(), 1);
    setenv("CUDA_VISIBLE_DEVICES", "1", 1);
    pd_gpurt_t *g = pd_gpurt_new("/tmp", 1);
    cr_assert_not_null(g);
    cr_assert_eq(pd_gpurt_device(g), 1);
    int code = 0;
    const char *msg = NULL;
    pd_cudrv_t *d = pd_gpurt_driver(g, &code, &msg);
    cr_assert_not_null(d, "%s", msg);
    cr_assert_eq(pd_gpurt_driver(g, &code, &msg), d, "opened once");
    cr_assert_not(pd_gpurt_broken(g));
    pd_gpurt_destroy(&g);
    cr_assert_null(g);
}

Test(unit_cudrv, a_slot_without_a_driver_fails_each_job_with_the_same_sentence)
{
    setenv("PLAYDOH_LIBCUDA", "/nonexistent/libcuda.so.1", 1);
    pd_gpurt_t *g = pd_gpurt_new("/tmp", 0);
    int code = 0;
    const char *msg = NULL;
    cr_assert_null(pd_gpurt_driver(g, &code, &msg));
    cr_assert_eq(code, PD_ENOGPU);
    cr_assert(strstr(msg, "GPU 0: no CUDA driver: /nonexistent/libcuda.so.1"), "%s", msg);
    pd_cu_module_t mod;
    char hash[65];
    memset(hash, 'a', 64);
    hash[64] = 0;
    cr_assert_eq(pd_gpurt_module(g, hash, "k.cu", &mod, &msg), PD_ENOGPU);
    cr_assert(strstr(msg, "no CUDA driver"), "%s", msg);
    pd_gpurt_destroy(&g);
}

Test(unit_cudrv, without_nvrtc_a_cuda_module_fails_with_where_it_was_looked_for)
{
    setenv("PLAYDOH_LIBCUDA", s_fake(), 1);
    unsetenv("CUDA_VISIBLE_DEVICES");
    setenv("PLAYDOH_NVRTC", "/nonexistent/libnvrtc.so", 1);
    pd_gpurt_t *g = pd_gpurt_new("/tmp", 0);
    pd_cu_module_t mod;
    const char *msg = NULL;
    char hash[65];
    memset(hash, 'b', 64);
    hash[64] = 0;
    cr_assert_eq(pd_gpurt_module(g, hash, "k.cu", &mod, &msg), PD_ECOMPILE);
    cr_assert(strstr(msg, "cannot compile CUDA modules on this worker: cannot load NVRTC from "
                          "PLAYDOH_NVRTC=/nonexistent/libnvrtc.so"), "%s", msg);
    pd_gpurt_destroy(&g);
}

/* ---- pd_gpurt, device memory ---------------------------------------------- */

/* The stand-in driver's counters (pd_fake_libcuda.c), after a first use. */
static void s_stats(size_t *allocs, size_t *frees, size_t *in_use)
{
    void *lib = dlopen(s_fake(), RTLD_NOW | RTLD_NOLOAD);
    cr_assert_not_null(lib, "the stand-in driver is not loaded: %s", dlerror());
    void (*stats)(size_t *, size_t *, size_t *);
    *(void **) &stats = dlsym(lib, "pd_fake_cuda_stats");
    cr_assert_not_null(stats);
    stats(allocs, frees, in_use);
    dlclose(lib);
}

static pd_gpurt_t *s_fake_gpu(void)
{
    setenv("PLAYDOH_LIBCUDA", s_fake(), 1);
    setenv("CUDA_VISIBLE_DEVICES", "0", 1); /* "Fake GPU 0": 1 GiB */
    pd_gpurt_t *g = pd_gpurt_new("/tmp", 0);
    cr_assert_not_null(g);
    return g;
}

static pd_cu_ptr_t s_alloc(pd_gpurt_t *g, size_t bytes)
{
    pd_cu_ptr_t p = 0;
    const char *msg = NULL;
    int rc = pd_gpurt_alloc(g, bytes, &p, &msg);
    cr_assert_eq(rc, 0, "alloc of %zu: %d %s", bytes, rc, msg ? msg : "");
    cr_assert_neq(p, 0);
    return p;
}

Test(unit_gpumem, a_block_a_job_freed_serves_the_next_job_of_its_size_class)
{
    pd_gpurt_t *g = s_fake_gpu();
    pd_cu_ptr_t a = s_alloc(g, 100);
    cr_assert_eq(pd_gpurt_free(g, a), 0);
    size_t blocks;
    cr_assert_eq(pd_gpurt_pooled(g, &blocks), 256, "100 bytes are in the 256-byte class");
    cr_assert_eq(blocks, 1);
    cr_assert_eq(s_alloc(g, 200), a, "same class: the kept block");
    cr_assert_eq(pd_gpurt_pooled(g, NULL), 0);
    pd_cu_ptr_t b = s_alloc(g, 300);
    cr_assert_neq(b, a, "another class: a new block");
    pd_cu_ptr_t c = s_alloc(g, (3u << 20) + 1);
    size_t allocs, frees, in_use;
    s_stats(&allocs, &frees, &in_use);
    cr_assert_eq(allocs, 3);
    cr_assert_eq(frees, 0);
    cr_assert_eq(in_use, 256 + 512 + (4u << 20), "1 MiB and above: 2 MiB steps");
    cr_assert_eq(pd_gpurt_free(g, a), 0);
    cr_assert_eq(pd_gpurt_free(g, b), 0);
    cr_assert_eq(pd_gpurt_free(g, c), 0);
    pd_gpurt_destroy(&g);
    s_stats(&allocs, &frees, &in_use);
    cr_assert_eq(frees, 3, "destroy gives the kept blocks back");
    cr_assert_eq(in_use, 0);
}

Test(unit_gpumem, kept_memory_is_bounded_in_bytes_and_blocks)
{
    pd_gpurt_t *g = s_fake_gpu();
    /* 1 GiB device: at most 128 MiB kept. */
    pd_cu_ptr_t big[3];
    for (int i = 0; i < 3; i++)
        big[i] = s_alloc(g, 60u << 20);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pd_gpurt_free(g, big[i]), 0);
    size_t blocks, allocs, frees, in_use;
    cr_assert_eq(pd_gpurt_pooled(g, &blocks), 120u << 20);
    cr_assert_eq(blocks, 2, "the oldest went back to the driver");
    s_stats(&allocs, &frees, &in_use);
    cr_assert_eq(frees, 1);
    cr_assert_eq(s_alloc(g, 60u << 20), big[2], "the most recent is kept");
    pd_cu_ptr_t huge = s_alloc(g, 200u << 20);
    cr_assert_eq(pd_gpurt_free(g, huge), 0);
    s_stats(&allocs, &frees, &in_use);
    cr_assert_eq(frees, 2, "a block larger than the bound is freed at once");
    cr_assert_eq(pd_gpurt_free(g, big[2]), 0);

    pd_cu_ptr_t small[100];
    for (int i = 0; i < 100; i++)
        small[i] = s_alloc(g, 64);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(pd_gpurt_free(g, small[i]), 0);
    cr_assert_eq(pd_gpurt_pooled(g, &blocks) <= (128u << 20), true);
    cr_assert_eq(blocks, 64, "at most 64 blocks kept");
    pd_gpurt_destroy(&g);
    s_stats(&allocs, &frees, &in_use);
    cr_assert_eq(in_use, 0);
    cr_assert_eq(allocs, frees);
}

Test(unit_gpumem, when_the_device_is_full_the_kept_blocks_go_back_first)
{
    setenv("PD_FAKE_CUDA_MEM", "104857600", 1); /* 100 MiB */
    pd_gpurt_t *g = s_fake_gpu();
    pd_cu_ptr_t a = s_alloc(g, 40u << 20);
    cr_assert_eq(pd_gpurt_free(g, a), 0);
    cr_assert_eq(pd_gpurt_pooled(g, NULL), 40u << 20);
    pd_cu_ptr_t b = s_alloc(g, 80u << 20);
    cr_assert_eq(pd_gpurt_pooled(g, NULL), 0, "given back to make room");
    pd_cu_ptr_t c = 0;
    const char *msg = NULL;
    cr_assert_eq(pd_gpurt_alloc(g, 40u << 20, &c, &msg), PD_ECUDA);
    cr_assert_eq(c, 0);
    cr_assert(strstr(msg, "cuMemAlloc: CUDA_ERROR_OUT_OF_MEMORY"), "%s", msg);
    cr_assert_eq(pd_gpurt_free(g, b), 0);
    pd_gpurt_destroy(&g);
    unsetenv("PD_FAKE_CUDA_MEM");
}

Test(unit_gpumem, freeing_what_was_not_handed_out_or_twice_is_refused)
{
    pd_gpurt_t *g = s_fake_gpu();
    pd_cu_ptr_t a = s_alloc(g, 8);
    cr_assert_eq(pd_gpurt_free(g, a + 8), PD_EINVAL);
    cr_assert_eq(pd_gpurt_free(g, a), 0);
    cr_assert_eq(pd_gpurt_free(g, a), PD_EINVAL, "a kept block is not the job's any more");
    pd_cu_ptr_t p = 0;
    const char *msg = NULL;
    cr_assert_eq(pd_gpurt_alloc(g, 0, &p, &msg), PD_EINVAL);
    cr_assert_eq(pd_gpurt_alloc(g, SIZE_MAX, &p, &msg), PD_EINVAL);
    pd_gpurt_destroy(&g);
}
