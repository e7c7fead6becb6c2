/*  pd_broker_root.h: the broker's root object itself, for pd_broker.c (the
    loop) and white-box tests and fuzzing. The handlers never see it: they
    use pd_broker_int.h's functions.
*/
#ifndef PD_BROKER_ROOT_H
#define PD_BROKER_ROOT_H

#include "pd_broker_int.h"

struct pd_broker {
    pd_broker_config_t cfg;    /* copy of the configuration (strings below) */
    char bind[256];            /* configured endpoint */
    char name[64];             /* name announced in welcome */
    char cluster[PD_BEACON_NAME_MAX + 1]; /* cluster name (beacons, `cluster` replies) */
    char beacon_iface[64];     /* interface for the beacon ("" = CZMQ's choice) */
    pd_beacon_pub_t *beacon;   /* the beacon publisher, or NULL (owned) */
    char endpoint[256];        /* endpoint actually bound */
    void *ctx;                 /* ZeroMQ context (owned) */
    void *sock;                /* ROUTER socket (owned) */
    void *mon;                 /* PAIR receiving the socket's handshake events (owned) */
    bool secure;               /* the socket runs CurveZMQ */
    pd_keypair_t key;          /* the broker's key pair (secure only) */
    char allow_dir[4096];      /* the allow-list directory (secure only) */
    pd_zap_t *zap;             /* ZAP handler over the allow-list (secure only, owned) */
    uint64_t zap_generation;   /* allow-list generation the workers were checked against */
    atomic_bool reload;        /* set by pd_broker_reload */
    pd_log_limit_t refusals;   /* rate of "refused a message" lines */
    pd_log_limit_t handshakes; /* rate of "handshake failed" lines */
    pd_log_limit_t noise;      /* rate of "could not send" and "dropped a message" lines */
    pd_log_limit_t limits_log; /* rate of "no worker allows what a submit asks" lines */
    pd_jobs_t *jobs;           /* the job table */
    pd_mods_t *mods;           /* the module store */
    pd_probes_t *probes;       /* which module functions were seen to load where */
    pd_shared_t *shared;       /* the shared-data store */
    pd_reg_t *workers;         /* the worker registry */
    pd_sched_t *sched;         /* the scheduler's orders (owned) */
    pd_journal_t *journal;     /* the journal (NULL: none) */
    char journal_path[4096];   /* its path (the config's copy) */
    pd_outbox_t *outbox;       /* replies held for the journal, wake lists (owned) */
    pd_tasks_t *tasks;         /* synchronous tasks */
    pd_task_scan_t task_scan;  /* when task deadlines are scanned (pd_broker_task.c) */
    pd_park_t *park;           /* parked fetches of jobs and tasks (owned) */
    pd_buf_t out;              /* reply buffer, reused */
    pd_buf_t aux;              /* second buffer (mod, cancel), reused */
    int64_t start_ms;          /* monotonic ms at creation */
    int64_t now_ms;            /* monotonic ms, updated each loop turn */
    int64_t next_tick;         /* ms of the next heartbeat tick */
    struct pd_snapshot *snap;  /* the dashboard's snapshot (NULL: none) */
    pd_bg_t *bg;               /* work off the loop: hashing uploaded shared data */
    pd_uploads_t uploads;      /* shared data being hashed (pd_broker_client.c) */
    uint64_t arg_trimmed;      /* pd_jobs_arg_freed when the heap was last trimmed */
    atomic_bool stop;          /* set by pd_broker_stop */
    pd_broker_stats_t stats;   /* counters */
};

#endif
