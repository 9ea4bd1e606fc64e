#!/bin/bash
# The two ablation grids of docs/ablation.md, one after the other. Resumable: run it again and
# finished runs are skipped, interrupted ones continue from their last checkpoint.
# Two runs at a time with one LibTorch thread each: the fastest use of a 2-core machine
# (docs/routing-bench.md: one intra-op thread beats two here).
set -euo pipefail
cd "$(dirname "$0")/.."
G=${GEMKIT:-build/cli/gemkit}  # GEMKIT: a copy of the binary (with gemkit-run beside it), so rebuilding does not touch running grids
[ -f out/suite/general/shards/test.h5 ] || $G data suite build --out out/suite --tokenizer checkpoints/gemkit-base
export OMP_NUM_THREADS=1
EVAL=(--eval-corpus out/suite --eval-tasks out/suite --max-items 50 --max-documents 30)
$G ablate recipes/ablation/law/*.toml --seeds 3 "${EVAL[@]}" --jobs 2 --out out/ablation/law
# The law rows of the seven-domain grid are the law grid's a01 and a12 runs (the same recipe
# files but for comments, same data, steps and seeds): copied under their new names, then
# evaluated and measured again there (their checkpoint paths changed).
mkdir -p out/ablation/domains/runs
for s in 0 1 2; do
  for pair in a01_finetune:law_finetune a12_gem_routed_budget:law_gem; do
    src=out/ablation/law/runs/${pair%%:*}__seed$s dst=out/ablation/domains/runs/${pair##*:}__seed$s
    if [ -f "$src/DONE" ] && [ ! -e "$dst" ]; then cp -r "$src" "$dst"; fi
  done
done
# Plain fine-tuning (every domain's baseline), GEM with the base frozen and GEM with the base
# trained, on all seven domains. ablate goes seed by seed, so every form has all seven domains at
# seed 0 before any domain has seed 1.
recipes=()
for d in law healthcare finance stem conversational commonsense multilingual; do
  recipes+=(recipes/domains/${d}_finetune.toml recipes/domains/${d}_gem.toml recipes/domains/${d}_gem_full.toml)
done
$G ablate "${recipes[@]}" --seeds 3 "${EVAL[@]}" --jobs 2 --out out/ablation/domains
# The exported models' speeds, measured again one at a time with no training beside them (the
# grid measured each run while another trained): every run is skipped but its export and
# gemkit-run measurement, and both reports are written again.
rm -f out/ablation/law/runs/*/deploy.json out/ablation/domains/runs/*/deploy.json
$G ablate recipes/ablation/law/*.toml --seeds 3 "${EVAL[@]}" --jobs 1 --out out/ablation/law
$G ablate "${recipes[@]}" --seeds 3 "${EVAL[@]}" --jobs 1 --out out/ablation/domains
