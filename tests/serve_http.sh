#!/usr/bin/env bash
# gattn serve over raw HTTP (curl): every fault of issue 13 gets its status and a JSON error
# {"error": {"message", "type", "code"}}, and the server goes on serving; stop strings; a
# client that disconnects frees its slot at once; a full queue answers 429 + Retry-After.
source "$GA_SRC/tests/serve_lib.sh"
command -v curl >/dev/null || { echo "skipped: no curl"; exit 77; }
# node builds and reads the JSON bodies (tools/setup.sh installs it; the GPU machine has none)
command -v node >/dev/null || { echo "skipped: no node"; exit 77; }

make_model "$TMP/m"
start_server A --model "$TMP/m" --api-key sekret --max-body 2048 --max-context 128 --max-batch 4
U="http://127.0.0.1:$PORT_A"
AUTH=(-H "Authorization: Bearer sekret")

# req METHOD PATH [curl args...] -> "$STATUS" and body in $TMP/body
req() {
  local method=$1 path=$2
  shift 2
  STATUS=$(curl -s -o "$TMP/body" -D "$TMP/headers" -w '%{http_code}' -X "$method" "$@" "$U$path")
}
# expect_error STATUS CODE METHOD PATH [curl args]: the status and a well-formed error object.
expect_error() {
  local want=$1 code=$2
  shift 2
  req "$@"
  [ "$STATUS" = "$want" ] || fail "$*: status $STATUS, want $want: $(cat "$TMP/body")"
  node -e '
    const e = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).error;
    if (!e || typeof e.message !== "string" || !e.message || typeof e.type !== "string" ||
        typeof e.code !== "string") process.exit(1);
    if (process.argv[2] !== "-" && e.code !== process.argv[2]) { console.error("code", e.code); process.exit(1); }
  ' "$TMP/body" "$code" || fail "$*: not the error object wanted ($code): $(cat "$TMP/body")"
}
post() { # post BODY: a completions request with the key
  req POST /v1/completions "${AUTH[@]}" -H 'Content-Type: application/json' --data-binary "$1"
}
bad() { # bad CODE BODY [PATH]
  expect_error 400 "$1" POST "${3:-/v1/completions}" "${AUTH[@]}" --data-binary "$2"
}

req GET /health
[ "$STATUS" = 200 ] || fail "/health: $STATUS"
req GET /metrics
[ "$STATUS" = 200 ] && grep -q '^gattn_cache_slots_free 4$' "$TMP/body" || fail "/metrics: $(head -c 300 "$TMP/body")"

# authentication
expect_error 401 invalid_api_key POST /v1/completions --data-binary '{"prompt":[1]}'
expect_error 401 invalid_api_key POST /v1/completions -H "Authorization: Bearer nope" --data-binary '{"prompt":[1]}'
expect_error 401 invalid_api_key GET /v1/models
req GET /v1/models "${AUTH[@]}"
[ "$STATUS" = 200 ] && grep -q '"id":"m"' "$TMP/body" || fail "/v1/models: $(cat "$TMP/body")"

# routes and methods
expect_error 404 not_found GET /nope
expect_error 404 not_found POST /v1/embeddings "${AUTH[@]}" --data-binary '{}'
expect_error 405 method_not_allowed GET /v1/completions "${AUTH[@]}"
grep -qi '^Allow: POST' "$TMP/headers" || fail "405 without Allow: POST"
expect_error 405 method_not_allowed POST /health --data-binary '{}'

