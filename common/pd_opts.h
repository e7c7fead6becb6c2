/*  pd_opts: the one merger of command-line flags, configuration file and
    defaults for Playdoh's programs.

    A program describes each option once, as a line of a table: the file's
    [section] key, the kind of value, where the flag's value sits in the
    program's flags structure and where the result goes in its settings
    structure. The settings structure holds the defaults before the merge
    (its *_defaults() function fills it); pd_opts_merge then applies, for
    each line, the flag when it was given, else the file's value when the
    file set one, else leaves the default: flags override the file, the
    file overrides defaults. Values were checked when they were read (the
    file by pd_config's schema, flags by pd_config_check or their bounds),
    so the merge cannot fail.

        static const pd_opt_t s_table[] = {
            PD_OPT_LINE("broker", "heartbeat_ms", PD_OPT_U32, s_flags_t, hb,
                        pd_broker_config_t, hb_ms),
        };
        pd_opts_merge(s_table, PD_OPTS_COUNT(s_table), &flags, cf, &cfg);

    Adding an option is one table line (plus its flag in the program's
    getopt table and its key in pd_config's schema).
*/
#ifndef PD_OPTS_H
#define PD_OPTS_H

#include <stddef.h>
#include <stdint.h>

#include "pd_config.h"

/* What a line's destination is, and how its flag is held. */
typedef enum {
    PD_OPT_STR, /* const char *; flag: const char * (NULL: not given) */
    PD_OPT_U32, /* uint32_t; flag: int64_t (< 0: not given) */
    PD_OPT_U64, /* uint64_t; flag: int64_t (< 0: not given) */
    PD_OPT_INT, /* int; flag: int64_t (< 0: not given) */
    PD_OPT_MB,  /* uint64_t bytes, given in MiB by flag and file; flag: int64_t */
} pd_opt_kind_t;

/* One option: its file key, its kind, and the offsets of its flag and of
   its destination. */
typedef struct {
    const char *section, *key;
    pd_opt_kind_t kind;
    size_t flag_at; /* offset in the flags structure */
    size_t dest_at; /* offset in the settings structure */
} pd_opt_t;

/* A table line: the flag is field ffield of FT, the destination field
   dfield of DT. */
#define PD_OPT_LINE(section, key, kind, FT, ffield, DT, dfield)                                \
    {(section), (key), (kind), offsetof(FT, ffield), offsetof(DT, dfield)}
#define PD_OPTS_COUNT(table) (sizeof(table) / sizeof((table)[0]))

/* Applies the n lines of table: for each, the flag in flags when given,
   else cf's value when a file set it, else the destination's current
   value (the default) stays. Strings are borrowed from flags or cf. */
void pd_opts_merge(const pd_opt_t *table, size_t n, const void *flags, const pd_config_t *cf,
                   void *dest);

#endif
