#!/usr/bin/env bash
# One call on the GPU machine for the attention kernels: build, test (all sections, then
# compute-sanitizer memcheck/racecheck/synccheck on the quick section), benchmark ours, then
# PyTorch SDPA on the same shapes, then a few tuning variants of our kernels, then the CMake
# build of the whole library with the ctest entries.
#
# The kernels, tests and bench are first built straight with nvcc/gcc (with
# tests/test_attention_shim.c standing in for the three libgattn functions they call), so a
# half-written file elsewhere in the tree cannot stop the measurements; the CMake build at
# the end checks the real targets. Writes everything to $OUT (default /tmp/gattn-attn-out):
# log (all output) and bench.md (the two benchmark tables).
#
# usage (repo root, GPU machine): tools/gpu_attn.sh    env: OUT, JOBS, GATTN_CUDA_GENCODE
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gattn-attn-out}
JOBS=${JOBS:-$(nproc)}
GEN=${GATTN_CUDA_GENCODE:--gencode=arch=compute_90a,code=sm_90a}
mkdir -p "$OUT"
SA=build-gpu-attn-sa
mkdir -p "$SA"
status=0
step() { echo; echo "=== [$(date -u +%H:%M:%S) +${SECONDS}s] $*"; }
fail() { echo "FAILED: $*"; status=1; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
nvcc --version | tail -1

step "standalone build (nvcc + gcc)"
NV=(nvcc -std=c++17 -O3 --use_fast_math -lineinfo $GEN -Iinclude -Ikernels
    --expt-relaxed-constexpr -Xcompiler=-Wall -Werror=all-warnings)
CW=(gcc -std=gnu11 -O2 -Wall -Wextra -Wshadow -Wno-unused-parameter -Wstrict-prototypes
    -Wmissing-prototypes -Wvla -Werror -Iinclude -Isrc -Ikernels -Itests
    -I"$(dirname "$(command -v nvcc)")/../include")
build_kernels() { # $1: object dir, rest: extra nvcc flags
  local d=$1; shift
  mkdir -p "$d"
  for f in attention_prefill attention_decode attention_probs; do
    "${NV[@]}" "$@" -c kernels/$f.cu -o "$d/$f.o" &
  done
  wait
}
build_kernels "$SA" -Xptxas -v 2>&1 | grep -E "error|warning|Compiling entry|registers|spill" || true
for f in tests/test_attention.c tests/test_attention_decode.c tests/test_attention_probs.c \
         tests/test_attention_ref.c tests/test_attention_shim.c tests/testutil.c \
         bench/bench_attention.c; do
  "${CW[@]}" -c "$f" -o "$SA/$(basename "$f" .c).o" || fail "compile $f"
done
nvcc -o $SA/test_attention $SA/test_attention*.o $SA/testutil.o $SA/attention_*.o -lm ||
  fail "link test_attention"
nvcc -o $SA/bench_attention $SA/bench_attention.o $SA/test_attention_shim.o \
  $SA/attention_*.o -lm || fail "link bench_attention"
T=$SA/test_attention

step "tests"
for sec in args prefill decode probs prefill_long probs_long; do
  echo "--- test_attention $sec"
  GA_TEST_VERBOSE=1 timeout 200 $T $sec > "$OUT/test_$sec.txt" 2>&1
  rc=$?
  grep -v ": worst\|ratio" "$OUT/test_$sec.txt" | tail -15
  # the three worst error ratios of the section (1.0 = at the tolerance)
  awk '/ratio/ {m=0; for (i=1;i<NF;i++) if ($i=="ratio" && $(i+1)+0>m) m=$(i+1)+0; print m" | "$0}' \
    "$OUT/test_$sec.txt" | sort -gr | head -3
  echo "rc=$rc"
  [ $rc -eq 0 ] || fail "test_attention $sec"
done
cat "$OUT"/test_*.txt > "$OUT/tests_verbose.txt"; rm -f "$OUT"/test_*.txt

step "bench (ours)"
timeout 120 $SA/bench_attention | tee "$OUT/bench.md" || fail "bench_attention"
step "bench (torch)"
echo >> "$OUT/bench.md"
PYTHONUNBUFFERED=1 timeout 150 python3 tools/bench_attention_torch.py | tee -a "$OUT/bench.md" ||
  fail "bench_attention_torch.py"

step "per-kernel durations (ncu, decode at 4k and 32k; prefill at 4k)"
timeout 90 ncu --clock-control none -k regex:k_attn --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed \
  -c 12 $SA/bench_attention --only decode --reps 1 2>&1 | grep -E "k_attn|duration|dram__" | head -40 || true
timeout 90 ncu --clock-control none -k regex:k_attn_prefill --metrics gpu__time_duration.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,smsp__warps_active.avg.pct_of_peak_sustained_active \
  -s 12 -c 1 $SA/bench_attention --only prefill --reps 1 2>&1 | grep -E "k_attn|duration|hmma|wavefronts|warps_active" | head -12 || true

step "sanitizers on the quick section"
for tool in memcheck racecheck synccheck; do
  echo "--- $tool"
  timeout 120 compute-sanitizer --tool $tool --error-exitcode 9 $T quick 2>&1 | tail -6
  rc=${PIPESTATUS[0]}
  echo "rc=$rc"
  [ $rc -eq 0 ] || fail "compute-sanitizer $tool"
done

step "variants of the long-prompt prefill tile (tested, then timed)"
# (the default is 8 warps x 2 m-tiles; these are the shapes it was chosen against)
for def in "-DGA_PF_LONG_WARPS=8 -DGA_PF_LONG_MT=1" "-DGA_PF_LONG_WARPS=4 -DGA_PF_LONG_MT=2"; do
  d=$SA/var$(echo "$def" | tr -dc '0-9')
  echo "--- variant $def"
  if build_kernels "$d" $def -Xptxas -v 2>&1 | grep -A2 "ILi128EL" | grep -E "registers|spill"; then
    nvcc -o $d/test $SA/test_attention*.o $SA/testutil.o $d/attention_*.o -lm &&
      nvcc -o $d/bench $SA/bench_attention.o $SA/test_attention_shim.o $d/attention_*.o -lm &&
      { timeout 100 $d/test prefill_long | tail -3 &&
        timeout 90 compute-sanitizer --tool memcheck --error-exitcode 9 $d/test quick | tail -2 &&
        timeout 90 compute-sanitizer --tool racecheck --error-exitcode 9 $d/test quick | tail -2 &&
        timeout 60 $d/bench --only prefill --reps 10 | tail -n +6; } ||
      echo "variant failed"
  fi
done

step "cmake build of the library targets"
mkdir -p /tmp/deps && for f in .deps/*.deb; do dpkg -x "$f" /tmp/deps; done
B=build-gpu-attn
if timeout 240 cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DGATTN_CUDA=ON \
     -DGATTN_DEPS_PREFIX=/tmp/deps "-DGATTN_CUDA_GENCODE=$GEN" > "$OUT/cmake.log" 2>&1 &&
   timeout 240 cmake --build $B -j "$JOBS" --target test_attention bench_attention \
     >> "$OUT/cmake.log" 2>&1; then
  echo "cmake build ok"
  timeout 120 ctest --test-dir $B -R "test_attention($|_quick|_decode)" --output-on-failure 2>&1 |
    tail -8
else
  tail -30 "$OUT/cmake.log"
  fail "cmake build of test_attention/bench_attention (see cmake.log)"
fi

step "done, status $status"
exit $status
