/*  pd_broker_client: the broker's answers to clients (docs/protocol.md,
    "Client -> broker"): hello, mod_has, mod_put, submit, status, fetch,
    cancel, release and gc, plus the parked fetches of long polling.

    Each handler reads its fields strictly, changes state only once every
    field is known to be good, and sends exactly one reply; on a bad request
    it returns a PD_E* code with a sentence in o->why and the loop answers
    `error`. A parked fetch keeps its parsed id ranges; after each batch of
    messages the loop sorts the ids that became final and wakes only the
    parked fetches whose ranges contain one of them.

    With a journal, a submit is journalled before its `accepted` can leave
    (the reply is held until its batch settles), a submit carrying a known
    token gets the first submit's ids again, and submits are refused while
    the journal cannot be written or has grown past its bound. A fetch never
    waits for the journal: it shows results and errors as soon as they
    arrive, before they are on disk (a crash before their commit runs their
    jobs again: at least once, never lost; see s_shown_early), while a
    cancellation is shown only once on disk, and a parked fetch waiting for
    one is woken when the batch holding it settles.
*/
#include "pd_broker_int.h"
#include "pd_auth.h"
#include "pd_error.h"
#include "pd_log.h"
#include "pd_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The id ranges of a decoded request (its `ids`) into rg. */
static int s_ranges(const pd_msg_t *m, const pd_raw_t *ids, pd_origin_t *o, pd_ranges_t *rg)
{
    char why[256];
    int rc = pd_ranges_parse(ids->p, ids->len, rg, why, sizeof why);
    if (rc)
        snprintf(o->why, sizeof o->why, "%s: %s", m->type, why);
    return rc;
}

/* ---- owners ------------------------------------------------------------ */

int pd_broker_check_owner_of(pd_origin_t *o, const char *owner, const char *what,
                             const char *type, const char *act)
{
    /* Ownerless (submitted by a client that sent no owner: an older one)
       is anyone's: anybody could claim to be nobody. */
    if (!owner[0] || strcmp(owner, o->owner) == 0 || pd_role_allows(o->role, PD_ROLE_ADMIN))
        return 0;
    if (pd_auth_owner_is_key(owner))
        snprintf(o->why, sizeof o->why, "'%s' refused: %s belongs to another key (%.8s...); "
                 "only its owner or a key with the admin role may %s (on the broker: "
                 "`playdoh-keygen allow KEY --role admin`)", type, what, owner, act);
    else
        snprintf(o->why, sizeof o->why, "'%s' refused: %s belongs to another owner (%.14s..., "
                 "the owner token of another account or configuration directory); only its "
                 "owner may %s (a broker with keys also lets an admin key do it)", type, what,
                 owner, act);
    return PD_EPERM;
}

int pd_broker_check_owner(pd_broker_t *b, pd_origin_t *o, const pd_ranges_t *rg,
                          const char *type, const char *act)
{
    if (pd_role_allows(o->role, PD_ROLE_ADMIN))
        return 0;
    pd_jobs_t *jobs = pd_broker_jobs(b);
    uint32_t mine = UINT32_MAX; /* an interned (fn, owner) found to be o's */
    for (uint32_t i = 0; i < rg->n; i++)
        for (uint64_t c = 0, k; c < rg->r[i][1]; c += k) {
            pd_jobrec_t *recs;
            k = pd_jobs_span(jobs, rg->r[i][0] + c, rg->r[i][1] - c, &recs);
            for (uint64_t x = 0; recs && x < k; x++) {
                const pd_jobrec_t *job = &recs[x];
                if (job->state == PD_JOB_UNKNOWN || job->fn == mine)
                    continue;
                char what[40];
                snprintf(what, sizeof what, "job %llu", (unsigned long long) (rg->r[i][0] + c + x));
                const char *owner = pd_jobs_owner_id(jobs, job->fn);
                int rc = pd_broker_check_owner_of(o, owner, what, type, act);
                if (rc)
                    return rc;
                mine = job->fn;
            }
        }
    return 0;
}

void pd_broker_pack_owners(pd_broker_t *b, msgpack_packer *pk, const pd_origin_t *o)
{
    size_t n;
    pd_jobs_owner_t *ow = pd_jobs_owners(pd_broker_jobs(b), &n);
    msgpack_pack_array(pk, (uint32_t) n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(pk, 6);
        pd_pack_kv_str(pk, "owner", ow[i].owner);
        pd_pack_kv_bool(pk, "mine", ow[i].owner[0] && strcmp(ow[i].owner, o->owner) == 0);
        pd_pack_kv_uint(pk, "batches", ow[i].batches);
        pd_pack_kv_uint(pk, "queued", ow[i].queued);
        pd_pack_kv_uint(pk, "running", ow[i].running);
        pd_pack_kv_uint(pk, "final", ow[i].final);
    }
    free(ow);
}

/* Packs a uint32 array header whose count is patched later; returns its offset. */
static size_t s_array_placeholder(pd_buf_t *out)
{
    static const uint8_t head[5] = {0xdd, 0, 0, 0, 0};
    size_t at = out->len;
    pd_buf_append(out, head, sizeof head);
    return at;
}

static void s_array_patch(pd_buf_t *out, size_t at, uint32_t n)
{
    if (out->failed)
        return;
    out->data[at + 1] = (uint8_t) (n >> 24);
    out->data[at + 2] = (uint8_t) (n >> 16);
    out->data[at + 3] = (uint8_t) (n >> 8);
    out->data[at + 4] = (uint8_t) n;
}

/* ---- hello, modules ---------------------------------------------------- */

/* Packs the four journal fields of welcome and gc_done: journal (path, ""
   when none), journal_bytes, journal_max_bytes, journal_ok. */
#define S_JOURNAL(b, r)                                                        \
    do {                                                                       \
        pd_journal_t *jn_ = pd_broker_journal(b);                              \
        (r).journal = pd_str_of(jn_ ? pd_journal_path(jn_) : "");              \
        (r).journal_bytes = jn_ ? pd_journal_bytes(jn_) : 0;                   \
        (r).journal_max_bytes = jn_ ? pd_journal_max_bytes(jn_) : 0;           \
        (r).has_journal_ok = true;                                             \
        (r).journal_ok = !jn_ || pd_journal_writable(jn_);                     \
    } while (0)

