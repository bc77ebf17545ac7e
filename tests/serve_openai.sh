#!/usr/bin/env bash
# gattn serve through the official openai npm client (tests/serve_openai.js), installed into
# .cache/openai by tools/openai/setup.sh. Skips (77) without it, except under CI.
source "$GA_SRC/tests/serve_lib.sh"
DIR="${GA_OPENAI_DIR:-$GA_SRC/.cache/openai}"
if ! command -v node >/dev/null || [ ! -f "$DIR/node_modules/openai/package.json" ]; then
  msg="the openai client is not installed in $DIR (run tools/openai/setup.sh; needs node and npm)"
  [ -n "${CI:-}" ] && fail "$msg"
  echo "skipped: $msg"
  exit 77
fi
make_model "$TMP/tiny"
start_server A --model "$TMP/tiny" --api-key sekret --max-context 256
timeout "$(limit 60)" node "$GA_SRC/tests/serve_openai.js" "$DIR" "$PORT_A"
