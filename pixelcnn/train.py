"""Train a PixelCNN on a data set, in one process or many.

    python -m pixelcnn.train --dataset mnist --preset small --epochs 1 --data-dir ../shared/datasets
    torchrun --standalone --nproc_per_node 4 -m pixelcnn.train --dataset cifar --preset cifar ...

Adam with warmup and a per-step learning-rate schedule, gradient-norm clipping, bf16 autocast
on a GPU, optional gradient accumulation (--accumulate), EMA weights (--ema) and
torch.compile (--compile). Under torchrun every rank trains on its share of each global batch
(--batch-size is the global batch: results do not depend on the number of processes) with
DistributedDataParallel, and rank 0 alone writes. Every epoch (and every --checkpoint-every
updates): a checkpoint with the optimizer, EMA, position in the epoch and every rank's RNG,
so `--resume` continues exactly as if never stopped; every epoch: test bits/dim (EMA and raw
weights) and, every --sample-every epochs, a PNG grid of samples. Metrics go to
OUT/metrics.jsonl (and TensorBoard when installed).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import checkpoint, distributed
from .config import MODEL_KINDS, PRESETS, preset
from .data import DATASETS, canonical, load_dataset, make_loader
from .cli import RUNS, Parser, eval_batch_size, fail, fresh, resolve_device
from .distributed import World
from .evaluate import describe, per_image_bits, summarize
from .images import save_grid
from .models import build
from .sampling import METHODS, available_methods, sample
from .training import GlobalBatches, TrainState, lr_at, train_step  # noqa: F401 (the API)

try:
    from torch.utils.tensorboard import SummaryWriter
except Exception:   # tensorboard not installed (or unusable): metrics.jsonl only
    SummaryWriter = None

RUN_FILES = ("checkpoint.pt", "metrics.jsonl", "config.json", "results.json")
MODEL_FLAGS = ("model", "cond", "preset", "layers", "channels", "kernel_size", "levels",
               "cond_dim", "image_size", "embedding_dim")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m pixelcnn.train", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    m = p.add_argument_group("model")
    m.add_argument("--model", default="gated", choices=[k for k in MODEL_KINDS if k != "autoencoder"],
                   help="gated (Gated PixelCNN) or pixelcnn (the original masked model)")
    m.add_argument("--cond", default="none", choices=["none", "class", "autoencoder"],
                   help="class labels, or the PixelCNN autoencoder (encoder -> code h)")
    m.add_argument("--preset", default="small", choices=sorted(PRESETS),
                   help=", ".join(f"{k}: {v}" for k, v in PRESETS.items()))
    m.add_argument("--layers", type=int, help="override the preset")
    m.add_argument("--channels", type=int, help="override the preset (a multiple of the image channels)")
    m.add_argument("--kernel-size", type=int, help="override the preset (odd)")
    m.add_argument("--levels", type=int, help="values per sub-pixel (default: 256; binarized-mnist: 2; "
                                              "codes: the codebook size K, else inferred from "
                                              "the largest code, with a warning)")
    m.add_argument("--cond-dim", type=int, help="autoencoder code size (default 10 grey, 100 colour)")
    m.add_argument("--embedding-dim", type=int,
                   help="a learned input embedding of this size per channel (for discrete "
                        "codes, e.g. a VQ-VAE's: they have no order); default: the scalar "
                        "embedding of intensities (images)")
    d = p.add_argument_group("data")
    d.add_argument("--dataset", default="mnist", help=" | ".join(DATASETS))
    d.add_argument("--data-dir", help="data root (default: $PIXELCNN_DATA, else ./data)")
    d.add_argument("--image-size", type=int, help="resize images to this size (folders: 32)")
    d.add_argument("--limit-train", type=int, help="train on the first N images only")
    d.add_argument("--limit-test", type=int, help="evaluate on the first N test images only")
    d.add_argument("--test-data", help="codes:PATH data sets: the test split's file (default: "
                                       "the last --test-fraction of the training file)")
    d.add_argument("--test-fraction", type=float,
                   help="codes:PATH data sets: the share of the file held out as the test "
                        "split (default 0.05)")
    d.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    d.add_argument("--no-download", action="store_true", help="never try to download data")
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int, default=1, help="total epochs (0: only evaluate and sample)")
    o.add_argument("--batch-size", type=int, default=64,
                   help="the GLOBAL batch of one update, split over --accumulate micro-batches "
                        "and the processes of a torchrun")
    o.add_argument("--accumulate", type=int, default=1,
                   help="micro-batches per update (gradients summed; one GPU reproduces the "
                        "update of many)")
    o.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (Adam)")
    o.add_argument("--schedule", default="exp", choices=["exp", "cosine", "constant"],
                   help="exp: lr * lr_decay**step; cosine: to lr/10 at the last step of --epochs")
    o.add_argument("--lr-decay", type=float, default=0.99999, help="per-step decay of --schedule exp")
    o.add_argument("--warmup", type=int, default=100, help="linear warmup steps")
    o.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip (0: off)")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    o.add_argument("--no-amp", action="store_true", help="no bf16 autocast on a GPU")
    o.add_argument("--ema", type=float, default=0.0,
                   help="keep an exponential moving average of the weights with this decay "
                        "(e.g. 0.9995; 0: off). Evaluation, sampling and bench use it")
    o.add_argument("--compile", action="store_true", help="torch.compile the training step")
    o.add_argument("--dist-backend", default="auto", choices=distributed.BACKENDS,
                   help="under torchrun: auto (NCCL on CUDA, gloo on the CPU), nccl or gloo")
    w = p.add_argument_group("output")
    w.add_argument("--out", help="output folder (default: a new runs/DATASET-MODEL-COND-PRESET, "
                                 "numbered -2, -3, ... when taken; with --resume: the "
                                 "checkpoint's folder). A folder holding another run is refused")
    w.add_argument("--resume", help="continue from this checkpoint (its model and settings; "
                                    "flags given explicitly override the settings)")
    w.add_argument("--checkpoint-every", type=int, default=0,
                   help="also write the checkpoint every N updates (0: at the end of each "
                        "epoch only); a killed run loses at most N updates")
    w.add_argument("--sample-every", type=int, default=1, help="sample grid every N epochs (0: at the end only)")
    w.add_argument("--n-samples", type=int, default=16)
    w.add_argument("--sample-method", default="auto",
                   help="auto | naive | cached | native | triton: the sampler of the grids "
                        "(checked against the model and device before training starts)")
    w.add_argument("--eval-batch-size", type=int, help="default: 256 on a GPU, 32 on a CPU")
    w.add_argument("--log-every", type=int, default=50, help="steps between metrics lines")
    w.add_argument("--progress", default="auto", choices=["auto", "on", "off"],
                   help="tqdm bar (auto: only on a terminal)")
    return p


def explicit_flags(argv) -> set:
    """The destinations of the flags actually given in argv (not defaulted)."""
    p = build_parser()
    for a in p._actions:
        a.default, a.required = argparse.SUPPRESS, False
    return set(vars(p.parse_args(argv)))


def resolve_args(parser, argv):
    """Parse argv; with --resume, start from the checkpoint's saved flags and apply only the
    explicitly given ones. Returns (args, resume payload or None)."""
    args = parser.parse_args(argv)
    payload = None
    if args.resume:
        payload = checkpoint.load_payload(args.resume)
        saved = payload.get("metadata", {}).get("args")
        if not isinstance(saved, dict):
            raise ValueError(f"{args.resume} was not written by pixelcnn.train (no saved "
                             "training state): it cannot be resumed")
        given = explicit_flags(argv)
        changed = [f for f in MODEL_FLAGS if f in given and getattr(args, f) != saved.get(f)]
        if changed:
            raise ValueError(f"--resume continues the checkpoint's model; these flags differ "
                             f"from it: {', '.join('--' + f.replace('_', '-') for f in changed)}")
        merged = {**vars(args), **{k: v for k, v in saved.items() if k in vars(args)}}
        merged.update({k: getattr(args, k) for k in given})
        merged["resume"] = args.resume
        if "out" not in given:
            merged["out"] = str(Path(args.resume).parent)
        args = argparse.Namespace(**merged)
    for flag in ("epochs", "limit_train", "limit_test", "workers", "sample_every", "warmup",
                 "checkpoint_every"):
        if getattr(args, flag) is not None and getattr(args, flag) < 0:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 0")
    for flag in ("batch_size", "n_samples", "eval_batch_size", "log_every", "limit_train",
                 "limit_test", "accumulate"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 1")
    if not args.lr > 0 or not 0 < args.lr_decay <= 1:
        raise ValueError("--lr must be > 0 and --lr-decay in (0, 1]")
    if args.ema and not 0 < args.ema < 1:
        raise ValueError(f"--ema must be in (0, 1), e.g. 0.9995 (0: off); got {args.ema}")
    if args.accumulate > args.batch_size:
        raise ValueError(f"--accumulate {args.accumulate} is more micro-batches than the "
                         f"--batch-size {args.batch_size} has images")
    args.dataset = canonical(args.dataset)
    return args, payload


def model_config(args, data):
    """The ModelConfig the flags and the data set describe."""
    cond_dim = args.cond_dim
    if args.cond == "autoencoder" and cond_dim is None:
        cond_dim = 10 if data.in_channels == 1 else 100
    if args.cond == "class" and not data.num_classes:
        raise ValueError(f"--cond class: {data.name} has no class labels")
    if args.cond == "autoencoder" and args.model != "gated":
        raise ValueError("--cond autoencoder uses a gated decoder: drop --model pixelcnn")
    return preset(args.preset, model="autoencoder" if args.cond == "autoencoder" else args.model,
                  in_channels=data.in_channels, levels=data.levels,
                  num_classes=data.num_classes if args.cond == "class" else None,
                  cond_dim=cond_dim if args.cond == "autoencoder" else None,
                  layers=args.layers, channels=args.channels, kernel_size=args.kernel_size,
                  embedding_dim=args.embedding_dim)


class Logger:
    """Metrics as JSON lines (OUT/metrics.jsonl) and, when installed, TensorBoard scalars.
    Rank 0 writes; on the other ranks of a distributed run every call is a no-op."""

    def __init__(self, out: Path, main: bool = True):
        self.file = open(out / "metrics.jsonl", "a") if main else None
        self.tb = SummaryWriter(str(out / "tb")) if main and SummaryWriter is not None else None

    def log(self, **row):
        if self.file is None:
            return
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(k, v, row.get("step", 0))

    def close(self):
        if self.file is not None:
            self.file.close()
        if self.tb is not None:
            self.tb.close()


def output_folder(args) -> Path:
    """Where this run writes: --out, or a new folder under runs/. Refuses a folder that holds
    another run (its checkpoint and metrics would be replaced); --resume continues in its own."""
    if not args.out:
        name = f"{args.dataset.replace(':', '_').replace('/', '_')}-{args.model}-{args.cond}-" \
               f"{args.preset}"
        return fresh(RUNS / name)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file: give a folder")
    own = args.resume and out.resolve() == Path(args.resume).resolve().parent
    if not own and out.is_dir() and any((out / f).exists() for f in RUN_FILES):
        raise ValueError(f"--out {out} already holds a run ({', '.join(f for f in RUN_FILES if (out / f).exists())}): "
                         f"continue it with --resume {out / 'checkpoint.pt'}, or choose another --out")
    return out


def check_sample_method(model, method: str, device):
    """--sample-method must be able to sample this model on this device: checked before the
    first step, so a bad choice never costs an epoch."""
    if method == "auto":
        return
    if method not in METHODS:
        raise ValueError(f"--sample-method must be one of auto, {', '.join(METHODS)}; got {method!r}")
    available = available_methods(model)
    if method not in available:
        raise ValueError(f"--sample-method {method} cannot sample this {type(model).__name__} "
                         f"on {device}; available here: {', '.join(available)}")


def settings_lines(args, config, model, train, test, device, out, amp, world: World) -> str:
    """The run in a few lines (everything else is in OUT/config.json)."""
    params = sum(p.numel() for p in model.parameters())
    steps = math.ceil(len(train) / args.batch_size)
    verified = lambda d: "verified" if d.data_verified else "NOT verified"
    extras = [f"{world.size} processes (DDP)" if world.distributed else "",
              f"{args.accumulate} micro-batches per update" if args.accumulate > 1 else "",
              f"EMA {args.ema:g}" if args.ema else "", "torch.compile" if args.compile else ""]
    return "\n".join([
        f"run: {out}{' (resumed)' if args.resume else ''} | device {device}"
        f"{' | bf16 autocast' if amp else ''}"
        + "".join(f" | {e}" for e in extras if e),
        f"model: {config.model}, {config.layers} layers x {config.channels} channels, "
        f"k{config.kernel_size}, {config.levels} levels, {params:,} parameters"
        + (f", {config.num_classes} classes" if config.num_classes else ""),
        f"data: {train.name} train {len(train):,} images ({verified(train)}), test "
        f"{len(test):,} ({verified(test)}), {'x'.join(map(str, train.image_size))}x"
        f"{train.in_channels}",
        f"optimisation: {args.epochs} epoch(s) x {steps} steps, global batch {args.batch_size}, Adam lr "
        f"{args.lr:g} ({args.schedule}, warmup {args.warmup}), clip {args.clip:g}, seed {args.seed}",
        f"all settings: {out / 'config.json'}"])


@torch.no_grad()
def sample_grid(model, args, test, epoch, path, device):
    """n samples (class-conditional: labels 0, 1, ...; autoencoder: test images beside their
    reconstructions) as a PNG grid; a fixed generator per epoch."""
    cfg, n = model.config, args.n_samples
    g = torch.Generator().manual_seed(args.seed * 1000 + epoch)
    size = test.image_size
    if cfg.model == "autoencoder":
        x = test[list(range(min(n, len(test))))][0].to(device)
        y = torch.arange(len(x), device=device) % cfg.num_classes if cfg.num_classes else None
        rec = model.reconstruct(x, y=y, method=args.sample_method, generator=g)
        images, nrow = torch.stack([x.long(), rec], 1).flatten(0, 1), 2 * math.ceil(math.sqrt(len(x)))
    else:
        y = torch.arange(n, device=device) % cfg.num_classes if cfg.num_classes else None
        images = sample(model, n, size=size, y=y, method=args.sample_method, generator=g)
        nrow = None
    return save_grid(images, path, cfg.levels, nrow=nrow)


def test_split(args) -> dict:
    """load_dataset's test_path / test_fraction for a codes:PATH data set (only the given);
    a checkpoint's saved args carry them to pixelcnn.evaluate."""
    given = {"test_path": args.test_data, "test_fraction": args.test_fraction}
    return {k: v for k, v in given.items() if v is not None}


