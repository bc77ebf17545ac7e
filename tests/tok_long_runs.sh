#!/usr/bin/env bash
# Long runs of one character (issue 10, item 14): PCRE2's default match limit made Qwen's own
# Split regex refuse 10 million spaces, which Hugging Face tokenizes. Checks, on Qwen3's real
# tokenizer.json:
#  1. runs of 10k-100k spaces, tabs, newlines, CRLFs, digits, no-break and ideographic spaces,
#     mixed whitespace, and such runs between words give the ids of @lenml/tokenizers;
#  2. 10,010,661 spaces and as many newlines (too long for the reference, which needs ~13 s
#     for 1M) tokenize, give the ids extrapolated from the reference's runs of L = 16,421 and
#     L + D (D = 16,384): ids(L + D) must be ids(L) behind m copies of one token X, so
#     ids(L + 610 D) = ids(10010661) is ids(L) behind 610 m copies of X; and they decode back
#     to the input.
# Slow (~30 s); skips (77) without node or the packages, except under CI, where it fails.
set -euo pipefail
# shellcheck source=tests/tokref_env.sh
. "$GA_SRC/tests/tokref_env.sh"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
passes=0
ok() { passes=$((passes + 1)); }
bad() {
  echo "FAIL: $*" >&2
  fails=$((fails + 1))
}

# 1. against the reference
node -e '
const units = [" ", "\t", "\n", "\r\n", "7", "\u00a0", "\u3000", " \t\n", "\n "];
for (const n of [10037, 20037]) for (const u of units) console.log(JSON.stringify(u.repeat(n)));
for (const u of [" ", "\n", "\t"]) {
  console.log(JSON.stringify("word" + u.repeat(100003) + "x"));
  console.log(JSON.stringify(u.repeat(65536) + "end."));
}' >"$TMP/runs.jsonl"
node "$ENCODE" --tokenizer "$QWEN" <"$TMP/runs.jsonl" >"$TMP/runs.ref"
if "$GA_CLI" tokenize --model "$QWEN" --file "$TMP/runs.jsonl" >"$TMP/runs.ours" &&
  cmp -s "$TMP/runs.ours" "$TMP/runs.ref"; then
  echo "runs of 10k-100k: ids identical to @lenml/tokenizers on $(wc -l <"$TMP/runs.jsonl") lines"
  ok
else
  bad "runs of 10k-100k: ids differ from the reference"
fi

# 2. ten million: extrapolated ids, round trip
for unit in ' ' '\n'; do
  node -e '
    const u = JSON.parse(`"${process.argv[1]}"`);
    for (const n of [16421, 32805]) console.log(JSON.stringify(u.repeat(n)));' "$unit" >"$TMP/small.jsonl"
  node "$ENCODE" --tokenizer "$QWEN" <"$TMP/small.jsonl" >"$TMP/small.ref"
  # expected ids for 10,010,661 units, or an error when the runs do not show the pattern
  if ! node -e '
    const fs = require("fs");
    const [a, b] = fs.readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
    const m = b.length - a.length, x = b[0];
    if (m <= 0 || b.slice(0, m).some((v) => v !== x) || JSON.stringify(b.slice(m)) !== JSON.stringify(a))
      throw new Error("ids(L + D) is not ids(L) behind copies of one token");
    const out = fs.openSync(process.argv[2], "w");
    fs.writeSync(out, "[" + (String(x) + ",").repeat(610 * m) + a.join(",") + "]\n");
    fs.writeSync(fs.openSync(process.argv[3], "w"),
      JSON.stringify(JSON.parse(`"${process.argv[4]}"`).repeat(10010661)) + "\n");' \
    "$TMP/small.ref" "$TMP/big.want" "$TMP/big.jsonl" "$unit"; then
    bad "unit '$unit': no extrapolation pattern in the reference ids"
    continue
  fi
  start=$(date +%s%N)
  if ! "$GA_CLI" tokenize --model "$QWEN" --file "$TMP/big.jsonl" >"$TMP/big.ours" 2>"$TMP/err"; then
    bad "unit '$unit' x 10010661: $(cat "$TMP/err")"
    continue
  fi
  ms=$((($(date +%s%N) - start) / 1000000))
  if cmp -s "$TMP/big.ours" "$TMP/big.want"; then
    echo "unit '$unit' x 10010661: $(tr ',' '\n' <"$TMP/big.ours" | wc -l) ids as extrapolated (${ms} ms)"
    ok
  else
    bad "unit '$unit' x 10010661: ids differ from the extrapolation"
  fi
  if "$GA_CLI" detokenize --model "$QWEN" --file "$TMP/big.ours" | cmp -s - "$TMP/big.jsonl"; then
    ok
  else
    bad "unit '$unit' x 10010661: decode(encode(x)) != x"
  fi
done
echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
