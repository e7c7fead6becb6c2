/*  pd_opts: the one merger of flags, configuration file and defaults
    (pd_opts.h). */
#include "pd_opts.h"

#include <string.h>

/* One number line: the flag (>= 0) when given, else the file, else the
   default dflt; in the units of flag and file (MiB for PD_OPT_MB). */
static uint64_t s_number(const pd_opt_t *o, const void *flags, const pd_config_t *cf,
                         uint64_t dflt)
{
    int64_t flag;
    memcpy(&flag, (const char *) flags + o->flag_at, sizeof flag);
    return flag >= 0 ? (uint64_t) flag : pd_config_uint(cf, o->section, o->key, dflt);
}

void pd_opts_merge(const pd_opt_t *table, size_t n, const void *flags, const pd_config_t *cf,
                   void *dest)
{
    for (size_t i = 0; i < n; i++) {
        const pd_opt_t *o = &table[i];
        char *at = (char *) dest + o->dest_at;
        switch (o->kind) {
        case PD_OPT_STR: {
            const char *flag, *now;
            memcpy(&flag, (const char *) flags + o->flag_at, sizeof flag);
            memcpy(&now, at, sizeof now);
            const char *v = flag ? flag : pd_config_str(cf, o->section, o->key, now);
            memcpy(at, &v, sizeof v);
            break;
        }
        case PD_OPT_U32: {
            uint32_t now;
            memcpy(&now, at, sizeof now);
            uint32_t v = (uint32_t) s_number(o, flags, cf, now);
            memcpy(at, &v, sizeof v);
            break;
        }
        case PD_OPT_INT: {
            int now;
            memcpy(&now, at, sizeof now);
            int v = (int) s_number(o, flags, cf, (uint64_t) now);
            memcpy(at, &v, sizeof v);
            break;
        }
        case PD_OPT_U64:
        case PD_OPT_MB: {
            unsigned shift = o->kind == PD_OPT_MB ? 20 : 0;
            uint64_t now;
            memcpy(&now, at, sizeof now);
            uint64_t v = s_number(o, flags, cf, now >> shift) << shift;
            memcpy(at, &v, sizeof v);
            break;
        }
        }
    }
}
