/*  pd_zap: the broker's ZAP handler and allow-list; see pd_zap.h.

    The list is an array of (key, role, name) sorted by key, replaced whole
    when the directory changes. One mutex guards it: the actor thread takes it
    for each handshake, the broker's thread for each message (a binary search
    over a few dozen keys). A change is noticed through a signature of the
    directory (names, sizes, modification times in nanoseconds, inodes), so
    a key file rewritten within the same second is still seen.
*/
#include "pd_zap.h"
#include "pd_grow.h"
#include "pd_plat.h"
#include "pd_error.h"
#include "pd_log.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_MAX_KEYS 100000 /* certificates read from the directory at most */

/* One admitted key. */
typedef struct {
    char key[PD_KEY_TXT]; /* public key, Z85 */
    pd_role_t role;       /* what it may do */
    char name[64];        /* its name, for logs */
} s_entry_t;

struct pd_zap {
    char *dir;             /* allow-list directory (owned) */
    void *ctx;             /* ZeroMQ context of the guarded sockets (borrowed) */
    zactor_t *actor;       /* the thread answering ZAP requests */
    pthread_mutex_t lock;  /* guards list, n, sig, loaded and stats */
    s_entry_t *list;       /* admitted keys, sorted by key (owned) */
    size_t n;              /* entries in list */
    uint64_t sig;          /* signature of the directory when list was read */
    bool loaded;           /* list was read at least once */
    pd_zap_stats_t stats;  /* counters */
    pd_log_limit_t limit;  /* refusal log lines (actor thread only) */
    bool started;          /* the actor bound its socket (set before its signal) */
};

/* ---- the list ---------------------------------------------------------- */

static bool s_skip_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] == '.' || (n > 7 && strcmp(name + n - 7, "_secret") == 0);
}

/* FNV-1a over the directory's entries; 1 when it cannot be read. */
static uint64_t s_signature(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 1;
    uint64_t h = 1469598103934665603ull, sum = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (s_skip_name(de->d_name))
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        uint64_t e = 1469598103934665603ull;
        for (const char *p = de->d_name; *p; p++)
            e = (e ^ (uint8_t) *p) * 1099511628211ull;
        uint64_t parts[] = {(uint64_t) st.st_size, (uint64_t) pd_plat_mtime_ns(&st), 0,
                            (uint64_t) st.st_ino};
        for (size_t i = 0; i < 4; i++)
            e = (e ^ parts[i]) * 1099511628211ull;
        sum += e; /* order of readdir does not matter */
    }
    closedir(d);
    return (h ^ sum) * 1099511628211ull | 2;
}

static int s_cmp_entry(const void *a, const void *b)
{
    return strcmp(((const s_entry_t *) a)->key, ((const s_entry_t *) b)->key);
}

/* Reads the directory into a new sorted list. Logs files it ignores. */
static s_entry_t *s_read_list(const char *dir, size_t *count)
{
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    s_entry_t *list = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < S_MAX_KEYS) {
        if (s_skip_name(de->d_name))
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        zcert_t *cert = pd_auth_cert_load(path);
        if (!cert) {
            pd_log_warn("allow-list: %s is not a certificate: ignored", path);
            continue;
        }
        pd_role_t role;
        const char *rname = zcert_meta(cert, "role");
        const char *name = zcert_meta(cert, "name");
        static const uint8_t zero[32];
        if (memcmp(zcert_public_key(cert), zero, 32) == 0) {
            pd_log_warn("allow-list: %s holds no public key: ignored", path);
        } else if (pd_role_parse(rname, &role)) {
            pd_log_warn("allow-list: %s has no role (worker, client, both or admin): ignored; "
                        "admit the key again with `playdoh-keygen allow KEY --role ROLE`", path);
        } else {
            if (pd_grow(&list, &cap, n + 1, sizeof *list)) {
                zcert_destroy(&cert);
                break;
            }
            snprintf(list[n].key, sizeof list[n].key, "%s", zcert_public_txt(cert));
            list[n].role = role;
            snprintf(list[n].name, sizeof list[n].name, "%.63s", name ? name : de->d_name);
            n++;
        }
        zcert_destroy(&cert);
    }
    closedir(d);
    if (n)
        qsort(list, n, sizeof *list, s_cmp_entry);
    /* The same key in two files: keep the first, say so. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && strcmp(list[k - 1].key, list[i].key) == 0) {
            pd_log_warn("allow-list: key %s appears twice (%s and %s): the role of %s is used",
                        list[i].key, list[k - 1].name, list[i].name, list[k - 1].name);
            continue;
        }
        list[k++] = list[i];
    }
    *count = k;
    return list;
}

/* Reads the list again when the directory changed (or always). Caller
   holds the lock. Returns true when the list was replaced. */
