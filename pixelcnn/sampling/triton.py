"""The incremental sampler on fused Triton kernels: one launch per row step (all layers) and
one per sub-pixel (all layers, head, softmax, sample), on the same caches as `cached`.

On a GPU the loop is captured as CUDA graphs (one per image row, so that progress can be
shown) the first time a (model, shape, start, temperature) is sampled, and replayed on later
calls with the new weights, conditioning, uniforms and x0 copied into the static buffers. On a
CPU the kernels run only in Triton's interpreter (TRITON_INTERPRET=1), eagerly.
"""
from __future__ import annotations

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


def check(model):
    """An explicit method='triton' also runs on the CPU under Triton's interpreter (tests)."""
    why = gated_only(model)
    if why:
        raise ValueError(f"method='triton' {why}")
    check_triton("method='triton'", model.device, model.dtype, "method='cached' (or 'auto')")


class _GraphRunner:
    """Static buffers and the per-row CUDA graphs of one sampling configuration."""

    def __init__(self, job: Job, sampler_row, sampler_pixel):
        n, C, H, W = job.shape
        self.job = Job(None, job.x.clone(), job.uniforms.clone(), None, None,  # no model:
                       job.temperature, job.start)                  # freed with it (_RUNNERS)
        static = packed(job.model).apply(torch.clone)
        self.cache = GatedCache(static, None).setup(n, H, W)
        self.steps = (sampler_row, sampler_pixel)
        self.graphs = None

    def load(self, job: Job):
        """Copy this call's inputs into the static buffers."""
        model, cache = job.model, self.cache
        for name, t in packed(model).tensors().items():
            getattr(cache.w, name).copy_(t)
        bias_v, bias_h = layer_biases(cache.w, model.condition(job.y, job.h), job.shape[0])
        cache.bias_v.copy_(bias_v)
        cache.bias_h.copy_(bias_h)
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
def sample_triton(job: Job, progress: bool = False) -> torch.Tensor:
    check_device, launch_flags, sampler_row, sampler_pixel = _kernels()
    model = job.model
    launch_flags(model.dtype)                  # float32 / bf16 only: a clear error otherwise
    check_device(job.x)
    n, C, H, W = job.shape
    with progress_bar(job, progress) as bar:
        if not job.x.is_cuda:                  # Triton's interpreter on the CPU: eagerly
            cache = GatedCache(packed(model), model.condition(job.y, job.h)).setup(n, H, W)
            for i in range(H):
                sample_rows(job, cache, [i], sampler_row, sampler_pixel)
                bar.update(C * max(0, min(W, (i + 1) * W - job.start)))
            return job.x
        key = (job.shape, job.start, job.temperature, model.dtype, job.x.device)
        runners = _RUNNERS.setdefault(model, {})
        if key not in runners:
            runners[key] = _GraphRunner(job, sampler_row, sampler_pixel)
        runner = runners[key]
        runner.load(job)
        return runner.run(bar)


METHOD = Method("triton", unavailable, sample_triton, check)
