#!/bin/bash
# The experiments of docs/multi-domain.md: one model serving seven domains.
#   docs/run_multidomain.sh [base|smollm2]        (default: base, the bundled gemkit-base)
# Trains and evaluates, in this order (each step skipped when its output exists, interrupted
# training resumed from its last checkpoint, so the script can be run again after a stop):
#   1. the oracle: each domain's own plain fine-tuning (recipes/.../finetune.toml), one per domain
#   2. multi-domain GEM (joint_gem.toml; joint_gem_full.toml with the base trained) and the dense
#      mixture + replay + KD (mixture.toml)
#   3. the merges of the seven oracles: task arithmetic and TIES, lambda chosen on validation
#   4. sequential runs over the seven domains: GEM (a new expert per stage, earlier ones frozen),
#      plain fine-tuning and fine-tuning with general replay, each evaluated after every stage
#   5. the reports: `gemkit compare --multi-domain` (every single model against the oracles)
#      and `gemkit compare --sequential` per sequential method, in $OUT/
#   6. deployment: compact exports of the dense mixture and the routed GEM models, measured side
#      by side with gemkit-run ($OUT/deploy.md)
# JOBS (default 1): trainings (with their evaluations) at a time in steps 1, 2 and 4, each with
# OMP_NUM_THREADS=THREADS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-base}
G=${GEMKIT:-build/cli/gemkit}  # GEMKIT: a copy of the binary, so rebuilding does not touch a running experiment
case "$MODEL" in
  base) R=recipes/multidomain SUITE=out/suite TOK=checkpoints/gemkit-base ;;
  smollm2) R=recipes/smollm2/multidomain SUITE=out/suite-smollm2 TOK=$($G models fetch smollm2-135m-instruct | tail -1) ;;
  *) echo "usage: $0 [base|smollm2]" >&2; exit 2 ;;
esac
OUT=out/multidomain-$MODEL
DOMAINS=(law healthcare finance stem conversational commonsense multilingual)
[ -f "$SUITE/general_probe/test.jsonl" ] || $G data suite build --out "$SUITE" --tokenizer "$TOK"
export OMP_NUM_THREADS=${THREADS:-1}
mkdir -p "$OUT/runs" "$OUT/eval"
# Every evaluation: each domain's held-out text (its first 8192 tokens), the general corpus and
# the held-out general probe; every figure of docs/multi-domain.md is an NLL fall or rise. Tasks
# (25 items each) are left out: on gemkit-base their scores sit near chance and a task
# evaluation takes longer than the texts'. TASKS=1 adds them to every evaluation.
EVAL=(--corpus "$SUITE" eval.max_tokens=8192); [ -n "${TASKS:-}" ] && EVAL+=(--tasks "$SUITE" --max-items 25)

shards() { echo "$SUITE/$1/shards/train.h5${2:+,$SUITE/general/shards/train.h5}"; }
# train NAME RECIPE [key=value ...]: into $OUT/runs/NAME, resumed when interrupted.
train() {
  local name=$1 recipe=$2; shift 2
  [ -f "$OUT/runs/$name/DONE" ] && return 0
  echo "== train $name"
  $G train "$recipe" "$@" --out "$OUT/runs/$name" --resume > "$OUT/runs/$name.log" 2>&1 ||
    { tail -20 "$OUT/runs/$name.log" >&2; return 1; }
  touch "$OUT/runs/$name/DONE"
}
final() { echo "$OUT/runs/$1/$(cat "$OUT/runs/$1/latest")"; }
# evaluate MODEL_DIR NAME [split]: $OUT/eval/NAME.json
evaluate() {
  [ -f "$OUT/eval/$2.json" ] && return 0
  echo "== eval $2"
  $G eval --model "$1" "${EVAL[@]}" --split "${3:-test}" --out "$OUT/eval/$2.json" > "$OUT/eval/$2.log" 2>&1 ||
    { tail -20 "$OUT/eval/$2.log" >&2; return 1; }
}
# in_parallel "CMD ARGS" ...: the commands (function calls), JOBS at a time; fails if any failed.
in_parallel() {
  local pids=() cmd failed=0
  for cmd in "$@"; do
    $cmd & pids+=($!)
    while [ "$(jobs -rp | wc -l)" -ge "${JOBS:-1}" ]; do wait -n || failed=1; done
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  return $failed
}