def load_data(args):
    """The train and test sets the flags name (train with --seed, for its per-epoch order)."""
    common = dict(data_dir=args.data_dir, levels=args.levels, image_size=args.image_size,
                  download=not args.no_download, **test_split(args))
    train = load_dataset(args.dataset, "train", seed=args.seed, **common).take(args.limit_train)
    test = load_dataset(args.dataset, "test", **common).take(args.limit_test)
    return train, test


def load_model(args, config, device):
    """A new model of config (initialised from --seed), or with --resume the checkpoint's,
    which must be that config; on device."""
    if not args.resume:
        return build(config).to(device)
    model = checkpoint.load(args.resume, ema=False)
    if model.config != config:
        raise ValueError(f"{args.resume} holds {model.config}, but the data set gives {config}")
    return model.to(device)


def setup(parser, argv):
    """Settings, process group, device, data, model and output folder, all checked before any
    long work: a bad value exits 2 with one line. Returns (args, resume payload or None,
    world, device, train, test, model, out)."""
    try:
        args, payload = resolve_args(parser, argv)
        world, device = distributed.init(resolve_device(args.device), args.dist_backend)
        torch.manual_seed(args.seed)
        train, test = load_data(args)
        model = load_model(args, model_config(args, train), device)
        check_sample_method(model, args.sample_method, device)
        if args.ema and payload is not None and payload["metadata"].get("ema") is None:
            raise ValueError(f"--ema {args.ema:g}: {args.resume} has no EMA weights to continue; "
                             "resume without --ema, or start a new run with it")
        out, why = None, None
        if world.main:                 # one rank picks the folder (runs/NAME-2, ...) for all
            try:
                out = output_folder(args)
            except ValueError as e:
                why = str(e)
        out, why = distributed.broadcast((out, why), world)
        if why:
            raise ValueError(why)
    except (ValueError, FileNotFoundError) as e:
        fail(parser.prog, str(e))
    return args, payload, world, device, train, test, model, out


