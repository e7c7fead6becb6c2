/*  pd_auth: key pairs, the known-brokers trust store, the broker's allow-list
    files, roles, loopback detection and CURVE socket options; see pd_auth.h.

    Certificates are CZMQ zcert files, so that the tools of the ZeroMQ world
    read them; every file is written to a temporary name with mode 0600 and
    renamed into place, so a reader never sees half a file and a secret key
    is never readable by others, not even for a moment.
*/
#include "pd_auth.h"
#include "pd_file.h"
#include "pd_plat.h"
#include "pd_error_int.h"
#include "pd_log.h"

#include <czmq.h>
#include <sodium.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

/* Largest certificate file read (a real one is a few hundred bytes). */
#define S_CERT_MAX 65536

#define S_LINE_MAX 1024 /* longest line of known_brokers we read */

/* True when the file at path is a well-formed ZPL text (or absent, when
   absent_ok). */
static bool s_zpl_ok(const char *path, bool absent_ok)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return absent_ok && errno == ENOENT;
    char *text = malloc(S_CERT_MAX + 1);
    size_t got = text ? fread(text, 1, S_CERT_MAX + 1, f) : 0;
    fclose(f);
    bool ok = text && got <= S_CERT_MAX;
    if (ok) {
        text[got] = 0;
        zconfig_t *c = zconfig_str_load(text);
        ok = c != NULL;
        zconfig_destroy(&c);
    }
    free(text);
    return ok;
}

struct _zcert_t *pd_auth_cert_load(const char *path)
{
    char secret[300];
    if (strlen(path) >= 240)
        return NULL;
    snprintf(secret, sizeof secret, "%s_secret", path);
    /* zcert_load reads path_secret when there is one, else path. */
    if (!s_zpl_ok(secret, true) || (access(secret, F_OK) != 0 && !s_zpl_ok(path, false)))
        return NULL;
    return zcert_load(path);
}

/* ---- paths ------------------------------------------------------------- */

char *pd_auth_config_dir(void)
{
    const char *env = getenv("PLAYDOH_CONFIG_DIR");
    if (env && *env)
        return strdup(env);
    char dir[4096];
    if (pd_plat_dir(PD_DIR_CONFIG, dir, sizeof dir))
        return NULL;
    return strdup(dir);
}

int pd_auth_make_dir(const char *dir, char *why, size_t whycap)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int) sizeof path)
        return pd_why(why, whycap, PD_ESYS, "directory name too long: %s", dir);
    char failed[4096];
    if (pd_file_mkdirs(path, 0700, failed, sizeof failed))
        return pd_why(why, whycap, PD_ESYS, "cannot create directory %s: %s", failed,
                      strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return pd_why(why, whycap, PD_ESYS, "%s is not a directory", dir);
    return 0;
}

/* Writes dir/<base> via a private temporary directory: write() is called
   with a path inside it, the files get mode 0600, then each is renamed into
   dir. names lists the files write() creates (renamed in that order). */
typedef int(s_writer_fn)(const char *tmpdir, void *arg);
static int s_write_private(const char *dir, const char *const *names, s_writer_fn *write,
                           void *arg, char *why, size_t whycap)
{
    int rc = pd_auth_make_dir(dir, why, whycap);
    if (rc)
        return rc;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s/.tmp-XXXXXX", dir) >= (int) sizeof tmp || !mkdtemp(tmp))
        return pd_why(why, whycap, PD_ESYS, "cannot write in %s: %s", dir, strerror(errno));
    rc = 0;
    if (write(tmp, arg) != 0)
        rc = pd_why(why, whycap, PD_ESYS, "cannot write in %s: %s", tmp, strerror(errno));
    for (int i = 0; names[i]; i++) {
        char from[4200], to[4200];
        snprintf(from, sizeof from, "%s/%s", tmp, names[i]);
        snprintf(to, sizeof to, "%s/%s", dir, names[i]);
        if (rc == 0 && (chmod(from, 0600) != 0 || pd_plat_rename(from, to) != 0))
            rc = pd_why(why, whycap, PD_ESYS, "cannot write %s: %s", to, strerror(errno));
        unlink(from);
    }
    rmdir(tmp);
    return rc;
}

