#!/usr/bin/env bash
# Builds the runtime loader fuzz target with clang's libFuzzer + AddressSanitizer +
# UndefinedBehaviorSanitizer and runs it for a bounded time (ctest `runtime_fuzz`).
#   tests/fuzz/run.sh [SECONDS=60] [BUILD_DIR=build/fuzz]
# Seeds: tiny llama GGUF files in F32, Q8_0 and Q4_0 (tests/llama_cpp/make_tiny_gguf.py, an
# independent writer), tied and untied. Fails on any crash or sanitizer report.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SECONDS_TO_RUN=${1:-60}
OUT=${2:-$ROOT/build/fuzz}
command -v clang++ >/dev/null || { echo "runtime_fuzz: clang++ is not installed (apt install clang)" >&2; exit 1; }
mkdir -p "$OUT/obj" "$OUT/seeds" "$OUT/corpus"
SOURCES=(
  tests/fuzz/runtime_loader_fuzz.cpp
  runtime/model.cpp runtime/kernels.cpp runtime/kernels_avx2.cpp runtime/kernels_avx512.cpp runtime/kernels_vnni.cpp runtime/thread_pool.cpp
  formats/gguf.cpp core/file_io.cpp formats/block_quant.cpp formats/llama_tensor_names.cpp
  tokenizers/unicode.cpp tokenizers/added_tokens.cpp tokenizers/pretokenizer.cpp tokenizers/bpe_tokenizer.cpp
  tokenizers/wordpiece_tokenizer.cpp tokenizers/sentencepiece_model.cpp tokenizers/spm_normalizer.cpp
  tokenizers/spm_tokenizer.cpp tokenizers/gguf_tokenizer.cpp
)
FLAGS=(-std=c++17 -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -I"$ROOT")
objs=()
for src in "${SOURCES[@]}"; do
  obj="$OUT/obj/$(echo "$src" | tr '/' '_').o"
  extra=()
  [[ $src == runtime/kernels_avx2.cpp ]] && extra=(-mavx2 -mfma -mf16c)
  [[ $src == runtime/kernels_avx512.cpp ]] && extra=(-mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c)
  [[ $src == runtime/kernels_vnni.cpp ]] && extra=(-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma -mf16c)
  if [[ ! -f $obj || $ROOT/$src -nt $obj ]]; then
    clang++ "${FLAGS[@]}" "${extra[@]}" -c "$ROOT/$src" -o "$obj"
  fi
  objs+=("$obj")
done
clang++ -fsanitize=fuzzer,address,undefined "${objs[@]}" $(pkg-config --libs icu-uc) -lpthread -o "$OUT/runtime_loader_fuzz"
i=0
for q in f32 q8_0 q4_0; do
  for tie in "" --untied; do
    /usr/bin/python3 "$ROOT/tests/llama_cpp/make_tiny_gguf.py" "$OUT/seeds/seed$i.gguf" --qtype $q $tie --seed $i >/dev/null 2>&1
    rm -f "$OUT/seeds/seed$i.npz"
    i=$((i + 1))
  done
done
echo "runtime_fuzz: $SECONDS_TO_RUN s from ${i} seeds"
"$OUT/runtime_loader_fuzz" "$OUT/corpus" "$OUT/seeds" -max_total_time="$SECONDS_TO_RUN" -max_len=400000 \
  -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 2>&1 | tail -25
