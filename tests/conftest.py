"""Shared test setup: Triton's interpreter when there is no GPU, and model helpers."""
import math
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

import pixelcnn  # noqa: E402


def randomize(model: torch.nn.Module, seed: int = 0, gain: float = 1.0) -> torch.nn.Module:
    """Random non-zero weights (the initialisation alone can hide a leak: e.g. zero biases)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            std = gain / math.sqrt(fan_in) if p.dim() > 1 else 0.1
            if "class_embed" in name:
                std = 0.5
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)
    return model


def make_model(kind="gated", dtype=torch.float64, seed=0, gain=1.0, **cfg):
    """A model from config fields (the tiny preset by default) with random weights."""
    config = pixelcnn.preset("tiny", **{"model": kind, **cfg})
    model = pixelcnn.build(config).to(dtype)
    return randomize(model, seed, gain).eval()


def conditioning(model, batch, seed=0):
    """Random y / h for whatever the model is conditioned on."""
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    y = torch.randint(0, cfg.num_classes, (batch,), generator=g) if cfg.num_classes else None
    h = torch.randn(batch, cfg.cond_dim, generator=g, dtype=model.dtype) \
        if cfg.cond_dim and cfg.model != "autoencoder" else None
    return y, h


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)
