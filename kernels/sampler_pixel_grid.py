"""The incremental sampler's sub-pixel step across the whole GPU: the same work as
`sampler_pixel` (every layer's horizontal stack at one pixel, the head, the softmax and the
inverse-CDF sample), split into phases whose tiles - BB images x BN output columns - are
shared by many programs, so that at batch 1 many SMs share each layer's weights and at batch
256 every SM is busy.

Phases of one step (a phase reads only what earlier phases wrote), L + 3 at every sub-pixel:
    1        layer 0 gated[:, 0] = gate(base[0] + the embedded pixel @ wh_cur[0]); at the
                     first sub-pixel of a pixel (left) its programs first compute base[0] =
                     row_bias[0, j] + taps j-p..j-1 @ wh_prev[0] (K: the F embedded features
                     of each tap, not the padded H)
    1 + l    layer l gated[:, l] = gate(base[l] + a @ wres_cur[l] + bres_cur[l] + r @ wh_cur[l])
                     with a = gated[:, l-1], r = input of layer l - 1 (0 for l = 1): the
                     residual folded into the gate's product (packing.residual_into_next), so
                     that a layer costs one phase, not two; in the same K loop it finishes
                     layer l - 1: input of layer l = r + a @ wres[l-1] + bres[l-1] (into
                     hbuf, for the next phase and the next pixels' left taps) and the skip
                     sum += a @ wskip[l-1] (float32)
                     left: layer (l - 1)'s phase also runs, in tiles of their own, layer l's
                     base[l] = row_bias[l, j] + taps j-p..j-1 @ wh_prev[l]: those taps were
                     final a pixel ago, so they need no phase of their own (the design the
                     H200 timed had one, `left`, before layer 0: 5 us of a 90 us step at
                     batch 1, 28 of 127 at 256, bench.phase_times)
    L + 1    hidden  scratch[:, :H] = relu(skip sum + gated[:, L-1] @ wskip[L-1])
    L + 2    hidden  scratch[:, H:] = relu(scratch[:, :H] @ w1 + b1)
    L + 3    out     logits of channel c, softmax, sample into x; on the pixel's last channel
                     its embedded value (rows of the packed table) becomes layer 0's input at
                     column j
Completion (c=None) runs the layers only (left), then out's last-channel write.
PIXELCNN_GRID_HEAD=1 (kernels/grid.head_requested, opt-in too; every form) runs L + 1: out's
programs, one per 16 images, make their images' two hidden activations first (`_head`), so
that a sub-pixel waits for two phases fewer (a launch and a phase's floor each: bench.roofline,
`triton-grid/.../head`) at the price of a longer chain in one phase.

PIXELCNN_GRID_SPLIT=1 (kernels/grid.split_requested, opt-in until a GPU has timed it) runs
each layer phase l >= 2 in twice the tiles: the gate's four products in one half, layer
l - 1's residual and skip products in the other, so that a program's chain is four products,
not six, on twice the SMs (bench.roofline: `triton-grid/split`). PIXELCNN_GRID_AHEAD=1
(kernels/grid.ahead_requested, SPLIT = 2, opt-in too) also moves the gate's product on layer
l - 1's input a phase early (`_ahead`, through the composed `wres_ahead`): a gate tile, a
finishing tile and the two look-ahead halves for layer l + 1, each a chain of two products
(bench.roofline: `triton-grid/ahead`).

PIXELCNN_GRID_GROUPS=1 (kernels/grid.groups_requested, opt-in too; every form) makes at
sub-pixel c only colour group c's columns of every phase, over the K of groups <= c
(`columns`): what the masks let channel c's logits see, and all that changed since sub-pixel
c - 1 (GatedCache keeps the groups made before). Layer 0 still makes its whole base at a
pixel's first sub-pixel, the left taps stay whole, completion makes every column.

Two forms run the same per-tile code (`_phase`, tile t of phase ph):
- one launch per phase, each program one tile, with no loop over tiles (a loop would let the
  compiler hoist every branch's addresses out of it: 168 registers against 130, bench.compile):
  the default (the interpreter runs this form, and the tests);
- persistent (CUDA, bf16, PIXELCNN_GRID_PERSISTENT=1: kernels/grid.persistent_requested):
  one launch per step, min(SMs, widest phase's tiles) programs that loop over their tiles
  (_phase_tiles) and meet at a grid barrier (kernels/grid.py) between phases. Kept to time
  barriers against launches: slower on the H200 (bench/README.md), and with every phase's
  code in one loop it spills 4-24 bytes (bench.compile); float32's FMA products spill more.
Buffers are GatedCache's; activations pass between phases through L2, loaded with .cg (never
from a possibly stale L1 line).
"""
import os

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from .common import (check_device, feature_block, gate, gated_matmul_embedded,
                     gated_matmul_rows, inverse_cdf, launch_flags, matmul_rows, mm, pow2,
                     store_embedded)
from .grid import grid_barrier, poll_mode

GRID_PHASES = "L+3all"  # the design: L + 3 phases per sub-pixel, c = 0 too (bench.roofline
                        # models each design; "L+3": a left phase at c = 0, "2L+2" unfolded)
CG: tl.constexpr = tl.constexpr(".cg")     # activations: from L2, never a stale L1 line
OUT_IMAGES: tl.constexpr = tl.constexpr(16)  # images per tile of the out phase


@triton.jit
def _tile(t, B, n0, NC, BB: tl.constexpr, BN: tl.constexpr):
    """Tile t of a layer's images x columns grid over columns n0 .. n0 + NC - 1,
    ceil(B / BB) * ceil(NC / BN) tiles: its images bb, columns n, and their masks."""
    NN = tl.cdiv(NC, BN)
    bb = t // NN * BB + tl.arange(0, BB)
    n = n0 + t % NN * BN + tl.arange(0, BN)
    b_ok, n_ok = bb < B, n < n0 + NC
    return bb, n, b_ok, n_ok, b_ok[:, None] & n_ok[None, :]


