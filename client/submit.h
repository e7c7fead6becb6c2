/*  submit.h: what the parts of playdoh-submit share. submit.c holds main,
    the global options, the table of verbs and the dispatch, the session
    (finding and connecting to the broker) and the helpers several verbs
    use; each verb lives in a file of its own with its options and its
    --help text (a pd_submit_verb_t): submit_map.c map; submit_exec.c exec;
    submit_task.c task, stop and the task ids (t17) of status, results,
    wait and cancel; submit_optim.c optimize, optimize-status and
    optimize-fetch; submit_jobs.c status, results, wait and cancel;
    submit_cluster.c cluster and gc. submit_collect.c follows jobs until
    they end (map, exec, wait); submit_session.c finds the broker, connects
    and uploads modules; submit_io.c reads ids and argument lines and
    writes JSON.

    Every verb handler gets the parsed options and its positional arguments,
    checks its input first, then asks pd_submit_connect() for a
    client, so that bad input is reported without a broker.
*/
#ifndef PD_SUBMIT_H
#define PD_SUBMIT_H

#include "playdoh.h"
#include "pd_error_int.h"
#include "pd_codec.h"
#include "pd_progress.h"

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Options of optimize (and --bounds, --history of optimize-fetch). */
typedef struct {
    const char *algo;        /* --algo pso|ga|cmaes|bipop|de */
    uint32_t dim;            /* --dim D, or 0 (then the bounds file says) */
    const char *bounds;      /* --bounds FILE|LO:HI */
    const char *init;        /* --init FILE|LO:HI, or NULL (the bounds) */
    uint32_t islands;        /* --islands N, or 0 (default 1) */
    uint32_t popsize;        /* --popsize P, or 0 (the algorithm's default) */
    uint64_t budget;         /* --budget EVALS, or 0 */
    uint64_t iterations;     /* --iterations N, or 0 */
    double target;           /* --target F */
    bool target_set;         /* --target was given */
    uint64_t seed;           /* --seed S */
    uint64_t polish;         /* --polish N, or 0 (none) */
    const char *topology;    /* --topology ring|full|star|none|FILE, or NULL (ring) */
    uint32_t migrate_every;  /* --migrate-every K (0: never) */
    bool migrate_every_set;  /* --migrate-every was given */
    uint32_t migrants;       /* --migrants M, or 0 (default 1) */
    uint32_t groups;         /* --groups G, or 0 (default 1) */
    bool maximize;           /* --maximize */
    bool history;            /* --history: each island's best-so-far per iteration */
} pd_submit_optim_opts_t;

/* Options of all verbs (each verb reads its own). */
typedef struct {
    const char *verb;      /* the verb being run */
    const char *broker;    /* --broker, or NULL */
    int local;             /* --local N, or 0 */
    int http;              /* --http PORT: the --local cluster's dashboard, or 0 */
    bool quiet;            /* --quiet: no summary on standard error */
    bool no_progress;      /* --no-progress */
    uint32_t timeout_ms;   /* map, exec: --timeout-ms */
    uint32_t retries;      /* map, exec: --retries (workers a job may lose) */
    uint32_t retry_failed; /* map, exec: --retry-failed (runs again after its own run failed) */
    uint32_t max_slots;    /* map, exec: --max-slots */
    uint64_t memory;       /* map, exec: --memory, bytes (0: not asked) */
    uint64_t cpu_time_s;   /* map, exec: --cpu-time, seconds (0: not asked) */
    uint64_t max_output;   /* map, exec: --max-output, bytes (0: not asked) */
    bool detach;           /* map, exec: --detach */
    const char *shared;    /* map: --shared FILE */
    bool gpu;              /* map: --gpu (a .cu beside a .c module travels too) */
    const char *cuda;      /* map: --cuda FILE.cu, or NULL */
    const char *args_file; /* exec: --args FILE */
    bool keep_order;       /* exec: --keep-order (default) */
    const char *joblog;    /* exec: --joblog FILE */
    bool dry_run;          /* exec: --dry-run */
    const char *workdir;   /* exec: --workdir DIR, or NULL */
    const char *transfer[PD_EXEC_MAX_FILES]; /* exec: --transfer templates */
    size_t ntransfer;
    const char *ret[PD_EXEC_MAX_FILES];      /* exec: --return templates */
    size_t nret;
    bool force;            /* exec: --force: --return replaces existing files */
    bool release;          /* results: --release */
    double wait_s;         /* results, wait: --wait S (< 0: for ever) */
    bool wait_set;         /* --wait was given */
    bool json;             /* cluster: one JSON document instead of a table */
    const char *config;    /* --config FILE */
    const char *cluster;   /* --cluster NAME (discovery) */
    int timeout_req_ms;    /* [submit] timeout_ms: a request's wait for its reply (0 = default) */
    int64_t ttl_s;         /* gc: --ttl S (-1: the broker's result time-to-live) */
    pd_client_opts_t conn; /* security of the connection (--secure, --key, ...) */
    char conf_key[1024];   /* [submit] key, when conn.key_file points here */
    char conf_bkey[64];    /* [submit] broker_key or a discovered key, for conn.broker_key */
    int nodes;             /* task: --nodes N */
    const char *graph;     /* task: --graph FILE */
    const char *arg;       /* task: --arg JSON (every node's argument) */
    int io_timeout_ms;     /* task: --io-timeout-ms (0: default, PD_TASK_NO_TIMEOUT: none) */
    uint32_t start_timeout_ms; /* task: --start-timeout-ms (0: default) */
    uint32_t window;       /* task: --window (0: default) */
    pd_submit_optim_opts_t optim; /* optimize */
    bool default_broker;   /* no broker named nor heard: trying the loopback default */
    char discovered[160];  /* what discovery heard, for the message when none answers */
} pd_submit_opts_t;

