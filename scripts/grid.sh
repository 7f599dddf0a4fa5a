#!/usr/bin/env bash
# Queue and run the experiment grid of issue 8: generator x train.seed, each experiment carrying its
# own 2-D baseline (metrics.json has model2d.* and model3d.*), plus the "2-D on generated frames"
# control (train2d.frames=all) for the control generators. Then `gva report` summarises it.
#
#   bash scripts/grid.sh DATA_DIR [options] [-- extra dvc exp run args, e.g. -S train.lr=0.02]
#
# options (defaults are the offline, 2-core-CPU settings used for reports/results.md, ~2 h there):
#   --generators "repeat motion"   svd.generator values: repeat, motion, svd, cogvideox, ltx, wan, i2vgen
#                                  (the model ones need their weights in the Hugging Face cache or
#                                  svd.model; tiny-<name> runs anywhere). cogvideox runs at 480x720
#                                  (its default model's fixed size), cogvideox/ltx/wan in bf16
#   --control "motion"             generators that also get the train2d.frames=all control ("" = none)
#   --no-first                     queue only those controls, not the train2d.frames=first experiments
#   --seeds "0 1 2"                train.seed values
#   --vary-all                     each seed also sets svd.seed and data.seed (generation and the
#                                  train/val split vary too, so intervals over seeds cover them)
#   --folds K                      cross-fitting: every experiment runs as K, data.fold 0..K-1 of
#                                  data.folds=K (named <name>-f<k>); `gva report` pools them, so every
#                                  image of the data (train and test splits together) is a test image
#   --limit null                   data.limit_per_class ("null" = the whole split)
#   --epochs2d 10 --epochs3d 2     train2d.epochs / train3d.epochs
#   --jobs 1                       dvc queue workers (one per 2 CPU cores at most)
#   --no-start                     only queue; start later with `dvc queue start -j N`
#   --skip-existing                leave out names that already exist as experiments or are queued /
#                                  running (to finish a grid that was cut short, or reorder one)
#   --wait                         after starting, block until the queue is empty
#   --preset gva|reference|shift   every run under this protocol preset (`gva protocol --help`):
#                                  reference = the reference code's protocol; shift = frame 0
#                                  generated, 2-D also scored on frame 0 and all frames (3-D gain vs
#                                  2-D domain shift: run it with --control on the same generators)
#   --audit                        protocol audit instead (issue 14): per generator and seed, gva's
#                                  protocol, the reference protocol, and the reference with each
#                                  --loo knob set back to gva's; "frame0" needs no run of its own
#   --loo "geometry select bn_drop"  the leave-one-out knobs of --audit (gva protocol --help)
#
# Experiments are named <generator>-<first|all>[-<preset>]-s<seed>[-f<fold>] (the preset when not gva;
# --audit: <generator>-<gva|ref|ref-no-KNOB>-s<seed>) and queued seed-major, so a grid cut short still has
# complete seeds. The target `dvc.yaml` leaves out data.dvc (the official download).
# Afterwards:  dvc exp show --json > exps.json && gva report --exp-json exps.json --out reports
# Queued experiments run in temporary workspaces; with one worker they share this checkout's
# generation cache (GVA_CACHE_DIR, unless set), so the folds of a seed and every configuration with the
# same clips generate them once. Several workers (--jobs N) keep a cache each: a worker removes
# another's unfinished chunk files once they are 10 minutes old.
# While it runs, leave src/ alone: queued experiments import gva from this checkout (an editable
# install), while DVC hashes the code snapshot they were queued with.
# Stopping:    dvc queue remove --queued, then dvc queue kill <running name>. (`dvc queue stop --kill`
#              SIGKILLs DVC's task only: the stage it was running goes on as an orphan; `pgrep -f gva.cli`.)
set -euo pipefail

