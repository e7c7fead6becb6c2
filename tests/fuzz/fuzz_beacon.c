/*  fuzz_beacon: libFuzzer harness for the discovery beacon, the one
    decoder that reads datagrams from anyone on the LAN (pd_beacon_decode),
    with a property: a beacon it accepts encodes back (pd_beacon_encode) to
    the very same bytes. An input is one UDP datagram. */
#include "pd_beacon.h"
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
    pd_beacon_t b;
    char why[256] = "";
    int rc = pd_beacon_decode(data, size, &b, why, sizeof why);
    if (rc != 0) {
        if (!why[0]) {
            fprintf(stderr, "refused without a sentence\n");
            abort();
        }
        return 0;
    }
    if (!pd_beacon_name_ok(b.cluster) || b.port == 0) {
        fprintf(stderr, "accepted a beacon with a bad name or port\n");
        abort();
    }
    uint8_t again[PD_BEACON_MAX_BYTES];
    size_t n = pd_beacon_encode(&b, again, sizeof again);
    if (n != size || memcmp(again, data, size) != 0) {
        fprintf(stderr, "an accepted beacon does not encode back to its bytes\n");
        abort();
    }
    return 0;
}
