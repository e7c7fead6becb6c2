/*  pd_progress: the progress bar playdoh-submit draws on standard error.

    While `map`, `exec` or `wait` runs, a one-line bar says how many jobs
    ended (done and failed) of how many, the rate and the time left:

        [##########..........]  120/200  3 failed  45.2 jobs/s  ETA 0:02

    It is drawn only on a terminal (the caller decides with isatty()); it is
    redrawn at most every PD_PROGRESS_PERIOD_MS, and pd_progress_hide()
    erases it before the caller prints results on the same terminal, so that
    lines never mix. pd_progress_format() is the pure formatting, for tests.

    While `optimize` runs, the same line shows the optimisation's progress
    instead (pd_progress_optim):

        iteration 120  48000 evaluations  1.6 s  best 1.2e-05

    with one best value per group, as many as the width allows.
*/
#ifndef PD_PROGRESS_H
#define PD_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PD_PROGRESS_PERIOD_MS 100

typedef struct pd_progress pd_progress_t;

/* A bar for total jobs drawn on f (borrowed) when enabled is true; when it is
   false every call is a no-op. Returns NULL when out of memory (callers treat
   NULL as disabled: every function accepts it). */
pd_progress_t *pd_progress_new(FILE *f, size_t total, bool enabled);
/* Frees the bar (without drawing); sets *p to NULL; safe twice. */
void pd_progress_destroy(pd_progress_t **p);

/* Records the counts; redraws when the last drawing is older than
   PD_PROGRESS_PERIOD_MS (or force is true). */
void pd_progress_update(pd_progress_t *p, size_t done, size_t failed, bool force);
/* Erases the bar from its line (before the caller writes to the terminal). */
void pd_progress_hide(pd_progress_t *p);
/* Draws the final counts and ends the line. */
void pd_progress_finish(pd_progress_t *p);

/* Draws an optimisation's progress in place of the bar: iteration,
   evaluations, seconds and the best value of each group (best_f, groups
   values, borrowed), redrawn at most every PD_PROGRESS_PERIOD_MS unless
   force. pd_progress_hide erases it; pd_progress_finish must not follow. */
void pd_progress_optim(pd_progress_t *p, uint64_t iteration, uint64_t evaluations, double wall_s,
                       uint32_t groups, const double *best_f, bool force);

/* Writes the bar's text for the counts into buf (cap bytes, NUL-terminated),
   at most width columns. elapsed_s: seconds since the start. Returns the
   length written. */
size_t pd_progress_format(char *buf, size_t cap, size_t done, size_t failed, size_t total,
                          double elapsed_s, int width);

/* Writes pd_progress_optim's text into buf (cap bytes, NUL-terminated), at
   most width columns: the groups that do not fit are counted ("... 40
   groups"). Returns the length written. */
size_t pd_progress_format_optim(char *buf, size_t cap, uint64_t iteration, uint64_t evaluations,
                                double wall_s, uint32_t groups, const double *best_f, int width);

#endif
