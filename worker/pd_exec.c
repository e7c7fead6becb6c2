/*  pd_exec: runs one shell command for the built-in `exec` task; see
    pd_exec.h.

    The system's shell runs the command (pd_plat_shell_argv, pd_plat_run),
    which keeps at most the job's output cap of each stream. The shell
    dies with the slot and shares its group (process group, Job Object),
    which the worker kills on a time-out.
*/
#include "pd_exec.h"
#include "pd_error.h"
#include "pd_json.h"

#include "pd_plat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double s_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double s_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Packs key and the bytes as str (UTF-8) or bin. */
static void s_pack_bytes(msgpack_packer *pk, const char *key, const char *p, size_t len)
{
    pd_pack_cstr(pk, key);
    if (pd_utf8_valid(p, len)) {
        msgpack_pack_str(pk, len);
        msgpack_pack_str_body(pk, p, len);
    } else {
        msgpack_pack_bin(pk, len);
        msgpack_pack_bin_body(pk, p, len);
    }
}

int pd_exec_run(const char *cmd, size_t len, const char *host, const pd_limits_t *lim,
                pd_buf_t *out, char *msg, size_t cap)
{
    size_t keep = lim && lim->output ? (size_t) lim->output : PD_EXEC_MAX_OUTPUT;
    if (memchr(cmd, 0, len)) {
        snprintf(msg, cap, "exec: the command line holds a NUL byte");
        return PD_EINVAL;
    }
    char *line = malloc(len + 1);
    if (!line) {
        snprintf(msg, cap, "exec: out of memory");
        return PD_ENOMEM;
    }
    memcpy(line, cmd, len);
    line[len] = 0;
    pd_plat_capture_t cap_ = {.outcap = keep + 1, .errcap = keep + 1};
    cap_.out = malloc(cap_.outcap);
    cap_.err = malloc(cap_.errcap);
    if (!cap_.out || !cap_.err) {
        free(cap_.out);
        free(cap_.err);
        free(line);
        snprintf(msg, cap, "exec: out of memory");
        return PD_ENOMEM;
    }
    char *argv[6];
    pd_plat_shell_argv(line, argv);
    double start = s_wall(), t0 = s_mono();
    int status = pd_plat_run(argv, NULL, 0, &cap_, -1);
    free(line);
    if (status == PD_ESYS) {
        snprintf(msg, cap, "exec: cannot start a process: %s", pd_strerror(status));
        free(cap_.out);
        free(cap_.err);
        return PD_ESYS;
    }
    double runtime = s_mono() - t0;
    int exit_code = pd_plat_status_exit(status);
    int sig = pd_plat_status_signal(status);

    msgpack_packer pk;
    pd_packer_init(&pk, out);
    size_t before = out->len;
    char note[200] = "", ks[32];
    if (cap_.trunc)
        snprintf(note, sizeof note, "%llu bytes of standard output and %llu of standard error "
                 "past the job's output limit of %s (each stream) were dropped",
                 (unsigned long long) cap_.outdrop, (unsigned long long) cap_.errdrop,
                 pd_limits_size_str(keep, ks, sizeof ks));
    msgpack_pack_map(&pk, note[0] ? 11 : 10);
    pd_pack_kv_int(&pk, "exit", exit_code);
    pd_pack_kv_int(&pk, "signal", sig);
    s_pack_bytes(&pk, "out", cap_.out, cap_.outlen);
    s_pack_bytes(&pk, "err", cap_.err, cap_.errlen);
    pd_pack_kv_str(&pk, "host", host);
    pd_pack_kv_double(&pk, "start", start);
    pd_pack_kv_double(&pk, "runtime", runtime);
    pd_pack_kv_bool(&pk, "truncated", cap_.trunc);
    pd_pack_kv_uint(&pk, "dropped_out", cap_.outdrop);
    pd_pack_kv_uint(&pk, "dropped_err", cap_.errdrop);
    if (note[0])
        pd_pack_kv_str(&pk, "note", note);
    free(cap_.out);
    free(cap_.err);
    if (out->failed) {
        out->len = before;
        out->failed = false;
        snprintf(msg, cap, "exec: out of memory packing the command's output");
        return PD_ENOMEM;
    }
    if (pd_plat_status_cpu_limit(status)) {
        snprintf(msg, cap, "the job went over its CPU time limit of %llu s",
                 (unsigned long long) (lim ? lim->cpu_s : 0));
        return PD_ELIMIT;
    }
    if (sig) {
        char how[128];
        snprintf(msg, cap, "command %s", pd_plat_status_str(status, how, sizeof how));
        return PD_ETASK;
    }
    if (exit_code != 0) {
        snprintf(msg, cap, "command exited with status %d", exit_code);
        return PD_ETASK;
    }
    return 0;
}
