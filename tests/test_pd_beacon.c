/* Unit tests for common/pd_beacon: encoding and strict decoding of beacons.
   (Discovery over a real network is tested between network namespaces by
   tests/netns_cluster.sh: loopback has no broadcast.) */
#include "pd_beacon.h"
#include "pd_error.h"
#include "pd_msg.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

static size_t encode(const char *cluster, uint16_t port, bool key, uint8_t *out)
{
    pd_beacon_t b = {.version = PD_PROTO_VERSION, .port = port, .has_key = key};
    snprintf(b.cluster, sizeof b.cluster, "%s", cluster);
    for (int i = 0; i < PD_BEACON_KEY_BYTES; i++)
        b.key[i] = (uint8_t) (i * 7);
    return pd_beacon_encode(&b, out, PD_BEACON_MAX_BYTES);
}

Test(beacon, round_trips_with_and_without_a_key)
{
    uint8_t buf[PD_BEACON_MAX_BYTES];
    size_t n = encode("physics-lab", 5555, false, buf);
    cr_assert_eq(n, 8 + strlen("physics-lab"));
    cr_assert_eq(memcmp(buf, "PDB\x01\x15\xb3\x00\x0bphysics-lab", n), 0);
    pd_beacon_t b;
    char why[160];
    cr_assert_eq(pd_beacon_decode(buf, n, &b, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(b.cluster, "physics-lab");
    cr_assert_eq(b.port, 5555);
    cr_assert_eq(b.version, PD_PROTO_VERSION);
    cr_assert_not(b.has_key);
    n = encode("x", 65535, true, buf);
    cr_assert_eq(n, 8 + 1 + 32);
    cr_assert_eq(pd_beacon_decode(buf, n, &b, why, sizeof why), 0, "%s", why);
    cr_assert(b.has_key);
    cr_assert_eq(b.key[31], (uint8_t) (31 * 7));
    cr_assert_eq(b.port, 65535);
}

Test(beacon, refuses_to_encode_invalid_beacons)
{
    uint8_t buf[PD_BEACON_MAX_BYTES];
    cr_assert_eq(encode("", 5555, false, buf), 0);
    cr_assert_eq(encode("my lab", 5555, false, buf), 0);
    cr_assert_eq(encode("lab", 0, false, buf), 0);
    pd_beacon_t b = {.version = 1, .port = 1};
    snprintf(b.cluster, sizeof b.cluster, "lab");
    cr_assert_eq(pd_beacon_encode(&b, buf, 5), 0, "fits in a buffer too small");
}

/* Arrays, not pointers: Criterion runs each parameter in a new process. */
typedef struct {
    char bytes[32];
    size_t len;
    int code;
    char why[128];
} bad_t;

ParameterizedTestParameters(beacon, malformed_beacons_are_refused_with_a_reason)
{
    static bad_t cases[] = {
        {"", 0, PD_EPROTO, "not a Playdoh beacon (no 'PDB' magic)"},
        {"PD", 2, PD_EPROTO, "not a Playdoh beacon (no 'PDB' magic)"},
        {"ZRE\x01\x15\xb3\x00\x03lab", 11, PD_EPROTO, "not a Playdoh beacon (no 'PDB' magic)"},
        {"PDB\x02\x15\xb3\x00\x03lab", 11, PD_EVERSION,
         "beacon of protocol version 2; this program speaks version 1"},
        {"PDB\x00", 4, PD_EVERSION, "beacon of protocol version 0; this program speaks version 1"},
        {"PDB\x01\x15\xb3", 6, PD_EPROTO, "beacon truncated before its cluster name"},
        {"PDB\x01\x00\x00\x00\x03lab", 11, PD_EPROTO, "beacon announces port 0"},
        {"PDB\x01\x15\xb3\x02\x03lab", 11, PD_EPROTO, "beacon has unknown flag bits set"},
        {"PDB\x01\x15\xb3\x00\x00", 8, PD_EPROTO, "beacon's cluster name length is not 1 to 63"},
        {"PDB\x01\x15\xb3\x00\x40", 8, PD_EPROTO, "beacon's cluster name length is not 1 to 63"},
        {"PDB\x01\x15\xb3\x00\x05lab", 11, PD_EPROTO,
         "beacon truncated (shorter than its fields say)"},
        {"PDB\x01\x15\xb3\x01\x03lab0123456789", 21, PD_EPROTO,
         "beacon truncated (shorter than its fields say)"},
        {"PDB\x01\x15\xb3\x00\x03labX", 12, PD_EPROTO, "beacon has bytes after its last field"},
        {"PDB\x01\x15\xb3\x00\x03l b", 11, PD_EPROTO,
         "beacon's cluster name has characters other than letters, digits, '-', '_' and '.'"},
        {"PDB\x01\x15\xb3\x00\x03l\0b", 11, PD_EPROTO,
         "beacon's cluster name has characters other than letters, digits, '-', '_' and '.'"},
    };
    return cr_make_param_array(bad_t, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(bad_t *c, beacon, malformed_beacons_are_refused_with_a_reason)
{
    pd_beacon_t b;
    char why[160] = "";
    cr_assert_eq(pd_beacon_decode(c->bytes, c->len, &b, why, sizeof why), c->code,
                 "expected \"%s\", got \"%s\"", c->why, why);
    cr_assert_str_eq(why, c->why);
    cr_assert_str_eq(b.cluster, "", "a refused beacon left a name behind");
}

Test(beacon, every_truncation_of_a_valid_beacon_is_refused)
{
    uint8_t buf[PD_BEACON_MAX_BYTES];
    size_t n = encode("lab-7", 5555, true, buf);
    pd_beacon_t b;
    for (size_t len = 0; len < n; len++)
        cr_assert_neq(pd_beacon_decode(buf, len, &b, NULL, 0), 0, "accepted %zu of %zu bytes",
                      len, n);
    cr_assert_eq(pd_beacon_decode(buf, n, &b, NULL, 0), 0);
}

Test(beacon, cluster_names)
{
    cr_assert(pd_beacon_name_ok("a"));
    cr_assert(pd_beacon_name_ok("Lab_2.physics-dept"));
    cr_assert_not(pd_beacon_name_ok(""));
    cr_assert_not(pd_beacon_name_ok("a/b"));
    char longname[80];
    memset(longname, 'a', 64);
    longname[64] = 0;
    cr_assert_not(pd_beacon_name_ok(longname));
    longname[63] = 0;
    cr_assert(pd_beacon_name_ok(longname));
}

Test(beacon, listeners_refuse_bad_cluster_names_and_ports)
{
    int err = 0;
    cr_assert_null(pd_beacon_listener_new("bad name", 5657, NULL, &err));
    cr_assert_eq(err, PD_EINVAL);
    cr_assert_null(pd_beacon_listener_new("lab", 0, NULL, &err));
    cr_assert_eq(err, PD_EINVAL);
    pd_beacon_t b = {.version = 1, .port = 0};
    cr_assert_null(pd_beacon_pub_new(&b, 5657, 1000, NULL, &err));
    cr_assert_eq(err, PD_EINVAL);
}
