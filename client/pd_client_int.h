/*  pd_client_int.h: the client library's insides shared between its files.
    Not installed, not for programs.

    pd_client.c owns the connection (struct pd_client stays there): the
    socket, the handshake and its monitor, `hello`, riding out a broker
    restart, and matching replies to requests. The other files build on the
    functions below and never see the struct:
      pd_client_jobs.c     map, exec, status, cancel, release, fetch, results
      pd_client_task.c     synchronous tasks (pd_graph.c packs their graph)
      pd_client_blob.c     modules and shared data
      pd_client_cluster.c  broker and cluster state, discovery, gc
*/
#ifndef PD_CLIENT_INT_H
#define PD_CLIENT_INT_H

#include "playdoh.h"

#include "pd_codec.h"
#include "pd_msg.h"
#include "pd_proto.h"

#define PD_CLIENT_LOST 1            /* pd_client_recv: the connection dropped (positive) */
#define PD_CLIENT_TOKEN_RANDOM 16   /* random bytes that start every submit token */
#define PD_CLIENT_TOKEN (PD_CLIENT_TOKEN_RANDOM + 8) /* a submit token: random, then counter */
#define PD_CLIENT_ERR_MAX 2048      /* room for the client's error sentence */

/* The broker's limits, as its `welcome` said them (0: not said). */
typedef struct {
    uint64_t max_shared; /* shared data, bytes */
    uint64_t max_arg;    /* one job's argument, bytes */
    uint64_t max_batch;  /* one submit call's arguments, bytes */
} pd_client_limits_t;

/* ---- building and sending requests --------------------------------------- */

/* Encodes request m, a pd_m_NAME_t described by d (&pd_proto_NAME), into the
   client's buffer as request number req: m's req and owner_token are set
   here. A request sent again keeps its number. */
void pd_client_encode(pd_client_t *c, const pd_proto_msg_t *d, void *m, uint64_t req);
/* pd_client_encode under a fresh number; returns it. */
uint64_t pd_client_request(pd_client_t *c, const pd_proto_msg_t *d, void *m);
/* pd_client_encode for a message whose last field is a bin of len bytes
   (left empty in m) that pd_client_send_data / pd_client_call_idem_data
   append without copying them into the buffer (a large shared upload). */
void pd_client_encode_bin_last(pd_client_t *c, const pd_proto_msg_t *d, void *m, uint64_t req,
                               size_t len);
/* A fresh request number. */
uint64_t pd_client_new_req(pd_client_t *c);
/* Sends the built request. Returns 0, PD_ETOOBIG or PD_EUNREACH (sentence set). */
int pd_client_send(pd_client_t *c);
/* Sends the built request followed by data[0..len) (the bytes of a bin
   field whose header ends the request) as one frame, copying data once. */
int pd_client_send_data(pd_client_t *c, const void *data, size_t len);

/* ---- waiting for replies -------------------------------------------------- */

/* Waits for the reply to request req (or, when req is 0, to any request:
   *got says which). On success m describes the reply, valid until the next
   receive. A broker `error` reply becomes its code with the sentence set.
   Returns 0, PD_CLIENT_LOST when the connection drops while waiting,
   PD_ETIMEDOUT, PD_EAUTH (a refused handshake) or the broker's code. */
int pd_client_recv(pd_client_t *c, uint64_t req, pd_msg_t *m, int timeout_ms, uint64_t *got);
/* Forgets the drops the monitor saw so far (they do not concern a request
   about to be sent); true when there was one. */
bool pd_client_drain(pd_client_t *c);
/* Sends the built request and waits up to timeout_ms for its reply, of the
   message want (&pd_proto_NAME), decoded into out (a pd_m_NAME_t whose
   borrowed strings and bytes are valid until the next call), once: for
   requests that must not be done twice. A broker `error` becomes its code
   with pd_client_error() set. Returns 0 or a PD_E* code. */
int pd_client_call(pd_client_t *c, uint64_t req, const pd_proto_msg_t *want, void *out,
                   int timeout_ms);
/* Sends request d, one of the messages over ids (PD_F_IDS: cancel, release,
   task_cancel, ...) whose ids pack(pk, ctx) writes, with pd_client_call and
   the client's time-out; its reply want is a count (PD_F_COUNT: cancelled,
   released, task_cancelled, ...), stored in *n. Returns 0 or a PD_E* code. */
int pd_client_count_call(pd_client_t *c, const pd_proto_msg_t *d, const pd_proto_msg_t *want,
                         pd_proto_pack_fn pack, const void *ctx, uint64_t *n);
/* pd_client_call for a request that may safely be done twice: the broker
   answers after at most wait_ms (a long poll) plus its work; when the
   connection drops or no reply comes in time, the same request is sent
   again (after 2 s past wait_ms, then 4, 8, ...) until the broker has been
   silent for wait_ms plus budget_ms. So a broker restart is ridden out. */
int pd_client_call_idem(pd_client_t *c, uint64_t req, const pd_proto_msg_t *want, void *out,
                        int wait_ms, int budget_ms);
/* pd_client_call_idem for a request whose last field's bytes, data[0..len),
   follow the built request (pd_client_send_data). */
int pd_client_call_idem_data(pd_client_t *c, uint64_t req, const pd_proto_msg_t *want,
                             void *out, int wait_ms, int budget_ms, const void *data, size_t len);
/* Sends `hello` and waits up to wait_ms (0: PLAYDOH_CONNECT_TIMEOUT_MS, else
   5 s; at most the client's time-out) for `welcome`; on success w holds it
   (valid until the next receive) and the client knows the broker's limits. */
int pd_client_hello(pd_client_t *c, int wait_ms, pd_m_welcome_t *w);

/* ---- the client's state ---------------------------------------------------- */

/* Sets the client's error sentence; returns code. */
int pd_client_fail(pd_client_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The per-request reply time-out (pd_client_set_timeout). */
int pd_client_timeout(const pd_client_t *c);
/* The broker's limits (pd_client_limits_t). */
pd_client_limits_t pd_client_limits(const pd_client_t *c);
/* A fresh submit chunk counter. */
uint64_t pd_client_new_chunk(pd_client_t *c);
/* Writes the submit token of chunk counter n: this client's random prefix,
   then n big-endian, so that a chunk sent again is known as the same. */
void pd_client_token(const pd_client_t *c, uint64_t n, uint8_t token[PD_CLIENT_TOKEN]);
/* Counts one request sent again (pd_client_resent). */
void pd_client_count_resend(pd_client_t *c);
/* The PD_E* code named "PD_E..." (PD_EREFUSED when unknown). */
int pd_client_code_from_name(const char *name);
/* Milliseconds of a monotonic clock. */
int64_t pd_client_now_ms(void);
/* The deadline timeout_ms from now (< 0: none, INT64_MAX). */
int64_t pd_client_deadline(int timeout_ms);
/* How long one long poll may wait before deadline (INT64_MAX: none): what
   is left of it, at most max_ms, never below 0. */
int pd_client_poll_ms(int64_t deadline, int max_ms);

/* Pack the values of the fields "tubes" and "edges" of a task_submit for the
   graph ctx (a const pd_graph_t *): pd_raw_t packing callbacks. */
int pd_graph_pack_tubes(msgpack_packer *pk, const void *ctx);
int pd_graph_pack_edges(msgpack_packer *pk, const void *ctx);

#endif
