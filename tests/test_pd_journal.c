/*  Unit tests of the broker's journal (broker/pd_journal.c) over a real
    SQLite file in a temp directory: what is committed comes back after a
    reopen (queued jobs, results, forgotten ids, first fetches, tokens,
    modules, the next id), running jobs come back queued, damaged and
    foreign files are refused with a sentence, a second broker cannot share
    a journal, and a journal that cannot be written (a file size limit
    standing in for a full disk) fails, refuses, then rewrites itself once
    it can. Criterion runs each test in its own process, so rlimits stay
    local to a test. */
#include <criterion/criterion.h>

#include "pd_codec.h"
#include "pd_error.h"
#include "pd_jobs.h"
#include "pd_journal.h"
#include "pd_log.h"
#include "pd_mods.h"
#include "pd_tasks.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static char path[128];
static pd_jobs_t *jobs;
static pd_mods_t *mods;
static pd_shared_t *shared;
static pd_journal_t *jn;
static pd_journal_recovery_t rec;
static char why[1024];
static char modhash[PD_MODS_HASH_LEN + 1];
static const char MODSRC[] = "int square(void) { return 0; }\n";

static void setup(void)
{
    pd_log_set_level(PD_LOG_ERROR);
    snprintf(dir, sizeof dir, "/tmp/pd-journal-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/sub/broker.journal", dir);
    pd_mods_hash(MODSRC, sizeof MODSRC - 1, modhash);
}

static void s_close(void)
{
    pd_journal_destroy(&jn);
    pd_jobs_destroy(&jobs);
    pd_mods_destroy(&mods);
    pd_shared_destroy(&shared);
}

static void teardown(void)
{
    s_close();
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(unit_journal, .init = setup, .fini = teardown, .timeout = 60);

/* Opens (or reopens) the journal into a new table; returns the error. */
static int s_open_cfg(const pd_journal_config_t *cfg)
{
    s_close();
    jobs = pd_jobs_new(1000000);
    mods = pd_mods_new();
    shared = pd_shared_new(PD_SHARED_DEFAULT_MAX, PD_SHARED_DEFAULT_TOTAL);
    cr_assert(jobs && mods && shared);
    int err = -99;
    jn = pd_journal_open(cfg, jobs, mods, shared, &rec, why, sizeof why, &err);
    cr_assert_eq(err == 0, jn != NULL);
    return err;
}

static int s_open(void)
{
    pd_journal_config_t cfg = {.path = path, .sync = PD_JOURNAL_SYNC_NORMAL};
    return s_open_cfg(&cfg);
}

static void s_open_ok(void)
{
    int err = s_open();
    cr_assert_eq(err, 0, "open: %s: %s", pd_strerror(err), why);
}

static void s_put_module(void)
{
    char mwhy[200];
    int64_t idx = pd_mods_put(mods, modhash, "sq.c", "c", MODSRC, sizeof MODSRC - 1, mwhy,
                              sizeof mwhy);
    cr_assert_geq(idx, 0, "%s", mwhy);
    pd_journal_put_mod(jn, pd_mods_get(mods, (uint32_t) idx));
}

/* The submitter's key given with the next submits (NULL: none, as without
   CurveZMQ). */
static const char *s_owner;

/* Submits n jobs with integer arguments base .. base+n-1 for client
   "tester" (capped at max_slots, naming shared data shr: "" for none),
   journalled. */
static uint64_t s_submit_ex(uint32_t n, uint32_t base, const char *token, uint32_t max_slots,
                            const char *shr)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_uint32(&pk, base + i);
    uint64_t first;
    uint32_t got;
    char swhy[200];
    int64_t si = shr[0] ? pd_shared_find(shared, shr) : -1;
    pd_jobs_submit_t sub = {.client = "tester", .client_len = 6,
                            .mod = (uint32_t) pd_mods_find(mods, modhash), .fn = "square",
                            .args = b.data, .args_len = b.len, .retries = 3,
                            .max_slots = max_slots, .shared = si < 0 ? 0 : (uint32_t) si + 1,
                            .owner = s_owner};
    cr_assert_eq(pd_jobs_submit_ex(jobs, &sub, &first, &got, swhy, sizeof swhy), 0, "%s", swhy);
    pd_journal_submit(jn, first, n, &sub, modhash, shr[0] ? shr : NULL, NULL,
                      pd_jobs_get(jobs, first)->arg, token, token ? strlen(token) : 0, 1000);
    if (token)
        pd_jobs_token_add(jobs, token, strlen(token), first, n, 1000);
    pd_buf_free(&b);
    return first;
}

