/*  pd_proto_defs: every Playdoh wire message, declared once.

    This table is the protocol. common/pd_proto.h turns each entry into a C
    struct (pd_m_NAME_t), a descriptor (pd_proto_NAME) and an encode/decode
    pair (pd_m_NAME_encode, pd_m_NAME_decode); tests/test_pd_proto.c checks
    that docs/protocol.md lists the same messages and fields.

    A message:  X(NAME, "type", "doc heading", FIELDS)
      NAME     the C name (unique); several messages may share a type string
               when they travel on different sockets or directions ("welcome"
               to a client and to a worker; "cluster" asked and answered)
      "type"   the "t" string on the wire
      heading  the section of docs/protocol.md whose tables list it
      FIELDS   a macro FIELDS(F, NAME) expanding to its fields

    A field:    F(NAME, field, KIND, PRESENCE, BOUND)
      KIND      C member             on the wire
      UINT      uint64_t             non-negative integer; BOUND: largest value (0: any)
      INT       int64_t              integer
      DOUBLE    double               float or integer
      BOOL      bool                 true/false
      STR       char field[BOUND]    str, copied NUL-terminated; longer is PD_ETOOBIG
      TEXT      pd_str_t             str, borrowed from the frame (long sentences, paths)
      BIN       pd_bin_t             bin (str accepted on reading); BOUND: most bytes (0: any)
      RAW       pd_raw_t             any msgpack value, kept as its bytes
      ARRAY     pd_raw_t             an array, kept as its bytes; BOUND: most elements (0: any)
      MAP       pd_raw_t             a map, kept as its bytes
      PRESENCE  REQ: must be there (else PD_ENOFIELD), always written;
                DEF: may be absent (then zero, "" or empty), always written;
                OPT: may be absent; the struct has `bool has_field`, and the
                field is written only when it is set.

    Nested records stay raw msgpack, read and written by their owners with
    pd_rd_* and the packer (pd_raw_t can take a packing callback): ranges of
    ids (`ids`), submit's `args`, fetch's `res`, cluster's `workers` and
    `owners`, ready's `gpu_info`/`gpu_names`/`limits`, run's `jobs`/`clients`,
    done's `res`, requeue's `jobs`, task_submit's `tubes`/`edges`/`args`,
    node_start's and start's `arg`/`tubes`/`out`/`in`, node_peers' `peers`,
    every `val`, task_result's `error`/`nodes`, task_states' `st`. The
    optimisation payloads (optim/pd_optim_wire.c) are task values, not
    messages: they travel inside `arg`, `val` and the results.
*/
#ifndef PD_PROTO_DEFS_H
#define PD_PROTO_DEFS_H

/* String caps (bytes with the NUL), the largest any side of the wire reads. */
#define PD_P_HASH  65  /* a module's SHA-256 or a blob's BLAKE2b-256: 64 hex digits */
#define PD_P_NAME  256 /* module, function, host names */
#define PD_P_KEY   41  /* a Z85 public key (40 characters) */
#define PD_P_CODE  32  /* a PD_E* name */
#define PD_P_SHORT 16  /* versions, idle-policy states */
#define PD_P_EP    320 /* a node's endpoint, tcp://ADDR:PORT */

/* ---- client -> broker: every request carries these ---------------------- */
#define PD_F_REQUEST(F, T)                  \
    F(T, req, UINT, DEF, 0)                 \
    F(T, owner_token, BIN, OPT, 0)

#define PD_F_HELLO(F, T) PD_F_REQUEST(F, T)
#define PD_F_WELCOME(F, T)                  \
    F(T, req, UINT, DEF, 0)                 \
    F(T, version, UINT, DEF, 0)             \
    F(T, name, STR, DEF, 64)                \
    F(T, workers, UINT, DEF, 0)             \
    F(T, slots, UINT, DEF, 0)               \
    F(T, gpus, UINT, DEF, 0)                \
    F(T, max_shared, UINT, DEF, 0)          \
    F(T, max_arg, UINT, DEF, 0)             \
    F(T, max_batch, UINT, DEF, 0)           \
    PD_F_JOURNAL(F, T)
