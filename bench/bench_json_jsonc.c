/*  bench_json: one file per JSON library (jansson and json-c declare the
    same names), each converting one JSON line to msgpack through its tree. */
#include "bench_json.h"

#include <stdint.h>
#include <string.h>
#include <json-c/json.h>

static int s_pack_jsonc(msgpack_packer *pk, struct json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        return msgpack_pack_nil(pk);
    case json_type_boolean:
        return json_object_get_boolean(v) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case json_type_int: {
        /* json-c keeps integers above INT64_MAX as uint64 (get_int64 saturates) */
        int64_t i = json_object_get_int64(v);
        return i == INT64_MAX ? msgpack_pack_uint64(pk, json_object_get_uint64(v))
                              : msgpack_pack_int64(pk, i);
    }
    case json_type_double:
        return msgpack_pack_double(pk, json_object_get_double(v));
    case json_type_string:
        return msgpack_pack_str_with_body(pk, json_object_get_string(v),
                                          (size_t) json_object_get_string_len(v));
    case json_type_array: {
        size_t n = json_object_array_length(v);
        int rc = msgpack_pack_array(pk, n);
        for (size_t i = 0; !rc && i < n; i++)
            rc = s_pack_jsonc(pk, json_object_array_get_idx(v, i));
        return rc;
    }
    case json_type_object: {
        int rc = msgpack_pack_map(pk, (size_t) json_object_object_length(v));
        json_object_object_foreach(v, k, e) {
            if (rc)
                break;
            rc = msgpack_pack_str_with_body(pk, k, strlen(k));
            if (!rc)
                rc = s_pack_jsonc(pk, e);
        }
        return rc;
    }
    }
    return -1;
}

int bench_json_jsonc(const char *line, size_t len, pd_buf_t *out)
{
    struct json_tokener *tok = json_tokener_new_ex(PD_MAX_DEPTH);
    if (!tok)
        return -1;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *v = json_tokener_parse_ex(tok, line, (int) len);
    /* A number at the end of the text waits for more: the NUL ends it. */
    if (!v && json_tokener_get_error(tok) == json_tokener_continue)
        v = json_tokener_parse_ex(tok, "", 1);
    int rc = -1;
    if (v && json_tokener_get_error(tok) == json_tokener_success) {
        msgpack_packer pk;
        pd_packer_init(&pk, out);
        rc = s_pack_jsonc(&pk, v) || out->failed ? -1 : 0;
    }
    json_object_put(v);
    json_tokener_free(tok);
    return rc;
}
