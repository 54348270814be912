#!/usr/bin/env bash
# Re-vendor the front-end assets from the npm registry into the package (served locally, no CDN).
# The result is committed, so installing the service never needs npm.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
version=$(python3 -c 'import json;print(json.load(open("package.json"))["dependencies"]["leaflet"])')
(cd "$tmp" && npm pack "leaflet@$version" --silent >/dev/null && tar xzf "leaflet-$version.tgz")
dest=broadcast/web/static/vendor/leaflet
rm -rf "$dest" && mkdir -p "$dest/images"
cp "$tmp/package/dist/leaflet.js" "$tmp/package/dist/leaflet.css" "$tmp/package/LICENSE" "$dest/"
cp "$tmp/package/dist/images/"*.png "$dest/images/"
echo "leaflet $version vendored into $dest"
