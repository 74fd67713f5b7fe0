"""A whole GatedPixelCNN forward pass on the fused ops: two launches per layer (vertical
stack; horizontal stack with its 1x1s), then the head's two 1x1s as plain matrix products."""
import torch

from pixelcnn.packing import PackedGated, layer_biases


def stacks(impl: str):
    """(vertical_stack, horizontal_stack) of impl: "triton" (fused) or "reference" (PyTorch)."""
    if impl == "triton":
        from . import horizontal_stack, vertical_stack
        return vertical_stack.vertical_stack, horizontal_stack.horizontal_stack
    if impl == "reference":
        from . import reference
        return reference.vertical_stack, reference.horizontal_stack
    raise ValueError(f"impl must be 'triton' or 'reference', got {impl!r}")


@torch.no_grad()
def gated_forward(packed: PackedGated, u: torch.Tensor, cond=None, impl: str = "triton"):
    """Logits [B, levels, C, H, W] for the embedded image u [B, C, H, W]; cond: the model's
    conditioning [B, L, 2, 2H] or None. impl: "triton" (fused kernels) or "reference"."""
    vertical, horizontal = stacks(impl)
    w = packed
    B, C, H, W = u.shape
    x = u.permute(0, 2, 3, 1).contiguous()                          # channels-last
    bias_v, bias_h = layer_biases(w, cond, B)
    skip = x.new_zeros(B, H, W, w.hidden, dtype=torch.float32)
    v = h = x
    for l in range(w.layers):
        v_pre, v_out = vertical(v, w.wv[l], bias_v[l], w.kernel_size)
        h = horizontal(h, v_pre, w.wh_prev[l], w.wh_cur[l], w.wlink[l], bias_h[l], w.wres[l],
                       w.bres[l], w.wskip[l], skip, l == 0)
        v = v_out
    f32 = lambda t: t.float()
    a = torch.relu(torch.relu(skip + f32(w.bskip)) @ f32(w.w1) + f32(w.b1))
    logits = a @ f32(w.w2) + f32(w.b2)                             # [B, H, W, C * levels]
    return logits.to(u.dtype).view(B, H, W, C, w.levels).permute(0, 4, 3, 1, 2)
