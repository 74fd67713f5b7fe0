"""A fast sampler's steps against the PyTorch steps, one step at a time, on this device: which
step, which cache buffer and which layer first parts from the reference, and by how much.

    python -m bench.lockstep --device cuda --dtype float32           # cifar preset, triton-grid
    TRITON_INTERPRET=1 python -m bench.lockstep --preset tiny --size 3 3 --batch 2   # a CPU

Why: on the H200 `triton-grid` drew 99.6% of naive's float32 sub-pixels (the gate's floor is
99.9%) while `triton` drew 100%, and the interpreter draws naive's images exactly; the margins
at the first differences (1e-6-1e-4) say a numerical difference, not a race. This finds where.

Random weights of the preset (--seed). Two passes over the first --size rows and columns:
- resync: before every step the fast caches and image are overwritten with the reference's,
  so each step's difference is its own (a kernel's rounding, or a wrong read);
- free: the caches evolve on their own, fed the reference's samples (teacher forcing), so the
  differences accumulate as they do when sampling.
Per step kind (row; pixel) and buffer: max |fast - reference| and the reference's largest
magnitude; per layer the gated units' and hidden inputs' largest differences; the logits'
(triton-grid: the head's last product in PyTorch on the kernel's head activations); and every
sub-pixel whose sample differs, with the reference CDF's margin to its uniform there.
Writes <out>/<UTC time>-<device>-lockstep.json.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

import pixelcnn
from pixelcnn.cache import GatedCache, pixel_step, row_step
from pixelcnn.cli import RUNS, Parser, at_least, fresh, resolve_device
from pixelcnn.packing import packed
from pixelcnn.sampling.common import full_precision

from .common import machine, machine_line

DTYPES = {"float32": torch.float32, "bf16": torch.bfloat16}
ROW_BUFFERS = ("vbuf", "v_pre", "row_bias", "hbuf")
PIXEL_BUFFERS = ("base", "gated", "hbuf")


def steps(method: str):
    """(row kernel, pixel kernel) of a fast method, one launch per phase (triton-grid: the
    launch that sampling.triton.grid_launch chooses from the environment, never persistent)."""
    if method == "triton":
        from pixelcnn.kernels.sampler_pixel import sampler_pixel
        from pixelcnn.kernels.sampler_row import sampler_row
        return sampler_row, sampler_pixel
    from pixelcnn.kernels.sampler_pixel_grid import sampler_pixel_grid
    from pixelcnn.kernels.sampler_row_gemm import sampler_row_gemm
    from pixelcnn.sampling.triton import grid_launch

    def pixel(cache, x, *args):
        sampler_pixel_grid(cache, x, *args, **grid_launch(cache, x, persistent=False))
    return sampler_row_gemm, pixel


class Worst:
    """The largest |fast - reference| seen per key, with the reference's scale and where."""

    def __init__(self):
        self.table = {}

    def see(self, key: str, fast: torch.Tensor, ref: torch.Tensor, where):
        d = float((fast.float() - ref.float()).abs().max()) if ref.numel() else 0.0
        scale = float(ref.float().abs().max()) if ref.numel() else 0.0
        if key not in self.table or d > self.table[key]["max_abs_diff"]:
            self.table[key] = {"max_abs_diff": d, "scale": scale, "where": list(where)}


def head_logits(cache: GatedCache, c: int) -> torch.Tensor:
    """The grid kernel's logits of channel c, recomputed from its head activations (scratch)."""
    w, H = cache.w, cache.w.hidden
    cols = slice(c * w.levels, (c + 1) * w.levels)
    return torch.addmm(w.b2[cols].float(), cache.scratch[:, H:].float(), w.w2[:, cols].float())


def margin(logits: torch.Tensor, u: float) -> float:
    cdf = torch.softmax(logits.double(), 0).cumsum(0)[:-1]
    return float((cdf - u).abs().min())


