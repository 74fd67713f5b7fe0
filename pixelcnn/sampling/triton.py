"""The incremental sampler on fused Triton kernels, on the same caches as `cached`, in two
registered methods:

- `triton`: one program per image runs a row step (all layers), one program per 16 images a
  sub-pixel step (all layers, head, softmax, sample): kernels/sampler_row.py,
  sampler_pixel.py. Measured correct on an H100; flat in the batch (a few SMs do each step).
- `triton-grid`: the steps spread over the whole GPU (kernels/sampler_row_gemm.py,
  sampler_pixel_grid.py): the row step as batched GEMMs, the sub-pixel step as phases of
  images x columns tiles, one launch per phase (PIXELCNN_GRID_PDL=1: as programmatic
  dependent launches, compute capability >= 9; PIXELCNN_GRID_PERSISTENT=1: one persistent
  cooperative launch with grid barriers per step, bf16 only, where Triton can launch one).
  `auto` picks it first (on the H200 2.7x `triton` at batch 1, 2.3x at 256: see
  pixelcnn/sampling/__init__.py); `triton` stays selectable.

Both sample every GatedPixelCNN `cached` does: images (the scalar embedding, packed as a
[C, levels, 1] table) and priors over codes (a learned embedding table, a conditioning map);
the kernels read rows of the packed table, the row kernels add the map's vertical biases, and
the map's per-row biases are computed by torch in the row step (kernels/common.row_maps), as
in pixelcnn/cache.py.

On a GPU the loop is captured as CUDA graphs (one per image row, so that progress can be
shown) the first time a (model, shape, start, temperature) is sampled, and replayed on later
calls with the new weights, conditioning (the map included), uniforms and x0 copied into the
static buffers. On a CPU the kernels run only in Triton's interpreter (TRITON_INTERPRET=1),
eagerly.
"""
from __future__ import annotations

import functools
import weakref

import torch

from ..kernels import check_triton
from ..packing import layer_biases, packed
from ..cache import GatedCache
from .cached import sample_rows
from .common import Job, Method, gated_only, progress_bar

# The CUDA-graph runners, per model and sampling configuration: {model: {key: _GraphRunner}}.
# Kept while the model lives (weak keys; a runner holds no reference to its model), freed
# with it: each holds its graphs and static buffers (about 0.5 GB at batch 256, cifar).
_RUNNERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _kernels():
    from ..kernels.common import check_device, launch_flags
    from ..kernels.sampler_pixel import sampler_pixel
    from ..kernels.sampler_row import sampler_row
    return check_device, launch_flags, sampler_row, sampler_pixel


def grid_launch(cache, x, persistent: bool = True) -> dict:
    """triton-grid's pixel-step launch for this cache (sampler_pixel_grid's keywords), chosen
    once from the environment: one launch per phase (as programmatic dependent launches
    where PIXELCNN_GRID_PDL=1 asks for them and the device has them; each layer's products
    over twice the programs where PIXELCNN_GRID_SPLIT=1 asks for it, the look-ahead too where
    PIXELCNN_GRID_AHEAD=1 does, each layer's weights loaded first where
    PIXELCNN_GRID_PREFETCH=1 does), or, where `persistent` allows, persistent where
    PIXELCNN_GRID_PERSISTENT=1 asks for it (bf16 on a CUDA device whose Triton launches
    cooperative grids, one program per SM at most); in every form, only the current
    sub-pixel's colour group of columns where PIXELCNN_GRID_GROUPS=1 asks for it, and the
    head's hidden activations in the out phase where PIXELCNN_GRID_HEAD=1 does.
    bench.lockstep takes persistent=False."""
    from ..kernels.grid import (ahead_requested, cooperative_launch, dependent_launch,
                                groups_requested, head_requested, persistent_requested,
                                prefetch_requested, sm_count, split_requested)
    from ..kernels.sampler_pixel_grid import widest
    programs = 0
    if (persistent and persistent_requested() and x.is_cuda
            and cache.w.wv.dtype == torch.bfloat16 and cooperative_launch()):
        programs = min(sm_count(x.device), widest(cache))
    split = 0 if programs else 2 if ahead_requested() else int(split_requested())
    prefetch = prefetch_requested()
    if prefetch and (programs or split):
        raise ValueError("PIXELCNN_GRID_PREFETCH=1 takes the unsplit launch per phase: unset "
                         "PIXELCNN_GRID_PERSISTENT, PIXELCNN_GRID_SPLIT and PIXELCNN_GRID_AHEAD")
    return dict(programs=programs, pdl=not programs and dependent_launch(x), split=split,
                prefetch=prefetch, groups=groups_requested(), head=head_requested())