#define PD_F_JOURNAL(F, T)                  \
    F(T, journal, TEXT, DEF, 0)             \
    F(T, journal_bytes, UINT, DEF, 0)       \
    F(T, journal_max_bytes, UINT, DEF, 0)   \
    F(T, journal_ok, BOOL, OPT, 0)
#define PD_F_MOD_HAS(F, T)                  \
    PD_F_REQUEST(F, T)                      \
    F(T, hash, STR, REQ, PD_P_HASH)
#define PD_F_MOD_PUT(F, T)                  \
    PD_F_REQUEST(F, T)                      \
    F(T, hash, STR, REQ, PD_P_HASH)         \
    F(T, name, STR, REQ, PD_P_NAME)         \
    F(T, kind, STR, REQ, 8)                 \
    F(T, data, BIN, REQ, 0)
#define PD_F_HAS_OK(F, T)                   \
    F(T, req, UINT, DEF, 0)                 \
    F(T, hash, STR, REQ, PD_P_HASH)         \
    F(T, has, BOOL, REQ, 0)
#define PD_F_SUBMIT(F, T)                   \
    PD_F_REQUEST(F, T)                      \
    F(T, mod, STR, REQ, PD_P_HASH)          \
    F(T, fn, STR, REQ, PD_P_NAME)           \
    F(T, args, RAW, REQ, 0)                 \
    F(T, timeout_ms, UINT, OPT, 0)          \
    F(T, retries, UINT, OPT, 0)             \
    F(T, retry_failed, UINT, OPT, 0)        \
    F(T, max_slots, UINT, OPT, 0)           \
    F(T, shared, STR, OPT, PD_P_HASH)       \
    F(T, gpu, BOOL, OPT, 0)                 \
    F(T, cu, STR, OPT, PD_P_HASH)           \
    F(T, memory, UINT, OPT, 0)              \
    F(T, cpu_time, UINT, OPT, 0)            \
    F(T, max_output, UINT, OPT, 0)          \
    F(T, token, BIN, OPT, 0)                \
    F(T, at, UINT, OPT, 0)                  \
    F(T, batch_bytes, UINT, OPT, 0)
#define PD_F_ACCEPTED(F, T)                 \
    F(T, req, UINT, DEF, 0)                 \
    F(T, first, UINT, REQ, 0)               \
    F(T, n, UINT, REQ, 0)
#define PD_F_IDS(F, T)                      \
    PD_F_REQUEST(F, T)                      \
    F(T, ids, RAW, REQ, 0)
#define PD_F_STATES(F, T)                   \
    F(T, req, UINT, DEF, 0)                 \
    F(T, st, BIN, REQ, 0)
#define PD_F_FETCH(F, T)                    \
    PD_F_IDS(F, T)                          \
    F(T, wait_ms, UINT, DEF, 0)             \
    F(T, max, UINT, DEF, 0)                 \
    F(T, states, BOOL, OPT, 0)
#define PD_F_RESULTS(F, T)                  \
    F(T, req, UINT, DEF, 0)                 \
    F(T, res, ARRAY, REQ, 0)                \
    F(T, st, BIN, OPT, 0)
#define PD_F_SHR_PUT(F, T)                  \
    PD_F_REQUEST(F, T)                      \
    F(T, hash, STR, REQ, PD_P_HASH)         \
    F(T, data, BIN, REQ, 0)
#define PD_F_COUNT(F, T)                    \
    F(T, req, UINT, DEF, 0)                 \
    F(T, n, UINT, DEF, 0)