/* ---- keys -------------------------------------------------------------- */

bool pd_auth_key_valid(const char *text)
{
    uint8_t bin[32];
    return text && strlen(text) == 40 && zmq_z85_decode(bin, text) != NULL;
}

typedef struct {
    zcert_t *cert; /* certificate to save */
    bool secret;   /* save the secret file too */
} s_cert_save_t;

static int s_save_cert(const char *tmpdir, void *arg)
{
    s_cert_save_t *a = arg;
    char path[4200];
    snprintf(path, sizeof path, "%s/id.key", tmpdir);
    return a->secret ? zcert_save(a->cert, path) : zcert_save_public(a->cert, path);
}

int pd_auth_keygen(const char *dir, const char *name, bool force, pd_keypair_t *out, char *why,
                   size_t whycap)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/id.key", dir);
    pd_keypair_t old;
    if (!force && pd_auth_key_load(path, false, &old, NULL, 0) == 0)
        return pd_why(why, whycap, PD_EINVAL,
                      "a key pair already exists at %s (public key %s): keep it, or replace it "
                      "with --force (brokers that allow it and machines that trust it must then "
                      "be given the new public key)", path, old.pub);
    char who[128];
    if (!name || !*name) {
        char user[64], host[64] = "";
        pd_plat_username(user, sizeof user);
        pd_plat_hostname(host, sizeof host);
        snprintf(who, sizeof who, "%s@%s", user, host);
        name = who;
    }
    zcert_t *cert = zcert_new();
    if (!cert)
        return pd_why(why, whycap, PD_ESYS, "cannot create a key pair (libzmq without CURVE?)");
    zcert_set_meta(cert, "name", "%s", name);
    s_cert_save_t a = {cert, true};
    static const char *const names[] = {"id.key_secret", "id.key", NULL};
    int rc = s_write_private(dir, names, s_save_cert, &a, why, whycap);
    if (rc == 0 && out) {
        snprintf(out->pub, sizeof out->pub, "%s", zcert_public_txt(cert));
        snprintf(out->sec, sizeof out->sec, "%s", zcert_secret_txt(cert));
        snprintf(out->name, sizeof out->name, "%.63s", name);
    }
    zcert_destroy(&cert);
    return rc;
}

int pd_auth_key_load(const char *file, bool need_secret, pd_keypair_t *out, char *why,
                     size_t whycap)
{
    memset(out, 0, sizeof *out);
    char secret[4200];
    snprintf(secret, sizeof secret, "%s_secret", file);
    struct stat st;
    bool has_secret = stat(secret, &st) == 0;
    if (has_secret && !pd_plat_mode_private(&st))
        return pd_why(why, whycap, PD_EAUTH,
                      "secret key file %s is readable by other users (mode %03o): run `chmod 600 "
                      "%s` (and consider the key compromised if others could read it)", secret,
                      (unsigned) (st.st_mode & 0777), secret);
    if (need_secret && !has_secret) {
        if (stat(file, &st) == 0)
            return pd_why(why, whycap, PD_ENOKEY,
                          "%s has no secret part (%s is missing): this is someone's public key, "
                          "not a key pair of this account", file, secret);
        return pd_why(why, whycap, PD_ENOKEY,
                      "no key pair at %s: create one with `playdoh-keygen`", file);
    }
    if (!has_secret && stat(file, &st) != 0)
        return pd_why(why, whycap, PD_ENOKEY, "no key at %s: create one with `playdoh-keygen`",
                      file);
    if (strlen(file) >= 240)
        return pd_why(why, whycap, PD_EAUTH, "key path too long: %s", file);
    zcert_t *cert = pd_auth_cert_load(file);
    if (!cert)
        return pd_why(why, whycap, PD_EAUTH, "cannot read key %s (not a CZMQ certificate)", file);
    snprintf(out->pub, sizeof out->pub, "%s", zcert_public_txt(cert));
    static const uint8_t zero[32];
    bool secret_set = memcmp(zcert_secret_key(cert), zero, 32) != 0;
    if (has_secret && secret_set)
        snprintf(out->sec, sizeof out->sec, "%s", zcert_secret_txt(cert));
    const char *name = zcert_meta(cert, "name");
    snprintf(out->name, sizeof out->name, "%s", name ? name : "");
    static const uint8_t zero_pub[32];
    bool pub_set = memcmp(zcert_public_key(cert), zero_pub, 32) != 0;
    zcert_destroy(&cert);
    if (!pub_set || (need_secret && !out->sec[0]))
        return pd_why(why, whycap, PD_EAUTH, "key file %s holds no valid %s key", file,
                      pub_set ? "secret" : "public");
    return 0;
}

