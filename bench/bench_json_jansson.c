/*  bench_json: one file per JSON library (jansson and json-c declare the
    same names), each converting one JSON line to msgpack through its tree. */
#include "bench_json.h"

#include <string.h>
#include <jansson.h>

static int s_pack_jansson(msgpack_packer *pk, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
        return msgpack_pack_nil(pk);
    case JSON_TRUE:
        return msgpack_pack_true(pk);
    case JSON_FALSE:
        return msgpack_pack_false(pk);
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, json_integer_value(v));
    case JSON_REAL:
        return msgpack_pack_double(pk, json_real_value(v));
    case JSON_STRING: {
        size_t n = json_string_length(v);
        return msgpack_pack_str_with_body(pk, json_string_value(v), n);
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        int rc = msgpack_pack_array(pk, n);
        for (size_t i = 0; !rc && i < n; i++)
            rc = s_pack_jansson(pk, json_array_get(v, i));
        return rc;
    }
    case JSON_OBJECT: {
        int rc = msgpack_pack_map(pk, json_object_size(v));
        const char *k;
        json_t *e;
        json_object_foreach((json_t *) v, k, e) {
            if (rc)
                break;
            rc = msgpack_pack_str_with_body(pk, k, strlen(k));
            if (!rc)
                rc = s_pack_jansson(pk, e);
        }
        return rc;
    }
    }
    return -1;
}

int bench_json_jansson(const char *line, size_t len, pd_buf_t *out)
{
    json_error_t jerr;
    json_t *v = json_loadb(line, len, JSON_DECODE_ANY, &jerr);
    if (!v)
        return -1;
    msgpack_packer pk;
    pd_packer_init(&pk, out);
    int rc = s_pack_jansson(&pk, v);
    json_decref(v);
    return rc || out->failed ? -1 : 0;
}
