#!/usr/bin/env python3
"""PyTorch reference for bench/bench_attention.c: the same shapes through
torch.nn.functional.scaled_dot_product_attention (causal, bf16, 16 query heads, 8 KV heads,
head_dim 128, batch 1, T = 1k/4k/16k), alone and followed by a separate sigmoid-gate multiply
(headwise and elementwise), plus one-token decode against 4k and 32k cached tokens.

Same method as the C bench: warm-up, L2 flushed before every timed call (256 MiB zeroed;
with --flush read, 256 MiB read instead, which leaves L2 clean as after the weight reads of
a real decode step), median of repeats, CUDA events. TFLOP/s counts the causal half
(4*T^2*hd*heads/2); decode GB/s counts the K+V bytes read. Also times each SDPA backend PyTorch offers here (flash,
cuDNN, memory-efficient) so the default's choice is visible. Prints a markdown table.
Runs on the GPU machine (tools/gpu_attn.sh); not part of the build or the tests.
"""
import argparse
import statistics

import torch
import torch.nn.functional as F

HEADS, KV, HD = 16, 8, 128


def timed(fn, reps, flush):
    """Median ms of reps calls of fn, each after flush() (the L2 flush)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        flush()
        e0 = torch.cuda.Event(enable_timing=True)
        e1 = torch.cuda.Event(enable_timing=True)
        e0.record()
        fn()
        e1.record()
        e1.synchronize()
        times.append(e0.elapsed_time(e1))
    return statistics.median(times)


def sdpa(q, k, v, causal):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)


def backends():
    out = [("default", None)]
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        for name in ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION"):
            if hasattr(SDPBackend, name):
                out.append((name.lower(), lambda n=name: sdpa_kernel(getattr(SDPBackend, n))))
    except ImportError:
        pass
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--flush", choices=["memset", "read"], default="memset")
    ap.add_argument("--only", choices=["prefill", "decode"], default=None)
    args = ap.parse_args()
    dev = torch.device("cuda")
    buf = torch.empty(256 << 20, dtype=torch.uint8, device=dev)
    if args.flush == "read":
        def flush():
            torch.amax(buf.view(torch.int32))  # reads all of it, writes 4 bytes
    else:
        flush = buf.zero_
    p = torch.cuda.get_device_properties(dev)
    print(f"torch {torch.__version__} on {p.name} ({p.multi_processor_count} SMs); "
          f"heads {HEADS}/{KV}, head_dim {HD}, batch 1, median of {args.reps}\n")
    g = torch.Generator(device=dev).manual_seed(0)

    def randn(*shape, std=1.0):
        return (torch.randn(*shape, generator=g, device=dev) * std).to(torch.bfloat16)

    print(f"L2 flush before each call: {args.flush}\n")
    print("| kernel | T / cache | variant | ms | rate |\n|---|---|---|---|---|")
    for T in (1024, 4096, 16384) if args.only != "decode" else ():
        reps = args.reps if T < 16384 else min(args.reps, 10)
        q, k, v = randn(1, HEADS, T, HD), randn(1, KV, T, HD), randn(1, KV, T, HD)
        gh, ge = randn(1, HEADS, T, 1, std=2.0), randn(1, HEADS, T, HD, std=2.0)
        flops = 4.0 * T * T * HD * HEADS / 2
        for bname, ctx in backends():
            def run():
                if ctx is None:
                    return sdpa(q, k, v, True)
                with ctx():
                    return sdpa(q, k, v, True)
            try:
                ms = timed(run, reps, flush)
            except RuntimeError as e:  # backend not available for these inputs
                print(f"| sdpa | {T} | {bname}: unavailable ({str(e).splitlines()[0][:60]}) | | |")
                continue
            print(f"| sdpa | {T} | {bname} | {ms:.3f} | {flops / ms / 1e9:.1f} TFLOP/s |")
        for gname, gate in (("headwise", gh), ("elementwise", ge)):
            ms = timed(lambda: sdpa(q, k, v, True) * torch.sigmoid(gate), reps, flush)
            print(f"| sdpa + gate | {T} | default + {gname} sigmoid multiply | {ms:.3f} | "
                  f"{flops / ms / 1e9:.1f} TFLOP/s |")
        del q, k, v, gh, ge

    for L in (4096, 32768) if args.only != "prefill" else ():
        q, k, v = randn(1, HEADS, 1, HD), randn(1, KV, L, HD), randn(1, KV, L, HD)
        nbytes = 2.0 * KV * L * HD * 2
        for bname, ctx in backends():
            def run():
                if ctx is None:
                    return sdpa(q, k, v, False)
                with ctx():
                    return sdpa(q, k, v, False)
            try:
                ms = timed(run, args.reps, flush)
            except RuntimeError as e:
                print(f"| sdpa decode | {L} | {bname}: unavailable ({str(e).splitlines()[0][:60]}) | | |")
                continue
            print(f"| sdpa decode | {L} | {bname} | {ms:.4f} | {nbytes / ms / 1e6:.0f} GB/s |")


if __name__ == "__main__":
    main()
