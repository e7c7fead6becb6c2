/*  pd_task: implementation of the task API (include/playdoh/playdoh_task.h).

    The argument is read with the strict readers of common/pd_codec.h (a
    pd_value_t has the same layout as a pd_rd_t); the result is written with a
    msgpack packer into a pd_buf_t capped at PD_TASK_MAX_RESULT. After the task
    returns, pd_task_finish() checks that what was written is exactly one
    well-formed value, so a task cannot corrupt the wire.

    The pd_cuda_* functions at the end wrap gpu/pd_gpurt.h and pd_cudrv.h
    for tasks on GPU slots: each failure fails the job with its own code and
    sentence, and device memory is tracked so that what a job forgets to
    free is freed when it ends (slot processes live for many jobs).
*/
#include "pd_task.h"
#include "pd_grow.h"
#include "pd_codec.h"
#include "pd_error.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pd_task {
    int slot;            /* this slot's index */
    int gpu;             /* the worker's number of this slot's GPU; -1: a CPU slot */
    pd_gpurt_t *rt;      /* the slot's GPU runtime (borrowed); NULL on CPU slots */
    char cu_hash[65];    /* the job's CUDA module, "" when it has none */
    char cu_name[128];   /* its name, for messages */
    int code;            /* when failed: the PD_E* code (PD_ETASK for pd_task_fail) */
    bool (*stop_probe)(void *ctx); /* a node's: was a stop asked? (NULL in a job) */
    void *stop_ctx;      /* its argument */
    bool stopping;       /* a stop was seen */
    pd_cuda_ptr_t *allocs; /* device memory the job holds, owned list */
    size_t nallocs;      /* entries in allocs */
    size_t capallocs;    /* capacity of allocs */
    uint64_t job_id;     /* the job being run */
    const uint8_t *arg;  /* the job's argument, borrowed */
    size_t arg_len;      /* its length in bytes */
    const void *shared;  /* the map's shared data, borrowed, or NULL */
    size_t shared_len;   /* its bytes */
    pd_buf_t out;        /* the result being written (capped) */
    msgpack_packer pk;   /* packer writing into out */
    bool overflow;       /* a writer hit the result cap */
    bool failed;         /* pd_task_fail() was called */
    char msg[4096];      /* pd_task_fail()'s message, or pd_task_finish()'s */
    double *dbl;         /* storage for pd_arg_doubles(), owned */
    size_t dbl_cap;      /* its capacity in doubles */
    int node;            /* node index in a synchronous task; -1 for a job */
    int nnodes;          /* nodes of that task; 0 for a job */
    pd_tubes_t *tubes;   /* the node's tubes (borrowed); NULL for a job */
};

_Static_assert(sizeof(pd_value_t) == sizeof(pd_rd_t), "pd_value_t mirrors pd_rd_t");

pd_task_t *pd_task_new(int slot)
{
    pd_task_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->slot = slot;
    t->gpu = -1;
    t->node = -1;
    pd_buf_init(&t->out);
    t->out.max = PD_TASK_MAX_RESULT;
    pd_packer_init(&t->pk, &t->out);
    return t;
}

void pd_task_destroy(pd_task_t **p)
{
    if (!p || !*p)
        return;
    pd_task_t *t = *p;
    pd_buf_free(&t->out);
    free(t->dbl);
    free(t->allocs);
    free(t);
    *p = NULL;
}

void pd_task_begin(pd_task_t *t, uint64_t job_id, const void *arg, size_t len)
{
    assert(t);
    t->job_id = job_id;
    t->arg = arg;
    t->arg_len = len;
    t->shared = NULL;
    t->shared_len = 0;
    t->out.len = 0;
    t->out.failed = false;
    t->overflow = false;
    t->failed = false;
    t->code = 0;
    t->msg[0] = 0;
    t->cu_hash[0] = t->cu_name[0] = 0;
    t->node = -1;
    t->nnodes = 0;
    t->tubes = NULL;
    t->stop_probe = NULL;
    t->stop_ctx = NULL;
    t->stopping = false;
}

void pd_task_set_node(pd_task_t *t, int index, int n, pd_tubes_t *tubes)
{
    assert(t && tubes && index >= 0 && index < n);
    t->node = index;
    t->nnodes = n;
    t->tubes = tubes;
}

void pd_task_set_stop_probe(pd_task_t *t, bool (*probe)(void *ctx), void *ctx)
{
    t->stop_probe = probe;
    t->stop_ctx = ctx;
}