static uint64_t s_submit(uint32_t n, uint32_t base, const char *token)
{
    return s_submit_ex(n, base, token, 0, "");
}

static void s_done(uint64_t id, double v)
{
    uint8_t val[9] = {0xcb};
    uint64_t bits;
    memcpy(&bits, &v, 8);
    for (int i = 0; i < 8; i++)
        val[1 + i] = (uint8_t) (bits >> (56 - 8 * i));
    pd_jobrec_t *job = pd_jobs_get(jobs, id);
    cr_assert_not_null(job);
    if (job->state == PD_JOB_QUEUED) {
        /* pop until this one runs */
        uint64_t got;
        while ((got = pd_jobs_pop(jobs, PD_JOBS_CPU)) != id)
            cr_assert_neq(got, 0, "job %llu is not in the queue", (unsigned long long) id);
    }
    cr_assert_eq(pd_jobs_set_done(jobs, id, val, sizeof val), 0);
}

static double s_value(uint64_t id)
{
    const uint8_t *val;
    uint32_t len;
    cr_assert(pd_jobs_result(jobs, id, &val, &len), "job %llu has no result",
              (unsigned long long) id);
    pd_rd_t r;
    pd_rd_init(&r, val, len);
    double d;
    cr_assert_eq(pd_rd_double(&r, &d), 0);
    return d;
}

static uint32_t s_arg(uint64_t id)
{
    pd_jobrec_t *job = pd_jobs_get(jobs, id);
    cr_assert(job && job->arg);
    pd_rd_t r;
    pd_rd_init(&r, job->arg->data + job->arg_off, job->arg_len);
    uint64_t v;
    cr_assert_eq(pd_rd_uint(&r, &v), 0);
    return (uint32_t) v;
}

static void s_commit(void)
{
    pd_jobs_seal(jobs);
    cr_assert_eq(pd_journal_commit(jn), 0, "%s", pd_journal_error(jn));
}

/* Rows in a journal table. Closes the journal first (it holds an exclusive
   lock): reopen after. */
