#!/usr/bin/env bash
# Cross-builds, for Windows x86_64 (MinGW-w64, POSIX thread model), the libraries
# Playdoh needs, from Debian 12's own source packages, into one cached prefix:
#   libsodium (DLL), libzmq (DLL, built-in tweetnacl CURVE), czmq (DLL),
#   msgpack-c (DLL), LAPACKE + LAPACK + BLAS (static, double precision only).
# The prefix holds bin/*.dll (with the MinGW runtime DLLs they need copied in),
# lib/*.dll.a and *.a, include/, lib/pkgconfig/*.pc with absolute paths.
#
#   PREFIX=$(bash scripts/cross-deps.sh)      # last stdout line: the prefix
#   meson setup build-win --cross-file cross/x86_64-w64-mingw32.ini \
#       --cross-file "$PREFIX/meson-cross-prefix.ini"
#   (or: PKG_CONFIG_LIBDIR=$PREFIX/lib/pkgconfig meson setup build-win \
#        --cross-file cross/x86_64-w64-mingw32.ini   -- see that file)
#   WINEPATH=$PREFIX/bin WINEDEBUG=-all meson test -C build-win      # under wine
#
# Run as root (or with sudo) on Debian 12: installs what it needs with apt-get.
# The deb-src index comes from a private apt configuration under the work dir;
# /etc/apt is never touched.
# Environment:
#   PLAYDOH_CROSS_PREFIX  prefix to use (default: /var/cache/playdoh-cross/<key>,
#                         or ~/.cache/playdoh-cross/<key> when not root)
#   PLAYDOH_CROSS_JOBS    parallel build jobs (default 2)
# The key is made of the Debian source versions below and RECIPE: bump RECIPE
# whenever a build recipe changes. Each library has its own stamp, so a failure
# late does not rebuild the earlier ones; with the final stamp present the
# script prints the prefix at once. All progress goes to stderr.
set -euo pipefail
exec 3>&1 1>&2          # stdout is for the prefix only

RECIPE=1
TRIPLET=x86_64-w64-mingw32
# Debian 12 (bookworm) source packages, exact versions (the cache key). When a
# point release replaces one on the mirror, 'apt-get source' fails: bump it here.
SODIUM_V=1.0.18-1+deb12u1
ZMQ_V=4.3.4-6
CZMQ_V=4.2.1-1
MSGPACK_V=4.0.0-3
LAPACK_V=3.11.0-2
JOBS=${PLAYDOH_CROSS_JOBS:-2}

