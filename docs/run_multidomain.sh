#!/bin/bash
# The experiments of docs/multi-domain.md: one model serving seven domains.
#   docs/run_multidomain.sh [base|smollm2]        (default: base, the bundled gemkit-base)
# Trains and evaluates, in this order (each step skipped when its output exists, interrupted
# training resumed from its last checkpoint, so the script can be run again after a stop):
#   1. the oracle: each domain's own plain fine-tuning (recipes/.../finetune.toml), one per domain
#   2. multi-domain GEM (joint_gem.toml; joint_gem_full.toml with the base trained; joint_gem_r8.toml
#      with rank-8 experts, the size of a deployable file) and the dense
#      mixture + replay + KD (mixture.toml); then, without training, the GEM models' router bias
#      towards the general expert (chosen on validation) and the mixture's WiSE-FT curve
#   3. the merges of the seven oracles: task arithmetic and TIES, lambda chosen on validation
#   4. sequential runs over the seven domains: GEM (a new expert per stage, earlier ones frozen),
#      plain fine-tuning and fine-tuning with general replay, each evaluated after every stage
#   5. the reports: `gemkit compare --multi-domain` (every single model against the oracles)
#      and `gemkit compare --sequential` per sequential method, in $OUT/
#   6. deployment: compact exports of the dense mixture and the routed GEM models, their NLL and
#      speed measured side by side with gemkit-run ($OUT/deploy.md)
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
# evaluate MODEL_DIR NAME [split [eval flags]]: $OUT/eval/NAME.json
evaluate() {
  [ -f "$OUT/eval/$2.json" ] && return 0
  echo "== eval $2"
  $G eval --model "$1" "${EVAL[@]}" --split "${3:-test}" "${@:4}" --out "$OUT/eval/$2.json" > "$OUT/eval/$2.log" 2>&1 ||
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
in_parallel "joint joint_gem" "joint mixture" "joint joint_gem_full" "joint joint_gem_r8"

# 2b. Sweeps that need no training. The routed GEM models' general bias (scar.general_bias: nats added
# to the general expert's router logit at inference) at b = 0..6, on validation and test; the one
# shipped is chosen on validation: the smallest b that sends at least 90% of the replay pool's
# routing decisions to the general expert (the routing target, on text the method may look at; the
# held-out probe never enters the choice). The mixture model interpolated with the base (WiSE-FT,
# a = 0.25, 0.5, 0.75): the dense model's own trade-off curve.
BIASES=(0 1 2 3 4 6)
bias_sweep() {
  local m=$1 b files=()
  for b in "${BIASES[@]}"; do
    evaluate "$(final "$m")" "${m}_b$b.validation" validation --scar-general-bias "$b" &&
      evaluate "$(final "$m")" "${m}_b$b" test --scar-general-bias "$b" || return 1
    files+=("$OUT/eval/${m}_b$b.validation.json")
  done
  python3 - "$OUT/$m.bias.md" "${files[@]}" > "$OUT/$m.bias" <<'PY'
import json, re, sys
table, chosen = ["| bias | replay pool -> general (validation) | general probe -> general (validation, not used) |", "|---:|---:|---:|"], None
for f in sys.argv[2:]:  # in increasing b
    b = re.search(r"_b([0-9.]+)\.validation\.json$", f).group(1)
    stats = {r["key"]: r["stats"] for r in json.load(open(f))["results"]}
    share = stats["general"]["scar/load/general"]
    table.append(f"| {b} | {100 * share:.1f}% | {100 * stats['general_probe']['scar/load/general']:.1f}% |")
    if chosen is None and share >= 0.9: chosen = b
chosen = chosen or b  # none reaches 90%: the largest
open(sys.argv[1], "w").write(f"Router bias chosen: {chosen} (the smallest sending >= 90% of the replay pool's validation "
                             "routing decisions to the general expert)\n\n" + "\n".join(table) + "\n")
print(chosen)
PY
  echo "   $m: general bias $(cat "$OUT/$m.bias") (the smallest sending >= 90% of the replay pool's validation decisions to general)"
}
wise_mixture() {
  local a m
  for a in 0.25 0.5 0.75; do
    m="$OUT/runs/wise_mixture_$a"
    [ -f "$m/config.json" ] || $G merge wise --base "$TOK" --model "$(final mixture)" --alpha $a --out "$m" > /dev/null
    evaluate "$m" "wise_mixture_$a" || return 1
  done
}
in_parallel "bias_sweep joint_gem" "bias_sweep joint_gem_full" "bias_sweep joint_gem_r8" wise_mixture

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
# Labels "METHOD @ SETTING": the points of one method's sweep (the trade-off table and plot judge
# each model against the other methods' frontier).
MODELS=() LABELS=""
add_model() { MODELS+=("$OUT/eval/$1.json"); LABELS+=",$2"; }
for b in "${BIASES[@]}"; do add_model "joint_gem_b$b" "multi-domain GEM @ bias $b"; done
for b in "${BIASES[@]}"; do add_model "joint_gem_full_b$b" "multi-domain GEM (base trained) @ bias $b"; done
for b in "${BIASES[@]}"; do add_model "joint_gem_r8_b$b" "multi-domain GEM (rank 8) @ bias $b"; done
add_model mixture "mixture + replay + KD @ a=1"
for a in 0.75 0.5 0.25; do add_model "wise_mixture_$a" "mixture + replay + KD @ a=$a"; done
add_model merge_task-arithmetic "task arithmetic @ lambda $(cat "$OUT/merge_task-arithmetic.lambda")"
add_model merge_ties "TIES @ lambda $(cat "$OUT/merge_ties.lambda")"
add_model seq_gem_7 "sequential GEM (final)"; add_model seq_replay_7 "sequential FT + replay (final)"
add_model seq_finetune_7 "sequential FT (final)"
$G compare "$OUT/eval/base.json" "${ORACLES[@]}" "${MODELS[@]}" --multi-domain "$CSV" \
  --labels "base$(for d in "${DOMAINS[@]}"; do printf ',ft_%s' "$d"; done)$LABELS" --out "$OUT/multi_domain.json"
for method in seq_gem seq_replay seq_finetune; do
  $G compare "$OUT/eval/base.json" $(for i in 1 2 3 4 5 6 7; do echo "$OUT/eval/${method}_$i.json"; done) \
    --sequential "$CSV" --out "$OUT/$method.json" > /dev/null
done

# 6. Deployment: compact exports (hybrid Q8_0/Q4_0 base; SCAR experts Q8_0 where their rows fit,
# f16 elsewhere, or all f16 for the "f16 experts" row), measured side by side with gemkit-run: the
# NLL of every deployed file on each corpus (gemkit-run --perplexity: the test split's first 8192
# tokens, as `gemkit eval` scores them) and speed (one thread, best of 3 rounds) with a general-text
# prompt (the probe's first document) and a law prompt: the routed files route every token.
RUN=$(dirname "$G")/gemkit-run; [ -x "$RUN" ] || RUN=build/runtime/gemkit-run
mkdir -p "$OUT/deploy"
deploy_export() {  # NAME CHECKPOINT [export flags]
  local f="$OUT/deploy/$1.gguf"
  [ -f "$f" ] || $G export compact "$2" --out "$f" --quant hybrid --force "${@:3}" > /dev/null
}
deploy_export base "$TOK"
deploy_export mixture "$(final mixture)"
deploy_export joint_gem "$(final joint_gem)"
deploy_export joint_gem_f16 "$(final joint_gem)" --expert-quant f16
deploy_export joint_gem_bias "$(final joint_gem)" --scar-general-bias "$(cat "$OUT/joint_gem.bias")"
deploy_export joint_gem_full_bias "$(final joint_gem_full)" --scar-general-bias "$(cat "$OUT/joint_gem_full.bias")"
deploy_export joint_gem_r8_bias "$(final joint_gem_r8)" --scar-general-bias "$(cat "$OUT/joint_gem_r8.bias")"
deploy_export seq_gem_7 "$(final seq_gem_7)"
FILES=(base mixture joint_gem joint_gem_f16 joint_gem_bias joint_gem_full_bias joint_gem_r8_bias seq_gem_7)
for m in "${FILES[@]}"; do
  for c in "${DOMAINS[@]}" general general_probe; do
    p="$OUT/deploy/$m.ppl_$c.json"
    [ -f "$p" ] || "$RUN" -m "$OUT/deploy/$m.gguf" --perplexity "$SUITE/$c/test.jsonl" --max-tokens 8192 > "$p"
  done
done
prompt() { python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())["text"][:1500])' "$1"; }
GENERAL_TEXT=$(prompt "$SUITE/general_probe/test.jsonl") LAW_TEXT=$(prompt "$SUITE/law/test.jsonl")
# Three rounds over the files (this machine's speed drifts by tens of percent within minutes:
# interleaving spreads that over every file), each the best of 3; the table takes each file's best.
for round in 1 2 3; do
  for m in "${FILES[@]}"; do
    "$RUN" -m "$OUT/deploy/$m.gguf" --bench -t 1 --reps 3 --prompt-tokens 128 --gen-tokens 64 -p "$GENERAL_TEXT" | tail -1 > "$OUT/deploy/$m.bench_general.$round.json"
    "$RUN" -m "$OUT/deploy/$m.gguf" --bench -t 1 --reps 3 --prompt-tokens 128 --gen-tokens 64 -p "$LAW_TEXT" | tail -1 > "$OUT/deploy/$m.bench_law.$round.json"
  done
