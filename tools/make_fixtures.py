#!/usr/bin/env python3
"""Reference fixtures for gattn, made with Hugging Face transformers (an implementation we did
not write). Run on the GPU machine (it has torch + transformers 5.x):

    python3 tools/make_fixtures.py --out tests/fixtures
    python3 tools/make_fixtures.py --out tests/fixtures --only-hybrid   # tests/fixtures_hybrid

The hybrid cases (issue 15: Qwen3-Next, Qwen3.5 dense and MoE) need transformers >= 5.17 and
are described at write_hybrid_group.

For each case it builds a tiny model with transformers' own Qwen3ForCausalLM. Gated variants
are the same model with the output gate added exactly per the published layout, without
touching transformers' attention code:
  * q_proj gets extra rows: per KV head j, the G*head_dim query rows of heads jG..jG+G-1,
    then that group's gate rows (G headwise, G*head_dim elementwise, head-major);
  * a wrapper splits the projection's output into queries (what transformers' attention sees)
    and the raw gate, and a wrapper around o_proj multiplies each head's attention output by
    sigmoid(gate) before the projection.
Weights are saved as published checkpoints are (config.json + model.safetensors, or shards
with model.safetensors.index.json) and reference logits are computed in float64 from the
exact stored weights, for every position of fixed token sequences.
"""
import argparse
import json
import os
import sys

import torch
import torch.nn as nn
from safetensors.torch import save_file
import transformers
from transformers import Qwen3Config, Qwen3ForCausalLM

FORMAT_VERSION = 1


class SplitQProj(nn.Module):
    """q_proj with gate rows: returns the query part, stashes the raw gate."""

    def __init__(self, hidden, n_heads, n_kv, hd, mode, bias, store):
        super().__init__()
        self.n_heads, self.n_kv, self.hd, self.mode, self.store = n_heads, n_kv, hd, mode, store
        self.G = n_heads // n_kv
        self.gate_per_group = self.G if mode == "headwise" else self.G * hd
        rows = n_kv * (self.G * hd + self.gate_per_group)
        self.lin = nn.Linear(hidden, rows, bias=bias)

    def forward(self, x):
        y = self.lin(x)
        lead = y.shape[:-1]
        y = y.view(*lead, self.n_kv, self.G * self.hd + self.gate_per_group)
        q = y[..., : self.G * self.hd].reshape(*lead, self.n_heads * self.hd)
        g = y[..., self.G * self.hd :].reshape(*lead, self.n_kv * self.gate_per_group)
        self.store["gate"] = g
        return q


class GatedOProj(nn.Module):
    """o_proj preceded by the sigmoid output gate of each head."""

    def __init__(self, o, n_heads, hd, mode, store):
        super().__init__()
        self.o, self.n_heads, self.hd, self.mode, self.store = o, n_heads, hd, mode, store

    def forward(self, a):
        g = torch.sigmoid(self.store["gate"])
        if self.mode == "headwise":
            lead = a.shape[:-1]
            a = (a.view(*lead, self.n_heads, self.hd) * g.unsqueeze(-1)).reshape(*lead, -1)
        else:
            a = a * g
        return self.o(a)


