"""The sampling benchmark: the project's main command.

    python -m bench.sample --dataset cifar                 # CPU defaults, < 10 min on 2 cores
    python -m bench.sample --dataset cifar --device cuda   # GPU defaults (add --dtype bf16)
    python -m bench.sample --dataset vqvae-prior           # a VQ-VAE prior (random weights)

1. Correctness gate on a small batch (bench/gate.py): every method must reproduce naive's
   samples from the same uniforms and the reference forward's logits; a method that fails
   is not timed.
2. Throughput per method and batch size: seconds per batch (the best of --repeat full
   sampling calls, after a warm-up), images/s, µs per sub-pixel step and the speedup over
   naive. Naive is timed in full (--naive-full) or, by default, on --naive-steps steps of
   its loop (each a full forward pass at that batch size: every step costs the same) and
   extrapolated to all H*W*C steps, labelled "extrapolated:N".
3. Bits/dim: of the test split through the reference forward and each fast forward (they
   must agree); on the gate's images through teacher forcing of the incremental cache; and
   of each method's own samples, drawn from independent uniforms (same distribution => the
   same figure within its standard error). Without test data, this is skipped with the
   reason and the rest still runs.
4. Files under --out: JSON (schema in bench/report.py), markdown, one PNG grid of samples per
   method and a plot of images/s against batch size.

Exit status 1 when a method fails the gate (after writing the files).
"""
from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from pathlib import Path

import torch

import pixelcnn
from pixelcnn.cli import RUNS, Parser, eval_batch_size, fail, fresh, resolve_device, set_threads
from pixelcnn.evaluate import evaluate
from pixelcnn.images import save_grid
from pixelcnn.sampling import METHODS
from pixelcnn.cache import inverse_cdf

from . import report
from .common import (csv, describe_data, labels, load_model, machine, machine_line,
                     model_info, select_methods, test_data, timed)
from .gate import MIN_IDENTICAL, run_gate

DEFAULTS = {   # per device type: what finishes in minutes and still shows the comparison
    "cpu": dict(batch_sizes=[1, 16, 64], naive_steps=3),
    "cuda": dict(batch_sizes=[1, 16, 64, 256], naive_steps=100),
}
AGREE = {"float32": 1e-3, "bf16": 2e-2}        # bits/dim: max difference between forwards
GRID_IMAGES = 8      # one row: the committed PNGs stay small


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m bench.sample", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("model")
    g.add_argument("--dataset", help="cifar | mnist | fashion-mnist | binarized-mnist | ... "
                   "(default: the checkpoint's, else cifar); vqvae-prior: a random-weight "
                   "prior over 32x32 maps of 512 codes (learned embedding, 10 classes)")
    g.add_argument("--checkpoint", help="a pixelcnn checkpoint (default: the shipped model of "
                   "--dataset, checkpoints/DATASET.pt)")
    g.add_argument("--dtype", default="float32", choices=["float32", "bf16"])
    g.add_argument("--no-ema", action="store_true",
                   help="the raw weights of a checkpoint trained with --ema (default: its EMA "
                        "weights)")
    g.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="sample size (default: the model's training size)")
    g = p.add_argument_group("methods and timing")
    g.add_argument("--methods", type=csv(str), help=f"comma-separated, from {','.join(METHODS)} "
                   "(default: all available; naive is always timed: speedups are relative to it)")
    g.add_argument("--batch-sizes", type=csv(int), help="default: cpu "
                   f"{DEFAULTS['cpu']['batch_sizes']}, cuda {DEFAULTS['cuda']['batch_sizes']}")
    naive = g.add_mutually_exclusive_group()
    naive.add_argument("--naive-steps", type=int, help="time naive on N steps and extrapolate "
                       f"(default: cpu {DEFAULTS['cpu']['naive_steps']}, "
                       f"cuda {DEFAULTS['cuda']['naive_steps']})")
    naive.add_argument("--naive-full", action="store_true", help="time naive in full")
    g.add_argument("--repeat", type=int, default=3, help="timed calls per method and batch "
                   "size; the best is reported (the least disturbed on a shared machine)")
    g = p.add_argument_group("device")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    g = p.add_argument_group("correctness gate")
    g.add_argument("--gate-size", type=int, nargs=2, default=[8, 8], metavar=("H", "W"),
                   help="image size of the gate's samples (naive runs in full there)")
    g.add_argument("--gate-batch", type=int, default=4)
    g.add_argument("--gate-min-identical", type=float,
                   help="floor on the identical-sample rate (default: float32 0.999, bf16 none)")
    g = p.add_argument_group("bits/dim")
    g.add_argument("--data-dir", help="data root (default: $PIXELCNN_DATA, else ./data; "
                   "then ../shared/datasets)")
    g.add_argument("--no-download", action="store_true", help="never try to download data")
    g.add_argument("--eval-images", type=int, help="score only the first N test images "
                   "(default: all)")
    g.add_argument("--eval-batch-size", type=int, help="default: 256 on a GPU, 32 on a CPU")
    g.add_argument("--samples-per-method", type=int, default=64,
                   help="score up to N of each method's samples (those drawn while timing)")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=str(RUNS / "bench"),
                   help="results folder (default: runs/bench, git-ignored; "
                        "--out bench/results records a run in the repository)")
    g.add_argument("--seed", type=int, default=0)
    return p


