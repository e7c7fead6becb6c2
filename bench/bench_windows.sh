#!/usr/bin/env bash
# bench_windows: a Windows worker (playdoh-worker.exe under Wine) against a
# Linux worker, in the same run, on one Linux broker over TCP loopback. Each
# worker offers 2 slots; only one is registered at a time. ROUNDS rounds take
# turns (Linux then Windows, then Windows then Linux, ...) so that the
# machine's load drift meets both; each round starts the worker afresh (the
# module cache stays, so compiling is excluded: a warm-up job of each function
# runs first) and measures:
#
#   rt     round trip of one no-op job: median of RT_SAMPLES pd_map + pd_fetch
#          through the C API (bench_windows_client), after 20 untimed
#   tput   JOBS no-op jobs (noop(x) returns x) in one batch through the C API:
#          jobs/s from the submit until the last result is in
#   submit the same JOBS through `playdoh-submit -q --no-progress map MODULE
#          noop FILE` (its process start and JSON included): jobs/s
#   spin   200 jobs that each spin 10 ms of wall clock (a busy loop reading the
#          monotonic clock: CPU work that ends on time however the slot is
#          scheduled); efficiency = ideal (200 x 10 ms / 2 slots = 1.0 s) / wall
#   nap    200 jobs that each sleep 10 ms (nanosleep; Sleep on Windows, whose
#          10 ms are precise under Wine): the same efficiency without CPU work
#
# and the CPU time (ns, from /proc/PID/task/*/schedstat) that the worker's main
# process (its relay threads included), its slot processes and, for Windows,
# the wineserver of WINEPREFIX spend during tput and spin, per job.
#
# After each worker has left, bench_pipe_hop.c (built here with cc and
# MinGW-w64) times the worker <-> slot hand-off alone on each platform: a pipe
# round trip between two processes, and on Windows the worker's path (a relay
# thread into a loopback socket, select()) and a loopback TCP round trip; and
# bench_zmq_echo.c times a libzmq round trip from a Linux DEALER to a ROUTER
# echo on each platform (on Windows: under Wine, as the worker's socket is).
#
# Prints one line per measurement, then a markdown table of the medians over
# the rounds and the Windows/Linux ratios. Every wait is bounded.
#
# Usage: bench/bench_windows.sh [ROUNDS (3)] [JOBS (20000)]
# Environment: LINUX_BUILD (build-dev), WIN_BUILD (build-win), RT_SAMPLES (200),
#   WINEPREFIX (/tmp/wp-bench), WINEPATH (the cross-built dependencies' bin,
#   from scripts/cross-deps.sh), WINEDEBUG (-all).
set -u
ROUNDS=${1:-3}
JOBS=${2:-20000}
RT_SAMPLES=${RT_SAMPLES:-200}
SRC=$(cd "$(dirname "$0")/.." && pwd)
LB=$(cd "${LINUX_BUILD:-$SRC/build-dev}" && pwd) || exit 2
WB=$(cd "${WIN_BUILD:-$SRC/build-win}" && pwd) || exit 2
export WINEPREFIX=${WINEPREFIX:-/tmp/wp-bench} WINEDEBUG=${WINEDEBUG:--all}
if [ -z "${WINEPATH:-}" ]; then
    WINEPATH="$(bash "$SRC/scripts/cross-deps.sh" 2>/dev/null)/bin"
    export WINEPATH
fi
CLIENT=$LB/bench/bench_windows_client
if [ ! -x "$CLIENT" ]; then
    ninja -C "$LB" bench/bench_windows_client >/dev/null || exit 2
fi
for f in "$LB/playdoh-broker" "$LB/playdoh-worker" "$LB/playdoh-submit" "$WB/playdoh-worker.exe" \
    "$WB/tests/win/wine_cc.exe"; do
    [ -x "$f" ] || { echo "missing $f" >&2; exit 2; }
done

T=$(mktemp -d /tmp/pd-bench-win-XXXXXX)
PORT=$((20000 + RANDOM % 20000))
EP=tcp://127.0.0.1:$PORT
. "$SRC/tests/win/wine_lib.sh" # submit, wait_cluster
BPID=
WPID=

