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
  # The offline settings, documented in docs/experiments.md#the-offline-run. The target dvc.yaml leaves out
  # data.dvc (the official download), which nothing depends on once data.source is local.
  offline=(
    -S "data.source=$data_dir"
    -S data.limit_per_class=40
    -S svd.generator=motion
    -S model.arch=timm:tf_efficientnet_lite0
    -S model.pretrained=true
    -S model.head=imagenet
    -S train.image_size=64
    -S train.freeze=blocks.6
    -S train.lr=0.01
    -S train.threads=1
    -S inflate.threads=1
    -S evaluate.threads=1
    -S train2d.epochs=3
    -S train3d.epochs=2
    -S inflate.last_n=2
    -S evaluate.bootstrap=2000
    -S "evaluate.latency_batch_sizes=[1,8]"
    -S evaluate.latency_repeats=5
  )
  exec dvc exp run "${offline[@]}" "$@" dvc.yaml
elif [ $# -gt 0 ]; then
  exec dvc exp run "$@"
else
  exec dvc repro
fi