@torch.no_grad()
def lockstep(model, method: str, batch: int, size, resync: bool, seed: int, y=None) -> dict:
    """One pass over the first size = (H, W) sub-pixels of `batch` images (class y, if the
    model has classes): {"worst": per buffer the largest difference, "flips": the sub-pixels
    sampled differently, "sub_pixels", "resync"}."""
    from pixelcnn.kernels.grid import groups_requested
    from pixelcnn.kernels.sampler_pixel_grid import columns
    row_kernel, pixel_kernel = steps(method)
    grouped = method == "triton-grid" and groups_requested()   # the columns each step makes
    w = packed(model)
    C, (H, W), L = model.config.in_channels, size, w.layers
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(batch, C, H, W, generator=g).to(model.device)
    cond = model.condition(y, None) if y is not None else None
    ref, fast = (GatedCache(w, cond).setup(batch, H, W) for _ in range(2))
    x = torch.zeros(batch, C, H, W, dtype=torch.long, device=model.device)
    xf = x.clone()
    worst, flips = Worst(), []

    def sync():
        if resync:
            for a, b in zip(fast.buffers(), ref.buffers()):
                a.copy_(b)
        xf.copy_(x)
    for i in range(H):
        sync()
        row_step(ref, x, i)
        row_kernel(fast, xf, i)
        for name in ROW_BUFFERS:
            worst.see(f"row {name}", getattr(fast, name), getattr(ref, name), (i,))
        for j in range(W):
            for c in range(C):
                sync()
                logits = pixel_step(ref, x, u, 1.0, i, j, c)
                pixel_kernel(fast, xf, u, 1.0, i, j, c)
                where = (i, j, c)
                made = columns(w.hidden, C, c, grouped)[2]      # groups <= c (GROUPS=1)
                for l in range(L):
                    worst.see(f"gated[{l}]", fast.gated[:, l, :made], ref.gated[:, l, :made],
                              where)
                    worst.see(f"hbuf[{l}] column j", fast.hbuf[l, :, j + w.pad, :made],
                              ref.hbuf[l, :, j + w.pad, :made], where)
                worst.see("base", fast.base, ref.base, where)
                if method == "triton-grid":
                    worst.see("logits", head_logits(fast, c), logits, where)
                for b in (xf[:, c, i, j] != x[:, c, i, j]).nonzero().flatten().tolist():
                    flips.append({"image": b, "row": i, "column": j, "channel": c,
                                  "margin": margin(logits[b], float(u[b, c, i, j]))})
    return {"resync": resync, "worst": worst.table, "flips": flips,
            "sub_pixels": batch * C * H * W}


def report(run: dict) -> str:
    lines = [f"{'resync: each step from the reference caches' if run['resync'] else 'free: the caches evolve, teacher-forced'}"
             f" - {len(run['flips'])} of {run['sub_pixels']} sub-pixels differ",
             f"  {'buffer':24s} {'max |Δ|':>10s} {'scale':>10s} {'relative':>10s}  where"]
    for key, v in run["worst"].items():
        rel = v["max_abs_diff"] / max(v["scale"], 1e-30)
        lines.append(f"  {key:24s} {v['max_abs_diff']:10.2e} {v['scale']:10.2e} {rel:10.2e}  "
                     f"{tuple(v['where'])}")
    for f in run["flips"][:10]:
        lines.append(f"  differs: image {f['image']} (row, column, channel) "
                     f"{(f['row'], f['column'], f['channel'])}, CDF margin {f['margin']:.1e}")
    return "\n".join(lines)


def main(argv=None):
    p = Parser(prog="python -m bench.lockstep", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cifar", choices=sorted(pixelcnn.PRESETS))
    p.add_argument("--method", default="triton-grid", choices=["triton", "triton-grid"])
    p.add_argument("--dtype", default="float32", choices=list(DTYPES))
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=at_least(1), default=16)
    p.add_argument("--size", type=at_least(1), nargs=2, default=[4, 8], metavar=("H", "W"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RUNS / "bench")
    args = p.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        p.error(str(e))
    torch.manual_seed(args.seed)
    model = pixelcnn.build(pixelcnn.preset(args.preset)).to(device, DTYPES[args.dtype]).eval()
    m = machine(device, args.dtype)
    print(machine_line(m))
    print(f"model: {args.preset} preset, random weights (seed {args.seed}); {args.method} "
          f"against the PyTorch steps, batch {args.batch}, the first {args.size[0]} x "
          f"{args.size[1]} sub-pixels")
    runs = []
    with full_precision():
        for resync in (True, False):
            t = time.perf_counter()
            runs.append(lockstep(model, args.method, args.batch, args.size, resync, args.seed))
            print(report(runs[-1]) + f"\n  ({time.perf_counter() - t:.0f} s)")
    args.out.mkdir(parents=True, exist_ok=True)
    path = fresh(args.out / f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{device.type}"
                            f"-lockstep.json")
    path.write_text(json.dumps({"machine": m, "settings": {k: str(v) if isinstance(v, Path)
                                                           else v for k, v in vars(args).items()},
                                "runs": runs}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
