/* Integration tests of the cluster features on loopback, with real broker
   and worker processes: the owner's control of slots (playdoh-worker ctl,
   --now, SIGHUP reload), the idle policy, and the broker's `cluster` view.
   Discovery by beacon needs broadcast, which loopback lacks: it is tested
   between network namespaces by netns_cluster.sh. */
#include "pd_codec.h"
#include "pd_harness.h"
#include "pd_msg.h"
#include "pd_proc.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* span: sleeps x ms and returns [start_us, end_us] (CLOCK_REALTIME). */
static const char *SRC =
    "#include <playdoh_task.h>\n"
    "#include <time.h>\n"
    "static double s_now_us(void) { struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts);\n"
    "    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3; }\n"
    "PD_TASK(span, t) {\n"
    "    double ms;\n"
    "    if (pd_arg_double(t, &ms)) return pd_task_fail(t, \"want a number of ms\");\n"
    "    double a = s_now_us();\n"
    "    struct timespec ts = {(time_t) (ms / 1000), (long) ((ms - 1000 * (time_t) (ms / 1000)) * 1e6)};\n"
    "    while (nanosleep(&ts, &ts) != 0) {}\n"
    "    double v[2] = {a, s_now_us()};\n"
    "    return pd_out_doubles(t, v, 2);\n"
    "}\n";

static pd_harness_t h;
static pd_client_t *c;
static char mod[PD_HASH_HEX];
static pid_t burners[4];
static int nburners;

static void start(int workers, int cpus)
{
    pd_harness_start(&h, NULL);
    for (int i = 0; i < workers; i++)
        pd_harness_add_worker(&h, cpus);
    c = pd_harness_client(&h);
    if (workers)
        pd_harness_wait_slots(&h, c, workers * cpus);
    char *path = pd_harness_module(&h, "span.c", SRC);
    cr_assert_eq(pd_module_upload_file(c, path, mod), 0, "%s", pd_client_error(c));
    free(path);
}

static void stop(void)
{
    for (int i = 0; i < nburners; i++)
        if (burners[i] > 0) {
            kill(burners[i], SIGKILL);
            waitpid(burners[i], NULL, 0);
        }
    nburners = 0;
    pd_client_destroy(&c);
    pd_harness_stop(&h);
}

TestSuite(cluster, .fini = stop, .timeout = 180);

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Starts a worker with the given extra arguments (NULL-terminated). */
static void add_worker(const char *first, ...)
{
    const char *argv[40];
    char hb[16], cache[300];
    snprintf(hb, sizeof hb, "%d", h.heartbeat_ms);
    snprintf(cache, sizeof cache, "%s/cache", h.dir);
    int n = 0;
    static char worker[PATH_MAX];
    snprintf(worker, sizeof worker, "%s", pd_harness_program("playdoh-worker"));
    argv[n++] = worker;
    argv[n++] = "--broker";
    argv[n++] = h.endpoint;
    argv[n++] = "--heartbeat-ms";
    argv[n++] = hb;
    argv[n++] = "--cache";
    argv[n++] = cache;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && n < 39; a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    cr_assert_lt(h.nworkers, PD_HARNESS_MAX_WORKERS);
    pid_t pid = pd_proc_spawn((char *const *) argv, NULL);
    cr_assert_gt(pid, 0);
    h.workers[h.nworkers++] = pid;
}

/* Runs a command through the shell; returns its exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char *cmd;
    va_list ap;
    va_start(ap, fmt);
    cr_assert_neq(vasprintf(&cmd, fmt, ap), -1);
    va_end(ap);
    int st = system(cmd);
    free(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The worker (by host name, or the only one when host is NULL) as the
   broker sees it; false when it is not registered. */
