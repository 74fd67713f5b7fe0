"""What every sampler shares: the checked request (Job), the uniforms, the progress bar and
full float32 precision."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..cache import sampling_dtype
from ..models import GatedPixelCNN, PixelCNNAutoencoder, PixelCNNBase


@dataclass
class Job:
    """A checked sampling request. x holds the image being written (x0's pixels before
    `start`, zeros after); uniforms has one value per sub-pixel, in the sampling dtype."""
    model: torch.nn.Module
    x: torch.Tensor                    # long [n, C, H, W], on the model's device
    uniforms: torch.Tensor             # [n, C, H, W], float32 (float64 for float64 models)
    y: Optional[torch.Tensor]
    h: Optional[torch.Tensor]
    temperature: float
    start: int
    cond_map: Optional[torch.Tensor] = None    # [n, D, H, W] in the model's dtype

    @property
    def shape(self):
        return tuple(self.x.shape)


@dataclass(frozen=True)
class Method:
    """One sampler of the registry (pixelcnn.sampling.REGISTRY).

    unavailable(model) -> why it cannot sample `model` where the model lives, '' when it can:
        what "auto", `available_methods` and the benchmark choose from.
    check(model): raises the error an explicit request for it gets (by default a ValueError
        with the reason; a method may accept more than `unavailable` offers, as triton does
        on the CPU under Triton's interpreter).
    sample(job, progress) -> the images, long [n, C, H, W].
    """
    name: str
    unavailable: Callable
    sample: Callable
    check: Optional[Callable] = None

    def require(self, model):
        if self.check is not None:
            return self.check(model)
        why = self.unavailable(model)
        if why:
            raise ValueError(f"method={self.name!r} cannot sample this model: {why}")


def gated_only(model) -> str:
    """'' for a GatedPixelCNN, else why an incremental sampler cannot sample it."""
    return "" if isinstance(model, GatedPixelCNN) else \
        f"samples GatedPixelCNN models only; a {type(model).__name__} samples with method='naive'"



@contextlib.contextmanager
def full_precision():
    """TF32 off for float32 cuDNN convolutions and CUDA matrix products inside the block; the
    previous settings come back on exit, also on an exception.

    On Ampere and later GPUs PyTorch runs float32 cuDNN convolutions in TF32 (10-bit
    mantissas) by default, so the naive reference drew other images than the exact float32
    samplers: on an H100, 91.7% of a trained model's samples matched `cached`'s, 100% with
    TF32 off. `sample` runs every method inside this; a benchmark timing the reference should
    too. bf16 and float64 are unaffected. Where torch has the per-backend `fp32_precision`
    settings (>= 2.9) they are used: the legacy `allow_tf32` flags raise when read or set over
    the new ones, and do not restore a setting the new API made.
    """
    cuda, cudnn = torch.backends.cuda, torch.backends.cudnn
    if hasattr(cuda.matmul, "fp32_precision"):
        flags = [(cudnn.conv, "fp32_precision", "ieee"), (cuda.matmul, "fp32_precision", "ieee")]
    else:
        flags = [(cudnn, "allow_tf32", False), (cuda.matmul, "allow_tf32", False)]
    saved = [getattr(owner, name) for owner, name, _ in flags]
    try:
        for owner, name, value in flags:
            setattr(owner, name, value)
        yield
    finally:
        for (owner, name, _), value in zip(flags, saved):
            setattr(owner, name, value)


def check_model(model):
    """A ValueError unless `model` is one of this package's models."""
    if not isinstance(model, PixelCNNBase):
        raise ValueError("model must be a pixelcnn model (GatedPixelCNN, PixelCNN or "
                         f"PixelCNNAutoencoder), got {type(model).__name__}")


def _size(size):
    if isinstance(size, int):
        size = (size, size)
    try:
        height, width = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (H, W) or an int, got {size!r}") from None
    if height < 1 or width < 1 or (height, width) != tuple(size):
        raise ValueError(f"size must be two positive integers (H, W), got {size!r}")
    return height, width


def prepare(model, n, size, y=None, h=None, uniforms=None, generator=None, temperature=1.0,
            x0=None, start=0, cond_map=None) -> Job:
    """Check every argument of `sample` against the model, the most fundamental first, and
    build the Job."""
    check_model(model)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (the number of images) must be an integer >= 1, got {n!r}")
    height, width = _size(size)
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    if generator is not None and not (isinstance(generator, torch.Generator)
                                      and generator.device.type == "cpu"):
        got = f"one on {generator.device}" if isinstance(generator, torch.Generator) \
            else type(generator).__name__
        raise ValueError("generator must be a CPU torch.Generator (the uniforms are drawn on "
                         f"the CPU, so that every device samples the same images), got {got}")
    if isinstance(model, PixelCNNAutoencoder):
        if h is None:
            raise ValueError("sampling a PixelCNNAutoencoder needs its code h: pass "
                             "h=model.encode(x), or use model.reconstruct(x)")
        model = model.decoder
    cfg = model.config
    shape = (n, cfg.in_channels, height, width)
    device, dtype = model.device, sampling_dtype(model.dtype)
    model.check_y(y, n)
    model.check_h(h, n)
    model.check_cond_map(cond_map, n, (height, width))
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= height * width:
        raise ValueError(f"start must be an integer raster pixel index in [0, {height * width}] "
                         f"(H * W), got {start!r}")
    if x0 is None:
        if start > 0:
            raise ValueError(f"start={start} completes the image from x0: pass x0 [n, C, H, W]")
        x = torch.zeros(shape, dtype=torch.long, device=device)
    else:
        model.check_x(x0)
        if tuple(x0.shape) != shape:
            raise ValueError(f"x0 must have shape {list(shape)} (n, C, H, W), got "
                             f"{list(x0.shape)}")
        x = x0.to(device=device, dtype=torch.long).clone()
        x.view(n, cfg.in_channels, -1)[:, :, start:] = 0    # the sampler writes these
    if uniforms is None:
        uniforms = torch.rand(shape, generator=generator, dtype=torch.float64)
    elif not isinstance(uniforms, torch.Tensor) or not uniforms.is_floating_point() \
            or tuple(uniforms.shape) != shape:
        got = f"{uniforms.dtype} {list(uniforms.shape)}" if isinstance(uniforms, torch.Tensor) \
            else type(uniforms).__name__
        raise ValueError(f"uniforms must be a float tensor of shape {list(shape)} "
                         f"(n, C, H, W), got {got}")
    elif uniforms.numel() and not (uniforms.min() >= 0 and uniforms.max() < 1):
        raise ValueError(f"uniforms must lie in [0, 1), got min {float(uniforms.min())} "
                         f"max {float(uniforms.max())}")
    uniforms = uniforms.to(device=device, dtype=dtype)
    if y is not None:
        y = y.to(device)
    if h is not None:
        h = h.to(device=device, dtype=model.dtype)
    if cond_map is not None:
        cond_map = cond_map.to(device=device, dtype=model.dtype)
    return Job(model, x, uniforms, y, h, float(temperature), start, cond_map)


def progress_bar(job: Job, enabled: bool):
    """A tqdm bar counting sub-pixels (disabled: a no-op with the same interface)."""
    from tqdm.auto import tqdm
    n, C, H, W = job.shape
    return tqdm(total=C * (H * W - job.start), unit="sub-pixel", disable=not enabled,
                desc="sampling", leave=False)
