"""Samplers with one signature: `naive` (the reference), `cached` (incremental, PyTorch),
`triton` (incremental, fused kernels, CUDA graph) and `native` (incremental, C++)."""
from __future__ import annotations

import torch

from .common import Job, inverse_cdf, prepare

METHODS = ("naive", "cached", "triton", "native")


def _run(method: str, job: Job, progress: bool) -> torch.Tensor:
    from ..models import GatedPixelCNN
    if method == "naive":
        from .naive import sample_naive
        return sample_naive(job, progress)
    if not isinstance(job.model, GatedPixelCNN):
        raise ValueError(f"method={method!r} samples GatedPixelCNN models only; "
                         f"a {type(job.model).__name__} samples with method='naive'")
    if method == "cached":
        from .cached import sample_cached
        return sample_cached(job, progress)
    if method == "triton":
        from .triton import sample_triton
        return sample_triton(job, progress)
    from .native import sample_native
    return sample_native(job, progress)


def available_methods(model) -> list:
    """The methods that can sample this model on its device, fastest first."""
    from ..models import GatedPixelCNN, PixelCNNAutoencoder
    from . import native, triton
    if isinstance(model, PixelCNNAutoencoder):
        model = model.decoder
    if not isinstance(model, GatedPixelCNN):
        return ["naive"]
    fused = [m for m, mod in (("triton", triton), ("native", native)) if mod.available(model)]
    return fused + ["cached", "naive"]


@torch.no_grad()
def sample(model, n, size=(32, 32), *, y=None, h=None, method="cached", uniforms=None,
           generator=None, temperature=1.0, x0=None, start=0, progress=False) -> torch.Tensor:
    """Draw n images [n, C, H, W] (long, in [0, levels)) from a PixelCNN.

    Sub-pixels are drawn in raster order, R -> G -> B inside a pixel, by the inverse CDF:
    sub-pixel (c, i, j) of image b takes #{v : cdf(v) < uniforms[b, c, i, j]} under
    softmax(logits / temperature). The uniforms (float [n, C, H, W] in [0, 1)) are drawn up
    front from `generator` unless given, so every method returns the same images for the
    same model and uniforms (up to float rounding exactly at a CDF boundary).

    method: "naive" (one forward pass per sub-pixel: the reference), "cached" (incremental
    caches, PyTorch), "triton" (fused kernels in a CUDA graph), "native" (C++), or "auto"
    (the fastest available). y: class labels [n]; h: conditioning vectors [n, cond_dim] (for
    an autoencoder: its code). Completion: raster pixels < start are copied from x0
    [n, C, H, W] and the rest is sampled. progress: show a progress bar.
    """
    was_training = model.training
    model.eval()
    try:
        if method == "auto":
            method = available_methods(model)[0]
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS + ('auto',)}, got {method!r}")
        job = prepare(model, n, size, y, h, uniforms, generator, temperature, x0, start)
        return _run(method, job, progress)
    finally:
        model.train(was_training)
