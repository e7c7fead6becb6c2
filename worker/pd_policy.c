/*  pd_policy: the worker's code policy and its list file; see pd_policy.h.

    The list is a sorted array of the file's first words, replaced whole
    when the file's size, modification time (nanoseconds) or inode change;
    a look-up is a binary search. Lines whose first word is not a valid key
    (clients) or hash (installed) are skipped with a warning, so a typo
    never admits anything.
*/
#include "pd_policy.h"
#include "pd_grow.h"
#include "pd_plat.h"
#include "pd_auth.h"
#include "pd_error.h"
#include "pd_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAX_ENTRIES 1000000 /* lines read from a list at most */

struct pd_policy {
    pd_policy_mode_t mode; /* which policy */
    char *list;            /* path of the list file (owned; NULL for any) */
    char host[64];         /* this machine, for refusals */
    char **entries;        /* sorted first words of the file (owned) */
    size_t n;              /* entries */
    bool loaded;           /* the file was looked at once */
    struct stat seen;      /* the file when last read (st_ino 0: missing) */
};

int pd_policy_parse(const char *text, pd_policy_mode_t *mode)
{
    if (!text)
        return PD_EINVAL;
    if (strcmp(text, "any") == 0)
        *mode = PD_POLICY_ANY;
    else if (strcmp(text, "clients") == 0)
        *mode = PD_POLICY_CLIENTS;
    else if (strcmp(text, "installed") == 0)
        *mode = PD_POLICY_INSTALLED;
    else
        return PD_EINVAL;
    return 0;
}

const char *pd_policy_name(pd_policy_mode_t mode)
{
    return mode == PD_POLICY_CLIENTS ? "clients" : mode == PD_POLICY_INSTALLED ? "installed" : "any";
}