/* The session: options, the embedded cluster and the client, made on demand. */
typedef struct {
    pd_submit_opts_t o;    /* parsed options */
    pd_local_t *local;     /* the embedded cluster of --local, or NULL */
    pd_client_t *c;        /* the client, once connected */
} pd_submit_t;

/* ---- verbs and their options ---------------------------------------------- */

/* Every option's code (getopt_long's val), one list so that an option given
   to the wrong verb is still known and can be named. */
enum {
    O_BROKER = 'b', O_LOCAL = 'l', O_QUIET = 'q', O_HELP = 'h', O_ARGS = 'a', O_KEEP = 'k',
    O_TIMEOUT = 256, O_RETRIES, O_DETACH, O_WAIT, O_RELEASE, O_LEVEL, O_NO_PROGRESS,
    O_MAX_SLOTS, O_SHARED, O_NO_KEEP, O_JOBLOG, O_DRY_RUN, O_JSON, O_CONFIG, O_CLUSTER, O_GPU,
    O_CUDA, O_NODES, O_GRAPH, O_ARG, O_IO, O_START, O_WINDOW, O_TTL, O_SECURE, O_INSECURE,
    O_KEY, O_BROKER_KEY, O_CONFIG_DIR, O_ALGO, O_DIM, O_BOUNDS, O_INIT, O_ISLANDS, O_POPSIZE,
    O_BUDGET, O_ITERATIONS, O_TARGET, O_SEED, O_TOPOLOGY, O_MIGRATE_EVERY, O_MIGRANTS, O_GROUPS,
    O_MAXIMIZE, O_HISTORY, O_MEMORY, O_CPU_TIME, O_MAX_OUTPUT, O_VERSION, O_RETRY_FAILED,
    O_WORKDIR, O_TRANSFER, O_RETURN, O_FORCE, O_POLISH, O_HTTP
};

/* One option: its long name, whether it takes a value (getopt_long's
   no_argument, required_argument) and its code. */
typedef struct {
    const char *name;
    int has_arg;
    int code;
} pd_submit_opt_t;

/* The limits of each job, which map and exec both take (submit.c applies
   them, and the options every verb may share: --detach, --shared, --gpu,
   --cuda, --args, --wait, --release). */
#define PD_SUBMIT_LIMIT_OPTS                                                                      \
    {"timeout-ms", required_argument, O_TIMEOUT}, {"retries", required_argument, O_RETRIES},    \
        {"retry-failed", required_argument, O_RETRY_FAILED},                                      \
        {"max-slots", required_argument, O_MAX_SLOTS}, {"memory", required_argument, O_MEMORY},   \
        {"cpu-time", required_argument, O_CPU_TIME}, {"max-output", required_argument, O_MAX_OUTPUT}

/* A verb: what it is called, its --help, its options and what runs it. */
typedef struct {
    const char *name;             /* the verb */
    const char *usage;            /* its --help text (the global options follow it) */
    const pd_submit_opt_t *opts;  /* the options it takes besides the global ones; {NULL} ends */
    /* Applies one of its own options (those submit.c does not share between
       verbs); returns 0, or bad_exit after the usage error. NULL: none. */
    int (*apply)(pd_submit_t *s, int code, const char *arg, int bad_exit);
    /* Runs the verb over its positional arguments; returns the exit status. */
    int (*run)(pd_submit_t *s, int argc, char **argv);
    int bad_exit;                 /* the exit status of a usage error */
    bool in_order;                /* options only before its first positional argument */
} pd_submit_verb_t;

extern const pd_submit_verb_t pd_submit_verb_map, pd_submit_verb_exec, pd_submit_verb_task,
    pd_submit_verb_optimize, pd_submit_verb_optimize_status, pd_submit_verb_optimize_fetch,
    pd_submit_verb_status, pd_submit_verb_results, pd_submit_verb_wait, pd_submit_verb_cluster,
    pd_submit_verb_stop, pd_submit_verb_cancel, pd_submit_verb_gc;

/* Parses an unsigned decimal number that fits 32 bits (no sign, nothing
   after it). */
bool pd_submit_parse_u32(const char *s, uint32_t *v);
/* Parses an unsigned decimal number (no sign, nothing after it). */
bool pd_submit_parse_u64(const char *s, uint64_t *v);
/* Parses the value arg of option --opt, a count (what: "a number of slots")
   from lo to hi, into *v; false after the usage error. */
