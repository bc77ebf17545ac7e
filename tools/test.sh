#!/usr/bin/env bash
# The test command README and CI run: sets up, builds (CUDA backend too when nvcc is there),
# runs the whole ctest suite (GPU tests report skipped without a GPU), then rebuilds the
# CPU engine under AddressSanitizer + UndefinedBehaviorSanitizer and runs the suite again,
# then builds the libFuzzer harnesses with clang and runs each for GA_FUZZ_SECONDS (default
# 15; 0 skips the step) on its seed corpus, failing on any crash (tools/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
JOBS=${JOBS:-$(nproc)}

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$JOBS"
ctest --test-dir build --output-on-failure -j "$JOBS"

cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DGATTN_SANITIZE=ON \
  -DGATTN_CUDA=OFF >/dev/null
cmake --build build-asan -j "$JOBS"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j "$JOBS" -LE slow

if [ "${GA_FUZZ_SECONDS:-15}" != 0 ]; then
  GA_FUZZ_SECONDS=${GA_FUZZ_SECONDS:-15} JOBS="$JOBS" tools/fuzz.sh
fi
