/* Unit tests for common/pd_config: the configuration file parser. Every
   refusal must name the file, the line and what was expected. */
#include "pd_config.h"
#include "pd_error.h"
#include "pd_opts.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pd_config_t *c;
static char why[1024];

static void setup(void)
{
    c = pd_config_new();
    cr_assert_not_null(c);
    why[0] = 0;
}
static void teardown(void) { pd_config_destroy(&c); }

TestSuite(config, .init = setup, .fini = teardown);

static int parse(const char *text) { return pd_config_parse(c, "t.conf", text, strlen(text), why, sizeof why); }

Test(config, reads_sections_keys_comments_and_quotes)
{
    const char *text = "# a lab\n"
                       "[cluster]\n"
                       "name = physics-lab   # trailing comment\n"
                       "beacon_port=6000\n"
                       "\n"
                       "; another comment\n"
                       "[worker]\n"
                       "  cpus = 3  \n"
                       "idle_load_max = 0.75\n"
                       "idle_action = requeue\n"
                       "cache_dir = \"/var/cache/play #doh\"\n"
                       "control_mode = 0660\n"
                       "[broker]\n"
                       "beacon = off\n"
                       "bind = tcp://*:5555\n";
    cr_assert_eq(parse(text), 0, "%s", why);
    cr_assert_str_eq(pd_config_str(c, "cluster", "name", NULL), "physics-lab");
    cr_assert_eq(pd_config_uint(c, "cluster", "beacon_port", 1), 6000);
    cr_assert_eq(pd_config_uint(c, "worker", "cpus", 1), 3);
    cr_assert_float_eq(pd_config_double(c, "worker", "idle_load_max", 0), 0.75, 1e-9);
    cr_assert_str_eq(pd_config_str(c, "worker", "idle_action", ""), "requeue");
    cr_assert_str_eq(pd_config_str(c, "worker", "cache_dir", ""), "/var/cache/play #doh");
    cr_assert_eq(pd_config_uint(c, "worker", "control_mode", 0), 0660);
    cr_assert_eq(pd_config_bool(c, "broker", "beacon", true), false);
    cr_assert_str_eq(pd_config_str(c, "broker", "bind", ""), "tcp://*:5555");
    cr_assert_str_eq(pd_config_where(c, "worker", "cpus"), "t.conf:8");
    cr_assert_str_eq(pd_config_sources(c), "t.conf");
}

Test(config, absent_keys_give_the_default)
{
    cr_assert_eq(parse("[worker]\n"), 0, "%s", why);
    cr_assert_not(pd_config_has(c, "worker", "cpus"));
    cr_assert_eq(pd_config_uint(c, "worker", "cpus", 7), 7);
    cr_assert_str_eq(pd_config_str(c, "worker", "broker", "dflt"), "dflt");
    cr_assert_str_eq(pd_config_where(c, "worker", "cpus"), "");
}

Test(config, a_later_file_overrides_an_earlier_one)
{
    const char *sys = "[worker]\ncpus = 8\ngpus = 1\n";
    const char *user = "[worker]\ncpus = 2\n";
    cr_assert_eq(pd_config_parse(c, "/etc/x.conf", sys, strlen(sys), why, sizeof why), 0);
    cr_assert_eq(pd_config_parse(c, "~/x.conf", user, strlen(user), why, sizeof why), 0);
    cr_assert_eq(pd_config_uint(c, "worker", "cpus", 0), 2);
    cr_assert_eq(pd_config_uint(c, "worker", "gpus", 0), 1);
    cr_assert_str_eq(pd_config_where(c, "worker", "cpus"), "~/x.conf:2");
    cr_assert_str_eq(pd_config_sources(c), "/etc/x.conf, ~/x.conf");
}

/* Arrays, not pointers: Criterion runs each parameter in a new process. */
typedef struct {
    char text[128];
    char why[400]; /* expected message */
} bad_t;