static bool s_refresh(pd_zap_t *z, bool always)
{
    uint64_t sig = s_signature(z->dir);
    if (!always && z->loaded && sig == z->sig)
        return false;
    size_t n;
    s_entry_t *list = s_read_list(z->dir, &n);
    free(z->list);
    z->list = list;
    z->n = n;
    z->sig = sig;
    z->loaded = true;
    z->stats.keys = (uint32_t) n;
    z->stats.workers = z->stats.clients = 0;
    for (size_t i = 0; i < n; i++) {
        z->stats.workers += pd_role_allows(list[i].role, PD_ROLE_WORKER);
        z->stats.clients += pd_role_allows(list[i].role, PD_ROLE_CLIENT);
    }
    z->stats.generation++;
    if (n == 0)
        pd_log_warn("allow-list %s is empty: no worker or client can connect; admit keys with "
                    "`playdoh-keygen allow KEY --role worker|client|both|admin`", z->dir);
    else
        pd_log_info("allow-list %s: %zu keys (%u may work, %u may submit)", z->dir, n,
                    z->stats.workers, z->stats.clients);
    return true;
}

static const s_entry_t *s_find(const pd_zap_t *z, const char *key)
{
    s_entry_t probe;
    snprintf(probe.key, sizeof probe.key, "%s", key);
    return z->n ? bsearch(&probe, z->list, z->n, sizeof probe, s_cmp_entry) : NULL;
}

/* ---- the ZAP protocol (RFC 27) ------------------------------------------ */

static void s_send(void *sock, const void *p, size_t n, bool more)
{
    zmq_send(sock, p, n, more ? ZMQ_SNDMORE : 0);
}

/* Appends one ZMTP metadata property (name, value) to buf. */
static size_t s_prop(uint8_t *buf, size_t at, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    buf[at++] = (uint8_t) nl;
    memcpy(buf + at, name, nl);
    at += nl;
    buf[at++] = 0;
    buf[at++] = 0;
    buf[at++] = (uint8_t) (vl >> 8);
    buf[at++] = (uint8_t) vl;
    memcpy(buf + at, value, vl);
    return at + vl;
}

static void s_answer(pd_zap_t *z, void *rep)
{
    enum { S_FRAMES = 8 };
    zmq_msg_t f[S_FRAMES];
    int n = 0;
    bool more = true;
    while (more) {
        zmq_msg_t extra;
        zmq_msg_t *m = n < S_FRAMES ? &f[n] : &extra;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, rep, 0) < 0) {
            zmq_msg_close(m);
            for (int i = 0; i < n && i < S_FRAMES; i++)
                zmq_msg_close(&f[i]);
            return;
        }
        more = zmq_msg_more(m);
        if (m == &extra)
            zmq_msg_close(&extra);
        n++;
    }
    int kept = n < S_FRAMES ? n : S_FRAMES;
    char key[PD_KEY_TXT] = "", addr[64] = "?", name[64] = "";
    const char *status = "400", *text = "key not allowed";
    pd_role_t role = PD_ROLE_NONE;
    if (n >= 6 && zmq_msg_size(&f[0]) == 3 && memcmp(zmq_msg_data(&f[0]), "1.0", 3) == 0) {
        snprintf(addr, sizeof addr, "%.*s", (int) (zmq_msg_size(&f[3]) < 63 ? zmq_msg_size(&f[3]) : 63),
                 (const char *) zmq_msg_data(&f[3]));
        bool curve = zmq_msg_size(&f[5]) == 5 && memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0;
        if (curve && n >= 7 && zmq_msg_size(&f[6]) == 32) {
            zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
            pthread_mutex_lock(&z->lock);
            s_refresh(z, false);
            const s_entry_t *e = s_find(z, key);
            if (e) {
                role = e->role;
                snprintf(name, sizeof name, "%s", e->name);
                z->stats.allowed++;
            } else {
                z->stats.refused++;
            }
            pthread_mutex_unlock(&z->lock);
        } else {
            text = "only CURVE is allowed";
            pthread_mutex_lock(&z->lock);
            z->stats.refused++;
            pthread_mutex_unlock(&z->lock);
        }
    } else {
        status = "500";
        text = "malformed ZAP request";
    }
    if (role != PD_ROLE_NONE) {
        status = "200";
        text = "OK";
        pd_log_debug("admitted %s (key %s, %s) from %s", name, key, pd_role_name(role), addr);
    } else {
        if (key[0])
            pd_log_limited(&z->limit, 20, 10000, PD_LOG_WARN,
                           "refused a connection from %s: key %s is not on the allow-list %s; "
                           "to admit it run `playdoh-keygen allow '%s' --role client` (or "
                           "worker, or both)", addr, key, z->dir, key);
        else
            pd_log_limited(&z->limit, 20, 10000, PD_LOG_WARN, "refused a connection from %s: %s",
                           addr, text);
    }
    s_send(rep, "1.0", 3, true);
    s_send(rep, kept > 1 ? zmq_msg_data(&f[1]) : "", kept > 1 ? zmq_msg_size(&f[1]) : 0, true);
    s_send(rep, status, 3, true);
    s_send(rep, text, strlen(text), true);
    s_send(rep, role != PD_ROLE_NONE ? key : "", role != PD_ROLE_NONE ? 40 : 0, true);
    uint8_t meta[256];
    size_t mlen = 0;
    if (role != PD_ROLE_NONE) {
        mlen = s_prop(meta, mlen, "X-Role", pd_role_name(role));
        mlen = s_prop(meta, mlen, "X-Name", name);
    }
    s_send(rep, meta, mlen, false);
    for (int i = 0; i < kept; i++)
        zmq_msg_close(&f[i]);
}

