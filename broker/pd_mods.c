/*  pd_mods: content-addressed module store; see pd_mods.h.

    Few modules exist (one per program a lab runs), so they sit in a growable
    array of pointers with a hash index from hex digest to position.
*/
#include "pd_mods.h"
#include "pd_bundle.h"
#include "pd_error.h"

#include <assert.h>
#include <czmq.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pd_mods {
    pd_mod_t **mods; /* stored modules by index */
    uint32_t n;      /* modules stored */
    uint32_t cap;    /* capacity of mods */
    size_t total;    /* bytes of all modules */
    zhashx_t *index; /* hash -> index + 1 */
};

pd_mods_t *pd_mods_new(void)
{
    if (sodium_init() < 0)
        return NULL;
    pd_mods_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->index = zhashx_new();
    m->mods = calloc(16, sizeof *m->mods);
    pd_mod_t *b = calloc(1, sizeof *b);
    if (!m->index || !m->mods || !b || !(b->name = strdup(PD_MODS_BUILTIN)) ||
        zhashx_insert(m->index, PD_MODS_BUILTIN, (void *) (uintptr_t) 1)) {
        if (b)
            free(b->name);
        free(b);
        free(m->mods);
        zhashx_destroy(&m->index);
        free(m);
        return NULL;
    }
    m->cap = 16;
    snprintf(b->hash, sizeof b->hash, "%s", PD_MODS_BUILTIN);
    snprintf(b->kind, sizeof b->kind, "b");
    b->platform = "";
    m->mods[0] = b;
    m->n = 1;
    return m;
}

void pd_mods_destroy(pd_mods_t **p)
{
    if (!p || !*p)
        return;
    pd_mods_t *m = *p;
    for (uint32_t i = 0; i < m->n; i++) {
        free(m->mods[i]->name);
        free(m->mods[i]->data);
        free(m->mods[i]);
    }
    free(m->mods);
    zhashx_destroy(&m->index);
    free(m);
    *p = NULL;
}

void pd_mods_hash(const void *data, size_t len, char out[PD_MODS_HASH_LEN + 1])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, data, len);
    sodium_bin2hex(out, PD_MODS_HASH_LEN + 1, h, sizeof h);
}

int64_t pd_mods_find(pd_mods_t *m, const char *hash)
{
    void *v = zhashx_lookup(m->index, hash);
    return v ? (int64_t) ((uintptr_t) v - 1) : -1;
}

const pd_mod_t *pd_mods_get(pd_mods_t *m, uint32_t i)
{
    assert(i < m->n);
    return m->mods[i];
}

uint32_t pd_mods_count(const pd_mods_t *m) { return m->n; }

bool pd_mods_is_builtin(pd_mods_t *m, uint32_t i) { return pd_mods_get(m, i)->kind[0] == 'b'; }

const char *pd_mods_so_platform(const void *data, size_t len)
{
    const uint8_t *p = data;
    /* ELF: e_machine (little-endian) at 18; 62 is x86-64. */
    if (len >= 20 && memcmp(p, "\x7f" "ELF", 4) == 0 && p[5] == 1 && p[18] == 62 && p[19] == 0)
        return "linux-x86_64";
    /* PE: "MZ", the PE header's offset at 0x3c, "PE\0\0", then the machine
       (0x8664 is x86-64). */
    if (len >= 64 && p[0] == 'M' && p[1] == 'Z') {
        uint32_t pe = (uint32_t) p[0x3c] | (uint32_t) p[0x3d] << 8 | (uint32_t) p[0x3e] << 16 |
                      (uint32_t) p[0x3f] << 24;
        if (pe <= len - 6 && memcmp(p + pe, "PE\0\0", 4) == 0 && p[pe + 4] == 0x64 &&
            p[pe + 5] == 0x86)
            return "windows-x86_64";
    }
    return "unknown";
}

int64_t pd_mods_put(pd_mods_t *m, const char *hash, const char *name, const char *kind,
                    const void *data, size_t len, char *why, size_t whycap)
{
    if (len > PD_MODS_MAX_SIZE) {
        snprintf(why, whycap, "module '%s' is %zu bytes; modules are limited to %u MiB", name,
                 len, PD_MODS_MAX_SIZE >> 20);
        return PD_ETOOBIG;
    }
    if (strcmp(kind, "c") != 0 && strcmp(kind, "so") != 0 && strcmp(kind, "pkg") != 0 &&
        strcmp(kind, "cu") != 0) {
        snprintf(why, whycap, "module '%s': kind must be \"c\" (source), \"so\" (shared "
                 "object), \"pkg\" (several files) or \"cu\" (CUDA source), not \"%s\"", name,
                 kind);
        return PD_EPROTO;
    }
    if (name[0] == 0) {
        snprintf(why, whycap, "module with hash %.16s...: 'name' is empty", hash);
        return PD_EPROTO;
    }
    char real[PD_MODS_HASH_LEN + 1];
    pd_mods_hash(data, len, real);
    if (strcmp(real, hash) != 0) {
        snprintf(why, whycap, "module '%s': hash %.64s is not the SHA-256 of its data (%s): "
                 "send the lowercase hex SHA-256 of the bytes", name, hash, real);
        return PD_EPROTO;
    }
    int64_t have = pd_mods_find(m, hash);
    if (have >= 0)
        return have;
    if (strcmp(kind, "pkg") == 0) {
        pd_bundle_t bundle;
        char bwhy[400];
        int rc = pd_bundle_parse(data, len, &bundle, bwhy, sizeof bwhy);
        if (rc) {
            snprintf(why, whycap, "module '%s': %s", name, bwhy);
            return rc == PD_ENOMEM ? PD_ENOMEM : PD_EPROTO;
        }
        pd_bundle_free(&bundle);
    }
    if (m->total + len > PD_MODS_MAX_TOTAL) {
        snprintf(why, whycap, "the broker's module store is full (%zu MiB): restart the "
                 "broker to clear it", m->total >> 20);
        return PD_EOVERLOAD;
    }
    if (m->n == m->cap) {
        uint32_t cap = m->cap ? m->cap * 2 : 16;
        pd_mod_t **mods = realloc(m->mods, cap * sizeof *mods);
        if (!mods)
            goto oom;
        m->mods = mods;
        m->cap = cap;
    }
    pd_mod_t *mod = calloc(1, sizeof *mod);
    if (!mod)
        goto oom;
    memcpy(mod->hash, real, sizeof mod->hash);
    snprintf(mod->kind, sizeof mod->kind, "%s", kind);
    mod->name = strdup(name);
    mod->data = malloc(len ? len : 1);
    if (!mod->name || !mod->data ||
        zhashx_insert(m->index, real, (void *) (uintptr_t) (m->n + 1))) {
        free(mod->name);
        free(mod->data);
        free(mod);
        goto oom;
    }
    if (len)
        memcpy(mod->data, data, len);
    mod->len = len;
    mod->platform = strcmp(kind, "so") == 0 ? pd_mods_so_platform(data, len) : "";
    m->mods[m->n] = mod;
    m->total += len;
    return m->n++;
oom:
    snprintf(why, whycap, "the broker is out of memory");
    return PD_ENOMEM;
}