def _grid_steps(cache, x):
    """triton-grid's (row step, pixel step) for this cache, launched as grid_launch says."""
    from ..kernels.sampler_pixel_grid import sampler_pixel_grid
    from ..kernels.sampler_row_gemm import sampler_row_gemm
    return sampler_row_gemm, functools.partial(sampler_pixel_grid, **grid_launch(cache, x))


def unavailable(model) -> str:
    """'' for a float32 or bf16 GatedPixelCNN on a CUDA GPU with Triton installed."""
    why = gated_only(model)
    if why:
        return why
    if model.device.type != "cuda":
        return ("CUDA only (on a CPU, Triton runs only in its interpreter, TRITON_INTERPRET=1, "
                "far too slow for use)")
    if model.dtype not in (torch.float32, torch.bfloat16):
        return f"float32 or bf16 models only, not {model.dtype}"
    try:
        _kernels()
    except ImportError as e:
        return f"Triton does not import ({e}): pip install triton"
    return ""


def check(model, name="triton"):
    """An explicit method='triton' (or 'triton-grid') also runs on the CPU under Triton's
    interpreter (tests)."""
    why = gated_only(model)
    if why:
        raise ValueError(f"method={name!r} {why}")
    check_triton(f"method={name!r}", model.device, model.dtype, "method='cached' (or 'auto')")


class _GraphRunner:
    """Static buffers and the per-row CUDA graphs of one sampling configuration."""

    def __init__(self, job: Job, steps):
        """steps(cache, x) -> (row step, pixel step) on this runner's static buffers."""
        n, C, H, W = job.shape
        self.job = Job(None, job.x.clone(), job.uniforms.clone(), None, None,  # no model:
                       job.temperature, job.start)                  # freed with it (_RUNNERS)
        static = packed(job.model).apply(torch.clone)
        cond_map = None if job.cond_map is None else job.cond_map.clone()
        self.cache = GatedCache(static, None, cond_map).setup(n, H, W)
        self.steps = steps(self.cache, self.job.x)
        self.graphs = None

    def load(self, job: Job):
        """Copy this call's inputs into the static buffers."""
        model, cache = job.model, self.cache
        for name, t in packed(model).tensors().items():
            getattr(cache.w, name).copy_(t)
        bias_v, bias_h = layer_biases(cache.w, model.condition(job.y, job.h), job.shape[0])
        cache.bias_v.copy_(bias_v)
        cache.bias_h.copy_(bias_h)
        if cache.cond_map is not None:
            cache.cond_map.copy_(job.cond_map)
        self.job.x.copy_(job.x)
        self.job.uniforms.copy_(job.uniforms)
        cache.reset()

    def run(self, bar):
        H = self.job.shape[2]
        if self.graphs is None:        # first call: run eagerly (compiles), then capture
            for i in range(H):
                sample_rows(self.job, self.cache, [i], *self.steps)
                bar.update(self._count(i))
            result = self.job.x.clone()
            self.graphs = []
            for i in range(H):
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    sample_rows(self.job, self.cache, [i], *self.steps)
                self.graphs.append(g)
            return result
        for i, g in enumerate(self.graphs):
            g.replay()
            if not bar.disable:
                torch.cuda.synchronize()
                bar.update(self._count(i))
        return self.job.x.clone()

    def _count(self, i):
        _, C, _, W = self.job.shape
        return C * max(0, min(W, (i + 1) * W - self.job.start))


@torch.no_grad()
def sample_triton(job: Job, progress: bool = False, grid: bool = False) -> torch.Tensor:
    """Draw job's images on the fused kernels: today's (grid=False) or the grid-wide steps."""
    check_device, launch_flags, sampler_row, sampler_pixel = _kernels()
    steps = _grid_steps if grid else lambda cache, x: (sampler_row, sampler_pixel)
    model = job.model
    launch_flags(model.dtype)                  # float32 / bf16 only: a clear error otherwise
    check_device(job.x)
    n, C, H, W = job.shape
    with progress_bar(job, progress) as bar:
        if not job.x.is_cuda:                  # Triton's interpreter on the CPU: eagerly
            cache = GatedCache(packed(model), model.condition(job.y, job.h),
                               job.cond_map).setup(n, H, W)
            for i in range(H):
                sample_rows(job, cache, [i], *steps(cache, job.x))
                bar.update(C * max(0, min(W, (i + 1) * W - job.start)))
            return job.x
        key = (grid, job.shape, job.start, job.temperature, model.dtype, job.x.device)
        runners = _RUNNERS.setdefault(model, {})
        if key not in runners:
            runners[key] = _GraphRunner(job, steps)
        runner = runners[key]
        runner.load(job)
        return runner.run(bar)


METHOD = Method("triton", unavailable, sample_triton, check)
GRID_METHOD = Method("triton-grid", unavailable, functools.partial(sample_triton, grid=True),
                     functools.partial(check, name="triton-grid"))
