/*  playdoh-keygen: CurveZMQ keys and trust for a Playdoh cluster.

    Every account that runs a broker, a worker or a client on a network has a
    key pair in its configuration directory (pd_auth_config_dir). The broker
    admits the public keys listed in its allow-list, each as worker, client,
    both or admin (a client that may act on other owners' jobs); workers and
    clients trust the broker's public key for its
    endpoint. This program writes those files (common/pd_auth.c); the broker
    notices allow-list changes by itself, without a restart.

        playdoh-keygen                      # a key pair for this account
        playdoh-keygen show                 # its public key, to give away
        playdoh-keygen allow KEY --role worker --name node7     (broker)
        playdoh-keygen trust tcp://lab:5555 BROKER-KEY          (workers, clients)

    Exit status: 0 done, 1 failed (the message says why), 2 bad usage.
*/
#include "pd_auth.h"
#include "pd_cli.h"
#include "pd_error.h"

#include <czmq.h>
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char *config_dir;  /* resolved configuration directory (owned) */
    const char *allow; /* allow-list directory, or NULL: CONFIG/allowed */
    const char *name;  /* --name */
    const char *role;  /* --role */
    bool force;        /* --force */
} s_opts_t;

static void s_usage(FILE *f)
{
    fprintf(f,
        "usage: playdoh-keygen [OPTIONS] [COMMAND [ARGS]]\n"
        "\n"
        "commands:\n"
        "  new                       create this account's key pair (the default command);\n"
        "                            --force replaces an existing one, --name NAME labels it\n"
        "  show                      print this account's public key (give it to the broker's\n"
        "                            administrator, or, on the broker, to every worker and client)\n"
        "  allow KEY|FILE --role R   on the broker: admit a public key (or a copied id.key file)\n"
        "                            as worker, client, both or admin; --name NAME labels it\n"
        "  revoke KEY|NAME           on the broker: remove a key from the allow-list\n"
        "  trust ENDPOINT KEY|FILE   on workers and clients: trust KEY as the broker at ENDPOINT\n"
        "                            (ENDPOINT * trusts it at any address, for discovery)\n"
        "  untrust ENDPOINT|KEY      forget a trusted broker\n"
        "  list                      print the allow-list and the trusted brokers\n"
        "\n"
        "options:\n"
        "  --config-dir DIR   where keys live (default: $PLAYDOH_CONFIG_DIR, else\n"
        "                     $XDG_CONFIG_HOME/playdoh, else ~/.config/playdoh)\n"
        "  --allow-dir DIR    the broker's allow-list (default: CONFIG/allowed)\n"
        "  --role R           worker, client, both, or admin: a client that may also see,\n"
        "                     fetch, cancel and release other owners' jobs (allow)\n"
        "  --name NAME        a label for the key (new, allow, trust)\n"
        "  --force            replace an existing key pair (new)\n"
        "  -h, --help         this help\n"
        "      --version      print the version and exit\n"
        "\n"
        "A running broker reads its allow-list again when it changes: allow and revoke\n"
        "take effect at once. See docs/security.md.\n");
}

static int s_usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "playdoh-keygen: ");
    fprintf(stderr, msg, arg);
    fprintf(stderr, "\n(run playdoh-keygen --help for usage)\n");
    return 2;
}

static void s_allow_dir(const s_opts_t *o, char *out, size_t cap)
{
    if (o->allow)
        snprintf(out, cap, "%s", o->allow);
    else
        snprintf(out, cap, "%s/allowed", o->config_dir);
}

static int s_new(const s_opts_t *o)
{
    pd_keypair_t k;
    char why[1024];
    if (pd_auth_keygen(o->config_dir, o->name, o->force, &k, why, sizeof why)) {
        fprintf(stderr, "playdoh-keygen: %s\n", why);
        return 1;
    }
    printf("%s\n", k.pub);
    char host[256] = "THIS-HOST";
    gethostname(host, sizeof host - 1);
    fprintf(stderr,
            "playdoh-keygen: created a key pair '%s' in %s (id.key and id.key_secret, readable "
            "only by you); its public key is printed above. Next:\n"
            "  - to run jobs or work for a broker, give the public key to the broker's "
            "administrator, who runs\n"
            "      playdoh-keygen allow '%s' --role client   (or worker, or both)\n"
            "  - if this account runs the broker, every worker and client trusts it with\n"
            "      playdoh-keygen trust tcp://%s:5555 '%s'\n",
            k.name, o->config_dir, k.pub, host, k.pub);
    return 0;
}

