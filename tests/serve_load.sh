#!/usr/bin/env bash
# Continuous batching under load (tests/serve_load.js): 64 concurrent clients, each answer
# complete and equal to the same request served alone and, for some, to `gattn generate`.
# A small --prefill-chunk makes long prompts prefill in pieces between the others' decodes.
source "$GA_SRC/tests/serve_lib.sh"
command -v node >/dev/null || { echo "skipped: no node"; exit 77; }
make_model "$TMP/m"
start_server A --model "$TMP/m" --max-batch 16 --prefill-chunk 7 --max-context 512
timeout 100 node "$GA_SRC/tests/serve_load.js" "$PORT_A" "$GA_CLI" "$TMP/m" 64
curl -s "http://127.0.0.1:$PORT_A/metrics" | grep -q '^gattn_requests_running 0$' || fail "requests still running"