static int64_t s_count(const char *table)
{
    s_close();
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    char sql[100];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

Test(unit_journal, a_new_journal_starts_empty_in_a_new_directory)
{
    s_open_ok();
    cr_assert_eq(rec.next_id, 1);
    cr_assert_eq(rec.queued + rec.results + rec.mods, 0);
    cr_assert(pd_journal_writable(jn));
    cr_assert_gt(pd_journal_bytes(jn), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    cr_assert_eq(stat(sub, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700, "the directory is private");
    s_open_ok();
    cr_assert_eq(rec.next_id, 1);
}

Test(unit_journal, a_clean_stop_keeps_the_exact_next_id)
{
    s_open_ok();
    s_put_module();
    s_submit(7, 0, NULL);
    s_commit();
    s_open_ok(); /* the previous one was closed cleanly */
    cr_assert_eq(rec.next_id, 8, "no gap after a clean stop");
}

Test(unit_journal, synchronous_task_ids_are_never_handed_out_twice)
{
    s_open_ok();
    cr_assert_eq(rec.next_task, 0, "nothing recorded yet");
    cr_assert_eq(pd_journal_tag(jn), 0);
    pd_journal_put_task_id(jn, 5);
    cr_assert_neq(pd_journal_tag(jn), 0, "a task's reply waits for its id to be on disk");
    s_commit();
    pd_journal_put_task_id(jn, 6);
    s_commit();
    s_open_ok();
    cr_assert_eq(rec.next_task, 6);
    pd_tasks_t *tasks = pd_tasks_new(0);
    cr_assert_eq(pd_tasks_next_id(tasks), 1);
    pd_tasks_set_next_id(tasks, rec.next_task);
    cr_assert_eq(pd_tasks_next_id(tasks), 6);
    pd_tasks_set_next_id(tasks, 2);
    cr_assert_eq(pd_tasks_next_id(tasks), 6, "ids only grow");
    pd_tasks_destroy(&tasks);
}

Test(unit_journal, queued_and_running_jobs_come_back_queued_with_their_arguments)
{
    s_open_ok();
    s_put_module();
    uint64_t a = s_submit(3, 10, NULL);
    uint64_t b = s_submit(2, 20, NULL);
    s_commit();
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), a); /* running at the crash */
    s_open_ok();
    cr_assert_eq(rec.mods, 1);
    cr_assert_geq(pd_mods_find(mods, modhash), 0, "the module came back");
    cr_assert_eq(rec.queued, 5);
    cr_assert_eq(pd_jobs_next_id(jobs), 6, "ids continue after the highest used");
    for (uint64_t id = a; id < a + 3; id++) {
        cr_assert_eq(pd_jobs_state(jobs, id), PD_JOB_QUEUED);
        cr_assert_eq(s_arg(id), 10 + (id - a));
        cr_assert_str_eq(pd_jobs_fn_name(jobs, pd_jobs_get(jobs, id)->fn), "square");
    }
    cr_assert_eq(s_arg(b + 1), 21);
    /* The queue hands them out in id order. */
    for (uint64_t id = 1; id <= 5; id++)
        cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), id);
}

Test(unit_journal, a_batch_comes_back_with_its_client_cap_and_shared_data)
{
    s_open_ok();
    s_put_module();
    static const char data[] = "numbers every job of the batch reads";
    char hash[PD_SHARED_HASH_LEN + 1];
    pd_shared_hash(data, sizeof data, hash);
    char swhy[200];
    cr_assert_geq(pd_shared_put(shared, hash, data, sizeof data, NULL, NULL, NULL, swhy,
                                sizeof swhy), 0, "%s", swhy);
    pd_journal_put_shared(jn, hash, data, sizeof data);
    uint64_t a = s_submit_ex(3, 0, NULL, 2, hash);
    s_commit();
    s_open_ok();
    cr_assert_eq(rec.shared, 1);
    int64_t si = pd_shared_find(shared, hash);
    cr_assert_geq(si, 0, "the shared data came back");
    cr_assert_eq(pd_shared_get(shared, (uint32_t) si)->len, sizeof data);
    pd_jobrec_t *job = pd_jobs_get(jobs, a);
    cr_assert_not_null(job);
    cr_assert_eq(job->shared, (uint32_t) si + 1);
    cr_assert_eq(pd_jobs_shared_open(jobs, (uint32_t) si), 3, "its jobs keep it from eviction");
    uint8_t rid[PD_JOBS_MAX_CLIENT_ID];
    size_t ridlen;
    uint32_t max_slots;
    pd_jobs_client_of(jobs, job, rid, &ridlen, &max_slots);
    cr_assert_eq(ridlen, 6);
    cr_assert_arr_eq(rid, "tester", 6, "the submitter's queue came back");
    cr_assert_eq(max_slots, 2);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), a);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), a + 1);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), 0, "its cap of 2 holds after the restart");
    /* Evicted shared data leaves the journal. */
    pd_journal_drop_shared(jn, hash);
    s_commit();
    cr_assert_eq(s_count("shared"), 0);
}

