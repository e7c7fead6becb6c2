/* Integration tests of sharing a cluster: several clients at once (fair
   round-robin, --max-slots), shared data sent once per machine, modules of
   several files with an init function. Real broker and worker processes on
   loopback, driven through libplaydoh-client and playdoh-submit. */
#include "pd_codec.h"
#include "pd_harness.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *MODULE_SRC =
    "#include <playdoh_task.h>\n"
    "#include <time.h>\n"
    "static double s_wall(void) {\n"
    "    struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts);\n"
    "    return ts.tv_sec + ts.tv_nsec / 1e9;\n"
    "}\n"
    "/* sleeps x ms; returns [start, end] in Unix seconds */\n"
    "PD_TASK(stamp, t) {\n"
    "    double ms; if (pd_arg_double(t, &ms)) return pd_task_fail(t, \"want ms\");\n"
    "    double a = s_wall();\n"
    "    struct timespec ts = {0, (long) (ms * 1e6)}; nanosleep(&ts, NULL);\n"
    "    double b = s_wall();\n"
    "    pd_out_array(t, 2); pd_out_double(t, a); return pd_out_double(t, b);\n"
    "}\n";

static pd_harness_t h;
static pd_client_t *c;
static char mod[PD_HASH_HEX];

static void start(int workers, int cpus)
{
    pd_harness_start(&h, NULL);
    for (int i = 0; i < workers; i++)
        pd_harness_add_worker(&h, cpus);
    c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, workers * cpus);
    char *path = pd_harness_module(&h, "stamp.c", MODULE_SRC);
    cr_assert_eq(pd_module_upload_file(c, path, mod), 0, "%s", pd_client_error(c));
    free(path);
}

static void stop(void)
{
    pd_client_destroy(&c);
    pd_harness_stop(&h);
}

TestSuite(share, .fini = stop, .timeout = 180);

Test(share, a_second_client_does_not_wait_behind_all_of_the_first)
{
    start(1, 2);
    enum { NA = 300, NB = 10 };
    static double xa[NA], xb[NB];
    static uint64_t ida[NA], idb[NB];
    static pd_result_t rb[NB];
    for (int i = 0; i < NA; i++)
        xa[i] = 10;
    for (int i = 0; i < NB; i++)
        xb[i] = 10;
    pd_client_t *second = pd_harness_client(&h);
    cr_assert_eq(pd_map_doubles(c, mod, "stamp", xa, NA, NULL, ida), NA, "%s", pd_client_error(c));
    cr_assert_eq(pd_map_doubles(second, mod, "stamp", xb, NB, NULL, idb), NB,
                 "%s", pd_client_error(second));
    cr_assert_eq(pd_fetch(second, idb, NB, 120000, rb, NULL, NULL), NB);
    for (int i = 0; i < NB; i++)
        cr_assert_eq(rb[i].state, PD_JOB_DONE, "%s", rb[i].error);
    pd_results_clear(rb, NB);
    /* FIFO would have run all 300 of the first client's jobs (3 s of work)
       before these 10; round-robin interleaves them. */
    pd_job_state_t st[NA];
    cr_assert_eq(pd_status(c, ida, NA, st), 0);
    int unfinished = 0, done = 0;
    for (int i = 0; i < NA; i++) {
        unfinished += st[i] == PD_JOB_QUEUED || st[i] == PD_JOB_RUNNING;
        done += st[i] == PD_JOB_DONE;
    }
    cr_assert_geq(unfinished, 150, "only %d of the first client's %d jobs were left when the "
                  "second client's 10 ended: they waited in line", unfinished, NA);
    cr_assert_gt(done, 0, "the first client made no progress while the second ran");
    pd_client_destroy(&second);
    pd_cancel(c, ida, NA);
}

/* True when no two [start, end] intervals of the results overlap. */
static bool s_sequential(pd_result_t *res, int n)
{
    double a[64][2];
    cr_assert_leq(n, 64);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(res[i].state, PD_JOB_DONE, "%s", res[i].error);
        const uint8_t *p = res[i].value;
        /* [float64, float64]: 0x92 0xcb <8> 0xcb <8> */
        cr_assert_eq(res[i].len, 19);
        for (int k = 0; k < 2; k++) {
            uint64_t u = 0;
            for (int b = 0; b < 8; b++)
                u = u << 8 | p[2 + 9 * k + b];
            memcpy(&a[i][k], &u, 8);
        }
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (i != j && a[i][0] < a[j][1] && a[j][0] < a[i][1])
                return false;
    return true;
}

