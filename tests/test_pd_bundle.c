/* Unit tests for pd_bundle: multi-file modules are packed the same way
   whatever the order of their files, parsed strictly, and compile only
   with whitelisted flags. */
#include "pd_bundle.h"
#include "pd_error.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

static pd_buf_t out, out2;
static char why[600];

static void setup(void)
{
    pd_buf_init(&out);
    pd_buf_init(&out2);
    why[0] = 0;
}
static void teardown(void)
{
    pd_buf_free(&out);
    pd_buf_free(&out2);
}

TestSuite(bundle, .init = setup, .fini = teardown);

#define F(name, text) {name, sizeof name - 1, text, sizeof text - 1}

Test(bundle, packs_the_same_bytes_whatever_the_order_and_parses_back)
{
    pd_bundle_file_t a[] = {F("main.c", "int main;"), F("util.h", "#define X 1"), F("util.c", "u")};
    pd_bundle_file_t b[] = {F("util.c", "u"), F("main.c", "int main;"), F("util.h", "#define X 1")};
    const char *flags[] = {"-lm", "-O3", "-DN=64"};
    cr_assert_eq(pd_bundle_pack(a, 3, flags, 3, &out, why, sizeof why), 0, "%s", why);
    cr_assert_eq(pd_bundle_pack(b, 3, flags, 3, &out2, why, sizeof why), 0, "%s", why);
    cr_assert_eq(out.len, out2.len);
    cr_assert_eq(memcmp(out.data, out2.data, out.len), 0, "same files, same hash");
    pd_bundle_t p;
    cr_assert_eq(pd_bundle_parse(out.data, out.len, &p, why, sizeof why), 0, "%s", why);
    cr_assert_eq(p.nfiles, 3);
    cr_assert_eq(p.files[0].name_len, 6);
    cr_assert_eq(memcmp(p.files[0].name, "main.c", 6), 0);
    cr_assert_eq(memcmp(p.files[1].name, "util.c", 6), 0);
    cr_assert_eq(memcmp(p.files[2].name, "util.h", 6), 0);
    cr_assert_eq(p.files[2].len, 11);
    cr_assert_eq(p.nflags, 3);
    cr_assert_str_eq(p.flags[2], "-DN=64", "flags keep their order");
    pd_bundle_free(&p);
    pd_bundle_free(&p);
}

typedef struct {
    char flag[80];
    bool ok;
    char says[48];
} flag_case_t;

ParameterizedTestParameters(bundle, flags_follow_the_whitelist)
{
    static flag_case_t t[] = {
        {"-lm", true, ""},
        {"-lgsl", true, ""},
        {"-lstdc++", true, ""},
        {"-O3", true, ""},
        {"-Ofast", true, ""},
        {"-std=c11", true, ""},
        {"-std=gnu17", true, ""},
        {"-DN", true, ""},
        {"-DN=64", true, ""},
        {"-DMODE=fast.v2", true, ""},
        {"-UNDEBUG", true, ""},
        {"-march=native", true, ""},
        {"-fopenmp", true, ""},
        {"-L/usr/lib", false, "install the library"},
        {"-L.", false, "-L names a directory"},
        {"-I/usr/include", false, "headers travel in the module"},
        {"-Iinclude", false, "headers travel"},
        {"-o/tmp/x", false, "not allowed"},
        {"-B/tmp", false, "not allowed"},
        {"-specs=/tmp/x", false, "not allowed"},
        {"-fplugin=/tmp/p.so", false, "not allowed"},
        {"@/tmp/args", false, "not allowed"},
        {"-l../x", false, "letters, digits"},
        {"-l", false, "letters, digits"},
        {"-DX=$(rm)", false, "-DNAME=VALUE"},
        {"-D1X", false, "-DNAME"},
        {"-UX=1", false, "-UNAME"},
        {"-std=c++17", false, "not allowed"},
        {"-O4", false, "not allowed"},
        {"", false, "1 to"},
    };
    return cr_make_param_array(flag_case_t, t, sizeof t / sizeof t[0]);
}

ParameterizedTest(flag_case_t *c, bundle, flags_follow_the_whitelist)
{
    char w[600] = "";
    int rc = pd_bundle_check_flag(c->flag, w, sizeof w);
    if (c->ok) {
        cr_assert_eq(rc, 0, "'%s' refused: %s", c->flag, w);
    } else {
        cr_assert_eq(rc, PD_EINVAL, "'%s' accepted", c->flag);
        cr_assert(strstr(w, c->says) != NULL, "'%s': %s", c->flag, w);
    }
}

