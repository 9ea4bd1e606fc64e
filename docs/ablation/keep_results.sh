#!/bin/bash
# Copies what an ablation grid's report is made of (base_eval.json, report.*, *.svg and, per run,
# DONE, latest, eval.json, deploy.json, resolved_recipe.toml) from a grid folder into a committed
# folder, and back. The checkpoints stay behind: a restored grid is enough for
# `gemkit ablate ... --report-only`, and its finished runs are skipped when the grid is run again
# (WiSE-FT rows of a run whose checkpoint is gone cannot be added later).
#   docs/ablation/keep_results.sh out/ablation/smollm2-law docs/ablation/smollm2-law   # keep
#   docs/ablation/keep_results.sh docs/ablation/smollm2-law out/ablation/smollm2-law   # restore
set -euo pipefail
SRC=${1:?grid folder to copy from} DEST=${2:?folder to copy into}
[ -d "$SRC" ] || { echo "keep_results: $SRC is not a folder" >&2; exit 1; }
mkdir -p "$DEST"
DEST=$(realpath "$DEST")
cd "$SRC"
find . -maxdepth 1 -type f \( -name 'base_eval.json' -o -name 'report.*' -o -name '*.svg' \) -print0 |
  xargs -0 -r cp --parents -t "$DEST"
find . -mindepth 3 -maxdepth 3 -path "./runs/*" -type f \( -name DONE -o -name latest -o -name eval.json -o -name deploy.json \
  -o -name resolved_recipe.toml \) -print0 | xargs -0 -r cp --parents -t "$DEST"
