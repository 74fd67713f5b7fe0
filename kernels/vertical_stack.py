"""Fused vertical stack of one gated layer over a whole image: the (p+1) x k convolution over
rows <= i (an implicit GEMM on channels-last activations, zero padding by masking), plus the
per-image bias (layer bias + conditioning), plus the gate - one launch."""
import torch
import triton
import triton.language as tl

from .common import check_device, gate, gated_matmul_rows, launch_flags, pow2


@triton.jit
def _vertical_stack_fwd_kernel(x, w, bias, pre, out, M, HEIGHT, WIDTH, CIN, HD, HW,
                               KS: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                               BK: tl.constexpr, BF16: tl.constexpr, INTERPRET: tl.constexpr):
    P: tl.constexpr = KS // 2
    m = tl.program_id(0) * BM + tl.arange(0, BM)                     # output pixels
    n = tl.program_id(1) * BN + tl.arange(0, BN)                     # output channels (per half)
    m_ok, n_ok = m < M, n < HD
    b, i, j = m // (HEIGHT * WIDTH), (m // WIDTH) % HEIGHT, m % WIDTH
    acc_f = tl.zeros((BM, BN), tl.float32)
    acc_g = tl.zeros((BM, BN), tl.float32)
    for r in tl.static_range(P + 1):                                 # input row i - P + r
        for s in tl.static_range(KS):                                # input column j - P + s
            ii, jj = i - P + r, j - P + s
            ok = m_ok & (ii >= 0) & (jj >= 0) & (jj < WIDTH)
            acc_f, acc_g = gated_matmul_rows(
                acc_f, acc_g, x + ((b * HEIGHT + ii) * WIDTH + jj) * CIN, ok,
                w + (r * KS + s) * HW * 2 * HD, CIN, n, n_ok, HD, BK, BF16, INTERPRET)
    ok2 = m_ok[:, None] & n_ok[None, :]
    bias_ptrs = bias + b[:, None] * 2 * HD + n[None, :]
    f = acc_f + tl.load(bias_ptrs, mask=ok2, other=0.0).to(tl.float32)
    g = acc_g + tl.load(bias_ptrs + HD, mask=ok2, other=0.0).to(tl.float32)
    pre_ptrs = pre + m[:, None] * 2 * HD + n[None, :]
    tl.store(pre_ptrs, f.to(pre.dtype.element_ty), mask=ok2)
    tl.store(pre_ptrs + HD, g.to(pre.dtype.element_ty), mask=ok2)
    tl.store(out + m[:, None] * HD + n[None, :], gate(f, g).to(out.dtype.element_ty), mask=ok2)


def vertical_stack_fwd(v_in, wv, bias_v, kernel_size):
    check_device(v_in, wv, bias_v)
    flags = launch_flags(wv.dtype)
    B, H, W, cin = v_in.shape
    taps = (kernel_size // 2 + 1) * kernel_size
    hw, hd = wv.shape[0] // taps, wv.shape[1] // 2
    if wv.shape[0] != taps * hw or cin > hw or tuple(bias_v.shape) != (B, 2 * hd):
        raise ValueError(f"vertical_stack: v_in {list(v_in.shape)}, wv {list(wv.shape)}, bias_v "
                         f"{list(bias_v.shape)} do not fit kernel_size={kernel_size}")
    v_in, wv, bias_v = v_in.contiguous(), wv.contiguous(), bias_v.contiguous()
    pre = v_in.new_empty(B, H, W, 2 * hd)
    out = v_in.new_empty(B, H, W, hd)
    M = B * H * W
    BM, BN, BK = 32, min(64, pow2(hd)), min(32, pow2(cin))
    grid = (triton.cdiv(M, BM), triton.cdiv(hd, BN))
    _vertical_stack_fwd_kernel[grid](v_in, wv, bias_v, pre, out, M, H, W, cin, hd, hw,
                                     KS=kernel_size, BM=BM, BN=BN, BK=BK, **flags)
    return pre, out


def vertical_stack(v_in: torch.Tensor, wv: torch.Tensor, bias_v: torch.Tensor,
                   kernel_size: int):
    """The vertical stack of one gated layer (inference; no autograd).

    v_in: [B, H, W, Cin] channels-last input (the image, embedded, in the first layer).
    wv: [(p+1)*k*Hw, 2Hd] the layer's packed weights (pixelcnn.packing; Cin <= Hw).
    bias_v: [B, 2Hd] the layer's bias plus each image's conditioning.
    Returns (v_pre [B, H, W, 2Hd], gate(v_pre) [B, H, W, Hd]); v_pre feeds the link to the
    horizontal stack, the gated output the next layer's vertical stack.
    """
    return vertical_stack_fwd(v_in, wv, bias_v, kernel_size)
