#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, libFuzzer + AddressSanitizer +
# UndefinedBehaviorSanitizer) and runs each for a bounded time from its seed corpus (ctest `fuzz`).
#   tests/fuzz/run.sh [SECONDS_PER_TARGET=15] [BUILD_DIR=build/fuzz] [TARGET...]
# Seeds: tests/fuzz/make_seeds.py (independent writers from PyPI, plus real checkpoints and
# llama.cpp vocabularies found on the machine, and token shards from BUILD_DIR/../cli/gemkit or
# $GEMKIT) and, for the runtime loader, tiny llama GGUF files from tests/llama_cpp/make_tiny_gguf.py.
# Each target's corpus (BUILD_DIR/corpus/TARGET) grows from run to run; BUILD_DIR/fuzz_log.tsv
# records every run (target, seconds, runs, coverage, corpus size, result), which is where
# docs/reliability.md's totals come from. A crash,
# sanitizer report, broken invariant or single allocation over 128 MB (a declared count trusted
# before it was checked against the file) leaves its input as BUILD_DIR/findings/TARGET/crash-*
# (or oom-*) and fails the script.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SECONDS_PER_TARGET=${1:-15}
OUT=${2:-$ROOT/build/fuzz}
shift $(( $# < 2 ? $# : 2 ))
# token_shard runs only by name (`run.sh 60 build/fuzz token_shard`): Debian's libhdf5 1.10.8 hangs
# inside H5Aread on some malformed shards (docs/reliability.md), which would fail CI at random.
ALL_TARGETS=(runtime_loader safetensors safetensors_index gguf gguf_tokenizer gguf_import hf_tokenizer sentencepiece
             wordpiece_vocab model_config chat_template task_jsonl corpus_jsonl recipe)
TARGETS=("${@:-${ALL_TARGETS[@]}}")
command -v clang++ >/dev/null || { echo "fuzz: clang++ is not installed (apt install clang)" >&2; exit 1; }
PYTHON=$ROOT/.venv/bin/python
[ -x "$PYTHON" ] || { echo "fuzz: $PYTHON is missing (./setup.sh makes the project's virtual environment)" >&2; exit 1; }
CXX=(clang++)
command -v ccache >/dev/null && CXX=(ccache clang++)
HDF5_CFLAGS=$(pkg-config --cflags hdf5 2>/dev/null || echo -I/usr/include/hdf5/serial)
HDF5_LIBS=$(pkg-config --libs hdf5 2>/dev/null || echo "-L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5")
mkdir -p "$OUT/obj" "$OUT/corpus" "$OUT/findings"

# Everything the targets parse with, as one archive: each target links only what it uses.
LIBRARY=(
  core/file_io.cpp core/sha256.cpp
  formats/gguf.cpp formats/safetensors.cpp formats/model_config.cpp formats/block_quant.cpp formats/llama_tensor_names.cpp
  tokenizers/unicode.cpp tokenizers/added_tokens.cpp tokenizers/pretokenizer.cpp tokenizers/bpe_tokenizer.cpp
  tokenizers/wordpiece_tokenizer.cpp tokenizers/sentencepiece_model.cpp tokenizers/spm_normalizer.cpp
  tokenizers/spm_tokenizer.cpp tokenizers/gguf_tokenizer.cpp tokenizers/hf_tokenizer.cpp tokenizers/tokenizer.cpp
  tokenizers/chat_template.cpp
  formats/ggml_dequant.cpp formats/gguf_writer.cpp import/gguf_import.cpp import/tokenizer_files.cpp
  formats/quant_policy.cpp train/recipe.cpp
  eval/tasks.cpp eval/shard_corpus.cpp data/loader.cpp data/token_shards.cpp
  runtime/model.cpp runtime/kernels.cpp runtime/kernels_avx2.cpp runtime/kernels_avx512.cpp runtime/kernels_vnni.cpp
  runtime/thread_pool.cpp runtime/repack.cpp
)
# The recipe schema takes its defaults from option structs in headers that include LibTorch (only
# their inline defaults are used, nothing is linked): the wheel's headers, and C++20 as in CMake.
TORCH_INCLUDE=$(ls -d "$ROOT"/.venv/lib/python3*/site-packages/torch/include | head -1)
# toml++ is used as the build uses it, Debian's release library: its header-only debug form asserts
# on table headers such as "[+" (upstream marzer/tomlplusplus#301) where the release form reports
# a parse error, which is what gemkit users get.
TORCH_FLAGS=(-std=c++20 -isystem "$TORCH_INCLUDE" -isystem "$TORCH_INCLUDE/torch/csrc/api/include"
             -DTOML_HEADER_ONLY=0 -DTOML_SHARED_LIB=1)
FLAGS=(-std=c++17 -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -I"$ROOT" $HDF5_CFLAGS)
compile() {  # SOURCE -> object path on stdout; recompiled when the source or any header changed
  local src=$1 obj="$OUT/obj/$(echo "$1" | tr '/' '_').o" extra=()
  [[ $src == runtime/kernels_avx2.cpp ]] && extra=(-mavx2 -mfma -mf16c)
  [[ $src == runtime/kernels_avx512.cpp ]] && extra=(-mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c)
  [[ $src == runtime/kernels_vnni.cpp ]] && extra=(-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma -mf16c)
  [[ $src == train/recipe.cpp || $src == tests/fuzz/recipe_fuzz.cpp ]] && extra=("${TORCH_FLAGS[@]}")
  "${CXX[@]}" "${FLAGS[@]}" "${extra[@]}" -MMD -c "$ROOT/$src" -o "$obj.tmp" && mv "$obj.tmp" "$obj"
  echo "$obj"
}
stale() {  # OBJ: whether it is missing or older than a file it was built from
  local obj=$1
  [[ -f $obj && -f $obj.d ]] || return 0
  local dep
  for dep in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$obj.d"); do [[ $dep -nt $obj ]] && return 0; done
  return 1
}
build_start=$SECONDS
flags_used="${CXX[*]} ${FLAGS[*]} ${TORCH_FLAGS[*]}"  # other flags than last time: rebuild everything
[ "$(cat "$OUT/obj/flags.txt" 2>/dev/null)" == "$flags_used" ] || { rm -f "$OUT"/obj/*.o; echo "$flags_used" > "$OUT/obj/flags.txt"; }
objs=() pids=()
for src in "${LIBRARY[@]}"; do  # compiled in parallel, one job per core
  obj="$OUT/obj/$(echo "$src" | tr '/' '_').o"
  objs+=("$obj")
  stale "$obj" || continue
  while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do sleep 0.2; done
  compile "$src" >/dev/null &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
rm -f "$OUT/libgemkit_fuzz.a.tmp" && ar qc "$OUT/libgemkit_fuzz.a.tmp" "${objs[@]}" && mv "$OUT/libgemkit_fuzz.a.tmp" "$OUT/libgemkit_fuzz.a"
for t in "${TARGETS[@]}"; do
  src=tests/fuzz/${t}_fuzz.cpp
  [ -f "$ROOT/$src" ] || { echo "fuzz: no target $t ($src)" >&2; exit 1; }
  obj="$OUT/obj/$(echo "$src" | tr '/' '_').o"
  stale "$obj" && compile "$src" >/dev/null
  clang++ -fsanitize=fuzzer,address,undefined "$obj" "$OUT/libgemkit_fuzz.a" $(pkg-config --libs icu-uc) $HDF5_LIBS \
    -ltomlplusplus -lpthread -o "$OUT/${t}_fuzz"
done
echo "fuzz: built ${#TARGETS[@]} target(s) in $((SECONDS - build_start)) s"

# Seeds (rewritten each run: cheap, and they follow the writers' current output).
GEMKIT=${GEMKIT:-$(dirname "$OUT")/cli/gemkit}
[ -x "$GEMKIT" ] || { echo "fuzz: $GEMKIT is not built (token shard seeds); set GEMKIT" >&2; exit 1; }
"$PYTHON" "$HERE/make_seeds.py" "$OUT/seeds" --testdata "$ROOT/build/testdata" --gemkit "$GEMKIT" >/dev/null
mkdir -p "$OUT/seeds/runtime_loader" "$OUT/seeds/gguf_import"
i=0
for q in f32 q8_0 q4_0; do
  for tie in "" --untied; do
    "$PYTHON" "$ROOT/tests/llama_cpp/make_tiny_gguf.py" "$OUT/seeds/runtime_loader/seed$i.gguf" --qtype $q $tie --seed $i >/dev/null 2>&1
    rm -f "$OUT/seeds/runtime_loader/seed$i.npz"
    cp "$OUT/seeds/runtime_loader/seed$i.gguf" "$OUT/seeds/gguf_import/llama$i.gguf"
    i=$((i + 1))
  done
done

dictionary() {
  case $1 in
    gguf | gguf_tokenizer | gguf_import | runtime_loader) echo "-dict=$HERE/dict/gguf.dict" ;;
    safetensors | safetensors_index | hf_tokenizer | model_config | chat_template | task_jsonl | corpus_jsonl)
      echo "-dict=$HERE/dict/json.dict" ;;
    recipe) echo "-dict=$HERE/dict/recipe.dict" ;;
  esac
}
failed=()
[ -f "$OUT/fuzz_log.tsv" ] || printf 'date\ttarget\tseconds\truns\tcoverage\tcorpus\tresult\n' > "$OUT/fuzz_log.tsv"
for t in "${TARGETS[@]}"; do
  mkdir -p "$OUT/corpus/$t" "$OUT/findings/$t"
  log="$OUT/findings/$t/last_run.log"
  rc=0 started=$SECONDS max_len=400000 malloc_limit=128 asan=
  if [ "$t" == token_shard ]; then
    max_len=600000  # an HDF5 shard holds at least one 256 KB chunk
    # libhdf5 sizes its own buffers by lengths the file declares, before gemkit sees anything; a
    # failed malloc there returns NULL as in production, and HDF5 reports an error. gemkit's own
    # buffers are sized only by lengths checked against the bytes the file stores.
    malloc_limit=2048 asan=allocator_may_return_null=1
  fi
  ASAN_OPTIONS=$asan LSAN_OPTIONS="suppressions=$HERE/lsan.supp:print_suppressions=0" "$OUT/${t}_fuzz" "$OUT/corpus/$t" "$OUT/seeds/$t" $(dictionary "$t") -max_total_time="$SECONDS_PER_TARGET" \
    -max_len=$max_len -rss_limit_mb=2048 -malloc_limit_mb=$malloc_limit -timeout=20 -print_final_stats=1 \
    -artifact_prefix="$OUT/findings/$t/" >"$log" 2>&1 || rc=$?
  took=$((SECONDS - started))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)  # printed twice after a crash
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corpus=$(ls "$OUT/corpus/$t" | wc -l)
  result=ok
  [ $rc -eq 0 ] || { result="finding (exit $rc)"; failed+=("$t"); }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$took" "${runs:-0}" "${cov:-0}" "$corpus" "$result" >> "$OUT/fuzz_log.tsv"
  printf 'fuzz %-18s %4s s %8s runs  cov %6s  corpus %5s  %s\n' "$t" "$took" "${runs:-0}" "${cov:-0}" "$corpus" "$result"
  [ $rc -eq 0 ] || tail -40 "$log"
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzz: findings in ${failed[*]} (inputs under $OUT/findings)" >&2; exit 1; }
