/*  pd_client_jobs: jobs over the client's connection (playdoh.h): `map` and
    `exec` submit a batch as a window of pipelined `submit` chunks, `status`,
    `cancel` and `release` name jobs by ranges of ids, and results are
    collected with long-polling `fetch` requests, so a large batch costs a
    few messages per thousand jobs and a small one no more than one round
    trip. A result's value is read here too (pd_result_double,
    pd_result_exec).

    Each submit chunk carries a token (this client's 16 random bytes, then a
    chunk counter) so that a chunk sent again after a drop gets the same ids
    instead of being submitted twice; the other requests here are sent again
    as they are (pd_client_call_idem), except cancel and release.
*/
#include "playdoh.h"
#include "pd_plat.h"
#include "pd_client_int.h"

#include "pd_codec.h"
#include "pd_file.h"
#include "pd_limits.h"
#include "pd_log.h"
#include "pd_msg.h"
#include "pd_proto.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_CHUNK_JOBS 4096
#define S_CHUNK_BYTES (1u << 20)
#define S_WINDOW 16       /* submit chunks in flight (16 MiB at most): with a journal, what is in
                             flight is acknowledged by one commit */
#define S_RETRY_MS 2000   /* first resend of the window with no reply */
#define S_MAX_RANGES 4096 /* ranges per fetch request */
#define S_POLL_MS 5000    /* longest wait of one fetch */

const char *pd_job_state_name(pd_job_state_t s)
{
    static const char *names[] = {"unknown", "queued", "running", "done", "failed", "cancelled"};
    return (unsigned) s < 6 ? names[s] : "invalid";
}

bool pd_job_state_final(pd_job_state_t s) { return s != PD_JOB_QUEUED && s != PD_JOB_RUNNING; }

/* ---- map ----------------------------------------------------------------- */

/* One submit chunk: jobs [start, start + n) of the call. */
typedef struct {
    uint64_t req;        /* its request number (the same when sent again) */
    uint64_t token;      /* its token's counter */
    size_t start, n;     /* jobs start .. start+n-1 of the call */
    const uint8_t *raw;  /* their packed arguments */
    size_t bytes;        /* bytes at raw */
    int64_t first_sent;  /* ms of its first send */
} s_chunk_t;

/* The arguments of a chunk: an array of its n packed values. */
static int s_pack_chunk_args(msgpack_packer *pk, const void *ctx)
{
    const s_chunk_t *ch = ctx;
    return msgpack_pack_array(pk, (uint32_t) ch->n) || pd_pack_raw(pk, ch->raw, ch->bytes);
}

/* Builds and sends one submit chunk. Plain CPU jobs keep the short form:
   an option is written only when asked (timeout_ms and retries always). */
static int s_send_chunk(pd_client_t *c, const s_chunk_t *ch, const char *hash, const char *fn,
                        const pd_map_opts_t *opts, size_t batch_bytes)
{
    static const pd_map_opts_t none = {0};
    const pd_map_opts_t *o = opts ? opts : &none;
    const char *cuda = o->cuda && *o->cuda ? o->cuda : NULL;
    uint8_t token[PD_CLIENT_TOKEN];
    pd_client_token(c, ch->token, token);
    pd_m_submit_t q = {
        .args = {.pack = s_pack_chunk_args, .ctx = ch},
        .has_timeout_ms = true, .timeout_ms = o->timeout_ms,
        .has_retries = true, .retries = o->retries ? o->retries : 3,
        .has_retry_failed = o->retry_failed != 0, .retry_failed = o->retry_failed,
        .has_max_slots = o->max_slots != 0, .max_slots = o->max_slots,
        .has_shared = o->shared != NULL,
        .has_gpu = o->gpu || cuda, .gpu = true,
        .has_cu = cuda != NULL,
        .has_memory = o->memory != 0, .memory = o->memory,
        .has_cpu_time = o->cpu_time_s != 0, .cpu_time = o->cpu_time_s,
        .has_max_output = o->max_output != 0, .max_output = o->max_output,
        .has_token = true, .token = {token, sizeof token},
        .has_at = true, .at = ch->start,
        .has_batch_bytes = true, .batch_bytes = batch_bytes};
    snprintf(q.mod, sizeof q.mod, "%s", hash);
    snprintf(q.fn, sizeof q.fn, "%s", fn);
    if (o->shared)
        snprintf(q.shared, sizeof q.shared, "%s", o->shared);
    if (cuda)
        snprintf(q.cu, sizeof q.cu, "%s", cuda);
    pd_client_encode(c, &pd_proto_submit, &q, ch->req);
    return pd_client_send(c);
}

/* Receives one `accepted` reply (or error) for a chunk in the window and
   writes its ids. Returns 0 (one chunk settled, or a stray reply), the
   chunk's error (the chunk is settled: refused), PD_CLIENT_LOST (the connection
   dropped: nothing settled) or PD_ETIMEDOUT (nothing came within wait_ms). */
