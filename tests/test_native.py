"""The native (C++) sampler beyond the contract every method meets (the naive reference's
images: tests/test_sampler_contract.py): the same caches as `cached`, the same images on any
number of threads and with the baseline kernels, the priors of issue 14 (learned input
embedding, conditioning map), and a package that works without the extension. Skipped when
the extension is not built (.ci/run builds it), except the last test, which hides it on
purpose."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import pixelcnn
from helpers import draw, make_model, sampling_inputs
from pixelcnn.packing import pack
from pixelcnn.sampling import cached, native
from pixelcnn.sampling.common import prepare


def _built() -> bool:
    try:
        native.operator()
    except RuntimeError:
        return False
    return True


built = pytest.mark.skipif(not _built(), reason="the native extension is not built; see "
                                                "pixelcnn.sampling.native.BUILD_HINT")


# (id, config fields): issue 14's priors. K = 512 codes with classes; embedded colour
# channels; maps on one and three channels; embedding and map together.
PRIORS = [
    ("codes-512-class", dict(in_channels=1, levels=512, embedding_dim=4, num_classes=3)),
    ("rgb-embedded", dict(in_channels=3, levels=16, embedding_dim=2)),
    ("grey-map", dict(in_channels=1, levels=8, cond_channels=3)),
    ("rgb-map", dict(in_channels=3, levels=8, cond_channels=3)),
    ("rgb-embedded-map", dict(in_channels=3, levels=32, embedding_dim=3, cond_channels=2,
                              cond_dim=4)),
]
priors = pytest.mark.parametrize("fields", [p[1] for p in PRIORS], ids=[p[0] for p in PRIORS])


def prior_inputs(model, n, size, seed=0) -> dict:
    """`sampling_inputs` and, for a model with cond_channels, a random cond_map."""
    inputs = sampling_inputs(model, n, size, seed)
    if model.config.cond_channels:
        g = torch.Generator().manual_seed(seed + 1)
        inputs["cond_map"] = torch.randn(n, model.config.cond_channels, *size, generator=g,
                                         dtype=model.dtype)
    return inputs


@built
@torch.no_grad()
@pytest.mark.parametrize("fields", [dict(num_classes=4), dict(
    num_classes=4, in_channels=3, embedding_dim=2, cond_channels=3)], ids=["plain", "prior"])
def test_same_caches_as_cached(fields):
    """Both samplers drive a GatedCache over the same rows: same images, same buffers (with a
    map, whose rows the native calls must pick up where the previous call stopped)."""
    model = make_model(layers=3, kernel_size=5, channels=15, **fields)
    y = torch.tensor([1, 3])
    cond_map = prior_inputs(model, 2, (6, 9)).get("cond_map")
    caches = {}
    for name, run in (("cached", cached.sample_rows), ("native", native.sample_rows)):
        job = prepare(model, 2, (6, 9), y=y, generator=torch.Generator().manual_seed(3),
                      cond_map=cond_map)
        cache = cached.GatedCache(pack(model), model.condition(y), job.cond_map).setup(2, 6, 9)
        if name == "cached":
            run(job, cache, range(6))
        else:
            run(job, cache, range(4))            # carries on across calls
            run(job, cache, range(4, 6))
        caches[name] = (job.x, cache)
    (x_c, c), (x_n, n) = caches["cached"], caches["native"]
    assert torch.equal(x_n, x_c)
    for name in ("vbuf", "v_pre", "row_bias", "hbuf", "base", "gated"):
        torch.testing.assert_close(getattr(n, name), getattr(c, name), rtol=0, atol=1e-12,
                                   msg=name)


@built
@priors
def test_priors_same_images_as_cached_and_naive(fields):
    """float64, the same uniforms: native draws cached's and the naive reference's codes."""
    model = make_model(layers=3, **fields)
    inputs = prior_inputs(model, 3, (4, 5))
    ref = pixelcnn.sample(model, 3, (4, 5), method="naive", **inputs)
    assert len(ref.unique()) > 3
    assert torch.equal(pixelcnn.sample(model, 3, (4, 5), method="cached", **inputs), ref)
    assert torch.equal(pixelcnn.sample(model, 3, (4, 5), method="native", **inputs), ref)


@built
@pytest.mark.parametrize("fields", [PRIORS[2][1], PRIORS[4][1]],
                         ids=["grey-map", "rgb-embedded-map"])
def test_priors_completion_with_map(fields):
    """Completion from x0 mid-row: the rows above are x0's, yet their map rows still enter
    the caches (the vertical stack reads row i - 1's, the horizontal row i's)."""
    model = make_model(layers=3, **fields)
    n, C, size, start = 2, model.config.in_channels, (4, 5), 5 + 2
    inputs = prior_inputs(model, n, size)
    x0 = torch.randint(0, model.config.levels, (n, C, *size),
                       generator=torch.Generator().manual_seed(4))
    runs = {method: pixelcnn.sample(model, n, size, method=method, x0=x0, start=start, **inputs)
            for method in ("naive", "cached", "native")}
    assert torch.equal(runs["native"], runs["naive"])
    assert torch.equal(runs["cached"], runs["naive"])
    assert torch.equal(runs["native"].view(n, C, -1)[:, :, :start], x0.view(n, C, -1)[:, :, :start])


@built
@priors
def test_priors_float32_flips_are_boundary_rare(fields):
    """float32: native against cached and naive, identical but for the rare sub-pixel whose
    uniform falls within rounding of a CDF boundary."""
    model = make_model(dtype=torch.float32, layers=3, **fields)
    inputs = prior_inputs(model, 4, (5, 6))
    out = pixelcnn.sample(model, 4, (5, 6), method="native", **inputs)
    for method in ("cached", "naive"):
        other = pixelcnn.sample(model, 4, (5, 6), method=method, **inputs)
        assert (out == other).float().mean() >= 0.99, method


@pytest.fixture
def threads():
    """Set torch's thread count in a test; restored afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


