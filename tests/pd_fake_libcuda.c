/*  pd_fake_libcuda: a stand-in for libcuda.so.1, for tests on machines
    without a GPU. NOT a GPU: it runs no kernel.

    Tests point PLAYDOH_LIBCUDA at this library to exercise what Playdoh does
    around the driver with devices present: discovery (names, memory,
    compute capability), `--gpus` limits, GPU slots and their
    CUDA_VISIBLE_DEVICES, and the error paths of the task API. Like the real
    driver, it shows a process the devices named by CUDA_VISIBLE_DEVICES
    (indexes, comma-separated; the list stops at the first entry that is not
    a device, so "" shows none) out of PD_FAKE_CUDA_DEVICES (default 2).
    Device i is "Fake GPU i" with i+1 GiB and compute capability 8.6.

    Memory is host memory (malloc), so copies can be checked. Loading a
    module or launching a kernel fails with CUDA_ERROR_NOT_SUPPORTED, and
    PD_FAKE_CUDA_ALLOC_FAIL=<CUresult> makes cuMemAlloc fail with that code
    (700, CUDA_ERROR_ILLEGAL_ADDRESS, to test a context left unusable).
    PD_FAKE_CUDA_MEM=<bytes> makes the device that small: cuMemAlloc answers
    CUDA_ERROR_OUT_OF_MEMORY beyond it. pd_fake_cuda_stats() counts the
    driver's allocations and frees, for tests of what Playdoh asks of it.
    The prototypes come from gpu/pd_cuda_abi.h, the table Playdoh loads.
*/
#include "pd_cuda_abi.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_EXPORT __attribute__((visibility("default")))
#define S_DECL(sym, params) S_EXPORT pd_cu_result_t sym params;
PD_CUDRV_FUNCS(S_DECL)
#undef S_DECL

static int s_inited;
static int s_current; /* a context is current */

