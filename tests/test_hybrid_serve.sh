#!/usr/bin/env bash
# gattn serve on hybrid models (issue 15), CPU backend, with the paged KV cache (issue 13):
#   * for Qwen3.5 dense, Qwen3.5-MoE and Qwen3-Next, --kv-blocks gives a paged cache (the
#     startup line says so, /metrics reports gattn_kv_paged 1): the full-attention layers' K/V
#     in blocks, the DeltaNet states fixed per sequence beside them;
#   * three requests at temperature 0 sent at once (one batch) each return the token ids
#     `gattn generate --ids` gives for that prompt alone;
#   * the same prompt again on a reused sequence gives the same ids (its recurrent and conv
#     state start from zero, its blocks are others' freed ones);
#   * --kv-memory on Qwen3-Next with a cache too small for two long requests at once: the
#     server serves paged, preempts one (gattn_preemptions_total grows) and recomputes it, and
#     each answer equals the request served alone; every block is free at the end.
command -v curl >/dev/null || { echo "skipped: no curl"; exit 77; }
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }
. "$(dirname "$0")/serve_lib.sh"

# ids JSON_FILE: the completion's token_ids, comma-separated
ids() {
  python3 -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["choices"][0]["token_ids"])))' "$1"
}
metric() { # metric PORT NAME: its value
  curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n {print $2}'
}

PROMPTS=("3,14,15,92,65,35,89,79" "1,2" "200,100,50,25,12,6,3,1,9,7,7")
for fam in qwen3_5 qwen3_5_moe qwen3_next; do
  M=$TMP/$fam
  "$GA_CLI" write-model --out "$M" --family "$fam" --layers 8 --hidden 64 --heads 4 --kv-heads 2 \
    --head-dim 32 --intermediate 96 --vocab 300 --init-std 0.3 --seed 7 --tokenizer >/dev/null \
    || fail "write-model $fam"
  # blocks of 4 tokens: the three requests (up to 20 tokens) take blocks in turn, so a
  # sequence's blocks are scattered through the pool
  start_server "$fam" --model "$M" --max-batch 3 --kv-blocks 24 --kv-block-size 4
  port_var=PORT_$fam
  U="http://127.0.0.1:${!port_var}"
  grep -q "up to 3 sequences of .* in a paged KV cache of 24 blocks of 4 tokens" "$TMP/$fam.err" \
    || fail "$fam: no paged line: $(cat "$TMP/$fam.err")"

  pids=()
  for i in 0 1 2; do
    curl -s -o "$TMP/r$i.json" "$U/v1/completions" -H 'Content-Type: application/json' \
      --data-binary "{\"prompt\": [${PROMPTS[$i]}], \"max_tokens\": 9, \"temperature\": 0, \"return_token_ids\": true}" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || fail "$fam: curl failed"; done
  for i in 0 1 2; do
    want=$("$GA_CLI" generate --model "$M" --tokens "${PROMPTS[$i]}" -n 9 --ids --device cpu 2>/dev/null) \
      || fail "$fam: generate ${PROMPTS[$i]}"
    got=$(ids "$TMP/r$i.json") || fail "$fam: no token_ids: $(cat "$TMP/r$i.json")"
    [ -n "$want" ] && [ "$got" = "$want" ] || fail "$fam: prompt $i: serve gave $got, generate $want"
  done
  # the first prompt again: a reused sequence starts from a clean state
  curl -s -o "$TMP/again.json" "$U/v1/completions" -H 'Content-Type: application/json' \
    --data-binary "{\"prompt\": [${PROMPTS[0]}], \"max_tokens\": 9, \"temperature\": 0, \"return_token_ids\": true}" \
    || fail "$fam: curl again"
  [ "$(ids "$TMP/again.json")" = "$(ids "$TMP/r0.json")" ] || fail "$fam: a reused sequence gave other tokens"
  [ "$(metric "${!port_var}" gattn_kv_paged)" = 1 ] || fail "$fam: /metrics gattn_kv_paged is not 1"
done

# --kv-memory: 2 full-attention layers x 2 KV heads x 32 dims x K,V x 4 bytes = 1 KiB a token, so
# 16 KiB a block of 16 tokens; 640 KiB holds the blocks and the DeltaNet states of 4 sequences.
M=$TMP/qwen3_next
start_server P --model "$M" --max-batch 4 --max-context 1024 --prefill-chunk 7 \
  --kv-memory 0.0006103515625
line=$(grep "paged KV cache of" "$TMP/P.err") || fail "--kv-memory: no paged line: $(cat "$TMP/P.err")"
[[ "$line" =~ cache\ of\ ([0-9]+)\ blocks\ of\ 16\ tokens ]] || fail "--kv-memory: '$line'"
N=${BASH_REMATCH[1]}
# 640 KiB less 4 x 33 KiB of DeltaNet states (4 bytes x 6 linear layers x (128 x 3 + 4 x 16 x 16))
# leaves 31 blocks of 16 KiB
[ "$N" = 31 ] || fail "--kv-memory: $N blocks, expected 31 (the DeltaNet states paid first)"
[ "$(metric "$PORT_P" gattn_kv_paged)" = 1 ] || fail "--kv-memory: gattn_kv_paged is not 1"
[ "$(metric "$PORT_P" gattn_kv_blocks_free)" = "$N" ] || fail "--kv-memory: free blocks"
# Two greedy requests (ignore_eos: always max_tokens) of 3/4 of the cache each: each fits alone, not both, so once the second is
# admitted while the first runs one of them is preempted and recomputed (whatever the timing).
MAXT=$((N * 16 * 3 / 4 - 16))
req="{\"prompt\": [100,200,30,40,50,60,70,80,90,10,20,30,40,50,60,70], \"max_tokens\": $MAXT, \"temperature\": 0, \"ignore_eos\": true, \"return_token_ids\": true}"
url="http://127.0.0.1:$PORT_P/v1/completions"
curl -s -o "$TMP/solo.json" "$url" -H 'Content-Type: application/json' -d "$req" || fail "solo"
grep -q '"finish_reason":"length"' "$TMP/solo.json" || fail "solo request stopped early: $(head -c 300 "$TMP/solo.json")"
before=$(metric "$PORT_P" gattn_preemptions_total)
curl -s -o "$TMP/p1.json" "$url" -H 'Content-Type: application/json' -d "$req" &
p1=$!
curl -s -o "$TMP/p2.json" "$url" -H 'Content-Type: application/json' -d "$req" || fail "p2"
wait "$p1" || fail "p1"
after=$(metric "$PORT_P" gattn_preemptions_total)
[ "${after:-0}" -gt "${before:-0}" ] || fail "two requests that overflow the cache caused no preemption ($before -> $after)"
solo=$(ids "$TMP/solo.json")
for f in p1 p2; do
  [ "$(ids "$TMP/$f.json")" = "$solo" ] || fail "$f differs from the request served alone"
done
for _ in $(seq 50); do
  [ "$(metric "$PORT_P" gattn_kv_blocks_free)" = "$N" ] && break
  sleep 0.1
done
[ "$(metric "$PORT_P" gattn_kv_blocks_free)" = "$N" ] || fail "blocks still used at the end"
echo "ok: hybrid serve (paged; --kv-memory gave $N blocks, $((after - before)) preemptions)"
