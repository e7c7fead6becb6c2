/*  Unit tests of the broker's worker registry (broker/pd_workers.c): the
    two credits (CPU slots x depth, GPU slots x PD_WORKERS_GPU_DEPTH), the
    in-flight list across classes, the GPU descriptions kept for the cluster
    view, and the "a GPU was offered once" memory behind PD_ENOGPU. */
#include <criterion/criterion.h>

#include "pd_error.h"
#include "pd_jobs.h"
#include "pd_workers.h"

#include <string.h>

static pd_workers_t *ws;
static pd_jobs_t *jobs;

static void setup(void)
{
    ws = pd_workers_new();
    jobs = pd_jobs_new(100);
    cr_assert(ws && jobs);
}

static void teardown(void)
{
    pd_workers_destroy(&ws);
    pd_jobs_destroy(&jobs);
}

TestSuite(unit_workers, .init = setup, .fini = teardown);

/* Submits n jobs (GPU jobs when gpu) and pops them as running. */
static void s_running(uint32_t n, bool gpu, uint64_t *ids)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_nil(&pk);
    pd_jobs_submit_t sub = {.fn = "f", .args = b.data, .args_len = b.len, .retries = 3,
                            .gpu = gpu};
    uint64_t first;
    uint32_t got;
    char why[256];
    cr_assert_eq(pd_jobs_submit_ex(jobs, &sub, &first, &got, why, sizeof why), 0, "%s", why);
    pd_buf_free(&b);
    for (uint32_t i = 0; i < n; i++) {
        ids[i] = pd_jobs_pop(jobs, gpu ? PD_JOBS_GPU : PD_JOBS_CPU);
        cr_assert_eq(ids[i], first + i);
    }
}

Test(unit_workers, cpu_and_gpu_credit_are_counted_apart)
{
    pd_worker_t *wk = pd_workers_add(ws, "w-1", 3, 0);
    cr_assert_not_null(wk);
    pd_workers_set_slots(ws, wk, 2, 1);
    uint32_t cpu0 = pd_worker_credit(wk, PD_JOBS_CPU);
    cr_assert_eq(cpu0, 2 * PD_WORKERS_DEPTH_START);
    cr_assert_eq(pd_worker_credit(wk, PD_JOBS_GPU), PD_WORKERS_GPU_DEPTH);
    uint64_t g[2], c[3];
    s_running(2, true, g);
    s_running(3, false, c);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pd_worker_track(wk, pd_jobs_get(jobs, g[i]), g[i]), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pd_worker_track(wk, pd_jobs_get(jobs, c[i]), c[i]), 0);
    cr_assert_eq(wk->ninflight, 5);
    cr_assert_eq(wk->ngpuinflight, 2);
    cr_assert_eq(pd_worker_credit(wk, PD_JOBS_GPU), 0, "the GPU slot holds its two jobs");
    cr_assert_eq(pd_worker_credit(wk, PD_JOBS_CPU), cpu0 - 3, "GPU jobs take no CPU credit");
    cr_assert_null(pd_workers_next_with_credit(ws, PD_JOBS_GPU));
    cr_assert_eq(pd_workers_next_with_credit(ws, PD_JOBS_CPU), wk);
    /* Untracking a GPU job gives back GPU credit only. */
    pd_worker_untrack(wk, jobs, pd_jobs_get(jobs, g[0]));
    cr_assert_eq(wk->ngpuinflight, 1);
    cr_assert_eq(pd_worker_credit(wk, PD_JOBS_GPU), 1);
    cr_assert_eq(pd_worker_credit(wk, PD_JOBS_CPU), cpu0 - 3);
    cr_assert_eq(pd_workers_next_with_credit(ws, PD_JOBS_GPU), wk);
    /* The in-flight list stays consistent after the swap-remove. */
    pd_worker_untrack(wk, jobs, pd_jobs_get(jobs, c[2]));
    pd_worker_untrack(wk, jobs, pd_jobs_get(jobs, g[1]));
    pd_worker_untrack(wk, jobs, pd_jobs_get(jobs, c[0]));
    pd_worker_untrack(wk, jobs, pd_jobs_get(jobs, c[1]));
    cr_assert_eq(wk->ninflight, 0);
    cr_assert_eq(wk->ngpuinflight, 0);
}

