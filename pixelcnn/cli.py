"""What the command lines (train, evaluate, sample, bench.*) share: one-line errors, the
device, the scoring batch size, threads and output paths that never replace an earlier run.

Every command checks all of its options before any long work starts, and a bad value ends
the command with one line, `PROG: error: WHAT (see --help)`, not the usage block.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Optional

import torch

RUNS = Path("runs")     # default home of every output (git-ignored)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: a bad value is named, the usage block is not reprinted."""

    def error(self, message: str):
        # "argument --limit: must be >= 1, got 0" -> "--limit must be >= 1, got 0"
        fail(self.prog, re.sub(r"^argument (\S+): must be", r"\1 must be", message))


def fail(prog: str, message: str):
    """Print `prog: error: message` and exit with status 2 (argparse's status for bad usage)."""
    print(f"{prog}: error: {message} (see --help)", file=sys.stderr)
    raise SystemExit(2)


def at_least(minimum: int):
    """argparse type: an int >= minimum, with an error naming the value."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda when available, else cpu; ValueError for an unusable device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"bad --device {name!r}: {e}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name}: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine (use cpu)")
    if device.type == "cuda" and device.index is not None \
            and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} "
                         "CUDA device(s)")
    return device


def eval_batch_size(device: torch.device) -> int:
    """Images per forward pass when scoring, by default: 256 on a GPU, 32 on a CPU. On a CPU,
    larger activations exceed glibc's 32 MB mmap ceiling and are mapped and unmapped on
    every op: at 256 page faults took half the time (2x slower than 32 on 2 cores)."""
    return 256 if device.type == "cuda" else 32


def set_threads(threads: Optional[int]):
    """torch's CPU threads (None: torch's default, one per core)."""
    if threads:
        torch.set_num_threads(threads)


def fresh(path: Path, siblings=()) -> Path:
    """path if nothing exists there, else the first free `stem-2.suffix`, `stem-3.suffix`, ...
    Default outputs go through this, so a second run never replaces the first one's files.
    siblings: other suffixes written beside it (".npz"), which must be free too."""
    path = candidate = Path(path)
    k = 2
    while candidate.exists() or any(candidate.with_suffix(s).exists() for s in siblings):
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
        k += 1
    return candidate
