"""Building blocks of the PixelCNN family (van den Oord et al. 2016).

Causality across pixels comes from shifting (pad + crop): the vertical stack's kernel covers
rows <= i, the horizontal stack's kernel covers columns <= j of row i. Causality across the
colour channels of one pixel comes from channel-group masks on the taps that see the current
pixel: hidden channels are split into R/G/B groups; mask A (first layer) lets group g see
only earlier groups of the current pixel, mask B (afterwards) its own group and earlier.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


def embed(x: torch.Tensor, levels: int, dtype: torch.dtype) -> torch.Tensor:
    """Integer sub-pixels in [0, levels) -> floats in [-1, 1], the network's input."""
    return x.to(dtype) * (2.0 / (levels - 1)) - 1.0


def embed_table(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Integer sub-pixels x [B, C, ...] -> their rows of a learned table [C, levels, E], as
    features [B, C * E, ...]: channel c's E features first (they belong to colour group c)."""
    C, levels, E = table.shape
    rows = x.long() + torch.arange(C, device=x.device).view(1, C, *[1] * (x.dim() - 2)) * levels
    out = F.embedding(rows, table.reshape(C * levels, E))              # [B, C, ..., E]
    return out.movedim(-1, 2).flatten(1, 2)


def channel_groups(n: int, groups: int, halves: int = 1) -> torch.Tensor:
    """Colour group of each of n channels: n is split into `halves` equal parts (the tanh and
    sigmoid halves of a gate), each split into `groups` contiguous groups."""
    per_half = n // halves
    return torch.arange(n) % per_half * groups // per_half


def group_mask(out_groups: torch.Tensor, in_groups: torch.Tensor, kind: str) -> torch.Tensor:
    """[out, in] 0/1 mask: kind "A" lets an output see strictly earlier groups, "B" also its own."""
    if kind == "A":
        return (in_groups[None, :] < out_groups[:, None]).float()
    if kind == "B":
        return (in_groups[None, :] <= out_groups[:, None]).float()
    raise ValueError(f"mask kind must be 'A' or 'B', got {kind!r}")


class MaskedConv2d(nn.Conv2d):
    """A convolution whose weight is multiplied by a fixed 0/1 mask in every forward pass."""

    def __init__(self, in_channels, out_channels, kernel_size, mask: torch.Tensor, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, bias=bias)
        self.register_buffer("mask", mask.expand_as(self.weight).clone(), persistent=False)

    @property
    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x):
        return F.conv2d(x, self.masked_weight, self.bias)


def masked_1x1(in_groups, out_groups, kind: str, bias=True) -> MaskedConv2d:
    mask = group_mask(out_groups, in_groups, kind)[:, :, None, None]
    return MaskedConv2d(len(in_groups), len(out_groups), 1, mask, bias=bias)


def gate(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """The gated unit tanh(f) * sigmoid(g) of the paper; f and g are the two halves of `dim`."""
    f, g = x.chunk(2, dim)
    return torch.tanh(f) * torch.sigmoid(g)


def down_shift(x: torch.Tensor) -> torch.Tensor:
    """Shift [B, C, H, W] down one row (zeros enter at the top): row i then holds row i - 1."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


class GatedLayer(nn.Module):
    """One gated layer (paper Fig. 2): vertical stack, horizontal stack, their link, and the
    horizontal stack's 1x1 producing the residual and the skip output.

    in_groups: colour group of each input channel (the image's channels in the first layer).
    first: mask A on the horizontal stack's current tap and no residual (it would pass the
    current pixel through); later layers use mask B and a residual connection.
    """

    def __init__(self, in_groups: torch.Tensor, channels: int, kernel_size: int, groups: int,
                 first: bool, map_channels: Optional[int] = None):
        super().__init__()
        cin, p = len(in_groups), kernel_size // 2
        self.channels, self.pad, self.first = channels, p, first
        hidden = channel_groups(channels, groups)
        pre = channel_groups(2 * channels, groups, halves=2)
        # Vertical stack: (p + 1) x k kernel over rows i - p .. i (no masks: it reaches the
        # horizontal stack only after a down shift).
        self.v_conv = nn.Conv2d(cin, 2 * channels, (p + 1, kernel_size))
        # Horizontal stack: 1 x (p + 1) kernel over columns j - p .. j; the last tap (the
        # current pixel) is masked by colour group.
        h_mask = torch.ones(2 * channels, cin, 1, p + 1)
        h_mask[:, :, 0, p] = group_mask(pre, in_groups, "A" if first else "B")
        self.h_conv = MaskedConv2d(cin, 2 * channels, (1, p + 1), h_mask)
        # Vertical -> horizontal link (1x1 on the vertical pre-activation of row i - 1).
        self.link = nn.Conv2d(2 * channels, 2 * channels, 1, bias=False)
        # Horizontal output 1x1: [residual | skip], both keeping the colour groups.
        self.out = masked_1x1(hidden, torch.cat([hidden, hidden]), "B")
        # Location-dependent conditioning (paper §2.3, V * s): a 1x1 of the map s to the
        # vertical and the horizontal pre-activations, [vertical 2C | horizontal 2C].
        self.map = nn.Conv2d(map_channels, 4 * channels, 1, bias=False) if map_channels \
            else None

    def forward(self, v, h, cond=None, cond_map=None):
        """v, h: [B, cin, H, W] vertical / horizontal inputs; cond: [B, 2, 2C] or None;
        cond_map: [B, D, H, W] or None. Returns the vertical output, the horizontal output
        [B, C, H, W] and the skip."""
        p = self.pad
        v_pre = self.v_conv(F.pad(v, (p, p, p, 0)))               # [B, 2C, H, W], rows <= i
        h_pre = self.h_conv(F.pad(h, (p, 0, 0, 0)))               # [B, 2C, H, W], cols <= j
        if cond is not None:
            v_pre = v_pre + cond[:, 0, :, None, None]
            h_pre = h_pre + cond[:, 1, :, None, None]
        if cond_map is not None:                                  # given, not sampled: any
            m_v, m_h = self.map(cond_map).chunk(2, 1)             # position may be seen
            v_pre, h_pre = v_pre + m_v, h_pre + m_h
        h_pre = h_pre + self.link(down_shift(v_pre))              # rows < i only
        residual, skip = self.out(gate(h_pre)).chunk(2, 1)
        h_out = residual if self.first else h + residual
        return gate(v_pre), h_out, skip


class OutputHead(nn.Module):
    """ReLU, 1x1, ReLU, 1x1 -> levels logits per sub-pixel; the logits of channel c see only
    hidden groups <= c (whose features saw only channels < c of the current pixel)."""

    def __init__(self, channels: int, in_channels: int, levels: int):
        super().__init__()
        self.in_channels, self.levels = in_channels, levels
        hidden = channel_groups(channels, in_channels)
        self.hidden = masked_1x1(hidden, hidden, "B")
        self.logits = masked_1x1(hidden, torch.arange(in_channels).repeat_interleave(levels), "B")

    def forward(self, skip):
        out = self.logits(F.relu(self.hidden(F.relu(skip))))     # [B, C * levels, H, W]
        b, _, height, width = out.shape
        return out.view(b, self.in_channels, self.levels, height, width).transpose(1, 2)
