/*  Unit tests for worker/pd_slot (with pd_modcache and pd_task underneath).

    Each test spawns a real slot child: this test executable itself, exec'ed
    through /proc/self/exe with "--slot ...", which main() below hands to
    pd_slot_main() as playdoh-worker's main() does. The module is C source
    written into a private cache and compiled by the machine's real cc.
*/
#include "pd_codec.h"
#include "pd_error.h"
#include "pd_log.h"
#include "pd_modcache.h"
#include "pd_slot.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *s_module_src =
    "#include <playdoh_task.h>\n"
    "#include <signal.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <unistd.h>\n"
    "PD_TASK_DOUBLE(square, x) { return x * x; }\n"
    "PD_TASK_VECTOR(total, x, n) { double s = 0; for (size_t i = 0; i < n; i++) s += x[i]; return s; }\n"
    "PD_TASK(stats, t)\n"
    "{\n"
    "    const double *x; size_t n;\n"
    "    if (pd_arg_doubles(t, &x, &n)) return pd_task_fail(t, \"want an array of numbers\");\n"
    "    double s = 0; for (size_t i = 0; i < n; i++) s += x[i];\n"
    "    pd_out_map(t, 2);\n"
    "    pd_out_str(t, \"n\"); pd_out_int(t, (int64_t) n);\n"
    "    pd_out_str(t, \"mean\"); pd_out_double(t, n ? s / n : 0);\n"
    "    return 0;\n"
    "}\n"
    "PD_TASK(refuse, t) { return pd_task_fail(t, \"refused job %llu\", (unsigned long long) pd_task_job_id(t)); }\n"
    "PD_TASK(crash, t) { (void) t; raise(SIGSEGV); return 0; }\n"
    "PD_TASK(leave, t) { (void) t; exit(3); }\n"
    "PD_TASK(nap, t) { double s = 0; pd_arg_double(t, &s); usleep((useconds_t) (s * 1e6)); return pd_out_nil(t); }\n"
    "PD_TASK(chatty, t) { printf(\"a task writing to stdout\\n\"); fflush(stdout); return pd_out_int(t, 7); }\n"
    "PD_TASK(half, t) { pd_out_array(t, 2); return pd_out_int(t, 1); }\n"
    "PD_TASK(gpuenv, t) {\n"
    "    const char *v = getenv(\"CUDA_VISIBLE_DEVICES\");\n"
    "    pd_out_array(t, 2);\n"
    "    pd_out_int(t, pd_task_gpu(t));\n"
    "    return pd_out_str(t, v ? v : \"(unset)\");\n"
    "}\n"
    "PD_TASK(breaker, t) {\n"
    "    setenv(\"PD_FAKE_CUDA_ALLOC_FAIL\", \"700\", 1);\n"
    "    return pd_cuda_alloc(t, 8) ? pd_out_nil(t) : -1;\n"
    "}\n";

static const char *s_broken_src = "#include <playdoh_task.h>\nint broken(pd_task_t *t) { return t->nonsense + ; }\n";

typedef struct {
    uint64_t id;
    bool ok;
    uint8_t *val;
    size_t len;
} result_t;

static char s_dir[64];
static char s_hash[65], s_broken[65];
static pd_modcache_t *s_mc;
static result_t s_res[256];
static size_t s_nres;
static pd_job_t *s_back[256];
static size_t s_nback;

static void on_result(void *user, const pd_job_t *job, bool ok, const uint8_t *val, size_t len,
                      uint64_t us)
{
    (void) user;
    (void) us;
    cr_assert_lt(s_nres, 256);
    result_t *r = &s_res[s_nres++];
    r->id = job->id;
    r->ok = ok;
    r->val = malloc(len);
    memcpy(r->val, val, len);
    r->len = len;
}

static void on_requeue(void *user, pd_job_t *job)
{
    (void) user;
    cr_assert_lt(s_nback, 256);
    s_back[s_nback++] = job;
}

static void store(const char *src, char hash[65])
{
    unsigned char h[32];
    crypto_hash_sha256(h, (const unsigned char *) src, strlen(src));
    sodium_bin2hex(hash, 65, h, 32);
    char why[256];
    cr_assert_eq(pd_modcache_store(s_mc, hash, "c", src, strlen(src), why, sizeof why), 0, "%s", why);
}

