"""python -m pixelcnn.sample: draw a PNG grid of samples (or completions) from a checkpoint.

    python -m pixelcnn.sample --checkpoint runs/mnist/model.pt --n 64 --out grid.png
    python -m pixelcnn.sample --checkpoint P --complete test --rows 16 --out completions.png

With --complete, the top --rows rows of test images are kept and the rest is sampled; the
originals are shown beside the completions. (The sampling function itself is
`pixelcnn.sample(model, n, ...)`; this module is only its command line.)
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import types

import torch

from .sampling import sample


class _CallableModule(types.ModuleType):
    """`pixelcnn.sample` names both the sampling function and this module; importing the module
    (e.g. `from pixelcnn.sample import main`) rebinds the package attribute to it, so the
    module forwards calls: `pixelcnn.sample(model, n, ...)` keeps working either way."""

    def __call__(self, *args, **kwargs):
        return sample(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m pixelcnn.sample", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("model")
    g.add_argument("--checkpoint", required=True, help="a checkpoint written by pixelcnn.save")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda")
    g = p.add_argument_group("sampling")
    g.add_argument("--n", type=int, default=64, help="images to draw")
    g.add_argument("--method", default="auto", help="auto | naive | cached | triton | native")
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
    g.add_argument("--out", default="samples.png", help="PNG grid to write")
    return p.parse_args(argv)


def fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv=None):
    args = parse_args(argv)
    from .checkpoint import load
    from .images import save_grid
    try:
        model, meta = load(args.checkpoint, return_metadata=True)
    except ValueError as e:
        fail(str(e))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" \
        else args.device
    model.to(device)
    cfg = model.config
    if args.n < 1:
        fail(f"--n must be >= 1, got {args.n}")
    size = tuple(args.size or meta.get("image_size") or (32, 32))
    g = torch.Generator().manual_seed(args.seed)
    kwargs = dict(method=args.method, temperature=args.temperature, generator=g, progress=True)
    if cfg.num_classes:
        if args.label is not None and not 0 <= args.label < cfg.num_classes:
            fail(f"--class must be in [0, {cfg.num_classes}), got {args.label}")
        y = torch.full((args.n,), args.label) if args.label is not None \
            else torch.arange(args.n) % cfg.num_classes
        kwargs["y"] = y
    elif args.label is not None:
        fail("--class given, but the model is not class-conditional")
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
                fail(f"--rows must be in [0, {size[0]}], got {rows}")
            kwargs.update(x0=originals, start=rows * size[1])
    if cfg.model == "autoencoder" and "h" not in kwargs:
        fail("an autoencoder samples from the codes of data images")
    t = time.perf_counter()
    try:
        images = sample(model, args.n, size, **kwargs)
    except (ValueError, RuntimeError) as e:
        fail(str(e))
    seconds = time.perf_counter() - t
    grid = images if originals is None else _side_by_side(originals, images.cpu())
    save_grid(grid.cpu(), args.out, cfg.levels, nrow=_columns(args.n, originals is not None))
    print(json.dumps({"out": str(args.out), "n": args.n, "size": list(size),
                      "method": args.method, "seconds": round(seconds, 3)}))


def _data_images(args, meta, cfg, size):
    from .data import load_dataset
    name = meta.get("dataset")
    if not name:
        fail("the checkpoint does not say which data set it was trained on (metadata "
             "'dataset'); completion needs it")
    try:
        resize = size[0] if name.startswith("folder:") else None   # as trained
        ds = load_dataset(name, args.complete or "test", data_dir=args.data_dir,
                          levels=cfg.levels, image_size=resize)
    except (FileNotFoundError, ValueError) as e:
        fail(str(e))
    if args.n > len(ds):
        fail(f"--n {args.n} is more than the {len(ds)} images of the split")
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
