/*  pd_gpurt: the GPU runtime of one GPU slot process.

    A GPU slot is a slot process started with CUDA_VISIBLE_DEVICES naming
    one device, so the driver shows it exactly one GPU, ordinal 0. The slot
    owns one pd_gpurt_t; the task API of playdoh_task.h (pd_cuda_*) goes
    through it. Nothing touches the driver until a job needs it: the first
    call opens libcuda, retains the device's primary context and makes it
    current (the slot process has one thread).

    CUDA modules (kind "cu": CUDA C source shipped like C modules) are
    compiled by NVRTC for the device's architecture, and the PTX is cached
    in the worker's module cache, shared by every slot and kept across runs:

        <cache>/ptx/<hash>-<arch>-nvrtc<M>.<m>.ptx

    keyed by the source's hash, the virtual architecture (compute_86) and
    the NVRTC version, so a new GPU or a new toolkit compiles afresh. Loaded
    modules, and modules that failed to compile, are remembered for the
    process's life: a broken module costs one compile per slot process.
*/
#ifndef PD_GPURT_H
#define PD_GPURT_H

#include "pd_cudrv.h"
#include "pd_nvrtc.h"

#include <stdbool.h>

typedef struct pd_gpurt pd_gpurt_t;

/* A runtime for the slot that holds the worker's GPU number `device` (for
   messages), with the module cache at cache_dir (copied). Touches no
   library. NULL when out of memory. */
pd_gpurt_t *pd_gpurt_new(const char *cache_dir, int device);
/* Unloads modules, releases the context, closes the libraries; sets *p to
   NULL; safe twice. */
void pd_gpurt_destroy(pd_gpurt_t **p);

/* The worker's number of this slot's GPU. */
int pd_gpurt_device(const pd_gpurt_t *g);

/* The driver with the device's context current, opened on first use.
   Returns it (owned by g), or NULL with *code (PD_ENOGPU: no driver;
   PD_ECUDA: the driver refused) and *msg (borrowed until the next call).
   A failure is remembered. */
pd_cudrv_t *pd_gpurt_driver(pd_gpurt_t *g, int *code, const char **msg);

/* Loads CUDA module `hash` (its source at <cache>/modules/<hash>.cu; name
   for messages), compiling it on first use. Returns 0 with *mod, or a code
   with *msg (borrowed until the next call): PD_ENOMODULE (no source),
   PD_ECOMPILE (NVRTC missing or the source does not compile: *msg holds
   NVRTC's log), PD_ENOGPU or PD_ECUDA (the driver refused, e.g. the PTX). */
int pd_gpurt_module(pd_gpurt_t *g, const char *hash, const char *name, pd_cu_module_t *mod,
                    const char **msg);

/* True once a CUDA error left the context unusable: the slot process
   should exit after its current jobs, to get a fresh context. */
bool pd_gpurt_broken(const pd_gpurt_t *g);

/* Device memory of at least `bytes` (> 0) for a job: a block an earlier job
   of this slot freed, when one of the same size class is kept, else a new
   one from the driver (which gets the kept blocks back first if it has no
   room). Returns 0 with *ptr; PD_ENOGPU or PD_ECUDA with *msg (borrowed
   until the next call: the driver's sentence, "cuMemAlloc:
   CUDA_ERROR_OUT_OF_MEMORY (out of memory)"); PD_EINVAL or PD_ENOMEM. */
int pd_gpurt_alloc(pd_gpurt_t *g, size_t bytes, pd_cu_ptr_t *ptr, const char **msg);
/* Takes back a block of pd_gpurt_alloc: kept for later jobs within the
   bounds (at most 64 blocks and min(256 MiB, 1/8 of the device's memory)
   idle; the oldest go back to the driver first), else freed. Returns 0;
   PD_EINVAL when ptr is not a block this runtime handed out (or was taken
   back already); PD_ECUDA when the driver refused to free it. */
int pd_gpurt_free(pd_gpurt_t *g, pd_cu_ptr_t ptr);
/* Bytes (and, when blocks is not NULL, blocks) kept idle for later jobs. */
size_t pd_gpurt_pooled(const pd_gpurt_t *g, size_t *blocks);

/* The PTX of CUDA module `hash` for arch, from the cache under cache_dir
   or compiled by nv and stored there. Needs no GPU. Returns 0 with *ptx
   (NUL-terminated, the caller frees), or PD_ENOMODULE, PD_ECOMPILE,
   PD_ESYS or PD_ENOMEM with *msg (a sentence, the caller frees; for
   PD_ECOMPILE "module NAME: CUDA compile error (NVRTC 13.0, compute_86):"
   and NVRTC's log). */
int pd_gpurt_ptx(const char *cache_dir, pd_nvrtc_t *nv, const char *hash, const char *name,
                 const char *arch, char **ptx, char **msg);

#endif
