/*  pd_config: configuration files; see pd_config.h for the format.

    The schema below lists every section and key with its type and range;
    the parser checks each `key = value` line against it as it reads, so a
    loaded configuration holds only valid values and the getters cannot
    fail. Entries are kept in load order with their file and line; a getter
    returns the last one set, which is how a later file overrides an earlier
    one. Files are small (1 MiB at most), so a linear search is plenty.
*/
#include "pd_config.h"
#include "pd_grow.h"
#include "pd_plat.h"
#include "pd_error.h"
#include "pd_limits.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum {
    S_STR,
    S_NAME,
    S_ENDPOINT,
    S_UINT,
    S_DOUBLE,
    S_BOOL,
    S_CHOICE,
    S_OCTAL,
    S_SIZE,   /* bytes: "2G", "512M" (pd_limits_parse_size); "0" = none */
    S_SECONDS /* seconds: "60s", "5m" (pd_limits_parse_seconds); "0" = none */
} s_kind_t;

typedef struct {
    const char *section; /* section name */
    const char *key;     /* key name */
    s_kind_t kind;       /* value type */
    double lo, hi;       /* range (numbers), or length bounds (S_NAME) */
    const char *choices; /* S_CHOICE: "a|b|c" */
} s_key_t;

#define S_LEVELS "error|warn|info|debug"
#define S_SECURITY "auto|secure|insecure" /* docs/security.md */

static const s_key_t s_schema[] = {
    {"cluster", "name", S_NAME, 1, 63, NULL},
    {"cluster", "beacon_port", S_UINT, 0, 65535, NULL},
    {"cluster", "beacon_interval_ms", S_UINT, 100, 60000, NULL},
    {"cluster", "beacon_interface", S_STR, 0, 0, NULL},
    {"cluster", "discover_timeout_ms", S_UINT, 100, 600000, NULL},

    {"broker", "bind", S_ENDPOINT, 0, 0, NULL},
    {"broker", "name", S_NAME, 1, 63, NULL},
    {"broker", "heartbeat_ms", S_UINT, 10, 600000, NULL},
    {"broker", "liveness", S_UINT, 1, 1000, NULL},
    {"broker", "max_jobs", S_UINT, 1, 1e12, NULL},
    {"broker", "result_ttl_s", S_UINT, 1, 100.0 * 365 * 86400, NULL},
    {"broker", "max_shared_mb", S_UINT, 1, 250, NULL},
    {"broker", "shared_store_mb", S_UINT, 1, 1048576, NULL},
    {"broker", "max_arg_mb", S_UINT, 1, 200, NULL},
    {"broker", "max_batch_mb", S_UINT, 1, 1048576, NULL},
    {"broker", "max_queued_mb", S_UINT, 1, 1073741824.0, NULL},
    {"broker", "beacon", S_BOOL, 0, 0, NULL},
    {"broker", "log_level", S_CHOICE, 0, 0, S_LEVELS},
    {"broker", "journal", S_STR, 0, 0, NULL},
    {"broker", "journal_sync", S_CHOICE, 0, 0, "full|normal|off"},
    {"broker", "journal_max_mb", S_UINT, 0, 1073741824.0, NULL},
    {"broker", "security", S_CHOICE, 0, 0, S_SECURITY},
    {"broker", "key", S_STR, 0, 0, NULL},
    {"broker", "allow_dir", S_STR, 0, 0, NULL},
    {"broker", "http", S_STR, 0, 0, NULL},
    {"broker", "http_token_file", S_STR, 0, 0, NULL},

    {"worker", "broker", S_ENDPOINT, 0, 0, NULL},
    {"worker", "cpus", S_UINT, 0, 4096, NULL},
    {"worker", "gpus", S_UINT, 0, 1024, NULL},
    {"worker", "cache_dir", S_STR, 0, 0, NULL},
    {"worker", "heartbeat_ms", S_UINT, 10, 600000, NULL},
    {"worker", "name", S_NAME, 1, 63, NULL},
    {"worker", "log_level", S_CHOICE, 0, 0, S_LEVELS},
    {"worker", "control", S_STR, 0, 0, NULL},
    {"worker", "control_mode", S_OCTAL, 0, 0777, NULL},
    {"worker", "idle_load_max", S_DOUBLE, 0, 4096, NULL},
    {"worker", "idle_action", S_CHOICE, 0, 0, "suspend|requeue"},
    {"worker", "idle_check_ms", S_UINT, 100, 600000, NULL},
    {"worker", "idle_wait_s", S_UINT, 0, 86400, NULL},
    {"worker", "proc_dir", S_STR, 0, 0, NULL},
    {"worker", "node_addr", S_STR, 0, 0, NULL},
    {"worker", "security", S_CHOICE, 0, 0, S_SECURITY},
    {"worker", "key", S_STR, 0, 0, NULL},
    {"worker", "broker_key", S_STR, 0, 0, NULL},
    {"worker", "code_policy", S_CHOICE, 0, 0, "any|clients|installed"},
    {"worker", "code_list", S_STR, 0, 0, NULL},
    {"worker", "max_memory", S_SIZE, 0, 0, NULL},
    {"worker", "max_cpu_time", S_SECONDS, 0, 0, NULL},
    {"worker", "max_output", S_SIZE, 0, 0, NULL},
    {"worker", "default_memory", S_SIZE, 0, 0, NULL},
    {"worker", "default_cpu_time", S_SECONDS, 0, 0, NULL},
    {"worker", "default_output", S_SIZE, 0, 0, NULL},

    {"submit", "broker", S_ENDPOINT, 0, 0, NULL},
    {"submit", "log_level", S_CHOICE, 0, 0, S_LEVELS},
    {"submit", "timeout_ms", S_UINT, 100, 86400000, NULL},
    {"submit", "security", S_CHOICE, 0, 0, S_SECURITY},
    {"submit", "key", S_STR, 0, 0, NULL},
    {"submit", "broker_key", S_STR, 0, 0, NULL},
};
#define S_NKEYS (sizeof s_schema / sizeof s_schema[0])

