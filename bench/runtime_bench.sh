#!/usr/bin/env bash
# gemkit-run against llama.cpp on the same GGUF files, side by side in one run (docs/runtime.md),
# and the routed compact models against their dense exports (same runtime).
#   bench/runtime_bench.sh [REPS=3] [OUT=out/bench/runtime]
#   FILES="smollm2-q8_0 smollm2-q4_0" bench/runtime_bench.sh 1 out/bench/runtime-check   # some files only
# Needs: ./setup.sh build (gemkit-run, build/bench/read_bandwidth), tests/llama_cpp/install.sh
# (node-llama-cpp), bench/build_llama_bench.sh (llama.cpp's own llama-bench, -march=native),
# bench/make_bench_models.sh (SmolLM2-135M-Instruct, the model of record, and the base and
# ~100M-parameter Q8_0/Q4_0 files), and for the routed rows bench/attach_router on a copy of the
# 100M model plus the law DTR run's checkpoint (see docs/runtime.md).
# FILES: the files of the side-by-side table, names in out/bench/models without .gguf (default:
# all six, SmolLM2 first). ROUTED=0/1: the routed pairs (default 1 when FILES is not set, else 0).
# The decode roofline: build/bench/read_bandwidth (sustained read bandwidth of a 1 GiB buffer, 1
# and 2 threads) runs once first, into OUT/read_bandwidth.json. Per row, decode GB/s = the weight
# bytes a decoded token reads (gemkit-run's weight_bytes_per_token, the same for both runtimes:
# same file) x decode tokens/s, and its share of the read bandwidth at the same thread count.
# llama.cpp's speeds are llama-bench's (pp128; tg64 after 128 cached tokens, the positions
# gemkit-run decodes at); TTFT and peak RSS come from node-llama-cpp (the binding adds
# per-call overhead, bench/README-llama-cpp.md). Each command runs in a raised-priority
# autogroup, gemkit-run and llama.cpp interleaved, so background work weighs the same on both.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-3}
OUT=${2:-out/bench/runtime}
RUN=${GEMKIT_RUN:-build/runtime/gemkit-run}
READ_BW=${READ_BANDWIDTH:-build/bench/read_bandwidth}
FILES_GIVEN=${FILES:+1}
FILES=${FILES:-smollm2-q8_0 smollm2-q4_0 gemkit-base-q8_0 gemkit-base-q4_0 llama100m-q8_0 llama100m-q4_0}
if [ -n "$FILES_GIVEN" ]; then ROUTED=${ROUTED:-0}; else ROUTED=${ROUTED:-1}; fi
for x in "$RUN" "$READ_BW"; do
  [ -x "$x" ] || { echo "runtime_bench: $x not found (build it: cmake --build build --target gemkit-run read_bandwidth)" >&2; exit 1; }
done
mkdir -p "$OUT"
M=out/bench/models
PROMPT_TEXT="$(head -c 2000 out/bench/calibration.txt 2>/dev/null || echo 'The court held that the contract was void.')"
: > "$OUT/results.jsonl"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/load.txt"
hi() { setsid -w sh -c 'echo -10 > /proc/self/autogroup 2>/dev/null; exec "$@"' sh "$@"; }
for f in $FILES; do
  [ -f "$M/$f.gguf" ] || { echo "runtime_bench: $M/$f.gguf not found (bench/make_bench_models.sh)" >&2; exit 1; }
done
echo "== read bandwidth (the decode roofline)" >&2
hi "$READ_BW" > "$OUT/read_bandwidth.json"
cat "$OUT/read_bandwidth.json" >&2
for f in $FILES; do
  for t in 1 2; do
    echo "== $f, $t thread(s)" >&2
    g=$(hi "$RUN" -m "$M/$f.gguf" --bench --reps "$REPS" -t "$t")
    l=$(hi node bench/llama_cpp_bench.mjs "$M/$f.gguf" --threads "$t" --reps "$REPS" --llama-bench 2>/dev/null)
    echo "{\"file\": \"$f\", \"threads\": $t, \"gemkit\": $g, \"llama\": $l}" >> "$OUT/results.jsonl"
  done
