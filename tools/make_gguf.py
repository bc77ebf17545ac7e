#!/usr/bin/env python3
"""Converts a baseline gattn / Hugging Face Qwen3 model folder into a GGUF for llama.cpp's
`qwen3` architecture, so llama.cpp can run the same model as `gattn bench` (issue 12):

    python3 tools/make_gguf.py --lcpp LCPP_SRC --model DIR --out X.gguf

LCPP_SRC is a llama.cpp source tree; its gguf-py package writes the file (we do not vendor
it). We do not use llama.cpp's convert_hf_to_gguf.py: its tokenizer check hashes the
pre-tokenizer's output and rejects our synthetic tokenizer. Needs only numpy, the standard
library and gguf-py: the safetensors are parsed here (8-byte little-endian header length, a
JSON header, raw tensor bytes) and memory-mapped, so a 3.4 GB model is not read into memory.

Matrices stay as stored (bf16 bits are copied, not rounded through fp32; f16/f32 likewise);
1-D tensors (the RMSNorm weights) become F32, which is exact and what llama.cpp's own
converter writes. Gated (headwise/elementwise), hybrid, FP8, biased and qk-norm-less folders
are refused: llama.cpp's qwen3 graph has none of those.
"""
import argparse
import json
import os
import sys
import types


def fail(msg):
    sys.stderr.write("make_gguf: %s\n" % msg)
    sys.exit(1)


def load_gguf(lcpp):
    sys.path.insert(0, os.path.join(lcpp, "gguf-py"))
    try:
        import yaml  # noqa: F401  (gguf.metadata imports it; we never use the metadata part)
    except ImportError:
        sys.modules["yaml"] = types.ModuleType("yaml")
    try:
        import gguf
    except ImportError as e:
        fail("cannot import gguf-py from %s/gguf-py: %s" % (lcpp, e))
    return gguf


# safetensors dtype -> (numpy dtype name, GGUF type name); bf16 is viewed as uint16 so its bits
# are kept exactly.
ST_DTYPES = {"BF16": ("uint16", "BF16"), "F16": ("float16", "F16"), "F32": ("float32", "F32")}


