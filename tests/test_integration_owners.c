/*  Integration tests of ownership (docs/security.md, "Who owns a job"): a
    real broker and worker, and clients of two owners. With CurveZMQ the
    owner is the client's key and an admin key may act for anyone; without
    keys (loopback) it is the owner token of a configuration directory.
    Another owner's status, fetch, cancel and release are refused with
    PD_EPERM and a sentence; the owner's own programs, and admins, go on;
    ownership survives a broker restart (the journal keeps it). */
#include "pd_auth.h"
#include "pd_harness.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *MODULE_SRC =
    "#include <playdoh_task.h>\n"
    "#include <time.h>\n"
    "/* x * x after 20 ms */\n"
    "PD_TASK_DOUBLE(slow_square, x) {\n"
    "    struct timespec ts = {0, 20 * 1000000L};\n"
    "    nanosleep(&ts, NULL);\n"
    "    return x * x;\n"
    "}\n";

/* A task of two nodes that return at once. */
static const char *PAIR_SRC =
    "#include <playdoh_task.h>\n"
    "PD_TASK(pair, t) { return pd_out_int(t, pd_node_index(t)); }\n";

enum { BATCH = 40, SLOTS = 2 };

static pd_harness_t h;

static void stop(void) { pd_harness_stop(&h); }

TestSuite(owners, .fini = stop, .timeout = 240);

/* Uploads the module through cl and maps slow_square over 0 .. BATCH-1
   (plus `offset`) into ids. */
static void s_map(pd_client_t *cl, uint64_t *ids, double offset)
{
    char *path = pd_harness_module(&h, "slow.c", MODULE_SRC);
    char mod[PD_HASH_HEX];
    cr_assert_eq(pd_module_upload_file(cl, path, mod), 0, "%s", pd_client_error(cl));
    free(path);
    double x[BATCH];
    for (int i = 0; i < BATCH; i++)
        x[i] = i + offset;
    cr_assert_eq(pd_map_doubles(cl, mod, "slow_square", x, BATCH, NULL, ids), BATCH, "%s",
                 pd_client_error(cl));
}

/* Fetches every job of ids through cl and checks each value. */
static void s_fetch_all(pd_client_t *cl, const uint64_t *ids, double offset)
{
    static pd_result_t res[BATCH];
    cr_assert_eq(pd_fetch(cl, ids, BATCH, 60000, res, NULL, NULL), BATCH, "%s",
                 pd_client_error(cl));
    for (int i = 0; i < BATCH; i++) {
        double y;
        cr_assert_eq(res[i].state, PD_JOB_DONE, "job %d: %s", i, res[i].error);
        cr_assert_eq(pd_result_double(&res[i], &y), 0);
        cr_assert_float_eq(y, (i + offset) * (i + offset), 1e-9);
    }
    pd_results_clear(res, BATCH);
}

/* Every request of `other` over ids is refused with PD_EPERM and a sentence
   that contains `says`. */
static void s_all_refused(pd_client_t *other, const uint64_t *ids, const char *says)
{
    pd_job_state_t st[BATCH];
    pd_result_t res[BATCH];
    int rc = pd_status(other, ids, BATCH, st);
    cr_assert_eq(rc, PD_EPERM, "status: %s: %s", pd_strerror(rc), pd_client_error(other));
    cr_assert(strstr(pd_client_error(other), says), "%s", pd_client_error(other));
    cr_assert(strstr(pd_client_error(other), "only its owner"), "%s", pd_client_error(other));
    long n = pd_fetch(other, ids, BATCH, 0, res, NULL, NULL);
    cr_assert_eq(n, PD_EPERM, "fetch: %ld: %s", n, pd_client_error(other));
    n = pd_fetch(other, ids + BATCH - 1, 1, 2000, res, NULL, NULL); /* a waiting fetch too */
    cr_assert_eq(n, PD_EPERM, "fetch with a wait: %ld: %s", n, pd_client_error(other));
    n = pd_cancel(other, ids, BATCH);
    cr_assert_eq(n, PD_EPERM, "cancel: %ld: %s", n, pd_client_error(other));
    n = pd_release(other, ids, BATCH);
    cr_assert_eq(n, PD_EPERM, "release: %ld: %s", n, pd_client_error(other));
}

/* A client of the plain broker with its own configuration directory: one
   account's owner token. */
static pd_client_t *s_plain_client(const char *account)
{
    char conf[300], why[1024] = "";
    snprintf(conf, sizeof conf, "%s/%s", h.dir, account);
    int err = 0;
    pd_client_opts_t o = {.security = PD_SECURITY_NONE, .config_dir = conf, .why = why,
                          .whycap = sizeof why};
    pd_client_t *cl = pd_client_open(h.endpoint, &o, &err);
    cr_assert_not_null(cl, "%s: %s", pd_strerror(err), why);
    return cl;
}

