/*  bench_shared: a map over a large read-only array, with shared data
    (sent once per machine, mapped by every slot) against the same data
    carried in every job's argument, in the same run.

    A broker runs in this process (so that its byte counters can be read:
    pd_broker_stats) and one playdoh-worker process joins it over TCP
    loopback, as a worker on another machine would. Each job sums its slice
    (1/JOBS) of an array of doubles of MB megabytes. With sharing, all JOBS
    jobs run. Without, each job's argument is [slice, jobs, the whole
    array]: a few jobs run, a wave of SLOTS at a time (more would hold
    gigabytes at once), and the time and bytes are projected to JOBS jobs.
    The memory of the worker's machine (the worker process and its slot
    processes, from /proc/PID/smaps_rollup) is read at the end of each run.

    Usage: bench_shared [MB (100)] [JOBS (1000)] [UNSHARED_JOBS (10)] [SLOTS (2)]
*/
#include "bench_util.h"

#include "pd_broker.h"
#include "pd_codec.h"
#include "pd_log.h"
#include "pd_proc.h"
#include "playdoh.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *SRC =
    "#include <playdoh_task.h>\n"
    "/* [slice, slices] with shared data, or [slice, slices, bin]: the sum of\n"
    "   that slice of the doubles */\n"
    "PD_TASK(slice_sum, t) {\n"
    "    pd_value_t v = pd_arg(t);\n"
    "    size_t n; int64_t j, k;\n"
    "    if (pd_val_array(&v, &n) || n < 2 || pd_val_int(&v, &j) || pd_val_int(&v, &k))\n"
    "        return pd_task_fail(t, \"want [slice, slices, data?]\");\n"
    "    const void *p; size_t len;\n"
    "    if (n == 3) { if (pd_val_bin(&v, &p, &len)) return pd_task_fail(t, \"bad data\"); }\n"
    "    else if (!(p = pd_task_shared(t, &len))) return pd_task_fail(t, \"no shared data\");\n"
    "    const double *x = p; size_t m = len / sizeof *x, a = m * j / k, b = m * (j + 1) / k;\n"
    "    double s = 0; for (size_t i = a; i < b; i++) s += x[i];\n"
    "    return pd_out_double(t, s);\n"
    "}\n";

typedef struct {
    pd_broker_t *broker;  /* in this process */
    pthread_t thread;     /* running its loop */
    pid_t worker;         /* the playdoh-worker process */
    char cache[64];       /* its module cache */
    pd_client_t *c;       /* our client */
    char mod[PD_HASH_HEX];/* the module */
} s_cluster_t;

static void *s_loop(void *arg)
{
    pd_broker_run(arg);
    return NULL;
}

static int s_start(s_cluster_t *k, int slots, const char *module_path)
{
    memset(k, 0, sizeof *k);
    pd_broker_config_t cfg;
    pd_broker_config_defaults(&cfg);
    cfg.bind = "tcp://127.0.0.1:*";
    cfg.beacon = false;
    cfg.max_shared = 250ull << 20;
    cfg.shared_store = 250ull << 20;
    int err;
    k->broker = pd_broker_new(&cfg, &err);
    if (!k->broker || pthread_create(&k->thread, NULL, s_loop, k->broker))
        return 1;
    char worker[4096], cpus[16];
    if (pd_proc_find("playdoh-worker", worker, sizeof worker)) {
        fprintf(stderr, "playdoh-worker not found: set PLAYDOH_BINDIR\n");
        return 1;
    }
    snprintf(k->cache, sizeof k->cache, "/tmp/playdoh-bench-XXXXXX");
    if (!mkdtemp(k->cache))
        return 1;
    snprintf(cpus, sizeof cpus, "%d", slots);
    char *argv[] = {worker, "--broker", (char *) pd_broker_endpoint(k->broker), "--cpus", cpus,
                    "--cache", k->cache, "--control", "none", "--log-level", "warn", NULL};
    k->worker = pd_proc_spawn(argv, NULL);
    k->c = pd_client_new(pd_broker_endpoint(k->broker), &err);
    int w = 0, s = 0;
    for (int i = 0; k->c && i < 400 && s < slots; i++) {
        pd_client_cluster_size(k->c, &w, &s);
        if (s < slots)
            usleep(50000);
    }
    if (!k->c || s < slots || pd_module_upload_file(k->c, module_path, k->mod)) {
        fprintf(stderr, "cluster did not start: %s\n", k->c ? pd_client_error(k->c) : "no client");
        return 1;
    }
    return 0;
}

