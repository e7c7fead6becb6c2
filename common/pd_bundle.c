/*  pd_bundle: pack, check and parse multi-file modules; see pd_bundle.h.

    Packing sorts the files by name so that the same files and flags always
    give the same bytes, hence the same hash. Parsing is strict and bounded:
    it reads the bundle with the checked readers of pd_codec and allocates
    only arrays whose counts the bytes have already proved.
*/
#include "pd_bundle.h"
#include "pd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pd_bundle_check_name(const char *name, size_t len, char *why, size_t cap)
{
    if (len == 0 || len > PD_BUNDLE_MAX_NAME) {
        snprintf(why, cap, "a module file name must have 1 to %d characters",
                 PD_BUNDLE_MAX_NAME);
        return PD_EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-' || c == '+';
        if (!ok) {
            snprintf(why, cap, "module file '%.*s': a file name may hold letters, digits, '.', "
                     "'_', '-' and '+' only (files are placed side by side by base name)",
                     (int) len, name);
            return PD_EINVAL;
        }
    }
    if (name[0] == '.' || len < 3 || name[len - 2] != '.' ||
        (name[len - 1] != 'c' && name[len - 1] != 'h')) {
        snprintf(why, cap, "module file '%.*s': give C sources (.c) and headers (.h) only",
                 (int) len, name);
        return PD_EINVAL;
    }
    return 0;
}

static bool s_ident(const char *s, size_t n)
{
    if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* Letters, digits and a few punctuation marks: no spaces, quotes or paths. */
static bool s_plain(const char *s, bool allow_empty)
{
    if (!*s)
        return allow_empty;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '+' || *s == '-'))
            return false;
    return true;
}

