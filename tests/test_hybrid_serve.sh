#!/usr/bin/env bash
# gattn serve on hybrid models (issue 15), CPU backend, for Qwen3.5 dense and Qwen3-Next (MoE):
#   * a paged cache asked for (--kv-blocks) is refused by the hybrid backend and the server says
#     it serves from slots (the DeltaNet state is per sequence, not blocks of tokens);
#   * three requests at temperature 0 sent at once (one batch of 3 slots) each return the token
#     ids `gattn generate --ids` gives for that prompt alone;
#   * the same prompt again on a reused slot gives the same ids (the slot's recurrent and conv
#     state start from zero for a new sequence);
#   * /metrics reports gattn_kv_paged 0.
command -v curl >/dev/null || { echo "skipped: no curl"; exit 77; }
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }
. "$(dirname "$0")/serve_lib.sh"

# ids JSON_FILE: the completion's token_ids, comma-separated
ids() {
  python3 -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["choices"][0]["token_ids"])))' "$1"
}

PROMPTS=("3,14,15,92,65,35,89,79" "1,2" "200,100,50,25,12,6,3,1,9,7,7")
for fam in qwen3_5 qwen3_next; do
  M=$TMP/$fam
  "$GA_CLI" write-model --out "$M" --family "$fam" --layers 8 --hidden 64 --heads 4 --kv-heads 2 \
    --head-dim 32 --intermediate 96 --vocab 300 --init-std 0.3 --seed 7 --tokenizer >/dev/null \
    || fail "write-model $fam"
  start_server "$fam" --model "$M" --max-batch 3 --kv-blocks 64
  port_var=PORT_$fam
  U="http://127.0.0.1:${!port_var}"
  grep -q "3 slots of .* (this backend has no paged KV cache yet" "$TMP/$fam.err" \
    || fail "$fam: no slots note: $(cat "$TMP/$fam.err")"

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
  # the first prompt again: a reused slot starts from a clean state
  curl -s -o "$TMP/again.json" "$U/v1/completions" -H 'Content-Type: application/json' \
    --data-binary "{\"prompt\": [${PROMPTS[0]}], \"max_tokens\": 9, \"temperature\": 0, \"return_token_ids\": true}" \
    || fail "$fam: curl again"
  [ "$(ids "$TMP/again.json")" = "$(ids "$TMP/r0.json")" ] || fail "$fam: a reused slot gave other tokens"
  curl -s -o "$TMP/metrics" "$U/metrics" || fail "$fam: curl /metrics"
  grep -q '^gattn_kv_paged 0$' "$TMP/metrics" || fail "$fam: /metrics gattn_kv_paged"
done
echo "ok: hybrid serve"