int pd_auth_key_from_arg(const char *arg, char pub[PD_KEY_TXT], char *name, size_t namecap,
                         char *why, size_t whycap)
{
    if (name && namecap)
        name[0] = 0;
    if (pd_auth_key_valid(arg)) {
        memcpy(pub, arg, PD_KEY_TXT);
        return 0;
    }
    struct stat st;
    if (stat(arg, &st) == 0 && S_ISREG(st.st_mode)) {
        /* A text file whose first line is the key (`playdoh-keygen show >
           broker.pub`), perhaps followed by a name. */
        FILE *f = fopen(arg, "r");
        if (f) {
            char line[256];
            bool got = fgets(line, sizeof line, f) != NULL;
            fclose(f);
            if (got) {
                char *p = line + strspn(line, " \t");
                size_t len = strcspn(p, " \t\r\n");
                if (len == PD_KEY_TXT - 1) {
                    p[len] = 0;
                    if (pd_auth_key_valid(p)) {
                        memcpy(pub, p, PD_KEY_TXT);
                        return 0;
                    }
                }
            }
        }
        pd_keypair_t k;
        /* Only the public part: never read someone's secret file here. */
        zcert_t *cert = pd_auth_cert_load(arg);
        if (cert) {
            snprintf(k.pub, sizeof k.pub, "%s", zcert_public_txt(cert));
            const char *n = zcert_meta(cert, "name");
            if (name && namecap)
                snprintf(name, namecap, "%s", n ? n : "");
            zcert_destroy(&cert);
            memcpy(pub, k.pub, PD_KEY_TXT);
            return 0;
        }
        return pd_why(why, whycap, PD_EINVAL, "%s holds no public key (neither a certificate nor "
                      "a line of 40 characters as `playdoh-keygen show` prints)", arg);
    }
    return pd_why(why, whycap, PD_EINVAL,
                  "'%s' is neither a public key (the 40 characters `playdoh-keygen show` prints) "
                  "nor a certificate file", arg);
}

/* ---- known_brokers ----------------------------------------------------- */

/* One parsed line: endpoint and key point into the line. */
typedef struct {
    char *endpoint; /* first word */
    char *key;      /* second word */
    char *rest;     /* the name, or "" */
} s_trust_line_t;

/* Splits a line; returns false for comments, blank and malformed lines. */
static bool s_trust_parse(char *line, s_trust_line_t *t)
{
    line[strcspn(line, "\r\n")] = 0;
    char *p = line + strspn(line, " \t");
    if (!*p || *p == '#')
        return false;
    t->endpoint = p;
    p += strcspn(p, " \t");
    if (!*p)
        return false;
    *p++ = 0;
    p += strspn(p, " \t");
    t->key = p;
    p += strcspn(p, " \t");
    if (*p) {
        *p++ = 0;
        p += strspn(p, " \t");
    }
    t->rest = p;
    return pd_auth_key_valid(t->key);
}

static FILE *s_open_known(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/known_brokers", dir);
    return fopen(path, "r");
}

