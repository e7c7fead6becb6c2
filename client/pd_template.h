/*  pd_template: the command templates of `playdoh-submit exec`, as GNU
    parallel reads them.

    A template is a shell command line with replacement strings that each
    argument line fills in:

        {}    the line                      {.}   the line without its extension
        {/}   its base name                 {//}  its directory ("." when none)
        {/.}  base name without extension   {#}   the job's number, from 1

    A replaced value is quoted for the shell (a value of safe characters as
    it is, anything else in single quotes), so the command sees exactly the
    line, whatever it holds. A template without any replacement string gets
    " {}" appended, as GNU parallel does. Braces that name nothing above stay
    as they are.
*/
#ifndef PD_TEMPLATE_H
#define PD_TEMPLATE_H

#include "pd_codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when tmpl holds at least one replacement string. */
bool pd_template_has_placeholder(const char *tmpl);

/* Appends the command for argument arg[0..len) (job number seq) to out.
   Returns 0, PD_EINVAL when arg holds a NUL byte (no shell command can), or
   PD_ETOOBIG / PD_ENOMEM when out cannot grow. On error out keeps its
   length. */
int pd_template_expand(const char *tmpl, const char *arg, size_t len, uint64_t seq, pd_buf_t *out);

/* Appends the file name that tmpl names for argument arg[0..len) (job
   number seq) to out: the same replacement strings, their values as they
   are (not quoted), nothing appended when there is none (then every job
   names the same file). For exec's --transfer and --return. Returns as
   pd_template_expand. */
int pd_template_expand_name(const char *tmpl, const char *arg, size_t len, uint64_t seq,
                            pd_buf_t *out);

/* Appends s[0..n) quoted for a POSIX shell: as it is when every character is
   one of A-Z a-z 0-9 _ - . / : @ % + , =, else in single quotes (a quote
   inside becomes '"'"'). The empty string becomes ''. */
int pd_shell_quote(const char *s, size_t n, pd_buf_t *out);

#endif
