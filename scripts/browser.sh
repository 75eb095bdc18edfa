#!/usr/bin/env bash
# Makes sure Debian's Chromium is at /usr/bin/chromium for the browser tests (Playwright drives
# it by path; no browser is ever downloaded). Installed with apt when missing and we are root;
# otherwise we say what to install and the browser tests skip.
set -euo pipefail

CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [[ -x "$CHROMIUM" ]]; then
  exit 0
fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "browser: installing chromium with apt-get" >&2
  apt-get update -qq >/dev/null
  if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; then
    exit 0
  fi
  echo "browser: apt-get could not install chromium; the browser tests will be skipped" >&2
else
  echo "browser: chromium is missing (sudo apt-get install chromium); the browser tests will be skipped" >&2
fi
exit 0
