#!/usr/bin/env bash
# Install the web UI's third-party files (HTMX, uPlot, and Swagger UI for /api/v1/docs) from the npm registry into
# podium/server/ui/static/vendor/ (git-ignored). Pinned versions; idempotent: does nothing
# when the pinned files are already there. Needs `npm` (or `node` + network to the registry).
set -euo pipefail

HTMX_VERSION=2.0.11
UPLOT_VERSION=1.6.32
SWAGGER_VERSION=5.36.0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/podium/server/ui/static/vendor"
STAMP="$DEST/.versions"
WANT="htmx.org@$HTMX_VERSION uplot@$UPLOT_VERSION swagger-ui-dist@$SWAGGER_VERSION"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -s "$DEST/htmx.min.js" && -s "$DEST/uPlot.iife.min.js" \
      && -s "$DEST/uPlot.min.css" && -s "$DEST/swagger-ui-bundle.js" && -s "$DEST/swagger-ui.css" ]]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "ui-assets: npm is needed to fetch $WANT (apt-get install npm)" >&2
  exit 1
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
(
  cd "$TMP"
  npm pack --silent --loglevel=error "htmx.org@$HTMX_VERSION" "uplot@$UPLOT_VERSION" \
    "swagger-ui-dist@$SWAGGER_VERSION" >/dev/null 2>"$TMP/npm.log" \
    || { cat "$TMP/npm.log" >&2; exit 1; }
  mkdir htmx uplot swagger
  tar -xzf "htmx.org-$HTMX_VERSION.tgz" -C htmx
  tar -xzf "uplot-$UPLOT_VERSION.tgz" -C uplot
  tar -xzf "swagger-ui-dist-$SWAGGER_VERSION.tgz" -C swagger
)
mkdir -p "$DEST"
cp "$TMP/htmx/package/dist/htmx.min.js" "$DEST/htmx.min.js"
cp "$TMP/uplot/package/dist/uPlot.iife.min.js" "$DEST/uPlot.iife.min.js"
cp "$TMP/uplot/package/dist/uPlot.min.css" "$DEST/uPlot.min.css"
cp "$TMP/swagger/package/swagger-ui-bundle.js" "$DEST/swagger-ui-bundle.js"
cp "$TMP/swagger/package/swagger-ui.css" "$DEST/swagger-ui.css"
cp "$TMP/swagger/package/LICENSE" "$DEST/swagger-ui.LICENSE" 2>/dev/null || true
cp "$TMP/htmx/package/LICENSE" "$DEST/htmx.LICENSE" 2>/dev/null || true
cp "$TMP/uplot/package/LICENSE" "$DEST/uPlot.LICENSE" 2>/dev/null || true
echo "$WANT" > "$STAMP"
echo "ui-assets: installed $WANT into ${DEST#"$ROOT"/}"
