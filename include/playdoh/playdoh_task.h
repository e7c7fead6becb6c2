/*  playdoh_task.h: the header for task authors.

    A task is a function in a C module that Playdoh ships to the workers and
    compiles there. The worker's slot process calls it once per job with a
    pd_task_t, through which the task reads its argument and writes its
    result. Both are msgpack values, so a job's argument is one line of JSON
    in `playdoh-submit map` or any value from C.

    Numeric tasks need no boilerplate:

        #include <playdoh_task.h>

        PD_TASK_DOUBLE(square, x)               // argument: a number
        {
            return x * x;                       // result: a number
        }

        PD_TASK_VECTOR(norm2, x, n)             // argument: an array of numbers
        {
            double s = 0;
            for (size_t i = 0; i < n; i++) s += x[i] * x[i];
            return s;
        }

    Any other shape uses the general form, which returns 0 on success or the
    value of pd_task_fail():

        PD_TASK(stats, t)
        {
            const double *x; size_t n;
            if (pd_arg_doubles(t, &x, &n)) return pd_task_fail(t, "want an array of numbers");
            pd_out_map(t, 2);
            pd_out_str(t, "n");    pd_out_int(t, (int64_t) n);
            pd_out_str(t, "mean"); pd_out_double(t, n ? sum(x, n) / n : 0);
            return 0;
        }

    A task that returns without writing a result returns nil. A task that
    crashes (signal), exits or runs past its time-out fails that job only; the
    worker replaces the slot process. Everything declared here is implemented
    by the worker's slot process: a module links against nothing.

    The same kind of function also runs as a node of a synchronous task
    (docs/sync.md): N nodes run at once, each with its own argument, and
    exchange messages along the task's graph of named tubes with pd_push()
    and pd_pop(). A node's result is whatever it writes with pd_out_*:

        PD_TASK(ring_sum, t)                       // graph: "next: ring"
        {
            double mine = pd_node_index(t), sum = mine;
            for (int k = 1; k < pd_node_count(t); k++) {
                if (pd_push(t, "next", &mine, sizeof mine)) return -1;
                const double *got; size_t len;
                if (pd_pop_doubles(t, "next", &got, &len) < 0) return -1;
                mine = got[0];
                sum += mine;
            }
            return pd_out_double(t, sum);          // every node: 0 + 1 + ... + N-1
        }

    A push or pop that fails (a time-out, a tube the graph does not give this
    node) records the failure, as pd_task_fail() would, with a sentence that
    says what happened, and returns -1: the node fails with that message
    whatever the function returns afterwards.
*/
#ifndef PLAYDOH_TASK_H
#define PLAYDOH_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PD_TASK_ABI 2 /* 2: the node API of synchronous tasks */

typedef struct pd_task pd_task_t;

/* A read cursor over msgpack values (the argument, or parts of it). */
typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} pd_value_t;

typedef enum {
    PD_VAL_NIL, PD_VAL_BOOL, PD_VAL_INT, PD_VAL_UINT, PD_VAL_FLOAT,
    PD_VAL_STR, PD_VAL_BIN, PD_VAL_ARRAY, PD_VAL_MAP, PD_VAL_INVALID
} pd_val_kind_t;

/* ---- the argument ------------------------------------------------------- */

/* The argument as a cursor at its first value. */
pd_value_t pd_arg(pd_task_t *t);
/* The argument's raw msgpack bytes (borrowed for the call). */
const void *pd_arg_raw(pd_task_t *t, size_t *len);
/* The argument as a number (integer or float). Returns 0, or -1 if it is not one. */
int pd_arg_double(pd_task_t *t, double *x);
/* The argument as an array of numbers, converted into storage owned by the
   slot and valid for this call. Returns 0, or -1 if it is not such an array. */
int pd_arg_doubles(pd_task_t *t, const double **x, size_t *n);
/* The map's shared data (playdoh-submit map --shared FILE, or
   pd_map_opts_t.shared): read-only bytes, mapped from the worker's cache and
   shared by every slot of the machine, valid for the call (and for later
   jobs of the same map: the address stays while the slot keeps it mapped).
   Returns NULL with *len 0 when the job has none. The address is page
   aligned, so an array of doubles can be read in place:
       size_t len; const double *x = pd_task_shared(t, &len); n = len / 8; */
