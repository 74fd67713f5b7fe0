"""Causality, the one property everything rests on.

For every output sub-pixel (c, i, j): the logits must not depend on any later sub-pixel
(autograd: exactly zero gradient; integers: changing later sub-pixels leaves them bit-for-bit
unchanged), and in a gated model deep enough to cover the image they must depend on every
earlier one (no blind spot).
"""
import pytest
import torch

from helpers import check_jacobian, conditioning, make_model

H, W = 5, 7

VARIANTS = [
    # (id, config fields)
    ("rgb-k3-256", dict(in_channels=3, kernel_size=3, levels=256)),
    ("rgb-k5-256", dict(in_channels=3, kernel_size=5, levels=256)),
    ("rgb-k7-2", dict(in_channels=3, kernel_size=7, levels=2)),
    ("grey-k3-2", dict(in_channels=1, kernel_size=3, levels=2, channels=4)),
    ("grey-k5-256", dict(in_channels=1, kernel_size=5, levels=256, channels=4)),
    ("rgb-k3-class", dict(in_channels=3, kernel_size=3, num_classes=10)),
    ("rgb-k3-vector", dict(in_channels=3, kernel_size=3, cond_dim=5)),
    ("grey-k3-class-vector", dict(in_channels=1, kernel_size=3, num_classes=3, cond_dim=4,
                                  channels=4)),
]


def deep_enough(kernel_size):
    """Layers for the receptive field to cover the whole H x W image."""
    p = kernel_size // 2
    return -(-max(H, W) // p) + 1


def jacobian(model, u, y, h):
    """d(random projection of logits at each sub-pixel) / d(input): [C, H, W, C, H, W]."""
    g = torch.Generator().manual_seed(7)
    proj = torch.randn(model.config.levels, generator=g, dtype=u.dtype)

    def f(inp):
        out = model.forward_float(inp[None], y, h)[0]               # [levels, C, H, W]
        return torch.einsum("lchw,l->chw", out, proj)
    return torch.autograd.functional.jacobian(f, u[0], vectorize=True)


def embedded_input(model, seed=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, model.config.levels, (1, model.config.in_channels, H, W), generator=g)
    return x, model.embed(x)


def dependence(model, y, h, draws=3):
    """|Jacobian| summed over a few random images: a ReLU that happens to be off at one input
    zeroes a gradient there, but a structural dependence shows up at some input."""
    return sum(jacobian(model, embedded_input(model, seed)[1], y, h).abs()
               for seed in range(draws))


@pytest.mark.parametrize("fields", [v[1] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_gated_causal_and_no_blind_spot(fields):
    # Wide enough that some unit of every colour group is active at every pixel.
    fields = {**fields, "channels": 8 * fields["in_channels"]}
    model = make_model(layers=deep_enough(fields["kernel_size"]), **fields)
    y, h = conditioning(model, 1)
    check_jacobian(dependence(model, y, h), model.config.in_channels, no_blind_spot=True)


@pytest.mark.parametrize("fields", [v[1] for v in VARIANTS[:5]], ids=[v[0] for v in VARIANTS[:5]])
def test_pixelcnn_causal(fields):
    """The original PixelCNN is causal too (it has a blind spot, so only zeros are checked)."""
    model = make_model("pixelcnn", layers=3, **fields)
    y, h = conditioning(model, 1)
    check_jacobian(dependence(model, y, h), model.config.in_channels, no_blind_spot=False)


def test_pixelcnn_has_a_blind_spot():
    """The masked model cannot see the pixel up and to the right beyond its cone: the known
    blind spot that motivates the two-stack design."""
    model = make_model("pixelcnn", layers=4, kernel_size=3, in_channels=1, channels=4)
    jac = dependence(model, None, None)
    # Output (0, 3, 1): the pixel two rows up, three to the right (2 layers reach it in the
    # gated model) is invisible.
    assert jac[0, 3, 1, 0, 1, 5] == 0


def test_autoencoder_decoder_causal_with_h_fixed():
    model = make_model("autoencoder", layers=deep_enough(3), kernel_size=3, cond_dim=6,
                       channels=24)
    g = torch.Generator().manual_seed(5)
    h = torch.randn(1, 6, generator=g, dtype=model.dtype)
    check_jacobian(dependence(model, None, h), 3, no_blind_spot=True)


@pytest.mark.parametrize("kind", ["gated", "pixelcnn"])
@pytest.mark.parametrize("fields", [v[1] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_later_integers_change_nothing(kind, fields):
    """Integer inputs, float32: rewriting every later sub-pixel leaves the logits of (c, i, j)
    bit-for-bit the same."""
    model = make_model(kind, dtype=torch.float32, layers=4, **fields)
    cfg = model.config
    C, L = cfg.in_channels, cfg.levels
    y, h = conditioning(model, 2)
    g = torch.Generator().manual_seed(11)
    x = torch.randint(0, L, (2, C, H, W), generator=g)
    positions = [(0, 0, 0), (C - 1, 0, 0), (0, 2, 3), (C - 1, H - 1, W - 1), (C // 2, 3, 6)]
    with torch.no_grad():
        base = model(x, y, h)
        for c, i, j in positions:
            x2 = x.clone().view(2, C, H * W)
            flat_here = i * W + j
            x2[:, :, flat_here + 1:] = torch.randint(0, L, x2[:, :, flat_here + 1:].shape,
                                                     generator=g)
            x2[:, c:, flat_here] = torch.randint(0, L, x2[:, c:, flat_here].shape, generator=g)
            out = model(x2.view(2, C, H, W), y, h)
            assert torch.equal(out[:, :, c, i, j], base[:, :, c, i, j]), (c, i, j)
