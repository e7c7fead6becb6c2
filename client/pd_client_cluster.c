/*  pd_client_cluster: what the client asks about the broker and its
    cluster rather than about jobs: the broker's name, journal and size
    (`hello`), garbage collection (`gc`), the list of workers and owners
    (`cluster`), and finding a broker by its UDP beacon (pd_beacon), keeping
    only one whose key this account trusts when asked to.
*/
#include "playdoh.h"
#include "pd_client_int.h"

#include "pd_auth.h"
#include "pd_beacon.h"
#include "pd_codec.h"
#include "pd_log.h"
#include "pd_msg.h"
#include "pd_proto.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* ---- the broker ------------------------------------------------------------ */

/* The journal fields of welcome and gc_done (docs/protocol.md), into info. */
static void s_read_journal(pd_broker_info_t *info, pd_str_t journal, uint64_t bytes,
                           uint64_t max_bytes, bool has_ok, bool ok)
{
    pd_str_copy(journal, info->journal, sizeof info->journal);
    info->journal_bytes = bytes;
    info->journal_max_bytes = max_bytes;
    info->journal_ok = has_ok ? ok : true;
}

int pd_client_broker_info(pd_client_t *c, pd_broker_info_t *info)
{
    memset(info, 0, sizeof *info);
    pd_m_welcome_t w;
    int rc = pd_client_hello(c, pd_client_timeout(c), &w);
    if (rc)
        return rc;
    info->workers = (int) w.workers;
    info->slots = (int) w.slots;
    snprintf(info->name, sizeof info->name, "%s", w.name);
    s_read_journal(info, w.journal, w.journal_bytes, w.journal_max_bytes, w.has_journal_ok,
                   w.journal_ok);
    return 0;
}

long pd_gc(pd_client_t *c, int64_t ttl_s, pd_broker_info_t *info)
{
    pd_m_gc_t q = {.has_ttl_s = ttl_s >= 0, .ttl_s = ttl_s >= 0 ? (uint64_t) ttl_s : 0};
    pd_m_gc_done_t a;
    uint64_t req = pd_client_request(c, &pd_proto_gc, &q);
    int rc = pd_client_call_idem(c, req, &pd_proto_gc_done, &a, 0, pd_client_timeout(c));
    if (rc)
        return rc;
    if (info) {
        memset(info, 0, sizeof *info);
        s_read_journal(info, a.journal, a.journal_bytes, a.journal_max_bytes, a.has_journal_ok,
                       a.journal_ok);
    }
    return (long) a.forgot;
}

int pd_client_cluster_gpus(pd_client_t *c, int *gpus)
{
    pd_m_welcome_t w = {0};
    int rc = pd_client_hello(c, 0, &w);
    *gpus = rc ? 0 : (int) w.gpus;
    return rc;
}

int pd_client_cluster_size(pd_client_t *c, int *workers, int *slots)
{
    pd_m_welcome_t w;
    int rc = pd_client_hello(c, 0, &w);
    if (rc)
        return rc;
    *workers = (int) w.workers;
    *slots = (int) w.slots;
    return 0;
}

/* ---- discovery and cluster state ---------------------------------------- */

int pd_discover(const char *cluster, int udp_port, const char *iface, int timeout_ms,
                char *endpoint, size_t cap)
{
    return pd_discover_broker(cluster, udp_port, iface, timeout_ms, NULL, endpoint, cap, NULL);
}

/* True when this account trusts the broker a beacon announces at ep; key
   gets the key to use (the beacon's, or known_brokers' for ep). */
static bool s_beacon_trusted(const char *dir, const pd_beacon_t *b, const char *ep,
                             char key[PD_KEY_TXT])
{
    if (b->has_key) {
        zmq_z85_encode(key, b->key, PD_BEACON_KEY_BYTES);
        return pd_auth_trust_has(dir, ep, key);
    }
    key[0] = 0;
    return dir && pd_auth_trust_find(dir, ep, key, NULL, 0) == 0;
}