Test(unit_journal, a_batch_keeps_its_submitters_key_across_restarts_and_rewrites)
{
    /* Workers judge code by its submitter's key (docs/security.md): a
       restart must not turn a listed client's jobs into anonymous ones. */
    static const char key[] = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    s_open_ok();
    s_put_module();
    s_owner = key;
    uint64_t a = s_submit(2, 0, NULL);
    s_owner = NULL;
    uint64_t b = s_submit(2, 10, NULL);
    s_commit();
    s_open_ok();
    cr_assert_str_eq(pd_jobs_fn_owner(jobs, pd_jobs_get(jobs, a)->fn), key);
    cr_assert_str_eq(pd_jobs_fn_owner(jobs, pd_jobs_get(jobs, b)->fn), "");
    pd_journal_resync(jn);
    cr_assert_eq(pd_journal_commit(jn), 0);
    s_open_ok();
    cr_assert_str_eq(pd_jobs_fn_owner(jobs, pd_jobs_get(jobs, a + 1)->fn), key,
                     "the key survives a rewrite from memory");
    cr_assert_str_eq(pd_jobs_fn_owner(jobs, pd_jobs_get(jobs, b + 1)->fn), "");
}

Test(unit_journal, final_jobs_keep_their_owner_after_their_batch_row_is_gone)
{
    /* Results wait for their owner (docs/security.md): once every job of a
       batch is final its row leaves, but its owner must come back with the
       results, after a restart and after a rewrite from memory, and leave
       when every job of it is forgotten. */
    static const char key[] = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    static const char tok[] = "local:0123456789abcdef0123456789abcdef";
    s_open_ok();
    s_put_module();
    s_owner = key;
    uint64_t a = s_submit(3, 0, NULL);
    s_owner = tok;
    uint64_t b = s_submit(3, 10, NULL);
    s_owner = NULL;
    uint64_t c = s_submit(2, 20, NULL);
    s_commit();
    for (uint64_t id = a; id < c + 2; id++)
        s_done(id, (double) id);
    s_commit();
    cr_assert_eq(s_count("batches"), 0);
    cr_assert_eq(s_count("owners"), 2, "the jobs of nobody need no row");
    for (int round = 0; round < 2; round++) {
        s_open_ok();
        cr_assert_eq(rec.results, 8);
        for (uint64_t id = a; id < a + 3; id++)
            cr_assert_str_eq(pd_jobs_owner_id(jobs, pd_jobs_get(jobs, id)->fn), key);
        for (uint64_t id = b; id < b + 3; id++) {
            cr_assert_str_eq(pd_jobs_owner_id(jobs, pd_jobs_get(jobs, id)->fn), tok);
            cr_assert_str_eq(pd_jobs_fn_owner(jobs, pd_jobs_get(jobs, id)->fn), "",
                             "workers get keys only");
        }
        cr_assert_str_eq(pd_jobs_owner_id(jobs, pd_jobs_get(jobs, c)->fn), "");
        cr_assert_eq(s_value(b + 2), (double) (b + 2));
        pd_journal_resync(jn); /* the second round reads the rewrite */
        cr_assert_eq(pd_journal_commit(jn), 0);
    }
    /* Forgotten in part, the row stays; forgotten whole, it goes. */
    s_open_ok();
    cr_assert(pd_jobs_forget(jobs, a));
    cr_assert(pd_jobs_forget(jobs, a + 1));
    s_commit();
    cr_assert_eq(s_count("owners"), 2);
    s_open_ok();
    cr_assert_str_eq(pd_jobs_owner_id(jobs, pd_jobs_get(jobs, a + 2)->fn), key);
    cr_assert(pd_jobs_forget(jobs, a + 2));
    s_commit();
    cr_assert_eq(s_count("owners"), 1);
}

