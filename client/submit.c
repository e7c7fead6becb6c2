/*  playdoh-submit: the command line.

    Verbs map, exec, task, optimize, status, results, wait, cancel, cluster
    and gc over
    the client library (playdoh.h). `map` reads one JSON value per line, ships
    the module, submits the jobs and prints one JSON line per job in input
    order; `exec` runs a shell command per argument line, as GNU parallel
    does (submit_exec.c); `task` runs a synchronous task of --nodes N nodes
    along the tubes of --graph FILE (submit_task.c); with --detach they print
    the ids instead (tasks as t17), for `status`, `results`, `wait` and
    `cancel` from any process, later. `optimize` runs an optimisation on
    the cluster (submit_optim.c). --local N runs the whole command on an
    embedded cluster. `slurm` starts workers as Slurm pilot jobs and parses
    its own options (client/pd_slurm.c).

    Options are parsed in two steps: the global ones before the verb, then
    the verb's own (and the global ones again) after it, so that every verb
    has its --help and an option given to the wrong verb is named as such.

    Exit codes: 0 all jobs done; 1 some jobs failed, were cancelled or
    unknown; 2 bad usage or input; 3 no broker, or the broker refused.
    `exec` follows GNU parallel instead: the number of failed jobs (101 for
    more than 100), 255 for any other error.
*/
#include "submit.h"
#include "pd_error_int.h"
#include "pd_plat.h"

#include "pd_auth.h"
#include "pd_beacon.h"
#include "pd_cli.h"
#include "pd_codec.h"
#include "pd_limits.h"
#include "pd_config.h"
#include "pd_json.h"
#include "pd_log.h"
#include "pd_slurm.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_QUERY_IDS 262144 /* pending ids a collect request looks at, at most */
#define S_RELEASE_BATCH 4096
#define S_LOOPBACK_CONNECT_MS 500 /* the wait for the loopback default broker's welcome */
#define S_INTERRUPT_POLL_MS 200 /* the longest wait between two looks for Ctrl-C */

/* ---- verbs and their options --------------------------------------------- */

enum {
    V_MAP = 1 << 0,
    V_EXEC = 1 << 1,
    V_STATUS = 1 << 2,
    V_RESULTS = 1 << 3,
    V_WAIT = 1 << 4,
    V_CANCEL = 1 << 5,
    V_CLUSTER = 1 << 6,
    V_TASK = 1 << 8,
    V_GC = 1 << 9,
    V_OPTIM = 1 << 10,
    V_OSTATUS = 1 << 11,
    V_OFETCH = 1 << 12,
    V_STOP = 1 << 13,
    V_GLOBAL = 1 << 7 /* allowed before the verb and after it */
};

enum {
    O_BROKER = 'b', O_LOCAL = 'l', O_QUIET = 'q', O_HELP = 'h', O_ARGS = 'a', O_KEEP = 'k',
    O_TIMEOUT = 256, O_RETRIES, O_DETACH, O_WAIT, O_RELEASE, O_LEVEL, O_NO_PROGRESS,
    O_MAX_SLOTS, O_SHARED, O_NO_KEEP, O_JOBLOG, O_DRY_RUN, O_JSON, O_CONFIG, O_CLUSTER, O_GPU,
    O_CUDA, O_NODES, O_GRAPH, O_ARG, O_IO, O_START, O_WINDOW, O_TTL, O_SECURE, O_INSECURE,
    O_KEY, O_BROKER_KEY, O_CONFIG_DIR, O_ALGO, O_DIM, O_BOUNDS, O_INIT, O_ISLANDS, O_POPSIZE,
    O_BUDGET, O_ITERATIONS, O_TARGET, O_SEED, O_TOPOLOGY, O_MIGRATE_EVERY, O_MIGRANTS, O_GROUPS,
    O_MAXIMIZE, O_HISTORY, O_MEMORY, O_CPU_TIME, O_MAX_OUTPUT, O_VERSION, O_RETRY_FAILED,
    O_WORKDIR, O_TRANSFER, O_RETURN, O_FORCE, O_POLISH
};

typedef struct {
    struct option opt; /* for getopt_long */
    int verbs;         /* V_* where the option is accepted */
} s_opt_t;

static const s_opt_t s_opts[] = {
    {{"broker", required_argument, NULL, O_BROKER}, V_GLOBAL},
    {{"local", required_argument, NULL, O_LOCAL}, V_GLOBAL},
    {{"quiet", no_argument, NULL, O_QUIET}, V_GLOBAL},
    {{"log-level", required_argument, NULL, O_LEVEL}, V_GLOBAL},
    {{"no-progress", no_argument, NULL, O_NO_PROGRESS}, V_GLOBAL},
    {{"help", no_argument, NULL, O_HELP}, V_GLOBAL},
    {{"version", no_argument, NULL, O_VERSION}, V_GLOBAL},
    {{"config", required_argument, NULL, O_CONFIG}, V_GLOBAL},
    {{"cluster", required_argument, NULL, O_CLUSTER}, V_GLOBAL},
    {{"secure", no_argument, NULL, O_SECURE}, V_GLOBAL},
    {{"insecure", no_argument, NULL, O_INSECURE}, V_GLOBAL},
    {{"key", required_argument, NULL, O_KEY}, V_GLOBAL},
    {{"broker-key", required_argument, NULL, O_BROKER_KEY}, V_GLOBAL},
    {{"config-dir", required_argument, NULL, O_CONFIG_DIR}, V_GLOBAL},
    {{"json", no_argument, NULL, O_JSON}, V_CLUSTER},
    {{"timeout-ms", required_argument, NULL, O_TIMEOUT}, V_MAP | V_EXEC | V_TASK | V_OPTIM},
    {{"retries", required_argument, NULL, O_RETRIES}, V_MAP | V_EXEC},
    {{"retry-failed", required_argument, NULL, O_RETRY_FAILED}, V_MAP | V_EXEC},
    {{"max-slots", required_argument, NULL, O_MAX_SLOTS}, V_MAP | V_EXEC},
    {{"memory", required_argument, NULL, O_MEMORY}, V_MAP | V_EXEC},
    {{"cpu-time", required_argument, NULL, O_CPU_TIME}, V_MAP | V_EXEC},
    {{"max-output", required_argument, NULL, O_MAX_OUTPUT}, V_MAP | V_EXEC},
    {{"detach", no_argument, NULL, O_DETACH}, V_MAP | V_EXEC | V_TASK | V_OPTIM},
    {{"shared", required_argument, NULL, O_SHARED}, V_MAP | V_OPTIM},
    {{"gpu", no_argument, NULL, O_GPU}, V_MAP | V_TASK | V_OPTIM},
    {{"cuda", required_argument, NULL, O_CUDA}, V_MAP | V_TASK | V_OPTIM},
    {{"args", required_argument, NULL, O_ARGS}, V_EXEC | V_TASK},
    {{"nodes", required_argument, NULL, O_NODES}, V_TASK},
    {{"graph", required_argument, NULL, O_GRAPH}, V_TASK},
    {{"arg", required_argument, NULL, O_ARG}, V_TASK},
    {{"io-timeout-ms", required_argument, NULL, O_IO}, V_TASK},
    {{"start-timeout-ms", required_argument, NULL, O_START}, V_TASK},
    {{"window", required_argument, NULL, O_WINDOW}, V_TASK},
    {{"keep-order", no_argument, NULL, O_KEEP}, V_EXEC},
    {{"no-keep-order", no_argument, NULL, O_NO_KEEP}, V_EXEC},
    {{"joblog", required_argument, NULL, O_JOBLOG}, V_EXEC},
    {{"dry-run", no_argument, NULL, O_DRY_RUN}, V_EXEC},
    {{"workdir", required_argument, NULL, O_WORKDIR}, V_EXEC},
    {{"transfer", required_argument, NULL, O_TRANSFER}, V_EXEC},
    {{"return", required_argument, NULL, O_RETURN}, V_EXEC},
    {{"force", no_argument, NULL, O_FORCE}, V_EXEC},
    {{"wait", required_argument, NULL, O_WAIT}, V_RESULTS | V_WAIT | V_OFETCH},
    {{"release", no_argument, NULL, O_RELEASE}, V_RESULTS | V_OFETCH},
    {{"ttl", required_argument, NULL, O_TTL}, V_GC},
    {{"algo", required_argument, NULL, O_ALGO}, V_OPTIM},
    {{"dim", required_argument, NULL, O_DIM}, V_OPTIM},
    {{"bounds", required_argument, NULL, O_BOUNDS}, V_OPTIM | V_OFETCH},
    {{"init", required_argument, NULL, O_INIT}, V_OPTIM},
    {{"islands", required_argument, NULL, O_ISLANDS}, V_OPTIM},
    {{"popsize", required_argument, NULL, O_POPSIZE}, V_OPTIM},
    {{"budget", required_argument, NULL, O_BUDGET}, V_OPTIM},
    {{"iterations", required_argument, NULL, O_ITERATIONS}, V_OPTIM},
    {{"target", required_argument, NULL, O_TARGET}, V_OPTIM},
    {{"seed", required_argument, NULL, O_SEED}, V_OPTIM},
    {{"polish", required_argument, NULL, O_POLISH}, V_OPTIM},
    {{"topology", required_argument, NULL, O_TOPOLOGY}, V_OPTIM},
    {{"migrate-every", required_argument, NULL, O_MIGRATE_EVERY}, V_OPTIM},
    {{"migrants", required_argument, NULL, O_MIGRANTS}, V_OPTIM},
    {{"groups", required_argument, NULL, O_GROUPS}, V_OPTIM},
    {{"maximize", no_argument, NULL, O_MAXIMIZE}, V_OPTIM},
    {{"history", no_argument, NULL, O_HISTORY}, V_OPTIM | V_OFETCH},
};
#define S_NOPTS (sizeof s_opts / sizeof s_opts[0])

typedef struct {
    const char *name;  /* the verb */
    int bit;           /* its V_* */
    const char *usage; /* its --help text */
} s_verb_t;

static const char S_GLOBAL_HELP[] =
    "global options (before or after the verb):\n"
    "  -b, --broker EP      broker endpoint (default: $PLAYDOH_BROKER, [submit] broker of the\n"
    "                       configuration file, a broker found by its beacon, else\n"
    "                       tcp://127.0.0.1:5555)\n"
    "      --cluster NAME   cluster whose beacon to follow (default: [cluster] name, playdoh)\n"
    "      --config FILE    read this configuration file only\n"
    "  -l, --local N        run on an embedded cluster of N slots started for this command\n"
    "  -q, --quiet          no summary or per-job error lines on standard error\n"
    "      --no-progress    no progress bar (drawn only when standard error is a terminal)\n"
    "      --log-level L    error, warn (default), info or debug\n"
    "  -h, --help           help (after a verb: that verb's help)\n"
    "      --version        print the version and exit\n"
    "security (docs/security.md): towards a broker that is not on loopback the\n"
    "connection runs CurveZMQ and accepts only the broker key this account trusts\n"
    "      --secure         CurveZMQ even on loopback\n"
    "      --insecure       no security even on a network (only on a network you trust)\n"
    "      --key FILE       this account's key pair (default: CONFIG/id.key)\n"
    "      --broker-key KEY the broker's public key (default: CONFIG/known_brokers, or a\n"
    "                       trusted key announced by the beacon)\n"
    "      --config-dir DIR CONFIG (default: $PLAYDOH_CONFIG_DIR, $XDG_CONFIG_HOME/playdoh\n"
    "                       or ~/.config/playdoh)\n";

