#!/usr/bin/env bash
# The serving benchmark's pieces on the CPU, in seconds:
#  1. "ignore_eos": true (vLLM's extension, which the benchmark sends so that every request
#     produces exactly its max_tokens): a model whose end-of-sequence id is the token greedy
#     decoding produces first stops at once without it and runs to max_tokens with it;
#  2. tools/bench_serve.py against a tiny model (it starts gattn serve itself): Poisson and
#     fixed-concurrency scenarios; the report's counts agree with the request set it made and
#     with the server's own /metrics counters, and its figures with each other.
source "$GA_SRC/tests/serve_lib.sh"
command -v curl >/dev/null || { echo "skipped: no curl"; exit 77; }
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }

make_model "$TMP/m"
start_server A --model "$TMP/m"
first=$(curl -s "http://127.0.0.1:$PORT_A/v1/completions" \
  --data-binary '{"prompt": [5, 6, 7], "max_tokens": 1, "temperature": 0, "return_token_ids": true, "ignore_eos": true}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["token_ids"][0])')
python3 - "$TMP/m/config.json" "$first" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["eos_token_id"] = [int(sys.argv[2])]
json.dump(c, open(sys.argv[1], "w"))
PY
start_server B --model "$TMP/m"
ask() { # ask IGNORE_EOS -> "finish_reason completion_tokens"
  curl -s "http://127.0.0.1:$PORT_B/v1/completions" \
    --data-binary "{\"prompt\": [5, 6, 7], \"max_tokens\": 9, \"temperature\": 0, \"ignore_eos\": $1}" |
    python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["choices"][0]["finish_reason"], j["usage"]["completion_tokens"])'
}
[ "$(ask false)" = "stop 0" ] || fail "eos id $first did not stop the request: $(ask false)"
[ "$(ask true)" = "length 9" ] || fail "ignore_eos: $(ask true)"
status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT_B/v1/completions" \
  --data-binary '{"prompt": [5], "ignore_eos": "yes"}')
[ "$status" = 400 ] || fail "ignore_eos \"yes\": status $status"

# 2. the benchmark (its own server, on the model whose eos the requests must ignore)
B=(python3 "$GA_SRC/tools/bench_serve.py" --model "$TMP/m" --gattn "$GA_CLI" --device cpu)
# (three client processes: the requests and clients split unevenly across them, 7/7/6 and 2/2/2)
"${B[@]}" --serve-args "--threads 1 --max-batch 8" --rates 40 --concurrency 6 --requests 20 \
  --client-procs 3 --prompt-len 3:40 --max-tokens 1:12 --warmup 2 --json "$TMP/bench.json" >"$TMP/bench.md" \
  2>"$TMP/bench.err" || fail "bench_serve.py: $(cat "$TMP/bench.err")"
