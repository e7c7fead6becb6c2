/*  pd_progress: the terminal progress bar of playdoh-submit; see pd_progress.h.

    The bar is one line rewritten in place: a carriage return, the text, and
    the ANSI "erase to end of line" sequence (every terminal emulator in use
    understands it). The terminal's width is asked once per drawing
    (TIOCGWINSZ), so a resized window gets a bar that fits.
*/
#include "pd_progress.h"
#include "pd_plat.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct pd_progress {
    FILE *f;          /* where the bar is drawn (borrowed) */
    size_t total;     /* jobs in all */
    size_t done;      /* jobs done so far */
    size_t failed;    /* jobs failed (or cancelled) so far */
    double start;     /* monotonic seconds at creation */
    double last_draw; /* monotonic seconds of the last drawing; < 0: never */
    bool shown;       /* the bar is on the screen now */
};

pd_progress_t *pd_progress_new(FILE *f, size_t total, bool enabled)
{
    if (!enabled)
        return NULL;
    pd_progress_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->f = f;
    p->total = total;
    p->start = (zclock_usecs() / 1e6);
    p->last_draw = -1;
    return p;
}

void pd_progress_destroy(pd_progress_t **p)
{
    if (!p || !*p)
        return;
    free(*p);
    *p = NULL;
}

/* "1:05" or "2:03:04". */
static void s_duration(char *buf, size_t cap, double s)
{
    if (s < 0)
        s = 0;
    unsigned long t = (unsigned long) (s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, cap, "%lu:%02lu", t / 60, t % 60);
}

size_t pd_progress_format(char *buf, size_t cap, size_t done, size_t failed, size_t total,
                          double elapsed_s, int width)
{
    if (cap == 0)
        return 0;
    size_t ended = done + failed;
    char text[160], tail[64] = "";
    int n = snprintf(text, sizeof text, "%zu/%zu", ended, total);
    if (failed)
        n += snprintf(text + n, sizeof text - (size_t) n, "  %zu failed", failed);
    double rate = elapsed_s > 0.05 ? (double) ended / elapsed_s : 0;
    if (rate > 0)
        n += snprintf(text + n, sizeof text - (size_t) n, "  %.*f jobs/s", rate < 100 ? 1 : 0,
                      rate);
    if (ended >= total) {
        char d[32];
        s_duration(d, sizeof d, elapsed_s);
        snprintf(tail, sizeof tail, "  in %s", d);
    } else if (rate > 0) {
        char d[32];
        s_duration(d, sizeof d, (double) (total - ended) / rate);
        snprintf(tail, sizeof tail, "  ETA %s", d);
    }
    size_t tl = strlen(text) + strlen(tail);
    /* The bar takes what is left of the width, between 10 and 40 cells. */
    int bar = width - (int) tl - 4;
    if (bar > 40)
        bar = 40;
    size_t k = 0;
    if (bar >= 10) {
        int fill = total ? (int) ((double) bar * (double) ended / (double) total) : bar;
        if (fill > bar)
            fill = bar;
        if (k + 1 < cap)
            buf[k++] = '[';
        for (int i = 0; i < bar && k + 1 < cap; i++)
            buf[k++] = i < fill ? '#' : '.';
        if (k + 1 < cap)
            buf[k++] = ']';
        if (k + 1 < cap)
            buf[k++] = ' ';
        if (k + 1 < cap)
            buf[k++] = ' ';
    }
    int w = snprintf(buf + k, cap - k, "%s%s", text, tail);
    k += w > 0 ? (size_t) w : 0;
    if (k >= cap)
        k = cap - 1;
    buf[k] = 0;
    /* Never wider than the terminal: a wrapped line cannot be rewritten. */
    if (width > 1 && k >= (size_t) width) {
        k = (size_t) width - 1;
        buf[k] = 0;
    }
    return k;
}

static int s_width(FILE *f) { return pd_plat_term_width(f); }

/* Writes line in place of what the line showed. */
static void s_show(pd_progress_t *p, const char *line, double now)
{
    fprintf(p->f, "\r%s\033[K", line);
    fflush(p->f);
    p->shown = true;
    p->last_draw = now;
}

static void s_draw(pd_progress_t *p, double now)
{
    char line[512];
    pd_progress_format(line, sizeof line, p->done, p->failed, p->total, now - p->start,
                       s_width(p->f));
    s_show(p, line, now);
}

size_t pd_progress_format_optim(char *buf, size_t cap, uint64_t iteration, uint64_t evaluations,
                                double wall_s, uint32_t groups, const double *best_f, int width)
{
    if (cap == 0)
        return 0;
    size_t lim = cap - 1;
    if (width > 1 && (size_t) width - 1 < lim)
        lim = (size_t) width - 1; /* a wrapped line cannot be rewritten */
    char head[128];
    int hn = snprintf(head, sizeof head, "iteration %llu  %llu evaluations  %.1f s  best",
                      (unsigned long long) iteration, (unsigned long long) evaluations, wall_s);
    size_t k = (size_t) hn < lim ? (size_t) hn : lim;
    memcpy(buf, head, k);
    /* Each group's value while it fits, keeping room for the count of the rest. */
    char more[40];
    snprintf(more, sizeof more, " ... %u groups", groups);
    for (uint32_t g = 0; g < groups; g++) {
        char v[32];
        int vn = snprintf(v, sizeof v, " %.3g", best_f[g]);
        size_t room = g + 1 < groups ? strlen(more) : 0;
        if (k + (size_t) vn + room > lim) {
            size_t mn = strlen(more);
            if (k + mn <= lim) {
                memcpy(buf + k, more, mn);
                k += mn;
            }
            break;
        }
        memcpy(buf + k, v, (size_t) vn);
        k += (size_t) vn;
    }
    buf[k] = 0;
    return k;
}

void pd_progress_optim(pd_progress_t *p, uint64_t iteration, uint64_t evaluations, double wall_s,
                       uint32_t groups, const double *best_f, bool force)
{
    if (!p)
        return;
    double now = (zclock_usecs() / 1e6);
    if (!force && p->shown && now - p->last_draw < PD_PROGRESS_PERIOD_MS / 1000.0)
        return;
    char line[512];
    pd_progress_format_optim(line, sizeof line, iteration, evaluations, wall_s, groups, best_f,
                             s_width(p->f));
    s_show(p, line, now);
}

void pd_progress_update(pd_progress_t *p, size_t done, size_t failed, bool force)
{
    if (!p)
        return;
    p->done = done;
    p->failed = failed;
    double now = (zclock_usecs() / 1e6);
    if (force || !p->shown || now - p->last_draw >= PD_PROGRESS_PERIOD_MS / 1000.0)
        s_draw(p, now);
}

void pd_progress_hide(pd_progress_t *p)
{
    if (!p || !p->shown)
        return;
    fputs("\r\033[K", p->f);
    fflush(p->f);
    p->shown = false;
}

void pd_progress_finish(pd_progress_t *p)
{
    if (!p)
        return;
    s_draw(p, (zclock_usecs() / 1e6));
    fputc('\n', p->f);
    fflush(p->f);
    p->shown = false;
}