static void s_stop(s_cluster_t *k, pd_broker_stats_t *st)
{
    pd_client_destroy(&k->c);
    pd_proc_stop(k->worker, 5000);
    pd_broker_stop(k->broker);
    pthread_join(k->thread, NULL);
    pd_broker_stats(k->broker, st);
    pd_broker_destroy(&k->broker);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", k->cache);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", k->cache);
}

/* The worker and its slot processes (its children). */
static void s_machine_memory(pid_t worker, bench_mem_t *w, bench_mem_t *slots, int *nslots)
{
    *w = bench_mem(worker);
    memset(slots, 0, sizeof *slots);
    *nslots = 0;
    char cmd[64];
    snprintf(cmd, sizeof cmd, "pgrep -P %d", (int) worker);
    FILE *p = popen(cmd, "r");
    int pid;
    while (p && fscanf(p, "%d", &pid) == 1) {
        bench_mem_t m = bench_mem(pid);
        slots->rss += m.rss;
        slots->pss += m.pss;
        slots->anon += m.anon;
        (*nslots)++;
    }
    if (p)
        pclose(p);
}

static double s_mb(uint64_t b) { return (double) b / 1e6; }

int main(int argc, char **argv)
{
    size_t mb = argc > 1 ? (size_t) atol(argv[1]) : 100;
    int jobs = argc > 2 ? atoi(argv[2]) : 1000;
    int unshared = argc > 3 ? atoi(argv[3]) : 10;
    int slots = argc > 4 ? atoi(argv[4]) : 2;
    pd_log_set_level(PD_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    /* Built in build/bench/: the programs are one level up. */
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (!getenv("PLAYDOH_BINDIR") && sl > 0) {
        self[sl] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            strcpy(slash, "/..");
            setenv("PLAYDOH_BINDIR", self, 1);
        }
    }
    char path[] = "/tmp/playdoh-bench-XXXXXX.c";
    int fd = mkstemps(path, 2);
    if (fd < 0 || write(fd, SRC, strlen(SRC)) != (ssize_t) strlen(SRC))
        return 1;
    close(fd);

    size_t n = mb * 1000000 / sizeof(double);
    size_t bytes = n * sizeof(double);
    double *x = malloc(bytes);
    double *sums = calloc((size_t) jobs, sizeof *sums);
    if (!x || !sums)
        return 1;
    for (size_t i = 0; i < n; i++)
        x[i] = (double) (i % 1000) / 7.0;
    for (int j = 0; j < jobs; j++)
        for (size_t i = n * (size_t) j / (size_t) jobs; i < n * (size_t) (j + 1) / (size_t) jobs; i++)
            sums[j] += x[i];
    printf("shared data: %.0f MB of doubles, %d jobs each summing 1/%d of it, 1 worker with %d "
           "slots over TCP loopback (%ld CPUs here)\n", s_mb(bytes), jobs, jobs, slots,
           sysconf(_SC_NPROCESSORS_ONLN));

    /* ---- with sharing: all jobs ---- */
    s_cluster_t k;
    pd_broker_stats_t st;
    if (s_start(&k, slots, path))
        return 1;
    pd_buf_t args;
    pd_buf_init(&args);
    args.max = (size_t) 600 << 20;
    msgpack_packer pk;
    pd_packer_init(&pk, &args);
    for (int j = 0; j < jobs; j++) {
        msgpack_pack_array(&pk, 2);
        msgpack_pack_int(&pk, j);
        msgpack_pack_int(&pk, jobs);
    }
    uint64_t *ids = calloc((size_t) jobs, sizeof *ids);
    pd_result_t *res = calloc((size_t) jobs, sizeof *res);
    double t0 = now();
    char shr[PD_HASH_HEX];
    if (pd_shared_upload(k.c, x, bytes, shr)) {
        fprintf(stderr, "upload: %s\n", pd_client_error(k.c));
        return 1;
    }
    double t_up = now() - t0;
    pd_map_opts_t o = {.shared = shr};
    if (pd_map(k.c, k.mod, "slice_sum", args.data, args.len, (size_t) jobs, &o, ids) != jobs ||
        pd_fetch(k.c, ids, (size_t) jobs, 600000, res, NULL, NULL) != jobs) {
        fprintf(stderr, "shared map: %s\n", pd_client_error(k.c));
        return 1;
    }
    double t_shared = now() - t0;
    int bad = 0;
    for (int j = 0; j < jobs; j++) {
        double y;
        bad += pd_result_double(&res[j], &y) || y != sums[j];
    }
    pd_results_clear(res, (size_t) jobs);
    bench_mem_t wm, sm;
    int ns;
    s_machine_memory(k.worker, &wm, &sm, &ns);
    s_stop(&k, &st);
    printf("with sharing:    %d jobs in %.2f s (upload %.2f s)%s\n", jobs, t_shared, t_up,
           bad ? "  WRONG RESULTS" : "");
    printf("                 bytes client->broker %.1f MB, broker->worker %.1f MB\n",
           s_mb(st.bytes_in), s_mb(st.bytes_out));
    printf("                 worker machine: %d slots Rss %.1f MB, Pss %.1f MB, anonymous %.1f MB; "
           "worker process Rss %.1f MB, anonymous %.1f MB; the file, once, in the page cache: "
           "%.1f MB\n", ns, sm.rss, sm.pss, sm.anon, wm.rss, wm.anon, s_mb(bytes));
    uint64_t sh_in = st.bytes_in, sh_out = st.bytes_out;

    /* ---- without sharing: a few jobs, SLOTS at a time ---- */
    if (s_start(&k, slots, path))
        return 1;
    unlink(path);
    double t_un = 0, t_pack = 0;
    int done = 0;
    bad = 0;
    bench_mem_t wm2 = {0, 0, 0}, sm2 = {0, 0, 0}, wmax = {0, 0, 0}, smax = {0, 0, 0};
    while (done < unshared) {
        int w = unshared - done < slots ? unshared - done : slots;
        double tp = now();
        pd_buf_reset(&args);
        for (int i = 0; i < w; i++) {
            msgpack_pack_array(&pk, 3);
            msgpack_pack_int(&pk, done + i);
            msgpack_pack_int(&pk, jobs);
            msgpack_pack_bin(&pk, bytes);
            msgpack_pack_bin_body(&pk, x, bytes);
        }
        if (args.failed) {
            fprintf(stderr, "cannot pack %d arguments of %zu bytes\n", w, bytes);
            return 1;
        }
        double tm = now();
        t_pack += tm - tp;
        if (pd_map(k.c, k.mod, "slice_sum", args.data, args.len, (size_t) w, NULL, ids) != w ||
            pd_fetch(k.c, ids, (size_t) w, 600000, res, NULL, NULL) != w) {
            fprintf(stderr, "unshared map: %s\n", pd_client_error(k.c));
            return 1;
        }
        t_un += now() - tm;
        for (int i = 0; i < w; i++) {
            double y;
            bad += pd_result_double(&res[i], &y) || y != sums[done + i];
        }
        pd_results_clear(res, (size_t) w);
        pd_release(k.c, ids, (size_t) w);
        done += w;
        /* The most seen after a wave: what a machine must hold. */
        s_machine_memory(k.worker, &wm2, &sm2, &ns);
        if (sm2.anon + wm2.anon > smax.anon + wmax.anon)
            smax = sm2, wmax = wm2;
    }
    sm2 = smax;
    wm2 = wmax;
    s_stop(&k, &st);
    double scale = (double) jobs / unshared;
    printf("without sharing: %d jobs in %.2f s (%.3f s per job; packing the arguments here took "
           "%.2f s more)%s\n", unshared, t_un, t_un / unshared, t_pack,
           bad ? "  WRONG RESULTS" : "");
    printf("                 bytes client->broker %.1f MB, broker->worker %.1f MB\n",
           s_mb(st.bytes_in), s_mb(st.bytes_out));
    printf("                 projected to %d jobs: %.0f s, client->broker %.1f GB, "
           "broker->worker %.1f GB\n", jobs, t_un * scale, s_mb(st.bytes_in) * scale / 1e3,
           s_mb(st.bytes_out) * scale / 1e3);
    printf("                 worker machine: %d slots Rss %.1f MB, Pss %.1f MB, anonymous %.1f MB; "
           "worker process Rss %.1f MB, anonymous %.1f MB\n", ns, sm2.rss, sm2.pss, sm2.anon,
           wm2.rss, wm2.anon);
    printf("sharing: %.0fx fewer bytes client->broker, %.0fx fewer broker->worker, wall time "
           "%.0fx shorter (projected); the worker machine's anonymous memory (slots + worker) "
           "%.1f MB instead of %.1f MB\n", (double) st.bytes_in * scale / (double) sh_in,
           (double) st.bytes_out * scale / (double) sh_out, t_un * scale / t_shared,
           sm.anon + wm.anon, sm2.anon + wm2.anon);
    pd_buf_free(&args);
    free(ids);
    free(res);
    free(x);
    free(sums);
    return bad ? 1 : 0;
}