static const s_verb_t s_verbs[] = {
    {"map", V_MAP,
     "usage: playdoh-submit [GLOBAL OPTIONS] map [OPTIONS] MODULE FUNCTION [ARGS.jsonl|-]\n"
     "\n"
     "Runs FUNCTION of MODULE once per line of ARGS.jsonl (standard input by default), each\n"
     "line one JSON value, and prints one JSON result per line, in input order. A failed job\n"
     "prints {\"error\": ..., \"job\": ID, \"code\": \"PD_E...\"} and a line on standard error.\n"
     "MODULE is a C source file, a prebuilt module (.so for Linux workers, .dll for Windows\n"
     "ones: it runs only on workers of its platform), or several files separated by commas\n"
     "(a.c,b.c,util.h) with optional compiler flags after them (a.c,b.c,-lm,-O3).\n"
     "\n"
     "options:\n"
     "      --timeout-ms N   fail a job that runs longer than N ms (default: no limit)\n"
     "      --retries N      workers a job may lose (a worker that dies or falls silent\n"
     "                       while running it) before it fails (default 3)\n"
     "      --retry-failed N run a job again, up to N times, when its own run failed\n"
     "                       (an error returned, a crash, --timeout-ms) (default 0)\n"
     "      --max-slots N    run at most N of these jobs at once (default: fair share)\n"
     "      --memory SIZE    each job's memory at most (2G, 512M); over it the job fails\n"
     "                       with PD_ELIMIT; it runs only where the owner allows that much\n"
     "      --cpu-time TIME  each job's CPU time at most (60s, 5m, 2h)\n"
     "      --max-output SIZE  output kept of a failing job (default 4M, at most 64M)\n"
     "      --shared FILE    send FILE once per machine; tasks read it with pd_task_shared()\n"
     "      --gpu            run each job on a GPU slot (docs/gpu.md); a .cu file beside a .c\n"
     "                       MODULE (square.cu for square.c) travels with the jobs\n"
     "      --cuda FILE.cu   ship these CUDA kernels with the jobs (implies --gpu)\n"
     "      --detach         print the job ids and return without waiting (the way to\n"
     "                       leave jobs running)\n"
     "\n"
     "Ctrl-C cancels the jobs not done and prints what ended, then {\"cancelled\":true,\n"
     "\"job\":ID} for each of the others; a second Ctrl-C quits at once.\n"
     "\n"
     "exit status: 0 all jobs done, 1 some failed, 2 bad usage or input, 3 broker problem,\n"
     "130 after Ctrl-C\n"},
    {"exec", V_EXEC,
     "usage: playdoh-submit [GLOBAL OPTIONS] exec [OPTIONS] [--] COMMAND [WORDS...] [::: ARGS...]\n"
     "\n"
     "Runs COMMAND once per argument line (standard input, --args FILE, or the words after\n"
     ":::) through /bin/sh on the workers, as GNU parallel does. Replacement strings:\n"
     "  {}  the line   {.}  without extension   {/}  base name   {//}  directory\n"
     "  {/.}  base name without extension   {#}  job number (from 1)\n"
     "Each value is quoted for the shell. Without any of them, \" {}\" is appended.\n"
     "Each job's standard output and error are printed whole, in input order.\n"
     "\n"
     "options:\n"
     "  -a, --args FILE      argument lines from FILE ('-': standard input, the default)\n"
     "  -k, --keep-order     print in input order (the default)\n"
     "      --no-keep-order  print each job's output as soon as it ends\n"
     "      --joblog FILE    write a GNU parallel job log (Seq Host Starttime JobRuntime ...)\n"
     "      --timeout-ms N   kill a command that runs longer than N ms\n"
     "      --retries N      workers a job may lose (a worker that dies or falls silent\n"
     "                       while running it) before it fails (default 3)\n"
     "      --retry-failed N run a job again, up to N times, when its own run failed\n"
     "                       (an error returned, a crash, --timeout-ms) (default 0)\n"
     "      --max-slots N    run at most N commands at once (default: fair share)\n"
     "      --memory SIZE    each command's memory at most (2G, 512M); over it the job\n"
     "                       fails with PD_ELIMIT; it runs only where the owner allows it\n"
     "      --cpu-time TIME  CPU time of each process of a command at most (60s, 5m)\n"
     "      --max-output SIZE  output kept per stream (default 4M, at most 64M); the\n"
     "                       rest is dropped and counted\n"
     "      --workdir DIR    run each command in DIR on its worker, which must see DIR\n"
     "                       (a shared file system: docs/cluster.md). Default: this\n"
     "                       directory when the worker sees it, else a scratch directory\n"
     "      --transfer FILE  send FILE (a path under this directory; {} and the other\n"
     "                       replacement strings name one per job) with each job, into\n"
     "                       its scratch directory, at the same relative path\n"
     "      --return FILE    bring FILE back from the job's directory into this one, at\n"
     "                       the same relative path (replacement strings too)\n"
     "      --force          replace files that --return would write over (else refused)\n"
     "      --detach         print the job ids and return without waiting\n"
     "      --dry-run        print the commands instead of running them\n"
     "\n"
     "Ctrl-C cancels the jobs not done and prints what ended, then {\"cancelled\":true,\n"
     "\"job\":ID} for each of the others; a second Ctrl-C quits at once.\n"
     "\n"
     "exit status (GNU parallel's): the number of failed jobs, 101 for more than 100,\n"
     "255 for bad usage, unreadable input or a broker problem; 130 after Ctrl-C\n"},
    {"task", V_TASK,
     "usage: playdoh-submit [GLOBAL OPTIONS] task [OPTIONS] MODULE FUNCTION --nodes N\n"
     "\n"
     "Runs FUNCTION of MODULE on N nodes at once (a synchronous task: docs/sync.md), each\n"
     "node on its own slot; the nodes exchange data with pd_push and pd_pop along the tubes\n"
     "of the graph file. Prints each node's result as a JSON line, in node order; a failed\n"
     "task prints {\"error\": ..., \"node\": I, \"code\": ..} for its failed or stopped\n"
     "nodes and the reason (node, host, message) on standard error.\n"
     "\n"
     "options:\n"
     "      --nodes N        the number of nodes, 1 to 4096 (required)\n"
     "      --graph FILE     the tubes: lines 'TUBE: SPEC, ...' with SPEC one of ring,\n"
     "                       ring-back, chain, chain-back, all-to-all, star-out HUB,\n"
     "                       star-in HUB, SRC->DST; or a JSON object (docs/sync.md)\n"
     "  -a, --args FILE      one JSON line per node: node i gets line i+1 (default: null)\n"
     "      --arg JSON       the same argument for every node\n"
     "      --io-timeout-ms N  a push or pop waits at most N ms (default 60000; 0: for ever)\n"
     "      --start-timeout-ms N  the nodes must meet within N ms (default 300000)\n"
     "      --timeout-ms N   fail the task when it runs longer than N ms after its start\n"
     "      --window N       messages in flight per edge (default 16384)\n"
     "      --gpu            each node on a GPU slot of its own (pd_cuda_* in the node;\n"
     "                       docs/gpu.md); a .cu beside a .c MODULE travels with it\n"
     "      --cuda FILE.cu   ship these CUDA kernels to the nodes (implies --gpu)\n"
     "      --detach         print the task's id (t17) and return without waiting\n"
     "\n"
     "status, results, wait and cancel take task ids (t17, t3-5) as they take job ids.\n"
     "Ctrl-C stops the task (its nodes see pd_node_stopping() and return what they have)\n"
     "and prints their results; a second Ctrl-C cancels it.\n"
     "\n"
     "exit status: 0 done, 1 failed or cancelled, 2 bad usage or input, 3 broker problem\n"
     "(for instance a task of more nodes than the cluster has slots), 130 after Ctrl-C\n"},
    {"optimize", V_OPTIM,
     "usage: playdoh-submit [GLOBAL OPTIONS] optimize [OPTIONS] MODULE FITNESS --algo A\n"
     "           --bounds FILE|LO:HI (--budget EVALS | --iterations N) [--target F]\n"
     "\n"
     "Minimises (or with --maximize maximises) FITNESS, a PD_FITNESS function of MODULE\n"
     "(playdoh_fitness.h), as islands on the cluster, one island per slot, exchanging their\n"
     "best individuals along a topology (docs/optimisation.md). On a terminal, standard error\n"
     "shows the iteration, the evaluations and the best value per group as it runs; Ctrl-C\n"
     "stops the run after its current iteration and prints what it found (Ctrl-C again\n"
     "cancels it). The result is printed as one JSON object:\n"
     "{\"task\":..,\"stop\":..,\"evaluations\":..,\"iterations\":..,\"wall_s\":..,\n"
     " \"best_f\":[per group],\"best_x\":[[per group]],\"best_island\":[..],...}\n"
     "\n"
     "options:\n"
     "      --algo A         pso, ga, cmaes, bipop (CMA-ES with BIPOP restarts) or de\n"
     "                       (required)\n"
     "      --bounds B       LO:HI for every parameter (with --dim), or a file of one line per\n"
     "                       parameter: 'LO HI' or 'NAME LO HI' ('#' starts a comment)\n"
     "      --dim D          the number of parameters (a bounds file says it by itself)\n"
     "      --init B         where the first population is drawn, as --bounds (default: the\n"
     "                       bounds)\n"
     "      --budget N       stop before exceeding N evaluations (all islands and groups)\n"
     "      --iterations N   stop after N iterations\n"
     "      --target F       a group stops once its best reaches F; needs --budget or\n"
     "                       --iterations too, as F may never be reached\n"
     "      --islands N      islands, one per slot (default 1)\n"
     "      --gpu            each island on a GPU slot of its own: the fitness launches\n"
     "                       kernels through block->task (docs/gpu.md); a .cu beside a\n"
     "                       .c MODULE travels with it\n"
     "      --cuda FILE.cu   ship these CUDA kernels to the islands (implies --gpu)\n"
     "      --popsize P      individuals per island and group (default: PSO 40, GA 40,\n"
     "                       CMA-ES 4 + 3 ln D, DE 40)\n"
     "      --groups G       G independent optimisations side by side (default 1)\n"
     "      --topology T     ring (default), full, star, none, or a file of edges, one\n"
     "                       'FROM TO' (or FROM->TO) pair of islands per line\n"
     "      --migrate-every K  migrate every K iterations (default 10; 0: never)\n"
     "      --migrants M     individuals sent to each neighbour per migration (default 1)\n"
     "      --seed S         equal seeds and options give the same result (default 0)\n"
     "      --polish N       after the run, each island polishes its best point of each\n"
     "                       group with a bounded Nelder-Mead of at most N evaluations\n"
     "      --maximize       maximise instead of minimise\n"
     "      --shared FILE    data every fitness call reads as b->shared (a few MiB at most)\n"
     "      --timeout-ms N   fail the run when it takes longer than N ms\n"
     "      --history        add each island's best-so-far per iteration to the result\n"
     "      --detach         print the run's id (t17) and return at once; follow it with\n"
     "                       optimize-status, optimize-fetch, wait and cancel\n"
     "\n"
     "exit status: 0 done, 1 the run failed or was cancelled, 2 bad usage or input,\n"
     "3 broker problem (for instance more islands than the cluster has slots); 130 after\n"
     "Ctrl-C\n"},
    {"optimize-status", V_OSTATUS,
     "usage: playdoh-submit [GLOBAL OPTIONS] optimize-status ID...\n"
     "\n"
     "Prints the state and latest progress of each optimisation (t17) as a JSON line:\n"
     "{\"task\":..,\"state\":..,\"iteration\":..,\"evaluations\":..,\"wall_s\":..,\n"
     " \"best_f\":[per group]} (progress once the first iteration is done).\n"
     "\n"
     "exit status: 0, 1 when an optimisation is unknown, 2 bad usage, 3 broker problem\n"},
    {"optimize-fetch", V_OFETCH,
     "usage: playdoh-submit [GLOBAL OPTIONS] optimize-fetch [OPTIONS] ID\n"
     "\n"
     "Prints an optimisation's result (t17) as optimize does, or {\"task\":..,\"state\":..}\n"
     "while it runs.\n"
     "\n"
     "options:\n"
     "      --wait S         wait up to S seconds for it to end (default 0; -1: for ever),\n"
     "                       with its progress on a terminal\n"
     "      --release        let the broker forget it once printed\n"
     "      --history        add each island's best-so-far per iteration\n"
     "      --bounds FILE    the run's bounds file, to name the parameters in best_params\n"
     "\n"
     "exit status: 0 done, 1 failed, cancelled, unknown or still running, 2 bad usage,\n"
     "3 broker problem\n"},
    {"status", V_STATUS,
     "usage: playdoh-submit [GLOBAL OPTIONS] status ID...\n"
     "\n"
     "Prints {\"id\":..,\"state\":..} per job: queued, running, done, failed, cancelled or\n"
     "unknown. IDs are numbers or ranges: 17, 1-1000.\n"
     "\n"
     "exit status: 0, or 1 when a job is unknown, 2 bad usage, 3 broker problem\n"},
    {"results", V_RESULTS,
     "usage: playdoh-submit [GLOBAL OPTIONS] results [OPTIONS] ID...\n"
     "\n"
     "Prints each job's result as a JSON line: {\"id\":..,\"state\":\"done\",\"value\":..} or\n"
     "{\"id\":..,\"state\":\"failed\",\"code\":..,\"error\":..,\"value\":..}.\n"
     "\n"
     "options:\n"
     "      --wait S         wait up to S seconds for the jobs to end first (default 0)\n"
     "      --release        let the broker forget the jobs once printed\n"
     "\n"
     "exit status: 0 all done, 1 some failed or unfinished, 2 bad usage, 3 broker problem\n"},
    {"wait", V_WAIT,
     "usage: playdoh-submit [GLOBAL OPTIONS] wait [OPTIONS] ID...\n"
     "\n"
     "Waits until the jobs have ended, with a progress bar on a terminal.\n"
     "\n"
     "options:\n"
     "      --wait S         wait at most S seconds (default: for ever)\n"
     "\n"
     "exit status: 0 all done, 1 some failed or still running, 2 bad usage, 3 broker problem\n"},
    {"cluster", V_CLUSTER,
     "usage: playdoh-submit [GLOBAL OPTIONS] cluster [--json]\n"
     "\n"
     "Shows each worker: slots offered and busy, load, GPUs, jobs queued/running/done, last\n"
     "heartbeat.\n"
     "\n"
     "options:\n"
     "      --json           print one JSON document instead of a table\n"
     "\n"
     "exit status: 0, 2 bad usage, 3 broker problem\n"},
    {"stop", V_STOP,
     "usage: playdoh-submit [GLOBAL OPTIONS] stop ID...\n"
     "\n"
     "Asks synchronous tasks and optimisations (t17, t3-5) to stop: their nodes see\n"
     "pd_node_stopping() and end with their results; an optimisation ends after its current\n"
     "iteration with its best point (fetch it with optimize-fetch). A task that has not\n"
     "started yet is cancelled. cancel, by contrast, ends them at once and keeps nothing.\n"
     "\n"
     "exit status: 0, 2 bad usage, 3 broker problem\n"},
    {"cancel", V_CANCEL,
     "usage: playdoh-submit [GLOBAL OPTIONS] cancel ID...\n"
     "\n"
     "Cancels queued and running jobs (a running job's slot process is killed).\n"
     "\n"
     "exit status: 0, 2 bad usage, 3 broker problem\n"},
    {"gc", V_GC,
     "usage: playdoh-submit [GLOBAL OPTIONS] gc [--ttl S]\n"
     "\n"
     "Makes the broker forget the results fetched more than S seconds ago (default: its\n"
     "--result-ttl) and shrink its journal, then prints one JSON line:\n"
     "{\"forgot\":N,\"journal\":PATH,\"journal_bytes\":B,\"journal_max_bytes\":M,\"journal_ok\":..}\n"
     "\n"
     "options:\n"
     "      --ttl S          forget results fetched more than S seconds ago (0: all fetched)\n"
     "\n"
     "exit status: 0, 2 bad usage, 3 broker problem\n"},
};
#define S_NVERBS (sizeof s_verbs / sizeof s_verbs[0])

