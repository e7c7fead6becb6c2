/*  pd_gpurt: a GPU slot's driver, context, NVRTC and CUDA modules; see
    pd_gpurt.h.

    Everything opens lazily and remembers its failure, so that a job on a
    machine whose driver or NVRTC is broken fails fast with the same clear
    sentence every time instead of retrying a slow load.
*/
#include "pd_gpurt.h"
#include "pd_plat.h"
#include "pd_error.h"
#include "pd_file.h"
#include "pd_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_MAX_SOURCE (64u << 20)  /* bytes of CUDA source (the module limit) */
#define S_MAX_PTX (256u << 20)    /* bytes of a cached PTX file */
#define S_POOL_MAX_BYTES (256ull << 20) /* idle device memory kept, at most ... */
#define S_POOL_MAX_SHARE 8              /* ... and at most 1/8 of the device's */
#define S_POOL_MAX_BLOCKS 64            /* idle blocks kept */
#define S_SMALL_CLASS (1u << 20)        /* below: powers of two; above: 2 MiB steps */
#define S_MIN_CLASS 256u

/* A CUDA module this process tried to load. */
typedef struct {
    char hash[65];       /* content hash */
    pd_cu_module_t mod;  /* loaded module; NULL when loading failed */
    int code;            /* when mod is NULL: why, as a PD_E* code */
    char *msg;           /* when mod is NULL: the sentence, owned */
} s_cumod_t;

/* A block of device memory, as the driver allocated it. */
typedef struct {
    pd_cu_ptr_t ptr;
    size_t size;         /* its size class (what cuMemAlloc was asked for) */
} s_block_t;

/* A growable list of blocks. */
typedef struct {
    s_block_t *v;
    size_t n, cap;
} s_blocks_t;

struct pd_gpurt {
    char *cache_dir;       /* module cache, owned */
    int device;            /* the worker's number of this GPU */
    pd_cudrv_t *drv;       /* driver with the context current; NULL until opened */
    pd_gpu_info_t info;    /* the device, once opened */
    int drv_code;          /* a remembered failure to open the driver (0: none yet) */
    pd_nvrtc_t *nv;        /* NVRTC; NULL until needed */
    char arch[32];         /* virtual architecture chosen for the device */
    int nv_code;           /* a remembered failure to load NVRTC or pick arch */
    s_cumod_t *mods;       /* modules tried, owned */
    size_t nmods;          /* entries in mods */
    size_t capmods;        /* capacity of mods */
    s_blocks_t live;       /* device memory handed to jobs */
    s_blocks_t idle;       /* freed by jobs, kept for the next ones; oldest first */
    size_t idle_bytes;     /* bytes in idle */
    char msg[4200];        /* sentence for the last failure (NVRTC logs included) */
};

static void s_trim(pd_gpurt_t *g, size_t room);

pd_gpurt_t *pd_gpurt_new(const char *cache_dir, int device)
{
    pd_gpurt_t *g = calloc(1, sizeof *g);
    if (!g || !(g->cache_dir = strdup(cache_dir))) {
        free(g);
        return NULL;
    }
    g->device = device;
    return g;
}

void pd_gpurt_destroy(pd_gpurt_t **p)
{
    if (!p || !*p)
        return;
    pd_gpurt_t *g = *p;
    for (size_t i = 0; i < g->nmods; i++) {
        if (g->mods[i].mod && g->drv)
            pd_cudrv_module_unload(g->drv, g->mods[i].mod);
        free(g->mods[i].msg);
    }
    free(g->mods);
    /* Releasing the context would free them too; freeing them first keeps
       the memory accounting of drivers (and of tests' stand-ins) exact. */
    for (size_t i = 0; g->drv && !pd_cudrv_broken(g->drv) && i < g->live.n; i++)
        pd_cudrv_free(g->drv, g->live.v[i].ptr);
    if (g->drv && !pd_cudrv_broken(g->drv))
        s_trim(g, SIZE_MAX);
    free(g->live.v);
    free(g->idle.v);
    pd_cudrv_destroy(&g->drv);
    pd_nvrtc_destroy(&g->nv);
    free(g->cache_dir);
    free(g);
    *p = NULL;
}

int pd_gpurt_device(const pd_gpurt_t *g) { return g->device; }

bool pd_gpurt_broken(const pd_gpurt_t *g) { return g->drv && pd_cudrv_broken(g->drv); }

