#!/usr/bin/env bash
# A mixed cluster on loopback: a Linux broker, a Linux worker and a Windows
# worker (playdoh-worker.exe under Wine), with real processes, as a lab runs
# them. Called by scripts/test-windows.sh with:
#   LINUX_BUILD  a Linux build directory (playdoh-broker, playdoh-worker, playdoh-submit)
#   WIN_BUILD    the Windows cross-build directory (*.exe)
#   WINEPREFIX, WINEPATH (the dependencies' DLLs), WINEDEBUG set by the caller
# Prints one line per check and ends with "N passed, N failed"; exits 1 on any
# failure. Every wait is bounded.
set -u
: "${LINUX_BUILD:?}" "${WIN_BUILD:?}"
LB=$(cd "$LINUX_BUILD" && pwd)
WB=$(cd "$WIN_BUILD" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d /tmp/playdoh-wine-XXXXXX)
PORT=$((20000 + RANDOM % 20000))
EP=tcp://127.0.0.1:$PORT
. "$SRC/tests/win/wine_lib.sh"
pass=0
fail=0
pids=()


cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    sleep 1
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    pkill -KILL -f "$T/" 2>/dev/null
    if [ "$fail" -ne 0 ]; then
        for f in "$T"/*.log; do echo "---- $f"; tail -40 "$f"; done
    fi
    rm -rf "$T"
}
trap cleanup EXIT



start_linux_worker() {
    "$LB/playdoh-worker" --broker "$EP" --cpus 2 --cache "$T/lcache" --control none \
        --config-dir "$T/cfg" --log-level info >>"$T/lworker.log" 2>&1 &
    LPID=$!
    pids+=("$LPID")
}

start_windows_worker() {
    PLAYDOH_CC="$WB/tests/win/wine_cc.exe" wine "$WB/playdoh-worker.exe" --broker "$EP" --cpus 2 \
        --cache "$T/wcache" --control "$T/w.ctl" --config-dir "$T/cfg" --log-level info \
        >>"$T/wworker.log" 2>&1 &
    WPID=$!
    pids+=("$WPID")
}

# The Windows process behind wine's launcher (kill -9 of it is TerminateProcess).
windows_worker_pid() { pgrep -f "$WB/playdoh-worker.exe --broker" | head -1; }

mkdir -p "$T/cfg"
"$LB/playdoh-broker" --bind "$EP" --no-beacon --journal "$T/broker.journal" \
    --heartbeat-ms 500 --liveness 6 --config /dev/null >"$T/broker.log" 2>&1 &
pids+=($!)
start_linux_worker
start_windows_worker
wait_cluster "len(ws) == 2" 120
check "a Linux and a Windows worker register with one broker" $?
submit cluster --json | python3 -c "
import json, sys
p = sorted(w['platform'] for w in json.load(sys.stdin)['workers'])
sys.exit(0 if p == ['linux-x86_64', 'windows-x86_64'] else 1)"
check "cluster shows both platforms" $?
submit cluster | grep -q windows-x86_64
check "the cluster table has a PLATFORM column" $?

# 2,000 jobs of a source module on both platforms.
seq 1 2000 >"$T/n.jsonl"
submit map "$SRC/examples/square.c" square "$T/n.jsonl" >"$T/sq.out" 2>"$T/sq.err"
rc=$?
squares_ok "$T/sq.out" 2000
check "map of 2,000 jobs of examples/square.c: every result right (exit $rc)" $?
submit cluster --json | python3 -c "
import json, sys
ws = json.load(sys.stdin)['workers']
sys.exit(0 if all(w['done'] > 0 for w in ws) else 1)"
check "both workers ran jobs of the map" $?

# Prebuilt modules go only to their platform: a DLL to the Windows worker, a
# shared object to the Linux one (the broker reads the platform from the bytes).
done_by() { # prints "linux-done windows-done"
    submit cluster --json | python3 -c "
import json, sys
d = {w['platform']: w['done'] for w in json.load(sys.stdin)['workers']}
print(d.get('linux-x86_64', 0), d.get('windows-x86_64', 0))"
}
x86_64-w64-mingw32-gcc-posix -O2 -shared -I"$SRC/include/playdoh" -o "$T/sq.dll" "$SRC/examples/square.c" \
    "$WB/libplaydoh-worker.exe.a"
cc -O2 -fPIC -shared -I"$SRC/include/playdoh" -o "$T/sq.so" "$SRC/examples/square.c"
seq 1 300 >"$T/300.jsonl"
for kind in dll so; do
    read -r l0 w0 < <(done_by)
    submit map "$T/sq.$kind" square "$T/300.jsonl" >"$T/pre.$kind.out" 2>&1
    rc=$?
    read -r l1 w1 < <(done_by)
    squares_ok "$T/pre.$kind.out" 300
    ok=$?
    if [ $kind = dll ]; then
        [ $ok -eq 0 ] && [ $rc -eq 0 ] && [ $((w1 - w0)) -eq 300 ] && [ "$l1" -eq "$l0" ]
        check "a prebuilt DLL runs on the Windows worker only (windows +$((w1 - w0)), linux +$((l1 - l0)))" $? \
            "$(head -c 300 "$T/pre.$kind.out")"
    else
        [ $ok -eq 0 ] && [ $rc -eq 0 ] && [ $((l1 - l0)) -eq 300 ] && [ "$w1" -eq "$w0" ]
        check "a prebuilt shared object runs on the Linux worker only (linux +$((l1 - l0)), windows +$((w1 - w0)))" $? \
            "$(head -c 300 "$T/pre.$kind.out")"
    fi
done

# A synchronous task of 4 nodes on 4 slots, 2 on each platform, equals the
# single-node result bit for bit.
heat() {
    submit task "$SRC/examples/heat/heat.c" heat --nodes "$1" --graph "$SRC/examples/heat/heat.graph" \
        --arg '{"cells": 64, "steps": 200}'
}
heat 4 >"$T/heat4.out" 2>"$T/heat4.err"
heat 1 >"$T/heat1.out" 2>>"$T/heat4.err"
python3 - "$T/heat4.out" "$T/heat1.out" <<'EOF2'
import json, sys
def cells(path):
    return [x for l in open(path) for x in json.loads(l)]
a, b = cells(sys.argv[1]), cells(sys.argv[2])
sys.exit(0 if len(a) == 64 and a == b else 1)
EOF2
check "examples/heat, 4 nodes over both platforms, equals 1 node bit for bit" $? \
    "$(head -c 300 "$T/heat4.err")"

# An optimisation whose 4 islands (CMA-ES) fill both platforms' slots.
submit optimize "$SRC/examples/rosenbrock.c" rosenbrock --algo cmaes --bounds -5:10 --dim 5 \
    --islands 4 --budget 20000 >"$T/opt.out" 2>"$T/opt.err"
python3 - "$T/opt.out" <<'EOF2'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
sys.exit(0 if r["islands"] == 4 and r["best_f"][0] < 1e-6 else 1)
EOF2
check "an optimisation with 4 CMA-ES islands on both platforms converges" $? \
    "$(head -c 300 "$T/opt.out") $(head -c 300 "$T/opt.err")"

# The owner's control through playdoh-worker.exe ctl (a loopback endpoint
# named in the control file: Windows has no ipc://).
timeout 120 wine "$WB/playdoh-worker.exe" ctl --control "$T/w.ctl" --cpus 1 >"$T/ctl.out" 2>&1 &&
    wait_cluster "any(w['platform'] == 'windows-x86_64' and w['cpus'] == 1 for w in ws)" 30
check "playdoh-worker.exe ctl --cpus 1 lowers the Windows worker's slots" $? "$(head -c 300 "$T/ctl.out")"
timeout 120 wine "$WB/playdoh-worker.exe" ctl --control "$T/w.ctl" --cpus 2 >>"$T/ctl.out" 2>&1 &&
    wait_cluster "any(w['platform'] == 'windows-x86_64' and w['cpus'] == 2 for w in ws)" 30
check "and ctl --cpus 2 gives them back" $? "$(head -c 300 "$T/ctl.out")"
# Whoever cannot read the control file (it holds a random token) cannot
# change the slots, though the loopback port is open to every local user.
sed 's/ .*/ 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/' "$T/w.ctl" \
    >"$T/forged.ctl"
