/*  pd_probes: the broker's memory of which module functions load where; see
    pd_probes.h.

    One hash from "mod/cu/fn/platform" to an entry, and a count of the
    entries whose probe is out.
*/
#include "pd_probes.h"
#include "pd_error.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    pd_probe_state_t state; /* PD_PROBE_RUNNING or PD_PROBE_PROVEN */
    uint64_t probe;         /* running: the probe's job id */
} s_entry_t;

struct pd_probes {
    zhashx_t *entries; /* "mod/cu/fn/platform" -> s_entry_t (owned) */
    size_t running;    /* entries in state PD_PROBE_RUNNING */
};

static void s_entry_free(void **item)
{
    free(*item);
    *item = NULL;
}

pd_probes_t *pd_probes_new(void)
{
    pd_probes_t *p = calloc(1, sizeof *p);
    if (!p || !(p->entries = zhashx_new())) {
        free(p);
        return NULL;
    }
    zhashx_set_destructor(p->entries, s_entry_free);
    return p;
}

void pd_probes_destroy(pd_probes_t **p)
{
    if (!p || !*p)
        return;
    zhashx_destroy(&(*p)->entries);
    free(*p);
    *p = NULL;
}

static void s_key(char *key, size_t cap, uint32_t mod, uint32_t cu, uint32_t fn,
                  const char *platform)
{
    snprintf(key, cap, "%u/%u/%u/%s", mod, cu, fn, platform);
}

static s_entry_t *s_find(pd_probes_t *p, uint32_t mod, uint32_t cu, uint32_t fn,
                         const char *platform)
{
    char key[96];
    s_key(key, sizeof key, mod, cu, fn, platform);
    return zhashx_lookup(p->entries, key);
}

/* The entry of the pair, made (state NONE) when missing; NULL when out of
   memory. */
static s_entry_t *s_get(pd_probes_t *p, uint32_t mod, uint32_t cu, uint32_t fn,
                        const char *platform)
{
    s_entry_t *e = s_find(p, mod, cu, fn, platform);
    if (e)
        return e;
    if (zhashx_size(p->entries) >= PD_PROBES_MAX) {
        zhashx_purge(p->entries); /* each pair costs a probe again, nothing more */
        p->running = 0;
    }
    e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    char key[96];
    s_key(key, sizeof key, mod, cu, fn, platform);
    if (zhashx_insert(p->entries, key, e) != 0) {
        free(e);
        return NULL;
    }
    return e;
}

pd_probe_state_t pd_probes_get(pd_probes_t *p, uint32_t mod, uint32_t cu, uint32_t fn,
                               const char *platform, uint64_t *probe)
{
    s_entry_t *e = s_find(p, mod, cu, fn, platform);
    if (!e)
        return PD_PROBE_NONE;
    *probe = e->probe;
    return e->state;
}

int pd_probes_start(pd_probes_t *p, uint32_t mod, uint32_t cu, uint32_t fn,
                    const char *platform, uint64_t id)
{
    s_entry_t *e = s_get(p, mod, cu, fn, platform);
    if (!e)
        return PD_ENOMEM;
    p->running += e->state != PD_PROBE_RUNNING;
    e->state = PD_PROBE_RUNNING;
    e->probe = id;
    return 0;
}

void pd_probes_proven(pd_probes_t *p, uint32_t mod, uint32_t cu, uint32_t fn,
                      const char *platform)
{
    s_entry_t *e = s_get(p, mod, cu, fn, platform);
    if (!e)
        return; /* the next job probes again */
    p->running -= e->state == PD_PROBE_RUNNING;
    e->state = PD_PROBE_PROVEN;
}

void pd_probes_forget(pd_probes_t *p, uint32_t mod, uint32_t cu, uint32_t fn,
                      const char *platform)
{
    s_entry_t *e = s_find(p, mod, cu, fn, platform);
    if (!e)
        return;
    p->running -= e->state == PD_PROBE_RUNNING;
    char key[96];
    s_key(key, sizeof key, mod, cu, fn, platform);
    zhashx_delete(p->entries, key);
}

size_t pd_probes_count(const pd_probes_t *p) { return zhashx_size(p->entries); }
size_t pd_probes_running(const pd_probes_t *p) { return p->running; }

bool pd_probes_module_failure(int code) { return code == PD_ECOMPILE || code == PD_ENOFUNC; }