bool pd_node_stopping(pd_task_t *t)
{
    if (!t->stopping && t->stop_probe)
        t->stopping = t->stop_probe(t->stop_ctx);
    return t->stopping;
}

void pd_task_set_gpu(pd_task_t *t, int gpu, pd_gpurt_t *rt)
{
    t->gpu = gpu;
    t->rt = rt;
}

void pd_task_set_cuda(pd_task_t *t, const char *hash, const char *name)
{
    snprintf(t->cu_hash, sizeof t->cu_hash, "%s", hash);
    snprintf(t->cu_name, sizeof t->cu_name, "%s", name);
}

/* Frees the device memory the job left allocated. */
static void s_free_allocs(pd_task_t *t)
{
    if (!t->nallocs)
        return;
    for (size_t i = 0; t->rt && i < t->nallocs; i++)
        pd_gpurt_free(t->rt, t->allocs[i]); /* kept for the next jobs (pd_gpurt.h) */
    t->nallocs = 0;
}

int pd_task_finish(pd_task_t *t, int rc, const uint8_t **value, size_t *len)
{
    static const uint8_t nil = 0xc0;
    s_free_allocs(t);
    if (t->failed || rc != 0) {
        if (!t->failed) {
            if (t->overflow)
                snprintf(t->msg, sizeof t->msg,
                         "task result exceeds the limit of %u MiB (return less, or "
                         "write large data elsewhere)", PD_TASK_MAX_RESULT >> 20);
            else
                snprintf(t->msg, sizeof t->msg,
                         "task returned %d without calling pd_task_fail()", rc);
        }
        *value = (const uint8_t *) t->msg;
        *len = strlen(t->msg);
        if (t->failed)
            return t->code ? t->code : PD_ETASK;
        return t->overflow ? PD_ETOOBIG : PD_ETASK;
    }
    if (t->overflow || t->out.failed) {
        snprintf(t->msg, sizeof t->msg,
                 "task result exceeds the limit of %u MiB (return less, or write large "
                 "data elsewhere)", PD_TASK_MAX_RESULT >> 20);
        *value = (const uint8_t *) t->msg;
        *len = strlen(t->msg);
        return PD_ETOOBIG;
    }
    if (t->out.len == 0) {
        *value = &nil;
        *len = 1;
        return 0;
    }
    const char *why = NULL;
    if (pd_mp_check(t->out.data, t->out.len, PD_MAX_DEPTH, &why)) {
        snprintf(t->msg, sizeof t->msg,
                 "task wrote a malformed result (%s): a container needs exactly as many "
                 "values as its count, and the result must be one value",
                 why ? why : "invalid msgpack");
        *value = (const uint8_t *) t->msg;
        *len = strlen(t->msg);
        return PD_ETASK;
    }
    *value = t->out.data;
    *len = t->out.len;
    return 0;
}

/* ---- the argument ------------------------------------------------------- */

pd_value_t pd_arg(pd_task_t *t)
{
    pd_value_t v = {t->arg, t->arg + t->arg_len};
    return v;
}

const void *pd_arg_raw(pd_task_t *t, size_t *len)
{
    if (len)
        *len = t->arg_len;
    return t->arg;
}

int pd_arg_double(pd_task_t *t, double *x)
{
    pd_rd_t r;
    pd_rd_init(&r, t->arg, t->arg_len);
    return pd_rd_double(&r, x) ? -1 : 0;
}

int pd_arg_doubles(pd_task_t *t, const double **x, size_t *n)
{
    pd_rd_t r;
    pd_rd_init(&r, t->arg, t->arg_len);
    uint32_t count;
    if (pd_rd_array(&r, &count))
        return -1;
    /* Each element takes at least one byte, so count is bounded by arg_len. */
    if (pd_grow(&t->dbl, &t->dbl_cap, count, sizeof *t->dbl))
        return -1;
    for (uint32_t i = 0; i < count; i++)
        if (pd_rd_double(&r, &t->dbl[i]))
            return -1;
    *x = t->dbl;
    *n = count;
    return 0;
}

void pd_task_set_shared(pd_task_t *t, const void *p, size_t len)
{
    t->shared = p;
    t->shared_len = p ? len : 0;
}

const void *pd_task_shared(pd_task_t *t, size_t *len)
{
    if (len)
        *len = t->shared_len;
    return t->shared;
}

uint64_t pd_task_job_id(pd_task_t *t) { return t->job_id; }
int pd_task_slot(pd_task_t *t) { return t->slot; }

/* ---- cursor readers ----------------------------------------------------- */

