/*  bench_json: JSON lines -> msgpack, the path of `playdoh-submit map`
    (client/submit.c's s_read_args: one pd_json_to_msgpack per line into one
    growing buffer), measured against Debian's JSON libraries doing the same
    job in the same run: parse the line into the library's tree, then walk
    the tree into msgpack with the same packer (issue 17: keep the library
    unless it costs more than 10 %).

    Usage: bench_json [LINES] [ROUNDS]   (default 1,000,000 lines, 3 rounds;
    the median round is printed). The lines are a mix of the shapes job
    arguments take: numbers, short strings, small arrays and objects. */
#include "bench_json.h"
#include "bench_util.h"
#include "pd_json.h"

static const char *const SHAPES[] = {
    "%d",
    "%d.25",
    "\"item-%d\"",
    "[%d, 2.5, \"abc\", true, null]",
    "{\"x\": %d, \"y\": -3.75, \"name\": \"run\\u00e9\", \"tags\": [\"a\", \"b\"]}",
    "[[1, 2], [3, 4], {\"seed\": %d, \"ok\": false}]",
    "{\"params\": {\"lr\": 0.001, \"layers\": [64, 64, 32]}, \"id\": %d}",
};

/* Builds n lines, '\n'-terminated, into one block; *len gets its size. */
static char *s_make_lines(size_t n, size_t *len)
{
    size_t cap = n * 64 + 1, used = 0;
    char *text = malloc(cap);
    if (!text)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (cap - used < 256) {
            cap *= 2;
            char *t = realloc(text, cap);
            if (!t) {
                free(text);
                return NULL;
            }
            text = t;
        }
        const char *shape = SHAPES[i % (sizeof SHAPES / sizeof *SHAPES)];
        used += (size_t) snprintf(text + used, cap - used, shape, (int) i);
        text[used++] = '\n';
    }
    *len = used;
    return text;
}

static int s_conv_pd(const char *line, size_t len, pd_buf_t *out)
{
    char err[256];
    return pd_json_to_msgpack(line, len, out, err, sizeof err);
}

/* Converts every line of text into one buffer, as s_read_args does; returns
   seconds, or -1 when a line failed. *bytes gets the msgpack size. */
static double s_run(convert_fn fn, const char *text, size_t len, size_t *bytes)
{
    pd_buf_t out;
    pd_buf_init(&out);
    out.max = (size_t) 1 << 30;
    double t0 = now();
    for (size_t st = 0; st < len;) {
        const char *nl = memchr(text + st, '\n', len - st);
        size_t end = nl ? (size_t) (nl - text) : len;
        if (fn(text + st, end - st, &out)) {
            pd_buf_free(&out);
            return -1;
        }
        st = end + 1;
    }
    double t = now() - t0;
    *bytes = out.len;
    pd_buf_free(&out);
    return t;
}

static double s_median_run(const char *name, convert_fn fn, const char *text, size_t len,
                           size_t lines, int rounds, double base)
{
    double t[16];
    size_t bytes = 0;
    for (int r = 0; r < rounds; r++) {
        t[r] = s_run(fn, text, len, &bytes);
        if (t[r] < 0) {
            printf("%-22s a line failed to convert\n", name);
            return -1;
        }
    }
    double m = median(t, rounds);
    printf("%-22s %8.3f s  %10.0f lines/s  %6.1f MB/s  msgpack %zu bytes", name, m,
           (double) lines / m, (double) len / m / 1e6, bytes);
    if (base > 0)
        printf("  %+.1f %% time vs pd_json", (m / base - 1) * 100);
    printf("\n");
    return m;
}

int main(int argc, char **argv)
{
    size_t lines = argc > 1 ? (size_t) strtoull(argv[1], NULL, 10) : 1000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    if (rounds < 1 || rounds > 16)
        rounds = 3;
    size_t len = 0;
    char *text = s_make_lines(lines, &len);
    if (!text)
        return 1;
    printf("%zu JSON lines, %.1f MB, median of %d rounds\n", lines, len / 1e6, rounds);
    double base = s_median_run("pd_json (hand-written)", s_conv_pd, text, len, lines, rounds, 0);
#ifdef BENCH_HAVE_JANSSON
    s_median_run("jansson 2.14", bench_json_jansson, text, len, lines, rounds, base);
#endif
#ifdef BENCH_HAVE_JSONC
    s_median_run("json-c 0.16", bench_json_jsonc, text, len, lines, rounds, base);
#endif
    free(text);
    return 0;
}
