"""The sampler registry: one table that `sample`, `available_methods`, the CLIs and the
benchmark read; state kept across calls lives where it is owned and dies with its model."""
import contextlib
import gc
import weakref

import pytest
import torch

import pixelcnn
from pixelcnn import packing
from pixelcnn.sampling import (FASTEST_FIRST, METHODS, REGISTRY, available_methods, triton,
                               why_unavailable)
from helpers import make_model
from pixelcnn.cache import pixel_step, row_step
from pixelcnn.sampling.common import prepare, progress_bar


def tiny(**kw):
    return pixelcnn.build(pixelcnn.preset("tiny", in_channels=1, levels=4, **kw)).eval()


def test_one_table():
    assert METHODS == ("naive", "cached", "triton", "native", "triton-grid") == tuple(REGISTRY)
    assert set(FASTEST_FIRST) == set(METHODS)
    model = tiny()
    listed = available_methods(model)
    assert listed == [m for m in FASTEST_FIRST if not why_unavailable(model, m)]
    assert listed[-2:] == ["cached", "naive"]
    for method in ("triton", "triton-grid"):                        # this machine: no GPU
        assert "CUDA only" in why_unavailable(model, method)
    assert FASTEST_FIRST.index("triton-grid") < FASTEST_FIRST.index("triton")   # as measured
    masked = pixelcnn.build(pixelcnn.preset("tiny", model="pixelcnn", in_channels=1, levels=4))
    assert available_methods(masked) == ["naive"]
    assert "GatedPixelCNN models only" in why_unavailable(masked, "cached")


def test_packed_weights_are_the_models_and_follow_its_parameters():
    model = tiny()
    assert model.packed_weights is None                             # declared in __init__
    first = packing.packed(model)
    assert packing.packed(model) is first                           # packed once
    with torch.no_grad():
        model.head.logits.bias.add_(1.0)
    again = packing.packed(model)
    assert again is not first and torch.equal(again.b2, first.b2 + 1.0)


def test_graph_runners_are_freed_with_their_model():
    """A runner holds its static buffers but not its model: when the model goes, so do they."""
    model = tiny()
    job = prepare(model, 2, (3, 3))
    runner = triton._GraphRunner(job, lambda cache, x: (None, None))   # no capture on a CPU
    assert runner.job.model is None
    triton._RUNNERS[model] = {"key": runner}
    ref = weakref.ref(model)
    del model, job
    gc.collect()
    assert ref() is None and len(triton._RUNNERS) == 0


@pytest.mark.parametrize("method", METHODS)
def test_every_entry_checks_requests(method):
    """An explicit request for a method that cannot run is refused before any work."""
    masked = pixelcnn.build(pixelcnn.preset("tiny", model="pixelcnn", in_channels=1, levels=4))
    if method == "naive":
        assert pixelcnn.sample(masked, 1, (2, 2), method=method).shape == (1, 1, 2, 2)
    else:
        with pytest.raises(ValueError, match="GatedPixelCNN"):
            pixelcnn.sample(masked, 1, (2, 2), method=method)


class StandInGraphs:
    """CUDA graphs on the CPU: inside `capture`, the steps made by `step` are recorded instead
    of run (as a CUDA stream's launches are), and `replay` runs them again with the arguments
    they were captured with, reading whatever the static buffers hold by then."""

    def __init__(self):
        self.capturing, self.replays = None, 0
        stand_in = self

        class Graph:
            def __init__(self):
                self.calls = []

            def replay(self):
                stand_in.replays += 1
                for fn, args in self.calls:
                    fn(*args)
        self.Graph = Graph

    @contextlib.contextmanager
    def capture(self, graph):
        self.capturing = graph
        try:
            yield
        finally:
            self.capturing = None

    def stream(self):
        """A stand-in stream: it records the streams it was made to wait for."""
        class Stream:
            def __init__(self):
                self.waited = []

            def wait_stream(self, other):
                self.waited.append(other)
        return Stream

    def step(self, fn):
        def run(*args):
            if self.capturing is not None:
                self.capturing.calls.append((fn, args))
            else:
                fn(*args)
        return run


def test_sub_batches_are_refused_bad_values_and_persistent_grids(monkeypatch):
    """PIXELCNN_GRID_SUB_BATCHES must be an integer >= 1, and above 1 refuses the persistent
    kernel (grids side by side that could wait on each other's SMs), before any work."""
    model = tiny()
    monkeypatch.setenv("PIXELCNN_GRID_SUB_BATCHES", "0")
    with pytest.raises(ValueError, match="PIXELCNN_GRID_SUB_BATCHES must be an integer >= 1, "
                                         "got '0'"):
        pixelcnn.sample(model, 2, (2, 2), method="triton-grid")
    monkeypatch.setenv("PIXELCNN_GRID_SUB_BATCHES", "2")
    monkeypatch.setenv("PIXELCNN_GRID_PERSISTENT", "1")
    with pytest.raises(ValueError, match="unset PIXELCNN_GRID_PERSISTENT"):
        pixelcnn.sample(model, 2, (2, 2), method="triton-grid")


