#!/usr/bin/env bash
# SIGTERM / SIGINT: gattn serve stops accepting, lets requests in flight finish within
# --shutdown-timeout (or cancels them when it runs out: finish_reason "abort"), and exits 0.
source "$GA_SRC/tests/serve_lib.sh"
command -v curl >/dev/null || { echo "skipped: no curl"; exit 77; }
"$GA_CLI" write-model --out "$TMP/slow" --max-pos 4096 --hidden 512 --intermediate 1536 --layers 6 \
  --heads 8 --kv-heads 4 --head-dim 64 --tokenizer >/dev/null

# finish_of FILE: the finish_reason of an SSE stream, or "none"; fails without [DONE].
finish_of() {
  grep -q '^data: \[DONE\]$' "$1" || fail "$1: the stream has no [DONE]: $(tail -c 300 "$1")"
  sed -n 's/.*"finish_reason":"\([a-z]*\)".*/\1/p' "$1" | tail -1
}

# 1. A short request in flight finishes in full; the server exits 0.
start_server A --model "$TMP/slow" --shutdown-timeout 60
curl -sN "http://127.0.0.1:$PORT_A/v1/completions" \
  --data-binary '{"prompt": [1, 2, 3], "max_tokens": 12, "temperature": 0, "stream": true}' >"$TMP/a.sse" &
c=$!
sleep 0.3
kill -TERM "$PID_A"
rc=0
wait "$c" || rc=$?
[ "$rc" = 0 ] || fail "the client of the request in flight failed ($rc): $(tail -c 300 "$TMP/a.sse")"
[ "$(finish_of "$TMP/a.sse")" = length ] || fail "the request in flight did not finish: $(tail -c 300 "$TMP/a.sse")"
[ "$(grep -c '"text":' "$TMP/a.sse")" -ge 2 ] || fail "no tokens streamed"
rc=0
wait "$PID_A" || rc=$?
[ "$rc" = 0 ] || fail "exit code $rc after SIGTERM, want 0"
grep -q 'SIGTERM' "$TMP/A.err" || fail "no shutdown notice on stderr"

# 2. A long request is cancelled when the grace runs out; SIGINT also exits 0, quickly.
start_server B --model "$TMP/slow" --shutdown-timeout 0.3
curl -sN "http://127.0.0.1:$PORT_B/v1/completions" \
  --data-binary '{"prompt": [1, 2, 3], "max_tokens": 4000, "temperature": 0, "stream": true}' >"$TMP/b.sse" &
c=$!
sleep 0.3
start=$(date +%s%N)
kill -INT "$PID_B"
rc=0
wait "$PID_B" || rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
[ "$rc" = 0 ] || fail "exit code $rc after SIGINT, want 0"
[ "$ms" -lt 5000 ] || fail "shutdown took $ms ms with --shutdown-timeout 0.3"
wait "$c" || true
[ "$(finish_of "$TMP/b.sse")" = abort ] || fail "the long request was not cancelled: $(tail -c 300 "$TMP/b.sse")"
# nothing listens any more
if curl -s --max-time 2 "http://127.0.0.1:$PORT_B/health" >/dev/null; then fail "still accepting after exit"; fi
echo "serve_signal: ok"