void pd_broker_reply(pd_broker_t *b, const pd_origin_t *o, const pd_proto_msg_t *d, const void *r)
{
    msgpack_packer pk;
    pd_packer_init(&pk, pd_broker_out(b));
    pd_proto_encode(&pk, d, r);
    pd_broker_send_out(b, o->rid, o->ridlen);
}

int pd_broker_on_hello(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    (void) m;
    pd_m_welcome_t w = {
        .req = o->req,
        .version = PD_PROTO_VERSION,
        .workers = pd_reg_count(pd_broker_workers(b)),
        .slots = pd_reg_slots(pd_broker_workers(b)),
        .gpus = pd_reg_gpus(pd_broker_workers(b)),
        .max_shared = pd_shared_max_blob(pd_broker_shared(b)),
        .max_arg = pd_broker_cfg(b)->max_arg,
        .max_batch = pd_broker_cfg(b)->max_batch,
    };
    snprintf(w.name, sizeof w.name, "%s", pd_broker_name(b));
    S_JOURNAL(b, w);
    pd_broker_reply(b, o, &pd_proto_welcome, &w);
    return 0;
}

/* Answers mod_ok or shr_ok (d): both are PD_F_HAS_OK, one struct layout. */
static void s_has_ok(pd_broker_t *b, pd_origin_t *o, const pd_proto_msg_t *d, const char *hash,
                     bool has)
{
    pd_m_mod_ok_t r = {.req = o->req, .has = has};
    snprintf(r.hash, sizeof r.hash, "%s", hash);
    pd_broker_reply(b, o, d, &r);
}

static void s_mod_ok(pd_broker_t *b, pd_origin_t *o, const char *hash, bool has)
{
    s_has_ok(b, o, &pd_proto_mod_ok, hash, has);
}

int pd_broker_on_mod_has(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    pd_m_mod_has_t q;
    int rc = pd_m_mod_has_decode(m, &q);
    if (rc)
        return pd_broker_refuse(m, o, rc);
    s_mod_ok(b, o, q.hash, pd_mods_find(pd_broker_mods(b), q.hash) >= 0);
    return 0;
}

int pd_broker_on_mod_put(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    pd_m_mod_put_t q;
    int rc = pd_m_mod_put_decode(m, &q);
    if (rc)
        return pd_broker_refuse(m, o, rc);
    const char *hash = q.hash, *name = q.name, *kind = q.kind;
    const void *data = q.data.p;
    uint32_t len = q.data.len;
    uint32_t before = pd_mods_count(pd_broker_mods(b));
    int64_t idx = pd_mods_put(pd_broker_mods(b), hash, name, kind, data, len, o->why,
                              sizeof o->why);
    if (idx < 0)
        return (int) idx;
    if (pd_broker_journal(b) && pd_mods_count(pd_broker_mods(b)) > before)
        pd_journal_put_mod(pd_broker_journal(b), pd_mods_get(pd_broker_mods(b), (uint32_t) idx));
    pd_log_info("module %s (%s, %u bytes, %.12s) stored", name, kind, len, hash);
    s_mod_ok(b, o, hash, true);
    return 0;
}

/* ---- shared data ------------------------------------------------------- */

/* Whether the requester may name shared blob i: it uploaded it, nobody
   did, or it is an admin. */
static bool s_may_use_shared(pd_broker_t *b, const pd_origin_t *o, uint32_t i)
{
    return pd_role_allows(o->role, PD_ROLE_ADMIN) ||
           pd_shared_owned_by(pd_broker_shared(b), i, o->owner);
}

static void s_shr_ok(pd_broker_t *b, pd_origin_t *o, const char *hash, bool has)
{
    s_has_ok(b, o, &pd_proto_shr_ok, hash, has);
}

int pd_broker_on_shr_has(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    pd_m_shr_has_t q;
    int rc = pd_m_shr_has_decode(m, &q);
    if (rc)
        return pd_broker_refuse(m, o, rc);
    const char *hash = q.hash;
    int64_t i = pd_shared_find(pd_broker_shared(b), hash);
    if (i >= 0)
        pd_shared_touch(pd_broker_shared(b), (uint32_t) i);
    /* Another owner's blob is not "had": this client uploads the bytes
       itself (pd_shared.h). */
    s_shr_ok(b, o, hash, i >= 0 && s_may_use_shared(b, o, (uint32_t) i));
    return 0;
}

static bool s_shared_in_use(void *user, uint32_t i)
{
    pd_broker_t *b = user;
    return pd_jobs_shared_open(pd_broker_jobs(b), i) > 0;
}

static void s_shared_evict(void *user, uint32_t i, const char *hash)
{
    pd_broker_t *b = user;
    if (pd_broker_journal(b))
        pd_journal_drop_shared(pd_broker_journal(b), hash);
    pd_broker_shared_evicted(b, i, hash);
}

/* An upload of shared data while its bytes are hashed off the loop
   (hashing 250 MiB takes about a second, longer than a heartbeat): the
   clients that sent it (a client that sends it again while it is hashed
   waits for the same answer) and a copy of the bytes. */
#define S_UPLOAD_WAITERS 8
typedef struct pd_upload {
    struct pd_upload *next;
    pd_broker_t *b;
    char hash[PD_SHARED_HASH_LEN + 1];
    char real[PD_SHARED_HASH_LEN + 1]; /* set by the background thread */
    uint8_t *data;
    uint32_t len;
    uint32_t nwait;
    struct {
        uint8_t rid[256];
        uint32_t ridlen;
        uint64_t req;
        char owner[PD_OWNER_TXT]; /* who sent it: an owner of the blob once stored */
    } wait[S_UPLOAD_WAITERS];
} s_upload_t;

static void s_upload_hash(void *arg) /* on the background thread */
{
    s_upload_t *u = arg;
    pd_shared_hash(u->data, u->len, u->real);
}

/* On the loop, once hashed: stores and journals the blob and answers
   every client that sent it, or refuses a wrong hash. */
