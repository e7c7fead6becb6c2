#!/usr/bin/env bash
# `meson install` gives a working library for C programs: installs into a
# temporary DESTDIR, builds examples/map_square.c and examples/map_shared.c
# with the flags of the installed pkg-config file only (playdoh.pc), and
# runs them on an embedded cluster made of the installed programs. Checks
# that the man pages are installed and that groff reads them without a
# warning.
set -u
BUILD=$(cd "${1:?usage: install_pkgconfig.sh BUILD_DIR SOURCE_DIR}" && pwd)
SRC=$(cd "${2:?usage: install_pkgconfig.sh BUILD_DIR SOURCE_DIR}" && pwd)
DEST=$(mktemp -d /tmp/playdoh-pc-XXXXXX)
trap 'rm -rf "$DEST"' EXIT
fail() { echo "install_pkgconfig: FAIL: $*" >&2; exit 1; }
meson install -C "$BUILD" --no-rebuild --destdir "$DEST" >"$DEST/install.log" 2>&1 ||
    fail "meson install failed: $(tail -n 5 "$DEST/install.log")"
pc=$(find "$DEST" -name playdoh.pc | head -n 1)
[ -n "$pc" ] || fail "no playdoh.pc installed"
prefix=$(sed -n 's/^prefix=//p' "$pc")
export PKG_CONFIG_PATH=$(dirname "$pc")
flags=$(pkg-config --define-variable=prefix="$DEST$prefix" --cflags --libs playdoh) ||
    fail "pkg-config cannot read $pc"
libdir=$(pkg-config --define-variable=prefix="$DEST$prefix" --variable=libdir playdoh)
[ -f "$libdir/libplaydoh-client.so" ] || fail "no libplaydoh-client.so in $libdir"
for h in playdoh.h playdoh_task.h pd_error.h; do
    [ -f "$DEST$prefix/include/$h" ] || fail "header $h not installed"
done
# A library built with sanitizers needs programs built with them.
san=""
if ldd "$libdir/libplaydoh-client.so" | grep -q libasan; then
    san="-fsanitize=address,undefined"
fi
for prog in map_square map_shared; do
    # Only the installed header and library: no include path into the sources.
    cc $san -o "$DEST/$prog" "$SRC/examples/$prog.c" $flags -lm 2>"$DEST/cc.log" ||
        fail "cc $prog.c \$(pkg-config --cflags --libs playdoh): $(cat "$DEST/cc.log")"
done
export LD_LIBRARY_PATH=$libdir
export PLAYDOH_BINDIR=$DEST$prefix/bin
export XDG_CACHE_HOME=$DEST/cache
out=$("$DEST/map_square" "" "$SRC/examples/square.c" 2>&1) || fail "map_square: $out"
echo "$out" | grep -q "sum of squares 1..1000 = 333833500 (expected 333833500)" ||
    fail "map_square printed: $out"
out=$("$DEST/map_shared" "" "$SRC/examples/shared_sum.c" 200000 2>&1) || fail "map_shared: $out"
echo "$out" | grep -q ": OK$" || fail "map_shared printed: $out"
for m in playdoh-submit playdoh-worker playdoh-broker; do
    page=$(find "$DEST" -path "*/man1/$m.1*" | head -n 1)
    [ -n "$page" ] || fail "man page $m.1 not installed"
    if command -v groff >/dev/null 2>&1; then
        warn=$(groff -man -ww -z "$page" 2>&1)
        [ -z "$warn" ] || fail "groff warns about $m.1: $warn"
    fi
done
echo "install_pkgconfig: PASS ($flags)" >&2
