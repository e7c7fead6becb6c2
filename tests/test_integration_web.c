/*  Integration tests of the dashboard (issue 19, docs/dashboard.md): a real
    broker serving --http and two real worker processes running a batch.
    The API's JSON (parsed by Python's json module) has the documented
    fields and its numbers agree with pd_cluster_info (what `playdoh-submit
    cluster --json` prints); a killed worker shows in the event log; an
    address other than loopback is refused without a token, answers 401 to
    a missing or wrong token and 200 to the right one; a flood of 2,000
    connections ends in bounded time while the broker keeps serving jobs. */
#include "pd_harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *MODULE_SRC =
    "#include <playdoh_task.h>\n"
    "#include <time.h>\n"
    "PD_TASK_DOUBLE(slow_square, x) {\n"
    "    struct timespec ts = {0, 50 * 1000000L};\n"
    "    nanosleep(&ts, NULL);\n"
    "    return x * x;\n"
    "}\n"
    "PD_TASK(checked, t) {\n"
    "    double x;\n"
    "    if (pd_arg_double(t, &x) || x < 0)\n"
    "        return pd_task_fail(t, \"want a non-negative number\");\n"
    "    return pd_out_double(t, x);\n"
    "}\n";

enum { BATCH = 60, FLOOD = 2000 };

static pd_harness_t h;
static int port;
static char portarg[32];

static void start(void)
{
    port = 20000 + (int) (getpid() % 20000);
    snprintf(portarg, sizeof portarg, "127.0.0.1:%d", port);
}
static void stop(void) { pd_harness_stop(&h); }

TestSuite(web, .init = start, .fini = stop, .timeout = 240);

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* GET path on the dashboard with an optional header line; returns the
   HTTP status (0: no answer within 5 s), the body into body (cap bytes).
   Reads until the server closes, or until the answer holds until (not NULL:
   a stream that does not end). */
static int s_get_until(const char *path, const char *header, char *body, size_t cap,
                       const char *until)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *) &sa, sizeof sa)) {
        close(fd);
        return 0;
    }
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s%s\r\n",
                     path, header ? header : "", header ? "\r\n" : "");
    if (write(fd, req, (size_t) n) != n) {
        close(fd);
        return 0;
    }
    static char buf[1 << 20];
    size_t len = 0;
    ssize_t got;
    while (len < sizeof buf - 1 && (got = read(fd, buf + len, sizeof buf - 1 - len)) > 0) {
        len += (size_t) got;
        buf[len] = 0;
        if (until && strstr(buf, until))
            break;
    }
    close(fd);
    buf[len] = 0;
    int status = 0;
    if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
        return 0;
    const char *b = strstr(buf, "\r\n\r\n");
    if (body)
        snprintf(body, cap, "%s", b ? b + 4 : "");
    return status;
}

static int s_get(const char *path, const char *header, char *body, size_t cap)
{
    return s_get_until(path, header, body, cap, NULL);
}

/* Runs a Python expression over the JSON of path (as `d`); returns what it
   printed (static storage). Asserts the JSON parses and the program ends
   well. */
static const char *s_py(const char *path, const char *expr)
{
    static char out[4096];
    char *text = NULL;
    int rc = pd_harness_run(&text,
                            "python3 -c 'import json,urllib.request as u; "
                            "d=json.load(u.urlopen(\"http://%s%s\", timeout=10)); print(%s)'",
                            portarg, path, expr);
    cr_assert_eq(rc, 0, "python over %s: %s", path, text ? text : "");
    snprintf(out, sizeof out, "%s", text ? text : "");
    free(text);
    out[strcspn(out, "\n")] = 0;
    return out;
}

static void s_start_cluster(void)
{
    const char *extra[] = {"--http", portarg, NULL};
    pd_harness_start(&h, extra);
    pd_harness_add_worker(&h, 2);
    pd_harness_add_worker(&h, 2);
}

static void s_map(pd_client_t *cl, uint64_t *ids)
{
    char mod[PD_HASH_HEX];
    pd_harness_upload(&h, cl, "slow.c", MODULE_SRC, mod);
    double x[BATCH];
    for (int i = 0; i < BATCH; i++)
        x[i] = i;
    cr_assert_eq(pd_map_doubles(cl, mod, "slow_square", x, BATCH, NULL, ids), BATCH, "%s",
                 pd_client_error(cl));
}

