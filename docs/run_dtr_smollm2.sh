#!/bin/bash
# DTR on SmolLM2-135M-Instruct the Router-Tuning way (docs/ablation.md, "SmolLM2"): routers trained
# on the frozen model over a capacity x attention-only grid, every run evaluated on all domains and
# the general probe (the NLL cost) and exported with its routers and measured by gemkit-run (the
# speed). Resumable like every ablate grid. THREADS (default 2) LibTorch threads.
set -euo pipefail
cd "$(dirname "$0")/.."
G=${GEMKIT:-build/cli/gemkit}
M=$($G models fetch smollm2-135m-instruct | tail -1)
[ -f out/suite-smollm2/general_probe/test.jsonl ] || $G data suite build --out out/suite-smollm2 --tokenizer "$M"
export OMP_NUM_THREADS=${THREADS:-2}
$G ablate recipes/smollm2/dtr/router_tuning.toml --grid dtr.capacity=0.5,0.75,0.9 --grid dtr.attention_only=false,true \
    --target general --seeds 1 --eval-corpus out/suite-smollm2 --eval-tasks out/suite-smollm2 --max-items 25 \
    --max-tokens 8192 --eval-precision fp32 --out out/ablation/smollm2-dtr