static int s_show(const s_opts_t *o)
{
    char path[4200], why[1024];
    snprintf(path, sizeof path, "%s/id.key", o->config_dir);
    pd_keypair_t k;
    if (pd_auth_key_load(path, false, &k, why, sizeof why)) {
        fprintf(stderr, "playdoh-keygen: %s\n", why);
        return 1;
    }
    printf("%s\n", k.pub);
    return 0;
}

static int s_allow(const s_opts_t *o, const char *arg)
{
    pd_role_t role;
    if (!o->role)
        return s_usage_error("%s", "allow needs --role worker, client, both or admin");
    if (pd_role_parse(o->role, &role))
        return s_usage_error("--role wants worker, client, both or admin, not '%s'", o->role);
    char key[PD_KEY_TXT], name[64], why[1024], dir[4200];
    if (pd_auth_key_from_arg(arg, key, name, sizeof name, why, sizeof why)) {
        fprintf(stderr, "playdoh-keygen: %s\n", why);
        return 2;
    }
    s_allow_dir(o, dir, sizeof dir);
    const char *label = o->name ? o->name : name[0] ? name : NULL;
    if (pd_auth_allow_add(dir, key, role, label, why, sizeof why)) {
        fprintf(stderr, "playdoh-keygen: %s\n", why);
        return 1;
    }
    fprintf(stderr, "playdoh-keygen: %s%s%s admitted as %s in %s (a running broker reads it at "
                    "once)\n", key, label ? " " : "", label ? label : "", pd_role_name(role), dir);
    return 0;
}

static int s_revoke(const s_opts_t *o, const char *what)
{
    char dir[4200], why[1024];
    s_allow_dir(o, dir, sizeof dir);
    int n = pd_auth_allow_remove(dir, what, why, sizeof why);
    if (n < 0) {
        fprintf(stderr, "playdoh-keygen: %s\n", why);
        return 1;
    }
    if (n == 0) {
        fprintf(stderr, "playdoh-keygen: no key or name '%s' in %s (see playdoh-keygen list)\n",
                what, dir);
        return 1;
    }
    fprintf(stderr, "playdoh-keygen: %d key%s removed from %s; a running broker refuses %s "
                    "from now on\n", n, n > 1 ? "s" : "", dir, n > 1 ? "them" : "it");
    return 0;
}

static int s_trust(const s_opts_t *o, const char *endpoint, const char *arg)
{
    char key[PD_KEY_TXT], name[64], why[1024];
    if (pd_auth_key_from_arg(arg, key, name, sizeof name, why, sizeof why)) {
        fprintf(stderr, "playdoh-keygen: %s\n", why);
        return 2;
    }
    const char *label = o->name ? o->name : name[0] ? name : NULL;
    if (pd_auth_trust_add(o->config_dir, endpoint, key, label, why, sizeof why)) {
        fprintf(stderr, "playdoh-keygen: %s\n", why);
        return 1;
    }
    fprintf(stderr, "playdoh-keygen: the broker at %s is trusted with key %s (%s/known_brokers)\n",
            endpoint, key, o->config_dir);
    return 0;
}

static int s_untrust(const s_opts_t *o, const char *what)
{
    char why[1024];
    int n = pd_auth_trust_remove(o->config_dir, what, why, sizeof why);
    if (n < 0) {
        fprintf(stderr, "playdoh-keygen: %s\n", why);
        return 1;
    }
    if (n == 0) {
        fprintf(stderr, "playdoh-keygen: no trusted broker '%s' (see playdoh-keygen list)\n", what);
        return 1;
    }
    fprintf(stderr, "playdoh-keygen: %d trusted broker line%s removed\n", n, n > 1 ? "s" : "");
    return 0;
}

static int s_list(const s_opts_t *o)
{
    char dir[4200], path[4600];
    s_allow_dir(o, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/id.key", o->config_dir);
    pd_keypair_t k;
    if (pd_auth_key_load(path, false, &k, NULL, 0) == 0)
        printf("this account: %s %s\n", k.pub, k.name);
    else
        printf("this account: no key pair (run playdoh-keygen)\n");
    printf("allow-list %s:\n", dir);
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    while (d && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || (l > 7 && strcmp(de->d_name + l - 7, "_secret") == 0))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        zcert_t *cert = strlen(path) < 240 ? zcert_load(path) : NULL;
        if (!cert)
            continue;
        const char *role = zcert_meta(cert, "role"), *name = zcert_meta(cert, "name");
        printf("  %s %-6s %s\n", zcert_public_txt(cert), role ? role : "(none)",
               name ? name : de->d_name);
        zcert_destroy(&cert);
        n++;
    }
    if (d)
        closedir(d);
    if (!n)
        printf("  (empty)\n");
    printf("trusted brokers (%s/known_brokers):\n", o->config_dir);
    snprintf(path, sizeof path, "%s/known_brokers", o->config_dir);
    FILE *f = fopen(path, "r");
    char line[1024];
    n = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *p = line + strspn(line, " \t");
        if (*p == '#' || *p == '\n' || !*p)
            continue;
        printf("  %s", p);
        n++;
    }
    if (f)
        fclose(f);
    if (!n)
        printf("  (none)\n");
    return 0;
}

