/*  Unit tests for worker/pd_nodeproc: the worker's handle of a node process.

    A node process is this test executable exec'ed through /proc/self/exe
    with "--node ...", which main() below hands to pd_nodeproc_main() as
    playdoh-worker's main() does; programs that cannot start stand in for a
    broken installation. The rendezvous itself is tested end to end by
    test_integration_sync.c.
*/
#include "pd_codec.h"
#include "pd_error.h"
#include "pd_msg.h"
#include "pd_nodeproc.h"
#include "pd_slot.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_dir[64];
static int s_results;      /* results reported */
static bool s_ok;          /* the last one's ok */
static char s_code[32];    /* its code, when failed */
static char s_msg[1024];   /* its message, when failed */
static int s_bound;        /* bound reports */

static void on_bound(void *user, pd_nodeproc_t *nd, const char *ep, const char *key)
{
    (void) user;
    (void) nd;
    (void) ep;
    (void) key;
    s_bound++;
}

static void on_result(void *user, pd_nodeproc_t *nd, bool ok, const uint8_t *val, size_t len,
                      uint64_t us)
{
    (void) user;
    (void) nd;
    (void) us;
    s_results++;
    s_ok = ok;
    s_code[0] = s_msg[0] = 0;
    if (ok)
        return;
    pd_rd_t r;
    uint32_t n;
    pd_rd_init(&r, val, len);
    cr_assert_eq(pd_rd_map(&r, &n), 0);
    for (uint32_t i = 0; i < n; i++) {
        if (pd_rd_key_is(&r, "code"))
            cr_assert_eq(pd_rd_strcpy(&r, s_code, sizeof s_code), 0);
        else if (pd_rd_key_is(&r, "msg"))
            cr_assert_eq(pd_rd_strcpy(&r, s_msg, sizeof s_msg), 0);
        else
            cr_assert_fail("unexpected key in the error map");
    }
}

static void setup(void)
{
    unsetenv("BXFI_MAP"); /* see test_pd_slot.c */
    signal(SIGPIPE, SIG_IGN); /* as playdoh-worker: a dead child shows up as EPIPE */
    snprintf(s_dir, sizeof s_dir, "/tmp/pd-nodeproc-XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    s_results = s_bound = 0;
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(unit, .init = setup, .fini = teardown, .timeout = 60);

/* Starts a node process running exe with a `start` that lacks every field
   but the task id, and reads it until its result (or 20 s). */
static void run_node(const char *exe)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_msg_begin(&pk, "start", 1);
    pd_pack_kv_uint(&pk, "task", 7);
    cr_assert_not(b.failed);
    pd_nodeproc_config_t cfg = {.exe = exe, .cache_dir = s_dir, .host = "testhost", .task = 7,
                                .node = 1, .sink = {.bound = on_bound, .result = on_result}};
    int err = 0;
    pd_nodeproc_t *nd = pd_nodeproc_new(&cfg, b.data, b.len, &err);
    pd_buf_free(&b);
    cr_assert_not_null(nd, "fork works: a failed exec shows in the child (%d)", err);
    int64_t end = pd_slot_now_ms() + 20000;
    while (!pd_nodeproc_ended(nd) && pd_slot_now_ms() < end) {
        struct pollfd p = {.fd = pd_nodeproc_fd(nd), .events = POLLIN};
        if (poll(&p, 1, 100) > 0)
            pd_nodeproc_on_readable(nd);
    }
    cr_assert(pd_nodeproc_ended(nd), "no result within 20 s");
    pd_nodeproc_destroy(&nd);
    pd_nodeproc_destroy(&nd);
    cr_assert_eq(s_results, 1);
    cr_expect_eq(s_bound, 0);
}

Test(unit, a_missing_program_is_a_start_failure_not_a_crash)
{
    run_node("/nonexistent/playdoh-worker");
    cr_expect_not(s_ok);
    cr_expect_str_eq(s_code, "PD_ESYS");
    cr_expect(strstr(s_msg, "the node process could not start: /nonexistent/playdoh-worker "
                            "could not be executed: the program is missing or not executable")
              != NULL, "%s", s_msg);
    cr_expect(strstr(s_msg, "`ldd /nonexistent/playdoh-worker`") != NULL, "%s", s_msg);
}

Test(unit, a_program_that_exits_at_once_is_a_start_failure)
{
    run_node("/bin/false");
    cr_expect_not(s_ok);
    cr_expect_str_eq(s_code, "PD_ESYS");
    cr_expect_str_eq(s_msg, "the node process could not start: /bin/false exited with status 1 "
                            "before it was ready (any message of its own is above)");
}

Test(unit, a_node_process_that_started_reports_its_own_failures)
{
    /* The real node program says `up`, then refuses the malformed start:
       the failure is the node's own, not a start failure. */
    run_node("/proc/self/exe");
    cr_expect_not(s_ok);
    cr_expect_str_eq(s_code, "PD_EPROTO");
    cr_expect(strstr(s_msg, "the worker sent a malformed start") != NULL, "%s", s_msg);
}

int main(int argc, char **argv)
{
    if (pd_nodeproc_is_child(argc, argv))
        return pd_nodeproc_main(argc, argv);
    struct criterion_test_set *tests = criterion_initialize();
    int rc = 0;
    if (criterion_handle_args(argc, argv, true))
        rc = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return rc;
}
