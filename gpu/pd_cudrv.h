/*  pd_cudrv: the CUDA driver API, loaded at run time with dlopen.

    One object per process. The worker uses it once at start-up to count its
    GPUs (pd_gpu_discover); a GPU slot process keeps one for its life to run
    tasks' kernels on its one visible device (context, modules, memory,
    launches). Nothing links libcuda, so one binary runs on machines with and
    without a GPU and with any driver version.

    The library is $PLAYDOH_LIBCUDA when set (a path; for drivers installed
    outside the loader's path, e.g. /usr/lib/wsl/lib/libcuda.so.1), else
    "libcuda.so.1", the name every NVIDIA driver installs (never the
    unversioned libcuda.so, which may be the toolkit's stub).

    Every call returns 0 or PD_ECUDA; pd_cudrv_error() then holds a sentence
    naming the driver function and the CUDA error ("cuMemAlloc:
    CUDA_ERROR_OUT_OF_MEMORY (out of memory)"). An error that leaves the
    context unusable (700 .. 799: illegal address, launch failure, ...) marks
    the object broken: every later call fails at once, and the process
    should exit so that the device is reset for the next one.
*/
#ifndef PD_CUDRV_H
#define PD_CUDRV_H

#include "pd_cuda_abi.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_CUDRV_DEFAULT_LIB pd_plat_cuda_driver() /* libcuda.so.1, nvcuda.dll */
#define PD_GPU_MAX 64        /* devices one worker offers at most */
#define PD_GPU_NAME_MAX 96   /* bytes of a device name, with its NUL */

/* What the worker tells the broker about one GPU. */
typedef struct {
    char name[PD_GPU_NAME_MAX]; /* cuDeviceGetName, e.g. "NVIDIA H100 80GB HBM3" */
    uint64_t mem;               /* total memory, bytes */
    int cc_major;               /* compute capability, e.g. 8 */
    int cc_minor;               /* e.g. 6 */
} pd_gpu_info_t;

typedef struct pd_cudrv pd_cudrv_t;

/* Loads the driver library (path NULL: $PLAYDOH_LIBCUDA, else
   PD_CUDRV_DEFAULT_LIB) and looks up every function Playdoh uses. Returns
   the object, or NULL with *err (if not NULL) set to PD_ENOGPU (no library,
   or one without the functions) or PD_ENOMEM, and why (cap bytes) saying
   which library failed and how. Does not call cuInit. */
pd_cudrv_t *pd_cudrv_open(const char *path, int *err, char *why, size_t cap);
/* Releases the context (if any), dlcloses, frees; sets *p to NULL; safe twice. */
void pd_cudrv_destroy(pd_cudrv_t **p);

/* The last failure as a sentence (borrowed until the next call), "" if none. */
const char *pd_cudrv_error(const pd_cudrv_t *d);
/* The CUresult of the last failure (0 if none). */
pd_cu_result_t pd_cudrv_last(const pd_cudrv_t *d);
/* True once a sticky error (700 .. 799) happened. */
bool pd_cudrv_broken(const pd_cudrv_t *d);
/* The library's path or name as opened (borrowed). */
const char *pd_cudrv_path(const pd_cudrv_t *d);

/* cuInit(0); then the driver's version (e.g. 12040 for 12.4). */
int pd_cudrv_init(pd_cudrv_t *d);
int pd_cudrv_version(pd_cudrv_t *d, int *version);
/* Number of devices the driver shows this process (after CUDA_VISIBLE_DEVICES). */
int pd_cudrv_count(pd_cudrv_t *d, int *n);
/* Name, memory and compute capability of device `ordinal`. */
int pd_cudrv_info(pd_cudrv_t *d, int ordinal, pd_gpu_info_t *info);

/* Retains device ordinal's primary context and makes it current for this
   thread. Called once; pd_cudrv_destroy releases it. */
int pd_cudrv_ctx_open(pd_cudrv_t *d, int ordinal);
/* Loads a PTX (NUL-terminated) or cubin image; the driver JIT-compiles PTX
   for the device. */
int pd_cudrv_module_load(pd_cudrv_t *d, const void *image, pd_cu_module_t *mod);
void pd_cudrv_module_unload(pd_cudrv_t *d, pd_cu_module_t mod);
/* The kernel called name in mod; PD_ECUDA with CUDA_ERROR_NOT_FOUND (see
   pd_cudrv_last) when the module has none. */
int pd_cudrv_function(pd_cudrv_t *d, pd_cu_module_t mod, const char *name, pd_cu_function_t *fn);
int pd_cudrv_alloc(pd_cudrv_t *d, size_t bytes, pd_cu_ptr_t *ptr);
int pd_cudrv_free(pd_cudrv_t *d, pd_cu_ptr_t ptr);
int pd_cudrv_htod(pd_cudrv_t *d, pd_cu_ptr_t dst, const void *src, size_t bytes);
int pd_cudrv_dtoh(pd_cudrv_t *d, void *dst, pd_cu_ptr_t src, size_t bytes);
/* Launches fn on the default stream with grid x block threads and `shared`
   bytes of dynamic shared memory, then waits for it (cuCtxSynchronize), so
   an error in the kernel is reported here. args as cuLaunchKernel's
   kernelParams: one pointer per kernel parameter. */
int pd_cudrv_launch(pd_cudrv_t *d, pd_cu_function_t fn, const unsigned grid[3],
                    const unsigned block[3], unsigned shared, void **args);

/* Counts this machine's GPUs: opens the driver (libpath as pd_cudrv_open),
   cuInit, and fills out[0 .. min(count, max)) with each device's details.
   Returns the count (>= 0). 0 with why (cap bytes) saying why there is
   none: no driver library, cuInit refused (no device, the toolkit's stub,
   a driver/kernel module mismatch), or no device. */
int pd_gpu_discover(const char *libpath, pd_gpu_info_t *out, int max, char *why, size_t cap);

/* "79.6 GiB", "512 MiB", "8 bytes"... for a byte count, into buf (cap bytes);
   returns buf. */
const char *pd_gpu_mem_str(uint64_t bytes, char *buf, size_t cap);

#endif
