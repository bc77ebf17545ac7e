#!/usr/bin/env bash
# The engine-core CLI end to end: write-model, info and logits on a fresh random model, and
# every bad-input case failing with exactly one error line naming the file or argument and a
# nonzero exit (never a crash: exit codes >= 128 are signals and fail the test).
. "$(dirname "$0")/cli_harness.sh" cli

M=$T/hw
"$G" write-model --out "$M" --variant headwise --layers 2 --hidden 48 --heads 4 --kv-heads 2 \
  --head-dim 16 --intermediate 64 --vocab 100 --max-pos 16 --seed 3 >/dev/null && ok || bad "write-model"
"$G" info --model "$M" >"$T/info" && grep -q "headwise" "$T/info" && grep -q "q_proj rows      68" "$T/info" \
  && ok || bad "info: $(cat "$T/info")"
"$G" info --model "$M" --json | grep -q '"variant":"headwise"' && ok || bad "info --json"
"$G" logits --model "$M" --tokens 3,14,15 --device cpu >"$T/l1" && [ "$(wc -l <"$T/l1")" -eq 1 ] && ok || bad "logits"
"$G" logits --model "$M" --tokens 3,14,15 --all --device cpu >"$T/l3" && [ "$(wc -l <"$T/l3")" -eq 3 ] && ok || bad "logits --all"
# each line is a JSON array of vocab_size numbers; the last line equals the plain output
[ "$(head -1 "$T/l3" | tr ',' '\n' | wc -l)" -eq 100 ] && ok || bad "logits width"
[ "$(tail -1 "$T/l3")" = "$(cat "$T/l1")" ] && ok || bad "last row of --all differs from the default"
grep -qE '^\[-?[0-9]' "$T/l1" && ok || bad "logits format"
# sharded bf16 and f16 models give the logits their weights imply (bf16 vs f32 of the same seed
# differ only by weight rounding; just check they run and agree in shape)
"$G" write-model --out "$T/sh" --variant elementwise --layers 2 --hidden 48 --heads 4 --kv-heads 1 \
  --head-dim 8 --intermediate 64 --vocab 100 --dtype bf16 --shards 3 --bias --untied >/dev/null && ok || bad "write sharded"
[ -f "$T/sh/model.safetensors.index.json" ] && [ -f "$T/sh/model-00003-of-00003.safetensors" ] && ok || bad "shards missing"
"$G" logits --model "$T/sh" --tokens 1,2 --device cpu >/dev/null && ok || bad "logits sharded"

# ---- bad input
expect_fail "/nonexistent/model" "$G" info --model /nonexistent/model
expect_fail "--model" "$G" info
expect_fail "unknown option '--frobnicate'" "$G" info --model "$M" --frobnicate
expect_fail "--tokens" "$G" logits --model "$M" --tokens 1,,2
expect_fail "--tokens" "$G" logits --model "$M" --tokens 1,x
expect_fail "--tokens" "$G" logits --model "$M" --tokens -1
expect_fail "--tokens" "$G" logits --model "$M" --tokens 99999999999
expect_fail "outside [0, 100)" "$G" logits --model "$M" --tokens 1,100
expect_fail "max_position_embeddings" "$G" logits --model "$M" --tokens 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17
expect_fail "--device" "$G" logits --model "$M" --tokens 1 --device tpu
expect_fail "--variant" "$G" write-model --out "$T/x" --variant sideways
expect_fail "multiple" "$G" write-model --out "$T/x" --heads 3 --kv-heads 2
expect_fail "--layers" "$G" write-model --out "$T/x" --layers 0
expect_fail "unknown command" "$G" frobnicate