#define PD_F_CLUSTER_INFO(F, T)             \
    F(T, req, UINT, DEF, 0)                 \
    F(T, version, STR, OPT, PD_P_SHORT)     \
    F(T, name, STR, DEF, 64)                \
    F(T, cluster, STR, DEF, 64)             \
    F(T, queued, UINT, DEF, 0)              \
    F(T, unfinished, UINT, DEF, 0)          \
    F(T, workers, ARRAY, REQ, 0)            \
    F(T, owners, ARRAY, OPT, 0)
#define PD_F_GC(F, T)                       \
    PD_F_REQUEST(F, T)                      \
    F(T, ttl_s, UINT, OPT, 0)
#define PD_F_GC_DONE(F, T)                  \
    F(T, req, UINT, DEF, 0)                 \
    F(T, forgot, UINT, DEF, 0)              \
    PD_F_JOURNAL(F, T)
/* Any request's (and the worker control socket's) refusal. */
#define PD_F_ERROR(F, T)                    \
    F(T, req, UINT, OPT, 0)                 \
    F(T, code, STR, REQ, PD_P_CODE)         \
    F(T, msg, TEXT, REQ, 0)

/* ---- synchronous tasks, client -> broker -------------------------------- */
#define PD_F_TASK_SUBMIT(F, T)              \
    PD_F_REQUEST(F, T)                      \
    F(T, mod, STR, REQ, PD_P_HASH)          \
    F(T, fn, STR, REQ, PD_P_NAME)           \
    F(T, n, UINT, REQ, 0)                   \
    F(T, tubes, RAW, REQ, 0)                \
    F(T, edges, RAW, REQ, 0)                \
    F(T, args, RAW, OPT, 0)                 \
    F(T, io_ms, UINT, OPT, 0)               \
    F(T, start_ms, UINT, OPT, 0)            \
    F(T, timeout_ms, UINT, OPT, 0)          \
    F(T, window, UINT, OPT, 0)              \
    F(T, window_bytes, UINT, OPT, 0)        \
    F(T, gpu, BOOL, OPT, 0)                 \
    F(T, cu, STR, OPT, PD_P_HASH)
#define PD_F_TASK_ID(F, T)                  \
    F(T, req, UINT, DEF, 0)                 \
    F(T, id, UINT, REQ, 0)
#define PD_F_TASK_STATES(F, T)              \
    F(T, req, UINT, DEF, 0)                 \
    F(T, st, ARRAY, REQ, 0)
#define PD_F_TASK_FETCH(F, T)               \
    PD_F_REQUEST(F, T)                      \
    F(T, id, UINT, REQ, 0)                  \
    F(T, wait_ms, UINT, DEF, 0)             \
    F(T, from, UINT, DEF, 0)
#define PD_F_TASK_RESULT(F, T)              \
    F(T, req, UINT, DEF, 0)                 \
    F(T, id, UINT, REQ, 0)                  \
    F(T, state, UINT, REQ, 0)               \
    F(T, n, UINT, OPT, 0)                   \
    F(T, ended, UINT, OPT, 0)               \
    F(T, error, RAW, OPT, 0)                \
    F(T, nodes, ARRAY, OPT, 0)              \
    F(T, next, UINT, OPT, 0)
#define PD_F_TASK_PROGRESS(F, T)            \
    PD_F_REQUEST(F, T)                      \
    F(T, id, UINT, REQ, 0)
#define PD_F_TASK_REPORT(F, T)              \
    F(T, req, UINT, DEF, 0)                 \
    F(T, id, UINT, REQ, 0)                  \
    F(T, state, UINT, REQ, 0)               \
    F(T, seq, UINT, DEF, 0)                 \
    F(T, val, RAW, REQ, 0)

/* ---- worker <-> broker: jobs --------------------------------------------- */
/* The worker's state, in `ready` and `hb`. */
#define PD_F_WORKER_STATE(F, T)             \
    F(T, busy, UINT, OPT, 0)                \
    F(T, queued, UINT, OPT, 0)              \
    F(T, load, DOUBLE, OPT, 0)              \
    F(T, owner, STR, OPT, PD_P_SHORT)