int pd_discover_broker(const char *cluster, int udp_port, const char *iface, int timeout_ms,
                       const char *config_dir, char *endpoint, size_t cap, char key[41])
{
    if (key)
        key[0] = 0;
    char *dir = NULL;
    if (config_dir)
        dir = config_dir[0] ? strdup(config_dir) : pd_auth_config_dir();
    int err = 0;
    pd_beacon_listener_t *l = pd_beacon_listener_new(cluster ? cluster : PD_BEACON_DEFAULT_CLUSTER,
                                                     udp_port > 0 ? udp_port
                                                                  : PD_BEACON_DEFAULT_PORT,
                                                     iface, &err);
    if (!l) {
        free(dir);
        return err;
    }
    int64_t deadline = pd_client_now_ms() + timeout_ms;
    char first_ep[300] = "", first_key[PD_KEY_TXT] = "", ep[300], k[PD_KEY_TXT];
    int rc = 0;
    for (;;) {
        int64_t left = deadline - pd_client_now_ms();
        pd_beacon_t b;
        int got = left > 0 ? pd_beacon_listener_wait(l, (int) left, &b, ep, sizeof ep) : 0;
        if (got < 0) {
            rc = got;
            break;
        }
        if (got == 0) {
            rc = first_ep[0] ? PD_ENOTRUSTED : PD_ETIMEDOUT;
            if (first_ep[0]) {
                snprintf(endpoint, cap, "%s", first_ep);
                if (key)
                    memcpy(key, first_key, PD_KEY_TXT);
            }
            break;
        }
        if (!config_dir || s_beacon_trusted(dir, &b, ep, k)) {
            snprintf(endpoint, cap, "%s", ep);
            if (key && b.has_key)
                zmq_z85_encode(key, b.key, PD_BEACON_KEY_BYTES);
            rc = 0;
            break;
        }
        if (!first_ep[0]) {
            snprintf(first_ep, sizeof first_ep, "%s", ep);
            memcpy(first_key, b.has_key ? k : "", b.has_key ? PD_KEY_TXT : 1);
        }
        pd_log_debug("client: skipped the beacon of an untrusted broker at %s", ep);
    }
    pd_beacon_listener_destroy(&l);
    free(dir);
    return rc;
}

/* A field of pd_worker_info_t by its key in a worker map: where it is and
   its size. */
typedef struct {
    const char *key;
    size_t off, size;
} s_field_t;

#define S_FIELD(name)                                                                             \
    {#name, offsetof(pd_worker_info_t, name), sizeof(((pd_worker_info_t *) 0)->name)}
#define S_NFIELDS(table) (sizeof(table) / sizeof((table)[0]))

/* The string fields, read with pd_rd_strcpy. */
static const s_field_t s_str_fields[] = {
    S_FIELD(id),    S_FIELD(host),      S_FIELD(platform),   S_FIELD(version),
    S_FIELD(owner), S_FIELD(slurm_job), S_FIELD(slurm_step), S_FIELD(slurm_array),
};

/* The counts (uint32_t or uint64_t), read when they are unsigned integers. */
static const s_field_t s_uint_fields[] = {
    S_FIELD(cpus),   S_FIELD(gpus),     S_FIELD(busy),  S_FIELD(nodes),
    S_FIELD(gpu_nodes), S_FIELD(inflight), S_FIELD(queued), S_FIELD(done),
    S_FIELD(requeued), S_FIELD(hb_ms),  S_FIELD(up_s),
};

/* The entry of table[0..n) for key, or NULL. */
static const s_field_t *s_field(const s_field_t *table, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(table[i].key, key))
            return &table[i];
    return NULL;
}

/* Stores u into the size-byte count at p (a uint32_t is truncated). */
static void s_set_uint(void *p, size_t size, uint64_t u)
{
    if (size == sizeof(uint32_t)) {
        uint32_t v = (uint32_t) u;
        memcpy(p, &v, sizeof v);
    } else {
        memcpy(p, &u, sizeof u);
    }
}

/* Reads one worker map of a `cluster` reply. */
static int s_read_worker(pd_rd_t *r, pd_worker_info_t *wi)
{
    uint32_t n;
    memset(wi, 0, sizeof *wi);
    wi->load = -1;
    if (pd_rd_map(r, &n))
        return PD_EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        const char *k;
        uint32_t klen;
        if (pd_rd_str(r, &k, &klen))
            return PD_EPROTO;
        char key[32];
        snprintf(key, sizeof key, "%.*s", (int) (klen < 31 ? klen : 31), k);
        uint64_t u;
        int rc = 0;
        const s_field_t *f = s_field(s_str_fields, S_NFIELDS(s_str_fields), key);
        if (f)
            rc = pd_rd_strcpy(r, (char *) wi + f->off, f->size);
        else if (!strcmp(key, "pid"))
            rc = pd_rd_int(r, &wi->pid);
        else if (!strcmp(key, "load")) {
            if (pd_rd_nil(r) != 0)
                rc = pd_rd_double(r, &wi->load);
        } else if (!strcmp(key, "gpu_names")) {
            uint32_t g;
            rc = pd_rd_array(r, &g);
            size_t at = 0;
            for (uint32_t j = 0; !rc && j < g; j++) {
                const char *sv;
                uint32_t sl;
                rc = pd_rd_str(r, &sv, &sl);
                if (!rc && at + sl + 3 < sizeof wi->gpu_names)
                    at += (size_t) snprintf(wi->gpu_names + at, sizeof wi->gpu_names - at,
                                            "%s%.*s", at ? ", " : "", (int) sl, sv);
            }
        } else if (!strcmp(key, "gpu_info")) {
            /* [{name, mem, cc_major, cc_minor}, ...]: the memory is added up */
            uint32_t g;
            rc = pd_rd_array(r, &g);
            for (uint32_t j = 0; !rc && j < g; j++) {
                uint32_t nf;
                rc = pd_rd_map(r, &nf);
                for (uint32_t f = 0; !rc && f < nf; f++) {
                    if (!pd_rd_key_is(r, "mem"))
                        rc = pd_rd_skip(r, NULL, NULL) ? PD_EPROTO
                                                       : pd_rd_skip(r, NULL, NULL);
                    else if (pd_rd_peek(r) != PD_MP_UINT)
                        rc = pd_rd_skip(r, NULL, NULL);
                    else if ((rc = pd_rd_uint(r, &u)) == 0)
                        wi->gpu_mem += u;
                }
            }
        } else if (pd_rd_peek(r) == PD_MP_UINT) {
            rc = pd_rd_uint(r, &u);
            if ((f = s_field(s_uint_fields, S_NFIELDS(s_uint_fields), key)))
                s_set_uint((char *) wi + f->off, f->size, u);
        } else {
            rc = pd_rd_skip(r, NULL, NULL); /* a field of a later version */
        }
        if (rc)
            return PD_EPROTO;
    }
    return 0;
}

