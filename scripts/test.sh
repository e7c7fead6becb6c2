#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds with AddressSanitizer
# and UndefinedBehaviorSanitizer and warnings as errors, runs every suite;
# then, where clang has libFuzzer, builds the fuzz harnesses (tests/fuzz) in a
# second build directory and runs each for a bounded time (FUZZ_SECONDS,
# default 30); then the Windows build and its tests under Wine
# (scripts/test-windows.sh). With arguments (test names), only the main
# suite runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --tests
# The layering checks (issue 17), before anything is built: no new include
# cycle between folders, no new run of six lines repeated in the same shape
# (tools/*.allow list the known ones).
python3 tools/check_include_cycles.py
python3 tools/check_repeats.py
BUILD=${BUILD:-build-test}
if [ ! -d "$BUILD" ]; then
    meson setup "$BUILD" -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true
fi
ninja -C "$BUILD"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
meson test -C "$BUILD" --print-errorlogs --num-processes 2 "$@"
[ $# -eq 0 ] || exit 0

if command -v clang >/dev/null &&
   echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
   clang -x c - -fsanitize=fuzzer -o /dev/null 2>/dev/null; then
    FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
    if [ ! -d "$FUZZ_BUILD" ]; then
        CC=clang meson setup "$FUZZ_BUILD" -Dfuzz=enabled -Dtests=false \
            -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true
    fi
    ninja -C "$FUZZ_BUILD"
    meson test -C "$FUZZ_BUILD" --suite fuzz --print-errorlogs --num-processes 2
else
    echo "fuzz suite skipped: clang with libFuzzer not found (Debian: clang libclang-rt-dev)" >&2
fi

# Windows: the cross-build and its tests under Wine, against this build's
# Linux broker and worker.
LINUX_BUILD=$BUILD bash scripts/test-windows.sh