static pd_rd_t *s_rd(pd_value_t *v) { return (pd_rd_t *) (void *) v; }

pd_val_kind_t pd_val_kind(const pd_value_t *v)
{
    pd_rd_t r = {v->p, v->end};
    switch (pd_rd_peek(&r)) {
    case PD_MP_NIL: return PD_VAL_NIL;
    case PD_MP_BOOL: return PD_VAL_BOOL;
    case PD_MP_INT: return PD_VAL_INT;
    case PD_MP_UINT: return PD_VAL_UINT;
    case PD_MP_FLOAT: return PD_VAL_FLOAT;
    case PD_MP_STR: return PD_VAL_STR;
    case PD_MP_BIN: return PD_VAL_BIN;
    case PD_MP_ARRAY: return PD_VAL_ARRAY;
    case PD_MP_MAP: return PD_VAL_MAP;
    default: return PD_VAL_INVALID;
    }
}

int pd_val_nil(pd_value_t *v) { return pd_rd_nil(s_rd(v)) ? -1 : 0; }
int pd_val_bool(pd_value_t *v, bool *b) { return pd_rd_bool(s_rd(v), b) ? -1 : 0; }
int pd_val_int(pd_value_t *v, int64_t *i) { return pd_rd_int(s_rd(v), i) ? -1 : 0; }
int pd_val_double(pd_value_t *v, double *x) { return pd_rd_double(s_rd(v), x) ? -1 : 0; }

int pd_val_str(pd_value_t *v, const char **s, size_t *len)
{
    uint32_t n;
    if (pd_rd_str(s_rd(v), s, &n))
        return -1;
    *len = n;
    return 0;
}

int pd_val_bin(pd_value_t *v, const void **p, size_t *len)
{
    uint32_t n;
    if (pd_rd_bin(s_rd(v), p, &n))
        return -1;
    *len = n;
    return 0;
}

int pd_val_array(pd_value_t *v, size_t *n)
{
    uint32_t c;
    if (pd_rd_array(s_rd(v), &c))
        return -1;
    *n = c;
    return 0;
}

int pd_val_map(pd_value_t *v, size_t *n)
{
    uint32_t c;
    if (pd_rd_map(s_rd(v), &c))
        return -1;
    *n = c;
    return 0;
}

int pd_val_skip(pd_value_t *v) { return pd_rd_skip(s_rd(v), NULL, NULL) ? -1 : 0; }

/* ---- the result --------------------------------------------------------- */

/* Maps a packer status to the API's 0 / -1 and remembers an overflow. */
static int s_out(pd_task_t *t, int rc)
{
    if (rc || t->out.failed) {
        t->overflow = true;
        return -1;
    }
    return 0;
}

int pd_out_nil(pd_task_t *t) { return s_out(t, msgpack_pack_nil(&t->pk)); }
int pd_out_bool(pd_task_t *t, bool b)
{
    return s_out(t, b ? msgpack_pack_true(&t->pk) : msgpack_pack_false(&t->pk));
}
int pd_out_int(pd_task_t *t, int64_t i) { return s_out(t, msgpack_pack_int64(&t->pk, i)); }
int pd_out_double(pd_task_t *t, double x) { return s_out(t, msgpack_pack_double(&t->pk, x)); }
int pd_out_str(pd_task_t *t, const char *s) { return pd_out_strn(t, s, strlen(s)); }

int pd_out_strn(pd_task_t *t, const char *s, size_t n)
{
    if (n > UINT32_MAX)
        return s_out(t, -1);
    int rc = msgpack_pack_str(&t->pk, n);
    return s_out(t, rc ? rc : msgpack_pack_str_body(&t->pk, s, n));
}

int pd_out_bin(pd_task_t *t, const void *p, size_t n)
{
    if (n > UINT32_MAX)
        return s_out(t, -1);
    int rc = msgpack_pack_bin(&t->pk, n);
    return s_out(t, rc ? rc : msgpack_pack_bin_body(&t->pk, p, n));
}

int pd_out_array(pd_task_t *t, size_t n)
{
    return s_out(t, n > UINT32_MAX ? -1 : msgpack_pack_array(&t->pk, n));
}

int pd_out_map(pd_task_t *t, size_t n)
{
    return s_out(t, n > UINT32_MAX ? -1 : msgpack_pack_map(&t->pk, n));
}

int pd_out_doubles(pd_task_t *t, const double *x, size_t n)
{
    if (pd_out_array(t, n))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (msgpack_pack_double(&t->pk, x[i]))
            return s_out(t, -1);
    return s_out(t, 0);
}

