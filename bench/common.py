"""What the benchmarks share: the machine line, the model (the shipped default checkpoint),
which sampling methods can run and why not, the test data, list flags and a timer.

Kept apart from the CLI so that tests and other benchmarks (bench/native_cpu.py) can reuse it.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
import warnings
from pathlib import Path
from typing import Optional

import torch

import pixelcnn
from pixelcnn.sampling import METHODS, why_unavailable

ROOT = Path(__file__).resolve().parent.parent                  # the repository
SHARED_DATA = ROOT.parent / "shared" / "datasets"              # the offline copies, if present
DEFAULT_CHECKPOINTS = {"cifar": ROOT / "checkpoints" / "cifar.pt",
                       "binarized-mnist": ROOT / "checkpoints" / "binarized-mnist.pt"}
# Models benchmarked with random weights (throughput does not depend on them): the shapes
# users sample. vqvae-prior: the PixelCNN prior over a VQ-VAE's 32 x 32 map of K = 512 codes,
# class-conditional, with a learned code embedding (the common VQ-VAE repositories' setup).
RANDOM_MODELS = {
    "vqvae-prior": (dict(in_channels=1, levels=512, embedding_dim=64, num_classes=10,
                         channels=128, layers=12, kernel_size=5), (32, 32)),
}
DTYPES = {"float32": torch.float32, "bf16": torch.bfloat16}
TEST_SETS = {   # data set -> the test splits to score it on, in order of preference
    "cifar": ["cifar", "cifar-exact"],   # real CIFAR-10 only when verified, else the exact subset
}
DESCRIPTIONS = {"cifar": "CIFAR-10 test",
                "cifar-exact": "CIFAR-10 test, exact subset of {n} images",
                "mnist": "MNIST test", "fashion-mnist": "Fashion-MNIST test",
                "binarized-mnist": "binarized MNIST test"}


# ---------------------------------------------------------------------------- machine

def commit() -> str:
    """The checkout's commit (with -dirty when tracked files are modified), or 'unknown'."""
    try:
        return subprocess.check_output(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                                       text=True, stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


TIMING_ENV = ("PIXELCNN_GRID_PERSISTENT", "PIXELCNN_GRID_BK", "PIXELCNN_GRID_STAGES",
              "PIXELCNN_GRID_POLL", "PIXELCNN_GRID_PDL", "PIXELCNN_GRID_SPLIT",
              "PIXELCNN_GRID_AHEAD", "PIXELCNN_GRID_PREFETCH", "PIXELCNN_GRID_GROUPS",
              "PIXELCNN_GRID_HEAD", "PIXELCNN_GRID_SUB_BATCHES",
              "NVIDIA_TF32_OVERRIDE",
              "TRITON_INTERPRET")


def machine(device: torch.device, dtype: str) -> dict:
    """Everything a timing depends on: device, library versions, commit, threads, dtype, and
    the environment variables that change what runs (TIMING_ENV, those set)."""
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" \
        else f"{cpu_name()} ({os.cpu_count()} cores)"
    env = {k: os.environ[k] for k in TIMING_ENV if k in os.environ}
    return {"device": device.type, "device_name": name, "torch": str(torch.__version__),
            "triton": triton_version, "python": platform.python_version(), "commit": commit(),
            "threads": torch.get_num_threads(), "dtype": dtype, "env": env,
            "grid_phases": grid_phases()}


def grid_phases():
    """The design of triton-grid's pixel step that a timing ran: its phases per sub-pixel
    (kernels/sampler_pixel_grid.GRID_PHASES; bench.roofline models each design), None
    without Triton."""
    try:
        from pixelcnn.kernels.sampler_pixel_grid import GRID_PHASES
    except ImportError:
        return None
    return GRID_PHASES


def machine_line(m: dict) -> str:
    env = "".join(f" | {k}={v}" for k, v in m.get("env", {}).items())
    design = f" | triton-grid phases {m['grid_phases']}" if m.get("grid_phases") else ""
    return (f"machine: {m['device']} ({m['device_name']}) | torch {m['torch']} | triton "
            f"{m['triton'] or 'not installed'} | commit {m['commit']} | threads {m['threads']}"
            f"{design}{env} | {m['dtype']}")


# ---------------------------------------------------------------------------- model

def load_model(checkpoint: Optional[str], dataset: Optional[str], device, dtype: str,
               ema: bool = True):
    """(model in eval mode on device and dtype, metadata, path). Without a checkpoint: the
    shipped model of the data set; ValueError saying what to do when there is none. The EMA
    weights of a checkpoint trained with --ema unless ema=False (metadata["weights"])."""
    if checkpoint is None and dataset in RANDOM_MODELS:
        fields, size = RANDOM_MODELS[dataset]
        torch.manual_seed(0)
        model = pixelcnn.build(pixelcnn.preset("small", **fields))
        meta = {"dataset": dataset, "image_size": list(size), "weights": "random (seed 0)"}
        return model.to(device=device, dtype=DTYPES[dtype]).eval(), meta, Path(f"random:{dataset}")
    if checkpoint is None:
        name = dataset or "cifar"
        path = DEFAULT_CHECKPOINTS.get(name)
        if path is None or not path.is_file():
            shipped = ", ".join(f"{k} ({v.relative_to(ROOT)})" for k, v in
                                DEFAULT_CHECKPOINTS.items() if v.is_file()) or "none"
            raise ValueError(
                f"no shipped model for --dataset {name} (shipped: {shipped}"
                f"{'' if path is None else ', but ' + str(path) + ' is missing'}): pass "
                f"--checkpoint PATH, e.g. one trained with `python -m pixelcnn.train --dataset "
                f"{name} --preset small --epochs 1` (runs/.../checkpoint.pt)")
    else:
        path = Path(checkpoint)
    model, meta = pixelcnn.load(path, map_location=device, return_metadata=True, ema=ema)
    cfg = model.config
    if cfg.cond_dim:
        raise ValueError(f"{path}: the benchmark samples unconditional and class-conditional "
                         f"models; this one needs a vector h (cond_dim={cfg.cond_dim})")
    return model.to(DTYPES[dtype]).eval(), meta, path


def model_info(model, meta: dict, path: Path) -> dict:
    """What the results record about the model: file, config, size, training metadata."""
    keep = ("dataset", "image_size", "epoch", "epochs", "train_command", "test_bits_per_dim",
            "data_verified", "training_data", "weights")
    try:
        shown = str(path.resolve().relative_to(ROOT))
    except ValueError:
        shown = str(path)
    return {"checkpoint": shown, "config": model.config.to_dict(),
            "parameters": sum(p.numel() for p in model.parameters()),
            **{k: meta[k] for k in keep if k in meta}}


def labels(model, n: int) -> Optional[torch.Tensor]:
    """Class labels for n samples of a class-conditional model (cycling), else None."""
    k = model.config.num_classes
    return torch.arange(n, device=model.device) % k if k else None


# ---------------------------------------------------------------------------- methods

def select_methods(model, requested: Optional[list], default: list):
    """(methods to run, naive first; {method: reason} skipped). Requested methods must exist
    and be available (ValueError saying why not); default ones are skipped with a reason."""
    names = requested or default
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}: choose from {list(METHODS)}")
    run, skipped = ["naive"], {}
    for m in names:
        reason = why_unavailable(model, m)
        if reason and requested:
            raise ValueError(f"--methods {m}: not available here: {reason}")
        if reason:
            skipped[m] = reason
        elif m not in run:
            run.append(m)
    return run, skipped


