#!/usr/bin/env bash
# Queue the paper-table experiment (issue 24): the design below is declared before any run and is
# not changed after seeing results; anything added later is exploratory and named so.
#
#   bash scripts/paper.sh DATA_DIR CLIPS_DIR [--seeds "0 1 2 3 4"] [--skip-existing] [--no-start]
#                         [--wait] [--exploratory TAG] [-- extra dvc exp run args]
#
# DATA_DIR: tiny-imagenet-10 in the official layout (test = the 500 official val images).
# CLIPS_DIR: the reference run's SVD clips (docs/generators.md#the-reference-runs-clips-svdgenerator-reference).
# Per seed s (train.seed = data.seed = s), queued seed-major so a grid cut short has whole seeds:
#   r1-svd-s<s>        gva's protocol, the reference SVD clips; 2-D also scored on SVD frame 0 and
#                      on the frame average (evaluate.extra_protocols)
#   r2-repeat-s<s>     gva's protocol, static clips in the SVD clips' geometry and codec: `repeat`
#                      with svd.geometry=reference (1024x576) and svd.codec=h264 (no generation, no motion)
#   r3-static-s<s>     gva's protocol, generated but static: SVD frame 0 repeated (reference-static)
#   r4-ref-s<s>        the reference protocol (`gva protocol reference`, every knob, ImageNet init
#                      included) on the SVD clips; geometry and codec are already in those clips; its
#                      2-D model trains with flip + shift as the reference's did (train.augment=true)
#   r5-svd-all-s<s>    2-D trained on the images plus the SVD frames (train2d.frames=all) ...
#   r5-repeat-all-s<s> ... and plus r2's frames; only their 2-D models are compared (train3d.epochs=1)
# The CPU regime (docs/models.md#a-cpu-regime; hyperparameters chosen on val, as follows):
# timm:tf_efficientnet_lite0 from its packaged ImageNet weights, 96 px inputs and 96 px stores
# (data.image_size=96: clips are kept at the resolution the model sees), everything before blocks.6
# frozen, two temporal kernels, one torch thread per stage; lr 0.01 without augmentation and 4 2-D
# epochs, chosen on val (2-D val top-1 0.816 at epoch 2, no better with flip + shift: 0.800), 3 3-D
# epochs; the best epoch on val is kept (train.select_on: val).
# Resumable: --skip-existing leaves out names that exist or are queued; re-run it to finish a grid.
# --exploratory TAG: not the declared design -- queues only r1 as x-TAG-r1-svd-s<s> with the extra
# args (e.g. `--exploratory store64 -- -S data.image_size=64`: clips stored at 64 px, issue 23).
# Afterwards: dvc exp show --json > reports/paper/exps.json && gva report --exp-json ... (docs/results.md).
# While it runs, leave src/ alone: queued experiments import gva from this checkout.
set -euo pipefail

[ $# -ge 2 ] || { sed -n 2,30p "$0" >&2; exit 2; }
data_dir=$(realpath -e "$1") || { echo "paper.sh: $1: no such data directory" >&2; exit 2; }
clips_dir=$(realpath -e "$2") || { echo "paper.sh: $2: no such clips directory" >&2; exit 2; }
shift 2
seeds="0 1 2 3 4"; start=1; wait=0; skip_existing=0; extra=(); tag=
while [ $# -gt 0 ]; do
  case $1 in
    --seeds) seeds=$2; shift 2 ;;
    --skip-existing) skip_existing=1; shift ;;
    --no-start) start=0; shift ;;
    --wait) wait=1; shift ;;
    --exploratory) tag=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "paper.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
export GVA_CACHE_DIR="${GVA_CACHE_DIR:-$PWD/data/.cache}"   # one worker: clips imported once per split

regime=(
  -S "data.source=$data_dir" -S data.md5=null -S data.image_size=96
  -S model.arch=timm:tf_efficientnet_lite0 -S model.pretrained=true
  -S train.image_size=96 -S train.freeze=blocks.6 -S inflate.last_n=2
  -S train.lr=0.01 -S train.augment=false
  -S train2d.epochs=4 -S train3d.epochs=3
  -S train.threads=1 -S inflate.threads=1 -S evaluate.threads=1
  -S svd.previews_per_class=0 -S evaluate.bootstrap=2000
  -S "evaluate.latency_batch_sizes=[1,8]" -S evaluate.latency_repeats=5
)
svd=(-S svd.generator=reference -S "svd.model=$clips_dir")
repeat=(-S svd.generator=repeat -S svd.geometry=reference -S svd.width=1024 -S svd.height=576 -S svd.codec=h264)
static=(-S svd.generator=reference-static -S "svd.model=$clips_dir")
scores=(-S "evaluate.extra_protocols=[frame0,frames_mean]")
reference=()
while IFS= read -r line; do reference+=(-S "$line"); done \
  < <(gva protocol reference --without geometry,codec --lines)

existing=" "
if [ "$skip_existing" = 1 ]; then
  existing=" $( { dvc exp list --all-commits --name-only 2>/dev/null
                  dvc queue status 2>/dev/null | awk 'NR>1 && $NF ~ /^(Queued|Running|Success)$/ {print $2}'
                } | tr '\n' ' ') "
fi

queue() {  # name overrides...
  case "$existing" in *" $1 "*) echo "skip $1 (exists)"; return 0 ;; esac
  echo "queue $1"
  local name=$1; shift
  dvc exp run --queue -n "$name" "${regime[@]}" "$@" "${extra[@]}" dvc.yaml
}

for s in $seeds; do
  seed=(-S "train.seed=$s" -S "data.seed=$s")
  if [ -n "$tag" ]; then queue "x-$tag-r1-svd-s$s" "${svd[@]}" "${scores[@]}" "${seed[@]}"; continue; fi
  queue "r1-svd-s$s" "${svd[@]}" "${scores[@]}" "${seed[@]}"
  queue "r2-repeat-s$s" "${repeat[@]}" "${scores[@]}" "${seed[@]}"
  queue "r3-static-s$s" "${static[@]}" "${scores[@]}" "${seed[@]}"
  queue "r4-ref-s$s" "${svd[@]}" "${reference[@]}" -S train.augment=true "${seed[@]}"
  queue "r5-svd-all-s$s" "${svd[@]}" "${scores[@]}" -S train2d.frames=all -S train3d.epochs=1 "${seed[@]}"
  queue "r5-repeat-all-s$s" "${repeat[@]}" "${scores[@]}" -S train2d.frames=all -S train3d.epochs=1 "${seed[@]}"
done

[ "$start" = 1 ] || exit 0
dvc queue start -j 1
if [ "$wait" = 1 ]; then
  while dvc queue status 2>/dev/null | grep -E 'Queued|Running' >/dev/null; do sleep 30; done
  dvc queue status
fi
