/*  Unit tests of client/pd_graph.c: the graph helpers (ring, chain, star,
    all-to-all), de-duplication, refused edges, and the graph-file parser
    (text and JSON), with the sentences its errors give. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "pd_client_int.h"
#include "playdoh.h"

#include <stdio.h>
#include <string.h>

static pd_graph_t *g;

static void teardown(void)
{
    pd_graph_destroy(&g);
    pd_graph_destroy(&g); /* safe twice */
}

TestSuite(graph, .fini = teardown);

/* The graph's edges as "tube:src>dst" words, sorted, for comparisons. */
static void s_edges(char *out, size_t cap)
{
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    msgpack_pack_map(&pk, 2);
    pd_pack_cstr(&pk, "tubes");
    pd_graph_pack_tubes(&pk, g);
    pd_pack_cstr(&pk, "edges");
    pd_graph_pack_edges(&pk, g);
    pd_rd_t r;
    pd_rd_init(&r, b.data, b.len);
    uint32_t n, nt, ne;
    cr_assert_eq(pd_rd_map(&r, &n), 0);
    cr_assert(pd_rd_key_is(&r, "tubes"));
    cr_assert_eq(pd_rd_array(&r, &nt), 0);
    char names[8][64];
    for (uint32_t i = 0; i < nt; i++)
        cr_assert_eq(pd_rd_strcpy(&r, names[i], sizeof names[i]), 0);
    cr_assert(pd_rd_key_is(&r, "edges"));
    cr_assert_eq(pd_rd_array(&r, &ne), 0);
    size_t k = 0;
    out[0] = 0;
    for (uint32_t i = 0; i < ne; i++) {
        uint32_t three;
        uint64_t t, s, d;
        cr_assert_eq(pd_rd_array(&r, &three), 0);
        pd_rd_uint(&r, &t);
        pd_rd_uint(&r, &s);
        pd_rd_uint(&r, &d);
        k += (size_t) snprintf(out + k, cap - k, "%s%s:%llu>%llu", i ? " " : "", names[t],
                               (unsigned long long) s, (unsigned long long) d);
    }
    pd_buf_free(&b);
}

Test(graph, helpers_make_the_edges_they_say)
{
    char e[512];
    g = pd_graph_new(4);
    cr_assert_eq(pd_graph_ring(g, "r"), 0);
    s_edges(e, sizeof e);
    cr_assert_str_eq(e, "r:0>1 r:1>2 r:2>3 r:3>0");
    pd_graph_destroy(&g);
    g = pd_graph_new(4);
    pd_graph_ring_back(g, "l");
    s_edges(e, sizeof e);
    cr_assert_str_eq(e, "l:0>3 l:1>0 l:2>1 l:3>2");
    pd_graph_destroy(&g);
    g = pd_graph_new(3);
    pd_graph_chain(g, "c");
    pd_graph_chain_back(g, "b");
    s_edges(e, sizeof e);
    cr_assert_str_eq(e, "c:0>1 c:1>2 b:1>0 b:2>1");
    pd_graph_destroy(&g);
    g = pd_graph_new(3);
    pd_graph_star_out(g, "o", 1);
    pd_graph_star_in(g, "i", 1);
    s_edges(e, sizeof e);
    cr_assert_str_eq(e, "o:1>0 o:1>2 i:0>1 i:2>1");
    pd_graph_destroy(&g);
    g = pd_graph_new(3);
    pd_graph_all_to_all(g, "a");
    cr_assert_eq(pd_graph_edges(g), 6u);
    cr_assert_eq(pd_graph_tubes(g), 1);
    cr_assert_eq(pd_graph_nodes(g), 3);
}

Test(graph, one_node_has_no_edges_and_repeats_count_once)
{
    g = pd_graph_new(1);
    cr_assert_eq(pd_graph_ring(g, "r"), 0);
    cr_assert_eq(pd_graph_chain(g, "c"), 0);
    cr_assert_eq(pd_graph_edges(g), 0u);
    cr_assert_eq(pd_graph_tubes(g), 2, "the tubes exist, without edges");
    pd_graph_destroy(&g);
    g = pd_graph_new(2);
    pd_graph_ring(g, "r");
    pd_graph_ring_back(g, "r");
    cr_assert_eq(pd_graph_edge(g, "r", 0, 1), 0);
    cr_assert_eq(pd_graph_edges(g), 2u, "0>1 and 1>0, each once");
}