timeout 120 wine "$WB/playdoh-worker.exe" ctl --control "$T/forged.ctl" --cpus 0 >"$T/forged.out" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "no valid token" "$T/forged.out" &&
    wait_cluster "any(w['platform'] == 'windows-x86_64' and w['cpus'] == 2 for w in ws)" 10
check "a control request with a wrong token is refused (exit $rc)" $? "$(head -c 300 "$T/forged.out")"

# From here the Windows worker alone, so that every job runs there.
kill -TERM "$LPID"
wait_cluster "len(ws) == 1 and ws[0]['platform'] == 'windows-x86_64'" 30
check "the Linux worker leaves; the Windows worker stays" $?

# A compile error fails the map once (exit 2) with the compiler's words, naming bad.c.
printf '#include <playdoh_task.h>\nPD_TASK_DOUBLE(bad, x) { return x * ; }\n' >"$T/bad.c"
seq 1 20 | submit map "$T/bad.c" bad >"$T/bad.out" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q 'bad.c:2:' "$T/bad.out" && grep -q 'expected expression' "$T/bad.out" &&
    [ "$(grep -c 'expected expression' "$T/bad.out")" -eq 1 ]
check "a compile error on the Windows worker fails the map once with the compiler's message (exit $rc)" $? \
    "$(head -c 300 "$T/bad.out")"