static int s_take_accepted(pd_client_t *c, s_chunk_t *win, int *inflight, uint64_t *ids,
                           long *accepted, int wait_ms)
{
    pd_msg_t m;
    uint64_t got = 0;
    int rc = pd_client_recv(c, 0, &m, wait_ms, &got);
    if (rc == PD_CLIENT_LOST || rc == PD_ETIMEDOUT)
        return rc;
    int k;
    for (k = 0; k < *inflight; k++)
        if (win[k].req == got)
            break;
    if (k == *inflight)
        return 0; /* not one of ours: a duplicate reply to a chunk sent twice */
    s_chunk_t ch = win[k];
    win[k] = win[--*inflight];
    if (rc)
        return rc;
    pd_m_accepted_t a;
    if (!pd_msg_is(&m, pd_proto_accepted.type) || pd_m_accepted_decode(&m, &a) || a.n != ch.n)
        return pd_client_fail(c, PD_EPROTO, "broker sent a malformed 'accepted' reply");
    for (size_t i = 0; i < ch.n; i++)
        ids[ch.start + i] = a.first + i;
    *accepted += (long) ch.n;
    return 0;
}

/* Checks a map's arguments (n values, nothing else, each and all within
   the broker's limits) before anything is sent. Returns 0 or an error with
   the sentence set. */
static int s_map_check(pd_client_t *c, const void *args, size_t len, size_t n)
{
    const pd_client_limits_t lim = pd_client_limits(c);
    pd_rd_t r;
    pd_rd_init(&r, args, len);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *raw;
        size_t rl;
        if (pd_rd_skip(&r, &raw, &rl))
            return pd_client_fail(c, PD_EPROTO, "argument %zu is not a well-formed msgpack value",
                                  i);
        if (lim.max_arg && rl > lim.max_arg)
            return pd_client_fail(c, PD_ETOOBIG, "job %zu of the batch (counting from 1) has an "
                          "argument of %.1f MiB; the broker takes at most %.1f MiB per job "
                          "(its max_arg_mb): pass large data once as shared data (--shared, "
                          "pd_shared_put) and give each job what differs", i + 1,
                          (double) rl / 1048576.0, (double) lim.max_arg / 1048576.0);
    }
    if (!pd_rd_at_end(&r))
        return pd_client_fail(c, PD_EPROTO, "arguments hold more than the %zu values announced", n);
    if (lim.max_batch && len > lim.max_batch)
        return pd_client_fail(c, PD_ETOOBIG,
                              "the batch's arguments are %.1f MiB in all; the broker "
                              "takes at most %.1f MiB in one submit (its max_batch_mb): split the "
                              "batch, or pass data the jobs share once as shared data (--shared)",
                              (double) len / 1048576.0, (double) lim.max_batch / 1048576.0);
    return 0;
}

/* What a map call has sent and settled so far. */
typedef struct {
    s_chunk_t win[S_WINDOW]; /* chunks sent, not yet accepted */
    int inflight;            /* chunks in win */
    long accepted;           /* jobs the broker accepted */
    int first_err;           /* the first error (no more chunks are sent after it) */
    char first_msg[PD_CLIENT_ERR_MAX]; /* its sentence */
} s_map_t;

/* Keeps the first error of a map call and its sentence. */
static void s_map_error(s_map_t *mp, int rc, const char *msg)
{
    if (mp->first_err)
        return;
    mp->first_err = rc;
    snprintf(mp->first_msg, sizeof mp->first_msg, "%s", msg);
}

/* Sends the window again after a drop (rc PD_CLIENT_LOST) or a silence
   (PD_ETIMEDOUT), same tokens: the broker gives a chunk it already accepted
   the same ids. A chunk silent for the whole time-out fails. */
static void s_map_resend(pd_client_t *c, s_map_t *mp, int rc, const char *hash, const char *fn,
                         const pd_map_opts_t *opts, size_t len)
{
    int64_t now = pd_client_now_ms();
    for (int k = 0; k < mp->inflight;) {
        s_chunk_t *ch = &mp->win[k];
        if (now - ch->first_sent >= pd_client_timeout(c)) {
            if (!mp->first_err) {
                char msg[PD_CLIENT_ERR_MAX];
                snprintf(msg, sizeof msg,
                         "no reply from the broker at %s within %d ms to a submit of "
                         "%zu jobs (sent again after each drop): is it running and "
                         "reachable?", pd_client_endpoint(c), pd_client_timeout(c), ch->n);
                s_map_error(mp, PD_ETIMEDOUT, msg);
            }
            *ch = mp->win[--mp->inflight];
            continue;
        }
        if (rc == PD_CLIENT_LOST && now - ch->first_sent < 50)
            usleep(50000);
        pd_client_count_resend(c);
        if (s_send_chunk(c, ch, hash, fn, opts, len) != 0)
            ch->first_sent = 0; /* fails at the next turn */
        k++;
    }
    if (rc == PD_CLIENT_LOST)
        pd_log_info("client: connection to %s dropped; sending %d submit chunks again",
                    pd_client_endpoint(c), mp->inflight);
}

/* Cuts the next chunk off r (at most S_CHUNK_JOBS jobs and S_CHUNK_BYTES
   bytes, at least one job) for jobs next.. of n; advances r. */
static s_chunk_t s_next_chunk(pd_client_t *c, pd_rd_t *r, size_t next, size_t n)
{
    pd_rd_t probe = *r;
    size_t k = 0, bytes = 0;
    const uint8_t *start = probe.p;
    while (next + k < n && k < S_CHUNK_JOBS) {
        const uint8_t *raw;
        size_t rl;
        pd_rd_t save = probe;
        pd_rd_skip(&probe, &raw, &rl);
        if (k > 0 && bytes + rl > S_CHUNK_BYTES) {
            probe = save;
            break;
        }
        bytes += rl;
        k++;
    }
    *r = probe;
    return (s_chunk_t){.req = pd_client_new_req(c), .token = pd_client_new_chunk(c),
                       .start = next, .n = k, .raw = start, .bytes = bytes,
                       .first_sent = pd_client_now_ms()};
}

