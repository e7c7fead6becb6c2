/*  pd_file: whole-file reads and atomic writes, for the caches.

    The worker's module cache and the GPU slots' PTX cache are shared by
    several processes at once: a file is written to a temporary name and
    renamed into place, so a reader sees the old file or the whole new one,
    never a part.
*/
#ifndef PD_FILE_H
#define PD_FILE_H

#include <stddef.h>

/* Writes len bytes to path through "<path>.tmp.<pid>.<n>" and rename().
   Returns 0, or PD_ESYS with errno set (the temporary file is removed). As
   everywhere in this file, pd_sys_error() keeps that errno for
   pd_strerror_sys(). */
int pd_file_write_atomic(const char *path, const void *data, size_t len);

/* Reads the regular file at path, at most max bytes, into a malloc'ed
   buffer with a NUL after the data (*data is the caller's to free; *len
   excludes the NUL). Returns 0, or PD_ESYS with errno set (EFBIG when the file
   is larger than max, EINVAL when it is not a regular file). */
int pd_file_read(const char *path, size_t max, char **data, size_t *len);

/* Creates directory path and those above it that are missing (mode for
   each new one; '/' and, on Windows, '\\' separate them; a drive such as
   "C:" or a directory made meanwhile is no failure). Returns 0, or PD_ESYS
   with errno set (path names the part that failed when fail is not NULL: a
   copy of at most failcap bytes). */
int pd_file_mkdirs(const char *path, int mode, char *fail, size_t failcap);

/* Checks that name[0..len) is a relative path that stays inside the
   directory it is taken from, on every platform: 1 to 1024 bytes, no NUL,
   '/' between its parts, none of them empty or "..", no '\\' and no ':'
   (a drive or a stream on Windows). Used for the files an exec job sends
   and brings back (pd_exec.h), which cross machines. Returns 0, or
   PD_EINVAL with why (cap bytes) saying what is wrong: "is absolute", ... */
int pd_file_check_relative(const char *name, size_t len, char *why, size_t cap);

#endif
