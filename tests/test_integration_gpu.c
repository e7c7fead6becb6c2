/*  Integration tests of GPU slots: a real broker and real workers on
    loopback, driven through libplaydoh-client and playdoh-submit.

    Without a GPU, the workers load tests/pd_fake_libcuda.c as their CUDA
    driver (PLAYDOH_LIBCUDA, inherited from this process): it lists devices
    and keeps "device" memory in host memory but runs no kernel. That is
    enough to test, end to end, what Playdoh does around the driver: GPU
    slots offered and described, placement of GPU jobs on GPU slots only,
    each slot seeing only its device, the refusal of GPU jobs by a cluster
    without GPUs, a slot restarted after a CUDA error, and CUDA modules
    compiled by the real NVRTC (skipped where it is not installed) with a
    compile error coming back to the submitter. The last test runs the
    Rastrigin example's kernels on a real GPU and skips, saying so, where
    there is none.
*/
#include "pd_codec.h"
#include "pd_harness.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *MODULE_SRC =
    "#include <playdoh_task.h>\n"
    "#include <stdlib.h>\n"
    "#include <time.h>\n"
    "#include <unistd.h>\n"
    "static void nap(void) { struct timespec ts = {0, 20000000}; nanosleep(&ts, NULL); }\n"
    "/* [gpu, slot, CUDA_VISIBLE_DEVICES] */\n"
    "PD_TASK(where, t) {\n"
    "    nap();\n"
    "    const char *v = getenv(\"CUDA_VISIBLE_DEVICES\");\n"
    "    pd_out_array(t, 3);\n"
    "    pd_out_int(t, pd_task_gpu(t));\n"
    "    pd_out_int(t, pd_task_slot(t));\n"
    "    return pd_out_str(t, v ? v : \"(unset)\");\n"
    "}\n"
    "PD_TASK(pid, t) { return pd_out_int(t, getpid()); }\n"
    "/* [gpu, the shared data's length] */\n"
    "PD_TASK(shared_len, t) {\n"
    "    size_t len = 0;\n"
    "    pd_task_shared(t, &len);\n"
    "    pd_out_array(t, 2);\n"
    "    pd_out_int(t, pd_task_gpu(t));\n"
    "    return pd_out_int(t, (int64_t) len);\n"
    "}\n"
    "PD_TASK(mem, t) {\n"
    "    double x[4] = {1.5, 2.5, 3.5, 4.5}, y[4] = {0};\n"
    "    pd_cuda_ptr_t p = pd_cuda_alloc(t, sizeof x);\n"
    "    if (!p || pd_cuda_copy_to_device(t, p, x, sizeof x) ||\n"
    "        pd_cuda_copy_to_host(t, y, p, sizeof y)) return -1;\n"
    "    return pd_out_doubles(t, y, 4);\n"
    "}\n"
    "/* A CUDA error that leaves the context unusable (the fake driver's\n"
    "   cuMemAlloc fails with CUDA_ERROR_ILLEGAL_ADDRESS in this process;\n"
    "   3 MiB, so that the block `mem` freed is not reused). */\n"
    "PD_TASK(breaker, t) {\n"
    "    setenv(\"PD_FAKE_CUDA_ALLOC_FAIL\", \"700\", 1);\n"
    "    return pd_cuda_alloc(t, 3u << 20) ? pd_out_nil(t) : -1;\n"
    "}\n"
    "/* A node of a synchronous task: [gpu, CUDA_VISIBLE_DEVICES, what went to\n"
    "   the device and back] (the copy only on a GPU node). */\n"
    "PD_TASK(gnode, t) {\n"
    "    const char *v = getenv(\"CUDA_VISIBLE_DEVICES\");\n"
    "    double x = 10 + pd_node_index(t), y = -1;\n"
    "    if (pd_task_gpu(t) >= 0) {\n"
    "        pd_cuda_ptr_t p = pd_cuda_alloc(t, sizeof x);\n"
    "        if (!p || pd_cuda_copy_to_device(t, p, &x, sizeof x) ||\n"
    "            pd_cuda_copy_to_host(t, &y, p, sizeof y)) return -1;\n"
    "    }\n"
    "    pd_out_array(t, 3);\n"
    "    pd_out_int(t, pd_task_gpu(t));\n"
    "    pd_out_str(t, v ? v : \"(unset)\");\n"
    "    return pd_out_double(t, y);\n"
    "}\n"
    "PD_TASK(kern, t) {\n"
    "    pd_cuda_kernel_t *k = pd_cuda_kernel(t, pd_cuda_module(t), \"twice\");\n"
    "    return k ? pd_out_nil(t) : -1;\n"
    "}\n";

static const char *GOOD_CU =
    "extern \"C\" __global__ void twice(double *x, int n)\n"
    "{\n"
    "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "    if (i < n) x[i] *= 2;\n"
    "}\n";