long pd_map(pd_client_t *c, const char *hash, const char *fn, const void *args, size_t len,
            size_t n, const pd_map_opts_t *opts, uint64_t *ids)
{
    assert(c && hash && fn && (args || n == 0) && ids);
    if (n == 0)
        return 0;
    if (strlen(fn) == 0 || strlen(fn) > 255)
        return pd_client_fail(c, PD_EINVAL, "function name '%s' must be 1 to 255 characters", fn);
    if (opts && opts->max_output > PD_LIMITS_MAX_OUTPUT)
        return pd_client_fail(
            c, PD_EINVAL,
            "max_output is %llu bytes; a job keeps at most %u MiB of "
            "output (write larger results to a file, or return them as the value)",
            (unsigned long long) opts->max_output, PD_LIMITS_MAX_OUTPUT >> 20);
    memset(ids, 0, n * sizeof *ids);
    int rc = s_map_check(c, args, len, n);
    if (rc)
        return rc;
    pd_rd_t r;
    pd_rd_init(&r, args, len);
    s_map_t map = {.inflight = 0}, *mp = &map;
    size_t next = 0;
    int64_t attempt = S_RETRY_MS; /* wait before sending the window again */
    pd_client_drain(c);
    while (next < n || mp->inflight > 0) {
        if (next < n && mp->inflight < S_WINDOW && !mp->first_err) {
            pd_rd_t rest = r;
            s_chunk_t ch = s_next_chunk(c, &rest, next, n);
            rc = s_send_chunk(c, &ch, hash, fn, opts, len);
            if (rc) {
                s_map_error(mp, rc, pd_client_error(c));
                continue;
            }
            mp->win[mp->inflight++] = ch;
            r = rest;
            next += ch.n;
            continue;
        }
        if (mp->inflight == 0)
            break;
        rc = s_take_accepted(c, mp->win, &mp->inflight, ids, &mp->accepted, (int) attempt);
        if (rc == PD_CLIENT_LOST || rc == PD_ETIMEDOUT) {
            s_map_resend(c, mp, rc, hash, fn, opts, len);
            if (rc == PD_ETIMEDOUT)
                attempt = attempt * 2 < pd_client_timeout(c) ? attempt * 2 : pd_client_timeout(c);
            continue;
        }
        attempt = S_RETRY_MS;
        if (rc)
            s_map_error(mp, rc, pd_client_error(c));
    }
    long out = mp->accepted;
    if (mp->first_err) {
        pd_client_fail(c, mp->first_err, "%s", mp->first_msg);
        if (mp->accepted == 0)
            out = mp->first_err;
    }
    return out;
}

long pd_map_doubles(pd_client_t *c, const char *hash, const char *fn, const double *x, size_t n,
                    const pd_map_opts_t *opts, uint64_t *ids)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_double(&pk, x[i]);
    long rc = b.failed ? pd_client_fail(c, PD_ENOMEM, "out of memory packing %zu numbers", n)
                       : pd_map(c, hash, fn, b.data, b.len, n, opts, ids);
    pd_buf_free(&b);
    return rc;
}

long pd_exec(pd_client_t *c, const char *const *cmds, size_t n, const pd_map_opts_t *opts,
             uint64_t *ids)
{
    assert(c && (cmds || n == 0) && ids);
    pd_exec_job_t *jobs = calloc(n ? n : 1, sizeof *jobs);
    if (!jobs)
        return pd_client_fail(c, PD_ENOMEM, "%zu commands do not fit in memory", n);
    for (size_t i = 0; i < n; i++)
        jobs[i].cmd = cmds[i];
    long rc = pd_exec_jobs(c, jobs, n, NULL, opts, ids);
    free(jobs);
    return rc;
}

/* Checks the names of one job's files (what: "to send", "to return"). */
static int s_exec_names(pd_client_t *c, size_t job, const char *const *names, size_t n,
                        const char *what)
{
    if (n > PD_EXEC_MAX_FILES)
        return pd_client_fail(c, PD_EINVAL,
                              "job %zu of the batch (counting from 1) has %zu files %s; "
                              "a job takes at most %d",
                              job + 1, n, what, PD_EXEC_MAX_FILES);
    for (size_t k = 0; k < n; k++) {
        char why[128];
        if (pd_file_check_relative(names[k], strlen(names[k]), why, sizeof why))
            return pd_client_fail(c, PD_EINVAL,
                                  "job %zu of the batch (counting from 1): the file %s "
                                  "'%.300s' %s",
                                  job + 1, what, names[k], why);
    }
    return 0;
}

/* Packs job i's argument: {cmd, cwd, [workdir], [files], [return]}. bytes
   counts what the files sent so far weigh, against the broker's bounds. */