/* Physical index of visible ordinal `ordinal`, or -1. */
static int s_physical(int ordinal)
{
    const char *n = getenv("PD_FAKE_CUDA_DEVICES");
    int total = n && *n ? atoi(n) : 2;
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    if (!vis)
        return ordinal >= 0 && ordinal < total ? ordinal : -1;
    int k = 0;
    const char *p = vis;
    while (*p) {
        char *end;
        long idx = strtol(p, &end, 10);
        if (end == p || idx < 0 || idx >= total)
            return -1; /* the list stops at the first bad entry */
        if (k == ordinal)
            return (int) idx;
        k++;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return -1;
}

pd_cu_result_t cuInit(unsigned int flags)
{
    if (flags != 0)
        return 1; /* CUDA_ERROR_INVALID_VALUE */
    s_inited = 1;
    return PD_CU_SUCCESS;
}

pd_cu_result_t cuDriverGetVersion(int *version)
{
    *version = 12040;
    return PD_CU_SUCCESS;
}

pd_cu_result_t cuDeviceGetCount(int *count)
{
    if (!s_inited)
        return PD_CU_ERROR_NOT_INITIALIZED;
    int n = 0;
    while (s_physical(n) >= 0)
        n++;
    *count = n;
    return PD_CU_SUCCESS;
}

pd_cu_result_t cuDeviceGet(pd_cu_device_t *dev, int ordinal)
{
    if (!s_inited)
        return PD_CU_ERROR_NOT_INITIALIZED;
    int phys = s_physical(ordinal);
    if (phys < 0)
        return 101; /* CUDA_ERROR_INVALID_DEVICE */
    *dev = phys;
    return PD_CU_SUCCESS;
}

pd_cu_result_t cuDeviceGetName(char *name, int len, pd_cu_device_t dev)
{
    snprintf(name, (size_t) len, "Fake GPU %d", dev);
    return PD_CU_SUCCESS;
}

pd_cu_result_t cuDeviceTotalMem_v2(size_t *bytes, pd_cu_device_t dev)
{
    *bytes = (size_t) (dev + 1) << 30;
    return PD_CU_SUCCESS;
}

pd_cu_result_t cuDeviceGetAttribute(int *value, unsigned int attrib, pd_cu_device_t dev)
{
    (void) dev;
    if (attrib == PD_CU_ATTR_CC_MAJOR)
        *value = 8;
    else if (attrib == PD_CU_ATTR_CC_MINOR)
        *value = 6;
    else
        return 1;
    return PD_CU_SUCCESS;
}

pd_cu_result_t cuDevicePrimaryCtxRetain(pd_cu_context_t *ctx, pd_cu_device_t dev)
{
    static char fake_ctx;
    (void) dev;
    *ctx = (pd_cu_context_t) (void *) &fake_ctx;
    return PD_CU_SUCCESS;
}

pd_cu_result_t cuDevicePrimaryCtxRelease_v2(pd_cu_device_t dev)
{
    (void) dev;
    s_current = 0;
    return PD_CU_SUCCESS;
}

pd_cu_result_t cuCtxSetCurrent(pd_cu_context_t ctx)
{
    s_current = ctx != NULL;
    return PD_CU_SUCCESS;
}

pd_cu_result_t cuCtxSynchronize(void) { return s_current ? PD_CU_SUCCESS : 201; }

pd_cu_result_t cuModuleLoadData(pd_cu_module_t *mod, const void *image)
{
    (void) mod;
    (void) image;
    return PD_CU_ERROR_NOT_SUPPORTED;
}

pd_cu_result_t cuModuleUnload(pd_cu_module_t mod)
{
    (void) mod;
    return PD_CU_SUCCESS;
}

pd_cu_result_t cuModuleGetFunction(pd_cu_function_t *fn, pd_cu_module_t mod, const char *name)
{
    (void) fn;
    (void) mod;
    (void) name;
    return PD_CU_ERROR_NOT_FOUND;
}

/* Each block is preceded by its size, so frees can be counted in bytes. */
#define S_HEADER 16
static size_t s_in_use, s_allocs, s_frees;

/* Allocations and frees so far, and the bytes in use (for tests that load
   this library with dlopen and look the function up). */
S_EXPORT void pd_fake_cuda_stats(size_t *allocs, size_t *frees, size_t *in_use);
S_EXPORT void pd_fake_cuda_stats(size_t *allocs, size_t *frees, size_t *in_use)
{
    *allocs = s_allocs;
    *frees = s_frees;
    *in_use = s_in_use;
}

pd_cu_result_t cuMemAlloc_v2(pd_cu_ptr_t *dptr, size_t bytes)
{
    const char *fail = getenv("PD_FAKE_CUDA_ALLOC_FAIL");
    if (fail && *fail)
        return (pd_cu_result_t) atoi(fail);
    if (!s_current)
        return 201; /* CUDA_ERROR_INVALID_CONTEXT */
    const char *mem = getenv("PD_FAKE_CUDA_MEM");
    if (mem && *mem && s_in_use + bytes > strtoull(mem, NULL, 10))
        return PD_CU_ERROR_OUT_OF_MEMORY;
    char *p = bytes < SIZE_MAX - S_HEADER ? malloc(bytes + S_HEADER) : NULL;
    if (!p)
        return PD_CU_ERROR_OUT_OF_MEMORY;
    memcpy(p, &bytes, sizeof bytes);
    s_in_use += bytes;
    s_allocs++;
    *dptr = (pd_cu_ptr_t) (uintptr_t) (p + S_HEADER);
    return PD_CU_SUCCESS;
}

pd_cu_result_t cuMemFree_v2(pd_cu_ptr_t dptr)
{
    if (!dptr)
        return PD_CU_SUCCESS;
    char *p = (char *) (uintptr_t) dptr - S_HEADER;
    size_t bytes;
    memcpy(&bytes, p, sizeof bytes);
    s_in_use -= bytes;
    s_frees++;
    free(p);
    return PD_CU_SUCCESS;
}

pd_cu_result_t cuMemcpyHtoD_v2(pd_cu_ptr_t dst, const void *src, size_t bytes)
{
    memcpy((void *) (uintptr_t) dst, src, bytes);
    return PD_CU_SUCCESS;
}

pd_cu_result_t cuMemcpyDtoH_v2(void *dst, pd_cu_ptr_t src, size_t bytes)
{
    memcpy(dst, (const void *) (uintptr_t) src, bytes);
    return PD_CU_SUCCESS;
}

pd_cu_result_t cuLaunchKernel(pd_cu_function_t fn, unsigned int gx, unsigned int gy,
                              unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz,
                              unsigned int shared, pd_cu_stream_t stream, void **params,
                              void **extra)
{
    (void) fn, (void) gx, (void) gy, (void) gz, (void) bx, (void) by, (void) bz;
    (void) shared, (void) stream, (void) params, (void) extra;
    return PD_CU_ERROR_NOT_SUPPORTED;
}

pd_cu_result_t cuGetErrorName(pd_cu_result_t err, const char **str)
{
    switch (err) {
    case PD_CU_ERROR_OUT_OF_MEMORY: *str = "CUDA_ERROR_OUT_OF_MEMORY"; break;
    case PD_CU_ERROR_NOT_INITIALIZED: *str = "CUDA_ERROR_NOT_INITIALIZED"; break;
    case PD_CU_ERROR_NOT_FOUND: *str = "CUDA_ERROR_NOT_FOUND"; break;
    case PD_CU_ERROR_NOT_SUPPORTED: *str = "CUDA_ERROR_NOT_SUPPORTED"; break;
    case 700: *str = "CUDA_ERROR_ILLEGAL_ADDRESS"; break;
    default: return 1;
    }
    return PD_CU_SUCCESS;
}

pd_cu_result_t cuGetErrorString(pd_cu_result_t err, const char **str)
{
    switch (err) {
    case PD_CU_ERROR_OUT_OF_MEMORY: *str = "out of memory"; break;
    case PD_CU_ERROR_NOT_SUPPORTED: *str = "operation not supported"; break;
    case 700: *str = "an illegal memory access was encountered"; break;
    default: return 1;
    }
    return PD_CU_SUCCESS;
}