Test(share, max_slots_caps_how_many_jobs_of_a_client_run_at_once)
{
    start(1, 2);
    enum { N = 8 };
    double x[N];
    uint64_t ids[N];
    pd_result_t res[N];
    for (int i = 0; i < N; i++)
        x[i] = 50;
    pd_map_opts_t o = {.max_slots = 1};
    cr_assert_eq(pd_map_doubles(c, mod, "stamp", x, N, &o, ids), N, "%s", pd_client_error(c));
    cr_assert_eq(pd_fetch(c, ids, N, 60000, res, NULL, NULL), N);
    cr_assert(s_sequential(res, N), "two jobs of a client capped at one slot ran at once");
    pd_results_clear(res, N);
}

Test(share, exec_max_slots_from_the_command_line)
{
    start(1, 2);
    char *out;
    char submit[1024];
    snprintf(submit, sizeof submit, "%s", pd_harness_program("playdoh-submit"));
    int st = pd_harness_run(&out, "%s --broker %s exec --max-slots 1 -- "
                 "'date +%%s.%%N; sleep 0.1; date +%%s.%%N; : {}' ::: 1 2 3 4", submit, h.endpoint);
    cr_assert_eq(st, 0, "%s", out);
    double t[8];
    char *p = out;
    for (int i = 0; i < 8; i++) {
        t[i] = strtod(p, &p);
        cr_assert_gt(t[i], 1e9, "output: %s", out);
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            cr_assert(i == j || !(t[2 * i] < t[2 * j + 1] && t[2 * j] < t[2 * i + 1]),
                      "commands %d and %d overlapped with --max-slots 1: %s", i, j, out);
    free(out);
}

/* ---- shared data ------------------------------------------------------ */

static const char *SHARED_SRC =
    "#include <playdoh_task.h>\n"
    "/* sum of the shared doubles x[i] for i in [from, to) */\n"
    "PD_TASK(slice_sum, t) {\n"
    "    size_t len; const double *x = pd_task_shared(t, &len);\n"
    "    if (!x) return pd_task_fail(t, \"this map has no shared data\");\n"
    "    const double *ab; size_t n;\n"
    "    if (pd_arg_doubles(t, &ab, &n) || n != 2) return pd_task_fail(t, \"want [from, to]\");\n"
    "    size_t from = (size_t) ab[0], to = (size_t) ab[1];\n"
    "    if (to > len / sizeof *x || from > to) return pd_task_fail(t, \"out of range\");\n"
    "    double s = 0; for (size_t i = from; i < to; i++) s += x[i];\n"
    "    return pd_out_double(t, s);\n"
    "}\n";

/* Lists the slot processes of worker pid (its children). */
static int s_children(pid_t parent, pid_t *out, int cap)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "pgrep -P %d", (int) parent);
    FILE *p = popen(cmd, "r");
    int n = 0;
    int pid;
    while (n < cap && fscanf(p, "%d", &pid) == 1)
        out[n++] = pid;
    pclose(p);
    return n;
}