@triton.jit
def _left_taps(l, hbuf, row_bias, base, wh_prev, j, B, WIDTH, HD, F, bb, b_ok, n, n_ok, ok,
               prefetched, P: tl.constexpr, BK: tl.constexpr, KP: tl.constexpr,
               PREFETCH: tl.constexpr, BF16: tl.constexpr, INTERPRET: tl.constexpr):
    """Layer l's base[l] = row_bias[l, j] + its taps j-p..j-1 @ wh_prev[l] (f and g, stored and
    returned): everything of the pixel's pre-activation but its current tap. Layer 0's taps
    hold F embedded features (wh_prev's rows past F are zero): K = F a tap, not H. A later
    layer's p taps are p H features in a row, in hbuf as in wh_prev: one K loop over p H, or
    (PREFETCH, l >= 1) one K tile of KP against the weights `prefetched` (_left_weights)."""
    rb = row_bias + ((l * B + bb[:, None]) * WIDTH + j) * 2 * HD + n[None, :]
    f = tl.load(rb, mask=ok, other=0.0).to(tl.float32)
    g = tl.load(rb + HD, mask=ok, other=0.0).to(tl.float32)
    rows = hbuf + ((l * B + bb) * (P + WIDTH) + j) * HD
    if l == 0:
        for t in tl.static_range(P):
            f, g = gated_matmul_rows(f, g, rows + t * HD, b_ok,
                                     wh_prev + (l * P + t) * HD * 2 * HD, F, n, n_ok, HD, BK,
                                     BF16, INTERPRET, CG)
    elif PREFETCH:
        wf, wg = prefetched
        kk = tl.arange(0, KP)
        a = tl.load(rows[:, None] + kk[None, :], mask=b_ok[:, None] & (kk < P * HD)[None, :],
                    other=0.0, cache_modifier=CG).to(tl.float32)
        f = mm(a, wf, f, BF16, INTERPRET)
        g = mm(a, wg, g, BF16, INTERPRET)
    else:
        f, g = gated_matmul_rows(f, g, rows, b_ok, wh_prev + l * P * HD * 2 * HD, P * HD, n,
                                 n_ok, HD, BK, BF16, INTERPRET, CG)
    f, g = f.to(base.dtype.element_ty), g.to(base.dtype.element_ty)    # as stored: the same
    out = base + (l * B + bb[:, None]) * 2 * HD + n[None, :]          # base at every c
    tl.store(out, f, mask=ok)
    tl.store(out + HD, g, mask=ok)
    return f.to(tl.float32), g.to(tl.float32)


@triton.jit
def _left_weights(l, wh_prev, HD, n, n_ok, P: tl.constexpr, KP: tl.constexpr):
    """PREFETCH: the f and g halves [KP, BN] of layer l's p left taps' weights, rows of
    wh_prev[l] as one K of p H (_left_taps)."""
    kk = tl.arange(0, KP)
    w = wh_prev + l * P * HD * 2 * HD + kk[:, None] * (2 * HD) + n[None, :]
    w_ok = (kk < P * HD)[:, None] & n_ok[None, :]
    return tl.load(w, mask=w_ok, other=0.0), tl.load(w + HD, mask=w_ok, other=0.0)


@triton.jit
def _own_columns(l, left, n0, NC, HD):
    """(first column, width) of layer l's own tiles: n0, NC (`columns`), but every column for
    layer 0 at a pixel's first sub-pixel (left), which makes its whole base there."""
    first, width = n0, NC
    if l == 0:
        if left:
            first, width = 0, HD
    return first, width


@triton.jit
def _own_tiles(l, left, NC, B, HD, BB: tl.constexpr, BN: tl.constexpr):
    """How many tiles layer l's own columns (_own_columns) make: the first tiles of its
    phase, before the split's, the look-ahead's and the left taps' (_layer)."""
    return tl.cdiv(B, BB) * tl.cdiv(_own_columns(l, left, 0, NC, HD)[1], BN)


