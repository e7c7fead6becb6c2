/*  pd_pipe: frames over pipes and the start of a framed child; see
    pd_pipe.h. The system calls are pd_plat's.
*/
#include "pd_pipe.h"
#include "pd_error.h"

#include "pd_plat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pd_pipe_drain(int fd, uint8_t **buf, size_t *len, size_t *cap, size_t limit)
{
    while (*len < limit) {
        if (*cap - *len < 65536) {
            size_t ncap = *cap ? *cap * 2 : 131072;
            uint8_t *d = realloc(*buf, ncap);
            if (!d)
                return 0; /* try again at the next poll */
            *buf = d;
            *cap = ncap;
        }
        long got = pd_plat_read(fd, *buf + *len, *cap - *len);
        if (got < 0)
            return 0; /* EAGAIN: all read */
        if (got == 0)
            return 1;
        *len += (size_t) got;
    }
    return 0;
}

void pd_pipe_frame_begin(pd_buf_t *b)
{
    static const uint8_t zero[4] = {0};
    pd_buf_reset(b);
    pd_buf_append(b, zero, 4);
}

int pd_pipe_frame_end(pd_buf_t *b)
{
    if (b->failed || b->len < 4)
        return PD_ETOOBIG;
    uint32_t n = (uint32_t) (b->len - 4);
    b->data[0] = (uint8_t) n;
    b->data[1] = (uint8_t) (n >> 8);
    b->data[2] = (uint8_t) (n >> 16);
    b->data[3] = (uint8_t) (n >> 24);
    return 0;
}

uint32_t pd_pipe_le32(const uint8_t *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
           | (uint32_t) p[3] << 24;
}

int pd_pipe_read_frame(int fd, pd_buf_t *in, const char **why)
{
    uint8_t hdr[4];
    int rc = pd_plat_read_all(fd, hdr, 4);
    if (rc <= 0) {
        if (rc < 0 && why)
            *why = "the pipe broke in the middle of a frame header";
        return rc < 0 ? PD_EIO : 0;
    }
    uint32_t len = pd_pipe_le32(hdr);
    pd_buf_reset(in);
    if (len > PD_MAX_FRAME) {
        if (why)
            *why = "frame over the size limit";
        return PD_ETOOBIG;
    }
    if (pd_buf_reserve(in, len)) {
        if (why)
            *why = "no memory for the frame";
        return PD_ENOMEM;
    }
    if (pd_plat_read_all(fd, in->data, len) != 1) {
        if (why)
            *why = "the pipe broke in the middle of a frame";
        return PD_EIO;
    }
    in->len = len;
    const char *bad = NULL;
    if (pd_mp_check(in->data, len, PD_MAX_DEPTH, &bad)) {
        if (why)
            *why = bad ? bad : "malformed frame";
        return PD_EPROTO;
    }
    return 1;
}

const char *pd_pipe_program(const char *exe, char *buf, size_t cap)
{
    if (strcmp(exe, "/proc/self/exe") != 0 || pd_plat_self_exe(buf, cap) != 0)
        return exe;
    return buf;
}

void pd_pipe_explain_start(const char *exe, int status, char *out, size_t cap)
{
    char path[512];
    const char *prog = pd_pipe_program(exe, path, sizeof path);
    int code = pd_plat_status_exit(status);
    char how[128];
    if (pd_plat_status_crashed(status))
        snprintf(out, cap, "%.200s was %s before it was ready", prog,
                 pd_plat_status_str(status, how, sizeof how));
    else if (code == 127)
        snprintf(out, cap, "%.200s could not be executed: the program is missing or not "
                 "executable, or a shared library it needs does not load (the loader's "
                 "message is above; check with `ldd %.200s`)", prog, prog);
    else if (code == 126)
        snprintf(out, cap, "the new process could not set up its pipes before running %.200s "
                 "(out of file descriptors? see `ulimit -n`)", prog);
    else if (code == 2)
        snprintf(out, cap, "%.200s refused the command line the worker gave it (is it "
                 "playdoh-worker of this version?)", prog);
    else
        snprintf(out, cap, "%.200s exited with status %d before it was ready (any message "
                 "of its own is above)", prog, code);
    size_t len = strlen(out), dl = strlen(" (deleted)"), pl = strlen(prog);
    if (pl > dl && strcmp(prog + pl - dl, " (deleted)") == 0 && len + 1 < cap)
        snprintf(out + len, cap - len, "; the worker's program was replaced or deleted since it "
                 "started (an upgrade?): restart the worker");
}