static void setup(void)
{
    /* Criterion's sandbox (BoxFort) marks its test processes with BXFI_MAP;
       a slot child exec'ed from one would take itself for a sandboxed test
       and abort before main(). The variable has been read by now. */
    unsetenv("BXFI_MAP");
    snprintf(s_dir, sizeof s_dir, "/tmp/pd-slot-XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    s_mc = pd_modcache_new(s_dir, NULL);
    cr_assert_not_null(s_mc);
    store(s_module_src, s_hash);
    store(s_broken_src, s_broken);
    s_nres = s_nback = 0;
}

static void teardown(void)
{
    for (size_t i = 0; i < s_nres; i++)
        free(s_res[i].val);
    for (size_t i = 0; i < s_nback; i++)
        pd_job_destroy(&s_back[i]);
    pd_modcache_destroy(&s_mc);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(unit, .init = setup, .fini = teardown, .timeout = 60);

/* Reads the slot's pipe and ticks it for up to ms milliseconds, or until
   done(s) holds (NULL: the whole time). */
static void supervise(pd_slot_t *s, int ms, bool (*done)(pd_slot_t *))
{
    int64_t end = pd_slot_now_ms() + ms;
    while (pd_slot_now_ms() < end && !(done && done(s))) {
        struct pollfd p = {.fd = pd_slot_fd(s), .events = POLLIN};
        if (poll(&p, p.fd >= 0 ? 1 : 0, 10) > 0)
            pd_slot_on_readable(s);
        pd_slot_tick(s);
    }
}

/* Supervises the slot until it has a live child that said READY and holds
   no job (or 10 s): a new child is not idle before its READY, and one that
   died soon after its start is restarted after a pause, not at once. */
static void wait_idle(pd_slot_t *s)
{
    supervise(s, 10000, pd_slot_idle);
    cr_assert(pd_slot_idle(s), "the slot has no idle child after 10 s");
}

static pd_slot_t *new_slot(void)
{
    pd_slot_config_t cfg = {.index = 2, .exe = "/proc/self/exe", .cache_dir = s_dir,
                            .host = "testhost", .sink = {on_result, on_requeue, NULL}};
    pd_slot_t *s = pd_slot_new(&cfg, NULL);
    cr_assert_not_null(s);
    wait_idle(s);
    return s;
}

/* A slot for the worker's GPU gpu (gpu < 0: a CPU slot) whose child gets
   CUDA_VISIBLE_DEVICES=visible (NULL: the environment unchanged). */
static pd_slot_t *new_gpu_slot(int gpu, const char *visible)
{
    pd_slot_config_t cfg = {.index = 3, .exe = "/proc/self/exe", .cache_dir = s_dir,
                            .host = "testhost", .has_gpu = gpu >= 0, .gpu = gpu,
                            .cuda_visible = visible, .sink = {on_result, on_requeue, NULL}};
    pd_slot_t *s = pd_slot_new(&cfg, NULL);
    cr_assert_not_null(s);
    wait_idle(s);
    return s;
}

/* A job calling fn of the test module (or of `hash`) with a JSON-ish argument
   given as raw msgpack bytes. */
static pd_job_t *job(uint64_t id, const char *hash, const char *fn, const void *arg, size_t len,
                     uint64_t timeout_ms)
{
    pd_job_t *j = pd_job_new(arg, len);
    cr_assert_not_null(j);
    j->id = id;
    j->attempt = 1;
    j->timeout_ms = timeout_ms;
    snprintf(j->mod, sizeof j->mod, "%s", hash);
    snprintf(j->kind, sizeof j->kind, "c");
    snprintf(j->name, sizeof j->name, "%s", hash == s_broken ? "broken.c" : "tasks.c");
    snprintf(j->fn, sizeof j->fn, "%s", fn);
    return j;
}

static pd_job_t *job_double(uint64_t id, const char *fn, double x, uint64_t timeout_ms)
{
    uint8_t b[9] = {0xcb};
    uint64_t bits;
    memcpy(&bits, &x, 8);
    for (int i = 0; i < 8; i++)
        b[1 + i] = (uint8_t) (bits >> (56 - 8 * i));
    return job(id, s_hash, fn, b, 9, timeout_ms);
}

/* Runs the slot's supervision until `want` results (or 30 s). */
static void pump(pd_slot_t *s, size_t want)
{
    int64_t end = pd_slot_now_ms() + 30000;
    while (s_nres < want && pd_slot_now_ms() < end) {
        int64_t now = pd_slot_now_ms();
        int64_t d = pd_slot_deadline(s);
        int t = d == INT64_MAX ? 100 : (int) (d - now < 0 ? 0 : d - now > 100 ? 100 : d - now);
        struct pollfd p = {.fd = pd_slot_fd(s), .events = POLLIN};
        if (poll(&p, p.fd >= 0 ? 1 : 0, t) > 0)
            pd_slot_on_readable(s);
        pd_slot_tick(s);
    }
    cr_assert_eq(s_nres, want, "got %zu results, wanted %zu", s_nres, want);
}

static void send1(pd_slot_t *s, pd_job_t *j)
{
    wait_idle(s);
    cr_assert_eq(pd_slot_send(s, &j, 1), 0);
}

static double as_double(const result_t *r)
{
    cr_assert(r->ok, "job %llu failed: %.*s", (unsigned long long) r->id, (int) r->len, r->val);
    pd_rd_t rd;
    pd_rd_init(&rd, r->val, r->len);
    double x;
    cr_assert_eq(pd_rd_double(&rd, &x), 0);
    return x;
}

/* Reads the error map {code, msg, slot} of a failed result. */
static void as_error(const result_t *r, char *code, char *msg, size_t cap, int64_t *slot)
{
    cr_assert_not(r->ok, "job %llu did not fail", (unsigned long long) r->id);
    pd_rd_t rd;
    pd_rd_init(&rd, r->val, r->len);
    uint32_t n;
    cr_assert_eq(pd_rd_map(&rd, &n), 0);
    code[0] = msg[0] = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (pd_rd_key_is(&rd, "code"))
            cr_assert_eq(pd_rd_strcpy(&rd, code, 32), 0);
        else if (pd_rd_key_is(&rd, "msg"))
            cr_assert_eq(pd_rd_strcpy(&rd, msg, cap), 0);
        else if (pd_rd_key_is(&rd, "slot"))
            cr_assert_eq(pd_rd_int(&rd, slot), 0);
        else if (pd_rd_key_is(&rd, "value"))
            cr_assert_eq(pd_rd_skip(&rd, NULL, NULL), 0); /* its output: s_error_output */
        else
            cr_assert_fail("unexpected key in the error map");
    }
}

Test(unit, double_task_returns_its_value)
{
    pd_slot_t *s = new_slot();
    send1(s, job_double(1, "square", 3, 0));
    pump(s, 1);
    cr_expect_eq(s_res[0].id, 1);
    cr_expect_float_eq(as_double(&s_res[0]), 9.0, 1e-12);
    /* The slot is kept warm: the same child runs the next job. */
    int pid = pd_slot_pid(s);
    send1(s, job_double(2, "square", -4, 0));
    pump(s, 2);
    cr_expect_float_eq(as_double(&s_res[1]), 16.0, 1e-12);
    cr_expect_eq(pd_slot_pid(s), pid);
    pd_slot_destroy(&s);
    pd_slot_destroy(&s);
}

Test(unit, vector_and_map_tasks)
{
    pd_slot_t *s = new_slot();
    const uint8_t arr[] = {0x93, 0x01, 0x02, 0xcb, 0x40, 0x08, 0, 0, 0, 0, 0, 0}; /* [1, 2, 3.0] */
    pd_job_t *g[2] = {job(1, s_hash, "total", arr, sizeof arr, 0),
                      job(2, s_hash, "stats", arr, sizeof arr, 0)};
    cr_assert_eq(pd_slot_send(s, g, 2), 0);
    pump(s, 2);
    cr_expect_float_eq(as_double(&s_res[0]), 6.0, 1e-12);
    cr_assert(s_res[1].ok);
    pd_rd_t rd;
    pd_rd_init(&rd, s_res[1].val, s_res[1].len);
    uint32_t n;
    int64_t count;
    double mean;
    cr_assert_eq(pd_rd_map(&rd, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert(pd_rd_key_is(&rd, "n"));
    cr_assert_eq(pd_rd_int(&rd, &count), 0);
    cr_assert(pd_rd_key_is(&rd, "mean"));
    cr_assert_eq(pd_rd_double(&rd, &mean), 0);
    cr_expect_eq(count, 3);
    cr_expect_float_eq(mean, 2.0, 1e-12);
    pd_slot_destroy(&s);
}

Test(unit, task_failure_carries_its_message)
{
    pd_slot_t *s = new_slot();
    const uint8_t str[] = {0xa1, 'x'};
    pd_job_t *g[3] = {job(5, s_hash, "refuse", str, 2, 0), job(6, s_hash, "stats", str, 2, 0),
                      job(7, s_hash, "square", str, 2, 0)};
    cr_assert_eq(pd_slot_send(s, g, 3), 0);
    pump(s, 3);
    char code[32], msg[512];
    int64_t slot = -1;
    as_error(&s_res[0], code, msg, sizeof msg, &slot);
    cr_expect_str_eq(code, "PD_ETASK");
    cr_expect_str_eq(msg, "refused job 5");
    cr_expect_eq(slot, 2);
    as_error(&s_res[1], code, msg, sizeof msg, &slot);
    cr_expect_str_eq(msg, "want an array of numbers");
    as_error(&s_res[2], code, msg, sizeof msg, &slot);
    cr_expect_str_eq(msg, "square: argument is not a number");
    pd_slot_destroy(&s);
}

Test(unit, malformed_result_and_stdout_do_not_corrupt_the_pipe)
{
    pd_slot_t *s = new_slot();
    const uint8_t nil = 0xc0;
    pd_job_t *g[2] = {job(1, s_hash, "chatty", &nil, 1, 0), job(2, s_hash, "half", &nil, 1, 0)};
    cr_assert_eq(pd_slot_send(s, g, 2), 0);
    pump(s, 2);
    pd_rd_t rd;
    pd_rd_init(&rd, s_res[0].val, s_res[0].len);
    int64_t v;
    cr_assert(s_res[0].ok);
    cr_assert_eq(pd_rd_int(&rd, &v), 0);
    cr_expect_eq(v, 7);
    char code[32], msg[512];
    int64_t slot;
    as_error(&s_res[1], code, msg, sizeof msg, &slot);
    cr_expect_str_eq(code, "PD_ETASK");
    cr_expect(strstr(msg, "malformed result") != NULL, "%s", msg);
    /* What job 1 printed is neither in the pipe nor in job 2's error. */
    pd_rd_init(&rd, s_res[1].val, s_res[1].len);
    uint32_t keys;
    cr_assert_eq(pd_rd_map(&rd, &keys), 0);
    cr_expect_eq(keys, 3, "job 2's error carries no output of job 1");
    pd_slot_destroy(&s);
}

Test(unit, crash_fails_one_job_and_requeues_the_rest)
{
    pd_slot_t *s = new_slot();
    int pid = pd_slot_pid(s);
    pd_job_t *g[4] = {job_double(1, "square", 2, 0), job_double(2, "crash", 0, 0),
                      job_double(3, "square", 3, 0), job_double(4, "square", 4, 0)};
    cr_assert_eq(pd_slot_send(s, g, 4), 0);
    pump(s, 2);
    cr_expect_float_eq(as_double(&s_res[0]), 4.0, 1e-12);
    char code[32], msg[512];
    int64_t slot;
    as_error(&s_res[1], code, msg, sizeof msg, &slot);
    cr_expect_str_eq(code, "PD_ECRASH");
    cr_expect_str_eq(msg, "task crashed: killed by signal 11 (Segmentation fault) on testhost slot 2");
    /* Jobs 3 and 4 come back unstarted, in order when pushed at the front. */
    cr_assert_eq(s_nback, 2);
    cr_expect_eq(s_back[0]->id, 4);
    cr_expect_eq(s_back[1]->id, 3);
    /* The slot has a new child, and the next job runs. */
    wait_idle(s);
    cr_expect_neq(pd_slot_pid(s), pid);
    pd_job_t *again = s_back[--s_nback];
    send1(s, again);
    pump(s, 3);
    cr_expect_eq(s_res[2].id, 3);
    cr_expect_float_eq(as_double(&s_res[2]), 9.0, 1e-12);
    pd_slot_destroy(&s);
}

Test(unit, exit_in_a_task_is_reported)
{
    pd_slot_t *s = new_slot();
    send1(s, job_double(1, "leave", 0, 0));
    pump(s, 1);
    char code[32], msg[512];
    int64_t slot;
    as_error(&s_res[0], code, msg, sizeof msg, &slot);
    cr_expect_str_eq(code, "PD_ECRASH");
    cr_expect_str_eq(msg, "slot process exited with status 3 during the task (did the task call exit()?)");
    send1(s, job_double(2, "square", 5, 0));
    pump(s, 2);
    cr_expect_float_eq(as_double(&s_res[1]), 25.0, 1e-12);
    pd_slot_destroy(&s);
}

Test(unit, time_out_kills_the_task)
{
    pd_slot_t *s = new_slot();
    send1(s, job_double(1, "square", 1, 0)); /* compile first: time-outs exclude it anyway */
    pump(s, 1);
    int64_t t0 = pd_slot_now_ms();
    send1(s, job_double(2, "nap", 20, 200));
    pump(s, 2);
    int64_t took = pd_slot_now_ms() - t0;
    cr_expect_geq(took, 200);
    cr_expect_lt(took, 5000);
    char code[32], msg[512];
    int64_t slot;
    as_error(&s_res[1], code, msg, sizeof msg, &slot);
    cr_expect_str_eq(code, "PD_ETIMEDOUT");
    cr_expect_str_eq(msg, "task ran past its time-out of 200 ms");
    send1(s, job_double(3, "nap", 0.01, 2000));
    pump(s, 3);
    cr_expect(s_res[2].ok);
    pd_slot_destroy(&s);
}

Test(unit, compile_error_shows_the_compiler_text)
{
    pd_slot_t *s = new_slot();
    const uint8_t nil = 0xc0;
    pd_job_t *g[2] = {job(1, s_broken, "broken", &nil, 1, 0), job(2, s_broken, "broken", &nil, 1, 0)};
    cr_assert_eq(pd_slot_send(s, g, 2), 0);
    pump(s, 2);
    char code[32], msg[4200];
    int64_t slot;
    as_error(&s_res[0], code, msg, sizeof msg, &slot);
    cr_expect_str_eq(code, "PD_ECOMPILE");
    cr_expect(strncmp(msg, "module broken.c: compile error:\n", 32) == 0, "%s", msg);
    cr_expect(strstr(msg, "error") != NULL && strstr(msg, "nonsense") != NULL, "%s", msg);
    char msg2[4200];
    as_error(&s_res[1], code, msg2, sizeof msg2, &slot);
    cr_expect_str_eq(msg2, msg);
    pd_slot_destroy(&s);
}

/* Writes an executable compiler wrapper at path that logs each --version
   probe to log and says it is version `ver`, else runs cc. */
static void write_cc_wrapper(const char *path, const char *log, const char *ver)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "#!/bin/sh\nif [ \"$1\" = --version ]; then echo probe >> '%s'; "
               "echo 'wrapcc %s'; exit 0; fi\nexec cc \"$@\"\n", log, ver);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(chmod(path, 0755), 0);
}

/* Lines in the file at path (0 when it is missing). */
static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, c;
    while (f && (c = fgetc(f)) != EOF)
        n += c == '\n';
    if (f)
        fclose(f);
    return n;
}