Test(share, every_job_reads_the_shared_data_which_every_slot_maps_once)
{
    start(1, 2);
    enum { N = 200000, JOBS = 40 };
    double *x = malloc(N * sizeof *x);
    for (int i = 0; i < N; i++)
        x[i] = i % 1000;
    char shr[PD_HASH_HEX];
    cr_assert_eq(pd_shared_upload(c, x, N * sizeof *x, shr), 0, "%s", pd_client_error(c));
    char *path = pd_harness_module(&h, "slice.c", SHARED_SRC);
    char m2[PD_HASH_HEX];
    cr_assert_eq(pd_module_upload_file(c, path, m2), 0, "%s", pd_client_error(c));
    free(path);
    pd_buf_t args;
    pd_buf_init(&args);
    msgpack_packer pk;
    pd_packer_init(&pk, &args);
    for (int j = 0; j < JOBS; j++) {
        msgpack_pack_array(&pk, 2);
        msgpack_pack_double(&pk, j * (N / JOBS));
        msgpack_pack_double(&pk, (j + 1) * (N / JOBS));
    }
    uint64_t ids[JOBS];
    pd_result_t res[JOBS];
    pd_map_opts_t o = {.shared = shr};
    cr_assert_eq(pd_map(c, m2, "slice_sum", args.data, args.len, JOBS, &o, ids), JOBS,
                 "%s", pd_client_error(c));
    cr_assert_eq(pd_fetch(c, ids, JOBS, 60000, res, NULL, NULL), JOBS);
    double total = 0, want = 0;
    for (int i = 0; i < N; i++)
        want += x[i];
    for (int j = 0; j < JOBS; j++) {
        double y;
        cr_assert_eq(res[j].state, PD_JOB_DONE, "%s", res[j].error);
        cr_assert_eq(pd_result_double(&res[j], &y), 0);
        total += y;
    }
    cr_assert_float_eq(total, want, 1e-6);
    pd_results_clear(res, JOBS);

    /* The worker keeps one file; each slot process maps it read-only and shared. */
    char file[512];
    snprintf(file, sizeof file, "%s/cache/shared/%s", h.dir, shr);
    cr_assert_eq(access(file, R_OK), 0, "no %s", file);
    pid_t slots[8];
    int ns = s_children(h.workers[0], slots, 8);
    cr_assert_eq(ns, 2, "the worker has %d slot processes", ns);
    int mapped = 0;
    for (int i = 0; i < ns; i++) {
        char maps[64], line[1024];
        snprintf(maps, sizeof maps, "/proc/%d/maps", (int) slots[i]);
        FILE *f = fopen(maps, "r");
        cr_assert_not_null(f);
        while (fgets(line, sizeof line, f))
            if (strstr(line, shr)) {
                cr_assert(strstr(line, " r--s ") != NULL, "not read-only and shared: %s", line);
                mapped++;
            }
        fclose(f);
    }
    cr_assert_geq(mapped, 1, "no slot maps the shared data");
    cr_assert_leq(mapped, 2, "a slot mapped it more than once");

    /* A job of a map without shared data gets none. */
    double one[2] = {0, 1};
    uint64_t id;
    pd_result_t r;
    pd_buf_reset(&args);
    pd_packer_init(&pk, &args);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_double(&pk, one[0]);
    msgpack_pack_double(&pk, one[1]);
    cr_assert_eq(pd_map(c, m2, "slice_sum", args.data, args.len, 1, NULL, &id), 1);
    cr_assert_eq(pd_fetch(c, &id, 1, 30000, &r, NULL, NULL), 1);
    cr_assert_eq(r.state, PD_JOB_FAILED);
    cr_assert(strstr(r.error, "no shared data") != NULL, "%s", r.error);
    pd_results_clear(&r, 1);
    pd_buf_free(&args);
    free(x);
}

Test(share, shared_data_over_the_limit_is_refused_with_the_limit_named)
{
    const char *extra[] = {"--max-shared-mb", "1", NULL};
    pd_harness_start(&h, extra);
    pd_harness_add_worker(&h, 1);
    c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, 1);
    size_t n = (1u << 20) + 1;
    char *big = calloc(1, n);
    char shr[PD_HASH_HEX];
    cr_assert_eq(pd_shared_upload(c, big, n, shr), PD_ETOOBIG);
    cr_assert(strstr(pd_client_error(c), "at most 1 MiB") != NULL, "%s", pd_client_error(c));
    cr_assert_eq(pd_shared_upload(c, big, 0, shr), PD_EINVAL);
    free(big);

    char submit[1024], *out;
    snprintf(submit, sizeof submit, "%s", pd_harness_program("playdoh-submit"));
    char *mod_path = pd_harness_module(&h, "slice.c", SHARED_SRC);
    pd_harness_run(NULL, "head -c 2000000 /dev/zero > %s/big.bin", h.dir);
    int st = pd_harness_run(&out, "echo '[0,1]' | %s --broker %s map --shared %s/big.bin %s slice_sum 2>&1",
                 submit, h.endpoint, h.dir, mod_path);
    cr_assert_eq(st, 2, "%s", out);
    cr_assert(strstr(out, "big.bin") && strstr(out, "at most 1 MiB"), "%s", out);
    free(out);
    st = pd_harness_run(&out, "echo '[0,1]' | %s --broker %s map --shared %s/none.bin %s slice_sum 2>&1",
             submit, h.endpoint, h.dir, mod_path);
    cr_assert_eq(st, 2, "%s", out);
    cr_assert(strstr(out, "cannot read shared data") != NULL, "%s", out);
    free(out);
    /* Within the limit, through the command line. */
    pd_harness_run(NULL, "printf '\\000\\000\\000\\000\\000\\000\\360\\077' > %s/one.bin", h.dir); /* 1.0 */
    st = pd_harness_run(&out, "echo '[0,1]' | %s --broker %s map --shared %s/one.bin %s slice_sum", submit,
             h.endpoint, h.dir, mod_path);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_str_eq(out, "1.0\n");
    free(out);
    free(mod_path);
}

