"""The incremental sampler's state and its PyTorch steps, on the packed layout (DESIGN.md §4).

Once per row: the vertical stack of the previous row for every layer (from a ring buffer of
the last p + 1 rows of each layer's vertical input), and through the link the horizontal
stack's pre-activation from above. Once per pixel: the horizontal taps left of it. Once per
sub-pixel: the current tap, the gates and residuals of every layer, the head, the sample.

`GatedCache` holds the state; `row_step` and `pixel_step` are the PyTorch steps, which the
fused sampler kernels (pixelcnn.kernels: sampler_row, sampler_pixel) replace one for one on
the same buffers, and which kernels/reference.py names as their references. The samplers
(pixelcnn.sampling) run the loop.
"""
from __future__ import annotations

from typing import Optional

import torch

from .layers import embed_table
from .packing import PackedGated, layer_biases, map_biases


def sampling_dtype(model_dtype: torch.dtype) -> torch.dtype:
    """Softmax and the CDF run in float64 for float64 models, float32 otherwise."""
    return torch.float64 if model_dtype == torch.float64 else torch.float32


def inverse_cdf(logits: torch.Tensor, u: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """logits [B, levels], u [B] -> long [B]: #{v : cdf(v) < u} (clamped to levels - 1) under
    softmax(logits / temperature)."""
    logits = logits.to(sampling_dtype(logits.dtype))
    if temperature != 1.0:
        logits = logits / temperature
    cdf = torch.softmax(logits, -1).cumsum_(-1)
    return (cdf < u[:, None]).sum(-1).clamp_(max=logits.shape[-1] - 1)


class GatedCache:
    """The caches of one sampling call, allocated once by `setup(batch, H, W)`.

    vbuf     [L, B, p+1, W+2p, H]  ring of the last p + 1 rows of each layer's vertical
                                   input (zero-padded columns); image row r in slot r % (p+1)
    v_pre    [L, B, W, 2H]         vertical pre-activations of the row above
    row_bias [L, B, W, 2H]         horizontal pre-activation from above: link + bias + cond
    hbuf     [L, B, p+W, H]        each layer's horizontal input along the current row
    base     [L, B, 2H]            row_bias + the taps left of the current pixel
    gated    [B, L, H]             every layer's gated unit at the current sub-pixel
    cur      [B, H]                the first layer's input: the current pixel, embedded
    scratch  [B, 2H]               the fused pixel kernels' head activations
    skip     [B, H] float32        the grid pixel kernel's skip sum, accumulated over layers
    ahead    [2, 2, B, 2H] float32 the grid pixel kernel's look-ahead (PIXELCNN_GRID_AHEAD=1):
                                   the part of layer l's gate from layer l - 1's input, made a
                                   phase early, in slot l % 2 (two halves: input, gated unit)
    sync     [1] int32             the grid pixel kernel's barrier counter (kernels/grid.py)
    """

    def __init__(self, packed: PackedGated, cond: Optional[torch.Tensor] = None,
                 cond_map: Optional[torch.Tensor] = None):
        """cond: per-image conditioning [B, L, 2, 2H] (model.condition); cond_map: the
        location-dependent conditioning [B, D, H, W], added once per row."""
        self.w, self.cond, self.cond_map = packed, cond, cond_map

    def setup(self, batch: int, height: int, width: int):
        w, p = self.w, self.w.pad
        L, H = w.layers, w.hidden
        new = lambda *shape: w.wv.new_zeros(shape)
        self.batch, self.width = batch, width
        self.bias_v, self.bias_h = layer_biases(w, self.cond, batch)
        self.vbuf = new(L, batch, p + 1, width + 2 * p, H)
        self.v_pre = new(L, batch, width, 2 * H)
        self.row_bias = new(L, batch, width, 2 * H)
        self.hbuf = new(L, batch, p + width, H)
        self.base = new(L, batch, 2 * H)
        self.gated = new(batch, L, H)
        self.cur = new(batch, H)
        self.scratch = new(batch, 2 * H)
        self.skip = w.wv.new_zeros(batch, H, dtype=torch.float32)
        self.ahead = w.wv.new_zeros(2, 2, batch, 2 * H, dtype=torch.float32)
        self.sync = w.wv.new_zeros(1, dtype=torch.int32)
        # per-layer views, taken once: indexing in the per-sub-pixel loop costs more than math
        self.per_layer = list(zip(self.base, w.wh_cur, self.gated.unbind(1), self.hbuf,
                                  w.wres, w.bres))
        return self

    def buffers(self) -> tuple:
        return (self.vbuf, self.v_pre, self.row_bias, self.hbuf, self.base, self.gated,
                self.cur, self.scratch, self.skip, self.ahead, self.sync)

    def reset(self):
        for t in self.buffers():
            t.zero_()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Sub-pixels [B, C, ...] -> embedded features [B, C * E, ...] (the packed table)."""
        return embed_table(x, self.w.table)

    def row(self, i: int, above: Optional[torch.Tensor]):
        """Start row i. above: the embedded image row i - 1 [B, C * E, W] (None for row 0)."""
        w, p, k = self.w, self.w.pad, self.w.kernel_size
        L, H, B, W = w.layers, w.hidden, self.batch, self.width
        maps = lambda r: map_biases(w, self.cond_map, r).split(2 * H, -1)   # [L, B, W, 2H] x 2
        if i == 0:                                                  # above: zero padding
            self.vbuf.zero_()
            self.v_pre.zero_()
            self.row_bias.copy_(self.bias_h[:, :, None].expand_as(self.row_bias))
            if self.cond_map is not None:
                self.row_bias += maps(0)[1]
            return
        slot = (i - 1) % (p + 1)
        rows = [(i + r) % (p + 1) for r in range(p + 1)]            # slots, oldest row first
        v_in = self.vbuf.new_zeros(B, W, H)
        v_in[..., :w.features] = above.transpose(1, 2)
        map_v = map_h = None
        if self.cond_map is not None:
            map_v, map_h = maps(i - 1)[0], maps(i)[1]               # the row above, this row
        for l in range(L):
            self.vbuf[l, :, slot, p:p + W] = v_in
            win = self.vbuf[l][:, rows].unfold(2, k, 1).permute(0, 2, 1, 4, 3)  # [B, W, p+1, k, H]
            pre = torch.addmm(self.bias_v[l].repeat_interleave(W, 0), win.reshape(B * W, -1),
                              w.wv[l]).view(B, W, 2 * H)
            if map_v is not None:
                pre += map_v[l]
            self.v_pre[l] = pre
            v_in = torch.tanh(pre[..., :H]) * torch.sigmoid(pre[..., H:])
        link = torch.bmm(self.v_pre.view(L, B * W, 2 * H), w.wlink).view(L, B, W, 2 * H)
        torch.add(link, self.bias_h[:, :, None], out=self.row_bias)
        if map_h is not None:
            self.row_bias += map_h

    def begin_pixel(self, j: int):
        """Once per pixel: row_bias + the horizontal taps j - p .. j - 1, all layers at once."""
        p, L, B = self.w.pad, self.w.layers, self.batch
        left = self.hbuf[:, :, j:j + p].reshape(L, B, -1)           # [L, B, p*H]
        torch.baddbmm(self.row_bias[:, :, j], left, self.w.wh_prev, out=self.base)

    def step(self, j: int, pixel: torch.Tensor):
        """The horizontal stacks at column j given the current pixel [B, C] (embedded; its
        channels not yet sampled are ignored by the masks)."""
        w, p, H = self.w, self.w.pad, self.w.hidden
        cur = self.cur
        cur[:, :w.features] = pixel
        last = w.layers - 1
        for l, (base, wh_cur, gated, hbuf, wres, bres) in enumerate(self.per_layer):
            f, g = torch.addmm(base, cur, wh_cur).split(H, 1)
            g = torch.mul(f.tanh_(), g.sigmoid_(), out=gated)
            if l > 0:
                hbuf[:, j + p] = cur
            if l < last:
                res = torch.addmm(bres, g, wres)
                cur = res if l == 0 else res.add_(cur)

    def logits(self, c: int) -> torch.Tensor:
        """The head at the current sub-pixel: logits [B, levels] of channel c."""
        w = self.w
        wskip = w.wskip.view(w.layers * w.hidden, w.hidden)
        skip = torch.addmm(w.bskip, self.gated.view(self.batch, -1), wskip)
        a = torch.relu(torch.addmm(w.b1, torch.relu(skip), w.w1))
        cols = slice(c * w.levels, (c + 1) * w.levels)
        return torch.addmm(w.b2[cols], a, w.w2[:, cols])

    def end_pixel(self, j: int, pixel: torch.Tensor):
        """The pixel is complete: it becomes the first layer's horizontal input at column j."""
        self.hbuf[0, :, j + self.w.pad, :self.w.features] = pixel


def row_step(cache: GatedCache, x: torch.Tensor, i: int):
    """Start row i of image x (long [B, C, H, W])."""
    cache.row(i, cache.embed(x[:, :, i - 1]) if i else None)


def pixel_step(cache: GatedCache, x, u, temperature: float, i: int, j: int,
               c: Optional[int]) -> Optional[torch.Tensor]:
    """Sample sub-pixel (c, i, j) of x from uniforms u, or with c=None take pixel (i, j) as
    given (completion) and only update the caches. Returns the logits [B, levels] it sampled
    from (None when completing)."""
    if not c:                                                       # 0 or None: a new pixel
        cache.begin_pixel(j)
    cache.step(j, cache.embed(x[:, :, i, j]))
    logits = None
    if c is not None:
        logits = cache.logits(c)
        x[:, c, i, j] = inverse_cdf(logits, u[:, c, i, j], temperature)
    if c is None or c == x.shape[1] - 1:
        cache.end_pixel(j, cache.embed(x[:, :, i, j]))
    return logits


