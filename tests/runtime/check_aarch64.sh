#!/usr/bin/env bash
# The same model files generated from on x86-64 (native) and on ARM64 (the cross build, under
# qemu), greedy, 24 new tokens from one prompt:
#   1. portable kernels on both: the same C++ arithmetic, so the same token ids and logits
#      (printed to 6 decimals) on both architectures;
#   2. each architecture's best kernels (x86-64: AVX2 or AVX-512; ARM64: NEON with the dot product
#      on qemu's "max" CPU, plain NEON on "cortex-a72"): the same token ids, logits within 0.1
#      (the kernels sum floats in other orders, and a last-bit difference can move an activation
#      across a Q8_0 rounding step: measured up to 5.3e-2 on the tiny Q4_0 file, the same as x86-64's
#      own AVX2 against its portable kernels; 1e-6 on the Q8_0 file, 1.2e-5 on F32; printed);
#   3. gemkit-run --temp 0 on both: the same text.
# usage: check_aarch64.sh HOST_BUILD AARCH64_BUILD MODEL.gguf...
set -euo pipefail
host=$1 arm=$2
shift 2
prompt="This License applies to"
bound=0.1
fail() { echo "check_aarch64: $*" >&2; exit 1; }
lines() { grep -E "^$1 " <<<"$2" || true; }

for f in "$@"; do
  [ -f "$f" ] || fail "$f: missing"
  name=$(basename "$f")
  x86_portable=$(GEMKIT_RUNTIME_KERNELS=portable "$host/runtime/gemkit-c-example" "$f" "$prompt" 24)
  arm_portable=$(GEMKIT_RUNTIME_KERNELS=portable qemu-aarch64 "$arm/runtime/gemkit-c-example" "$f" "$prompt" 24)
  [ "$(lines token "$x86_portable")" = "$(lines token "$arm_portable")" ] ||
    fail "$name: portable kernels: x86-64 and ARM64 differ"$'\n'"$(diff <(echo "$x86_portable") <(echo "$arm_portable"))"
  echo "$name: portable kernels: the same $(lines token "$x86_portable" | wc -l) tokens and logits on x86-64 and ARM64"

  x86=$("$host/runtime/gemkit-c-example" "$f" "$prompt" 24)
  x86_text=$("$host/runtime/gemkit-run" -m "$f" -p "$prompt" -n 24 --temp 0 2>/dev/null)
  for cpu in max cortex-a72; do
    arm_best=$(QEMU_CPU=$cpu qemu-aarch64 "$arm/runtime/gemkit-c-example" "$f" "$prompt" 24)
    ids() { lines token "$1" | awk '{print $4}'; }
    [ "$(ids "$x86")" = "$(ids "$arm_best")" ] ||
      fail "$name: $(lines kernels "$x86") vs $(lines kernels "$arm_best"): token ids differ"$'\n'"$(diff <(echo "$x86") <(echo "$arm_best"))"
    worst=$(paste <(lines token "$x86" | awk '{print $6}') <(lines token "$arm_best" | awk '{print $6}') |
            awk '{d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d} END {printf "%.2e", m}')
    awk -v w="$worst" -v b="$bound" 'BEGIN {exit !(w <= b)}' ||
      fail "$name: logits differ by $worst (bound $bound)"
    arm_text=$(QEMU_CPU=$cpu qemu-aarch64 "$arm/runtime/gemkit-run" -m "$f" -p "$prompt" -n 24 --temp 0 2>/dev/null)
    [ "$x86_text" = "$arm_text" ] || fail "$name: gemkit-run --temp 0 text differs on $cpu:"$'\n'"$x86_text"$'\n'"$arm_text"
    echo "$name: $(lines kernels "$x86" | cut -d' ' -f2) vs $(lines kernels "$arm_best" | cut -d' ' -f2) ($cpu): the same tokens, largest logit difference $worst; gemkit-run --temp 0 the same text"
  done
done