/* One `key = value` line kept. */
typedef struct {
    uint16_t key;  /* index in s_schema */
    uint16_t file; /* index in the files list */
    uint32_t line; /* line number in that file */
    char *value;   /* the value, unquoted, owned */
} s_entry_t;

struct pd_config {
    s_entry_t *e;      /* entries in load order, owned */
    size_t n;          /* entries */
    size_t cap;        /* capacity of e */
    char **files;      /* names of the files loaded, owned */
    size_t nfiles;     /* entries in files */
    char *sources;     /* files joined with ", ", owned, rebuilt on load */
    char where[320];   /* buffer for pd_config_where */
};

pd_config_t *pd_config_new(void) { return calloc(1, sizeof(pd_config_t)); }

void pd_config_destroy(pd_config_t **p)
{
    if (!p || !*p)
        return;
    pd_config_t *c = *p;
    for (size_t i = 0; i < c->n; i++)
        free(c->e[i].value);
    free(c->e);
    for (size_t i = 0; i < c->nfiles; i++)
        free(c->files[i]);
    free(c->files);
    free(c->sources);
    free(c);
    *p = NULL;
}

/* ---- checking one value ------------------------------------------------- */

static int s_find_key(const char *section, const char *key)
{
    for (size_t i = 0; i < S_NKEYS; i++)
        if (strcmp(s_schema[i].section, section) == 0 && strcmp(s_schema[i].key, key) == 0)
            return (int) i;
    return -1;
}

/* "cpus, gpus, ..." for the keys of a section. */
static void s_list_keys(const char *section, char *out, size_t cap)
{
    size_t k = 0;
    out[0] = 0;
    for (size_t i = 0; i < S_NKEYS && k < cap; i++)
        if (strcmp(s_schema[i].section, section) == 0)
            k += (size_t) snprintf(out + k, cap - k, "%s%s", k ? ", " : "", s_schema[i].key);
}

static bool s_parse_bool(const char *v, bool *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(v, yes[i]) == 0)
            return *out = true, true;
        if (strcmp(v, no[i]) == 0)
            return *out = false, true;
    }
    return false;
}

static bool s_parse_u64(const char *v, int base, uint64_t *out)
{
    if (!v[0] || v[0] == '-' || v[0] == '+' || isspace((unsigned char) v[0]))
        return false;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, base);
    if (errno || *end)
        return false;
    *out = x;
    return true;
}