int pd_out_raw(pd_task_t *t, const void *p, size_t n) { return s_out(t, pd_buf_append(&t->out, p, n)); }

int pd_task_fail(pd_task_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->msg, sizeof t->msg, fmt, ap);
    va_end(ap);
    if (!t->msg[0])
        snprintf(t->msg, sizeof t->msg, "task failed (pd_task_fail with an empty message)");
    t->failed = true;
    t->code = PD_ETASK;
    t->out.len = 0;
    return -1;
}

/* ---- synchronous tasks: nodes ------------------------------------------- */

int pd_node_index(pd_task_t *t) { return t->node; }
int pd_node_count(pd_task_t *t) { return t->nnodes; }

/* Records a failure with its code, as pd_task_fail() does; returns -1. */
static int s_node_fail(pd_task_t *t, int code, const char *what)
{
    snprintf(t->msg, sizeof t->msg, "%s", what);
    t->failed = true;
    t->code = code;
    t->out.len = 0;
    return -1;
}

/* The tubes, or NULL with the failure recorded (the function runs as a job). */
static pd_tubes_t *s_tubes(pd_task_t *t, const char *call)
{
    if (t->tubes)
        return t->tubes;
    char msg[160];
    snprintf(msg, sizeof msg, "%s: this function runs as an asynchronous job, not as a node of "
             "a synchronous task (start it with playdoh-submit task or pd_task_start)", call);
    s_node_fail(t, PD_EINVAL, msg);
    return NULL;
}

static int s_push(pd_task_t *t, const char *call, const char *tube, int dst, const void *data,
                  size_t len)
{
    pd_tubes_t *tb = s_tubes(t, call);
    if (!tb)
        return -1;
    int rc = pd_tubes_push(tb, tube, dst, data, len);
    return rc ? s_node_fail(t, rc, pd_tubes_error(tb)) : 0;
}

int pd_push(pd_task_t *t, const char *tube, const void *data, size_t len)
{
    return s_push(t, "pd_push", tube, -1, data, len);
}

int pd_push_to(pd_task_t *t, const char *tube, int dst, const void *data, size_t len)
{
    if (dst < 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "pd_push_to on tube '%s': node %d is not a node", tube, dst);
        return s_node_fail(t, PD_EINVAL, msg);
    }
    return s_push(t, "pd_push_to", tube, dst, data, len);
}

int pd_push_doubles(pd_task_t *t, const char *tube, const double *x, size_t n)
{
    if (n > SIZE_MAX / sizeof *x)
        return s_node_fail(t, PD_ETOOBIG, "pd_push_doubles: too many numbers");
    return s_push(t, "pd_push_doubles", tube, -1, x, n * sizeof *x);
}

static int s_pop(pd_task_t *t, const char *call, const char *tube, int src, const void **data,
                 size_t *len)
{
    pd_tubes_t *tb = s_tubes(t, call);
    if (!tb)
        return -1;
    uint32_t from = 0;
    int rc = pd_tubes_pop(tb, tube, src, -1, true, data, len, &from);
    return rc ? s_node_fail(t, rc, pd_tubes_error(tb)) : (int) from;
}

int pd_pop(pd_task_t *t, const char *tube, const void **data, size_t *len)
{
    return s_pop(t, "pd_pop", tube, -1, data, len);
}

int pd_pop_from(pd_task_t *t, const char *tube, int src, const void **data, size_t *len)
{
    if (src < 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "pd_pop_from on tube '%s': node %d is not a node", tube, src);
        return s_node_fail(t, PD_EINVAL, msg);
    }
    return s_pop(t, "pd_pop_from", tube, src, data, len) < 0 ? -1 : 0;
}

int pd_pop_doubles(pd_task_t *t, const char *tube, const double **x, size_t *n)
{
    const void *p;
    size_t len;
    int from = s_pop(t, "pd_pop_doubles", tube, -1, &p, &len);
    if (from < 0)
        return -1;
    if (len % sizeof **x) {
        char msg[200];
        snprintf(msg, sizeof msg, "pd_pop_doubles on tube '%s': node %d sent %zu bytes, not a "
                 "whole number of doubles", tube, from, len);
        return s_node_fail(t, PD_EPROTO, msg);
    }
    *x = p;
    *n = len / sizeof **x;
    return from;
}