def read_safetensors(np, folder):
    """name -> (memory-mapped numpy array, safetensors dtype), over one file or shards."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for name in files:
        path = os.path.join(folder, name)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                fail("%s: shorter than a safetensors header" % path)
            n = int.from_bytes(head, "little")
            if n > os.path.getsize(path) - 8:
                fail("%s: header length %d past the end of the file" % (path, n))
            header = json.loads(f.read(n))
        for tname, info in header.items():
            if tname == "__metadata__":
                continue
            if info["dtype"] not in ST_DTYPES:
                fail("%s: %s is %s; only BF16, F16 and F32 are converted"
                     % (path, tname, info["dtype"]))
            dt = np.dtype(ST_DTYPES[info["dtype"]][0])
            begin, end = info["data_offsets"]
            shape = tuple(info["shape"])
            count = 1
            for d in shape:
                count *= d
            if end - begin != count * dt.itemsize:
                fail("%s: %s has %d bytes for shape %s" % (path, tname, end - begin, shape))
            arr = np.memmap(path, dtype=dt, mode="r", offset=8 + n + begin, shape=shape)
            out[tname] = (arr, info["dtype"])
    return out


def check_config(cfg):
    arch = cfg.get("model_type")
    if arch != "qwen3":
        fail("model_type %r: only baseline qwen3 folders convert (llama.cpp has no "
             "gated or hybrid qwen3 graph)" % arch)
    if cfg.get("headwise_attn_output_gate") or cfg.get("elementwise_attn_output_gate"):
        fail("gated attention folder: llama.cpp has no output gate; convert a baseline")
    if cfg.get("quantization_config"):
        fail("quantised (FP8) folder: convert a bf16 one")
    if cfg.get("attention_bias") or cfg.get("qkv_bias"):
        fail("projection biases: llama.cpp's qwen3 graph has none")
    if cfg.get("use_qk_norm") is False:
        fail("use_qk_norm false: llama.cpp's qwen3 graph always applies q/k norm")
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) not in (None, "default"):
        fail("rope_scaling %r is not converted" % rs)


def bpe_vocab(gguf, folder, vocab_size):
    """tokens, token types and merges: from tokenizer.json when there is one, else a byte-level
    vocabulary; padded to vocab_size with unused tokens (the embedding has vocab_size rows, and
    llama.cpp requires as many tokens)."""
    T = gguf.TokenType
    toks = [None] * vocab_size
    types_ = [T.UNUSED] * vocab_size
    merges = []
    path = os.path.join(folder, "tokenizer.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            tj = json.load(f)
        model = tj.get("model", {})
        if model.get("type") != "BPE":
            fail("%s: model type %r, expected BPE" % (path, model.get("type")))
        for piece, i in model["vocab"].items():
            if 0 <= i < vocab_size:
                toks[i], types_[i] = piece, T.NORMAL
        for m in model.get("merges", []):
            merges.append(m if isinstance(m, str) else " ".join(m))
        for a in tj.get("added_tokens", []):
            i = a["id"]
            if 0 <= i < vocab_size:
                toks[i] = a["content"]
                types_[i] = T.CONTROL if a.get("special") else T.USER_DEFINED
    else:
        # GPT-2's byte-to-unicode table: printable bytes stand for themselves, the others
        # map to 256 + n in order, so every byte is one visible character.
        keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
        extra = 0
        for b in range(256):
            if b in keep:
                ch = chr(b)
            else:
                ch = chr(256 + extra)
                extra += 1
            if b < vocab_size:
                toks[b], types_[b] = ch, T.NORMAL
    for i in range(vocab_size):
        if toks[i] is None:
            toks[i] = "[PAD%d]" % i
    if not merges:
        # llama.cpp's gpt2 vocabulary requires the merges key; one harmless merge of two byte
        # pieces (the result need not be a token) keeps the key non-empty.
        merges = ["%s %s" % (toks[0], toks[1])]
    return toks, types_, merges


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lcpp", required=True, help="llama.cpp source tree (for gguf-py)")
    ap.add_argument("--model", required=True, help="the model folder (config.json, safetensors)")
    ap.add_argument("--out", required=True, help="the GGUF file to write")
    a = ap.parse_args()

    path = os.path.join(a.model, "config.json")
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        fail("%s: %s" % (path, e))
    if not isinstance(cfg, dict):
        fail("%s: not a JSON object" % path)
    check_config(cfg)
    gguf = load_gguf(a.lcpp)
    import numpy as np

    tensors = read_safetensors(np, a.model)
    L = cfg["num_hidden_layers"]
    H = cfg["hidden_size"]
    n_head = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim", H // n_head)
    vocab = cfg["vocab_size"]
    tied = cfg.get("tie_word_embeddings", False) or "lm_head.weight" not in tensors

    # Hugging Face name -> llama.cpp name, and the shape the weight must have (rows, cols as
    # stored; GGUF lists dimensions innermost first, which gguf-py does by reversing).
    n_kv = cfg["num_key_value_heads"]
    ffn = cfg["intermediate_size"]
    plan = [("model.embed_tokens.weight", "token_embd.weight", (vocab, H)),
            ("model.norm.weight", "output_norm.weight", (H,))]
    if not tied:
        plan.append(("lm_head.weight", "output.weight", (vocab, H)))
    per_layer = [("input_layernorm", "attn_norm", (H,)),
                 ("self_attn.q_proj", "attn_q", (n_head * head_dim, H)),
                 ("self_attn.k_proj", "attn_k", (n_kv * head_dim, H)),
                 ("self_attn.v_proj", "attn_v", (n_kv * head_dim, H)),
                 ("self_attn.o_proj", "attn_output", (H, n_head * head_dim)),
                 ("self_attn.q_norm", "attn_q_norm", (head_dim,)),
                 ("self_attn.k_norm", "attn_k_norm", (head_dim,)),
                 ("post_attention_layernorm", "ffn_norm", (H,)),
                 ("mlp.gate_proj", "ffn_gate", (ffn, H)),
                 ("mlp.up_proj", "ffn_up", (ffn, H)),
                 ("mlp.down_proj", "ffn_down", (H, ffn))]
    for l in range(L):
        for hf, gg, shape in per_layer:
            plan.append(("model.layers.%d.%s.weight" % (l, hf), "blk.%d.%s.weight" % (l, gg),
                         shape))
    used = set(p[0] for p in plan)
    if tied:
        used.add("lm_head.weight")
    extra = sorted(set(tensors) - used)
    if extra:
        fail("tensors llama.cpp's qwen3 graph has no place for: %s" % ", ".join(extra[:4]))

    w = gguf.GGUFWriter(a.out, "qwen3")
    w.add_name(os.path.basename(os.path.normpath(a.model)))
    w.add_context_length(cfg.get("max_position_embeddings", 40960))
    w.add_embedding_length(H)
    w.add_block_count(L)
    w.add_feed_forward_length(ffn)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_freq_base(float(cfg.get("rope_theta", 1e6)))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)

    toks, ttypes, merges = bpe_vocab(gguf, a.model, vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(toks)
    w.add_token_types(ttypes)
    w.add_token_merges(merges)
    eos = cfg.get("eos_token_id")
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    if eos is None:
        eos = vocab - 1
    bos = cfg.get("bos_token_id")
    w.add_bos_token_id(bos if bos is not None else eos)
    w.add_eos_token_id(eos)
    w.add_add_bos_token(False)  # Qwen prompts start without a BOS token

    Q = gguf.GGMLQuantizationType
    for hf, gg, shape in plan:
        if hf not in tensors:
            fail("%s: missing" % hf)
        arr, st = tensors[hf]
        if tuple(arr.shape) != shape:
            fail("%s: shape %s, expected %s" % (hf, tuple(arr.shape), shape))
        if arr.ndim == 1:
            if st == "BF16":  # bf16 -> f32 is a 16-bit shift: exact
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            w.add_tensor(gg, np.ascontiguousarray(arr, dtype=np.float32))
        else:
            w.add_tensor(gg, arr, raw_dtype=getattr(Q, ST_DTYPES[st][1]))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("make_gguf: wrote %s (%d tensors, %s)" % (a.out, len(plan),
                                                    "tied" if tied else "untied"))


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError, KeyError, TypeError) as e:
        # a malformed folder (a missing or truncated file, a header without its fields): one
        # line and exit 1, never a traceback
        fail("%s: %s" % (type(e).__name__, e))