/* Compiled copies of the test module in the cache (one per compiler). */
static int count_builds(void)
{
    char so[4200];
    snprintf(so, sizeof so, "%s/so", s_dir);
    DIR *d = opendir(so);
    cr_assert_not_null(d);
    int n = 0;
    size_t hl = strlen(s_hash);
    for (struct dirent *de; (de = readdir(d));) {
        size_t l = strlen(de->d_name);
        n += strncmp(de->d_name, s_hash, hl) == 0 && de->d_name[hl] == '-' && l > 3
             && strcmp(de->d_name + l - 3, ".so") == 0;
    }
    closedir(d);
    return n;
}

/* Runs one job of the test module in a fresh slot (a fresh process, which
   knows nothing of the compiler yet). */
static void run_square_in_a_new_slot(double x)
{
    pd_slot_t *s = new_slot();
    size_t before = s_nres;
    send1(s, job_double(before + 1, "square", x, 0));
    pump(s, before + 1);
    cr_expect_float_eq(as_double(&s_res[before]), x * x, 1e-12);
    pd_slot_destroy(&s);
}

Test(unit, the_compiler_is_probed_once_per_compiler_file)
{
    char cc[4200], log[4200];
    snprintf(cc, sizeof cc, "%s/wrapcc", s_dir);
    snprintf(log, sizeof log, "%s/probes.log", s_dir);
    write_cc_wrapper(cc, log, "1.0");
    setenv("PLAYDOH_CC", cc, 1);
    run_square_in_a_new_slot(3);
    cr_expect_eq(count_lines(log), 1, "the first slot asks the compiler");
    cr_expect_eq(count_builds(), 1);
    run_square_in_a_new_slot(4);
    cr_expect_eq(count_lines(log), 1, "a second slot, same compiler file: no probe");
    cr_expect_eq(count_builds(), 1);
    /* Another compiler behind the same name: another size and mtime. */
    write_cc_wrapper(cc, log, "2.0-changed");
    struct timespec t[2] = {{.tv_nsec = UTIME_NOW}, {.tv_sec = time(NULL) + 5}};
    cr_assert_eq(utimensat(AT_FDCWD, cc, t, 0), 0);
    run_square_in_a_new_slot(5);
    cr_expect_eq(count_lines(log), 2, "a changed compiler is asked again");
    cr_expect_eq(count_builds(), 2, "and the module is compiled again for it");
    unsetenv("PLAYDOH_CC");
}