# corrupt copies of the model
corrupt() { rm -rf "$T/c"; cp -r "$M" "$T/c"; }
corrupt; head -c 100 "$M/model.safetensors" >"$T/c/model.safetensors"
expect_fail "model.safetensors" "$G" logits --model "$T/c" --tokens 1
corrupt; head -c 5 "$M/model.safetensors" >"$T/c/model.safetensors"
expect_fail "too short" "$G" info --model "$T/c"
corrupt; printf '\xff\xff\xff\xff\x00\x00\x00\x00{}' >"$T/c/model.safetensors"
expect_fail "past the end" "$G" info --model "$T/c"
corrupt; sed -i 's/"elementwise_attn_output_gate":[[:space:]]*false/"elementwise_attn_output_gate": true/' "$T/c/config.json"
expect_fail "both" "$G" info --model "$T/c"
corrupt; sed -i '/"vocab_size"/d' "$T/c/config.json"
expect_fail "vocab_size" "$G" info --model "$T/c"
corrupt; echo '{"vocab_size": ' >"$T/c/config.json"
expect_fail "config.json" "$G" info --model "$T/c"
corrupt; sed -i 's/"tie_word_embeddings":[[:space:]]*true/"tie_word_embeddings": false/' "$T/c/config.json"
expect_fail "lm_head.weight" "$G" info --model "$T/c"
corrupt; sed -i 's/"headwise_attn_output_gate":[[:space:]]*true/"headwise_attn_output_gate": false/' "$T/c/config.json"
expect_fail "expected shape (64, 48), found (68, 48)" "$G" info --model "$T/c"
corrupt; sed -i 's/"rope_scaling":[[:space:]]*null/"rope_scaling": {"rope_type": "dynamic", "factor": 4.0}/' "$T/c/config.json"
expect_fail "dynamic" "$G" info --model "$T/c"
corrupt; rm "$T/c/config.json"
expect_fail "config.json" "$G" info --model "$T/c"
if ! "$G" logits --model "$M" --tokens 1 --device cuda >/dev/null 2>"$T/err"; then
  # without a GPU (or without the CUDA backend) the error is one clear line
  [ "$(wc -l <"$T/err")" -eq 1 ] && grep -qiE "cuda|gpu" "$T/err" && ok || bad "cuda error: $(cat "$T/err")"
else
  ok
fi

# ---- exit codes: 2 for a usage error, 1 for a runtime failure, in every subcommand
for c in info logits write-model tokenize detokenize viz generate bench; do
  expect_exit 2 "unknown option '--frobnicate'" "$G" $c --frobnicate
  "$G" $c --help >"$T/help" 2>&1 && grep -q "^usage: gattn $c" "$T/help" && grep -q "exit codes" "$T/help" \
    && ok || bad "$c --help"
done
expect_exit 2 "needs a value" "$G" info --model
expect_exit 2 "--tokens" "$G" logits --model "$M" --tokens 1,,2
expect_exit 2 "--variant" "$G" write-model --out "$T/x" --variant sideways
expect_exit 2 "--preset" "$G" write-model --out "$T/x" --preset huge
for c in logits generate viz; do
  expect_exit 2 "'fast' is not cublas, cublas-only, lt or fallback" "$G" $c --model "$M" --tokens 1 --cuda-gemm fast
done
expect_exit 2 "--cuda-gemm" "$G" bench --cuda-gemm ""
for c in logits generate; do
  expect_exit 2 "--fp8-math: 'x' is not exact or fast" "$G" $c --model "$M" --tokens 1 --fp8-math x
done
expect_exit 2 "--fp8-math: 'x' is not exact or fast" "$G" serve --model "$M" --fp8-math x
expect_exit 2 "--fp8-math: 'x' is not exact or fast" "$G" bench --model "$M" --fp8-math x
expect_exit 2 "--fp8-math: 'EXACT' is not exact or fast" "$G" generate --model "$M" --tokens 1 --fp8-math EXACT
expect_exit 2 "--fp8-math" "$G" bench --fp8-math ""
expect_exit 2 "needs --rope-factor" "$G" serve --model "$M" --rope-scaling yarn
expect_exit 2 "'ntk' is not" "$G" serve --model "$M" --rope-scaling ntk --rope-factor 2
for v in -1 x 1e9 nan; do
  expect_exit 2 "--prefill-share: '$v' is not a number in [0, 1000]" "$G" serve --model "$M" --prefill-share "$v"
