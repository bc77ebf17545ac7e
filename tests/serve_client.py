#!/usr/bin/env python3
"""Concurrent load against a running `gattn serve`, checked against `gattn generate` (run by
tests/serve_cuda.sh; python3's standard library only, as the GPU machine has no node).

N requests (token-id prompts of mixed lengths, mixed max_tokens, temperature 0, half of them
streamed) are fired at once from N threads. Each answer must be complete (finish_reason,
usage, token_ids) and equal `gattn generate` of the same prompt alone on --device:

  --exact      every token equal (both sides run with --deterministic, see serve_cuda.sh);
  otherwise    equal up to the first difference, which is allowed only at a near tie: where
               the CPU's fp32 logits l at that position put the two tokens within
               |l_a - l_b| <= 4 * sqrt(2) * TOL_L2 * rms(l). Why: each GPU row is within TOL_L2
               rel L2 of the CPU's (tests/test_cuda_model.c), so its error has an rms over the
               vocabulary of at most TOL_L2 * rms(l); 4 such rms per token, sqrt(2) for two
               runs. Past the difference the runs continue from different tokens and are not
               compared. (A bound from the whole row's L2, TOL_L2 * ||l||_2, is sqrt(vocab)
               times looser: it let a model with another RoPE through on 25 of 32 requests.)

And the first token of each must be the CPU's greedy token (`gattn logits --device cpu`), or a
near tie by the same bound for one bf16 run (4 * TOL_L2 * rms(l)). On the CPU backend
(--device cpu) every comparison is exact. Exit 0 when all pass, 1 otherwise, with one line per
failure.

  serve_client.py --port P --cli build/gattn --model DIR [--device cuda] [--n 32]
                  [--max-prompt 300] [--gen-args "--deterministic"]
                  [--exact] [--paged]
"""
import argparse
import http.client
import json
import math
import random
import re
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

TOL_L2 = 2e-2  # tests/test_cuda_model.c: CUDA vs CPU logits, per row


def post(port, path, body, timeout=300):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = json.dumps(body)
    conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    res = conn.getresponse()
    text = res.read().decode("utf-8")
    conn.close()
    return res.status, text


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    res = conn.getresponse()
    text = res.read().decode("utf-8")
    conn.close()
    return res.status, text


def make_requests(n, vocab, seed, max_prompt):
    rnd = random.Random(seed)
    reqs = []
    for i in range(n):
        # mostly short prompts, every 8th long (several prefill chunks share a step)
        plen = 1 + rnd.randrange(max_prompt if i % 8 == 0 else min(60, max_prompt))
        body = {
            "prompt": [rnd.randrange(vocab) for _ in range(plen)],
            "max_tokens": 1 + rnd.randrange(40),
            "temperature": 0,
            "return_token_ids": True,
        }
        reqs.append({"body": body, "stream": i % 2 == 0})
    return reqs


def run_request(port, req):
    """One request -> dict(ids, text, finish, usage) or raises with what was wrong."""
    body = dict(req["body"])
    if req["stream"]:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    status, text = post(port, "/v1/completions", body)
    if status != 200:
        raise ValueError(f"HTTP {status}: {text[:300]}")
    if not req["stream"]:
        j = json.loads(text)
        c = j["choices"][0]
        if not isinstance(c.get("token_ids"), list):
            raise ValueError(f"no token_ids in {text[:200]}")
        return {"ids": c["token_ids"], "text": c["text"], "finish": c["finish_reason"],
                "usage": j.get("usage"), "prompt_ids": j.get("prompt_token_ids")}
    events = [e for e in text.split("\n\n") if e]
    if not events or events[-1] != "data: [DONE]":
        raise ValueError(f"stream does not end with [DONE]: {text[-200:]!r}")
    out = {"ids": [], "text": "", "finish": None, "usage": None, "prompt_ids": None}
    for e in events[:-1]:
        if not e.startswith("data: "):
            raise ValueError(f"not an SSE data line: {e[:100]!r}")
        j = json.loads(e[6:])
        if j.get("usage"):
            out["usage"] = j["usage"]
        if not j.get("choices"):
            continue
        c = j["choices"][0]
        out["ids"] += c.get("token_ids") or []
        out["text"] += c.get("text") or ""
        if j.get("prompt_token_ids"):
            out["prompt_ids"] = j["prompt_token_ids"]
        if c.get("finish_reason"):
            if out["finish"]:
                raise ValueError("two chunks carry a finish_reason")
            out["finish"] = c["finish_reason"]
    return out


