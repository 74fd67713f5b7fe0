"""Training throughput: images/s and seconds per update of the training step, per preset and
image shape, eager against torch.compile, 1 process against N (issue 13).

    python -m bench.train                                   # small on 28x28x1, cifar on 32x32x3
    python -m bench.train --preset cifar --shape cifar --modes eager --batch-size 128
    python -m bench.train --device cpu --procs 1,2          # N processes on the CPU: asked only

Every measurement builds the preset (random initial weights) for the shape and times
pixelcnn.training.train_step, the step `python -m pixelcnn.train` runs: Adam with the train
command's default learning rate, warmup and clip, bf16 autocast on a GPU (--no-amp: float32),
--accumulate micro-batches. The images are random integers of the shape: the time of an
update does not depend on the pixel values. One fixed global batch lives in (pinned) host
memory and is copied to the device every update, as in training; the data loader is not
timed.

- Modes: `eager`, and `compiled` (TrainState(compile=True): torch.compile of the forward
  pass and loss). Both by default where torch.compile can run (compiled is skipped with the
  reason where it cannot). The --warmup-steps updates before the timed ones are not timed;
  in compiled mode they include the compilation, reported as "compile s": their time minus
  that of as many timed updates.
- Processes: 1 (in this process) and each N of --procs > 1 through torchrun (`python -m
  torch.distributed.run --standalone --nproc_per_node N -m bench.train --worker ...`):
  DistributedDataParallel through TrainState(world=...), the global --batch-size split
  across the ranks (pixelcnn.training.GlobalBatches), NCCL on GPUs, gloo on the CPU. The
  slowest rank's time counts; rank 0 reports. Default: 1 and, with >= 2 GPUs, all of them.
  On the CPU only when asked (--procs 1,2): N processes on the same few cores measure
  contention as much as scaling (torchrun gives each rank 1 thread unless --threads).
- --steps timed updates per measurement (CPU 5, GPU 20 by default): s/update = their wall
  time / --steps (the device synchronized at both ends), images/s = --batch-size / s/update.
  On a CPU the cifar preset is slow: forward and backward are 136 GFLOP per 32x32 image
  (torch's FlopCounterMode; small at 28x28: 3.3), so an update of 64 images is about a
  minute of arithmetic on 2 cores at oneDNN's ~130 GFLOP/s (--preset small, or fewer
  --steps, for a quick look).

Prints the settings, the machine and a table (preset, shape, mode, processes, global batch,
images/s, s/update, compile s, images/s relative to eager with 1 process), and writes the
JSON (--out; default a new bench/results/<UTC time>-<device>-train.json, never an existing
file). On a shared CPU absolute times vary 1.5-3x between runs: compare the ratios within
one run. Exit status 1 when a measurement failed (after writing the JSON).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pixelcnn import distributed
from pixelcnn.cli import Parser, fail, fresh, resolve_device, set_threads
from pixelcnn.config import PRESETS, preset
from pixelcnn.distributed import World
from pixelcnn.models import build
from pixelcnn.training import GlobalBatches, TrainState, train_step

from . import report
from .common import ROOT, cpu_name, csv, machine, machine_line, sync

PROG = "python -m bench.train"
RESULTS = ROOT / "bench" / "results"
MODES = ("eager", "compiled")
SHAPES = {"mnist": (28, 28, 1), "fashion-mnist": (28, 28, 1), "cifar": (32, 32, 3)}
DEFAULT_PRESETS = ["small", "cifar"]
DEFAULT_SHAPE = {"tiny": "mnist", "small": "mnist", "cifar": "cifar", "paper": "cifar"}
DEFAULTS = {   # per device type: on 2 CPU cores an update of the cifar preset takes ~1 min
    "cpu": dict(steps=5, warmup_steps=2),
    "cuda": dict(steps=20, warmup_steps=3),
}
PROGRESS_EVERY = 10.0           # seconds between progress lines during a measurement
DATA_NOTE = ("images are random integers of each shape: the time of an update does not "
             "depend on the pixel values")
NOISE_NOTE = ("CPU absolute times vary 1.5-3x between runs on shared machines: compare the "
              "ratios within one run (compiled against eager, N processes against 1), not "
              "absolute figures across runs")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("what to measure")
    g.add_argument("--preset", type=csv(str), default=None,
                   help=f"comma-separated presets, from {','.join(PRESETS)} "
                        f"(default: {','.join(DEFAULT_PRESETS)})")
    g.add_argument("--shape", "--dataset-shape", type=csv(str), default=None,
                   help="image shape per preset: HxWxC (e.g. 28x28x1) or a data set name "
                        f"({', '.join(f'{k} {shape_text(v)}' for k, v in SHAPES.items())}); one "
                        "value for all presets or one per preset (default: "
                        + ", ".join(f"{k} {v}" for k, v in DEFAULT_SHAPE.items()) + ")")
    g.add_argument("--levels", type=int, default=256,
                   help="values per sub-pixel, the output's size (default 256)")
    g.add_argument("--modes", type=csv(str), default=None,
                   help="eager,compiled (default: both where torch.compile can run)")
    g.add_argument("--compile-backend", default="inductor",
                   help="torch.compile backend of the compiled mode (default inductor, as "
                        "pixelcnn.train --compile; 'eager' traces with dynamo only: the "
                        "compiled path's plumbing in seconds, not a speed figure)")
    g.add_argument("--procs", type=csv(int), default=None,
                   help="comma-separated process counts (default: 1, and all GPUs with >= 2; "
                        "on the CPU N > 1 only when asked)")
    g = p.add_argument_group("training step")
    g.add_argument("--batch-size", type=int, default=64,
                   help="the GLOBAL batch of one update, split across the processes "
                        "(default 64)")
    g.add_argument("--accumulate", type=int, default=1,
                   help="micro-batches per update (default 1)")
    g.add_argument("--steps", type=int,
                   help="timed updates per measurement (default: cpu "
                        f"{DEFAULTS['cpu']['steps']}, cuda {DEFAULTS['cuda']['steps']})")
    g.add_argument("--warmup-steps", type=int,
                   help="untimed updates first (compiled: they include the compilation; "
                        f"default: cpu {DEFAULTS['cpu']['warmup_steps']}, cuda "
                        f"{DEFAULTS['cuda']['warmup_steps']})")
    g.add_argument("--no-amp", action="store_true", help="no bf16 autocast on a GPU")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("device and output")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--threads", type=int,
                   help="torch CPU threads per process (default: torch's, one per core; "
                        "torchrun's 1 per rank under --procs N)")
    g.add_argument("--out", help="the JSON file, or a folder for it (default: a new "
                                 "bench/results/<UTC time>-<device>-train.json); an existing "
                                 "file is never replaced")
    g.add_argument("--worker", help=argparse.SUPPRESS)   # internal: a torchrun rank, JSON path
    return p


# ---------------------------------------------------------------------------- arguments

def shape_text(shape) -> str:
    return "x".join(map(str, shape))


def parse_shape(text: str) -> tuple:
    """'28x28x1' or a data set name -> (H, W, C); ValueError naming the value."""
    if text in SHAPES:
        return SHAPES[text]
    m = re.fullmatch(r"(\d+)x(\d+)x(\d+)", text)
    if not m:
        raise ValueError(f"--shape {text!r}: expected HxWxC (e.g. 28x28x1) or one of "
                         f"{', '.join(SHAPES)}")
    h, w, c = map(int, m.groups())
    if h < 1 or w < 1 or c not in (1, 3):
        raise ValueError(f"--shape {text}: H and W must be >= 1 and C 1 or 3")
    return h, w, c


def why_no_compile(device: torch.device, backend: str) -> str:
    """Why torch.compile cannot run here ('' when it can, as far as can be told up front)."""
    try:
        import torch._dynamo
        if not torch._dynamo.is_dynamo_supported():
            return f"torch.compile is not supported on Python {sys.version.split()[0]}"
    except Exception as e:                                     # noqa: BLE001 (any reason)
        return f"torch.compile is unavailable: {str(e).splitlines()[0]}"
    if backend != "inductor":
        return ""
    if device.type == "cpu" and not any(shutil.which(c) for c in
                                        (os.environ.get("CXX", "g++"), "c++", "clang++")):
        return "torch.compile (inductor) on the CPU needs a C++ compiler: none found"
    if device.type == "cuda":
        from torch.utils._triton import has_triton
        if not has_triton():
            return "torch.compile (inductor) on a GPU needs Triton: not installed"
    return ""


def check_args(args) -> dict:
    """Every option checked before any work: ValueError naming the bad one. Returns the plan:
    {"device", "configs": [(preset, (H, W, C))], "modes", "skipped_modes", "procs"}."""
    for flag in ("batch_size", "accumulate", "steps", "warmup_steps", "threads"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 1, got {v}")
    if args.levels < 2:
        raise ValueError(f"--levels must be >= 2, got {args.levels}")
    for flag in ("preset", "shape", "modes", "procs"):
        if getattr(args, flag) == []:
            raise ValueError(f"--{flag} needs at least one value")
    presets = args.preset or DEFAULT_PRESETS
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise ValueError(f"unknown --preset {','.join(unknown)}: choose from {','.join(PRESETS)}")
    shapes = args.shape or [DEFAULT_SHAPE.get(p, "cifar") for p in presets]
    if len(shapes) == 1:
        shapes = shapes * len(presets)
    if len(shapes) != len(presets):
        raise ValueError(f"--shape has {len(shapes)} values for {len(presets)} presets: give "
                         "one for all or one per preset")
    configs = [(p, parse_shape(s)) for p, s in zip(presets, shapes)]
    for p, shape in configs:
        try:
            preset(p, in_channels=shape[2], levels=args.levels)
        except ValueError as e:
            raise ValueError(f"--preset {p} at {shape_text(shape)}: {e}") from None
    device = resolve_device(args.device)
    for k, v in DEFAULTS[device.type].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    modes = args.modes or list(MODES)
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f"unknown --modes {','.join(bad)}: choose from {','.join(MODES)}")
    skipped_modes = {}
    if "compiled" in modes and args.compile_backend != "inductor":
        from torch._dynamo import list_backends
        if args.compile_backend not in list_backends(exclude_tags=()):
            raise ValueError(f"--compile-backend {args.compile_backend!r} is not a torch.compile "
                             "backend: e.g. inductor, eager, aot_eager (all: "
                             "torch._dynamo.list_backends(exclude_tags=()))")
    if "compiled" in modes:
        why = why_no_compile(device, args.compile_backend)
        if why and args.modes:
            raise ValueError(f"--modes compiled: {why}")
        if why:
            modes = [m for m in modes if m != "compiled"]
            skipped_modes["compiled"] = why
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    procs = args.procs or ([1, gpus] if gpus >= 2 else [1])
    procs = list(dict.fromkeys(procs))
    for n in procs:
        if n < 1:
            raise ValueError(f"--procs must be >= 1, got {n}")
        if n > 1 and not torch.distributed.is_available():
            raise ValueError(f"--procs {n}: this torch has no torch.distributed")
        if n > 1 and device.type == "cuda" and device.index is not None:
            raise ValueError(f"--procs {n} with --device {device}: give --device cuda (rank r "
                             "takes GPU r)")
        if device.type == "cuda" and n > gpus:
            raise ValueError(f"--procs {n}: this machine has {gpus} GPU(s)")
        if device.type == "cpu" and n > (os.cpu_count() or 1):
            raise ValueError(f"--procs {n}: this machine has {os.cpu_count()} CPU cores (more "
                             "processes than cores measure contention)")
        if args.batch_size < n * args.accumulate:
            raise ValueError(f"--batch-size {args.batch_size} is less than {n} process(es) x "
                             f"--accumulate {args.accumulate}: every process needs an image in "
                             "every micro-batch")
    if distributed.launched() and not args.worker:
        raise ValueError("run it without torchrun: it starts torchrun itself for --procs N")
    return {"device": device, "configs": configs, "modes": modes,
            "skipped_modes": skipped_modes, "procs": procs}


def out_path(args, device: torch.device) -> Path:
    """Where the JSON goes: --out (a file that must not exist, or a folder), else a new
    bench/results/<UTC time>-<device>-train.json; never an existing file."""
    name = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{device.type}-train.json"
    if args.out is None:
        return fresh(RESULTS / name)
    out = Path(args.out)
    if out.is_dir() or (not out.exists() and out.suffix != ".json"):
        return fresh(out / name)
    if out.exists():
        raise ValueError(f"--out {out} exists: the benchmark never replaces a file (give a "
                         "new name or a folder)")
    return out


# ---------------------------------------------------------------------------- measuring

@functools.lru_cache(maxsize=None)
def step_args():
    """The optimisation flags train_step reads, at `python -m pixelcnn.train`'s defaults
    (learning rate, schedule, warmup, clip)."""
    from pixelcnn.train import build_parser as train_parser
    defaults = train_parser().parse_args([])
    return argparse.Namespace(**{k: getattr(defaults, k)
                                 for k in ("lr", "schedule", "lr_decay", "warmup", "clip")})


def measure(preset_name: str, shape: tuple, mode: str, args, device: torch.device,
            world: World, log) -> dict:
    """One measurement: the preset's model at this shape, --warmup-steps untimed updates,
    then --steps timed ones. Every rank calls it; the record is rank 0's (the slowest rank's
    time)."""
    h, w, c = shape
    amp = device.type == "cuda" and not args.no_amp
    torch.manual_seed(args.seed)
    config = preset(preset_name, in_channels=c, levels=args.levels)
    model = build(config).to(device).train()
    compiled = mode == "compiled"
    if compiled:
        from torch import _dynamo
        _dynamo.reset()                  # no cache limits carried over between models
    inductor = args.compile_backend == "inductor"
    state = TrainState(model, 1e-3, device, world=world, compile=compiled and inductor)
    if compiled and not inductor:
        state.net = torch.compile(state.net, backend=args.compile_backend)
    batches = GlobalBatches(args.batch_size, args.batch_size, args.seed, args.accumulate, world)
    layout, mine = batches.layout(0), batches.indices(0)
    g = torch.Generator().manual_seed(args.seed)
    images = torch.randint(0, args.levels, (args.batch_size, c, h, w), generator=g)
    x, y = images[mine], torch.zeros(len(mine), dtype=torch.long)
    if device.type == "cuda":
        x = x.pin_memory()
    sargs, total = step_args(), args.warmup_steps + args.steps

    def run(k: int, what: str):
        t0, last = time.perf_counter(), time.perf_counter()
        for i in range(k):
            loss, _ = train_step(state, x, y, sargs, total, amp, layout)
            if time.perf_counter() - last > PROGRESS_EVERY:
                sync(device)
                last = time.perf_counter()
                log(f"    {what} {i + 1}/{k} ({last - t0:.0f} s)")
        sync(device)
        return time.perf_counter() - t0, loss

    if compiled:
        log(f"    compiling (the first of {args.warmup_steps} warmup updates)...")
    distributed.barrier()
    warm_s, _ = run(args.warmup_steps, "warmup update")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    distributed.barrier()
    timed_s, loss = run(args.steps, "timed update")
    seconds = max(distributed.gather(timed_s, world))           # the slowest rank
    warm_s = max(distributed.gather(warm_s, world))
    bpd = float(distributed.all_sum(loss))                       # the global batch's mean
    per_update = seconds / args.steps
    record = {
        "preset": preset_name, "shape": list(shape), "mode": mode,
        "compile_backend": args.compile_backend if compiled else None, "procs": world.size,
        "batch_size": args.batch_size, "per_rank_batch": len(mine),
        "accumulate": args.accumulate, "amp": amp, "device": device.type,
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": config.to_dict(), "warmup_steps": args.warmup_steps, "steps": args.steps,
        "seconds": seconds, "seconds_per_update": per_update,
        "images_per_s": args.batch_size / per_update, "warmup_seconds": warm_s,
        "compile_seconds": max(0.0, warm_s - args.warmup_steps * per_update) if compiled else None,
        "train_bpd_last": bpd,
    }
    if device.type == "cuda":
        record["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    del state, model
    if compiled:
        _dynamo.reset()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return record


def measure_all(plan: dict, args, device, world: World, log, clock, sink=None) -> tuple:
    """Every (preset, shape) x mode in this process (or this torchrun's ranks): (records,
    failures). In one process a measurement that raises (a compilation that fails, memory)
    is a failure, recorded, and the rest goes on; under torchrun the ranks stop there.
    sink(records, failures): called after each measurement."""
    records, failures = [], []
    for preset_name, shape in plan["configs"]:
        for mode in plan["modes"]:
            what = f"{preset_name} {shape_text(shape)} {mode}, {world.size} process(es)"
            log(f"{clock()} {what}: {args.warmup_steps} warmup + {args.steps} timed updates "
                f"of global batch {args.batch_size}")
            try:
                r = measure(preset_name, shape, mode, args, device, world, log)
            except Exception as e:                             # noqa: BLE001 (reported)
                if world.distributed:
                    raise
                first = str(e).splitlines()[0] if str(e) else ""
                failures.append({"preset": preset_name, "shape": list(shape), "mode": mode,
                                 "procs": world.size, "error": f"{type(e).__name__}: {first}"})
                log(f"    FAILED: {failures[-1]['error']}")
                if mode == "compiled":
                    from torch import _dynamo
                    _dynamo.reset()
                continue
            records.append(r)
            log(f"    {r['images_per_s']:.4g} images/s, {r['seconds_per_update']:.4g} s/update"
                + (f", compile {r['compile_seconds']:.1f} s" if r["compile_seconds"] is not None
                   else ""))
            if sink:
                sink(records, failures)
    return records, failures


def worker_args(args, plan: dict, n: int, path: Path) -> list:
    """The flags of a torchrun rank: this run's settings, N processes, rank 0's JSON path."""
    argv = ["--worker", str(path), "--procs", str(n),
            "--preset", ",".join(p for p, _ in plan["configs"]),
            "--shape", ",".join(shape_text(s) for _, s in plan["configs"]),
            "--modes", ",".join(plan["modes"]), "--compile-backend", args.compile_backend,
            "--levels", str(args.levels), "--batch-size", str(args.batch_size),
            "--accumulate", str(args.accumulate), "--steps", str(args.steps),
            "--warmup-steps", str(args.warmup_steps), "--seed", str(args.seed),
            "--device", plan["device"].type]
    if args.no_amp:
        argv.append("--no-amp")
    if args.threads:
        argv += ["--threads", str(args.threads)]
    return argv


def launch(args, plan: dict, n: int, log) -> tuple:
    """N ranks through torchrun (its output goes to ours: rank 0's progress). (records,
    failures) as rank 0 wrote them, and a failure for the whole run when torchrun fails."""
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        path = Path(tmp) / "rank0.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={n}", "-m", "bench.train", *worker_args(args, plan, n, path)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
        log(f"  torchrun: {' '.join(cmd[1:])}")
        sys.stdout.flush()
        done = subprocess.run(cmd, cwd=ROOT, env=env)
        out = json.loads(path.read_text()) if path.is_file() else {"records": [], "failures": []}
    if done.returncode != 0:
        out["failures"].append({"procs": n, "error": f"torchrun --nproc_per_node {n} exited "
                                f"with status {done.returncode} (its output is above)"})
        log(f"    FAILED: {out['failures'][-1]['error']}")
    return out["records"], out["failures"]


def worker(args, plan: dict):
    """One torchrun rank: join the group, measure, rank 0 writes (after every measurement,
    so a failure later still returns what finished)."""
    world, device = distributed.init(plan["device"])
    if world.size != plan["procs"][0]:
        raise ValueError(f"--worker expects {plan['procs'][0]} ranks, torchrun started "
                         f"{world.size}")
    start = time.perf_counter()
    clock = lambda: f"[{time.perf_counter() - start:.0f} s, {world.size} ranks]"
    log = (lambda line: print(line, flush=True)) if world.main else (lambda line: None)

    def sink(records, failures):
        if world.main:
            Path(args.worker).write_text(json.dumps({"records": records, "failures": failures}))
    try:
        sink(*measure_all(plan, args, device, world, log, clock, sink))
    finally:
        distributed.shutdown()


# ---------------------------------------------------------------------------- output

def table_rows(records: list) -> list:
    base = {(r["preset"], tuple(r["shape"])): r["images_per_s"] for r in records
            if r["mode"] == "eager" and r["procs"] == 1}
    rows = [("preset", "shape", "mode", "procs", "threads", "batch", "images/s", "s/update",
             "compile s", "vs eager x1")]
    for r in records:
        ref = base.get((r["preset"], tuple(r["shape"])))
        mode = r["mode"] if r["compile_backend"] in (None, "inductor") \
            else f"compiled:{r['compile_backend']}"
        rows.append((r["preset"], shape_text(r["shape"]), mode, str(r["procs"]),
                     str(r["threads"]), str(r["batch_size"]), report.fmt(r["images_per_s"], ".4g"),
                     report.fmt(r["seconds_per_update"], ".4g"),
                     report.fmt(r["compile_seconds"], ".1f"),
                     "n/a" if ref is None else f"{r['images_per_s'] / ref:.2f}x"))
    return rows


def order(records: list, plan: dict) -> list:
    """By (preset, shape) as asked, then mode, then processes."""
    key = lambda r: ([(p, list(s)) for p, s in plan["configs"]].index((r["preset"], r["shape"])),
                     MODES.index(r["mode"]), r["procs"])
    return sorted(records, key=key)


def describe_machine(device: torch.device, amp: bool) -> dict:
    m = machine(device, "bf16 autocast" if amp else "float32")
    m.update(cpu=cpu_name(), cores=os.cpu_count(),
             gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
             if torch.cuda.is_available() else [])
    return m


def main(argv=None) -> dict:
    start = time.perf_counter()
    clock = lambda: f"[{time.perf_counter() - start:.0f} s]"
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        plan = check_args(args)
        if args.worker:
            if len(plan["procs"]) != 1:
                raise ValueError("--worker takes one --procs value")
        else:
            out = out_path(args, plan["device"])
    except ValueError as e:
        fail(parser.prog, str(e))
    set_threads(args.threads)
    if args.worker:
        worker(args, plan)
        return {}
    device = plan["device"]
    amp = device.type == "cuda" and not args.no_amp
    log = lambda line: print(line, flush=True)
    mach = describe_machine(device, amp)
    shown = ", ".join(f"{p} {shape_text(s)}" for p, s in plan["configs"])
    log(f"settings: {shown} | modes {','.join(plan['modes'])} | processes "
        f"{','.join(map(str, plan['procs']))} | global batch {args.batch_size}"
        + (f" in {args.accumulate} micro-batches" if args.accumulate > 1 else "")
        + f" | {args.warmup_steps} warmup + {args.steps} timed updates | levels {args.levels}")
    log(machine_line(mach))
    for mode, why in plan["skipped_modes"].items():
        log(f"skipping {mode}: {why}")
    log(f"data: {DATA_NOTE}")
    log(f"note: {NOISE_NOTE}")
    records, failures = [], []
    if 1 in plan["procs"]:
        r, f = measure_all(plan, args, device, World(), log, clock)
        records, failures = records + r, failures + f
    for n in plan["procs"]:
        if n > 1:
            log(f"{clock()} {n} processes (torchrun, DDP, "
                f"{'NCCL' if device.type == 'cuda' else 'gloo'})")
            r, f = launch(args, plan, n, log)
            records, failures = records + r, failures + f
    records = order(records, plan)
    log("")
    log(report.table(table_rows(records)) if records else "no measurement finished")
    result = {"benchmark": "bench.train", "machine": mach,
              "notes": {"data": DATA_NOTE, "timing_noise": NOISE_NOTE},
              "settings": {k: v for k, v in vars(args).items() if k not in ("out", "worker")}
              | {"presets": [p for p, _ in plan["configs"]],
                 "shapes": [list(s) for _, s in plan["configs"]], "modes": plan["modes"],
                 "procs": plan["procs"], "amp": amp, "step": vars(step_args())},
              "skipped_modes": plan["skipped_modes"], "records": records, "failures": failures,
              "wall_seconds": round(time.perf_counter() - start, 1)}
    out.parent.mkdir(parents=True, exist_ok=True)
    report.write_json(result, out)
    log(f"\n{clock()} wrote {out}")
    for f in failures:
        log(f"FAILED: {f}")
    return result


if __name__ == "__main__":
    sys.exit(1 if main(sys.argv[1:]).get("failures") else 0)
