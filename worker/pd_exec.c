/*  pd_exec: runs one shell command for the built-in `exec` task; see
    pd_exec.h.

    pd_exec_job reads the job's argument (a command line, or a map with the
    command, its directory and its files), chooses the directory the
    command runs in (an explicit one, the submitter's when this machine sees
    it, or a scratch directory of its own), writes the files sent with the
    job there, runs the command, reads back the files asked for and removes
    the scratch directory. The system's shell runs the command
    (pd_plat_shell_argv, pd_plat_run), which keeps at most the job's output
    cap of each stream. The shell dies with the slot and shares its group
    (process group, Job Object), which the worker kills on a time-out.
*/
#include "pd_exec.h"
#include "pd_error.h"
#include "pd_file.h"
#include "pd_json.h"

#include "pd_plat.h"

#include <czmq.h>
#include <errno.h>
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double s_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
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

/* Where a command runs and what it brings back, for s_run. */
typedef struct {
    const char *dir;       /* its working directory, or NULL: this process's */
    bool scratch;          /* dir is a scratch directory made for the job */
    const uint8_t *ret;    /* the names to bring back: a msgpack array, or NULL */
    size_t ret_len;        /* bytes of ret */
} s_place_t;

/* Packs {name: bytes} of the files ret names, read from place->dir, into
   pk: those that exist when the command failed (status != 0), every one
   when it succeeded. Returns 0, or a PD_E* code with msg set (the files
   packed so far then stay out of the result: pk's buffer is cut back by
   the caller). */
static int s_pack_returns(msgpack_packer *pk, const s_place_t *place, const char *host,
                          bool succeeded, char *msg, size_t cap)
{
    pd_rd_t r;
    pd_rd_init(&r, place->ret, place->ret_len);
    uint32_t n;
    if (pd_rd_array(&r, &n))
        return PD_EPROTO;
    char **data = calloc(n ? n : 1, sizeof *data);
    size_t *lens = calloc(n ? n : 1, sizeof *lens);
    const char **names = calloc(n ? n : 1, sizeof *names);
    uint32_t *nlens = calloc(n ? n : 1, sizeof *nlens);
    int rc = data && lens && names && nlens ? 0 : PD_ENOMEM;
    if (rc)
        snprintf(msg, cap, "exec: out of memory reading the files to return");
    uint32_t have = 0;
    uint64_t total = 0;
    for (uint32_t i = 0; i < n && !rc; i++) {
        const char *name;
        uint32_t nl;
        if (pd_rd_str(&r, &name, &nl))
            break; /* checked by s_parse */
        char path[4200];
        snprintf(path, sizeof path, "%s/%.*s", place->dir, (int) nl, name);
        size_t left = PD_EXEC_MAX_RETURN - total;
        if (pd_file_read(path, left, &data[have], &lens[have]) != 0) {
            if (errno == ENOENT && !succeeded)
                continue; /* the command failed: bring back what it left */
            char ms[32];
            rc = errno == EFBIG ? PD_ETOOBIG : PD_EIO;
            if (errno == EFBIG)
                snprintf(msg, cap, "exec: the files to return (--return) are over %s in all "
                         "with %.*s: write large outputs to a file system the submitter "
                         "shares (--workdir)", pd_limits_size_str(PD_EXEC_MAX_RETURN, ms,
                                                                  sizeof ms), (int) nl, name);
            else
                snprintf(msg, cap, "exec: cannot return %.*s (--return) from the job's "
                         "directory %s on host %s: %s", (int) nl, name, place->dir, host,
                         errno == ENOENT  ? "the command did not write it"
                         : errno == EINVAL ? "it is not a regular file"
                                           : strerror(errno));
            break;
        }
        total += lens[have];
        names[have] = name;
        nlens[have++] = nl;
    }
    if (!rc) {
        pd_pack_cstr(pk, "files");
        msgpack_pack_map(pk, have);
        for (uint32_t i = 0; i < have; i++) {
            msgpack_pack_str(pk, nlens[i]);
            msgpack_pack_str_body(pk, names[i], nlens[i]);
            msgpack_pack_bin(pk, lens[i]);
            msgpack_pack_bin_body(pk, data[i], lens[i]);
        }
    }
    for (uint32_t i = 0; data && i < have; i++)
        free(data[i]);
    free(data);
    free(lens);
    free(names);
    free(nlens);
    return rc;
}