Test(unit, missing_function_and_module)
{
    pd_slot_t *s = new_slot();
    const uint8_t nil = 0xc0;
    char absent[65];
    memset(absent, 'a', 64);
    absent[64] = 0;
    pd_job_t *g[3] = {job(1, s_hash, "sqare", &nil, 1, 0), job(2, s_hash, "exit", &nil, 1, 0),
                      job(3, absent, "f", &nil, 1, 0)};
    cr_assert_eq(pd_slot_send(s, g, 3), 0);
    pump(s, 3);
    char code[32], msg[512];
    int64_t slot;
    as_error(&s_res[0], code, msg, sizeof msg, &slot);
    cr_expect_str_eq(code, "PD_ENOFUNC");
    cr_expect_str_eq(msg, "module tasks.c has no function 'sqare' (check the name passed to map)");
    as_error(&s_res[1], code, msg, sizeof msg, &slot);
    cr_expect_str_eq(code, "PD_ENOFUNC", "libc's exit() is not a task of the module");
    as_error(&s_res[2], code, msg, sizeof msg, &slot);
    cr_expect_str_eq(code, "PD_ENOMODULE");
    pd_slot_destroy(&s);
}

static bool cancel_two(void *user, uint64_t id)
{
    (void) user;
    return id == 2;
}