static bool s_is_hash(const char *s)
{
    size_t n = strlen(s);
    if (n != 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

static void s_free_entries(pd_policy_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->entries[i]);
    free(p->entries);
    p->entries = NULL;
    p->n = 0;
}

/* Reads the list again when the file changed. */
static void s_refresh(pd_policy_t *p)
{
    struct stat st;
    if (stat(p->list, &st) != 0)
        memset(&st, 0, sizeof st);
    if (p->loaded && st.st_ino == p->seen.st_ino && st.st_size == p->seen.st_size &&
        pd_plat_mtime_ns(&st) == pd_plat_mtime_ns(&p->seen))
        return;
    p->loaded = true;
    p->seen = st;
    s_free_entries(p);
    FILE *f = st.st_ino ? fopen(p->list, "r") : NULL;
    char line[1024];
    size_t cap = 0, lineno = 0;
    while (f && fgets(line, sizeof line, f) && p->n < S_MAX_ENTRIES) {
        lineno++;
        char *w = line + strspn(line, " \t");
        w[strcspn(w, " \t\r\n")] = 0;
        /* A Z85 key may begin with '#': a comment is anything else that does. */
        if (!*w || (*w == '#' && !(p->mode == PD_POLICY_CLIENTS && pd_auth_key_valid(w))))
            continue;
        bool ok = p->mode == PD_POLICY_CLIENTS ? pd_auth_key_valid(w)
                                                : s_is_hash(w) || strcmp(w, "builtin") == 0;
        if (!ok) {
            pd_log_warn("%s line %zu: '%.64s' is not a %s: skipped", p->list, lineno, w,
                        p->mode == PD_POLICY_CLIENTS
                            ? "client key (40 characters, as `playdoh-keygen show` prints)"
                            : "module hash (64 lowercase hex digits) or the word builtin");
            continue;
        }
        if (pd_grow(&p->entries, &cap, p->n + 1, sizeof *p->entries))
            break;
        if (!(p->entries[p->n] = strdup(w)))
            break;
        p->n++;
    }
    if (f)
        fclose(f);
    if (p->n)
        qsort(p->entries, p->n, sizeof *p->entries, s_cmp);
    if (p->n == 0)
        pd_log_warn("code policy '%s': %s lists no %s: this worker refuses every job until the "
                    "file lists some", pd_policy_name(p->mode), p->list,
                    p->mode == PD_POLICY_CLIENTS ? "client key" : "module");
    else
        pd_log_info("code policy '%s': %zu %s listed in %s", pd_policy_name(p->mode), p->n,
                    p->mode == PD_POLICY_CLIENTS ? "client keys" : "installed modules", p->list);
}

pd_policy_t *pd_policy_new(pd_policy_mode_t mode, const char *list, const char *host)
{
    pd_policy_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->mode = mode;
    snprintf(p->host, sizeof p->host, "%s", host ? host : "?");
    if (mode != PD_POLICY_ANY) {
        if (!list || !(p->list = strdup(list))) {
            free(p);
            return NULL;
        }
        s_refresh(p);
    }
    return p;
}

void pd_policy_destroy(pd_policy_t **pp)
{
    if (!pp || !*pp)
        return;
    pd_policy_t *p = *pp;
    s_free_entries(p);
    free(p->list);
    free(p);
    *pp = NULL;
}

pd_policy_mode_t pd_policy_mode(const pd_policy_t *p) { return p->mode; }
bool pd_policy_stores_shipped(const pd_policy_t *p) { return p->mode != PD_POLICY_INSTALLED; }

static bool s_listed(const pd_policy_t *p, const char *w)
{
    return p->n && bsearch(&w, p->entries, p->n, sizeof *p->entries, s_cmp) != NULL;
}

bool pd_policy_allows(pd_policy_t *p, const char *client, const char *hash, const char *name,
                      char *msg, size_t cap)
{
    if (p->mode == PD_POLICY_ANY)
        return true;
    s_refresh(p);
    if (p->mode == PD_POLICY_CLIENTS) {
        if (client && *client && s_listed(p, client))
            return true;
        if (!client || !*client)
            snprintf(msg, cap, "worker %s runs code only from the client keys its owner lists, "
                     "and this job came without a client key (the broker runs without CurveZMQ)",
                     p->host);
        else
            snprintf(msg, cap, "worker %s runs code only from the client keys its owner lists, "
                     "and key %s is not one of them (the owner of %s can add it to %s)", p->host,
                     client, p->host, p->list);
        return false;
    }
    if (hash && s_listed(p, hash))
        return true;
    if (hash && strcmp(hash, "builtin") == 0) {
        snprintf(msg, cap, "worker %s runs only modules installed by its owner, and shell "
                 "commands (exec) are not among them (the owner of %s can allow them by listing "
                 "the word builtin in %s)", p->host, p->host, p->list);
        return false;
    }
    char what[256];
    if (name && hash && strcmp(name, hash) != 0)
        snprintf(what, sizeof what, "%.100s (%.64s)", name, hash);
    else
        snprintf(what, sizeof what, "%.64s", hash ? hash : "?");
    snprintf(msg, cap, "worker %s runs only modules installed by its owner, and module %s is "
             "not one of them (the owner of %s can install it with `playdoh-worker "
             "--install-module FILE`)", p->host, what, p->host);
    return false;
}

int pd_policy_list_add(const char *path, const char *entry, const char *comment, char *why,
                       size_t whycap)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        int rc = pd_auth_make_dir(dir, why, whycap);
        if (rc)
            return rc;
    }
    FILE *f = fopen(path, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        char *w = line + strspn(line, " \t");
        w[strcspn(w, " \t\r\n")] = 0;
        if (strcmp(w, entry) == 0) {
            fclose(f);
            return 0;
        }
    }
    if (f)
        fclose(f);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    FILE *out = fd >= 0 ? fdopen(fd, "a") : NULL;
    if (!out) {
        if (fd >= 0)
            close(fd);
        snprintf(why, whycap, "cannot write %s: %s", path, strerror(errno));
        return PD_ESYS;
    }
    fprintf(out, "%s%s%s\n", entry, comment && *comment ? "  # " : "",
            comment && *comment ? comment : "");
    if (fclose(out) != 0) {
        snprintf(why, whycap, "cannot write %s: %s", path, strerror(errno));
        return PD_ESYS;
    }
    return 0;
}