static void s_upload_done(void *arg)
{
    s_upload_t *u = arg;
    pd_broker_t *b = u->b;
    for (s_upload_t **p = &pd_broker_uploads(b)->list; *p; p = &(*p)->next)
        if (*p == u) {
            *p = u->next;
            break;
        }
    pd_broker_uploads(b)->bytes -= u->len;
    pd_origin_t o = {.role = PD_ROLE_BOTH};
    int rc = 0;
    if (strcmp(u->real, u->hash) != 0) {
        snprintf(o.why, sizeof o.why, "shared data: hash %.64s is not the BLAKE2b-256 of its "
                 "bytes (%s): send the lowercase hex BLAKE2b-256 of the data", u->hash, u->real);
        rc = PD_EPROTO;
    } else {
        bool known = pd_shared_find(pd_broker_shared(b), u->hash) >= 0;
        int64_t idx = pd_shared_store(pd_broker_shared(b), u->hash, u->data, u->len,
                                      s_shared_in_use, s_shared_evict, b, o.why, sizeof o.why);
        if (idx < 0) {
            rc = (int) idx;
        } else if (!known) {
            if (pd_broker_journal(b))
                pd_journal_put_shared(pd_broker_journal(b), u->hash, u->data, u->len);
            pd_log_info("shared data %.12s (%u bytes) stored; %u blobs, %llu MiB in the store",
                        u->hash, u->len, pd_shared_count(pd_broker_shared(b)),
                        (unsigned long long) (pd_shared_bytes(pd_broker_shared(b)) >> 20));
        }
    }
    for (uint32_t i = 0; i < u->nwait; i++) {
        o.rid = u->wait[i].rid;
        o.ridlen = u->wait[i].ridlen;
        o.req = u->wait[i].req;
        int64_t idx = rc ? -1 : pd_shared_find(pd_broker_shared(b), u->hash);
        if (!rc && (idx < 0 ||
                    pd_shared_add_owner(pd_broker_shared(b), (uint32_t) idx, u->wait[i].owner)))
            pd_broker_send_error(b, &o, PD_ENOMEM, "the broker is out of memory");
        else if (rc)
            pd_broker_send_error(b, &o, rc, o.why);
        else
            s_shr_ok(b, &o, u->hash, true);
    }
    free(u->data);
    free(u);
}

int pd_broker_on_shr_put(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    pd_m_shr_put_t q;
    int rc = pd_m_shr_put_decode(m, &q);
    if (rc)
        return pd_broker_refuse(m, o, rc);
    const char *hash = q.hash;
    const void *data = q.data.p;
    uint32_t len = q.data.len;
    /* Known by its hash: a blob sent again by one who may use it (after a
       time-out) is not hashed or stored again. Anyone else proves they
       hold the bytes: they are hashed, and then make the sender an owner. */
    int64_t have = pd_shared_find(pd_broker_shared(b), hash);
    if (have >= 0 && s_may_use_shared(b, o, (uint32_t) have)) {
        pd_shared_touch(pd_broker_shared(b), (uint32_t) have);
        s_shr_ok(b, o, hash, true);
        return 0;
    }
    for (s_upload_t *u = pd_broker_uploads(b)->list; u; u = u->next)
        if (strcmp(u->hash, hash) == 0) {
            if (u->nwait == S_UPLOAD_WAITERS) {
                snprintf(o->why, sizeof o->why, "shared data %.12s is being stored for %u "
                         "requests already: wait for their answer", hash, u->nwait);
                return PD_EOVERLOAD;
            }
            u->wait[u->nwait].ridlen = (uint32_t) o->ridlen;
            memcpy(u->wait[u->nwait].rid, o->rid, o->ridlen);
            snprintf(u->wait[u->nwait].owner, sizeof u->wait[u->nwait].owner, "%s", o->owner);
            u->wait[u->nwait++].req = o->req;
            return 0;
        }
    if ((rc = pd_shared_check_size(pd_broker_shared(b), len, o->why, sizeof o->why)) != 0)
        return rc;
    if (pd_broker_uploads(b)->bytes + len > pd_shared_max_total(pd_broker_shared(b))) {
        snprintf(o->why, sizeof o->why, "the broker is storing %.1f MiB of shared data already, "
                 "as much as its store holds: send this again once those are stored",
                 (double) pd_broker_uploads(b)->bytes / 1048576.0);
        return PD_EOVERLOAD;
    }
    s_upload_t *u = calloc(1, sizeof *u);
    uint8_t *copy = u ? malloc(len) : NULL;
    if (!copy || o->ridlen > sizeof u->wait[0].rid) {
        free(u);
        snprintf(o->why, sizeof o->why, "the broker is out of memory for %u bytes of shared data",
                 len);
        return PD_ENOMEM;
    }
    memcpy(copy, data, len);
    *u = (s_upload_t){.b = b, .data = copy, .len = len, .nwait = 1};
    snprintf(u->hash, sizeof u->hash, "%s", hash);
    u->wait[0].ridlen = (uint32_t) o->ridlen;
    memcpy(u->wait[0].rid, o->rid, o->ridlen);
    snprintf(u->wait[0].owner, sizeof u->wait[0].owner, "%s", o->owner);
    u->wait[0].req = o->req;
    if (pd_bg_submit(pd_broker_bg(b), s_upload_hash, s_upload_done, u) != 0) {
        free(copy);
        free(u);
        snprintf(o->why, sizeof o->why, "the broker cannot hash shared data now: try again");
        return PD_EOVERLOAD;
    }
    u->next = pd_broker_uploads(b)->list;
    pd_broker_uploads(b)->list = u;
    pd_broker_uploads(b)->bytes += len;
    return 0;
}

/* ---- submit ------------------------------------------------------------ */

/* Why a journal refuses submits now (0: it does not). */
static int s_journal_refuses(pd_broker_t *b, pd_origin_t *o)
{
    if (!pd_broker_journal(b))
        return 0;
    if (!pd_journal_writable(pd_broker_journal(b))) {
        pd_broker_counters(b)->refused_journal++;
        snprintf(o->why, sizeof o->why, "the broker cannot write its journal %s (%s): new jobs "
                 "are refused until it can (free disk space; the broker retries by itself); "
                 "jobs accepted before go on and their results can be fetched",
                 pd_journal_path(pd_broker_journal(b)), pd_journal_error(pd_broker_journal(b)));
        return PD_EIO;
    }
    if (pd_journal_full(pd_broker_journal(b))) {
        pd_broker_counters(b)->refused_journal++;
        snprintf(o->why, sizeof o->why, "the broker's journal %s holds %llu MiB, over its bound "
                 "of %llu MiB: fetch and release results (or run `playdoh-submit gc`), or raise "
                 "--journal-max-mb", pd_journal_path(pd_broker_journal(b)),
                 (unsigned long long) (pd_journal_bytes(pd_broker_journal(b)) >> 20),
                 (unsigned long long) (pd_journal_max_bytes(pd_broker_journal(b)) >> 20));
        return PD_EOVERLOAD;
    }
    return 0;
}