static void s_usage(FILE *f)
{
    fprintf(f,
        "usage: playdoh-submit [GLOBAL OPTIONS] VERB [OPTIONS] [ARGS]\n"
        "\n"
        "verbs (playdoh-submit VERB --help for each):\n"
        "  map MODULE FUNCTION [ARGS.jsonl]  run a C function once per line of JSON\n"
        "  exec [--] COMMAND {} [::: ARGS]   run a shell command once per argument line\n"
        "  task MODULE FUNCTION --nodes N    run FUNCTION on N nodes at once, exchanging data\n"
        "       [--graph FILE]               along the tubes of FILE (a synchronous task)\n"
        "  optimize MODULE FITNESS --algo A  minimise FITNESS of MODULE with PSO, GA or CMA-ES\n"
        "       --bounds FILE|LO:HI ...      as islands on the cluster; prints the result as JSON\n"
        "  optimize-status ID                an optimisation's progress (t17) as JSON\n"
        "  optimize-fetch ID                 an optimisation's result (t17) as JSON\n"
        "  status ID...                      print each job's state as a JSON line\n"
        "  results ID...                     print each job's result as a JSON line\n"
        "  wait ID...                        wait until the jobs have ended\n"
        "  cancel ID...                      cancel queued and running jobs\n"
        "  stop ID...                        ask tasks and optimisations (t17) to finish early\n"
        "  cluster [--json]                  show each worker: slots offered and busy, load,\n"
        "                                    GPUs, jobs queued/running/done, last heartbeat\n"
        "  gc [--ttl S]                      forget results fetched long ago, shrink the journal\n"
        "  slurm --workers N --cpus-per-worker C [...]  start N workers as Slurm pilot jobs\n"
        "  IDs are numbers or ranges: 17, 1-1000; tasks are t17 (or t3-5).\n"
        "\n"
        "%s"
        "\n"
        "exit status: 0 all jobs done, 1 some failed, 2 bad usage or input, 3 broker problem\n"
        "(slurm: or Slurm missing or refusing; exec: the number of failed jobs, as GNU\n"
        "parallel)\n", S_GLOBAL_HELP);
}

void pd_submit_usage_error(const pd_submit_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "playdoh-submit: ");
    if (s && s->o.verb)
        fprintf(stderr, "%s: ", s->o.verb);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (s && s->o.verb)
        fprintf(stderr, "\n(run playdoh-submit %s --help for usage)\n", s->o.verb);
    else
        fprintf(stderr, "\n(run playdoh-submit --help for usage)\n");
}

static bool s_parse_u64(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return false;
    *v = x;
    return true;
}

static bool s_parse_u32(const char *s, uint32_t *v)
{
    uint64_t x;
    if (!s_parse_u64(s, &x) || x > UINT32_MAX)
        return false;
    *v = (uint32_t) x;
    return true;
}

/* A count of optimize's, from lo to hi; false after the usage error. */
static bool s_count(const pd_submit_t *s, const char *opt, const char *what, const char *arg,
                    uint64_t lo, uint64_t hi, uint64_t *v)
{
    if (s_parse_u64(arg, v) && *v >= lo && *v <= hi)
        return true;
    pd_submit_usage_error(s, "--%s wants %s from %llu to %llu, not '%s'", opt, what,
                          (unsigned long long) lo, (unsigned long long) hi, arg);
    return false;
}

/* optimize's counts that fit 32 bits: the option, its words, its range. */
static const struct {
    int code;
    const char *opt, *what;
    uint64_t lo, hi;
} s_counts[] = {
    {O_DIM, "dim", "a number of parameters", 1, 1000000},
    {O_ISLANDS, "islands", "a number of islands", 1, 1024},
    {O_POPSIZE, "popsize", "a population size", 1, 100000000},
    {O_MIGRATE_EVERY, "migrate-every", "a number of iterations (0: never)", 0, UINT32_MAX},
    {O_MIGRANTS, "migrants", "a number of individuals", 1, 1000000},
    {O_GROUPS, "groups", "a number of groups", 1, 1000000},
};

/* Where optimize's 32-bit count `code` goes. */
static uint32_t *s_count_field(pd_submit_optim_opts_t *o, int code)
{
    switch (code) {
    case O_DIM: return &o->dim;
    case O_ISLANDS: return &o->islands;
    case O_POPSIZE: return &o->popsize;
    case O_MIGRATE_EVERY: return &o->migrate_every;
    case O_MIGRANTS: return &o->migrants;
    default: return &o->groups;
    }
}

/* Names the verbs that take option o, for "put it after the verb". */
static void s_verbs_of(int verbs, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = 0;
    for (size_t i = 0; i < S_NVERBS; i++)
        if (verbs & s_verbs[i].bit)
            k += (size_t) snprintf(buf + k, cap - k, "%s%s", k ? ", " : "", s_verbs[i].name);
}

/* Applies one option. Returns 0, or the exit status of a usage error. */
static int s_apply(pd_submit_t *s, int code, const char *arg, int bad_exit)
{
    pd_submit_opts_t *o = &s->o;
    uint32_t u;
    switch (code) {
    case O_BROKER: o->broker = arg; break;
    case O_LOCAL:
        if (!s_parse_u32(arg, &u) || u == 0 || u > 4096) {
            pd_submit_usage_error(s, "--local wants a number of slots from 1 to 4096, not '%s'",
                                  arg);
            return bad_exit;
        }
        o->local = (int) u;
        break;
    case O_QUIET: o->quiet = true; break;
    case O_NO_PROGRESS: o->no_progress = true; break;
    case O_LEVEL: {
        pd_log_level_t lv;
        if (pd_log_parse_level(arg, &lv)) {
            pd_submit_usage_error(s, "--log-level wants error, warn, info or debug, not '%s'",
                                  arg);
            return bad_exit;
        }
        pd_log_set_level(lv);
        setenv("PLAYDOH_LOG_LEVEL", arg, 1);
        break;
    }
    case O_TIMEOUT:
        if (!s_parse_u32(arg, &o->timeout_ms)) {
            pd_submit_usage_error(s, "--timeout-ms wants milliseconds, not '%s'", arg);
            return bad_exit;
        }
        break;
    case O_RETRY_FAILED:
        if (!s_parse_u32(arg, &o->retry_failed) || o->retry_failed > 100) {
            pd_submit_usage_error(s, "--retry-failed wants a number of runs again from 0 to 100, "
                                  "not '%s'", arg);
            return bad_exit;
        }
        break;
    case O_RETRIES:
        if (!s_parse_u32(arg, &o->retries) || o->retries == 0 || o->retries > 100) {
            pd_submit_usage_error(s, "--retries wants a number of lost workers from 1 to 100, "
                                  "not '%s'", arg);
            return bad_exit;
        }
        break;
    case O_MAX_SLOTS:
        if (!s_parse_u32(arg, &o->max_slots) || o->max_slots == 0 || o->max_slots > 1000000) {
            pd_submit_usage_error(s, "--max-slots wants a number of slots from 1 to 1000000, "
                                  "not '%s'", arg);
            return bad_exit;
        }
        break;
    case O_MEMORY:
        if (pd_limits_parse_size(arg, &o->memory)) {
            pd_submit_usage_error(s, "--memory wants a size such as 2G or 512M, not '%s'", arg);
            return bad_exit;
        }
        break;
    case O_CPU_TIME:
        if (pd_limits_parse_seconds(arg, &o->cpu_time_s)) {
            pd_submit_usage_error(s, "--cpu-time wants a duration such as 60s, 5m or 2h, not "
                                  "'%s'", arg);
            return bad_exit;
        }
        break;
    case O_MAX_OUTPUT:
        if (pd_limits_parse_size(arg, &o->max_output) || o->max_output > PD_LIMITS_MAX_OUTPUT) {
            pd_submit_usage_error(s, "--max-output wants a size from 1 byte to 64M such as 1M "
                                  "or 64k, not '%s'", arg);
            return bad_exit;
        }
        break;
    case O_DETACH: o->detach = true; break;
    case O_SHARED: o->shared = arg; break;
    case O_GPU: o->gpu = true; break;
    case O_CUDA:
        o->cuda = arg;
        o->gpu = true;
        break;
    case O_ARGS: o->args_file = arg; break;
    case O_KEEP: o->keep_order = true; break;
    case O_NO_KEEP: o->keep_order = false; break;
    case O_JOBLOG: o->joblog = arg; break;
    case O_DRY_RUN: o->dry_run = true; break;
    case O_WORKDIR:
        if (!*arg) {
            pd_submit_usage_error(s, "--workdir wants a directory, not ''");
            return bad_exit;
        }
        o->workdir = arg;
        break;
    case O_TRANSFER:
    case O_RETURN: {
        const char **list = code == O_TRANSFER ? o->transfer : o->ret;
        size_t *n = code == O_TRANSFER ? &o->ntransfer : &o->nret;
        if (*n == PD_EXEC_MAX_FILES) {
            pd_submit_usage_error(s, "%s is given more than %d times; send a directory's files "
                                  "as one archive (tar), or use a shared file system with "
                                  "--workdir", code == O_TRANSFER ? "--transfer" : "--return",
                                  PD_EXEC_MAX_FILES);
            return bad_exit;
        }
        list[(*n)++] = arg;
        break;
    }
    case O_FORCE: o->force = true; break;
    case O_WAIT: {
        char *end;
        errno = 0;
        o->wait_s = strtod(arg, &end);
        if (end == arg || *end || errno) {
            pd_submit_usage_error(s, "--wait wants seconds (-1: for ever), not '%s'", arg);
            return bad_exit;
        }
        o->wait_set = true;
        break;
    }
    case O_RELEASE: o->release = true; break;
    case O_TTL: {
        uint32_t ttl;
        if (!s_parse_u32(arg, &ttl)) {
            pd_submit_usage_error(s, "--ttl wants seconds (0: every fetched result), not '%s'",
                                  arg);
            return bad_exit;
        }
        o->ttl_s = ttl;
        break;
    }
    case O_NODES:
        if (!s_parse_u32(arg, &u) || u == 0 || u > 4096) {
            pd_submit_usage_error(s, "--nodes wants a number of nodes from 1 to 4096, not '%s'",
                                  arg);
            return bad_exit;
        }
        o->nodes = (int) u;
        break;
    case O_GRAPH: o->graph = arg; break;
    case O_ARG: o->arg = arg; break;
    case O_IO:
        if (!s_parse_u32(arg, &u) || u > INT32_MAX) {
            pd_submit_usage_error(s, "--io-timeout-ms wants milliseconds (0: for ever), not '%s'",
                                  arg);
            return bad_exit;
        }
        o->io_timeout_ms = u == 0 ? PD_TASK_NO_TIMEOUT : (int) u;
        break;
    case O_START:
        if (!s_parse_u32(arg, &o->start_timeout_ms) || o->start_timeout_ms == 0) {
            pd_submit_usage_error(s, "--start-timeout-ms wants milliseconds, not '%s'", arg);
            return bad_exit;
        }
        break;
    case O_WINDOW:
        if (!s_parse_u32(arg, &o->window) || o->window == 0 || o->window > (1u << 24)) {
            pd_submit_usage_error(s, "--window wants a number of messages from 1 to 16777216, "
                                  "not '%s'", arg);
            return bad_exit;
        }
        break;
    case O_JSON: o->json = true; break;
    case O_ALGO: {
        pd_algo_t a;
        if (pd_algo_parse(arg, &a) && strcmp(arg, "bipop") != 0) {
            pd_submit_usage_error(s, "--algo wants pso, ga, cmaes, bipop or de, not '%s'", arg);
            return bad_exit;
        }
        o->optim.algo = arg;
        break;
    }
    case O_BOUNDS: o->optim.bounds = arg; break;
    case O_INIT: o->optim.init = arg; break;
    case O_TOPOLOGY: o->optim.topology = arg; break;
    case O_DIM:
    case O_ISLANDS:
    case O_POPSIZE:
    case O_MIGRATE_EVERY:
    case O_MIGRANTS:
    case O_GROUPS:
        for (size_t i = 0; i < sizeof s_counts / sizeof s_counts[0]; i++) {
            uint64_t v;
            if (s_counts[i].code != code)
                continue;
            if (!s_count(s, s_counts[i].opt, s_counts[i].what, arg, s_counts[i].lo,
                         s_counts[i].hi, &v))
                return bad_exit;
            *s_count_field(&o->optim, code) = (uint32_t) v;
        }
        o->optim.migrate_every_set |= code == O_MIGRATE_EVERY;
        break;
    case O_BUDGET:
        if (!s_count(s, "budget", "a number of evaluations", arg, 1, UINT64_MAX,
                     &o->optim.budget))
            return bad_exit;
        break;
    case O_ITERATIONS:
        if (!s_count(s, "iterations", "a number of iterations", arg, 1, UINT64_MAX,
                     &o->optim.iterations))
            return bad_exit;
        break;
    case O_SEED:
        if (!s_count(s, "seed", "a number", arg, 0, UINT64_MAX, &o->optim.seed))
            return bad_exit;
        break;
    case O_POLISH:
        if (!s_count(s, "polish", "a number of evaluations", arg, 1, UINT64_MAX,
                     &o->optim.polish))
            return bad_exit;
        break;
    case O_TARGET: {
        char *end;
        errno = 0;
        o->optim.target = strtod(arg, &end);
        if (end == arg || *end || errno || !isfinite(o->optim.target)) {
            pd_submit_usage_error(s, "--target wants a finite number (the fitness value to "
                                  "reach), not '%s'", arg);
            return bad_exit;
        }
        o->optim.target_set = true;
        break;
    }
    case O_MAXIMIZE: o->optim.maximize = true; break;
    case O_HISTORY: o->optim.history = true; break;
    case O_CONFIG: o->config = arg; break;
    case O_SECURE:
    case O_INSECURE: {
        pd_security_t want = code == O_SECURE ? PD_SECURITY_CURVE : PD_SECURITY_NONE;
        if (o->conn.security != PD_SECURITY_AUTO && o->conn.security != want) {
            pd_submit_usage_error(s, "%s", "--secure and --insecure exclude each other");
            return bad_exit;
        }
        o->conn.security = want;
        break;
    }
    case O_KEY: o->conn.key_file = arg; break;
    case O_BROKER_KEY: o->conn.broker_key = arg; break;
    case O_CONFIG_DIR: o->conn.config_dir = arg; break;
    case O_CLUSTER:
        if (!pd_beacon_name_ok(arg)) {
            pd_submit_usage_error(s, "--cluster wants 1 to 63 letters, digits, '-', '_' or '.', "
                                  "not '%s'", arg);
            return bad_exit;
        }
        o->cluster = arg;
        break;
    default: break;
    }
    return 0;
}

