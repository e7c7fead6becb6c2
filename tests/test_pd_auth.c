/*  Tests of common/pd_auth.c: key pairs and their file modes, the
    known-brokers trust store, allow-list files, roles, loopback detection,
    and the sentences that tell a user which command to run. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "pd_auth.h"
#include "pd_error.h"
#include "pd_log.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static char why[1024];

static void setup(void)
{
    pd_log_set_level(PD_LOG_ERROR);
    snprintf(dir, sizeof dir, "/tmp/pd-auth-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    why[0] = 0;
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(auth, .init = setup, .fini = teardown);

static mode_t s_mode(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s is missing", path);
    return st.st_mode & 0777;
}

static void s_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

Test(auth, keygen_writes_a_pair_only_the_owner_can_read)
{
    char cfg[128], pub[160], sec[160];
    s_path(cfg, sizeof cfg, "conf/playdoh");
    pd_keypair_t k;
    cr_assert_eq(pd_auth_keygen(cfg, "alice@lab", false, &k, why, sizeof why), 0, "%s", why);
    cr_assert(pd_auth_key_valid(k.pub));
    cr_assert(pd_auth_key_valid(k.sec));
    cr_assert_str_eq(k.name, "alice@lab");
    snprintf(pub, sizeof pub, "%s/id.key", cfg);
    snprintf(sec, sizeof sec, "%s/id.key_secret", cfg);
    cr_assert_eq(s_mode(cfg), 0700);
    cr_assert_eq(s_mode(pub), 0600);
    cr_assert_eq(s_mode(sec), 0600);
    pd_keypair_t back;
    cr_assert_eq(pd_auth_key_load(pub, true, &back, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(back.pub, k.pub);
    cr_assert_str_eq(back.sec, k.sec);
    cr_assert_str_eq(back.name, "alice@lab");
    /* Nothing temporary is left behind. */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 2", cfg);
    cr_assert_eq(system(cmd), 0, "keygen left files behind in %s", cfg);
}

Test(auth, keygen_refuses_to_replace_a_pair_without_force)
{
    pd_keypair_t a, b;
    cr_assert_eq(pd_auth_keygen(dir, NULL, false, &a, why, sizeof why), 0, "%s", why);
    cr_assert_eq(pd_auth_keygen(dir, NULL, false, &b, why, sizeof why), PD_EINVAL);
    cr_assert(strstr(why, "already exists"), "%s", why);
    cr_assert(strstr(why, a.pub), "the sentence names the existing key: %s", why);
    cr_assert(strstr(why, "--force"), "%s", why);
    cr_assert_eq(pd_auth_keygen(dir, NULL, true, &b, why, sizeof why), 0, "%s", why);
    cr_assert_str_neq(a.pub, b.pub);
    cr_assert(strchr(b.name, '@'), "the default name is user@host, not '%s'", b.name);
}

Test(auth, a_secret_readable_by_others_is_refused_with_the_fix)
{
    pd_keypair_t k;
    cr_assert_eq(pd_auth_keygen(dir, "x", false, &k, why, sizeof why), 0, "%s", why);
    char pub[160], sec[160];
    s_path(pub, sizeof pub, "id.key");
    s_path(sec, sizeof sec, "id.key_secret");
    cr_assert_eq(chmod(sec, 0644), 0);
    pd_keypair_t back;
    cr_assert_eq(pd_auth_key_load(pub, true, &back, why, sizeof why), PD_EAUTH);
    cr_assert(strstr(why, "readable by other users"), "%s", why);
    cr_assert(strstr(why, "chmod 600"), "%s", why);
}

Test(auth, a_missing_key_names_the_command_that_makes_one)
{
    char pub[160];
    s_path(pub, sizeof pub, "id.key");
    pd_keypair_t k;
    cr_assert_eq(pd_auth_key_load(pub, true, &k, why, sizeof why), PD_ENOKEY);
    cr_assert(strstr(why, "playdoh-keygen"), "%s", why);
}

