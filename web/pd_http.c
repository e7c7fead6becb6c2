/*  pd_http: the dashboard's HTTP server, on libmicrohttpd. */
#include "pd_http.h"

#include "pd_error_int.h"
#include "pd_web_static.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_SSE_WAIT_MS 25        /* how often a stream looks for a new snapshot */
#define S_SSE_KEEPALIVE_MS 15000 /* a comment line after this long without one */

struct pd_http {
    struct MHD_Daemon *mhd;
    pd_snapshot_t *snap;
    char token[256]; /* "" for none */
    size_t token_len;
    atomic_bool stopping;
};

/* One Server-Sent Events stream. */
typedef struct {
    pd_http_t *h;
    uint64_t seq;      /* snapshot sent last */
    char *pending;     /* the event being sent */
    size_t len, off;
} s_stream_t;

/* Splits "HOST:PORT" into sa; true for a loopback host. Returns 0 or
   PD_EINVAL with the reason. */
static int s_parse_addr(const char *addr, struct sockaddr_in *sa, bool *loopback, char *why,
                        size_t cap)
{
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    char host[64];
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || (size_t) (colon - addr) >= sizeof host || colon == addr || !colon[1] ||
        *end || port < 1 || port > 65535)
        return pd_why(why, cap, PD_EINVAL, "--http wants HOST:PORT such as 127.0.0.1:8780, "
                      "not '%s'", addr ? addr : "");
    memcpy(host, addr, (size_t) (colon - addr));
    host[colon - addr] = 0;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t) port);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return pd_why(why, cap, PD_EINVAL, "--http: '%s' is not an IPv4 address (give one "
                      "such as 127.0.0.1 or 0.0.0.0; host names other than localhost are "
                      "not looked up)", host);
    *loopback = (ntohl(sa->sin_addr.s_addr) >> 24) == 127;
    return 0;
}

static enum MHD_Result s_send(struct MHD_Connection *c, unsigned code, const char *type,
                              const void *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *) body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (code == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"playdoh\"");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result s_error(struct MHD_Connection *c, unsigned code, const char *msg)
{
    char body[512];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}", msg);
    return s_send(c, code, "application/json", body, (size_t) n);
}

/* True when the request carries the token (or none is needed). */
static bool s_authorised(const pd_http_t *h, struct MHD_Connection *c)
{
    if (!h->token_len)
        return true;
    const char *given = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (auth && strncmp(auth, "Bearer ", 7) == 0)
        given = auth + 7;
    return given && strlen(given) == h->token_len &&
           sodium_memcmp(given, h->token, h->token_len) == 0;
}

static ssize_t s_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void) pos;
    s_stream_t *st = cls;
    int waited = 0;
    while (!st->pending) {
        if (atomic_load(&st->h->stopping))
            return MHD_CONTENT_READER_END_OF_STREAM;
        uint64_t seq = pd_snapshot_seq(st->h->snap);
        if (seq != st->seq) {
            pd_snap_text_t *t = pd_snapshot_get(st->h->snap, PD_SNAP_CLUSTER);
            size_t len;
            const char *json = pd_snap_text_data(t, &len);
            st->pending = malloc(len + 32);
            if (st->pending) {
                st->len = (size_t) snprintf(st->pending, len + 32, "event: snapshot\ndata: %.*s\n\n",
                                            (int) len, json);
                st->off = 0;
                st->seq = seq;
            }
            pd_snap_text_drop(t);
            if (!st->pending)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        } else if (waited >= S_SSE_KEEPALIVE_MS) {
            static const char ka[] = ": keep-alive\n\n";
            size_t n = sizeof ka - 1 < max ? sizeof ka - 1 : max;
            memcpy(buf, ka, n);
            return (ssize_t) n;
        } else {
            usleep(S_SSE_WAIT_MS * 1000);
            waited += S_SSE_WAIT_MS;
        }
    }
    size_t n = st->len - st->off < max ? st->len - st->off : max;
    memcpy(buf, st->pending + st->off, n);
    st->off += n;
    if (st->off == st->len) {
        free(st->pending);
        st->pending = NULL;
    }
    return (ssize_t) n;
}

static void s_stream_free(void *cls)
{
    s_stream_t *st = cls;
    free(st->pending);
    free(st);
}

