/*  pd_limits: what one job may take (memory, CPU time, output), as the
    submitter asks it and as a machine's owner allows it.

    A submit carries a request (`playdoh-submit map --memory 2G --cpu-time
    60s --max-output 1M`, pd_map_opts_t); a worker advertises its owner's
    maxima in `ready` ([worker] max_memory, max_cpu_time, max_output); the
    broker places a job only on a worker whose maxima hold its request
    (pd_limits_fit); the worker applies the request, or its owner's default
    where the job asked nothing, to the slot process that runs the job. A
    field of 0 means "not asked" in a request and "no maximum" in a
    worker's maxima. The meaning of each limit and how it is enforced is in
    docs/worker.md ("What a job may take").

    Sizes are written "2G", "512M", "64k", "1.5G" or plain bytes (binary
    units: K = 1024); times "60s", "5m", "2h", "1d" or plain seconds.
*/
#ifndef PD_LIMITS_H
#define PD_LIMITS_H

#include "pd_codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_LIMITS_MAX_OUTPUT (64u << 20)  /* the largest output cap a job may ask */
#define PD_LIMITS_DEFAULT_OUTPUT (4u << 20) /* a worker's default output cap */

typedef struct {
    uint64_t memory; /* bytes of resident memory (the job's processes together); 0: none */
    uint64_t cpu_s;  /* seconds of CPU time (per process); 0: none */
    uint64_t output; /* bytes of standard output and error kept (each stream); 0: none
                        asked (the worker's default) */
} pd_limits_t;

/* True when no field is set. */
bool pd_limits_none(const pd_limits_t *l);
/* Parses a size ("2G", "512M", "64k", "1.5G", "1000"; suffixes K M G T,
   any case, an optional "B" or "iB" after them). Returns 0, or PD_EINVAL
   for anything else, 0, or a value over 2^60. */
int pd_limits_parse_size(const char *s, uint64_t *out);
/* Parses a duration in seconds ("60s", "5m", "2h", "1d", "90"; whole
   numbers). Returns 0, or PD_EINVAL (also for 0 and over 10 years). */
int pd_limits_parse_seconds(const char *s, uint64_t *out);
/* "2 GiB", "1.5 MiB", "300 bytes": a size for a person. Returns out. */
const char *pd_limits_size_str(uint64_t bytes, char *out, size_t cap);
/* True when every limit req asks is at most what max allows (a 0 in max
   allows anything). When it does not fit and why is not NULL, why gets
   the first that does not: "memory 2 GiB, where at most 1 GiB is allowed". */
bool pd_limits_fit(const pd_limits_t *req, const pd_limits_t *max, char *why, size_t cap);
/* What a job gets on a worker: each field asked by req, else the owner's
   default dflt. */
pd_limits_t pd_limits_apply(const pd_limits_t *req, const pd_limits_t *dflt);

/* Packs the set fields as a map {memory, cpu_time, max_output} (an empty
   map when none is set). */
void pd_limits_pack(msgpack_packer *pk, const pd_limits_t *l);
/* Reads such a map (unknown keys skipped). Returns 0 or PD_EPROTO. */
int pd_limits_read(pd_rd_t *r, pd_limits_t *l);

#endif
