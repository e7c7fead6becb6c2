/*  Unit tests of the broker's job table (broker/pd_jobs.c): ids, the queue,
    the unfinished bound, requeue and retries, forgetting, the result
    time-to-live, and id ranges. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "pd_codec.h"
#include "pd_error.h"
#include "pd_jobs.h"

#include <string.h>

static pd_jobs_t *jobs;
static pd_buf_t buf;
static char why[256];

static void setup(void)
{
    jobs = pd_jobs_new(100);
    cr_assert_not_null(jobs);
    pd_buf_init(&buf);
    why[0] = 0;
}

static void teardown(void)
{
    pd_jobs_destroy(&jobs);
    cr_assert_null(jobs);
    pd_buf_free(&buf);
}

TestSuite(unit_jobs, .init = setup, .fini = teardown);

/* Packs an args array of n integers 0..n-1 into buf. */
static void s_args(uint32_t n)
{
    pd_buf_reset(&buf);
    msgpack_packer pk;
    pd_packer_init(&pk, &buf);
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_uint32(&pk, i);
}

static int s_submit(uint32_t n, uint32_t retries, uint64_t *first)
{
    s_args(n);
    uint32_t got = 0;
    int rc = pd_jobs_submit(jobs, 0, "square", buf.data, buf.len, 0, retries, first, &got, why,
                            sizeof why);
    if (rc == 0)
        cr_assert_eq(got, n);
    return rc;
}

Test(unit_jobs, ids_are_contiguous_from_one_per_submit)
{
    uint64_t a, b;
    cr_assert_eq(s_submit(3, 3, &a), 0);
    cr_assert_eq(s_submit(5, 3, &b), 0);
    cr_assert_eq(a, 1);
    cr_assert_eq(b, 4);
    cr_assert_eq(pd_jobs_next_id(jobs), 9);
    cr_assert_eq(pd_jobs_unfinished(jobs), 8);
    cr_assert_eq(pd_jobs_queued(jobs), 8);
    for (uint64_t id = 1; id <= 8; id++)
        cr_assert_eq(pd_jobs_state(jobs, id), PD_JOB_QUEUED);
    cr_assert_eq(pd_jobs_state(jobs, 0), PD_JOB_UNKNOWN);
    cr_assert_eq(pd_jobs_state(jobs, 9), PD_JOB_UNKNOWN);
}

Test(unit_jobs, each_job_keeps_its_own_argument_bytes)
{
    uint64_t first;
    cr_assert_eq(s_submit(20, 3, &first), 0);
    pd_jobrec_t *j = pd_jobs_get(jobs, first + 17);
    cr_assert_not_null(j);
    pd_rd_t r;
    pd_rd_init(&r, j->arg->data + j->arg_off, j->arg_len);
    uint64_t v;
    cr_assert_eq(pd_rd_uint(&r, &v), 0);
    cr_assert_eq(v, 17);
    cr_assert(pd_rd_at_end(&r));
    cr_assert_str_eq(pd_jobs_fn_name(jobs, j->fn), "square");
    cr_assert_eq(j->arg->refs, 20);
}

Test(unit_jobs, function_names_are_interned)
{
    uint64_t a, b;
    cr_assert_eq(s_submit(2, 3, &a), 0);
    cr_assert_eq(s_submit(2, 3, &b), 0);
    cr_assert_eq(pd_jobs_get(jobs, a)->fn, pd_jobs_get(jobs, b)->fn);
}

Test(unit_jobs, each_job_remembers_the_key_that_submitted_it)
{
    pd_buf_reset(&buf);
    msgpack_packer pk;
    pd_packer_init(&pk, &buf);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint64(&pk, 2);
    static const char *alice = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    static const char *bob = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
    uint64_t a, b, c;
    uint32_t n;
    char why[256];
    pd_jobs_submit_t sub = {.fn = "f", .args = buf.data, .args_len = buf.len, .retries = 3,
                            .owner = alice};
    cr_assert_eq(pd_jobs_submit_ex(jobs, &sub, &a, &n, why, sizeof why), 0, "%s", why);
    sub.owner = bob;
    cr_assert_eq(pd_jobs_submit_ex(jobs, &sub, &b, &n, why, sizeof why), 0, "%s", why);
    cr_assert_eq(pd_jobs_submit(jobs, 0, "f", buf.data, buf.len, 0, 3, &c, &n, why, sizeof why),
                 0, "%s", why);
    pd_jobrec_t *ja = pd_jobs_get(jobs, a + 1), *jb = pd_jobs_get(jobs, b), *jc = pd_jobs_get(jobs, c);
    cr_assert_neq(ja->fn, jb->fn, "one function, two owners: two entries");
    cr_assert_str_eq(pd_jobs_fn_name(jobs, ja->fn), "f");
    cr_assert_str_eq(pd_jobs_fn_name(jobs, jb->fn), "f");
    cr_assert_str_eq(pd_jobs_fn_owner(jobs, ja->fn), alice);
    cr_assert_str_eq(pd_jobs_fn_owner(jobs, jb->fn), bob);
    cr_assert_str_eq(pd_jobs_fn_owner(jobs, jc->fn), "");
    cr_assert_eq(pd_jobs_get(jobs, a)->fn, ja->fn, "jobs of one submit share the entry");
}

