#!/usr/bin/env bash
# The test command README and CI run: sets up, builds (CUDA backend too when nvcc is there),
# runs the whole ctest suite (GPU tests report skipped without a GPU), then rebuilds the
# CPU engine under AddressSanitizer + UndefinedBehaviorSanitizer and runs the suite again,
# runs the server's tests against a ThreadSanitizer build of gattn,
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

# ThreadSanitizer over gattn serve, whose connection threads, scheduler thread and session
# share state: a data race fails the run (the server halts, the test sees it die).
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGATTN_CUDA=OFF \
  -DGATTN_WERROR=OFF -DCMAKE_C_FLAGS=-fsanitize=thread -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread \
  >/dev/null
cmake --build build-tsan -j "$JOBS" --target gattn
for t in serve_http serve_signal serve_load serve_paged; do
  echo "tsan: $t"
  TSAN_OPTIONS=halt_on_error=1 GA_TIMEOUT_SCALE=5 GA_SRC="$PWD" GA_CLI="$PWD/build-tsan/gattn" \
    GA_TEST_DATA="$PWD/tests/data" GA_BUILD="$PWD/build-tsan" bash "tests/$t.sh"
done

if [ "${GA_FUZZ_SECONDS:-15}" != 0 ]; then
  GA_FUZZ_SECONDS=${GA_FUZZ_SECONDS:-15} JOBS="$JOBS" tools/fuzz.sh
fi
