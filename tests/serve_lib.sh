# Shared by the serve tests (sourced): a tiny model with a tokenizer in a temp folder, and
# servers on --port 0 that are killed when the test exits.
set -euo pipefail
TMP=$(mktemp -d)
SERVER_PIDS=()
cleanup() {
  for p in "${SERVER_PIDS[@]}"; do
    kill -9 "$p" 2>/dev/null && { wait "$p" 2>/dev/null || true; }
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# A client-side time limit of N seconds, times GA_TIMEOUT_SCALE (default 1): tools/test.sh runs
# these tests again against a ThreadSanitizer build, where every step of the CPU backend is
# tens of times slower (serve_load's 64 requests served alone then together took 110 s on a
# 2-core machine, against 4.5 s in Release), so its loop raises the scale rather than the
# tests doing less under the sanitizer.
limit() {
  echo $(($1 * ${GA_TIMEOUT_SCALE:-1}))
}

# make_model DIR [write-model options]: weights large enough that greedy text varies.
make_model() {
  local dir=$1
  shift
  "$GA_CLI" write-model --out "$dir" --variant elementwise --tokenizer --max-pos 2048 \
    --init-std 0.25 "$@" >/dev/null
}

# start_server NAME [serve options]: sets PORT_<NAME>, PID_<NAME>; fails unless it prints its
# one line within 20 s.
start_server() {
  local name=$1
  shift
  "$GA_CLI" serve --port 0 --threads 1 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  local pid=$!
  SERVER_PIDS+=("$pid")
  for _ in $(seq 200); do
    if grep -q '^listening on http://' "$TMP/$name.out" 2>/dev/null; then break; fi
    kill -0 "$pid" 2>/dev/null || fail "server $name exited: $(cat "$TMP/$name.err")"
    sleep 0.1
  done
  local line
  line=$(cat "$TMP/$name.out")
  [[ "$line" =~ ^listening\ on\ http://127\.0\.0\.1:([0-9]+)$ ]] || fail "server $name printed '$line'"
  [ "$(wc -l <"$TMP/$name.out")" = 1 ] || fail "server $name printed more than one line"
  printf -v "PORT_$name" '%s' "${BASH_REMATCH[1]}"
  printf -v "PID_$name" '%s' "$pid"
}