/* Runs cmd[0..len) at place (NULL: here, nothing returned) and appends the
   result map to out; as pd_exec_run otherwise. */
/* How the finished command's status reads as an error: over the CPU limit, killed by a
 * signal, or a nonzero exit; 0 when it succeeded. */
static int s_status_error(int status, const pd_limits_t *lim, char *msg, size_t cap)
{
    if (pd_plat_status_cpu_limit(status)) {
        snprintf(msg, cap, "the job went over its CPU time limit of %llu s",
                 (unsigned long long) (lim ? lim->cpu_s : 0));
        return PD_ELIMIT;
    }
    if (pd_plat_status_signal(status)) {
        char how[128];
        snprintf(msg, cap, "command %s", pd_plat_status_str(status, how, sizeof how));
        return PD_ETASK;
    }
    int exit_code = pd_plat_status_exit(status);
    if (exit_code != 0) {
        snprintf(msg, cap, "command exited with status %d", exit_code);
        return PD_ETASK;
    }
    return 0;
}

static int s_run(const char *cmd, size_t len, const s_place_t *place, const char *host,
                 const pd_limits_t *lim, pd_buf_t *out, char *msg, size_t cap)
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
    cap_.cwd = place ? place->dir : NULL;
    double start = s_wall(), t0 = (zclock_usecs() / 1e6);
    int status = pd_plat_run(argv, NULL, 0, &cap_, -1);
    free(line);
    if (status == PD_ESYS) {
        snprintf(msg, cap, "exec: cannot start a process: %s", pd_strerror(status));
        free(cap_.out);
        free(cap_.err);
        return PD_ESYS;
    }
    double runtime = (zclock_usecs() / 1e6) - t0;
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
    bool succeeded = !pd_plat_status_cpu_limit(status) && pd_plat_status_signal(status) == 0 &&
                     exit_code == 0;
    uint32_t fields = (note[0] ? 11 : 10) + (place ? 2 : 0) + (place && place->ret ? 1 : 0);
    msgpack_pack_map(&pk, fields);
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
    if (place) {
        pd_pack_kv_str(&pk, "dir", place->dir);
        pd_pack_kv_bool(&pk, "scratch", place->scratch);
    }
    int ret_code = 0;
    if (place && place->ret && !out->failed) {
        size_t at = out->len;
        ret_code = s_pack_returns(&pk, place, host, succeeded, msg, cap);
        if (ret_code) {
            out->len = at; /* the result says why instead */
            pd_pack_cstr(&pk, "files");
            msgpack_pack_map(&pk, 0);
        }
    }
    if (out->failed) {
        out->len = before;
        out->failed = false;
        snprintf(msg, cap, "exec: out of memory packing the command's output");
        return PD_ENOMEM;
    }
    int failed = s_status_error(status, lim, msg, cap);
    return failed ? failed : ret_code;
}

int pd_exec_run(const char *cmd, size_t len, const char *host, const pd_limits_t *lim,
                pd_buf_t *out, char *msg, size_t cap)
{
    return s_run(cmd, len, NULL, host, lim, out, msg, cap);
}

/* An exec job's argument, read. */
typedef struct {
    const char *cmd;        /* the command line (not NUL-terminated) */
    uint32_t cmd_len;
    char workdir[4096];     /* "workdir": where it must run, or "" */
    char cwd[4096];         /* "cwd": the submitter's directory, or "" */
    const uint8_t *files;   /* "files": {name: bin} as sent, or NULL */
    size_t files_len;
    const uint8_t *ret;     /* "return": [name, ...] as sent, or NULL */
    size_t ret_len;
} s_job_t;

