#!/usr/bin/env python3
"""A small model folder with the config.json and tensor names of a released hybrid checkpoint.

make_folder.py CONFIG OUT [--vocab V --hidden H] [--set KEY=JSON ...] [--no-embed]
The text model's vocab_size and hidden_size are shrunk (eos to the last id; so the embedding stays small) and
everything else is kept; --set changes a field of the text model (text_config for a
vision-language wrapper; a null value deletes it). The safetensors file holds the embedding
under the name the family uses, one layer norm, and for the ignored groups one model.visual.*
and one mtp.* tensor. No weights beyond names and shapes: gattn does not bind or run these
models yet (issue 15), so this is all `gattn info` and the refusals read.
Standard library only (json, struct)."""
import argparse
import json
import os
import struct


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, shape in tensors:
        n = 2
        for d in shape:
            n *= d
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + n]}
        blobs.append(b"\0" * n)
        off += n
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--vocab", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--no-embed", action="store_true")
    a = ap.parse_args()
    cfg = json.load(open(a.config))
    wrapper = "text_config" in cfg
    text = cfg["text_config"] if wrapper else cfg
    text["vocab_size"], text["hidden_size"] = a.vocab, a.hidden
    for ids in (cfg, text):  # special token ids must stay inside the shrunk vocabulary
        if "eos_token_id" in ids:
            ids["eos_token_id"] = a.vocab - 1
        ids.pop("bos_token_id", None)
    for kv in a.set:
        k, v = kv.split("=", 1)
        v = json.loads(v)
        if v is None:
            text.pop(k, None)
        else:
            text[k] = v
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    pre = "model.language_model." if wrapper else "model."
    tensors = [] if a.no_embed else [(pre + "embed_tokens.weight", [a.vocab, a.hidden])]
    tensors += [(pre + "layers.0.input_layernorm.weight", [a.hidden]),
                ("lm_head.weight", [a.vocab, a.hidden]),
                ("mtp.fc.weight", [a.hidden, 2 * a.hidden])]
    if wrapper:
        tensors += [("model.visual.patch_embed.proj.weight", [4, 3]),
                    ("model.visual.merger.linear_fc1.weight", [4, 4])]
    write_safetensors(os.path.join(a.out, "model.safetensors"), tensors)


if __name__ == "__main__":
    main()
