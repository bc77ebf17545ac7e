#!/usr/bin/env bash
# llama.cpp as the C/C++ peer of `gattn bench` (issue 12), run in the same device call:
#
#   tools/bench_llamacpp.sh LCPP_SRC [MODEL_DIR [OUT]]
#
# 1. Builds llama-bench from the llama.cpp source tree LCPP_SRC (CUDA for sm_90 unless
#    LCPP_CUDA=0) in LCPP_BUILD (default /tmp/lcpp-build, outside the repo), plus
#    tools/lcpp/lcpp_logits.c against the same libraries; an existing build is reused (ninja
#    only rebuilds what changed), and the build's seconds are printed.
# 2. With MODEL_DIR (a baseline folder, e.g. `gattn write-model --preset paper-1.7b --variant
#    baseline`): converts it with tools/make_gguf.py to a GGUF in LCPP_BUILD/models
#    (reused while newer than the folder's weights), then runs
#      llama-bench -m X.gguf -ngl 99 -fa 1 -p 2048 -n 128 -b 2048 -ub 2048 -r 3 -o md
#    (-b/-ub 2048: the prompt is one batch, as gattn's prefill; batch 1 for tg) and prints its
#    markdown table; with OUT it also writes OUT/llamacpp.md and OUT/llamacpp.json (llama-bench's
#    own JSON of the same run: avg_ts/stddev_ts tokens per second and samples per test, GPU
#    name; build_commit is "unknown" for a source tree without .git).
#
# Environment: LCPP_BUILD, LCPP_GGUF (the converted file's path), LCPP_CUDA (1),
# LCPP_CUDA_ARCH (90), LCPP_JOBS ($(nproc)), LCPP_P (2048), LCPP_N (128), LCPP_REPS (3),
# PYTHON (a python3 with numpy; found if unset).
# Needs cmake, ninja, a C/C++ compiler and, for CUDA, nvcc; no network.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 3 ]; then
  echo "usage: tools/bench_llamacpp.sh LCPP_SRC [MODEL_DIR [OUT]]" >&2
  exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$1" && pwd)
MODEL=${2:-}
OUT=${3:-}
BUILD=${LCPP_BUILD:-/tmp/lcpp-build}
CUDA=${LCPP_CUDA:-1}
ARCH=${LCPP_CUDA_ARCH:-90}
JOBS=${LCPP_JOBS:-$(nproc)}
P=${LCPP_P:-2048}
N=${LCPP_N:-128}
REPS=${LCPP_REPS:-3}
if [ ! -f "$SRC/CMakeLists.txt" ] || [ ! -d "$SRC/gguf-py" ]; then
  echo "bench_llamacpp: $SRC is not a llama.cpp source tree" >&2
  exit 2
fi