def start_run(args, model, train, test, device, out, amp, world: World):
    """Create the output folder, print the settings in a few lines and write them all (the
    resolved flags, model config, device and data) to OUT/config.json: rank 0 only."""
    args.out = str(out)
    torch.backends.cudnn.benchmark = device.type == "cuda"    # fixed shapes: pick fast kernels
    if not world.main:
        return
    out.mkdir(parents=True, exist_ok=True)
    print(settings_lines(args, model.config, model, train, test, device, out, amp, world),
          flush=True)
    (out / "config.json").write_text(json.dumps({"args": vars(args),
                                                 "config": model.config.to_dict(),
                                                 "device": str(device), "world_size": world.size,
                                                 "train": train.info(),
                                                 "test": test.info()}, indent=2) + "\n")


def save_checkpoint(state: TrainState, path, **metadata):
    """Write state as a checkpoint: the weights where checkpoint.save puts any model's, the
    rest (optimizer, step, epoch, batch, world_size, rng, ema) as metadata keys of those
    names beside metadata. Every rank calls it (the RNG states are gathered); rank 0 writes."""
    saved = state.state_dict()
    del saved["model"]          # checkpoint.save writes state.model's weights itself
    if state.world.main:
        checkpoint.save(state.model, path, **saved, **metadata)