/* ---- modules of several files, init functions ----------------------- */

static const char *UTIL_H = "#ifndef UTIL_H\n#define UTIL_H\ndouble hyp(double a, double b);\n#endif\n";
static const char *UTIL_C = "#include <math.h>\n#include \"util.h\"\n"
                            "double hyp(double a, double b) { return sqrt(a * a + b * b); }\n";
static const char *MAIN_C =
    "#include <playdoh_task.h>\n#include <unistd.h>\n#include \"util.h\"\n"
    "static int inits; static double offset;\n"
    "PD_INIT(t) { inits++; double x = 0; pd_arg_double(t, &x); offset = OFFSET; (void) x; return 0; }\n"
    "/* [hyp(x, 4) + OFFSET, times pd_init ran in this process, pid] */\n"
    "PD_TASK(both, t) {\n"
    "    double x; if (pd_arg_double(t, &x)) return pd_task_fail(t, \"want a number\");\n"
    "    pd_out_array(t, 3); pd_out_double(t, hyp(x, 4) + offset); pd_out_int(t, inits);\n"
    "    return pd_out_int(t, getpid());\n"
    "}\n";

Test(share, a_module_of_several_files_with_flags_and_an_init_run_once_per_slot)
{
    start(1, 2);
    char *h_path = pd_harness_module(&h, "util.h", UTIL_H);
    char *u_path = pd_harness_module(&h, "util.c", UTIL_C);
    char *m_path = pd_harness_module(&h, "main.c", MAIN_C);
    const char *files[] = {m_path, u_path, h_path};
    const char *flags[] = {"-lm", "-O3", "-DOFFSET=100"};
    char m3[PD_HASH_HEX], again[PD_HASH_HEX];
    cr_assert_eq(pd_module_upload_files(c, files, 3, flags, 3, m3), 0, "%s", pd_client_error(c));
    const char *reordered[] = {h_path, m_path, u_path};
    cr_assert_eq(pd_module_upload_files(c, reordered, 3, flags, 3, again), 0);
    cr_assert_str_eq(m3, again, "the same files in another order are the same module");
    enum { N = 60 };
    double x[N];
    uint64_t ids[N];
    pd_result_t res[N];
    for (int i = 0; i < N; i++)
        x[i] = 3;
    cr_assert_eq(pd_map_doubles(c, m3, "both", x, N, NULL, ids), N, "%s", pd_client_error(c));
    cr_assert_eq(pd_fetch(c, ids, N, 60000, res, NULL, NULL), N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(res[i].state, PD_JOB_DONE, "%s", res[i].error);
        /* [105.0, 1, pid]: 0x93 0xcb <8 bytes> 0x01 ... */
        const uint8_t *p = res[i].value;
        uint64_t u = 0;
        for (int b = 0; b < 8; b++)
            u = u << 8 | p[2 + b];
        double y;
        memcpy(&y, &u, 8);
        cr_assert_float_eq(y, 105.0, 1e-9, "hyp(3, 4) + OFFSET");
        cr_assert_eq(p[10], 1, "pd_init ran %d times in a slot process", p[10]);
    }
    pd_results_clear(res, N);

    /* Flags outside the whitelist and a missing header: clear errors. */
    const char *bad[] = {"-L/usr/local/lib"};
    cr_assert_eq(pd_module_upload_files(c, files, 3, bad, 1, m3), PD_EINVAL);
    cr_assert(strstr(pd_client_error(c), "install the library") != NULL, "%s",
              pd_client_error(c));
    const char *no_header[] = {m_path, u_path};
    cr_assert_eq(pd_module_upload_files(c, no_header, 2, flags, 3, m3), 0);
    uint64_t id;
    pd_result_t r;
    cr_assert_eq(pd_map_doubles(c, m3, "both", x, 1, NULL, &id), 1);
    cr_assert_eq(pd_fetch(c, &id, 1, 60000, &r, NULL, NULL), PD_ECOMPILE);
    cr_assert_eq(r.code, PD_ECOMPILE, "%s", r.error);
    cr_assert(strstr(r.error, "main.c:3") != NULL, "the compiler names the file: %s", r.error);
    pd_results_clear(&r, 1);
    const char *missing[] = {m_path, "/nonexistent/x.c"};
    cr_assert_eq(pd_module_upload_files(c, missing, 2, NULL, 0, m3), PD_EIO);
    cr_assert(strstr(pd_client_error(c), "/nonexistent/x.c") != NULL, "%s", pd_client_error(c));
    free(h_path);
    free(u_path);
    free(m_path);
}

