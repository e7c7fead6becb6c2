/*  Tests of worker/pd_policy.c: the three code policies, the list file
    (comments, typos, keys that begin with '#', a missing file), reading it
    again when it changes, and the sentences a refused submitter gets. */
#include <criterion/criterion.h>

#include "pd_error.h"
#include "pd_log.h"
#include "pd_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

static char dir[64], list[128];
static char msg[1024];

static void setup(void)
{
    pd_log_set_level(PD_LOG_ERROR);
    snprintf(dir, sizeof dir, "/tmp/pd-policy-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(list, sizeof list, "%s/list", dir);
    msg[0] = 0;
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(policy, .init = setup, .fini = teardown);

static void s_write(const char *text)
{
    FILE *f = fopen(list, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    usleep(10000); /* the next write gets another modification time */
}

static const char *HASH = "289d43b43b3d76a4c77ea32a4c10dbe280afd6cc6ccda626cbae3f8ec5450a0a";

Test(policy, any_runs_everything)
{
    pd_policy_t *p = pd_policy_new(PD_POLICY_ANY, NULL, "h");
    cr_assert(pd_policy_allows(p, "", HASH, "m.c", msg, sizeof msg));
    cr_assert(pd_policy_stores_shipped(p));
    pd_policy_destroy(&p);
    cr_assert_null(p);
    pd_policy_destroy(&p);
}

Test(policy, clients_list_skips_comments_and_typos)
{
    char a[41], b[41], hashkey[41], sec[41];
    zmq_curve_keypair(a, sec);
    zmq_curve_keypair(b, sec);
    /* A key that begins with '#' is a key, not a comment. */
    do
        zmq_curve_keypair(hashkey, sec);
    while (hashkey[0] == '#');
    hashkey[0] = '#';
    char text[512];
    snprintf(text, sizeof text, "# members\n  %s   alice\nnot-a-key bob\n\n%s carol\n", a,
             hashkey);
    s_write(text);
    pd_policy_t *p = pd_policy_new(PD_POLICY_CLIENTS, list, "node7");
    cr_assert(pd_policy_stores_shipped(p));
    cr_assert(pd_policy_allows(p, a, HASH, "m.c", msg, sizeof msg));
    cr_assert_not(pd_policy_allows(p, b, HASH, "m.c", msg, sizeof msg));
    cr_assert(strstr(msg, "node7") && strstr(msg, b) && strstr(msg, list), "%s", msg);
    cr_assert_not(pd_policy_allows(p, "not-a-key", HASH, "m.c", msg, sizeof msg));
    /* hashkey may not decode as Z85 after the edit; when it does, it is listed. */
    char bin[32];
    if (zmq_z85_decode((uint8_t *) bin, hashkey))
        cr_assert(pd_policy_allows(p, hashkey, HASH, "m.c", msg, sizeof msg));
    pd_policy_destroy(&p);
}

Test(policy, a_missing_list_refuses_everything_until_it_appears)
{
    char a[41], sec[41];
    zmq_curve_keypair(a, sec);
    pd_policy_t *p = pd_policy_new(PD_POLICY_CLIENTS, list, "h");
    cr_assert_not(pd_policy_allows(p, a, HASH, "m.c", msg, sizeof msg));
    char text[64];
    snprintf(text, sizeof text, "%s\n", a);
    s_write(text);
    cr_assert(pd_policy_allows(p, a, HASH, "m.c", msg, sizeof msg));
    unlink(list);
    cr_assert_not(pd_policy_allows(p, a, HASH, "m.c", msg, sizeof msg), "a deleted list lists nobody");
    pd_policy_destroy(&p);
}

Test(policy, installed_runs_listed_hashes_and_stores_nothing_shipped)
{
    char text[256];
    snprintf(text, sizeof text, "%s square.c\nABCDEF not a hash\n", HASH);
    s_write(text);
    pd_policy_t *p = pd_policy_new(PD_POLICY_INSTALLED, list, "h");
    cr_assert_not(pd_policy_stores_shipped(p));
    cr_assert(pd_policy_allows(p, "", HASH, "square.c", msg, sizeof msg));
    static const char *other = "0000000000000000000000000000000000000000000000000000000000000000";
    cr_assert_not(pd_policy_allows(p, "", other, "evil.c", msg, sizeof msg));
    cr_assert(strstr(msg, "evil.c (0000") && strstr(msg, "--install-module"), "%s", msg);
    pd_policy_destroy(&p);
}

Test(policy, list_add_appends_once_and_creates_the_file_private)
{
    char path[160], why[256];
    snprintf(path, sizeof path, "%s/sub/code-modules", dir);
    cr_assert_eq(pd_policy_list_add(path, HASH, "square.c", why, sizeof why), 0, "%s", why);
    cr_assert_eq(pd_policy_list_add(path, HASH, "square.c", why, sizeof why), 0, "%s", why);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test $(grep -c %s '%s') -eq 1 && test $(stat -c %%a '%s') = 600",
             HASH, path, path);
    cr_assert_eq(system(cmd), 0, "the hash is listed once, in a file only the owner reads");
    pd_policy_t *p = pd_policy_new(PD_POLICY_INSTALLED, path, "h");
    cr_assert(pd_policy_allows(p, "", HASH, "square.c", msg, sizeof msg));
    pd_policy_destroy(&p);
}

Test(policy, names_parse)
{
    pd_policy_mode_t m;
    cr_assert_eq(pd_policy_parse("clients", &m), 0);
    cr_assert_eq(m, PD_POLICY_CLIENTS);
    cr_assert_eq(pd_policy_parse("installed", &m), 0);
    cr_assert_eq(m, PD_POLICY_INSTALLED);
    cr_assert_eq(pd_policy_parse("all", &m), PD_EINVAL);
    cr_assert_str_eq(pd_policy_name(PD_POLICY_ANY), "any");
}
