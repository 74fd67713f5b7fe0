"""Fused Triton kernels, each beside its PyTorch reference (reference.py).

Importing this package does not import Triton (the kernels' modules do, when first used), so
the package loads on machines without a GPU. It provides the models' fused forward
(backend="triton"): see `pixelcnn.models.Providers`.
"""
import os

import torch

from pixelcnn import models
from pixelcnn.packing import packed

from .gated_pixelcnn import gated_forward


def interpreting() -> bool:
    """Whether Triton runs in its CPU interpreter (TRITON_INTERPRET=1, as in the tests)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


class DeviceError(ValueError, RuntimeError):
    """The model or its inputs are on a device that cannot run what was asked. A ValueError, as
    for every bad argument; also a RuntimeError, which the kernels' own device check raised
    before the entry points checked up front, so code catching that still does."""


def check_triton(what: str, device: torch.device, dtype: torch.dtype, instead: str):
    """Raise unless the fused Triton kernels can run on tensors of `device` and `dtype`: they
    need a CUDA GPU (on a CPU only Triton's interpreter runs them, TRITON_INTERPRET=1, as in
    the tests) and float32 or bfloat16. `what` names the request ("backend='triton'"),
    `instead` the alternative to suggest."""
    if device.type != "cuda" and not interpreting():
        raise DeviceError(f"{what} runs on CUDA tensors only, got {device.type} ones: move the "
                          f"model and its inputs to cuda, or use {instead} (on a CPU the kernels "
                          "run only in Triton's interpreter: set TRITON_INTERPRET=1 before "
                          "importing pixelcnn; slow)")
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"{what} takes float32 or bfloat16 models only, got a {dtype} model; "
                         f"use {instead}")


def fused_forward(model, u: torch.Tensor, cond):
    """A GatedPixelCNN's forward on the fused kernels (its backend="triton")."""
    return gated_forward(packed(model), u, cond)


models.PROVIDERS.fused_forward = fused_forward
models.PROVIDERS.check_fused = check_triton
