"""Test-set likelihood: `evaluate()` for the training loop, and a CLI for checkpoints.

    python -m pixelcnn.evaluate --checkpoint runs/mnist/checkpoint.pt --dataset mnist

prints bits/dim with its standard error over images (and nats per image when levels == 2,
the figure reported for binarized MNIST); `--json PATH` also writes the result, which
always carries the data set's `data_verified`.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from . import checkpoint
from .cli import Parser, at_least, eval_batch_size, fail, resolve_device, set_threads
from .data import load_dataset, make_loader
from .likelihood import bits_per_dim


def labels_for(model, y: torch.Tensor):
    """The y argument a model takes: the labels for class-conditional models, else None.
    (Autoencoders encode x themselves; a model that needs a vector h cannot be scored on
    images alone.)"""
    cfg = model.config
    if cfg.cond_dim and cfg.model != "autoencoder":
        raise ValueError("this model is conditioned on a vector h (cond_dim set, not an "
                         "autoencoder): its likelihood needs h, which a data set does not give")
    return y if cfg.num_classes else None


@torch.no_grad()
def per_image_bits(model, loader, device="cpu", progress: bool = False) -> torch.Tensor:
    """bits/dim of every image the loader yields, float64 [n] on the CPU (float32 model,
    eval mode). Empty when the loader yields nothing (a rank's empty share)."""
    from tqdm.auto import tqdm
    was_training = model.training
    model.eval()
    per_image = [torch.zeros(0, dtype=torch.float64)]
    try:
        for x, y in tqdm(loader, desc="evaluate", leave=False, disable=not progress):
            x = x.to(device, non_blocking=True)
            y = labels_for(model, y)
            logits = model(x, y=None if y is None else y.to(device))
            per_image.append(bits_per_dim(logits, x, reduction="none").double().cpu())
    finally:
        model.train(was_training)
    return torch.cat(per_image)


def summarize(bpd: torch.Tensor, levels: int, dims: int) -> dict:
    """Mean bits/dim of per-image figures with its standard error (std / sqrt(n)); for
    levels == 2 also nats per image (dims: sub-pixels per image)."""
    n = len(bpd)
    if not n:
        raise ValueError("evaluate: the loader yielded no images")
    stderr = float(bpd.std() / math.sqrt(n)) if n > 1 else float("nan")
    out = {"bits_per_dim": float(bpd.mean()), "stderr": stderr, "n": n}
    if levels == 2:
        nats = bpd * dims * math.log(2)
        out["nats_per_image"] = float(nats.mean())
        out["nats_stderr"] = float(nats.std() / math.sqrt(n)) if n > 1 else float("nan")
    return out


def evaluate(model, loader, device="cpu", progress: bool = False) -> dict:
    """Mean bits/dim over every image the loader yields, with its standard error (std of
    per-image bits/dim / sqrt(n)); for levels == 2 also nats per image. float32, eval mode."""
    bpd = per_image_bits(model, loader, device, progress)
    if not len(bpd):
        raise ValueError("evaluate: the loader yielded no images")
    dims = next(iter(loader))[0][0].numel() if model.config.levels == 2 else 0
    return summarize(bpd, model.config.levels, dims)


def describe(result: dict, info: dict) -> str:
    """One human line (two for binarized data) for a result of `evaluate`."""
    verified = "data verified" if info["data_verified"] else \
        "data NOT verified: md5 mismatch or unknown, not comparable with published numbers"
    line = (f"{info['dataset']} {info['split']}: {result['bits_per_dim']:.4f} ± "
            f"{result['stderr']:.4f} bits/dim over {result['n']} images ({verified})")
    if "nats_per_image" in result:
        line += f"\n{info['dataset']} {info['split']}: {result['nats_per_image']:.2f} ± " \
                f"{result['nats_stderr']:.2f} nats/image"
    return line


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m pixelcnn.evaluate",
               description="Test-set bits/dim of a pixelcnn checkpoint.")
    p.add_argument("--checkpoint", required=True, help="a file written by pixelcnn.save / train")
    p.add_argument("--dataset", help="data set name (default: the checkpoint's)")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--data-dir", help="data root (default: $PIXELCNN_DATA, else ./data)")
    p.add_argument("--batch-size", type=at_least(1), help="default: 256 on a GPU, 32 on a CPU")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--threads", type=at_least(1), help="torch CPU threads (default: torch's)")
    p.add_argument("--limit", type=at_least(1), help="evaluate only the first N images")
    p.add_argument("--workers", type=at_least(0), default=0, help="DataLoader worker processes")
    p.add_argument("--no-download", action="store_true", help="never try to download data")
    p.add_argument("--no-ema", action="store_true",
                   help="score the raw weights of a checkpoint trained with --ema (default: "
                        "its EMA weights)")
    p.add_argument("--json", help="also write the result to this JSON file")
    p.add_argument("--progress", default="auto", choices=["auto", "on", "off"],
                   help="progress bar (auto: on a terminal; otherwise a start line)")
    return p


def main(argv=None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
        if args.json and Path(args.json).is_dir():
            raise ValueError(f"--json {args.json} is a folder: give a file path")
        model, meta = checkpoint.load(args.checkpoint, map_location=device,
                                      return_metadata=True, ema=not args.no_ema)
        cfg = model.config
        name = args.dataset or meta.get("dataset")
        if not name:
            raise ValueError(f"{args.checkpoint} does not record its data set: pass --dataset")
        size = meta.get("image_size")
        saved = meta.get("args") or {}
        split = {k: saved[f] for k, f in (("test_path", "test_data"),
                                          ("test_fraction", "test_fraction"))
                 if name == meta.get("dataset") and saved.get(f) is not None}   # codes:PATH
        data = load_dataset(name, args.split, args.data_dir, levels=cfg.levels,
                            image_size=size[0] if size else None, download=not args.no_download,
                            **split)
        if data.in_channels != cfg.in_channels:
            raise ValueError(f"{data.name} has {data.in_channels} channel(s) but the model "
                             f"expects {cfg.in_channels}")
        labels_for(model, data.labels)
        if cfg.num_classes and data.num_classes and data.num_classes > cfg.num_classes:
            raise ValueError(f"{data.name} has {data.num_classes} classes, the model "
                             f"{cfg.num_classes}")
    except (ValueError, FileNotFoundError) as e:
        fail(parser.prog, str(e))
    set_threads(args.threads)
    data = data.take(args.limit)
    loader = make_loader(data, args.batch_size or eval_batch_size(device), workers=args.workers,
                         device=device)
    bar = {"auto": sys.stderr.isatty(), "on": True, "off": False}[args.progress]
    if not bar:
        print(f"scoring {len(data)} images of {data.name} ({args.split}) on {device}...",
              flush=True)
    result = evaluate(model, loader, device, progress=bar)
    print(describe(result, data.info()) + (" (EMA weights)" if meta["weights"] == "ema" else ""))
    out = {**result, **data.info(), "checkpoint": str(args.checkpoint),
           "epoch": meta.get("epoch"), "weights": meta["weights"], "config": cfg.to_dict()}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
