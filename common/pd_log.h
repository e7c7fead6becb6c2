/*  pd_log: the one logging module.

    Programs log to stderr with a level; the client library never prints by
    itself: it calls the function its caller set with pd_log_set_handler(),
    and by default says nothing below warnings. The level is checked before
    any formatting, so a disabled pd_log_debug() costs one comparison.
*/
#ifndef PD_LOG_H
#define PD_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { PD_LOG_ERROR = 0, PD_LOG_WARN, PD_LOG_INFO, PD_LOG_DEBUG } pd_log_level_t;

/* A log sink: gets the level, the program's tag and the formatted line. */
typedef void(pd_log_fn)(pd_log_level_t level, const char *tag, const char *line, void *user);

/* Sets the process-wide level; messages above it are not formatted. */
void pd_log_set_level(pd_log_level_t level);
pd_log_level_t pd_log_level(void);
/* Parses "error", "warn", "info" or "debug"; returns 0 or PD_EINVAL. */
int pd_log_parse_level(const char *name, pd_log_level_t *level);
/* Sets the tag printed before each line ("broker", "worker"). Borrowed. */
void pd_log_set_tag(const char *tag);
/* Stamps each stderr line with the date too ("2024-05-01 12:00:00.123"),
   for a log file that lives for days (--log-file). */
void pd_log_set_dated(bool dated);
/* Writes lines to f (borrowed, kept until changed) instead of stderr;
   NULL restores stderr. A slot process uses it once its standard error
   captures its jobs' output. */
void pd_log_set_stream(FILE *f);
/* Sends lines to fn instead of stderr; NULL restores stderr. */
void pd_log_set_handler(pd_log_fn *fn, void *user);

void pd_log_write(pd_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A limit on repeated log lines (refused connections, handshake failures):
   at most `burst` lines per window; the others are counted, and the next
   line let through says how many were swallowed. One limiter per thread. */
typedef struct {
    int64_t start_ms;    /* start of the current window (monotonic ms) */
    uint32_t lines;      /* lines let through in the window */
    uint32_t suppressed; /* lines swallowed since the last one let through */
} pd_log_limit_t;
/* True when a line may be written now; *suppressed (when not NULL) gets the
   number swallowed before it, which the line should mention. */
bool pd_log_limit_pass(pd_log_limit_t *l, uint32_t burst, int64_t window_ms,
                       uint32_t *suppressed);
/* Writes a line at level through the limit l (burst lines per window_ms),
   ending it with "(N similar lines suppressed)" when lines were swallowed
   since the last one let through. For every line a peer can cause. */
void pd_log_limited(pd_log_limit_t *l, uint32_t burst, int64_t window_ms, pd_log_level_t level,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Once the window of l is over, writes "N more lines like: what" for the
   lines swallowed and not yet reported (call it from a periodic tick), so
   a burst that stops is still counted. */
void pd_log_limit_flush(pd_log_limit_t *l, int64_t window_ms, pd_log_level_t level,
                        const char *what);

#define pd_log_at(lvl, ...)                                                          \
    do {                                                                             \
        if ((lvl) <= pd_log_level())                                                 \
            pd_log_write((lvl), __VA_ARGS__);                                        \
    } while (0)
#define pd_log_error(...) pd_log_at(PD_LOG_ERROR, __VA_ARGS__)
#define pd_log_warn(...)  pd_log_at(PD_LOG_WARN, __VA_ARGS__)
#define pd_log_info(...)  pd_log_at(PD_LOG_INFO, __VA_ARGS__)
#define pd_log_debug(...) pd_log_at(PD_LOG_DEBUG, __VA_ARGS__)

#endif