/* Waits (up to 10 s) until the Python expression over path prints want. */
static void s_wait_for(const char *path, const char *expr, const char *want)
{
    const char *got = "";
    for (int i = 0; i < 100; i++) {
        got = s_py(path, expr);
        if (strcmp(got, want) == 0)
            return;
        usleep(100000);
    }
    cr_assert_fail("%s: %s is %s, not %s", path, expr, got, want);
}

Test(web, api_agrees_with_cluster_info)
{
    s_start_cluster();
    pd_client_t *cl = pd_harness_client(&h);
    pd_harness_wait_slots(&h, cl, 4);
    s_wait_for("/api/cluster", "d[\"totals\"][\"workers\"], d[\"totals\"][\"cpus\"]", "2 4");
    /* Every documented field is there, of its type. */
    cr_assert_str_eq(s_py("/api/cluster",
                          "all(isinstance(d[k], t) for k, t in [(\"version\", str), "
                          "(\"name\", str), (\"cluster\", str), (\"time_ms\", int), "
                          "(\"queued\", int), (\"unfinished\", int), (\"counters\", dict), "
                          "(\"totals\", dict), (\"workers\", list)]) and "
                          "all(isinstance(w[k], t) for w in d[\"workers\"] for k, t in "
                          "[(\"id\", str), (\"host\", str), (\"cpus\", int), (\"busy\", int), "
                          "(\"done\", int), (\"requeued\", int), (\"hb_ms\", int)])"),
                     "True");
    pd_cluster_info_t ci;
    cr_assert_eq(pd_cluster_info(cl, &ci), 0, "%s", pd_client_error(cl));
    char ids[128] = "";
    for (size_t i = 0; i < ci.nworkers; i++)
        snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%s", i ? " " : "",
                 ci.workers[i].id);
    cr_assert_str_eq(s_py("/api/cluster", "\" \".join(w[\"id\"] for w in d[\"workers\"])"), ids);
    cr_assert_str_eq(s_py("/api/cluster", "d[\"name\"], d[\"cluster\"]"),
                     strcat(strcat(strcpy((char[160]){0}, ci.name), " "), ci.cluster));
    pd_cluster_info_clear(&ci);

    uint64_t jobs[BATCH];
    s_map(cl, jobs);
    /* While it runs, the batch's jobs add up, and results come in. */
    char want[32];
    snprintf(want, sizeof want, "%d", BATCH);
    s_wait_for("/api/batches", "sum(o[\"queued\"] + o[\"running\"] + o[\"final\"] "
                               "for o in d[\"owners\"])", want);
    s_wait_for("/api/cluster", "sum(w[\"done\"] for w in d[\"workers\"]) > 0", "True");
    static pd_result_t res[BATCH];
    cr_assert_eq(pd_fetch(cl, jobs, BATCH, 60000, res, NULL, NULL), BATCH, "%s",
                 pd_client_error(cl));
    pd_results_clear(res, BATCH);
    /* Finished: the dashboard's count equals the broker's own answer. */
    s_wait_for("/api/cluster", "sum(w[\"done\"] for w in d[\"workers\"]), d[\"unfinished\"]",
               strcat(strcpy((char[32]){0}, want), " 0"));
    cr_assert_eq(pd_cluster_info(cl, &ci), 0, "%s", pd_client_error(cl));
    uint64_t done = 0;
    for (size_t i = 0; i < ci.nworkers; i++)
        done += ci.workers[i].done;
    cr_assert_eq(done, BATCH);
    pd_cluster_info_clear(&ci);
    cr_assert_str_eq(s_py("/api/events", "[e[\"kind\"] for e in d[\"events\"]].count(\"joined\")"),
                     "2");

    /* A killed worker is lost: the log says so, the list drops it. */
    kill(h.workers[1], SIGKILL);
    waitpid(h.workers[1], NULL, 0);
    h.workers[1] = 0;
    s_wait_for("/api/events", "[e[\"kind\"] for e in d[\"events\"]].count(\"lost\")", "1");
    s_wait_for("/api/cluster", "len(d[\"workers\"])", "1");

    char body[4096];
    cr_assert_eq(s_get("/", NULL, body, sizeof body), 200);
    cr_assert(strstr(body, "Playdoh dashboard"), "%s", body);
    cr_assert_eq(s_get("/api/nothing", NULL, NULL, 0), 404);
    /* The stream (chunked) sends snapshots as events. */
    cr_assert_eq(s_get_until("/api/stream", NULL, body, sizeof body, "\n\n"), 200);
    cr_assert(strstr(body, "event: snapshot\ndata: {\"version\":"), "%s", body);
    pd_client_destroy(&cl);
}