Test(owners, another_key_cannot_see_fetch_cancel_or_release_a_keys_jobs_and_an_admin_can)
{
    pd_harness_start_secure(&h, NULL);
    pd_harness_add_worker(&h, SLOTS);
    char conf[300], akey[41], why[1024];
    int err = 0;
    pd_harness_identity(&h, "alice", PD_ROLE_CLIENT, conf, sizeof conf, akey);
    pd_harness_identity(&h, "bob", PD_ROLE_CLIENT, conf, sizeof conf, NULL);
    pd_harness_identity(&h, "root", PD_ROLE_ADMIN, conf, sizeof conf, NULL);
    pd_client_t *a = pd_harness_client_as(&h, "alice", &err, why, sizeof why);
    cr_assert_not_null(a, "%s", why);
    pd_client_t *b = pd_harness_client_as(&h, "bob", &err, why, sizeof why);
    cr_assert_not_null(b, "%s", why);
    pd_client_t *root = pd_harness_client_as(&h, "root", &err, why, sizeof why);
    cr_assert_not_null(root, "admin: %s", why);
    pd_harness_wait_slots(&h, a, SLOTS);
    uint64_t ids[BATCH];
    s_map(a, ids, 0);
    s_all_refused(b, ids, "belongs to another key");
    cr_assert(strstr(pd_client_error(b), "--role admin"), "%s", pd_client_error(b));

    /* The cluster view names each owner; alice is told which is hers. */
    pd_cluster_info_t ci;
    cr_assert_eq(pd_cluster_info(a, &ci), 0, "%s", pd_client_error(a));
    cr_assert_eq(ci.nowners, 1);
    cr_assert_str_eq(ci.owners[0].owner, akey);
    cr_assert(ci.owners[0].mine);
    cr_assert_eq(ci.owners[0].queued + ci.owners[0].running + ci.owners[0].final, BATCH);
    pd_cluster_info_clear(&ci);
    cr_assert_eq(pd_cluster_info(b, &ci), 0, "%s", pd_client_error(b));
    cr_assert_eq(ci.nowners, 1);
    cr_assert_not(ci.owners[0].mine);
    pd_cluster_info_clear(&ci);

    /* The admin sees and fetches them; the owner gets every value. */
    pd_job_state_t st[BATCH];
    cr_assert_eq(pd_status(root, ids, BATCH, st), 0, "%s", pd_client_error(root));
    s_fetch_all(root, ids, 0);
    s_fetch_all(a, ids, 0);
    cr_assert_eq(pd_status(a, ids, BATCH, st), 0, "%s", pd_client_error(a));

    /* Bob's own jobs are his: alice cannot cancel them, the admin can. */
    uint64_t bids[BATCH];
    s_map(b, bids, 100);
    long n = pd_cancel(a, bids, BATCH);
    cr_assert_eq(n, PD_EPERM, "%ld: %s", n, pd_client_error(a));
    n = pd_cancel(root, bids, BATCH);
    cr_assert_geq(n, 0, "%s", pd_client_error(root));
    pd_result_t res[BATCH];
    cr_assert_eq(pd_fetch(b, bids, BATCH, 60000, res, NULL, NULL), BATCH, "%s",
                 pd_client_error(b));
    pd_results_clear(res, BATCH);
    /* A synchronous task is its submitter's too. */
    char *tpath = pd_harness_module(&h, "pair.c", PAIR_SRC);
    char tmod[PD_HASH_HEX];
    cr_assert_eq(pd_module_upload_file(a, tpath, tmod), 0, "%s", pd_client_error(a));
    free(tpath);
    pd_graph_t *g = pd_graph_new(2);
    cr_assert_eq(pd_graph_ring(g, "next"), 0);
    uint64_t task;
    cr_assert_eq(pd_task_start(a, tmod, "pair", g, NULL, 0, NULL, &task), 0, "%s",
                 pd_client_error(a));
    pd_graph_destroy(&g);
    pd_task_info_t ti;
    int trc = pd_task_status(b, task, &ti);
    cr_assert_eq(trc, PD_EPERM, "%s: %s", pd_strerror(trc), pd_client_error(b));
    cr_assert(strstr(pd_client_error(b), "task"), "%s", pd_client_error(b));
    cr_assert_eq(pd_task_cancel(b, task), PD_EPERM, "%s", pd_client_error(b));
    cr_assert_eq(pd_task_release(b, task), PD_EPERM, "%s", pd_client_error(b));
    cr_assert_eq(pd_task_status(root, task, &ti), 0, "%s", pd_client_error(root));
    pd_task_result_t tr;
    cr_assert_eq(pd_task_fetch(a, task, 60000, &tr), 0, "%s", pd_client_error(a));
    cr_assert_eq(tr.state, PD_TASK_DONE, "%s", tr.error ? tr.error : "");
    pd_task_result_clear(&tr);
    cr_assert_eq(pd_task_release(a, task), 1, "%s", pd_client_error(a));

    /* Released by their owners: nothing is left over. */
    cr_assert_eq(pd_release(a, ids, BATCH), BATCH, "%s", pd_client_error(a));
    cr_assert_eq(pd_release(b, bids, BATCH), BATCH, "%s", pd_client_error(b));
    cr_assert_eq(pd_cluster_info(root, &ci), 0, "%s", pd_client_error(root));
    cr_assert_eq(ci.nowners, 0);
    pd_cluster_info_clear(&ci);
    pd_client_destroy(&a);
    pd_client_destroy(&b);
    pd_client_destroy(&root);
}