#define PD_F_READY(F, T)                    \
    F(T, host, STR, DEF, PD_P_NAME)         \
    F(T, pid, UINT, DEF, 0)                 \
    F(T, cpus, UINT, REQ, 0)                \
    F(T, gpus, UINT, DEF, 0)                \
    F(T, platform, STR, DEF, 32)            \
    F(T, version, STR, DEF, PD_P_SHORT)     \
    F(T, gpu_names, ARRAY, OPT, 0)          \
    F(T, gpu_info, ARRAY, OPT, 0)           \
    PD_F_WORKER_STATE(F, T)                 \
    F(T, slurm_job, STR, OPT, 32)           \
    F(T, slurm_step, STR, OPT, 32)          \
    F(T, slurm_array, STR, OPT, 48)         \
    F(T, limits, MAP, OPT, 0)
#define PD_F_WORKER_WELCOME(F, T)           \
    F(T, hb_ms, UINT, OPT, 0)               \
    F(T, liveness, UINT, OPT, 0)
#define PD_F_SLOTS(F, T)                    \
    F(T, cpus, UINT, REQ, 0)                \
    F(T, gpus, UINT, DEF, 0)
#define PD_F_REQUEUE(F, T)                  \
    F(T, jobs, ARRAY, REQ, 0)               \
    F(T, stolen, BOOL, OPT, 0)
#define PD_F_STEAL(F, T)                    \
    F(T, n, UINT, REQ, 0)                   \
    F(T, gpu, BOOL, OPT, 0)
#define PD_F_MOD(F, T)                      \
    F(T, hash, STR, REQ, PD_P_HASH)         \
    F(T, name, STR, DEF, PD_P_NAME)         \
    F(T, kind, STR, REQ, 8)                 \
    F(T, data, BIN, REQ, 0)                 \
    F(T, client, STR, OPT, PD_P_KEY)
#define PD_F_SHR(F, T)                      \
    F(T, hash, STR, REQ, PD_P_HASH)         \
    F(T, data, BIN, REQ, 0)
#define PD_F_HASH(F, T) F(T, hash, STR, REQ, PD_P_HASH)
#define PD_F_RUN(F, T)                      \
    F(T, jobs, ARRAY, REQ, 0)               \
    F(T, clients, ARRAY, OPT, 0)
#define PD_F_DONE(F, T) F(T, res, ARRAY, REQ, 0)
#define PD_F_WORKER_CANCEL(F, T) F(T, ids, ARRAY, REQ, 0)
#define PD_F_NONE(F, T)

/* ---- broker <-> worker: nodes of synchronous tasks ----------------------- */
#define PD_F_NODE(F, T)                     \
    F(T, task, UINT, REQ, 0)                \
    F(T, node, UINT, REQ, 0)
#define PD_F_NODE_TRY(F, T)                 \
    PD_F_NODE(F, T)                         \
    F(T, try, UINT, DEF, 0)
#define PD_F_NODE_START(F, T)               \
    PD_F_NODE_TRY(F, T)                     \
    F(T, n, UINT, REQ, 0)                   \
    F(T, mod, STR, REQ, PD_P_HASH)          \
    F(T, fn, STR, REQ, PD_P_NAME)           \
    F(T, arg, RAW, REQ, 0)                  \
    F(T, tubes, RAW, REQ, 0)                \
    F(T, out, RAW, REQ, 0)                  \
    F(T, in, RAW, REQ, 0)                   \
    F(T, io_ms, UINT, OPT, 0)               \
    F(T, start_ms, UINT, OPT, 0)            \
    F(T, window, UINT, OPT, 0)              \
    F(T, window_bytes, UINT, OPT, 0)        \
    F(T, client, STR, OPT, PD_P_KEY)        \
    F(T, gpu, BOOL, OPT, 0)                 \
    F(T, cu, STR, OPT, PD_P_HASH)