static void s_accepted(pd_broker_t *b, pd_origin_t *o, uint64_t first, uint32_t n)
{
    pd_m_accepted_t r = {.req = o->req, .first = first, .n = n};
    pd_broker_reply(b, o, &pd_proto_accepted, &r);
}

int pd_broker_check_gpu(pd_broker_t *b, const char *cuhash, bool *gpu, uint32_t *cu,
                        pd_origin_t *o)
{
    *cu = 0;
    if (cuhash[0]) {
        int64_t i = pd_mods_find(pd_broker_mods(b), cuhash);
        if (i < 0) {
            snprintf(o->why, sizeof o->why,
                     "CUDA module %s is not on the broker: upload it first (mod_put)", cuhash);
            return PD_ENOMODULE;
        }
        const pd_mod_t *cm = pd_mods_get(pd_broker_mods(b), (uint32_t) i);
        if (strcmp(cm->kind, "cu") != 0) {
            snprintf(o->why, sizeof o->why,
                     "module %s is not CUDA source (kind \"%s\"): 'cu' names a module of kind "
                     "\"cu\" (a .cu file)", cm->name, cm->kind);
            return PD_EINVAL;
        }
        *cu = (uint32_t) i + 1;
        *gpu = true;
    }
    /* GPU work waits for a GPU slot while one may come back; a cluster where
       no worker ever offered one would keep it queued for ever. */
    if (*gpu && !pd_reg_gpus_ever(pd_broker_workers(b))) {
        snprintf(o->why, sizeof o->why,
                 "no worker of this cluster has offered a GPU since the broker started: run "
                 "playdoh-worker on a machine with an NVIDIA GPU and driver (it finds its GPUs "
                 "through libcuda.so.1; see its log), or submit without asking for a GPU");
        return PD_ENOGPU;
    }
    return 0;
}

int pd_broker_check_limits(pd_broker_t *b, const pd_limits_t *lim, pd_origin_t *o)
{
    if (lim->output > PD_LIMITS_MAX_OUTPUT) {
        char a[32], m[32];
        snprintf(o->why, sizeof o->why, "submit: 'max_output' is %s; a job keeps at most %s of "
                 "output (write larger results to a file, or return them as the value)",
                 pd_limits_size_str(lim->output, a, sizeof a),
                 pd_limits_size_str(PD_LIMITS_MAX_OUTPUT, m, sizeof m));
        return PD_EINVAL;
    }
    if (pd_limits_none(lim))
        return 0;
    /* As HTCondor does, a request no worker holds now waits (a worker that
       allows it may join); the log says why it waits. */
    char why[160] = "";
    uint32_t workers = 0;
    for (uint32_t i = 0; i < pd_reg_span(pd_broker_workers(b)); i++) {
        const pd_wrec_t *wk = pd_reg_at(pd_broker_workers(b), i);
        if (!wk)
            continue;
        workers++;
        if (pd_limits_fit(lim, &wk->limits, why, sizeof why))
            return 0;
    }
    if (workers)
        pd_log_limited(pd_broker_limits_log(b), 5, 60000, PD_LOG_WARN,
                       "a submit asks for %s on every one of the %u workers registered now: "
                       "its jobs wait until a worker that allows it joins (the workers' owners "
                       "set [worker] max_memory, max_cpu_time, max_output)", why, workers);
    return 0;
}

int pd_broker_check_platform(pd_broker_t *b, const pd_mod_t *md, pd_origin_t *o)
{
    if (!md->platform[0])
        return 0; /* source: every platform */
    char seen[160];
    pd_reg_platform_list(pd_broker_workers(b), seen, sizeof seen);
    if (strcmp(md->platform, "unknown") == 0) {
        snprintf(o->why, sizeof o->why,
                 "module %s is a prebuilt module for no platform Playdoh runs on (neither an "
                 "x86-64 ELF shared object for linux-x86_64 nor a PE32+ DLL for windows-x86_64): "
                 "ship the module as C source, which every worker compiles", md->name);
        return PD_ENOSLOTS;
    }
    /* Like GPU work: it waits for a worker of its platform while one may come
       back; a cluster that never had one would keep it queued for ever. */
    if (!pd_reg_platform_ever(pd_broker_workers(b), md->platform)) {
        snprintf(o->why, sizeof o->why,
                 "module %s is prebuilt for %s, and no worker of that platform has joined this "
                 "cluster since the broker started (platforms: %s): ship the module as C "
                 "source, which every worker compiles, or start a worker on %s",
                 md->name, md->platform, seen, md->platform);
        return PD_ENOSLOTS;
    }
    return 0;
}

/* The bounds on arguments (docs/broker.md, "Limits"): a batch whose
   `batch_bytes` (the whole call's arguments, as its client counts them)
   passes max_batch, or an argument over max_arg, refuses the chunk with
   PD_ETOOBIG, naming the job by its place in the batch (`at`, the chunk's
   first job there, counted from 0). */
