"""The naive reference follows the model's softmax; `sample` rejects bad input and what a
method cannot sample, and keeps a float64 model's precision. (That every method draws naive's
images: tests/test_sampler_contract.py.)"""
import math

import pytest
import torch

import pixelcnn
from helpers import make_model


# ---- distribution of the reference sampler -------------------------------------------------

def chi2_sf(stat, df):
    """P(chi2_df >= stat): the regularised upper incomplete gamma function."""
    return float(torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64),
                                         torch.tensor(stat / 2, dtype=torch.float64)))


def chi2_test(counts, probs):
    """Pearson's statistic and p-value of observed counts against expected probabilities."""
    n = counts.sum()
    expected = n * probs
    stat = float(((counts - expected) ** 2 / expected).sum())
    return stat, chi2_sf(stat, probs.numel() - 1)


def power_against(probs, alt, n, alpha=1e-3):
    """Approximate power of the chi-square test at level alpha against the alternative `alt`
    (non-central chi-square, normal approximation)."""
    df = probs.numel() - 1
    lam = float(n * ((alt - probs) ** 2 / probs).sum())
    crit = df * (1 - 2 / (9 * df) + 3.09 * math.sqrt(2 / (9 * df))) ** 3   # Wilson-Hilferty
    mean, var = df + lam, 2 * (df + 2 * lam)
    return 0.5 * math.erfc((crit - mean) / math.sqrt(2 * var))


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_naive_follows_softmax(temperature):
    """Joint histogram of the first two sub-pixels (levels 6, one channel, 1 x 2 image) against
    p(v1) p(v2 | v1) = softmax(logits / T). 36 bins, 40,000 draws; the power statement below
    is asserted, not assumed."""
    levels, n = 6, 40_000
    model = make_model(in_channels=1, channels=4, levels=levels, layers=2, gain=2.0)
    g = torch.Generator().manual_seed(2024)
    x = pixelcnn.sample(model, n, (1, 2), method="naive", generator=g, temperature=temperature)
    with torch.no_grad():
        first = torch.softmax(model(torch.zeros(1, 1, 1, 2, dtype=torch.long))[0, :, 0, 0, 0]
                              / temperature, 0)
        given = torch.arange(levels).view(levels, 1, 1, 1).expand(levels, 1, 1, 2).clone()
        second = torch.softmax(model(given)[:, :, 0, 0, 1] / temperature, 1)   # [v1, v2]
    probs = (first[:, None] * second).flatten()
    counts = torch.bincount(x[:, 0, 0, 0] * levels + x[:, 0, 0, 1], minlength=levels ** 2)
    stat, p = chi2_test(counts.double(), probs)
    assert p > 1e-3, f"chi2 = {stat:.1f} on {probs.numel() - 1} df, p = {p:.2e}"
    # Power: a sampler at the wrong temperature (T * 1.15) would be caught almost surely.
    with torch.no_grad():
        wrong_first = torch.softmax(first.log() / 1.15, 0)
        wrong_second = torch.softmax(second.log() / 1.15, 1)
    alt = (wrong_first[:, None] * wrong_second).flatten()
    assert power_against(probs, alt, n) > 0.99


# ---- bad input --------------------------------------------------------------------------

BAD = [
    ("n=0", dict(n=0), "n (the number of images)"),
    ("n=float", dict(n=2.0), "n (the number of images)"),
    ("size", dict(size=(0, 4)), "size must be"),
    ("size-type", dict(size="big"), "size must be"),
    ("uniforms-shape", dict(uniforms=torch.rand(2, 3, 4, 4)), "uniforms must be a float tensor"),
    ("uniforms-range", dict(uniforms=torch.ones(2, 3, 5, 4)), "uniforms must lie in [0, 1)"),
    ("uniforms-int", dict(uniforms=torch.zeros(2, 3, 5, 4, dtype=torch.long)), "uniforms must be"),
    ("y-missing", dict(y=None), "y is required"),
    ("y-range", dict(y=torch.tensor([0, 3])), "y values must lie in [0, 3)"),
    ("y-shape", dict(y=torch.tensor([0])), "y must be an integer tensor of shape [2]"),
    ("h-given", dict(h=torch.zeros(2, 4)), "h was given"),
    ("x0-shape", dict(x0=torch.zeros(2, 3, 4, 4, dtype=torch.long), start=3), "x0 must have shape"),
    ("x0-range", dict(x0=torch.full((2, 3, 5, 4), 256), start=3), "x values must lie in"),
    ("x0-float", dict(x0=torch.zeros(2, 3, 5, 4), start=3), "integer sub-pixel values"),
    ("x0-missing", dict(start=3), "pass x0"),
    ("start-range", dict(start=21, x0=torch.zeros(2, 3, 5, 4, dtype=torch.long)), "start must be"),
    ("start-negative", dict(start=-1), "start must be"),
    ("temperature", dict(temperature=0), "temperature must be"),
    ("method", dict(method="fast"), "method must be one of"),
]


@pytest.mark.parametrize("change,message", [(b[1], b[2]) for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(change, message):
    model = make_model(layers=2, num_classes=3)
    args = dict(n=2, size=(5, 4), y=torch.tensor([0, 1]), method="cached")
    args.update(change)
    n = args.pop("n")
    with pytest.raises(ValueError) as e:
        pixelcnn.sample(model, n, **args)
    assert message in str(e.value)


def test_cached_rejects_masked_pixelcnn():
    model = make_model("pixelcnn", layers=2)
    with pytest.raises(ValueError, match="method='naive'"):
        pixelcnn.sample(model, 1, (3, 3), method="cached")
    assert pixelcnn.sample(model, 1, (3, 3), method="auto").shape == (1, 3, 3, 3)


def test_autoencoder_needs_code():
    model = make_model("autoencoder", layers=2, cond_dim=5)
    with pytest.raises(ValueError, match="needs its code h"):
        pixelcnn.sample(model, 1, (3, 3))
    x = torch.randint(0, 256, (2, 3, 6, 6))
    assert model.reconstruct(x).shape == x.shape


def test_float64_model_samples_in_float64():
    model = make_model(layers=2)
    u = torch.full((1, 3, 2, 2), 0.5, dtype=torch.float64)
    # Forced through the float64 path: the same uniforms on a float32 copy may differ only
    # at boundaries, but the float64 run must use its own precision (no silent downcast).
    from pixelcnn.sampling.common import prepare
    assert prepare(model, 1, (2, 2), uniforms=u).uniforms.dtype == torch.float64
    assert prepare(model.float(), 1, (2, 2), uniforms=u).uniforms.dtype == torch.float32
