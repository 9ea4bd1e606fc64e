#!/usr/bin/env bash
# SmolLM2-135M-Instruct in gemkit against transformers + peft (torch 2.x, the project's .venv),
# side by side in one run on the same folder and data (the law texts of data/mini, batch 8 x 256,
# float32, AdamW; transformers with torch's own thread defaults, as a user runs it): training tokens/s and peak RSS of full fine-tuning and of LoRA (rank 16 on
# every projection), evaluation tokens/s (no-grad forward of the same batches) and greedy
# generation tokens/s (a 32-token prompt for transformers, the first 150 characters of the same
# text for gemkit; 64 new tokens). Evaluation: gemkit eval's perplexity over data/mini/law/train
# (documents in rows of 256, elapsed time of the command after loading) against transformers'
# forward over the same tokens packed in 8 x 256 rows. gemkit's training figures are the mean
# over steps 2..N of its own metrics.jsonl (the first step pays for allocation), as the Python half.
#
#   bench/smollm2_bench.sh [BUILD_DIR] [STEPS]      (after ./setup.sh build and ./setup.sh test's .venv)
# PRECISION=fp32|bf16 (default fp32): gemkit's train.precision and autocast on the transformers
# side. THREADS (default 1): gemkit's intra-op threads (OMP_NUM_THREADS). With Debian's LibTorch
# 1.13 one is fastest (OpenBLAS runs its own threads on every core); a LibTorch from the torch
# wheel (the default build/) does its own threading: give it the cores (THREADS=2 here).
# LOSS_CHUNK (default: the recipe's train.loss_chunk_tokens): 0 measures the loss on full logits.
# WORKLOADS (default "full lora eval generate"): the workloads to run. Evaluation follows
# PRECISION too (gemkit eval --precision, autocast in transformers); generation is fp32.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
STEPS=${2:-4}
PY=.venv/bin/python
export GEMKIT_PYTHON=$PY
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$(nproc --all)}
export PRECISION=${PRECISION:-fp32}
export OMP_NUM_THREADS=${THREADS:-1}  # gemkit's intra-op threads (see above)
gemkit=$BUILD/cli/gemkit
model=$("$gemkit" models fetch smollm2-135m-instruct)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$gemkit" data prepare --quiet --tokenizer "$model" --split train --out "$work/law.h5" data/mini/law/train.jsonl
results=$work/results.jsonl
bf16_flag=()
[ "$PRECISION" = bf16 ] && bf16_flag=(--bf16)
WORKLOADS=${WORKLOADS:-full lora eval generate}
has() { [[ " $WORKLOADS " == *" $1 "* ]]; }
for mode in full lora; do
  has $mode || continue
  extra=() recipe=recipes/smollm2/law_finetune.toml
  [ $mode = lora ] && recipe=recipes/smollm2/law_lora.toml && extra=(lora.rank=16 lora.alpha=32 lora.target_modules=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)
  "$gemkit" train "$recipe" --out "$work/run_$mode" \
    train.data="$work/law.h5" ~train.validation train.max_steps="$STEPS" train.checkpoint_every=1000000 \
    train.eval_every=0 train.log_every=1 train.precision="$PRECISION" ${LOSS_CHUNK:+train.loss_chunk_tokens=$LOSS_CHUNK} \
    "${extra[@]}" 2>&1 | grep -E "^step|error" || true
  "$PY" - "$work/run_$mode/metrics.jsonl" "$mode" >> "$results" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l]
steady = steps[1:] or steps
import os
print(json.dumps({"impl": "gemkit", "mode": sys.argv[2], "threads": int(os.environ["OMP_NUM_THREADS"]), "precision": os.environ["PRECISION"],
                  "tokens_per_s": sum(s["tokens"] for s in steady) / sum(s["step_s"] for s in steady),
                  "peak_rss_mb": max(s["peak_rss_mb"] for s in steps)}))
PY
  env -u OMP_NUM_THREADS "$PY" bench/smollm2_bench_hf.py "$model" --mode $mode --steps "$STEPS" ${bf16_flag[@]+"${bf16_flag[@]}"} | tee /dev/stderr | tail -1 >> "$results"
done
# Evaluation and generation.
if has eval; then
/usr/bin/time -f '%M' -o "$work/eval.rss" "$gemkit" eval --model "$model" --corpus data/mini/law --split train \
  --out "$work/eval.json" eval.batch_size=8 eval.seq_len=256 --precision "$PRECISION" > /dev/null 2> "$work/eval.log" || true
"$PY" - "$work/eval.json" "$work/eval.rss" "$model" >> "$results" <<'PY'
import json, sys
from tokenizers import Tokenizer
r = json.load(open(sys.argv[1]))
tok = Tokenizer.from_file(sys.argv[3] + "/tokenizer.json")
tokens = sum(len(tok.encode(json.loads(l)["text"]).ids) for l in open("data/mini/law/train.jsonl"))
import os
print(json.dumps({"impl": "gemkit", "mode": "eval", "threads": int(os.environ["OMP_NUM_THREADS"]),
                  "precision": os.environ["PRECISION"], "tokens_per_s": tokens / r["elapsed_s"],
                  "peak_rss_mb": int(open(sys.argv[2]).read().split()[-1]) / 1024}))
PY
env -u OMP_NUM_THREADS "$PY" bench/smollm2_bench_hf.py "$model" --mode eval ${bf16_flag[@]+"${bf16_flag[@]}"} | tail -1 >> "$results"
fi
if has generate; then
prompt=$("$PY" -c "import json; print(json.loads(open('data/mini/law/train.jsonl').readline())['text'][:150])")
/usr/bin/time -f '%M' -o "$work/gen.rss" "$gemkit" generate --model "$model" --prompt "$prompt" --max-new-tokens 64 \
  --temperature 0 > /dev/null 2> "$work/gen.log"
"$PY" - "$work/gen.log" "$work/gen.rss" >> "$results" <<'PY'
import json, re, sys
m = re.search(r"([0-9.]+) tokens/s", open(sys.argv[1]).read())
import os
print(json.dumps({"impl": "gemkit", "mode": "generate", "threads": int(os.environ["OMP_NUM_THREADS"]), "tokens_per_s": float(m.group(1)),
                  "peak_rss_mb": int(open(sys.argv[2]).read().split()[-1]) / 1024}))
PY
env -u OMP_NUM_THREADS "$PY" bench/smollm2_bench_hf.py "$model" --mode generate | tail -1 >> "$results"
fi
"$PY" - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("\n| workload | implementation | precision | intra-op threads | tokens/s | peak RSS MB |")
print("|---|---|---|---|---|---|")
for r in rows:
    print("| %s | %s | %s | %s | %.1f | %.0f |" % (r["mode"], r["impl"], r.get("precision", "fp32"), r["threads"],
                                               r["tokens_per_s"], r["peak_rss_mb"]))
for mode in ("full", "lora", "eval", "generate"):
    g = [r for r in rows if r["mode"] == mode and r["impl"] == "gemkit"]
    p = [r for r in rows if r["mode"] == mode and r["impl"] != "gemkit"]
    if g and p:
        print("%s: gemkit / transformers tokens/s = %.2f, peak RSS = %.2f" % (
            mode, g[0]["tokens_per_s"] / p[0]["tokens_per_s"], g[0]["peak_rss_mb"] / p[0]["peak_rss_mb"]))
PY