# ---------------------------------------------------------------------------- data

def _load(name, root, levels, image_size, download):
    from pixelcnn.data import load_dataset
    with warnings.catch_warnings():              # an md5 mismatch: recorded as data_verified
        warnings.simplefilter("ignore")
        return load_dataset(name, "test", root, levels=levels, image_size=image_size,
                            download=download)


def test_data(dataset: str, data_dir: Optional[str], levels: int, image_size: Optional[int],
              download: bool):
    """(test ImageDataset or None, reason when None). Looks under --data-dir (else
    $PIXELCNN_DATA, else ./data), then ../shared/datasets; CIFAR-10 is scored on the real test
    set only when its md5s match, else on the exact subset, never on the stand-in."""
    from pixelcnn.data import DataUnavailable, canonical, data_root
    if dataset in RANDOM_MODELS:
        return None, f"{dataset} is benchmarked with random weights: no test data to score"
    name = canonical(dataset)
    roots = [data_root(data_dir)]
    if SHARED_DATA.is_dir() and SHARED_DATA.resolve() != roots[0].resolve():
        roots.append(SHARED_DATA)
    reasons = []
    for candidate in TEST_SETS.get(name, [name]):
        for i, root in enumerate(roots):
            try:
                data = _load(candidate, root, levels, image_size, download and i == 0)
            except DataUnavailable as e:
                what = str(e).splitlines()[0].split(" not found under")[0]
                reasons.append(f"{what} not found in {root}")
                continue
            except ValueError as e:
                reasons.append(str(e).splitlines()[0])
                continue
            if candidate == "cifar" and not data.data_verified:
                reasons.append(f"{root}: CIFAR-10 there is the unverified stand-in (md5 "
                               "mismatch): its bits/dim is not a CIFAR-10 result")
                continue
            return data, ""
    hint = " Build CIFAR-10's exact subset with `python ../shared/datasets/cifar10/" \
           "build_cifar10.py data`." if name == "cifar" else ""
    return None, "no test data: " + "; ".join(dict.fromkeys(reasons)) + "." + hint


def describe_data(data, used: Optional[int] = None) -> str:
    """e.g. 'cifar-exact (CIFAR-10 test, exact subset of 1017 images)', with '; the first
    N' when only `used` of them are scored."""
    what = DESCRIPTIONS.get(data.name, f"{data.name} test").format(n=len(data))
    if used is not None and used < len(data):
        what += f"; the first {used}"
    return f"{data.name} ({what})"


# ---------------------------------------------------------------------------- flags

def csv(kind):
    """argparse type: comma-separated values of kind, with a clear error."""
    def parse(text):
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, "
                                             f"got {text!r}") from None
    return parse


# ---------------------------------------------------------------------------- timing

def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device):
    """(seconds, result) of fn(), the device synchronized before and after."""
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t, out