Test(unit_journal, a_journal_without_an_owners_table_gets_one)
{
    s_open_ok();
    s_put_module();
    uint64_t a = s_submit(2, 0, NULL);
    s_commit();
    s_close();
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "DROP TABLE owners", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    s_open_ok();
    cr_assert_eq(rec.queued, 2);
    s_owner = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    s_submit(1, 5, NULL);
    s_owner = NULL;
    s_commit();
    cr_assert_eq(s_count("owners"), 1);
    s_open_ok();
    cr_assert_eq(pd_jobs_state(jobs, a), PD_JOB_QUEUED);
}

Test(unit_journal, results_come_back_and_finished_batches_leave_the_journal)
{
    s_open_ok();
    s_put_module();
    uint64_t a = s_submit(4, 0, NULL);
    s_commit();
    s_done(a, 1.5);
    s_done(a + 1, 2.5);
    pd_jobs_seal(jobs);
    cr_assert_eq(pd_jobs_pop(jobs, PD_JOBS_CPU), a + 2);
    pd_jobs_set_failed(jobs, a + 2, "PD_ETASK", "no", "host1", 0);
    pd_jobs_set_cancelled(jobs, a + 3);
    s_commit();
    cr_assert_eq(s_count("batches"), 0, "every job is final: the batch row is gone");
    cr_assert_eq(s_count("results"), 2);
    s_open_ok();
    cr_assert_eq(rec.results, 4);
    cr_assert_eq(rec.queued, 0);
    cr_assert_eq(s_value(a), 1.5);
    cr_assert_eq(s_value(a + 1), 2.5);
    cr_assert_eq(pd_jobs_state(jobs, a + 2), PD_JOB_FAILED);
    cr_assert_eq(pd_jobs_state(jobs, a + 3), PD_JOB_CANCELLED);
    const uint8_t *val;
    uint32_t len;
    cr_assert(pd_jobs_result(jobs, a + 2, &val, &len));
    cr_assert(memmem(val, len, "PD_ETASK", 8) != NULL);
}

Test(unit_journal, a_crash_loses_only_what_was_not_committed)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        s_open_ok();
        s_put_module();
        s_submit(2, 0, NULL);
        s_commit();
        s_submit(3, 0, NULL); /* never committed: its `accepted` was never sent */
        s_done(1, 7);
        pd_jobs_seal(jobs);
        raise(SIGKILL); /* dies with the transaction open */
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    s_open_ok();
    /* After a crash ids go on from the reserve written ahead of them: jobs 3
       to 5 may have reached a worker, so their ids are not given again. */
    cr_assert_geq(rec.next_id, 6);
    cr_assert_leq(rec.next_id, 3 + 1000000);
    cr_assert_eq(rec.queued, 2);
    cr_assert_eq(pd_jobs_state(jobs, 1), PD_JOB_QUEUED, "its result was not committed");
    cr_assert_eq(pd_jobs_state(jobs, 3), PD_JOB_UNKNOWN);
}

Test(unit_journal, forgotten_jobs_stay_forgotten_and_gone_ids_merge)
{
    s_open_ok();
    s_put_module();
    uint64_t a = s_submit(6, 0, NULL);
    s_commit();
    for (uint64_t id = a; id < a + 4; id++)
        s_done(id, (double) id);
    s_commit();
    /* Jobs 5 and 6 still queued: the batch lives; forget 1, 3, then 2. */
    cr_assert(pd_jobs_forget(jobs, 1));
    cr_assert(pd_jobs_forget(jobs, 3));
    s_commit();
    cr_assert(pd_jobs_forget(jobs, 2));
    s_commit();
    cr_assert_eq(s_count("gone"), 1, "[1, 3] is one interval");
    s_open_ok();
    for (uint64_t id = 1; id <= 3; id++)
        cr_assert_eq(pd_jobs_state(jobs, id), PD_JOB_UNKNOWN, "job %llu came back",
                     (unsigned long long) id);
    cr_assert_eq(s_value(4), 4.0);
    cr_assert_eq(pd_jobs_state(jobs, 5), PD_JOB_QUEUED);
    cr_assert_eq(pd_jobs_queued(jobs), 2);
    /* Forgetting the rest drops the segment. */
    cr_assert(pd_jobs_forget(jobs, 4));
    s_commit();
    cr_assert_eq(s_count("results"), 0);
}

