#!/bin/bash
# The validation-only runs behind docs/ablation.md section 1: GEM variants on the full suite's law
# domain, one seed, 100 steps, evaluated on the law and general VALIDATION splits.
# The "quickstart settings" rows were run before the recipes took the chosen settings and before
# SCAR's supervision was class-balanced; to reproduce them, check out the commit named in
# docs/ablation.md. Run from the repository root after the suite is built (see docs/ablation.md).
set -euo pipefail
G=build/cli/gemkit
S=out/suite
O=out/tune
mkdir -p $O
for r in finetune gem; do
  sed "s#out/quickstart/law#$S/law/shards/law#; s#out/quickstart/general#$S/general/shards/general#" recipes/quickstart/law_$r.toml |
    sed "s#$S/law/shards/law.#$S/law/shards/#g; s#$S/general/shards/general.#$S/general/shards/#g" > $O/$r.toml
done
variant() {
  local name=$1 recipe=$2
  shift 2
  [ -f $O/$name.eval.json ] && return
  rm -rf $O/$name
  $G train $O/$recipe.toml --out $O/$name "$@" > $O/$name.log 2>&1
  $G eval --model $O/$name/$(cat $O/$name/latest) --corpus $S/law/validation.jsonl,$S/general/validation.jsonl \
    --split validation --out $O/$name.eval.json >> $O/$name.log 2>&1
  echo "$name done"
}
[ -f $O/base.eval.json ] || $G eval --model checkpoints/gemkit-base --corpus $S/law/validation.jsonl,$S/general/validation.jsonl \
  --split validation --out $O/base.eval.json > $O/base.log 2>&1
variant ft finetune train.max_steps=100
variant gem gem train.max_steps=100
variant ft_dtr_all finetune train.max_steps=100 dtr.enabled=true dtr.blocks=1,2,3,4 dtr.capacity=0.5 dtr.anneal_steps=50
variant gem_nodtr gem train.max_steps=100 dtr.enabled=false
variant gem_kdnone gem train.max_steps=100 akp.kd_domain_weight=none
variant gem_lr5 gem train.max_steps=100 train.lr=5e-3
