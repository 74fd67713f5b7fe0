"""The incremental sampler in PyTorch (DESIGN §4): per-layer row and pixel caches, so that
each sub-pixel costs one pixel of the horizontal stacks instead of a whole forward pass.

Once per row: the vertical stack of the previous row for every layer (from a rolling buffer
of the last p + 1 rows of each layer's vertical input), and through the link the horizontal
stack's pre-activation from above. Once per pixel: the horizontal taps left of it. Once per
sub-pixel: the current tap, the gates and residuals of every layer, the head, the sample.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..packing import PackedGated, pack
from .common import Job, inverse_cdf, progress_bar


class GatedCache:
    """The caches of one sampling call, allocated once by `setup(batch, H, W)`.

    vbuf     [L, B, p+1, W+2p, H]  last p + 1 rows of each layer's vertical input (padded)
    row_bias [L, B, W, 2H]         horizontal pre-activation from above: link + bias + cond
    hbuf     [L, B, p+W, H]        each layer's horizontal input along the current row
    base     [L, B, 2H]            row_bias + the taps left of the current pixel
    gated    [B, L, H]             every layer's gated unit at the current sub-pixel
    """

    def __init__(self, packed: PackedGated, cond: Optional[torch.Tensor] = None):
        self.w = packed
        w = packed
        bias_v, bias_h = w.bv[:, None], w.bh[:, None]               # [L, 1, 2H]
        if cond is not None:                                        # [B, L, 2, 2H]
            bias_v = bias_v + cond[:, :, 0].transpose(0, 1)
            bias_h = bias_h + cond[:, :, 1].transpose(0, 1)
        self.bias_v, self.bias_h = bias_v, bias_h                   # [L, B or 1, 2H]
        self.wskip = w.wskip.reshape(w.layers * w.hidden, w.hidden)

    def setup(self, batch: int, height: int, width: int):
        w, p = self.w, self.w.pad
        L, H = w.layers, w.hidden
        new = lambda *shape: w.wv.new_zeros(shape)
        self.batch, self.width = batch, width
        self.vbuf = new(L, batch, p + 1, width + 2 * p, H)
        self.row_bias = new(L, batch, width, 2 * H)
        self.hbuf = new(L, batch, p + width, H)
        self.base = new(L, batch, 2 * H)
        self.gated = new(batch, L, H)
        self.cur = new(batch, H)
        return self

    def reset(self):
        for t in (self.vbuf, self.row_bias, self.hbuf, self.base, self.gated, self.cur):
            t.zero_()

    def row(self, above: Optional[torch.Tensor]):
        """Start a row. above: the embedded image row above it [B, C, W], None for row 0."""
        w, p, k = self.w, self.w.pad, self.w.kernel_size
        L, H, B, W = w.layers, w.hidden, self.batch, self.width
        if above is None:
            self.vbuf.zero_()
            self.row_bias.copy_(self.bias_h[:, :, None].expand_as(self.row_bias))
            return
        self.vbuf[:, :, :-1] = self.vbuf[:, :, 1:].clone()           # roll up one row
        v_in = self.vbuf.new_zeros(B, W, H)
        v_in[..., :w.in_channels] = above.transpose(1, 2)
        v_pre = []
        for l in range(L):
            buf = self.vbuf[l]                                      # [B, p+1, W+2p, H]
            buf[:, -1, p:p + W] = v_in
            win = buf.unfold(2, k, 1).permute(0, 2, 1, 4, 3)        # [B, W, p+1, k, H]
            pre = (win.reshape(B * W, -1) @ w.wv[l]).view(B, W, 2 * H) + self.bias_v[l, :, None]
            v_pre.append(pre.view(B * W, 2 * H))
            v_in = torch.tanh(pre[..., :H]) * torch.sigmoid(pre[..., H:])
        link = torch.bmm(torch.stack(v_pre), w.wlink).view(L, B, W, 2 * H)
        torch.add(link, self.bias_h[:, :, None], out=self.row_bias)

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
        cur[:, :w.in_channels] = pixel
        for l in range(w.layers):
            pre = torch.addmm(self.base[l], cur, w.wh_cur[l])
            g = torch.mul(torch.tanh(pre[:, :H]), torch.sigmoid(pre[:, H:]), out=self.gated[:, l])
            if l > 0:
                self.hbuf[l, :, j + p] = cur
            if l + 1 < w.layers:
                res = torch.addmm(w.bres[l], g, w.wres[l])
                cur = res if l == 0 else cur + res

    def logits(self, c: int) -> torch.Tensor:
        """The head at the current sub-pixel: logits [B, levels] of channel c."""
        w = self.w
        skip = torch.addmm(w.bskip, self.gated.view(self.batch, -1), self.wskip)
        a = torch.relu(torch.addmm(w.b1, torch.relu(skip), w.w1))
        cols = slice(c * w.levels, (c + 1) * w.levels)
        return torch.addmm(w.b2[cols], a, w.w2[:, cols])

    def end_pixel(self, j: int, pixel: torch.Tensor):
        """The pixel is complete: it becomes the first layer's horizontal input at column j."""
        self.hbuf[0, :, j + self.w.pad, :self.w.in_channels] = pixel


@torch.no_grad()
def sample_cached(job: Job, progress: bool = False) -> torch.Tensor:
    model, x, u = job.model, job.x, job.uniforms
    n, C, H, W = x.shape
    cache = GatedCache(pack(model), model.condition(job.y, job.h)).setup(n, H, W)
    start_row = job.start // W
    with progress_bar(job, progress) as bar:
        for i in range(H):
            cache.row(model.embed(x[:, :, i - 1]) if i else None)
            if i < start_row:
                continue
            for j in range(W):
                cache.begin_pixel(j)
                if i * W + j < job.start:                # completion: prime with x0's pixel
                    cache.step(j, model.embed(x[:, :, i, j]))
                else:
                    for c in range(C):
                        cache.step(j, model.embed(x[:, :, i, j]))
                        x[:, c, i, j] = inverse_cdf(cache.logits(c), u[:, c, i, j],
                                                    job.temperature)
                    bar.update(C)
                cache.end_pixel(j, model.embed(x[:, :, i, j]))
    return x