KEY="r${RECIPE}_sodium-${SODIUM_V}_zmq-${ZMQ_V}_czmq-${CZMQ_V}_msgpack-${MSGPACK_V}_lapack-${LAPACK_V}"
KEY=${KEY//[^A-Za-z0-9._-]/-}
if [ "$(id -u)" -eq 0 ]; then CACHE_ROOT=/var/cache/playdoh-cross; SUDO=""
else CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/playdoh-cross; SUDO=sudo; fi
PREFIX=${PLAYDOH_CROSS_PREFIX:-$CACHE_ROOT/$KEY}
STAMPS=$PREFIX/.stamps

if [ -f "$STAMPS/complete" ]; then
    echo "cross-deps: cached: $PREFIX"
    echo "$PREFIX" >&3
    exit 0
fi

# --- host packages (idempotent; apt-get update only when something is missing)
pkgs=(gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64 gfortran-mingw-w64-x86-64
      binutils-mingw-w64-x86-64 mingw-w64-x86-64-dev
      cmake make pkg-config dpkg-dev xz-utils autoconf automake libtool
      debian-archive-keyring ca-certificates)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "cross-deps: installing: ${missing[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The -posix compilers everywhere: one thread model (winpthreads) for all.
CC=$TRIPLET-gcc-posix
CXX=$TRIPLET-g++-posix
FC=$TRIPLET-gfortran-posix
for t in "$CC" "$CXX" "$FC" "$TRIPLET-windres" "$TRIPLET-ar" "$TRIPLET-ranlib"; do
    command -v "$t" >/dev/null || { echo "cross-deps: $t not found" ; exit 1; }
done
GCC_LIBDIR=$(dirname "$($CC -print-libgcc-file-name)")   # .../gcc/x86_64-w64-mingw32/12-posix

mkdir -p "$PREFIX" "$STAMPS"
exec 9>"$PREFIX.lock"
flock 9                  # one build of this prefix at a time
if [ -f "$STAMPS/complete" ]; then echo "$PREFIX" >&3; exit 0; fi

WORK=$PREFIX.work
mkdir -p "$WORK/logs"
T0=$SECONDS

# --- private apt configuration for the deb-src entry
APTDIR=$WORK/apt
APT_OPTS=(-o "Dir::Etc::SourceList=$APTDIR/sources.list"
          -o "Dir::Etc::SourceParts=$APTDIR/sources.list.d"
          -o "Dir::Etc::PreferencesParts=$APTDIR/preferences.d"
          -o "Dir::State::Lists=$APTDIR/lists"
          -o "Dir::Cache=$APTDIR/cache"
          -o "Dir::Cache::archives=$APTDIR/cache/archives"
          -o "Dir::Cache::pkgcache=$APTDIR/cache/pkgcache.bin"
          -o "Dir::Cache::srcpkgcache=$APTDIR/cache/srcpkgcache.bin"
          -o "APT::Sandbox::User=$(id -un)")
apt_ready=0
apt_setup() {
    [ $apt_ready -eq 1 ] && return 0
    mkdir -p "$APTDIR"/{sources.list.d,preferences.d,lists/partial,cache/archives/partial}
    cat > "$APTDIR/sources.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
EOF
    echo "cross-deps: apt-get update (private deb-src index in $APTDIR)"
    apt-get "${APT_OPTS[@]}" update -q >"$WORK/logs/apt-update.log" 2>&1 \
        || { cat "$WORK/logs/apt-update.log"; exit 1; }
    apt_ready=1
}

# fetch <source package> <version>: unpacks (Debian patches applied) under
# $WORK/src/<pkg>; sets SRC to the source tree.
fetch() {
    local pkg=$1 ver=$2 dir=$WORK/src/$1
    apt_setup
    rm -rf "$dir"; mkdir -p "$dir"
    if ! (cd "$dir" && apt-get "${APT_OPTS[@]}" source -q --only-source "$pkg=$ver") \
            >"$WORK/logs/$pkg-fetch.log" 2>&1; then
        cat "$WORK/logs/$pkg-fetch.log"
        echo "cross-deps: cannot fetch source $pkg=$ver; if bookworm has a newer" \
             "version, update it in scripts/cross-deps.sh"
        exit 1
    fi
    SRC=$(find "$dir" -mindepth 1 -maxdepth 1 -type d | head -n1)
    [ -n "$SRC" ] || { echo "cross-deps: no source tree for $pkg"; exit 1; }
}

TOOLCHAIN=$WORK/toolchain.cmake
cat > "$TOOLCHAIN" <<EOF
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(CMAKE_C_COMPILER $CC)
set(CMAKE_CXX_COMPILER $CXX)
set(CMAKE_Fortran_COMPILER $FC)
set(CMAKE_RC_COMPILER $TRIPLET-windres)
set(CMAKE_AR $(command -v $TRIPLET-ar) CACHE FILEPATH "")
set(CMAKE_RANLIB $(command -v $TRIPLET-ranlib) CACHE FILEPATH "")
set(CMAKE_FIND_ROOT_PATH /usr/$TRIPLET $PREFIX)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
EOF
# pkg-config (autotools and cmake's FindPkgConfig) sees only the prefix.
export PKG_CONFIG_LIBDIR=$PREFIX/lib/pkgconfig
export PKG_CONFIG_PATH=
unset PKG_CONFIG_SYSROOT_DIR
CMAKE_COMMON=(-DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" -DCMAKE_BUILD_TYPE=Release
              -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib
              -DCMAKE_PREFIX_PATH="$PREFIX")

# cmake_build <name> <cmake args...>: configure, build, install $SRC.
cmake_build() {
    local name=$1; shift
    local b=$WORK/build/$name
    rm -rf "$b"
    cmake -S "$SRC" -B "$b" "${CMAKE_COMMON[@]}" "$@"
    cmake --build "$b" -j"$JOBS"
    cmake --install "$b"
}

# step <name> <function>: runs the build function once (stamped), logs to a
# file, prints its time; on failure shows the log's tail and keeps the work dir.
step() {
    local name=$1 fn=$2 t=$SECONDS
    if [ -f "$STAMPS/$name" ]; then echo "cross-deps: $name: already built"; return 0; fi
    echo "cross-deps: $name: building (log $WORK/logs/$name.log)"
    [ "$name" = finish ] || apt_setup
    # Not in an 'if': set -e stays in force inside the subshell.
    local rc=0
    set +e
    ( set -euo pipefail; $fn ) >"$WORK/logs/$name.log" 2>&1
    rc=$?
    set -e
    if [ $rc -ne 0 ]; then
        tail -n 60 "$WORK/logs/$name.log"
        echo "cross-deps: $name: FAILED after $((SECONDS - t)) s; log and sources kept in $WORK"
        exit 1
    fi
    rm -rf "$WORK/src" "$WORK/build"
    touch "$STAMPS/$name"
    echo "cross-deps: $name: done in $((SECONDS - t)) s"
}

build_libsodium() {
    fetch libsodium "$SODIUM_V"
    cd "$SRC"
    autoreconf -fi          # Debian's orig tarball is a git export: no configure
    mkdir -p "$WORK/build/libsodium"; cd "$WORK/build/libsodium"
    # --disable-ssp: no libssp-0.dll dependency.
    "$SRC/configure" --host=$TRIPLET --prefix="$PREFIX" --disable-static \
        --disable-ssp --disable-dependency-tracking CC="$CC" CFLAGS="-O2"
    make -j"$JOBS"
    make install
    rm -f "$PREFIX"/lib/libsodium.la
}

build_libzmq() {
    fetch zeromq3 "$ZMQ_V"
    # CURVE with libzmq's built-in tweetnacl (no libsodium dependency in libzmq).
    cmake_build libzmq \
        -DCMAKE_C_FLAGS="-D_WIN32_WINNT=0x0A00" -DCMAKE_CXX_FLAGS="-D_WIN32_WINNT=0x0A00" \
        -DZMQ_HAVE_IPC=0 -DZMQ_CV_IMPL=win32api -DWITH_LIBBSD=OFF -DWITH_LIBSODIUM=OFF \
        -DENABLE_CURVE=ON -DENABLE_DRAFTS=OFF -DWITH_PERF_TOOL=OFF -DBUILD_TESTS=OFF \
        -DWITH_DOCS=OFF -DBUILD_SHARED=ON -DBUILD_STATIC=OFF -DENABLE_CPACK=OFF
    # libzmq.pc says -lzmq: the import library must be libzmq.dll.a.
    test -f "$PREFIX/lib/libzmq.dll.a"
    grep -q -- '-lzmq' "$PREFIX/lib/pkgconfig/libzmq.pc"
}

build_czmq() {
    fetch czmq "$CZMQ_V"
    # Off MSVC, czmq compiles through an OBJECT library that misses the shared
    # target's CZMQ_EXPORTS: without it every symbol is dllimport and the DLL
    # link fails. (Its own tools then see dllexport declarations: harmless.)
    cmake_build czmq \
        -DCMAKE_C_FLAGS="-D_WIN32_WINNT=0x0A00 -DCZMQ_EXPORTS" \
        -DENABLE_DRAFTS=OFF -DCZMQ_BUILD_SHARED=ON -DCZMQ_BUILD_STATIC=OFF \
        -DCZMQ_WITH_UUID=OFF -DCZMQ_WITH_SYSTEMD=OFF -DCZMQ_WITH_LZ4=OFF \
        -DCZMQ_WITH_LIBCURL=OFF -DCZMQ_WITH_NSS=OFF -DCZMQ_WITH_LIBMICROHTTPD=OFF \
        -DBUILD_TESTING=OFF
    test -f "$PREFIX/lib/pkgconfig/libczmq.pc"
}

build_msgpack() {
    fetch msgpack-c "$MSGPACK_V"
    cmake_build msgpack -DBUILD_SHARED_LIBS=ON \
        -DMSGPACK_BUILD_TESTS=OFF -DMSGPACK_BUILD_EXAMPLES=OFF
    test -f "$PREFIX/lib/pkgconfig/msgpack.pc"
}

build_lapack() {
    fetch lapack "$LAPACK_V"
    # Static, double precision real only (Playdoh calls dsyevr/dsyev).
    cmake_build lapack -DBUILD_SHARED_LIBS=OFF -DLAPACKE=ON -DCBLAS=OFF \
        -DBUILD_TESTING=OFF -DBUILD_DEPRECATED=OFF \
        -DBUILD_SINGLE=OFF -DBUILD_DOUBLE=ON -DBUILD_COMPLEX=OFF -DBUILD_COMPLEX16=OFF \
        -DLAPACKE_BUILD_SINGLE=OFF -DLAPACKE_BUILD_DOUBLE=ON \
        -DLAPACKE_BUILD_COMPLEX=OFF -DLAPACKE_BUILD_COMPLEX16=OFF \
        -DTEST_FORTRAN_COMPILER=OFF
    # Static archives: lapacke.pc must name everything the link needs.
    local pc=$PREFIX/lib/pkgconfig/lapacke.pc
    sed -i -e 's|^Libs:.*|Libs: -L${libdir} -llapacke -llapack -lblas -lgfortran -lquadmath|' \
           -e '/^Requires.private:/d' "$pc"
    grep -q -- '-lblas -lgfortran' "$pc"
}

# MinGW runtime DLLs the libraries (and Playdoh) load, copied beside them;
# the gfortran import library too, so that linking against the prefix needs
# only the C compiler installed (-lgfortran of lapacke.pc). And a second meson
# cross file that names the prefix's pkg-config dir.
finish_prefix() {
    local d
    for d in libgcc_s_seh-1.dll libstdc++-6.dll libgfortran-5.dll libquadmath-0.dll; do
        cp -f "$GCC_LIBDIR/$d" "$PREFIX/bin/"
    done
    cp -f "/usr/$TRIPLET/lib/libwinpthread-1.dll" "$PREFIX/bin/"
    cp -f "$GCC_LIBDIR/libgfortran.dll.a" "$PREFIX/lib/"
    rm -f "$PREFIX"/bin/libsodium-*.def
    cat > "$PREFIX/meson-cross-prefix.ini" <<EOF
# Second meson cross file, after cross/x86_64-w64-mingw32.ini (written by
# scripts/cross-deps.sh): the pkg-config dir of this prefix.
[properties]
pkg_config_libdir = ['$PREFIX/lib/pkgconfig']
EOF
}

step libsodium build_libsodium
step libzmq build_libzmq
step czmq build_czmq
step msgpack build_msgpack
step lapack build_lapack
step finish finish_prefix

rm -rf "$WORK"
touch "$STAMPS/complete"
echo "cross-deps: all done in $((SECONDS - T0)) s: $PREFIX"
echo "$PREFIX" >&3
