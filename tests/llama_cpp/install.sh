#!/usr/bin/env bash
# Installs the llama.cpp reference runtime used to verify gemkit's GGUF exports, into DEST
# (default: <repo>/build/llama_cpp):
#  - npm node-llama-cpp@3.22.1 + @node-llama-cpp/linux-x64@3.22.1 (MIT; a prebuilt CPU llama.cpp)
#    in DEST/node_modules, used by next_token_logprobs.mjs;
#  - DEST/bin/ggml_quantize_ref, built from ggml_quantize_ref.c and ggml's own quantization code
#    (target ggml-base) taken from the llama.cpp git bundle inside the npm package.
# Idempotent: the npm tarballs go to the project cache (GEMKIT_CACHE, default ~/.cache/gemkit/npm,
# as tests/fetch_test_data.sh does) together with an npm cache of their dependencies, so a second
# install needs no network; a stamp file marks a complete DEST. Needs node >= 20, npm, tar, git,
# cmake, cc and c++. Prints the node package folder and the tool path at the end.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DEST=${1:-$ROOT/build/llama_cpp}
CACHE=${GEMKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gemkit}/npm
NPM_CACHE="$CACHE/_cacache"         # npm's own cache (dependency tarballs + metadata)
VERSION=3.22.1
PKGS=("node-llama-cpp@$VERSION" "@node-llama-cpp/linux-x64@$VERSION")
STAMP_NAME=.complete-v1
JOBS=${JOBS:-2}

log() { echo "llama_cpp/install: $*" >&2; }
fail() { echo "llama_cpp/install: ERROR: $*" >&2; exit 1; }

for tool in node npm tar git cmake cc c++; do
  command -v "$tool" >/dev/null 2>&1 || fail "'$tool' is not installed (needed: node>=20, npm, tar, git, cmake, cc, c++)"
done
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || fail "node-llama-cpp $VERSION needs node >= 20 (found $(node --version))"

mkdir -p "$DEST" "$CACHE"
DEST=$(cd "$DEST" && pwd)
PKG_DIR="$DEST/node_modules/node-llama-cpp"
TOOL="$DEST/bin/ggml_quantize_ref"
STAMP="$DEST/$STAMP_NAME"

report() {
  echo "node-llama-cpp package: $PKG_DIR"
  echo "ggml_quantize_ref:      $TOOL"
}

# A complete DEST is reused when the stamp is there and the tool source did not change.
if [ -f "$STAMP" ] && [ -x "$TOOL" ] && [ -f "$PKG_DIR/package.json" ] \
   && cmp -s "$HERE/ggml_quantize_ref.c" "$DEST/ggml_quantize_ref/src/ggml_quantize_ref.c"; then
  report
  exit 0
fi
rm -f "$STAMP"

