/*  Integration tests of the key tools as a user runs them: playdoh-keygen's
    commands and exit statuses, playdoh-worker --install-module, the secure
    embedded cluster (pd_local_start_opts), and playdoh-submit --secure
    against a CurveZMQ broker with the keys it made. */
#include "pd_auth.h"
#include "pd_harness.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static char keygen[1024];

/* Runs a shell command; returns its exit status and its stdout, then its
   stderr (malloc'ed), in *out when out is not NULL. */
static int run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(char **out, const char *fmt, ...)
{
    char *cmd;
    va_list ap;
    va_start(ap, fmt);
    cr_assert_neq(vasprintf(&cmd, fmt, ap), -1);
    va_end(ap);
    int rc = pd_harness_run(out, "(%s) 2>%s/stderr; rc=$?; cat %s/stderr; exit $rc", cmd, dir,
                            dir);
    free(cmd);
    return rc;
}

static void setup(void)
{
    setenv("PLAYDOH_CONFIG", "/dev/null", 1);
    snprintf(dir, sizeof dir, "/tmp/pd-keys-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(keygen, sizeof keygen, "%s", pd_harness_program("playdoh-keygen"));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(keys, .init = setup, .fini = teardown, .timeout = 120);

/* The last line of text, without its newline, into line (cap bytes). */
static void s_first_line(const char *text, char *line, size_t cap)
{
    size_t n = strcspn(text, "\n");
    snprintf(line, cap, "%.*s", (int) n, text);
}

Test(keys, keygen_makes_shows_and_refuses_to_replace_a_pair)
{
    char *out;
    cr_assert_eq(run(&out, "%s --config-dir %s/a --name alice", keygen, dir), 0, "%s", out);
    char key[128];
    s_first_line(out, key, sizeof key);
    cr_assert(pd_auth_key_valid(key), "the first line is the public key: '%s'", key);
    cr_assert(strstr(out, "playdoh-keygen allow"), "the output says what to do next: %s", out);
    free(out);
    cr_assert_eq(run(&out, "%s --config-dir %s/a show", keygen, dir), 0);
    cr_assert(strncmp(out, key, 40) == 0, "show prints the same key: %s", out);
    free(out);
    cr_assert_eq(run(&out, "%s --config-dir %s/a new", keygen, dir), 1);
    cr_assert(strstr(out, "already exists") && strstr(out, "--force"), "%s", out);
    free(out);
    char path[200];
    snprintf(path, sizeof path, "%s/a/id.key_secret", dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
}

Test(keys, keygen_admits_revokes_trusts_and_lists)
{
    char *out, key[128];
    cr_assert_eq(run(&out, "%s --config-dir %s/w --name node1", keygen, dir), 0);
    s_first_line(out, key, sizeof key);
    free(out);
    /* allow needs a role; a bad one is a usage error. */
    cr_assert_eq(run(NULL, "%s --config-dir %s/b allow %s/w/id.key", keygen, dir, dir), 2);
    cr_assert_eq(run(NULL, "%s --config-dir %s/b allow %s/w/id.key --role boss", keygen, dir, dir),
                 2);
    cr_assert_eq(run(&out, "%s --config-dir %s/b allow %s/w/id.key --role worker", keygen, dir,
                     dir), 0, "%s", out);
    cr_assert(strstr(out, "admitted as worker"), "%s", out);
    free(out);
    cr_assert_eq(run(&out, "%s --config-dir %s/b list", keygen, dir), 0);
    cr_assert(strstr(out, key) && strstr(out, "worker") && strstr(out, "node1"), "%s", out);
    free(out);
    cr_assert_eq(run(&out, "%s --config-dir %s/b revoke node1", keygen, dir), 0, "%s", out);
    free(out);
    cr_assert_eq(run(&out, "%s --config-dir %s/b revoke node1", keygen, dir), 1);
    cr_assert(strstr(out, "no key or name"), "%s", out);
    free(out);
    /* trust: a key as argument (quoted: it holds shell characters). */
    cr_assert_eq(run(&out, "%s --config-dir %s/w trust tcp://lab:5555 '%s'", keygen, dir, key), 0,
                 "%s", out);
    free(out);
    /* A key may begin with '-' (one in 85 does): it is a key, not an option. */
    cr_assert_eq(run(&out, "%s --config-dir %s/w trust tcp://lab:5556 "
                     "'-abcdefghijklmnopqrstuvwxyz0123456789ABC'", keygen, dir), 0, "%s", out);
    free(out);
    cr_assert_eq(run(&out, "%s --config-dir %s/w untrust tcp://lab:5556", keygen, dir), 0);
    free(out);
    cr_assert_eq(run(&out, "%s --config-dir %s/w trust tcp://lab:5555 not-a-key", keygen, dir), 2);
    cr_assert(strstr(out, "neither a public key"), "%s", out);
    free(out);
    cr_assert_eq(run(&out, "%s --config-dir %s/w untrust tcp://lab:5555", keygen, dir), 0);
    free(out);
    cr_assert_eq(run(NULL, "%s --config-dir %s/w frobnicate", keygen, dir), 2);
}

Test(keys, install_module_stores_and_lists_the_hash)
{
    char src[200], cmd[1200];
    snprintf(src, sizeof src, "%s/sq.c", dir);
    FILE *f = fopen(src, "w");
    fputs("#include <playdoh_task.h>\nPD_TASK_DOUBLE(sq, x) { return x * x; }\n", f);
    fclose(f);
    char *out;
    snprintf(cmd, sizeof cmd, "%s --install-module %s --cache %s/cache --code-list %s/mods "
             "--config-dir %s/cfg", pd_harness_program("playdoh-worker"), src, dir, dir, dir);
    cr_assert_eq(run(&out, "%s", cmd), 0, "%s", out);
    char hash[128];
    s_first_line(out, hash, sizeof hash);
    cr_assert_eq(strlen(hash), 64, "the first line is the module's hash: '%s'", hash);
    free(out);
    cr_assert_eq(run(NULL, "grep -q '^%s' %s/mods && test -f %s/cache/modules/%s.c", hash, dir,
                     dir, hash), 0, "the hash is listed and the module is in the cache");
    /* Twice: still one line. */
    cr_assert_eq(run(NULL, "%s", cmd), 0);
    cr_assert_eq(run(NULL, "test $(grep -c '^%s' %s/mods) -eq 1", hash, dir), 0);
    /* A CUDA module is stored as such. */
    char cu[200];
    snprintf(cu, sizeof cu, "%s/k.cu", dir);
    FILE *fc = fopen(cu, "w");
    cr_assert_not_null(fc);
    fputs("extern \"C\" __global__ void k(float *x) { x[0] = 1; }\n", fc);
    fclose(fc);
    cr_assert_eq(run(&out, "%s --install-module %s --cache %s/cache --code-list %s/mods "
                     "--config-dir %s/cfg", pd_harness_program("playdoh-worker"), cu, dir, dir,
                     dir), 0, "%s", out);
    s_first_line(out, hash, sizeof hash);
    free(out);
    cr_assert_eq(run(NULL, "grep -q '^%s .*k.cu' %s/mods && test -f %s/cache/modules/%s.cu", hash,
                     dir, dir, hash), 0, "the CUDA module is listed and stored as .cu");
    cr_assert_eq(run(&out, "%s --install-module %s/missing.c --cache %s/cache",
                     pd_harness_program("playdoh-worker"), dir, dir), 2);
    cr_assert(strstr(out, "cannot read"), "%s", out);
    free(out);
}

Test(keys, a_secure_embedded_cluster_runs_jobs_and_refuses_plain_clients)
{
    int err = 0;
    pd_local_opts_t lo = {.cpus = 2, .secure = true};
    pd_local_t *l = pd_local_start_opts(&lo, &err);
    cr_assert_not_null(l, "%s", pd_strerror(err));
    pd_client_t *c = pd_client_open(pd_local_endpoint(l), pd_local_client_opts(l), &err);
    cr_assert_not_null(c, "%s", pd_strerror(err));
    char path[200], mod[PD_HASH_HEX];
    snprintf(path, sizeof path, "%s/m.c", dir);
    FILE *f = fopen(path, "w");
    fputs("#include <playdoh_task.h>\nPD_TASK_DOUBLE(inc, x) { return x + 1; }\n", f);
    fclose(f);
    cr_assert_eq(pd_module_upload_file(c, path, mod), 0, "%s", pd_client_error(c));
    double x[50];
    uint64_t ids[50];
    pd_result_t res[50];
    for (int i = 0; i < 50; i++)
        x[i] = i;
    cr_assert_eq(pd_map_doubles(c, mod, "inc", x, 50, NULL, ids), 50, "%s", pd_client_error(c));
    cr_assert_eq(pd_fetch(c, ids, 50, 60000, res, NULL, NULL), 50, "%s", pd_client_error(c));
    for (int i = 0; i < 50; i++) {
        double y;
        cr_assert_eq(pd_result_double(&res[i], &y), 0);
        cr_assert_float_eq(y, i + 1.0, 1e-12);
    }
    pd_results_clear(res, 50);
    char why[1024];
    pd_client_opts_t plain = {.security = PD_SECURITY_NONE, .why = why, .whycap = sizeof why};
    cr_assert_null(pd_client_open(pd_local_endpoint(l), &plain, &err));
    cr_assert_eq(err, PD_EAUTH, "%s", why);
    pd_client_destroy(&c);
    pd_local_stop(&l);
}

Test(keys, playdoh_submit_runs_a_map_over_curvezmq_with_the_keys_made_by_keygen)
{
    pd_harness_t h;
    pd_harness_start_secure(&h, NULL);
    pd_harness_add_worker(&h, 2);
    pd_client_t *c = pd_harness_client(&h); /* makes and admits identity "client" */
    pd_harness_wait_slots(&h, c, 2);
    pd_client_destroy(&c);
    char *mod = pd_harness_module(&h, "sq.c", "#include <playdoh_task.h>\n"
                                              "PD_TASK_DOUBLE(sq, x) { return x * x; }\n");
    char *out;
    int rc = run(&out, "seq 1 4 | %s --broker %s --secure --config-dir %s/client map %s sq",
                 pd_harness_program("playdoh-submit"), h.endpoint, h.dir, mod);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, "1.0\n4.0\n9.0\n16.0\n");
    free(out);
    /* Without the broker's key in known_brokers: the exact command to run. */
    char conf[300];
    pd_harness_identity(&h, "newcomer", PD_ROLE_CLIENT, conf, sizeof conf, NULL);
    char known[400];
    snprintf(known, sizeof known, "%s/known_brokers", conf);
    unlink(known);
    rc = run(&out, "%s --broker %s --secure --config-dir %s status 1",
             pd_harness_program("playdoh-submit"), h.endpoint, conf);
    cr_assert_eq(rc, 3, "%s", out);
    char hint[400];
    snprintf(hint, sizeof hint, "playdoh-keygen trust %s KEY", h.endpoint);
    cr_assert(strstr(out, hint), "%s", out);
    free(out);
    free(mod);
    pd_harness_stop(&h);
}