static int s_exec_pack(pd_client_t *c, size_t i, const pd_exec_job_t *j, const char *cwd,
                       const char *workdir, msgpack_packer *pk, uint64_t *bytes)
{
    int rc = s_exec_names(c, i, j->transfer, j->ntransfer, "to send");
    if (!rc)
        rc = s_exec_names(c, i, j->ret, j->nret, "to return");
    if (rc)
        return rc;
    const pd_client_limits_t lim = pd_client_limits(c);
    msgpack_pack_map(pk, 1 + (cwd[0] ? 1 : 0) + (workdir ? 1 : 0) + (j->ntransfer ? 1 : 0) +
                             (j->nret ? 1 : 0));
    pd_pack_kv_str(pk, "cmd", j->cmd);
    if (cwd[0])
        pd_pack_kv_str(pk, "cwd", cwd);
    if (workdir)
        pd_pack_kv_str(pk, "workdir", workdir);
    if (j->ntransfer) {
        pd_pack_cstr(pk, "files");
        msgpack_pack_map(pk, j->ntransfer);
        uint64_t job_bytes = strlen(j->cmd);
        for (size_t k = 0; k < j->ntransfer; k++) {
            const char *name = j->transfer[k];
            struct stat st;
            uint64_t left = lim.max_arg > job_bytes ? lim.max_arg - job_bytes : 0;
            if (stat(name, &st) == 0 && S_ISREG(st.st_mode) && lim.max_arg &&
                (uint64_t) st.st_size > left)
                return pd_client_fail(c, PD_ETOOBIG, "job %zu of the batch (counting from 1): the "
                              "files it sends weigh over %.1f MiB with %s (%.1f MiB); the broker "
                              "takes at most %.1f MiB per job (its max_arg_mb): put the files "
                              "on a file system the workers share and run there (--workdir "
                              "DIR) instead of sending them", i + 1,
                              (double) (job_bytes + (uint64_t) st.st_size) / 1048576.0, name,
                              (double) st.st_size / 1048576.0, (double) lim.max_arg / 1048576.0);
            char *data = NULL;
            size_t len = 0;
            if (pd_file_read(name, lim.max_arg ? left : PD_MAX_FRAME, &data, &len) != 0)
                return pd_client_fail(c, errno == EFBIG ? PD_ETOOBIG : PD_EIO,
                                      "job %zu of the batch "
                                      "(counting from 1): cannot read the file to send %s: %s",
                                      i + 1, name,
                                      errno == EINVAL ? "not a regular file" : strerror(errno));
            job_bytes += len;
            *bytes += len;
            if (lim.max_batch && *bytes > lim.max_batch) {
                free(data);
                return pd_client_fail(
                    c, PD_ETOOBIG,
                    "the files the batch sends are over %.1f MiB by "
                    "job %zu; the broker takes at most %.1f MiB in one submit (its "
                    "max_batch_mb): put them on a file system the workers share and "
                    "run there (--workdir DIR), or submit fewer jobs at once",
                    (double) *bytes / 1048576.0, i + 1, (double) lim.max_batch / 1048576.0);
            }
            pd_pack_cstr(pk, name);
            msgpack_pack_bin(pk, len);
            msgpack_pack_bin_body(pk, data, len);
            free(data);
        }
    }
    if (j->nret) {
        pd_pack_cstr(pk, "return");
        msgpack_pack_array(pk, j->nret);
        for (size_t k = 0; k < j->nret; k++)
            pd_pack_cstr(pk, j->ret[k]);
    }
    return 0;
}

long pd_exec_jobs(pd_client_t *c, const pd_exec_job_t *jobs, size_t n, const char *workdir,
                  const pd_map_opts_t *opts, uint64_t *ids)
{
    assert(c && (jobs || n == 0) && ids);
    char cwd[4096], wd[8200];
    if (pd_plat_getcwd(cwd, sizeof cwd) != 0)
        cwd[0] = 0; /* removed, or too long: the jobs run in scratch directories */
    if (workdir && !*workdir)
        return pd_client_fail(c, PD_EINVAL, "the job's directory (workdir) is empty");
    if (workdir && !cwd[0] && !pd_plat_dirsep(workdir[0]) && workdir[1] != ':')
        return pd_client_fail(c, PD_EINVAL,
                              "the job's directory %s is relative, and this process's "
                              "working directory cannot be read (%s): give an absolute path",
                              workdir, strerror(errno));
    if (workdir && !pd_plat_dirsep(workdir[0]) && !(workdir[0] && workdir[1] == ':')) {
        if (snprintf(wd, sizeof wd, "%s/%s", cwd, workdir) >= (int) sizeof wd)
            return pd_client_fail(c, PD_EINVAL, "the job's directory (workdir) is too long");
        workdir = wd;
    }
    if (workdir && strlen(workdir) >= 4096)
        return pd_client_fail(c, PD_EINVAL,
                              "the job's directory (workdir) is longer than 4095 bytes");
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    uint64_t bytes = 0;
    long rc = 0;
    for (size_t i = 0; i < n && !rc && !b.failed; i++)
        rc = s_exec_pack(c, i, &jobs[i], cwd, workdir, &pk, &bytes);
    if (!rc && b.failed)
        rc = pd_client_fail(c, PD_ENOMEM, "%zu commands and their files do not fit in memory", n);
    if (!rc)
        rc = pd_map(c, PD_BUILTIN, "exec", b.data, b.len, n, opts, ids);
    else
        memset(ids, 0, n * sizeof *ids);
    pd_buf_free(&b);
    return rc;
}

