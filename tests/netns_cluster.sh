#!/usr/bin/env bash
# Multi-host test on a real network, no mocks: three hosts as network
# namespaces on a bridge (itself in a fourth namespace, so the machine's own
# network is never touched).
#
#   host1: playdoh-broker (binds tcp://*:5555, announces itself by beacon)
#   host2, host3: playdoh-worker with no endpoint: discovery by beacon only
#   host2: playdoh-submit, also without an endpoint
#
# Checks: a 1,000-job batch spreads over both worker hosts; host3's link is
# cut mid-batch (ip link set down) and every job still completes, on host2;
# host2's owner lowers its CPUs to 1 mid-batch (playdoh-worker ctl) and the
# broker never sees more than one busy slot there from then on;
# the link comes back and host3's worker rejoins. A beacon of another
# cluster name on the same LAN, malformed beacons and a beacon of another
# protocol version are ignored (and logged).
#
# Security is the default, as on a real lab network: every program has its
# key pair, the broker admits the workers and the client, and they trust
# the broker's key at any address (`*`, for discovery). A rogue broker on
# the LAN announces the same cluster with its own key: workers and
# playdoh-submit skip its beacons (and say so), and it gets nothing.
#
# Needs root (CAP_NET_ADMIN) and `ip netns`: where the runner lacks them the
# test is skipped (exit 77) with a message saying so. Namespaces, processes
# and files are removed on every exit, failure included; every wait is
# bounded.
#
# Usage: tests/netns_cluster.sh BUILD_DIR   (meson test runs it)
set -u
BUILD=${1:?usage: netns_cluster.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
SKIP=77

say() { echo "netns_cluster: $*" >&2; }
skip() { say "SKIP: $*"; exit $SKIP; }
fail() {
    say "FAIL: $*"
    for f in "$DIR"/*.log; do
        [ -f "$f" ] && { echo "---- $f (last 40 lines)" >&2; tail -n 40 "$f" >&2; }
    done
    exit 1
}

command -v ip >/dev/null 2>&1 || skip "the 'ip' command (iproute2) is not installed"
[ "$(id -u)" -eq 0 ] || skip "creating network namespaces needs root (CAP_NET_ADMIN)"
for p in playdoh-broker playdoh-worker playdoh-submit playdoh-keygen; do
    [ -x "$BUILD/$p" ] || fail "$BUILD/$p is not built"
done

TAG=pd$$
NS_SW=${TAG}sw
NS=("${TAG}h1" "${TAG}h2" "${TAG}h3")
# A /24 picked per run, so that parallel runs on one machine do not meet.
NET="10.$((100 + $$ % 100)).$(( ($$ / 100) % 250 ))"
CLUSTER="t$$"
BPORT=$((20000 + $$ % 20000))
DIR=$(mktemp -d /tmp/playdoh-netns-XXXXXX)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    sleep 0.5
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    # Anything still running inside our namespaces (slot processes...).
    for ns in "${NS[@]}" "$NS_SW"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ip netns add "$NS_SW" 2>"$DIR/ip.err" ||
    skip "cannot create a network namespace: $(cat "$DIR/ip.err")"
ip -n "$NS_SW" link add br0 type bridge 2>"$DIR/ip.err" ||
    skip "cannot create a bridge: $(cat "$DIR/ip.err")"
ip -n "$NS_SW" link set br0 up
ip -n "$NS_SW" link set lo up
for i in 1 2 3; do
    ns=${NS[$((i - 1))]}
    ip netns add "$ns" || fail "ip netns add $ns"
    ip link add "${TAG}e$i" type veth peer name "${TAG}p$i" || fail "veth pair $i"
    ip link set "${TAG}e$i" netns "$ns" || fail "veth into $ns"
    ip link set "${TAG}p$i" netns "$NS_SW" || fail "veth into the switch"
    ip -n "$ns" link set "${TAG}e$i" name eth0
    ip -n "$ns" addr add "$NET.$i/24" broadcast "$NET.255" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    ip -n "$NS_SW" link set "${TAG}p$i" master br0
    ip -n "$NS_SW" link set "${TAG}p$i" up
done
say "hosts ${NS[*]} on $NET.0/24, cluster '$CLUSTER', beacons on UDP port $BPORT"

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
export PLAYDOH_CONFIG=/dev/null ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

# Waits up to $1 seconds for command "$2..." to succeed.
wait_for() {
    local limit=$1; shift
    local t=0
    while [ "$t" -lt $((limit * 10)) ]; do
        "$@" && return 0
        sleep 0.1
        t=$((t + 1))
    done
    return 1
}

# Keys: one pair per program (docs/security.md, "Set up a lab").
keygen() { "$BUILD/playdoh-keygen" --config-dir "$DIR/k-$1" --name "$1" 2>/dev/null; }
for k in broker other rogue w2 w3 client; do
    keygen "$k" >"$DIR/$k.pub" || fail "playdoh-keygen for $k failed"
done
BROKER_KEY=$(cat "$DIR/broker.pub")
for w in w2 w3; do
    "$BUILD/playdoh-keygen" --config-dir "$DIR/k-broker" allow "$DIR/k-$w/id.key" \
        --role worker 2>/dev/null || fail "allow $w"
done
"$BUILD/playdoh-keygen" --config-dir "$DIR/k-broker" allow "$(cat "$DIR/client.pub")" \
    --role client --name client 2>/dev/null || fail "allow the client"
for k in w2 w3 client; do
    "$BUILD/playdoh-keygen" --config-dir "$DIR/k-$k" trust '*' "$BROKER_KEY" 2>/dev/null ||
        fail "trust the broker in $k"
done

# A stranger: another cluster's broker on the same LAN (host1 too), and a
# rogue broker announcing our cluster with a key nobody trusts.
in_ns "${NS[0]}" "$BUILD/playdoh-broker" --bind "tcp://*:5556" --cluster "other$$" \
    --beacon-port "$BPORT" --beacon-interval-ms 200 --no-journal --log-level info \
    --config-dir "$DIR/k-other" 2>"$DIR/other.log" &
PIDS+=($!)
in_ns "${NS[0]}" "$BUILD/playdoh-broker" --bind "tcp://*:5557" --cluster "$CLUSTER" \
    --beacon-port "$BPORT" --beacon-interval-ms 200 --no-journal --log-level info \
    --config-dir "$DIR/k-rogue" 2>"$DIR/rogue.log" &
PIDS+=($!)
for i in 2 3; do
    in_ns "${NS[$((i - 1))]}" "$BUILD/playdoh-worker" --cluster "$CLUSTER" \
        --beacon-port "$BPORT" --cpus 2 --heartbeat-ms 200 --name "host$i" \
        --cache "$DIR/cache$i" --control "$DIR/w$i.ctl" --log-level info \
        --config-dir "$DIR/k-w$i" 2>"$DIR/worker$i.log" &
    PIDS+=($!)
done
# The workers hear the stranger's and the rogue's beacons before the real
# broker exists (once a worker has found its broker it stops listening, so
# the order is forced here rather than left to timing).
other_ignored() { grep -q "ignored a beacon from $NET.1: it is for cluster 'other$$'" "$DIR/worker2.log"; }
wait_for 10 other_ignored || fail "worker 2 did not log the other cluster's beacon as ignored"
rogue_ignored() { grep -q "ignoring a beacon: broker tcp://$NET.1:5557 (key .*) is not trusted" "$DIR/worker2.log"; }
wait_for 10 rogue_ignored || fail "worker 2 did not say it ignored the rogue broker's beacon"
in_ns "${NS[0]}" "$BUILD/playdoh-broker" --bind "tcp://*:5555" --cluster "$CLUSTER" \
    --beacon-port "$BPORT" --beacon-interval-ms 200 --heartbeat-ms 200 --liveness 5 \
    --journal "$DIR/broker.journal" --log-level info --config-dir "$DIR/k-broker" \
    2>"$DIR/broker.log" &
PIDS+=($!)
T_START=$(now_ms)

# playdoh-submit on host2, discovering the broker by its beacon too.
submit() {
    in_ns "${NS[1]}" "$BUILD/playdoh-submit" --cluster "$CLUSTER" --config-dir "$DIR/k-client" \
        -q "$@"
}
cluster_json() { submit cluster --json 2>>"$DIR/submit.log"; }
hosts_with_slots() {
    local want=$1 j
    j=$(cluster_json) || return 1
    [ "$(echo "$j" | grep -o '"cpus":2' | wc -l)" -ge "$want" ]
}
# The beacon port must be the same for submit: a configuration file says so.
printf '[cluster]\nbeacon_port = %s\ndiscover_timeout_ms = 5000\n' "$BPORT" >"$DIR/submit.conf"
export PLAYDOH_CONFIG="$DIR/submit.conf"

wait_for 30 hosts_with_slots 2 || fail "the two workers did not join by beacon within 30 s"
grep -q "found broker tcp://$NET.1:5555 of cluster '$CLUSTER' by its beacon" "$DIR/worker2.log" ||
    fail "worker 2 did not say it found the broker by its beacon"
say "both workers joined by beacon within $(( $(now_ms) - T_START )) ms of the broker's start; the other cluster's beacon was ignored"
grep -q "listening on tcp://.*:5555 with CurveZMQ" "$DIR/broker.log" ||
    fail "the broker on the LAN did not run CurveZMQ by default"
grep -q "joined with" "$DIR/rogue.log" && fail "a worker joined the rogue broker"
say "the rogue broker's beacons were skipped (key not trusted); it got no worker"

# Malformed beacons and one of another protocol version, broadcast from
# host1: ignored and logged, nothing else changes.
if command -v python3 >/dev/null 2>&1; then
    in_ns "${NS[0]}" python3 - "$NET.255" "$BPORT" "$CLUSTER" <<'PY' || fail "cannot send the bad beacons"
import socket, struct, sys
addr, port, cluster = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
bad = [b"PDB\x01\x15\xb3\x00" + bytes([len(cluster) + 9]) + cluster,   # truncated
       b"PDB\x02\x15\xb3\x00" + bytes([len(cluster)]) + cluster]       # version 2
for _ in range(3):
    for b in bad:
        s.sendto(b, (addr, port))
PY
    got() { grep -q "ignored a beacon from $NET.1: beacon truncated" "$DIR/worker3.log" &&
            grep -q "ignored a beacon from $NET.1: .*protocol version 2" "$DIR/worker3.log"; }
    wait_for 10 got || fail "worker 3 did not log the malformed and version-2 beacons as ignored"
    hosts_with_slots 2 || fail "the bad beacons disturbed the workers"
    say "malformed and version-2 beacons ignored and logged; both workers still registered"
fi

# playdoh-submit for a cluster nobody announces: it says so and fails.
printf '[cluster]\nbeacon_port = %s\ndiscover_timeout_ms = 1000\n' "$BPORT" >"$DIR/quick.conf"
out=$(PLAYDOH_CONFIG="$DIR/quick.conf" PLAYDOH_CONNECT_TIMEOUT_MS=1000 \
      in_ns "${NS[1]}" "$BUILD/playdoh-submit" --cluster "nobody$$" --config-dir "$DIR/k-client" \
      cluster 2>&1)
rc=$?
[ $rc -eq 3 ] || fail "playdoh-submit for an unknown cluster exited $rc, not 3: $out"
echo "$out" | grep -q "no beacon of cluster 'nobody$$' heard on UDP port $BPORT" ||
    fail "playdoh-submit did not say no beacon was heard: $out"

# The batch: 1,000 jobs of ~30 ms, each returning 3x+1 (checked below).
cat >"$DIR/mod.c" <<'EOF'
#include <playdoh_task.h>
#include <time.h>
PD_TASK_DOUBLE(slow, x)
{
    struct timespec ts = {0, 30 * 1000000};
    nanosleep(&ts, NULL);
    return 3 * x + 1;
}
EOF
seq 1 1000 >"$DIR/args.jsonl"
T_MAP=$(now_ms)
submit map "$DIR/mod.c" slow "$DIR/args.jsonl" >"$DIR/out.jsonl" 2>"$DIR/map.log" &
MAP=$!
PIDS+=($MAP)

done_on() { # done_on HOST: jobs done by that host, as the broker counts them
    cluster_json | tr '{' '\n' | grep "\"host\":\"$1\"" | grep -o '"done":[0-9]*' | cut -d: -f2
}
spread() {
    local a b
    a=$(done_on host2); b=$(done_on host3)
    [ "${a:-0}" -ge 20 ] && [ "${b:-0}" -ge 20 ]
}
wait_for 60 spread || fail "the batch did not spread over both worker hosts (host2: $(done_on host2), host3: $(done_on host3))"
say "batch spread: host2 did $(done_on host2), host3 did $(done_on host3) so far; cutting host3's link"

ip -n "${NS[2]}" link set eth0 down || fail "ip link set down"
T_CUT=$(now_ms)

# Every job completes, on host2.
t=0
while kill -0 "$MAP" 2>/dev/null && [ $t -lt 1200 ]; do sleep 0.1; t=$((t + 1)); done
kill -0 "$MAP" 2>/dev/null && fail "the batch did not finish within 120 s of the cut"
wait "$MAP"
rc=$?
[ $rc -eq 0 ] || fail "playdoh-submit map exited with $rc: $(tail -n 5 "$DIR/map.log")"
[ "$(wc -l <"$DIR/out.jsonl")" -eq 1000 ] || fail "$(wc -l <"$DIR/out.jsonl") results, not 1000"
expected=$(seq 1 1000 | awk '{ printf "%.1f\n", 3 * $1 + 1 }' | md5sum)
got=$(awk '{ printf "%.1f\n", $1 }' "$DIR/out.jsonl" | md5sum)
[ "$expected" = "$got" ] || fail "the results are not 3x+1 for x = 1..1000, in order"
grep -q "worker host3/.* lost (silent for" "$DIR/broker.log" ||
    fail "the broker did not declare host3 lost"
T_END=$(now_ms)
say "all 1000 jobs done, correct and in order: batch $(( T_END - T_MAP )) ms, of which $(( T_END - T_CUT )) ms after the cut; host3 was declared lost"

# The link comes back: host3's worker rejoins.
ip -n "${NS[2]}" link set eth0 up || fail "ip link set up"
T_UP=$(now_ms)
host3_back() { cluster_json | tr '{' '\n' | grep -q '"host":"host3","id":"[^"]*","pid":[0-9]*,"cpus":2'; }
wait_for 60 host3_back || fail "host3's worker did not rejoin within 60 s of the link coming back"
say "host3's worker rejoined $(( $(now_ms) - T_UP )) ms after its link came back"

# It works again, and host2's owner lowers its CPUs mid-batch: from then on
# the broker never sees more than one busy slot there.
seq 1 300 >"$DIR/args2.jsonl"
submit map "$DIR/mod.c" slow "$DIR/args2.jsonl" >"$DIR/out2.jsonl" 2>>"$DIR/map.log" &
MAP2=$!
PIDS+=($MAP2)
busy_on() { cluster_json | tr '{' '\n' | grep "\"host\":\"$1\"" | grep -o '"busy":[0-9]*' | cut -d: -f2; }
two_busy() { [ "$(busy_on host2)" = 2 ]; }
wait_for 30 two_busy || fail "host2 never ran 2 jobs at once in the second batch"
"$BUILD/playdoh-worker" ctl --control "$DIR/w2.ctl" --cpus 1 >/dev/null || fail "ctl --cpus 1 failed"
sleep 0.6 # the jobs running at the change finish (30 ms), then a heartbeat reports
max=0
for _ in $(seq 15); do
    b=$(busy_on host2)
    [ "${b:-0}" -gt "$max" ] && max=$b
    sleep 0.1
done
[ "$max" -le 1 ] || fail "host2 ran $max jobs at once after ctl --cpus 1"
t=0
while kill -0 "$MAP2" 2>/dev/null && [ $t -lt 1200 ]; do sleep 0.1; t=$((t + 1)); done
wait "$MAP2" || fail "the second batch failed: $(tail -n 5 "$DIR/map.log")"
[ "$(wc -l <"$DIR/out2.jsonl")" -eq 300 ] || fail "the second batch lost results"
say "second batch done on both hosts; after ctl --cpus 1, host2 ran at most $max job at once"
say "PASS"
exit 0
