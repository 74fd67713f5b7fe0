"""The incremental sampler's row step as batched GEMMs over the B x W positions of the row
above: the same work as `sampler_row` (every layer's vertical stack of image row i - 1 and
its link to the horizontal stack), with the taps as the K loop and tiles of BM positions x BN
output columns spread over as many programs as there are tiles.

One launch per phase (a row step runs H times per image, so L + 2 launches per row cost a few
microseconds in a CUDA graph; no grid barrier is needed):
    0          embed   image row i - 1 into layer 0's ring slot
    1 + l      vert l  v_pre[l] = the (p+1) x k taps of layer l's ring @ wv[l] + bias
                       (+ the conditioning map's vertical bias of row i - 1); its gate is
                       layer l + 1's vertical input, in that layer's ring slot
    L + 1      link    row_bias[l] = v_pre[l] @ wlink[l] + bias_h[l], every layer at once
With a map, its horizontal bias of row i is added to row_bias by torch after the launches.
"""
import torch
import triton
import triton.language as tl

from .common import (feature_block, gate, gated_matmul_rows, launch_flags, start_row,
                     store_embedded, vertical_taps)


@triton.jit
def _embed(x, vbuf, table, i, B, C, HEIGHT, WIDTH, HD, slot, LEVELS, E, F,
           P: tl.constexpr, BM: tl.constexpr, FB: tl.constexpr):
    m = tl.program_id(0) * BM + tl.arange(0, BM)                    # positions (b, w)
    b, w = m // WIDTH, m % WIDTH
    ring = vbuf + ((b * (P + 1) + slot) * (WIDTH + 2 * P) + P + w) * HD    # layer 0
    store_embedded(ring, x, b * C * HEIGHT * WIDTH + (i - 1) * WIDTH + w, m < B * WIDTH,
                   HEIGHT * WIDTH, table, LEVELS, E, F, FB, False, 0, 0)


@triton.jit
def _vertical(l, i, vbuf, v_pre, wv, bias_v, map_v, B, WIDTH, HD, L, slot,
              KS: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
              HAS_MAP: tl.constexpr, BF16: tl.constexpr, INTERPRET: tl.constexpr):
    P: tl.constexpr = KS // 2
    KH: tl.constexpr = P + 1
    NN = tl.cdiv(HD, BN)
    t = tl.program_id(0)
    m = t // NN * BM + tl.arange(0, BM)
    n = t % NN * BN + tl.arange(0, BN)
    b, w = m // WIDTH, m % WIDTH
    m_ok, n_ok = m < B * WIDTH, n < HD
    ok = m_ok[:, None] & n_ok[None, :]
    WP = WIDTH + 2 * P
    bias = bias_v + (l * B + b[:, None]) * 2 * HD + n[None, :]
    f = tl.load(bias, mask=ok, other=0.0).to(tl.float32)
    g = tl.load(bias + HD, mask=ok, other=0.0).to(tl.float32)
    ring = vbuf + (l * B + b) * KH * WP * HD                         # [BM] this layer's rings
    f, g = vertical_taps(f, g, ring, w, m_ok, wv + l * KH * KS * HD * 2 * HD, i, HD, WP,
                         n, n_ok, KS, BK, BF16, INTERPRET)
    if HAS_MAP:                                                      # the map, row i - 1
        mp = map_v + (l * B * WIDTH + m[:, None]) * 4 * HD + n[None, :]
        f += tl.load(mp, mask=ok, other=0.0).to(tl.float32)
        g += tl.load(mp + HD, mask=ok, other=0.0).to(tl.float32)
    pre = v_pre + ((l * B + b[:, None]) * WIDTH + w[:, None]) * 2 * HD + n[None, :]
    tl.store(pre, f.to(v_pre.dtype.element_ty), mask=ok)
    tl.store(pre + HD, g.to(v_pre.dtype.element_ty), mask=ok)
    if l + 1 < L:                                                    # next layer's input
        nxt = vbuf + ((((l + 1) * B + b[:, None]) * KH + slot) * WP + P + w[:, None]) * HD
        tl.store(nxt + n[None, :], gate(f, g).to(vbuf.dtype.element_ty), mask=ok)


