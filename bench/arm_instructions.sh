#!/usr/bin/env bash
# Guest instructions per decoded token of the ARM64 runtime under qemu (emulation gives no
# meaningful time, instruction counts are exact): each kernel set of the cross build (portable,
# neon, neon_dotprod) on one file, greedy, counted by bench/qemu_insn_count.c. The count of a run
# with N2 new tokens minus one with N1, divided by N2 - N1: loading and the prompt cancel out.
#   bench/arm_instructions.sh [MODEL.gguf] [AARCH64_BUILD]
# Defaults: out/bench/models/smollm2-q4_0.gguf (bench/make_bench_models.sh), build/aarch64.
# With llama.cpp's own llama-bench cross-built for ARM64 (CROSS=aarch64 bench/build_llama_bench.sh;
# LLAMA_BENCH overrides its path) a last row counts it the same way on the same file: one thread,
# `-p 0 -n N -r 1` (its generation test: tokens decoded one by one from an empty context).
# Prints a Markdown table; SETS, N1 (2), N2 (6), PROMPT override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-out/bench/models/smollm2-q4_0.gguf}
arm=${2:-build/aarch64}
n1=${N1:-2} n2=${N2:-6}
prompt=${PROMPT:-The court held that}
sets=${SETS:-portable neon neon_dotprod}
[ -f "$model" ] || { echo "arm_instructions: $model: missing" >&2; exit 1; }
[ -x "$arm/runtime/gemkit-c-example" ] || { echo "arm_instructions: $arm/runtime/gemkit-c-example: missing (build the ARM64 runtime)" >&2; exit 1; }
plugin=$(mktemp -d)/qemu_insn_count.so
gcc -shared -fPIC -O2 bench/qemu_insn_count.c -o "$plugin"

count() {  # count KERNELS N -> instructions of a run with N new tokens
  local out
  out=$(GEMKIT_RUNTIME_KERNELS=$1 QEMU_CPU=max qemu-aarch64 -d plugin -plugin "$plugin" \
        "$arm/runtime/gemkit-c-example" "$model" "$prompt" "$2" 2>&1)
  [ "$(grep -c '^token ' <<<"$out")" = "$2" ] || { echo "arm_instructions: $1: expected $2 new tokens:"$'\n'"$out" >&2; exit 1; }
  grep -q "^kernels $1\$" <<<"$out" || { echo "arm_instructions: kernels $1 not used:"$'\n'"$out" >&2; exit 1; }
  grep '^instructions ' <<<"$out" | awk '{print $2}'
}

llama_bench=${LLAMA_BENCH:-build/llama_cpp/llama-bench-aarch64/bin/llama-bench}
count_llama() {  # count_llama N -> instructions of llama-bench generating N tokens
  local out
  out=$(QEMU_CPU=max qemu-aarch64 -d plugin -plugin "$plugin" "$llama_bench" -m "$model" -p 0 -n "$1" -r 1 -t 1 -o csv 2>&1)
  grep -q "\"$1\"" <<<"$out" || { echo "arm_instructions: llama-bench -n $1 failed:"$'\n'"$out" >&2; exit 1; }
  grep '^instructions ' <<<"$out" | awk '{print $2}'
}

bytes=$(stat -c %s "$model")
echo "| kernels | instructions per decoded token (millions) | vs portable |"
echo "|---|---|---|"
base=""
for k in $sets; do
  a=$(count "$k" "$n1")
  b=$(count "$k" "$n2")
  per=$(( (b - a) / (n2 - n1) ))
  [ -n "$base" ] || base=$per
  awk -v k="$k" -v p="$per" -v b="$base" 'BEGIN {printf "| %s | %.1f | %.2fx fewer |\n", k, p / 1e6, b / p}'
done
if [ -x "$llama_bench" ]; then
  a=$(count_llama "$n1")
  b=$(count_llama "$n2")
  per=$(( (b - a) / (n2 - n1) ))
  awk -v p="$per" -v b="$base" 'BEGIN {printf "| llama.cpp (llama-bench, armv8.2-a+dotprod) | %.1f | %.2fx fewer |\n", p / 1e6, b / p}'
fi
echo
echo "model $(basename "$model") ($((bytes / 1000000)) MB), prompt \"$prompt\", counts of $n2 minus $n1 new tokens, qemu-aarch64 $(qemu-aarch64 --version | head -1 | awk '{print $3}') -cpu max"
