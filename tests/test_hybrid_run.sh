#!/usr/bin/env bash
# Hybrid models running on the CPU backend (issue 15), on synthetic folders from
# `gattn write-model --family` (no fixtures needed): for Qwen3.5 dense, Qwen3.5-MoE and
# Qwen3-Next (fused projections, a dense layer beside MoE ones),
#   * greedy generate equals full recompute: every generated token is the argmax of
#     `gattn logits --all` over prompt + generated (one prefill, no decode path);
#   * logits of one prefill equal logits after prefill + token-by-token decode (generate's last
#     step is compared through the argmax above; here the rows themselves, via logits of
#     growing prefixes);
#   * batch generate (--batch-file, max-batch 3) equals each prompt alone (--max-batch 1);
#   * experts stored packed (mlp.experts.gate_up_proj / down_proj, transformers 5.x's layout)
#     give bit-identical logits to the per-expert folder they were made from;
#   * binding errors: a missing tensor, a wrong shape, an unsupported dtype each fail with one
#     line naming the tensor, exit 1; --device cuda fails with one line (no GPU, or a GPU whose
#     hybrid backend does not take head_dim 32), --device auto runs on the CPU.
. "$(dirname "$0")/cli_harness.sh" hybrid-run

# st.py: stdlib-only safetensors surgery on a single-file folder.
cat >"$T/st.py" <<'PY'
import json, struct, sys
def read(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", None)
    data = b[8 + n:]
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in h.items()}
def write(p, t):
    header, blobs, off = {}, [], 0
    for k, (dt, shape, raw) in t.items():
        header[k] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    open(p, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
op, path = sys.argv[1], sys.argv[2]
t = read(path)
if op == "drop":
    del t[sys.argv[3]]
elif op == "transpose":  # same bytes, the two dims swapped
    dt, s, raw = t[sys.argv[3]]
    t[sys.argv[3]] = (dt, [s[1], s[0]], raw)
elif op == "dtype":
    dt, s, raw = t[sys.argv[3]]
    t[sys.argv[3]] = (sys.argv[4], s, raw)
elif op == "pack":  # per-expert -> mlp.experts.gate_up_proj (E, 2I, H) + down_proj (E, H, I)
    layers = sorted({k.split(".mlp.experts.")[0] for k in t if ".mlp.experts." in k})
    for L in layers:
        E = len({k for k in t if k.startswith(L + ".mlp.experts.") and k.endswith("gate_proj.weight")})
        gu, dn = b"", b""
        for e in range(E):
            g = t.pop(f"{L}.mlp.experts.{e}.gate_proj.weight")
            u = t.pop(f"{L}.mlp.experts.{e}.up_proj.weight")
            d = t.pop(f"{L}.mlp.experts.{e}.down_proj.weight")
            gu += g[2] + u[2]
            dn += d[2]
        I, H = g[1]
        t[L + ".mlp.experts.gate_up_proj"] = (g[0], [E, 2 * I, H], gu)
        t[L + ".mlp.experts.down_proj"] = (d[0], [E, H, I], dn)
write(path, t)
PY
ST() { python3 "$T/st.py" "$@" || bad "st.py $*"; }

# argmax.py LOGITS_FILE PROMPT_LEN GENERATED: row p-1+i of `logits --all` must argmax to gen[i]
cat >"$T/argmax.py" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
p, gen = int(sys.argv[2]), [int(x) for x in sys.argv[3].split(",")]
got = [max(range(len(r)), key=r.__getitem__) for r in rows[p - 1:p - 1 + len(gen)]]
assert got == gen, (got, gen)
PY

PROMPT=3,14,15,92,65,35,89,79
for f in qwen3_5 qwen3_5_moe qwen3_next; do
  M=$T/$f
  "$G" write-model --out "$M" --family "$f" --layers 8 --hidden 64 --heads 4 --kv-heads 2 \
    --head-dim 32 --intermediate 96 --vocab 300 --init-std 0.3 --seed 7 --tokenizer \
    >/dev/null || bad "write-model --family $f"
  "$G" info --model "$M" | grep -q "^runs             on the CPU backend" && ok || bad "info $f runs"

  # greedy decode == full recompute
  gen=$("$G" generate --model "$M" --tokens $PROMPT -n 12 --ids --device cpu 2>/dev/null) \
    || bad "generate $f"
  [ "$(echo "$gen" | tr ',' '\n' | sort -u | wc -l)" -gt 2 ] && ok || bad "$f: degenerate output $gen"
  "$G" logits --model "$M" --tokens "$PROMPT,$gen" --all --device cpu >"$T/l" || bad "logits $f"
  python3 "$T/argmax.py" "$T/l" 8 "$gen" && ok || bad "$f: greedy decode != recompute"

  # one prefill == prefix prefills: the logits of the last token of each prefix equal row k of
  # the full --all run (state carried through the DeltaNet recurrence either way)
  for k in 1 4 8; do
    pre=$(echo "$PROMPT" | cut -d, -f1-$k)
    "$G" logits --model "$M" --tokens "$pre" --device cpu >"$T/one" || bad "logits prefix $k"
    cmp -s "$T/one" <(sed -n "${k}p" "$T/l") && ok || bad "$f: prefix $k logits differ from --all row"
  done

  # batch == single
  printf '"hello"\n"abc def"\n"x"\n"a longer prompt than the others"\n' >"$T/b"
  "$G" generate --model "$M" --batch-file "$T/b" -n 6 --max-batch 3 --device cpu >"$T/g3" 2>/dev/null \
    || bad "batch $f"
  "$G" generate --model "$M" --batch-file "$T/b" -n 6 --max-batch 1 --device cpu >"$T/g1" 2>/dev/null \
    || bad "single $f"
  [ -s "$T/g3" ] && cmp -s "$T/g1" "$T/g3" && ok || bad "$f: batch != single"

  # --device cuda: these folders' head_dim 32 is below what the hybrid CUDA backend's attention
  # takes (64/128/256), so with a GPU the one-line refusal naming the backend and --device cpu,
  # without one the usual no-GPU error; --device auto runs them (on the CPU) either way
  if "$G" logits --model "$M" --tokens 1,2 --device cuda >"$T/cu" 2>"$T/cu.err"; then
    bad "$f: --device cuda ran a head_dim the CUDA attention does not take"
  else
    grep -qE "no CUDA GPU is available|this build of gattn has no CUDA backend|hybrid CUDA backend.*--device cpu" "$T/cu.err" \
      && [ "$(wc -l <"$T/cu.err")" -eq 1 ] && ok || bad "$f: --device cuda: $(cat "$T/cu.err")"
  fi
  "$G" logits --model "$M" --tokens 1,2 --device auto >"$T/au" 2>/dev/null && [ -s "$T/au" ] \
    && ok || bad "$f: --device auto did not fall back to the CPU"
done

# packed experts: same numbers
cp -r "$T/qwen3_5_moe" "$T/packed"
ST pack "$T/packed/model.safetensors"
"$G" logits --model "$T/qwen3_5_moe" --tokens $PROMPT --all >"$T/a" || bad "logits per-expert"
"$G" logits --model "$T/packed" --tokens $PROMPT --all >"$T/b2" || bad "logits packed"
[ -s "$T/a" ] && cmp -s "$T/a" "$T/b2" && ok || bad "packed experts give other logits"
"$G" info --model "$T/packed" | grep -q "bound by name and shape" && ok || bad "info packed"

# binding errors: one line naming the tensor (and the file for a found one), exit 1
bind_case() { # NAME ST-ARGS... -- NEEDLE
  local name=$1; shift
  local args=()
  while [ "$1" != "--" ]; do args+=("$1"); shift; done
  shift
  rm -rf "$T/$name"
  cp -r "$T/qwen3_next" "$T/$name"
  ST "${args[0]}" "$T/$name/model.safetensors" "${args[@]:1}"
  expect_exit 1 "$1" "$G" logits --model "$T/$name" --tokens 1,2 --device cpu
  expect_exit 1 "$1" "$G" generate --model "$T/$name" --tokens 1,2 -n 2 --device cpu
}
bind_case miss drop model.layers.3.self_attn.k_norm.weight -- \
  'missing tensor "model.layers.3.self_attn.k_norm.weight" (expected shape (32))'
bind_case miss2 drop model.layers.1.mlp.experts.7.down_proj.weight -- \
  'missing tensor "model.layers.1.mlp.experts.7.down_proj.weight" (expected shape (64, 24))'
bind_case shape transpose model.layers.0.linear_attn.in_proj_qkvz.weight -- \
  'model.safetensors: tensor "model.layers.0.linear_attn.in_proj_qkvz.weight": expected shape (192, 64), found (64, 192)'
bind_case dtype dtype model.layers.2.linear_attn.A_log I32 -- \
  'tensor "model.layers.2.linear_attn.A_log": dtype I32 is not supported'
# info still describes a folder that does not bind, and names the tensor in its runs line
"$G" info --model "$T/miss" >"$T/i" && ok || bad "info on a folder missing a tensor"
grep -q '^runs             no: .*missing tensor "model.layers.3.self_attn.k_norm.weight"' "$T/i" \
  && ok || bad "info runs line: $(cat "$T/i")"

finish
