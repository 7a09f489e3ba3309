#!/bin/sh
# Refresh the browser libraries the web app serves from its own static files (no CDN at run
# time): Leaflet (the device map) and Swagger UI (/docs), each with its licence, taken from the
# npm registry at the pinned versions below. Needs npm. Run it from anywhere, review the diff of
# gateway/web/static/vendor/ (VERSIONS records what was taken, with checksums) and commit it.
#
#   scripts/vendor-web-assets.sh                         # the pinned versions
#   LEAFLET_VERSION=1.9.4 SWAGGER_UI_VERSION=5.35.0 scripts/vendor-web-assets.sh
set -eu

LEAFLET_VERSION=${LEAFLET_VERSION:-1.9.4}
SWAGGER_UI_VERSION=${SWAGGER_UI_VERSION:-5.35.0}

root=$(cd "$(dirname "$0")/.." && pwd)
dest=$root/gateway/web/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

cd "$work"
npm init -y >/dev/null
# --ignore-scripts: nothing from the packages runs here; only their built files are copied.
npm install --no-audit --no-fund --ignore-scripts --save-exact \
    "leaflet@$LEAFLET_VERSION" "swagger-ui-dist@$SWAGGER_UI_VERSION" >/dev/null

rm -rf "$dest/leaflet" "$dest/swagger-ui"
mkdir -p "$dest/leaflet/images" "$dest/swagger-ui"

leaflet=node_modules/leaflet
cp "$leaflet/dist/leaflet.js" "$leaflet/dist/leaflet.css" "$leaflet/LICENSE" "$dest/leaflet/"
cp "$leaflet/dist/images/"*.png "$dest/leaflet/images/"

swagger=node_modules/swagger-ui-dist
cp "$swagger/swagger-ui-bundle.js" "$swagger/swagger-ui-bundle.js.LICENSE.txt" \
   "$swagger/swagger-ui.css" "$swagger/favicon-32x32.png" "$swagger/LICENSE" "$swagger/NOTICE" \
   "$dest/swagger-ui/"

{
    echo "# Written by scripts/vendor-web-assets.sh: do not edit by hand."
    for package in leaflet swagger-ui-dist; do
        node -e '
            const lock = require("./package-lock.json").packages["node_modules/" + process.argv[1]];
            console.log(process.argv[1] + " " + lock.version + " " + lock.integrity);
        ' "$package"
    done
    echo "# sha256 of each file served"
    (cd "$dest" && find leaflet swagger-ui -type f | LC_ALL=C sort | xargs sha256sum)
} > "$dest/VERSIONS"

echo "vendored leaflet $LEAFLET_VERSION and swagger-ui-dist $SWAGGER_UI_VERSION into $dest"
