#!/usr/bin/env bash
# The benchmark run for the GPU machine, in one device call: unpacks the Debian dependencies
# (.deps/*.deb, dpkg -x into /tmp/deps), builds gattn with the CUDA backend for Hopper
# (sm_90a), runs `gattn bench` (markdown, CSV, JSON) and then Hugging Face transformers at
# the same shape (tools/bench_transformers.py), and prints both tables.
#
#   OUT=/some/dir tools/gpu_bench.sh          # results: $OUT/gattn_bench.{md,csv,json},
#                                             #          $OUT/transformers_bench.{md,json}
#   GATTN_BENCH_ARGS="--depths 0,4096 --reps 5" tools/gpu_bench.sh   # extra gattn bench flags
#   HF_BENCH_ARGS="--variants baseline" tools/gpu_bench.sh           # extra transformers flags
#   SKIP_HF=1 / SKIP_GATTN=1                  # leave one side out (e.g. to fit a time limit)
#   LCPP_SRC=/tmp/lcpp tools/gpu_bench.sh     # also llama.cpp (tools/bench_llamacpp.sh) on a
#                                             # paper-1.7b baseline folder: $OUT/llamacpp.{md,json}
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
OUT=${OUT:-/tmp/gattn-bench-out}
mkdir -p "$OUT"
BUILD=${BUILD:-$ROOT/build-gpu}
JOBS=${JOBS:-$(nproc)}
fail=0

echo "== $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || echo no-commit)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true

DEPS=/tmp/deps
mkdir -p "$DEPS"
for f in .deps/*.deb; do [ -e "$f" ] && dpkg -x "$f" "$DEPS"; done
export LD_LIBRARY_PATH="$DEPS/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"

GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
t0=$(date +%s)
if ! { cmake -S . -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DGATTN_CUDA=ON \
         -DGATTN_WERROR=OFF -DGATTN_DEPS_PREFIX="$DEPS" \
         -DGATTN_CUDA_GENCODE="-gencode=arch=compute_90a,code=sm_90a" >"$OUT/configure.log" 2>&1 &&
       cmake --build "$BUILD" -j "$JOBS" --target gattn >"$OUT/build.log" 2>&1; }; then
  grep -E "error" -A3 "$OUT/configure.log" "$OUT/build.log" | head -40
  tail -20 "$OUT/build.log" 2>/dev/null
  echo "== build FAILED"
  exit 1
fi
echo "== build ok ($(( $(date +%s) - t0 )) s)"

if [ -z "${SKIP_GATTN:-}" ]; then
  t0=$(date +%s)
  # shellcheck disable=SC2086
  if "$BUILD/gattn" bench --device cuda --csv "$OUT/gattn_bench.csv" --json "$OUT/gattn_bench.json" \
       ${GATTN_BENCH_ARGS:-} >"$OUT/gattn_bench.md" 2>"$OUT/gattn_bench.err"; then
    echo "== gattn bench ok ($(( $(date +%s) - t0 )) s)"
  else
    echo "== gattn bench FAILED"; tail -5 "$OUT/gattn_bench.err"; fail=1
  fi
fi
if [ -z "${SKIP_HF:-}" ]; then
  t0=$(date +%s)
  # shellcheck disable=SC2086
  if python3 tools/bench_transformers.py --json "$OUT/transformers_bench.json" ${HF_BENCH_ARGS:-} \
       >"$OUT/transformers_bench.md" 2>"$OUT/transformers_bench.err"; then
    echo "== transformers bench ok ($(( $(date +%s) - t0 )) s)"
  else
    echo "== transformers bench FAILED"; tail -15 "$OUT/transformers_bench.err"; fail=1
  fi
fi

if [ -n "${LCPP_SRC:-}" ]; then
  # The same 1.7B baseline shape, written as a folder (random bf16 weights, as gattn bench's)
  # outside $OUT (3.4 GB) and converted to GGUF by the script; its build dir is reused.
  t0=$(date +%s)
  M=${LCPP_MODEL:-/tmp/gattn-paper-1.7b-baseline}
  if { [ -f "$M/config.json" ] ||
       "$BUILD/gattn" write-model --out "$M" --preset paper-1.7b --variant baseline >/dev/null; } &&
     tools/bench_llamacpp.sh "$LCPP_SRC" "$M" "$OUT" >"$OUT/llamacpp.log" 2>&1; then
    echo "== llama.cpp bench ok ($(( $(date +%s) - t0 )) s)"
  else
    echo "== llama.cpp bench FAILED"; tail -15 "$OUT/llamacpp.log"; fail=1
  fi
fi

for f in gattn_bench.md transformers_bench.md llamacpp.md; do
  [ -s "$OUT/$f" ] && { echo; echo "### $f"; cat "$OUT/$f"; }
done
exit $fail
