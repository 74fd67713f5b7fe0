"""Every fused Triton kernel against its PyTorch reference (on the CPU: Triton's interpreter,
set up by conftest.py), on awkward shapes, with outputs poisoned by NaN so that an element a
kernel fails to write cannot pass. (method='triton' end to end, against the naive reference:
tests/test_sampler_contract.py; on priors over codes - learned embeddings, conditioning maps -
against cached: here.)"""
import functools
import itertools
import subprocess
import sys

import pytest
import torch
import triton
import triton.language as tl

import pixelcnn
from helpers import conditioning, make_model
from pixelcnn.kernels import reference
from pixelcnn.kernels.common import pow2
from pixelcnn.kernels.horizontal_stack import horizontal_stack
from pixelcnn.kernels import sampler_pixel_grid as pixel_grid
from pixelcnn.kernels import sampler_row_gemm as row_gemm
from pixelcnn.kernels.sampler_pixel import sampler_pixel
from pixelcnn.kernels.sampler_pixel_grid import _phase_tiles, sampler_pixel_grid
from pixelcnn.kernels.sampler_row import sampler_row
from pixelcnn.kernels.sampler_row_gemm import sampler_row_gemm
from pixelcnn.kernels.vertical_stack import vertical_stack
from pixelcnn.packing import layer_biases, pack
from pixelcnn.sampling.cached import GatedCache, pixel_step, row_step

DTYPES = {"float32": (torch.float32, dict(rtol=1e-5, atol=1e-5)),
          "bf16": (torch.bfloat16, dict(rtol=2e-2, atol=2e-2))}


@pytest.fixture
def poison(monkeypatch):
    """torch.Tensor.new_empty returns NaN-filled tensors: unwritten outputs show up."""
    new_empty = torch.Tensor.new_empty

    def nan_empty(self, *size, **kw):
        return new_empty(self, *size, **kw).fill_(float("nan"))
    monkeypatch.setattr(torch.Tensor, "new_empty", nan_empty)


def layer_inputs(seed, B, H, W, channels, in_channels, kernel_size, dtype, classes=3):
    """A random model's packed layer-1 weights (layer 0 for the first layer) and inputs."""
    model = make_model(dtype=torch.float32, seed=seed, in_channels=in_channels,
                       channels=channels, kernel_size=kernel_size, layers=2,
                       num_classes=classes)
    packed = pack(model).apply(lambda t: t.to(dtype))
    y = torch.arange(B) % classes
    bias_v, bias_h = layer_biases(packed, model.condition(y, None).to(dtype), B)
    g = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.randn(*s, generator=g).to(dtype)
    return packed, bias_v, bias_h, rand


SHAPES = [(1, 1), (1, 5), (5, 7), (13, 13), (7, 1)]


@pytest.mark.parametrize("dtype", DTYPES, ids=list(DTYPES))
@pytest.mark.parametrize("H,W", SHAPES, ids=[f"{h}x{w}" for h, w in SHAPES])
@pytest.mark.parametrize("kernel_size,channels,cin", [(3, 15, 3), (5, 12, 12), (7, 6, 1)],
                         ids=["k3-c15-rgb", "k5-c12-hidden", "k7-c6-grey"])
def test_vertical_stack(poison, kernel_size, channels, cin, H, W, dtype):
    dt, tol = DTYPES[dtype]
    B = 2
    packed, bias_v, _, rand = layer_inputs(1, B, H, W, channels, 3 if cin == 3 else 1,
                                           kernel_size, dt)
    v_in = rand(B, H, W, cin)
    layer = 0 if cin != channels else 1
    out = vertical_stack(v_in, packed.wv[layer], bias_v[layer], kernel_size)
    ref = reference.vertical_stack(v_in, packed.wv[layer], bias_v[layer], kernel_size)
    for o, r in zip(out, ref):
        assert not o.isnan().any()
        torch.testing.assert_close(o.float(), r.float(), **tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=list(DTYPES))