# --- build -------------------------------------------------------------------------------
t0=$(date +%s)
mkdir -p "$(dirname "$BUILD")"
if [ ! -f "$BUILD/build.ninja" ]; then
  if [ "$CUDA" = 1 ]; then
    # One GPU: no NCCL. One architecture: the build time is mostly nvcc over ~140 files.
    gpu=(-DGGML_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$ARCH" -DGGML_CUDA_NCCL=OFF)
    # A build host without the NVIDIA driver (a CPU machine building for the GPU one) links
    # libggml-cuda's driver-API calls against the toolkit's stub libcuda.so (SONAME
    # libcuda.so.1, so the real driver is what loads at run time); without it llama-bench's
    # link fails on undefined cuMemMap & co. (2026-12-02).
    stubs=$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")/../lib64/stubs
    if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1' && [ -f "$stubs/libcuda.so" ]; then
      link="-L$stubs -Wl,--no-as-needed -lcuda -Wl,--as-needed"
      gpu+=("-DCMAKE_EXE_LINKER_FLAGS=$link" "-DCMAKE_SHARED_LINKER_FLAGS=$link")
    fi
  else
    gpu=(-DGGML_CUDA=OFF)
  fi
  # Only what llama-bench links: no tests, examples, server, web UI, app, curl or openssl.
  # The tools folder is configured whole (llama.cpp adds every tool), but only llama-bench
  # is built below.
  cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release "${gpu[@]}" \
    -DBUILD_SHARED_LIBS=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON -DGGML_CCACHE=OFF \
    >"$BUILD.configure.log" 2>&1 ||
    { tail -30 "$BUILD.configure.log" >&2; exit 1; }
fi
# A build dir made for the other backend would silently bench the wrong one.
want=$([ "$CUDA" = 1 ] && echo ON || echo OFF)
have=$(sed -n 's/^GGML_CUDA:BOOL=//p' "$BUILD/CMakeCache.txt")
[ "$have" = "$want" ] ||
  { echo "bench_llamacpp: $BUILD has GGML_CUDA=$have, LCPP_CUDA=$CUDA wants $want" >&2; exit 2; }
cmake --build "$BUILD" -j "$JOBS" --target llama-bench >"$BUILD.build.log" 2>&1 ||
  { tail -40 "$BUILD.build.log" >&2; exit 1; }
# The logits tool links the shared libraries the build put in bin/ (rpath: no install step).
if [ ! -x "$BUILD/bin/lcpp_logits" ] || [ "$HERE/lcpp/lcpp_logits.c" -nt "$BUILD/bin/lcpp_logits" ] ||
  [ "$BUILD/bin/libllama.so" -nt "$BUILD/bin/lcpp_logits" ]; then
  cc -O2 -std=c11 -Wall -Wextra -I"$SRC/include" -I"$SRC/ggml/include" \
    "$HERE/lcpp/lcpp_logits.c" -o "$BUILD/bin/lcpp_logits" -L"$BUILD/bin" \
    -lllama -lggml -lggml-base -Wl,-rpath,"$BUILD/bin"
fi
echo "bench_llamacpp: build $(($(date +%s) - t0)) s ($BUILD, CUDA=$CUDA)"
[ -n "$MODEL" ] || exit 0

# --- convert -----------------------------------------------------------------------------
if [ -z "${PYTHON:-}" ]; then
  for p in python3 /usr/bin/python3; do
    if "$p" -c 'import numpy' 2>/dev/null; then PYTHON=$p; break; fi
  done
  [ -n "${PYTHON:-}" ] || { echo "bench_llamacpp: no python3 with numpy" >&2; exit 1; }
fi
mkdir -p "$BUILD/models"
MODEL=$(cd "$MODEL" && pwd)
# Named by the folder's path too, so two folders of one name never share a stale file.
GGUF=${LCPP_GGUF:-$BUILD/models/$(basename "$MODEL")-$(printf %s "$MODEL" | cksum | cut -d" " -f1).gguf}
stale=$([ -f "$GGUF" ] || echo 1)
for f in "$MODEL"/config.json "$MODEL"/*.safetensors; do [ "$f" -nt "$GGUF" ] && stale=1; done
if [ -n "$stale" ]; then
  t0=$(date +%s)
  "$PYTHON" "$HERE/make_gguf.py" --lcpp "$SRC" --model "$MODEL" --out "$GGUF.tmp"
  mv "$GGUF.tmp" "$GGUF"
  echo "bench_llamacpp: convert $(($(date +%s) - t0)) s"
fi

# --- bench -------------------------------------------------------------------------------
# Prefill: the P-token prompt in one batch (-b/-ub P). Decode: N tokens one at a time
# (llama-bench's tg is batch 1) from an empty cache, as `gattn bench`'s decode at depth 0.
args=(-m "$GGUF" -ngl 99 -fa 1 -p "$P" -n "$N" -b "$P" -ub "$P" -r "$REPS")
if [ -n "$OUT" ]; then
  # One run for both: the table on stdout, llama-bench's JSON on stderr (-oe), which also gets
  # any backend start-up lines, so the JSON is cut from its first line that opens the array.
  mkdir -p "$OUT"
  "$BUILD/bin/llama-bench" "${args[@]}" -o md -oe json 2>"$OUT/llamacpp.stderr" |
    tee "$OUT/llamacpp.md" || { tail -20 "$OUT/llamacpp.stderr" >&2; exit 1; }
  sed -n '/^\[/,$p' "$OUT/llamacpp.stderr" >"$OUT/llamacpp.json"
else
  "$BUILD/bin/llama-bench" "${args[@]}" -o md
fi
