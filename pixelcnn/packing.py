"""The packed weight layout shared by every incremental sampler (cached, triton, native).

A GatedPixelCNN's convolutions become plain matrices with the colour-group masks baked in,
stacked over layers. The first layer's input (the image, C channels) is zero-padded to the
hidden width so that every layer has the same shapes:

    per layer l (stacked along dim 0, L layers; H hidden channels, p = k // 2):
    wv      [L, (p+1)*k*H, 2H]  vertical stack, im2col order (row, column, channel)
    bv      [L, 2H]
    wlink   [L, 2H, 2H]         vertical pre-activation of row i-1 -> horizontal stack
    wh_prev [L, p*H, 2H]        horizontal taps j-p .. j-1, order (column, channel)
    wh_cur  [L, H, 2H]          horizontal tap j, mask A (l = 0) / B baked in
    bh      [L, 2H]
    wres    [L, H, H], bres [L, H]   1x1 to the residual (layer 0: the output itself)
    wskip   [L, H, H], bskip [H]     1x1 to the skip connections (biases summed over layers)
    wres_cur [L, H, 2H], bres_cur [L, 2H]   derived: layer l - 1's residual 1x1 composed with
                            layer l's current tap (wres[l-1] @ wh_cur[l], bres[l-1] @
                            wh_cur[l], in float64; slot 0 zero), so that layer l's gate follows
                            from layer l - 1's gated unit in one product (triton-grid: one
                            phase per layer instead of two)
    wres_ahead [L, H, 2H], bres_ahead [L, 2H]   derived: layer l - 2's residual 1x1 composed
                            with layer l's current tap (slots 0, 1 zero), so that layer l - 1's
                            phase can compute the part of layer l's gate that comes from layer
                            l - 1's input (triton-grid, PIXELCNN_GRID_AHEAD=1)
    w1 [H, H], b1 [H], w2 [H, C*levels], b2 [C*levels]   the output head
    table   [C, levels, E]      the input embedding: sub-pixel value v of channel c -> E
                                features (the scalar embedding: E = 1, 2v/(levels-1) - 1)
    wmap    [L, D, 4H] or None  the conditioning map's 1x1s: [vertical 2H | horizontal 2H]

The first layer's input is the C * E embedded features (channel c's E first), zero-padded
to H. Activations are row vectors: out = in @ W. Conditioning enters as per-image biases from
`model.condition(y, h)`: [B, L, 2 (vertical, horizontal), 2H], and, with a map, as per-position
biases added once per row (`map_biases`).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

import torch
import torch.nn.functional as F

from .layers import embed


@dataclass
class PackedGated:
    in_channels: int
    levels: int
    hidden: int
    layers: int
    kernel_size: int
    wv: torch.Tensor
    bv: torch.Tensor
    wlink: torch.Tensor
    wh_prev: torch.Tensor
    wh_cur: torch.Tensor
    bh: torch.Tensor
    wres: torch.Tensor
    bres: torch.Tensor
    wskip: torch.Tensor
    bskip: torch.Tensor
    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor
    table: torch.Tensor
    wres_cur: torch.Tensor
    bres_cur: torch.Tensor
    wres_ahead: torch.Tensor
    bres_ahead: torch.Tensor
    wmap: Optional[torch.Tensor] = None

    @property
    def pad(self) -> int:
        return self.kernel_size // 2

    @property
    def features(self) -> int:
        """Width of the first layer's input: C * E embedded features."""
        return self.in_channels * self.table.shape[-1]

    def tensors(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if isinstance(getattr(self, f.name), torch.Tensor)}

    def apply(self, fn) -> "PackedGated":
        """A copy with fn applied to every tensor (e.g. lambda t: t.to(device) or t.clone())."""
        return PackedGated(self.in_channels, self.levels, self.hidden, self.layers,
                           self.kernel_size, **{k: fn(v) for k, v in self.tensors().items()})


def _pad_in(w: torch.Tensor, hidden: int) -> torch.Tensor:
    """Zero-pad the input-channel dim (1) of a conv weight to the hidden width."""
    return F.pad(w, (0, 0, 0, 0, 0, hidden - w.shape[1]))


