#!/usr/bin/env bash
# playdoh-worker.exe as a Windows service under Wine's Service Control
# Manager: `service install` with worker options, `service start`, jobs run
# by the service, `service stop` with jobs running (the worker says bye: its
# jobs go back to the broker without counting an attempt and finish on a
# Linux worker), `service uninstall`. Called by scripts/test-windows.sh with:
#   LINUX_BUILD  a Linux build directory (playdoh-broker, playdoh-worker, playdoh-submit)
#   WIN_BUILD    the Windows cross-build directory (*.exe)
#   WINEPREFIX, WINEPATH (the dependencies' DLLs), WINEDEBUG set by the caller
# The service is registered in WINEPREFIX under the name playdoh-worker
# (one left over there is removed first) and removed at the end. Prints one
# line per check and ends with "N passed, N failed"; exits 1 on any failure.
# Every wait is bounded.
set -u
: "${LINUX_BUILD:?}" "${WIN_BUILD:?}" "${WINEPREFIX:?}"
LB=$(cd "$LINUX_BUILD" && pwd)
WB=$(cd "$WIN_BUILD" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d /tmp/playdoh-wine-svc-XXXXXX)
PORT=$((20000 + RANDOM % 20000))
EP=tcp://127.0.0.1:$PORT
SVC_DIR="$WINEPREFIX/drive_c/ProgramData/playdoh" # %PROGRAMDATA%\playdoh
. "$SRC/tests/win/wine_lib.sh"
pass=0
fail=0
pids=()


