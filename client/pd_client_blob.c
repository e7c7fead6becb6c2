/*  pd_client_blob: the blobs a job names by hash, sent once: modules
    (`mod_has`, then `mod_put` when the broker lacks it: a C source, a
    bundle of sources and flags, a prebuilt .so/.dll, CUDA kernels) and
    shared data (`shr_has`, `shr_put`). Both ask first, so that a module or
    a file sent by an earlier run costs one round trip; both are safe to send
    again (pd_client_call_idem), so a broker restart is ridden out.
*/
#include "playdoh.h"
#include "pd_plat.h"
#include "pd_client_int.h"

#include "pd_bundle.h"
#include "pd_codec.h"
#include "pd_msg.h"
#include "pd_proto.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAX_MODULE (64u << 20)

/* ---- modules ------------------------------------------------------------- */

/* Asks the broker whether it holds the blob `hash` (ask: &pd_proto_mod_has
   or &pd_proto_shr_has, answered by want: mod_ok or shr_ok); sets *has.
   Safe to repeat. */
static int s_broker_has(pd_client_t *c, const pd_proto_msg_t *ask, const pd_proto_msg_t *want,
                        const char *hash, bool *has)
{
    /* mod_has and shr_has are one layout (PD_F_MOD_HAS), mod_ok and shr_ok
       another (PD_F_HAS_OK): the descriptors say which type travels. */
    _Static_assert(sizeof(pd_m_mod_has_t) == sizeof(pd_m_shr_has_t), "one layout");
    _Static_assert(sizeof(pd_m_mod_ok_t) == sizeof(pd_m_shr_ok_t), "one layout");
    pd_m_mod_has_t q = {0};
    snprintf(q.hash, sizeof q.hash, "%s", hash);
    pd_m_mod_ok_t a;
    uint64_t req = pd_client_request(c, ask, &q);
    int rc = pd_client_call_idem(c, req, want, &a, 0, pd_client_timeout(c));
    if (rc == 0)
        *has = a.has;
    return rc;
}

static void s_hash_hex(const void *data, size_t len, char hex[PD_HASH_HEX])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, data, len);
    sodium_bin2hex(hex, PD_HASH_HEX, h, sizeof h);
}

int pd_module_upload(pd_client_t *c, const char *name, pd_module_kind_t kind, const void *data,
                     size_t len, char hash[PD_HASH_HEX])
{
    assert(c && name && data && hash);
    if (len == 0)
        return pd_client_fail(c, PD_EINVAL, "module %s is empty", name);
    if (len > S_MAX_MODULE)
        return pd_client_fail(c, PD_ETOOBIG, "module %s is %zu bytes; the limit is %u", name, len,
                      S_MAX_MODULE);
    s_hash_hex(data, len, hash);
    bool has = false;
    int rc = s_broker_has(c, &pd_proto_mod_has, &pd_proto_mod_ok, hash, &has);
    if (rc || has)
        return rc;
    pd_m_mod_put_t q = {.data = {data, (uint32_t) len}};
    snprintf(q.hash, sizeof q.hash, "%s", hash);
    snprintf(q.name, sizeof q.name, "%s", name);
    snprintf(q.kind, sizeof q.kind, "%s", kind == PD_MODULE_SO       ? "so"
                                          : kind == PD_MODULE_BUNDLE ? "pkg"
                                          : kind == PD_MODULE_CU     ? "cu"
                                                                     : "c");
    pd_m_mod_ok_t a;
    uint64_t req = pd_client_request(c, &pd_proto_mod_put, &q);
    return pd_client_call_idem(c, req, &pd_proto_mod_ok, &a, 0, pd_client_timeout(c));
}

/* Opens the regular file path (what names it in errors: "module") and
   reads its status into *st. Returns the descriptor, or PD_EIO with the
   sentence set. */
static int s_open_regular(pd_client_t *c, const char *what, const char *path, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pd_client_fail(c, PD_EIO, "cannot read %s %s: %s", what, path, strerror(errno));
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return pd_client_fail(c, PD_EIO, "%s %s is not a regular file", what, path);
    }
    return fd;
}

