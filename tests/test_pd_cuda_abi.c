/*  Checks gpu/pd_cuda_abi.h against the CUDA toolkit's own headers.

    Playdoh declares the driver and NVRTC functions it calls itself, so that
    nothing needs the toolkit to build; a wrong declaration would be a crash
    on a GPU machine and nowhere else. Built only where the toolkit is found
    (meson option cuda), this file includes cuda.h and nvrtc.h and asserts,
    at compile time, that every row of PD_CUDRV_FUNCS and PD_NVRTC_FUNCS has
    exactly the type of the toolkit's prototype, and that the constants
    match. The build is the check; the test run repeats the size checks.
*/
#include <cuda.h>
#include <nvrtc.h>

#include "pd_cuda_abi.h"

#include <criterion/criterion.h>

#define S_SAME_FN(sym, params)                                                        \
    _Static_assert(__builtin_types_compatible_p(__typeof__(&sym),                     \
                                                pd_cu_result_t(*) params),            \
                   #sym " in pd_cuda_abi.h does not match cuda.h");
PD_CUDRV_FUNCS(S_SAME_FN)
#undef S_SAME_FN

#define S_SAME_NVRTC(sym, params)                                                     \
    _Static_assert(__builtin_types_compatible_p(__typeof__(&sym),                     \
                                                pd_nvrtc_result_t(*) params),         \
                   #sym " in pd_cuda_abi.h does not match nvrtc.h");
PD_NVRTC_FUNCS(S_SAME_NVRTC)
PD_NVRTC_OPT_FUNCS(S_SAME_NVRTC)
#undef S_SAME_NVRTC

_Static_assert(__builtin_types_compatible_p(__typeof__(&nvrtcGetErrorString),
                                            const char *(*) (pd_nvrtc_result_t)),
               "nvrtcGetErrorString");
_Static_assert(__builtin_types_compatible_p(CUresult, pd_cu_result_t), "CUresult");
_Static_assert(__builtin_types_compatible_p(CUdeviceptr, pd_cu_ptr_t), "CUdeviceptr");
_Static_assert(__builtin_types_compatible_p(CUdevice, pd_cu_device_t), "CUdevice");
_Static_assert(__builtin_types_compatible_p(CUcontext, pd_cu_context_t), "CUcontext");
_Static_assert(__builtin_types_compatible_p(CUmodule, pd_cu_module_t), "CUmodule");
_Static_assert(__builtin_types_compatible_p(CUfunction, pd_cu_function_t), "CUfunction");
_Static_assert(__builtin_types_compatible_p(nvrtcProgram, pd_nvrtc_program_t), "nvrtcProgram");
_Static_assert(PD_CU_SUCCESS == CUDA_SUCCESS, "CUDA_SUCCESS");
_Static_assert(PD_CU_ERROR_OUT_OF_MEMORY == CUDA_ERROR_OUT_OF_MEMORY, "OUT_OF_MEMORY");
_Static_assert(PD_CU_ERROR_NOT_INITIALIZED == CUDA_ERROR_NOT_INITIALIZED, "NOT_INITIALIZED");
_Static_assert(PD_CU_ERROR_STUB_LIBRARY == CUDA_ERROR_STUB_LIBRARY, "STUB_LIBRARY");
_Static_assert(PD_CU_ERROR_NO_DEVICE == CUDA_ERROR_NO_DEVICE, "NO_DEVICE");
_Static_assert(PD_CU_ERROR_INVALID_PTX == CUDA_ERROR_INVALID_PTX, "INVALID_PTX");
_Static_assert(PD_CU_ERROR_UNSUPPORTED_PTX_VERSION == CUDA_ERROR_UNSUPPORTED_PTX_VERSION,
               "UNSUPPORTED_PTX_VERSION");
_Static_assert(PD_CU_ERROR_NOT_FOUND == CUDA_ERROR_NOT_FOUND, "NOT_FOUND");
_Static_assert(PD_CU_ERROR_NOT_SUPPORTED == CUDA_ERROR_NOT_SUPPORTED, "NOT_SUPPORTED");
_Static_assert(PD_CU_STICKY_FIRST == CUDA_ERROR_ILLEGAL_ADDRESS, "ILLEGAL_ADDRESS");
_Static_assert(PD_CU_ATTR_CC_MAJOR == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "CC_MAJOR");
_Static_assert(PD_CU_ATTR_CC_MINOR == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "CC_MINOR");
_Static_assert(PD_NVRTC_SUCCESS == NVRTC_SUCCESS, "NVRTC_SUCCESS");
_Static_assert(PD_NVRTC_ERROR_COMPILATION == NVRTC_ERROR_COMPILATION, "NVRTC_ERROR_COMPILATION");

Test(gpu_abi, declarations_match_the_toolkit_headers)
{
    /* The _Static_asserts above did the work when this file compiled. */
    cr_assert_eq(sizeof(pd_cu_ptr_t), sizeof(CUdeviceptr));
    cr_assert_eq(sizeof(pd_cu_result_t), sizeof(CUresult));
    cr_assert_eq(sizeof(pd_cu_device_t), sizeof(CUdevice));
}