Test(share, a_failing_init_fails_the_module_s_jobs_with_its_message)
{
    start(1, 1);
    char *path = pd_harness_module(&h, "badinit.c",
                                   "#include <playdoh_task.h>\n"
                                   "PD_INIT(t) { return pd_task_fail(t, \"table file missing\"); }\n"
                                   "PD_TASK_DOUBLE(f, x) { return x; }\n");
    char m4[PD_HASH_HEX];
    cr_assert_eq(pd_module_upload_file(c, path, m4), 0);
    free(path);
    double x[3] = {1, 2, 3};
    uint64_t ids[3];
    pd_result_t res[3];
    cr_assert_eq(pd_map_doubles(c, m4, "f", x, 3, NULL, ids), 3);
    cr_assert_eq(pd_fetch(c, ids, 3, 60000, res, NULL, NULL), 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(res[i].state, PD_JOB_FAILED);
        cr_assert_eq(res[i].code, PD_ETASK);
        cr_assert(strstr(res[i].error, "pd_init failed") && strstr(res[i].error, "table file missing"),
                  "%s", res[i].error);
    }
    pd_results_clear(res, 3);
    /* pd_init is not a task. */
    uint64_t id;
    pd_result_t r;
    cr_assert_eq(pd_map_doubles(c, m4, "pd_init", x, 1, NULL, &id), 1);
    long got = pd_fetch(c, &id, 1, 60000, &r, NULL, NULL);
    cr_assert(got == 1 || got == PD_ENOFUNC, "%ld", got);
    cr_assert(r.code == PD_ENOFUNC || r.code == PD_ETASK, "%s", r.error);
    pd_results_clear(&r, 1);
}

Test(share, several_files_from_the_command_line)
{
    start(1, 2);
    char *h_path = pd_harness_module(&h, "util.h", UTIL_H);
    char *u_path = pd_harness_module(&h, "util.c", UTIL_C);
    char *m_path = pd_harness_module(&h, "main.c", MAIN_C);
    char submit[1024], *out;
    snprintf(submit, sizeof submit, "%s", pd_harness_program("playdoh-submit"));
    int st = pd_harness_run(&out, "echo 3 | %s --broker %s map %s,%s,%s,-lm,-DOFFSET=1 both", submit,
                 h.endpoint, m_path, u_path, h_path);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strncmp(out, "[6.0,1,", 7) == 0, "%s", out);
    free(out);
    st = pd_harness_run(&out, "echo 3 | %s --broker %s map %s,%s,-fplugin=evil.so both 2>&1", submit,
             h.endpoint, m_path, u_path);
    cr_assert_eq(st, 2, "%s", out);
    cr_assert(strstr(out, "compiler flag '-fplugin=evil.so' is not allowed") != NULL, "%s", out);
    free(out);
    free(h_path);
    free(u_path);
    free(m_path);
}

