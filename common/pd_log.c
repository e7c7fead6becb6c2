/*  pd_log: level-filtered logging to stderr or to a caller's handler.

    This is process-wide configuration (a level, a tag, a sink) set once at
    start-up by main() or by the embedding program; it holds no other state
    (but for a flag, read once, telling whether stderr is systemd's journal,
    where lines carry a "<N>" priority prefix instead of a time stamp).
*/
#include "pd_log.h"
#include "pd_plat.h"
#include "pd_error.h"

#include <czmq.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>

static pd_log_level_t s_level = PD_LOG_WARN;
static const char *s_tag = "playdoh";
static pd_log_fn *s_handler;
static void *s_handler_user;
static bool s_dated;
static FILE *s_stream;  /* where lines go; NULL: stderr */
static int s_journal = -1; /* the stream is systemd's journal (-1: not known yet) */

void pd_log_set_stream(FILE *f)
{
    s_stream = f;
    s_journal = -1;
}

void pd_log_set_level(pd_log_level_t level) { s_level = level; }
pd_log_level_t pd_log_level(void) { return s_level; }
void pd_log_set_tag(const char *tag) { s_tag = tag ? tag : "playdoh"; }
void pd_log_set_dated(bool dated) { s_dated = dated; }

void pd_log_set_handler(pd_log_fn *fn, void *user)
{
    s_handler = fn;
    s_handler_user = user;
}

int pd_log_parse_level(const char *name, pd_log_level_t *level)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0) {
            *level = (pd_log_level_t) i;
            return 0;
        }
    return PD_EINVAL;
}

void pd_log_write(pd_log_level_t level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (s_handler) {
        s_handler(level, s_tag, line, s_handler_user);
        return;
    }
    /* Under systemd, stderr goes to the journal: "<N>" prefixes give each
       line its priority (sd-daemon(3)), and the journal keeps the time. */
    FILE *out = s_stream ? s_stream : stderr;
    int journal = s_journal;
    if (journal < 0) {
        /* JOURNAL_STREAM is "DEV:INODE" of the journal's stream; it counts
           only when stderr is that stream (not a child's redirection). */
        const char *js = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        journal = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
                  fstat(fileno(out), &st) == 0 && (unsigned long long) st.st_dev == dev &&
                  (unsigned long long) st.st_ino == ino;
        s_journal = journal;
    }
    if (journal) {
        static const int prio[] = {3, 4, 6, 7}; /* err, warning, info, debug */
        fprintf(out, "<%d>%s: %s\n", prio[level], s_tag, line);
        return;
    }
    static const char *labels[] = {"E", "W", "I", "D"};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    char date[40] = "";
    if (s_dated)
        snprintf(date, sizeof date, "%04d-%02d-%02d ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday);
    fprintf(out, "%s%02d:%02d:%02d.%03ld %s %s: %s\n", date, tm.tm_hour, tm.tm_min,
            tm.tm_sec, ts.tv_nsec / 1000000, labels[level], s_tag, line);
}

void pd_log_limited(pd_log_limit_t *l, uint32_t burst, int64_t window_ms, pd_log_level_t level,
                    const char *fmt, ...)
{
    uint32_t swallowed = 0;
    if (level > pd_log_level() || !pd_log_limit_pass(l, burst, window_ms, &swallowed))
        return;
    char line[1900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (swallowed)
        pd_log_write(level, "%s (%u similar lines suppressed)", line, swallowed);
    else
        pd_log_write(level, "%s", line);
}

void pd_log_limit_flush(pd_log_limit_t *l, int64_t window_ms, pd_log_level_t level,
                        const char *what)
{
    if (!l->suppressed || zclock_mono() - l->start_ms < window_ms)
        return;
    pd_log_at(level, "%u more lines like: %s", l->suppressed, what);
    l->suppressed = 0;
}

bool pd_log_limit_pass(pd_log_limit_t *l, uint32_t burst, int64_t window_ms,
                       uint32_t *suppressed)
{
    int64_t now = zclock_mono();
    if (l->start_ms == 0 || now - l->start_ms >= window_ms) {
        l->start_ms = now ? now : 1;
        l->lines = 0;
    }
    if (l->lines >= burst) {
        l->suppressed++;
        return false;
    }
    l->lines++;
    if (suppressed)
        *suppressed = l->suppressed;
    l->suppressed = 0;
    return true;
}