static enum MHD_Result s_stream(pd_http_t *h, struct MHD_Connection *c)
{
    s_stream_t *st = calloc(1, sizeof *st);
    if (!st)
        return s_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    st->h = h;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024,
                                                               s_stream_read, st, s_stream_free);
    if (!r) {
        free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result s_snapshot(pd_http_t *h, struct MHD_Connection *c, pd_snap_kind_t k)
{
    pd_snap_text_t *t = pd_snapshot_get(h->snap, k);
    size_t len;
    const char *json = pd_snap_text_data(t, &len);
    enum MHD_Result ret = s_send(c, MHD_HTTP_OK, "application/json", json, len);
    pd_snap_text_drop(t);
    return ret;
}

static enum MHD_Result s_answer(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version, const char *upload,
                                size_t *upload_size, void **con_cls)
{
    (void) version;
    (void) upload;
    pd_http_t *h = cls;
    if (!*con_cls) { /* the headers: answer once the (empty) body is read */
        *con_cls = h;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* a body is ignored: everything here is read-only */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return s_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "the dashboard is read-only: GET only");
    if (!s_authorised(h, c))
        return s_error(c, MHD_HTTP_UNAUTHORIZED,
                       "missing or wrong token: send 'Authorization: Bearer TOKEN' or "
                       "?token=TOKEN with the token of the broker's --http-token-file");
    static const struct {
        const char *url;
        pd_snap_kind_t kind;
    } api[] = {{"/api/cluster", PD_SNAP_CLUSTER},
               {"/api/batches", PD_SNAP_BATCHES},
               {"/api/events", PD_SNAP_EVENTS}};
    for (size_t i = 0; i < sizeof api / sizeof api[0]; i++)
        if (strcmp(url, api[i].url) == 0)
            return s_snapshot(h, c, api[i].kind);
    if (strcmp(url, "/api/stream") == 0)
        return s_stream(h, c);
    const pd_web_file_t *f = pd_web_static_find(url);
    if (f)
        return s_send(c, MHD_HTTP_OK, f->type, f->data, f->len);
    return s_error(c, MHD_HTTP_NOT_FOUND, "no such page: see docs/dashboard.md for the API");
}

pd_http_t *pd_http_start(pd_snapshot_t *snap, const char *addr, const char *token, int *err,
                         char *why, size_t cap)
{
    struct sockaddr_in sa;
    bool loopback = false;
    *err = s_parse_addr(addr, &sa, &loopback, why, cap);
    if (*err)
        return NULL;
    size_t tlen = token ? strlen(token) : 0;
    if (!loopback && !tlen) {
        *err = pd_why(why, cap, PD_EINVAL, "--http %s is not a loopback address: set a token "
                      "(--http-token-file FILE or [broker] http_token_file) "
                      "or serve on 127.0.0.1 behind a reverse proxy (docs/dashboard.md)", addr);
        return NULL;
    }
    if (tlen && (tlen < PD_HTTP_MIN_TOKEN || tlen >= 256)) {
        *err = pd_why(why, cap, PD_EINVAL, "the dashboard's token has %zu characters: give "
                      "%u to 255", tlen, PD_HTTP_MIN_TOKEN);
        return NULL;
    }
    pd_http_t *h = calloc(1, sizeof *h);
    if (!h) {
        *err = pd_why(why, cap, PD_ENOMEM, "out of memory");
        return NULL;
    }
    h->snap = snap;
    memcpy(h->token, token ? token : "", tlen);
    h->token_len = tlen;
    atomic_init(&h->stopping, false);
    h->mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL,
        ntohs(sa.sin_port), NULL, NULL, s_answer, h, MHD_OPTION_SOCK_ADDR, &sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned) PD_HTTP_MAX_CONNS,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned) PD_HTTP_MAX_CONNS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) PD_HTTP_TIMEOUT_S,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 128u, MHD_OPTION_END);
    if (!h->mhd) {
        *err = pd_why(why, cap, PD_ESYS, "cannot serve the dashboard on %s: the port is in use "
                      "or the address is not this machine's", addr);
        free(h);
        return NULL;
    }
    return h;
}

void pd_http_stop(pd_http_t **ph)
{
    pd_http_t *h = *ph;
    if (!h)
        return;
    atomic_store(&h->stopping, true);
    MHD_stop_daemon(h->mhd);
    sodium_memzero(h->token, sizeof h->token);
    free(h);
    *ph = NULL;
}
