"""Samplers with one signature, in one registry: `naive` (the reference), `cached`
(incremental, PyTorch), `triton` (incremental, fused kernels, CUDA graph) and `native`
(incremental, C++). Each module declares its `METHOD` (common.Method): when it can sample a
model, and how. `sample`, `available_methods`, the command lines and the benchmark all read
REGISTRY; nothing else knows which methods exist.
"""
from __future__ import annotations

import torch

from .. import models
from ..models import PixelCNNAutoencoder
from . import cached, naive, native, triton
from .common import Job, Method, check_model, full_precision, prepare

REGISTRY = {m.name: m for m in (naive.METHOD, cached.METHOD, triton.METHOD, native.METHOD,
                                triton.GRID_METHOD)}
METHODS = tuple(REGISTRY)              # ("naive", "cached", "triton", "native", "triton-grid")
# auto: the first available. triton-grid first: on the H200 2.7x triton at batch 1 and 2.3x
# at 256 (bf16; bench/results/h200-20261126-fold), its steps within float32's rounding of the
# PyTorch steps once its layer-0 tap was fixed (bench.lockstep); triton stays selectable.
FASTEST_FIRST = ("triton-grid", "triton", "native", "cached", "naive")


def _net(model):
    """What samples: an autoencoder's decoder, else the model."""
    return model.decoder if isinstance(model, PixelCNNAutoencoder) else model


def why_unavailable(model, method: str) -> str:
    """Why `method` cannot sample `model` where it lives ('' when it can)."""
    check_model(model)
    return REGISTRY[method].unavailable(_net(model))


def available_methods(model) -> list:
    """The methods that can sample this model on its device, fastest first."""
    return [m for m in FASTEST_FIRST if not why_unavailable(model, m)]


def _check_method(model, method) -> str:
    """The method that samples `model` ("auto": the fastest available), checked before any
    work: an error naming the method and why it cannot sample this model here."""
    if not isinstance(method, str) or method not in METHODS + ("auto",):
        raise ValueError(f"method must be one of {METHODS + ('auto',)}, got {method!r}")
    if method == "auto":
        return available_methods(model)[0]
    REGISTRY[method].require(_net(model))
    return method


@torch.no_grad()
def sample(model, n, size=(32, 32), *, y=None, h=None, cond_map=None, method="cached",
           uniforms=None, generator=None, temperature=1.0, x0=None, start=0,
           progress=False) -> torch.Tensor:
    """Draw n images [n, C, H, W] (long, in [0, levels)) from a PixelCNN.

    Sub-pixels are drawn in raster order, R -> G -> B inside a pixel, by the inverse CDF:
    sub-pixel (c, i, j) of image b takes #{v : cdf(v) < uniforms[b, c, i, j]} under
    softmax(logits / temperature). The uniforms (float [n, C, H, W] in [0, 1)) are drawn up
    front from `generator` unless given, so every method returns the same images for the
    same model and uniforms (up to float rounding exactly at a CDF boundary).

    method: "naive" (one forward pass per sub-pixel: the reference), "cached" (incremental
    caches, PyTorch), "triton" (fused kernels in a CUDA graph), "native" (C++), or "auto"
    (the fastest available). y: class labels [n]; h: conditioning vectors [n, cond_dim] (for
    an autoencoder: its code); cond_map: the conditioning map [n, D, H, W] of a model with
    cond_channels (location-dependent, e.g. an upsampled top-level code map). Completion: raster pixels < start are copied from x0
    [n, C, H, W] and the rest is sampled. progress: show a progress bar.

    Every method runs with TF32 off (see `full_precision`), so that float32 models sample
    the same images on a GPU as the exact float32 reference. Bad arguments raise a ValueError
    naming the argument, the model first, then the method, then the rest.
    """
    check_model(model)
    method = _check_method(model, method)
    was_training = model.training
    model.eval()
    try:
        with full_precision():
            job = prepare(model, n, size, y, h, uniforms, generator, temperature, x0, start,
                          cond_map)
            return REGISTRY[method].sample(job, progress)
    finally:
        model.train(was_training)


models.PROVIDERS.sample = sample      # PixelCNNAutoencoder.reconstruct samples with it
