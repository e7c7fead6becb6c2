/*  pd_cli: see pd_cli.h. The programs call it from their option parsing;
    nothing here keeps state. */
#include "pd_cli.h"
#include "pd_build.h"

#include <stdio.h>
#include <string.h>

#define S_MAX_WORD 64 /* longer words are never a typo of a verb */

void pd_cli_version(const char *program) { printf("%s %s\n", program, PD_VERSION); }

void pd_cli_option_error(const char *program, const char *help, const char *given, int short_opt,
                         bool missing_value)
{
    char name[128];
    if (short_opt > 0 && short_opt < 256 && (!given || given[0] != '-' || given[1] != '-'))
        snprintf(name, sizeof name, "-%c", short_opt);
    else
        snprintf(name, sizeof name, "%s", given ? given : "?");
    char *eq = strchr(name, '=');
    if (eq)
        *eq = 0;
    if (missing_value)
        fprintf(stderr, "%s: option '%s' needs a value (see %s --help)\n", program, name, help);
    else
        fprintf(stderr, "%s: unknown option '%s' (see %s --help)\n", program, name, help);
}

/* Optimal string alignment distance: insertions, deletions, substitutions
   and swaps of two neighbours, each costing 1. */
static size_t s_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > S_MAX_WORD || lb > S_MAX_WORD)
        return (size_t) -1;
    size_t d[S_MAX_WORD + 1][S_MAX_WORD + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

const char *pd_cli_nearest(const char *word, const char *const *words)
{
    const char *best = NULL;
    size_t best_d = (size_t) -1, len = strlen(word);
    for (size_t i = 0; words[i]; i++) {
        size_t d = s_distance(word, words[i]);
        if (d < best_d) {
            best_d = d;
            best = words[i];
        }
    }
    if (best_d == 0 || best_d > 2 || best_d * 2 >= len)
        return NULL;
    return best;
}