bool pd_submit_count(const pd_submit_t *s, const char *opt, const char *what, const char *arg,
                     uint64_t lo, uint64_t hi, uint64_t *v);

/* A count option: its code, its name (no "--"), its words, its range. */
typedef struct {
    int code;
    const char *opt, *what;
    uint64_t lo, hi;
} pd_submit_count_t;
/* pd_submit_count for count option code by its entry in table[0..n). */
bool pd_submit_count_of(const pd_submit_t *s, const pd_submit_count_t *table, size_t n, int code,
                        const char *arg, uint64_t *v);

/* Starts the embedded cluster (--local) if asked and connects. Returns the
   client, or NULL after printing why on standard error. */
pd_client_t *pd_submit_connect(pd_submit_t *s);

/* Prints "playdoh-submit: VERB: <message>" and the hint to run --help. */
void pd_submit_usage_error(const pd_submit_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* True when the progress bar should be drawn (standard error is a terminal,
   neither --quiet nor --no-progress). */
bool pd_submit_progress_wanted(const pd_submit_t *s);

/* Called by pd_submit_collect for each job as its result is handed out. */
typedef void(pd_submit_emit_fn)(void *user, size_t index, const pd_result_t *r);

/* Follows jobs ids[0..n) (distinct, non-zero) until they have all ended or
   timeout_ms passed (-1: no limit). Each ended job is handed to emit (when
   not NULL): in input order when keep_order, else as it ends. With release,
   the broker forgets each job once emitted. The bar (may be NULL) is updated
   and erased before emit writes anything. Sets *done and *failed (failed,
   cancelled or unknown). With interruptible, the first Ctrl-C cancels the
   jobs not done, hands out what ended (in input order with keep_order) and
   each other job as cancelled (state cancelled, code PD_ECANCELLED), says
   so with their ids on standard error and returns PD_ECANCELLED; a second
   Ctrl-C ends the program. Returns 0, or a PD_E* code after printing why. */
#define PD_SUBMIT_INTERRUPTED PD_EXIT_INTERRUPTED /* the exit status after Ctrl-C, as a shell's */
int pd_submit_collect(pd_submit_t *s, const uint64_t *ids, size_t n, int timeout_ms,
                      bool keep_order, bool release, bool interruptible, pd_progress_t *bar,
                      pd_submit_emit_fn *emit, void *user, size_t *done, size_t *failed);

/* Prints ids as ranges ("1-100 205") and a newline; zero ids are skipped. */
void pd_submit_print_ranges(FILE *f, const uint64_t *ids, size_t n);

/* status, results, wait or cancel (verb) over task ids t17, t3-5
   (submit_task.c). Returns the exit status. */
int pd_submit_tasks(pd_submit_t *s, const char *verb, int argc, char **argv);

/* Uploads MODULE over the session's client: one file, or files and flags
   separated by commas ("a.c,b.c,util.h,-lm,-O3"). Returns 0, or the exit
   status after printing why: 2 for bad input (an unreadable file, a module
   the workers' compiler refuses, too big), 3 for a broker problem. */
int pd_submit_upload_module(pd_submit_t *s, const char *spec, char hash[PD_HASH_HEX]);

/* The kernels of a GPU command: --cuda FILE, or with --gpu a FILE.cu beside
   a module FILE.c (module: the command's module argument), uploaded. Sets
   *has (and hash) when there are kernels. Returns 0, or the exit status
   after printing why (2: not a .cu, unreadable; 3: the broker). */
int pd_submit_upload_cuda(pd_submit_t *s, const char *module, char hash[PD_HASH_HEX], bool *has);

/* pd_submit_upload_module, then pd_submit_upload_cuda, for the module of a
   command (map, optimize): 0, or the exit status of the first that failed. */
int pd_submit_upload_code(pd_submit_t *s, const char *module, char hash[PD_HASH_HEX],
                          char cuda_hash[PD_HASH_HEX], bool *cuda);

/* Reads one JSON value per line of path ("-": standard input) into args as
   msgpack values; *n gets how many. Returns 0, or 2 after printing why. */
int pd_submit_read_args(const char *path, pd_buf_t *args, size_t *n);
/* Appends a string as JSON text. */
void pd_submit_put_json_str(pd_buf_t *out, const char *str);
/* Appends str as it is. */
void pd_submit_put(pd_buf_t *out, const char *str);
/* Writes out to standard output, flushes it and empties out. */
void pd_submit_flush(pd_buf_t *out);
/* Sorts uint64_t values (qsort). */
int pd_submit_u64_cmp(const void *a, const void *b);
/* Appends the line a job cancelled before it ended prints in place of its
   result: {"cancelled":true,"job":ID}. */
void pd_submit_put_cancelled(pd_buf_t *out, uint64_t id);
/* Parses job ids and ranges (17, 1-1000). Returns 0, or 2 after printing why. */
int pd_submit_parse_ids(pd_submit_t *s, int argc, char **argv, uint64_t **ids, size_t *n);

#endif
