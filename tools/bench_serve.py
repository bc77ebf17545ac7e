#!/usr/bin/env python3
"""Serving benchmark: one request set through `gattn serve` and/or transformers' continuous batching.

    python3 tools/bench_serve.py --model DIR [--gattn build/gattn] [--device cuda]
        [--rates 2,8,32] [--concurrency 64] [--requests 256] [--prompt-len 32:1024]
        [--max-tokens 32:256] [--backends gattn,transformers] [--client-procs N] [--json OUT.json]

The request set (seeded, the same for every backend and scenario): --requests prompts of token
ids drawn uniformly from the model's vocabulary (no tokenizer needed), lengths uniform in
--prompt-len, each with a max_tokens uniform in --max-tokens; every request is greedy and
ignores end-of-sequence ids, so each one produces exactly its max_tokens (checked).

Scenarios: for each --rates R, Poisson arrivals at R requests/s (exponential gaps, seeded);
for each --concurrency C, C clients that each send their next request when the previous one
ends. Each scenario runs the whole request set after a few warm-up requests. gattn's clients
run in --client-procs processes (default min(8, CPUs)) that share one start instant: a single
Python process reading 64 streams falls behind the server and measures its own lag.

Backends:
  gattn         starts `gattn serve --model DIR --port 0 --device D [--serve-args ...]`, reads
                its "listening on" line, streams POST /v1/completions (prompt as token ids,
                stream_options.include_usage, return_token_ids, ignore_eos), stops it with
                SIGINT. python3's standard library only (urllib/http.client and threads).
  transformers  (GPU machine: torch + transformers 5.x) loads the same model folder into
                transformers' Qwen3ForCausalLM (bf16, CUDA; gated variants get the output gate
                as tools/make_fixtures.py adds it) and runs the same requests through its
                ContinuousBatchingManager (model.init_continuous_batching, add_request with
                streaming=True, get_result), submitted on the same schedule.

Metrics per backend and scenario: requests/s and output tokens/s over the scenario's wall time
(first send to last token), time to first token (send to the first token-bearing event) and
inter-token latency (gaps between consecutive token-bearing events of a request; one event
usually carries one token) at p50/p90/p99, end-to-end latency. Printed as a markdown table and
written as JSON (--json).
"""
import argparse
import http.client
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time

# ---------------------------------------------------------------------------- the request set


def span(s):
    lo, _, hi = s.partition(":")
    lo, hi = int(lo), int(hi or lo)
    if lo < 1 or hi < lo:
        raise argparse.ArgumentTypeError(f"'{s}' is not LO:HI with 1 <= LO <= HI")
    return lo, hi


def numbers(kind):
    def parse(s):
        try:
            v = [kind(x) for x in s.split(",") if x]
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{s}' is not a comma-separated list")
        if any(x <= 0 for x in v):
            raise argparse.ArgumentTypeError(f"'{s}': values must be > 0")
        return v
    return parse


def make_requests(n, vocab, prompt_len, max_tokens, seed):
    rng = random.Random(seed)
    reqs = []
    for i in range(n):
        plen = rng.randint(*prompt_len)
        reqs.append({"index": i, "prompt": [rng.randrange(vocab) for _ in range(plen)],
                     "max_tokens": rng.randint(*max_tokens)})
    return reqs


def arrivals(n, rate, seed):
    """Send times (s after the start) of a Poisson process at `rate` requests/s."""
    rng = random.Random(seed * 7919 + int(rate * 1000))
    t, out = 0.0, []
    for _ in range(n):
        out.append(t)
        t += rng.expovariate(rate)
    return out

# ---------------------------------------------------------------------------- metrics


