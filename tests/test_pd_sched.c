/*  Unit tests of the broker's scheduler (broker/pd_sched.c), without
    sockets: a job table, a registry, a task table, a module store and the
    probes go in, orders come out. Checked: credit bounds a RUN, few jobs
    are spread over the workers, a module and shared data are marked to be
    sent once per worker (and forgotten when their send failed), built-in
    tasks need no module, a prebuilt module's jobs wait for a worker of its
    platform, a task is placed all or nothing ahead of the jobs, and idle
    slots ask a busy worker for its queued jobs back. */
#include <criterion/criterion.h>

#include "pd_error.h"
#include "pd_jobs.h"
#include "pd_mods.h"
#include "pd_msg.h"
#include "pd_probes.h"
#include "pd_sched.h"
#include "pd_tasks.h"
#include "pd_workers.h"

#include <string.h>

static pd_jobs_t *jobs;
static pd_reg_t *reg;
static pd_tasks_t *tasks;
static pd_mods_t *mods;
static pd_probes_t *probes;
static pd_sched_t *sched;
static pd_sched_in_t in;

static void setup(void)
{
    jobs = pd_jobs_new(10000);
    reg = pd_reg_new();
    tasks = pd_tasks_new(0);
    mods = pd_mods_new();
    probes = pd_probes_new();
    sched = pd_sched_new();
    cr_assert(jobs && reg && tasks && mods && probes && sched);
    in = (pd_sched_in_t){.jobs = jobs, .reg = reg, .tasks = tasks, .mods = mods,
                         .probes = probes, .now_ms = 1000, .steal_ms = 500,
                         .run_jobs = 1024, .run_bytes = 8u << 20};
}

static void teardown(void)
{
    pd_sched_destroy(&sched);
    pd_reg_destroy(&reg); /* before the table: it points at jobs */
    pd_jobs_destroy(&jobs);
    pd_tasks_destroy(&tasks);
    pd_mods_destroy(&mods);
    pd_probes_destroy(&probes);
}

TestSuite(unit_sched, .init = setup, .fini = teardown);

/* Queues n jobs of module mod (shared: index + 1, 0 none). */
static void s_submit(uint32_t n, uint32_t mod, uint32_t shared)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_nil(&pk);
    pd_jobs_submit_t sub = {.fn = "f", .mod = mod, .shared = shared, .args = b.data,
                            .args_len = b.len, .retries = 3};
    uint64_t first;
    uint32_t got;
    char why[256];
    cr_assert_eq(pd_jobs_submit_ex(jobs, &sub, &first, &got, why, sizeof why), 0, "%s", why);
    pd_buf_free(&b);
}

/* A source module ("c": runs anywhere); returns its index. */
static uint32_t s_module(const char *text)
{
    char hash[PD_MODS_HASH_LEN + 1], why[256];
    pd_mods_hash(text, strlen(text), hash);
    int64_t i = pd_mods_put(mods, hash, "m.c", "c", text, strlen(text), why, sizeof why);
    cr_assert_geq(i, 0, "%s", why);
    return (uint32_t) i;
}

static pd_wrec_t *s_worker(const char *rid, uint32_t cpus)
{
    pd_wrec_t *wk = pd_reg_add(reg, rid, strlen(rid), 0);
    cr_assert_not_null(wk);
    pd_reg_set_slots(reg, wk, cpus, 0);
    return wk;
}

/* Jobs in RUN orders for worker index w (all workers: w < 0). */
static uint32_t s_jobs_for(uint32_t n, int64_t w)
{
    uint32_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        const pd_sched_order_t *o = pd_sched_order(sched, i);
        if (o->kind == PD_SCHED_RUN && (w < 0 || o->worker == (uint32_t) w))
            total += o->n;
    }
    return total;
}