int pd_auth_trust_find(const char *dir, const char *endpoint, char key[PD_KEY_TXT], char *why,
                       size_t whycap)
{
    char exact[PD_KEY_TXT] = "", any[PD_KEY_TXT] = "";
    FILE *f = dir ? s_open_known(dir) : NULL;
    char line[S_LINE_MAX];
    while (f && fgets(line, sizeof line, f)) {
        s_trust_line_t t;
        if (!s_trust_parse(line, &t))
            continue;
        if (strcmp(t.endpoint, endpoint) == 0)
            snprintf(exact, sizeof exact, "%s", t.key);
        else if (strcmp(t.endpoint, "*") == 0)
            snprintf(any, sizeof any, "%s", t.key);
    }
    if (f)
        fclose(f);
    const char *found = exact[0] ? exact : any[0] ? any : NULL;
    if (!found) {
        if (why && whycap)
            pd_auth_trust_hint(endpoint, NULL, why, whycap);
        return PD_ENOTRUSTED;
    }
    memcpy(key, found, PD_KEY_TXT);
    return 0;
}

bool pd_auth_trust_has(const char *dir, const char *endpoint, const char *key)
{
    if (!dir || !pd_auth_key_valid(key))
        return false;
    FILE *f = s_open_known(dir);
    char line[S_LINE_MAX];
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f)) {
        s_trust_line_t t;
        if (s_trust_parse(line, &t) && strcmp(t.key, key) == 0 &&
            (!endpoint || strcmp(t.endpoint, "*") == 0 || strcmp(t.endpoint, endpoint) == 0))
            found = true;
    }
    if (f)
        fclose(f);
    return found;
}

typedef struct {
    const char *dir;      /* where known_brokers is */
    const char *endpoint; /* line to add (NULL: none) */
    const char *key;      /* its key */
    const char *name;     /* its name */
    const char *drop;     /* drop lines whose endpoint or key is this */
    int dropped;          /* lines dropped */
} s_trust_edit_t;

/* Creates the new file tmpdir/name for writing, readable by its owner only
   (0600 from the start); NULL with errno set when it cannot. */
static FILE *s_create_private(const char *tmpdir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!out && fd >= 0) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return out;
}

static int s_write_known(const char *tmpdir, void *arg)
{
    s_trust_edit_t *e = arg;
    FILE *out = s_create_private(tmpdir, "known_brokers");
    if (!out)
        return pd_sys_error();
    FILE *in = s_open_known(e->dir);
    char line[S_LINE_MAX], copy[S_LINE_MAX];
    if (!in)
        fprintf(out, "# Brokers this account trusts: ENDPOINT KEY [NAME]; ENDPOINT * trusts the "
                     "key at any address.\n# Edit with `playdoh-keygen trust` and "
                     "`playdoh-keygen untrust`.\n");
    while (in && fgets(line, sizeof line, in)) {
        memcpy(copy, line, sizeof line);
        s_trust_line_t t;
        if (s_trust_parse(copy, &t) &&
            ((e->endpoint && strcmp(t.endpoint, e->endpoint) == 0) ||
             (e->drop && (strcmp(t.endpoint, e->drop) == 0 || strcmp(t.key, e->drop) == 0)))) {
            e->dropped++;
            continue;
        }
        fputs(line, out);
        if (!strchr(line, '\n'))
            fputc('\n', out);
    }
    if (in)
        fclose(in);
    if (e->endpoint)
        fprintf(out, "%s %s%s%s\n", e->endpoint, e->key, e->name && *e->name ? " " : "",
                e->name ? e->name : "");
    return fclose(out) == 0 ? 0 : pd_sys_error();
}

int pd_auth_trust_add(const char *dir, const char *endpoint, const char *key, const char *name,
                      char *why, size_t whycap)
{
    if (!pd_auth_key_valid(key))
        return pd_why(why, whycap, PD_EINVAL, "'%s' is not a public key (40 characters of Z85, "
                      "as `playdoh-keygen show` prints on the broker's machine)", key);
    if (!*endpoint || strlen(endpoint) > 255 || strpbrk(endpoint, " \t\r\n#") ||
        (strcmp(endpoint, "*") != 0 && !strstr(endpoint, "://")))
        return pd_why(why, whycap, PD_EINVAL, "'%s' is not an endpoint such as "
                      "tcp://lab-server:5555 (or * for any address)", endpoint);
    char clean[64] = "";
    for (size_t i = 0, k = 0; name && name[i] && k + 1 < sizeof clean; i++)
        if (name[i] != '\n' && name[i] != '\r')
            clean[k++] = name[i], clean[k] = 0;
    s_trust_edit_t e = {.dir = dir, .endpoint = endpoint, .key = key, .name = clean};
    static const char *const names[] = {"known_brokers", NULL};
    return s_write_private(dir, names, s_write_known, &e, why, whycap);
}

