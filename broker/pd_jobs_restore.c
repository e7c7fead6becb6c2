/*  pd_jobs_restore: what the journal needs of the job table. Putting back
    journalled batches and result segments at recovery, owners of final
    jobs, and walks over every known job (owners' counts, the next known id).
*/
#include "pd_jobs_int.h"
#include "pd_error.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pd_jobs_set_next_id(pd_jobs_t *j, uint64_t next_id)
{
    if (next_id > j->next_id)
        j->next_id = next_id;
}

/* The record slot of id (its chunk allocated); NULL when out of memory. */
static pd_jobrec_t *s_slot(pd_jobs_t *j, uint64_t id)
{
    if (pd_jobs_chunks_reserve(j, id, 1))
        return NULL;
    return &j->chunks[(id - 1) >> PD_JOBS_CHUNK_BITS][(id - 1) & (PD_JOBS_CHUNK - 1)];
}

/* The checks of a journalled batch: ids below the next id and unused, fn,
   retries, retry_failed and client in bounds, args an array of n values
   (r is left at its first element). Returns 0 or PD_EPROTO with why. */
static int s_restore_check(pd_jobs_t *j, uint64_t first, uint32_t n, const pd_jobs_submit_t *sub,
                           pd_rd_t *r, char *why, size_t whycap)
{
    size_t fnlen = strlen(sub->fn);
    if (n == 0 || first == 0 || first > j->next_id || n > j->next_id - first) {
        snprintf(why, whycap, "batch of %u jobs from id %llu does not fit below the next id "
                 "%llu", n, (unsigned long long) first, (unsigned long long) j->next_id);
        return PD_EPROTO;
    }
    if (fnlen == 0 || fnlen > PD_JOBS_MAX_FN || sub->retries > PD_JOBS_MAX_RETRIES ||
        sub->retry_failed > PD_JOBS_MAX_RETRY_FAILED || sub->client_len > PD_JOBS_MAX_CLIENT_ID) {
        snprintf(why, whycap, "batch from id %llu has a bad function name, retries, "
                 "retry_failed or client",
                 (unsigned long long) first);
        return PD_EPROTO;
    }
    pd_rd_init(r, sub->args, sub->args_len);
    uint32_t count;
    if (pd_mp_check(sub->args, sub->args_len, PD_MAX_DEPTH, NULL) || pd_rd_array(r, &count) ||
        count != n) {
        snprintf(why, whycap, "batch from id %llu: its arguments are not an array of %u values",
                 (unsigned long long) first, n);
        return PD_EPROTO;
    }
    for (uint64_t id = first; id < first + n; id++)
        if (pd_jobs_find(j, id)) {
            snprintf(why, whycap, "job %llu appears twice (batches overlap)",
                     (unsigned long long) id);
            return PD_EPROTO;
        }
    return 0;
}

