#!/usr/bin/env bash
# Runs a broker, a worker (and its slot processes) and playdoh-submit under
# valgrind's memcheck on loopback, through done, failed and crashed jobs, and
# fails if any of them reports a memory error or a definite leak.
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
cat > "$tmp/m.c" <<'SRC'
#include <playdoh_task.h>
#include <signal.h>
PD_TASK_DOUBLE(f, x) { if (x == 7) raise(SIGSEGV); return x * x; }
SRC
"${VG[@]}" --log-file="$tmp/vg-broker.%p.log" "$BUILD/playdoh-broker" --bind tcp://127.0.0.1:0 \
    --ready-fd 3 --log-level warn 3>"$tmp/ep" &
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/ep" ] && break; sleep 0.1; done
ep=$(head -1 "$tmp/ep")
"${VG[@]}" --log-file="$tmp/vg-worker.%p.log" "$BUILD/playdoh-worker" --broker "$ep" --cpus 2 \
    --cache "$tmp/cache" --log-level error &
wpid=$!
pids+=($wpid)
(seq 1 40; echo '"x"') | "${VG[@]}" --log-file="$tmp/vg-submit.%p.log" "$BUILD/playdoh-submit" \
    --broker "$ep" map "$tmp/m.c" f > "$tmp/out" 2>/dev/null || true
lines=$(wc -l < "$tmp/out")
kill -TERM "$wpid"; wait "$wpid" || true
kill -TERM "${pids[0]}"; wait "${pids[0]}" || true
pids=()
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
[ "$checked" -ge 3 ] || { echo "valgrind.sh: only $checked processes ended under valgrind"; bad=1; }
[ "$lines" -eq 41 ] || { echo "valgrind.sh: expected 41 result lines, got $lines"; bad=1; }
echo "valgrind.sh: $checked processes checked, $lines results, $([ $bad = 0 ] && echo clean || echo FAILED)"
exit $bad