int pd_try_pop(pd_task_t *t, const char *tube, int timeout_ms, int *src, const void **data,
               size_t *len)
{
    pd_tubes_t *tb = s_tubes(t, "pd_try_pop");
    if (!tb)
        return -1;
    uint32_t from = 0;
    int rc = pd_tubes_pop(tb, tube, -1, timeout_ms < 0 ? 0 : timeout_ms, false, data, len, &from);
    if (rc == PD_ETIMEDOUT)
        return 0;
    if (rc)
        return s_node_fail(t, rc, pd_tubes_error(tb));
    if (src)
        *src = (int) from;
    return 1;
}

int pd_node_in_peers(pd_task_t *t, const char *tube, int *peers, int cap)
{
    return t->tubes ? pd_tubes_in_peers(t->tubes, tube, peers, cap) : -1;
}

int pd_node_out_peers(pd_task_t *t, const char *tube, int *peers, int cap)
{
    return t->tubes ? pd_tubes_out_peers(t->tubes, tube, peers, cap) : -1;
}

void pd_node_set_timeout(pd_task_t *t, int timeout_ms)
{
    if (t->tubes)
        pd_tubes_set_timeout(t->tubes, timeout_ms);
}

/* ---- GPUs ----------------------------------------------------------------- */

int pd_task_gpu(pd_task_t *t) { return t->gpu; }

/* Fails the job with code and a sentence, unless it already failed (the
   first failure is the one that explains). */