static bool s_parse_double(const char *v, double *out)
{
    if (!v[0] || isspace((unsigned char) v[0]))
        return false;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || !isfinite(x))
        return false;
    *out = x;
    return true;
}

static bool s_choice_ok(const char *choices, const char *v)
{
    size_t len = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t) (bar - p) : strlen(p);
        if (n == len && strncmp(p, v, n) == 0)
            return true;
        p += n + (bar ? 1 : 0);
    }
    return false;
}

/* Whether value v is one schema entry k takes. */
static bool s_valid(const s_key_t *k, const char *v)
{
    uint64_t u;
    double d;
    bool b;
    switch (k->kind) {
    case S_STR:
        return true;
    case S_NAME: {
        size_t len = strlen(v);
        bool ok = len >= (size_t) k->lo && len <= (size_t) k->hi;
        for (size_t i = 0; ok && i < len; i++)
            ok = isalnum((unsigned char) v[i]) || v[i] == '-' || v[i] == '_' || v[i] == '.';
        return ok;
    }
    case S_ENDPOINT:
        return !v[0] || strncmp(v, "tcp://", 6) == 0 || strncmp(v, "ipc://", 6) == 0;
    case S_UINT:
        return s_parse_u64(v, 10, &u) && (double) u >= k->lo && (double) u <= k->hi;
    case S_OCTAL:
        return v[0] == '0' && s_parse_u64(v, 8, &u) && (double) u <= k->hi;
    case S_DOUBLE:
        return s_parse_double(v, &d) && d >= k->lo && d <= k->hi;
    case S_BOOL:
        return s_parse_bool(v, &b);
    case S_SIZE:
        return strcmp(v, "0") == 0 || pd_limits_parse_size(v, &u) == 0;
    case S_SECONDS:
        return strcmp(v, "0") == 0 || pd_limits_parse_seconds(v, &u) == 0;
    case S_CHOICE:
        return s_choice_ok(k->choices, v);
    }
    return false;
}

/* What schema entry k wants ("a number from 0 to 4096"), in buf; NULL for
   an unknown kind. */
static const char *s_wants(const s_key_t *k, char *buf, size_t cap)
{
    switch (k->kind) {
    case S_STR:
        return "any text";
    case S_NAME:
        snprintf(buf, cap, "a name of %d to %d letters, digits, '-', '_' or '.'", (int) k->lo,
                 (int) k->hi);
        return buf;
    case S_ENDPOINT:
        return "an endpoint such as tcp://lab-server:5555 (or nothing, to find the broker by "
               "its beacon)";
    case S_UINT:
        snprintf(buf, cap, "a whole number from %.0f to %.0f", k->lo, k->hi);
        return buf;
    case S_OCTAL:
        return "an octal file mode such as 0660";
    case S_DOUBLE:
        snprintf(buf, cap, "a number from %g to %g", k->lo, k->hi);
        return buf;
    case S_BOOL:
        return "true or false (yes/no, on/off, 1/0)";
    case S_SIZE:
        return "a size such as 2G, 512M or 64k (0: none)";
    case S_SECONDS:
        return "a duration such as 60s, 5m or 2h (0: none)";
    case S_CHOICE:
        snprintf(buf, cap, "one of %s", k->choices);
        return buf;
    }
    return NULL;
}

/* Checks value against schema entry k; writes what is expected into why. */
static int s_check(const s_key_t *k, const char *v, char *why, size_t cap)
{
    char buf[512];
    if (s_valid(k, v))
        return 0;
    const char *wants = s_wants(k, buf, sizeof buf);
    if (wants)
        snprintf(why, cap, "[%s] %s wants %s, not '%s'", k->section, k->key, wants, v);
    return PD_EINVAL;
}

int pd_config_check(const char *section, const char *key, const char *value, char *why,
                    size_t whycap)
{
    int k = s_find_key(section, key);
    if (k < 0) {
        snprintf(why, whycap, "unknown setting [%s] %s", section, key);
        return PD_EINVAL;
    }
    return s_check(&s_schema[k], value, why, whycap);
}

/* ---- parsing ------------------------------------------------------------ */