def build(case):
    cfg = Qwen3Config(
        vocab_size=case["vocab"],
        hidden_size=case["hidden"],
        intermediate_size=case["inter"],
        num_hidden_layers=case["layers"],
        num_attention_heads=case["heads"],
        num_key_value_heads=case["kv_heads"],
        head_dim=case["head_dim"],
        max_position_embeddings=case.get("max_pos", 64),
        rms_norm_eps=1e-6,
        tie_word_embeddings=case["tied"],
        attention_bias=case.get("bias", False),
        initializer_range=case.get("init", 0.2),
    )
    theta = case.get("theta", 10000.0)
    rope = case.get("rope")  # a RoPE scaling (issue 14): {"rope_type": "yarn", "factor": ...}
    # transformers 5 keeps RoPE settings in rope_parameters; older versions in rope_theta and
    # rope_scaling.
    if getattr(cfg, "rope_parameters", None) is not None:
        cfg.rope_parameters = dict({"rope_type": "default", "rope_theta": theta}, **(rope or {}))
    elif rope:
        cfg.rope_scaling = dict(rope)
    cfg.rope_theta = theta
    cfg._attn_implementation = "eager"
    torch.manual_seed(case["seed"])
    model = Qwen3ForCausalLM(cfg).to(torch.float64)
    mode = case["variant"]
    hd, nh, nkv = case["head_dim"], case["heads"], case["kv_heads"]
    with torch.no_grad():
        # Random norm weights, so that a backend ignoring them fails the fixture.
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            if name.endswith(".bias"):
                p.copy_(0.3 * torch.randn_like(p))
        if mode != "baseline":
            for layer in model.model.layers:
                attn = layer.self_attn
                store = {}
                sq = SplitQProj(case["hidden"], nh, nkv, hd, mode, case.get("bias", False), store)
                sq = sq.to(torch.float64)
                # Keep the original query rows, interleaving fresh gate rows per KV group.
                G = nh // nkv
                gpg = sq.gate_per_group
                wq = attn.q_proj.weight.view(nkv, G * hd, -1)
                wg = torch.randn(nkv, gpg, wq.shape[-1], dtype=torch.float64) * case.get("init", 0.2)
                sq.lin.weight.copy_(torch.cat([wq, wg], dim=1).reshape(-1, wq.shape[-1]))
                if case.get("bias", False):
                    bq = attn.q_proj.bias.view(nkv, G * hd)
                    bg = 0.3 * torch.randn(nkv, gpg, dtype=torch.float64)
                    sq.lin.bias.copy_(torch.cat([bq, bg], dim=1).reshape(-1))
                attn.q_proj = sq
                attn.o_proj = GatedOProj(attn.o_proj, nh, hd, mode, store)
    model.eval()
    # Guard against a config field transformers did not honour: unscaled, the RoPE frequencies
    # must be exactly theta^(-2i/head_dim), as gattn computes them; scaled, the rotary module
    # must have taken the scaling's type (its frequencies go into the reference file).
    rot = model.model.rotary_emb
    inv = rot.inv_freq.to(torch.float64)
    want = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    if rope:
        assert getattr(rot, "rope_type", rope["rope_type"]) == rope["rope_type"], rot.rope_type
        # The module must hold what transformers' own function computes for this config. A
        # scaling may legitimately leave every frequency at its default (YaRN x8 over 8
        # positions at head_dim 16: the correction range is empty, every dimension
        # extrapolates) and act through the attention scaling alone, so "scaled" means the
        # frequencies or the scaling differ from the default.
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
        fresh, scaling = ROPE_INIT_FUNCTIONS[rope["rope_type"]](cfg, None)
        assert torch.allclose(inv, fresh.to(torch.float64), rtol=1e-6), (inv, fresh)
        assert abs(float(getattr(rot, "attention_scaling", 1.0)) - float(scaling)) < 1e-12
        assert not (torch.allclose(inv, want, rtol=1e-6) and abs(float(scaling) - 1.0) < 1e-12), \
            "the RoPE scaling was ignored"
    else:
        assert torch.allclose(inv, want, rtol=1e-6), (inv, want)
    return model, cfg


