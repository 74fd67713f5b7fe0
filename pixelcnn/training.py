"""The training step and what it needs to continue exactly: the state (model, Adam, EMA,
counters, RNG), the learning-rate schedule, and global batches split into micro-batches and
across ranks.

One update sees one GLOBAL batch of --batch-size images, in the order of the epoch's
permutation (a function of --seed and the epoch alone). It is cut into --accumulate
micro-batches, each micro-batch into one contiguous share per rank. Every image's bits/dim
enters the loss with weight 1 / (global batch size), so the summed gradient is that of the
global batch's mean, whatever the number of processes or micro-batches (up to the order of
float sums). The command line (pixelcnn/train.py) drives it.
"""
from __future__ import annotations

import contextlib
import copy
import math

import torch

from . import distributed
from .distributed import World
from .likelihood import bits_per_dim


def lr_at(step: int, args, total_steps: int) -> float:
    """Linear warmup, then the schedule (a function of the step alone, so resuming is exact)."""
    warm = min(1.0, (step + 1) / args.warmup) if args.warmup else 1.0
    if args.schedule == "exp":
        return args.lr * warm * args.lr_decay ** step
    if args.schedule == "cosine":
        t = min(1.0, step / max(1, total_steps - 1))
        return args.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))
    return args.lr * warm


class EMA:
    """Polyak averaging of the weights (PixelCNN++'s 0.9995): after update t
    ema = d * ema + (1 - d) * weights, d = min(decay, (1 + t) / (10 + t)), the warmup of
    TensorFlow's ExponentialMovingAverage(num_updates). Without it the average starts from
    the initial weights and keeps decay^t of them: 63% after binarized MNIST's first epoch
    (938 updates at 0.9995), which scored 282 nats against the raw weights' 87. A copy of
    the model, in eval mode and without gradients, that evaluation and sampling use in place
    of the raw weights."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"--ema must be in (0, 1), e.g. 0.9995; got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        """d after update `step` (0-based)."""
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int):
        """Average in the weights after update `step` (0-based)."""
        torch._foreach_lerp_(list(self.model.parameters()), list(model.parameters()),
                             1.0 - self.decay_at(step))
        for mine, theirs in zip(self.model.buffers(), model.buffers()):
            mine.copy_(theirs)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict):
        self.model.load_state_dict(state)


class TrainState:
    """All that a run needs to continue exactly as if never stopped: the model, the Adam
    optimizer, the EMA weights (with --ema), the counters (updates, epochs done, global
    batches done in the current epoch) and every rank's RNG. state_dict() and
    load_state_dict() are the one place that says what that is.

    `net` is what the forward pass runs: the model itself in one process, under
    DistributedDataParallel on several, possibly torch.compile'd."""

    def __init__(self, model, lr: float, device, ema: float = 0.0, world: World = World(),
                 compile: bool = False):
        self.model, self.device, self.world = model, device, world
        self.opt = torch.optim.Adam(model.parameters(), lr=lr)
        self.ema = EMA(model, ema) if ema else None
        self.net = distributed.wrap(model, world, device)
        if compile:
            self.net = torch.compile(self.net)
        self.step, self.epoch, self.batch = 0, 0, 0

    def eval_model(self, raw: bool = False) -> torch.nn.Module:
        """The weights to evaluate and sample: the EMA's when kept (unless raw), else the raw."""
        return self.model if raw or self.ema is None else self.ema.model

    def rng(self) -> dict:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return {"torch": torch.get_rng_state(), "cuda": cuda}

    def state_dict(self) -> dict:
        """The state as references to the live tensors (copy it to keep it while training).
        A collective in a distributed run (every rank's RNG is gathered): call it on all."""
        state = {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                 "step": self.step, "epoch": self.epoch, "batch": self.batch,
                 "world_size": self.world.size, "rng": distributed.gather(self.rng(), self.world)}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict) -> str:
        """Continue from a state_dict(): weights, Adam moments, EMA, counters, this rank's RNG.
        A state saved by another number of processes continues at the start of the next epoch
        (its ranks' shares and RNG streams do not map onto these); returns a line saying so
        ('' when the continuation is exact)."""
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.step, self.epoch, self.batch = state["step"], state["epoch"], state.get("batch", 0)
        if self.ema is not None:
            if state.get("ema") is None:
                raise ValueError("--ema given, but the checkpoint has no EMA weights: resume "
                                 "without --ema, or start a new run with it")
            self.ema.load_state_dict(state["ema"])
        rngs = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]
        note = ""
        if len(rngs) == self.world.size:
            mine = rngs[self.world.rank]
            torch.set_rng_state(mine["torch"])
            if self.device.type == "cuda" and mine.get("cuda") is not None:
                torch.cuda.set_rng_state(mine["cuda"], self.device)
        else:
            note = (f"the checkpoint was written by {len(rngs)} process(es), this run has "
                    f"{self.world.size}: ")
            if self.batch:
                self.epoch, self.batch = self.epoch + 1, 0
                note += f"continuing at the start of epoch {self.epoch + 1} (the rest of the " \
                        "interrupted epoch is skipped)"
            else:
                note += "continuing at the epoch boundary it was saved at (RNG reseeded)"
            torch.manual_seed(state["step"] * 1000 + self.world.rank)
        return note