static bool worker_info(const char *host, pd_worker_info_t *out)
{
    pd_cluster_info_t ci;
    cr_assert_eq(pd_cluster_info(c, &ci), 0, "%s", pd_client_error(c));
    bool found = false;
    for (size_t i = 0; i < ci.nworkers && !found; i++)
        if (!host || strcmp(ci.workers[i].host, host) == 0) {
            *out = ci.workers[i];
            found = true;
        }
    pd_cluster_info_clear(&ci);
    return found;
}

/* Waits up to limit_s for the worker to offer `cpus` slots. */
static void wait_cpus(const char *host, uint32_t cpus, double limit_s)
{
    pd_worker_info_t wi = {0};
    for (int i = 0; i < (int) (limit_s * 20); i++) {
        if (worker_info(host, &wi) && wi.cpus == cpus)
            return;
        usleep(50000);
    }
    cr_assert_fail("worker %s offers %u cpus, not %u, after %.0f s", host ? host : "", wi.cpus,
                   cpus, limit_s);
}

/* Waits until at least k of the ids are done (bounded). */
static void wait_done(const uint64_t *ids, size_t n, size_t k)
{
    pd_job_state_t *st = calloc(n, sizeof *st);
    for (int tries = 0; tries < 1200; tries++) {
        cr_assert_eq(pd_status(c, ids, n, st), 0, "%s", pd_client_error(c));
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += st[i] == PD_JOB_DONE;
        if (done >= k) {
            free(st);
            return;
        }
        usleep(25000);
    }
    cr_assert_fail("fewer than %zu of %zu jobs done after 30 s", k, n);
}

typedef struct {
    double a, b; /* start and end, µs */
} span_t;

/* Reads [start, end] from a done job. */
static span_t read_span(const pd_result_t *r)
{
    cr_assert_eq(r->state, PD_JOB_DONE, "job %llu: %s", (unsigned long long) r->id,
                 r->error ? r->error : pd_job_state_name(r->state));
    pd_rd_t rd;
    pd_rd_init(&rd, r->value, r->len);
    uint32_t n;
    span_t s;
    cr_assert_eq(pd_rd_array(&rd, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(pd_rd_double(&rd, &s.a), 0);
    cr_assert_eq(pd_rd_double(&rd, &s.b), 0);
    return s;
}

/* Most spans running at once among those with a >= from, at any instant
   >= from. */
static int max_overlap(const span_t *s, size_t n, double from)
{
    int best = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i].a < from)
            continue;
        int k = 0;
        for (size_t j = 0; j < n; j++)
            k += s[j].a >= from && s[j].a <= s[i].a && s[i].a < s[j].b;
        if (k > best)
            best = k;
    }
    return best;
}

/* Most spans (of any start) running at once at instants >= from. */
static int max_overlap_after(const span_t *s, size_t n, double from)
{
    int best = 0;
    for (size_t i = 0; i <= n; i++) {
        double t = i < n ? s[i].a : from;
        if (t < from)
            continue;
        int k = 0;
        for (size_t j = 0; j < n; j++)
            k += s[j].a <= t && t < s[j].b;
        if (k > best)
            best = k;
    }
    return best;
}

static const char *ctl_path(int i)
{
    static char p[320];
    snprintf(p, sizeof p, "%s/worker%d.ctl", h.dir, i);
    return p;
}

