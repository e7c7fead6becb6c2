/*  pd_load: the machine's own CPU load, not counting Playdoh.

    The idle policy (HTCondor's owner policy is the model) needs to know
    whether the machine's owner is using it. The load average would count
    Playdoh's own slot processes, so this module measures instead, between
    two samples, how many CPUs were busy with anything else:

        owner load = CPUs x (busy ticks of the machine - ticks of Playdoh)
                            / all ticks of the machine

    Machine ticks come from the first line of <proc>/stat; Playdoh's are the
    user and system times of the worker and of its slot processes, children
    included (<proc>/<pid>/stat: utime, stime, cutime, cstime), so a slot
    process that died and was reaped still counts through the worker's
    cutime. <proc> is /proc, or another mount of the host's procfs (a
    container), set by [worker] proc_dir.

        pd_load_t *l = pd_load_new("/proc");
        pd_load_sample(l, pids, n, &load);   // PD_ENOTDONE: first sample
        ...
        if (pd_load_sample(l, pids, n, &load) == 0 && load > 0.5) owner is back
        pd_load_destroy(&l);
*/
#ifndef PD_LOAD_H
#define PD_LOAD_H

#include <stddef.h>
#include <sys/types.h>

typedef struct pd_load pd_load_t;

/* A sampler reading proc_dir (NULL = "/proc"). NULL when out of memory. */
pd_load_t *pd_load_new(const char *proc_dir);
void pd_load_destroy(pd_load_t **p);

/* Takes a sample: the machine's ticks and those of the processes pids[0..n)
   (the worker first, then its slot processes). Returns 0 with *load set to
   the owner's load since the previous sample (in CPUs, >= 0), PD_ENOTDONE
   after the first sample (no interval yet), or PD_EIO when <proc>/stat
   cannot be read or parsed. A pid whose stat is gone counts 0. */
int pd_load_sample(pd_load_t *l, const int *pids, size_t n, double *load);

/* Parsers, exposed for tests. Each returns 0 or PD_EIO. */
/* First line of /proc/stat: busy and total ticks, and the number of cpuN lines. */
int pd_load_parse_stat(const char *text, unsigned long long *busy, unsigned long long *total,
                       int *ncpu);
/* /proc/PID/stat: utime + stime + cutime + cstime. */
int pd_load_parse_pid_stat(const char *text, unsigned long long *ticks);

#endif
