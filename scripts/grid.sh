#!/usr/bin/env bash
# Queue and run the experiment grid of issue 8: generator x train.seed, each experiment carrying its
# own 2-D baseline (metrics.json has model2d.* and model3d.*), plus the "2-D on generated frames"
# control (train2d.frames=all) for the control generators. Then `gva report` summarises it.
#
#   bash scripts/grid.sh DATA_DIR [options] [-- extra dvc exp run args, e.g. -S train.lr=0.02]
#
# options (defaults are the offline, 2-core-CPU settings used for reports/results.md, ~2 h there):
#   --generators "repeat motion"   svd.generator values (add svd / tiny-svd where weights exist)
#   --control "motion"             generators that also get the train2d.frames=all control ("" = none)
#   --seeds "0 1 2"                train.seed values
#   --limit null                   data.limit_per_class ("null" = the whole split)
#   --epochs2d 10 --epochs3d 2     train2d.epochs / train3d.epochs
#   --jobs 1                       dvc queue workers (one per 2 CPU cores at most)
#   --no-start                     only queue; start later with `dvc queue start -j N`
#   --wait                         after starting, block until the queue is empty
#
# Experiments are named <generator>-<first|all>-s<seed> and queued seed-major, so a grid cut short
# still has complete seeds. The target `dvc.yaml` leaves out data.dvc (the official download).
# Afterwards:  dvc exp show --json > exps.json && gva report --exp-json exps.json --out reports
# Stopping:    dvc queue remove --queued, then dvc queue kill <running name>. (`dvc queue stop --kill`
#              SIGKILLs DVC's task only: the stage it was running goes on as an orphan; `pgrep -f gva.cli`.)
set -euo pipefail

[ $# -ge 1 ] || { sed -n 2,20p "$0" >&2; exit 2; }
data_dir=$1; shift
generators="repeat motion"; control="motion"; seeds="0 1 2"; limit=null
epochs2d=10; epochs3d=2; jobs=1; start=1; wait=0; extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --generators) generators=$2; shift 2 ;;
    --control) control=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --epochs2d) epochs2d=$2; shift 2 ;;
    --epochs3d) epochs3d=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --no-start) start=0; shift ;;
    --wait) wait=1; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "grid.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

common=(
  -S "data.source=$data_dir"
  -S "data.limit_per_class=$limit"
  -S model.arch=resnet18
  -S model.pretrained=false          # no weights offline: trained from scratch
  -S train.image_size=48             # resnet18's stem leaves 32 px too small to learn well
  -S train.augment=true              # from scratch on 4,500 images: flips and shifts
  -S train.lr=0.01                   # the 2-D model from scratch...
  -S train.step_size=8               # ...decayed 10x for its last epochs
  -S train3d.lr=0.001                # fine-tuning that model (batch 8) wants a far smaller step
  -S "train2d.epochs=$epochs2d"
  -S "train3d.epochs=$epochs3d"
  -S inflate.last_n=2
  -S svd.previews_per_class=0
  -S evaluate.bootstrap=2000
  -S "evaluate.latency_batch_sizes=[1,8]"
  -S evaluate.latency_repeats=5
)

queue() {  # name generator frames seed
  echo "queue $1"
  dvc exp run --queue -n "$1" "${common[@]}" -S "svd.generator=$2" -S "train2d.frames=$3" \
    -S "train.seed=$4" "${extra[@]}" dvc.yaml
}

for seed in $seeds; do
  for gen in $generators; do
    queue "$gen-first-s$seed" "$gen" first "$seed"
    case " $control " in *" $gen "*) queue "$gen-all-s$seed" "$gen" all "$seed" ;; esac
  done
done

[ "$start" = 1 ] || exit 0
dvc queue start -j "$jobs"
if [ "$wait" = 1 ]; then
  while dvc queue status 2>/dev/null | grep -qE 'Queued|Running'; do sleep 30; done
  dvc queue status
fi
