"""Test setup: Triton's interpreter when there is no GPU, set before anything imports
pixelcnn (pytest loads this file before the test modules). Shared helpers live in helpers.py,
the on-disk data sets in datafixtures.py."""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from helpers import BackgroundCompile  # noqa: E402  (after TRITON_INTERPRET, as every import)


def pytest_collection_modifyitems(config, items):
    """Where tests/test_compile.py's compile check (minutes of CPU) is selected, start it now
    in the background and move its tests last: the rest of the suite runs beside it on
    another core (CI has two). Alone, it takes every core."""
    later = [item for item in items if item.path.name == "test_compile.py"]
    if any("tiny" in item.fixturenames for item in later):
        cores = os.cpu_count() or 1
        jobs = cores if len(later) == len(items) else max(1, cores - 1)
        config.stash[BackgroundCompile.KEY] = BackgroundCompile(jobs)
        items[:] = [item for item in items if item.path.name != "test_compile.py"] + later


def pytest_unconfigure(config):
    background = config.stash.get(BackgroundCompile.KEY, None)
    if background:
        background.close()
