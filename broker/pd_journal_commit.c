/*  pd_journal_commit: batches and group commit.

    Loop: every change becomes an operation appended to the open batch
    (pd_journal_new_op); pd_journal_flush closes it, numbers it and sends it
    to the writer unless the writer is still busy with the previous one;
    pd_journal_settle reads the writer's answers and frees what they settle.

    Writer: it takes every batch waiting on the pipe (up to S_GROUP), applies
    them in one transaction and commits: one fsync for all of them. The
    first failing statement marks the transaction failed; the rest is
    skipped, the transaction rolled back, the batches reported failed, and
    the writer refuses every later batch until a snapshot (a full rewrite)
    arrives, which it applies on a fresh connection (SQLite keeps an
    exclusive-mode connection in its error state after an I/O error).
*/
#include "pd_journal_int.h"
#include "pd_error.h"
#include "pd_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_BACKOFF_MIN_MS 1000  /* first retry of a failing journal */
#define S_BACKOFF_MAX_MS 60000 /* longest wait between retries */
#define S_GROUP 256            /* batches one commit takes at most */
#define S_ID_RESERVE 1000000u  /* ids written ahead as used: a job may go to a
                                  worker before its submit is on disk, and its id
                                  is still never handed out again after a crash */
#define S_OPEN_UNIT 4096       /* operations of the open batch counted as one in
                                  pd_journal_backlog */

/* ---- the writer thread ---------------------------------------------------- */

/* Applies a group of batches in one transaction. Returns true when it
   committed. */