Test(auth, a_public_certificate_is_not_a_key_pair)
{
    char allowed[160], file[200];
    s_path(allowed, sizeof allowed, "allowed");
    pd_keypair_t k;
    cr_assert_eq(pd_auth_keygen(dir, "x", false, &k, why, sizeof why), 0);
    cr_assert_eq(pd_auth_allow_add(allowed, k.pub, PD_ROLE_CLIENT, "bob", why, sizeof why), 0,
                 "%s", why);
    snprintf(file, sizeof file, "%s/bob.key", allowed);
    pd_keypair_t back;
    cr_assert_eq(pd_auth_key_load(file, true, &back, why, sizeof why), PD_ENOKEY);
    cr_assert(strstr(why, "public key"), "%s", why);
    cr_assert_eq(pd_auth_key_load(file, false, &back, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(back.pub, k.pub);
    cr_assert_str_eq(back.sec, "");
}

Test(auth, keys_are_read_from_text_or_from_a_certificate_file)
{
    pd_keypair_t k;
    cr_assert_eq(pd_auth_keygen(dir, "carol@pc", false, &k, why, sizeof why), 0);
    char pub[PD_KEY_TXT], name[64], file[160];
    cr_assert_eq(pd_auth_key_from_arg(k.pub, pub, name, sizeof name, why, sizeof why), 0);
    cr_assert_str_eq(pub, k.pub);
    s_path(file, sizeof file, "id.key");
    cr_assert_eq(pd_auth_key_from_arg(file, pub, name, sizeof name, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(pub, k.pub);
    cr_assert_str_eq(name, "carol@pc");
    cr_assert_eq(pd_auth_key_from_arg("not-a-key", pub, name, sizeof name, why, sizeof why),
                 PD_EINVAL);
    cr_assert(strstr(why, "neither a public key"), "%s", why);
    /* A text file as `playdoh-keygen show > broker.pub` writes it (what
       `playdoh-submit slurm --broker-key FILE` hands to its pilots). */
    s_path(file, sizeof file, "broker.pub");
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s carol@pc\n", k.pub);
    fclose(f);
    memset(pub, 0, sizeof pub);
    cr_assert_eq(pd_auth_key_from_arg(file, pub, NULL, 0, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(pub, k.pub);
    /* A file of something else says so. */
    f = fopen(file, "w");
    cr_assert_not_null(f);
    fprintf(f, "hello\n");
    fclose(f);
    cr_assert_eq(pd_auth_key_from_arg(file, pub, NULL, 0, why, sizeof why), PD_EINVAL);
    cr_assert(strstr(why, "holds no public key"), "%s", why);
}

Test(auth, z85_keys_are_exactly_forty_decodable_characters)
{
    cr_assert(pd_auth_key_valid("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"));
    cr_assert_not(pd_auth_key_valid("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf"));
    cr_assert_not(pd_auth_key_valid("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7x"));
    cr_assert_not(pd_auth_key_valid("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]y\"7"));
    cr_assert_not(pd_auth_key_valid(NULL));
}

/* ---- known_brokers ---------------------------------------------------- */

Test(auth, an_untrusted_broker_gets_the_command_to_trust_it)
{
    char key[PD_KEY_TXT];
    cr_assert_eq(pd_auth_trust_find(dir, "tcp://lab:5555", key, why, sizeof why), PD_ENOTRUSTED);
    cr_assert(strstr(why, "playdoh-keygen trust tcp://lab:5555 KEY"), "%s", why);
    cr_assert(strstr(why, "playdoh-keygen show"), "%s", why);
    char hint[512];
    pd_auth_trust_hint("tcp://10.0.0.5:5555", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", hint,
                       sizeof hint);
    /* Z85 has shell characters (<, >, &, ...) but no quote: the key is quoted. */
    cr_assert(strstr(hint, "`playdoh-keygen trust tcp://10.0.0.5:5555 "
                           "'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'`"), "%s", hint);
}

Test(auth, trusted_brokers_are_found_by_endpoint_then_by_star)
{
    char a[PD_KEY_TXT], b[PD_KEY_TXT], sec[PD_KEY_TXT], key[PD_KEY_TXT];
    zmq_curve_keypair(a, sec);
    zmq_curve_keypair(b, sec);
    cr_assert_eq(pd_auth_trust_add(dir, "*", b, "any", why, sizeof why), 0, "%s", why);
    cr_assert_eq(pd_auth_trust_add(dir, "tcp://lab:5555", a, "lab", why, sizeof why), 0, "%s",
                 why);
    cr_assert_eq(pd_auth_trust_find(dir, "tcp://lab:5555", key, why, sizeof why), 0);
    cr_assert_str_eq(key, a);
    cr_assert_eq(pd_auth_trust_find(dir, "tcp://other:5555", key, why, sizeof why), 0);
    cr_assert_str_eq(key, b, "the * line applies to any other endpoint");
    cr_assert(pd_auth_trust_has(dir, NULL, a));
    cr_assert(pd_auth_trust_has(dir, "tcp://lab:5555", a));
    cr_assert_not(pd_auth_trust_has(dir, "tcp://other:5555", a), "a is trusted at lab only");
    cr_assert(pd_auth_trust_has(dir, "tcp://other:5555", b));
    char path[160];
    s_path(path, sizeof path, "known_brokers");
    cr_assert_eq(s_mode(path), 0600);
}

Test(auth, trusting_an_endpoint_again_replaces_its_key)
{
    char a[PD_KEY_TXT], b[PD_KEY_TXT], sec[PD_KEY_TXT], key[PD_KEY_TXT];
    zmq_curve_keypair(a, sec);
    zmq_curve_keypair(b, sec);
    cr_assert_eq(pd_auth_trust_add(dir, "tcp://lab:5555", a, NULL, why, sizeof why), 0);
    cr_assert_eq(pd_auth_trust_add(dir, "tcp://lab:5555", b, NULL, why, sizeof why), 0);
    cr_assert_eq(pd_auth_trust_find(dir, "tcp://lab:5555", key, why, sizeof why), 0);
    cr_assert_str_eq(key, b);
    cr_assert_not(pd_auth_trust_has(dir, NULL, a), "the old key is gone");
    cr_assert_eq(pd_auth_trust_remove(dir, b, why, sizeof why), 1);
    cr_assert_eq(pd_auth_trust_find(dir, "tcp://lab:5555", key, why, sizeof why), PD_ENOTRUSTED);
}

Test(auth, bad_keys_and_endpoints_are_not_trusted)
{
    char a[PD_KEY_TXT], sec[PD_KEY_TXT];
    zmq_curve_keypair(a, sec);
    cr_assert_eq(pd_auth_trust_add(dir, "tcp://lab:5555", "short", NULL, why, sizeof why),
                 PD_EINVAL);
    cr_assert(strstr(why, "not a public key"), "%s", why);
    cr_assert_eq(pd_auth_trust_add(dir, "lab 5555", a, NULL, why, sizeof why), PD_EINVAL);
    cr_assert(strstr(why, "not an endpoint"), "%s", why);
    cr_assert_not(pd_auth_trust_has(dir, NULL, "short"));
}

Test(auth, comments_and_junk_lines_in_known_brokers_are_skipped)
{
    char a[PD_KEY_TXT], sec[PD_KEY_TXT], key[PD_KEY_TXT], path[160];
    zmq_curve_keypair(a, sec);
    s_path(path, sizeof path, "known_brokers");
    FILE *f = fopen(path, "w");
    fprintf(f, "# a comment tcp://lab:5555 %s\n\ntcp://lab:5555\ntcp://lab:5555 nonsense\n"
               "   tcp://lab:5555   %s   the lab broker  \n", a, a);
    fclose(f);
    cr_assert_eq(pd_auth_trust_find(dir, "tcp://lab:5555", key, why, sizeof why), 0);
    cr_assert_str_eq(key, a);
}

/* ---- allow-list -------------------------------------------------------- */

static int s_count_files(const char *d)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "exit $(ls -A '%s' | wc -l)", d);
    return WEXITSTATUS(system(cmd));
}

Test(auth, admitting_a_key_writes_a_certificate_with_its_role)
{
    char allowed[160], file[200], a[PD_KEY_TXT], sec[PD_KEY_TXT];
    s_path(allowed, sizeof allowed, "allowed");
    zmq_curve_keypair(a, sec);
    cr_assert_eq(pd_auth_allow_add(allowed, a, PD_ROLE_WORKER, "node 7/a", why, sizeof why), 0,
                 "%s", why);
    snprintf(file, sizeof file, "%s/node_7_a.key", allowed);
    cr_assert_eq(s_mode(file), 0600);
    zcert_t *cert = zcert_load(file);
    cr_assert_not_null(cert);
    cr_assert_str_eq(zcert_public_txt(cert), a);
    cr_assert_str_eq(zcert_meta(cert, "role"), "worker");
    cr_assert_str_eq(zcert_meta(cert, "name"), "node 7/a");
    zcert_destroy(&cert);
    /* The same key again, as both: one file, the new role. */
    cr_assert_eq(pd_auth_allow_add(allowed, a, PD_ROLE_BOTH, "node7", why, sizeof why), 0, "%s",
                 why);
    cr_assert_eq(s_count_files(allowed), 1);
    snprintf(file, sizeof file, "%s/node7.key", allowed);
    cert = zcert_load(file);
    cr_assert_not_null(cert);
    cr_assert_str_eq(zcert_meta(cert, "role"), "both");
    zcert_destroy(&cert);
}

Test(auth, a_name_taken_by_another_key_is_refused)
{
    char allowed[160], a[PD_KEY_TXT], b[PD_KEY_TXT], sec[PD_KEY_TXT];
    s_path(allowed, sizeof allowed, "allowed");
    zmq_curve_keypair(a, sec);
    zmq_curve_keypair(b, sec);
    cr_assert_eq(pd_auth_allow_add(allowed, a, PD_ROLE_CLIENT, "alice", why, sizeof why), 0);
    cr_assert_eq(pd_auth_allow_add(allowed, b, PD_ROLE_CLIENT, "alice", why, sizeof why),
                 PD_EINVAL);
    cr_assert(strstr(why, "another key"), "%s", why);
    cr_assert_eq(pd_auth_allow_add(allowed, b, PD_ROLE_NONE, "bob", why, sizeof why), PD_EINVAL);
}

Test(auth, revoking_by_name_or_key_removes_the_file)
{
    char allowed[160], a[PD_KEY_TXT], b[PD_KEY_TXT], sec[PD_KEY_TXT];
    s_path(allowed, sizeof allowed, "allowed");
    zmq_curve_keypair(a, sec);
    zmq_curve_keypair(b, sec);
    cr_assert_eq(pd_auth_allow_add(allowed, a, PD_ROLE_CLIENT, "alice", why, sizeof why), 0);
    cr_assert_eq(pd_auth_allow_add(allowed, b, PD_ROLE_WORKER, NULL, why, sizeof why), 0);
    cr_assert_eq(s_count_files(allowed), 2);
    cr_assert_eq(pd_auth_allow_remove(allowed, "alice", why, sizeof why), 1);
    cr_assert_eq(pd_auth_allow_remove(allowed, b, why, sizeof why), 1);
    cr_assert_eq(pd_auth_allow_remove(allowed, b, why, sizeof why), 0);
    cr_assert_eq(s_count_files(allowed), 0);
}

/* ---- roles and endpoints ---------------------------------------------- */

Test(auth, roles_allow_what_they_name)
{
    cr_assert(pd_role_allows(PD_ROLE_WORKER, PD_ROLE_WORKER));
    cr_assert_not(pd_role_allows(PD_ROLE_WORKER, PD_ROLE_CLIENT));
    cr_assert(pd_role_allows(PD_ROLE_CLIENT, PD_ROLE_CLIENT));
    cr_assert_not(pd_role_allows(PD_ROLE_CLIENT, PD_ROLE_WORKER));
    cr_assert(pd_role_allows(PD_ROLE_BOTH, PD_ROLE_WORKER));
    cr_assert(pd_role_allows(PD_ROLE_BOTH, PD_ROLE_CLIENT));
    cr_assert_not(pd_role_allows(PD_ROLE_NONE, PD_ROLE_CLIENT));
    cr_assert_not(pd_role_allows(PD_ROLE_BOTH, PD_ROLE_NONE));
    pd_role_t r;
    cr_assert_eq(pd_role_parse("both", &r), 0);
    cr_assert_eq(r, PD_ROLE_BOTH);
    cr_assert_eq(pd_role_parse("none", &r), PD_EINVAL);
    cr_assert_eq(pd_role_parse("root", &r), PD_EINVAL);
    cr_assert_str_eq(pd_role_name(PD_ROLE_WORKER), "worker");
}

Test(auth, the_admin_role_is_a_client_that_may_act_for_others)
{
    pd_role_t r;
    cr_assert_eq(pd_role_parse("admin", &r), 0);
    cr_assert_eq(r, PD_ROLE_ADMIN);
    cr_assert_str_eq(pd_role_name(r), "admin");
    cr_assert(pd_role_allows(r, PD_ROLE_CLIENT));
    cr_assert(pd_role_allows(r, PD_ROLE_ADMIN));
    cr_assert_not(pd_role_allows(r, PD_ROLE_WORKER));
    cr_assert_not(pd_role_allows(PD_ROLE_BOTH, PD_ROLE_ADMIN));
    cr_assert_not(pd_role_allows(PD_ROLE_CLIENT, PD_ROLE_ADMIN));
}

Test(auth, an_owner_token_is_made_once_kept_private_and_names_one_owner)
{
    char dir[] = "/tmp/pd-owner-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char sub[64], path[96], why[1024];
    snprintf(sub, sizeof sub, "%s/cfg", dir);
    snprintf(path, sizeof path, "%s/owner.token", sub);
    uint8_t a[PD_OWNER_TOKEN_LEN], b[PD_OWNER_TOKEN_LEN];
    cr_assert_eq(pd_auth_owner_token(sub, a, why, sizeof why), 0, "%s", why);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(pd_auth_owner_token(sub, b, why, sizeof why), 0, "%s", why);
    cr_assert_eq(memcmp(a, b, sizeof a), 0, "the second call reads the same token");
    char oa[PD_OWNER_TXT], ob[PD_OWNER_TXT];
    pd_auth_owner_of_token(a, sizeof a, oa);
    cr_assert_eq(strlen(oa), 38);
    cr_assert(pd_auth_owner_valid(oa));
    cr_assert_not(pd_auth_owner_is_key(oa));
    b[0] ^= 1;
    pd_auth_owner_of_token(b, sizeof b, ob);
    cr_assert_str_neq(oa, ob);
    cr_assert_not(pd_auth_owner_valid("local:xyz"));
    cr_assert_not(pd_auth_owner_valid(""));
    /* Readable by others: refused like a secret key, saying what to run. */
    cr_assert_eq(chmod(path, 0644), 0);
    cr_assert_eq(pd_auth_owner_token(sub, b, why, sizeof why), PD_EAUTH);
    cr_assert(strstr(why, "chmod 600"), "%s", why);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
}

typedef struct {
    char ep[48]; /* inline: Criterion copies parameters into the test process */
    bool loopback;
} s_ep_case_t;

ParameterizedTestParameters(auth, loopback_endpoints_are_told_from_network_ones)
{
    static s_ep_case_t cases[] = {
        {"tcp://127.0.0.1:5555", true},   {"tcp://127.1.2.3:*", true},
        {"tcp://localhost:5555", true},   {"tcp://[::1]:5555", true},
        {"tcp://lo:5555", true},          {"ipc:///tmp/playdoh.sock", true},
        {"inproc://broker", true},        {"tcp://*:5555", false},
        {"tcp://0.0.0.0:5555", false},    {"tcp://10.0.0.5:5555", false},
        {"tcp://lab-server:5555", false}, {"tcp://eth0:5555", false},
        {"tcp://127.0.0.1.evil:5555", false}, {"tcp://127.0.0.1;10.0.0.1:5555", false},
        {"tcp://[::]:5555", false},       {"udp://127.0.0.1:5555", false},
        {"tcp://localhost.example.org:1", false},
    };
    return cr_make_param_array(s_ep_case_t, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(s_ep_case_t *c, auth, loopback_endpoints_are_told_from_network_ones)
{
    cr_assert_eq(pd_auth_endpoint_is_loopback(c->ep), c->loopback, "%s", c->ep);
    cr_assert_eq(pd_auth_resolve(PD_SEC_AUTO, c->ep), c->loopback ? PD_SEC_NONE : PD_SEC_CURVE);
    cr_assert_eq(pd_auth_resolve(PD_SEC_CURVE, c->ep), PD_SEC_CURVE);
    cr_assert_eq(pd_auth_resolve(PD_SEC_NONE, c->ep), PD_SEC_NONE);
}

Test(auth, security_modes_parse)
{
    pd_sec_mode_t m;
    cr_assert_eq(pd_auth_mode_parse("secure", &m), 0);
    cr_assert_eq(m, PD_SEC_CURVE);
    cr_assert_eq(pd_auth_mode_parse("insecure", &m), 0);
    cr_assert_eq(m, PD_SEC_NONE);
    cr_assert_eq(pd_auth_mode_parse("auto", &m), 0);
    cr_assert_eq(m, PD_SEC_AUTO);
    cr_assert_eq(pd_auth_mode_parse("maybe", &m), PD_EINVAL);
}

Test(auth, the_config_dir_follows_the_environment)
{
    setenv("PLAYDOH_CONFIG_DIR", "/x/y", 1);
    char *d = pd_auth_config_dir();
    cr_assert_str_eq(d, "/x/y");
    free(d);
    unsetenv("PLAYDOH_CONFIG_DIR");
    setenv("XDG_CONFIG_HOME", "/cfg", 1);
    d = pd_auth_config_dir();
    cr_assert_str_eq(d, "/cfg/playdoh");
    free(d);
    unsetenv("XDG_CONFIG_HOME");
    setenv("HOME", "/home/u", 1);
    d = pd_auth_config_dir();
    cr_assert_str_eq(d, "/home/u/.config/playdoh");
    free(d);
    unsetenv("HOME");
    cr_assert_null(pd_auth_config_dir());
}
