/*  fuzz_worker: libFuzzer harness for the worker's handling of what a
    broker sends (pd_worker_on_message: run, mod, shr, cancel, reset,
    welcome, hb, error, and a synchronous task's node_start, node_peers,
    node_go, node_abort), under each of the three code policies. Three workers are
    made once, each with one real slot process (this program exec'ed with
    --slot, which LLVMFuzzerInitialize hands to pd_slot_main); jobs are
    queued, refused or failed but never reach the idle slots, since only
    the worker's loop dispatches. After each input a `reset` empties the
    queues and stops any node process a node_start began, so an input
    always meets the same workers.

    An input: [policy: 1 byte] then up to 32 messages, each
        [length: 2 bytes, little-endian] [frame: length bytes]
    policy % 3 picks the worker: any, clients (lists the seed corpus's
    client key), installed (lists the seed module's hash). */
#include "pd_codec.h"
#include "pd_log.h"
#include "pd_proto.h"
#include "pd_nodeproc.h"
#include "pd_slot.h"
#include "pd_worker.h"
#include "fuzz_seeds.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pd_worker_t *s_workers[3];
static char s_dir[64]; /* the workers' cache and lists, removed at exit */
static uint8_t s_reset[16];
static size_t s_reset_len;


static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove(path);
}

static void s_cleanup(void)
{
    for (int i = 0; i < 3; i++)
        pd_worker_destroy(&s_workers[i]);
    nftw(s_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (pd_slot_is_child(*argc, *argv))
        exit(pd_slot_main(*argc, *argv));
    if (pd_nodeproc_is_child(*argc, *argv))
        exit(pd_nodeproc_main(*argc, *argv));
    /* PD_FUZZ_LOG=debug shows what an input does (triage). */
    pd_log_level_t level = PD_LOG_ERROR;
    if (getenv("PD_FUZZ_LOG"))
        pd_log_parse_level(getenv("PD_FUZZ_LOG"), &level);
    pd_log_set_level(level);
    char *dir = s_dir;
    snprintf(s_dir, sizeof s_dir, "/tmp/pd-fuzz-worker-XXXXXX");
    if (!mkdtemp(s_dir))
        abort();
    char clients[128], modules[128];
    snprintf(clients, sizeof clients, "%s/code-clients", dir);
    snprintf(modules, sizeof modules, "%s/code-modules", dir);
    FILE *f = fopen(clients, "w");
    fprintf(f, "%s\n", PD_FUZZ_KEY_CLIENT);
    fclose(f);
    f = fopen(modules, "w");
    unsigned char h[crypto_hash_sha256_BYTES];
    char hex[65];
    crypto_hash_sha256(h, (const unsigned char *) PD_FUZZ_MODULE_SRC, strlen(PD_FUZZ_MODULE_SRC));
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    fprintf(f, "%s\n", hex); /* the seed module counts as installed */
    fclose(f);
    static const pd_policy_mode_t modes[3] = {PD_POLICY_ANY, PD_POLICY_CLIENTS,
                                              PD_POLICY_INSTALLED};
    const char *lists[3] = {NULL, clients, modules};
    for (int i = 0; i < 3; i++) {
        pd_worker_config_t cfg = {.broker = "tcp://127.0.0.1:9", .cpus = 1, .cache_dir = dir,
                                  .heartbeat_ms = 1000, .name = "fuzzhost",
                                  .slot_exe = "/proc/self/exe", .log_level = "error",
                                  .security = PD_SEC_NONE, .code_policy = modes[i],
                                  .code_list = lists[i]};
        int err = 0;
        if (!(s_workers[i] = pd_worker_new(&cfg, &err))) {
            fprintf(stderr, "fuzz_worker: no worker %d: %d\n", i, err);
            abort();
        }
    }
    /* Registered after the workers' first CZMQ actor, so that it runs
       before CZMQ's own exit handler closes the actors' sockets. */
    atexit(s_cleanup);
    pd_buf_t b;
    pd_buf_init(&b);
    msgpack_packer pk;
    pd_packer_init(&pk, &b);
    pd_m_reset_encode(&pk, &(pd_m_reset_t){0});
    memcpy(s_reset, b.data, b.len);
    s_reset_len = b.len;
    pd_buf_free(&b);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    pd_worker_t *w = s_workers[data[0] % 3];
    size_t off = 1;
    for (int i = 0; i < 32 && size - off >= 2; i++) {
        size_t len = (size_t) data[off] | (size_t) data[off + 1] << 8;
        off += 2;
        if (len > size - off)
            len = size - off;
        pd_worker_on_message(w, data + off, len);
        off += len;
    }
    pd_worker_on_message(w, s_reset, s_reset_len);
    if (pd_worker_queued(w) != 0)
        abort(); /* reset must empty the queue */
    return 0;
}
