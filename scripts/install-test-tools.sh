#!/usr/bin/env bash
# The Debian packages the test suite needs besides Python's: Graphviz (`dot` lays out `archc
# graph`'s drawings) and Chromium (the browser test of its HTML page). Installs only what is
# missing; run by `make test`. `make setup` does not: `archc graph` says how to install Graphviz.
set -euo pipefail

say() { printf 'install-test-tools: %s\n' "$*" >&2; }
die() { printf 'install-test-tools: error: %s\n' "$*" >&2; exit 1; }
source "$(dirname "$0")/apt.sh"

missing=()
command -v dot >/dev/null || missing+=(graphviz)
command -v chromium >/dev/null || missing+=(chromium)
if [[ ${#missing[@]} -gt 0 ]]; then
    apt_install "${missing[@]}"
fi