# The service's program as an installer lays it out: the executable with
# the DLLs it needs beside it (a service does not get the caller's
# WINEPATH: the service manager starts it).
BIN="$T/bin"
mkdir -p "$BIN"
cp "$WB/playdoh-worker.exe" "$WB/libplaydoh-worker.exe.a" "$WB/tests/win/wine_cc.exe" "$BIN/"
IFS=';' read -ra dirs <<<"${WINEPATH:-}"
for d in "${dirs[@]}"; do
    [ -d "$d" ] && cp "$d"/*.dll "$BIN/" 2>/dev/null
done
svc() { timeout 120 wine "$BIN/playdoh-worker.exe" service "$@"; }

cleanup() {
    svc uninstall >/dev/null 2>&1
    rm -f "$SVC_DIR/playdoh.conf" "$WINEPREFIX/drive_c$T"
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    sleep 1
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    exec 9>&- # ends the keeper: the wineserver may go
    pkill -KILL -f "$T/" 2>/dev/null
    if [ "$fail" -ne 0 ]; then
        for f in "$T"/*.log "$SVC_DIR/worker.log"; do echo "---- $f"; tail -40 "$f"; done
    fi
    rm -rf "$T"
}
trap cleanup EXIT

# Services live as long as the wineserver, which leaves 3 s after its last
# client, and a new one starts the auto-start services again: a keeper
# (cmd reading a pipe this script holds open) keeps one server throughout.
# A new prefix is made by the first start (wineboot): let it finish, and its
# wineserver go, before the service manager reads the system's environment
# (PATH, OS) for the service.
timeout 300 wine cmd /c exit >/dev/null 2>&1
timeout 60 wineserver -w
mkfifo "$T/keep"
wine cmd /c "set /p x=" <"$T/keep" >/dev/null 2>&1 &
pids+=($!)
exec 9>"$T/keep"


"$LB/playdoh-broker" --bind "$EP" --no-beacon --no-journal --heartbeat-ms 500 --liveness 6 \
    --config /dev/null >"$T/broker.log" 2>&1 &
pids+=($!)

# Linux: not a service this program installs.
"$LB/playdoh-worker" service install --broker "$EP" >"$T/linux.out" 2>&1
rc=$?
[ "$rc" -eq 2 ] && grep -q "systemctl enable --now playdoh-worker" "$T/linux.out"
check "on Linux, service install exits 2 and points to systemd (exit $rc)" $? "$(cat "$T/linux.out")"

svc uninstall >/dev/null 2>&1 # one left over in this prefix
rm -f "$SVC_DIR/worker.log" "$SVC_DIR/playdoh.conf"
svc status >"$T/st0.out" 2>&1
rc=$?
[ "$rc" -eq 4 ] && grep -q "not installed\|is installed" "$T/st0.out"
check "service status before install: not installed (exit $rc)" $? "$(cat "$T/st0.out")"

svc install --cpus 2 --cache rel/cache --broker "$EP" >"$T/bad.out" 2>&1
rc=$?
[ "$rc" -eq 2 ] && grep -q "full path" "$T/bad.out"
check "service install refuses a relative path (exit $rc)" $? "$(cat "$T/bad.out")"
svc install --cpus lots >"$T/bad2.out" 2>&1
rc=$?
[ "$rc" -eq 2 ] && ! wine sc query playdoh-worker >/dev/null 2>&1
check "service install refuses a bad worker option; nothing is installed (exit $rc)" $? \
    "$(cat "$T/bad2.out")"

# The compiler of task modules comes on the command line (tests/win/wine_cc.c
# under Wine): a service does not inherit PLAYDOH_CC. wine_cc hands its
# arguments to the Linux cross-compiler as they are, so the module cache
# must have one name for both: /tmp/... is \tmp\... on the service's drive
# (C:, its directory being the system's), which a link sends to $T.
CC_WIN=$(winepath -w "$BIN/wine_cc.exe" 2>/dev/null)
mkdir -p "$WINEPREFIX/drive_c/tmp"
ln -sfn "$T" "$WINEPREFIX/drive_c$T"
svc install --broker "$EP" --cpus 2 --heartbeat-ms 500 --log-level info --cc "$CC_WIN" \
    --cache "$T/wcache" >"$T/install.out" 2>&1
rc=$?
check "service install --broker $EP --cpus 2 ... (exit $rc)" $rc "$(cat "$T/install.out")"
account=$(grep -o 'as NT AUTHORITY\\LocalService\|as LocalSystem' "$T/install.out")
echo "     account: ${account#as }"
[ -n "$account" ]
check "install says which account the service runs as" $? "$(cat "$T/install.out")"
wine sc query playdoh-worker >"$T/sc1.out" 2>&1 && grep -q STOPPED "$T/sc1.out"
check "sc query finds the service, stopped" $? "$(cat "$T/sc1.out")"
svc install --broker "$EP" >"$T/again.out" 2>&1
rc=$?
[ "$rc" -eq 1 ] && grep -q "installed already" "$T/again.out"
check "a second install is refused: uninstall first (exit $rc)" $? "$(cat "$T/again.out")"
svc status >"$T/st1.out" 2>&1
rc=$?
[ "$rc" -eq 3 ] && grep -q "stopped" "$T/st1.out" && grep -q "service run --broker $EP --cpus 2" "$T/st1.out"
check "service status: stopped, with its command line (exit $rc)" $? "$(cat "$T/st1.out")"
timeout 60 wine "$BIN/playdoh-worker.exe" service run --broker "$EP" >"$T/run.out" 2>&1
rc=$?
[ "$rc" -eq 2 ] && grep -q "not started by the Service Control Manager" "$T/run.out"
check "service run outside the service manager exits 2 with a sentence (exit $rc)" $? \
    "$(cat "$T/run.out")"

# Its configuration file: %PROGRAMDATA%\playdoh\playdoh.conf (flags still win).
printf '[worker]\nname = svc-host\ncpus = 3\n' >"$SVC_DIR/playdoh.conf"
svc start >"$T/start.out" 2>&1
rc=$?
check "service start (exit $rc)" $rc "$(cat "$T/start.out")"
svc status >"$T/st2.out" 2>&1
rc=$?
[ "$rc" -eq 0 ] && grep -q "running (pid" "$T/st2.out"
check "service status: running (exit $rc)" $? "$(cat "$T/st2.out")"
wait_cluster "len(ws) == 1 and ws[0]['platform'] == 'windows-x86_64' and ws[0]['cpus'] == 2" 120
check "the service registers with the broker (windows-x86_64, 2 cpus)" $?
wait_cluster "ws[0]['host'] == 'svc-host'" 5
check "the service reads %PROGRAMDATA%\\playdoh\\playdoh.conf (name = svc-host; --cpus 2 wins)" $?
submit cluster | grep -q windows-x86_64
check "cluster shows the Windows worker" $?
# The service's control socket is found by `ctl` (%PROGRAMDATA%\playdoh\worker.ctl).
timeout 60 wine "$BIN/playdoh-worker.exe" ctl >"$T/ctl.out" 2>&1
rc=$?
[ "$rc" -eq 0 ] && grep -q "2 cpus" "$T/ctl.out" && grep -q "(registered)" "$T/ctl.out"
check "playdoh-worker ctl reaches the service (exit $rc)" $? "$(cat "$T/ctl.out")"

submit exec echo out{} ::: 1 2 3 4 5 6 >"$T/exec.out" 2>"$T/exec.err"
rc=$?
[ "$rc" -eq 0 ] && [ "$(tr -d '\r' <"$T/exec.out" | grep -c '^out[1-6]$')" -eq 6 ]
check "6 exec jobs run on the service (exit $rc)" $? "$(head -c 300 "$T/exec.out") $(head -c 300 "$T/exec.err")"
submit exec echo {} ::: %OS% >"$T/os.out" 2>/dev/null
grep -q Windows_NT "$T/os.out"
check "exec runs through cmd.exe in the service" $? "$(head -c 200 "$T/os.out")"
seq 1 200 >"$T/n.jsonl"
submit map "$SRC/examples/square.c" square "$T/n.jsonl" >"$T/sq.out" 2>"$T/sq.err"
rc=$?
squares_ok "$T/sq.out" 200
check "a map of examples/square.c compiles (--cc) and runs on the service (exit $rc)" $? \
    "$(head -c 300 "$T/sq.out") $(head -c 300 "$T/sq.err")"
grep -q "registered with broker" "$SVC_DIR/worker.log" 2>/dev/null &&
    grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2} ' "$SVC_DIR/worker.log"
check "the service logs to %PROGRAMDATA%\\playdoh\\worker.log, dated lines" $? \
    "$(tail -5 "$SVC_DIR/worker.log" 2>&1)"

# Stopped with slow jobs running: a command slow on Windows (ping, as
# `sleep` is no Windows command) and quick on Linux (sleep), each attempt
# counted: with --retries 1 a requeue that counted one would fail the job.
seq 1 6 >"$T/six.txt"
submit exec --retries 1 --detach --args "$T/six.txt" \
    "(sleep 1 || ping -n 30 127.0.0.1 >NUL) && echo slow{}" >"$T/slow.ids" 2>"$T/slow.err"
check "6 slow jobs submitted" $? "$(cat "$T/slow.err")"
wait_cluster "len(ws) == 1 and ws[0]['busy'] == 2" 60
check "the service runs 2 of them at once" $?
start=$SECONDS
svc stop >"$T/stop.out" 2>&1
rc=$?
took=$((SECONDS - start))
check "service stop with 2 jobs running (exit $rc, ${took} s)" $rc "$(cat "$T/stop.out")"
[ "$took" -lt 25 ]
check "the stop is prompt: the jobs are handed back, not waited for (${took} s)" $?
left=1
for _ in $(seq 1 20); do
    left=$(pgrep -fc 'ping.exe|ping -n 30' || true)
    [ "${left:-0}" -eq 0 ] && break
    sleep 0.5
done
[ "${left:-0}" -eq 0 ]
check "the stop ends the running jobs' processes (${left:-0} ping left)" $?
grep -q "leaving broker" "$SVC_DIR/worker.log" 2>/dev/null
check "the service's log says it left the broker" $? "$(tail -5 "$SVC_DIR/worker.log" 2>&1)"
line=$(grep -m1 "left (said bye): [0-9]* jobs requeued" "$T/broker.log")
n=$(echo "$line" | sed -n 's/.*said bye): \([0-9]*\) jobs requeued.*/\1/p')
[ -n "$n" ] && [ "$n" -ge 2 ]
check "the broker: the worker left (said bye), ${n:-?} jobs requeued" $? "$line"
wait_cluster "len(ws) == 0" 30
check "the Windows worker is gone from the cluster" $?
svc status >"$T/st3.out" 2>&1
rc=$?
[ "$rc" -eq 3 ] && grep -q "stopped" "$T/st3.out" && ! grep -q "exit code" "$T/st3.out"
check "service status: stopped, exit code 0 (exit $rc)" $? "$(cat "$T/st3.out")"

