#!/usr/bin/env bash
# Runs a broker, a worker (and its slot and node processes) and playdoh-submit
# under valgrind's memcheck on loopback, through done, failed and crashed jobs,
# a cluster optimisation and a task asked to stop,
# then again with CurveZMQ (--secure: keys made by playdoh-keygen, itself
# under valgrind, the broker's ZAP handler, an unlisted client refused), and
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
# Everything is slow under valgrind, CurveZMQ's cryptography most of all.
export PLAYDOH_CONNECT_TIMEOUT_MS=60000
cat > "$tmp/m.c" <<'SRC'
#include <playdoh_task.h>
#include <signal.h>
PD_TASK_DOUBLE(f, x) { if (x == 7) raise(SIGSEGV); return x * x; }
SRC
"${VG[@]}" --log-file="$tmp/vg-broker.%p.log" "$BUILD/playdoh-broker" --bind tcp://127.0.0.1:0 \
    --journal "$tmp/broker.journal" --ready-fd 3 --log-level warn 3>"$tmp/ep" &
pids+=($!)
# Up to 60 s: under valgrind on a loaded machine, opening the journal alone
# (SQLite, libsodium) takes seconds.
for _ in $(seq 600); do [ -s "$tmp/ep" ] && break; sleep 0.1; done
ep=$(head -1 "$tmp/ep")
"${VG[@]}" --log-file="$tmp/vg-worker.%p.log" "$BUILD/playdoh-worker" --broker "$ep" --cpus 2 \
    --cache "$tmp/cache" --log-level error &
wpid=$!
pids+=($wpid)
(seq 1 40; echo '"x"') | "${VG[@]}" --log-file="$tmp/vg-submit.%p.log" "$BUILD/playdoh-submit" \
    --broker "$ep" map "$tmp/m.c" f > "$tmp/out" 2>/dev/null || true
lines=$(wc -l < "$tmp/out")
# Shell commands (the built-in exec task), a job log, failed commands.
seq 1 5 | "${VG[@]}" --log-file="$tmp/vg-exec.%p.log" "$BUILD/playdoh-submit" --broker "$ep" \
    exec --joblog "$tmp/joblog" -- 'echo {}; exit $(( {} % 2 ))' > "$tmp/exec-out" 2>/dev/null || true
exec_lines=$(wc -l < "$tmp/exec-out")
# A module of two files with an init function, over shared data.
cat > "$tmp/s.h" <<'SRC'
#define SCALE 2.0
SRC
cat > "$tmp/s.c" <<'SRC'
#include <playdoh_task.h>
#include "s.h"
static double scale;
PD_INIT(t) { (void) t; scale = SCALE; return 0; }
PD_TASK(g, t) {
    size_t len; const double *x = pd_task_shared(t, &len); double i;
    if (!x || pd_arg_double(t, &i) || i < 0 || i >= len / 8) return pd_task_fail(t, "bad");
    return pd_out_double(t, x[(size_t) i] * scale);
}
SRC
printf '\000\000\000\000\000\000\360\077\000\000\000\000\000\000\000\100' > "$tmp/d.bin"
printf '0\n1\n' | "${VG[@]}" --log-file="$tmp/vg-shared.%p.log" "$BUILD/playdoh-submit" \
    --broker "$ep" map --shared "$tmp/d.bin" "$tmp/s.c,$tmp/s.h,-O1" g > "$tmp/shared-out" \
    2>/dev/null || true
shared_out=$(tr '\n' ' ' < "$tmp/shared-out")
# Node processes: a cluster optimisation of two islands (tubes, migration,
# node 0's decisions), then a task asked to stop (pd_node_stopping).
cat > "$tmp/o.c" <<'SRC'
#include <playdoh_fitness.h>
#include <playdoh_task.h>
#include <time.h>
PD_FITNESS(sphere, b, f) {
    for (size_t i = 0; i < b->n; i++) {
        double s = 0;
        for (size_t j = 0; j < b->dim; j++) s += b->x[i * b->dim + j] * b->x[i * b->dim + j];
        f[i] = s;
    }
    return 0;
}
PD_TASK(until_stopped, t) {
    struct timespec ts = {0, 10000000};
    int steps = 0;
    while (!pd_node_stopping(t) && steps < 6000) { nanosleep(&ts, NULL); steps++; }
    return pd_out_int(t, steps);
}
SRC
"${VG[@]}" --log-file="$tmp/vg-optim.%p.log" "$BUILD/playdoh-submit" --broker "$ep" -q \
    optimize --algo pso --dim 3 --bounds -5:5 --islands 2 --popsize 12 --iterations 30 \
    --migrate-every 5 "$tmp/o.c" sphere > "$tmp/optim-out" 2>/dev/null || true