def resumed_state(payload: dict) -> dict:
    """The TrainState.state_dict() that a checkpoint written by save_checkpoint holds."""
    return {"model": payload["state_dict"], **payload["metadata"]}


def score_test(model, test, args, state: TrainState) -> dict:
    """evaluate()'s result for model on the test set: each rank scores its contiguous share
    and the per-image figures are gathered in order, so the result is one process's."""
    world = state.world
    share = distributed.shard(range(len(test)), world)
    loader = make_loader(torch.utils.data.Subset(test, share),
                         args.eval_batch_size or eval_batch_size(state.device),
                         workers=args.workers, device=state.device)
    bits = per_image_bits(model, loader, state.device)
    return summarize(torch.cat(distributed.gather(bits, world)), model.config.levels,
                     test.in_channels * test.image_size[0] * test.image_size[1])


def train_epoch(state: TrainState, args, train, total_steps: int, amp: bool, logger, save):
    """The rest of the current epoch (all of it, or from the global batch a resumed state
    stopped at), with a progress bar of the smoothed loss (rank 0), a metrics line every
    --log-every updates and save() every --checkpoint-every updates. Returns (images, s)."""
    state.model.train()
    train.set_epoch(state.epoch)
    batches = GlobalBatches(len(train), args.batch_size, args.seed * 1000 + state.epoch,
                            args.accumulate, state.world, skip=state.batch)
    loader = torch.utils.data.DataLoader(train, sampler=batches, batch_size=None,
                                         num_workers=args.workers,
                                         pin_memory=state.device.type == "cuda")
    no_bar = {"auto": None, "on": False, "off": True}[args.progress] if state.world.main else True
    bar = tqdm(loader, desc=f"epoch {state.epoch + 1}/{args.epochs}", disable=no_bar,
               initial=state.batch, total=len(batches) + state.batch)
    t0, seen, smooth = time.time(), 0, None
    for b, (x, y) in enumerate(bar, start=state.batch):
        layout = batches.layout(b)
        loss, norm = train_step(state, x, y, args, total_steps, amp, layout)
        state.batch, seen = b + 1, seen + layout[0]
        lr, due = state.opt.param_groups[0]["lr"], state.step % args.log_every == 0
        if state.step % 10 == 1 or due:
            loss = float(distributed.all_sum(loss))         # the global batch's mean
            smooth = loss if smooth is None else 0.9 * smooth + 0.1 * loss
            bar.set_postfix(bpd=f"{smooth:.3f}", lr=f"{lr:.2e}")
        if due:
            logger.log(step=state.step, epoch=state.epoch + 1, train_bpd=loss, lr=lr,
                       grad_norm=float(norm), images_per_s=seen / (time.time() - t0))
        if args.checkpoint_every and state.step % args.checkpoint_every == 0 \
                and state.batch < len(batches) + batches.skip:
            save()
    bar.close()
    state.epoch, state.batch = state.epoch + 1, 0
    return seen, time.time() - t0


