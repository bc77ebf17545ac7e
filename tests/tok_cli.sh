#!/usr/bin/env bash
# `gattn tokenize` / `gattn detokenize` on the committed synthetic tokenizer
# (tests/data/tok_small, written by ga_tok_write_synthetic with vocab_size 512): round trips,
# output formats, and bad input, where each must fail with exit code 1 or 2 and one
# "gattn CMD: error: ..." line, never a crash or partial garbage.
set -uo pipefail
TOK="$GA_TEST_DATA/tok_small"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fail=$((fail + 1)); }

# expect_fail CODE PATTERN CMD... : exit code CODE, stderr matching PATTERN, nothing on stdout
expect_fail() {
  local code=$1 pat=$2
  shift 2
  "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  if [ "$rc" -ne "$code" ]; then bad "exit $rc (want $code): $*"; cat "$TMP/err" >&2; return; fi
  if ! grep -q "^gattn [a-z]*: error: .*$pat" "$TMP/err"; then
    bad "stderr of '$*' lacks '$pat':"; cat "$TMP/err" >&2; return
  fi
  if [ -s "$TMP/out" ]; then bad "stdout not empty: $*"; return; fi
  [ "$(wc -l <"$TMP/err")" -eq 1 ] && ok || bad "more than one error line: $*"
}

# --- good input
ids=$("$GA_CLI" tokenize --model "$TOK" "Hello, world! It's 42.") && ok || bad "tokenize"
[[ "$ids" =~ ^[0-9]+(,[0-9]+)+$ ]] && ok || bad "ids format: '$ids'"
text=$("$GA_CLI" detokenize --model "$TOK" --tokens "$ids") && ok || bad "detokenize"
[ "$text" = "Hello, world! It's 42." ] && ok || bad "round trip gave '$text'"
ids2=$("$GA_CLI" tokenize --tokenizer "$TOK/tokenizer.json" "Hello, world! It's 42.")
[ "$ids" = "$ids2" ] && ok || bad "--model and --tokenizer differ"
[[ "$("$GA_CLI" tokenize --model "$TOK" "<|im_start|>user<|im_end|>")" =~ ^510,([0-9]+,)+511$ ]] &&
  ok || bad "special tokens"
[ "$("$GA_CLI" tokenize --model "$TOK" -- "--pieces")" = "$("$GA_CLI" tokenize --model "$TOK" --pieces -- --pieces | cut -f1 | paste -sd,)" ] &&
  ok || bad "-- TEXT and --pieces ids"
"$GA_CLI" tokenize --model "$TOK" --pieces $'a\tb\xe4\xbd\xa0' >"$TMP/p" && ok || bad "--pieces"
[ "$(cut -f2 "$TMP/p" | paste -sd' ')" = 'a \t b \xe4 \xbd \xa0' ] && ok || bad "--pieces labels: $(cat "$TMP/p")"
[ "$("$GA_CLI" tokenize --model "$TOK" "")" = "" ] && ok || bad "empty text"

printf '%s\n' '"first line\nsecond"' '""' '"tab\there \u00e9 \ud83d\ude00 \u0000 end"' ' "spaced" ' >"$TMP/in.jsonl"
"$GA_CLI" tokenize --model "$TOK" --file "$TMP/in.jsonl" >"$TMP/ids.jsonl" && ok || bad "--file"
[ "$(wc -l <"$TMP/ids.jsonl")" -eq 4 ] && ok || bad "--file line count"
[ "$(sed -n 2p "$TMP/ids.jsonl")" = "[]" ] && ok || bad "empty string line"
"$GA_CLI" detokenize --model "$TOK" --file "$TMP/ids.jsonl" >"$TMP/back.jsonl" && ok || bad "detokenize --file"
printf '%s\n' '"first line\nsecond"' '""' '"tab\there é 😀 \u0000 end"' '"spaced"' | cmp -s - "$TMP/back.jsonl" &&
  ok || { bad "--file round trip"; cat "$TMP/back.jsonl" >&2; }
"$GA_CLI" tokenize --model "$TOK" --file - <"$TMP/in.jsonl" | cmp -s - "$TMP/ids.jsonl" && ok || bad "--file -"
"$GA_CLI" tokenize --model "$TOK" --pieces --file "$TMP/in.jsonl" >"$TMP/pieces.jsonl" && ok || bad "--pieces --file"
grep -q '^\[.*,"Ġline","Ċ",' "$TMP/pieces.jsonl" && ok || bad "--pieces --file content: $(head -1 "$TMP/pieces.jsonl")"
"$GA_CLI" tokenize --help | grep -q "usage: gattn tokenize" && ok || bad "--help"
"$GA_CLI" detokenize --help | grep -q "usage: gattn detokenize" && ok || bad "detokenize --help"