Test(unit_jobs, owners_are_counted_per_owner_with_their_batches_and_states)
{
    static const char alice[] = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    static const char tok[] = "local:0123456789abcdef0123456789abcdef";
    s_args(4);
    uint64_t a, b, t;
    uint32_t n;
    pd_jobs_submit_t sub = {.fn = "f", .args = buf.data, .args_len = buf.len, .retries = 3,
                            .owner = alice};
    cr_assert_eq(pd_jobs_submit_ex(jobs, &sub, &a, &n, why, sizeof why), 0, "%s", why);
    sub.fn = "g"; /* another function of the same owner */
    cr_assert_eq(pd_jobs_submit_ex(jobs, &sub, &b, &n, why, sizeof why), 0, "%s", why);
    sub.owner = tok;
    cr_assert_eq(pd_jobs_submit_ex(jobs, &sub, &t, &n, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(pd_jobs_owner_id(jobs, pd_jobs_get(jobs, t)->fn), tok);
    cr_assert_str_eq(pd_jobs_fn_owner(jobs, pd_jobs_get(jobs, t)->fn), "",
                     "a token's id is not a key for workers");
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), a); /* alice: 1 running */
    cr_assert_eq(pd_jobs_set_done(jobs, a, (const uint8_t *) "\xc0", 1), 0); /* 1 final */
    size_t no;
    pd_jobs_owner_t *ow = pd_jobs_owners(jobs, &no);
    cr_assert_eq(no, 2);
    cr_assert_str_eq(ow[0].owner, alice);
    cr_assert_eq(ow[0].batches, 2);
    cr_assert_eq(ow[0].final, 1);
    cr_assert_eq(ow[0].queued, 7);
    cr_assert_eq(ow[0].running, 0);
    cr_assert_str_eq(ow[1].owner, tok);
    cr_assert_eq(ow[1].batches, 1);
    cr_assert_eq(ow[1].queued, 4);
    free(ow);
}

Test(unit_jobs, a_submit_over_the_bound_is_refused_whole)
{
    uint64_t first;
    cr_assert_eq(s_submit(90, 3, &first), 0);
    cr_assert_eq(s_submit(11, 3, &first), PD_EOVERLOAD);
    cr_assert(strstr(why, "holds 90 unfinished jobs"), "why: %s", why);
    cr_assert(strstr(why, "--max-jobs"), "why: %s", why);
    cr_assert_eq(pd_jobs_unfinished(jobs), 90);
    cr_assert_eq(pd_jobs_next_id(jobs), 91);
    cr_assert_eq(s_submit(10, 3, &first), 0);
    /* Finished jobs make room again. */
    uint64_t id = pd_jobs_pop(jobs, PD_JOBS_CPU);
    pd_jobs_set_cancelled(jobs, id);
    cr_assert_eq(s_submit(1, 3, &first), 0);
}

Test(unit_jobs, bad_submits_say_why)
{
    uint64_t first;
    uint32_t n;
    s_args(1);
    cr_assert_eq(pd_jobs_submit(jobs, 0, "", buf.data, buf.len, 0, 3, &first, &n, why, sizeof why),
                 PD_EINVAL);
    cr_assert(strstr(why, "'fn'"));
    cr_assert_eq(pd_jobs_submit(jobs, 0, "f", buf.data, buf.len, 0, 256, &first, &n, why,
                                sizeof why), PD_EINVAL);
    cr_assert(strstr(why, "retries"));
    static const uint8_t notarray[] = {0x05};
    cr_assert_eq(pd_jobs_submit(jobs, 0, "f", notarray, 1, 0, 3, &first, &n, why, sizeof why),
                 PD_EPROTO);
    cr_assert_eq(pd_jobs_next_id(jobs), 1);
}

Test(unit_jobs, the_queue_is_fifo_and_skips_cancelled_jobs)
{
    uint64_t first;
    cr_assert_eq(s_submit(5, 3, &first), 0);
    pd_jobs_set_cancelled(jobs, 2);
    pd_jobs_set_cancelled(jobs, 3);
    cr_assert_eq(pd_jobs_queued(jobs), 3);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 1);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 4);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 5);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 0);
    cr_assert_eq(pd_jobs_state(jobs, 1), PD_JOB_RUNNING);
    cr_assert_eq(pd_jobs_get(jobs, 1)->attempt, 1);
    cr_assert_eq(pd_jobs_state(jobs, 2), PD_JOB_CANCELLED);
}

Test(unit_jobs, a_lost_job_goes_to_the_front_with_the_next_attempt)
{
    uint64_t first;
    cr_assert_eq(s_submit(3, 3, &first), 0);
    uint64_t id = pd_jobs_pop(jobs, PD_JOBS_CPU);
    cr_assert_eq(id, 1);
    cr_assert_eq(pd_jobs_requeue(jobs, id, true, "hostA"), 0);
    cr_assert_eq(pd_jobs_state(jobs, 1), PD_JOB_QUEUED);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 1);
    cr_assert_eq(pd_jobs_get(jobs, 1)->attempt, 2);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 2);
    /* Requeue out of order: the later one comes first. */
    cr_assert_eq(pd_jobs_requeue(jobs, 2, false, "hostA"), 0);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 2);
}

Test(unit_jobs, a_job_fails_with_elost_when_its_retries_are_used_up)
{
    uint64_t first;
    cr_assert_eq(s_submit(1, 2, &first), 0);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 1);
    cr_assert_eq(pd_jobs_requeue(jobs, 1, true, "hostA"), 0);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 1);
    /* A bye does not count toward the retries. */
    cr_assert_eq(pd_jobs_requeue(jobs, 1, false, "hostA"), 0);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 1);
    cr_assert_eq(pd_jobs_requeue(jobs, 1, true, "hostB"), 1);
    cr_assert_eq(pd_jobs_state(jobs, 1), PD_JOB_FAILED);
    cr_assert_eq(pd_jobs_unfinished(jobs), 0);
    pd_jobrec_t *j = pd_jobs_get(jobs, 1);
    cr_assert_null(j->arg);
    /* The error map names the code, the host and the attempts. */
    const uint8_t *val;
    uint32_t len;
    cr_assert(pd_jobs_result(jobs, 1, &val, &len));
    pd_rd_t r;
    pd_rd_init(&r, val, len);
    uint32_t n;
    cr_assert_eq(pd_rd_map(&r, &n), 0);
    cr_assert_eq(n, 5);
    char code[32], msg[200];
    cr_assert(pd_rd_key_is(&r, "code"));
    cr_assert_eq(pd_rd_strcpy(&r, code, sizeof code), 0);
    cr_assert_str_eq(code, "PD_ELOST");
    cr_assert(pd_rd_key_is(&r, "msg"));
    cr_assert_eq(pd_rd_strcpy(&r, msg, sizeof msg), 0);
    cr_assert_str_eq(msg, "worker hostB was lost while running the job: 2 workers lost with it, "
                          "the limit (retries 2); started 3 times in all");
}