static const char *BAD_CU =
    "extern \"C\" __global__ void twice(double *x, int n)\n"
    "{\n"
    "    x[0] = y;\n"
    "}\n";

static pd_harness_t h;
static pd_client_t *c;
static char mod[PD_HASH_HEX];

static void stop(void)
{
    pd_client_destroy(&c);
    pd_harness_stop(&h);
}

TestSuite(integration_gpu, .fini = stop, .timeout = 180);

static const char *s_fake(void)
{
    const char *p = getenv("PD_FAKE_LIBCUDA");
    cr_assert(p && *p, "PD_FAKE_LIBCUDA is not set (meson sets it to the built fake driver)");
    return p;
}

/* A cluster of one worker with cpus CPU slots and the given extra flags,
   waiting for want slots in all; uploads MODULE_SRC as gputest.c. */
static void start(int cpus, const char *const *extra, int want)
{
    pd_harness_start(&h, NULL);
    pd_harness_add_worker_with(&h, cpus, extra);
    c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, want);
    char *path = pd_harness_module(&h, "gputest.c", MODULE_SRC);
    cr_assert_eq(pd_module_upload_file(c, path, mod), 0, "%s", pd_client_error(c));
    free(path);
}

/* Maps fn over n numbers with opts and fetches the results (60 s). */
static void run(const char *fn, size_t n, const pd_map_opts_t *opts, pd_result_t *res)
{
    double x[64];
    uint64_t ids[64];
    cr_assert(n <= 64);
    for (size_t i = 0; i < n; i++)
        x[i] = (double) i;
    cr_assert_eq(pd_map_doubles(c, mod, fn, x, n, opts, ids), (long) n, "%s",
                 pd_client_error(c));
    /* A module failure (a .cu that does not compile) comes as the fetch's
       code, with every result filled all the same. */
    long got = pd_fetch(c, ids, n, 60000, res, NULL, NULL);
    cr_assert(got == (long) n || got == PD_ECOMPILE || got == PD_ENOFUNC, "%ld: %s", got,
              pd_client_error(c));
}

