#!/bin/bash
# Pilot on VALIDATION data: at which fine-tuning budget does plain fine-tuning of
# SmolLM2-135M-Instruct on law start to forget off target? The law grid's first run (lr 3e-5,
# 100 steps) lowered the NLL of every other domain and of the held-out general probe (R_off < 0:
# adapting the instruct model to raw documents helps all raw text), which leaves "forgetting
# reduction" undefined for every method. This trains plain fine-tuning at lr 1e-4 for 200 steps
# (checkpoints every 50) and evaluates the base, the grid's lr-3e-5 run and each checkpoint on
# the validation split (8k tokens per domain and the probe, fp32, no tasks), so that the grid's
# budget is chosen without looking at test data.
#   docs/run_pilot_smollm2_budget.sh          (resumable: finished steps and reports are kept)
# THREADS (default 2) LibTorch threads. Results: out/pilot-smollm2-budget/*.json; the table:
#   python3 docs/ablation/pilot_table.py out/pilot-smollm2-budget
set -euo pipefail
cd "$(dirname "$0")/.."
G=${GEMKIT:-build/cli/gemkit}
export OMP_NUM_THREADS=${THREADS:-2}
M=$($G models fetch smollm2-135m-instruct | tail -1)
S=out/suite-smollm2
O=out/pilot-smollm2-budget
mkdir -p "$O"
evaluate() {  # MODEL NAME
  [ -f "$O/$2.json" ] || $G eval --model "$1" --corpus "$S" --split validation --precision fp32 eval.max_tokens=8192 --out "$O/$2.json"
}
evaluate "$M" base
[ -d out/ablation/smollm2-law-lr3e-5/runs/s01_finetune__seed0/step-0000100 ] &&
  evaluate out/ablation/smollm2-law-lr3e-5/runs/s01_finetune__seed0/step-0000100 lr3e-5_step100
$G train recipes/smollm2/ablation/s01_finetune.toml train.data=$S/law/shards/train.h5 \
  train.validation=$S/law/shards/validation.h5 train.seed=0 train.lr=1e-4 train.max_steps=200 \
  train.checkpoint_every=50 train.keep_last=0 --out "$O/ft_lr1e-4" --resume
for step in 50 100 150 200; do
  evaluate "$O/ft_lr1e-4/step-$(printf %07d $step)" "lr1e-4_step$step"
done
