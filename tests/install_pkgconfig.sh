#!/usr/bin/env bash
# `meson install` gives a working installation wherever its prefix ends up
# (issue 16, items 4 and 10): installs into a temporary DESTDIR (a prefix
# the build never knew, as after `meson install --prefix` to a non-system
# place), then, with a clean environment (no LD_LIBRARY_PATH, no
# PLAYDOH_BINDIR):
#  - every installed program prints its version (playdoh-submit finds its
#    library through its RUNPATH, relative to the program);
#  - playdoh-submit --local 1 maps the installed examples/square.c;
#  - the headers are in include/playdoh/ only, and `pkg-config --cflags
#    playdoh` names no include path of CZMQ, libzmq or their dependencies;
#  - the C examples build with the installed pkg-config file only and run on
#    an embedded cluster whose playdoh-broker the library finds beside
#    itself;
#  - the man pages (sections 1, 3 and 5) are installed and groff reads them
#    without a warning, and the guide, the README and every example are in
#    share/doc/playdoh.
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
P=$DEST$prefix
export PKG_CONFIG_PATH=$(dirname "$pc")
flags=$(pkg-config --define-variable=prefix="$P" --cflags --libs playdoh) ||
    fail "pkg-config cannot read $pc"
cflags=$(pkg-config --define-variable=prefix="$P" --cflags playdoh | sed "s/ *$//")
libdir=$(pkg-config --define-variable=prefix="$P" --variable=libdir playdoh)
[ -f "$libdir/libplaydoh-client.so" ] || fail "no libplaydoh-client.so in $libdir"
for h in playdoh.h playdoh_task.h playdoh_fitness.h pd_error.h; do
    [ -f "$P/include/playdoh/$h" ] || fail "header $h not installed in include/playdoh"
    [ ! -e "$P/include/$h" ] || fail "header $h installed at the top of include/"
done
[ "$cflags" = "-I$P/include -I$P/include/playdoh" ] ||
    fail "pkg-config --cflags playdoh gives more than the installed headers: $cflags"

# A clean environment: what a new user's shell has, plus the sanitizers'
# settings of a sanitized build.
clean=(env -i HOME="$DEST/home" PATH=/usr/bin:/bin LANG=C.UTF-8)
for v in ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS; do
    [ -n "${!v:-}" ] && clean+=("$v=${!v}")
done
mkdir -p "$DEST/home"
for prog in playdoh-submit playdoh-worker playdoh-broker playdoh-keygen; do
    out=$("${clean[@]}" "$P/bin/$prog" --version 2>&1) || fail "$prog --version: $out"
    [ "$out" = "$prog $(meson introspect "$BUILD" --projectinfo |
                        python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')" ] ||
        fail "$prog --version printed: $out"
done
readelf -d "$P/bin/playdoh-submit" | grep -q 'RUNPATH.*\$ORIGIN' ||
    fail "playdoh-submit has no RUNPATH relative to \$ORIGIN: $(readelf -d "$P/bin/playdoh-submit" | grep -i path)"
doc=$P/share/doc/playdoh
out=$(cd "$DEST/home" && "${clean[@]}" "$P/bin/playdoh-submit" --local 1 map \
          "$doc/examples/square.c" square "$doc/examples/numbers.jsonl" 2>&1) ||
    fail "installed playdoh-submit --local 1 map square.c: $out"
[ "$(echo "$out" | head -n 3 | tr '\n' ' ')" = "1.0 4.0 9.0 " ] || fail "map printed: $out"

# A library built with sanitizers needs programs built with them.
san=""
if ldd "$libdir/libplaydoh-client.so" | grep -q libasan; then
    san="-fsanitize=address,undefined"
fi
for prog in map_square map_shared optimize heat/heat_main; do
    [ -f "$doc/examples/$prog.c" ] || fail "example $prog.c not installed"
    # Only the installed header and library: no include path into the
    # sources. The RUNPATH is the user's choice for a non-system prefix.
    cc $san -o "$DEST/$(basename "$prog")" "$doc/examples/$prog.c" $flags -Wl,-rpath,"$libdir" \
        -lm 2>"$DEST/cc.log" ||
        fail "cc $prog.c \$(pkg-config --cflags --libs playdoh): $(cat "$DEST/cc.log")"
done
cd "$DEST/home"
out=$("${clean[@]}" "$DEST/map_square" "" "$doc/examples/square.c" 2>&1) || fail "map_square: $out"
echo "$out" | grep -q "sum of squares 1..1000 = 333833500 (expected 333833500)" ||
    fail "map_square printed: $out"
out=$("${clean[@]}" "$DEST/map_shared" "" "$doc/examples/shared_sum.c" 200000 2>&1) ||
    fail "map_shared: $out"
echo "$out" | grep -q ": OK$" || fail "map_shared printed: $out"
for page in man1/playdoh-submit.1 man1/playdoh-worker.1 man1/playdoh-broker.1 \
            man1/playdoh-keygen.1 man5/playdoh.conf.5 man3/playdoh.3; do
    f=$(find "$P" -path "*/man/$page*" | head -n 1)
    [ -n "$f" ] || fail "man page $page not installed"
    if command -v groff >/dev/null 2>&1; then
        warn=$(groff -man -ww -z "$f" 2>&1)
        [ -z "$warn" ] || fail "groff warns about $page: $warn"
    fi
done
for f in README.md guide.md cluster.md security.md sync.md optimisation.md playdoh.conf \
         examples/pi.sh examples/rosenbrock.c examples/heat/heat.c examples/heat/heat.graph \
         examples/gpu/rastrigin.cu; do
    [ -f "$doc/$f" ] || fail "share/doc/playdoh/$f not installed"
done
echo "install_pkgconfig: PASS ($flags)" >&2
