/* Unit tests for pd_template: GNU parallel's replacement strings and shell
   quoting, as `playdoh-submit exec` builds its commands. */
#include "pd_error.h"
#include "pd_template.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pd_buf_t out;

static void setup(void) { pd_buf_init(&out); }
static void teardown(void) { pd_buf_free(&out); }

TestSuite(template, .init = setup, .fini = teardown);

static const char *s_text(void)
{
    cr_assert_eq(pd_buf_append(&out, "", 1), 0);
    out.len--;
    return (const char *) out.data;
}

typedef struct {
    char tmpl[64];
    char arg[64];
    char want[128];
} case_t;

ParameterizedTestParameters(template, expands_like_gnu_parallel)
{
    static case_t t[] = {
        {"echo {}", "a b/c.d.txt", "echo 'a b/c.d.txt'"},
        {"echo {.}", "a b/c.d.txt", "echo 'a b/c.d'"},
        {"echo {/}", "a b/c.d.txt", "echo c.d.txt"},
        {"echo {//}", "a b/c.d.txt", "echo 'a b'"},
        {"echo {/.}", "a b/c.d.txt", "echo c.d"},
        {"echo {//}", "file", "echo ."},
        {"echo {//}", "/file", "echo /"},
        {"echo {.}", "dir.x/file", "echo dir.x/file"},
        {"echo {/.}", ".bashrc", "echo .bashrc"},
        {"echo {}", "it's", "echo 'it'\"'\"'s'"},
        {"echo {}", "", "echo ''"},
        {"echo {}", "$HOME", "echo '$HOME'"},
        {"echo {}", "ok-1.txt", "echo ok-1.txt"},
        {"gzip", "x y", "gzip 'x y'"},
        {"cp {} {.}.bak", "f.txt", "cp f.txt f.bak"},
        {"echo {foo} {}", "a", "echo {foo} a"},
        {"echo {#}", "ignored", "echo 7"},
        {"echo {}{}", "a", "echo aa"},
    };
    return cr_make_param_array(case_t, t, sizeof t / sizeof t[0]);
}

ParameterizedTest(case_t *c, template, expands_like_gnu_parallel)
{
    pd_buf_init(&out);
    cr_assert_eq(pd_template_expand(c->tmpl, c->arg, strlen(c->arg), 7, &out), 0);
    cr_assert_str_eq(s_text(), c->want, "template <%s> with <%s>", c->tmpl, c->arg);
    pd_buf_free(&out);
}

Test(template, knows_whether_a_template_has_a_replacement_string)
{
    cr_assert(pd_template_has_placeholder("echo {}"));
    cr_assert(pd_template_has_placeholder("x {#}"));
    cr_assert(pd_template_has_placeholder("{/.}"));
    cr_assert_not(pd_template_has_placeholder("echo hello"));
    cr_assert_not(pd_template_has_placeholder("echo {foo} { }"));
}

Test(template, refuses_an_argument_with_a_nul_byte_and_leaves_the_output_alone)
{
    cr_assert_eq(pd_buf_append(&out, "keep", 4), 0);
    cr_assert_eq(pd_template_expand("echo {}", "a\0b", 3, 1, &out), PD_EINVAL);
    cr_assert_eq(out.len, 4);
}

Test(template, reports_an_output_that_cannot_grow)
{
    out.max = 8;
    cr_assert_eq(pd_template_expand("echo {}", "a long argument", 15, 1, &out), PD_ETOOBIG);
    cr_assert_eq(out.len, 0);
    cr_assert_not(out.failed, "a failed expansion leaves the buffer usable");
}

Test(template, quoted_values_reach_the_shell_unchanged)
{
    const char *nasty = "a'b\"c $(touch /tmp/pd-never) `x` \\ ; | & * ?";
    cr_assert_eq(pd_template_expand("printf %s {}", nasty, strlen(nasty), 1, &out), 0);
    char *cmd = strdup(s_text());
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char got[256] = "";
    size_t n = fread(got, 1, sizeof got - 1, p);
    got[n] = 0;
    cr_assert_eq(pclose(p), 0);
    cr_assert_str_eq(got, nasty, "command: %s", cmd);
    free(cmd);
}

Test(template, file_names_take_the_values_as_they_are_and_nothing_is_appended)
{
    const char *arg = "data/it's a.csv";
    cr_assert_eq(pd_template_expand_name("{}.gz", arg, strlen(arg), 1, &out), 0);
    cr_assert_str_eq(s_text(), "data/it's a.csv.gz");
    out.len = 0;
    cr_assert_eq(pd_template_expand_name("out/{/.}-{#}.txt", arg, strlen(arg), 7, &out), 0);
    cr_assert_str_eq(s_text(), "out/it's a-7.txt");
    out.len = 0;
    cr_assert_eq(pd_template_expand_name("common.dat", arg, strlen(arg), 1, &out), 0);
    cr_assert_str_eq(s_text(), "common.dat", "no ' {}' after a name without replacement strings");
}
