/*  pd_broker: the broker's root object and event loop; see pd_broker.h.

    The loop only dispatches. Each turn it polls the ROUTER socket and the
    journal's (time-out: the next heartbeat tick or parked-fetch deadline),
    sends the replies the journal's settlements released, drains up to a
    batch of messages, hands each to its handler, passes what changed to the
    journal, and then sends queued jobs to workers with credit
    (pd_broker_dispatch) and answers the parked fetches the batch's
    completions touched. Batching is what makes a `done` of 1000 results
    cost one wake-up scan, one round of runs and one journal batch.

    Group commit: the journal writes on its own thread. After each batch of
    messages the loop hands what changed to it (pd_journal_flush) and goes
    on; every reply to a client that depends on something not yet committed
    is copied into an outbox, tagged with the journal batch it waits for,
    and sent when the journal settles that batch (the journal's socket is
    polled beside the ROUTER). Messages to workers (run, mod, welcome, hb,
    reset, cancel) go out at once; jobs are sent below the pop limit, the
    next id the journal has on disk, which it writes a reserve ahead of the
    ids in use: a job may run before its submit is on disk, but after a
    crash its id is never given to another job, so no late result can land
    on the wrong job. When a batch fails, the submits answered in the outbox
    are withdrawn (their jobs stopped) and their `accepted` becomes an
    `error`, so a client is never told a job is accepted unless it is on
    disk. Fetches do not wait: a result is shown as soon as a worker
    reports it, before its commit, since a crash before that commit leaves
    the job queued in the journal and it runs again (pd_broker_client.c).

    Every frame goes through pd_msg_parse; a malformed message is answered
    with `error` and a warning line and changes nothing else.

    Security. On a network endpoint the socket is a CurveZMQ server whose
    handshakes pd_zap checks against the allow-list; every message then
    carries the peer's key and role (ZAP user id and metadata), and the role
    is checked again against the current list before the message is handled,
    so that a worker key cannot submit and a revoked key stops at once. A
    monitor socket reports handshakes that fail (a wrong broker key, a peer
    without CURVE, garbage on the port), logged at a bounded rate.
*/
#include "pd_broker_root.h"
#include "pd_auth.h"
#include "pd_error.h"
#include "pd_bg.h"
#include "pd_log.h"
#include "pd_proto.h"
#include "pd_snapshot.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include <zmq.h>

#define S_BATCH 1024 /* messages drained per loop turn at most */
#define S_MAX_BACKLOG 64 /* journal backlog (pd_journal_backlog) past which the loop waits */
#define S_HWM 100000 /* messages queued per peer at most */
#define S_HANDSHAKE_MS 3000 /* a connection must finish its handshake within this */
#define S_LOG_BURST 20       /* refusal lines per window at most */
#define S_LOG_WINDOW_MS 10000

_Static_assert(PD_BROKER_SYNC_OFF == PD_JOURNAL_SYNC_OFF &&
                   PD_BROKER_SYNC_NORMAL == PD_JOURNAL_SYNC_NORMAL &&
                   PD_BROKER_SYNC_FULL == PD_JOURNAL_SYNC_FULL,
               "pd_broker.h's sync values are pd_journal.h's");

int pd_broker_default_journal(char *out, size_t cap) { return pd_journal_default_path(out, cap); }

void pd_broker_config_defaults(pd_broker_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->bind = PD_BROKER_DEFAULT_BIND;
    cfg->hb_ms = PD_BROKER_DEFAULT_HB_MS;
    cfg->liveness = PD_BROKER_DEFAULT_LIVENESS;
    cfg->max_jobs = 4000000;
    cfg->result_ttl_s = PD_BROKER_DEFAULT_TTL_S;
    cfg->max_shared = PD_SHARED_DEFAULT_MAX;
    cfg->shared_store = PD_SHARED_DEFAULT_TOTAL;
    cfg->max_arg = PD_BROKER_DEFAULT_MAX_ARG;
    cfg->max_batch = PD_BROKER_DEFAULT_MAX_BATCH;
    cfg->max_queued = PD_JOBS_DEFAULT_MAX_ARG_BYTES;
    cfg->cluster = PD_BEACON_DEFAULT_CLUSTER;
    cfg->beacon = true;
    cfg->beacon_port = PD_BEACON_DEFAULT_PORT;
    cfg->beacon_interval_ms = PD_BEACON_DEFAULT_INTERVAL_MS;
    cfg->journal = NULL;
    cfg->journal_sync = PD_JOURNAL_SYNC_FULL;
    cfg->journal_max_bytes = PD_BROKER_DEFAULT_JOURNAL_MAX;
}

/* The TCP port of a bound endpoint "tcp://ADDR:PORT", or 0 when it is not
   TCP or binds loopback only (a beacon would be of no use to anybody). */
static uint16_t s_beacon_port_of(const char *ep)
{
    if (strncmp(ep, "tcp://", 6) != 0)
        return 0;
    const char *host = ep + 6, *colon = strrchr(host, ':');
    if (!colon)
        return 0;
    if (strncmp(host, "127.", 4) == 0 || strncmp(host, "localhost:", 10) == 0 ||
        strncmp(host, "[::1]:", 6) == 0)
        return 0;
    long port = strtol(colon + 1, NULL, 10);
    return port > 0 && port < 65536 ? (uint16_t) port : 0;
}

/* Starts the beacon when asked and useful. Returns 0 or the error of
   pd_beacon_pub_new (logged). */
static int s_start_beacon(pd_broker_t *b)
{
    if (!b->cfg.beacon || b->cfg.beacon_port == 0)
        return 0;
    uint16_t port = s_beacon_port_of(b->endpoint);
    if (!port) {
        pd_log_info("no beacon: %s serves this machine only (bind tcp://*:PORT to serve a lab)",
                    b->endpoint);
        return 0;
    }
    pd_beacon_t bc = {.version = PD_PROTO_VERSION, .port = port};
    snprintf(bc.cluster, sizeof bc.cluster, "%s", b->cluster);
    /* With CurveZMQ the beacon carries the broker's public key: listeners
       connect only when they trust it (docs/security.md). */
    bc.has_key = b->secure && zmq_z85_decode(bc.key, b->key.pub) != NULL;
    int err = 0;
    b->beacon = pd_beacon_pub_new(&bc, b->cfg.beacon_port, b->cfg.beacon_interval_ms,
                                  b->beacon_iface[0] ? b->beacon_iface : NULL, &err);
    if (!b->beacon)
        return err;
    pd_log_info("announcing cluster '%s' (port %u%s) from %s by a beacon on UDP port %d every "
                "%d ms", b->cluster, port, bc.has_key ? ", with the broker's key" : "",
                pd_beacon_pub_host(b->beacon), b->cfg.beacon_port, b->cfg.beacon_interval_ms);
    return 0;
}

