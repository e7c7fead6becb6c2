#!/usr/bin/env bash
# bench_old_new: bench_async of two builds side by side in one run (e.g. the
# tree before a change and after it), taking turns (old, new; then new, old;
# ...) so that the machine's load drift meets both. Each turn runs
#
#   bench_async 2 JOBS JROUNDS           round trip, throughput, efficiency,
#                                        and the journal section
#   bench_async --latency 2 300 1        the round trip of one job on six clusters
#
# and records the CPU time (user + system) of the whole run, the broker, its
# worker and their slot processes included (they are all reaped children):
# unlike wall time, it hardly depends on the load. Prints each run's figures,
# then a markdown table of the medians over ROUNDS and new/old ratios.
#
# Usage: bench/bench_old_new.sh OLD_BUILD NEW_BUILD [ROUNDS (3)] [JOBS (100000)] [JROUNDS (3)]
# (release builds: meson setup DIR --buildtype=release; ninja -C DIR)
# The journals go to $PLAYDOH_BENCH_DIR (default /tmp), as bench_async's.
set -u
OLD=${1:?usage: bench_old_new.sh OLD_BUILD NEW_BUILD [ROUNDS] [JOBS] [JROUNDS]}
NEW=${2:?usage: bench_old_new.sh OLD_BUILD NEW_BUILD [ROUNDS] [JOBS] [JROUNDS]}
ROUNDS=${3:-3}
JOBS=${4:-100000}
JROUNDS=${5:-3}
for b in "$OLD" "$NEW"; do
    [ -x "$b/bench/bench_async" ] || { echo "no $b/bench/bench_async" >&2; exit 2; }
done
T=$(mktemp -d /tmp/pd-bench-oldnew-XXXXXX)
trap 'rm -rf "$T"' EXIT

# run NAME BUILD ROUND: the two bench_async runs, their output and CPU times in $T.
run() {
    python3 - "$2/bench/bench_async" "$T/$1.$3" "$JOBS" "$JROUNDS" <<'EOF' || exit 1
import resource, subprocess, sys
exe, out, jobs, jrounds = sys.argv[1:5]
def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
for tag, args in (("main", ["2", jobs, jrounds]), ("lat", ["--latency", "2", "300", "1"])):
    c0 = cpu()
    with open(out + "." + tag, "w") as f:
        rc = subprocess.run([exe] + args, stdout=f, stderr=subprocess.STDOUT, timeout=600).returncode
    with open(out + "." + tag, "a") as f:
        f.write("cpu_total_s %.3f\n" % (cpu() - c0))
    if rc != 0:
        sys.exit("%s %s failed (exit %d)" % (exe, " ".join(args), rc))
EOF
}

echo "bench_old_new: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "old: $OLD; new: $NEW; $ROUNDS rounds; bench_async 2 $JOBS $JROUNDS and --latency 2 300 1"
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then order="old new"; else order="new old"; fi
    for v in $order; do
        if [ "$v" = old ]; then b=$OLD; else b=$NEW; fi
        run "$v" "$b" "$r"
        echo "round $r $v: load $(cut -d' ' -f1 /proc/loadavg)"
        grep -hE "through Playdoh|in one batch:|efficiency|^  (no journal|journal,|raw|embedded|worker process)|cpu_total" \
            "$T/$v.$r.main" "$T/$v.$r.lat" | sed 's/^/    /'
    done
done
echo "load at the end $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$T" "$ROUNDS" "$JOBS" <<'EOF'
import re, statistics, sys
d, rounds, jobs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
main = [
    ("raw libzmq round trip, echo in another process (µs)", r"echo in another process:\s+([\d.]+) us", "{:.1f}"),
    ("round trip of one job, embedded cluster, median of 1000 (µs)", r"through Playdoh:\s+([\d.]+) us", "{:.1f}"),
    ("throughput, %s no-op jobs in one batch (jobs/s)" % jobs, r"in one batch: (\d+) jobs/s", "{:,.0f}"),
    ("efficiency, 200 jobs of 10 ms CPU on 2 slots (%)", r"ideal [\d.]+ s, ([\d.]+) %", "{:.1f}"),
    ("journal section, no journal: jobs/s (median of its rounds)", r"no journal \(--no-journal\)\s+(\d+) jobs/s", "{:,.0f}"),
    ("journal section, sync full: jobs/s", r"sync full \(default\)\s+(\d+) jobs/s", "{:,.0f}"),
    ("journal section, no journal: broker CPU per job (µs)", r"no journal \(--no-journal\)[^\n]*\n[^\n]*broker CPU ([\d.]+) us/job", "{:.2f}"),
    ("CPU time of the whole run, all processes (s)", r"cpu_total_s ([\d.]+)", "{:.2f}"),
]
lat = [
    ("--latency: raw libzmq, 2 processes (µs)", r"2 processes\s+([\d.]+) us", "{:.1f}"),
    ("--latency: embedded worker, no journal (µs)", r"embedded worker, no journal\s+([\d.]+) us", "{:.1f}"),
    ("--latency: worker process, no journal (µs)", r"worker process, no journal\s+([\d.]+) us", "{:.1f}"),
    ("--latency: embedded worker, sync full (µs)", r"embedded worker, journal sync full\s+([\d.]+) us", "{:.1f}"),
    ("--latency: CPU time of the run, all processes (s)", r"cpu_total_s ([\d.]+)", "{:.2f}"),
]
def vals(v, tag, pat):
    out = []
    for r in range(1, rounds + 1):
        m = re.search(pat, open("%s/%s.%d.%s" % (d, v, r, tag)).read())
        out.append(float(m.group(1)) if m else float("nan"))
    return out
print()
print("| figure (median of %d runs; the runs) | old | new | new/old |" % rounds)
print("|---|---|---|---|")
for tag, rows in (("main", main), ("lat", lat)):
    for label, pat, fmt in rows:
        o, n = vals("old", tag, pat), vals("new", tag, pat)
        mo, mn = statistics.median(o), statistics.median(n)
        cell = lambda m, xs: fmt.format(m) + " (" + ", ".join(fmt.format(x) for x in xs) + ")"
        print("| %s | %s | %s | %.2f |" % (label, cell(mo, o), cell(mn, n), mn / mo if mo else float("nan")))
# Round trips as ratios to the raw baseline of the same run.
for label, tag, num, den in (
        ("round trip / raw, embedded cluster (bench_async)", "main", main[1][1], main[0][1]),
        ("--latency embedded no journal / raw", "lat", lat[1][1], lat[0][1]),
        ("--latency worker process no journal / raw", "lat", lat[2][1], lat[0][1])):
    o = [a / b for a, b in zip(vals("old", tag, num), vals("old", tag, den))]
    n = [a / b for a, b in zip(vals("new", tag, num), vals("new", tag, den))]
    mo, mn = statistics.median(o), statistics.median(n)
    f = lambda xs: ", ".join("%.2f" % x for x in xs)
    print("| %s | %.2fx (%s) | %.2fx (%s) | %.2f |" % (label, mo, f(o), mn, f(n), mn / mo))
EOF