/* Reads a whole regular file of at most S_MAX_MODULE bytes into *data
   (malloc'ed). Returns 0 or an error with the sentence set. */
static int s_read_file(pd_client_t *c, const char *what, const char *path, char **data,
                       size_t *len)
{
    struct stat st;
    int fd = s_open_regular(c, what, path, &st);
    if (fd < 0)
        return fd;
    if ((uint64_t) st.st_size > S_MAX_MODULE) {
        close(fd);
        return pd_client_fail(c, PD_ETOOBIG, "%s %s is %lld bytes; the limit is %u", what, path,
                      (long long) st.st_size, S_MAX_MODULE);
    }
    *len = (size_t) st.st_size;
    *data = malloc(*len ? *len : 1);
    size_t got = 0;
    while (*data && got < *len) {
        ssize_t r = read(fd, *data + got, *len - got);
        if (r <= 0)
            break;
        got += (size_t) r;
    }
    close(fd);
    if (!*data || got != *len) {
        free(*data);
        *data = NULL;
        return pd_client_fail(c, PD_EIO, "cannot read %s %s", what, path);
    }
    return 0;
}

int pd_module_upload_files(pd_client_t *c, const char *const *paths, size_t npaths,
                           const char *const *flags, size_t nflags, char hash[PD_HASH_HEX])
{
    assert(c && (paths || npaths == 0) && (flags || nflags == 0) && hash);
    if (npaths == 0)
        return pd_client_fail(c, PD_EINVAL, "a module needs at least one file");
    if (npaths > PD_BUNDLE_MAX_FILES)
        return pd_client_fail(c, PD_EINVAL, "a module has at most %d files, not %zu",
                      PD_BUNDLE_MAX_FILES, npaths);
    pd_bundle_file_t *files = calloc(npaths, sizeof *files);
    if (!files)
        return pd_client_fail(c, PD_ENOMEM, "out of memory");
    int rc = 0;
    size_t total = 0;
    for (size_t i = 0; i < npaths && !rc; i++) {
        char *data = NULL;
        size_t len = 0;
        rc = s_read_file(c, "module file", paths[i], &data, &len);
        if (rc)
            break;
        const char *base = strrchr(paths[i], '/');
        base = base ? base + 1 : paths[i];
        files[i] = (pd_bundle_file_t){base, strlen(base), data, len};
        total += len;
        if (total > S_MAX_MODULE)
            rc = pd_client_fail(c, PD_ETOOBIG, "the module's files hold %zu bytes; the limit is %u",
                        total, S_MAX_MODULE);
    }
    pd_buf_t b;
    pd_buf_init(&b);
    if (!rc) {
        char why[600];
        rc = pd_bundle_pack(files, npaths, flags, nflags, &b, why, sizeof why);
        if (rc)
            pd_client_fail(c, rc, "%s", why);
    }
    if (!rc) {
        /* Named after its first source file, for messages. */
        char name[160];
        snprintf(name, sizeof name, "%s", files[0].name);
        for (size_t i = 0; i < npaths; i++)
            if (files[i].name_len > 2 && files[i].name[files[i].name_len - 1] == 'c') {
                snprintf(name, sizeof name, "%s", files[i].name);
                break;
            }
        if (npaths > 1) {
            size_t l = strlen(name);
            snprintf(name + l, sizeof name - l, "+%zu", npaths - 1);
        }
        rc = pd_module_upload(c, name, PD_MODULE_BUNDLE, b.data, b.len, hash);
    }
    pd_buf_free(&b);
    for (size_t i = 0; i < npaths; i++)
        free((void *) files[i].data);
    free(files);
    return rc;
}

