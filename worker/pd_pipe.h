/*  pd_pipe: length-prefixed msgpack frames over the pipes of a framed child
    (started with pd_plat_spawn; written and read with pd_plat_write_all and
    pd_plat_read_all).

    The worker talks to its child processes (slot processes, pd_slot; node
    processes of synchronous tasks, pd_nodeproc) over two pipes: the child reads
    frames on fd PD_PIPE_CHILD_IN (3) and writes frames on fd
    PD_PIPE_CHILD_OUT (4). A frame is a uint32 little-endian length, then
    that many bytes holding one msgpack value. The child's stdout goes to its
    stderr (a task's printf() cannot corrupt the pipe) and its stdin is
    /dev/null.

    Writers build a frame in a pd_buf_t between pd_pipe_frame_begin() and
    pd_pipe_frame_end(); blocking readers use pd_pipe_read_frame(); the
    worker's non-blocking side keeps its own buffer and splits it with
    pd_pipe_le32().
*/
#ifndef PD_PIPE_H
#define PD_PIPE_H

#include "pd_codec.h"
#include "pd_plat.h"

#include <stddef.h>
#include <stdint.h>

#define PD_PIPE_CHILD_IN PD_PLAT_CHILD_IN   /* the child reads frames here (3) */
#define PD_PIPE_CHILD_OUT PD_PLAT_CHILD_OUT /* the child writes frames here (4) */

/* Reads what the non-blocking fd holds into *buf (grown by doubling from
   128 KiB, always with 64 KiB free before a read) until a read would block,
   stopping once *len reaches limit (the caller consumes frames and calls
   again: a child that writes without pause cannot grow the buffer past
   limit plus one read). Returns 1 at end of file, else 0; an allocation
   failure leaves the rest in the pipe for the next call. */
int pd_pipe_drain(int fd, uint8_t **buf, size_t *len, size_t *cap, size_t limit);

/* Starts a frame in b: resets it and reserves the 4-byte length prefix. */
void pd_pipe_frame_begin(pd_buf_t *b);
/* Fills in the length prefix. Returns 0, or PD_ETOOBIG when the buffer
   failed (out of memory or over its cap). */
int pd_pipe_frame_end(pd_buf_t *b);
/* Reads the little-endian uint32 at p. */
uint32_t pd_pipe_le32(const uint8_t *p);

/* Reads one frame from a blocking fd into in (reset first) and checks that
   it holds one well-formed msgpack value. Returns 1, 0 at EOF before the
   frame, or a negative PD_E* code (*why, when not NULL, then says which):
   PD_EIO on a broken pipe, PD_ETOOBIG for a frame over PD_MAX_FRAME,
   PD_ENOMEM, PD_EPROTO for a malformed frame. */
int pd_pipe_read_frame(int fd, pd_buf_t *in, const char **why);

/* The program a child runs, as a user would name it: exe itself, or for
   "/proc/self/exe" this process's own path (ending in " (deleted)" when the
   file was replaced since it started). Borrowed from exe or buf. */
const char *pd_pipe_program(const char *exe, char *buf, size_t cap);

/* Says in out why a child that ran exe died before its first frame, from
   its wait status, and what to do about it: the program could not be
   executed (status 127: missing, not executable, a shared library that
   does not load), pipes not set up (126), its command line refused (2), a
   signal, another status; and when the worker's own program was replaced
   since it started, that the worker needs a restart. */
void pd_pipe_explain_start(const char *exe, int status, char *out, size_t cap);

#endif