/* Parses options of argv[1..] accepted where `where` says (V_GLOBAL before
   the verb, else a verb bit). permute: options may follow positional
   arguments. On return *first is the index of the first positional argument
   (getopt_long moved them to the end). Returns 0, a usage exit status, or
   -1 when --help was handled. */
static int s_parse(pd_submit_t *s, int argc, char **argv, int where, bool permute, int *first,
                   int bad_exit)
{
    struct option longs[S_NOPTS + 1];
    for (size_t i = 0; i < S_NOPTS; i++)
        longs[i] = s_opts[i].opt;
    memset(&longs[S_NOPTS], 0, sizeof longs[S_NOPTS]);
    /* '+': stop at the first positional argument; ':': report a missing value. */
    const char *shorts = permute ? ":b:l:qha:k" : "+:b:l:qha:k";
    optind = 0; /* glibc: start afresh */
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
        const char *given = argv[optind - 1];
        if (ch == '?' || ch == ':') {
            char help[64];
            snprintf(help, sizeof help, "playdoh-submit%s%s", s->o.verb ? " " : "",
                     s->o.verb ? s->o.verb : "");
            pd_cli_option_error("playdoh-submit", help, given, optopt, ch == ':');
            return bad_exit;
        }
        const s_opt_t *so = NULL;
        for (size_t i = 0; i < S_NOPTS; i++)
            if (s_opts[i].opt.val == ch)
                so = &s_opts[i];
        if (!so)
            return bad_exit;
        if (!(so->verbs & (where | V_GLOBAL))) {
            char verbs[128];
            s_verbs_of(so->verbs, verbs, sizeof verbs);
            if (where == V_GLOBAL)
                pd_submit_usage_error(s, "--%s is an option of %s: put it after the verb",
                                      so->opt.name, verbs);
            else
                pd_submit_usage_error(s, "--%s is not an option of %s (it belongs to %s)",
                                      so->opt.name, s->o.verb, verbs);
            return bad_exit;
        }
        if (ch == O_VERSION) {
            pd_cli_version("playdoh-submit");
            return -1;
        }
        if (ch == O_HELP) {
            const char *text = NULL;
            for (size_t i = 0; i < S_NVERBS; i++)
                if (s->o.verb && strcmp(s->o.verb, s_verbs[i].name) == 0)
                    text = s_verbs[i].usage;
            if (text)
                printf("%s\n%s", text, S_GLOBAL_HELP);
            else
                s_usage(stdout);
            return -1;
        }
        int rc = s_apply(s, ch, optarg, bad_exit);
        if (rc)
            return rc;
    }
    *first = optind;
    return 0;
}

/* ---- session ------------------------------------------------------------- */

/* Where the broker is: --broker, $PLAYDOH_BROKER, [submit] broker, a beacon
   of the cluster (with CurveZMQ, only one whose key this account trusts),
   else tcp://127.0.0.1:5555; and the security settings of [submit] where
   flags did not set them. Returns 0, 2 (bad file) or 3 (only untrusted
   brokers answered: the command to trust one is printed). */
static int s_find_broker(pd_submit_opts_t *o, char *ep, size_t cap)
{
    pd_config_t *cf = pd_config_new();
    char why[1024];
    if (!cf || pd_config_load_default(cf, o->config, why, sizeof why)) {
        fprintf(stderr, "playdoh-submit: %s\n", cf ? why : "out of memory");
        pd_config_destroy(&cf);
        return PD_EXIT_USAGE;
    }
    /* Security: flags win over [submit] (values checked at load time). */
    if (o->conn.security == PD_SECURITY_AUTO) {
        pd_sec_mode_t m = PD_SEC_AUTO;
        pd_auth_mode_parse(pd_config_str(cf, "submit", "security", "auto"), &m);
        o->conn.security = (pd_security_t) m;
    }
    if (!o->conn.key_file && pd_config_has(cf, "submit", "key")) {
        snprintf(o->conf_key, sizeof o->conf_key, "%s", pd_config_str(cf, "submit", "key", ""));
        o->conn.key_file = o->conf_key;
    }
    if (!o->conn.broker_key && pd_config_has(cf, "submit", "broker_key")) {
        snprintf(o->conf_bkey, sizeof o->conf_bkey, "%s",
                 pd_config_str(cf, "submit", "broker_key", ""));
        o->conn.broker_key = o->conf_bkey;
    }
    const char *env = getenv("PLAYDOH_BROKER");
    if (o->broker || (env && *env)) {
        snprintf(ep, cap, "%s", o->broker ? o->broker : env);
        pd_config_destroy(&cf);
        return 0;
    }
    const char *conf = pd_config_str(cf, "submit", "broker", "");
    if (pd_config_has(cf, "submit", "timeout_ms"))
        o->timeout_req_ms = (int) pd_config_uint(cf, "submit", "timeout_ms", 30000);
    if (conf[0]) {
        snprintf(ep, cap, "%s", conf);
        pd_config_destroy(&cf);
        return 0;
    }
    const char *cluster = o->cluster ? o->cluster
                                     : pd_config_str(cf, "cluster", "name",
                                                     PD_BEACON_DEFAULT_CLUSTER);
    int port = (int) pd_config_uint(cf, "cluster", "beacon_port", PD_BEACON_DEFAULT_PORT);
    int wait = (int) pd_config_uint(cf, "cluster", "discover_timeout_ms",
                                    PD_BEACON_DEFAULT_DISCOVER_MS);
    const char *iface = pd_config_str(cf, "cluster", "beacon_interface", NULL);
    /* With CurveZMQ only a broker whose key this account trusts will do: a
       forged beacon leads nowhere (beacons of untrusted brokers are skipped). */
    bool secure = o->conn.security != PD_SECURITY_NONE && !o->conn.broker_key;
    char key[PD_KEY_TXT] = "";
    int rc = port ? pd_discover_broker(cluster, port, iface, wait,
                                       secure ? (o->conn.config_dir ? o->conn.config_dir : "")
                                              : NULL,
                                       ep, cap, key)
                  : PD_ETIMEDOUT;
    if (rc == PD_ENOTRUSTED) {
        pd_auth_trust_hint(ep, key[0] ? key : NULL, why, sizeof why);
        fprintf(stderr, "playdoh-submit: the only broker of cluster '%s' heard: %s\n", cluster,
                why);
        pd_config_destroy(&cf);
        return PD_EXIT_BROKER;
    }
    if (rc) {
        /* A broker on this machine answers a hello in milliseconds: a short
           wait, so that a forgotten --local is said within 3 s in all. */
        snprintf(ep, cap, "tcp://127.0.0.1:5555");
        pd_log_info("no beacon of cluster '%s' heard on UDP port %d within %d ms (%s); trying %s",
                    cluster, port, wait, pd_strerror(rc), ep);
        o->default_broker = true;
        if (port)
            snprintf(o->discovered, sizeof o->discovered,
                     "no beacon of cluster '%s' heard on UDP port %d within %d ms", cluster, port,
                     wait);
        else
            snprintf(o->discovered, sizeof o->discovered, "beacons are off ([cluster] "
                     "beacon_port = 0)");
        const char *env = getenv("PLAYDOH_CONNECT_TIMEOUT_MS");
        if (o->conn.connect_timeout_ms <= 0 && !(env && atoi(env) > 0))
            o->conn.connect_timeout_ms = S_LOOPBACK_CONNECT_MS;
    } else if (secure && key[0]) {
        snprintf(o->conf_bkey, sizeof o->conf_bkey, "%s", key);
        o->conn.broker_key = o->conf_bkey;
    }
    pd_config_destroy(&cf);
    return 0;
}


