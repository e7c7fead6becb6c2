/*  pd_tasks: the broker's table of synchronous tasks and its gang placement.

    A task is N nodes that run at once and exchange data along a graph of
    named tubes (docs/sync.md). The broker never carries that data: it keeps
    for each task its module, function, per-node arguments, the graph and
    options, and for each node the worker it was placed on, its rendezvous
    state, its endpoint and finally its result or error.

    Placement is all or nothing (gang scheduling): pd_tasks_place() puts all
    N nodes on free CPU slots at once, filling the workers with the most
    free slots first (nodes on one machine talk over loopback), or places
    none; queued tasks are served first come, first served, so a large task
    is never starved by smaller ones behind it. A task larger than the
    cluster's slots is refused when submitted (PD_ENOSLOTS).

    The graph is checked when the task is submitted (tubes named once, edges
    within range, no self-edge, no duplicate) and indexed by source and by
    destination, so the edges of one node are found without a scan.

    Task ids are handed out from 1 (their own sequence, apart from job ids).
    Records live in an array sorted by id; finished tasks stay until
    released, or the result time-to-live after their first fetch.
*/
#ifndef PD_TASKS_H
#define PD_TASKS_H

#include "pd_proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Task states, as on the wire (docs/protocol.md). 3, 4 and 5 are final. */
enum {
    PD_TASK_UNKNOWN = 0,
    PD_TASK_QUEUED = 1,   /* waiting for N free slots */
    PD_TASK_RUNNING = 2,  /* every node passed the barrier */
    PD_TASK_DONE = 3,
    PD_TASK_FAILED = 4,
    PD_TASK_CANCELLED = 5,
    PD_TASK_STARTING = 6  /* placed; rendezvous in progress */
};
#define PD_TASK_IS_FINAL(s) ((s) >= PD_TASK_DONE && (s) <= PD_TASK_CANCELLED)

/* Node states. */
enum {
    PD_TNODE_PENDING = 0, /* not placed */
    PD_TNODE_STARTED,     /* node_start sent */
    PD_TNODE_BOUND,       /* its endpoint is known */
    PD_TNODE_READY,       /* its neighbours subscribed */
    PD_TNODE_RUNNING,     /* node_go sent */
    PD_TNODE_DONE,        /* result in */
    PD_TNODE_FAILED,      /* error in */
    PD_TNODE_ABORTED      /* stopped because the task ended otherwise */
};

#define PD_TASKS_MAX_NODES 4096u      /* nodes per task */
#define PD_TASKS_MAX_TUBES 256u       /* tube names per task */
#define PD_TASKS_MAX_EDGES 1000000u   /* edges per task */
#define PD_TASKS_MAX_TUBE_NAME 63u    /* bytes per tube name */
#define PD_TASKS_DEFAULT_MAX 10000u   /* task records held at most */
#define PD_TASKS_MAX_PROGRESS 65536u  /* bytes of a task's progress report */
#define PD_TASKS_DEFAULT_IO_MS 60000u /* push/pop time-out of nodes */
#define PD_TASKS_DEFAULT_START_MS 300000u /* rendezvous time-out (module compile included) */

typedef struct {
    uint32_t worker;  /* registry index of its worker (when placed) */
    uint8_t state;    /* PD_TNODE_* */
    bool active;      /* it holds one of its worker's slots */
    char *ep;         /* its XPUB endpoint (owned), after node_bound */
    char key[41];     /* its XPUB's CurveZMQ public key (Z85), "" when its tubes run
                         without CurveZMQ */
    uint8_t *res;     /* result value (done) or error map (failed), owned */
    uint32_t res_len; /* bytes in res */
    uint64_t us;      /* its run time */
} pd_tnode_t;