Test(unit_sched, a_run_takes_the_worker_credit_and_no_more)
{
    pd_wrec_t *wk = s_worker("w-1", 2);
    uint32_t credit = pd_wrec_credit(wk, PD_JOBS_CPU);
    s_submit(credit + 10, 0, 0);
    uint32_t n = pd_sched_plan(sched, &in);
    cr_assert_eq(s_jobs_for(n, -1), credit);
    cr_assert_eq(wk->ninflight, credit, "the planned jobs are tracked on their worker");
    cr_assert_eq(pd_wrec_credit(wk, PD_JOBS_CPU), 0);
    const pd_sched_order_t *o = pd_sched_order(sched, 0);
    cr_assert_eq(o->kind, PD_SCHED_RUN);
    const pd_jobrec_t *job = pd_jobs_get(jobs, pd_sched_job(sched, o, 0)->id);
    cr_assert_eq(job->state, PD_JOB_RUNNING);
    cr_assert_eq(pd_sched_job(sched, o, 0)->send, 0, "the built-in module is never sent");
    cr_assert_eq(pd_sched_plan(sched, &in), 0, "no credit left: no order");
}

Test(unit_sched, few_jobs_are_spread_over_the_workers)
{
    s_worker("w-1", 4);
    s_worker("w-2", 4);
    s_submit(8, 0, 0);
    uint32_t n = pd_sched_plan(sched, &in);
    cr_assert_eq(s_jobs_for(n, -1), 8);
    cr_assert_gt(s_jobs_for(n, 0), 0);
    cr_assert_gt(s_jobs_for(n, 1), 0, "the second worker got nothing");
}

Test(unit_sched, a_module_and_shared_data_are_sent_once_per_worker)
{
    pd_wrec_t *wk = s_worker("w-1", 2);
    uint32_t mod = s_module("int f(void) { return 1; }");
    s_submit(3, mod, 1);
    cr_assert_eq(pd_sched_plan(sched, &in), 1);
    const pd_sched_order_t *o = pd_sched_order(sched, 0);
    cr_assert_eq(o->n, 1, "the first job probes the module; the others wait for it");
    const pd_sched_job_t *probe = pd_sched_job(sched, o, 0);
    cr_assert_eq(probe->send, PD_SCHED_SEND_MOD | PD_SCHED_SEND_SHARED);
    const pd_jobrec_t *pj = pd_jobs_get(jobs, probe->id);
    pd_probes_proven(probes, pj->mod, pj->cu, pj->fn, pd_wrec_platform(wk));
    cr_assert_eq(pd_sched_plan(sched, &in), 1);
    o = pd_sched_order(sched, 0);
    cr_assert_eq(o->n, 2);
    cr_assert_eq(pd_sched_job(sched, o, 0)->send, 0, "sent once per worker");
    cr_assert_eq(pd_sched_job(sched, o, 1)->send, 0);
    cr_assert(pd_wrec_has_mod(wk, mod));
    cr_assert(pd_wrec_has_shared(wk, 0));
    cr_assert_not(pd_sched_needs_mod(mods, wk, mod));
    /* The send failed: the worker is known not to have them. */
    pd_sched_job_t sj = {.send = PD_SCHED_SEND_MOD | PD_SCHED_SEND_SHARED};
    pd_sched_unsent(wk, pj, &sj);
    cr_assert_not(pd_wrec_has_mod(wk, mod));
    cr_assert_not(pd_wrec_has_shared(wk, 0));
    cr_assert(pd_sched_needs_mod(mods, wk, mod));
}