pd_client_t *pd_submit_connect(pd_submit_t *s)
{
    if (s->c)
        return s->c;
    int err = 0;
    char found[300];
    const char *ep = s->o.broker;
    if (s->o.local) {
        if (ep) {
            pd_submit_usage_error(s, "--local and --broker exclude each other");
            return NULL;
        }
        char why[3072] = "";
        pd_local_opts_t lo = {.cpus = s->o.local, .why = why, .whycap = sizeof why};
        s->local = pd_local_start_opts(&lo, &err);
        if (!s->local) {
            fprintf(stderr, "playdoh-submit: could not start the local cluster: %s\n",
                    why[0] ? why : pd_strerror(err));
            return NULL;
        }
        ep = pd_local_endpoint(s->local);
    } else {
        if (s_find_broker(&s->o, found, sizeof found))
            return NULL;
        ep = found;
    }
    char why[2048] = "";
    pd_client_opts_t conn = s->local ? *pd_local_client_opts(s->local) : s->o.conn;
    conn.why = why;
    conn.whycap = sizeof why;
    s->c = pd_client_open(ep, &conn, &err);
    if (s->c && s->o.timeout_req_ms > 0)
        pd_client_set_timeout(s->c, s->o.timeout_req_ms);
    if (!s->c && err == PD_EUNREACH && s->o.default_broker) {
        const char *verb = s->o.verb ? s->o.verb : "map";
        bool runs = strcmp(verb, "map") == 0 || strcmp(verb, "exec") == 0 ||
                    strcmp(verb, "task") == 0 || strcmp(verb, "optimize") == 0;
        fprintf(stderr,
                "playdoh-submit: no broker found: none named (--broker, PLAYDOH_BROKER, [submit] "
                "broker), %s, and none answers at %s. To run on this machine alone, add "
                "--local N (an embedded cluster of N slots%s%s%s); to use a cluster, start "
                "playdoh-broker or give its endpoint with --broker\n", s->o.discovered, ep,
                runs ? ", e.g. playdoh-submit --local 4 " : "", runs ? verb : "",
                runs ? " ..." : "");
    } else if (!s->c)
        fprintf(stderr, "playdoh-submit: %s\n", why[0] ? why : pd_strerror(err));
    return s->c;
}

bool pd_submit_progress_wanted(const pd_submit_t *s)
{
    return !s->o.quiet && !s->o.no_progress && isatty(STDERR_FILENO);
}

/* ---- ids ----------------------------------------------------------------- */

/* Parses "17" or "1-1000" items into a growing array. Returns 0 or 2. */
static int s_parse_ids(pd_submit_t *s, int argc, char **argv, uint64_t **ids, size_t *n)
{
    size_t cap = 0;
    *ids = NULL;
    *n = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        char *end;
        errno = 0;
        uint64_t lo = strtoull(a, &end, 10), hi = lo;
        bool ok = !errno && end != a && a[0] != '-' && lo > 0;
        if (ok && *end == '-') {
            const char *t = end + 1;
            hi = strtoull(t, &end, 10);
            ok = !errno && end != t && hi >= lo && t[0] != '-';
        }
        if (!ok || *end || hi - lo >= 100000000ULL) {
            free(*ids);
            *ids = NULL;
            pd_submit_usage_error(s, "'%s' is not a job id or a range of ids (like 17 or 1-1000)",
                                  a);
            return PD_EXIT_USAGE;
        }
        for (uint64_t x = lo; x <= hi; x++) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 64;
                uint64_t *grown = realloc(*ids, cap * sizeof **ids);
                if (!grown) {
                    free(*ids);
                    *ids = NULL;
                    fprintf(stderr, "playdoh-submit: out of memory\n");
                    return PD_EXIT_USAGE;
                }
                *ids = grown;
            }
            (*ids)[(*n)++] = x;
        }
    }
    if (*n == 0) {
        pd_submit_usage_error(s, "no job ids given");
        return PD_EXIT_USAGE;
    }
    return 0;
}

void pd_submit_print_ranges(FILE *f, const uint64_t *ids, size_t n)
{
    size_t i = 0;
    bool first = true;
    while (i < n) {
        if (ids[i] == 0) {
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < n && ids[j] == ids[j - 1] + 1)
            j++;
        fprintf(f, first ? "" : " ");
        if (j - i == 1)
            fprintf(f, "%" PRIu64, ids[i]);
        else
            fprintf(f, "%" PRIu64 "-%" PRIu64, ids[i], ids[j - 1]);
        first = false;
        i = j;
    }
    fprintf(f, "\n");
}

/* ---- following jobs ------------------------------------------------------- */

typedef struct {
    uint64_t id;  /* job id */
    size_t index; /* its position in the caller's list */
} s_pos_t;

static int s_pos_cmp(const void *a, const void *b)
{
    const s_pos_t *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The pending ids: sorted, with ended ones zeroed (tombstones) and skipped. */
typedef struct {
    uint64_t *ids;  /* sorted job ids; 0 = ended */
    size_t n;       /* entries */
    size_t head;    /* entries before head are all ended */
    size_t live;    /* entries not ended */
} s_pending_t;

/* Marks entry k (the job's rank in id order) as ended. */
static void s_pending_drop(s_pending_t *p, size_t k)
{
    if (p->ids[k] == 0)
        return;
    p->ids[k] = 0;
    p->live--;
    while (p->head < p->n && p->ids[p->head] == 0)
        p->head++;
}

/* Flushes the ids to release. */
static void s_release_flush(pd_client_t *c, uint64_t *rel, size_t *nrel)
{
    if (*nrel)
        pd_release(c, rel, *nrel);
    *nrel = 0;
}

static int s_u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

/* Hands out ids[i] (still pending when Ctrl-C stopped the collect) as
   cancelled: a result of state cancelled, code PD_ECANCELLED, no value. */
static void s_emit_cancelled(pd_submit_emit_fn *emit, void *user, size_t i, uint64_t id)
{
    pd_result_t r = {.id = id, .state = PD_JOB_CANCELLED, .code = PD_ECANCELLED};
    if (emit)
        emit(user, i, &r);
}

/* After Ctrl-C: cancels the jobs still pending at the broker. list has
   room for every pending id (it is scratch). */
static void s_cancel_pending(pd_client_t *c, const s_pending_t *pend, uint64_t *list)
{
    size_t k = 0;
    for (size_t i = pend->head; i < pend->n; i++)
        if (pend->ids[i])
            list[k++] = pend->ids[i];
    long rc = k ? pd_cancel(c, list, k) : 0;
    if (rc < 0)
        fprintf(stderr, "playdoh-submit: could not cancel the %zu jobs not done: %s\n", k,
                pd_client_error(c));
}

int pd_submit_collect(pd_submit_t *s, const uint64_t *ids, size_t n, int timeout_ms,
                      bool keep_order, bool release, bool interruptible, pd_progress_t *bar,
                      pd_submit_emit_fn *emit, void *user, size_t *done, size_t *failed)
{
    pd_client_t *c = s->c;
    *done = *failed = 0;
    s_pos_t *pos = malloc((n ? n : 1) * sizeof *pos);
    s_pending_t pend = {.ids = malloc((n ? n : 1) * sizeof(uint64_t)), .n = n, .live = n};
    uint64_t *query = malloc(((n < S_QUERY_IDS ? n : S_QUERY_IDS) + 1) * sizeof *query);
    pd_result_t **held = keep_order ? calloc(n ? n : 1, sizeof *held) : NULL;
    pd_result_t *batch = calloc(PD_FETCH_ANY_MAX, sizeof *batch);
    uint64_t *rel = malloc(S_RELEASE_BATCH * sizeof *rel);
    bool stopping = false;      /* Ctrl-C came: the jobs not done are cancelled */
    uint64_t *cancelled = NULL; /* then: the ids shown cancelled */
    size_t ncancel = 0;
    int rc = 0;
    if (!pos || !pend.ids || !query || (keep_order && !held) || !batch || !rel) {
        fprintf(stderr, "playdoh-submit: out of memory following %zu jobs\n", n);
        rc = PD_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        pos[i] = (s_pos_t){ids[i], i};
    qsort(pos, n, sizeof *pos, s_pos_cmp);
    for (size_t i = 0; i < n; i++)
        pend.ids[i] = pos[i].id;
    size_t nrel = 0, cursor = 0;
    pd_progress_update(bar, 0, 0, true);
    long long deadline_ms = timeout_ms;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* Ctrl-C: the first cancels the jobs not done, prints what ended and
       stops; the second (the default action is back by then) exits at
       once. */
    if (interruptible)
        pd_plat_catch_interrupt(true);
    while (pend.live > 0) {
        int wait = bar ? 500 : 5000;
        if (interruptible && wait > S_INTERRUPT_POLL_MS)
            wait = S_INTERRUPT_POLL_MS;
        if (interruptible && !stopping && pd_plat_interrupt_taken()) {
            stopping = true;
            pd_progress_hide(bar);
            pd_plat_catch_interrupt(false);
            fprintf(stderr, "playdoh-submit: interrupted: cancelling the %zu jobs not done "
                    "(Ctrl-C again to quit at once)\n", pend.live);
            cancelled = malloc((n ? n : 1) * sizeof *cancelled);
            if (!cancelled) {
                fprintf(stderr, "playdoh-submit: out of memory stopping %zu jobs\n", n);
                rc = PD_ENOMEM;
                goto out;
            }
            s_cancel_pending(c, &pend, cancelled);
        }
        if (stopping)
            wait = 0; /* what ended is in, or is cancelled */
        if (timeout_ms >= 0) {
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            long long spent = (t.tv_sec - t0.tv_sec) * 1000LL + (t.tv_nsec - t0.tv_nsec) / 1000000;
            if (spent >= deadline_ms && wait > 0)
                wait = 0;
            else if (deadline_ms - spent < wait)
                wait = (int) (deadline_ms - spent);
        }
        size_t nq = 0;
        for (size_t i = pend.head; i < pend.n && nq < S_QUERY_IDS; i++)
            if (pend.ids[i])
                query[nq++] = pend.ids[i];
        long got = pd_fetch_any(c, query, nq, wait, batch, PD_FETCH_ANY_MAX);
        if (got < 0) {
            pd_progress_hide(bar);
            fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
            rc = (int) got;
            break;
        }
        bool emitted = false;
        for (long k = 0; k < got; k++) {
            pd_result_t *r = &batch[k];
            s_pos_t key = {r->id, 0};
            s_pos_t *p = bsearch(&key, pos, n, sizeof *pos, s_pos_cmp);
            if (!p) { /* not ours: cannot happen, the broker answers what we ask */
                pd_results_clear(r, 1);
                continue;
            }
            s_pending_drop(&pend, (size_t) (p - pos));
            if (r->state == PD_JOB_DONE)
                (*done)++;
            else if (stopping && r->state == PD_JOB_CANCELLED)
                cancelled[ncancel++] = r->id;
            else
                (*failed)++;
            if (keep_order) {
                held[p->index] = malloc(sizeof *r);
                if (!held[p->index]) {
                    fprintf(stderr, "playdoh-submit: out of memory holding results\n");
                    pd_results_clear(r, 1);
                    rc = PD_ENOMEM;
                    goto out;
                }
                *held[p->index] = *r; /* takes its buffers */
                memset(r, 0, sizeof *r);
                continue;
            }
            if (emit) {
                if (!emitted)
                    pd_progress_hide(bar);
                emitted = true;
                emit(user, p->index, r);
            }
            if (release) {
                rel[nrel++] = r->id;
                if (nrel == S_RELEASE_BATCH)
                    s_release_flush(c, rel, &nrel);
            }
            pd_results_clear(r, 1);
        }
        while (keep_order && cursor < n && held[cursor]) {
            pd_result_t *r = held[cursor];
            if (emit) {
                if (!emitted)
                    pd_progress_hide(bar);
                emitted = true;
                emit(user, cursor, r);
            }
            if (release) {
                rel[nrel++] = r->id;
                if (nrel == S_RELEASE_BATCH)
                    s_release_flush(c, rel, &nrel);
            }
            pd_results_clear(r, 1);
            free(r);
            held[cursor++] = NULL;
        }
        if (emitted)
            fflush(stdout);
        if (!stopping)
            pd_progress_update(bar, *done, *failed, emitted);
        if (got == 0 && wait == 0)
            break; /* the wait ran out */
    }
    if (stopping && rc == 0) {
        /* In input order: what ended and waits for its turn, and a
           cancelled mark for each job not done. */
        for (size_t i = keep_order ? cursor : 0; i < n; i++) {
            pd_result_t *r = keep_order ? held[i] : NULL;
            if (r) {
                if (emit)
                    emit(user, i, r);
                if (release)
                    rel[nrel++] = r->id;
                pd_results_clear(r, 1);
                free(r);
                held[i] = NULL;
            } else {
                s_pos_t key = {ids[i], 0};
                s_pos_t *p = bsearch(&key, pos, n, sizeof *pos, s_pos_cmp);
                if (!p || !pend.ids[p - pos])
                    continue; /* ended, and already handed out */
                s_emit_cancelled(emit, user, i, ids[i]);
                cancelled[ncancel++] = ids[i];
                if (release)
                    rel[nrel++] = ids[i];
            }
            if (nrel == S_RELEASE_BATCH)
                s_release_flush(c, rel, &nrel);
        }
        fflush(stdout);
        fprintf(stderr, "playdoh-submit: interrupted: %zu of %zu jobs ended and are printed "
                "(%zu done, %zu failed); %zu cancelled, with ids: ", *done + *failed, n, *done,
                *failed, ncancel);
        qsort(cancelled, ncancel, sizeof *cancelled, s_u64_cmp);
        if (ncancel)
            pd_submit_print_ranges(stderr, cancelled, ncancel);
        else
            fprintf(stderr, "none\n");
        fprintf(stderr, "playdoh-submit: (--detach leaves jobs running: results, status and "
                "cancel take their ids later)\n");
        rc = PD_ECANCELLED;
    }
    if (release)
        s_release_flush(c, rel, &nrel);
out:
    if (interruptible)
        pd_plat_catch_interrupt(false);
    free(cancelled);
    if (held) {
        for (size_t i = 0; i < n; i++)
            if (held[i]) {
                pd_results_clear(held[i], 1);
                free(held[i]);
            }
        free(held);
    }
    free(pos);
    free(pend.ids);
    free(query);
    free(batch);
    free(rel);
    return rc;
}

/* ---- JSON output --------------------------------------------------------- */

static void s_put_json_str(pd_buf_t *out, const char *str)
{
    pd_buf_t tmp;
    pd_buf_init(&tmp);
    msgpack_packer pk;
    pd_packer_init(&pk, &tmp);
    pd_pack_cstr(&pk, str);
    pd_msgpack_to_json(tmp.data, tmp.len, out);
    pd_buf_free(&tmp);
}

static void s_put(pd_buf_t *out, const char *str) { pd_buf_append(out, str, strlen(str)); }

/* One result as a JSON record line: {"id":..,"state":..,...}. */
static void s_put_record(pd_buf_t *out, const pd_result_t *r)
{
    char head[96];
    snprintf(head, sizeof head, "{\"id\":%" PRIu64 ",\"state\":\"%s\"", r->id,
             pd_job_state_name(r->state));
    s_put(out, head);
    if (r->state == PD_JOB_DONE) {
        s_put(out, ",\"value\":");
        pd_msgpack_to_json(r->value, r->len, out);
    } else if (r->state == PD_JOB_FAILED) {
        s_put(out, ",\"code\":");
        s_put_json_str(out, pd_err_name(r->code));
        s_put(out, ",\"error\":");
        s_put_json_str(out, r->error ? r->error : "");
        if (r->value) {
            s_put(out, ",\"value\":");
            pd_msgpack_to_json(r->value, r->len, out);
        }
    }
    s_put(out, "}\n");
}

static void s_flush(pd_buf_t *out)
{
    if (out->len)
        fwrite(out->data, 1, out->len, stdout);
    fflush(stdout);
    pd_buf_reset(out);
}

/* ---- map ----------------------------------------------------------------- */

/* Reads ARGS.jsonl into packed msgpack values; returns 0 or 2. */
static int s_read_args(const char *path, pd_buf_t *args, size_t *n)
{
    bool std = strcmp(path, "-") == 0;
    FILE *f = std ? stdin : fopen(path, "r");
    if (!f) {
        fprintf(stderr, "playdoh-submit: cannot read arguments from %s: %s\n", path,
                strerror(errno));
        return PD_EXIT_USAGE;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    size_t lineno = 0;
    int rc = 0;
    *n = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t l = (size_t) len;
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r' || line[l - 1] == ' ' ||
                     line[l - 1] == '\t'))
            l--;
        size_t st = 0;
        while (st < l && (line[st] == ' ' || line[st] == '\t'))
            st++;
        if (st == l)
            continue; /* blank lines carry no job */
        char err[256];
        if (pd_json_to_msgpack(line + st, l - st, args, err, sizeof err)) {
            fprintf(stderr, "playdoh-submit: %s line %zu: %s\n", std ? "standard input" : path,
                    lineno, err);
            rc = 2;
            break;
        }
        (*n)++;
    }
    if (!rc && ferror(f)) {
        fprintf(stderr, "playdoh-submit: cannot read arguments from %s: %s\n",
                std ? "standard input" : path, strerror(errno));
        rc = 2;
    }
    free(line);
    if (!std)
        fclose(f);
    return rc;
}

