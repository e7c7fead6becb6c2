/*  Unit tests of the broker's task table (broker/pd_tasks.c): checking a
    task_submit (nodes, arguments, graph, options), the graph's per-node
    indexes, gang placement, the table's bound, forgetting and expiry. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "pd_codec.h"
#include "pd_error.h"
#include "pd_msg.h"
#include "pd_tasks.h"

#include <stdio.h>
#include <string.h>

static pd_tasks_t *tasks;
static pd_buf_t buf;
static pd_msg_t msg;
static char why[512];

static void setup(void)
{
    tasks = pd_tasks_new(4);
    cr_assert_not_null(tasks);
    pd_buf_init(&buf);
    why[0] = 0;
}

static void teardown(void)
{
    pd_tasks_destroy(&tasks);
    cr_assert_null(tasks);
    pd_tasks_destroy(&tasks); /* safe twice */
    pd_buf_free(&buf);
}

TestSuite(unit_tasks, .init = setup, .fini = teardown);

/* Any module hash: pd_tasks takes the module's index, not its hash. */
#define S_MOD "0000000000000000000000000000000000000000000000000000000000000000"

/* The message in msg, decoded as the broker's handler decodes it. */
static const pd_m_task_submit_t *s_sub(void)
{
    static pd_m_task_submit_t sub;
    cr_assert_eq(pd_m_task_submit_decode(&msg, &sub), 0, "%s", msg.why);
    return &sub;
}

/* A task_submit of n nodes over the given tubes and edges (triples);
   nargs < 0: no args field. Parsed into msg. */
static void s_build(uint32_t n, const char *const *tubes, uint32_t ntubes, const uint32_t *edges,
                    uint32_t nedges, int nargs)
{
    pd_buf_reset(&buf);
    msgpack_packer pk;
    pd_packer_init(&pk, &buf);
    pd_msg_begin(&pk, "task_submit", 6 + (nargs >= 0));
    pd_pack_kv_uint(&pk, "req", 1);
    pd_pack_kv_str(&pk, "mod", S_MOD);
    pd_pack_kv_str(&pk, "fn", "node_fn");
    pd_pack_kv_uint(&pk, "n", n);
    pd_pack_cstr(&pk, "tubes");
    msgpack_pack_array(&pk, ntubes);
    for (uint32_t i = 0; i < ntubes; i++)
        pd_pack_cstr(&pk, tubes[i]);
    pd_pack_cstr(&pk, "edges");
    msgpack_pack_array(&pk, nedges);
    for (uint32_t i = 0; i < nedges; i++) {
        msgpack_pack_array(&pk, 3);
        for (int k = 0; k < 3; k++)
            msgpack_pack_uint32(&pk, edges[3 * i + k]);
    }
    if (nargs >= 0) {
        pd_pack_cstr(&pk, "args");
        msgpack_pack_array(&pk, (uint32_t) nargs);
        for (int i = 0; i < nargs; i++)
            msgpack_pack_uint32(&pk, 100u + (uint32_t) i);
    }
    cr_assert_eq(pd_msg_parse(&msg, buf.data, buf.len), 0, "%s", msg.why);
}

static const char *const RING_TUBES[] = {"next"};
/* tube 0: 0 -> 1 -> 2 -> 3 -> 0 */
static const uint32_t RING4[] = {0, 0, 1, 0, 1, 2, 0, 2, 3, 0, 3, 0};

Test(unit_tasks, a_ring_is_accepted_and_each_node_finds_its_edges)
{
    s_build(4, RING_TUBES, 1, RING4, 4, 4);
    uint64_t id;
    cr_assert_eq(pd_tasks_submit(tasks, s_sub(), 7, 8, &id, why, sizeof why), 0, "%s", why);
    cr_assert_eq(id, 1u);
    pd_taskrec_t *r = pd_tasks_get(tasks, id);
    cr_assert_not_null(r);
    cr_assert_eq(r->state, PD_TASK_QUEUED);
    cr_assert_eq(r->n, 4u);
    cr_assert_eq(r->mod, 7u);
    cr_assert_str_eq(r->fn, "node_fn");
    cr_assert_eq(r->io_ms, PD_TASKS_DEFAULT_IO_MS);
    cr_assert_eq(r->start_ms, PD_TASKS_DEFAULT_START_MS);
    uint32_t first, n;
    pd_tasks_out_edges(r, 3, &first, &n);
    cr_assert_eq(n, 1u);
    cr_assert_eq(r->by_src[first][2], 0u, "3 -> 0");
    pd_tasks_in_edges(r, 0, &first, &n);
    cr_assert_eq(n, 1u);
    cr_assert_eq(r->by_dst[first][2], 3u, "0 <- 3");
    uint32_t nb[8];
    cr_assert_eq(pd_tasks_neighbours(r, 2, nb), 2u);
    cr_assert_eq(nb[0], 1u);
    cr_assert_eq(nb[1], 3u);
    /* node 2's argument is the third value: 102 */
    cr_assert_eq(r->arg_off[3] - r->arg_off[2], 1u);
    cr_assert_eq(r->args[r->arg_off[2]], 102);
    cr_assert_eq(pd_tasks_live(tasks), 1u);
    cr_assert_eq(pd_tasks_queued(tasks), 1u);
    s_build(2, RING_TUBES, 1, RING4, 1, -1);
    cr_assert_eq(pd_tasks_submit(tasks, s_sub(), 7, 8, &id, why, sizeof why), 0, "%s", why);
    cr_assert_eq(id, 2u, "ids count up");
    r = pd_tasks_get(tasks, 2);
    cr_assert_eq(r->arg_off[2], 2u);
    cr_assert_eq(r->args[0], 0xc0, "no args: nil for each node");
}