Test(cluster, lowering_cpus_mid_batch_starts_no_job_beyond_the_new_limit)
{
    start(1, 4);
    enum { N = 120 };
    double x[N];
    uint64_t ids[N];
    static pd_result_t res[N];
    for (int i = 0; i < N; i++)
        x[i] = 40; /* ms each: groups of one job per slot */
    cr_assert_eq(pd_map_doubles(c, mod, "span", x, N, NULL, ids), N, "%s", pd_client_error(c));
    wait_done(ids, N, 16);
    cr_assert_eq(sh("%s ctl --control %s --cpus 1 >/dev/null", pd_harness_program("playdoh-worker"),
                    ctl_path(0)), 0);
    double t = now_us();
    pd_worker_info_t wi;
    cr_assert(worker_info(NULL, &wi));
    cr_assert_eq(wi.cpus, 1, "the broker did not see the change at once (%u cpus)", wi.cpus);
    cr_assert_eq(pd_fetch(c, ids, N, 60000, res, NULL, NULL), N, "%s", pd_client_error(c));
    static span_t s[N];
    int before = 0;
    for (int i = 0; i < N; i++) {
        s[i] = read_span(&res[i]);
        before += s[i].a < t;
    }
    cr_assert_geq(max_overlap(s, N, 0), 2, "the worker never ran jobs side by side before the change");
    cr_assert_eq(max_overlap(s, N, t), 1, "jobs started after `ctl --cpus 1` overlapped");
    /* Jobs running at the change finished; after them, one at a time. */
    cr_assert_eq(max_overlap_after(s, N, t + 40000 + 200000), 1);
    cr_assert_lt(before, N, "the whole batch ran before the change");
    pd_results_clear(res, N);
}

Test(cluster, lowering_with_now_hands_jobs_back_without_counting_an_attempt)
{
    start(1, 3);
    pd_harness_add_worker(&h, 1);
    pd_harness_wait_slots(&h, c, 4);
    enum { N = 90 };
    double x[N];
    uint64_t ids[N];
    static pd_result_t res[N];
    for (int i = 0; i < N; i++)
        x[i] = 60;
    pd_map_opts_t mo = {.retries = 1}; /* a counted attempt would fail the job */
    cr_assert_eq(pd_map_doubles(c, mod, "span", x, N, &mo, ids), N, "%s", pd_client_error(c));
    wait_done(ids, N, 12);
    cr_assert_eq(sh("%s ctl --control %s --cpus 0 --now >/dev/null",
                    pd_harness_program("playdoh-worker"), ctl_path(0)), 0);
    cr_assert_eq(pd_fetch(c, ids, N, 60000, res, NULL, NULL), N, "%s", pd_client_error(c));
    for (int i = 0; i < N; i++)
        read_span(&res[i]); /* every one done, none failed with PD_ELOST */
    pd_results_clear(res, N);
    pd_cluster_info_t ci;
    cr_assert_eq(pd_cluster_info(c, &ci), 0);
    uint64_t requeued = 0;
    for (size_t i = 0; i < ci.nworkers; i++) {
        requeued += ci.workers[i].requeued;
        if (ci.workers[i].cpus == 0)
            cr_assert_eq(ci.workers[i].busy + ci.workers[i].inflight, 0);
    }
    pd_cluster_info_clear(&ci);
    cr_assert_gt(requeued, 0, "the worker handed nothing back with --now");
}

Test(cluster, ctl_prints_the_state_and_refuses_bad_requests)
{
    start(1, 2);
    const char *w = pd_harness_program("playdoh-worker");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s ctl --control %s", w, ctl_path(0));
    FILE *p = popen(cmd, "r");
    char line[512] = "";
    cr_assert(fgets(line, sizeof line, p));
    pclose(p);
    cr_assert(strstr(line, "2 cpus, 0 gpus allowed; 2 cpus offered"), "%s", line);
    cr_assert_eq(sh("%s ctl --control %s --cpus 5000 2>/dev/null", w, ctl_path(0)), 2);
    cr_assert_eq(sh("%s ctl --control %s/nothing.ctl 2>/dev/null", w, h.dir), 3);
    /* Requests the command line cannot send: out of range, of another type. */
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_REQ);
    int zero = 0, wait = 5000;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &wait, sizeof wait);
    char ep[400];
    snprintf(ep, sizeof ep, "ipc://%s", ctl_path(0));
    cr_assert_eq(zmq_connect(s, ep), 0);
    const char *types[] = {"ctl", "reboot"};
    for (int k = 0; k < 2; k++) {
        pd_buf_t b;
        pd_buf_init(&b);
        msgpack_packer pk;
        pd_packer_init(&pk, &b);
        pd_msg_begin(&pk, types[k], 1);
        pd_pack_kv_uint(&pk, "cpus", 99999);
        cr_assert_geq(zmq_send(s, b.data, b.len, 0), 0);
        pd_buf_free(&b);
        char reply[1024];
        int n = zmq_recv(s, reply, sizeof reply, 0);
        cr_assert_gt(n, 0);
        pd_msg_t m;
        cr_assert_eq(pd_msg_parse(&m, reply, (size_t) n), 0);
        cr_assert(pd_msg_is(&m, "error"));
        char msg[256];
        cr_assert_eq(pd_msg_str(&m, "msg", msg, sizeof msg), 0);
        cr_assert(strstr(msg, k == 0 ? "cpus must be from 0 to 4096" : "not 'reboot'"), "%s", msg);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    pd_worker_info_t wi;
    cr_assert(worker_info(NULL, &wi));
    cr_assert_eq(wi.cpus, 2, "a refused request changed the slots");
}

