"""The incremental sampler in PyTorch (DESIGN.md §4): per-layer row and pixel caches
(pixelcnn.cache), so that each sub-pixel costs one pixel of the horizontal stacks instead of
a whole forward pass. `sample_rows` is the loop every incremental method runs, with its own
steps (PyTorch here, fused kernels for triton, C++ for native).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..cache import GatedCache, pixel_step, row_step
from ..packing import packed
from .common import Job, Method, gated_only, progress_bar


def sample_rows(job: Job, cache, rows, row_step=row_step, pixel_step=pixel_step):
    """Run the incremental sampler over image rows `rows` (all of them in order, over calls)."""
    for i in rows:
        sample_span(job, cache, i, range(job.x.shape[3]), row_step, pixel_step)


def sample_span(job: Job, cache, i: int, columns: range, row_step=row_step,
                pixel_step=pixel_step):
    """Row i's pixels `columns` (every span of a row in order, over calls), the row step first
    where the span starts the row."""
    x, u = job.x, job.uniforms
    _, C, _, W = x.shape
    if columns.start == 0:
        row_step(cache, x, i)
    for j in columns:
        pos = i * W + j
        if pos < job.start:
            if pos >= job.start - job.start % W:                    # the start row: prime
                pixel_step(cache, x, u, job.temperature, i, j, None)
            continue
        for c in range(C):
            pixel_step(cache, x, u, job.temperature, i, j, c)


@torch.no_grad()
def sample_cached(job: Job, progress: bool = False) -> torch.Tensor:
    n, C, H, W = job.shape
    cache = GatedCache(packed(job.model), job.model.condition(job.y, job.h),
                       job.cond_map).setup(n, H, W)
    with progress_bar(job, progress) as bar:
        for i in range(H):
            sample_rows(job, cache, [i])
            bar.update(C * max(0, min(W, (i + 1) * W - job.start)))
    return job.x


METHOD = Method("cached", gated_only, sample_cached)
