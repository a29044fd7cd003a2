#!/usr/bin/env bash
# Copies the pinned NHS.UK frontend and htmx builds from node_modules into static/vendor/ (not
# committed). NHS.UK frontend's stylesheet points at /assets/; we serve them under /static/.
set -euo pipefail
cd "$(dirname "$0")/.."
src=node_modules/nhsuk-frontend/dist/nhsuk
dest=static/vendor
rm -rf "$dest"
mkdir -p "$dest/nhsuk-frontend" "$dest/htmx"
cp -r "$src/assets" "$dest/nhsuk-frontend/assets"
cp "$src/nhsuk-frontend.min.js" "$dest/nhsuk-frontend/"
sed 's#url(/assets/#url(/static/vendor/nhsuk-frontend/assets/#g' "$src/nhsuk-frontend.min.css" \
  > "$dest/nhsuk-frontend/nhsuk-frontend.min.css"
cp node_modules/htmx.org/dist/htmx.min.js "$dest/htmx/"
echo "assets: NHS.UK frontend $(node -p "require('./node_modules/nhsuk-frontend/package.json').version"), htmx $(node -p "require('./node_modules/htmx.org/package.json').version") in $dest/"