@pytest.mark.parametrize("H,W", SHAPES, ids=[f"{h}x{w}" for h, w in SHAPES])
@pytest.mark.parametrize("first", [True, False], ids=["first", "later"])
@pytest.mark.parametrize("kernel_size,channels", [(3, 15), (5, 6)], ids=["k3-c15", "k5-c6"])
def test_horizontal_stack(poison, kernel_size, channels, first, H, W, dtype):
    dt, tol = DTYPES[dtype]
    B = 2
    packed, _, bias_h, rand = layer_inputs(2, B, H, W, channels, 3, kernel_size, dt)
    layer = 0 if first else 1
    h_in = rand(B, H, W, 3 if first else channels)
    v_pre = rand(B, H, W, 2 * channels)
    skip = torch.randn(B, H, W, channels)
    skip_ref = skip.clone()
    w = [packed.wh_prev[layer], packed.wh_cur[layer], packed.wlink[layer], bias_h[layer],
         packed.wres[layer], packed.bres[layer], packed.wskip[layer]]
    out = horizontal_stack(h_in, v_pre, *w, skip, first)
    ref = reference.horizontal_stack(h_in, v_pre, *w, skip_ref, first)
    assert not out.isnan().any()
    torch.testing.assert_close(out.float(), ref.float(), **tol)
    torch.testing.assert_close(skip, skip_ref, **tol)


FORWARD = [
    ("rgb-k3-class", dict(in_channels=3, kernel_size=3, channels=15, num_classes=3)),
    ("grey-k5-vector", dict(in_channels=1, kernel_size=5, channels=5, cond_dim=4, levels=2)),
]


@pytest.mark.parametrize("fields", [f[1] for f in FORWARD], ids=[f[0] for f in FORWARD])
def test_triton_forward_matches_torch(fields):
    model = make_model(dtype=torch.float32, layers=3, **fields)
    y, h = conditioning(model, 2)
    x = torch.randint(0, model.config.levels, (2, model.config.in_channels, 6, 5))
    with torch.no_grad():
        ref = model(x, y, h)
        model.backend = "triton"
        out = model(x, y, h)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_triton_backend_is_inference_only():
    model = make_model(dtype=torch.float32, layers=2)
    model.backend = "triton"
    x = torch.randint(0, 256, (1, 3, 3, 3))
    with pytest.raises(ValueError, match="inference only"):
        model(x)
    with pytest.raises(ValueError, match="backend must be one of"):
        model.backend = "cuda"


# ---- the incremental sampler's steps ------------------------------------------------------

SAMPLER = [
    ("rgb-k3-c15-class", dict(in_channels=3, kernel_size=3, channels=15, num_classes=3), (4, 5)),
    ("grey-k5-c6-2", dict(in_channels=1, kernel_size=5, channels=6, levels=2), (3, 6)),
    ("rgb-k3-c6-vector-1xW", dict(in_channels=3, kernel_size=3, channels=6, cond_dim=3), (1, 5)),
    ("grey-k3-c5-Hx1", dict(in_channels=1, kernel_size=3, channels=5, levels=7), (4, 1)),
    # priors over codes (issue 14): learned embedding tables, conditioning maps
    ("codes-k3-c8-512-e4-class", dict(in_channels=1, kernel_size=3, channels=8, levels=512,
                                      embedding_dim=4, num_classes=3), (3, 3)),
    ("rgb-k3-c9-e2-map", dict(in_channels=3, kernel_size=3, channels=9, levels=16,
                              embedding_dim=2, cond_channels=2), (3, 3)),
    # F = 36 embedded features: layer 0's current tap as tl.dot over two blocks of 32
    ("rgb-k3-c36-e12-map-F36", dict(in_channels=3, kernel_size=3, channels=36, levels=16,
                                    embedding_dim=12, cond_channels=2), (2, 3)),
]
WRITTEN = ("v_pre", "row_bias", "base", "gated", "scratch")   # fully written before read