/* Reads a `where` result: [gpu, slot, visible]. */
static void s_where(const pd_result_t *r, int64_t *gpu, int64_t *slot, char *vis, size_t cap)
{
    cr_assert_eq(r->state, PD_JOB_DONE, "job %llu: %s", (unsigned long long) r->id,
                 r->error ? r->error : "not done");
    pd_rd_t rd;
    pd_rd_init(&rd, r->value, r->len);
    uint32_t n;
    cr_assert_eq(pd_rd_array(&rd, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(pd_rd_int(&rd, gpu), 0);
    cr_assert_eq(pd_rd_int(&rd, slot), 0);
    cr_assert_eq(pd_rd_strcpy(&rd, vis, cap), 0);
}

/* Runs a shell command, its output into <dir>/out; returns the exit status. */
static int s_sh(const char *cmd, char *out, size_t cap)
{
    char full[2048], path[300];
    snprintf(path, sizeof path, "%s/out", h.dir);
    snprintf(full, sizeof full, "%s > '%s' 2>&1", cmd, path);
    int st = system(full);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t got = fread(out, 1, cap - 1, f);
    out[got] = 0;
    fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(integration_gpu, a_cluster_without_gpus_refuses_gpu_jobs_with_a_clear_error)
{
    setenv("PLAYDOH_LIBCUDA", "/nonexistent/libcuda.so.1", 1); /* no GPU, even on a GPU machine */
    start(1, NULL, 1);
    int gpus = -1;
    cr_assert_eq(pd_client_cluster_gpus(c, &gpus), 0);
    cr_assert_eq(gpus, 0);
    double x = 1;
    uint64_t id;
    pd_map_opts_t o = {.gpu = true};
    cr_assert_eq(pd_map_doubles(c, mod, "where", &x, 1, &o, &id), PD_ENOGPU);
    cr_assert(strstr(pd_client_error(c), "no worker of this cluster has offered a GPU since the "
                                         "broker started"), "%s", pd_client_error(c));
    /* The command line says the same and exits 3 (the broker refused). */
    char cmd[1024], out[4096];
    char *path = pd_harness_module(&h, "where.c", MODULE_SRC);
    snprintf(cmd, sizeof cmd, "echo 1 | '%s' --broker %s map --gpu '%s' where",
             pd_harness_program("playdoh-submit"), h.endpoint, path);
    free(path);
    cr_assert_eq(s_sh(cmd, out, sizeof out), 3, "%s", out);
    cr_assert(strstr(out, "no worker of this cluster has offered a GPU"), "%s", out);
    /* CPU jobs still run, and see no GPU. */
    pd_result_t r;
    run("where", 1, NULL, &r);
    int64_t gpu, slot;
    char vis[32];
    s_where(&r, &gpu, &slot, vis, sizeof vis);
    cr_assert_eq(gpu, -1);
    cr_assert_str_eq(vis, "");
    pd_results_clear(&r, 1);
}

Test(integration_gpu, gpu_jobs_run_on_gpu_slots_that_see_only_their_own_device)
{
    setenv("PLAYDOH_LIBCUDA", s_fake(), 1);
    setenv("PD_FAKE_CUDA_DEVICES", "3", 1);
    unsetenv("CUDA_VISIBLE_DEVICES");
    const char *flags[] = {"--gpus", "2", NULL}; /* 2 of the 3 */
    start(2, flags, 4);
    int gpus = 0;
    cr_assert_eq(pd_client_cluster_gpus(c, &gpus), 0);
    cr_assert_eq(gpus, 2);
    enum { N = 16 };
    pd_result_t res[N];
    run("where", N, NULL, res);
    for (int i = 0; i < N; i++) {
        int64_t gpu, slot;
        char vis[32];
        s_where(&res[i], &gpu, &slot, vis, sizeof vis);
        cr_assert_eq(gpu, -1, "a CPU job ran on GPU %lld", (long long) gpu);
        cr_assert(slot == 0 || slot == 1, "a CPU job ran on slot %lld", (long long) slot);
        cr_assert_str_eq(vis, "", "CPU slots see no GPU");
    }
    pd_results_clear(res, N);
    pd_map_opts_t o = {.gpu = true};
    run("where", N, &o, res);
    int used[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        int64_t gpu, slot;
        char vis[32], want[8];
        s_where(&res[i], &gpu, &slot, vis, sizeof vis);
        cr_assert(gpu == 0 || gpu == 1, "a GPU job ran with pd_task_gpu %lld", (long long) gpu);
        cr_assert_eq(slot, 4096 + gpu, "GPU %lld is slot %lld (GPU slots are numbered from "
                     "4096)", (long long) gpu, (long long) slot);
        snprintf(want, sizeof want, "%lld", (long long) gpu);
        cr_assert_str_eq(vis, want, "GPU slot %lld sees CUDA_VISIBLE_DEVICES=%s", (long long) gpu,
                         vis);
        used[gpu]++;
    }
    cr_assert(used[0] > 0 && used[1] > 0, "jobs spread over both GPUs (%d, %d)", used[0], used[1]);
    pd_results_clear(res, N);
}

Test(integration_gpu, a_gpu_job_reads_the_maps_shared_data)
{
    setenv("PLAYDOH_LIBCUDA", s_fake(), 1);
    setenv("PD_FAKE_CUDA_DEVICES", "1", 1);
    unsetenv("CUDA_VISIBLE_DEVICES");
    start(1, NULL, 2);
    static char blob[100000];
    memset(blob, 7, sizeof blob);
    char shr[PD_HASH_HEX];
    cr_assert_eq(pd_shared_upload(c, blob, sizeof blob, shr), 0, "%s", pd_client_error(c));
    pd_map_opts_t o = {.gpu = true, .shared = shr};
    enum { N = 4 };
    pd_result_t res[N];
    run("shared_len", N, &o, res);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(res[i].state, PD_JOB_DONE, "%s", res[i].error ? res[i].error : "");
        pd_rd_t rd;
        pd_rd_init(&rd, res[i].value, res[i].len);
        uint32_t two;
        int64_t gpu, len;
        cr_assert_eq(pd_rd_array(&rd, &two), 0);
        cr_assert_eq(pd_rd_int(&rd, &gpu), 0);
        cr_assert_eq(pd_rd_int(&rd, &len), 0);
        cr_assert_eq(gpu, 0, "the job ran on a CPU slot");
        cr_assert_eq(len, (int64_t) sizeof blob);
    }
    pd_results_clear(res, N);
}

Test(integration_gpu, gpu_slots_follow_the_workers_own_cuda_visible_devices)
{
    setenv("PLAYDOH_LIBCUDA", s_fake(), 1);
    setenv("PD_FAKE_CUDA_DEVICES", "3", 1);
    setenv("CUDA_VISIBLE_DEVICES", "2,0", 1); /* as under Slurm: the worker got devices 2 and 0 */
    start(1, NULL, 3);
    unsetenv("CUDA_VISIBLE_DEVICES");
    enum { N = 12 };
    pd_result_t res[N];
    pd_map_opts_t o = {.gpu = true};
    run("where", N, &o, res);
    for (int i = 0; i < N; i++) {
        int64_t gpu, slot;
        char vis[32];
        s_where(&res[i], &gpu, &slot, vis, sizeof vis);
        cr_assert(gpu == 0 || gpu == 1);
        cr_assert_str_eq(vis, gpu == 0 ? "2" : "0", "the worker's GPU %lld is device %s",
                         (long long) gpu, vis);
    }
    pd_results_clear(res, N);
}

Test(integration_gpu, device_memory_works_and_a_broken_context_restarts_the_slot)
{
    setenv("PLAYDOH_LIBCUDA", s_fake(), 1);
    setenv("PD_FAKE_CUDA_DEVICES", "1", 1);
    unsetenv("CUDA_VISIBLE_DEVICES");
    start(1, NULL, 2);
    pd_map_opts_t o = {.gpu = true};
    pd_result_t r;
    run("mem", 1, &o, &r);
    cr_assert_eq(r.state, PD_JOB_DONE, "%s", r.error ? r.error : "");
    pd_rd_t rd;
    pd_rd_init(&rd, r.value, r.len);
    uint32_t n;
    cr_assert_eq(pd_rd_array(&rd, &n), 0);
    cr_assert_eq(n, 4);
    for (int i = 0; i < 4; i++) {
        double y;
        cr_assert_eq(pd_rd_double(&rd, &y), 0);
        cr_assert_float_eq(y, 1.5 + i, 1e-12, "copied to the device and back");
    }
    pd_results_clear(&r, 1);
    run("pid", 1, &o, &r);
    int64_t before = 0;
    pd_rd_init(&rd, r.value, r.len);
    cr_assert_eq(pd_rd_int(&rd, &before), 0);
    pd_results_clear(&r, 1);
    run("breaker", 1, &o, &r);
    cr_assert_eq(r.state, PD_JOB_FAILED);
    cr_assert_eq(r.code, PD_ECUDA, "%s", pd_strerror(r.code));
    cr_assert(strstr(r.error, "pd_cuda_alloc of 3 MiB on GPU 0: cuMemAlloc: "
                              "CUDA_ERROR_ILLEGAL_ADDRESS"), "%s", r.error);
    pd_results_clear(&r, 1);
    /* The slot process was replaced: a new pid, and memory works again. */
    run("pid", 1, &o, &r);
    int64_t after = 0;
    pd_rd_init(&rd, r.value, r.len);
    cr_assert_eq(pd_rd_int(&rd, &after), 0);
    cr_assert_neq(after, before, "the GPU slot was not restarted after the CUDA error");
    pd_results_clear(&r, 1);
    run("mem", 1, &o, &r);
    cr_assert_eq(r.state, PD_JOB_DONE, "%s", r.error ? r.error : "");
    pd_results_clear(&r, 1);
}

/* Skips the test when the job's error says the worker has no NVRTC. */
static void s_need_nvrtc(const pd_result_t *r)
{
    if (r->state == PD_JOB_FAILED && r->error && strstr(r->error, "NVRTC (libnvrtc.so"))
        cr_skip_test("no NVRTC on this machine, CUDA modules not compiled: %s", r->error);
}

Test(integration_gpu, a_cuda_compile_error_reaches_the_submitter_with_nvrtcs_log)
{
    setenv("PLAYDOH_LIBCUDA", s_fake(), 1);
    setenv("PD_FAKE_CUDA_DEVICES", "1", 1);
    unsetenv("CUDA_VISIBLE_DEVICES");
    start(1, NULL, 2);
    char cu[PD_HASH_HEX];
    cr_assert_eq(pd_module_upload(c, "bad.cu", PD_MODULE_CU, BAD_CU, strlen(BAD_CU), cu), 0, "%s",
                 pd_client_error(c));
    pd_map_opts_t o = {.cuda = cu}; /* implies a GPU */
    pd_result_t r;
    run("kern", 1, &o, &r);
    s_need_nvrtc(&r);
    cr_assert_eq(r.state, PD_JOB_FAILED);
    cr_assert_eq(r.code, PD_ECOMPILE, "%s: %s", pd_strerror(r.code), r.error);
    cr_assert(strstr(r.error, "module bad.cu: CUDA compile error (NVRTC "), "%s", r.error);
    cr_assert(strstr(r.error, "compute_86"), "compiled for the device's architecture: %s",
              r.error);
    cr_assert(strstr(r.error, "bad.cu(3): error: identifier \"y\" is undefined"), "%s", r.error);
    pd_results_clear(&r, 1);
    /* The command line finds kern.cu beside kern.c with --gpu, and prints
       the log in the job's error. */
    char *cpath = pd_harness_module(&h, "kern.c", MODULE_SRC);
    /* Other bytes than bad.cu's, or the broker would know the module by
       that name already (modules are content-addressed). */
    char kern_cu[512];
    snprintf(kern_cu, sizeof kern_cu, "// kern.cu\n%s", BAD_CU);
    char *cupath = pd_harness_module(&h, "kern.cu", kern_cu);
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd, "echo 1 | '%s' --broker %s map --gpu '%s' kern",
             pd_harness_program("playdoh-submit"), h.endpoint, cpath);
    cr_assert_eq(s_sh(cmd, out, sizeof out), 2, "a module that does not compile: %s", out);
    cr_assert(strstr(out, "kern.cu(4): error: identifier \"y\" is undefined"), "%s", out);
    free(cpath);
    free(cupath);
}

Test(integration_gpu, a_cuda_module_is_compiled_for_the_gpu_and_cached)
{
    setenv("PLAYDOH_LIBCUDA", s_fake(), 1);
    setenv("PD_FAKE_CUDA_DEVICES", "1", 1);
    unsetenv("CUDA_VISIBLE_DEVICES");
    start(1, NULL, 2);
    char cu[PD_HASH_HEX];
    cr_assert_eq(pd_module_upload(c, "good.cu", PD_MODULE_CU, GOOD_CU, strlen(GOOD_CU), cu), 0);
    pd_map_opts_t o = {.cuda = cu};
    pd_result_t r;
    run("kern", 1, &o, &r);
    s_need_nvrtc(&r);
    /* The PTX compiled; the stand-in driver cannot load it, and says so. */
    cr_assert_eq(r.code, PD_ECUDA, "%s: %s", pd_strerror(r.code), r.error ? r.error : "");
    cr_assert(strstr(r.error, "module good.cu: the driver cannot load its PTX (compute_86): "
                              "cuModuleLoadData: CUDA_ERROR_NOT_SUPPORTED"), "%s", r.error);
    pd_results_clear(&r, 1);
    char cmd[1024], out[1024];
    snprintf(cmd, sizeof cmd, "ls '%s/cache/ptx'", h.dir);
    cr_assert_eq(s_sh(cmd, out, sizeof out), 0);
    char want[100];
    snprintf(want, sizeof want, "%s-compute_86-nvrtc", cu);
    cr_assert(strstr(out, want), "no cached PTX for %s: %s", cu, out);
}

Test(integration_gpu, a_worker_refuses_more_gpus_than_it_has)
{
    pd_harness_start(&h, NULL);
    char cmd[1024], out[4096];
    snprintf(cmd, sizeof cmd, "PLAYDOH_LIBCUDA='%s' PD_FAKE_CUDA_DEVICES=2 '%s' --broker %s "
             "--gpus 3 --cache '%s/c'", s_fake(), pd_harness_program("playdoh-worker"),
             h.endpoint, h.dir);
    cr_assert_eq(s_sh(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "--gpus 3: this machine has only 2 GPUs usable through the CUDA "
                          "driver: lower --gpus to 2 or less"), "%s", out);
    snprintf(cmd, sizeof cmd, "PLAYDOH_LIBCUDA=/nonexistent/libcuda.so.1 '%s' --broker %s "
             "--gpus 1 --cache '%s/c'", pd_harness_program("playdoh-worker"), h.endpoint, h.dir);
    cr_assert_eq(s_sh(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "--gpus 1: this machine has no GPU usable through the CUDA driver (no "
                          "CUDA driver: /nonexistent/libcuda.so.1"), "%s", out);
}

Test(integration_gpu, the_owner_lowers_and_raises_the_gpus_and_the_cluster_view_shows_them)
{
    setenv("PLAYDOH_LIBCUDA", s_fake(), 1);
    setenv("PD_FAKE_CUDA_DEVICES", "2", 1);
    unsetenv("CUDA_VISIBLE_DEVICES");
    start(1, NULL, 3);
    pd_cluster_info_t ci;
    cr_assert_eq(pd_cluster_info(c, &ci), 0, "%s", pd_client_error(c));
    cr_assert_eq(ci.nworkers, 1);
    cr_assert_eq(ci.workers[0].gpus, 2);
    cr_assert_str_eq(ci.workers[0].gpu_names, "Fake GPU 0, Fake GPU 1");
    cr_assert_eq(ci.workers[0].gpu_mem, 3ull << 30, "1 GiB + 2 GiB offered");
    pd_cluster_info_clear(&ci);
    /* The owner keeps GPU 1 for herself. */
    char cmd[1024], out[4096], ctl[300];
    snprintf(ctl, sizeof ctl, "%s/worker0.ctl", h.dir);
    snprintf(cmd, sizeof cmd, "'%s' ctl --control '%s' --gpus 1",
             pd_harness_program("playdoh-worker"), ctl);
    cr_assert_eq(s_sh(cmd, out, sizeof out), 0, "%s", out);
    int gpus = 2;
    for (int i = 0; i < 200 && gpus != 1; i++) {
        cr_assert_eq(pd_client_cluster_gpus(c, &gpus), 0);
        if (gpus != 1)
            usleep(20000);
    }
    cr_assert_eq(gpus, 1, "the broker still counts %d GPU slots", gpus);
    cr_assert_eq(pd_cluster_info(c, &ci), 0);
    cr_assert_eq(ci.workers[0].gpu_mem, 1ull << 30, "only GPU 0 is offered now");
    pd_cluster_info_clear(&ci);
    enum { N = 8 };
    pd_result_t res[N];
    pd_map_opts_t o = {.gpu = true};
    run("where", N, &o, res);
    for (int i = 0; i < N; i++) {
        int64_t gpu, slot;
        char vis[32];
        s_where(&res[i], &gpu, &slot, vis, sizeof vis);
        cr_assert_eq(gpu, 0, "a GPU job ran on GPU %lld, which the owner took back",
                     (long long) gpu);
    }
    pd_results_clear(res, N);
    /* More than the machine has is refused, and says how many it has. */
    snprintf(cmd, sizeof cmd, "'%s' ctl --control '%s' --gpus 3",
             pd_harness_program("playdoh-worker"), ctl);
    cr_assert_neq(s_sh(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "this machine has 2 GPUs usable through the CUDA driver, not 3"), "%s",
              out);
    /* Both again. */
    snprintf(cmd, sizeof cmd, "'%s' ctl --control '%s' --gpus 2",
             pd_harness_program("playdoh-worker"), ctl);
    cr_assert_eq(s_sh(cmd, out, sizeof out), 0, "%s", out);
    for (int i = 0; i < 200 && gpus != 2; i++) {
        cr_assert_eq(pd_client_cluster_gpus(c, &gpus), 0);
        if (gpus != 2)
            usleep(20000);
    }
    cr_assert_eq(gpus, 2);
}

/* ---- on a real GPU ---------------------------------------------------------- */

/* Packs one population of n points in dim dimensions as a job argument. */
static void s_pack_population(pd_buf_t *b, int n, int dim)
{
    msgpack_packer pk;
    pd_packer_init(&pk, b);
    msgpack_pack_array(&pk, (uint32_t) n);
    for (int i = 0; i < n; i++) {
        msgpack_pack_array(&pk, (uint32_t) dim);
        for (int d = 0; d < dim; d++)
            msgpack_pack_double(&pk, -5.12 + 10.24 * (((i * 31 + d * 7) % 97) / 97.0));
    }
}

/* The doubles of a done job's array result, into out (cap). */
static size_t s_doubles(const pd_result_t *r, double *out, size_t cap)
{
    cr_assert_eq(r->state, PD_JOB_DONE, "%s", r->error ? r->error : "not done");
    pd_rd_t rd;
    pd_rd_init(&rd, r->value, r->len);
    uint32_t n;
    cr_assert_eq(pd_rd_array(&rd, &n), 0);
    cr_assert(n <= cap);
    for (uint32_t i = 0; i < n; i++)
        cr_assert_eq(pd_rd_double(&rd, &out[i]), 0);
    return n;
}

/* A cluster of one worker with cpus CPU slots and the machine's real GPUs,
   with the Rastrigin example uploaded (mod, and its kernels into cu); skips
   the test, saying what was not run, where there is no GPU. Returns the
   GPU slots. */
static int s_start_real_gpu(int cpus, char cu[PD_HASH_HEX], const char *not_run)
{
    unsetenv("PLAYDOH_LIBCUDA");
    unsetenv("CUDA_VISIBLE_DEVICES");
    pd_harness_start(&h, NULL);
    pd_harness_add_worker(&h, cpus);
    c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, cpus);
    int gpus = 0;
    cr_assert_eq(pd_client_cluster_gpus(c, &gpus), 0);
    if (gpus == 0)
        cr_skip_test("no CUDA GPU on this machine (the worker offered none: see its log): %s",
                     not_run);
    const char *dir = getenv("PD_EXAMPLES_DIR");
    cr_assert(dir);
    char path[512], cupath[512];
    snprintf(path, sizeof path, "%s/gpu/rastrigin.c", dir);
    snprintf(cupath, sizeof cupath, "%s/gpu/rastrigin.cu", dir);
    cr_assert_eq(pd_module_upload_file(c, path, mod), 0, "%s", pd_client_error(c));
    cr_assert_eq(pd_module_upload_file(c, cupath, cu), 0, "%s", pd_client_error(c));
    return gpus;
}