/* What the map printer needs. */
typedef struct {
    const pd_submit_t *s; /* the session, for --quiet */
    pd_buf_t out;         /* pending output */
    const uint64_t *ids;  /* the map's jobs, cancelled at a module failure */
    size_t n;             /* how many */
    int broken;           /* the module failure met (PD_ECOMPILE, PD_ENOFUNC), or 0 */
    char *broken_msg;     /* its message (owned) */
    size_t nbroken;       /* jobs that met it (the others were cancelled) */
    size_t after;         /* results met after it, not printed */
} s_map_print_t;

/* True for a job that failed because its module cannot run the function
   at all: the broker then ends the whole batch (docs/broker.md). */
static bool s_module_failure(const pd_result_t *r)
{
    return r->state == PD_JOB_FAILED && (r->code == PD_ECOMPILE || r->code == PD_ENOFUNC);
}

/* The map's first module failure: every job is cancelled (the broker did
   so for the failing job's batch; this reaches the map's other batches),
   nothing more is printed, and s_map_broken says it once at the end. */
static void s_map_note_broken(s_map_print_t *p, const pd_result_t *r)
{
    p->nbroken++;
    if (p->broken)
        return;
    pd_cancel(p->s->c, p->ids, p->n);
    p->broken = r->code;
    p->broken_msg = strdup(r->error ? r->error : pd_strerror(r->code));
}

/* Prints the module failure: the worker's message (its first line, then at
   most S_DIAG_LINES lines of the compiler's output) and what became of the
   jobs. */
#define S_DIAG_LINES 20
static void s_map_broken(const s_map_print_t *p)
{
    const char *msg = p->broken_msg ? p->broken_msg : pd_strerror(p->broken);
    /* The client's " (job N on HOST slot S)" closes the message: it goes on
       the first line, the compiler's lines stay as they were. */
    const char *where = strstr(msg, " (job ");
    while (where && strstr(where + 1, " (job "))
        where = strstr(where + 1, " (job ");
    size_t len = where && !strchr(where, '\n') ? (size_t) (where - msg) : strlen(msg);
    const char *nl = memchr(msg, '\n', len);
    size_t first = nl ? (size_t) (nl - msg) : len;
    if (first && msg[first - 1] == ':')
        first--;
    fprintf(stderr, "playdoh-submit: map: %.*s%s%s\n", (int) first, msg,
            len < strlen(msg) ? msg + len : "", nl ? ":" : "");
    size_t lines = 0;
    while (nl && lines < S_DIAG_LINES) {
        const char *line = nl + 1;
        nl = memchr(line, '\n', len - (size_t) (line - msg));
        fprintf(stderr, "%.*s\n", (int) (nl ? (size_t) (nl - line) : len - (size_t) (line - msg)),
                line);
        lines++;
    }
    size_t more = 0;
    for (; nl; nl = memchr(nl + 1, '\n', len - (size_t) (nl + 1 - msg)))
        more++;
    if (more)
        fprintf(stderr, "playdoh-submit: map: (%zu more lines: run the compiler on the module "
                "to see them all)\n", more);
    if (!p->s->o.quiet)
        fprintf(stderr, "playdoh-submit: map: no result: the module %s; the other %zu jobs "
                "were cancelled before running; fix it and submit again\n",
                p->broken == PD_ENOFUNC ? "lacks the function" : "does not compile",
                p->n - p->nbroken);
}

static void s_map_emit(void *user, size_t index, const pd_result_t *r)
{
    s_map_print_t *p = user;
    if (s_module_failure(r))
        s_map_note_broken(p, r);
    if (p->broken) {
        p->after++;
        return;
    }
    if (r->state == PD_JOB_CANCELLED) {
        pd_submit_put_cancelled(&p->out, r->id);
    } else if (r->state == PD_JOB_DONE) {
        pd_msgpack_to_json(r->value, r->len, &p->out);
        s_put(&p->out, "\n");
    } else {
        s_put(&p->out, "{\"error\":");
        s_put_json_str(&p->out, r->error ? r->error : pd_job_state_name(r->state));
        char tail[64];
        snprintf(tail, sizeof tail, ",\"job\":%" PRIu64 ",\"code\":", r->id);
        s_put(&p->out, tail);
        s_put_json_str(&p->out, pd_err_name(r->code));
        s_put(&p->out, "}\n");
        if (!p->s->o.quiet) {
            s_flush(&p->out);
            fprintf(stderr, "playdoh-submit: job %" PRIu64 " (argument %zu) %s: %s\n", r->id,
                    index + 1, pd_job_state_name(r->state),
                    r->error ? r->error : pd_strerror(r->code));
        }
    }
    if (p->out.len > (1u << 16))
        s_flush(&p->out);
}

/* Uploads MODULE: one file, or "a.c,b.c,util.h,-lm,-O3" (files and flags
   separated by commas) as a module of several files. */
static int s_upload_module(pd_client_t *c, const char *spec, char hash[PD_HASH_HEX])
{
    if (!strchr(spec, ','))
        return pd_module_upload_file(c, spec, hash);
    char *copy = strdup(spec);
    size_t n = 1;
    for (const char *p = spec; *p; p++)
        n += *p == ',';
    const char **files = calloc(n, sizeof *files), **flags = calloc(n, sizeof *flags);
    int rc = PD_ENOMEM;
    if (copy && files && flags) {
        size_t nfiles = 0, nflags = 0;
        char *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (t[0] == '-')
                flags[nflags++] = t;
            else
                files[nfiles++] = t;
        }
        rc = pd_module_upload_files(c, files, nfiles, flags, nflags, hash);
    }
    free(copy);
    free(files);
    free(flags);
    return rc;
}

int pd_submit_upload_module(pd_submit_t *s, const char *spec, char hash[PD_HASH_HEX])
{
    int rc = s_upload_module(s->c, spec, hash);
    if (rc == 0)
        return 0;
    fprintf(stderr, "playdoh-submit: %s: %s\n", s->o.verb,
            rc == PD_ENOMEM ? "out of memory" : pd_client_error(s->c));
    return rc == PD_EIO || rc == PD_EINVAL || rc == PD_ETOOBIG ? 2 : 3;
}

int pd_submit_upload_cuda(pd_submit_t *s, const char *module, char hash[PD_HASH_HEX], bool *has)
{
    *has = false;
    char beside[4096];
    const char *cuda = s->o.cuda;
    size_t ml = strlen(module);
    if (!cuda && s->o.gpu && ml > 2 && strcmp(module + ml - 2, ".c") == 0 &&
        ml + 2 < sizeof beside) {
        snprintf(beside, sizeof beside, "%.*s.cu", (int) (ml - 2), module);
        if (access(beside, R_OK) == 0) {
            cuda = beside;
            pd_log_info("shipping %s with the %s (the kernels beside %s)", beside,
                        strcmp(s->o.verb, "map") == 0 ? "jobs" : "nodes", module);
        }
    }
    if (!cuda)
        return 0;
    size_t cl = strlen(cuda);
    if (cl < 3 || strcmp(cuda + cl - 3, ".cu") != 0) {
        fprintf(stderr, "playdoh-submit: %s: --cuda wants a CUDA source file ending in .cu, "
                        "not '%s'\n", s->o.verb, cuda);
        return PD_EXIT_USAGE;
    }
    int rc = pd_module_upload_file(s->c, cuda, hash);
    if (rc) {
        fprintf(stderr, "playdoh-submit: %s: %s\n", s->o.verb, pd_client_error(s->c));
        return rc == PD_EIO || rc == PD_EINVAL || rc == PD_ETOOBIG ? 2 : 3;
    }
    *has = true;
    return 0;
}

/* Checks that every file of a module spec ("a.c,b.h,-lm": the items not
   starting with '-') can be read. Returns 0, or 2 after saying which
   cannot. */
