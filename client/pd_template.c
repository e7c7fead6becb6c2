/*  pd_template: GNU parallel's replacement strings; see pd_template.h.

    Expansion walks the template once; each replacement string computes its
    slice of the argument (base name, directory, extension) without copying,
    then quotes it into the output.
*/
#include "pd_template.h"
#include "pd_error.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

typedef enum { S_WHOLE, S_NOEXT, S_BASE, S_DIR, S_BASE_NOEXT, S_SEQ, S_NONE } s_kind_t;

/* The replacement string at t, if any; *len gets its length. */
static s_kind_t s_match(const char *t, size_t *len)
{
    static const struct {
        const char *text;
        s_kind_t kind;
    } forms[] = {{"{}", S_WHOLE},    {"{.}", S_NOEXT}, {"{/}", S_BASE},
                 {"{//}", S_DIR},    {"{/.}", S_BASE_NOEXT}, {"{#}", S_SEQ}};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        size_t n = strlen(forms[i].text);
        if (strncmp(t, forms[i].text, n) == 0) {
            *len = n;
            return forms[i].kind;
        }
    }
    return S_NONE;
}

bool pd_template_has_placeholder(const char *tmpl)
{
    for (const char *t = strchr(tmpl, '{'); t; t = strchr(t + 1, '{')) {
        size_t n;
        if (s_match(t, &n) != S_NONE)
            return true;
    }
    return false;
}

static bool s_safe(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("_-./:@%+,=", c) != NULL;
}

int pd_shell_quote(const char *s, size_t n, pd_buf_t *out)
{
    bool safe = n > 0;
    for (size_t i = 0; i < n && safe; i++)
        safe = s[i] != 0 && s_safe(s[i]);
    if (safe)
        return pd_buf_append(out, s, n);
    int rc = pd_buf_append(out, "'", 1);
    for (size_t i = 0; i < n && !rc; i++)
        rc = s[i] == '\'' ? pd_buf_append(out, "'\"'\"'", 5) : pd_buf_append(out, &s[i], 1);
    return rc ? rc : pd_buf_append(out, "'", 1);
}

/* The slice of arg[0..len) a replacement string stands for. */
static void s_slice(s_kind_t kind, const char *arg, size_t len, const char **p, size_t *n)
{
    const char *slash = NULL;
    for (size_t i = len; i-- > 0;)
        if (arg[i] == '/') {
            slash = arg + i;
            break;
        }
    const char *base = slash ? slash + 1 : arg;
    size_t blen = (size_t) (arg + len - base);
    /* The extension: from the last '.' of the base name, unless the base
       name starts with it (".bashrc" has none). */
    size_t ext = 0;
    for (size_t i = blen; i-- > 1;)
        if (base[i] == '.') {
            ext = blen - i;
            break;
        }
    switch (kind) {
    case S_NOEXT: *p = arg, *n = len - ext; break;
    case S_BASE: *p = base, *n = blen; break;
    case S_DIR:
        if (slash)
            *p = arg, *n = slash == arg ? 1 : (size_t) (slash - arg);
        else
            *p = ".", *n = 1;
        break;
    case S_BASE_NOEXT: *p = base, *n = blen - ext; break;
    default: *p = arg, *n = len; break;
    }
}

/* Appends tmpl with its replacement strings filled from arg (quoted for
   the shell when quote), and " {}" when it has none and quote. */
static int s_expand(const char *tmpl, const char *arg, size_t len, uint64_t seq, bool quote,
                    pd_buf_t *out)
{
    if (memchr(arg, 0, len))
        return PD_EINVAL;
    size_t before = out->len;
    bool any = false;
    int rc = 0;
    const char *t = tmpl;
    while (*t && !rc) {
        const char *brace = strchr(t, '{');
        size_t n = 0;
        s_kind_t kind = S_NONE;
        while (brace && (kind = s_match(brace, &n)) == S_NONE)
            brace = strchr(brace + 1, '{');
        if (!brace) {
            rc = pd_buf_append(out, t, strlen(t));
            break;
        }
        rc = pd_buf_append(out, t, (size_t) (brace - t));
        if (rc)
            break;
        any = true;
        if (kind == S_SEQ) {
            char num[24];
            snprintf(num, sizeof num, "%" PRIu64, seq);
            rc = pd_buf_append(out, num, strlen(num));
        } else {
            const char *p;
            size_t pn;
            s_slice(kind, arg, len, &p, &pn);
            rc = quote ? pd_shell_quote(p, pn, out) : pd_buf_append(out, p, pn);
        }
        t = brace + n;
    }
    if (!rc && !any && quote) {
        rc = pd_buf_append(out, " ", 1);
        if (!rc)
            rc = pd_shell_quote(arg, len, out);
    }
    if (rc) {
        out->len = before;
        out->failed = false;
    }
    return rc;
}

int pd_template_expand(const char *tmpl, const char *arg, size_t len, uint64_t seq, pd_buf_t *out)
{
    return s_expand(tmpl, arg, len, seq, true, out);
}

int pd_template_expand_name(const char *tmpl, const char *arg, size_t len, uint64_t seq,
                            pd_buf_t *out)
{
    return s_expand(tmpl, arg, len, seq, false, out);
}
