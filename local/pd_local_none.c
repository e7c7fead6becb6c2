/*  The embedded local cluster on a build without a broker (Windows:
    playdoh-broker runs on Linux; docs/windows.md). The calls exist so that
    programs link on every platform; each refuses with a sentence that says
    what to do instead. (Slurm's stand-in is client/pd_slurm_none.c.)
*/
#include "pd_error.h"
#include "pd_log.h"
#include "playdoh.h"

#include <stdio.h>

#define S_NO_LOCAL "no local cluster on this platform: playdoh-broker runs on Linux. Start a " \
                   "broker on a Linux machine and pass its endpoint (-b tcp://HOST:5555, or " \
                   "[client] broker in the configuration file)"

static pd_local_t *s_refuse(int *err)
{
    pd_log_error("%s", S_NO_LOCAL);
    if (err)
        *err = PD_EUNREACH;
    return NULL;
}

pd_local_t *pd_local_start(int cpus, int *err)
{
    (void) cpus;
    return s_refuse(err);
}

pd_local_t *pd_local_start_opts(const pd_local_opts_t *opts, int *err)
{
    if (opts && opts->why && opts->whycap)
        snprintf(opts->why, opts->whycap, "%s", S_NO_LOCAL);
    return s_refuse(err);
}

const char *pd_local_endpoint(const pd_local_t *l)
{
    (void) l;
    return "";
}

const pd_client_opts_t *pd_local_client_opts(const pd_local_t *l)
{
    (void) l;
    return NULL;
}

void pd_local_stop(pd_local_t **l)
{
    if (l)
        *l = NULL;
}