int pd_auth_trust_remove(const char *dir, const char *what, char *why, size_t whycap)
{
    s_trust_edit_t e = {.dir = dir, .drop = what};
    FILE *f = s_open_known(dir);
    if (!f)
        return 0;
    fclose(f);
    static const char *const names[] = {"known_brokers", NULL};
    int rc = s_write_private(dir, names, s_write_known, &e, why, whycap);
    return rc ? rc : e.dropped;
}

void pd_auth_trust_hint(const char *endpoint, const char *key, char *buf, size_t cap)
{
    if (key)
        snprintf(buf, cap,
                 "broker %s (key %s) is not trusted: if it is your lab's broker (compare the key "
                 "with what `playdoh-keygen show` prints on its machine), run `playdoh-keygen "
                 "trust %s '%s'`", endpoint, key, endpoint, key);
    else
        snprintf(buf, cap,
                 "no trusted key for broker %s: on the broker's machine run `playdoh-keygen "
                 "show`, then here run `playdoh-keygen trust %s KEY` with the key it prints (or "
                 "give it for one run with --broker-key KEY)", endpoint, endpoint);
}

/* ---- allow-list -------------------------------------------------------- */

typedef struct {
    zcert_t *cert;    /* public certificate to save */
    const char *file; /* its file name */
} s_allow_save_t;

static int s_save_allow(const char *tmpdir, void *arg)
{
    s_allow_save_t *a = arg;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", tmpdir, a->file);
    return zcert_save_public(a->cert, path);
}

/* Calls fn for each certificate file of dir; stops when fn returns true. */
static int s_each_cert(const char *dir, bool (*fn)(const char *path, zcert_t *cert, void *arg),
                       void *arg)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : pd_sys_error();
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (de->d_name[0] == '.' || (n > 7 && strcmp(de->d_name + n - 7, "_secret") == 0))
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        zcert_t *cert = pd_auth_cert_load(path);
        if (!cert)
            continue;
        bool stop = fn(path, cert, arg);
        zcert_destroy(&cert);
        if (stop)
            break;
    }
    closedir(d);
    return 0;
}

typedef struct {
    const char *what; /* key or name to match */
    const char *file; /* file name to match, or NULL */
    char path[4200];  /* a match's path */
    char pub[PD_KEY_TXT]; /* a match's key */
    int removed;      /* files removed */
    bool remove;      /* unlink matches */
} s_allow_find_t;

static bool s_allow_match(const char *path, zcert_t *cert, void *arg)
{
    s_allow_find_t *a = arg;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const char *name = zcert_meta(cert, "name");
    char stem[256];
    snprintf(stem, sizeof stem, "%s", base);
    if (strlen(stem) > 4 && strcmp(stem + strlen(stem) - 4, ".key") == 0)
        stem[strlen(stem) - 4] = 0;
    bool hit = strcmp(zcert_public_txt(cert), a->what) == 0 ||
               (a->remove && ((name && strcmp(name, a->what) == 0) || strcmp(stem, a->what) == 0)) ||
               (a->file && strcmp(base, a->file) == 0);
    if (!hit)
        return false;
    snprintf(a->path, sizeof a->path, "%s", path);
    snprintf(a->pub, sizeof a->pub, "%s", zcert_public_txt(cert));
    if (a->remove && unlink(path) == 0)
        a->removed++;
    return !a->remove;
}

