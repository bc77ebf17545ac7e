#!/usr/bin/env bash
# gattn generate and gattn bench end to end on the CPU:
#  - greedy --ids equals repeatedly taking the argmax (in python) of `gattn logits` over the
#    prompt plus the ids so far; the text output equals `gattn detokenize` of those ids;
#  - sampling with a seed is reproducible and top-k 1 equals greedy;
#  - --batch-file prints one JSON object per prompt in order, each with the ids and text
#    that prompt gets alone;
#  - `gattn bench --device cpu` on a tiny shape writes a markdown table, CSV and JSON with
#    rows for every variant;
#  - bad input: one error line, nonzero exit, never a signal.
. "$(dirname "$0")/cli_harness.sh" gen

M=$T/m
"$G" write-model --out "$M" --variant elementwise --tokenizer --layers 2 --hidden 64 --heads 4 \
  --kv-heads 2 --head-dim 16 --intermediate 96 --vocab 400 --max-pos 96 --seed 5 --init-std 0.25 \
  >/dev/null && ok || bad "write-model"

# --- greedy ids against argmax of recomputed logits
"$G" generate --model "$M" --tokens 3,14,15 -n 6 --ids --device cpu >"$T/ids" 2>"$T/speed" \
  && ok || bad "generate --ids: $(cat "$T/speed")"