def export_state(model, case):
    """State dict under the published names (q_proj.lin.* -> q_proj.*, o_proj.o.* -> o_proj.*)."""
    out = {}
    for k, v in model.state_dict().items():
        k = k.replace("q_proj.lin.", "q_proj.").replace("o_proj.o.", "o_proj.")
        if case["tied"] and k == "lm_head.weight":
            continue
        out[k] = v
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--out-rope", help="folder of the RoPE-scaled fixtures "
                    "(default: fixtures_rope beside --out)")
    ap.add_argument("--out-hybrid", help="folder of the hybrid Qwen3-Next / Qwen3.5 fixtures "
                    "(default: fixtures_hybrid beside --out)")
    ap.add_argument("--only-hybrid", action="store_true",
                    help="write only the hybrid fixtures (issue 15)")
    args = ap.parse_args()
    hybrid_out = args.out_hybrid or os.path.join(os.path.dirname(os.path.abspath(args.out)),
                                                 "fixtures_hybrid")
    if args.only_hybrid:
        write_hybrid_group(hybrid_out)
        return
    base = dict(vocab=96, hidden=32, inter=64, layers=2, heads=4, head_dim=16)
    cases = [
        dict(name="baseline_g1_tied", variant="baseline", kv_heads=4, tied=True, seed=1),
        dict(name="baseline_g2_untied", variant="baseline", kv_heads=2, tied=False, seed=2),
        dict(name="headwise_g1_tied", variant="headwise", kv_heads=4, tied=True, seed=3),
        dict(name="headwise_g2_untied", variant="headwise", kv_heads=2, tied=False, seed=4),
        dict(name="elementwise_g1_tied", variant="elementwise", kv_heads=4, tied=True, seed=5),
        dict(name="elementwise_g2_untied", variant="elementwise", kv_heads=2, tied=False, seed=6),
        # attention_bias, G = 4, head_dim*heads != hidden, bf16 storage, sharded files
        dict(name="elementwise_g4_bias_bf16_sharded", variant="elementwise", kv_heads=1,
             tied=False, seed=7, bias=True, dtype="bf16", shards=2, theta=1000000.0),
        dict(name="headwise_g2_f16", variant="headwise", kv_heads=2, tied=True, seed=8,
             dtype="f16", layers=3),
        # head_dim 64, the smallest the CUDA attention kernels take (BF16 keeps them small)
        dict(name="baseline_hd64_bf16", variant="baseline", kv_heads=1, heads=2, head_dim=64,
             tied=True, seed=9, dtype="bf16", init=0.1),
        dict(name="headwise_hd64_bf16", variant="headwise", kv_heads=1, heads=2, head_dim=64,
             tied=False, seed=10, dtype="bf16", init=0.1),
        dict(name="elementwise_hd64_bf16", variant="elementwise", kv_heads=1, heads=2,
             head_dim=64, tied=True, seed=11, dtype="bf16", init=0.1),
    ]
    sequences = [
        [3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46, 26],
        [0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 1, 1, 0, 95, 95, 94, 7, 7, 7],
    ]
    failed = []

    def group(name, fn, *a):
        # One group's failure must not cost the others a GPU-machine run.
        try:
            fn(*a)
        except Exception as e:  # noqa: BLE001 - reported and turned into the exit status
            import traceback
            traceback.print_exc()
            failed.append(f"{name}: {type(e).__name__}: {e}")

    group("fixtures", write_group, args.out, base, cases, sequences)
    # RoPE-scaled models (issue 14), in their own folder so the unscaled set keeps its count:
    # sequences run well past original_max_position_embeddings. max_position_embeddings is
    # factor * original, so transformers 4.5x (which replaced factor by that ratio when
    # original_max_position_embeddings is given) and 5.x compute the same frequencies.
    rope_cases = [
        dict(name="yarn_x4_hd64_bf16", variant="headwise", kv_heads=1, heads=2, head_dim=64,
             tied=True, seed=21, dtype="bf16", init=0.1, max_pos=64,
             rope={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}),
        dict(name="yarn_x8_mscale_f32", variant="elementwise", kv_heads=2, tied=False, seed=22,
             max_pos=64, theta=1000000.0,
             rope={"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 8,
                   "beta_fast": 16, "beta_slow": 2, "mscale": 0.707, "mscale_all_dim": 1.0,
                   "truncate": False}),
        dict(name="linear_x2_f32", variant="baseline", kv_heads=2, tied=True, seed=23,
             max_pos=32, rope={"rope_type": "linear", "factor": 2.0}),
    ]
    long_seq = [(i * 37 + 11) % 96 for i in range(60)]
    group("fixtures_rope", write_group,
          args.out_rope or os.path.join(os.path.dirname(os.path.abspath(args.out)), "fixtures_rope"),
          base, rope_cases, [sequences[0], long_seq])
    group("fixtures_hybrid", write_hybrid_group, hybrid_out)
    if failed:
        sys.exit("make_fixtures: failed groups: " + "; ".join(failed))


# ---------------------------------------------------------------- hybrid models (issue 15)
#
# Tiny Qwen3-Next, Qwen3.5 (dense) and Qwen3.5-MoE models built with transformers' own classes
# (Qwen3NextForCausalLM / Qwen3NextConfig, Qwen3_5ForCausalLM / Qwen3_5TextConfig,
# Qwen3_5MoeForCausalLM / Qwen3_5MoeTextConfig; transformers >= 5.17). Every parameter is
# random, including the zero-centred norms (weight 0 would hide a missing "1 +"), A_log, dt_bias
# and the DeltaNet output norm, so every path of the forward pass changes the logits. Weights
# are saved with save_pretrained (the layout transformers writes, per-expert tensors included),
# and the reference logits are computed from exactly the stored values in float64: for every
# position after one prefill, and for each token of a prefill-then-decode run (the first
# `prefill` tokens at once, then one at a time through the cache), which must agree.

HYBRID_FORMAT_VERSION = 1