def percentile(xs, p):
    """Linear interpolation between closest ranks (numpy's default); None when empty."""
    if not xs:
        return None
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def steady_window(results, clients):
    """The part of a fixed-concurrency scenario in which all `clients` clients are busy, and the
    output tokens/s inside it: from the moment the clients-th first token arrives (the first wave
    has been prefilled) to the moment the first client has sent its last request (a process's
    clients share its queue, so that is the earliest of the processes' last send times; from
    then on a finished request is no longer replaced and the batch drains). What `gattn bench`
    measures offline at batch N is this steady state; the whole-run figure adds the ramp-up and
    the drain, which a longer run makes smaller. Client turnaround between requests stays
    inside the window: it is part of serving at fixed concurrency. None when the run is too short
    to have such a window."""
    done = [r for r in results if not r.get("error") and r["events"]]
    firsts = sorted(r["events"][0][0] for r in done)
    if clients < 1 or len(firsts) < clients:
        return None
    t_a = firsts[clients - 1]
    last_sent = {}
    for r in results:
        if r.get("sent") is not None:
            p = r.get("proc", 0)
            last_sent[p] = max(last_sent.get(p, r["sent"]), r["sent"])
    t_b = min(last_sent.values()) if last_sent else t_a
    if t_b <= t_a:
        return None
    tokens = sum(n for r in done for t, n in r["events"] if t_a <= t <= t_b)
    return {"window_s": t_b - t_a, "output_tokens": tokens,
            "output_tokens_per_s": tokens / (t_b - t_a)}


def summarise(backend, scenario, reqs, results, wall_s, clients=0):
    """results[i] = {"sent", "events": [(t, n_tokens)], "usage", "error"} for reqs[i]."""
    ttft, itl, e2e, errors = [], [], [], []
    out_tokens = in_tokens = ok = 0
    mismatched = 0
    for req, r in zip(reqs, results):
        if r.get("error"):
            errors.append(f"request {req['index']}: {r['error']}")
            continue
        got = sum(n for _, n in r["events"])
        usage = r.get("usage")
        if got != req["max_tokens"] or (usage is not None and usage != got):
            mismatched += 1
            errors.append(f"request {req['index']}: {got} tokens streamed, usage {usage}, "
                          f"max_tokens {req['max_tokens']}")
            continue
        ok += 1
        out_tokens += got
        in_tokens += len(req["prompt"])
        times = [t for t, _ in r["events"]]
        ttft.append(times[0] - r["sent"])
        itl += [b - a for a, b in zip(times, times[1:])]
        e2e.append(times[-1] - r["sent"])

    def pct(xs):
        out = {f"p{p}_ms": (None if percentile(xs, p) is None else percentile(xs, p) * 1e3)
               for p in (50, 90, 99)}
        out["mean_ms"] = sum(xs) / len(xs) * 1e3 if xs else None
        return out

    return {"backend": backend, "scenario": scenario, "requests": len(reqs), "completed": ok,
            "failed": len(reqs) - ok, "errors": errors[:20], "wall_s": wall_s,
            "input_tokens": in_tokens, "output_tokens": out_tokens,
            "requests_per_s": ok / wall_s if wall_s > 0 else None,
            "output_tokens_per_s": out_tokens / wall_s if wall_s > 0 else None,
            "ttft": pct(ttft), "itl": pct(itl), "e2e": pct(e2e), "itl_samples": len(itl),
            "steady": steady_window(results, clients) if clients else None}


