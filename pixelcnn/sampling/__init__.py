"""Samplers with one signature: `naive` (the reference), `cached` (incremental, PyTorch),
`triton` (incremental, fused kernels, CUDA graph) and `native` (incremental, C++)."""
from __future__ import annotations

import torch

from .common import Job, check_model, full_precision, inverse_cdf, prepare

METHODS = ("naive", "cached", "triton", "native")


def _check_method(model, method) -> str:
    """The method that samples `model` ("auto": the fastest available), checked before any
    work: a ValueError naming the method and why it cannot sample this model here."""
    from ..models import GatedPixelCNN, PixelCNNAutoencoder, check_triton
    from . import native
    if not isinstance(method, str) or method not in METHODS + ("auto",):
        raise ValueError(f"method must be one of {METHODS + ('auto',)}, got {method!r}")
    if method == "auto":
        return available_methods(model)[0]
    net = model.decoder if isinstance(model, PixelCNNAutoencoder) else model
    if method != "naive" and not isinstance(net, GatedPixelCNN):
        raise ValueError(f"method={method!r} samples GatedPixelCNN models only; "
                         f"a {type(net).__name__} samples with method='naive'")
    if method == "triton":
        check_triton("method='triton'", net.device, net.dtype, "method='cached' (or 'auto')")
    if method == "native" and not native.available(net):
        if net.device.type != "cpu" or net.dtype not in native.DTYPES:
            raise ValueError(f"method='native' samples float32 or float64 models on the CPU, "
                             f"got a {net.dtype} model on {net.device}; use method='cached' "
                             "(or 'auto')")
        native.operator()      # the library did not load: a RuntimeError saying how to build it
    return method


def _run(method: str, job: Job, progress: bool) -> torch.Tensor:
    if method == "naive":
        from .naive import sample_naive
        return sample_naive(job, progress)
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
    check_model(model)
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
            job = prepare(model, n, size, y, h, uniforms, generator, temperature, x0, start)
            return _run(method, job, progress)
    finally:
        model.train(was_training)
