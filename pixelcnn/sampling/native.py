"""The cached sampler's loop in C++ (csrc/, built by CMakeLists.txt): no Python and no per-op
dispatch between sub-pixels, for sampling on CPUs.

The library registers the torch operator `pixelcnn_native::sample_rows`, which runs rows of
the same algorithm as `cached` on the same packed weights and `GatedCache` buffers (this
module sets them up), the batch split over torch's threads. It is optional: `pip install`
builds it when CMake, a compiler and torch are at hand (see setup.py), and without it
`method="native"` raises `BUILD_HINT` while `method="auto"` skips it.
"""
from __future__ import annotations

import functools
import os
from dataclasses import replace
from pathlib import Path

import torch

from ..cache import GatedCache
from ..packing import packed
from .common import Job, Method, gated_only, progress_bar

LIBRARY = Path(__file__).with_name("libpixelcnn_native.so")
BUILD_HINT = (
    "method='native' needs the C++ extension, which is not built. Build it from the "
    "repository root with\n"
    "    cmake -S . -B build/native -DCMAKE_PREFIX_PATH=\"$(python -c 'import torch; "
    "print(torch.utils.cmake_prefix_path)')\" && cmake --build build/native -j\n"
    f"which writes {LIBRARY.name} into pixelcnn/sampling/ (or reinstall: "
    "PIXELCNN_BUILD_NATIVE=1 pip install -e .); or use method='cached' or 'auto'.")
DTYPES = (torch.float32, torch.float64)


def library_path() -> Path:
    """The shared library: $PIXELCNN_NATIVE_LIB if set, else the one beside this module."""
    return Path(os.environ.get("PIXELCNN_NATIVE_LIB") or LIBRARY)


@functools.cache
def _load(path: Path):
    if not path.is_file():
        raise RuntimeError(f"{BUILD_HINT}\n(looked for {path})")
    try:
        torch.ops.load_library(str(path))
    except OSError as e:       # e.g. built against another torch: rebuild
        raise RuntimeError(f"{BUILD_HINT}\n(could not load {path}: {e})") from e
    return torch.ops.pixelcnn_native.sample_rows


def operator():
    """`torch.ops.pixelcnn_native.sample_rows`, loading the library on first use."""
    return _load(library_path())


def unavailable(model) -> str:
    """'' for a float32 or float64 GatedPixelCNN on the CPU with the library built."""
    why = gated_only(model)
    if why:
        return why
    if model.device.type != "cpu" or model.dtype not in DTYPES:
        return f"samples float32 or float64 models on the CPU, got a {model.dtype} model on " \
               f"{model.device}"
    try:
        operator()
    except RuntimeError:
        return "the C++ extension is not built (pip install -e . with CMake and a compiler)"
    return ""


def check(model):
    """ValueError for the model; the library not built is a RuntimeError with the build hint."""
    why = unavailable(model)
    if why and not why.startswith("the C++ extension"):
        raise ValueError(f"method='native' {why}; use method='cached' (or 'auto')")
    operator()


def sample_rows(job: Job, cache: GatedCache, rows: range):
    """Run the incremental sampler over image rows `rows` (contiguous, all of them in order over
    calls) in C++, as `cached.sample_rows` does in PyTorch, on the same cache (its conditioning
    map included)."""
    w = cache.w
    wmap, cond_map = (w.wmap, cache.cond_map) if cache.cond_map is not None else \
        (w.wv.new_empty(0),) * 2                # no map: the operator takes empty tensors
    operator()(w.wv, w.wlink, w.wh_prev, w.wh_cur, w.wres, w.bres, w.wskip, w.bskip, w.w1, w.b1,
               w.w2, w.b2, w.table, wmap, cache.bias_v, cache.bias_h, cond_map, cache.vbuf,
               cache.v_pre, cache.row_bias, cache.hbuf, cache.base, cache.gated, job.x,
               job.uniforms, job.temperature, job.start, rows.start, rows.stop)


@torch.no_grad()
def sample_native(job: Job, progress: bool = False) -> torch.Tensor:
    model = job.model
    job = replace(job, x=job.x.contiguous(), uniforms=job.uniforms.contiguous())
    n, C, H, W = job.shape
    cache = GatedCache(packed(model), model.condition(job.y, job.h),
                       job.cond_map).setup(n, H, W)
    step = 1 if progress else H                # one call for the whole image unless reporting
    with progress_bar(job, progress) as bar:
        for i in range(0, H, step):
            rows = range(i, min(H, i + step))
            sample_rows(job, cache, rows)
            bar.update(C * max(0, rows.stop * W - max(i * W, job.start)))
    return job.x


METHOD = Method("native", unavailable, sample_native, check)