static int s_fail(char *why, size_t cap, const char *name, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int s_fail(char *why, size_t cap, const char *name, size_t line, const char *fmt, ...)
{
    int k = snprintf(why, cap, "%s:%zu: ", name, line);
    if (k < 0 || (size_t) k >= cap)
        return PD_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why + k, cap - (size_t) k, fmt, ap);
    va_end(ap);
    return PD_EINVAL;
}

static void s_trim(const char **s, const char **e)
{
    while (*s < *e && isspace((unsigned char) **s))
        (*s)++;
    while (*e > *s && isspace((unsigned char) (*e)[-1]))
        (*e)--;
}

static int s_add(pd_config_t *c, uint16_t key, uint16_t file, uint32_t line, const char *v,
                 size_t len)
{
    if (pd_grow(&c->e, &c->cap, c->n + 1, sizeof *c->e))
        return PD_ENOMEM;
    char *copy = strndup(v, len);
    if (!copy)
        return PD_ENOMEM;
    c->e[c->n++] = (s_entry_t){.key = key, .file = file, .line = line, .value = copy};
    return 0;
}

static int s_add_file(pd_config_t *c, const char *name)
{
    char **f = realloc(c->files, (c->nfiles + 1) * sizeof *f);
    if (!f)
        return PD_ENOMEM;
    c->files = f;
    if (!(c->files[c->nfiles] = strdup(name)))
        return PD_ENOMEM;
    c->nfiles++;
    size_t total = 1;
    for (size_t i = 0; i < c->nfiles; i++)
        total += strlen(c->files[i]) + 2;
    char *s = malloc(total);
    if (!s)
        return PD_ENOMEM;
    s[0] = 0;
    for (size_t i = 0; i < c->nfiles; i++) {
        if (i)
            strcat(s, ", ");
        strcat(s, c->files[i]);
    }
    free(c->sources);
    c->sources = s;
    return 0;
}

/* Drops entries from index `from` on (a failed parse keeps nothing). */
static void s_truncate(pd_config_t *c, size_t from)
{
    for (size_t i = from; i < c->n; i++)
        free(c->e[i].value);
    c->n = from;
}

/* Parses one line [s, e) of file `name`. *section is the current section
   (a schema index's section, or NULL before the first header). */