def drive(reqs, scenario, send, seed, t0=None, at=None, clients=None):
    """Runs send(req, result) for every request on the scenario's schedule, one thread each;
    returns (results by request index, wall seconds from t0 to the last event). t0 (a
    time.perf_counter() instant, by default now), `at` (send times after t0, by default the
    scenario's Poisson arrivals) and `clients` (by default the scenario's concurrency) let
    drive_procs give each process its share of one schedule."""
    results = {req["index"]: {"events": [], "usage": None, "error": None, "sent": None}
               for req in reqs}
    kind, value = scenario
    if t0 is None:
        t0 = time.perf_counter()
    delay = t0 - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    if kind == "rate":
        if at is None:
            at = arrivals(len(reqs), value, seed)
        threads = []
        for req, a in zip(reqs, at):
            delay = t0 + a - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            th = threading.Thread(target=send, args=(req, results[req["index"]]), daemon=True)
            th.start()
            threads.append(th)
        for th in threads:
            th.join()
    else:
        todo = queue.Queue()
        for req in reqs:
            todo.put(req)

        def client():
            while True:
                try:
                    req = todo.get_nowait()
                except queue.Empty:
                    return
                send(req, results[req["index"]])

        n = int(value) if clients is None else clients
        threads = [threading.Thread(target=client, daemon=True) for _ in range(n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    last = max((r["events"][-1][0] for r in results.values() if r["events"]),
               default=time.perf_counter())
    return results, last - t0


def drive_procs(reqs, scenario, send, seed, procs):
    """drive() spread over `procs` client processes. One Python process cannot read 64 streams
    at a GPU's pace: its threads share one interpreter lock, fall a step or more behind, then
    read the queued events back to back (inter-token gaps of microseconds) and send their next
    request late. Request i goes to process i mod procs with its own send time (rate) or to one
    of that process's share of the clients (concurrency). All processes start at one
    time.perf_counter() instant: CLOCK_MONOTONIC, the same clock in every process on Linux."""
    kind, value = scenario
    procs = max(1, min(procs, len(reqs), int(value) if kind == "concurrency" else len(reqs)))
    at = arrivals(len(reqs), value, seed) if kind == "rate" else None
    if procs == 1:
        results, wall = drive(reqs, scenario, send, seed, at=at)
        for r in results.values():
            r["proc"] = 0
        return [results[r["index"]] for r in reqs], wall
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    t0 = time.perf_counter() + 0.5  # time for every process to be forked and waiting
    pipes, workers = [], []
    for p in range(procs):
        share = [i for i in range(len(reqs)) if i % procs == p]
        sub = [reqs[i] for i in share]
        sub_at = [at[i] for i in share] if at is not None else None
        clients = int(value) // procs + (1 if p < int(value) % procs else 0) \
            if kind == "concurrency" else None
        rx, tx = ctx.Pipe(duplex=False)

        def work(sub=sub, sub_at=sub_at, clients=clients, tx=tx):
            tx.send(drive(sub, scenario, send, seed, t0=t0, at=sub_at, clients=clients))
            tx.close()

        w = ctx.Process(target=work, daemon=True)
        w.start()
        tx.close()
        pipes.append(rx)
        workers.append(w)
    merged, wall = {}, 0.0
    for rx in pipes:  # every process measured from the same t0: the scenario ends with the last
        res, proc_wall = rx.recv()
        for i, r in res.items():
            r["proc"] = i % procs  # the process that sent it (steady_window needs it)
        merged.update(res)
        wall = max(wall, proc_wall)
    for w in workers:
        w.join()
    return [merged[r["index"]] for r in reqs], wall

# ---------------------------------------------------------------------------- gattn serve


class GattnServer:
    def __init__(self, args):
        cmd = [args.gattn, "serve", "--model", args.model, "--port", "0", "--device", args.device]
        cmd += args.serve_args.split() if args.serve_args else []
        self.log = open(args.server_log, "w") if args.server_log else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline().strip()  # blocks until ready (or exit)
        prefix = "listening on http://"
        if not line.startswith(prefix):
            self.proc.kill()
            raise RuntimeError(f"gattn serve did not start ({' '.join(cmd)}): printed '{line}'"
                               + (f", see {args.server_log}" if args.server_log else ""))
        host, _, port = line[len(prefix):].rpartition(":")
        self.host, self.port = host, int(port)

    def metrics(self):
        c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        out = {}
        for ln in text.splitlines():
            if ln.startswith("gattn_") and " " in ln:
                k, v = ln.rsplit(" ", 1)  # histogram buckets keep their {le="..."} in the key
                out[k] = float(v)
        return out

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.log is not subprocess.DEVNULL:
            self.log.close()


def server_itl(m0, m1):
    """The server's own inter-token latency over the scenario (its histogram's counts between
    the two /metrics reads): samples, and for p50/p90/p99 the upper bound of the bucket that
    holds the percentile (None past the last finite bound). Measured where each token is made,
    so a client that falls behind cannot inflate it: when it is far below the client's ITL, the
    load generator, not the server, is the bottleneck."""
    name = "gattn_inter_token_latency_seconds_bucket{le="
    bounds = sorted((float(k[len(name) + 1:-2]), k) for k in m1
                    if k.startswith(name) and "Inf" not in k)
    inf = name + '"+Inf"}'
    total = m1.get(inf, 0) - m0.get(inf, 0)
    out = {"samples": int(total)}
    for p in (50, 90, 99):
        le = None
        for b, k in bounds:  # cumulative counts
            if total > 0 and m1[k] - m0.get(k, 0) >= total * p / 100.0:
                le = b * 1e3
                break
        out[f"p{p}_le_ms"] = le
    return out


def engine_time(d, wall):
    """The server's engine loop over the scenario, from its counters' differences: the share of
    the wall time spent in prefill passes and decode steps (busy; the rest it waited for work),
    the mean decode step and the mean batch of a step, and the mixed steps (decode rows and
    prompt tokens in one pass; their time is split between prefill and decode by rows): their
    share of the decode steps and their mean time."""
    pre, dec = d.get("gattn_prefill_seconds_total", 0), d.get("gattn_decode_seconds_total", 0)
    steps, rows = d.get("gattn_decode_steps_total", 0), d.get("gattn_decode_rows_total", 0)
    mixed, mixed_s = d.get("gattn_mixed_steps_total", 0), d.get("gattn_mixed_seconds_total", 0)
    return {"busy": (pre + dec) / wall if wall > 0 else None,
            "mixed_steps": mixed / steps if steps else None,
            "mixed_step_ms": mixed_s / mixed * 1e3 if mixed else None,
            "prefill_share": pre / wall if wall > 0 else None,
            "decode_step_ms": dec / steps * 1e3 if steps else None,
            "mean_batch": rows / steps if steps else None,
            "decode_rows_per_s": rows / dec if dec > 0 else None}


def gattn_send(server, timeout):
    def send(req, res):
        body = json.dumps({"prompt": req["prompt"], "max_tokens": req["max_tokens"],
                           "temperature": 0, "stream": True,
                           "stream_options": {"include_usage": True},
                           "return_token_ids": True, "ignore_eos": True})
        try:
            c = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
            res["sent"] = time.perf_counter()
            c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            if r.status != 200:
                res["error"] = f"status {r.status}: {r.read()[:300]!r}"
                return
            done = False
            while True:
                line = r.readline()
                if not line:
                    break
                line = line.strip()
                if not line.startswith(b"data: "):
                    continue
                data = line[6:]
                if data == b"[DONE]":
                    done = True
                    break
                ev = json.loads(data)
                if ev.get("usage"):
                    res["usage"] = ev["usage"]["completion_tokens"]
                for ch in ev.get("choices", []):
                    n = len(ch.get("token_ids") or [])
                    if n:
                        res["events"].append((time.perf_counter(), n))
            c.close()
            if not done:
                res["error"] = "the stream ended without [DONE]"
        except Exception as e:  # noqa: BLE001 (one failed request must not end the run)
            res["error"] = f"{type(e).__name__}: {e}"
    return send


def run_gattn(args, reqs, scenarios):
    server = GattnServer(args)
    print(f"gattn serve on {server.host}:{server.port} ({args.device})", file=sys.stderr)
    rows = []
    try:
        send = gattn_send(server, args.timeout)
        if args.warmup:
            drive(reqs[:args.warmup], ("concurrency", args.warmup), send, args.seed)
        for sc in scenarios:
            m0 = server.metrics()
            results, wall = drive_procs(reqs, sc, send, args.seed, args.client_procs)
            m1 = server.metrics()
            row = summarise("gattn", scenario_name(sc), reqs, results, wall,
                            int(sc[1]) if sc[0] == "concurrency" else 0)
            # what the server saw during the scenario (counters: differences)
            row["server"] = {k: m1.get(k, 0) - m0.get(k, 0) for k in (
                "gattn_prefill_calls_total", "gattn_prefill_sequences_total",
                "gattn_prompt_tokens_total", "gattn_generation_tokens_total",
                "gattn_preemptions_total", "gattn_prefill_seconds_total",
                "gattn_decode_seconds_total", "gattn_decode_steps_total",
                "gattn_decode_rows_total", "gattn_mixed_steps_total",
                "gattn_mixed_seconds_total")}
            row["server_itl"] = server_itl(m0, m1)
            row["engine"] = engine_time(row["server"], wall)
            rows.append(row)
            report_row(row)
    finally:
        server.stop()
    return rows

# ---------------------------------------------------------------------------- transformers


def load_hf_model(folder, attn):
    """The gattn model folder in transformers' Qwen3ForCausalLM (bf16, CUDA). A gated variant
    (config.json headwise_/elementwise_attn_output_gate) gets tools/make_fixtures.py's SplitQProj
    and GatedOProj, whose parameters take q_proj.weight (query and gate rows, per KV group, as
    gattn stores them) and o_proj.weight."""
    import glob

    import torch
    from safetensors.torch import load_file
    from transformers import Qwen3Config, Qwen3ForCausalLM

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_fixtures import GatedOProj, SplitQProj

    raw = json.load(open(os.path.join(folder, "config.json")))
    mode = ("headwise" if raw.get("headwise_attn_output_gate") else
            "elementwise" if raw.get("elementwise_attn_output_gate") else "baseline")
    cfg = Qwen3Config.from_pretrained(folder)
    if raw.get("rope_scaling"):
        raise SystemExit("bench_serve: RoPE scaling is not carried over to transformers here")
    if getattr(cfg, "rope_parameters", None) is not None:
        cfg.rope_parameters = {"rope_type": "default", "rope_theta": float(raw["rope_theta"])}
    cfg._attn_implementation = attn
    with torch.device("cuda"):
        model = Qwen3ForCausalLM(cfg)
    model = model.to(device="cuda", dtype=torch.bfloat16)
    nh, nkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    if mode != "baseline":
        for layer in model.model.layers:
            attn_m = layer.self_attn
            store = {}
            sq = SplitQProj(cfg.hidden_size, nh, nkv, hd, mode, cfg.attention_bias, store)
            attn_m.q_proj = sq.to(device="cuda", dtype=torch.bfloat16)
            attn_m.o_proj = GatedOProj(attn_m.o_proj, nh, hd, mode, store)
    state = {}
    for f in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        state.update(load_file(f, device="cuda"))
    if mode != "baseline":
        state = {k.replace("self_attn.q_proj.", "self_attn.q_proj.lin.")
                  .replace("self_attn.o_proj.", "self_attn.o_proj.o."): v for k, v in state.items()}
    state = {k: v.to(torch.bfloat16) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (cfg.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise SystemExit(f"bench_serve: {folder} does not fit transformers' Qwen3: missing "
                         f"{missing[:5]}, unexpected {unexpected[:5]}")
    if cfg.tie_word_embeddings:
        model.tie_weights()
    model.eval()
    return model, mode


def run_transformers(args, reqs, scenarios):
    import torch
    import transformers
    from transformers.generation import ContinuousBatchingConfig, GenerationConfig

    if not torch.cuda.is_available():
        raise SystemExit("bench_serve: the transformers backend needs a CUDA device")
    model, mode = load_hf_model(args.model, args.hf_attn)
    print(f"transformers {transformers.__version__} ({mode}, attention {args.hf_attn})",
          file=sys.stderr)
    gen = GenerationConfig(max_new_tokens=max(r["max_tokens"] for r in reqs), do_sample=False,
                           eos_token_id=-1)
    cb = ContinuousBatchingConfig(**json.loads(args.hf_cb_config)) if args.hf_cb_config else None
    manager = model.init_continuous_batching(generation_config=gen, continuous_batching_config=cb)
    manager.start()
    rows = []
    try:
        def run(sub, sc):
            """Submits sub on the schedule of sc, one consumer collecting streamed outputs."""
            results = [{"events": [], "usage": None, "error": None, "sent": None} for _ in sub]
            by_id = {f"r{id(results)}-{i}": i for i in range(len(sub))}
            seen = {}
            left = [len(sub)]
            pending = queue.Queue()  # concurrency mode: requests not yet submitted
            lock = threading.Lock()

            def submit(i):
                res = results[i]
                res["sent"] = time.perf_counter()
                manager.add_request(input_ids=sub[i]["prompt"], request_id=f"r{id(results)}-{i}",
                                    max_new_tokens=sub[i]["max_tokens"], streaming=True,
                                    eos_token_id=-1)

            def consume():
                while left[0]:
                    out = manager.get_result(timeout=0.05)
                    if out is None or out.request_id not in by_id:
                        continue
                    i = by_id[out.request_id]
                    n = len(out.generated_tokens)
                    if n > seen.get(i, 0):
                        results[i]["events"].append((time.perf_counter(), n - seen.get(i, 0)))
                        seen[i] = n
                    if out.is_finished():
                        if getattr(out, "error", None):
                            results[i]["error"] = str(out.error)
                        results[i]["usage"] = n
                        with lock:
                            left[0] -= 1
                        try:
                            submit(pending.get_nowait())
                        except queue.Empty:
                            pass

            th = threading.Thread(target=consume, daemon=True)
            th.start()
            t0 = time.perf_counter()
            kind, value = sc
            if kind == "rate":
                for i, at in enumerate(arrivals(len(sub), value, args.seed)):
                    delay = t0 + at - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    submit(i)
            else:
                for i in range(len(sub)):
                    pending.put(i)
                for _ in range(min(int(value), len(sub))):
                    submit(pending.get_nowait())
            th.join()
            last = max((r["events"][-1][0] for r in results if r["events"]), default=t0)
            return results, last - t0

        if args.warmup:
            run(reqs[:args.warmup], ("concurrency", args.warmup))
        for sc in scenarios:
            results, wall = run(reqs, sc)
            row = summarise("transformers", scenario_name(sc), reqs, results, wall,
                            int(sc[1]) if sc[0] == "concurrency" else 0)
            row["transformers"] = transformers.__version__
            rows.append(row)
            report_row(row)
    finally:
        manager.stop(block=True)
    return rows

# ---------------------------------------------------------------------------- report


def scenario_name(sc):
    return f"rate {sc[1]:g}/s" if sc[0] == "rate" else f"{sc[1]} concurrent"


def fmt(x, d=1):
    return "-" if x is None else f"{x:.{d}f}"


def report_row(r):
    print(f"{r['backend']:12s} {r['scenario']:14s} {r['completed']}/{r['requests']} ok  "
          f"{fmt(r['requests_per_s'], 2)} req/s  {fmt(r['output_tokens_per_s'])} tok/s  "
          f"TTFT p50 {fmt(r['ttft']['p50_ms'])} ms  ITL p50 {fmt(r['itl']['p50_ms'])} "
          f"p99 {fmt(r['itl']['p99_ms'])} ms", file=sys.stderr)
    st = r.get("steady")
    if st:
        print(f"{'':12s} {'':14s} steady state (every client busy, {st['window_s']:.2f} s of the "
              f"run): {st['output_tokens_per_s']:.1f} tok/s", file=sys.stderr)
    si = r.get("server_itl")
    if si and si["samples"]:
        le = ["-" if si[k] is None else f"<= {si[k]:g}" for k in ("p50_le_ms", "p90_le_ms", "p99_le_ms")]
        print(f"{'':12s} {'':14s} the server's own ITL ({si['samples']} tokens): p50 {le[0]}, "
              f"p90 {le[1]}, p99 {le[2]} ms", file=sys.stderr)
    en = r.get("engine")
    if en and en["busy"] is not None and en["decode_step_ms"] is not None:
        print(f"{'':12s} {'':14s} the server's engine: busy {100 * en['busy']:.0f}% of the wall "
              f"time ({100 * en['prefill_share']:.0f}% prefill), decode step "
              f"{en['decode_step_ms']:.2f} ms at a mean batch of {en['mean_batch']:.1f} "
              f"({en['decode_rows_per_s']:.0f} rows/s)", file=sys.stderr)
        if en.get("mixed_step_ms") is not None:
            print(f"{'':12s} {'':14s} mixed steps (decode rows + prompt tokens in one pass): "
                  f"{100 * en['mixed_steps']:.0f}% of the decode steps, "
                  f"{en['mixed_step_ms']:.2f} ms each (their time is in both shares above, "
                  f"split by rows)", file=sys.stderr)


def table(rows):
    print("| backend | scenario | ok | req/s | out tok/s | TTFT p50/p90/p99 ms "
          "| ITL p50/p90/p99 ms | E2E p50 ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        t, i = r["ttft"], r["itl"]
        print(f"| {r['backend']} | {r['scenario']} | {r['completed']}/{r['requests']} "
              f"| {fmt(r['requests_per_s'], 2)} | {fmt(r['output_tokens_per_s'])} "
              f"| {fmt(t['p50_ms'])}/{fmt(t['p90_ms'])}/{fmt(t['p99_ms'])} "
              f"| {fmt(i['p50_ms'], 2)}/{fmt(i['p90_ms'], 2)}/{fmt(i['p99_ms'], 2)} "
              f"| {fmt(r['e2e']['p50_ms'])} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="the model folder (config.json, safetensors)")
    ap.add_argument("--backends", default="gattn", help="gattn, transformers or both (comma)")
    ap.add_argument("--gattn", default=os.environ.get("GA_CLI", "build/gattn"),
                    help="the gattn binary (default $GA_CLI or build/gattn)")
    ap.add_argument("--device", default="auto", help="gattn serve --device (cpu, cuda, auto)")
    ap.add_argument("--serve-args", default="",
                    help="more gattn serve options, e.g. '--max-batch 64 --kv-memory 20'")
    ap.add_argument("--server-log", help="gattn serve's stderr goes here")
    ap.add_argument("--rates", type=numbers(float), default=[],
                    help="Poisson arrival rates, requests/s (comma-separated)")
    ap.add_argument("--concurrency", type=numbers(int), default=[],
                    help="fixed numbers of concurrent clients (comma-separated)")
    ap.add_argument("--requests", type=int, default=128, help="requests per scenario")
    ap.add_argument("--prompt-len", type=span, default=(32, 512), help="LO:HI prompt tokens")
    ap.add_argument("--max-tokens", type=span, default=(32, 256), help="LO:HI output tokens")
    ap.add_argument("--warmup", type=int, default=4, help="untimed requests before the scenarios")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=600, help="seconds per request")
    ap.add_argument("--client-procs", type=int, default=min(8, os.cpu_count() or 1),
                    help="client processes for gattn's requests (default min(8, CPUs)): one\n"
                    "Python process falls behind 64 streams at a GPU's pace")
    ap.add_argument("--hf-attn", default="paged|sdpa",
                    help="transformers attention implementation (a paged one for its CB;\n"
                    "transformers 5 names them paged|sdpa, paged|flash_attention_2)")
    ap.add_argument("--hf-cb-config", default="",
                    help="JSON of ContinuousBatchingConfig fields, e.g. '{\"block_size\": 256}'")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    for b in backends:
        if b not in ("gattn", "transformers"):
            ap.error(f"--backends: '{b}' is not gattn or transformers")
    if args.requests < 1:
        ap.error("--requests must be >= 1")
    if args.client_procs < 1:
        ap.error("--client-procs must be >= 1")
    if args.warmup < 0 or args.warmup > args.requests:
        ap.error("--warmup must be in [0, --requests]")
    scenarios = [("rate", r) for r in args.rates] + [("concurrency", c) for c in args.concurrency]
    if not scenarios:
        ap.error("give --rates and/or --concurrency")
    try:
        config = json.load(open(os.path.join(args.model, "config.json")))
        vocab = int(config["vocab_size"])
    except (OSError, ValueError, KeyError) as e:
        ap.error(f"--model: cannot read {args.model}/config.json ({e})")
    reqs = make_requests(args.requests, vocab, args.prompt_len, args.max_tokens, args.seed)
    rows = []
    for b in backends:
        rows += run_gattn(args, reqs, scenarios) if b == "gattn" else \
            run_transformers(args, reqs, scenarios)
    table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": os.path.abspath(args.model), "device": args.device,
                       "serve_args": args.serve_args, "requests": args.requests,
                       "prompt_len": list(args.prompt_len), "max_tokens": list(args.max_tokens),
                       "seed": args.seed, "rows": rows,
                       "requested_output_tokens": sum(r["max_tokens"] for r in reqs),
                       "requested_input_tokens": sum(len(r["prompt"]) for r in reqs)},
                      f, indent=1)
    return 1 if any(r["failed"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
