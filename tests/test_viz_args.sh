#!/usr/bin/env bash
# gattn viz argument validation: every bad argument gives one line "gattn viz: error: ..."
# on stderr, a nonzero exit, and no output file.
set -u
CLI=${GA_CLI:-gattn}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/viz_args.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail=0
pass=0
"$CLI" write-model --out "$tmp/m" --variant headwise --layers 2 --hidden 64 --heads 4 \
  --kv-heads 2 --head-dim 16 --intermediate 96 --vocab 300 >/dev/null || { echo "write-model failed"; exit 1; }
"$CLI" write-model --out "$tmp/tok" --variant baseline --layers 2 --hidden 64 --heads 4 \
  --kv-heads 2 --head-dim 16 --intermediate 96 --vocab 300 --tokenizer >/dev/null || exit 1

# expect_error DESCRIPTION PATTERN ARGS...: nonzero exit, one stderr line matching PATTERN
expect_error() {
  local what=$1 pat=$2
  shift 2
  local err rc lines
  err=$("$CLI" viz "$@" 2>&1 >/dev/null)
  rc=$?
  lines=$(printf '%s\n' "$err" | grep -c .)
  if [ $rc -eq 0 ] || [ "$lines" -ne 1 ] || ! printf '%s' "$err" | grep -q "^gattn viz: error: .*$pat"; then
    echo "FAIL: $what: rc=$rc stderr: $err"
    fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
}
M=(--model "$tmp/m" --out "$tmp/out.png")
expect_error "no model" "model" --tokens 1,2
expect_error "no prompt" "prompt" --model "$tmp/m"
expect_error "both prompt and tokens" "exactly one" "${M[@]}" --prompt hi --tokens 1
expect_error "missing model dir" "$tmp/nope" --model "$tmp/nope" --tokens 1,2
expect_error "prompt without tokenizer" "tokens" "${M[@]}" --prompt "hello"
expect_error "layer 0" "--layers: 0 (item 1) is outside \[1," "${M[@]}" --tokens 1,2 --layers 0
expect_error "layer too large" "layer 3" "${M[@]}" --tokens 1,2 --layers 1,3
expect_error "layer twice" "twice" "${M[@]}" --tokens 1,2 --layers 2,2
expect_error "layers not numbers" "layers" "${M[@]}" --tokens 1,2 --layers 1,x
expect_error "empty layer item" "--layers: '1,,2' is not a comma-separated list of layer numbers" "${M[@]}" --tokens 1,2 --layers 1,,2
expect_error "head too large" "head 4" "${M[@]}" --tokens 1,2 --head 4
expect_error "negative head" "head" "${M[@]}" --tokens 1,2 --head -1
expect_error "head not a number" "head" "${M[@]}" --tokens 1,2 --head two
expect_error "token outside vocab" "vocabulary" "${M[@]}" --tokens 1,300
expect_error "bad token list" "tokens" "${M[@]}" --tokens 1,-2
expect_error "max-res 0" "max-res" "${M[@]}" --tokens 1,2 --max-res 0
expect_error "max-res huge" "max-res" "${M[@]}" --tokens 1,2 --max-res 100000
expect_error "max-res junk" "max-res" "${M[@]}" --tokens 1,2 --max-res 12abc
expect_error "bad device" "device" "${M[@]}" --tokens 1,2 --device tpu
expect_error "unknown option" "unknown option" "${M[@]}" --tokens 1,2 --colour red
expect_error "missing value" "layers" "${M[@]}" --tokens 1,2 --layers
expect_error "unwritable out dir" "cannot write" --model "$tmp/m" --tokens 1,2 --out "$tmp/no/such/dir/x.png"
expect_error "out is a directory" "directory" --model "$tmp/m" --tokens 1,2 --out "$tmp"
touch "$tmp/file"
expect_error "dump onto a file" "not a directory" "${M[@]}" --tokens 1,2 --dump "$tmp/file"
expect_error "dump in missing parent" "cannot create" "${M[@]}" --tokens 1,2 --dump "$tmp/no/such/d"
# more than 4096 tokens with --dump
long=$(seq -s, 1 4097 | sed 's/[0-9]\+/7/g')
expect_error "dump too long" "4096" "${M[@]}" --tokens "$long" --dump "$tmp/d"
if [ -e "$tmp/out.png" ]; then echo "FAIL: an output file was written by a failing run"; fail=$((fail + 1)); fi
# the same options, valid, succeed
if "$CLI" viz --model "$tmp/tok" --prompt "hello world" --out "$tmp/ok.png" --device cpu \
    --layers 2 --head 3 --max-res 1 >/dev/null && [ -s "$tmp/ok.png" ]; then
  pass=$((pass + 1))