evaluate "$TOK" base
evaluate "$TOK" base.validation validation

# 1. The oracle (JOBS trainings at a time), each evaluated on test and on validation (for choosing
# the merges' lambda).
oracle() { train "ft_$1" $R/finetune.toml "train.data=$(shards "$1")" "train.validation=$SUITE/$1/shards/validation.h5" &&
           evaluate "$(final "ft_$1")" "ft_$1" && evaluate "$(final "ft_$1")" "ft_$1.validation" validation; }
cmds=(); for d in "${DOMAINS[@]}"; do cmds+=("oracle $d"); done
in_parallel "${cmds[@]}"

# 2. One model trained on every domain at once.
joint() { train "$1" "$R/$1.toml" && evaluate "$(final "$1")" "$1"; }
in_parallel "joint joint_gem" "joint mixture" "joint joint_gem_full"

# 3. Merges of the oracles, lambda chosen on validation: the highest mean share of the oracles'
# NLL falls (each domain weighted alike).
CSV=$(IFS=,; echo "${DOMAINS[*]}")
FTS=$(for d in "${DOMAINS[@]}"; do printf '%s,' "$(final "ft_$d")"; done); FTS=${FTS%,}
VAL_ORACLES=(); for d in "${DOMAINS[@]}"; do VAL_ORACLES+=("$OUT/eval/ft_$d.validation.json"); done
merges() {
  local method candidates lambda m best
  for method in task-arithmetic ties; do
    candidates=()
    for lambda in 0.1 0.2 0.3 0.5 0.7 1.0; do
      m="$OUT/runs/merge_${method}_$lambda"
      [ -f "$m/config.json" ] || $G merge $method --base "$TOK" --models "$FTS" --lambda $lambda --out "$m" > /dev/null
      evaluate "$m" "merge_${method}_$lambda.validation" validation
      candidates+=("$OUT/eval/merge_${method}_$lambda.validation.json")
    done
    best=$($G compare "$OUT/eval/base.validation.json" "${VAL_ORACLES[@]}" "${candidates[@]}" --multi-domain "$CSV" \
             --best --out "$OUT/merge_$method.validation.json" | sed -n 's/^best: //p')
    lambda=${best#merge_${method}_}; lambda=${lambda%.validation}
    echo "   $method: lambda $lambda (highest mean share of the oracles' validation NLL falls; $OUT/merge_$method.validation.md)"
    echo "$lambda" > "$OUT/merge_$method.lambda"
    evaluate "$OUT/runs/merge_${method}_$lambda" "merge_$method"
  done
}

# 4. Sequential runs: stage i starts from stage i-1 (the base for the first).
sequential() {  # sequential METHOD RECIPE
  local method=$1 recipe=$2 prev="$TOK" experts="" frozen="" i=0  # experts: the domains so far
  for d in "${DOMAINS[@]}"; do
    i=$((i + 1))
    local args=("model.path=$prev" "train.validation=$SUITE/$d/shards/validation.h5")
    # Replay (GEM and FT + replay alike): 25% general text and, from stage 2 on, 5% of rows from
    # the earlier domains' shards together (a small rehearsal memory); the new domain the rest.
    local data weights e
    data="$SUITE/$d/shards/train.h5,$SUITE/general/shards/train.h5" weights="0.75,0.25"
    if [ $i -gt 1 ]; then
      weights="0.70,0.25"
      for e in ${experts//,/ }; do data+=",$SUITE/$e/shards/train.h5" weights+=",$(awk "BEGIN{print 0.05 / ($i - 1)}")"; done
    fi
    case $method in
      # After the first stage only the new expert (its adapters and its router key row) trains:
      # the earlier experts, the general expert's key row and the router queries stay frozen.
      seq_gem) frozen=$experts
               args+=("train.data=$data" "train.data_weights=$weights" "scar.experts=${experts:+$experts,}$d")
               [ -n "$frozen" ] && args+=("scar.frozen_experts=general,$frozen" "scar.frozen_query=true") ;;
      seq_replay) args+=("train.data=$data" "train.data_weights=$weights") ;;
      seq_finetune) args+=("train.data=$(shards "$d")" "~train.data_weights") ;;
    esac
    experts=${experts:+$experts,}$d
    train "${method}_$i" "$recipe" "${args[@]}" && evaluate "$(final "${method}_$i")" "${method}_$i" test
    prev=$(final "${method}_$i")
  done
}

