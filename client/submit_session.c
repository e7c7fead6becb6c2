/*  playdoh-submit: the session. Finds the broker (--broker,
    $PLAYDOH_BROKER, the configuration file, a beacon of the cluster, else
    the loopback default) or starts the embedded cluster of --local,
    connects once for the whole command, and uploads the module and CUDA
    kernels a verb names, saying what went wrong in the user's terms.
*/
#include "submit.h"
#include "pd_plat.h"

#include "pd_auth.h"
#include "pd_beacon.h"
#include "pd_config.h"
#include "pd_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_LOOPBACK_CONNECT_MS 500 /* the wait for the loopback default broker's welcome */

/* ---- session ------------------------------------------------------------- */

/* Where the broker is: --broker, $PLAYDOH_BROKER, [submit] broker, a beacon
   of the cluster (with CurveZMQ, only one whose key this account trusts),
   else tcp://127.0.0.1:5555; and the security settings of [submit] where
   flags did not set them. Returns 0, 2 (bad file) or 3 (only untrusted
   brokers answered: the command to trust one is printed). */
static int s_find_broker(pd_submit_opts_t *o, char *ep, size_t cap)
{
    pd_config_t *cf = pd_config_new();
    char why[1024];
    if (!cf || pd_config_load_default(cf, o->config, why, sizeof why)) {
        fprintf(stderr, "playdoh-submit: %s\n", cf ? why : "out of memory");
        pd_config_destroy(&cf);
        return 2;
    }
    /* Security: flags win over [submit] (values checked at load time). */
    if (o->conn.security == PD_SECURITY_AUTO) {
        pd_sec_mode_t m = PD_SEC_AUTO;
        pd_auth_mode_parse(pd_config_str(cf, "submit", "security", "auto"), &m);
        o->conn.security = (pd_security_t) m;
    }
    if (!o->conn.key_file && pd_config_has(cf, "submit", "key")) {
        snprintf(o->conf_key, sizeof o->conf_key, "%s", pd_config_str(cf, "submit", "key", ""));
        o->conn.key_file = o->conf_key;
    }
    if (!o->conn.broker_key && pd_config_has(cf, "submit", "broker_key")) {
        snprintf(o->conf_bkey, sizeof o->conf_bkey, "%s",
                 pd_config_str(cf, "submit", "broker_key", ""));
        o->conn.broker_key = o->conf_bkey;
    }
    const char *env = getenv("PLAYDOH_BROKER");
    if (o->broker || (env && *env)) {
        snprintf(ep, cap, "%s", o->broker ? o->broker : env);
        pd_config_destroy(&cf);
        return 0;
    }
    const char *conf = pd_config_str(cf, "submit", "broker", "");
    if (pd_config_has(cf, "submit", "timeout_ms"))
        o->timeout_req_ms = (int) pd_config_uint(cf, "submit", "timeout_ms", 30000);
    if (conf[0]) {
        snprintf(ep, cap, "%s", conf);
        pd_config_destroy(&cf);
        return 0;
    }
    const char *cluster = o->cluster ? o->cluster
                                     : pd_config_str(cf, "cluster", "name",
                                                     PD_BEACON_DEFAULT_CLUSTER);
    int port = (int) pd_config_uint(cf, "cluster", "beacon_port", PD_BEACON_DEFAULT_PORT);
    int wait = (int) pd_config_uint(cf, "cluster", "discover_timeout_ms",
                                    PD_BEACON_DEFAULT_DISCOVER_MS);
    const char *iface = pd_config_str(cf, "cluster", "beacon_interface", NULL);
    /* With CurveZMQ only a broker whose key this account trusts will do: a
       forged beacon leads nowhere (beacons of untrusted brokers are skipped). */
    bool secure = o->conn.security != PD_SECURITY_NONE && !o->conn.broker_key;
    char key[PD_KEY_TXT] = "";
    int rc = port ? pd_discover_broker(cluster, port, iface, wait,
                                       secure ? (o->conn.config_dir ? o->conn.config_dir : "")
                                              : NULL,
                                       ep, cap, key)
                  : PD_ETIMEDOUT;
    if (rc == PD_ENOTRUSTED) {
        pd_auth_trust_hint(ep, key[0] ? key : NULL, why, sizeof why);
        fprintf(stderr, "playdoh-submit: the only broker of cluster '%s' heard: %s\n", cluster,
                why);
        pd_config_destroy(&cf);
        return 3;
    }
    if (rc) {
        /* A broker on this machine answers a hello in milliseconds: a short
           wait, so that a forgotten --local is said within 3 s in all. */
        snprintf(ep, cap, "tcp://127.0.0.1:5555");
        pd_log_info("no beacon of cluster '%s' heard on UDP port %d within %d ms (%s); trying %s",
                    cluster, port, wait, pd_strerror(rc), ep);
        o->default_broker = true;
        if (port)
            snprintf(o->discovered, sizeof o->discovered,
                     "no beacon of cluster '%s' heard on UDP port %d within %d ms", cluster, port,
                     wait);
        else
            snprintf(o->discovered, sizeof o->discovered, "beacons are off ([cluster] "
                     "beacon_port = 0)");
        const char *env = getenv("PLAYDOH_CONNECT_TIMEOUT_MS");
        if (o->conn.connect_timeout_ms <= 0 && !(env && atoi(env) > 0))
            o->conn.connect_timeout_ms = S_LOOPBACK_CONNECT_MS;
    } else if (secure && key[0]) {
        snprintf(o->conf_bkey, sizeof o->conf_bkey, "%s", key);
        o->conn.broker_key = o->conf_bkey;
    }
    pd_config_destroy(&cf);
    return 0;
}


