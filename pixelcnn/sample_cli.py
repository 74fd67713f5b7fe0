"""The sampling command line, run as `python -m pixelcnn.sample`: draw samples (or
completions) from a checkpoint into a PNG grid and an .npz of every image.

    python -m pixelcnn.sample --checkpoint runs/mnist/checkpoint.pt --n 64
    python -m pixelcnn.sample --checkpoint P --complete test --rows 16 --out completions.png
    torchrun --standalone --nproc_per_node 4 -m pixelcnn.sample --checkpoint P -n 10000

(Under torchrun write `-n`, or put `--` before the arguments: torchrun's own parser stops at
`--n`, an ambiguous abbreviation of its --nnodes, --nproc-per-node, ...)

Without --out the grid goes to a new file under runs/samples/ (git-ignored), never over an
earlier one; the .npz (`samples` [n, C, H, W], `labels` for class-conditional models, the
seed, method and checkpoint) goes beside it with the same stem. The grid shows at most the
first 1,024 images; the .npz always holds all of them.

Image k is drawn from uniforms derived from --seed and k alone (`image_uniforms`), so the
images do not depend on --batch-size, on the number of processes, or on --n (image k of a
run of 5 is image k of a run of 3). Under torchrun the images are split across the ranks in
contiguous shares and gathered on rank 0, the one rank that writes and prints: the result is
the one a single process draws. Class-conditional models without --class draw class
k % num_classes for image k.

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

import numpy as np
import torch
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import load
from .cli import RUNS, Parser, at_least, fail, fresh, resolve_device, set_threads
from .data import load_dataset
from .images import save_grid
from .sampling import METHODS, available_methods, sample


PROG = "python -m pixelcnn.sample"
GRID_MAX = 1024          # images shown in the PNG grid at most (the .npz holds all)
BATCH = 256              # default images per sampler call on each rank


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:          # torchrun ... -m pixelcnn.sample -- ARGS: no positionals here
        argv.remove("--")
    p = Parser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("model")
    g.add_argument("--checkpoint", required=True, help="a checkpoint written by pixelcnn.save")
    g.add_argument("--no-ema", dest="ema", action="store_false",
                   help="sample with the raw weights of a checkpoint trained with --ema "
                        "(default: its EMA weights when it has them)")
    g.add_argument("--device", default="auto",
                   help="auto | cpu | cuda | cuda:N (under torchrun: cuda, each rank takes the "
                        "GPU of its LOCAL_RANK)")
    g.add_argument("--threads", type=at_least(1), help="torch CPU threads (default: torch's)")
    g.add_argument("--dist-backend", default="auto", choices=distributed.BACKENDS,
                   help="under torchrun: the process group's backend (auto: NCCL on CUDA, "
                        "gloo on the CPU)")
    g = p.add_argument_group("sampling")
    g.add_argument("-n", "--n", type=at_least(1), default=64,
                   help="images to draw (under torchrun write -n: torchrun's own parser "
                        "refuses --n as an ambiguous abbreviation of its options)")
    g.add_argument("--method", default="auto",
                   help="auto | " + " | ".join(METHODS) + ": the sampler (auto: the fastest "
                        "available for the model and device)")
    g.add_argument("--class", dest="label", type=int, default=None,
                   help="class to draw (class-conditional models; default: image k draws "
                        "class k %% num_classes)")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="image size (default: the size the model was trained on)")
    g.add_argument("--seed", type=at_least(0), default=0,
                   help="image k draws from uniforms derived from (seed, k) alone")
    g.add_argument("--batch-size", type=at_least(1), default=None,
                   help=f"images per sampler call on each rank (default: {BATCH}, or --n if "
                        "smaller); does not change the images")
    g = p.add_argument_group("completion")
    g.add_argument("--complete", choices=["train", "test"], default=None,
                   help="complete images of this split of the checkpoint's data set")
    g.add_argument("--rows", type=int, default=None,
                   help="rows kept from each image (default: half the image)")
    g.add_argument("--data-dir", default=None)
    g = p.add_argument_group("output")
    g.add_argument("--out", help="PNG grid to write (default: a new runs/samples/CHECKPOINT.png); "
                                 "the .npz of all samples goes beside it (same stem)")
    return p.parse_args(argv)


def image_uniforms(seed: int, indices, shape) -> torch.Tensor:
    """The uniforms of images `indices`: float32 [len(indices), *shape] in [0, 1). Image k's
    come from a CPU torch.Generator seeded with SeedSequence([seed, k]).generate_state(1), so
    they depend on seed and k alone (not on which other images are drawn with it)."""
    out = torch.empty((len(indices), *shape), dtype=torch.float32)
    for i, k in enumerate(indices):
        state = int(np.random.SeedSequence([int(seed), int(k)]).generate_state(1)[0])
        out[i] = torch.rand(shape, generator=torch.Generator().manual_seed(state),
                            dtype=torch.float32)
    return out


def sample_dtype(levels: int):
    """The smallest numpy integer dtype of the .npz that holds sub-pixels in [0, levels)."""
    return np.uint8 if levels <= 256 else np.int16 if levels <= 2 ** 15 else np.int32


def main(argv=None):
    args = parse_args(argv)
    try:
        world, device = distributed.init(resolve_device(args.device), args.dist_backend)
    except ValueError as e:
        fail(PROG, str(e))
    try:
        _run(args, world, device)
    finally:
        distributed.shutdown()


def _fail(world, message: str):
    """An error in the arguments (the same on every rank): said once, by rank 0."""
    if world.main:
        fail(PROG, message)
    raise SystemExit(2)


def _run(args, world, device):
    """Check every argument (before any sampling), draw this rank's share of the images in
    batches, gather them, and on rank 0 write the grid and the .npz and print the JSON."""
    try:
        if args.method not in ("auto",) + METHODS:
            raise ValueError(f"--method must be one of auto, {', '.join(METHODS)}; "
                             f"got {args.method!r}")
        if args.out and Path(args.out).is_dir():
            raise ValueError(f"--out {args.out} is a folder: give a PNG file path")
        if args.out and Path(args.out).suffix.lower() == ".npz":
            raise ValueError(f"--out {args.out}: give the PNG grid's path (the .npz of all "
                             "samples goes beside it)")
        if args.temperature <= 0:
            raise ValueError(f"--temperature must be > 0, got {args.temperature}")
        model, meta = load(args.checkpoint, return_metadata=True, ema=args.ema)
        model.to(device)
        available = available_methods(model)
        method = available[0] if args.method == "auto" else args.method
        if method not in available:
            raise ValueError(f"--method {method} cannot sample this {type(model).__name__} on "
                             f"{device}; available here: {', '.join(available)}")
        cfg = model.config
        size = tuple(args.size or meta.get("image_size") or (32, 32))
        y = None
        if cfg.num_classes:
            if args.label is not None and not 0 <= args.label < cfg.num_classes:
                raise ValueError(f"--class must be in [0, {cfg.num_classes}), got {args.label}")
            y = torch.full((args.n,), args.label) if args.label is not None \
                else torch.arange(args.n) % cfg.num_classes
        elif args.label is not None:
            raise ValueError("--class given, but the model is not class-conditional")
        originals = data_index = None
        start = 0
        if args.complete or cfg.model == "autoencoder":
            originals, labels, data_index = _data_images(args, meta, cfg.levels, size)
            size = tuple(originals.shape[-2:])
            if cfg.num_classes and args.label is None:
                y = labels                              # complete each image as its own class
            if args.complete:
                rows = args.rows if args.rows is not None else size[0] // 2
                if not 0 <= rows <= size[0]:
                    raise ValueError(f"--rows must be in [0, {size[0]}], got {rows}")
                start = rows * size[1]
        if cfg.model == "autoencoder" and originals is None:
            raise ValueError("an autoencoder samples from the codes of data images")
    except ValueError as e:
        _fail(world, str(e))
    set_threads(args.threads)
    out = None
    if world.main:
        out = Path(args.out) if args.out else fresh(RUNS / "samples" /
                                                    f"{Path(args.checkpoint).stem}.png", (".npz",))
    net = model.decoder if cfg.model == "autoencoder" else model
    shape = (net.config.in_channels, *size)
    batch = args.batch_size or min(BATCH, args.n)
    dtype = sample_dtype(cfg.levels)

    t = time.perf_counter()
    mine = distributed.shard(range(args.n), world)       # this rank's contiguous share
    parts = []
    with tqdm(total=len(mine), unit="image", desc=f"images (rank 0 of {world.size})"
              if world.distributed else "images", leave=False,
              disable=not world.main or len(mine) <= batch) as bar:
        for b in range(0, len(mine), batch):
            ks = mine[b:b + batch]
            idx = torch.tensor(list(ks), dtype=torch.long)
            kwargs = dict(method=method, temperature=args.temperature, progress=world.main,
                          uniforms=image_uniforms(args.seed, ks, shape))
            if y is not None:
                kwargs["y"] = y[idx]
            try:
                if originals is not None:
                    if cfg.model == "autoencoder":
                        with torch.no_grad():
                            kwargs["h"] = model.encode(originals[idx].to(device))
                    if args.complete:
                        kwargs.update(x0=originals[idx], start=start)
                images = sample(net, len(ks), size, **kwargs)
            except (ValueError, RuntimeError) as e:
                fail(PROG, (f"rank {world.rank}: " if world.distributed else "") + str(e))
            parts.append(images.cpu().numpy().astype(dtype))
            bar.update(len(ks))
    local = np.concatenate(parts) if parts else np.zeros((0, *shape), dtype)
    samples = np.concatenate(distributed.gather(local, world))   # rank order = image order
    seconds = time.perf_counter() - t
    if not world.main:
        return
    assert samples.shape == (args.n, *shape), samples.shape
    shown = min(args.n, GRID_MAX)
    grid = torch.from_numpy(samples[:shown].astype(np.int64))
    if originals is not None:            # completions, or an autoencoder's: data | sample
        grid = _side_by_side(originals[:shown], grid)
    save_grid(grid, out, cfg.levels, nrow=_columns(shown, originals is not None))
    npz = out.with_suffix(".npz")
    arrays = dict(samples=samples, seed=np.int64(args.seed), method=np.str_(method),
                  checkpoint=np.str_(str(args.checkpoint)), weights=np.str_(meta["weights"]),
                  temperature=np.float64(args.temperature), levels=np.int64(cfg.levels))
    if y is not None:
        arrays["labels"] = y.numpy().astype(np.int64)
    if originals is not None:
        arrays["originals"] = originals.numpy().astype(dtype)
        arrays["data_index"] = data_index.numpy().astype(np.int64)
        arrays["split"] = np.str_(args.complete or "test")
        if args.complete:
            arrays["rows"] = np.int64(start // size[1])
    np.savez(npz, **arrays)
    report = {"out": str(out), "npz": str(npz), "n": args.n, "size": list(size),
              "method": method, "weights": meta["weights"], "device": str(device),
              "ranks": world.size, "batch_size": batch, "seconds": round(seconds, 3),
              "grid_images": shown}
    if shown < args.n:
        report["grid_note"] = (f"the grid shows the first {shown} of the {args.n} images; "
                               f"the npz holds all of them")
    print(json.dumps(report))


def _data_images(args, meta, levels, size):
    """The data images completed (or encoded, for an autoencoder): n images of the split drawn
    by a permutation seeded with --seed, with their labels and indices in the split.
    ValueError when the data set is unknown, missing or too small."""
    name = meta.get("dataset")
    if not name:
        raise ValueError("the checkpoint does not say which data set it was trained on "
                         "(metadata 'dataset'); completion needs it")
    try:
        resize = size[0] if name.startswith("folder:") else None   # as trained
        ds = load_dataset(name, args.complete or "test", data_dir=args.data_dir,
                          levels=levels, image_size=resize)
    except FileNotFoundError as e:      # ValueErrors (a bad data set) pass as they are
        raise ValueError(str(e)) from None
    if args.n > len(ds):
        raise ValueError(f"--n {args.n} is more than the {len(ds)} images of the split")
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(args.seed))[:args.n]
    images, labels = ds[idx.tolist()]
    return images.long(), labels, idx


def _side_by_side(originals, completions):
    """Interleave columns: original, completion, original, completion, ..."""
    return torch.stack([originals, completions], 1).flatten(0, 1)


def _columns(n, pairs):
    cols = max(1, int(math.ceil(math.sqrt(n))))
    return 2 * cols if pairs else cols


if __name__ == "__main__":
    main()
