"""The fused Triton ops against PyTorch on a GPU (issue #4): correctness first, then medians.

    python -m bench.kernels                       # cifar preset, 32x32, batch 1,16,64,256
    python -m bench.kernels --preset paper --dtypes bf16

Random weights of the preset (speed does not depend on them). Per dtype:
1. Correctness on a batch of 4: one layer's vertical stack and horizontal stack, fused against
   kernels/reference.py; the fused layer against the torch GatedLayer (what it is timed
   against); the whole forward's logits (backend="triton") against the float32 torch model:
   max |difference|.
2. Timings per batch size (CUDA only; triton.testing.do_bench, warmed up, median ms): one
   layer's vertical stack (fused, against the torch layer's cuDNN convolution + gate), one
   whole gated layer (fused vertical + horizontal stack, against the torch GatedLayer), and
   the whole forward (backend "triton" against "torch"); beside each median the achieved
   TFLOP/s and GB/s, from each op's arithmetic and minimal memory traffic (`work`), as the
   Triton tutorials report them: how far each implementation is from the GPU's peaks.
Writes <out>/<UTC time>-<device>-kernels.json. Without a GPU only step 1 runs, under Triton's
interpreter (TRITON_INTERPRET=1 in the environment): use a small --preset and --size there.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import pixelcnn
from pixelcnn.cli import RUNS, Parser, at_least, fresh, resolve_device
from pixelcnn.kernels.gated_pixelcnn import stacks
from pixelcnn.layers import gate
from pixelcnn.packing import layer_biases, packed

from .common import csv, machine, machine_line

DTYPES = {"float32": torch.float32, "bf16": torch.bfloat16}
LAYER = 1     # a layer with hidden-width inputs (layer 0 reads the image)


class Ops:
    """A copy of the model in dtype: its layer LAYER and whole forward, through the fused ops,
    their references and the torch layers, on shared random inputs."""

    def __init__(self, model32, batch: int, size, dtype: torch.dtype, seed: int):
        cfg = model32.config
        self.k = cfg.kernel_size
        self.torch_model = pixelcnn.build(cfg).to(model32.device)
        self.torch_model.load_state_dict(model32.state_dict())
        self.torch_model.to(dtype).eval()
        self.packed = packed(self.torch_model)
        self.bias_v, self.bias_h = layer_biases(self.packed, None, batch)
        g = torch.Generator().manual_seed(seed)
        device = model32.device
        shape = (batch, *size, cfg.channels)                      # [B, H, W, C]
        self.v = torch.randn(shape, generator=g).to(device, dtype)
        self.h = torch.randn(shape, generator=g).to(device, dtype)
        self.x = torch.randint(0, cfg.levels, (batch, cfg.in_channels, *size), generator=g,
                               device="cpu").to(device)

    def vertical(self, impl: str):
        vertical_stack, _ = stacks(impl)
        return vertical_stack(self.v, self.packed.wv[LAYER], self.bias_v[LAYER], self.k)

    def layer(self, impl: str):
        """Both stacks of the layer: (v_pre, vertical output, horizontal output, skip)."""
        vertical_stack, horizontal_stack = stacks(impl)
        w, l = self.packed, LAYER
        skip = torch.zeros(*self.h.shape, dtype=torch.float32, device=self.h.device)
        v_pre, v_out = vertical_stack(self.v, w.wv[l], self.bias_v[l], self.k)
        h_out = horizontal_stack(self.h, v_pre, w.wh_prev[l], w.wh_cur[l], w.wlink[l],
                                 self.bias_h[l], w.wres[l], w.bres[l], w.wskip[l], skip, False)
        return v_pre, v_out, h_out, skip

    def torch_vertical(self):
        layer, p = self.torch_model.layers[LAYER], self.k // 2
        v = self.v.permute(0, 3, 1, 2)                            # channels-last NCHW view
        return gate(layer.v_conv(F.pad(v, (p, p, p, 0))))

    def torch_layer(self):
        layer = self.torch_model.layers[LAYER]
        return layer(self.v.permute(0, 3, 1, 2), self.h.permute(0, 3, 1, 2))

    def forward(self, backend: str):
        self.torch_model.backend = backend
        return self.torch_model(self.x)


def work(cfg, batch: int, size, op: str, itemsize: int) -> tuple:
    """(FLOPs, bytes) of one call of `op` ("vertical_stack", "gated_layer" or "forward",
    unconditioned, as timed) on `batch` images of `size` (H, W), for elements of `itemsize`
    bytes. The same for the fused op and its torch counterpart: the work the model asks for,
    which the achieved TFLOP/s and GB/s measure each implementation against.

    FLOPs: 2*M*K*N per convolution or 1x1 over the M = batch*H*W pixels, K inputs (channels x
    taps) and N outputs each; gates, biases and the rest of the elementwise work left out.
    With C hidden channels and p = k // 2, a layer reading cin channels runs the vertical
    stack's (p+1)*k taps (cin -> 2C), the horizontal stack's p+1 taps (cin -> 2C), the link
    (2C -> 2C) and the 1x1s to the residual and the skips (C -> C each). The forward is every
    layer (the first reads the image's channels) and the head's 1x1s (C -> C -> channels *
    levels). Dense: the masks' zeros are multiplied too, by both implementations.

    Bytes: a lower bound for any implementation: each input read once, each output written
    once, each weight and bias read once (the link has none). Vertical stack: v in; its
    pre-activation (the link reads it) and gated output out. Gated layer: v and h in; v, h and
    the skips out. Forward: the image in (one element per sub-pixel), the logits out. E.g. the
    cifar preset's forward at 32 x 32: 45.3 GFLOP per image.
    """
    C, cin, p, k = cfg.channels, cfg.in_channels, cfg.kernel_size // 2, cfg.kernel_size

    def layer(inputs):          # (K, N, biases) of one gated layer's products
        return [((p + 1) * k * inputs, 2 * C, 2 * C), ((p + 1) * inputs, 2 * C, 2 * C),
                (2 * C, 2 * C, 0), (C, C, C), (C, C, C)]
    head = [(C, C, C), (C, cin * cfg.levels, cin * cfg.levels)]
    products, activations = {
        "vertical_stack": (layer(C)[:1], C + 2 * C + C),
        "gated_layer": (layer(C), 2 * C + 3 * C),
        "forward": (layer(cin) + layer(C) * (cfg.layers - 1) + head, cin + cin * cfg.levels),
    }[op]
    M = batch * size[0] * size[1]
    flops = 2 * M * sum(K * N for K, N, _ in products)
    weights = sum(K * N + b for K, N, b in products)
    return flops, (M * activations + weights) * itemsize


def max_diff(a, b) -> float:
    if isinstance(a, (tuple, list)):
        return max(max_diff(x, y) for x, y in zip(a, b))
    return (a.float() - b.float()).abs().max().item()


@torch.no_grad()
def check(model32, size, dtype, seed) -> dict:
    """Max |difference| of each fused op from its reference on a batch of 4."""
    ops = Ops(model32, 4, size, dtype, seed)
    fused = ops.layer("triton")
    v_out, h_out, skip = (t.permute(0, 2, 3, 1) for t in ops.torch_layer())
    # the fused layers leave the skip biases to the head, which adds their sum once
    skip = skip - ops.torch_model.layers[LAYER].out.bias[model32.config.channels:]
    return {"vertical_stack": max_diff(ops.vertical("triton"), ops.vertical("reference")),
            "horizontal_stack": max_diff(fused[2:], ops.layer("reference")[2:]),
            "gated_layer_vs_torch": max_diff(fused[1:], (v_out, h_out, skip)),
            "forward_logits": max_diff(ops.forward("triton"), model32(ops.x))}


@torch.no_grad()
def timings(model32, batch, size, dtype, seed) -> list:
    """Median milliseconds of the fused op and its torch counterpart, per op, with the op's
    FLOPs and bytes (`work`) and each implementation's achieved TFLOP/s and GB/s."""
    from triton.testing import do_bench
    ops = Ops(model32, batch, size, dtype, seed)
    ms = lambda fn: do_bench(fn, warmup=25, rep=100, return_mode="median")
    pairs = {"vertical_stack": (lambda: ops.vertical("triton"), ops.torch_vertical),
             "gated_layer": (lambda: ops.layer("triton"), ops.torch_layer),
             "forward": (lambda: ops.forward("triton"), lambda: ops.forward("torch"))}
    rows = []
    for name, fns in pairs.items():
        flops, nbytes = work(model32.config, batch, size, name, dtype.itemsize)
        row = {"op": name, "batch_size": batch, "flops": flops, "bytes": nbytes}
        for impl, fn in zip(("fused", "torch"), fns):
            t = ms(fn)
            row.update({f"{impl}_ms": t, f"{impl}_tflops": flops / t / 1e9,
                        f"{impl}_gbps": nbytes / t / 1e6})
        row["speedup"] = row["torch_ms"] / row["fused_ms"]
        rows.append(row)
    return rows


def timing_line(dtype_name: str, row: dict) -> str:
    """A row of `timings` as printed: per implementation its median ms, TFLOP/s and GB/s."""
    each = "  ".join(f"{impl} {row[impl + '_ms']:9.4f} ms {row[impl + '_tflops']:7.2f} TFLOP/s "
                     f"{row[impl + '_gbps']:8.1f} GB/s" for impl in ("fused", "torch"))
    return (f"{dtype_name:8s} batch {row['batch_size']:4d} {row['op']:15s} {each}  "
            f"{row['speedup']:5.2f}x")


def main(argv=None):
    parser = Parser(prog="python -m bench.kernels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cifar", choices=sorted(pixelcnn.PRESETS))
    parser.add_argument("--size", type=at_least(1), nargs=2, default=[32, 32], metavar=("H", "W"))
    parser.add_argument("--batch-sizes", type=csv(int), default=[1, 16, 64, 256])
    parser.add_argument("--dtypes", type=csv(str), default=["float32", "bf16"])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RUNS / "bench"),
                        help="results folder (default: runs/bench, git-ignored)")
    args = parser.parse_args(argv)
    unknown = [d for d in args.dtypes if d not in DTYPES]
    if unknown:
        parser.error(f"--dtypes: unknown {unknown}; choose from {list(DTYPES)}")
    if not args.batch_sizes or min(args.batch_sizes) < 1:
        parser.error(f"--batch-sizes must be positive integers, got {args.batch_sizes}")
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        parser.error(str(e))
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        parser.error("no GPU: the fused ops run on a CPU only under Triton's interpreter; "
                     "run with TRITON_INTERPRET=1 (and a small --preset and --size)")
    if Path(args.out).is_file():
        parser.error(f"--out {args.out} is a file: give a folder")
    torch.manual_seed(args.seed)
    model = pixelcnn.build(pixelcnn.preset(args.preset)).to(device).eval()
    mach = machine(device, ",".join(args.dtypes))
    print(machine_line(mach))
    print(f"model: {args.preset} preset, {model.config}, size {args.size}")
    result = {"machine": mach, "preset": args.preset,
              "config": model.config.to_dict(), "size": args.size, "correctness": {},
              "timings": []}
    for name in args.dtypes:
        dt = DTYPES[name]
        result["correctness"][name] = diffs = check(model, args.size, dt, args.seed)
        print(f"{name} max |fused - reference|: " +
              ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
        if device.type != "cuda":
            continue
        for batch in args.batch_sizes:
            for row in timings(model, batch, args.size, dt, args.seed):
                result["timings"].append({"dtype": name, **row})
                print(timing_line(name, row))
    if device.type != "cuda":
        print("timings: skipped (CUDA only)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = fresh(out / f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{device.type}-kernels.json")
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