pd_client_t *pd_submit_connect(pd_submit_t *s)
{
    if (s->c)
        return s->c;
    int err = 0;
    char found[300];
    const char *ep = s->o.broker;
    if (s->o.local) {
        if (ep) {
            pd_submit_usage_error(s, "--local and --broker exclude each other");
            return NULL;
        }
        char why[3072] = "", http[32] = "";
        if (s->o.http)
            snprintf(http, sizeof http, "127.0.0.1:%d", s->o.http);
        pd_local_opts_t lo = {.cpus = s->o.local, .why = why, .whycap = sizeof why,
                              .http = s->o.http ? http : NULL};
        s->local = pd_local_start_opts(&lo, &err);
        if (!s->local) {
            fprintf(stderr, "playdoh-submit: could not start the local cluster: %s\n",
                    why[0] ? why : pd_strerror(err));
            return NULL;
        }
        ep = pd_local_endpoint(s->local);
        if (s->o.http && !s->o.quiet)
            fprintf(stderr, "playdoh-submit: dashboard of the local cluster at http://%s/\n",
                    http);
    } else {
        if (s_find_broker(&s->o, found, sizeof found))
            return NULL;
        ep = found;
    }
    char why[2048] = "";
    pd_client_opts_t conn = s->local ? *pd_local_client_opts(s->local) : s->o.conn;
    conn.why = why;
    conn.whycap = sizeof why;
    s->c = pd_client_open(ep, &conn, &err);
    if (s->c && s->o.timeout_req_ms > 0)
        pd_client_set_timeout(s->c, s->o.timeout_req_ms);
    if (!s->c && err == PD_EUNREACH && s->o.default_broker) {
        const char *verb = s->o.verb ? s->o.verb : "map";
        bool runs = strcmp(verb, "map") == 0 || strcmp(verb, "exec") == 0 ||
                    strcmp(verb, "task") == 0 || strcmp(verb, "optimize") == 0;
        fprintf(stderr,
                "playdoh-submit: no broker found: none named (--broker, PLAYDOH_BROKER, [submit] "
                "broker), %s, and none answers at %s. To run on this machine alone, add "
                "--local N (an embedded cluster of N slots%s%s%s); to use a cluster, start "
                "playdoh-broker or give its endpoint with --broker\n", s->o.discovered, ep,
                runs ? ", e.g. playdoh-submit --local 4 " : "", runs ? verb : "",
                runs ? " ..." : "");
    } else if (!s->c)
        fprintf(stderr, "playdoh-submit: %s\n", why[0] ? why : pd_strerror(err));
    return s->c;
}