STEPS = {   # name -> (row kernel, pixel kernel, what the pixel kernel writes,
            #          {(module, tile function): override})
    "program": (sampler_row, sampler_pixel, ["base", "gated", "cur"], {}),
    "grid": (sampler_row_gemm, sampler_pixel_grid, ["base", "gated"], {}),
    # large-batch tiles on a small batch: 32 images x 16 columns, 128 positions x 64 columns
    "grid-wide-tiles": (sampler_row_gemm, sampler_pixel_grid, ["base", "gated"],
                        {(row_gemm, "tiles"):
                             lambda positions, dtype, hidden, sub_batch=False: (128, 64, 8),
                         (pixel_grid, "tiles"):
                             lambda batch, hidden, dtype, persistent=False, sub_batch=False:
                             (32, 16)}),
    # each layer's products over twice the tiles (PIXELCNN_GRID_SPLIT=1)
    "grid-split": (sampler_row_gemm, functools.partial(sampler_pixel_grid, split=True),
                   ["base", "gated"], {}),
    # and the look-ahead: every program a chain of two products (PIXELCNN_GRID_AHEAD=1)
    "grid-ahead": (sampler_row_gemm, functools.partial(sampler_pixel_grid, split=2),
                   ["base", "gated"], {}),
    # each layer's weights loaded first, in one K tile (PIXELCNN_GRID_PREFETCH=1)
    "grid-prefetch": (sampler_row_gemm, functools.partial(sampler_pixel_grid, prefetch=True),
                      ["base", "gated"], {}),
    # each sub-pixel only its colour group's columns (PIXELCNN_GRID_GROUPS=1), with the
    # look-ahead (the most kinds of tile) and with the weights prefetched (K in one tile)
    "grid-groups-ahead": (sampler_row_gemm,
                          functools.partial(sampler_pixel_grid, split=2, groups=True),
                          ["base", "gated"], {}),
    "grid-groups-prefetch": (sampler_row_gemm,
                             functools.partial(sampler_pixel_grid, prefetch=True, groups=True),
                             ["base", "gated"], {}),
    # the head's hidden activations in out's programs (PIXELCNN_GRID_HEAD=1), in blocks of
    # 16 columns (three for the F36 map model's 36), and with colour groups and prefetch (one
    # block of 12)
    "grid-head": (sampler_row_gemm, functools.partial(sampler_pixel_grid, head=True),
                  ["base", "gated"], {(pixel_grid, "head_block"): lambda width: 16}),
    "grid-groups-head": (sampler_row_gemm,
                         functools.partial(sampler_pixel_grid, prefetch=True, groups=True,
                                           head=True), ["base", "gated"], {}),
    # every product's whole K in one tile (as PIXELCNN_GRID_BK=256 on the cifar preset)
    "grid-whole-k": (sampler_row_gemm, sampler_pixel_grid, ["base", "gated"],
                     {(pixel_grid, "k_tile"): lambda hidden, dtype: max(16, pow2(hidden))}),
}


def test_sub_batch_tiles_are_fewer_and_larger():
    """One of several sub-batches side by side (sub_batch=True) takes bf16 tiles of 32 images
    above 16 (alone: above 128) and the row step's 128 x 64 from 1,024 positions (alone:
    4,096): fewer programs at the same latency, the SMs left to the others' steps. float32
    keeps its tiles (its exact products spill in larger ones); the persistent kernel too."""
    bf16, f32 = torch.bfloat16, torch.float32
    assert [pixel_grid.tiles(b, 192, bf16, sub_batch=True) for b in (16, 17, 64)] == \
        [(16, 16), (32, 16), (32, 16)]
    assert pixel_grid.tiles(64, 192, bf16) == (16, 16) and pixel_grid.tiles(129, 192, bf16) \
        == (32, 16)
    assert pixel_grid.tiles(64, 192, f32, sub_batch=True) == (16, 16)
    assert pixel_grid.tiles(64, 192, bf16, persistent=True, sub_batch=True) == (16, 16)
    assert pixel_grid.phase_tiles(2, 15, 64, 192, bf16, sub_batch=True) == \
        pixel_grid.phase_tiles(2, 15, 64, 192, bf16) // 2
    assert [row_gemm.tiles(p, bf16, 192, sub_batch=True) for p in (512, 1024, 4096)] == \
        [(32, 16, 4), (128, 64, 8), (128, 64, 8)]
    assert row_gemm.tiles(1024, bf16, 192) == (64, 32, 4)
    assert row_gemm.tiles(1024, f32, 192, sub_batch=True) == (32, 16, 8)