def check_args(parser, args):
    for name in ("naive_steps", "repeat", "threads", "gate_batch", "eval_images",
                 "eval_batch_size"):
        v = getattr(args, name)
        if v is not None and v < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if args.samples_per_method < 0:
        parser.error("--samples-per-method must be >= 0")
    for flag, v in (("--batch-sizes", args.batch_sizes or [1]), ("--size", args.size or [1]),
                    ("--gate-size", args.gate_size)):
        if min(v) < 1:
            parser.error(f"{flag} must be positive, got {v}")
    if args.batch_sizes == [] or args.methods == []:
        parser.error("--batch-sizes and --methods need at least one value")


def print_settings(args):
    print("settings:")
    for group in build_parser()._action_groups[2:]:
        shown = [f"{a.dest}={getattr(args, a.dest)}" for a in group._group_actions]
        print(f"  {group.title}: " + ", ".join(shown))


# ---------------------------------------------------------------------------- timing

def time_sampler(model, method, batch, size, repeat, seeds, device):
    """(seconds of each of `repeat` full sampling calls, their samples), after a warm-up call
    (same shape on a GPU: the triton method captures its CUDA graphs there)."""
    y = labels(model, batch)
    warm = size if device.type == "cuda" else (min(2, size[0]), size[1])
    pixelcnn.sample(model, batch, warm, y=y, method=method)
    seconds, samples = [], []
    for _ in range(repeat):
        g = torch.Generator().manual_seed(next(seeds))
        t, x = timed(lambda: pixelcnn.sample(model, batch, size, y=y, method=method,
                                             generator=g), device)
        seconds.append(t)
        samples.append(x.cpu())
    return seconds, samples


