"""Helpers shared by the fused kernels: the matrix product, the gate, a convolution tap, the
input embedding (rows of the packed table) and the conditioning map's biases.

Activations are float32 in registers; weights are loaded in their storage dtype (float32 or
bf16). Products accumulate in float32: exact float32 ("ieee", not tf32) for float32 models,
bf16 operands on the tensor cores for bf16 models.
"""
import torch
import triton
import triton.language as tl

from pixelcnn.packing import map_biases

from . import interpreting


def check_device(*tensors: torch.Tensor):
    """Fused kernels run on a CUDA GPU, or on the CPU in Triton's interpreter."""
    for t in tensors:
        if not t.is_cuda and not interpreting():
            raise RuntimeError(
                "the Triton kernels need a CUDA GPU; on a CPU they run only in Triton's "
                "interpreter (set TRITON_INTERPRET=1 before importing pixelcnn, slow) - or use "
                "the PyTorch path (backend='torch', method='cached')")


def launch_flags(dtype: torch.dtype) -> dict:
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"the Triton kernels take float32 or bfloat16 models, got {dtype}; "
                         "use the PyTorch path for float64")
    return dict(BF16=dtype == torch.bfloat16, INTERPRET=interpreting())


def pow2(n: int, least: int = 16) -> int:
    """Block size: the next power of two >= n (tl.dot needs >= 16)."""
    return max(least, triton.next_power_of_2(n))


def feature_block(packed) -> int:
    """FB, the block of embedded features the kernels handle at once: the next power of two
    >= F = C * E (the first layer's input width), at least 16 (tl.dot's least K: features
    past F are masked to zero) and at most 32 (larger F: a loop of blocks). Not an
    elementwise product summed over a [M, FB, N] block for F < 16: on the H200 (Triton 3.6,
    float32, 8 warps) that sum came out wrong by up to half of a gated unit, where the
    interpreter computed it exactly (bench.lockstep)."""
    return min(32, pow2(packed.features))


def row_maps(cache, i: int):
    """The conditioning map's biases of row step i >= 1 (None, None without a map), as
    pixelcnn.cache.GatedCache.row computes them: the vertical half of image row i - 1 (a
    [L, B, W, 4H] tensor whose first 2H columns the row kernels add before the gate) and the
    horizontal half of row i ([L, B, W, 2H], added to row_bias after the kernel)."""
    if cache.cond_map is None:
        return None, None
    H = cache.w.hidden
    return map_biases(cache.w, cache.cond_map, i - 1), \
        map_biases(cache.w, cache.cond_map, i)[..., 2 * H:]


def start_row(cache, x, i: int, launch) -> None:
    """A row step's wrapper, shared by the row kernels: start row i of the incremental sampler
    from image row i - 1 of x (long [B, C, H, W]) into cache.vbuf, cache.v_pre and
    cache.row_bias (see GatedCache), exactly as the PyTorch step `pixelcnn.cache.row_step`.
    Row 0 has nothing above (biases only); else launch(map_v) runs the kernels (map_v: the
    conditioning map's vertical biases, `row_maps`, or None) and torch adds the map's
    horizontal half of row i to row_bias after them."""
    if i == 0:
        cache.row(0, None)
        return
    check_device(x, cache.w.wv)
    map_v, map_h = row_maps(cache, i)
    launch(map_v)
    if map_h is not None:
        cache.row_bias += map_h


@triton.jit
def mm(a, w, acc, BF16: tl.constexpr, INTERPRET: tl.constexpr):
    """acc + a @ w with float32 accumulation; a: float32 [M, K], w: weights [K, N]."""
    if BF16:
        a = a.to(tl.bfloat16)
        if INTERPRET:   # the interpreter's bf16 dot is wrong; same products in float32
            return tl.dot(a.to(tl.float32), w.to(tl.float32), acc, input_precision="ieee")
        return tl.dot(a, w, acc)
    return tl.dot(a, w, acc, input_precision="ieee")


@triton.jit
def gate(f, g):
    """tanh(f) * sigmoid(g), with tanh(f) = 2 sigmoid(2f) - 1 (portable, interpreter too)."""
    return (2 * tl.sigmoid(2 * f) - 1) * tl.sigmoid(g)


