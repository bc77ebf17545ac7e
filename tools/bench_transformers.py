#!/usr/bin/env python3
"""Hugging Face transformers at gattn bench's shape, for the comparison in bench/RESULTS.md.
Run on the GPU machine (torch + transformers 5.x), in the same device call as `gattn bench`:

    python3 tools/bench_transformers.py [--json OUT.json] [--variants baseline,headwise,elementwise]

For each variant it builds transformers' own Qwen3ForCausalLM at the paper's 1.7B shape
(hidden 2048, 28 layers, 16/8 heads, head_dim 128, intermediate 6144, vocab 151936, tied)
with random bf16 weights on the GPU; gated variants get the output gate exactly as
tools/make_fixtures.py adds it (its SplitQProj / GatedOProj: q_proj grows the gate rows per KV
group, o_proj multiplies each head's output by sigmoid(gate) first). Then it measures, with
CUDA events, warm-up and repetitions:
  * prefill of --prefill tokens at each --prefill-batch (a forward that fills a fresh
    cache (the model's own kind: hybrids need their linear-attention layers) and computes the last position's logits, as gattn's prefill does);
  * greedy decode of --decode-tokens tokens at each --decode-batch from an empty cache
    (context depth 0): one forward per token with the cache, argmax on the device.
It prints a markdown table and writes JSON. Attention is PyTorch SDPA (--attn to change).

With --model DIR (repeatable) it loads those folders instead, as they are, with
AutoModelForCausalLM in bf16 (e.g. the hybrid presets `gattn write-model --preset
qwen3.5-0.8b | qwen3.5-9b | qwen3-next-80b-a3b` write, for issue 15's same-run figures), and
labels each row with the folder's name; the shape options are then ignored.
"""
import argparse
import json
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import GatedOProj, SplitQProj  # noqa: E402  (the gate as the fixtures add it)

import transformers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)


def ints(s):
    return [int(x) for x in s.split(",") if x]


def load_folder(args, path):
    """A model folder as published (or as gattn write-model writes it), bf16 on the GPU."""
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16,
                                                 attn_implementation=args.attn)
    return model.to("cuda").eval()


def vocab_of(model):
    cfg = model.config
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    return text.vocab_size


def build(args, mode):
    if args.model:
        return load_folder(args, mode)
    cfg = Qwen3Config(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        head_dim=args.head_dim,
        max_position_embeddings=40960,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        attention_bias=False,
    )
    if getattr(cfg, "rope_parameters", None) is not None:
        cfg.rope_parameters = {"rope_type": "default", "rope_theta": 1000000.0}
    cfg.rope_theta = 1000000.0
    cfg._attn_implementation = args.attn
    torch.manual_seed(0)
    # Initialised in fp32 on the GPU (transformers' own init), then cast, as loading a bf16
    # checkpoint with torch_dtype=bfloat16 would leave it.
    with torch.device("cuda"):
        model = Qwen3ForCausalLM(cfg)
    model = model.to(device="cuda", dtype=torch.bfloat16)
    hd, nh, nkv = args.head_dim, args.heads, args.kv_heads
    if mode != "baseline":
        with torch.no_grad():
            for layer in model.model.layers:
                attn = layer.self_attn
                store = {}
                sq = SplitQProj(args.hidden, nh, nkv, hd, mode, False, store)
                sq = sq.to(device="cuda", dtype=torch.bfloat16)
                G = nh // nkv
                wq = attn.q_proj.weight.view(nkv, G * hd, -1)
                wg = torch.randn(nkv, sq.gate_per_group, wq.shape[-1], device="cuda",
                                 dtype=torch.bfloat16) * 0.02
                sq.lin.weight.copy_(torch.cat([wq, wg], dim=1).reshape(-1, wq.shape[-1]))
                attn.q_proj = sq
                attn.o_proj = GatedOProj(attn.o_proj, nh, hd, mode, store)
    model.eval()
    return model


def forward(model, ids, cache):
    """One forward with the cache, logits of the last position only when supported. cache None:
    the model makes its own (returned as .past_key_values). A bare DynamicCache() has no
    linear-attention layers, so hybrid models (Qwen3.5, Qwen3-Next) need the model's own one."""
    try:
        return model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
    except TypeError:  # older transformers: num_logits_to_keep or nothing
        return model(input_ids=ids, past_key_values=cache, use_cache=True)


