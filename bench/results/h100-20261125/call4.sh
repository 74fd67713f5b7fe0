#!/bin/bash
# Third GPU call: train a 12x96 Gated PixelCNN on the CIFAR-10 stand-in (bf16 autocast), ship it
# (score on the exact subset), then the triton sampler at batch 16/256 in bf16.
set -u
export PYTHONUNBUFFERED=1
R=/tmp/res; mkdir -p $R /tmp/data /tmp/ship
save(){ tar czf $OUT/results.tar.gz -C $R . 2>/dev/null; }
step(){ local name=$1 t=$2; shift 2; echo "=== [$SECONDS s] $name (limit $t s): $*"; timeout -k 5 $t "$@"; echo "=== $name rc=$? at $SECONDS s"; save; }
ln -sfn "$PWD/kernels" pixelcnn/kernels
python3 .gpu/cifar10/build_cifar10.py /tmp/data > /dev/null
step train 260 python3 -m pixelcnn.train --dataset cifar --preset cifar --layers 12 --channels 96 --data-dir /tmp/data --epochs 5 --batch-size 64 --schedule cosine --out /tmp/runs/cifar-12x96-5ep --sample-every 0 --n-samples 16 --sample-method cached --log-every 100 --progress off --no-download
mkdir -p $R/cifar-12x96-5ep; cp /tmp/runs/cifar-12x96-5ep/*.json* /tmp/runs/cifar-12x96-5ep/*.png $R/cifar-12x96-5ep/ 2>/dev/null; save
step ship 60 python3 -m bench.ship /tmp/runs/cifar-12x96-5ep/checkpoint.pt /tmp/ship/cifar.pt --data-dir /tmp/data
ls -l /tmp/ship; (cd /tmp/ship && sha256sum cifar.pt && split -b 15M cifar.pt $OUT/cifar.pt.part-)
echo "done at $SECONDS s"
