#!/usr/bin/env bash
# What a first build needs, and no more (issue 16, item 10):
#  - scripts/install-deps.sh installs only what the build needs (no
#    Criterion, clang or fuzzing tools for the demo); --tests adds them;
#  - `meson setup -Dtests=false` (the demo's) probes neither Criterion, nor
#    a CUDA toolkit, nor pagmo (no C++ compiler, no CMake).
# apt-get, dpkg-query and sudo are stand-ins that record what would be
# installed.
set -u
SRC=$(cd "${1:?usage: build_options.sh SOURCE_DIR}" && pwd)
TMP=$(mktemp -d /tmp/playdoh-opts-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "build_options: FAIL: $*" >&2; exit 1; }
mkdir -p "$TMP/bin"
printf '#!/bin/sh\nexit 1\n' >"$TMP/bin/dpkg-query"
printf '#!/bin/sh\n[ "$1" = update ] || echo "$@" >>"%s/apt.log"\n' "$TMP" >"$TMP/bin/apt-get"
printf '#!/bin/sh\nexec "$@"\n' >"$TMP/bin/sudo"
chmod +x "$TMP/bin/"*
PATH="$TMP/bin:$PATH" bash "$SRC/scripts/install-deps.sh" >/dev/null 2>&1 ||
    fail "install-deps.sh failed"
demo=$(cat "$TMP/apt.log")
for p in meson ninja-build libczmq-dev libzmq3-dev libmsgpack-dev libsodium-dev libsqlite3-dev \
         liblapacke-dev; do
    echo " $demo " | grep -q " $p " || fail "install-deps.sh does not install $p: $demo"
done
for p in libcriterion-dev clang libclang-rt-dev; do
    echo " $demo " | grep -q " $p " && fail "install-deps.sh installs $p for a build without tests"
done
rm -f "$TMP/apt.log"
PATH="$TMP/bin:$PATH" bash "$SRC/scripts/install-deps.sh" --tests >/dev/null 2>&1 ||
    fail "install-deps.sh --tests failed"
for p in libcriterion-dev clang libclang-rt-dev; do
    grep -q " $p\( \|$\)" "$TMP/apt.log" || fail "install-deps.sh --tests does not install $p"
done
grep -q 'install-deps.sh --tests' "$SRC/scripts/test.sh" ||
    fail "scripts/test.sh does not install the test tools (install-deps.sh --tests)"

meson setup "$TMP/build" "$SRC" -Dtests=false >"$TMP/setup.log" 2>&1 ||
    fail "meson setup -Dtests=false: $(tail -n 5 "$TMP/setup.log")"
log=$TMP/build/meson-logs/meson-log.txt
for probe in 'dependency criterion' 'dependency pagmo' 'printenv CUDA' 'C++ compiler' \
             'Found CMake'; do
    grep -qi -- "$probe" "$log" &&
        fail "meson setup -Dtests=false probed: $(grep -i -m 3 -- "$probe" "$log")"
done
echo "build_options: PASS" >&2
