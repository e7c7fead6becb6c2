# Shared by the scripts that run a cluster with Windows workers under Wine
# (tests/win/wine_cluster.sh, tests/win/wine_service.sh,
# bench/bench_windows.sh); sourced after LB (a Linux build directory) and EP
# (the broker's endpoint) are set.

# check NAME STATUS [DETAIL]: counts and prints one check.
check() {
    if [ "$2" -eq 0 ]; then
        pass=$((pass + 1)); echo "ok   $1"
    else
        fail=$((fail + 1)); echo "FAIL $1${3:+: $3}"
    fi
}

submit() { timeout 300 "$LB/playdoh-submit" -b "$EP" -q --no-progress "$@"; }

# Waits (at most $2 s) until `cluster --json` satisfies the python expression
# $1 over `ws` (the workers).
wait_cluster() {
    local until=$((SECONDS + $2))
    while [ $SECONDS -lt $until ]; do
        if submit cluster --json 2>/dev/null | python3 -c "
import json, sys
ws = json.load(sys.stdin)['workers']
sys.exit(0 if ($1) else 1)"; then
            return 0
        fi
        sleep 0.3
    done
    return 1
}

# squares_ok FILE N: FILE holds the JSON lines 1.0, 4.0, ... N*N (a map of
# examples/square.c over 1..N), in order.
squares_ok() {
    python3 -c '
import json, sys
vals = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(0 if vals == [float(i * i) for i in range(1, int(sys.argv[2]) + 1)] else 1)' "$1" "$2"
}