static int s_module_readable(const pd_submit_t *s, const char *spec)
{
    const char *p = spec;
    while (*p) {
        size_t len = strcspn(p, ",");
        char file[4096];
        if (len > 0 && p[0] != '-' && len < sizeof file) {
            memcpy(file, p, len);
            file[len] = 0;
            if (access(file, R_OK) != 0) {
                fprintf(stderr, "playdoh-submit: %s: cannot read module file %s: %s\n",
                        s->o.verb, file, strerror(errno));
                return PD_EXIT_USAGE;
            }
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

static int s_verb_map(pd_submit_t *s, int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        pd_submit_usage_error(s, "map needs MODULE FUNCTION [ARGS.jsonl] (got %d arguments)", argc);
        return PD_EXIT_USAGE;
    }
    pd_buf_t args;
    pd_buf_init(&args);
    size_t n = 0;
    int rc = s_read_args(argc == 3 ? argv[2] : "-", &args, &n);
    if (rc || n == 0) {
        /* No argument lines: nothing to run, as exec (and GNU parallel);
           a module that cannot be read is still an error. */
        pd_buf_free(&args);
        return rc ? rc : s_module_readable(s, argv[0]);
    }
    if (s->o.shared) {
        /* Say so before starting anything: the upload happens later. */
        struct stat st;
        if (stat(s->o.shared, &st) != 0 || access(s->o.shared, R_OK) != 0) {
            fprintf(stderr, "playdoh-submit: map: cannot read shared data %s: %s\n",
                    s->o.shared, strerror(errno));
            pd_buf_free(&args);
            return PD_EXIT_USAGE;
        }
        if (!S_ISREG(st.st_mode) || st.st_size == 0) {
            fprintf(stderr, "playdoh-submit: map: shared data %s is %s\n", s->o.shared,
                    S_ISREG(st.st_mode) ? "empty" : "not a regular file");
            pd_buf_free(&args);
            return PD_EXIT_USAGE;
        }
    }
    pd_client_t *c = pd_submit_connect(s);
    if (!c) {
        pd_buf_free(&args);
        return PD_EXIT_BROKER;
    }
    char hash[PD_HASH_HEX];
    rc = pd_submit_upload_module(s, argv[0], hash);
    if (rc) {
        pd_buf_free(&args);
        return rc;
    }
    char cuda_hash[PD_HASH_HEX];
    bool cuda = false;
    if ((rc = pd_submit_upload_cuda(s, argv[0], cuda_hash, &cuda)) != 0) {
        pd_buf_free(&args);
        return rc;
    }
    uint64_t *ids = calloc(n, sizeof *ids);
    if (!ids) {
        fprintf(stderr, "playdoh-submit: out of memory for %zu jobs\n", n);
        pd_buf_free(&args);
        return PD_EXIT_USAGE;
    }
    char shr[PD_HASH_HEX];
    if (s->o.shared) {
        rc = pd_shared_upload_file(c, s->o.shared, shr);
        if (rc) {
            fprintf(stderr, "playdoh-submit: map: %s\n", pd_client_error(c));
            pd_buf_free(&args);
            free(ids);
            return rc == PD_EIO || rc == PD_EINVAL || rc == PD_ETOOBIG ? 2 : 3;
        }
    }
    pd_map_opts_t mo = {.timeout_ms = s->o.timeout_ms, .retries = s->o.retries,
                        .retry_failed = s->o.retry_failed,
                        .max_slots = s->o.max_slots, .shared = s->o.shared ? shr : NULL,
                        .gpu = s->o.gpu, .cuda = cuda ? cuda_hash : NULL,
                        .memory = s->o.memory, .cpu_time_s = s->o.cpu_time_s,
                        .max_output = s->o.max_output};
    long acc = pd_map(c, hash, argv[1], args.data, args.len, n, &mo, ids);
    pd_buf_free(&args);
    if (acc < 0 || (size_t) acc < n) {
        fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        if (acc > 0) {
            fprintf(stderr, "playdoh-submit: %ld of %zu jobs were accepted, with ids: ", acc, n);
            pd_submit_print_ranges(stderr, ids, n);
        }
        free(ids);
        return PD_EXIT_BROKER;
    }
    if (s->o.detach) {
        pd_submit_print_ranges(stdout, ids, n);
        free(ids);
        return 0;
    }
    s_map_print_t pr = {.s = s, .ids = ids, .n = n};
    pd_buf_init(&pr.out);
    pd_progress_t *bar = pd_progress_new(stderr, n, pd_submit_progress_wanted(s));
    size_t done = 0, failed = 0;
    rc = pd_submit_collect(s, ids, n, -1, true, true, true, bar, s_map_emit, &pr, &done,
                           &failed);
    s_flush(&pr.out);
    pd_buf_free(&pr.out);
    if (!rc && !pr.broken)
        pd_progress_finish(bar);
    pd_progress_destroy(&bar);
    free(ids);
    if (pr.broken) {
        s_map_broken(&pr);
        free(pr.broken_msg);
        return PD_EXIT_USAGE;
    }
    if (rc == PD_ECANCELLED)
        return PD_SUBMIT_INTERRUPTED;
    if (rc)
        return PD_EXIT_BROKER;
    if (failed) {
        if (!s->o.quiet)
            fprintf(stderr, "playdoh-submit: %zu of %zu jobs failed\n", failed, n);
        return PD_EXIT_FAILED;
    }
    return 0;
}

/* ---- status, results, wait, cancel ---------------------------------------- */

static int s_verb_status(pd_submit_t *s, int argc, char **argv)
{
    if (argc > 0 && argv[0][0] == 't')
        return pd_submit_tasks(s, "status", argc, argv);
    uint64_t *ids;
    size_t n;
    int rc = s_parse_ids(s, argc, argv, &ids, &n);
    if (rc)
        return rc;
    pd_client_t *c = pd_submit_connect(s);
    pd_job_state_t *st = c ? calloc(n, sizeof *st) : NULL;
    if (!c || !st || pd_status(c, ids, n, st)) {
        if (c)
            fprintf(stderr, "playdoh-submit: %s\n", st ? pd_client_error(c) : "out of memory");
        free(ids);
        free(st);
        return PD_EXIT_BROKER;
    }
    int exit_code = 0;
    for (size_t i = 0; i < n; i++) {
        printf("{\"id\":%" PRIu64 ",\"state\":\"%s\"}\n", ids[i], pd_job_state_name(st[i]));
        if (st[i] == PD_JOB_UNKNOWN)
            exit_code = 1;
    }
    free(ids);
    free(st);
    return exit_code;
}

static int s_verb_results(pd_submit_t *s, int argc, char **argv)
{
    if (argc > 0 && argv[0][0] == 't')
        return pd_submit_tasks(s, "results", argc, argv);
    uint64_t *ids;
    size_t n;
    int rc = s_parse_ids(s, argc, argv, &ids, &n);
    if (rc)
        return rc;
    pd_client_t *c = pd_submit_connect(s);
    pd_result_t *res = c ? calloc(n, sizeof *res) : NULL;
    if (!res) {
        free(ids);
        return c ? 2 : 3;
    }
    double wait_s = s->o.wait_set ? s->o.wait_s : 0;
    int timeout_ms = wait_s < 0 ? -1 : (int) (wait_s * 1000);
    long got = pd_fetch(c, ids, n, timeout_ms, res, NULL, NULL);
    int exit_code = 0;
    if (got < 0) {
        fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        exit_code = 3;
    } else {
        pd_buf_t out;
        pd_buf_init(&out);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            s_put_record(&out, &res[i]);
            if (res[i].state != PD_JOB_DONE)
                bad++;
            if (out.len > (1u << 20))
                s_flush(&out);
        }
        s_flush(&out);
        pd_buf_free(&out);
        if (s->o.release)
            pd_release(c, ids, n);
        exit_code = bad ? 1 : 0;
    }
    pd_results_clear(res, n);
    free(res);
    free(ids);
    return exit_code;
}


static int s_verb_wait(pd_submit_t *s, int argc, char **argv)
{
    if (argc > 0 && argv[0][0] == 't')
        return pd_submit_tasks(s, "wait", argc, argv);
    uint64_t *ids;
    size_t n;
    int rc = s_parse_ids(s, argc, argv, &ids, &n);
    if (rc)
        return rc;
    /* The same id twice is one job. */
    qsort(ids, n, sizeof *ids, s_u64_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || ids[k - 1] != ids[i])
            ids[k++] = ids[i];
    n = k;
    if (!pd_submit_connect(s)) {
        free(ids);
        return PD_EXIT_BROKER;
    }
    double wait_s = s->o.wait_set ? s->o.wait_s : -1;
    int timeout_ms = wait_s < 0 ? -1 : (int) (wait_s * 1000);
    pd_progress_t *bar = pd_progress_new(stderr, n, pd_submit_progress_wanted(s));
    size_t done = 0, failed = 0;
    rc = pd_submit_collect(s, ids, n, timeout_ms, false, false, false, bar, NULL, NULL, &done,
                           &failed);
    if (!rc)
        pd_progress_finish(bar);
    pd_progress_destroy(&bar);
    free(ids);
    if (rc)
        return PD_EXIT_BROKER;
    size_t unfinished = n - done - failed;
    if (unfinished && !s->o.quiet)
        fprintf(stderr, "playdoh-submit: %zu of %zu jobs still running after the wait\n",
                unfinished, n);
    if (failed && !s->o.quiet)
        fprintf(stderr, "playdoh-submit: %zu of %zu jobs did not end done (see results)\n",
                failed, n);
    return failed || unfinished ? 1 : 0;
}

static int s_verb_cancel(pd_submit_t *s, int argc, char **argv)
{
    if (argc > 0 && argv[0][0] == 't')
        return pd_submit_tasks(s, "cancel", argc, argv);
    uint64_t *ids;
    size_t n;
    int rc = s_parse_ids(s, argc, argv, &ids, &n);
    if (rc)
        return rc;
    pd_client_t *c = pd_submit_connect(s);
    long k = c ? pd_cancel(c, ids, n) : 0;
    free(ids);
    if (!c)
        return PD_EXIT_BROKER;
    if (k < 0) {
        fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        return PD_EXIT_BROKER;
    }
    if (!s->o.quiet)
        fprintf(stderr, "playdoh-submit: %ld of %zu jobs cancelled\n", k, n);
    return 0;
}

/* Appends a JSON string. */
static void s_put_str(pd_buf_t *out, const char *key, const char *val, bool comma)
{
    if (comma)
        s_put(out, ",");
    s_put_json_str(out, key);
    s_put(out, ":");
    s_put_json_str(out, val);
}

static void s_put_num(pd_buf_t *out, const char *key, double v, bool integer)
{
    char num[64];
    if (integer)
        snprintf(num, sizeof num, ",\"%s\":%.0f", key, v);
    else
        snprintf(num, sizeof num, ",\"%s\":%.3f", key, v);
    s_put(out, num);
}

static int s_verb_cluster(pd_submit_t *s, int argc, char **argv)
{
    const pd_submit_opts_t *o = &s->o;
    if (argc > 0) {
        pd_submit_usage_error(s, "cluster takes no arguments, not '%s'", argv[0]);
        return PD_EXIT_USAGE;
    }
    pd_client_t *c = pd_submit_connect(s);
    if (!c)
        return PD_EXIT_BROKER;
    pd_cluster_info_t ci;
    if (pd_cluster_info(c, &ci)) {
        fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        return PD_EXIT_BROKER;
    }
    uint64_t cpus = 0, busy = 0, nodes = 0, gnodes = 0;
    for (size_t i = 0; i < ci.nworkers; i++) {
        cpus += ci.workers[i].cpus;
        busy += ci.workers[i].busy;
        nodes += ci.workers[i].nodes;
        gnodes += ci.workers[i].gpu_nodes;
    }
    pd_buf_t out;
    pd_buf_init(&out);
    if (o->json) {
        s_put(&out, "{");
        s_put_str(&out, "broker", ci.name, false);
        s_put_str(&out, "cluster", ci.cluster, true);
        s_put_str(&out, "endpoint", pd_client_endpoint(c), true);
        s_put_num(&out, "queued", (double) ci.queued, true);
        s_put_num(&out, "unfinished", (double) ci.unfinished, true);
        s_put(&out, ",\"workers\":[");
        for (size_t i = 0; i < ci.nworkers; i++) {
            const pd_worker_info_t *w = &ci.workers[i];
            s_put(&out, i ? ",{" : "{");
            s_put_str(&out, "host", w->host, false);
            s_put_str(&out, "id", w->id, true);
            s_put_num(&out, "pid", (double) w->pid, true);
            s_put_num(&out, "cpus", w->cpus, true);
            s_put_num(&out, "gpus", w->gpus, true);
            s_put_num(&out, "busy", w->busy, true);
            s_put(&out, ",\"load\":");
            if (w->load < 0) {
                s_put(&out, "null");
            } else {
                char num[32];
                snprintf(num, sizeof num, "%.3f", w->load);
                s_put(&out, num);
            }
            s_put_str(&out, "owner", w->owner, true);
            s_put(&out, ",\"gpu_names\":[");
            /* gpu_names is joined by ", ": split it back */
            const char *p = w->gpu_names;
            bool first = true;
            while (*p) {
                const char *sep = strstr(p, ", ");
                size_t len = sep ? (size_t) (sep - p) : strlen(p);
                char name[256];
                snprintf(name, sizeof name, "%.*s", (int) len, p);
                if (!first)
                    s_put(&out, ",");
                s_put_json_str(&out, name);
                first = false;
                p += len + (sep ? 2 : 0);
            }
            s_put(&out, "]");
            s_put_num(&out, "gpu_mem", (double) w->gpu_mem, true);
            uint64_t running = w->busy, waiting = w->inflight > w->busy ? w->inflight - w->busy : 0;
            s_put_num(&out, "queued", (double) waiting, true);
            s_put_num(&out, "running", (double) running, true);
            s_put_num(&out, "done", (double) w->done, true);
            s_put_num(&out, "requeued", (double) w->requeued, true);
            s_put_num(&out, "task_nodes", (double) w->nodes, true);
            s_put_num(&out, "gpu_task_nodes", (double) w->gpu_nodes, true);
            s_put_num(&out, "heartbeat_ms", (double) w->hb_ms, true);
            s_put_num(&out, "up_s", (double) w->up_s, true);
            s_put_str(&out, "platform", w->platform, true);
            if (w->slurm_job[0]) {
                s_put_str(&out, "slurm_job", w->slurm_job, true);
                s_put_str(&out, "slurm_step", w->slurm_step, true);
                s_put_str(&out, "slurm_array", w->slurm_array, true);
            }
            s_put_str(&out, "version", w->version, true);
            s_put(&out, "}");
        }
        s_put(&out, "],\"owners\":[");
        for (size_t i = 0; i < ci.nowners; i++) {
            const pd_owner_info_t *ow = &ci.owners[i];
            s_put(&out, i ? ",{" : "{");
            s_put_str(&out, "owner", ow->owner, false);
            s_put(&out, ow->mine ? ",\"mine\":true" : ",\"mine\":false");
            s_put_num(&out, "batches", (double) ow->batches, true);
            s_put_num(&out, "queued", (double) ow->queued, true);
            s_put_num(&out, "running", (double) ow->running, true);
            s_put_num(&out, "final", (double) ow->final, true);
            s_put(&out, "}");
        }
        s_put(&out, "]");
        s_put_str(&out, "broker_version", ci.version, true);
        s_put(&out, "}\n");
        s_flush(&out);
    } else {
        printf("cluster '%s', broker %s at %s: %zu workers, %llu cpu slots (%llu busy); %llu "
               "jobs waiting for a slot\n", ci.cluster, ci.name, pd_client_endpoint(c),
               ci.nworkers, (unsigned long long) cpus, (unsigned long long) (busy + nodes),
               (unsigned long long) ci.queued);
        /* A SLURM column (job array task, or job, and step) when pilots are there. */
        bool pilots = false;
        for (size_t i = 0; i < ci.nworkers; i++)
            pilots |= ci.workers[i].slurm_job[0] != 0;
        if (ci.nworkers)
            printf("%-20s %-15s %-7s %-5s %-7s %-10s %-8s %-8s %-9s %s%s\n", "HOST", "PLATFORM",
                   "CPUS", "GPUS",
                   "LOAD", "QUEUED", "RUNNING", "DONE", "HEARTBEAT", pilots ? "SLURM           "
                                                                          : "", "GPU NAMES");
        for (size_t i = 0; i < ci.nworkers; i++) {
            const pd_worker_info_t *w = &ci.workers[i];
            char slots[32], load[24], hb[24];
            snprintf(slots, sizeof slots, "%u/%u", w->busy + w->nodes, w->cpus);
            if (w->load < 0)
                snprintf(load, sizeof load, "-");
            else
                snprintf(load, sizeof load, "%.2f%s", w->load,
                         strcmp(w->owner, "owner") == 0 ? "*" : "");
            snprintf(hb, sizeof hb, "%.1fs ago", (double) w->hb_ms / 1000.0);
            uint64_t waiting = w->inflight > w->busy ? w->inflight - w->busy : 0;
            char gmem[48] = "";
            if (w->gpu_mem)
                snprintf(gmem, sizeof gmem, " (%.1f GiB offered)",
                         (double) w->gpu_mem / (1024.0 * 1024.0 * 1024.0));
            char pilot[96] = "-", slurm[112] = "";
            if (w->slurm_job[0])
                snprintf(pilot, sizeof pilot, "%s.%s",
                         w->slurm_array[0] ? w->slurm_array : w->slurm_job,
                         w->slurm_step[0] ? w->slurm_step : "?");
            if (pilots)
                snprintf(slurm, sizeof slurm, "%-15s ", pilot);
            printf("%-20s %-15s %-7s %-5u %-7s %-10llu %-8u %-8llu %-9s %s%s%s\n", w->host,
                   w->platform[0] ? w->platform : "-", slots,
                   w->gpus, load, (unsigned long long) waiting, w->busy,
                   (unsigned long long) w->done, hb, slurm, w->gpu_names[0] ? w->gpu_names : "-",
                   gmem);
        }
        if (ci.nworkers)
            printf("CPUS: busy/offered (busy: running a job or held by a task's node); LOAD: "
                   "the machine's own load (* = its owner is active, slots held back)%s\n",
                   pilots ? "; SLURM: a pilot's job (array task).step" : "");
        if (nodes || gnodes)
            printf("synchronous tasks hold %llu CPU slot%s and %llu GPU%s\n",
                   (unsigned long long) nodes, nodes == 1 ? "" : "s", (unsigned long long) gnodes,
                   gnodes == 1 ? "" : "s");
        if (ci.nowners)
            printf("%-46s %-8s %-8s %-8s %s\n", "OWNER", "BATCHES", "QUEUED", "RUNNING",
                   "FINAL");
        for (size_t i = 0; i < ci.nowners; i++) {
            const pd_owner_info_t *ow = &ci.owners[i];
            char who[64];
            snprintf(who, sizeof who, "%s%s", ow->owner[0] ? ow->owner : "(none)",
                     ow->mine ? " (you)" : "");
            printf("%-46s %-8llu %-8llu %-8llu %llu\n", who, (unsigned long long) ow->batches,
                   (unsigned long long) ow->queued, (unsigned long long) ow->running,
                   (unsigned long long) ow->final);
        }
        if (ci.nowners)
            printf("OWNER: the client key that submitted the jobs, or local: and the hash of an "
                   "account's owner token (no keys); FINAL: results not yet released\n");
    }
    pd_buf_free(&out);
    pd_cluster_info_clear(&ci);
    return 0;
}

static int s_verb_gc(pd_submit_t *s, int argc, char **argv)
{
    if (argc > 0) {
        pd_submit_usage_error(s, "gc takes no arguments, not '%s' (use --ttl S)", argv[0]);
        return PD_EXIT_USAGE;
    }
    pd_client_t *c = pd_submit_connect(s);
    if (!c)
        return PD_EXIT_BROKER;
    pd_broker_info_t info;
    long forgot = pd_gc(c, s->o.ttl_s, &info);
    if (forgot < 0) {
        fprintf(stderr, "playdoh-submit: %s\n", pd_client_error(c));
        return PD_EXIT_BROKER;
    }
    pd_buf_t out;
    pd_buf_init(&out);
    char head[160];
    snprintf(head, sizeof head, "{\"forgot\":%ld,\"journal\":", forgot);
    s_put(&out, head);
    s_put_json_str(&out, info.journal);
    snprintf(head, sizeof head, ",\"journal_bytes\":%" PRIu64 ",\"journal_max_bytes\":%" PRIu64
             ",\"journal_ok\":%s}\n", info.journal_bytes, info.journal_max_bytes,
             info.journal_ok ? "true" : "false");
    s_put(&out, head);
    fwrite(out.data, 1, out.len, stdout);
    pd_buf_free(&out);
    if (!s->o.quiet) {
        if (info.journal[0])
            fprintf(stderr, "playdoh-submit: forgot %ld results; journal %s: %.1f MiB%s\n",
                    forgot, info.journal, info.journal_bytes / 1048576.0,
                    info.journal_ok ? "" : " (cannot be written: submits are refused)");
        else
            fprintf(stderr, "playdoh-submit: forgot %ld results; the broker keeps no journal\n",
                    forgot);
    }
    return 0;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
    pd_submit_t s;
    memset(&s, 0, sizeof s);
    s.o.retries = 3;
    s.o.keep_order = true;
    s.o.ttl_s = -1;
    pd_log_set_tag("submit");
    int first = 0;
    int rc = s_parse(&s, argc, argv, V_GLOBAL, false, &first, 2);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (first >= argc) {
        s_usage(stderr);
        return PD_EXIT_USAGE;
    }
    const char *verb = argv[first];
    if (strcmp(verb, "slurm") == 0) {
        /* Its own options (client/pd_slurm.c); the global ones given before
           the verb carry over. */
        if (s.o.local) {
            pd_submit_usage_error(&s, "--local runs an embedded cluster on this machine; Slurm "
                                  "pilots need a broker the compute nodes reach (--broker)");
            return PD_EXIT_USAGE;
        }
        pd_slurm_globals_t g = {.broker = s.o.broker, .config = s.o.config,
                                .quiet = s.o.quiet};
        return pd_slurm_main(argc - first, argv + first, &g);
    }
    const s_verb_t *v = NULL;
    for (size_t i = 0; i < S_NVERBS; i++)
        if (strcmp(verb, s_verbs[i].name) == 0)
            v = &s_verbs[i];
    if (!v) {
        const char *names[S_NVERBS + 2];
        for (size_t i = 0; i < S_NVERBS; i++)
            names[i] = s_verbs[i].name;
        names[S_NVERBS] = "slurm";
        names[S_NVERBS + 1] = NULL;
        const char *guess = pd_cli_nearest(verb, names);
        if (guess)
            pd_submit_usage_error(&s, "unknown verb '%s': did you mean '%s'?", verb, guess);
        else
            pd_submit_usage_error(&s, "unknown verb '%s' (verbs: map, exec, task, optimize, "
                                  "optimize-status, optimize-fetch, status, results, wait, "
                                  "cancel, stop, cluster, gc, slurm)", verb);
        return PD_EXIT_USAGE;
    }
    s.o.verb = v->name;
    /* The verb's options: exec stops at its command's first word, the
       others take options anywhere among their arguments. */
    int bad = v->bit == V_EXEC ? PD_EXIT_EXEC_ERROR : PD_EXIT_USAGE;
    int vargc = argc - first;
    char **vargv = argv + first;
    rc = s_parse(&s, vargc, vargv, v->bit, v->bit != V_EXEC, &first, bad);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (s.o.local && s.o.broker) {
        pd_submit_usage_error(&s, "--local and --broker exclude each other");
        return bad;
    }
    vargc -= first;
    vargv += first;
    if (v->bit == V_MAP)
        rc = s_verb_map(&s, vargc, vargv);
    else if (v->bit == V_EXEC)
        rc = pd_submit_exec(&s, vargc, vargv);
    else if (v->bit == V_TASK)
        rc = pd_submit_task(&s, vargc, vargv);
    else if (v->bit == V_STATUS)
        rc = s_verb_status(&s, vargc, vargv);
    else if (v->bit == V_RESULTS)
        rc = s_verb_results(&s, vargc, vargv);
    else if (v->bit == V_WAIT)
        rc = s_verb_wait(&s, vargc, vargv);
    else if (v->bit == V_CLUSTER)
        rc = s_verb_cluster(&s, vargc, vargv);
    else if (v->bit == V_GC)
        rc = s_verb_gc(&s, vargc, vargv);
    else if (v->bit == V_OPTIM)
        rc = pd_submit_optimize(&s, vargc, vargv);
    else if (v->bit == V_OSTATUS)
        rc = pd_submit_optimize_status(&s, vargc, vargv);
    else if (v->bit == V_OFETCH)
        rc = pd_submit_optimize_fetch(&s, vargc, vargv);
    else if (v->bit == V_STOP)
        rc = pd_submit_tasks(&s, "stop", vargc, vargv);
    else
        rc = s_verb_cancel(&s, vargc, vargv);
    pd_client_destroy(&s.c);
    pd_local_stop(&s.local);
    return rc;
}

/* ---- for the other verbs' files (submit.h) -------------------------------- */

int pd_submit_read_args(const char *path, pd_buf_t *args, size_t *n)
{
    return s_read_args(path, args, n);
}

void pd_submit_put_json_str(pd_buf_t *out, const char *str) { s_put_json_str(out, str); }

void pd_submit_put_cancelled(pd_buf_t *out, uint64_t id)
{
    char line[64];
    snprintf(line, sizeof line, "{\"cancelled\":true,\"job\":%" PRIu64 "}\n", id);
    s_put(out, line);
}

int pd_submit_parse_ids(pd_submit_t *s, int argc, char **argv, uint64_t **ids, size_t *n)
{
    return s_parse_ids(s, argc, argv, ids, n);
}
