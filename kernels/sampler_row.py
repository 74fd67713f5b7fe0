"""The incremental sampler's row step, fused: at the start of row i, the vertical stack of
image row i - 1 for every layer (from the ring buffer of the last p + 1 rows of each layer's
vertical input), and through the link each layer's horizontal pre-activation from above.
One program per image runs all layers in order: layer l + 1 reads the row layer l wrote."""
import triton
import triton.language as tl

from .common import check_device, gate, gated_matmul_rows, launch_flags, pow2, vertical_taps


@triton.jit(do_not_specialize=["i"])   # one compile for every step
def _sampler_row_fwd_kernel(x, vbuf, v_pre, row_bias, wv, bias_v, wlink, bias_h,
                            i, B, C, HEIGHT, WIDTH, HD, L, scale,
                            KS: tl.constexpr, BW: tl.constexpr, BN: tl.constexpr,
                            BK: tl.constexpr, CP: tl.constexpr,
                            BF16: tl.constexpr, INTERPRET: tl.constexpr):
    P: tl.constexpr = KS // 2
    KH: tl.constexpr = P + 1
    b = tl.program_id(0)
    w = tl.arange(0, BW)                                             # output columns
    w_ok = w < WIDTH
    WP = WIDTH + 2 * P                                               # padded row length
    slot = (i - 1) % KH                                              # ring slot of row i - 1
    # The first layer's vertical input: image row i - 1, embedded.
    ch = tl.arange(0, CP)
    ok = w_ok[:, None] & (ch < C)[None, :]
    pix = tl.load(x + ((b * C + ch[None, :]) * HEIGHT + i - 1) * WIDTH + w[:, None], mask=ok)
    tl.store(vbuf + ((b * KH + slot) * WP + P + w[:, None]) * HD + ch[None, :],
             (pix.to(tl.float32) * scale - 1.0).to(vbuf.dtype.element_ty), mask=ok)
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
    """Start row i of the incremental sampler: reads image row i - 1 of x (long
    [B, C, H, W]) and writes cache.vbuf, cache.v_pre and cache.row_bias (see GatedCache),
    exactly as the PyTorch step `pixelcnn.sampling.cached.row_step`."""
    if i == 0:                                                       # nothing above: biases
        cache.row(0, None)
        return
    w = cache.w
    check_device(x, w.wv)
    B, C, H, W = x.shape
    hd = w.hidden
    _sampler_row_fwd_kernel[(B,)](
        x, cache.vbuf, cache.v_pre, cache.row_bias, w.wv, cache.bias_v, w.wlink, cache.bias_h,
        i, B, C, H, W, hd, w.layers, 2.0 / (w.levels - 1),
        KS=w.kernel_size, BW=pow2(W), BN=min(64, pow2(hd)), BK=32, CP=pow2(C, 1),
        num_warps=4, **launch_flags(w.wv.dtype))
