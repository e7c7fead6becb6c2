/*  pd_nvrtc: NVRTC, CUDA's run-time compiler, loaded with dlopen.

    A GPU slot compiles the CUDA C source shipped with a job (a module of
    kind "cu") to PTX for its own device's architecture; the driver then
    JIT-compiles the PTX to machine code when the module is loaded. NVRTC
    needs no GPU, so compiling is tested on machines without one.

    The library is searched for in this order; the first that loads wins:
      1. $PLAYDOH_NVRTC: a path to libnvrtc.so (when set, only this one is
         tried, and its failure is the error);
      2. $CUDA_HOME/lib64/libnvrtc.so, then $CUDA_PATH/lib64/libnvrtc.so;
      3. /usr/local/cuda/lib64/libnvrtc.so (the toolkit's default place);
      4. the toolkit found when Playdoh was built, if elsewhere (meson's
         cuda option; recorded as PD_CUDA_TOOLKIT_DIR);
      5. the loader's search path (ldconfig, LD_LIBRARY_PATH): libnvrtc.so,
         then libnvrtc.so.13, .so.12 and .so.11.2 (Debian's libnvrtc11.2).
*/
#ifndef PD_NVRTC_H
#define PD_NVRTC_H

#include <stddef.h>

typedef struct pd_nvrtc pd_nvrtc_t;

/* Loads NVRTC from the first place of the search order that works. Returns
   the object or NULL with *err (if not NULL) set to PD_ECOMPILE (not found:
   why lists the places tried) or PD_ENOMEM. */
pd_nvrtc_t *pd_nvrtc_open(int *err, char *why, size_t cap);
/* dlcloses and frees; sets *p to NULL; safe twice. */
void pd_nvrtc_destroy(pd_nvrtc_t **p);

/* The library's path as opened (borrowed). */
const char *pd_nvrtc_path(const pd_nvrtc_t *n);
/* NVRTC's version, e.g. 13 and 0. */
void pd_nvrtc_version(const pd_nvrtc_t *n, int *major, int *minor);

/* Chooses the virtual architecture ("compute_86") to compile for a device
   of compute capability cc_major.cc_minor: the device's own when NVRTC
   supports it, else the newest NVRTC supports below it (PTX runs on newer
   GPUs). Writes it into arch (cap bytes). Returns 0, or PD_ECOMPILE with
   why (whycap bytes) when the device is older than every architecture this
   NVRTC supports. */
int pd_nvrtc_arch(pd_nvrtc_t *n, int cc_major, int cc_minor, char *arch, size_t cap, char *why,
                  size_t whycap);

/* Compiles CUDA C source (len bytes; need not be NUL-terminated) named name
   (for NVRTC's messages) to PTX for arch ("compute_75"). Returns 0 with
   *ptx (NUL-terminated, *ptxlen bytes before the NUL) and *log (NVRTC's
   warnings, or NULL), both the caller's to free; or PD_ECOMPILE with *log
   holding NVRTC's log (the caller frees it; *ptx is NULL); or PD_ENOMEM. */
int pd_nvrtc_compile(pd_nvrtc_t *n, const char *src, size_t len, const char *name,
                     const char *arch, char **ptx, size_t *ptxlen, char **log);

#endif