int pd_result_exec(const pd_result_t *r, pd_exec_result_t *x)
{
    memset(x, 0, sizeof *x);
    if ((r->state != PD_JOB_DONE && r->state != PD_JOB_FAILED) || !r->value)
        return PD_EPROTO;
    pd_rd_t rd;
    pd_rd_init(&rd, r->value, r->len);
    uint32_t n;
    bool have_exit = false;
    if (pd_rd_map(&rd, &n))
        return PD_EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        const char *k;
        uint32_t kl;
        if (pd_rd_str(&rd, &k, &kl))
            return PD_EPROTO;
        int64_t iv;
        const void *p;
        uint32_t len;
        int rc = 0;
#define S_KEY(name) (kl == strlen(name) && memcmp(k, name, kl) == 0)
        if (S_KEY("exit")) {
            rc = pd_rd_int(&rd, &iv);
            x->exit = (int) iv;
            have_exit = rc == 0;
        } else if (S_KEY("signal")) {
            rc = pd_rd_int(&rd, &iv);
            x->signal = (int) iv;
        } else if (S_KEY("out") || S_KEY("err") || S_KEY("host")) {
            if (pd_rd_peek(&rd) == PD_MP_STR) {
                const char *sp;
                rc = pd_rd_str(&rd, &sp, &len);
                p = sp;
            } else {
                rc = pd_rd_bin(&rd, &p, &len);
            }
            if (rc == 0 && S_KEY("out"))
                x->out = p, x->out_len = len;
            else if (rc == 0 && S_KEY("err"))
                x->err = p, x->err_len = len;
            else if (rc == 0)
                x->host = p, x->host_len = len;
        } else if (S_KEY("start")) {
            rc = pd_rd_double(&rd, &x->start);
        } else if (S_KEY("runtime")) {
            rc = pd_rd_double(&rd, &x->runtime);
        } else if (S_KEY("truncated")) {
            rc = pd_rd_bool(&rd, &x->truncated);
        } else if (S_KEY("dropped_out")) {
            rc = pd_rd_uint(&rd, &x->out_dropped);
        } else if (S_KEY("dropped_err")) {
            rc = pd_rd_uint(&rd, &x->err_dropped);
        } else if (S_KEY("dir")) {
            const char *sp;
            rc = pd_rd_str(&rd, &sp, &len);
            x->dir = sp, x->dir_len = len;
        } else if (S_KEY("scratch")) {
            rc = pd_rd_bool(&rd, &x->scratch);
        } else if (S_KEY("files")) {
            uint32_t nf;
            rc = pd_rd_map(&rd, &nf);
            for (uint32_t f = 0; f < nf && !rc; f++) {
                const char *sp;
                rc = pd_rd_str(&rd, &sp, &len);
                if (!rc)
                    rc = pd_rd_bin(&rd, &p, &len);
            }
            x->nfiles = rc ? 0 : nf;
        } else {
            rc = pd_rd_skip(&rd, NULL, NULL);
        }
#undef S_KEY
        if (rc)
            return PD_EPROTO;
    }
    if (!have_exit) {
        memset(x, 0, sizeof *x);
        return PD_EPROTO;
    }
    if (!x->out)
        x->out = "";
    if (!x->err)
        x->err = "";
    if (!x->host)
        x->host = "";
    if (!x->dir)
        x->dir = "";
    return 0;
}

int pd_result_exec_file(const pd_result_t *r, size_t i, pd_exec_file_t *f)
{
    memset(f, 0, sizeof *f);
    pd_exec_result_t x;
    if (pd_result_exec(r, &x) || i >= x.nfiles)
        return PD_EPROTO;
    pd_rd_t rd;
    pd_rd_init(&rd, r->value, r->len);
    uint32_t n, nf;
    pd_rd_map(&rd, &n);
    for (uint32_t k = 0; k < n; k++) {
        if (!pd_rd_key_is(&rd, "files")) {
            if (pd_rd_skip(&rd, NULL, NULL) || pd_rd_skip(&rd, NULL, NULL))
                return PD_EPROTO;
            continue;
        }
        if (pd_rd_map(&rd, &nf))
            return PD_EPROTO;
        for (uint32_t e = 0; e < nf; e++) {
            const char *name;
            const void *data;
            uint32_t nl, len;
            if (pd_rd_str(&rd, &name, &nl) || pd_rd_bin(&rd, &data, &len))
                return PD_EPROTO;
            if (e == i) {
                *f = (pd_exec_file_t){.name = name, .name_len = nl, .data = data, .len = len};
                return 0;
            }
        }
        return PD_EPROTO;
    }
    return PD_EPROTO;
}

/* ---- id sets ------------------------------------------------------------- */

/* Some ids of a request, ids[0..n), sent as [first, count] ranges that merge
   runs of consecutive ids. */
typedef struct {
    const uint64_t *ids;
    size_t n;
} s_ids_t;

/* The ids[0..n) that max_ranges ranges hold: the first ones, as many as fit. */
static s_ids_t s_ids_fit(const uint64_t *ids, size_t n, size_t max_ranges)
{
    size_t nr = 0, i = 0;
    while (i < n && nr < max_ranges) {
        size_t j = i + 1;
        while (j < n && ids[j] == ids[j - 1] + 1)
            j++;
        nr++;
        i = j;
    }
    return (s_ids_t){ids, i};
}

