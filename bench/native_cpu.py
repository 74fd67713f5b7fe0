"""Seconds per batch of `cached` and `native` on the CPU (issue #6): the small and cifar presets
at 32x32x3, batch 1 and 16, random weights (the time does not depend on them).

    python -m bench.native_cpu [--threads 2] [--repeat 3] [--rows 32] [--methods cached native]

Each figure is the best of --repeat runs (the median is printed too: a shared machine makes
single runs noisy), in wall-clock seconds, and in CPU seconds of the process (all threads,
spinning included: with --threads 1 a measure of the work that other processes on the machine
do not inflate). --rows N < 32 times the first N rows of each image and scales by 32 / N
(every row costs the same but row 0, which has no vertical stack to compute). Writes
bench/results/native_cpu.json.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

import pixelcnn
from pixelcnn.cli import RUNS, Parser, at_least, fresh
from pixelcnn.sampling import available_methods


def seconds_per_batch(model, method, batch, rows, repeat, width=32, height=32):
    """Best and median wall-clock seconds, and best CPU seconds, per batch of 32 x 32 images."""
    wall, cpu = [], []
    for r in range(repeat):
        g = torch.Generator().manual_seed(r)
        t, c = time.perf_counter(), time.process_time()
        pixelcnn.sample(model, batch, (rows, width), method=method, generator=g)
        wall.append((time.perf_counter() - t) * height / rows)
        cpu.append((time.process_time() - c) * height / rows)
    return min(wall), statistics.median(wall), min(cpu)


def main(argv=None):
    parser = Parser(prog="python -m bench.native_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=at_least(1), default=2)
    parser.add_argument("--repeat", type=at_least(1), default=3)
    parser.add_argument("--rows", type=at_least(1), default=32,
                        help="rows timed per image (scaled to 32)")
    parser.add_argument("--presets", nargs="+", default=["small", "cifar"],
                        choices=sorted(pixelcnn.PRESETS))
    parser.add_argument("--batches", nargs="+", type=at_least(1), default=[1, 16])
    parser.add_argument("--methods", nargs="+", default=["cached", "native"],
                        choices=["naive", "cached", "native"])
    parser.add_argument("--out", default=str(RUNS / "bench" / "native_cpu.json"),
                        help="JSON file (default: a new one under runs/bench, git-ignored)")
    args = parser.parse_args(argv)
    if args.rows > 32:
        parser.error(f"--rows must be <= 32 (the image height), got {args.rows}")
    if Path(args.out).is_dir():
        parser.error(f"--out {args.out} is a folder: give a JSON file path")
    probe = pixelcnn.build(pixelcnn.preset("tiny", in_channels=3, levels=256)).eval()
    missing = [m for m in args.methods if m not in available_methods(probe)]
    if missing:
        parser.error(f"--methods {' '.join(missing)}: not available on this machine "
                     f"(available: {', '.join(available_methods(probe))})")
    args.out = str(fresh(Path(args.out)) if args.out == parser.get_default("out") else args.out)
    print(vars(args))
    torch.set_num_threads(args.threads)
    results = []
    for preset in args.presets:
        model = pixelcnn.build(pixelcnn.preset(preset, in_channels=3, levels=256)).eval()
        for batch in args.batches:
            row = {"preset": preset, "batch": batch}
            for method in args.methods:
                pixelcnn.sample(model, batch, (2, 32), method=method)         # warm up
                best, median, cpu = seconds_per_batch(model, method, batch, args.rows,
                                                      args.repeat)
                row[method] = {"best_s": best, "median_s": median, "cpu_s": cpu}
                print(f"{preset:6s} batch {batch:3d} {method:7s} {best:8.3f} s/batch "
                      f"(median {median:.3f}, CPU {cpu:.3f} s)", flush=True)
            if "cached" in row and "native" in row:
                row["speedup"] = row["cached"]["best_s"] / row["native"]["best_s"]
                print(f"{preset:6s} batch {batch:3d} native speed-up {row['speedup']:.1f}x")
            results.append(row)
    meta = {"threads": args.threads, "rows_timed": args.rows, "repeat": args.repeat,
            "torch": torch.__version__, "size": [32, 32], "channels": 3}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