#define PD_F_NODE_BOUND(F, T)               \
    PD_F_NODE_TRY(F, T)                     \
    F(T, ep, STR, REQ, PD_P_EP)             \
    F(T, key, STR, OPT, PD_P_KEY)
#define PD_F_NODE_PEERS(F, T)               \
    PD_F_NODE(F, T)                         \
    F(T, peers, ARRAY, REQ, 0)
#define PD_F_NODE_DONE(F, T)                \
    PD_F_NODE_TRY(F, T)                     \
    F(T, ok, BOOL, REQ, 0)                  \
    F(T, val, RAW, REQ, 0)                  \
    F(T, us, UINT, DEF, 0)
#define PD_F_NODE_PROGRESS(F, T)            \
    PD_F_NODE_TRY(F, T)                     \
    F(T, val, RAW, REQ, 0)
#define PD_F_TASK(F, T) F(T, task, UINT, REQ, 0)

/* ---- the worker's control socket ----------------------------------------- */
/* token first: a request whose token cannot be read is refused for that
   (PD_EAUTH) before its other fields are judged. */
#define PD_F_CTL(F, T)                      \
    F(T, token, STR, OPT, 65)               \
    F(T, cpus, UINT, OPT, 0)                \
    F(T, gpus, UINT, OPT, 0)                \
    F(T, now, BOOL, OPT, 0)
#define PD_F_CTL_OK(F, T)                   \
    F(T, id, STR, DEF, 32)                  \
    F(T, host, STR, DEF, PD_P_NAME)         \
    F(T, broker, TEXT, DEF, 0)              \
    F(T, registered, BOOL, DEF, 0)          \
    F(T, cpus, UINT, DEF, 0)                \
    F(T, gpus, UINT, DEF, 0)                \
    F(T, offered, UINT, DEF, 0)             \
    F(T, slots, UINT, DEF, 0)               \
    F(T, down, UINT, DEF, 0)                \
    F(T, busy, UINT, DEF, 0)                \
    F(T, queued, UINT, DEF, 0)              \
    F(T, done, UINT, DEF, 0)                \
    F(T, requeued, UINT, DEF, 0)            \
    F(T, owner, BOOL, DEF, 0)               \
    F(T, load, DOUBLE, DEF, 0)

/* ---- worker <-> node process (over its pipe) ----------------------------- */
#define PD_F_NP_START(F, T)                 \
    PD_F_NODE(F, T)                         \
    F(T, n, UINT, REQ, 0)                   \
    F(T, mod, STR, REQ, PD_P_HASH)          \
    F(T, kind, STR, REQ, 4)                 \
    F(T, name, STR, REQ, 128)               \
    F(T, fn, STR, REQ, 128)                 \
    F(T, arg, RAW, REQ, 0)                  \
    F(T, addr, STR, REQ, PD_P_NAME)         \
    F(T, tubes, ARRAY, REQ, 0)              \
    F(T, out, ARRAY, REQ, 0)                \
    F(T, in, ARRAY, REQ, 0)                 \
    F(T, io_ms, UINT, OPT, 0)               \
    F(T, start_ms, UINT, OPT, 0)            \
    F(T, window, UINT, OPT, 0)              \
    F(T, window_bytes, UINT, OPT, 0)        \
    F(T, curve, BOOL, OPT, 0)               \
    F(T, gpu, UINT, OPT, 0)                 \
    F(T, cu, STR, OPT, PD_P_HASH)           \
    F(T, cu_name, STR, OPT, 128)
#define PD_F_NP_BOUND(F, T)                 \
    F(T, ep, STR, REQ, PD_P_EP)             \
    F(T, key, STR, OPT, PD_P_KEY)
