#!/usr/bin/env bash
# --tensor-parallel / --tp-devices on the command line (CPU: nothing here needs a GPU): the
# usage errors of every subcommand that takes them (exit 2), and the runtime refusals that come
# before any GPU is touched (exit 1, one line naming the numbers): heads / KV heads /
# intermediate that do not divide by N, hybrid models, the CPU backend.
. "$(dirname "$0")/cli_harness.sh" tp
"$G" write-model --out "$T/m" --variant headwise --tokenizer >/dev/null || exit 1 # 4 / 2 heads, inter 384
"$G" write-model --out "$T/h" --family qwen3_5 --tokenizer >/dev/null || exit 1

for cmd in logits generate perplexity bench serve; do
  case $cmd in
  logits) args=(--model "$T/m" --tokens 1,2) ;;
  generate) args=(--model "$T/m" --tokens 1,2 -n 2) ;;
  perplexity) args=(--model "$T/m" --tokens-file /dev/null) ;;
  bench) args=(--device cpu) ;;
  serve) args=(--model "$T/m" --port 0) ;;
  esac
  expect_exit 2 "--tp-devices needs --tensor-parallel N" "$G" $cmd "${args[@]}" --tp-devices 0,0
  expect_exit 2 "--tp-devices names 1 devices for --tensor-parallel 2" \
    "$G" $cmd "${args[@]}" --tp 2 --tp-devices 0
  expect_exit 2 "--tensor-parallel: '9' is not an integer in [1, 8]" "$G" $cmd "${args[@]}" --tp 9
  expect_exit 2 "--tensor-parallel: '0' is not an integer in [1, 8]" \
    "$G" $cmd "${args[@]}" --tensor-parallel 0
  expect_exit 2 "--tp-devices: '0,-1' is not a comma-separated list of CUDA devices" \
    "$G" $cmd "${args[@]}" --tp 2 --tp-devices 0,-1
done

for cmd in logits generate; do
  case $cmd in
  logits) extra=() ;;
  generate) extra=(-n 2 --ids) ;;
  esac
  expect_exit 1 "tensor parallelism over 3 ranks needs heads (4), KV heads (2) and intermediate size (384) divisible by 3" \
    "$G" $cmd --model "$T/m" --tokens 1,2 "${extra[@]}" --tp 3
  expect_exit 1 "tensor parallelism is not supported for hybrid (Gated DeltaNet) models" \
    "$G" $cmd --model "$T/h" --tokens 1,2 "${extra[@]}" --tp 2
  expect_exit 1 "tensor parallelism (--tp 2) runs on the CUDA backend only, not --device cpu" \
    "$G" $cmd --model "$T/m" --tokens 1,2 "${extra[@]}" --tp 2 --device cpu
done
# gattn info --tp N: each rank's share. The tiny headwise model (4 layers, hidden 128, 4 / 2
# heads of 32, intermediate 384, vocab 1024, tied) over 2 ranks, by hand: per layer q 1 x 2 x
# (32 + 1) = 66 rows, k and v 32 rows each, o 64 columns, gate/up 192 rows and down 192
# columns: (66 + 64 + 64 + 3 x 192) x 128 = 98560 weights; x 2 bytes x 4 layers + the bf16
# embedding (262144) + the fp32 norms (4 x 128 x 9 = 4608) = 1055232 bytes on each rank (tied:
# rank 0 has no separate LM head); KV 2 x 4 layers x 1 head x 32 x 2 bytes = 512 per token.
"$G" info --model "$T/m" --tp 2 >"$T/info" || bad "info --tp 2 failed"
grep -q "^tensor parallel  2 GPUs: weights 1.01 MiB on rank 0, 1.01 MiB on each other rank (bf16); kv cache 0.5 KiB per token on each" "$T/info" &&
  ok || bad "info --tp 2: $(grep tensor "$T/info")"
"$G" info --model "$T/m" --tp 2 --json | grep -q '"tp_rank_gpu_weight_bytes":\[1055232,1055232\],"tp_rank_kv_bytes_per_token_bf16":512' &&
  ok || bad "info --tp 2 --json: $("$G" info --model "$T/m" --tp 2 --json)"
expect_exit 1 "tensor parallelism over 3 ranks needs heads (4)" "$G" info --model "$T/m" --tp 3
expect_exit 2 "--tensor-parallel: '9' is not an integer in [1, 8]" "$G" info --model "$T/m" --tp 9
# --tp 1 is no split: the same logits as without it
"$G" logits --model "$T/m" --tokens 1,2,3 --device cpu >"$T/a" && \
  "$G" logits --model "$T/m" --tokens 1,2,3 --device cpu --tp 1 --tp-devices 0 >"$T/b" &&
  cmp -s "$T/a" "$T/b" && ok || bad "--tp 1 changed the logits"
finish