int pd_auth_allow_add(const char *allow_dir, const char *key, pd_role_t role, const char *name,
                      char *why, size_t whycap)
{
    uint8_t pub[32];
    if (!pd_auth_key_valid(key) || !zmq_z85_decode(pub, key))
        return pd_why(why, whycap, PD_EINVAL, "'%s' is not a public key (40 characters of Z85)",
                      key);
    if (role != PD_ROLE_WORKER && role != PD_ROLE_CLIENT && role != PD_ROLE_BOTH &&
        role != PD_ROLE_ADMIN)
        return pd_why(why, whycap, PD_EINVAL, "a key's role is worker, client, both or admin");
    /* File name: the name's safe characters, or the key's first bytes. */
    char clean[49] = "";
    size_t k = 0;
    for (size_t i = 0; name && name[i] && k + 1 < sizeof clean; i++) {
        char c = name[i];
        clean[k++] = (char) ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                     (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'
                                 ? c
                                 : '_');
    }
    clean[k] = 0;
    if (!k || clean[0] == '.') {
        memcpy(clean, "key-", 4);
        sodium_bin2hex(clean + 4, sizeof clean - 4, pub, 4);
    }
    char file[64];
    snprintf(file, sizeof file, "%s.key", clean);
    /* Another key under that file name would be silently replaced: refuse. */
    s_allow_find_t same = {.what = "", .file = file};
    s_each_cert(allow_dir, s_allow_match, &same);
    if (same.path[0] && strcmp(same.pub, key) != 0)
        return pd_why(why, whycap, PD_EINVAL, "%s already admits another key (%s): choose "
                      "another --name, or revoke that key first", same.path, same.pub);
    /* The same key under another name: replaced by this one. */
    s_allow_find_t old = {.what = key, .remove = true};
    s_each_cert(allow_dir, s_allow_match, &old);
    static const uint8_t zero[32];
    zcert_t *cert = zcert_new_from(pub, zero);
    if (!cert)
        return pd_why(why, whycap, PD_ENOMEM, "out of memory");
    zcert_set_meta(cert, "name", "%s", name && *name ? name : clean);
    zcert_set_meta(cert, "role", "%s", pd_role_name(role));
    s_allow_save_t a = {cert, file};
    const char *names[] = {file, NULL};
    int rc = s_write_private(allow_dir, names, s_save_allow, &a, why, whycap);
    zcert_destroy(&cert);
    return rc;
}

int pd_auth_allow_remove(const char *allow_dir, const char *what, char *why, size_t whycap)
{
    s_allow_find_t a = {.what = what, .remove = true};
    if (s_each_cert(allow_dir, s_allow_match, &a))
        return pd_why(why, whycap, PD_ESYS, "cannot read %s: %s", allow_dir, strerror(errno));
    return a.removed;
}

/* ---- roles ------------------------------------------------------------- */

const char *pd_role_name(pd_role_t role)
{
    switch (role) {
    case PD_ROLE_WORKER: return "worker";
    case PD_ROLE_CLIENT: return "client";
    case PD_ROLE_BOTH: return "both";
    case PD_ROLE_ADMIN: return "admin";
    default: return "none";
    }
}

int pd_role_parse(const char *name, pd_role_t *role)
{
    if (!name)
        return PD_EINVAL;
    if (strcmp(name, "worker") == 0)
        *role = PD_ROLE_WORKER;
    else if (strcmp(name, "client") == 0)
        *role = PD_ROLE_CLIENT;
    else if (strcmp(name, "both") == 0)
        *role = PD_ROLE_BOTH;
    else if (strcmp(name, "admin") == 0)
        *role = PD_ROLE_ADMIN;
    else
        return PD_EINVAL;
    return 0;
}

bool pd_role_allows(pd_role_t have, pd_role_t need) { return (have & need) == need && need; }

/* ---- owners ------------------------------------------------------------ */

static int s_write_token(const char *tmpdir, void *arg)
{
    char hex[2 * PD_OWNER_TOKEN_LEN + 2];
    sodium_bin2hex(hex, sizeof hex, arg, PD_OWNER_TOKEN_LEN);
    strcat(hex, "\n");
    FILE *out = s_create_private(tmpdir, "owner.token");
    if (!out)
        return pd_sys_error();
    bool ok = fputs(hex, out) >= 0;
    return fclose(out) == 0 && ok ? 0 : pd_sys_error();
}

