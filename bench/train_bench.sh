#!/usr/bin/env bash
# Training speed, gemkit against an equivalent Python torch 1.13 loop, side by side in one run:
# the same Llama configurations (about 15M and 50M parameters), batch 8 x seq 256, AdamW,
# random tokens, fp32, one intra-op thread and OpenBLAS on every core (docs/design/toolchain.md). OpenBLAS reads
# OMP_NUM_THREADS when OPENBLAS_NUM_THREADS is unset, so both are set explicitly.
#
#   bench/train_bench.sh [BUILD_DIR] [STEPS]      (after ./setup.sh build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
STEPS=${2:-10}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$(nproc --all)}  # before OMP_NUM_THREADS: nproc honours it
export OMP_NUM_THREADS=1
results=$(mktemp)
for size in 15m 50m; do
  "$BUILD/bench/train_bench" --size $size --steps "$STEPS" | tee -a "$results"
  /usr/bin/python3 bench/train_bench.py --size $size --steps "$STEPS" | tee -a "$results"
done
/usr/bin/python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("\n| model | impl | params | tokens/s | GFLOP/s | matmul peak | MFU | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    print("| %s | %s | %.1fM | %.0f | %.1f | %.1f | %.0f%% | %.0f |" % (r["size"], r["impl"], r["params"] / 1e6,
          r["tokens_per_s"], r["gflops"], r["peak_gflops"], 100 * r["mfu"], r["peak_rss_mb"]))
for size in ("15m", "50m"):
    g = [r for r in rows if r["size"] == size and r["impl"] == "gemkit"]
    p = [r for r in rows if r["size"] == size and r["impl"] == "python-torch"]
    if g and p:
        print("%s: gemkit / python tokens/s = %.2f" % (size, g[0]["tokens_per_s"] / p[0]["tokens_per_s"]))
PY
rm -f "$results"