@triton.jit
def _layer(t, l, x, hbuf, row_bias, base, gated, skip, ahead, wh_prev, wh_cur, wres_cur,
           bres_cur, wres_ahead, bres_ahead, wres, bres, wskip, bskip, table, i, j, left, n0,
           NC, KC, B, C, HEIGHT, WIDTH, HD, L, LEVELS, E, F, P: tl.constexpr, SAMPLE: tl.constexpr,
           BB: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, KL: tl.constexpr,
           KP: tl.constexpr, FB: tl.constexpr, SPLIT: tl.constexpr, PREFETCH: tl.constexpr,
           WAIT: tl.constexpr, BF16: tl.constexpr, INTERPRET: tl.constexpr):
    """Tile t of layer l's phase: layer l's gated unit at the current sub-pixel. Layer 0: from
    the embedded pixel. Layer l >= 1: from layer l - 1's gated unit a and input r (r = 0 for
    l = 1), in one K loop that also finishes layer l - 1 (its residual r + a @ wres + bres,
    layer l's input, into hbuf; its skip product when sampling):
        pre = base + a @ wres_cur[l] + bres_cur[l] + r @ wh_cur[l]   (= input of l @ wh_cur[l])
    SPLIT 1: layer l - 1's residual and skip in tiles of their own, beside the gate's (twice
    the programs, each with four products or two, not six). SPLIT 2 (the look-ahead): the
    gate takes r @ wh_cur[l] from `ahead`, made in layer l - 1's phase by two more kinds of
    tile from that phase's a and r (r_{l-1} = r_{l-2} + a_{l-2} @ wres + bres: _ahead), and
    computes a @ wres_cur[l] alone: every program a chain of two products. left (a pixel's
    first sub-pixel; not a constexpr, so that c = 0 and c > 0 share a compile): layer 0
    computes its base first; the tiles past the layer's (_phase_tiles) compute layer l + 1's.
    KL: the K tile of the gate tiles' products (BK, or with PREFETCH >= HD). PREFETCH
    (unsplit): the gate tiles of l >= 1 load their weights, all six products' K in one tile,
    before anything else, as the left taps' tiles load theirs (K = p H in one tile of KP);
    WAIT (a programmatic dependent launch):
    only then wait for the previous phase, so that the weights' round trip overlaps it.
    n0, NC, KC (GatedCache's column groups, `columns`): the tiles' output columns, n0 ..
    n0 + NC - 1, and the K of their products on the current pixel's features, KC; the
    left taps' tiles, and layer 0's at a pixel's first sub-pixel (its whole base), every
    column."""
    first, width = _own_columns(l, left, n0, NC, HD)
    per_layer = tl.cdiv(B, BB) * tl.cdiv(width, BN)
    parts = 1
    if SPLIT:
        if l > 0:
            parts = 2
            if SPLIT == 2:
                if l + 1 < L:
                    parts = 4               # + the look-ahead's two halves, for layer l + 1
    tt = t % per_layer
    if t >= parts * per_layer:      # the left taps' tiles: every column
        tt, first, width = t - parts * per_layer, 0, HD
    bb, n, b_ok, n_ok, ok = _tile(tt, B, first, width, BB, BN)
    if t >= parts * per_layer:      # left: layer l + 1's base, for the next phase
        prefetched = 0
        if PREFETCH:                # the tiles that _prefetches names
            prefetched = _left_weights(l + 1, wh_prev, HD, n, n_ok, P, KP)
            if WAIT:
                gdc_wait()
        _left_taps(l + 1, hbuf, row_bias, base, wh_prev, j, B, WIDTH, HD, F, bb, b_ok, n,
                   n_ok, ok, prefetched, P, BK, KP, PREFETCH, BF16, INTERPRET)
    elif l == 0:        # the current pixel, embedded; channels not yet sampled meet mask A
        if left:
            f, g = _left_taps(l, hbuf, row_bias, base, wh_prev, j, B, WIDTH, HD, F, bb, b_ok,
                              n, n_ok, ok, 0, P, BK, KP, False, BF16, INTERPRET)
        else:
            f, g = _base(base, l, B, HD, bb, n, ok)
        f, g = gated_matmul_embedded(f, g, x, bb * C * HEIGHT * WIDTH + i * WIDTH + j, b_ok,
                                     HEIGHT * WIDTH, table, LEVELS, E, F, wh_cur, n, n_ok,
                                     HD, FB, BF16, INTERPRET)
        _store_gate(gated, f, g, l, L, HD, bb, n, ok)
    elif t < per_layer:         # the gate (unsplit: and layer l - 1's residual and skip)
        prefetched = 0
        if PREFETCH:        # the tiles that _prefetches names
            prefetched = _layer_weights(0, l, wh_cur, wres_cur, wres, wskip, HD, KC, n, n_ok,
                                        SAMPLE, True, True, KL)
            if WAIT:
                gdc_wait()
        f, g = _base(base, l, B, HD, bb, n, ok)
        if SPLIT == 2:
            f, g = _gate_ahead(f, g, l, gated, ahead, wres_cur, bres_cur, B, HD, KC, L, bb,
                               b_ok, n, n_ok, BK, BF16, INTERPRET)
        else:
            f, g = _from_previous_layer(f, g, l, hbuf, gated, skip, wh_cur, wres_cur,
                                        bres_cur, wres, bres, wskip, bskip, j, B, WIDTH, HD, KC,
                                        L, bb, n, b_ok, n_ok, ok, prefetched, P, SAMPLE, True,
                                        not SPLIT, BB, BN, KL, PREFETCH, BF16, INTERPRET)
        _store_gate(gated, f, g, l, L, HD, bb, n, ok)
    elif t < 2 * per_layer:
        if SPLIT:               # the split's other half: layer l - 1's residual and skip
            zero = tl.zeros((BB, BN), tl.float32)
            _from_previous_layer(zero, zero, l, hbuf, gated, skip, wh_cur, wres_cur,
                                 bres_cur, wres, bres, wskip, bskip, j, B, WIDTH, HD, KC, L,
                                 bb, n, b_ok, n_ok, ok, 0, P, SAMPLE, False, True, BB, BN, BK,
                                 False, BF16, INTERPRET)
    else:
        if SPLIT == 2:          # the look-ahead for layer l + 1, one half
            _ahead(t // per_layer - 2, l, hbuf, gated, ahead, wh_cur, wres_ahead, bres_ahead,
                   j, B, WIDTH, HD, KC, L, bb, b_ok, n, n_ok, ok, P, BB, BN, BK, BF16,
                   INTERPRET)


@triton.jit
def _ahead_tile(ahead, slot, half, B, HD, bb, n):
    """Pointers to the f columns n of images bb in GatedCache.ahead [2 slots, 2 halves, B, 2H]
    (g: + HD)."""
    return ahead + ((slot * 2 + half) * B + bb[:, None]) * 2 * HD + n[None, :]


@triton.jit
def _gate_ahead(f, g, l, gated, ahead, wres_cur, bres_cur, B, HD, KC, L, bb, b_ok, n, n_ok,
                BK: tl.constexpr, BF16: tl.constexpr, INTERPRET: tl.constexpr):
    """SPLIT 2: layer l's f and g = base + bres_cur + (l >= 2) both halves of its look-ahead
    (slot l % 2, from layer l - 1's phase) + a @ wres_cur[l], a = layer l - 1's gated unit."""
    f, g = _gate_bias(f, g, bres_cur + l * 2 * HD, HD, n, n_ok)
    q_ok = (b_ok & (bb * 0 + l > 1))[:, None] & n_ok[None, :]
    for half in tl.static_range(2):
        q = _ahead_tile(ahead, l % 2, half, B, HD, bb, n)
        f += tl.load(q, mask=q_ok, other=0.0, cache_modifier=CG)
        g += tl.load(q + HD, mask=q_ok, other=0.0, cache_modifier=CG)
    return gated_matmul_rows(f, g, gated + (bb * L + l - 1) * HD, b_ok, wres_cur + l * HD * 2 * HD,
                             KC, n, n_ok, HD, BK, BF16, INTERPRET, CG)


@triton.jit
def _ahead(half, l, hbuf, gated, ahead, wh_cur, wres_ahead, bres_ahead, j, B, WIDTH, HD, KC, L, bb,
           b_ok, n, n_ok, ok, P: tl.constexpr, BB: tl.constexpr, BN: tl.constexpr,
           BK: tl.constexpr, BF16: tl.constexpr, INTERPRET: tl.constexpr):
    """SPLIT 2, in layer l's phase: half of the part of layer l + 1's gate that comes from
    layer l's input r_l = r_{l-1} + a @ wres[l-1] + bres[l-1] (a = layer l - 1's gated unit,
    r_{l-1} its input, 0 for l = 1), into ahead slot (l + 1) % 2: half 0,
    a @ wres_ahead[l + 1] + bres_ahead[l + 1]; half 1, r_{l-1} @ wh_cur[l + 1]."""
    rows = gated + (bb * L + l - 1) * HD
    rows_ok = b_ok
    w = wres_ahead + (l + 1) * HD * 2 * HD
    if half == 1:
        rows = hbuf + (((l - 1) * B + bb) * (P + WIDTH) + j + P) * HD
        rows_ok = b_ok & (bb * 0 + l > 1)
        w = wh_cur + (l + 1) * HD * 2 * HD
    bias_ok = n_ok & (n * 0 + half == 0)
    zero = tl.zeros((BB, BN), tl.float32)
    f, g = _gate_bias(zero, zero, bres_ahead + (l + 1) * 2 * HD, HD, n, bias_ok)
    f, g = gated_matmul_rows(f, g, rows, rows_ok, w, KC, n, n_ok, HD, BK, BF16, INTERPRET, CG)
    out = _ahead_tile(ahead, (l + 1) % 2, half, B, HD, bb, n)
    tl.store(out, f, mask=ok)
    tl.store(out + HD, g, mask=ok)