static void s_actor(zsock_t *pipe, void *arg)
{
    pd_zap_t *z = arg;
    void *rep = zmq_socket(z->ctx, ZMQ_REP);
    int zero = 0;
    if (!rep || zmq_setsockopt(rep, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_bind(rep, S_ZAP_ENDPOINT) != 0) {
        pd_log_error("cannot start the authentication handler: %s", zmq_strerror(zmq_errno()));
        if (rep)
            zmq_close(rep);
        zsock_signal(pipe, 1);
        return;
    }
    z->started = true; /* read by pd_zap_new once zactor_new got the signal */
    zsock_signal(pipe, 0);
    zmq_pollitem_t items[2] = {{zsock_resolve(pipe), 0, ZMQ_POLLIN, 0}, {rep, 0, ZMQ_POLLIN, 0}};
    for (;;) {
        if (zmq_poll(items, 2, -1) < 0) {
            if (zmq_errno() == EINTR)
                continue;
            break;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            char *cmd = zstr_recv(pipe);
            bool term = !cmd || strcmp(cmd, "$TERM") == 0;
            free(cmd);
            if (term)
                break;
        }
        if (items[1].revents & ZMQ_POLLIN)
            s_answer(z, rep);
    }
    zmq_close(rep);
}

/* ---- the object --------------------------------------------------------- */

pd_zap_t *pd_zap_new(void *ctx, const char *dir, int *err)
{
    pd_zap_t *z = calloc(1, sizeof *z);
    if (!z || !(z->dir = strdup(dir))) {
        free(z);
        if (err)
            *err = PD_ENOMEM;
        return NULL;
    }
    z->ctx = ctx;
    pthread_mutex_init(&z->lock, NULL);
    pthread_mutex_lock(&z->lock);
    s_refresh(z, true);
    pthread_mutex_unlock(&z->lock);
    /* The programs install their own SIGINT/SIGTERM handlers: CZMQ must not. */
    zsys_handler_set(NULL);
    z->actor = zactor_new(s_actor, z);
    /* zactor_new returns once the actor signalled, bound or not. */
    if (!z->actor || !z->started) {
        if (err)
            *err = PD_ESYS;
        pd_zap_destroy(&z);
        return NULL;
    }
    if (err)
        *err = 0;
    return z;
}

void pd_zap_destroy(pd_zap_t **p)
{
    if (!p || !*p)
        return;
    pd_zap_t *z = *p;
    zactor_destroy(&z->actor);
    pthread_mutex_destroy(&z->lock);
    free(z->list);
    free(z->dir);
    free(z);
    *p = NULL;
}

int pd_zap_reload(pd_zap_t *z)
{
    pthread_mutex_lock(&z->lock);
    s_refresh(z, true);
    int n = (int) z->n;
    pthread_mutex_unlock(&z->lock);
    return n;
}

bool pd_zap_check(pd_zap_t *z)
{
    pthread_mutex_lock(&z->lock);
    bool changed = s_refresh(z, false);
    pthread_mutex_unlock(&z->lock);
    return changed;
}

pd_role_t pd_zap_role(pd_zap_t *z, const char *key)
{
    if (!key)
        return PD_ROLE_NONE;
    pthread_mutex_lock(&z->lock);
    const s_entry_t *e = s_find(z, key);
    pd_role_t role = e ? e->role : PD_ROLE_NONE;
    pthread_mutex_unlock(&z->lock);
    return role;
}

void pd_zap_stats(pd_zap_t *z, pd_zap_stats_t *out)
{
    pthread_mutex_lock(&z->lock);
    *out = z->stats;
    pthread_mutex_unlock(&z->lock);
}
