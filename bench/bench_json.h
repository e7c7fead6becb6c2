/*  bench_json: the converters bench_json.c times, one JSON line -> one
    msgpack value appended to out; 0 or -1 (the line did not convert). */
#ifndef BENCH_JSON_H
#define BENCH_JSON_H

#include "pd_codec.h"

typedef int (*convert_fn)(const char *line, size_t len, pd_buf_t *out);

int bench_json_jansson(const char *line, size_t len, pd_buf_t *out); /* bench_json_jansson.c */
int bench_json_jsonc(const char *line, size_t len, pd_buf_t *out);   /* bench_json_jsonc.c */

#endif