def check_complete(req, got):
    """Problems with the answer's own consistency (empty list when fine)."""
    bad = []
    mt = req["body"]["max_tokens"]
    ids, finish, usage = got["ids"], got["finish"], got["usage"]
    if finish not in ("stop", "length"):
        bad.append(f"finish_reason {finish!r}")
    if finish == "length" and len(ids) != mt:
        bad.append(f"finish 'length' after {len(ids)} of max_tokens {mt}")
    if len(ids) > mt:
        bad.append(f"{len(ids)} tokens for max_tokens {mt}")
    if not usage:
        bad.append("no usage")
    else:
        want = {"prompt_tokens": len(req["body"]["prompt"]), "completion_tokens": len(ids)}
        want["total_tokens"] = want["prompt_tokens"] + want["completion_tokens"]
        for k, v in want.items():
            if usage.get(k) != v:
                bad.append(f"usage.{k} {usage.get(k)} != {v}")
    return bad


class Cli:
    def __init__(self, cli, model, device, gen_args):
        self.cli, self.model, self.device = cli, model, device
        self.gen_args = shlex.split(gen_args)
        self.cpu_cache = {}
        self.lock = threading.Lock()

    def generate(self, prompt, n):
        args = [self.cli, "generate", "--model", self.model, "--device", self.device, "--tokens",
                ",".join(map(str, prompt)), "-n", str(n), "--ids"] + self.gen_args
        out = subprocess.run(args, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"gattn generate exited {out.returncode}: {out.stderr.strip()}")
        s = out.stdout.strip()
        return [int(x) for x in s.split(",")] if s else []

    def cpu_logits(self, ids):
        """The CPU backend's fp32 logits of the last position of ids."""
        key = tuple(ids)
        with self.lock:
            if key in self.cpu_cache:
                return self.cpu_cache[key]
        args = [self.cli, "logits", "--model", self.model, "--device", "cpu", "--threads", "1",
                "--tokens", ",".join(map(str, ids))]
        out = subprocess.run(args, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"gattn logits exited {out.returncode}: {out.stderr.strip()}")
        row = json.loads(out.stdout.strip().splitlines()[-1])
        with self.lock:
            self.cpu_cache[key] = row
        return row


METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"'
                         r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? (\S+)$')


def parse_metrics(text):
    """Prometheus text format -> {name or name{labels}: float}; raises on a bad line."""
    out, typed = {}, set()
    for ln in text.splitlines():
        if not ln:
            continue
        if ln.startswith("#"):
            parts = ln.split(None, 3)
            if len(parts) < 3 or parts[1] not in ("HELP", "TYPE"):
                raise ValueError(f"bad comment line {ln!r}")
            if parts[1] == "TYPE":
                if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram",
                                                       "summary", "untyped"):
                    raise ValueError(f"bad TYPE line {ln!r}")
                typed.add(parts[2])
            continue
        m = METRIC_LINE.match(ln)
        if not m:
            raise ValueError(f"bad sample line {ln!r}")
        name = m.group(1)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in typed and base not in typed:
            raise ValueError(f"sample {name} has no TYPE line")
        out[name + (m.group(2) or "")] = float(m.group(4))  # ValueError if not a number
    return out


def check_metrics(port, paged):
    """/metrics parses, and the server is idle with nothing lost after the load."""
    status, text = get(port, "/metrics")
    if status != 200:
        return [f"/metrics: HTTP {status}"]
    try:
        m = parse_metrics(text)
    except ValueError as e:
        return [f"/metrics: {e}"]
    want = {"gattn_requests_running": 0, "gattn_requests_waiting": 0,
            "gattn_kv_paged": 1 if paged else 0}
    if paged:
        want["gattn_kv_blocks_used"] = 0
        # A preempted request is recomputed exactly (its prompt prefilled, its sent tokens
        # replayed by decode steps, src/engine/sched_cache.c), so exact runs may preempt; how
        # many did is printed (it depends on timing).
        print(f"serve_client: {m.get('gattn_preemptions_total', 0):.0f} preemptions")
    bad = [f"/metrics: {k} {m.get(k)}, want {v}" for k, v in want.items() if m.get(k) != v]
    hist = "gattn_time_to_first_token_seconds_count"
    if not m.get(hist):
        bad.append(f"/metrics: {hist} {m.get(hist)} after the load")
    return bad


