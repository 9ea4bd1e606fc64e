#!/bin/bash
# The SmolLM2-135M-Instruct grids of docs/ablation.md ("SmolLM2"), one domain per call:
#   docs/run_ablations_smollm2.sh [DOMAIN] [SEEDS]     (default: law 3)
# The method recipes are recipes/smollm2/ablation/*.toml; `--domain` fills their {domain}.
# Resumable: run it again and finished runs are skipped, interrupted ones continue from their
# last checkpoint. THREADS (default 2) LibTorch threads for the one job; JOBS (default 1) runs at a time;
# WISE (default 0.25,0.5,0.75) the WiSE-FT points (a later call with more points evaluates only the new ones).
set -euo pipefail
cd "$(dirname "$0")/.."
DOMAIN=${1:-law} SEEDS=${2:-3}
G=${GEMKIT:-build/cli/gemkit}  # GEMKIT: a copy of the binary (with gemkit-run beside it), so rebuilding does not touch a running grid
M=$($G models fetch smollm2-135m-instruct | tail -1)
[ -f out/suite-smollm2/general_probe/test.jsonl ] || $G data suite build --out out/suite-smollm2 --tokenizer "$M"
export OMP_NUM_THREADS=${THREADS:-2}
# Every domain corpus (and the general probe) scored on its first 8k test tokens, in fp32; tasks on
# 25 items each (sized for fp32 on two cores: one evaluation of every domain, the probe and all tasks
# takes about 20 minutes there). The dense methods get WiSE-FT rows at a = 0.25, 0.5, 0.75 (evaluation only).
EVAL=(--eval-corpus out/suite-smollm2 --eval-tasks out/suite-smollm2 --max-items 25 --max-tokens 8192
      --eval-precision fp32 --wise-ft "${WISE:-0.25,0.5,0.75}")
# Plain fine-tuning first (every method's reference), then GEM and the strongest baselines, so that a
# grid stopped early already compares them (ablate goes seed by seed, methods in this order).
R=recipes/smollm2/ablation
RECIPES=($R/s01_finetune.toml $R/s07_gem.toml $R/s09_gem_no_dtr.toml $R/s03_replay_kd.toml $R/s04_lora_replay.toml $R/s02_replay.toml
         $R/s05_replay_ewc.toml $R/s06_mofo.toml $R/s08_gem_frozen.toml)
$G ablate "${RECIPES[@]}" --domain "$DOMAIN" --seeds "$SEEDS" "${EVAL[@]}" --jobs "${JOBS:-1}" --out "out/ablation/smollm2-$DOMAIN"
