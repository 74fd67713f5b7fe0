"""The correctness gate: before any method is timed, check on a small batch that it computes
what the reference does. No speed is reported for a method that fails.

Two checks per method:
- samples: the same uniforms through `naive` and through the method, at a reduced image size
  (naive stays cheap); the rate of identical sub-pixels must reach a floor (float32: 0.999,
  since rounding at a CDF boundary may rarely flip one; in bf16 the methods round
  differently and one flip changes the rest of its image, so the rate is reported only);
- logits: the reference forward against the method's own forward on the same images at full
  size: teacher forcing through the incremental cache (`cached`), the fused kernels
  (`triton`); for `triton-grid`, which has no forward, its steps' logits against the PyTorch
  steps' from the same caches at the gate's size (bench.lockstep, resynced every step: in
  bf16 too, where the identical rate has no floor); n/a for a method that exposes no logits
  (`native`).

Where samples differ, the gate also reports each differing image's first differing sub-pixel
(row, column, channel: which part of a step parted first) and its CDF margin there (in
sampling order; the two images agree before it): the distance from
the uniform to the nearest boundary of the reference's float64 CDF. A margin near float32's
rounding (~1e-6) is a near-tie that any other summation order may flip; a large one is a bug.
"""
from __future__ import annotations

from typing import Optional

import torch

import pixelcnn
from pixelcnn.cache import GatedCache
from pixelcnn.packing import packed
from pixelcnn.sampling.common import full_precision

RTOL = {"float32": 1e-4, "bf16": 3e-2}   # max |Δlogits| / max(1, max |logits|) of the forward,
                                         # / max |logits| of triton-grid's steps
MIN_IDENTICAL = {"float32": 0.999, "bf16": 0.0}


@torch.no_grad()
def teacher_forced_logits(model, x: torch.Tensor, y=None) -> torch.Tensor:
    """Logits [B, levels, C, H, W] of every sub-pixel of x (long [B, C, H, W]) computed by the
    cached sampler's steps, fed the true previous sub-pixels (as tests/test_sampling_cache)."""
    B, C, H, W = x.shape
    cache = GatedCache(packed(model), model.condition(y, None)).setup(B, H, W)
    xe = cache.embed(x)
    out = xe.new_empty(B, model.config.levels, C, H, W)
    for i in range(H):
        cache.row(i, xe[:, :, i - 1] if i else None)
        for j in range(W):
            cache.begin_pixel(j)
            for c in range(C):
                cache.step(j, xe[:, :, i, j])       # channels >= c are masked out
                out[:, :, c, i, j] = cache.logits(c)
            cache.end_pixel(j, xe[:, :, i, j])
    return out


@torch.no_grad()
def fast_logits(model, method: str, x: torch.Tensor, y=None) -> Optional[torch.Tensor]:
    """The method's own logits for images x, or None if it exposes none."""
    if method == "cached":
        return teacher_forced_logits(model, x, y)
    if method == "triton":
        model.backend = "triton"
        try:
            return model(x, y)
        finally:
            model.backend = "torch"
    return None


@torch.no_grad()
def step_logits_error(model, method: str, n: int, size, y=None):
    """triton-grid: (max |Δlogits|, max |logits|) of its sub-pixel steps against the PyTorch
    steps', each step from the reference's caches (bench.lockstep), over n images of `size`;
    (None, None) otherwise. The scale is the steps' own logits' (not floored at 1 as the
    forward's): a random-weight model's logits are ~0.2, and a kernel 8% off there (as the
    H200's layer-0 tap was) must fail bf16's 3% too."""
    if method != "triton-grid":
        return None, None
    from .lockstep import lockstep
    worst = lockstep(model, method, n, size, resync=True, seed=0, y=y)["worst"]["logits"]
    return worst["max_abs_diff"], worst["scale"]


