#!/usr/bin/env bash
# Builds llama.cpp's own `llama-bench` (and nothing else) from the llama.cpp source that ships inside
# npm node-llama-cpp@3.22.1 (package/llama/gitRelease.bundle, llama.cpp commit de3ff815ea7d, the
# same source as the prebuilt library that bench/llama_cpp_bench.mjs drives), so that llama.cpp's
# speed can be measured without the node binding in between.
#
#   bench/build_llama_bench.sh [DEST]     DEST default: <repo>/build/llama_cpp/llama-bench-build
#
# Needs the node package installed first (tests/llama_cpp/install.sh; its folder is taken from
# $GEMKIT_LLAMA_CPP, default <repo>/build/llama_cpp). Layout of DEST:
#   src/              git checkout of the bundle (so llama.cpp's build info records the commit)
#   build/            cmake build tree (Release, GGML_NATIVE=ON, GGML_OPENMP=OFF, static libs)
#   bin/llama-bench   the tool
#   build-time.txt    how long the last full build took
# Idempotent: an existing bin/llama-bench is reused (delete DEST or set REBUILD=1 to rebuild).
# JOBS (default 2) sets the build parallelism.
# CROSS=aarch64 cross-builds it for ARM64 instead (cmake/aarch64-linux-gnu.cmake; GGML_NATIVE=OFF,
# GGML_CPU_ARM_ARCH=armv8.2-a+dotprod: NEON with the dot product, what gemkit's neon_dotprod set
# uses) into <repo>/build/llama_cpp/llama-bench-aarch64, for bench/arm_instructions.sh (qemu).
#
# Flags: -DGGML_NATIVE=ON (-march=native: on this AMD EPYC (Zen 4: family 25, model 17) AVX-512, VNNI, BF16),
# -DLLAMA_CURL=OFF (deprecated in this llama.cpp, only warns), -DLLAMA_OPENSSL=OFF (no HTTPS code),
# -DGGML_OPENMP=OFF: ggml's own thread pool, as in node-llama-cpp's prebuilt binaries (built with
# OpenMP off), so both measure the same threading; set OPENMP=ON to get llama.cpp's default (OpenMP
# when the compiler has it). -DBUILD_SHARED_LIBS=OFF: one self-contained binary.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
NLC=${GEMKIT_LLAMA_CPP:-$ROOT/build/llama_cpp}
CROSS=${CROSS:-}
case "$CROSS" in
  "") DEST=${1:-$ROOT/build/llama_cpp/llama-bench-build}; TARGET_FLAGS=(-DGGML_NATIVE=ON); RUN=() ;;
  aarch64) DEST=${1:-$ROOT/build/llama_cpp/llama-bench-aarch64}
           TARGET_FLAGS=(-DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/aarch64-linux-gnu.cmake" -DGGML_NATIVE=OFF
                         -DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod)
           RUN=(qemu-aarch64) ;;
  *) echo "build_llama_bench: CROSS: expected aarch64 or nothing, got '$CROSS'" >&2; exit 2 ;;
esac
JOBS=${JOBS:-2}
OPENMP=${OPENMP:-OFF}
BUNDLE="$NLC/node_modules/node-llama-cpp/llama/gitRelease.bundle"

log() { echo "build_llama_bench: $*" >&2; }
fail() { echo "build_llama_bench: ERROR: $*" >&2; exit 1; }

for tool in git cmake cc c++; do
  command -v "$tool" >/dev/null 2>&1 || fail "'$tool' is not installed (needed: git, cmake, cc, c++)"
done
[ -f "$BUNDLE" ] || fail "$BUNDLE not found: install node-llama-cpp first (tests/llama_cpp/install.sh) or set GEMKIT_LLAMA_CPP"

if [ -x "$DEST/bin/llama-bench" ] && [ "${REBUILD:-0}" != 1 ]; then
  log "already built (REBUILD=1 to rebuild)"
  echo "llama-bench: $DEST/bin/llama-bench"
  exit 0
fi

mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
t0=$(date +%s)
if [ ! -f "$DEST/src/CMakeLists.txt" ]; then
  rm -rf "$DEST/src"
  log "checking out the llama.cpp bundle into $DEST/src"
  git clone --quiet "$BUNDLE" "$DEST/src" 2>/dev/null || {
    # some git versions want the ref spelled out for a bundle that only lists HEAD
    rm -rf "$DEST/src"
    git init --quiet "$DEST/src"
    git -C "$DEST/src" fetch --quiet "$BUNDLE" HEAD || fail "cannot read the git bundle $BUNDLE"
    git -C "$DEST/src" checkout --quiet FETCH_HEAD
  }
fi
commit=$(git -C "$DEST/src" rev-parse HEAD)
t1=$(date +%s)
log "configuring llama.cpp ${commit:0:12} (${TARGET_FLAGS[*]}, GGML_OPENMP=$OPENMP)"
cmake -S "$DEST/src" -B "$DEST/build" -DCMAKE_BUILD_TYPE=Release \
  "${TARGET_FLAGS[@]}" -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_OPENMP="$OPENMP" \
  -DBUILD_SHARED_LIBS=OFF -DGGML_CCACHE=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
  >"$DEST/cmake.log" 2>&1 \
  || { tail -n 30 "$DEST/cmake.log" >&2; fail "cmake configure failed (log: $DEST/cmake.log)"; }
t2=$(date +%s)
log "building target llama-bench with -j$JOBS (log: $DEST/build.log)"
cmake --build "$DEST/build" --target llama-bench -j"$JOBS" >"$DEST/build.log" 2>&1 \
  || { tail -n 30 "$DEST/build.log" >&2; fail "build failed (log: $DEST/build.log)"; }
t3=$(date +%s)
mkdir -p "$DEST/bin"
cp "$DEST/build/bin/llama-bench" "$DEST/bin/llama-bench"
"${RUN[@]}" "$DEST/bin/llama-bench" --help >/dev/null 2>&1 || fail "$DEST/bin/llama-bench does not run"
{
  echo "llama.cpp commit $commit"
  echo "checkout $((t1 - t0)) s, configure $((t2 - t1)) s, build $((t3 - t2)) s (-j$JOBS), total $((t3 - t0)) s"
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$DEST/build-time.txt"
log "$(sed -n 2p "$DEST/build-time.txt")"
echo "llama-bench: $DEST/bin/llama-bench"
