/*  pd_gpurt: a GPU slot's driver, context, NVRTC and CUDA modules; see
    pd_gpurt.h.

    Everything opens lazily and remembers its failure, so that a job on a
    machine whose driver or NVRTC is broken fails fast with the same clear
    sentence every time instead of retrying a slow load.
*/
#include "pd_gpurt.h"
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

/* A CUDA module this process tried to load. */
typedef struct {
    char hash[65];       /* content hash */
    pd_cu_module_t mod;  /* loaded module; NULL when loading failed */
    int code;            /* when mod is NULL: why, as a PD_E* code */
    char *msg;           /* when mod is NULL: the sentence, owned */
} s_cumod_t;

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
    char msg[4200];        /* sentence for the last failure (NVRTC logs included) */
};

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
    if ((mkdir(dir, 0755) && errno != EEXIST) || pd_file_write_atomic(path, *ptx, ptxlen)) {
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