grep -q "prefill 3 tokens" "$T/speed" && grep -q "tokens/s" "$T/speed" && ok || bad "speed line: $(cat "$T/speed")"
IDS=$(cat "$T/ids")
echo "$IDS" | grep -qE '^[0-9]+(,[0-9]+)*$' && ok || bad "ids format: $IDS"
seq_ids=3,14,15
want=""
n=$(echo "$IDS" | tr ',' '\n' | wc -l)
for _ in $(seq 1 "$n"); do
  "$G" logits --model "$M" --tokens "$seq_ids" --device cpu >"$T/lg" || { bad "logits"; break; }
  next=$(python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(max(range(len(v)), key=lambda i:(v[i],-i)))' "$T/lg")
  want=${want:+$want,}$next
  seq_ids=$seq_ids,$next
done
# generation may stop early at an EOS id, so compare the common prefix length n
[ "$IDS" = "$want" ] && ok || bad "greedy ids $IDS != recomputed argmax $want"
"$G" generate --model "$M" --tokens 3,14,15 -n 6 --ids --device cpu 2>/dev/null | cmp -s - "$T/ids" \
  && ok || bad "greedy not repeatable"

# --- text output equals detokenize of the same ids
"$G" generate --model "$M" --tokens 3,14,15 -n 6 --device cpu >"$T/text" 2>/dev/null && ok || bad "generate text"
"$G" detokenize --model "$M" --tokens "$IDS" >"$T/detok" && ok || bad "detokenize"
printf '\n' >>"$T/text"
cmp -s "$T/text" "$T/detok" && ok || bad "text '$(cat "$T/text")' != detokenize '$(cat "$T/detok")'"

# --- sampling: reproducible with a seed, top-k 1 is greedy
S="--temp 0.9 --top-k 40 --top-p 0.9 --seed 11"
a=$("$G" generate --device cpu --model "$M" --prompt "hello there" -n 12 --ids $S 2>/dev/null)
b=$("$G" generate --device cpu --model "$M" --prompt "hello there" -n 12 --ids $S 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "sampling not reproducible: $a / $b"
g=$("$G" generate --device cpu --model "$M" --prompt "hello there" -n 12 --ids 2>/dev/null)
k1=$("$G" generate --device cpu --model "$M" --prompt "hello there" -n 12 --ids --temp 0.9 --top-k 1 --seed 4 2>/dev/null)
[ -n "$g" ] && [ "$g" = "$k1" ] && ok || bad "top-k 1 ($k1) != greedy ($g)"
"$G" generate --device cpu --model "$M" --prompt "hi" --chat -n 4 --ids >/dev/null 2>&1 && ok || bad "--chat"

# --- batch file: input order, each prompt as alone
printf '"hello there"\n\n"a"\n"the quick brown fox"\n' >"$T/batch.jsonl"
"$G" generate --device cpu --model "$M" --batch-file "$T/batch.jsonl" -n 5 --max-batch 2 >"$T/bout" 2>"$T/berr" \
  && ok || bad "batch-file: $(cat "$T/berr")"
[ "$(wc -l <"$T/bout")" -eq 3 ] && ok || bad "batch lines: $(cat "$T/bout")"
i=0
for p in "hello there" "a" "the quick brown fox"; do
  alone=$("$G" generate --device cpu --model "$M" --prompt "$p" -n 5 --ids 2>/dev/null)
  python3 - "$T/bout" "$i" "$alone" <<'EOF' && ok || bad "batch prompt $i differs from alone ($alone)"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
o = json.loads(lines[int(sys.argv[2])])
want = [int(x) for x in sys.argv[3].split(",")] if sys.argv[3] else []
assert o["index"] == int(sys.argv[2]), o
assert o["ids"] == want, (o["ids"], want)
assert isinstance(o["text"], str)
EOF
  i=$((i + 1))
done
printf '"x"\nnot json\n' >"$T/badbatch"
expect_fail ":2: not a JSON string" "$G" generate --device cpu --model "$M" --batch-file "$T/badbatch"
# a line is exactly one JSON string (issue 10 item 4): trailing text or a second string is an
# error naming the line, not a prompt made of the first string
for line in '"xyz" garbage' '"p""q"' '"a" "b"' '["x"]'; do
  printf '"ok"\n%s\n' "$line" >"$T/badbatch"
  expect_exit 1 ":2: not a JSON string" "$G" generate --device cpu --model "$M" --batch-file "$T/badbatch" -n 1
done
# a prompt holding U+0000 is used whole: its output equals that of the same text tokenized
# whole (tokenize --file keeps the NUL), not that of the text cut at the NUL
printf '"abc\\u0000def"\n' >"$T/nul.jsonl"
"$G" generate --device cpu --model "$M" --batch-file "$T/nul.jsonl" -n 4 >"$T/nul.out" 2>/dev/null && ok || bad "NUL prompt"
full=$("$G" tokenize --model "$M" --file "$T/nul.jsonl" | tr -d '[]')
cut=$("$G" tokenize --model "$M" abc)
want=$("$G" generate --device cpu --model "$M" --tokens "$full" -n 4 --ids 2>/dev/null)
python3 -c 'import json,sys; o=json.loads(open(sys.argv[1]).read()); assert o["ids"]==[int(x) for x in sys.argv[2].split(",")], (o, sys.argv[2])' \
  "$T/nul.out" "$want" && [ "$full" != "$cut" ] && ok || bad "NUL prompt cut: $(cat "$T/nul.out") want $want"
expect_exit 1 "U+0000" "$G" generate --device cpu --model "$M" --batch-file "$T/nul.jsonl" -n 1 --chat
: >"$T/empty"
expect_fail "holds no prompts" "$G" generate --device cpu --model "$M" --batch-file "$T/empty"

# --- stdout that cannot be written: exit 1, not 0 (issue 10 item 8)
expect_stdout_error "$G" generate --device cpu --model "$M" --tokens 3,14,15 -n 3
expect_stdout_error "$G" generate --device cpu --model "$M" --tokens 3,14,15 -n 3 --ids
expect_stdout_error "$G" generate --device cpu --model "$M" --batch-file "$T/batch.jsonl" -n 2

# --- usage errors exit 2, runtime failures 1 (issue 10 item 10)
expect_exit 2 "--tokens" "$G" generate --device cpu --model "$M" --tokens 1,,2
expect_exit 2 "--tokens" "$G" generate --device cpu --model /nonexistent --tokens x
expect_exit 1 "outside the model's vocabulary" "$G" generate --device cpu --model "$M" --tokens 1,400 --ids
expect_exit 2 "--variants" "$G" bench --variants baseline,foo
expect_exit 2 "--prefill" "$G" bench --prefill 1,,2

# --- bad generate arguments
expect_fail "--model DIR is required" "$G" generate --device cpu --prompt hi
expect_fail "exactly one of" "$G" generate --device cpu --model "$M" --prompt hi --tokens 1,2
expect_fail "exactly one of" "$G" generate --device cpu --model "$M"
expect_fail "-n" "$G" generate --device cpu --model "$M" --prompt hi -n 0
expect_fail "--temp" "$G" generate --device cpu --model "$M" --prompt hi --temp -1
expect_fail "--top-p" "$G" generate --device cpu --model "$M" --prompt hi --top-p 0
expect_fail "--top-p" "$G" generate --device cpu --model "$M" --prompt hi --top-p 1.5
expect_fail "--top-k" "$G" generate --device cpu --model "$M" --prompt hi --top-k x
expect_fail "outside the model's vocabulary" "$G" generate --device cpu --model "$M" --tokens 1,400 --ids
expect_fail "--tokens" "$G" generate --device cpu --model "$M" --tokens 1,,2
expect_fail "more than the context" "$G" generate --device cpu --model "$M" --tokens 1,2,3,4,5 --max-context 4
expect_fail "max_position_embeddings" "$G" generate --device cpu --model "$M" --prompt hi --max-context 97
expect_fail "more than the context" "$G" generate --device cpu --model "$M" --prompt "$(head -c 2000 /dev/zero | tr '\0' 'x')"
expect_fail "--chat" "$G" generate --device cpu --model "$M" --tokens 1,2 --chat
expect_fail "unknown option '--bogus'" "$G" generate --device cpu --model "$M" --prompt hi --bogus
expect_fail "--device" "$G" generate --model "$M" --prompt hi --device tpu
expect_fail "cannot open" "$G" generate --device cpu --model "$M" --batch-file "$T/nope"
expect_fail "needs a value" "$G" generate --device cpu --model "$M" --prompt
expect_fail "$T/nope" "$G" generate --device cpu --model "$T/nope" --prompt hi

# --- bench on a tiny shape
B="--device cpu --layers 2 --hidden 64 --heads 4 --kv-heads 2 --head-dim 16 --intermediate 128 --vocab 256"
"$G" bench $B --prefill 16,32 --depths 0,16 --batch 1,2 --decode-tokens 4 --reps 2 \
  --csv "$T/b.csv" --json "$T/b.json" >"$T/b.md" 2>"$T/b.err" && ok || bad "bench: $(cat "$T/b.err")"
# markdown: header, separator, 3 variants x (2 prefill + 2 batches x 2 depths) rows
[ "$(grep -c '^| \(baseline\|headwise\|elementwise\) |' "$T/b.md")" -eq 18 ] && ok || bad "markdown rows: $(cat "$T/b.md")"
grep -q '^|---|' "$T/b.md" && grep -q '^| variant | test |' "$T/b.md" && ok || bad "markdown header"
grep -q "commit" "$T/b.md" && grep -q "device cpu" "$T/b.md" && ok || bad "markdown commit/device"
python3 - "$T/b.csv" "$T/b.json" <<'EOF' && ok || bad "bench CSV/JSON"
import csv, json, math, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 18, len(rows)
for v in ("baseline", "headwise", "elementwise"):
    r = [x for x in rows if x["variant"] == v]
    assert len(r) == 6, (v, len(r))
    assert {x["test"] for x in r} == {"prefill", "decode"}
for x in rows:
    assert float(x["mean_ms"]) > 0 and float(x["tokens_per_s"]) > 0
    assert float(x["min_ms"]) <= float(x["mean_ms"]) <= float(x["max_ms"])
    assert (x["overhead_pct"] == "") == (x["variant"] == "baseline")
d = json.load(open(sys.argv[2]))
assert d["commit"] and d["device"] == "cpu" and d["shape"]["layers"] == 2
assert len(d["rows"]) == 18
for x in d["rows"]:
    assert x["reps"] == 2 and math.isfinite(x["gb_per_s"]) and x["tflop_per_s"] > 0
    if x["test"] == "decode":
        assert x["tokens"] == 4 and x["batch"] in (1, 2) and x["depth"] in (0, 16)
EOF
# a depth beyond max positions is skipped and said so, not a crash
"$G" bench $B --max-pos 64 --variants baseline --prefill 16,128 --depths 0,62 --batch 1 \
  --decode-tokens 4 --reps 1 --warmup 0 --json "$T/s.json" >"$T/s.md" 2>/dev/null && ok || bad "bench skip"
grep -q "skipped: baseline prefill batch 1 depth 0 tokens 128" "$T/s.md" && grep -q "skipped: baseline decode batch 1 depth 62" "$T/s.md" \
  && ok || bad "skip lines: $(cat "$T/s.md")"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["skipped"])==2 and len(d["rows"])==2' "$T/s.json" \
  && ok || bad "skip json"
# the same rows run under YaRN x4 (usable context 256): nothing skipped, the scaling reported
"$G" bench $B --max-pos 64 --variants baseline --prefill 16,128 --depths 0,62 --batch 1 \
  --decode-tokens 4 --reps 1 --warmup 0 --rope-scaling yarn --rope-factor 4 --json "$T/y.json" \
  >"$T/y.md" 2>/dev/null && ok || bad "bench yarn"
grep -q "RoPE scaling yarn x4 over 64.*usable context 256" "$T/y.md" && ! grep -q skipped "$T/y.md" \
  && ok || bad "bench yarn table: $(cat "$T/y.md")"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["shape"]["usable_context"]==256 and len(d["rows"])==4 and not d["skipped"]' "$T/y.json" \
  && ok || bad "bench yarn json"
expect_fail "--rope-factor" "$G" bench --rope-scaling yarn
expect_fail "--variants" "$G" bench --variants baseline,foo
expect_fail "--batch" "$G" bench --batch 0
expect_fail "multiple of --kv-heads" "$G" bench --heads 3 --kv-heads 2
expect_fail "drop the shape flags" "$G" bench --model "$M" --layers 2
expect_fail "--reps" "$G" bench --reps 0
expect_fail "cannot write" "$G" bench $B --prefill 8 --depths 0 --batch 1 --decode-tokens 2 --reps 1 --csv "$T/nodir/x.csv"
expect_stdout_error "$G" bench $B --variants baseline --prefill 8 --depths 0 --batch 1 --decode-tokens 2 --reps 1

# --- bench progress and one depth truth (issue 10 items 11, 12): every row on stderr as it
# finishes; a row whose timed tokens ran past its nominal depth shows that range in the table,
# and the CSV and JSON carry the same three numbers (depth, timed_from, depth_end)
"$G" bench $B --variants baseline --prefill 8 --depths 16 --batch 1 --decode-tokens 4 --reps 2 \
  --csv "$T/d.csv" --json "$T/d.json" >"$T/d.md" 2>"$T/d.err" && ok || bad "bench depth run"
grep -q '^gattn bench: \[1/2\] baseline prefill' "$T/d.err" && grep -q '^gattn bench: \[2/2\] baseline decode batch 1 depth 16' "$T/d.err" \
  && ok || bad "bench progress lines: $(cat "$T/d.err")"
# filled to 16, one warm-up of 4, timed 2 x 4: from 20 to 28
grep -q '^| baseline | decode | 1 | 20..28 |' "$T/d.md" && ok || bad "depth column: $(grep decode "$T/d.md")"
python3 - "$T/d.csv" "$T/d.json" <<'EOF' && ok || bad "depth in CSV/JSON"
import csv, json, sys
r = [x for x in csv.DictReader(open(sys.argv[1])) if x["test"] == "decode"][0]
assert (r["depth"], r["timed_from"], r["depth_end"]) == ("16", "20", "28"), r
j = [x for x in json.load(open(sys.argv[2]))["rows"] if x["test"] == "decode"][0]
assert (j["depth"], j["timed_from"], j["depth_end"]) == (16, 20, 28), j
EOF
# on the CPU with no shape given, the default is a small shape, said on stderr (a quick check
# of the choice only: --reps 1 --warmup 0 and short lists keep it fast)
"$G" bench --device cpu --variants baseline --prefill 8 --depths 0 --batch 1 --decode-tokens 2 --reps 1 --warmup 0 \
  >"$T/c.md" 2>"$T/c.err" && ok || bad "bench cpu default: $(cat "$T/c.err")"
grep -q "benchmarking the 'small' shape on the CPU" "$T/c.err" && grep -q "model random: 4 layers, hidden 256" "$T/c.md" \
  && ok || bad "cpu default shape: $(cat "$T/c.err" "$T/c.md")"

finish
