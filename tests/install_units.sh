#!/usr/bin/env bash
# `meson install` installs the systemd units, the worker's system user and
# the example configuration; the units pass `systemd-analyze verify` (every
# key known, the programs found). Installs into a temporary DESTDIR only.
# Skipped (77) when the build has no units (-Dsystemd=disabled or no systemd).
set -u
BUILD=$(cd "${1:?usage: install_units.sh BUILD_DIR}" && pwd)
[ -f "$BUILD/conf/playdoh-worker.service" ] ||
    { echo "install_units: SKIP: built without systemd units" >&2; exit 77; }
DEST=$(mktemp -d /tmp/playdoh-install-XXXXXX)
trap 'rm -rf "$DEST"' EXIT
fail() { echo "install_units: FAIL: $*" >&2; exit 1; }
meson install -C "$BUILD" --no-rebuild --destdir "$DEST" >"$DEST/install.log" 2>&1 ||
    fail "meson install failed: $(tail -n 5 "$DEST/install.log")"
units=$(find "$DEST" -path '*/systemd/system/playdoh-*.service' | sort)
[ "$(echo "$units" | grep -c .)" -eq 2 ] || fail "expected 2 units, found: $units"
find "$DEST" -path '*/sysusers.d/playdoh.conf' | grep -q . || fail "no sysusers.d/playdoh.conf"
find "$DEST" -path '*/doc/playdoh/playdoh.conf' | grep -q . || fail "no example playdoh.conf"
for u in $units; do
    for key in ProtectSystem=strict PrivateTmp=yes NoNewPrivileges=yes ProtectHome=yes; do
        grep -q "^$key" "$u" || fail "$(basename "$u") lacks $key"
    done
done
grep -q '^User=playdoh$' "$(echo "$units" | grep worker)" || fail "the worker unit has no User=playdoh"
if command -v systemd-analyze >/dev/null 2>&1; then
    mkdir -p "$DEST/verify"
    for u in $units; do
        # Point ExecStart at the built programs: verify checks they exist.
        sed "s|^ExecStart=[^ ]*/\(playdoh-[a-z]*\)|ExecStart=$BUILD/\1|" "$u" >"$DEST/verify/$(basename "$u")"
    done
    out=$(cd "$DEST/verify" && systemd-analyze verify ./playdoh-broker.service ./playdoh-worker.service 2>&1)
    [ -z "$out" ] || fail "systemd-analyze verify: $out"
fi
echo "install_units: PASS" >&2