# A crashing task fails that job only; its slot is replaced.
cat >"$T/boom.c" <<'EOF'
#include <playdoh_task.h>
PD_TASK_DOUBLE(boom, x)
{
    if (x == 0) {
        volatile int *p = 0;
        *p = 1;
    }
    return 2 * x;
}
EOF
printf '0\n1\n2\n3\n' | submit map "$T/boom.c" boom >"$T/boom.out" 2>/dev/null
python3 - "$T/boom.out" <<'EOF'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
ok = (r[0].get("code") == "PD_ECRASH" and "access violation" in r[0]["error"]
      and r[1:] == [2.0, 4.0, 6.0])
sys.exit(0 if ok else 1)
EOF
check "a task that crashes (access violation) fails alone; the next jobs run" $? \
    "$(head -c 400 "$T/boom.out")"
seq 1 20 | submit map "$T/boom.c" boom >"$T/boom2.out" 2>/dev/null
check "the crashed slot was replaced (20 more jobs done)" $?

# exec runs through cmd.exe on the Windows worker.
submit exec echo {} ::: %OS% >"$T/exec.out" 2>/dev/null
grep -q Windows_NT "$T/exec.out"
check "exec runs through cmd.exe on the Windows worker" $? "$(head -c 200 "$T/exec.out")"

# A time-out kills the job's whole process tree: cmd.exe and the ping it started.
start=$SECONDS
timeout 300 "$LB/playdoh-submit" -b "$EP" --no-progress exec --timeout-ms 2000 \
    ping -n {} 127.0.0.1 ::: 120 >"$T/to.out" 2>"$T/to.err"
grep -q "past its time-out" "$T/to.err"
check "an exec job past its time-out fails as timed out" $? "$(head -c 300 "$T/to.err")"
took=$((SECONDS - start))
sleep 2
left=$(pgrep -fc 'ping.exe|ping -n 120' || true)
[ "$took" -lt 60 ] && [ "${left:-0}" -eq 0 ]
check "a time-out kills the job's process tree (${took} s, ${left:-0} left)" $? \
    "$(head -c 300 "$T/to.err")"