/* What a submit needs besides a CPU slot, for the tests below. */
typedef struct {
    bool gpu;
    uint32_t cu;
} s_needs_t;

/* Submits n jobs (as the anonymous client) with needs; returns the first id. */
static uint64_t s_submit_needs(uint32_t n, const s_needs_t *needs)
{
    s_args(n);
    uint64_t first;
    uint32_t got;
    pd_jobs_submit_t sub = {.fn = "f", .args = buf.data, .args_len = buf.len, .retries = 3,
                            .gpu = needs && needs->gpu, .cu = needs ? needs->cu : 0};
    cr_assert_eq(pd_jobs_submit_ex(jobs, &sub, &first, &got, why, sizeof why), 0, "%s", why);
    cr_assert_eq(got, n);
    return first;
}

Test(unit_jobs, gpu_jobs_wait_in_their_own_queue)
{
    s_needs_t gpu = {.gpu = true};
    uint64_t c1 = s_submit_needs(2, NULL);      /* 1, 2 */
    uint64_t g1 = s_submit_needs(2, &gpu);      /* 3, 4 */
    uint64_t c2 = s_submit_needs(1, NULL);      /* 5 */
    cr_assert_eq(pd_jobs_queued(jobs), 5);
    cr_assert_eq(pd_jobs_queued_in(jobs, PD_JOBS_CPU), 3);
    cr_assert_eq(pd_jobs_queued_in(jobs, PD_JOBS_GPU), 2);
    cr_assert_eq(pd_jobs_get(jobs, g1)->gpu, 1);
    cr_assert_eq(pd_jobs_get(jobs, c1)->gpu, 0);
    /* CPU slots never see GPU jobs, and the reverse. */
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), c1);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), c1 + 1);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), c2);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 0);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_GPU), g1);
    cr_assert_eq(pd_jobs_queued_in(jobs, PD_JOBS_GPU), 1);
    /* A lost GPU job goes back to the front of the GPU queue. */
    cr_assert_eq(pd_jobs_requeue(jobs, g1, true, "gpuhost"), 0);
    cr_assert_eq(pd_jobs_queued_in(jobs, PD_JOBS_CPU), 0);
    cr_assert_eq(pd_jobs_queued_in(jobs, PD_JOBS_GPU), 2);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 0);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_GPU), g1);
    cr_assert_eq(pd_jobs_get(jobs, g1)->attempt, 2);
    /* Cancelling a queued GPU job takes it off the GPU count. */
    pd_jobs_set_cancelled(jobs, g1 + 1);
    cr_assert_eq(pd_jobs_queued_in(jobs, PD_JOBS_GPU), 0);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_GPU), 0);
    cr_assert_eq(pd_jobs_unfinished(jobs), 4);
}

Test(unit_jobs, a_cuda_module_makes_a_gpu_job)
{
    s_needs_t cu = {.cu = 7};
    uint64_t id = s_submit_needs(1, &cu);
    pd_jobrec_t *j = pd_jobs_get(jobs, id);
    cr_assert_eq(j->gpu, 1, "a job that ships kernels must wait for a GPU slot");
    cr_assert_eq(j->cu, 7);
    cr_assert_eq(pd_jobs_queued_in(jobs, PD_JOBS_GPU), 1);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 0);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_GPU), id);
}

/* --retry-failed: a job whose own run failed runs again up to its
   retry_failed, from the front of the queue, without counting a lost
   worker; a broken module or a lost worker is never a reason to. */
Test(unit_jobs, a_failed_run_is_run_again_up_to_retry_failed)
{
    s_args(2);
    pd_jobs_submit_t sub = {.fn = "square", .args = buf.data, .args_len = buf.len, .retries = 3,
                            .retry_failed = 2};
    uint64_t first;
    uint32_t n;
    cr_assert_eq(pd_jobs_submit_ex(jobs, &sub, &first, &n, why, sizeof why), 0, "%s", why);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), first);
    cr_assert(pd_jobs_retry_failed(jobs, first, "PD_ETASK", "h"));
    cr_assert_eq(pd_jobs_state(jobs, first), PD_JOB_QUEUED);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), first, "it goes to the front");
    cr_assert(pd_jobs_retry_failed(jobs, first, "PD_ECRASH", "h"));
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), first);
    cr_assert_eq(pd_jobs_get(jobs, first)->attempt, 3);
    cr_assert_eq(pd_jobs_get(jobs, first)->losses, 0);
    cr_assert_not(pd_jobs_retry_failed(jobs, first, "PD_ETASK", "h"), "2 runs again at most");
    cr_assert_eq(pd_jobs_state(jobs, first), PD_JOB_RUNNING, "the caller fails it");
    /* A module that does not compile fails at once. */
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), first + 1);
    cr_assert_not(pd_jobs_retry_failed(jobs, first + 1, "PD_ECOMPILE", "h"));
    cr_assert_not(pd_jobs_retry_failed(jobs, first + 1, "PD_ENOFUNC", "h"));
    cr_assert(pd_jobs_retry_failed(jobs, first + 1, "PD_ETIMEDOUT", "h"));
    /* Without retry_failed, nothing runs again; more than 100 is refused. */
    uint64_t other;
    cr_assert_eq(s_submit(1, 3, &other), 0);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), first + 1);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), other);
    cr_assert_not(pd_jobs_retry_failed(jobs, other, "PD_ETASK", "h"));
    sub.retry_failed = 101;
    cr_assert_eq(pd_jobs_submit_ex(jobs, &sub, &first, &n, why, sizeof why), PD_EINVAL);
    cr_assert(strstr(why, "'retry_failed' is 101; at most 100"), "%s", why);
}