Test(owners, without_keys_an_accounts_owner_token_owns_its_jobs)
{
    pd_harness_start_logged(&h, NULL);
    pd_harness_add_worker(&h, SLOTS);
    pd_client_t *a = s_plain_client("alice");
    pd_client_t *b = s_plain_client("bob");
    pd_harness_wait_slots(&h, a, SLOTS);
    uint64_t ids[BATCH];
    s_map(a, ids, 0);
    s_all_refused(b, ids, "belongs to another owner");
    /* Another program of the same account (the same configuration
       directory) fetches them, as `playdoh-submit results` does. */
    pd_client_t *a2 = s_plain_client("alice");
    s_fetch_all(a2, ids, 0);
    /* The command line's cluster view names the owner, and which is its own. */
    char *out = NULL;
    int rc = pd_harness_run(&out, "PLAYDOH_CONFIG_DIR=%s/alice %s --broker %s cluster --json",
                            h.dir, pd_harness_program("playdoh-submit"), h.endpoint);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "\"owners\":[{\"owner\":\"local:"), "%s", out);
    cr_assert(strstr(out, "\"mine\":true"), "%s", out);
    free(out);
    rc = pd_harness_run(&out, "PLAYDOH_CONFIG_DIR=%s/bob %s --broker %s cluster", h.dir,
                        pd_harness_program("playdoh-submit"), h.endpoint);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "OWNER") && strstr(out, "local:"), "%s", out);
    cr_assert_null(strstr(out, "(you)"), "%s", out);
    free(out);
    cr_assert_eq(pd_release(a2, ids, BATCH), BATCH, "%s", pd_client_error(a2));

    /* Shared data is its uploader's: its digest alone lends nothing. */
    static const char data[] = "alice's table";
    char shr[PD_HASH_HEX], shr_b[PD_HASH_HEX];
    cr_assert_eq(pd_shared_upload(a, data, sizeof data, shr), 0, "%s", pd_client_error(a));
    char *path = pd_harness_module(&h, "slow.c", MODULE_SRC);
    char mod[PD_HASH_HEX];
    cr_assert_eq(pd_module_upload_file(b, path, mod), 0, "%s", pd_client_error(b));
    free(path);
    pd_map_opts_t mo = {.shared = shr};
    double x[2] = {1, 2};
    uint64_t sids[2];
    long n = pd_map_doubles(b, mod, "slow_square", x, 2, &mo, sids);
    cr_assert_eq(n, PD_EPERM, "%ld: %s", n, pd_client_error(b));
    cr_assert(strstr(pd_client_error(b), "upload it yourself"), "%s", pd_client_error(b));
    /* Uploaded by bob too (one copy at the broker), it is his to name. */
    cr_assert_eq(pd_shared_upload(b, data, sizeof data, shr_b), 0, "%s", pd_client_error(b));
    cr_assert_str_eq(shr_b, shr);
    cr_assert_eq(pd_map_doubles(b, mod, "slow_square", x, 2, &mo, sids), 2, "%s",
                 pd_client_error(b));
    cr_assert_eq(pd_map_doubles(a2, mod, "slow_square", x, 2, &mo, sids), 2, "%s",
                 pd_client_error(a2));
    pd_client_destroy(&a);
    pd_client_destroy(&a2);
    pd_client_destroy(&b);
}

Test(owners, ownership_survives_a_broker_restart)
{
    pd_harness_start_logged(&h, NULL);
    pd_harness_add_worker(&h, SLOTS);
    pd_client_t *a = s_plain_client("alice");
    pd_harness_wait_slots(&h, a, SLOTS);
    /* One batch final (its row leaves the journal; its owner must not), one
       still running when the broker dies. */
    uint64_t done[BATCH], open[BATCH];
    s_map(a, done, 0);
    s_fetch_all(a, done, 0);
    s_map(a, open, 1000);
    pd_client_destroy(&a);
    pd_harness_kill_broker(&h, SIGKILL);
    pd_harness_restart_broker(&h, NULL);
    pd_client_t *b = s_plain_client("bob");
    s_all_refused(b, done, "belongs to another owner");
    s_all_refused(b, open, "belongs to another owner");
    a = s_plain_client("alice");
    s_fetch_all(a, done, 0);
    s_fetch_all(a, open, 1000);
    /* A second restart after everything ended: still hers. */
    pd_client_destroy(&a);
    pd_harness_kill_broker(&h, SIGKILL);
    pd_harness_restart_broker(&h, NULL);
    s_all_refused(b, open, "belongs to another owner");
    a = s_plain_client("alice");
    s_fetch_all(a, open, 1000);
    pd_client_destroy(&a);
    pd_client_destroy(&b);
}