Test(cluster, sighup_reloads_the_configuration_file)
{
    start(0, 0);
    char conf[320];
    snprintf(conf, sizeof conf, "%s/worker.conf", h.dir);
    cr_assert_eq(sh("printf '[worker]\\ncpus = 3\\nname = reloading\\n' > %s", conf), 0);
    add_worker("--config", conf, "--control", "none", NULL);
    wait_cpus("reloading", 3, 20);
    cr_assert_eq(sh("printf '[worker]\\ncpus = 1\\nname = reloading\\n' > %s", conf), 0);
    kill(h.workers[0], SIGHUP);
    wait_cpus("reloading", 1, 20);
    /* A broken file is refused whole: nothing changes, the worker goes on. */
    cr_assert_eq(sh("printf '[worker]\\ncpus = lots\\n' > %s", conf), 0);
    kill(h.workers[0], SIGHUP);
    usleep(500000);
    cr_assert_eq(waitpid(h.workers[0], NULL, WNOHANG), 0, "the worker died of a bad reload");
    wait_cpus("reloading", 1, 5);
}

Test(cluster, a_bad_configuration_file_stops_the_programs_with_file_and_line)
{
    start(0, 0);
    char conf[320], cmd[1400];
    snprintf(conf, sizeof conf, "%s/bad.conf", h.dir);
    cr_assert_eq(sh("printf '[worker]\\n\\ncpus = -2\\n' > %s", conf), 0);
    snprintf(cmd, sizeof cmd, "%s --config %s --broker %s 2>&1",
             pd_harness_program("playdoh-worker"), conf, h.endpoint);
    FILE *p = popen(cmd, "r");
    char line[512] = "";
    cr_assert(fgets(line, sizeof line, p));
    cr_assert_eq(WEXITSTATUS(pclose(p)), 2);
    char want[512];
    snprintf(want, sizeof want, "playdoh-worker: %s:3: [worker] cpus wants a whole number from 0 "
             "to 4096, not '-2'\n", conf);
    cr_assert_str_eq(line, want);
    snprintf(cmd, sizeof cmd, "%s --config %s/none.conf 2>&1", pd_harness_program("playdoh-broker"),
             h.dir);
    p = popen(cmd, "r");
    cr_assert(fgets(line, sizeof line, p));
    cr_assert_eq(WEXITSTATUS(pclose(p)), 2);
    cr_assert(strstr(line, "cannot read configuration file"), "%s", line);
}

