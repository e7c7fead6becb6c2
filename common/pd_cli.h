/*  pd_cli: what the four programs (playdoh-broker, playdoh-worker,
    playdoh-submit, playdoh-keygen) say the same way on their command line:
    --version, an unknown option or one without its value, and a "did you
    mean" for a mistyped verb or command.

        if (ch == '?' || ch == ':')
            return pd_cli_option_error("playdoh-submit", "playdoh-submit map",
                                       argv[optind - 1], optopt, ch == ':'), 2;
*/
#ifndef PD_CLI_H
#define PD_CLI_H

#include <stdbool.h>

/* Prints "PROGRAM VERSION" (this build's version) on standard output. */
void pd_cli_version(const char *program);

/* Says on standard error, after getopt_long (opterr = 0) refused an option:
   "PROGRAM: unknown option '--x' (see HELP --help)", or "PROGRAM: option
   '--x' needs a value (see HELP --help)" when missing_value. given is the
   word getopt stopped at (argv[optind - 1]; a value after '=' is not
   repeated); short_opt is getopt's optopt (a short option's letter, else
   0). help is the command whose --help applies ("playdoh-submit map"). */
void pd_cli_option_error(const char *program, const char *help, const char *given, int short_opt,
                         bool missing_value);

/* The word of words (NULL-terminated) nearest to word when it is close
   enough to be a typo (at most 2 letters added, dropped, changed or two
   neighbours swapped, and fewer than half of word's letters); else NULL.
   Borrowed from words. */
const char *pd_cli_nearest(const char *word, const char *const *words);

#endif