const void *pd_task_shared(pd_task_t *t, size_t *len);
/* The job's id and this slot's index, for logs or seeds. */
uint64_t pd_task_job_id(pd_task_t *t);
int pd_task_slot(pd_task_t *t);

/* Cursor readers: each consumes one value and returns 0, or -1 (type
   mismatch; the cursor does not move). Strings are not NUL-terminated. */
pd_val_kind_t pd_val_kind(const pd_value_t *v);
int pd_val_nil(pd_value_t *v);
int pd_val_bool(pd_value_t *v, bool *b);
int pd_val_int(pd_value_t *v, int64_t *i);
int pd_val_double(pd_value_t *v, double *x);
int pd_val_str(pd_value_t *v, const char **s, size_t *len);
int pd_val_bin(pd_value_t *v, const void **p, size_t *len);
int pd_val_array(pd_value_t *v, size_t *n); /* then n values follow */
int pd_val_map(pd_value_t *v, size_t *n);   /* then n key, value pairs follow */
int pd_val_skip(pd_value_t *v);

/* ---- the result ------------------------------------------------------- */

/* Writers append one msgpack value each; containers take their count first
   (pd_out_array(t, 2) then two values). Return 0, or -1 when the result
   exceeds the slot's limit (64 MiB), which fails the job. */
int pd_out_nil(pd_task_t *t);
int pd_out_bool(pd_task_t *t, bool b);
int pd_out_int(pd_task_t *t, int64_t i);
int pd_out_double(pd_task_t *t, double x);
int pd_out_str(pd_task_t *t, const char *s);          /* NUL-terminated */
int pd_out_strn(pd_task_t *t, const char *s, size_t n);
int pd_out_bin(pd_task_t *t, const void *p, size_t n);
int pd_out_array(pd_task_t *t, size_t n);
int pd_out_map(pd_task_t *t, size_t n);
int pd_out_doubles(pd_task_t *t, const double *x, size_t n); /* an array of n floats */
/* Appends an already-encoded msgpack value. */
int pd_out_raw(pd_task_t *t, const void *p, size_t n);

/* Fails the job with a message (printf format); returns the value a task
   function should return. The result written so far is discarded. */