Test(unit_tasks, more_nodes_than_the_cluster_has_slots_is_refused)
{
    s_build(4, RING_TUBES, 1, RING4, 4, -1);
    uint64_t id;
    cr_assert_eq(pd_tasks_submit(tasks, s_sub(), 0, 3, &id, why, sizeof why), PD_ENOSLOTS);
    cr_assert(strstr(why, "4 nodes but the cluster has only 3 slots") != NULL, "%s", why);
    cr_assert_eq(pd_tasks_count(tasks), 0u);
    cr_assert_eq(pd_tasks_submit(tasks, s_sub(), 0, 0, &id, why, sizeof why), PD_ENOSLOTS,
                 "no worker at all");
}

typedef struct {
    uint32_t n;
    uint32_t edges[9];
    uint32_t nedges;
    int nargs;
    char why[64]; /* inline: the parameters reach the test in another process */
} bad_case_t;

static bad_case_t bad_cases[] = {
    {2, {0, 0, 0}, 1, -1, "goes from a node to itself"},
    {2, {0, 0, 1, 0, 0, 1}, 2, -1, "is given twice"},
    {2, {0, 0, 2}, 1, -1, "is out of range"},
    {2, {1, 0, 1}, 1, -1, "is out of range"},
    {2, {0, 0, 1}, 1, 3, "one value per node (2)"},
    {0, {0}, 0, -1, "'n' (the number of nodes) must be"},
    {5000, {0}, 0, -1, "'n' (the number of nodes) must be"},
};

ParameterizedTestParameters(unit_tasks, bad_tasks_are_refused_with_the_reason)
{
    return cr_make_param_array(bad_case_t, bad_cases, sizeof bad_cases / sizeof bad_cases[0]);
}

ParameterizedTest(bad_case_t *c, unit_tasks, bad_tasks_are_refused_with_the_reason)
{
    s_build(c->n, RING_TUBES, 1, c->edges, c->nedges, c->nargs);
    uint64_t id;
    int rc = pd_tasks_submit(tasks, s_sub(), 0, 100000, &id, why, sizeof why);
    cr_assert_eq(rc, PD_EINVAL, "%s: %s", pd_err_name(rc), why);
    cr_assert(strstr(why, c->why) != NULL, "expected '%s' in: %s", c->why, why);
    cr_assert_eq(pd_tasks_count(tasks), 0u, "nothing kept");
}

Test(unit_tasks, tube_names_and_options_are_checked)
{
    const char *twice[] = {"a", "a"};
    s_build(2, twice, 2, NULL, 0, -1);
    uint64_t id;
    cr_assert_eq(pd_tasks_submit(tasks, s_sub(), 0, 8, &id, why, sizeof why), PD_EINVAL);
    cr_assert(strstr(why, "tube 'a' is named twice") != NULL, "%s", why);
    const char *empty[] = {""};
    s_build(2, empty, 1, NULL, 0, -1);
    cr_assert_eq(pd_tasks_submit(tasks, s_sub(), 0, 8, &id, why, sizeof why), PD_EINVAL);
    cr_assert(strstr(why, "a name of 1 to 63 bytes") != NULL, "%s", why);
    /* an option out of range */
    pd_buf_reset(&buf);
    msgpack_packer pk;
    pd_packer_init(&pk, &buf);
    pd_msg_begin(&pk, "task_submit", 7);
    pd_pack_kv_uint(&pk, "req", 1);
    pd_pack_kv_str(&pk, "mod", S_MOD);
    pd_pack_kv_str(&pk, "fn", "f");
    pd_pack_kv_uint(&pk, "n", 1);
    pd_pack_cstr(&pk, "tubes");
    msgpack_pack_array(&pk, 0);
    pd_pack_cstr(&pk, "edges");
    msgpack_pack_array(&pk, 0);
    pd_pack_kv_uint(&pk, "io_ms", 1ull << 40);
    cr_assert_eq(pd_msg_parse(&msg, buf.data, buf.len), 0);
    cr_assert_eq(pd_tasks_submit(tasks, s_sub(), 0, 8, &id, why, sizeof why), PD_EINVAL);
    cr_assert(strstr(why, "'io_ms' must be an integer") != NULL, "%s", why);
}