Test(unit_jobs, retries_zero_still_allows_one_attempt)
{
    uint64_t first;
    cr_assert_eq(s_submit(1, 0, &first), 0);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 1);
    cr_assert_eq(pd_jobs_requeue(jobs, 1, true, "h"), 1);
    cr_assert_eq(pd_jobs_state(jobs, 1), PD_JOB_FAILED);
}

Test(unit_jobs, results_share_one_segment_and_are_freed_on_forget)
{
    uint64_t first;
    cr_assert_eq(s_submit(2, 3, &first), 0);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 1);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 2);
    static const uint8_t seven = 0x07, eight = 0x08;
    cr_assert_eq(pd_jobs_set_done(jobs, 1, &seven, 1), 0);
    cr_assert_eq(pd_jobs_set_done(jobs, 2, &eight, 1), 0);
    cr_assert_null(pd_jobs_get(jobs, 1)->res, "the segment is still open");
    const uint8_t *val;
    uint32_t len;
    cr_assert(pd_jobs_result(jobs, 2, &val, &len), "reading seals");
    cr_assert_eq(len, 1);
    cr_assert_eq(*val, 0x08);
    pd_blob_t *blob = pd_jobs_get(jobs, 1)->res;
    cr_assert_not_null(blob);
    cr_assert_eq(pd_jobs_get(jobs, 2)->res, blob);
    cr_assert_eq(blob->refs, 2);
    /* The segment is a msgpack array of [id, state, value]. */
    static const uint8_t want[] = {0xdd, 0, 0, 0, 2, 0x93, 0x01, 0x03, 0x07, 0x93, 0x02, 0x03, 0x08};
    cr_assert_eq(blob->len, sizeof want);
    cr_assert_arr_eq(blob->data, want, sizeof want);
    cr_assert(pd_jobs_forget(jobs, 1));
    cr_assert_not(pd_jobs_forget(jobs, 1));
    cr_assert_eq(pd_jobs_state(jobs, 1), PD_JOB_UNKNOWN);
    cr_assert_eq(blob->refs, 1);
    cr_assert(pd_jobs_forget(jobs, 2)); /* frees the blob: ASan checks */
}

Test(unit_jobs, unfinished_jobs_cannot_be_forgotten)
{
    uint64_t first;
    cr_assert_eq(s_submit(1, 3, &first), 0);
    cr_assert_not(pd_jobs_forget(jobs, 1));
    cr_assert_eq(pd_jobs_state(jobs, 1), PD_JOB_QUEUED);
}

Test(unit_jobs, fresh_lists_new_final_jobs_sorted)
{
    uint64_t first;
    cr_assert_eq(s_submit(4, 3, &first), 0);
    pd_jobs_set_cancelled(jobs, 4);
    pd_jobs_set_cancelled(jobs, 2);
    size_t n;
    const uint64_t *f = pd_jobs_fresh(jobs, &n);
    cr_assert_eq(n, 2);
    cr_assert_eq(f[0], 2);
    cr_assert_eq(f[1], 4);
    pd_jobs_fresh_clear(jobs);
    pd_jobs_fresh(jobs, &n);
    cr_assert_eq(n, 0);
}

Test(unit_jobs, results_expire_a_ttl_after_their_first_fetch)
{
    uint64_t first;
    cr_assert_eq(s_submit(3, 3, &first), 0);
    for (uint64_t id = 1; id <= 3; id++)
        pd_jobs_set_cancelled(jobs, id);
    pd_jobs_mark_fetched(jobs, 1, 10);
    pd_jobs_mark_fetched(jobs, 2, 10);
    pd_jobs_mark_fetched(jobs, 3, 20);
    pd_jobs_mark_fetched(jobs, 1, 30); /* a second fetch changes nothing */
    cr_assert_eq(pd_jobs_expire(jobs, 69, 60), 0);
    cr_assert_eq(pd_jobs_expire(jobs, 70, 60), 2);
    cr_assert_eq(pd_jobs_state(jobs, 1), PD_JOB_UNKNOWN);
    cr_assert_eq(pd_jobs_state(jobs, 3), PD_JOB_CANCELLED);
    cr_assert_eq(pd_jobs_expire(jobs, 80, 60), 1);
    cr_assert_eq(pd_jobs_state(jobs, 3), PD_JOB_UNKNOWN);
}

Test(unit_jobs, many_jobs_span_chunks_and_freed_chunks_read_unknown)
{
    pd_jobs_destroy(&jobs);
    jobs = pd_jobs_new(1000000);
    uint64_t first = 0;
    for (int k = 0; k < 40; k++)
        cr_assert_eq(s_submit(4096, 3, &first), 0);
    cr_assert_eq(pd_jobs_next_id(jobs), 40 * 4096 + 1);
    uint64_t id, popped = 0;
    while ((id = pd_jobs_pop(jobs, PD_JOBS_CPU)) != 0) {
        pd_jobs_set_cancelled(jobs, id);
        popped++;
    }
    cr_assert_eq(popped, 40 * 4096);
    pd_jobs_fresh_clear(jobs);
    for (id = 1; id <= 70000; id++)
        cr_assert(pd_jobs_forget(jobs, id));
    cr_assert_eq(pd_jobs_state(jobs, 5), PD_JOB_UNKNOWN);
    cr_assert_eq(pd_jobs_state(jobs, 70001), PD_JOB_CANCELLED);
}