int main(int argc, char **argv)
{
    s_opts_t o = {0};
    const char *config = NULL;
    enum { O_CONFIG = 256, O_ALLOW, O_ROLE, O_NAME, O_FORCE, O_VERSION };
    static const struct option longs[] = {
        {"config-dir", required_argument, NULL, O_CONFIG},
        {"allow-dir", required_argument, NULL, O_ALLOW},
        {"role", required_argument, NULL, O_ROLE},
        {"name", required_argument, NULL, O_NAME},
        {"force", no_argument, NULL, O_FORCE},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0}};
    /* A public key may begin with '-' (a Z85 character): such arguments are
       moved behind "--", in their order, so that getopt never reads one as
       options ("trust EP KEY" and "allow KEY" name the key last). */
    char *av[64];
    if (argc < 62) {
        int k = 0, keys = 0;
        for (int i = 0; i < argc; i++)
            if (i == 0 || argv[i][0] != '-' || !pd_auth_key_valid(argv[i]))
                av[k++] = argv[i];
        for (int i = 1; i < argc; i++)
            if (argv[i][0] == '-' && pd_auth_key_valid(argv[i])) {
                if (keys++ == 0)
                    av[k++] = "--";
                av[k++] = argv[i];
            }
        av[k] = NULL;
        argc = k;
        argv = av;
    }
    int ch;
    /* Options may follow the command ("allow KEY --role worker"). */
    opterr = 0; /* pd_cli says it */
    while ((ch = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        switch (ch) {
        case O_CONFIG: config = optarg; break;
        case O_ALLOW: o.allow = optarg; break;
        case O_ROLE: o.role = optarg; break;
        case O_NAME: o.name = optarg; break;
        case O_FORCE: o.force = true; break;
        case 'h': s_usage(stdout); return 0;
        case O_VERSION: pd_cli_version("playdoh-keygen"); return 0;
        default:
            pd_cli_option_error("playdoh-keygen", "playdoh-keygen", argv[optind - 1], optopt,
                                ch == ':');
            return 2;
        }
    }
    o.config_dir = config ? strdup(config) : pd_auth_config_dir();
    if (!o.config_dir)
        return s_usage_error("%s", "HOME is not set: give --config-dir DIR");
    const char *cmd = optind < argc ? argv[optind] : "new";
    int nargs = optind < argc ? argc - optind - 1 : 0;
    char **args = argv + optind + 1;
    int rc;
    if (strcmp(cmd, "new") == 0 && nargs == 0)
        rc = s_new(&o);
    else if (strcmp(cmd, "show") == 0 && nargs == 0)
        rc = s_show(&o);
    else if (strcmp(cmd, "allow") == 0 && nargs == 1)
        rc = s_allow(&o, args[0]);
    else if (strcmp(cmd, "revoke") == 0 && nargs == 1)
        rc = s_revoke(&o, args[0]);
    else if (strcmp(cmd, "trust") == 0 && nargs == 2)
        rc = s_trust(&o, args[0], args[1]);
    else if (strcmp(cmd, "untrust") == 0 && nargs == 1)
        rc = s_untrust(&o, args[0]);
    else if (strcmp(cmd, "list") == 0 && nargs == 0)
        rc = s_list(&o);
    else {
        static const char *const cmds[] = {"new", "show", "allow", "revoke", "trust", "untrust",
                                           "list", NULL};
        const char *guess = pd_cli_nearest(cmd, cmds);
        if (guess)
            fprintf(stderr, "playdoh-keygen: unknown command '%s': did you mean '%s'?\n"
                    "(run playdoh-keygen --help for usage)\n", cmd, guess);
        else
            s_usage_error("'%s' is not a command with that many arguments (new, show, allow KEY, "
                          "revoke KEY, trust ENDPOINT KEY, untrust WHAT, list)", cmd);
        rc = 2;
    }
    free(o.config_dir);
    return rc;
}