# bodies
bad invalid_json '{"prompt": [1, 2'
bad invalid_json '{"prompt": [1]} trailing'
bad invalid_json ''
bad invalid_type '[1, 2, 3]'
bad invalid_type '{"prompt": true}'
bad missing_field '{"max_tokens": 3}'
bad invalid_type '{"prompt": [1], "max_tokens": "5"}'
bad invalid_type '{"prompt": [1], "max_tokens": 2.5}'
bad invalid_type '{"prompt": [1], "temperature": "hot"}'
bad invalid_type '{"prompt": [1], "stream": 1}'
bad invalid_type '{"prompt": [1], "stop": 5}'
bad invalid_type '{"prompt": [1], "seed": 1.5}'
bad invalid_type '{"prompt": [1], "top_k": 0.5}'
bad invalid_value '{"prompt": [1, "a", 2]}'
bad invalid_type '{"prompt": [1], "model": 7}'
bad invalid_type '{"messages": "hi"}' /v1/chat/completions
bad invalid_type '{"messages": [{"role": "user", "content": 5}]}' /v1/chat/completions
bad invalid_value '{"messages": []}' /v1/chat/completions
bad invalid_value '{"prompt": [1], "temperature": -0.5}'
bad invalid_value '{"prompt": [1], "temperature": 1e999}'
bad invalid_value '{"prompt": [1], "top_p": 0}'
bad invalid_value '{"prompt": [1], "top_p": 1.5}'
bad invalid_value '{"prompt": [1], "top_k": -2}'
bad invalid_value '{"prompt": [1], "max_tokens": 0}'
bad invalid_value '{"prompt": [1], "logprobs": 21}'
bad invalid_value '{"prompt": []}'
bad invalid_value '{"prompt": ""}'
bad invalid_value '{"prompt": "a\u0000b"}'
bad invalid_value '{"prompt": [5, 1024]}'
bad invalid_value '{"prompt": [5, -1]}'
bad invalid_value '{"prompt": [5, 1e300]}'
bad unsupported '{"prompt": [1], "n": 2}'
bad unsupported '{"prompt": [1], "echo": true}'
bad unsupported '{"prompt": [1], "presence_penalty": 0.5}'
expect_error 404 model_not_found POST /v1/completions "${AUTH[@]}" --data-binary '{"model": "gpt-4", "prompt": [1]}'
long=$(seq -s, 1 130)
bad context_length_exceeded "{\"prompt\": [$long]}"
bad context_length_exceeded '{"prompt": [1, 2, 3], "max_tokens": 126}'
post '{"prompt": [1, 2, 3], "max_tokens": 125, "temperature": 0}'
[ "$STATUS" = 200 ] || fail "125 + 3 = the context should fit: $(cat "$TMP/body")"

# size limit: declared (Content-Length) and chunked
big=$(head -c 3000 /dev/zero | tr '\0' 'a')
expect_error 413 request_too_large POST /v1/completions "${AUTH[@]}" --data-binary "{\"prompt\": \"$big\"}"
expect_error 413 request_too_large POST /v1/completions "${AUTH[@]}" -H 'Transfer-Encoding: chunked' --data-binary "{\"prompt\": \"$big\"}"

# after all of that it still answers, with usage and finish_reason
post '{"prompt": "Hello there", "max_tokens": 12, "temperature": 0}'
[ "$STATUS" = 200 ] || fail "a good request after the bad ones: $STATUS $(cat "$TMP/body")"
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const c = r.choices[0];
  if (r.object !== "text_completion" || typeof c.text !== "string" || c.finish_reason !== "length" ||
      r.usage.completion_tokens !== 12 || r.usage.total_tokens !== r.usage.prompt_tokens + 12) process.exit(1);
  require("fs").writeFileSync(process.argv[2], c.text);
' "$TMP/body" "$TMP/text" || fail "completion shape: $(cat "$TMP/body")"