# channels 96 reaches the threshold (kTeamHidden in csrc/sampler.cpp) above which, at batch
# < threads, the threads share each image's products instead of taking whole images.
@built
@pytest.mark.parametrize("channels", [24, 96], ids=["images-per-thread", "threads-per-image"])
def test_threads_and_batch_do_not_change_images(channels, threads):
    """Each image goes through the same arithmetic whatever the threads and the other images
    in its batch: bit-identical float32 images."""
    model = make_model(layers=3, dtype=torch.float32, channels=channels, num_classes=3)
    g = torch.Generator().manual_seed(5)
    u = torch.rand(5, 3, 6, 6, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1])
    runs = []
    for n in (1, 2, 3):
        threads(n)
        runs.append(pixelcnn.sample(model, 5, (6, 6), y=y, uniforms=u, method="native"))
        runs.append(torch.cat([pixelcnn.sample(model, 1, (6, 6), y=y[b:b + 1],
                                               uniforms=u[b:b + 1], method="native")
                               for b in range(5)]))
    for out in runs[1:]:
        assert torch.equal(out, runs[0])


@built
def test_threads_per_image_same_images_as_naive(threads):
    threads(2)
    model = make_model(layers=2, channels=96, kernel_size=5)
    assert torch.equal(draw(model, 1, (4, 5), method="native"), draw(model, 1, (4, 5)))


@built
def test_threads_per_image_prior(threads):
    """The threads of a team share the map's products too (a layer each) and the embedded
    first layer: same codes as cached."""
    threads(2)
    model = make_model(layers=3, channels=96, **PRIORS[4][1])
    inputs = prior_inputs(model, 1, (4, 5))
    assert torch.equal(pixelcnn.sample(model, 1, (4, 5), method="native", **inputs),
                       pixelcnn.sample(model, 1, (4, 5), method="cached", **inputs))


@built
@pytest.mark.parametrize("channels", [15, 96], ids=["images-per-thread", "threads-per-image"])
def test_baseline_kernels(channels, threads, monkeypatch):
    """The kernels compiled for CPUs without AVX2 (picked on this one by an override)."""
    monkeypatch.setenv("PIXELCNN_NATIVE_KERNELS", "baseline")
    threads(2)
    model = make_model(layers=3, kernel_size=5, channels=channels, num_classes=3)
    assert torch.equal(draw(model, 1, (4, 6), method="native"), draw(model, 1, (4, 6)))


@built
def test_progress_and_auto():
    model = make_model(layers=2)
    u = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    out = pixelcnn.sample(model, 2, (4, 5), uniforms=u, method="native")
    assert torch.equal(pixelcnn.sample(model, 2, (4, 5), uniforms=u, method="native",
                                       progress=True), out)
    assert pixelcnn.sampling.available_methods(model)[0] == "native"
    half = make_model(layers=2).to(torch.bfloat16)
    assert "native" not in pixelcnn.sampling.available_methods(half)
    with pytest.raises(ValueError, match="float32 or float64"):
        pixelcnn.sample(half, 1, (2, 2), method="native")


def test_package_works_without_the_extension():
    """With the library missing: the package imports, `auto` samples without it, and `native`
    says how to build it."""
    script = textwrap.dedent("""
        import torch, pixelcnn
        model = pixelcnn.GatedPixelCNN(in_channels=1, levels=4, channels=4, layers=2,
                                       kernel_size=3)
        assert "native" not in pixelcnn.sampling.available_methods(model)
        assert pixelcnn.sample(model, 1, (2, 3), method="auto").shape == (1, 1, 2, 3)
        try:
            pixelcnn.sample(model, 1, (2, 3), method="native")
        except RuntimeError as e:
            assert "cmake -S . -B build/native" in str(e), e
        else:
            raise AssertionError("method='native' sampled without the library")
    """)
    env = dict(os.environ, PIXELCNN_NATIVE_LIB=os.devnull + ".missing/libpixelcnn_native.so")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