Test(integration_gpu, the_rastrigin_example_gives_the_same_fitness_on_cpu_and_gpu)
{
    char cu[PD_HASH_HEX];
    s_start_real_gpu(1, cu, "the example's kernels were not run");
    enum { N = 3000, D = 7 };
    pd_buf_t b;
    pd_buf_init(&b);
    s_pack_population(&b, N, D);
    uint64_t ids[2];
    pd_map_opts_t o = {.cuda = cu};
    cr_assert_eq(pd_map(c, mod, "rastrigin_cpu", b.data, b.len, 1, NULL, &ids[0]), 1);
    cr_assert_eq(pd_map(c, mod, "rastrigin_gpu", b.data, b.len, 1, &o, &ids[1]), 1, "%s",
                 pd_client_error(c));
    pd_buf_free(&b);
    pd_result_t res[2];
    cr_assert_eq(pd_fetch(c, ids, 2, 120000, res, NULL, NULL), 2);
    static double cpu[N], gpu[N];
    cr_assert_eq(s_doubles(&res[0], cpu, N), N);
    cr_assert_eq(s_doubles(&res[1], gpu, N), N);
    for (int i = 0; i < N; i++)
        cr_assert(fabs(cpu[i] - gpu[i]) <= 1e-9 * (1 + fabs(cpu[i])), "individual %d: CPU %.17g, "
                  "GPU %.17g", i, cpu[i], gpu[i]);
    pd_results_clear(res, 2);
    /* The generated populations agree too. */
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, 42);
    msgpack_pack_uint64(&pk, 0);
    msgpack_pack_uint64(&pk, 100000);
    msgpack_pack_uint64(&pk, 10);
    cr_assert_eq(pd_map(c, mod, "rastrigin_gen_cpu", b.data, b.len, 1, NULL, &ids[0]), 1);
    cr_assert_eq(pd_map(c, mod, "rastrigin_gen_gpu", b.data, b.len, 1, &o, &ids[1]), 1);
    pd_buf_free(&b);
    cr_assert_eq(pd_fetch(c, ids, 2, 120000, res, NULL, NULL), 2);
    double a[2], g[2];
    cr_assert_eq(s_doubles(&res[0], a, 2), 2);
    cr_assert_eq(s_doubles(&res[1], g, 2), 2);
    cr_assert(fabs(a[0] - g[0]) <= 1e-9 * (1 + fabs(a[0])), "min: CPU %.17g, GPU %.17g", a[0], g[0]);
    cr_assert(fabs(a[1] - g[1]) <= 1e-9 * fabs(a[1]), "sum: CPU %.17g, GPU %.17g", a[1], g[1]);
    pd_results_clear(res, 2);
}