bool pd_submit_progress_wanted(const pd_submit_t *s)
{
    return !s->o.quiet && !s->o.no_progress && isatty(STDERR_FILENO);
}

/* Uploads MODULE: one file, or "a.c,b.c,util.h,-lm,-O3" (files and flags
   separated by commas) as a module of several files. */
static int s_upload_module(pd_client_t *c, const char *spec, char hash[PD_HASH_HEX])
{
    if (!strchr(spec, ','))
        return pd_module_upload_file(c, spec, hash);
    char *copy = strdup(spec);
    size_t n = 1;
    for (const char *p = spec; *p; p++)
        n += *p == ',';
    const char **files = calloc(n, sizeof *files), **flags = calloc(n, sizeof *flags);
    int rc = PD_ENOMEM;
    if (copy && files && flags) {
        size_t nfiles = 0, nflags = 0;
        char *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (t[0] == '-')
                flags[nflags++] = t;
            else
                files[nfiles++] = t;
        }
        rc = pd_module_upload_files(c, files, nfiles, flags, nflags, hash);
    }
    free(copy);
    free(files);
    free(flags);
    return rc;
}

int pd_submit_upload_module(pd_submit_t *s, const char *spec, char hash[PD_HASH_HEX])
{
    int rc = s_upload_module(s->c, spec, hash);
    if (rc == 0)
        return 0;
    fprintf(stderr, "playdoh-submit: %s: %s\n", s->o.verb,
            rc == PD_ENOMEM ? "out of memory" : pd_client_error(s->c));
    return rc == PD_EIO || rc == PD_EINVAL || rc == PD_ETOOBIG ? 2 : 3;
}

int pd_submit_upload_cuda(pd_submit_t *s, const char *module, char hash[PD_HASH_HEX], bool *has)
{
    *has = false;
    char beside[4096];
    const char *cuda = s->o.cuda;
    size_t ml = strlen(module);
    if (!cuda && s->o.gpu && ml > 2 && strcmp(module + ml - 2, ".c") == 0 &&
        ml + 2 < sizeof beside) {
        snprintf(beside, sizeof beside, "%.*s.cu", (int) (ml - 2), module);
        if (access(beside, R_OK) == 0) {
            cuda = beside;
            pd_log_info("shipping %s with the %s (the kernels beside %s)", beside,
                        strcmp(s->o.verb, "map") == 0 ? "jobs" : "nodes", module);
        }
    }
    if (!cuda)
        return 0;
    size_t cl = strlen(cuda);
    if (cl < 3 || strcmp(cuda + cl - 3, ".cu") != 0) {
        fprintf(stderr, "playdoh-submit: %s: --cuda wants a CUDA source file ending in .cu, "
                        "not '%s'\n", s->o.verb, cuda);
        return 2;
    }
    int rc = pd_module_upload_file(s->c, cuda, hash);
    if (rc) {
        fprintf(stderr, "playdoh-submit: %s: %s\n", s->o.verb, pd_client_error(s->c));
        return rc == PD_EIO || rc == PD_EINVAL || rc == PD_ETOOBIG ? 2 : 3;
    }
    *has = true;
    return 0;
}

int pd_submit_upload_code(pd_submit_t *s, const char *module, char hash[PD_HASH_HEX],
                          char cuda_hash[PD_HASH_HEX], bool *cuda)
{
    *cuda = false;
    int rc = pd_submit_upload_module(s, module, hash);
    return rc ? rc : pd_submit_upload_cuda(s, module, cuda_hash, cuda);
}