/* Checks each name of the files map or the return array: relative, inside
   the job's directory. */
static int s_check_names(const uint8_t *raw, size_t len, bool map, char *msg, size_t cap)
{
    pd_rd_t r;
    pd_rd_init(&r, raw, len);
    uint32_t n;
    if (map ? pd_rd_map(&r, &n) : pd_rd_array(&r, &n)) {
        snprintf(msg, cap, "exec: '%s' must be %s", map ? "files" : "return",
                 map ? "a map of names to bytes" : "an array of names");
        return PD_EINVAL;
    }
    if (n > PD_EXEC_MAX_FILES) {
        snprintf(msg, cap, "exec: a job %s at most %d files (%u asked)",
                 map ? "carries" : "returns", PD_EXEC_MAX_FILES, n);
        return PD_EINVAL;
    }
    for (uint32_t i = 0; i < n; i++) {
        const char *name;
        uint32_t nl;
        const void *p;
        uint32_t pl;
        char why[128];
        if (pd_rd_str(&r, &name, &nl) || (map && pd_rd_bin(&r, &p, &pl))) {
            snprintf(msg, cap, "exec: '%s' must be %s", map ? "files" : "return",
                     map ? "a map of names (str) to bytes (bin)" : "an array of names (str)");
            return PD_EINVAL;
        }
        if (pd_file_check_relative(name, nl, why, sizeof why)) {
            snprintf(msg, cap, "exec: the file name '%.*s' (%s) %s", (int) (nl > 200 ? 200 : nl),
                     name, map ? "--transfer" : "--return", why);
            return PD_EINVAL;
        }
    }
    return 0;
}

/* Reads the job's argument: a str (the command) or a map. */
static int s_parse(const uint8_t *arg, size_t alen, s_job_t *j, char *msg, size_t cap)
{
    memset(j, 0, sizeof *j);
    pd_rd_t r;
    pd_rd_init(&r, arg, alen);
    if (pd_rd_peek(&r) == PD_MP_STR)
        return pd_rd_str(&r, &j->cmd, &j->cmd_len) ? PD_EPROTO : 0;
    uint32_t n;
    if (pd_rd_map(&r, &n)) {
        snprintf(msg, cap, "exec wants a command line (a string), or a map with one under "
                 "\"cmd\", as its argument");
        return PD_EINVAL;
    }
    for (uint32_t i = 0; i < n; i++) {
        char key[16];
        int rc = 0;
        if (pd_rd_strcpy(&r, key, sizeof key)) {
            rc = pd_rd_skip(&r, NULL, NULL) || pd_rd_skip(&r, NULL, NULL);
        } else if (!strcmp(key, "cmd")) {
            rc = pd_rd_str(&r, &j->cmd, &j->cmd_len);
        } else if (!strcmp(key, "workdir") || !strcmp(key, "cwd")) {
            char *dst = key[0] == 'w' ? j->workdir : j->cwd;
            rc = pd_rd_strcpy(&r, dst, sizeof j->workdir);
            if (!rc && dst[0] != '/' && !(dst[0] && dst[1] == ':'))
                rc = -1; /* a path relative to what? (a NUL inside cuts it, too) */
        } else if (!strcmp(key, "files") || !strcmp(key, "return")) {
            const uint8_t *raw;
            size_t rl;
            rc = pd_rd_skip(&r, &raw, &rl);
            if (!rc && key[0] == 'f')
                j->files = raw, j->files_len = rl;
            else if (!rc)
                j->ret = raw, j->ret_len = rl;
        } else {
            rc = pd_rd_skip(&r, NULL, NULL);
        }
        if (rc) {
            snprintf(msg, cap, "exec: the job's field '%s' is malformed (cmd is a string; "
                     "workdir and cwd absolute paths of at most 4095 bytes)", key);
            return PD_EINVAL;
        }
    }
    if (!j->cmd) {
        snprintf(msg, cap, "exec: the job's map has no command under \"cmd\"");
        return PD_EINVAL;
    }
    int rc = 0;
    if (j->files)
        rc = s_check_names(j->files, j->files_len, true, msg, cap);
    if (!rc && j->ret)
        rc = s_check_names(j->ret, j->ret_len, false, msg, cap);
    return rc;
}