done
expect_exit 2 "--model DIR and --tokens" "$G" logits --model "$M"
expect_exit 1 "/nonexistent/model" "$G" info --model /nonexistent/model
expect_exit 1 "/nonexistent/model" "$G" logits --model /nonexistent/model --tokens 1
expect_exit 1 "outside [0, 100)" "$G" logits --model "$M" --tokens 1,100
expect_exit 1 "/nonexistent" "$G" tokenize --model /nonexistent x
expect_exit 1 "/nonexistent" "$G" detokenize --model /nonexistent --tokens 1
expect_exit 1 "/nonexistent" "$G" viz --model /nonexistent --tokens 1
expect_exit 1 "/nonexistent" "$G" generate --model /nonexistent --tokens 1
expect_exit 1 "/nonexistent" "$G" bench --model /nonexistent
touch "$T/afile"
expect_exit 1 "not a folder" "$G" write-model --out "$T/afile"

# ---- write-model over an existing folder (issue 10 item 1): refused unless --force, and then
# the old model's files are gone, so the new model is the one that loads
W=$T/r1
S="--layers 2 --hidden 48 --heads 4 --kv-heads 2 --head-dim 16 --intermediate 64 --vocab 100"
"$G" write-model --out "$W" $S --seed 7 >/dev/null && ok || bad "write-model seed 7"
"$G" logits --model "$W" --tokens 1,2 --device cpu >"$T/old" || bad "logits seed 7"
expect_exit 1 "--force" "$G" write-model --out "$W" $S --seed 9 --shards 2
echo keep >"$W/notes.txt"
"$G" write-model --out "$W" $S --seed 9 --shards 2 --force >/dev/null && ok || bad "write-model --force"
[ ! -e "$W/model.safetensors" ] && [ -f "$W/model-00002-of-00002.safetensors" ] && [ "$(cat "$W/notes.txt")" = keep ] \
  && ok || bad "--force left: $(ls "$W")"
"$G" write-model --out "$T/r9" $S --seed 9 >/dev/null
"$G" logits --model "$W" --tokens 1,2 --device cpu >"$T/new" && "$G" logits --model "$T/r9" --tokens 1,2 --device cpu >"$T/want" \
  && cmp -s "$T/new" "$T/want" && ! cmp -s "$T/new" "$T/old" && ok || bad "the rewritten folder does not load the new model"
mkdir -p "$T/empty"
"$G" write-model --out "$T/empty" $S >/dev/null && ok || bad "write-model into an empty folder"

# ---- rms_norm_eps is written as the value meant, 1e-06 (issue 10 item 12)
grep -q '"rms_norm_eps":[[:space:]]*1e-06,' "$M/config.json" && ok || bad "rms_norm_eps: $(grep rms_norm_eps "$M/config.json")"

# ---- a stdout that cannot be written is a failure (issue 10 item 8)
expect_stdout_error "$G" info --model "$M"
expect_stdout_error "$G" info --model "$M" --json
expect_stdout_error "$G" logits --model "$M" --tokens 1 --device cpu
expect_stdout_error "$G" write-model --out "$T/full" $S

# ---- tools/demo.sh with two folders of the same name (issue 10 item 3): one picture and one
# dump each, and each column holds that model's own numbers (only headwise has a gate mean)
mkdir -p "$T/A" "$T/B"
D="--layers 2 --hidden 64 --heads 4 --kv-heads 2 --head-dim 16 --intermediate 96 --vocab 300 --tokenizer"
"$G" write-model --out "$T/A/final" --variant baseline $D >/dev/null && "$G" write-model --out "$T/B/final" --variant headwise $D >/dev/null \
  || bad "demo models"
GATTN=$G DEMO=$T/demo DEVICE=cpu bash "${GA_SRC:-$(dirname "$0")/..}/tools/demo.sh" "$T/A/final" "$T/B/final" >"$T/demo.out" 2>&1 \
  && ok || bad "demo.sh: $(tail -5 "$T/demo.out")"
[ -s "$T/demo/A-final_selected_layer_attention_maps.png" ] && [ -s "$T/demo/B-final_selected_layer_attention_maps.png" ] \
  && [ -f "$T/demo/A-final-dump/metrics.csv" ] && [ -f "$T/demo/B-final-dump/metrics.csv" ] && ok || bad "demo outputs: $(ls "$T/demo")"
row=$(grep -A1 "^layer" "$T/demo.out" | tail -1)
echo "$row" | awk '{ exit !($2 !~ /\(/ && $3 ~ /^[0-9.]+$/ && $4 ~ /^\(/) }' && ok || bad "demo columns: $row"

finish
