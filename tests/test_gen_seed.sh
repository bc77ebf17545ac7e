#!/usr/bin/env bash
# Sampled generation gives a prompt the same tokens alone and at any place in a --batch-file
# (issue 10 item 6): with --temp 0.8 --seed 1, each prompt of a 3-prompt batch file decoded
# 2 at a time (so the third lands in a second chunk) equals the same prompt run alone, and a
# prompt repeated in one batch gets the same tokens both times.
. "$(dirname "$0")/cli_harness.sh" genseed

M=$T/m
"$G" write-model --out "$M" --variant headwise --tokenizer --layers 2 --hidden 64 --heads 4 \
  --kv-heads 2 --head-dim 16 --intermediate 96 --vocab 400 --max-pos 96 --seed 3 --init-std 0.1 \
  >/dev/null && ok || bad "write-model"
S="--temp 0.8 --seed 1 -n 12"
printf '"hello there"\n"the quick brown fox"\n"hello there"\n' >"$T/batch.jsonl"
"$G" generate --device cpu --model "$M" --batch-file "$T/batch.jsonl" --max-batch 2 $S \
  >"$T/bout" 2>"$T/berr" && ok || bad "batch-file: $(cat "$T/berr")"
i=0
for p in "hello there" "the quick brown fox" "hello there"; do
  alone=$("$G" generate --device cpu --model "$M" --prompt "$p" --ids $S 2>"$T/aerr") \
    && ok || bad "alone: $(cat "$T/aerr")"
  python3 - "$T/bout" "$i" "$alone" <<'PY' && ok || bad "sampled: prompt $i batched differs from alone ($alone)"
import json, sys
o = json.loads(open(sys.argv[1]).read().splitlines()[int(sys.argv[2])])
want = [int(x) for x in sys.argv[3].split(",")] if sys.argv[3] else []
assert o["index"] == int(sys.argv[2]), o
assert o["ids"] == want, (o["ids"], want)
PY
  i=$((i + 1))
done
# The draws are random, not greedy: another seed changes the tokens.
a1=$("$G" generate --device cpu --model "$M" --prompt "hello there" --ids $S 2>/dev/null)
a2=$("$G" generate --device cpu --model "$M" --prompt "hello there" --ids --temp 0.8 --seed 2 -n 12 2>/dev/null)
[ -n "$a1" ] && [ "$a1" != "$a2" ] && ok || bad "seed 1 and seed 2 gave the same ids ($a1)"
finish