static bool s_write_group(pd_journal_t *jn, pd_journal_batch_t **group, size_t n, bool *compact,
                          bool *vacuum)
{
    if (group[0]->snapshot && jn->wfailed) {
        char why[PATH_MAX + 700];
        if (pd_journal_reconnect(jn, why, sizeof why) != 0) {
            snprintf(jn->werr, sizeof jn->werr, "%s", why);
            return false;
        }
        jn->wfailed = false;
    }
    if (jn->wfailed)
        return false; /* until a snapshot */
    jn->txn_failed = false;
    if (sqlite3_exec(jn->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        pd_journal_fail(jn, "cannot begin a transaction");
    uint64_t next_id = jn->wnext_id;
    for (size_t b = 0; b < n && !jn->txn_failed; b++) {
        if (group[b]->snapshot &&
            sqlite3_exec(jn->db, "DELETE FROM batches; DELETE FROM results; DELETE FROM gone; "
                         "DELETE FROM fetched; DELETE FROM tokens; DELETE FROM shared; "
                         "DELETE FROM owners;", NULL,
                         NULL, NULL) !=
                SQLITE_OK)
            pd_journal_fail(jn, "cannot empty the journal for a rewrite");
        for (size_t i = 0; i < group[b]->n && !jn->txn_failed; i++) {
            const pd_journal_op_t *op = &group[b]->ops[i];
            *compact |= op->kind == PD_JOP_COMPACT;
            *vacuum |= op->kind == PD_JOP_VACUUM;
            pd_journal_write_op(jn, op);
        }
        if (group[b]->next_id > next_id || group[b]->exact)
            next_id = group[b]->next_id;
    }
    if (!jn->txn_failed && next_id != jn->wnext_id)
        pd_journal_write_meta(jn, "next_id", (int64_t) next_id);
    if (!jn->txn_failed && sqlite3_exec(jn->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        pd_journal_fail(jn, "cannot commit");
    if (jn->txn_failed) {
        if (!sqlite3_get_autocommit(jn->db))
            sqlite3_exec(jn->db, "ROLLBACK", NULL, NULL, NULL);
        jn->wfailed = true;
        return false;
    }
    jn->wnext_id = next_id;
    return true;
}

static void s_writer(zsock_t *pipe, void *arg)
{
    pd_journal_t *jn = arg;
    zsock_signal(pipe, 0);
    pd_journal_batch_t *group[S_GROUP];
    bool stop = false;
    while (!stop) {
        size_t n = 0;
        char *cmd = NULL;
        void *ptr = NULL;
        /* Block for the first batch, then take whatever else waits. */
        while (n < S_GROUP) {
            if (n > 0 && !(zsock_events(pipe) & ZMQ_POLLIN))
                break;
            if (zsock_recv(pipe, "sp", &cmd, &ptr) != 0) {
                stop = true;
                break;
            }
            bool term = !cmd || strcmp(cmd, "BATCH") != 0;
            zstr_free(&cmd);
            if (term) {
                stop = true;
                break;
            }
            group[n++] = ptr;
            if (((pd_journal_batch_t *) ptr)->snapshot)
                break; /* a rewrite commits alone */
        }
        if (n == 0)
            break;
        /* A snapshot behind normal batches waits for the next round: it
           must start the transaction that empties the tables. */
        size_t take = n;
        for (size_t i = 1; i < n; i++)
            if (group[i]->snapshot) {
                take = i;
                break;
            }
        for (size_t start = 0; start < n;) {
            size_t end = start == 0 ? take : n;
            bool compact = false, vacuum = false;
            bool ok = s_write_group(jn, group + start, end - start, &compact, &vacuum);
            if (ok)
                pd_journal_shrink(jn, compact, vacuum);
            uint64_t bytes = pd_journal_file_bytes(jn);
            zsock_send(pipe, "s8188s", "DONE", group[end - 1]->seq, (uint8_t) ok,
                       group[end - 1]->next_id, bytes, ok ? "" : jn->werr);
            start = end;
        }
    }
}

/* ---- batches (the loop's thread) -------------------------------------- */

pd_journal_op_t *pd_journal_new_op(pd_journal_t *jn, pd_journal_op_kind_t kind)
{
    if (!jn->open) {
        jn->open = calloc(1, sizeof *jn->open);
        if (!jn->open)
            return NULL;
    }
    pd_journal_batch_t *b = jn->open;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 32;
        pd_journal_op_t *ops = realloc(b->ops, cap * sizeof *ops);
        if (!ops)
            return NULL;
        b->ops = ops;
        b->cap = cap;
    }
    pd_journal_op_t *op = &b->ops[b->n++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    return op;
}

void pd_journal_lost_op(pd_journal_t *jn)
{
    if (!jn->recording)
        return;
    snprintf(jn->err, sizeof jn->err, "out of memory for a journal operation");
    pd_log_error("journal %s: %s", jn->path, jn->err);
    jn->recording = false;
    jn->writable = false;
    jn->stats.failures++;
    jn->backoff_ms = S_BACKOFF_MIN_MS;
    jn->retry_ms = zclock_mono() + jn->backoff_ms;
}

void pd_journal_batch_free(pd_journal_t *jn, pd_journal_batch_t **p)
{
    pd_journal_batch_t *b = *p;
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        pd_journal_op_t *op = &b->ops[i];
        if (op->blob)
            pd_jobs_blob_release(jn->jobs, &op->blob, op->args);
        free(op->text);
    }
    free(b->ops);
    free(b);
    *p = NULL;
}

void pd_journal_hold_blob(pd_journal_op_t *op, pd_blob_t *blob, bool args)
{
    pd_jobs_blob_hold(blob);
    op->blob = blob;
    op->args = args;
}
uint64_t pd_journal_tag(const pd_journal_t *jn)
{
    if ((jn->open && jn->open->n) || jn->gone_hi || jn->f_count)
        return jn->next_seq;
    return jn->sent_seq > jn->done_seq ? jn->sent_seq : 0;
}

size_t pd_journal_backlog(const pd_journal_t *jn)
{
    /* A batch in flight, plus the open one counted in units of S_OPEN_UNIT
       operations: what the loop has piled up while the disk was busy. */
    return jn->backlog + (jn->open ? jn->open->n / S_OPEN_UNIT : 0);
}

bool pd_journal_visible(const pd_journal_t *jn, uint64_t seq)
{
    return seq == 0 || seq <= jn->done_seq || !jn->writable;
}
void *pd_journal_socket(pd_journal_t *jn) { return zsock_resolve(zactor_sock(jn->writer)); }

/* Sends a closed batch to the writer. */
void pd_journal_send(pd_journal_t *jn, pd_journal_batch_t *b)
{
    b->seq = jn->next_seq++;
    uint64_t next = pd_jobs_next_id(jn->jobs);
    if (b->exact) {
        b->next_id = next;
    } else {
        if (next + S_ID_RESERVE / 2 > jn->reserved)
            jn->reserved = next + S_ID_RESERVE;
        b->next_id = jn->reserved;
    }
    if (jn->tail)
        jn->tail->next = b;
    else
        jn->head = b;
    jn->tail = b;
    jn->backlog++;
    jn->sent_seq = b->seq;
    zsock_send(jn->writer, "sp", "BATCH", b);
}

void pd_journal_flush(pd_journal_t *jn)
{
    if (jn->backlog && jn->recording)
        return; /* the writer is busy: more goes into the next commit */
    if (atomic_load(&jn->held))
        return; /* a test stands in for a slow disk */
    pd_journal_flush_runs(jn);
    if (!jn->open || !jn->open->n)
        return;
    if (!jn->recording) {
        /* Failing: the rewrite will cover it. Replies waiting for it are
           told it failed, by the next pd_journal_settle. */
        pd_journal_batch_free(jn, &jn->open);
        jn->dropped_seq = jn->next_seq++;
        jn->sent_seq = jn->dropped_seq;
        return;
    }
    pd_journal_batch_t *b = jn->open;
    jn->open = NULL;
    pd_journal_send(jn, b);
}

bool pd_journal_settle(pd_journal_t *jn, pd_journal_done_t *done)
{
    if (jn->dropped_seq && !jn->backlog) {
        /* settled after everything sent before it */
        done->seq = jn->done_seq = jn->dropped_seq;
        done->ok = false;
        done->next_id = 0;
        jn->dropped_seq = 0;
        return true;
    }
    if (!(zsock_events(zactor_sock(jn->writer)) & ZMQ_POLLIN))
        return false;
    char *cmd = NULL, *err = NULL;
    uint64_t seq = 0, next_id = 0, bytes = 0;
    uint8_t ok = 0;
    if (zsock_recv(jn->writer, "s8188s", &cmd, &seq, &ok, &next_id, &bytes, &err) != 0 ||
        !cmd || strcmp(cmd, "DONE") != 0) {
        zstr_free(&cmd);
        zstr_free(&err);
        return false;
    }
    zstr_free(&cmd);
    bool snapshot = false;
    while (jn->head && jn->head->seq <= seq) {
        pd_journal_batch_t *b = jn->head;
        jn->head = b->next;
        if (!jn->head)
            jn->tail = NULL;
        jn->backlog--;
        snapshot |= b->snapshot;
        jn->stats.batches++;
        pd_journal_batch_free(jn, &b);
    }
    jn->done_seq = seq;
    jn->bytes = bytes;
    if (ok) {
        jn->stats.commits++;
        if (snapshot) {
            jn->snapshot_in_flight = false;
            jn->writable = true;
            jn->err[0] = 0;
            jn->stats.resyncs++;
            pd_log_info("journal %s is writable again: rewrote it from memory (%.1f MiB); "
                        "new jobs are accepted again", jn->path, bytes / 1048576.0);
        }
    } else {
        if (jn->writable || jn->snapshot_in_flight) {
            snprintf(jn->err, sizeof jn->err, "%s", err ? err : "a write failed");
            if (jn->writable) {
                jn->stats.failures++;
                jn->backoff_ms = S_BACKOFF_MIN_MS;
                pd_log_error("journal %s cannot be written (%s): new jobs are refused until it "
                             "can; jobs already accepted go on; retrying with a back-off of 1 "
                             "to 60 s", jn->path, jn->err);
            } else {
                jn->backoff_ms = jn->backoff_ms * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS
                                                                       : jn->backoff_ms * 2;
            }
            jn->retry_ms = zclock_mono() + jn->backoff_ms;
        }
        jn->writable = false;
        jn->recording = false;
        jn->snapshot_in_flight = false;
        jn->gone_hi = 0;
        jn->f_count = 0;
        pd_journal_batch_free(jn, &jn->open); /* it could not be written either */
    }
    zstr_free(&err);
    done->seq = seq;
    done->ok = ok;
    done->next_id = next_id;
    return true;
}

int pd_journal_wait(pd_journal_t *jn, void (*on_done)(void *user, const pd_journal_done_t *done),
                    void *user)
{
    pd_journal_flush(jn);
    bool failed = false;
    while (jn->backlog || jn->dropped_seq || pd_journal_tag(jn)) {
        zmq_pollitem_t it = {.socket = pd_journal_socket(jn), .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 1000) < 0 && zmq_errno() != EINTR)
            break;
        pd_journal_done_t done;
        while (pd_journal_settle(jn, &done)) {
            failed |= !done.ok;
            if (on_done)
                on_done(user, &done);
        }
        pd_journal_flush(jn); /* what waited behind the settled batch */
    }
    return failed || !jn->writable ? PD_EIO : 0;
}

int pd_journal_commit(pd_journal_t *jn) { return pd_journal_wait(jn, NULL, NULL); }

void pd_journal_hold(pd_journal_t *jn, bool hold) { atomic_store(&jn->held, hold); }

int pd_journal_writer_start(pd_journal_t *jn, char *why, size_t whycap)
{
    zsys_handler_set(NULL); /* the broker keeps its own SIGINT/SIGTERM handlers */
    jn->writer = zactor_new(s_writer, jn);
    if (!jn->writer) {
        snprintf(why, whycap, "journal %s: cannot start its writer thread", jn->path);
        return PD_ESYS;
    }
    return 0;
}

void pd_journal_writer_stop(pd_journal_t *jn)
{
    if (jn->writer) {
        pd_journal_wait(jn, NULL, NULL);
        if (jn->writable && pd_journal_new_op(jn, PD_JOP_VACUUM)) {
            /* A clean stop: the exact next id, without the reserve, so that
               ids go on without a gap. */
            pd_journal_batch_t *b = jn->open;
            jn->open = NULL;
            b->exact = true;
            pd_journal_send(jn, b);
            pd_journal_wait(jn, NULL, NULL);
        }
        zactor_destroy(&jn->writer); /* the writer is idle: it ends at once */
    }
    pd_journal_batch_free(jn, &jn->open);
    while (jn->head) { /* only if the writer died */
        pd_journal_batch_t *b = jn->head;
        jn->head = b->next;
        pd_journal_batch_free(jn, &b);
    }
}
