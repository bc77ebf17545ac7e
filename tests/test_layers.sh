#!/usr/bin/env bash
# The layering of src/ (README "Layout"): every `#include "dir/..."` in a source folder must
# name a folder that folder may depend on, so an upward include (core reaching into the engine,
# a backend into the session, viz into a backend's header) fails here instead of in review.
# A bare `#include "x.h"` must name a file of the same folder (src/cuda also sees kernels/).
# Every folder under src/ needs a row; a new folder without one fails.
# With arguments, checks those files instead of the tree (relative to GA_SRC).
cd "${GA_SRC:?}" || exit 1

# folder -> the folders it may include from (besides itself and the public gattn/).
declare -A allow=(
  [core]=""
  [tok]="core"
  [cpu]="core"
  [cuda]="core"
  [kernels]=""
  [synth]="core tok"
  [engine]="core cpu cuda"
  [viz]="core"
  [server]="core tok engine"
  [cli]="*"
)

bad=0
n=0
for d in src/*/; do
  d=${d%/}
  d=${d#src/}
  if [ -z "${allow[$d]+set}" ]; then
    echo "src/$d: no row in the layer table of tests/test_layers.sh (and README's Layout)"
    bad=$((bad + 1))
  fi
done

if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(find src kernels -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) | sort)
fi
for f in "${files[@]}"; do
  case "$f" in
  src/*/*) layer=${f#src/}; layer=${layer%%/*}; dir=src/$layer ;;
  kernels/*) layer=kernels; dir=kernels ;;
  *) continue ;;
  esac
  allowed=" ${allow[$layer]} "
  while IFS=: read -r line inc; do
    n=$((n + 1))
    if [[ "$inc" == */* ]]; then
      top=${inc%%/*}
      if [ "$top" = gattn ] || [ "$top" = "$layer" ] || [ "$allowed" = " * " ] ||
        [[ "$allowed" == *" $top "* ]]; then
        continue
      fi
      echo "$f:$line: includes \"$inc\": $layer may include only from: ${allow[$layer]:-its own folder} (and gattn/)"
      bad=$((bad + 1))
    else
      [ -f "$dir/$inc" ] && continue
      [ "$layer" = cuda ] && [ -f "kernels/$inc" ] && continue
      echo "$f:$line: includes \"$inc\", which is not in $dir/"
      bad=$((bad + 1))
    fi
  done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
    sed -E 's/^([0-9]+):[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]*)".*/\1:\2/')
done
echo "$((n - bad)) passed, $bad failed"
[ $bad -eq 0 ]