@torch.no_grad()
def pack(model) -> PackedGated:
    """Pack a GatedPixelCNN's weights (masks applied) in the layout above."""
    cfg = model.config
    H, k, p = cfg.channels, cfg.kernel_size, cfg.kernel_size // 2
    per_layer = {name: [] for name in
                 ("wv", "bv", "wlink", "wh_prev", "wh_cur", "bh", "wres", "bres", "wskip")}
    bskip = 0
    for layer in model.layers:
        wv = _pad_in(layer.v_conv.weight, H)                        # [2H, H, p+1, k]
        wh = _pad_in(layer.h_conv.masked_weight, H)                 # [2H, H, 1, p+1]
        wo = layer.out.masked_weight[:, :, 0, 0]                    # [2H, H]
        bo = layer.out.bias
        per_layer["wv"].append(wv.permute(2, 3, 1, 0).reshape(-1, 2 * H))
        per_layer["bv"].append(layer.v_conv.bias)
        per_layer["wlink"].append(layer.link.weight[:, :, 0, 0].t())
        per_layer["wh_prev"].append(wh[:, :, 0, :p].permute(2, 1, 0).reshape(-1, 2 * H))
        per_layer["wh_cur"].append(wh[:, :, 0, p].t())
        per_layer["bh"].append(layer.h_conv.bias)
        per_layer["wres"].append(wo[:H].t())
        per_layer["bres"].append(bo[:H])
        per_layer["wskip"].append(wo[H:].t())
        bskip = bskip + bo[H:]
    stacked = {name: torch.stack(ts).contiguous() for name, ts in per_layer.items()}
    head = model.head
    values = torch.arange(cfg.levels, device=head.logits.bias.device)     # the model's device
    table = model.embedding if model.embedding is not None else \
        embed(values, cfg.levels, model.dtype).view(1, -1, 1).expand(cfg.in_channels, -1, -1)
    maps = [layer.map.weight[:, :, 0, 0].t() for layer in model.layers if layer.map is not None]
    return PackedGated(
        cfg.in_channels, cfg.levels, H, cfg.layers, k,
        **stacked, **residual_into_next(stacked),
        bskip=bskip.contiguous(),
        w1=head.hidden.masked_weight[:, :, 0, 0].t().contiguous(), b1=head.hidden.bias.clone(),
        w2=head.logits.masked_weight[:, :, 0, 0].t().contiguous(), b2=head.logits.bias.clone(),
        table=table.contiguous().clone(), wmap=torch.stack(maps).contiguous() if maps else None)


def residual_into_next(w: dict) -> dict:
    """wres_cur, bres_cur and wres_ahead, bres_ahead (see the layout): layer l's current tap
    applied to layer l - 1's (l - 2's) residual 1x1, composed in float64 and rounded once to
    the weights' dtype."""
    out = {}
    for name, d in (("cur", 1), ("ahead", 2)):
        wh_cur = w["wh_cur"][d:].double()
        wres, bres = torch.zeros_like(w["wh_cur"]), torch.zeros_like(w["bh"])
        wres[d:] = (w["wres"][:-d].double() @ wh_cur).to(wres.dtype)
        bres[d:] = (w["bres"][:-d, None].double() @ wh_cur)[:, 0].to(bres.dtype)
        out.update({f"wres_{name}": wres, f"bres_{name}": bres})
    return out


def packed(model) -> PackedGated:
    """`pack(model)`, kept in the model's `packed_weights` slot and re-packed only when a
    parameter has changed since (another storage or version): samplers called again and again
    on the same weights pack them once."""
    key = tuple((p.data_ptr(), p._version) for p in model.parameters())
    if model.packed_weights is None or model.packed_weights[0] != key:
        model.packed_weights = (key, pack(model))
    return model.packed_weights[1]


def map_biases(packed: PackedGated, cond_map: torch.Tensor, row: int) -> torch.Tensor:
    """The conditioning map's contribution to image row `row`: [L, B, W, 4H] (vertical 2H,
    horizontal 2H) from cond_map [B, D, H, W]."""
    m = cond_map[:, :, row].transpose(1, 2)                          # [B, W, D]
    return torch.matmul(m[None], packed.wmap[:, None])               # [L, B, W, 4H]


def layer_biases(packed: PackedGated, cond, batch: int):
    """Per-image biases of the vertical and horizontal stacks, [L, batch, 2H] each: the layers'
    biases plus the conditioning cond [batch, L, 2, 2H] (None: unconditioned)."""
    bias_v = packed.bv[:, None].expand(-1, batch, -1)
    bias_h = packed.bh[:, None].expand(-1, batch, -1)
    if cond is not None:
        bias_v = bias_v + cond[:, :, 0].transpose(0, 1)
        bias_h = bias_h + cond[:, :, 1].transpose(0, 1)
    return bias_v.contiguous(), bias_h.contiguous()
