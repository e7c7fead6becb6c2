#!/usr/bin/env bash
# Runs one libFuzzer harness for a bounded time over the committed seeds and
# a private working corpus (new inputs never land in the source tree). Fails
# on a crash, a leak, a sanitizer report or a time-out; prints libFuzzer's
# final statistics (executions, coverage) for docs/security.md.
#   run_fuzz.sh HARNESS SEEDS WORKDIR SECONDS DICT      (FUZZ_SECONDS overrides SECONDS)
set -euo pipefail
exe=$1 seeds=$2 work=$3 seconds=${FUZZ_SECONDS:-$4} dict=$5
mkdir -p "$work/corpus" "$work/artifacts"
echo "$(basename "$exe"): ${seconds} s over $seeds (+ $work/corpus)"
# libFuzzer exits with 77 on a finding by default, which meson reads as
# "skipped": every finding must fail the test instead.
exec "$exe" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 -max_len=65536 \
    -error_exitcode=1 -timeout_exitcode=1 \
    -print_final_stats=1 -dict="$dict" -artifact_prefix="$work/artifacts/" \
    "$work/corpus" "$seeds"