typedef struct {
    uint64_t id;               /* task id */
    uint8_t state;             /* PD_TASK_* */
    uint32_t n;                /* nodes */
    uint32_t mod;              /* module index (pd_mods) */
    bool gpu;                  /* its nodes run on GPU slots */
    uint32_t attempt;          /* placements so far after the first: a start that failed
                                  for the cluster's reasons (a worker lost, a node process
                                  that could not start) is tried again */
    uint32_t cu;               /* CUDA module index + 1 (pd_mods), 0 = none */
    char fn[256];              /* function name */
    char owner[41];            /* the submitter as an owner (pd_auth.h): its key (Z85),
                                  by which workers' code policies judge the nodes, or
                                  its owner token's id; "" for nobody */
    uint8_t *args;             /* the per-node arguments, back to back (owned) */
    uint32_t *arg_off;         /* node i's argument: args[arg_off[i] .. arg_off[i+1]) */
    uint8_t *tubes;            /* the tube names as one msgpack array (owned) */
    uint32_t tubes_len;        /* bytes in tubes */
    uint32_t ntubes;           /* names in it */
    uint32_t nedges;           /* edges in the graph */
    uint32_t (*by_src)[3];     /* edges (src, tube, dst) sorted (owned) */
    uint32_t (*by_dst)[3];     /* edges (dst, tube, src) sorted (owned) */
    uint32_t *src_first;       /* n + 1 entries: node i's out-edges in by_src */
    uint32_t *dst_first;       /* n + 1 entries: node i's in-edges in by_dst */
    uint32_t io_ms;            /* nodes' push/pop time-out (0: none) */
    uint32_t start_ms;         /* rendezvous time-out */
    uint32_t timeout_ms;       /* run time-out after the barrier (0: none) */
    uint32_t window;           /* messages in flight per edge (0: default) */
    uint64_t window_bytes;     /* bytes in flight per edge (0: default) */
    pd_tnode_t *nodes;         /* n nodes (owned) */
    uint32_t nbound;           /* nodes whose endpoint is known */
    uint32_t nready;           /* nodes past their subscriptions */
    uint32_t nended;           /* nodes done, failed or aborted */
    int64_t deadline_ms;       /* start or run deadline (monotonic ms); 0 = none */
    char code[32];             /* failed: PD_E* name */
    char msg[1024];            /* failed: the sentence (node and host included) */
    int64_t err_node;          /* failed: the node that failed, -1 when none */
    char err_host[64];         /* failed: its host */
    uint32_t fetched;          /* broker second (+1) of the first fetch; 0 = not yet */
    uint8_t *progress;         /* the latest node_progress value (owned), or NULL */
    uint32_t progress_len;     /* bytes in progress */
    uint64_t progress_seq;     /* node_progress reports received */
} pd_taskrec_t;

typedef struct pd_tasks pd_tasks_t;

/* A table holding at most max records (0 = PD_TASKS_DEFAULT_MAX). */
pd_tasks_t *pd_tasks_new(uint32_t max);
void pd_tasks_destroy(pd_tasks_t **p);

/* The id the next task gets, and setting it (recovery; ids only grow). */
uint64_t pd_tasks_next_id(const pd_tasks_t *t);
void pd_tasks_set_next_id(pd_tasks_t *t, uint64_t id);

/* Accepts a decoded task_submit message (docs/protocol.md) for module mod,
   whose fields are checked here: n (1 .. PD_TASKS_MAX_NODES and at most
   cluster_slots), args (absent, or an array of n values), tubes, edges and
   the options. On success the task is queued and *id set; returns 0.
   Returns PD_ENOSLOTS (more nodes than cluster_slots), PD_EINVAL / PD_EPROTO
   (a bad field or graph), PD_EOVERLOAD (the table is full), PD_ENOMEM; why
   says which in a sentence. */
int pd_tasks_submit(pd_tasks_t *t, const pd_m_task_submit_t *q, uint32_t mod,
                    uint64_t cluster_slots, uint64_t *id, char *why, size_t whycap);

/* The record of a task, or NULL. Borrowed until the next add or forget. */
pd_taskrec_t *pd_tasks_get(pd_tasks_t *t, uint64_t id);
/* Records in id order, for iteration: i < pd_tasks_count(). */
pd_taskrec_t *pd_tasks_at(pd_tasks_t *t, uint32_t i);
uint32_t pd_tasks_count(const pd_tasks_t *t);
/* Tasks queued, starting or running (they hold or wait for slots). */
uint32_t pd_tasks_live(const pd_tasks_t *t);
/* Tasks queued (waiting for slots). */
uint32_t pd_tasks_queued(const pd_tasks_t *t);
/* Notes a change of a task's state (keeps the live count). */
void pd_tasks_set_state(pd_tasks_t *t, pd_taskrec_t *r, uint8_t state);

/* Node i's out-edges: *first .. *first + *n rows of r->by_src. */
void pd_tasks_out_edges(const pd_taskrec_t *r, uint32_t i, uint32_t *first, uint32_t *n);
void pd_tasks_in_edges(const pd_taskrec_t *r, uint32_t i, uint32_t *first, uint32_t *n);
/* Node i's neighbours (out and in), sorted and unique, into out (room for
   its out and in degrees). Returns how many. */
uint32_t pd_tasks_neighbours(const pd_taskrec_t *r, uint32_t i, uint32_t *out);

/* Gang placement: places n nodes on workers with slots[w] free slots (w <
   nworkers), most free first; writes each node's worker into where[] and
   returns 0, or changes nothing and returns PD_ENOSLOTS when they do not all
   fit (PD_ENOMEM without memory). */
int pd_tasks_place(uint32_t n, const uint32_t *slots, uint32_t nworkers, uint32_t *where);

/* Forgets a final task. Returns true when it was final and is gone. */
bool pd_tasks_forget(pd_tasks_t *t, uint64_t id);
/* Forgets final tasks first fetched at or before now_s - ttl_s; returns how many. */
uint32_t pd_tasks_expire(pd_tasks_t *t, uint32_t now_s, uint32_t ttl_s);

#endif
