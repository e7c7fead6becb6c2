/*  pd_http: the dashboard's HTTP server (issue 19), on libmicrohttpd.

    Runs on libmicrohttpd's own thread with a connection limit and time-outs
    and serves, read-only, the latest texts of a pd_snapshot_t:
      GET /api/cluster  workers, totals, counters (docs/dashboard.md)
      GET /api/batches  jobs per owner
      GET /api/events   the event log (last PD_SNAPSHOT_EVENTS entries)
      GET /api/stream   Server-Sent Events: a `snapshot` event carrying
                        /api/cluster's text at most every PD_SNAPSHOT_PERIOD_MS
      GET /             the page (web/static/index.html, embedded)
    On a loopback address no login is asked. Any other address needs a token
    (at least 16 characters, e.g. a key made by playdoh-keygen): the request
    carries it as `Authorization: Bearer TOKEN` or `?token=TOKEN`, compared
    in constant time; a missing or wrong one gets 401.
*/
#ifndef PD_HTTP_H
#define PD_HTTP_H

#include "pd_snapshot.h"

#include <stddef.h>

#define PD_HTTP_MAX_CONNS 64u    /* connections served at once */
#define PD_HTTP_TIMEOUT_S 10u    /* idle seconds before a connection is closed */
#define PD_HTTP_MIN_TOKEN 16u    /* characters of a token at least */

typedef struct pd_http pd_http_t;

/* Starts serving snap on addr ("HOST:PORT", HOST an IPv4 address or
   "localhost"); token is NULL or "" for none, which only a loopback address
   allows. Returns the server, or NULL with the reason in why (PD_EINVAL: a
   bad address or a missing or short token; PD_ESYS: the port could not be
   bound) and the code in *err. */
pd_http_t *pd_http_start(pd_snapshot_t *snap, const char *addr, const char *token, int *err,
                         char *why, size_t cap);
/* Stops the server and closes its connections. */
void pd_http_stop(pd_http_t **h);

#endif