pd_cudrv_t *pd_gpurt_driver(pd_gpurt_t *g, int *code, const char **msg)
{
    if (g->drv) {
        return g->drv;
    }
    if (g->drv_code) {
        *code = g->drv_code;
        *msg = g->msg;
        return NULL;
    }
    char why[512];
    int err = PD_ENOGPU;
    pd_cudrv_t *d = pd_cudrv_open(NULL, &err, why, sizeof why);
    if (!d) {
        snprintf(g->msg, sizeof g->msg, "GPU %d: %s", g->device, why);
        g->drv_code = err;
    } else if (pd_cudrv_ctx_open(d, 0) || pd_cudrv_info(d, 0, &g->info)) {
        snprintf(g->msg, sizeof g->msg, "GPU %d: cannot open the device: %s", g->device,
                 pd_cudrv_error(d));
        g->drv_code = PD_ECUDA;
        pd_cudrv_destroy(&d);
    } else {
        g->drv = d;
        pd_log_debug("GPU %d: %s (compute %d.%d) ready", g->device, g->info.name,
                     g->info.cc_major, g->info.cc_minor);
        return d;
    }
    *code = g->drv_code;
    *msg = g->msg;
    return NULL;
}

static bool s_valid_hash(const char *hash)
{
    size_t i = 0;
    for (; hash[i]; i++)
        if (!((hash[i] >= '0' && hash[i] <= '9') || (hash[i] >= 'a' && hash[i] <= 'f')))
            return false;
    return i == 64;
}

/* asprintf that returns NULL on failure. */
static char *s_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *s_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

int pd_gpurt_ptx(const char *cache_dir, pd_nvrtc_t *nv, const char *hash, const char *name,
                 const char *arch, char **ptx, char **msg)
{
    *ptx = NULL;
    *msg = NULL;
    if (!s_valid_hash(hash)) {
        *msg = s_fmt("CUDA module %s: bad hash '%.70s'", name, hash);
        return PD_ENOMODULE;
    }
    int major, minor;
    pd_nvrtc_version(nv, &major, &minor);
    char dir[4200], path[4400], src[4200];
    snprintf(dir, sizeof dir, "%s/ptx", cache_dir);
    snprintf(path, sizeof path, "%s/%s-%s-nvrtc%d.%d.ptx", dir, hash, arch, major, minor);
    size_t len;
    if (pd_file_read(path, S_MAX_PTX, ptx, &len) == 0 && len > 0)
        return 0;
    free(*ptx);
    *ptx = NULL;
    snprintf(src, sizeof src, "%s/modules/%s.cu", cache_dir, hash);
    char *text = NULL;
    if (pd_file_read(src, S_MAX_SOURCE, &text, &len)) {
        *msg = s_fmt("CUDA module %s is not in this worker's cache (%s: %s)", name, src,
                     strerror(errno));
        return PD_ENOMODULE;
    }
    char *log = NULL;
    size_t ptxlen = 0;
    pd_log_debug("compiling CUDA module %s with NVRTC %d.%d for %s", name, major, minor, arch);
    int rc = pd_nvrtc_compile(nv, text, len, name, arch, ptx, &ptxlen, &log);
    free(text);
    if (rc) {
        *msg = rc == PD_ENOMEM ? NULL
                               : s_fmt("module %s: CUDA compile error (NVRTC %d.%d, %s):\n%s",
                                       name, major, minor, arch, log ? log : "(no log)");
        free(log);
        return rc == PD_ENOMEM || !*msg ? PD_ENOMEM : PD_ECOMPILE;
    }
    if (log)
        pd_log_debug("CUDA module %s: NVRTC says: %s", name, log);
    free(log);
    if ((pd_plat_mkdir(dir, 0755) && errno != EEXIST) || pd_file_write_atomic(path, *ptx, ptxlen)) {
        /* The PTX is good: use it, and say why it could not be kept. */
        pd_log_warn("cannot store compiled CUDA module %s in %s: %s", name, path,
                    strerror(errno));
    }
    return 0;
}

/* Loads NVRTC and picks the architecture, once. Returns 0 or a code with
   g->msg set. */
