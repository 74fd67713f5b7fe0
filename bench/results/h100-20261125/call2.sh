#!/bin/bash
# Second GPU call: pixelcnn.kernels importable (symlink as the editable install maps it), then the triton runs.
set -u
export PYTHONUNBUFFERED=1
R=/tmp/res; mkdir -p $R /tmp/data
save(){ tar czf $OUT/results.tar.gz -C $R . 2>/dev/null; }
step(){ local name=$1 t=$2; shift 2; echo "=== [$SECONDS s] $name (limit $t s): $*"; timeout -k 5 $t "$@"; echo "=== $name rc=$? at $SECONDS s"; save; }
ln -sfn "$PWD/kernels" pixelcnn/kernels
python3 .gpu/cifar10/build_cifar10.py /tmp/data > /dev/null
python3 -c "import pixelcnn; pixelcnn.save(pixelcnn.build(pixelcnn.preset('cifar')), '/tmp/cifar-preset.pt', dataset='cifar', image_size=[32, 32])"
python3 -c "import pixelcnn, torch; m=pixelcnn.build(pixelcnn.preset('tiny')).cuda(); print(pixelcnn.available_methods(m) if hasattr(pixelcnn,'available_methods') else 'n/a')"
step kernels 150 python3 -m bench.kernels --out $R
step sample-cifar-bf16-triton 150 python3 -m bench.sample --checkpoint /tmp/cifar-preset.pt --device cuda --dtype bf16 --methods naive,triton --no-download --naive-steps 20 --data-dir /tmp/data --eval-images 256 --out $R
step sample-cifar-fp32-triton 120 python3 -m bench.sample --checkpoint /tmp/cifar-preset.pt --device cuda --methods naive,triton --no-download --naive-steps 20 --data-dir /tmp/data --eval-images 256 --out $R
step sample-shipped-notf32 100 env NVIDIA_TF32_OVERRIDE=0 python3 -m bench.sample --dataset cifar --device cuda --no-download --data-dir /tmp/data --naive-steps 20 --out $R
echo "done at $SECONDS s"
