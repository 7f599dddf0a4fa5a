#!/usr/bin/env bash
# The main job: create .venv if missing, install gva, run the DVC pipeline.
#   bash scripts/repro.sh                      # the reference experiment: `dvc repro` (internet + GPU)
#   bash scripts/repro.sh --offline DATA_DIR   # whole DAG on a local Tiny ImageNet copy, CPU, minutes
#   bash scripts/repro.sh -S svd.steps=25      # any `dvc exp run` arguments: an experiment
set -euo pipefail
source "$(dirname "$0")/setup-venv.sh" ""

# A fresh copy without git metadata (e.g. an unpacked archive) still gets a DVC repo.
git rev-parse --git-dir >/dev/null 2>&1 || { git init -q && git add -A && git commit -qm "gva snapshot"; }
[ -d .dvc ] || { dvc init -q; dvc config core.analytics false; dvc config core.check_update false; }

if [ "${1:-}" = "--offline" ]; then
  [ $# -ge 2 ] || { echo "usage: $0 --offline DATA_DIR [more dvc exp run args]" >&2; exit 2; }
  data_dir=$2; shift 2
  # The offline preset: params/offline.yaml (docs/experiments.md#the-offline-run). The target dvc.yaml
  # leaves out data.dvc (the official download), which nothing depends on once data.source is local.
  preset=$(gva preset offline --lines)
  offline=(-S "data.source=$data_dir")
  while IFS= read -r line; do offline+=(-S "$line"); done <<< "$preset"
  exec dvc exp run "${offline[@]}" "$@" dvc.yaml
elif [ $# -gt 0 ]; then
  exec dvc exp run "$@"
else
  exec dvc repro
fi
