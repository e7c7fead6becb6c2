/*  pd_task: implementation of the task API (client/playdoh_task.h).

    The argument is read with the strict readers of common/pd_codec.h (a
    pd_value_t has the same layout as a pd_rd_t); the result is written with a
    msgpack packer into a pd_buf_t capped at PD_TASK_MAX_RESULT. After the task
    returns, pd_task_finish() checks that what was written is exactly one
    well-formed value, so a task cannot corrupt the wire.
*/
#include "pd_task.h"
#include "pd_codec.h"
#include "pd_error.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pd_task {
    int slot;            /* this slot's index */
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
};

_Static_assert(sizeof(pd_value_t) == sizeof(pd_rd_t), "pd_value_t mirrors pd_rd_t");

pd_task_t *pd_task_new(int slot)
{
    pd_task_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->slot = slot;
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
    t->msg[0] = 0;
}

int pd_task_finish(pd_task_t *t, int rc, const uint8_t **value, size_t *len)
{
    static const uint8_t nil = 0xc0;
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
        return t->overflow && !t->failed ? PD_ETOOBIG : PD_ETASK;
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
    if (count > t->dbl_cap) {
        size_t cap = count < 16 ? 16 : count;
        double *d = realloc(t->dbl, cap * sizeof *d);
        if (!d)
            return -1;
        t->dbl = d;
        t->dbl_cap = cap;
    }
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
    t->out.len = 0;
    return -1;
}
