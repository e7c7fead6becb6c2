/*  pd_broker: the Playdoh broker, the rendezvous of clients and workers.

    One object owns the ROUTER socket, the job table (pd_jobs), the module
    store (pd_mods), the worker registry (pd_workers), the journal
    (pd_journal, optional) and the parked fetches. pd_broker_run() is the
    event loop: it polls the socket with a time-out for heartbeat ticks,
    reads [routing id][payload] frames, hands each parsed message to its
    handler (pd_broker_client.c, pd_broker_worker.c), commits the journal
    once for the whole batch and only then sends the replies (group commit),
    then dispatches queued jobs to workers with credit and answers parked
    fetches that completions touched. docs/protocol.md is the contract it
    serves.

        pd_broker_config_t cfg;
        pd_broker_config_defaults(&cfg);
        cfg.bind = "tcp://127.0.0.1:*";
        pd_broker_t *b = pd_broker_new(&cfg, NULL);
        printf("%s\n", pd_broker_endpoint(b));
        pd_broker_run(b);            // until pd_broker_stop()
        pd_broker_destroy(&b);
*/
#ifndef PD_BROKER_H
#define PD_BROKER_H

#include "pd_auth.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *bind;     /* endpoint to bind ("tcp://127.0.0.1:5555"; port * or 0 = any) */
    const char *name;     /* name announced in `welcome` (NULL = host name) */
    uint32_t hb_ms;       /* heartbeat interval given to workers */
    uint32_t liveness;    /* silent intervals before a worker is dead */
    uint64_t max_jobs;    /* unfinished jobs held at most */
    uint32_t result_ttl_s;/* seconds a result is kept after its first fetch */
    pd_sec_mode_t security; /* AUTO: CurveZMQ unless bind is loopback; CURVE; NONE */
    const char *config_dir; /* where id.key and allowed/ are (NULL: pd_auth_config_dir()) */
    const char *key_file;   /* the broker's key pair (NULL: <config_dir>/id.key) */
    const char *allow_dir;  /* admitted keys (NULL: <config_dir>/allowed) */
    uint64_t max_shared;  /* bytes of one shared-data blob at most (0 = default) */
    uint64_t shared_store;/* bytes of all shared data at most (0 = default) */
    uint64_t max_arg;     /* bytes of one job's argument at most (0 = default) */
    uint64_t max_batch;   /* bytes of one submit call's arguments at most (0 = default) */
    uint64_t max_queued;  /* bytes of the arguments of all unfinished jobs (0 = default) */
    const char *cluster;  /* cluster name announced in beacons (NULL = "playdoh") */
    bool beacon;          /* announce the broker with a UDP beacon (when not on loopback) */
    int beacon_port;      /* UDP port of the beacon */
    int beacon_interval_ms; /* beacon interval */
    const char *beacon_iface; /* interface for the beacon (NULL = CZMQ's choice) */
    const char *journal;  /* journal file (NULL = none: jobs and results live in memory only) */
    int journal_sync;     /* PD_BROKER_SYNC_* (below) */
    uint64_t journal_max_bytes; /* journal size past which submits are refused (0 = none) */
    bool journal_reset;   /* move an existing journal aside and start empty */
} pd_broker_config_t;

#define PD_BROKER_DEFAULT_BIND "tcp://127.0.0.1:5555"
#define PD_BROKER_DEFAULT_HB_MS 1000u
#define PD_BROKER_DEFAULT_LIVENESS 3u
#define PD_BROKER_DEFAULT_TTL_S 3600u
#define PD_BROKER_DEFAULT_MAX_ARG (16ull << 20)   /* one job's argument */
#define PD_BROKER_DEFAULT_MAX_BATCH (1ull << 30)  /* one submit call's arguments */
#define PD_BROKER_LIMIT_MAX_ARG (200ull << 20)    /* the most max_arg may be: a frame */
#define PD_BROKER_MAX_PARKED 1024u        /* parked fetches at most */
#define PD_BROKER_RUN_CHUNK 1024u         /* jobs per `run` message at most */
#define PD_BROKER_REPLY_BYTES (8u << 20)  /* soft cap on fetch replies and runs */
#define PD_BROKER_FETCH_MAX 10000u        /* default `max` of a fetch */
#define PD_BROKER_DEFAULT_JOURNAL_MAX (8ull << 30) /* journal bytes before submits are refused */
/* journal_sync values (pd_journal_sync_t, without its header): */
#define PD_BROKER_SYNC_OFF 0    /* no fsync: survives a broker crash, not a power cut */
#define PD_BROKER_SYNC_NORMAL 1 /* fsync at checkpoints */
#define PD_BROKER_SYNC_FULL 2   /* fsync every commit (the default) */
#define PD_BROKER_OUTBOX_BYTES (64u << 20) /* replies held for a commit before committing early */
#define PD_BROKER_OUTBOX_MSGS 16384u       /* ... or this many */

