#!/usr/bin/env bash
# The analysis commands on hybrid models, CPU backend (issue 15), on synthetic folders from
# `gattn write-model --family` / `--preset`:
#   * viz: the default picks the full-attention layers (4 and 8 of 8); --layers naming a linear
#     layer draws it as "linear attention: no attention map" instead of failing; the metrics
#     table, metrics.csv and metrics.json carry that note on every linear layer and no numbers;
#     --dump writes layer_N.npy for the full-attention layers only, each row a distribution;
#   * perplexity: the mean NLL equals one computed here from `gattn logits --all` of each window
#     (full recompute, float64 log-softmax), for plain windows with --batch 2 and for --stride;
#   * bench --model HYBRID --device cpu runs and reports prefill and decode rows;
#   * write-model --preset qwen3.5-9b / qwen3-next-80b-a3b (shrunk by shape options) writes the
#     published DeltaNet and MoE fields, and the folder runs.
. "$(dirname "$0")/cli_harness.sh" hybrid-tools
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }

for f in qwen3_5 qwen3_next; do
  "$G" write-model --out "$T/$f" --family "$f" --layers 8 --hidden 64 --heads 4 --kv-heads 2 \
    --head-dim 32 --intermediate 96 --vocab 300 --init-std 0.3 --seed 7 --tokenizer \
    >/dev/null || bad "write-model --family $f"
done
M=$T/qwen3_5
NOTE="linear attention: no attention map"

# ---- viz
"$G" viz --model "$M" --tokens 3,14,15,92,65,35,89,79,1 --out "$T/a.png" --dump "$T/d" >"$T/v" \
  && ok || bad "viz default layers"
[ -s "$T/a.png" ] && ok || bad "viz wrote no picture"
[ "$(cd "$T/d" && ls layer_*.npy | tr '\n' ' ')" = "layer_4.npy layer_8.npy " ] && ok \
  || bad "default dump layers: $(ls "$T/d")"
[ "$(grep -c "$NOTE" "$T/v")" = 6 ] && ok || bad "table notes: $(cat "$T/v")"
grep -Eq '^ +4 +0\.[0-9]{4} +0\.[0-9]{4} +0\.[0-9]{4}$' "$T/v" && ok || bad "layer 4 row: $(cat "$T/v")"
python3 - "$T/d" "$NOTE" <<'PY' && ok || bad "dump contents"
import csv, json, struct, sys
d, note = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(d + "/metrics.csv")))
assert [r["note"] for r in rows] == [note] * 3 + [""] + [note] * 3 + [""], rows
assert all(r["first_token_share"] == "" for r in rows if r["note"]), rows
assert all(0 < float(r["gate_mean"]) < 1 for r in rows if not r["note"]), rows
js = json.load(open(d + "/metrics.json"))
assert [o.get("note") for o in js] == [note] * 3 + [None] + [note] * 3 + [None], js
assert all(o["gate_mean"] is None for o in js if "note" in o), js
for layer in (4, 8):  # .npy float32 (9, 9): every query row a distribution over keys <= it
    b = open(f"{d}/layer_{layer}.npy", "rb").read()
    hl = struct.unpack("<H", b[8:10])[0]
    v = struct.unpack("<81f", b[10 + hl:])
    for i in range(9):
        r = v[9 * i:9 * i + 9]
        assert abs(sum(r) - 1) < 1e-5 and all(x == 0 for x in r[i + 1:]), (layer, i, r)
PY
"$G" viz --model "$M" --tokens 3,14,15 --layers 1,4 --out "$T/b.png" >"$T/v2" && ok \
  || bad "viz --layers 1,4 (layer 1 is linear)"
[ -s "$T/b.png" ] && ok || bad "viz --layers 1,4 wrote no picture"
"$G" viz --model "$T/qwen3_next" --tokens 3,14,15,9 --layers 2 --head 1 --out "$T/c.png" >/dev/null \
  && ok || bad "viz qwen3_next --layers 2 --head 1"

# ---- perplexity against full recompute from logits --all
python3 -c "import random; random.seed(3); print(' '.join(str(random.randrange(300)) for _ in range(37)))" >"$T/ids"
cat >"$T/nll.py" <<'PY'
import json, math, subprocess, sys
g, model, ids_file, C, S = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
ids = [int(x) for x in open(ids_file).read().split()]
def window_nll(toks, scored):  # scored: positions (in toks) whose token is predicted
    out = subprocess.run([g, "logits", "--model", model, "--tokens", ",".join(map(str, toks)),
                          "--all", "--device", "cpu"], check=True, capture_output=True, text=True).stdout
    rows = [json.loads(l) for l in out.splitlines() if l.strip()]
    tot = 0.0
    for p in scored:
        r = rows[p - 1]
        m = max(r)
        tot += m + math.log(sum(math.exp(x - m) for x in r)) - r[toks[p]]
    return tot, len(scored)
tot = n = 0
if S == 0:  # windows of C, each scoring all but its first token
    for b in range(0, len(ids), C):
        w = ids[b:b + C]
        if len(w) < 2: continue
        t, k = window_nll(w, range(1, len(w))); tot += t; n += k