ParameterizedTestParameters(config, bad_input_says_file_line_and_what_is_expected)
{
    static bad_t cases[] = {
        {"cpus = 2\n", "t.conf:1: 'cpus' comes before any section: put it under [cluster], "
                       "[broker], [worker] or [submit]"},
        {"[worker]\ncpus = many\n",
         "t.conf:2: [worker] cpus wants a whole number from 0 to 4096, not 'many'"},
        {"[worker]\ncpus = 5000\n",
         "t.conf:2: [worker] cpus wants a whole number from 0 to 4096, not '5000'"},
        {"[worker]\ncpus = -1\n",
         "t.conf:2: [worker] cpus wants a whole number from 0 to 4096, not '-1'"},
        {"[worker]\n\n\ngpus =\n",
         "t.conf:4: [worker] gpus wants a whole number from 0 to 1024, not ''"},
        {"[worker\n", "t.conf:1: a section header wants a closing ']', as in [worker]"},
        {"[workers]\n", "t.conf:1: unknown section [workers] (expected [cluster], [broker], "
                        "[worker] or [submit])"},
        {"[broker]\nbind\n",
         "t.conf:2: expected 'key = value', a [section] header or a # comment"},
        {"[broker]\n= 3\n", "t.conf:2: a key is missing before '='"},
        {"[broker]\nbind = localhost:5555\n",
         "t.conf:2: [broker] bind wants an endpoint such as tcp://lab-server:5555 (or nothing, "
         "to find the broker by its beacon), not 'localhost:5555'"},
        {"[broker]\nlog_level = loud\n",
         "t.conf:2: [broker] log_level wants one of error|warn|info|debug, not 'loud'"},
        {"[broker]\nbeacon = perhaps\n",
         "t.conf:2: [broker] beacon wants true or false (yes/no, on/off, 1/0), not 'perhaps'"},
        {"[cluster]\nname = my lab\n",
         "t.conf:2: [cluster] name wants a name of 1 to 63 letters, digits, '-', '_' or '.', "
         "not 'my lab'"},
        {"[worker]\nidle_load_max = 1e999\n",
         "t.conf:2: [worker] idle_load_max wants a number from 0 to 4096, not '1e999'"},
        {"[worker]\nidle_load_max = nan\n",
         "t.conf:2: [worker] idle_load_max wants a number from 0 to 4096, not 'nan'"},
        {"[worker]\ncontrol_mode = 660\n",
         "t.conf:2: [worker] control_mode wants an octal file mode such as 0660, not '660'"},
        {"[worker]\ncache_dir = \"/tmp\n",
         "t.conf:2: value of 'cache_dir' opens a quote (\") it does not close"},
        {"[worker]\ncache_dir = \"/tmp\" extra\n",
         "t.conf:2: unexpected text after the quoted value of 'cache_dir'"},
        {"[worker]\ncpus = 2\ncpus = 3\n", "t.conf:3: [worker] cpus is already set on line 2"},
        {"[worker]\ncpu = 2\n",
         "t.conf:2: unknown key 'cpu' in [worker] (expected one of: broker, cpus, gpus, "
         "cache_dir, heartbeat_ms, name, log_level, control, control_mode, idle_load_max, "
         "idle_action, idle_check_ms, idle_wait_s, proc_dir, node_addr, security, key, "
         "broker_key, code_policy, code_list, max_memory, max_cpu_time, max_output, "
         "default_memory, default_cpu_time, default_output)"},
    };
    return cr_make_param_array(bad_t, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(bad_t *b, config, bad_input_says_file_line_and_what_is_expected)
{
    cr_assert_eq(parse(b->text), PD_EINVAL, "accepted: %s", b->text);
    cr_assert_str_eq(why, b->why);
}

Test(config, a_refused_file_changes_nothing)
{
    cr_assert_eq(parse("[worker]\ncpus = 4\n"), 0);
    cr_assert_eq(parse("[worker]\ncpus = 1\ngpus = lots\n"), PD_EINVAL);
    cr_assert_eq(pd_config_uint(c, "worker", "cpus", 0), 4);
    cr_assert_not(pd_config_has(c, "worker", "gpus"));
    cr_assert_str_eq(pd_config_sources(c), "t.conf");
}

Test(config, nul_bytes_and_overlong_values_are_refused)
{
    const char text[] = "[worker]\nname = a\0b\n";
    cr_assert_eq(pd_config_parse(c, "t.conf", text, sizeof text - 1, why, sizeof why), PD_EINVAL);
    cr_assert_str_eq(why, "t.conf:2: the line holds a NUL byte (is this a text file?)");
    char *big = malloc(4000);
    strcpy(big, "[worker]\ncache_dir = ");
    memset(big + strlen(big), 'x', 2000);
    big[21 + 2000] = 0;
    cr_assert_eq(parse(big), PD_EINVAL);
    cr_assert_str_eq(why, "t.conf:2: value of 'cache_dir' is longer than 1024 bytes");
    free(big);
}

Test(config, unreadable_files_say_so)
{
    cr_assert_eq(pd_config_load(c, "/nonexistent/playdoh.conf", why, sizeof why), PD_EIO);
    cr_assert_str_eq(why, "cannot read configuration file /nonexistent/playdoh.conf: No such "
                          "file or directory");
    cr_assert_eq(pd_config_load(c, "/tmp", why, sizeof why), PD_EIO);
    cr_assert_str_eq(why, "configuration file /tmp is a directory");
}

Test(config, loads_files_and_the_environment_override)
{
    char path[] = "/tmp/pd-config-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *text = "[submit]\nbroker = tcp://10.0.0.1:5555\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
    close(fd);
    setenv("PLAYDOH_CONFIG", path, 1);
    cr_assert_eq(pd_config_load_default(c, NULL, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(pd_config_str(c, "submit", "broker", ""), "tcp://10.0.0.1:5555");
    pd_config_t *c2 = pd_config_new();
    cr_assert_eq(pd_config_load_default(c2, "/nonexistent.conf", why, sizeof why), PD_EIO);
    pd_config_destroy(&c2);
    pd_config_destroy(&c2); /* safe twice */
    unsetenv("PLAYDOH_CONFIG");
    unlink(path);
}

Test(config, check_validates_flags_like_files)
{
    cr_assert_eq(pd_config_check("worker", "cpus", "12", why, sizeof why), 0);
    cr_assert_eq(pd_config_check("worker", "cpus", "x", why, sizeof why), PD_EINVAL);
    cr_assert_str_eq(why, "[worker] cpus wants a whole number from 0 to 4096, not 'x'");
    cr_assert_eq(pd_config_check("worker", "nope", "1", why, sizeof why), PD_EINVAL);
}

Test(config, the_shipped_example_is_valid)
{
    const char *src = getenv("PLAYDOH_SOURCE_ROOT");
    cr_assert_not_null(src, "PLAYDOH_SOURCE_ROOT is not set");
    char path[4096];
    snprintf(path, sizeof path, "%s/conf/playdoh.conf", src);
    cr_assert_eq(pd_config_load(c, path, why, sizeof why), 0, "%s", why);
}

/* pd_opts: one merger of flags, file and defaults (flags win over the
   file, the file over defaults). */
typedef struct {
    const char *name;
    int64_t cpus, mem;
} opts_flags_t;
typedef struct {
    const char *name;
    uint32_t cpus;
    uint64_t mem;
} opts_dest_t;
static const pd_opt_t opts_table[] = {
    PD_OPT_LINE("broker", "name", PD_OPT_STR, opts_flags_t, name, opts_dest_t, name),
    PD_OPT_LINE("worker", "cpus", PD_OPT_U32, opts_flags_t, cpus, opts_dest_t, cpus),
    PD_OPT_LINE("broker", "max_arg_mb", PD_OPT_MB, opts_flags_t, mem, opts_dest_t, mem),
};

/* The defaults {"dflt", 3, 5 MiB} merged with flags f and the file. */
static opts_dest_t opts_merged(opts_flags_t f)
{
    opts_dest_t d = {"dflt", 3, 5u << 20};
    pd_opts_merge(opts_table, PD_OPTS_COUNT(opts_table), &f, c, &d);
    return d;
}

Test(config, opts_merge_keeps_defaults_without_flag_or_file)
{
    opts_dest_t d = opts_merged((opts_flags_t){NULL, -1, -1});
    cr_assert_str_eq(d.name, "dflt");
    cr_assert_eq(d.cpus, 3);
    cr_assert_eq(d.mem, 5u << 20);
}

Test(config, opts_merge_file_over_default_and_flag_over_file)
{
    cr_assert_eq(parse("[broker]\nname = filed\nmax_arg_mb = 7\n[worker]\ncpus = 9\n"), 0, "%s",
                 why);
    opts_dest_t d = opts_merged((opts_flags_t){NULL, -1, -1});
    cr_assert_str_eq(d.name, "filed");
    cr_assert_eq(d.cpus, 9);
    cr_assert_eq(d.mem, 7u << 20);
    d = opts_merged((opts_flags_t){"flagged", 0, 2});
    cr_assert_str_eq(d.name, "flagged");
    cr_assert_eq(d.cpus, 0, "a flag of 0 is given, not absent");
    cr_assert_eq(d.mem, 2u << 20);
}
