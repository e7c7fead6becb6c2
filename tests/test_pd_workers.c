/*  Unit tests of the broker's worker registry (broker/pd_workers.c): the
    two credits (CPU slots x depth, GPU slots x PD_WORKERS_GPU_DEPTH), the
    in-flight list across classes, the GPU descriptions kept for the cluster
    view, and the "a GPU was offered once" memory behind PD_ENOGPU. */
#include <criterion/criterion.h>

#include "pd_error.h"
#include "pd_jobs.h"
#include "pd_workers.h"

#include <string.h>

static pd_reg_t *ws;
static pd_jobs_t *jobs;

static void setup(void)
{
    ws = pd_reg_new();
    jobs = pd_jobs_new(100);
    cr_assert(ws && jobs);
}

static void teardown(void)
{
    pd_reg_destroy(&ws);
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
    pd_wrec_t *wk = pd_reg_add(ws, "w-1", 3, 0);
    cr_assert_not_null(wk);
    pd_reg_set_slots(ws, wk, 2, 1);
    uint32_t cpu0 = pd_wrec_credit(wk, PD_JOBS_CPU);
    cr_assert_eq(cpu0, 2 * PD_WORKERS_DEPTH_START);
    cr_assert_eq(pd_wrec_credit(wk, PD_JOBS_GPU), PD_WORKERS_GPU_DEPTH);
    uint64_t g[2], c[3];
    s_running(2, true, g);
    s_running(3, false, c);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pd_wrec_track(wk, pd_jobs_get(jobs, g[i]), g[i]), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pd_wrec_track(wk, pd_jobs_get(jobs, c[i]), c[i]), 0);
    cr_assert_eq(wk->ninflight, 5);
    cr_assert_eq(wk->ngpuinflight, 2);
    cr_assert_eq(pd_wrec_credit(wk, PD_JOBS_GPU), 0, "the GPU slot holds its two jobs");
    cr_assert_eq(pd_wrec_credit(wk, PD_JOBS_CPU), cpu0 - 3, "GPU jobs take no CPU credit");
    cr_assert_null(pd_reg_next_with_credit(ws, PD_JOBS_GPU));
    cr_assert_eq(pd_reg_next_with_credit(ws, PD_JOBS_CPU), wk);
    /* Untracking a GPU job gives back GPU credit only. */
    pd_wrec_untrack(wk, jobs, pd_jobs_get(jobs, g[0]));
    cr_assert_eq(wk->ngpuinflight, 1);
    cr_assert_eq(pd_wrec_credit(wk, PD_JOBS_GPU), 1);
    cr_assert_eq(pd_wrec_credit(wk, PD_JOBS_CPU), cpu0 - 3);
    cr_assert_eq(pd_reg_next_with_credit(ws, PD_JOBS_GPU), wk);
    /* The in-flight list stays consistent after the swap-remove. */
    pd_wrec_untrack(wk, jobs, pd_jobs_get(jobs, c[2]));
    pd_wrec_untrack(wk, jobs, pd_jobs_get(jobs, g[1]));
    pd_wrec_untrack(wk, jobs, pd_jobs_get(jobs, c[0]));
    pd_wrec_untrack(wk, jobs, pd_jobs_get(jobs, c[1]));
    cr_assert_eq(wk->ninflight, 0);
    cr_assert_eq(wk->ngpuinflight, 0);
}

Test(unit_workers, gpus_held_by_task_nodes_take_no_jobs)
{
    pd_wrec_t *wk = pd_reg_add(ws, "w-3", 3, 0);
    pd_reg_set_slots(ws, wk, 2, 2);
    cr_assert_eq(pd_wrec_free_gpus(wk), 2);
    wk->gnodes = 1; /* a node of a GPU task holds one GPU */
    cr_assert_eq(pd_wrec_free_gpus(wk), 1);
    cr_assert_eq(pd_wrec_credit(wk, PD_JOBS_GPU), PD_WORKERS_GPU_DEPTH);
    cr_assert_eq(pd_wrec_credit(wk, PD_JOBS_CPU), 2 * PD_WORKERS_DEPTH_START,
                 "GPU nodes hold no CPU slot");
    wk->gnodes = 2;
    cr_assert_eq(pd_wrec_free_gpus(wk), 0);
    cr_assert_eq(pd_wrec_credit(wk, PD_JOBS_GPU), 0);
    cr_assert_null(pd_reg_next_with_credit(ws, PD_JOBS_GPU));
    pd_reg_set_slots(ws, wk, 2, 1); /* the owner lowered the GPUs under the nodes */
    cr_assert_eq(pd_wrec_free_gpus(wk), 0);
    wk->gnodes = 0;
    cr_assert_eq(pd_wrec_free_gpus(wk), 1);
}

