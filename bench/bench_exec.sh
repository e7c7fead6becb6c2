#!/usr/bin/env bash
# bench_exec: 200 shell commands of 10 ms CPU each on 2 slots, through
# `playdoh-submit exec --local 2` and through GNU parallel -j2, alternately in
# the same run; prints each wall time and the ratio of the medians (target:
# Playdoh at most 0.8x GNU parallel's time). Playdoh's time includes starting
# its embedded cluster, as a user's command would. It also prints the CPU
# time (user + system) of each whole process tree, commands included: on a
# machine shared with other work the wall time follows the load, while the
# CPU time says what each tool costs beyond the commands' own 2 s.
#
#   bash bench/bench_exec.sh [BUILD_DIR (build-release)] [JOBS (200)] [MS (10)] [ROUNDS (5)]
#
# Installs GNU parallel (Debian package `parallel`) when it is missing: it is
# needed by this benchmark only, never by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(cd "${1:-build-release}" && pwd)
JOBS=${2:-200}
MS=${3:-10}
ROUNDS=${4:-5}
if ! command -v parallel >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get install -y -q --no-install-recommends parallel >/dev/null
fi
mkdir -p ~/.parallel && touch ~/.parallel/will-cite # no citation notice
BURN=$BUILD/bench/burn
SUBMIT=$BUILD/playdoh-submit
[ -x "$BURN" ] && [ -x "$SUBMIT" ] || { echo "build $BUILD first (ninja -C $BUILD)" >&2; exit 2; }
export XDG_CACHE_HOME=$(mktemp -d /tmp/playdoh-bench-XXXXXX)
trap 'rm -rf "$XDG_CACHE_HOME"' EXIT

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
# CPU seconds (user + system) of a command's whole tree, from bash's `times`.
cpu_of() {
    ( "$@"; times ) | tail -n 1 |
        awk '{ split($1, u, "m"); split($2, s, "m"); printf "%.3f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }'
}
run_parallel() { seq 1 "$JOBS" | parallel -j2 "$BURN" "$MS" >/dev/null; }
run_playdoh() { seq 1 "$JOBS" | "$SUBMIT" --local 2 --no-progress exec "$BURN" "$MS" >/dev/null; }

echo "$JOBS commands of $MS ms CPU on 2 slots, $ROUNDS rounds, $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
pl=() gp=() cgp=() cpl=()
for r in $(seq 1 "$ROUNDS"); do
    t0=$(now); ca=$(cpu_of run_parallel); t1=$(now)
    cb=$(cpu_of run_playdoh); t2=$(now)
    a=$(calc "$t1 - $t0"); b=$(calc "$t2 - $t1")
    gp+=("$a"); pl+=("$b"); cgp+=("$ca"); cpl+=("$cb")
    printf 'round %d: GNU parallel -j2 %.3f s (CPU %.3f s)   playdoh-submit exec --local 2 %.3f s (CPU %.3f s)   ratio %.2f\n' \
        "$r" "$a" "$ca" "$b" "$cb" "$(calc "$b / $a")"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
mg=$(median "${gp[@]}"); mp=$(median "${pl[@]}")
ideal=$(calc "$JOBS * $MS / 1000 / 2")
printf 'median: GNU parallel %.3f s, Playdoh %.3f s (ideal %.3f s): Playdoh/parallel = %.2fx (target <= 0.8x)\n' \
    "$mg" "$mp" "$ideal" "$(calc "$mp / $mg")"
cg=$(median "${cgp[@]}"); cp=$(median "${cpl[@]}")
printf 'median CPU time of the whole process tree: GNU parallel %.3f s, Playdoh %.3f s (the commands alone: %.3f s); overhead per command: parallel %.1f ms, Playdoh %.1f ms\n' \
    "$cg" "$cp" "$(calc "$JOBS * $MS / 1000")" "$(calc "($cg - $JOBS * $MS / 1000) * 1000 / $JOBS")" \
    "$(calc "($cp - $JOBS * $MS / 1000) * 1000 / $JOBS")"
