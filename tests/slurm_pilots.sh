#!/usr/bin/env bash
# Pilot workers under a real Slurm (no mocks): starts munged, slurmctld and
# slurmd as a one-node cluster on this machine (loopback only, a private
# configuration, key, state and ports in a temp directory: no system file is
# touched), a playdoh-broker, and 2 pilot workers through
# `playdoh-submit slurm`; runs a 1,000-job batch through them, cancels one
# pilot mid-batch with scancel (through `playdoh-submit slurm --cancel`),
# checks that every job completes with the right result (retries 1: a job
# charged for its pilot's end would fail), that the pilots registered with
# their Slurm ids, and that the other pilot leaves by its idle time-out.
# Then pilots under CurveZMQ: one with an admitted key (given as files)
# runs jobs, one with a stranger's key is refused. Tears everything down,
# even on failure.
#
# Needs root and Debian's slurm-wlm and munge; skips (exit 77) saying so
# otherwise. Where they are missing, CI (CI set) or PLAYDOH_SLURM_INSTALL=1
# installs them with scripts/install-deps.sh --slurm.
#
# Usage: PLAYDOH_BINDIR=build bash tests/slurm_pilots.sh   (meson test slurm_pilots)
# Sourced by bench/bench_slurm.sh for the cluster set-up (PD_SLURM_SOURCED=1).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${PLAYDOH_BINDIR:-$here/../build}
BIN=$(cd "$BIN" && pwd)