static int s_line(pd_config_t *c, const char *name, uint16_t file, size_t lineno, const char *s,
                  const char *e, const char **section, size_t first_entry, char *why, size_t cap)
{
    s_trim(&s, &e);
    if (s == e || *s == '#' || *s == ';')
        return 0;
    if (*s == '[') {
        if (e[-1] != ']')
            return s_fail(why, cap, name, lineno, "a section header wants a closing ']', as in "
                          "[worker]");
        const char *ns = s + 1, *ne = e - 1;
        s_trim(&ns, &ne);
        char sec[32];
        if ((size_t) (ne - ns) >= sizeof sec)
            ne = ns + sizeof sec - 1;
        memcpy(sec, ns, (size_t) (ne - ns));
        sec[ne - ns] = 0;
        for (size_t i = 0; i < S_NKEYS; i++)
            if (strcmp(s_schema[i].section, sec) == 0) {
                *section = s_schema[i].section;
                return 0;
            }
        return s_fail(why, cap, name, lineno, "unknown section [%s] (expected [cluster], "
                      "[broker], [worker] or [submit])", sec);
    }
    const char *eq = memchr(s, '=', (size_t) (e - s));
    if (!eq)
        return s_fail(why, cap, name, lineno, "expected 'key = value', a [section] header or a "
                      "# comment");
    const char *ks = s, *ke = eq, *vs = eq + 1, *ve = e;
    s_trim(&ks, &ke);
    s_trim(&vs, &ve);
    char key[64];
    if (ks == ke)
        return s_fail(why, cap, name, lineno, "a key is missing before '='");
    size_t klen = (size_t) (ke - ks) < sizeof key - 1 ? (size_t) (ke - ks) : sizeof key - 1;
    memcpy(key, ks, klen);
    key[klen] = 0;
    if (!*section)
        return s_fail(why, cap, name, lineno, "'%s' comes before any section: put it under "
                      "[cluster], [broker], [worker] or [submit]", key);
    /* The value: quoted ("..." with \" and \\), or bare up to a " #" comment. */
    char val[PD_CONFIG_MAX_VALUE + 1];
    size_t vlen = 0;
    if (vs < ve && *vs == '"') {
        const char *p = vs + 1;
        bool closed = false;
        while (p < ve) {
            char ch = *p++;
            if (ch == '"') {
                closed = true;
                break;
            }
            if (ch == '\\' && p < ve && (*p == '"' || *p == '\\'))
                ch = *p++;
            if (vlen == PD_CONFIG_MAX_VALUE)
                return s_fail(why, cap, name, lineno, "value of '%s' is longer than %d bytes",
                              key, PD_CONFIG_MAX_VALUE);
            val[vlen++] = ch;
        }
        if (!closed)
            return s_fail(why, cap, name, lineno, "value of '%s' opens a quote (\") it does not "
                          "close", key);
        const char *rest = p;
        while (rest < ve && isspace((unsigned char) *rest))
            rest++;
        if (rest < ve && *rest != '#' && *rest != ';')
            return s_fail(why, cap, name, lineno, "unexpected text after the quoted value of "
                          "'%s'", key);
    } else {
        for (const char *p = vs; p < ve; p++)
            if ((*p == '#' || *p == ';') && p > vs && isspace((unsigned char) p[-1])) {
                ve = p;
                break;
            }
        s_trim(&vs, &ve);
        if ((size_t) (ve - vs) > PD_CONFIG_MAX_VALUE)
            return s_fail(why, cap, name, lineno, "value of '%s' is longer than %d bytes", key,
                          PD_CONFIG_MAX_VALUE);
        vlen = (size_t) (ve - vs);
        memcpy(val, vs, vlen);
    }
    val[vlen] = 0;
    if (memchr(val, 0, vlen))
        return s_fail(why, cap, name, lineno, "value of '%s' holds a NUL byte", key);
    int k = s_find_key(*section, key);
    if (k < 0) {
        char keys[512];
        s_list_keys(*section, keys, sizeof keys);
        return s_fail(why, cap, name, lineno, "unknown key '%s' in [%s] (expected one of: %s)",
                      key, *section, keys);
    }
    for (size_t i = first_entry; i < c->n; i++)
        if (c->e[i].key == k)
            return s_fail(why, cap, name, lineno, "[%s] %s is already set on line %u", *section,
                          key, c->e[i].line);
    char what[400];
    if (s_check(&s_schema[k], val, what, sizeof what))
        return s_fail(why, cap, name, lineno, "%s", what);
    return s_add(c, (uint16_t) k, file, (uint32_t) lineno, val, vlen);
}

int pd_config_parse(pd_config_t *c, const char *name, const char *text, size_t len, char *why,
                    size_t whycap)
{
    size_t first = c->n;
    uint16_t file = (uint16_t) c->nfiles;
    if (c->nfiles >= 1000) {
        snprintf(why, whycap, "%s: too many configuration files", name);
        return PD_EINVAL;
    }
    if (len > PD_CONFIG_MAX_BYTES) {
        snprintf(why, whycap, "%s: %zu bytes; a configuration file is at most %u bytes", name,
                 len, PD_CONFIG_MAX_BYTES);
        return PD_EINVAL;
    }
    const char *section = NULL;
    const char *p = text, *end = text + len;
    size_t lineno = 0;
    int rc = 0;
    while (p < end && rc == 0) {
        lineno++;
        const char *nl = memchr(p, '\n', (size_t) (end - p));
        const char *le = nl ? nl : end;
        if (memchr(p, 0, (size_t) (le - p)))
            rc = s_fail(why, whycap, name, lineno, "the line holds a NUL byte (is this a text "
                        "file?)");
        else
            rc = s_line(c, name, file, lineno, p, le, &section, first, why, whycap);
        p = nl ? nl + 1 : end;
    }
    if (rc == 0)
        rc = s_add_file(c, name);
    if (rc) {
        if (rc == PD_ENOMEM)
            snprintf(why, whycap, "%s: out of memory", name);
        s_truncate(c, first);
    }
    return rc;
}

