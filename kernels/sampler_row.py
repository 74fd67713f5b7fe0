"""The incremental sampler's row step, fused: at the start of row i, the vertical stack of
image row i - 1 for every layer (from the ring buffer of the last p + 1 rows of each layer's
vertical input), and through the link each layer's horizontal pre-activation from above.
One program per image runs all layers in order: layer l + 1 reads the row layer l wrote.
With a conditioning map, its vertical biases of row i - 1 enter each layer's pre-activation
before the gate; its horizontal ones of row i are added to row_bias after the kernel."""
import torch
import triton
import triton.language as tl

from .common import (feature_block, gate, gated_matmul_rows, launch_flags, pow2, start_row,
                     store_embedded, vertical_taps)


@triton.jit(do_not_specialize=["i"])   # one compile for every step
def _sampler_row_fwd_kernel(x, vbuf, v_pre, row_bias, wv, bias_v, wlink, bias_h, table, map_v,
                            i, B, C, HEIGHT, WIDTH, HD, L, LEVELS, E, F,
                            KS: tl.constexpr, BW: tl.constexpr, BN: tl.constexpr,
                            BK: tl.constexpr, FB: tl.constexpr, HAS_MAP: tl.constexpr,
                            BF16: tl.constexpr, INTERPRET: tl.constexpr):
    P: tl.constexpr = KS // 2
    KH: tl.constexpr = P + 1
    b = tl.program_id(0)
    w = tl.arange(0, BW)                                             # output columns
    w_ok = w < WIDTH
    WP = WIDTH + 2 * P                                               # padded row length
    slot = (i - 1) % KH                                              # ring slot of row i - 1
    # The first layer's vertical input: image row i - 1, embedded (rows of the table).
    store_embedded(vbuf + ((b * KH + slot) * WP + P + w) * HD, x,
                   b * C * HEIGHT * WIDTH + (i - 1) * WIDTH + w, w_ok, HEIGHT * WIDTH,
                   table, LEVELS, E, F, FB, False, 0, 0)
    tl.debug_barrier()
    for l in range(L):
        ring = vbuf + (l * B + b) * KH * WP * HD
        pre = v_pre + ((l * B + b) * WIDTH + w) * 2 * HD             # [BW] row pointers
        for n0 in range(0, HD, BN):
            n = n0 + tl.arange(0, BN)
            n_ok = n < HD
            ok2 = w_ok[:, None] & n_ok[None, :]
            bias = bias_v + (l * B + b) * 2 * HD + n
            f = tl.zeros((BW, BN), tl.float32) + tl.load(bias, mask=n_ok, other=0.0).to(tl.float32)[None, :]
            g = tl.zeros((BW, BN), tl.float32) + tl.load(bias + HD, mask=n_ok, other=0.0).to(tl.float32)[None, :]
            f, g = vertical_taps(f, g, ring, w, w_ok, wv + l * KH * KS * HD * 2 * HD, i, HD,
                                 WP, n, n_ok, KS, BK, BF16, INTERPRET)
            if HAS_MAP:                                              # the map, row i - 1
                mp = map_v + ((l * B + b) * WIDTH + w[:, None]) * 4 * HD + n[None, :]
                f += tl.load(mp, mask=ok2, other=0.0).to(tl.float32)
                g += tl.load(mp + HD, mask=ok2, other=0.0).to(tl.float32)
            tl.store(pre[:, None] + n[None, :], f.to(v_pre.dtype.element_ty), mask=ok2)
            tl.store(pre[:, None] + HD + n[None, :], g.to(v_pre.dtype.element_ty), mask=ok2)
            if l + 1 < L:                                            # next layer's input
                nxt = vbuf + (((l + 1) * B + b) * KH + slot) * WP * HD
                tl.store(nxt + (P + w[:, None]) * HD + n[None, :],
                         gate(f, g).to(vbuf.dtype.element_ty), mask=ok2)
        tl.debug_barrier()
        for n0 in range(0, HD, BN):                                  # the link, + bias + cond
            n = n0 + tl.arange(0, BN)
            n_ok = n < HD
            ok2 = w_ok[:, None] & n_ok[None, :]
            bias = bias_h + (l * B + b) * 2 * HD + n
            f = tl.zeros((BW, BN), tl.float32) + tl.load(bias, mask=n_ok, other=0.0).to(tl.float32)[None, :]
            g = tl.zeros((BW, BN), tl.float32) + tl.load(bias + HD, mask=n_ok, other=0.0).to(tl.float32)[None, :]
            f, g = gated_matmul_rows(f, g, pre, w_ok, wlink + l * 4 * HD * HD, 2 * HD, n, n_ok,
                                     HD, BK, BF16, INTERPRET)
            out = row_bias + ((l * B + b) * WIDTH + w[:, None]) * 2 * HD + n[None, :]
            tl.store(out, f.to(row_bias.dtype.element_ty), mask=ok2)
            tl.store(out + HD, g.to(row_bias.dtype.element_ty), mask=ok2)


def sampler_row(cache, x, i: int):
    """Row step i of the incremental sampler (`common.start_row`), one program per image."""
    w = cache.w
    B, C, H, W = x.shape
    # float32's exact (FMA) products spilled 12-124 bytes at 64 columns in Triton's 3-stage
    # pipeline (255 registers); at 32 columns, unpipelined, none (bench.compile, sm_80/sm_90)
    bf16 = w.wv.dtype == torch.bfloat16

    def launch(map_v):
        _sampler_row_fwd_kernel[(B,)](
            x, cache.vbuf, cache.v_pre, cache.row_bias, w.wv, cache.bias_v, w.wlink,
            cache.bias_h, w.table, cache.v_pre if map_v is None else map_v,  # (no map: unread)
            i, B, C, H, W, w.hidden, w.layers, w.levels, w.table.shape[-1], w.features,
            KS=w.kernel_size, BW=pow2(W), BN=min(64 if bf16 else 32, pow2(w.hidden)), BK=32,
            FB=feature_block(w), HAS_MAP=map_v is not None, num_warps=4,
            num_stages=3 if bf16 else 1, maxnreg=255,
            **launch_flags(w.wv.dtype))
    start_row(cache, x, i, launch)