"$LB/playdoh-worker" --broker "$EP" --cpus 2 --cache "$T/lcache" --control none \
    --config-dir "$T/cfg" --log-level info >>"$T/lworker.log" 2>&1 &
LPID=$!
pids+=($LPID)
ids=$(cat "$T/slow.ids")
submit wait $ids >/dev/null 2>&1
submit results $ids >"$T/slow.out" 2>/dev/null
python3 - "$T/slow.out" <<'EOF'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
bad = [r for r in rs if r.get("state") != "done" or r["value"].get("exit") != 0]
outs = sorted(r["value"]["out"].strip() for r in rs if not r in bad)
sys.exit(0 if len(rs) == 6 and not bad and outs == ["slow%d" % i for i in range(1, 7)] else 1)
EOF
check "the 6 slow jobs complete on a Linux worker started afterwards, none failed" $? \
    "$(head -c 600 "$T/slow.out")"
kill -TERM "$LPID" 2>/dev/null
timeout 20 tail --pid="$LPID" -f /dev/null

svc uninstall >"$T/uninst.out" 2>&1
rc=$?
check "service uninstall (exit $rc)" $rc "$(cat "$T/uninst.out")"
wine sc query playdoh-worker >"$T/sc2.out" 2>&1
rc=$?
[ "$rc" -ne 0 ] && ! grep -q playdoh-worker "$T/sc2.out"
check "sc query no longer finds the service (exit $rc)" $? "$(cat "$T/sc2.out")"
svc status >/dev/null 2>&1
rc=$?
[ "$rc" -eq 4 ]
check "service status after uninstall: not installed (exit $rc)" $?
svc stop >"$T/stop2.out" 2>&1
rc=$?
[ "$rc" -eq 1 ] && grep -q "service install" "$T/stop2.out"
check "service stop of no service exits 1 saying to install it (exit $rc)" $? "$(cat "$T/stop2.out")"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
