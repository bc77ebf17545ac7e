#!/usr/bin/env bash
# Continuous batching under load (tests/serve_load.js): 64 concurrent clients, each answer
# complete and equal to the same request served alone and, for some, to `gattn generate`.
# A small --prefill-chunk makes long prompts prefill in pieces between the others' decodes.
# Server A (the CPU backend takes mixed steps) must run some steps with decode rows and prompt
# tokens in one call. Server B runs separate prefill passes (--separate-prefill) and holds every
# one that runs beside decodes to the minimum (--prefill-share 0.001): the answers must still
# equal those served alone, and /metrics must count such passes and no mixed step.
source "$GA_SRC/tests/serve_lib.sh"
command -v node >/dev/null || { echo "skipped: no node"; exit 77; }
make_model "$TMP/m"
start_server A --model "$TMP/m" --max-batch 16 --prefill-chunk 7 --max-context 512
timeout "$(limit 100)" node "$GA_SRC/tests/serve_load.js" "$PORT_A" "$GA_CLI" "$TMP/m" 64
# A client has its whole answer a moment before the scheduler thread retires the request at
# the end of its step, so "nothing running" is awaited (up to 5 s), not sampled once.
for _ in $(seq 50); do
  curl -s "http://127.0.0.1:$PORT_A/metrics" >"$TMP/met"
  grep -q "^gattn_requests_running 0$" "$TMP/met" && break
  sleep 0.1
done
grep -q "^gattn_requests_running 0$" "$TMP/met" || { grep -E "running|waiting|finished|slots" "$TMP/met"; fail "requests still running 5 s after the last answer"; }
# The prefills of several requests go through one session call a step (ga_session_forward_multi):
# under this load some calls must carry more than one request.
curl -s "http://127.0.0.1:$PORT_A/metrics" | awk '
  $1 == "gattn_prefill_calls_total" { c = $2 } $1 == "gattn_prefill_sequences_total" { s = $2 }
  END { print "prefill calls " c ", request chunks in them " s; exit !(c > 0 && s > c) }' ||
  fail "no prefill call carried several requests"
curl -s "http://127.0.0.1:$PORT_A/metrics" | awk '
  $1 == "gattn_mixed_steps_total" { m = $2 } $1 == "gattn_decode_steps_total" { d = $2 }
  END { print "mixed steps " m " of " d " decode steps"; exit !(m > 0 && m <= d) }' ||
  fail "no mixed step (decode rows and prompt tokens in one call)"
start_server B --model "$TMP/m" --max-batch 16 --prefill-chunk 256 --prefill-share 0.001 \
  --max-context 512 --separate-prefill
timeout "$(limit 100)" node "$GA_SRC/tests/serve_load.js" "$PORT_B" "$GA_CLI" "$TMP/m" 24
curl -s "http://127.0.0.1:$PORT_B/metrics" | awk '
  $1 == "gattn_prefill_capped_total" { c = $2 } END { print "prefill passes held by the share " c; exit !(c > 0) }' ||
  fail "--prefill-share 0.001 held no prefill pass"
curl -s "http://127.0.0.1:$PORT_B/metrics" | awk '
  $1 == "gattn_mixed_steps_total" { m = $2 } END { exit !(m == 0) }' ||
  fail "--separate-prefill ran mixed steps"