int pd_config_load(pd_config_t *c, const char *path, char *why, size_t whycap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, whycap, "cannot read configuration file %s: %s", path, strerror(errno));
        return PD_EIO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        snprintf(why, whycap, "configuration file %s is a directory", path);
        return PD_EIO;
    }
    char *text = malloc(PD_CONFIG_MAX_BYTES + 1);
    if (!text) {
        fclose(f);
        snprintf(why, whycap, "%s: out of memory", path);
        return PD_ENOMEM;
    }
    size_t len = fread(text, 1, PD_CONFIG_MAX_BYTES + 1, f);
    bool bad = ferror(f);
    fclose(f);
    int rc;
    if (bad) {
        snprintf(why, whycap, "cannot read configuration file %s", path);
        rc = PD_EIO;
    } else {
        rc = pd_config_parse(c, path, text, len, why, whycap);
    }
    free(text);
    return rc;
}

int pd_config_load_default(pd_config_t *c, const char *explicit_path, char *why, size_t whycap)
{
    if (explicit_path)
        return pd_config_load(c, explicit_path, why, whycap);
    const char *env = getenv("PLAYDOH_CONFIG");
    if (env && *env)
        return pd_config_load(c, env, why, whycap);
    char user[4096] = "";
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(user, sizeof user, "%s/playdoh/playdoh.conf", xdg);
    else if (home && *home)
        snprintf(user, sizeof user, "%s/.config/playdoh/playdoh.conf", home);
    const char *paths[] = {PD_CONFIG_SYSTEM_PATH, user};
    for (int i = 0; i < 2; i++) {
        struct stat st;
        if (!paths[i][0] || stat(paths[i], &st) != 0)
            continue; /* absent: nothing to load */
        int rc = pd_config_load(c, paths[i], why, whycap);
        if (rc)
            return rc;
    }
    return 0;
}

const char *pd_config_sources(const pd_config_t *c) { return c->sources ? c->sources : ""; }

/* ---- getters ------------------------------------------------------------ */

static const s_entry_t *s_get(const pd_config_t *c, const char *section, const char *key)
{
    int k = s_find_key(section, key);
    assert(k >= 0 && "a key the schema does not list");
    for (size_t i = c->n; i-- > 0;)
        if (c->e[i].key == k)
            return &c->e[i];
    return NULL;
}

bool pd_config_has(const pd_config_t *c, const char *section, const char *key)
{
    return s_get(c, section, key) != NULL;
}

const char *pd_config_str(const pd_config_t *c, const char *section, const char *key,
                          const char *dflt)
{
    const s_entry_t *e = s_get(c, section, key);
    return e ? e->value : dflt;
}

uint64_t pd_config_uint(const pd_config_t *c, const char *section, const char *key,
                        uint64_t dflt)
{
    const s_entry_t *e = s_get(c, section, key);
    uint64_t v;
    if (e && strcmp(e->value, "0") == 0)
        return 0;
    if (e && s_schema[e->key].kind == S_SIZE)
        return pd_limits_parse_size(e->value, &v) == 0 ? v : dflt;
    if (e && s_schema[e->key].kind == S_SECONDS)
        return pd_limits_parse_seconds(e->value, &v) == 0 ? v : dflt;
    int base = e && s_schema[e->key].kind == S_OCTAL ? 8 : 10;
    return e && s_parse_u64(e->value, base, &v) ? v : dflt;
}

double pd_config_double(const pd_config_t *c, const char *section, const char *key, double dflt)
{
    const s_entry_t *e = s_get(c, section, key);
    double v;
    return e && s_parse_double(e->value, &v) ? v : dflt;
}

bool pd_config_bool(const pd_config_t *c, const char *section, const char *key, bool dflt)
{
    const s_entry_t *e = s_get(c, section, key);
    bool v;
    return e && s_parse_bool(e->value, &v) ? v : dflt;
}

const char *pd_config_where(const pd_config_t *c, const char *section, const char *key)
{
    const s_entry_t *e = s_get(c, section, key);
    if (!e)
        return "";
    pd_config_t *mc = (pd_config_t *) c;
    snprintf(mc->where, sizeof mc->where, "%s:%u", c->files[e->file], e->line);
    return mc->where;
}
