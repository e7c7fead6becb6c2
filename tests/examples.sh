#!/usr/bin/env bash
# The examples run as the guide says: the Monte-Carlo estimate of pi from the
# shell (examples/pi.sh), the map with shared data (examples/map_shared) and
# the GPU example on CPU slots (examples/gpu) and README's optimisation
# (examples/rosenbrock.c), each on an embedded cluster of the built programs.
set -u
BUILD=$(cd "${1:?usage: examples.sh BUILD_DIR SOURCE_DIR}" && pwd)
SRC=$(cd "${2:?usage: examples.sh BUILD_DIR SOURCE_DIR}" && pwd)
CACHE=$(mktemp -d /tmp/playdoh-examples-XXXXXX)
trap 'rm -rf "$CACHE"' EXIT
fail() { echo "examples: FAIL: $*" >&2; exit 1; }
export PLAYDOH_BINDIR=$BUILD PLAYDOH_SUBMIT=$BUILD/playdoh-submit XDG_CACHE_HOME=$CACHE
unset PLAYDOH_BROKER
out=$(bash "$SRC/examples/pi.sh" 20 200000 2>&1) || fail "pi.sh: $out"
pi=$(echo "$out" | sed -n 's/^pi ~ \([0-9.]*\) from 4000000 darts in 20 jobs$/\1/p')
[ -n "$pi" ] || fail "pi.sh printed: $out"
awk -v p="$pi" 'BEGIN { d = p - 3.14159265; exit !(d < 0.01 && d > -0.01) }' ||
    fail "pi ~ $pi is not within 0.01 of pi"
cd "$SRC/examples"
out=$("$BUILD/examples/map_shared" "" shared_sum.c 2000000 2>&1) || fail "map_shared: $out"
echo "$out" | grep -q ": OK$" || fail "map_shared printed: $out"
# The GPU example's CPU half (its GPU half needs a GPU: tests/test_pd_nvrtc.c
# and tests/test_integration_gpu.c run it where there is one).
cd "$SRC/examples/gpu"
err=$(mktemp)
out=$("$BUILD/playdoh-submit" --local 2 map rastrigin.c rastrigin_cpu population.jsonl 2>"$err") ||
    fail "rastrigin_cpu: $out $(cat "$err")"
echo "$out" | head -1 | grep -q '^\[0\.0,63\.5922446868275' ||
    fail "rastrigin_cpu printed: $out (standard error: $(cat "$err"))"
out=$(PD_EXAMPLES_DIR="$SRC/examples" "$BUILD/examples/optimise_rastrigin" 5 4000 2>&1) ||
    fail "optimise_rastrigin: $out"
echo "$out" | grep -q "^rastrigin in 5 dimensions on CPU slots: best" ||
    fail "optimise_rastrigin printed: $out"
# README's optimisation line: CMA-ES islands on the cluster find Rosenbrock's
# minimum (0 at (1, ..., 1)).
cd "$SRC/examples"
# Only standard output is the JSON result: standard error (logs, and under
# the sanitizers their own notes) is kept apart for the failure message.
out=$("$BUILD/playdoh-submit" -q --local 2 optimize rosenbrock.c rosenbrock --algo cmaes \
    --bounds -5:10 --dim 10 --islands 2 --budget 60000 --seed 1 2>"$err") ||
    fail "optimize rosenbrock: $out $(cat "$err")"
python3 -c 'import json, sys; r = json.loads(sys.stdin.read()); assert r["best_f"][0] < 1e-6, r' \
    <<<"$out" || fail "optimize rosenbrock printed: $out (standard error: $(cat "$err"))"
rm -f "$err"
echo "examples: PASS (pi ~ $pi)" >&2
