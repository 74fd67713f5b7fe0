"""The samplers' contract, written once for every method of pixelcnn.sampling.METHODS: from
the same uniforms each draws the naive reference's images, on every model variant, and a
completion keeps x0's pixels before `start` and samples the rest.

float64: exactly the same images. float32: the methods sum in other orders (native and triton
with their own exp), so a sub-pixel whose uniform lies within rounding of a CDF boundary may
flip. Flips are counted, reported (record_property) and bounded per case: under 1% of the
sub-pixels on the wide model (rounding flips a handful, a real bug most of them), none on the
small ones (as measured on every method).

A method that cannot run a case here is skipped with the package's reason
(pixelcnn.sampling.why_unavailable: native without its C++ extension, triton without CUDA),
except that without a GPU triton runs on CPU tensors under Triton's interpreter (conftest.py
sets TRITON_INTERPRET=1), for float32 images small enough for it. With a GPU triton samples
there, from the same CPU uniforms, against the CPU reference.
"""
import functools
import os
from typing import NamedTuple

import pytest
import torch

import pixelcnn
from helpers import make_model, sampling_inputs
from pixelcnn.sampling import METHODS, why_unavailable

GPU = torch.cuda.is_available()
INTERPRETED = not GPU and os.environ.get("TRITON_INTERPRET") == "1"
MAX_INTERPRETED = 40    # sub-pixels per image: each is one interpreted launch, ~40 ms


class Case(NamedTuple):
    """A model (config fields over the tiny preset, kind, dtype) and its draw: n images of
    `size` at `temperature`. max_flip_rate: the float32 flips allowed per sub-pixel."""
    fields: dict
    dtype: torch.dtype = torch.float64
    n: int = 3
    size: tuple = (5, 7)
    kind: str = "gated"
    temperature: float = 1.0
    max_flip_rate: float = 0.0


IMAGES = {
    # float64, exact: 3 layers, 3 images of 5 x 7 unless said
    "rgb-k3-256": Case(dict(in_channels=3, kernel_size=3)),
    "rgb-k5-256": Case(dict(in_channels=3, kernel_size=5, channels=15)),
    "rgb-k7-2": Case(dict(in_channels=3, kernel_size=7, levels=2)),
    "grey-k3-2": Case(dict(in_channels=1, kernel_size=3, levels=2, channels=5)),
    "grey-k5-256": Case(dict(in_channels=1, kernel_size=5, channels=6)),
    "rgb-k3-class": Case(dict(in_channels=3, kernel_size=3, num_classes=10)),
    "grey-k3-vector": Case(dict(in_channels=1, kernel_size=3, cond_dim=4, channels=4)),
    "rgb-k3-class-vector": Case(dict(in_channels=3, kernel_size=3, num_classes=3, cond_dim=4)),
    "grey-k5-1x9": Case(dict(in_channels=1, kernel_size=5, channels=6), size=(1, 9)),
    "rgb-k3-class-9x1": Case(dict(in_channels=3, kernel_size=3, num_classes=3), size=(9, 1)),
    **{f"autoencoder-T{t}": Case(dict(cond_dim=5), n=2, size=(6, 5), kind="autoencoder",
                                 temperature=t) for t in (1.0, 0.6, 1.7)},
    # float32: 1,536 sub-pixels, enough to meet a few CDF boundaries
    "f32-rgb-c24-8x8": Case(dict(layers=4, channels=24), torch.float32, n=8, size=(8, 8),
                            max_flip_rate=1e-2),
    # float32, small enough for triton under the interpreter: a class-conditional model and an
    # autoencoder's decoder (the other variants meet triton's kernels in test_kernels.py,
    # stepped in lockstep with cached's steps, images compared)
    "f32-rgb-class-3x4": Case(dict(layers=2, channels=9, num_classes=3), torch.float32, n=3,
                              size=(3, 4)),
    "f32-grey-autoencoder-T0.6-3x3": Case(dict(layers=2, in_channels=1, cond_dim=3),
                                          torch.float32, n=2, size=(3, 3), kind="autoencoder",
                                          temperature=0.6),
}
COMPLETION = {          # name -> (case, starts: raster pixels; 35 of 5 x 7 copies them all)
    "rgb-k3-class3": (Case(dict(num_classes=3), n=2), (0, 1, 13, 35)),
    "rgb-k5-c15-class3": (Case(dict(kernel_size=5, channels=15, num_classes=3), n=2),
                          (0, 1, 6, 13, 34, 35)),
    "f32-rgb-class-3x4": (IMAGES["f32-rgb-class-3x4"], (6,)),
}
CASES = {**IMAGES, **{name: case for name, (case, _) in COMPLETION.items()}}


def interpreted_triton(model, case) -> str:
    """Why triton cannot sample `case` under Triton's interpreter ('' when it can)."""
    if case.dtype != torch.float32:
        return f"float32 or bf16 models only, not {case.dtype} (Triton's interpreter, CPU)"
    subpixels = model.config.in_channels * case.size[0] * case.size[1]
    if subpixels > MAX_INTERPRETED:
        return (f"{subpixels} sub-pixels per image: too slow for Triton's interpreter "
                "(runs where there is a GPU)")
    return ""


