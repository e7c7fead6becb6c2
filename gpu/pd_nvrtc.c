/*  pd_nvrtc: NVRTC through dlopen; see pd_nvrtc.h for the search order.

    The function table comes from PD_NVRTC_FUNCS (pd_cuda_abi.h), checked
    against nvrtc.h by tests/test_pd_cuda_abi.c where the toolkit is found.
*/
#include "pd_nvrtc.h"
#include "pd_plat.h"
#include "pd_cuda_abi.h"
#include "pd_error.h"
#include "pd_log.h"

#include "pd_build.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_FIELD(sym, params) pd_nvrtc_result_t(*sym) params;
#define S_MAX_ARCHS 64

struct pd_nvrtc {
    void *lib;                 /* dlopen handle */
    char path[512];            /* library as opened */
    struct {
        PD_NVRTC_FUNCS(S_FIELD)
        PD_NVRTC_OPT_FUNCS(S_FIELD)
        const char *(*nvrtcGetErrorString)(pd_nvrtc_result_t rc);
    } fn;                      /* NVRTC's functions (optional ones may be NULL) */
    int major, minor;          /* nvrtcVersion */
    int archs[S_MAX_ARCHS];    /* supported virtual architectures (75, 80, ...) */
    int narchs;                /* entries in archs; 0 = unknown (old NVRTC) */
};

#undef S_FIELD

static bool s_sym(void *lib, const char *sym, void *slot)
{
    void *p = pd_plat_dlsym_any(lib, sym);
    if (!p)
        return false;
    memcpy(slot, &p, sizeof p);
    return true;
}

/* Tries one library; returns true when it loaded with every required symbol.
   Appends "path: reason; " to tried otherwise. */
static bool s_try(pd_nvrtc_t *n, const char *path, char *tried, size_t cap)
{
    char e[512];
    void *lib = pd_plat_dlopen_system(path, e, sizeof e);
    /* Kept mapped after pd_plat_dlclose(): CUDA's libraries start threads
       and keep C++ runtime state that must outlive them. */
    size_t used = strlen(tried);
    if (!lib) {
        snprintf(tried + used, cap - used, "%s%s: %s", used ? "; " : "", path, e);
        return false;
    }
    bool ok = true;
#define S_LOOKUP(sym, params) ok = ok && s_sym(lib, #sym, &n->fn.sym);
    PD_NVRTC_FUNCS(S_LOOKUP)
#undef S_LOOKUP
    ok = ok && s_sym(lib, "nvrtcGetErrorString", &n->fn.nvrtcGetErrorString);
    if (!ok) {
        snprintf(tried + used, cap - used, "%s%s: not an NVRTC library", used ? "; " : "", path);
        pd_plat_dlclose(lib);
        memset(&n->fn, 0, sizeof n->fn);
        return false;
    }
#define S_LOOKUP_OPT(sym, params) s_sym(lib, #sym, &n->fn.sym);
    PD_NVRTC_OPT_FUNCS(S_LOOKUP_OPT)
#undef S_LOOKUP_OPT
    n->lib = lib;
    snprintf(n->path, sizeof n->path, "%s", path);
    return true;
}