# playdoh-submit.exe under Wine submits; another process of the same account
# (the same configuration directory, so the same owner token) fetches.
seq 1 10 >"$T/ten.jsonl"
WINEPATH="$WINEPATH;$WB/client" timeout 300 wine "$WB/playdoh-submit.exe" -b "$EP" -q --no-progress --config-dir "$T/cfg" \
    map --detach "$SRC/examples/square.c" square "$T/ten.jsonl" >"$T/ids.out" 2>"$T/ids.err"
ids=$(tr -d '\r' <"$T/ids.out")
# Wine writes the token with Unix mode 0644 (Windows keeps it private with its
# ACLs); the Linux client refuses a token others can read, as it should.
chmod 600 "$T/cfg/owner.token"
[ -n "$ids" ] && submit --config-dir "$T/cfg" wait $ids >/dev/null 2>&1
submit --config-dir "$T/cfg" results $ids >"$T/res.out" 2>/dev/null
python3 - "$T/res.out" <<'EOF'
import json, sys
vals = []
for l in open(sys.argv[1]):
    vals.append(json.loads(l).get("value"))
sys.exit(0 if vals == [float(i * i) for i in range(1, 11)] else 1)
EOF
check "playdoh-submit.exe under Wine submits; results are fetched from another process" $? \
    "ids: $ids; $(head -c 300 "$T/res.out") $(head -c 300 "$T/ids.err")"

# The Windows worker killed (TerminateProcess) mid-batch: nothing lost.
cat >"$T/spin.c" <<'EOF'
#include <playdoh_task.h>
PD_TASK_DOUBLE(spin, x)
{
    volatile double s = 0;
    for (long i = 0; i < 3000000; i++)
        s += 1e-9;
    return x + (s > 0 ? 0 : 1);
}
EOF
seq 1 400 >"$T/400.jsonl"
submit map --detach "$T/spin.c" spin "$T/400.jsonl" >"$T/spin.ids" 2>/dev/null
sleep 3
wpid=$(windows_worker_pid)
[ -n "$wpid" ] && kill -KILL "$wpid"
start_linux_worker
submit wait $(cat "$T/spin.ids") >/dev/null 2>&1
submit results $(cat "$T/spin.ids") >"$T/spin.out" 2>/dev/null
python3 - "$T/spin.out" <<'EOF'
import json, sys
vals = [json.loads(l).get("value") for l in open(sys.argv[1])]
sys.exit(0 if vals == [float(i) for i in range(1, 401)] else 1)
EOF
check "the Windows worker killed mid-batch (pid ${wpid:-none}): every job done once, right" $? \
    "$(grep -c . "$T/spin.out") lines"
# Its slot processes were in Job Objects that close with it: none is left
# (and none holds Wine's server busy for the programs that follow).
left=1
for _ in $(seq 1 60); do
    pgrep -f -- "--slot .*--cache $T/wcache" >/dev/null || { left=0; break; }
    sleep 0.5
done
check "the killed worker's slot processes died with it" $left \
    "$(pgrep -fa -- "--slot .*--cache $T/wcache" | head -3)"

# CurveZMQ with keys made by playdoh-keygen.exe: a broker that requires it
# (--secure, on loopback: tests send nothing off this machine), the Windows
# worker's key on its allow-list, the broker's key trusted by the worker.
EP2=tcp://127.0.0.1:$((PORT + 1))
timeout 120 wine "$WB/playdoh-keygen.exe" --config-dir "$T/wkeys" new >"$T/wkey.out" 2>&1
check "playdoh-keygen.exe makes a key pair" $? "$(head -c 300 "$T/wkey.out")"
"$LB/playdoh-keygen" --config-dir "$T/bkeys" new >/dev/null 2>&1
"$LB/playdoh-keygen" --config-dir "$T/ckeys" new >/dev/null 2>&1
"$LB/playdoh-keygen" --config-dir "$T/bkeys" allow "$T/wkeys/id.key" --role worker --name win \
    >/dev/null 2>&1
"$LB/playdoh-keygen" --config-dir "$T/bkeys" allow "$T/ckeys/id.key" --role client --name me \
    >/dev/null 2>&1
