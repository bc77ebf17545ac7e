#!/usr/bin/env bash
# Installs the official `openai` npm client, pinned, into <repo>/.cache/openai (gitignored), for
# the serve tests (tests/serve_openai.js drives `gattn serve` through it). Idempotent and quiet
# when already installed; without npm it says so and exits 0 (the test then reports skipped,
# except under CI).
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=5.12.0 # 7.x needs Node >= 22; Debian and CI have Node 20
DIR=${GA_OPENAI_DIR:-$PWD/.cache/openai}

installed() {
  node -e "const v=require(process.argv[1]).version; process.exit(v===process.argv[2]?0:1)" \
    "$DIR/node_modules/openai/package.json" "$VERSION" 2>/dev/null
}

if command -v node >/dev/null 2>&1 && installed; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "openai: node/npm not found; the openai client test will be skipped" >&2
  exit 0
fi
mkdir -p "$DIR"
cat >"$DIR/package.json" <<JSON
{
  "name": "gattn-openai-client",
  "private": true,
  "description": "the official OpenAI client, for gattn serve's tests (not shipped)",
  "dependencies": { "openai": "$VERSION" }
}
JSON
echo "openai: installing openai@$VERSION into $DIR"
(cd "$DIR" && npm install --no-audit --no-fund --loglevel=error --cache "$DIR/.npm-cache" >/dev/null)
installed || { echo "openai: install into $DIR did not produce openai@$VERSION" >&2; exit 1; }