F36 = lambda fields: fields.get("embedding_dim") == 12      # the F36 map model
CODES = lambda fields: fields.get("embedding_dim") == 4     # the codes model
ON_MODELS = {   # step -> (the SAMPLER models whose lockstep case runs it, why only those)
    "grid-whole-k": (lambda fields: fields["channels"] > 32,
                     "one K tile either way below 33 channels: the c36 model tests it"),
    "grid-wide-tiles": (CODES, "tiles wider than the model, partly masked: the codes model "
                               "(bf16 tiles of 32 images on an RGB model: "
                               "test_sampler_contract's sub-batch tiles)"),
    "grid-split": (lambda fields: fields["in_channels"] == 1 and fields["kernel_size"] == 5,
                   "the split tiles meet the same buffers: the k5 model tests it (the "
                   "look-ahead's cases take its finishing tiles too, on the F36 map model)"),
    "grid-ahead": (CODES, "the look-ahead meets the same buffers as the split: the codes model "
                          "(the F36 map model takes it with colour groups)"),
    "grid-groups-ahead": (F36, "colour groups with the look-ahead: the F36 map model (12 "
                               "columns a group; one channel has one group, every column)"),
    "grid-groups-prefetch": (F36, "colour groups with the weights prefetched: the F36 map "
                                  "model (12 a group)"),
    "grid-head": (F36, "the head in out's programs: the F36 map model (36 columns in 3 "
                       "blocks)"),
    "grid-groups-head": (F36, "the head in out's programs, with colour groups and the weights "
                              "prefetched: the F36 map model"),
    "grid-prefetch": (lambda fields: fields.get("num_classes") == 3,
                      "the gate tiles' K in one tile: the class models (the F36 map model, "
                      "three K tiles otherwise, takes it with colour groups and with the head)"),
}


def test_grid_k_tile_from_the_environment(monkeypatch):
    """PIXELCNN_GRID_BK sets triton-grid's K tile (to time one against another); anything but
    a power of two >= 16 is refused, saying what it must be. Unset: 32 in bf16, 16 in
    float32 (its FMA products spill at 32)."""
    assert pixel_grid.k_tile(192, torch.bfloat16) == 32
    assert pixel_grid.k_tile(192, torch.float32) == 16
    monkeypatch.setenv("PIXELCNN_GRID_BK", "256")
    assert pixel_grid.k_tile(192, torch.bfloat16) == 256
    assert pixel_grid.out_k_tile(256, 256) == 32 and pixel_grid.out_k_tile(256, 32) == 16
    for bad in ("48", "8", "big"):
        monkeypatch.setenv("PIXELCNN_GRID_BK", bad)
        with pytest.raises(ValueError, match="power of two >= 16"):
            pixel_grid.k_tile(192, torch.bfloat16)