@triton.jit
def _gate_bias(f, g, bias, HD, n, n_ok):
    """f, g + the two halves of a gate's bias [2 HD] at columns n (masked by n_ok: zero)."""
    f += tl.load(bias + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    g += tl.load(bias + HD + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    return f, g


@triton.jit
def _base(base, l, B, HD, bb, n, ok):
    """Layer l's f and g before the current tap (row bias + left taps), as left stored them."""
    bp = base + (l * B + bb[:, None]) * 2 * HD + n[None, :]
    return (tl.load(bp, mask=ok, other=0.0, cache_modifier=CG).to(tl.float32),
            tl.load(bp + HD, mask=ok, other=0.0, cache_modifier=CG).to(tl.float32))


@triton.jit
def _store_gate(gated, f, g, l, L, HD, bb, n, ok):
    tl.store(gated + (bb[:, None] * L + l) * HD + n[None, :],
             gate(f, g).to(gated.dtype.element_ty), mask=ok)


@triton.jit
def _layer_weights(k0, l, wh_cur, wres_cur, wres, wskip, HD, KC, n, n_ok, SAMPLE: tl.constexpr,
                   GATE: tl.constexpr, FINISH: tl.constexpr, BK: tl.constexpr):
    """The weight tiles [BK, BN] of K tile k0 of _from_previous_layer's products: GATE, layer
    l's f and g on a (wres_cur) and on r (wh_cur); FINISH, layer l - 1's residual and (SAMPLE)
    skip; 0 for the products not made."""
    kk = k0 + tl.arange(0, BK)
    w_ok = (kk < KC)[:, None] & n_ok[None, :]
    wcf, wcg, whf, whg, wr, ws = 0, 0, 0, 0, 0, 0
    if GATE:
        w2 = kk[:, None] * (2 * HD) + n[None, :]
        wc = wres_cur + l * HD * 2 * HD
        wh = wh_cur + l * HD * 2 * HD
        wcf = tl.load(wc + w2, mask=w_ok, other=0.0)
        wcg = tl.load(wc + w2 + HD, mask=w_ok, other=0.0)
        whf = tl.load(wh + w2, mask=w_ok, other=0.0)
        whg = tl.load(wh + w2 + HD, mask=w_ok, other=0.0)
    if FINISH:
        w1 = kk[:, None] * HD + n[None, :]
        wr = tl.load(wres + (l - 1) * HD * HD + w1, mask=w_ok, other=0.0)
        if SAMPLE:
            ws = tl.load(wskip + (l - 1) * HD * HD + w1, mask=w_ok, other=0.0)
    return wcf, wcg, whf, whg, wr, ws


@triton.jit
def _from_previous_layer(f, g, l, hbuf, gated, skip, wh_cur, wres_cur, bres_cur, wres, bres,
                         wskip, bskip, j, B, WIDTH, HD, KC, L, bb, n, b_ok, n_ok, ok, prefetched,
                         P: tl.constexpr, SAMPLE: tl.constexpr, GATE: tl.constexpr,
                         FINISH: tl.constexpr, BB: tl.constexpr, BN: tl.constexpr,
                         BK: tl.constexpr, PREFETCH: tl.constexpr, BF16: tl.constexpr,
                         INTERPRET: tl.constexpr):
    """_layer's products for l >= 1 over the K tiles of a (layer l - 1's gated unit) and r
    (its input; masked to zero for l = 1, whose previous layer has no residual input): GATE,
    layer l's f and g (returned); FINISH, layer l - 1's residual (into hbuf) and skip.
    PREFETCH: the weights are `prefetched`, _layer_weights' of the one K tile (BK >= HD)."""
    has_r = bb * 0 + l > 1                                           # [BB] (a mask)
    a_rows = gated + (bb * L + l - 1) * HD
    r_rows = hbuf + (((l - 1) * B + bb) * (P + WIDTH) + j + P) * HD
    r_ok = b_ok & has_r
    if GATE:
        f, g = _gate_bias(f, g, bres_cur + l * 2 * HD, HD, n, n_ok)
    res = tl.zeros((BB, BN), tl.float32)
    sp = skip + bb[:, None] * HD + n[None, :]
    s = tl.zeros((BB, BN), tl.float32)
    if FINISH:
        res += tl.load(bres + (l - 1) * HD + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
        res += tl.load(r_rows[:, None] + n[None, :], mask=r_ok[:, None] & n_ok[None, :],
                       other=0.0, cache_modifier=CG).to(tl.float32)
        if SAMPLE:
            s += tl.load(sp, mask=ok & has_r[:, None], other=0.0, cache_modifier=CG) + tl.where(
                has_r[:, None], 0.0,
                tl.load(bskip + n, mask=n_ok, other=0.0).to(tl.float32)[None, :])
    k = tl.arange(0, BK)
    for k0 in range(0, KC, BK):
        kk = k0 + k
        k_ok = kk < KC
        if PREFETCH:
            wcf, wcg, whf, whg, wr, ws = prefetched
        else:
            wcf, wcg, whf, whg, wr, ws = _layer_weights(k0, l, wh_cur, wres_cur, wres, wskip,
                                                        HD, KC, n, n_ok, SAMPLE, GATE, FINISH,
                                                        BK)
        a = tl.load(a_rows[:, None] + kk[None, :], mask=b_ok[:, None] & k_ok[None, :],
                    other=0.0, cache_modifier=CG).to(tl.float32)
        if GATE:
            r = tl.load(r_rows[:, None] + kk[None, :], mask=r_ok[:, None] & k_ok[None, :],
                        other=0.0, cache_modifier=CG).to(tl.float32)
            f = mm(a, wcf, f, BF16, INTERPRET)
            g = mm(a, wcg, g, BF16, INTERPRET)
            f = mm(r, whf, f, BF16, INTERPRET)
            g = mm(r, whg, g, BF16, INTERPRET)
        if FINISH:
            res = mm(a, wr, res, BF16, INTERPRET)
            if SAMPLE:
                s = mm(a, ws, s, BF16, INTERPRET)
    if FINISH:
        tl.store(hbuf + (((l * B + bb[:, None]) * (P + WIDTH) + j + P) * HD) + n[None, :],
                 res.to(hbuf.dtype.element_ty), mask=ok)                 # layer l's input
        if SAMPLE:
            tl.store(sp, s, mask=ok)
    return f, g


@triton.jit
def _hidden(t, second, gated, skip, scratch, wskip, bskip, w1, b1, n0, NC, KC, B, HD, L,
            BB: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
            BF16: tl.constexpr, INTERPRET: tl.constexpr):
    """Tile t of the head's two hidden activations: relu(skip sum) (second=False), relu(1x1)
    (True), columns n0 .. n0 + NC - 1 over K = KC."""
    bb, n, b_ok, n_ok, ok = _tile(t, B, n0, NC, BB, BN)
    _hidden_tile(second, bb, n, b_ok, n_ok, ok, gated, skip, scratch, wskip, bskip, w1, b1,
                 KC, HD, L, BB, BN, BK, BF16, INTERPRET)


@triton.jit
def _hidden_tile(second, bb, n, b_ok, n_ok, ok, gated, skip, scratch, wskip, bskip, w1, b1,
                 KC, HD, L, BB: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                 BF16: tl.constexpr, INTERPRET: tl.constexpr):
    """Images bb x columns n of one of the head's hidden activations (see _hidden)."""
    if second:
        a = tl.zeros((BB, BN), tl.float32) + tl.load(b1 + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
        a = matmul_rows(a, scratch + bb * 2 * HD, b_ok, w1, KC, n, n_ok, HD,
                        BK, BF16, INTERPRET, CG)
        out = scratch + bb[:, None] * 2 * HD + HD + n[None, :]
    else:
        if L > 1:
            a = tl.load(skip + bb[:, None] * HD + n[None, :], mask=ok, other=0.0,
                        cache_modifier=CG)
        else:
            a = tl.zeros((BB, BN), tl.float32) + tl.load(bskip + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
        a = matmul_rows(a, gated + (bb * L + L - 1) * HD, b_ok, wskip + (L - 1) * HD * HD,
                        KC, n, n_ok, HD, BK, BF16, INTERPRET, CG)
        out = scratch + bb[:, None] * 2 * HD + n[None, :]
    tl.store(out, tl.maximum(a, 0.0).to(scratch.dtype.element_ty), mask=ok)


@triton.jit
def _head(bb, b_ok, gated, skip, scratch, wskip, bskip, w1, b1, n0, NC, KC, HD, L,
          BB: tl.constexpr, HN: tl.constexpr, BK: tl.constexpr, BF16: tl.constexpr,
          INTERPRET: tl.constexpr):
    """HEAD: both hidden activations of images bb, columns n0 .. n0 + NC - 1 in blocks of
    HN, in the out phase's program (not two phases of their own): each activation waits for
    the program's stores of the one before (a block barrier), as the logits wait for it."""
    for second in tl.static_range(2):
        for m0 in range(n0, n0 + NC, HN):
            n = m0 + tl.arange(0, HN)
            n_ok = n < n0 + NC
            _hidden_tile(second, bb, n, b_ok, n_ok, b_ok[:, None] & n_ok[None, :], gated,
                         skip, scratch, wskip, bskip, w1, b1, KC, HD, L, BB, HN, BK, BF16,
                         INTERPRET)
        tl.debug_barrier()


@triton.jit
def _out(t, x, u, hbuf, gated, skip, scratch, wskip, bskip, w1, b1, w2, b2, table, i, j, c,
         n0, NC, KC, B, C, HEIGHT, WIDTH, HD, L, LEVELS, E, F, temperature, P: tl.constexpr,
         SAMPLE: tl.constexpr, LAST: tl.constexpr, BK: tl.constexpr, BKO: tl.constexpr,
         FB: tl.constexpr, LVP: tl.constexpr, HEAD: tl.constexpr, HN: tl.constexpr,
         BF16: tl.constexpr, INTERPRET: tl.constexpr):
    """Image block t: (HEAD) the head's hidden activations (_head), the logits of channel c,
    softmax, sample; on the last channel the pixel's embedding into layer 0's input. KC: the
    hidden columns the logits see."""
    BB: tl.constexpr = OUT_IMAGES            # [BB, levels] logits: keep the tile small
    bb = t * BB + tl.arange(0, BB)
    b_ok = bb < B
    val = 0                                  # completion: no sampled value
    if SAMPLE:
        if HEAD:
            _head(bb, b_ok, gated, skip, scratch, wskip, bskip, w1, b1, n0, NC, KC, HD, L, BB,
                  HN, BK, BF16, INTERPRET)
        v = tl.arange(0, LVP)
        v_ok = v < LEVELS
        logits = tl.zeros((BB, LVP), tl.float32) + tl.load(b2 + c * LEVELS + v, mask=v_ok, other=0.0).to(tl.float32)[None, :]
        logits = matmul_rows(logits, scratch + bb * 2 * HD + HD, b_ok, w2 + c * LEVELS, KC,
                             v, v_ok, C * LEVELS, BKO, BF16, INTERPRET, CG)
        uu = tl.load(u + ((bb * C + c) * HEIGHT + i) * WIDTH + j, mask=b_ok, other=0.0)
        val = inverse_cdf(logits, v_ok, uu, temperature, LEVELS)
        tl.store(x + ((bb * C + c) * HEIGHT + i) * WIDTH + j, val.to(x.dtype.element_ty),
                 mask=b_ok)
    if LAST:                                 # the complete pixel: layer 0's input at column j
        store_embedded(hbuf + (bb * (P + WIDTH) + j + P) * HD, x,
                       bb * C * HEIGHT * WIDTH + i * WIDTH + j, b_ok, HEIGHT * WIDTH,
                       table, LEVELS, E, F, FB, SAMPLE, c, val)


@triton.jit
def _phase_tiles(ph, left, NC, B, HD, L, BB: tl.constexpr, BN: tl.constexpr,
                 SPLIT: tl.constexpr):
    """Tiles of phase ph, as `phase_tiles` counts them: the persistent kernel's loop bound."""
    per_layer = _own_tiles(ph - 1, left, NC, B, HD, BB, BN)
    n = per_layer
    if ph == L + 3:
        n = tl.cdiv(B, OUT_IMAGES)
    elif ph <= L:
        if SPLIT:
            if ph >= 2:
                n += per_layer
                if SPLIT == 2:
                    if ph < L:
                        n += 2 * per_layer
        if left:
            if ph < L:
                n += tl.cdiv(B, BB) * tl.cdiv(HD, BN)         # the left taps: every column
    return n


@triton.jit
def _prefetches(ph, t, left, NC, B, HD, L, BB: tl.constexpr, BN: tl.constexpr):
    """Whether tile t of phase ph, with PREFETCH, loads its weights before it waits for the
    previous phase (then _layer waits): the gate tiles of layers l = ph - 1 >= 1 (the
    unsplit phase's first tiles) and, at a pixel's first sub-pixel (left), the next layer's
    left taps' tiles (after the phase's own); layer 0's own tiles, the head and out wait
    first."""
    own = _own_tiles(ph - 1, left, NC, B, HD, BB, BN)
    gate = (ph >= 2) & (t < own)
    beside = (left != 0) & (ph < L) & (t >= own)
    return (ph <= L) & (gate | beside)


@triton.jit
def _phase(ph, t, x, u, hbuf, row_bias, base, gated, scratch, skip, ahead,
           wh_prev, wh_cur, wres_cur, bres_cur, wres_ahead, bres_ahead, wres, bres, wskip,
           bskip, w1, b1, w2, b2,
           table, i, j, c, left, n0, NC, KC, B, C, HEIGHT, WIDTH, HD, L, LEVELS, E, F,
           temperature, P: tl.constexpr, SAMPLE: tl.constexpr, LAST: tl.constexpr,
           BB: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, KL: tl.constexpr,
           KP: tl.constexpr, BKO: tl.constexpr, FB: tl.constexpr, LVP: tl.constexpr,
           SPLIT: tl.constexpr,
           PREFETCH: tl.constexpr, WAIT: tl.constexpr, HEAD: tl.constexpr, HN: tl.constexpr,
           BF16: tl.constexpr, INTERPRET: tl.constexpr):
    """Tile t of phase `ph` of the step (see the module docstring). WAIT: wait for the
    previous phase first (a programmatic dependent launch), except where _layer prefetches.
    HEAD: out makes the head's hidden activations too (_head; `phases` skips theirs)."""
    if WAIT:
        if not _prefetches(ph, t, left, NC, B, HD, L, BB, BN):
            gdc_wait()
    if ph <= L:
        _layer(t, ph - 1, x, hbuf, row_bias, base, gated, skip, ahead, wh_prev, wh_cur,
               wres_cur, bres_cur, wres_ahead, bres_ahead, wres, bres, wskip, bskip, table, i,
               j, left, n0, NC, KC, B, C, HEIGHT, WIDTH, HD, L, LEVELS, E, F, P, SAMPLE, BB,
               BN, BK, KL, KP, FB, SPLIT, PREFETCH, WAIT, BF16, INTERPRET)
    elif ph <= L + 2:
        _hidden(t, ph == L + 2, gated, skip, scratch, wskip, bskip, w1, b1, n0, NC, KC, B, HD,
                L, BB, BN, BK, BF16, INTERPRET)
    else:
        _out(t, x, u, hbuf, gated, skip, scratch, wskip, bskip, w1, b1, w2, b2, table, i, j, c,
             n0, NC, KC, B, C, HEIGHT, WIDTH, HD, L, LEVELS, E, F, temperature, P, SAMPLE, LAST,
             BK, BKO, FB, LVP, HEAD, HN, BF16, INTERPRET)


@triton.jit(do_not_specialize=["ph", "i", "j", "c", "left"])
def _sampler_pixel_phase_kernel(ph, x, u, hbuf, row_bias, base, gated, scratch, skip,
                                ahead, wh_prev, wh_cur, wres_cur, bres_cur, wres_ahead,
                                bres_ahead, wres, bres, wskip, bskip,
                                w1, b1, w2, b2, table, i, j, c, left, n0, NC, KC, B, C,
                                HEIGHT, WIDTH, HD, L, LEVELS, E, F, temperature,
                                P: tl.constexpr, SAMPLE: tl.constexpr, LAST: tl.constexpr,
                                BB: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                                KL: tl.constexpr, BKO: tl.constexpr, FB: tl.constexpr,
                                LVP: tl.constexpr, BF16: tl.constexpr, INTERPRET: tl.constexpr,
                                KP: tl.constexpr = 16, PDL: tl.constexpr = False, SPLIT: tl.constexpr = False,
                                PDL_TRIGGER: tl.constexpr = 0, PREFETCH: tl.constexpr = False,
                                HEAD: tl.constexpr = False, HN: tl.constexpr = 16):
    """Phase ph, one tile a program (launched with the phase's tiles: no loop over tiles, out
    of which the compiler would hoist every branch's addresses: bf16 cifar 168 registers
    with one, 130 without, bench.compile). PDL: launched as a programmatic dependent, it
    waits until the previous phase has finished and flushed, and lets the next phase launch
    (PDL_TRIGGER) 0: at once, so every later phase may launch early, as far as the SMs hold
    their programs; 1: after its wait, one phase ahead at most; 2: once its work is done
    (bench.phase_times times all three: PDL's early launches cost at batch 256). PREFETCH:
    see _layer (with PDL, its gate tiles wait after loading their weights: trigger 0 or 2).
    HEAD: the out phase makes the head's hidden activations too, in blocks of HN columns."""
    if PDL:
        if PDL_TRIGGER == 0:
            gdc_launch_dependents()
        if not PREFETCH:
            gdc_wait()
            if PDL_TRIGGER == 1:
                gdc_launch_dependents()
    _phase(ph, tl.program_id(0), x, u, hbuf, row_bias, base, gated, scratch, skip, ahead,
           wh_prev, wh_cur, wres_cur, bres_cur, wres_ahead, bres_ahead, wres, bres, wskip,
           bskip, w1, b1, w2, b2, table, i, j,
           c, left, n0, NC, KC, B, C, HEIGHT, WIDTH, HD, L, LEVELS, E, F, temperature, P,
           SAMPLE, LAST, BB, BN, BK, KL, KP, BKO, FB, LVP, SPLIT, PREFETCH, PDL and PREFETCH,
           HEAD, HN, BF16, INTERPRET)
    if PDL and PDL_TRIGGER == 2:
        gdc_launch_dependents()


@triton.jit(do_not_specialize=["i", "j", "c", "left"])
def _sampler_pixel_grid_kernel(counter, x, u, hbuf, row_bias, base, gated, scratch, skip,
                               ahead, wh_prev, wh_cur, wres_cur, bres_cur, wres_ahead,
                               bres_ahead, wres, bres, wskip, bskip,
                               w1, b1, w2, b2, table, i, j, c, left, n0, NC, KC, B, C,
                               HEIGHT, WIDTH, HD, L, LEVELS, E, F, temperature,
                               P: tl.constexpr, SAMPLE: tl.constexpr, LAST: tl.constexpr,
                               BB: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                               KL: tl.constexpr, BKO: tl.constexpr, FB: tl.constexpr,
                               LVP: tl.constexpr, BF16: tl.constexpr, INTERPRET: tl.constexpr,
                               POLL: tl.constexpr, HEAD: tl.constexpr = False,
                               HN: tl.constexpr = 16):
    """Every phase of the step: the programs loop over each phase's tiles, then meet."""
    pid, nprog = tl.program_id(0), tl.num_programs(0)
    for ph in range(1, L + 4):
        if ph <= L or ph == L + 3 or (SAMPLE and not HEAD):
            for t in range(pid, _phase_tiles(ph, left, NC, B, HD, L, BB, BN, False), nprog):
                _phase(ph, t, x, u, hbuf, row_bias, base, gated, scratch, skip, ahead, wh_prev,
                       wh_cur, wres_cur, bres_cur, wres_ahead, bres_ahead, wres, bres, wskip,
                       bskip, w1, b1, w2, b2,
                       table, i, j, c, left, n0, NC, KC, B, C, HEIGHT, WIDTH, HD, L, LEVELS, E,
                       F, temperature, P, SAMPLE, LAST, BB, BN, BK, KL, BK, BKO, FB, LVP,
                       False, False, False, HEAD, HN, BF16, INTERPRET)
            if ph < L + 3:
                grid_barrier(counter, nprog, POLL)


def tiles(batch: int, hidden: int, dtype: torch.dtype, persistent: bool = False,
          sub_batch: bool = False) -> tuple:
    """(BB images, BN columns) per tile: 16 x 16 (tl.dot's smallest); for bf16 above batch 128
    phase by phase 32 images (each image block re-reads the weights: half the L2 traffic),
    and above 16 in a sub-batch (one of PIXELCNN_GRID_SUB_BATCHES side by side: half the
    programs for the same latency, so that the SMs it leaves run the others' steps:
    bench.roofline.sub_batches). Not in float32 (its exact products spill there) nor in the
    persistent kernel, which holds every phase's code in one loop and spills at 32
    (bench.compile, tiny bf16 sm_90: 8 bytes; 254 registers at 16). A phase has
    ceil(batch / BB) * ceil(hidden / BN) tiles to spread."""
    wide = batch > (16 if sub_batch else 128) and dtype == torch.bfloat16 and not persistent
    return (32 if wide else 16), 16


def k_tile(hidden: int, dtype: torch.dtype) -> int:
    """BK, the K tile of the phases' products: 32 in bf16, 16 in float32, whose exact (FMA)
    products hold a K slice of each operand per thread: a layer's six products a K tile
    spilled at 32 while the phase kernel looped over tiles (bench.compile, tiny float32 sm_90:
    24 bytes); one tile a program, 32 compiles without spills (cifar, sm_80/sm_90: 108-159
    registers), not yet timed (bench.phase_times' sweep times it). On the H200 bf16's K tiles
    of 128 (PIXELCNN_GRID_BK=128) were no faster than 32 (bench/README.md): a phase's time
    follows its products, not its K tiles (bench/roofline.py). $PIXELCNN_GRID_BK, a power of
    two >= 16, sets it until a GPU run has timed one against the other."""
    env = os.environ.get("PIXELCNN_GRID_BK")
    if env:
        if not env.isdigit() or int(env) < 16 or int(env) & (int(env) - 1):
            raise ValueError(f"PIXELCNN_GRID_BK must be a power of two >= 16, got {env!r}")
        return int(env)
    return 32 if dtype == torch.bfloat16 else 16


def pipeline_stages() -> int:
    """num_stages of the phases' launches: 3, Triton's default on CUDA. Triton
    software-pipelines every tl.dot K loop (the sm_90 TTGIR and PTX show it: cp.async into
    shared memory, S - 1 K tiles in flight), so a product of n K tiles waits about
    ceil(n / (S - 1)) round trips: three for the cifar preset's K = 192 at BK = 32. With
    S = 7 all six tiles are in flight at once (in shared memory, ~4 KB a stage), as BK = 192
    would have them, without its registers (bench.compile, cifar bf16 sm_90: no spills, 18-52
    KB of shared memory, 3x S = 3's). $PIXELCNN_GRID_STAGES (an integer >= 1) sets it until
    a GPU run has timed one against the other."""
    env = os.environ.get("PIXELCNN_GRID_STAGES")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"PIXELCNN_GRID_STAGES must be an integer >= 1, got {env!r}")
        return int(env)
    return 3


def out_k_tile(levels: int, bk: int) -> int:
    """The out phase's K tile: 16 at BK = 32 (as before); above, its weight tile [K tile,
    levels] holds at most 8K values: 32 at 256 levels (16K spilled in the SAMPLE kernels)."""
    return 16 if bk <= 32 else max(16, min(bk, 8192 // pow2(levels)))


def head_block(width: int) -> int:
    """HEAD's block of hidden columns for a sampling step's `width` of them: all in one, up to
    64 ([16 images, 64] float32 accumulators; 128 threads hold 8 values each)."""
    return min(64, max(16, pow2(width)))


def phases(layers: int, c, head: bool = False) -> list:
    """The phases a step runs for sub-pixel channel c (None: completion, no sample); head:
    the head's hidden activations in out's phase (HEAD), not in two of their own."""
    L = layers
    return list(range(1, L + 1)) + ([L + 1, L + 2] if c is not None and not head else []) + \
        [L + 3]


def phase_tiles(ph: int, layers: int, batch: int, hidden: int, dtype: torch.dtype,
                persistent: bool = False, split: int = 0, left: bool = False,
                width: int | None = None, sub_batch: bool = False) -> int:
    """Tiles of phase ph: a layer's (over `width` of its columns: `columns`, all by default;
    layer 0 all at a pixel's first sub-pixel, its base); split (1 or 2, l >= 1): + the
    finishing tiles; split 2 (l + 1 < L): + the look-ahead's two halves; + the next layer's
    base at a pixel's first sub-pixel (left, every column); the head's; out's image blocks
    (sub_batch: `tiles`)."""
    bb, bn = tiles(batch, hidden, dtype, persistent, sub_batch)
    blocks = triton.cdiv(batch, bb)
    if ph == 1 and left:                # layer 0 makes its whole base there
        width = hidden
    per_layer = blocks * triton.cdiv(width or hidden, bn)
    if ph == layers + 3:
        return triton.cdiv(batch, OUT_IMAGES.value)
    if ph > layers:
        return per_layer
    parts = 1 + (split > 0 and ph >= 2) + 2 * (split == 2 and 2 <= ph < layers)
    return per_layer * parts + (blocks * triton.cdiv(hidden, bn) if left and ph < layers else 0)


def columns(hidden: int, channels: int, c, groups: bool = False) -> tuple:
    """(n0, NC, KC): the hidden columns n0 .. n0 + NC - 1 that sub-pixel c's products make and
    the K they need of the current pixel's features. All of them (0, H, H) by default; with
    `groups` (PIXELCNN_GRID_GROUPS=1, kernels/grid.groups_requested), only colour group c's,
    which is all that changes at sub-pixel c: the masks let group c's units see groups <= c
    of the current pixel (layers' current taps, residual, skip, head: mask B; layer 0: mask
    A), so groups < c were final after their own sub-pixels (GatedCache keeps them) and
    groups > c are not needed for channel c's logits: (c H/C, H/C, (c + 1) H/C), a third of
    the columns over two thirds of K on average in RGB. Completion (c=None): all of them."""
    if not groups or c is None:
        return 0, hidden, hidden
    group = hidden // channels
    return c * group, group, (c + 1) * group


def widest(cache) -> int:
    """Tiles of a step's widest phase (a layer's at c = 0, with the next one's base): the most
    programs a persistent launch can use."""
    w = cache.w
    return max(phase_tiles(ph, w.layers, cache.batch, w.hidden, w.wv.dtype, persistent=True,
                           left=True) for ph in phases(w.layers, 0))


def launch(cache, x, u, temperature: float, i: int, j: int, c, persistent: bool = False,
           prefetch: bool = False, groups: bool = False, head: bool = False,
           sub_batch: bool = False):
    """(args, meta) of the step's phase launches (as `sampler_pixel_grid` makes them; also
    bench.phase_times, which times each phase alone). prefetch: a layer's weights in one K
    tile (BK >= H), loaded before anything else (_layer); groups: colour group c's columns
    only (`columns`); head: the head's hidden activations in the out phase (_head), in
    blocks of a sampling step's columns (at most 64: [16, 64] tiles); sub_batch: `tiles`."""
    w = cache.w
    B, C, H, W = x.shape
    bk = k_tile(w.hidden, w.wv.dtype)
    bb, bn = tiles(B, w.hidden, w.wv.dtype, persistent, sub_batch)
    args = (x, u, cache.hbuf, cache.row_bias, cache.base, cache.gated, cache.scratch,
            cache.skip, cache.ahead, w.wh_prev, w.wh_cur, w.wres_cur, w.bres_cur, w.wres_ahead,
            w.bres_ahead, w.wres, w.bres, w.wskip, w.bskip, w.w1, w.b1, w.w2, w.b2, w.table,
            i, j, c or 0, int(not c), *columns(w.hidden, C, c, groups), B, C, H, W, w.hidden,
            w.layers, w.levels,
            w.table.shape[-1], w.features, float(temperature))
    meta = dict(P=w.pad, SAMPLE=c is not None, LAST=c is None or c == C - 1, BB=bb, BN=bn,
                BK=bk, KL=pow2(w.hidden) if prefetch else bk, BKO=out_k_tile(w.levels, bk),
                FB=feature_block(w), LVP=pow2(w.levels),
                maxnreg=255, num_stages=pipeline_stages(),
                num_warps=4 if w.wv.dtype == torch.bfloat16 else 8,   # float32: more threads
                                                                      # share the FMA products
                **launch_flags(w.wv.dtype))       # maxnreg: ptxas otherwise aims at more
                                                  # programs per SM than there are, and spills
    if prefetch:
        meta.update(PREFETCH=True, KP=pow2(w.pad * w.hidden))
    if head:
        meta.update(HEAD=True, HN=head_block(columns(w.hidden, C, 0, groups)[1]))
    return args, meta


def sampler_pixel_grid(cache, x, u, temperature: float, i: int, j: int, c,
                       programs: int = 0, pdl: bool = False, split: int = 0,
                       prefetch: bool = False, groups: bool = False, head: bool = False,
                       sub_batch: bool = False):
    """Sample sub-pixel (c, i, j) of x (long [B, C, H, W]) from the uniforms u, or with
    c=None take pixel (i, j) as given (completion) and only update the caches - as the
    PyTorch step `pixelcnn.cache.pixel_step`, on the same GatedCache. programs=0: one launch
    per phase (pdl=True: as programmatic dependent launches, compute capability >= 9: see
    kernels/grid.dependent_launch; split=1 (or True): each layer's phase in twice the tiles,
    the gate's products apart from the previous layer's residual and skip; split=2: and the
    look-ahead, every program a chain of two products, see `_layer`);
    programs=N: one persistent cooperative launch of N programs meeting at grid barriers
    (CUDA; at most one per SM, see kernels/grid.py). prefetch=True (one launch per phase,
    unsplit): each layer's gate tiles load their weights first, in one K tile, and with pdl
    only then wait for the previous phase (`_layer`). groups=True: each sub-pixel makes only
    its colour group's columns (`columns`); GatedCache's other groups keep what earlier
    sub-pixels made. head=True: the out phase makes the head's hidden activations too, for
    its block of images, so that a sub-pixel runs L + 1 phases, not L + 3 (`_head`).
    sub_batch=True: x is one of several sub-batches sampled side by side (`tiles`)."""
    if prefetch and (programs or split):
        raise ValueError("prefetch=True takes one launch per phase, unsplit: programs=0, "
                         f"split=0 (got programs={programs}, split={split})")
    w = cache.w
    check_device(x, u, w.wv)
    B, hd, L = x.shape[0], w.hidden, w.layers
    args, meta = launch(cache, x, u, temperature, i, j, c, persistent=programs > 0,
                        prefetch=prefetch, groups=groups, head=head, sub_batch=sub_batch)
    if programs:
        if w.wv.dtype != torch.bfloat16:
            raise ValueError(f"the persistent pixel step takes bf16 weights (float32 spills), "
                             f"got {w.wv.dtype}: use programs=0")
        meta.update(num_warps=8, launch_cooperative_grid=True,    # one program per SM
                    POLL=poll_mode())
        _sampler_pixel_grid_kernel[(programs,)](cache.sync, *args, **meta)
        return
    if pdl:
        meta.update(PDL=True, launch_pdl=True)
    if split:
        meta.update(SPLIT=int(split))
    width = columns(hd, x.shape[1], c, groups)[1]
    for ph in phases(L, c, head):
        programs = phase_tiles(ph, L, B, hd, w.wv.dtype, split=split, left=not c, width=width,
                               sub_batch=sub_batch)
        _sampler_pixel_phase_kernel[(programs,)](ph, *args, **meta)
