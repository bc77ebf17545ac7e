#!/usr/bin/env bash
# Plants plausible bugs in the CPU paths, one at a time, in a scratch copy of the tree, builds
# CPU-only, runs the CPU suite (ctest -LE "gpu|lint") and reports which tests catch each bug:
# a markdown table of bug, file, and the failing tests or NOT CAUGHT. Run before a release;
# a bug that is NOT CAUGHT shows where the tests are weak.
#
#   tools/mutate.sh            every bug (about 20 builds + suite runs)
#   tools/mutate.sh 1 7 12     only these bugs (numbers as in the table / --list)
#   tools/mutate.sh --list     the bugs
#
# Each bug is a literal text replacement in one file; the script stops loudly when a pattern
# no longer matches exactly once (the code moved: update the pattern here). The scratch copy
# is made from the working tree (tracked and untracked, not ignored files), so uncommitted
# edits are included; it is removed at the end unless GA_MUTATE_KEEP=1. Environment:
# GA_MUTATE_JOBS (default 2) for the build and ctest.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
jobs=${GA_MUTATE_JOBS:-2}

# name | file | text to find (must occur exactly once) | replacement
BUGS=(
    'softmax without max subtraction|src/cpu/cpu_attention.c|p[s] = expf(p[s] - mx);|p[s] = expf(p[s]);'
    'gate_below_0_1 threshold 0.1 -> 0.2|src/cpu/cpu_ops.h|#define GA_GATE_LOW_THRESHOLD 0.1f|#define GA_GATE_LOW_THRESHOLD 0.2f'
    'top-p boundary >= -> >|src/engine/sampler.c|if (acc >= sp->top_p * kept) break;|if (acc > sp->top_p * kept) break;'
    'q_norm/k_norm swapped at load|src/core/model.c|{"self_attn.q_norm.weight", offsetof(ga_layer_w, q_norm)},
        {"self_attn.k_norm.weight", offsetof(ga_layer_w, k_norm)},|{"self_attn.q_norm.weight", offsetof(ga_layer_w, k_norm)},
        {"self_attn.k_norm.weight", offsetof(ga_layer_w, q_norm)},'
    'qk-norm eps x10|src/cpu/cpu_backend.c|.eps = c->rms_norm_eps,|.eps = c->rms_norm_eps * 10,'
    'RoPE theta off (x0.5)|src/core/rope.c|const double base = c->rope_theta;|const double base = c->rope_theta * 0.5;'
    'rotate-half sign flipped|src/cpu/cpu_ops.c|x[i] = a * c[i] - b * s[i];|x[i] = a * c[i] + b * s[i];'
    'causal mask off by one (sees the next key)|src/cpu/cpu_attention.c|nk = p + 1; /* causal: keys 0..p */|nk = p + 2 < a->pos0 + T ? p + 2 : p + 1;'
    'GQA group index wrong|src/core/gate_layout.h|    return h / L->G;
}|    return h % L->n_kv_heads;
}'
    'headwise gate applied to the wrong head|src/cpu/cpu_attention.c|ga_gate_layout_gate_idx(&gl, h)|ga_gate_layout_gate_idx(&gl, (h + 1) % nh)'
    'sigmoid replaced by identity-clamp|src/cpu/cpu_ops.h|return 1.0f / (1.0f + expf(-x));|return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x;'
    'residual add dropped in one layer|src/cpu/cpu_backend.c|        ga_cpu_matmul(b->pool, f.o, f.att, w->wo, w->bo, T, nh * hd, H);
        for (size_t i = 0; i < (size_t)T * H; i++)
            f.x[i] += f.o[i];|        ga_cpu_matmul(b->pool, f.o, f.att, w->wo, w->bo, T, nh * hd, H);
        for (size_t i = 0; i < (size_t)T * H; i++)
            f.x[i] += l == 1 ? 0.0f : f.o[i];'
    'rmsnorm eps ignored|src/cpu/cpu_ops.c|sqrt(ss / n + eps)|sqrt(ss / n + 0 * eps)'
    'tied embeddings not tied (tie flag inverted)|src/cpu/cpu_backend.c|b->lm_head = c->tie_word_embeddings ? b->embed|b->lm_head = !c->tie_word_embeddings ? b->embed'
    'tokenizer merge rank off by one (rank 0 skipped)|src/tok/tok_bpe.c|    if (rank < 0) return;
    heap_push|    if (rank <= 0) return;
    heap_push'
    'byte-to-unicode map shifted|src/tok/tok_bytes.c|    return 256 + rank;|    return 257 + rank;'
    'first_token_share averaged over row 0 too|src/cpu/cpu_attention.c|if (a->first_share && t > 0) first += sc[0];|if (a->first_share) first += sc[0];'
    'pooling bin off by one|src/core/capture.h|return (int)((i * res) / T);|return (int)(((i + 1) * res - 1) / T);'
    'sampler temperature ignored|src/engine/sampler.c|expf((logits[i] - mx) / sp->temperature)|expf((logits[i] - mx))'
    'hybrid: zero-centred RMSNorm without the 1 +|src/cpu/cpu_hybrid.c|out[i] = (float)(x[i] * r * (1.0 + w[i]));|out[i] = (float)(x[i] * r * w[i]);'
    'hybrid: conv1d newest input on the oldest tap|src/cpu/cpu_hybrid.c|double s = (double)wc[m] * x[c];|double s = (double)wc[0] * x[c];'
    'hybrid: delta rule without beta|src/cpu/cpu_hybrid.c|float delta = (float)((v[j] - mem) * beta);|float delta = (float)(v[j] - mem);'
    'hybrid: value heads tiled over key heads, not repeated|src/cpu/cpu_hybrid.c|int hk = h / r;|int hk = h % Hk;'
    'hybrid: MoE top-k weights never renormalised|src/cpu/cpu_hybrid.c|if (hc->norm_topk_prob)|if (0 && hc->norm_topk_prob)'
    'hybrid: DeltaNet q not scaled by 1/sqrt(d_k)|src/cpu/cpu_hybrid.c|float qscale = (float)(1.0 / sqrt((double)dk));|float qscale = 1.0f;'
    'hybrid: top-level partial_rotary_factor wins over rope_parameters|src/core/config_hybrid.c|h->partial_rotary_factor = in ? in : top ? top : 0.25;|h->partial_rotary_factor = top ? top : in ? in : 0.25;'
)

