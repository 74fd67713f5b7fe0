"""Fused horizontal stack of one gated layer over a whole image: the 1 x (p+1) convolution
over columns <= j (current tap masked by colour group, baked into the packed weights), the
link from the vertical stack's row above, the per-image bias, the gate, then the 1x1s to the
residual and to the skip sum - one launch. A program owns BM pixels and all channels, so the
gated units never leave registers."""
import torch
import triton
import triton.language as tl

from .common import check_device, gate, gated_matmul_rows, launch_flags, mm, pow2


@triton.jit
def _horizontal_stack_fwd_kernel(x, v_pre, w_prev, w_cur, w_link, bias, w_res, b_res, w_skip,
                                 skip, out, M, HEIGHT, WIDTH, CIN, HD, HW,
                                 P: tl.constexpr, FIRST: tl.constexpr, BM: tl.constexpr,
                                 HP: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                                 BF16: tl.constexpr, INTERPRET: tl.constexpr):
    m = tl.program_id(0) * BM + tl.arange(0, BM)
    m_ok = m < M
    b, i, j = m // (HEIGHT * WIDTH), (m // WIDTH) % HEIGHT, m % WIDTH
    n = tl.arange(0, HP)
    n_ok = n < HD
    acc_f = tl.zeros((BM, HP), tl.float32)
    acc_g = tl.zeros((BM, HP), tl.float32)
    for t in tl.static_range(P):                                     # taps j - P .. j - 1
        jj = j - P + t
        acc_f, acc_g = gated_matmul_rows(acc_f, acc_g, x + (m - P + t) * CIN, m_ok & (jj >= 0),
                                         w_prev + t * HW * 2 * HD, CIN, n, n_ok, HD,
                                         BK, BF16, INTERPRET)
    acc_f, acc_g = gated_matmul_rows(acc_f, acc_g, x + m * CIN, m_ok, w_cur, CIN, n, n_ok, HD,
                                     BK, BF16, INTERPRET)         # the current tap (masked)
    acc_f, acc_g = gated_matmul_rows(acc_f, acc_g, v_pre + (m - WIDTH) * 2 * HD, m_ok & (i > 0),
                                     w_link, 2 * HD, n, n_ok, HD, BK, BF16, INTERPRET)
    ok2 = m_ok[:, None] & n_ok[None, :]
    bias_ptrs = bias + b[:, None] * 2 * HD + n[None, :]
    gt = gate(acc_f + tl.load(bias_ptrs, mask=ok2, other=0.0).to(tl.float32),
              acc_g + tl.load(bias_ptrs + HD, mask=ok2, other=0.0).to(tl.float32))
    for n0 in tl.static_range(0, HP, BN):                            # 1x1s, BN outputs at a time
        c = n0 + tl.arange(0, BN)
        c_ok = c < HD
        okc = m_ok[:, None] & c_ok[None, :]
        w_ok = n_ok[:, None] & c_ok[None, :]
        w_off = n[:, None] * HD + c[None, :]
        s = mm(gt, tl.load(w_skip + w_off, mask=w_ok, other=0.0), tl.zeros((BM, BN), tl.float32),
               BF16, INTERPRET)
        skip_ptrs = skip + m[:, None] * HD + c[None, :]
        tl.store(skip_ptrs, tl.load(skip_ptrs, mask=okc, other=0.0) + s, mask=okc)
        res = mm(gt, tl.load(w_res + w_off, mask=w_ok, other=0.0), tl.zeros((BM, BN), tl.float32),
                 BF16, INTERPRET) + tl.load(b_res + c, mask=c_ok, other=0.0).to(tl.float32)[None, :]
        if not FIRST:                                                # residual (CIN == HD)
            res += tl.load(x + m[:, None] * CIN + c[None, :], mask=okc, other=0.0).to(tl.float32)
        tl.store(out + m[:, None] * HD + c[None, :], res.to(out.dtype.element_ty), mask=okc)


def horizontal_stack_fwd(h_in, v_pre, wh_prev, wh_cur, wlink, bias_h, wres, bres, wskip, skip,
                         first):
    check_device(h_in, v_pre, wh_cur, skip)
    flags = launch_flags(wh_cur.dtype)
    B, H, W, cin = h_in.shape
    hw, hd = wh_cur.shape[0], wh_cur.shape[1] // 2
    p = wh_prev.shape[0] // hw
    if (tuple(v_pre.shape) != (B, H, W, 2 * hd) or tuple(bias_h.shape) != (B, 2 * hd)
            or tuple(skip.shape) != (B, H, W, hd) or skip.dtype != torch.float32
            or not skip.is_contiguous() or cin > hw or (not first and cin != hd)):
        raise ValueError(f"horizontal_stack: h_in {list(h_in.shape)}, v_pre {list(v_pre.shape)},"
                         f" bias_h {list(bias_h.shape)}, skip {list(skip.shape)} {skip.dtype} "
                         f"(float32, contiguous) do not fit weights with {hd} channels")
    args = [t.contiguous() for t in (h_in, v_pre, wh_prev, wh_cur, wlink, bias_h, wres, bres,
                                     wskip)]
    out = h_in.new_empty(B, H, W, hd)
    M = B * H * W
    HP = pow2(hd)
    BM, BN, BK = 16 if HP > 256 else 32, min(64, HP), 32
    _horizontal_stack_fwd_kernel[(triton.cdiv(M, BM),)](
        *args, skip, out, M, H, W, cin, hd, hw, P=p, FIRST=first, BM=BM, HP=HP, BN=BN, BK=BK,
        num_warps=8, **flags)
    return out


def horizontal_stack(h_in, v_pre, wh_prev, wh_cur, wlink, bias_h, wres, bres, wskip, skip,
                     first: bool):
    """The horizontal stack of one gated layer (inference; no autograd).

    h_in: [B, H, W, Cin] channels-last input (the embedded image in the first layer).
    v_pre: [B, H, W, 2Hd] this layer's vertical pre-activation (vertical_stack), shifted down
    one row here. Weights as packed by pixelcnn.packing for this layer; bias_h: [B, 2Hd].
    skip: float32 [B, H, W, Hd], incremented in place by the layer's skip output.
    first: the first layer (mask A, no residual).
    Returns the horizontal output [B, H, W, Hd]: h_in + residual (residual alone if first).
    """
    return horizontal_stack_fwd(h_in, v_pre, wh_prev, wh_cur, wlink, bias_h, wres, bres, wskip,
                                skip, first)