Test(unit_journal, the_result_ttl_survives_a_restart)
{
    s_open_ok();
    s_put_module();
    uint64_t a = s_submit(3, 0, NULL);
    s_commit();
    for (uint64_t id = a; id < a + 3; id++)
        s_done(id, 1);
    s_commit();
    cr_assert(pd_jobs_mark_fetched(jobs, 1, 5000));
    cr_assert(pd_jobs_mark_fetched(jobs, 2, 5000));
    cr_assert(pd_jobs_mark_fetched(jobs, 3, 6000));
    s_commit();
    s_open_ok();
    cr_assert_eq(pd_jobs_expire(jobs, 5000 + 99, 100), 0);
    cr_assert_eq(pd_jobs_expire(jobs, 5000 + 100, 100), 2);
    cr_assert_eq(pd_jobs_state(jobs, 3), PD_JOB_DONE);
    s_commit();
    cr_assert_eq(s_count("fetched"), 1, "the expired entry left the journal");
    s_open_ok();
    cr_assert_eq(pd_jobs_state(jobs, 1), PD_JOB_UNKNOWN);
    cr_assert_eq(pd_jobs_expire(jobs, 6100, 100), 1);
}

Test(unit_journal, submit_tokens_survive_a_restart)
{
    s_open_ok();
    s_put_module();
    uint64_t a = s_submit(4, 0, "client-1/chunk-7");
    s_commit();
    s_open_ok();
    cr_assert_eq(rec.tokens, 1);
    uint64_t first;
    uint32_t n;
    cr_assert(pd_jobs_token_find(jobs, "client-1/chunk-7", 16, &first, &n));
    cr_assert_eq(first, a);
    cr_assert_eq(n, 4);
    cr_assert_not(pd_jobs_token_find(jobs, "client-1/chunk-8", 16, &first, &n));
}

Test(unit_journal, a_second_broker_cannot_open_the_same_journal)
{
    s_open_ok();
    pd_jobs_t *j2 = pd_jobs_new(10);
    pd_mods_t *m2 = pd_mods_new();
    int err;
    pd_journal_config_t cfg = {.path = path};
    pd_journal_t *other = pd_journal_open(&cfg, j2, m2, NULL, &rec, why, sizeof why, &err);
    cr_assert_null(other);
    cr_assert_eq(err, PD_EIO);
    cr_assert(strstr(why, "in use by another playdoh-broker"), "%s", why);
    pd_jobs_destroy(&j2);
    pd_mods_destroy(&m2);
}

/* Builds a closed journal with results, for the damage tests. */
static void s_make_journal(void)
{
    s_open_ok();
    s_put_module();
    uint64_t a = s_submit(50, 0, NULL);
    s_commit();
    for (uint64_t id = a; id < a + 50; id++)
        s_done(id, 12345.678 + (double) id);
    s_commit();
    s_close(); /* checkpoints the log into the database file */
}

static void s_expect_damaged(const char *what)
{
    int err = s_open();
    cr_assert_eq(err, PD_EIO, "%s was accepted", what);
    cr_assert(strstr(why, "is damaged"), "%s: %s", what, why);
    cr_assert(strstr(why, "--journal-reset"), "%s: the way out is named: %s", what, why);
}

