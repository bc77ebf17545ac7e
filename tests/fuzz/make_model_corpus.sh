#!/usr/bin/env bash
# Remakes the seed corpus of tests/fuzz/fuzz_model.c: tiny valid models from
# `gattn write-model`, each framed as u32-LE length of config.json, config.json,
# model.safetensors. Usage: tests/fuzz/make_model_corpus.sh [path/to/gattn]
set -eu
G=${1:-build/gattn}
out=$(cd "$(dirname "$0")" && pwd)/corpus/model
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
common="--layers 1 --hidden 16 --heads 2 --kv-heads 1 --head-dim 8 --intermediate 24 --vocab 32 --max-pos 8"
"$G" write-model --out "$tmp/baseline_f32" --variant baseline $common --seed 1 --dtype f32 >/dev/null
"$G" write-model --out "$tmp/headwise_bf16" --variant headwise $common --seed 2 --dtype bf16 >/dev/null
"$G" write-model --out "$tmp/elementwise_f16_bias_untied" --variant elementwise $common --seed 3 \
  --dtype f16 --bias --untied >/dev/null
"$G" write-model --out "$tmp/headwise_g2_2layers" --variant headwise --layers 2 --hidden 16 \
  --heads 4 --kv-heads 2 --head-dim 4 --intermediate 16 --vocab 16 --max-pos 8 --seed 4 \
  --dtype bf16 >/dev/null
# FP8 (issue 15 item 4): F8_E4M3 projections with 8x8 block scales and quantization_config.
"$G" write-model --out "$tmp/fp8_block8" --variant headwise $common --seed 5 --dtype fp8 \
  --fp8-block 8 >/dev/null
for d in "$tmp"/*/; do
  name=$(basename "$d")
  python3 - "$d" "$out/$name" <<'PY'
import struct, sys
d, out = sys.argv[1], sys.argv[2]
cfg = open(d + "config.json", "rb").read()
st = open(d + "model.safetensors", "rb").read()
open(out, "wb").write(struct.pack("<I", len(cfg)) + cfg + st)
PY
done
ls -l "$out"
