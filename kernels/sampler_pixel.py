"""The incremental sampler's sub-pixel step, fused: the horizontal stack of every layer at
one pixel, the head, the softmax and the inverse-CDF sample, written into the image - one
launch per sub-pixel. A program owns BB images; activations pass between layers through the
cache (GatedCache's buffers, L1/L2-resident), with a barrier between writer and reader."""
import torch
import triton
import triton.language as tl

from .common import (check_device, feature_block, gate, gated_matmul_rows, inverse_cdf,
                     launch_flags, matmul_rows, pow2, store_embedded)


@triton.jit(do_not_specialize=["i", "j", "c"])   # one compile for every step
def _sampler_pixel_fwd_kernel(x, u, cur, hbuf, row_bias, base, gated, scratch,
                              wh_prev, wh_cur, wres, bres, wskip, bskip, w1, b1, w2, b2, table,
                              i, j, c, B, C, HEIGHT, WIDTH, HD, L, LEVELS, E, F, temperature,
                              P: tl.constexpr, FIRST: tl.constexpr, SAMPLE: tl.constexpr,
                              LAST: tl.constexpr, BB: tl.constexpr, BN: tl.constexpr,
                              BK: tl.constexpr, FB: tl.constexpr, LVP: tl.constexpr,
                              BF16: tl.constexpr, INTERPRET: tl.constexpr):
    bb = tl.program_id(0) * BB + tl.arange(0, BB)                    # images
    b_ok = bb < B
    # The first layer's input: the current pixel, embedded (rows of the table; its channels
    # not yet sampled meet zero weights: mask A).
    pix = bb * C * HEIGHT * WIDTH + i * WIDTH + j                    # x offsets, channel 0
    store_embedded(cur + bb * HD, x, pix, b_ok, HEIGHT * WIDTH, table, LEVELS, E, F, FB,
                   False, 0, 0)
    tl.debug_barrier()
    ROW = (P + WIDTH) * HD                                           # hbuf row length
    for l in range(L):
        hb = hbuf + (l * B + bb) * ROW                               # [BB] rows of hbuf[l]
        if l == 0:
            inp = cur + bb * HD
        else:
            inp = hb + (j + P) * HD                                  # written by layer l - 1
        for n0 in range(0, HD, BN):
            n = n0 + tl.arange(0, BN)
            n_ok = n < HD
            ok2 = b_ok[:, None] & n_ok[None, :]
            base_ptrs = base + (l * B + bb[:, None]) * 2 * HD + n[None, :]
            if FIRST:                                                # row_bias + taps left
                rb = row_bias + ((l * B + bb[:, None]) * WIDTH + j) * 2 * HD + n[None, :]
                f = tl.load(rb, mask=ok2, other=0.0).to(tl.float32)
                g = tl.load(rb + HD, mask=ok2, other=0.0).to(tl.float32)
                f, g = gated_matmul_rows(f, g, hb + j * HD, b_ok, wh_prev + l * P * HD * 2 * HD,
                                         P * HD, n, n_ok, HD, BK, BF16, INTERPRET)
                tl.store(base_ptrs, f.to(base.dtype.element_ty), mask=ok2)
                tl.store(base_ptrs + HD, g.to(base.dtype.element_ty), mask=ok2)
            else:
                f = tl.load(base_ptrs, mask=ok2, other=0.0).to(tl.float32)
                g = tl.load(base_ptrs + HD, mask=ok2, other=0.0).to(tl.float32)
            f, g = gated_matmul_rows(f, g, inp, b_ok, wh_cur + l * HD * 2 * HD, HD, n, n_ok, HD,
                                     BK, BF16, INTERPRET)
            tl.store(gated + (bb[:, None] * L + l) * HD + n[None, :],
                     gate(f, g).to(gated.dtype.element_ty), mask=ok2)
        tl.debug_barrier()
        if l + 1 < L:                                                # residual: next input
            for n0 in range(0, HD, BN):
                n = n0 + tl.arange(0, BN)
                n_ok = n < HD
                ok2 = b_ok[:, None] & n_ok[None, :]
                res = tl.zeros((BB, BN), tl.float32) + tl.load(bres + l * HD + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
                res = matmul_rows(res, gated + (bb * L + l) * HD, b_ok, wres + l * HD * HD, HD,
                                  n, n_ok, HD, BK, BF16, INTERPRET)
                if l > 0:
                    res += tl.load(inp[:, None] + n[None, :], mask=ok2, other=0.0).to(tl.float32)
                tl.store(hbuf + ((l + 1) * B + bb[:, None]) * ROW + (j + P) * HD + n[None, :],
                         res.to(hbuf.dtype.element_ty), mask=ok2)
            tl.debug_barrier()
    val = 0                                  # completion: no sampled value
    if SAMPLE:
        for n0 in range(0, HD, BN):                                  # relu(skip sum)
            n = n0 + tl.arange(0, BN)
            n_ok = n < HD
            s = tl.zeros((BB, BN), tl.float32) + tl.load(bskip + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
            s = matmul_rows(s, gated + bb * L * HD, b_ok, wskip, L * HD, n, n_ok, HD,
                            BK, BF16, INTERPRET)
            tl.store(scratch + bb[:, None] * 2 * HD + n[None, :],
                     tl.maximum(s, 0.0).to(scratch.dtype.element_ty), mask=b_ok[:, None] & n_ok[None, :])
        tl.debug_barrier()
        for n0 in range(0, HD, BN):                                  # relu(1x1)
            n = n0 + tl.arange(0, BN)
            n_ok = n < HD
            a = tl.zeros((BB, BN), tl.float32) + tl.load(b1 + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
            a = matmul_rows(a, scratch + bb * 2 * HD, b_ok, w1, HD, n, n_ok, HD,
                            BK, BF16, INTERPRET)
            tl.store(scratch + bb[:, None] * 2 * HD + HD + n[None, :],
                     tl.maximum(a, 0.0).to(scratch.dtype.element_ty), mask=b_ok[:, None] & n_ok[None, :])
        tl.debug_barrier()
        v = tl.arange(0, LVP)                                        # logits of channel c
        v_ok = v < LEVELS
        logits = tl.zeros((BB, LVP), tl.float32) + tl.load(b2 + c * LEVELS + v, mask=v_ok, other=0.0).to(tl.float32)[None, :]
        logits = matmul_rows(logits, scratch + bb * 2 * HD + HD, b_ok, w2 + c * LEVELS, HD, v,
                             v_ok, C * LEVELS, BK, BF16, INTERPRET)
        uu = tl.load(u + ((bb * C + c) * HEIGHT + i) * WIDTH + j, mask=b_ok, other=0.0)
        val = inverse_cdf(logits, v_ok, uu, temperature, LEVELS)
        tl.store(x + ((bb * C + c) * HEIGHT + i) * WIDTH + j, val.to(x.dtype.element_ty), mask=b_ok)
    if LAST:                                 # the complete pixel: first layer's input at j
        store_embedded(hbuf + bb * ROW + (j + P) * HD, x, pix, b_ok, HEIGHT * WIDTH, table,
                       LEVELS, E, F, FB, SAMPLE, c, val)


def sampler_pixel(cache, x, u, temperature: float, i: int, j: int, c):
    """Sample sub-pixel (c, i, j) of x (long [B, C, H, W]) from the uniforms u, or with
    c=None take pixel (i, j) as given (completion) and only update the caches - exactly as
    the PyTorch step `pixelcnn.cache.pixel_step`, on the same GatedCache."""
    w = cache.w
    check_device(x, u, w.wv)
    B, C, H, W = x.shape
    hd = w.hidden
    BB = 16
    # float32's exact (FMA) products spilled 8-60 bytes with K tiles of 32 in Triton's 3-stage
    # pipeline, and bf16 20 where ptxas capped its registers (maxnreg lifts the cap): none at
    # 16, unpipelined (bench.compile, tiny/small/cifar, sm_80/sm_90, Triton 3.9 and 3.6)
    bf16 = w.wv.dtype == torch.bfloat16
    _sampler_pixel_fwd_kernel[(triton.cdiv(B, BB),)](
        x, u, cache.cur, cache.hbuf, cache.row_bias, cache.base, cache.gated, cache.scratch,
        w.wh_prev, w.wh_cur, w.wres, w.bres, w.wskip, w.bskip, w.w1, w.b1, w.w2, w.b2, w.table,
        i, j, c or 0, B, C, H, W, hd, w.layers, w.levels, w.table.shape[-1], w.features,
        float(temperature), P=w.pad, FIRST=not c, SAMPLE=c is not None,
        LAST=c is None or c == C - 1, BB=BB, BN=min(64, pow2(hd)), BK=32 if bf16 else 16,
        FB=feature_block(w), LVP=pow2(w.levels), num_warps=4, num_stages=3 if bf16 else 1,
        maxnreg=255, **launch_flags(w.wv.dtype))
