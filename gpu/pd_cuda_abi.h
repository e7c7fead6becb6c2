/*  pd_cuda_abi.h: the parts of the CUDA driver API and NVRTC that Playdoh
    calls, declared here so that nothing needs the CUDA toolkit to build.

    Playdoh never links CUDA: gpu/pd_cudrv.c and gpu/pd_nvrtc.c dlopen the
    libraries and look these symbols up by name. Each X-macro row is
    (symbol, parameter list); every function returns a CUresult (driver) or
    an nvrtcResult (NVRTC), both unsigned ints on every ABI CUDA supports.
    The versioned names (cuMemAlloc_v2, ...) are what cuda.h's macros
    resolve to since CUDA 4: the un-suffixed symbols are the old 32-bit
    variants kept for binary compatibility, which we must not call.

    Handles use CUDA's own struct tags, so that tests/test_pd_cuda_abi.c,
    built where the toolkit is found, can check with the compiler that
    every row matches the prototype in cuda.h / nvrtc.h exactly.
*/
#ifndef PD_CUDA_ABI_H
#define PD_CUDA_ABI_H

#include <stddef.h>

typedef unsigned int pd_cu_result_t;              /* CUresult */
typedef int pd_cu_device_t;                       /* CUdevice */
typedef unsigned long long pd_cu_ptr_t;           /* CUdeviceptr (64-bit hosts) */
typedef struct CUctx_st *pd_cu_context_t;         /* CUcontext */
typedef struct CUmod_st *pd_cu_module_t;          /* CUmodule */
typedef struct CUfunc_st *pd_cu_function_t;       /* CUfunction */
typedef struct CUstream_st *pd_cu_stream_t;       /* CUstream (NULL: the default stream) */

/* CUresult values Playdoh looks at. */
#define PD_CU_SUCCESS 0u
#define PD_CU_ERROR_OUT_OF_MEMORY 2u
#define PD_CU_ERROR_NOT_INITIALIZED 3u
#define PD_CU_ERROR_STUB_LIBRARY 34u
#define PD_CU_ERROR_NO_DEVICE 100u
#define PD_CU_ERROR_INVALID_PTX 218u
#define PD_CU_ERROR_UNSUPPORTED_PTX_VERSION 222u
#define PD_CU_ERROR_NOT_FOUND 500u
#define PD_CU_ERROR_NOT_SUPPORTED 801u
/* Errors 700 .. 799 (illegal address, launch failure, ...) leave the
   context unusable: the process must exit to get the device back. */
#define PD_CU_STICKY_FIRST 700u
#define PD_CU_STICKY_LAST 799u

/* CUdevice_attribute values. */
#define PD_CU_ATTR_CC_MAJOR 75u
#define PD_CU_ATTR_CC_MINOR 76u

/* X(symbol, (parameters)): driver functions, all returning CUresult. */
#define PD_CUDRV_FUNCS(X)                                                            \
    X(cuInit, (unsigned int flags))                                                  \
    X(cuDriverGetVersion, (int *version))                                            \
    X(cuDeviceGetCount, (int *count))                                                \
    X(cuDeviceGet, (pd_cu_device_t * dev, int ordinal))                              \
    X(cuDeviceGetName, (char *name, int len, pd_cu_device_t dev))                    \
    X(cuDeviceTotalMem_v2, (size_t * bytes, pd_cu_device_t dev))                     \
    X(cuDeviceGetAttribute, (int *value, unsigned int attrib, pd_cu_device_t dev))   \
    X(cuDevicePrimaryCtxRetain, (pd_cu_context_t * ctx, pd_cu_device_t dev))         \
    X(cuDevicePrimaryCtxRelease_v2, (pd_cu_device_t dev))                            \
    X(cuCtxSetCurrent, (pd_cu_context_t ctx))                                        \
    X(cuCtxSynchronize, (void))                                                      \
    X(cuModuleLoadData, (pd_cu_module_t * mod, const void *image))                   \
    X(cuModuleUnload, (pd_cu_module_t mod))                                          \
    X(cuModuleGetFunction, (pd_cu_function_t * fn, pd_cu_module_t mod,               \
                            const char *name))                                       \
    X(cuMemAlloc_v2, (pd_cu_ptr_t * dptr, size_t bytes))                             \
    X(cuMemFree_v2, (pd_cu_ptr_t dptr))                                              \
    X(cuMemcpyHtoD_v2, (pd_cu_ptr_t dst, const void *src, size_t bytes))             \
    X(cuMemcpyDtoH_v2, (void *dst, pd_cu_ptr_t src, size_t bytes))                   \
    X(cuLaunchKernel, (pd_cu_function_t fn, unsigned int gx, unsigned int gy,        \
                       unsigned int gz, unsigned int bx, unsigned int by,            \
                       unsigned int bz, unsigned int shared, pd_cu_stream_t stream,  \
                       void **params, void **extra))                                 \
    X(cuGetErrorName, (pd_cu_result_t err, const char **str))                        \
    X(cuGetErrorString, (pd_cu_result_t err, const char **str))

typedef unsigned int pd_nvrtc_result_t;             /* nvrtcResult */
typedef struct _nvrtcProgram *pd_nvrtc_program_t;   /* nvrtcProgram */

#define PD_NVRTC_SUCCESS 0u
#define PD_NVRTC_ERROR_COMPILATION 6u

/* X(symbol, (parameters)): NVRTC functions, all returning nvrtcResult.
   nvrtcGetErrorString (returns const char *) and the supported-arch queries
   (CUDA 11.2 and later, optional) are looked up separately. */
#define PD_NVRTC_FUNCS(X)                                                            \
    X(nvrtcVersion, (int *major, int *minor))                                        \
    X(nvrtcCreateProgram, (pd_nvrtc_program_t * prog, const char *src,               \
                           const char *name, int nheaders,                           \
                           const char *const *headers,                               \
                           const char *const *include_names))                        \
    X(nvrtcDestroyProgram, (pd_nvrtc_program_t * prog))                              \
    X(nvrtcCompileProgram, (pd_nvrtc_program_t prog, int nopts,                      \
                            const char *const *opts))                                \
    X(nvrtcGetPTXSize, (pd_nvrtc_program_t prog, size_t * size))                     \
    X(nvrtcGetPTX, (pd_nvrtc_program_t prog, char *ptx))                             \
    X(nvrtcGetProgramLogSize, (pd_nvrtc_program_t prog, size_t * size))              \
    X(nvrtcGetProgramLog, (pd_nvrtc_program_t prog, char *log))

/* Optional NVRTC functions (may be absent from old libraries). */
#define PD_NVRTC_OPT_FUNCS(X)                                                        \
    X(nvrtcGetNumSupportedArchs, (int *n))                                           \
    X(nvrtcGetSupportedArchs, (int *archs))

#endif