Test(unit_jobs, the_queue_survives_compaction_after_many_cancels)
{
    uint64_t first;
    cr_assert_eq(s_submit(100, 3, &first), 0);
    for (uint64_t id = 1; id <= 100; id++)
        cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), id);
    /* Requeued in ascending order, each id is its own range at the front. */
    for (uint64_t id = 1; id <= 100; id++)
        cr_assert_eq(pd_jobs_requeue(jobs, id, false, "h"), 0);
    for (uint64_t id = 1; id <= 100; id++)
        if (id != 37 && id != 80)
            pd_jobs_set_cancelled(jobs, id);
    cr_assert_eq(pd_jobs_queued(jobs), 2);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 80);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 37);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 0);
    cr_assert_eq(pd_jobs_get(jobs, 37)->attempt, 2);
}

/* ---- ranges ------------------------------------------------------------ */

TestSuite(unit_ranges, .init = setup, .fini = teardown);

/* Packs ranges from pairs into buf. */
static void s_ranges(const uint64_t (*pairs)[2], uint32_t n)
{
    pd_buf_reset(&buf);
    msgpack_packer pk;
    pd_packer_init(&pk, &buf);
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++) {
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint64(&pk, pairs[i][0]);
        msgpack_pack_uint64(&pk, pairs[i][1]);
    }
}

Test(unit_ranges, parses_pairs_and_bounds)
{
    static const uint64_t p[][2] = {{10, 5}, {3, 2}};
    s_ranges(p, 2);
    pd_ranges_t rg;
    cr_assert_eq(pd_ranges_parse(buf.data, buf.len, &rg, why, sizeof why), 0);
    cr_assert_eq(rg.n, 2);
    cr_assert_eq(rg.total, 7);
    cr_assert_eq(rg.lo, 3);
    cr_assert_eq(rg.hi, 14);
    cr_assert(pd_ranges_contains(&rg, 4));
    cr_assert(pd_ranges_contains(&rg, 14));
    cr_assert_not(pd_ranges_contains(&rg, 5));
    cr_assert_not(pd_ranges_contains(&rg, 15));
    static const uint64_t fresh1[] = {1, 2, 5, 9, 15};
    static const uint64_t fresh2[] = {1, 12, 99};
    cr_assert_not(pd_ranges_touches(&rg, fresh1, 5));
    cr_assert(pd_ranges_touches(&rg, fresh2, 3));
    pd_ranges_free(&rg);
}

typedef struct {
    uint64_t pairs[2][2];
    uint32_t n;
    int rc;
    char why[32]; /* a copy, not a pointer: Criterion runs each case in its own process */
} bad_ranges_t;

