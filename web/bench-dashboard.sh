#!/usr/bin/env bash
# The dashboard's cost to the broker (issue 19): two brokers side by side,
# each with a worker of 2 slots, one serving --http with two clients on
# /api/stream plus a poll of /api/batches and /api/events every 250 ms (what
# an open page does), the other without; ROUNDS rounds of JOBS no-op jobs
# (playdoh-submit map) go to each in turn. Prints each broker's CPU time
# (all its threads, from /proc: independent of the machine's load) and the
# wall time of each round, and the medians' ratios.
#   web/bench-dashboard.sh [BUILD_DIR (build-rel)] [JOBS (20000)] [ROUNDS (5)]
set -euo pipefail
build=$(realpath "${1:-build-rel}")
jobs=${2:-20000}
rounds=${3:-5}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -s "$tmp/submit.log" ] && { echo "submit said:" >&2; tail -3 "$tmp/submit.log" >&2; }; rm -rf "$tmp"; }
trap cleanup EXIT
export PLAYDOH_CONFIG=/dev/null PLAYDOH_CONFIG_DIR=$tmp/conf
base=$((20000 + $$ % 20000))
cputime() { awk '{print $14 + $15}' "/proc/$1/stat"; }
start() { # NAME PORT [broker flags...]
    local name=$1 port=$2; shift 2
    "$build/playdoh-broker" --bind "tcp://127.0.0.1:$port" --no-journal --no-beacon "$@" \
        2>"$tmp/$name.log" &
    pids+=($!); eval "broker_$name=$!"
    "$build/playdoh-worker" --broker "tcp://127.0.0.1:$port" --cpus 2 --cache "$tmp/cache-$name" \
        --control "$tmp/$name.ctl" 2>"$tmp/worker-$name.log" &
    pids+=($!)
}
start plain $base
start dash $((base + 1)) --http "127.0.0.1:$((base + 2))"
sleep 1
url=http://127.0.0.1:$((base + 2))
for i in 1 2; do
    python3 -c "
import urllib.request, sys
with urllib.request.urlopen('$url/api/stream') as r:
    for line in r: pass" &
    pids+=($!)
    python3 -c "
import urllib.request, time
while True:
    for p in ('batches', 'events'):
        urllib.request.urlopen('$url/api/' + p).read()
    time.sleep(0.25)" &
    pids+=($!)
done
printf '#include <playdoh_task.h>\nPD_TASK_DOUBLE(noop, x) { return x; }\n' >"$tmp/noop.c"
seq 1 "$jobs" >"$tmp/args.jsonl"
declare -A cpu wall
for r in $(seq 1 "$rounds"); do
    for name in plain dash; do
        port=$base; [ $name = dash ] && port=$((base + 1))
        pid_var=broker_$name; pid=${!pid_var}
        c0=$(cputime "$pid"); t0=$(date +%s%N)
        "$build/playdoh-submit" --broker "tcp://127.0.0.1:$port" map "$tmp/noop.c" noop \
            "$tmp/args.jsonl" >/dev/null 2>>"$tmp/submit.log"
        t1=$(date +%s%N); c1=$(cputime "$pid")
        cpu[$name]+="$((c1 - c0)) "; wall[$name]+="$(((t1 - t0) / 1000000)) "
    done
done
hz=$(getconf CLK_TCK)
python3 - "$hz" "$jobs" "${cpu[plain]}" "${cpu[dash]}" "${wall[plain]}" "${wall[dash]}" <<'PY'
import statistics as st, sys
hz, jobs = int(sys.argv[1]), int(sys.argv[2])
cp, cd, wp, wd = ([int(x) for x in a.split()] for a in sys.argv[3:7])
print(f"broker CPU per round (ticks of 1/{hz} s): no dashboard {cp}, dashboard {cd}")
print(f"wall ms per round: no dashboard {wp}, dashboard {wd}")
mp, md = st.median(cp), st.median(cd)
print(f"median broker CPU: {mp / hz * 1e6 / jobs:.2f} us/job without, {md / hz * 1e6 / jobs:.2f} us/job with the dashboard: ratio {md / mp:.3f}")
print(f"median wall: {st.median(wp)} ms without, {st.median(wd)} ms with: ratio {st.median(wd) / st.median(wp):.3f}")
PY