/* ---- synchronous tasks and optimisations on GPU slots --------------------- */

/* Starts fn of the module on n nodes (no tubes) with opts; returns the rc. */
static int s_task(const char *fn, int n, const pd_task_opts_t *opts, uint64_t *id)
{
    pd_graph_t *g = pd_graph_new(n);
    cr_assert_not_null(g);
    int rc = pd_task_start(c, mod, fn, g, NULL, 0, opts, id);
    pd_graph_destroy(&g);
    return rc;
}

/* Reads a `gnode` result: [gpu, CUDA_VISIBLE_DEVICES, the value copied
   through the device (-1 on a CPU node)]. */
static void s_gnode(const pd_result_t *r, int64_t *gpu, char *vis, size_t cap, double *y)
{
    pd_rd_t rd;
    uint32_t k;
    pd_rd_init(&rd, r->value, r->len);
    cr_assert_eq(pd_rd_array(&rd, &k), 0);
    cr_assert_eq(k, 3);
    cr_assert_eq(pd_rd_int(&rd, gpu), 0);
    cr_assert_eq(pd_rd_strcpy(&rd, vis, cap), 0);
    cr_assert_eq(pd_rd_double(&rd, y), 0);
}

Test(integration_gpu, a_gpu_task_gives_each_node_a_gpu_of_its_own)
{
    setenv("PLAYDOH_LIBCUDA", s_fake(), 1);
    setenv("PD_FAKE_CUDA_DEVICES", "2", 1);
    unsetenv("CUDA_VISIBLE_DEVICES");
    start(2, NULL, 4);
    pd_task_opts_t o = {.gpu = true};
    uint64_t id;
    cr_assert_eq(s_task("gnode", 2, &o, &id), 0, "%s", pd_client_error(c));
    pd_task_result_t res;
    cr_assert_eq(pd_task_fetch(c, id, 60000, &res), 0, "%s", pd_client_error(c));
    cr_assert_eq(res.state, PD_TASK_DONE, "%s", res.error ? res.error : "");
    bool seen[2] = {false, false};
    for (int i = 0; i < 2; i++) {
        int64_t gpu;
        char vis[32];
        double y;
        s_gnode(&res.nodes[i], &gpu, vis, sizeof vis, &y);
        cr_assert(gpu == 0 || gpu == 1, "node %d on GPU %lld", i, (long long) gpu);
        cr_assert_not(seen[gpu], "two nodes on GPU %lld", (long long) gpu);
        seen[gpu] = true;
        char want[8];
        snprintf(want, sizeof want, "%lld", (long long) gpu);
        cr_assert_str_eq(vis, want, "node %d sees only its GPU", i);
        cr_assert_float_eq(y, 10.0 + i, 1e-12, "device memory on node %d", i);
    }
    pd_task_result_clear(&res);
    /* CPU nodes see no GPU, as CPU slots. */
    cr_assert_eq(s_task("gnode", 2, NULL, &id), 0, "%s", pd_client_error(c));
    cr_assert_eq(pd_task_fetch(c, id, 60000, &res), 0);
    cr_assert_eq(res.state, PD_TASK_DONE, "%s", res.error ? res.error : "");
    for (int i = 0; i < 2; i++) {
        int64_t gpu;
        char vis[32];
        double y;
        s_gnode(&res.nodes[i], &gpu, vis, sizeof vis, &y);
        cr_assert_eq(gpu, -1);
        cr_assert_str_eq(vis, "", "a CPU node sees CUDA_VISIBLE_DEVICES empty");
    }
    pd_task_result_clear(&res);
    /* More GPU nodes than GPUs: refused at once, saying how many there are. */
    cr_assert_eq(s_task("gnode", 3, &o, &id), PD_ENOSLOTS);
    cr_assert(strstr(pd_client_error(c), "3 GPU nodes but the cluster offers only 2 GPU slots"),
              "%s", pd_client_error(c));
}