Test(cluster, cluster_view_lists_each_worker_with_slots_jobs_and_heartbeat)
{
    start(2, 2);
    enum { N = 40 };
    double x[N];
    uint64_t ids[N];
    static pd_result_t res[N];
    for (int i = 0; i < N; i++)
        x[i] = 5;
    cr_assert_eq(pd_map_doubles(c, mod, "span", x, N, NULL, ids), N);
    cr_assert_eq(pd_fetch(c, ids, N, 30000, res, NULL, NULL), N);
    pd_results_clear(res, N);
    pd_cluster_info_t ci;
    cr_assert_eq(pd_cluster_info(c, &ci), 0, "%s", pd_client_error(c));
    cr_assert_eq(ci.nworkers, 2);
    cr_assert_str_eq(ci.cluster, "playdoh");
    uint64_t done = 0;
    for (size_t i = 0; i < ci.nworkers; i++) {
        const pd_worker_info_t *w = &ci.workers[i];
        cr_assert_eq(w->cpus, 2);
        cr_assert_lt(w->hb_ms, 3000, "heartbeat %llu ms ago", (unsigned long long) w->hb_ms);
        cr_assert_eq(strncmp(w->id, "w-", 2), 0);
        cr_assert_gt(w->pid, 0);
        done += w->done;
    }
    cr_assert_eq(done, N);
    pd_cluster_info_clear(&ci);
    /* The command line shows the same, as a table and as JSON. */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s -b %s cluster --json", pd_harness_program("playdoh-submit"),
             h.endpoint);
    FILE *p = popen(cmd, "r");
    static char out[8192];
    size_t len = fread(out, 1, sizeof out - 1, p);
    out[len] = 0;
    cr_assert_eq(WEXITSTATUS(pclose(p)), 0);
    cr_assert(strstr(out, "\"cluster\":\"playdoh\""), "%s", out);
    cr_assert(strstr(out, "\"cpus\":2,\"gpus\":0,\"busy\":0,\"load\":null"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s -b %s cluster", pd_harness_program("playdoh-submit"), h.endpoint);
    p = popen(cmd, "r");
    len = fread(out, 1, sizeof out - 1, p);
    out[len] = 0;
    cr_assert_eq(WEXITSTATUS(pclose(p)), 0);
    cr_assert(strstr(out, ": 2 workers, 4 cpu slots"), "%s", out);
    cr_assert(strstr(out, "HEARTBEAT"), "%s", out);
}

/* ---- idle policy ---------------------------------------------------------- */

/* A synthetic procfs for the owner-load measure: <dir>/fakeproc/stat, whose
   busy ticks a thread advances while `owner_busy` is set, and idle ticks
   otherwise (two CPUs). */
static char fake_dir[320];
static volatile int owner_busy, fake_stop;
static pthread_t fake_thread;

static void *fake_proc(void *arg)
{
    (void) arg;
    unsigned long long busy = 1000, idle = 1000;
    char path[400], tmp[400];
    snprintf(path, sizeof path, "%s/stat", fake_dir);
    snprintf(tmp, sizeof tmp, "%s/stat.tmp", fake_dir);
    while (!fake_stop) {
        if (owner_busy)
            busy += 20; /* both CPUs busy */
        else
            idle += 20;
        FILE *f = fopen(tmp, "w");
        if (f) {
            fprintf(f, "cpu  %llu 0 0 %llu 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n"
                       "cpu1 0 0 0 0 0 0 0 0 0 0\nintr 0\n", busy, idle);
            fclose(f);
            rename(tmp, path);
        }
        usleep(20000);
    }
    return NULL;
}

static void stop_fake(void)
{
    fake_stop = 1;
    pthread_join(fake_thread, NULL);
    stop();
}

Test(cluster, idle_policy_requeues_when_the_owner_comes_back_and_offers_again_later,
     .fini = stop_fake)
{
    start(0, 0);
    snprintf(fake_dir, sizeof fake_dir, "%s/fakeproc", h.dir);
    cr_assert_eq(sh("mkdir -p %s", fake_dir), 0);
    owner_busy = 0;
    fake_stop = 0;
    cr_assert_eq(pthread_create(&fake_thread, NULL, fake_proc, NULL), 0);
    char conf[320];
    snprintf(conf, sizeof conf, "%s/idle.conf", h.dir);
    cr_assert_eq(sh("printf '[worker]\\nidle_load_max = 0.5\\nidle_action = requeue\\n"
                    "idle_check_ms = 150\\nidle_wait_s = 1\\nproc_dir = %s\\nname = desk\\n' > %s",
                    fake_dir, conf), 0);
    add_worker("--config", conf, "--cpus", "2", "--control", "none", NULL);
    add_worker("--cpus", "1", "--name", "server", "--control", "none", NULL);
    wait_cpus("desk", 2, 20);
    wait_cpus("server", 1, 20);
    enum { N = 60 };
    double x[N];
    uint64_t ids[N];
    static pd_result_t res[N];
    for (int i = 0; i < N; i++)
        x[i] = 80;
    pd_map_opts_t mo = {.retries = 1};
    cr_assert_eq(pd_map_doubles(c, mod, "span", x, N, &mo, ids), N, "%s", pd_client_error(c));
    wait_done(ids, N, 8);
    owner_busy = 1; /* the owner sits down */
    wait_cpus("desk", 0, 10);
    pd_worker_info_t wi;
    /* `slots`, then the state and the `requeue` follow on the worker's
       connection: poll until the broker has them all. */
    for (int i = 0; i < 200 && (!worker_info("desk", &wi) || wi.requeued == 0); i++)
        usleep(50000);
    cr_assert_str_eq(wi.owner, "owner");
    cr_assert_gt(wi.load, 0.5);
    cr_assert_gt(wi.requeued, 0, "no job was handed back");
    /* Everything completes, on the server, with no attempt counted. */
    cr_assert_eq(pd_fetch(c, ids, N, 60000, res, NULL, NULL), N, "%s", pd_client_error(c));
    for (int i = 0; i < N; i++)
        read_span(&res[i]);
    pd_results_clear(res, N);
    owner_busy = 0; /* the owner leaves: slots offered again after idle_wait_s */
    wait_cpus("desk", 2, 15);
    for (int i = 0; i < 200 && (!worker_info("desk", &wi) || strcmp(wi.owner, "idle")); i++)
        usleep(50000);
    cr_assert_str_eq(wi.owner, "idle");
}

/* Busy loops standing for the machine's owner. */
static void start_burners(int n)
{
    for (int i = 0; i < n && nburners < 4; i++) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            alarm(120); /* never outlive the test */
            for (volatile unsigned long k = 0;; k++)
                ;
        }
        burners[nburners++] = pid;
    }
}