ParameterizedTestParameters(unit_ranges, refuses_bad_ranges)
{
    static bad_ranges_t cases[] = {
        {{{0, 1}}, 1, PD_EPROTO, "ids start at 1"},
        {{{1, 0}}, 1, PD_EPROTO, "at least 1"},
        {{{UINT64_MAX, 2}}, 1, PD_EPROTO, "overflows"},
        {{{1, 10000001}}, 1, PD_ETOOBIG, "more than 10000000 ids"},
        {{{1, 6000000}, {7000000, 6000000}}, 2, PD_ETOOBIG, "more than"},
    };
    return cr_make_param_array(bad_ranges_t, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(bad_ranges_t *c, unit_ranges, refuses_bad_ranges)
{
    s_ranges((const uint64_t(*)[2]) c->pairs, c->n);
    pd_ranges_t rg;
    cr_assert_eq(pd_ranges_parse(buf.data, buf.len, &rg, why, sizeof why), c->rc);
    cr_assert(strstr(why, c->why), "why: %s", why);
    cr_assert_null(rg.r);
}

Test(unit_ranges, refuses_shapes_that_are_not_pairs)
{
    static const uint8_t notarray[] = {0x01};
    static const uint8_t triple[] = {0x91, 0x93, 0x01, 0x01, 0x01};
    static const uint8_t strings[] = {0x91, 0x92, 0xa1, 'a', 0x01};
    static const uint8_t negative[] = {0x91, 0x92, 0xff, 0x01};
    pd_ranges_t rg;
    cr_assert_eq(pd_ranges_parse(notarray, sizeof notarray, &rg, why, sizeof why), PD_EPROTO);
    cr_assert_eq(pd_ranges_parse(triple, sizeof triple, &rg, why, sizeof why), PD_EPROTO);
    cr_assert(strstr(why, "range 0"), "why: %s", why);
    cr_assert_eq(pd_ranges_parse(strings, sizeof strings, &rg, why, sizeof why), PD_EPROTO);
    cr_assert_eq(pd_ranges_parse(negative, sizeof negative, &rg, why, sizeof why), PD_EPROTO);
}

Test(unit_ranges, an_empty_set_is_valid)
{
    static const uint8_t empty[] = {0x90};
    pd_ranges_t rg;
    cr_assert_eq(pd_ranges_parse(empty, sizeof empty, &rg, why, sizeof why), 0);
    cr_assert_eq(rg.total, 0);
    cr_assert_not(pd_ranges_contains(&rg, 1));
    pd_ranges_free(&rg);
}

/* ---- segments, hooks, tokens, recovery -------------------------------- */

typedef struct {
    int sealed, dead_args, dead_segs, forgot, fetched, expired;
    uint64_t last_forgot;
} s_heard_t;

static s_heard_t heard;

static void h_sealed(void *u, pd_blob_t *seg) { (void) u; (void) seg; heard.sealed++; }
static void h_dead(void *u, const pd_blob_t *b, bool args)
{
    (void) u;
    (void) b;
    if (args)
        heard.dead_args++;
    else
        heard.dead_segs++;
}
static void h_forgot(void *u, uint64_t id) { (void) u; heard.forgot++; heard.last_forgot = id; }
static void h_fetched(void *u, uint64_t id, uint32_t sec) { (void) u; (void) id; (void) sec; heard.fetched++; }
static void h_expired(void *u, uint64_t f, uint64_t c) { (void) u; (void) f; (void) c; heard.expired++; }

static const pd_jobs_hooks_t hooks = {h_sealed, h_dead, h_forgot, h_fetched, h_expired};

Test(unit_jobs, the_hooks_hear_every_blob_made_and_lost)
{
    memset(&heard, 0, sizeof heard);
    pd_jobs_set_hooks(jobs, &hooks, NULL);
    uint64_t first;
    cr_assert_eq(s_submit(3, 3, &first), 0);
    pd_jobs_set_cancelled(jobs, 1);
    pd_jobs_set_cancelled(jobs, 2);
    cr_assert_eq(heard.dead_args, 0, "job 3 still needs the arguments");
    pd_jobs_set_cancelled(jobs, 3);
    cr_assert_eq(heard.dead_args, 1);
    cr_assert_eq(heard.sealed, 0, "the segment is still open");
    pd_jobs_seal(jobs);
    cr_assert_eq(heard.sealed, 1);
    pd_jobs_seal(jobs);
    cr_assert_eq(heard.sealed, 1, "nothing new: no second segment");
    cr_assert(pd_jobs_mark_fetched(jobs, 1, 100));
    cr_assert_not(pd_jobs_mark_fetched(jobs, 1, 101), "a second fetch is not a first");
    cr_assert_eq(heard.fetched, 1);
    cr_assert(pd_jobs_forget(jobs, 2));
    cr_assert_eq(heard.forgot, 1);
    cr_assert_eq(heard.last_forgot, 2);
    cr_assert_eq(pd_jobs_expire(jobs, 200, 10), 1);
    cr_assert_eq(heard.expired, 1);
    cr_assert_eq(heard.dead_segs, 0, "job 3 still points into the segment");
    cr_assert(pd_jobs_forget(jobs, 3));
    cr_assert_eq(heard.dead_segs, 1);
}

Test(unit_jobs, a_segment_is_sealed_when_it_grows_too_big)
{
    pd_jobs_destroy(&jobs);
    jobs = pd_jobs_new(100000);
    memset(&heard, 0, sizeof heard);
    pd_jobs_set_hooks(jobs, &hooks, NULL);
    uint64_t first;
    cr_assert_eq(s_submit(PD_JOBS_SEG_JOBS + 5, 3, &first), 0);
    for (uint64_t id = 1; id <= PD_JOBS_SEG_JOBS + 5; id++)
        pd_jobs_set_cancelled(jobs, id);
    cr_assert_eq(heard.sealed, 1, "the first %u entries made a segment", PD_JOBS_SEG_JOBS);
    pd_jobs_seal(jobs);
    cr_assert_eq(heard.sealed, 2);
    cr_assert_neq(pd_jobs_get(jobs, 1)->res, pd_jobs_get(jobs, PD_JOBS_SEG_JOBS + 1)->res);
}

Test(unit_jobs, withdrawn_jobs_leave_no_trace)
{
    uint64_t a, b;
    cr_assert_eq(s_submit(4, 3, &a), 0);
    cr_assert_eq(s_submit(3, 3, &b), 0);
    pd_jobs_set_cancelled(jobs, b); /* a final one is forgotten */
    pd_jobs_withdraw(jobs, b, 3);
    for (uint64_t id = b; id < b + 3; id++)
        cr_assert_eq(pd_jobs_state(jobs, id), PD_JOB_UNKNOWN);
    cr_assert_eq(pd_jobs_unfinished(jobs), 4);
    cr_assert_eq(pd_jobs_queued(jobs), 4);
    for (uint64_t id = a; id < a + 4; id++)
        cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), id);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 0, "the withdrawn jobs are not handed out");
    cr_assert_eq(pd_jobs_next_id(jobs), 8, "their ids are not handed out again");
}

Test(unit_jobs, the_pop_limit_holds_back_jobs_not_yet_on_disk)
{
    uint64_t a, b;
    cr_assert_eq(s_submit(2, 3, &a), 0);
    cr_assert_eq(s_submit(2, 3, &b), 0);
    pd_jobs_set_pop_limit(jobs, b);
    cr_assert(pd_jobs_ready(jobs, PD_JOBS_CPU));
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 1);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 2);
    cr_assert_not(pd_jobs_ready(jobs, PD_JOBS_CPU));
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 0);
    cr_assert_eq(pd_jobs_requeue(jobs, 1, false, "h"), 0);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 1, "a requeued job is older than the limit");
    pd_jobs_set_pop_limit(jobs, pd_jobs_next_id(jobs));
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 3);
}

Test(unit_jobs, submit_tokens_give_back_the_first_ids)
{
    uint64_t first;
    uint32_t n;
    cr_assert_not(pd_jobs_token_find(jobs, "abc", 3, &first, &n));
    cr_assert_eq(pd_jobs_token_add(jobs, "abc", 3, 17, 4, 1000), 0);
    cr_assert(pd_jobs_token_find(jobs, "abc", 3, &first, &n));
    cr_assert_eq(first, 17);
    cr_assert_eq(n, 4);
    cr_assert_eq(pd_jobs_token_add(jobs, "abc", 3, 99, 1, 1001), 0);
    cr_assert(pd_jobs_token_find(jobs, "abc", 3, &first, &n));
    cr_assert_eq(first, 17, "the first submit's ids stand");
    pd_jobs_token_drop(jobs, "abc", 3);
    cr_assert_not(pd_jobs_token_find(jobs, "abc", 3, &first, &n), "a withdrawn submit");
    cr_assert_eq(pd_jobs_token_add(jobs, "abc", 3, 30, 2, 1002), 0);
    cr_assert(pd_jobs_token_find(jobs, "abc", 3, &first, &n));
    cr_assert_eq(first, 30);
    cr_assert_eq(pd_jobs_token_add(jobs, "xyz", 3, 40, 2, 2000), 0);
    cr_assert_eq(pd_jobs_token_expire(jobs, 1000 + 3600, 3600), 1);
    cr_assert_not(pd_jobs_token_find(jobs, "abc", 3, &first, &n));
    cr_assert(pd_jobs_token_find(jobs, "xyz", 3, &first, &n));
    cr_assert_not(pd_jobs_token_find(jobs, "", 0, &first, &n));
}