else
  echo "FAIL: a valid run failed"; fail=$((fail + 1))
fi
# --dump into a folder holding a longer earlier run leaves exactly the new run (issue 10 item 2)
mkdir -p "$tmp/d2"
"$CLI" viz --model "$tmp/m" --tokens 1,2,3,4,5,6,7 --out "$tmp/a.png" --device cpu --dump "$tmp/d2" --layers 1,2 >/dev/null \
  && "$CLI" viz --model "$tmp/m" --tokens 1,2,3 --out "$tmp/a.png" --device cpu --dump "$tmp/d2" --layers 1 >/dev/null \
  && [ "$(ls "$tmp/d2" | sort | tr '\n' ' ')" = "layer_1.npy metrics.csv metrics.json tokens.json " ] \
  && python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); assert b"(3, 3)" in d[:128], d[:128]' "$tmp/d2/layer_1.npy" \
  && pass=$((pass + 1)) || { echo "FAIL: stale dump files: $(ls "$tmp/d2")"; fail=$((fail + 1)); }
# --model . names the picture and its title after the folder, not "." (issue 10 item 12)
(cd "$tmp/m" && "$CLI" viz --model . --tokens 1,2 --device cpu >/dev/null) && [ -s "$tmp/m/m_selected_layer_attention_maps.png" ] \
  && [ ! -e "$tmp/m/._selected_layer_attention_maps.png" ] \
  && pass=$((pass + 1)) || { echo "FAIL: viz --model . output name: $(ls "$tmp/m")"; fail=$((fail + 1)); }
# the library names the folder too: `info` on "." and on "m/" says m
for d in . ./ ; do
  (cd "$tmp/m" && "$CLI" info --model "$d" | grep -qE '^model +m ') && pass=$((pass + 1)) \
    || { echo "FAIL: info --model $d does not name the folder m"; fail=$((fail + 1)); }
done
(cd "$tmp" && "$CLI" info --model m/ | grep -qE '^model +m ') && pass=$((pass + 1)) \
  || { echo "FAIL: info --model m/ does not name the folder m"; fail=$((fail + 1)); }
# stdout that cannot be written is a failure, exit 1 (issue 10 item 8)
"$CLI" viz --model "$tmp/m" --tokens 1,2 --out "$tmp/f.png" --device cpu >/dev/full 2>"$tmp/err"
rc=$?
if [ $rc -eq 1 ] && grep -q "cannot write to stdout" "$tmp/err"; then pass=$((pass + 1)); else
  echo "FAIL: viz > /dev/full: exit $rc: $(cat "$tmp/err")"; fail=$((fail + 1)); fi
# usage errors exit 2, runtime failures 1
"$CLI" viz --model "$tmp/m" --tokens 1,2 --max-res 0 2>/dev/null; rc1=$?
"$CLI" viz --model "$tmp/nope" --tokens 1,2 2>/dev/null; rc2=$?
[ $rc1 -eq 2 ] && [ $rc2 -eq 1 ] && pass=$((pass + 1)) || { echo "FAIL: viz exit codes $rc1 $rc2 (want 2 1)"; fail=$((fail + 1)); }
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
