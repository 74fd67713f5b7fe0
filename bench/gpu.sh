#!/usr/bin/env bash
# One call on a GPU (issue 12, item 5): make pixelcnn.kernels importable, build the data, then
# every GPU measurement the project owes, each step under its own `timeout` (a hang costs
# minutes, not the lease) and the results tarred after every step (a timeout still returns
# what finished). Runs on a fresh H100/H200 machine: Python 3.12, torch 2.11, Triton 3.6, no
# network, no ../shared.
#
#   bash bench/gpu.sh                 every step, under 20 minutes
#   bash bench/gpu.sh --part 1|2|3    a third of them, under 10 minutes each (the device
#                                     tool's limit for one command): 1 lockstep, the best
#                                     design in eight sub-batches (the target) and its
#                                     variants, phase times, L2's broadcast and a grid
#                                     barrier alone, bf16 sampling (the pipeline, barrier and
#                                     K-tile candidates too) and the roofline,
#                                     2 float32, compile, kernels, cached,
#                                     3 training
#   bash bench/gpu.sh STEP...         these steps only
#   bash bench/gpu.sh --dry-run ...   (or DRY_RUN=1) the same steps on this CPU: tiny model,
#                                     tiny sizes, Triton's interpreter; files in
#                                     runs/gpu-dry-run/<UTC time>/ instead of $OUT
#
# Steps, in order: lockstep grid-groups phase-times chip compile kernels sample-bf16
# grid-prefetch gate-fp32 grid-split grid-ahead grid-stages grid-pdl grid-persistent grid-poll
# grid-bk128 sample-fp32 cached train-throughput roofline train-ship (data is built first when
# a step needs it).
# Data: the CIFAR-10 builder folder in .gpu/cifar10/ (git-ignored, carried to the device:
# `cp -r ../shared/datasets/cifar10 .gpu/`), else ../shared/datasets/cifar10. Without it the
# sampling runs skip bits/dim and the training steps are skipped.
# Files in $OUT, ready for bench/results/<device>-<date>/ (at most 4): gpu-TAG-log.txt (all
# output), results-TAG.tar.gz (every step's JSON, markdown, PNG, metrics and the log), the
# shipped checkpoint (in 15 MB parts when over 16 MiB). TAG: all, part1, part2 or part3.
# Environment: BUDGET (seconds: 1170 for all, 570 for a part), PYTHON (python3), GPU_OUT
# (the dry run's folder), GPU_WORK (scratch: /tmp/gpu-work, or GPU_OUT/work in a dry run).
set -u
cd "$(dirname "$0")/.."

ALL="lockstep grid-groups phase-times chip compile kernels sample-bf16 grid-prefetch gate-fp32 grid-split grid-ahead grid-stages grid-pdl grid-persistent grid-poll grid-bk128 sample-fp32 cached train-throughput roofline train-ship"
SAMPLE_STEPS=" sample-bf16 grid-groups grid-prefetch gate-fp32 grid-split grid-ahead grid-stages grid-pdl grid-persistent grid-poll grid-bk128 sample-fp32 cached "
DATA_STEPS="$SAMPLE_STEPS train-throughput train-ship "
DRY=${DRY_RUN:-0}
PART=all
STEPS=""
usage() { echo "gpu.sh: error: $1 (usage: bash bench/gpu.sh [--dry-run] [--part 1|2|3] [STEP...]; steps: $ALL)" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY=1 ;;
    --part) [ $# -ge 2 ] || usage "--part needs 1, 2 or 3"; PART=$2; shift ;;
    -*) usage "unknown option $1" ;;
    *) case " $ALL " in *" $1 "*) STEPS="$STEPS $1" ;; *) usage "unknown step $1" ;; esac ;;
  esac
  shift
done
case $PART in
  all) DEFAULT=$ALL; TAG=all; BUDGET=${BUDGET:-1170} ;;
  1) DEFAULT="lockstep grid-groups phase-times chip sample-bf16 grid-prefetch grid-split grid-ahead gate-fp32 grid-stages grid-pdl grid-persistent grid-poll grid-bk128 roofline"; TAG=part1; BUDGET=${BUDGET:-570} ;;
  2) DEFAULT="sample-fp32 compile kernels cached roofline"; TAG=part2; BUDGET=${BUDGET:-570} ;;
  3) DEFAULT="train-throughput train-ship"; TAG=part3; BUDGET=${BUDGET:-570} ;;
  *) usage "--part takes 1, 2 or 3, got $PART" ;;
esac
STEPS=" ${STEPS:-$DEFAULT} "
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

