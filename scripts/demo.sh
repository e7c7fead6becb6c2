#!/usr/bin/env bash
# Installs what is missing, builds Playdoh, installs it for this account in
# ~/.local (PREFIX=DIR for another place: bin, lib, man pages, headers; the
# programs find their library wherever the prefix is), starts an embedded
# cluster of 2 slots on this machine and maps a C function
# (examples/square.c, shipped as source and compiled by the worker) over the
# numbers 1..10. Ends by saying how to put the programs on PATH when they
# are not there yet.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD=${BUILD:-build-release}
PREFIX=${PREFIX:-$HOME/.local}
if [ -d "$BUILD" ]; then
    meson configure "$BUILD" --prefix "$PREFIX" >/dev/null
else
    # Link-time optimisation: the broker's parts are files of their own behind
    # small accessors, which LTO inlines across files (docs/performance.md,
    # "The restructuring of issue 17": 10 % fewer instructions per job).
    meson setup "$BUILD" --buildtype=release -Db_lto=true -Dtests=false --prefix "$PREFIX" \
        >/dev/null
fi
ninja -C "$BUILD" >/dev/null
meson install -C "$BUILD" --no-rebuild >/dev/null
echo "installed in $PREFIX: playdoh-submit, playdoh-worker, playdoh-broker, playdoh-keygen," \
     "libplaydoh-client, playdoh.h, man pages, the guide and examples in" \
     "$PREFIX/share/doc/playdoh" >&2
echo "\$ playdoh-submit --local 2 map examples/square.c square examples/numbers.jsonl" >&2
"$PREFIX"/bin/playdoh-submit --local 2 map examples/square.c square examples/numbers.jsonl
case ":$PATH:" in
*":$PREFIX/bin:"*) ;;
*)
    echo >&2
    echo "$PREFIX/bin is not on your PATH yet; for this shell and the next ones run:" >&2
    echo "  export PATH=\"$PREFIX/bin:\$PATH\"" >&2
    echo "  echo 'export PATH=\"$PREFIX/bin:\$PATH\"' >> ~/.profile" >&2
    ;;
esac
