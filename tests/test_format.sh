#!/usr/bin/env bash
# Every C and CUDA source is formatted with the checked-in .clang-format (reports skipped when
# clang-format or git is missing).
cd "${GA_SRC:?}" || exit 1
command -v clang-format >/dev/null && git rev-parse --git-dir >/dev/null 2>&1 || {
  echo "clang-format or git not available: skipped"
  exit 77
}
files=$(git ls-files '*.c' '*.h' '*.cu' '*.cuh')
bad=0
n=0
for f in $files; do
  n=$((n + 1))
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || { echo "not formatted: $f"; bad=$((bad + 1)); }
done
echo "$((n - bad)) passed, $bad failed"
[ $bad -eq 0 ]
