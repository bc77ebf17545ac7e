#!/usr/bin/env bash
# The README's main command: the attention-sink demo of gated attention.
#
#   tools/demo.sh                      three small random-weight models (baseline, headwise,
#                                      elementwise), written into build/demo/ on first use
#   tools/demo.sh DIR_A DIR_B DIR_C    the same for model folders you have (e.g. the published
#                                      checkpoints), any number of them
#
# Builds gattn if needed (cmake -S . -B build -G Ninja; an existing build is reused), then for
# each model runs `gattn viz` on the seed prompt: it writes
# build/demo/{model}_selected_layer_attention_maps.png (2 x 2 heatmaps of layers 1, 7, 21,
# 28, or evenly spread layers of a smaller model) and dumps the maps and metrics to
# build/demo/{model}-dump/, then prints the per-layer first-token attention share (the
# attention sink) and gate statistics of all models side by side. {model} is the folder's
# name; folders that share a name (A/final B/final) get their parent's name in front
# (A-final, B-final), so no model's output overwrites another's. Runs on the GPU when there
# is one, else on the CPU (DEVICE=cpu|cuda|auto overrides). GATTN=path/to/gattn skips the
# build; DEMO=DIR puts the outputs elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DEVICE=${DEVICE:-auto}
PROMPT=${PROMPT:-"Sparse gating mechanism mitigates attention sink."}

if [ -z "${GATTN:-}" ]; then
  if [ ! -f "$BUILD/build.ninja" ]; then
    echo "demo: configuring $BUILD"
    cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  echo "demo: building gattn"
  if ! log=$(cmake --build "$BUILD" --target gattn 2>&1); then
    printf '%s\n' "$log" >&2
    exit 1
  fi
  GATTN=$(cd "$BUILD" && pwd)/gattn
fi
DEMO=${DEMO:-$BUILD/demo}
mkdir -p "$DEMO"

models=()
if [ $# -gt 0 ]; then
  for d in "$@"; do
    [ -f "$d/config.json" ] || { echo "demo: $d is not a model folder (no config.json)" >&2; exit 1; }
    models+=("$(cd "$d" && pwd)")
  done
else
  # Small enough for a laptop CPU: 8 layers, hidden 256, 4 query / 2 KV heads of 64.
  for v in baseline headwise elementwise; do
    dir=$DEMO/random-$v
    if [ ! -f "$dir/config.json" ]; then
      "$GATTN" write-model --out "$dir" --variant "$v" --layers 8 --hidden 256 --heads 4 \
        --kv-heads 2 --head-dim 64 --intermediate 512 --vocab 1024 --seed 1 --tokenizer >/dev/null
    fi
    models+=("$(cd "$dir" && pwd)")
  done
  cat <<'NOTE'

demo: NOTE these models have random weights. They show that the pipeline works (capture
      from the engine's attention, heatmaps, metrics), not the phenomenon: the attention
      sink only forms in trained models. Point the demo at trained checkpoints to see it:
        tools/demo.sh /path/to/baseline /path/to/headwise /path/to/elementwise
NOTE
fi

# One output name per model, never shared: the folder's name, with its parent's name in front
# when another model folder has the same name, and its position when even that repeats.
names=()
for i in "${!models[@]}"; do
  m=${models[$i]}
  name=$(basename "$m")
  for j in "${!models[@]}"; do
    if [ "$j" != "$i" ] && [ "$(basename "${models[$j]}")" = "$name" ]; then
      name=$(basename "$(dirname "$m")")-$name
      break
    fi
  done
  for n in "${names[@]}"; do
    if [ "$n" = "$name" ]; then name=$((i + 1))-$name; break; fi
  done
  names+=("$name")
  echo
  (cd "$DEMO" && "$GATTN" viz --model "$m" --prompt "$PROMPT" --device "$DEVICE" \
     --out "${name}_selected_layer_attention_maps.png" --dump "$name-dump")
done

# Side by side: one row per layer, first-token share and mean gate of every model.
echo
echo "demo: attention sink per layer (first_token_share; gate_mean in parentheses)"
header=$(printf '%5s' layer)
for n in "${names[@]}"; do header+=$(printf '  %22.22s' "$n"); done
echo "$header"
files=()
for n in "${names[@]}"; do files+=("$DEMO/$n-dump/metrics.csv"); done
awk -F, '
  FNR == 1 { f++; next }
  { share[$1, f] = $2; gate[$1, f] = $3; if ($1 > n) n = $1 }
  END {
    for (l = 1; l <= n; l++) {
      line = sprintf("%5d", l)
      for (i = 1; i <= f; i++) {
        if ((l, i) in share) {
          cell = sprintf("%.4f", share[l, i])
          if (gate[l, i] != "") cell = cell sprintf(" (%.3f)", gate[l, i])
        } else cell = "-"
        line = line sprintf("  %22s", cell)
      }
      print line
    }
  }' "${files[@]}"
echo
echo "demo: pictures:"
for n in "${names[@]}"; do echo "  $DEMO/${n}_selected_layer_attention_maps.png"; done
