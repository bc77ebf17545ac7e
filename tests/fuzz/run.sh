#!/usr/bin/env bash
# Runs one libFuzzer harness for a fixed time and fails on anything it finds.
#   run.sh BINARY SEED_DIR [SECONDS] [CORPUS_DIR] [ARTIFACT_DIR]
# SECONDS: default $GA_FUZZ_SECONDS or 15; 0 runs until interrupted.
# CORPUS_DIR: the working corpus, which grows; default a scratch copy of SEED_DIR (deleted
#   afterwards, so a CI run never changes the committed seeds). Seeds are copied into it.
# ARTIFACT_DIR: where a crashing/leaking/slow input is written (default
#   ./fuzz-artifacts/<harness>/ under the current directory: the ctest build dir).
# Harnesses get TMPDIR set to a scratch dir removed afterwards, so files they write (a model
# folder, a tokenizer.json) never pile up, even when the run ends in a crash.
# Exit status: libFuzzer's (0: nothing found; nonzero: a crash, sanitizer report, leak,
# timeout or out-of-memory, with the input saved in ARTIFACT_DIR).
set -euo pipefail
bin=$1
seeds=$2
secs=${3:-${GA_FUZZ_SECONDS:-15}}
name=$(basename "$bin")
scratch=$(mktemp -d "${TMPDIR:-/tmp}/gattn-fuzzrun-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
corpus=${4:-$scratch/corpus}
art=${5:-$PWD/fuzz-artifacts/$name}
mkdir -p "$corpus" "$art" "$scratch/tmp"
if [ -d "$seeds" ]; then
  find "$seeds" -maxdepth 1 -type f -exec cp -n -t "$corpus" {} +
fi
echo "$name: ${secs}s on $(find "$corpus" -maxdepth 1 -type f | wc -l) inputs; artifacts in $art/"
rc=0
TMPDIR="$scratch/tmp" "$bin" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$art/" "$corpus" || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "FAIL: $name exited $rc; reproduce with: $bin $(ls -t "$art" 2>/dev/null | head -1 | sed "s|^|$art/|")" >&2
fi
exit "$rc"
