#!/usr/bin/env bash
# Re-vendor the front-end assets from the npm registry at the versions in package.json (served locally, no CDN):
# Leaflet for the maps, Swagger UI and ReDoc for /api/docs and /api/redoc, each with its licence; and axe-core,
# for the browser tests only, into tests/vendor. The result is committed, so installing the service never needs npm.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
version() { python3 -c 'import json,sys;p=json.load(open("package.json"));print({**p["dependencies"],**p.get("devDependencies",{})}[sys.argv[1]])' "$1"; }
unpack() {  # unpack NAME into $tmp/NAME/package
  local v; v=$(version "$1")
  mkdir -p "$tmp/$1"
  (cd "$tmp/$1" && npm pack "$1@$v" --silent >/dev/null && tar xzf ./*.tgz)
  echo "$1 $v" >&2
}
static=broadcast/web/static/vendor

unpack leaflet
rm -rf "$static/leaflet" && mkdir -p "$static/leaflet/images"
cp "$tmp/leaflet/package/dist/leaflet.js" "$tmp/leaflet/package/dist/leaflet.css" "$tmp/leaflet/package/LICENSE" \
  "$static/leaflet/"
cp "$tmp/leaflet/package/dist/images/"*.png "$static/leaflet/images/"

unpack swagger-ui-dist
rm -rf "$static/swagger-ui" && mkdir -p "$static/swagger-ui"
cp "$tmp/swagger-ui-dist/package/"{swagger-ui-bundle.js,swagger-ui-bundle.js.LICENSE.txt,swagger-ui.css,LICENSE,NOTICE} \
  "$static/swagger-ui/"
# The bundle names a source map we do not ship; drop the comment so browsers do not ask for it.
sed -i '/^\/\/# sourceMappingURL=/d' "$static/swagger-ui/swagger-ui-bundle.js"
sed -i 's#/\*\# sourceMappingURL=[^*]*\*/##' "$static/swagger-ui/swagger-ui.css"

unpack redoc
rm -rf "$static/redoc" && mkdir -p "$static/redoc"
cp "$tmp/redoc/package/bundles/redoc.standalone.js" "$tmp/redoc/package/bundles/redoc.standalone.js.LICENSE.txt" \
  "$tmp/redoc/package/LICENSE" "$static/redoc/"
sed -i '/^\/\/# sourceMappingURL=/d' "$static/redoc/redoc.standalone.js"

unpack axe-core
rm -rf tests/vendor/axe-core && mkdir -p tests/vendor/axe-core
cp "$tmp/axe-core/package/"{axe.min.js,LICENSE,LICENSE-3RD-PARTY.txt} tests/vendor/axe-core/
echo "vendored into $static and tests/vendor"
