#!/usr/bin/env bash
# The Windows build and its tests, on Linux: installs MinGW-w64 and Wine,
# cross-builds the dependencies from Debian's sources (scripts/cross-deps.sh,
# cached), cross-builds Playdoh with warnings as errors (build-win), runs the
# platform layer's tests under Wine (tests/win/test_plat.c), then a mixed
# cluster on loopback: a Linux broker and worker from the Linux build
# LINUX_BUILD (default build-test, made by scripts/test.sh) beside
# playdoh-worker.exe and playdoh-submit.exe under Wine
# (tests/win/wine_cluster.sh). docs/windows.md says more.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --windows
PREFIX=$(bash scripts/cross-deps.sh)
WIN_BUILD=${WIN_BUILD:-build-win}
LINUX_BUILD=${LINUX_BUILD:-build-test}
if [ ! -d "$WIN_BUILD" ]; then
    meson setup "$WIN_BUILD" --cross-file cross/x86_64-w64-mingw32.ini \
        --cross-file "$PREFIX/meson-cross-prefix.ini" -Dwerror=true
fi
ninja -C "$WIN_BUILD"
if [ ! -x "$LINUX_BUILD/playdoh-broker" ]; then
    [ -d "$LINUX_BUILD" ] || meson setup "$LINUX_BUILD" -Dwerror=true
    ninja -C "$LINUX_BUILD"
fi
export WINEDEBUG=-all WINEPATH="$PREFIX/bin"
export WINEPREFIX=${WINEPREFIX:-$(mktemp -d /tmp/playdoh-wineprefix-XXXXXX)}
echo "Windows tests under Wine (prefix $WINEPREFIX):" >&2
rc=0
timeout 600 wine "$WIN_BUILD/tests/win/test_plat.exe" || rc=1
LINUX_BUILD=$LINUX_BUILD WIN_BUILD=$WIN_BUILD timeout 1200 bash tests/win/wine_cluster.sh || rc=1
LINUX_BUILD=$LINUX_BUILD WIN_BUILD=$WIN_BUILD timeout 600 bash tests/win/wine_service.sh || rc=1
# The release zip holds every DLL: its programs run with nothing else.
REL=$(mktemp -d /tmp/playdoh-release-XXXXXX)
WIN_BUILD=$WIN_BUILD bash scripts/release-windows.sh "$REL" >&2
(cd "$REL" && unzip -q ./*.zip)
if WINEPATH="" timeout 120 wine "$REL"/playdoh-*/bin/playdoh-keygen.exe --config-dir "$REL/keys" new \
        >/dev/null 2>&1 &&
   WINEPATH="" timeout 120 wine "$REL"/playdoh-*/bin/playdoh-submit.exe --help >/dev/null 2>&1; then
    echo "ok   the release zip's programs run from the unzipped folder alone" >&2
else
    echo "FAIL the release zip's programs do not run from the unzipped folder alone" >&2
    rc=1
fi
rm -rf "$REL"
wineserver -k 2>/dev/null || true
exit $rc
