#!/usr/bin/env bash
# Queue and run a grid of experiments (issue 8): generator x train.seed (x fold, x protocol
# variant), each with its own 2-D baseline, plus the train2d.frames=all control; `gva report`
# summarises it. `gva grid` (src/gva/grid.py) plans, checks and queues it; every option, its
# default, how experiments are named and share the generation cache: `gva grid --help`
# (docs/experiments.md#grids-gva-grid). The settings: params/grid-scratch.yaml.
#
#   bash scripts/grid.sh DATA_DIR [options] [-- extra dvc exp run args, e.g. -S train.lr=0.02]
set -euo pipefail
exec gva grid "$@"