/* Packs the ids ctx (a const s_ids_t *) as ranges: the field "ids". */
static int s_pack_ranges(msgpack_packer *pk, const void *ctx)
{
    const s_ids_t *set = ctx;
    const uint64_t *ids = set->ids;
    size_t n = set->n, nr = 0;
    for (size_t i = 0; i < n; i++)
        nr += i == 0 || ids[i] != ids[i - 1] + 1;
    int rc = msgpack_pack_array(pk, (uint32_t) nr);
    for (size_t i = 0; i < n && !rc;) {
        size_t j = i + 1;
        while (j < n && ids[j] == ids[j - 1] + 1)
            j++;
        rc = msgpack_pack_array(pk, 2) || msgpack_pack_uint64(pk, ids[i]) ||
             msgpack_pack_uint64(pk, j - i);
        i = j;
    }
    return rc;
}

int pd_status(pd_client_t *c, const uint64_t *ids, size_t n, pd_job_state_t *states)
{
    size_t done = 0;
    while (done < n) {
        s_ids_t set = s_ids_fit(ids + done, n - done, S_MAX_RANGES);
        pd_m_status_t q = {.ids = {.pack = s_pack_ranges, .ctx = &set}};
        pd_m_states_t a;
        uint64_t req = pd_client_request(c, &pd_proto_status, &q);
        int rc = pd_client_call_idem(c, req, &pd_proto_states, &a, 0, pd_client_timeout(c));
        if (rc)
            return rc;
        if (a.st.len != set.n)
            return pd_client_fail(c, PD_EPROTO, "broker sent a malformed 'states' reply");
        for (size_t i = 0; i < set.n; i++) {
            uint8_t s = ((const uint8_t *) a.st.p)[i];
            states[done + i] = s <= PD_JOB_CANCELLED ? (pd_job_state_t) s : PD_JOB_UNKNOWN;
        }
        done += set.n;
    }
    return 0;
}

/* Sends request d (cancel, release) over all ids, in as many requests as
   needed, once each, and sums the counts of the replies (want). */
static long s_ids_call(pd_client_t *c, const pd_proto_msg_t *d, const pd_proto_msg_t *want,
                       const uint64_t *ids, size_t n)
{
    long total = 0;
    size_t done = 0;
    while (done < n) {
        s_ids_t set = s_ids_fit(ids + done, n - done, S_MAX_RANGES);
        uint64_t count;
        int rc = pd_client_count_call(c, d, want, s_pack_ranges, &set, &count);
        if (rc)
            return rc;
        done += set.n;
        total += (long) count;
    }
    return total;
}

long pd_cancel(pd_client_t *c, const uint64_t *ids, size_t n)
{
    return s_ids_call(c, &pd_proto_cancel, &pd_proto_cancelled, ids, n);
}

long pd_release(pd_client_t *c, const uint64_t *ids, size_t n)
{
    return s_ids_call(c, &pd_proto_release, &pd_proto_released, ids, n);
}

/* ---- fetch --------------------------------------------------------------- */

typedef struct {
    uint64_t id;
    size_t index;
} s_slot_t;

static int s_slot_cmp(const void *a, const void *b)
{
    const s_slot_t *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id ? 1 : (x->index > y->index) - (x->index < y->index);
}

/* Sets res's value to a copy of p[0..n); returns 0 or PD_ENOMEM. */
static int s_set_value(pd_result_t *res, const void *p, size_t n)
{
    res->value = malloc(n);
    if (!res->value)
        return PD_ENOMEM;
    memcpy(res->value, p, n);
    res->len = n;
    return 0;
}

/* Parses one result entry [id, state, value] into *res (which must be
   zeroed). A failed job's value is its error map {code, msg, host, slot,
   attempts, value?}: the optional "value" (an exec job's output) is kept
   in res->value. Returns 0, PD_EPROTO when the entry is malformed, or
   PD_ENOMEM. */
static int s_parse_entry(pd_rd_t *r, pd_result_t *res)
{
    uint32_t k;
    uint64_t id, st;
    const uint8_t *raw;
    size_t rl;
    if (pd_rd_array(r, &k) || k != 3 || pd_rd_uint(r, &id) || pd_rd_uint(r, &st) || st > 5 ||
        pd_rd_skip(r, &raw, &rl))
        return PD_EPROTO;
    res->id = id;
    res->state = (pd_job_state_t) st;
    if (st == PD_JOB_DONE) {
        if (s_set_value(res, raw, rl))
            return PD_ENOMEM;
    } else if (st == PD_JOB_FAILED) {
        pd_rd_t e;
        pd_rd_init(&e, raw, rl);
        char code[32] = "PD_ETASK", msg[4600] = "", host[256] = "?";
        uint64_t slot = 0, attempts = 0;
        const uint8_t *val = NULL;
        size_t vlen = 0;
        uint32_t nf;
        if (pd_rd_map(&e, &nf) == 0) {
            for (uint32_t f = 0; f < nf; f++) {
                char key[16] = "";
                if (pd_rd_strcpy(&e, key, sizeof key) && pd_rd_skip(&e, NULL, NULL))
                    break;
                int vr = -1;
                if (strcmp(key, "code") == 0)
                    vr = pd_rd_strcpy(&e, code, sizeof code);
                else if (strcmp(key, "msg") == 0)
                    vr = pd_rd_strcpy(&e, msg, sizeof msg);
                else if (strcmp(key, "host") == 0)
                    vr = pd_rd_strcpy(&e, host, sizeof host);
                else if (strcmp(key, "slot") == 0)
                    vr = pd_rd_uint(&e, &slot);
                else if (strcmp(key, "attempts") == 0)
                    vr = pd_rd_uint(&e, &attempts);
                else if (strcmp(key, "value") == 0)
                    vr = pd_rd_skip(&e, &val, &vlen);
                if (vr && pd_rd_skip(&e, NULL, NULL))
                    break;
            }
        }
        res->code = pd_client_code_from_name(code);
        char full[5000];
        snprintf(full, sizeof full, "%s (job %llu on %s slot %llu)", msg[0] ? msg : code,
                 (unsigned long long) id, host, (unsigned long long) slot);
        res->error = strdup(full);
        if (!res->error)
            return PD_ENOMEM;
        if (val && vlen && s_set_value(res, val, vlen))
            return PD_ENOMEM;
    } else if (st == PD_JOB_CANCELLED) {
        res->code = PD_ECANCELLED;
    } else if (st == PD_JOB_UNKNOWN) {
        res->code = PD_ENOJOB;
    }
    return 0;
}