Test(web, token_rules)
{
    /* Refused at start on a network address without a token. */
    char *out = NULL;
    int rc = pd_harness_run(&out, "%s --no-journal --no-beacon --bind tcp://127.0.0.1:0 "
                                  "--http 0.0.0.0:%d 2>&1",
                            pd_harness_program("playdoh-broker"), port);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "not a loopback address: set a token"), "%s", out);
    free(out);

    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char tfile[256], any[64];
    snprintf(tfile, sizeof tfile, "%s/pd-web-token-%d", dir, (int) getpid());
    FILE *f = fopen(tfile, "w");
    cr_assert(f);
    fputs("s3cret-token-0123456789\n", f);
    fclose(f);
    snprintf(any, sizeof any, "0.0.0.0:%d", port);
    const char *extra[] = {"--http", any, "--http-token-file", tfile, NULL};
    pd_harness_start(&h, extra);
    int status = 0;
    for (int i = 0; i < 50 && !status; i++, usleep(100000))
        status = s_get("/api/cluster", NULL, NULL, 0);
    cr_assert_eq(status, 401, "no token");
    cr_assert_eq(s_get("/api/cluster", "Authorization: Bearer s3cret-token-012345678X", NULL, 0),
                 401, "wrong token");
    cr_assert_eq(s_get("/api/cluster", "Authorization: Bearer s3cret-token-01234567", NULL, 0),
                 401, "a prefix of the token");
    cr_assert_eq(s_get("/api/cluster", "Authorization: Bearer s3cret-token-0123456789", NULL, 0),
                 200, "right token");
    cr_assert_eq(s_get("/api/cluster?token=s3cret-token-0123456789", NULL, NULL, 0), 200);
    unlink(tfile);
}

/* Opens FLOOD connections, a few hundred at a time, each sending a request;
   returns the milliseconds it took. */
static void *s_flood(void *arg)
{
    int64_t t0 = s_now_ms();
    enum { WAVE = 500 };
    static int fds[WAVE];
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int done = 0; done < FLOOD; done += WAVE) {
        for (int i = 0; i < WAVE; i++) {
            fds[i] = socket(AF_INET, SOCK_STREAM, 0);
            struct timeval tv = {2, 0};
            setsockopt(fds[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            if (connect(fds[i], (struct sockaddr *) &sa, sizeof sa) == 0) {
                static const char req[] = "GET /api/cluster HTTP/1.1\r\nHost: x\r\n\r\n";
                ssize_t w = write(fds[i], req, sizeof req - 1);
                (void) w;
            }
        }
        for (int i = 0; i < WAVE; i++)
            close(fds[i]);
    }
    *(int64_t *) arg = s_now_ms() - t0;
    return NULL;
}

Test(web, flood_is_bounded_and_jobs_go_on)
{
    s_start_cluster();
    pd_client_t *cl = pd_harness_client(&h);
    pd_harness_wait_slots(&h, cl, 4);
    uint64_t jobs[BATCH];
    int64_t t0 = s_now_ms();
    s_map(cl, jobs);
    int64_t took = -1;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, s_flood, &took), 0);
    static pd_result_t res[BATCH];
    cr_assert_eq(pd_fetch(cl, jobs, BATCH, 60000, res, NULL, NULL), BATCH, "%s",
                 pd_client_error(cl));
    int64_t batch_ms = s_now_ms() - t0;
    pthread_join(th, NULL);
    for (int i = 0; i < BATCH; i++)
        cr_assert_eq(res[i].state, PD_JOB_DONE);
    pd_results_clear(res, BATCH);
    cr_log_info("flood of %d connections: %lld ms; the batch: %lld ms", FLOOD, (long long) took,
                (long long) batch_ms);
    cr_assert_lt(took, 30000, "the flood took %lld ms", (long long) took);
    /* 60 jobs of 50 ms on 4 slots: under a second unloaded; the flood must
       not stall the loop (generous bound for a loaded machine). */
    cr_assert_lt(batch_ms, 30000, "the batch took %lld ms", (long long) batch_ms);
    /* The dashboard still answers afterwards. */
    char body[65536];
    int status = 0;
    for (int i = 0; i < 50 && status != 200; i++, usleep(100000))
        status = s_get("/api/cluster", NULL, body, sizeof body);
    cr_assert_eq(status, 200);
    pd_client_destroy(&cl);
}

