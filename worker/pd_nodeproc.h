/*  pd_nodeproc: one node of a synchronous task = one child process of the worker.

    Unlike a job, which runs in a warm slot process, each node gets a fresh
    process (fork+exec of the worker's program with "--node"), so that its
    ZeroMQ sockets, a crash or a kill concern that node alone, and killing
    it to abort the task never disturbs the slots. The worker owns one
    pd_nodeproc_t per node it runs; the broker counts each node as one of the
    worker's CPU slots.

        <exe> --node --cache <dir> --host <host> --parent <pid> [--log-level L]

    Pipe protocol: pd_pipe frames (the child reads fd 3, writes fd 4), each
    a message map as on the wire ({v: 1, t: TYPE, ...}, read with pd_msg):

      worker -> node  start {task, node, n, mod, kind, name, fn, arg, tubes,
                             out, in, io_ms, start_ms, window, window_bytes,
                             addr, curve?}: load the module, bind the tubes on
                             addr (with CurveZMQ when curve is true)
                      peers {peers: [[node, ep, key?], ...]}: the neighbours
                             (key: their XPUB's CurveZMQ public key)
                      go    {}: every node of the task is ready; run
      node -> worker  up    {}: the process started (sent first, before
                             it reads `start`)
                      bound {ep, key?}: its XPUB endpoint (and public key)
                      ready {}: every neighbour has subscribed to it
                      progress {val}: the task's latest progress (a
                             built-in node function's report, e.g. node 0 of
                             an optimisation), any number of times
                      result {ok, val, us}: val is the node's result (ok) or
                             {code, msg}; then the process exits

    A node sends `result` after it closed its tubes and its outgoing data
    left (the XPUB lingers up to the time-out), so a result means this
    node's part is over. A node process that dies before its result fails
    the node: the handle reports "node process crashed: killed by signal N
    (...)" or its exit status. One that dies before `up` never ran the
    task: the node fails with PD_ESYS "the node process could not start:
    ..." saying what failed (the program missing, a library that does not
    load, ...) and what to do. A failure before the function runs (the
    module does not load, the bind fails, neighbours do not connect within
    start_ms) is a `result` too.
*/
#ifndef PD_NODEPROC_H
#define PD_NODEPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_NODEPROC_MAX_PROGRESS 65536 /* bytes of one progress report; larger ones are dropped */
#define PD_NODEPROC_LINGER_MS 10000 /* a process still alive this long after its result is killed */

typedef struct pd_nodeproc pd_nodeproc_t;

/* Where a node's progress goes. Called from pd_nodeproc_on_readable only; nd is
   borrowed for the call. */
typedef struct {
    void (*bound)(void *user, pd_nodeproc_t *nd, const char *endpoint, const char *key);
    void (*ready)(void *user, pd_nodeproc_t *nd);
    /* The node ended: ok with its result value, or not with an error map
       {code, msg}. Comes once. */
    void (*result)(void *user, pd_nodeproc_t *nd, bool ok, const uint8_t *val, size_t len,
                   uint64_t us);
    void *user;
    /* The node reported progress (val: one msgpack value, len <=
       PD_NODEPROC_MAX_PROGRESS); may be NULL. */
    void (*progress)(void *user, pd_nodeproc_t *nd, const uint8_t *val, size_t len);
} pd_nodeproc_sink_t;

typedef struct {
    const char *exe;       /* program to exec (copied) */
    const char *cache_dir; /* module cache (copied) */
    const char *host;      /* host name for messages (copied) */
    const char *log_level; /* passed to the child, or NULL (copied) */
    uint64_t task;         /* task id, for the owner's book-keeping */
    uint32_t node;         /* node index */
    uint64_t attempt;      /* the broker's attempt at starting the task (echoed) */
    int gpu;               /* the worker's GPU the node runs on, or -1 (a CPU node) */
    const char *cuda_visible; /* CUDA_VISIBLE_DEVICES for the process ("" for a CPU node:
                                 it sees no GPU), or NULL to inherit the worker's */
    pd_nodeproc_sink_t sink;   /* where progress goes */
} pd_nodeproc_config_t;

/* Starts a node process and sends it `start` (one encoded message, see
   above, copied). Returns the handle, or NULL with *err set to PD_ESYS (no
   process) or PD_ENOMEM. */
pd_nodeproc_t *pd_nodeproc_new(const pd_nodeproc_config_t *cfg, const void *start, size_t len,
                               int *err);
/* Kills the process (if alive) and reaps it, without a report; frees the
   handle; sets *p to NULL; safe twice. */
void pd_nodeproc_destroy(pd_nodeproc_t **p);

/* The fd to poll for reading, or -1 once the node has ended. */
int pd_nodeproc_fd(const pd_nodeproc_t *nd);
/* Reads what the process wrote and reports it; handles its death. */
void pd_nodeproc_on_readable(pd_nodeproc_t *nd);
/* Sends the neighbours' endpoints (peers: msgpack [[node, ep], ...],
   copied) and GO. Return 0, or PD_ESYS when the process is gone (its death
   is reported through the sink at the next read). */
int pd_nodeproc_send_peers(pd_nodeproc_t *nd, const void *peers, size_t len);
int pd_nodeproc_send_go(pd_nodeproc_t *nd);
/* Sends `stop` (once; later calls and a node that ended do nothing): the
   node's pd_node_stopping() turns true. Returns 0, or PD_ESYS as above. */
int pd_nodeproc_send_stop(pd_nodeproc_t *nd);

uint64_t pd_nodeproc_task(const pd_nodeproc_t *nd);
uint32_t pd_nodeproc_index(const pd_nodeproc_t *nd);
/* The worker's GPU the node runs on, or -1. */
int pd_nodeproc_gpu(const pd_nodeproc_t *nd);
/* The broker's attempt at starting the task that this node belongs to. */
uint64_t pd_nodeproc_attempt(const pd_nodeproc_t *nd);
int pd_nodeproc_pid(const pd_nodeproc_t *nd);
/* True once the result was reported. */
bool pd_nodeproc_ended(const pd_nodeproc_t *nd);
/* For an ended node: reaps its process without blocking. Returns true when
   it is gone (then destroy the handle), false while it is still exiting; a
   process still alive PD_NODEPROC_LINGER_MS after its result is killed. */
bool pd_nodeproc_reap(pd_nodeproc_t *nd);

/* The child's entry point: reads START and runs the node. Returns the exit
   status for main(). argv as built by pd_nodeproc_new(). */
int pd_nodeproc_main(int argc, char **argv);
/* True when argv is a node child's command line (argv[1] is "--node"). */
bool pd_nodeproc_is_child(int argc, char **argv);

#endif
