// Load test for gattn serve (run by serve_load.sh): N concurrent clients on loopback, mixed
// prompt lengths, max_tokens, endpoints, greedy and seeded sampling, streaming and not. Every
// response must be complete and equal to the same request served alone, and a few must equal
// `gattn generate` for the same prompt. Node's own http module only.
"use strict";
const http = require("http");
const { execFileSync } = require("child_process");
const [port, cli, modelDir, nArg] = process.argv.slice(2);
const N = Number(nArg || 64);
let seed = 12345;
const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
const WORDS = ["the", "cat", "sat", "on", "a", "mat", "while", "code", "runs", "fast", "int", "x"];

function makeRequests() {
  const reqs = [];
  for (let i = 0; i < N; i++) {
    const sampled = i % 2 === 1;
    const body = { max_tokens: 1 + rnd(40), temperature: sampled ? 0.9 : 0, return_token_ids: true };
    if (sampled) Object.assign(body, { seed: 1000 + i, top_p: 0.95, top_k: 50 });
    let path = "/v1/completions";
    if (i % 4 === 3) {
      path = "/v1/chat/completions";
      const words = Array.from({ length: 1 + rnd(30) }, () => WORDS[rnd(WORDS.length)]);
      body.messages = [{ role: "user", content: words.join(" ") }];
    } else {
      body.prompt = Array.from({ length: 1 + rnd(i % 8 === 0 ? 300 : 60) }, () => rnd(1000));
    }
    reqs.push({ path, body, stream: i % 3 === 0 });
  }
  return reqs;
}

function post(path, body) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const r = http.request({ host: "127.0.0.1", port, path, method: "POST", agent: false,
      headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) } },
      (res) => { let s = ""; res.setEncoding("utf8"); res.on("data", (c) => (s += c));
        res.on("end", () => resolve({ status: res.statusCode, text: s })); });
    r.on("error", reject);
    r.end(data);
  });
}

// One request -> {ids, text, finish, usage}; checks the answer is complete.
async function run(req, stream) {
  const body = Object.assign({}, req.body, stream ? { stream: true, stream_options: { include_usage: true } } : {});
  const res = await post(req.path, body);
  if (res.status !== 200) throw new Error(`status ${res.status}: ${res.text}`);
  const chat = req.path.includes("chat");
  if (!stream) {
    const j = JSON.parse(res.text), c = j.choices[0];
    return { ids: c.token_ids, text: chat ? c.message.content : c.text, finish: c.finish_reason, usage: j.usage };
  }
  const events = res.text.split("\n\n").filter((e) => e.length);
  if (events[events.length - 1] !== "data: [DONE]") throw new Error("stream does not end with [DONE]");
  let ids = [], text = "", finish = null, usage = null;
  for (const e of events.slice(0, -1)) {
    if (!e.startsWith("data: ")) throw new Error(`not an SSE data line: ${e}`);
    const j = JSON.parse(e.slice(6));
    if (j.usage) { usage = j.usage; continue; }
    const c = j.choices[0];
    if (c.token_ids) ids = ids.concat(c.token_ids);
    text += chat ? (c.delta.content || "") : c.text;
    if (c.finish_reason) finish = c.finish_reason;
  }
  return { ids, text, finish, usage };
}

function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }

(async () => {
  const t0 = Date.now();
  const reqs = makeRequests();
  const alone = [];
  for (const r of reqs) alone.push(await run(r, false)); // one at a time: nothing beside it
  const t1 = Date.now();
  const together = await Promise.all(reqs.map((r) => run(r, r.stream)));
  const t2 = Date.now();
  let bad = 0;
  reqs.forEach((r, i) => {
    const a = alone[i], b = together[i];
    const complete = b.finish && b.usage && b.usage.completion_tokens === b.ids.length &&
      (b.finish !== "length" || b.ids.length === r.body.max_tokens);
    if (!complete || !same([a.ids, a.text, a.finish], [b.ids, b.text, b.finish])) {
      bad++;
      console.error(`request ${i} (${r.path}, stream ${r.stream}): alone ${JSON.stringify(a)} together ${JSON.stringify(b)}`);
    }
  });
  // Against the CLI: greedy and seeded completions with token-id prompts.
  let checked = 0;
  for (let i = 0; i < N && checked < 6; i++) {
    const r = reqs[i];
    if (!r.body.prompt) continue;
    const args = ["generate", "--model", modelDir, "--tokens", r.body.prompt.join(","), "-n",
      String(r.body.max_tokens), "--ids", "--threads", "1"];
    if (r.body.temperature > 0)
      args.push("--temp", String(r.body.temperature), "--seed", String(r.body.seed), "--top-p",
        String(r.body.top_p), "--top-k", String(r.body.top_k));
    const out = execFileSync(cli, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    const ids = out ? out.split(",").map(Number) : [];
    if (!same(ids, together[i].ids)) {
      bad++;
      console.error(`request ${i}: gattn generate ${out} but served ${JSON.stringify(together[i].ids)}`);
    }
    checked++;
  }
  const tokens = together.reduce((s, b) => s + b.ids.length, 0);
  console.log(`serve_load: ${N} requests (${tokens} tokens): alone ${t1 - t0} ms, concurrently ${t2 - t1} ms; ${checked} checked against gattn generate; ${bad} bad`);
  process.exit(bad ? 1 : 0);
})().catch((e) => { console.error("FAIL:", e.message); process.exit(1); });