@triton.jit
def _link(v_pre, row_bias, wlink, bias_h, B, WIDTH, HD,
          BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
          BF16: tl.constexpr, INTERPRET: tl.constexpr):
    NM = tl.cdiv(B * WIDTH, BM)
    NN = tl.cdiv(HD, BN)
    t = tl.program_id(0)
    l = t // (NM * NN)
    m = (t // NN) % NM * BM + tl.arange(0, BM)
    n = t % NN * BN + tl.arange(0, BN)
    b = m // WIDTH
    m_ok, n_ok = m < B * WIDTH, n < HD
    ok = m_ok[:, None] & n_ok[None, :]
    bias = bias_h + (l * B + b[:, None]) * 2 * HD + n[None, :]
    f = tl.load(bias, mask=ok, other=0.0).to(tl.float32)
    g = tl.load(bias + HD, mask=ok, other=0.0).to(tl.float32)
    rows = v_pre + (l * B * WIDTH + m) * 2 * HD                      # [BM]
    f, g = gated_matmul_rows(f, g, rows, m_ok, wlink + l * 4 * HD * HD, 2 * HD, n, n_ok, HD,
                             BK, BF16, INTERPRET)
    out = row_bias + (l * B * WIDTH + m[:, None]) * 2 * HD + n[None, :]
    tl.store(out, f.to(row_bias.dtype.element_ty), mask=ok)
    tl.store(out + HD, g.to(row_bias.dtype.element_ty), mask=ok)


@triton.jit(do_not_specialize=["ph", "i", "slot"])
def _sampler_row_gemm_kernel(ph, x, vbuf, v_pre, row_bias, wv, bias_v, wlink, bias_h, table,
                             map_v, i, slot, B, C, HEIGHT, WIDTH, HD, L, LEVELS, E, F,
                             KS: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                             BK: tl.constexpr, FB: tl.constexpr, HAS_MAP: tl.constexpr,
                             BF16: tl.constexpr, INTERPRET: tl.constexpr):
    if ph == 0:
        _embed(x, vbuf, table, i, B, C, HEIGHT, WIDTH, HD, slot, LEVELS, E, F, KS // 2, BM, FB)
    elif ph <= L:
        _vertical(ph - 1, i, vbuf, v_pre, wv, bias_v, map_v, B, WIDTH, HD, L, slot,
                  KS, BM, BN, BK, HAS_MAP, BF16, INTERPRET)
    else:
        _link(v_pre, row_bias, wlink, bias_h, B, WIDTH, HD, BM, BN, BK, BF16, INTERPRET)


def tiles(positions: int, dtype: torch.dtype, hidden: int, sub_batch: bool = False) -> tuple:
    """(BM positions, BN columns, warps) per tile: small tiles while there are few positions
    (more programs share the weights); for bf16 64 x 32 from 1,024 positions (a batch of 32 at
    width 32) and 128 x 32 from 4,096, 128 x 64 for 64 hidden channels or more: each block of
    positions re-reads the weights and each block of columns the taps, from L2
    (bench.roofline, cifar preset at batch 256: 2.2 ms a row step with 128 x 32, 1.8 with
    128 x 64; bench.compile: 168-247 registers, no spills; narrower models spill at 64 on
    sm_80, and would mostly multiply padding). float32's exact products spill in tiles that
    large. sub_batch (one of PIXELCNN_GRID_SUB_BATCHES side by side): the large tiles from
    1,024 positions, a quarter of the programs for the same chain of K iterations, so that
    the SMs it leaves run the other sub-batches' steps (bench.roofline.sub_batches)."""
    if dtype != torch.bfloat16:
        return 32, 16, 8
    if positions < (1024 if sub_batch else 4096):
        return (32, 16, 4) if positions < 1024 else (64, 32, 4)
    return 128, (64 if hidden >= 64 else 32), 8


def launches(cache, x, i: int, map_v=None, sub_batch: bool = False) -> tuple:
    """(args, meta, [(phase, programs)]) of row i's launches (i >= 1; map_v: row_maps' vertical
    half, with a conditioning map; sub_batch: `tiles`), as `sampler_row_gemm` makes them (also
    bench.phase_times, which times them under other launch parameters)."""
    w = cache.w
    B, C, H, W = x.shape
    hd, L = w.hidden, w.layers
    bm, bn, warps = tiles(B * W, w.wv.dtype, hd, sub_batch)
    nm, nn = triton.cdiv(B * W, bm), triton.cdiv(hd, bn)
    args = (x, cache.vbuf, cache.v_pre, cache.row_bias, w.wv, cache.bias_v, w.wlink,
            cache.bias_h, w.table, cache.v_pre if map_v is None else map_v,  # (no map: unread)
            i, (i - 1) % (w.pad + 1), B, C, H, W, hd, L, w.levels, w.table.shape[-1],
            w.features)
    meta = dict(KS=w.kernel_size, BM=bm, BN=bn, BK=32, FB=feature_block(w),
                HAS_MAP=map_v is not None, num_warps=warps, maxnreg=255,
                **launch_flags(w.wv.dtype))
    return args, meta, [(0, nm)] + [(1 + l, nm * nn) for l in range(L)] + [(L + 1, L * nm * nn)]


def sampler_row_gemm(cache, x, i: int, sub_batch: bool = False):
    """Row step i of the incremental sampler (`common.start_row`), as batched GEMMs (in one
    of several sub-batches side by side: sub_batch, see `tiles`)."""
    def launch(map_v):
        args, meta, todo = launches(cache, x, i, map_v, sub_batch)
        for ph, programs in todo:
            _sampler_row_gemm_kernel[(programs,)](ph, *args, **meta)
    start_row(cache, x, i, launch)