# --- bad arguments
expect_fail 2 "exactly one of --model" "$GA_CLI" tokenize "text"
expect_fail 2 "exactly one of --model" "$GA_CLI" tokenize --model "$TOK" --tokenizer "$TOK/tokenizer.json" x
expect_fail 2 "needs a value" "$GA_CLI" tokenize --model
expect_fail 2 "exactly one of TEXT or --file" "$GA_CLI" tokenize --model "$TOK"
expect_fail 2 "exactly one of TEXT or --file" "$GA_CLI" tokenize --model "$TOK" --file "$TMP/in.jsonl" x
expect_fail 2 "unknown option '--bogus'" "$GA_CLI" tokenize --model "$TOK" --bogus x
expect_fail 2 "unexpected argument 'y'" "$GA_CLI" tokenize --model "$TOK" x y
expect_fail 1 "/nonexistent/tokenizer.json" "$GA_CLI" tokenize --model /nonexistent x
expect_fail 1 "invalid UTF-8 at byte offset 2" "$GA_CLI" tokenize --model "$TOK" $'ab\xff'
expect_fail 1 "nope.jsonl: cannot open" "$GA_CLI" tokenize --model "$TOK" --file "$TMP/nope.jsonl"
printf '"ok"\n[1,2]\n' >"$TMP/b1.jsonl"
"$GA_CLI" tokenize --model "$TOK" --file "$TMP/b1.jsonl" >"$TMP/o1" 2>"$TMP/e1"
[ $? -eq 1 ] && grep -q "b1.jsonl:2: expected a JSON string" "$TMP/e1" && ok || bad "bad JSON line: $(cat "$TMP/e1")"
for line in '"unterminated' '"bad \q escape"' '"lone \ud800 surrogate"' '"x" trailing' "$(printf '"raw\tcontrol"')" '' \
  '"p""q"' '"xyz" garbage' '"a" "b"'; do
  printf '%s\n' "$line" >"$TMP/b2.jsonl"
  expect_fail 1 "b2.jsonl:1: " "$GA_CLI" tokenize --model "$TOK" --file "$TMP/b2.jsonl"
done
printf '"ok \xff"\n' >"$TMP/b3.jsonl"
expect_fail 1 "b3.jsonl:1: encode: invalid UTF-8" "$GA_CLI" tokenize --model "$TOK" --file "$TMP/b3.jsonl"

expect_fail 2 "exactly one of --tokens" "$GA_CLI" detokenize --model "$TOK"
for t in "1,,2" "-1" "abc" "1,2," "99999999999" ""; do
  expect_fail 2 "not a comma-separated list" "$GA_CLI" detokenize --model "$TOK" --tokens "$t"
done
expect_fail 1 "id 512 at position 1 is not a token" "$GA_CLI" detokenize --model "$TOK" --tokens 5,512
expect_fail 2 "unknown option '--pieces'" "$GA_CLI" detokenize --model "$TOK" --pieces --tokens 1
for line in '[1, "2"]' '[1.5]' '{"a": 1}' '[-1]' '[' '[600]' '[72,105] garbage' '[72][105]' '[1,]' '[,1]' '[01]' '[1e2]' '[1 2]'; do
  printf '%s\n' "$line" >"$TMP/d.jsonl"
  expect_fail 1 "d.jsonl:1: " "$GA_CLI" detokenize --model "$TOK" --file "$TMP/d.jsonl"
done

# a decoded NUL byte is written whole in the JSON line (the byte-level piece of 0x00 is U+0100)
nul=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model"]["vocab"]["\u0100"])' "$TOK/tokenizer.json")
printf '[%s,%s,%s]\n' "$("$GA_CLI" tokenize --model "$TOK" A)" "$nul" "$("$GA_CLI" tokenize --model "$TOK" B)" >"$TMP/nul.jsonl"
[ "$("$GA_CLI" detokenize --model "$TOK" --file "$TMP/nul.jsonl")" = '"A\u0000B"' ] && ok || bad "NUL in detokenize --file"
# stdout that cannot be written fails
"$GA_CLI" tokenize --model "$TOK" hello >/dev/full 2>"$TMP/err"; [ $? -eq 1 ] && ok || bad "tokenize > /dev/full"

# --- bad tokenizer files
mkdir -p "$TMP/broken"
printf '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}' >"$TMP/broken/tokenizer.json"
expect_fail 1 "broken/tokenizer.json: model.merges\[0\]" "$GA_CLI" tokenize --model "$TMP/broken" x
head -c 3000 "$TOK/tokenizer.json" >"$TMP/broken/tokenizer.json"
expect_fail 1 "not valid JSON" "$GA_CLI" tokenize --model "$TMP/broken" x
cp "$TOK/tokenizer.json" "$TMP/broken/tokenizer.json"
printf '{"eos_token": "<|nope|>"}' >"$TMP/broken/tokenizer_config.json"
expect_fail 1 "tokenizer_config.json: eos_token" "$GA_CLI" detokenize --model "$TMP/broken" --tokens 1
expect_fail 1 "not a regular file" "$GA_CLI" tokenize --tokenizer "$TMP" x

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
