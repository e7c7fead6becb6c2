#!/usr/bin/env bash
# Runs a broker, a worker (and its slot processes) and playdoh-submit under
# valgrind's memcheck on loopback, through done, failed and crashed jobs,
# twice: without security, then with CurveZMQ (--secure: keys made by
# playdoh-keygen, itself under valgrind, the broker's ZAP handler, a refused
# unlisted client); fails if any of them reports a memory error or a
# definite leak.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind not installed, skipped"; exit 0; }
BUILD=${BUILD:-build-valgrind}
[ -d "$BUILD" ] || meson setup "$BUILD" --buildtype=debug -Dtests=false >/dev/null
ninja -C "$BUILD" >/dev/null
tmp=$(mktemp -d /tmp/playdoh-vg-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait || true; rm -rf "$tmp"; }
trap cleanup EXIT
VG=(valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite
    --trace-children=yes "--trace-children-skip=*/cc,*gcc*,*cc1*,*/as,*/ld*,*collect2*,*/sh")
# Everything is slow under valgrind, CurveZMQ's cryptography most of all.
export PLAYDOH_CONNECT_TIMEOUT_MS=60000
cat > "$tmp/m.c" <<'SRC'
#include <playdoh_task.h>
#include <signal.h>
PD_TASK_DOUBLE(f, x) { if (x == 7) raise(SIGSEGV); return x * x; }
SRC
# One pass: broker, worker and submit with the given extra flags each.
run_pass() { # NAME BROKER-FLAGS... -- WORKER-FLAGS... -- SUBMIT-FLAGS...
    local name=$1; shift
    local bf=() wf=() sf=()
    while [ "$1" != -- ]; do bf+=("$1"); shift; done; shift
    while [ "$1" != -- ]; do wf+=("$1"); shift; done; shift
    sf=("$@")
    rm -f "$tmp/ep"
    "${VG[@]}" --log-file="$tmp/vg-$name-broker.%p.log" "$BUILD/playdoh-broker" \
        --bind tcp://127.0.0.1:0 --ready-fd 3 --log-level warn "${bf[@]}" 3>"$tmp/ep" &
    local bpid=$!
    pids+=($bpid)
    for _ in $(seq 100); do [ -s "$tmp/ep" ] && break; sleep 0.1; done
    local ep
    ep=$(head -1 "$tmp/ep")
    "${VG[@]}" --log-file="$tmp/vg-$name-worker.%p.log" "$BUILD/playdoh-worker" --broker "$ep" \
        --cpus 2 --cache "$tmp/cache" --log-level error --control none "${wf[@]}" &
    local wpid=$!
    pids+=($wpid)
    (seq 1 40; echo '"x"') | "${VG[@]}" --log-file="$tmp/vg-$name-submit.%p.log" \
        "$BUILD/playdoh-submit" --broker "$ep" "${sf[@]}" map "$tmp/m.c" f > "$tmp/out-$name" \
        2>/dev/null || true
    if [ "$name" = secure ]; then
        # An unlisted key is refused; nothing breaks.
        "${VG[@]}" --log-file="$tmp/vg-$name-stranger.%p.log" "$BUILD/playdoh-submit" \
            --broker "$ep" --secure --config-dir "$tmp/k-stranger" --broker-key "$bkey" status 1 \
            >/dev/null 2>&1 || true
    fi
    kill -TERM "$wpid"; wait "$wpid" || true
    kill -TERM "$bpid"; wait "$bpid" || true
    pids=()
}
run_pass plain -- -- --
KG=(valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite)
for k in broker worker client stranger; do
    "${KG[@]}" --log-file="$tmp/vg-keygen-$k.%p.log" "$BUILD/playdoh-keygen" \
        --config-dir "$tmp/k-$k" --name "$k" >"$tmp/$k.pub" 2>/dev/null
done
"$BUILD/playdoh-keygen" --config-dir "$tmp/k-broker" allow "$(cat "$tmp/worker.pub")" \
    --role worker 2>/dev/null
"$BUILD/playdoh-keygen" --config-dir "$tmp/k-broker" allow "$(cat "$tmp/client.pub")" \
    --role client 2>/dev/null
bkey=$(cat "$tmp/broker.pub")
run_pass secure --secure --config-dir "$tmp/k-broker" -- \
    --secure --config-dir "$tmp/k-worker" --broker-key "$bkey" -- \
    --secure --config-dir "$tmp/k-client" --broker-key "$bkey"
bad=0
checked=0
# Logs without a summary belong to processes that never ended under valgrind:
# a fork that exec'ed the compiler, or a slot process killed with SIGKILL.
for f in "$tmp"/vg-*.log; do
    grep -q "ERROR SUMMARY" "$f" || continue
    checked=$((checked + 1))
    if ! grep -q "ERROR SUMMARY: 0 errors" "$f"; then
        echo "valgrind.sh: errors in $(basename "$f"):"; cat "$f"; bad=1
    fi
done
[ "$checked" -ge 10 ] || { echo "valgrind.sh: only $checked processes ended under valgrind"; bad=1; }
for pass in plain secure; do
    lines=$(wc -l < "$tmp/out-$pass")
    [ "$lines" -eq 41 ] || { echo "valgrind.sh: $pass: expected 41 result lines, got $lines"; bad=1; }
done
echo "valgrind.sh: $checked processes checked, 41 results without and with CurveZMQ, $([ $bad = 0 ] && echo clean || echo FAILED)"
exit $bad
