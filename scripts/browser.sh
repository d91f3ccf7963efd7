#!/usr/bin/env bash
# Install Debian's chromium (for the web UI's browser tests, driven by Playwright with
# executable_path=/usr/bin/chromium) when it is missing. Idempotent: a no-op when present.
set -euo pipefail

CHROMIUM="${PODIUM_CHROMIUM:-/usr/bin/chromium}"
if [[ -x "$CHROMIUM" ]]; then
  exit 0
fi
SUDO=""
if [[ "$(id -u)" != "0" ]]; then
  if command -v sudo >/dev/null; then
    SUDO="sudo"
  else
    echo "browser: $CHROMIUM is missing and we are not root (no sudo): apt-get install chromium" >&2
    exit 1
  fi
fi
echo "browser: installing chromium with apt-get (about 30 s)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
"$CHROMIUM" --version
