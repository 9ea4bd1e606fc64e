#!/bin/bash
# QAT vs post-training quantization on law (docs/quantization.md): the float fine-tuned model
# (recipes/domains/law_finetune.toml, seed 0: the ablation grid's a01 run) and the same recipe
# with QAT (recipes/quant/law_qat.toml), each exported to GGUF and evaluated as exported files.
# and the all-Q4_0 QAT run (recipes/quant/law_qat_q4.toml).
# Usage: docs/quant_compare.sh FLOAT_CHECKPOINT QAT_CHECKPOINT QAT_Q4_CHECKPOINT [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
G=${GEMKIT:-build/cli/gemkit}
FLOAT=${1:?float checkpoint}
QAT=${2:?QAT checkpoint}
QAT_Q4=${3:?all-q4_0 QAT checkpoint}
OUT=${4:-out/quant/compare}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
$G export gguf "$FLOAT" -o "$OUT/float-f32.gguf" -q f32 --force
$G export gguf "$FLOAT" -o "$OUT/float-ptq-hybrid.gguf" -q hybrid --force
$G export gguf "$FLOAT" -o "$OUT/float-ptq-q4_0.gguf" -q q4_0 --force
$G export gguf "$QAT" -o "$OUT/qat-f32.gguf" -q f32 --force
$G export gguf "$QAT" -o "$OUT/qat-hybrid.gguf" -q recipe --force
$G export gguf "$QAT_Q4" -o "$OUT/qat-q4_0.gguf" -q recipe --force
for m in float-f32 float-ptq-hybrid float-ptq-q4_0 qat-f32 qat-hybrid qat-q4_0; do
  $G eval -m "$OUT/$m.gguf" --corpus out/suite/law --tasks out/suite/law --split test --max-items 100 \
    eval.max_documents=100 --out "$OUT/$m.law.json" > "$OUT/$m.law.log" 2>&1
  $G eval -m "$OUT/$m.gguf" --corpus out/suite/general --split test eval.max_documents=100 \
    --out "$OUT/$m.general.json" > "$OUT/$m.general.log" 2>&1
  echo "$m: $(grep -hE 'token_nll|accuracy \*|macro_f1 \*' "$OUT/$m.law.log" "$OUT/$m.general.log" | awk -F'|' '{printf "%s %s=%s; ", $3, $6, $7}')"
done
ls -l "$OUT"/*.gguf