static int s_check_arg_sizes(pd_broker_t *b, const pd_m_submit_t *q, pd_origin_t *o)
{
    const uint8_t *args = q->args.p;
    size_t args_len = q->args.len;
    uint64_t batch = q->has_batch_bytes ? q->batch_bytes : args_len, at = q->at;
    if (batch > pd_broker_cfg(b)->max_batch) {
        snprintf(o->why, sizeof o->why,
                 "the batch's arguments are %.1f MiB in all; this broker takes at most %.1f "
                 "MiB in one submit (max_batch_mb): split the batch, or pass data the jobs "
                 "share once as shared data (--shared)", (double) batch / 1048576.0,
                 (double) pd_broker_cfg(b)->max_batch / 1048576.0);
        return PD_ETOOBIG;
    }
    pd_rd_t r;
    uint32_t count;
    pd_rd_init(&r, args, args_len);
    if (pd_rd_array(&r, &count))
        return 0; /* pd_jobs says what is wrong with it */
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *raw;
        size_t len;
        if (pd_rd_skip(&r, &raw, &len))
            return 0;
        if (len > pd_broker_cfg(b)->max_arg) {
            snprintf(o->why, sizeof o->why,
                     "job %llu of the batch (counting from 1) has an argument of %.1f MiB; this "
                     "broker takes at most %.1f MiB per job (max_arg_mb): pass large data once "
                     "as shared data (--shared, pd_shared_put) and give each job what differs",
                     (unsigned long long) (at + i + 1), (double) len / 1048576.0,
                     (double) pd_broker_cfg(b)->max_arg / 1048576.0);
            return PD_ETOOBIG;
        }
    }
    return 0;
}

/* The numbers of a submit within their bounds: 0, or PD_EINVAL with the
   sentence in o->why. */
static int s_check_submit_numbers(uint32_t tokenlen, bool token, uint64_t max_slots,
                                  uint64_t timeout_ms, uint64_t retries, pd_origin_t *o)
{
    if (token && (tokenlen == 0 || tokenlen > PD_JOBS_TOKEN_MAX)) {
        snprintf(o->why, sizeof o->why, "submit: 'token' has %u bytes; it must have 1 to %u",
                 tokenlen, PD_JOBS_TOKEN_MAX);
        return PD_EINVAL;
    }
    if (max_slots > UINT32_MAX) {
        snprintf(o->why, sizeof o->why, "submit: 'max_slots' is larger than %u", UINT32_MAX);
        return PD_EINVAL;
    }
    if (timeout_ms > UINT32_MAX) {
        snprintf(o->why, sizeof o->why, "submit: 'timeout_ms' is larger than %u", UINT32_MAX);
        return PD_EINVAL;
    }
    if (retries > PD_JOBS_MAX_RETRIES) {
        snprintf(o->why, sizeof o->why, "submit: 'retries' is %llu; at most %u are allowed",
                 (unsigned long long) retries, PD_JOBS_MAX_RETRIES);
        return PD_EINVAL;
    }
    return 0;
}

/* A retry of a submit already accepted (its token names ids first ..
   first+n-1): the same ids, nothing new. When the first reply still waits
   for the journal, this one is refused with it if that batch fails. Only
   for the same owner. */
static int s_resubmit(pd_broker_t *b, pd_origin_t *o, uint64_t first, uint32_t n,
                      const void *token, uint32_t tokenlen)
{
    pd_jobs_t *jobs = pd_broker_jobs(b);
    const pd_jobrec_t *fj = n ? pd_jobs_get(jobs, first) : NULL;
    int rc;
    if (fj && (rc = pd_broker_check_owner_of(o, pd_jobs_owner_id(jobs, fj->fn),
                                              "the submit with this token", "submit",
                                              "send it again")) != 0)
        return rc;
    bool first_held = pd_broker_submit_held(b, first);
    s_accepted(b, o, first, n);
    if (first_held)
        pd_broker_hold_submit(b, o->req, first, n, token, tokenlen);
    return 0;
}

int pd_broker_on_submit(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    pd_m_submit_t q;
    int rc = pd_m_submit_decode(m, &q);
    if (rc)
        return pd_broker_refuse(m, o, rc);
    const char *hash = q.mod, *fn = q.fn, *shr = q.shared, *cuhash = q.cu;
    const uint8_t *args = q.args.p;
    size_t args_len = q.args.len;
    uint64_t timeout_ms = q.timeout_ms, retries = q.has_retries ? q.retries : 3;
    uint64_t max_slots = q.max_slots, retry_failed = q.retry_failed;
    pd_limits_t lim = {.memory = q.memory, .cpu_s = q.cpu_time, .output = q.max_output};
    bool gpu = q.has_gpu && q.gpu;
    const void *token = q.has_token ? q.token.p : NULL;
    uint32_t tokenlen = q.token.len;
    if ((rc = s_check_arg_sizes(b, &q, o)) != 0)
        return rc;
    if ((rc = s_check_submit_numbers(tokenlen, q.has_token, max_slots, timeout_ms, retries,
                                     o)) != 0)
        return rc;
    if ((rc = pd_broker_check_limits(b, &lim, o)) != 0)
        return rc;
    uint64_t first;
    uint32_t n;
    if (token && pd_jobs_token_find(pd_broker_jobs(b), token, tokenlen, &first, &n))
        return s_resubmit(b, o, first, n, token, tokenlen);
    if ((rc = s_journal_refuses(b, o)) != 0)
        return rc;
    int64_t mod = pd_mods_find(pd_broker_mods(b), hash);
    if (mod < 0) {
        snprintf(o->why, sizeof o->why,
                 "module %s is not on the broker: upload it first (mod_put)", hash);
        return PD_ENOMODULE;
    }
    const pd_mod_t *md = pd_mods_get(pd_broker_mods(b), (uint32_t) mod);
    if (strcmp(md->kind, "cu") == 0) {
        snprintf(o->why, sizeof o->why,
                 "module %s is CUDA source: submit a C module whose task launches its kernels, "
                 "and pass the .cu as the job's CUDA module (map --cuda, pd_map_opts_t.cuda)",
                 md->name);
        return PD_EINVAL;
    }
    uint32_t cu_index = 0;
    if ((rc = pd_broker_check_gpu(b, cuhash, &gpu, &cu_index, o)) != 0 ||
        (rc = pd_broker_check_platform(b, md, o)) != 0)
        return rc;
    int64_t shared = -1;
    if (shr[0]) {
        shared = pd_shared_find(pd_broker_shared(b), shr);
        if (shared < 0) {
            snprintf(o->why, sizeof o->why, "shared data %s is not on the broker: upload it "
                     "first (shr_put)", shr);
            return PD_ENOMODULE;
        }
        if (!s_may_use_shared(b, o, (uint32_t) shared)) {
            snprintf(o->why, sizeof o->why, "'submit' refused: shared data %.16s... was "
                     "uploaded by another owner, not by this one: upload it yourself first "
                     "(shr_put; pd_shared_upload and map --shared do), which costs no second "
                     "copy at the broker", shr);
            return PD_EPERM;
        }
        pd_shared_touch(pd_broker_shared(b), (uint32_t) shared);
    }
    pd_jobs_submit_t sub = {.client = o->rid, .client_len = o->ridlen, .mod = (uint32_t) mod,
                            .fn = fn, .args = args, .args_len = args_len,
                            .timeout_ms = (uint32_t) timeout_ms, .retries = (uint32_t) retries,
                            .max_slots = (uint32_t) max_slots,
                            .shared = shared < 0 ? 0 : (uint32_t) shared + 1,
                            .gpu = gpu, .cu = cu_index, .owner = o->owner, .limits = lim,
                            .retry_failed = retry_failed > UINT32_MAX ? UINT32_MAX
                                                                      : (uint32_t) retry_failed};
    rc = pd_jobs_submit_ex(pd_broker_jobs(b), &sub, &first, &n, o->why, sizeof o->why);
    if (rc)
        return rc;
    uint32_t now = pd_broker_wall_s();
    if (token)
        pd_jobs_token_add(pd_broker_jobs(b), token, tokenlen, first, n, now);
    if (pd_broker_journal(b) && n > 0)
        pd_journal_submit(pd_broker_journal(b), first, n, &sub, hash, shr[0] ? shr : NULL,
                          cuhash[0] ? cuhash : NULL, pd_jobs_get(pd_broker_jobs(b), first)->arg,
                          token, tokenlen, now);
    s_accepted(b, o, first, n);
    if (n > 0)
        pd_broker_hold_submit(b, o->req, first, n, token, tokenlen);
    return 0;
}