Test(integration_gpu, a_cluster_without_gpus_refuses_gpu_tasks_with_a_clear_error)
{
    setenv("PLAYDOH_LIBCUDA", "/nonexistent/libcuda.so.1", 1);
    start(2, NULL, 2);
    pd_task_opts_t o = {.gpu = true};
    uint64_t id;
    cr_assert_eq(s_task("gnode", 1, &o, &id), PD_ENOGPU);
    cr_assert(strstr(pd_client_error(c), "no worker of this cluster has offered a GPU"), "%s",
              pd_client_error(c));
    /* The command line's task and optimize say the same and exit 3. */
    char cmd[1024], out[4096];
    char *path = pd_harness_module(&h, "gnode.c", MODULE_SRC);
    snprintf(cmd, sizeof cmd, "'%s' --broker %s task --gpu --nodes 1 '%s' gnode",
             pd_harness_program("playdoh-submit"), h.endpoint, path);
    cr_assert_eq(s_sh(cmd, out, sizeof out), 3, "%s", out);
    cr_assert(strstr(out, "no worker of this cluster has offered a GPU"), "%s", out);
    snprintf(cmd, sizeof cmd, "'%s' --broker %s optimize --gpu --algo cmaes --dim 2 "
             "--bounds -1:1 --budget 100 '%s' gnode", pd_harness_program("playdoh-submit"),
             h.endpoint, path);
    free(path);
    cr_assert_eq(s_sh(cmd, out, sizeof out), 3, "%s", out);
    cr_assert(strstr(out, "no worker of this cluster has offered a GPU"), "%s", out);
}

