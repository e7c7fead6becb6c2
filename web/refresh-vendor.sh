#!/usr/bin/env bash
# Refreshes the dashboard's vendored plot library (web/static/vendor) from
# the versions web/package-lock.json pins, so that a user never runs a build
# step: `npm ci` here, then a copy of uPlot's built files.
#   web/refresh-vendor.sh          copy them into web/static/vendor
#   web/refresh-vendor.sh --check  fail when the vendored copy differs from
#                                  what the lockfile gives (CI, after a bump)
# Needs npm and the npm registry (scripts/install-deps.sh --browser).
set -euo pipefail
cd "$(dirname "$0")"
mode=copy
case "${1:-}" in
"") ;;
--check) mode=check ;;
*) echo "refresh-vendor.sh: unknown option '$1' (known: --check)" >&2; exit 2 ;;
esac
npm ci --no-audit --no-fund --ignore-scripts >/dev/null
files=(uPlot.iife.min.js uPlot.min.css)
bad=0
for f in "${files[@]}"; do
    if [ "$mode" = check ]; then
        cmp -s "node_modules/uplot/dist/$f" "static/vendor/$f" ||
            { echo "static/vendor/$f differs from uplot@$(node -p 'require("./node_modules/uplot/package.json").version') of the lockfile: run web/refresh-vendor.sh" >&2; bad=1; }
    else
        cp "node_modules/uplot/dist/$f" "static/vendor/$f"
    fi
done
[ "$mode" = check ] || cp node_modules/uplot/LICENSE static/vendor/uPlot.LICENSE.txt
exit $bad