pd_nvrtc_t *pd_nvrtc_open(int *err, char *why, size_t cap)
{
    pd_nvrtc_t *n = calloc(1, sizeof *n);
    if (!n) {
        if (err)
            *err = PD_ENOMEM;
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    char tried[2048] = "";
    const char *env = getenv("PLAYDOH_NVRTC");
    bool found = false;
    if (env && *env) {
        found = s_try(n, env, tried, sizeof tried);
        if (!found)
            snprintf(why, cap, "cannot load NVRTC from PLAYDOH_NVRTC=%s (%s)", env, tried);
    } else {
        char places[8][600];
        int np = 0;
        /* A toolkit's own folder first ($CUDA_HOME, $CUDA_PATH, the usual
           place, the build's), where the system names one file. */
        const char *file = pd_plat_nvrtc_file(), *sub = pd_plat_cuda_libdir();
        static const char *homes[] = {"CUDA_HOME", "CUDA_PATH"};
        for (int i = 0; i < 2 && file; i++) {
            const char *h = getenv(homes[i]);
            if (h && *h)
                snprintf(places[np++], sizeof places[0], "%s/%s/%s", h, sub, file);
        }
        if (file)
            snprintf(places[np++], sizeof places[0], "/usr/local/cuda/%s/%s", sub, file);
#ifdef PD_CUDA_TOOLKIT_DIR
        if (file && strcmp(PD_CUDA_TOOLKIT_DIR, "/usr/local/cuda") != 0)
            snprintf(places[np++], sizeof places[0], "%s/%s/%s", PD_CUDA_TOOLKIT_DIR, sub, file);
#endif
        for (int i = 0; i < np && !found; i++)
            found = s_try(n, places[i], tried, sizeof tried);
        for (const char *const *nm = pd_plat_nvrtc_names(); *nm && !found; nm++)
            found = s_try(n, *nm, tried, sizeof tried);
        if (!found)
            snprintf(why, cap, "NVRTC (libnvrtc.so, CUDA's run-time compiler) not found: install "
                     "the CUDA toolkit or set PLAYDOH_NVRTC to its path (tried %s)", tried);
    }
    if (!found) {
        if (err)
            *err = PD_ECOMPILE;
        free(n);
        return NULL;
    }
    n->fn.nvrtcVersion(&n->major, &n->minor);
    int k = 0;
    if (n->fn.nvrtcGetNumSupportedArchs && n->fn.nvrtcGetSupportedArchs &&
        n->fn.nvrtcGetNumSupportedArchs(&k) == PD_NVRTC_SUCCESS && k > 0 && k <= S_MAX_ARCHS &&
        n->fn.nvrtcGetSupportedArchs(n->archs) == PD_NVRTC_SUCCESS)
        n->narchs = k;
    pd_log_debug("NVRTC %d.%d loaded from %s (%d architectures)", n->major, n->minor, n->path,
                 n->narchs);
    return n;
}

void pd_nvrtc_destroy(pd_nvrtc_t **p)
{
    if (!p || !*p)
        return;
    if ((*p)->lib)
        pd_plat_dlclose((*p)->lib);
    free(*p);
    *p = NULL;
}

const char *pd_nvrtc_path(const pd_nvrtc_t *n) { return n->path; }

void pd_nvrtc_version(const pd_nvrtc_t *n, int *major, int *minor)
{
    *major = n->major;
    *minor = n->minor;
}

int pd_nvrtc_arch(pd_nvrtc_t *n, int cc_major, int cc_minor, char *arch, size_t cap, char *why,
                  size_t whycap)
{
    int want = cc_major * 10 + cc_minor;
    int pick = want;
    if (n->narchs) {
        pick = 0;
        int oldest = n->archs[0];
        for (int i = 0; i < n->narchs; i++) {
            if (n->archs[i] <= want && n->archs[i] > pick)
                pick = n->archs[i];
            if (n->archs[i] < oldest)
                oldest = n->archs[i];
        }
        if (pick == 0) {
            snprintf(why, whycap, "this GPU (compute capability %d.%d) is older than every "
                     "architecture NVRTC %d.%d compiles for (the oldest is %d.%d): point "
                     "PLAYDOH_NVRTC to the NVRTC of an older CUDA toolkit", cc_major, cc_minor,
                     n->major, n->minor, oldest / 10, oldest % 10);
            return PD_ECOMPILE;
        }
    }
    snprintf(arch, cap, "compute_%d", pick);
    return 0;
}

/* Copies NVRTC's log into a malloc'ed string, trimmed; NULL when empty. */
static char *s_log(pd_nvrtc_t *n, pd_nvrtc_program_t prog)
{
    size_t len = 0;
    if (n->fn.nvrtcGetProgramLogSize(prog, &len) != PD_NVRTC_SUCCESS || len <= 1)
        return NULL;
    char *log = malloc(len + 1);
    if (!log)
        return NULL;
    if (n->fn.nvrtcGetProgramLog(prog, log) != PD_NVRTC_SUCCESS) {
        free(log);
        return NULL;
    }
    log[len] = 0;
    size_t l = strlen(log);
    while (l && (log[l - 1] == '\n' || log[l - 1] == ' '))
        log[--l] = 0;
    if (!l) {
        free(log);
        return NULL;
    }
    return log;
}

int pd_nvrtc_compile(pd_nvrtc_t *n, const char *src, size_t len, const char *name,
                     const char *arch, char **ptx, size_t *ptxlen, char **log)
{
    *ptx = NULL;
    *ptxlen = 0;
    *log = NULL;
    char *text = malloc(len + 1);
    if (!text)
        return PD_ENOMEM;
    memcpy(text, src, len);
    text[len] = 0;
    pd_nvrtc_program_t prog = NULL;
    pd_nvrtc_result_t rc = n->fn.nvrtcCreateProgram(&prog, text, name, 0, NULL, NULL);
    free(text);
    if (rc != PD_NVRTC_SUCCESS) {
        char buf[300];
        snprintf(buf, sizeof buf, "nvrtcCreateProgram: %s", n->fn.nvrtcGetErrorString(rc));
        *log = strdup(buf);
        return PD_ECOMPILE;
    }
    char archopt[64];
    snprintf(archopt, sizeof archopt, "--gpu-architecture=%s", arch);
    const char *opts[] = {archopt};
    rc = n->fn.nvrtcCompileProgram(prog, 1, opts);
    *log = s_log(n, prog);
    int code = 0;
    if (rc != PD_NVRTC_SUCCESS) {
        if (!*log) {
            char buf[300];
            snprintf(buf, sizeof buf, "%s", n->fn.nvrtcGetErrorString(rc));
            *log = strdup(buf);
        }
        code = PD_ECOMPILE;
    } else {
        size_t size = 0;
        if (n->fn.nvrtcGetPTXSize(prog, &size) != PD_NVRTC_SUCCESS || size == 0) {
            code = PD_ECOMPILE;
            free(*log);
            *log = strdup("NVRTC produced no PTX");
        } else if (!(*ptx = malloc(size + 1))) {
            code = PD_ENOMEM;
        } else if (n->fn.nvrtcGetPTX(prog, *ptx) != PD_NVRTC_SUCCESS) {
            free(*ptx);
            *ptx = NULL;
            code = PD_ECOMPILE;
            free(*log);
            *log = strdup("NVRTC could not return the PTX");
        } else {
            (*ptx)[size] = 0;
            *ptxlen = strlen(*ptx);
        }
    }
    n->fn.nvrtcDestroyProgram(&prog);
    return code;
}