def hybrid_cases():
    common = dict(vocab_size=96, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                  head_dim=32, rms_norm_eps=1e-6, max_position_embeddings=128,
                  linear_conv_kernel_dim=4, linear_num_key_heads=2, linear_num_value_heads=4,
                  linear_key_head_dim=16, linear_value_head_dim=16, tie_word_embeddings=False)
    rope = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25}
    return [
        # 3 linear : 1 full twice; MoE on every layer but layer 2 (dense, mlp_only_layers)
        dict(name="qwen3_next_moe_f32", cls="Qwen3NextForCausalLM", cfg="Qwen3NextConfig",
             seed=31, dtype="f32",
             kw=dict(common, num_hidden_layers=8, intermediate_size=96, num_experts=8,
                     num_experts_per_tok=2, moe_intermediate_size=32,
                     shared_expert_intermediate_size=48, norm_topk_prob=True,
                     decoder_sparse_step=1, mlp_only_layers=[2], rope_parameters=rope)),
        dict(name="qwen3_5_dense_f32", cls="Qwen3_5ForCausalLM", cfg="Qwen3_5TextConfig",
             seed=32, dtype="f32",
             kw=dict(common, num_hidden_layers=8, intermediate_size=96,
                     rope_parameters=dict(rope, mrope_section=[2, 1, 1],
                                          mrope_interleaved=True))),
        dict(name="qwen3_5_dense_bf16_tied", cls="Qwen3_5ForCausalLM", cfg="Qwen3_5TextConfig",
             seed=33, dtype="bf16",
             kw=dict(common, num_hidden_layers=4, intermediate_size=96,
                     tie_word_embeddings=True, head_dim=64,
                     layer_types=["linear_attention", "full_attention", "linear_attention",
                                  "full_attention"],
                     rope_parameters=dict(rope, partial_rotary_factor=0.5))),
        dict(name="qwen3_5_moe_f32", cls="Qwen3_5MoeForCausalLM", cfg="Qwen3_5MoeTextConfig",
             seed=34, dtype="f32",
             kw=dict(common, num_hidden_layers=4, num_experts=8, num_experts_per_tok=3,
                     moe_intermediate_size=32, shared_expert_intermediate_size=48,
                     rope_parameters=rope)),
    ]