Test(cluster, idle_policy_suspends_jobs_while_the_owner_is_busy_then_resumes_them,
     .fini = stop_fake)
{
    start(0, 0);
    snprintf(fake_dir, sizeof fake_dir, "%s/fakeproc", h.dir);
    cr_assert_eq(sh("mkdir -p %s", fake_dir), 0);
    owner_busy = 0;
    fake_stop = 0;
    cr_assert_eq(pthread_create(&fake_thread, NULL, fake_proc, NULL), 0);
    char conf[320];
    snprintf(conf, sizeof conf, "%s/idle.conf", h.dir);
    cr_assert_eq(sh("printf '[worker]\\nidle_load_max = 0.5\\nidle_action = suspend\\n"
                    "idle_check_ms = 150\\nidle_wait_s = 1\\nproc_dir = %s\\nname = desk\\n' > %s",
                    fake_dir, conf), 0);
    add_worker("--config", conf, "--cpus", "2", "--control", "none", NULL);
    wait_cpus("desk", 2, 20);
    enum { N = 12 };
    double x[N];
    uint64_t ids[N];
    static pd_result_t res[N];
    for (int i = 0; i < N; i++)
        x[i] = 300;
    cr_assert_eq(pd_map_doubles(c, mod, "span", x, N, NULL, ids), N, "%s", pd_client_error(c));
    wait_done(ids, N, 2);
    owner_busy = 1;
    wait_cpus("desk", 0, 10);
    /* Suspended: the jobs it holds stay running and none completes. */
    pd_job_state_t st[N], st2[N];
    usleep(300000);
    cr_assert_eq(pd_status(c, ids, N, st), 0);
    usleep(1200000); /* four times a job's length */
    cr_assert_eq(pd_status(c, ids, N, st2), 0);
    int running = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(st[i], st2[i], "job %d went from %s to %s while suspended", i,
                     pd_job_state_name(st[i]), pd_job_state_name(st2[i]));
        running += st2[i] == PD_JOB_RUNNING;
    }
    cr_assert_gt(running, 0, "no job is held (suspended) by the worker");
    cr_assert_leq(running, 2, "more jobs held than slots: the queue was not handed back");
    owner_busy = 0; /* resumed after idle_wait_s, and everything finishes */
    cr_assert_eq(pd_fetch(c, ids, N, 60000, res, NULL, NULL), N, "%s", pd_client_error(c));
    double longest = 0;
    for (int i = 0; i < N; i++) {
        span_t sp = read_span(&res[i]);
        if (sp.b - sp.a > longest)
            longest = sp.b - sp.a;
    }
    cr_assert_gt(longest, 1.2e6, "no job was stopped: the longest took %.0f us", longest);
    pd_results_clear(res, N);
}