typedef struct pd_broker pd_broker_t;

/* Fills cfg with the defaults above (beacon on, port PD_BEACON_DEFAULT_PORT). */
void pd_broker_config_defaults(pd_broker_config_t *cfg);
/* The default journal path (pd_journal_default_path: $STATE_DIRECTORY under
   systemd, /var/lib/playdoh for root, else the XDG state directory) into
   out. Returns 0, or PD_EINVAL when there is none (no HOME). */
int pd_broker_default_journal(char *out, size_t cap);

/* Creates the broker, opens and recovers its journal (when configured) and
   binds its socket. With CURVE (any network endpoint, unless security is
   NONE) it loads its key pair, starts the ZAP handler over the allow-list
   and makes the socket a CURVE server; with NONE on a network endpoint it
   logs a warning. Returns NULL on failure (no key pair: PD_ENOKEY; bind
   refused: PD_EIO; journal damaged, in use or unwritable; out of memory),
   with *err (when given) set to a PD_E* code and the reason logged, saying
   what to do. The config is copied. */
pd_broker_t *pd_broker_new(const pd_broker_config_t *cfg, int *err);
/* Frees everything (what is not journalled is dropped), commits and closes
   the journal, closes the socket. Safe on NULL; sets *p to NULL. */
void pd_broker_destroy(pd_broker_t **p);

/* True when the broker announces itself with a beacon (it was asked to and
   binds more than loopback). */
bool pd_broker_beaconing(const pd_broker_t *b);

/* The endpoint actually bound (the port resolved); borrowed. */
const char *pd_broker_endpoint(const pd_broker_t *b);

/* Binds the broker's socket to one more endpoint (an inproc:// endpoint for a
   worker running in the same process). Returns 0 or PD_EIO (logged). */
int pd_broker_bind_also(pd_broker_t *b, const char *endpoint);
/* The broker's ZeroMQ context, borrowed: inproc peers must share it. */
void *pd_broker_zmq_ctx(pd_broker_t *b);

/* Runs the event loop until pd_broker_stop(). Returns 0, or PD_ESYS when the
   socket fails. */
int pd_broker_run(pd_broker_t *b);
/* Asks the loop to return within one tick. Safe from a signal handler or
   another thread. */
void pd_broker_stop(pd_broker_t *b);
/* Asks the loop to read the allow-list again at its next tick (SIGHUP).
   Safe from a signal handler or another thread. */
void pd_broker_reload(pd_broker_t *b);
/* True when the broker runs CurveZMQ; its public key (Z85) is then in key
   (PD_KEY_TXT bytes) when key is not NULL. */
bool pd_broker_secure(const pd_broker_t *b, char *key);

/* Counters, for tests and the exit log line. */
typedef struct {
    uint64_t msgs_in;       /* messages received */
    uint64_t msgs_out;      /* messages sent */
    uint64_t malformed;     /* messages answered with error */
    uint64_t dropped;       /* frames with a wrong number of parts */
    uint64_t unroutable;    /* sends that failed (peer gone or full) */
    uint64_t stale;         /* results dropped as stale or duplicate */
    uint64_t workers_lost;  /* workers declared dead */
    uint64_t refused_role;  /* messages refused: the key's role does not allow them */
    uint64_t handshakes_failed; /* connections refused during the handshake */
    uint64_t bytes_in;      /* payload bytes received (routing ids not counted) */
    uint64_t bytes_out;     /* payload bytes sent */
    uint64_t held;          /* replies held back until a journal commit */
    uint64_t refused_journal; /* submits refused because the journal failed or is full */
} pd_broker_stats_t;
/* Copies the counters; call from the loop's thread or after it stopped. */
void pd_broker_stats(const pd_broker_t *b, pd_broker_stats_t *out);

#endif