# The processes of the worker started last: its main process and its slots
# (Wine reparents a Windows child to init, so slots are found by the cache
# directory on their command line, which is this run's own).
worker_pids() { pgrep -f -- "--cache $T/$1cache" | tr '\n' ' '; }
# The wineserver of our WINEPREFIX.
wineserver_pid() {
    local p
    for p in $(pgrep -x wineserver64; pgrep -x wineserver); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "WINEPREFIX=$WINEPREFIX"; then
            echo "$p"
            return
        fi
    done
}
# CPU time (ns) of the given processes, all their threads.
cpu_ns() {
    local p s=0 t
    for p in "$@"; do
        for t in /proc/"$p"/task/*/schedstat; do
            [ -r "$t" ] && s=$((s + $(cut -d' ' -f1 "$t" 2>/dev/null || echo 0)))
        done
    done
    echo "$s"
}

# stop_worker l|w: the worker started last, then any of its slots left.
stop_worker() {
    local p
    [ -n "$WPID" ] || return 0
    kill -TERM "$WPID" 2>/dev/null
    for _ in $(seq 1 50); do
        [ -z "$(worker_pids "$1")" ] && break
        sleep 0.2
    done
    for p in $(worker_pids "$1"); do kill -KILL "$p" 2>/dev/null; done
    wait "$WPID" 2>/dev/null
    WPID=
}

cleanup() {
    stop_worker l
    stop_worker w
    [ -n "$BPID" ] && kill -TERM "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM



cat >"$T/bench.c" <<'EOF'
#include <playdoh_task.h>
#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
static double ms_now(void)
{
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (double) c.QuadPart * 1e3 / (double) f.QuadPart;
}
static void nap_ms(double ms) { Sleep((DWORD) ms); }
#else
#include <time.h>
static double ms_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
static void nap_ms(double ms)
{
    struct timespec t = {(time_t) (ms / 1e3), (long) (ms * 1e6) % 1000000000L};
    nanosleep(&t, NULL);
}
#endif
PD_TASK_DOUBLE(noop, x) { return x; }
/* busy until x ms of wall clock have passed */
PD_TASK_DOUBLE(spin, x)
{
    double end = ms_now() + x;
    volatile double s = 0;
    while (ms_now() < end)
        for (int i = 0; i < 100; i++)
            s += i;
    return x;
}
/* sleeps x ms */
PD_TASK_DOUBLE(nap, x)
{
    nap_ms(x);
    return x;
}
EOF
seq 1 "$JOBS" >"$T/jobs.jsonl"
XP=$(bash "$SRC/scripts/cross-deps.sh" 2>/dev/null)
cc -O2 -o "$T/hop" "$SRC/bench/bench_pipe_hop.c" &&
    x86_64-w64-mingw32-gcc-posix -O2 -o "$T/hop.exe" "$SRC/bench/bench_pipe_hop.c" -lws2_32 &&
    cc -O2 -o "$T/zecho" "$SRC/bench/bench_zmq_echo.c" -lzmq &&
    x86_64-w64-mingw32-gcc-posix -O2 -I"$XP/include" -o "$T/zecho.exe" \
        "$SRC/bench/bench_zmq_echo.c" -L"$XP/lib" -lzmq ||
    { echo "cannot build bench_pipe_hop or bench_zmq_echo" >&2; exit 2; }
mkdir -p "$T/cfg"

"$LB/playdoh-broker" --bind "$EP" --no-beacon --no-journal --heartbeat-ms 200 --liveness 5 \
    --config /dev/null >"$T/broker.log" 2>&1 &
BPID=$!
wait_cluster "len(ws) == 0" 30 || { echo "the broker did not start" >&2; exit 1; }

# measure PLATFORM ROUND: appends "platform round key value" lines to $T/res.
measure() {
    local plat=$1 r=$2 k=${1:0:1} out t0 t1 n c0 c1 s0 s1 ws="" cs pids
    if [ "$plat" = linux ]; then
        "$LB/playdoh-worker" --broker "$EP" --cpus 2 --cache "$T/lcache" --control none \
            --config-dir "$T/cfg" --heartbeat-ms 200 >>"$T/lworker.log" 2>&1 &
    else
        PLAYDOH_CC="$WB/tests/win/wine_cc.exe" wine "$WB/playdoh-worker.exe" --broker "$EP" \
            --cpus 2 --cache "$T/wcache" --control none --config-dir "$T/cfg" \
            --heartbeat-ms 200 >>"$T/wworker.log" 2>&1 &
    fi
    WPID=$!
    if ! wait_cluster "len(ws) == 1 and ws[0]['platform'].startswith('$plat')" 120; then
        echo "the $plat worker did not register" >&2
        exit 1
    fi
    timeout 600 "$CLIENT" "$EP" "$T/bench.c" warm || { echo "warm-up failed on $plat" >&2; exit 1; }
    pids=$(worker_pids "$k")
    [ "$plat" = windows ] && ws=$(wineserver_pid)
    (
        timeout 300 "$CLIENT" "$EP" "$T/bench.c" rt "$RT_SAMPLES" || exit 1

        c0=$(cpu_ns $pids); s0=$(cpu_ns $ws)
        out=$(timeout 600 "$CLIENT" "$EP" "$T/bench.c" tput "$JOBS") || exit 1
        c1=$(cpu_ns $pids); s1=$(cpu_ns $ws)
        echo "$out"
        echo "tput_worker_cpu_us_per_job $(((c1 - c0) / JOBS / 1000)).$((((c1 - c0) / JOBS) % 1000 / 100))"
        if [ -n "$ws" ]; then echo "tput_wineserver_cpu_us_per_job $(((s1 - s0) / JOBS / 1000)).$((((s1 - s0) / JOBS) % 1000 / 100))"; fi

        t0=$(date +%s.%N)
        n=$(submit map "$T/bench.c" noop "$T/jobs.jsonl" | grep -c .)
        t1=$(date +%s.%N)
        [ "$n" -eq "$JOBS" ] || { echo "playdoh-submit map returned $n of $JOBS results" >&2; exit 1; }
        echo "submit_jobs_s $(python3 -c "print(round($JOBS / ($t1 - $t0)))")"

        c0=$(cpu_ns $pids); s0=$(cpu_ns $ws)
        out=$(timeout 300 "$CLIENT" "$EP" "$T/bench.c" eff 200 10 2) || exit 1
        c1=$(cpu_ns $pids); s1=$(cpu_ns $ws)
        echo "$out" | sed 's/^eff_/spin_/'
        # CPU beyond the jobs' own 2.0 s: what the worker, relays and Wine take.
        echo "spin_cpu_s $(python3 -c "print(round(($c1 - $c0) / 1e9, 3))")"
        if [ -n "$ws" ]; then echo "spin_wineserver_cpu_s $(python3 -c "print(round(($s1 - $s0) / 1e9, 3))")"; fi
        out=$(timeout 300 "$CLIENT" "$EP" "$T/bench.c" eff 200 10 2 nap) || exit 1
        echo "$out" | sed 's/^eff_/nap_/'

        # An idle worker's own CPU (its loop, heartbeats, Wine's services).
        c0=$(cpu_ns $pids); s0=$(cpu_ns $ws)
        sleep 2
        c1=$(cpu_ns $pids); s1=$(cpu_ns $ws)
        echo "idle_cpu_pct $(python3 -c "print(round(($c1 - $c0) / 2e7, 2))")"
        if [ -n "$ws" ]; then echo "idle_wineserver_cpu_pct $(python3 -c "print(round(($s1 - $s0) / 2e7, 2))")"; fi
    ) >"$T/m.out" 2>&1 || { cat "$T/m.out" >&2; exit 1; }
    cs=$(awk -v p="$plat" -v r="$r" '{print p, r, $1, $2}' "$T/m.out")
    echo "$cs" >>"$T/res"
    echo "$cs"
    stop_worker "$k"
    wait_cluster "len(ws) == 0" 30 || { echo "the $plat worker did not leave" >&2; exit 1; }
    # The hand-off alone (bench_pipe_hop), with no worker running.
    if [ "$plat" = linux ]; then
        cs=$(timeout 120 "$T/hop" 2000)
    else
        cs=$(timeout 120 wine "$T/hop.exe" 2000 | tr -d '\r')
    fi || { echo "bench_pipe_hop failed on $plat" >&2; exit 1; }
    # One libzmq round trip from a Linux DEALER to a ROUTER echo on $plat.
    local zep=tcp://127.0.0.1:$((PORT + 1)) zpid
    if [ "$plat" = linux ]; then
        timeout 120 "$T/zecho" echo "$zep" &
    else
        timeout 120 wine "$T/zecho.exe" echo "$zep" &
    fi
    zpid=$!
    cs="$cs
$(timeout 100 "$T/zecho" ping "$zep" 2000)" || { echo "bench_zmq_echo failed on $plat" >&2; exit 1; }
    wait "$zpid"
    cs=$(echo "$cs" | awk -v p="$plat" -v r="$r" '{print p, r, "hop_" $1, $2}')
    echo "$cs" >>"$T/res"
    echo "$cs"
}

echo "bench_windows: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)," \
    "broker $EP, $JOBS no-op jobs, $ROUNDS rounds"
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then order="linux windows"; else order="windows linux"; fi
    for p in $order; do
        measure "$p" "$r"
    done
done
echo "load at the end $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$T/res" "$JOBS" "$RT_SAMPLES" <<'EOF'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
v = {}
for plat, r, key, val in rows:
    v.setdefault((plat, key), []).append(float(val))
med = lambda plat, key: statistics.median(v[(plat, key)]) if (plat, key) in v else None
def cell(plat, key, fmt):
    xs = v.get((plat, key))
    if not xs:
        return "-"
    return fmt.format(statistics.median(xs)) + " (" + ", ".join(fmt.format(x) for x in xs) + ")"
jobs, rts = sys.argv[2], sys.argv[3]
lines = [
    ("no-op jobs/s, %s in one batch (C API)" % jobs, "tput_jobs_s", "{:,.0f}", "ratio"),
    ("no-op jobs/s, `playdoh-submit map` of %s" % jobs, "submit_jobs_s", "{:,.0f}", "ratio"),
    ("round trip of one no-op job, median of %s (µs)" % rts, "rt_us", "{:,.0f}", "ratio"),
    ("round trip, 90th percentile (µs)", "rt_p90_us", "{:,.0f}", "ratio"),
    ("efficiency, 200 x 10 ms busy (spin), 2 slots (%)", "spin_pct", "{:.1f}", "points"),
    ("efficiency, 200 x 10 ms sleep (nap), 2 slots (%)", "nap_pct", "{:.1f}", "points"),
    ("worker CPU per no-op job: main process + slots (µs)", "tput_worker_cpu_us_per_job", "{:.1f}", "ratio"),
    ("wineserver CPU per no-op job (µs)", "tput_wineserver_cpu_us_per_job", "{:.1f}", ""),
    ("CPU of worker + slots during spin (s; the jobs' own: 2.0)", "spin_cpu_s", "{:.2f}", "ratio"),
    ("wineserver CPU during spin (s)", "spin_wineserver_cpu_s", "{:.2f}", ""),
    ("idle worker + slots: CPU (% of one core)", "idle_cpu_pct", "{:.2f}", ""),
    ("idle Windows worker: wineserver CPU (% of one core)", "idle_wineserver_cpu_pct", "{:.2f}", ""),
    ("hand-off alone: pipe round trip parent <-> child (µs)", "hop_pipe_us", "{:.1f}", "ratio"),
    ("hand-off alone: the same through a relay thread and a loopback socket, select() (µs)", "hop_relay_us", "{:.1f}", ""),
    ("hand-off alone: loopback TCP round trip with a thread, select() (µs)", "hop_tcp_us", "{:.1f}", ""),
    ("libzmq round trip, Linux DEALER to a ROUTER echo on the platform (µs)", "hop_zmq_us", "{:.1f}", "ratio"),
    ("start and reap a process that exits at once (ms)", "hop_spawn_ms", "{:.2f}", "ratio"),
]
print()
print("| figure (median of the rounds; the rounds) | Linux worker | Windows worker (Wine) | Windows vs Linux |")
print("|---|---|---|---|")
for label, key, fmt, kind in lines:
    l, w = med("linux", key), med("windows", key)
    if kind == "ratio" and l and w is not None:
        rel = "%.3gx" % (w / l)
    elif kind == "points" and l is not None and w is not None:
        rel = "%+.1f points" % (w - l)
    else:
        rel = ""
    print("| %s | %s | %s | %s |" % (label, cell("linux", key, fmt), cell("windows", key, fmt), rel))
l, w = med("linux", "spin_pct"), med("windows", "spin_pct")
if l is not None and w is not None:
    print()
    print("target (Windows efficiency within 3 points of Linux, 200 x 10 ms busy): %s (%+.1f points)"
          % ("met" if w >= l - 3 else "MISSED", w - l))
EOF
