#!/bin/sh
# Run by `npm test` (pretest). The HTML report test renders the report in Debian's Chromium, headless; it is
# not an npm package (a browser download needs the internet), so it comes from the system's package manager.
# Installs it when missing and allowed (root with apt-get, as in CI); otherwise says how and fails.
set -eu
CHROMIUM="${KEYGUARD_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "keyguard tests: installing Debian's chromium for the HTML report test (apt-get install chromium)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null; }
  [ -x "$CHROMIUM" ] && exit 0
fi
echo "keyguard tests: $CHROMIUM not found. The HTML report test needs Chromium:" >&2
echo "  sudo apt-get install -y chromium      (Debian/Ubuntu; or set KEYGUARD_CHROMIUM to a Chromium binary)" >&2
exit 1
