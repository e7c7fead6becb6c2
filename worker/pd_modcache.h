/*  pd_modcache: the worker's content-addressed module cache.

    Layout under the cache directory:
        modules/<hash>.c      C source as uploaded (hash = SHA-256 of the bytes)
        modules/<hash>.so     prebuilt shared object as uploaded
        modules/<hash>.cu     CUDA source as uploaded (compiled by GPU slots, gpu/pd_gpurt.h)
        ptx/<hash>-<arch>-nvrtc<M>.<m>.ptx  CUDA source compiled by NVRTC
        so/<hash>-<ccid>.so   C source compiled by this machine's compiler, whose
                              identity <ccid> is a short hash of `cc --version`
        include/playdoh_task.h  the task header, embedded in the worker binary
        shared/<hash>         shared data of maps (hash = BLAKE2b-256 of the bytes)

    The worker stores modules received from the broker (pd_modcache_store).
    Slot processes load them (pd_modcache_load): C source is compiled on first
    use, in the slot process so the worker loop never blocks, to a temporary
    file renamed into place (several slots may compile at once); the shared
    object is dlopen'ed once per slot process and its handle kept.

    Shared data: the worker stores each blob the broker sends once
    (pd_modcache_store_shared) and deletes it when the broker says so
    (pd_modcache_drop_shared). Every slot process maps it read-only and
    shared (pd_modcache_map_shared), so all slots of a machine read the same
    page-cache pages: one copy in memory per machine, none per job. A slot
    keeps at most PD_MODCACHE_MAPS blobs mapped and unmaps those whose file
    was deleted first.
*/
#ifndef PD_MODCACHE_H
#define PD_MODCACHE_H

#include <stdbool.h>
#include <stddef.h>

#define PD_MODCACHE_MAPS 8 /* shared-data blobs a slot process keeps mapped */
#define PD_MODCACHE_INIT "pd_init" /* a module's optional init function */

typedef struct pd_modcache pd_modcache_t;

/* Opens (creating as needed) the cache at dir and writes
   include/playdoh_task.h when it differs from the embedded header. Returns
   the cache or NULL with *err (when err is not NULL) set to PD_ESYS or
   PD_ENOMEM; the reason is logged. dir is copied. */
pd_modcache_t *pd_modcache_new(const char *dir, int *err);
/* dlcloses every loaded module, frees the cache, sets *p to NULL; safe twice. */
void pd_modcache_destroy(pd_modcache_t **p);

/* The cache directory (borrowed for the cache's life). */
const char *pd_modcache_dir(pd_modcache_t *mc);

/* The default cache directory: $XDG_CACHE_HOME/playdoh or ~/.cache/playdoh.
   Returns a string the caller frees, or NULL when neither variable is set. */
char *pd_modcache_default_dir(void);

/* True when hash is 64 lowercase hex digits and kind is "c", "so" or "cu". */
bool pd_modcache_valid(const char *hash, const char *kind);

/* Stores a module's bytes as modules/<hash>.<kind> after checking that hash
   is the SHA-256 of data. Returns 0, PD_EINVAL (bad hash or kind),
   PD_EPROTO (hash mismatch) or PD_ESYS; on failure why (cap bytes) says what
   was wrong. Storing a module already present is a cheap success. */
int pd_modcache_store(pd_modcache_t *mc, const char *hash, const char *kind,
                      const void *data, size_t len, char *why, size_t cap);
/* True when modules/<hash>.<kind> is present. */
bool pd_modcache_has(pd_modcache_t *mc, const char *hash, const char *kind);

/* Finds function fn in module hash (kind "c" or "so", name used in messages),
   compiling and loading the module on first use. Returns the function's
   address, or NULL with *code set to PD_ENOMODULE, PD_ECOMPILE or
   PD_ENOFUNC and *msg pointing to a sentence for the user (borrowed until
   the next call). A failed compile or load is remembered for the cache's
   life, so a broken module costs one compile per slot process. */
void *pd_modcache_load(pd_modcache_t *mc, const char *hash, const char *kind,
                       const char *name, const char *fn, int *code, const char **msg);

/* After a successful pd_modcache_load: the module's init function
   (PD_MODCACHE_INIT, int pd_init(pd_task_t *)) if it defines one that has
   not been handed out in this process yet, else NULL. Handed out once: the
   caller runs it before the module's first job. */
void *pd_modcache_take_init(pd_modcache_t *mc, const char *hash, const char *kind);
/* The module's init function failed with msg: every later load of it in
   this process fails with PD_ETASK and msg. */
void pd_modcache_init_failed(pd_modcache_t *mc, const char *hash, const char *kind,
                             const char *msg);

/* Stores shared data as shared/<hash> after checking that hash is the
   BLAKE2b-256 of data. Returns 0, PD_EINVAL (hash not 64 lowercase hex
   digits), PD_EPROTO (mismatch) or PD_ESYS, with why set. A blob already
   present is a cheap success. */
int pd_modcache_store_shared(pd_modcache_t *mc, const char *hash, const void *data, size_t len,
                             char *why, size_t cap);
/* True when shared/<hash> is present. */
bool pd_modcache_has_shared(pd_modcache_t *mc, const char *hash);
/* Deletes shared/<hash> (slots that map it keep their mapping until they
   let it go). */
void pd_modcache_drop_shared(pd_modcache_t *mc, const char *hash);
/* Maps shared/<hash> read-only (MAP_SHARED) into this process, once, and
   returns its address with *len; NULL with *msg (borrowed until the next
   call) when it is missing or cannot be mapped. */
const void *pd_modcache_map_shared(pd_modcache_t *mc, const char *hash, size_t *len,
                                   const char **msg);

#endif
