#!/bin/bash
# The broker's instructions (valgrind --tool=callgrind): the same whatever
# else the machine runs, so builds compare on a busy machine.
#   bench/bench_broker_instr.sh map BUILD N        N no-op jobs through a worker
#   bench/bench_broker_instr.sh results BUILD K    K `results 1-100000` calls over
#                                                   100,000 queued jobs, no worker
# Prints the broker's total (all threads); run each mode at two sizes and take
# the difference (map 2000 and 22000: per job; results 1 and 6: per call), for
# each build in turn (docs/performance.md, "Winning it back"). The client is
# BUILD's playdoh-submit, or $PLAYDOH_SUBMIT. Needs valgrind.
MODE=$1 REL=$2 N=$3
[ -n "$N" ] || { sed -n 2,10p "$0"; exit 2; }
SRC=$(cd "$(dirname "$0")/.." && pwd)
SUBMIT=${PLAYDOH_SUBMIT:-$REL/playdoh-submit}
T=$(mktemp -d /tmp/bench-instr.XXXXXX)
OUT=$T/callgrind.out
port=$((20000 + RANDOM % 20000))
ep=tcp://127.0.0.1:$port
export HOME=$T PLAYDOH_CONFIG=/dev/null
valgrind --tool=callgrind --callgrind-out-file=$OUT $REL/playdoh-broker --bind $ep --no-journal \
    --no-beacon --log-level warn --config /dev/null 2>$T/vg.log &
bp=$!
sleep 2
if [ "$MODE" = map ]; then
    $REL/playdoh-worker --broker $ep --cpus 2 --cache $T/cache --log-level warn \
        --config /dev/null 2>$T/w.log &
    wp=$!
    sleep 1
    seq 1 $N | timeout 600 $SUBMIT -b $ep map $SRC/examples/square.c square >$T/out.txt
    echo "results: $(wc -l <$T/out.txt) of $N"
    kill -TERM $wp
    wait $wp 2>/dev/null
else
    seq 1 100000 | $SUBMIT -b $ep map --detach $SRC/examples/square.c square >/dev/null
    for i in $(seq 1 $N); do $SUBMIT -b $ep results 1-100000 >/dev/null; done
fi
kill -TERM $bp
wait $bp 2>/dev/null
callgrind_annotate $OUT 2>/dev/null | grep -m1 "PROGRAM TOTALS"
callgrind_annotate --inclusive=yes $OUT 2>/dev/null | grep -m1 "pd_broker_on_fetch " |
    sed 's/^/fetches, inclusive: /'
rm -rf $T
