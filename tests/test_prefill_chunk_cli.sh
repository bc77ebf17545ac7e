#!/usr/bin/env bash
# --prefill-chunk (ga_session_opts.prefill_chunk; issue 12) on every command that makes a
# session that may run on CUDA: listed in --help; a malformed or out-of-range value is a usage
# error (exit 2, one line naming the option) found before any file is read; a valid value is
# taken (the CPU backend ignores it: the same output); bench reports the value it ran with.
. "$(dirname "$0")/cli_harness.sh" chunk
M=$T/m
"$G" write-model --out "$M" --variant headwise --layers 2 --hidden 48 --heads 4 --kv-heads 2 \
  --head-dim 16 --intermediate 64 --vocab 100 --max-pos 64 --seed 3 >/dev/null && ok || bad "write-model"

for c in bench generate logits perplexity serve; do
  "$G" "$c" --help >"$T/h" 2>&1 && grep -q -- "--prefill-chunk N" "$T/h" && ok ||
    bad "$c --help does not list --prefill-chunk"
  for v in 0 -1 x 1.5 "" 1048577; do
    expect_exit 2 "--prefill-chunk" "$G" "$c" --model "$M" --prefill-chunk "$v"
  done
done
# the largest value is taken by the parser (the session caps it at max_context)
"$G" logits --model "$M" --tokens 3,14,15 --device cpu --prefill-chunk 1048576 >/dev/null &&
  ok || bad "logits --prefill-chunk 1048576"

# A valid value changes nothing on the CPU.
"$G" logits --model "$M" --tokens 3,14,15,9,26 --all --device cpu >"$T/l0" || bad "logits"
"$G" logits --model "$M" --tokens 3,14,15,9,26 --all --device cpu --prefill-chunk 2 >"$T/l2" &&
  cmp -s "$T/l0" "$T/l2" && ok || bad "logits --prefill-chunk 2 differs"
"$G" generate --model "$M" --tokens 3,14,15 -n 4 --ids --device cpu >"$T/g0" 2>/dev/null || bad "generate"
"$G" generate --model "$M" --tokens 3,14,15 -n 4 --ids --device cpu --prefill-chunk 1 >"$T/g1" 2>/dev/null &&
  cmp -s "$T/g0" "$T/g1" && ok || bad "generate --prefill-chunk 1 differs"
seq 1 40 | tr '\n' ' ' >"$T/ids"
"$G" perplexity --model "$M" --tokens-file "$T/ids" --context 16 --device cpu >"$T/p0" 2>/dev/null || bad "perplexity"
"$G" perplexity --model "$M" --tokens-file "$T/ids" --context 16 --device cpu --prefill-chunk 3 \
  >"$T/p3" 2>/dev/null && cmp -s "$T/p0" "$T/p3" && ok || bad "perplexity --prefill-chunk 3 differs"

# bench says which pass height it ran with (the A/B of issue 12), in markdown and JSON.
B="--device cpu --layers 1 --hidden 32 --heads 2 --kv-heads 1 --head-dim 16 --intermediate 32
   --vocab 64 --prefill 8 --depths 0 --batch 1 --decode-tokens 2 --reps 1 --warmup 0"
# shellcheck disable=SC2086
"$G" bench $B --prefill-chunk 64 --json "$T/b.json" >"$T/b" 2>/dev/null &&
  grep -q "prefill chunk 64$" "$T/b" && grep -q '"prefill_chunk":[[:space:]]*64' "$T/b.json" &&
  ok || bad "bench --prefill-chunk 64 not reported: $(head -1 "$T/b")"
# shellcheck disable=SC2086
"$G" bench $B >"$T/b" 2>/dev/null && grep -q "prefill chunk 512$" "$T/b" && ok ||
  bad "bench without --prefill-chunk: $(head -1 "$T/b")"
finish