#define PD_F_NP_PEERS(F, T) F(T, peers, ARRAY, REQ, 0)
#define PD_F_NP_PROGRESS(F, T) F(T, val, RAW, REQ, 0)
#define PD_F_NP_RESULT(F, T)                \
    F(T, ok, BOOL, REQ, 0)                  \
    F(T, val, RAW, REQ, 0)                  \
    F(T, us, UINT, DEF, 0)

/* The doc headings. */
#define PD_DOC_CLIENT "Client → broker"
#define PD_DOC_WORKER "Worker ↔ broker"
#define PD_DOC_NODES  "Broker ↔ worker"
#define PD_DOC_CTL    "Worker control socket"
#define PD_DOC_NP     "Worker ↔ slot process, worker ↔ node process"

/* Every message. */
#define PD_PROTO_MESSAGES(X)                                                   \
    X(hello, "hello", PD_DOC_CLIENT, PD_F_HELLO)                               \
    X(welcome, "welcome", PD_DOC_CLIENT, PD_F_WELCOME)                         \
    X(mod_has, "mod_has", PD_DOC_CLIENT, PD_F_MOD_HAS)                         \
    X(mod_put, "mod_put", PD_DOC_CLIENT, PD_F_MOD_PUT)                         \
    X(mod_ok, "mod_ok", PD_DOC_CLIENT, PD_F_HAS_OK)                            \
    X(submit, "submit", PD_DOC_CLIENT, PD_F_SUBMIT)                            \
    X(accepted, "accepted", PD_DOC_CLIENT, PD_F_ACCEPTED)                      \
    X(status, "status", PD_DOC_CLIENT, PD_F_IDS)                               \
    X(states, "states", PD_DOC_CLIENT, PD_F_STATES)                            \
    X(fetch, "fetch", PD_DOC_CLIENT, PD_F_FETCH)                               \
    X(results, "results", PD_DOC_CLIENT, PD_F_RESULTS)                         \
    X(shr_has, "shr_has", PD_DOC_CLIENT, PD_F_MOD_HAS)                         \
    X(shr_put, "shr_put", PD_DOC_CLIENT, PD_F_SHR_PUT)                         \
    X(shr_ok, "shr_ok", PD_DOC_CLIENT, PD_F_HAS_OK)                            \
    X(cancel, "cancel", PD_DOC_CLIENT, PD_F_IDS)                               \
    X(cancelled, "cancelled", PD_DOC_CLIENT, PD_F_COUNT)                       \
    X(release, "release", PD_DOC_CLIENT, PD_F_IDS)                             \
    X(released, "released", PD_DOC_CLIENT, PD_F_COUNT)                         \
    X(cluster, "cluster", PD_DOC_CLIENT, PD_F_HELLO)                           \
    X(cluster_info, "cluster", PD_DOC_CLIENT, PD_F_CLUSTER_INFO)               \
    X(gc, "gc", PD_DOC_CLIENT, PD_F_GC)                                        \
    X(gc_done, "gc_done", PD_DOC_CLIENT, PD_F_GC_DONE)                         \
    X(error, "error", PD_DOC_CLIENT, PD_F_ERROR)                               \
    X(task_submit, "task_submit", PD_DOC_CLIENT, PD_F_TASK_SUBMIT)             \
    X(task_accepted, "task_accepted", PD_DOC_CLIENT, PD_F_TASK_ID)             \
    X(task_status, "task_status", PD_DOC_CLIENT, PD_F_IDS)                     \
    X(task_states, "task_states", PD_DOC_CLIENT, PD_F_TASK_STATES)             \
    X(task_fetch, "task_fetch", PD_DOC_CLIENT, PD_F_TASK_FETCH)                \
    X(task_result, "task_result", PD_DOC_CLIENT, PD_F_TASK_RESULT)             \
    X(task_cancel, "task_cancel", PD_DOC_CLIENT, PD_F_IDS)                     \
    X(task_cancelled, "task_cancelled", PD_DOC_CLIENT, PD_F_COUNT)             \
    X(task_stop, "task_stop", PD_DOC_CLIENT, PD_F_IDS)                         \
    X(task_stopping, "task_stopping", PD_DOC_CLIENT, PD_F_COUNT)               \
    X(task_release, "task_release", PD_DOC_CLIENT, PD_F_IDS)                   \
    X(task_released, "task_released", PD_DOC_CLIENT, PD_F_COUNT)               \
    X(task_progress, "task_progress", PD_DOC_CLIENT, PD_F_TASK_PROGRESS)       \
    X(task_report, "task_report", PD_DOC_CLIENT, PD_F_TASK_REPORT)             \
    X(ready, "ready", PD_DOC_WORKER, PD_F_READY)                               \
    X(w_welcome, "welcome", PD_DOC_WORKER, PD_F_WORKER_WELCOME)                \
    X(hb, "hb", PD_DOC_WORKER, PD_F_WORKER_STATE)                              \
    X(slots, "slots", PD_DOC_WORKER, PD_F_SLOTS)                               \
    X(requeue, "requeue", PD_DOC_WORKER, PD_F_REQUEUE)                         \
    X(steal, "steal", PD_DOC_WORKER, PD_F_STEAL)                               \
    X(mod, "mod", PD_DOC_WORKER, PD_F_MOD)                                     \
    X(shr, "shr", PD_DOC_WORKER, PD_F_SHR)                                     \
    X(shr_drop, "shr_drop", PD_DOC_WORKER, PD_F_HASH)                          \
    X(run, "run", PD_DOC_WORKER, PD_F_RUN)                                     \
    X(done, "done", PD_DOC_WORKER, PD_F_DONE)                                  \
    X(w_cancel, "cancel", PD_DOC_WORKER, PD_F_WORKER_CANCEL)                   \
    X(reset, "reset", PD_DOC_WORKER, PD_F_NONE)                                \
    X(bye, "bye", PD_DOC_WORKER, PD_F_NONE)                                    \
    X(node_start, "node_start", PD_DOC_NODES, PD_F_NODE_START)                 \
    X(node_bound, "node_bound", PD_DOC_NODES, PD_F_NODE_BOUND)                 \
    X(node_peers, "node_peers", PD_DOC_NODES, PD_F_NODE_PEERS)                 \
    X(node_ready, "node_ready", PD_DOC_NODES, PD_F_NODE_TRY)                   \
    X(node_go, "node_go", PD_DOC_NODES, PD_F_NODE)                             \
    X(node_done, "node_done", PD_DOC_NODES, PD_F_NODE_DONE)                    \
    X(node_stop, "node_stop", PD_DOC_NODES, PD_F_TASK)                         \
    X(node_abort, "node_abort", PD_DOC_NODES, PD_F_TASK)                       \
    X(node_progress, "node_progress", PD_DOC_NODES, PD_F_NODE_PROGRESS)        \
    X(ctl, "ctl", PD_DOC_CTL, PD_F_CTL)                                        \
    X(ctl_ok, "ctl_ok", PD_DOC_CTL, PD_F_CTL_OK)                               \
    X(np_up, "up", PD_DOC_NP, PD_F_NONE)                                       \
    X(np_start, "start", PD_DOC_NP, PD_F_NP_START)                             \
    X(np_bound, "bound", PD_DOC_NP, PD_F_NP_BOUND)                             \
    X(np_peers, "peers", PD_DOC_NP, PD_F_NP_PEERS)                             \
    X(np_ready, "ready", PD_DOC_NP, PD_F_NONE)                                 \
    X(np_go, "go", PD_DOC_NP, PD_F_NONE)                                       \
    X(np_progress, "progress", PD_DOC_NP, PD_F_NP_PROGRESS)                    \
    X(np_result, "result", PD_DOC_NP, PD_F_NP_RESULT)                          \
    X(np_stop, "stop", PD_DOC_NP, PD_F_NONE)

#endif