# stop strings: the text ends before the first occurrence of the stop string
full=$(cat "$TMP/text")
stop=${full:5:2}
[ -n "$stop" ] || fail "greedy text too short to pick a stop string from: '$full'"
want=${full%%"$stop"*}
body=$(node -e 'console.log(JSON.stringify({prompt: "Hello there", max_tokens: 12, temperature: 0, stop: [process.argv[1]]}))' "$stop")
post "$body"
got=$(node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); process.stdout.write(r.choices[0].text + "|" + r.choices[0].finish_reason)' "$TMP/body")
[ "$got" = "$want|stop" ] || fail "stop '$stop': got '$got', want '$want|stop'"
body=$(node -e 'console.log(JSON.stringify({prompt: "Hello there", max_tokens: 12, temperature: 0, stream: true, stop: process.argv[1]}))' "$stop")
curl -sN "${AUTH[@]}" "$U/v1/completions" --data-binary "$body" >"$TMP/sse"
got=$(node -e '
  let t = "", fin = null;
  for (const l of require("fs").readFileSync(process.argv[1], "utf8").split("\n\n")) {
    if (!l.startsWith("data: ") || l === "data: [DONE]") continue;
    const c = JSON.parse(l.slice(6)).choices[0]; t += c.text; if (c.finish_reason) fin = c.finish_reason; }
  process.stdout.write(t + "|" + fin)' "$TMP/sse")
[ "$got" = "$want|stop" ] || fail "streamed stop '$stop': got '$got', want '$want|stop'"
tail -c 14 "$TMP/sse" | grep -q 'data: \[DONE\]' || fail "stream does not end with [DONE]"

# --- a slow model, one slot, a queue of one ---
"$GA_CLI" write-model --out "$TMP/slow" --max-pos 4096 --hidden 512 --intermediate 1536 --layers 6 \
  --heads 8 --kv-heads 4 --head-dim 64 >/dev/null
start_server B --model "$TMP/slow" --max-batch 1 --max-queue 1
UB="http://127.0.0.1:$PORT_B"
metric() { curl -s "$UB/metrics" | sed -n "s/^$1 //p"; }
LONG='{"prompt": [1, 2, 3], "max_tokens": 4000, "temperature": 0'

# A streaming client that goes away: its slot is free again at once (well before the 4000
# tokens, about 30 s, would be done).
curl -sN --max-time 0.5 "$UB/v1/completions" --data-binary "$LONG, \"stream\": true}" >/dev/null || true
for _ in $(seq 30); do [ "$(metric gattn_cache_slots_free)" = 1 ] && break; sleep 0.1; done
[ "$(metric gattn_cache_slots_free)" = 1 ] || fail "stream disconnect did not free the slot"
# A plain (non-streaming) client that goes away, likewise.
curl -s --max-time 0.5 "$UB/v1/completions" --data-binary "$LONG}" >/dev/null || true
for _ in $(seq 30); do [ "$(metric gattn_cache_slots_free)" = 1 ] && break; sleep 0.1; done
[ "$(metric gattn_cache_slots_free)" = 1 ] || fail "disconnect did not free the slot"
[ "$(metric 'gattn_requests_finished_total{reason="cancelled"}')" = 2 ] || fail "two cancellations expected"

# A full queue: one running, one waiting, the third is refused with 429 and Retry-After.
curl -s --max-time 3 "$UB/v1/completions" --data-binary "$LONG}" >/dev/null &
c1=$!
for _ in $(seq 50); do [ "$(metric gattn_requests_running)" = 1 ] && break; sleep 0.05; done
curl -s --max-time 3 "$UB/v1/completions" --data-binary "$LONG}" >/dev/null &
c2=$!
for _ in $(seq 50); do [ "$(metric gattn_requests_waiting)" = 1 ] && break; sleep 0.05; done
[ "$(metric gattn_requests_waiting)" = 1 ] || fail "the second request is not waiting"
U=$UB expect_error 429 queue_full POST /v1/completions --data-binary '{"prompt": [1], "max_tokens": 1}'
grep -qi '^Retry-After: [0-9]' "$TMP/headers" || fail "429 without Retry-After"
kill "$c1" "$c2" 2>/dev/null || true
wait "$c1" "$c2" 2>/dev/null || true
for _ in $(seq 50); do [ "$(metric gattn_cache_slots_free)" = 1 ] && [ "$(metric gattn_requests_waiting)" = 0 ] && break; sleep 0.1; done
[ "$(metric gattn_requests_waiting)" = 0 ] || fail "the waiting request was not dropped when its client left"
curl -s "$UB/v1/completions" --data-binary '{"prompt": [1], "max_tokens": 2}' | grep -q '"finish_reason":"length"' ||
  fail "server B no longer answers"
echo "serve_http: ok"