int pd_module_upload_file(pd_client_t *c, const char *path, char hash[PD_HASH_HEX])
{
    char *data = NULL;
    size_t len = 0;
    int rc = s_read_file(c, "module", path, &data, &len);
    if (rc)
        return rc;
    size_t pl = strlen(path);
    /* A prebuilt module: a shared object (Linux) or a DLL (Windows); the
       broker reads its platform from its bytes and sends it only there. */
    pd_module_kind_t kind = (pl > 3 && strcmp(path + pl - 3, ".so") == 0) ||
                                    (pl > 4 && strcmp(path + pl - 4, ".dll") == 0)
                                ? PD_MODULE_SO
                            : pl > 3 && strcmp(path + pl - 3, ".cu") == 0 ? PD_MODULE_CU
                                                                          : PD_MODULE_C;
    const char *base = strrchr(path, '/');
    rc = pd_module_upload(c, base ? base + 1 : path, kind, data, len, hash);
    free(data);
    return rc;
}

/* ---- shared data --------------------------------------------------------- */

int pd_shared_upload(pd_client_t *c, const void *data, size_t len, char hash[PD_HASH_HEX])
{
    assert(c && (data || len == 0) && hash);
    hash[0] = 0;
    const pd_client_limits_t lim = pd_client_limits(c);
    if (len == 0)
        return pd_client_fail(c, PD_EINVAL, "shared data is empty: give at least one byte");
    if (lim.max_shared && len > lim.max_shared)
        return pd_client_fail(c, PD_ETOOBIG,
                              "shared data is %zu bytes (%.1f MiB); the broker at %s "
                              "takes at most %llu MiB (its --max-shared-mb)",
                              len, (double) len / 1048576.0, pd_client_endpoint(c),
                              (unsigned long long) (lim.max_shared >> 20));
    if (len > PD_MAX_FRAME - 4096)
        return pd_client_fail(c, PD_ETOOBIG,
                              "shared data is %zu bytes; one message carries at most %u", len,
                              PD_MAX_FRAME - 4096);
    unsigned char h[32];
    crypto_generichash(h, sizeof h, data, len, NULL, 0);
    sodium_bin2hex(hash, PD_HASH_HEX, h, sizeof h);
    bool has = false;
    int rc = s_broker_has(c, &pd_proto_shr_has, &pd_proto_shr_ok, hash, &has);
    if (rc || has)
        return rc;
    pd_m_shr_put_t q = {0};
    snprintf(q.hash, sizeof q.hash, "%s", hash);
    uint64_t req = pd_client_new_req(c);
    pd_client_encode_bin_last(c, &pd_proto_shr_put, &q, req, len);
    /* The broker answers once the bytes are hashed, stored and on disk:
       allow it 40 ms per MB (25 MB/s) before sending them again, so that a
       large upload is not sent twice merely for taking its time. */
    pd_m_shr_ok_t a;
    return pd_client_call_idem_data(c, req, &pd_proto_shr_ok, &a, (int) (len / 25000),
                                    pd_client_timeout(c), data, len);
}

int pd_shared_upload_file(pd_client_t *c, const char *path, char hash[PD_HASH_HEX])
{
    struct stat st;
    int fd = s_open_regular(c, "shared data", path, &st);
    if (fd < 0)
        return fd;
    if (st.st_size == 0) {
        close(fd);
        return pd_client_fail(c, PD_EINVAL, "shared data %s is empty", path);
    }
    /* Mapped, not read: a large file is hashed and sent without a copy. */
    close(fd);
    size_t len = 0;
    const void *p = pd_plat_map_file(path, &len);
    if (!p || len != (size_t) st.st_size) {
        pd_plat_unmap(p, len);
        return pd_client_fail(c, PD_EIO, "cannot read shared data %s: %s", path, strerror(errno));
    }
    int rc = pd_shared_upload(c, p, len, hash);
    pd_plat_unmap(p, len);
    if (rc == PD_ETOOBIG || rc == PD_EINVAL) {
        char tmp[PD_CLIENT_ERR_MAX];
        snprintf(tmp, sizeof tmp, "%s", pd_client_error(c));
        pd_client_fail(c, rc, "%s: %s", path, tmp);
    }
    return rc;
}

