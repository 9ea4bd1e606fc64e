#!/usr/bin/env bash
# SmolLM2-135M-Instruct tuned on law as an instruct model (recipes/smollm2/law_instruct.toml: half
# raw law text, half the law tasks' training questions as chat examples, loss on the answers), and
# evaluated before and after: every suite task asked as running text and through the chat
# template, and the perplexity of every suite domain and the held-out general probe (the
# off-target figures). The comparison (docs/instruct.md) goes to docs/instruct/law_compare.{json,md},
# the reports it reads to docs/instruct/reports/.
#   docs/run_instruct_smollm2.sh [RUN_DIR=out/smollm2]
# GEMKIT (default build/cli/gemkit) is the binary; THREADS (default 2) LibTorch threads. Every step
# whose output exists is skipped, and training resumes from its newest checkpoint, so an
# interrupted run continues where it stopped. Sized for the project's 2-core machine: training
# about 80 minutes on one core, each evaluation 5 to 15 minutes (25 items per task, 8192 tokens
# per corpus, as the SmolLM2 ablation grid evaluates).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
G=${GEMKIT:-build/cli/gemkit}
RUN=${1:-out/smollm2}
SUITE=out/suite-smollm2
REPORTS=$RUN/law_instruct_eval
export OMP_NUM_THREADS=${THREADS:-2}
MODEL=$("$G" models fetch smollm2-135m-instruct)

[ -f "$SUITE/law/shards/train.h5" ] || "$G" data suite build --out "$SUITE" --tokenizer "$MODEL"
if [ ! -f "$SUITE/law/shards/instructions.train.h5" ]; then
  "$G" data task-chat "$SUITE/law" --out "$SUITE/law/instructions.train.jsonl"
  "$G" data prepare --tokenizer "$MODEL" --out "$SUITE/law/shards/instructions.train.h5" "$SUITE/law/instructions.train.jsonl"
fi
TUNED=$RUN/law_instruct/step-0000080  # the last checkpoint: the recipe's max_steps
if [ ! -f "$TUNED/config.json" ]; then
  resume=(); [ -d "$RUN/law_instruct" ] && resume=(--resume)
  "$G" train recipes/smollm2/law_instruct.toml --out "$RUN/law_instruct" "${resume[@]}"
fi

evaluate() {  # NAME MODEL FORMAT [--corpus DIR]
  local name=$1 model=$2 format=$3; shift 3
  [ -f "$REPORTS/$name.json" ] && return
  echo "== eval $name" >&2
  "$G" eval --model "$model" --tasks "$SUITE" --task-format "$format" --max-items 25 --out "$REPORTS/$name.json" \
    eval.max_tokens=8192 "$@"
}
evaluate base_text "$MODEL" text --corpus "$SUITE"
evaluate base_chat "$MODEL" chat
evaluate tuned_text "$TUNED" text --corpus "$SUITE"
evaluate tuned_chat "$TUNED" chat
# The answers-only chat probe: every domain's task questions (validation split, 25 per task) as
# chat examples, scored on their answers alone (eval --corpus of a chat shard: method answer_nll).
PROBE=$REPORTS/chat_probe
if [ ! -f "$PROBE/tasks.validation.h5" ]; then
  mkdir -p "$PROBE"
  "$G" data task-chat "$SUITE" --split validation --max-items 25 --out "$PROBE/tasks.validation.jsonl"
  "$G" data prepare --tokenizer "$MODEL" --out "$PROBE/tasks.validation.h5" "$PROBE/tasks.validation.jsonl"
fi
for pair in "base:$MODEL" "law_instruct:$TUNED"; do
  [ -f "$PROBE/${pair%%:*}.json" ] || "$G" eval --model "${pair#*:}" --corpus "$PROBE/tasks.validation.h5" --out "$PROBE/${pair%%:*}.json"
done

# Committed outputs: the four reports, the training curve and the comparison.
mkdir -p docs/instruct/reports
cp "$REPORTS"/{base,tuned}_{text,chat}.{json,md} docs/instruct/reports/
cp "$RUN/law_instruct/metrics.jsonl" docs/instruct/law_instruct_metrics.jsonl
"$G" plot docs/instruct/law_instruct_metrics.jsonl --metrics loss,val_loss,lr --out docs/instruct/law_instruct_metrics.svg
"$G" compare --target law --labels "base,law_instruct,base (chat),law_instruct (chat)" --out docs/instruct/law_compare.json \
  "$REPORTS/base_text.json" "$REPORTS/tuned_text.json" "$REPORTS/base_chat.json" "$REPORTS/tuned_chat.json"
# The chat-format scores against the base asked the same way (GG and S(m,~t) within one format).
"$G" compare --target law --labels "base (chat),law_instruct (chat)" --out docs/instruct/law_compare_chat.json \
  "$REPORTS/base_chat.json" "$REPORTS/tuned_chat.json"
mkdir -p docs/instruct/chat_probe
cp "$PROBE"/{base,law_instruct}.{json,md} docs/instruct/chat_probe/
"$G" compare --target law --labels "base,law_instruct" --out docs/instruct/chat_probe/compare.json \
  "$PROBE/base.json" "$PROBE/law_instruct.json"