/* The id ranges of a decoded request into rg, every id the requester's
   (pd_broker_check_owner: `act` for the refusal); rg is freed on refusal. */
static int s_owned_ranges(pd_broker_t *b, const pd_msg_t *m, const pd_raw_t *ids,
                          pd_origin_t *o, const char *act, pd_ranges_t *rg)
{
    int rc = s_ranges(m, ids, o, rg);
    if (rc == 0 && (rc = pd_broker_check_owner(b, o, rg, m->type, act)) != 0)
        pd_ranges_free(rg);
    return rc;
}

/* Decodes a request whose fields are PD_F_IDS (status, cancel, release:
   one struct layout) and takes its ranges as s_owned_ranges does. */
static int s_ids_request(pd_broker_t *b, const pd_msg_t *m, const pd_proto_msg_t *d,
                         pd_origin_t *o, const char *act, pd_ranges_t *rg)
{
    pd_m_status_t q;
    int rc = pd_proto_decode(m, d, &q);
    return rc ? pd_broker_refuse(m, o, rc) : s_owned_ranges(b, m, &q.ids, o, act, rg);
}

/* ---- status ------------------------------------------------------------ */

/* Writes the state of every id of rg, in order, into st (rg.total bytes):
   the one source of a job's state for `status` and for `fetch` with
   `states`. Returns rg.total. */
static size_t s_states(pd_broker_t *b, const pd_ranges_t *rg, uint8_t *st)
{
    size_t k = 0;
    for (uint32_t i = 0; i < rg->n; i++)
        for (uint64_t c = 0; c < rg->r[i][1]; c++)
            st[k++] = pd_jobs_state(pd_broker_jobs(b), rg->r[i][0] + c);
    return k;
}

int pd_broker_on_status(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    pd_ranges_t rg;
    int rc = s_ids_request(b, m, &pd_proto_status, o, "see its state", &rg);
    if (rc)
        return rc;
    uint8_t *st = malloc(rg.total ? rg.total : 1);
    if (!st) {
        pd_ranges_free(&rg);
        snprintf(o->why, sizeof o->why, "the broker is out of memory");
        return PD_ENOMEM;
    }
    size_t k = s_states(b, &rg, st);
    pd_m_states_t r = {.req = o->req, .st = {st, (uint32_t) k}};
    pd_broker_reply(b, o, &pd_proto_states, &r);
    free(st);
    pd_ranges_free(&rg);
    return 0;
}

/* ---- fetch ------------------------------------------------------------- */

/* Whether a fetch may show the final job now. A result or error that a
   worker (or the broker's retry accounting) produced is shown at once,
   before its journal batch commits: if the broker crashes first, the job
   is still in the journal, queued, and runs again, so the result comes
   back (at least once) and nothing accepted is lost. A cancellation waits
   for the disk like the `cancelled` reply does: shown early and then lost
   in a crash, the job would run after all. */
static bool s_shown_early(pd_broker_t *b, const pd_jobrec_t *job)
{
    return job->state != PD_JOB_CANCELLED || !job->res || !pd_broker_journal(b) ||
           pd_journal_visible(pd_broker_journal(b), job->res->jseq);
}

/* results' `res` being packed: the final or unknown jobs among rg, at most
   max; n counts them. */
typedef struct {
    pd_broker_t *b;
    const pd_ranges_t *rg;
    uint64_t max;
    uint32_t n;
} s_res_t;

static void s_pack_one_result(pd_broker_t *b, msgpack_packer *pk, uint64_t id,
                              const pd_jobrec_t *job, uint32_t now_s)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint64(pk, id);
    if (!job) {
        msgpack_pack_uint8(pk, PD_JOB_UNKNOWN);
        msgpack_pack_nil(pk);
        return;
    }
    const uint8_t *val;
    uint32_t vlen;
    msgpack_pack_uint8(pk, job->state);
    if (pd_jobs_result(pd_broker_jobs(b), id, &val, &vlen))
        pd_pack_raw(pk, val, vlen);
    else
        msgpack_pack_nil(pk);
    pd_jobs_mark_fetched(pd_broker_jobs(b), id, now_s);
}

