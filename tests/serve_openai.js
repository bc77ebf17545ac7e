// gattn serve through the official `openai` npm client (run by serve_openai.sh): completions,
// chat, streaming, token-id prompts, logprobs, the model list, and errors as APIError.
"use strict";
const assert = require("assert");
const [openaiDir, port] = process.argv.slice(2);
const OpenAI = require(require.resolve("openai", { paths: [openaiDir] }));
const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "sekret", maxRetries: 0 });

(async () => {
  const models = await client.models.list();
  assert.deepStrictEqual(models.data.map((m) => m.id), ["tiny"]);

  const c = await client.completions.create({ model: "tiny", prompt: "Once upon", max_tokens: 10, temperature: 0 });
  assert.strictEqual(c.object, "text_completion");
  assert.strictEqual(c.choices[0].finish_reason, "length");
  assert.strictEqual(c.usage.completion_tokens, 10);
  assert.ok(c.choices[0].text.length > 0);

  // token-id prompt, vLLM's return_token_ids, logprobs
  const ids = await client.completions.create({ model: "tiny", prompt: [5, 6, 7, 8], max_tokens: 6,
    temperature: 0, logprobs: 3, return_token_ids: true });
  const ch = ids.choices[0];
  assert.strictEqual(ch.token_ids.length, 6);
  assert.deepStrictEqual(ch.prompt_token_ids, [5, 6, 7, 8]);
  assert.strictEqual(ch.logprobs.tokens.length, 6);
  ch.logprobs.token_logprobs.forEach((lp, i) => {
    assert.ok(lp <= 0);
    const top = Object.values(ch.logprobs.top_logprobs[i]);
    assert.ok(top.length >= 1 && top.length <= 3);
    assert.ok(Math.abs(Math.max(...top) - lp) < 1e-6, "greedy picks the most likely token");
  });

  // streaming completions equal the plain answer
  let text = "", fin = null;
  const s = await client.completions.create({ model: "tiny", prompt: "Once upon", max_tokens: 10, temperature: 0, stream: true });
  for await (const chunk of s) { text += chunk.choices[0].text; fin = chunk.choices[0].finish_reason || fin; }
  assert.strictEqual(text, c.choices[0].text);
  assert.strictEqual(fin, "length");

  // chat, plain and streamed
  const msgs = [{ role: "system", content: "You are terse." }, { role: "user", content: "Say hi" }];
  const chat = await client.chat.completions.create({ model: "tiny", messages: msgs, max_tokens: 8, temperature: 0, seed: 3 });
  assert.strictEqual(chat.object, "chat.completion");
  assert.strictEqual(chat.choices[0].message.role, "assistant");
  let delta = "", role = null;
  const cs = await client.chat.completions.create({ model: "tiny", messages: msgs, max_tokens: 8, temperature: 0, stream: true });
  for await (const chunk of cs) { const d = chunk.choices[0].delta; role = role || d.role; delta += d.content || ""; }
  assert.strictEqual(role, "assistant");
  assert.strictEqual(delta, chat.choices[0].message.content);

  // seeded sampling repeats
  const a = await client.completions.create({ model: "tiny", prompt: "abc", max_tokens: 12, temperature: 1.0, seed: 7 });
  const b = await client.completions.create({ model: "tiny", prompt: "abc", max_tokens: 12, temperature: 1.0, seed: 7 });
  assert.strictEqual(a.choices[0].text, b.choices[0].text);

  // errors reach the client as APIError with the status
  const expectStatus = async (p, status) => {
    try { await p; } catch (e) {
      assert.ok(e instanceof OpenAI.APIError, `not an APIError: ${e}`);
      assert.strictEqual(e.status, status, e.message);
      return;
    }
    assert.fail(`no error, want ${status}`);
  };
  await expectStatus(client.completions.create({ model: "nope", prompt: "x", max_tokens: 1 }), 404);
  await expectStatus(client.completions.create({ model: "tiny", prompt: "x", max_tokens: 1, n: 2 }), 400);
  await expectStatus(client.completions.create({ model: "tiny", prompt: [1, 99999], max_tokens: 1 }), 400);
  await expectStatus(client.completions.create({ model: "tiny", prompt: "x", max_tokens: 100000 }), 400);
  await expectStatus(client.chat.completions.create({ model: "tiny", messages: msgs, temperature: -1 }), 400);
  const anon = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "wrong", maxRetries: 0 });
  await expectStatus(anon.models.list(), 401);
  console.log("serve_openai: ok");
})().catch((e) => { console.error("FAIL:", e.stack || e); process.exit(1); });