done
python3 - "$OUT/deploy" "$CSV" "${FILES[@]}" > "$OUT/deploy.md" <<'PY'
import json, sys
folder, domains, files = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
load = lambda name: json.loads(open(f"{folder}/{name}.json").read().strip().splitlines()[-1])
nll = {m: {c: load(f"{m}.ppl_{c}")["mean_nll"] for c in domains + ["general", "general_probe"]} for m in files}
bench = {m: {p: max((load(f"{m}.bench_{p}.{r}") for r in (1, 2, 3)), key=lambda b: b["decode_tok_s"])
             for p in ("general", "law")} for m in files}
dense = bench["mixture"]
print("Deployed files (gemkit-run, 1 thread, best of 3 rounds of 3; NLL by gemkit-run --perplexity on each test "
      "split's first 8192 tokens; fall and rise against the exported base)\n")
print("| file | MB | vs dense | mean NLL fall | probe rise | decode tok/s, general text | vs dense | decode tok/s, law text | vs dense | prompt tok/s (general) | peak RSS MB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for m in files:
    g, l = bench[m]["general"], bench[m]["law"]
    fall = sum(nll["base"][d] - nll[m][d] for d in domains) / len(domains)
    rise = nll[m]["general_probe"] - nll["base"]["general_probe"]
    print(f"| {m} | {g['file_mb']:.2f} | {g['file_mb'] / dense['general']['file_mb']:.2f}x | {fall:.3f} | {rise:+.4f} | "
          f"{g['decode_tok_s']:.0f} | {g['decode_tok_s'] / dense['general']['decode_tok_s']:.2f}x | {l['decode_tok_s']:.0f} | "
          f"{l['decode_tok_s'] / dense['law']['decode_tok_s']:.2f}x | {g['prompt_tok_s']:.0f} | {g['peak_rss_mb']:.1f} |")
print("\nPer corpus, mean token NLL (nats) of each deployed file\n")
cols = domains + ["general", "general_probe"]
print("| file | " + " | ".join(cols) + " |")
print("|---|" + "---:|" * len(cols))
for m in files:
    print(f"| {m} | " + " | ".join(f"{nll[m][c]:.4f}" for c in cols) + " |")
PY
cat "$OUT/deploy.md"
echo "reports: $OUT/multi_domain.md $OUT/seq_gem.md $OUT/seq_replay.md $OUT/seq_finetune.md $OUT/deploy.md"
