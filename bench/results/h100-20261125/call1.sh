#!/bin/bash
# First GPU contact (issue 12 / bench README "On a GPU"): every step has its own time limit.
set -u
export PYTHONUNBUFFERED=1
R=/tmp/res; mkdir -p $R /tmp/data /tmp/runs
save(){ tar czf $OUT/results.tar.gz -C $R . 2>/dev/null; }
step(){ local name=$1 t=$2; shift 2; echo "=== [$SECONDS s] $name (limit $t s): $*"; timeout -k 5 $t "$@"; echo "=== $name rc=$? at $SECONDS s"; save; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
python3 -c "import sys,torch,triton,numpy,PIL,tqdm;print(sys.version);print(torch.__version__,triton.__version__,torch.cuda.get_device_name(0))"
step data 60 python3 .gpu/cifar10/build_cifar10.py /tmp/data
step kernels 130 python3 -m bench.kernels --out $R
python3 -c "import pixelcnn; pixelcnn.save(pixelcnn.build(pixelcnn.preset('cifar')), '/tmp/cifar-preset.pt', dataset='cifar', image_size=[32, 32])"
step sample-cifar-bf16 150 python3 -m bench.sample --checkpoint /tmp/cifar-preset.pt --device cuda --dtype bf16 --no-download --naive-steps 20 --data-dir /tmp/data --eval-images 256 --out $R
step sample-cifar-fp32 150 python3 -m bench.sample --checkpoint /tmp/cifar-preset.pt --device cuda --no-download --naive-steps 20 --data-dir /tmp/data --eval-images 256 --out $R
step sample-shipped 80 python3 -m bench.sample --dataset cifar --device cuda --no-download --data-dir /tmp/data --naive-steps 20 --out $R
step train-cifar-preset 45 python3 -m pixelcnn.train --dataset cifar --preset cifar --data-dir /tmp/data --limit-train 3200 --limit-test 256 --epochs 1 --batch-size 64 --sample-every 0 --out /tmp/runs/train-cifar --progress off --log-every 10 --no-download
step train-12x96 45 python3 -m pixelcnn.train --dataset cifar --preset cifar --layers 12 --channels 96 --data-dir /tmp/data --limit-train 6400 --limit-test 256 --epochs 1 --batch-size 64 --sample-every 0 --out /tmp/runs/train-12x96 --progress off --log-every 10 --no-download
for d in /tmp/runs/*; do mkdir -p $R/$(basename $d); cp $d/*.json* $R/$(basename $d)/ 2>/dev/null; done; save; cp /tmp/runs/*/*.log $R/ 2>/dev/null; save
echo "done at $SECONDS s"