def near_tie(row, a, b, runs):
    """|l_a - l_b| within 4 * sqrt(runs) * TOL_L2 * rms(l): what `runs` bf16 runs, each within
    TOL_L2 rel L2 of these logits, move one token's logit by at 4 sigma (see the top)."""
    rms = math.sqrt(sum(x * x for x in row) / len(row))
    bound = 4 * math.sqrt(runs) * TOL_L2 * rms
    return abs(row[a] - row[b]) <= bound, abs(row[a] - row[b]), bound


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=0, help="default: the model's config.json")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--max-prompt", type=int, default=300, help="longest prompt (max_tokens <= 40)")
    ap.add_argument("--gen-args", default="", help="more options for gattn generate")
    ap.add_argument("--exact", action="store_true", help="no near-tie allowance")
    ap.add_argument("--jobs", type=int, default=4, help="reference processes at once")
    ap.add_argument("--paged", action="store_true", help="the server has a paged KV cache")
    a = ap.parse_args()
    vocab = a.vocab
    if not vocab:
        with open(f"{a.model}/config.json") as f:
            vocab = json.load(f)["vocab_size"]
    exact = a.exact or a.device == "cpu"
    cli = Cli(a.cli, a.model, a.device, a.gen_args)
    reqs = make_requests(a.n, vocab, a.seed, a.max_prompt)

    # all at once: each thread waits at the barrier, then sends
    got = [None] * len(reqs)
    barrier = threading.Barrier(len(reqs))

    def client(i):
        barrier.wait()
        try:
            got[i] = run_request(a.port, reqs[i])
        except Exception as e:  # noqa: BLE001 - reported per request below
            got[i] = e

    t0 = time.time()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(reqs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_served = time.time() - t0

    # references, a few processes at a time
    t0 = time.time()
    with ThreadPoolExecutor(max_workers=a.jobs) as ex:
        refs = list(ex.map(lambda r: cli.generate(r["body"]["prompt"], r["body"]["max_tokens"]),
                           reqs))
    t_ref = time.time() - t0

    failures, ties = [], []
    for i, (req, g, ref) in enumerate(zip(reqs, got, refs)):
        tag = f"request {i} (prompt {len(req['body']['prompt'])}, max_tokens " \
              f"{req['body']['max_tokens']}, stream {req['stream']})"
        if isinstance(g, Exception):
            failures.append(f"{tag}: {g}")
            continue
        for p in check_complete(req, g):
            failures.append(f"{tag}: {p}")
        if g["prompt_ids"] is not None and g["prompt_ids"] != req["body"]["prompt"]:
            failures.append(f"{tag}: prompt_token_ids differ from the prompt")
        ids = g["ids"]
        if ids != ref:
            j = next((k for k in range(min(len(ids), len(ref))) if ids[k] != ref[k]), None)
            if j is None:  # one is a prefix of the other: a stop that the other did not make
                failures.append(f"{tag}: served {len(ids)} tokens, generate {len(ref)}: "
                                f"{ids} vs {ref}")
            elif exact:
                failures.append(f"{tag}: differs from gattn generate at token {j}: served "
                                f"{ids} generate {ref}")
            else:
                row = cli.cpu_logits(req["body"]["prompt"] + ids[:j])
                ok, gap, bound = near_tie(row, ids[j], ref[j], 2)
                msg = (f"{tag}: token {j} served {ids[j]} generate {ref[j]}, CPU logit gap "
                       f"{gap:.4g} (near-tie bound {bound:.4g})")
                (ties if ok else failures).append(msg)
        # the first token against the CPU's greedy one
        if ids:
            row = cli.cpu_logits(req["body"]["prompt"])
            best = max(range(len(row)), key=lambda k: row[k])
            if ids[0] != best:
                ok, gap, bound = near_tie(row, best, ids[0], 1)
                msg = (f"{tag}: first token {ids[0]}, the CPU's greedy {best}: logit gap "
                       f"{gap:.4g} (near-tie bound {bound:.4g})")
                (ties if ok and not a.device == "cpu" else failures).append(msg)
    failures += check_metrics(a.port, a.paged)
    for t in ties:
        print("near tie (allowed):", t)
    for f in failures:
        print("FAIL:", f, file=sys.stderr)
    tokens = sum(len(g["ids"]) for g in got if isinstance(g, dict))
    streamed = sum(1 for r in reqs if r["stream"])
    print(f"serve_client: {len(reqs)} concurrent requests ({streamed} streamed, {tokens} tokens) "
          f"in {t_served:.2f} s; references {t_ref:.1f} s; {'exact' if exact else 'bf16'} "
          f"comparison, {len(ties)} near ties, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