optim_ok=$(grep -c '"stop":"iterations"' "$tmp/optim-out" || true)
task=$("$BUILD/playdoh-submit" --broker "$ep" task --detach --nodes 2 "$tmp/o.c" until_stopped \
    2>/dev/null || true)
for _ in $(seq 300); do
    "$BUILD/playdoh-submit" --broker "$ep" status "$task" 2>/dev/null | grep -q running && break
    sleep 0.1
done
"${VG[@]}" --log-file="$tmp/vg-stop.%p.log" "$BUILD/playdoh-submit" --broker "$ep" -q \
    stop "$task" 2>/dev/null || true
stopped=$("$BUILD/playdoh-submit" --broker "$ep" results --wait 120 "$task" 2>/dev/null |
    grep -c '"state":"done"' || true)
kill -TERM "$wpid"; wait "$wpid" || true
kill -TERM "${pids[0]}"; wait "${pids[0]}" || true
pids=()
# The same map over CurveZMQ, with keys made by playdoh-keygen.
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
rm -f "$tmp/ep"
"${VG[@]}" --log-file="$tmp/vg-secure-broker.%p.log" "$BUILD/playdoh-broker" \
    --bind tcp://127.0.0.1:0 --ready-fd 3 --log-level warn --secure \
    --config-dir "$tmp/k-broker" 3>"$tmp/ep" &
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/ep" ] && break; sleep 0.1; done
ep=$(head -1 "$tmp/ep")
"${VG[@]}" --log-file="$tmp/vg-secure-worker.%p.log" "$BUILD/playdoh-worker" --broker "$ep" \
    --cpus 2 --cache "$tmp/cache" --log-level error --control none --secure \
    --config-dir "$tmp/k-worker" --broker-key "$bkey" &
wpid=$!
pids+=($wpid)
(seq 1 40; echo '"x"') | "${VG[@]}" --log-file="$tmp/vg-secure-submit.%p.log" \
    "$BUILD/playdoh-submit" --broker "$ep" --secure --config-dir "$tmp/k-client" \
    --broker-key "$bkey" map "$tmp/m.c" f > "$tmp/secure-out" 2>/dev/null || true
secure_lines=$(wc -l < "$tmp/secure-out")
# An unlisted key is refused; nothing breaks.
"${VG[@]}" --log-file="$tmp/vg-secure-stranger.%p.log" "$BUILD/playdoh-submit" --broker "$ep" \
    --secure --config-dir "$tmp/k-stranger" --broker-key "$bkey" status 1 >/dev/null 2>&1 || true
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
[ "$checked" -ge 12 ] || { echo "valgrind.sh: only $checked processes ended under valgrind"; bad=1; }
[ "$secure_lines" -eq 41 ] || { echo "valgrind.sh: expected 41 result lines over CurveZMQ, got $secure_lines"; bad=1; }
[ "$lines" -eq 41 ] || { echo "valgrind.sh: expected 41 result lines, got $lines"; bad=1; }
[ "$exec_lines" -eq 5 ] || { echo "valgrind.sh: expected 5 exec output lines, got $exec_lines"; bad=1; }
[ "$(wc -l < "$tmp/joblog")" -eq 6 ] || { echo "valgrind.sh: the job log is not 6 lines"; bad=1; }
[ "$shared_out" = "2.0 4.0 " ] || { echo "valgrind.sh: shared-data map printed '$shared_out'"; bad=1; }
[ "$optim_ok" -eq 1 ] || { echo "valgrind.sh: the optimisation did not end on its iterations: $(cat "$tmp/optim-out")"; bad=1; }
[ "$stopped" -eq 2 ] || { echo "valgrind.sh: the stopped task's 2 nodes did not end done ($stopped)"; bad=1; }
echo "valgrind.sh: $checked processes checked, $lines results ($secure_lines over CurveZMQ), $([ $bad = 0 ] && echo clean || echo FAILED)"
exit $bad
