/*  pd_proc: starting and stopping Playdoh's own programs as child processes.

    Used by the embedded local cluster (local/pd_local.c) and by the
    integration tests, which start real brokers and workers on loopback;
    pd_proc_capture runs a helper program (Slurm's sbatch) to its end.
*/
#ifndef PD_PROC_H
#define PD_PROC_H

#include <stddef.h>
#include <sys/types.h>

/* Finds a Playdoh program ("playdoh-broker"), looking in this order at:
   $PLAYDOH_BROKER_BIN for playdoh-broker ($PLAYDOH_WORKER_BIN for
   playdoh-worker, and so on: the program's own path), $PLAYDOH_BINDIR,
   beside the running executable, beside the library or program that holds
   this code and in the bindir next to its libdir (so that an installation
   moved to another prefix still finds its programs), the installation's
   bindir, then each directory of $PATH. Writes its path into out and
   returns 0; or returns PD_EIO with out holding the places looked at,
   joined by ", " (cut at cap), for the error message. */
int pd_proc_find(const char *name, char *out, size_t cap);

/* Forks and execs argv (argv[0] a path). When ready_fd is not NULL, the
   child gets the write end of a pipe as fd 3 and *ready_fd is the read end
   (close-on-exec). The child is sent SIGTERM if the caller's thread dies.
   Returns the pid, or -1. */
pid_t pd_proc_spawn(char *const argv[], int *ready_fd);

/* Reads one line (without its newline) from fd within timeout_ms into out.
   Returns 0, or PD_ETIMEDOUT / PD_EIO. Does not close fd. */
int pd_proc_read_line(int fd, char *out, size_t cap, int timeout_ms);

/* Stops a child: SIGTERM, then SIGKILL after grace_ms; reaps it. Returns its
   wait status, or -1 when pid <= 0 or it was already reaped. */
int pd_proc_stop(pid_t pid, int grace_ms);

/* Runs argv (argv[0] a path, or a program name looked up in PATH) to its
   end: writes inlen bytes of input to its standard input (none when input
   is NULL), and collects its standard output into out and its standard
   error into err (each NUL-terminated, at most cap - 1 bytes kept, the rest
   read and dropped; either may be NULL). Kills it after timeout_ms (< 0: no
   limit). Returns its wait status (>= 0; a program that cannot be run exits
   127 with the reason in err), PD_ETIMEDOUT (killed at the time-out) or
   PD_ESYS (no pipe or fork). For short helper programs (sbatch, scancel). */
int pd_proc_capture(char *const argv[], const void *input, size_t inlen, char *out, size_t outcap,
                    char *err, size_t errcap, int timeout_ms);

#endif