def model_for(method, name):
    """Case `name`'s model where `method` samples it (triton: on the GPU if there is one), or
    a skip saying why it cannot here."""
    case = CASES[name]
    model = make_model(case.kind, case.dtype, **case.fields)
    fused = method.startswith("triton")
    if fused and GPU:
        model = model.cuda()
    why = interpreted_triton(model, case) if fused and INTERPRETED \
        else why_unavailable(model, method)
    if why:
        pytest.skip(f"{method}: {why}")
    return model


def draw(model, name, method, start=None):
    """`method`'s images of case `name` from its seeded inputs, and with x0 (random images)
    from raster pixel `start` on when one is given."""
    case = CASES[name]
    kw = sampling_inputs(model, case.n, case.size)
    if start is not None:
        g = torch.Generator().manual_seed(4)
        shape = (case.n, model.config.in_channels, *case.size)
        kw.update(x0=torch.randint(0, model.config.levels, shape, generator=g), start=start)
    out = pixelcnn.sample(model, case.n, case.size, method=method,
                          temperature=case.temperature, **kw)
    return out.cpu(), kw.get("x0")


@functools.cache
def reference(name, start=None):
    """The naive images of a case (computed once, shared by every method's test)."""
    case = CASES[name]
    return draw(make_model(case.kind, case.dtype, **case.fields), name, "naive", start)[0]


def check_flips(out, ref, name, record_property):
    """The sub-pixels where `out` differs from the reference: recorded, and within the case's
    bound (none in float64)."""
    flips = int((out != ref).sum())
    record_property("flips", flips)
    assert flips <= CASES[name].max_flip_rate * ref.numel(), \
        f"{flips} of {ref.numel()} sub-pixels differ from naive's"


@pytest.mark.parametrize("name", IMAGES)
@pytest.mark.parametrize("method", METHODS)
def test_same_images_as_naive(method, name, record_property):
    model = model_for(method, name)
    ref = reference(name)
    check_flips(draw(model, name, method)[0], ref, name, record_property)
    assert ref.float().std() > 0            # not a degenerate image


@pytest.mark.parametrize("name,start", [(name, s) for name, (_, starts) in COMPLETION.items()
                                        for s in starts])
@pytest.mark.parametrize("method", METHODS)
def test_completion(method, name, start, record_property):
    """Pixels before `start` are x0's, the rest sampled (not copied), as naive samples them."""
    model = model_for(method, name)
    out, x0 = draw(model, name, method, start)
    n, C = x0.shape[:2]
    flat, flat0 = out.view(n, C, -1), x0.view(n, C, -1)
    assert torch.equal(flat[:, :, :start], flat0[:, :, :start])
    if start < flat.shape[2]:
        assert not torch.equal(flat[:, :, start:], flat0[:, :, start:])
    check_flips(out, reference(name, start), name, record_property)


@pytest.mark.parametrize("start", [None, 6], ids=["sampled", "completed-from-6"])
def test_colour_groups_draw_naives_images(start, monkeypatch, record_property):
    """triton-grid with PIXELCNN_GRID_GROUPS=1 (each sub-pixel makes only its colour group's
    columns, the caches keep the others), with the best modelled design's other switches
    (PDL aside: CUDA only): the weights prefetched (PIXELCNN_GRID_PREFETCH=1) and the head in
    out's phase (PIXELCNN_GRID_HEAD=1), in two sub-batches side by side
    (PIXELCNN_GRID_SUB_BATCHES=2, each with its images' classes): naive's images, sampled and
    completed."""
    for switch in ("GROUPS", "PREFETCH", "HEAD"):
        monkeypatch.setenv(f"PIXELCNN_GRID_{switch}", "1")
    monkeypatch.setenv("PIXELCNN_GRID_SUB_BATCHES", "2")
    name = "f32-rgb-class-3x4"
    model = model_for("triton-grid", name)
    out, _ = draw(model, name, "triton-grid", start)
    check_flips(out, reference(name, start), name, record_property)


@pytest.mark.skipif(not (GPU or INTERPRETED), reason="triton-grid: CUDA or the interpreter")
def test_sub_batch_tiles_draw_the_same_images(monkeypatch):
    """bf16 in two sub-batches of 17 images (PIXELCNN_GRID_SUB_BATCHES=2): each sub-batch's
    pixel steps take tiles of 32 images (sub_batch=True), one block partly masked; a batch of
    34 alone takes three blocks of 16. An image's products are the same in either tile, so
    the images are the same, bit for bit, with the best design's switches."""
    from pixelcnn.kernels import sampler_pixel_grid as pixel_grid
    tiles, seen = pixel_grid.tiles, set()

    def spy(*args, **kw):
        seen.add((args[0], tiles(*args, **kw)[0]))
        return tiles(*args, **kw)
    monkeypatch.setattr(pixel_grid, "tiles", spy)
    for switch in ("GROUPS", "PREFETCH", "HEAD"):
        monkeypatch.setenv(f"PIXELCNN_GRID_{switch}", "1")
    model = make_model(dtype=torch.bfloat16, in_channels=3, channels=12, layers=2)
    if GPU:
        model = model.cuda()
    u = torch.rand(34, 3, 1, 3, generator=torch.Generator().manual_seed(0))
    out = {}
    for k in (1, 2):
        monkeypatch.setenv("PIXELCNN_GRID_SUB_BATCHES", str(k))
        out[k] = pixelcnn.sample(model, 34, (1, 3), method="triton-grid", uniforms=u)
    assert {(34, 16), (17, 32)} <= seen
    assert torch.equal(out[1], out[2])