/* The real measure, from /proc: busy loops outside Playdoh make the worker
   withdraw its slots. (Only this direction is asserted: other programs on
   a shared test machine can only add to the load.) */
Test(cluster, idle_policy_sees_the_owners_real_load_in_proc)
{
    start(0, 0);
    char conf[320];
    snprintf(conf, sizeof conf, "%s/idle.conf", h.dir);
    cr_assert_eq(sh("printf '[worker]\\nidle_load_max = 0.4\\nidle_action = suspend\\n"
                    "idle_check_ms = 300\\nidle_wait_s = 3600\\nname = desk\\n' > %s", conf), 0);
    add_worker("--config", conf, "--cpus", "2", "--control", "none", NULL);
    pd_worker_info_t wi;
    for (int i = 0; i < 400 && !worker_info("desk", &wi); i++)
        usleep(50000);
    start_burners(2);
    wait_cpus("desk", 0, 20);
    for (int i = 0; i < 200 && (!worker_info("desk", &wi) || strcmp(wi.owner, "owner")); i++)
        usleep(50000); /* the state follows `slots` on the worker's connection */
    cr_assert_str_eq(wi.owner, "owner");
    cr_assert_gt(wi.load, 0.4, "load %.2f", wi.load);
}

/* A broker that stops (SIGSTOP, a suspended machine) for four times its
   workers' liveness declares none of them lost when it runs again: their
   heartbeats of that time were waiting unread. Jobs then run as before. */
Test(cluster, a_broker_that_stalls_declares_no_worker_lost)
{
    pd_harness_start_logged(&h, NULL);
    pd_harness_add_worker(&h, 1);
    pd_harness_add_worker(&h, 1);
    c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, 2);
    char *path = pd_harness_module(&h, "span.c", SRC);
    cr_assert_eq(pd_module_upload_file(c, path, mod), 0, "%s", pd_client_error(c));
    free(path);
    cr_assert_eq(kill(h.broker, SIGSTOP), 0);
    usleep(4 * 5 * 200 * 1000); /* 4 s: liveness 5 x heartbeat 200 ms, four times */
    cr_assert_eq(kill(h.broker, SIGCONT), 0);
    usleep(1500 * 1000); /* more than a liveness: a lost worker would be declared by now */
    cr_assert_not(pd_harness_log_has(&h, "broker.log", " lost (silent for", 0),
                  "a worker was declared lost after the broker's stall");
    cr_assert(pd_harness_log_has(&h, "broker.log", "did not run for", 0),
              "the broker did not say it had stalled");
    enum { N = 20 };
    double x[N];
    uint64_t ids[N];
    static pd_result_t res[N];
    for (int i = 0; i < N; i++)
        x[i] = 1;
    cr_assert_eq(pd_map_doubles(c, mod, "span", x, N, NULL, ids), N, "%s", pd_client_error(c));
    cr_assert_eq(pd_fetch(c, ids, N, 30000, res, NULL, NULL), N, "%s", pd_client_error(c));
    for (int i = 0; i < N; i++)
        cr_assert_eq(res[i].state, PD_JOB_DONE, "job %d: %s", i, res[i].error);
    pd_results_clear(res, N);
}

