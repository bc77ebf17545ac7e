#!/usr/bin/env bash
# Same-call A/B benchmark for the GPU machine: builds `gattn` from two source trees and runs
# the same `gattn bench` arguments on each, alternating A, B, A, B, so a difference between
# two commits is measured on one card in one call (across calls the same build moves by a few
# percent). The device machine has no git history: make the trees here first, e.g.
#
#   mkdir -p .scratch/a && git archive 1a74dc2 | tar -x -C .scratch/a   # .scratch/ is ignored
#   then on the GPU machine (carry .deps and .scratch):
#   tools/gpu_ab.sh .scratch/a . --variants elementwise --prefill 2048 --depths 0 --batch 1
#
# Prints each run's rows prefixed with A or B; full tables go to $OUT (default /tmp/gattn-ab).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
[ $# -ge 2 ] || { echo "usage: tools/gpu_ab.sh TREE_A TREE_B [gattn bench args]" >&2; exit 2; }
A=$1 B=$2
shift 2
OUT=${OUT:-/tmp/gattn-ab}
mkdir -p "$OUT"
DEPS=/tmp/deps
mkdir -p "$DEPS"
for f in .deps/*.deb; do [ -e "$f" ] && dpkg -x "$f" "$DEPS"; done
export LD_LIBRARY_PATH="$DEPS/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
CF=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DGATTN_CUDA=ON -DGATTN_WERROR=OFF -DGATTN_DEPS_PREFIX="$DEPS"
  "-DGATTN_CUDA_GENCODE=-gencode=arch=compute_90a,code=sm_90a")
half=$(( $(nproc) / 2 ))
for side in A B; do
  src=$A
  [ $side = B ] && src=$B
  ( cmake -S "$src" -B "/tmp/gattn-ab-$side" "${CF[@]}" >"$OUT/configure-$side.log" 2>&1 &&
    cmake --build "/tmp/gattn-ab-$side" -j "$half" --target gattn >"$OUT/build-$side.log" 2>&1 ) &
done
wait
for side in A B; do
  [ -x "/tmp/gattn-ab-$side/gattn" ] || { echo "== build $side FAILED"; tail -20 "$OUT/build-$side.log"; exit 1; }
done
args=(--device cuda "$@")
[ $# -gt 0 ] || args=(--device cuda --prefill 2048 --depths 0 --batch 1,8,32 --decode-tokens 64 --reps 3)
for round in 1 2; do
  for side in A B; do
    "/tmp/gattn-ab-$side/gattn" bench "${args[@]}" >"$OUT/bench-$side-$round.md" 2>"$OUT/bench-$side-$round.err" ||
      { echo "== bench $side FAILED"; tail -3 "$OUT/bench-$side-$round.err"; exit 1; }
    grep -E '^\| [a-z]+ \| (prefill|decode)' "$OUT/bench-$side-$round.md" | cut -d'|' -f2-9 | sed "s/^/$side$round /"
  done
done