pack() {  # npm pack NAME@VERSION into the cache unless already there; prints the tarball path
  local spec=$1 name=${1%@*} version=${1##*@}
  local file
  file=$(echo "$name" | sed -e 's|^@||' -e 's|/|-|')-$version.tgz   # npm's naming for scoped packages
  local tgz="$CACHE/$file"
  if [ ! -s "$tgz" ]; then
    log "npm pack $spec -> $CACHE"
    (cd "$CACHE" && npm pack "$spec" --silent --cache "$NPM_CACHE" >/dev/null) \
      || fail "npm pack $spec failed (is the npm registry reachable?)"
  fi
  [ -s "$tgz" ] || fail "$tgz missing after npm pack"
  echo "$tgz"
}

# ---------------------------------------------------------------------------------------------
# 1. npm packages
# ---------------------------------------------------------------------------------------------
npm_ok() {
  [ -f "$PKG_DIR/package.json" ] && [ -f "$DEST/node_modules/@node-llama-cpp/linux-x64/package.json" ] \
    && [ "$(node -p "require('$PKG_DIR/package.json').version")" = "$VERSION" ] \
    && [ "$(node -p "require('$DEST/node_modules/@node-llama-cpp/linux-x64/package.json').version")" = "$VERSION" ]
}
tarballs=()
for spec in "${PKGS[@]}"; do tarballs+=("$(pack "$spec")"); done
main_tgz=${tarballs[0]}

if npm_ok; then
  log "npm packages already installed in $DEST/node_modules"
else
  log "installing ${PKGS[*]} into $DEST"
  t0=$(date +%s)
  [ -f "$DEST/package.json" ] || cat > "$DEST/package.json" <<EOT
{
  "name": "gemkit-llama-cpp-reference",
  "private": true,
  "description": "llama.cpp reference runtime for gemkit's GGUF export checks (tests/llama_cpp/install.sh)"
}
EOT
  # NODE_LLAMA_CPP_SKIP_DOWNLOAD: never download or build llama.cpp at install time; the prebuilt
  # CPU binary comes from @node-llama-cpp/linux-x64. --omit=optional skips the GPU/other-OS
  # prebuilt packages (hundreds of MB). Try the cache alone first; fall back to the registry.
  npm_args=(install --omit=optional --no-audit --no-fund --no-save --loglevel=error --cache "$NPM_CACHE")
  if ! (cd "$DEST" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm "${npm_args[@]}" --offline "${tarballs[@]}") >/dev/null 2>"$DEST/npm-offline.log"; then
    log "npm cache incomplete, installing from the registry"
    (cd "$DEST" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm "${npm_args[@]}" --prefer-offline "${tarballs[@]}") >/dev/null \
      || fail "npm install failed (is the npm registry reachable? see messages above)"
  fi
  rm -f "$DEST/npm-offline.log"
  npm_ok || fail "npm install finished but node-llama-cpp $VERSION / @node-llama-cpp/linux-x64 $VERSION are not in $DEST/node_modules"
  log "npm install took $(( $(date +%s) - t0 )) s"
fi
# The prebuilt binding must load with CPU only; fail early with a clear message if it does not.
# (A script file, not node -e: node-llama-cpp forks a test process with node's own argv.)
probe=$(mktemp "${TMPDIR:-/tmp}/llama_cpp_probe.XXXXXX.mjs")
cat > "$probe" <<EOT
import {getLlama} from "$(node -p "require('url').pathToFileURL('$PKG_DIR/dist/index.js').href")";
const llama = await getLlama({gpu: false, build: "never", usePrebuiltBinaries: true, progressLogs: false});
await llama.dispose();
EOT
if ! node "$probe"; then
  rm -f "$probe"
  fail "node-llama-cpp cannot load its prebuilt CPU llama.cpp from $DEST/node_modules/@node-llama-cpp/linux-x64"
fi
rm -f "$probe"

# ---------------------------------------------------------------------------------------------
# 2. ggml_quantize_ref, from the llama.cpp source bundled in the npm package
# ---------------------------------------------------------------------------------------------
QDIR="$DEST/ggml_quantize_ref"
if [ -x "$TOOL" ] && cmp -s "$HERE/ggml_quantize_ref.c" "$QDIR/src/ggml_quantize_ref.c"; then
  log "ggml_quantize_ref already built"
elif [ -f "$QDIR/build/CMakeCache.txt" ] && [ -f "$QDIR/src/LLAMA_CPP_COMMIT" ]; then
  log "ggml_quantize_ref.c changed: rebuilding the tool"
  cp "$HERE/ggml_quantize_ref.c" "$QDIR/src/"
  cmake --build "$QDIR/build" --target ggml_quantize_ref -j"$JOBS" >"$QDIR/build.log" 2>&1 \
    || { tail -n 30 "$QDIR/build.log" >&2; fail "build failed (log: $QDIR/build.log)"; }
  mkdir -p "$DEST/bin"
  cp "$QDIR/build/ggml_quantize_ref" "$TOOL"
else
  t0=$(date +%s)
  rm -rf "$QDIR"
  mkdir -p "$QDIR/src" "$DEST/bin"
  work=$(mktemp -d "${TMPDIR:-/tmp}/llama_cpp_install.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  # Only ggml/ is needed: configure it as a subproject of a tiny wrapper project (as a top-level
  # project ggml wants ggml.pc.in, which the bundle lacks) and build the ggml-base target only.
  tar -xzf "$main_tgz" -C "$work" package/llama/gitRelease.bundle \
    || fail "$main_tgz has no package/llama/gitRelease.bundle"
  git init --quiet --bare "$work/llama.git"
  git -C "$work/llama.git" fetch --quiet "$work/package/llama/gitRelease.bundle" HEAD \
    || fail "cannot read the git bundle in $main_tgz"
  commit=$(git -C "$work/llama.git" rev-parse FETCH_HEAD)
  git -C "$work/llama.git" archive --format=tar FETCH_HEAD ggml LICENSE | tar -xf - -C "$QDIR/src"
  cp "$HERE/ggml_quantize_ref.c" "$QDIR/src/"
  cat > "$QDIR/src/CMakeLists.txt" <<'EOT'
cmake_minimum_required(VERSION 3.14)
project(ggml_quantize_ref C CXX)
set(GGML_NATIVE OFF CACHE BOOL "" FORCE)       # ggml-base does not use -march anyway; be explicit
set(GGML_OPENMP OFF CACHE BOOL "" FORCE)
set(GGML_CCACHE OFF CACHE BOOL "" FORCE)
set(BUILD_SHARED_LIBS OFF CACHE BOOL "" FORCE)
add_subdirectory(ggml)
add_executable(ggml_quantize_ref ggml_quantize_ref.c)
target_link_libraries(ggml_quantize_ref PRIVATE ggml-base)
EOT
  log "building ggml-base + ggml_quantize_ref (llama.cpp ${commit:0:12}, -j$JOBS)"
  cmake -S "$QDIR/src" -B "$QDIR/build" -DCMAKE_BUILD_TYPE=Release >"$QDIR/cmake.log" 2>&1 \
    || { tail -n 30 "$QDIR/cmake.log" >&2; fail "cmake configure failed (log: $QDIR/cmake.log)"; }
  cmake --build "$QDIR/build" --target ggml_quantize_ref -j"$JOBS" >"$QDIR/build.log" 2>&1 \
    || { tail -n 30 "$QDIR/build.log" >&2; fail "build failed (log: $QDIR/build.log)"; }
  echo "$commit" > "$QDIR/src/LLAMA_CPP_COMMIT"
  cp "$QDIR/build/ggml_quantize_ref" "$TOOL"
  rm -rf "$work"
  trap - EXIT
  log "ggml_quantize_ref built in $(( $(date +%s) - t0 )) s"
fi
# Smoke test: one Q8_0 block of 32 values is 34 bytes.
smoke=$(mktemp -d "${TMPDIR:-/tmp}/llama_cpp_smoke.XXXXXX")
head -c 128 /dev/zero > "$smoke/in.f32"
"$TOOL" q8_0 32 "$smoke/in.f32" "$smoke/out.bin" 2>/dev/null && [ "$(wc -c < "$smoke/out.bin")" -eq 34 ] \
  || { rm -rf "$smoke"; fail "$TOOL does not work (smoke test)"; }
rm -rf "$smoke"

touch "$STAMP"
report
