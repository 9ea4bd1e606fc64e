#!/bin/bash
# How docs/cuda.md's figures were taken: builds gemkit on a GPU machine that has PyTorch 2.x
# (pip, with CUDA) but no Debian packages and no network, against that torch's CMake package,
# with Debian bookworm's libraries carried in .cudadeps/prefix.tar.xz; then runs the CUDA test,
# GEM training on the GPU and on the CPU, evaluation on both, and ctest. PHASE=build|test|all.
# Making the carried prefix, on the Debian machine (repository root):
#   mkdir -p /tmp/debs /tmp/prefix .cudadeps && cd /tmp/debs && apt-get download nlohmann-json3-dev \
#     libtomlplusplus-dev libtomlplusplus3 libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libhdf5-cpp-103-1 \
#     libsz2 libaec0 libcli11-dev libgtest-dev libsentencepiece-dev libsentencepiece0 libprotobuf-lite32 \
#     libicu-dev libicu72 pkgconf pkgconf-bin libpkgconf3 libgloo-dev
#   for f in *.deb; do dpkg -x $f /tmp/prefix; done; cd - && tar -C /tmp/prefix -cJf .cudadeps/prefix.tar.xz .
#   (cd build && tar -cJf ../.cudadeps/testdata.tar.xz testdata)   # tokenizer test data, no npm there
# CMAKE_CXX_COMPILER=/usr/bin/g++: that machine's default CXX (/opt/gcc/bin/g++) does not find
# libstdc++.so, which the link needs (CMakeLists.txt, docs/cuda.md).
set -uo pipefail
T0=$(date +%s)
BUDGET=${BUDGET:-560}
left() { echo $((BUDGET - ($(date +%s) - T0))); }
D=/tmp/deps
export PATH=/usr/local/cuda/bin:$PATH
PY=$(command -v python3)
[ -x /opt/torch/.venv/bin/python3 ] && PY=/opt/torch/.venv/bin/python3
if [ ! -d $D/usr ]; then
  mkdir -p $D && tar -C $D -xJf .cudadeps/prefix.tar.xz
  # Libraries the carried ones need that this system lacks (none on the machine of docs/cuda.md).
  for f in $D/usr/lib/x86_64-linux-gnu/*.so.* $D/usr/lib/x86_64-linux-gnu/hdf5/serial/*.so; do
    LD_LIBRARY_PATH=$D/usr/lib/x86_64-linux-gnu ldd "$f" 2>/dev/null | awk -v f="$f" '/not found/{print "missing for " f ": " $1}'
  done | sort -u
fi
export LD_LIBRARY_PATH=$D/usr/lib/x86_64-linux-gnu:$D/usr/lib/x86_64-linux-gnu/hdf5/serial${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PKG_CONFIG_SYSROOT_DIR=$D PKG_CONFIG_LIBDIR=$D/usr/lib/x86_64-linux-gnu/pkgconfig:$D/usr/share/pkgconfig
TORCH_DIR=$($PY -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch
B=build-cuda
if [ "${PHASE:-all}" != test ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  $PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  g++ --version | head -1; cmake --version | head -1; nvcc --version | tail -1
  cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=/usr/bin/g++ -DCMAKE_C_COMPILER=/usr/bin/gcc -DTorch_DIR="$TORCH_DIR" \
    -DCMAKE_PREFIX_PATH="$D/usr;$D/usr/lib/x86_64-linux-gnu/cmake;$D/usr/share/cmake" \
    -DPKG_CONFIG_EXECUTABLE=$D/usr/bin/pkgconf \
    -DHDF5_C_INCLUDE_DIR=$D/usr/include/hdf5/serial \
    -DHDF5_C_LIBRARY_hdf5=$D/usr/lib/x86_64-linux-gnu/hdf5/serial/libhdf5.so \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DTORCH_CUDA_ARCH_LIST=9.0 \
    -DGEMKIT_TORCH_PYTHON=$PY ${CMAKE_EXTRA:-} \
    -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$D/usr/lib/x86_64-linux-gnu" 2>&1 | tail -40
  mkdir -p $B && tar -C $B -xJf .cudadeps/testdata.tar.xz
  timeout $(left) cmake --build $B -j 16 -- -k 0 > $OUT/build.log 2>&1; echo "build rc $?"
  grep -E "error|Error|FAILED" $OUT/build.log | head -60; tail -5 $OUT/build.log
  echo "build finished at $(( $(date +%s) - T0 )) s"
fi
if [ "${PHASE:-all}" != build ]; then
  [ -x $B/tests/test_cuda ] && timeout 120 $B/tests/test_cuda 2>&1 | tail -30
  G=$B/cli/gemkit
  if [ -x $G ]; then
    Q=out/quickstart; mkdir -p $Q
    for d in law general; do for s in train validation; do
      $G data prepare --quiet --tokenizer checkpoints/gemkit-base --split $s --out $Q/$d.$s.h5 data/mini/$d/$s.jsonl; done; done
    rm -rf /tmp/gem_cuda /tmp/gem_cpu
    for dev in cuda cpu; do
      timeout 240 $G train recipes/quickstart/law_gem.toml --device $dev --out /tmp/gem_$dev train.max_steps=20 train.eval_every=20 \
        train.checkpoint_every=20 2>&1 | grep -E "step|loss|error|Error" | tail -8
    done
    timeout 120 $G eval --model /tmp/gem_cuda/$(cat /tmp/gem_cuda/latest) --device cuda --corpus data/mini --tasks data/mini \
      --split test --max-items 20 --out $OUT/eval_cuda.json 2>&1 | tail -5
    timeout 120 $G eval --model /tmp/gem_cuda/$(cat /tmp/gem_cuda/latest) --device cpu --corpus data/mini --tasks data/mini \
      --split test --max-items 20 --out $OUT/eval_cpu.json 2>&1 | tail -5
  fi
  cd $B && timeout $(( $(left) - 20 )) ctest -j 16 --timeout 300 --output-on-failure -E "quickstart|llama_cpp|fuzz" 2>&1 | tee $OUT/ctest.log | grep -A200 "tests passed"
fi