Test(graph, bad_edges_and_sizes_are_refused)
{
    cr_assert_null(pd_graph_new(0));
    cr_assert_null(pd_graph_new(4097));
    g = pd_graph_new(3);
    cr_assert_eq(pd_graph_edge(g, "x", 1, 1), PD_EINVAL);
    cr_assert_eq(pd_graph_edge(g, "x", 0, 3), PD_EINVAL);
    cr_assert_eq(pd_graph_edge(g, "x", -1, 0), PD_EINVAL);
    cr_assert_eq(pd_graph_edge(g, "", 0, 1), PD_EINVAL);
    char longname[80];
    memset(longname, 'a', 64);
    longname[64] = 0;
    cr_assert_eq(pd_graph_edge(g, longname, 0, 1), PD_EINVAL);
    cr_assert_eq(pd_graph_star_out(g, "s", 3), PD_EINVAL);
    char name[16];
    for (int i = 0; i < 256; i++) {
        snprintf(name, sizeof name, "t%d", i);
        cr_assert_eq(pd_graph_tube(g, name), 0);
    }
    cr_assert_eq(pd_graph_tube(g, "one-too-many"), PD_EINVAL);
    cr_assert_eq(pd_graph_edges(g), 0u);
}

Test(graph, a_text_graph_file_is_read)
{
    g = pd_graph_new(4);
    const char *text = "# the heat example\n"
                       "right: chain   # i -> i+1\n"
                       "\n"
                       "left: chain-back\n"
                       "x.1: 0->2, 3 -> 1, star-in 2\n"
                       "idle: none\n";
    char err[256];
    cr_assert_eq(pd_graph_parse(g, text, strlen(text), err, sizeof err), 0, "%s", err);
    char e[512];
    s_edges(e, sizeof e);
    cr_assert_str_eq(e, "right:0>1 right:1>2 right:2>3 left:1>0 left:2>1 left:3>2 x.1:0>2 "
                        "x.1:1>2 x.1:3>1 x.1:3>2");
    cr_assert_eq(pd_graph_tubes(g), 4);
}

Test(graph, a_json_graph_file_is_read)
{
    g = pd_graph_new(3);
    const char *text = "{\"next\": \"ring\", \"up\": [[2, 0], \"star-out 1\"], \"pair\": [0, 2],"
                       " \"empty\": []}";
    char err[256];
    cr_assert_eq(pd_graph_parse(g, text, strlen(text), err, sizeof err), 0, "%s", err);
    char e[512];
    s_edges(e, sizeof e);
    cr_assert_str_eq(e, "next:0>1 next:1>2 next:2>0 up:1>0 up:1>2 up:2>0 pair:0>2");
    cr_assert_eq(pd_graph_tubes(g), 4);
}

typedef struct {
    char text[32]; /* inline: the parameters reach the test in another process */
    char why[96];
} bad_text_t;

static bad_text_t bad_texts[] = {
    {"right: rnig\n", "line 1: 'rnig' is not a graph spec"},
    {"a: ring\nb 0->1\n", "line 2, column 3: expected 'TUBE: SPEC, ...'"},
    {"a: 0->9\n", "line 1: edge 0->9: node 9 is out of range (the task has 4 nodes, 0 .. 3)"},
    {"a: 2->2\n", "goes from a node to itself"},
    {"a: star-out\n", "needs a hub node number"},
    {"a: star-in 7\n", "hub 7 is out of range"},
    {"a: ring,\n", "an empty spec for tube 'a'"},
    {"a:\n", "an empty spec for tube 'a'"},
    {"{\"a\": 3}", "graph JSON, tube 'a': expected a spec string"},
    {"{\"a\": [0, 9]}", "out of range or a self-edge"},
    {"{\"a\": \"ring\",}", "graph JSON: "},
    {"[1, 2]", "line 1, column 1"},
};

ParameterizedTestParameters(graph, bad_graph_texts_name_the_line_and_the_problem)
{
    return cr_make_param_array(bad_text_t, bad_texts, sizeof bad_texts / sizeof bad_texts[0]);
}

ParameterizedTest(bad_text_t *c, graph, bad_graph_texts_name_the_line_and_the_problem)
{
    g = pd_graph_new(4);
    char err[256];
    cr_assert_eq(pd_graph_parse(g, c->text, strlen(c->text), err, sizeof err), PD_EINVAL,
                 "accepted: %s", c->text);
    cr_assert(strstr(err, c->why) != NULL, "expected '%s' in: %s", c->why, err);
}

Test(graph, an_unreadable_file_says_so)
{
    g = pd_graph_new(2);
    char err[256];
    cr_assert_eq(pd_graph_load(g, "/nonexistent/x.graph", err, sizeof err), PD_EIO);
    cr_assert(strstr(err, "cannot read graph /nonexistent/x.graph") != NULL, "%s", err);
}