int64_t pd_jobs_restore_batch(pd_jobs_t *j, uint64_t first, uint32_t n,
                              const pd_jobs_submit_t *sub,
                              bool (*skip)(void *user, uint64_t id), void *user, char *why,
                              size_t whycap)
{
    pd_rd_t r;
    int rc = s_restore_check(j, first, n, sub, &r, why, whycap);
    if (rc)
        return rc;
    uint32_t fni = pd_jobs_intern(j, sub->fn, sub->owner ? sub->owner : "", &sub->limits, &rc);
    bool gpu = sub->gpu || sub->cu;
    pd_jobs_client_t *cl = rc ? NULL : pd_jobs_client_get(j, sub->client, sub->client_len,
                                                          gpu ? PD_JOBS_GPU : PD_JOBS_CPU);
    pd_blob_t *blob = cl ? pd_blob_new(sub->args, sub->args_len, 0) : NULL;
    if (!blob || pd_jobs_chunks_reserve(j, first, n) || pd_jobs_shared_add(j, sub->shared, 0)) {
        free(blob);
        if (cl)
            pd_jobs_client_refresh(j, cl);
        snprintf(why, whycap, "out of memory");
        return PD_ENOMEM;
    }
    blob->key = first;
    uint64_t run_first = 0, run_n = 0, kept = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id = first + i;
        const uint8_t *raw;
        size_t rawlen;
        pd_rd_skip(&r, &raw, &rawlen);
        if (skip && skip(user, id))
            continue;
        pd_jobs_init_queued(j, id, sub, fni, cl->index, blob, raw, rawlen);
        blob->refs++;
        kept++;
        if (run_n && run_first + run_n == id) {
            run_n++;
        } else {
            if (run_n && pd_jobs_queue_push(cl, run_first, run_n))
                goto oom;
            run_first = id;
            run_n = 1;
        }
    }
    if (run_n && pd_jobs_queue_push(cl, run_first, run_n))
        goto oom;
    j->unfinished += kept;
    j->queued += kept;
    j->queued_cls[cl->cls] += kept;
    cl->queued += kept;
    cl->max_slots = sub->max_slots;
    pd_jobs_shared_add(j, sub->shared, kept);
    pd_jobs_client_refresh(j, cl);
    if (kept == 0) {
        free(blob);
        return 0;
    }
    j->arg_bytes += blob->len;
    return (int64_t) kept;
oom:
    snprintf(why, whycap, "out of memory");
    return PD_ENOMEM; /* the table is unusable; the caller gives up */
}

int64_t pd_jobs_restore_segment(pd_jobs_t *j, uint64_t seg, const uint8_t *data, size_t len,
                                bool (*skip)(void *user, uint64_t id), void *user, char *why,
                                size_t whycap)
{
    pd_rd_t r;
    pd_rd_init(&r, data, len);
    uint32_t n;
    if (pd_mp_check(data, len, PD_MAX_DEPTH, NULL) || pd_rd_array(&r, &n)) {
        snprintf(why, whycap, "result segment %llu is not a msgpack array",
                 (unsigned long long) seg);
        return PD_EPROTO;
    }
    pd_blob_t *blob = pd_blob_new(data, len, 0);
    if (!blob) {
        snprintf(why, whycap, "out of memory");
        return PD_ENOMEM;
    }
    blob->key = seg;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t three;
        uint64_t id, state;
        const uint8_t *val;
        size_t vlen;
        if (pd_rd_array(&r, &three) || three != 3 || pd_rd_uint(&r, &id) ||
            pd_rd_uint(&r, &state) || pd_rd_skip(&r, &val, &vlen) || id == 0 ||
            id >= j->next_id || state < PD_JOB_DONE || state > PD_JOB_CANCELLED) {
            snprintf(why, whycap, "result segment %llu: entry %u is not [id, state, value] "
                     "with a known id and a final state", (unsigned long long) seg, i);
            goto bad;
        }
        if (skip && skip(user, id))
            continue;
        pd_jobrec_t *job = pd_jobs_find(j, id);
        if (job && job->state != PD_JOB_QUEUED) {
            snprintf(why, whycap, "job %llu has two results (segment %llu)",
                     (unsigned long long) id, (unsigned long long) seg);
            goto bad;
        }
        if (job) {
            pd_jobs_finish(j, id, (uint8_t) state); /* leaves its client's queue */
        } else {
            job = s_slot(j, id);
            if (!job) {
                snprintf(why, whycap, "out of memory");
                goto bad;
            }
            memset(job, 0, sizeof *job);
            j->live[(id - 1) >> PD_JOBS_CHUNK_BITS]++;
            /* Its batch is gone: no function, no owner until the journal's
               record of the batch says (pd_jobs_set_owner). */
            int irc;
            const pd_limits_t none = {0};
            job->fn = pd_jobs_intern(j, "", "", &none, &irc);
            if (irc) {
                snprintf(why, whycap, "out of memory");
                goto bad;
            }
        }
        job->state = (uint8_t) state;
        job->res = blob;
        job->res_off = (uint32_t) (val - data);
        job->res_len = (uint32_t) vlen;
        blob->refs++;
    }
    if (blob->refs == 0) {
        free(blob);
        return 0;
    }
    return blob->refs;