int pd_task_fail(pd_task_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- GPUs --------------------------------------------------------------- */

/* A job submitted with a GPU (`playdoh-submit map --gpu`, pd_map_opts_t.gpu)
   runs on a GPU slot: a slot process that sees exactly one GPU, as CUDA
   device 0 (CUDA_VISIBLE_DEVICES is set before it starts). Its kernels
   travel as CUDA C source (a .cu module shipped with the job), compiled on
   the worker by NVRTC for that GPU and cached. A task launches them:

        PD_TASK(scale, t)                // kernels in scale.cu:
        {                                //   extern "C" __global__ void
            const double *x; size_t n;   //   twice(double *x, int n) { ... }
            if (pd_arg_doubles(t, &x, &n)) return pd_task_fail(t, "numbers");
            pd_cuda_module_t *m = pd_cuda_module(t);
            pd_cuda_kernel_t *k = pd_cuda_kernel(t, m, "twice");
            pd_cuda_ptr_t d = pd_cuda_alloc(t, n * sizeof *x);
            if (!k || !d || pd_cuda_copy_to_device(t, d, x, n * sizeof *x)) return -1;
            int ni = (int) n;
            void *args[] = {&d, &ni};
            double *y = malloc(n * sizeof *y);
            if (!y || pd_cuda_launch(t, k, (unsigned) (n + 255) / 256, 256, 0, args)
                || pd_cuda_copy_to_host(t, y, d, n * sizeof *y)) { free(y); return -1; }
            pd_out_doubles(t, y, n);
            free(y);
            return 0;
        }

   Kernels must be declared extern "C" (NVRTC compiles C++, whose names are
   mangled). Every pd_cuda_* call that fails fails the job with a sentence
   saying why (NVRTC's log for a compile error, the CUDA error otherwise)
   and the code PD_ECOMPILE, PD_ECUDA or PD_ENOGPU, whatever the task then
   returns; it returns NULL, 0 or -1 so that the task can stop there. Device
   memory the task did not free is freed when the job ends. */

/* The worker's number of this slot's GPU (0, 1, ..., as the worker lists
   them), or -1 on a CPU slot. Inside the process it is CUDA device 0. */
int pd_task_gpu(pd_task_t *t);

typedef struct pd_cuda_module pd_cuda_module_t; /* a loaded module: a CUmodule */
typedef struct pd_cuda_kernel pd_cuda_kernel_t; /* a kernel: a CUfunction */
typedef unsigned long long pd_cuda_ptr_t;       /* device memory: a CUdeviceptr; 0 = none */

/* The job's CUDA module, compiled for this GPU (first use: NVRTC, then
   from the cache) and loaded; the same pointer for every call. NULL when the
   job has none, runs on a CPU slot, or the module does not compile. */
pd_cuda_module_t *pd_cuda_module(pd_task_t *t);
/* The kernel called name (an extern "C" __global__ function) in m. NULL
   when m is NULL or has no such kernel. */
pd_cuda_kernel_t *pd_cuda_kernel(pd_task_t *t, pd_cuda_module_t *m, const char *name);
/* Device memory of bytes bytes (> 0); 0 when the GPU has no room. Not
   cleared: the slot keeps blocks earlier jobs freed and hands them out
   again (docs/gpu.md), so it may hold their data. */
pd_cuda_ptr_t pd_cuda_alloc(pd_task_t *t, size_t bytes);
/* Frees what pd_cuda_alloc returned (0 is ignored). */
void pd_cuda_free(pd_task_t *t, pd_cuda_ptr_t p);
/* Copies bytes between host and device memory. Return 0 or -1. */
int pd_cuda_copy_to_device(pd_task_t *t, pd_cuda_ptr_t dst, const void *src, size_t bytes);
int pd_cuda_copy_to_host(pd_task_t *t, void *dst, pd_cuda_ptr_t src, size_t bytes);
/* Launches k on grid blocks of block threads (1-D; shared: bytes of
   dynamic shared memory) and waits for it to finish, so an error in the
   kernel (a bad address, ...) is reported here. args holds one pointer per
   kernel parameter, as cuLaunchKernel's kernelParams. Returns 0 or -1. */
int pd_cuda_launch(pd_task_t *t, pd_cuda_kernel_t *k, unsigned grid, unsigned block,
                   size_t shared, void **args);
/* The same with 3-D grid and block dimensions. */
int pd_cuda_launch_3d(pd_task_t *t, pd_cuda_kernel_t *k, const unsigned grid[3],
                      const unsigned block[3], size_t shared, void **args);

/* ---- synchronous tasks: the node's side ---------------------------------- */

/* This node's index (0 .. N-1), or -1 when the function runs as an
   asynchronous job. */
int pd_node_index(pd_task_t *t);
/* N, the number of nodes of the task; 0 when running as a job. */
int pd_node_count(pd_task_t *t);

/* Pushes len bytes on tube to every out-neighbour of this node on it (one
   copy each). Blocks while a receiver holds `window` messages (or
   window_bytes) of this node's on that tube that it has not popped yet, at
   most the node's time-out. A push to a node that has already returned is
   discarded. Returns 0, or -1 (failure recorded: no out-edge on that tube,
   a message over 256 MiB, a time-out). */
int pd_push(pd_task_t *t, const char *tube, const void *data, size_t len);
/* Pushes to one out-neighbour dst on tube only. Returns 0 or -1. */
int pd_push_to(pd_task_t *t, const char *tube, int dst, const void *data, size_t len);
/* Pushes n doubles (native byte order). Returns 0 or -1. */
int pd_push_doubles(pd_task_t *t, const char *tube, const double *x, size_t n);

/* Pops the next message that arrived on tube from any in-neighbour, waiting
   up to the node's time-out. *data (aligned for doubles; borrowed until the
   next pop of this node) and *len get the payload. Returns the sender's
   index (>= 0), or -1 (failure recorded: a time-out, no in-edge on that
   tube, every sender finished without pushing more). Messages from one
   sender arrive in the order they were pushed. */
int pd_pop(pd_task_t *t, const char *tube, const void **data, size_t *len);
/* Pops the next message on tube from in-neighbour src. Returns 0 or -1. */
int pd_pop_from(pd_task_t *t, const char *tube, int src, const void **data, size_t *len);
/* Pops a message of doubles: *x and *n get them. Returns the sender's index
   or -1 (also when the message is not a whole number of doubles). */
int pd_pop_doubles(pd_task_t *t, const char *tube, const double **x, size_t *n);
/* Pops from any in-neighbour without failing when nothing comes: waits up
   to timeout_ms (0: only looks). Returns 1 with *src, *data and *len set,
   0 when nothing came in time (not a failure), or -1 (failure recorded). */
int pd_try_pop(pd_task_t *t, const char *tube, int timeout_ms, int *src, const void **data,
               size_t *len);

/* This node's neighbours on tube: fills peers (up to cap entries, sorted)
   and returns how many senders (in) or receivers (out) it has on it: 0 when
   the graph gives it no edge there, -1 when the task has no such tube. */
int pd_node_in_peers(pd_task_t *t, const char *tube, int *peers, int cap);
int pd_node_out_peers(pd_task_t *t, const char *tube, int *peers, int cap);

/* Changes this node's push and pop time-out (ms; 0 = wait for ever, which
   only a crash or cancel of the task can end). The task sets the default. */
void pd_node_set_timeout(pd_task_t *t, int timeout_ms);

/* True once someone asked the task to stop (pd_task_stop, pd_optim_stop,
   Ctrl-C on playdoh-submit): the node should finish its current step, agree
   with its neighbours where it must, and return its result as usual. Cheap
   (a look at the worker's pipe): call it once per iteration. Always false
   in an asynchronous job. */
bool pd_node_stopping(pd_task_t *t);

/* ---- declaring tasks ---------------------------------------------------- */

/* An optional init function: a module that defines it gets it called once
   in each slot process that loads the module, before the module's first
   job there, to load data or build tables that later jobs reuse (keep them
   in static variables). t is that first job's context: pd_arg() and
   pd_task_shared() give the first job's argument and shared data; what it
   writes with pd_out_* is dropped. Return 0, or pd_task_fail(t, "...") to
   fail every job of the module on that slot with the message. It runs
   within the module's load time limit (300 s), not a job's time-out.

       PD_INIT(t)
       {
           table = build_table();
           return table ? 0 : pd_task_fail(t, "out of memory");
       }
*/
#define PD_INIT(t) int pd_init(pd_task_t *t)

/* The general form: int NAME(pd_task_t *T). */
#define PD_TASK(name, t) int name(pd_task_t *t)

/* double NAME(double X): a number in, a number out. */
#define PD_TASK_DOUBLE(name, x)                                                      \
    static double name##_pd_body(double x);                                          \
    int name(pd_task_t *pd_t_)                                                       \
    {                                                                                \
        double pd_x_;                                                                \
        if (pd_arg_double(pd_t_, &pd_x_))                                            \
            return pd_task_fail(pd_t_, #name ": argument is not a number");          \
        return pd_out_double(pd_t_, name##_pd_body(pd_x_));                          \
    }                                                                                \
    static double name##_pd_body(double x)

/* double NAME(const double *X, size_t N): an array of numbers in, a number out. */
#define PD_TASK_VECTOR(name, x, n)                                                   \
    static double name##_pd_body(const double *x, size_t n);                         \
    int name(pd_task_t *pd_t_)                                                       \
    {                                                                                \
        const double *pd_x_;                                                         \
        size_t pd_n_;                                                                \
        if (pd_arg_doubles(pd_t_, &pd_x_, &pd_n_))                                   \
            return pd_task_fail(pd_t_, #name ": argument is not an array of numbers");\
        return pd_out_double(pd_t_, name##_pd_body(pd_x_, pd_n_));                   \
    }                                                                                \
    static double name##_pd_body(const double *x, size_t n)

#ifdef __cplusplus
}
#endif
#endif