/* A broker stopped for 10 s in the middle of a batch, then the broker and
   its workers stopped together (a suspended machine): no worker is lost,
   no attempt is counted (with one attempt allowed, a counted loss would
   fail its job with PD_ELOST), no worker takes the broker for silent, and
   every job comes back right. */
Test(cluster, stalls_of_the_broker_and_its_workers_mid_batch_lose_nothing, .timeout = 120)
{
    pd_harness_start_logged(&h, NULL);
    static const char *const logged[] = {"--log-level", "info", NULL};
    pd_harness_add_worker_args(&h, 1, logged);
    pd_harness_add_worker_args(&h, 1, logged);
    c = pd_harness_client(&h);
    pd_harness_wait_slots(&h, c, 2);
    char *path = pd_harness_module(&h, "span.c", SRC);
    cr_assert_eq(pd_module_upload_file(c, path, mod), 0, "%s", pd_client_error(c));
    free(path);
    enum { N = 80 };
    double x[N];
    uint64_t ids[N];
    static pd_result_t res[N];
    for (int i = 0; i < N; i++)
        x[i] = 50; /* 2 s of work on 2 slots */
    pd_map_opts_t o = {.retries = 1};
    cr_assert_eq(pd_map_doubles(c, mod, "span", x, N, &o, ids), N, "%s", pd_client_error(c));
    usleep(300000);
    cr_assert_eq(kill(h.broker, SIGSTOP), 0);
    sleep(10);
    cr_assert_eq(kill(h.broker, SIGCONT), 0);
    usleep(500000);
    for (int k = 0; k < h.nworkers; k++)
        cr_assert_eq(kill(h.workers[k], SIGSTOP), 0);
    cr_assert_eq(kill(h.broker, SIGSTOP), 0);
    sleep(3);
    for (int k = 0; k < h.nworkers; k++)
        cr_assert_eq(kill(h.workers[k], SIGCONT), 0);
    usleep(20000); /* the workers wake first: the broker is still stopped */
    cr_assert_eq(kill(h.broker, SIGCONT), 0);
    cr_assert_eq(pd_fetch(c, ids, N, 60000, res, NULL, NULL), N, "%s", pd_client_error(c));
    for (int i = 0; i < N; i++)
        cr_assert_eq(res[i].state, PD_JOB_DONE, "job %d: %s", i, res[i].error);
    pd_results_clear(res, N);
    cr_assert_not(pd_harness_log_has(&h, "broker.log", " lost (silent for", 0),
                  "a worker was declared lost after a stall");
    cr_assert(pd_harness_log_has(&h, "broker.log", "did not run for", 0));
    for (int k = 0; k < h.nworkers; k++) {
        char name[32];
        snprintf(name, sizeof name, "worker-%d.log", k);
        /* The broker's own 10 s stop is a silence the worker rightly sees
           (once); the suspension of both is not. */
        cr_assert_leq(pd_harness_log_count(&h, name, "silent for"), 1,
                      "worker %d took the broker for silent after the suspension", k);
        cr_assert(pd_harness_log_has(&h, name, "did not run for", 0),
                  "worker %d did not say it had stalled", k);
    }
}
