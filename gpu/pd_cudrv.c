/*  pd_cudrv: the CUDA driver API through dlopen; see pd_cudrv.h.

    The function table is generated from PD_CUDRV_FUNCS (pd_cuda_abi.h), so
    the list of symbols looked up, the pointers' types and the ABI test all
    come from one place. Each wrapper checks the broken flag, calls the
    driver, and on failure formats "function: NAME (description)" with the
    driver's own cuGetErrorName/cuGetErrorString.
*/
#include "pd_cudrv.h"
#include "pd_plat.h"
#include "pd_error.h"
#include "pd_log.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_FIELD(sym, params) pd_cu_result_t(*sym) params;

struct pd_cudrv {
    void *lib;                 /* dlopen handle */
    char path[512];            /* library as opened */
    struct {
        PD_CUDRV_FUNCS(S_FIELD)
    } fn;                      /* the driver's functions */
    bool inited;               /* cuInit succeeded */
    bool has_ctx;              /* a primary context is retained */
    pd_cu_device_t dev;        /* the context's device */
    bool broken;               /* a sticky error happened */
    pd_cu_result_t last;       /* CUresult of the last failure */
    char msg[512];             /* sentence for the last failure */
};

#undef S_FIELD

/* Looks up sym into *slot (a function pointer); false when absent. */
static bool s_sym(void *lib, const char *sym, void *slot)
{
    void *p = pd_plat_dlsym_any(lib, sym);
    if (!p)
        return false;
    memcpy(slot, &p, sizeof p); /* POSIX: function pointers are object-sized */
    return true;
}