Test(unit, cancel_kills_the_running_job_and_reports_nothing)
{
    pd_slot_t *s = new_slot();
    send1(s, job_double(1, "square", 1, 0));
    pump(s, 1);
    pd_job_t *g[2] = {job_double(2, "nap", 20, 0), job_double(3, "square", 3, 0)};
    cr_assert_eq(pd_slot_send(s, g, 2), 0);
    usleep(100000);
    pd_slot_on_readable(s);
    cr_expect_eq(pd_slot_cancel(s, cancel_two, NULL), 1);
    cr_expect_eq(s_nres, 1);
    cr_assert_eq(s_nback, 1);
    cr_expect_eq(s_back[0]->id, 3);
    wait_idle(s); /* a new child replaces the one that was killed */
    pd_slot_destroy(&s);
}

Test(unit, adaptive_group_size)
{
    pd_slot_t *s = new_slot();
    cr_expect_eq(pd_slot_group_size(s), 1, "unknown job times: one at a time");
    pd_job_t *g[8];
    for (int i = 0; i < 8; i++)
        g[i] = job_double((uint64_t) i + 1, "square", i, 0);
    cr_assert_eq(pd_slot_send(s, g, 8), 0);
    pump(s, 8);
    cr_expect_gt(pd_slot_group_size(s), 8, "microsecond jobs go in groups");
    /* ...of that function: another one's run time is not known. */
    pd_job_t *sq = job_double(99, "square", 1, 0), *other = job_double(98, "nap", 1, 0);
    cr_expect(pd_slot_knows(s, sq));
    cr_expect_not(pd_slot_knows(s, other), "measured on squares, not naps");
    pd_job_destroy(&sq);
    pd_job_destroy(&other);
    send1(s, job_double(9, "nap", 0.02, 0));
    pump(s, 9);
    send1(s, job_double(10, "nap", 0.02, 0));
    pump(s, 10);
    cr_expect_eq(pd_slot_group_size(s), 1, "20 ms jobs go one at a time");
    pd_slot_destroy(&s);
}