@pytest.mark.parametrize("sub_batches,n", [(1, 4), (3, 4), (3, 1)])
@torch.no_grad()
def test_sub_batches_ask_for_the_sub_batch_tiles(monkeypatch, sub_batches, n):
    """triton-grid's steps for each of k > 1 sub-batches are asked for the sub-batch tiles
    (sub_batch=True: fewer, larger tiles, which leave SMs to the others), one batch's are not
    (nor one image's, in one sub-batch whatever k); with the PyTorch steps standing in for the
    kernels, the images are cached's."""
    asked = []

    def steps(cache, x, sub_batch=False):
        asked.append((cache.batch, sub_batch))
        return row_step, pixel_step
    monkeypatch.setattr(triton, "_grid_steps", steps)
    monkeypatch.setenv("PIXELCNN_GRID_SUB_BATCHES", str(sub_batches))
    model = tiny()
    u = torch.rand(n, 1, 2, 3, generator=torch.Generator().manual_seed(0))
    got = pixelcnn.sample(model, n, (2, 3), method="triton-grid", uniforms=u)
    assert torch.equal(got, pixelcnn.sample(model, n, (2, 3), method="cached", uniforms=u))
    assert asked == ([(n, False)] if sub_batches == 1 or n == 1 else
                     [(2, True), (1, True), (1, True)])


@pytest.mark.parametrize("height,width,lanes", [(4, 3, 1), (4, 3, 2), (3, 5, 3), (2, 1, 2)])
def test_schedule_staggers_the_sub_batches(height, width, lanes):
    """Each sub-batch meets every pixel of the image once, in order, the row step with a row's
    first span; sub-batch s runs s W / k pixels behind the first (one sub-batch: a segment a
    row); the progress count reaches every sub-pixel."""
    segments = triton.schedule(height, width, lanes)
    assert len(segments) == height + (lanes > 1 and width // lanes > 0)
    for s in range(lanes):
        flat = [i * width + j for seg in segments for i, cols in seg[s] for j in cols]
        assert flat == list(range(height * width))
        first = next(g for g, seg in enumerate(segments) if seg[s])
        lag = s * width // lanes
        assert segments[first][s][0] == (0, range(0, width - lag if first == 0 else width))
    assert triton.done((1, 3, height, width), 2, lanes, len(segments) - 1) == \
        3 * (height * width - 2)


@pytest.mark.parametrize("sub_batches", [1, 2])
@torch.no_grad()
def test_graph_runner_refreshes_static_buffers_on_every_call(monkeypatch, sub_batches):
    """The triton runner's logic with the PyTorch steps and a stand-in for capture and replay:
    the first call runs eagerly and captures; later calls replay, and each draws what cached
    draws from that call's weights, uniforms, y, h and x0 (float64: exactly). With two
    sub-batches (PIXELCNN_GRID_SUB_BATCHES=2) each graph forks a stream per sub-batch from the
    capturing stream and joins them back; each sub-batch's conditioning is its images'."""
    graphs = StandInGraphs()
    monkeypatch.setattr(torch.cuda, "CUDAGraph", graphs.Graph)
    monkeypatch.setattr(torch.cuda, "graph", graphs.capture)
    Stream = graphs.stream()
    main = Stream()
    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: main)
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    model = make_model(dtype=torch.float64, num_classes=3, cond_dim=2)
    n, size, start = 3, (4, 3), 5
    runner = None
    for call in range(3):
        g = torch.Generator().manual_seed(call)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        kw = dict(y=torch.randint(0, 3, (n,), generator=g),
                  h=torch.randn(n, 2, generator=g, dtype=torch.float64),
                  uniforms=torch.rand(n, 3, *size, generator=g, dtype=torch.float64),
                  temperature=0.9, start=start,
                  x0=torch.randint(0, 256, (n, 3, *size), generator=g))
        job = prepare(model, n, size, **kw)
        if runner is None:
            runner = triton._GraphRunner(job, lambda cache, x: (graphs.step(row_step),
                                                                graphs.step(pixel_step)),
                                         sub_batches)
        runner.load(job)
        with progress_bar(job, False) as bar:
            out = runner.run(bar)
        assert torch.equal(out, pixelcnn.sample(model, n, size, method="cached", **kw)), call
        segments = size[0] + (sub_batches > 1)           # the second lags by half a row
        assert graphs.replays == segments * call          # captured once, then replayed
    assert [lane.part for lane in runner.lanes] == \
        ([slice(0, 3)] if sub_batches == 1 else [slice(0, 2), slice(2, 3)])
    if sub_batches > 1:                                   # forked and joined in every graph
        assert main.waited == runner.streams * segments
        assert all(stream.waited == [main] * segments for stream in runner.streams)