/* Reads `owners` of a cluster reply into info; 0, PD_EPROTO or PD_ENOMEM. */
static int s_read_owners(pd_raw_t owners, pd_cluster_info_t *info)
{
    pd_rd_t r;
    uint32_t n;
    pd_rd_init(&r, owners.p, owners.len);
    if (pd_rd_array(&r, &n))
        return PD_EPROTO;
    info->owners = calloc(n ? n : 1, sizeof *info->owners);
    if (!info->owners)
        return PD_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        pd_owner_info_t *ow = &info->owners[i];
        uint32_t nf;
        if (pd_rd_map(&r, &nf))
            return PD_EPROTO;
        for (uint32_t f = 0; f < nf; f++) {
            const char *k;
            uint32_t klen;
            if (pd_rd_str(&r, &k, &klen))
                return PD_EPROTO;
            char key[16];
            snprintf(key, sizeof key, "%.*s", (int) (klen < 15 ? klen : 15), k);
            uint64_t u;
            int rc = 0;
            if (!strcmp(key, "owner"))
                rc = pd_rd_strcpy(&r, ow->owner, sizeof ow->owner);
            else if (!strcmp(key, "mine"))
                rc = pd_rd_bool(&r, &ow->mine);
            else if (!strcmp(key, "batches") || !strcmp(key, "queued") ||
                     !strcmp(key, "running") || !strcmp(key, "final")) {
                rc = pd_rd_uint(&r, &u);
                *(key[0] == 'b' ? &ow->batches : key[0] == 'q' ? &ow->queued
                                               : key[0] == 'r' ? &ow->running
                                                               : &ow->final) = u;
            } else
                rc = pd_rd_skip(&r, NULL, NULL); /* a field of a later version */
            if (rc)
                return PD_EPROTO;
        }
        info->nowners++;
    }
    return 0;
}

int pd_cluster_info(pd_client_t *c, pd_cluster_info_t *info)
{
    memset(info, 0, sizeof *info);
    pd_m_cluster_t q = {0};
    pd_m_cluster_info_t a;
    uint64_t req = pd_client_request(c, &pd_proto_cluster, &q);
    int rc = pd_client_call_idem(c, req, &pd_proto_cluster_info, &a, 0, pd_client_timeout(c));
    if (rc)
        return rc;
    snprintf(info->name, sizeof info->name, "%s", a.name);
    snprintf(info->cluster, sizeof info->cluster, "%s", a.cluster);
    if (a.has_version)
        snprintf(info->version, sizeof info->version, "%s", a.version);
    info->queued = a.queued;
    info->unfinished = a.unfinished;
    pd_rd_t r;
    uint32_t n;
    pd_rd_init(&r, a.workers.p, a.workers.len);
    if (pd_rd_array(&r, &n))
        return pd_client_fail(c, PD_EPROTO, "the broker's 'cluster' reply has no list of workers");
    info->workers = calloc(n ? n : 1, sizeof *info->workers);
    if (!info->workers)
        return pd_client_fail(c, PD_ENOMEM, "out of memory for %u workers", n);
    for (uint32_t i = 0; i < n; i++) {
        if (s_read_worker(&r, &info->workers[i])) {
            pd_cluster_info_clear(info);
            return pd_client_fail(c, PD_EPROTO,
                                  "the broker's 'cluster' reply has a malformed worker");
        }
        info->nworkers++;
    }
    if (a.has_owners && s_read_owners(a.owners, info)) {
        pd_cluster_info_clear(info);
        return pd_client_fail(c, PD_EPROTO,
                              "the broker's 'cluster' reply has a malformed 'owners'");
    }
    return 0;
}

void pd_cluster_info_clear(pd_cluster_info_t *info)
{
    free(info->owners);
    free(info->workers);
    memset(info, 0, sizeof *info);
}