/* 250 MiB of shared data uploaded while the worker is busy: the broker
   hashes, stores and journals it off its loop and the worker writes it
   off its own, so heartbeats go on (no worker lost); a copy sent again is
   known by its hash (stored once); the jobs that need it run once it is
   on the worker. */
Test(share, a_250_mib_upload_with_a_busy_worker_loses_no_worker_and_is_stored_once,
     .timeout = 240)
{
    const char *extra[] = {"--max-shared-mb", "250", NULL};
    pd_harness_start_logged(&h, extra);
    pd_harness_add_worker(&h, 2);
    c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, 2);
    char *path = pd_harness_module(&h, "stamp.c", MODULE_SRC);
    cr_assert_eq(pd_module_upload_file(c, path, mod), 0, "%s", pd_client_error(c));
    free(path);
    /* Keep both slots busy meanwhile. */
    enum { BUSY = 40 };
    double ms[BUSY];
    uint64_t busy[BUSY];
    for (int i = 0; i < BUSY; i++)
        ms[i] = 150;
    cr_assert_eq(pd_map_doubles(c, mod, "stamp", ms, BUSY, NULL, busy), BUSY);
    size_t n = 250u << 20;
    double *x = malloc(n);
    cr_assert_not_null(x);
    size_t nd = n / sizeof *x;
    for (size_t i = 0; i < nd; i++)
        x[i] = (double) (i % 1000);
    char shr[PD_HASH_HEX], again[PD_HASH_HEX];
    cr_assert_eq(pd_shared_upload(c, x, n, shr), 0, "%s", pd_client_error(c));
    cr_assert_eq(pd_shared_upload(c, x, n, again), 0, "%s", pd_client_error(c));
    cr_assert_str_eq(shr, again);
    free(x);
    path = pd_harness_module(&h, "slice.c", SHARED_SRC);
    char m2[PD_HASH_HEX];
    cr_assert_eq(pd_module_upload_file(c, path, m2), 0, "%s", pd_client_error(c));
    free(path);
    double ab[2][2] = {{0, 1000}, {(double) nd - 1000, (double) nd}};
    pd_buf_t args;
    pd_buf_init(&args);
    msgpack_packer pk;
    pd_packer_init(&pk, &args);
    for (int j = 0; j < 2; j++) {
        msgpack_pack_array(&pk, 2);
        msgpack_pack_double(&pk, ab[j][0]);
        msgpack_pack_double(&pk, ab[j][1]);
    }
    uint64_t ids[2];
    pd_result_t res[2], bres[BUSY];
    pd_map_opts_t o = {.shared = shr};
    cr_assert_eq(pd_map(c, m2, "slice_sum", args.data, args.len, 2, &o, ids), 2, "%s",
                 pd_client_error(c));
    pd_buf_free(&args);
    cr_assert_eq(pd_fetch(c, ids, 2, 120000, res, NULL, NULL), 2, "%s", pd_client_error(c));
    for (int j = 0; j < 2; j++) {
        double y;
        cr_assert_eq(res[j].state, PD_JOB_DONE, "%s", res[j].error);
        cr_assert_eq(pd_result_double(&res[j], &y), 0);
        cr_assert_eq(y, 999.0 * 1000 / 2, "slice %d: %g", j, y);
    }
    pd_results_clear(res, 2);
    cr_assert_eq(pd_fetch(c, busy, BUSY, 60000, bres, NULL, NULL), BUSY, "%s", pd_client_error(c));
    for (int i = 0; i < BUSY; i++)
        cr_assert_eq(bres[i].state, PD_JOB_DONE, "%s", bres[i].error);
    pd_results_clear(bres, BUSY);
    cr_assert_not(pd_harness_log_has(&h, "broker.log", " lost (silent for", 0),
                  "the worker was declared lost during the upload");
    /* Stored once: one line says so. */
    char stored[160];
    snprintf(stored, sizeof stored, "shared data %.12s (%zu bytes) stored", shr, n);
    int times = pd_harness_log_count(&h, "broker.log", stored);
    cr_assert_eq(times, 1, "stored %d times", times);
}
