#!/usr/bin/env bash
# Installs the Debian 12 packages Playdoh builds and tests with (root or sudo);
# clang and libclang-rt-dev build the libFuzzer harnesses of tests/fuzz.
#   --slurm   also Slurm and munge, for the pilot-job test and bench only
#             (tests/slurm_pilots.sh, bench/bench_slurm.sh); CI passes it.
#   --windows also MinGW-w64 and Wine, for the Windows build and its tests
#             (scripts/test-windows.sh; docs/windows.md).
set -euo pipefail
# liblapacke-dev (with the reference LAPACK and BLAS) gives CMA-ES its eigensolver.
pkgs=(meson ninja-build pkg-config gcc libc6-dev libzmq3-dev libczmq-dev libmsgpack-dev
      libsodium-dev libsqlite3-dev libcriterion-dev python3 liblapacke-dev liblapack-dev libblas-dev
      clang libclang-rt-dev)
for arg in "$@"; do
    case "$arg" in
    --slurm) pkgs+=(slurm-wlm munge) ;;
    --windows) pkgs+=(gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64 wine wine64 zip) ;;
    *) echo "install-deps.sh: unknown option '$arg' (known: --slurm, --windows)" >&2; exit 2 ;;
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