# Steps 3 and 4 side by side (JOBS at a time).
in_parallel merges "sequential seq_gem $R/sequential_gem.toml" "sequential seq_replay $R/sequential_replay.toml" \
            "sequential seq_finetune $R/sequential_replay.toml"


# 5. Reports.
ORACLES=(); for d in "${DOMAINS[@]}"; do ORACLES+=("$OUT/eval/ft_$d.json"); done
$G compare "$OUT/eval/base.json" "${ORACLES[@]}" "$OUT/eval/joint_gem.json" "$OUT/eval/joint_gem_full.json" "$OUT/eval/mixture.json" \
  "$OUT/eval/merge_task-arithmetic.json" "$OUT/eval/merge_ties.json" "$OUT/eval/seq_gem_7.json" \
  "$OUT/eval/seq_replay_7.json" "$OUT/eval/seq_finetune_7.json" --multi-domain "$CSV" \
  --labels "base,$(for d in "${DOMAINS[@]}"; do printf 'ft_%s,' "$d"; done)multi-domain GEM,multi-domain GEM (base trained),mixture + replay + KD,task arithmetic,TIES,sequential GEM (final),sequential FT + replay (final),sequential FT (final)" \
  --out "$OUT/multi_domain.json"
for method in seq_gem seq_replay seq_finetune; do
  $G compare "$OUT/eval/base.json" $(for i in 1 2 3 4 5 6 7; do echo "$OUT/eval/${method}_$i.json"; done) \
    --sequential "$CSV" --out "$OUT/$method.json" > /dev/null
done

# 6. Deployment: compact exports (hybrid Q8_0/Q4_0 base) of the dense mixture model and of the two
# routed GEM models, measured side by side with gemkit-run (one thread, best of 3; the routed
# ones route every token, no domain forced).
RUN=$(dirname "$G")/gemkit-run; [ -x "$RUN" ] || RUN=build/runtime/gemkit-run
mkdir -p "$OUT/deploy"
field() { sed -E "s/.*\"$1\": *([-0-9.e+]+).*/\1/" "$2"; }  # a number of gemkit-run's one-line JSON
{
  echo "| model | file MB | vs dense | decode tok/s | vs dense | prompt tok/s | peak RSS MB |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for m in mixture joint_gem joint_gem_full seq_gem_7; do
    f="$OUT/deploy/$m.gguf"
    [ -f "$f" ] || $G export compact "$(final $m)" --out "$f" --quant hybrid --force > /dev/null
    "$RUN" -m "$f" --bench -t 1 --reps 3 --prompt-tokens 128 --gen-tokens 64 | tail -1 > "$OUT/deploy/$m.json"
    [ $m = mixture ] && { dense_mb=$(field file_mb "$OUT/deploy/$m.json"); dense_tps=$(field decode_tok_s "$OUT/deploy/$m.json"); }
    mb=$(field file_mb "$OUT/deploy/$m.json") tps=$(field decode_tok_s "$OUT/deploy/$m.json")
    echo "| $m | $mb | $(awk "BEGIN{printf \"%.2fx\", $mb/$dense_mb}") | $tps | $(awk "BEGIN{printf \"%.2fx\", $tps/$dense_tps}") | $(field prompt_tok_s "$OUT/deploy/$m.json") | $(field peak_rss_mb "$OUT/deploy/$m.json") |"
  done
} > "$OUT/deploy.md"
cat "$OUT/deploy.md"
echo "reports: $OUT/multi_domain.md $OUT/seq_gem.md $OUT/seq_replay.md $OUT/seq_finetune.md $OUT/deploy.md"
