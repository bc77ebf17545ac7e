#!/usr/bin/env bash
# Hybrid folders (issue 15) through the CLI: folders shaped like the released Qwen3-Next-80B-A3B,
# Qwen3.5-27B and Qwen3.5-35B-A3B (tests/data/hybrid, shrunk vocabulary and hidden size) load;
# `gattn info` describes them (text and --json) although they hold only some tensors (names and
# shapes, no weights), and says in its runs line which tensor does not bind; every command that
# would run one fails with exactly one line naming that tensor, exit 1, never a crash; and
# malformed folders fail with one line naming the file and the field or tensor. Running hybrids
# (synthetic folders with every tensor): test_hybrid_run.sh.
. "$(dirname "$0")/cli_harness.sh" hybrid
D=${GA_TEST_DATA:?}/hybrid
MK() { python3 "$D/make_folder.py" "$@" >/dev/null || bad "make_folder $*"; }

MK "$D/qwen3_next_80b_a3b.json" "$T/next"
MK "$D/qwen3_5_27b.json" "$T/dense"
MK "$D/qwen3_5_35b_a3b.json" "$T/moe"
# a tokenizer beside the weights, so that commands needing one get past it to the model
"$G" write-model --out "$T/q3" --layers 1 --hidden 32 --heads 2 --kv-heads 1 --head-dim 16 \
  --intermediate 32 --vocab 300 --tokenizer >/dev/null 2>&1 || bad "write-model for a tokenizer"
for m in next dense moe; do cp "$T"/q3/tokenizer*.json "$T/$m/" 2>/dev/null; done

# ---- info, text
"$G" info --model "$T/next" >"$T/i" 2>"$T/e" && [ ! -s "$T/e" ] && ok || bad "info next: $(cat "$T/e")"
grep -q "^model_type       qwen3_next (hybrid" "$T/i" && ok || bad "info next model_type: $(cat "$T/i")"
grep -q "48: 3 linear : 1 full (36 linear_attention, 12 full_attention: 3,7,11," "$T/i" && ok || bad "info next layers"
grep -q "16 query, 2 key/value heads (G = 8), head_dim 256; q_proj 8192 rows" "$T/i" && ok || bad "info next heads"
grep -q "partial: 64 of 256 dims" "$T/i" && ok || bad "info next rope"
grep -q "16 key heads x d_k 128, 32 value heads x d_v 128, conv kernel 4" "$T/i" && ok || bad "info next linear"
grep -q "MoE on 48 of 48 layers: 512 experts, top 10 (renormalised), expert width 512, shared expert 512$" "$T/i" \
  && ok || bad "info next moe"
grep -q "zero-centred" "$T/i" && ok || bad "info next norms"
grep -q 'runs             no: .*next: missing tensor "model.layers.0.linear_attn.in_proj_qkvz.weight" (expected shape (12288, 32))' "$T/i" \
  && ok || bad "info next runs: $(cat "$T/i")"
grep -q "text model 3 tensors (model.\*), not bound (see runs)" "$T/i" && ok || bad "info next bound"
grep -q "ignored          mtp.\* 1 tensors" "$T/i" && ok || bad "info next mtp"

"$G" info --model "$T/dense" >"$T/i" && ok || bad "info dense"
grep -q "qwen3_5, vision-language folder (text_config)" "$T/i" && ok || bad "info dense type"
grep -q "64: 3 linear : 1 full" "$T/i" && ok || bad "info dense layers"
grep -q "mrope_section \[11, 11, 10\] interleaved (text input only" "$T/i" && ok || bad "info dense mrope"
grep -q "dense SwiGLU, intermediate 17408" "$T/i" && ok || bad "info dense mlp"
grep -q "ignored          model.visual.\* 2 tensors" "$T/i" && ok || bad "info dense visual"
grep -q "text model 3 tensors (model.language_model.\*)" "$T/i" && ok || bad "info dense text tensors"

# ---- info --json
"$G" info --model "$T/moe" --json >"$T/j" && ok || bad "info --json moe"
python3 - "$T/j" <<'PY' && ok || bad "info --json moe fields: $(cat "$T/j")"
import json, sys
o = json.load(open(sys.argv[1]))
want = {"model_type": "qwen3_5_moe", "vision_language_folder": True, "runnable": False,
        "layer_pattern": "3 linear : 1 full", "num_hidden_layers": 40,
        "linear_attention_layers": 30, "full_attention_layers": 10, "head_dim": 256,
        "rotary_dim": 64, "mrope_section": [11, 11, 10], "moe": True, "num_experts": 256,
        "num_experts_per_tok": 8, "moe_layers": 40, "norm_zero_centred": True,
        "ignored_tensors": {"model.visual.": 2, "mtp.": 1}}