Test(unit_workers, a_worker_without_gpus_has_no_gpu_credit)
{
    pd_wrec_t *wk = pd_reg_add(ws, "w-2", 3, 0);
    pd_reg_set_slots(ws, wk, 4, 0);
    cr_assert_eq(pd_wrec_credit(wk, PD_JOBS_GPU), 0);
    cr_assert_null(pd_reg_next_with_credit(ws, PD_JOBS_GPU));
    cr_assert_not(pd_reg_gpus_ever(ws));
}

Test(unit_workers, the_registry_remembers_that_a_gpu_was_offered)
{
    cr_assert_not(pd_reg_gpus_ever(ws));
    pd_wrec_t *wk = pd_reg_add(ws, "w-3", 3, 0);
    pd_reg_set_slots(ws, wk, 1, 2);
    cr_assert_eq(pd_reg_gpus(ws), 2);
    cr_assert(pd_reg_gpus_ever(ws));
    pd_reg_remove(ws, &wk);
    cr_assert_eq(pd_reg_gpus(ws), 0);
    cr_assert(pd_reg_gpus_ever(ws), "still true once the GPU worker has left");
}

Test(unit_workers, gpu_descriptions_are_copied_and_replaced)
{
    pd_wrec_t *wk = pd_reg_add(ws, "w-4", 3, 0);
    pd_gpu_desc_t d[2];
    memset(d, 0, sizeof d);
    snprintf(d[0].name, sizeof d[0].name, "NVIDIA A100-SXM4-40GB");
    d[0].mem = 40ull << 30;
    d[0].cc_major = 8;
    snprintf(d[1].name, sizeof d[1].name, "NVIDIA A100-SXM4-40GB");
    d[1].mem = 40ull << 30;
    d[1].cc_major = 8;
    cr_assert_eq(pd_wrec_set_gpu_desc(wk, d, 2), 0);
    memset(d, 0, sizeof d); /* the registry holds its own copy */
    cr_assert_eq(wk->ngpu, 2);
    cr_assert_str_eq(wk->gpu[1].name, "NVIDIA A100-SXM4-40GB");
    cr_assert_eq(wk->gpu[1].mem, 40ull << 30);
    cr_assert_eq(wk->gpu[1].cc_major, 8);
    cr_assert_eq(pd_wrec_set_gpu_desc(wk, NULL, 0), 0);
    cr_assert_eq(wk->ngpu, 0);
    cr_assert_null(wk->gpu);
}

/* ---- fair shares and work stealing ------------------------------------- */

/* Tracks n jobs (just popped as running) on wk. */
static void s_track(pd_wrec_t *wk, uint32_t n, bool gpu)
{
    uint64_t ids[64];
    cr_assert(n <= 64);
    s_running(n, gpu, ids);
    for (uint32_t i = 0; i < n; i++)
        cr_assert_eq(pd_wrec_track(wk, pd_jobs_get(jobs, ids[i]), ids[i]), 0);
}