def first_differences(ref: torch.Tensor, got: torch.Tensor) -> dict:
    """{image: (row, column, channel)} of its first sub-pixel in sampling order where got
    differs from ref (long [B, C, H, W]), for every image that differs: where in the step
    (which row, column, channel) a fast path first parts from the reference."""
    diff = (got != ref).permute(0, 2, 3, 1).flatten(1).cpu()         # sampling order
    C, W = ref.shape[1], ref.shape[3]
    out = {}
    for b in diff.any(1).nonzero().flatten().tolist():
        first = int(diff[b].nonzero()[0])
        out[b] = (first // (W * C), first // C % W, first % C)
    return out


@torch.no_grad()
def cdf_margins(model, ref: torch.Tensor, firsts: dict, u: torch.Tensor, y=None) -> list:
    """Per image where a fast path's draw differs from ref (long [B, C, H, W], drawn from the
    uniforms u), at its first differing sub-pixel (`first_differences`): |u - the nearest
    boundary of the reference CDF|, in float64 from ref's logits there."""
    if not firsts:
        return []
    bad = list(firsts)
    with full_precision():
        logits = model(ref[bad], None if y is None else y[bad]).double()  # [b, V, C, H, W]
    out = []
    for k, (b, (i, j, c)) in enumerate(firsts.items()):
        cdf = torch.softmax(logits[k, :, c, i, j], 0).cumsum(0)[:-1].cpu()
        out.append(float((cdf - float(u[b, c, i, j])).abs().min()))
    return out


def run_gate(model, methods: list, images: torch.Tensor, gate_size, dtype: str,
             min_identical: Optional[float] = None, seed: int = 0) -> dict:
    """{method: {identical_rate, identical_images, max_abs_dlogits, passed, why}} for every
    method (naive, the reference, passes by definition), and the logits of the reference on
    `images` (for the teacher-forced bits/dim) under key None."""
    floor = MIN_IDENTICAL[dtype] if min_identical is None else min_identical
    n = len(images)
    C = model.config.in_channels
    g = torch.Generator().manual_seed(seed)
    u = torch.rand((n, C, *gate_size), generator=g, dtype=torch.float64)
    y = None if not model.config.num_classes else \
        torch.arange(n, device=model.device) % model.config.num_classes
    with torch.no_grad(), full_precision():        # the float32 reference is float32, not TF32
        ref_logits = model(images, y).float()
    ref = pixelcnn.sample(model, n, gate_size, y=y, uniforms=u, method="naive")
    scale = max(1.0, float(ref_logits.abs().max()))
    out = {None: ref_logits}
    for m in methods:
        if m == "naive":
            out[m] = {"identical_rate": 1.0, "identical_images": n, "max_abs_dlogits": 0.0,
                      "cdf_margins": [], "first_differences": [], "passed": True,
                      "why": "the reference"}
            continue
        got = pixelcnn.sample(model, n, gate_size, y=y, uniforms=u, method=m)
        same = got == ref
        rate = float(same.double().mean())
        with full_precision():
            logits = fast_logits(model, m, images, y)
            dlogits, limit = step_logits_error(model, m, n, gate_size, y)
        if logits is not None:
            dlogits, limit = float((logits.float() - ref_logits).abs().max()), scale
        firsts = first_differences(ref, got)
        margins = cdf_margins(model, ref, firsts, u, y)
        why = []
        if rate < floor:
            why.append(f"identical-sample rate {rate:.4f} < {floor} (first differences at "
                       f"(row, column, channel) {', '.join(map(str, firsts.values()))}; "
                       f"CDF margins there: {', '.join(f'{v:.1e}' for v in margins)})")
        if dlogits is not None and dlogits > RTOL[dtype] * limit:
            why.append(f"max |Δlogits| {dlogits:.2e} > {RTOL[dtype] * limit:.2e}")
        out[m] = {"identical_rate": rate, "identical_images": int(same.flatten(1).all(1).sum()),
                  "max_abs_dlogits": dlogits, "cdf_margins": margins,
                  "first_differences": [list(f) for f in firsts.values()],
                  "passed": not why, "why": "; ".join(why),
                  "logits": logits}
    return out
