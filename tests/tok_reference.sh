#!/usr/bin/env bash
# Compares our tokenizer with an independent one: for every line of tests/data/tok_corpus.jsonl
# the ids from `gattn tokenize --file` must equal those of @lenml/tokenizers (a JavaScript port
# of Hugging Face's tokenizers, run by tools/tokref/encode.js), on Qwen3's real tokenizer.json
# and on the committed synthetic tokenizer; and `gattn detokenize --file` of our ids must give
# back each line's NFC normalization as computed by JavaScript's String.normalize.
# Skips (77) when node or the packages are missing, except under CI, where it fails.
set -euo pipefail
CORPUS="$GA_TEST_DATA/tok_corpus.jsonl"
# shellcheck source=tests/tokref_env.sh
. "$GA_SRC/tests/tokref_env.sh"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
node "$ENCODE" --nfc <"$CORPUS" >"$TMP/nfc.jsonl"
lines=$(wc -l <"$CORPUS")
if [ "$lines" -lt 2000 ]; then
  echo "FAIL: corpus has only $lines lines" >&2
  exit 1
fi

fails=0
passes=0
# Prints the first differing lines (number, input, ours, reference).
show_diff() {
  paste -d '\n' <(nl -ba "$CORPUS") "$1" "$2" | awk -v max=5 '
    NR % 3 == 1 { input = $0 } NR % 3 == 2 { ours = $0 }
    NR % 3 == 0 && ours != $0 { if (n++ < max) printf "line %s\n  ours: %s\n  ref:  %s\n", input, ours, $0 }
    END { printf "%d differing lines\n", n }' >&2
}

check() {
  local name=$1 dir=$2
  "$GA_CLI" tokenize --model "$dir" --file "$CORPUS" >"$TMP/$name.ours"
  node "$ENCODE" --tokenizer "$dir" <"$CORPUS" >"$TMP/$name.ref"
  if [ "$(wc -l <"$TMP/$name.ours")" -ne "$lines" ] || ! cmp -s "$TMP/$name.ours" "$TMP/$name.ref"; then
    echo "FAIL: $name: ids differ from the reference" >&2
    show_diff "$TMP/$name.ours" "$TMP/$name.ref"
    fails=$((fails + 1))
  else
    echo "$name: ids identical to @lenml/tokenizers on all $lines lines"
    passes=$((passes + 1))
  fi
  "$GA_CLI" detokenize --model "$dir" --file "$TMP/$name.ours" >"$TMP/$name.dec"
  if ! cmp -s "$TMP/$name.dec" "$TMP/nfc.jsonl"; then
    echo "FAIL: $name: decode(encode(x)) != NFC(x)" >&2
    show_diff "$TMP/$name.dec" "$TMP/nfc.jsonl"
    fails=$((fails + 1))
  else
    echo "$name: decode(encode(x)) == NFC(x) on all $lines lines"
    passes=$((passes + 1))
  fi
}

check qwen3 "$QWEN"
check synthetic "$GA_TEST_DATA/tok_small"
# The special tokens must actually occur in the corpus' ids, or the comparison proves little.
if grep -q '151643' "$TMP/qwen3.ours" && grep -q '151644' "$TMP/qwen3.ours" &&
  grep -q '151645' "$TMP/qwen3.ours"; then
  passes=$((passes + 1))
else
  echo "FAIL: corpus ids lack the special tokens" >&2
  fails=$((fails + 1))
fi
echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
