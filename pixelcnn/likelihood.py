"""Likelihood in bits per dimension (bits per sub-pixel), the paper's figure of merit."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def bits_per_dim(logits: torch.Tensor, x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Negative log2-likelihood per sub-pixel.

    logits: [B, levels, C, H, W]; x: integer [B, C, H, W]. reduction "mean" gives one number
    over the batch, "none" one per image [B] (for standard errors), "sum" the batch total.
    Computed in float32 or better, whatever the logits' dtype.
    """
    for name, t in (("logits", logits), ("x", x)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"bits_per_dim: {name} must be a torch.Tensor, got "
                             f"{type(t).__name__}")
    if logits.dim() != 5 or x.dim() != 4 or logits.shape[0] != x.shape[0] \
            or logits.shape[2:] != x.shape[1:]:
        raise ValueError(f"bits_per_dim: logits must be [B, levels, C, H, W] and x [B, C, H, W] "
                         f"with matching sizes, got {list(logits.shape)} and {list(x.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"bits_per_dim: logits must be floats, got dtype {logits.dtype}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"bits_per_dim: x must be integer sub-pixels, got dtype {x.dtype}")
    if reduction not in ("mean", "none", "sum"):
        raise ValueError(f"bits_per_dim: reduction must be 'mean', 'none' or 'sum', got "
                         f"{reduction!r}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    nll = F.cross_entropy(logits, x.long(), reduction="none")       # [B, C, H, W], nats
    per_image = nll.flatten(1).mean(1) / math.log(2)
    if reduction == "none":
        return per_image
    return per_image.mean() if reduction == "mean" else per_image.sum()
