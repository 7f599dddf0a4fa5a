#!/usr/bin/env bash
# Queue the paper-table experiment (issue 24), declared before any run and not changed after
# seeing results: R1-R5 x seeds, `gva grid paper` (src/gva/grid.py: PAPER_RUNS; the CPU regime:
# params/paper.yaml). What each run is, and the options: `gva grid paper --help`
# (docs/results.md#the-paper-table-experiment-running).
#
#   bash scripts/paper.sh DATA_DIR CLIPS_DIR [--seeds "0 1 2 3 4"] [--skip-existing] [--no-start]
#                         [--wait] [--exploratory TAG] [-- extra dvc exp run args]
set -euo pipefail
exec gva grid paper "$@"
