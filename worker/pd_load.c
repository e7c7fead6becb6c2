/*  pd_load: owner load from procfs; see pd_load.h.

    Reads small text files with one read() each (procfs files are generated
    on read; 64 KiB covers /proc/stat up to a few hundred CPUs, and only its
    first lines are used). Parsing is strict: a line that does not look as
    expected is an error, never a guess.
*/
#include "pd_load.h"
#include "pd_plat.h"
#include "pd_error.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_READ_MAX 65536

struct pd_load {
    char dir[256];                /* procfs mount point */
    bool have;                    /* a previous sample exists */
    unsigned long long busy;      /* machine busy ticks at the previous sample */
    unsigned long long total;     /* machine ticks at the previous sample */
    unsigned long long playdoh;   /* Playdoh's ticks at the previous sample */
    char *buf;                    /* read buffer (S_READ_MAX + 1), owned */
};

pd_load_t *pd_load_new(const char *proc_dir)
{
    pd_load_t *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    snprintf(l->dir, sizeof l->dir, "%s", proc_dir && *proc_dir ? proc_dir : "/proc");
    l->buf = malloc(S_READ_MAX + 1);
    if (!l->buf) {
        free(l);
        return NULL;
    }
    return l;
}

void pd_load_destroy(pd_load_t **p)
{
    if (!p || !*p)
        return;
    free((*p)->buf);
    free(*p);
    *p = NULL;
}

/* Reads a file into l->buf (NUL-terminated); returns its length, or
   PD_EIO when it cannot be opened. */
static ssize_t s_read(pd_load_t *l, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return PD_EIO;
    size_t got = 0;
    while (got < S_READ_MAX) {
        ssize_t n = read(fd, l->buf + got, S_READ_MAX - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t) n;
    }
    close(fd);
    l->buf[got] = 0;
    return (ssize_t) got;
}

int pd_load_parse_stat(const char *text, unsigned long long *busy, unsigned long long *total,
                       int *ncpu)
{
    unsigned long long v[10] = {0};
    int n = 0;
    if (strncmp(text, "cpu ", 4) != 0)
        return PD_EIO;
    const char *p = text + 4;
    while (n < 10) {
        while (*p == ' ')
            p++;
        if (*p < '0' || *p > '9')
            break;
        char *end;
        errno = 0;
        v[n] = strtoull(p, &end, 10);
        if (errno)
            return PD_EIO;
        n++;
        p = end;
    }
    if (n < 4 || (*p != '\n' && *p != 0 && *p != ' '))
        return PD_EIO;
    /* user nice system idle iowait irq softirq steal (guest is in user) */
    *busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    *total = *busy + v[3] + v[4];
    int cpus = 0;
    for (const char *line = strchr(text, '\n'); line; line = strchr(line + 1, '\n'))
        if (strncmp(line + 1, "cpu", 3) == 0 && line[4] >= '0' && line[4] <= '9')
            cpus++;
    *ncpu = cpus > 0 ? cpus : 1;
    return 0;
}

int pd_load_parse_pid_stat(const char *text, unsigned long long *ticks)
{
    /* "pid (comm) state ppid ..." where comm may hold spaces and ')'. */
    const char *p = strrchr(text, ')');
    if (!p)
        return PD_EIO;
    p++;
    /* Fields after comm, counted from 3 (state); utime is field 14. */
    unsigned long long v[4];
    int field = 2;
    while (*p && field < 17) {
        while (*p == ' ')
            p++;
        if (!*p || *p == '\n')
            break;
        field++;
        const char *start = p;
        while (*p && *p != ' ' && *p != '\n')
            p++;
        if (field >= 14 && field <= 17) {
            char *end;
            errno = 0;
            long long x = strtoll(start, &end, 10);
            if (errno || end != p || x < 0)
                return PD_EIO;
            v[field - 14] = (unsigned long long) x;
        }
    }
    if (field < 17)
        return PD_EIO;
    *ticks = v[0] + v[1] + v[2] + v[3];
    return 0;
}

static int s_account(pd_load_t *l, unsigned long long busy, unsigned long long total,
                     unsigned long long playdoh, int ncpu, double *load);

int pd_load_sample(pd_load_t *l, const int *pids, size_t n, double *load)
{
    char path[320];
    snprintf(path, sizeof path, "%s/stat", l->dir);
    unsigned long long busy, total, playdoh = 0;
    int ncpu;
    if (pd_plat_cpu_times(&busy, &total, &ncpu) == 0) {
        /* The system says it (Windows): no procfs to read. */
        for (size_t i = 0; i < n; i++)
            playdoh += pids[i] > 0 ? pd_plat_proc_cpu(pids[i]) : 0;
        return s_account(l, busy, total, playdoh, ncpu, load);
    }
    if (s_read(l, path) < 0 || pd_load_parse_stat(l->buf, &busy, &total, &ncpu))
        return PD_EIO;
    for (size_t i = 0; i < n; i++) {
        if (pids[i] <= 0)
            continue;
        snprintf(path, sizeof path, "%s/%ld/stat", l->dir, (long) pids[i]);
        unsigned long long t;
        if (s_read(l, path) >= 0 && pd_load_parse_pid_stat(l->buf, &t) == 0)
            playdoh += t;
    }
    return s_account(l, busy, total, playdoh, ncpu, load);
}

/* The owner's load between the previous sample and this one. */
static int s_account(pd_load_t *l, unsigned long long busy, unsigned long long total,
                     unsigned long long playdoh, int ncpu, double *load)
{
    bool had = l->have;
    unsigned long long dbusy = busy - l->busy, dtotal = total - l->total;
    unsigned long long dplay = playdoh > l->playdoh ? playdoh - l->playdoh : 0;
    bool sane = had && busy >= l->busy && total > l->total;
    l->have = true;
    l->busy = busy;
    l->total = total;
    l->playdoh = playdoh;
    if (!sane)
        return PD_ENOTDONE;
    double owner = dbusy > dplay ? (double) (dbusy - dplay) : 0.0;
    *load = (double) ncpu * owner / (double) dtotal;
    return 0;
}
