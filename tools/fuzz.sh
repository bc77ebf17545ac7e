#!/usr/bin/env bash
# libFuzzer harnesses (tests/fuzz/fuzz_<name>.c), built with clang + AddressSanitizer +
# UndefinedBehaviorSanitizer in build-fuzz/.
#   tools/fuzz.sh                 build every harness and run each for GA_FUZZ_SECONDS
#                                 (default 15) on a scratch copy of its seeds: what CI runs;
#                                 fails on any crash, sanitizer report, leak, timeout or OOM
#   tools/fuzz.sh NAME [SECONDS]  a longer campaign for one harness (default 600 s, 0 = until
#                                 Ctrl-C) on build-fuzz/corpus/NAME, which keeps growing and
#                                 starts from tests/fuzz/corpus/NAME
#   tools/fuzz.sh --list          the harness names
# Findings go to build-fuzz/artifacts/NAME/ (CI: build-fuzz/tests/fuzz/fuzz-artifacts/);
# reproduce one with build-fuzz/tests/fuzz/fuzz_NAME FILE. To keep an input as a regression
# seed, copy it into tests/fuzz/corpus/NAME/. JOBS sets the parallelism (default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
B=build-fuzz
CC_FUZZ=${CC_FUZZ:-clang}
JOBS=${JOBS:-$(nproc)}

names() { for f in tests/fuzz/fuzz_*.c; do basename "$f" .c | sed 's/^fuzz_//'; done; }

usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

case "${1:-}" in
-h | --help) usage ;;
--list)
  names
  exit 0
  ;;
-*) usage ;;
esac
if [ $# -gt 2 ]; then usage; fi
if [ $# -ge 1 ] && [ ! -f "tests/fuzz/fuzz_$1.c" ]; then
  echo "tools/fuzz.sh: no harness '$1' (have: $(names | paste -sd' '))" >&2
  exit 2
fi
if [ $# -eq 2 ] && ! [[ "$2" =~ ^[0-9]+$ ]]; then
  echo "tools/fuzz.sh: SECONDS must be a whole number, not '$2'" >&2
  exit 2
fi
if ! command -v "$CC_FUZZ" >/dev/null 2>&1; then
  echo "tools/fuzz.sh: $CC_FUZZ not found (libFuzzer needs clang; tools/setup.sh installs it)" >&2
  exit 1
fi

# Warnings are not errors here: clang may warn where the main (gcc) build does not, and
# that is the main build's business, not the fuzzer's. Only the tests/fuzz fragment is read.
cmake -S . -B "$B" -G Ninja -DCMAKE_C_COMPILER="$CC_FUZZ" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DGATTN_FUZZ=ON -DGATTN_CUDA=OFF -DGATTN_WERROR=OFF -DGATTN_TEST_AREAS= >/dev/null

if [ $# -eq 0 ]; then
  cmake --build "$B" -j "$JOBS" --target fuzz
  ctest --test-dir "$B" -L fuzz --output-on-failure -j "$JOBS"
  exit
fi

name=$1
secs=${2:-600}
cmake --build "$B" -j "$JOBS" --target "fuzz_$name"
exec bash tests/fuzz/run.sh "$B/tests/fuzz/fuzz_$name" "tests/fuzz/corpus/$name" "$secs" \
  "$B/corpus/$name" "$PWD/$B/artifacts/$name"
