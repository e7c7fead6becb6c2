#!/usr/bin/env bash
# Installs the Debian 12 packages Playdoh needs (root or sudo): by default only
# what the build needs (scripts/demo.sh, `meson setup -Dtests=false`).
#   --tests   also what the test suites need: Criterion, groff (the man
#             pages' check), clang and libclang-rt-dev (the libFuzzer
#             harnesses of tests/fuzz); scripts/test.sh passes it.
#   --slurm   also Slurm and munge, for the pilot-job test and bench only
#             (tests/slurm_pilots.sh, bench/bench_slurm.sh); CI passes it.
#   --browser also Chromium and npm, for the dashboard's browser test and
#             screenshots (web/browser-test.sh, web/screenshots.sh) and
#             web/refresh-vendor.sh.
#   --windows also MinGW-w64 and Wine, for the Windows build and its tests
#             (scripts/test-windows.sh; docs/windows.md).
set -euo pipefail
# liblapacke-dev (with the reference LAPACK and BLAS) gives CMA-ES its eigensolver;
# python3 embeds the task header into the worker at build time;
# libmicrohttpd-dev serves the broker's dashboard (docs/dashboard.md).
pkgs=(meson ninja-build pkg-config gcc libc6-dev libzmq3-dev libczmq-dev libmsgpack-dev
      libsodium-dev libsqlite3-dev python3 liblapacke-dev liblapack-dev libblas-dev
      libmicrohttpd-dev)
for arg in "$@"; do
    case "$arg" in
    --tests) pkgs+=(libcriterion-dev groff clang libclang-rt-dev) ;;
    --slurm) pkgs+=(slurm-wlm munge) ;;
    --browser)
        # Node.js and npm from Debian only where the machine has none: an
        # image's own Node.js (NodeSource's, with its npm) conflicts with
        # Debian's npm package.
        pkgs+=(chromium)
        command -v node >/dev/null || pkgs+=(nodejs)
        command -v npm >/dev/null || pkgs+=(npm) ;;
    --windows) pkgs+=(gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64 wine wine64 zip) ;;
    *) echo "install-deps.sh: unknown option '$arg' (known: --tests, --slurm, --browser, --windows)" >&2; exit 2 ;;
    esac
done
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing: ${missing[*]}" >&2
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