python3 - "$TMP/bench.json" "$TMP/bench.md" <<'PY' || fail "the benchmark's report"
import json, math, sys
d = json.load(open(sys.argv[1]))
rows = d["rows"]
assert [r["scenario"] for r in rows] == ["rate 40/s", "6 concurrent"], [r["scenario"] for r in rows]
for r in rows:
    name = r["scenario"]
    assert r["completed"] == r["requests"] == 20 and r["failed"] == 0, (name, r["errors"])
    # every request produced its max_tokens, as the server itself counted
    assert r["output_tokens"] == d["requested_output_tokens"], (name, r["output_tokens"])
    assert r["input_tokens"] == d["requested_input_tokens"], name
    s = r["server"]
    assert s["gattn_generation_tokens_total"] == r["output_tokens"], (name, s)
    assert s["gattn_prompt_tokens_total"] == r["input_tokens"], (name, s)
    assert s["gattn_prefill_sequences_total"] >= 20 and s["gattn_prefill_calls_total"] >= 1, s
    # the server's own ITL histogram: one sample per token after each request's first
    si = r["server_itl"]
    assert si["samples"] == r["output_tokens"] - 20, (name, si)
    assert si["p50_le_ms"] is None or si["p50_le_ms"] <= (si["p99_le_ms"] or 1e9), (name, si)
    # the engine's own time: decode rows = generated tokens after each first (no preemption
    # here), busy time within the wall time
    en = r["engine"]
    assert s["gattn_decode_rows_total"] == r["output_tokens"] - 20, (name, s)
    assert s["gattn_decode_steps_total"] >= 1 and 1 <= en["mean_batch"] <= 8, (name, en)
    assert 0 < en["busy"] <= 1.0 + 1e-6 and 0 <= en["prefill_share"] <= en["busy"], (name, en)
    # figures consistent with each other
    assert math.isclose(r["requests_per_s"] * r["wall_s"], 20, rel_tol=1e-9), name
    assert math.isclose(r["output_tokens_per_s"] * r["wall_s"], r["output_tokens"], rel_tol=1e-9)
    # one ITL sample per token after the first at most (an event may carry several tokens)
    assert 0 < r["itl_samples"] <= r["output_tokens"] - 20, (name, r["itl_samples"])
    for k in ("ttft", "itl", "e2e"):
        p = r[k]
        assert 0 <= p["p50_ms"] <= p["p90_ms"] <= p["p99_ms"], (name, k, p)
    assert r["ttft"]["p99_ms"] <= r["e2e"]["p99_ms"] + 1e-9, name
    assert r["e2e"]["p99_ms"] <= r["wall_s"] * 1e3 + 1e-6, name
    st = r["steady"]
    if name.startswith("rate"):
        assert st is None, (name, st)
    elif st is not None:  # every client busy: inside the run, its tokens a part of the run's
        assert 0 < st["window_s"] <= r["wall_s"] and 0 <= st["output_tokens"] <= r["output_tokens"], st
        assert math.isclose(st["output_tokens_per_s"] * st["window_s"], st["output_tokens"], rel_tol=1e-9)
md = open(sys.argv[2]).read()
assert md.count("| gattn |") == 2, md
PY
# the steady-state window on hand-made timings: 2 processes x 2 clients; the 2nd first token at
# t = 2, process 1 sends its last request at t = 5 (process 0 at 7): tokens in [2, 5] count
python3 - "$GA_SRC/tools" <<'PY' || fail "steady_window"
import sys
sys.path.insert(0, sys.argv[1])
from bench_serve import steady_window
def req(proc, sent, times, error=None):
    return {"proc": proc, "sent": sent, "events": [(t, 1) for t in times], "error": error}
rs = [req(0, 0.0, [1.0, 3.0, 6.0]), req(1, 0.0, [2.0, 4.0]), req(0, 7.0, [8.0]),
      req(1, 5.0, [5.5, 9.0]), req(1, 0.5, [], error="boom")]
w = steady_window(rs, 2)
assert abs(w["window_s"] - 3.0) < 1e-12 and w["output_tokens"] == 3, w  # 3.0, 4.0, 2.0 (t_a)
assert steady_window(rs, 5) is None                      # fewer first tokens than clients
assert steady_window([req(0, 0.0, [1.0]), req(0, 0.5, [2.0])], 2) is None  # ends before it starts
PY
# bad input: one line, exit 2
"${B[@]}" --rates 1 --prompt-len 5:2 >/dev/null 2>"$TMP/err" && fail "--prompt-len 5:2 accepted"
grep -q "prompt-len" "$TMP/err" || fail "--prompt-len error: $(cat "$TMP/err")"
"${B[@]}" --rates 1 --client-procs 0 >/dev/null 2>"$TMP/err" && fail "--client-procs 0 accepted"
grep -q "client-procs" "$TMP/err" || fail "--client-procs error: $(cat "$TMP/err")"
python3 "$GA_SRC/tools/bench_serve.py" --model "$TMP/none" --rates 1 >/dev/null 2>"$TMP/err" &&
  fail "a missing model accepted"
grep -q "config.json" "$TMP/err" || fail "missing model error: $(cat "$TMP/err")"
echo "serve_bench: ok"
