#!/usr/bin/env bash
# A Monte-Carlo estimate of pi on a Playdoh cluster, from the shell:
# JOBS jobs of DARTS darts each (examples/pi.c), their counts summed here.
#   bash examples/pi.sh [JOBS (20)] [DARTS (1000000)]
# Runs on an embedded cluster of 2 slots unless PLAYDOH_BROKER is set;
# PLAYDOH_SUBMIT names the playdoh-submit program (default: from PATH).
set -euo pipefail
cd "$(dirname "$0")"
JOBS=${1:-20}
DARTS=${2:-1000000}
SUBMIT=${PLAYDOH_SUBMIT:-playdoh-submit}
WHERE=(--local 2)
[ -n "${PLAYDOH_BROKER:-}" ] && WHERE=()
seq 1 "$JOBS" | awk -v n="$DARTS" '{ printf "[%d, %d]\n", $1, n }' |
    "$SUBMIT" "${WHERE[@]}" map pi.c darts |
    awk -v jobs="$JOBS" -v n="$DARTS" '
        { inside += $1 }
        END { printf "pi ~ %.6f from %d darts in %d jobs\n", 4 * inside / (jobs * n), jobs * n, jobs }'
