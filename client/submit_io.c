/*  playdoh-submit: what the verbs read and write besides the broker: job
    ids and ranges (17, 1-1000), argument lines (one JSON value per line,
    packed as msgpack), and JSON text on standard output.
*/
#include "submit.h"
#include "pd_plat.h"

#include "pd_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ids ----------------------------------------------------------------- */

/* Parses "17" or "1-1000" items into a growing array. Returns 0 or 2. */
int pd_submit_parse_ids(pd_submit_t *s, int argc, char **argv, uint64_t **ids, size_t *n)
{
    size_t cap = 0;
    *ids = NULL;
    *n = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        char *end;
        errno = 0;
        uint64_t lo = strtoull(a, &end, 10), hi = lo;
        bool ok = !errno && end != a && a[0] != '-' && lo > 0;
        if (ok && *end == '-') {
            const char *t = end + 1;
            hi = strtoull(t, &end, 10);
            ok = !errno && end != t && hi >= lo && t[0] != '-';
        }
        if (!ok || *end || hi - lo >= 100000000ULL) {
            free(*ids);
            *ids = NULL;
            pd_submit_usage_error(s, "'%s' is not a job id or a range of ids (like 17 or 1-1000)",
                                  a);
            return 2;
        }
        for (uint64_t x = lo; x <= hi; x++) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 64;
                uint64_t *grown = realloc(*ids, cap * sizeof **ids);
                if (!grown) {
                    free(*ids);
                    *ids = NULL;
                    fprintf(stderr, "playdoh-submit: out of memory\n");
                    return 2;
                }
                *ids = grown;
            }
            (*ids)[(*n)++] = x;
        }
    }
    if (*n == 0) {
        pd_submit_usage_error(s, "no job ids given");
        return 2;
    }
    return 0;
}

void pd_submit_print_ranges(FILE *f, const uint64_t *ids, size_t n)
{
    size_t i = 0;
    bool first = true;
    while (i < n) {
        if (ids[i] == 0) {
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < n && ids[j] == ids[j - 1] + 1)
            j++;
        fprintf(f, first ? "" : " ");
        if (j - i == 1)
            fprintf(f, "%" PRIu64, ids[i]);
        else
            fprintf(f, "%" PRIu64 "-%" PRIu64, ids[i], ids[j - 1]);
        first = false;
        i = j;
    }
    fprintf(f, "\n");
}

/* ---- JSON output --------------------------------------------------------- */

void pd_submit_put_json_str(pd_buf_t *out, const char *str)
{
    pd_buf_t tmp;
    pd_buf_init(&tmp);
    msgpack_packer pk;
    pd_packer_init(&pk, &tmp);
    pd_pack_cstr(&pk, str);
    pd_msgpack_to_json(tmp.data, tmp.len, out);
    pd_buf_free(&tmp);
}

void pd_submit_put(pd_buf_t *out, const char *str) { pd_buf_append(out, str, strlen(str)); }

void pd_submit_flush(pd_buf_t *out)
{
    if (out->len)
        fwrite(out->data, 1, out->len, stdout);
    fflush(stdout);
    pd_buf_reset(out);
}

/* ---- argument lines ---------------------------------------------------- */

/* Reads ARGS.jsonl into packed msgpack values; returns 0 or 2. */
int pd_submit_read_args(const char *path, pd_buf_t *args, size_t *n)
{
    bool std = strcmp(path, "-") == 0;
    FILE *f = std ? stdin : fopen(path, "r");
    if (!f) {
        fprintf(stderr, "playdoh-submit: cannot read arguments from %s: %s\n", path,
                strerror(errno));
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    size_t lineno = 0;
    int rc = 0;
    *n = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t l = (size_t) len;
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r' || line[l - 1] == ' ' ||
                     line[l - 1] == '\t'))
            l--;
        size_t st = 0;
        while (st < l && (line[st] == ' ' || line[st] == '\t'))
            st++;
        if (st == l)
            continue; /* blank lines carry no job */
        char err[256];
        if (pd_json_to_msgpack(line + st, l - st, args, err, sizeof err)) {
            fprintf(stderr, "playdoh-submit: %s line %zu: %s\n", std ? "standard input" : path,
                    lineno, err);
            rc = 2;
            break;
        }
        (*n)++;
    }
    if (!rc && ferror(f)) {
        fprintf(stderr, "playdoh-submit: cannot read arguments from %s: %s\n",
                std ? "standard input" : path, strerror(errno));
        rc = 2;
    }
    free(line);
    if (!std)
        fclose(f);
    return rc;
}


void pd_submit_put_cancelled(pd_buf_t *out, uint64_t id)
{
    char line[64];
    snprintf(line, sizeof line, "{\"cancelled\":true,\"job\":%" PRIu64 "}\n", id);
    pd_submit_put(out, line);
}