/* The next group waits in the pipe while the last job of a group runs: the
   child starts it without waiting for the worker, results come in order,
   and a slot over the owner's limit hands what was sent ahead back. */
Test(unit, a_group_sent_ahead_starts_when_the_running_job_ends)
{
    pd_slot_t *s = new_slot();
    cr_expect(pd_slot_can_take(s), "an idle slot takes a group");
    send1(s, job_double(1, "nap", 0.03, 0));
    cr_expect_not(pd_slot_can_take(s), "job times unknown: nothing is sent ahead");
    pump(s, 1);
    send1(s, job_double(2, "nap", 0.2, 0));
    cr_assert(pd_slot_can_take(s), "30 ms jobs: the next group may wait in the pipe");
    pd_job_t *j = job_double(3, "square", 7, 0);
    cr_assert_eq(pd_slot_send(s, &j, 1), 0);
    cr_expect_not(pd_slot_can_take(s), "one group ahead at most");
    pump(s, 3);
    cr_expect_eq(s_res[1].id, 2);
    cr_expect_eq(s_res[2].id, 3, "results in the order sent");
    cr_expect_float_eq(as_double(&s_res[2]), 49.0, 1e-12);

    send1(s, job_double(4, "nap", 0.2, 0));
    j = job_double(5, "nap", 0.2, 0);
    cr_assert(pd_slot_can_take(s));
    cr_assert_eq(pd_slot_send(s, &j, 1), 0);
    pd_slot_finish(s); /* the owner took the slot back */
    pump(s, 4);
    supervise(s, 500, NULL);
    cr_expect_eq(s_nres, 4, "the job sent ahead did not run");
    cr_assert_eq(s_nback, 1, "it came back unstarted");
    cr_expect_eq(s_back[0]->id, 5);
    cr_expect_eq(pd_slot_pid(s), 0, "the slot over the limit stays down");
    pd_slot_destroy(&s);
}

/* ---- start failures --------------------------------------------------- */

static char s_log[16384]; /* log lines of the test, one a line */
static size_t s_loglen;

static void on_log(pd_log_level_t level, const char *tag, const char *line, void *user)
{
    (void) level;
    (void) tag;
    (void) user;
    int n = snprintf(s_log + s_loglen, sizeof s_log - s_loglen, "%s\n", line);
    if (n > 0 && (size_t) n < sizeof s_log - s_loglen)
        s_loglen += (size_t) n;
}

static bool unavailable(pd_slot_t *s) { return pd_slot_unavailable(s); }
static bool failed_once(pd_slot_t *s) { return pd_slot_start_failures(s) > 0; }

