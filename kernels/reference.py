"""PyTorch references of the fused ops, with the same signatures (float32 or better inside,
cast back to the input dtype). Tests compare each kernel with these; on a machine without a
GPU they are the fallback. The incremental steps are the cached sampler's own."""
import torch
import torch.nn.functional as F

from pixelcnn.layers import gate
from pixelcnn.cache import pixel_step, row_step  # noqa: F401  (the step references)


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def vertical_stack(v_in, wv, bias_v, kernel_size):
    k, p = kernel_size, kernel_size // 2
    B, H, W, cin = v_in.shape
    hw = wv.shape[0] // ((p + 1) * k)
    dt = _compute_dtype(v_in)
    x = F.pad(v_in.to(dt), (0, hw - cin, p, p, p, 0))                # channels, columns, rows
    win = x.unfold(1, p + 1, 1).unfold(2, k, 1)                       # [B, H, W, Hw, p+1, k]
    pre = win.permute(0, 1, 2, 4, 5, 3).reshape(B, H, W, -1) @ wv.to(dt) \
        + bias_v.to(dt)[:, None, None]
    return pre.to(v_in.dtype), gate(pre, -1).to(v_in.dtype)


def horizontal_stack(h_in, v_pre, wh_prev, wh_cur, wlink, bias_h, wres, bres, wskip, skip,
                     first):
    B, H, W, cin = h_in.shape
    hw = wh_cur.shape[0]
    p = wh_prev.shape[0] // hw
    dt = _compute_dtype(h_in)
    x = F.pad(h_in.to(dt), (0, hw - cin, p, 0))
    win = x.unfold(2, p + 1, 1)                                       # [B, H, W, Hw, p+1]
    left = win[..., :p].permute(0, 1, 2, 4, 3).reshape(B, H, W, p * hw)
    above = F.pad(v_pre.to(dt), (0, 0, 0, 0, 1, 0))[:, :H]            # row i holds row i - 1
    pre = left @ wh_prev.to(dt) + win[..., p] @ wh_cur.to(dt) + above @ wlink.to(dt) \
        + bias_h.to(dt)[:, None, None]
    g = gate(pre, -1)
    skip += (g @ wskip.to(dt)).to(skip.dtype)
    res = g @ wres.to(dt) + bres.to(dt)
    return (res if first else h_in.to(dt) + res).to(h_in.dtype)