def test_grid_pipeline_stages_from_the_environment(monkeypatch):
    """PIXELCNN_GRID_STAGES sets the phases' num_stages (Triton's default 3 without it), a
    launch option the interpreter accepts: the step draws the same images with it."""
    assert pixel_grid.pipeline_stages() == 3
    model = make_model(dtype=torch.float32, layers=2, in_channels=1, levels=4)
    u = torch.rand(2, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    ref = pixelcnn.sample(model, 2, (3, 3), method="triton-grid", uniforms=u)
    monkeypatch.setenv("PIXELCNN_GRID_STAGES", "7")
    assert pixel_grid.pipeline_stages() == 7
    assert torch.equal(pixelcnn.sample(model, 2, (3, 3), method="triton-grid", uniforms=u), ref)
    for bad in ("0", "-1", "many"):
        monkeypatch.setenv("PIXELCNN_GRID_STAGES", bad)
        with pytest.raises(ValueError, match="integer >= 1"):
            pixel_grid.pipeline_stages()


def test_grid_barrier_poll_from_the_environment(monkeypatch):
    """PIXELCNN_GRID_POLL picks how the persistent step's barrier waits: atomic (default) or
    load; anything else is refused before a launch."""
    from pixelcnn.kernels.grid import poll_mode
    assert poll_mode() == "atomic"
    monkeypatch.setenv("PIXELCNN_GRID_POLL", "load")
    assert poll_mode() == "load"
    monkeypatch.setenv("PIXELCNN_GRID_POLL", "spin")
    with pytest.raises(ValueError, match="'atomic' or 'load', got 'spin'"):
        poll_mode()


def test_grid_persistent_step_is_opt_in(monkeypatch):
    """triton-grid launches its pixel step phase by phase unless PIXELCNN_GRID_PERSISTENT=1
    asks for the persistent kernel (and then only where it can run: bf16 on CUDA); anything
    but 0 or 1 is refused, and sampling fails with it before any launch."""
    from pixelcnn.kernels.grid import persistent_requested
    assert not persistent_requested()
    monkeypatch.setenv("PIXELCNN_GRID_PERSISTENT", "1")
    assert persistent_requested()
    monkeypatch.setenv("PIXELCNN_GRID_PERSISTENT", "yes")
    with pytest.raises(ValueError, match="must be '0' .* or '1' .*, got 'yes'"):
        persistent_requested()
    model = make_model(dtype=torch.float32, layers=1)
    with pytest.raises(ValueError, match="PIXELCNN_GRID_PERSISTENT"):
        pixelcnn.sample(model, 1, (2, 2), method="triton-grid")


def test_grid_split_is_opt_in(monkeypatch):
    from pixelcnn.kernels.grid import split_requested
    monkeypatch.delenv("PIXELCNN_GRID_SPLIT", raising=False)
    assert not split_requested()
    monkeypatch.setenv("PIXELCNN_GRID_SPLIT", "1")
    assert split_requested()
    assert pixel_grid.phase_tiles(2, 3, 17, 12, torch.float32, split=True) == \
        2 * pixel_grid.phase_tiles(2, 3, 17, 12, torch.float32)
    assert pixel_grid.phase_tiles(1, 3, 17, 12, torch.float32, split=True) == \
        pixel_grid.phase_tiles(1, 3, 17, 12, torch.float32)          # layer 0: nothing to finish
    monkeypatch.setenv("PIXELCNN_GRID_SPLIT", "yes")
    with pytest.raises(ValueError, match="PIXELCNN_GRID_SPLIT must be '0' .* or '1' .*, got 'yes'"):
        split_requested()


@triton.jit
def _count_tiles(out, left, NC, B, HD, L, BB: tl.constexpr, BN: tl.constexpr,
                 SPLIT: tl.constexpr):
    ph = tl.program_id(0) + 1
    tl.store(out + ph - 1, _phase_tiles(ph, left, NC, B, HD, L, BB, BN, SPLIT))


@pytest.mark.parametrize("layers", [1, 3])
def test_persistent_loop_counts_the_launchers_tiles(layers):
    """The persistent kernel loops over each phase's tiles as counted in the kernel
    (_phase_tiles): the tiles the launcher gives that phase one launch each (phase_tiles), at
    c = 0 (the next layer's base beside) and after, split or not, in 16- and 32-image tiles,
    over every column or one colour group's (PIXELCNN_GRID_GROUPS=1)."""
    for batch, hidden, split, left, dtype, groups in itertools.product(
            (1, 17, 200), (12, 36), (0, 1, 2), (0, 1), (torch.float32, torch.bfloat16),
            (1, 3)):
        bb, bn = pixel_grid.tiles(batch, hidden, dtype)     # bf16 above 128 images: 32
        out = torch.zeros(layers + 3, dtype=torch.int32)
        width = hidden // groups
        _count_tiles[(layers + 3,)](out, left, width, batch, hidden, layers, bb, bn, split)
        assert out.tolist() == [pixel_grid.phase_tiles(ph, layers, batch, hidden, dtype,
                                                       split=split, left=bool(left),
                                                       width=width)
                                for ph in range(1, layers + 4)]


def test_grid_ahead_is_opt_in(monkeypatch):
    """PIXELCNN_GRID_AHEAD=1 asks for the look-ahead split (SPLIT = 2): a layer phase (l >= 1)
    in twice the tiles of the split, and two more kinds before the last layer."""
    from pixelcnn.kernels.grid import ahead_requested
    monkeypatch.delenv("PIXELCNN_GRID_AHEAD", raising=False)
    assert not ahead_requested()
    monkeypatch.setenv("PIXELCNN_GRID_AHEAD", "1")
    assert ahead_requested()
    one = pixel_grid.phase_tiles(2, 3, 17, 12, torch.float32)
    assert pixel_grid.phase_tiles(2, 3, 17, 12, torch.float32, split=2) == 4 * one
    assert pixel_grid.phase_tiles(3, 3, 17, 12, torch.float32, split=2) == 2 * one   # the last
    assert pixel_grid.phase_tiles(1, 3, 17, 12, torch.float32, split=2) == one       # layer 0
    monkeypatch.setenv("PIXELCNN_GRID_AHEAD", "on")
    with pytest.raises(ValueError, match="PIXELCNN_GRID_AHEAD must be '0' .* or '1' .*"):
        ahead_requested()


def test_grid_prefetch_is_opt_in(monkeypatch):
    """PIXELCNN_GRID_PREFETCH=1 asks for the layers' weights loaded first (unsplit launches
    per phase): method='triton-grid' then samples what cached samples, and refuses it beside
    the split, the look-ahead or the persistent kernel before any launch, saying what to unset;
    anything but 0 or 1 is refused."""
    from pixelcnn.kernels.grid import prefetch_requested
    monkeypatch.delenv("PIXELCNN_GRID_PREFETCH", raising=False)
    assert not prefetch_requested()
    model = make_model(dtype=torch.float32, layers=3, in_channels=3, levels=8)
    u = torch.rand(2, 3, 2, 3, generator=torch.Generator().manual_seed(1))
    ref = pixelcnn.sample(model, 2, (2, 3), method="cached", uniforms=u)
    monkeypatch.setenv("PIXELCNN_GRID_PREFETCH", "1")
    assert prefetch_requested()
    assert torch.equal(pixelcnn.sample(model, 2, (2, 3), method="triton-grid", uniforms=u), ref)
    monkeypatch.setenv("PIXELCNN_GRID_SPLIT", "1")
    with pytest.raises(ValueError, match="PIXELCNN_GRID_PREFETCH=1 takes the unsplit"):
        pixelcnn.sample(model, 2, (2, 3), method="triton-grid", uniforms=u)
    with pytest.raises(ValueError, match="prefetch=True takes one launch per phase, unsplit"):
        sampler_pixel_grid(None, None, None, 1.0, 0, 0, 0, split=1, prefetch=True)
    monkeypatch.setenv("PIXELCNN_GRID_PREFETCH", "2")
    with pytest.raises(ValueError, match="PIXELCNN_GRID_PREFETCH must be '0' .* or '1' .*"):
        prefetch_requested()


def test_grid_head_is_opt_in(monkeypatch):
    """PIXELCNN_GRID_HEAD=1 asks for the head's hidden activations in out's phase: a sampling
    step's phases skip their two (completion has none); anything but 0 or 1 is refused."""
    from pixelcnn.kernels.grid import head_requested
    monkeypatch.delenv("PIXELCNN_GRID_HEAD", raising=False)
    assert not head_requested()
    monkeypatch.setenv("PIXELCNN_GRID_HEAD", "1")
    assert head_requested()
    assert pixel_grid.phases(3, 1) == [1, 2, 3, 4, 5, 6]
    assert pixel_grid.phases(3, 1, head=True) == [1, 2, 3, 6]
    assert pixel_grid.phases(3, None, head=True) == pixel_grid.phases(3, None) == [1, 2, 3, 6]
    monkeypatch.setenv("PIXELCNN_GRID_HEAD", "yes")
    with pytest.raises(ValueError, match="PIXELCNN_GRID_HEAD must be '0' .* or '1' .*"):
        head_requested()


def test_grid_dependent_launch_is_opt_in(monkeypatch):
    """PIXELCNN_GRID_PDL=1 asks for programmatic dependent launches of the phases: on CUDA
    devices of compute capability >= 9 and on meta tensors (the compile check) standing for
    one (sm_80's launches are recorded without), never on the CPU (the interpreter:
    griddepcontrol is PTX); anything but 0 or 1 is refused."""
    from pixelcnn.kernels.grid import dependent_launch, meta_capability
    cpu, meta = torch.zeros(1), torch.zeros(1, device="meta")
    assert not dependent_launch(meta)
    monkeypatch.setenv("PIXELCNN_GRID_PDL", "1")
    assert dependent_launch(meta) and not dependent_launch(cpu)
    with meta_capability(8):
        assert not dependent_launch(meta)
        with meta_capability(9):
            assert dependent_launch(meta)
        assert not dependent_launch(meta)
    assert dependent_launch(meta)
    monkeypatch.setenv("PIXELCNN_GRID_PDL", "on")
    with pytest.raises(ValueError, match="PIXELCNN_GRID_PDL must be '0' .* or '1' .*, got 'on'"):
        dependent_launch(cpu)


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("fields,size", [(s[1], s[2]) for s in SAMPLER], ids=[s[0] for s in SAMPLER])
@torch.no_grad()
def test_sampler_steps_match_reference(fields, size, steps, monkeypatch):
    """Row and pixel kernels against the PyTorch steps in lockstep, cache contents and the
    sampled image compared after every step. The grid kernels run one launch per phase (the
    form Triton's interpreter can run); a 3-layer model gives them residuals between layers
    (5 layers for the look-ahead, whose input half starts at layer 3)."""
    row_kernel, pixel_kernel, pixel_writes, tiles = STEPS[steps]
    runs_on, why = ON_MODELS.get(steps, (lambda fields: True, ""))
    if not runs_on(fields):
        pytest.skip(why)
    for (module, name), fn in tiles.items():
        monkeypatch.setattr(module, name, fn)
    layers = {"program": 2, "grid-ahead": 5, "grid-groups-ahead": 5}.get(steps, 3)
    # the look-ahead: both halves
    model = make_model(dtype=torch.float32, layers=layers, **fields)      # and both slots twice
    C = model.config.in_channels
    H, W = size
    two_blocks = steps == "grid" and fields.get("embedding_dim") == 4    # the codes model
    B = 17 if two_blocks else 3                 # grid: two image blocks of 16
    y, h = conditioning(model, B)
    g = torch.Generator().manual_seed(5)
    u = torch.rand(B, C, H, W, generator=g)
    D = model.config.cond_channels
    cond_map = torch.randn(B, D, H, W, generator=g) if D else None
    caches = [GatedCache(pack(model), model.condition(y, h), cond_map).setup(B, H, W)
              for _ in range(2)]
    for name in WRITTEN:
        getattr(caches[1], name).fill_(float("nan"))
    xs = [torch.zeros(B, C, H, W, dtype=torch.long) for _ in range(2)]
    written = ["vbuf", "v_pre", "row_bias", "hbuf"]                  # by the row step

    def same(where, j=None, c=None):
        """The caches agree; with colour groups, in the columns sub-pixel c has made: groups
        <= c of gated and of the current pixel's inputs (groups > c are the previous pixel's
        there, which PyTorch's step recomputes and no product reads)."""
        assert torch.equal(xs[0], xs[1]), where
        settled = pixel_grid.columns(model.config.channels, C, c, "groups" in steps)[2]
        for name in written:
            got, want = getattr(caches[1], name).clone(), getattr(caches[0], name).clone()
            if name == "gated":
                got, want = got[..., :settled], want[..., :settled]
            if name == "hbuf" and j is not None:
                got[1:, :, j + model.config.kernel_size // 2, settled:] = 0
                want[1:, :, j + model.config.kernel_size // 2, settled:] = 0
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5,
                                       msg=lambda m: f"{where} {name}: {m}")
    for i in range(H):
        row_step(caches[0], xs[0], i)
        row_kernel(caches[1], xs[1], i)
        same(f"row {i}")
        for j in range(W):
            for c in range(C):
                pixel_step(caches[0], xs[0], u, 0.8, i, j, c)
                pixel_kernel(caches[1], xs[1], u, 0.8, i, j, c)
                written[4:] = pixel_writes                            # by the pixel step
                same(f"sub-pixel {(c, i, j)}", j, c)
    assert xs[0].float().std() > 0


PRIORS = [   # (id, config fields, size, start): float32, 2 layers, tiny shapes
    ("codes-512-e4-class", dict(in_channels=1, levels=512, embedding_dim=4, num_classes=3),
     (3, 4), 0),
    ("rgb-16-e2", dict(in_channels=3, levels=16, embedding_dim=2), (3, 3), 0),
    ("grey-8-map", dict(in_channels=1, levels=8, cond_channels=2), (3, 4), 0),
    ("rgb-32-map", dict(in_channels=3, levels=32, cond_channels=2), (3, 3), 0),
    ("rgb-32-e3-map-vector", dict(in_channels=3, levels=32, embedding_dim=3, cond_channels=2,
                                  cond_dim=4), (3, 3), 0),
    ("rgb-32-e3-map-completion", dict(in_channels=3, levels=32, embedding_dim=3,
                                      cond_channels=2), (3, 3), 4),
]


@pytest.mark.parametrize("method", ["triton", "triton-grid"])
@pytest.mark.parametrize("fields,size,start", [p[1:] for p in PRIORS], ids=[p[0] for p in PRIORS])
def test_priors_sample_as_cached(fields, size, start, method):
    """Issue 14: method='triton' and 'triton-grid' sample models with a learned embedding and
    / or a conditioning map (and complete images under a map) exactly as cached does: the
    same uniforms, the same codes - no mismatch on these tiny float32 models."""
    model = make_model(dtype=torch.float32, layers=2, **fields)
    cfg, n = model.config, 3
    y, h = conditioning(model, n)
    g = torch.Generator().manual_seed(3)
    if model.embedding is not None:     # randomize's std 1/sqrt(levels E) barely moves a logit
        with torch.no_grad():
            model.embedding.normal_(generator=g)
    kw = dict(y=y, h=h, uniforms=torch.rand(n, cfg.in_channels, *size, generator=g))
    if cfg.cond_channels:
        kw["cond_map"] = torch.randn(n, cfg.cond_channels, *size, generator=g)
    if start:
        kw.update(x0=torch.randint(0, cfg.levels, (n, cfg.in_channels, *size), generator=g),
                  start=start)
    ref = pixelcnn.sample(model, n, size, method="cached", **kw)
    assert len(ref.unique()) > 3
    got = pixelcnn.sample(model, n, size, method=method, **kw)
    assert int((got != ref).sum()) == 0


@torch.no_grad()
def test_graph_runner_refreshes_map_and_table():
    """method='triton''s CUDA-graph runner copies every call's inputs into its static buffers:
    the conditioning map and the embedding table too. Its steps run eagerly here (no CUDA
    graphs on a CPU): a second call with another map and another table draws cached's
    images of that call, not the first's; in two sub-batches, each with its images' map."""
    from pixelcnn.sampling.common import prepare
    from pixelcnn.sampling.triton import _GraphRunner, run_segment
    model = make_model(dtype=torch.float32, layers=2, in_channels=1, levels=8, embedding_dim=3,
                       cond_channels=2)
    n, size = 2, (3, 4)
    g = torch.Generator().manual_seed(9)
    u = torch.rand(n, 1, *size, generator=g)
    runner, drawn = None, []
    for call in range(2):
        model.embedding.normal_(generator=g)                 # new weights: re-packed, copied
        cond_map = torch.randn(n, 2, *size, generator=g)
        job = prepare(model, n, size, uniforms=u, cond_map=cond_map)
        runner = runner or _GraphRunner(job, lambda cache, x: (sampler_row, sampler_pixel), 2)
        runner.load(job)
        for segment in runner.segments:
            run_segment(runner.lanes, segment)
        ref = pixelcnn.sample(model, n, size, method="cached", uniforms=u, cond_map=cond_map)
        assert torch.equal(runner.job.x, ref), call
        drawn.append(ref)
    assert not torch.equal(*drawn)


def test_no_gpu_no_interpreter_clear_error():
    """Without a GPU and without TRITON_INTERPRET: a clear error, and auto picks cached."""
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code = (
        "import torch, pixelcnn\n"
        "from pixelcnn.sampling import available_methods\n"
        "m = pixelcnn.GatedPixelCNN(3, 256, 6, 2, 3)\n"
        "assert available_methods(m)[0] in ('cached', 'native'), available_methods(m)\n"
        "pixelcnn.sample(m, 1, (2, 2), method='auto')\n"
        "try:\n"
        "    pixelcnn.sample(m, 1, (2, 2), method='triton')\n"
        "except RuntimeError as e:\n"
        "    assert 'TRITON_INTERPRET=1' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('no error')\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "TRITON_INTERPRET"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
