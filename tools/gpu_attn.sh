#!/usr/bin/env bash
# One call on the GPU machine for the attention kernels: CMake build of test_attention and
# bench_attention (Hopper sm_90a), every test section (both prefill kernels), then
# compute-sanitizer memcheck/racecheck/synccheck on the quick section, our benchmark, PyTorch
# SDPA on the same shapes, per-kernel ncu durations and the SASS instruction mix of the
# Hopper kernel. Writes to $OUT (default /tmp/gattn-attn-out): bench.md (the two benchmark
# tables) and logs.tgz (everything else).
#
# usage (repo root, GPU machine, .deps/ carried): tools/gpu_attn.sh
#   env: OUT, JOBS, GATTN_CUDA_GENCODE, GA_ATTN_BUILD (build dir), GA_ATTN_SECTIONS (default:
#        all sections),
#        GA_ATTN_NO_TORCH=1, GA_ATTN_NO_SAN=1, GA_ATTN_NO_NCU=1,
#        GA_ATTN_BENCH_ARGS (e.g. "--only prefill"), GA_ATTN_VARIANTS (";"-separated -D
#        flag sets: each builds, tests and times the kernels so compiled)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gattn-attn-out}
LOG=/tmp/gattn-attn-logs
rm -rf "$LOG"
mkdir -p "$OUT" "$LOG"
JOBS=${JOBS:-$(nproc)}
GEN=${GATTN_CUDA_GENCODE:--gencode=arch=compute_90a,code=sm_90a}
SECTIONS=${GA_ATTN_SECTIONS:-args quick prefill decode probs prefill_long probs_long}
B=${GA_ATTN_BUILD:-build-gpu-attn}
status=0
step() { echo; echo "=== [$(date -u +%H:%M:%S) +${SECONDS}s] $*"; }
fail() { echo "FAILED: $*"; status=1; }
finish() { tar czf "$OUT/logs.tgz" -C "$LOG" . 2>/dev/null; step "done, status $status"; exit $status; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
nvcc --version | tail -1

step "cmake build of test_attention and bench_attention"
mkdir -p /tmp/deps && for f in .deps/*.deb; do dpkg -x "$f" /tmp/deps; done
export LD_LIBRARY_PATH="/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
if timeout 300 cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DGATTN_CUDA=ON \
     -DGATTN_WERROR=OFF -DGATTN_DEPS_PREFIX=/tmp/deps "-DGATTN_CUDA_GENCODE=$GEN" \
     > "$LOG/cmake.log" 2>&1 &&
   timeout 300 cmake --build $B -j "$JOBS" --target test_attention bench_attention \
     >> "$LOG/cmake.log" 2>&1; then
  echo "build ok"
  grep -iE "warning" "$LOG/cmake.log" | head -10
else
  grep -E "error" -A3 "$LOG/cmake.log" | head -40
  tail -20 "$LOG/cmake.log"
  fail "cmake build"
  finish
fi
T=$B/tests/test_attention
BENCH=$B/bench/bench_attention

step "resource usage of the attention kernels (registers, spills, shared memory)"
obj=$(find $B -name "attention_prefill_sm90.cu.o" | head -1)
if [ -n "$obj" ] && command -v cuobjdump > /dev/null; then
  cuobjdump --dump-resource-usage "$obj" 2>&1 | grep -E "Function|REG|STACK" | head -8
  echo "SASS mix of k_attn_prefill_sm90:"
  cuobjdump -sass "$obj" | grep -oE "\b(HGMMA|UTMALDG|SYNCS|LDL|STL|WARPGROUP)[A-Z0-9._]*" |
    sort | uniq -c | sort -rn | head -20
fi
for f in attention_decode attention_prefill; do
  o=$(find $B -name "$f.cu.o" | head -1)
  [ -n "$o" ] && cuobjdump --dump-resource-usage "$o" 2>&1 | grep -E "Function|REG" | head -8
done

step "tests"
for sec in $SECTIONS; do
  echo "--- test_attention $sec"
  GA_TEST_VERBOSE=1 timeout 240 $T $sec > "$LOG/test_$sec.txt" 2>&1
  rc=$?
  grep -v ": worst\|ratio" "$LOG/test_$sec.txt" | tail -12
  # the three worst error ratios of the section (1.0 = at the tolerance)
  awk '/ratio/ {m=0; for (i=1;i<NF;i++) if ($i=="ratio" && $(i+1)+0>m) m=$(i+1)+0; print m" | "$0}' \
    "$LOG/test_$sec.txt" | sort -gr | head -3
  echo "rc=$rc"
  [ $rc -eq 0 ] || fail "test_attention $sec"
done

if [ -z "${GA_ATTN_NO_SAN:-}" ]; then
  step "sanitizers on the quick section"
  for tool in memcheck racecheck synccheck; do
    echo "--- $tool"
    timeout 150 compute-sanitizer --tool $tool --error-exitcode 9 $T quick > "$LOG/san_$tool.txt" 2>&1
    rc=$?
    tail -4 "$LOG/san_$tool.txt"
    echo "rc=$rc"
    [ $rc -eq 0 ] || fail "compute-sanitizer $tool"
  done
fi

step "bench (ours)"
timeout 150 $BENCH ${GA_ATTN_BENCH_ARGS:-} | tee "$OUT/bench.md" || fail "bench_attention"
if [ -z "${GA_ATTN_NO_TORCH:-}" ]; then
  step "bench (torch)"
  echo >> "$OUT/bench.md"
  PYTHONUNBUFFERED=1 timeout 150 python3 tools/bench_attention_torch.py | tee -a "$OUT/bench.md" ||
    fail "bench_attention_torch.py"
fi

step "decode again, L2 flushed by a read (clean lines) instead of a memset (dirty lines)"
echo >> "$OUT/bench.md"
timeout 60 $BENCH --only decode --flush read | tee -a "$OUT/bench.md" || fail "bench --flush read"
if [ -z "${GA_ATTN_NO_TORCH:-}" ]; then
  echo >> "$OUT/bench.md"
  PYTHONUNBUFFERED=1 timeout 90 python3 tools/bench_attention_torch.py --only decode --flush read \
    2>/dev/null | tee -a "$OUT/bench.md" || fail "bench_attention_torch.py --flush read"
fi

# Compile-time variants of the kernels (e.g. GA_ATTN_VARIANTS="-DGA_DC_L2HINT=0;-DGA_DC_L2HINT=2"):
# each is built in its own directory, tested (decode and quick sections) and timed.
IFS=';' read -r -a VARIANTS <<< "${GA_ATTN_VARIANTS:-}"
for def in "${VARIANTS[@]}"; do
  [ -n "$def" ] || continue
  step "variant $def"
  vb="$B-var$(echo "$def" | tr -dc 'A-Za-z0-9')"
  if timeout 200 cmake -S . -B "$vb" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGATTN_CUDA=ON \
       -DGATTN_WERROR=OFF -DGATTN_DEPS_PREFIX=/tmp/deps "-DGATTN_CUDA_GENCODE=$GEN" \
       "-DCMAKE_CUDA_FLAGS=$def" > "$LOG/var.log" 2>&1 &&
     timeout 200 cmake --build "$vb" -j "$JOBS" --target test_attention bench_attention \
       >> "$LOG/var.log" 2>&1; then
    for sec in decode quick; do
      timeout 200 "$vb/tests/test_attention" $sec 2>&1 | tail -1
    done
    timeout 100 "$vb/bench/bench_attention" --only decode | tail -n +5
  else
    tail -20 "$LOG/var.log"
    fail "variant $def"
  fi
done

[ -n "${GA_ATTN_NO_NCU:-}" ] && finish
step "per-kernel durations (ncu, caches flushed by ncu): decode at 4k and 32k, ours and torch's"
# Kernel time alone, without launch latency or the flush's after-effects; torch's kernels are
# listed by name (its decode may take several), each with its duration.
ncu_table() { # duration, grid and name of every kernel, one line each, in launch order
  awk -F'","' '/gpu__time_duration/ { gsub(/"/, "", $NF); print $NF " " $(NF-1) " | grid " $9 " | " $5 }' |
    cut -c1-150
}
# launch order: 4k (8 decode, 4 read), then 32k (the same)
timeout 120 ncu --clock-control none --csv --metrics gpu__time_duration.sum \
  -k regex:"k_attn_decode|k_read" $BENCH --only decode --reps 1 --flush read 2>/dev/null |
  ncu_table | tee "$LOG/ncu_ours.txt"
if [ -z "${GA_ATTN_NO_TORCH:-}" ]; then
  timeout 200 ncu --clock-control none --csv --metrics gpu__time_duration.sum \
    python3 tools/bench_attention_torch.py --only decode --reps 1 --flush read 2>/dev/null |
    ncu_table > "$LOG/ncu_torch.txt"
  grep -viE "elementwise|reduce|fill|copy|distribution|amax|normal" "$LOG/ncu_torch.txt" |
    head -60
fi
timeout 120 ncu --clock-control none -k regex:k_attn_prefill_sm90 --metrics gpu__time_duration.sum,sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active,smsp__warps_active.avg.pct_of_peak_sustained_active \
  -s 24 -c 1 $BENCH --only prefill --reps 1 2>&1 | grep -E "k_attn|duration|gmma|warps_active" | head -12 || true

finish