skip() { echo "SKIP: $*" >&2; exit 77; }
say() { echo "slurm_pilots: $*" >&2; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# ---- prerequisites -----------------------------------------------------
slurm_missing() {
    local p
    for p in slurmctld slurmd sbatch squeue sinfo scancel munged; do
        command -v "$p" >/dev/null 2>&1 || { echo "$p"; return 0; }
    done
    return 1
}

pd_slurm_prereqs() {
    [ "$(id -u)" -eq 0 ] || skip "starting slurmctld, slurmd and munged needs root"
    if missing=$(slurm_missing) && { [ -n "${CI:-}" ] || [ "${PLAYDOH_SLURM_INSTALL:-0}" = 1 ]; }; then
        say "installing Slurm and munge (scripts/install-deps.sh --slurm)"
        bash "$here/../scripts/install-deps.sh" --slurm >&2 || skip "could not install Slurm"
    fi
    if missing=$(slurm_missing); then
        skip "Slurm is not installed ($missing missing): 'bash scripts/install-deps.sh --slurm' installs Debian's slurm-wlm and munge (or set PLAYDOH_SLURM_INSTALL=1)"
    fi
    command -v python3 >/dev/null || skip "python3 is needed to check results"
    for p in playdoh-broker playdoh-worker playdoh-submit playdoh-keygen; do
        [ -x "$BIN/$p" ] || fail "$BIN/$p not built: set PLAYDOH_BINDIR to the build directory"
    done
}

# ---- the one-node cluster ----------------------------------------------
D=""            # temp directory: configuration, key, state, logs
PIDS=()         # daemons and broker started here, stopped in reverse order
PILOT_PIDS=()   # playdoh-worker pids the broker reported (pilots)

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits up to $1 seconds for the command "${@:2}" to succeed (a function, so
# that what it tests is looked at afresh each time).
wait_for() {
    local t=$1
    shift
    local i
    for ((i = 0; i < t * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

show_logs() {
    [ -n "$D" ] && [ -d "$D" ] || return 0
    local f
    for f in "$D"/log/*.log "$D"/munge/munged.log "$D"/pilot-*.log; do
        [ -f "$f" ] || continue
        echo "---- $f (last 30 lines)" >&2
        tail -n 30 "$f" >&2 || true
    done
}

stop_pid() { # pid: SIGTERM, then SIGKILL after 10 s
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

pd_slurm_teardown() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then show_logs; fi
    if [ -n "$D" ] && [ -f "$D/slurm.conf" ] && [ ${#PIDS[@]} -gt 0 ]; then
        # Every job of this private cluster, then wait for them to end.
        local jobs
        jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
        [ -n "${jobs// /}" ] && scancel $jobs 2>/dev/null
        wait_for 20 queue_empty
    fi
    local p
    for p in "${PILOT_PIDS[@]}"; do # a pilot that outlived its job
        if [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' <"/proc/$p/cmdline" | grep -q "playdoh-worker.*$D"; then
            kill -KILL "$p" 2>/dev/null
        fi
    done
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
    [ -n "$D" ] && rm -rf "$D"
    exit "$rc"
}

pd_slurm_start() {
    D=$(mktemp -d /tmp/playdoh-slurm-XXXXXX)
    chmod 711 "$D" # munged wants its socket's directories searchable by all
    trap pd_slurm_teardown EXIT
    trap 'exit 1' INT TERM
    mkdir -p "$D/munge" "$D/state" "$D/spool" "$D/log" "$D/cache"
    chmod 711 "$D/munge"
    # munged: a key of its own, its own socket; nothing in /etc/munge changes.
    head -c 1024 /dev/urandom >"$D/munge/munge.key"
    chmod 400 "$D/munge/munge.key"
    local sock="$D/munge/munge.sock"
    munged -F --key-file="$D/munge/munge.key" --socket="$sock" --pid-file="$D/munge/munged.pid" \
        --seed-file="$D/munge/munged.seed" --log-file="$D/munge/munged.log" \
        2>>"$D/munge/munged.err" &
    PIDS+=($!)
    wait_for 20 test -S "$sock" || fail "munged did not start"

    local host ctl_port d_port
    host=$(hostname -s 2>/dev/null || uname -n)
    host=${host%%.*}
    ctl_port=$(free_port)
    d_port=$(free_port)
    export SLURM_CONF="$D/slurm.conf"
    cat >"$SLURM_CONF" <<EOF
# One-node Slurm for Playdoh's tests, on loopback (tests/slurm_pilots.sh).
ClusterName=playdoh-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=5
MaxArraySize=10001
NodeName=$host NodeAddr=127.0.0.1 NodeHostname=$host CPUs=4 State=UNKNOWN
PartitionName=pd Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    echo "CgroupPlugin=autodetect" >"$D/cgroup.conf" # 22.05 refuses "disabled"
    slurmctld -D -f "$SLURM_CONF" 2>>"$D/log/slurmctld.err" &
    PIDS+=($!)
    slurmd -D -f "$SLURM_CONF" -N "$host" 2>>"$D/log/slurmd.err" &
    PIDS+=($!)
    wait_for 60 bash -c 'sinfo -h -o %t | grep -qx idle' ||
        fail "the one-node Slurm did not come up (sinfo: $(sinfo -h 2>&1 | head -3))"
    say "Slurm $(sinfo -V | cut -d' ' -f2) up on $host (controller port $ctl_port)"
}

# Starts playdoh-broker on a free loopback port; sets EP.
pd_broker_start() {
    "$BIN/playdoh-broker" --bind 'tcp://127.0.0.1:*' --ready-fd 3 \
        --journal "$D/broker.journal" 3>"$D/endpoint" 2>"$D/log/broker.log" &
    PIDS+=($!)
    wait_for 20 test -s "$D/endpoint" || fail "the broker did not start"
    EP=$(head -n 1 "$D/endpoint")
}

# Records the pids of the pilots the broker has seen (for the teardown).
note_pilots() {
    local p
    for p in $(sed -n 's/.*(pid \([0-9]*\), Slurm job.*/\1/p' "$D/log/broker.log"); do
        PILOT_PIDS+=("$p")
    done
}

count_joined() { grep -c "Slurm job .* joined" "$D/log/broker.log" || true; }
joined_at_least() { [ "$(count_joined)" -ge "$1" ]; }
queue_empty() { [ -z "$(squeue -h -o %i 2>/dev/null)" ]; }

[ "${PD_SLURM_SOURCED:-0}" = 1 ] && return 0

# ---- the test ------------------------------------------------------------
pd_slurm_prereqs
exec 9>/tmp/playdoh-slurm-test.lock
flock -w 600 9 || skip "another Slurm test on this machine held the lock for 10 minutes"
pd_slurm_start
pd_broker_start
SUBMIT="$BIN/playdoh-submit"

# sbatch's refusal reaches the user with Slurm's own words.
set +e
out=$("$SUBMIT" slurm --workers 1 --cpus-per-worker 1 --broker "$EP" --partition nosuch 2>&1)
rc=$?
set -e
[ "$rc" -eq 3 ] || fail "a bad partition: exit $rc, not 3: $out"
grep -q "sbatch failed" <<<"$out" && grep -qi "partition" <<<"$out" ||
    fail "sbatch's error is not shown: $out"

# Two pilots of one CPU each.
job=$("$SUBMIT" -q slurm --workers 2 --cpus-per-worker 1 --broker "$EP" --idle-exit 10 \
    --output "$D/pilot-%A_%a.log" --worker-arg="--cache=$D/cache")
[[ "$job" =~ ^[0-9]+$ ]] || fail "playdoh-submit slurm printed '$job', not a Slurm job id"
say "pilots submitted as Slurm job $job"
wait_for 90 joined_at_least 2 || fail "2 pilots did not join the broker within 90 s"
note_pilots
view=$("$SUBMIT" --broker "$EP" cluster)
for t in 0 1; do
    grep -q "Slurm job ${job}_$t (id [0-9]*) step batch) joined with 1 cpus" "$D/log/broker.log" ||
        fail "pilot ${job}_$t did not register with its Slurm ids"
    grep -q " ${job}_$t.batch " <<<"$view" || fail "the cluster view does not show pilot ${job}_$t: $view"
done

# 1,000 jobs of 10 ms; retries 1: a job charged for a pilot's end would fail.
cat >"$D/sq.c" <<'EOF'
#include <playdoh_task.h>
#include <time.h>
PD_TASK_DOUBLE(slow_square, x)
{
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return x * x;
}
EOF
ids=$(seq 1 1000 | "$SUBMIT" --broker "$EP" map --detach --retries 1 "$D/sq.c" slow_square)
[[ "$ids" =~ ^[0-9]+-[0-9]+$ ]] || fail "map --detach printed '$ids'"
done_count() { "$SUBMIT" --broker "$EP" status "$ids" | grep -c '"done"' || true; }
done_at_least() { [ "$(done_count)" -ge "$1" ]; }
wait_for 120 done_at_least 150 || fail "the batch does not progress"
"$SUBMIT" -q slurm --cancel "${job}_0"
at=$(done_count)
say "cancelled pilot ${job}_0 with $at of 1000 jobs done"
[ "$at" -lt 1000 ] || fail "the batch ended before the cancel: make the jobs longer"
"$SUBMIT" --broker "$EP" wait --wait 180 "$ids" || fail "the batch did not finish"
"$SUBMIT" --broker "$EP" results "$ids" >"$D/results.jsonl"
python3 - "$D/results.jsonl" "${ids%-*}" <<'EOF'
import json, sys
first = int(sys.argv[2])
recs = [json.loads(l) for l in open(sys.argv[1])]
assert len(recs) == 1000, f"{len(recs)} results, not 1000"
for r in recs:
    i = r["id"] - first + 1
    assert r["state"] == "done", f"job {r['id']}: {r}"
    assert r["value"] == float(i * i), f"job {r['id']}: {r['value']} != {i * i}"
EOF

# The cancelled pilot said bye with jobs in hand (requeued uncounted).
rid=$(sed -n "s/.*worker [^ ]*\/\(w-[0-9a-f]*\) (pid [0-9]*, Slurm job ${job}_0 .*/\1/p" \
    "$D/log/broker.log" | head -n 1)
[ -n "$rid" ] || fail "no routing id for pilot ${job}_0"
line=$(grep "/$rid left (said bye)" "$D/log/broker.log" || true)
[ -n "$line" ] || fail "pilot ${job}_0 did not say bye when cancelled: $(grep "$rid" "$D/log/broker.log")"
n=$(sed -n 's/.*: \([0-9]*\) jobs requeued.*/\1/p' <<<"$line")
[ -n "$n" ] || fail "the broker did not say how many jobs pilot ${job}_0 gave back ($line)"
# Usually the pilot holds jobs at that moment; between two jobs it may hold
# none. Either way the results above show every job done once, none lost.
say "pilot ${job}_0 left on scancel: $n jobs in hand requeued, none lost"

# The other pilot gives its allocation back after 10 s without a job.
wait_for 60 queue_empty || fail "pilot ${job}_1 did not leave when idle: $(squeue)"
grep -q "idle time-out" "$D/pilot-${job}_1.log" || fail "pilot ${job}_1 ended, but not by its idle time-out"
say "pilot ${job}_1 left after its idle time-out"

# Pilots under CurveZMQ (docs/slurm.md, "Security set-up"): the broker
# forces CurveZMQ on loopback; the pilots get their key pair and the
# broker's public key as files; a pilot whose key is not admitted never
# joins, and the broker says why.
K="$BIN/playdoh-keygen"
"$K" --config-dir "$D/k-broker" --name broker >"$D/broker.pub" 2>/dev/null || fail "keygen broker"
for k in pilots stranger me; do
    "$K" --config-dir "$D/k-$k" --name "$k" >/dev/null 2>&1 || fail "keygen $k"
done
"$K" --config-dir "$D/k-broker" allow "$D/k-pilots/id.key" --role worker 2>/dev/null ||
    fail "allow the pilots' key"
"$K" --config-dir "$D/k-broker" allow "$D/k-me/id.key" --role client 2>/dev/null ||
    fail "allow the client's key"
"$BIN/playdoh-broker" --bind 'tcp://127.0.0.1:*' --secure --config-dir "$D/k-broker" \
    --ready-fd 3 3>"$D/endpoint2" 2>"$D/log/broker2.log" &
PIDS+=($!)
wait_for 20 test -s "$D/endpoint2" || fail "the secure broker did not start"
EP2=$(head -n 1 "$D/endpoint2")
sjob=$("$SUBMIT" -q slurm --workers 1 --cpus-per-worker 1 --broker "$EP2" --idle-exit 5 \
    --broker-key "$D/broker.pub" --worker-key "$D/k-pilots/id.key" --worker-arg=--secure \
    --output "$D/spilot-%A_%a.log" --worker-arg="--cache=$D/cache2")
[[ "$sjob" =~ ^[0-9]+$ ]] || fail "playdoh-submit slurm (secure) printed '$sjob'"
xjob=$("$SUBMIT" -q slurm --workers 1 --cpus-per-worker 1 --broker "$EP2" --idle-exit 5 \
    --broker-key "$D/broker.pub" --worker-key "$D/k-stranger/id.key" --worker-arg=--secure \
    --output "$D/xpilot-%A_%a.log" --worker-arg="--cache=$D/cache3")
secure_joined() { grep -q "Slurm job ${sjob}_0 .* joined" "$D/log/broker2.log"; }
stranger_refused() { grep -q "refused a connection from .* is not on the allow-list" "$D/log/broker2.log"; }
wait_for 90 secure_joined || fail "the pilot with an admitted key did not join the secure broker"
wait_for 30 stranger_refused || fail "the broker did not log the stranger pilot's refusal"
for p in $(sed -n 's/.*(pid \([0-9]*\), Slurm job.*/\1/p' "$D/log/broker2.log"); do
    PILOT_PIDS+=("$p")
done
grep -q "Slurm job ${xjob}_0 .* joined" "$D/log/broker2.log" && fail "a pilot with a stranger's key joined"
out=$(seq 1 20 | "$SUBMIT" --broker "$EP2" --secure --config-dir "$D/k-me" \
    --broker-key "$D/broker.pub" map "$D/sq.c" slow_square) || fail "map over CurveZMQ failed: $out"
[ "$(wc -l <<<"$out")" -eq 20 ] || fail "map over CurveZMQ gave $(wc -l <<<"$out") results, not 20"
"$SUBMIT" -q slurm --cancel "$xjob" || true
say "a pilot with an admitted key ran 20 jobs over CurveZMQ; a stranger's pilot was refused"
wait_for 60 queue_empty || fail "the secure pilots did not leave: $(squeue)"
say "PASS"
