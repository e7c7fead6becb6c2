/*  pd_json: strict conversion between JSON text and msgpack values.

    The CLI reads job arguments as JSON, one value per line
    (`playdoh-submit map MODULE.c FN ARGS.jsonl`), and prints results as JSON
    lines; on the wire every value is msgpack. This module converts one value
    each way.

    JSON -> msgpack follows RFC 8259 strictly: integers that fit int64 or
    uint64 become msgpack integers, every other number a float64; strings are
    fully unescaped (\uXXXX surrogate pairs become UTF-8) and must be valid
    UTF-8; objects become maps with str keys (duplicate keys are kept, in
    order); nesting deeper than PD_MAX_DEPTH (32) is refused. Numbers that
    overflow a double, NaN, Infinity, leading zeros, '+', hex, comments and
    trailing commas are errors, each reported with its column.

    msgpack -> JSON prints integers exactly, floats as the shortest text that
    reads back to the same value (always with a '.' or exponent, so a float
    stays a float: 1.0 prints as "1.0"), non-finite floats as null, strings
    escaped (invalid UTF-8 bytes become U+FFFD), bin as a base64 string, and
    map keys that are not strings as their JSON text inside a string (at most
    4 KiB of it: a longer key makes the conversion fail with PD_ETOOBIG).
*/
#ifndef PD_JSON_H
#define PD_JSON_H

#include "pd_codec.h"

#include <stddef.h>

/* Parses one JSON value from text[0..len) (need not be NUL-terminated) and
   appends it as one msgpack value to out. Whitespace around the value is
   allowed; anything else after it is an error.
   Returns 0; PD_EJSON for invalid JSON; PD_ETOOBIG or PD_ENOMEM when out
   cannot grow. On error out keeps its previous length, and when err is not
   NULL a NUL-terminated sentence is written into err (errcap bytes, truncated
   to fit), e.g. "column 7: expected ',' or ']' after an array element, found
   '}'". Columns count characters from 1; text with newlines gets
   "line L, column C". */
int pd_json_to_msgpack(const char *text, size_t len, pd_buf_t *out, char *err, size_t errcap);

/* Appends the JSON text of the one msgpack value mp[0..len) to out, with no
   newline. The value is checked with pd_mp_check() first.
   Returns 0; PD_EPROTO for malformed msgpack (truncated, trailing bytes, ext
   types, nesting deeper than PD_MAX_DEPTH); PD_ETOOBIG or PD_ENOMEM when out
   cannot grow, or a map key that is not a string has over 4 KiB of JSON text. On error out keeps its previous length. */
int pd_msgpack_to_json(const void *mp, size_t len, pd_buf_t *out);

/* True when p[0..len) is well-formed UTF-8 (no overlong forms, surrogates
   or code points above U+10FFFF). */
bool pd_utf8_valid(const void *p, size_t len);

#endif
