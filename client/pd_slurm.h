/*  pd_slurm: `playdoh-submit slurm`, workers as pilot jobs under Slurm.

    Writes a Slurm batch script whose job array tasks each run one
    playdoh-worker pointed at the broker (one pilot per task, so that Slurm
    places, starts, times out and cancels each pilot on its own), submits it
    with sbatch and prints the Slurm job id; --dry-run prints the script,
    --cancel runs scancel. docs/slurm.md is the user's guide.

    The generated script carries no secret: the broker's public key, the
    worker's key pair and the trust store travel as file paths.
*/
#ifndef PD_SLURM_H
#define PD_SLURM_H

#include "pd_codec.h"

#include <stdbool.h>
#include <stddef.h>

#define PD_SLURM_MAX_WORKERS 100000 /* array tasks in one submission */
#define PD_SLURM_MAX_EXTRA 32       /* --worker-arg and --sbatch-arg entries each */
#define PD_SLURM_IDLE_EXIT_S 300.0  /* pilots' default idle time-out */

typedef struct {
    int workers;            /* pilots: array tasks 0 .. workers-1 (>= 1) */
    int cpus;               /* CPU slots of each pilot (--cpus-per-task) */
    int gpus;               /* GPUs of each pilot (--gres=gpu:G), 0 = none */
    const char *partition;  /* Slurm partition, or NULL: the site's default */
    const char *time;       /* time limit of each pilot (Slurm's formats), or NULL */
    const char *account;    /* account to charge, or NULL */
    const char *job_name;   /* Slurm job name, or NULL: "playdoh-pilot" */
    const char *output;     /* pilots' log file pattern, or NULL: "playdoh-pilot-%A_%a.log" */
    const char *broker;     /* endpoint the compute nodes connect to (required) */
    const char *worker_exe; /* playdoh-worker as the compute nodes see it (required) */
    double idle_exit_s;     /* a pilot leaves after this long without a job (0: never) */
    const char *broker_key; /* file of the broker's public key, or NULL */
    const char *worker_key; /* file of the workers' key pair, or NULL */
    const char *config_dir; /* the workers' configuration directory (trust store), or NULL */
    const char *worker_args[PD_SLURM_MAX_EXTRA]; /* more playdoh-worker flags */
    int nworker_args;                            /* entries in worker_args */
    const char *sbatch_args[PD_SLURM_MAX_EXTRA]; /* more #SBATCH options ("--mem=4G") */
    int nsbatch_args;                            /* entries in sbatch_args */
} pd_slurm_opts_t;

/* Writes the batch script for o into out (appended). Returns 0, or
   PD_EINVAL with a sentence in why saying which option is wrong and how to
   fix it (nothing appended then). Checks values only, never files. */
int pd_slurm_script(const pd_slurm_opts_t *o, pd_buf_t *out, char *why, size_t whycap);

/* What playdoh-submit's global options, given before the verb, set. */
typedef struct {
    const char *broker; /* --broker, or NULL */
    const char *config; /* --config FILE, or NULL */
    bool quiet;         /* --quiet */
} pd_slurm_globals_t;

/* The verb: argv[0] is "slurm", the rest its options (the global
   --broker, --config, --quiet and --log-level are accepted there too); g
   (may be NULL) holds the global options given before the verb. The broker
   is --broker, else $PLAYDOH_BROKER, else [submit] broker of the
   configuration file. Returns the exit status: 0 done, 2 bad usage, 3 Slurm
   missing or refusing (its message shown). */
int pd_slurm_main(int argc, char **argv, const pd_slurm_globals_t *g);

#endif