/* A slot of index 4 running exe, its log lines collected in s_log. */
static pd_slot_t *new_slot_running(const char *exe)
{
    s_loglen = 0;
    s_log[0] = 0;
    pd_log_set_level(PD_LOG_INFO);
    pd_log_set_handler(on_log, NULL);
    pd_slot_config_t cfg = {.index = 4, .exe = exe, .cache_dir = s_dir, .host = "testhost",
                            .sink = {on_result, on_requeue, NULL}};
    pd_slot_t *s = pd_slot_new(&cfg, NULL);
    cr_assert_not_null(s, "fork works: a failed exec shows in the child");
    cr_expect_not(pd_slot_idle(s), "a new child is not idle before its READY");
    return s;
}

/* Writes an executable shell script. */
static void script(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    cr_assert_eq(chmod(path, 0755), 0);
}

Test(unit, a_missing_program_fails_no_job_and_the_slot_is_withdrawn)
{
    pd_slot_t *s = new_slot_running("/nonexistent/playdoh-worker");
    supervise(s, 30000, unavailable);
    pd_log_set_handler(NULL, NULL);
    cr_assert(pd_slot_unavailable(s), "%s", s_log);
    cr_expect_geq(pd_slot_start_failures(s), PD_SLOT_START_TRIES);
    cr_expect_not(pd_slot_idle(s));
    cr_expect_eq(s_nres, 0, "a start failure is no job's crash");
    cr_expect(strstr(s_log, "slot 4: the slot process could not start: "
                            "/nonexistent/playdoh-worker could not be executed: the program is "
                            "missing or not executable, or a shared library it needs does not "
                            "load") != NULL, "%s", s_log);
    cr_expect(strstr(s_log, "`ldd /nonexistent/playdoh-worker`") != NULL, "%s", s_log);
    cr_expect(strstr(s_log, "trying again in 0.5 s") != NULL, "%s", s_log);
    cr_expect(strstr(s_log, "slot 4: the slot process failed to start 3 times in a row") != NULL,
              "%s", s_log);
    cr_expect(strstr(s_log, "no longer offered to the broker") != NULL, "%s", s_log);
    pd_slot_destroy(&s);
}

Test(unit, a_program_of_another_version_is_a_start_failure)
{
    char path[128];
    snprintf(path, sizeof path, "%s/old-worker", s_dir);
    /* READY [4, 1]: a pipe version this worker no longer speaks (version 2
       added the jobs' limits). */
    script(path, "#!/bin/sh\nprintf '\\003\\000\\000\\000\\222\\004\\001' >&4\nsleep 20\n");
    pd_slot_t *s = new_slot_running(path);
    supervise(s, 20000, failed_once);
    pd_log_set_handler(NULL, NULL);
    cr_assert_geq(pd_slot_start_failures(s), 1, "%s", s_log);
    cr_expect(strstr(s_log, "is not a slot program this worker can use (it speaks slot pipe "
                            "version 1, this worker 2)") != NULL, "%s", s_log);
    cr_expect_eq(s_nres, 0);
    pd_slot_destroy(&s);
}

Test(unit, a_slot_whose_program_is_fixed_comes_back_and_runs_jobs)
{
    char link[128], fresh[160], self[PATH_MAX];
    snprintf(link, sizeof link, "%s/slot-program", s_dir);
    cr_assert_eq(symlink("/bin/false", link), 0);
    pd_slot_t *s = new_slot_running(link);
    supervise(s, 20000, unavailable);
    cr_assert(pd_slot_unavailable(s), "%s", s_log);
    cr_expect(strstr(s_log, "slot-program exited with status 1 before it was ready") != NULL,
              "%s", s_log);
    cr_expect_eq(s_nres, 0);
    /* The owner repairs the program: the link now names this test program,
       which runs slots. The slot's next attempt succeeds. */
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert_gt(n, 0);
    self[n] = 0;
    snprintf(fresh, sizeof fresh, "%s.new", link);
    cr_assert_eq(symlink(self, fresh), 0);
    cr_assert_eq(rename(fresh, link), 0);
    supervise(s, 30000, pd_slot_idle);
    pd_log_set_handler(NULL, NULL);
    cr_assert(pd_slot_idle(s), "%s", s_log);
    cr_expect_not(pd_slot_unavailable(s));
    cr_expect_eq(pd_slot_start_failures(s), 0);
    cr_expect(strstr(s_log, "slot 4: a slot process started after") != NULL, "%s", s_log);
    cr_expect(strstr(s_log, "the slot is offered again") != NULL, "%s", s_log);
    send1(s, job_double(1, "square", 3, 0));
    pump(s, 1);
    cr_expect_float_eq(as_double(&s_res[0]), 9.0, 1e-12);
    pd_slot_destroy(&s);
}

