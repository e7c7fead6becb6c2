/*  fuzz_json: libFuzzer harness for pd_json_to_msgpack, the reader of the
    CLI's argument lines (playdoh-submit map ... ARGS.jsonl), with a
    property: whatever it accepts prints back (pd_msgpack_to_json) to JSON
    that reads to the very same msgpack bytes. */
#include "pd_codec.h"
#include "pd_json.h"
#include "pd_log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    /* PD_FUZZ_LOG=debug shows what an input does (triage). */
    pd_log_level_t level = PD_LOG_ERROR;
    if (getenv("PD_FUZZ_LOG"))
        pd_log_parse_level(getenv("PD_FUZZ_LOG"), &level);
    pd_log_set_level(level);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pd_buf_t mp, json, again;
    pd_buf_init(&mp);
    pd_buf_init(&json);
    pd_buf_init(&again);
    char err[256];
    if (pd_json_to_msgpack((const char *) data, size, &mp, err, sizeof err) == 0) {
        if (pd_mp_check(mp.data, mp.len, 64, NULL) != 0) {
            fprintf(stderr, "accepted JSON became malformed msgpack\n");
            abort();
        }
        if (pd_msgpack_to_json(mp.data, mp.len, &json) != 0) {
            fprintf(stderr, "accepted JSON does not print back\n");
            abort();
        }
        if (pd_json_to_msgpack((const char *) json.data, json.len, &again, err, sizeof err) != 0 ||
            again.len != mp.len || memcmp(again.data, mp.data, mp.len) != 0) {
            fprintf(stderr, "round trip differs: printed as %.*s (%s)\n", (int) json.len,
                    (const char *) json.data, err);
            abort();
        }
    } else if (!err[0]) {
        fprintf(stderr, "refused without a sentence\n");
        abort();
    }
    pd_buf_free(&mp);
    pd_buf_free(&json);
    pd_buf_free(&again);
    return 0;
}