bad:
    /* Jobs already pointing into the blob keep it; the caller gives up on
       the whole table anyway. */
    if (blob->refs == 0)
        free(blob);
    return PD_EPROTO;
}

int pd_jobs_set_owner(pd_jobs_t *j, uint64_t first, uint64_t n, const char *owner)
{
    uint32_t from = UINT32_MAX, to = 0; /* the last (fn, "") -> (fn, owner) */
    for (uint64_t id = first; id < first + n && id < j->next_id; id++) {
        pd_jobrec_t *job = pd_jobs_find(j, id);
        if (!job)
            continue;
        if (job->fn != from) {
            if (pd_jobs_owner_id(j, job->fn)[0])
                continue;
            int rc;
            pd_limits_t lim = pd_jobs_fn_limits(j, job->fn);
            uint32_t fn = pd_jobs_intern(j, pd_jobs_fn_name(j, job->fn), owner, &lim, &rc);
            if (rc)
                return rc;
            from = job->fn;
            to = fn;
        }
        job->fn = to;
    }
    return 0;
}

pd_jobs_owner_t *pd_jobs_owners(pd_jobs_t *j, size_t *n)
{
    *n = 0;
    /* Per interned (fn, owner) first, then merged by owner. */
    pd_jobs_owner_t *per = calloc(j->nfns ? j->nfns : 1, sizeof *per);
    const pd_blob_t **last_arg = calloc(j->nfns ? j->nfns : 1, sizeof *last_arg);
    uint32_t *order = malloc((j->nfns ? j->nfns : 1) * sizeof *order);
    pd_jobs_owner_t *out = NULL;
    size_t nout = 0;
    if (!per || !last_arg || !order)
        goto done;
    uint32_t norder = 0;
    for (uint64_t id = pd_jobs_next_known(j, 1); id; id = pd_jobs_next_known(j, id + 1)) {
        const pd_jobrec_t *job = pd_jobs_find(j, id);
        pd_jobs_owner_t *o = &per[job->fn];
        if (!o->owner) {
            o->owner = pd_jobs_owner_id(j, job->fn);
            order[norder++] = job->fn;
        }
        if (job->state == PD_JOB_QUEUED)
            o->queued++;
        else if (job->state == PD_JOB_RUNNING)
            o->running++;
        else
            o->final++;
        if (!PD_JOB_IS_FINAL(job->state) && job->arg != last_arg[job->fn]) {
            last_arg[job->fn] = job->arg; /* a submit's jobs are contiguous */
            o->batches++;
        }
    }
    out = malloc((norder ? norder : 1) * sizeof *out);
    if (!out)
        goto done;
    for (uint32_t i = 0; i < norder; i++) {
        const pd_jobs_owner_t *o = &per[order[i]];
        size_t k = 0;
        while (k < nout && strcmp(out[k].owner, o->owner) != 0)
            k++;
        if (k == nout)
            out[nout++] = (pd_jobs_owner_t){.owner = o->owner};
        out[k].batches += o->batches;
        out[k].queued += o->queued;
        out[k].running += o->running;
        out[k].final += o->final;
    }
done:
    free(per);
    free(last_arg);
    free(order);
    if (!nout) {
        free(out);
        return NULL;
    }
    *n = nout;
    return out;
}


uint64_t pd_jobs_next_known(pd_jobs_t *j, uint64_t from)
{
    if (from == 0)
        from = 1;
    while (from < j->next_id) {
        uint64_t c = (from - 1) >> PD_JOBS_CHUNK_BITS;
        if (c >= j->nchunks)
            return 0;
        if (!j->chunks[c]) {
            from = (c + 1) * (uint64_t) PD_JOBS_CHUNK + 1;
            continue;
        }
        if (j->chunks[c][(from - 1) & (PD_JOBS_CHUNK - 1)].state != PD_JOB_UNKNOWN)
            return from;
        from++;
    }
    return 0;
}