static int s_nvrtc(pd_gpurt_t *g)
{
    if (g->nv)
        return 0;
    if (g->nv_code)
        return g->nv_code;
    char why[900];
    int err = PD_ECOMPILE;
    g->nv = pd_nvrtc_open(&err, why, sizeof why);
    if (!g->nv) {
        snprintf(g->msg, sizeof g->msg, "cannot compile CUDA modules on this worker: %s", why);
        return g->nv_code = err;
    }
    if (pd_nvrtc_arch(g->nv, g->info.cc_major, g->info.cc_minor, g->arch, sizeof g->arch, why,
                      sizeof why)) {
        snprintf(g->msg, sizeof g->msg, "GPU %d (%s): %s", g->device, g->info.name, why);
        pd_nvrtc_destroy(&g->nv);
        return g->nv_code = PD_ECOMPILE;
    }
    return 0;
}

/* Remembers the outcome of loading hash. Returns the entry, or NULL when
   out of memory (then nothing is remembered). */
static s_cumod_t *s_remember(pd_gpurt_t *g, const char *hash, pd_cu_module_t mod, int code,
                             const char *msg)
{
    if (g->nmods == g->capmods) {
        size_t cap = g->capmods ? g->capmods * 2 : 8;
        s_cumod_t *m = realloc(g->mods, cap * sizeof *m);
        if (!m)
            return NULL;
        g->mods = m;
        g->capmods = cap;
    }
    s_cumod_t *e = &g->mods[g->nmods];
    memset(e, 0, sizeof *e);
    snprintf(e->hash, sizeof e->hash, "%s", hash);
    e->mod = mod;
    e->code = code;
    if (!mod && !(e->msg = strdup(msg)))
        return NULL;
    g->nmods++;
    return e;
}

int pd_gpurt_module(pd_gpurt_t *g, const char *hash, const char *name, pd_cu_module_t *mod,
                    const char **msg)
{
    *mod = NULL;
    for (size_t i = 0; i < g->nmods; i++)
        if (strcmp(g->mods[i].hash, hash) == 0) {
            *mod = g->mods[i].mod;
            *msg = g->mods[i].msg;
            return g->mods[i].mod ? 0 : g->mods[i].code;
        }
    int code = 0;
    pd_cudrv_t *d = pd_gpurt_driver(g, &code, msg);
    if (!d)
        return code; /* remembered by the driver state, not per module */
    if ((code = s_nvrtc(g)) != 0) {
        *msg = g->msg;
        return code;
    }
    char *ptx = NULL, *why = NULL;
    code = pd_gpurt_ptx(g->cache_dir, g->nv, hash, name, g->arch, &ptx, &why);
    pd_cu_module_t m = NULL;
    if (code == 0) {
        if (pd_cudrv_module_load(d, ptx, &m)) {
            snprintf(g->msg, sizeof g->msg, "module %s: the driver cannot load its PTX (%s): %s",
                     name, g->arch, pd_cudrv_error(d));
            code = PD_ECUDA;
        }
    } else {
        snprintf(g->msg, sizeof g->msg, "%s", why ? why : "out of memory compiling a CUDA module");
    }
    free(ptx);
    free(why);
    if (code == PD_ENOMEM || (code && pd_cudrv_broken(d))) {
        *msg = g->msg; /* not remembered: may work next time, or the slot restarts */
        return code;
    }
    s_cumod_t *e = s_remember(g, hash, m, code, g->msg);
    if (!e) {
        if (m)
            pd_cudrv_module_unload(d, m);
        *msg = "out of memory loading a CUDA module";
        return PD_ENOMEM;
    }
    *mod = e->mod;
    *msg = e->msg;
    return code;
}

/* ---- device memory ---------------------------------------------------------

   cuMemAlloc and cuMemFree cost tens of microseconds each (cuMemFree waits
   for the device), more than a small kernel: with them, the GPU work of a
   one-kernel job with two buffers took 203-289 us in a slot, without them
   35-38 us (H100, docs/performance.md). So a slot keeps the blocks its jobs free, in size
   classes, and hands them to later jobs asking for the same class, as
   PyTorch's caching allocator does. Bounded: at most S_POOL_MAX_BLOCKS
   idle blocks and min(256 MiB, 1/8 of the device) idle bytes; beyond that
   the oldest go back to the driver. When the driver has no room, the idle
   blocks go back and the allocation is tried once more. Every launch and
   copy is synchronous, so a freed block has no work pending on it. */

/* The size class of a request: powers of two up to 1 MiB, then 2 MiB
   steps; 0 when it would overflow. */