static bool skip_five(void *user, uint64_t id)
{
    (void) user;
    return id == 5;
}

Test(unit_jobs, recovery_puts_back_batches_and_segments)
{
    pd_jobs_set_next_id(jobs, 11);
    pd_jobs_set_next_id(jobs, 3); /* never lowers */
    cr_assert_eq(pd_jobs_next_id(jobs), 11);
    s_args(6);
    pd_jobs_submit_t sub = {.fn = "square", .args = buf.data, .args_len = buf.len, .retries = 3};
    cr_assert_eq(pd_jobs_restore_batch(jobs, 3, 6, &sub, skip_five, NULL, why, sizeof why), 5);
    cr_assert_eq(pd_jobs_state(jobs, 5), PD_JOB_UNKNOWN, "skipped (forgotten)");
    cr_assert_eq(pd_jobs_queued(jobs), 5);
    /* A segment: job 4 done (7), job 1 (its batch is gone) cancelled. */
    static const uint8_t seg[] = {0x92, 0x93, 0x04, 0x03, 0x07, 0x93, 0x01, 0x05, 0xc0};
    cr_assert_eq(pd_jobs_restore_segment(jobs, 9, seg, sizeof seg, NULL, NULL, why, sizeof why),
                 2, "%s", why);
    cr_assert_eq(pd_jobs_state(jobs, 4), PD_JOB_DONE);
    cr_assert_eq(pd_jobs_state(jobs, 1), PD_JOB_CANCELLED);
    cr_assert_eq(pd_jobs_queued(jobs), 4);
    cr_assert_eq(pd_jobs_get(jobs, 4)->res->key, 9);
    const uint8_t *val;
    uint32_t len;
    cr_assert(pd_jobs_result(jobs, 4, &val, &len));
    cr_assert_eq(len, 1);
    cr_assert_eq(*val, 0x07);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 3);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 6, "done and forgotten jobs are skipped");
    cr_assert_eq(pd_jobs_next_known(jobs, 2), 3);
    cr_assert_eq(pd_jobs_next_known(jobs, 9), 0);
}

Test(unit_jobs, recovery_refuses_what_does_not_fit)
{
    pd_jobs_set_next_id(jobs, 11);
    s_args(3);
    pd_jobs_submit_t sub = {.fn = "f", .args = buf.data, .args_len = buf.len, .retries = 3};
    cr_assert_eq(pd_jobs_restore_batch(jobs, 9, 3, &sub, NULL, NULL, why, sizeof why),
                 PD_EPROTO);
    cr_assert(strstr(why, "does not fit"), "%s", why);
    cr_assert_eq(pd_jobs_restore_batch(jobs, 1, 4, &sub, NULL, NULL, why, sizeof why),
                 PD_EPROTO, "3 values, not 4");
    cr_assert_eq(pd_jobs_restore_batch(jobs, 1, 3, &sub, NULL, NULL, why, sizeof why), 3);
    cr_assert_eq(pd_jobs_restore_batch(jobs, 2, 3, &sub, NULL, NULL, why, sizeof why),
                 PD_EPROTO);
    cr_assert(strstr(why, "appears twice"), "%s", why);
    static const uint8_t twice[] = {0x92, 0x93, 0x01, 0x03, 0x07, 0x93, 0x01, 0x03, 0x08};
    cr_assert_eq(pd_jobs_restore_segment(jobs, 1, twice, sizeof twice, NULL, NULL, why,
                                         sizeof why), PD_EPROTO);
    cr_assert(strstr(why, "two results"), "%s", why);
    static const uint8_t badstate[] = {0x91, 0x93, 0x02, 0x02, 0x07};
    cr_assert_eq(pd_jobs_restore_segment(jobs, 2, badstate, sizeof badstate, NULL, NULL, why,
                                         sizeof why), PD_EPROTO, "running is not final");
    static const uint8_t future[] = {0x91, 0x93, 0x0c, 0x03, 0x07};
    cr_assert_eq(pd_jobs_restore_segment(jobs, 3, future, sizeof future, NULL, NULL, why,
                                         sizeof why), PD_EPROTO, "id 12 was never given");
}

/* ---- fair sharing between clients ------------------------------------ */

/* Submits n jobs for client `who` with a cap of max_slots. */
static uint64_t s_submit_as(const char *who, uint32_t n, uint32_t max_slots, uint32_t shared)
{
    s_args(n);
    pd_jobs_submit_t sub = {.client = who, .client_len = strlen(who), .fn = "f",
                            .args = buf.data, .args_len = buf.len, .retries = 3,
                            .max_slots = max_slots, .shared = shared};
    uint64_t first;
    uint32_t got;
    cr_assert_eq(pd_jobs_submit_ex(jobs, &sub, &first, &got, why, sizeof why), 0, "%s", why);
    cr_assert_eq(got, n);
    return first;
}

Test(unit_jobs, free_slots_go_round_robin_between_clients)
{
    uint64_t a = s_submit_as("alice", 40, 0, 0);
    uint64_t b = s_submit_as("bob", 5, 0, 0);
    cr_assert_eq(pd_jobs_clients(jobs), 2);
    /* alice submitted first, yet bob's 5 jobs all leave in the first 10. */
    int bobs = 0;
    uint64_t prev_a = 0;
    for (int i = 0; i < 10; i++) {
        uint64_t id = pd_jobs_pop(jobs, PD_JOBS_CPU);
        cr_assert_neq(id, 0);
        if (id >= b) {
            bobs++;
        } else {
            cr_assert_gt(id, prev_a, "each client's own jobs stay in order");
            prev_a = id;
        }
    }
    cr_assert_eq(bobs, 5, "bob waited behind alice: %d of 5 popped", bobs);
    /* Then alice alone. */
    for (uint64_t id = a + 5; id < a + 40; id++)
        cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), id);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 0);
}

