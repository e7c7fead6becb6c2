/*  pd_client_int.h: the client library's insides shared between its files
    (pd_client.c owns the connection; pd_client_task.c and pd_graph.c build
    on it). Not installed, not for programs.
*/
#ifndef PD_CLIENT_INT_H
#define PD_CLIENT_INT_H

#include "playdoh.h"

#include "pd_codec.h"
#include "pd_msg.h"

/* Starts request t with nfields fields besides req into the client's buffer;
   returns the request number. */
uint64_t pd_client_begin(pd_client_t *c, msgpack_packer *pk, const char *t, uint32_t nfields);
/* Sends the built request and waits up to timeout_ms for its reply of type
   want, described by m (valid until the next call). A broker `error` becomes
   its code with pd_client_error() set. Returns 0 or a PD_E* code. */
int pd_client_call(pd_client_t *c, uint64_t req, const char *want, pd_msg_t *m, int timeout_ms);
/* Sets the client's error sentence; returns code. */
int pd_client_fail(pd_client_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The per-request reply time-out (pd_client_set_timeout). */
int pd_client_timeout(const pd_client_t *c);
/* The PD_E* code named "PD_E..." (PD_EREFUSED when unknown). */
int pd_client_code_from_name(const char *name);

/* Packs the fields "tubes" and "edges" of a task_submit for g. */
void pd_graph_pack(const pd_graph_t *g, msgpack_packer *pk);

#endif