static int s_pack_res(msgpack_packer *pk, const void *ctx)
{
    s_res_t *c = (s_res_t *) ctx;
    pd_broker_t *b = c->b;
    const pd_ranges_t *rg = c->rg;
    pd_buf_t *out = pd_broker_out(b);
    pd_jobs_t *jobs = pd_broker_jobs(b);
    size_t at = s_array_placeholder(out);
    uint32_t now_s = pd_broker_wall_s();
    /* Most ids of a fetch over a large batch are still running: their
       records are read in place, side by side (pd_jobs_span). */
    for (uint32_t i = 0; i < rg->n && c->n < c->max; i++) {
        for (uint64_t k = 0, span; k < rg->r[i][1] && c->n < c->max; k += span) {
            pd_jobrec_t *recs;
            span = pd_jobs_span(jobs, rg->r[i][0] + k, rg->r[i][1] - k, &recs);
            for (uint64_t x = 0; x < span && c->n < c->max; x++) {
                pd_jobrec_t *job = recs && recs[x].state != PD_JOB_UNKNOWN ? &recs[x] : NULL;
                if (job && !PD_JOB_IS_FINAL(job->state))
                    continue;
                if (out->len >= PD_BROKER_REPLY_BYTES)
                    goto full;
                if (job && !s_shown_early(b, job))
                    continue; /* a cancellation not on disk yet: shown once it is */
                s_pack_one_result(b, pk, rg->r[i][0] + k + x, job, now_s);
                c->n++;
            }
        }
    }
full:
    s_array_patch(out, at, c->n);
    return 0;
}

/* Packs `results` for the final or unknown jobs among rg into the reply buffer (at
   most max, and about PD_BROKER_REPLY_BYTES); with st (rg->total bytes,
   s_states), also the state of every id of rg, read at the same moment.
   Returns how many results. When none was found and keep_empty is false,
   the buffer is left empty. */
static uint32_t s_fetch_pack(pd_broker_t *b, uint64_t req, const pd_ranges_t *rg, uint64_t max,
                             bool keep_empty, const uint8_t *st)
{
    msgpack_packer pk;
    pd_jobs_seal(pd_broker_jobs(b));
    pd_buf_reset(pd_broker_out(b));
    pd_packer_init(&pk, pd_broker_out(b));
    s_res_t ctx = {b, rg, max, 0};
    pd_m_results_t r = {.req = req, .res = {.pack = s_pack_res, .ctx = &ctx}};
    if (st) {
        r.has_st = true;
        r.st = (pd_bin_t){st, (uint32_t) rg->total};
    }
    pd_m_results_encode(&pk, &r);
    if (ctx.n == 0 && !keep_empty)
        pd_buf_reset(pd_broker_out(b));
    return ctx.n;
}

int pd_broker_on_fetch(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    pd_m_fetch_t q;
    int rc = pd_m_fetch_decode(m, &q);
    if (rc)
        return pd_broker_refuse(m, o, rc);
    uint64_t wait_ms = q.wait_ms, max = q.max;
    bool states = q.has_states && q.states;
    if (states)
        wait_ms = 0; /* a snapshot: answered at once */
    if (max == 0)
        max = PD_BROKER_FETCH_MAX;
    if (wait_ms > 86400000)
        wait_ms = 86400000;
    pd_ranges_t rg;
    if ((rc = s_owned_ranges(b, m, &q.ids, o, "fetch its result", &rg)) != 0)
        return rc;
    uint8_t *st = states ? malloc(rg.total ? rg.total : 1) : NULL;
    if (states && !st) {
        pd_ranges_free(&rg);
        snprintf(o->why, sizeof o->why, "the broker is out of memory");
        return PD_ENOMEM;
    }
    if (st)
        s_states(b, &rg, st);
    uint32_t n = s_fetch_pack(b, o->req, &rg, max, wait_ms == 0, st);
    free(st);
    if (n > 0 || wait_ms == 0) {
        pd_ranges_free(&rg);
        pd_broker_send_now(b, o->rid, o->ridlen); /* never waits for the disk */
        return 0;
    }
    if (pd_park_fetch(pd_broker_park(b), o->rid, o->ridlen, o->req, &rg, max,
                      pd_broker_now_ms(b) + (int64_t) wait_ms)) {
        pd_ranges_free(&rg);
        snprintf(o->why, sizeof o->why, "the broker already holds %u waiting fetches: fetch "
                 "with wait_ms 0, or wait and retry", PD_BROKER_MAX_PARKED);
        return PD_EOVERLOAD;
    }
    return 0;
}

/* Answers a parked fetch when it has something to show, or has to (its
   wait ran out). */
static bool s_answer_parked(void *user, const pd_park_fetch_t *p, bool expired)
{
    pd_broker_t *b = user;
    if (s_fetch_pack(b, p->req, &p->ids, p->max, expired, NULL) == 0 && !expired)
        return false; /* none of its results may be shown yet */
    pd_broker_send_now(b, p->rid, p->ridlen);
    return true;
}

void pd_broker_wake_ids(pd_broker_t *b, const uint64_t *ids, size_t n)
{
    pd_park_wake_ids(pd_broker_park(b), ids, n, s_answer_parked, b);
}

/* True when one of the ids is a cancelled job. */
static bool s_any_cancelled(pd_broker_t *b, const uint64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (pd_jobs_state(pd_broker_jobs(b), ids[i]) == PD_JOB_CANCELLED)
            return true;
    return false;
}

void pd_broker_wake_parked(pd_broker_t *b)
{
    size_t n;
    const uint64_t *fresh = pd_jobs_fresh(pd_broker_jobs(b), &n);
    /* Results are shown at once (s_shown_early) ... */
    pd_broker_wake_ids(b, fresh, n);
    uint64_t seq = pd_broker_journal(b) && n ? pd_journal_tag(pd_broker_journal(b)) : 0;
    if (seq && s_any_cancelled(b, fresh, n)) {
        /* ... cancellations once the batch holding them settles: kept even
           when no fetch is parked now, for one may park before then. */
        (void) pd_outbox_add_wake(pd_broker_outbox(b), seq, fresh, n); /* failing: a missed wake-up,
                                                            the fetch answers at wait_ms */
    }
    pd_jobs_fresh_clear(pd_broker_jobs(b));
}

int64_t pd_broker_expire_parked(pd_broker_t *b)
{
    return pd_park_expire(pd_broker_park(b), pd_broker_now_ms(b), s_answer_parked,
                          pd_broker_answer_task_fetch, b);
}

/* ---- cancel, release --------------------------------------------------- */

typedef struct {
    uint32_t worker; /* registry index */
    uint64_t id;     /* job id */
} s_wjob_t;

