/*  pd_zap: the broker's ZAP handler, which decides who may connect.

    ZeroMQ asks a ZAP handler (RFC 27), over inproc://zeromq.zap.01 in the
    socket's context, about every CURVE handshake on a socket whose ZAP
    domain is set (pd_auth_apply_server sets "playdoh"). pd_zap answers from
    an allow-list: a directory of CZMQ public certificates, each with
    metadata "role" (worker, client or both) and "name", as written by
    `playdoh-keygen allow`. An admitted connection gets the ZAP user id = the
    client's public key (Z85) and the metadata X-Role and X-Name, which the
    broker reads on every message (pd_auth_msg_peer), so that a worker key
    cannot submit jobs and a client key cannot register as a worker.

    The handler runs as a CZMQ actor that owns its socket. The directory is
    read again whenever it changes (file names, sizes, modification times):
    at each handshake, at each pd_zap_check(), and on pd_zap_reload() (the
    broker calls it on SIGHUP). Keys removed from the directory lose their
    role at once: pd_zap_role() answers from the current list, and the
    broker asks it for every message.

        pd_zap_t *zap = pd_zap_new(ctx, "/home/lab/.config/playdoh/allowed", &err);
        ... create the ROUTER in ctx, pd_auth_apply_server(), bind ...
        pd_zap_destroy(&zap);   // after the socket is closed
*/
#ifndef PD_ZAP_H
#define PD_ZAP_H

#include "pd_auth.h"

#include <stdint.h>

typedef struct pd_zap pd_zap_t;

/* Counters and the list's size. */
typedef struct {
    uint64_t allowed;     /* handshakes admitted */
    uint64_t refused;     /* handshakes refused */
    uint32_t keys;        /* keys on the list */
    uint32_t workers;     /* of which may act as workers */
    uint32_t clients;     /* of which may act as clients */
    uint64_t generation;  /* bumped at each reload that changed the list */
} pd_zap_stats_t;

/* Starts the handler for ZeroMQ context ctx with the allow-list directory
   dir (copied; it may be missing or empty: then nobody is admitted, and a
   warning says how to admit keys). Returns the handler, or NULL with *err
   (when not NULL) set to PD_ESYS (another handler is bound in ctx, or the
   thread could not start) or PD_ENOMEM; the reason is logged. */
pd_zap_t *pd_zap_new(void *ctx, const char *dir, int *err);
/* Stops the thread and frees the handler; safe on NULL; sets *p to NULL. */
void pd_zap_destroy(pd_zap_t **p);

/* Reads the directory again now (logging what it found). Returns the number
   of keys on the list. Any thread. */
int pd_zap_reload(pd_zap_t *z);
/* Reads the directory again if it changed since the last read; returns true
   when the list changed. Any thread. */
bool pd_zap_check(pd_zap_t *z);
/* The current role of key (PD_ROLE_NONE when it is not on the list). Any
   thread. */
pd_role_t pd_zap_role(pd_zap_t *z, const char *key);
/* Copies the counters. Any thread. */
void pd_zap_stats(pd_zap_t *z, pd_zap_stats_t *out);

#endif