Test(unit_tasks, the_table_is_bounded_and_forgets_only_ended_tasks)
{
    uint64_t id;
    for (int i = 0; i < 4; i++) {
        s_build(1, RING_TUBES, 1, NULL, 0, -1);
        cr_assert_eq(pd_tasks_submit(tasks, s_sub(), 0, 8, &id, why, sizeof why), 0, "%s", why);
    }
    s_build(1, RING_TUBES, 1, NULL, 0, -1);
    cr_assert_eq(pd_tasks_submit(tasks, s_sub(), 0, 8, &id, why, sizeof why), PD_EOVERLOAD);
    cr_assert(strstr(why, "release the results") != NULL, "%s", why);
    cr_assert(!pd_tasks_forget(tasks, 2), "a queued task is not forgotten");
    pd_taskrec_t *r = pd_tasks_get(tasks, 2);
    pd_tasks_set_state(tasks, r, PD_TASK_DONE);
    cr_assert_eq(pd_tasks_live(tasks), 3u);
    cr_assert(pd_tasks_forget(tasks, 2));
    cr_assert_null(pd_tasks_get(tasks, 2));
    cr_assert_not_null(pd_tasks_get(tasks, 3), "the others stay");
    cr_assert_eq(pd_tasks_submit(tasks, s_sub(), 0, 8, &id, why, sizeof why), 0, "%s", why);
    cr_assert_eq(id, 5u, "ids are never reused");
    /* expiry: ended and fetched at second 10, ttl 5 */
    r = pd_tasks_get(tasks, 3);
    pd_tasks_set_state(tasks, r, PD_TASK_FAILED);
    r->fetched = 11;
    cr_assert_eq(pd_tasks_expire(tasks, 14, 5), 0u);
    cr_assert_eq(pd_tasks_expire(tasks, 15, 5), 1u);
    cr_assert_null(pd_tasks_get(tasks, 3));
    cr_assert_eq(pd_tasks_count(tasks), 3u);
}

/* ---- placement ---------------------------------------------------------- */

typedef struct {
    uint32_t n;
    uint32_t free[4];
    uint32_t nworkers;
    int rc;
    uint32_t where[8];
} place_case_t;

static place_case_t place_cases[] = {
    /* the worker with most free slots first, then the next */
    {3, {1, 2, 0, 0}, 2, 0, {1, 1, 0}},
    {4, {2, 2, 2, 0}, 3, 0, {0, 0, 1, 1}},
    {2, {0, 0, 3, 0}, 3, 0, {2, 2}},
    /* exactly the free slots */
    {5, {2, 3, 0, 0}, 2, 0, {1, 1, 1, 0, 0}},
    /* one short: nothing placed */
    {6, {2, 3, 0, 0}, 2, PD_ENOSLOTS, {0}},
    {1, {0, 0, 0, 0}, 4, PD_ENOSLOTS, {0}},
};

ParameterizedTestParameters(unit_tasks, placement_is_all_or_nothing_most_free_first)
{
    return cr_make_param_array(place_case_t, place_cases,
                               sizeof place_cases / sizeof place_cases[0]);
}

ParameterizedTest(place_case_t *c, unit_tasks, placement_is_all_or_nothing_most_free_first)
{
    uint32_t where[8];
    memset(where, 0xff, sizeof where);
    cr_assert_eq(pd_tasks_place(c->n, c->free, c->nworkers, where), c->rc);
    if (c->rc == 0)
        for (uint32_t i = 0; i < c->n; i++)
            cr_assert_eq(where[i], c->where[i], "node %u on worker %u, not %u", i, where[i],
                         c->where[i]);
    else
        for (int i = 0; i < 8; i++)
            cr_assert_eq(where[i], 0xffffffffu, "nothing written when it does not fit");
}
