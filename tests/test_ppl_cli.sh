#!/usr/bin/env bash
# gattn perplexity (issue 14) checked against references that share no code with it:
#  1. the mean NLL of each fixture sequence computed here (python, float64) from transformers'
#     own logits in tests/fixtures/*/reference_logits.json, against `perplexity --tokens-file`
#     with one window over the whole sequence;
#  2. stride and bucket arithmetic on a tiny model: a brute-force loop over Hugging Face's
#     sliding-window recipe, each window's logits from `gattn logits --all`, against the JSON;
#  3. bad input: one-line errors with exit 1 (runtime) or 2 (usage);
#  4. --rope-* on perplexity, logits and generate: contexts past max_position_embeddings;
#  5. --plot: a PNG (decoded here with zlib, no code shared with the writer) that holds a line
#     in each series' colour, JPEG by name, bad paths and fonts as one-line errors; --batch
#     (N windows a forward pass) changes nothing in the results.
. "$(dirname "$0")/cli_harness.sh" ppl
command -v python3 >/dev/null || { echo "python3 missing: skipped"; exit 77; }

# ---------------------------------------------------------------- 1. fixtures
n_fix=0
for ref in "$GA_FIXTURES"/*/reference_logits.json; do
  dir=$(dirname "$ref")
  nseq=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['sequences']))" "$ref")
  for ((i = 0; i < nseq; i++)); do
    python3 - "$ref" "$i" "$T/ids" "$T/want" <<'PY'
import json, math, sys
d = json.load(open(sys.argv[1])); i = int(sys.argv[2])
s, L = d["sequences"][i], d["logits"][i]
tot = 0.0
for j in range(1, len(s)):
    row = L[j - 1]; m = max(row)
    tot += math.log(sum(math.exp(x - m) for x in row)) + m - row[s[j]]
open(sys.argv[3], "w").write(" ".join(map(str, s)) + "\n")
open(sys.argv[4], "w").write("%d %.12f\n" % (len(s) - 1, tot / (len(s) - 1)))
PY
    len=$(( $(wc -w <"$T/ids") ))
    if ! "$G" perplexity --model "$dir" --tokens-file "$T/ids" --context "$len" --device cpu \
        --json "$T/got.json" >/dev/null 2>"$T/err"; then
      bad "$(basename "$dir") seq $i: $(cat "$T/err")"; continue
    fi
    if python3 - "$T/got.json" "$T/want" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["models"][0]["results"][0]
n, nll = open(sys.argv[2]).read().split()
ok = r["tokens"] == int(n) and abs(r["nll"] - float(nll)) < 2e-4
if not ok: print("got", r["tokens"], r["nll"], "want", n, nll)
sys.exit(0 if ok else 1)
PY
    then ok; n_fix=$((n_fix + 1)); else bad "$(basename "$dir") seq $i: NLL differs from transformers'"; fi
  done
done
[ "$n_fix" -ge 2 ] || bad "only $n_fix fixture sequences checked"

# ---------------------------------------------------------------- 2. windows and buckets
"$G" write-model --out "$T/m" --max-pos 64 --vocab 300 --layers 2 --hidden 32 --heads 2 \
  --kv-heads 1 --head-dim 16 --intermediate 32 --tokenizer >/dev/null 2>&1 \
  || { bad "write-model failed"; finish; }
python3 -c "import random; random.seed(3); print(','.join(str(random.randrange(300)) for _ in range(37)))" >"$T/ids37"
for cs in "8 0" "8 3" "8 8" "5 1" "16 5" "37 0" "40 0" "2 0" "6 4"; do
  set -- $cs
  ctx=$1 stride=$2
  sarg=(); [ "$stride" -gt 0 ] && sarg=(--stride "$stride")
  if ! "$G" perplexity --model "$T/m" --tokens-file "$T/ids37" --context "$ctx" "${sarg[@]}" \
      --device cpu --threads 1 --json "$T/w.json" >/dev/null 2>"$T/err"; then
    bad "ctx $ctx stride $stride: $(cat "$T/err")"; continue
  fi
  if python3 - "$G" "$T/m" "$T/ids37" "$ctx" "$stride" "$T/w.json" <<'PY'
import json, math, subprocess, sys
g, model, idf, C, S, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
ids = [int(x) for x in open(idf).read().strip().split(",")]
n = len(ids)
C = min(C, n)
S = S or C
# Hugging Face's recipe (docs: perplexity of fixed-length models), token by token
scored = []  # (position in window, nll)
prev_end = 0
for begin in range(0, n, S):
    end = min(begin + C, n)
    trg_len = end - prev_end
    win = ids[begin:end]
    rows = subprocess.run([g, "logits", "--model", model, "--all", "--device", "cpu", "--threads", "1",
                           "--tokens", ",".join(map(str, win))], capture_output=True, text=True, check=True)
    logits = [json.loads(l) for l in rows.stdout.splitlines()]
    labels = [-100] * (len(win) - trg_len) + win[len(win) - trg_len:]
    for q in range(1, len(win)):  # label q is predicted by row q-1; label 0 is never scored
        if labels[q] == -100: continue
        r = logits[q - 1]; m = max(r)
        scored.append((q, math.log(sum(math.exp(x - m) for x in r)) + m - r[labels[q]]))
    prev_end = end
    if end == n: break
got = json.load(open(out))["models"][0]["results"][0]
bad = []
if got["tokens"] != len(scored): bad.append("tokens %d != %d" % (got["tokens"], len(scored)))
mean = sum(l for _, l in scored) / len(scored)
if abs(got["nll"] - mean) > 1e-5: bad.append("nll %.7f != %.7f" % (got["nll"], mean))
if abs(got["ppl"] - math.exp(mean)) > 1e-4 * math.exp(mean): bad.append("ppl")
buckets = {}
for q, l in scored:
    b = q.bit_length() - 1
    buckets.setdefault(b, []).append(l)
want_nb = (C - 1).bit_length()
if len(got["buckets"]) != want_nb: bad.append("%d buckets, want %d" % (len(got["buckets"]), want_nb))
for b, e in enumerate(got["buckets"]):
    lo, hi = 1 << b, min((2 << b) - 1, C - 1)
    if (e["from"], e["to"]) != (lo, hi): bad.append("bucket %d is %d-%d" % (b, e["from"], e["to"]))
    ls = buckets.get(b, [])
    if e["tokens"] != len(ls): bad.append("bucket %d-%d: %d tokens, want %d" % (lo, hi, e["tokens"], len(ls)))
    elif ls and abs(e["nll"] - sum(ls) / len(ls)) > 1e-5: bad.append("bucket %d-%d nll" % (lo, hi))
if bad: print("ctx", C, "stride", S, ":", "; ".join(bad))
sys.exit(1 if bad else 0)
PY
  then ok; else bad "ctx $ctx stride $stride: differs from the brute-force recipe"; fi
done

# several models side by side, text input through each model's tokenizer, CSV
"$G" write-model --out "$T/m2" --variant headwise --max-pos 64 --vocab 300 --layers 2 --hidden 32 \
  --heads 2 --kv-heads 1 --head-dim 16 --intermediate 32 --tokenizer --seed 9 >/dev/null 2>&1
printf 'the quick brown fox jumps over the lazy dog, twice over.\n' >"$T/text"
if "$G" perplexity --model "$T/m" --model "$T/m2" --file "$T/text" --context 8,16 --device cpu \
    --csv "$T/o.csv" >"$T/out" 2>"$T/err" && grep -q "m2" "$T/out" &&
    [ "$(grep -c ',all,' "$T/o.csv")" -eq 4 ]; then ok; else bad "two models, --file, --csv: $(cat "$T/err")"; fi

# ---------------------------------------------------------------- 3. bad input
P=(perplexity --model "$T/m" --device cpu)
: >"$T/empty"
echo 7 >"$T/one"
echo "1, 2, 3, x" >"$T/junk"
echo "1 2 300 3" >"$T/oov"
echo "1 2 99999999999 3" >"$T/huge"
expect_exit 1 "needs at least 2" "$G" "${P[@]}" --tokens-file "$T/empty"
expect_exit 1 "has 1 token" "$G" "${P[@]}" --tokens-file "$T/one"
expect_exit 1 "needs at least 2" "$G" "${P[@]}" --file "$T/empty"
expect_exit 1 "item 4 is not a token id" "$G" "${P[@]}" --tokens-file "$T/junk"
expect_exit 1 "token id 300 (item 3)" "$G" "${P[@]}" --tokens-file "$T/oov"
expect_exit 1 "too large" "$G" "${P[@]}" --tokens-file "$T/huge"
printf '1,,2 3' >"$T/dcomma"
printf '1 2 3,' >"$T/tcomma"
printf '\xff\xfe text' >"$T/badutf8"
expect_exit 1 "item 2 is empty" "$G" "${P[@]}" --tokens-file "$T/dcomma"
expect_exit 1 "a comma after the last id" "$G" "${P[@]}" --tokens-file "$T/tcomma"
expect_exit 1 "$T/badutf8: encode: invalid UTF-8" "$G" "${P[@]}" --file "$T/badutf8"
expect_exit 1 "cannot open" "$G" "${P[@]}" --tokens-file "$T/nope"
expect_exit 1 "usable context of 64" "$G" "${P[@]}" --tokens-file "$T/ids37" --context 65
expect_exit 2 "--stride 9 is longer than --context 8" "$G" "${P[@]}" --tokens-file "$T/ids37" --context 8 --stride 9
expect_exit 2 "exactly one of" "$G" "${P[@]}" --tokens-file "$T/ids37" --file "$T/text"
expect_exit 2 "exactly one of" "$G" "${P[@]}"
expect_exit 2 "--model DIR is required" "$G" perplexity --tokens-file "$T/ids37"
expect_exit 2 "--context" "$G" "${P[@]}" --tokens-file "$T/ids37" --context 1
expect_exit 2 "--context" "$G" "${P[@]}" --tokens-file "$T/ids37" --context 8,,16
expect_exit 2 "needs --rope-scaling" "$G" "${P[@]}" --tokens-file "$T/ids37" --rope-factor 2
expect_exit 2 "dynamic NTK" "$G" "${P[@]}" --tokens-file "$T/ids37" --rope-scaling dynamic --rope-factor 2
expect_exit 2 "needs --rope-factor" "$G" "${P[@]}" --tokens-file "$T/ids37" --rope-scaling yarn
expect_exit 1 "--json" "$G" "${P[@]}" --tokens-file "$T/ids37" --context 8 --json "$T/no/such/x.json"

# ---------------------------------------------------------------- 4. --rope-* past max_position_embeddings
python3 -c "print(' '.join(str((i * 7) % 300) for i in range(150)))" >"$T/ids150"
if "$G" perplexity --model "$T/m" --device cpu --tokens-file "$T/ids150" --context 128 \
    --rope-scaling yarn --rope-factor 4 --json "$T/y.json" >/dev/null 2>"$T/err" &&
    python3 -c "import json,math,sys; r=json.load(open(sys.argv[1]))['models'][0]; x=r['results'][0]; sys.exit(0 if x['tokens']==127+21 and math.isfinite(x['nll']) and r['rope_scaling'].startswith('yarn x4 over 64') else 1)" "$T/y.json"
then ok; else bad "yarn x4 perplexity at context 128: $(cat "$T/err")"; fi
expect_exit 1 "usable context of 256" "$G" "${P[@]}" --tokens-file "$T/ids150" --context 257 --rope-scaling linear --rope-factor 4
long=$(seq -s, 1 100 | sed 's/[0-9]\+/3/g')
if [ "$("$G" logits --model "$T/m" --device cpu --all --tokens "$long" --rope-scaling yarn --rope-factor 2 | wc -l)" -eq 100 ]; then ok; else bad "logits with yarn past 64"; fi
expect_exit 1 "max_position_embeddings 64" "$G" logits --model "$T/m" --device cpu --tokens "$long"
if "$G" info --model "$T/m" --rope-scaling yarn --rope-factor 4 --rope-original-max 32 | grep -q "usable context   128 tokens"; then ok; else bad "info usable context"; fi

# ---------------------------------------------------------------- 5. --plot and --batch
PL=(perplexity --model "$T/m" --model "$T/m2" --tokens-file "$T/ids37" --context 8,16 --device cpu)
if "$G" "${PL[@]}" --plot "$T/p.png" >"$T/out" 2>"$T/err" && grep -q "wrote $T/p.png" "$T/out" &&
    python3 - "$T/p.png" <<'PY'
import struct, sys, zlib
d = open(sys.argv[1], "rb").read()
assert d[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, w = 8, b"", 0
while pos < len(d):
    n, t = struct.unpack(">I4s", d[pos:pos + 8])
    body = d[pos + 8:pos + 8 + n]
    if t == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        assert depth == 8 and ctype == 2, "not RGB8"
    if t == b"IDAT": idat += body
    pos += 12 + n
raw, stride, rows, prev = zlib.decompress(idat), 3 * w, [], bytearray(3 * w)
for y in range(h):  # PNG's row filters (spec section 9)
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - 3] if i >= 3 else 0
        b, c = prev[i], prev[i - 3] if i >= 3 else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(line); prev = line
# four lines (2 models x 2 contexts) in matplotlib's first four tab10 colours
want = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
count = {c: 0 for c in want}
for line in rows:
    for x in range(w):
        c = tuple(line[3 * x:3 * x + 3])
        if c in count: count[c] += 1
assert w > 400 and h > 300, "size %dx%d" % (w, h)
assert all(v > 100 for v in count.values()), count
assert all(rows[y][:3] == b"\xff\xff\xff" for y in (0, h - 1)), "corners not white"
PY
then ok; else bad "--plot PNG: $(cat "$T/err")"; fi
if "$G" "${PL[@]}" --plot "$T/p.JPG" >/dev/null 2>"$T/err" &&
    [ "$(head -c 2 "$T/p.JPG" | od -An -tx1 | tr -d ' ')" = ffd8 ]; then ok; else bad "--plot .JPG: $(cat "$T/err")"; fi
mkdir -p "$T/dir.png"
expect_exit 2 "--plot $T/p.gif: the name must end in .png" "$G" "${PL[@]}" --plot "$T/p.gif"
expect_exit 2 "--plot" "$G" "${PL[@]}" --plot "$T/noext"
expect_exit 1 "--plot: cannot write $T/no/such/p.png" "$G" "${PL[@]}" --plot "$T/no/such/p.png"
expect_exit 1 "--plot: $T/dir.png is a directory" "$G" "${PL[@]}" --plot "$T/dir.png"
expect_exit 1 "--font" "$G" "${PL[@]}" --plot "$T/f.png" --font "$T/nofont.ttf"
[ -e "$T/f.png" ] && bad "a failing run wrote its plot" || ok
expect_exit 2 "--font needs --plot" "$G" "${PL[@]}" --font "$T/nofont.ttf"
GATTN_FONT="$T/nofont.ttf" expect_exit 1 "GATTN_FONT" "$G" "${PL[@]}" --plot "$T/f.png"
# --batch N: N windows a forward pass, the same numbers bit for bit on the CPU (perplexity.h)
if "$G" "${PL[@]}" --stride 5 --batch 1 --json "$T/b1.json" >/dev/null 2>&1 &&
    "$G" "${PL[@]}" --stride 5 --batch 3 --json "$T/b3.json" >/dev/null 2>&1 &&
    cmp -s "$T/b1.json" "$T/b3.json"; then ok; else bad "--batch 3 changed the results"; fi
if "$G" perplexity --help | grep -A2 -- "--batch" | grep -q "windows run together"; then ok; else bad "--batch help"; fi
finish