def end_of_epoch(state: TrainState, args, train, test, logger, seen, seconds, save):
    """Test bits/dim (of the EMA weights, and of the raw ones beside them, with --ema), a
    metrics line, the checkpoint and then, when due, a sample grid (the checkpoint first: a
    failing sampler never costs the epoch). Rank 0 writes and samples. Returns the result."""
    epoch, out = state.epoch, Path(args.out)
    result = score_test(state.eval_model(), test, args, state)
    raw = score_test(state.model, test, args, state) if state.ema is not None else None
    logger.log(step=state.step, epoch=epoch, test_bpd=result["bits_per_dim"],
               test_stderr=result["stderr"], epoch_time_s=seconds, images_per_s=seen / seconds,
               data_verified=test.data_verified,
               **({"test_bpd_raw": raw["bits_per_dim"]} if raw else {}))
    save(result, raw)
    if state.world.main:
        print(f"epoch {epoch}: {seen / seconds:.1f} images/s, {seconds:.0f} s; "
              + describe(result, test.info()) + (" (EMA weights)" if raw else ""))
        if raw:
            print(f"  raw weights: {raw['bits_per_dim']:.4f} ± {raw['stderr']:.4f} bits/dim")
        print(f"checkpoint: {out / 'checkpoint.pt'}")
        if epoch == args.epochs or (args.sample_every and epoch % args.sample_every == 0):
            path = sample_grid(state.eval_model(), args, test, epoch,
                               out / f"samples_epoch{epoch:03d}.png", state.device)
            print(f"samples: {path}")
    distributed.barrier()
    return result


