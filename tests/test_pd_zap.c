/*  Tests of common/pd_zap.c with real CURVE sockets on loopback: a ROUTER
    guarded by the handler and DEALERs with listed, unlisted and re-listed
    keys. Admitted peers carry their key and role on every message; refused
    ones never deliver a message; the list is read again when the directory
    changes, without a restart. */
#include <criterion/criterion.h>

#include "pd_auth.h"
#include "pd_error.h"
#include "pd_log.h"
#include "pd_zap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

static char dir[64], allowed[128];
static void *ctx, *router;
static pd_zap_t *zap;
static pd_keypair_t server;
static char endpoint[256];
static void *dealers[8];
static int ndealers;

static void setup(void)
{
    pd_log_set_level(PD_LOG_ERROR);
    snprintf(dir, sizeof dir, "/tmp/pd-zap-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(allowed, sizeof allowed, "%s/allowed", dir);
    char why[512];
    cr_assert_eq(pd_auth_keygen(dir, "broker", false, &server, why, sizeof why), 0, "%s", why);
    ctx = zmq_ctx_new();
    int err;
    zap = pd_zap_new(ctx, allowed, &err);
    cr_assert_not_null(zap, "%s", pd_strerror(err));
    router = zmq_socket(ctx, ZMQ_ROUTER);
    int zero = 0; /* nothing may hold zmq_ctx_term in teardown */
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero);
    cr_assert_eq(pd_auth_apply_server(router, &server), 0);
    cr_assert_eq(zmq_bind(router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof endpoint;
    zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, endpoint, &len);
}

static void teardown(void)
{
    for (int i = 0; i < ndealers; i++)
        zmq_close(dealers[i]);
    ndealers = 0;
    zmq_close(router);
    pd_zap_destroy(&zap);
    cr_assert_null(zap);
    zmq_ctx_term(ctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(zap, .init = setup, .fini = teardown, .timeout = 60);

/* A DEALER with key pair k (made here when k->pub is empty) that trusts
   server_key. */
static void *s_dealer(pd_keypair_t *k, const char *server_key)
{
    if (!k->pub[0])
        zmq_curve_keypair(k->pub, k->sec);
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    dealers[ndealers++] = d; /* closed by teardown even when an assert fails */
    int zero = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    cr_assert_eq(pd_auth_apply_client(d, k, server_key), 0);
    cr_assert_eq(zmq_connect(d, endpoint), 0);
    return d;
}

/* Sends one frame within 20 s (a DEALER waits for a connection), or fails
   the test with the handler's counters. */
static void s_send_or_say(void *d, const char *what)
{
    int ms = 20000;
    zmq_setsockopt(d, ZMQ_SNDTIMEO, &ms, sizeof ms);
    if (zmq_send(d, what, strlen(what), 0) == (int) strlen(what))
        return;
    pd_zap_stats_t st;
    pd_zap_stats(zap, &st);
    cr_assert_fail("'%s' was not sent within 20 s (%s): the handler admitted %llu handshakes, "
                   "refused %llu, lists %u keys (generation %llu)", what,
                   zmq_strerror(zmq_errno()), (unsigned long long) st.allowed,
                   (unsigned long long) st.refused, st.keys, (unsigned long long) st.generation);
}

/* Receives one [id][body] at the router within ms; returns the role seen
   and copies the key, or returns -1 when nothing came. */
static int s_recv(int ms, char *key)
{
    zmq_pollitem_t it = {router, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, ms) <= 0)
        return -1;
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    cr_assert_geq(zmq_msg_recv(&id, router, 0), 0);
    cr_assert_geq(zmq_msg_recv(&body, router, 0), 0);
    const char *k;
    pd_role_t role = pd_auth_msg_peer(&body, &k, NULL);
    if (key)
        snprintf(key, PD_KEY_TXT, "%s", k ? k : "");
    zmq_msg_close(&id);
    zmq_msg_close(&body);
    return (int) role;
}

Test(zap, a_listed_key_connects_and_carries_its_role)
{
    pd_keypair_t k = {0};
    char why[256];
    /* Listed before it connects: a refused handshake is final in libzmq
       (no reconnection after an authentication failure). */
    zmq_curve_keypair(k.pub, k.sec);
    cr_assert_eq(pd_auth_allow_add(allowed, k.pub, PD_ROLE_WORKER, "w1", why, sizeof why), 0);
    void *d = s_dealer(&k, server.pub);
    s_send_or_say(d, "hi");
    char key[PD_KEY_TXT];
    cr_assert_eq(s_recv(10000, key), PD_ROLE_WORKER);
    cr_assert_str_eq(key, k.pub, "the ZAP user id is the client's public key");
    cr_assert_eq(pd_zap_role(zap, k.pub), PD_ROLE_WORKER);
    pd_zap_stats_t st;
    pd_zap_stats(zap, &st);
    cr_assert_eq(st.allowed, 1);
    cr_assert_eq(st.keys, 1);
    cr_assert_eq(st.workers, 1);
    cr_assert_eq(st.clients, 0);
}

Test(zap, an_unlisted_key_never_delivers_a_message)
{
    pd_keypair_t k = {0};
    void *d = s_dealer(&k, server.pub);
    zmq_send(d, "hi", 2, ZMQ_DONTWAIT);
    cr_assert_eq(s_recv(1500, NULL), -1, "a refused peer delivered a message");
    pd_zap_stats_t st;
    pd_zap_stats(zap, &st);
    cr_assert_geq(st.refused, 1);
    cr_assert_eq(st.allowed, 0);
    cr_assert_eq(pd_zap_role(zap, k.pub), PD_ROLE_NONE);
}

Test(zap, a_client_that_trusts_another_key_never_delivers_a_message)
{
    pd_keypair_t k = {0}, other;
    zmq_curve_keypair(other.pub, other.sec);
    void *d = s_dealer(&k, other.pub);
    char why[256];
    cr_assert_eq(pd_auth_allow_add(allowed, k.pub, PD_ROLE_BOTH, NULL, why, sizeof why), 0);
    zmq_send(d, "hi", 2, ZMQ_DONTWAIT);
    cr_assert_eq(s_recv(1500, NULL), -1);
}

Test(zap, keys_added_later_are_admitted_without_a_restart)
{
    pd_keypair_t a = {0}, b = {0};
    char why[256];
    /* a is listed before it connects: a refused handshake is final in
       libzmq (no reconnection after an authentication failure), so a key
       listed a moment after the connect raced its handshake. */
    zmq_curve_keypair(a.pub, a.sec);
    cr_assert_eq(pd_auth_allow_add(allowed, a.pub, PD_ROLE_CLIENT, "a", why, sizeof why), 0);
    void *da = s_dealer(&a, server.pub);
    s_send_or_say(da, "a");
    cr_assert_eq(s_recv(10000, NULL), PD_ROLE_CLIENT);
    /* b's file appears after the handler started and after a's handshake. */
    zmq_curve_keypair(b.pub, b.sec);
    cr_assert_eq(pd_auth_allow_add(allowed, b.pub, PD_ROLE_BOTH, "b", why, sizeof why), 0, "%s",
                 why);
    void *db = s_dealer(&b, server.pub);
    s_send_or_say(db, "b");
    char key[PD_KEY_TXT];
    cr_assert_eq(s_recv(10000, key), PD_ROLE_BOTH);
    cr_assert_str_eq(key, b.pub);
}

Test(zap, a_revoked_key_loses_its_role_at_once)
{
    pd_keypair_t a;
    char why[256];
    zmq_curve_keypair(a.pub, a.sec);
    cr_assert_eq(pd_auth_allow_add(allowed, a.pub, PD_ROLE_CLIENT, "a", why, sizeof why), 0);
    cr_assert_eq(pd_zap_reload(zap), 1);
    cr_assert_eq(pd_zap_role(zap, a.pub), PD_ROLE_CLIENT);
    pd_zap_stats_t before, after;
    pd_zap_stats(zap, &before);
    cr_assert_eq(pd_auth_allow_remove(allowed, "a", why, sizeof why), 1);
    cr_assert(pd_zap_check(zap), "the change was not noticed");
    cr_assert_not(pd_zap_check(zap), "an unchanged directory is not read again");
    cr_assert_eq(pd_zap_role(zap, a.pub), PD_ROLE_NONE);
    pd_zap_stats(zap, &after);
    cr_assert_gt(after.generation, before.generation);
    cr_assert_eq(after.keys, 0);
}

Test(zap, files_without_a_role_and_duplicate_keys_are_ignored)
{
    pd_keypair_t a, b;
    char why[256];
    zmq_curve_keypair(a.pub, a.sec);
    zmq_curve_keypair(b.pub, b.sec);
    cr_assert_eq(pd_auth_allow_add(allowed, a.pub, PD_ROLE_WORKER, "first", why, sizeof why), 0);
    /* A copy of a's file under another name, with another role. */
    char src[256], dst[256], cmd[600];
    snprintf(src, sizeof src, "%s/first.key", allowed);
    snprintf(dst, sizeof dst, "%s/zz-copy.key", allowed);
    snprintf(cmd, sizeof cmd, "sed 's/role = \"worker\"/role = \"both\"/' '%s' > '%s'", src, dst);
    cr_assert_eq(system(cmd), 0);
    /* b without a role, and a file that is no certificate. */
    /* (Written from C: a Z85 key may hold '%', which a shell printf would read.) */
    snprintf(cmd, sizeof cmd, "%s/norole.key", allowed);
    FILE *f = fopen(cmd, "w");
    cr_assert_not_null(f);
    fprintf(f, "curve\n    public-key = \"%s\"\n", b.pub);
    fclose(f);
    snprintf(cmd, sizeof cmd, "echo garbage > '%s/junk.key'", allowed);
    cr_assert_eq(system(cmd), 0);
    /* Text that does not parse (an unterminated string): refused without
       the leak CZMQ's zconfig_load has on such files (LeakSanitizer). */
    snprintf(cmd, sizeof cmd, "printf 'curve\\n    public-key = \"abc' > '%s/broken.key'",
             allowed);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(pd_zap_reload(zap), 1);
    pd_role_t r = pd_zap_role(zap, a.pub);
    cr_assert(r == PD_ROLE_WORKER || r == PD_ROLE_BOTH);
    cr_assert_eq(pd_zap_role(zap, b.pub), PD_ROLE_NONE);
}

Test(zap, a_second_handler_in_one_context_is_refused)
{
    int err = 0;
    pd_zap_t *again = pd_zap_new(ctx, allowed, &err);
    cr_assert_null(again);
    cr_assert_eq(err, PD_ESYS);
}

Test(zap, a_plain_peer_cannot_talk_to_a_curve_server)
{
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(d, endpoint);
    dealers[ndealers++] = d;
    zmq_send(d, "hi", 2, ZMQ_DONTWAIT);
    cr_assert_eq(s_recv(1500, NULL), -1);
}
