#!/usr/bin/env bash
# llama.cpp as an independent implementation of the baseline model (issue 12). Skipped (77)
# unless LCPP_SRC names a llama.cpp source tree: tools/bench_llamacpp.sh builds it in
# LCPP_BUILD (default /tmp/lcpp-build-cpu here, /tmp/lcpp-build with "cuda"; reused when
# built), tools/make_gguf.py converts small random folders, and llama.cpp's logits
# (tools/lcpp/lcpp_logits.c, every position) must equal `gattn logits --all` within
#   |lcpp - gattn| <= ATOL + RTOL * max|gattn row|   per position, and the same argmax where
#   the top two logits of gattn's row differ by more than that bound.
# f32 folders: both compute in fp32 (llama.cpp's CPU matmul of f32 weights keeps f32
# activations), so the bound is tight. bf16 folders: llama.cpp's CPU rounds each matmul's
# activations to bf16 (its bf16 dot product) where gattn keeps fp32, a relative error of
# ~2^-9 a matmul that grows through the layers, so the bound is loose there; it still fails
# on any conversion mistake (a transposed or swapped weight, wrong eps, theta or head layout
# moves the logits by their own size). Then the converter's refusals, one line each, and
# llama-bench on the tiny model (its markdown table has the pp and tg rows).
# With argument "cuda": both on the GPU (llama.cpp -ngl 99).
. "$(dirname "$0")/cli_harness.sh" lcpp
[ -n "${LCPP_SRC:-}" ] || { echo "LCPP_SRC unset: skipped"; exit 77; }
dev=${1:-cpu}
SRC_DIR=${GA_SRC:?}
if [ "$dev" = cuda ]; then
  export LCPP_CUDA=1 LCPP_BUILD=${LCPP_BUILD:-/tmp/lcpp-build}
  NGL=(--ngl 99)
else
  export LCPP_CUDA=0 LCPP_BUILD=${LCPP_BUILD:-/tmp/lcpp-build-cpu}
  NGL=()
fi
export LCPP_P=16 LCPP_N=4 LCPP_REPS=1
if [ "$dev" = cuda ]; then
  "$G" write-model --out "$T/probe" --head-dim 64 >/dev/null
  "$G" logits --model "$T/probe" --tokens 1 --device cuda >/dev/null 2>&1 ||
    { echo "no usable GPU: skipped"; exit 77; }
fi
PY=
for p in python3 /usr/bin/python3; do
  if "$p" -c 'import numpy' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || { echo "no python3 with numpy (gguf-py needs it): skipped"; exit 77; }
export PYTHON=$PY
bash "$SRC_DIR/tools/bench_llamacpp.sh" "$LCPP_SRC" >"$T/build.log" 2>&1 ||
  { cat "$T/build.log" >&2; echo "llama.cpp build failed"; exit 1; }
LG=$LCPP_BUILD/bin/lcpp_logits
TOK=1,5,9,2,7,3,11,40,6,200,17,4,8,99

# cmp NAME ATOL RTOL write-model-args...: write, convert, compare every position.
cmp() {
  local name=$1 atol=$2 rtol=$3; shift 3
  local d=$T/$name
  "$G" write-model --out "$d" "$@" >/dev/null || { bad "write-model $name"; return; }
  "$PY" "$SRC_DIR/tools/make_gguf.py" --lcpp "$LCPP_SRC" --model "$d" --out "$d.gguf" \
    >/dev/null 2>"$T/e" || { bad "make_gguf $name: $(cat "$T/e")"; return; }
  "$LG" "$d.gguf" "$TOK" --all "${NGL[@]}" >"$T/l" 2>"$T/e" ||
    { bad "lcpp_logits $name: $(cat "$T/e")"; return; }
  "$G" logits --model "$d" --tokens "$TOK" --all --device "$dev" >"$T/g" 2>"$T/e" ||
    { bad "gattn logits $name: $(cat "$T/e")"; return; }
  if "$PY" - "$T/g" "$T/l" "$atol" "$rtol" "$name" <<'EOF'; then ok; else bad "logits $name"; fi
import json, sys
g = [json.loads(s) for s in open(sys.argv[1])]
l = [json.loads(s) for s in open(sys.argv[2])]
atol, rtol, name = float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
if len(g) != len(l) or any(len(a) != len(b) for a, b in zip(g, l)):
    sys.exit("%s: shapes differ: %d vs %d rows" % (name, len(g), len(l)))
worst = 0.0
for p, (a, b) in enumerate(zip(g, l)):
    if any(x != x or abs(x) == float("inf") for x in b):
        sys.exit("%s: llama.cpp row %d is not finite" % (name, p))
    scale = max(abs(x) for x in a)
    bound = atol + rtol * scale
    err = max(abs(x - y) for x, y in zip(a, b))
    worst = max(worst, err / bound)
    if err > bound:
        sys.exit("%s: position %d: max |diff| %.3g > %.3g (max |logit| %.3g)"
                 % (name, p, err, bound, scale))
    top = sorted(range(len(a)), key=lambda i: -a[i])[:2]
    if a[top[0]] - a[top[1]] > 2 * bound and b.index(max(b)) != top[0]:
        sys.exit("%s: position %d: argmax %d vs gattn's %d" % (name, p, b.index(max(b)), top[0]))
print("%s: %d positions, worst error %.2f of the bound" % (name, len(g), worst))
EOF
}

SHAPE=(--untied --layers 3 --hidden 192 --heads 6 --kv-heads 2 --head-dim 64 --intermediate 320
  --vocab 300 --theta 10000 --init-std 0.05 --max-pos 512)
# CUDA: gattn copies f32 folders to bf16 on the GPU and both sides' GEMMs round activations
# their own way, so every folder gets the bf16 bound (wider), and head_dim 64 (gattn's CUDA
# attention takes 64, 128 and 256, not the tiny preset's 32).
F32TOL=(1e-5 1e-5) BFTOL=(2e-3 1.5e-2) HD=()
[ "$dev" = cuda ] && F32TOL=(2e-3 3e-2) BFTOL=(2e-3 3e-2) HD=(--head-dim 64)
cmp tiny-f32 "${F32TOL[@]}" --dtype f32 "${HD[@]}"
cmp untied-f32 "${F32TOL[@]}" --dtype f32 "${SHAPE[@]}"
cmp tiny-bf16-tok "${BFTOL[@]}" --dtype bf16 --vocab 512 --tokenizer "${HD[@]}"
cmp untied-bf16 "${BFTOL[@]}" --dtype bf16 "${SHAPE[@]}"

# The converter's refusals and bad input: tests/test_make_gguf.sh, which needs no llama.cpp.

# llama-bench on the tiny model through the script: a markdown table with pp16 and tg4 rows
# and a JSON file of the same run.
"$G" write-model --out "$T/bench" --dtype bf16 "${HD[@]}" >/dev/null
if LCPP_GGUF=$T/bench.gguf bash "$SRC_DIR/tools/bench_llamacpp.sh" "$LCPP_SRC" "$T/bench" \
  "$T/bout" >"$T/b" 2>"$T/e" && grep -q "| *pp16 |" "$T/b" && grep -q "| *tg4 |" "$T/b" &&
  "$PY" -c 'import json, sys; r = json.load(open(sys.argv[1]));
assert [(x["n_prompt"], x["n_gen"]) for x in r] == [(16, 0), (0, 4)]
assert all(x["avg_ts"] > 0 for x in r)' "$T/bout/llamacpp.json"; then
  ok
else
  bad "bench_llamacpp: $(cat "$T/b" "$T/e")"
fi
finish