/* Reads dir/owner.token into tok: 0, PD_ENOKEY (no file), PD_EAUTH or PD_ESYS. */
static int s_read_token(const char *path, uint8_t tok[PD_OWNER_TOKEN_LEN], char *why,
                        size_t whycap)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? PD_ENOKEY
                               : pd_why(why, whycap, PD_ESYS, "cannot read %s: %s", path,
                                        strerror(errno));
    if (!pd_plat_mode_private(&st))
        return pd_why(why, whycap, PD_EAUTH, "owner token %s is readable by other users (mode "
                      "%03o), who could then fetch and cancel this account's jobs: run `chmod 600 "
                      "%s`", path, (unsigned) (st.st_mode & 0777), path);
    char *text = NULL;
    size_t len = 0;
    if (pd_file_read(path, 4096, &text, &len) != 0)
        return pd_why(why, whycap, PD_ESYS, "cannot read %s: %s", path, strerror(errno));
    size_t got = 0;
    int rc = sodium_hex2bin(tok, PD_OWNER_TOKEN_LEN, text, len, " \r\n", &got, NULL);
    free(text);
    if (rc != 0 || got != PD_OWNER_TOKEN_LEN)
        return pd_why(why, whycap, PD_EAUTH, "owner token %s is not 64 hex digits: delete it "
                      "(a new one is made; jobs submitted with the old one are then another "
                      "owner's)", path);
    return 0;
}

int pd_auth_owner_token(const char *dir, uint8_t tok[PD_OWNER_TOKEN_LEN], char *why,
                        size_t whycap)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/owner.token", dir);
    int rc = s_read_token(path, tok, why, whycap);
    if (rc != PD_ENOKEY)
        return rc;
    uint8_t fresh[PD_OWNER_TOKEN_LEN];
    randombytes_buf(fresh, sizeof fresh);
    const char *names[] = {"owner.token", NULL};
    rc = s_write_private(dir, names, s_write_token, fresh, why, whycap);
    sodium_memzero(fresh, sizeof fresh);
    if (rc)
        return rc;
    /* Read back: of two programs making it at once, the one renamed last wins
       for both. */
    return s_read_token(path, tok, why, whycap);
}

void pd_auth_owner_of_token(const void *tok, size_t len, char out[PD_OWNER_TXT])
{
    uint8_t h[16];
    crypto_generichash(h, sizeof h, tok, len, NULL, 0);
    memcpy(out, "local:", 6);
    sodium_bin2hex(out + 6, PD_OWNER_TXT - 6, h, sizeof h);
}

bool pd_auth_owner_is_key(const char *owner) { return owner && strlen(owner) == 40; }