bool pd_broker_beaconing(const pd_broker_t *b) { return b->beacon != NULL; }

static int s_fail_new(pd_broker_t **b, int *err, int code)
{
    if (err)
        *err = code;
    pd_broker_destroy(b);
    return code;
}

/* Decides the security of the socket; with CURVE loads the key pair and
   starts the ZAP handler (which must exist before the socket binds). */
static int s_secure_setup(pd_broker_t *b, const pd_broker_config_t *cfg)
{
    pd_sec_mode_t mode = pd_auth_resolve(cfg->security, b->bind);
    bool network = !pd_auth_endpoint_is_loopback(b->bind);
    if (mode == PD_SEC_NONE) {
        if (network)
            pd_log_warn("SECURITY WARNING: listening on %s without authentication or "
                        "encryption (--insecure): anyone who can reach this port can submit "
                        "code that every worker runs, and read every job and result. Use "
                        "this only on a network you trust completely.", b->bind);
        return 0;
    }
    b->secure = true;
    char *dir = cfg->config_dir ? strdup(cfg->config_dir) : pd_auth_config_dir();
    if (!dir && (!cfg->key_file || !cfg->allow_dir)) {
        pd_log_error("cannot find the configuration directory (HOME is not set): give --key "
                     "and --allow, or --config-dir");
        return PD_ENOKEY;
    }
    char key_file[4096];
    snprintf(key_file, sizeof key_file, "%s", cfg->key_file ? cfg->key_file : "");
    if (!cfg->key_file)
        snprintf(key_file, sizeof key_file, "%s/id.key", dir);
    if (cfg->allow_dir)
        snprintf(b->allow_dir, sizeof b->allow_dir, "%s", cfg->allow_dir);
    else
        snprintf(b->allow_dir, sizeof b->allow_dir, "%s/allowed", dir);
    free(dir);
    char why[1024];
    int rc = pd_auth_key_load(key_file, true, &b->key, why, sizeof why);
    if (rc) {
        pd_log_error("%s on %s needs CurveZMQ and thus a key pair: %s. Then admit workers and "
                     "clients with `playdoh-keygen allow KEY --role worker|client|both`%s",
                     network ? "listening" : "--secure", b->bind, why,
                     network ? " (or, on a network you trust completely, run with --insecure)"
                             : "");
        return rc == PD_ENOKEY ? PD_ENOKEY : PD_EAUTH;
    }
    if (pd_auth_make_dir(b->allow_dir, why, sizeof why)) {
        pd_log_error("allow-list: %s", why);
        return PD_ESYS;
    }
    int zerr;
    b->zap = pd_zap_new(b->ctx, b->allow_dir, &zerr);
    if (!b->zap)
        return zerr;
    pd_zap_stats_t st;
    pd_zap_stats(b->zap, &st);
    b->zap_generation = st.generation;
    return 0;
}

/* CurveZMQ server options, and TCP keepalives: without ROUTER_HANDOVER (a
   second connection may not take over a routing id in use, so an admitted
   key cannot steal a worker's jobs) a peer that vanished silently must be
   noticed for its routing id to be free again. Keepalives probe only idle
   connections; ZMTP heartbeats would also cut a connection in the middle
   of a long message (a 64 MiB module on a slow link). */
static int s_secure_socket(pd_broker_t *b)
{
    int on = 1, idle = 30, intvl = 5, cnt = 3;
    if (pd_auth_apply_server(b->sock, &b->key) ||
        zmq_setsockopt(b->sock, ZMQ_TCP_KEEPALIVE, &on, sizeof on) ||
        zmq_setsockopt(b->sock, ZMQ_TCP_KEEPALIVE_IDLE, &idle, sizeof idle) ||
        zmq_setsockopt(b->sock, ZMQ_TCP_KEEPALIVE_INTVL, &intvl, sizeof intvl) ||
        zmq_setsockopt(b->sock, ZMQ_TCP_KEEPALIVE_CNT, &cnt, sizeof cnt))
        return PD_ESYS;
    return 0;
}

/* Opens the journal named by the configuration and recovers what it holds
   into the tables. Returns 0 or a PD_E* code (logged). */
static int s_open_journal(pd_broker_t *b)
{
    pd_journal_config_t jc = {.path = b->cfg.journal,
                              .sync = (pd_journal_sync_t) b->cfg.journal_sync,
                              .max_bytes = b->cfg.journal_max_bytes,
                              .reset = b->cfg.journal_reset};
    pd_journal_recovery_t rec;
    char why[1024];
    int jerr;
    b->journal = pd_journal_open(&jc, b->jobs, b->mods, b->shared, &rec, why, sizeof why,
                                 &jerr);
    if (!b->journal) {
        pd_log_error("%s", why);
        return jerr;
    }
    if (rec.moved[0])
        pd_log_warn("journal %s: the old journal was moved aside to %s (--journal-reset)",
                    b->cfg.journal, rec.moved);
    pd_jobs_set_pop_limit(b->jobs, pd_jobs_next_id(b->jobs));
    pd_tasks_set_next_id(b->tasks, rec.next_task);
    pd_log_info("journal %s: recovered %llu queued jobs, %llu results, %u modules, %u "
                "shared data and %u submit tokens in %lld ms; next job id %llu; %.1f MiB "
                "on disk", b->cfg.journal, (unsigned long long) rec.queued,
                (unsigned long long) rec.results, rec.mods, rec.shared, rec.tokens,
                (long long) rec.ms, (unsigned long long) rec.next_id,
                rec.bytes / 1048576.0);
    return 0;
}

/* Makes the ROUTER socket, its monitor, and binds it. Returns 0 or a PD_E*
   code (logged). */
