#!/bin/bash
# The SmolLM2-135M-Instruct grid of docs/ablation.md ("SmolLM2"). Resumable: run it again and
# finished runs are skipped, interrupted ones continue from their last checkpoint.
# THREADS (default 2) LibTorch threads for the one job; JOBS (default 1) runs at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
G=${GEMKIT:-build/cli/gemkit}  # GEMKIT: a copy of the binary (with gemkit-run beside it), so rebuilding does not touch a running grid
M=$($G models fetch smollm2-135m-instruct | tail -1)
[ -f out/suite-smollm2/general_probe/test.jsonl ] || $G data suite build --out out/suite-smollm2 --tokenizer "$M"
export OMP_NUM_THREADS=${THREADS:-2}
# Every domain corpus (and the general probe) scored on its first 16k test tokens, in bf16; tasks on
# 50 items each. The dense methods get WiSE-FT rows at a = 0.25, 0.5, 0.75 (evaluation only).
EVAL=(--eval-corpus out/suite-smollm2 --eval-tasks out/suite-smollm2 --max-items 50 --max-tokens 16384
      --eval-precision bf16 --wise-ft 0.25,0.5,0.75)
# Plain fine-tuning first (every method's reference), then GEM and the strongest baselines, so that a
# grid stopped early already compares them (ablate goes seed by seed, methods in this order).
L=recipes/smollm2/ablation/law
RECIPES=($L/s01_finetune.toml $L/s07_gem.toml $L/s03_replay_kd.toml $L/s04_lora_replay.toml $L/s02_replay.toml
         $L/s05_replay_ewc.toml $L/s06_mofo.toml $L/s08_gem_frozen.toml)
$G ablate "${RECIPES[@]}" --seeds 3 "${EVAL[@]}" --jobs "${JOBS:-1}" --out out/ablation/smollm2-law
