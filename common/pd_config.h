/*  pd_config: the one configuration file of every Playdoh program.

    Format (conf/playdoh.conf is the documented example): lines of
    `key = value` under `[section]` headers; `#` or `;` starts a comment at
    the beginning of a line, and ` #` (after a blank) ends a value unless
    the value is in double quotes. Sections: cluster, broker, worker, submit.
    Every key is known in advance (a schema in pd_config.c with its type
    and range), so a typo or a value out of range is refused at load time
    with the file, the line and what was expected:

        /etc/playdoh/playdoh.conf:12: [worker] cpus wants a whole number
        from 0 to 4096, not 'many'

    Files are read in order, a later one overriding an earlier one key by
    key: /etc/playdoh/playdoh.conf, then $XDG_CONFIG_HOME/playdoh/playdoh.conf
    (or ~/.config/playdoh/playdoh.conf); an explicit file (--config FILE, or
    $PLAYDOH_CONFIG) replaces both. Command-line flags override the file:
    pd_opts_merge (pd_opts.h) applies a program's table of options, flag
    over file over default.

        pd_config_t *cf = pd_config_new();
        char why[512];
        if (pd_config_load_default(cf, flag_config, why, sizeof why)) { print why; exit 2; }
        int cpus = (int) pd_config_uint(cf, "worker", "cpus", ncpu);
        pd_config_destroy(&cf);
*/
#ifndef PD_CONFIG_H
#define PD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_CONFIG_SYSTEM_PATH "/etc/playdoh/playdoh.conf"
#define PD_CONFIG_MAX_BYTES (1u << 20) /* a configuration file is at most 1 MiB */
#define PD_CONFIG_MAX_VALUE 1024       /* bytes in one value */

typedef struct pd_config pd_config_t;

/* An empty configuration (every getter returns its default). NULL when out
   of memory. */
pd_config_t *pd_config_new(void);
/* Frees c; sets *p to NULL; safe on NULL and twice. */
void pd_config_destroy(pd_config_t **p);

/* Parses text (len bytes) as the contents of a file called name; its keys
   override those loaded before. Returns 0, or PD_EINVAL with why set to
   "name:line: what is wrong and what is expected" (nothing of that text is
   kept then), or PD_ENOMEM. */
int pd_config_parse(pd_config_t *c, const char *name, const char *text, size_t len, char *why,
                    size_t whycap);
/* Reads and parses the file at path. Returns 0, PD_EIO when it cannot be
   read (why says why), or an error of pd_config_parse. */
int pd_config_load(pd_config_t *c, const char *path, char *why, size_t whycap);
/* Loads the standard files: explicit when not NULL (it must exist), else
   $PLAYDOH_CONFIG when set (it must exist), else the system file and the
   user's file, each one only when it exists. Returns 0 or an error of
   pd_config_load. */
int pd_config_load_default(pd_config_t *c, const char *explicit_path, char *why, size_t whycap);
/* The files loaded so far, comma-separated ("" when none); borrowed. */
const char *pd_config_sources(const pd_config_t *c);

/* True when section.key was set by a file. */
bool pd_config_has(const pd_config_t *c, const char *section, const char *key);
/* The value of section.key, or dflt when no file set it. Values were
   checked against the schema at load time, so these cannot fail. The
   string is borrowed until c is destroyed. */
const char *pd_config_str(const pd_config_t *c, const char *section, const char *key,
                          const char *dflt);
uint64_t pd_config_uint(const pd_config_t *c, const char *section, const char *key,
                        uint64_t dflt);
double pd_config_double(const pd_config_t *c, const char *section, const char *key, double dflt);
bool pd_config_bool(const pd_config_t *c, const char *section, const char *key, bool dflt);
/* Where section.key was set, "file:line", or "" when nowhere; borrowed. */
const char *pd_config_where(const pd_config_t *c, const char *section, const char *key);

/* Checks a value for section.key against the schema, as a file would be
   (command-line flags use it too, so both say the same). Returns 0, or
   PD_EINVAL with why saying what is expected (no file and line). */
int pd_config_check(const char *section, const char *key, const char *value, char *why,
                    size_t whycap);

#endif