Test(bundle, names_are_plain_base_names_of_c_files_and_headers)
{
    cr_assert_eq(pd_bundle_check_name("solver.c", 8, why, sizeof why), 0);
    cr_assert_eq(pd_bundle_check_name("my-lib_2+.h", 11, why, sizeof why), 0);
    cr_assert_eq(pd_bundle_check_name("../x.c", 6, why, sizeof why), PD_EINVAL);
    cr_assert_eq(pd_bundle_check_name("dir/x.c", 7, why, sizeof why), PD_EINVAL);
    cr_assert_eq(pd_bundle_check_name(".c", 2, why, sizeof why), PD_EINVAL);
    cr_assert_eq(pd_bundle_check_name("notes.txt", 9, why, sizeof why), PD_EINVAL);
    cr_assert(strstr(why, ".c") != NULL, "%s", why);
    cr_assert_eq(pd_bundle_check_name("a b.c", 5, why, sizeof why), PD_EINVAL);
}

Test(bundle, packing_refuses_duplicates_a_missing_source_and_bad_flags)
{
    pd_bundle_file_t dup[] = {F("a.c", "x"), F("a.c", "y")};
    cr_assert_eq(pd_bundle_pack(dup, 2, NULL, 0, &out, why, sizeof why), PD_EINVAL);
    cr_assert(strstr(why, "two module files are named 'a.c'") != NULL, "%s", why);
    pd_bundle_file_t headers[] = {F("a.h", "x")};
    cr_assert_eq(pd_bundle_pack(headers, 1, NULL, 0, &out, why, sizeof why), PD_EINVAL);
    cr_assert(strstr(why, "at least one C source") != NULL, "%s", why);
    pd_bundle_file_t one[] = {F("a.c", "x")};
    const char *bad[] = {"-lm", "-L/opt"};
    cr_assert_eq(pd_bundle_pack(one, 1, bad, 2, &out, why, sizeof why), PD_EINVAL);
    cr_assert(strstr(why, "-L/opt") != NULL, "%s", why);
    cr_assert_eq(out.len, 0, "nothing packed on failure");
}

/* Packs a hand-made bundle map of files (names given) and returns parse's code. */
static int s_parse_files(const char *const *names, int n, const char *flag)
{
    pd_buf_reset(&out);
    msgpack_packer pk;
    pd_packer_init(&pk, &out);
    msgpack_pack_map(&pk, 2);
    pd_pack_cstr(&pk, "files");
    msgpack_pack_array(&pk, (uint32_t) n);
    for (int i = 0; i < n; i++) {
        msgpack_pack_array(&pk, 2);
        pd_pack_cstr(&pk, names[i]);
        msgpack_pack_bin(&pk, 1);
        msgpack_pack_bin_body(&pk, "x", 1);
    }
    pd_pack_cstr(&pk, "flags");
    msgpack_pack_array(&pk, flag ? 1 : 0);
    if (flag)
        pd_pack_cstr(&pk, flag);
    pd_bundle_t b;
    int rc = pd_bundle_parse(out.data, out.len, &b, why, sizeof why);
    if (rc == 0)
        pd_bundle_free(&b);
    return rc;
}

Test(bundle, parsing_is_strict)
{
    const char *ok[] = {"a.c", "b.h"};
    cr_assert_eq(s_parse_files(ok, 2, "-lm"), 0, "%s", why);
    const char *unsorted[] = {"b.c", "a.c"};
    cr_assert_eq(s_parse_files(unsorted, 2, NULL), PD_EINVAL);
    cr_assert(strstr(why, "sorted") != NULL, "%s", why);
    const char *dup[] = {"a.c", "a.c"};
    cr_assert_eq(s_parse_files(dup, 2, NULL), PD_EINVAL);
    const char *escape[] = {"../../etc.c"};
    cr_assert_eq(s_parse_files(escape, 1, NULL), PD_EINVAL);
    cr_assert_eq(s_parse_files(ok, 2, "-B/tmp"), PD_EINVAL);
    cr_assert_eq(s_parse_files(ok, 0, NULL), PD_EINVAL);
    static const uint8_t garbage[] = {0x93, 1, 2, 3};
    pd_bundle_t b;
    cr_assert_eq(pd_bundle_parse(garbage, sizeof garbage, &b, why, sizeof why), PD_EPROTO);
    static const uint8_t truncated[] = {0x82, 0xa5, 'f', 'i', 'l', 'e', 's', 0x91};
    cr_assert_eq(pd_bundle_parse(truncated, sizeof truncated, &b, why, sizeof why), PD_EPROTO);
}