/* Writes the files sent with the job into dir. */
static int s_write_files(const s_job_t *j, const char *dir, const char *host, char *msg,
                         size_t cap)
{
    pd_rd_t r;
    pd_rd_init(&r, j->files, j->files_len);
    uint32_t n;
    pd_rd_map(&r, &n);
    for (uint32_t i = 0; i < n; i++) {
        const char *name;
        uint32_t nl;
        const void *p;
        uint32_t pl;
        pd_rd_str(&r, &name, &nl);
        pd_rd_bin(&r, &p, &pl);
        char path[4200], fail[4200];
        snprintf(path, sizeof path, "%s/%.*s", dir, (int) nl, name);
        char *slash = strrchr(path, '/');
        int rc = 0;
        if (slash && slash > path + strlen(dir)) {
            *slash = 0;
            rc = pd_file_mkdirs(path, 0700, fail, sizeof fail);
            *slash = '/';
        }
        if (rc == 0)
            rc = pd_file_write_atomic(path, p, pl);
        if (rc) {
            snprintf(msg, cap, "exec: cannot write %.*s (--transfer) into the job's directory "
                     "%s on host %s: %s", (int) nl, name, dir, host, strerror(errno));
            return PD_EIO;
        }
    }
    return 0;
}

int pd_exec_job(const uint8_t *arg, size_t alen, const pd_exec_env_t *env,
                const pd_limits_t *lim, pd_buf_t *out, char *msg, size_t cap)
{
    assert(arg && env && env->host && env->scratch && out && msg);
    s_job_t j;
    int rc = s_parse(arg, alen, &j, msg, cap);
    if (rc)
        return rc;
    s_place_t place = {.ret = j.ret, .ret_len = j.ret_len};
    char scratch[4200] = "";
    if (j.workdir[0]) {
        /* Asked for by name: this directory or none. */
        if (pd_plat_dir_enter_check(j.workdir) != 0) {
            snprintf(msg, cap, "exec: the job's directory %s (--workdir) cannot be used on host "
                     "%s: %s. The workers must see it at the same path: a file system they "
                     "share, opened to the worker's service (docs/cluster.md)", j.workdir,
                     env->host, errno == ENOTDIR ? "it is not a directory" : strerror(errno));
            return PD_EIO;
        }
        place.dir = j.workdir;
    } else if (j.cwd[0] && !j.files && !j.ret && pd_plat_dir_enter_check(j.cwd) == 0) {
        place.dir = j.cwd; /* the submitter's directory, seen here too */
    } else {
        /* A directory of its own: the slot's scratch directory is removed
           when the slot ends, whatever way (pd_slot.c). */
        if (snprintf(scratch, sizeof scratch, "%s/job-%llu", env->scratch,
                     (unsigned long long) env->job) >= (int) sizeof scratch ||
            (pd_plat_remove_tree(scratch), pd_file_mkdirs(scratch, 0700, NULL, 0)) != 0) {
            snprintf(msg, cap, "exec: cannot make the job's scratch directory %s on host %s: %s",
                     scratch, env->host, strerror(errno));
            return PD_EIO;
        }
        place.dir = scratch;
        place.scratch = true;
    }
    rc = j.files ? s_write_files(&j, place.dir, env->host, msg, cap) : 0;
    if (!rc)
        rc = s_run(j.cmd, j.cmd_len, &place, env->host, lim, out, msg, cap);
    if (place.scratch && !env->keep_scratch)
        pd_plat_remove_tree(scratch);
    return rc;
}
