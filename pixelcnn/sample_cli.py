"""The sampling command line, run as `python -m pixelcnn.sample`: draw a PNG grid of
samples (or completions) from a checkpoint.

    python -m pixelcnn.sample --checkpoint runs/mnist/checkpoint.pt --n 64
    python -m pixelcnn.sample --checkpoint P --complete test --rows 16 --out completions.png

Without --out the grid goes to a new file under runs/samples/ (git-ignored), never over an
earlier one.

With --complete, the top --rows rows of test images are kept and the rest is sampled; the
originals are shown beside the completions. (The sampling function itself is
`pixelcnn.sample(model, n, ...)`. pixelcnn/sample.py is only the `-m` entry point: a module
imported as pixelcnn.sample would take that name from the function, so the code lives here.)
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from .checkpoint import load
from .cli import RUNS, Parser, at_least, fail, fresh, resolve_device, set_threads
from .data import load_dataset
from .images import save_grid
from .sampling import METHODS, available_methods, sample


PROG = "python -m pixelcnn.sample"


def parse_args(argv=None):
    p = Parser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("model")
    g.add_argument("--checkpoint", required=True, help="a checkpoint written by pixelcnn.save")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--threads", type=at_least(1), help="torch CPU threads (default: torch's)")
    g = p.add_argument_group("sampling")
    g.add_argument("--n", type=at_least(1), default=64, help="images to draw")
    g.add_argument("--method", default="auto",
                   help="auto | " + " | ".join(METHODS) + ": the sampler (auto: the fastest "
                        "available for the model and device)")
    g.add_argument("--class", dest="label", type=int, default=None,
                   help="class to draw (class-conditional models; default: cycle through all)")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="image size (default: the size the model was trained on)")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("completion")
    g.add_argument("--complete", choices=["train", "test"], default=None,
                   help="complete images of this split of the checkpoint's data set")
    g.add_argument("--rows", type=int, default=None,
                   help="rows kept from each image (default: half the image)")
    g.add_argument("--data-dir", default=None)
    g = p.add_argument_group("output")
    g.add_argument("--out", help="PNG grid to write (default: a new runs/samples/CHECKPOINT.png)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.method not in ("auto",) + METHODS:
            raise ValueError(f"--method must be one of auto, {', '.join(METHODS)}; "
                             f"got {args.method!r}")
        device = resolve_device(args.device)
        model, meta = load(args.checkpoint, return_metadata=True)
        model.to(device)
        available = available_methods(model)
        method = available[0] if args.method == "auto" else args.method
        if method not in available:
            raise ValueError(f"--method {method} cannot sample this {type(model).__name__} on "
                             f"{device}; available here: {', '.join(available)}")
        if args.out and Path(args.out).is_dir():
            raise ValueError(f"--out {args.out} is a folder: give a PNG file path")
        if args.temperature <= 0:
            raise ValueError(f"--temperature must be > 0, got {args.temperature}")
    except ValueError as e:
        fail(PROG, str(e))
    set_threads(args.threads)
    out = Path(args.out) if args.out else \
        fresh(RUNS / "samples" / f"{Path(args.checkpoint).stem}.png")
    cfg = model.config
    size = tuple(args.size or meta.get("image_size") or (32, 32))
    g = torch.Generator().manual_seed(args.seed)
    kwargs = dict(method=method, temperature=args.temperature, generator=g, progress=True)
    if cfg.num_classes:
        if args.label is not None and not 0 <= args.label < cfg.num_classes:
            fail(PROG, f"--class must be in [0, {cfg.num_classes}), got {args.label}")
        y = torch.full((args.n,), args.label) if args.label is not None \
            else torch.arange(args.n) % cfg.num_classes
        kwargs["y"] = y
    elif args.label is not None:
        fail(PROG, "--class given, but the model is not class-conditional")
    originals = None
    if args.complete or cfg.model == "autoencoder":
        originals, labels = _data_images(args, meta, cfg, size)
        size = tuple(originals.shape[-2:])
        if cfg.num_classes and args.label is None:
            kwargs["y"] = labels                       # complete each image as its own class
        if cfg.model == "autoencoder":
            with torch.no_grad():
                kwargs["h"] = model.encode(originals.to(device))
            model = model.decoder
        if args.complete:
            rows = args.rows if args.rows is not None else size[0] // 2
            if not 0 <= rows <= size[0]:
                fail(PROG, f"--rows must be in [0, {size[0]}], got {rows}")
            kwargs.update(x0=originals, start=rows * size[1])
    if cfg.model == "autoencoder" and "h" not in kwargs:
        fail(PROG, "an autoencoder samples from the codes of data images")
    t = time.perf_counter()
    try:
        images = sample(model, args.n, size, **kwargs)
    except (ValueError, RuntimeError) as e:
        fail(PROG, str(e))
    seconds = time.perf_counter() - t
    grid = images if originals is None else _side_by_side(originals, images.cpu())
    save_grid(grid.cpu(), out, cfg.levels, nrow=_columns(args.n, originals is not None))
    print(json.dumps({"out": str(out), "n": args.n, "size": list(size), "method": method,
                      "device": str(device), "seconds": round(seconds, 3)}))


def _data_images(args, meta, cfg, size):
    name = meta.get("dataset")
    if not name:
        fail(PROG, "the checkpoint does not say which data set it was trained on (metadata "
             "'dataset'); completion needs it")
    try:
        resize = size[0] if name.startswith("folder:") else None   # as trained
        ds = load_dataset(name, args.complete or "test", data_dir=args.data_dir,
                          levels=cfg.levels, image_size=resize)
    except (FileNotFoundError, ValueError) as e:
        fail(PROG, str(e))
    if args.n > len(ds):
        fail(PROG, f"--n {args.n} is more than the {len(ds)} images of the split")
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(args.seed))[:args.n]
    images, labels = ds[idx.tolist()]
    return images.long(), labels


def _side_by_side(originals, completions):
    """Interleave columns: original, completion, original, completion, ..."""
    return torch.stack([originals, completions], 1).flatten(0, 1)


def _columns(n, pairs):
    cols = max(1, int(math.ceil(math.sqrt(n))))
    return 2 * cols if pairs else cols


if __name__ == "__main__":
    main()