/* Copies a parsed result into dst (deep copy); returns 0 or PD_ENOMEM. */
static int s_copy_result(pd_result_t *dst, const pd_result_t *src)
{
    *dst = *src;
    dst->value = NULL;
    dst->error = NULL;
    if (src->value && s_set_value(dst, src->value, src->len))
        return PD_ENOMEM;
    if (src->error && !(dst->error = strdup(src->error)))
        return PD_ENOMEM;
    return 0;
}

/* Stores one result entry into every results[] slot of that id; returns
   how many slots became final. */
static size_t s_store(pd_rd_t *r, const s_slot_t *order, size_t n, pd_result_t *results, int *bad)
{
    pd_result_t one;
    memset(&one, 0, sizeof one);
    if (s_parse_entry(r, &one)) {
        pd_results_clear(&one, 1);
        *bad = 1;
        return 0;
    }
    /* lower bound of id */
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (order[mid].id < one.id)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t newly = 0;
    bool moved = false;
    for (size_t i = lo; i < n && order[i].id == one.id; i++) {
        pd_result_t *res = &results[order[i].index];
        if (pd_job_state_final(res->state))
            continue;
        if (!moved) {
            *res = one; /* the first slot takes the parsed result itself */
            moved = true;
        } else if (s_copy_result(res, &one)) {
            *bad = 1;
        }
        newly++;
    }
    if (!moved)
        pd_results_clear(&one, 1);
    return newly;
}

/* Writes the ids of the results not final (and, with told, whose state
   was not given yet) into pending, in increasing order, each once; returns
   how many. */
static size_t s_pending(const s_slot_t *order, size_t n, const pd_result_t *results,
                        const uint8_t *told, uint64_t *pending)
{
    size_t np = 0;
    for (size_t i = 0; i < n; i++)
        if (!(told && told[i]) && !pd_job_state_final(results[order[i].index].state) &&
            (np == 0 || pending[np - 1] != order[i].id))
            pending[np++] = order[i].id;
    return np;
}

/* One fetch of the first of ids[0..n) that fit in a request (*take says how
   many), waiting up to wait_ms for up to max results; with states, the
   broker also says each job's state. On success a holds the reply, its res
   opened in *r with *nres entries. Returns 0 or an error. */
static int s_fetch_call(pd_client_t *c, const uint64_t *ids, size_t n, int wait_ms, uint64_t max,
                        bool states, pd_m_results_t *a, pd_rd_t *r, uint32_t *nres, size_t *take)
{
    s_ids_t set = s_ids_fit(ids, n, S_MAX_RANGES);
    pd_m_fetch_t q = {.ids = {.pack = s_pack_ranges, .ctx = &set}, .wait_ms = (uint64_t) wait_ms,
                      .max = max, .has_states = states, .states = true};
    if (take)
        *take = set.n;
    uint64_t req = pd_client_request(c, &pd_proto_fetch, &q);
    int rc = pd_client_call_idem(c, req, &pd_proto_results, a, wait_ms, pd_client_timeout(c));
    if (rc)
        return rc;
    pd_rd_init(r, a->res.p, a->res.len);
    if (pd_rd_array(r, nres))
        return pd_client_fail(c, PD_EPROTO, "broker sent a malformed 'results' reply");
    return 0;
}

/* Sets every result that pd_fetch's wait left not final to the state the
   broker holds for that job (queued or running: the one `status` reads),
   taking in the same reply any result that ended meanwhile, so that a job
   is never shown queued while the broker has it running. pending has room
   for n ids. Returns 0 or an error. */
