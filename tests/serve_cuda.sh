#!/usr/bin/env bash
# gattn serve --device cuda end to end (issue 13; label gpu, exit 77 without a GPU or python3).
# The GPU machine has no node and maybe no curl, so the client is tests/serve_client.py
# (python3's standard library): 32 concurrent token-id requests (mixed prompt lengths and
# max_tokens, temperature 0, half streamed) against two servers on a head_dim-64 bf16 model,
# each answer checked against `gattn generate --device cuda` of the same prompt alone, its first
# token against the CPU backend's greedy one, finish_reason and usage; /metrics must parse; each
# server exits 0 on SIGTERM.
#
#  P: paged (--kv-blocks), both sides --deterministic (ga_session_opts.deterministic: the
#     plain GEMM for every shape, a decode-attention split fixed whatever the batch and KV
#     bucket), every token exactly equal to generate's. On purpose the server's --max-context
#     (1024: buckets up to 1024) differs from generate's (512), prompts are prefilled in shared
#     chunks (--prefill-chunk 128) where generate prefills them whole (this relies on both
#     prefill attention kernels walking the key tiles from key 0 for every row whatever the
#     query tiling: where a failure here would point first, with tests/test_determ.c gpu),
#     and the cache (40 blocks of 16 for up to 32 x 240 tokens) is small enough that requests
#     are preempted and recomputed (prompt prefilled, sent tokens replayed by decode steps);
#     the client prints how many were.
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
start_server P --model "$TMP/m" --device "$DEV" --deterministic --max-batch 32 \
  --max-context 1024 --prefill-chunk 128 --kv-blocks 40 --kv-block-size 16
grep -q "paged KV cache" "$TMP/P.err" || fail "server P is not paged: $(cat "$TMP/P.err")"
client --port "$PORT_P" --paged --exact --max-prompt 200 \
  --gen-args "--deterministic --max-context 512"
stop P
t1=$(date +%s)
start_server S --model "$TMP/m" --device "$DEV" --max-batch 32 --max-context 512
client --port "$PORT_S" --max-prompt 300 --gen-args "--max-context 512"
stop S
echo "serve_cuda ($DEV): paged + deterministic + exact $((t1 - t0)) s, slots + bf16 $(($(date +%s) - t1)) s"