[ $# -ge 1 ] || { sed -n 2,48p "$0" >&2; exit 2; }
# absolute: queued experiments run in .dvc/tmp/exps/<tmp>, where a relative path means nothing
data_dir=$(realpath -e "$1") || { echo "grid.sh: $1: no such data directory" >&2; exit 2; }; shift
generators="repeat motion"; control="motion"; seeds="0 1 2"; limit=null
epochs2d=10; epochs3d=2; jobs=1; start=1; wait=0; extra=(); preset=gva; audit=0; vary_all=0; skip_existing=0; folds=
loo="geometry select bn_drop"; first=1
while [ $# -gt 0 ]; do
  case $1 in
    --generators) generators=$2; shift 2 ;;
    --control) control=$2; shift 2 ;;
    --no-first) first=0; shift ;;
    --seeds) seeds=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --epochs2d) epochs2d=$2; shift 2 ;;
    --epochs3d) epochs3d=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --no-start) start=0; shift ;;
    --wait) wait=1; shift ;;
    --preset) preset=$2; shift 2 ;;
    --audit) audit=1; shift ;;
    --vary-all) vary_all=1; shift ;;
    --folds) folds=$2; shift 2 ;;
    --skip-existing) skip_existing=1; shift ;;
    --loo) loo=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "grid.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

if [ "$jobs" = 1 ]; then export GVA_CACHE_DIR="${GVA_CACHE_DIR:-$PWD/data/.cache}"; fi

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

# protocol overrides (one place: src/gva/protocol.py); from scratch, so no ImageNet-only knobs
protocol() {  # preset [knobs set back to gva's, comma-separated]
  local line args=()
  while IFS= read -r line; do args+=(-S "$line"); done \
    < <(gva protocol "$1" --from-scratch --lines ${2:+--without "$2"})
  printf '%s\0' "${args[@]}"
}

existing=" "
if [ "$skip_existing" = 1 ]; then
  existing=" $( { dvc exp list --all-commits --name-only 2>/dev/null
                  dvc queue status 2>/dev/null | awk 'NR>1 && $NF ~ /^(Queued|Running|Success)$/ {print $2}'
                } | tr '\n' ' ') "
fi

# what a generator's default model needs beyond the common settings (docs/generators.md#the-image-to-video-models)
generator_args() {  # generator
  case $1 in
    cogvideox) printf '%s\0' -S svd.height=480 -S svd.width=720 -S svd.dtype=bf16 ;;
    ltx|wan) printf '%s\0' -S svd.dtype=bf16 ;;
  esac
}

queue() {  # name generator frames seed preset [without]: one experiment, or one per fold
  if [ -z "$folds" ]; then queue_one "$@"; return; fi
  local k name=$1; shift
  for ((k = 0; k < folds; k++)); do
    queue_one "$name-f$k" "$1" "$2" "$3" "$4" "${5:-}" -S "data.folds=$folds" -S "data.fold=$k"
  done
}

queue_one() {  # name generator frames seed preset [without] [-S overrides ...]
  case "$existing" in *" $1 "*) echo "skip $1 (exists)"; return 0 ;; esac
  echo "queue $1"
  local proto=() gen_args=() more=("${@:7}")
  mapfile -d '' proto < <(protocol "$5" "${6:-}")
  mapfile -d '' gen_args < <(generator_args "$2")
  local seeds=(-S "train.seed=$4")
  [ "$vary_all" = 0 ] || seeds+=(-S "svd.seed=$4" -S "data.seed=$4")
  dvc exp run --queue -n "$1" "${common[@]}" "${proto[@]}" -S "svd.generator=$2" "${gen_args[@]}" -S "train2d.frames=$3" \
    "${seeds[@]}" "${more[@]}" "${extra[@]}" dvc.yaml
}

for seed in $seeds; do
  for gen in $generators; do
    if [ "$audit" = 1 ]; then
      queue "$gen-gva-s$seed" "$gen" first "$seed" gva
      queue "$gen-ref-s$seed" "$gen" first "$seed" reference
      for knob in $loo; do queue "$gen-ref-no-${knob//_/-}-s$seed" "$gen" first "$seed" reference "$knob"; done
    else
      tag=; [ "$preset" = gva ] || tag=-$preset
      [ "$first" = 0 ] || queue "$gen-first$tag-s$seed" "$gen" first "$seed" "$preset"
      case " $control " in *" $gen "*) queue "$gen-all$tag-s$seed" "$gen" all "$seed" "$preset" ;; esac
    fi
  done
done

[ "$start" = 1 ] || exit 0
dvc queue start -j "$jobs"
if [ "$wait" = 1 ]; then
  # grep reads everything: with -q it would exit at the first match, and pipefail would end the loop
  while dvc queue status 2>/dev/null | grep -E 'Queued|Running' >/dev/null; do sleep 30; done
  dvc queue status
fi