BKEY=$("$LB/playdoh-keygen" --config-dir "$T/bkeys" show 2>/dev/null | head -1)
"$LB/playdoh-broker" --bind "$EP2" --secure --config-dir "$T/bkeys" --no-beacon \
    --journal "$T/broker2.journal" --config /dev/null >"$T/broker2.log" 2>&1 &
pids+=($!)
PLAYDOH_CC="$WB/tests/win/wine_cc.exe" wine "$WB/playdoh-worker.exe" --broker "$EP2" --secure \
    --config-dir "$T/wkeys" --broker-key "$BKEY" --cpus 2 --cache "$T/wcache2" --control none \
    --log-level info >"$T/wworker2.log" 2>&1 &
pids+=($!)
ssubmit() {
    timeout 120 "$LB/playdoh-submit" -b "$EP2" --secure --config-dir "$T/ckeys" \
        --broker-key "$BKEY" -q --no-progress "$@"
}
ok=1
for _ in $(seq 1 120); do
    ssubmit cluster --json 2>/dev/null | grep -q windows-x86_64 && { ok=0; break; }
    sleep 0.5
done
check "the Windows worker joins a CurveZMQ broker with its playdoh-keygen.exe key" $ok \
    "$(tail -3 "$T/wworker2.log")"
ssubmit exec echo {} ::: %OS% >"$T/sexec.out" 2>&1
grep -q Windows_NT "$T/sexec.out"
check "a job runs on it over CurveZMQ" $? "$(head -c 300 "$T/sexec.out")"
wine "$WB/playdoh-keygen.exe" --config-dir "$T/stranger" new >/dev/null 2>&1
PLAYDOH_CC="$WB/tests/win/wine_cc.exe" timeout 20 wine "$WB/playdoh-worker.exe" --broker "$EP2" \
    --secure --config-dir "$T/stranger" --broker-key "$BKEY" --cpus 1 --cache "$T/wcache3" \
    --control none --idle-exit 5 >"$T/stranger.log" 2>&1
n=$(ssubmit cluster --json 2>/dev/null | grep -o windows-x86_64 | wc -l)
[ "$n" -eq 1 ]
check "a Windows worker whose key is not allowed is not admitted" $? "$n Windows workers"

# GPUs on a Windows worker: the driver is loaded at run time (nvcuda.dll, here
# the stand-in driver tests/pd_fake_libcuda.c built as a DLL: 2 devices, no
# kernels), each GPU slot's process sees only its device.
PLAYDOH_LIBCUDA="$WB/tests/win/pd_fake_nvcuda.dll" PLAYDOH_CC="$WB/tests/win/wine_cc.exe" \
    wine "$WB/playdoh-worker.exe" --broker "$EP" --cpus 1 --gpus 2 --name wingpu \
    --cache "$T/wcache" --control none --config-dir "$T/cfg" --log-level info \
    >"$T/wgpu.log" 2>&1 &
pids+=($!)
wait_cluster "any(w['host'] == 'wingpu' and w['gpus'] == 2 and 'Fake GPU 1' in w['gpu_names'] for w in ws)" 120
check "a Windows worker offers the GPUs its CUDA driver (a DLL loaded at run time) shows" $? \
    "$(tail -3 "$T/wgpu.log")"
cat >"$T/gpuenv.c" <<'EOF2'
#include <playdoh_task.h>
#include <stdlib.h>
PD_TASK(gpuenv, t)
{
    const char *v = getenv("CUDA_VISIBLE_DEVICES");
    pd_out_array(t, 2);
    pd_out_int(t, pd_task_gpu(t));
    return pd_out_str(t, v ? v : "(unset)");
}
EOF2
seq 1 8 | submit map --gpu "$T/gpuenv.c" gpuenv >"$T/gpu.out" 2>&1
python3 - "$T/gpu.out" <<'EOF2'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
seen = {tuple(x) for x in r}
sys.exit(0 if len(r) == 8 and seen <= {(0, "0"), (1, "1")} else 1)
EOF2
check "GPU jobs run on its GPU slots, each process seeing only its device" $? \
    "$(head -c 300 "$T/gpu.out")"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