static void s_cuda_fail(pd_task_t *t, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_cuda_fail(pd_task_t *t, int code, const char *fmt, ...)
{
    if (t->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->msg, sizeof t->msg, fmt, ap);
    va_end(ap);
    t->failed = true;
    t->code = code;
    t->out.len = 0;
}

/* The slot's driver, with the device's context current; NULL after failing
   the job (fn names the API call for the message). */
static pd_cudrv_t *s_driver(pd_task_t *t, const char *fn)
{
    if (!t->rt) {
        s_cuda_fail(t, PD_ENOGPU, "%s: this job runs on a CPU slot: submit it with a GPU "
                    "(playdoh-submit map --gpu, or pd_map_opts_t.gpu)", fn);
        return NULL;
    }
    int code = 0;
    const char *msg = NULL;
    pd_cudrv_t *d = pd_gpurt_driver(t->rt, &code, &msg);
    if (!d)
        s_cuda_fail(t, code, "%s: %s", fn, msg);
    return d;
}

/* Fails the job with the driver's last error. */
static void s_driver_fail(pd_task_t *t, pd_cudrv_t *d, const char *fn)
{
    s_cuda_fail(t, PD_ECUDA, "%s on GPU %d: %s", fn, t->gpu, pd_cudrv_error(d));
}

pd_cuda_module_t *pd_cuda_module(pd_task_t *t)
{
    if (!s_driver(t, "pd_cuda_module"))
        return NULL;
    if (!t->cu_hash[0]) {
        s_cuda_fail(t, PD_ENOMODULE, "pd_cuda_module: the job was submitted without a CUDA "
                    "module (ship the .cu with playdoh-submit map --cuda FILE.cu, or "
                    "pd_map_opts_t.cuda)");
        return NULL;
    }
    pd_cu_module_t mod = NULL;
    const char *msg = NULL;
    int code = pd_gpurt_module(t->rt, t->cu_hash, t->cu_name, &mod, &msg);
    if (code) {
        s_cuda_fail(t, code, "%s", msg);
        return NULL;
    }
    return (pd_cuda_module_t *) (void *) mod;
}

pd_cuda_kernel_t *pd_cuda_kernel(pd_task_t *t, pd_cuda_module_t *m, const char *name)
{
    pd_cudrv_t *d = s_driver(t, "pd_cuda_kernel");
    if (!d)
        return NULL;
    if (!m || !name) {
        s_cuda_fail(t, PD_EINVAL, "pd_cuda_kernel: no module%s (did pd_cuda_module fail?)",
                    name ? "" : " or no kernel name");
        return NULL;
    }
    pd_cu_function_t fn = NULL;
    if (pd_cudrv_function(d, (pd_cu_module_t) (void *) m, name, &fn)) {
        if (pd_cudrv_last(d) == PD_CU_ERROR_NOT_FOUND)
            s_cuda_fail(t, PD_ENOFUNC, "CUDA module %s has no kernel '%.200s' (declare it "
                        "extern \"C\" __global__: C++ names are mangled)", t->cu_name, name);
        else
            s_driver_fail(t, d, "pd_cuda_kernel");
        return NULL;
    }
    return (pd_cuda_kernel_t *) (void *) fn;
}

pd_cuda_ptr_t pd_cuda_alloc(pd_task_t *t, size_t bytes)
{
    pd_cudrv_t *d = s_driver(t, "pd_cuda_alloc");
    if (!d)
        return 0;
    if (bytes == 0) {
        s_cuda_fail(t, PD_EINVAL, "pd_cuda_alloc: 0 bytes asked");
        return 0;
    }
    if (pd_grow(&t->allocs, &t->capallocs, t->nallocs + 1, sizeof *t->allocs)) {
        s_cuda_fail(t, PD_ENOMEM, "pd_cuda_alloc: the slot is out of host memory");
        return 0;
    }
    pd_cu_ptr_t p = 0;
    const char *msg = NULL;
    int code = pd_gpurt_alloc(t->rt, bytes, &p, &msg);
    if (code) {
        char size[32];
        s_cuda_fail(t, code, "pd_cuda_alloc of %s on GPU %d: %s",
                    pd_gpu_mem_str(bytes, size, sizeof size), t->gpu, msg);
        return 0;
    }
    t->allocs[t->nallocs++] = p;
    return p;
}

void pd_cuda_free(pd_task_t *t, pd_cuda_ptr_t p)
{
    if (!p || !t->rt)
        return;
    for (size_t i = 0; i < t->nallocs; i++)
        if (t->allocs[i] == p) {
            t->allocs[i] = t->allocs[--t->nallocs];
            int code;
            const char *msg;
            pd_cudrv_t *d = pd_gpurt_driver(t->rt, &code, &msg);
            if (d && pd_gpurt_free(t->rt, p))
                s_driver_fail(t, d, "pd_cuda_free");
            return;
        }
    s_cuda_fail(t, PD_EINVAL, "pd_cuda_free: 0x%llx was not returned by pd_cuda_alloc in this "
                "job (or was freed already)", p);
}

int pd_cuda_copy_to_device(pd_task_t *t, pd_cuda_ptr_t dst, const void *src, size_t bytes)
{
    pd_cudrv_t *d = s_driver(t, "pd_cuda_copy_to_device");
    if (!d)
        return -1;
    if (bytes && (!src || !dst)) {
        s_cuda_fail(t, PD_EINVAL, "pd_cuda_copy_to_device: NULL %s", src ? "device pointer"
                                                                          : "source");
        return -1;
    }
    if (pd_cudrv_htod(d, dst, src, bytes)) {
        s_driver_fail(t, d, "pd_cuda_copy_to_device");
        return -1;
    }
    return 0;
}

int pd_cuda_copy_to_host(pd_task_t *t, void *dst, pd_cuda_ptr_t src, size_t bytes)
{
    pd_cudrv_t *d = s_driver(t, "pd_cuda_copy_to_host");
    if (!d)
        return -1;
    if (bytes && (!src || !dst)) {
        s_cuda_fail(t, PD_EINVAL, "pd_cuda_copy_to_host: NULL %s", dst ? "device pointer"
                                                                        : "destination");
        return -1;
    }
    if (pd_cudrv_dtoh(d, dst, src, bytes)) {
        s_driver_fail(t, d, "pd_cuda_copy_to_host");
        return -1;
    }
    return 0;
}

int pd_cuda_launch_3d(pd_task_t *t, pd_cuda_kernel_t *k, const unsigned grid[3],
                      const unsigned block[3], size_t shared, void **args)
{
    pd_cudrv_t *d = s_driver(t, "pd_cuda_launch");
    if (!d)
        return -1;
    if (!k || !grid[0] || !grid[1] || !grid[2] || !block[0] || !block[1] || !block[2] ||
        shared > UINT32_MAX) {
        s_cuda_fail(t, PD_EINVAL, "pd_cuda_launch: %s", !k ? "no kernel (did pd_cuda_kernel "
                    "fail?)" : "grid and block dimensions must be at least 1");
        return -1;
    }
    if (pd_cudrv_launch(d, (pd_cu_function_t) (void *) k, grid, block, (unsigned) shared,
                        args)) {
        s_driver_fail(t, d, "pd_cuda_launch");
        return -1;
    }
    return 0;
}

int pd_cuda_launch(pd_task_t *t, pd_cuda_kernel_t *k, unsigned grid, unsigned block,
                   size_t shared, void **args)
{
    const unsigned g[3] = {grid, 1, 1}, b[3] = {block, 1, 1};
    return pd_cuda_launch_3d(t, k, g, b, shared, args);
}