class GlobalBatches(torch.utils.data.Sampler):
    """This rank's indices of each global batch of an epoch: the permutation of
    randperm(n, seed) cut into batches of `batch_size` (the last may be short), each cut into
    `accumulate` micro-batches and each micro-batch into one contiguous share per rank.
    Starts at global batch `skip` (a resumed epoch). Yields one flat index list per global
    batch; `layout(b)` says how it splits. A share that would be empty (a short last batch)
    holds one image of weight 0, so every rank runs every micro-batch."""

    def __init__(self, n: int, batch_size: int, seed: int, accumulate: int, world: World,
                 skip: int = 0):
        self.n, self.batch_size, self.accumulate = n, batch_size, accumulate
        self.world, self.skip = world, skip
        self.order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()

    def __len__(self):
        return math.ceil(self.n / self.batch_size) - self.skip

    def layout(self, b: int) -> tuple:
        """Global batch b: (its size, [(start, length, real) per micro-batch of this rank]):
        positions in the batch; real False: a weight-0 stand-in."""
        size = min(self.batch_size, self.n - b * self.batch_size)
        parts = []
        for m in range(self.accumulate):
            lo = m * (size // self.accumulate) + min(m, size % self.accumulate)
            micro = range(lo, lo + size // self.accumulate + (m < size % self.accumulate))
            share = distributed.shard(micro, self.world)
            parts.append((share.start, len(share), True) if len(share) else (0, 1, False))
        return size, parts

    def indices(self, b: int) -> list:
        batch = self.order[b * self.batch_size:(b + 1) * self.batch_size]
        return [i for start, length, _ in self.layout(b)[1]
                for i in batch[start:start + length]]

    def __iter__(self):
        for b in range(self.skip, math.ceil(self.n / self.batch_size)):
            yield self.indices(b)


def train_step(state: TrainState, x, y, args, total_steps: int, amp: bool, layout=None):
    """One optimizer update on this rank's share (x, y) of a global batch: the scheduled lr,
    for each micro-batch the forward pass (bf16 autocast when amp), its weighted bits/dim and
    backward (gradients synchronised across ranks on the last only), then the gradient-norm
    clip (--clip), Adam and the EMA. layout: GlobalBatches.layout of the batch (default: one
    process, one micro-batch, x the whole batch). Returns the global batch's mean bits/dim
    as this rank's partial sum (sum it over ranks for the mean; no sync here) and the
    gradient norm before clipping, as tensors."""
    model, opt = state.model, state.opt
    size, parts = layout or (len(x), [(0, len(x), True)])
    x = x.to(state.device, non_blocking=True)
    y = y.to(state.device) if model.config.num_classes else None
    for group in opt.param_groups:
        group["lr"] = lr_at(state.step, args, total_steps)
    opt.zero_grad(set_to_none=True)
    total, offset = torch.zeros((), device=state.device), 0
    for m, (_, length, real) in enumerate(parts):
        xm = x[offset:offset + length]
        ym = None if y is None else y[offset:offset + length]
        offset += length
        last = m == len(parts) - 1
        sync = contextlib.nullcontext() if last or not state.world.distributed \
            else state.net.no_sync()
        with sync:
            with torch.autocast(state.device.type, dtype=torch.bfloat16, enabled=amp):
                logits = state.net(xm, y=ym)
            loss = bits_per_dim(logits, xm, reduction="sum") * (real / size)
            (loss * state.world.size).backward()       # DDP averages over ranks: undo it
        total += loss.detach()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(),
                                          args.clip if args.clip > 0 else float("inf"))
    opt.step()
    if state.ema is not None:
        state.ema.update(model, state.step)
    state.step += 1
    return total, norm