Test(unit_journal, a_flipped_byte_in_a_result_is_caught_by_its_checksum)
{
    s_make_journal();
    /* Find the packed double of job 7's result (12352.678) in the file. */
    double v = 12345.678 + 7;
    uint64_t bits;
    memcpy(&bits, &v, 8);
    uint8_t pat[9] = {0xcb};
    for (int i = 0; i < 8; i++)
        pat[1 + i] = (uint8_t) (bits >> (56 - 8 * i));
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    uint8_t *data = malloc((size_t) size);
    fseek(f, 0, SEEK_SET);
    cr_assert_eq(fread(data, 1, (size_t) size, f), (size_t) size);
    uint8_t *hit = memmem(data, (size_t) size, pat, sizeof pat);
    cr_assert_not_null(hit, "the result is in the file");
    fseek(f, (long) (hit - data) + 8, SEEK_SET);
    fputc(hit[8] ^ 0x01, f);
    fclose(f);
    free(data);
    s_expect_damaged("a flipped bit");
    cr_assert(strstr(why, "checksum"), "%s", why);
}

Test(unit_journal, a_truncated_journal_is_refused)
{
    s_make_journal();
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(truncate(path, st.st_size / 2), 0);
    s_expect_damaged("a truncated file");
}

Test(unit_journal, garbage_and_foreign_databases_are_refused)
{
    s_make_journal();
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 10000; i++)
        fputc(i * 7 % 251, f);
    fclose(f);
    s_expect_damaged("garbage");
    remove(path);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "CREATE TABLE photos(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    s_expect_damaged("another program's database");
    cr_assert(strstr(why, "not a Playdoh journal"), "%s", why);
}

Test(unit_journal, reset_moves_a_damaged_journal_aside_and_starts_empty)
{
    s_make_journal();
    cr_assert_eq(truncate(path, 1000), 0);
    pd_journal_config_t cfg = {.path = path, .reset = true};
    cr_assert_eq(s_open_cfg(&cfg), 0, "%s", why);
    cr_assert_eq(rec.next_id, 1);
    cr_assert(strstr(rec.moved, ".old-"), "%s", rec.moved);
    struct stat st;
    cr_assert_eq(stat(rec.moved, &st), 0, "the old file is kept");
    cr_assert_eq(st.st_size, 1000);
}

Test(unit_journal, a_journal_that_cannot_be_written_fails_then_rewrites_itself)
{
    signal(SIGXFSZ, SIG_IGN); /* a file size limit then fails the write with EFBIG */
    s_open_ok();
    s_put_module();
    uint64_t a = s_submit(10, 0, NULL);
    s_commit();
    s_close();
    s_open_ok(); /* the log was checkpointed: the files are small */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = pd_journal_bytes(jn) + (64 << 10);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    /* 1 MiB of arguments cannot be written. */
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    msgpack_pack_array(&pk, 1);
    static char big[1 << 20];
    memset(big, 'x', sizeof big);
    msgpack_pack_bin(&pk, sizeof big);
    msgpack_pack_bin_body(&pk, big, sizeof big);
    uint64_t first;
    uint32_t n;
    char swhy[200];
    pd_jobs_submit_t sub = {.fn = "square", .args = b.data, .args_len = b.len, .retries = 3};
    cr_assert_eq(pd_jobs_submit_ex(jobs, &sub, &first, &n, swhy, sizeof swhy), 0);
    pd_journal_submit(jn, first, n, &sub, modhash, NULL, NULL, pd_jobs_get(jobs, first)->arg,
                      NULL, 0, 1000);
    pd_buf_free(&b);
    cr_assert_eq(pd_journal_commit(jn), PD_EIO);
    cr_assert_not(pd_journal_writable(jn));
    cr_assert(strstr(pd_journal_error(jn), "cannot"), "%s", pd_journal_error(jn));
    cr_assert(strstr(pd_journal_error(jn), "full"), "the likely cause is named: %s",
              pd_journal_error(jn));
    /* While failing, changes are kept in memory only. */
    s_done(a, 3.0);
    pd_jobs_seal(jobs);
    cr_assert_eq(pd_journal_tag(jn), 0, "nothing waits for a failing journal");
    pd_journal_resync(jn);
    cr_assert_eq(pd_journal_commit(jn), PD_EIO, "still too small");
    cr_assert_not(pd_journal_writable(jn));
    /* Room again: the rewrite puts memory back on disk. */
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    pd_journal_resync(jn);
    cr_assert_eq(pd_journal_commit(jn), 0, "%s", pd_journal_error(jn));
    cr_assert(pd_journal_writable(jn));
    pd_journal_stats_t st;
    pd_journal_stats(jn, &st);
    cr_assert_eq(st.failures, 1);
    cr_assert_eq(st.resyncs, 1);
    s_open_ok();
    cr_assert_eq(s_value(a), 3.0);
    cr_assert_eq(pd_jobs_state(jobs, first), PD_JOB_QUEUED, "the big job is on disk now");
    cr_assert_eq(pd_jobs_queued(jobs), 10);
    cr_assert_eq(rec.next_id, first + 1);
}