pd_cudrv_t *pd_cudrv_open(const char *path, int *err, char *why, size_t cap)
{
    if (!path) {
        const char *env = getenv("PLAYDOH_LIBCUDA");
        path = env && *env ? env : PD_CUDRV_DEFAULT_LIB;
    }
    pd_cudrv_t *d = calloc(1, sizeof *d);
    if (!d) {
        if (err)
            *err = PD_ENOMEM;
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    snprintf(d->path, sizeof d->path, "%s", path);
    char e[512];
    d->lib = pd_plat_dlopen_system(path, e, sizeof e);
    /* Kept mapped after pd_plat_dlclose(): CUDA's libraries start threads
       and keep C++ runtime state that must outlive them. */
    if (!d->lib) {
        snprintf(why, cap, "no CUDA driver: %s: %s", path, e);
        goto fail;
    }
#define S_LOOKUP(sym, params)                                                        \
    if (!s_sym(d->lib, #sym, &d->fn.sym)) {                                          \
        snprintf(why, cap, "%s is not a usable CUDA driver: it has no %s (driver "    \
                 "too old?)", path, #sym);                                           \
        goto fail;                                                                   \
    }
    PD_CUDRV_FUNCS(S_LOOKUP)
#undef S_LOOKUP
    return d;
fail:
    if (err)
        *err = PD_ENOGPU;
    pd_cudrv_destroy(&d);
    return NULL;
}

void pd_cudrv_destroy(pd_cudrv_t **p)
{
    if (!p || !*p)
        return;
    pd_cudrv_t *d = *p;
    if (d->has_ctx)
        d->fn.cuDevicePrimaryCtxRelease_v2(d->dev);
    if (d->lib)
        pd_plat_dlclose(d->lib);
    free(d);
    *p = NULL;
}

const char *pd_cudrv_error(const pd_cudrv_t *d) { return d->msg; }
pd_cu_result_t pd_cudrv_last(const pd_cudrv_t *d) { return d->last; }
bool pd_cudrv_broken(const pd_cudrv_t *d) { return d->broken; }
const char *pd_cudrv_path(const pd_cudrv_t *d) { return d->path; }

/* Records a failed call of fname with result rc; returns PD_ECUDA. */
static int s_fail(pd_cudrv_t *d, const char *fname, pd_cu_result_t rc)
{
    const char *name = NULL, *desc = NULL;
    if (d->fn.cuGetErrorName(rc, &name) != PD_CU_SUCCESS)
        name = NULL;
    if (d->fn.cuGetErrorString(rc, &desc) != PD_CU_SUCCESS)
        desc = NULL;
    char num[32];
    snprintf(num, sizeof num, "CUDA error %u", rc);
    const char *hint = "";
    if (rc == PD_CU_ERROR_STUB_LIBRARY)
        hint = ": the CUDA toolkit's stub library was loaded instead of the NVIDIA driver";
    else if (rc == PD_CU_ERROR_UNSUPPORTED_PTX_VERSION)
        hint = ": the NVIDIA driver is older than the NVRTC that compiled the kernels "
               "(update the driver, or point PLAYDOH_NVRTC to an older libnvrtc)";
    snprintf(d->msg, sizeof d->msg, "%s: %s%s%s%s%s", fname, name ? name : num,
             desc ? " (" : "", desc ? desc : "", desc ? ")" : "", hint);
    d->last = rc;
    if (rc >= PD_CU_STICKY_FIRST && rc <= PD_CU_STICKY_LAST)
        d->broken = true;
    return PD_ECUDA;
}

/* Calls d->fn.sym(args...) unless the context is broken. */
#define S_CALL(d, sym, ...)                                                          \
    ((d)->broken ? s_broken(d)                                                       \
                 : s_check((d), #sym, (d)->fn.sym(__VA_ARGS__)))

static int s_check(pd_cudrv_t *d, const char *fname, pd_cu_result_t rc)
{
    /* The name without the _v2 suffix is the one users know. */
    char plain[64];
    snprintf(plain, sizeof plain, "%s", fname);
    char *v = strstr(plain, "_v2");
    if (v)
        *v = 0;
    return rc == PD_CU_SUCCESS ? 0 : s_fail(d, plain, rc);
}

static int s_broken(pd_cudrv_t *d)
{
    char prev[sizeof d->msg];
    snprintf(prev, sizeof prev, "%s", d->msg);
    if (strncmp(prev, "the GPU context", 15) != 0)
        snprintf(d->msg, sizeof d->msg, "the GPU context of this slot was broken by an "
                 "earlier error (%.400s); the slot process restarts after this job", prev);
    return PD_ECUDA;
}

int pd_cudrv_init(pd_cudrv_t *d)
{
    if (d->inited)
        return 0;
    int rc = S_CALL(d, cuInit, 0);
    d->inited = rc == 0;
    return rc;
}

int pd_cudrv_version(pd_cudrv_t *d, int *version)
{
    *version = 0;
    return S_CALL(d, cuDriverGetVersion, version);
}

int pd_cudrv_count(pd_cudrv_t *d, int *n)
{
    *n = 0;
    int rc = S_CALL(d, cuDeviceGetCount, n);
    if (rc == 0 && *n < 0)
        *n = 0;
    return rc;
}

int pd_cudrv_info(pd_cudrv_t *d, int ordinal, pd_gpu_info_t *info)
{
    memset(info, 0, sizeof *info);
    pd_cu_device_t dev;
    size_t mem = 0;
    int rc;
    if ((rc = S_CALL(d, cuDeviceGet, &dev, ordinal)) ||
        (rc = S_CALL(d, cuDeviceGetName, info->name, (int) sizeof info->name - 1, dev)) ||
        (rc = S_CALL(d, cuDeviceTotalMem_v2, &mem, dev)) ||
        (rc = S_CALL(d, cuDeviceGetAttribute, &info->cc_major, PD_CU_ATTR_CC_MAJOR, dev)) ||
        (rc = S_CALL(d, cuDeviceGetAttribute, &info->cc_minor, PD_CU_ATTR_CC_MINOR, dev)))
        return rc;
    info->name[sizeof info->name - 1] = 0;
    info->mem = mem;
    return 0;
}

int pd_cudrv_ctx_open(pd_cudrv_t *d, int ordinal)
{
    assert(!d->has_ctx);
    int rc;
    pd_cu_device_t dev;
    pd_cu_context_t ctx = NULL;
    if ((rc = pd_cudrv_init(d)) || (rc = S_CALL(d, cuDeviceGet, &dev, ordinal)) ||
        (rc = S_CALL(d, cuDevicePrimaryCtxRetain, &ctx, dev)))
        return rc;
    d->has_ctx = true;
    d->dev = dev;
    return S_CALL(d, cuCtxSetCurrent, ctx);
}

int pd_cudrv_module_load(pd_cudrv_t *d, const void *image, pd_cu_module_t *mod)
{
    *mod = NULL;
    return S_CALL(d, cuModuleLoadData, mod, image);
}

void pd_cudrv_module_unload(pd_cudrv_t *d, pd_cu_module_t mod)
{
    if (mod && !d->broken)
        d->fn.cuModuleUnload(mod);
}

int pd_cudrv_function(pd_cudrv_t *d, pd_cu_module_t mod, const char *name, pd_cu_function_t *fn)
{
    *fn = NULL;
    return S_CALL(d, cuModuleGetFunction, fn, mod, name);
}

int pd_cudrv_alloc(pd_cudrv_t *d, size_t bytes, pd_cu_ptr_t *ptr)
{
    *ptr = 0;
    return S_CALL(d, cuMemAlloc_v2, ptr, bytes);
}

int pd_cudrv_free(pd_cudrv_t *d, pd_cu_ptr_t ptr)
{
    return ptr ? S_CALL(d, cuMemFree_v2, ptr) : 0;
}

int pd_cudrv_htod(pd_cudrv_t *d, pd_cu_ptr_t dst, const void *src, size_t bytes)
{
    return bytes ? S_CALL(d, cuMemcpyHtoD_v2, dst, src, bytes) : 0;
}

int pd_cudrv_dtoh(pd_cudrv_t *d, void *dst, pd_cu_ptr_t src, size_t bytes)
{
    return bytes ? S_CALL(d, cuMemcpyDtoH_v2, dst, src, bytes) : 0;
}

int pd_cudrv_launch(pd_cudrv_t *d, pd_cu_function_t fn, const unsigned grid[3],
                    const unsigned block[3], unsigned shared, void **args)
{
    int rc = S_CALL(d, cuLaunchKernel, fn, grid[0], grid[1], grid[2], block[0], block[1],
                    block[2], shared, NULL, args, NULL);
    return rc ? rc : S_CALL(d, cuCtxSynchronize);
}

const char *pd_gpu_mem_str(uint64_t bytes, char *buf, size_t cap)
{
    double gib = (double) bytes / (1024.0 * 1024.0 * 1024.0);
    if (gib >= 1.0)
        snprintf(buf, cap, "%.1f GiB", gib);
    else if (bytes >= (1u << 20))
        snprintf(buf, cap, "%.0f MiB", (double) bytes / (1024.0 * 1024.0));
    else if (bytes >= 1024)
        snprintf(buf, cap, "%.0f KiB", (double) bytes / 1024.0);
    else
        snprintf(buf, cap, "%llu bytes", (unsigned long long) bytes);
    return buf;
}

int pd_gpu_discover(const char *libpath, pd_gpu_info_t *out, int max, char *why, size_t cap)
{
    why[0] = 0;
    pd_cudrv_t *d = pd_cudrv_open(libpath, NULL, why, cap);
    if (!d)
        return 0;
    int n = 0;
    if (pd_cudrv_init(d) || pd_cudrv_count(d, &n)) {
        snprintf(why, cap, "the CUDA driver %s found no usable GPU: %s", d->path, d->msg);
        pd_cudrv_destroy(&d);
        return 0;
    }
    int listed = 0;
    for (int i = 0; i < n && listed < max; i++) {
        if (pd_cudrv_info(d, i, &out[listed])) {
            snprintf(why, cap, "device %d: %s", i, d->msg);
            break;
        }
        listed++;
    }
    if (n == 0)
        snprintf(why, cap, "the CUDA driver %s shows no device", d->path);
    pd_cudrv_destroy(&d);
    return listed;
}