Test(unit_workers, gpus_held_by_task_nodes_take_no_jobs)
{
    pd_worker_t *wk = pd_workers_add(ws, "w-3", 3, 0);
    pd_workers_set_slots(ws, wk, 2, 2);
    cr_assert_eq(pd_worker_free_gpus(wk), 2);
    wk->gnodes = 1; /* a node of a GPU task holds one GPU */
    cr_assert_eq(pd_worker_free_gpus(wk), 1);
    cr_assert_eq(pd_worker_credit(wk, PD_JOBS_GPU), PD_WORKERS_GPU_DEPTH);
    cr_assert_eq(pd_worker_credit(wk, PD_JOBS_CPU), 2 * PD_WORKERS_DEPTH_START,
                 "GPU nodes hold no CPU slot");
    wk->gnodes = 2;
    cr_assert_eq(pd_worker_free_gpus(wk), 0);
    cr_assert_eq(pd_worker_credit(wk, PD_JOBS_GPU), 0);
    cr_assert_null(pd_workers_next_with_credit(ws, PD_JOBS_GPU));
    pd_workers_set_slots(ws, wk, 2, 1); /* the owner lowered the GPUs under the nodes */
    cr_assert_eq(pd_worker_free_gpus(wk), 0);
    wk->gnodes = 0;
    cr_assert_eq(pd_worker_free_gpus(wk), 1);
}

Test(unit_workers, a_worker_without_gpus_has_no_gpu_credit)
{
    pd_worker_t *wk = pd_workers_add(ws, "w-2", 3, 0);
    pd_workers_set_slots(ws, wk, 4, 0);
    cr_assert_eq(pd_worker_credit(wk, PD_JOBS_GPU), 0);
    cr_assert_null(pd_workers_next_with_credit(ws, PD_JOBS_GPU));
    cr_assert_not(pd_workers_gpus_ever(ws));
}

Test(unit_workers, the_registry_remembers_that_a_gpu_was_offered)
{
    cr_assert_not(pd_workers_gpus_ever(ws));
    pd_worker_t *wk = pd_workers_add(ws, "w-3", 3, 0);
    pd_workers_set_slots(ws, wk, 1, 2);
    cr_assert_eq(pd_workers_gpus(ws), 2);
    cr_assert(pd_workers_gpus_ever(ws));
    pd_workers_remove(ws, &wk);
    cr_assert_eq(pd_workers_gpus(ws), 0);
    cr_assert(pd_workers_gpus_ever(ws), "still true once the GPU worker has left");
}

Test(unit_workers, gpu_descriptions_are_copied_and_replaced)
{
    pd_worker_t *wk = pd_workers_add(ws, "w-4", 3, 0);
    pd_gpu_desc_t d[2];
    memset(d, 0, sizeof d);
    snprintf(d[0].name, sizeof d[0].name, "NVIDIA A100-SXM4-40GB");
    d[0].mem = 40ull << 30;
    d[0].cc_major = 8;
    snprintf(d[1].name, sizeof d[1].name, "NVIDIA A100-SXM4-40GB");
    d[1].mem = 40ull << 30;
    d[1].cc_major = 8;
    cr_assert_eq(pd_worker_set_gpu_desc(wk, d, 2), 0);
    memset(d, 0, sizeof d); /* the registry holds its own copy */
    cr_assert_eq(wk->ngpu, 2);
    cr_assert_str_eq(wk->gpu[1].name, "NVIDIA A100-SXM4-40GB");
    cr_assert_eq(wk->gpu[1].mem, 40ull << 30);
    cr_assert_eq(wk->gpu[1].cc_major, 8);
    cr_assert_eq(pd_worker_set_gpu_desc(wk, NULL, 0), 0);
    cr_assert_eq(wk->ngpu, 0);
    cr_assert_null(wk->gpu);
}