static size_t s_class(size_t bytes)
{
    if (bytes <= S_SMALL_CLASS) {
        size_t c = S_MIN_CLASS;
        while (c < bytes)
            c <<= 1;
        return c;
    }
    size_t step = 2 * (size_t) S_SMALL_CLASS;
    return bytes > SIZE_MAX - step ? 0 : (bytes + step - 1) / step * step;
}

/* Room for one more entry in l. Returns 0, or PD_ENOMEM. */
static int s_reserve(s_blocks_t *l)
{
    if (l->n < l->cap)
        return 0;
    size_t cap = l->cap ? l->cap * 2 : 16;
    s_block_t *v = realloc(l->v, cap * sizeof *v);
    if (!v)
        return PD_ENOMEM;
    l->v = v;
    l->cap = cap;
    return 0;
}

/* Appends to l, which has room (s_reserve). */
static void s_push(s_blocks_t *l, pd_cu_ptr_t ptr, size_t size)
{
    l->v[l->n++] = (s_block_t){ptr, size};
}

/* Removes entry i, keeping the order (idle is oldest first). */
static void s_take(s_blocks_t *l, size_t i)
{
    memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
    l->n--;
}

static size_t s_pool_max(const pd_gpurt_t *g)
{
    uint64_t share = g->info.mem / S_POOL_MAX_SHARE;
    return (size_t) (share < S_POOL_MAX_BYTES ? share : S_POOL_MAX_BYTES);
}

/* Gives the oldest idle blocks back to the driver until `room` more bytes
   and one more block fit under the bounds (all of them with room SIZE_MAX). */
static void s_trim(pd_gpurt_t *g, size_t room)
{
    size_t max = s_pool_max(g);
    while (g->idle.n > 0 &&
           (room == SIZE_MAX || g->idle.n >= S_POOL_MAX_BLOCKS || g->idle_bytes + room > max)) {
        s_block_t b = g->idle.v[0];
        s_take(&g->idle, 0);
        g->idle_bytes -= b.size;
        pd_cudrv_free(g->drv, b.ptr); /* a failure here is the driver's to report later */
    }
}

int pd_gpurt_alloc(pd_gpurt_t *g, size_t bytes, pd_cu_ptr_t *ptr, const char **msg)
{
    *ptr = 0;
    int code = 0;
    pd_cudrv_t *d = pd_gpurt_driver(g, &code, msg);
    if (!d)
        return code;
    size_t size = s_class(bytes);
    if (bytes == 0 || size == 0) {
        *msg = "pd_cuda_alloc: size out of range";
        return PD_EINVAL;
    }
    if (s_reserve(&g->live)) {
        *msg = "pd_cuda_alloc: the slot is out of host memory";
        return PD_ENOMEM;
    }
    for (size_t i = g->idle.n; i-- > 0;)
        if (g->idle.v[i].size == size) { /* the most recently freed: warm in caches */
            *ptr = g->idle.v[i].ptr;
            s_take(&g->idle, i);
            g->idle_bytes -= size;
            s_push(&g->live, *ptr, size);
            return 0;
        }
    int rc = pd_cudrv_alloc(d, size, ptr);
    if (rc && pd_cudrv_last(d) == PD_CU_ERROR_OUT_OF_MEMORY && g->idle.n > 0) {
        s_trim(g, SIZE_MAX);
        rc = pd_cudrv_alloc(d, size, ptr);
    }
    if (rc) {
        *msg = pd_cudrv_error(d);
        return PD_ECUDA;
    }
    s_push(&g->live, *ptr, size);
    return 0;
}

int pd_gpurt_free(pd_gpurt_t *g, pd_cu_ptr_t ptr)
{
    size_t i = 0;
    while (i < g->live.n && g->live.v[i].ptr != ptr)
        i++;
    if (i == g->live.n)
        return PD_EINVAL;
    s_block_t b = g->live.v[i];
    g->live.v[i] = g->live.v[--g->live.n];
    if (!g->drv || pd_cudrv_broken(g->drv))
        return 0; /* the context goes with the process */
    if (b.size <= s_pool_max(g) && s_reserve(&g->idle) == 0) {
        s_trim(g, b.size);
        s_push(&g->idle, b.ptr, b.size);
        g->idle_bytes += b.size;
        return 0;
    }
    return pd_cudrv_free(g->drv, b.ptr) ? PD_ECUDA : 0;
}

size_t pd_gpurt_pooled(const pd_gpurt_t *g, size_t *blocks)
{
    if (blocks)
        *blocks = g->idle.n;
    return g->idle_bytes;
}