@triton.jit
def matmul_rows(acc, a_ptrs, a_ok, w_ptr, K, n, n_ok, w_stride,
                BK: tl.constexpr, BF16: tl.constexpr, INTERPRET: tl.constexpr,
                CACHE: tl.constexpr = tl.constexpr("")):
    """acc + A @ W[:, n]: row r of A is K contiguous values at a_ptrs[r] (rows masked by a_ok
    read as zero: padding); W is [K, *] with row stride w_stride. CACHE: the cache modifier of
    A's loads (".cg": from L2, for activations other programs wrote in the same launch)."""
    k = tl.arange(0, BK)
    for k0 in range(0, K, BK):
        kk = k0 + k
        k_ok = kk < K
        a = tl.load(a_ptrs[:, None] + kk[None, :], mask=a_ok[:, None] & k_ok[None, :],
                    other=0.0, cache_modifier=CACHE).to(tl.float32)
        w = tl.load(w_ptr + kk[:, None] * w_stride + n[None, :],
                    mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        acc = mm(a, w, acc, BF16, INTERPRET)
    return acc


@triton.jit
def gated_matmul_rows(acc_f, acc_g, a_ptrs, a_ok, w_ptr, K, n, n_ok, HD,
                      BK: tl.constexpr, BF16: tl.constexpr, INTERPRET: tl.constexpr,
                      CACHE: tl.constexpr = tl.constexpr("")):
    """Both halves of a pre-activation: acc_f + A @ W[:, n], acc_g + A @ W[:, HD + n], with W
    [K, 2 HD] (tanh half, then sigmoid half) and A as in matmul_rows, loaded once."""
    k = tl.arange(0, BK)
    for k0 in range(0, K, BK):
        kk = k0 + k
        acc_f, acc_g = gated_k_tile(acc_f, acc_g, a_ptrs, a_ok, w_ptr, kk, kk < K, n, n_ok, HD,
                                    BF16, INTERPRET, CACHE)
    return acc_f, acc_g


@triton.jit
def gated_k_tile(acc_f, acc_g, a_ptrs, a_ok, w_ptr, kk, k_ok, n, n_ok, HD,
                 BF16: tl.constexpr, INTERPRET: tl.constexpr, CACHE: tl.constexpr):
    """One K tile kk (valid where k_ok) of gated_matmul_rows: A's columns kk against W's rows
    kk, both halves."""
    a = tl.load(a_ptrs[:, None] + kk[None, :], mask=a_ok[:, None] & k_ok[None, :],
                other=0.0, cache_modifier=CACHE).to(tl.float32)
    wp = w_ptr + kk[:, None] * (2 * HD) + n[None, :]
    w_ok = k_ok[:, None] & n_ok[None, :]
    acc_f = mm(a, tl.load(wp, mask=w_ok, other=0.0), acc_f, BF16, INTERPRET)
    acc_g = mm(a, tl.load(wp + HD, mask=w_ok, other=0.0), acc_g, BF16, INTERPRET)
    return acc_f, acc_g


@triton.jit
def vertical_taps(f, g, ring, w, w_ok, wv, i, HD, WP, n, n_ok,
                  KS: tl.constexpr, BK: tl.constexpr, BF16: tl.constexpr,
                  INTERPRET: tl.constexpr):
    """f, g + a layer's vertical stack at output columns w of the row above row i: the
    (p+1) x k taps of its ring buffer (rows i-1-p .. i-1 in slots (i + r) % (p+1), padded rows
    of WP = width + 2p positions; ring: a [rows] or scalar base) against wv, that layer's
    [(p+1) * k * HD, 2 HD] weights. One K loop over every tap's K tiles, tap by tap (the sums
    of one loop per tap, in the same order), so that Triton's pipeline keeps loads in flight
    across the taps instead of draining at each (and the code is not unrolled 15 times)."""
    KH: tl.constexpr = KS // 2 + 1
    KT = tl.cdiv(HD, BK)                                             # K tiles a tap
    k = tl.arange(0, BK)
    for it in range(0, KH * KS * KT):
        tap = it // KT                                               # r * KS + s
        kk = (it - tap * KT) * BK + k
        row = ring + ((i + tap // KS) % KH) * WP * HD + (w + tap % KS) * HD
        f, g = gated_k_tile(f, g, row, w_ok, wv + tap * HD * 2 * HD, kk, kk < HD, n, n_ok, HD,
                            BF16, INTERPRET, "")
    return f, g


@triton.jit
def embed_pixels(x, pix, ok, HW, table, LEVELS, E, F, k):
    """Embedded features k (a [K] range of the F = C * E) of M pixels of x (long
    [B, C, H, W]): pix [M] is the offset of a pixel's channel 0 (channels HW apart), ok [M]
    its mask. Feature k is row x[channel k // E] of the table [C, LEVELS, E], column k % E:
    [M, K] in the table's dtype, 0 where masked (k >= F included)."""
    ch = k // E
    mask = ok[:, None] & (k < F)[None, :]
    v = tl.load(x + pix[:, None] + ch[None, :] * HW, mask=mask, other=0)
    return tl.load(table + (ch[None, :] * LEVELS + v) * E + (k % E)[None, :], mask=mask,
                   other=0.0)


@triton.jit
def embed_sampled(feat, ok, k, F, E, c, val, table, LEVELS):
    """feat [M, K] (features k) with channel c's features replaced by the table rows of the
    values val [M] just sampled."""
    mine = (k // E == c) & (k < F)
    new = tl.load(table + (c * LEVELS + val[:, None]) * E + (k % E)[None, :],
                  mask=ok[:, None] & mine[None, :], other=0.0)
    return tl.where(mine[None, :], new, feat)


@triton.jit
def store_embedded(out, x, pix, ok, HW, table, LEVELS, E, F, FB: tl.constexpr,
                   SAMPLED: tl.constexpr, c, val):
    """Write the F embedded features of M pixels (as embed_pixels) to the rows out [M]
    (pointers), FB features at a time. SAMPLED: channel c's features are those of the values
    val [M] just sampled (this program's store of them to x is not yet visible to all its
    threads); else c and val are unused."""
    k = tl.arange(0, FB)
    for k0 in range(0, F, FB):
        kk = k0 + k
        feat = embed_pixels(x, pix, ok, HW, table, LEVELS, E, F, kk)
        if SAMPLED:
            feat = embed_sampled(feat, ok, kk, F, E, c, val, table, LEVELS)
        tl.store(out[:, None] + kk[None, :], feat.to(out.dtype.element_ty),
                 mask=ok[:, None] & (kk < F)[None, :])


@triton.jit
def gated_matmul_embedded(acc_f, acc_g, x, pix, ok, HW, table, LEVELS, E, F, w_ptr, n, n_ok,
                          HD, FB: tl.constexpr, BF16: tl.constexpr, INTERPRET: tl.constexpr):
    """Both halves of the first layer's current tap: acc_f + A @ W[:, n], acc_g +
    A @ W[:, HD + n], A the F embedded features of M pixels (as embed_pixels) gathered FB at a
    time (FB >= 16, see feature_block), W layer 0's wh_cur [H, 2 HD] (its first F rows)."""
    k = tl.arange(0, FB)
    for k0 in range(0, F, FB):
        kk = k0 + k
        a = embed_pixels(x, pix, ok, HW, table, LEVELS, E, F, kk).to(tl.float32)
        wp = w_ptr + kk[:, None] * (2 * HD) + n[None, :]
        w_ok = (kk < F)[:, None] & n_ok[None, :]
        wf = tl.load(wp, mask=w_ok, other=0.0)
        wg = tl.load(wp + HD, mask=w_ok, other=0.0)
        acc_f = mm(a, wf, acc_f, BF16, INTERPRET)
        acc_g = mm(a, wg, acc_g, BF16, INTERPRET)
    return acc_f, acc_g


@triton.jit
def inverse_cdf(logits, v_ok, u, temperature, LEVELS):
    """Per row of logits [B, V] (levels masked by v_ok): #{v : cdf(v) < u} under
    softmax(logits / temperature), at most LEVELS - 1 - as pixelcnn.cache.inverse_cdf."""
    logits = tl.where(v_ok[None, :], logits / temperature, float("-inf"))
    e = tl.exp(logits - tl.max(logits, 1)[:, None])
    cdf = tl.cumsum(e, 1) / tl.sum(e, 1)[:, None]
    val = tl.sum(tl.where(v_ok[None, :] & (cdf < u[:, None]), 1, 0), 1)
    return tl.minimum(val, LEVELS - 1)