static int s_fetch_states(pd_client_t *c, const s_slot_t *order, size_t n, pd_result_t *results,
                          uint64_t *pending, size_t *ended)
{
    uint8_t *told = calloc(n ? n : 1, 1); /* by position in order: state given */
    if (!told)
        return pd_client_fail(c, PD_ENOMEM, "out of memory for %zu results", n);
    int rc = 0;
    for (;;) {
        size_t np = s_pending(order, n, results, told, pending);
        if (np == 0)
            break;
        pd_m_results_t a;
        pd_rd_t r;
        uint32_t nres;
        size_t take;
        if ((rc = s_fetch_call(c, pending, np, 0, 10000, true, &a, &r, &nres, &take)) != 0)
            break;
        /* An older broker sends no states: the jobs stay queued. */
        if (!a.has_st)
            break;
        if (a.st.len != take) {
            rc = pd_client_fail(c, PD_EPROTO, "broker sent a malformed 'results' reply");
            break;
        }
        int bad = 0;
        size_t progress = 0;
        for (uint32_t i = 0; i < nres && !bad; i++) {
            size_t k = s_store(&r, order, n, results, &bad);
            *ended += k;
            progress += k;
        }
        if (bad) {
            rc = pd_client_fail(c, PD_EPROTO, "broker sent a malformed result entry");
            break;
        }
        const uint8_t *st = a.st.p;
        for (size_t k = 0, i = 0; k < take; k++) {
            while (i < n && order[i].id < pending[k])
                i++;
            for (; i < n && order[i].id == pending[k]; i++) {
                pd_result_t *res = &results[order[i].index];
                if (pd_job_state_final(res->state))
                    continue;
                /* A final state whose result the reply did not carry (over
                   its size, or a cancellation not on disk yet) is asked
                   again, as long as each pass brings something. */
                if (st[k] == PD_JOB_QUEUED || st[k] == PD_JOB_RUNNING) {
                    res->state = (pd_job_state_t) st[k];
                    told[i] = 1;
                    progress++;
                }
            }
        }
        if (progress == 0)
            break;
    }
    free(told);
    return rc;
}

long pd_fetch(pd_client_t *c, const uint64_t *ids, size_t n, int timeout_ms, pd_result_t *results,
              void (*progress)(size_t ended, size_t total, void *user), void *user)
{
    assert(c && (ids || n == 0) && (results || n == 0));
    if (n == 0)
        return 0;
    s_slot_t *order = malloc(n * sizeof *order);
    uint64_t *pending = malloc(n * sizeof *pending);
    if (!order || !pending) {
        free(order);
        free(pending);
        return pd_client_fail(c, PD_ENOMEM, "out of memory for %zu results", n);
    }
    for (size_t i = 0; i < n; i++) {
        memset(&results[i], 0, sizeof results[i]);
        results[i].id = ids[i];
        results[i].state = PD_JOB_QUEUED;
        order[i] = (s_slot_t){ids[i], i};
    }
    qsort(order, n, sizeof *order, s_slot_cmp);
    int64_t deadline = pd_client_deadline(timeout_ms);
    size_t ended = 0;
    long rc = 0;
    for (;;) {
        size_t np = s_pending(order, n, results, NULL, pending);
        if (np == 0)
            break;
        int left = pd_client_poll_ms(deadline, S_POLL_MS);
        pd_m_results_t a;
        pd_rd_t r;
        uint32_t nres;
        int bad = 0;
        if ((rc = s_fetch_call(c, pending, np, left, 10000, false, &a, &r, &nres, NULL)) != 0)
            break;
        for (uint32_t i = 0; i < nres && !bad; i++)
            ended += s_store(&r, order, n, results, &bad);
        if (bad) {
            rc = pd_client_fail(c, PD_EPROTO, "broker sent a malformed result entry");
            break;
        }
        if (progress && nres)
            progress(ended, n, user);
        if (nres == 0 && pd_client_now_ms() >= deadline)
            break;
    }
    if (rc == 0)
        rc = s_fetch_states(c, order, n, results, pending, &ended);
    free(order);
    free(pending);
    if (rc)
        return rc;
    /* A module that cannot run its function: the broker ended the batch at
       once (docs/broker.md); say it as one error, the worker's words. */
    for (size_t i = 0; i < n; i++) {
        const pd_result_t *r = &results[i];
        if (r->state == PD_JOB_FAILED && (r->code == PD_ECOMPILE || r->code == PD_ENOFUNC))
            return pd_client_fail(c, r->code, "%s", r->error ? r->error : pd_strerror(r->code));
    }
    return (long) ended;
}

long pd_fetch_any(pd_client_t *c, const uint64_t *ids, size_t n, int timeout_ms,
                  pd_result_t *results, size_t max)
{
    assert(c && (ids || n == 0) && (results || max == 0));
    if (n == 0 || max == 0)
        return 0;
    if (max > PD_FETCH_ANY_MAX)
        max = PD_FETCH_ANY_MAX;
    int64_t deadline = pd_client_deadline(timeout_ms);
    for (;;) {
        int left = pd_client_poll_ms(deadline, S_POLL_MS);
        pd_m_results_t a;
        pd_rd_t r;
        uint32_t nres;
        int rc = s_fetch_call(c, ids, n, left, max, false, &a, &r, &nres, NULL);
        if (rc)
            return rc;
        if (nres > max)
            return pd_client_fail(c, PD_EPROTO, "broker sent a malformed 'results' reply");
        for (uint32_t i = 0; i < nres; i++) {
            memset(&results[i], 0, sizeof results[i]);
            if (s_parse_entry(&r, &results[i])) {
                pd_results_clear(results, i + 1);
                return pd_client_fail(c, PD_EPROTO, "broker sent a malformed result entry");
            }
        }
        if (nres > 0 || pd_client_now_ms() >= deadline)
            return (long) nres;
    }
}

void pd_results_clear(pd_result_t *results, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(results[i].value);
        free(results[i].error);
        memset(&results[i], 0, sizeof results[i]);
    }
}

int pd_result_double(const pd_result_t *r, double *x)
{
    if (r->state != PD_JOB_DONE || !r->value)
        return PD_EPROTO;
    pd_rd_t rd;
    pd_rd_init(&rd, r->value, r->len);
    return pd_rd_double(&rd, x) ? PD_EPROTO : 0;
}