Test(unit_sched, a_prebuilt_module_waits_for_a_worker_of_its_platform)
{
    pd_wrec_t *wk = s_worker("w-1", 2);
    strcpy(wk->platform, "windows-x86_64");
    /* An ELF shared object: runs on linux-x86_64 only. */
    uint8_t elf[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
    elf[18] = 62; /* e_machine: x86-64 */
    char hash[PD_MODS_HASH_LEN + 1], why[256];
    pd_mods_hash(elf, sizeof elf, hash);
    int64_t mod = pd_mods_put(mods, hash, "m.so", "so", elf, sizeof elf, why, sizeof why);
    cr_assert_geq(mod, 0, "%s", why);
    cr_assert_str_eq(pd_mods_get(mods, (uint32_t) mod)->platform, "linux-x86_64");
    s_submit(2, (uint32_t) mod, 0);
    cr_assert_eq(s_jobs_for(pd_sched_plan(sched, &in), -1), 0);
    cr_assert_eq(pd_jobs_queued_in(jobs, PD_JOBS_CPU), 2, "the jobs wait, queued");
    pd_wrec_t *lx = s_worker("w-2", 2);
    strcpy(lx->platform, "linux-x86_64");
    uint32_t n = pd_sched_plan(sched, &in);
    cr_assert_eq(s_jobs_for(n, lx->index), 1, "one job probes the module on its platform");
    cr_assert_eq(s_jobs_for(n, wk->index), 0);
}

/* A task_submit of n nodes in a ring, parsed into *m (over buf) and
   decoded as the broker's handler decodes it (borrowing buf). */
static const pd_m_task_submit_t *s_task(pd_buf_t *buf, pd_msg_t *m, uint32_t n)
{
    pd_buf_reset(buf);
    msgpack_packer pk;
    pd_packer_init(&pk, buf);
    pd_msg_begin(&pk, "task_submit", 6);
    pd_pack_kv_uint(&pk, "req", 1);
    pd_pack_kv_str(&pk, "mod", "0000000000000000000000000000000000000000000000000000000000000000");
    pd_pack_kv_str(&pk, "fn", "node_fn");
    pd_pack_kv_uint(&pk, "n", n);
    pd_pack_cstr(&pk, "tubes");
    msgpack_pack_array(&pk, 1);
    pd_pack_cstr(&pk, "next");
    pd_pack_cstr(&pk, "edges");
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint32(&pk, 0);
        msgpack_pack_uint32(&pk, i);
        msgpack_pack_uint32(&pk, (i + 1) % n);
    }
    cr_assert_eq(pd_msg_parse(m, buf->data, buf->len), 0, "%s", m->why);
    static pd_m_task_submit_t q;
    cr_assert_eq(pd_m_task_submit_decode(m, &q), 0, "%s", m->why);
    return &q;
}

Test(unit_sched, a_task_is_placed_whole_before_the_jobs_take_the_slots)
{
    pd_wrec_t *w1 = s_worker("w-1", 2);
    pd_wrec_t *w2 = s_worker("w-2", 2);
    s_submit(100, 0, 0);
    pd_buf_t buf;
    pd_buf_init(&buf);
    pd_msg_t m;
    uint64_t big, small;
    char why[256];
    cr_assert_eq(pd_tasks_submit(tasks, s_task(&buf, &m, 3), 0, 4, &small, why, sizeof why), 0,
                 "%s", why);
    cr_assert_eq(pd_tasks_submit(tasks, s_task(&buf, &m, 4), 0, 4, &big, why, sizeof why), 0,
                 "%s", why);
    pd_buf_free(&buf);
    uint32_t n = pd_sched_plan(sched, &in);
    const pd_sched_order_t *o = pd_sched_order(sched, 0);
    cr_assert_eq(o->kind, PD_SCHED_PLACE, "tasks are placed first");
    cr_assert_eq(o->task, small);
    cr_assert_eq(pd_tasks_get(tasks, small)->state, PD_TASK_STARTING);
    cr_assert_eq(pd_tasks_get(tasks, big)->state, PD_TASK_QUEUED, "4 nodes do not fit in 1 slot");
    cr_assert_eq(w1->nodes + w2->nodes, 3, "each node holds a slot");
    for (uint32_t i = 1; i < n; i++)
        cr_assert_neq(pd_sched_order(sched, i)->kind, PD_SCHED_PLACE);
    cr_assert_eq(s_jobs_for(n, -1), (4 - 3) * PD_WORKERS_DEPTH_START,
                 "the jobs get the slot the nodes leave");
}

Test(unit_sched, idle_slots_ask_a_busy_worker_for_its_queued_jobs)
{
    pd_wrec_t *busy = s_worker("w-1", 1);
    s_submit(pd_wrec_credit(busy, PD_JOBS_CPU), 0, 0);
    uint32_t n = pd_sched_plan(sched, &in);
    cr_assert_eq(s_jobs_for(n, -1), busy->ninflight);
    s_worker("w-2", 4); /* idle */
    n = pd_sched_plan(sched, &in);
    cr_assert_eq(n, 1);
    const pd_sched_order_t *o = pd_sched_order(sched, 0);
    cr_assert_eq(o->kind, PD_SCHED_STEAL);
    cr_assert_eq(o->worker, busy->index);
    cr_assert_gt(o->n, 0);
    cr_assert_eq(busy->steal_at, in.now_ms);
    cr_assert_eq(pd_sched_plan(sched, &in), 0, "asked once per heartbeat");
}
