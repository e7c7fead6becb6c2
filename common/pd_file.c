/*  pd_file: see pd_file.h. */
#include "pd_file.h"
#include "pd_plat.h"
#include "pd_error_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int pd_file_write_atomic(const char *path, const void *data, size_t len)
{
    static atomic_uint counter;
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long) getpid(),
                 atomic_fetch_add(&counter, 1)) >= (int) sizeof tmp) {
        errno = ENAMETOOLONG;
        return pd_sys_error();
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return pd_sys_error();
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int saved = n < 0 ? errno : EIO;
            close(fd);
            unlink(tmp);
            errno = saved;
            return pd_sys_error();
        }
        p += n;
        left -= (size_t) n;
    }
    if (close(fd) || pd_plat_rename(tmp, path)) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
        return pd_sys_error();
    }
    return 0;
}

int pd_file_read(const char *path, size_t max, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    /* Not a regular file: refused before open(), which would wait for a
       writer on a FIFO. */
    struct stat pre;
    if (stat(path, &pre) == 0 && !S_ISREG(pre.st_mode)) {
        errno = EINVAL;
        return pd_sys_error();
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pd_sys_error();
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return pd_sys_error();
    }
    if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size > (uint64_t) max) {
        close(fd);
        errno = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
        return pd_sys_error();
    }
    size_t size = (size_t) st.st_size, got = 0;
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        errno = ENOMEM;
        return pd_sys_error();
    }
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* the file shrank: return what is there */
        got += (size_t) n;
    }
    close(fd);
    buf[got] = 0;
    *data = buf;
    *len = got;
    return 0;
}

int pd_file_mkdirs(const char *path, int mode, char *fail, size_t failcap)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int) sizeof tmp) {
        errno = ENAMETOOLONG;
        return pd_sys_error();
    }
    for (char *p = tmp + 1;; p++) {
        if (!pd_plat_dirsep(*p) && *p != 0)
            continue;
        char c = *p;
        *p = 0;
        struct stat st;
        if (pd_plat_mkdir(tmp, mode) != 0 && errno != EEXIST &&
            !(stat(tmp, &st) == 0 && S_ISDIR(st.st_mode))) {
            if (fail && failcap)
                snprintf(fail, failcap, "%s", tmp);
            return pd_sys_error();
        }
        *p = c;
        if (!c)
            return 0;
    }
}

int pd_file_check_relative(const char *name, size_t len, char *why, size_t cap)
{
    const char *bad = NULL;
    if (len == 0)
        bad = "is empty";
    else if (len > 1024)
        bad = "is longer than 1024 bytes";
    else if (memchr(name, 0, len))
        bad = "holds a NUL byte";
    else if (name[0] == '/')
        bad = "is absolute: give a path relative to the directory";
    else if (memchr(name, '\\', len) || memchr(name, ':', len))
        bad = "holds a '\\' or a ':', which Windows reads as a directory or a drive";
    for (size_t i = 0; !bad && i <= len;) {
        size_t j = i;
        while (j < len && name[j] != '/')
            j++;
        if (j == i)
            bad = "has an empty part ('//' or a '/' at its end)";
        else if (j - i == 2 && name[i] == '.' && name[i + 1] == '.')
            bad = "climbs out of its directory with '..'";
        i = j + 1;
    }
    if (!bad)
        return 0;
    if (why && cap)
        snprintf(why, cap, "%s", bad);
    return PD_EINVAL;
}