int pd_bundle_check_flag(const char *f, char *why, size_t cap)
{
    static const char *exact[] = {
        "-O0", "-O1", "-O2", "-O3", "-Os", "-Og", "-Ofast", "-march=native", "-mtune=native",
        "-ffast-math", "-fopenmp", "-fno-math-errno", "-funroll-loops", "-g", "-Wall", "-Wextra",
        "-pthread", "-std=c89", "-std=c90", "-std=c99", "-std=c11", "-std=c17", "-std=c18",
        "-std=c2x", "-std=gnu89", "-std=gnu99", "-std=gnu11", "-std=gnu17", "-std=gnu18",
        "-std=gnu2x"};
    size_t n = strlen(f);
    if (n == 0 || n > PD_BUNDLE_MAX_NAME) {
        snprintf(why, cap, "a compiler flag must have 1 to %d characters", PD_BUNDLE_MAX_NAME);
        return PD_EINVAL;
    }
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcmp(f, exact[i]) == 0)
            return 0;
    if (strncmp(f, "-l", 2) == 0 && s_plain(f + 2, false))
        return 0;
    if (strncmp(f, "-D", 2) == 0 || strncmp(f, "-U", 2) == 0) {
        const char *eq = strchr(f + 2, '=');
        size_t nl = eq ? (size_t) (eq - (f + 2)) : strlen(f + 2);
        if (s_ident(f + 2, nl) && (!eq || (f[1] == 'D' && s_plain(eq + 1, true))))
            return 0;
        snprintf(why, cap, "compiler flag '%s': write -DNAME or -DNAME=VALUE (a C identifier; "
                 "a value of letters, digits, '.', '_', '+', '-') or -UNAME", f);
        return PD_EINVAL;
    }
    /* Refused flags by their first two characters, with why. */
    static const struct {
        const char *prefix, *why;
    } refused[] = {
        {"-L", " is refused: -L names a directory on the worker, which differs from machine to "
               "machine; install the library where the worker's compiler finds it and link it "
               "with -lNAME"},
        {"-I", " is refused: headers travel in the module; list them beside the .c files (they "
               "are placed in one directory)"},
        {"-l", ": a library name holds letters, digits, '.', '_', '+' and '-' only"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (strncmp(f, refused[i].prefix, 2) == 0) {
            snprintf(why, cap, "compiler flag '%s'%s", f, refused[i].why);
            return PD_EINVAL;
        }
    snprintf(why, cap, "compiler flag '%s' is not allowed: modules take -lNAME, -DNAME[=VALUE], "
             "-UNAME, -O0..-O3/-Os/-Og/-Ofast, -std=cNN/gnuNN, -march=native, -mtune=native, "
             "-ffast-math, -fopenmp, -fno-math-errno, -funroll-loops, -g, -Wall, -Wextra and "
             "-pthread (flags that reach other files or programs are refused)", f);
    return PD_EINVAL;
}

typedef struct {
    const pd_bundle_file_t *f;
} s_ref_t;

static int s_name_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

static int s_ref_cmp(const void *x, const void *y)
{
    const pd_bundle_file_t *a = ((const s_ref_t *) x)->f, *b = ((const s_ref_t *) y)->f;
    return s_name_cmp(a->name, a->name_len, b->name, b->name_len);
}

static bool s_is_c(const char *name, size_t len) { return len > 2 && name[len - 1] == 'c'; }

int pd_bundle_pack(const pd_bundle_file_t *files, size_t nfiles, const char *const *flags,
                   size_t nflags, pd_buf_t *out, char *why, size_t cap)
{
    if (nfiles == 0 || nfiles > PD_BUNDLE_MAX_FILES) {
        snprintf(why, cap, "a module has 1 to %d files, not %zu", PD_BUNDLE_MAX_FILES, nfiles);
        return PD_EINVAL;
    }
    if (nflags > PD_BUNDLE_MAX_FLAGS) {
        snprintf(why, cap, "a module has at most %d compiler flags, not %zu",
                 PD_BUNDLE_MAX_FLAGS, nflags);
        return PD_EINVAL;
    }
    bool has_c = false;
    for (size_t i = 0; i < nfiles; i++) {
        if (pd_bundle_check_name(files[i].name, files[i].name_len, why, cap))
            return PD_EINVAL;
        has_c |= s_is_c(files[i].name, files[i].name_len);
    }
    if (!has_c) {
        snprintf(why, cap, "a module needs at least one C source file (.c)");
        return PD_EINVAL;
    }
    for (size_t i = 0; i < nflags; i++)
        if (pd_bundle_check_flag(flags[i], why, cap))
            return PD_EINVAL;
    s_ref_t *ref = malloc(nfiles * sizeof *ref);
    if (!ref) {
        snprintf(why, cap, "out of memory");
        return PD_ENOMEM;
    }
    for (size_t i = 0; i < nfiles; i++)
        ref[i].f = &files[i];
    qsort(ref, nfiles, sizeof *ref, s_ref_cmp);
    for (size_t i = 1; i < nfiles; i++)
        if (s_ref_cmp(&ref[i - 1], &ref[i]) == 0) {
            snprintf(why, cap, "two module files are named '%.*s' (files are placed side by "
                     "side by base name)", (int) ref[i].f->name_len, ref[i].f->name);
            free(ref);
            return PD_EINVAL;
        }
    size_t before = out->len;
    msgpack_packer pk;
    pd_packer_init(&pk, out);
    msgpack_pack_map(&pk, 2);
    pd_pack_cstr(&pk, "files");
    msgpack_pack_array(&pk, (uint32_t) nfiles);
    for (size_t i = 0; i < nfiles; i++) {
        msgpack_pack_array(&pk, 2);
        msgpack_pack_str(&pk, ref[i].f->name_len);
        msgpack_pack_str_body(&pk, ref[i].f->name, ref[i].f->name_len);
        msgpack_pack_bin(&pk, ref[i].f->len);
        msgpack_pack_bin_body(&pk, ref[i].f->data, ref[i].f->len);
    }
    pd_pack_cstr(&pk, "flags");
    msgpack_pack_array(&pk, (uint32_t) nflags);
    for (size_t i = 0; i < nflags; i++)
        pd_pack_cstr(&pk, flags[i]);
    free(ref);
    if (out->failed) {
        out->len = before;
        out->failed = false;
        snprintf(why, cap, "the module's files are too large for one message");
        return PD_ETOOBIG;
    }
    return 0;
}

void pd_bundle_free(pd_bundle_t *b)
{
    free(b->files);
    free(b->flags);
    memset(b, 0, sizeof *b);
}

int pd_bundle_parse(const void *data, size_t len, pd_bundle_t *b, char *why, size_t cap)
{
    memset(b, 0, sizeof *b);
    const char *bad = NULL;
    if (pd_mp_check(data, len, 4, &bad)) {
        snprintf(why, cap, "module bundle is not one msgpack value (%s)", bad ? bad : "?");
        return PD_EPROTO;
    }
    pd_rd_t r;
    pd_rd_init(&r, data, len);
    uint32_t n, nf, nfl;
    if (pd_rd_map(&r, &n) || n != 2 || !pd_rd_key_is(&r, "files") || pd_rd_array(&r, &nf)) {
        snprintf(why, cap, "module bundle must be a map {\"files\": [[name, bytes], ...], "
                 "\"flags\": [...]}");
        return PD_EPROTO;
    }
    if (nf == 0 || nf > PD_BUNDLE_MAX_FILES) {
        snprintf(why, cap, "a module has 1 to %d files, not %u", PD_BUNDLE_MAX_FILES, nf);
        return PD_EINVAL;
    }
    b->files = calloc(nf, sizeof *b->files);
    if (!b->files) {
        snprintf(why, cap, "out of memory");
        return PD_ENOMEM;
    }
    bool has_c = false;
    for (uint32_t i = 0; i < nf; i++) {
        pd_bundle_file_t *f = &b->files[i];
        uint32_t two, nl, dl;
        const void *d;
        if (pd_rd_array(&r, &two) || two != 2 || pd_rd_str(&r, &f->name, &nl) ||
            pd_rd_bin(&r, &d, &dl)) {
            snprintf(why, cap, "module bundle: file %u is not [name, bytes]", i);
            pd_bundle_free(b);
            return PD_EPROTO;
        }
        f->name_len = nl;
        f->data = d;
        f->len = dl;
        b->nfiles++;
        int rc = pd_bundle_check_name(f->name, nl, why, cap);
        if (!rc && i > 0 && s_name_cmp(b->files[i - 1].name, b->files[i - 1].name_len, f->name,
                                       nl) >= 0) {
            snprintf(why, cap, "module bundle: files must be sorted by name, each name once "
                     "('%.*s')", (int) nl, f->name);
            rc = PD_EINVAL;
        }
        if (rc) {
            pd_bundle_free(b);
            return rc;
        }
        has_c |= s_is_c(f->name, nl);
    }
    if (!has_c) {
        snprintf(why, cap, "a module needs at least one C source file (.c)");
        pd_bundle_free(b);
        return PD_EINVAL;
    }
    if (!pd_rd_key_is(&r, "flags") || pd_rd_array(&r, &nfl)) {
        snprintf(why, cap, "module bundle: \"flags\" (an array of strings) must follow "
                 "\"files\"");
        pd_bundle_free(b);
        return PD_EPROTO;
    }
    if (nfl > PD_BUNDLE_MAX_FLAGS) {
        snprintf(why, cap, "a module has at most %d compiler flags, not %u", PD_BUNDLE_MAX_FLAGS,
                 nfl);
        pd_bundle_free(b);
        return PD_EINVAL;
    }
    if (nfl) {
        b->flags = calloc(nfl, sizeof *b->flags);
        if (!b->flags) {
            snprintf(why, cap, "out of memory");
            pd_bundle_free(b);
            return PD_ENOMEM;
        }
    }
    for (uint32_t i = 0; i < nfl; i++) {
        int rc = pd_rd_strcpy(&r, b->flags[i], sizeof b->flags[i]);
        if (rc) {
            snprintf(why, cap, "module bundle: flag %u is not a string of at most %d bytes", i,
                     PD_BUNDLE_MAX_NAME);
            pd_bundle_free(b);
            return PD_EPROTO;
        }
        b->nflags++;
        if (pd_bundle_check_flag(b->flags[i], why, cap)) {
            pd_bundle_free(b);
            return PD_EINVAL;
        }
    }
    return 0;
}
