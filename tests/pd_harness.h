/*  pd_harness: real clusters for integration tests.

    Starts a real playdoh-broker and real playdoh-worker processes (the built
    programs, found through $PLAYDOH_BINDIR) on loopback, with fast heartbeats
    and a private module cache, and writes test modules to a temp directory.
    The broker journals to <dir>/broker.journal unless the extra flags say
    --no-journal, name another --journal or a --config file; pd_harness_restart_broker()
    starts a new broker on the same port with the same flags, as an operator
    restarting a crashed broker would.
*/
#ifndef PD_HARNESS_H
#define PD_HARNESS_H

#include "playdoh.h"

#include <stdbool.h>
#include <sys/types.h>

#define PD_HARNESS_MAX_WORKERS 8

typedef struct {
    pid_t broker;
    char endpoint[256];
    pid_t workers[PD_HARNESS_MAX_WORKERS];
    int nworkers;
    char dir[256];       /* temp dir: modules, worker caches, the journal */
    int heartbeat_ms;
    char journal[300];   /* the broker's journal ("" when it has none) */
    char *flags[24];     /* the extra broker flags (owned copies), NULL-terminated */
    bool secure;         /* the broker runs CurveZMQ (pd_harness_start_secure) */
    bool logged;         /* the broker's standard error goes to <dir>/broker.log */
    char broker_key[41]; /* its public key, when secure */
} pd_harness_t;

/* Starts a broker; extra is NULL or a NULL-terminated list of more flags.
   Asserts (Criterion) on failure. */
void pd_harness_start(pd_harness_t *h, const char *const *extra);
/* Kills the broker with sig (SIGKILL: a crash; SIGTERM: a clean stop) and
   waits for it. */
void pd_harness_kill_broker(pd_harness_t *h, int sig);
/* Starts a broker again on the same endpoint with the same flags plus
   `more` (NULL or NULL-terminated), once the old one is gone. Asserts that
   it reports its endpoint. */
void pd_harness_restart_broker(pd_harness_t *h, const char *const *more);
/* Runs the broker program with the harness's flags plus `more` in the
   foreground, as a restart that must fail: returns its exit status and
   writes what it printed on standard error into err (NUL-terminated). */
int pd_harness_broker_fails(pd_harness_t *h, const char *const *more, char *err, size_t cap);
/* pd_harness_start with the broker's log in <dir>/broker.log. */
void pd_harness_start_logged(pd_harness_t *h, const char *const *extra);
/* Starts a broker with CurveZMQ on loopback (--secure): its key pair and
   allow-list live in <dir>/broker; its log goes to <dir>/broker.log. */
void pd_harness_start_secure(pd_harness_t *h, const char *const *extra);
/* Makes a key pair in <dir>/<name> (a configuration directory, written to
   confdir), trusts the broker there, and admits the key on the broker with
   role (0 = not admitted: PD_ROLE_NONE). Its public key goes to key (41
   bytes) when not NULL. */
void pd_harness_identity(pd_harness_t *h, const char *name, int role, char *confdir, size_t cap,
                         char *key);
/* Starts a worker with cpus slots and the control socket <dir>/worker<I>.ctl;
   returns its index I in h->workers. */
int pd_harness_add_worker(pd_harness_t *h, int cpus);
/* Starts a worker with more flags (NULL-terminated) and its log in
   <dir>/worker-<index>.log; with a secure broker, identity names the
   configuration directory made by pd_harness_identity (NULL: "worker",
   made and admitted as a worker on first use). */
int pd_harness_add_worker_as(pd_harness_t *h, int cpus, const char *identity,
                             const char *const *extra);
/* True when the file <dir>/<name> contains text (waits up to ms for it). */
bool pd_harness_log_has(pd_harness_t *h, const char *name, const char *text, int ms);
/* How many lines of the log file <dir>/name hold text (asserts it exists). */
int pd_harness_log_count(pd_harness_t *h, const char *name, const char *text);
/* Like pd_harness_add_worker, with extra (NULL-terminated, may be NULL)
   appended to the worker's command line. */
int pd_harness_add_worker_args(pd_harness_t *h, int cpus, const char *const *extra);
/* The same (e.g. "--gpus", "2"). The worker inherits this process's
   environment (PLAYDOH_LIBCUDA). */
int pd_harness_add_worker_with(pd_harness_t *h, int cpus, const char *const *extra);
/* Waits until the broker counts `slots` slots (up to 20 s); asserts. */
void pd_harness_wait_slots(pd_harness_t *h, pd_client_t *c, int slots);
/* Kills everything started and removes the temp directory. */
void pd_harness_stop(pd_harness_t *h);
/* Writes source to <dir>/<name> and returns the path (static storage per call
   site is not needed: the caller gets a malloc'ed string to free). */
char *pd_harness_module(pd_harness_t *h, const char *name, const char *source);
/* Writes the module (pd_harness_module) and uploads it through c, its hash
   into mod (PD_HASH_HEX bytes); asserts. */
void pd_harness_upload(pd_harness_t *h, pd_client_t *c, const char *name, const char *source,
                       char *mod);
/* A connected client (asserts); with a secure broker it uses the identity
   "client" (made and admitted as a client on first use). */
pd_client_t *pd_harness_client(pd_harness_t *h);
/* Opens a client of a secure broker as identity (a pd_harness_identity
   name); returns NULL with *err and why set when refused. */
pd_client_t *pd_harness_client_as(pd_harness_t *h, const char *identity, int *err, char *why,
                                  size_t whycap);
/* Runs argv (argv[0] a path) with standard error on a pseudo-terminal of
   100 columns and standard output on a pipe; returns its exit status, with
   what the terminal showed in *tty (malloc'ed). */
int pd_harness_run_on_tty(char *const argv[], char **tty);
/* Path of a built program (asserts). Static storage, overwritten per call. */
const char *pd_harness_program(const char *name);

/* Runs a shell command (formatted as by printf) and waits for it. Returns
   its exit status, 128 when a signal ended it; its standard output
   (NUL-terminated, malloc'ed: the caller frees it) goes to *out when out
   is not NULL. Asserts (Criterion) when the command cannot be started. */
int pd_harness_run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