def main(argv=None):
    """Train as the flags say (see build_parser); returns the final test result, also written
    to OUT/results.json (by rank 0)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args, payload, world, device, train, test, model, out = setup(build_parser(), argv)
    amp = device.type == "cuda" and not args.no_amp
    start_run(args, model, train, test, device, out, amp, world)
    state = TrainState(model, args.lr, device, ema=args.ema, world=world, compile=args.compile)
    if payload is not None:
        note = state.load_state_dict(resumed_state(payload))
        if world.main:
            print(f"resumed from {args.resume}: epoch {state.epoch}, step {state.step}"
                  + (f", global batch {state.batch} of the epoch" if state.batch else "")
                  + (f"; {note}" if note else ""))
    total_steps = args.epochs * math.ceil(len(train) / args.batch_size)
    logger = Logger(out, world.main)
    last = {"result": None, "raw": None}

    def save(result=None, raw=None):
        """The checkpoint (every rank calls; rank 0 writes): with the latest test result."""
        if result is not None:
            last.update(result=result, raw=raw)
        r, r_raw = last["result"] or {}, last["raw"]
        save_checkpoint(state, out / "checkpoint.pt", dataset=args.dataset, split="test",
                        bits_per_dim=r.get("bits_per_dim"),
                        bits_per_dim_stderr=r.get("stderr"), test_n=r.get("n"),
                        data_verified=test.data_verified and train.data_verified,
                        image_size=list(test.image_size), args=vars(args),
                        **({"bits_per_dim_raw": r_raw["bits_per_dim"]} if r_raw else {}))

    result = None
    try:
        while state.epoch < args.epochs:
            seen, seconds = train_epoch(state, args, train, total_steps, amp, logger, save)
            result = end_of_epoch(state, args, train, test, logger, seen, seconds, save)
        if result is None:   # --epochs 0 (or already trained that far): evaluate and sample
            result = score_test(state.eval_model(), test, args, state)
            if world.main:
                print(describe(result, test.info()))
                path = sample_grid(state.eval_model(), args, test, state.epoch,
                                   out / "samples.png", device)
                print(f"samples: {path}")
        final = {**result, **test.info(), "epoch": state.epoch, "step": state.step,
                 "weights": "raw" if state.ema is None else "ema",
                 "config": model.config.to_dict()}
        if world.main:
            (out / "results.json").write_text(json.dumps(final, indent=2) + "\n")
    finally:
        logger.close()
        distributed.shutdown()
    return final


if __name__ == "__main__":
    main()