def randomise_hybrid(model, seed):
    """Random values for every parameter (norms, A_log and dt_bias included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if name.endswith("A_log"):
                p.copy_(torch.log(torch.rand(p.shape, generator=g, dtype=torch.float64) * 15 + 1))
            elif name.endswith("dt_bias"):
                p.copy_(0.5 * r)
            elif "norm" in name:
                p.copy_(0.2 * r)  # zero-centred norms: (1 + w); the gated DeltaNet norm: w
            else:
                p.copy_(0.08 * r)


def write_hybrid_group(out, prefill=5):
    os.makedirs(out, exist_ok=True)
    sequences = [
        [3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46, 26],
        [0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 1, 1, 0, 95, 95, 94, 7, 7, 7],
    ]
    index = []
    for case in hybrid_cases():
        cfg = getattr(transformers, case["cfg"])(**case["kw"])
        cfg._attn_implementation = "eager"
        # transformers 5.17 runs MoE experts through torch grouped_mm by default, which takes
        # no float64; the eager loop computes the same thing in any dtype.
        cfg._experts_implementation = "eager"
        model = getattr(transformers, case["cls"])(cfg).eval()
        if hasattr(model, "set_experts_implementation"):
            model.set_experts_implementation("eager")
        randomise_hybrid(model, case["seed"])
        tdt = {"f32": torch.float32, "bf16": torch.bfloat16}[case["dtype"]]
        # round to the stored dtype, then compute in float64 from exactly those values
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(tdt).to(p.dtype))
        d = os.path.join(out, case["name"])
        # model.to(bf16) also rounds the rotary embedding's inv_freq buffers (not saved: the
        # loader recomputes them in float32); put the float32 values back before computing
        buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
        model.to(tdt).save_pretrained(d, safe_serialization=True)
        model.to(torch.float64)
        with torch.no_grad():
            for n, b in model.named_buffers():
                if n in buffers:
                    b.copy_(buffers[n].to(b.dtype))
        for n, b in model.named_buffers():
            if n.endswith("inv_freq"):
                assert torch.equal(b, buffers[n].to(b.dtype)), n
        prefill_logits, decode_logits = [], []
        with torch.no_grad():
            for seq in sequences:
                ids = torch.tensor([seq])
                full = model(input_ids=ids, use_cache=False).logits[0]
                prefill_logits.append([[float(f"{x:.9g}") for x in row] for row in full])
                o = model(input_ids=ids[:, :prefill], use_cache=True)
                rows = list(o.logits[0])
                cache = o.past_key_values
                for t in range(prefill, len(seq)):
                    o = model(input_ids=ids[:, t:t + 1], past_key_values=cache, use_cache=True)
                    cache = o.past_key_values
                    rows.append(o.logits[0, -1])
                decode_logits.append([[float(f"{x:.9g}") for x in row] for row in rows])
        ref = {
            "format_version": HYBRID_FORMAT_VERSION,
            "generator": "tools/make_fixtures.py",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "class": case["cls"],
            "compute_dtype": "float64",
            "weights_dtype": case["dtype"],
            "sequences": sequences,
            "logits": prefill_logits,
            "decode_prefill": prefill,
            "decode_logits": decode_logits,
        }
        with open(os.path.join(d, "reference_logits.json"), "w") as f:
            json.dump(ref, f, separators=(",", ":"))
        index.append(case["name"])
        print(case["name"], "ok", file=sys.stderr)
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"format_version": HYBRID_FORMAT_VERSION,
                   "transformers": transformers.__version__, "torch": torch.__version__,
                   "cases": index}, f, indent=2)


def write_group(out, base, cases, sequences):
    os.makedirs(out, exist_ok=True)
    index = []
    for c in cases:
        case = dict(base)
        case.update(c)
        model, cfg = build(case)
        dtype = case.get("dtype", "f32")
        tdt = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[dtype]
        state = {k: v.to(tdt).contiguous() for k, v in export_state(model, case).items()}
        # The reference runs on exactly the stored weights, in float64.
        with torch.no_grad():
            exact = {k: v.to(torch.float64) for k, v in state.items()}
            named = dict(model.named_parameters())
            for k, p in named.items():
                kk = k.replace("q_proj.lin.", "q_proj.").replace("o_proj.o.", "o_proj.")
                if kk in exact:
                    p.copy_(exact[kk])
                elif case["tied"] and kk == "lm_head.weight":
                    p.copy_(exact["model.embed_tokens.weight"])
        d = os.path.join(out, case["name"])
        os.makedirs(d, exist_ok=True)
        names = sorted(state.keys())
        n_shards = case.get("shards", 1)
        if n_shards == 1:
            save_file(state, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        else:
            weight_map = {}
            per = (len(names) + n_shards - 1) // n_shards
            for s in range(n_shards):
                fn = f"model-{s + 1:05d}-of-{n_shards:05d}.safetensors"
                part = {k: state[k] for k in names[s * per:(s + 1) * per]}
                save_file(part, os.path.join(d, fn), metadata={"format": "pt"})
                for k in part:
                    weight_map[k] = fn
            total = sum(v.numel() * v.element_size() for v in state.values())
            with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
                json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        conf = cfg.to_dict()
        conf["architectures"] = ["Qwen3ForCausalLM"]
        conf["torch_dtype"] = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}[dtype]
        conf.pop("dtype", None)
        conf["rope_theta"] = case.get("theta", 10000.0)
        conf["headwise_attn_output_gate"] = case["variant"] == "headwise"
        conf["elementwise_attn_output_gate"] = case["variant"] == "elementwise"
        conf.pop("_attn_implementation", None)
        conf.pop("_attn_implementation_internal", None)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(conf, f, indent=2, sort_keys=True, default=str)
        logits = []
        with torch.no_grad():
            for seq in sequences:
                ids = torch.tensor([seq])
                y = model(input_ids=ids, use_cache=False).logits[0]  # not `out`: the folder
                logits.append([[float(x) for x in row] for row in y])
        ref = {
            "format_version": FORMAT_VERSION,
            # transformers' own RoPE frequencies and cos/sin scale, for a direct check
            "inv_freq": [float(x) for x in model.model.rotary_emb.inv_freq.to(torch.float64)],
            "attention_scaling": float(getattr(model.model.rotary_emb, "attention_scaling", 1.0)),
            "generator": "tools/make_fixtures.py",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "compute_dtype": "float64",
            "weights_dtype": dtype,
            "variant": case["variant"],
            "sequences": sequences,
            "logits": [[[float(f"{x:.9g}") for x in row] for row in seqlog] for seqlog in logits],
        }
        with open(os.path.join(d, "reference_logits.json"), "w") as f:
            json.dump(ref, f, separators=(",", ":"))
        index.append(case["name"])
        print(case["name"], "ok", file=sys.stderr)
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"format_version": FORMAT_VERSION, "transformers": transformers.__version__,
                   "torch": torch.__version__, "cases": index}, f, indent=2)


if __name__ == "__main__":
    main()
