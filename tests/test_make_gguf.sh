#!/usr/bin/env bash
# tools/make_gguf.py's refusals and bad input, one stderr line and exit 1 each. They are decided
# before gguf-py is imported, so this runs in CI without a llama.cpp tree (--lcpp names none);
# the conversions themselves are checked against llama.cpp by tests/test_lcpp.sh.
. "${GA_SRC:?}/tests/cli_harness.sh" make-gguf
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }
M=(python3 "$GA_SRC/tools/make_gguf.py" --lcpp "$T/no-lcpp")
# what llama.cpp's qwen3 graph cannot run
for v in headwise elementwise; do
  "$G" write-model --out "$T/$v" --variant $v >/dev/null
  expect_exit 1 "no output gate" "${M[@]}" --model "$T/$v" --out "$T/$v.gguf"
done
"$G" write-model --out "$T/hyb" --family qwen3_5 >/dev/null
expect_exit 1 "only baseline qwen3" "${M[@]}" --model "$T/hyb" --out "$T/hyb.gguf"
"$G" write-model --out "$T/fp8" --dtype fp8 --hidden 128 >/dev/null
expect_exit 1 "FP8" "${M[@]}" --model "$T/fp8" --out "$T/fp8.gguf"
# a folder that is not one
mkdir -p "$T/empty"
expect_exit 1 "config.json" "${M[@]}" --model "$T/empty" --out "$T/e.gguf"
printf '{"model_type": "qwen3",' >"$T/empty/config.json"
expect_exit 1 "config.json" "${M[@]}" --model "$T/empty" --out "$T/e.gguf"
printf '[1, 2]' >"$T/empty/config.json"
expect_exit 1 "not a JSON object" "${M[@]}" --model "$T/empty" --out "$T/e.gguf"
# a baseline folder, but no gguf-py where --lcpp points
"$G" write-model --out "$T/base" >/dev/null
expect_exit 1 "cannot import gguf-py" "${M[@]}" --model "$T/base" --out "$T/base.gguf"
finish