if [ "$DRY" = 1 ]; then
  OUT=${GPU_OUT:-runs/gpu-dry-run/$(date -u +%Y%m%d-%H%M%S)}
  WORK=${GPU_WORK:-$OUT/work}
  INTERP=(env TRITON_INTERPRET=1)       # the fused kernels run in Triton's interpreter
  PRESET=tiny; DEVICE=cpu; KIND=h100; ARCH=90
else
  [ -n "${OUT:-}" ] || usage "\$OUT is not set (the device machine sets it; here use --dry-run)"
  WORK=${GPU_WORK:-/tmp/gpu-work}
  INTERP=()
  PRESET=cifar; DEVICE=cuda
fi
R=$WORK/results                          # everything tarred into $OUT
DATA=$WORK/data
mkdir -p "$OUT" "$R" "$DATA" "$WORK/runs"
LOG=$OUT/gpu-$TAG-log.txt
RESERVE=20                               # seconds kept for the last tar

say() { echo "$*" | tee -a "$LOG"; }
save() { cp "$LOG" "$R/"; tar czf "$OUT/results-$TAG.tar.gz" -C "$R" .; }
any_of() { for s in $STEPS; do case "$1" in *" $s "*) return 0 ;; esac; done; return 1; }
# step NAME LIMIT COMMAND...: COMMAND under `timeout`, for LIMIT seconds or what the budget
# leaves, whichever is less; its output logged, its status reported, the results tarred.
step() {
  local name=$1 limit=$2 left=$((BUDGET - SECONDS - RESERVE)) rc
  shift 2
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$limit" -lt 15 ]; then say "=== $name: skipped, ${left} s of the budget left"; return 1; fi
  say "=== [$SECONDS s] $name (limit $limit s): $*"
  timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  say "=== $name rc=$rc at $SECONDS s$([ "$rc" = 124 ] && echo ' (TIMED OUT)')"
  save
  return "$rc"
}
keep() {                                 # keep a run's small files (not its checkpoint)
  mkdir -p "$R/$(basename "$1")"
  cp "$1"/*.json "$1"/*.jsonl "$1"/*.png "$R/$(basename "$1")/" 2>/dev/null
  save
}

say "gpu.sh $TAG: steps$STEPS| budget $BUDGET s | dry run $DRY | $(date -u +%FT%TZ)"
# ---------------------------------------------------------------- setup (always)
if [ "$DRY" = 1 ]; then
  say "dry run: no install (this checkout's environment is left as it is)"
else
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee -a "$LOG"
  ARCH=$($PY -c "import torch; print('%d%d' % torch.cuda.get_device_capability())")
  KIND=h100; nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200 && KIND=h200
  if ! $PY -c "import pixelcnn.kernels.sampler_pixel" 2>/dev/null; then
    PIXELCNN_BUILD_NATIVE=0 timeout 300 $PY -m pip install -q --no-deps --no-build-isolation \
      --no-index -e . 2>&1 | tee -a "$LOG"
    if ! $PY -c "import pixelcnn.kernels.sampler_pixel" 2>/dev/null; then
      ln -sfn ../kernels pixelcnn/kernels
      say "pip install -e . did not make pixelcnn.kernels importable: linked pixelcnn/kernels -> ../kernels"
    fi
  fi
fi
$PY -c "import sys, torch, triton, pixelcnn.kernels.sampler_pixel as k; print('python', sys.version.split()[0], '| torch', torch.__version__, '| triton', triton.__version__, '| kernels', k.__file__)" 2>&1 | tee -a "$LOG"
[ "${PIPESTATUS[0]}" = 0 ] || { say "FATAL: pixelcnn.kernels is not importable"; save; exit 1; }

HAVE_DATA=0
if any_of "$DATA_STEPS"; then
  BUILDER=.gpu/cifar10/build_cifar10.py
  [ -f "$BUILDER" ] || BUILDER=../shared/datasets/cifar10/build_cifar10.py
  if [ -d "$DATA/cifar-10-exact-subset" ]; then HAVE_DATA=1
  elif [ -f "$BUILDER" ]; then step data 180 $PY "$BUILDER" "$DATA" && HAVE_DATA=1
  else say "no CIFAR-10 builder (.gpu/cifar10/ or ../shared/datasets/cifar10/): bits/dim and training skipped"
  fi
fi
if any_of "$SAMPLE_STEPS"; then                    # the random-weight model they sample
  $PY -c "import pixelcnn; pixelcnn.save(pixelcnn.build(pixelcnn.preset('$PRESET')), '$WORK/$PRESET.pt', dataset='cifar', image_size=[32, 32])"
fi

# ---------------------------------------------------------------- the steps
if [ "$DRY" = 1 ]; then                  # tiny sizes: the same commands in a few minutes
  SAMPLE=(--device cpu --batch-sizes 1 --size 4 4 --naive-steps 2 --repeat 1 --gate-size 2 2
          --gate-batch 1 --eval-images 8 --samples-per-method 2 --threads 2)
  FAST=naive,cached                      # bench.sample times triton on CUDA only
  TRAIN=(--device cpu --limit-train 64 --limit-test 16 --batch-size 16 --log-every 2)
  SAMPLES=1
else
  SAMPLE=(--device cuda --naive-steps 20 --eval-images 256)
  FAST=naive,triton,triton-grid          # the legacy step kernels and the grid ones
  TRAIN=(--batch-size 64 --log-every 100)
  SAMPLES=16
fi
COMMON=(--checkpoint "$WORK/$PRESET.pt" --data-dir "$DATA" --no-download --out "$R")
# grid_variant NAME LIMIT SAMPLES VAR=VALUE...: triton-grid in bf16 against naive at batch 1
# and 256 under these environment variables (a launch choice of kernels/sampler_pixel_grid.py)
grid_variant() {
  local name=$1 limit=$2 samples=$3
  shift 3
  step "$name" "$limit" env "$@" $PY -m bench.sample "${COMMON[@]}" "${SAMPLE[@]}" --batch-sizes 1,256 --repeat 2 --naive-steps 5 --eval-images 16 --samples-per-method "$samples" --dtype bf16 --methods naive,triton-grid
}

for s in $STEPS; do
  case $s in
    compile)          # the kernels' registers and spills for this machine's GPU; also fills
                      # Triton's cache for the sampling runs (the same compiles, gate shape too)
      if [ "$DRY" = 1 ]; then
        step compile 120 $PY -m bench.compile --presets tiny --dtypes bf16 --batches 1 --size 8 8 --arch 90 --out "$R"
      else
        step compile 240 $PY -m bench.compile --presets cifar --dtypes bf16,float32 --batches 1,256 --arch "$ARCH" --all-variants --out "$R"
        step compile-gate-shapes 120 $PY -m bench.compile --presets cifar --dtypes bf16,float32 --batches 4 --size 8 8 --arch "$ARCH" --all-variants --out "$WORK/compile-gate"
      fi ;;
    kernels)          # fused ops against their references (correctness), then against cuDNN
      if [ "$DRY" = 1 ]; then
        step kernels 180 "${INTERP[@]}" $PY -m bench.kernels --preset tiny --size 5 7 --device cpu --batch-sizes 1 --out "$R"
      else
        step kernels 240 $PY -m bench.kernels --out "$R"
      fi ;;
    sample-bf16|sample-fp32)   # the gate (triton against naive), throughput, bits/dim
      dtype=bf16; [ "$s" = sample-fp32 ] && dtype=float32
      batches=(); [ "$DRY" = 1 ] || batches=(--batch-sizes 1,16,64,256 --repeat 2)
      step "$s" 300 "${INTERP[@]}" $PY -m bench.sample "${COMMON[@]}" "${SAMPLE[@]}" "${batches[@]}" --dtype $dtype --methods $FAST ;;
    gate-fp32)        # float32's gate on 16 images, no throughput: triton-grid drew 99.61% of
                      # naive's sub-pixels on the H200's 4; the CDF margins at the differences
                      # tell a float32 near-tie from a bug
      step gate-fp32 150 $PY -m bench.sample "${COMMON[@]}" "${SAMPLE[@]}" --batch-sizes 1 --repeat 1 --naive-steps 5 --eval-images 16 --samples-per-method 0 --gate-batch 16 --dtype float32 --methods $FAST ;;
    grid-*)           # bench.sample times triton-grid on CUDA only
      [ "$DRY" = 1 ] && { say "=== $s: skipped in a dry run (bench.sample times triton-grid on CUDA only)"; continue; }
      case $s in
        grid-groups)  # the best design the model has first: colour groups (each sub-pixel
                      # its group's columns), PDL, the weights prefetched, the head in out's
                      # phase (L + 1 phases a sub-pixel), in eight sub-batches side by side (a
                      # CUDA stream each in the graphs, their sub-batch tiles), then in two;
                      # then without the sub-batches, without the head, and colour groups
                      # alone: what each adds
          grid_variant grid-sub-batches 150 16 PIXELCNN_GRID_GROUPS=1 PIXELCNN_GRID_PDL=1 PIXELCNN_GRID_PREFETCH=1 PIXELCNN_GRID_HEAD=1 PIXELCNN_GRID_SUB_BATCHES=8
          grid_variant grid-sub-batches-2 150 16 PIXELCNN_GRID_GROUPS=1 PIXELCNN_GRID_PDL=1 PIXELCNN_GRID_PREFETCH=1 PIXELCNN_GRID_HEAD=1 PIXELCNN_GRID_SUB_BATCHES=2
          grid_variant grid-groups-head 150 16 PIXELCNN_GRID_GROUPS=1 PIXELCNN_GRID_PDL=1 PIXELCNN_GRID_PREFETCH=1 PIXELCNN_GRID_HEAD=1
          grid_variant grid-groups-prefetch 150 16 PIXELCNN_GRID_GROUPS=1 PIXELCNN_GRID_PDL=1 PIXELCNN_GRID_PREFETCH=1
          grid_variant grid-groups 150 64 PIXELCNN_GRID_GROUPS=1 ;;
        grid-prefetch)  # each layer's weights loaded before PDL's wait for the previous
                      # phase (the weights' round trip overlapping it): the phase floor the
                      # model says 2,000 images/s needs cut
          grid_variant grid-prefetch 150 16 PIXELCNN_GRID_PDL=1 PIXELCNN_GRID_PREFETCH=1 ;;
        grid-split)   # each layer's products over twice the programs (the gate's four apart
                      # from the residual and skip): the model's next lever
          grid_variant grid-split 150 64 PIXELCNN_GRID_SPLIT=1 ;;
        grid-ahead)   # and the look-ahead: every program a chain of two products
          grid_variant grid-ahead 150 64 PIXELCNN_GRID_AHEAD=1 ;;
        grid-stages)  # 7 pipeline stages (the six K tiles of 32 in flight at once, in shared
                      # memory: the roofline's best candidate, without BK 128's registers)
          grid_variant grid-stages 150 16 PIXELCNN_GRID_STAGES=7 ;;
        grid-pdl)     # the phases as programmatic dependent launches (Hopper: the next phase
                      # resident while this one runs), with 3 and 7 pipeline stages
          grid_variant grid-pdl 150 16 PIXELCNN_GRID_PDL=1
          grid_variant grid-pdl-s7 150 16 PIXELCNN_GRID_PDL=1 PIXELCNN_GRID_STAGES=7 ;;
        grid-persistent)  # one persistent launch per sub-pixel, its phases met at grid
                      # barriers, instead of a launch per phase: what a barrier costs
          grid_variant grid-persistent 150 16 PIXELCNN_GRID_PERSISTENT=1 ;;
        grid-poll)    # the same, its barrier polling with acquire loads (kernels/grid.py)
          grid_variant grid-poll 150 16 PIXELCNN_GRID_PERSISTENT=1 PIXELCNN_GRID_POLL=load ;;
        grid-bk128)   # K tiles of 128 (the cifar preset's K = 192 in two round trips, not
                      # six), phase by phase and persistent
          grid_variant grid-bk128 150 64 PIXELCNN_GRID_BK=128
          grid_variant grid-bk128-persistent 150 16 PIXELCNN_GRID_BK=128 PIXELCNN_GRID_PERSISTENT=1 ;;
      esac ;;
    lockstep)         # float32: triton-grid's steps against the PyTorch steps one at a time
                      # (which buffer, layer, step parts first), then triton's beside it
      if [ "$DRY" = 1 ]; then
        step lockstep 120 "${INTERP[@]}" $PY -m bench.lockstep --preset tiny --size 2 3 --batch 2 --device cpu --out "$R"
      else
        step lockstep 120 $PY -m bench.lockstep --out "$R"
        step lockstep-bf16 90 $PY -m bench.lockstep --dtype bf16 --out "$R"
        step lockstep-head 60 env PIXELCNN_GRID_GROUPS=1 PIXELCNN_GRID_HEAD=1 PIXELCNN_GRID_PDL=1 PIXELCNN_GRID_PREFETCH=1 $PY -m bench.lockstep --dtype bf16 --out "$R"
        step lockstep-split 60 env PIXELCNN_GRID_SPLIT=1 $PY -m bench.lockstep --out "$R"
        step lockstep-prefetch 60 env PIXELCNN_GRID_PDL=1 PIXELCNN_GRID_PREFETCH=1 $PY -m bench.lockstep --dtype bf16 --out "$R"
        step lockstep-groups 60 env PIXELCNN_GRID_GROUPS=1 $PY -m bench.lockstep --out "$R"
        step lockstep-triton 60 $PY -m bench.lockstep --method triton --out "$R"
        step lockstep-triton-bf16 60 $PY -m bench.lockstep --method triton --dtype bf16 --out "$R"
      fi ;;
    chip)             # first, a minute at most: L2's broadcast and a grid barrier alone,
                      # the two rates that decide whether bench.roofline's resident design
                      # is worth building (the roofline step prints the verdict)
      [ "$DRY" = 1 ] && { say "=== $s: skipped in a dry run (CUDA launches only)"; continue; }
      step chip 60 $PY -m bench.phase_times --what chip --out "$R" ;;
    phase-times)      # each of triton-grid's phases alone in a CUDA graph, an empty launch,
                      # the whole step (split, PDL and where it lets the next phase launch),
                      # a layer's phase under other warps, K tiles and stages, the row step
                      # under other stages and K tiles: where a sub-pixel's and a row's time
                      # goes (its JSON is written after each batch size)
      [ "$DRY" = 1 ] && { say "=== $s: skipped in a dry run (CUDA launches only)"; continue; }
      step phase-times 240 $PY -m bench.phase_times --what phases --out "$R"
      step phase-times-fp32 100 $PY -m bench.phase_times --what phases --dtype float32 --batch-sizes 16 --out "$R" ;;
    cached)           # Python-bound at ~2 ms per step at every batch size: batch 1 only
      for dtype in bf16 float32; do
        step cached-$dtype 120 $PY -m bench.sample "${COMMON[@]}" "${SAMPLE[@]}" --batch-sizes 1 --repeat 1 --naive-steps 5 --eval-images 16 --samples-per-method 0 --dtype $dtype --methods naive,cached
      done ;;
    train-throughput) # a few hundred steps of the preset (bf16 autocast on a GPU)
      [ "$HAVE_DATA" = 1 ] || { say "=== $s: skipped (no data)"; continue; }
      limit=(); [ "$DRY" = 1 ] || limit=(--limit-train 19200 --limit-test 256)
      step train-throughput 240 $PY -m pixelcnn.train --dataset cifar --preset $PRESET --data-dir "$DATA" "${TRAIN[@]}" "${limit[@]}" --epochs 1 --sample-every 0 --n-samples 1 --sample-method cached --progress off --no-download --out "$WORK/runs/throughput-$PRESET"
      keep "$WORK/runs/throughput-$PRESET" ;;
    roofline)         # the model's predictions beside this run's measurements
      step roofline 60 $PY -m bench.roofline --preset $PRESET --device $KIND --results "$R" ;;
    train-ship)       # with the time left: a model whose shipped file is <= 16 MiB (12 x 90:
                      # 3.9 M parameters, 14.8 MiB), scored on CIFAR-10's exact subset
      [ "$HAVE_DATA" = 1 ] || { say "=== $s: skipped (no data)"; continue; }
      left=$((BUDGET - SECONDS - RESERVE - 120))          # 120 s: sampling at the end, ship
      if [ "$DRY" = 1 ]; then model=(--preset tiny); epochs=1
      else model=(--preset cifar --layers 12 --channels 90); epochs=$(( (left - 60) / 45 ))   # ~45 s per epoch on an H100
      fi
      [ "$epochs" -ge 1 ] || { say "=== $s: skipped, ${left} s left"; continue; }
      run=$WORK/runs/ship
      step train $left $PY -m pixelcnn.train --dataset cifar "${model[@]}" --data-dir "$DATA" "${TRAIN[@]}" --epochs $epochs --schedule cosine --sample-every 0 --n-samples $SAMPLES --sample-method cached --progress off --no-download --out "$run"
      keep "$run"
      mkdir -p "$WORK/ship"
      if step ship 150 $PY -m bench.ship "$run/checkpoint.pt" "$WORK/ship/cifar.pt" --data-dir "$DATA"; then
        say "shipped: $(sha256sum "$WORK/ship/cifar.pt")"
        if [ "$(stat -c %s "$WORK/ship/cifar.pt")" -le 16777216 ]; then cp "$WORK/ship/cifar.pt" "$OUT/"
        else split -b 15M "$WORK/ship/cifar.pt" "$OUT/cifar.pt.part-"; say "split into $OUT/cifar.pt.part-*"
        fi
      fi ;;
  esac
done
say "gpu.sh $TAG done at $SECONDS s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
save