int main(int argc, char **argv)
{
    if (pd_slot_is_child(argc, argv))
        return pd_slot_main(argc, argv);
    struct criterion_test_set *tests = criterion_initialize();
    int rc = 0;
    if (criterion_handle_args(argc, argv, true))
        rc = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return rc;
}

/* Reads a gpuenv result [gpu, CUDA_VISIBLE_DEVICES]. */
static void as_gpuenv(const result_t *r, int64_t *gpu, char *vis, size_t cap)
{
    cr_assert(r->ok, "job %llu failed: %.*s", (unsigned long long) r->id, (int) r->len, r->val);
    pd_rd_t rd;
    pd_rd_init(&rd, r->val, r->len);
    uint32_t n;
    cr_assert_eq(pd_rd_array(&rd, &n), 0);
    cr_assert_eq(pd_rd_int(&rd, gpu), 0);
    cr_assert_eq(pd_rd_strcpy(&rd, vis, cap), 0);
}

Test(unit, a_gpu_slot_knows_its_gpu_and_sees_only_its_device)
{
    setenv("CUDA_VISIBLE_DEVICES", "7,8", 1); /* the worker's own */
    int64_t gpu;
    char vis[32];
    pd_slot_t *s = new_gpu_slot(1, "8");
    send1(s, job_double(1, "gpuenv", 0, 0));
    pump(s, 1);
    as_gpuenv(&s_res[0], &gpu, vis, sizeof vis);
    cr_expect_eq(gpu, 1);
    cr_expect_str_eq(vis, "8");
    pd_slot_destroy(&s);
    s = new_gpu_slot(-1, "");
    send1(s, job_double(2, "gpuenv", 0, 0));
    pump(s, 2);
    as_gpuenv(&s_res[1], &gpu, vis, sizeof vis);
    cr_expect_eq(gpu, -1, "a CPU slot has no GPU");
    cr_expect_str_eq(vis, "", "a CPU slot sees no device");
    pd_slot_destroy(&s);
    s = new_gpu_slot(-1, NULL);
    send1(s, job_double(3, "gpuenv", 0, 0));
    pump(s, 3);
    as_gpuenv(&s_res[2], &gpu, vis, sizeof vis);
    cr_expect_str_eq(vis, "7,8", "without cuda_visible the environment is left alone");
    pd_slot_destroy(&s);
}

Test(unit, a_broken_gpu_context_restarts_the_slot_and_loses_no_job)
{
    const char *fake = getenv("PD_FAKE_LIBCUDA");
    cr_assert(fake && *fake, "PD_FAKE_LIBCUDA is not set (meson sets it)");
    setenv("PLAYDOH_LIBCUDA", fake, 1);
    unsetenv("PD_FAKE_CUDA_ALLOC_FAIL");
    pd_slot_t *s = new_gpu_slot(0, "0");
    send1(s, job_double(1, "breaker", 0, 0));
    pump(s, 1);
    char code[32], msg[512];
    int64_t slot;
    as_error(&s_res[0], code, msg, sizeof msg, &slot);
    cr_expect_str_eq(code, "PD_ECUDA");
    cr_expect(strstr(msg, "CUDA_ERROR_ILLEGAL_ADDRESS"), "%s", msg);
    int first = pd_slot_pid(s);
    /* The child is exiting: a job sent now either reaches the new process
       or comes back unstarted; it never fails. */
    send1(s, job_double(2, "square", 5, 0));
    int64_t end = pd_slot_now_ms() + 30000;
    while (s_nres < 2 && s_nback < 1 && pd_slot_now_ms() < end) {
        struct pollfd p = {.fd = pd_slot_fd(s), .events = POLLIN};
        if (poll(&p, p.fd >= 0 ? 1 : 0, 50) > 0)
            pd_slot_on_readable(s);
        pd_slot_tick(s);
    }
    if (s_nback == 1) {
        cr_expect_eq(s_back[0]->id, 2, "the job sent meanwhile came back unstarted");
        cr_expect_eq(s_nres, 1);
    } else {
        cr_assert_eq(s_nres, 2);
        cr_expect_float_eq(as_double(&s_res[1]), 25.0, 1e-12);
    }
    /* Either way the process was replaced. */
    end = pd_slot_now_ms() + 10000;
    while (pd_slot_pid(s) == first && pd_slot_now_ms() < end) {
        struct pollfd p = {.fd = pd_slot_fd(s), .events = POLLIN};
        if (poll(&p, p.fd >= 0 ? 1 : 0, 50) > 0)
            pd_slot_on_readable(s);
        pd_slot_tick(s);
    }
    cr_expect_neq(pd_slot_pid(s), first, "the slot process was not restarted");
    pd_slot_destroy(&s);
}
