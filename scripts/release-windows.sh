#!/usr/bin/env bash
# Makes the Windows release zip: playdoh-VERSION-windows-x86_64.zip in OUT
# (default dist/), holding bin/ (playdoh-worker.exe, playdoh-submit.exe,
# playdoh-keygen.exe, the client DLL, and every DLL these need, found by
# following their imports: the dependencies cross-built by
# scripts/cross-deps.sh and the MinGW-w64 runtime), lib/ (import libraries
# and playdoh.pc), include/playdoh/ (playdoh.h, playdoh_task.h,
# playdoh_fitness.h, pd_error.h) and doc/. Cross-builds first when build-win is missing (it
# installs MinGW-w64 and Wine: scripts/test-windows.sh). docs/windows.md says
# how to install the zip.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-dist}
WIN_BUILD=${WIN_BUILD:-build-win}
bash scripts/install-deps.sh --windows
PREFIX=$(bash scripts/cross-deps.sh)
if [ ! -d "$WIN_BUILD" ]; then
    meson setup "$WIN_BUILD" --cross-file cross/x86_64-w64-mingw32.ini \
        --cross-file "$PREFIX/meson-cross-prefix.ini" -Dwerror=true
fi
ninja -C "$WIN_BUILD"
VERSION=$(meson introspect "$WIN_BUILD" --projectinfo |
          python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
NAME=playdoh-$VERSION-windows-x86_64
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
meson install -C "$WIN_BUILD" --destdir "$STAGE/install" --no-rebuild >/dev/null
ROOT=$STAGE/$NAME
mkdir -p "$ROOT"
INSTALLED=$(find "$STAGE/install" -type d -name bin -path '*/bin' | head -1)/..
cp -r "$INSTALLED/bin" "$INSTALLED/include" "$ROOT/"
mkdir -p "$ROOT/lib"
cp "$INSTALLED"/lib/*.a "$ROOT/lib/"
[ -d "$INSTALLED/lib/pkgconfig" ] && cp -r "$INSTALLED/lib/pkgconfig" "$ROOT/lib/"
# A Windows worker links each task module against its own import library,
# which it looks for beside playdoh-worker.exe.
cp "$INSTALLED/lib/libplaydoh-worker.exe.a" "$ROOT/bin/"

# Every DLL the programs import, transitively, that Windows does not ship.
search=("$PREFIX/bin" /usr/lib/gcc/x86_64-w64-mingw32/*-posix /usr/x86_64-w64-mingw32/lib)
system_dll() {
    case "${1,,}" in
    kernel32.dll|user32.dll|advapi32.dll|ws2_32.dll|msvcrt.dll|iphlpapi.dll|rpcrt4.dll|\
    shell32.dll|ole32.dll|oleaut32.dll|gdi32.dll|bcrypt.dll|ntdll.dll|secur32.dll|\
    crypt32.dll|userenv.dll|dbghelp.dll|psapi.dll|winmm.dll|comdlg32.dll|winspool.drv|\
    api-ms-win-*) return 0 ;;
    esac
    return 1
}
queue=("$ROOT"/bin/*.exe "$ROOT"/bin/*.dll)
declare -A seen=()
while [ ${#queue[@]} -gt 0 ]; do
    f=${queue[0]}
    queue=("${queue[@]:1}")
    for dll in $(x86_64-w64-mingw32-objdump -p "$f" | sed -n 's/^\s*DLL Name: //p'); do
        system_dll "$dll" && continue
        [ -n "${seen[${dll,,}]:-}" ] && continue
        seen[${dll,,}]=1
        [ -f "$ROOT/bin/$dll" ] && continue
        found=""
        for d in "${search[@]}"; do
            [ -f "$d/$dll" ] && { found=$d/$dll; break; }
        done
        if [ -z "$found" ]; then
            echo "release-windows: $f needs $dll, which is neither a Windows DLL nor found in ${search[*]}" >&2
            exit 1
        fi
        cp "$found" "$ROOT/bin/"
        queue+=("$ROOT/bin/$dll")
    done
done

mkdir -p "$ROOT/doc"
cp README.md "$ROOT/doc/"
cp docs/windows.md docs/guide.md docs/security.md docs/cluster.md "$ROOT/doc/"
cp conf/playdoh.conf "$ROOT/doc/playdoh.conf.example"
cat >"$ROOT/README.txt" <<TXT
Playdoh $VERSION for Windows (x86_64)

bin\\playdoh-worker.exe   the worker: offers this machine's cores to a lab's broker
                           (playdoh-worker service install --broker tcp://HOST:5555)
bin\\playdoh-submit.exe   the command line: submit work, poll, fetch, cluster status
bin\\playdoh-keygen.exe   key pairs for CurveZMQ (doc\\security.md)
bin\\libplaydoh-client-0.dll, lib\\libplaydoh-client.dll.a, include\\playdoh\\   the C library

Installing, the service, keys and compilers: doc\\windows.md.
TXT
mkdir -p "$OUT"
rm -f "$OUT/$NAME.zip"
(cd "$STAGE" && zip -qr9 "$NAME.zip" "$NAME")
mv "$STAGE/$NAME.zip" "$OUT/"
echo "$OUT/$NAME.zip: $(unzip -l "$OUT/$NAME.zip" | tail -1 | awk '{print $2}') files, $(du -h "$OUT/$NAME.zip" | cut -f1)"