Test(unit_workers, few_jobs_are_shared_evenly_not_all_sent_to_the_first_worker)
{
    pd_wrec_t *a = pd_reg_add(ws, "w-a", 3, 0), *b = pd_reg_add(ws, "w-b", 3, 0);
    pd_reg_set_slots(ws, a, 1, 0);
    pd_reg_set_slots(ws, b, 1, 0);
    /* Before any run time is measured each may hold DEPTH_START: six jobs
       would all fit on the first one. */
    cr_assert_geq(pd_wrec_credit(a, PD_JOBS_CPU), 6);
    pd_reg_share(ws, PD_JOBS_CPU, 6);
    cr_assert_eq(a->share, 3);
    cr_assert_eq(b->share, 3);
    /* One running on a already: of five, b gets three, a two. */
    s_track(a, 1, false);
    pd_reg_share(ws, PD_JOBS_CPU, 5);
    cr_assert_eq(a->share, 2);
    cr_assert_eq(b->share, 3);
    /* Shares follow the slots: a worker of three slots takes three times as
       many. */
    pd_wrec_t *c = pd_reg_add(ws, "w-c", 3, 0);
    pd_reg_set_slots(ws, c, 3, 0);
    pd_reg_share(ws, PD_JOBS_CPU, 9);
    cr_assert_eq(c->share, 6, "got %u", c->share);
    cr_assert_eq(a->share + b->share + c->share, 9);
    /* Beyond every credit, each gets its whole credit. */
    pd_reg_share(ws, PD_JOBS_CPU, 100000);
    cr_assert_eq(a->share, pd_wrec_credit(a, PD_JOBS_CPU));
    cr_assert_eq(c->share, pd_wrec_credit(c, PD_JOBS_CPU));
    /* Round robin over those with a share only. */
    a->share = 0;
    c->share = 0;
    cr_assert_eq(pd_reg_next_with_share(ws, PD_JOBS_CPU), b);
    cr_assert_eq(pd_reg_next_with_share(ws, PD_JOBS_CPU), b);
}

Test(unit_workers, queued_jobs_are_stolen_only_for_an_idle_slot_and_when_worth_it)
{
    pd_wrec_t *a = pd_reg_add(ws, "w-a", 3, 0), *b = pd_reg_add(ws, "w-b", 3, 0);
    pd_reg_set_slots(ws, a, 1, 0);
    pd_reg_set_slots(ws, b, 1, 0);
    uint32_t n = 99;
    /* a runs one and holds five queued; b is idle. */
    s_track(a, 6, false);
    cr_assert_eq(pd_reg_idle_slots(ws, PD_JOBS_CPU), 1);
    cr_assert_eq(pd_reg_steal_from(ws, PD_JOBS_CPU, 1000, 500, &n), a);
    cr_assert_eq(n, 5);
    /* Asked once: not again until the answer, or retry_ms. */
    a->steal_at = 1000;
    cr_assert_null(pd_reg_steal_from(ws, PD_JOBS_CPU, 1400, 500, &n));
    cr_assert_eq(pd_reg_steal_from(ws, PD_JOBS_CPU, 1500, 500, &n), a);
    a->steal_at = 0;
    /* Jobs measured short are not worth a round trip: five of 1 ms wait
       5 ms, under PD_WORKERS_STEAL_MIN_US... */
    pd_wrec_observe(a, 1000);
    a->progress_ms = 1000;
    cr_assert_null(pd_reg_steal_from(ws, PD_JOBS_CPU, 1005, 500, &n));
    /* ...unless the worker has returned nothing for that long: the jobs
       measured were others (tiny ones before a batch of long ones). */
    cr_assert_eq(pd_reg_steal_from(ws, PD_JOBS_CPU, 1000 + 10, 500, &n), a);
    /* Long ones are. */
    for (int i = 0; i < 50; i++)
        pd_wrec_observe(a, 1000000);
    cr_assert_eq(pd_reg_steal_from(ws, PD_JOBS_CPU, 1000, 500, &n), a);
    /* No idle slot: b busy too. The caller asks only while slots idle. */
    s_track(b, 1, false);
    cr_assert_eq(pd_reg_idle_slots(ws, PD_JOBS_CPU), 0);
    /* A worker running only as many jobs as slots has nothing to give. */
    pd_wrec_t *c = pd_reg_add(ws, "w-c", 3, 0);
    pd_reg_set_slots(ws, c, 2, 0);
    s_track(c, 2, false);
    pd_wrec_t *got = pd_reg_steal_from(ws, PD_JOBS_CPU, 1000, 500, &n);
    cr_assert_eq(got, a, "only a holds queued jobs");
}
