#!/usr/bin/env bash
# The dashboard in a real browser (issue 19): a broker with --http, two
# workers and a batch of slow jobs; headless Chromium from Debian, driven
# by puppeteer-core (web/browser-test.mjs), checks that the cluster page
# lists both workers, that the batch's progress goes up, and that a killed
# worker shows as lost, and that a failed job's error is listed.
#   web/browser-test.sh [BUILD_DIR] [--screenshots DIR]
# --screenshots saves a PNG of each state into DIR (docs/img for the guide).
# Needs chromium, node and npm (scripts/install-deps.sh --browser).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(realpath "${1:-build-dev}")
shots=""
[ "${2:-}" = --screenshots ] && shots=$(realpath -m "${3:?--screenshots wants a directory}")
[ -d "$here/node_modules/puppeteer-core" ] ||
    (cd "$here" && npm ci --no-audit --no-fund --ignore-scripts >/dev/null)
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${KEEP:-}" ] && echo "kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT
port=$((20000 + $$ % 20000))
bport=$((port + 1))
ep=tcp://127.0.0.1:$bport
export PLAYDOH_CONFIG=/dev/null PLAYDOH_CONFIG_DIR=$tmp/conf
"$build/playdoh-broker" --bind "$ep" --no-journal --no-beacon --heartbeat-ms 200 --liveness 5 \
    --http "127.0.0.1:$port" 2>"$tmp/broker.log" &
pids+=($!)
for i in 1 2; do
    "$build/playdoh-worker" --broker "$ep" --cpus 2 --heartbeat-ms 200 --cache "$tmp/cache$i" \
        --control "$tmp/w$i.ctl" --name "node$i" 2>"$tmp/worker$i.log" &
    pids+=($!)
    eval "worker$i=$!"
done
cat >"$tmp/slow.c" <<'C'
#include <playdoh_task.h>
#include <time.h>
PD_TASK_DOUBLE(slow_square, x) {
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
    return x * x;
}
PD_TASK(checked, t) {
    double x;
    if (pd_arg_double(t, &x) || x < 0)
        return pd_task_fail(t, "want a non-negative number");
    return pd_out_double(t, x);
}
C
seq 1 240 >"$tmp/args.jsonl"
sleep 1
"$build/playdoh-submit" --broker "$ep" map "$tmp/slow.c" slow_square "$tmp/args.jsonl" \
    >"$tmp/results.jsonl" 2>"$tmp/submit.log" &
pids+=($!)
# One job that fails, for the page's failed jobs (its exit status says so).
echo -7 | "$build/playdoh-submit" --broker "$ep" map "$tmp/slow.c" checked \
    >"$tmp/failed.jsonl" 2>"$tmp/failed.log" || true
node "$here/browser-test.mjs" "http://127.0.0.1:$port/" "$worker2" "$shots"
