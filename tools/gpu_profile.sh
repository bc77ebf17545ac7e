#!/usr/bin/env bash
# Where the time of one decode step and one prefill goes, kernel by kernel, on the GPU machine
# (issue 12: profile before optimising). Builds profile_step (bench/profile_step.c), times the
# step host-side, then profiles exactly that step with Nsight Compute (every kernel node of the
# replayed decode graph on its own) and prints one table per step: kernel, calls, total and
# mean time, DRAM bytes and achieved bandwidth, and the step's wall time minus the sum of its
# kernel times (launch gaps and host work).
#
#   OUT=/dir tools/gpu_profile.sh                      # decode b1 d0, b32 d0, prefill 2048
#   PROFILES="decode:1:4096 prefill:8192" VARIANT=headwise tools/gpu_profile.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-/tmp/gattn-profile}
mkdir -p "$OUT"
BUILD=${BUILD:-build-gpu}
VARIANT=${VARIANT:-baseline}
PROFILES=${PROFILES:-"decode:1:0 decode:32:0 prefill:2048"}
DEPS=/tmp/deps
mkdir -p "$DEPS"
for f in .deps/*.deb; do [ -e "$f" ] && dpkg -x "$f" "$DEPS"; done
export LD_LIBRARY_PATH="$DEPS/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
if ! { cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGATTN_CUDA=ON -DGATTN_WERROR=OFF \
         -DGATTN_DEPS_PREFIX="$DEPS" -DGATTN_CUDA_GENCODE="-gencode=arch=compute_90a,code=sm_90a" \
         >"$OUT/profile-configure.log" 2>&1 &&
       cmake --build "$BUILD" -j "$(nproc)" --target profile_step >"$OUT/profile-build.log" 2>&1; }; then
  tail -20 "$OUT/profile-build.log"; echo "== build FAILED"; exit 1
fi
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
for p in $PROFILES; do
  IFS=: read -r mode a b <<<"$p"
  if [ "$mode" = decode ]; then args=(--mode decode --batch "$a" --depth "$b"); tag="decode_b${a}_d${b}"
  else args=(--mode prefill --prefill "$a"); tag="prefill_${a}"; fi
  "$BUILD/bench/profile_step" "${args[@]}" --variant "$VARIANT" >"$OUT/$tag.time" 2>&1 || {
    cat "$OUT/$tag.time"; continue; }
  step_ms=$(awk '/^step_ms/ {print $2}' "$OUT/$tag.time")
  "$NCU" --profile-from-start off --graph-profiling node --clock-control none --cache-control none --csv \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum \
    "$BUILD/bench/profile_step" "${args[@]}" --variant "$VARIANT" --steps 3 \
    >"$OUT/$tag.ncu.csv" 2>"$OUT/$tag.ncu.err" || { tail -5 "$OUT/$tag.ncu.err"; continue; }
  echo "### $VARIANT $tag: $(head -1 "$OUT/$tag.time")"
  python3 - "$OUT/$tag.ncu.csv" "$step_ms" <<'PY'
import csv, sys, re, collections
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
hdr, rows = rows[0], rows[1:]
ix = {k: i for i, k in enumerate(hdr)}
kern = collections.OrderedDict()
for r in rows:
    kid = r[ix["ID"]]
    name = r[ix["Kernel Name"]]
    name = re.sub(r"\(.*", "", name).replace("void ", "")
    name = re.sub(r"<.*", "<...>", name)[:60]
    name += " " + r[ix["Grid Size"]].replace(" ", "")
    k = kern.setdefault(kid, {"name": name})
    unit, val = r[ix["Metric Unit"]], float(r[ix["Metric Value"]].replace(",", ""))
    scale = {"ns": 1e-3, "nsecond": 1e-3, "us": 1, "usecond": 1, "ms": 1e3, "msecond": 1e3,
             "byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9}.get(unit)
    if scale is None:
        sys.exit(f"unknown unit {unit!r} in the ncu output")
    k[r[ix["Metric Name"]]] = val * scale
agg = collections.OrderedDict()
for k in kern.values():
    a = agg.setdefault(k["name"], [0, 0.0, 0.0])
    a[0] += 1
    a[1] += k.get("gpu__time_duration.sum", 0)
    a[2] += k.get("dram__bytes_read.sum", 0) + k.get("dram__bytes_write.sum", 0)
tot_us = sum(a[1] for a in agg.values())
tot_b = sum(a[2] for a in agg.values())
step_us = float(sys.argv[2]) * 1e3
print("| kernel | calls | total us | mean us | share | DRAM MB | GB/s |")
print("|---|---:|---:|---:|---:|---:|---:|")
for n, (c, t, b) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
    print(f"| {n} | {c} | {t:.1f} | {t/c:.2f} | {100*t/tot_us:.1f}% | {b/1e6:.1f} | {b/t/1e3 if t else 0:.0f} |")
print(f"| **sum of kernels** | {len(kern)} | {tot_us:.1f} | | | {tot_b/1e6:.1f} | {tot_b/tot_us/1e3:.0f} |")
print(f"| **step, host clock** | | {step_us:.1f} | | | | {tot_b/step_us/1e3:.0f} |")
print(f"| **gaps + host** | | {step_us - tot_us:.1f} | | {100*(step_us-tot_us)/step_us:.1f}% of the step | | |")
PY
done