else:  # Hugging Face's sliding windows
    prev = 0
    for b in range(0, len(ids), S):
        e = min(b + C, len(ids)); w = ids[b:e]; trg = e - prev
        first = len(w) - trg if b else 1
        t, k = window_nll(w, range(first, len(w))); tot += t; n += k
        prev = e
        if e == len(ids): break
res = json.load(open(sys.argv[6]))["models"][0]["results"][0]
assert res["tokens"] == n, (res["tokens"], n)
assert abs(res["nll"] - tot / n) < 1e-4 * max(1, tot / n), (res["nll"], tot / n)
PY
for f in qwen3_5 qwen3_next; do
  "$G" perplexity --model "$T/$f" --tokens-file "$T/ids" --context 16 --batch 2 --json "$T/p.json" \
    --device cpu >/dev/null && ok || bad "perplexity $f"
  python3 "$T/nll.py" "$G" "$T/$f" "$T/ids" 16 0 "$T/p.json" && ok || bad "$f: perplexity != recompute"
  "$G" perplexity --model "$T/$f" --tokens-file "$T/ids" --context 16 --stride 6 --json "$T/p2.json" \
    --device cpu >/dev/null && ok || bad "perplexity --stride $f"
  python3 "$T/nll.py" "$G" "$T/$f" "$T/ids" 16 6 "$T/p2.json" && ok \
    || bad "$f: strided perplexity != recompute"
done

# ---- bench
"$G" bench --model "$T/qwen3_next" --device cpu --prefill 8,16 --depths 0,8 --decode-tokens 4 \
  --batch 1,2 --reps 1 --warmup 0 --json "$T/b.json" >"$T/bench.md" 2>/dev/null && ok || bad "bench"
python3 - "$T/b.json" <<'PY' && ok || bad "bench rows: $(cat "$T/bench.md")"
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
assert sorted({r["test"] for r in rows}) == ["decode", "prefill"], rows
assert len(rows) == 6 and all(r["tokens_per_s"] > 0 for r in rows), rows
PY
# The FLOP column of a MoE hybrid counts the experts a token runs, not all of them: a prefill's
# FLOPs lie between 2 x (active parameters - embedding tables) per token and 2 x active plus
# the attention and DeltaNet terms, well below 2 x all parameters (info's independent counts).
"$G" info --model "$T/qwen3_next" --json >"$T/info.json" 2>/dev/null && ok || bad "info --json"
python3 - "$T/b.json" "$T/info.json" "$T/qwen3_next/config.json" <<'PY' && ok || bad "bench FLOPs of a MoE hybrid"
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
info, cfg = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
def find(o, k):
    if isinstance(o, dict):
        if k in o: return o[k]
        for v in o.values():
            r = find(v, k)
            if r is not None: return r
    return None
total, active = find(info, "parameters"), find(info, "active_parameters")
assert total and active and active < 0.8 * total, (total, active)
VH = cfg["vocab_size"] * cfg["hidden_size"]
for r in rows:
    if r["test"] != "prefill": continue
    P = r["tokens"]
    flops = r["tflop_per_s"] * 1e12 * r["mean_ms"] * 1e-3
    lo, hi = 2 * (active - 2 * VH) * P, 2 * active * P * 1.5
    assert lo <= flops <= hi and flops < 2 * total * P * 0.9, (P, flops, lo, hi, total, active)
PY

# ---- presets with the published shapes, shrunk to run here
"$G" write-model --out "$T/p9" --preset qwen3.5-9b --layers 4 --hidden 64 --intermediate 64 \
  --vocab 300 --heads 4 --kv-heads 1 --head-dim 32 --dtype f32 >/dev/null && ok || bad "preset 9b"
"$G" write-model --out "$T/pn" --preset qwen3-next-80b-a3b --layers 4 --hidden 16 --vocab 300 \
  --heads 2 --kv-heads 1 --head-dim 16 --intermediate 16 >/dev/null && ok || bad "preset next"
python3 - "$T/p9/config.json" "$T/pn/config.json" <<'PY' && ok || bad "preset configs"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert a["model_type"] == "qwen3_5_text" and a["attn_output_gate"] is True, a
for c in (a, b):
    assert (c["linear_num_key_heads"], c["linear_num_value_heads"], c["linear_key_head_dim"],
            c["linear_value_head_dim"], c["linear_conv_kernel_dim"]) == (16, 32, 128, 128, 4), c
    assert c["layer_types"] == ["linear_attention"] * 3 + ["full_attention"], c
    assert c["rope_parameters"]["rope_theta"] == 1e7 and c["rope_parameters"]["partial_rotary_factor"] == 0.25
assert b["model_type"] == "qwen3_next" and b["mlp_only_layers"] == [], b
assert (b["num_experts"], b["num_experts_per_tok"], b["moe_intermediate_size"],
        b["shared_expert_intermediate_size"], b["norm_topk_prob"]) == (512, 10, 512, 512, True), b
PY
for p in p9 pn; do
  "$G" generate --model "$T/$p" --tokens 1,2,3 -n 3 --ids --device cpu >/dev/null 2>&1 && ok \
    || bad "generate on preset $p"
done
"$G" write-model --help | grep -q "qwen3-next-80b-a3b" && ok || bad "write-model --help presets"

finish