bad = {k: (o.get(k), v) for k, v in want.items() if o.get(k) != v}
assert not bad, bad
assert o["full_attention_layer_ids"] == list(range(3, 40, 4))
assert 'missing tensor "model.language_model.layers.0.linear_attn.in_proj_qkv.weight"' \
    in o["not_supported"], o["not_supported"]
assert o["parameters"] > o["active_parameters"] > 0  # routed experts a token skips
PY

# ---- every running command refuses in one line naming the first tensor that does not bind
R='missing tensor "model.language_model.layers.0.linear_attn.in_proj_qkv.weight" (expected shape (10240, 32))'
expect_exit 1 "$T/dense: $R" "$G" logits --model "$T/dense" --tokens 1,2 --device cpu
expect_exit 1 "$R" "$G" generate --model "$T/dense" --tokens 1,2 -n 2 --device cpu
expect_exit 1 "$R" "$G" viz --model "$T/dense" --tokens 1,2,3 --out "$T/viz.png" --device cpu
expect_exit 1 "$R" "$G" bench --model "$T/dense" --device cpu
expect_exit 1 "$R" "$G" serve --model "$T/dense" --device cpu --port 0
printf '1 2 3 4 5 6\n' >"$T/ids"
expect_exit 1 "$R" "$G" perplexity --model "$T/dense" --tokens-file "$T/ids" --context 4 --device cpu
expect_exit 1 'next: missing tensor "model.layers.0.linear_attn.in_proj_qkvz.weight"' \
  "$G" logits --model "$T/next" --tokens 1 --device cpu
expect_exit 1 'moe: missing tensor "model.language_model.layers.0.linear_attn.in_proj_qkv.weight"' \
  "$G" generate --model "$T/moe" --tokens 1 -n 1 --device cpu
# no DeltaNet layer left: the full-attention layer's q_proj (per head [query | gate]) is looked for
MK "$D/qwen3_next_80b_a3b.json" "$T/allfull" --set full_attention_interval=1
expect_exit 1 'allfull: missing tensor "model.layers.0.self_attn.q_proj.weight" (expected shape (8192, 32))' \
  "$G" logits --model "$T/allfull" --tokens 1 --device cpu
# what the CPU reference does not implement is info's runs line ahead of the binding
MK "$D/qwen3_5_27b.json" "$T/nogate" --set attn_output_gate=false
"$G" info --model "$T/nogate" | grep -q "runs             no: full attention without the output gate (attn_output_gate false) is not supported yet: issue 15" \
  && ok || bad "info nogate runs line"

# ---- malformed folders: one line naming the file and the field or tensor, exit 1
MK "$D/qwen3_5_27b.json" "$T/noemb" --no-embed
expect_exit 1 "missing tensor \"model.language_model.embed_tokens.weight\" (expected shape (64, 32))" \
  "$G" logits --model "$T/noemb" --tokens 1
"$G" info --model "$T/noemb" | grep -q 'runs             no: .*missing tensor "model.language_model.embed_tokens.weight"' \
  && ok || bad "info noemb runs line"
MK "$D/qwen3_5_27b.json" "$T/badlt" --set 'layer_types=["linear_attention"]'
expect_exit 1 "config.json: \"layer_types\" lists 1 layers, num_hidden_layers is 64" "$G" info --model "$T/badlt"
MK "$D/qwen3_5_27b.json" "$T/nohid" --set num_attention_heads=null
expect_exit 1 "config.json: missing required field \"num_attention_heads\"" "$G" info --model "$T/nohid"
MK "$D/qwen3_5_27b.json" "$T/badms" --set 'rope_parameters={"mrope_section":[1,2]}'
expect_exit 1 "\"rope_parameters.mrope_section\" sums to 3" "$G" logits --model "$T/badms" --tokens 1
MK "$D/qwen3_next_80b_a3b.json" "$T/unk" --set 'model_type="qwen3_moe"'
expect_exit 1 "config.json: model_type \"qwen3_moe\" is not supported" "$G" info --model "$T/unk"

finish