Test(unit_journal, a_rewrite_from_memory_recovers_the_same_state)
{
    s_open_ok();
    s_put_module();
    uint64_t a = s_submit(100, 0, "tok");
    uint64_t b = s_submit(100, 100, NULL);
    s_commit();
    for (uint64_t id = a; id < a + 150; id++)
        s_done(id, (double) id * 2);
    s_commit();
    for (uint64_t id = a + 10; id < a + 20; id++)
        cr_assert(pd_jobs_forget(jobs, id));
    for (uint64_t id = a + 30; id < a + 40; id++)
        cr_assert(pd_jobs_mark_fetched(jobs, id, 4000));
    s_commit();
    pd_journal_resync(jn);
    cr_assert_eq(pd_journal_commit(jn), 0);
    s_open_ok();
    cr_assert_eq(rec.next_id, 201);
    cr_assert_eq(rec.results, 140);
    cr_assert_eq(rec.queued, 50);
    cr_assert_eq(rec.tokens, 1);
    for (uint64_t id = a + 10; id < a + 20; id++)
        cr_assert_eq(pd_jobs_state(jobs, id), PD_JOB_UNKNOWN);
    cr_assert_eq(s_value(a + 149), (double) (a + 149) * 2);
    cr_assert_eq(s_arg(b + 99), 199);
    cr_assert_eq(pd_jobs_expire(jobs, 4100, 100), 10);
}

Test(unit_journal, the_size_bound_is_reported)
{
    pd_journal_config_t cfg = {.path = path, .max_bytes = 1};
    cr_assert_eq(s_open_cfg(&cfg), 0, "%s", why);
    cr_assert(pd_journal_full(jn), "%llu bytes", (unsigned long long) pd_journal_bytes(jn));
    cr_assert_eq(pd_journal_max_bytes(jn), 1);
    cfg.max_bytes = 0;
    cr_assert_eq(s_open_cfg(&cfg), 0, "%s", why);
    cr_assert_not(pd_journal_full(jn));
    pd_journal_compact(jn);
    cr_assert_eq(pd_journal_commit(jn), 0);
}

Test(unit_journal, the_default_path_follows_systemd_then_xdg)
{
    char p[512];
    setenv("STATE_DIRECTORY", "/var/lib/playdoh-broker", 1);
    cr_assert_eq(pd_journal_default_path(p, sizeof p), 0);
    cr_assert_str_eq(p, "/var/lib/playdoh-broker/broker.journal");
    unsetenv("STATE_DIRECTORY");
    if (geteuid() == 0) {
        cr_assert_eq(pd_journal_default_path(p, sizeof p), 0);
        cr_assert_str_eq(p, "/var/lib/playdoh/broker.journal");
        return;
    }
    setenv("XDG_STATE_HOME", "/x/state", 1);
    cr_assert_eq(pd_journal_default_path(p, sizeof p), 0);
    cr_assert_str_eq(p, "/x/state/playdoh/broker.journal");
    unsetenv("XDG_STATE_HOME");
    setenv("HOME", "/home/u", 1);
    cr_assert_eq(pd_journal_default_path(p, sizeof p), 0);
    cr_assert_str_eq(p, "/home/u/.local/state/playdoh/broker.journal");
}