@torch.no_grad()
def time_naive_steps(model, batch, size, steps, device):
    """Seconds of each of `steps` steps of the naive loop (one forward pass and one
    inverse-CDF draw at batch size `batch`), after one warm-up step."""
    C = model.config.in_channels
    H, W = size
    x = torch.zeros(batch, C, H, W, dtype=torch.long, device=device)
    u = torch.rand(batch, C, H, W, device=device)
    y = labels(model, batch)

    def step(k):
        i, j = divmod(k // C % (H * W), W)
        c = k % C
        logits = model.forward_float(model.embed(x), y, None)
        x[:, c, i, j] = inverse_cdf(logits[:, :, c, i, j], u[:, c, i, j])
    step(0)
    return [timed(lambda: step(k), device)[0] for k in range(1, steps + 1)]


def throughput(model, methods, args, size, device, seeds):
    """(records, samples per method)."""
    C = model.config.in_channels
    steps = C * size[0] * size[1]
    label = "full" if args.naive_full else f"extrapolated:{args.naive_steps}"
    records, samples = [], {m: [] for m in methods}
    for batch in args.batch_sizes:
        naive_s = None
        for m in methods:
            t0 = time.perf_counter()
            if m == "naive" and not args.naive_full:
                per_step = min(time_naive_steps(model, batch, size, args.naive_steps, device))
                seconds = [per_step * steps]
            else:
                seconds, drawn = time_sampler(model, m, batch, size, args.repeat, seeds, device)
                samples[m] += drawn
            best = min(seconds)
            naive_s = best if m == "naive" else naive_s
            records.append({"method": m, "batch_size": batch, "dtype": args.dtype,
                            "device": device.type, "seconds_per_batch": best,
                            "images_per_s": batch / best, "us_per_step": best / steps * 1e6,
                            "speedup_vs_naive": naive_s / best, "naive_timing": label,
                            "seconds": seconds})
            print(f"  {m:7s} batch {batch:4d}: {best:.4g} s per batch "
                  f"({time.perf_counter() - t0:.0f} s to measure)", flush=True)
    return records, {m: torch.cat(s) if s else None for m, s in samples.items()}


# ---------------------------------------------------------------------------- bits/dim

def bpd_of(model, images, device, batch_size):
    """evaluate() on a tensor of images (long [N, C, H, W]); labels as sampled."""
    y = labels(model, len(images))
    y = torch.zeros(len(images), dtype=torch.long) if y is None else y.cpu()
    batches = [(images[k:k + batch_size], y[k:k + batch_size])
               for k in range(0, len(images), batch_size)]
    return evaluate(model, batches, device)


def test_bits(model, data, data_name, methods, args, device):
    """The test split through the reference forward and each fast forward."""
    from pixelcnn.data import make_loader
    print(f"  scoring {len(data)} test images...", flush=True)
    forwards = {"torch": evaluate(model, make_loader(data, args.eval_batch_size), device)}
    if "triton" in methods:
        model.backend = "triton"
        try:
            forwards["triton"] = evaluate(model, make_loader(data, args.eval_batch_size), device)
        finally:
            model.backend = "torch"
    out = {"data": data_name, "n": len(data), "data_verified": data.data_verified,
           "forwards": forwards}
    if len(forwards) > 1:
        diff = max(abs(b["bits_per_dim"] - forwards["torch"]["bits_per_dim"])
                   for b in forwards.values())
        out.update(max_difference=diff, agree=diff <= AGREE[args.dtype])
    return out


def sample_bits(model, samples, args, device):
    """Bits/dim of each method's own samples, and whether they agree within 3 stderr."""
    per = {}
    for m, x in samples.items():
        if x is None or not args.samples_per_method:
            per[m] = {"skipped": f"timed on {args.naive_steps} steps: no full samples "
                      "(--naive-full draws them)" if m == "naive" and x is None
                      else "--samples-per-method 0"}
            continue
        per[m] = bpd_of(model, x[:args.samples_per_method], device, args.eval_batch_size)
    out = {"methods": per}
    scored = [m for m, b in per.items() if "skipped" not in b]
    if len(scored) > 1:
        ref = per[scored[0]]
        out["against"] = scored[0]
        out["consistent"] = all(
            abs(per[m]["bits_per_dim"] - ref["bits_per_dim"])
            <= 3 * math.hypot(per[m]["stderr"], ref["stderr"]) for m in scored[1:])
    return out


# ---------------------------------------------------------------------------- main

def gate_images(data, args, cfg, size):
    """(long [gate_batch, C, H, W], 'test' | 'random'): the first test images as the model
    sees them (binarized MNIST: its fixed binarization, not the intensities), cropped to the
    sample size, or random images when there are none (or they are smaller)."""
    if data is not None and all(d >= s for d, s in zip(data.image_size, size)):
        return data[:args.gate_batch][0][:, :, :size[0], :size[1]].long(), "test"
    g = torch.Generator().manual_seed(args.seed)
    return torch.randint(0, cfg.levels, (args.gate_batch, cfg.in_channels, *size),
                         generator=g), "random"


def correctness(model, methods, images, gate_size, args):
    """(gate results, teacher-forced bits/dim of the gate's images per forward)."""
    gate = run_gate(model, methods, images, gate_size, args.dtype, args.gate_min_identical,
                    seed=args.seed)
    teacher = {"torch": float(pixelcnn.bits_per_dim(gate.pop(None), images))}
    for m, g in gate.items():
        logits = g.pop("logits", None)
        if logits is not None:
            teacher[m] = float(pixelcnn.bits_per_dim(logits, images))
    return gate, teacher


def write_files(result, samples, records, levels, out: Path, stem: str) -> list:
    """Sample grids, the plot, the JSON and the markdown; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    files = [save_grid(x[:GRID_IMAGES], out / f"{stem}-{m}.png", levels, nrow=GRID_IMAGES).name
             for m, x in samples.items() if x is not None]
    fig, why_no_plot = report.plot(records, out / f"{stem}-throughput.png")
    if fig:
        files.append(fig.name)
    else:
        print(f"no plot: {why_no_plot}")
    line = machine_line(result["machine"])
    return [report.write_json(result, out / f"{stem}.json"),
            report.write_markdown(result, line, out / f"{stem}.md", files)] + \
        [out / f for f in files]


def main(argv=None) -> dict:
    start = time.perf_counter()
    clock = lambda: f"[{time.perf_counter() - start:.0f} s]"
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    set_threads(args.threads)
    try:
        if Path(args.out).is_file():
            raise ValueError(f"--out {args.out} is a file: give a folder")
        device = resolve_device(args.device)
        model, meta, path = load_model(args.checkpoint, args.dataset, device, args.dtype,
                                       ema=not args.no_ema)
        methods, skipped = select_methods(model, args.methods, list(METHODS))
    except ValueError as e:
        fail(parser.prog, str(e))
    for k, v in DEFAULTS[device.type].items():
        if getattr(args, k) is None and not (k == "naive_steps" and args.naive_full):
            setattr(args, k, v)
    args.eval_batch_size = args.eval_batch_size or eval_batch_size(device)
    dataset = args.dataset or meta.get("dataset") or "cifar"
    print_settings(args)
    mach = machine(device, args.dtype)
    print(machine_line(mach))
    cfg = model.config
    print(f"model: {path} ({sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{cfg.layers} layers, {cfg.channels} channels, k{cfg.kernel_size})")
    for m, why in skipped.items():
        print(f"skipping {m}: {why}")
    trained = meta.get("image_size")
    data, why_no_data = test_data(dataset, args.data_dir, cfg.levels,
                                  trained[0] if trained else None, not args.no_download)
    size = tuple(args.size or trained or (data.image_size if data else (32, 32)))
    if data is not None:
        data_name = describe_data(data, args.eval_images)
        data = data.take(args.eval_images)
        print(f"data: {data_name}, data_verified={data.data_verified}")
    else:
        print(f"data: {why_no_data}")

    # 1. the gate
    gate_size = (min(args.gate_size[0], size[0]), min(args.gate_size[1], size[1]))
    images, where = gate_images(data, args, cfg, size)
    floor = args.gate_min_identical if args.gate_min_identical is not None \
        else MIN_IDENTICAL[args.dtype]
    print(f"\n{clock()} correctness gate: samples {args.gate_batch}x{gate_size[0]}x"
          f"{gate_size[1]} from the same uniforms (identical rate >= {floor}); logits of "
          f"{len(images)} {where} images at {size[0]}x{size[1]}", flush=True)
    gate, teacher = correctness(model, methods, images.to(device), gate_size, args)
    print(report.table(report.gate_lines(gate)))
    passed = [m for m in methods if gate[m]["passed"]]

    # 2. throughput
    print(f"\n{clock()} throughput at {size[0]}x{size[1]}x{cfg.in_channels} "
          f"({cfg.in_channels * size[0] * size[1]} sub-pixel steps per image):", flush=True)
    seeds = itertools.count(args.seed * 1_000_003 + 1)       # fresh uniforms for every call
    records, samples = throughput(model, passed, args, size, device, seeds)
    print(report.table(report.throughput_lines(records)))

    # 3. bits/dim
    print(f"\n{clock()} bits/dim:", flush=True)
    bits = {"test": {"skipped": why_no_data} if data is None else
            test_bits(model, data, data_name, passed, args, device),
            "teacher_forced": {"n": len(images), "images": where, "bits_per_dim": teacher},
            "samples": sample_bits(model, samples, args, device)}
    print("\n".join(report.bits_lines(bits)))

    # 4. files
    result = {"machine": mach, "model": model_info(model, meta, path),
              "data": ({"name": data_name, "split": "test", "n": len(data),
                        "data_verified": data.data_verified} if data is not None else
                       {"name": dataset, "split": "test", "data_verified": False,
                        "skipped": why_no_data}),
              "settings": {k: v for k, v in vars(args).items() if k != "out"} | {"size": size},
              "skipped_methods": skipped, "gate": gate, "records": records, "bits_per_dim": bits,
              "wall_seconds": round(time.perf_counter() - start, 1)}
    stem = fresh(Path(args.out) / f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-"
                 f"{device.type}-{dataset}.json").stem                # never a second run's files
    written = write_files(result, samples, records, cfg.levels, Path(args.out), stem)
    print(f"\n{clock()} wrote " + ", ".join(str(p) for p in written))
    result["failed"] = [m for m in methods if not gate[m]["passed"]]
    if result["failed"]:
        print(f"GATE FAILED: {', '.join(result['failed'])} (not timed)")
    return result


if __name__ == "__main__":
    sys.exit(1 if main(sys.argv[1:])["failed"] else 0)
