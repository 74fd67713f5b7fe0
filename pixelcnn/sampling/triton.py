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

PIXELCNN_GRID_SUB_BATCHES=k (triton-grid, opt-in, not yet timed) splits the batch into k
sub-batches, each with its own caches, lagging W / k pixels behind one another (`schedule`),
each captured on a stream of its own in every graph: a sub-batch's row step, a wide GEMM, then
runs beside the others' pixel steps, which are latency-bound and fill a third of the SMs at
most (bench.roofline.sub_batches); each takes fewer, larger tiles than a batch of its size
alone, leaving SMs to the others. Images are independent, so they are the same images.
"""
from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass, replace

import torch

from ..kernels import check_triton
from ..packing import layer_biases, packed
from ..cache import GatedCache
from .cached import sample_span
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


def _grid_steps(cache, x, sub_batch: bool = False):
    """triton-grid's (row step, pixel step) for this cache, launched as grid_launch says;
    sub_batch: the cache's images are one of several sub-batches side by side, whose steps
    take fewer, larger tiles (kernels/sampler_pixel_grid.tiles, sampler_row_gemm.tiles)."""
    from ..kernels.sampler_pixel_grid import sampler_pixel_grid
    from ..kernels.sampler_row_gemm import sampler_row_gemm
    return (functools.partial(sampler_row_gemm, sub_batch=sub_batch),
            functools.partial(sampler_pixel_grid, **grid_launch(cache, x), sub_batch=sub_batch))


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


@dataclass
class _Lane:
    """One sub-batch of a sampling loop: its images (`part`), its views of the job, its
    cache and its (row step, pixel step)."""
    part: slice
    job: Job
    cache: GatedCache
    steps: tuple


def _lanes(job: Job, w, k: int, steps, cond) -> list:
    """job's images in k sub-batches (as even as they go): each a view of job, a GatedCache
    on the packed weights w and conditioning cond(part) (per image, or None), its steps."""
    n, C, H, W = job.shape
    lanes = []
    for part in torch.arange(n).tensor_split(min(k, n)):
        part = slice(int(part[0]), int(part[-1]) + 1)
        sub = replace(job, x=job.x[part], uniforms=job.uniforms[part],
                      cond_map=None if job.cond_map is None else job.cond_map[part])
        cache = GatedCache(w, cond(part), sub.cond_map).setup(part.stop - part.start, H, W)
        lanes.append(_Lane(part, sub, cache, steps(cache, sub.x)))
    return lanes


def condition(model, job: Job, part: slice):
    """model's per-layer conditioning of job's images `part` (their y and h), or None."""
    return model.condition(*(None if t is None else t[part] for t in (job.y, job.h)))


def lags(width: int, lanes: int) -> list:
    """Pixels each of `lanes` sub-batches runs behind the first: s W / lanes for lane s, so
    that its row steps fall among the others' pixel steps."""
    return [s * width // lanes for s in range(lanes)]


def schedule(height: int, width: int, lanes: int) -> list:
    """The staggered loop of `lanes` sub-batches: segments (one CUDA graph each), in each a
    list per lane of (row, columns) spans, each lane its `lags` behind the first; one lane,
    one segment per row. Segment g holds a lane's flat pixel positions [g W - lag,
    (g + 1) W - lag) of the image."""
    behind = lags(width, lanes)
    total = height * width
    segments = []
    for g in range(height + (1 if behind[-1] else 0)):
        segment = []
        for lag in behind:
            spans, pos, end = [], max(0, g * width - lag), min(total, (g + 1) * width - lag)
            while pos < end:
                i, j = divmod(pos, width)
                stop = min(end, (i + 1) * width)
                spans.append((i, range(j, stop - i * width)))
                pos = stop
            segment.append(spans)
        segments.append(segment)
    return segments


def run_segment(lanes: list, segment: list):
    """Each lane's spans of a segment, in order (eagerly, or as captured)."""
    for lane, spans in zip(lanes, segment):
        for i, columns in spans:
            sample_span(lane.job, lane.cache, i, columns, *lane.steps)


def done(shape, start: int, lanes: int, g: int) -> int:
    """Sub-pixels every lane has sampled after segment g (the progress bar's count)."""
    _, C, H, W = shape
    return C * max(0, min(H * W, (g + 1) * W - lags(W, lanes)[-1]) - start)


def sample_segments(lanes: list, segments: list, job: Job, bar):
    """Every segment eagerly, in order, the progress bar moved after each."""
    count = functools.partial(done, job.shape, job.start, len(lanes))
    for g, segment in enumerate(segments):
        run_segment(lanes, segment)
        bar.update(count(g) - count(g - 1))


class _GraphRunner:
    """Static buffers and the CUDA graphs of one sampling configuration: one graph per
    segment of the loop (`schedule`: a row, with one sub-batch), its sub-batches' spans
    captured on a stream each, forked from and joined to the capturing stream."""

    def __init__(self, job: Job, steps, sub_batches: int = 1):
        """steps(cache, x) -> (row step, pixel step) on this runner's static buffers."""
        n, C, H, W = job.shape
        self.job = Job(None, job.x.clone(), job.uniforms.clone(), None, None,  # no model:
                       job.temperature, job.start,                  # freed with it (_RUNNERS)
                       None if job.cond_map is None else job.cond_map.clone())
        self.lanes = _lanes(self.job, packed(job.model).apply(torch.clone), sub_batches, steps,
                            lambda part: None)
        self.segments = schedule(H, W, len(self.lanes))
        self.streams = None
        self.graphs = None

    def load(self, job: Job):
        """Copy this call's inputs into the static buffers."""
        model, w = job.model, self.lanes[0].cache.w                 # the lanes share w
        for name, t in packed(model).tensors().items():
            getattr(w, name).copy_(t)
        for lane in self.lanes:
            bias_v, bias_h = layer_biases(w, condition(model, job, lane.part),
                                          lane.part.stop - lane.part.start)
            lane.cache.bias_v.copy_(bias_v)
            lane.cache.bias_h.copy_(bias_h)
            lane.cache.reset()
        if self.job.cond_map is not None:
            self.job.cond_map.copy_(job.cond_map)
        self.job.x.copy_(job.x)
        self.job.uniforms.copy_(job.uniforms)

    def run(self, bar):
        if self.graphs is None:        # first call: run eagerly (compiles), then capture
            sample_segments(self.lanes, self.segments, self.job, bar)
            result = self.job.x.clone()
            if len(self.lanes) > 1:    # a stream a sub-batch, made before any capture
                self.streams = [torch.cuda.Stream() for _ in self.lanes]
            self.graphs = [self.capture(segment) for segment in self.segments]
            return result
        count = functools.partial(done, self.job.shape, self.job.start, len(self.lanes))
        for g, graph in enumerate(self.graphs):
            graph.replay()
            if not bar.disable:
                torch.cuda.synchronize()
                bar.update(count(g) - count(g - 1))
        return self.job.x.clone()

    def capture(self, segment: list):
        """One segment as a CUDA graph; with sub-batches each lane's spans on a stream of its
        own (forked from the capturing stream, joined back), so that they may run side by
        side on replay."""
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            if len(self.lanes) == 1:
                run_segment(self.lanes, segment)
            else:
                main = torch.cuda.current_stream()
                for lane, stream, spans in zip(self.lanes, self.streams, segment):
                    stream.wait_stream(main)
                    with torch.cuda.stream(stream):
                        run_segment([lane], [spans])
                for stream in self.streams:
                    main.wait_stream(stream)
        return graph


@torch.no_grad()
def sample_triton(job: Job, progress: bool = False, grid: bool = False) -> torch.Tensor:
    """Draw job's images on the fused kernels: today's (grid=False) or the grid-wide steps
    (in PIXELCNN_GRID_SUB_BATCHES=k sub-batches side by side: `schedule`)."""
    from ..kernels.grid import persistent_requested, sub_batches_requested
    check_device, launch_flags, sampler_row, sampler_pixel = _kernels()
    k = sub_batches_requested() if grid else 1
    steps = functools.partial(_grid_steps, sub_batch=min(k, job.shape[0]) > 1) if grid else \
        lambda cache, x: (sampler_row, sampler_pixel)
    if k > 1 and persistent_requested():
        raise ValueError("PIXELCNN_GRID_SUB_BATCHES > 1 takes triton-grid's launches per "
                         "phase: unset PIXELCNN_GRID_PERSISTENT (persistent grids side by "
                         "side could each wait for SMs the other holds)")
    model = job.model
    launch_flags(model.dtype)                  # float32 / bf16 only: a clear error otherwise
    check_device(job.x)
    n, C, H, W = job.shape
    with progress_bar(job, progress) as bar:
        if not job.x.is_cuda:                  # Triton's interpreter on the CPU: eagerly
            lanes = _lanes(job, packed(model), k, steps,
                           functools.partial(condition, model, job))
            sample_segments(lanes, schedule(H, W, len(lanes)), job, bar)
            return job.x
        key = (grid, job.shape, job.start, job.temperature, model.dtype, job.x.device, k)
        runners = _RUNNERS.setdefault(model, {})
        if key not in runners:
            runners[key] = _GraphRunner(job, steps, k)
        runner = runners[key]
        runner.load(job)
        return runner.run(bar)


METHOD = Method("triton", unavailable, sample_triton, check)
GRID_METHOD = Method("triton-grid", unavailable, functools.partial(sample_triton, grid=True),
                     functools.partial(check, name="triton-grid"))
