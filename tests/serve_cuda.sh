#!/usr/bin/env bash
# gattn serve --device cuda end to end (issue 13; label gpu, exit 77 without a GPU or python3).
# The GPU machine has no node and maybe no curl, so the client is tests/serve_client.py
# (python3's standard library): 32 concurrent token-id requests (mixed prompt lengths and
# max_tokens, temperature 0, half streamed) against two servers on a head_dim-64 bf16 model,
# each answer checked against `gattn generate --device cuda` of the same prompt alone, its first
# token against the CPU backend's greedy one, finish_reason and usage; /metrics must parse; each
# server exits 0 on SIGTERM.
#
#  P: paged (--kv-memory), every token exactly equal to generate's. CUDA is batch-invariant
#     only under two settings, both needed, so they are set on both sides: the plain GEMM
#     (--cuda-gemm fallback: cuBLAS and the GEMV pick kernels, and summation orders, by the
#     batch's row count) and --max-context 256, the first KV bucket (the decode attention's
#     split count follows min(--max-context, the batch's KV bucket) and the batch size, and
#     the split count changes the summation order; at 256 it is 2 for any batch up to 32).
#     Prompts are prefilled in shared chunks (--prefill-chunk 512, pieces of 256 rows in the
#     backend), so a prompt may be split where generate prefills it whole: this relies on the
#     prefill attention walking the key tiles from key 0 for every row whatever the query
#     tiling (kernels/attention_prefill.cu), and is where a failure here would point first.
#     The cache is sized so nothing is preempted (a recomputed request's K/V come from a
#     prefill, which rounds differently from the decode steps that made them).
#  S: slots, the defaults (cuBLAS, --max-context 512, prompts up to 300 tokens prefilled in
#     shared 512-row chunks): equal to generate up to a near tie by the CPU's logits, within
#     the bf16 tolerance (tests/serve_client.py says how).
#
# GA_SERVE_DEVICE=cpu runs the same on the CPU backend (every comparison exact), to check the
# script and the client on a machine without a GPU.
source "$GA_SRC/tests/serve_lib.sh"
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }
DEV=${GA_SERVE_DEVICE:-cuda}
make_model "$TMP/m" --dtype bf16 --layers 2 --hidden 256 --intermediate 512 --heads 4 --kv-heads 2 \
  --head-dim 64 --vocab 1000

# No GPU (or a build without CUDA): skipped. Any other failure of the probe is a failure.
rc=0
"$GA_CLI" generate --model "$TMP/m" --device "$DEV" --tokens 1,2,3 -n 2 --ids >"$TMP/probe.out" \
  2>"$TMP/probe.err" || rc=$?
if [ "$rc" != 0 ]; then
  if grep -qE "no CUDA GPU is available|has no CUDA backend" "$TMP/probe.err"; then
    echo "skipped: $(cat "$TMP/probe.err")"
    exit 77
  fi
  fail "gattn generate --device $DEV: exit $rc: $(cat "$TMP/probe.err")"
fi

client() {
  timeout 900 python3 "$GA_SRC/tests/serve_client.py" --cli "$GA_CLI" --model "$TMP/m" \
    --device "$DEV" --n 32 "$@"
}

# stop NAME: SIGTERM, then exit 0 with the shutdown notice
stop() {
  local pid_var="PID_$1" rc=0
  kill -TERM "${!pid_var}"
  wait "${!pid_var}" || rc=$?
  [ "$rc" = 0 ] || fail "server $1: exit code $rc after SIGTERM, want 0: $(tail -3 "$TMP/$1.err")"
  grep -q SIGTERM "$TMP/$1.err" || fail "server $1: no shutdown notice on stderr"
}

t0=$(date +%s)
start_server P --model "$TMP/m" --device "$DEV" --cuda-gemm fallback --max-batch 32 \
  --max-context 256 --kv-memory 0.05
grep -q "paged KV cache" "$TMP/P.err" || fail "server P is not paged: $(cat "$TMP/P.err")"
client --port "$PORT_P" --paged --exact --max-prompt 200 \
  --gen-args "--cuda-gemm fallback --max-context 256"
stop P
t1=$(date +%s)
start_server S --model "$TMP/m" --device "$DEV" --max-batch 32 --max-context 512
client --port "$PORT_S" --max-prompt 300 --gen-args "--max-context 512"
stop S
echo "serve_cuda ($DEV): paged + exact $((t1 - t0)) s, slots + bf16 $(($(date +%s) - t1)) s"
