#!/usr/bin/env bash
# Fixture of the SmolLM2 round-trip tests (tests/CMakeLists.txt, smollm2_roundtrip_train):
# a token shard of the mini suite's law texts with SmolLM2's tokenizer, then two short
# trainings of the fetched SmolLM2-135M-Instruct (tests/recipes/smollm2_roundtrip_*.toml):
#   WORK/full   full fine-tuning, 3 steps (checkpoint WORK/full/step-0000003)
#   WORK/lora   LoRA rank 8, 3 steps (PEFT folder WORK/lora/adapter, merged WORK/lora/merged)
#
#   train_smollm2_roundtrip.sh GEMKIT_BIN MODEL_FOLDER SOURCE_DIR WORK
set -euo pipefail
if [ $# -ne 4 ]; then
  echo "usage: train_smollm2_roundtrip.sh GEMKIT_BIN MODEL_FOLDER SOURCE_DIR WORK" >&2
  exit 2
fi
gemkit=$1 model=$2 src=$3 work=$4
rm -rf "$work"
mkdir -p "$work"
cd "$work"
"$gemkit" data prepare --tokenizer "$model" --split train --out law_train.h5 "$src/data/mini/law/train.jsonl"
# The recipes name the model as models:smollm2-135m-instruct; train it from MODEL_FOLDER.
"$gemkit" train "$src/tests/recipes/smollm2_roundtrip_full.toml" "model.path=$model" --out full
"$gemkit" train "$src/tests/recipes/smollm2_roundtrip_lora.toml" "model.path=$model" --out lora
for f in full/latest lora/adapter/adapter_config.json lora/adapter/adapter_model.safetensors lora/merged/model.safetensors; do
  [ -e "$f" ] || { echo "train_smollm2_roundtrip: ERROR: $work/$f was not written" >&2; exit 1; }
done
echo "train_smollm2_roundtrip: full checkpoint $work/full/$(cat full/latest), LoRA adapter $work/lora/adapter"