Test(unit_jobs, a_client_at_its_max_slots_waits_while_others_go_on)
{
    uint64_t a = s_submit_as("capped", 10, 2, 0);
    uint64_t b = s_submit_as("free", 10, 0, 0);
    uint64_t x = pd_jobs_pop(jobs, PD_JOBS_CPU), y = pd_jobs_pop(jobs, PD_JOBS_CPU), z = pd_jobs_pop(jobs, PD_JOBS_CPU);
    cr_assert_eq(x, a);
    cr_assert_eq(y, b);
    cr_assert_eq(z, a + 1);
    /* capped has 2 running: only free's jobs leave now. */
    for (int i = 1; i < 10; i++)
        cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), b + (uint64_t) i);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 0, "capped is at its 2 slots");
    /* One of capped's jobs ends: one more may run. */
    pd_jobs_set_cancelled(jobs, a);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), a + 2);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 0);
    /* A lost run goes back to the front of its own client's queue. */
    cr_assert_eq(pd_jobs_requeue(jobs, a + 2, true, "h"), 0);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), a + 2);
}

Test(unit_jobs, a_later_submit_changes_the_cap)
{
    uint64_t a = s_submit_as("c", 5, 1, 0);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), a);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 0);
    s_submit_as("c", 1, 0, 0); /* no cap from now on */
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), a + 1);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), a + 2);
}

Test(unit_jobs, clients_are_forgotten_when_their_jobs_have_ended)
{
    uint64_t a = s_submit_as("x", 3, 0, 0);
    uint64_t b = s_submit_as("y", 1, 0, 0);
    cr_assert_eq(pd_jobs_clients(jobs), 2);
    pd_jobs_set_cancelled(jobs, b);
    cr_assert_eq(pd_jobs_clients(jobs), 1, "y has nothing left");
    for (uint64_t id = a; id < a + 3; id++) {
        cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), id);
        pd_jobs_set_failed(jobs, id, "PD_ETASK", "no", "h", 0);
    }
    cr_assert_eq(pd_jobs_clients(jobs), 0);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 0);
    /* A client coming back is served again. */
    uint64_t c = s_submit_as("x", 1, 0, 0);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), c);
}

Test(unit_jobs, cancelled_jobs_of_one_client_do_not_stall_the_others)
{
    uint64_t a = s_submit_as("a", 20, 0, 0);
    uint64_t b = s_submit_as("b", 3, 0, 0);
    for (uint64_t id = a; id < a + 20; id++)
        pd_jobs_set_cancelled(jobs, id);
    for (uint64_t id = b; id < b + 3; id++)
        cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), id);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 0);
    cr_assert_eq(pd_jobs_queued(jobs), 0);
}

Test(unit_jobs, shared_data_counts_its_unfinished_jobs)
{
    uint64_t a = s_submit_as("a", 3, 0, 2); /* shared index 1 */
    cr_assert_eq(pd_jobs_shared_open(jobs, 1), 3);
    cr_assert_eq(pd_jobs_shared_open(jobs, 0), 0);
    cr_assert_eq(pd_jobs_get(jobs, a)->shared, 2);
    pd_jobs_set_cancelled(jobs, a);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), a + 1);
    static const uint8_t nil = 0xc0;
    pd_jobs_set_done(jobs, a + 1, &nil, 1);
    cr_assert_eq(pd_jobs_shared_open(jobs, 1), 1);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), a + 2);
    cr_assert_eq(pd_jobs_requeue(jobs, a + 2, false, "h"), 0);
    cr_assert_eq(pd_jobs_shared_open(jobs, 1), 1, "a requeued job is still unfinished");
}

/* pd_jobs_span reads the records of a range in place, as far as they lie
   side by side: up to a chunk's end, up to the last id given, and none for
   id 0 or ids never given; each record is the one pd_jobs_get finds. */
Test(unit_jobs, a_span_reads_the_records_of_a_range_in_place)
{
    pd_jobs_destroy(&jobs);
    jobs = pd_jobs_new(1u << 17);
    cr_assert_not_null(jobs);
    uint64_t first;
    uint32_t n = (1u << 16) + 10; /* one chunk and ten ids of the next */
    cr_assert_eq(s_submit(n, 3, &first), 0, "%s", why);
    cr_assert_eq(first, 1);
    pd_jobrec_t *recs;
    uint32_t k = pd_jobs_span(jobs, 1, 70000, &recs);
    cr_assert_eq(k, 1u << 16, "a span stops at its chunk's end");
    cr_assert_not_null(recs);
    for (uint32_t x = 0; x < k; x += 4099)
        cr_assert_eq(&recs[x], pd_jobs_get(jobs, 1 + x), "id %u", 1 + x);
    k = pd_jobs_span(jobs, 1 + (1u << 16), 70000 - (1u << 16), &recs);
    cr_assert_eq(k, 10u, "and at the last id given");
    cr_assert_eq(&recs[9], pd_jobs_get(jobs, n));
    k = pd_jobs_span(jobs, n + 1, 100, &recs);
    cr_assert_eq(k, 100u);
    cr_assert_null(recs, "ids never given have no record");
    cr_assert_eq(pd_jobs_span(jobs, 0, 100, &recs), 1u);
    cr_assert_null(recs);
    cr_assert_eq(pd_jobs_span(jobs, 3, 2, &recs), 2u, "never past n");
}
