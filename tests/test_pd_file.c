/* Unit tests for common/pd_file: the names of files that travel between
   machines with exec jobs (pd_file_check_relative). */
#include "pd_error.h"
#include "pd_file.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

typedef struct {
    char name[64];
    char why[64]; /* "" when the name is good; else a part of the reason */
} name_case_t;

ParameterizedTestParameters(file, relative_names)
{
    static name_case_t cases[] = {
        {"out.txt", ""},
        {"results/run-1/out.txt", ""},
        {"./a", ""},
        {"..a/b..", ""},
        {"", "is empty"},
        {"/etc/passwd", "is absolute"},
        {"../x", "climbs out"},
        {"a/../../x", "climbs out"},
        {"a/..", "climbs out"},
        {"a//b", "empty part"},
        {"dir/", "empty part"},
        {"a\\..\\b", "'\\'"},
        {"C:x", "':'"},
    };
    return cr_make_param_array(name_case_t, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(name_case_t *c, file, relative_names)
{
    char why[128] = "";
    int rc = pd_file_check_relative(c->name, strlen(c->name), why, sizeof why);
    if (!c->why[0]) {
        cr_assert_eq(rc, 0, "'%s': %s", c->name, why);
    } else {
        cr_assert_eq(rc, PD_EINVAL, "'%s' must be refused", c->name);
        cr_assert(strstr(why, c->why) != NULL, "'%s': %s", c->name, why);
    }
}

Test(file, a_nul_byte_inside_a_name_is_refused)
{
    char why[128];
    cr_assert_eq(pd_file_check_relative("a\0/../../x", 10, why, sizeof why), PD_EINVAL);
    cr_assert(strstr(why, "NUL") != NULL, "%s", why);
}