static int s_cmp_wjob(const void *a, const void *b)
{
    const s_wjob_t *x = a, *y = b;
    if (x->worker != y->worker)
        return x->worker < y->worker ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The ids of one worker's run of the list, [lo, hi). */
typedef struct {
    const s_wjob_t *lo, *hi;
} s_wids_t;

static int s_pack_wids(msgpack_packer *pk, const void *ctx)
{
    const s_wids_t *w = ctx;
    int rc = msgpack_pack_array(pk, (uint32_t) (w->hi - w->lo));
    for (const s_wjob_t *p = w->lo; p < w->hi && rc == 0; p++)
        rc = msgpack_pack_uint64(pk, p->id);
    return rc;
}

/* Sends `cancel {ids}` to each worker named in the sorted list. */
static void s_send_cancels(pd_broker_t *b, const s_wjob_t *list, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && list[j].worker == list[i].worker)
            j++;
        pd_wrec_t *wk = pd_reg_at(pd_broker_workers(b), list[i].worker);
        msgpack_packer pk;
        pd_buf_reset(pd_broker_aux(b));
        pd_packer_init(&pk, pd_broker_aux(b));
        s_wids_t ids = {list + i, list + j};
        pd_m_w_cancel_t c = {.ids = {.pack = s_pack_wids, .ctx = &ids}};
        pd_m_w_cancel_encode(&pk, &c);
        pd_broker_tell(b, wk);
        i = j;
    }
    pd_buf_reset(pd_broker_aux(b));
}

/* Cancels the unfinished jobs among the ranges (pairs [first, count]),
   telling the workers running some of them. Returns how many. */
static uint64_t s_cancel(pd_broker_t *b, const uint64_t (*r)[2], uint32_t nr)
{
    s_wjob_t *running = NULL;
    size_t nrun = 0, caprun = 0;
    uint64_t n = 0;
    for (uint32_t i = 0; i < nr; i++) {
        for (uint64_t c = 0; c < r[i][1]; c++) {
            uint64_t id = r[i][0] + c;
            pd_jobrec_t *job = pd_jobs_get(pd_broker_jobs(b), id);
            if (!job || PD_JOB_IS_FINAL(job->state))
                continue;
            if (job->state == PD_JOB_RUNNING) {
                pd_wrec_t *wk = pd_reg_at(pd_broker_workers(b), job->worker);
                if (wk)
                    pd_wrec_untrack(wk, pd_broker_jobs(b), job);
                if (nrun == caprun) {
                    size_t cap = caprun ? caprun * 2 : 256;
                    s_wjob_t *a = realloc(running, cap * sizeof *a);
                    if (a) {
                        running = a;
                        caprun = cap;
                    }
                }
                /* Without memory for the note, the worker finishes the job
                   and its result is dropped as stale: still correct. */
                if (nrun < caprun)
                    running[nrun++] = (s_wjob_t){job->worker, id};
            }
            pd_jobs_set_cancelled(pd_broker_jobs(b), id);
            n++;
        }
    }
    if (nrun) {
        qsort(running, nrun, sizeof *running, s_cmp_wjob);
        s_send_cancels(b, running, nrun);
    }
    free(running);
    return n;
}

uint64_t pd_broker_cancel_range(pd_broker_t *b, uint64_t first, uint32_t n)
{
    const uint64_t r[1][2] = {{first, n}};
    return s_cancel(b, r, 1);
}

int pd_broker_on_cancel(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    pd_ranges_t rg;
    int rc = s_ids_request(b, m, &pd_proto_cancel, o, "cancel it", &rg);
    if (rc)
        return rc;
    uint64_t n = s_cancel(b, (const uint64_t(*)[2]) rg.r, rg.n);
    pd_ranges_free(&rg);
    /* The cancellations go into the journal's batch now, so that the reply
       waits for them to be on disk. */
    pd_jobs_seal(pd_broker_jobs(b));
    pd_m_cancelled_t r = {.req = o->req, .n = n};
    pd_broker_reply(b, o, &pd_proto_cancelled, &r);
    return 0;
}

int pd_broker_on_gc(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    pd_m_gc_t q;
    int rc = pd_m_gc_decode(m, &q);
    if (rc)
        return pd_broker_refuse(m, o, rc);
    uint64_t ttl = q.has_ttl_s ? q.ttl_s : pd_broker_cfg(b)->result_ttl_s;
    if (ttl > UINT32_MAX)
        ttl = UINT32_MAX;
    uint64_t forgot = pd_jobs_expire(pd_broker_jobs(b), pd_broker_wall_s(), (uint32_t) ttl);
    forgot += pd_tasks_expire(pd_broker_tasks(b), pd_broker_now_s(b), (uint32_t) ttl);
    uint64_t before = pd_broker_journal(b) ? pd_journal_bytes(pd_broker_journal(b)) : 0;
    if (pd_broker_journal(b)) {
        pd_jobs_seal(pd_broker_jobs(b));
        pd_journal_compact(pd_broker_journal(b)); /* after the commit of the forgets */
        pd_broker_sync(b);              /* waits for it: the size below is the new one */
    }
    pd_log_info("gc: forgot %llu results fetched over %llu s ago; journal %.1f -> %.1f MiB",
                (unsigned long long) forgot, (unsigned long long) ttl, before / 1048576.0,
                (pd_broker_journal(b) ? pd_journal_bytes(pd_broker_journal(b)) : 0) / 1048576.0);
    pd_m_gc_done_t r = {.req = o->req, .forgot = forgot};
    S_JOURNAL(b, r);
    pd_broker_reply(b, o, &pd_proto_gc_done, &r);
    return 0;
}

int pd_broker_on_release(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o)
{
    pd_ranges_t rg;
    int rc = s_ids_request(b, m, &pd_proto_release, o, "release it", &rg);
    if (rc)
        return rc;
    uint64_t n = 0;
    for (uint32_t i = 0; i < rg.n; i++)
        for (uint64_t c = 0; c < rg.r[i][1]; c++)
            n += pd_jobs_forget(pd_broker_jobs(b), rg.r[i][0] + c);
    pd_ranges_free(&rg);
    pd_m_released_t r = {.req = o->req, .n = n};
    pd_broker_reply(b, o, &pd_proto_released, &r);
    return 0;
}