bool pd_auth_owner_valid(const char *owner)
{
    if (pd_auth_key_valid(owner))
        return true;
    if (!owner || strlen(owner) != 38 || strncmp(owner, "local:", 6) != 0)
        return false;
    for (const char *p = owner + 6; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* ---- endpoints and sockets --------------------------------------------- */

bool pd_auth_endpoint_is_loopback(const char *ep)
{
    if (!ep)
        return false;
    if (strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0)
        return true;
    if (strncmp(ep, "tcp://", 6) != 0)
        return false;
    const char *host = ep + 6;
    if (strchr(host, ';'))
        return false; /* a source address: leave it to the network rules */
    const char *end;
    if (host[0] == '[') {
        end = strchr(host, ']');
        return end && (size_t) (end - host) == 4 && strncmp(host, "[::1]", 5) == 0;
    }
    end = strrchr(host, ':');
    size_t n = end ? (size_t) (end - host) : strlen(host);
    if (n == 9 && strncmp(host, "localhost", 9) == 0)
        return true;
    if (n == 2 && strncmp(host, "lo", 2) == 0)
        return true;
    if (n < 9 || n > 15 || strncmp(host, "127.", 4) != 0)
        return false;
    for (size_t i = 4; i < n; i++)
        if (!((host[i] >= '0' && host[i] <= '9') || host[i] == '.'))
            return false;
    return true;
}

pd_sec_mode_t pd_auth_resolve(pd_sec_mode_t asked, const char *endpoint)
{
    if (asked == PD_SEC_CURVE || asked == PD_SEC_NONE)
        return asked;
    return pd_auth_endpoint_is_loopback(endpoint) ? PD_SEC_NONE : PD_SEC_CURVE;
}

int pd_auth_mode_parse(const char *text, pd_sec_mode_t *mode)
{
    if (!text)
        return PD_EINVAL;
    if (strcmp(text, "auto") == 0)
        *mode = PD_SEC_AUTO;
    else if (strcmp(text, "curve") == 0 || strcmp(text, "secure") == 0)
        *mode = PD_SEC_CURVE;
    else if (strcmp(text, "none") == 0 || strcmp(text, "insecure") == 0)
        *mode = PD_SEC_NONE;
    else
        return PD_EINVAL;
    return 0;
}

int pd_auth_apply_server(void *sock, const pd_keypair_t *k)
{
    int one = 1;
    if (!pd_auth_key_valid(k->sec) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->sec, 40) ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "playdoh", 7))
        return PD_ESYS;
    return 0;
}

int pd_auth_apply_client(void *sock, const pd_keypair_t *k, const char *server_key)
{
    if (!pd_auth_key_valid(k->sec) || !pd_auth_key_valid(k->pub) ||
        !pd_auth_key_valid(server_key) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_key, 40) ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, k->pub, 40) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->sec, 40))
        return PD_ESYS;
    return 0;
}

pd_role_t pd_auth_msg_peer(void *zmq_msg, const char **key, const char **name)
{
    zmq_msg_t *msg = zmq_msg;
    const char *user = zmq_msg_gets(msg, "User-Id");
    if (key)
        *key = user;
    if (name)
        *name = NULL;
    if (!user)
        return PD_ROLE_BOTH; /* no CURVE, no ZAP: loopback or --insecure */
    if (name)
        *name = zmq_msg_gets(msg, "X-Name");
    pd_role_t role;
    return pd_role_parse(zmq_msg_gets(msg, "X-Role"), &role) == 0 ? role : PD_ROLE_NONE;
}

bool pd_auth_monitor_next(void *mon, uint16_t *event, uint32_t *value)
{
    zmq_msg_t ev, addr;
    zmq_msg_init(&ev);
    if (zmq_msg_recv(&ev, mon, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&ev);
        return false;
    }
    zmq_msg_init(&addr);
    if (zmq_msg_more(&ev))
        zmq_msg_recv(&addr, mon, 0);
    *event = 0;
    *value = 0;
    if (zmq_msg_size(&ev) >= 6) {
        memcpy(event, zmq_msg_data(&ev), 2);
        memcpy(value, (const uint8_t *) zmq_msg_data(&ev) + 2, 4);
    }
    zmq_msg_close(&ev);
    zmq_msg_close(&addr);
    return true;
}

const char *pd_auth_handshake_why(uint32_t event, uint32_t value, bool as_server)
{
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        return "authentication refused: the key is not on the broker's allow-list";
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
        if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
            return "security mismatch: one side runs CURVE and the other does not (see "
                   "--secure and --insecure)";
        if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
            return "cryptographic failure: the client does not hold this broker's public key "
                   "(a wrong key in known_brokers or --broker-key), or the bytes were altered";
        if (value >= ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED &&
            value < ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED + 0x100)
            return "the authentication handler failed";
        return "protocol error: not a ZeroMQ peer speaking Playdoh's security, or a corrupt "
               "connection";
    }
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL && as_server)
        return "the peer hung up during the handshake (a client without CurveZMQ, one that "
               "trusts another broker key, or not a ZeroMQ peer at all)";
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        return "the peer closed the connection during the secure handshake: the broker does "
               "not hold the key trusted for it (wrong key in known_brokers or --broker-key)";
    return "handshake failed";
}