done
PAIRS=()
if [ "$ROUTED" = 1 ]; then
  PAIRS=("out/bench/routed100m-q8_0.gguf $M/llama100m-q8_0.gguf" "out/bench/routed100m-q4_0.gguf $M/llama100m-q4_0.gguf"
         "out/bench/dtr/routed-q8_0.gguf out/bench/dtr/dense-q8_0.gguf" "out/bench/dtr/routed-q4_0.gguf out/bench/dtr/dense-q4_0.gguf")
fi
for pair in ${PAIRS[@]+"${PAIRS[@]}"}; do
  set -- $pair
  [ -f "$1" ] && [ -f "$2" ] || { echo "skipping routed pair $1 (missing)" >&2; continue; }
  for t in 1 2; do
    r=$(hi "$RUN" -m "$1" --bench --reps "$REPS" -t "$t" -p "$PROMPT_TEXT")
    d=$(hi "$RUN" -m "$2" --bench --reps "$REPS" -t "$t" -p "$PROMPT_TEXT")
    echo "{\"routed\": $r, \"dense\": $d, \"threads\": $t}" >> "$OUT/results.jsonl"
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load.txt"
/usr/bin/python3 - "$OUT/results.jsonl" "$OUT/read_bandwidth.json" <<'PY' | tee "$OUT/table.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
bw = json.load(open(sys.argv[2]))
print(f"Read bandwidth (bench/read_bandwidth, {bw['buffer_mib']} MiB, {bw['isa']} loads, best of {bw['reps']}): "
      f"1 thread {bw['threads_1_gb_s']:.1f} GB/s, 2 threads {bw['threads_2_gb_s']:.1f} GB/s "
      f"(per CPU-second of the slowest thread: {bw['threads_1_gb_s_cpu_time']:.1f} / {bw['threads_2_gb_s_cpu_time']:.1f}; "
      "well above the wall-time figures means the threads were preempted). "
      "Decode GB/s = weight bytes read per decoded token x decode tok/s; % of roofline: of the read bandwidth at the row's thread count.")
print()
print("| file | threads | weight MB / token | decode tok/s gemkit-run / llama-bench | decode GB/s gemkit-run / llama-bench | % of roofline (same thread count) gemkit-run / llama-bench | prompt tok/s gemkit-run / llama-bench | TTFT ms gemkit-run / llama.cpp (node) | peak RSS MB gemkit-run (budget: file + KV + 20 MB) / llama.cpp (node, incl. 88 MB of node) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    if "gemkit" not in r: continue
    g, l = r["gemkit"], r["llama"]
    budget = g["file_mb"] + g["kv_cache_mb"] + 20
    wb = g["weight_bytes_per_token"]
    roof = bw.get(f"threads_{r['threads']}_gb_s")
    gg, lg = g["decode_gb_s"], wb * l["llama_bench_tg_at_depth_tok_s"] / 1e9
    pct = f"{100 * gg / roof:.0f}% / {100 * lg / roof:.0f}%" if roof else "n/a"
    print(f"| {r['file']} | {r['threads']} | {wb / 1e6:.1f} | {g['decode_tok_s']:.0f} / {l['llama_bench_tg_at_depth_tok_s']:.0f} | "
          f"{gg:.1f} / {lg:.1f} | {pct} | "
          f"{g['prompt_tok_s']:.0f} / {l['llama_bench_pp_tok_s']:.0f} | {g['ttft_ms']:.1f} / {l['ttft_ms']:.1f} | "
          f"{g['peak_rss_mb']:.1f} ({budget:.1f}) / {l['peak_rss_kb']*1024/1e6:.1f} |")
routed = [r for r in rows if "routed" in r]
if routed:
    print()
    print("| routed file | threads | realised capacity | decode tok/s routed / dense | speed-up | prompt tok/s routed / dense |")
    print("|---|---:|---:|---:|---:|---:|")
for r in routed:
    a, b = r["routed"], r["dense"]
    print(f"| {a['model']} | {r['threads']} | {a['realised_capacity']:.3f} | {a['decode_tok_s']:.0f} / {b['decode_tok_s']:.0f} | "
          f"{a['decode_tok_s']/b['decode_tok_s']:.2f}x | {a['prompt_tok_s']:.0f} / {b['prompt_tok_s']:.0f} |")
PY
