"""Writing integer images as PNG grids (training samples, the sampling CLI, benchmarks)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
import torch


def to_uint8(images: torch.Tensor, levels: int) -> torch.Tensor:
    """Sub-pixels in [0, levels) -> uint8 in [0, 255] (0 -> 0, levels - 1 -> 255)."""
    return (images.long().clamp(0, levels - 1) * 255 // (levels - 1)).to(torch.uint8)


def make_grid(images: torch.Tensor, levels: int, nrow: Optional[int] = None, pad: int = 2,
              pad_value: int = 128) -> np.ndarray:
    """images [N, C, H, W] (C = 1 or 3) -> one uint8 array [rows*(H+pad)+pad, ..., C], nrow
    images per row (default: a square-ish grid)."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be [N, 1 or 3, H, W], got {list(images.shape)}")
    n, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / nrow))
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), pad_value, np.uint8)
    pixels = to_uint8(images.detach().cpu(), levels).permute(0, 2, 3, 1).numpy()   # [N, H, W, C]
    for k in range(n):
        r, q = divmod(k, nrow)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[top:top + h, left:left + w] = pixels[k]
    return grid


def save_grid(images: torch.Tensor, path, levels: int, nrow: Optional[int] = None, pad: int = 2,
              pad_value: int = 128) -> Path:
    """Write images [N, C, H, W] (integers in [0, levels)) to path as one PNG grid."""
    from PIL import Image
    grid = make_grid(images, levels, nrow, pad, pad_value)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path)
    return path