/* A failed job's error is one request away: /api/batches lists the latest
   failed jobs with their code, message, host and slot (never arguments);
   the ones that succeeded are not there. */
Test(web, failed_jobs_show_their_error)
{
    s_start_cluster();
    pd_client_t *cl = pd_harness_client(&h);
    pd_harness_wait_slots(&h, cl, 4);
    char mod[PD_HASH_HEX];
    pd_harness_upload(&h, cl, "slow.c", MODULE_SRC, mod);
    double x[6] = {1, -2, 3, -4, 5, 6};
    uint64_t ids[6];
    cr_assert_eq(pd_map_doubles(cl, mod, "checked", x, 6, NULL, ids), 6, "%s",
                 pd_client_error(cl));
    pd_result_t res[6];
    cr_assert_eq(pd_fetch(cl, ids, 6, 60000, res, NULL, NULL), 6, "%s", pd_client_error(cl));
    pd_results_clear(res, 6);
    char want[64];
    snprintf(want, sizeof want, "[%llu, %llu]", (unsigned long long) ids[3],
             (unsigned long long) ids[1]);
    s_wait_for("/api/batches", "sorted([f[\"id\"] for f in d[\"failed\"]], reverse=True)", want);
    cr_assert_str_eq(s_py("/api/batches",
                          "all(f[\"fn\"] == \"checked\" and isinstance(f[\"owner\"], str) and "
                          "f[\"error\"][\"code\"] == \"PD_ETASK\" and "
                          "\"non-negative\" in f[\"error\"][\"msg\"] and "
                          "f[\"error\"][\"host\"] and isinstance(f[\"error\"][\"slot\"], int) "
                          "for f in d[\"failed\"])"),
                     "True");
}

/* playdoh-submit --local N --http PORT opens the dashboard of its embedded
   cluster while the command runs, and says where; without --local, --http
   is refused with the reason. */
Test(web, the_local_cluster_of_the_cli_opens_its_dashboard)
{
    char dir[] = "/tmp/playdoh-web-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof path, "%s/slow.c", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(MODULE_SRC, f);
    fclose(f);
    const char *submit = pd_harness_program("playdoh-submit");
    char *out = NULL;
    int rc = pd_harness_run(
        &out,
        "cd %s && seq 1 40 > args && { %s --local 1 --http %d map slow.c slow_square args "
        ">res 2>err & pid=$!; up=1; for i in $(seq 1 150); do python3 -c 'import urllib.request "
        "as u; u.urlopen(\"http://127.0.0.1:%d/api/cluster\", timeout=2)' 2>/dev/null && "
        "{ up=0; break; }; sleep 0.1; done; wait $pid; st=$?; echo up=$up st=$st "
        "lines=$(wc -l <res); grep -c 'dashboard of the local cluster at http://127.0.0.1:%d/' "
        "err; }",
        dir, submit, port, port, port);
    cr_assert_str_eq(out, "up=0 st=0 lines=40\n1\n", "%s", out ? out : "");
    cr_assert_eq(rc, 0);
    free(out);
    out = NULL;
    rc = pd_harness_run(&out, "%s -b tcp://127.0.0.1:9 --http %d cluster 2>&1; echo rc=$?",
                        submit, port);
    cr_assert(out && strstr(out, "--http opens the dashboard of a --local cluster") &&
                  strstr(out, "rc=") && !strstr(out, "rc=0"),
              "%s", out ? out : "");
    free(out);
    pd_harness_run(&out, "rm -rf %s", dir);
    free(out);
}
