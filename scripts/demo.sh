#!/usr/bin/env bash
# Installs what is missing, builds Playdoh, starts an embedded cluster of 2
# slots on this machine and maps a C function (examples/square.c, shipped as
# source and compiled by the worker) over the numbers 1..10.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD=${BUILD:-build-release}
[ -d "$BUILD" ] || meson setup "$BUILD" --buildtype=release -Dtests=false >/dev/null
ninja -C "$BUILD" >/dev/null
echo "\$ playdoh-submit --local 2 map examples/square.c square examples/numbers.jsonl" >&2
"$BUILD"/playdoh-submit --local 2 map examples/square.c square examples/numbers.jsonl
