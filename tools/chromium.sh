#!/usr/bin/env bash
# The browser tests' one system package: Debian's Chromium (Playwright's own browser download needs the internet).
# Installs it where it is missing and this is root with apt-get (as on CI machines); elsewhere says how, and the
# browser tests skip (in CI they fail). Part of the README's test command, so no test installs anything itself.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
    exit 0
fi
echo "Chromium is not installed: the browser tests will skip. Install it with: sudo apt-get install -y chromium" >&2