static int s_open_socket(pd_broker_t *b)
{
    b->sock = zmq_socket(b->ctx, ZMQ_ROUTER);
    int one = 1, zero = 0, hwm = S_HWM, handshake = S_HANDSHAKE_MS;
    int handover = b->secure ? 0 : 1;
    int64_t maxmsg = PD_MAX_FRAME;
    if (!b->sock || zmq_setsockopt(b->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one) ||
        zmq_setsockopt(b->sock, ZMQ_ROUTER_HANDOVER, &handover, sizeof handover) ||
        zmq_setsockopt(b->sock, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(b->sock, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(b->sock, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_setsockopt(b->sock, ZMQ_HANDSHAKE_IVL, &handshake, sizeof handshake) ||
        zmq_setsockopt(b->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) ||
        (b->secure && s_secure_socket(b))) {
        pd_log_error("cannot create the broker's socket: %s", zmq_strerror(zmq_errno()));
        return PD_ESYS;
    }
    char mon[64];
    snprintf(mon, sizeof mon, "inproc://pd-broker-monitor-%p", (void *) b);
    b->mon = zmq_socket(b->ctx, ZMQ_PAIR);
    if (!b->mon ||
        zmq_socket_monitor(b->sock, mon, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                             ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                             ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_ACCEPT_FAILED) ||
        zmq_connect(b->mon, mon) || zmq_setsockopt(b->mon, ZMQ_LINGER, &zero, sizeof zero)) {
        pd_log_error("cannot monitor the broker's socket: %s", zmq_strerror(zmq_errno()));
        return PD_ESYS;
    }
    if (zmq_bind(b->sock, b->bind) != 0) {
        int e = zmq_errno();
        if (e == EINVAL || e == EPROTONOSUPPORT || e == ENODEV)
            pd_log_error("cannot bind %s: %s (an endpoint looks like tcp://127.0.0.1:5555, "
                         "tcp://*:5555 or tcp://127.0.0.1:*)", b->bind, zmq_strerror(e));
        else
            pd_log_error("cannot bind %s: %s (choose another --bind endpoint, or stop the "
                         "program that uses it)", b->bind, zmq_strerror(e));
        return PD_EIO;
    }
    size_t len = sizeof b->endpoint;
    if (zmq_getsockopt(b->sock, ZMQ_LAST_ENDPOINT, b->endpoint, &len) != 0)
        snprintf(b->endpoint, sizeof b->endpoint, "%s", b->bind);
    return 0;
}

/* Puts the size limits of cfg (0: not given) within their bounds. */
static void s_settle_limits(pd_broker_config_t *cfg)
{
    if (!cfg->max_arg || cfg->max_arg > PD_BROKER_LIMIT_MAX_ARG)
        cfg->max_arg = cfg->max_arg ? PD_BROKER_LIMIT_MAX_ARG : PD_BROKER_DEFAULT_MAX_ARG;
    if (!cfg->max_batch)
        cfg->max_batch = PD_BROKER_DEFAULT_MAX_BATCH;
    if (!cfg->max_shared)
        cfg->max_shared = PD_SHARED_DEFAULT_MAX;
    if (cfg->max_shared > PD_SHARED_LIMIT)
        cfg->max_shared = PD_SHARED_LIMIT;
    if (cfg->shared_store < cfg->max_shared)
        cfg->shared_store = cfg->max_shared > PD_SHARED_DEFAULT_TOTAL ? cfg->max_shared
                                                                      : PD_SHARED_DEFAULT_TOTAL;
}

pd_broker_t *pd_broker_new(const pd_broker_config_t *cfg, int *err)
{
    assert(cfg);
    pd_broker_t *b = calloc(1, sizeof *b);
    if (!b) {
        if (err)
            *err = PD_ENOMEM;
        return NULL;
    }
    b->cfg = *cfg;
    snprintf(b->bind, sizeof b->bind, "%s", cfg->bind ? cfg->bind : PD_BROKER_DEFAULT_BIND);
    if (cfg->name && cfg->name[0])
        snprintf(b->name, sizeof b->name, "%s", cfg->name);
    else if (gethostname(b->name, sizeof b->name - 1) != 0)
        snprintf(b->name, sizeof b->name, "playdoh");
    const char *cluster = cfg->cluster && cfg->cluster[0] ? cfg->cluster
                                                          : PD_BEACON_DEFAULT_CLUSTER;
    if (!pd_beacon_name_ok(cluster)) {
        pd_log_error("cluster name '%s' is not 1 to 63 letters, digits, '-', '_' or '.'",
                     cluster);
        free(b);
        if (err)
            *err = PD_EINVAL;
        return NULL;
    }
    snprintf(b->cluster, sizeof b->cluster, "%s", cluster);
    snprintf(b->beacon_iface, sizeof b->beacon_iface, "%s",
             cfg->beacon_iface ? cfg->beacon_iface : "");
    b->cfg.bind = b->bind;
    b->cfg.name = b->name;
    b->cfg.cluster = b->cluster;
    b->cfg.beacon_iface = b->beacon_iface;
    if (cfg->journal) {
        if (strlen(cfg->journal) >= sizeof b->journal_path) {
            pd_log_error("the journal path is too long");
            s_fail_new(&b, err, PD_EINVAL);
            return NULL;
        }
        snprintf(b->journal_path, sizeof b->journal_path, "%s", cfg->journal);
        b->cfg.journal = b->journal_path;
    }
    if (!b->cfg.hb_ms)
        b->cfg.hb_ms = PD_BROKER_DEFAULT_HB_MS;
    if (!b->cfg.liveness)
        b->cfg.liveness = PD_BROKER_DEFAULT_LIVENESS;
    atomic_init(&b->stop, false);
    pd_buf_init(&b->out);
    pd_buf_init(&b->aux);
    s_settle_limits(&b->cfg);
    b->jobs = pd_jobs_new(cfg->max_jobs);
    if (b->jobs)
        pd_jobs_set_max_arg_bytes(b->jobs, b->cfg.max_queued);
    b->mods = pd_mods_new();
    b->probes = pd_probes_new();
    b->shared = pd_shared_new(b->cfg.max_shared, b->cfg.shared_store);
    b->workers = pd_reg_new();
    b->tasks = pd_tasks_new(0);
    b->outbox = pd_outbox_new();
    b->sched = pd_sched_new();
    b->park = pd_park_new(PD_BROKER_MAX_PARKED);
    b->ctx = zmq_ctx_new();
    b->bg = pd_bg_new();
    if (!b->jobs || !b->mods || !b->probes || !b->shared || !b->workers || !b->tasks
        || !b->outbox || !b->sched || !b->park || !b->ctx || !b->bg) {
        pd_log_error("cannot start the broker: out of memory");
        s_fail_new(&b, err, PD_ENOMEM);
        return NULL;
    }
    atomic_init(&b->reload, false);
    int rc = s_secure_setup(b, cfg);
    if (rc) {
        s_fail_new(&b, err, rc);
        return NULL;
    }
    if (b->cfg.journal && (rc = s_open_journal(b)) != 0) {
        s_fail_new(&b, err, rc);
        return NULL;
    }
    if ((rc = s_open_socket(b)) != 0) {
        s_fail_new(&b, err, rc);
        return NULL;
    }
    int brc = s_start_beacon(b);
    if (brc) {
        s_fail_new(&b, err, brc);
        return NULL;
    }
    b->start_ms = b->now_ms = zclock_mono();
    b->next_tick = b->now_ms;
    if (err)
        *err = 0;
    return b;
}

void pd_broker_destroy(pd_broker_t **p)
{
    if (!p || !*p)
        return;
    pd_broker_t *b = *p;
    pd_beacon_pub_destroy(&b->beacon);
    pd_bg_destroy(&b->bg); /* uploads in flight end (and free themselves) first */
    pd_park_destroy(&b->park);
    pd_tasks_destroy(&b->tasks);
    pd_outbox_destroy(&b->outbox);
    pd_sched_destroy(&b->sched);
    pd_journal_destroy(&b->journal); /* before the table: it removes its hooks */
    pd_reg_destroy(&b->workers);
    pd_jobs_destroy(&b->jobs);
    pd_mods_destroy(&b->mods);
    pd_probes_destroy(&b->probes);
    pd_shared_destroy(&b->shared);
    pd_buf_free(&b->out);
    pd_buf_free(&b->aux);
    if (b->mon)
        zmq_close(b->mon);
    if (b->sock)
        zmq_close(b->sock);
    /* The ZAP handler's socket lives in ctx: stop it before terminating. */
    pd_zap_destroy(&b->zap);
    if (b->ctx)
        zmq_ctx_term(b->ctx);
    sodium_memzero(b->key.sec, sizeof b->key.sec);
    free(b);
    *p = NULL;
}

int pd_broker_bind_also(pd_broker_t *b, const char *endpoint)
{
    if (zmq_bind(b->sock, endpoint) != 0) {
        pd_log_error("cannot bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        return PD_EIO;
    }
    return 0;
}

void *pd_broker_zmq_ctx(pd_broker_t *b) { return b->ctx; }

const char *pd_broker_endpoint(const pd_broker_t *b) { return b->endpoint; }

int pd_broker_forget_all(pd_broker_t *b)
{
    pd_bg_finish(b->bg); /* uploads in flight end into the store about to go */
    pd_park_clear(b->park);
    pd_tasks_destroy(&b->tasks);
    pd_reg_destroy(&b->workers);
    pd_jobs_destroy(&b->jobs);
    pd_mods_destroy(&b->mods);
    pd_probes_destroy(&b->probes);
    pd_shared_destroy(&b->shared);
    b->tasks = pd_tasks_new(0);
    b->workers = pd_reg_new();
    b->jobs = pd_jobs_new(b->cfg.max_jobs);
    if (b->jobs)
        pd_jobs_set_max_arg_bytes(b->jobs, b->cfg.max_queued);
    b->mods = pd_mods_new();
    b->probes = pd_probes_new();
    b->shared = pd_shared_new(b->cfg.max_shared, b->cfg.shared_store);
    memset(&b->stats, 0, sizeof b->stats);
    return b->tasks && b->workers && b->jobs && b->mods && b->probes && b->shared ? 0
                                                                                   : PD_ENOMEM;
}
void pd_broker_stop(pd_broker_t *b) { atomic_store(&b->stop, true); }
void pd_broker_reload(pd_broker_t *b) { atomic_store(&b->reload, true); }

bool pd_broker_secure(const pd_broker_t *b, char *key)
{
    if (b->secure && key)
        memcpy(key, b->key.pub, PD_KEY_TXT);
    return b->secure;
}
void pd_broker_stats(const pd_broker_t *b, pd_broker_stats_t *out) { *out = b->stats; }
uint32_t pd_broker_now_s(const pd_broker_t *b) { return (uint32_t) ((b->now_ms - b->start_ms) / 1000); }
uint32_t pd_broker_wall_s(void) { return (uint32_t) time(NULL); }

/* ---- the parts, for the handlers (pd_broker_int.h) -------------------- */

pd_jobs_t *pd_broker_jobs(const pd_broker_t *b) { return b->jobs; }
pd_journal_t *pd_broker_journal(const pd_broker_t *b) { return b->journal; }
pd_mods_t *pd_broker_mods(const pd_broker_t *b) { return b->mods; }
pd_probes_t *pd_broker_probes(const pd_broker_t *b) { return b->probes; }
pd_shared_t *pd_broker_shared(const pd_broker_t *b) { return b->shared; }
pd_reg_t *pd_broker_workers(const pd_broker_t *b) { return b->workers; }
pd_tasks_t *pd_broker_tasks(const pd_broker_t *b) { return b->tasks; }
pd_sched_t *pd_broker_sched(const pd_broker_t *b) { return b->sched; }
pd_park_t *pd_broker_park(const pd_broker_t *b) { return b->park; }
pd_outbox_t *pd_broker_outbox(const pd_broker_t *b) { return b->outbox; }
pd_bg_t *pd_broker_bg(const pd_broker_t *b) { return b->bg; }
pd_zap_t *pd_broker_zap(const pd_broker_t *b) { return b->zap; }
pd_buf_t *pd_broker_out(pd_broker_t *b) { return &b->out; }
pd_buf_t *pd_broker_aux(pd_broker_t *b) { return &b->aux; }
int64_t pd_broker_now_ms(const pd_broker_t *b) { return b->now_ms; }
const pd_broker_config_t *pd_broker_cfg(const pd_broker_t *b) { return &b->cfg; }
pd_broker_stats_t *pd_broker_counters(pd_broker_t *b) { return &b->stats; }
const char *pd_broker_name(const pd_broker_t *b) { return b->name; }
const char *pd_broker_cluster(const pd_broker_t *b) { return b->cluster; }
pd_log_limit_t *pd_broker_limits_log(pd_broker_t *b) { return &b->limits_log; }
pd_task_scan_t *pd_broker_task_scan(pd_broker_t *b) { return &b->task_scan; }
pd_uploads_t *pd_broker_uploads(pd_broker_t *b) { return &b->uploads; }

/* ---- sending ----------------------------------------------------------- */

static void s_hexid(const void *rid, size_t len, char *out, size_t cap)
{
    const uint8_t *p = rid;
    size_t k = 0;
    for (size_t i = 0; i < len && k + 3 < cap; i++) {
        if (p[i] >= 0x21 && p[i] < 0x7f)
            out[k++] = (char) p[i];
        else
            k += (size_t) snprintf(out + k, cap - k, "%02x", p[i]);
    }
    out[k < cap ? k : cap - 1] = 0;
}

int pd_broker_send(pd_broker_t *b, const void *rid, size_t ridlen, const void *data, size_t len)
{
    if (zmq_send(b->sock, rid, ridlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(b->sock, data, len, ZMQ_DONTWAIT) < 0) {
        int e = zmq_errno();
        char who[128];
        s_hexid(rid, ridlen, who, sizeof who);
        b->stats.unroutable++;
        pd_log_limited(&b->noise, S_LOG_BURST, S_LOG_WINDOW_MS, PD_LOG_WARN,
                       "could not send to %s: %s (%llu unroutable so far)", who,
                       e == EHOSTUNREACH ? "peer is gone" : e == EAGAIN ? "its queue is full"
                                                                        : zmq_strerror(e),
                       (unsigned long long) b->stats.unroutable);
        return e == EAGAIN ? PD_EOVERLOAD : PD_EUNREACH;
    }
    b->stats.msgs_out++;
    b->stats.bytes_out += len;
    return 0;
}

int pd_broker_send2(pd_broker_t *b, const void *rid, size_t ridlen, const void *head, size_t hlen,
                    const void *data, size_t dlen)
{
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, hlen + dlen)) {
        pd_log_error("cannot build a message of %zu bytes: out of memory", hlen + dlen);
        return PD_ENOMEM;
    }
    memcpy(zmq_msg_data(&msg), head, hlen);
    memcpy((uint8_t *) zmq_msg_data(&msg) + hlen, data, dlen);
    if (zmq_send(b->sock, rid, ridlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_msg_send(&msg, b->sock, ZMQ_DONTWAIT) < 0) {
        int e = zmq_errno();
        zmq_msg_close(&msg);
        char who[128];
        s_hexid(rid, ridlen, who, sizeof who);
        b->stats.unroutable++;
        pd_log_limited(&b->noise, S_LOG_BURST, S_LOG_WINDOW_MS, PD_LOG_WARN,
                       "could not send to %s: %s (%llu unroutable so far)", who,
                       e == EHOSTUNREACH ? "peer is gone" : e == EAGAIN ? "its queue is full"
                                                                        : zmq_strerror(e),
                       (unsigned long long) b->stats.unroutable);
        return e == EAGAIN ? PD_EOVERLOAD : PD_EUNREACH;
    }
    b->stats.msgs_out++;
    b->stats.bytes_out += hlen + dlen;
    return 0;
}

int pd_broker_tell(pd_broker_t *b, pd_wrec_t *wk)
{
    int rc = !wk           ? PD_EUNREACH
             : b->aux.failed ? PD_ENOMEM
                             : pd_broker_send(b, wk->rid, wk->ridlen, b->aux.data, b->aux.len);
    pd_buf_reset(&b->aux);
    if (rc == 0)
        wk->last_send = b->now_ms;
    return rc;
}

int pd_broker_send_out(pd_broker_t *b, const void *rid, size_t ridlen)
{
    int rc;
    uint64_t seq = b->journal ? pd_journal_tag(b->journal) : 0;
    pd_outbox_sent_now(b->outbox);
    if (b->out.failed) {
        pd_log_error("a reply could not be built (out of memory or over the frame limit)");
        rc = PD_ENOMEM;
    } else if (seq) {
        rc = pd_outbox_hold(b->outbox, seq, rid, ridlen, b->out.data, b->out.len);
        if (!rc)
            b->stats.held++;
        else {
            /* No memory to hold it: wait for the journal, then send. The
               reply leaves b->out first (the wait may answer parked
               fetches, which build in b->out). */
            size_t len;
            uint8_t *data = pd_buf_steal(&b->out, &len);
            uint8_t idcopy[256];
            size_t idlen = ridlen < sizeof idcopy ? ridlen : sizeof idcopy;
            memcpy(idcopy, rid, idlen);
            pd_broker_sync(b);
            rc = data ? pd_broker_send(b, idcopy, idlen, data, len) : PD_ENOMEM;
            free(data);
        }
    } else {
        rc = pd_broker_send(b, rid, ridlen, b->out.data, b->out.len);
    }
    pd_buf_reset(&b->out);
    return rc;
}

int pd_broker_send_now(pd_broker_t *b, const void *rid, size_t ridlen)
{
    int rc;
    pd_outbox_sent_now(b->outbox);
    if (b->out.failed) {
        pd_log_error("a reply could not be built (out of memory or over the frame limit)");
        rc = PD_ENOMEM;
    } else {
        rc = pd_broker_send(b, rid, ridlen, b->out.data, b->out.len);
    }
    pd_buf_reset(&b->out);
    return rc;
}

void pd_broker_hold_submit(pd_broker_t *b, uint64_t req, uint64_t first, uint32_t n,
                           const void *token, size_t tokenlen)
{
    pd_outbox_mark_submit(b->outbox, req, first, n, token, tokenlen);
}

bool pd_broker_submit_held(const pd_broker_t *b, uint64_t first)
{
    return pd_outbox_submit_held(b->outbox, first);
}

/* A batch failed: the held submits are not on disk and will not be (the
   journal now refuses writes until it rewrites itself). Their jobs leave
   the table (those a worker had already started are stopped) and their
   replies become errors. */
static void s_refuse_submit(void *user, const pd_outbox_submit_t *h, pd_buf_t *reply)
{
    pd_broker_t *b = user;
    pd_broker_cancel_range(b, h->first, h->n);
    pd_jobs_withdraw(b->jobs, h->first, h->n);
    if (h->tokenlen)
        pd_jobs_token_drop(b->jobs, h->token, h->tokenlen);
    char msg[900];
    snprintf(msg, sizeof msg, "the broker could not write its journal %s (%s): this submit "
             "of %u jobs was not accepted, and new jobs are refused until the journal can "
             "be written (free disk space; the broker retries by itself); jobs accepted "
             "before go on and their results can be fetched",
             pd_journal_path(b->journal), pd_journal_error(b->journal), h->n);
    pd_buf_reset(reply);
    msgpack_packer pk;
    pd_packer_init(&pk, reply);
    pd_m_error_t e = {.req = h->req, .has_req = true, .msg = pd_str_of(msg)};
    snprintf(e.code, sizeof e.code, "%s", pd_err_name(PD_EIO));
    pd_m_error_encode(&pk, &e);
    b->stats.refused_journal++;
}

static void s_send_held(void *user, const void *rid, size_t ridlen, const void *data, size_t len)
{
    pd_broker_send(user, rid, ridlen, data, len);
}

static void s_wake_held(void *user, const uint64_t *ids, size_t n)
{
    pd_broker_wake_ids(user, ids, n);
}

/* One settlement from the journal: release (or refuse) what waited for it,
   and let the jobs now on disk go to workers. */
static void s_on_settled(void *user, const pd_journal_done_t *done)
{
    pd_broker_t *b = user;
    if (!done->ok) {
        uint32_t refused = pd_outbox_refuse(b->outbox, s_refuse_submit, b, &b->aux);
        if (refused)
            pd_log_warn("refused %u submits whose jobs could not be journalled", refused);
        pd_jobs_set_pop_limit(b->jobs, pd_jobs_next_id(b->jobs)); /* the rest is on disk */
    } else {
        pd_jobs_set_pop_limit(b->jobs, done->next_id);
    }
    pd_outbox_flush(b->outbox, done->seq, s_send_held, b);
    /* Results of the settled batches may be shown now (after a failure as
       well: the broker serves what it has). */
    pd_outbox_wake(b->outbox, done->seq, s_wake_held, b);
}

static void s_settle_all(pd_broker_t *b)
{
    pd_journal_done_t done;
    while (b->journal && pd_journal_settle(b->journal, &done))
        s_on_settled(b, &done);
}

void pd_broker_sync(pd_broker_t *b)
{
    if (!b->journal)
        return;
    pd_jobs_seal(b->jobs);
    pd_journal_wait(b->journal, s_on_settled, b);
}

/* Answers `error {req, code, msg}`; req only when the request had one. */
static void s_send_error(pd_broker_t *b, const pd_origin_t *o, bool has_req, int code,
                         const char *msg)
{
    char who[128];
    s_hexid(o->rid, o->ridlen, who, sizeof who);
    pd_log_limited(&b->refusals, S_LOG_BURST, S_LOG_WINDOW_MS, PD_LOG_WARN,
                   "refused a message from %s%s%s: %s: %s", who, o->key ? " key " : "",
                   o->key ? o->key : "", pd_err_name(code), msg);
    b->stats.malformed++;
    pd_buf_reset(&b->out);
    msgpack_packer pk;
    pd_packer_init(&pk, &b->out);
    pd_m_error_t e = {.req = o->req, .has_req = has_req, .msg = pd_str_of(msg)};
    snprintf(e.code, sizeof e.code, "%s", pd_err_name(code));
    pd_m_error_encode(&pk, &e);
    pd_broker_send_out(b, o->rid, o->ridlen);
}

void pd_broker_send_error(pd_broker_t *b, const pd_origin_t *o, int code, const char *msg)
{
    s_send_error(b, o, true, code, msg);
}

/* ---- dispatching one message ------------------------------------------ */

typedef int(s_handler_fn)(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o);

static const struct {
    const char *type;
    s_handler_fn *fn;
} s_client_handlers[] = {
    {"hello", pd_broker_on_hello},     {"mod_has", pd_broker_on_mod_has},
    {"mod_put", pd_broker_on_mod_put}, {"submit", pd_broker_on_submit},
    {"shr_has", pd_broker_on_shr_has}, {"shr_put", pd_broker_on_shr_put},
    {"status", pd_broker_on_status},   {"fetch", pd_broker_on_fetch},
    {"cancel", pd_broker_on_cancel},   {"release", pd_broker_on_release},
    {"cluster", pd_broker_on_cluster},
    {"gc", pd_broker_on_gc},
    {"task_submit", pd_broker_on_task_submit}, {"task_status", pd_broker_on_task_status},
    {"task_fetch", pd_broker_on_task_fetch},   {"task_cancel", pd_broker_on_task_cancel},
    {"task_release", pd_broker_on_task_release}, {"task_progress", pd_broker_on_task_progress},
    {"task_stop", pd_broker_on_task_stop},
};

/* Refuses a message whose type the peer's key may not send. Returns true
   when it was refused (and answered). */
static bool s_refuse_role(pd_broker_t *b, pd_msg_t *m, pd_origin_t *o, pd_role_t need,
                          bool has_req)
{
    if (pd_role_allows(o->role, need))
        return false;
    b->stats.refused_role++;
    if (o->role == PD_ROLE_NONE)
        snprintf(o->why, sizeof o->why, "'%s' refused: key %s is no longer on the broker's "
                 "allow-list", m->type, o->key ? o->key : "?");
    else
        snprintf(o->why, sizeof o->why, "'%s' refused: key %s may act as %s only, not as %s "
                 "(on the broker: `playdoh-keygen allow '%s' --role both`)", m->type,
                 o->key ? o->key : "?", pd_role_name(o->role), pd_role_name(need),
                 o->key ? o->key : "KEY");
    s_send_error(b, o, has_req, PD_EREFUSED, o->why);
    return true;
}

/* Who the sender is as an owner: its key with CurveZMQ (a token it sends
   then is ignored: the key decides), else the id of the `owner` token that
   clients without keys send with every request as `owner_token`
   (docs/security.md), else
   nobody (""). Returns 0, or PD_EPROTO / PD_EINVAL for a malformed token
   with the sentence in o->why. */
static int s_owner(pd_msg_t *m, pd_origin_t *o)
{
    const void *tok;
    uint32_t len;
    o->owner[0] = 0;
    if (o->key) {
        snprintf(o->owner, sizeof o->owner, "%s", o->key);
        return 0;
    }
    if (!pd_msg_has(m, "owner_token"))
        return 0;
    int rc = pd_msg_bytes(m, "owner_token", &tok, &len);
    if (rc) {
        snprintf(o->why, sizeof o->why, "%s", m->why);
        return rc;
    }
    if (len == 0 || len > 64) {
        snprintf(o->why, sizeof o->why, "'%s': 'owner_token' has %u bytes; an owner token "
                 "has 1 to 64 (the client library sends %u)", m->type, len, PD_OWNER_TOKEN_LEN);
        return PD_EINVAL;
    }
    pd_auth_owner_of_token(tok, len, o->owner);
    return 0;
}

void pd_broker_on_frame(pd_broker_t *b, const uint8_t *rid, size_t ridlen, const char *key,
                        pd_role_t role, const uint8_t *data, size_t len)
{
    pd_msg_t m;
    pd_origin_t o = {.rid = rid, .ridlen = ridlen, .key = key, .role = role};
    b->stats.msgs_in++;
    b->stats.bytes_in += len;
    int rc = pd_msg_parse(&m, data, len);
    snprintf(o.why, sizeof o.why, "%s", m.why);
    /* Whatever was indexed before a failure may still carry the request number. */
    bool has_req = pd_msg_has(&m, "req") && pd_msg_uint(&m, "req", &o.req) == 0;
    if (rc) {
        s_send_error(b, &o, has_req, rc, o.why);
        return;
    }
    if (pd_broker_is_worker_type(&m)) {
        if (s_refuse_role(b, &m, &o, PD_ROLE_WORKER, false))
            return;
        rc = pd_broker_on_worker(b, &m, &o);
        if (rc)
            s_send_error(b, &o, false, rc, o.why);
        return;
    }
    for (size_t i = 0; i < sizeof s_client_handlers / sizeof s_client_handlers[0]; i++) {
        if (!pd_msg_is(&m, s_client_handlers[i].type))
            continue;
        if (s_refuse_role(b, &m, &o, PD_ROLE_CLIENT, has_req))
            return;
        if (!has_req) {
            snprintf(o.why, sizeof o.why, "request '%s' has no 'req' number (a non-negative "
                     "integer the reply echoes)", m.type);
            s_send_error(b, &o, false, PD_EPROTO, o.why);
            return;
        }
        if ((rc = s_owner(&m, &o)) != 0) {
            s_send_error(b, &o, true, rc, o.why);
            return;
        }
        rc = s_client_handlers[i].fn(b, &m, &o);
        if (rc)
            s_send_error(b, &o, true, rc, o.why);
        return;
    }
    snprintf(o.why, sizeof o.why, "unknown message type '%s' (see docs/protocol.md)", m.type);
    s_send_error(b, &o, has_req, PD_ETYPE, o.why);
}

/* Reads one [routing id][payload] message. Returns 1 when one was handled
   or dropped, 0 when none is waiting, or PD_ESYS. */
static int s_recv_one(pd_broker_t *b)
{
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    if (zmq_msg_recv(&id, b->sock, ZMQ_DONTWAIT) < 0) {
        int e = zmq_errno();
        zmq_msg_close(&id);
        if (e == EAGAIN || e == EINTR)
            return 0;
        pd_log_error("receive failed: %s", zmq_strerror(e));
        return PD_ESYS;
    }
    int parts = 1;
    bool more = zmq_msg_more(&id);
    zmq_msg_init(&body);
    while (more) {
        zmq_msg_t extra;
        zmq_msg_t *dst = parts == 1 ? &body : &extra;
        if (parts > 1)
            zmq_msg_init(&extra);
        if (zmq_msg_recv(dst, b->sock, 0) < 0) {
            if (parts > 1)
                zmq_msg_close(&extra);
            break;
        }
        more = zmq_msg_more(dst);
        if (parts > 1)
            zmq_msg_close(&extra);
        parts++;
    }
    if (parts != 2) {
        char who[128];
        s_hexid(zmq_msg_data(&id), zmq_msg_size(&id), who, sizeof who);
        b->stats.dropped++;
        pd_log_limited(&b->noise, S_LOG_BURST, S_LOG_WINDOW_MS, PD_LOG_WARN,
                       "dropped a message from %s with %d frames (a message is one frame)", who,
                       parts - 1);
    } else {
        const char *key = NULL;
        pd_role_t role = pd_auth_msg_peer(&body, &key, NULL);
        /* The handshake's role may be stale: the list decides now. Every
           tcp or ipc connection of a CurveZMQ socket went through the ZAP
           handler and has a key; one without is an inproc peer, inside
           this process (the embedded worker). */
        if (b->zap && key)
            role = pd_zap_role(b->zap, key);
        pd_broker_on_frame(b, zmq_msg_data(&id), zmq_msg_size(&id), key, role,
                           zmq_msg_data(&body), zmq_msg_size(&body));
    }
    zmq_msg_close(&body);
    zmq_msg_close(&id);
    return 1;
}

/* ---- security events ---------------------------------------------------- */

/* Logs the handshake failures the monitor reports. */
static void s_on_monitor(pd_broker_t *b)
{
    for (int i = 0; i < S_BATCH; i++) {
        uint16_t event;
        uint32_t value;
        if (!pd_auth_monitor_next(b->mon, &event, &value))
            return;
        if (event == ZMQ_EVENT_DISCONNECTED) {
            /* Peers leave all the time; ZeroMQ also cuts a connection for a
               protocol error or a frame over the size limit, before any of
               it reaches the broker. */
            pd_log_debug("a connection to %s closed: the peer left, or ZeroMQ cut it (protocol "
                         "error, or a frame over %u bytes)", b->endpoint, PD_MAX_FRAME);
            continue;
        }
        if (event == ZMQ_EVENT_ACCEPT_FAILED) {
            pd_log_limited(&b->handshakes, S_LOG_BURST, S_LOG_WINDOW_MS, PD_LOG_WARN,
                           "cannot accept a connection on %s: %s (too many open connections?)",
                           b->endpoint, strerror((int) value));
            continue;
        }
        b->stats.handshakes_failed++;
        /* A refused key was logged by the ZAP handler, with its address. */
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            continue;
        pd_log_limited(&b->handshakes, S_LOG_BURST, S_LOG_WINDOW_MS, PD_LOG_WARN,
                       "refused a connection to %s during its handshake: %s", b->endpoint,
                       pd_auth_handshake_why(event, value, true));
    }
}

/* Reads the allow-list again when asked (SIGHUP) or when it changed, and
   forgets workers whose key may no longer work. */
static void s_check_allow_list(pd_broker_t *b)
{
    if (!b->zap)
        return;
    if (atomic_exchange(&b->reload, false))
        pd_zap_reload(b->zap);
    else
        pd_zap_check(b->zap);
    pd_zap_stats_t st;
    pd_zap_stats(b->zap, &st);
    if (st.generation == b->zap_generation)
        return;
    b->zap_generation = st.generation;
    pd_broker_revoke_workers(b);
}

/* Hands the heap's free memory back to the system once S_TRIM_BYTES of
   arguments were freed since the last time (a large batch finished):
   glibc keeps freed blocks below its mmap threshold, which grows with the
   blocks freed, so without this a broker that once held a large batch
   keeps its size. */
#define S_TRIM_BYTES (16u << 20)
static void s_give_memory_back(pd_broker_t *b)
{
    uint64_t freed = pd_jobs_arg_freed(b->jobs);
    if (freed - b->arg_trimmed < S_TRIM_BYTES)
        return;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    b->arg_trimmed = freed;
}

/* ---- the loop ---------------------------------------------------------- */

/* Says where the broker listens and how, at the start of the loop. */
static void s_say_listening(pd_broker_t *b)
{
    pd_log_info("broker '%s' of cluster '%s' listening on %s %s%s%s (heartbeat %u ms, liveness "
                "%u, max %llu jobs, %s%s)", b->name, b->cluster, b->endpoint,
                b->secure ? "with CurveZMQ (broker key " : "without security",
                b->secure ? b->key.pub : "", b->secure ? ")" : "", b->cfg.hb_ms,
                b->cfg.liveness, (unsigned long long) pd_jobs_max(b->jobs),
                b->journal ? "journal " : "no journal: jobs live in memory only",
                b->journal ? pd_journal_path(b->journal) : "");
    if (b->secure)
        pd_log_info("allow-list %s", b->allow_dir);
}

/* The heartbeat tick: the allow-list, silent workers, results past their
   time-to-live, the journal's own timers, memory, rate-limited log lines. */
static void s_tick(pd_broker_t *b, int64_t tick_ms)
{
    s_check_allow_list(b);
    pd_broker_tick_workers(b);
    uint64_t gone = pd_jobs_expire(b->jobs, pd_broker_wall_s(), b->cfg.result_ttl_s);
    gone += pd_tasks_expire(b->tasks, pd_broker_now_s(b), b->cfg.result_ttl_s);
    if (gone)
        pd_log_debug("forgot %llu results past their time-to-live",
                     (unsigned long long) gone);
    pd_broker_dispatch(b); /* requeued jobs of lost workers */
    pd_broker_wake_parked(b);
    pd_jobs_seal(b->jobs);
    if (b->journal) {
        pd_journal_tick(b->journal, pd_broker_wall_s(), b->now_ms);
        pd_journal_flush(b->journal);
    }
    s_give_memory_back(b);
    if (b->snap)
        pd_snapshot_publish(b->snap, b, b->now_ms);
    pd_log_limit_flush(&b->refusals, S_LOG_WINDOW_MS, PD_LOG_WARN,
                       "refused a message (malformed, or not allowed for its key)");
    pd_log_limit_flush(&b->handshakes, S_LOG_WINDOW_MS, PD_LOG_WARN,
                       "refused a connection during its handshake");
    pd_log_limit_flush(&b->noise, S_LOG_WINDOW_MS, PD_LOG_WARN,
                       "could not send to a peer, or dropped a message of several frames");
    b->next_tick = b->now_ms + tick_ms;
}

/* Says what the broker did, as it stops. */
static void s_say_stopping(pd_broker_t *b)
{
    pd_log_info("broker stopping: %llu messages in, %llu out, %llu refused (%llu for their "
                "key's role), %llu dropped, %llu unroutable, %llu stale results, %llu workers "
                "lost, %llu failed handshakes",
                (unsigned long long) b->stats.msgs_in, (unsigned long long) b->stats.msgs_out,
                (unsigned long long) b->stats.malformed,
                (unsigned long long) b->stats.refused_role, (unsigned long long) b->stats.dropped,
                (unsigned long long) b->stats.unroutable, (unsigned long long) b->stats.stale,
                (unsigned long long) b->stats.workers_lost,
                (unsigned long long) b->stats.handshakes_failed);
    if (b->journal) {
        pd_journal_stats_t js;
        pd_journal_stats(b->journal, &js);
        pd_log_info("journal %s: %llu batches in %llu commits, %llu failures, %llu rewrites, "
                    "%llu submits refused, %.1f MiB on disk", pd_journal_path(b->journal),
                    (unsigned long long) js.batches, (unsigned long long) js.commits,
                    (unsigned long long) js.failures,
                    (unsigned long long) js.resyncs,
                    (unsigned long long) b->stats.refused_journal,
                    pd_journal_bytes(b->journal) / 1048576.0);
    }
}

void pd_broker_set_snapshot(pd_broker_t *b, pd_snapshot_t *s)
{
    b->snap = s;
}

int pd_broker_run(pd_broker_t *b)
{
    int64_t tick_ms = b->cfg.hb_ms / 4;
    if (tick_ms < 10)
        tick_ms = 10;
    if (tick_ms > 250)
        tick_ms = 250;
    s_say_listening(b);
    int rc = 0;
    int64_t woke = zclock_mono(); /* when the previous poll returned */
    while (!atomic_load(&b->stop)) {
        b->now_ms = zclock_mono();
        int64_t polled = b->now_ms;
        int64_t timeout = b->next_tick - b->now_ms;
        int64_t parked = pd_broker_expire_parked(b);
        if (parked >= 0 && parked < timeout)
            timeout = parked;
        int64_t tparked = pd_broker_tick_tasks(b);
        if (tparked >= 0 && tparked < timeout)
            timeout = tparked;
        if (timeout < 0)
            timeout = 0;
        zmq_pollitem_t items[4] = {{b->sock, 0, ZMQ_POLLIN, 0}, {b->mon, 0, ZMQ_POLLIN, 0},
                                   {pd_bg_socket(b->bg), 0, ZMQ_POLLIN, 0},
                                   {b->journal ? pd_journal_socket(b->journal) : NULL, 0,
                                    ZMQ_POLLIN, 0}};
        int n = zmq_poll(items, b->journal ? 4 : 3, (long) timeout);
        if (n < 0) {
            if (zmq_errno() == EINTR)
                continue;
            pd_log_error("poll failed: %s", zmq_strerror(zmq_errno()));
            rc = PD_ESYS;
            break;
        }
        b->now_ms = zclock_mono();
        /* The time since the previous poll returned, less what this poll
           listened (its time-out at most), is time the broker did not
           listen: its own work, or a stop (SIGSTOP, a suspended machine)
           wherever it fell. Past a heartbeat, the workers' heartbeats of
           that time wait unread, so their silence is not counted. */
        int64_t in_poll = b->now_ms - polled, listened = in_poll < timeout ? in_poll : timeout;
        int64_t deaf = b->now_ms - woke - listened;
        woke = b->now_ms;
        if (deaf > (int64_t) b->cfg.hb_ms)
            pd_broker_workers_forgive(b, deaf);
        s_settle_all(b); /* replies and jobs that were waiting for the disk */
        if (items[1].revents & ZMQ_POLLIN)
            s_on_monitor(b);
        if (items[2].revents & ZMQ_POLLIN)
            pd_bg_drain(b->bg); /* shared data hashed off the loop */
        for (int i = 0; i < S_BATCH; i++) {
            int got = s_recv_one(b);
            if (got < 0)
                rc = got;
            if (got <= 0)
                break;
            pd_jobs_seal(b->jobs); /* one result segment per message */
            if (pd_outbox_bytes(b->outbox) > PD_BROKER_OUTBOX_BYTES ||
                pd_outbox_count(b->outbox) > PD_BROKER_OUTBOX_MSGS ||
                (b->journal && pd_journal_backlog(b->journal) > S_MAX_BACKLOG))
                pd_broker_sync(b); /* the disk is behind: wait for it */
        }
        if (rc)
            break;
        if (b->journal)
            pd_journal_flush(b->journal); /* the batch goes to the disk... */
        pd_broker_dispatch(b);           /* ...while workers get the jobs already there */
        pd_broker_wake_parked(b);
        if (b->now_ms >= b->next_tick)
            s_tick(b, tick_ms);
        s_settle_all(b); /* a batch dropped while failing settles at once */
    }
    pd_broker_sync(b);
    s_say_stopping(b);
    return rc;
}