static double s_rastrigin(const double *x, size_t dim)
{
    double s = 10.0 * (double) dim;
    for (size_t d = 0; d < dim; d++)
        s += x[d] * x[d] - 10.0 * cos(2.0 * 3.14159265358979323846 * x[d]);
    return s;
}

Test(integration_gpu, cma_es_islands_evaluate_their_blocks_on_their_own_gpus)
{
    char cu[PD_HASH_HEX];
    int gpus = s_start_real_gpu(2, cu, "GPU islands were not run");
    enum { D = 5 };
    double lo[D], hi[D];
    for (int d = 0; d < D; d++) {
        lo[d] = -5.12;
        hi[d] = 5.12;
    }
    pd_optim_opts_t o;
    pd_optim_opts_init(&o, PD_ALGO_CMAES, D);
    o.lower = lo;
    o.upper = hi;
    o.islands = (uint32_t) gpus;
    o.budget = 4000;
    o.seed = 7;
    pd_optim_cluster_opts_t co = {.task = {.gpu = true, .cuda = cu}};
    pd_optim_result_t r;
    int rc = pd_optim_cluster(c, mod, "rastrigin_fitness_gpu", &o, &co, &r);
    cr_assert_eq(rc, 0, "%s", r.error ? r.error : pd_client_error(c));
    cr_assert_geq(r.evaluations, 3000);
    double f = s_rastrigin(r.best_x, D);
    cr_assert(fabs(f - r.best_f[0]) <= 1e-9 * (1 + f), "the GPU's value %.17g of the best point "
              "against %.17g on the host", r.best_f[0], f);
    cr_assert_lt(r.best_f[0], 20.0, "CMA-ES got nowhere: best %g", r.best_f[0]);
    pd_optim_result_clear(&r);
    /* On CPU islands the GPU fitness fails, saying what to do. */
    rc = pd_optim_cluster(c, mod, "rastrigin_fitness_gpu", &o, NULL, &r);
    cr_assert_eq(rc, PD_ETASK);
    cr_assert(r.error && strstr(r.error, "start the optimisation with --gpu"), "%s",
              r.error ? r.error : "");
    pd_optim_result_clear(&r);
}