def timed(fn, warmup, reps):
    """Milliseconds per call (CUDA events), after warm-up."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b))
    return out


def row(variant, test, batch, tokens, ms, work_tokens):
    mean = statistics.mean(ms)
    return {
        "variant": variant, "test": test, "batch": batch, "tokens": tokens, "reps": len(ms),
        "mean_ms": mean, "min_ms": min(ms), "max_ms": max(ms),
        "std_ms": statistics.stdev(ms) if len(ms) > 1 else 0.0,
        "tokens_per_s": work_tokens / (mean / 1e3),
    }


@torch.no_grad()
def bench_variant(args, mode):
    model = build(args, mode)
    vocab = vocab_of(model)
    params = sum(p.numel() for p in model.parameters())
    if args.model:
        mode = os.path.basename(os.path.normpath(mode))
    print(f"{mode}: {params / 1e9:.3f} B parameters", file=sys.stderr)
    rows = []
    gen = torch.Generator(device="cuda").manual_seed(1)
    for B in args.prefill_batch:
        ids = torch.randint(0, vocab, (B, args.prefill), device="cuda", generator=gen)

        def prefill():
            forward(model, ids, None)

        try:
            ms = timed(prefill, args.warmup, args.reps)
            rows.append(row(mode, "prefill", B, args.prefill, ms, B * args.prefill))
        except torch.cuda.OutOfMemoryError as e:
            print(f"{mode} prefill batch {B}: out of memory ({e})", file=sys.stderr)
        torch.cuda.empty_cache()
    for B in args.decode_batch:
        start = torch.randint(0, vocab, (B, 1), device="cuda", generator=gen)

        def decode():
            cache = None
            tok = start
            for _ in range(args.decode_tokens):
                out = forward(model, tok, cache)
                cache = out.past_key_values
                tok = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)

        try:
            ms = timed(decode, args.warmup, args.reps)
            rows.append(row(mode, "decode", B, args.decode_tokens, ms, B * args.decode_tokens))
        except torch.cuda.OutOfMemoryError as e:
            print(f"{mode} decode batch {B}: out of memory ({e})", file=sys.stderr)
        torch.cuda.empty_cache()
    peak = torch.cuda.max_memory_allocated() / 2**30
    for r in rows:
        r["peak_mem_gib"] = peak
    del model
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default="baseline,headwise,elementwise")
    ap.add_argument("--model", action="append", default=[],
                    help="benchmark this model folder instead (repeatable); rows take its name")
    ap.add_argument("--prefill", type=int, default=2048)
    ap.add_argument("--prefill-batch", type=ints, default=[1, 8])
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--decode-batch", type=ints, default=[1, 32])
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--attn", default="sdpa", help="transformers attention implementation")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--layers", type=int, default=28)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--intermediate", type=int, default=6144)
    ap.add_argument("--vocab", type=int, default=151936)
    args = ap.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in ("baseline", "headwise", "elementwise"):
            ap.error(f"--variants: '{v}' is not baseline, headwise or elementwise")
    for d in args.model:
        if not os.path.isfile(os.path.join(d, "config.json")):
            ap.error(f"--model: {d} has no config.json")
    if args.model:
        variants = args.model
    if not torch.cuda.is_available():
        print("bench_transformers: no CUDA device", file=sys.stderr)
        return 1
    torch.backends.cuda.matmul.allow_tf32 = True
    rows = []
    for v in variants:
        rows += bench_variant(args, v)
    base = {(r["test"], r["batch"]): r["mean_ms"] for r in rows if r["variant"] == "baseline"}
    for r in rows:
        b = base.get((r["test"], r["batch"]))
        r["overhead_pct"] = None if r["variant"] == "baseline" or not b else (r["mean_ms"] / b - 1) * 100
    dev = torch.cuda.get_device_name(0)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, {dev}, "
          f"attention {args.attn}, {args.warmup} warm-up + {args.reps} timed repetitions\n")
    print("| variant | test | batch | tokens | mean ms | min-max ms | tokens/s | vs baseline | peak mem GiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ovh = "-" if r["overhead_pct"] is None else f"{r['overhead_pct']:+.1f}%"
        print(f"| {r['variant']} | {r['test']} | {r['batch']} | {r['tokens']} | {r['mean_ms']:.2f} "
              f"| {r['min_ms']:.2f}-{r['max_ms']:.2f} | {r['tokens_per_s']:.1f} | {ovh} "
              f"| {r['peak_mem_gib']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"transformers": transformers.__version__, "torch": torch.__version__,
                       "device": dev, "attention": args.attn,
                       "shape": {"models": args.model} if args.model else
                                {"layers": args.layers, "hidden": args.hidden, "heads": args.heads,
                                 "kv_heads": args.kv_heads, "head_dim": args.head_dim,
                                 "intermediate": args.intermediate, "vocab": args.vocab,
                                 "tied": True},
                       "warmup": args.warmup, "reps": args.reps, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
