/*  pd_mods: the broker's module store.

    Clients upload task modules (C source, a prebuilt shared object, or CUDA
    source shipped with GPU jobs) once;
    they are content-addressed by the lowercase hex SHA-256 of their bytes.
    Jobs name a module by its index here, which never changes: modules are
    kept for the broker's life (bounded by PD_MODS_MAX_TOTAL bytes).

    Index 0 is reserved for the built-in tasks that every worker has (the
    shell command runner `exec`): its hash is the string "builtin", its kind
    "b", and it holds no bytes; it is never sent to a worker.
*/
#ifndef PD_MODS_H
#define PD_MODS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_MODS_MAX_SIZE  (64u << 20)           /* one module's bytes at most */
#define PD_MODS_MAX_TOTAL (1024ull << 20)       /* all modules' bytes at most */
#define PD_MODS_HASH_LEN  64                    /* hex digits of a SHA-256 */
#define PD_MODS_MAX_NAME  255                   /* longest module name */
#define PD_MODS_BUILTIN   "builtin"             /* reserved hash of the built-in tasks */

typedef struct pd_mods pd_mods_t;

/* A stored module; borrowed from the store for its life. */
typedef struct {
    char hash[PD_MODS_HASH_LEN + 1]; /* lowercase hex SHA-256 of data */
    char *name;                      /* the client's name for it ("square.c") */
    char kind[4];                    /* "c", "so", "pkg", "cu" or "b" (built-in) */
    uint8_t *data;                   /* the bytes */
    size_t len;                      /* bytes in data */
    const char *platform;            /* a prebuilt module's platform, read from its
                                        bytes ("linux-x86_64", "windows-x86_64", or
                                        "unknown"); "" for source: runs anywhere */
} pd_mod_t;

/* Returns a store holding only the built-in module, or NULL when out of
   memory. */
pd_mods_t *pd_mods_new(void);
void pd_mods_destroy(pd_mods_t **p);

/* Index of the module with this hash, or -1. */
int64_t pd_mods_find(pd_mods_t *m, const char *hash);
/* The module at index i (i from pd_mods_find/pd_mods_put). */
const pd_mod_t *pd_mods_get(pd_mods_t *m, uint32_t i);
uint32_t pd_mods_count(const pd_mods_t *m);
/* True for the built-in module (kind "b"), which workers have already. */
bool pd_mods_is_builtin(pd_mods_t *m, uint32_t i);

/* Stores a module after checking that hash is the lowercase hex SHA-256 of
   data, kind is "c", "so", "pkg" (a bundle that pd_bundle_parse accepts) or
   "cu" (CUDA source), and the size limits hold. Storing a module that
   is already there succeeds without change. Returns its index (>= 0), or
   PD_EPROTO (hash mismatch, bad kind or name), PD_ETOOBIG (size), PD_EOVERLOAD
   (store full) or PD_ENOMEM, with a sentence in why. */
int64_t pd_mods_put(pd_mods_t *m, const char *hash, const char *name, const char *kind,
                    const void *data, size_t len, char *why, size_t whycap);

/* The platform a shared object's bytes were built for: "linux-x86_64" (ELF,
   x86-64), "windows-x86_64" (PE32+, x86-64), or "unknown" (another format or
   machine: no worker of Playdoh's platforms can load it). */
const char *pd_mods_so_platform(const void *data, size_t len);

/* Writes the lowercase hex SHA-256 of data into out (65 bytes). */
void pd_mods_hash(const void *data, size_t len, char out[PD_MODS_HASH_LEN + 1]);

#endif
