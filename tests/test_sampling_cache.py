"""The cached sampler's caches, step by step, against slices of the full forward pass.

The cache is driven with a fixed random image (teacher forcing): after each row step its
vertical buffers and link biases, and after each sub-pixel its gated units, logits and
horizontal buffers, must equal what the full forward computes at that position.
"""
import pytest
import torch

from helpers import conditioning, make_model
from pixelcnn.layers import channel_groups
from pixelcnn.packing import pack
from pixelcnn.sampling.cached import GatedCache


def full_forward_features(model, x, y, h):
    """Per layer: vertical input, horizontal input, shifted link output and gated units of the
    full forward pass (through hooks, so the model's own forward is what is compared)."""
    feats = {name: [] for name in ("v_in", "h_in", "link", "gated")}

    def record(**names):
        def hook(module, inp, out):
            for name, get in names.items():
                feats[name].append(get(inp, out))
        return hook
    hooks = []
    for layer in model.layers:
        hooks.append(layer.register_forward_hook(
            record(v_in=lambda inp, out: inp[0], h_in=lambda inp, out: inp[1])))
        hooks.append(layer.link.register_forward_hook(record(link=lambda inp, out: out)))
        hooks.append(layer.out.register_forward_hook(record(gated=lambda inp, out: inp[0])))
    try:
        logits = model(x, y, h)
    finally:
        for hk in hooks:
            hk.remove()
    return logits, feats


SIZES = [(5, 7), (13, 13), (1, 9), (9, 1)]
MODELS = [
    ("rgb-k3", dict(in_channels=3, kernel_size=3, channels=12)),
    ("rgb-k5-class", dict(in_channels=3, kernel_size=5, channels=15, num_classes=4)),
    ("grey-k7-vector", dict(in_channels=1, kernel_size=7, channels=5, cond_dim=3, levels=2)),
]


@pytest.mark.parametrize("size", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
@pytest.mark.parametrize("fields", [m[1] for m in MODELS], ids=[m[0] for m in MODELS])
def test_cache_steps_match_full_forward(fields, size):
    model = make_model(layers=3, **fields)
    cfg = model.config
    C, Hd, L, p = cfg.in_channels, cfg.channels, cfg.layers, cfg.kernel_size // 2
    H, W = size
    B = 2
    y, h = conditioning(model, B)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, cfg.levels, (B, C, H, W), generator=g)
    with torch.no_grad():
        logits, f = full_forward_features(model, x, y, h)
        cache = GatedCache(pack(model), model.condition(y, h)).setup(B, H, W)
        bias_h = cache.bias_h                                      # [L, B, 2H]
        # the fused samplers drive the same cache through these steps (kernels.reference)
        groups = channel_groups(Hd, C)
        xe = model.embed(x)
        for i in range(H):
            cache.row(i, xe[:, :, i - 1] if i else None)
            for l in range(L):
                # vertical ring buffer: rows i-p-1 .. i-1 of layer l's vertical input (zero
                # above the image), row r in slot r % (p + 1)
                for row in range(i - 1 - p, i):
                    want = f["v_in"][l][:, :, row].transpose(1, 2) if row >= 0 else 0
                    got = cache.vbuf[l, :, row % (p + 1), p:p + W, :f["v_in"][l].shape[1]]
                    torch.testing.assert_close(got, want + torch.zeros_like(got), rtol=0, atol=1e-12)
                torch.testing.assert_close(
                    cache.row_bias[l], f["link"][l][:, :, i].transpose(1, 2) + bias_h[l, :, None],
                    rtol=0, atol=1e-12)
            for j in range(W):
                cache.begin_pixel(j)
                for c in range(C):
                    pixel = xe[:, :, i, j].clone()
                    pixel[:, c:] = 0.5                             # not yet sampled: ignored
                    cache.step(j, pixel)
                    torch.testing.assert_close(cache.logits(c), logits[:, :, c, i, j],
                                               rtol=0, atol=1e-12)
                    seen = groups <= c                             # groups fixed by channels < c
                    for l in range(L):
                        torch.testing.assert_close(cache.gated[:, l, seen],
                                                   f["gated"][l][:, seen, i, j], rtol=0, atol=1e-12)
                cache.end_pixel(j, xe[:, :, i, j])
                for l in range(L):
                    h_in = f["h_in"][l][:, :, i, j]
                    torch.testing.assert_close(cache.hbuf[l, :, p + j, :h_in.shape[1]], h_in,
                                               rtol=0, atol=1e-12)
