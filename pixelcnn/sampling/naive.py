"""The reference sampler: one whole forward pass per sub-pixel, H * W * C of them.

Simple and obviously right; every other method is tested against it.
"""
import torch

from ..cache import inverse_cdf
from .common import Job, Method, progress_bar


@torch.no_grad()
def sample_naive(job: Job, progress: bool = False) -> torch.Tensor:
    model, x, u = job.model, job.x, job.uniforms
    n, C, H, W = x.shape
    with progress_bar(job, progress) as bar:
        for pos in range(job.start, H * W):
            i, j = divmod(pos, W)
            for c in range(C):
                logits = model(x, job.y, job.h, job.cond_map)       # [n, levels, C, H, W]
                x[:, c, i, j] = inverse_cdf(logits[:, :, c, i, j], u[:, c, i, j], job.temperature)
                bar.update(1)
    return x


METHOD = Method("naive", lambda model: "", sample_naive)
