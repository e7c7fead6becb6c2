#!/usr/bin/env bash
# Pilot workers under Slurm, timed on a real one-node Slurm started on this
# machine (the set-up of tests/slurm_pilots.sh: root, Debian's slurm-wlm and
# munge, loopback, private configuration; torn down at the end):
#
#  1. start-up: from `playdoh-submit slurm --workers 2` to the first job
#     running on a pilot (a job queued beforehand stamps the time it starts),
#     with the pilots' registration in between; median of R rounds;
#  2. throughput: 200 jobs of 10 ms through 2 running pilots (a `map`, all
#     results back), and the same 200 tasks of 10 ms as a plain Slurm job
#     array `--array=0-199%2` (sbatch --wait: until the last task ends), on
#     the same Slurm, in the same run; ratio Playdoh / Slurm.
#
# Usage (release build recommended):
#   meson setup build-release --buildtype=release -Dtests=false && ninja -C build-release
#   PLAYDOH_BINDIR=build-release bash bench/bench_slurm.sh [ROUNDS]
set -euo pipefail
ROUNDS=${1:-3}
[[ "$ROUNDS" =~ ^[1-9][0-9]?$ ]] || { echo "usage: bench_slurm.sh [ROUNDS 1-99]" >&2; exit 2; }
PD_SLURM_SOURCED=1
# shellcheck source=../tests/slurm_pilots.sh
source "$(cd "$(dirname "$0")" && pwd)/../tests/slurm_pilots.sh"
pd_slurm_prereqs
exec 9>/tmp/playdoh-slurm-test.lock
flock -w 600 9 || skip "another Slurm test or bench held the lock for 10 minutes"
pd_slurm_start
pd_broker_start
SUBMIT="$BIN/playdoh-submit"
now() { date +%s.%N; }
# Seconds since midnight of a log time "HH:MM:SS.mmm" (today).
tod() { awk -F: '{ printf "%.3f\n", $1 * 3600 + $2 * 60 + $3 }' <<<"$1"; }
tod_now() { tod "$(date +%H:%M:%S.%N)"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

cat >"$D/bench.c" <<'EOF'
#include <playdoh_task.h>
#include <time.h>
/* The wall-clock time (s) at which the job started. */
PD_TASK_DOUBLE(stamp, x)
{
    (void) x;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}
/* 10 ms of work, then x squared. */
PD_TASK_DOUBLE(ten_ms, x)
{
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return x * x;
}
EOF
# Compile the module once, so that no round measures the compiler.
"$BIN/playdoh-broker" --bind 'tcp://127.0.0.1:*' --ready-fd 3 --worker-cpus 1 \
    --cache "$D/cache" 3>"$D/warm.ep" 2>/dev/null &
warm=$!
PIDS+=("$warm")
wait_for 20 test -s "$D/warm.ep"
echo 1 | "$SUBMIT" -q --broker "$(head -n 1 "$D/warm.ep")" map "$D/bench.c" stamp >/dev/null
stop_pid "$warm"

PILOT=(slurm --workers 2 --cpus-per-worker 1 --broker "$EP" --idle-exit 60
       --output "$D/pilot-%A_%a.log" --worker-arg="--cache=$D/cache")
pilots_gone() { queue_empty; }
starts=()
regs=()
sbs=()
for ((r = 1; r <= ROUNDS; r++)); do
    id=$(echo 0 | "$SUBMIT" -q --broker "$EP" map --detach "$D/bench.c" stamp)
    before=$(grep -c "joined" "$D/log/broker.log" || true)
    t0=$(now)
    t0d=$(tod_now)
    job=$("$SUBMIT" -q "${PILOT[@]}")
    t_sb=$(now)
    "$SUBMIT" -q --broker "$EP" wait --wait 120 "$id"
    started=$("$SUBMIT" --broker "$EP" results --release "$id" |
        python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["value"])')
    # The first pilot's registration, from the broker's log (HH:MM:SS.mmm).
    reg=$(grep "joined" "$D/log/broker.log" | sed -n "$((before + 1))p" | cut -d' ' -f1)
    starts+=("$(sub "$started" "$t0")")
    sbs+=("$(sub "$t_sb" "$t0")")
    regs+=("$(sub "$(tod "$reg")" "$t0d")")
    note_pilots
    "$SUBMIT" -q slurm --cancel "$job"
    wait_for 60 pilots_gone || fail "pilots of job $job did not end"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# Throughput, Playdoh: 2 pilots up, 200 jobs of 10 ms, every result back.
job=$("$SUBMIT" -q "${PILOT[@]}")
wait_for 90 bash -c "[ \$(grep -c 'Slurm job ${job}_' '$D/log/broker.log') -ge 2 ]" ||
    fail "2 pilots did not join"
note_pilots
seq 1 200 >"$D/args"
t0=$(now)
"$SUBMIT" -q --broker "$EP" map "$D/bench.c" ten_ms "$D/args" >"$D/pd.out"
t1=$(now)
[ "$(wc -l <"$D/pd.out")" -eq 200 ] || fail "Playdoh returned $(wc -l <"$D/pd.out") results"
pd_wall=$(sub "$t1" "$t0")
"$SUBMIT" -q slurm --cancel "$job"
wait_for 60 pilots_gone || fail "pilots did not end"

# Throughput, Slurm: the same 200 tasks as a job array, 2 at a time.
mkdir -p "$D/array"
cat >"$D/array.sh" <<EOF
#!/bin/sh
#SBATCH --array=0-199%2
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --output=/dev/null
sleep 0.01
echo \$(( (SLURM_ARRAY_TASK_ID + 1) * (SLURM_ARRAY_TASK_ID + 1) )) > $D/array/\$SLURM_ARRAY_TASK_ID
EOF
t0=$(now)
sbatch --wait --parsable "$D/array.sh" >/dev/null
t1=$(now)
n=$(find "$D/array" -type f | wc -l)
[ "$n" -eq 200 ] || fail "the Slurm array wrote $n results, not 200"
sl_wall=$(sub "$t1" "$t0")

echo "bench_slurm: one-node Slurm $(sinfo -V | cut -d' ' -f2) on $(hostname -s) ($(nproc) cores), $ROUNDS rounds"
echo "start-up, playdoh-submit slurm -> sbatch returned:     median $(median "${sbs[@]}") s  (${sbs[*]})"
echo "start-up, playdoh-submit slurm -> first pilot joined:  median $(median "${regs[@]}") s  (${regs[*]})"
echo "start-up, playdoh-submit slurm -> first job running:   median $(median "${starts[@]}") s  (${starts[*]})"
awk -v p="$pd_wall" -v s="$sl_wall" 'BEGIN {
    printf "200 jobs of 10 ms, 2 pilots (Playdoh map):     %7.3f s  %8.1f jobs/s  (ideal 1.000 s: %.1f %%)\n", p, 200 / p, 100 / p
    printf "200 tasks of 10 ms, Slurm --array=0-199%%2:      %7.3f s  %8.1f jobs/s\n", s, 200 / s
    printf "ratio Playdoh / Slurm array (throughput):       %7.1fx\n", s / p
}'
