/*  pd_exec: the built-in task `exec`, which runs a shell command.

    `playdoh-submit exec` (and pd_exec() in playdoh.h) submits jobs to the
    reserved module "builtin", function "exec"; the job's argument is a
    command line (a msgpack string). A slot process runs it through the
    system's shell (`/bin/sh -c CMD`; on Windows `cmd.exe /d /s /c CMD`),
    standard input empty, and captures standard
    output and standard error, each up to the job's output limit (the rest
    is read and dropped, and the result says "truncated", how many bytes
    of each stream were dropped, and a note for a person). The command stays
    in the slot's process group, so a time-out or a cancel, which kill the
    slot's group, stop everything it started.

    The argument may also be a map (what playdoh-submit exec sends):
        {"cmd": CMD[, "workdir": DIR][, "cwd": DIR]
         [, "files": {NAME: BYTES, ...}][, "return": [NAME, ...]]}
    workdir: the directory the command must run in; cwd: the submitter's
    directory, used when this machine sees it; files: written into the
    job's directory before the command runs; return: read from it after
    (pd_exec_job below says which directory and the bounds).

    The result is a map:
        {"exit": N, "signal": S, "out": O, "err": E, "host": H,
         "start": T, "runtime": R, "truncated": B,
         "dropped_out": DO, "dropped_err": DE[, "note": "..."]}
    exit: the exit status (-1 when killed by a signal); signal: the signal
    number, or 0; out/err: str when the bytes are UTF-8, else bin; start:
    Unix time in seconds (fractional) when the command started; runtime:
    seconds it ran. A command that exits 0 makes a done job; any other
    status fails the job with PD_ETASK and carries this map as the error's
    "value", so the output of failed commands reaches the user too. A
    command killed for going over its CPU time limit (SIGXCPU) fails with
    PD_ELIMIT. pd_exec_job adds "dir" (where the command ran), "scratch"
    (true when that was a directory made for the job) and, when files were
    to be returned, "files": {NAME: BYTES, ...}.
*/
#ifndef PD_EXEC_H
#define PD_EXEC_H

#include "pd_codec.h"

#include <stdbool.h>
#include <stddef.h>

#include "pd_limits.h"

#define PD_EXEC_MAX_OUTPUT PD_LIMITS_DEFAULT_OUTPUT /* bytes kept per stream by default */
#define PD_EXEC_MAX_RETURN (64u << 20) /* bytes of the files one job returns, in all */
#define PD_EXEC_MAX_FILES 256          /* files one job sends, and files it returns */

/* What pd_exec_job needs to know of the slot it runs in. */
typedef struct {
    const char *host;    /* the worker's host name, for the result and messages */
    const char *scratch; /* the slot's scratch directory: a job without a directory of
                            its own runs in <scratch>/job-<id>, made for it */
    uint64_t job;        /* the job's id */
    bool keep_scratch;   /* leave the job's scratch directory behind (debugging) */
} pd_exec_env_t;

/* Runs one exec job: arg[0..alen) is the job's argument, a command line
   (str) or a map (above), and appends the result map to out. The command
   runs in "workdir" when given (the job fails with PD_EIO, naming the
   directory and the host, when this process cannot enter it); else in
   "cwd" (the submitter's directory) when the job neither sends nor returns
   files and this process can enter it; else in a scratch directory made
   for the job and removed after it (env->keep_scratch: left there). The
   files sent are written there first (their names are relative paths,
   checked with pd_file_check_relative; PD_EINVAL otherwise); the files of
   "return" are read from there after the command, at most
   PD_EXEC_MAX_RETURN bytes in all: a missing one fails a command that
   succeeded with PD_EIO (one that failed returns what exists), too many
   bytes with PD_ETOOBIG; the result map then carries the command's output
   and an empty "files". Returns as pd_exec_run, plus those codes. */
int pd_exec_job(const uint8_t *arg, size_t alen, const pd_exec_env_t *env,
                const pd_limits_t *lim, pd_buf_t *out, char *msg, size_t cap);

/* Runs cmd[0..len) (not NUL-terminated; must not hold a NUL) through the
   shell and appends the result map (above) to out. host goes into the map;
   lim (may be NULL) gives the output cap per stream (0: PD_EXEC_MAX_OUTPUT)
   and the CPU time limit, for the message. Returns 0 when the command
   exited with status 0; PD_ETASK when it ran and failed (then msg, cap
   bytes, says how: "command exited with status 3"); PD_ELIMIT when it was
   killed for its CPU time (msg names the limit); PD_EINVAL (a NUL in cmd),
   PD_ESYS (no pipe or process) or PD_ENOMEM, with msg set and nothing
   appended. */
int pd_exec_run(const char *cmd, size_t len, const char *host, const pd_limits_t *lim,
                pd_buf_t *out, char *msg, size_t cap);

#endif
