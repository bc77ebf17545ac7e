#!/usr/bin/env node
// Generates tests/data/tok_corpus.jsonl, the tokenizer test corpus: one JSON string per line,
// deterministically (a seeded PRNG; no input), covering English prose, code, Chinese,
// Japanese, Korean, Arabic and other scripts, emoji and symbols, digits and long numbers,
// runs of spaces/tabs/newlines, leading and trailing whitespace, contractions in mixed case,
// text that NFC changes, control characters, very long words, and the special tokens.
//
// usage: node tools/tokref/gen_corpus.js > tests/data/tok_corpus.jsonl
// The output is committed; rerunning must reproduce it byte for byte.
"use strict";

let seed = 0x5eed1234;
function rand() { // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n) => Math.floor(rand() * n);
const pick = (a) => a[int(a.length)];

const english = [
  "The quick brown fox jumps over the lazy dog.",
  "She sells sea shells by the sea shore.",
  "In the beginning, there was nothing but a long, quiet afternoon.",
  "Attention is a weighted average of values, with weights from a softmax of scores.",
  "A gated model learns to switch off heads that have nothing useful to say.",
  "Please don't forget to bring the umbrella; it'll rain later today.",
  "Why would anyone write a tokenizer in C? Because speed matters, and so does control.",
  "The meeting was moved from Tuesday to Thursday at 3:30 p.m.",
  "Dr. Smith's report (see appendix B) lists 17 open questions.",
  "\"Quoted text,\" he said, \"should stay quoted.\"",
  "Mr. O'Neill and Ms. D'Angelo weren't at the party.",
  "Rock 'n' roll isn't dead; it's just resting.",
  "E-mail me at someone@example.com or visit https://example.org/path?q=1&r=2#frag.",
  "Temperatures ranged from -12°C to +35°C over the year.",
  "It was the best of times, it was the worst of times.",
  "Colorless green ideas sleep furiously.",
  "The committee's decision, however, remains final — for now.",
  "Hyphenated-words and under_scored_names and CamelCaseIdentifiers all appear in code.",
  "I'd've thought you'd know better by now.",
  "ALL CAPS SENTENCES ARE SHOUTING, AREN'T THEY?",
  "Small words: a, an, the, of, to, in, on, at, by, for, with.",
  "Supercalifragilisticexpialidocious is a long word; pneumonoultramicroscopicsilicovolcanoconiosis is longer.",
  "Naïve café owners in Zürich serve crème brûlée and piñata-shaped jalapeño bread.",
  "The ratio of 3 to 4 is 0.75, or 75%.",
  "He wrote 'yes', she wrote 'no', and they both wrote 'maybe'.",
  "...and then?!? Nothing!!! Absolutely nothing...",
  "Tabs\tbetween\twords\tare\tcommon\tin\tTSV\tfiles.",
  "Semicolons; colons: dashes - and en–dashes and em—dashes.",
];
const code = [
  "int main(int argc, char **argv) {\n    printf(\"hello\\n\");\n    return 0;\n}",
  "def f(x):\n    return x ** 2 + 3 * x - 1\n",
  "for (size_t i = 0; i < n; ++i) sum += a[i] * b[i];",
  "const add = (a, b) => a + b;\nconsole.log(add(2, 3));",
  "#include <stdio.h>\n#define MAX(a, b) ((a) > (b) ? (a) : (b))",
  "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}",
  "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name ORDER BY 2 DESC;",
  "<div class=\"box\"><p>Hello &amp; welcome</p></div>",
  "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
  "if [ -f \"$HOME/.bashrc\" ]; then source \"$HOME/.bashrc\"; fi",
  "x = [i for i in range(100) if i % 7 == 0]",
  "\tif (ptr == NULL)\n\t\treturn -ENOMEM;\n",
  "    @property\n    def name(self) -> str:\n        return self._name\n",
  "a+=1;b-=2;c*=3;d/=4;e%=5;f<<=1;g>>=2;h&=3;i|=4;j^=5;",
  "matrix[i][j] = matrix[i - 1][j] + matrix[i][j - 1];",
  "// TODO(someone): handle the edge case where n == 0\n",
  "/* multi-line\n * comment\n */",
  "$ ls -la | grep '\\.c$' | wc -l",
  "git commit -m \"Fix off-by-one in tokenizer\"",
  "0x7fffffff & 0xDEADBEEF | 0b1010 ^ 0o777",
  "std::vector<std::pair<int, std::string>> items;",
  "lambda x, y: (x + y) / 2.0",
  "   \n\n   indented after blank lines\n",
  "key: value\nlist:\n  - one\n  - two\n",
];
const cjk = [
  "你好，世界！今天天气很好。",
  "机器学习是人工智能的一个分支。",
  "我们在北京大学学习计算机科学，已经三年了。",
  "注意力机制让模型关注输入中最相关的部分。",
  "这个分词器必须和参考实现给出完全相同的结果。",
  "こんにちは、世界。今日はいい天気ですね。",
  "私は東京に住んでいます。カタカナとひらがなと漢字。",
  "トークナイザーのテストを書いています。",
  "ｶﾀｶﾅの半角文字とＡＢＣ全角英字も混ぜます。",
  "안녕하세요, 세계! 오늘 날씨가 좋네요.",
  "한국어 문장은 띄어쓰기를 사용합니다.",
  "대한민국의 수도는 서울입니다.",
];
const other = [
  "مرحبا بالعالم! كيف حالك اليوم؟",
  "اللغة العربية تكتب من اليمين إلى اليسار.",
  "الرقم ١٢٣٤٥ مكتوب بالأرقام العربية.",
  "Привет, мир! Как дела?",
  "Съешь же ещё этих мягких французских булок, да выпей чаю.",
  "Γειά σου Κόσμε! Η γλώσσα είναι ελληνική.",
  "שלום עולם! מה שלומך?",
  "नमस्ते दुनिया! यह हिंदी वाक्य है।",
  "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่างระหว่างคำ",
  "Xin chào thế giới! Tiếng Việt có nhiều dấu.",
  "Ελληνικά, Русский, עברית, العربية, हिन्दी in one line.",
  "Zażółć gęślą jaźń. Příliš žluťoučký kůň úpěl ďábelské ódy.",
  "Ünïcödé àççéñts éverywhere: ÀÉÎÕÜ àéîõü ÇÑ çñ.",
];
const symbols = [
  "😀😃😄😁😆😅🤣😂🙂🙃",
  "👍🏽 👋🏿 🙏🏻",
  "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👩🏽‍💻 coder",
  "🇯🇵🇺🇸🇩🇪🇫🇷 flags",
  "❤️ ♥ ☺️ ✔️ ✖ ★ ☆ ☀ ☁ ☂",
  "™ © ® ° ± × ÷ → ← ↑ ↓ ↔ ⇒ ⇔",
  "∑ ∏ ∫ ∞ ≠ ≤ ≥ ≈ √ ∂ ∇ ∈ ∉ ⊂ ⊃ ∪ ∩",
  "π µ Ω α β γ δ ε λ σ φ ψ ω",
  "€ £ ¥ ₹ ₩ ₽ ¢ $ ₿",
  "┌─┬─┐ │ │ │ └─┴─┘ ░▒▓█",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙 𝒮𝒸𝓇𝒾𝓅𝓉",
  "♩♪♫♬ ♠♣♥♦ ⚽⚾ ⌘⌥⇧",
  "¡Hola! ¿Qué tal? « guillemets » „Anführung“ ‚einfach‘",
  "…‥‧ ‰ ‱ † ‡ • ‣ ※ ⁂",
  "😀x😀 a😀b 😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀",
];
const specials = [
  "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|box_end|>",
  "<|vision_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
  "<|fim_suffix|>", "<|repo_name|>", "<|file_sep|>", "<think>", "</think>",
];
const contractions = [
  "it's", "IT'S", "It'S", "iT's", "I'm", "I'M", "you're", "YOU'RE", "You'Re", "yOu'rE",
  "we've", "WE'VE", "We'Ve", "they'll", "THEY'LL", "They'Ll", "she'd", "SHE'D", "She'D",
  "don't", "DON'T", "Don'T", "can't", "won't", "'s", "'S", "'ll", "'LL", "'re", "'RE",
  "'ve", "'VE", "'m", "'M", "'d", "'D", "'t", "'T", "''s", "'sss", "'LLama", "O'Reilly's",
];
const nfcCases = [
  "e\u0301", "cafe\u0301", "A\u030A", "\u212B", "\u2126", "o\u0308", "n\u0303o",
  "\u1100\u1161\u11A8", "\u1112\u1161\u11AB\u1100\u1173\u11AF", "Vie\u0323\u0302t",
  "a\u0301\u0302\u0303", "\u0041\u0301\u0327", "s\u0323\u0307", "\u00C5\u0301",
  "\u0958\u0959", "\u2000\u2001", "\uFB01ne", "\u0387", "\u037E",
];
const wsPieces = [" ", "  ", "   ", "    ", "        ", "\t", "\t\t", "\n", "\n\n", "\r\n",
  " \n", "\n ", " \t ", "\u00A0", "\u3000", "\u2003", "\r", "\n\n\n", "  \n  \n"];

function digits(n) {
  let s = String(1 + int(9));
  while (s.length < n) s += String(int(10));
  return s;
}
function number() {
  switch (int(8)) {
    case 0: return digits(1 + int(40));
    case 1: return digits(1 + int(6)) + "." + digits(1 + int(8));
    case 2: return Number(digits(4 + int(9))).toLocaleString("en-US");
    case 3: return "+" + digits(2) + " " + digits(3) + "-" + digits(3) + "-" + digits(4);
    case 4: return `${2000 + int(30)}-${String(1 + int(12)).padStart(2, "0")}-${String(1 + int(28)).padStart(2, "0")}`;
    case 5: return "0x" + digits(8).replace(/[0-3]/g, (d) => "ABCD"[d]);
    case 6: return digits(1 + int(3)) + "e-" + digits(1 + int(2));
    default: return "3.14159265358979323846264338327950288419716939937510";
  }
}
function ws() { return pick(wsPieces); }
function word() {
  const pools = [english, code, cjk, other, symbols];
  const s = pick(pick(pools));
  const parts = s.split(" ");
  const a = int(parts.length);
  return parts.slice(a, a + 1 + int(4)).join(" ");
}
function mixed() {
  const n = 2 + int(8);
  let s = "";
  for (let i = 0; i < n; i++) {
    const r = int(10);
    if (r < 4) s += word();
    else if (r < 5) s += number();
    else if (r < 6) s += pick(contractions);
    else if (r < 7) s += pick(specials);
    else if (r < 8) s += pick(nfcCases);
    else s += Array.from(pick(symbols)).slice(0, 1 + int(6)).join("");
    s += int(3) ? " " : ws();
  }
  return s;
}

const lines = [];
// Fixed edge cases first.
lines.push("", " ", "  ", "\n", "\t", "\r\n", "a", "A", "0", "!", "'", "'s", "\u0000", "x\u0000y",
  "\u0001\u0002\u001b[31mred\u001b[0m\u007f", "<|im_start|>", "<|im_start", "<|im_end|><|im_start|>",
  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
  " <|endoftext|> ", "<<|im_end|>>", "<|<|im_start|>|>", "text<|endoftext|>text", "<think>\n\n</think>\n\n",
  "x".repeat(3000), "ab".repeat(1500), " ".repeat(2000), "\n".repeat(500), "\t".repeat(300),
  " ".repeat(50) + "x" + " ".repeat(50), "9".repeat(1000), "你".repeat(800), "😀".repeat(300),
  "a" + "\u0301".repeat(40), "e\u0301".repeat(100), "Ω".repeat(10) + "\u2126".repeat(10),
  "   leading spaces", "trailing spaces   ", "\t\tleading tabs", "trailing tabs\t\t",
  "\n\nleading newlines", "trailing newlines\n\n", "  both  ", " \n\t mixed \t\n ");
for (const s of [...english, ...code, ...cjk, ...other, ...symbols, ...specials, ...contractions, ...nfcCases])
  lines.push(s);
for (const c of contractions) lines.push(`He said ${c} and ${c.toUpperCase()} and ${c.toLowerCase()}.`);
// Random lines by kind, 2,000 of them.
const kinds = [
  () => { let s = ""; for (let i = 1 + int(4); i > 0; i--) s += pick(english) + " "; return s.trimEnd(); },
  () => pick(code) + (int(2) ? "\n" + pick(code) : ""),
  () => pick(cjk) + pick(cjk) + (int(2) ? " " + number() : ""),
  () => pick(other) + " " + pick(other),
  () => pick(symbols) + " " + word(),
  () => { let s = ""; for (let i = 1 + int(5); i > 0; i--) s += number() + pick([" ", ", ", "\n", "\t", ""]); return s; },
  () => { let s = ""; for (let i = 1 + int(6); i > 0; i--) s += ws() + word(); return s + (int(2) ? ws() : ""); },
  () => ws() + pick(english) + ws(),
  () => { let s = ""; for (let i = 2 + int(6); i > 0; i--) s += pick(contractions) + pick([" ", "", "!", " x"]); return s; },
  () => `${pick(specials)}${pick(["user", "system", "assistant"])}\n${word()}${pick(specials)}${ws()}`,
  () => pick(nfcCases) + word() + pick(nfcCases),
  mixed, mixed, mixed,
];
for (let i = 0; i < 2000; i++) lines.push(kinds[i % kinds.length]());
for (const s of lines) if (!s.isWellFormed()) throw new Error(`lone surrogate in ${JSON.stringify(s)}`);
process.stdout.write(lines.map((s) => JSON.stringify(s)).join("\n") + "\n");
