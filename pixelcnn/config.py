"""Frozen dataclass configs and named presets.

A `ModelConfig` fully describes an architecture: it is stored in every checkpoint and is
all `pixelcnn.build` needs to recreate the model.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

MODEL_KINDS = ("gated", "pixelcnn", "autoencoder")
OPTIONAL_FIELDS = ("num_classes", "cond_dim", "embedding_dim", "cond_channels")  # None: off


@dataclass(frozen=True)
class ModelConfig:
    model: str = "gated"              # "gated" | "pixelcnn" | "autoencoder"
    in_channels: int = 3              # 1 (grey) or 3 (R, G, B)
    levels: int = 256                 # values per sub-pixel (2 for binarized MNIST)
    channels: int = 192               # hidden channels per stack, split into colour groups
    layers: int = 15                  # gated layers, the first one with mask A
    kernel_size: int = 5              # odd; vertical stack ceil(k/2) x k, horizontal 1 x ceil(k/2)
    num_classes: Optional[int] = None # class conditioning (input y)
    cond_dim: Optional[int] = None    # vector conditioning (input h); the code size for "autoencoder"
    embedding_dim: Optional[int] = None   # learned input embedding: a [levels, E] table per
                                      # channel (codes); None: the scalar 2x/(levels-1) - 1 (images)
    cond_channels: Optional[int] = None   # location-dependent conditioning: a map [B, D, H, W]

    def __post_init__(self):
        def bad(what):
            raise ValueError(f"ModelConfig: {what}")
        if self.model not in MODEL_KINDS:
            bad(f"model must be one of {MODEL_KINDS}, got {self.model!r}")
        for f in dataclasses.fields(self)[1:]:      # every field after `model` is an integer
            value = getattr(self, f.name)
            if value is None and f.name in OPTIONAL_FIELDS:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                bad(f"{f.name} must be an integer, got {value!r}")
        if self.in_channels not in (1, 3):
            bad(f"in_channels must be 1 or 3, got {self.in_channels}")
        if self.levels < 2:
            bad(f"levels must be >= 2, got {self.levels}")
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            bad(f"kernel_size must be odd and >= 3, got {self.kernel_size}")
        if self.layers < 1:
            bad(f"layers must be >= 1, got {self.layers}")
        if self.channels < 1 or self.channels % self.in_channels:
            bad(f"channels={self.channels} must split evenly into the {self.in_channels} colour "
                f"groups (R, G, B): use a multiple of {self.in_channels}")
        if self.num_classes is not None and self.num_classes < 1:
            bad(f"num_classes must be >= 1 or None, got {self.num_classes}")
        if self.cond_dim is not None and self.cond_dim < 1:
            bad(f"cond_dim must be >= 1 or None, got {self.cond_dim}")
        for name in ("embedding_dim", "cond_channels"):
            value = getattr(self, name)
            if value is not None and value < 1:
                bad(f"{name} must be >= 1 or None, got {value}")
            if value is not None and self.model != "gated":
                bad(f"{name} is a Gated PixelCNN option (model='gated'), not {self.model!r}")
        if self.embedding_dim and self.in_channels * self.embedding_dim > self.channels:
            bad(f"in_channels x embedding_dim = {self.in_channels * self.embedding_dim} input "
                f"features exceed channels={self.channels}; the incremental samplers hold the "
                f"first layer's input at the hidden width: use embedding_dim <= "
                f"{self.channels // self.in_channels} or more channels")
        if self.model == "autoencoder" and self.cond_dim is None:
            bad("an autoencoder needs cond_dim (the size of its code h: 10 on MNIST, 100 on CIFAR)")

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"ModelConfig: unknown fields {sorted(unknown)}")
        return cls(**d)


# Architecture sizes; data set specifics (in_channels, levels, classes) are filled in later.
PRESETS = {
    "tiny": dict(channels=12, layers=3, kernel_size=3),     # tests
    "small": dict(channels=48, layers=8, kernel_size=5),    # an MNIST epoch on 2 CPU cores
    "cifar": dict(channels=192, layers=15, kernel_size=5),  # a single-GPU CIFAR-10 model
    "paper": dict(channels=384, layers=20, kernel_size=5),  # van den Oord et al. 2016, CIFAR-10
}


def preset(name: str, **overrides) -> ModelConfig:
    """The named preset with `overrides` (None values are ignored)."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    fields = dict(PRESETS[name])
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return ModelConfig.from_dict(fields)       # unknown overrides: a ValueError naming them