if [[ ${1:-} == --list ]]; then
    for i in "${!BUGS[@]}"; do
        IFS='|' read -r name file _ <<<"${BUGS[$i]}"
        printf '%2d  %-48s %s\n' $((i + 1)) "$name" "$file"
    done
    exit 0
fi
sel=("$@")
if [[ ${#sel[@]} -eq 0 ]]; then
    for i in "${!BUGS[@]}"; do sel+=($((i + 1))); done
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/gattn-mutate.XXXXXX")
[[ ${GA_MUTATE_KEEP:-0} == 1 ]] || trap 'rm -rf "$scratch"' EXIT
(cd "$root" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$scratch/"
src=$scratch/src-tree
mkdir "$src"
(cd "$scratch" && find . -mindepth 1 -maxdepth 1 ! -name src-tree -exec mv {} "$src/" \;)

echo "mutate: scratch copy in $scratch; configuring and building the unmodified tree" >&2
cmake -S "$src" -B "$scratch/build" -G Ninja -DGATTN_CUDA=OFF -DCMAKE_BUILD_TYPE=Release \
    >"$scratch/configure.log" 2>&1 || { cat "$scratch/configure.log" >&2; exit 1; }
cmake --build "$scratch/build" -j"$jobs" >"$scratch/build.log" 2>&1 ||
    { tail -30 "$scratch/build.log" >&2; echo "mutate: the unmodified tree does not build" >&2; exit 1; }
if ! ctest --test-dir "$scratch/build" -LE "gpu|lint" -j"$jobs" >"$scratch/base.log" 2>&1; then
    grep -A50 'following tests FAILED' "$scratch/base.log" >&2 || true
    echo "mutate: the CPU suite fails on the unmodified tree; fix that first" >&2
    exit 1
fi

# Replaces the one occurrence of $2 by $3 in file $1; fails unless it occurs exactly once.
plant() {
    python3 - "$1" "$2" "$3" <<'EOF'
import sys
path, old, new = sys.argv[1:4]
text = open(path).read()
n = text.count(old)
if n != 1:
    sys.exit(f"mutate: pattern found {n} times (want 1) in {path}:\n{old}")
open(path, "w").write(text.replace(old, new))
EOF
}

caught=0
missed=0
rows=()
for i in "${sel[@]}"; do
    entry=${BUGS[$((i - 1))]:?"mutate: no bug number $i (see --list)"}
    name=${entry%%|*}
    rest=${entry#*|}
    file=${rest%%|*}
    rest=${rest#*|}
    old=${rest%%|*}
    new=${rest#*|}
    cp "$src/$file" "$scratch/pristine"
    if ! plant "$src/$file" "$old" "$new"; then
        echo "mutate: bug $i ($name): the pattern no longer matches $file; update tools/mutate.sh" >&2
        exit 1
    fi
    echo "mutate: [$i] $name ($file)" >&2
    if ! cmake --build "$scratch/build" -j"$jobs" >"$scratch/bug$i.build.log" 2>&1; then
        result="BUILD FAILED (fix the patch)"
    elif ctest --test-dir "$scratch/build" -LE "gpu|lint" -j"$jobs" --timeout 600 \
        >"$scratch/bug$i.log" 2>&1; then
        result="NOT CAUGHT"
    else
        result=$(sed -n '/following tests FAILED/,$p' "$scratch/bug$i.log" |
            sed -n 's/^[[:space:]]*[0-9]* - \([^ ]*\) .*/\1/p' | sort -u | paste -sd, - | sed 's/,/, /g')
        [[ -n $result ]] || result="(failed; see $scratch/bug$i.log)"
    fi
    if [[ $result == "NOT CAUGHT" || $result == BUILD* ]]; then missed=$((missed + 1)); else caught=$((caught + 1)); fi
    rows+=("| $i | $name | $file | $result |")
    cp "$scratch/pristine" "$src/$file"
done

echo
echo "| # | bug | file | caught by |"
echo "|---|-----|------|-----------|"
printf '%s\n' "${rows[@]}"
echo
echo "$caught caught, $missed not caught (of ${#sel[@]})"
