/*  pd_bundle: modules made of several files, with compiler flags.

    A module of kind "pkg" is a bundle: C sources, the headers they include,
    and the flags to compile them with (-lm, -O3, -DN=64), packed into one
    msgpack value so that it is content-addressed as a whole like a single
    file:

        {"files": [[NAME, BYTES], ...], "flags": [FLAG, ...]}

    NAME is a base name ("solver.c", "tables.h": letters, digits, '.', '_',
    '-', '+'; ending in .c or .h); files are sorted by name, names are unique
    and at least one is a .c file. The client packs (pd_bundle_pack), the
    broker and the worker check (pd_bundle_parse) before anything is stored
    or compiled. A worker writes the files into one directory and runs
    `cc -O2 -fPIC -shared *.c FLAGS -lm` there.

    Flags are a whitelist, since every worker must build the module the same
    way and a flag must not reach outside the module:
        -lNAME                link a library installed on the workers
        -DNAME, -DNAME=VALUE, -UNAME
        -O0 -O1 -O2 -O3 -Os -Og -Ofast
        -std=c99|c11|c17|c2x|gnu99|gnu11|gnu17|gnu2x (and c89, c90, c18, gnu89, gnu18)
        -march=native -mtune=native -ffast-math -fopenmp -fno-math-errno
        -funroll-loops -g -Wall -Wextra -pthread
    Refused, with the reason: -L (a directory on the worker: install the
    library system-wide there and use -lNAME), -I (headers travel in the
    module), and everything else (-o, -B, -specs, -fplugin, -wrapper, @file
    ... reach files or programs outside the module).
*/
#ifndef PD_BUNDLE_H
#define PD_BUNDLE_H

#include "pd_codec.h"

#include <stdbool.h>
#include <stddef.h>

#define PD_BUNDLE_MAX_FILES 256
#define PD_BUNDLE_MAX_FLAGS 64
#define PD_BUNDLE_MAX_NAME 128 /* bytes of a file name or a flag */

/* One file of a bundle: views into the caller's or the bundle's bytes. */
typedef struct {
    const char *name; /* not NUL-terminated in a parsed bundle */
    size_t name_len;
    const void *data;
    size_t len;
} pd_bundle_file_t;

/* A parsed bundle: views into the checked bytes (which must outlive it). */
typedef struct {
    pd_bundle_file_t *files;  /* owned array of views */
    size_t nfiles;
    char (*flags)[PD_BUNDLE_MAX_NAME + 1]; /* owned, NUL-terminated copies */
    size_t nflags;
} pd_bundle_t;

/* Checks one flag against the whitelist. Returns 0, or PD_EINVAL with a
   sentence in why that says what to do instead. */
int pd_bundle_check_flag(const char *flag, char *why, size_t cap);
/* Checks one file name (NUL-terminated). Returns 0 or PD_EINVAL with why. */
int pd_bundle_check_name(const char *name, size_t len, char *why, size_t cap);

/* Packs files (any order; names are base names) and flags into out as a
   bundle. Returns 0, PD_EINVAL (a bad name or flag, a duplicate name, no .c
   file, too many files or flags: why says which), or PD_ETOOBIG/PD_ENOMEM. */
int pd_bundle_pack(const pd_bundle_file_t *files, size_t nfiles, const char *const *flags,
                   size_t nflags, pd_buf_t *out, char *why, size_t cap);

/* Checks and parses a bundle; on success b holds views (free them with
   pd_bundle_free). Returns 0, or PD_EPROTO (not a bundle), PD_EINVAL (a bad
   name or flag, unsorted or duplicate names, no .c file) or PD_ENOMEM, with
   why set. */
int pd_bundle_parse(const void *data, size_t len, pd_bundle_t *b, char *why, size_t cap);
void pd_bundle_free(pd_bundle_t *b);

#endif
